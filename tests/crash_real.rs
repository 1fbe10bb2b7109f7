//! A real crash-consistent snapshot, made the way replication makes one (issue #7): the Debian 12
//! guest boots on its source platform (IDE, e1000; qemu cache=writeback, so what it fsyncs is
//! in the image) with a writer that commits a file, fsyncs it and prints `CRASHWRITER-SYNCED: N`
//! on the serial console, again and again; qemu is SIGKILLed mid-write. The image then really
//! needs ext4 journal recovery. revirt repairs it into an overlay (natively: the replay is
//! written first), e2fsck finds the result clean, and the repaired guest boots on virtio with a
//! DHCP address and finds every file the console showed as synced.
#[path = "common/boot.rs"]
mod boot;
mod common;
use common::*;
use std::path::Path;
use std::process::Command;

const WRITER: &str = r#"#!/bin/sh
d=/var/lib/crashwriter
mkdir -p "$d"
last=$(ls "$d" | grep -E '^[0-9]+$' | sort -n | tail -1)
echo "CRASHWRITER-RESUME: ${last:-0}" > /dev/ttyS0
n=${last:-0}
while true; do
  n=$((n+1))
  echo "data $n" > "$d/$n.tmp"
  sync "$d/$n.tmp"
  mv "$d/$n.tmp" "$d/$n"
  sync "$d"
  echo "CRASHWRITER-SYNCED: $n" > /dev/ttyS0
  sleep 0.2
done
"#;

const UNIT: &str = "[Unit]\nDescription=revirt crash test writer\nAfter=local-fs.target\n\n[Service]\nExecStart=/usr/local/sbin/crashwriter\n\n[Install]\nWantedBy=multi-user.target\n";

/// The largest N in `KEY N` lines of a console log.
fn last_number(log: &str, key: &str) -> Option<u64> {
    log.lines()
        .filter_map(|l| l.split(key).nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .max()
}

fn xtask_boot(img: &Path, args: &[&str], log: &Path) -> serde_json::Value {
    let out = boot::xtask()
        .arg("boot")
        .arg(img)
        .args(args)
        .arg("--json")
        .arg("--log")
        .arg(log)
        .output()
        .expect("xtask boot");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "xtask boot printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn killed_mid_write_repaired_natively_boots_and_keeps_what_was_synced() {
    boot::require_tools(&["guestfish", "qemu-img", "qemu-system-x86_64", "e2fsck"]);
    let real = boot::real_guests();
    let src = real.join("deb12-bios-mbr.qcow2");
    let tmp = tempfile::tempdir().unwrap();
    // 1. A writable copy-on-write image of the source guest, with the writer installed.
    let crashed = tmp.path().join("crashed.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(&src)
        .arg(&crashed));
    std::fs::copy(
        real.join("deb12-bios-mbr.boot.json"),
        tmp.path().join("crashed.boot.json"),
    )
    .unwrap();
    let (w, u) = (tmp.path().join("writer"), tmp.path().join("unit"));
    std::fs::write(&w, WRITER).unwrap();
    std::fs::write(&u, UNIT).unwrap();
    let script = format!(
        "mkdir-p /usr/local/sbin\nupload {} /usr/local/sbin/crashwriter\nchmod 0755 /usr/local/sbin/crashwriter\nupload {} /etc/systemd/system/crashwriter.service\nln-sf /etc/systemd/system/crashwriter.service /etc/systemd/system/multi-user.target.wants/crashwriter.service\n",
        w.display(),
        u.display()
    );
    let mut gf = guestfish()
        .args(["--rw", "--format=qcow2", "-a"])
        .arg(&crashed)
        .args(["-m", "/dev/sda1"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("guestfish");
    use std::io::Write;
    gf.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(
        gf.wait().unwrap().success(),
        "guestfish could not install the writer"
    );

    // 2. Boot on the source platform, power-cut after 25 synced commits.
    let log1 = tmp.path().join("source.log");
    let v = xtask_boot(
        &crashed,
        &[
            "--platform",
            "source",
            "--in-place",
            "--kill-after",
            "CRASHWRITER-SYNCED: 25",
            "--timeout",
            "420",
        ],
        &log1,
    );
    assert_eq!(v["verdict"], "killed", "{v:#}");
    let synced = last_number(
        &std::fs::read_to_string(&log1).unwrap(),
        "CRASHWRITER-SYNCED:",
    )
    .expect("the writer printed nothing");
    eprintln!("killed after {synced} synced commits");

    // 3. It really needs recovery; revirt reads it replayed.
    let (code, out, err) = revirt_out(&["inspect", "--json", crashed.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let ins: serde_json::Value = serde_json::from_str(&out).unwrap();
    let root = &ins["volumes"][0];
    assert!(
        root["flags"].to_string().contains("needs_recovery"),
        "the snapshot is clean: {root:#}"
    );
    assert!(root["journal_recovery"]["error"].is_null(), "{root:#}");
    eprintln!("journal recovery: {}", root["journal_recovery"]);

    // 4. Repair into an overlay: native, ready, clean for e2fsck.
    let repaired = tmp.path().join("repaired.qcow2");
    let before = std::fs::read(&crashed).unwrap();
    let (code, out, err) = revirt_out(&[
        "repair",
        crashed.to_str().unwrap(),
        "-o",
        repaired.to_str().unwrap(),
        "--json",
        "--progress",
        "none",
    ]);
    let rep: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{err}"));
    assert_eq!(code, 0, "{rep:#}");
    assert_eq!(rep["writer"], "native", "{rep:#}");
    assert!(
        std::fs::read(&crashed).unwrap() == before,
        "the input changed"
    );
    let raw = tmp.path().join("repaired.raw");
    run(Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&repaired)
        .arg(&raw));
    let start = ins["disks"][0]["partitions"][0]["start"].as_u64().unwrap();
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(format!("{}?offset={start}", raw.display()))
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "e2fsck -fn on the repaired root: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    std::fs::remove_file(&raw).ok();

    // 5. Boot on virtio: DHCP, and every synced file is there.
    let log2 = tmp.path().join("virtio.log");
    let v = xtask_boot(
        &repaired,
        &[
            "--platform",
            "virtio-blk",
            "--firmware",
            "bios",
            "--timeout",
            "420",
        ],
        &log2,
    );
    assert_eq!(v["verdict"], "booted-address", "{v:#}");
    assert_eq!(v["address"], "10.0.2.15", "{v:#}");
    let resumed = last_number(
        &std::fs::read_to_string(&log2).unwrap(),
        "CRASHWRITER-RESUME:",
    )
    .expect("the writer did not start after the repair");
    assert!(
        resumed >= synced,
        "files synced before the crash were lost: {synced} synced, {resumed} found"
    );
    eprintln!("synced {synced} before the kill, {resumed} found after repair and boot");
}
