//! Verify: a static boot-readiness check of a Linux guest on virtio, in pure Rust over an
//! inspection (of the repaired overlay, or of any disk). Each finding names the file and line.
pub mod windows;

use crate::inspect::fstab::resolve_spec;
use crate::plan::{BlockBus, NetworkMode, PlanOptions};
use crate::types::{Inspection, LinuxInfo, SpecKind};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// "initramfs", "root", "fstab", "bootloader", "network", "net-rules".
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

pub fn verify_linux(l: &LinuxInfo, ins: &Inspection, opts: &PlanOptions) -> Verdict {
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
    Verdict {
        ready: f.is_empty(),
        findings: f,
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
