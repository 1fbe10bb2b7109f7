//! Realistic guests per flavor: the real inspection parsers read a skeleton tree, the plan is
//! checked file by file, applied to the tree, and planning again must find nothing to do.
use super::*;
use crate::fs::Vfs;
use crate::inspect::linux::network::detect_network;
use crate::inspect::linux::network::testutil::guest;
use crate::plan::collect_inputs;
use crate::types::BootEntry;
use std::path::Path;

const BK: &str = "/var/lib/revirt/backup/network";

fn linux(vfs: &Vfs, distro: &str, version: &str, family: &str, cmdline: &str) -> LinuxInfo {
    let mut l = LinuxInfo {
        distro: distro.into(),
        version: version.into(),
        family: family.into(),
        network: detect_network(vfs).expect("detect_network"),
        ..Default::default()
    };
    if !cmdline.is_empty() {
        l.bootloader.entries.push(BootEntry {
            cmdline: cmdline.into(),
            ..Default::default()
        });
    }
    l
}

fn run(vfs: &Vfs, l: &LinuxInfo, mode: NetworkMode) -> (Vec<Action>, Vec<String>) {
    let inputs = collect_inputs(vfs, l).expect("collect_inputs");
    let opts = PlanOptions {
        network: mode,
        ..Default::default()
    };
    let mut notes = vec![];
    let a = plan_network(l, &inputs, &opts, &mut notes);
    (a, notes)
}

/// What `apply` will do, on a host directory.
fn apply(root: &Path, actions: &[Action]) {
    let host = |p: &str| root.join(p.trim_start_matches('/'));
    let mkparent = |p: &Path| std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    for a in actions {
        match &a.change {
            Change::WriteFile {
                path,
                content,
                mode,
            } => {
                let h = host(path);
                mkparent(&h);
                std::fs::write(&h, content).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&h, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
            Change::Rename { from, to } => {
                mkparent(&host(to));
                std::fs::rename(host(from), host(to)).unwrap();
            }
            Change::CopyFile { from, to } => {
                mkparent(&host(to));
                std::fs::copy(host(from), host(to)).unwrap();
            }
            Change::Symlink { path, target } => {
                let h = host(path);
                mkparent(&h);
                let _ = std::fs::remove_file(&h);
                std::os::unix::fs::symlink(target, &h).unwrap();
            }
            other => panic!("unexpected change {other:?}"),
        }
    }
}

/// Applies `actions`, inspects again, and asserts that the next plan is empty.
fn assert_idempotent(
    root: &Path,
    vfs: &Vfs,
    l: &LinuxInfo,
    mode: NetworkMode,
    actions: &[Action],
) -> LinuxInfo {
    apply(root, actions);
    let mut l2 = l.clone();
    l2.network = detect_network(vfs).unwrap();
    let (again, notes) = run(vfs, &l2, mode);
    assert!(
        again.is_empty(),
        "second plan not empty: {again:#?}\nnotes: {notes:?}"
    );
    assert!(l2.network.persistent_net_rules.is_empty());
    assert!(!l2.network.persistent_net_generator);
    l2
}

fn ops(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match &a.change {
            Change::WriteFile { path, mode, .. } => format!("write {path} {mode:o}"),
            Change::Rename { from, to } => format!("rename {from} -> {to}"),
            Change::CopyFile { from, to } => format!("copy {from} -> {to}"),
            Change::Symlink { path, target } => format!("symlink {path} -> {target}"),
            other => format!("{other:?}"),
        })
        .collect()
}

fn content<'a>(actions: &'a [Action], path: &str) -> &'a str {
    actions
        .iter()
        .find_map(|a| match &a.change {
            Change::WriteFile {
                path: p, content, ..
            } if p == path => Some(content.as_str()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no write of {path}"))
}

const DEBIAN_LO: &str = "\
# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback
";

/// Debian 12 installed on VMware with a static address on ens192.
fn debian_static() -> String {
    format!(
        "{DEBIAN_LO}
# The primary network interface
allow-hotplug ens192
iface ens192 inet static
\taddress 192.168.10.20/24
\tgateway 192.168.10.1
\t# dns-* options are implemented by the resolvconf package, if installed
\tdns-nameservers 192.168.10.2
\tdns-search example.com
"
    )
}

const SETTLE: &str = "\
# revirt: networking waits for udev, so `auto /e*` in /etc/network/interfaces sees the new NIC.
# ifupdown expands such patterns against the NICs present when networking starts, and
# ifupdown-pre only waits for udev when a configured interface already exists.
[Service]
ExecStartPre=-/bin/udevadm settle
";

#[test]
fn debian12_ifupdown_static_to_dhcp_on_any_nic() {
    let main = debian_static();
    let (d, vfs) = guest(&[
        (IFUPDOWN_MAIN, &main),
        ("/etc/network/interfaces.d/.keep", ""),
    ]);
    let l = linux(&vfs, "debian", "12", "debian", "ro quiet");
    let (a, notes) = run(&vfs, &l, NetworkMode::Dhcp);
    assert_eq!(
        ops(&a),
        [
            format!("copy /etc/network/interfaces -> {BK}/etc/network/interfaces"),
            "write /etc/network/interfaces 644".into(),
            format!("write {SETTLE_DROPIN} 644"),
        ],
        "{notes:?}"
    );
    assert_eq!(
        content(&a, IFUPDOWN_MAIN),
        format!(
            "{DEBIAN_LO}
# The primary network interface

# revirt: DHCP on any Ethernet NIC, whatever its name or MAC address
# revirt: replaces /etc/network/interfaces (original kept under {BK})
auto /e*=revirt
iface revirt inet dhcp
"
        )
    );
    assert_eq!(content(&a, SETTLE_DROPIN), SETTLE);
    assert!(a[1]
        .diff
        .as_deref()
        .unwrap()
        .contains("-allow-hotplug ens192"));
    assert!(kernel_args(&l, &PlanOptions::default()).is_empty());
    assert_idempotent(d.path(), &vfs, &l, NetworkMode::Dhcp, &a);
    // The original is kept, byte for byte.
    let kept = std::fs::read_to_string(d.path().join(&BK[1..]).join("etc/network/interfaces"));
    assert_eq!(kept.unwrap(), main);
}

#[test]
fn debian12_ifupdown_keep_static_then_switch_to_dhcp() {
    let (d, vfs) = guest(&[(IFUPDOWN_MAIN, &debian_static())]);
    let l = linux(&vfs, "debian", "12", "debian", "");
    let (a, _) = run(&vfs, &l, NetworkMode::KeepStatic);
    assert_eq!(
        content(&a, IFUPDOWN_MAIN),
        format!(
            "{DEBIAN_LO}
# The primary network interface

# revirt: static addressing of the old NIC, moved to the first Ethernet NIC, whatever its name or MAC address
# revirt: replaces /etc/network/interfaces (original kept under {BK})
auto /e*/1=revirt
iface revirt inet static
    address 192.168.10.20/24
    gateway 192.168.10.1
    dns-nameservers 192.168.10.2
"
        )
    );
    let l2 = assert_idempotent(d.path(), &vfs, &l, NetworkMode::KeepStatic, &a);
    // Asking for DHCP afterwards rewrites revirt's own block in place: no second block, and the
    // backup of the original is not overwritten.
    let (b, _) = run(&vfs, &l2, NetworkMode::Dhcp);
    assert_eq!(ops(&b), ["write /etc/network/interfaces 644"]);
    assert!(content(&b, IFUPDOWN_MAIN).ends_with(
        "# The primary network interface\n\n\
         # revirt: DHCP on any Ethernet NIC, whatever its name or MAC address\n\
         # revirt: replaces /etc/network/interfaces (original kept under /var/lib/revirt/backup/network)\n\
         auto /e*=revirt\niface revirt inet dhcp\n"
    ));
    assert_idempotent(d.path(), &vfs, &l2, NetworkMode::Dhcp, &b);
}

const NM_STATIC: &str = "\
[connection]
id=Wired connection 1
uuid=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03
type=ethernet
autoconnect-priority=-999
interface-name=ens192
timestamp=1700000000

[ethernet]
mac-address=00:50:56:A1:B2:C3

[ipv4]
address1=10.20.30.40/24,10.20.30.1
dns=10.20.30.2;
method=manual

[ipv6]
addr-gen-mode=default
method=auto
";

const NM_FILE: &str = "/etc/NetworkManager/system-connections/Wired connection 1.nmconnection";

#[test]
fn networkmanager_keyfile_bound_to_old_mac() {
    for (mode, ipv4) in [
        (NetworkMode::Dhcp, "method=auto\n"),
        (
            NetworkMode::KeepStatic,
            "method=manual\naddress1=10.20.30.40/24,10.20.30.1\ndns=10.20.30.2;\n",
        ),
    ] {
        let (d, vfs) = guest(&[(IFUPDOWN_MAIN, DEBIAN_LO), (NM_FILE, NM_STATIC)]);
        let l = linux(&vfs, "debian", "12", "debian", "");
        let (a, _) = run(&vfs, &l, mode);
        assert_eq!(
            ops(&a),
            [
                format!("rename {NM_FILE} -> {BK}{NM_FILE}"),
                format!("write {NM_PATH} 600"),
            ]
        );
        let purpose = match mode {
            NetworkMode::Dhcp => "DHCP on any Ethernet NIC",
            NetworkMode::KeepStatic => {
                "static addressing of the old NIC, moved to the first Ethernet NIC"
            }
        };
        assert_eq!(
            content(&a, NM_PATH),
            format!(
                "# revirt: {purpose}, whatever its name or MAC address
# revirt: replaces {NM_FILE} (original kept under {BK})
[connection]
id=revirt
uuid=72657669-7274-4e65-8000-6e6574776f72
type=ethernet
autoconnect=true
autoconnect-priority=100

[ethernet]

[ipv4]
{ipv4}
[ipv6]
method=auto
"
            )
        );
        let l2 = assert_idempotent(d.path(), &vfs, &l, mode, &a);
        let i = &l2.network.configs[0].interfaces[0];
        assert_eq!((i.name.as_deref(), i.mac.as_deref()), (None, None));
    }
}

const NETPLAN_MAC: &str = "\
# This is the network config written by 'subiquity'
network:
  version: 2
  renderer: networkd
  ethernets:
    lan:
      match:
        macaddress: 00:50:56:aa:bb:cc
      set-name: lan
      addresses: [192.168.50.10/24]
      routes:
        - to: default
          via: 192.168.50.1
      nameservers:
        addresses: [192.168.50.1]
";

#[test]
fn netplan_networkd_matched_by_macaddress() {
    const F: &str = "/etc/netplan/00-installer-config.yaml";
    let head = format!(
        "# revirt: replaces {F} (original kept under {BK})
network:
  version: 2
  renderer: networkd
  ethernets:
    revirt:
      match:
        name: \"e*\"
"
    );
    for (mode, body) in [
        (NetworkMode::Dhcp, "      dhcp4: true\n"),
        (
            NetworkMode::KeepStatic,
            "      addresses:
        - \"192.168.50.10/24\"
      routes:
        - to: \"0.0.0.0/0\"
          via: \"192.168.50.1\"
      nameservers:
        addresses:
          - \"192.168.50.1\"
",
        ),
    ] {
        let (d, vfs) = guest(&[(F, NETPLAN_MAC)]);
        let l = linux(&vfs, "ubuntu", "22.04", "debian", "");
        let (a, _) = run(&vfs, &l, mode);
        assert_eq!(
            ops(&a),
            [
                format!("rename {F} -> {BK}{F}"),
                format!("write {NETPLAN_PATH} 600")
            ]
        );
        let text = content(&a, NETPLAN_PATH);
        assert!(text.starts_with("# revirt: "), "{text}");
        assert_eq!(text.split_once('\n').unwrap().1, format!("{head}{body}"));
        assert_idempotent(d.path(), &vfs, &l, mode, &a);
    }
}

#[test]
fn netplan_with_networkmanager_renderer_gets_a_keyfile() {
    const NM_ALL: &str = "/etc/netplan/01-network-manager-all.yaml";
    const CI: &str = "/etc/netplan/50-cloud-init.yaml";
    let (d, vfs) = guest(&[
        (
            NM_ALL,
            "# Let NetworkManager manage all devices on this system\nnetwork:\n  version: 2\n  renderer: NetworkManager\n",
        ),
        (
            CI,
            "network:\n    ethernets:\n        eth0:\n            dhcp4: true\n            match:\n                macaddress: 00:0d:3a:12:34:56\n            set-name: eth0\n    version: 2\n",
        ),
        ("/etc/NetworkManager/NetworkManager.conf", "[main]\nplugins=ifupdown,keyfile\n"),
    ]);
    let l = linux(&vfs, "ubuntu", "22.04", "debian", "");
    l.network
        .configs
        .iter()
        .for_each(|c| assert_eq!(c.flavor, "netplan"));
    let (a, _) = run(&vfs, &l, NetworkMode::Dhcp);
    assert_eq!(
        ops(&a),
        [
            format!("rename {CI} -> {BK}{CI}"),
            format!("write {NM_PATH} 600")
        ]
    );
    assert!(content(&a, NM_PATH).contains("\n[ipv4]\nmethod=auto\n"));
    assert_idempotent(d.path(), &vfs, &l, NetworkMode::Dhcp, &a);
}

const RULES: &str = "\
# This file was automatically generated by the /lib/udev/write_net_rules
# program, run by the persistent-net-generator.rules rules file.
#
# You can modify it, as long as you keep each rule on a single
# line, and change only the value of the NAME= key.

# PCI device 0x15ad:0x07b0 (vmxnet3)
SUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"?*\", ATTR{address}==\"00:50:56:9a:bc:de\", ATTR{dev_id}==\"0x0\", ATTR{type}==\"1\", KERNEL==\"eth*\", NAME=\"eth0\"
";
const RULES_FILE: &str = "/etc/udev/rules.d/70-persistent-net.rules";

/// Debian 12 booted with net.ifnames=0, eth0 pinned to the VMware MAC, ifupdown on eth0.
#[test]
fn persistent_net_rules_with_ifnames0_and_ifupdown_eth0() {
    let main = format!(
        "{DEBIAN_LO}\nauto eth0\niface eth0 inet static\n    address 10.1.1.5/24\n    gateway 10.1.1.1\n"
    );
    let (d, vfs) = guest(&[(IFUPDOWN_MAIN, &main), (RULES_FILE, RULES)]);
    let l = linux(&vfs, "debian", "12", "debian", "ro net.ifnames=0 quiet");
    assert_eq!(l.network.persistent_net_rules.len(), 1);
    // keep-static: eth0 without a MAC is already what the first NIC is called: only the pin goes.
    let (a, _) = run(&vfs, &l, NetworkMode::KeepStatic);
    assert_eq!(
        ops(&a),
        [format!("rename {RULES_FILE} -> {BK}{RULES_FILE}")]
    );
    assert!(a[0].reason.contains("eth0 to MAC 00:50:56:9a:bc:de"));
    // dhcp: the static stanza goes too.
    let (a, _) = run(&vfs, &l, NetworkMode::Dhcp);
    assert_eq!(
        ops(&a),
        [
            format!("rename {RULES_FILE} -> {BK}{RULES_FILE}"),
            format!("copy /etc/network/interfaces -> {BK}/etc/network/interfaces"),
            "write /etc/network/interfaces 644".into(),
            format!("write {SETTLE_DROPIN} 644"),
        ]
    );
    assert_eq!(
        content(&a, IFUPDOWN_MAIN),
        format!("{DEBIAN_LO}\n# revirt: DHCP on any Ethernet NIC, whatever its name or MAC address\n# revirt: replaces /etc/network/interfaces (original kept under {BK})\nauto /e*=revirt\niface revirt inet dhcp\n")
    );
    assert!(kernel_args(&l, &PlanOptions::default()).is_empty());
    assert_idempotent(d.path(), &vfs, &l, NetworkMode::Dhcp, &a);
}

#[test]
fn rules_file_with_other_rules_is_edited_not_moved() {
    let text = format!(
        "{RULES}SUBSYSTEM==\"net\", ACTION==\"add\", \\\n  ATTR{{address}}==\"00:0c:29:11:22:33\", NAME=\"eth1\"\nACTION==\"add\", SUBSYSTEM==\"block\", ATTR{{queue/scheduler}}=\"none\"\n"
    );
    let (d, vfs) = guest(&[(RULES_FILE, &text), (IFUPDOWN_MAIN, DEBIAN_LO)]);
    let l = linux(&vfs, "debian", "12", "debian", "");
    let (a, _) = run(&vfs, &l, NetworkMode::Dhcp);
    assert_eq!(
        ops(&a)[..2],
        [
            format!("copy {RULES_FILE} -> {BK}{RULES_FILE}"),
            format!("write {RULES_FILE} 644"),
        ]
    );
    let after = content(&a, RULES_FILE);
    assert!(after.ends_with(
        "# revirt (old NIC): SUBSYSTEM==\"net\", ACTION==\"add\", \\\n\
         # revirt (old NIC):   ATTR{address}==\"00:0c:29:11:22:33\", NAME=\"eth1\"\n\
         ACTION==\"add\", SUBSYSTEM==\"block\", ATTR{queue/scheduler}=\"none\"\n"
    ));
    assert!(after.contains("# revirt (old NIC): SUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS"));
    assert_idempotent(d.path(), &vfs, &l, NetworkMode::Dhcp, &a);
}

/// RHEL 7 from VMware: ifcfg pinned by HWADDR, the old generator, its rules file.
#[test]
fn rhel7_ifcfg_hwaddr_generator_and_rules() {
    const IFCFG: &str = "/etc/sysconfig/network-scripts/ifcfg-ens192";
    let (d, vfs) = guest(&[
        (
            IFCFG,
            "TYPE=Ethernet\nBOOTPROTO=dhcp\nNAME=ens192\nDEVICE=ens192\nONBOOT=yes\nHWADDR=00:50:56:8a:01:02\n",
        ),
        ("/etc/sysconfig/network", "NETWORKING=yes\n"),
        (RULES_FILE, RULES),
        (
            "/usr/lib/udev/rules.d/75-persistent-net-generator.rules",
            "ACTION==\"add\", SUBSYSTEM==\"net\", IMPORT{program}=\"write_net_rules\"\n",
        ),
    ]);
    let l = linux(
        &vfs,
        "rhel",
        "7.9",
        "rhel",
        "ro crashkernel=auto rhgb quiet",
    );
    assert_eq!(kernel_args(&l, &PlanOptions::default()), ["net.ifnames=0"]);
    let (a, _) = run(&vfs, &l, NetworkMode::Dhcp);
    assert_eq!(
        ops(&a),
        [
            format!("rename {RULES_FILE} -> {BK}{RULES_FILE}"),
            format!("symlink {GENERATOR_ETC} -> /dev/null"),
            format!("rename {IFCFG} -> {BK}{IFCFG}"),
            format!("write {RHEL_PATH} 644"),
        ]
    );
    assert_eq!(
        content(&a, RHEL_PATH),
        format!(
            "# revirt: DHCP on eth0 (the first NIC with net.ifnames=0)
# revirt: replaces {IFCFG} (original kept under {BK})
DEVICE=eth0
NAME=eth0
TYPE=Ethernet
ONBOOT=yes
BOOTPROTO=dhcp
"
        )
    );
    let mut l2 = assert_idempotent(d.path(), &vfs, &l, NetworkMode::Dhcp, &a);
    // Once the bootloader planner has added it, the argument is not asked for again.
    l2.bootloader.entries[0].cmdline.push_str(" net.ifnames=0");
    assert!(kernel_args(&l2, &PlanOptions::default()).is_empty());
}

/// RHEL 7 anaconda static ifcfg-eth0 with HWADDR: the file at the target path is replaced.
#[test]
fn rhel7_keep_static_replaces_ifcfg_eth0_in_place() {
    const IFCFG: &str = "/etc/sysconfig/network-scripts/ifcfg-eth0";
    let (d, vfs) = guest(&[
        (
            IFCFG,
            "TYPE=Ethernet\nBOOTPROTO=none\nNAME=eth0\nDEVICE=eth0\nONBOOT=yes\nIPADDR=192.168.122.10\nNETMASK=255.255.255.0\nDNS1=192.168.122.1\nDNS2=1.1.1.1\nHWADDR=52:54:00:6B:3C:58\n",
        ),
        ("/etc/sysconfig/network", "NETWORKING=yes\nGATEWAY=192.168.122.1\n"),
    ]);
    let l = linux(&vfs, "centos", "7", "rhel", "");
    let (a, _) = run(&vfs, &l, NetworkMode::KeepStatic);
    assert_eq!(
        ops(&a),
        [
            format!("rename {IFCFG} -> {BK}{IFCFG}"),
            format!("write {RHEL_PATH} 644"),
        ]
    );
    assert_eq!(
        content(&a, RHEL_PATH),
        format!(
            "# revirt: static addressing of the old NIC, moved to eth0 (the first NIC with net.ifnames=0)
# revirt: replaces {IFCFG} (original kept under {BK})
DEVICE=eth0
NAME=eth0
TYPE=Ethernet
ONBOOT=yes
BOOTPROTO=none
IPADDR=192.168.122.10
PREFIX=24
GATEWAY=192.168.122.1
DNS1=192.168.122.1
DNS2=1.1.1.1
"
        )
    );
    assert_idempotent(d.path(), &vfs, &l, NetworkMode::KeepStatic, &a);
}

#[test]
fn suse_wicked_static_keeps_route() {
    const IFCFG: &str = "/etc/sysconfig/network/ifcfg-ens192";
    let (d, vfs) = guest(&[
        (
            IFCFG,
            "BOOTPROTO='static'\nSTARTMODE='auto'\nIPADDR='10.161.1.20/16'\n",
        ),
        (
            "/etc/sysconfig/network/ifroute-ens192",
            "default 10.161.0.1 - ens192\n",
        ),
        (
            "/etc/sysconfig/network/config",
            "NETCONFIG_DNS_STATIC_SERVERS=\"10.161.0.2\"\n",
        ),
    ]);
    let l = linux(&vfs, "sles", "15.5", "suse", "");
    assert_eq!(kernel_args(&l, &PlanOptions::default()), ["net.ifnames=0"]);
    let (a, _) = run(&vfs, &l, NetworkMode::KeepStatic);
    assert_eq!(
        ops(&a),
        [
            format!("rename {IFCFG} -> {BK}{IFCFG}"),
            format!("write {SUSE_PATH} 644"),
            format!("write {SUSE_ROUTE} 644"),
        ]
    );
    let head = format!("# revirt: static addressing of the old NIC, moved to eth0 (the first NIC with net.ifnames=0)\n# revirt: replaces {IFCFG} (original kept under {BK})\n");
    assert_eq!(
        content(&a, SUSE_PATH),
        format!("{head}STARTMODE='auto'\nBOOTPROTO='static'\nIPADDR='10.161.1.20/16'\n")
    );
    assert_eq!(
        content(&a, SUSE_ROUTE),
        format!("{head}default 10.161.0.1 - eth0\n")
    );
    assert_idempotent(d.path(), &vfs, &l, NetworkMode::KeepStatic, &a);
}

#[test]
fn networkd_matched_by_mac_and_link_file() {
    const NET: &str = "/etc/systemd/network/10-lan.network";
    const LINK: &str = "/etc/systemd/network/10-lan.link";
    let (d, vfs) = guest(&[
        (
            NET,
            "[Match]\nMACAddress=00:0c:29:aa:bb:cc\n\n[Network]\nAddress=10.5.0.9/24\nGateway=10.5.0.1\n",
        ),
        (LINK, "[Match]\nMACAddress=00:0c:29:aa:bb:cc\n\n[Link]\nName=lan0\n"),
    ]);
    let l = linux(&vfs, "arch", "", "other", "");
    let (a, _) = run(&vfs, &l, NetworkMode::Dhcp);
    assert_eq!(
        ops(&a),
        [
            format!("rename {LINK} -> {BK}{LINK}"),
            format!("rename {NET} -> {BK}{NET}"),
            format!("write {NETWORKD_PATH} 644"),
        ]
    );
    assert_eq!(
        content(&a, NETWORKD_PATH),
        format!("# revirt: DHCP on any Ethernet NIC, whatever its name or MAC address\n# revirt: replaces {NET} (original kept under {BK})\n[Match]\nName=e*\n\n[Network]\nDHCP=ipv4\n")
    );
    assert_idempotent(d.path(), &vfs, &l, NetworkMode::Dhcp, &a);
}

#[test]
fn no_config_gets_dhcp_for_the_installed_tool() {
    let (d, vfs) = guest(&[(IFUPDOWN_MAIN, DEBIAN_LO)]);
    let l = linux(&vfs, "debian", "12", "debian", "");
    let (a, notes) = run(&vfs, &l, NetworkMode::Dhcp);
    assert!(notes
        .iter()
        .any(|n| n.contains("no network configuration found")));
    assert_eq!(
        content(&a, IFUPDOWN_MAIN),
        format!("{DEBIAN_LO}\n# revirt: DHCP on any Ethernet NIC, whatever its name or MAC address\nauto /e*=revirt\niface revirt inet dhcp\n")
    );
    assert_idempotent(d.path(), &vfs, &l, NetworkMode::Dhcp, &a);

    // A guest with no tool at all gets nothing, and a note.
    let (_d, vfs) = guest(&[("/etc/hostname", "x\n")]);
    let l = linux(&vfs, "alpine", "3.19", "other", "");
    let (a, notes) = run(&vfs, &l, NetworkMode::Dhcp);
    assert!(a.is_empty());
    assert!(notes[0].contains("no known network tool"), "{notes:?}");
}

/// Debian 8 has ifupdown 0.7 (no patterns): eth0 with net.ifnames=0.
#[test]
fn old_ifupdown_binds_eth0_with_ifnames0() {
    let main = format!("{DEBIAN_LO}\nallow-hotplug ens160\niface ens160 inet dhcp\n");
    let (d, vfs) = guest(&[(IFUPDOWN_MAIN, &main)]);
    let l = linux(&vfs, "debian", "8", "debian", "ro quiet");
    assert_eq!(kernel_args(&l, &PlanOptions::default()), ["net.ifnames=0"]);
    let (a, _) = run(&vfs, &l, NetworkMode::Dhcp);
    assert_eq!(
        ops(&a),
        [
            format!("copy /etc/network/interfaces -> {BK}/etc/network/interfaces"),
            "write /etc/network/interfaces 644".into(),
        ]
    );
    assert_eq!(
        content(&a, IFUPDOWN_MAIN),
        format!("{DEBIAN_LO}\n# revirt: DHCP on eth0 (the first NIC with net.ifnames=0)\n# revirt: replaces /etc/network/interfaces (original kept under {BK})\nallow-hotplug eth0\niface eth0 inet dhcp\n")
    );
    assert_idempotent(d.path(), &vfs, &l, NetworkMode::Dhcp, &a);
}

/// A sourced file wholly about the old NIC moves aside; the main file gets the block.
#[test]
fn ifupdown_sourced_file_moves_aside() {
    const SRC: &str = "/etc/network/interfaces.d/ens224";
    let (d, vfs) = guest(&[
        (IFUPDOWN_MAIN, DEBIAN_LO),
        (
            SRC,
            "auto ens224\niface ens224 inet dhcp\n    hwaddress ether 00:50:56:01:02:03\n",
        ),
    ]);
    let l = linux(&vfs, "debian", "11", "debian", "");
    // DHCP on a fixed old name is not portable even without a MAC pin.
    let (a, notes) = run(&vfs, &l, NetworkMode::Dhcp);
    assert_eq!(
        ops(&a),
        [
            format!("rename {SRC} -> {BK}{SRC}"),
            format!("copy /etc/network/interfaces -> {BK}/etc/network/interfaces"),
            "write /etc/network/interfaces 644".into(),
            format!("write {SETTLE_DROPIN} 644"),
        ]
    );
    assert!(
        notes.iter().any(|n| n.contains("set its MAC address")),
        "{notes:?}"
    );
    assert!(content(&a, IFUPDOWN_MAIN).contains(&format!("# revirt: replaces {SRC} ")));
    assert_idempotent(d.path(), &vfs, &l, NetworkMode::Dhcp, &a);
}

#[test]
fn portable_configs_are_left_alone() {
    // NetworkManager's own default: no name, no MAC, DHCP.
    let (_d, vfs) = guest(&[(
        "/etc/NetworkManager/system-connections/Wired.nmconnection",
        "[connection]\nid=Wired\ntype=ethernet\n[ipv4]\nmethod=auto\n",
    )]);
    let l = linux(&vfs, "fedora", "39", "rhel", "");
    let (a, _) = run(&vfs, &l, NetworkMode::Dhcp);
    assert!(a.is_empty(), "{a:#?}");
    assert!(kernel_args(&l, &PlanOptions::default()).is_empty());
}

#[test]
fn globs() {
    assert!(glob_match("e*", "ens3") && glob_match("e*", "eth0"));
    assert!(!glob_match("en*", "eth0"));
    assert!(glob_match("en[op]*", "enp1s0") && !glob_match("en[!op]*", "enp1s0"));
    assert!(glob_match("eth?", "eth0") && !glob_match("eth?", "eth10"));
}

#[test]
fn rules_are_counted_across_continuations() {
    assert_eq!(count_rules(RULES), 1);
    assert_eq!(
        count_rules("# c \\\nA==\"1\", \\\n  B=\"2\"\nC==\"3\"\n"),
        2
    );
}

/// The guest's own ifupdown pattern mappings: `/en*` misses eth0, `mac/...` is a MAC pin.
#[test]
fn ifupdown_own_pattern_mappings_are_judged_by_their_selector() {
    for sel in ["/en*=lan", "mac/00:50:56:*/=lan"] {
        let main = format!("{DEBIAN_LO}\nauto {sel}\niface lan inet dhcp\n");
        let (d, vfs) = guest(&[(IFUPDOWN_MAIN, &main)]);
        let l = linux(&vfs, "debian", "12", "debian", "");
        // The inspection reports `/VALUE` bindings as written (`mac/...` by its logical name,
        // which is no portable name either).
        if sel.starts_with('/') {
            assert_eq!(
                l.network.configs[0].interfaces[0].name.as_deref(),
                Some(sel)
            );
        }
        let (a, _) = run(&vfs, &l, NetworkMode::Dhcp);
        assert_eq!(
            content(&a, IFUPDOWN_MAIN),
            format!("{DEBIAN_LO}\n# revirt: DHCP on any Ethernet NIC, whatever its name or MAC address\n# revirt: replaces /etc/network/interfaces (original kept under {BK})\nauto /e*=revirt\niface revirt inet dhcp\n"),
            "{sel}"
        );
        assert_idempotent(d.path(), &vfs, &l, NetworkMode::Dhcp, &a);
    }
    // `/e*` itself already fits every NIC name.
    let main = format!("{DEBIAN_LO}\nauto /e*=lan\niface lan inet dhcp\n");
    let (_d, vfs) = guest(&[(IFUPDOWN_MAIN, &main)]);
    let l = linux(&vfs, "debian", "12", "debian", "");
    assert!(run(&vfs, &l, NetworkMode::Dhcp).0.is_empty());
}
