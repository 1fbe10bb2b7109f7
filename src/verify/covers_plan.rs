//! Verify sees what plan fixes (issue #10 item 5): for every kind of action the Linux planner
//! emits, a guest that needs it, planned and verified untouched; each action's cause must be a
//! finding. A healthy guest is the control: an empty plan and a ready verdict.
use super::*;
use crate::plan::{plan_linux, Action, Change, InitramfsMode};
use crate::types::{
    CrypttabEntry, DriverState, EspInfo, FstabEntry, GuestTool, IfaceInfo, NetConfigInfo,
    OsIdentity, OsReport, PersistentNetRule, RootFs, VolumeReport,
};

const ROOT_UUID: &str = "0c0ffee0-1111-4222-8333-444455556666";
const DATA_UUID: &str = "da7ada7a-1111-4222-8333-444455556666";
const ESP_UUID: &str = "ABCD-1234";
const KVER: &str = "6.1.0-18-amd64";
const GRUB_CFG: &str = "/boot/grub/grub.cfg";
const CONSOLE: &str = "console=tty0 console=ttyS0,115200";
const MODULES_DEP: &str =
    "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko\n\
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_ring.ko\n\
kernel/drivers/scsi/virtio_scsi.ko: kernel/drivers/virtio/virtio_ring.ko\n\
kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio_ring.ko\n\
kernel/drivers/virtio/virtio_ring.ko:\n";

/// A guest, as the planner and verify both see it.
struct Guest {
    l: LinuxInfo,
    ins: Inspection,
    inputs: PlanInputs,
    opts: PlanOptions,
}

fn volume(device: &str, fstype: &str, uuid: &str) -> VolumeReport {
    VolumeReport {
        device: device.into(),
        aliases: vec![],
        size: 1 << 30,
        fstype: Some(fstype.into()),
        uuid: Some(uuid.into()),
        label: None,
        flags: vec![],
        reader: "ext4".into(),
        part_uuid: None,
        part_label: None,
        disk_index: Some(0),
        part_number: None,
        journal_recovery: None,
        xfs_log: None,
        luks: None,
    }
}

fn fstab_entry(
    line: usize,
    spec: &str,
    mp: &str,
    dev: &str,
    bus: bool,
    nofail: bool,
) -> FstabEntry {
    FstabEntry {
        line,
        spec: spec.into(),
        mountpoint: mp.into(),
        fstype: "ext4".into(),
        options: if nofail {
            "defaults,nofail"
        } else {
            "defaults"
        }
        .into(),
        nofail,
        spec_kind: if bus {
            SpecKind::DeviceName
        } else {
            SpecKind::Uuid
        },
        resolves_to: Some(dev.into()),
        present: true,
        bus_dependent: bus,
    }
}

fn kernel(version: &str, in_initramfs: bool) -> KernelInfo {
    let drivers = ["virtio_pci", "virtio_blk", "virtio_scsi", "virtio_net"]
        .iter()
        .map(|d| {
            (
                d.to_string(),
                DriverState {
                    builtin: false,
                    module_on_disk: true,
                    in_initramfs,
                },
            )
        })
        .collect();
    KernelInfo {
        version: version.into(),
        vmlinuz: format!("/boot/vmlinuz-{version}"),
        initramfs: Some(format!("/boot/initrd.img-{version}")),
        modules_dir: Some(format!("/lib/modules/{version}")),
        drivers,
        ..Default::default()
    }
}

fn grub_cfg(entries: &[(&str, &str)]) -> String {
    let mut s = String::from("set default=0\n");
    for (ver, args) in entries {
        s.push_str(&format!(
            "menuentry 'Debian GNU/Linux {ver}' {{\n\tlinux\t/boot/vmlinuz-{ver} {args}\n\tinitrd\t/boot/initrd.img-{ver}\n}}\n"
        ));
    }
    s
}

/// Boot entries as the grub.cfg parser reports those of [`grub_cfg`].
fn entries(cfg: &[(&str, &str)]) -> Vec<BootEntry> {
    cfg.iter()
        .enumerate()
        .map(|(i, (ver, args))| {
            let word = |k: &str| {
                args.split_whitespace()
                    .find_map(|w| w.strip_prefix(k))
                    .map(String::from)
            };
            BootEntry {
                title: format!("Debian GNU/Linux {ver}"),
                kernel: Some(format!("/boot/vmlinuz-{ver}")),
                initrd: Some(format!("/boot/initrd.img-{ver}")),
                cmdline: args.to_string(),
                root: word("root="),
                resume: word("resume="),
                source: format!("{GRUB_CFG}:{}", 3 + 4 * i),
                kernel_path: Some(format!("/boot/vmlinuz-{ver}")),
                initrd_path: Some(format!("/boot/initrd.img-{ver}")),
                ..Default::default()
            }
        })
        .collect()
}

/// A Debian 12 guest already fit for virtio: nothing to plan, verify ready.
fn healthy() -> Guest {
    let root_args = format!("root=UUID={ROOT_UUID} ro {CONSOLE}");
    let cfg = [(KVER, root_args.as_str())];
    let fstab = format!("UUID={ROOT_UUID} / ext4 defaults 0 1\n");
    let mut l = LinuxInfo {
        distro: "debian".into(),
        version: "12".into(),
        product_name: "Debian GNU/Linux 12 (bookworm)".into(),
        family: "debian".into(),
        arch: Some("x86_64".into()),
        initramfs_tool: "initramfs-tools".into(),
        kernels: vec![kernel(KVER, true)],
        fstab: vec![fstab_entry(
            1,
            &format!("UUID={ROOT_UUID}"),
            "/",
            "/dev/sda1",
            false,
            false,
        )],
        ..Default::default()
    };
    l.mounts.insert("/".into(), "/dev/sda1".into());
    l.bootloader.kind = "grub2".into();
    l.bootloader.firmware = "bios".into();
    l.bootloader.config = Some(GRUB_CFG.into());
    l.bootloader.defaults_file = Some("/etc/default/grub".into());
    l.bootloader.grub_cmdline_linux = Some(CONSOLE.into());
    l.bootloader.entries = entries(&cfg);
    l.bootloader.default_entry = Some(0);
    l.network.configs.push(NetConfigInfo {
        flavor: "networkmanager".into(),
        file: "/etc/NetworkManager/system-connections/Wired.nmconnection".into(),
        interfaces: vec![IfaceInfo {
            dhcp: true,
            ..Default::default()
        }],
    });
    let mut inputs = PlanInputs::default();
    for (p, t) in [
        ("/etc/fstab", fstab),
        (GRUB_CFG, grub_cfg(&cfg)),
        (
            "/etc/default/grub",
            format!("GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX=\"{CONSOLE}\"\n"),
        ),
        (
            "/etc/initramfs-tools/modules",
            "virtio_pci\nvirtio_blk\nvirtio_scsi\nvirtio_net\n".into(),
        ),
        (
            &format!("/lib/modules/{KVER}/modules.dep"),
            MODULES_DEP.into(),
        ),
    ] {
        inputs.existing.insert(p.to_string());
        inputs.files.insert(p.to_string(), t);
    }
    inputs.existing.insert("/usr/lib/systemd/systemd".into());
    let ins = Inspection {
        volumes: vec![volume("/dev/sda1", "ext4", ROOT_UUID)],
        ..Default::default()
    };
    Guest {
        l,
        ins,
        inputs,
        opts: PlanOptions {
            serial_console: true,
            ..Default::default()
        },
    }
}

impl Guest {
    fn set_file(&mut self, path: &str, text: &str) {
        self.inputs.existing.insert(path.into());
        self.inputs.files.insert(path.into(), text.into());
    }

    fn set_grub_cfg(&mut self, cfg: &[(&str, &str)]) {
        self.set_file(GRUB_CFG, &grub_cfg(cfg));
        self.l.bootloader.entries = entries(cfg);
    }

    fn plan(&self) -> Vec<Action> {
        let os = OsReport {
            kind: "linux".into(),
            root: RootFs {
                device: "/dev/sda1".into(),
                fstype: Some("ext4".into()),
                uuid: Some(ROOT_UUID.into()),
                label: None,
            },
            identity: OsIdentity::default(),
            linux: Some(self.l.clone()),
            windows: None,
        };
        let p = plan_linux(&os, &self.ins, &self.inputs, &self.opts);
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        p.actions
    }
}

/// The kind of a Linux action, spelled "area:op". Exhaustive over [`Change`]: a new variant
/// fails to compile here until it is listed (and given a guest below).
fn kind(a: &Action) -> String {
    let op = match &a.change {
        Change::WriteFile { .. } => "write-file",
        Change::Rename { .. } => "rename",
        Change::Symlink { .. } => "symlink",
        Change::CopyFile { .. } => "copy-file",
        Change::AppendInitramfs { .. } => "append-initramfs",
        Change::RunInitramfsTool { .. } => "run-initramfs-tool",
        Change::RunBootloaderTool { .. } => "run-bootloader-tool",
        Change::RegSet { .. } | Change::UploadFile { .. } => "windows-only",
    };
    format!("{}:{op}", a.area)
}

/// Every kind of action `plan_linux` emits.
const ALL_KINDS: &[&str] = &[
    "initramfs:append-initramfs",
    "initramfs:run-initramfs-tool",
    "persist-drivers:write-file",
    "fstab:write-file",
    "bootloader:write-file",
    "bootloader:copy-file",
    "bootloader:run-bootloader-tool",
    "network:write-file",
    "network:rename",
    "network:copy-file",
    "net-rules:rename",
    "net-rules:copy-file",
    "net-rules:write-file",
    "net-rules:symlink",
    "guest-tools:rename",
    "guest-tools:write-file",
    "guest-tools:symlink",
    "selinux:write-file",
];

/// The finding checks that report an action's cause. Empty: a consequence of other actions
/// (persistent drivers follow an initramfs repair, regeneration follows command-line edits, a
/// relabel follows any write), which needs another finding.
fn cause_checks(a: &Action) -> &'static [&'static str] {
    match (a.area.as_str(), &a.change) {
        ("initramfs", _) => &["initramfs"],
        ("fstab", _) if a.target() == "/etc/crypttab" => &["crypttab"],
        ("fstab", _) => &["fstab"],
        ("bootloader", Change::RunBootloaderTool { .. }) => &[],
        ("bootloader", _) => &["bootloader", "root"],
        ("network", _) => &["network"],
        ("net-rules", _) => &["net-rules"],
        ("guest-tools", _) => &["guest-tools"],
        ("persist-drivers" | "selinux", _) => &[],
        (other, _) => panic!("action area {other} has no verify check: add one"),
    }
}

/// A guest that needs some repair, and the words its cause's finding must contain. `files`:
/// only visible with the guest files (verify_linux_files); else verify_linux sees it too.
struct Case {
    name: &'static str,
    guest: Guest,
    finding: &'static str,
    files_only: bool,
}

fn cases() -> Vec<Case> {
    let mut v = vec![];
    let mut case = |name, finding, files_only, f: &dyn Fn(&mut Guest)| {
        let mut guest = healthy();
        f(&mut guest);
        v.push(Case {
            name,
            guest,
            finding,
            files_only,
        });
    };
    case(
        "default kernel without virtio, offline",
        "virtio_blk is neither built in nor in the initramfs",
        false,
        &|g| {
            g.l.kernels[0] = kernel(KVER, false);
            g.inputs.files.remove("/etc/initramfs-tools/modules");
        },
    );
    case(
        "default kernel without virtio, guest tool",
        "virtio_pci is neither built in",
        false,
        &|g| {
            g.l.kernels[0] = kernel(KVER, false);
            g.opts.initramfs = InitramfsMode::GuestTool;
        },
    );
    case(
        "an older kernel without virtio",
        "kernel 5.10.0-28-amd64 (not the default entry's): its initramfs lacks virtio_pci",
        false,
        &|g| {
            g.l.kernels.push(kernel("5.10.0-28-amd64", false));
            g.set_file("/lib/modules/5.10.0-28-amd64/modules.dep", MODULES_DEP);
        },
    );
    case(
        "nofail fstab entry by device name",
        "/dev/sdb1 (/data, nofail) depends on the disk bus",
        false,
        &|g| {
            g.ins.volumes.push(volume("/dev/sdb1", "ext4", DATA_UUID));
            g.l.fstab.push(fstab_entry(
                2,
                "/dev/sdb1",
                "/data",
                "/dev/sdb1",
                true,
                true,
            ));
            let t = format!(
                "UUID={ROOT_UUID} / ext4 defaults 0 1\n/dev/sdb1 /data ext4 defaults,nofail 0 2\n"
            );
            g.set_file("/etc/fstab", &t);
        },
    );
    case(
        "crypttab by device name",
        "/dev/sdb1 (data_crypt) depends on the disk bus",
        false,
        &|g| {
            g.ins
                .volumes
                .push(volume("/dev/sdb1", "crypto_LUKS", DATA_UUID));
            g.l.crypttab.push(CrypttabEntry {
                line: 1,
                name: "data_crypt".into(),
                spec: "/dev/sdb1".into(),
                spec_kind: SpecKind::DeviceName,
                resolves_to: Some("/dev/sdb1".into()),
                present: true,
                bus_dependent: true,
            });
            g.set_file("/etc/crypttab", "data_crypt /dev/sdb1 none luks\n");
        },
    );
    case(
        "recovery entry with root=/dev/sda1",
        "root=/dev/sda1",
        false,
        &|g| {
            let good = format!("root=UUID={ROOT_UUID} ro {CONSOLE}");
            let bad = format!("root=/dev/sda1 ro single {CONSOLE}");
            g.set_grub_cfg(&[(KVER, &good), (KVER, &bad)]);
        },
    );
    case(
        "GRUB_DISABLE_LINUX_UUID=true",
        "GRUB_DISABLE_LINUX_UUID=true -> false",
        true,
        &|g| {
            g.set_file(
                "/etc/default/grub",
                &format!("GRUB_CMDLINE_LINUX=\"{CONSOLE}\"\nGRUB_DISABLE_LINUX_UUID=true\n"),
            );
            g.l.bootloader.grub_disable_linux_uuid = true;
        },
    );
    case(
        "no serial console",
        "added console=tty0 console=ttyS0,115200",
        true,
        &|g| {
            let args = format!("root=UUID={ROOT_UUID} ro quiet");
            g.set_grub_cfg(&[(KVER, &args)]);
        },
    );
    case(
        "device.map by the old bus",
        "names the disks by the old bus",
        true,
        &|g| g.set_file("/boot/grub/device.map", "(hd0) /dev/sda\n"),
    );
    case(
        "UEFI with only the vendor loader",
        "no \\EFI\\BOOT\\BOOTX64.EFI, only the vendor loader \\EFI\\debian\\shimx64.efi",
        false,
        &|g| {
            g.ins.volumes.push(volume("/dev/sda15", "vfat", ESP_UUID));
            g.l.mounts.insert("/boot/efi".into(), "/dev/sda15".into());
            let b = &mut g.l.bootloader;
            b.firmware = "uefi".into();
            b.esp = Some(EspInfo {
                device: "/dev/sda15".into(),
                efi_files: ["shimx64.efi", "grubx64.efi", "mmx64.efi", "grub.cfg"]
                    .iter()
                    .map(|f| format!("/EFI/debian/{f}"))
                    .collect(),
                has_fallback: false,
            });
            b.stub_config = Some("/boot/efi/EFI/debian/grub.cfg".into());
            g.set_file(
                "/boot/efi/EFI/debian/grub.cfg",
                "search.fs_uuid 0c0ffee0 root\nconfigfile ($root)/boot/grub/grub.cfg\n",
            );
        },
    );
    case(
        "keyfile bound to the old MAC beside a portable one",
        "bound to the old NIC (MAC 00:50:56:aa:bb:cc)",
        false,
        &|g| {
            g.l.network.configs.push(NetConfigInfo {
                flavor: "networkmanager".into(),
                file: "/etc/NetworkManager/system-connections/ens192.nmconnection".into(),
                interfaces: vec![IfaceInfo {
                    name: Some("ens192".into()),
                    mac: Some("00:50:56:aa:bb:cc".into()),
                    dhcp: true,
                    ..Default::default()
                }],
            });
        },
    );
    case(
        "ifupdown static on ens192",
        "ifupdown interface ens192 is bound to the old NIC (name ens192)",
        false,
        &|g| {
            g.l.network.configs = vec![NetConfigInfo {
                flavor: "ifupdown".into(),
                file: "/etc/network/interfaces".into(),
                interfaces: vec![IfaceInfo {
                    name: Some("ens192".into()),
                    addresses: vec!["10.0.0.5/24".into()],
                    line: Some(3),
                    ..Default::default()
                }],
            }];
            g.set_file(
                "/etc/network/interfaces",
                "auto lo\niface lo inet loopback\nauto ens192\niface ens192 inet static\n    address 10.0.0.5/24\n",
            );
        },
    );
    let rule = "SUBSYSTEM==\"net\", ACTION==\"add\", ATTR{address}==\"00:50:56:aa:bb:cc\", NAME=\"eth0\"\n";
    case(
        "persistent-net rules file",
        "pins eth0 to MAC 00:50:56:aa:bb:cc",
        false,
        &|g| {
            let file = "/etc/udev/rules.d/70-persistent-net.rules";
            g.l.network.persistent_net_rules.push(PersistentNetRule {
                file: file.into(),
                line: 1,
                name: "eth0".into(),
                mac: Some("00:50:56:aa:bb:cc".into()),
            });
            g.set_file(file, rule);
        },
    );
    case(
        "persistent-net rule among other rules",
        "pins eth0 to MAC 00:50:56:aa:bb:cc",
        false,
        &|g| {
            let file = "/etc/udev/rules.d/70-local.rules";
            g.l.network.persistent_net_rules.push(PersistentNetRule {
                file: file.into(),
                line: 2,
                name: "eth0".into(),
                mac: Some("00:50:56:aa:bb:cc".into()),
            });
            g.set_file(
                file,
                &format!("KERNEL==\"sr0\", SYMLINK+=\"cdrom\"\n{rule}"),
            );
        },
    );
    case(
        "persistent-net generator",
        "75-persistent-net-generator.rules pins the new NIC",
        false,
        &|g| g.l.network.persistent_net_generator = true,
    );
    case(
        "systemd .link by MAC",
        ".link file names an interface by the old MAC",
        false,
        &|g| {
            g.l.network.configs.push(NetConfigInfo {
                flavor: "systemd-link".into(),
                file: "/etc/systemd/network/10-lan.link".into(),
                interfaces: vec![IfaceInfo {
                    name: Some("lan0".into()),
                    mac: Some("00:50:56:aa:bb:cc".into()),
                    ..Default::default()
                }],
            });
        },
    );
    case(
        "open-vm-tools enabled",
        "open-vm-tools (/usr/bin/vmtoolsd) is enabled",
        true,
        &|g| {
            g.l.guest_tools.push(GuestTool {
                name: "open-vm-tools".into(),
                evidence: "/usr/bin/vmtoolsd".into(),
            });
            g.inputs.dirs.insert(
                "/etc/systemd/system/multi-user.target.wants".into(),
                vec!["open-vm-tools.service".into(), "ssh.service".into()],
            );
        },
    );
    case(
        "SELinux guest with a bus name in fstab",
        "/dev/sda1 (/) depends on the disk bus",
        false,
        &|g| {
            g.l.selinux = Some("enforcing".into());
            g.l.fstab[0] = fstab_entry(1, "/dev/sda1", "/", "/dev/sda1", true, false);
            g.set_file("/etc/fstab", "/dev/sda1 / ext4 defaults 0 1\n");
        },
    );
    v
}

fn show(fs: &[Finding]) -> String {
    fs.iter()
        .map(|f| format!("  [{}] {:?}: {}", f.check, f.file, f.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn healthy_guest_plans_nothing_and_is_ready() {
    let g = healthy();
    let a = g.plan();
    assert!(a.is_empty(), "{:#?}", a);
    for v in [
        verify_linux(&g.l, &g.ins, &g.opts),
        verify_linux_files(&g.l, &g.ins, &g.inputs, &g.opts),
    ] {
        assert!(v.ready, "{}", show(&v.findings));
    }
}

#[test]
fn every_planned_action_has_a_verify_finding() {
    let mut seen = std::collections::BTreeSet::new();
    for c in cases() {
        let g = &c.guest;
        let actions = g.plan();
        assert!(!actions.is_empty(), "{}: nothing planned", c.name);
        let with_files = verify_linux_files(&g.l, &g.ins, &g.inputs, &g.opts);
        let data_only = verify_linux(&g.l, &g.ins, &g.opts);
        let mut verdicts = vec![("verify_linux_files", &with_files)];
        if !c.files_only {
            verdicts.push(("verify_linux", &data_only));
        }
        for (which, v) in verdicts {
            assert!(!v.ready, "{}: {which} says ready", c.name);
            assert!(
                v.findings.iter().any(|f| f.message.contains(c.finding)),
                "{}: {which} has no finding with '{}':\n{}",
                c.name,
                c.finding,
                show(&v.findings)
            );
            for a in &actions {
                let checks = cause_checks(a);
                assert!(
                    checks.is_empty()
                        || v.findings
                            .iter()
                            .any(|f| checks.contains(&f.check.as_str())),
                    "{}: {which} has no {checks:?} finding for {} {} ({}):\n{}",
                    c.name,
                    kind(a),
                    a.target(),
                    a.reason,
                    show(&v.findings)
                );
            }
        }
        seen.extend(actions.iter().map(kind));
    }
    let missing: Vec<&&str> = ALL_KINDS.iter().filter(|k| !seen.contains(**k)).collect();
    assert!(missing.is_empty(), "no case plans {missing:?}");
    let unknown: Vec<&String> = seen
        .iter()
        .filter(|k| !ALL_KINDS.contains(&k.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "list these kinds in ALL_KINDS: {unknown:?}"
    );
}
