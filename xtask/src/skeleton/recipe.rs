//! The `guest.toml` manifest of a skeleton recipe: what the disk looks like and which generated
//! parts (kernels, bootloader, tools) the shared generator must add to the recipe's `root/` overlay.
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Distro family: drives file naming (initramfs-V.img vs initrd.img-V), grub dir, unit names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Rhel,
    Fedora,
    Suse,
    Debian,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub family: Family,
    /// x86_64 or i386: sets e_machine/class of the marker ELF files.
    #[serde(default = "default_arch")]
    pub arch: String,
    pub hostname: String,
    /// /bin, /sbin, /lib, /lib64 are symlinks into /usr.
    #[serde(default)]
    pub usrmerge: bool,
    /// SELINUX= value written to /etc/selinux/config (RHEL-likes).
    pub selinux: Option<String>,
    /// Hypervisor tools and agents to plant markers for (see tree.rs `plant_tool`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Compression of .ko files under /lib/modules: none, xz or zst.
    #[serde(default = "default_none")]
    pub module_compress: String,
    pub disk: Disk,
    #[serde(default)]
    pub lvm: Vec<Lv>,
    #[serde(default)]
    pub fstab: FstabExtra,
    pub boot: Boot,
    pub kernels: Vec<Kernel>,
    pub network: Network,
    /// Lines of /etc/crypttab.
    #[serde(default)]
    pub crypttab: Vec<String>,
}

fn default_arch() -> String {
    "x86_64".into()
}
fn default_none() -> String {
    "none".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// mbr or gpt.
    pub table: String,
    pub size_mib: u64,
    pub partitions: Vec<Partition>,
    /// Device name the guest saw on the source hypervisor (sda, vda, xvda): used by `dev` fstab
    /// style and by grub root=/dev/... lines.
    #[serde(default = "default_dev")]
    pub guest_dev: String,
}

fn default_dev() -> String {
    "sda".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Recipe-local id, used for UUID derivation and `{{uuid.ID}}` placeholders.
    pub id: String,
    /// Size; the last partition may omit it to take the rest of the disk.
    pub size_mib: Option<u64>,
    /// ext4, xfs, swap, vfat, lvm, extended (MBR container), bios_grub or none.
    pub fs: String,
    /// MBR: inside the extended partition.
    #[serde(default)]
    pub logical: bool,
    #[serde(default)]
    pub bootable: bool,
    #[serde(flatten)]
    pub mnt: Mountable,
    /// LVM volume group this PV belongs to.
    pub vg: Option<String>,
    /// GPT partition name.
    pub name: Option<String>,
    /// Encrypt the partition (its content, e.g. a PV) into a LUKS2 volume.
    pub luks: Option<Luks>,
}

/// A LUKS2 container made by the host's cryptsetup (Argon2id, small costs; UUID derived).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Luks {
    pub passphrase: String,
}

/// What makes a filesystem: shared by partitions and LVs.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mountable {
    pub mount: Option<String>,
    pub label: Option<String>,
    /// How /etc/fstab names the device: uuid, label, dev, partuuid, by-id, mapper, lvm-dev.
    pub fstab: Option<String>,
    /// fstab options column (default "defaults").
    pub options: Option<String>,
    /// Extra mkfs arguments (feature flags matching the distro's mkfs of the time).
    #[serde(default)]
    pub mkfs_opts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lv {
    pub vg: String,
    pub name: String,
    pub size_mib: u64,
    /// ext4, xfs or swap.
    pub fs: String,
    #[serde(flatten)]
    pub mnt: Mountable,
    /// Encrypt the LV: the filesystem inside a LUKS2 volume (LUKS on LVM).
    pub luks: Option<Luks>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FstabExtra {
    /// Lines appended verbatim (after placeholder expansion): NFS, a missing disk, tmpfs...
    #[serde(default)]
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    /// bios or uefi.
    pub firmware: String,
    /// Boot Loader Spec entries in /boot/loader/entries instead of menuentries.
    #[serde(default)]
    pub bls: bool,
    /// RHEL 8 style: BLS `options $kernelopts` with the command line in grubenv.
    #[serde(default)]
    pub grubenv_kernelopts: bool,
    /// Directory under /boot/efi/EFI (rocky, ubuntu, centos, opensuse...).
    pub efi_vendor: Option<String>,
    /// Full grub.cfg on the ESP (RHEL 7/8 UEFI) instead of a stub that chains to /boot.
    #[serde(default)]
    pub efi_full_cfg: bool,
    /// How root= is written: uuid, mapper, dev, lvm-dev (default: from the root fs fstab style).
    pub root_spec: Option<String>,
    /// Kernel command line after root= and ro.
    pub cmdline: String,
    /// RHEL 7 style loader commands: `linux16`/`initrd16` on BIOS, `linuxefi`/`initrdefi` on
    /// UEFI, instead of plain `linux`/`initrd`.
    #[serde(default)]
    pub linuxefi: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    pub version: String,
    /// The part of the banner after the version: "(builder@host) (gcc ...) #1 SMP ...".
    pub build: String,
    /// module (=m) or builtin (=y) for the virtio drivers.
    #[serde(default = "default_module")]
    pub virtio: String,
    /// Whether the initramfs carries the virtio modules.
    pub initramfs_virtio: bool,
    /// gzip, xz, zstd, lz4, bzip2 or none.
    pub compress: String,
    /// Uncompressed early-microcode cpio segment first.
    #[serde(default)]
    pub microcode: bool,
    /// Kernel listed first in the boot menu.
    #[serde(default)]
    pub default: bool,
}

fn default_module() -> String {
    "module".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// ifcfg, nm-keyfile, netplan, ifupdown, wicked.
    pub flavor: String,
    pub iface: String,
    pub mac: String,
    /// static or dhcp.
    pub bootproto: String,
    pub ip: Option<String>,
    pub prefix: Option<u8>,
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    /// Config files in the overlay that carry the settings (for the expectations).
    pub files: Vec<String>,
}

impl Recipe {
    pub fn load(path: &Path) -> Result<Recipe> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let r: Recipe =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        r.check()
            .with_context(|| format!("checking {}", path.display()))?;
        Ok(r)
    }

    fn check(&self) -> Result<()> {
        match self.disk.table.as_str() {
            "mbr" | "gpt" => {}
            t => bail!("disk.table must be mbr or gpt, not {t:?}"),
        }
        for p in &self.disk.partitions {
            let ok = [
                "ext4",
                "xfs",
                "swap",
                "vfat",
                "lvm",
                "extended",
                "bios_grub",
                "none",
            ];
            if !ok.contains(&p.fs.as_str()) {
                bail!("partition {}: unknown fs {:?}", p.id, p.fs);
            }
            if p.fs == "lvm" && p.vg.is_none() {
                bail!("partition {}: lvm needs vg", p.id);
            }
            if (p.logical || p.fs == "extended") && self.disk.table != "mbr" {
                bail!("partition {}: extended/logical need an mbr table", p.id);
            }
        }
        for lv in &self.lvm {
            if !self
                .disk
                .partitions
                .iter()
                .any(|p| p.vg.as_deref() == Some(&lv.vg))
            {
                bail!("lv {}/{}: no PV for that vg", lv.vg, lv.name);
            }
        }
        if self.kernels.iter().filter(|k| k.default).count() != 1 {
            bail!("exactly one kernel must be default = true");
        }
        match self.module_compress.as_str() {
            "none" | "xz" | "zst" => {}
            c => bail!("module_compress {c:?}: want none, xz or zst"),
        }
        for k in &self.kernels {
            match k.compress.as_str() {
                "gzip" | "xz" | "zstd" | "lz4" | "bzip2" | "none" => {}
                c => bail!("kernel {}: unknown compress {c:?}", k.version),
            }
            if k.virtio != "module" && k.virtio != "builtin" {
                bail!("kernel {}: virtio must be module or builtin", k.version);
            }
        }
        if self.arch != "x86_64" && self.arch != "i386" {
            bail!("arch {:?}: want x86_64 or i386", self.arch);
        }
        Ok(())
    }

    /// The kernel marked default.
    pub fn default_kernel(&self) -> &Kernel {
        // check() guarantees exactly one.
        self.kernels
            .iter()
            .find(|k| k.default)
            .unwrap_or(&self.kernels[0])
    }
}
