//! Windows repair end to end on phony guests built by `cargo xtask fixtures --set windows` (from
//! fixtures/images/windows/, cached under the fixture cache's windows/ folder, keyed by a hash of
//! the recipe folder): the plan's shape per
//! Windows version, refusals that write nothing, and a repair through the appliance read back
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

/// Repairs `name` into an overlay and checks it is refused with nothing written.
fn assert_refused(name: &str, o: &PlanOptions, why: &str) {
    let img = guest(name);
    let before = sha(&img);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.qcow2");
    let req = RepairRequest {
        inputs: vec![img.clone()],
        policy: Default::default(),
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
    assert_refused("w10-hibernated", &opts(), "Fast Startup");
    assert_refused("w10-dirty", &opts(), "NTFS dirty flag");
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
fn w10_repair_through_the_appliance_reads_back_and_is_idempotent() {
    let img = guest("w10-22h2");
    let before = sha(&img);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w10.qcow2");
    let req = RepairRequest {
        inputs: vec![img.clone()],
        policy: Default::default(),
        outputs: vec![out.clone()],
        opts: opts(),
    };
    let r = repair(&req, &mut |_, _| {}).unwrap();
    assert_eq!(r.readiness, Readiness::Ready, "{:#?}", r.verify);
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
