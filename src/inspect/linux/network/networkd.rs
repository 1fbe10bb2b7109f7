//! systemd-networkd .network files and systemd .link files in /etc/systemd/network
//! (systemd.network(5), systemd.link(5)). Only /etc is read: /usr/lib holds distro defaults
//! such as 99-default.link, not the guest's own configuration.
use super::ini::{self, Section};
use super::{list_files, normalize_mac, read_text, truthy};
use crate::fs::Vfs;
use crate::types::{IfaceInfo, NetConfigInfo, NetworkInfo};

const DIR: &str = "/etc/systemd/network";

pub(super) fn detect(vfs: &Vfs, info: &mut NetworkInfo) {
    for (name, path) in list_files(vfs, DIR, &mut info.warnings) {
        let is_network = name.ends_with(".network");
        if !is_network && !name.ends_with(".link") {
            continue;
        }
        let Some(text) = read_text(vfs, &path, &mut info.warnings) else {
            continue;
        };
        let secs = ini::parse(&text, true);
        let (flavor, iface) = if is_network {
            ("systemd-networkd", Some(network(&secs)))
        } else {
            ("systemd-link", link(&secs))
        };
        if let Some(i) = iface {
            info.configs.push(NetConfigInfo {
                flavor: flavor.into(),
                file: path,
                interfaces: vec![i],
            });
        }
    }
}

/// Space-separated list values over every occurrence of `key` in every section called `sec`.
fn list(secs: &[Section], sec: &str, key: &str) -> Vec<String> {
    secs.iter()
        .filter(|s| s.name == sec)
        .flat_map(|s| {
            s.all(key)
                .flat_map(|v| v.split_whitespace().map(String::from))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn match_fields(secs: &[Section]) -> (Option<String>, Option<String>, Option<usize>) {
    let names = list(secs, "Match", "Name");
    let macs: Vec<String> = list(secs, "Match", "MACAddress")
        .iter()
        .chain(list(secs, "Match", "PermanentMACAddress").iter())
        .filter_map(|m| normalize_mac(m))
        .collect();
    let line = ini::section(secs, "Match").map(|s| {
        s.line_of("Name")
            .or(s.line_of("MACAddress"))
            .unwrap_or(s.line)
    });
    (
        (!names.is_empty()).then(|| names.join(" ")),
        macs.first().cloned(),
        line,
    )
}

fn network(secs: &[Section]) -> IfaceInfo {
    let (name, mac, line) = match_fields(secs);
    let dhcp_val = ini::section(secs, "Network")
        .and_then(|n| n.get("DHCP"))
        .unwrap_or("no")
        .to_ascii_lowercase();
    let (dhcp, dhcp6) = match dhcp_val.as_str() {
        "ipv4" => (true, false),
        "ipv6" => (false, true),
        "both" => (true, true),
        v => (truthy(v), truthy(v)),
    };
    let mut addresses = list(secs, "Network", "Address");
    addresses.extend(list(secs, "Address", "Address"));
    let mut gateways = list(secs, "Network", "Gateway");
    // A [Route] with a Gateway= and no (or a default) Destination= is a default route.
    for r in secs.iter().filter(|s| s.name == "Route") {
        let default = r
            .get("Destination")
            .is_none_or(|d| matches!(d, "0.0.0.0/0" | "::/0"));
        if let (true, Some(g)) = (default, r.get("Gateway")) {
            gateways.push(g.to_string());
        }
    }
    gateways.sort_by_key(|g| g.contains(':'));
    IfaceInfo {
        name,
        dhcp,
        dhcp6,
        addresses,
        gateway: gateways.into_iter().next(),
        dns: list(secs, "Network", "DNS"),
        mac,
        set_mac: None,
        line: line.or(Some(1)),
        kind: None,
        auto_start: None,
    }
}

/// A .link file matters here only when it names the interface (`[Link] Name=`).
fn link(secs: &[Section]) -> Option<IfaceInfo> {
    let l = ini::section(secs, "Link")?;
    let new_name = l.get("Name")?.to_string();
    let (_, mac, _) = match_fields(secs);
    Some(IfaceInfo {
        name: Some(new_name),
        mac,
        set_mac: l.get("MACAddress").and_then(normalize_mac),
        line: l.line_of("Name"),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::guest;
    use super::*;

    const STATIC: &str = "\
[Match]
Name=ens3 eth0
MACAddress=52:54:00:12:34:56

[Network]
Address=192.168.50.5/24
Gateway=192.168.50.1
DNS=192.168.50.1
DNS=9.9.9.9 149.112.112.112
IPv6AcceptRA=no

[Address]
Address=192.168.50.6/24
";

    #[test]
    fn networkd_and_link_files() {
        let (_d, vfs) = guest(&[
            ("/etc/systemd/network/10-static.network", STATIC),
            ("/etc/systemd/network/20-dhcp.network", "[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n\n[Route]\nGateway=10.0.0.1\nDestination=10.1.0.0/16\n"),
            ("/etc/systemd/network/10-lan0.link", "[Match]\nMACAddress=00:0C:29:AA:BB:CC\n\n[Link]\nName=lan0\n"),
            ("/etc/systemd/network/50-mtu.link", "[Match]\nOriginalName=*\n\n[Link]\nMTUBytes=9000\n"),
        ]);
        let mut info = NetworkInfo::default();
        detect(&vfs, &mut info);
        assert_eq!(info.configs.len(), 3, "{:?}", info.configs);
        let link = &info.configs[0];
        assert_eq!(link.flavor, "systemd-link");
        assert_eq!(link.interfaces[0].name.as_deref(), Some("lan0"));
        assert_eq!(link.interfaces[0].mac.as_deref(), Some("00:0c:29:aa:bb:cc"));
        assert_eq!(link.interfaces[0].line, Some(5));
        let s = &info.configs[1].interfaces[0];
        assert_eq!(s.name.as_deref(), Some("ens3 eth0"));
        assert_eq!(s.mac.as_deref(), Some("52:54:00:12:34:56"));
        assert!(!s.dhcp && !s.dhcp6);
        assert_eq!(s.addresses, ["192.168.50.5/24", "192.168.50.6/24"]);
        assert_eq!(s.gateway.as_deref(), Some("192.168.50.1"));
        assert_eq!(s.dns, ["192.168.50.1", "9.9.9.9", "149.112.112.112"]);
        assert_eq!(s.line, Some(2));
        let d = &info.configs[2].interfaces[0];
        assert!(d.dhcp && !d.dhcp6);
        assert_eq!(
            d.gateway, None,
            "a route with a Destination is not the default"
        );
    }
}
