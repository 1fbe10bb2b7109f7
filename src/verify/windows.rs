//! Static boot-readiness check of a Windows guest on virtio (pure Rust over the inspection and
//! the system volume): the boot driver file and its boot-start service, its binding to the
//! virtio PCI ids as this Windows version needs, staged drivers and the first-boot script, and
//! no refused state (hibernated, dirty NTFS), no hive still dirty.
use super::{Finding, Verdict};
use crate::fs::Vfs;
use crate::inspect::windows::facts::VIRTIO_STORAGE_IDS;
use crate::inspect::windows::resolve_ci;
use crate::plan::{BlockBus, PlanOptions};
use crate::types::WindowsInfo;

fn finding(check: &str, file: Option<String>, message: String) -> Finding {
    Finding {
        check: check.into(),
        file,
        line: None,
        message,
    }
}

pub fn verify_windows(w: &WindowsInfo, vfs: &Vfs, opts: &PlanOptions) -> anyhow::Result<Verdict> {
    let mut f = vec![];
    let drv = if opts.block == BlockBus::VirtioBlk {
        "viostor"
    } else {
        "vioscsi"
    };
    let cs = format!("ControlSet{:03}", w.current_control_set.unwrap_or(1));
    let svc_key = format!("HKLM\\SYSTEM\\{cs}\\Services\\{drv}");
    match w.drivers.iter().find(|d| d.name.eq_ignore_ascii_case(drv)) {
        None => f.push(finding(
            "storage",
            Some(svc_key),
            format!("no {drv} service: Windows cannot reach a virtio disk at boot"),
        )),
        Some(s) => {
            if s.start != Some(0) {
                f.push(finding(
                    "storage",
                    Some(svc_key.clone()),
                    format!("{drv} Start={:?}, must be 0 (boot)", s.start),
                ));
            }
            if s.service_type != Some(1) {
                f.push(finding(
                    "storage",
                    Some(svc_key.clone()),
                    format!("{drv} Type={:?}, must be 1 (kernel driver)", s.service_type),
                ));
            }
            if s.file_present != Some(true) {
                f.push(finding(
                    "storage",
                    Some(format!("{}/System32/drivers/{drv}.sys", w.system_root)),
                    format!("{drv}: the file its ImagePath names is missing"),
                ));
            }
        }
    }
    let legacy = (w.major, w.minor) <= (6, 1);
    for (d, id) in VIRTIO_STORAGE_IDS.iter().filter(|(d, _)| *d == drv) {
        match w.virtio_bindings.get(*id) {
            None if legacy => f.push(finding(
                "binding",
                Some(format!(
                    "HKLM\\SYSTEM\\{cs}\\Control\\CriticalDeviceDatabase\\{}",
                    id.replace('\\', "#").to_ascii_lowercase()
                )),
                format!("{id} is not bound to {d} in the CriticalDeviceDatabase"),
            )),
            None => f.push(finding(
                "binding",
                Some(format!("HKLM\\SYSTEM\\DriverDatabase\\DeviceIds\\{id}")),
                format!("{id} has no driver package in the DriverDatabase"),
            )),
            Some(s) if legacy && !s.eq_ignore_ascii_case(d) => f.push(finding(
                "binding",
                None,
                format!("{id} is bound to {s}, not {d}"),
            )),
            Some(inf) if !legacy => {
                if resolve_ci(vfs, &format!("{}/INF/{inf}", w.system_root))?.is_none() {
                    f.push(finding(
                        "binding",
                        Some(format!("{}/INF/{inf}", w.system_root)),
                        format!("{id} points at {inf}, which is not in the INF folder"),
                    ));
                }
            }
            Some(_) => {}
        }
    }
    let netkvm_installed = w
        .drivers
        .iter()
        .any(|d| d.name.eq_ignore_ascii_case("netkvm"));
    if !netkvm_installed {
        if !w
            .staged_drivers
            .iter()
            .any(|d| d.eq_ignore_ascii_case("NetKVM"))
        {
            f.push(finding(
                "drivers",
                Some(format!("{}/Drivers/VirtIO", w.system_root)),
                "the virtio network driver is neither installed nor staged".into(),
            ));
        }
        if !w.revirt_firstboot {
            f.push(finding(
                "firstboot",
                Some(format!(
                    "{}/System32/GroupPolicy/Machine/Scripts/scripts.ini",
                    w.system_root
                )),
                "the first-boot script that installs the staged drivers is not registered".into(),
            ));
        }
    }
    if w.hiberfil.as_deref() == Some("hibernated") {
        f.push(finding(
            "refused",
            Some("/hiberfil.sys".into()),
            "Windows is hibernated".into(),
        ));
    }
    if w.ntfs_log_unclean {
        f.push(finding(
            "refused",
            Some("/$LogFile".into()),
            "the NTFS journal holds unreplayed changes".into(),
        ));
    }
    // Still dirty: Windows would replay its logs at boot, over (or instead of) any edit. A hive
    // revirt recovered and wrote back is flushed (both sequence numbers equal) and not listed.
    for h in &w.dirty_hives {
        let rec = w
            .hive_recovery
            .iter()
            .find(|r| &r.hive == h && r.volume.is_none());
        let path = rec.map_or_else(
            || format!("{}/System32/config/{h}", w.system_root),
            |r| r.path.clone(),
        );
        let (check, what) = match rec.and_then(|r| r.error.as_deref()) {
            Some(e) => ("refused", format!("the {h} hive has unflushed changes that its logs cannot restore: {e}")),
            None => ("dirty-hive", format!("the {h} hive has unflushed changes: its newest data is only in its transaction logs (revirt repair writes it back recovered)")),
        };
        f.push(finding(check, Some(path), what));
    }
    // The dirty flag alone is not a finding: Windows' own chkdsk at boot handles it (an unclean
    // journal is, above).
    for t in &w.guest_tools {
        if t.start != Some(4) {
            f.push(finding(
                "guest-tools",
                Some(format!("HKLM\\SYSTEM\\{cs}\\Services\\{}", t.name)),
                format!("{} is not disabled (Start={:?})", t.name, t.start),
            ));
        }
    }
    Ok(Verdict {
        ready: f.is_empty(),
        findings: f,
    })
}
