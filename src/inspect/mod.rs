//! Inspection: finds volumes, filesystems and operating systems on the guest's disks and reads
//! what repair needs to know, in pure Rust; the libguestfs appliance is launched only for
//! volumes no pure reader serves (btrfs, striped/thin LVs) and only when no OS was found otherwise.
//!
//! ```text
//! images -> open_image -> detect_partitions -> probe (+ LVM assemble) -> volumes
//!        -> for each volume with a pure reader: looks like a Linux root? a Windows root?
//!        -> detect_linux / detect_windows (mounting fstab entries into a Vfs)
//! ```
pub mod apps;
pub mod fstab;
pub mod identity;
pub mod linux;
pub mod rpmdb;
pub mod windows;
pub mod xml;

use crate::error::{FsError, ImageError, PartError};
use crate::fs::{open_fs, probe::probe, FsIdent, GuestFs, Vfs};
use crate::image::{open_image_with, Dev, OpenPolicy};
use crate::types::{DiskReport, Inspection, OsReport, RootFs, VolumeReport, SCHEMA_VERSION};
use std::path::PathBuf;
use std::rc::Rc;

/// A volume (partition, whole disk or LV) and how to read it.
pub struct Volume {
    pub report: VolumeReport,
    pub dev: Option<Dev>,
    /// Set when the volume is served by the libguestfs appliance instead of a pure reader.
    pub appliance_fs: Option<Rc<dyn GuestFs>>,
    /// The volume's bytes as on disk, before any in-memory journal replay (`dev` then reads the
    /// replayed state): what a native writer replays onto the output first.
    pub raw: Option<Dev>,
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
    /// Keys were given for an encrypted volume and none opens it.
    #[error("{device}: none of the {tried} key(s) given for this LUKS volume opens it")]
    WrongKey { device: String, tried: usize },
}

/// Everything found, plus the open volumes for later stages (plan/apply need the devices).
pub struct Guest {
    pub inspection: Inspection,
    pub volumes: Vec<Volume>,
}

impl Guest {
    /// A Vfs over the volume holding `os`'s root (Windows: the system volume).
    pub fn root_vfs(&self, os: &OsReport) -> anyhow::Result<Vfs> {
        use anyhow::Context;
        let v = self
            .volumes
            .iter()
            .find(|v| v.report.device == os.root.device)
            .with_context(|| format!("volume {} vanished", os.root.device))?;
        let fs = v
            .open_fs()?
            .with_context(|| format!("{}: no reader", os.root.device))?;
        Ok(Vfs::new(fs))
    }

    /// Each disk as opened (format and checked backing chain), in argument order: what the
    /// appliance and qemu-img are handed.
    pub fn images(&self) -> Vec<&crate::image::ImageInfo> {
        self.inspection.disks.iter().map(|d| &d.image).collect()
    }
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

/// What [`scan_volumes`] finds: disks, volumes, volume groups, warnings, md arrays.
pub type Scan = (
    Vec<DiskReport>,
    Vec<Volume>,
    Vec<crate::types::VgReport>,
    Vec<String>,
    Vec<crate::types::MdReport>,
);

/// A volume candidate: device name, device, partition number, PARTUUID, partition label.
type Candidate = (String, Dev, Option<u32>, Option<String>, Option<String>);

/// Scans the disks into volumes: partitions, whole-disk filesystems and LVM LVs.
pub fn scan_volumes(paths: &[PathBuf], policy: &OpenPolicy) -> Result<Scan, InspectError> {
    let mut disks = vec![];
    let mut vols = vec![];
    let mut warnings = vec![];
    let mut pvs = vec![];
    let mut md_members = vec![];
    for (i, path) in paths.iter().enumerate() {
        let (dev, info) = open_image_with(path, policy)?;
        let ddev = disk_device(i);
        let table = crate::part::detect_partitions(&dev, &ddev)?;
        warnings.extend(table.warnings.iter().cloned());
        let mut candidates: Vec<Candidate> = vec![];
        if table.kind == "none" {
            candidates.push((ddev.clone(), dev.clone(), None, None, None));
        }
        for p in &table.partitions {
            if p.report.type_name == "extended" {
                continue;
            }
            candidates.push((
                p.report.device.clone(),
                p.dev.clone(),
                Some(p.report.number),
                p.report.part_uuid.clone(),
                p.report.name.clone(),
            ));
        }
        for (device, d, num, part_uuid, part_label) in candidates {
            let mut ident = probe(d.as_ref()).map_err(InspectError::Image)?;
            // An md member with its data at 0 (0.90, 1.0) also probes as the filesystem inside:
            // it is a member, never a volume of its own (a write would change one mirror).
            if let Some(m) = crate::md::read_member(d.as_ref()) {
                ident = Some(crate::fs::FsIdent {
                    fstype: "linux_raid_member".into(),
                    uuid: Some(m.array_uuid.clone()),
                    label: (!m.name.is_empty()).then(|| m.name.clone()),
                    flags: vec![format!("md {}", m.version)],
                });
                md_members.push((device.clone(), d.clone(), m));
            }
            read_pv_into(ident.as_ref(), &d, &device, &mut pvs)?;
            vols.push(new_volume(
                device,
                d,
                ident,
                Some(i),
                num,
                part_uuid,
                part_label,
            ));
            open_luks(&mut vols, &mut pvs, false, policy, &mut warnings)?;
        }
        disks.push(DiskReport {
            device: ddev,
            image: info,
            partition_table: table.kind.into(),
            gpt_backup_used: table.gpt_backup_used,
            disk_guid: table.disk_guid,
            partitions: table.partitions.into_iter().map(|p| p.report).collect(),
            ldm_disk_group: table.ldm_disk_group,
        });
    }
    // md arrays (raid1 read from its freshest member), before LVM: a PV may sit on one.
    let (arrays, md_warnings) = crate::md::assemble(md_members);
    warnings.extend(md_warnings);
    let mut md_reports = vec![];
    for a in arrays {
        if let Some(d) = &a.dev {
            let ident = probe(d.as_ref()).map_err(InspectError::Image)?;
            read_pv_into(ident.as_ref(), d, &a.report.device, &mut pvs)?;
            let mut v = new_volume(
                a.report.device.clone(),
                d.clone(),
                ident,
                None,
                None,
                None,
                None,
            );
            // udev's /dev/md/N link for /dev/mdN.
            if let Some(n) = a
                .report
                .device
                .strip_prefix("/dev/md")
                .filter(|n| !n.starts_with('/'))
            {
                v.report.aliases.push(format!("/dev/md/{n}"));
            }
            vols.push(v);
            open_luks(&mut vols, &mut pvs, false, policy, &mut warnings)?;
        }
        md_reports.push(a.report);
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
                    // LUKS on an LV (an LVM inside it is not assembled again).
                    let mut inner_pvs = vec![];
                    open_luks(&mut vols, &mut inner_pvs, true, policy, &mut warnings)?;
                }
                None => vols.push(Volume {
                    report: VolumeReport {
                        device: lv.device.clone(),
                        aliases: vec![format!("/dev/{}/{}", vg.report.name, lv.name)],
                        size: lv.size,
                        fstype: None,
                        uuid: None,
                        label: None,
                        // needs_appliance: no use sending an LV with a PV missing there.
                        flags: if lv.incomplete {
                            vec![MISSING_PV.into()]
                        } else {
                            vec![]
                        },
                        reader: "none".into(),
                        part_uuid: None,
                        part_label: None,
                        disk_index: None,
                        part_number: None,
                        journal_recovery: None,
                        xfs_log: None,
                        luks: None,
                    },
                    dev: None,
                    appliance_fs: None,
                    raw: None,
                }),
            }
        }
        vgs.push(vg.report);
    }
    Ok((disks, vols, vgs, warnings, md_reports))
}

/// Reads the LVM PV on `dev` into `pvs` when the probe found one.
fn read_pv_into(
    ident: Option<&FsIdent>,
    dev: &Dev,
    device: &str,
    pvs: &mut Vec<crate::lvm::Pv>,
) -> Result<(), PartError> {
    if ident.is_some_and(|i| i.fstype == "LVM2_member") {
        pvs.extend(crate::lvm::read_pv(dev, device)?);
    }
    Ok(())
}

/// Opens the last volume of `vols` if it is LUKS and a key given for it opens it: the
/// plaintext becomes a volume of its own, named as libguestfs names it (`/dev/mapper/cryptsda2`
/// for a partition, `/dev/mapper/luks-UUID` for an LV), and a PV inside it is read for LVM.
/// No key for it: it stays locked (reported, warned). Keys that all fail: an error.
fn open_luks(
    vols: &mut Vec<Volume>,
    pvs: &mut Vec<crate::lvm::Pv>,
    by_uuid: bool,
    policy: &OpenPolicy,
    warnings: &mut Vec<String>,
) -> Result<(), InspectError> {
    let Some(v) = vols.last_mut() else {
        return Ok(());
    };
    let Some(dev) = v
        .dev
        .clone()
        .filter(|_| v.report.fstype.as_deref() == Some("crypto_LUKS"))
    else {
        return Ok(());
    };
    let device = v.report.device.clone();
    let header = match crate::luks::read_header(dev.as_ref()) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(()),
        Err(e) => {
            warnings.push(format!("{device}: encrypted volume stays locked: {e}"));
            v.report.luks = Some(crate::types::LuksReport {
                error: Some(e.to_string()),
                ..Default::default()
            });
            return Ok(());
        }
    };
    let mut rep = crate::types::LuksReport {
        version: header.version,
        uuid: header.uuid.clone(),
        cipher: header.cipher.spec().into(),
        ..Default::default()
    };
    let names: Vec<&str> = std::iter::once(device.as_str())
        .chain(v.report.aliases.iter().map(String::as_str))
        .collect();
    let keys: Vec<_> = policy
        .keys()
        .iter()
        .filter(|k| k.fits(&names, &header.uuid))
        .collect();
    if keys.is_empty() {
        warnings.push(format!(
            "{device}: LUKS{} volume {} stays locked: no key given for it (--key {device}:key:PASS or :file:FILE)",
            header.version, header.uuid
        ));
        rep.error = Some("locked: no key given for it".into());
        v.report.luks = Some(rep);
        return Ok(());
    }
    let mut opened = None;
    for k in &keys {
        match header.unlock(dev.as_ref(), k.secret(), &policy.luks_limits) {
            Ok(Some(key)) => {
                opened = Some(key);
                break;
            }
            Ok(None) => {}
            Err(e) => {
                warnings.push(format!("{device}: encrypted volume stays locked: {e}"));
                rep.error = Some(e.to_string());
                v.report.luks = Some(rep);
                return Ok(());
            }
        }
    }
    let Some(key) = opened else {
        return Err(InspectError::WrongKey {
            device,
            tried: keys.len(),
        });
    };
    let name = if by_uuid {
        format!("/dev/mapper/luks-{}", header.uuid)
    } else {
        let short: String = device
            .strip_prefix("/dev/")
            .unwrap_or(&device)
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        format!("/dev/mapper/crypt{short}")
    };
    let plain: Dev =
        std::sync::Arc::new(crate::luks::CryptDev::new(dev, &header, &key, name.clone()));
    rep.opened_as = Some(name.clone());
    rep.keyslot = Some(key.slot);
    v.report.luks = Some(rep);
    let ident = probe(plain.as_ref())?;
    read_pv_into(ident.as_ref(), &plain, &name, pvs)?;
    vols.push(new_volume(name, plain, ident, None, None, None, None));
    Ok(())
}

fn new_volume(
    device: String,
    dev: Dev,
    ident: Option<FsIdent>,
    disk: Option<usize>,
    num: Option<u32>,
    part_uuid: Option<String>,
    part_label: Option<String>,
) -> Volume {
    let pure = ident.as_ref().is_some_and(|i| {
        matches!(
            i.fstype.as_str(),
            "ext2" | "ext3" | "ext4" | "xfs" | "vfat" | "ntfs"
        )
    });
    let raw = dev.clone();
    let (dev, journal_recovery) = replay_journal(dev, ident.as_ref());
    let xfs_log = ident
        .as_ref()
        .filter(|i| i.fstype == "xfs")
        .and_then(|_| xfs_log(&dev));
    let mut ident = ident;
    if let Some(i) = ident
        .as_mut()
        .filter(|i| i.fstype == "ntfs" && i.label.is_none())
    {
        // NTFS keeps its label in $Volume, not in the boot sector the probe reads.
        i.label = crate::fs::ntfs::Ntfs::open(dev.clone())
            .ok()
            .and_then(|n| n.label().map(String::from));
    }
    Volume {
        report: VolumeReport {
            journal_recovery,
            xfs_log,
            luks: None,
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
            disk_index: disk,
            part_number: num,
        },
        dev: Some(dev),
        appliance_fs: None,
        raw: Some(raw),
    }
}

/// The state of an XFS volume's internal log (None: an external log, not given to revirt).
fn xfs_log(dev: &Dev) -> Option<crate::types::XfsLogReport> {
    let state = crate::fs::xfs::Xfs::open(dev.clone()).and_then(|x| x.log_state());
    match state {
        Ok(None) => None,
        Ok(Some(s)) => Some(crate::types::XfsLogReport {
            needs_recovery: !s.clean,
            head_block: s.head_block,
            tail_block: s.tail_block,
            cycle: s.cycle,
            ..Default::default()
        }),
        Err(e) => Some(crate::types::XfsLogReport {
            error: Some(format!("log unreadable: {e}")),
            ..Default::default()
        }),
    }
}

/// Replays an ext3/ext4 journal that needs recovery in memory, so every reader sees what the
/// kernel would mount (crash-consistent snapshots, issue #7). Returns the device to read.
fn replay_journal(
    dev: Dev,
    ident: Option<&FsIdent>,
) -> (Dev, Option<crate::types::JournalRecovery>) {
    let needs = ident.is_some_and(|i| {
        i.fstype.starts_with("ext") && i.flags.iter().any(|f| f == "needs_recovery")
    });
    if !needs {
        return (dev, None);
    }
    match crate::fs::jbd2::recover(dev.clone()) {
        Ok(Some(r)) => {
            let rep = crate::types::JournalRecovery {
                stats: r.stats.clone(),
                in_memory: true,
                warnings: r.warnings.clone(),
                error: None,
            };
            (r.dev(), Some(rep))
        }
        Ok(None) => (dev, None),
        Err(e) => (
            dev,
            Some(crate::types::JournalRecovery {
                error: Some(e.to_string()),
                ..Default::default()
            }),
        ),
    }
}

impl Volume {
    /// Opens this volume's filesystem with a pure reader, if there is one.
    pub fn open_fs(&self) -> Result<Option<Rc<dyn GuestFs>>, FsError> {
        if let Some(fs) = &self.appliance_fs {
            return Ok(Some(fs.clone()));
        }
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

/// Looks for operating systems on the volumes `which` (indexes into `volumes`).
fn detect_oses(
    volumes: &mut [Volume],
    which: &[usize],
    warnings: &mut Vec<String>,
) -> Vec<OsReport> {
    let mut oses = vec![];
    for &i in which {
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
        let is_ntfs = volumes[i].report.fstype.as_deref() == Some("ntfs");
        if linux::looks_like_linux_root(&vfs) {
            match linux::detect_linux(vfs, &volumes[i], volumes) {
                Ok(info) => {
                    for (dev, alias) in &info.mapper_aliases {
                        if let Some(v) = volumes.iter_mut().find(|v| &v.report.device == dev) {
                            v.report.aliases.push(alias.clone());
                        }
                    }
                    warnings.extend(
                        info.warnings
                            .iter()
                            .map(|w| format!("{}: {w}", volumes[i].report.device)),
                    );
                    oses.push(OsReport {
                        kind: "linux".into(),
                        root: root_of(&volumes[i]),
                        identity: info.identity.clone(),
                        linux: Some(info),
                        windows: None,
                    });
                }
                Err(e) => warnings.push(format!(
                    "{}: Linux root found but not readable: {e:#}",
                    volumes[i].report.device
                )),
            }
        } else if is_ntfs {
            match windows::detect_windows(&vfs) {
                Ok(Some(mut w)) => {
                    // The dirty flag lives in the NTFS volume, not in the Vfs view.
                    if let Some(dev) = &volumes[i].dev {
                        if let Ok(n) = crate::fs::ntfs::Ntfs::open(dev.clone()) {
                            w.ntfs_dirty = n.is_dirty();
                            w.ntfs_log_unclean = n.is_log_unclean();
                        }
                    }
                    oses.push(OsReport {
                        kind: "windows".into(),
                        root: root_of(&volumes[i]),
                        identity: w.identity.clone(),
                        linux: None,
                        windows: Some(w),
                    })
                }
                Ok(None) => {}
                Err(e) => warnings.push(format!(
                    "{}: Windows found but not readable: {e:#}",
                    volumes[i].report.device
                )),
            }
        }
    }
    oses
}

/// Volume flag of an LV with extents on a PV that is not among the given disks.
pub const MISSING_PV: &str = "missing-pv";

/// Filesystems revirt has no pure reader for, which the appliance can serve.
fn needs_appliance(v: &Volume) -> bool {
    if v.report.flags.iter().any(|f| f == MISSING_PV) {
        return false;
    }
    match v.report.fstype.as_deref() {
        Some("btrfs") | Some("jfs") | Some("reiserfs") | Some("f2fs") | Some("zfs_member") => true,
        None => v.dev.is_none() && v.report.disk_index.is_none(), // an LV not mapped in pure Rust
        _ => false,
    }
}

/// Serves the volumes no pure reader handles through one appliance launch, read-only.
fn attach_appliance(
    disks: &[DiskReport],
    volumes: &mut [Volume],
    idx: &[usize],
    warnings: &mut Vec<String>,
) -> Result<Rc<crate::guestfs::Appliance>, crate::guestfs::GuestfsError> {
    tracing::info!(
        "launching the libguestfs appliance for {} volume(s) without a pure reader",
        idx.len()
    );
    let app = Rc::new(crate::guestfs::Appliance::new(&Default::default())?);
    for d in disks {
        let e = crate::image::export::NbdExport::start(&d.image, None, false).map_err(|e| {
            crate::guestfs::GuestfsError {
                op: "export".into(),
                msg: format!("{e:#}"),
            }
        })?;
        app.add_export(e, true)?;
    }
    app.launch()?;
    let fss = app.list_filesystems()?;
    for &i in idx {
        let v = &mut volumes[i];
        // The appliance names LVs /dev/VG/LV; partitions match revirt's /dev/sdXN naming.
        let name = std::iter::once(&v.report.device)
            .chain(v.report.aliases.iter())
            .find(|n| fss.iter().any(|(d, _)| d == *n))
            .cloned();
        let Some(name) = name else {
            warnings.push(format!(
                "{}: not found by the appliance either",
                v.report.device
            ));
            continue;
        };
        let fstype = fss.iter().find(|(d, _)| *d == name).map(|(_, t)| t.clone());
        if v.report.fstype.is_none() {
            v.report.fstype = fstype.filter(|t| t != "unknown");
            v.report.uuid = app.vfs_uuid(&name).ok().filter(|u| !u.is_empty());
            v.report.label = app.vfs_label(&name).ok().filter(|l| !l.is_empty());
        }
        match app.mount_ro(&name) {
            Ok(fs) => {
                v.appliance_fs = Some(Rc::new(fs));
                v.report.reader = "appliance".into();
            }
            Err(e) => warnings.push(format!("{}: {e}", v.report.device)),
        }
    }
    Ok(app)
}

/// Inspects the guest made of `paths` (several disks form one machine).
pub fn inspect(paths: &[PathBuf]) -> Result<Guest, InspectError> {
    inspect_with(paths, &OpenPolicy::default())
}

/// [`inspect`] with the caller's backing-file policy.
pub fn inspect_with(paths: &[PathBuf], policy: &OpenPolicy) -> Result<Guest, InspectError> {
    inspect_impl(paths, policy, true)
}

/// [`inspect_with`] in pure Rust only: volumes without a pure reader stay unread and the
/// appliance is never launched (the fuzz targets run the whole pipeline this way, issue #12).
pub fn inspect_pure(paths: &[PathBuf], policy: &OpenPolicy) -> Result<Guest, InspectError> {
    inspect_impl(paths, policy, false)
}

fn inspect_impl(
    paths: &[PathBuf],
    policy: &OpenPolicy,
    appliance: bool,
) -> Result<Guest, InspectError> {
    let (disks, mut volumes, vgs, mut warnings, md_arrays) = scan_volumes(paths, policy)?;
    let all: Vec<usize> = (0..volumes.len()).collect();
    let mut oses = detect_oses(&mut volumes, &all, &mut warnings);
    let mut appliance_used = false;
    let pending: Vec<usize> = (0..volumes.len())
        .filter(|&i| needs_appliance(&volumes[i]))
        .collect();
    // The appliance costs seconds: only when some volume needs it and the pure pass found no
    // OS, or found one whose fstab mounts a volume only the appliance can read.
    let fstab_needs = oses
        .iter()
        .filter_map(|o| o.linux.as_ref())
        .flat_map(|l| &l.fstab)
        .any(|e| {
            e.resolves_to
                .as_ref()
                .is_some_and(|d| pending.iter().any(|&i| &volumes[i].report.device == d))
        });
    if appliance && !pending.is_empty() && (oses.is_empty() || fstab_needs) {
        match attach_appliance(&disks, &mut volumes, &pending, &mut warnings) {
            Ok(app) => {
                appliance_used = true;
                // Volumes keep the appliance alive through their ApplianceFs handles.
                drop(app);
                if fstab_needs {
                    // Re-read the OSes whose fstab mounts appliance-served volumes.
                    oses.clear();
                    oses = detect_oses(&mut volumes, &all, &mut warnings);
                } else {
                    oses.extend(detect_oses(&mut volumes, &pending, &mut warnings));
                }
            }
            Err(e) => warnings.push(format!("appliance fallback failed: {e}")),
        }
    }
    for os in &mut oses {
        if let Some(w) = os.windows.as_mut() {
            windows::layout::detect_layout(w, &os.root.device, &disks, &volumes, &mut warnings);
        }
    }
    // An encrypted volume can hide the OS itself: say so rather than only "no OS".
    for v in &volumes {
        if v.report.fstype.as_deref() == Some("BitLocker") {
            warnings.push(format!(
                "{}: BitLocker-encrypted volume; its contents cannot be read without the key{}",
                v.report.device,
                if oses.is_empty() {
                    " (the operating system may be on it)"
                } else {
                    ""
                }
            ));
        }
    }
    let inspection = Inspection {
        schema_version: SCHEMA_VERSION,
        revirt_version: env!("CARGO_PKG_VERSION").into(),
        disks,
        volumes: volumes.iter().map(|v| v.report.clone()).collect(),
        volume_groups: vgs,
        md_arrays,
        operating_systems: oses,
        appliance_used,
        warnings,
    };
    Ok(Guest {
        inspection,
        volumes,
    })
}
