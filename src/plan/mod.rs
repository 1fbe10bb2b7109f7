//! Planning: a pure function from what inspection found (plus the text of the files it read) and
//! the options to an ordered list of typed actions. Nothing here touches a disk; `apply` does.
//!
//! ```text
//! Inspection + PlanInputs (file texts, collected by `collect_inputs`) + PlanOptions
//!     -> plan_linux -> RepairPlan { actions: [Action { change, target, reason, diff }] }
//! ```
pub mod bootloader;
pub mod diff;
pub mod fstab;
pub mod initramfs;
pub mod network;
pub mod templates;
pub mod tools;
pub mod windows;

use crate::fs::Vfs;
use crate::types::{Inspection, LinuxInfo, OsReport};
use serde::Serialize;
use std::collections::BTreeMap;

/// Bumped on any incompatible change of the plan/report JSON.
pub const PLAN_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// DHCP on whatever NIC appears.
    #[default]
    Dhcp,
    /// Keep static addresses, moved off the old NIC name and MAC onto the first NIC.
    KeepStatic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BlockBus {
    #[default]
    VirtioBlk,
    VirtioScsi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum InitramfsMode {
    /// Append a cpio segment with the virtio modules (no guest binary runs).
    Offline,
    /// Run the guest's own dracut / update-initramfs / mkinitrd inside the appliance.
    GuestTool,
    /// Offline, falling back to the guest tool.
    #[default]
    Auto,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct PlanOptions {
    pub network: NetworkMode,
    pub block: BlockBus,
    pub initramfs: InitramfsMode,
    /// Add console=tty0 console=ttyS0,115200 to the kernel command line.
    pub serial_console: bool,
    /// Windows: the virtio-win driver source (folder or ISO, see [`crate::drivers::open`]),
    /// from --virtio-win or VIRTIO_WIN.
    pub virtio_win: Option<std::path::PathBuf>,
}

/// Guest file texts the planners need, read once by [`collect_inputs`]. Missing files are absent.
#[derive(Debug, Clone, Default)]
pub struct PlanInputs {
    pub files: BTreeMap<String, String>,
    /// Guest paths that exist (for files whose content is not needed, e.g. a symlink mask).
    pub existing: std::collections::BTreeSet<String>,
    /// Directory listings (entry names) the planners asked for.
    pub dirs: BTreeMap<String, Vec<String>>,
}

impl PlanInputs {
    pub fn text(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }
}

/// One change to the guest. Paths are absolute guest paths.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Change {
    /// Create or replace a text file.
    WriteFile {
        path: String,
        content: String,
        mode: u32,
    },
    /// Move a file aside to an inert name (kept as a backup, no longer read by the guest).
    Rename { from: String, to: String },
    /// Create (or replace) a symlink, e.g. masking a udev rule with /dev/null.
    Symlink { path: String, target: String },
    /// Copy a guest file (binary safe), e.g. the vendor EFI loader to the fallback path.
    CopyFile { from: String, to: String },
    /// Append a newc segment with these guest files (modules and their index) plus `extra`
    /// generated files to the initramfs at `path` (the original is kept with the run's backups).
    AppendInitramfs {
        path: String,
        kernel: String,
        /// Where the kernel's modules live inside the initramfs ("usr/lib/modules/VER").
        modules_dir_in_initramfs: String,
        modules: Vec<String>,
        extra: BTreeMap<String, String>,
    },
    /// Run the guest's initramfs tool for `kernel` inside the appliance.
    RunInitramfsTool {
        kernel: String,
        command: Vec<String>,
    },
    /// Regenerate the bootloader config `config` with the guest's own tool (grub-mkconfig)
    /// inside the appliance, after the planned edits. Those edits already boot: a failing
    /// tool is reported, not fatal, and must leave the edited `config` in place.
    RunBootloaderTool {
        config: String,
        command: Vec<String>,
    },
    /// Windows: set a registry value, creating missing keys. `hive` is "SYSTEM" or "SOFTWARE";
    /// `key` is relative to the hive root, backslash separated, with the real ControlSet00N.
    RegSet {
        hive: String,
        key: String,
        name: String,
        value: windows::RegValueSpec,
        /// The value found before the repair; None when it does not exist.
        before: Option<windows::RegValueSpec>,
    },
    /// Copy a host file (from the driver source) into the guest, binary safe.
    UploadFile {
        from: String,
        to: String,
        sha256: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// What kind of repair: "initramfs", "fstab", "bootloader", "network", "net-rules",
    /// "guest-tools", "selinux", "persist-drivers".
    pub area: String,
    pub change: Change,
    /// Why, in a sentence that names what inspection found.
    pub reason: String,
    /// Unified diff for text edits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Action {
    /// A text-file edit from `before` (None = new file) to `after`, with its diff.
    pub fn edit(
        area: &str,
        path: &str,
        before: Option<&str>,
        after: String,
        reason: String,
    ) -> Action {
        let d = diff::unified(path, before.unwrap_or(""), &after);
        Action {
            area: area.into(),
            change: Change::WriteFile {
                path: path.into(),
                content: after,
                mode: 0o644,
            },
            reason,
            diff: Some(d),
        }
    }
    /// The change's kebab-case name as it appears in the JSON ("write-file", "rename"...).
    pub fn op(&self) -> String {
        serde_json::to_value(&self.change)
            .ok()
            .and_then(|v| v["op"].as_str().map(String::from))
            .unwrap_or_default()
    }

    pub fn target(&self) -> &str {
        match &self.change {
            Change::WriteFile { path, .. }
            | Change::Symlink { path, .. }
            | Change::AppendInitramfs { path, .. } => path,
            Change::Rename { from, .. } | Change::CopyFile { to: from, .. } => from,
            Change::RunInitramfsTool { kernel, .. } => kernel,
            Change::RunBootloaderTool { config, .. } => config,
            Change::RegSet { key, .. } => key,
            Change::UploadFile { to, .. } => to,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RepairPlan {
    pub schema_version: u32,
    pub options: PlanOptions,
    /// Root device of the OS this plan repairs.
    pub root: String,
    pub actions: Vec<Action>,
    /// Why the guest cannot be repaired safely (then `actions` is empty and nothing is written).
    pub refusals: Vec<String>,
    /// Facts that do not block the repair but need a human's look.
    pub notes: Vec<String>,
}

/// Guest paths the planners want to read for this OS.
pub fn wanted_inputs(l: &LinuxInfo) -> Vec<String> {
    let mut v = vec![
        "/etc/fstab".to_string(),
        "/etc/crypttab".to_string(),
        "/.autorelabel".to_string(),
    ];
    v.extend(bootloader::wanted_inputs(l));
    v.extend(network::wanted_inputs(l));
    v.extend(initramfs::wanted_inputs(l));
    v.extend(tools::wanted_inputs(l));
    v.sort();
    v.dedup();
    v
}

/// Reads the planners' inputs from the guest (the only I/O of planning).
pub fn collect_inputs(vfs: &Vfs, l: &LinuxInfo) -> anyhow::Result<PlanInputs> {
    let mut inp = PlanInputs::default();
    for p in wanted_inputs(l) {
        // A path through a regular file (e.g. /etc/sysconfig/network/... on RHEL, where
        // /etc/sysconfig/network is a file) is simply absent.
        if matches!(vfs.lstat(&p), Ok(Some(_))) {
            inp.existing.insert(p.clone());
        }
        if let Ok(Some(t)) = vfs.read_text(&p) {
            inp.files.insert(p, t);
        }
    }
    for d in tools::wanted_dirs(l) {
        if let Ok(entries) = vfs.read_dir(&d) {
            inp.dirs
                .insert(d, entries.into_iter().map(|e| e.name).collect());
        }
    }
    Ok(inp)
}

/// Plans the repair of a Linux OS. Pure: same inputs, same plan.
pub fn plan_linux(
    os: &OsReport,
    ins: &Inspection,
    inputs: &PlanInputs,
    opts: &PlanOptions,
) -> RepairPlan {
    let l = os.linux.as_ref().expect("plan_linux needs a Linux OS");
    let mut plan = RepairPlan {
        schema_version: PLAN_SCHEMA_VERSION,
        options: opts.clone(),
        root: os.root.device.clone(),
        actions: vec![],
        refusals: refusals(l, ins),
        notes: vec![],
    };
    if !plan.refusals.is_empty() {
        return plan;
    }
    plan.actions
        .extend(initramfs::plan_initramfs(l, inputs, opts, &mut plan.notes));
    plan.actions
        .extend(fstab::plan_fstab(l, ins, inputs, &mut plan.notes));
    plan.actions.extend(bootloader::plan_bootloader(
        l,
        ins,
        inputs,
        opts,
        &mut plan.notes,
    ));
    plan.actions
        .extend(network::plan_network(l, inputs, opts, &mut plan.notes));
    plan.actions
        .extend(tools::plan_tools(l, inputs, &mut plan.notes));
    let changed = !plan.actions.is_empty();
    plan.actions.extend(tools::plan_selinux(l, inputs, changed));
    plan
}

/// Guests revirt will not touch: a repair could make things worse or is impossible offline.
fn refusals(l: &LinuxInfo, ins: &Inspection) -> Vec<String> {
    let mut r = vec![];
    // Found and inspected, but the repair steps (initramfs tools, network flavors, bootloader
    // layout) are only known for these families: Arch, Alpine, Gentoo, CoreOS... are refused.
    if !matches!(l.family.as_str(), "rhel" | "suse" | "debian" | "alt") {
        let name = if l.product_name.is_empty() {
            l.identity.distro.as_str()
        } else {
            l.product_name.as_str()
        };
        r.push(format!(
            "distro {} ({name}) is not one revirt repairs: it repairs the RHEL family (RHEL, \
             CentOS, Fedora, Rocky, Alma, Oracle), SUSE (SLES, openSUSE) and Debian (Debian, \
             Ubuntu)",
            if l.distro.is_empty() {
                "unknown"
            } else {
                l.distro.as_str()
            }
        ));
    }
    for u in &l.unreadable {
        r.push(format!("cannot repair from a partial read: {u}"));
    }
    if l.kernels.is_empty() {
        r.push("no kernel found under /boot: nothing to make bootable".into());
    }
    for md in ins.md_arrays.iter().filter(|m| !m.writable) {
        let on_it = mounted_on(ins, l, &md.device);
        if !on_it.is_empty() {
            r.push(format!(
                "{} is on the md RAID array {} ({} of {}, {} found): revirt writes only a raid1 whose every member is here and in sync (a write must reach every mirror alike)",
                on_it.join(", "),
                md.device,
                md.level,
                md.raid_disks,
                md.members.join(", ")
            ));
        }
    }
    for (dev, container) in on_luks(ins, l) {
        let fstype = ins
            .volumes
            .iter()
            .find(|v| v.device == dev)
            .and_then(|v| v.fstype.as_deref())
            .unwrap_or("unknown");
        if !matches!(fstype, "ext2" | "ext3" | "ext4") {
            r.push(format!(
                "{dev} ({fstype}) is on the LUKS volume {container}: revirt writes encrypted volumes only natively, which means ext2/3/4 (the appliance is not given keys)"
            ));
        }
    }
    for v in &ins.volumes {
        if !l.mounts.values().any(|d| d == &v.device) {
            continue;
        }
        // A journal in use is the normal crash-consistent case: replayed (in memory here, by the
        // appliance's mount before it writes). Only a replay that fails is refused.
        match &v.journal_recovery {
            Some(j) if j.error.is_some() => r.push(format!(
                "{}: the ext journal cannot be replayed: {}",
                v.device,
                j.error.as_deref().unwrap_or_default()
            )),
            Some(j) if !j.warnings.is_empty() => r.push(format!(
                "{}: the ext journal is damaged (the guest kernel would refuse to mount it): {}",
                v.device,
                j.warnings.join("; ")
            )),
            None if v.flags.iter().any(|f| f == "needs_recovery") => r.push(format!(
                "{}: the ext journal needs recovery and was not replayed",
                v.device
            )),
            _ => {}
        }
    }
    if l.arch
        .as_deref()
        .is_some_and(|a| a != "x86_64" && a != "i386")
    {
        r.push(format!(
            "guest architecture {} is not supported (x86 only)",
            l.arch.as_deref().unwrap_or("?")
        ));
    }
    r
}

/// The guest's mounts that sit on `dev`: itself, or an LV of a VG with a PV on it.
/// Each mounted device that lies on an opened LUKS volume (directly or as an LV of a VG on
/// it), with that LUKS container's device.
pub fn on_luks(ins: &Inspection, l: &LinuxInfo) -> Vec<(String, String)> {
    let plains = ins.volumes.iter().filter_map(|v| {
        let plain = v.luks.as_ref()?.opened_as.as_deref()?;
        Some((plain, v.device.as_str()))
    });
    stacked_mounts(ins, l, plains)
}

/// Each mounted device that lies on an md array (directly or as an LV), with the array.
pub fn on_md(ins: &Inspection, l: &LinuxInfo) -> Vec<(String, String)> {
    let arrays = ins
        .md_arrays
        .iter()
        .map(|m| (m.device.as_str(), m.device.as_str()));
    stacked_mounts(ins, l, arrays)
}

/// The mounted devices on each `(device, what to name it by)` of `under`.
fn stacked_mounts<'a>(
    ins: &Inspection,
    l: &LinuxInfo,
    under: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![];
    for (dev, what) in under {
        for d in mounted_on(ins, l, dev) {
            if !out.iter().any(|(o, _)| o == d) {
                out.push((d.to_string(), what.to_string()));
            }
        }
    }
    out
}

fn mounted_on<'a>(ins: &Inspection, l: &'a LinuxInfo, dev: &str) -> Vec<&'a str> {
    l.mounts
        .values()
        .filter(|d| {
            *d == dev
                || ins.volume_groups.iter().any(|vg| {
                    vg.pvs.iter().any(|p| p == dev) && vg.lvs.iter().any(|lv| &lv.device == *d)
                })
        })
        .map(String::as_str)
        .collect()
}
