//! Debian/Ubuntu ifupdown: /etc/network/interfaces and the files it pulls in with `source`
//! (shell globs) and `source-directory` (run-parts names only), per interfaces(5).
use super::{list_files, read_text, with_prefix};
use crate::fs::Vfs;
use crate::types::{IfaceInfo, NetConfigInfo, NetworkInfo};
use std::collections::BTreeSet;

const MAIN: &str = "/etc/network/interfaces";
/// Bound on nested `source` directives (a file sourcing itself through a glob is not an error).
const MAX_DEPTH: usize = 8;
/// Files read through `source` / `source-directory` in all (real systems: a handful).
const MAX_FILES: usize = 256;
/// Directory entries listed and paths checked by all the globs of one walk.
const MAX_ENTRIES: usize = 100_000;
/// Paths a glob keeps while expanding, and components it expands.
const MAX_GLOB_PATHS: usize = 4096;
const MAX_GLOB_COMPONENTS: usize = 64;

pub(super) fn detect(vfs: &Vfs, info: &mut NetworkInfo) {
    if !vfs.exists(MAIN) {
        return;
    }
    let mut walk = Walk {
        seen: BTreeSet::new(),
        entries_left: MAX_ENTRIES,
        warned: false,
    };
    let mut parsed: Vec<Parsed> = vec![];
    load(vfs, MAIN, 0, &mut walk, &mut parsed, &mut info.warnings);
    // `auto`/`allow-*` may sit in a different file from the stanza.
    let auto: BTreeSet<String> = parsed.iter().flat_map(|p| p.auto.iter().cloned()).collect();
    for p in parsed {
        if p.ifaces.is_empty() {
            continue;
        }
        let mut interfaces = p.ifaces;
        for i in &mut interfaces {
            let name = i.name.clone().unwrap_or_default();
            // ifupdown >= 0.8 maps NICs matching a pattern onto a logical interface:
            // `auto /e*=lan` + `iface lan inet dhcp`. Report the binding as the pattern.
            let pattern = auto
                .iter()
                .find(|a| a.starts_with('/') && a.rsplit_once('=').is_some_and(|(_, l)| l == name));
            match pattern {
                Some(pat) => {
                    i.name = Some(pat.clone());
                    i.auto_start = Some(true);
                }
                None => i.auto_start = Some(auto.contains(&name)),
            }
        }
        info.configs.push(NetConfigInfo {
            flavor: "ifupdown".into(),
            file: p.file,
            interfaces,
        });
    }
}

/// What one walk over `source` / `source-directory` has used of its budget: a tenant's files
/// can source each other in loops and fan out over huge folders (issue #8).
struct Walk {
    /// Resolved paths read so far.
    seen: BTreeSet<String>,
    /// Directory entries and path checks the globs may still spend.
    entries_left: usize,
    warned: bool,
}

impl Walk {
    /// Spends `n` entries; false (with one warning) once the budget is gone.
    fn spend(&mut self, n: usize, what: &str, warnings: &mut Vec<String>) -> bool {
        if self.entries_left >= n && self.seen.len() < MAX_FILES {
            self.entries_left -= n;
            return true;
        }
        if !self.warned {
            self.warned = true;
            warnings.push(format!(
                "ifupdown: source/source-directory budget spent ({MAX_FILES} files, {MAX_ENTRIES} directory entries) at {what}; the rest is ignored"
            ));
        }
        false
    }
}

fn load(
    vfs: &Vfs,
    path: &str,
    depth: usize,
    walk: &mut Walk,
    out: &mut Vec<Parsed>,
    warnings: &mut Vec<String>,
) {
    if depth > MAX_DEPTH || !walk.spend(1, path, warnings) {
        return;
    }
    // The seen-set holds resolved paths: `interfaces`, `./interfaces`, `a/../interfaces` and
    // symlinks to it are one file, read once (issue #8: a file sourcing itself many ways).
    let Ok(Some(real)) = vfs.resolve(path, true) else {
        return;
    };
    if !walk.seen.insert(real) {
        return;
    }
    let Some(text) = read_text(vfs, path, warnings) else {
        return;
    };
    let parsed = parse(&text, path);
    let dir = parent(path);
    let sources = parsed.sources.clone();
    out.push(parsed);
    for (kind, pat) in sources {
        let pat = if pat.starts_with('/') {
            pat
        } else {
            format!("{dir}/{pat}")
        };
        match kind {
            SourceKind::File => {
                for f in glob(vfs, &pat, walk, warnings) {
                    load(vfs, &f, depth + 1, walk, out, warnings);
                }
            }
            SourceKind::Dir => {
                for d in glob(vfs, &pat, walk, warnings) {
                    let files = list_files(vfs, &d, warnings);
                    if !walk.spend(files.len(), &d, warnings) {
                        return;
                    }
                    for (name, f) in files {
                        // run-parts(8) naming: skips dpkg leftovers, editor backups, dotfiles.
                        if name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                        {
                            load(vfs, &f, depth + 1, walk, out, warnings);
                        }
                    }
                }
            }
        }
    }
}

fn parent(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => path[..i].to_string(),
    }
}

#[derive(Debug, Clone, Copy)]
enum SourceKind {
    File,
    Dir,
}

#[derive(Debug)]
struct Parsed {
    file: String,
    ifaces: Vec<IfaceInfo>,
    auto: Vec<String>,
    sources: Vec<(SourceKind, String)>,
}

/// Logical lines: comments dropped, backslash continuations joined; with starting line number.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = vec![];
    let mut acc: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if acc.is_none() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        let (start, mut s) = acc.take().unwrap_or((i + 1, String::new()));
        if let Some(stripped) = t.strip_suffix('\\') {
            s.push_str(stripped);
            s.push(' ');
            acc = Some((start, s));
        } else {
            s.push_str(t);
            out.push((start, s));
        }
    }
    if let Some(a) = acc {
        out.push(a);
    }
    out
}

fn parse(text: &str, file: &str) -> Parsed {
    let mut p = Parsed {
        file: file.to_string(),
        ifaces: vec![],
        auto: vec![],
        sources: vec![],
    };
    // Index into p.ifaces of the stanza being read, its family, and its netmask (applied at
    // the end of the stanza since `netmask` may follow `address`).
    let mut cur: Option<(usize, String)> = None;
    let mut pending_mask: Option<String> = None;
    let mut stanza_addrs: Vec<usize> = vec![];
    let finish = |p: &mut Parsed,
                  cur: &Option<(usize, String)>,
                  mask: &mut Option<String>,
                  addrs: &mut Vec<usize>| {
        if let (Some((idx, _)), Some(m)) = (cur, mask.take()) {
            for &a in addrs.iter() {
                let addr = p.ifaces[*idx].addresses[a].clone();
                p.ifaces[*idx].addresses[a] = with_prefix(&addr, Some(&m));
            }
        }
        addrs.clear();
    };
    for (lineno, line) in logical_lines(text) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(&kw) = words.first() else { continue };
        let args = &words[1..];
        match kw {
            "iface" | "mapping" | "auto" | "source" | "source-directory" | "no-auto-down"
            | "no-scripts" | "rename" => {
                finish(&mut p, &cur, &mut pending_mask, &mut stanza_addrs);
                cur = None;
            }
            k if k.starts_with("allow-") => {
                finish(&mut p, &cur, &mut pending_mask, &mut stanza_addrs);
                cur = None;
            }
            _ => {}
        }
        match kw {
            "auto" => p.auto.extend(args.iter().map(|s| s.to_string())),
            k if k.starts_with("allow-") => p.auto.extend(args.iter().map(|s| s.to_string())),
            "source" => p
                .sources
                .extend(args.iter().map(|s| (SourceKind::File, s.to_string()))),
            "source-directory" => p
                .sources
                .extend(args.iter().map(|s| (SourceKind::Dir, s.to_string()))),
            "iface" => {
                let (Some(name), fam, method) =
                    (args.first(), args.get(1).copied(), args.get(2).copied())
                else {
                    continue;
                };
                if method == Some("loopback") || *name == "lo" {
                    continue;
                }
                let idx = match p
                    .ifaces
                    .iter()
                    .position(|i| i.name.as_deref() == Some(name))
                {
                    Some(i) => i,
                    None => {
                        p.ifaces.push(IfaceInfo {
                            name: Some(name.to_string()),
                            line: Some(lineno),
                            ..Default::default()
                        });
                        p.ifaces.len() - 1
                    }
                };
                let fam = fam.unwrap_or("inet").to_string();
                match (fam.as_str(), method) {
                    ("inet", Some("dhcp" | "bootp")) => p.ifaces[idx].dhcp = true,
                    ("inet6", Some("dhcp" | "auto")) => p.ifaces[idx].dhcp6 = true,
                    _ => {}
                }
                cur = Some((idx, fam));
            }
            _ => {
                let Some((idx, _)) = &cur else { continue };
                let i = &mut p.ifaces[*idx];
                let val = args.join(" ");
                match kw {
                    "address" => {
                        stanza_addrs.push(i.addresses.len());
                        i.addresses.push(val);
                    }
                    "netmask" => pending_mask = Some(val),
                    "gateway" if i.gateway.is_none() => i.gateway = Some(val),
                    "dns-nameservers" | "dns-nameserver" => {
                        i.dns.extend(args.iter().map(|s| s.to_string()))
                    }
                    // `hwaddress [ether] MAC` sets the MAC rather than matching on it.
                    "hwaddress" => i.set_mac = args.last().and_then(|m| super::normalize_mac(m)),
                    "bond-slaves" | "bond-mode" => i.kind = Some("bond".into()),
                    "bridge_ports" | "bridge-ports" => i.kind = Some("bridge".into()),
                    "vlan-raw-device" | "vlan_raw_device" => i.kind = Some("vlan".into()),
                    "wpa-ssid" | "wpa-conf" | "wireless-essid" => i.kind = Some("wifi".into()),
                    _ => {}
                }
            }
        }
    }
    finish(&mut p, &cur, &mut pending_mask, &mut stanza_addrs);
    p
}

/// Expands shell wildcards (`*`, `?`, `[...]`) component by component; sorted like glob(3).
/// At most [`MAX_GLOB_PATHS`] paths are kept at any step and [`MAX_GLOB_COMPONENTS`] components
/// expanded: a deep tree under a pattern of many `*/` grows multiplicatively (issue #8).
fn glob(vfs: &Vfs, pattern: &str, walk: &mut Walk, warnings: &mut Vec<String>) -> Vec<String> {
    let mut paths = vec![String::new()];
    let comps: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    if comps.len() > MAX_GLOB_COMPONENTS {
        warnings.push(format!(
            "source pattern {pattern:?}: more than {MAX_GLOB_COMPONENTS} components, not expanded"
        ));
        return vec![];
    }
    for comp in comps {
        if paths.len() > MAX_GLOB_PATHS {
            warnings.push(format!(
                "source pattern {pattern:?}: more than {MAX_GLOB_PATHS} matches, the rest ignored"
            ));
            paths.truncate(MAX_GLOB_PATHS);
        }
        let mut next = vec![];
        for base in &paths {
            let dir = if base.is_empty() {
                "/".to_string()
            } else {
                base.clone()
            };
            if comp.contains(['*', '?', '[']) {
                if let Ok(entries) = vfs.read_dir(&dir) {
                    if !walk.spend(entries.len(), pattern, warnings) {
                        return vec![];
                    }
                    for e in entries {
                        if !e.name.starts_with('.') && fnmatch(comp, &e.name) {
                            next.push(format!("{base}/{}", e.name));
                        }
                    }
                }
            } else {
                next.push(format!("{base}/{comp}"));
            }
        }
        paths = next;
    }
    // Matches of a final wildcard came from a listing: only a literal last component needs a
    // lookup (one per path: a lookup in a huge folder is a scan of it).
    let listed = comps_last_is_wild(pattern);
    if !listed && !walk.spend(paths.len(), pattern, warnings) {
        return vec![];
    }
    paths.retain(|p| !p.is_empty() && (listed || vfs.exists(p)));
    paths.sort();
    paths
}

fn comps_last_is_wild(pattern: &str) -> bool {
    pattern
        .rsplit('/')
        .find(|c| !c.is_empty())
        .is_some_and(|c| c.contains(['*', '?', '[']))
}

/// One element of a compiled wildcard pattern.
enum Pat {
    Any,
    One,
    Class {
        set: Vec<(char, char)>,
        negate: bool,
    },
    Lit(char),
}

fn compile(pat: &str) -> Vec<Pat> {
    let p: Vec<char> = pat.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '*' => out.push(Pat::Any),
            '?' => out.push(Pat::One),
            '[' => {
                let mut j = i + 1;
                let negate = matches!(p.get(j), Some('!' | '^'));
                if negate {
                    j += 1;
                }
                let mut set = vec![];
                let mut first = true;
                while j < p.len() && (first || p[j] != ']') {
                    first = false;
                    if p.get(j + 1) == Some(&'-') && j + 2 < p.len() && p[j + 2] != ']' {
                        set.push((p[j], p[j + 2]));
                        j += 3;
                    } else {
                        set.push((p[j], p[j]));
                        j += 1;
                    }
                }
                if j >= p.len() {
                    // No closing bracket: '[' is literal.
                    out.push(Pat::Lit('['));
                } else {
                    out.push(Pat::Class { set, negate });
                    i = j;
                }
            }
            c => out.push(Pat::Lit(c)),
        }
        i += 1;
    }
    out
}

/// fnmatch(3) without flags, for one path component. Dynamic programming over (pattern, name)
/// positions: O(len(pattern) * len(name)) whatever a tenant writes (backtracking on `*` is
/// exponential in the number of stars).
pub(crate) fn fnmatch(pat: &str, name: &str) -> bool {
    let p = compile(pat);
    let n: Vec<char> = name.chars().collect();
    // row[j]: p[..i] matches n[..j].
    let mut row = vec![false; n.len() + 1];
    row[0] = true;
    for el in &p {
        let mut next = vec![false; n.len() + 1];
        for j in 0..=n.len() {
            next[j] = match el {
                Pat::Any => row[j] || (j > 0 && next[j - 1]),
                _ if j == 0 => false,
                Pat::One => row[j - 1],
                Pat::Lit(c) => row[j - 1] && n[j - 1] == *c,
                Pat::Class { set, negate } => {
                    let c = n[j - 1];
                    row[j - 1] && set.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negate
                }
            };
        }
        row = next;
    }
    row[n.len()]
}

#[cfg(test)]
mod tests {
    use super::super::testutil::guest;
    use super::*;

    const DEBIAN_MAIN: &str = "\
# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
allow-hotplug ens192
iface ens192 inet static
\taddress 192.168.10.20
\tnetmask 255.255.255.0
\tgateway 192.168.10.1
\thwaddress ether 00:50:56:AB:CD:EF
\t# dns-* options are implemented by the resolvconf package, if installed
\tdns-nameservers 192.168.10.2 \\
\t  192.168.10.3
\tdns-search example.com
iface ens192 inet6 auto
";

    #[test]
    fn fnmatch_is_polynomial_and_keeps_its_rules() {
        // Backtracking would take ~200^30 steps here.
        assert!(!fnmatch(&"*a".repeat(30), &format!("{}b", "a".repeat(200))));
        assert!(fnmatch("*.cfg", "eth0.cfg") && !fnmatch("*.cfg", "eth0.cfgx"));
        assert!(fnmatch("e[a-z]h?", "eth0") && !fnmatch("e[!t]h0", "eth0"));
        assert!(fnmatch("a[b", "a[b") && fnmatch("*", "") && !fnmatch("?", ""));
    }

    #[test]
    fn debian_static_with_sourced_dhcp() {
        let (_d, vfs) = guest(&[
            (MAIN, DEBIAN_MAIN),
            (
                "/etc/network/interfaces.d/ens224",
                "auto ens224\niface ens224 inet dhcp\n",
            ),
            (
                "/etc/network/interfaces.d/old.bak",
                "iface ethX inet dhcp\n",
            ),
            (
                "/etc/network/extra/eth9",
                "iface eth9 inet static\n  address 10.9.9.9/8\n",
            ),
            ("/etc/network/extra/eth9.dpkg-old", "iface eth8 inet dhcp\n"),
        ]);
        let mut info = NetworkInfo::default();
        detect(&vfs, &mut info);
        assert!(info.warnings.is_empty(), "{:?}", info.warnings);
        // The glob pulls in old.bak too (source is a shell glob, unlike source-directory).
        let files: Vec<&str> = info.configs.iter().map(|c| c.file.as_str()).collect();
        assert_eq!(
            files,
            [
                MAIN,
                "/etc/network/interfaces.d/ens224",
                "/etc/network/interfaces.d/old.bak"
            ]
        );
        let main = &info.configs[0].interfaces;
        assert_eq!(main.len(), 1, "lo is skipped and inet6 merges: {main:?}");
        let e = &main[0];
        assert_eq!(e.name.as_deref(), Some("ens192"));
        assert!(!e.dhcp && e.dhcp6);
        assert_eq!(e.addresses, ["192.168.10.20/24"]);
        assert_eq!(e.gateway.as_deref(), Some("192.168.10.1"));
        assert_eq!(e.dns, ["192.168.10.2", "192.168.10.3"]);
        assert_eq!(e.set_mac.as_deref(), Some("00:50:56:ab:cd:ef"));
        assert_eq!(e.mac, None);
        assert_eq!(e.line, Some(12));
        assert_eq!(e.auto_start, Some(true));
        let d = &info.configs[1].interfaces[0];
        assert!(d.dhcp && d.auto_start == Some(true));
        assert_eq!(info.configs[2].interfaces[0].auto_start, Some(false));
    }

    #[test]
    fn source_directory_uses_run_parts_names_and_relative_paths() {
        let (_d, vfs) = guest(&[
            (MAIN, "source-directory extra\n"),
            (
                "/etc/network/extra/eth9",
                "iface eth9 inet static\n  address 10.9.9.9/8\n  gateway 10.0.0.1\n",
            ),
            ("/etc/network/extra/eth9.dpkg-old", "iface eth8 inet dhcp\n"),
        ]);
        let mut info = NetworkInfo::default();
        detect(&vfs, &mut info);
        assert_eq!(info.configs.len(), 1);
        assert_eq!(info.configs[0].file, "/etc/network/extra/eth9");
        assert_eq!(info.configs[0].interfaces[0].addresses, ["10.9.9.9/8"]);
    }

    #[test]
    fn self_sourcing_terminates() {
        let (_d, vfs) = guest(&[(
            MAIN,
            "source /etc/network/interfaces\nauto eth0\niface eth0 inet dhcp\n",
        )]);
        let mut info = NetworkInfo::default();
        detect(&vfs, &mut info);
        assert_eq!(info.configs.len(), 1);
    }

    #[test]
    fn fnmatch_classes() {
        assert!(fnmatch("*", "eth0"));
        assert!(fnmatch("eth[0-9]", "eth3"));
        assert!(!fnmatch("eth[!0-9]", "eth3"));
        assert!(fnmatch("e?h*", "ethernet"));
        assert!(!fnmatch("*.cfg", "a.conf"));
    }
}
