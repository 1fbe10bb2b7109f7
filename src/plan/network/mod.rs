//! Network repair planning: after the move the guest must get an address on whatever NIC
//! appears (virtio-net is ens3 or enp1s0 with predictable names, eth0 with net.ifnames=0), in
//! every config flavor it has, with nothing left bound to the old NIC's name or MAC.
//!
//! A config is *portable* when it has no MAC binding and its name binding (if any) matches
//! every name the new NIC may get; in `dhcp` mode it must also use DHCP. Non-portable configs
//! are replaced, per flavor, by one generated config:
//! - NetworkManager keyfile: a profile with neither `interface-name` nor `mac-address`, which NM
//!   offers to any Ethernet device. Written 0600: NM ignores keyfiles readable by others.
//! - netplan: `match: {name: "e*"}` (eth*, en*, em*), checked with netplan 0.106's generator.
//!   With the NetworkManager renderer the replacement is an NM keyfile instead: older netplan
//!   refuses name globs there (0.106 maps them to NM `[match]`, which needs NM 1.14).
//! - systemd-networkd: `[Match] Name=e*`.
//! - ifupdown >= 0.8.20 (Debian 10+, Ubuntu 20.04+): `auto /e*=revirt` mapping any NIC to the
//!   logical `iface revirt` (interfaces(5), PATTERN MATCHING). Checked with ifupdown 0.8.41:
//!   `ifup -a` maps the NIC, but the udev hotplug helper's `ifquery --allow hotplug -l IFACE`
//!   does not expand patterns, so `allow-hotplug /e*` would never fire; and ifupdown-pre only
//!   waits for udev when a configured NIC already exists, so a drop-in makes networking.service
//!   always settle first. Older ifupdown has no patterns: `allow-hotplug eth0` + net.ifnames=0.
//! - RHEL ifcfg and SUSE wicked bind by device name only: ifcfg-eth0 (no HWADDR) plus
//!   net.ifnames=0, which makes the first NIC eth0 on every release (RHEL 6 ignores the flag
//!   and names it eth0 anyway once the persistent rules are gone).
//!
//! `keep-static` moves the first replaced static interface's addresses, gateway and DNS onto
//! the same binding (ifupdown: `/e*/1`, the first match only). MAC pins go in both modes:
//! 70-persistent-net.rules NAME rules, 75-persistent-net-generator (masked with /dev/null),
//! systemd .link files matching a MAC. Replaced files move to [`BACKUP_DIR`] + their path; edited
//! files are copied there first. Generated files start with a `revirt:` comment and are portable
//! by construction, so planning again over the result yields nothing.
mod ifupdown;
#[cfg(test)]
mod tests;

use super::templates::render;
use super::{Action, Change, NetworkMode, PlanInputs, PlanOptions};
use crate::types::{IfaceInfo, LinuxInfo, NetConfigInfo, PersistentNetRule};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Where replaced and edited files are kept; no network tool reads anything there.
pub const BACKUP_DIR: &str = "/var/lib/revirt/backup/network";
pub const IFNAMES0: &str = "net.ifnames=0";
/// Name pattern for "any Ethernet NIC": eth* (net.ifnames=0), en* (predictable), em* (biosdevname).
const GLOB: &str = "e*";
/// ifupdown logical interface / NetworkManager profile id of the generated config.
const LOGICAL: &str = "revirt";
/// Fixed so the generated profile keeps its identity across runs.
const NM_UUID: &str = "72657669-7274-4e65-8000-6e6574776f72";
/// Names the virtio NIC gets under qemu: i440fx slot 3, q35 bus 1; eth0 with net.ifnames=0.
const PREDICTABLE_NAMES: &[&str] = &["eth0", "ens3", "enp1s0"];

const IFUPDOWN_MAIN: &str = "/etc/network/interfaces";
const SETTLE_DROPIN: &str = "/etc/systemd/system/networking.service.d/revirt-settle.conf";
const NM_PATH: &str = "/etc/NetworkManager/system-connections/revirt.nmconnection";
const NETPLAN_PATH: &str = "/etc/netplan/90-revirt.yaml";
const NETWORKD_PATH: &str = "/etc/systemd/network/90-revirt.network";
const RHEL_PATH: &str = "/etc/sysconfig/network-scripts/ifcfg-eth0";
const SUSE_PATH: &str = "/etc/sysconfig/network/ifcfg-eth0";
const SUSE_ROUTE: &str = "/etc/sysconfig/network/ifroute-eth0";
const SUSE_ROUTES: &str = "/etc/sysconfig/network/routes";
const GENERATOR_ETC: &str = "/etc/udev/rules.d/75-persistent-net-generator.rules";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Flavor {
    Ifupdown,
    Netplan,
    NetworkManager,
    IfcfgRhel,
    Wicked,
    Networkd,
}

impl Flavor {
    const ALL: [Flavor; 6] = [
        Flavor::Ifupdown,
        Flavor::Netplan,
        Flavor::NetworkManager,
        Flavor::IfcfgRhel,
        Flavor::Wicked,
        Flavor::Networkd,
    ];

    /// From `NetConfigInfo::flavor`; `systemd-link` files are not configs (handled with udev).
    fn parse(s: &str) -> Option<Flavor> {
        Some(match s {
            "ifupdown" => Flavor::Ifupdown,
            "netplan" => Flavor::Netplan,
            "networkmanager" => Flavor::NetworkManager,
            "ifcfg-rhel" => Flavor::IfcfgRhel,
            "wicked" => Flavor::Wicked,
            "systemd-networkd" => Flavor::Networkd,
            _ => return None,
        })
    }

    fn label(self) -> &'static str {
        match self {
            Flavor::Ifupdown => "ifupdown",
            Flavor::Netplan => "netplan",
            Flavor::NetworkManager => "NetworkManager",
            Flavor::IfcfgRhel => "ifcfg (network-scripts)",
            Flavor::Wicked => "wicked",
            Flavor::Networkd => "systemd-networkd",
        }
    }

    /// A guest path whose presence shows the tool is installed (for guests with no config).
    fn marker(self) -> &'static str {
        match self {
            Flavor::Ifupdown => IFUPDOWN_MAIN,
            Flavor::Netplan => "/etc/netplan",
            Flavor::NetworkManager => "/etc/NetworkManager",
            Flavor::IfcfgRhel => "/etc/sysconfig/network-scripts",
            Flavor::Wicked => "/etc/sysconfig/network/config",
            Flavor::Networkd => {
                "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
            }
        }
    }
}

fn major(l: &LinuxInfo) -> Option<u32> {
    l.version.split(['.', ' ']).next()?.parse().ok()
}

/// ifupdown >= 0.8.20 (interface name patterns): Debian 10 (0.8.35) and later, Ubuntu 20.04
/// and derivatives. Debian 9 ships 0.8.19. Debian testing/sid have no VERSION_ID.
fn ifupdown_patterns(l: &LinuxInfo) -> bool {
    let m = major(l);
    match l.distro.as_str() {
        "ubuntu" | "pop" | "linuxmint" => m.is_some_and(|m| m >= 20),
        "devuan" => m.is_some_and(|m| m >= 3),
        "debian" if l.version.is_empty() => true,
        _ if l.family == "debian" => m.is_some_and(|m| m >= 10),
        _ => false,
    }
}

/// Whether the generated config for `f` binds to eth0 and so needs net.ifnames=0.
fn binds_eth0(l: &LinuxInfo, f: Flavor) -> bool {
    match f {
        Flavor::IfcfgRhel | Flavor::Wicked => true,
        Flavor::Ifupdown => !ifupdown_patterns(l),
        _ => false,
    }
}

/// Interfaces a config holds that are NICs to repair (wireless ones do not move with the VM).
fn nic_ifaces(c: &NetConfigInfo) -> impl Iterator<Item = &IfaceInfo> {
    c.interfaces
        .iter()
        .filter(|i| i.kind.as_deref() != Some("wifi"))
}

fn present_flavors(l: &LinuxInfo) -> BTreeSet<Flavor> {
    l.network
        .configs
        .iter()
        .filter(|c| nic_ifaces(c).next().is_some())
        .filter_map(|c| Flavor::parse(&c.flavor))
        .collect()
}

/// Flavors to configure on a guest with no NIC config at all, most likely first.
fn fallback_candidates(l: &LinuxInfo) -> Vec<Flavor> {
    use Flavor::*;
    let m = major(l).unwrap_or(0);
    match l.family.as_str() {
        "debian" if matches!(l.distro.as_str(), "ubuntu" | "pop" | "linuxmint") && m >= 18 => {
            vec![Netplan, Ifupdown, NetworkManager, Networkd]
        }
        "debian" => vec![Ifupdown, NetworkManager, Netplan, Networkd],
        "rhel" if m >= 8 => vec![NetworkManager, IfcfgRhel, Networkd],
        "rhel" => vec![IfcfgRhel, NetworkManager, Networkd],
        "suse" if m >= 16 => vec![NetworkManager, Wicked, Networkd],
        "suse" => vec![Wicked, NetworkManager, Networkd],
        _ => vec![NetworkManager, Networkd, Netplan, Ifupdown],
    }
}

/// Whether the repair relies on net.ifnames=0 (depends on the inspection only, so the
/// bootloader planner and this planner agree).
pub fn needs_ifnames0(l: &LinuxInfo) -> bool {
    let present = present_flavors(l);
    if present.is_empty() {
        fallback_candidates(l)
            .first()
            .is_some_and(|f| binds_eth0(l, *f))
    } else {
        present.iter().any(|f| binds_eth0(l, *f))
    }
}

/// Every boot entry (and GRUB_CMDLINE_LINUX, when read) already passes net.ifnames=0.
fn boots_with_ifnames0(l: &LinuxInfo) -> bool {
    let has = |s: &str| s.split_whitespace().any(|w| w == IFNAMES0);
    let e = &l.bootloader.entries;
    !e.is_empty()
        && e.iter().all(|x| has(&x.cmdline))
        && l.bootloader.grub_cmdline_linux.as_deref().is_none_or(has)
}

/// Guest files the network planner reads (texts of configs and rules, and the existence of
/// tool markers, generated files and backups).
pub fn wanted_inputs(l: &LinuxInfo) -> Vec<String> {
    let mut files: Vec<String> = l.network.configs.iter().map(|c| c.file.clone()).collect();
    files.extend(
        l.network
            .persistent_net_rules
            .iter()
            .map(|r| r.file.clone()),
    );
    files.push(IFUPDOWN_MAIN.into());
    files.push(GENERATOR_ETC.into());
    let mut v = files.clone();
    for f in &files {
        v.push(backup_path(f));
        v.push(format!("{}.2", backup_path(f)));
    }
    // /etc/sysconfig/network is a file on RHEL: paths below it are only asked for on SUSE
    // (collect_inputs fails on a path through a regular file).
    let suse = uses_wicked(l);
    v.extend(
        Flavor::ALL
            .iter()
            .filter(|f| suse || **f != Flavor::Wicked)
            .map(|f| f.marker().to_string()),
    );
    v.extend(
        [
            SETTLE_DROPIN,
            NM_PATH,
            NETPLAN_PATH,
            NETWORKD_PATH,
            RHEL_PATH,
        ]
        .map(String::from),
    );
    if suse {
        v.extend([SUSE_PATH, SUSE_ROUTE, SUSE_ROUTES].map(String::from));
    }
    v.sort();
    v.dedup();
    v
}

fn uses_wicked(l: &LinuxInfo) -> bool {
    l.family == "suse" || l.network.configs.iter().any(|c| c.flavor == "wicked")
}

/// Kernel command-line arguments the network repair relies on; the bootloader planner adds them
/// to every entry. Empty when the guest already boots with them.
pub fn kernel_args(l: &LinuxInfo, _opts: &PlanOptions) -> Vec<String> {
    if needs_ifnames0(l) && !boots_with_ifnames0(l) {
        vec![IFNAMES0.to_string()]
    } else {
        vec![]
    }
}

pub fn backup_path(path: &str) -> String {
    format!("{BACKUP_DIR}{path}")
}

/// fnmatch(3)-style glob without flags: `*`, `?`, `[...]` (with `!`/`^` negation and ranges).
/// Dynamic programming over (pattern token, name position): patterns are tenant data, and a
/// backtracking matcher took seconds on a keyfile's `interface-name=****...` (issue #12).
fn glob_match(pat: &str, name: &str) -> bool {
    enum Tok {
        Any,
        One,
        Lit(char),
        Class(Vec<(char, char)>, bool),
    }
    let p: Vec<char> = pat.chars().collect();
    let mut toks = vec![];
    let mut i = 0;
    while i < p.len() {
        let close = (p[i] == '[')
            .then(|| {
                p.iter()
                    .skip(i + 2)
                    .position(|c| *c == ']')
                    .map(|x| x + i + 2)
            })
            .flatten();
        match (p[i], close) {
            ('*', _) => toks.push(Tok::Any),
            ('?', _) => toks.push(Tok::One),
            ('[', Some(close)) => {
                let mut set = &p[i + 1..close];
                let negate = matches!(set.first(), Some('!' | '^'));
                if negate {
                    set = &set[1..];
                }
                let mut ranges = vec![];
                let mut j = 0;
                while j < set.len() {
                    if j + 2 < set.len() && set[j + 1] == '-' {
                        ranges.push((set[j], set[j + 2]));
                        j += 3;
                    } else {
                        ranges.push((set[j], set[j]));
                        j += 1;
                    }
                }
                toks.push(Tok::Class(ranges, negate));
                i = close;
            }
            (c, _) => toks.push(Tok::Lit(c)),
        }
        i += 1;
    }
    let n: Vec<char> = name.chars().collect();
    // row[j]: the tokens so far match n[..j].
    let mut row = vec![false; n.len() + 1];
    row[0] = true;
    for t in &toks {
        let mut next = vec![false; n.len() + 1];
        for j in 0..=n.len() {
            next[j] = match t {
                Tok::Any => row[j] || (j > 0 && next[j - 1]),
                _ if j == 0 => false,
                Tok::One => row[j - 1],
                Tok::Lit(c) => row[j - 1] && n[j - 1] == *c,
                Tok::Class(set, negate) => {
                    let c = n[j - 1];
                    row[j - 1] && set.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negate
                }
            };
        }
        row = next;
    }
    row[n.len()]
}

/// Static addressing carried over in keep-static mode (empty = DHCP).
#[derive(Debug, Clone, Default, PartialEq)]
struct Addressing {
    v4: Vec<String>,
    v6: Vec<String>,
    gw4: Option<String>,
    gw6: Option<String>,
    dns: Vec<String>,
}

impl Addressing {
    fn is_static(&self) -> bool {
        !self.v4.is_empty() || !self.v6.is_empty()
    }
}

#[derive(Serialize)]
struct V4Split {
    suffix: String,
    addr: String,
    prefix: Option<String>,
}

/// One config file with the interfaces in it that are bound to the old NIC.
struct Touched<'a> {
    cfg: &'a NetConfigInfo,
    flavor: Flavor,
    ifaces: Vec<&'a IfaceInfo>,
}

struct Planner<'a> {
    l: &'a LinuxInfo,
    inputs: &'a PlanInputs,
    opts: &'a PlanOptions,
    ifnames0: bool,
    actions: Vec<Action>,
    notes: &'a mut Vec<String>,
}

/// Plans DHCP (or kept static) networking on whatever NIC appears, dropping MAC/name pins.
pub fn plan_network(
    l: &LinuxInfo,
    inputs: &PlanInputs,
    opts: &PlanOptions,
    notes: &mut Vec<String>,
) -> Vec<Action> {
    let ifnames0 = needs_ifnames0(l);
    let mut p = Planner {
        l,
        inputs,
        opts,
        ifnames0,
        actions: vec![],
        notes,
    };
    for w in &l.network.warnings {
        p.notes.push(format!("network inspection: {w}"));
    }
    p.plan_udev();
    p.plan_configs();
    if l.cloud_init && !p.actions.is_empty() {
        p.notes.push(
            "cloud-init is installed: with a new instance id it may rewrite the network \
             configuration at first boot"
                .into(),
        );
    }
    p.actions
}

/// Names the new NIC may get: eth0 when the repair (or the guest) boots with net.ifnames=0.
fn expected_names(l: &LinuxInfo) -> Vec<&'static str> {
    if needs_ifnames0(l) || boots_with_ifnames0(l) {
        vec!["eth0"]
    } else {
        PREDICTABLE_NAMES.to_vec()
    }
}

/// Interfaces bound to the old NIC (by MAC, by a name the new NIC will not get, or static in
/// `dhcp` mode): the configs the planner replaces. Pure; verify reports each one.
pub fn old_nic_bindings<'a>(
    l: &'a LinuxInfo,
    opts: &PlanOptions,
) -> Vec<(&'a NetConfigInfo, &'a IfaceInfo)> {
    let expected = expected_names(l);
    let mut v = vec![];
    for c in &l.network.configs {
        let Some(flavor) = Flavor::parse(&c.flavor) else {
            continue;
        };
        v.extend(
            nic_ifaces(c)
                .filter(|i| !portable(i, flavor, &expected, opts))
                .map(|i| (c, i)),
        );
    }
    v
}

/// systemd .link files naming an interface by a MAC, with what they pin.
pub fn mac_link_files(l: &LinuxInfo) -> Vec<(&str, String)> {
    l.network
        .configs
        .iter()
        .filter(|c| c.flavor == "systemd-link")
        .filter_map(|c| {
            let i = c.interfaces.iter().find(|i| i.mac.is_some())?;
            Some((c.file.as_str(), describe(i)))
        })
        .collect()
}

/// A config that keeps working on the new NIC, whose name is one of `expected`.
fn portable(i: &IfaceInfo, f: Flavor, expected: &[&str], opts: &PlanOptions) -> bool {
    if i.mac.is_some() {
        return false;
    }
    let name_ok = match i.name.as_deref() {
        None => true,
        Some(LOGICAL) if f == Flavor::Ifupdown => true,
        // interfaces(5) pattern `[VAR]/VALUE[/N][=LOGICAL]`, as the inspection reports a
        // stanza mapped from `auto`: a name glob is checked, any other selector (mac/...)
        // is a pin.
        Some(n) if f == Flavor::Ifupdown && n.starts_with('/') => {
            let sel = n.rsplit_once('=').map_or(n, |(s, _)| s);
            let value = sel[1..].split('/').next().unwrap_or_default();
            expected.iter().all(|e| glob_match(value, e))
        }
        Some(n) => {
            let pats: Vec<&str> = n.split_whitespace().collect();
            expected
                .iter()
                .all(|e| pats.iter().any(|p| glob_match(p, e)))
        }
    };
    name_ok && (opts.network == NetworkMode::KeepStatic || i.dhcp)
}

fn describe(i: &IfaceInfo) -> String {
    let mut s = i.name.clone().unwrap_or_else(|| "(any name)".into());
    if let Some(m) = &i.mac {
        s.push_str(&format!(" (MAC {m})"));
    }
    s
}

impl<'a> Planner<'a> {
    fn ours(&self, path: &str) -> bool {
        self.inputs
            .text(path)
            .is_some_and(|t| t.starts_with("# revirt:"))
    }

    /// Backup location for `path`, not overwriting the backup of an earlier run.
    fn backup_for(&self, path: &str) -> String {
        let b = backup_path(path);
        if !self.inputs.existing.contains(&b) {
            return b;
        }
        let b2 = format!("{b}.2");
        if !self.inputs.existing.contains(&b2) {
            return b2;
        }
        format!("{b}.3")
    }

    fn push(&mut self, area: &str, change: Change, reason: String) {
        self.actions.push(Action {
            area: area.into(),
            change,
            reason,
            diff: None,
        });
    }

    fn rename_aside(&mut self, area: &str, path: &str, reason: String) {
        let to = self.backup_for(path);
        self.push(
            area,
            Change::Rename {
                from: path.into(),
                to,
            },
            reason,
        );
    }

    fn write(&mut self, path: &str, content: String, mode: u32, reason: String) {
        let before = self.inputs.text(path);
        if before == Some(content.as_str()) {
            return;
        }
        let mut a = Action::edit("network", path, before, content, reason);
        if let Change::WriteFile { mode: m, .. } = &mut a.change {
            *m = mode;
        }
        self.actions.push(a);
    }

    fn render(&mut self, name: &str, ctx: &tera::Context) -> Option<String> {
        match render(name, ctx) {
            Ok(t) => Some(t),
            Err(e) => {
                self.notes
                    .push(format!("template {name}: {e}; that file is not written"));
                None
            }
        }
    }

    // ---- udev and .link MAC pins ------------------------------------------------------------

    fn plan_udev(&mut self) {
        let (l, inputs) = (self.l, self.inputs);
        let mut by_file: BTreeMap<&str, Vec<&PersistentNetRule>> = BTreeMap::new();
        for r in &l.network.persistent_net_rules {
            by_file.entry(r.file.as_str()).or_default().push(r);
        }
        for (file, rules) in by_file {
            let pins: Vec<String> = rules
                .iter()
                .map(|r| match &r.mac {
                    Some(m) => format!("{} to MAC {m} (line {})", r.name, r.line),
                    None => format!("{} (line {})", r.name, r.line),
                })
                .collect();
            let reason = format!(
                "udev rules pin interface names to the old NICs: {}",
                pins.join(", ")
            );
            let Some(text) = inputs.text(file) else {
                self.notes.push(format!(
                    "{file}: persistent interface naming rules could not be read; not changed"
                ));
                continue;
            };
            if count_rules(text) <= rules.len() {
                self.rename_aside("net-rules", file, reason);
            } else {
                let to = self.backup_for(file);
                self.push(
                    "net-rules",
                    Change::CopyFile {
                        from: file.into(),
                        to,
                    },
                    format!("backup of {file} before its NAME rules are commented out"),
                );
                let lines: Vec<usize> = rules.iter().map(|r| r.line).collect();
                let after = comment_out_rules(text, &lines);
                let mut a = Action::edit("net-rules", file, Some(text), after, reason);
                a.area = "net-rules".into();
                self.actions.push(a);
            }
        }
        if self.l.network.persistent_net_generator {
            if self.inputs.existing.contains(GENERATOR_ETC) {
                self.rename_aside(
                    "net-rules",
                    GENERATOR_ETC,
                    "a local copy of the persistent-net generator is replaced by a mask".into(),
                );
            }
            self.push(
                "net-rules",
                Change::Symlink {
                    path: GENERATOR_ETC.into(),
                    target: "/dev/null".into(),
                },
                "75-persistent-net-generator.rules would pin the new NIC's MAC to a name at \
                 first boot (and the next NIC to eth1); masked"
                    .into(),
            );
        }
        let links = mac_link_files(l);
        for (file, what) in links {
            if self.ours(file) {
                continue;
            }
            self.rename_aside(
                "net-rules",
                file,
                format!("systemd .link file names an interface by the old MAC: {what}"),
            );
        }
    }

    // ---- configs -------------------------------------------------------------------------------

    fn plan_configs(&mut self) {
        let l = self.l;
        let mut touched: Vec<Touched<'a>> = vec![];
        for (c, i) in old_nic_bindings(l, self.opts) {
            match touched.last_mut() {
                Some(t) if std::ptr::eq(t.cfg, c) => t.ifaces.push(i),
                _ => touched.push(Touched {
                    cfg: c,
                    flavor: Flavor::parse(&c.flavor).expect("old_nic_bindings parses the flavor"),
                    ifaces: vec![i],
                }),
            }
        }
        if touched.is_empty() {
            if present_flavors(self.l).is_empty() {
                self.plan_fallback();
            }
            return;
        }
        for t in &touched {
            for i in &t.ifaces {
                if let Some(k) = i.kind.as_deref().filter(|k| *k != "ethernet") {
                    self.notes.push(format!(
                        "{}: {k} {} is replaced by a plain NIC config; the original is kept in {BACKUP_DIR}",
                        t.cfg.file,
                        describe(i)
                    ));
                }
                if let Some(m) = &i.set_mac {
                    self.notes.push(format!(
                        "{}: {} set its MAC address to {m}; the new NIC keeps its own",
                        t.cfg.file,
                        describe(i)
                    ));
                }
            }
        }
        let addressing = match self.opts.network {
            NetworkMode::Dhcp => Addressing::default(),
            NetworkMode::KeepStatic => self.keep_static(&touched),
        };
        let renderer = self.netplan_renderer(&touched);
        // Generated flavor -> files it replaces.
        let mut replaces: BTreeMap<Flavor, Vec<String>> = BTreeMap::new();
        let mut ifupdown: Vec<&Touched> = vec![];
        for t in &touched {
            let target = match t.flavor {
                Flavor::Ifupdown => {
                    ifupdown.push(t);
                    continue;
                }
                Flavor::Netplan if renderer.as_deref().is_some_and(nm_renderer) => {
                    Flavor::NetworkManager
                }
                f => f,
            };
            let file = t.cfg.file.as_str();
            let list = replaces.entry(target).or_default();
            if !self.ours(file) {
                list.push(file.to_string());
            }
        }
        if !ifupdown.is_empty() {
            self.plan_ifupdown(&ifupdown, &addressing);
        }
        for (f, files) in replaces {
            for file in &files {
                let why: Vec<String> = touched
                    .iter()
                    .filter(|t| &t.cfg.file == file)
                    .flat_map(|t| t.ifaces.iter().map(|i| describe(i)))
                    .collect();
                self.rename_aside(
                    "network",
                    file,
                    format!("bound to the old NIC: {}", why.join(", ")),
                );
            }
            self.write_flavor(f, &files, &addressing, renderer.as_deref());
        }
        let written: BTreeSet<&str> = self
            .actions
            .iter()
            .filter_map(|a| match &a.change {
                Change::WriteFile { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        if written.contains(IFUPDOWN_MAIN) && written.contains(NM_PATH) {
            self.notes.push(
                "both ifupdown and NetworkManager now configure any NIC: if NetworkManager's \
                 ifupdown plugin is not set to leave them alone, both run DHCP"
                    .into(),
            );
        }
    }

    /// keep-static: the first replaced interface with static addresses; DNS and gateway from
    /// it, else from the other replaced interfaces.
    fn keep_static(&mut self, touched: &[Touched<'a>]) -> Addressing {
        let all: Vec<&IfaceInfo> = touched
            .iter()
            .flat_map(|t| t.ifaces.iter().copied())
            .collect();
        let statics: Vec<&IfaceInfo> = all
            .iter()
            .copied()
            .filter(|i| !i.dhcp && !i.addresses.is_empty())
            .collect();
        let Some(first) = statics.first() else {
            self.notes.push(
                "keep-static: the replaced configs have no static address; the new NIC uses DHCP"
                    .into(),
            );
            return Addressing::default();
        };
        let mut a = Addressing::default();
        for addr in &first.addresses {
            if addr.contains(':') {
                a.v6.push(addr.clone());
            } else {
                if !addr.contains('/') {
                    self.notes.push(format!(
                        "keep-static: address {addr} has no prefix length; check the generated config"
                    ));
                }
                a.v4.push(addr.clone());
            }
        }
        let gws = std::iter::once(*first)
            .chain(statics.iter().copied())
            .filter_map(|i| i.gateway.clone());
        for g in gws {
            if g.contains(':') {
                a.gw6.get_or_insert(g);
            } else {
                a.gw4.get_or_insert(g);
            }
        }
        a.dns = std::iter::once(*first)
            .chain(all.iter().copied())
            .find(|i| !i.dns.is_empty())
            .map(|i| i.dns.clone())
            .unwrap_or_default();
        for other in statics.iter().skip(1) {
            if other.addresses != first.addresses {
                self.notes.push(format!(
                    "keep-static: only one NIC's addresses move to the new NIC; {} ({}) is dropped",
                    describe(other),
                    other.addresses.join(", ")
                ));
            }
        }
        a
    }

    /// `renderer:` of the guest's netplan files (replaced ones first).
    fn netplan_renderer(&self, touched: &[Touched]) -> Option<String> {
        let files = touched
            .iter()
            .filter(|t| t.flavor == Flavor::Netplan)
            .map(|t| t.cfg.file.as_str())
            .chain(
                self.l
                    .network
                    .configs
                    .iter()
                    .filter(|c| c.flavor == "netplan")
                    .map(|c| c.file.as_str()),
            );
        for f in files {
            let Some(text) = self.inputs.text(f) else {
                continue;
            };
            for line in text.lines() {
                let t = line.split('#').next().unwrap_or("").trim();
                if let Some(v) = t.strip_prefix("renderer:") {
                    let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                    if !v.is_empty() {
                        return Some(v.to_string());
                    }
                }
            }
        }
        None
    }

    fn context(&self, f: Flavor, replaced: &[String], a: &Addressing) -> tera::Context {
        let eth0 = binds_eth0(self.l, f);
        let target = if eth0 {
            "eth0 (the first NIC with net.ifnames=0)".to_string()
        } else if a.is_static() {
            "the first Ethernet NIC, whatever its name or MAC address".to_string()
        } else {
            "any Ethernet NIC, whatever its name or MAC address".to_string()
        };
        let purpose = if a.is_static() {
            format!("static addressing of the old NIC, moved to {target}")
        } else {
            format!("DHCP on {target}")
        };
        let name = if eth0 { "eth0" } else { LOGICAL };
        let select = if a.is_static() {
            format!("/{GLOB}/1={LOGICAL}")
        } else {
            format!("/{GLOB}={LOGICAL}")
        };
        let v4split: Vec<V4Split> =
            a.v4.iter()
                .enumerate()
                .map(|(n, s)| {
                    let (addr, prefix) = match s.split_once('/') {
                        Some((ad, p)) => (ad.to_string(), Some(p.to_string())),
                        None => (s.clone(), None),
                    };
                    V4Split {
                        suffix: if n == 0 { String::new() } else { n.to_string() },
                        addr,
                        prefix,
                    }
                })
                .collect();
        let (dns6, dns4): (Vec<&String>, Vec<&String>) =
            a.dns.iter().partition(|d| d.contains(':'));
        let addrs: Vec<&String> = a.v4.iter().chain(a.v6.iter()).collect();
        let mut c = tera::Context::new();
        c.insert("c", "#");
        c.insert("purpose", &purpose);
        c.insert("replaced", replaced);
        c.insert("backup_dir", BACKUP_DIR);
        c.insert("glob", GLOB);
        c.insert("name", name);
        c.insert("pattern", &!eth0);
        c.insert("select", &select);
        c.insert("uuid", NM_UUID);
        c.insert("v4", &a.v4);
        c.insert("v6", &a.v6);
        c.insert("gw4", &a.gw4);
        c.insert("gw6", &a.gw6);
        c.insert("dns", &a.dns);
        c.insert("dns4", &dns4);
        c.insert("dns6", &dns6);
        c.insert("v4split", &v4split);
        c.insert("addrs", &addrs);
        c
    }

    /// Writes the generated config of flavor `f` (not ifupdown, which edits a shared file).
    fn write_flavor(
        &mut self,
        f: Flavor,
        replaced: &[String],
        a: &Addressing,
        renderer: Option<&str>,
    ) {
        if f == Flavor::Ifupdown {
            self.plan_ifupdown(&[], a);
            return;
        }
        let mut ctx = self.context(f, replaced, a);
        ctx.insert("renderer", &renderer);
        let (tpl, path, mode) = match f {
            Flavor::NetworkManager => ("network/networkmanager.nmconnection.tera", NM_PATH, 0o600),
            Flavor::Netplan => ("network/netplan.yaml.tera", NETPLAN_PATH, 0o600),
            Flavor::Networkd => ("network/networkd.network.tera", NETWORKD_PATH, 0o644),
            Flavor::IfcfgRhel => ("network/ifcfg-rhel.tera", RHEL_PATH, 0o644),
            Flavor::Wicked => ("network/ifcfg-suse.tera", SUSE_PATH, 0o644),
            Flavor::Ifupdown => return,
        };
        // A file already at the target that is neither ours nor replaced is backed up.
        let renamed = replaced.iter().any(|r| r == path);
        if !renamed && self.inputs.existing.contains(path) && !self.ours(path) {
            self.rename_aside(
                "network",
                path,
                format!("replaced by revirt's {} config", f.label()),
            );
        }
        let Some(text) = self.render(tpl, &ctx) else {
            return;
        };
        let reason = match replaced.is_empty() {
            true => format!("{} config for the new NIC", f.label()),
            false => format!(
                "{} config for the new NIC, replacing {}",
                f.label(),
                replaced.join(", ")
            ),
        };
        let before_missing = !self.inputs.existing.contains(path) || renamed;
        if before_missing || !self.ours(path) {
            // Action::edit diffs against the old text; a renamed file is gone, so show it whole.
            let mut act = Action::edit("network", path, None, text, reason);
            if let Change::WriteFile { mode: m, .. } = &mut act.change {
                *m = mode;
            }
            self.actions.push(act);
        } else {
            self.write(path, text, mode, reason);
        }
        if f == Flavor::Wicked && (a.gw4.is_some() || a.gw6.is_some()) {
            let routes = self.inputs.text(SUSE_ROUTES).unwrap_or("").to_string();
            let known = |g: &Option<String>| {
                g.as_ref().is_none_or(|g| {
                    routes.lines().any(|l| {
                        let w: Vec<&str> = l.split_whitespace().collect();
                        w.len() >= 2 && matches!(w[0], "default" | "0.0.0.0") && w[1] == g
                    })
                })
            };
            if !(known(&a.gw4) && known(&a.gw6)) {
                if let Some(t) = self.render("network/ifroute-suse.tera", &ctx) {
                    self.write(
                        SUSE_ROUTE,
                        t,
                        0o644,
                        "default route of the kept static config".into(),
                    );
                }
            }
        }
    }

    /// ifupdown: sourced files bound to the old NIC move aside (or lose those stanzas), the
    /// main file loses them too and gets revirt's block.
    fn plan_ifupdown(&mut self, touched: &[&Touched<'a>], a: &Addressing) {
        let inputs = self.inputs;
        let names: BTreeSet<String> = touched
            .iter()
            .flat_map(|t| t.ifaces.iter().filter_map(|i| i.name.as_deref()))
            .map(|n| logical_of(n).to_string())
            .collect();
        let mut replaced: Vec<String> = vec![];
        for t in touched {
            let file = t.cfg.file.as_str();
            replaced.push(file.to_string());
            if file == IFUPDOWN_MAIN {
                continue;
            }
            let why: Vec<String> = t.ifaces.iter().map(|i| describe(i)).collect();
            let reason = format!("bound to the old NIC: {}", why.join(", "));
            let all_go = t.cfg.interfaces.iter().all(|i| {
                i.name
                    .as_deref()
                    .is_some_and(|n| names.contains(logical_of(n)))
            });
            if all_go {
                self.rename_aside("network", file, reason);
                continue;
            }
            let Some(text) = inputs.text(file) else {
                continue;
            };
            let after = ifupdown::drop_stanzas(text, &names);
            let to = self.backup_for(file);
            self.push(
                "network",
                Change::CopyFile {
                    from: file.into(),
                    to,
                },
                format!("backup of {file} before its stanzas for the old NIC go"),
            );
            self.write(file, after, 0o644, reason);
        }
        let Some(main) = inputs.text(IFUPDOWN_MAIN) else {
            self.notes.push(format!(
                "{IFUPDOWN_MAIN} could not be read; no ifupdown config written for the new NIC"
            ));
            return;
        };
        let ctx = self.context(Flavor::Ifupdown, &replaced, a);
        let Some(block) = self.render("network/ifupdown.tera", &ctx) else {
            return;
        };
        let after = ifupdown::append_block(&ifupdown::drop_stanzas(main, &names), &block);
        if after != main {
            if !self.inputs.existing.contains(&backup_path(IFUPDOWN_MAIN)) {
                self.push(
                    "network",
                    Change::CopyFile {
                        from: IFUPDOWN_MAIN.into(),
                        to: backup_path(IFUPDOWN_MAIN),
                    },
                    format!("backup of {IFUPDOWN_MAIN} before it is edited"),
                );
            }
            let what = if a.is_static() {
                "static addressing moved to the first NIC"
            } else {
                "DHCP on any NIC"
            };
            let reason = if names.is_empty() {
                format!("no network config found; {what}")
            } else {
                let n: Vec<&str> = names.iter().map(String::as_str).collect();
                format!(
                    "stanzas for the old NIC ({}) replaced: {what}",
                    n.join(", ")
                )
            };
            self.write(IFUPDOWN_MAIN, after, 0o644, reason);
        }
        if !binds_eth0(self.l, Flavor::Ifupdown) {
            let ctx = self.context(Flavor::Ifupdown, &[], &Addressing::default());
            if let Some(t) = self.render("network/networking-settle.conf.tera", &ctx) {
                self.write(
                    SETTLE_DROPIN,
                    t,
                    0o644,
                    "`auto /e*` only matches NICs present when networking starts: wait for udev first".into(),
                );
            }
        }
    }

    /// No NIC config at all: DHCP for the first installed tool the guest's family uses.
    fn plan_fallback(&mut self) {
        for f in fallback_candidates(self.l) {
            if binds_eth0(self.l, f) && !self.ifnames0 {
                continue;
            }
            if !self.inputs.existing.contains(f.marker()) {
                continue;
            }
            let mut f = f;
            let renderer = self.netplan_renderer(&[]);
            if f == Flavor::Netplan && renderer.as_deref().is_some_and(nm_renderer) {
                f = Flavor::NetworkManager;
            }
            self.notes.push(format!(
                "no network configuration found; adding a {} DHCP config for the new NIC",
                f.label()
            ));
            self.write_flavor(f, &[], &Addressing::default(), renderer.as_deref());
            return;
        }
        self.notes.push(
            "no network configuration and no known network tool found; the guest's own \
             defaults apply to the new NIC"
                .into(),
        );
    }
}

/// The `iface` name behind an ifupdown binding: `/e*=lan` -> `lan`; plain names as they are.
fn logical_of(name: &str) -> &str {
    match name.rsplit_once('=') {
        Some((_, l)) if name.contains('/') => l,
        _ => name,
    }
}

fn nm_renderer(r: &str) -> bool {
    r.eq_ignore_ascii_case("NetworkManager")
}

/// Rules in a udev rules file (logical lines that are neither blank nor comments).
fn count_rules(text: &str) -> usize {
    let mut n = 0;
    let mut cont = false;
    for l in text.lines() {
        let t = l.trim();
        if !cont && !t.is_empty() && !t.starts_with('#') {
            n += 1;
        }
        cont = !t.starts_with('#') && t.ends_with('\\') && (cont || !t.is_empty());
    }
    n
}

/// Comments out the rules starting at `starts` (1-based), continuation lines included.
fn comment_out_rules(text: &str, starts: &[usize]) -> String {
    let mut out = String::new();
    let mut inside = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if starts.contains(&(i + 1)) {
            inside = true;
        }
        if inside {
            out.push_str("# revirt (old NIC): ");
            inside = line.trim_end().ends_with('\\');
        }
        out.push_str(line);
    }
    out
}
