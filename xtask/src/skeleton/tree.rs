//! Builds the guest's root tree in a staging directory: the recipe overlay (with `{{...}}`
//! placeholders expanded) plus the generated common parts — fstab, kernels with bzImage headers,
//! /boot/config, fake modules with modules.dep, real cpio initramfs images, grub/BLS config, marker
//! ELF binaries and hypervisor tool markers. Records what it made for the expectations file.
use super::layout::Layout;
use super::recipe::{Family, Kernel, Recipe};
use super::{ids, run_sh};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Everything the generator decided, for <name>.expect.json.
#[derive(Default, Serialize)]
pub struct Facts {
    pub os_release: BTreeMap<String, String>,
    pub fstab: Vec<Value>,
    pub crypttab: Vec<String>,
    pub kernels: Vec<Value>,
    pub bootloader: Value,
    pub tools: Vec<Value>,
    pub files: BTreeMap<String, String>,
}

pub struct Ctx<'a> {
    pub recipe: &'a Recipe,
    pub layout: &'a Layout,
    pub recipe_dir: &'a Path,
    /// Staging root of the whole guest tree (before it is split into filesystems).
    pub root: PathBuf,
    pub scratch: PathBuf,
    pub vars: BTreeMap<String, String>,
    pub facts: Facts,
    pub machine_id: String,
}

/// One fake kernel module.
struct Module {
    name: &'static str,
    /// Path under kernel/ without the .ko suffix.
    path: &'static str,
    virtio: bool,
}

const MODULES: &[Module] = &[
    m("virtio", "drivers/virtio/virtio", "VIRTIO", true),
    m("virtio_ring", "drivers/virtio/virtio_ring", "VIRTIO", true),
    m(
        "virtio_pci",
        "drivers/virtio/virtio_pci",
        "VIRTIO_PCI",
        true,
    ),
    m(
        "virtio_pci_modern_dev",
        "drivers/virtio/virtio_pci_modern_dev",
        "VIRTIO_PCI_LIB",
        true,
    ),
    m(
        "virtio_pci_legacy_dev",
        "drivers/virtio/virtio_pci_legacy_dev",
        "VIRTIO_PCI_LIB_LEGACY",
        true,
    ),
    m("virtio_blk", "drivers/block/virtio_blk", "VIRTIO_BLK", true),
    m(
        "virtio_scsi",
        "drivers/scsi/virtio_scsi",
        "SCSI_VIRTIO",
        true,
    ),
    m("virtio_net", "drivers/net/virtio_net", "VIRTIO_NET", true),
    m(
        "net_failover",
        "drivers/net/net_failover",
        "NET_FAILOVER",
        true,
    ),
    m("failover", "net/core/failover", "FAILOVER", true),
    m(
        "virtio_balloon",
        "drivers/virtio/virtio_balloon",
        "VIRTIO_BALLOON",
        false,
    ),
    m(
        "virtio_console",
        "drivers/char/virtio_console",
        "VIRTIO_CONSOLE",
        false,
    ),
    m(
        "virtio_rng",
        "drivers/char/hw_random/virtio-rng",
        "HW_RANDOM_VIRTIO",
        false,
    ),
    m(
        "vmw_pvscsi",
        "drivers/scsi/vmw_pvscsi",
        "VMWARE_PVSCSI",
        false,
    ),
    m("vmxnet3", "drivers/net/vmxnet3/vmxnet3", "VMXNET3", false),
    m(
        "vmw_vmci",
        "drivers/misc/vmw_vmci/vmw_vmci",
        "VMWARE_VMCI",
        false,
    ),
    m(
        "vmw_balloon",
        "drivers/misc/vmw_balloon",
        "VMWARE_BALLOON",
        false,
    ),
    m(
        "mptbase",
        "drivers/message/fusion/mptbase",
        "FUSION_SPI",
        false,
    ),
    m(
        "mptscsih",
        "drivers/message/fusion/mptscsih",
        "FUSION_SPI",
        false,
    ),
    m(
        "mptspi",
        "drivers/message/fusion/mptspi",
        "FUSION_SPI",
        false,
    ),
    m(
        "scsi_transport_spi",
        "drivers/scsi/scsi_transport_spi",
        "SCSI_SPI_ATTRS",
        false,
    ),
    m(
        "scsi_transport_fc",
        "drivers/scsi/scsi_transport_fc",
        "SCSI_FC_ATTRS",
        false,
    ),
    m(
        "e1000",
        "drivers/net/ethernet/intel/e1000/e1000",
        "E1000",
        false,
    ),
    m("ahci", "drivers/ata/ahci", "SATA_AHCI", false),
    m("libahci", "drivers/ata/libahci", "SATA_AHCI", false),
    m("hv_vmbus", "drivers/hv/hv_vmbus", "HYPERV", false),
    m(
        "hv_storvsc",
        "drivers/scsi/hv_storvsc",
        "HYPERV_STORAGE",
        false,
    ),
    m(
        "hv_netvsc",
        "drivers/net/hyperv/hv_netvsc",
        "HYPERV_NET",
        false,
    ),
    m("xfs", "fs/xfs/xfs", "XFS_FS", false),
    m("libcrc32c", "lib/libcrc32c", "LIBCRC32C", false),
    m("ext4", "fs/ext4/ext4", "EXT4_FS", false),
    m("jbd2", "fs/jbd2/jbd2", "EXT4_FS", false),
    m("mbcache", "fs/mbcache", "EXT4_FS", false),
    m("dm_mod", "drivers/md/dm-mod", "BLK_DEV_DM", false),
];

const fn m(name: &'static str, path: &'static str, _config: &'static str, virtio: bool) -> Module {
    Module { name, path, virtio }
}

/// Storage + network virtio drivers that a KVM boot needs in the initramfs.
const VIRTIO_BOOT: &[&str] = &["virtio_blk", "virtio_scsi", "virtio_net", "virtio_pci"];

fn kver_num(v: &str) -> (u32, u32) {
    let mut it = v.split(['.', '-']);
    let a = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let b = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    (a, b)
}

/// Module dependencies as depmod would list them for this kernel version.
fn deps(name: &str, kv: (u32, u32)) -> Vec<&'static str> {
    match name {
        "virtio_pci" => {
            let mut d = vec![];
            if kv >= (5, 14) {
                d.push("virtio_pci_legacy_dev");
            }
            if kv >= (5, 12) {
                d.push("virtio_pci_modern_dev");
            }
            d.extend(["virtio_ring", "virtio"]);
            d
        }
        "virtio_blk" | "virtio_scsi" | "virtio_balloon" | "virtio_console" | "virtio_rng" => {
            vec!["virtio_ring", "virtio"]
        }
        "virtio_net" if kv >= (4, 17) => vec!["net_failover", "failover", "virtio_ring", "virtio"],
        "virtio_net" => vec!["virtio_ring", "virtio"],
        "net_failover" => vec!["failover"],
        "mptspi" => vec!["scsi_transport_spi", "mptscsih", "mptbase"],
        "mptscsih" => vec!["mptbase"],
        "ahci" => vec!["libahci"],
        "hv_storvsc" => vec!["scsi_transport_fc", "hv_vmbus"],
        "hv_netvsc" => vec!["hv_vmbus"],
        "xfs" => vec!["libcrc32c"],
        "ext4" => vec!["mbcache", "jbd2"],
        _ => vec![],
    }
}

/// Whether this kernel has the module at all (the PCI helper split came with 5.12/5.14, failover
/// with 4.17).
fn exists(name: &str, kv: (u32, u32)) -> bool {
    match name {
        "virtio_pci_modern_dev" => kv >= (5, 12),
        "virtio_pci_legacy_dev" => kv >= (5, 14),
        "net_failover" | "failover" => kv >= (4, 17),
        _ => true,
    }
}

impl<'a> Ctx<'a> {
    fn fam(&self) -> Family {
        self.recipe.family
    }

    /// Host path of a guest path inside the staging root.
    pub fn p(&self, guest_path: &str) -> PathBuf {
        self.root.join(guest_path.trim_start_matches('/'))
    }

    fn write(&self, guest_path: &str, data: impl AsRef<[u8]>) -> Result<()> {
        let p = self.p(guest_path);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).with_context(|| format!("mkdir {}", d.display()))?;
        }
        let data = data.as_ref();
        fs::write(&p, data).with_context(|| format!("writing {}", p.display()))?;
        set_exec_bit(&p, data)
    }

    fn symlink(&self, target: &str, guest_path: &str) -> Result<()> {
        let p = self.p(guest_path);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d)?;
        }
        let _ = fs::remove_file(&p);
        std::os::unix::fs::symlink(target, &p)
            .with_context(|| format!("symlink {} -> {target}", p.display()))
    }

    fn mkdir(&self, guest_path: &str) -> Result<()> {
        let p = self.p(guest_path);
        fs::create_dir_all(&p).with_context(|| format!("mkdir {}", p.display()))
    }

    /// Where /lib really is (usr/lib on merged-/usr guests).
    fn libdir(&self) -> &'static str {
        if self.recipe.usrmerge {
            "/usr/lib"
        } else {
            "/lib"
        }
    }

    fn unitdir(&self) -> &'static str {
        if self.recipe.usrmerge || self.fam() != Family::Debian {
            "/usr/lib/systemd/system"
        } else {
            "/lib/systemd/system"
        }
    }

    pub fn grub_dir(&self) -> &'static str {
        match self.fam() {
            Family::Debian => "/boot/grub",
            _ => "/boot/grub2",
        }
    }

    fn initramfs_name(&self, v: &str) -> String {
        match self.fam() {
            Family::Rhel | Family::Fedora => format!("initramfs-{v}.img"),
            Family::Suse => format!("initrd-{v}"),
            Family::Debian => format!("initrd.img-{v}"),
        }
    }

    /// Path of a /boot file as grub sees it (relative to the filesystem holding /boot).
    fn boot_rel(&self, file: &str) -> String {
        if self.layout.volume_at("/boot").is_some() {
            format!("/{file}")
        } else {
            format!("/boot/{file}")
        }
    }

    pub fn generate(&mut self) -> Result<()> {
        self.base_dirs()?;
        self.overlay()?;
        self.os_release()?;
        self.etc_files()?;
        self.binaries()?;
        for t in self.recipe.tools.clone() {
            self.plant_tool(&t)?;
        }
        let mut kernels = self.recipe.kernels.clone();
        // Default kernel first: grub lists it first and it is what gets booted.
        kernels.sort_by_key(|k| !k.default);
        for k in &kernels {
            let t = std::time::Instant::now();
            self.kernel(k, false)?;
            super::trace(&k.version, "kernel", t);
        }
        if matches!(self.fam(), Family::Rhel | Family::Fedora) {
            // Anaconda's rescue entry: a copy of the install kernel with a generic (not
            // hostonly) initramfs, so it carries virtio even when the default one does not.
            let mut rescue = self.recipe.default_kernel().clone();
            rescue.initramfs_virtio = true;
            rescue.default = false;
            rescue.microcode = false;
            self.kernel(&rescue, true)?;
        }
        self.bootloader(&kernels)?;
        Ok(())
    }

    fn base_dirs(&self) -> Result<()> {
        for d in [
            "etc",
            "usr/bin",
            "usr/sbin",
            "usr/lib",
            "usr/share",
            "var/log",
            "var/lib",
            "tmp",
            "root",
            "home",
            "dev",
            "proc",
            "sys",
            "run",
            "boot",
            "mnt",
            "opt",
            "srv",
        ] {
            self.mkdir(d)?;
        }
        {
            use std::os::unix::fs::PermissionsExt;
            // XFS protofiles cannot express the sticky bit; ext4 keeps it.
            fs::set_permissions(self.p("/tmp"), fs::Permissions::from_mode(0o1777))?;
            let root_mode = if self.fam() == Family::Debian {
                0o700
            } else {
                0o550
            };
            fs::set_permissions(self.p("/root"), fs::Permissions::from_mode(root_mode))?;
        }
        if self.recipe.usrmerge {
            for (l, t) in [
                ("bin", "usr/bin"),
                ("sbin", "usr/sbin"),
                ("lib", "usr/lib"),
                ("lib64", "usr/lib64"),
            ] {
                self.symlink(t, l)?;
            }
            self.mkdir("usr/lib64")?;
        } else {
            for d in ["bin", "sbin", "lib", "lib64"] {
                self.mkdir(d)?;
            }
        }
        Ok(())
    }

    fn expand(&self, text: &str, origin: &Path) -> Result<String> {
        expand(&self.vars, text, origin)
    }

    fn overlay(&self) -> Result<()> {
        let src = self.recipe_dir.join("root");
        if src.is_dir() {
            self.copy_overlay(&src, &self.root)?;
        }
        Ok(())
    }

    fn copy_overlay(&self, src: &Path, dst: &Path) -> Result<()> {
        fs::create_dir_all(dst)?;
        let mut entries: Vec<_> = fs::read_dir(src)
            .with_context(|| format!("reading {}", src.display()))?
            .collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let s = e.path();
            let d = dst.join(e.file_name());
            let ft = e.file_type()?;
            if ft.is_symlink() {
                let t = fs::read_link(&s)?;
                let _ = fs::remove_file(&d);
                std::os::unix::fs::symlink(&t, &d)?;
            } else if ft.is_dir() {
                self.copy_overlay(&s, &d)?;
            } else {
                let bytes = fs::read(&s).with_context(|| format!("reading {}", s.display()))?;
                match String::from_utf8(bytes) {
                    Ok(t) if t.contains("{{") => fs::write(&d, self.expand(&t, &s)?)?,
                    Ok(t) => fs::write(&d, t)?,
                    Err(e) => fs::write(&d, e.into_bytes())?,
                }
            }
        }
        Ok(())
    }

    /// Reads a guest file from staging, following guest symlinks (absolute ones stay in root).
    pub fn read_guest(&self, guest_path: &str) -> Result<String> {
        let mut path = guest_path.to_string();
        for _ in 0..10 {
            let host = self.p(&path);
            match fs::read_link(&host) {
                Ok(t) => {
                    let t = t.to_string_lossy().to_string();
                    path = if t.starts_with('/') {
                        t
                    } else {
                        let parent = Path::new(&path).parent().unwrap_or(Path::new("/"));
                        normalize(&parent.join(&t).to_string_lossy())
                    };
                }
                Err(_) => {
                    return fs::read_to_string(&host).with_context(|| {
                        format!("reading guest {guest_path} ({})", host.display())
                    })
                }
            }
        }
        bail!("{guest_path}: symlink loop")
    }

    fn os_release(&mut self) -> Result<()> {
        let text = self
            .read_guest("/etc/os-release")
            .context("the recipe overlay must provide /etc/os-release")?;
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                let v = v.trim().trim_matches('"').to_string();
                self.facts.os_release.insert(k.trim().to_string(), v);
            }
        }
        Ok(())
    }

    fn os(&self, key: &str) -> String {
        self.facts.os_release.get(key).cloned().unwrap_or_default()
    }

    fn etc_files(&mut self) -> Result<()> {
        let r = self.recipe;
        if !self.p("/etc/hostname").exists() {
            self.write("/etc/hostname", format!("{}\n", r.hostname))?;
        }
        self.write("/etc/machine-id", format!("{}\n", self.machine_id))?;
        self.fstab()?;
        if !r.crypttab.is_empty() {
            let mut t = String::from("# <target name>\t<source device>\t\t<key file>\t<options>\n");
            for l in &r.crypttab {
                let l = self.expand(l, Path::new("guest.toml crypttab"))?;
                t += &l;
                t.push('\n');
                self.facts.crypttab.push(l);
            }
            self.write("/etc/crypttab", t)?;
        }
        if let Some(mode) = &r.selinux {
            self.write(
                "/etc/selinux/config",
                format!(
                    "\n# This file controls the state of SELinux on the system.\n\
                     # SELINUX= can take one of these three values:\n\
                     #     enforcing - SELinux security policy is enforced.\n\
                     #     permissive - SELinux prints warnings instead of enforcing.\n\
                     #     disabled - No SELinux policy is loaded.\n\
                     SELINUX={mode}\n\
                     # SELINUXTYPE= can take one of three values:\n\
                     #     targeted - Targeted processes are protected,\n\
                     #     minimum - Modification of targeted policy. Only selected processes are protected. \n\
                     #     mls - Multi Level Security protection.\n\
                     SELINUXTYPE=targeted \n\n\n"
                ),
            )?;
            self.mkdir("/etc/selinux/targeted/policy")?;
        }
        if self.fam() == Family::Debian {
            let k = r.default_kernel();
            let modules = if k.initramfs_virtio || k.virtio == "builtin" {
                "most"
            } else {
                "dep"
            };
            self.write(
                "/etc/initramfs-tools/initramfs.conf",
                format!(
                    "#\n# initramfs.conf\n# Configuration file for mkinitramfs(8). See initramfs.conf(5).\n#\n\
                     # Note that configuration options from this file can be overridden\n\
                     # by config files in the /etc/initramfs-tools/conf.d directory.\n\n\
                     #\n# MODULES: [ most | netboot | dep | list ]\n#\n\
                     # most - Add most filesystem and all harddrive drivers.\n#\n\
                     # dep - Try and guess which modules to load.\n#\n\
                     MODULES={modules}\n\nBUSYBOX=auto\n\nCOMPRESS={}\n\nDEVICE=\n\nNFSROOT=auto\n\nRUNSIZE=10%\n\nFSTYPE=auto\n",
                    match k.compress.as_str() {
                        "none" => "cat",
                        c => c,
                    }
                ),
            )?;
            self.write(
                "/etc/initramfs-tools/modules",
                "# List of modules that you want to include in your initramfs.\n\
                 # They will be loaded at boot time in the order below.\n#\n\
                 # Syntax:  module_name [args ...]\n#\n\
                 # You must run update-initramfs(8) to effect this change.\n#\n\
                 # Examples:\n#\n# raid1\n# sd_mod\n",
            )?;
        }
        Ok(())
    }

    fn fstab(&mut self) -> Result<()> {
        let r = self.recipe;
        let mut t = match self.fam() {
            Family::Rhel | Family::Fedora => {
                "\n#\n# /etc/fstab\n# Created by anaconda on Tue Nov 12 10:23:45 2019\n#\n\
                 # Accessible filesystems, by reference, are maintained under '/dev/disk'\n\
                 # See man pages fstab(5), findfs(8), mount(8) and/or blkid(8) for more info\n#\n"
                    .to_string()
            }
            Family::Debian => "# /etc/fstab: static file system information.\n#\n\
                 # Use 'blkid' to print the universally unique identifier for a\n\
                 # device; this may be used with UUID= as a more robust way to name devices\n\
                 # that works even if disks are added and removed. See fstab(5).\n#\n\
                 # <file system> <mount point>   <type>  <options>       <dump>  <pass>\n"
                .to_string(),
            Family::Suse => String::new(),
        };
        let mut vols: Vec<_> = self
            .layout
            .volumes
            .iter()
            .filter(|v| v.mount.is_some() || v.fs == "swap")
            .collect();
        // Mount order: parents first; swap last.
        vols.sort_by_key(|v| (v.fs == "swap", v.mount.clone().unwrap_or_default()));
        for v in vols {
            let style = v.mnt.fstab.clone().unwrap_or_else(|| "uuid".into());
            let spec = v.spec(&style)?;
            let swap = v.fs == "swap";
            let file = if swap {
                match self.fam() {
                    Family::Debian => "none".to_string(),
                    _ => "swap".to_string(),
                }
            } else {
                v.mount.clone().unwrap_or_default()
            };
            let default_opts = match (self.fam(), v.fs.as_str(), file.as_str()) {
                (Family::Debian, "swap", _) => "sw",
                (Family::Debian, "ext4", "/") => "errors=remount-ro",
                (Family::Rhel | Family::Fedora, "vfat", _) => "umask=0077,shortname=winnt",
                (Family::Debian, "vfat", _) => "umask=0077",
                (_, "vfat", _) => "umask=0077",
                _ => "defaults",
            };
            let opts = v.mnt.options.clone().unwrap_or_else(|| default_opts.into());
            let pass = match (self.fam(), v.fs.as_str(), file.as_str()) {
                (_, "swap", _) | (_, "xfs", _) => 0,
                (Family::Suse, _, _) => 0,
                (_, _, "/") => 1,
                _ => 2,
            };
            if self.fam() == Family::Debian && !swap {
                t += &format!("# {} was on {} during installation\n", file, v.dev);
            }
            if self.fam() == Family::Debian && swap {
                t += &format!("# swap was on {} during installation\n", v.dev);
            }
            let vfstype = if swap { "swap" } else { v.fs.as_str() };
            let line = format!("{spec} {file} {vfstype} {opts} 0 {pass}");
            t += &line;
            t.push('\n');
            self.facts.fstab.push(json!({
                "line": line, "spec": spec, "file": file, "vfstype": vfstype,
                "options": opts, "volume": v.id, "kind": "volume", "resolvable": true,
            }));
        }
        for l in &r.fstab.extra {
            let l = self.expand(l, Path::new("guest.toml fstab.extra"))?;
            t += &l;
            t.push('\n');
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 3 && !l.trim_start().starts_with('#') {
                // Extra lines name no volume of this disk: a crypttab mapping, a swap file,
                // or a device that was not migrated.
                let crypt = f[0].strip_prefix("/dev/mapper/").is_some_and(|n| {
                    r.crypttab
                        .iter()
                        .any(|c| c.split_whitespace().next() == Some(n))
                });
                let kind = if crypt {
                    "crypt"
                } else if f[0].starts_with('/') && !f[0].starts_with("/dev/") {
                    "file"
                } else {
                    "missing"
                };
                self.facts.fstab.push(json!({
                    "line": l, "spec": f[0], "file": f[1], "vfstype": f[2],
                    "options": f.get(3).copied().unwrap_or("defaults"),
                    "volume": null, "kind": kind, "resolvable": kind != "missing",
                }));
            }
        }
        self.write("/etc/fstab", t)
    }

    fn elf(&self, etype: u16, payload: &str) -> Vec<u8> {
        elf_bytes(&self.recipe.arch, etype, payload)
    }

    fn binaries(&self) -> Result<()> {
        let bin = if self.recipe.usrmerge {
            "/usr/bin"
        } else {
            "/bin"
        };
        for b in ["bash", "ls", "sh", "mount"] {
            self.write(&format!("{bin}/{b}"), self.elf(3, b))?;
        }
        self.write("/usr/bin/python3", self.elf(3, "python3"))?;
        let lib = self.libdir();
        self.write(&format!("{lib}/systemd/systemd"), self.elf(3, "systemd"))?;
        let sbin = if self.recipe.usrmerge {
            "/usr/sbin"
        } else {
            "/sbin"
        };
        self.symlink(&format!("{lib}/systemd/systemd"), &format!("{sbin}/init"))?;
        match self.fam() {
            Family::Rhel | Family::Fedora | Family::Suse => {
                self.write("/usr/bin/dracut", "#!/bin/bash\n# dracut marker\n")?;
                self.write("/usr/bin/rpm", self.elf(3, "rpm"))?;
                self.mkdir("/var/lib/rpm")?;
            }
            Family::Debian => {
                self.write(
                    "/usr/sbin/update-initramfs",
                    "#!/bin/sh\n# update-initramfs marker\n",
                )?;
                self.write("/usr/bin/dpkg", self.elf(3, "dpkg"))?;
                self.dpkg_status()?;
            }
        }
        if !self.recipe.lvm.is_empty() {
            self.write(&format!("{sbin}/lvm"), self.elf(3, "lvm"))?;
        }
        Ok(())
    }

    /// A short /var/lib/dpkg/status naming the kernel and tool packages.
    fn dpkg_status(&self) -> Result<()> {
        let arch = if self.recipe.arch == "i386" {
            "i386"
        } else {
            "amd64"
        };
        let mut t = String::new();
        let mut pkgs: Vec<(String, String)> = vec![
            ("base-files".into(), self.os("VERSION_ID")),
            ("initramfs-tools".into(), "0.140".into()),
            ("grub-common".into(), "2.06-3".into()),
        ];
        for k in &self.recipe.kernels {
            pkgs.push((format!("linux-image-{}", k.version), k.version.clone()));
        }
        for tool in &self.recipe.tools {
            if tool == "open-vm-tools" || tool == "cloud-init" || tool == "qemu-guest-agent" {
                pkgs.push((tool.clone(), "2:11.0.5-4".into()));
            }
        }
        for (p, v) in pkgs {
            t += &format!(
                "Package: {p}\nStatus: install ok installed\nPriority: optional\nArchitecture: {arch}\nVersion: {v}\nDescription: {p}\n\n"
            );
        }
        self.write("/var/lib/dpkg/status", t)
    }

    fn unit(&self, name: &str, desc: &str, exec: &str) -> Result<()> {
        let dir = self.unitdir();
        self.write(
            &format!("{dir}/{name}"),
            format!(
                "[Unit]\nDescription={desc}\n\n[Service]\nExecStart={exec}\n\n[Install]\nWantedBy=multi-user.target\n"
            ),
        )?;
        self.symlink(
            &format!("{dir}/{name}"),
            &format!("/etc/systemd/system/multi-user.target.wants/{name}"),
        )
    }

    /// Marker files of a hypervisor tool or agent, laid out as its package installs them.
    fn plant_tool(&mut self, tool: &str) -> Result<()> {
        let mut files = vec![];
        match tool {
            "open-vm-tools" => {
                self.write("/usr/bin/vmtoolsd", self.elf(3, "vmtoolsd"))?;
                self.write(
                    "/usr/bin/vmware-toolbox-cmd",
                    self.elf(3, "vmware-toolbox-cmd"),
                )?;
                self.write(
                    "/etc/vmware-tools/tools.conf.example",
                    "[logging]\nlog = true\n",
                )?;
                let unit = if self.fam() == Family::Debian {
                    "open-vm-tools.service"
                } else {
                    "vmtoolsd.service"
                };
                self.unit(
                    unit,
                    "Service for virtual machines hosted on VMware",
                    "/usr/bin/vmtoolsd",
                )?;
                files.push("/usr/bin/vmtoolsd".to_string());
                files.push(format!(
                    "/etc/systemd/system/multi-user.target.wants/{unit}"
                ));
            }
            "vmware-tools" => {
                // The old tarball installer (vmware-install.pl).
                self.write(
                    "/etc/vmware-tools/locations",
                    "file /etc/vmware-tools/tools.conf\nanswer BINDIR /usr/bin\nanswer LIBDIR /usr/lib/vmware-tools\n",
                )?;
                self.write("/etc/vmware-tools/tools.conf", "")?;
                self.write(
                    "/usr/lib/vmware-tools/sbin64/vmtoolsd",
                    self.elf(3, "vmtoolsd"),
                )?;
                self.write(
                    "/etc/init.d/vmware-tools",
                    "#!/bin/sh\n### BEGIN INIT INFO\n# Provides: vmware-tools\n### END INIT INFO\n",
                )?;
                self.write("/usr/bin/vmware-uninstall-tools.pl", "#!/usr/bin/perl\n")?;
                files.push("/etc/vmware-tools/locations".into());
                files.push("/usr/bin/vmware-uninstall-tools.pl".into());
            }
            "hyperv-daemons" => {
                for d in ["hypervkvpd", "hypervvssd", "hypervfcopyd"] {
                    self.write(&format!("/usr/sbin/{d}"), self.elf(3, d))?;
                }
                self.unit(
                    "hypervkvpd.service",
                    "Hyper-V KVP daemon",
                    "/usr/sbin/hypervkvpd -n",
                )?;
                files.push("/usr/sbin/hypervkvpd".into());
            }
            "xe-guest-utilities" => {
                self.write("/usr/sbin/xe-daemon", self.elf(3, "xe-daemon"))?;
                self.write(
                    "/usr/sbin/xe-linux-distribution",
                    "#!/bin/sh\n# xe-linux-distribution marker\n",
                )?;
                self.unit(
                    "xe-linux-distribution.service",
                    "Linux Guest Agent",
                    "/usr/sbin/xe-daemon",
                )?;
                files.push("/usr/sbin/xe-daemon".into());
            }
            "virtualbox" => {
                let d = "/opt/VBoxGuestAdditions-6.1.38";
                self.write(&format!("{d}/sbin/VBoxService"), self.elf(3, "VBoxService"))?;
                self.write(&format!("{d}/uninstall.sh"), "#!/bin/sh\n")?;
                self.symlink(&format!("{d}/sbin/VBoxService"), "/usr/sbin/VBoxService")?;
                self.unit(
                    "vboxadd-service.service",
                    "vboxadd-service",
                    "/usr/sbin/VBoxService",
                )?;
                files.push(format!("{d}/uninstall.sh"));
            }
            "qemu-guest-agent" => {
                self.write("/usr/bin/qemu-ga", self.elf(3, "qemu-ga"))?;
                files.push("/usr/bin/qemu-ga".into());
            }
            "cloud-init" => {
                self.write(
                    "/usr/bin/cloud-init",
                    "#!/usr/bin/python3\n# cloud-init marker\n",
                )?;
                if !self.p("/etc/cloud/cloud.cfg").exists() {
                    bail!("tool cloud-init: the overlay must provide /etc/cloud/cloud.cfg");
                }
                files.push("/etc/cloud/cloud.cfg".into());
            }
            t => bail!("unknown tool {t:?}"),
        }
        self.facts.tools.push(json!({"name": tool, "files": files}));
        Ok(())
    }

    fn kernel(&mut self, k: &Kernel, rescue: bool) -> Result<()> {
        let r = self.recipe;
        let v = &k.version;
        let kv = kver_num(v);
        let (vmlinuz, initrd) = if rescue {
            (
                format!("vmlinuz-0-rescue-{}", self.machine_id),
                format!("initramfs-0-rescue-{}.img", self.machine_id),
            )
        } else {
            (format!("vmlinuz-{v}"), self.initramfs_name(v))
        };
        self.write(&format!("/boot/{vmlinuz}"), bzimage(v, &k.build))?;
        if !rescue {
            self.write(&format!("/boot/config-{v}"), kconfig(r, k))?;
            self.write(
                &format!("/boot/System.map-{v}"),
                "ffffffff81000000 T _text\nffffffff81000000 T startup_64\n",
            )?;
            if matches!(self.fam(), Family::Rhel | Family::Fedora) {
                self.write(
                    &format!("/boot/.{vmlinuz}.hmac"),
                    format!("0000  /boot/{vmlinuz}\n"),
                )?;
            }
        }
        let builtin = k.virtio == "builtin";
        let ext = match r.module_compress.as_str() {
            "xz" => ".ko.xz",
            "zst" => ".ko.zst",
            _ => ".ko",
        };
        let is_builtin = |m: &Module| builtin && (m.virtio || m.name == "failover");
        let present: Vec<&Module> = MODULES
            .iter()
            .filter(|m| exists(m.name, kv) && !is_builtin(m))
            .collect();
        let moddir = format!("{}/modules/{v}", self.libdir());
        let dep_line = |m: &Module| -> String {
            let d: Vec<String> = deps(m.name, kv)
                .into_iter()
                .filter_map(|n| MODULES.iter().find(|x| x.name == n))
                .filter(|x| !is_builtin(x))
                .map(|x| format!("kernel/{}{ext}", x.path))
                .collect();
            format!("kernel/{}{ext}: {}", m.path, d.join(" "))
                .trim_end()
                .to_string()
        };
        let mut alias = String::from("# Aliases extracted from modules themselves.\n");
        for m in &present {
            if let Some(a) = module_alias(m.name) {
                alias += &format!("alias {a} {}\n", m.name);
            }
        }
        let builtin_list: String = MODULES
            .iter()
            .filter(|m| exists(m.name, kv) && is_builtin(m))
            .map(|m| format!("kernel/{}.ko\n", m.path))
            .collect();
        if !rescue {
            let mut dep = String::new();
            let mut raw = vec![];
            for m in &present {
                let p = format!("{moddir}/kernel/{}.ko", m.path);
                self.write(&p, module_bytes(&r.arch, m.name, v, kv))?;
                raw.push(self.p(&p));
                dep += &dep_line(m);
                dep.push('\n');
            }
            // One compressor run for all modules: a process per file costs seconds.
            compress_in_place(&raw, &r.module_compress, &self.scratch)?;
            self.write(&format!("{moddir}/modules.dep"), &dep)?;
            self.write(&format!("{moddir}/modules.alias"), &alias)?;
            self.write(&format!("{moddir}/modules.builtin"), &builtin_list)?;
            self.write(
                &format!("{moddir}/modules.order"),
                present
                    .iter()
                    .map(|m| format!("kernel/{}.ko\n", m.path))
                    .collect::<String>(),
            )?;
        }

        // Initramfs: the drivers a hostonly build on the source hypervisor picks, plus virtio
        // when the recipe says so; closed over dependencies.
        let mut want: BTreeSet<&str> = BTreeSet::new();
        let tools = &r.tools;
        if tools.iter().any(|t| t == "hyperv-daemons") {
            want.extend(["hv_storvsc", "hv_netvsc"]);
        } else if tools.iter().any(|t| t.contains("vm")) {
            want.extend(["vmw_pvscsi", "mptspi", "vmxnet3"]);
        } else {
            want.extend(["ahci", "e1000"]);
        }
        for vol in &self.layout.volumes {
            match (vol.fs.as_str(), vol.mount.is_some()) {
                ("xfs", true) => {
                    want.insert("xfs");
                }
                ("ext4", true) => {
                    want.insert("ext4");
                }
                _ => {}
            }
        }
        if !r.lvm.is_empty() {
            want.insert("dm_mod");
        }
        if k.initramfs_virtio && !builtin {
            want.extend(VIRTIO_BOOT.iter().copied());
        }
        let mut closed: BTreeSet<&str> = BTreeSet::new();
        let mut stack: Vec<&str> = want.into_iter().collect();
        while let Some(n) = stack.pop() {
            if !exists(n, kv) || closed.contains(n) {
                continue;
            }
            if MODULES.iter().any(|m| m.name == n && is_builtin(m)) {
                continue;
            }
            closed.insert(n);
            stack.extend(deps(n, kv));
        }
        let inc: Vec<&Module> = present
            .iter()
            .copied()
            .filter(|m| closed.contains(m.name))
            .collect();
        let has_virtio_blk = builtin || inc.iter().any(|m| m.name == "virtio_blk");

        let stage = self
            .scratch
            .join(format!("initrd-{}", if rescue { "rescue" } else { v }));
        let _ = fs::remove_dir_all(&stage);
        let s = |p: &str| stage.join(p.trim_start_matches('/'));
        let w = |p: &str, data: &[u8]| -> Result<()> {
            let p = s(p);
            fs::create_dir_all(p.parent().unwrap_or(&stage))?;
            fs::write(&p, data).with_context(|| format!("writing {}", p.display()))?;
            set_exec_bit(&p, data)
        };
        let ln = |target: &str, p: &str| -> Result<()> {
            let p = s(p);
            fs::create_dir_all(p.parent().unwrap_or(&stage))?;
            std::os::unix::fs::symlink(target, &p)
                .with_context(|| format!("symlink {}", p.display()))
        };
        let dracut = self.fam() != Family::Debian;
        // Debian 12 / Ubuntu 20.04+ and every dracut image on a merged-/usr host use usr/lib.
        let inner_lib = if r.usrmerge || dracut {
            "usr/lib"
        } else {
            "lib"
        };
        for d in [
            "dev", "proc", "sys", "run", "tmp", "etc", "usr/bin", "usr/sbin", "var",
        ] {
            fs::create_dir_all(s(d))?;
        }
        if inner_lib == "usr/lib" {
            for (l, t) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")] {
                ln(t, l)?;
            }
            if r.arch == "x86_64" {
                fs::create_dir_all(s("usr/lib64"))?;
                ln("usr/lib64", "lib64")?;
            }
        }
        let imod = format!("{inner_lib}/modules/{v}");
        let mut idep = String::new();
        let mut names = vec![];
        for m in &inc {
            // Same bytes as the installed module (the rescue kernel reuses the default's).
            let installed = self.p(&format!("{moddir}/kernel/{}{ext}", m.path));
            let data =
                fs::read(&installed).with_context(|| format!("reading {}", installed.display()))?;
            w(&format!("{imod}/kernel/{}{ext}", m.path), &data)?;
            idep += &dep_line(m);
            idep.push('\n');
            names.push(m.name);
        }
        w(&format!("{imod}/modules.dep"), idep.as_bytes())?;
        w(&format!("{imod}/modules.alias"), alias.as_bytes())?;
        w(&format!("{imod}/modules.builtin"), builtin_list.as_bytes())?;
        let arch = &r.arch;
        if dracut {
            w("usr/lib/systemd/systemd", &elf_bytes(arch, 3, "systemd"))?;
            ln("usr/lib/systemd/systemd", "init")?;
            w("usr/bin/bash", &elf_bytes(arch, 3, "bash"))?;
            w("usr/bin/udevadm", &elf_bytes(arch, 3, "udevadm"))?;
            w(
                "usr/lib/dracut/build-parameter.txt",
                format!(
                    " --kver '{v}' -f{}",
                    if rescue {
                        " --no-hostonly -a rescue"
                    } else {
                        " --hostonly"
                    }
                )
                .as_bytes(),
            )?;
            if !rescue {
                w(
                    "usr/lib/dracut/hostonly-kernel-modules.txt",
                    names
                        .iter()
                        .map(|n| format!("{n}\n"))
                        .collect::<String>()
                        .as_bytes(),
                )?;
            }
            let rel = format!(
                "NAME=\"{}\"\nVERSION=\"{} dracut-033-572.el7\"\nID=\"{}\"\nPRETTY_NAME=\"{}\"\n",
                self.os("NAME"),
                self.os("VERSION"),
                self.os("ID"),
                self.os("PRETTY_NAME")
            );
            w("usr/lib/initrd-release", rel.as_bytes())?;
            ln("../usr/lib/initrd-release", "etc/initrd-release")?;
            ln("initrd-release", "etc/os-release")?;
            if !r.lvm.is_empty() {
                w("usr/sbin/lvm", &elf_bytes(arch, 3, "lvm"))?;
                let lvs: String = r
                    .lvm
                    .iter()
                    .filter(|l| l.mnt.mount.as_deref() == Some("/") || l.fs == "swap")
                    .map(|l| format!(" rd.lvm.lv={}/{} ", l.vg, l.name))
                    .collect();
                w("etc/cmdline.d/90lvm.conf", lvs.as_bytes())?;
            }
        } else {
            w(
                "init",
                b"#!/bin/sh\n\n# Default PATH differs between shells, and is not automatically exported\n\
                  # by klibc dash.  Make it consistent.\nexport PATH=/sbin:/usr/sbin:/bin:/usr/bin\n\n\
                  [ -d /dev ] || mkdir -m 0755 /dev\n. /scripts/functions\nmaybe_break top\n\
                  run_scripts /scripts/init-top\nload_modules\nmountroot\nexec run-init ${drop_caps} \"${rootmnt}\" \"${init}\" \"$@\"\n",
            )?;
            w("usr/bin/busybox", &elf_bytes(arch, 3, "busybox"))?;
            w("usr/sbin/modprobe", &elf_bytes(arch, 3, "kmod"))?;
            let modules = if k.initramfs_virtio || builtin {
                "most"
            } else {
                "dep"
            };
            w(
                "conf/initramfs.conf",
                format!("MODULES={modules}\nBUSYBOX=y\nRUNSIZE=10%\nFSTYPE=auto\n").as_bytes(),
            )?;
            w(
                "conf/arch.conf",
                format!(
                    "DPKG_ARCH={}\n",
                    if arch == "i386" { "i386" } else { "amd64" }
                )
                .as_bytes(),
            )?;
            w("conf/modules", b"")?;
            w("scripts/init-top/udev", b"#!/bin/sh\n")?;
            w("scripts/local", b"# Local filesystem mounting\n")?;
            w("scripts/functions", b"# -*- shell-script -*-\n")?;
        }
        if inner_lib == "lib" {
            fs::create_dir_all(s("bin"))?;
            fs::create_dir_all(s("sbin"))?;
        }
        // Timestamps of the archive members do not matter; the order does: sort for stability.
        let main = cpio(&stage, &self.scratch)?;
        let compressed = compress(&main, &k.compress, &self.scratch)?;
        let mut image = vec![];
        if k.microcode {
            let mstage = self.scratch.join("microcode");
            let _ = fs::remove_dir_all(&mstage);
            fs::create_dir_all(mstage.join("kernel/x86/microcode"))?;
            let mut blob = b"\x01\x00\x00\x00".to_vec();
            blob.extend(std::iter::repeat_n(0x5au8, 2044));
            fs::write(mstage.join("kernel/x86/microcode/GenuineIntel.bin"), blob)?;
            if dracut {
                fs::write(mstage.join("early_cpio"), "1\n")?;
            }
            image.extend(cpio(&mstage, &self.scratch)?);
            // The next segment must start 4-byte aligned; cpio pads to 512 already.
            while image.len() % 4 != 0 {
                image.push(0);
            }
        }
        image.extend(compressed);
        self.write(&format!("/boot/{initrd}"), &image)?;
        if !rescue && self.fam() == Family::Suse && k.default {
            self.symlink(&vmlinuz, "/boot/vmlinuz")?;
            self.symlink(&initrd, "/boot/initrd")?;
        }
        if !rescue && self.fam() == Family::Debian && k.default {
            self.symlink(&vmlinuz, "/boot/vmlinuz")?;
            self.symlink(&initrd, "/boot/initrd.img")?;
        }
        let _ = fs::remove_dir_all(&stage);

        self.facts.kernels.push(json!({
            "version": v,
            "rescue": rescue,
            "default": k.default && !rescue,
            "vmlinuz": format!("/boot/{vmlinuz}"),
            "banner": format!("{v} {}", k.build),
            "config": if rescue { Value::Null } else { json!(format!("/boot/config-{v}")) },
            "modules_dir": if rescue { Value::Null } else { json!(format!("/lib/modules/{v}")) },
            "module_ext": ext,
            "virtio": k.virtio,
            "initramfs": {
                "path": format!("/boot/{initrd}"),
                "compression": k.compress,
                "early_microcode": k.microcode,
                "has_virtio": has_virtio_blk,
                "modules_dir": format!("/{imod}"),
                "modules": names,
            },
        }));
        Ok(())
    }

    fn root_spec(&self) -> Result<String> {
        let root = self
            .layout
            .volume_at("/")
            .context("the recipe has no volume mounted at /")?;
        let style = self
            .recipe
            .boot
            .root_spec
            .clone()
            .or_else(|| root.mnt.fstab.clone())
            .unwrap_or_else(|| "uuid".into());
        root.spec(&style)
    }

    fn bootloader(&mut self, kernels: &[Kernel]) -> Result<()> {
        let r = self.recipe;
        let b = &r.boot;
        let efi = b.firmware == "uefi";
        let bootvol = self
            .layout
            .volume_for("/boot/vmlinuz")
            .context("no volume holds /boot")?
            .clone();
        let bootpart = self
            .layout
            .partitions
            .iter()
            .find(|p| bootvol.on == format!("part:{}", p.id));
        let pt = if self.layout.table == "gpt" {
            "gpt"
        } else {
            "msdos"
        };
        let hint = bootpart
            .map(|p| format!("hd0,{pt}{}", p.number))
            .unwrap_or_else(|| format!("lvmid/{}", bootvol.id));
        let cmdline = format!("root={} ro {}", self.root_spec()?, b.cmdline);
        let cmdline = cmdline.trim_end().to_string();
        let grub_dir = self.grub_dir();
        let fsmod = if bootvol.fs == "xfs" { "xfs" } else { "ext2" };
        let linux = if b.linuxefi && efi {
            "linuxefi"
        } else if b.linuxefi {
            "linux16"
        } else {
            "linux"
        };
        let initrd = match linux {
            "linuxefi" => "initrdefi",
            "linux16" => "initrd16",
            _ => "initrd",
        };
        let search = format!(
            "\tinsmod part_{pt}\n\tinsmod {fsmod}\n\tset root='{hint}'\n\
             \tif [ x$feature_platform_search_hint = xy ]; then\n\
             \t  search --no-floppy --fs-uuid --set=root --hint='{hint}'  {u}\n\
             \telse\n\t  search --no-floppy --fs-uuid --set=root {u}\n\tfi\n",
            u = bootvol.uuid
        );
        let name = self.os("NAME");
        let version = self.os("VERSION");
        let mut cfg = String::from(
            "#\n# DO NOT EDIT THIS FILE\n#\n# It is automatically generated by grub2-mkconfig using templates\n\
             # from /etc/grub.d and settings from /etc/default/grub\n#\n\n\
             ### BEGIN /etc/grub.d/00_header ###\nset pager=1\n\n\
             if [ -f ${config_directory}/grubenv ]; then\n  load_env -f ${config_directory}/grubenv\n\
             elif [ -s $prefix/grubenv ]; then\n  load_env\nfi\n",
        );
        if self.fam() == Family::Debian {
            cfg = cfg.replace("grub2-mkconfig", "grub-mkconfig");
            cfg += "if [ \"${next_entry}\" ] ; then\n   set default=\"${next_entry}\"\n   set next_entry=\n   save_env next_entry\n   set boot_once=true\nelse\n   set default=\"0\"\nfi\n";
        } else {
            cfg += "if [ \"${next_entry}\" ] ; then\n   set default=\"${next_entry}\"\n   set next_entry=\n   save_env next_entry\n   set boot_once=true\nelse\n   set default=\"${saved_entry}\"\nfi\n";
        }
        cfg += "\nfunction load_video {\n  insmod all_video\n}\n\nterminal_output console\nset timeout=5\n### END /etc/grub.d/00_header ###\n\n### BEGIN /etc/grub.d/10_linux ###\n";
        let mut entries: Vec<Value> = vec![];
        let mut saved_entry = String::new();
        let boot_kernels: Vec<(String, String, String)> = {
            let mut v: Vec<(String, String, String)> = kernels
                .iter()
                .map(|k| {
                    (
                        k.version.clone(),
                        format!("vmlinuz-{}", k.version),
                        self.initramfs_name(&k.version),
                    )
                })
                .collect();
            if matches!(self.fam(), Family::Rhel | Family::Fedora) {
                let mid = &self.machine_id;
                v.push((
                    format!("0-rescue-{mid}"),
                    format!("vmlinuz-0-rescue-{mid}"),
                    format!("initramfs-0-rescue-{mid}.img"),
                ));
            }
            v
        };
        let rootvol_uuid = self
            .layout
            .volume_at("/")
            .map(|v| v.uuid.clone())
            .unwrap_or_default();
        let mut grubenv = String::from("# GRUB Environment Block\n");
        if b.bls {
            cfg += &search.replace('\t', "");
            if b.grubenv_kernelopts {
                cfg += &format!(
                    "if [ -z \"${{kernelopts}}\" ]; then\n  set kernelopts=\"{cmdline} \"\nfi\n"
                );
            }
            cfg += "\ninsmod blscfg\nblscfg\n### END /etc/grub.d/10_linux ###\n";
            for (ver, vmlinuz, initrd_name) in &boot_kernels {
                let rescue = ver.starts_with("0-rescue");
                let title = if rescue {
                    format!("{name} (0-rescue-{}) {version}", self.machine_id)
                } else {
                    format!("{name} ({ver}) {version}")
                };
                let options = if b.grubenv_kernelopts {
                    "$kernelopts $tuned_params".to_string()
                } else {
                    cmdline.clone()
                };
                let id = format!("{}-{ver}", self.machine_id);
                let text = format!(
                    "title {title}\nversion {ver}\nlinux {}\ninitrd {}{}\noptions {options}\nid {}-20191112102345-{ver}\ngrub_users $grub_users\ngrub_arg --unrestricted\ngrub_class kernel\n",
                    self.boot_rel(vmlinuz),
                    self.boot_rel(initrd_name),
                    if b.grubenv_kernelopts { " $tuned_initrd" } else { "" },
                    self.os("ID"),
                );
                let path = format!("/boot/loader/entries/{id}.conf");
                self.write(&path, &text)?;
                if saved_entry.is_empty() {
                    saved_entry = id.clone();
                }
                entries.push(json!({
                    "title": title, "kernel": format!("/boot/{vmlinuz}"),
                    "initrd": format!("/boot/{initrd_name}"), "cmdline": options, "file": path,
                }));
            }
            grubenv += &format!("saved_entry={saved_entry}\n");
            if b.grubenv_kernelopts {
                grubenv += &format!("kernelopts={cmdline} \n");
            }
            grubenv += "boot_success=0\n";
        } else {
            let class = match self.fam() {
                Family::Rhel => format!("--class {} ", self.os("ID")),
                Family::Fedora => "--class fedora ".into(),
                Family::Suse => format!("--class {} ", self.os("ID").replace("-", "_")),
                Family::Debian => format!("--class {} ", self.os("ID")),
            };
            let mut add = |cfg: &mut String,
                           title: &str,
                           id: &str,
                           ver: &str,
                           vmlinuz: &str,
                           initrd_name: &str,
                           indent: &str| {
                let opts = if self.fam() == Family::Rhel && !ver.starts_with("0-rescue") {
                    "--unrestricted "
                } else {
                    ""
                };
                *cfg += &format!(
                    "{indent}menuentry '{title}' {class}--class gnu-linux --class gnu --class os {opts}$menuentry_id_option '{id}' {{\n\
                     {indent}\tload_video\n{indent}\tset gfxpayload=keep\n{indent}\tinsmod gzio\n{}\
                     {indent}\techo\t'Loading Linux {ver} ...'\n\
                     {indent}\t{linux} {} {cmdline}\n\
                     {indent}\techo\t'Loading initial ramdisk ...'\n\
                     {indent}\t{initrd} {}\n{indent}}}\n",
                    search.lines().map(|l| format!("{indent}{l}\n")).collect::<String>(),
                    self.boot_rel(vmlinuz),
                    self.boot_rel(initrd_name),
                );
                entries.push(json!({
                    "title": title, "kernel": format!("/boot/{vmlinuz}"),
                    "initrd": format!("/boot/{initrd_name}"), "cmdline": cmdline,
                }));
            };
            match self.fam() {
                Family::Rhel | Family::Fedora => {
                    for (ver, vmlinuz, initrd_name) in &boot_kernels {
                        let title = format!("{name} ({ver}) {version}");
                        if saved_entry.is_empty() {
                            saved_entry = title.clone();
                        }
                        let id = format!("gnulinux-{ver}-advanced-{rootvol_uuid}");
                        add(&mut cfg, &title, &id, ver, vmlinuz, initrd_name, "");
                    }
                }
                Family::Debian | Family::Suse => {
                    let simple = if self.fam() == Family::Debian {
                        name.clone()
                    } else {
                        self.os("PRETTY_NAME")
                    };
                    let (ver, vmlinuz, initrd_name) = &boot_kernels[0];
                    add(
                        &mut cfg,
                        &simple,
                        &format!("gnulinux-simple-{rootvol_uuid}"),
                        ver,
                        vmlinuz,
                        initrd_name,
                        "",
                    );
                    cfg += &format!("submenu 'Advanced options for {simple}' $menuentry_id_option 'gnulinux-advanced-{rootvol_uuid}' {{\n");
                    for (ver, vmlinuz, initrd_name) in &boot_kernels {
                        let title = format!("{simple}, with Linux {ver}");
                        let id = format!("gnulinux-{ver}-advanced-{rootvol_uuid}");
                        add(&mut cfg, &title, &id, ver, vmlinuz, initrd_name, "\t");
                    }
                    cfg += "}\n";
                    saved_entry = "0".into();
                }
            }
            cfg += "\n### END /etc/grub.d/10_linux ###\n";
            grubenv += &format!("saved_entry={saved_entry}\n");
        }
        cfg += "\n### BEGIN /etc/grub.d/40_custom ###\n# This file provides an easy way to add custom menu entries.\n### END /etc/grub.d/40_custom ###\n";
        while grubenv.len() < 1024 {
            grubenv.push('#');
        }

        let vendor = b.efi_vendor.clone().unwrap_or_else(|| self.os("ID"));
        let esp_dir = format!("/boot/efi/EFI/{vendor}");
        let mut cfg_paths = vec![];
        let mut grubenv_path = format!("{grub_dir}/grubenv");
        if efi {
            if self.layout.volume_at("/boot/efi").is_none() {
                bail!("uefi firmware but no volume mounted at /boot/efi");
            }
            let grub_efi = if r.arch == "x86_64" {
                "grubx64.efi"
            } else {
                "grubia32.efi"
            };
            for f in ["shimx64.efi", "mmx64.efi", grub_efi] {
                self.write(&format!("{esp_dir}/{f}"), pe_bytes(f))?;
            }
            self.write(
                &format!("{esp_dir}/BOOTX64.CSV"),
                format!("shimx64.efi,{vendor},,This is the boot entry for {vendor}\n")
                    .encode_utf16()
                    .flat_map(|c| c.to_le_bytes())
                    .collect::<Vec<u8>>(),
            )?;
            self.write("/boot/efi/EFI/BOOT/BOOTX64.EFI", pe_bytes("shimx64.efi"))?;
            self.write("/boot/efi/EFI/BOOT/fbx64.efi", pe_bytes("fbx64.efi"))?;
            if b.efi_full_cfg {
                // RHEL 7/8 UEFI: the real grub.cfg and grubenv live on the ESP.
                self.write(&format!("{esp_dir}/grub.cfg"), &cfg)?;
                self.write(&format!("{esp_dir}/grubenv"), &grubenv)?;
                self.symlink(
                    &format!("../efi/EFI/{vendor}/grubenv"),
                    &format!("{grub_dir}/grubenv"),
                )?;
                grubenv_path = format!("{esp_dir}/grubenv");
                cfg_paths.push(format!("{esp_dir}/grub.cfg"));
            } else {
                let prefix_dir = if self.layout.volume_at("/boot").is_some() {
                    grub_dir.trim_start_matches("/boot").to_string()
                } else {
                    grub_dir.to_string()
                };
                let stub = if self.fam() == Family::Debian {
                    format!(
                        "search.fs_uuid {} root {hint} \nset prefix=($root)'{prefix_dir}'\nconfigfile $prefix/grub.cfg\n",
                        bootvol.uuid
                    )
                } else {
                    format!(
                        "search --no-floppy --fs-uuid --set=dev {}\nset prefix=($dev){prefix_dir}\nexport $prefix\nconfigfile $prefix/grub.cfg\n",
                        bootvol.uuid
                    )
                };
                self.write(&format!("{esp_dir}/grub.cfg"), &stub)?;
                self.write(&format!("{grub_dir}/grub.cfg"), &cfg)?;
                self.write(&format!("{grub_dir}/grubenv"), &grubenv)?;
                cfg_paths.push(format!("{grub_dir}/grub.cfg"));
                self.facts.files.insert(format!("{esp_dir}/grub.cfg"), stub);
            }
            self.mkdir(&format!("{grub_dir}/x86_64-efi"))?;
            self.write(
                &format!("{grub_dir}/x86_64-efi/normal.mod"),
                elf_bytes("x86_64", 1, "normal.mod"),
            )?;
        } else {
            self.write(&format!("{grub_dir}/grub.cfg"), &cfg)?;
            self.write(&format!("{grub_dir}/grubenv"), &grubenv)?;
            self.write(
                &format!("{grub_dir}/i386-pc/normal.mod"),
                elf_bytes("i386", 1, "normal.mod"),
            )?;
            self.write(
                &format!("{grub_dir}/i386-pc/core.img"),
                b"\x52\xe8\x28\x01\x74\x08\x56\xbe\x33\x81\xe8\x4c\x01\x5e\xbf\xf4",
            )?;
            cfg_paths.push(format!("{grub_dir}/grub.cfg"));
        }
        if self.fam() == Family::Rhel || self.fam() == Family::Fedora {
            // /etc/grub2.cfg (and /etc/grub2-efi.cfg) point at the active grub.cfg.
            let link = if efi {
                "/etc/grub2-efi.cfg"
            } else {
                "/etc/grub2.cfg"
            };
            let target = cfg_paths[0].clone();
            self.symlink(&format!("..{target}"), link)?;
        }
        self.bootloader_facts(json!({
            "firmware": b.firmware,
            "loader": "grub2",
            "bls": b.bls,
            "config": cfg_paths,
            "grubenv": grubenv_path,
            "efi_dir": if efi { json!(esp_dir) } else { Value::Null },
            "saved_entry": saved_entry,
            "cmdline": cmdline,
            "root": self.root_spec()?,
            "linux_cmd": linux,
            "entries": entries,
        }));
        Ok(())
    }

    fn bootloader_facts(&mut self, v: Value) {
        self.facts.bootloader = v;
    }
}

/// Scripts and non-relocatable ELF files get mode 0755, like a package would install them.
fn set_exec_bit(p: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let exec =
        data.starts_with(b"#!") || (data.starts_with(b"\x7fELF") && data.get(16) != Some(&1));
    if exec {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod {}", p.display()))?;
    }
    Ok(())
}

/// Expands `{{key}}` placeholders; an unknown key is an error naming the file.
pub fn expand(vars: &BTreeMap<String, String>, text: &str, origin: &Path) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            bail!("{}: unterminated {{{{", origin.display())
        };
        let key = after[..j].trim();
        match vars.get(key) {
            Some(v) => out.push_str(v),
            None => bail!("{}: unknown placeholder {{{{{key}}}}}", origin.display()),
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn normalize(p: &str) -> String {
    let mut out: Vec<&str> = vec![];
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// A bare ELF header (ELF64 x86-64 or ELF32 i386) followed by a marker string.
pub fn elf_bytes(arch: &str, etype: u16, payload: &str) -> Vec<u8> {
    let is64 = arch == "x86_64";
    let mut h = vec![0u8; if is64 { 64 } else { 52 }];
    h[0..4].copy_from_slice(b"\x7fELF");
    h[4] = if is64 { 2 } else { 1 };
    h[5] = 1; // little endian
    h[6] = 1;
    h[16..18].copy_from_slice(&etype.to_le_bytes());
    h[18..20].copy_from_slice(&(if is64 { 62u16 } else { 3u16 }).to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    if is64 {
        h[52..54].copy_from_slice(&64u16.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[58..60].copy_from_slice(&64u16.to_le_bytes());
    } else {
        h[40..42].copy_from_slice(&52u16.to_le_bytes());
        h[42..44].copy_from_slice(&32u16.to_le_bytes());
        h[46..48].copy_from_slice(&40u16.to_le_bytes());
    }
    h.extend_from_slice(payload.as_bytes());
    h.push(0);
    h
}

/// A PE/COFF stub ("MZ" ... "PE\0\0" machine x86-64) naming the EFI binary it stands for.
fn pe_bytes(name: &str) -> Vec<u8> {
    let mut b = vec![0u8; 0x80];
    b[0..2].copy_from_slice(b"MZ");
    b[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    b[0x40..0x44].copy_from_slice(b"PE\0\0");
    b[0x44..0x46].copy_from_slice(&0x8664u16.to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    b
}

/// The first bytes of an x86 bzImage: boot sector magic, the "HdrS" setup header (protocol
/// 2.15) and the kernel_version pointer (0x20e, relative to 0x200) to the banner string.
pub fn bzimage(version: &str, build: &str) -> Vec<u8> {
    const STR_OFF: usize = 0x3c0;
    let mut b = vec![0u8; 0x2000];
    b[0..2].copy_from_slice(b"MZ");
    b[0x1f1] = 0x1b; // setup_sects
    b[0x1fe] = 0x55;
    b[0x1ff] = 0xaa;
    b[0x200] = 0xeb; // jmp over the header
    b[0x201] = 0x6a;
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    b[0x20e..0x210].copy_from_slice(&((STR_OFF - 0x200) as u16).to_le_bytes());
    b[0x211] = 0x01; // loadflags: LOADED_HIGH
    let banner = format!("{version} {build}");
    b[STR_OFF..STR_OFF + banner.len()].copy_from_slice(banner.as_bytes());
    for (i, x) in b.iter_mut().enumerate().skip(0x1000) {
        *x = (i * 31 % 251) as u8;
    }
    b
}

fn kconfig(r: &Recipe, k: &Kernel) -> String {
    let kv = kver_num(&k.version);
    let vio = if k.virtio == "builtin" { "y" } else { "m" };
    let arch = if r.arch == "x86_64" { "x86_64" } else { "x86" };
    let mut t = format!(
        "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/{arch} {} Kernel Configuration\n#\n",
        k.version
    );
    if r.arch == "x86_64" {
        t += "CONFIG_64BIT=y\nCONFIG_X86_64=y\n";
    } else {
        t += "# CONFIG_64BIT is not set\nCONFIG_X86_32=y\n";
    }
    t += "CONFIG_X86=y\nCONFIG_MODULES=y\nCONFIG_BLK_DEV_INITRD=y\nCONFIG_RD_GZIP=y\nCONFIG_RD_BZIP2=y\nCONFIG_RD_LZMA=y\nCONFIG_RD_XZ=y\nCONFIG_RD_LZO=y\nCONFIG_RD_LZ4=y\n";
    if kv >= (5, 9) {
        t += "CONFIG_RD_ZSTD=y\n";
    }
    match r.module_compress.as_str() {
        "xz" => t += "CONFIG_MODULE_COMPRESS_XZ=y\n",
        "zst" => t += "CONFIG_MODULE_COMPRESS_ZSTD=y\n",
        _ => t += "# CONFIG_MODULE_COMPRESS is not set\n",
    }
    t += "CONFIG_HYPERVISOR_GUEST=y\nCONFIG_PARAVIRT=y\nCONFIG_KVM_GUEST=y\n";
    t += &format!("CONFIG_VIRTIO={vio}\nCONFIG_VIRTIO_PCI={vio}\nCONFIG_VIRTIO_PCI_LEGACY=y\n");
    if kv >= (5, 12) {
        t += &format!("CONFIG_VIRTIO_PCI_LIB={vio}\n");
    }
    if kv >= (5, 14) {
        t += &format!("CONFIG_VIRTIO_PCI_LIB_LEGACY={vio}\n");
    }
    t += &format!("CONFIG_VIRTIO_BLK={vio}\nCONFIG_SCSI_VIRTIO={vio}\nCONFIG_VIRTIO_NET={vio}\n");
    if kv >= (4, 17) {
        t += &format!("CONFIG_NET_FAILOVER={vio}\nCONFIG_FAILOVER={vio}\n");
    }
    t += "CONFIG_VIRTIO_BALLOON=m\nCONFIG_VIRTIO_CONSOLE=m\nCONFIG_HW_RANDOM_VIRTIO=m\n";
    t += "CONFIG_VMWARE_PVSCSI=m\nCONFIG_VMXNET3=m\nCONFIG_VMWARE_VMCI=m\nCONFIG_VMWARE_BALLOON=m\nCONFIG_FUSION=y\nCONFIG_FUSION_SPI=m\n";
    t += "CONFIG_E1000=m\nCONFIG_SATA_AHCI=m\nCONFIG_HYPERV=m\nCONFIG_HYPERV_STORAGE=m\nCONFIG_HYPERV_NET=m\n";
    t += "CONFIG_XEN=y\nCONFIG_XEN_BLKDEV_FRONTEND=m\nCONFIG_XEN_NETDEV_FRONTEND=m\n";
    t += "CONFIG_XFS_FS=m\nCONFIG_EXT4_FS=m\nCONFIG_BLK_DEV_DM=m\nCONFIG_LIBCRC32C=m\n";
    t += "# CONFIG_BTRFS_FS is not set\n";
    t
}

fn module_alias(name: &str) -> Option<&'static str> {
    Some(match name {
        "virtio_blk" => "virtio:d00000002v*",
        "virtio_net" => "virtio:d00000001v*",
        "virtio_scsi" => "virtio:d00000008v*",
        "virtio_balloon" => "virtio:d00000005v*",
        "virtio_console" => "virtio:d00000003v*",
        "virtio_rng" => "virtio:d00000004v*",
        "virtio_pci" => "pci:v00001AF4d*sv*sd*bc*sc*i*",
        "vmw_pvscsi" => "pci:v000015ADd000007C0sv*sd*bc*sc*i*",
        "vmxnet3" => "pci:v000015ADd000007B0sv*sd*bc*sc*i*",
        "e1000" => "pci:v00008086d0000100Fsv*sd*bc*sc*i*",
        "mptspi" => "pci:v00001000d00000030sv*sd*bc*sc*i*",
        "hv_storvsc" => "vmbus:d96e8fc2b1bd74f4b9df1ea14b8c1f3a4",
        "hv_netvsc" => "vmbus:635161f83edfc546913ff2d2f965ed0e",
        "xfs" => "fs-xfs",
        "ext4" => "fs-ext4",
        _ => return None,
    })
}

/// A relocatable ELF with a .modinfo-like string block (name, vermagic, depends).
fn module_bytes(arch: &str, name: &str, version: &str, kv: (u32, u32)) -> Vec<u8> {
    let d = deps(name, kv).join(",");
    let smp = if arch == "x86_64" {
        "SMP mod_unload modversions"
    } else {
        "SMP mod_unload modversions 686"
    };
    elf_bytes(
        arch,
        1,
        &format!("license=GPL\0depends={d}\0retpoline=Y\0intree=Y\0name={name}\0vermagic={version} {smp} "),
    )
}

/// Compresses module files in place (foo.ko -> foo.ko.xz / foo.ko.zst) as the kernel's
/// `modules_install` does.
fn compress_in_place(files: &[PathBuf], how: &str, scratch: &Path) -> Result<()> {
    let cmd = match how {
        "xz" => "xargs -0 xz --check=crc32 --lzma2=dict=1MiB",
        "zst" => "xargs -0 zstd -q --rm",
        _ => return Ok(()),
    };
    let mut list = vec![];
    for f in files {
        list.extend_from_slice(f.as_os_str().as_encoded_bytes());
        list.push(0);
    }
    run_sh(cmd, Some(&list), scratch).with_context(|| format!("compressing modules with {how}"))?;
    Ok(())
}

/// Pipes bytes through the system compressor the distro's initramfs builder would use.
pub fn compress(data: &[u8], how: &str, scratch: &Path) -> Result<Vec<u8>> {
    let cmd = match how {
        "none" => return Ok(data.to_vec()),
        "gzip" => "gzip -n -9 -c",
        // The kernel's xz decoder wants crc32 checks, as dracut and mkinitramfs pass.
        "xz" => "xz --check=crc32 --lzma2=dict=1MiB -c",
        "zstd" => "zstd -q -c",
        "lz4" => "lz4 -l -q -c",
        "bzip2" => "bzip2 -c",
        c => bail!("unknown compression {c:?}"),
    };
    run_sh(cmd, Some(data), scratch).with_context(|| format!("compressing with {how}"))
}

/// A newc cpio archive of a staging directory (members sorted, owned by root, no "./" prefix).
fn cpio(dir: &Path, scratch: &Path) -> Result<Vec<u8>> {
    let mut list = vec![];
    walk(dir, dir, &mut list)?;
    list.sort();
    let mut input = list.join("\n");
    input.push('\n');
    let cmd = format!(
        "cd '{}' && cpio --quiet -o -H newc -R 0:0 --reproducible",
        dir.display()
    );
    run_sh(&cmd, Some(input.as_bytes()), scratch)
        .with_context(|| format!("cpio of {}", dir.display()))
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let p = e.path();
        let rel = p
            .strip_prefix(base)
            .map(|r| r.to_string_lossy().to_string())
            .unwrap_or_default();
        out.push(rel);
        if e.file_type()?.is_dir() {
            walk(base, &p, out)?;
        }
    }
    Ok(())
}

/// The guest tree's machine-id for this guest.
pub fn machine_id(guest: &str) -> String {
    ids::hex32(guest, "machine-id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bzimage_header_points_at_version() {
        let b = bzimage("5.15.0-91-generic", "(buildd@lcy02) #101-Ubuntu SMP");
        assert_eq!(&b[0x202..0x206], b"HdrS");
        let off = u16::from_le_bytes([b[0x20e], b[0x20f]]) as usize + 0x200;
        let end = b[off..].iter().position(|c| *c == 0).unwrap() + off;
        let s = std::str::from_utf8(&b[off..end]).unwrap();
        assert!(s.starts_with("5.15.0-91-generic "), "{s}");
    }

    #[test]
    fn elf_headers_carry_machine() {
        let e = elf_bytes("x86_64", 3, "ls");
        assert_eq!(e[4], 2);
        assert_eq!(u16::from_le_bytes([e[18], e[19]]), 62);
        let e = elf_bytes("i386", 2, "ls");
        assert_eq!(e[4], 1);
        assert_eq!(u16::from_le_bytes([e[18], e[19]]), 3);
    }

    #[test]
    fn virtio_pci_deps_follow_kernel_version() {
        assert_eq!(deps("virtio_pci", (3, 10)), vec!["virtio_ring", "virtio"]);
        assert!(deps("virtio_pci", (5, 15)).contains(&"virtio_pci_legacy_dev"));
        assert!(deps("virtio_pci", (5, 15)).contains(&"virtio_pci_modern_dev"));
        assert!(!exists("virtio_pci_modern_dev", (4, 18)));
    }

    #[test]
    fn normalize_resolves_dotdot() {
        assert_eq!(
            normalize("/etc/../usr/lib/os-release"),
            "/usr/lib/os-release"
        );
    }
}
