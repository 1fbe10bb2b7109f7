//! Volumes without a pure reader (btrfs here) fall back to one libguestfs appliance launch.
mod common;
use common::*;
use std::process::Command;

#[test]
fn btrfs_root_is_read_through_the_appliance() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    tree(
        &root,
        &[
            ("/etc/os-release", "NAME=\"openSUSE Tumbleweed\"\nID=\"opensuse-tumbleweed\"\nID_LIKE=\"opensuse suse\"\nVERSION_ID=\"20240101\"\n"),
            ("/etc/hostname", "btrfs-guest\n"),
            ("/etc/fstab", "UUID=3b1f0c7e-5e8e-4bd5-9f8c-1f2e3d4c5b6a / btrfs defaults 0 0\n"),
            ("/usr/bin/.keep", ""),
        ],
        &[],
    );
    let img = d.path().join("root.btrfs");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(128 << 20)
        .unwrap();
    run(Command::new("mkfs.btrfs")
        .args([
            "-q",
            "-f",
            "-U",
            "3b1f0c7e-5e8e-4bd5-9f8c-1f2e3d4c5b6a",
            "--rootdir",
        ])
        .arg(&root)
        .arg(&img));
    let disk_path = d.path().join("disk.raw");
    disk(
        &disk_path,
        "gpt",
        &[(&img, "0FC63DAF-8483-4772-8E79-3D69D8477DE4")],
    );
    let (code, out, err) = revirt_out(&["inspect", "--json", disk_path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["appliance_used"], true);
    assert_eq!(j["volumes"][0]["fstype"], "btrfs");
    assert_eq!(j["volumes"][0]["reader"], "appliance");
    let l = &j["operating_systems"][0]["linux"];
    assert_eq!(l["distro"], "opensuse-tumbleweed");
    assert_eq!(l["family"], "suse");
    assert_eq!(l["hostname"], "btrfs-guest");
    assert_eq!(l["fstab"][0]["resolves_to"], "/dev/sda1");
}

#[test]
fn pure_guest_launches_no_appliance() {
    let g = mini_linux(
        "UUID=6f8e4f5c-9c1e-4c42-8f0a-8f6d3c2b1a00 / ext4 defaults 0 1\n",
        &[],
        &[],
    );
    let (code, out, err) = revirt_out(&["inspect", "--json", g.disk.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["appliance_used"], false);
    assert_eq!(j["volumes"][0]["reader"], "pure");
}
