//! Inspection: finds volumes, filesystems and operating systems on the guest's disks and reads
//! what repair needs to know, in pure Rust; the libguestfs appliance is launched only for
//! volumes no pure reader serves (btrfs, striped/thin LVs) and only when no OS was found otherwise.
//!
//! ```text
//! images -> open_image -> detect_partitions -> probe (+ LVM assemble) -> volumes
//!        -> for each volume with a pure reader: looks like a Linux root? a Windows root?
//!        -> detect_linux / detect_windows (mounting fstab entries into a Vfs)
//! ```
pub mod fstab;
pub mod linux;
pub mod windows;

use crate::error::{FsError, ImageError, PartError};
use crate::fs::{open_fs, probe::probe, FsIdent, GuestFs, Vfs};
use crate::image::{open_image, Dev};
use crate::types::{DiskReport, Inspection, OsReport, RootFs, VolumeReport, SCHEMA_VERSION};
use std::path::PathBuf;
use std::rc::Rc;

/// A volume (partition, whole disk or LV) and how to read it.
pub struct Volume {
    pub report: VolumeReport,
    pub dev: Option<Dev>,
    /// Disk the volume sits on (None for LVs), for kernel-name resolution (sdb2 -> disk 1).
    pub disk_index: Option<usize>,
    /// Partition number (None for a whole disk or an LV).
    pub part_number: Option<u32>,
}

/// Inspection failures the CLI maps onto exit codes.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Layout(#[from] PartError),
    #[error("no operating system found on {0}")]
    NoOs(String),
}

/// Everything found, plus the open volumes for later stages (plan/apply need the devices).
pub struct Guest {
    pub inspection: Inspection,
    pub volumes: Vec<Volume>,
}

/// Guest device name of disk `i` in argument order: /dev/sda, /dev/sdb, ...
pub fn disk_device(i: usize) -> String {
    let mut n = i + 1;
    let mut s = String::new();
    while n > 0 {
        n -= 1;
        s.insert(0, (b'a' + (n % 26) as u8) as char);
        n /= 26;
    }
    format!("/dev/sd{s}")
}

/// Scans the disks into volumes: partitions, whole-disk filesystems and LVM LVs.
pub fn scan_volumes(paths: &[PathBuf]) -> Result<(Vec<DiskReport>, Vec<Volume>, Vec<crate::types::VgReport>, Vec<String>), InspectError> {
    let mut disks = vec![];
    let mut vols = vec![];
    let mut warnings = vec![];
    let mut pvs = vec![];
    for (i, path) in paths.iter().enumerate() {
        let (dev, info) = open_image(path)?;
        let ddev = disk_device(i);
        let table = crate::part::detect_partitions(&dev, &ddev)?;
        warnings.extend(table.warnings.iter().cloned());
        let mut candidates: Vec<(String, Dev, Option<u32>, Option<String>, Option<String>)> = vec![];
        if table.kind == "none" {
            candidates.push((ddev.clone(), dev.clone(), None, None, None));
        }
        for p in &table.partitions {
            if p.report.type_name == "extended" {
                continue;
            }
            candidates.push((p.report.device.clone(), p.dev.clone(), Some(p.report.number), p.report.part_uuid.clone(), p.report.name.clone()));
        }
        for (device, d, num, part_uuid, part_label) in candidates {
            let ident = probe(d.as_ref()).map_err(InspectError::Image)?;
            if ident.as_ref().is_some_and(|i| i.fstype == "LVM2_member") {
                if let Some(pv) = crate::lvm::read_pv(&d, &device)? {
                    pvs.push(pv);
                }
            }
            vols.push(new_volume(device, d, ident, Some(i), num, part_uuid, part_label));
        }
        disks.push(DiskReport {
            device: ddev,
            image: info,
            partition_table: table.kind.into(),
            gpt_backup_used: table.gpt_backup_used,
            disk_guid: table.disk_guid,
            partitions: table.partitions.into_iter().map(|p| p.report).collect(),
        });
    }
    let mut vgs = vec![];
    for vg in crate::lvm::assemble(&pvs) {
        warnings.extend(vg.warnings);
        for lv in &vg.report.lvs {
            let mapped = vg.lv_devs.iter().find(|(n, _, _)| *n == lv.device);
            match mapped {
                Some((name, aliases, d)) => {
                    let ident = probe(d.as_ref())?;
                    let mut v = new_volume(name.clone(), d.clone(), ident, None, None, None, None);
                    v.report.aliases = aliases.clone();
                    vols.push(v);
                }
                None => vols.push(Volume {
                    report: VolumeReport {
                        device: lv.device.clone(),
                        aliases: vec![format!("/dev/{}/{}", vg.report.name, lv.name)],
                        size: lv.size,
                        fstype: None,
                        uuid: None,
                        label: None,
                        flags: vec![],
                        reader: "none".into(),
                        part_uuid: None,
                        part_label: None,
                    },
                    dev: None,
                    disk_index: None,
                    part_number: None,
                }),
            }
        }
        vgs.push(vg.report);
    }
    Ok((disks, vols, vgs, warnings))
}

fn new_volume(device: String, dev: Dev, ident: Option<FsIdent>, disk: Option<usize>, num: Option<u32>, part_uuid: Option<String>, part_label: Option<String>) -> Volume {
    let pure = ident.as_ref().is_some_and(|i| matches!(i.fstype.as_str(), "ext2" | "ext3" | "ext4" | "xfs" | "vfat" | "ntfs"));
    Volume {
        report: VolumeReport {
            device,
            aliases: vec![],
            size: dev.size(),
            fstype: ident.as_ref().map(|i| i.fstype.clone()),
            uuid: ident.as_ref().and_then(|i| i.uuid.clone()),
            label: ident.as_ref().and_then(|i| i.label.clone()),
            flags: ident.as_ref().map(|i| i.flags.clone()).unwrap_or_default(),
            reader: if pure { "pure" } else { "none" }.into(),
            part_uuid,
            part_label,
        },
        dev: Some(dev),
        disk_index: disk,
        part_number: num,
    }
}

impl Volume {
    /// Opens this volume's filesystem with a pure reader, if there is one.
    pub fn open_fs(&self) -> Result<Option<Rc<dyn GuestFs>>, FsError> {
        let (Some(dev), Some(fstype)) = (&self.dev, &self.report.fstype) else {
            return Ok(None);
        };
        let ident = FsIdent {
            fstype: fstype.clone(),
            uuid: None,
            label: None,
            flags: vec![],
        };
        open_fs(dev.clone(), &ident)
    }
}

fn root_of(v: &Volume) -> RootFs {
    RootFs {
        device: v.report.device.clone(),
        fstype: v.report.fstype.clone(),
        uuid: v.report.uuid.clone(),
        label: v.report.label.clone(),
    }
}

/// Inspects the guest made of `paths` (several disks form one machine).
pub fn inspect(paths: &[PathBuf]) -> Result<Guest, InspectError> {
    let (disks, mut volumes, vgs, mut warnings) = scan_volumes(paths)?;
    let mut oses = vec![];
    for i in 0..volumes.len() {
        let fs = match volumes[i].open_fs() {
            Ok(Some(fs)) => fs,
            Ok(None) => continue,
            Err(e) => {
                warnings.push(format!("{}: {e}", volumes[i].report.device));
                volumes[i].report.reader = "none".into();
                continue;
            }
        };
        let vfs = Vfs::new(fs.clone());
        if linux::looks_like_linux_root(&vfs) {
            match linux::detect_linux(vfs, &volumes[i], &volumes) {
                Ok(info) => oses.push(OsReport {
                    kind: "linux".into(),
                    root: root_of(&volumes[i]),
                    linux: Some(info),
                    windows: None,
                }),
                Err(e) => warnings.push(format!("{}: Linux root found but not readable: {e:#}", volumes[i].report.device)),
            }
        } else if fs.fstype() == "ntfs" {
            match windows::detect_windows(&vfs) {
                Ok(Some(w)) => oses.push(OsReport {
                    kind: "windows".into(),
                    root: root_of(&volumes[i]),
                    linux: None,
                    windows: Some(w),
                }),
                Ok(None) => {}
                Err(e) => warnings.push(format!("{}: Windows found but not readable: {e:#}", volumes[i].report.device)),
            }
        }
    }
    let inspection = Inspection {
        schema_version: SCHEMA_VERSION,
        revirt_version: env!("CARGO_PKG_VERSION").into(),
        disks,
        volumes: volumes.iter().map(|v| v.report.clone()).collect(),
        volume_groups: vgs,
        operating_systems: oses,
        appliance_used: false,
        warnings,
    };
    Ok(Guest { inspection, volumes })
}
