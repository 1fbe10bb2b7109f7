//! Windows repair end to end on phony guests built by `cargo xtask fixtures --set windows` (from
//! fixtures/images/windows/, cached under the fixture cache's windows/ folder, keyed by a hash of
//! the recipe folder): the plan's shape per
//! Windows version, refusals that write nothing, and a native repair (libntfs-3g, libhivex) read back
//! with revirt's pure readers and with hivexregedit, then verified and re-planned to nothing.
mod common;
use revirt::plan::{Change, PlanOptions};
use revirt::repair::{plan_only, repair, Readiness, RepairRequest};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[path = "common/boot.rs"]
mod boot;

/// The fixture folder: `cargo xtask fixtures --set windows` builds (or reuses) every guest under
/// fixtures/images/windows/guests/ and the phony virtio-win there, once per test binary.
fn windows_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(boot::windows_guests)
}

/// The guest image NAME (guests/NAME.env).
fn guest(name: &str) -> PathBuf {
    let img = windows_dir().join(format!("{name}.img"));
    assert!(img.is_file(), "{} was not built", img.display());
    img
}

fn virtio_win() -> PathBuf {
    windows_dir().join("virtio-win")
}

fn opts() -> PlanOptions {
    PlanOptions {
        virtio_win: Some(virtio_win()),
        ..Default::default()
    }
}

fn sha(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

fn reg_sets(plan: &revirt::plan::RepairPlan) -> Vec<(String, String, String)> {
    plan.actions
        .iter()
        .filter_map(|a| match &a.change {
            Change::RegSet {
                key, name, value, ..
            } => Some((
                key.clone(),
                name.clone(),
                serde_json::to_string(value).unwrap(),
            )),
            _ => None,
        })
        .collect()
}

fn uploads(plan: &revirt::plan::RepairPlan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match &a.change {
            Change::UploadFile { to, .. } => Some(to.clone()),
            Change::WriteFile { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn plan_binds_viostor_per_windows_version() {
    // Windows Server 2008 R2: CriticalDeviceDatabase, 2k8R2 drivers, no DriverDatabase.
    let (_g, plan) = plan_only(&[guest("2k8r2")], &opts(), &Default::default()).unwrap();
    let plan = plan.unwrap();
    assert!(plan.refusals.is_empty(), "{:?}", plan.refusals);
    let regs = reg_sets(&plan);
    let has = |k: &str, n: &str, v: &str| {
        regs.iter()
            .any(|(kk, nn, vv)| kk == k && nn == n && vv == v)
    };
    assert!(
        has(
            "ControlSet001\\Services\\viostor",
            "Start",
            r#"{"type":"dword","data":0}"#
        ),
        "{regs:#?}"
    );
    assert!(has(
        "ControlSet001\\Services\\viostor",
        "Group",
        r#"{"type":"sz","data":"SCSI miniport"}"#
    ));
    assert!(has(
        "ControlSet001\\Services\\viostor",
        "ImagePath",
        r#"{"type":"expand-sz","data":"system32\\drivers\\viostor.sys"}"#
    ));
    for id in ["pci#ven_1af4&dev_1001", "pci#ven_1af4&dev_1042"] {
        let k = format!("ControlSet001\\Control\\CriticalDeviceDatabase\\{id}");
        assert!(
            has(&k, "Service", r#"{"type":"sz","data":"viostor"}"#),
            "{k}"
        );
        assert!(
            has(
                &k,
                "ClassGUID",
                r#"{"type":"sz","data":"{4D36E97B-E325-11CE-BFC1-08002BE10318}"}"#
            ),
            "{k}"
        );
    }
    assert!(!regs.iter().any(|(k, _, _)| k.starts_with("DriverDatabase")));
    let ups = uploads(&plan);
    assert!(
        ups.contains(&"/Windows/System32/drivers/viostor.sys".to_string()),
        "{ups:#?}"
    );
    assert!(ups.contains(&"/Windows/Drivers/VirtIO/NetKVM/netkvm.inf".to_string()));
    let script = plan.actions.iter().find_map(|a| match &a.change {
        Change::WriteFile { path, content, .. } if path.ends_with("firstboot.cmd") => {
            Some(content.clone())
        }
        _ => None,
    });
    let script = script.expect("first-boot script planned");
    // Windows 7 / 2008 R2 pnputil has only the old syntax.
    assert!(
        script.contains("pnputil -i -a \"C:\\Windows\\Drivers\\VirtIO\\NetKVM\\netkvm.inf\""),
        "{script}"
    );
    assert!(plan
        .actions
        .iter()
        .any(|a| a.target().ends_with("Scripts/scripts.ini")));
    // The source's 2k8R2 folder was used, not a fallback.
    assert!(
        !plan.notes.iter().any(|n| n.contains("nearest older")),
        "{:?}",
        plan.notes
    );

    // Windows 10 22H2: DriverDatabase with the real package, no CDD.
    let (_g, plan) = plan_only(&[guest("w10-22h2")], &opts(), &Default::default()).unwrap();
    let plan = plan.unwrap();
    let regs = reg_sets(&plan);
    assert!(!regs
        .iter()
        .any(|(k, _, _)| k.contains("CriticalDeviceDatabase")));
    // The fixture already has oem3.inf and oem7.inf: the next free name is oem8.inf.
    assert!(
        regs.iter().any(
            |(k, n, v)| k == "DriverDatabase\\DeviceIds\\PCI\\VEN_1AF4&DEV_1001"
                && n == "oem8.inf"
                && v.contains("[1,255,0,0]")
        ),
        "{regs:#?}"
    );
    assert!(regs.iter().any(|(k, n, v)| k
        .starts_with("DriverDatabase\\DriverPackages\\viostor.inf_amd64_")
        && k.ends_with("\\Configurations\\viostor_inst")
        && n == "Service"
        && v.contains("viostor")));
    assert!(uploads(&plan).contains(&"/Windows/INF/oem8.inf".to_string()));
    assert!(regs
        .iter()
        .any(|(k, n, v)| k == "ControlSet001\\Services\\VMTools"
            && n == "Start"
            && v.contains("4")));
}

/// Tests that repair w10-22h2 itself take turns: a repair locks its input disk, and a second
/// run on a locked disk fails at once (exit 8) rather than waiting.
static W10_22H2: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Repairs `name` into an overlay and checks it is refused with nothing written.
fn assert_refused(name: &str, o: &PlanOptions, why: &str) {
    let img = guest(name);
    let before = sha(&img);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.qcow2");
    let req = RepairRequest {
        inputs: vec![img.clone()],
        policy: Default::default(),
        writer: Default::default(),
        outputs: vec![out.clone()],
        opts: o.clone(),
    };
    let r = repair(&req, &mut |_, _| {}).unwrap();
    assert_eq!(r.readiness, Readiness::Refused, "{name}");
    assert!(
        r.refusals.iter().any(|x| x.contains(why)),
        "{name}: {:?}",
        r.refusals
    );
    assert!(r.actions.is_empty() && !r.appliance_used);
    assert!(
        !out.exists(),
        "{name}: an overlay was created for a refused repair"
    );
    assert_eq!(sha(&img), before, "{name}: input changed");
}

#[test]
fn trouble_cases_are_refused_with_nothing_written() {
    let _w10 = W10_22H2.lock().unwrap_or_else(|e| e.into_inner());
    assert_refused("w10-hibernated", &opts(), "Fast Startup");
    // A dirty SYSTEM whose log is garbage: no entry can be replayed; the refusal names the hive
    // and what is wrong with its log.
    assert_refused(
        "w10-dirty-hive-badlog",
        &opts(),
        "registry hive SYSTEM (/Windows/System32/config/SYSTEM) has unflushed changes",
    );
    assert_refused(
        "w10-dirty-hive-badlog",
        &opts(),
        "hive is dirty but no transaction log is usable: LOG1 at offset 0x0: no \"regf\" signature",
    );
    assert_refused(
        "w10-22h2",
        &PlanOptions::default(),
        "no virtio-win driver source",
    );
    // A source with only the network driver: no storage driver for this Windows.
    let src = tempfile::tempdir().unwrap();
    common::run_stdout(
        Command::new("cp")
            .arg("-r")
            .arg(virtio_win().join("NetKVM"))
            .arg(src.path()),
    );
    let o = PlanOptions {
        virtio_win: Some(src.path().into()),
        ..Default::default()
    };
    assert_refused("2k8r2", &o, "has no viostor for");
}

/// The NTFS dirty flag alone (its journal clean, as a crash-consistent snapshot leaves it) is
/// repaired, the report says so, and the flag stays set so that Windows checks the volume.
#[test]
fn the_ntfs_dirty_flag_alone_is_repaired_and_kept() {
    let img = guest("w10-dirty");
    let before = sha(&img);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.qcow2");
    let req = RepairRequest {
        inputs: vec![img.clone()],
        policy: revirt::image::OpenPolicy::default().also_folders_of(std::slice::from_ref(&img)),
        writer: Default::default(),
        outputs: vec![out.clone()],
        opts: opts(),
    };
    let r = repair(&req, &mut |_, _| {}).unwrap();
    assert_eq!(
        r.readiness,
        Readiness::Ready,
        "{:?} {:?}",
        r.refusals,
        r.verify
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("NTFS dirty flag is set") && n.contains("chkdsk")),
        "{:?}",
        r.notes
    );
    assert_eq!(sha(&img), before, "input changed");
    let g = revirt::inspect::inspect_with(&[out], &req.policy).unwrap();
    let w = g.inspection.operating_systems[0].windows.clone().unwrap();
    assert!(w.ntfs_dirty && !w.ntfs_log_unclean, "the flag was cleared");
}

fn hive_export(overlay: &Path, hive: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("hive");
    common::run_stdout(
        Command::new("guestfish")
            .env(
                "LIBGUESTFS_BACKEND",
                std::env::var("LIBGUESTFS_BACKEND").unwrap_or_else(|_| "direct".into()),
            )
            .env(
                "LIBGUESTFS_BACKEND_SETTINGS",
                std::env::var("LIBGUESTFS_BACKEND_SETTINGS").unwrap_or_else(|_| "force_tcg".into()),
            )
            .args(["--ro", "--format=qcow2", "-a"])
            .arg(overlay)
            .args([
                "-m",
                "/dev/sda1",
                "download",
                &format!("/Windows/System32/config/{hive}"),
            ])
            .arg(&local),
    );
    common::run_stdout(
        Command::new("hivexregedit")
            .args([
                "--export",
                "--prefix",
                &format!("HKEY_LOCAL_MACHINE\\{hive}"),
            ])
            .arg(&local)
            .arg("\\"),
    )
}

#[test]
fn w10_repair_natively_reads_back_and_is_idempotent() {
    let _w10 = W10_22H2.lock().unwrap_or_else(|e| e.into_inner());
    let img = guest("w10-22h2");
    let before = sha(&img);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w10.qcow2");
    let req = RepairRequest {
        inputs: vec![img.clone()],
        policy: Default::default(),
        writer: Default::default(),
        outputs: vec![out.clone()],
        opts: opts(),
    };
    let r = repair(&req, &mut |_, _| {}).unwrap();
    assert_eq!(r.readiness, Readiness::Ready, "{:#?}", r.verify);
    assert_eq!(
        r.writer.as_deref(),
        Some("native"),
        "libntfs-3g + libhivex, no appliance: {:?}",
        r.writer_reason
    );
    assert!(r
        .actions
        .iter()
        .any(|a| a.target == "HKLM\\SYSTEM\\ControlSet001\\Services\\viostor\\Start"));
    assert_eq!(sha(&img), before, "the input changed");

    // Pure reader: the inspection of the overlay sees the service, the binding and the staging.
    let g = revirt::inspect::inspect_with(std::slice::from_ref(&out), &boot::trust(&img)).unwrap();
    let w = g.inspection.operating_systems[0].windows.clone().unwrap();
    let vs = w
        .drivers
        .iter()
        .find(|d| d.name == "viostor")
        .expect("viostor service");
    assert_eq!(
        (vs.start, vs.service_type, vs.file_present),
        (Some(0), Some(1), Some(true))
    );
    assert_eq!(
        w.virtio_bindings
            .get("PCI\\VEN_1AF4&DEV_1001")
            .map(String::as_str),
        Some("oem8.inf")
    );
    assert!(
        w.staged_drivers.contains(&"NetKVM".to_string()),
        "{:?}",
        w.staged_drivers
    );
    assert!(w.revirt_firstboot);
    assert!(w.guest_tools.iter().all(|t| t.start == Some(4)));

    // Independent reader: hivex's own export of the downloaded hive.
    let reg = hive_export(&out, "SYSTEM");
    let svc = reg
        .split("[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\viostor]")
        .nth(1)
        .expect("viostor key in the export");
    let svc = svc.split("\n[").next().unwrap();
    assert!(
        svc.contains("\"Start\"=dword:00000000")
            && svc.contains("\"Type\"=dword:00000001")
            && svc.contains("\"ErrorControl\"=dword:00000001"),
        "{svc}"
    );
    assert!(reg.contains("[HKEY_LOCAL_MACHINE\\SYSTEM\\DriverDatabase\\DeviceIds\\PCI\\VEN_1AF4&DEV_1042]\n\"oem8.inf\"=hex(3):01,ff,00,00"), "DeviceIds entry missing");
    // The untouched parts of the hive survived the edit.
    assert!(reg.contains("[HKEY_LOCAL_MACHINE\\SYSTEM\\DriverDatabase\\DriverInfFiles\\oem3.inf]"));

    // A second repair plans nothing.
    let (_g, plan) = plan_only(std::slice::from_ref(&out), &opts(), &boot::trust(&img)).unwrap();
    let plan = plan.unwrap();
    assert!(
        plan.actions.is_empty(),
        "second plan: {:#?}",
        plan.actions.iter().map(|a| a.target()).collect::<Vec<_>>()
    );
}

/// (file type, primary sequence number, secondary, stored checksum, computed checksum) of a
/// hive's base block, read by hand (the REGF layout), not by revirt's reader.
fn base_block(hive: &[u8]) -> (u32, u32, u32, u32, u32) {
    let le = |o: usize| u32::from_le_bytes(hive[o..o + 4].try_into().unwrap());
    let mut x = (0..127).fold(0u32, |c, i| c ^ le(4 * i));
    if x == 0 {
        x = 1;
    } else if x == u32::MAX {
        x = u32::MAX - 1;
    }
    assert_eq!(&hive[..4], b"regf");
    (le(28), le(4), le(8), le(508), x)
}

/// The files `paths` of the system partition (at 1 MiB, 40 MiB) of a qcow2 `disk`, read with
/// qemu-img and ntfs-3g's ntfscat (independent of revirt and of the appliance).
fn ntfs_files(disk: &Path, paths: &[&str]) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    common::run(
        Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(disk)
            .arg(&raw),
    );
    let d = std::fs::read(&raw).unwrap();
    let part = dir.path().join("part.raw");
    std::fs::write(&part, &d[1 << 20..41 << 20]).unwrap();
    paths
        .iter()
        .map(|p| common::run(Command::new("ntfscat").arg(&part).arg(p)).stdout)
        .collect()
}

/// The guest whose SYSTEM hive has its last write only in SYSTEM.LOG1 (new format): `revirt
/// repair` (the CLI) into an overlay is ready (exit 0) and leaves the input alone; read back
/// with ntfscat + hivexregedit, the hive holds BOTH the logged values (192.168.10.77 on NIC1,
/// LSI_SAS Start=0; the stale primary has .20 and 3) and revirt's edits (viostor Start=0), its
/// base block is flushed (seq1 == seq2, past the dirty primary's, valid checksum; hivex's commit
/// keeps them equal) and both logs are empty. Undo of an in-place repair: windows_roundtrip.rs.
#[test]
fn a_dirty_hive_is_recovered_from_its_log_and_repaired() {
    let img = guest("w10-dirty-hive");
    let before = sha(&img);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.qcow2");
    let report = dir.path().join("report.json");
    let (code, stdout, stderr) = common::revirt_out(&[
        "repair",
        img.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--virtio-win",
        virtio_win().to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(sha(&img), before, "the input changed");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["readiness"], "ready", "{r}");
    assert!(
        r["notes"]
            .to_string()
            .contains("SYSTEM: recovered 1 log entry (seq 2..2) from LOG1"),
        "{}",
        r["notes"]
    );
    // The original hive and log are kept for undo before they are replaced.
    let hive = "/Windows/System32/config/SYSTEM";
    for t in [hive.to_string(), format!("{hive}.LOG1")] {
        let a = r["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["target"] == t.as_str())
            .unwrap_or_else(|| panic!("no action on {t}: {}", r["actions"]));
        assert_eq!(a["undo"], "restore", "{a}");
        assert!(a["backup"].as_str().is_some_and(|b| b.ends_with(&t)), "{a}");
    }

    let orig = ntfs_files(&img, &[hive]);
    let got = ntfs_files(
        &out,
        &[hive, &format!("{hive}.LOG1"), &format!("{hive}.LOG2")],
    );
    let (_, o1, o2, _, _) = base_block(&orig[0]);
    assert_eq!(o1, o2 + 1, "the fixture's primary is dirty");
    let (ty, s1, s2, stored, computed) = base_block(&got[0]);
    assert_eq!((ty, s1), (0, s2), "flushed primary");
    assert!(s1 > o1, "sequence {s1} not past the dirty primary's {o1}");
    assert_eq!(stored, computed, "base block checksum");
    assert!(got[1].is_empty() && got[2].is_empty(), "logs not emptied");

    let local = dir.path().join("SYSTEM");
    std::fs::write(&local, &got[0]).unwrap();
    let reg = common::run_stdout(
        Command::new("hivexregedit")
            .args(["--export", "--prefix", "HKEY_LOCAL_MACHINE\\SYSTEM"])
            .arg(&local)
            .arg("\\"),
    )
    .replace("\r\n", "\n");
    let key = |k: &str| -> String {
        let head = format!("[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\{k}]\n");
        reg.split(&head)
            .nth(1)
            .unwrap_or_else(|| panic!("{k} not in the export"))
            .split("\n[")
            .next()
            .unwrap()
            .to_string()
    };
    let multi = |s: &str| -> String {
        let b: Vec<String> = s
            .encode_utf16()
            .chain([0, 0])
            .flat_map(u16::to_le_bytes)
            .map(|x| format!("{x:02x}"))
            .collect();
        format!("hex(7):{}", b.join(","))
    };
    let nic =
        key("Services\\Tcpip\\Parameters\\Interfaces\\{5A1C3D2E-8F44-4B8B-9E61-2D3C4B5A6978}");
    assert!(
        nic.contains(&format!("\"IPAddress\"={}", multi("192.168.10.77"))),
        "logged address lost: {nic}"
    );
    // The rest of the key (only in the primary) survived the replay.
    assert!(nic.contains(&format!("\"DefaultGateway\"={}", multi("192.168.10.1"))));
    assert!(key("Services\\LSI_SAS").contains("\"Start\"=dword:00000000"));
    let vs = key("Services\\viostor");
    assert!(
        vs.contains("\"Start\"=dword:00000000") && vs.contains("\"Type\"=dword:00000001"),
        "{vs}"
    );
    assert!(key("Services\\VMTools").contains("\"Start\"=dword:00000004"));

    // revirt's own reader agrees: clean hive, nothing left to recover, verify ready.
    let (code, j, err) = common::revirt_out(&["inspect", "--json", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&j).unwrap();
    let w = &j["operating_systems"][0]["windows"];
    assert_eq!(
        (&w["dirty_hives"], &w["hive_recovery"]),
        (&serde_json::json!([]), &serde_json::json!([]))
    );
    let (code, v, err) = common::revirt_out(&[
        "verify",
        "--virtio-win",
        virtio_win().to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{v}{err}");
}

/// libntfs-3g reads the tenant's NTFS metadata in the caged helper: a volume whose `$MFTMirr`
/// no longer matches `$MFT` (revirt's pure reader never looks at the mirror, so inspection and
/// planning go through) is refused there. With `--writer native` the repair exits 6 and says
/// why; the input is untouched and nothing is left at `--output`.
#[test]
fn ntfs_metadata_that_lies_is_refused_by_the_native_writer() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("mirror.img");
    std::fs::copy(guest("w10-22h2"), &img).unwrap();
    // The boot sector of the system partition (at 1 MiB): cluster size and the mirror's LCN.
    let part = 1u64 << 20;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    use std::os::unix::fs::FileExt;
    let mut boot = [0u8; 512];
    f.read_exact_at(&mut boot, part).unwrap();
    assert_eq!(&boot[3..7], b"NTFS");
    let cluster = u64::from(u16::from_le_bytes([boot[11], boot[12]])) * u64::from(boot[13]);
    let mirr = u64::from_le_bytes(boot[0x38..0x40].try_into().unwrap());
    let at = part + mirr * cluster + 0x100;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
    drop(f);
    let before = sha(&img);
    let out = dir.path().join("out.qcow2");
    let (code, stdout, stderr) = common::revirt_out(&[
        "repair",
        img.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--writer",
        "native",
        "--virtio-win",
        virtio_win().to_str().unwrap(),
    ]);
    assert_eq!(code, 6, "{stdout}{stderr}");
    assert!(stderr.contains("libntfs-3g refused the volume"), "{stderr}");
    assert_eq!(sha(&img), before, "the input changed");
    assert!(!out.exists(), "a refused repair left {}", out.display());
}
