//! Crash-consistent ext4 (issue #7): a root whose newest data exists only as a committed
//! transaction in its journal (written with debugfs's journal commands, as jbd2 writes it) is
//! inspected with the journal replayed, planned instead of refused, repaired into an overlay
//! through the appliance (whose mount replays the journal before any write), and the result is
//! clean for e2fsck and still holds the journaled data next to revirt's edits.
#[path = "common/boot.rs"]
mod boot;
mod common;
use common::*;
use std::path::Path;
use std::process::Command;

const ROOT_UUID: &str = "6f8e4f5c-9c1e-4c42-8f0a-8f6d3c2b1a00";

fn debugfs(img: &Path, cmds: &str) -> String {
    let f = img.with_extension("cmds");
    std::fs::write(&f, cmds).unwrap();
    run_stdout(Command::new("debugfs").arg("-w").arg("-f").arg(&f).arg(img))
}

/// A Debian-like root whose /etc/hostname block is rewritten by a committed, unreplayed
/// journal transaction. Returns (dir, disk, partition image).
fn crashed_guest() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    tree(
        &root,
        &[
            ("/etc/os-release", DEBIAN12_OS_RELEASE),
            ("/etc/hostname", "crashed-old\n"),
            ("/etc/fstab", "/dev/sda1 / ext4 errors=remount-ro 0 1\n"),
            ("/usr/bin/.keep", ""),
            ("/boot/vmlinuz-6.1.0-13-amd64", "kernel"),
            ("/boot/initrd.img-6.1.0-13-amd64", "initrd"),
        ],
        &[],
    );
    let img = dir.path().join("root.ext4");
    mkext4(&root, &img, 64, ROOT_UUID, "rootfs");
    let out = run_stdout(
        Command::new("debugfs")
            .args(["-R", "bmap /etc/hostname 0"])
            .arg(&img),
    );
    let block: u64 = out.trim().parse().expect("bmap prints a block number");
    let mut data = b"crashed-new\n".to_vec();
    data.resize(4096, 0);
    let newblk = dir.path().join("new.blk");
    std::fs::write(&newblk, &data).unwrap();
    debugfs(
        &img,
        &format!("jo\njw -b {block} {}\njc\n", newblk.display()),
    );
    let disk_path = dir.path().join("crashed.raw");
    disk(&disk_path, "dos", &[(&img, "83")]);
    (dir, disk_path)
}

#[test]
fn journaled_data_is_read_repaired_and_kept() {
    boot::require_tools(&["debugfs", "dumpe2fs", "e2fsck", "qemu-img", "sfdisk"]);
    let (dir, disk) = crashed_guest();
    let part = dir.path().join("root.ext4");
    // The image really needs recovery.
    let sb = run_stdout(Command::new("dumpe2fs").arg("-h").arg(&part));
    assert!(sb.contains("needs_recovery"), "{sb}");

    // Inspect reads the replayed state and says what it replayed.
    let (code, out, err) = revirt_out(&["inspect", "--json", disk.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        j["operating_systems"][0]["linux"]["hostname"], "crashed-new",
        "{out}"
    );
    let jr = &j["volumes"][0]["journal_recovery"];
    assert_eq!(jr["transactions"], 1, "{jr}");
    assert_eq!(jr["in_memory"], true);
    assert!(jr["error"].is_null(), "{jr}");

    // Verify of the crashed disk is not ready; the plan is not refused.
    let (code, out, _) = revirt_out(&["verify", disk.to_str().unwrap()]);
    assert_eq!(code, 7, "{out}");
    assert!(out.contains("journal still needs recovery"), "{out}");
    let (code, out, err) = revirt_out(&["plan", disk.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");

    // Repair with each writer: native (the default: the replay is written first, then
    // libext2fs edits) and the appliance (whose mount replays the journal).
    for writer in ["native", "appliance"] {
        repaired_is_clean(&dir, &disk, writer);
    }
}

/// Repairs the crashed disk with `writer` into an overlay and checks the result.
fn repaired_is_clean(dir: &tempfile::TempDir, disk: &Path, writer: &str) {
    // Repair into an overlay: the input stays byte-identical, the result is ready and clean.
    let before = std::fs::read(disk).unwrap();
    let ov = dir.path().join(format!("repaired-{writer}.qcow2"));
    let rep = dir.path().join(format!("report-{writer}.json"));
    let (code, out, err) = revirt_out(&[
        "repair",
        disk.to_str().unwrap(),
        "-o",
        ov.to_str().unwrap(),
        "--progress",
        "none",
        "--writer",
        writer,
        "--report",
        rep.to_str().unwrap(),
    ]);
    // This skeleton has no real initramfs or grub.cfg, so verify stays "not ready" for those
    // reasons only (the real guests boot); the journal is no longer one of them.
    assert_eq!(code, 7, "{out}{err}");
    assert!(out.contains("write-file /etc/fstab"), "{out}");
    assert!(!out.contains("journal"), "{out}");
    assert!(std::fs::read(disk).unwrap() == before, "the input changed");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rep).unwrap()).unwrap();
    assert_eq!(report["writer"], writer, "{report:#}");
    let raw = dir.path().join(format!("repaired-{writer}.raw"));
    run(Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&ov)
        .arg(&raw));
    let after = dir.path().join(format!("after-{writer}.ext4"));
    run(Command::new("dd")
        .arg(format!("if={}", raw.display()))
        .arg(format!("of={}", after.display()))
        .args(["bs=1M", "skip=1", "count=64", "status=none"]));
    let fsck = Command::new("e2fsck")
        .args(["-fn"])
        .arg(&after)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "e2fsck -fn on the repaired root: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let sb = run_stdout(Command::new("dumpe2fs").arg("-h").arg(&after));
    assert!(!sb.contains("needs_recovery"), "still needs recovery: {sb}");
    let host = run_stdout(
        Command::new("debugfs")
            .args(["-R", "cat /etc/hostname"])
            .arg(&after),
    );
    assert_eq!(host, "crashed-new\n", "the journaled data was lost");
    let fstab = run_stdout(
        Command::new("debugfs")
            .args(["-R", "cat /etc/fstab"])
            .arg(&after),
    );
    assert!(
        fstab.contains(&format!("UUID={ROOT_UUID}")),
        "revirt's fstab edit is missing: {fstab}"
    );
}
