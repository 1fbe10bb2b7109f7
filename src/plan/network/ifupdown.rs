//! Text edits of interfaces(5) files: drop the stanzas of replaced interfaces (and their names
//! from `auto`/`allow-*` lines), keep everything else (loopback, `source` lines, mappings,
//! comments) as written.
use std::collections::BTreeSet;

/// Header lines revirt writes above its own block; dropped when the block is written again.
pub const OWN_COMMENT: &str = "# revirt:";

/// Keywords that end an `iface` stanza (interfaces(5) FILE FORMAT).
fn ends_stanza(kw: &str) -> bool {
    matches!(
        kw,
        "iface"
            | "mapping"
            | "auto"
            | "source"
            | "source-directory"
            | "source-dir"
            | "rename"
            | "no-auto-down"
            | "no-scripts"
    ) || kw.starts_with("allow-")
}

/// Whether an `auto`/`allow-*` word selects one of `names`: a plain name, or a pattern or
/// `PHYS=LOGICAL` mapping whose logical side is one of them.
fn selects(word: &str, names: &BTreeSet<String>) -> bool {
    names.contains(word)
        || word
            .rsplit_once('=')
            .is_some_and(|(_, logical)| names.contains(logical))
}

/// `text` without the stanzas of `names`, without those names on `auto`/`allow-*` lines (a
/// line left empty goes), without indented comments inside dropped stanzas, and without
/// revirt's own header comments.
pub fn drop_stanzas(text: &str, names: &BTreeSet<String>) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::new();
    let mut dropping = false;
    let mut i = 0;
    while i < lines.len() {
        let first = lines[i];
        let t = first.trim();
        if t.is_empty() {
            out.push_str(first);
            i += 1;
            continue;
        }
        if t.starts_with('#') {
            let own = t.starts_with(OWN_COMMENT);
            let inside = dropping && first.starts_with(char::is_whitespace);
            if !own && !inside {
                out.push_str(first);
            }
            i += 1;
            continue;
        }
        // One logical line: backslash continuations joined.
        let start = i;
        while i < lines.len() && lines[i].trim_end().ends_with('\\') {
            i += 1;
        }
        let end = (i + 1).min(lines.len());
        i = end;
        let chunk = &lines[start..end];
        let joined: String = chunk
            .iter()
            .map(|l| l.trim_end().trim_end_matches('\\'))
            .collect::<Vec<_>>()
            .join(" ");
        let words: Vec<&str> = joined.split_whitespace().collect();
        let kw = words.first().copied().unwrap_or_default();
        if ends_stanza(kw) {
            dropping = false;
        }
        if kw == "iface" {
            dropping = words.get(1).is_some_and(|n| names.contains(*n));
            if !dropping {
                chunk.iter().for_each(|l| out.push_str(l));
            }
        } else if kw == "auto" || kw.starts_with("allow-") {
            let kept: Vec<&str> = words[1..]
                .iter()
                .copied()
                .filter(|w| !selects(w, names))
                .collect();
            if kept.len() + 1 == words.len() {
                chunk.iter().for_each(|l| out.push_str(l));
            } else if !kept.is_empty() {
                let indent: String = first.chars().take_while(|c| c.is_whitespace()).collect();
                out.push_str(&format!("{indent}{kw} {}\n", kept.join(" ")));
            }
        } else if !dropping {
            chunk.iter().for_each(|l| out.push_str(l));
        }
    }
    out
}

/// `text` with `block` appended after one blank line (trailing blank lines of `text` go).
pub fn append_block(text: &str, block: &str) -> String {
    let body = text.trim_end();
    if body.is_empty() {
        return block.to_string();
    }
    format!("{body}\n\n{block}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn drops_stanzas_and_auto_names_keeps_the_rest() {
        let t = "\
source /etc/network/interfaces.d/*

auto lo ens192
iface lo inet loopback

# The primary network interface
allow-hotplug ens192
iface ens192 inet static
\taddress 192.168.10.20
\t# dns-* options need resolvconf
\tdns-nameservers 192.168.10.2 \\
\t  192.168.10.3
iface ens192 inet6 auto

mapping eth*
  script /usr/local/bin/map
iface wlan0 inet dhcp
  wpa-ssid home
";
        let out = drop_stanzas(t, &set(&["ens192"]));
        assert_eq!(
            out,
            "\
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

# The primary network interface

mapping eth*
  script /usr/local/bin/map
iface wlan0 inet dhcp
  wpa-ssid home
"
        );
    }

    #[test]
    fn drops_own_block_and_mapped_patterns() {
        let t = "auto lo\niface lo inet loopback\n\n# revirt: DHCP\nauto /e*=revirt\niface revirt inet dhcp\n";
        let out = drop_stanzas(t, &set(&["revirt"]));
        assert_eq!(out, "auto lo\niface lo inet loopback\n\n");
        assert_eq!(
            append_block(&out, "auto x\n"),
            "auto lo\niface lo inet loopback\n\nauto x\n"
        );
    }
}
