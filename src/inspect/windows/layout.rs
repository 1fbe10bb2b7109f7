//! Where a Windows guest sits on its disks: MountedDevices letters resolved to partitions (MBR
//! disk signature + byte offset, or the GPT partition GUID), the system volume's letter, and how
//! it boots: UEFI when an ESP on the disks holds \EFI\Microsoft\Boot (with the default entry of
//! its BCD store), else BIOS. Pure reads over the volumes already scanned.
use super::hive::{names_equal, Hive};
use super::resolve_ci;
use crate::fs::{FileType, Vfs};
use crate::inspect::Volume;
use crate::types::{DiskReport, EspInfo, WinBootEntry, WindowsInfo};

/// The BCD object of the Windows Boot Manager (a well-known GUID).
const BOOTMGR: &str = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}";

/// Fills drive_letter_devices, system_drive, firmware, esp and bcd_default of `w`, whose system
/// volume is `root`. Problems reading the ESP become `warnings`, never errors.
pub fn detect_layout(
    w: &mut WindowsInfo,
    root: &str,
    disks: &[DiskReport],
    volumes: &[Volume],
    warnings: &mut Vec<String>,
) {
    for (letter, what) in &w.drive_letters {
        if let Some(dev) = resolve_letter(what, disks) {
            w.drive_letter_devices.insert(letter.clone(), dev);
        }
    }
    w.system_drive = w
        .drive_letter_devices
        .iter()
        .find(|(_, d)| d.as_str() == root)
        .map(|(l, _)| l.clone());
    w.firmware = "bios".into();
    // The ESP on the system volume's disk first, then on any other disk.
    let root_disk = volumes
        .iter()
        .find(|v| v.report.device == root)
        .and_then(|v| v.report.disk_index);
    let mut esps: Vec<&Volume> = volumes
        .iter()
        .filter(|v| is_esp(v, disks) && v.report.fstype.as_deref() == Some("vfat"))
        .collect();
    esps.sort_by_key(|v| v.report.disk_index != root_disk);
    for v in esps {
        let fs = match v.open_fs() {
            Ok(Some(fs)) => fs,
            Ok(None) => continue,
            Err(e) => {
                warnings.push(format!("{}: ESP not readable: {e}", v.report.device));
                continue;
            }
        };
        let vfs = Vfs::new(fs);
        let Ok(Some(boot)) = resolve_ci(&vfs, "/EFI/Microsoft/Boot") else {
            continue;
        };
        w.firmware = "uefi".into();
        let mut efi_files = vec![];
        list_efi(&vfs, "/EFI", 0, &mut efi_files);
        let has_fallback = efi_files
            .iter()
            .any(|f| f.eq_ignore_ascii_case("/EFI/Boot/bootx64.efi"));
        w.esp = Some(EspInfo {
            device: v.report.device.clone(),
            efi_files,
            has_fallback,
        });
        match resolve_ci(&vfs, &format!("{boot}/BCD")) {
            Ok(Some(p)) => match read_bcd(&vfs, &p, &v.report.device, w, warnings) {
                Ok(e) => w.bcd_default = e,
                Err(e) => warnings.push(format!("{}: {e:#}", v.report.device)),
            },
            Ok(None) => warnings.push(format!(
                "{}: {boot} has no BCD store: Windows Boot Manager will not find Windows",
                v.report.device
            )),
            Err(e) => warnings.push(format!("{}: {e:#}", v.report.device)),
        }
        break;
    }
    if w.firmware == "bios" {
        bios_boot(w, root, root_disk, disks, volumes, warnings);
    }
}

/// BIOS: bootmgr and Boot\BCD live on the active partition of the boot disk (the "System
/// Reserved" partition of Windows 7 and later installs) or on the system volume itself.
fn bios_boot(
    w: &mut WindowsInfo,
    root: &str,
    root_disk: Option<usize>,
    disks: &[DiskReport],
    volumes: &[Volume],
    warnings: &mut Vec<String>,
) {
    let active: Vec<&str> = disks
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) == root_disk)
        .flat_map(|(_, d)| d.partitions.iter())
        .filter(|p| p.bootable)
        .map(|p| p.device.as_str())
        .collect();
    let mut cands: Vec<&Volume> = volumes
        .iter()
        .filter(|v| active.contains(&v.report.device.as_str()) || v.report.device == root)
        .collect();
    cands.sort_by_key(|v| !active.contains(&v.report.device.as_str()));
    for v in cands {
        let Ok(Some(fs)) = v.open_fs() else {
            continue;
        };
        let vfs = Vfs::new(fs);
        let Ok(Some(p)) = resolve_ci(&vfs, "/Boot/BCD") else {
            continue;
        };
        w.bios_boot_volume = Some(v.report.device.clone());
        match read_bcd(&vfs, &p, &v.report.device, w, warnings) {
            Ok(e) => w.bcd_default = e,
            Err(e) => warnings.push(format!("{}: {e:#}", v.report.device)),
        }
        return;
    }
}

/// An ESP by partition type (GPT EFI system, MBR 0xef).
fn is_esp(v: &Volume, disks: &[DiskReport]) -> bool {
    let (Some(d), Some(n)) = (v.report.disk_index, v.report.part_number) else {
        return false;
    };
    disks
        .get(d)
        .and_then(|d| d.partitions.iter().find(|p| p.number == n))
        .is_some_and(|p| p.type_name == "efi-system")
}

/// The device of a MountedDevices value as facts.rs renders it ("mbr:SIG@OFFSET", "gpt:{GUID}").
fn resolve_letter(what: &str, disks: &[DiskReport]) -> Option<String> {
    if let Some(rest) = what.strip_prefix("mbr:") {
        let (sig, off) = rest.split_once('@')?;
        let off: u64 = off.parse().ok()?;
        let prefix = format!("{sig}-");
        return disks
            .iter()
            .filter(|d| d.partition_table == "mbr")
            .flat_map(|d| &d.partitions)
            .find(|p| {
                p.start == off
                    && p.part_uuid
                        .as_deref()
                        .is_some_and(|u| u.starts_with(&prefix))
            })
            .map(|p| p.device.clone());
    }
    let guid = what.strip_prefix("gpt:")?.trim_matches(['{', '}']);
    disks
        .iter()
        .flat_map(|d| &d.partitions)
        .find(|p| {
            p.part_uuid
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(guid))
        })
        .map(|p| p.device.clone())
}

/// Lists .efi files under `dir` (a few levels: EFI/VENDOR/Boot/x.efi).
fn list_efi(vfs: &Vfs, dir: &str, depth: usize, out: &mut Vec<String>) {
    let Ok(entries) = vfs.read_dir(dir) else {
        return;
    };
    for e in entries {
        if e.name == "." || e.name == ".." {
            continue;
        }
        let p = format!("{dir}/{}", e.name);
        if e.ftype == FileType::Dir && depth < 3 {
            list_efi(vfs, &p, depth + 1, out);
        } else if e.ftype == FileType::File && e.name.to_ascii_lowercase().ends_with(".efi") {
            out.push(p);
        }
    }
    out.sort();
}

/// The boot manager's default loader (element 23000003) of the BCD hive at `path` on `device`.
/// A dirty store is read as recovered from its logs (recorded in `w.hive_recovery`); revirt
/// never writes the BCD store, so its logs stay for the boot manager.
fn read_bcd(
    vfs: &Vfs,
    path: &str,
    device: &str,
    w: &mut WindowsInfo,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Option<WinBootEntry>> {
    let (bcd, rec): (Hive, _) = super::read_hive_logged(vfs, path, "BCD")?;
    if let Some(mut r) = rec {
        match &r.error {
            Some(e) => warnings.push(format!(
                "{device}: {path}: the BCD store has unflushed changes and its logs cannot be replayed ({e}); read as last flushed"
            )),
            None => warnings.push(format!(
                "{device}: {path}: the BCD store has unflushed changes; read as recovered from its transaction logs"
            )),
        }
        r.volume = Some(device.to_string());
        w.hive_recovery.push(r);
    }
    let element = |obj: &str, el: &str| -> anyhow::Result<Option<String>> {
        Ok(
            match bcd.open_key(&format!("Objects\\{obj}\\Elements\\{el}"))? {
                Some(k) => k.string("Element")?,
                None => None,
            },
        )
    };
    let Some(id) = element(BOOTMGR, "23000003")? else {
        return Ok(None);
    };
    // Object keys are stored in whatever case bcdedit chose; match them case-insensitively.
    let Some(objects) = bcd.open_key("Objects")? else {
        return Ok(None);
    };
    let mut stored = None;
    for k in objects.subkeys()? {
        let name = k.name()?;
        if names_equal(&name, &id) {
            stored = Some(name);
        }
    }
    let Some(obj) = stored else {
        anyhow::bail!("{path}: the default boot entry {id} is not in the BCD store");
    };
    Ok(Some(WinBootEntry {
        id: obj.clone(),
        description: element(&obj, "12000004")?,
        path: element(&obj, "12000002")?,
        system_root: element(&obj, "22000002")?,
    }))
}
