//! Pure text edits of bootloader files. Each editor finds the kernel command-line *regions* of
//! one file kind (grub.cfg `linux` lines, BLS `options`, grubenv `kernelopts`, a quoted
//! `GRUB_CMDLINE_LINUX`...) and hands each to a callback; [`fix_cmdline`] is the usual callback.
//! Everything outside the regions is kept byte for byte, and a region is only rewritten when
//! a word in it changes, so a second pass over an edited file returns it unchanged.
use crate::plan::BlockBus;
use std::collections::BTreeMap;

/// The serial console revirt adds; the last `console=` is /dev/console, so ttyS0 goes last.
pub const CONSOLE_ARGS: [&str; 2] = ["console=tty0", "console=ttyS0,115200"];

/// What to change on a kernel command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CmdlineFix {
    /// Whole-word replacements, quotes removed: "root=/dev/sda1" -> "root=UUID=...".
    pub replace: BTreeMap<String, String>,
    /// Arguments that must be present ("net.ifnames=0"): a word with the same key and another
    /// value is replaced in place, a missing one is appended.
    pub ensure: Vec<String>,
    /// Append [`CONSOLE_ARGS`] unless a serial console (console=ttyS*) is already set.
    pub console: bool,
}

/// Byte spans of the words of a command line; quotes group, a backslash escapes one byte.
pub fn word_spans(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        let mut quote: Option<u8> = None;
        while i < b.len() {
            match (quote, b[i]) {
                (None, c) if c.is_ascii_whitespace() => break,
                (None, b'"' | b'\'') => quote = Some(b[i]),
                (Some(q), c) if c == q => quote = None,
                (Some(b'\''), _) => {}
                (_, b'\\') => i += 1,
                _ => {}
            }
            i += 1;
        }
        out.push((start, i.min(b.len())));
    }
    out
}

/// A word without its quoting.
pub fn unquote(w: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut esc = false;
    for c in w.chars() {
        if esc {
            out.push(c);
            esc = false;
            continue;
        }
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), c) => out.push(c),
            (_, '\\') => esc = true,
            (Some('"'), '"') => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (_, c) => out.push(c),
        }
    }
    out
}

/// The unquoted words of a command line.
pub fn words(s: &str) -> Vec<String> {
    word_spans(s)
        .into_iter()
        .map(|(a, b)| unquote(&s[a..b]))
        .collect()
}

fn key(w: &str) -> &str {
    w.split_once('=').map(|(k, _)| k).unwrap_or(w)
}

/// Arguments `fix` still has to append to a command line that (with its scope) holds `present`.
pub fn missing_args(fix: &CmdlineFix, present: &[String]) -> Vec<String> {
    let mut out = vec![];
    for e in &fix.ensure {
        let found = if e.contains('=') {
            present.iter().any(|w| w.contains('=') && key(w) == key(e))
        } else {
            present.iter().any(|w| w == e)
        };
        if !found {
            out.push(e.clone());
        }
    }
    if fix.console && !present.iter().any(|w| w.starts_with("console=ttyS")) {
        let vt = present.iter().any(|w| {
            w.strip_prefix("console=tty")
                .and_then(|r| r.chars().next())
                .is_some_and(|c| c.is_ascii_digit())
        });
        if !vt {
            out.push(CONSOLE_ARGS[0].into());
        }
        out.push(CONSOLE_ARGS[1].into());
    }
    out
}

/// Applies `fix` to one command-line region. `scope` holds the words of other regions that
/// count as "already present" (GRUB_CMDLINE_LINUX_DEFAULT for GRUB_CMDLINE_LINUX); with
/// `append` false nothing is added, only replaced. Spacing and untouched words are kept.
pub fn fix_cmdline(region: &str, fix: &CmdlineFix, scope: &[String], append: bool) -> String {
    let spans = word_spans(region);
    let mut out = String::new();
    let mut last = 0;
    let mut present: Vec<String> = scope.to_vec();
    for (a, b) in &spans {
        let w = unquote(&region[*a..*b]);
        let new = fix.replace.get(&w).cloned().or_else(|| {
            fix.ensure
                .iter()
                .find(|e| e.contains('=') && w.contains('=') && key(e) == key(&w) && **e != w)
                .cloned()
        });
        out.push_str(&region[last..*a]);
        match new {
            Some(n) => out.push_str(&n),
            None => out.push_str(&region[*a..*b]),
        }
        last = *b;
        present.push(w);
    }
    if append {
        let add = missing_args(fix, &present);
        if !add.is_empty() {
            if !spans.is_empty() {
                out.push(' ');
            }
            out.push_str(&add.join(" "));
        }
    }
    out.push_str(&region[last..]);
    out
}

/// Splits a line into its body and its line ending ("\n", "\r\n" or "").
fn split_eol(line: &str) -> (&str, &str) {
    if let Some(b) = line.strip_suffix("\r\n") {
        (b, "\r\n")
    } else if let Some(b) = line.strip_suffix('\n') {
        (b, "\n")
    } else {
        (line, "")
    }
}

/// First word of a line and the byte offset just after it.
fn first_word(body: &str) -> Option<(&str, usize)> {
    let s = body.len() - body.trim_start().len();
    let rest = &body[s..];
    let e = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    (e > 0).then(|| (&rest[..e], s + e))
}

/// Rewrites the arguments after `cmd <kernel>` on lines whose first word is in `cmds`.
fn map_kernel_lines(text: &str, cmds: &[&str], f: &mut dyn FnMut(&str, bool) -> String) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let (body, eol) = split_eol(line);
        let Some((w, after_cmd)) = first_word(body) else {
            out.push_str(line);
            continue;
        };
        // A `\` continuation would put the rest of the command on the next line: leave it.
        if !cmds.contains(&w) || body.trim_end().ends_with('\\') {
            out.push_str(line);
            continue;
        }
        let rest = &body[after_cmd..];
        let Some(&(_, kend)) = word_spans(rest).first() else {
            out.push_str(line);
            continue;
        };
        let region = &rest[kend..];
        let new = f(region, true);
        out.push_str(&body[..after_cmd + kend]);
        if !new.is_empty() && !new.starts_with(char::is_whitespace) {
            out.push(' ');
        }
        out.push_str(&new);
        out.push_str(eol);
    }
    out
}

/// grub.cfg: `linux`/`linux16`/`linuxefi` arguments and RHEL 8's `set kernelopts="..."`
/// fallback (used when grubenv has none).
pub fn map_grub_cfg(text: &str, f: &mut dyn FnMut(&str, bool) -> String) -> String {
    let once = map_kernel_lines(text, &["linux", "linux16", "linuxefi"], f);
    let mut out = String::with_capacity(once.len());
    for line in once.split_inclusive('\n') {
        let (full, eol) = split_eol(line);
        let body = full.trim_end();
        let trailing = &full[body.len()..];
        let t = body.trim_start();
        let t2 = t.strip_prefix("set").filter(|r| r.starts_with([' ', '\t']));
        let assign = t2.map(str::trim_start).unwrap_or(t);
        match assign.strip_prefix("kernelopts=\"") {
            Some(v) if v.ends_with('"') && !v[..v.len() - 1].contains('"') => {
                let start = body.len() - v.len();
                let inner = &v[..v.len() - 1];
                out.push_str(&body[..start]);
                out.push_str(&f(inner, true));
                out.push('"');
                out.push_str(trailing);
                out.push_str(eol);
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// GRUB Legacy menu.lst / grub.conf: `kernel <path> args`.
pub fn map_legacy(text: &str, f: &mut dyn FnMut(&str, bool) -> String) -> String {
    map_kernel_lines(text, &["kernel"], f)
}

/// A BLS entry: every `options` line (several are concatenated); only the last one gets
/// additions.
pub fn map_bls(text: &str, f: &mut dyn FnMut(&str, bool) -> String) -> String {
    let is_opts = |l: &str| first_word(split_eol(l).0).is_some_and(|(w, _)| w == "options");
    let last = text
        .split_inclusive('\n')
        .enumerate()
        .filter(|(_, l)| is_opts(l))
        .map(|(i, _)| i)
        .last();
    let mut out = String::with_capacity(text.len() + 64);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if !is_opts(line) {
            out.push_str(line);
            continue;
        }
        let (body, eol) = split_eol(line);
        let Some((_, e)) = first_word(body) else {
            out.push_str(line);
            continue;
        };
        let new = f(&body[e..], Some(i) == last);
        out.push_str(&body[..e]);
        if !new.is_empty() && !new.starts_with(char::is_whitespace) {
            out.push(' ');
        }
        out.push_str(&new);
        out.push_str(eol);
    }
    out
}

/// /etc/kernel/cmdline (RHEL 9 kernel-install, systemd): one command line.
pub fn map_kernel_cmdline(text: &str, f: &mut dyn FnMut(&str, bool) -> String) -> String {
    let (first, rest) = match text.find('\n') {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let mut out = f(first, true);
    out.push_str(rest);
    out
}

/// A shell variable assignment found in a file: name and the byte span of its value's inner
/// text (inside the quotes), and whether the value was quoted.
#[derive(Debug, Clone, PartialEq)]
pub struct Assign {
    pub name: String,
    pub inner: (usize, usize),
    pub quoted: bool,
}

/// `NAME=value` assignments at line starts (optionally after `export`), as a shell script
/// such as /etc/default/grub or /etc/sysconfig/bootloader has them. Quoted values may span
/// lines.
pub fn assignments(text: &str) -> Vec<Assign> {
    let b = text.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        let line_start = i;
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if text[i..].starts_with("export ") {
            i += 7;
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
        }
        let ns = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        let mut next = i;
        if i > ns && !b[ns].is_ascii_digit() && b.get(i) == Some(&b'=') {
            let name = text[ns..i].to_string();
            let v = i + 1;
            match b.get(v) {
                Some(&q @ (b'"' | b'\'')) => {
                    let mut j = v + 1;
                    while j < b.len() && b[j] != q {
                        if q == b'"' && b[j] == b'\\' {
                            j += 1;
                        }
                        j += 1;
                    }
                    if j < b.len() {
                        out.push(Assign {
                            name,
                            inner: (v + 1, j),
                            quoted: true,
                        });
                        next = j + 1;
                    } else {
                        next = b.len();
                    }
                }
                _ => {
                    let mut j = v;
                    while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b';' && b[j] != b'#'
                    {
                        j += 1;
                    }
                    out.push(Assign {
                        name,
                        inner: (v, j),
                        quoted: false,
                    });
                    next = j;
                }
            }
        }
        // On to the next line.
        i = next.max(line_start);
        while i < b.len() && b[i] != b'\n' {
            i += 1;
        }
        i += 1;
    }
    out
}

/// Rewrites the values of the assignments whose names pass `names`; `f(name, value,
/// last_of_its_name)`. A bare value that gains a space is quoted.
pub fn map_assignments(
    text: &str,
    names: &dyn Fn(&str) -> bool,
    f: &mut dyn FnMut(&str, &str, bool) -> String,
) -> String {
    let all: Vec<Assign> = assignments(text)
        .into_iter()
        .filter(|a| names(&a.name))
        .collect();
    let mut out = String::with_capacity(text.len() + 64);
    let mut last = 0;
    for (k, a) in all.iter().enumerate() {
        let is_last = !all[k + 1..].iter().any(|o| o.name == a.name);
        let (s, e) = a.inner;
        let old = &text[s..e];
        let new = f(&a.name, old, is_last);
        out.push_str(&text[last..s]);
        if !a.quoted && new != old && new.contains(char::is_whitespace) {
            out.push('"');
            out.push_str(&new);
            out.push('"');
        } else {
            out.push_str(&new);
        }
        last = e;
    }
    out.push_str(&text[last..]);
    out
}

/// Sets every `GRUB_DISABLE_LINUX_UUID=true` to `false`, so the next grub-mkconfig writes
/// root=UUID= instead of the bus-dependent device name (Debian guests converted by
/// virt-v2v 2.2 keep root=/dev/sda1 exactly because of this setting).
pub fn enable_linux_uuid(text: &str) -> String {
    map_assignments(text, &|n| n == "GRUB_DISABLE_LINUX_UUID", &mut |_, v, _| {
        if v == "true" {
            "false".into()
        } else {
            v.into()
        }
    })
}

/// grubenv: rewrites the `kernelopts=` value, keeping the block's size (grub reads and writes
/// exactly the original byte count, 1024, padded with '#'). None when the new text no longer fits.
pub fn edit_grubenv(text: &str, f: &mut dyn FnMut(&str, bool) -> String) -> Option<String> {
    let pad_start = text
        .rfind('\n')
        .map(|i| i + 1)
        .filter(|&i| text[i..].bytes().all(|c| c == b'#'))
        .unwrap_or(text.len());
    let body = &text[..pad_start];
    let mut out = String::with_capacity(text.len());
    for line in body.split_inclusive('\n') {
        match line.strip_prefix("kernelopts=") {
            Some(v) => {
                let (v, eol) = split_eol(v);
                out.push_str("kernelopts=");
                out.push_str(&f(v, true));
                out.push_str(eol);
            }
            None => out.push_str(line),
        }
    }
    if out == body {
        return Some(text.to_string());
    }
    let pad = text.len().checked_sub(out.len())?;
    out.push_str(&"#".repeat(pad));
    Some(out)
}

/// Disk name letters for a 0-based index: 0 -> "a", 25 -> "z", 26 -> "aa".
pub fn disk_letters(mut n: usize) -> String {
    let mut s = vec![];
    loop {
        s.push(b'a' + (n % 26) as u8);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

/// Disk index of a whole-disk kernel name or by-id/by-path link; None for anything else
/// (partitions, floppies, /dev/mapper).
fn whole_disk_index(dev: &str, bios_index: usize) -> Option<usize> {
    if dev.starts_with("/dev/disk/by-id/") || dev.starts_with("/dev/disk/by-path/") {
        return (!dev.contains("-part")).then_some(bios_index);
    }
    let rest = dev.strip_prefix("/dev/")?;
    for p in ["xvd", "sd", "hd", "vd"] {
        if let Some(l) = rest.strip_prefix(p) {
            if !l.is_empty() && l.bytes().all(|c| c.is_ascii_lowercase()) {
                let mut n = 0usize;
                for c in l.bytes() {
                    n = n * 26 + (c - b'a' + 1) as usize;
                }
                return Some(n - 1);
            }
        }
    }
    None
}

/// grub device.map: `(hdN) /dev/sda` -> the name the disk gets on the new bus (/dev/vda on
/// virtio-blk, /dev/sda on virtio-scsi). grub-install and grub-probe stop on a map naming
/// devices that do not exist.
pub fn edit_device_map(text: &str, bus: BlockBus) -> String {
    let prefix = match bus {
        BlockBus::VirtioBlk => "/dev/vd",
        BlockBus::VirtioScsi => "/dev/sd",
    };
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, eol) = split_eol(line);
        let spans = word_spans(body);
        let fixed = (|| {
            let &[(a0, b0), (a1, b1), ..] = spans.as_slice() else {
                return None;
            };
            let bios = body[a0..b0]
                .strip_prefix("(hd")?
                .strip_suffix(')')?
                .parse::<usize>()
                .ok()?;
            let idx = whole_disk_index(&body[a1..b1], bios)?;
            let new = format!("{prefix}{}", disk_letters(idx));
            (new != body[a1..b1]).then(|| format!("{}{new}{}", &body[..a1], &body[b1..]))
        })();
        match fixed {
            Some(f) => {
                out.push_str(&f);
                out.push_str(eol);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(pairs: &[(&str, &str)], ensure: &[&str], console: bool) -> CmdlineFix {
        CmdlineFix {
            replace: pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            ensure: ensure.iter().map(|s| s.to_string()).collect(),
            console,
        }
    }

    fn apply(f: &CmdlineFix) -> impl FnMut(&str, bool) -> String + '_ {
        move |r, append| fix_cmdline(r, f, &[], append)
    }

    #[test]
    fn words_keep_quotes_together() {
        assert_eq!(
            words(" a \"b c\" 'd e'f\\ g  "),
            ["a", "b c", "d ef g"].map(String::from)
        );
    }

    #[test]
    fn cmdline_replaces_in_place_and_appends_once() {
        let f = fix(
            &[("root=/dev/sda1", "root=UUID=u1")],
            &["net.ifnames=0"],
            true,
        );
        let once = fix_cmdline(" root=/dev/sda1 ro  quiet", &f, &[], true);
        assert_eq!(
            once,
            " root=UUID=u1 ro  quiet net.ifnames=0 console=tty0 console=ttyS0,115200"
        );
        assert_eq!(fix_cmdline(&once, &f, &[], true), once);
        // Another value of an ensured key is replaced where it stands, not duplicated.
        assert_eq!(
            fix_cmdline("net.ifnames=1 quiet", &f, &[], true),
            "net.ifnames=0 quiet console=tty0 console=ttyS0,115200"
        );
        assert_eq!(
            fix_cmdline("", &f, &[], true),
            "net.ifnames=0 console=tty0 console=ttyS0,115200"
        );
        assert_eq!(fix_cmdline(" ro ", &f, &[], false), " ro ");
    }

    #[test]
    fn console_respects_existing_serial_and_vt() {
        let f = fix(&[], &[], true);
        assert_eq!(
            fix_cmdline("quiet console=ttyS0", &f, &[], true),
            "quiet console=ttyS0"
        );
        assert_eq!(
            fix_cmdline("console=tty1", &f, &[], true),
            "console=tty1 console=ttyS0,115200"
        );
        // Present in another variable of the same file.
        assert_eq!(
            fix_cmdline("quiet", &f, &["console=ttyS1,9600".into()], true),
            "quiet"
        );
        assert_eq!(
            fix_cmdline("quiet", &fix(&[], &[], false), &[], true),
            "quiet"
        );
    }

    #[test]
    fn grub_cfg_linux_lines_and_kernelopts() {
        let t = "menuentry 'x' {\n\tlinux\t/boot/vmlinuz-6.1 root=/dev/sda1 ro  quiet\n\tinitrd\t/boot/initrd.img\n}\nmenuentry 'y' {\n  linux16 /vmlinuz\n}\nif [ -z \"${kernelopts}\" ]; then\n  set kernelopts=\"root=/dev/sda2 ro \"\nfi\n# linux /x root=/dev/sda1\n";
        let f = fix(
            &[
                ("root=/dev/sda1", "root=UUID=a"),
                ("root=/dev/sda2", "root=UUID=b"),
            ],
            &[],
            true,
        );
        let out = map_grub_cfg(t, &mut apply(&f));
        assert_eq!(out, "menuentry 'x' {\n\tlinux\t/boot/vmlinuz-6.1 root=UUID=a ro  quiet console=tty0 console=ttyS0,115200\n\tinitrd\t/boot/initrd.img\n}\nmenuentry 'y' {\n  linux16 /vmlinuz console=tty0 console=ttyS0,115200\n}\nif [ -z \"${kernelopts}\" ]; then\n  set kernelopts=\"root=UUID=b ro console=tty0 console=ttyS0,115200 \"\nfi\n# linux /x root=/dev/sda1\n");
        assert_eq!(map_grub_cfg(&out, &mut apply(&f)), out);
    }

    #[test]
    fn bls_additions_go_to_the_last_options_line() {
        let t = "title X\nlinux /vmlinuz\noptions root=/dev/sda2 ro\noptions resume=/dev/sda3\ngrub_class kernel";
        let f = fix(&[("resume=/dev/sda3", "resume=UUID=s")], &[], true);
        assert_eq!(
            map_bls(t, &mut apply(&f)),
            "title X\nlinux /vmlinuz\noptions root=/dev/sda2 ro\noptions resume=UUID=s console=tty0 console=ttyS0,115200\ngrub_class kernel"
        );
    }

    #[test]
    fn legacy_kernel_lines() {
        let t = "default=0\ntitle RHEL\n\troot (hd0,0)\n\tkernel /vmlinuz-2.6.32 ro root=/dev/sda2 rhgb quiet\n\tinitrd /initramfs.img\n";
        let f = fix(&[("root=/dev/sda2", "root=UUID=r")], &[], false);
        assert_eq!(
            map_legacy(t, &mut apply(&f)),
            "default=0\ntitle RHEL\n\troot (hd0,0)\n\tkernel /vmlinuz-2.6.32 ro root=UUID=r rhgb quiet\n\tinitrd /initramfs.img\n"
        );
    }

    #[test]
    fn shell_assignments_quoted_bare_multiline_and_export() {
        let t = "# GRUB_CMDLINE_LINUX=\"commented\"\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"a\n b\"\n  export GRUB_CMDLINE_LINUX_DEFAULT=quiet # c\nX='y'\n";
        let a = assignments(t);
        let names: Vec<&str> = a.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "GRUB_TIMEOUT",
                "GRUB_CMDLINE_LINUX",
                "GRUB_CMDLINE_LINUX_DEFAULT",
                "X"
            ]
        );
        assert_eq!(&t[a[1].inner.0..a[1].inner.1], "a\n b");
        assert_eq!(&t[a[2].inner.0..a[2].inner.1], "quiet");
        let out = map_assignments(t, &|n| n.starts_with("GRUB_CMDLINE"), &mut |_, v, _| {
            format!("{v} z")
        });
        assert_eq!(out, "# GRUB_CMDLINE_LINUX=\"commented\"\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"a\n b z\"\n  export GRUB_CMDLINE_LINUX_DEFAULT=\"quiet z\" # c\nX='y'\n");
    }

    #[test]
    fn disable_linux_uuid_flipped() {
        assert_eq!(
            enable_linux_uuid(
                "A=1\nGRUB_DISABLE_LINUX_UUID=true\nGRUB_DISABLE_LINUX_UUID=\"true\"\n"
            ),
            "A=1\nGRUB_DISABLE_LINUX_UUID=false\nGRUB_DISABLE_LINUX_UUID=\"false\"\n"
        );
        let t = "#GRUB_DISABLE_LINUX_UUID=true\nGRUB_DISABLE_LINUX_UUID=false\n";
        assert_eq!(enable_linux_uuid(t), t);
    }

    #[test]
    fn grubenv_keeps_its_size() {
        let head = "# GRUB Environment Block\nsaved_entry=x\nkernelopts=root=/dev/sda1 ro\n";
        let t = format!("{head}{}", "#".repeat(1024 - head.len()));
        let f = fix(&[("root=/dev/sda1", "root=UUID=abcd")], &[], false);
        let out = edit_grubenv(&t, &mut apply(&f)).unwrap();
        assert_eq!(out.len(), 1024);
        assert!(out.starts_with(
            "# GRUB Environment Block\nsaved_entry=x\nkernelopts=root=UUID=abcd ro\n###"
        ));
        assert_eq!(edit_grubenv(&out, &mut apply(&f)).unwrap(), out);
        // No room left: refused rather than truncated.
        let full = "kernelopts=root=/dev/sda1\n##";
        let f = fix(&[("root=/dev/sda1", "root=UUID=0123-4567")], &[], false);
        assert_eq!(edit_grubenv(full, &mut apply(&f)), None);
    }

    #[test]
    fn device_map_follows_the_bus() {
        let t = "(fd0)\t/dev/fd0\n(hd0)\t/dev/sda\n(hd1)   /dev/disk/by-id/ata-VBOX_HARDDISK_VB1234\n(hd2) /dev/hdc\n";
        assert_eq!(
            edit_device_map(t, BlockBus::VirtioBlk),
            "(fd0)\t/dev/fd0\n(hd0)\t/dev/vda\n(hd1)   /dev/vdb\n(hd2) /dev/vdc\n"
        );
        let scsi = edit_device_map(t, BlockBus::VirtioScsi);
        assert_eq!(
            scsi,
            "(fd0)\t/dev/fd0\n(hd0)\t/dev/sda\n(hd1)   /dev/sdb\n(hd2) /dev/sdc\n"
        );
        assert_eq!(edit_device_map(&scsi, BlockBus::VirtioScsi), scsi);
        assert_eq!(disk_letters(27), "ab");
    }

    #[test]
    fn kernel_cmdline_file() {
        let f = fix(&[], &[], true);
        assert_eq!(
            map_kernel_cmdline("root=UUID=x ro\n", &mut apply(&f)),
            "root=UUID=x ro console=tty0 console=ttyS0,115200\n"
        );
    }
}
