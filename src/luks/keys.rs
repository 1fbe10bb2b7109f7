//! Keys for encrypted volumes, given as virt-v2v takes them: `--key SELECTOR:key:PASS`,
//! `SELECTOR:file:FILE` (SELECTOR: a device name as revirt reports it, a LUKS UUID, or `all`),
//! and `--keys-from-stdin` (one passphrase per line, tried on every volume). The worker job
//! takes key files only: a passphrase in argv is visible to every user of the worker in /proc.
//! A key is never printed: its Debug form names the selector only.

/// Which volumes a key is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    All,
    /// A device name (/dev/sda2, /dev/vg/lv) or a LUKS UUID.
    Named(String),
}

/// One passphrase and the volumes it is tried on.
#[derive(Clone)]
pub struct Key {
    pub selector: Selector,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({:?}, <redacted>)", self.selector)
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.secret.iter_mut().for_each(|b| *b = 0);
    }
}

/// A `--key` that cannot be used, found before any disk is read.
#[derive(Debug, thiserror::Error)]
#[error("--key {shown}: {why}")]
pub struct BadKey {
    /// The spec with the passphrase blanked.
    pub shown: String,
    pub why: String,
}

impl Key {
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// Parses `SELECTOR:key:PASS` or `SELECTOR:file:FILE` (the file's first line, as
    /// libguestfs reads it). `files_only`: the worker job, where `:key:` is refused.
    pub fn parse(spec: &str, files_only: bool) -> Result<Key, BadKey> {
        let mut it = spec.splitn(3, ':');
        let (sel, kind, rest) = (it.next().unwrap_or(""), it.next(), it.next());
        let bad = |why: &str| BadKey {
            shown: match kind {
                Some(k) => format!("{sel}:{k}:..."),
                None => "...".into(),
            },
            why: why.into(),
        };
        if sel.is_empty() {
            return Err(bad("no selector (a device, a LUKS UUID, or all)"));
        }
        let selector = if sel == "all" {
            Selector::All
        } else {
            Selector::Named(sel.into())
        };
        let secret = match (kind, rest) {
            (Some("key"), Some(p)) if files_only => {
                let _ = p;
                return Err(bad(
                    "a passphrase in the job is refused: give a key file (SELECTOR:file:FILE)",
                ));
            }
            (Some("key"), Some(p)) => p.as_bytes().to_vec(),
            (Some("file"), Some(f)) => {
                let bytes = std::fs::read(f).map_err(|e| bad(&format!("{f}: {e}")))?;
                first_line(bytes)
            }
            (Some("clevis"), _) => return Err(bad("clevis/tang keys are not supported")),
            _ => return Err(bad("expected SELECTOR:key:PASS or SELECTOR:file:FILE")),
        };
        Ok(Key { selector, secret })
    }

    /// A passphrase read from stdin (`--keys-from-stdin`), tried on every volume.
    pub fn any(secret: Vec<u8>) -> Key {
        Key {
            selector: Selector::All,
            secret,
        }
    }

    /// Whether this key is for the volume known by `names` (device, aliases) or `uuid`.
    pub fn fits(&self, names: &[&str], uuid: &str) -> bool {
        match &self.selector {
            Selector::All => true,
            Selector::Named(n) => {
                names.contains(&n.as_str()) || (!uuid.is_empty() && n.eq_ignore_ascii_case(uuid))
            }
        }
    }
}

/// The bytes up to the first newline, as libguestfs reads a key file (a "\r" stays: it may
/// be part of the passphrase).
fn first_line(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some(n) = bytes.iter().position(|&b| b == b'\n') {
        bytes.truncate(n);
    }
    bytes
}

/// Reads `--keys-from-stdin`: one passphrase per line.
pub fn from_reader(r: impl std::io::BufRead) -> std::io::Result<Vec<Key>> {
    let mut out = vec![];
    for line in r.split(b'\n') {
        let line = first_line(line?);
        if !line.is_empty() {
            out.push(Key::any(line));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_never_show_the_passphrase() {
        let k = Key::parse("/dev/sda2:key:s3cr:et", false).unwrap();
        assert_eq!(k.secret(), b"s3cr:et");
        assert!(k.fits(&["/dev/sda2"], ""));
        assert!(!k.fits(&["/dev/sda3"], ""));
        assert!(!format!("{k:?}").contains("s3cr"));
        let e = Key::parse("/dev/sda2:key:s3cret", true).unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(e.to_string().contains("key file"), "{e}");
        let e = Key::parse("/dev/sda2:nope:s3cret", false).unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let all = Key::parse("all:key:x", false).unwrap();
        assert!(all.fits(&["/dev/anything"], "u"));
        let by_uuid = Key::parse("ABCD-1:key:x", false).unwrap();
        assert!(by_uuid.fits(&["/dev/sdb1"], "abcd-1"));
    }

    #[test]
    fn key_files_give_their_first_line() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("k");
        std::fs::write(&f, "pass word\nsecond\n").unwrap();
        let k = Key::parse(&format!("all:file:{}", f.display()), true).unwrap();
        assert_eq!(k.secret(), b"pass word");
        let e = Key::parse("all:file:/nonexistent/k", true).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/k"), "{e}");
        let keys = from_reader(&b"a\n\nb\r\n"[..]).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].secret(), b"b\r");
    }
}
