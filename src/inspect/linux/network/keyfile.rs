//! NetworkManager keyfiles (nm-settings-keyfile(5)): /etc/NetworkManager/system-connections,
//! both `*.nmconnection` and extension-less files written by older releases, plus the
//! read-only /usr/lib/NetworkManager/system-connections profiles.
use super::ini::{self, Section};
use super::{list_files, normalize_mac, read_text};
use crate::fs::Vfs;
use crate::types::{IfaceInfo, NetConfigInfo, NetworkInfo};

const DIRS: &[&str] = &[
    "/etc/NetworkManager/system-connections",
    "/usr/lib/NetworkManager/system-connections",
];

/// Suffixes the keyfile plugin ignores (editor and package-manager leftovers).
const IGNORED: &[&str] = &[
    "~",
    ".bak",
    ".orig",
    ".rej",
    ".swp",
    ".tmp",
    ".rpmnew",
    ".rpmsave",
    ".rpmorig",
    ".dpkg-old",
    ".dpkg-new",
    ".dpkg-dist",
    ".dpkg-bak",
    ".dpkg-tmp",
    ".nmmeta",
];

pub(super) fn detect(vfs: &Vfs, info: &mut NetworkInfo) {
    for dir in DIRS {
        for (name, path) in list_files(vfs, dir, &mut info.warnings) {
            if name.starts_with('.') || IGNORED.iter().any(|s| name.ends_with(s)) {
                continue;
            }
            let Some(text) = read_text(vfs, &path, &mut info.warnings) else {
                continue;
            };
            if let Some(i) = parse(&text) {
                info.configs.push(NetConfigInfo {
                    flavor: "networkmanager".into(),
                    file: path,
                    interfaces: vec![i],
                });
            }
        }
    }
}

/// Group names have long aliases ("802-3-ethernet" for "ethernet").
fn group<'a>(secs: &'a [Section], names: &[&str]) -> Option<&'a Section> {
    names.iter().find_map(|n| ini::section(secs, n))
}

/// MAC in keyfile form: "52:54:00:12:34:56", or the old decimal byte list "82;84;0;18;52;86;".
fn keyfile_mac(v: &str) -> Option<String> {
    if let Some(m) = normalize_mac(v.trim_end_matches(';')) {
        return Some(m);
    }
    let bytes: Vec<u8> = v
        .split(';')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse().ok())
        .collect::<Option<_>>()?;
    (bytes.len() == 6).then(|| {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    })
}

/// One IP section: (dhcp, addresses, gateway, dns).
fn ip(
    sec: Option<&Section>,
    dhcp_methods: &[&str],
) -> (bool, Vec<String>, Option<String>, Vec<String>) {
    let Some(s) = sec else {
        return (false, vec![], None, vec![]);
    };
    let dhcp = s.get("method").is_some_and(|m| dhcp_methods.contains(&m));
    let mut addrs = vec![];
    let mut gw = s.get("gateway").map(String::from);
    for (k, v, _) in &s.entries {
        // address1=IP/PFX[,GW], addresses1=..., and the list form addresses=IP/PFX;IP/PFX;
        let numbered = |p: &str| {
            k.strip_prefix(p)
                .is_some_and(|n| n.is_empty() || n.chars().all(|c| c.is_ascii_digit()))
        };
        if numbered("address") || numbered("addresses") {
            for item in v.split(';').filter(|x| !x.trim().is_empty()) {
                let mut parts = item.split(',');
                if let Some(a) = parts.next() {
                    addrs.push(a.trim().to_string());
                }
                if let Some(g) = parts.next().filter(|g| !g.trim().is_empty()) {
                    gw.get_or_insert_with(|| g.trim().to_string());
                }
            }
        }
    }
    let dns = s
        .get("dns")
        .map(|d| {
            d.split(';')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    (dhcp, addrs, gw, dns)
}

fn parse(text: &str) -> Option<IfaceInfo> {
    let secs = ini::parse(text, false);
    let conn = ini::section(&secs, "connection")?;
    let kind = conn.get("type").map(|t| match t {
        "802-3-ethernet" => "ethernet".to_string(),
        "802-11-wireless" => "wifi".to_string(),
        other => other.to_string(),
    });
    if kind.as_deref() == Some("loopback") {
        return None;
    }
    let eth = group(
        &secs,
        &["ethernet", "802-3-ethernet", "wifi", "802-11-wireless"],
    );
    let (dhcp, mut addresses, gw4, mut dns) = ip(ini::section(&secs, "ipv4"), &["auto"]);
    let (dhcp6, a6, gw6, dns6) = ip(ini::section(&secs, "ipv6"), &["auto", "dhcp"]);
    addresses.extend(a6);
    dns.extend(dns6);
    Some(IfaceInfo {
        name: conn
            .get("interface-name")
            .filter(|n| !n.is_empty())
            .map(String::from),
        dhcp,
        dhcp6,
        addresses,
        gateway: gw4.or(gw6),
        dns,
        mac: eth.and_then(|e| e.get("mac-address")).and_then(keyfile_mac),
        set_mac: eth
            .and_then(|e| e.get("cloned-mac-address"))
            .and_then(keyfile_mac),
        line: Some(conn.line_of("interface-name").unwrap_or(conn.line)),
        kind,
        auto_start: Some(conn.get("autoconnect").is_none_or(|v| v != "false")),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::guest;
    use super::*;

    // RHEL 9 / Fedora: nmcli con add type ethernet ifname ens192 ipv4.method manual ...
    const RHEL9_STATIC: &str = "\
[connection]
id=ens192
uuid=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03
type=ethernet
autoconnect-priority=-999
interface-name=ens192
timestamp=1700000000

[ethernet]
mac-address=00:50:56:A1:B2:C3

[ipv4]
address1=10.20.30.40/24,10.20.30.1
dns=10.20.30.2;10.20.30.3;
dns-search=corp.example;
method=manual

[ipv6]
addr-gen-mode=eui64
method=auto

[proxy]
";

    // NetworkManager 1.2x keyfile without extension, old byte-list MAC, autoconnect off.
    const OLD_DHCP: &str = "\
[connection]
id=Wired connection 1
uuid=0c7d2a4e-6d2c-4f8e-9c5b-5d6c3b2a1f00
type=802-3-ethernet
autoconnect=false

[802-3-ethernet]
mac-address=82;84;0;18;52;86;
cloned-mac-address=permanent

[ipv4]
method=auto

[ipv6]
method=ignore
";

    #[test]
    fn rhel9_manual_keyfile() {
        let i = parse(RHEL9_STATIC).unwrap();
        assert_eq!(i.name.as_deref(), Some("ens192"));
        assert!(!i.dhcp && i.dhcp6);
        assert_eq!(i.addresses, ["10.20.30.40/24"]);
        assert_eq!(i.gateway.as_deref(), Some("10.20.30.1"));
        assert_eq!(i.dns, ["10.20.30.2", "10.20.30.3"]);
        assert_eq!(i.mac.as_deref(), Some("00:50:56:a1:b2:c3"));
        assert_eq!(i.line, Some(6));
        assert_eq!(i.kind.as_deref(), Some("ethernet"));
        assert_eq!(i.auto_start, Some(true));
    }

    #[test]
    fn old_keyfile_byte_mac_and_files() {
        let (_d, vfs) = guest(&[
            (
                "/etc/NetworkManager/system-connections/ens192.nmconnection",
                RHEL9_STATIC,
            ),
            (
                "/etc/NetworkManager/system-connections/Wired connection 1",
                OLD_DHCP,
            ),
            (
                "/etc/NetworkManager/system-connections/ens192.nmconnection~",
                RHEL9_STATIC,
            ),
            (
                "/etc/NetworkManager/system-connections/lo.nmconnection",
                "[connection]\nid=lo\ntype=loopback\ninterface-name=lo\n",
            ),
        ]);
        let mut info = NetworkInfo::default();
        detect(&vfs, &mut info);
        assert_eq!(info.configs.len(), 2, "{:?}", info.configs);
        let old = &info.configs[0].interfaces[0];
        assert_eq!(
            info.configs[0].file,
            "/etc/NetworkManager/system-connections/Wired connection 1"
        );
        assert!(old.dhcp && !old.dhcp6);
        assert_eq!(old.name, None);
        assert_eq!(old.mac.as_deref(), Some("52:54:00:12:34:56"));
        assert_eq!(old.set_mac, None);
        assert_eq!(old.auto_start, Some(false));
        assert_eq!(old.kind.as_deref(), Some("ethernet"));
    }
}
