//! Generates the libguestfs FFI bindings from the system's guestfs.h (libguestfs-dev).
//! Only the calls revirt uses are allow-listed, which keeps the bindings small and the build fast.
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/guestfs/wrapper.h");
    println!("cargo:rustc-link-lib=guestfs");
    let bindings = bindgen::Builder::default()
        .header("src/guestfs/wrapper.h")
        .allowlist_function("guestfs_(create_flags|close|chmod|lstatns|free_statns|mkmountpoint|is_symlink|filesize|free_string_list|set_error_handler|last_error|set_trace|set_verbose|add_drive_opts|add_drive_ro|launch|shutdown|set_memsize|set_backend|set_backend_settings|get_backend|list_filesystems|list_devices|list_partitions|mount|mount_ro|umount_all|inspect_os|inspect_get_type|inspect_get_distro|inspect_get_product_name|inspect_get_major_version|inspect_get_minor_version|inspect_get_arch|inspect_get_hostname|inspect_get_mountpoints|vfs_type|vfs_uuid|vfs_label|cat|read_file|write|upload|download|ls|exists|is_dir|is_file|sh|command|mkdir_p|cp|cp_a|mv|rm|rm_f|rmdir|ln_sf|sync|lvs|vgs|pvs|vgscan|vg_activate_all|readlink|aug_init|hivex_open|hivex_root|hivex_node_get_child|hivex_node_add_child|hivex_node_set_value|hivex_commit|hivex_close)")
        .allowlist_var("GUESTFS_.*")
        .derive_default(true)
        .generate()
        .expect("generating libguestfs bindings: is libguestfs-dev installed? (bash .ci/deps.sh)");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    bindings
        .write_to_file(out.join("guestfs_bindings.rs"))
        .expect("writing bindings");
}
