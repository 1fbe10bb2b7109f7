//! Bootloader repair planning: the kernel command line must name the root (and resume) device
//! in a way that survives the move to virtio, the guest should talk on the serial console, and
//! a UEFI guest must boot from a fresh NVRAM.
//!
//! ```text
//! root=/dev/sda1, resume=/dev/disk/by-id/...  -> UUID= of the volume they name (resolve_spec)
//!   in /etc/default/grub (+ GRUB_DISABLE_LINUX_UUID=false), /etc/sysconfig/bootloader *_APPEND,
//!   /etc/kernel/cmdline, grub.cfg linux lines and `set kernelopts`, grubenv kernelopts,
//!   BLS options, GRUB Legacy kernel lines
//! + console=tty0 console=ttyS0,115200 and the network planner's kernel_args
//! device.map (hdN) -> /dev/vdX | /dev/sdX
//! then grub(2)-mkconfig inside the appliance (RunBootloaderTool; the edits already boot)
//! UEFI without \EFI\BOOT\BOOTX64.EFI -> copy the vendor shim (+ grub, MokManager) there
//! ```
//!
//! The generated files are edited directly because the guest's tool cannot always run:
//! virt-v2v 2.2 leaves a Debian guest with GRUB_DISABLE_LINUX_UUID=true and root=/dev/sda1 in
//! grub.cfg unbootable on virtio-blk. Every edit is idempotent: a plan over the repaired files
//! is empty.
mod edit;
#[cfg(test)]
mod tests;

pub use edit::{fix_cmdline, missing_args, CmdlineFix, CONSOLE_ARGS};

use super::templates::render;
use super::{Action, BlockBus, Change, PlanInputs, PlanOptions};
use crate::inspect::fstab::resolve_spec;
use crate::plan::fstab::stable_spec;
use crate::types::{Inspection, LinuxInfo, SpecKind, VolumeReport};
use std::collections::{BTreeMap, BTreeSet};

const GRUB_CFGS: [&str; 2] = ["/boot/grub/grub.cfg", "/boot/grub2/grub.cfg"];
/// Hand-written entries grub-mkconfig copies into grub.cfg verbatim (40_custom is a script
/// that prints its own tail, so it must stay executable); a stale root= there would come back
/// with every regeneration.
const CUSTOM_CFGS: [&str; 3] = [
    "/etc/grub.d/40_custom",
    "/boot/grub/custom.cfg",
    "/boot/grub2/custom.cfg",
];
const DEVICE_MAPS: [&str; 2] = ["/boot/grub/device.map", "/boot/grub2/device.map"];
const DEFAULT_GRUB: &str = "/etc/default/grub";
const SYSCONFIG_BOOTLOADER: &str = "/etc/sysconfig/bootloader";
/// Command line kernel-install (RHEL 9, systemd) copies into new BLS entries.
const KERNEL_CMDLINE: &str = "/etc/kernel/cmdline";
const BLS_DIR: &str = "/boot/loader/entries/";
const ESP_MOUNTS: [&str; 3] = ["/boot/efi", "/efi", "/boot"];

/// How a file holds kernel command lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    DefaultGrub,
    Sysconfig,
    KernelCmdline,
    GrubCfg,
    Grubenv,
    Bls,
    Legacy,
}

impl Kind {
    /// Words that count as already present when deciding what to append: a BLS entry's
    /// `options` lines form one command line; in /etc/default/grub only GRUB_CMDLINE_LINUX
    /// reaches every generated entry (recovery ones too), so GRUB_CMDLINE_LINUX_DEFAULT does
    /// not count, or a regenerated grub.cfg would differ from the edited one; a grub.cfg or
    /// menu.lst decides per entry.
    fn scope(self, text: &str) -> Vec<String> {
        match self {
            Kind::GrubCfg | Kind::Legacy => vec![],
            Kind::DefaultGrub | Kind::Sysconfig => {
                let mut out = vec![];
                map_regions(self, text, &mut |r, append| {
                    if append {
                        out.extend(edit::words(r));
                    }
                    r.to_string()
                });
                out
            }
            _ => region_words(self, text),
        }
    }
}

/// Runs `f(region, append_here)` over the command-line regions of `text`. None when the edited
/// file cannot be written back (a grubenv block without room).
fn map_regions(kind: Kind, text: &str, f: &mut dyn FnMut(&str, bool) -> String) -> Option<String> {
    Some(match kind {
        Kind::GrubCfg => edit::map_grub_cfg(text, f),
        Kind::Bls => edit::map_bls(text, f),
        Kind::Legacy => edit::map_legacy(text, f),
        Kind::KernelCmdline => edit::map_kernel_cmdline(text, f),
        Kind::Grubenv => return edit::edit_grubenv(text, f),
        // GRUB_CMDLINE_LINUX reaches every entry (recovery too): additions go to its last
        // assignment; GRUB_CMDLINE_LINUX_DEFAULT only gets its root=/resume= fixed.
        Kind::DefaultGrub => edit::map_assignments(
            text,
            &|n| n.starts_with("GRUB_CMDLINE_LINUX"),
            &mut |n, v, last| f(v, last && n == "GRUB_CMDLINE_LINUX"),
        ),
        // SLES 11 perl-Bootloader writes menu.lst from DEFAULT_APPEND / FAILSAFE_APPEND...
        Kind::Sysconfig => {
            edit::map_assignments(text, &|n| n.ends_with("_APPEND"), &mut |n, v, last| {
                f(v, last && n == "DEFAULT_APPEND")
            })
        }
    })
}

/// Unquoted words of every command-line region of a file.
fn region_words(kind: Kind, text: &str) -> Vec<String> {
    let mut out = vec![];
    map_regions(kind, text, &mut |r, _| {
        out.extend(edit::words(r));
        r.to_string()
    });
    out
}

fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// BLS entry files the inspection listed (entry sources are "file:line").
fn bls_files(l: &LinuxInfo) -> Vec<String> {
    let mut v = vec![];
    for e in &l.bootloader.entries {
        let file = e
            .source
            .rsplit_once(':')
            .map(|(f, _)| f)
            .unwrap_or(&e.source);
        if file.starts_with(BLS_DIR) && file.ends_with(".conf") {
            push_unique(&mut v, file.to_string());
        }
    }
    v
}

/// The grubenv grub loads: `$prefix/grubenv` beside the real config first (on RHEL 7/8 UEFI
/// /boot/grub2/grubenv is a symlink to the ESP copy: only one of them is edited).
fn grubenv_candidates(l: &LinuxInfo) -> Vec<String> {
    let mut v = vec![];
    if let Some(c) = &l.bootloader.config {
        push_unique(&mut v, format!("{}/grubenv", parent(c)));
    }
    push_unique(&mut v, "/boot/grub2/grubenv".into());
    push_unique(&mut v, "/boot/grub/grubenv".into());
    v
}

/// Files holding kernel command lines, in the order their edits are planned.
fn cmdline_files(l: &LinuxInfo) -> Vec<(String, Kind)> {
    let b = &l.bootloader;
    let mut v = vec![];
    let grub2 = b.kind == "grub2";
    if grub2 {
        v.push((DEFAULT_GRUB.to_string(), Kind::DefaultGrub));
    }
    if grub2 || b.kind == "grub-legacy" {
        v.push((SYSCONFIG_BOOTLOADER.to_string(), Kind::Sysconfig));
    }
    v.push((KERNEL_CMDLINE.to_string(), Kind::KernelCmdline));
    if grub2 {
        let mut cfgs = vec![];
        for c in b.config.iter().chain(b.stub_config.iter()) {
            push_unique(&mut cfgs, c.clone());
        }
        for c in GRUB_CFGS.iter().chain(CUSTOM_CFGS.iter()) {
            push_unique(&mut cfgs, c.to_string());
        }
        v.extend(cfgs.into_iter().map(|c| (c, Kind::GrubCfg)));
        v.extend(
            grubenv_candidates(l)
                .into_iter()
                .map(|c| (c, Kind::Grubenv)),
        );
        v.extend(bls_files(l).into_iter().map(|c| (c, Kind::Bls)));
    }
    if b.kind == "grub-legacy" {
        // menu.lst is often a symlink to grub.conf (RHEL 6): only the config inspection read.
        v.extend(b.config.iter().map(|c| (c.clone(), Kind::Legacy)));
    }
    v
}

/// Files holding kernel command lines that the planner edits (the sources of the boot entries
/// it repairs).
pub fn cmdline_file_paths(l: &LinuxInfo) -> Vec<String> {
    cmdline_files(l).into_iter().map(|(p, _)| p).collect()
}

/// Guest path where the ESP is mounted: from the config path on it, else /etc/fstab.
fn esp_mountpoint(l: &LinuxInfo) -> Option<String> {
    let b = &l.bootloader;
    let esp = b.esp.as_ref()?;
    for p in b.stub_config.iter().chain(b.config.iter()) {
        // ".../EFI/<vendor>/grub.cfg": the part before EFI.
        let comps: Vec<&str> = p.split('/').collect();
        if comps.len() >= 4 && comps[comps.len() - 3].eq_ignore_ascii_case("efi") {
            let mp = comps[..comps.len() - 3].join("/");
            return Some(if mp.is_empty() { "/".into() } else { mp });
        }
    }
    let on_esp = |mp: &str, dev: Option<&str>| {
        ESP_MOUNTS.contains(&mp) && dev.is_some_and(|d| d == esp.device)
    };
    l.fstab
        .iter()
        .find(|e| {
            ESP_MOUNTS.contains(&e.mountpoint.as_str())
                && (e.fstype == "vfat"
                    || e.spec == esp.device
                    || e.resolves_to.as_deref() == Some(esp.device.as_str()))
        })
        .map(|e| e.mountpoint.clone())
        .or_else(|| {
            l.mounts
                .iter()
                .find(|(mp, d)| on_esp(mp, Some(d)))
                .map(|(mp, _)| mp.clone())
        })
}

/// ESP directory names under /EFI holding EFI binaries, except the removable-media BOOT.
fn vendor_dirs(l: &LinuxInfo) -> Vec<String> {
    let mut v = vec![];
    if let Some(esp) = &l.bootloader.esp {
        for f in &esp.efi_files {
            let c: Vec<&str> = f.split('/').collect();
            if let [_, _efi, dir, _file] = c.as_slice() {
                if !dir.eq_ignore_ascii_case("boot") {
                    push_unique(&mut v, dir.to_string());
                }
            }
        }
    }
    v
}

/// Guest files the bootloader planner reads. Absent ones are simply missing from the inputs.
pub fn wanted_inputs(l: &LinuxInfo) -> Vec<String> {
    let mut v: Vec<String> = cmdline_files(l).into_iter().map(|(p, _)| p).collect();
    for extra in [DEFAULT_GRUB, SYSCONFIG_BOOTLOADER] {
        push_unique(&mut v, extra.into());
    }
    if l.bootloader.kind.starts_with("grub") {
        for m in DEVICE_MAPS {
            push_unique(&mut v, m.into());
        }
    }
    if let Some(mp) = esp_mountpoint(l) {
        let mp = mp.trim_end_matches('/');
        for d in vendor_dirs(l) {
            push_unique(&mut v, format!("{mp}/EFI/{d}/grub.cfg"));
        }
        push_unique(&mut v, format!("{mp}/EFI/{}/grub.cfg", boot_dir_name(l)));
    }
    v
}

/// Resolves root=/resume= values to bus-independent ones.
struct Resolver<'a> {
    vols: &'a [VolumeReport],
    fstab_root: Option<&'a VolumeReport>,
    swap: Option<&'a VolumeReport>,
}

impl<'a> Resolver<'a> {
    fn new(l: &LinuxInfo, ins: &'a Inspection) -> Self {
        let vol = |d: &str| ins.volumes.iter().find(|v| v.device == d);
        let fstab_root = l
            .fstab
            .iter()
            .find(|e| e.mountpoint == "/")
            .and_then(|e| e.resolves_to.as_deref())
            .and_then(vol);
        let swaps: BTreeSet<&str> = l
            .fstab
            .iter()
            .filter(|e| e.fstype == "swap")
            .filter_map(|e| e.resolves_to.as_deref())
            .collect();
        let swap = (swaps.len() == 1)
            .then(|| swaps.first().copied())
            .flatten()
            .and_then(vol);
        Resolver {
            vols: &ins.volumes,
            fstab_root,
            swap,
        }
    }

    /// New word for "root=X" / "resume=X", or None to leave it (with a note when it names a
    /// device that is not on these disks).
    fn resolve(&self, word: &str, notes: &mut Vec<String>) -> Option<String> {
        let (k, v) = word.split_once('=')?;
        let (kind, bus_dependent, vol) = resolve_spec(v, self.vols);
        if kind == SpecKind::Virtual {
            return None;
        }
        match vol {
            Some(vol) if bus_dependent => match stable_spec(vol) {
                Some(s) => Some(format!("{k}={s}")),
                None => {
                    notes.push(format!(
                        "kernel command line {word}: {} has neither UUID nor label; left as is",
                        vol.device
                    ));
                    None
                }
            },
            Some(_) => None,
            None => {
                // A name that depends on the bus or on an identity not on these disks; mapper
                // names may only appear once the initramfs opens LUKS/LVM, so they stay.
                let eligible = bus_dependent
                    || matches!(
                        kind,
                        SpecKind::Uuid
                            | SpecKind::Label
                            | SpecKind::Partuuid
                            | SpecKind::Partlabel
                            | SpecKind::ByUuid
                            | SpecKind::ByLabel
                    );
                let (fallback, what) = match k {
                    "root" => (self.fstab_root, "the / entry"),
                    _ => (self.swap, "the swap entry"),
                };
                match fallback.filter(|_| eligible).and_then(stable_spec) {
                    Some(s) => {
                        notes.push(format!(
                            "kernel command line {word} names no volume on these disks; using {what} of /etc/fstab instead: {k}={s}"
                        ));
                        Some(format!("{k}={s}"))
                    }
                    None => {
                        notes.push(format!(
                            "kernel command line {word} names no volume on these disks; left as is"
                        ));
                        None
                    }
                }
            }
        }
    }
}

/// Why a file changed: replaced words, then added ones.
fn describe(before: &[String], after: &[String], fix: &CmdlineFix) -> Vec<String> {
    let mut why = vec![];
    let b: BTreeSet<&String> = before.iter().collect();
    let a: BTreeSet<&String> = after.iter().collect();
    let mut targets = BTreeSet::new();
    for w in &b {
        if let Some(n) = fix.replace.get(*w) {
            why.push(format!("{w} -> {n}"));
            targets.insert(n);
        }
    }
    for e in &fix.ensure {
        if a.contains(e) && !b.contains(e) {
            if let Some(old) = before
                .iter()
                .find(|w| w.split_once('=').map(|x| x.0) == e.split_once('=').map(|x| x.0))
            {
                why.push(format!("{old} -> {e}"));
                targets.insert(e);
            }
        }
    }
    let added: Vec<&str> = after
        .iter()
        .filter(|w| !b.contains(w) && !targets.contains(w))
        .map(String::as_str)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !added.is_empty() {
        why.push(format!("added {}", added.join(" ")));
    }
    why
}

/// Plans the bootloader repair. Pure: reads only `l`, `ins`, `inputs` and `opts`.
pub fn plan_bootloader(
    l: &LinuxInfo,
    ins: &Inspection,
    inputs: &PlanInputs,
    opts: &PlanOptions,
    notes: &mut Vec<String>,
) -> Vec<Action> {
    let b = &l.bootloader;
    let mut actions = vec![];
    match b.kind.as_str() {
        "grub2" | "grub-legacy" => {}
        "none" => notes.push(
            "no bootloader configuration found: the kernel command line was not checked".into(),
        ),
        k => notes.push(format!(
            "bootloader {k}: only /etc/kernel/cmdline is repaired; check its entries by hand"
        )),
    }

    actions.extend(plan_cmdline_files(l, ins, inputs, opts, notes));
    actions.extend(plan_device_maps(l, inputs, opts.block));

    if b.kind == "grub2" && !actions.is_empty() && inputs.text(DEFAULT_GRUB).is_some() {
        if let Some(cfg) = &b.config {
            let tool = if l.family == "debian" {
                "grub-mkconfig"
            } else {
                "grub2-mkconfig"
            };
            actions.push(Action {
                area: "bootloader".into(),
                change: Change::RunBootloaderTool {
                    config: cfg.clone(),
                    command: vec![tool.into(), "-o".into(), cfg.clone()],
                },
                reason: format!(
                    "regenerate {cfg} from the edited {DEFAULT_GRUB} so the guest's own tool agrees with the fixes; the direct edits above already boot if {tool} cannot run"
                ),
                diff: None,
            });
        }
    }

    actions.extend(plan_efi_fallback(l, ins, inputs, notes));
    actions
}

/// Edits of the files holding kernel command lines: root=/resume= that depend on the bus (or
/// name no volume here) become stable names, and the arguments the repair needs are added
/// (serial console, the network planner's `kernel_args`). Pure; verify reports each edit.
pub fn plan_cmdline_files(
    l: &LinuxInfo,
    ins: &Inspection,
    inputs: &PlanInputs,
    opts: &PlanOptions,
    notes: &mut Vec<String>,
) -> Vec<Action> {
    let mut actions = vec![];
    // The files that exist, with the words of their command lines.
    let files: Vec<(String, Kind, &str, Vec<String>)> = {
        let mut grubenv_done = false;
        let mut v = vec![];
        for (p, k) in cmdline_files(l) {
            let Some(text) = inputs.text(&p) else {
                continue;
            };
            if k == Kind::Grubenv {
                if grubenv_done {
                    continue;
                }
                grubenv_done = true;
            }
            let w = region_words(k, text);
            v.push((p, k, text, w));
        }
        v
    };

    let resolver = Resolver::new(l, ins);
    let mut fix = CmdlineFix {
        replace: BTreeMap::new(),
        ensure: super::network::kernel_args(l, opts),
        console: opts.serial_console,
    };
    let mut seen = BTreeSet::new();
    for (_, _, _, words) in &files {
        for w in words {
            if (w.starts_with("root=") || w.starts_with("resume=")) && seen.insert(w.clone()) {
                if let Some(n) = resolver.resolve(w, notes) {
                    fix.replace.insert(w.clone(), n);
                }
            }
        }
    }

    for (path, kind, text, words) in &files {
        let scope = kind.scope(text);
        // RHEL 8 BLS entries say `options $kernelopts ...`: additions go to grubenv's
        // kernelopts (and grub.cfg's fallback), not into every entry.
        let uses_kernelopts = *kind == Kind::Bls
            && words
                .iter()
                .any(|w| w.contains("$kernelopts") || w.contains("${kernelopts}"));
        let Some(mut after) = map_regions(*kind, text, &mut |r, append| {
            fix_cmdline(r, &fix, &scope, append && !uses_kernelopts)
        }) else {
            notes.push(format!(
                "{path}: kernelopts does not fit in the 1024-byte grubenv block; not edited"
            ));
            continue;
        };
        let mut why = vec![];
        if *kind == Kind::DefaultGrub {
            let flipped = edit::enable_linux_uuid(&after);
            if flipped != after {
                why.push(
                    "GRUB_DISABLE_LINUX_UUID=true -> false (grub-mkconfig then writes root=UUID=)"
                        .to_string(),
                );
                after = flipped;
            }
            let has_var = edit::assignments(text)
                .iter()
                .any(|a| a.name == "GRUB_CMDLINE_LINUX");
            let add = missing_args(&fix, &[]);
            if !has_var && !add.is_empty() {
                if !after.is_empty() && !after.ends_with('\n') {
                    after.push('\n');
                }
                after.push_str(&format!("GRUB_CMDLINE_LINUX=\"{}\"\n", add.join(" ")));
            }
        }
        if after == *text {
            continue;
        }
        let after_words = region_words(*kind, &after);
        why.splice(0..0, describe(words, &after_words, &fix));
        let mut action = Action::edit(
            "bootloader",
            path,
            Some(text),
            after,
            format!("{path}: {}", why.join("; ")),
        );
        if path.starts_with("/etc/grub.d/") {
            if let Change::WriteFile { mode, .. } = &mut action.change {
                *mode = 0o755;
            }
        }
        actions.push(action);
    }

    actions
}

/// device.map edits: (hdN) names the disks as the old bus did.
pub fn plan_device_maps(l: &LinuxInfo, inputs: &PlanInputs, bus: BlockBus) -> Vec<Action> {
    let mut actions = vec![];
    if l.bootloader.kind.starts_with("grub") {
        for m in DEVICE_MAPS {
            if let Some(text) = inputs.text(m) {
                let after = edit::edit_device_map(text, bus);
                if after != text {
                    actions.push(Action::edit(
                        "bootloader",
                        m,
                        Some(text),
                        after,
                        format!("{m} names the disks as the old bus did; grub-install and grub-probe stop on devices that do not exist"),
                    ));
                }
            }
        }
    }

    actions
}

/// The stable replacement the planner writes for a `root=`/`resume=` word, or None when the
/// word is fine (or cannot be fixed). Pure; the verify check of every boot entry.
pub fn cmdline_word_fix(l: &LinuxInfo, ins: &Inspection, word: &str) -> Option<String> {
    Resolver::new(l, ins).resolve(word, &mut vec![])
}

/// Name of the removable-media directory as the ESP spells it (FAT ignores case).
fn boot_dir_name(l: &LinuxInfo) -> String {
    l.bootloader
        .esp
        .iter()
        .flat_map(|e| e.efi_files.iter())
        .find_map(|f| {
            let c: Vec<&str> = f.split('/').collect();
            match c.as_slice() {
                [_, _, d, _] if d.eq_ignore_ascii_case("boot") => Some(d.to_string()),
                _ => None,
            }
        })
        .unwrap_or_else(|| "BOOT".into())
}

/// Second stages shim loads from its own directory (grubx64.efi; SUSE's shim loads grub.efi)
/// and MokManager, which shim starts when a MOK request is pending.
const SHIM_COMPANIONS: [&str; 4] = ["grubx64.efi", "grub.efi", "mmx64.efi", "MokManager.efi"];

/// The loader a UEFI guest without the removable-media fallback gets copied there.
#[derive(Debug, Clone, PartialEq)]
pub struct EfiFallback {
    /// Guest path where the ESP is mounted, without a trailing slash ("/boot/efi").
    pub mp: String,
    /// 0 shim, 1 grub, 2 systemd-boot.
    pub class: usize,
    /// Directory under /EFI and file name as the ESP spells them.
    pub vendor: String,
    pub loader: String,
    /// Files shim loads from its own directory, copied beside it.
    pub companions: Vec<String>,
}

/// Whether a UEFI guest needs `\EFI\BOOT\BOOTX64.EFI` and what to copy there: Ok(None) when
/// it is not UEFI or has the fallback, Err(why) when it needs one but nothing can be copied.
/// Pure; the planner copies it and verify reports the same guests.
pub fn efi_fallback(l: &LinuxInfo) -> Result<Option<EfiFallback>, String> {
    let b = &l.bootloader;
    if b.firmware != "uefi" {
        return Ok(None);
    }
    let Some(esp) = &b.esp else {
        return Err("UEFI guest, but no EFI system partition was found".into());
    };
    if esp.has_fallback {
        return Ok(None);
    }
    let Some(mp) = esp_mountpoint(l) else {
        return Err(format!(
            "EFI system partition {} is not mounted in /etc/fstab; no \\EFI\\BOOT fallback loader added",
            esp.device
        ));
    };
    let mp = mp.trim_end_matches('/');
    // Files per vendor directory: (dir, name as on the ESP).
    let files: Vec<(&str, &str)> = esp
        .efi_files
        .iter()
        .filter_map(|f| match f.split('/').collect::<Vec<_>>().as_slice() {
            [_, _, d, n] if !d.eq_ignore_ascii_case("boot") => Some((*d, *n)),
            _ => None,
        })
        .collect();
    // The directory holding the grub config first, then one named after the distro.
    let cfg_dir = b
        .stub_config
        .iter()
        .chain(b.config.iter())
        .find_map(|p| p.strip_prefix(&format!("{mp}/EFI/")))
        .and_then(|r| r.split('/').next())
        .map(str::to_ascii_lowercase);
    let distro = match l.distro.as_str() {
        "rhel" => "redhat".to_string(),
        "opensuse-leap" | "opensuse-tumbleweed" => "opensuse".to_string(),
        d => d.to_string(),
    };
    let rank = |d: &str| {
        let d = d.to_ascii_lowercase();
        (
            Some(&d) != cfg_dir.as_ref(),
            d != distro,
            d == "microsoft",
            d,
        )
    };
    let mut dirs: Vec<&str> = files.iter().map(|(d, _)| *d).collect();
    dirs.sort_by_key(|d| rank(d));
    dirs.dedup();
    let find = |d: &str, names: &[&str]| {
        names.iter().find_map(|n| {
            files
                .iter()
                .find(|(fd, fname)| *fd == d && fname.eq_ignore_ascii_case(n))
                .map(|(_, f)| f.to_string())
        })
    };
    let pick = [
        &["shimx64.efi", "shim.efi"][..],
        &["grubx64.efi", "grub.efi"][..],
        &["systemd-bootx64.efi"][..],
    ]
    .iter()
    .enumerate()
    .find_map(|(i, names)| {
        dirs.iter()
            .find_map(|d| find(d, names).map(|f| (i, d.to_string(), f)))
    });
    let Some((class, vendor, loader)) = pick else {
        return Err(format!(
            "EFI system partition {} has no \\EFI\\BOOT\\BOOTX64.EFI and no shim, grub or systemd-boot loader to copy there",
            esp.device
        ));
    };
    let companions = if class == 0 {
        SHIM_COMPANIONS
            .iter()
            .filter_map(|c| find(&vendor, &[c]))
            .collect()
    } else {
        vec![]
    };
    Ok(Some(EfiFallback {
        mp: mp.to_string(),
        class,
        vendor,
        loader,
        companions,
    }))
}

/// UEFI: a fresh NVRAM has no boot entry for the vendor path (\EFI\debian\shimx64.efi), so
/// the firmware only tries the removable-media path \EFI\BOOT\BOOTX64.EFI. When that is
/// missing, copy the vendor loader there. Not copied: fbx64.efi (shim would run it instead of
/// grub and reboot after writing NVRAM entries).
fn plan_efi_fallback(
    l: &LinuxInfo,
    ins: &Inspection,
    inputs: &PlanInputs,
    notes: &mut Vec<String>,
) -> Vec<Action> {
    let b = &l.bootloader;
    let fb = match efi_fallback(l) {
        Ok(Some(fb)) => fb,
        Ok(None) => return vec![],
        Err(why) => {
            notes.push(why);
            return vec![];
        }
    };
    let Some(esp) = &b.esp else {
        return vec![];
    };
    let (mp, class, vendor, loader) = (fb.mp.as_str(), fb.class, fb.vendor, fb.loader);
    let boot = boot_dir_name(l);
    let vdir = format!("{mp}/EFI/{vendor}");
    let bdir = format!("{mp}/EFI/{boot}");
    let mut actions = vec![Action {
        area: "bootloader".into(),
        change: Change::CopyFile {
            from: format!("{vdir}/{loader}"),
            to: format!("{bdir}/BOOTX64.EFI"),
        },
        reason: format!(
            "UEFI: only the vendor loader \\EFI\\{vendor}\\{loader} exists, and a new VM's NVRAM has no boot entry for it; the firmware falls back to \\EFI\\{boot}\\BOOTX64.EFI"
        ),
        diff: None,
    }];
    for f in &fb.companions {
        actions.push(Action {
            area: "bootloader".into(),
            change: Change::CopyFile {
                from: format!("{vdir}/{f}"),
                to: format!("{bdir}/{f}"),
            },
            reason: format!(
                "shim loads {f} from its own directory, so the \\EFI\\{boot} copy of {loader} needs it beside it"
            ),
            diff: None,
        });
    }
    // Distro grub builds look for grub.cfg beside the binary ($cmdpath, Fedora's and SUSE's
    // patches) or in their built-in prefix (/EFI/<vendor>). When the vendor directory has a
    // grub.cfg, a stub in \EFI\BOOT hands over to it, so both lookups reach the same menu;
    // without one the vendor grub finds its config by an embedded search and needs nothing.
    let vendor_cfg = format!("{vdir}/grub.cfg");
    let boot_cfg = format!("{bdir}/grub.cfg");
    if class < 2 && inputs.text(&vendor_cfg).is_some() && !inputs.existing.contains(&boot_cfg) {
        let esp_uuid = resolve_spec(&esp.device, &ins.volumes)
            .2
            .and_then(|v| v.uuid.clone())
            .map(|u| u.to_ascii_lowercase());
        let mut ctx = tera::Context::new();
        ctx.insert("vendor", &vendor);
        ctx.insert("esp_uuid", &esp_uuid);
        match render("bootloader/efi-boot-grub.cfg.tera", &ctx) {
            Ok(content) => actions.push(Action::edit(
                "bootloader",
                &boot_cfg,
                None,
                content,
                format!(
                    "grub started from \\EFI\\{boot} may read its config from there; hand over to {vendor_cfg}"
                ),
            )),
            Err(e) => notes.push(format!("template bootloader/efi-boot-grub.cfg.tera: {e}")),
        }
    }
    actions
}
