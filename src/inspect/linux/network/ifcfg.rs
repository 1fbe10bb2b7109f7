//! Shell-variable interface files: RHEL-like /etc/sysconfig/network-scripts/ifcfg-* (initscripts
//! and NetworkManager's ifcfg-rh plugin) and SUSE wicked /etc/sysconfig/network/ifcfg-*.
use super::shvars::{self, ShVars};
use super::{list_files, normalize_mac, read_text, truthy, with_prefix};
use crate::fs::Vfs;
use crate::types::{IfaceInfo, NetConfigInfo, NetworkInfo};
use std::collections::HashMap;

const RHEL_DIR: &str = "/etc/sysconfig/network-scripts";
const SUSE_DIR: &str = "/etc/sysconfig/network";

/// Names initscripts and wicked skip: backups, package leftovers, templates, loopback.
fn wanted(name: &str) -> Option<&str> {
    let dev = name.strip_prefix("ifcfg-")?;
    let skip = [
        "~",
        ".bak",
        ".orig",
        ".rpmnew",
        ".rpmsave",
        ".rpmorig",
        ".old",
        ".swp",
        ".dpkg-old",
        ".dpkg-dist",
    ];
    if dev.is_empty()
        || dev == "lo"
        || name == "ifcfg.template"
        || skip.iter().any(|s| dev.ends_with(s))
    {
        return None;
    }
    Some(dev)
}

fn load(vfs: &Vfs, dir: &str, info: &mut NetworkInfo) -> Vec<(String, String, ShVars)> {
    let mut out = vec![];
    if !vfs.is_dir(dir) {
        return out;
    }
    for (name, path) in list_files(vfs, dir, &mut info.warnings) {
        let Some(dev) = wanted(&name) else { continue };
        if let Some(text) = read_text(vfs, &path, &mut info.warnings) {
            out.push((dev.to_string(), path, shvars::parse(&text, &HashMap::new())));
        }
    }
    out
}

/// Addresses from `IPADDR[n]` with `PREFIX[n]`/`NETMASK[n]` (RHEL) or `PREFIXLEN` (SUSE).
fn addresses(v: &ShVars) -> Vec<String> {
    let mut out = vec![];
    for var in &v.vars {
        let Some(suffix) = var.name.strip_prefix("IPADDR") else {
            continue;
        };
        if var.value.trim().is_empty() || out.iter().any(|(s, _)| s == suffix) {
            continue;
        }
        let mask = ["PREFIX", "PREFIXLEN", "NETMASK"]
            .iter()
            .find_map(|k| v.get(&format!("{k}{suffix}")));
        out.push((suffix.to_string(), with_prefix(&var.value, mask)));
    }
    out.into_iter().map(|(_, a)| a).collect()
}

pub(super) fn detect_rhel(vfs: &Vfs, info: &mut NetworkInfo) {
    let files = load(vfs, RHEL_DIR, info);
    if files.is_empty() {
        return;
    }
    // Global GATEWAY/GATEWAYDEV (on SUSE this path is a directory, so is_dir guards it).
    let global = if vfs.is_dir(SUSE_DIR) {
        ShVars::default()
    } else {
        read_text(vfs, SUSE_DIR, &mut info.warnings)
            .map(|t| shvars::parse(&t, &HashMap::new()))
            .unwrap_or_default()
    };
    for (dev, path, v) in files {
        let name = v
            .get("DEVICE")
            .filter(|d| !d.is_empty())
            .unwrap_or(&dev)
            .to_string();
        let proto = v.get("BOOTPROTO").unwrap_or("none").to_ascii_lowercase();
        let mut addrs = addresses(&v);
        if let Some(a6) = v.get("IPV6ADDR").filter(|a| !a.is_empty()) {
            addrs.push(a6.to_string());
        }
        if let Some(sec) = v.get("IPV6ADDR_SECONDARIES") {
            addrs.extend(sec.split_whitespace().map(String::from));
        }
        let dhcp = matches!(proto.as_str(), "dhcp" | "bootp");
        let mut gateway = ["GATEWAY", "GATEWAY0"]
            .iter()
            .find_map(|k| v.get(k))
            .filter(|g| !g.is_empty())
            .map(String::from);
        if gateway.is_none() && !dhcp && !addrs.is_empty() {
            let dev_ok = global.get("GATEWAYDEV").is_none_or(|d| d == name);
            if dev_ok {
                gateway = global
                    .get("GATEWAY")
                    .filter(|g| !g.is_empty())
                    .map(String::from);
            }
        }
        if gateway.is_none() {
            gateway = v
                .get("IPV6_DEFAULTGW")
                .map(|g| g.split('%').next().unwrap_or(g).to_string());
        }
        let dns = (1..=10)
            .filter_map(|n| v.get(&format!("DNS{n}")))
            .filter(|d| !d.is_empty())
            .map(String::from)
            .collect();
        let ipv6 = v.is_yes("IPV6INIT") == Some(true);
        let dhcp6 = v.is_yes("DHCPV6C") == Some(true)
            || (ipv6 && v.is_yes("IPV6_AUTOCONF") != Some(false) && v.get("IPV6ADDR").is_none());
        let line = ["DEVICE", "NAME", "BOOTPROTO"]
            .iter()
            .find_map(|k| v.line_of(k))
            .unwrap_or(1);
        info.configs.push(NetConfigInfo {
            flavor: "ifcfg-rhel".into(),
            file: path,
            interfaces: vec![IfaceInfo {
                name: Some(name),
                dhcp,
                dhcp6,
                addresses: addrs,
                gateway,
                dns,
                mac: v.get("HWADDR").and_then(normalize_mac),
                set_mac: v.get("MACADDR").and_then(normalize_mac),
                line: Some(line),
                kind: v.get("TYPE").map(|t| t.to_ascii_lowercase()),
                auto_start: Some(v.get("ONBOOT").is_none_or(truthy)),
            }],
        });
    }
}

/// Default gateway from a wicked routes file: "default GW - [IFACE]" or
/// "0.0.0.0 GW 0.0.0.0 [IFACE]"; returns (gateway, interface or None for "-").
fn default_route(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = vec![];
    for l in text.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.first().is_none_or(|f| f.starts_with('#')) || w.len() < 2 {
            continue;
        }
        if matches!(w[0], "default" | "0.0.0.0" | "0.0.0.0/0" | "::/0") {
            let dev = w.get(3).filter(|d| **d != "-").map(|d| d.to_string());
            out.push((w[1].to_string(), dev));
        }
    }
    out
}

pub(super) fn detect_suse(vfs: &Vfs, info: &mut NetworkInfo) {
    let files = load(vfs, SUSE_DIR, info);
    if files.is_empty() {
        return;
    }
    let routes = read_text(vfs, &format!("{SUSE_DIR}/routes"), &mut info.warnings)
        .map(|t| default_route(&t))
        .unwrap_or_default();
    // netconfig applies static DNS servers globally.
    let dns: Vec<String> = read_text(vfs, &format!("{SUSE_DIR}/config"), &mut info.warnings)
        .map(|t| shvars::parse(&t, &HashMap::new()))
        .and_then(|c| {
            c.get("NETCONFIG_DNS_STATIC_SERVERS")
                .map(|s| s.split_whitespace().map(String::from).collect())
        })
        .unwrap_or_default();
    for (dev, path, v) in files {
        let proto = v.get("BOOTPROTO").unwrap_or("static").to_ascii_lowercase();
        let addrs = addresses(&v);
        let ifroute = read_text(
            vfs,
            &format!("{SUSE_DIR}/ifroute-{dev}"),
            &mut info.warnings,
        )
        .map(|t| default_route(&t))
        .unwrap_or_default();
        let gateway = ifroute
            .first()
            .map(|(g, _)| g.clone())
            .or_else(|| {
                routes
                    .iter()
                    .find(|(_, d)| d.as_deref() == Some(dev.as_str()))
                    .map(|(g, _)| g.clone())
            })
            .or_else(|| {
                (!addrs.is_empty())
                    .then(|| {
                        routes
                            .iter()
                            .find(|(_, d)| d.is_none())
                            .map(|(g, _)| g.clone())
                    })
                    .flatten()
            });
        let startmode = v.get("STARTMODE").unwrap_or("manual").to_ascii_lowercase();
        info.configs.push(NetConfigInfo {
            flavor: "wicked".into(),
            file: path,
            interfaces: vec![IfaceInfo {
                name: Some(dev.clone()),
                dhcp: proto.starts_with("dhcp") && proto != "dhcp6",
                dhcp6: proto.starts_with("dhcp") && proto != "dhcp4",
                dns: if addrs.is_empty() {
                    vec![]
                } else {
                    dns.clone()
                },
                addresses: addrs,
                gateway,
                mac: None,
                set_mac: v.get("LLADDR").and_then(normalize_mac),
                line: Some(
                    ["BOOTPROTO", "STARTMODE", "IPADDR"]
                        .iter()
                        .find_map(|k| v.line_of(k))
                        .unwrap_or(1),
                ),
                kind: v
                    .get("BONDING_MASTER")
                    .filter(|b| truthy(b))
                    .map(|_| "bond".to_string())
                    .or_else(|| {
                        v.get("BRIDGE")
                            .filter(|b| truthy(b))
                            .map(|_| "bridge".to_string())
                    }),
                auto_start: Some(matches!(
                    startmode.as_str(),
                    "auto" | "hotplug" | "onboot" | "nfsroot" | "on" | "boot"
                )),
            }],
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::guest;
    use super::*;

    // RHEL 7 anaconda-written static config.
    const RHEL7_ETH0: &str = "\
TYPE=Ethernet
PROXY_METHOD=none
BROWSER_ONLY=no
BOOTPROTO=none
DEFROUTE=yes
IPV4_FAILURE_FATAL=no
IPV6INIT=yes
IPV6_AUTOCONF=yes
IPV6_DEFROUTE=yes
IPV6_FAILURE_FATAL=no
IPV6_ADDR_GEN_MODE=stable-privacy
NAME=eth0
UUID=8f3c5a2e-1f0b-4c0e-9f38-2f2d7a6e9c11
DEVICE=eth0
ONBOOT=yes
IPADDR=192.168.122.10
NETMASK=255.255.255.0
DNS1=192.168.122.1
DNS2=1.1.1.1
HWADDR=52:54:00:6B:3C:58
";
    // RHEL 8 DHCP config with quoted values (nmcli/ifcfg-rh writes them quoted).
    const RHEL8_ENS3: &str = "\
TYPE=\"Ethernet\"
BOOTPROTO=\"dhcp\"
NAME=\"ens3\"
DEVICE=\"ens3\"
ONBOOT=\"no\"
MACADDR=\"52:54:00:AA:BB:CC\"
";

    #[test]
    fn rhel_ifcfg_static_dhcp_and_global_gateway() {
        let (_d, vfs) = guest(&[
            ("/etc/sysconfig/network-scripts/ifcfg-eth0", RHEL7_ETH0),
            ("/etc/sysconfig/network-scripts/ifcfg-ens3", RHEL8_ENS3),
            (
                "/etc/sysconfig/network-scripts/ifcfg-lo",
                "DEVICE=lo\nIPADDR=127.0.0.1\n",
            ),
            ("/etc/sysconfig/network-scripts/ifcfg-eth0.bak", RHEL7_ETH0),
            ("/etc/sysconfig/network-scripts/ifup-eth", "#!/bin/bash\n"),
            (
                "/etc/sysconfig/network",
                "# Created by anaconda\nNETWORKING=yes\nGATEWAY=192.168.122.1\n",
            ),
        ]);
        let mut info = NetworkInfo::default();
        detect_rhel(&vfs, &mut info);
        detect_suse(&vfs, &mut info);
        assert!(info.warnings.is_empty(), "{:?}", info.warnings);
        assert_eq!(info.configs.len(), 2);
        let ens3 = &info.configs[0].interfaces[0];
        assert_eq!(ens3.name.as_deref(), Some("ens3"));
        assert!(ens3.dhcp && ens3.gateway.is_none());
        assert_eq!(ens3.mac, None);
        assert_eq!(ens3.set_mac.as_deref(), Some("52:54:00:aa:bb:cc"));
        assert_eq!(ens3.auto_start, Some(false));
        let eth0 = &info.configs[1].interfaces[0];
        assert_eq!(
            info.configs[1].file,
            "/etc/sysconfig/network-scripts/ifcfg-eth0"
        );
        assert!(!eth0.dhcp && eth0.dhcp6);
        assert_eq!(eth0.addresses, ["192.168.122.10/24"]);
        assert_eq!(eth0.gateway.as_deref(), Some("192.168.122.1"));
        assert_eq!(eth0.dns, ["192.168.122.1", "1.1.1.1"]);
        assert_eq!(eth0.mac.as_deref(), Some("52:54:00:6b:3c:58"));
        assert_eq!(eth0.line, Some(14));
        assert_eq!(eth0.kind.as_deref(), Some("ethernet"));
    }

    #[test]
    fn suse_wicked_static_and_dhcp() {
        let (_d, vfs) = guest(&[
            ("/etc/sysconfig/network/ifcfg-eth0", "BOOTPROTO='static'\nSTARTMODE='auto'\nIPADDR='10.161.1.20/16'\nLLADDR='00:16:3E:01:02:03'\nZONE=''\n"),
            ("/etc/sysconfig/network/ifcfg-eth1", "BOOTPROTO='dhcp'\nSTARTMODE='hotplug'\n"),
            ("/etc/sysconfig/network/ifcfg-lo", "IPADDR=127.0.0.1/8\nSTARTMODE=nfsroot\n"),
            ("/etc/sysconfig/network/ifcfg.template", "BOOTPROTO=dhcp\n"),
            ("/etc/sysconfig/network/routes", "# default route\ndefault 10.161.0.1 - -\n"),
            ("/etc/sysconfig/network/config", "## Type: string\nNETCONFIG_DNS_STATIC_SERVERS=\"10.161.0.2 10.161.0.3\"\n"),
        ]);
        let mut info = NetworkInfo::default();
        detect_rhel(&vfs, &mut info);
        detect_suse(&vfs, &mut info);
        assert_eq!(info.configs.len(), 2, "{:?}", info.configs);
        let e0 = &info.configs[0].interfaces[0];
        assert_eq!(info.configs[0].flavor, "wicked");
        assert_eq!(e0.name.as_deref(), Some("eth0"));
        assert!(!e0.dhcp);
        assert_eq!(e0.addresses, ["10.161.1.20/16"]);
        assert_eq!(e0.gateway.as_deref(), Some("10.161.0.1"));
        assert_eq!(e0.dns, ["10.161.0.2", "10.161.0.3"]);
        assert_eq!(e0.set_mac.as_deref(), Some("00:16:3e:01:02:03"));
        assert_eq!(e0.auto_start, Some(true));
        let e1 = &info.configs[1].interfaces[0];
        assert!(e1.dhcp && e1.dhcp6 && e1.gateway.is_none() && e1.dns.is_empty());
    }

    #[test]
    fn suse_ifroute_wins() {
        assert_eq!(
            default_route("10.0.0.0/8 10.1.1.1 - eth0\ndefault 192.168.0.1 - eth1\n"),
            [("192.168.0.1".to_string(), Some("eth1".to_string()))]
        );
    }
}
