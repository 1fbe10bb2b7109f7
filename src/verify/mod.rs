//! Verify: a static boot-readiness check of a Linux guest on virtio, in pure Rust over an
//! inspection (of the repaired overlay, or of any disk). Each finding names the file and line.
#[cfg(test)]
mod covers_plan;
pub mod windows;

use crate::inspect::fstab::resolve_spec;
use crate::plan::{bootloader, fstab, initramfs, network, tools};
use crate::plan::{BlockBus, NetworkMode, PlanInputs, PlanOptions};
use crate::types::{BootEntry, Inspection, KernelInfo, LinuxInfo, SpecKind};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// "initramfs", "root", "fstab", "crypttab", "bootloader", "network", "net-rules",
    /// "guest-tools", "filesystem", "inspection".
    pub check: String,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub ready: bool,
    pub findings: Vec<Finding>,
}

fn finding(check: &str, file: Option<&str>, line: Option<usize>, message: String) -> Finding {
    Finding {
        check: check.into(),
        file: file.map(String::from),
        line,
        message,
    }
}

/// Splits "file:line" as the bootloader parser records entry sources.
fn file_line(src: &str) -> (Option<&str>, Option<usize>) {
    match src.rsplit_once(':') {
        Some((f, l)) => match l.parse() {
            Ok(n) => (Some(f), Some(n)),
            Err(_) => (Some(src), None),
        },
        None => (Some(src).filter(|s| !s.is_empty()), None),
    }
}

/// Whether an interface config binds to whatever NIC appears: no MAC pin, and no fixed name
/// unless the name is stable on virtio (eth0 with net.ifnames=0) or a pattern.
fn binds_any_nic(name: Option<&str>, mac: Option<&str>, cmdline: &str) -> bool {
    if mac.is_some() {
        return false;
    }
    match name {
        None => true,
        Some(n) if n.contains('*') || n.contains('?') || n.starts_with('/') => true,
        Some("eth0") => cmdline.split_whitespace().any(|a| a == "net.ifnames=0"),
        Some(_) => false,
    }
}

/// Verifies from the inspection alone: kernel command lines only as the inspected boot entries
/// show them; guest-tool links, device.map and the serial console need the guest files (see
/// [`verify_linux_files`]).
pub fn verify_linux(l: &LinuxInfo, ins: &Inspection, opts: &PlanOptions) -> Verdict {
    verify(l, ins, None, opts)
}

/// Verifies with the guest files the planner reads (from [`crate::plan::collect_inputs`]):
/// every condition `plan_linux` would repair is a finding.
pub fn verify_linux_files(
    l: &LinuxInfo,
    ins: &Inspection,
    inputs: &PlanInputs,
    opts: &PlanOptions,
) -> Verdict {
    verify(l, ins, Some(inputs), opts)
}

fn verify(
    l: &LinuxInfo,
    ins: &Inspection,
    inputs: Option<&PlanInputs>,
    opts: &PlanOptions,
) -> Verdict {
    let mut f = vec![];
    for u in &l.unreadable {
        f.push(finding(
            "inspection",
            None,
            None,
            format!("not readable: {u}"),
        ));
    }
    // What the pure readers saw is the replayed journal; the disk itself still has to be
    // recovered (revirt's repair does it in its output) before it is ready.
    for v in ins
        .volumes
        .iter()
        .filter(|v| l.mounts.values().any(|d| *d == v.device))
        .filter(|v| v.flags.iter().any(|f| f == "needs_recovery"))
    {
        f.push(finding(
            "filesystem",
            None,
            None,
            format!("{}: the ext journal still needs recovery", v.device),
        ));
    }
    // Likewise a dirty XFS log read through a throwaway recovery (repair recovers its output).
    for v in ins
        .volumes
        .iter()
        .filter(|v| l.mounts.values().any(|d| *d == v.device))
        .filter(|v| {
            v.xfs_log
                .as_ref()
                .is_some_and(|x| x.needs_recovery && x.recovered_into.as_deref() != Some("output"))
        })
    {
        f.push(finding(
            "filesystem",
            None,
            None,
            format!("{}: the XFS log still needs recovery", v.device),
        ));
    }
    let bl = &l.bootloader;
    let entry = bl.default_entry.and_then(|i| bl.entries.get(i));
    // Bootloader default entry -> kernel and initramfs.
    let kernel = match entry {
        None => {
            f.push(finding(
                "bootloader",
                bl.config.as_deref(),
                None,
                format!(
                    "no default boot entry found ({} bootloader)",
                    if bl.kind.is_empty() {
                        "unknown"
                    } else {
                        &bl.kind
                    }
                ),
            ));
            l.kernels.first()
        }
        Some(e) => {
            let (file, line) = file_line(&e.source);
            let kp = e.kernel_path.as_deref().or(e.kernel.as_deref());
            let k = kp.and_then(|p| l.kernels.iter().find(|k| k.vmlinuz == p));
            if k.is_none() {
                f.push(finding(
                    "bootloader",
                    file,
                    line,
                    format!(
                        "default entry '{}' boots {}, which is not an installed kernel",
                        e.title,
                        kp.unwrap_or("nothing")
                    ),
                ));
            }
            let ip = e.initrd_path.as_deref().or(e.initrd.as_deref());
            if let Some(k) = k {
                if ip.is_none() || k.initramfs.as_deref() != ip {
                    f.push(finding(
                        "bootloader",
                        file,
                        line,
                        format!(
                            "default entry '{}' loads initramfs {} but the kernel's is {}",
                            e.title,
                            ip.unwrap_or("none"),
                            k.initramfs.as_deref().unwrap_or("missing")
                        ),
                    ));
                }
            }
            // root= must name a volume on these disks, by a bus-independent name.
            match &e.root {
                None => f.push(finding(
                    "root",
                    file,
                    line,
                    format!(
                        "default entry '{}' has no root= on its command line",
                        e.title
                    ),
                )),
                Some(r) => {
                    let (kind, bus, vol) = resolve_spec(r, &ins.volumes);
                    if vol.is_none() {
                        f.push(finding(
                            "root",
                            file,
                            line,
                            format!("root={r} names no volume on these disks"),
                        ));
                    } else if bus {
                        f.push(finding(
                            "root",
                            file,
                            line,
                            format!(
                                "root={r} depends on the disk bus ({kind:?}); it changes on virtio"
                            ),
                        ));
                    } else if kind == SpecKind::Virtual {
                        f.push(finding(
                            "root",
                            file,
                            line,
                            format!("root={r} is not a block device spec"),
                        ));
                    }
                }
            }
            k.or(l.kernels.first())
        }
    };
    // Initramfs carries (or the kernel has built in) the storage and PCI drivers.
    match kernel {
        None => f.push(finding(
            "initramfs",
            Some("/boot"),
            None,
            "no kernel installed".into(),
        )),
        Some(k) => {
            let disk = if opts.block == BlockBus::VirtioBlk {
                "virtio_blk"
            } else {
                "virtio_scsi"
            };
            for d in ["virtio_pci", disk] {
                if !k.drivers.get(d).is_some_and(|s| s.in_initramfs) {
                    f.push(finding(
                        "initramfs",
                        k.initramfs.as_deref().or(Some(&k.vmlinuz)),
                        None,
                        format!(
                            "kernel {}: {d} is neither built in nor in the initramfs",
                            k.version
                        ),
                    ));
                }
            }
            if let Some(e) = &k.initramfs_error {
                f.push(finding(
                    "initramfs",
                    k.initramfs.as_deref(),
                    None,
                    format!("unreadable: {e}"),
                ));
            }
        }
    }
    // fstab entries that must mount at boot.
    for e in &l.fstab {
        if e.nofail || e.spec_kind == SpecKind::Virtual {
            continue;
        }
        if !e.present {
            f.push(finding(
                "fstab",
                Some("/etc/fstab"),
                Some(e.line),
                format!(
                    "{} ({}) names no volume on these disks and has no nofail",
                    e.spec, e.mountpoint
                ),
            ));
        } else if e.bus_dependent {
            f.push(finding(
                "fstab",
                Some("/etc/fstab"),
                Some(e.line),
                format!("{} ({}) depends on the disk bus", e.spec, e.mountpoint),
            ));
        }
    }
    // Network: some config brings up DHCP (or the kept static address) on any NIC.
    let cmdline = entry.map(|e| e.cmdline.as_str()).unwrap_or("");
    let mut ok_net = false;
    for c in &l.network.configs {
        for i in &c.interfaces {
            let usable = match opts.network {
                NetworkMode::Dhcp => i.dhcp,
                NetworkMode::KeepStatic => i.dhcp || !i.addresses.is_empty(),
            };
            if usable && binds_any_nic(i.name.as_deref(), i.mac.as_deref(), cmdline) {
                ok_net = true;
            }
        }
    }
    if !ok_net {
        let file = l.network.configs.first().map(|c| c.file.as_str());
        f.push(finding("network", file, None, format!("no network configuration brings up {} on whatever NIC appears (all are pinned by name or MAC, or none exist)", if opts.network == NetworkMode::Dhcp { "DHCP" } else { "an address" })));
    }
    for r in &l.network.persistent_net_rules {
        f.push(finding(
            "net-rules",
            Some(&r.file),
            Some(r.line),
            format!("pins {} to MAC {}", r.name, r.mac.as_deref().unwrap_or("?")),
        ));
    }
    // What else the planner repairs, each decided by the planner's own helper.
    check_other_kernels(l, kernel, opts, &mut f);
    check_fstab_nofail(l, ins, &mut f);
    check_crypttab(l, ins, &mut f);
    check_efi_fallback(l, &mut f);
    match inputs {
        Some(inputs) => {
            check_cmdline_files(l, ins, inputs, opts, &mut f);
            check_device_maps(l, inputs, opts, &mut f);
            check_guest_tools(l, inputs, &mut f);
        }
        None => check_entry_cmdlines(l, ins, entry, opts, &mut f),
    }
    check_old_nic_bindings(l, opts, &mut f);
    check_mac_pins(l, &mut f);
    Verdict {
        ready: f.is_empty(),
        findings: f,
    }
}

/// Kernels besides the one checked above whose initramfs the planner extends.
fn check_other_kernels(
    l: &LinuxInfo,
    checked: Option<&KernelInfo>,
    opts: &PlanOptions,
    f: &mut Vec<Finding>,
) {
    for k in l
        .kernels
        .iter()
        .filter(|k| checked.is_none_or(|c| c.vmlinuz != k.vmlinuz))
        .filter(|k| initramfs::kernel_repairable(k, opts.block))
    {
        let missing: Vec<&str> = initramfs::modules_to_add(k, opts.block)
            .into_iter()
            .filter(|d| !k.drivers.get(*d).is_some_and(|s| s.in_initramfs))
            .collect();
        f.push(finding(
            "initramfs",
            k.initramfs.as_deref(),
            None,
            format!(
                "kernel {} (not the default entry's): its initramfs lacks {}",
                k.version,
                missing.join(", ")
            ),
        ));
    }
}

/// nofail entries are not boot-critical, but one named by the bus may mount the wrong volume.
fn check_fstab_nofail(l: &LinuxInfo, ins: &Inspection, f: &mut Vec<Finding>) {
    for e in l.fstab.iter().filter(|e| e.nofail) {
        if let Some(new) = fstab::stable_replacement(e.bus_dependent, e.resolves_to.as_deref(), ins)
        {
            f.push(finding(
                "fstab",
                Some("/etc/fstab"),
                Some(e.line),
                format!(
                    "{} ({}, nofail) depends on the disk bus; it should be {new}",
                    e.spec, e.mountpoint
                ),
            ));
        }
    }
}

fn check_crypttab(l: &LinuxInfo, ins: &Inspection, f: &mut Vec<Finding>) {
    for e in &l.crypttab {
        if let Some(new) = fstab::stable_replacement(e.bus_dependent, e.resolves_to.as_deref(), ins)
        {
            f.push(finding(
                "crypttab",
                Some("/etc/crypttab"),
                Some(e.line),
                format!(
                    "{} ({}) depends on the disk bus; it should be {new}",
                    e.spec, e.name
                ),
            ));
        }
    }
}

/// A new VM's NVRAM has no boot entry for the vendor loader.
fn check_efi_fallback(l: &LinuxInfo, f: &mut Vec<Finding>) {
    if let Ok(Some(fb)) = bootloader::efi_fallback(l) {
        f.push(finding(
            "bootloader",
            Some(&format!("{}/EFI/{}/{}", fb.mp, fb.vendor, fb.loader)),
            None,
            format!(
                "UEFI: no \\EFI\\BOOT\\BOOTX64.EFI, only the vendor loader \\EFI\\{}\\{}, and a new VM's NVRAM has no boot entry for it",
                fb.vendor, fb.loader
            ),
        ));
    }
}

/// Without the guest files: root=/resume= of every boot entry in a file the planner edits
/// (the default entry's root= is checked above), and the arguments the network repair needs.
fn check_entry_cmdlines(
    l: &LinuxInfo,
    ins: &Inspection,
    default: Option<&BootEntry>,
    opts: &PlanOptions,
    f: &mut Vec<Finding>,
) {
    let edited = bootloader::cmdline_file_paths(l);
    for e in &l.bootloader.entries {
        let (file, line) = file_line(&e.source);
        if !file.is_some_and(|p| edited.iter().any(|x| x == p)) {
            continue;
        }
        let is_default = default.is_some_and(|d| std::ptr::eq(d, e));
        for w in e.cmdline.split_whitespace() {
            let root = w.starts_with("root=");
            if (!root && !w.starts_with("resume=")) || (root && is_default) {
                continue;
            }
            if let Some(new) = bootloader::cmdline_word_fix(l, ins, w) {
                f.push(finding(
                    "bootloader",
                    file,
                    line,
                    format!(
                        "entry '{}': {w} changes on virtio; it should be {new}",
                        e.title
                    ),
                ));
            }
        }
    }
    let args = network::kernel_args(l, opts);
    if !args.is_empty() {
        f.push(finding(
            "bootloader",
            l.bootloader.config.as_deref(),
            None,
            format!(
                "the network config names eth0, but not every boot entry passes {}",
                args.join(" ")
            ),
        ));
    }
}

/// With the guest files: every edit the planner makes to a kernel command line file (bus names
/// in root=/resume=, GRUB_DISABLE_LINUX_UUID=true, missing net.ifnames=0 or serial console).
fn check_cmdline_files(
    l: &LinuxInfo,
    ins: &Inspection,
    inputs: &PlanInputs,
    opts: &PlanOptions,
    f: &mut Vec<Finding>,
) {
    for a in bootloader::plan_cmdline_files(l, ins, inputs, opts, &mut vec![]) {
        let path = a.target();
        let why = a
            .reason
            .strip_prefix(&format!("{path}: "))
            .unwrap_or(&a.reason);
        f.push(finding(
            "bootloader",
            Some(path),
            None,
            format!("kernel command line to fix: {why}"),
        ));
    }
}

fn check_device_maps(l: &LinuxInfo, inputs: &PlanInputs, opts: &PlanOptions, f: &mut Vec<Finding>) {
    for a in bootloader::plan_device_maps(l, inputs, opts.block) {
        f.push(finding(
            "bootloader",
            Some(a.target()),
            None,
            "names the disks by the old bus (grub-install and grub-probe stop on them)".into(),
        ));
    }
}

/// Hypervisor tools that start on KVM, or whose uninstall is not queued yet.
fn check_guest_tools(l: &LinuxInfo, inputs: &PlanInputs, f: &mut Vec<Finding>) {
    for (t, link) in tools::enabled_links(l, inputs) {
        f.push(finding(
            "guest-tools",
            Some(&link),
            None,
            format!(
                "{} ({}) is enabled and only works on the old hypervisor",
                t.name, t.evidence
            ),
        ));
    }
    let queue = tools::uninstall_to_queue(l, inputs);
    if !queue.is_empty() {
        let names: Vec<&str> = queue.iter().map(|t| t.name.as_str()).collect();
        f.push(finding(
            "guest-tools",
            queue.first().map(|t| t.evidence.as_str()),
            None,
            format!(
                "{} installed and no first-boot uninstall queued",
                names.join(", ")
            ),
        ));
    }
}

/// Configs the network planner replaces, even when another one already serves any NIC.
fn check_old_nic_bindings(l: &LinuxInfo, opts: &PlanOptions, f: &mut Vec<Finding>) {
    for (c, i) in network::old_nic_bindings(l, opts) {
        let what = match (&i.name, &i.mac) {
            (_, Some(m)) => format!("MAC {m}"),
            (Some(n), None) => format!("name {n}"),
            (None, None) => "no name".into(),
        };
        let static_in_dhcp = opts.network == NetworkMode::Dhcp && !i.dhcp;
        f.push(finding(
            "network",
            Some(&c.file),
            i.line,
            format!(
                "{} interface {} is bound to the old NIC ({what}){}",
                c.flavor,
                i.name.as_deref().unwrap_or("(any)"),
                if static_in_dhcp {
                    ", or static where DHCP is wanted"
                } else {
                    ""
                }
            ),
        ));
    }
}

/// MAC pins besides the persistent-net rules: the generator and systemd .link files.
fn check_mac_pins(l: &LinuxInfo, f: &mut Vec<Finding>) {
    if l.network.persistent_net_generator {
        f.push(finding(
            "net-rules",
            None,
            None,
            "75-persistent-net-generator.rules pins the new NIC's MAC to a name at first boot"
                .into(),
        ));
    }
    for (file, what) in network::mac_link_files(l) {
        f.push(finding(
            "net-rules",
            Some(file),
            None,
            format!("systemd .link file names an interface by the old MAC: {what}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nic_binding_rules() {
        assert!(binds_any_nic(None, None, ""));
        assert!(binds_any_nic(Some("e*"), None, ""));
        assert!(!binds_any_nic(Some("ens192"), None, ""));
        assert!(!binds_any_nic(None, Some("00:50:56:aa:bb:cc"), ""));
        assert!(binds_any_nic(
            Some("eth0"),
            None,
            "root=UUID=x net.ifnames=0"
        ));
        assert!(!binds_any_nic(Some("eth0"), None, "root=UUID=x"));
    }

    #[test]
    fn source_splits_file_and_line() {
        assert_eq!(
            file_line("/boot/grub/grub.cfg:120"),
            (Some("/boot/grub/grub.cfg"), Some(120))
        );
        assert_eq!(file_line(""), (None, None));
    }
}
