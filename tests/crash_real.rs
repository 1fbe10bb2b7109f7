//! Real crash-consistent snapshots, made the way replication makes one (issue #7): a real Debian 12
//! guest boots on its source platform (IDE, e1000; qemu cache=writeback, so what it fsyncs is in
//! the image) with a writer that commits a file to /, /boot and /srv/data, fsyncs them and prints
//! `CRASHWRITER-SYNCED: N` on the serial console, again and again; qemu is SIGKILLed mid-write.
//! Host tools show the image really needs recovery (dumpe2fs `needs_recovery`, xfs_logprint's
//! dirty log). revirt repairs it into overlays (the inputs stay byte-identical), e2fsck -fn /
//! xfs_repair -n find the result clean, and the repaired guest boots on virtio with a DHCP
//! address and finds every file the console showed as synced, on each filesystem.
//!
//! Two guests: ext4 root on MBR (repaired natively: the journal replay is written first), and
//! three disks with an XFS root LV spanning the first two, an ext4 /boot and an ext4 data disk
//! (issue #10: several disks; repaired through the appliance, which recovers the XFS log into
//! the output before anything is planned).
#[path = "common/boot.rs"]
mod boot;
mod common;
use common::*;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The writer and its unit (shared with `cargo xtask bench`, which makes crash images the same
/// way).
const WRITER: &str = include_str!("../fixtures/images/crash/crashwriter");
const UNIT: &str = include_str!("../fixtures/images/crash/crashwriter.service");

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

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fs {
    Ext4,
    Xfs,
}

struct Case {
    guest: &'static str,
    /// guestfish mounts (device, mount point) to install the writer.
    mounts: &'static [(&'static str, &'static str)],
    /// Volumes that must need recovery after the kill, as `revirt inspect` names them.
    dirty: &'static [(&'static str, Fs)],
    /// The writer revirt must pick.
    writer: &'static str,
}

/// (disk index, byte offset) of a partition device.
fn partition_at(ins: &serde_json::Value, dev: &str) -> Option<(usize, u64, u64)> {
    ins["disks"]
        .as_array()?
        .iter()
        .enumerate()
        .find_map(|(d, disk)| {
            let p = disk["partitions"]
                .as_array()?
                .iter()
                .find(|p| p["device"] == dev)?;
            Some((d, p["start"].as_u64()?, p["size"].as_u64()?))
        })
}

/// Where a volume's bytes are: (disk index, byte offset, length) pieces in filesystem order. A
/// partition is one piece; an LV has a piece per segment (one per disk when it spans disks).
fn pieces(ins: &serde_json::Value, dev: &str) -> Vec<(usize, u64, u64)> {
    if let Some(p) = partition_at(ins, dev) {
        return vec![p];
    }
    let lv = ins["volume_groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|vg| vg["lvs"].as_array().unwrap())
        .find(|lv| lv["device"] == dev)
        .unwrap_or_else(|| panic!("{dev} is neither a partition nor an LV: {ins:#}"));
    lv["segments"]
        .as_array()
        .unwrap_or_else(|| panic!("{dev} has no segments: {lv:#}"))
        .iter()
        .map(|s| {
            let (d, start, _) = partition_at(ins, s["pv"].as_str().unwrap()).expect("PV partition");
            (
                d,
                start + s["pv_offset"].as_u64().unwrap(),
                s["length"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Copies a volume's pieces out of the raw disks into a file of its own (for the host tools).
fn extract(raws: &mut [std::fs::File], pieces: &[(usize, u64, u64)], out: &Path) {
    let mut f = std::fs::File::create(out).unwrap();
    for &(d, off, len) in pieces {
        raws[d].seek(SeekFrom::Start(off)).unwrap();
        let n = std::io::copy(&mut (&mut raws[d]).take(len), &mut f).unwrap();
        assert_eq!(n, len, "disk {d} is shorter than the volume");
    }
    f.flush().unwrap();
}

/// The host tool's word on one volume image: `dirty` = it needs recovery; otherwise a full
/// check must be clean. Returns what the tool printed.
fn judge(vol: &Path, fs: Fs, dirty: bool) -> String {
    let out = |c: &mut Command| {
        let o = c.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), text)
    };
    match (fs, dirty) {
        (Fs::Ext4, true) => {
            let (_, t) = out(Command::new("dumpe2fs").arg("-h").arg(vol));
            let features = t
                .lines()
                .find(|l| l.starts_with("Filesystem features:"))
                .unwrap_or("")
                .to_string();
            assert!(
                features.contains("needs_recovery"),
                "dumpe2fs: no needs_recovery: {t}"
            );
            features
        }
        (Fs::Ext4, false) => {
            let (ok, t) = out(Command::new("e2fsck").arg("-fn").arg(vol));
            assert!(ok, "e2fsck -fn: {t}");
            t
        }
        (Fs::Xfs, true) => {
            let (_, t) = out(Command::new("xfs_logprint").arg("-t").arg(vol));
            assert!(
                t.contains("<DIRTY>"),
                "xfs_logprint finds the log clean: {t}"
            );
            t
        }
        (Fs::Xfs, false) => {
            let (ok, t) = out(Command::new("xfs_repair").arg("-n").arg(vol));
            assert!(ok, "xfs_repair -n: {t}");
            t
        }
    }
}

/// Checks every dirty volume of the guest `disks` with the host tools (`dirty`: needs
/// recovery; otherwise clean).
fn judge_all(disks: &[PathBuf], ins: &serde_json::Value, case: &Case, dirty: bool, tmp: &Path) {
    let raw_paths: Vec<PathBuf> = (0..disks.len())
        .map(|i| tmp.join(format!("judge{i}.raw")))
        .collect();
    let mut raws: Vec<std::fs::File> = disks
        .iter()
        .zip(&raw_paths)
        .map(|(d, r)| {
            run(Command::new("qemu-img")
                .args(["convert", "-O", "raw"])
                .arg(d)
                .arg(r));
            std::fs::File::open(r).unwrap()
        })
        .collect();
    for (dev, fs) in case.dirty {
        let vol = tmp.join("judge.vol");
        extract(&mut raws, &pieces(ins, dev), &vol);
        let said = judge(&vol, *fs, dirty);
        std::fs::remove_file(&vol).ok();
        eprintln!(
            "{}: {dev} ({fs:?}) {}: {}",
            case.guest,
            if dirty { "dirty" } else { "clean" },
            said.lines().next().unwrap_or("")
        );
    }
    for r in &raw_paths {
        std::fs::remove_file(r).ok();
    }
}

/// Every disk of the guest image `img`: itself, then the further disks its sidecar names
/// (`<stem>.<name>.qcow2` beside it).
fn disks_of(img: &Path) -> Vec<PathBuf> {
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(img.with_extension("boot.json")).unwrap())
            .unwrap();
    let stem = img.file_stem().unwrap().to_string_lossy().into_owned();
    std::iter::once(img.to_path_buf())
        .chain(
            info["extra_disks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| img.with_file_name(format!("{stem}.{}.qcow2", n.as_str().unwrap()))),
        )
        .collect()
}

/// The same disks named after `first` (`x.qcow2` -> `first`, `x.data.qcow2` -> `first.data`).
fn renamed(disks: &[PathBuf], first: &Path) -> Vec<PathBuf> {
    let stem = first.file_stem().unwrap().to_string_lossy().into_owned();
    let from = disks[0].file_stem().unwrap().to_string_lossy().into_owned();
    disks
        .iter()
        .map(|d| {
            let n = d
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replacen(&from, &stem, 1);
            first.with_file_name(n)
        })
        .collect()
}

fn strs(p: &[PathBuf]) -> Vec<String> {
    p.iter().map(|p| p.to_string_lossy().into_owned()).collect()
}

fn crash_repair_boot(case: &Case) {
    boot::require_tools(&[
        "guestfish",
        "qemu-img",
        "qemu-system-x86_64",
        "e2fsck",
        "dumpe2fs",
        "xfs_logprint",
        "xfs_repair",
    ]);
    let real = boot::real_guests();
    let src = disks_of(&real.join(format!("{}.qcow2", case.guest)));
    let tmp = tempfile::tempdir().unwrap();
    // 1. Writable copy-on-write images of the source guest's disks, with the writer installed.
    let crashed = renamed(&src, &tmp.path().join("crashed.qcow2"));
    for (s, c) in src.iter().zip(&crashed) {
        run(Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(s)
            .arg(c));
    }
    std::fs::copy(
        real.join(format!("{}.boot.json", case.guest)),
        tmp.path().join("crashed.boot.json"),
    )
    .unwrap();
    install_writer(&crashed, case, tmp.path());

    // 2. Boot on the source platform, power-cut after 25 synced commits.
    let log1 = tmp.path().join("source.log");
    let v = xtask_boot(
        &crashed[0],
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
    eprintln!("{}: killed after {synced} synced commits", case.guest);

    // 3. It really needs recovery (the host tools say so); revirt reads it recovered.
    let mut args = vec!["inspect".to_string(), "--json".into()];
    args.extend(strs(&crashed));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = revirt_out(&args);
    assert_eq!(code, 0, "{err}");
    let ins: serde_json::Value = serde_json::from_str(&out).unwrap();
    judge_all(&crashed, &ins, case, true, tmp.path());
    for (dev, fs) in case.dirty {
        let vol = volume(&ins, dev);
        match fs {
            Fs::Ext4 => {
                assert!(
                    vol["flags"].to_string().contains("needs_recovery"),
                    "revirt sees {dev} clean: {vol:#}"
                );
                assert!(vol["journal_recovery"]["error"].is_null(), "{vol:#}");
            }
            Fs::Xfs => {
                assert_eq!(vol["xfs_log"]["needs_recovery"], true, "{vol:#}");
                assert_eq!(
                    vol["xfs_log"]["recovered_into"], "throwaway-overlay",
                    "{vol:#}"
                );
            }
        }
    }

    // 4. Repair into overlays: the chosen writer, ready, the inputs unchanged, clean for the
    //    host tools.
    let repaired = renamed(&src, &tmp.path().join("repaired.qcow2"));
    let before: Vec<Vec<u8>> = crashed.iter().map(|c| std::fs::read(c).unwrap()).collect();
    let mut args = vec!["repair".to_string()];
    args.extend(strs(&crashed));
    for r in strs(&repaired) {
        args.extend(["-o".to_string(), r]);
    }
    args.extend(["--json", "--progress", "none"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = revirt_out(&args);
    let rep: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{err}"));
    assert_eq!(code, 0, "{rep:#}");
    assert_eq!(rep["writer"], case.writer, "{rep:#}");
    for (c, b) in crashed.iter().zip(&before) {
        assert!(std::fs::read(c).unwrap() == *b, "the input {c:?} changed");
    }
    judge_all(&repaired, &ins, case, false, tmp.path());

    // 5. Boot on virtio: DHCP, and every synced file is there on /, /boot and /srv/data.
    let log2 = tmp.path().join("virtio.log");
    let mut args = vec![
        "--platform",
        "virtio-blk",
        "--firmware",
        "bios",
        "--timeout",
        "420",
    ];
    let more = strs(&repaired[1..]);
    for d in &more {
        args.extend(["--disk", d.as_str()]);
    }
    let v = xtask_boot(&repaired[0], &args, &log2);
    assert_eq!(v["verdict"], "booted-address", "{v:#}");
    assert_eq!(v["address"], "10.0.2.15", "{v:#}");
    let resumed: String = std::fs::read_to_string(&log2)
        .unwrap()
        .lines()
        .filter(|l| l.contains("CRASHWRITER-RESUME:"))
        .map(|l| format!("{}\n", l.replace('=', "= ")))
        .collect();
    for key in ["root=", "boot=", "data="] {
        let found = last_number(&resumed, key)
            .unwrap_or_else(|| panic!("the writer did not start after the repair ({key})"));
        assert!(
            found >= synced,
            "{}: files synced before the crash were lost on {key}: {synced} synced, {found} found",
            case.guest
        );
        eprintln!(
            "{}: synced {synced} before the kill, {found} found on {key} after repair and boot",
            case.guest
        );
    }
}

/// Installs the writer and its unit with guestfish (the guest's source-platform boot starts it).
fn install_writer(disks: &[PathBuf], case: &Case, tmp: &Path) {
    let (w, u) = (tmp.join("writer"), tmp.join("unit"));
    std::fs::write(&w, WRITER).unwrap();
    std::fs::write(&u, UNIT).unwrap();
    let script = format!(
        "mkdir-p /usr/local/sbin\nupload {} /usr/local/sbin/crashwriter\nchmod 0755 /usr/local/sbin/crashwriter\nupload {} /etc/systemd/system/crashwriter.service\nln-sf /etc/systemd/system/crashwriter.service /etc/systemd/system/multi-user.target.wants/crashwriter.service\n",
        w.display(),
        u.display()
    );
    let mut gf = guestfish();
    gf.args(["--rw", "--format=qcow2"]);
    for d in disks {
        gf.arg("-a").arg(d);
    }
    for (dev, at) in case.mounts {
        gf.args(["-m", &format!("{dev}:{at}")]);
    }
    let mut gf = gf
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("guestfish");
    gf.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(
        gf.wait().unwrap().success(),
        "guestfish could not install the writer"
    );
}

#[test]
fn killed_mid_write_repaired_natively_boots_and_keeps_what_was_synced() {
    crash_repair_boot(&Case {
        guest: "deb12-bios-mbr",
        mounts: &[("/dev/sda1", "/")],
        dirty: &[("/dev/sda1", Fs::Ext4)],
        writer: "native",
    });
}

/// Three disks: an XFS root LV spanning the first two, a separate ext4 /boot, and a data disk
/// with no OS (ext4 /srv/data), all dirty at once. The appliance recovers the XFS log into the
/// output before planning (the ext journals are replayed in memory for the plan and by the
/// appliance's mount before it writes); fstab's /dev/sdc1 is named by UUID.
#[test]
fn lvm_xfs_root_spanning_two_disks_boot_and_data_disk_killed_mid_write_repaired_and_booted() {
    crash_repair_boot(&Case {
        guest: "deb12-lvm-xfs",
        mounts: &[
            ("/dev/deb12-lvm-xfs-vg/root", "/"),
            ("/dev/sda1", "/boot"),
            ("/dev/sdc1", "/srv/data"),
        ],
        dirty: &[
            ("/dev/mapper/deb12--lvm--xfs--vg-root", Fs::Xfs),
            ("/dev/sda1", Fs::Ext4),
            ("/dev/sdc1", Fs::Ext4),
        ],
        writer: "appliance",
    });
}
