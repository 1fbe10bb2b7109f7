//! Bad input gives a clear error and a distinct exit code, never a panic (issue #2, section 11).
mod common;
use common::*;

const UNREADABLE: i32 = 3;
const NO_OS: i32 = 4;
const LAYOUT: i32 = 5;

fn assert_no_panic(err: &str) {
    assert!(!err.contains("panicked"), "revirt panicked: {err}");
}

#[test]
fn zero_length_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("empty.img");
    std::fs::write(&p, b"").unwrap();
    let (code, _, err) = revirt_out(&["inspect", p.to_str().unwrap()]);
    assert_eq!(code, UNREADABLE, "{err}");
    assert!(err.contains("empty") && err.contains("empty.img"), "{err}");
}

#[test]
fn garbage_is_a_disk_without_os() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("garbage.img");
    let bytes: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&p, bytes).unwrap();
    let (code, _, err) = revirt_out(&["inspect", p.to_str().unwrap()]);
    assert_no_panic(&err);
    assert_eq!(code, NO_OS, "{err}");
    assert!(err.contains("no operating system found"), "{err}");
}

#[test]
fn foreign_formats_point_at_convert() {
    let d = tempfile::tempdir().unwrap();
    for (name, magic) in [
        ("a.vmdk", &b"KDMV\x01\0\0\0"[..]),
        ("a.vhdx", b"vhdxfile"),
        ("a.vhd", b"conectix"),
    ] {
        let p = d.path().join(name);
        let mut b = magic.to_vec();
        b.resize(1 << 20, 0);
        std::fs::write(&p, b).unwrap();
        let (code, _, err) = revirt_out(&["inspect", p.to_str().unwrap()]);
        assert_eq!(code, UNREADABLE, "{name}: {err}");
        assert!(err.contains("revirt convert"), "{name}: {err}");
    }
}

#[test]
fn missing_file() {
    let (code, _, err) = revirt_out(&["inspect", "/nonexistent/disk.qcow2"]);
    assert_eq!(code, UNREADABLE);
    assert!(err.contains("/nonexistent/disk.qcow2"), "{err}");
}

#[test]
fn gpt_with_corrupt_primary_header_uses_backup() {
    let g = mini_linux(
        "UUID=6f8e4f5c-9c1e-4c42-8f0a-8f6d3c2b1a00 / ext4 defaults 0 1\n",
        &[],
        &[],
    );
    // Corrupt the primary header's signature at LBA 1.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&g.disk)
        .unwrap();
    use std::io::{Seek, SeekFrom, Write};
    f.seek(SeekFrom::Start(512)).unwrap();
    f.write_all(b"XXXXXXXX").unwrap();
    drop(f);
    let (code, out, err) = revirt_out(&["inspect", "--json", g.disk.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["disks"][0]["gpt_backup_used"], true);
    assert!(
        j["warnings"].to_string().contains("backup header"),
        "{}",
        j["warnings"]
    );
    assert_eq!(j["operating_systems"][0]["linux"]["distro"], "debian");
}

#[test]
fn gpt_with_both_headers_corrupt_is_unsupported_layout() {
    let g = mini_linux("", &[], &[]);
    let len = std::fs::metadata(&g.disk).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&g.disk)
        .unwrap();
    use std::io::{Seek, SeekFrom, Write};
    f.seek(SeekFrom::Start(512)).unwrap();
    f.write_all(b"XXXXXXXX").unwrap();
    f.seek(SeekFrom::Start(len - 512)).unwrap();
    f.write_all(b"XXXXXXXX").unwrap();
    drop(f);
    let (code, _, err) = revirt_out(&["inspect", g.disk.to_str().unwrap()]);
    assert_no_panic(&err);
    assert_eq!(code, LAYOUT, "{err}");
    assert!(err.contains("GPT") && err.contains("corrupt"), "{err}");
}

#[test]
fn corrupt_ext4_superblock_is_reported_not_panicking() {
    let g = mini_linux("", &[], &[]);
    // Partition 1 starts at 1 MiB; the ext4 superblock is 1 KiB in, its block count at +4.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&g.disk)
        .unwrap();
    use std::io::{Seek, SeekFrom, Write};
    f.seek(SeekFrom::Start((1 << 20) + 1024 + 24)).unwrap();
    f.write_all(&[0xff; 4]).unwrap(); // s_log_block_size = absurd
    drop(f);
    let (code, _, err) = revirt_out(&["inspect", g.disk.to_str().unwrap()]);
    assert_no_panic(&err);
    assert_eq!(code, NO_OS, "{err}");
    assert!(
        err.contains("/dev/sda1") && err.contains("ext4"),
        "error must name the device and fs: {err}"
    );
}

#[test]
fn fstab_naming_missing_devices_is_reported() {
    let fstab = "UUID=6f8e4f5c-9c1e-4c42-8f0a-8f6d3c2b1a00 / ext4 defaults 0 1\n/dev/sdb1 /data ext4 defaults 0 2\nUUID=0000-dead /srv xfs nofail 0 0\n";
    let g = mini_linux(fstab, &[], &[]);
    let (code, out, err) = revirt_out(&["inspect", "--json", g.disk.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let f = &j["operating_systems"][0]["linux"]["fstab"];
    assert_eq!(f[0]["present"], true);
    assert_eq!(f[0]["resolves_to"], "/dev/sda1");
    assert_eq!(f[1]["present"], false);
    assert_eq!(f[1]["bus_dependent"], true);
    assert_eq!(f[2]["present"], false);
    assert_eq!(f[2]["nofail"], true);
}

#[test]
fn symlinks_loop_and_escape_stay_inside_the_guest() {
    // /etc/hostname escapes with ../ and absolute paths: it must read the guest's file, never the
    // host's; /etc/machine-id loops.
    let g = mini_linux(
        "",
        &[("/guest-only/hostname", "inside-guest\n")],
        &[
            ("/etc/hn-abs", "/guest-only/hostname"),
            ("/etc/machine-id", "/etc/machine-id2"),
            ("/etc/machine-id2", "machine-id"),
        ],
    );
    std::fs::remove_file(g.dir.path().join("root/etc/hostname")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../../../guest-only/hostname",
        g.dir.path().join("root/etc/hostname"),
    )
    .unwrap();
    let img = g.dir.path().join("root.ext4");
    mkext4(
        &g.dir.path().join("root"),
        &img,
        16,
        "6f8e4f5c-9c1e-4c42-8f0a-8f6d3c2b1a00",
        "rootfs",
    );
    disk(
        &g.disk,
        "gpt",
        &[(&img, "0FC63DAF-8483-4772-8E79-3D69D8477DE4")],
    );
    let (code, out, err) = revirt_out(&["inspect", "--json", g.disk.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        j["operating_systems"][0]["linux"]["hostname"],
        "inside-guest"
    );
}

#[test]
fn disk_without_os() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("data");
    tree(&root, &[("/photos/a.txt", "x")], &[]);
    let img = d.path().join("data.ext4");
    mkext4(
        &root,
        &img,
        8,
        "11111111-2222-3333-4444-555555555555",
        "data",
    );
    let (code, out, err) = revirt_out(&["inspect", img.to_str().unwrap()]);
    assert_eq!(code, NO_OS, "{err}");
    assert!(
        out.contains("ext4") && out.contains("11111111-2222-3333-4444-555555555555"),
        "{out}"
    );
    assert!(err.contains("no operating system found"), "{err}");
}
