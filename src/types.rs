//! Records passed between pipeline stages. `Inspection` is also the `revirt inspect --json`
//! schema: versioned by [`SCHEMA_VERSION`], documented in README.md; fields are only added.
use serde::Serialize;
use std::collections::BTreeMap;

/// Bumped on any incompatible change of the inspection JSON.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Default)]
pub struct Inspection {
    pub schema_version: u32,
    pub revirt_version: String,
    pub disks: Vec<DiskReport>,
    /// Every partition, whole-disk filesystem and logical volume, with what it holds.
    pub volumes: Vec<VolumeReport>,
    pub volume_groups: Vec<VgReport>,
    /// Linux md RAID arrays found on the disks (their members are volumes of type
    /// linux_raid_member, never read as filesystems).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub md_arrays: Vec<MdReport>,
    pub operating_systems: Vec<OsReport>,
    /// True when some filesystem could only be read through the libguestfs appliance.
    pub appliance_used: bool,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskReport {
    /// Guest device name this disk gets in reports (/dev/sda, /dev/sdb ... in argument order).
    pub device: String,
    pub image: crate::image::ImageInfo,
    /// "mbr", "gpt", or "none" (a filesystem on the whole disk, or empty).
    pub partition_table: String,
    /// GPT only: the primary header was corrupt and the backup was used.
    pub gpt_backup_used: bool,
    pub disk_guid: Option<String>,
    pub partitions: Vec<PartitionReport>,
    /// A dynamic disk's LDM disk group name, from its PRIVHEAD (None on a basic disk).
    pub ldm_disk_group: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionReport {
    pub number: u32,
    pub device: String,
    pub start: u64,
    pub size: u64,
    /// MBR type byte as hex ("83", "8e", "ef", "05"), or GPT type GUID.
    pub type_id: String,
    /// Readable type ("linux", "lvm", "efi-system", "bios-boot", "extended", "ntfs"...).
    pub type_name: String,
    pub part_uuid: Option<String>,
    pub name: Option<String>,
    pub bootable: bool,
    pub logical: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeReport {
    /// /dev/sda1, /dev/sda (whole disk), /dev/mapper/VG-LV.
    pub device: String,
    /// Other names of the same volume (/dev/VG/LV, /dev/disk/by-... are resolved, not listed).
    pub aliases: Vec<String>,
    pub size: u64,
    pub fstype: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub flags: Vec<String>,
    /// Which reader serves it: "pure" (revirt's own), "appliance" (libguestfs), or "none".
    pub reader: String,
    /// Partition identity, for PARTUUID= / PARTLABEL= resolution.
    pub part_uuid: Option<String>,
    pub part_label: Option<String>,
    /// Disk (argument order) the volume sits on; None for LVs. Resolves kernel names (sdb2).
    pub disk_index: Option<usize>,
    /// Partition number; None for a whole disk or an LV.
    pub part_number: Option<u32>,
    /// ext3/ext4 with `needs_recovery` (a crash-consistent snapshot): what the in-memory journal
    /// replay did. Inspection, plan and verify read the replayed state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_recovery: Option<JournalRecovery>,
    /// XFS: whether its log needs recovery, and how reads got past a dirty one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xfs_log: Option<XfsLogReport>,
    /// A LUKS container: its header and whether a key opened it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub luks: Option<LuksReport>,
}

/// A LUKS1/LUKS2 container (issue #11). Never holds a key.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LuksReport {
    pub version: u16,
    pub uuid: String,
    pub cipher: String,
    /// The plaintext volume when a key opened it: /dev/mapper/cryptsda2 for a partition,
    /// /dev/mapper/luks-UUID for an LV (libguestfs's names).
    pub opened_as: Option<String>,
    /// The keyslot the key opened.
    pub keyslot: Option<u32>,
    /// Why it stays locked: no key given, or a header revirt does not open.
    pub error: Option<String>,
}

/// The log of one XFS volume (issue #7).
#[derive(Debug, Clone, Serialize, Default)]
pub struct XfsLogReport {
    /// A snapshot of a mounted XFS: committed transactions not yet in their home blocks.
    pub needs_recovery: bool,
    /// Head and tail (basic blocks from the log's start) and the cycle at the head.
    pub head_block: u64,
    pub tail_block: u64,
    pub cycle: u32,
    /// Where the log was recovered so that reads see the mounted state: "throwaway-overlay"
    /// (inspect, plan, verify: a temporary overlay over the input, which stays unchanged) or
    /// "output" (repair: into the output, before any edit). None while not recovered.
    pub recovered_into: Option<String>,
    /// Why the log could not be read or recovered; reads then see the state before the log.
    pub error: Option<String>,
}

/// The journal replay of one volume.
#[derive(Debug, Clone, Serialize, Default)]
pub struct JournalRecovery {
    /// Replay statistics (transactions, blocks, journal layout).
    #[serde(flatten)]
    pub stats: crate::fs::jbd2::ReplayStats,
    /// True: replayed in memory only (the source is never written; a repair's appliance mount
    /// replays the same journal into the output before it writes).
    pub in_memory: bool,
    /// Problems the replay recovered from the way e2fsck does (the kernel would refuse to mount).
    pub warnings: Vec<String>,
    /// Why the journal could not be replayed (refused or corrupt); reads then see the stale state.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VgReport {
    pub name: String,
    pub uuid: String,
    pub pvs: Vec<String>,
    pub missing_pvs: Vec<String>,
    pub lvs: Vec<LvReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LvReport {
    pub name: String,
    pub device: String,
    pub size: u64,
    /// Segment types ("linear", "striped", "thin", "raid1"...).
    pub segment_types: Vec<String>,
    /// False when revirt cannot map it in pure Rust (striped/thin/raid): the appliance serves it.
    pub pure: bool,
    /// A PV it has extents on is not among the given disks: nothing can read it (not even the
    /// appliance, which sees the same disks).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
    /// Where its bytes are, in LV order (pure LVs only): an LV spanning disks has a segment
    /// on each PV.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<LvSegment>,
}

/// A Linux md RAID array assembled from the given disks.
#[derive(Debug, Clone, Serialize)]
pub struct MdReport {
    /// `/dev/mdN` (or `/dev/md/NAME`): the array's volume.
    pub device: String,
    pub uuid: String,
    /// 1.x array name ("host:0"); empty for 0.90.
    pub name: String,
    /// Superblock version: "0.90", "1.0", "1.1", "1.2".
    pub metadata: String,
    /// "raid1", "raid0", "linear", "raid5"...
    pub level: String,
    pub raid_disks: u32,
    /// Member devices found, freshest first.
    pub members: Vec<String>,
    /// Read in pure Rust (raid1 with an in-sync member).
    pub read: bool,
    /// Written natively through every mirror: raid1 with all its members here and in sync.
    pub writable: bool,
}

/// `length` bytes of an LV from `start` on, at `pv_offset` bytes into the PV `pv`.
#[derive(Debug, Clone, Serialize)]
pub struct LvSegment {
    pub start: u64,
    pub length: u64,
    pub pv: String,
    pub pv_offset: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OsReport {
    /// "linux" or "windows".
    pub kind: String,
    pub root: RootFs,
    /// The OS as virt-inspector names it (libguestfs's distro spelling, libosinfo id...).
    pub identity: OsIdentity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linux: Option<LinuxInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<WindowsInfo>,
}

/// The facts virt-inspector (libguestfs `inspect_get_*`) reports about an OS, named and spelled
/// as it does, for the tools that pick a VM template or parse its XML (`revirt inspect --xml`).
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct OsIdentity {
    /// "linux" or "windows" (virt-inspector `<name>`).
    pub os_type: String,
    /// libguestfs's distro name: "debian", "ubuntu", "fedora", "rhel", "centos", "rocky",
    /// "oraclelinux", "sles", "opensuse", "archlinux", "alpinelinux", "coreos", "redhat-based",
    /// "windows"...; "unknown" when no release file names one.
    pub distro: String,
    /// os-release PRETTY_NAME, the first line of the release file that matched, or Windows
    /// ProductName.
    pub product_name: Option<String>,
    /// Windows InstallationType ("Client", "Server", "Server Core"), as stored.
    pub product_variant: Option<String>,
    pub major_version: u32,
    pub minor_version: u32,
    /// From an ELF or PE header (or PROCESSOR_ARCHITECTURE): "x86_64", "i386", "aarch64"...
    pub arch: Option<String>,
    pub hostname: Option<String>,
    /// os-release BUILD_ID, Windows CurrentBuildNumber.
    pub build_id: Option<String>,
    /// "rpm", "deb", "pacman", "apk", "ebuild"...
    pub package_format: Option<String>,
    /// "dnf", "yum", "up2date", "apt", "zypper", "pacman", "apk", "portage"...
    pub package_management: Option<String>,
    /// The libosinfo short id ("debian5", "rhel6.10", "ubuntu22.04", "win2k19"), "unknown"
    /// when none fits.
    pub osinfo: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RootFs {
    pub device: String,
    pub fstype: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct LinuxInfo {
    /// os-release ID ("rhel", "centos", "rocky", "ubuntu", "debian", "sles", "opensuse-leap"...).
    pub distro: String,
    pub version: String,
    pub product_name: String,
    /// "rhel", "suse", "debian", "alt" or "other".
    pub family: String,
    /// From the ELF header of a system binary: "x86_64", "i386", "aarch64"...
    pub arch: Option<String>,
    pub hostname: Option<String>,
    /// Mounted filesystems (mountpoint -> device) used to read the guest.
    pub mounts: BTreeMap<String, String>,
    pub fstab: Vec<FstabEntry>,
    pub crypttab: Vec<CrypttabEntry>,
    /// (opened volume, `/dev/mapper/NAME`): the names crypttab gives the LUKS volumes revirt
    /// opened, which the guest's fstab and kernel command line use. Inspection adds them to
    /// the volumes' aliases.
    #[serde(skip)]
    pub mapper_aliases: Vec<(String, String)>,
    /// "initramfs-tools", "dracut", "mkinitrd" or "unknown".
    pub initramfs_tool: String,
    pub kernels: Vec<KernelInfo>,
    pub bootloader: BootloaderInfo,
    pub network: NetworkInfo,
    pub guest_tools: Vec<GuestTool>,
    /// "enforcing", "permissive", "disabled"; None when SELinux is not installed.
    pub selinux: Option<String>,
    pub cloud_init: bool,
    /// Facts that could not be read (e.g. a symlink loop at /etc/hostname), with the reason.
    pub warnings: Vec<String>,
    /// Files a repair would read or edit that could not be read whole (over a read limit,
    /// corrupt): inspection goes on without them, but repair refuses (nothing is edited from a
    /// partial read).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    /// The same guest as virt-inspector names it (reported as `OsReport::identity`).
    #[serde(skip)]
    pub identity: OsIdentity,
    /// The filesystems libguestfs mounts for `identity` (mountpoint -> device): `mounts`, less
    /// a /usr that only revirt finds (Flatcar's, issue #10). virt-inspector's `<mountpoints>`
    /// for a guest with no fstab.
    #[serde(skip)]
    pub inspector_mounts: BTreeMap<String, String>,
}

/// How an fstab/crypttab device spec names its device.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SpecKind {
    Uuid,
    Label,
    Partuuid,
    Partlabel,
    /// /dev/sdX, /dev/hdX, /dev/vdX, /dev/xvdX, /dev/nvmeXnY: changes with the bus.
    DeviceName,
    /// /dev/mapper/..., /dev/VG/LV.
    Mapper,
    ById,
    ByPath,
    ByUuid,
    ByLabel,
    /// none, tmpfs, proc, nfs server:/path ...
    Virtual,
    Other,
}

#[derive(Debug, Clone, Serialize)]
pub struct FstabEntry {
    pub line: usize,
    pub spec: String,
    pub mountpoint: String,
    pub fstype: String,
    pub options: String,
    pub nofail: bool,
    pub spec_kind: SpecKind,
    /// The volume it resolves to on these disks (its `device`), when it does.
    pub resolves_to: Option<String>,
    /// False for a device spec that names nothing on these disks.
    pub present: bool,
    /// True when the name depends on the disk bus or controller (sdX, by-path, by-id).
    pub bus_dependent: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CrypttabEntry {
    pub line: usize,
    pub name: String,
    pub spec: String,
    pub spec_kind: SpecKind,
    pub resolves_to: Option<String>,
    pub present: bool,
    pub bus_dependent: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct KernelInfo {
    pub version: String,
    pub vmlinuz: String,
    pub initramfs: Option<String>,
    pub modules_dir: Option<String>,
    pub config: Option<String>,
    /// Per driver of interest (virtio_blk, virtio_scsi, virtio_net, virtio_pci).
    pub drivers: BTreeMap<String, DriverState>,
    /// Compression of each cpio segment of the initramfs, in order ("none", "gzip", "zstd"...).
    pub initramfs_segments: Vec<String>,
    /// Initramfs could not be read: why.
    pub initramfs_error: Option<String>,
    /// Where this kernel's modules live inside the initramfs ("usr/lib/modules/VER").
    pub initramfs_modules_dir: Option<String>,
    /// Small config files inside the initramfs (conf/modules, etc/modules-load.d/*), which an
    /// appended segment must extend rather than replace.
    #[serde(skip)]
    pub initramfs_texts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct DriverState {
    /// CONFIG_...=y in /boot/config-VERSION.
    pub builtin: bool,
    /// A .ko (any compression) under /lib/modules/VERSION.
    pub module_on_disk: bool,
    /// The .ko is inside the initramfs (or built in, which also counts as available at boot).
    pub in_initramfs: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct BootloaderInfo {
    /// "grub2", "grub-legacy", "systemd-boot", "extlinux" or "none".
    pub kind: String,
    /// "bios" or "uefi".
    pub firmware: String,
    pub config: Option<String>,
    /// /etc/default/grub or /etc/sysconfig/bootloader.
    pub defaults_file: Option<String>,
    pub grub_cmdline_linux: Option<String>,
    pub grub_disable_linux_uuid: bool,
    /// BLS entries under /boot/loader/entries are used.
    pub bls: bool,
    pub entries: Vec<BootEntry>,
    /// Index into `entries` of the default entry.
    pub default_entry: Option<usize>,
    pub esp: Option<EspInfo>,
    /// UEFI stub config that only `configfile`s/`source`s the real `config`.
    pub stub_config: Option<String>,
    /// GRUB_ENABLE_BLSCFG from the defaults file, when set.
    pub grub_enable_blscfg: Option<bool>,
    /// GRUB_DEFAULT from the defaults file, when set.
    pub grub_default: Option<String>,
    /// SUSE /etc/sysconfig/bootloader LOADER_TYPE ("grub2", "grub2-efi", "grub2-bls"...).
    pub loader_type: Option<String>,
    /// The default-entry spec grub would use (`set default=`, `saved_entry` substituted).
    pub default_spec: Option<String>,
    /// Files that could not be parsed, and other oddities; inspection goes on without them.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct BootEntry {
    pub title: String,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: String,
    pub root: Option<String>,
    pub resume: Option<String>,
    /// Where the entry was read from (file and line).
    pub source: String,
    /// grub `--id`, or the BLS entry's file stem.
    pub id: Option<String>,
    /// Title of the grub submenu holding this entry.
    pub submenu: Option<String>,
    /// Guest path of `kernel` (grub paths are relative to the filesystem holding them: with a
    /// separate /boot, "/vmlinuz-X" is "/boot/vmlinuz-X").
    pub kernel_path: Option<String>,
    /// Guest path of the last (main) initrd image.
    pub initrd_path: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct EspInfo {
    pub device: String,
    /// EFI binaries found under /EFI (paths on the ESP).
    pub efi_files: Vec<String>,
    pub has_fallback: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct NetworkInfo {
    pub configs: Vec<NetConfigInfo>,
    pub persistent_net_rules: Vec<PersistentNetRule>,
    /// 75-persistent-net-generator.rules present and active.
    pub persistent_net_generator: bool,
    /// Files that could not be parsed; inspection goes on without them.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct NetConfigInfo {
    /// "ifupdown", "netplan", "networkmanager", "ifcfg-rhel", "wicked", "systemd-networkd",
    /// "systemd-link" (a .link file renaming an interface).
    pub flavor: String,
    pub file: String,
    pub interfaces: Vec<IfaceInfo>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct IfaceInfo {
    /// Interface name the config binds to (may be absent for MAC-only or match-all configs).
    pub name: Option<String>,
    pub dhcp: bool,
    pub addresses: Vec<String>,
    pub gateway: Option<String>,
    pub dns: Vec<String>,
    /// MAC address the config is pinned to (lowercase).
    pub mac: Option<String>,
    /// Line in `file` where this interface is defined.
    pub line: Option<usize>,
    /// IPv6 by DHCPv6 or autoconfiguration.
    pub dhcp6: bool,
    /// "ethernet", "bond", "bridge", "vlan", "wifi"... when the config says.
    pub kind: Option<String>,
    /// Brought up at boot (auto/allow-hotplug, ONBOOT, STARTMODE, autoconnect), when the config says.
    pub auto_start: Option<bool>,
    /// MAC address the config assigns to the interface (hwaddress, MACADDR, LLADDR,
    /// cloned-mac-address, netplan macaddress): not a binding, but lost on a new NIC otherwise.
    pub set_mac: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct PersistentNetRule {
    pub file: String,
    pub line: usize,
    pub name: String,
    pub mac: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct GuestTool {
    /// "vmware-tools", "open-vm-tools", "hyperv-daemons", "xe-guest-utilities", "virtualbox-additions".
    pub name: String,
    pub evidence: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct WindowsInfo {
    pub product_name: String,
    /// "6.1", "6.3", "10.0".
    pub version: String,
    pub major: u32,
    pub minor: u32,
    pub build: Option<String>,
    /// "Client" or "Server" (InstallationType; derived from the product name on older versions).
    pub installation_type: Option<String>,
    pub edition_id: Option<String>,
    /// "x86_64" or "i386": PROCESSOR_ARCHITECTURE, else the PE header of ntoskrnl.exe or
    /// cmd.exe.
    pub arch: String,
    /// The computer name: Tcpip\Parameters Hostname (what virt-inspector reports), else
    /// Control\ComputerName\ComputerName.
    pub hostname: Option<String>,
    pub system_root: String,
    /// Select\Current: the control set Windows boots (ControlSet00N).
    pub current_control_set: Option<u32>,
    /// Drive letters from MountedDevices: "C:" -> "mbr:SIGNATURE@OFFSET", "gpt:{GUID}" or "other".
    pub drive_letters: BTreeMap<String, String>,
    /// hiberfil.sys: None when absent, "hibernated" when it holds a saved session, else "clean".
    pub hiberfil: Option<String>,
    /// Power\HiberbootEnabled = 1: shutdown hibernates the kernel (Fast Startup).
    pub fast_startup: bool,
    /// The NTFS dirty flag of the system volume (chkdsk pending; crash-consistent snapshot).
    pub ntfs_dirty: bool,
    /// The NTFS journal ($LogFile) holds metadata changes not yet written to the volume.
    pub ntfs_log_unclean: bool,
    /// System-volume hives found dirty ("SYSTEM", "SOFTWARE"): primary and secondary sequence
    /// numbers differ (or the base block is invalid), so their newest data is only in the
    /// .LOG1/.LOG2 transaction logs. Every fact above and below is read from the hive as
    /// recovered from those logs (see `hive_recovery`); repair writes it back and empties the logs.
    pub dirty_hives: Vec<String>,
    /// One record per dirty hive read (the system hives and the BCD store): how it was recovered
    /// from its logs in memory, or why it could not be (then its stale primary was read).
    pub hive_recovery: Vec<HiveRecovery>,
    /// Storage and network drivers of interest (viostor, vioscsi, netkvm, pvscsi, vmxnet3...).
    pub drivers: Vec<WinService>,
    /// Hypervisor tools services (VMware Tools, Hyper-V integration, Xen, Parallels).
    pub guest_tools: Vec<WinService>,
    /// Tcpip\Parameters\Interfaces, one per adapter GUID.
    pub interfaces: Vec<WinInterface>,
    /// Control\CriticalDeviceDatabase exists (Windows <= 7 / 2008 R2 binds boot drivers by it).
    pub critical_device_database: bool,
    /// SYSTEM\DriverDatabase exists (Windows >= 8).
    pub driver_database: bool,
    /// Virtio PCI ids bound to a driver: "PCI\VEN_1AF4&DEV_1001" -> the CDD service, or the
    /// DriverDatabase inf ("oem12.inf") for Windows >= 8.
    pub virtio_bindings: BTreeMap<String, String>,
    /// Local group policy folder present (System32\GroupPolicy\gpt.ini).
    pub group_policy: bool,
    /// revirt's first-boot startup script is registered (scripts.ini) and present.
    pub revirt_firstboot: bool,
    /// Driver folders staged under Windows\Drivers\VirtIO.
    pub staged_drivers: Vec<String>,
    /// Control\TimeZoneInformation\RealTimeIsUniversal: Some(1) when the guest keeps the RTC in
    /// UTC; otherwise Windows expects local time and the hypervisor clock must be set to it.
    pub real_time_is_universal: Option<u32>,
    /// Services\partmgr\Parameters\SanPolicy (1 OnlineAll; 2-4 leave new/shared disks offline).
    pub san_policy: Option<u32>,
    /// Control\CrashControl\AutoReboot (1: reboot after a bugcheck, hiding the stop code).
    pub crash_auto_reboot: Option<u32>,
    /// Installed hypervisor tools with an uninstaller (SOFTWARE ...\Uninstall).
    pub tool_uninstallers: Vec<WinUninstaller>,
    /// MountedDevices letters resolved to devices ("C:" -> "/dev/sda3"); letters whose volume is
    /// no partition of these disks (a dynamic volume, another disk) are left out.
    pub drive_letter_devices: BTreeMap<String, String>,
    /// The letter MountedDevices gives the system volume ("C:").
    pub system_drive: Option<String>,
    /// "uefi" when an ESP on the guest's disks holds \EFI\Microsoft\Boot, else "bios".
    pub firmware: String,
    /// The ESP of a UEFI guest and its boot files.
    pub esp: Option<EspInfo>,
    /// The default entry of the ESP's BCD store (\EFI\Microsoft\Boot\BCD).
    pub bcd_default: Option<WinBootEntry>,
    /// BIOS boots: the volume holding bootmgr and Boot\BCD ("System Reserved", or C: itself).
    pub bios_boot_volume: Option<String>,
    /// The same guest as virt-inspector names it (reported as `OsReport::identity`).
    #[serde(skip)]
    pub identity: OsIdentity,
}

/// The replay of a dirty hive's transaction logs (see `inspect::windows::hivelog`).
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct HiveRecovery {
    /// "SYSTEM", "SOFTWARE" or "BCD".
    pub hive: String,
    /// Guest path of the primary file as stored.
    pub path: String,
    /// The volume holding it when it is not the system volume (a BCD store on the ESP).
    pub volume: Option<String>,
    /// Log format replayed: "new" (HvLE entries, Windows 8.1+) or "old" (DIRT dirty vector,
    /// Windows XP .. 8); None when recovery failed.
    pub format: Option<String>,
    /// New format: log entries applied; old format: 1 (the dirty vector).
    pub entries_applied: u32,
    /// Pages written into the hive bins.
    pub pages_applied: u32,
    /// Sequence numbers of the first and last entry applied.
    pub first_seq: Option<u32>,
    pub last_seq: Option<u32>,
    /// Logs whose data was applied, in order ("LOG1", "LOG2").
    pub logs_used: Vec<String>,
    /// The logs found next to the hive (stored guest paths, empty ones included).
    pub logs: Vec<String>,
    /// Both sequence numbers of the recovered base block.
    pub final_seq: Option<u32>,
    /// What replay ignored or where it stopped (stale entries, a torn last entry...).
    pub notes: Vec<String>,
    /// Why no log could be replayed (then the stale primary was read and repair refuses).
    pub error: Option<String>,
}

/// A Windows loader object of a BCD store.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct WinBootEntry {
    /// The object's GUID ("{6a3c...}").
    pub id: String,
    /// Element 12000004 ("Windows 11").
    pub description: Option<String>,
    /// Element 12000002: the loader path ("\Windows\system32\winload.efi").
    pub path: Option<String>,
    /// Element 22000002: the system root ("\Windows").
    pub system_root: Option<String>,
}

/// An installed hypervisor-tools product and how to remove it.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct WinUninstaller {
    /// DisplayName ("VMware Tools").
    pub name: String,
    /// The product family ("vmware-tools", "xen-pv", "parallels-tools", "virtualbox-additions").
    pub product: String,
    /// The Uninstall subkey: the MSI product code for MSI installs.
    pub key: String,
    /// QuietUninstallString, else UninstallString.
    pub command: Option<String>,
    /// WindowsInstaller = 1: removable with `msiexec /x KEY`.
    pub msi: bool,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct WinService {
    pub name: String,
    /// 0 boot, 1 system, 2 automatic, 3 manual, 4 disabled.
    pub start: Option<u32>,
    pub service_type: Option<u32>,
    pub group: Option<String>,
    pub image_path: Option<String>,
    /// The driver file ImagePath names exists (kernel drivers only; None when not checked).
    pub file_present: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct WinInterface {
    pub guid: String,
    pub dhcp: bool,
    pub addresses: Vec<String>,
    pub masks: Vec<String>,
    pub gateways: Vec<String>,
    pub dns: Vec<String>,
}
