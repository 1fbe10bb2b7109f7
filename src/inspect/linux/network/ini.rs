//! INI-style files: NetworkManager keyfiles (GLib key files) and systemd unit-style
//! .network/.link files. Sections may repeat (systemd [Address], [Route]); keys may repeat.

/// One `[section]` with its entries, lines 1-based.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<(String, String, usize)>,
}

impl Section {
    /// Last value of `key` (systemd and GLib: a later assignment wins for single-value keys).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| v.as_str())
    }
    /// Every value of `key`, in order (list-valued systemd keys such as Address=, DNS=).
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _, _)| k == key)
            .map(|(_, v, _)| v.as_str())
    }
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, l)| *l)
    }
}

/// Parses `text`. `systemd` enables `;` comments and backslash line continuation (systemd.syntax(7)).
/// Entries before the first section header are dropped.
pub fn parse(text: &str, systemd: bool) -> Vec<Section> {
    let mut out: Vec<Section> = vec![];
    let mut pending: Option<(String, usize)> = None;
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let (mut acc, start) = match pending.take() {
            Some((s, l)) => (s, l),
            None => (String::new(), lineno),
        };
        let trimmed = raw.trim();
        if acc.is_empty() && (trimmed.starts_with('#') || (systemd && trimmed.starts_with(';'))) {
            continue;
        }
        if systemd && trimmed.ends_with('\\') {
            acc.push_str(&trimmed[..trimmed.len() - 1]);
            acc.push(' ');
            pending = Some((acc, start));
            continue;
        }
        acc.push_str(trimmed);
        let line = acc.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            out.push(Section {
                name: line[1..line.len() - 1].trim().to_string(),
                line: start,
                entries: vec![],
            });
            continue;
        }
        if let (Some((k, v)), Some(sec)) = (line.split_once('='), out.last_mut()) {
            sec.entries
                .push((k.trim().to_string(), v.trim().to_string(), start));
        }
    }
    out
}

/// First section called `name`.
pub fn section<'a>(secs: &'a [Section], name: &str) -> Option<&'a Section> {
    secs.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_continuation_comments() {
        let t = "# c\n[Match]\nName=eth0\n; semi\n[Network]\nDNS=1.1.1.1 \\\n  8.8.8.8\nAddress=10.0.0.2/24\n\
                 [Route]\nGateway=10.0.0.1\n[Route]\nGateway=10.0.0.254\n";
        let s = parse(t, true);
        assert_eq!(s.len(), 4);
        let net = section(&s, "Network").unwrap();
        assert_eq!(net.get("DNS"), Some("1.1.1.1  8.8.8.8"));
        assert_eq!(net.line_of("DNS"), Some(6));
        assert_eq!(net.line_of("Address"), Some(8));
        assert_eq!(s.iter().filter(|x| x.name == "Route").count(), 2);
        // GLib key files have no ';' comments.
        let k = parse("[ipv4]\n;x=1\n", false);
        assert_eq!(k[0].get(";x"), Some("1"));
    }
}
