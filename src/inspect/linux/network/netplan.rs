//! Ubuntu netplan: /etc/netplan/*.yaml (netplan(5) v2 schema). Parsed with yaml-rust2's event
//! API into a small tree that keeps line numbers, so each interface reports where it is defined.
use super::{list_files, normalize_mac, read_text, truthy};
use crate::fs::Vfs;
use crate::types::{IfaceInfo, NetConfigInfo, NetworkInfo};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

const DIR: &str = "/etc/netplan";

/// Netplan device sections and the `kind` they report.
const SECTIONS: &[(&str, &str)] = &[
    ("ethernets", "ethernet"),
    ("bonds", "bond"),
    ("bridges", "bridge"),
    ("vlans", "vlan"),
    ("wifis", "wifi"),
    ("tunnels", "tunnel"),
    ("modems", "modem"),
    ("vrfs", "vrf"),
];

pub(super) fn detect(vfs: &Vfs, info: &mut NetworkInfo) {
    for (name, path) in list_files(vfs, DIR, &mut info.warnings) {
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let Some(text) = read_text(vfs, &path, &mut info.warnings) else {
            continue;
        };
        match parse(&text) {
            Ok(interfaces) => info.configs.push(NetConfigInfo {
                flavor: "netplan".into(),
                file: path,
                interfaces,
            }),
            Err(e) => info.warnings.push(format!("{path}: {e}")),
        }
    }
}

/// YAML node with the 1-based line it starts on.
#[derive(Debug, Clone)]
enum Node {
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(String, usize, Node)>),
    Null,
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(m) => m.iter().find(|(k, _, _)| k == key).map(|(_, _, v)| v),
            _ => None,
        }
    }
    fn str(&self) -> Option<&str> {
        match self {
            Node::Scalar(s) => Some(s),
            _ => None,
        }
    }
    fn items(&self) -> &[Node] {
        match self {
            Node::Seq(v) => v,
            _ => &[],
        }
    }
}

enum Partial {
    Seq(Vec<Node>),
    Map(Vec<(String, usize, Node)>, Option<(String, usize)>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Partial>,
    doc: Option<Node>,
}

impl Builder {
    fn add(&mut self, n: Node, line: usize) {
        match self.stack.last_mut() {
            None => {
                if self.doc.is_none() {
                    self.doc = Some(n);
                }
            }
            Some(Partial::Seq(v)) => v.push(n),
            Some(Partial::Map(m, key)) => match key.take() {
                None => {
                    let k = match n {
                        Node::Scalar(s) => s,
                        _ => String::new(),
                    };
                    *key = Some((k, line));
                }
                Some((k, l)) => m.push((k, l, n)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(s, _, _, _) => self.add(Node::Scalar(s), line),
            Event::Alias(_) => self.add(Node::Null, line),
            Event::SequenceStart(..) => self.stack.push(Partial::Seq(vec![])),
            Event::MappingStart(..) => self.stack.push(Partial::Map(vec![], None)),
            Event::SequenceEnd | Event::MappingEnd => {
                let n = match self.stack.pop() {
                    Some(Partial::Seq(v)) => Node::Seq(v),
                    Some(Partial::Map(m, _)) => Node::Map(m),
                    None => Node::Null,
                };
                self.add(n, line);
            }
            _ => {}
        }
    }
}

fn load(text: &str) -> Result<Node, String> {
    let mut b = Builder::default();
    Parser::new_from_str(text)
        .load(&mut b, false)
        .map_err(|e| format!("YAML error: {e}"))?;
    Ok(b.doc.unwrap_or(Node::Null))
}

fn parse(text: &str) -> Result<Vec<IfaceInfo>, String> {
    let doc = load(text)?;
    let mut out = vec![];
    let Some(net) = doc.get("network") else {
        return Ok(out);
    };
    for (section, kind) in SECTIONS {
        let Some(Node::Map(devs)) = net.get(section) else {
            continue;
        };
        for (id, line, cfg) in devs {
            out.push(iface(id, *line, kind, cfg));
        }
    }
    Ok(out)
}

fn iface(id: &str, line: usize, kind: &str, cfg: &Node) -> IfaceInfo {
    let m = cfg.get("match");
    let match_name = m.and_then(|m| m.get("name")).and_then(Node::str);
    // Without `match:` the id is the interface name; with it the id is only a label.
    let name = cfg
        .get("set-name")
        .and_then(Node::str)
        .or(match_name)
        .or(if m.is_none() { Some(id) } else { None });
    let flag = |k: &str| cfg.get(k).and_then(Node::str).is_some_and(truthy);
    let mut addresses = vec![];
    for a in cfg.get("addresses").map(Node::items).unwrap_or_default() {
        match a {
            Node::Scalar(s) => addresses.push(s.clone()),
            // `- 10.0.0.5/24: {lifetime: 0, label: ...}`
            Node::Map(m) => addresses.extend(m.iter().map(|(k, _, _)| k.clone())),
            _ => {}
        }
    }
    let route_gw = |v6: bool| {
        cfg.get("routes")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .find_map(|r| {
                let to = r.get("to").and_then(Node::str)?;
                let is_default = match to {
                    "default" => true,
                    "0.0.0.0/0" => !v6,
                    "::/0" => v6,
                    _ => false,
                };
                let via = r.get("via").and_then(Node::str)?;
                (is_default && via.contains(':') == v6).then(|| via.to_string())
            })
    };
    let gateway = cfg
        .get("gateway4")
        .and_then(Node::str)
        .map(String::from)
        .or_else(|| route_gw(false))
        .or_else(|| cfg.get("gateway6").and_then(Node::str).map(String::from))
        .or_else(|| route_gw(true));
    let dns = cfg
        .get("nameservers")
        .and_then(|n| n.get("addresses"))
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.str().map(String::from))
        .collect();
    IfaceInfo {
        name: name.map(String::from),
        dhcp: flag("dhcp4"),
        dhcp6: flag("dhcp6"),
        addresses,
        gateway,
        dns,
        mac: m
            .and_then(|m| m.get("macaddress"))
            .and_then(Node::str)
            .and_then(normalize_mac),
        set_mac: cfg
            .get("macaddress")
            .and_then(Node::str)
            .and_then(normalize_mac),
        line: Some(line),
        kind: Some(kind.to_string()),
        auto_start: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::guest;
    use super::*;

    // As written by the Ubuntu 22.04 server installer for a static address.
    const UBUNTU_STATIC: &str = "\
# This is the network config written by 'subiquity'
network:
  ethernets:
    ens160:
      addresses:
      - 192.168.1.50/24
      nameservers:
        addresses:
        - 192.168.1.1
        - 8.8.8.8
        search: [example.com]
      routes:
      - to: default
        via: 192.168.1.1
  version: 2
";

    // As written by cloud-init (50-cloud-init.yaml) with a MAC match.
    const CLOUD_INIT: &str = "\
# This file is generated from information provided by the datasource.  Changes
# to it will not persist across an instance reboot.
network:
    ethernets:
        eth0:
            dhcp4: true
            dhcp6: yes
            match:
                macaddress: 00:0D:3A:12:34:56
            set-name: eth0
        storage:
            match:
                name: en*
            dhcp4: false
            addresses:
              - 10.0.0.5/24
              - \"fd00::5/64\":
                  lifetime: 0
            gateway4: 10.0.0.1
            macaddress: 52:54:00:aa:bb:cc
    bonds:
        bond0:
            interfaces: [eth1, eth2]
            dhcp4: on
    version: 2
";

    #[test]
    fn ubuntu_installer_static() {
        let v = parse(UBUNTU_STATIC).unwrap();
        assert_eq!(v.len(), 1);
        let e = &v[0];
        assert_eq!(e.name.as_deref(), Some("ens160"));
        assert!(!e.dhcp);
        assert_eq!(e.addresses, ["192.168.1.50/24"]);
        assert_eq!(e.gateway.as_deref(), Some("192.168.1.1"));
        assert_eq!(e.dns, ["192.168.1.1", "8.8.8.8"]);
        assert_eq!(e.line, Some(4));
        assert_eq!(e.kind.as_deref(), Some("ethernet"));
    }

    #[test]
    fn cloud_init_mac_match_and_yaml11_booleans() {
        let v = parse(CLOUD_INIT).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].name.as_deref(), Some("eth0"));
        assert!(v[0].dhcp && v[0].dhcp6);
        assert_eq!(v[0].mac.as_deref(), Some("00:0d:3a:12:34:56"));
        assert_eq!(v[0].line, Some(5));
        assert_eq!(v[1].name.as_deref(), Some("en*"));
        assert!(!v[1].dhcp);
        assert_eq!(v[1].addresses, ["10.0.0.5/24", "fd00::5/64"]);
        assert_eq!(v[1].gateway.as_deref(), Some("10.0.0.1"));
        assert_eq!(v[1].set_mac.as_deref(), Some("52:54:00:aa:bb:cc"));
        assert_eq!(v[1].line, Some(11));
        assert_eq!(v[2].line, Some(22));
        assert_eq!(v[2].name.as_deref(), Some("bond0"));
        assert_eq!(v[2].kind.as_deref(), Some("bond"));
        assert!(v[2].dhcp);
    }

    #[test]
    fn deep_yaml_nesting_is_an_error_not_an_overflow() {
        // yaml-rust2 stops at its recursion limit, so the node tree never gets deep (issue #8).
        let n = 100_000;
        let deep = format!("network:\n  x: {}1{}\n", "[".repeat(n), "]".repeat(n));
        assert!(load(&deep).unwrap_err().contains("recursion limit"));
    }

    #[test]
    fn files_and_bad_yaml() {
        let (_d, vfs) = guest(&[
            ("/etc/netplan/00-installer-config.yaml", UBUNTU_STATIC),
            ("/etc/netplan/50-cloud-init.yaml", CLOUD_INIT),
            ("/etc/netplan/90-broken.yaml", "network:\n  ethernets: [\n"),
            ("/etc/netplan/README", "not yaml: ["),
        ]);
        let mut info = NetworkInfo::default();
        detect(&vfs, &mut info);
        assert_eq!(info.configs.len(), 2);
        assert_eq!(info.configs[1].file, "/etc/netplan/50-cloud-init.yaml");
        assert_eq!(info.warnings.len(), 1);
        assert!(
            info.warnings[0].starts_with("/etc/netplan/90-broken.yaml: YAML error"),
            "{:?}",
            info.warnings
        );
    }
}
