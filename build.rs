//! Generates the libguestfs FFI bindings from the system's guestfs.h (libguestfs-dev) and the
//! libext2fs ones from ext2fs.h (libext2fs-dev, comerr-dev), libntfs-3g's (ntfs-3g-dev) and
//! libhivex's (libhivex-dev). Only the calls revirt uses are
//! allow-listed, which keeps the bindings small and the build fast.
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
    ext2fs_bindings(&out);
    ntfs_bindings(&out);
    hivex_bindings(&out);
}

/// libext2fs (src/native/ext2fs.rs): the calls behind the custom io_manager and the file,
/// directory and inode edits, plus com_err's `error_message`.
fn ext2fs_bindings(out: &std::path::Path) {
    println!("cargo:rerun-if-changed=src/native/ext2fs_wrapper.h");
    println!("cargo:rustc-link-lib=ext2fs");
    println!("cargo:rustc-link-lib=com_err");
    let bindings = bindgen::Builder::default()
        .header("src/native/ext2fs_wrapper.h")
        .allowlist_function(
            "ext2fs_(open2|close_free|read_bitmaps|lookup|read_inode|read_inode_full|write_inode|\
             write_inode_full|write_new_inode|new_inode|inode_alloc_stats2|block_alloc_stats2|\
             link|unlink|expand_dir|mkdir|symlink|punch|inode_has_valid_blocks2|\
             file_acl_block|file_acl_block_set|adjust_ea_refcount3|dir_iterate2|extent_open2|\
             extent_free|file_open|file_close|file_read|file_write|file_set_size2|file_get_inode|fallocate|\
             free_blocks_count|dirent_name_len|dirent_set_file_type|\
             reserve_super_and_bgd|allocate_block_bitmap|free_block_bitmap|mark_block_bitmap_range2|\
             find_first_set_block_bitmap2|find_first_zero_block_bitmap2|block_bitmap_loc|\
             inode_bitmap_loc|inode_table_loc|blocks_count|block_iterate3|test_block_bitmap2|\
             bg_itable_unused)",
        )
        .allowlist_function("error_message|initialize_ext2_error_table")
        .allowlist_type("ext2_inode_large|ext2_dir_entry|ext2_super_block")
        .allowlist_var(
            "EXT2_ET_.*|EXT2_FLAG_.*|IO_FLAG_.*|DIRENT_.*|EXT2_FT_.*|LINUX_S_IF.*|\
             EXT2_ROOT_INO|EXT2_LINK_MAX|EXT2_FILE_WRITE|EXT2_(IMMUTABLE|APPEND|INDEX)_FL|\
             EXT4_EXTENTS_FL|EXT2_FALLOCATE_FORCE_INIT|EXT[234]_FEATURE_.*|EXT2_(VALID|ERROR)_FS|EXT2_GOOD_OLD_INODE_SIZE|\
             BLOCK_FLAG_READ_ONLY|BLOCK_ABORT|EXT2_RESIZE_INO",
        )
        .derive_default(true)
        .generate()
        .expect("generating libext2fs bindings: is libext2fs-dev installed? (bash .ci/deps.sh)");
    bindings
        .write_to_file(out.join("ext2fs_bindings.rs"))
        .expect("writing ext2fs bindings");
}

/// libntfs-3g (src/native/ntfs.rs): mount over custom device operations, file and directory
/// edits, inherited security ids. Its installed headers expect a "config.h" of their own build:
/// src/native/ntfs3g/config.h says which standard headers exist.
fn ntfs_bindings(out: &std::path::Path) {
    println!("cargo:rerun-if-changed=src/native/ntfs_wrapper.h");
    println!("cargo:rerun-if-changed=src/native/ntfs3g/config.h");
    println!("cargo:rustc-link-lib=ntfs-3g");
    let bindings = bindgen::Builder::default()
        .header("src/native/ntfs_wrapper.h")
        .clang_arg("-Isrc/native/ntfs3g")
        .allowlist_function(
            "ntfs_(device_alloc|device_free|device_mount|umount|pathname_to_inode|create|delete|\
             inode_close|attr_open|attr_close|attr_pread|attr_pwrite|attr_truncate|mbstoucs|\
             inode_update_times|inherited_id|check_empty_dir|get_ntfs_acl|set_ntfs_acl|log_set_handler|\
             log_handler_stderr|log_set_levels|log_clear_levels)",
        )
        .allowlist_type(
            "ntfs_device_operations|SECURITY_CONTEXT|MFT_RECORD|ATTR_TYPES|ntfs_time_update_flags",
        )
        .allowlist_var(
            "AT_UNNAMED|NTFS_MNT_.*|NTFS_UPDATE_.*|MFT_RECORD_.*|VOLUME_IS_DIRTY|NTFS_LOG_LEVEL_.*|\
             FILE_ATTR_.*",
        )
        .rustified_enum("ATTR_TYPES")
        .derive_default(true)
        .generate()
        .expect("generating libntfs-3g bindings: is ntfs-3g-dev installed? (bash .ci/deps.sh)");
    bindings
        .write_to_file(out.join("ntfs_bindings.rs"))
        .expect("writing ntfs bindings");
}

/// libhivex (src/native/hive.rs): registry edits on a hive file in the caged hive helper.
fn hivex_bindings(out: &std::path::Path) {
    println!("cargo:rerun-if-changed=src/native/hivex_wrapper.h");
    println!("cargo:rustc-link-lib=hivex");
    let bindings = bindgen::Builder::default()
        .header("src/native/hivex_wrapper.h")
        .allowlist_function(
            "hivex_(open|close|root|node_get_child|node_add_child|node_set_value|commit)",
        )
        .allowlist_type("hive_set_value")
        .allowlist_var("HIVEX_OPEN_.*")
        .derive_default(true)
        .generate()
        .expect("generating libhivex bindings: is libhivex-dev installed? (bash .ci/deps.sh)");
    bindings
        .write_to_file(out.join("hivex_bindings.rs"))
        .expect("writing hivex bindings");
}
