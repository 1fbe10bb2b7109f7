//! Windows repair planner (pure): boot-critical virtio storage, staged drivers installed at
//! first boot, hypervisor tools disabled, and clear refusals.
//!
//! ```text
//! WindowsInfo + WinInputs (hives, file hashes, driver source listing) + PlanOptions
//!     -> plan_windows -> RepairPlan { RegSet / UploadFile / WriteFile actions }
//! ```
//!
//! Boot binding. Windows <= 7 / 2008 R2 binds a boot driver to a new PCI device through
//! `Control\CriticalDeviceDatabase\pci#ven_1af4&dev_1001` (Service + ClassGUID). Windows >= 8
//! has no CDD; early PnP looks the hardware id up in `SYSTEM\DriverDatabase`. virt-v2v writes a
//! made-up "guestor" package there, which pnputil later rejects (error 87) and which breaks
//! feature upgrades. revirt instead registers the REAL virtio-win package: its inf/sys/cat are
//! copied into `System32\DriverStore\FileRepository\viostor.inf_<arch>_<hash>` and the inf to
//! `INF\oemN.inf`, and the DriverDatabase entries (DriverInfFiles, DriverPackages with
//! Configurations/Descriptors, DeviceIds) name that package and its real install section. At
//! first boot `pnputil /add-driver ... /install` re-adds the same package through the real
//! installer, which finds it consistent. No fake package is left behind.
//!
//! Driver source matching: `DRIVER/OS/ARCH` folders as virtio-win names them. The guest's own
//! tag first (w7/2k8R2, w8/2k12, w8.1/2k12R2, w10, w11, 2k16, 2k19, 2k22, 2k25), then the other
//! product line of the same kernel generation (server <-> client), then older generations, newest
//! first. Never a newer one: newer drivers may use kernel exports the guest lacks.
//!
//! Dirty hives (a crash-consistent snapshot: the newest data only in `.LOG1`/`.LOG2`).
//! Inspection read them as recovered from their logs (`inspect::windows::hivelog`), so every
//! fact and every `before` value here is the newest data. The plan first writes each recovered
//! hive back over its primary (an upload from [`RECOVERED_HIVE`], checked by sha256 at apply
//! time) and empties its non-empty logs, both backed up for undo; the registry edits then go
//! onto the recovered hive, and hivex's commit leaves it flushed. A dirty hive no log recovers is
//! refused.
//!
//! First boot without a service wrapper: a machine startup script in the local Group Policy
//! (`System32\GroupPolicy\Machine\Scripts\scripts.ini` + `gpt.ini`), run as SYSTEM before logon.
//! It runs each step once (marker files), logs to `C:\revirt-firstboot.log`, retries a failed
//! step at the next boots (3 tries at most), never reboots by itself, and unregisters itself
//! when every step is done or given up.
use super::{Action, Change, NetworkMode, PlanOptions, RepairPlan, PLAN_SCHEMA_VERSION};
use crate::inspect::windows::facts::FIRSTBOOT_CMDLINE;
use crate::inspect::windows::hive::{Hive, RegData};
use crate::types::{Inspection, OsReport, WindowsInfo};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const SCSI_CLASS_GUID: &str = "{4D36E97B-E325-11CE-BFC1-08002BE10318}";
/// The Group Policy client-side extension pair for scripts (Scripts CSE, its snap-in).
const SCRIPTS_CSE: &str =
    "[{42B5FAAE-6536-11D2-AE5A-0000F87571E3}{40B6664F-4972-11D1-A7CA-0000F87571E3}]";
/// Drivers staged for first boot, besides the block driver (folder names as in virtio-win).
const STAGED: &[&str] = &[
    "NetKVM",
    "Balloon",
    "vioserial",
    "viorng",
    "pvpanic",
    "fwcfg",
    "viostor",
    "vioscsi",
];
/// Guest path (stored case from the planner's point of view) of the staged driver folder.
pub const STAGE_DIR: &str = "Drivers/VirtIO";
pub const FIRSTBOOT_DIR: &str = "/ProgramData/revirt";

/// A registry value to write.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", content = "data", rename_all = "kebab-case")]
pub enum RegValueSpec {
    Sz(String),
    ExpandSz(String),
    MultiSz(Vec<String>),
    Dword(u32),
    Qword(u64),
    Binary(Vec<u8>),
}

impl RegValueSpec {
    /// (REG_* type, bytes as stored).
    pub fn encode(&self) -> (u32, Vec<u8>) {
        let w = |s: &str| -> Vec<u8> {
            s.encode_utf16()
                .chain([0])
                .flat_map(u16::to_le_bytes)
                .collect()
        };
        match self {
            RegValueSpec::Sz(s) => (1, w(s)),
            RegValueSpec::ExpandSz(s) => (2, w(s)),
            RegValueSpec::Binary(b) => (3, b.clone()),
            RegValueSpec::Dword(d) => (4, d.to_le_bytes().to_vec()),
            RegValueSpec::Qword(q) => (11, q.to_le_bytes().to_vec()),
            RegValueSpec::MultiSz(v) => {
                let mut b: Vec<u8> = v.iter().flat_map(|s| w(s)).collect();
                b.extend([0, 0]);
                (7, b)
            }
        }
    }
    /// Short human form for summaries ("dword 0", "sz \"SCSI miniport\"").
    pub fn show(&self) -> String {
        match self {
            RegValueSpec::Sz(v) => format!("sz {v:?}"),
            RegValueSpec::ExpandSz(v) => format!("expand-sz {v:?}"),
            RegValueSpec::MultiSz(v) => format!("multi-sz {v:?}"),
            RegValueSpec::Dword(n) => format!("dword {n}"),
            RegValueSpec::Qword(n) => format!("qword {n}"),
            RegValueSpec::Binary(b) => {
                let hex: Vec<String> = b.iter().take(16).map(|x| format!("{x:02x}")).collect();
                let more = if b.len() > 16 { " ..." } else { "" };
                format!("binary {}{more}", hex.join(" "))
            }
        }
    }
    /// "before -> after" of a registry edit; a missing value shows as "(absent)".
    pub fn change(before: Option<&Self>, after: &Self) -> String {
        format!(
            "{} -> {}",
            before.map_or("(absent)".into(), Self::show),
            after.show()
        )
    }
    /// The spec of a value read from a hive (types revirt never writes become binary).
    pub fn from_data(d: &RegData) -> Self {
        match d {
            RegData::Sz(s) => RegValueSpec::Sz(s.clone()),
            RegData::ExpandSz(s) => RegValueSpec::ExpandSz(s.clone()),
            RegData::MultiSz(v) => RegValueSpec::MultiSz(v.clone()),
            RegData::Dword(n) => RegValueSpec::Dword(*n),
            RegData::Qword(n) => RegValueSpec::Qword(*n),
            RegData::Binary(b) | RegData::Other(_, b) => RegValueSpec::Binary(b.clone()),
        }
    }
    fn matches(&self, d: &RegData) -> bool {
        match (self, d) {
            (RegValueSpec::Sz(a), RegData::Sz(b))
            | (RegValueSpec::ExpandSz(a), RegData::ExpandSz(b)) => a == b,
            (RegValueSpec::MultiSz(a), RegData::MultiSz(b)) => a == b,
            (RegValueSpec::Dword(a), RegData::Dword(b)) => a == b,
            (RegValueSpec::Qword(a), RegData::Qword(b)) => a == b,
            (RegValueSpec::Binary(a), RegData::Binary(b)) => a == b,
            _ => false,
        }
    }
}

/// One driver folder of the source chosen for this guest.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverDir {
    /// "viostor", "NetKVM", ... as in the source.
    pub driver: String,
    /// The OS tag matched ("w10", "2k8R2") and whether it was a fallback.
    pub os_tag: String,
    pub fallback: bool,
    /// The folder as the plan names it: its host path in a folder source, `ISO!/DRIVER/OS/ARCH`
    /// in an ISO (see [`crate::drivers`]).
    pub source_ref: String,
    /// File name -> sha256.
    pub files: BTreeMap<String, String>,
    /// Text of the .inf, when there is one.
    pub inf: Option<(String, String)>,
}

impl DriverDir {
    /// The plan's `from` for the file `name` of this folder; the apply step turns it back into
    /// a host file with [`crate::drivers::materialize`].
    pub fn file_ref(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("{}/{name}", self.source_ref))
    }
}

/// The `from` of the upload that writes a dirty hive back as recovered from its logs: this
/// prefix, then the hive's guest path. There is no host file: the apply step replays the guest's
/// logs again with the pure reader and uploads the result, refusing when its sha256 is not the
/// planned one (the guest changed since the plan).
pub const RECOVERED_HIVE: &str = "recovered-hive:";

/// A dirty system hive that its logs recover, as the planner writes it back.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveredHive {
    /// "SYSTEM", "SOFTWARE".
    pub hive: String,
    /// Stored guest path of the primary file.
    pub path: String,
    /// sha256 of the recovered file (base block flushed, logs applied).
    pub sha256: String,
    /// Stored guest paths of its non-empty logs, which are emptied once it is written back.
    pub logs: Vec<String>,
}

/// What the planner reads, collected beforehand by [`collect_windows_inputs`].
pub struct WinInputs {
    /// The SYSTEM hive as Windows would load it (recovered from its logs when dirty).
    pub system: Hive,
    /// Dirty system hives their logs recover (see [`RECOVERED_HIVE`]).
    pub recovered: Vec<RecoveredHive>,
    /// Lowercased guest path -> (stored path, sha256) of files the plan may replace or check.
    pub files: BTreeMap<String, (String, String)>,
    /// Lowercased guest path -> text, for gpt.ini / scripts.ini / the first-boot script.
    pub texts: BTreeMap<String, String>,
    /// Driver folders matched in the source; None when no source was given.
    pub source: Option<Vec<DriverDir>>,
    /// Guest agent MSI in the source (plan reference as for [`DriverDir::file_ref`], sha256).
    pub agent_msi: Option<(PathBuf, String)>,
}

/// virtio-win OS folder tags, oldest generation first: (client, server).
const GENERATIONS: &[(&str, &str)] = &[
    ("w7", "2k8R2"),
    ("w8", "2k12"),
    ("w8.1", "2k12R2"),
    ("w10", "2k16"),
    ("w10", "2k19"),
    ("w10", "2k22"),
    ("w11", "2k22"),
    ("w11", "2k25"),
];

/// Ordered OS folder tags to try for this guest (see the module doc for the fallback order).
pub fn os_tags(w: &WindowsInfo) -> Vec<&'static str> {
    let server = w
        .installation_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("server"));
    let build: u32 = w
        .build
        .as_deref()
        .and_then(|b| b.trim().parse().ok())
        .unwrap_or(0);
    let gen = match (w.major, w.minor) {
        (6, 1) => 0,
        (6, 2) => 1,
        (6, 3) => 2,
        (10, _) if server && build >= 26100 => 7,
        (10, _) if server && build >= 20348 => 5,
        (10, _) if server && build >= 17763 => 4,
        (10, _) if build >= 22000 => 6,
        (10, _) => 3,
        (m, _) if m > 10 => 7,
        _ => return vec![],
    };
    let mut v = vec![];
    for g in (0..=gen).rev() {
        let (c, s) = GENERATIONS[g];
        for t in if server { [s, c] } else { [c, s] } {
            if !v.contains(&t) {
                v.push(t);
            }
        }
    }
    v
}

pub fn arch_dir(arch: &str) -> Option<&'static str> {
    match arch {
        "x86_64" => Some("amd64"),
        "i386" => Some("x86"),
        _ => None,
    }
}

/// Picks `driver`'s folder among `listing` (relative "DRIVER/OS/ARCH" folders of the source).
pub fn match_driver(
    listing: &[String],
    driver: &str,
    w: &WindowsInfo,
) -> Option<(String, String, bool)> {
    let arch = arch_dir(&w.arch)?;
    let tags = os_tags(w);
    for (i, tag) in tags.iter().enumerate() {
        let want = format!("{driver}/{tag}/{arch}");
        if let Some(found) = listing.iter().find(|l| l.eq_ignore_ascii_case(&want)) {
            return Some((found.clone(), tag.to_string(), i > 0));
        }
    }
    None
}

/// Install section and hardware ids of an inf's models sections for `arch` ("amd64"/"x86").
pub fn inf_models(inf: &str, arch: &str) -> (Option<String>, Vec<String>) {
    let nt = if arch == "amd64" { "ntamd64" } else { "ntx86" };
    let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut cur = String::new();
    for line in inf.lines() {
        let l = line.split(';').next().unwrap_or("").trim();
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            cur = s.trim().to_ascii_lowercase();
        } else if !l.is_empty() {
            sections.entry(cur.clone()).or_default().push(l.to_string());
        }
    }
    let mut models = vec![];
    for m in sections.get("manufacturer").into_iter().flatten() {
        let Some((_, rhs)) = m.split_once('=') else {
            continue;
        };
        let mut parts = rhs.split(',').map(|p| p.trim().to_ascii_lowercase());
        let base = parts.next().unwrap_or_default();
        let decorated: Vec<String> = parts
            .filter(|p| p.starts_with(nt))
            .map(|p| format!("{base}.{p}"))
            .collect();
        models.extend(decorated);
        models.push(base);
    }
    let mut section = None;
    let mut ids = vec![];
    for m in models {
        for l in sections.get(&m).into_iter().flatten() {
            let Some((_, rhs)) = l.split_once('=') else {
                continue;
            };
            let mut p = rhs.split(',').map(str::trim);
            let sec = p.next().unwrap_or("").to_string();
            section.get_or_insert(sec);
            ids.extend(p.filter(|s| !s.is_empty()).map(|s| s.to_ascii_uppercase()));
        }
        if section.is_some() {
            break;
        }
    }
    (section, ids)
}

struct Planner<'a> {
    inp: &'a WinInputs,
    actions: Vec<Action>,
}

impl Planner<'_> {
    fn reg(&mut self, area: &str, key: &str, name: &str, value: RegValueSpec, reason: &str) {
        let current = self
            .inp
            .system
            .open_key(key)
            .ok()
            .flatten()
            .and_then(|k| k.value(name).ok().flatten());
        let current = current.map(|v| v.decode());
        if current.as_ref().is_some_and(|v| value.matches(v)) {
            return;
        }
        self.actions.push(Action {
            area: area.into(),
            change: Change::RegSet {
                hive: "SYSTEM".into(),
                key: key.into(),
                name: name.into(),
                value,
                before: current.as_ref().map(RegValueSpec::from_data),
            },
            reason: reason.into(),
            diff: None,
        });
    }
    fn upload(
        &mut self,
        area: &str,
        from: &std::path::Path,
        to: String,
        sha: &str,
        reason: String,
    ) {
        if self
            .inp
            .files
            .get(&to.to_ascii_lowercase())
            .is_some_and(|(_, s)| s == sha)
        {
            return;
        }
        let to = self.stored(&to);
        self.actions.push(Action {
            area: area.into(),
            change: Change::UploadFile {
                from: from.display().to_string(),
                to,
                sha256: sha.into(),
            },
            reason,
            diff: None,
        });
    }
    fn write(&mut self, area: &str, path: &str, text: String, reason: String) {
        let before = self.inp.texts.get(&path.to_ascii_lowercase());
        if before == Some(&text) {
            return;
        }
        let path = self.stored(path);
        self.actions.push(Action::edit(
            area,
            &path,
            before.map(String::as_str),
            text,
            reason,
        ));
    }
    /// The stored case of an existing guest file, else `p` as given.
    fn stored(&self, p: &str) -> String {
        self.inp
            .files
            .get(&p.to_ascii_lowercase())
            .map(|(s, _)| s.clone())
            .unwrap_or_else(|| p.to_string())
    }
}

/// Paths the planner may touch, for [`collect_windows_inputs`] to hash or read.
pub fn candidate_paths(w: &WindowsInfo, dirs: &[DriverDir]) -> Vec<String> {
    let r = &w.system_root;
    let mut v = vec![
        format!("{FIRSTBOOT_DIR}/firstboot.cmd"),
        format!("{r}/System32/GroupPolicy/gpt.ini"),
        format!("{r}/System32/GroupPolicy/Machine/Scripts/scripts.ini"),
        format!("{FIRSTBOOT_DIR}/scripts.ini.orig"),
    ];
    let arch = arch_dir(&w.arch).unwrap_or("amd64");
    for d in dirs {
        for f in d.files.keys() {
            v.push(format!("{r}/{STAGE_DIR}/{}/{f}", d.driver));
            if d.driver == "viostor" || d.driver == "vioscsi" {
                v.push(format!("{r}/System32/drivers/{f}"));
                if let Some(pkg) = package_name(d, arch) {
                    v.push(format!("{r}/System32/DriverStore/FileRepository/{pkg}/{f}"));
                }
            }
        }
    }
    for i in 1..=OEM_SCAN {
        v.push(format!("{r}/INF/oem{i}.inf"));
    }
    v.push(format!("{r}/{STAGE_DIR}/guest-agent/qemu-ga-x86_64.msi"));
    v.push(format!("{r}/{STAGE_DIR}/guest-agent/qemu-ga-i386.msi"));
    v
}

/// How many oemN.inf names are checked for an earlier copy (idempotency).
const OEM_SCAN: u32 = 64;

/// Driver store folder name of a package: inf name, arch and a content hash, as Windows does.
fn package_name(d: &DriverDir, arch: &str) -> Option<String> {
    let (inf_name, _) = d.inf.as_ref()?;
    let sha = d.files.get(inf_name)?;
    Some(format!(
        "{}_{arch}_{}",
        inf_name.to_ascii_lowercase(),
        &sha[..16.min(sha.len())]
    ))
}

fn oem_inf_for(sys: &Hive, pkg_prefix: &str) -> String {
    let mut max = 0u32;
    if let Ok(Some(k)) = sys.open_key("DriverDatabase\\DriverInfFiles") {
        for sk in k.subkeys().unwrap_or_default() {
            let Ok(name) = sk.name() else { continue };
            let active = sk.string("Active").ok().flatten().unwrap_or_default();
            if active.to_ascii_lowercase().starts_with(pkg_prefix) {
                return name;
            }
            let n = name.to_ascii_lowercase();
            if let Some(num) = n
                .strip_prefix("oem")
                .and_then(|s| s.strip_suffix(".inf"))
                .and_then(|s| s.parse::<u32>().ok())
            {
                max = max.max(num);
            }
        }
    }
    format!("oem{}.inf", max + 1)
}

/// Refusals: states where writing would lose data or cannot work; nothing is written then.
pub fn refusals(
    w: &WindowsInfo,
    os: &OsReport,
    ins: &Inspection,
    inp: &WinInputs,
    opts: &PlanOptions,
) -> Vec<String> {
    let mut r = vec![];
    if w.hiberfil.as_deref() == Some("hibernated") {
        r.push(if w.fast_startup {
            "Windows is hibernated by Fast Startup (hiberfil.sys holds a saved session, HiberbootEnabled=1): boot it on the source and shut down with `shutdown /s /t 0`, or disable Fast Startup (powercfg /h off), then snapshot again".to_string()
        } else {
            "Windows is hibernated (hiberfil.sys holds a saved session): resume and shut it down on the source, then snapshot again".to_string()
        });
    }
    if w.ntfs_log_unclean {
        r.push(format!("{}: the NTFS journal ($LogFile) holds metadata changes not yet written to the volume (unclean shutdown or crash-consistent snapshot); only Windows replays it, and mounting it for writing would discard them: boot the source and shut it down cleanly, or snapshot through VSS (an application-consistent snapshot)", os.root.device));
    }
    // A dirty hive is recovered from its logs (see plan_windows); refused only when no log
    // gives a usable entry: editing the stale primary would lose or corrupt settings.
    for h in &w.dirty_hives {
        let rec = w
            .hive_recovery
            .iter()
            .find(|r| &r.hive == h && r.volume.is_none());
        let (path, why) = match rec {
            Some(r) if r.error.is_none() && inp.recovered.iter().any(|x| x.path == r.path) => {
                continue
            }
            Some(r) => (
                r.path.clone(),
                r.error
                    .clone()
                    .unwrap_or_else(|| "its recovery could not be repeated".into()),
            ),
            None => (
                format!("{}/System32/config/{h}", w.system_root),
                "it was not recovered".into(),
            ),
        };
        r.push(format!("registry hive {h} ({path}) has unflushed changes (primary and secondary sequence numbers differ; its newest data is only in its .LOG1/.LOG2 transaction logs) and its logs cannot be replayed: {why}; editing the stale hive could lose or corrupt settings: boot the source and shut it down cleanly (not Fast Startup), or snapshot a cleanly shut down machine"));
    }
    // The dirty flag alone (its journal clean) is repaired: see plan_windows.
    for v in &ins.volumes {
        if v.fstype.as_deref() == Some("BitLocker") {
            r.push(format!("{}: BitLocker-encrypted volume; revirt cannot repair it without the key (decrypt or suspend BitLocker on the source)", v.device));
        }
    }
    for d in &ins.disks {
        // MBR type 0x42, or the GPT LDM metadata/data partition types.
        let ldm = d.partitions.iter().any(|p| {
            p.type_id == "42"
                || p.type_name == "windows-ldm-metadata"
                || p.type_name == "windows-ldm-data"
        });
        if ldm || d.ldm_disk_group.is_some() {
            r.push(format!(
                "{}: dynamic disk (LDM{}); revirt does not repair dynamic disks: convert it to a basic disk on the source or migrate with a tool that reads LDM",
                d.device,
                d.ldm_disk_group
                    .as_deref()
                    .map(|g| format!(", disk group {g}"))
                    .unwrap_or_default()
            ));
        }
    }
    if arch_dir(&w.arch).is_none() {
        r.push(format!(
            "guest architecture {} is not supported (x86 only)",
            w.arch
        ));
    }
    match &inp.source {
        None if opts.virtio_win.is_none() => r.push(
            "no virtio-win driver source: give --virtio-win PATH (the virtio-win folder or ISO) or set VIRTIO_WIN".into(),
        ),
        None => {}
        Some(dirs) => {
            let want = block_driver(opts);
            if !dirs.iter().any(|d| d.driver == want) && os_tags(w).is_empty() {
                r.push(format!(
                    "the driver source has no {want} for {} ({} {}): virtio-win has no drivers for Windows older than 7 / Server 2008 R2; upgrade the guest on the source first",
                    w.product_name, w.version, w.arch
                ));
            } else if !dirs.iter().any(|d| d.driver == want) {
                r.push(format!(
                    "the driver source has no {want} for {} ({} {}); tried {}",
                    w.product_name,
                    w.version,
                    w.arch,
                    os_tags(w)
                        .iter()
                        .map(|t| format!("{want}/{t}/{}", arch_dir(&w.arch).unwrap_or("?")))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    r
}

fn block_driver(opts: &PlanOptions) -> &'static str {
    match opts.block {
        super::BlockBus::VirtioBlk => "viostor",
        super::BlockBus::VirtioScsi => "vioscsi",
    }
}

/// Plans the repair of a Windows OS. Pure: same inputs, same plan.
pub fn plan_windows(
    os: &OsReport,
    ins: &Inspection,
    inp: &WinInputs,
    opts: &PlanOptions,
) -> RepairPlan {
    let w = os
        .windows
        .as_ref()
        .expect("plan_windows needs a Windows OS");
    let mut plan = RepairPlan {
        schema_version: PLAN_SCHEMA_VERSION,
        options: opts.clone(),
        root: os.root.device.clone(),
        actions: vec![],
        refusals: refusals(w, os, ins, inp, opts),
        notes: vec![],
    };
    if !plan.refusals.is_empty() {
        return plan;
    }
    if w.ntfs_dirty {
        // Its journal is clean (else refused above): nothing is lost by writing, and the flag
        // stays set, so Windows checks the volume (autochk) before its first boot completes.
        plan.notes.push(format!("{}: the NTFS dirty flag is set (unclean shutdown or crash-consistent snapshot) but its journal is clean: repaired; the flag is kept, so Windows checks the volume (chkdsk) at its first boot", os.root.device));
    }
    let dirs = inp.source.as_deref().unwrap_or_default();
    let mut p = Planner {
        inp,
        actions: vec![],
    };
    // 0. Dirty hives: written back as recovered from their logs, the logs emptied, before any
    // registry edit (hivex then edits the recovered hive, and Windows never replays the old log
    // entries over those edits).
    for rh in &inp.recovered {
        let Some(rec) = w.hive_recovery.iter().find(|r| r.path == rh.path) else {
            continue;
        };
        let h = &rh.hive;
        let n = rec.entries_applied;
        let entries = if n == 1 { "entry" } else { "entries" };
        let seq = match (rec.first_seq, rec.last_seq) {
            (Some(a), Some(b)) => format!("seq {a}..{b}"),
            _ => "no sequence".into(),
        };
        let logs = rec.logs_used.join("/");
        let format = match rec.format.as_deref() {
            Some("old") => format!(", old-format log, {} dirty pages", rec.pages_applied),
            _ => String::new(),
        };
        plan.notes.push(format!(
            "{h}: recovered {n} log {entries} ({seq}) from {logs}{format}"
        ));
        p.actions.push(Action {
            area: "registry".into(),
            change: Change::UploadFile {
                from: format!("{RECOVERED_HIVE}{}", rh.path),
                to: rh.path.clone(),
                sha256: rh.sha256.clone(),
            },
            reason: format!("{h} has unflushed changes: its newest data ({n} log {entries}, {seq}, from {logs}) is only in its transaction logs; the hive as recovered from them is written back (flushed, both sequence numbers equal) before revirt edits it"),
            diff: None,
        });
        for log in &rh.logs {
            p.actions.push(Action {
                area: "registry".into(),
                change: Change::WriteFile {
                    path: log.clone(),
                    content: String::new(),
                    mode: 0o644,
                },
                reason: format!("already replayed into the written-back {h}: emptied (as Windows leaves an unused log) so its old entries are never replayed over revirt's edits"),
                diff: None,
            });
        }
    }
    let cs = format!("ControlSet{:03}", w.current_control_set.unwrap_or(1));
    let root = w.system_root.clone();
    let arch = arch_dir(&w.arch).unwrap_or("amd64");
    let drv = block_driver(opts);
    let bd = dirs
        .iter()
        .find(|d| d.driver == drv)
        .expect("refusals checked the block driver");
    if bd.fallback {
        plan.notes.push(format!("no {drv} built for this Windows in the source; using the nearest older match {drv}/{}/{arch}", bd.os_tag));
    }
    // 1. The boot-critical driver file and its service.
    let sys_name = format!("{drv}.sys");
    if let Some(sha) = bd.files.get(&sys_name) {
        p.upload(
            "storage",
            &bd.file_ref(&sys_name),
            format!("{root}/System32/drivers/{sys_name}"),
            sha,
            format!(
                "{drv} must load at boot to reach the disk on {}",
                if drv == "viostor" {
                    "virtio-blk"
                } else {
                    "virtio-scsi"
                }
            ),
        );
    }
    let svc = format!("{cs}\\Services\\{drv}");
    let why = format!("boot-start service for {drv}");
    p.reg("storage", &svc, "Type", RegValueSpec::Dword(1), &why);
    p.reg("storage", &svc, "Start", RegValueSpec::Dword(0), &why);
    p.reg(
        "storage",
        &svc,
        "ErrorControl",
        RegValueSpec::Dword(1),
        &why,
    );
    p.reg(
        "storage",
        &svc,
        "Group",
        RegValueSpec::Sz("SCSI miniport".into()),
        &why,
    );
    p.reg(
        "storage",
        &svc,
        "ImagePath",
        RegValueSpec::ExpandSz(format!("system32\\drivers\\{sys_name}")),
        &why,
    );
    // 2. Binding to the virtio PCI ids.
    let (section, mut ids) = bd
        .inf
        .as_ref()
        .map(|(_, t)| inf_models(t, arch))
        .unwrap_or_default();
    for (d, id) in crate::inspect::windows::facts::VIRTIO_STORAGE_IDS {
        if *d == drv && !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }
    if (w.major, w.minor) <= (6, 1) {
        for id in &ids {
            let key = format!(
                "{cs}\\Control\\CriticalDeviceDatabase\\{}",
                id.replace('\\', "#").to_ascii_lowercase()
            );
            let why = format!(
                "Windows {} binds boot devices through the CriticalDeviceDatabase",
                w.version
            );
            p.reg(
                "storage",
                &key,
                "Service",
                RegValueSpec::Sz(drv.into()),
                &why,
            );
            p.reg(
                "storage",
                &key,
                "ClassGUID",
                RegValueSpec::Sz(SCSI_CLASS_GUID.into()),
                &why,
            );
        }
    } else if let (Some((inf_name, inf_text)), Some(section)) = (&bd.inf, &section) {
        let inf_sha = bd.files.get(inf_name).cloned().unwrap_or_default();
        let pkg = package_name(bd, arch).unwrap_or_default();
        let oem = oem_inf_for(&inp.system, &format!("{}_", inf_name.to_ascii_lowercase()));
        let _ = inf_text;
        let why = format!("Windows {} finds the driver for a new boot device in the DriverDatabase; this registers the real virtio-win package {pkg}", w.version);
        let repo = format!("{root}/System32/DriverStore/FileRepository/{pkg}");
        for (f, sha) in &bd.files {
            p.upload(
                "storage",
                &bd.file_ref(f),
                format!("{repo}/{f}"),
                sha,
                format!("driver store copy of {f} for {pkg}"),
            );
        }
        p.upload(
            "storage",
            &bd.file_ref(inf_name),
            format!("{root}/INF/{oem}"),
            &inf_sha,
            format!("{oem} is how Windows names the installed {inf_name}"),
        );
        let db = "DriverDatabase";
        let f = format!("{db}\\DriverInfFiles\\{oem}");
        p.reg(
            "storage",
            &f,
            "",
            RegValueSpec::MultiSz(vec![pkg.clone()]),
            &why,
        );
        p.reg("storage", &f, "Active", RegValueSpec::Sz(pkg.clone()), &why);
        p.reg(
            "storage",
            &f,
            "Configurations",
            RegValueSpec::MultiSz(vec![section.clone()]),
            &why,
        );
        let pk = format!("{db}\\DriverPackages\\{pkg}");
        p.reg("storage", &pk, "", RegValueSpec::Sz(oem.clone()), &why);
        p.reg(
            "storage",
            &pk,
            "InfName",
            RegValueSpec::Sz(inf_name.clone()),
            &why,
        );
        p.reg(
            "storage",
            &pk,
            "Provider",
            RegValueSpec::Sz("Red Hat, Inc.".into()),
            &why,
        );
        let cfg = format!("{pk}\\Configurations\\{section}");
        p.reg(
            "storage",
            &cfg,
            "Service",
            RegValueSpec::Sz(drv.into()),
            &why,
        );
        p.reg("storage", &cfg, "ConfigFlags", RegValueSpec::Dword(0), &why);
        for id in &ids {
            p.reg(
                "storage",
                &format!("{pk}\\Descriptors\\{id}"),
                "Configuration",
                RegValueSpec::Sz(section.clone()),
                &why,
            );
            p.reg(
                "storage",
                &format!("{db}\\DeviceIds\\{id}"),
                &oem,
                RegValueSpec::Binary(vec![1, 0xff, 0, 0]),
                &why,
            );
        }
    } else {
        plan.notes.push(format!("{drv}: the source folder has no readable .inf; only the service is set (Windows {} may not bind it at first boot)", w.version));
    }
    // 3. Every driver staged for first-boot installation.
    let mut steps: Vec<(String, String)> = vec![];
    let win_root = "C:\\Windows";
    for d in dirs.iter().filter(|d| STAGED.contains(&d.driver.as_str())) {
        for (f, sha) in &d.files {
            p.upload(
                "drivers",
                &d.file_ref(f),
                format!("{root}/{STAGE_DIR}/{}/{f}", d.driver),
                sha,
                format!("staged for first-boot install ({}/{})", d.driver, d.os_tag),
            );
        }
        if let Some((inf, _)) = &d.inf {
            let path = format!("{win_root}\\Drivers\\VirtIO\\{}\\{inf}", d.driver);
            let cmd = if (w.major, w.minor) >= (10, 0) {
                format!("pnputil /add-driver \"{path}\" /install")
            } else {
                format!("pnputil -i -a \"{path}\"")
            };
            steps.push((step_name(&d.driver), cmd));
        }
    }
    if let Some((msi, sha)) = &inp.agent_msi {
        let name = msi
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        p.upload(
            "drivers",
            msi,
            format!("{root}/{STAGE_DIR}/guest-agent/{name}"),
            sha,
            "QEMU guest agent, installed at first boot".into(),
        );
        steps.push((
            "guest-agent".into(),
            format!(
                "msiexec /i \"{win_root}\\Drivers\\VirtIO\\guest-agent\\{name}\" /qn /norestart"
            ),
        ));
    }
    // 4. Network.
    if opts.network == NetworkMode::KeepStatic {
        if let Some(i) = w
            .interfaces
            .iter()
            .find(|i| !i.dhcp && !i.addresses.is_empty())
        {
            steps.push(("static-ip".into(), static_ip_step(w, i)));
        }
    } else if w
        .interfaces
        .iter()
        .any(|i| !i.dhcp && !i.addresses.is_empty())
    {
        plan.notes.push("static addresses found in Tcpip\\Parameters\\Interfaces stay on the old adapter; the new virtio adapter uses DHCP (use --network keep-static to move them)".into());
    }
    p.reg(
        "network",
        &format!("{cs}\\Services\\Dhcp"),
        "Start",
        RegValueSpec::Dword(2),
        "the new adapter needs the DHCP client",
    );
    // 5. Hypervisor tools that would fail on KVM.
    for t in &w.guest_tools {
        if t.start != Some(4) {
            p.reg(
                "guest-tools",
                &format!("{cs}\\Services\\{}", t.name),
                "Start",
                RegValueSpec::Dword(4),
                &format!(
                    "{} belongs to another hypervisor's tools and fails on KVM",
                    t.name
                ),
            );
        }
    }
    // Their products are uninstalled at first boot: MSI installs by product code, others by
    // their quiet uninstall command. A failing uninstaller is retried, then given up.
    for u in &w.tool_uninstallers {
        let cmd = if u.msi {
            Some(format!("msiexec /x {} /qn /norestart", u.key))
        } else {
            u.command.clone()
        };
        match cmd {
            Some(c) => steps.push((step_name(&format!("uninstall-{}", u.product)), c)),
            None => plan.notes.push(format!(
                "{}: no uninstall command registered; remove it by hand after the first boot",
                u.name
            )),
        }
    }
    if !w.guest_tools.is_empty() && w.tool_uninstallers.is_empty() {
        plan.notes.push("hypervisor tools services are disabled; no registered uninstaller was found, remove their files by hand after the first boot".into());
    }
    // 6. Platform settings: data disks online, bugchecks visible, the clock's convention told.
    p.reg(
        "platform",
        &format!("{cs}\\Services\\partmgr\\Parameters"),
        "SanPolicy",
        RegValueSpec::Dword(1),
        "SAN policy OnlineAll: disks that appear on a new controller come online (the default on servers leaves them offline)",
    );
    p.reg(
        "platform",
        &format!("{cs}\\Control\\CrashControl"),
        "AutoReboot",
        RegValueSpec::Dword(0),
        "a stop error on the first boot stays on screen instead of a silent reboot loop",
    );
    if w.real_time_is_universal != Some(1) {
        plan.notes.push("RealTimeIsUniversal is not set: this Windows keeps the hardware clock in local time; start the VM with a localtime RTC (libvirt <clock offset='localtime'/>, qemu -rtc base=localtime)".into());
    }
    // 7. The first-boot script and its local Group Policy registration.
    if !steps.is_empty() {
        // Whether a scripts.ini existed before revirt: its copy (.orig) tells once revirt ran.
        let ini_key =
            format!("{root}/System32/GroupPolicy/Machine/Scripts/scripts.ini").to_ascii_lowercase();
        let ours = inp.texts.get(&ini_key).is_some_and(|t| {
            t.to_ascii_lowercase()
                .contains(&FIRSTBOOT_CMDLINE.to_ascii_lowercase())
        });
        let had = if ours {
            inp.texts
                .contains_key(&format!("{FIRSTBOOT_DIR}/scripts.ini.orig").to_ascii_lowercase())
        } else {
            inp.texts.contains_key(&ini_key)
        };
        let script = firstboot_script(&steps, had);
        p.write(
            "firstboot",
            &format!("{FIRSTBOOT_DIR}/firstboot.cmd"),
            script,
            "runs the staged driver installs once at first boot".into(),
        );
        let ini_path = format!("{root}/System32/GroupPolicy/Machine/Scripts/scripts.ini");
        let old_ini = inp.texts.get(&ini_path.to_ascii_lowercase()).cloned();
        if !old_ini.as_deref().is_some_and(|t| {
            t.to_ascii_lowercase()
                .contains(&FIRSTBOOT_CMDLINE.to_ascii_lowercase())
        }) {
            if let Some(o) = &old_ini {
                p.write(
                    "firstboot",
                    &format!("{FIRSTBOOT_DIR}/scripts.ini.orig"),
                    o.clone(),
                    "the original scripts.ini, restored by the first-boot script when it is done"
                        .into(),
                );
            }
            p.write("firstboot", &ini_path, scripts_ini(old_ini.as_deref()), "registers the first-boot script as a machine startup script (runs as SYSTEM before logon)".into());
            let gpt = format!("{root}/System32/GroupPolicy/gpt.ini");
            let old = inp.texts.get(&gpt.to_ascii_lowercase()).map(String::as_str);
            p.write("firstboot", &gpt, gpt_ini(old), "enables the scripts extension of the local Group Policy and bumps its version so it is processed".into());
        }
    }
    plan.actions = p.actions;
    plan
}

/// A first-boot step name usable as a batch label and a file name.
fn step_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn static_ip_step(w: &WindowsInfo, i: &crate::types::WinInterface) -> String {
    let addr = &i.addresses[0];
    let mask = i
        .masks
        .first()
        .map(String::as_str)
        .unwrap_or("255.255.255.0");
    let gw = i.gateways.first().map(String::as_str).unwrap_or("none");
    if (w.major, w.minor) >= (6, 2) {
        let prefix: u32 = mask
            .split('.')
            .filter_map(|o| o.parse::<u8>().ok())
            .map(|o| o.count_ones())
            .sum();
        let gw_arg = if gw == "none" {
            String::new()
        } else {
            format!(" -DefaultGateway {gw}")
        };
        let dns = if i.dns.is_empty() {
            String::new()
        } else {
            format!(
                "; Set-DnsClientServerAddress -InterfaceIndex $a.ifIndex -ServerAddresses {}",
                i.dns.join(",")
            )
        };
        format!("powershell -NoProfile -ExecutionPolicy Bypass -Command \"$a = Get-NetAdapter | Where-Object {{ $_.InterfaceDescription -like '*VirtIO*' }} | Select-Object -First 1; if (-not $a) {{ exit 1 }}; New-NetIPAddress -InterfaceIndex $a.ifIndex -IPAddress {addr} -PrefixLength {prefix}{gw_arg}{dns}\"")
    } else {
        format!("for /f \"tokens=2 delims==\" %%n in ('wmic nic where \"Description like '%%VirtIO%%'\" get NetConnectionID /value ^| find \"=\"') do netsh interface ip set address name=\"%%n\" static {addr} {mask} {gw}")
    }
}

/// The first-boot batch file (CRLF). Each step runs until it succeeds (0, or 3010 = done but
/// reboot pending), at most 3 tries over successive boots; the script never reboots.
fn firstboot_script(steps: &[(String, String)], had_scripts_ini: bool) -> String {
    let mut ctx = tera::Context::new();
    let steps: Vec<BTreeMap<&str, &str>> = steps
        .iter()
        .map(|(n, c)| BTreeMap::from([("name", n.as_str()), ("command", c.as_str())]))
        .collect();
    ctx.insert("steps", &steps);
    ctx.insert("had_scripts_ini", &had_scripts_ini);
    let text = super::templates::render("windows/firstboot.cmd.tera", &ctx)
        .expect("windows/firstboot.cmd.tera renders (covered by tests)");
    // cmd.exe wants CRLF line ends.
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// scripts.ini with revirt's startup script appended as the next [Startup] entry.
fn scripts_ini(old: Option<&str>) -> String {
    let old = old.unwrap_or("");
    let mut out = vec![];
    let mut in_startup = false;
    let mut next = 0;
    let mut added = false;
    for line in old.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            if in_startup && !added {
                out.push(format!("{next}CmdLine={FIRSTBOOT_CMDLINE}"));
                out.push(format!("{next}Parameters="));
                added = true;
            }
            in_startup = t.eq_ignore_ascii_case("[Startup]");
        } else if in_startup {
            let n: String = t.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = n.parse::<u32>() {
                next = next.max(n + 1);
            }
        }
        out.push(line.to_string());
    }
    if !added {
        if !in_startup {
            out.push("[Startup]".into());
        }
        out.push(format!("{next}CmdLine={FIRSTBOOT_CMDLINE}"));
        out.push(format!("{next}Parameters="));
    }
    out.join("\r\n") + "\r\n"
}

/// gpt.ini with the scripts extension listed and Version bumped (so the GP client reprocesses).
fn gpt_ini(old: Option<&str>) -> String {
    let mut lines: Vec<String> = old
        .unwrap_or("[General]")
        .lines()
        .map(String::from)
        .collect();
    let mut has_ext = false;
    let mut has_ver = false;
    for l in lines.iter_mut() {
        if let Some(v) = l.trim().strip_prefix("gPCMachineExtensionNames=") {
            has_ext = true;
            if !v.contains("{42B5FAAE-6536-11D2-AE5A-0000F87571E3}") {
                *l = format!("gPCMachineExtensionNames={SCRIPTS_CSE}{v}");
            }
        } else if let Some(v) = l.trim().strip_prefix("Version=") {
            has_ver = true;
            // The low 16 bits count user changes, the high 16 machine changes.
            let n: u32 = v.trim().parse().unwrap_or(0);
            *l = format!("Version={}", n.wrapping_add(0x10000));
        }
    }
    if !has_ext {
        lines.push(format!("gPCMachineExtensionNames={SCRIPTS_CSE}"));
    }
    if !has_ver {
        lines.push("Version=65536".into());
    }
    lines.join("\r\n") + "\r\n"
}

/// Reads the planner's inputs: the SYSTEM hive, hashes and texts of the guest files the plan
/// may touch, and the matching folders of the driver source (the only I/O of planning).
pub fn collect_windows_inputs(
    vfs: &crate::fs::Vfs,
    w: &WindowsInfo,
    opts: &PlanOptions,
) -> anyhow::Result<WinInputs> {
    use crate::apply::sha256_hex;
    use crate::inspect::windows::resolve_ci;
    use anyhow::Context;
    let sys_path = resolve_ci(vfs, &format!("{}/System32/config/SYSTEM", w.system_root))?
        .with_context(|| format!("{}/System32/config/SYSTEM: missing", w.system_root))?;
    let system = crate::inspect::windows::read_hive(vfs, &sys_path)?;
    // Dirty system hives that inspection recovered: recovered again here for the bytes' hash
    // (the apply step repeats it and checks the hash).
    let mut recovered = vec![];
    for rec in w
        .hive_recovery
        .iter()
        .filter(|r| r.volume.is_none() && r.error.is_none())
    {
        let files = crate::inspect::windows::HiveFiles::read(vfs, &rec.path)?;
        let Ok(r) = files.recover() else {
            continue; // refused: the recovery cannot be repeated
        };
        if r.format.is_none() {
            continue; // flushed since inspection
        }
        recovered.push(RecoveredHive {
            hive: rec.hive.clone(),
            path: files.path.clone(),
            sha256: sha256_hex(&r.data),
            logs: files
                .logs
                .iter()
                .filter(|l| !l.data.is_empty())
                .map(|l| l.path.clone())
                .collect(),
        });
    }
    let (source, agent_msi) = match &opts.virtio_win {
        None => (None, None),
        Some(root) => {
            let src = crate::drivers::open(root)?;
            let listing = src
                .list_driver_dirs()
                .with_context(|| format!("listing {}", src.describe()))?;
            let mut dirs = vec![];
            for drv in STAGED {
                let Some((rel, tag, fallback)) = match_driver(&listing, drv, w) else {
                    continue;
                };
                let mut files = BTreeMap::new();
                let mut inf = None;
                for name in src.list_files(&rel)? {
                    let file = format!("{rel}/{name}");
                    let data = src
                        .read(&file)
                        .with_context(|| format!("reading {file} from {}", src.describe()))?
                        .with_context(|| {
                            format!("{}: {file} listed but not found", src.describe())
                        })?;
                    if name.to_ascii_lowercase().ends_with(".inf") {
                        inf = Some((
                            name.clone(),
                            crate::inspect::windows::facts::decode_text(&data),
                        ));
                    }
                    files.insert(name, sha256_hex(&data));
                }
                let driver = rel.split('/').next().unwrap_or(drv).to_string();
                dirs.push(DriverDir {
                    driver,
                    os_tag: tag,
                    fallback,
                    source_ref: src.reference(&rel),
                    files,
                    inf,
                });
            }
            let msi_name = if w.arch == "i386" {
                "qemu-ga-i386.msi"
            } else {
                "qemu-ga-x86_64.msi"
            };
            let msi = format!("guest-agent/{msi_name}");
            let agent = src
                .read(&msi)
                .with_context(|| format!("reading {msi} from {}", src.describe()))?
                .map(|b| (PathBuf::from(src.reference(&msi)), sha256_hex(&b)));
            (Some(dirs), agent)
        }
    };
    let mut files = BTreeMap::new();
    let mut texts = BTreeMap::new();
    for p in candidate_paths(w, source.as_deref().unwrap_or_default()) {
        let Some(stored) = resolve_ci(vfs, &p)? else {
            continue;
        };
        let Ok(data) = vfs.read_file(&stored) else {
            continue;
        };
        if p.ends_with(".ini") || p.ends_with(".cmd") || p.ends_with(".orig") {
            texts.insert(
                p.to_ascii_lowercase(),
                crate::inspect::windows::facts::decode_text(&data),
            );
        }
        files.insert(p.to_ascii_lowercase(), (stored, sha256_hex(&data)));
    }
    Ok(WinInputs {
        system,
        recovered,
        files,
        texts,
        source,
        agent_msi,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win(major: u32, minor: u32, build: &str, server: bool) -> WindowsInfo {
        WindowsInfo {
            major,
            minor,
            build: Some(build.into()),
            installation_type: Some(if server { "Server" } else { "Client" }.into()),
            arch: "x86_64".into(),
            ..Default::default()
        }
    }

    #[test]
    fn os_tags_prefer_exact_then_same_generation_then_older() {
        assert_eq!(os_tags(&win(6, 1, "7601", true)), vec!["2k8R2", "w7"]);
        assert_eq!(
            os_tags(&win(10, 0, "19045", false))[..3],
            ["w10", "2k16", "w8.1"]
        );
        assert_eq!(
            os_tags(&win(10, 0, "17763", true))[..3],
            ["2k19", "w10", "2k16"]
        );
        assert_eq!(os_tags(&win(10, 0, "22631", false))[0], "w11");
        assert_eq!(os_tags(&win(10, 0, "20348", true))[0], "2k22");
        assert!(os_tags(&win(6, 0, "6002", true)).is_empty());
        let listing = vec![
            "viostor/w7/amd64".to_string(),
            "viostor/w10/x86".to_string(),
        ];
        assert_eq!(
            match_driver(&listing, "viostor", &win(6, 1, "7601", true)),
            Some(("viostor/w7/amd64".into(), "w7".into(), true))
        );
        assert_eq!(
            match_driver(&listing, "viostor", &win(10, 0, "19045", false)),
            Some(("viostor/w7/amd64".into(), "w7".into(), true))
        );
        assert_eq!(
            match_driver(&listing, "vioscsi", &win(10, 0, "19045", false)),
            None
        );
    }

    #[test]
    fn inf_models_finds_section_and_ids() {
        let inf = "[Version]\r\nClass=SCSIAdapter\r\n[Manufacturer]\r\n%V% = RH,NTamd64.10.0,NTx86\r\n[RH.NTamd64.10.0]\r\n%D% = viostor_inst, PCI\\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00 ; legacy\r\n%D% = viostor_inst, PCI\\VEN_1AF4&DEV_1042\r\n";
        let (s, ids) = inf_models(inf, "amd64");
        assert_eq!(s.as_deref(), Some("viostor_inst"));
        assert_eq!(
            ids,
            vec![
                "PCI\\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00",
                "PCI\\VEN_1AF4&DEV_1042"
            ]
        );
    }

    #[test]
    fn scripts_and_gpt_ini_merge() {
        let s = scripts_ini(Some(
            "[Startup]\r\n0CmdLine=a.cmd\r\n0Parameters=\r\n[Shutdown]\r\n",
        ));
        assert!(s.contains("0CmdLine=a.cmd\r\n0Parameters=\r\n1CmdLine=C:\\ProgramData\\revirt\\firstboot.cmd\r\n1Parameters=\r\n[Shutdown]"), "{s}");
        assert_eq!(
            scripts_ini(None),
            format!("[Startup]\r\n0CmdLine={FIRSTBOOT_CMDLINE}\r\n0Parameters=\r\n")
        );
        let g = gpt_ini(Some("[General]\r\ngPCMachineExtensionNames=[{35378EAC-683F-11D2-A89A-00C04FBBCFA2}{53D6AB1B-2488-11D1-A28C-00C04FB94F17}]\r\nVersion=3\r\n"));
        assert!(g.contains(&format!("={SCRIPTS_CSE}[{{35378EAC")), "{g}");
        assert!(g.contains("Version=65539"), "{g}");
        assert_eq!(
            gpt_ini(None),
            format!("[General]\r\ngPCMachineExtensionNames={SCRIPTS_CSE}\r\nVersion=65536\r\n")
        );
    }

    #[test]
    fn firstboot_script_steps_are_bounded() {
        let s = firstboot_script(&[("netkvm".into(), "pnputil -i -a x.inf".into())], false);
        assert!(s.contains("set STEP=netkvm\r\ncall :begin\r\nif errorlevel 1 goto :after_netkvm\r\npnputil -i -a x.inf"));
        assert!(s.contains("GEQ 3"));
        assert!(
            !s.to_ascii_lowercase().contains("shutdown"),
            "the script must never reboot"
        );
        assert!(s.contains(
            "del /f /q \"%SystemRoot%\\System32\\GroupPolicy\\Machine\\Scripts\\scripts.ini\""
        ));
    }

    #[test]
    fn reg_values_round_trip_and_show_their_change() {
        for v in [
            RegValueSpec::Sz("x".into()),
            RegValueSpec::ExpandSz("%SystemRoot%".into()),
            RegValueSpec::MultiSz(vec!["a".into(), "b".into()]),
            RegValueSpec::Dword(7),
            RegValueSpec::Qword(1 << 40),
            RegValueSpec::Binary(vec![1, 0xff]),
        ] {
            let (ty, data) = v.encode();
            let raw = crate::inspect::windows::hive::RegValue {
                name: "v".into(),
                ty,
                data,
            };
            assert_eq!(RegValueSpec::from_data(&raw.decode()), v);
        }
        assert_eq!(
            RegValueSpec::change(Some(&RegValueSpec::Dword(3)), &RegValueSpec::Dword(0)),
            "dword 3 -> dword 0"
        );
        assert_eq!(
            RegValueSpec::change(None, &RegValueSpec::Sz("SCSI miniport".into())),
            "(absent) -> sz \"SCSI miniport\""
        );
    }

    #[test]
    fn reg_values_encode_as_windows_stores_them() {
        assert_eq!(RegValueSpec::Dword(1).encode(), (4, vec![1, 0, 0, 0]));
        assert_eq!(
            RegValueSpec::Sz("A".into()).encode(),
            (1, vec![b'A', 0, 0, 0])
        );
        assert_eq!(
            RegValueSpec::MultiSz(vec!["A".into()]).encode(),
            (7, vec![b'A', 0, 0, 0, 0, 0])
        );
    }
}
