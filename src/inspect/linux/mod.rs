//! Linux guest facts: distro, arch, hostname, fstab/crypttab, kernels and what their initramfs
//! holds, bootloader, network, hypervisor tools, SELinux, cloud-init.
pub mod bootloader;
pub mod initramfs;
pub mod network;
pub mod release;

use super::fstab::{parse_crypttab, parse_fstab};
use super::Volume;
use crate::fs::{FileType, Vfs};
use crate::types::{DriverState, GuestTool, KernelInfo, LinuxInfo, OsIdentity};
use anyhow::Context;
use std::collections::BTreeMap;

/// Drivers whose presence decides whether the guest boots on virtio.
pub const VIRTIO_DRIVERS: [(&str, &str); 4] = [
    ("virtio_blk", "CONFIG_VIRTIO_BLK"),
    ("virtio_scsi", "CONFIG_SCSI_VIRTIO"),
    ("virtio_net", "CONFIG_VIRTIO_NET"),
    ("virtio_pci", "CONFIG_VIRTIO_PCI"),
];

/// A Linux root, as libguestfs recognises one (`daemon/inspect_fs.ml`): /etc plus /bin (a
/// directory, or the usrmerge link to usr/bin) plus /etc/fstab or /etc/hosts; or /etc with any
/// release file libguestfs knows (os-release, redhat-release, debian_version, arch-release...)
/// and a bin directory or fstab; or a CoreOS/Flatcar root, whose OS files are all on a separate
/// /usr partition.
pub fn looks_like_linux_root(vfs: &Vfs) -> bool {
    if !vfs.is_dir("/etc") {
        return false;
    }
    let bin = vfs.is_dir("/bin") || vfs.read_link("/bin").is_ok_and(|t| t == "usr/bin");
    let tables = vfs.exists("/etc/fstab") || vfs.exists("/etc/hosts");
    let release =
        vfs.exists("/usr/lib/os-release") || release::release_files().any(|p| vfs.exists(p));
    (bin && tables) || (release && (tables || bin || vfs.is_dir("/usr/bin"))) || is_coreos_root(vfs)
}

/// CoreOS (and Flatcar, its successor) keep only /etc and the home folders on the root; the
/// update.conf marker tells the root from an empty filesystem.
fn is_coreos_root(vfs: &Vfs) -> bool {
    ["/etc", "/root", "/home", "/usr"]
        .iter()
        .all(|d| vfs.is_dir(d))
        && ["/etc/coreos/update.conf", "/etc/flatcar/update.conf"]
            .iter()
            .any(|f| matches!(vfs.stat(f), Ok(Some(m)) if m.ftype == FileType::File))
}

/// A CoreOS/Flatcar /usr partition (USR-A or USR-B) seen at its own root. Flatcar's
/// /share/coreos is a link to flatcar (flatcar/init's Makefile).
fn is_coreos_usr(vfs: &Vfs) -> bool {
    vfs.is_dir("/bin") && (vfs.is_dir("/share/coreos") || vfs.is_dir("/share/flatcar"))
}

/// `path` is there and, not following a link at its last component, of type `t` (libguestfs's
/// `Is.is_dir` / `Is.is_file` without `followsymlinks`).
fn lstat_is(vfs: &Vfs, path: &str, t: FileType) -> bool {
    matches!(vfs.lstat(path), Ok(Some(m)) if m.ftype == t)
}

/// libguestfs 1.48's first Linux-root test (`check_filesystem`, `daemon/inspect_fs.ml`): /etc,
/// /bin (or the usr/bin link) and a regular /etc/fstab or /etc/hosts. A root that passes is
/// read as a plain Linux root, never as CoreOS.
fn libguestfs_linux_root(vfs: &Vfs) -> bool {
    lstat_is(vfs, "/etc", FileType::Dir)
        && (lstat_is(vfs, "/bin", FileType::Dir)
            || vfs.read_link("/bin").is_ok_and(|t| t == "usr/bin"))
        && (lstat_is(vfs, "/etc/fstab", FileType::File)
            || lstat_is(vfs, "/etc/hosts", FileType::File))
}

/// libguestfs 1.48's CoreOS-root test, tried when the Linux-root test failed: /etc, /root,
/// /home, /usr and a regular /etc/coreos/update.conf (Flatcar's /etc/coreos link to flatcar
/// leads there too).
fn libguestfs_coreos_root(vfs: &Vfs) -> bool {
    !libguestfs_linux_root(vfs)
        && ["/etc", "/root", "/home", "/usr"]
            .iter()
            .all(|d| lstat_is(vfs, d, FileType::Dir))
        && lstat_is(vfs, "/etc/coreos/update.conf", FileType::File)
}

/// libguestfs 1.48's CoreOS-/usr test: /bin, /share, /local and /share/coreos directories
/// (not links) and no /etc (that is its "Linux /usr", merged only through an fstab).
fn libguestfs_coreos_usr(vfs: &Vfs) -> bool {
    !lstat_is(vfs, "/etc", FileType::Dir)
        && ["/bin", "/share", "/local", "/share/coreos"]
            .iter()
            .all(|d| lstat_is(vfs, d, FileType::Dir))
}

/// Mounts the CoreOS /usr partition (no fstab names it), of the filesystems `is_usr` accepts:
/// of USR-A and USR-B, the one with the higher os-release version is the active one, as
/// libguestfs guesses (it cannot read the bootloader's choice either). Returns its device.
fn mount_coreos_usr(
    vfs: &mut Vfs,
    root_dev: &str,
    vols: &[Volume],
    is_usr: fn(&Vfs) -> bool,
) -> Option<String> {
    let mut best: Option<((u32, u32), &Volume)> = None;
    for v in vols.iter().filter(|v| v.report.device != root_dev) {
        let Ok(Some(fs)) = v.open_fs() else { continue };
        let usr = Vfs::new(fs);
        if !is_usr(&usr) {
            continue;
        }
        let version = usr
            .read_text("/lib/os-release")
            .ok()
            .flatten()
            .and_then(|t| parse_shell_vars(&t).get("VERSION_ID").cloned())
            .and_then(|v| release::major_minor(&v))
            .unwrap_or((0, 0));
        if best.as_ref().is_none_or(|(b, _)| version > *b) {
            best = Some((version, v));
        }
    }
    let (_, v) = best?;
    vfs.mount("/usr", v.open_fs().ok()??);
    Some(v.report.device.clone())
}

/// Parses KEY=value lines with shell quoting (os-release, /etc/default/grub, sysconfig).
pub fn parse_shell_vars(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l);
        if let Some((k, v)) = l.split_once('=') {
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let v = v.trim();
            let v = if (v.starts_with('"') && v.ends_with('"') && v.len() >= 2)
                || (v.starts_with('\'') && v.ends_with('\'') && v.len() >= 2)
            {
                v[1..v.len() - 1].to_string()
            } else {
                v.split(" #").next().unwrap_or(v).to_string()
            };
            m.insert(k.to_string(), v);
        }
    }
    m
}

fn family_of(id: &str, like: &str) -> &'static str {
    let all: Vec<&str> = std::iter::once(id).chain(like.split_whitespace()).collect();
    let has = |xs: &[&str]| all.iter().any(|a| xs.contains(a));
    if has(&[
        "rhel",
        "centos",
        "fedora",
        "rocky",
        "almalinux",
        "ol",
        "amzn",
        "scientific",
        "eurolinux",
        "virtuozzo",
        "cloudlinux",
    ]) {
        "rhel"
    } else if has(&[
        "sles",
        "suse",
        "opensuse",
        "opensuse-leap",
        "opensuse-tumbleweed",
        "sled",
        "sle-micro",
    ]) {
        "suse"
    } else if has(&["redhat-based", "circle"]) {
        "rhel"
    } else if has(&["suse-based"]) {
        "suse"
    } else if has(&["debian", "ubuntu", "linuxmint", "raspbian", "kali"]) {
        "debian"
    } else if has(&["altlinux", "alt"]) {
        "alt"
    } else {
        "other"
    }
}

/// Distro identity from os-release (its ID, as revirt's plan expects it), falling back to what
/// the older release files said (`rel`, libguestfs's reading) spelled as os-release would.
fn detect_distro(vfs: &Vfs, info: &mut LinuxInfo, rel: &release::Release) -> anyhow::Result<()> {
    let osr = match vfs.read_text("/etc/os-release")? {
        Some(t) => Some(t),
        None => vfs.read_text("/usr/lib/os-release")?,
    };
    if let Some(t) = osr {
        let v = parse_shell_vars(&t);
        info.distro = v.get("ID").cloned().unwrap_or_default();
        info.version = v.get("VERSION_ID").cloned().unwrap_or_default();
        info.product_name = v
            .get("PRETTY_NAME")
            .or(v.get("NAME"))
            .cloned()
            .unwrap_or_default();
        info.family = family_of(
            &info.distro,
            v.get("ID_LIKE").map(String::as_str).unwrap_or(""),
        )
        .into();
    } else if let Some(d) = rel.distro {
        info.distro = release::os_release_id_of(d).into();
        info.product_name = rel.product_name.clone().unwrap_or_default();
        // debian_version ("5.0.10") and alpine-release ("3.19.1") hold just the version.
        let bare = info.product_name.trim();
        info.version = if matches!(d, "debian" | "alpinelinux")
            && bare.starts_with(|c: char| c.is_ascii_digit())
        {
            bare.to_string()
        } else {
            release_version(&info.product_name, rel.version)
        };
        info.family = family_of(&info.distro, "").into();
    }
    if info.distro == "debian" && info.version.is_empty() {
        // Debian testing/sid have no VERSION_ID; debian_version says "trixie/sid".
        if let Some(v) = vfs.read_text("/etc/debian_version")? {
            info.version = v.trim().into();
        }
    }
    Ok(())
}

/// The version as a release file writes it: "6.10", "14", "11.4" (SLES VERSION.PATCHLEVEL).
fn release_version(product: &str, v: Option<(u32, u32)>) -> String {
    match v {
        None => String::new(),
        Some((ma, 0)) if !product.contains(&format!("{ma}.0")) => ma.to_string(),
        Some((ma, mi)) => format!("{ma}.{mi}"),
    }
}

/// Architecture from the ELF header of a system binary.
fn detect_arch(vfs: &Vfs) -> Option<String> {
    // libguestfs's list (bash, ls, echo, rm, sh) plus the merged-/usr and init paths.
    for p in [
        "/bin/sh",
        "/usr/bin/bash",
        "/bin/bash",
        "/bin/ls",
        "/usr/bin/ls",
        "/bin/echo",
        "/bin/rm",
        "/sbin/init",
        "/usr/lib/systemd/systemd",
    ] {
        let Ok(b) = vfs.read_file(p) else { continue };
        if b.len() < 20 || &b[0..4] != b"\x7fELF" {
            continue;
        }
        let machine = if b[5] == 2 {
            u16::from_be_bytes([b[18], b[19]])
        } else {
            u16::from_le_bytes([b[18], b[19]])
        };
        let a = match machine {
            3 => "i386",
            62 => "x86_64",
            183 => "aarch64",
            40 => "arm",
            21 => "ppc64",
            22 => "s390x",
            243 => "riscv64",
            _ => continue,
        };
        // ppc64 little endian reports the same machine; tell them apart by the ELF data byte.
        return Some(if a == "ppc64" && b[5] == 1 {
            "ppc64le".into()
        } else {
            a.into()
        });
    }
    None
}

/// The hostname in libguestfs's order: /etc/HOSTNAME (old SUSE and Debian), /etc/hostname,
/// then HOSTNAME= in /etc/sysconfig/network (RHEL before 7, Fedora before 18).
fn detect_hostname(vfs: &Vfs) -> anyhow::Result<Option<String>> {
    for p in ["/etc/HOSTNAME", "/etc/hostname"] {
        if let Some(t) = vfs.read_text(p)? {
            let h = t
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'));
            if let Some(h) = h {
                return Ok(Some(h.to_string()));
            }
        }
    }
    if let Some(t) = vfs.read_text("/etc/sysconfig/network")? {
        if let Some(h) = parse_shell_vars(&t).get("HOSTNAME") {
            return Ok(Some(h.clone()));
        }
    }
    Ok(None)
}

fn detect_initramfs_tool(vfs: &Vfs) -> &'static str {
    if vfs.exists("/usr/sbin/update-initramfs") || vfs.is_dir("/etc/initramfs-tools") {
        "initramfs-tools"
    } else if vfs.exists("/usr/bin/dracut")
        || vfs.exists("/usr/sbin/dracut")
        || vfs.exists("/sbin/dracut")
        || vfs.exists("/etc/dracut.conf")
    {
        "dracut"
    } else if vfs.exists("/sbin/mkinitrd") || vfs.exists("/usr/sbin/mkinitrd") {
        "mkinitrd"
    } else {
        "unknown"
    }
}

/// Version string embedded in a bzImage (setup header "HdrS", kernel_version pointer at 0x20e).
fn bzimage_version(b: &[u8]) -> Option<String> {
    if b.len() < 0x210 || &b[0x202..0x206] != b"HdrS" {
        return None;
    }
    let off = u16::from_le_bytes([b[0x20e], b[0x20f]]) as usize + 0x200;
    let s = b.get(off..(off + 256).min(b.len()))?;
    let end = s.iter().position(|&c| c == 0 || c == b' ')?;
    std::str::from_utf8(&s[..end]).ok().map(String::from)
}

/// Kernels under /boot with their modules, config and initramfs contents.
fn detect_kernels(vfs: &Vfs) -> anyhow::Result<Vec<KernelInfo>> {
    let mut out = vec![];
    let boot = vfs.read_dir("/boot")?;
    let mod_roots = ["/lib/modules", "/usr/lib/modules"];
    for e in &boot {
        let Some(ver) = e
            .name
            .strip_prefix("vmlinuz-")
            .or_else(|| e.name.strip_prefix("vmlinux-"))
        else {
            continue;
        };
        if ver.contains("rescue") {
            continue; // RHEL rescue kernels carry a generic initramfs we do not repair
        }
        let vmlinuz = format!("/boot/{}", e.name);
        let mut k = KernelInfo {
            version: ver.to_string(),
            vmlinuz: vmlinuz.clone(),
            ..Default::default()
        };
        if let Ok(b) = vfs.read_file(&vmlinuz) {
            if let Some(v) = bzimage_version(&b) {
                if v != ver {
                    tracing::debug!("{vmlinuz}: embedded version {v} differs from file name");
                }
            }
        }
        k.modules_dir = mod_roots
            .iter()
            .map(|r| format!("{r}/{ver}"))
            .find(|d| vfs.is_dir(d));
        let cfg = format!("/boot/config-{ver}");
        let config = if vfs.exists(&cfg) {
            k.config = Some(cfg.clone());
            vfs.read_text(&cfg)?.unwrap_or_default()
        } else {
            String::new()
        };
        let builtin_list = match &k.modules_dir {
            Some(d) => vfs
                .read_text(&format!("{d}/modules.builtin"))?
                .unwrap_or_default(),
            None => String::new(),
        };
        let on_disk = match &k.modules_dir {
            Some(d) => module_files(vfs, d)?,
            None => Default::default(),
        };
        for cand in [
            format!("initrd.img-{ver}"),
            format!("initramfs-{ver}.img"),
            format!("initrd-{ver}"),
            format!("initrd-{ver}.img"),
        ] {
            if boot.iter().any(|b| b.name == cand) {
                k.initramfs = Some(format!("/boot/{cand}"));
                break;
            }
        }
        let listing = match &k.initramfs {
            Some(p) => match vfs
                .read_file(p)
                .map_err(|e| e.to_string())
                .and_then(|b| initramfs::list_initramfs(&b))
            {
                Ok(l) => Some(l),
                Err(e) => {
                    k.initramfs_error = Some(format!("{p}: {e}"));
                    None
                }
            },
            None => None,
        };
        if let Some(l) = &listing {
            k.initramfs_segments = l.segments.clone();
            k.initramfs_texts = l.texts.clone();
            let needle = format!("modules/{ver}");
            k.initramfs_modules_dir = l
                .files
                .keys()
                .find_map(|p| p.find(&needle).map(|i| p[..i + needle.len()].to_string()))
                .or_else(|| {
                    Some(if l.files.contains_key("usr/lib/modules") {
                        format!("usr/lib/{needle}")
                    } else {
                        format!("lib/{needle}")
                    })
                });
        }
        let in_initrd = listing
            .as_ref()
            .map(|l| l.module_names())
            .unwrap_or_default();
        for (drv, cfgname) in VIRTIO_DRIVERS {
            let builtin = config.lines().any(|l| l.trim() == format!("{cfgname}=y"))
                || builtin_list
                    .lines()
                    .any(|l| initramfs::module_name(l).as_deref() == Some(drv));
            let st = DriverState {
                builtin,
                module_on_disk: on_disk.contains(drv),
                in_initramfs: builtin || in_initrd.contains(drv),
            };
            k.drivers.insert(drv.to_string(), st);
        }
        out.push(k);
    }
    out.sort_by(|a, b| version_cmp(&b.version, &a.version));
    Ok(out)
}

/// Compares kernel versions numerically piece by piece ("5.14.0-362" > "5.14.0-70").
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| -> Vec<(u64, String)> {
        s.split(|c: char| !c.is_ascii_alphanumeric())
            .map(|p| (p.parse::<u64>().unwrap_or(0), p.to_string()))
            .collect()
    };
    split(a).cmp(&split(b))
}

/// Names of the virtio modules present under a modules directory (looked up where they live,
/// not by walking the whole tree, to keep inspection fast).
fn module_files(vfs: &Vfs, dir: &str) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let mut found = std::collections::BTreeSet::new();
    for sub in [
        "kernel/drivers/block",
        "kernel/drivers/scsi",
        "kernel/drivers/net",
        "kernel/drivers/virtio",
    ] {
        for e in vfs.read_dir(&format!("{dir}/{sub}"))? {
            if e.ftype != FileType::Dir {
                if let Some(n) = initramfs::module_name(&e.name) {
                    found.insert(n);
                }
            }
        }
    }
    // Fall back to modules.dep when the layout differs (e.g. extra/ or updates/ trees).
    if let Some(dep) = vfs.read_text(&format!("{dir}/modules.dep"))? {
        for l in dep.lines() {
            if let Some((m, _)) = l.split_once(':') {
                if let Some(n) = initramfs::module_name(m) {
                    if VIRTIO_DRIVERS.iter().any(|(d, _)| *d == n) {
                        found.insert(n);
                    }
                }
            }
        }
    }
    Ok(found)
}

/// Hypervisor guest tools, by the files their packages install.
fn detect_guest_tools(vfs: &Vfs) -> Vec<GuestTool> {
    let markers: [(&str, &[&str]); 6] = [
        (
            "open-vm-tools",
            &[
                "/usr/bin/vmtoolsd",
                "/lib/systemd/system/open-vm-tools.service",
                "/usr/lib/systemd/system/vmtoolsd.service",
            ],
        ),
        (
            "vmware-tools",
            &[
                "/etc/vmware-tools/locations",
                "/usr/lib/vmware-tools",
                "/etc/init.d/vmware-tools",
            ],
        ),
        (
            "hyperv-daemons",
            &[
                "/usr/sbin/hypervkvpd",
                "/usr/sbin/hv_kvp_daemon",
                "/usr/lib/systemd/system/hypervkvpd.service",
            ],
        ),
        (
            "xe-guest-utilities",
            &["/usr/sbin/xe-daemon", "/etc/init.d/xe-linux-distribution"],
        ),
        (
            "virtualbox-additions",
            &[
                "/opt/VBoxGuestAdditions",
                "/usr/sbin/VBoxService",
                "/etc/init.d/vboxadd",
            ],
        ),
        (
            "parallels-tools",
            &["/usr/lib/parallels-tools", "/etc/init.d/prltoolsd"],
        ),
    ];
    let mut out = vec![];
    for (name, paths) in markers {
        if let Some(p) = paths.iter().find(|p| vfs.lstat(p).ok().flatten().is_some()) {
            out.push(GuestTool {
                name: name.into(),
                evidence: p.to_string(),
            });
            continue;
        }
        // VirtualBox additions install as /opt/VBoxGuestAdditions-VERSION.
        if name == "virtualbox-additions" {
            if let Ok(opt) = vfs.read_dir("/opt") {
                if let Some(e) = opt
                    .iter()
                    .find(|e| e.name.starts_with("VBoxGuestAdditions"))
                {
                    out.push(GuestTool {
                        name: name.into(),
                        evidence: format!("/opt/{}", e.name),
                    });
                }
            }
        }
    }
    out
}

/// Mounts the fstab filesystems found on these disks under the root, so /boot, /usr and the ESP
/// are read from where the guest keeps them. Returns mountpoint -> device and the ESP device.
fn mount_fstab(
    vfs: &mut Vfs,
    fstab: &[crate::types::FstabEntry],
    root_dev: &str,
    vols: &[Volume],
) -> (BTreeMap<String, String>, Option<String>) {
    let mut mounts = BTreeMap::new();
    mounts.insert("/".to_string(), root_dev.to_string());
    let mut esp = None;
    let mut entries: Vec<_> = fstab
        .iter()
        .filter(|e| e.mountpoint.starts_with('/') && e.mountpoint != "/")
        .collect();
    entries.sort_by_key(|e| e.mountpoint.matches('/').count());
    for e in entries {
        let Some(dev) = &e.resolves_to else { continue };
        let Some(v) = vols.iter().find(|v| &v.report.device == dev) else {
            continue;
        };
        match v.open_fs() {
            Ok(Some(fs)) => {
                // Mount at the resolved path so a symlinked mountpoint lands where the guest sees it.
                let at = vfs
                    .resolve(&e.mountpoint, true)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| e.mountpoint.clone());
                vfs.mount(&at, fs);
                mounts.insert(e.mountpoint.clone(), dev.clone());
                if e.fstype == "vfat"
                    && (e.mountpoint == "/boot/efi"
                        || e.mountpoint == "/efi"
                        || e.mountpoint == "/boot")
                {
                    esp = Some(dev.clone());
                }
            }
            Ok(None) => tracing::debug!("{}: no pure reader for {:?}", dev, v.report.fstype),
            Err(err) => tracing::warn!("{dev}: cannot open for {}: {err}", e.mountpoint),
        }
    }
    (mounts, esp)
}

/// The guest's tree as inspection mounted it (root plus the fstab mounts in `l.mounts`), for
/// later stages that read guest files (apply reads modules and originals through it).
pub fn guest_vfs(vols: &[Volume], l: &LinuxInfo) -> anyhow::Result<Vfs> {
    let open = |dev: &str| -> anyhow::Result<Option<std::rc::Rc<dyn crate::fs::GuestFs>>> {
        let v = vols
            .iter()
            .find(|v| v.report.device == dev)
            .ok_or_else(|| anyhow::anyhow!("{dev}: volume vanished"))?;
        Ok(v.open_fs()?)
    };
    let root = l
        .mounts
        .get("/")
        .ok_or_else(|| anyhow::anyhow!("no root mount recorded"))?;
    let mut vfs = Vfs::new(open(root)?.ok_or_else(|| anyhow::anyhow!("{root}: no reader"))?);
    let mut mps: Vec<(&String, &String)> = l.mounts.iter().filter(|(m, _)| *m != "/").collect();
    mps.sort_by_key(|(m, _)| m.matches('/').count());
    for (mp, dev) in mps {
        if let Some(fs) = open(dev)? {
            let at = vfs
                .resolve(mp, true)
                .ok()
                .flatten()
                .unwrap_or_else(|| mp.clone());
            vfs.mount(&at, fs);
        }
    }
    Ok(vfs)
}

/// The filesystems libguestfs 1.48 reads a Linux root through, which can be fewer than
/// revirt's (issue #10).
struct InspectorView {
    vfs: Vfs,
    /// Mount point -> device (virt-inspector's `<mountpoints>` when the guest has no fstab).
    mounts: BTreeMap<String, String>,
    /// Read as a CoreOS root (distro "coreos" before any release file is read).
    coreos: bool,
}

/// What libguestfs inspects: the root with its fstab mounts (`vfs`, `mounts`), or, for a root
/// its CoreOS test accepts, the root and the /usr its CoreOS-/usr test accepts. Flatcar 3760.2.0
/// passes neither (`virt-inspector -v`: "/dev/sda7 matched Linux root", "/dev/sda3 matched no
/// known OS partition"): its root has /etc/hosts and the /bin link, so libguestfs reads it alone,
/// where os-release is a link into the unmounted /usr; and its /usr/share/coreos is a link.
/// virt-inspector then names no distro, version or arch, and lists / alone.
fn inspector_view(
    vfs: &Vfs,
    mounts: &BTreeMap<String, String>,
    root_dev: &str,
    vols: &[Volume],
) -> InspectorView {
    let mut view = InspectorView {
        vfs: vfs.clone(),
        mounts: mounts.clone(),
        coreos: false,
    };
    if libguestfs_coreos_root(vfs) {
        // CoreOS roots have no fstab for libguestfs: `/` and the /usr it finds.
        view.coreos = true;
        view.mounts.retain(|mp, _| mp == "/");
        if let Some(dev) = mount_coreos_usr(&mut view.vfs, root_dev, vols, libguestfs_coreos_usr) {
            view.mounts.insert("/usr".into(), dev);
        }
    }
    view
}

/// The release-file search's starting point: a CoreOS root is "coreos" before any file is read.
fn coreos_start(coreos: bool) -> release::Release {
    release::Release {
        distro: coreos.then_some("coreos"),
        ..Default::default()
    }
}

/// The guest as virt-inspector names it, from libguestfs's reading of the release files.
fn linux_identity(
    vfs: &Vfs,
    rel: &release::Release,
    arch: Option<String>,
    hostname: Option<String>,
) -> OsIdentity {
    let distro = rel.distro.unwrap_or("unknown");
    let (major, minor) = rel.version.unwrap_or((0, 0));
    let has_dnf = matches!(vfs.stat("/usr/bin/dnf"), Ok(Some(m)) if m.ftype == FileType::File);
    let mut id = OsIdentity {
        os_type: "linux".into(),
        distro: distro.into(),
        product_name: rel.product_name.clone(),
        major_version: major,
        minor_version: minor,
        arch,
        hostname,
        build_id: rel.build_id.clone(),
        package_format: release::package_format(distro).map(String::from),
        package_management: release::package_management(distro, major, has_dnf).map(String::from),
        ..Default::default()
    };
    id.osinfo = super::identity::osinfo(&id);
    id
}

/// Most fstab / crypttab entries read (real tables: tens; large NFS clients: a few hundred).
const MAX_TABLE_ENTRIES: usize = 1024;

impl LinuxInfo {
    /// Records `what` as unreadable (a warning, and a reason for repair to refuse).
    fn note_unreadable(&mut self, what: &str, e: impl std::fmt::Display) {
        let e = e.to_string();
        let msg = if e.starts_with(what) {
            e // file errors already start with the path
        } else {
            format!("{what}: {e}")
        };
        self.warnings.push(msg.clone());
        self.unreadable.push(msg);
    }

    /// A text file, `None` when missing; a file that exists but cannot be read is noted.
    fn read_or_note(&mut self, vfs: &Vfs, path: &str) -> Option<String> {
        vfs.read_text(path)
            .map_err(|e| self.note_unreadable(path, e))
            .ok()
            .flatten()
    }
}

/// `/dev/mapper/NAME` for each crypttab entry whose source is a LUKS container revirt opened
/// (the opened volume is named as libguestfs names it; the guest knows it by NAME).
fn mapper_aliases(
    crypttab: &[crate::types::CrypttabEntry],
    reports: &[crate::types::VolumeReport],
) -> Vec<(String, String)> {
    let mut out = vec![];
    for c in crypttab {
        let opened = reports
            .iter()
            .filter(|r| c.resolves_to.as_ref() == Some(&r.device))
            .find_map(|r| r.luks.as_ref()?.opened_as.clone());
        let alias = format!("/dev/mapper/{}", c.name);
        let Some(dev) = opened else { continue };
        let taken = reports
            .iter()
            .any(|r| r.device == alias || r.aliases.contains(&alias));
        if !c.name.contains('/') && !taken && !out.iter().any(|(_, a)| *a == alias) {
            out.push((dev, alias));
        }
    }
    out
}

/// Reads every Linux fact from the root filesystem in `vfs` (mounting its fstab entries).
pub fn detect_linux(mut vfs: Vfs, root: &Volume, vols: &[Volume]) -> anyhow::Result<LinuxInfo> {
    let mut info = LinuxInfo::default();
    let coreos = is_coreos_root(&vfs);
    let fstab_text = info.read_or_note(&vfs, "/etc/fstab").unwrap_or_default();
    let mut reports: Vec<crate::types::VolumeReport> =
        vols.iter().map(|v| v.report.clone()).collect();
    if let Some(t) = info.read_or_note(&vfs, "/etc/crypttab") {
        info.crypttab = parse_crypttab(&t, &reports);
    }
    // fstab names an opened LUKS volume by its crypttab name: known before fstab is read.
    info.mapper_aliases = mapper_aliases(&info.crypttab, &reports);
    for (dev, alias) in &info.mapper_aliases {
        if let Some(r) = reports.iter_mut().find(|r| &r.device == dev) {
            r.aliases.push(alias.clone());
        }
    }
    info.fstab = parse_fstab(&fstab_text, &reports);
    // Every entry costs a lookup, a mount attempt and a planned edit: bounded (issue #8).
    for (path, n) in [
        ("/etc/fstab", info.fstab.len()),
        ("/etc/crypttab", info.crypttab.len()),
    ] {
        if n > MAX_TABLE_ENTRIES {
            info.note_unreadable(
                path,
                format!("{n} entries, more than the {MAX_TABLE_ENTRIES} revirt reads"),
            );
        }
    }
    info.fstab.truncate(MAX_TABLE_ENTRIES);
    info.crypttab.truncate(MAX_TABLE_ENTRIES);
    // /dev/mapper/NAME of a crypttab mapping exists once its source opens at boot: present
    // when the source is, though no volume on the disks carries that name yet.
    for e in info.fstab.iter_mut().filter(|e| e.resolves_to.is_none()) {
        let name = e.spec.strip_prefix("/dev/mapper/");
        if info
            .crypttab
            .iter()
            .any(|c| Some(c.name.as_str()) == name && c.present)
        {
            e.present = true;
        }
    }
    let (mut mounts, esp) = mount_fstab(&mut vfs, &info.fstab, &root.report.device, vols);
    let view = inspector_view(&vfs, &mounts, &root.report.device, vols);
    if coreos && !mounts.contains_key("/usr") {
        if let Some(dev) = mount_coreos_usr(&mut vfs, &root.report.device, vols, is_coreos_usr) {
            mounts.insert("/usr".into(), dev);
        }
    }
    info.mounts = mounts;
    // revirt's own facts are read once /usr is mounted (CoreOS keeps os-release there).
    let rel = release::detect_release(&vfs, coreos_start(coreos));
    detect_distro(&vfs, &mut info, &rel).context("reading os-release")?;
    info.arch = detect_arch(&vfs);
    info.hostname = detect_hostname(&vfs).unwrap_or_else(|e| {
        info.warnings.push(format!("hostname: {e:#}"));
        None
    });
    info.identity = if view.mounts == info.mounts && view.coreos == coreos {
        linux_identity(&vfs, &rel, info.arch.clone(), info.hostname.clone())
    } else {
        let rel = release::detect_release(&view.vfs, coreos_start(view.coreos));
        let hostname = detect_hostname(&view.vfs).ok().flatten();
        linux_identity(&view.vfs, &rel, detect_arch(&view.vfs), hostname)
    };
    info.inspector_mounts = view.mounts;
    info.initramfs_tool = detect_initramfs_tool(&vfs).into();
    // A part that cannot be read leaves the guest inspectable but not repairable.
    info.kernels = detect_kernels(&vfs)
        .map_err(|e| info.note_unreadable("kernels under /boot", e))
        .unwrap_or_default();
    info.bootloader = bootloader::detect_bootloader(&vfs, esp.as_deref())
        .map_err(|e| info.note_unreadable("the bootloader configuration", e))
        .unwrap_or_default();
    info.network = network::detect_network(&vfs)
        .map_err(|e| info.note_unreadable("the network configuration", e))
        .unwrap_or_default();
    info.warnings
        .extend(info.bootloader.warnings.iter().cloned());
    info.warnings.extend(info.network.warnings.iter().cloned());
    info.guest_tools = detect_guest_tools(&vfs);
    info.selinux = match vfs.read_text("/etc/selinux/config") {
        Ok(Some(t)) => Some(
            parse_shell_vars(&t)
                .get("SELINUX")
                .cloned()
                .unwrap_or_else(|| "enforcing".into()),
        ),
        Ok(None) => None,
        Err(e) => {
            info.warnings.push(format!("/etc/selinux/config: {e}"));
            None
        }
    };
    info.cloud_init = vfs.exists("/etc/cloud/cloud.cfg") || vfs.exists("/usr/bin/cloud-init");
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host folder as a guest tree: `files` written, `links` as [path, target].
    fn tree(files: &[&str], links: &[[&str; 2]]) -> (tempfile::TempDir, Vfs) {
        let d = tempfile::tempdir().unwrap();
        let at = |p: &str| d.path().join(p.trim_start_matches('/'));
        for f in files {
            std::fs::create_dir_all(at(f).parent().unwrap()).unwrap();
            if f.ends_with('/') {
                std::fs::create_dir_all(at(f)).unwrap();
            } else {
                std::fs::write(at(f), "x\n").unwrap();
            }
        }
        for [l, t] in links {
            std::fs::create_dir_all(at(l).parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(t, at(l)).unwrap();
        }
        let fs = std::rc::Rc::new(crate::fs::HostDirFs {
            root: d.path().into(),
        });
        (d, Vfs::new(fs))
    }

    /// Flatcar 3760.2.0 (issue #10): revirt finds its root and /usr; libguestfs 1.48 takes the
    /// root for a plain Linux root (its /etc/hosts) and the /usr for nothing (share/coreos is a
    /// link). CoreOS, as libguestfs's own test image has it, passes both of libguestfs's tests.
    #[test]
    fn coreos_and_flatcar_as_revirt_and_libguestfs_see_them() {
        let root = ["/etc/flatcar/update.conf", "/root/", "/home/core/", "/usr/"];
        let links = [["/bin", "usr/bin"], ["/etc/coreos", "./flatcar"]];
        let (_d, flatcar) = tree(&[&root[..], &["/etc/hosts"]].concat(), &links);
        assert!(is_coreos_root(&flatcar) && looks_like_linux_root(&flatcar));
        assert!(libguestfs_linux_root(&flatcar) && !libguestfs_coreos_root(&flatcar));
        // Without /etc/hosts, libguestfs reaches its CoreOS test, through the /etc/coreos link.
        let (_d, no_hosts) = tree(&root, &links);
        assert!(libguestfs_coreos_root(&no_hosts));

        let usr = [
            "/bin/bash",
            "/share/flatcar/release",
            "/local/",
            "/lib/os-release",
        ];
        let (_d, flatcar_usr) = tree(&usr, &[["/share/coreos", "flatcar"]]);
        assert!(is_coreos_usr(&flatcar_usr) && !libguestfs_coreos_usr(&flatcar_usr));
        let (_d, coreos_usr) = tree(&["/bin/bash", "/share/coreos/lsb-release", "/local/"], &[]);
        assert!(is_coreos_usr(&coreos_usr) && libguestfs_coreos_usr(&coreos_usr));
    }

    #[test]
    fn shell_vars_with_quotes_and_comments() {
        let v = parse_shell_vars(
            "# c\nID=\"rocky\"\nVERSION_ID='9.3'\nGRUB_CMDLINE_LINUX=\"a b=c\"\nX=y # trailing\n",
        );
        assert_eq!(v["ID"], "rocky");
        assert_eq!(v["VERSION_ID"], "9.3");
        assert_eq!(v["GRUB_CMDLINE_LINUX"], "a b=c");
        assert_eq!(v["X"], "y");
    }

    #[test]
    fn families() {
        assert_eq!(family_of("rocky", "rhel centos fedora"), "rhel");
        assert_eq!(family_of("opensuse-leap", "suse opensuse"), "suse");
        assert_eq!(family_of("ubuntu", "debian"), "debian");
        assert_eq!(family_of("arch", ""), "other");
    }

    #[test]
    fn kernel_versions_sort_numerically() {
        assert_eq!(
            version_cmp("5.14.0-362.el9", "5.14.0-70.el9"),
            std::cmp::Ordering::Greater
        );
        assert_eq!(
            version_cmp("6.1.0-13-amd64", "6.1.0-9-amd64"),
            std::cmp::Ordering::Greater
        );
    }

    #[test]
    fn bzimage_version_is_read_from_setup_header() {
        let mut b = vec![0u8; 0x400];
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        b[0x300..0x30f].copy_from_slice(b"6.1.0-13-amd64 ");
        assert_eq!(bzimage_version(&b).as_deref(), Some("6.1.0-13-amd64"));
    }
}
