//! GRUB Legacy (0.97) menu.lst / grub.conf as shipped by RHEL 5/6 and SLES 10/11: `title`
//! starts an entry; `root`, `kernel`, `initrd` belong to it; `default N` or `default saved`.
use super::grub2::entry;
use crate::types::BootEntry;

#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub entries: Vec<BootEntry>,
    /// Raw `default` value ("0", "saved").
    pub default: Option<String>,
}

/// Keyword and argument: grub legacy accepts "key value" and "key=value".
fn split(l: &str) -> (&str, &str) {
    let end = l
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(l.len());
    let rest = l[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    (&l[..end], rest)
}

pub(super) fn parse(text: &str, file: &str) -> Parsed {
    let mut p = Parsed::default();
    for (n, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (k, v) = split(l);
        match k {
            "title" => p.entries.push(entry(
                v.to_string(),
                None,
                None,
                String::new(),
                format!("{file}:{}", n + 1),
            )),
            "default" if p.entries.is_empty() => p.default = Some(v.to_string()),
            "kernel" => {
                if let Some(e) = p.entries.last_mut() {
                    let (kernel, args) = v.split_once(char::is_whitespace).unwrap_or((v, ""));
                    let cmdline = args.split_whitespace().collect::<Vec<_>>().join(" ");
                    let title = std::mem::take(&mut e.title);
                    let source = std::mem::take(&mut e.source);
                    *e = entry(
                        title,
                        Some(kernel.to_string()),
                        e.initrd.take(),
                        cmdline,
                        source,
                    );
                }
            }
            "initrd" => {
                if let Some(e) = p.entries.last_mut() {
                    e.initrd = Some(v.to_string());
                }
            }
            _ => {}
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sles11_style_key_space_value() {
        let p = parse(
            "default 1\ntimeout 8\ntitle SLES 11\n    root (hd0,1)\n    kernel /boot/vmlinuz root=/dev/sda2 resume=/dev/sda1 splash=silent\n    initrd /boot/initrd\ntitle Failsafe\n    kernel /boot/vmlinuz root=/dev/sda2 x11failsafe\n",
            "/boot/grub/menu.lst",
        );
        assert_eq!(p.default.as_deref(), Some("1"));
        assert_eq!(p.entries.len(), 2);
        assert_eq!(p.entries[0].kernel.as_deref(), Some("/boot/vmlinuz"));
        assert_eq!(p.entries[0].resume.as_deref(), Some("/dev/sda1"));
        assert_eq!(p.entries[0].source, "/boot/grub/menu.lst:3");
        assert_eq!(p.entries[1].initrd, None);
    }
}
