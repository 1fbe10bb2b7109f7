//! GRUB 2 grub.cfg reading: a tokenizer for the grub script subset that grub-mkconfig emits
//! (quotes, escapes, `$var`/`${var}`, `;`, `{ }` blocks), menuentry/submenu trees, the
//! `set default=` spec, `load_env`/grubenv, `blscfg` (Fedora/RHEL 8+ Boot Loader Spec entries),
//! and `configfile`/`source` in UEFI stubs. `if` conditions are not evaluated: assignments in
//! both branches apply in file order, except that grubenv values loaded by `load_env` win (RHEL 8
//! only sets `kernelopts` in grub.cfg `if [ -z "${kernelopts}" ]`).
use crate::types::BootEntry;
use std::cmp::Ordering;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Lit(String),
    Var(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(Vec<Seg>),
    Open,
    Close,
    Sep,
}

fn tokenize(text: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = text.chars().collect();
    let mut out = vec![];
    let mut segs: Vec<Seg> = vec![];
    let mut quoted = false;
    let mut word_line = 1;
    let mut line = 1;
    let mut i = 0;
    fn lit(segs: &mut Vec<Seg>, ch: char) {
        if let Some(Seg::Lit(s)) = segs.last_mut() {
            s.push(ch);
        } else {
            segs.push(Seg::Lit(ch.to_string()));
        }
    }
    fn end(out: &mut Vec<(Tok, usize)>, segs: &mut Vec<Seg>, quoted: &mut bool, line: usize) {
        if segs.is_empty() && !*quoted {
            return;
        }
        let t = match (segs.as_slice(), *quoted) {
            ([Seg::Lit(s)], false) if s == "{" => Tok::Open,
            ([Seg::Lit(s)], false) if s == "}" => Tok::Close,
            _ => Tok::Word(std::mem::take(segs)),
        };
        segs.clear();
        *quoted = false;
        out.push((t, line));
    }
    // `$name` / `${name}` at c[*i] == '$'.
    fn var(c: &[char], i: &mut usize, segs: &mut Vec<Seg>) {
        let braced = c.get(*i + 1) == Some(&'{');
        let mut j = *i + 1 + usize::from(braced);
        let mut name = String::new();
        while j < c.len() && (c[j].is_ascii_alphanumeric() || c[j] == '_') {
            name.push(c[j]);
            j += 1;
        }
        if name.is_empty() && j < c.len() && "?#@*".contains(c[j]) {
            name.push(c[j]);
            j += 1;
        }
        if name.is_empty() || (braced && c.get(j) != Some(&'}')) {
            lit(segs, '$');
            *i += 1;
            return;
        }
        *i = j + usize::from(braced);
        segs.push(Seg::Var(name));
    }
    while i < c.len() {
        let ch = c[i];
        if segs.is_empty() && !quoted {
            word_line = line;
        }
        match ch {
            '\n' | ';' => {
                end(&mut out, &mut segs, &mut quoted, word_line);
                out.push((Tok::Sep, line));
                if ch == '\n' {
                    line += 1;
                }
                i += 1;
            }
            ' ' | '\t' | '\r' => {
                end(&mut out, &mut segs, &mut quoted, word_line);
                i += 1;
            }
            '#' if segs.is_empty() && !quoted => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '\\' => {
                match c.get(i + 1) {
                    Some('\n') => line += 1,
                    Some(&n) => lit(&mut segs, n),
                    None => {}
                }
                i += 2;
            }
            '\'' => {
                quoted = true;
                i += 1;
                while i < c.len() && c[i] != '\'' {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    lit(&mut segs, c[i]);
                    i += 1;
                }
                i += 1;
            }
            '"' => {
                quoted = true;
                i += 1;
                while i < c.len() && c[i] != '"' {
                    match c[i] {
                        '\\' if matches!(c.get(i + 1), Some('$' | '"' | '\\')) => {
                            lit(&mut segs, c[i + 1]);
                            i += 2;
                        }
                        '\\' if c.get(i + 1) == Some(&'\n') => {
                            line += 1;
                            i += 2;
                        }
                        '$' => var(&c, &mut i, &mut segs),
                        ch => {
                            if ch == '\n' {
                                line += 1;
                            }
                            lit(&mut segs, ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            '$' => var(&c, &mut i, &mut segs),
            _ => {
                lit(&mut segs, ch);
                i += 1;
            }
        }
    }
    end(&mut out, &mut segs, &mut quoted, word_line);
    out
}

/// A command: its words, whether it opens a `{` block, its line. `None` words = a `}`.
struct Cmd {
    words: Vec<Vec<Seg>>,
    opens: bool,
    close: bool,
    line: usize,
}

fn commands(toks: Vec<(Tok, usize)>) -> Vec<Cmd> {
    let mut out = vec![];
    let mut words = vec![];
    let mut line = 0;
    for (t, l) in toks {
        match t {
            Tok::Word(w) => {
                if words.is_empty() {
                    line = l;
                }
                words.push(w);
            }
            Tok::Sep | Tok::Open | Tok::Close => {
                let opens = t == Tok::Open;
                if !words.is_empty() || opens {
                    out.push(Cmd {
                        words: std::mem::take(&mut words),
                        opens,
                        close: false,
                        line: if line == 0 { l } else { line },
                    });
                }
                if t == Tok::Close {
                    out.push(Cmd {
                        words: vec![],
                        opens: false,
                        close: true,
                        line: l,
                    });
                }
                line = 0;
            }
        }
    }
    if !words.is_empty() {
        out.push(Cmd {
            words,
            opens: false,
            close: false,
            line,
        });
    }
    out
}

fn expand(w: &[Seg], vars: &HashMap<String, String>) -> String {
    w.iter()
        .map(|s| match s {
            Seg::Lit(l) => l.as_str(),
            // grub-mkconfig sets this to "--id" when grub supports it, which every grub 2 in
            // a supported guest does; the `else` branch would otherwise erase the ids.
            Seg::Var(v) if v == "menuentry_id_option" => "--id",
            Seg::Var(v) => vars.get(v).map(String::as_str).unwrap_or(""),
        })
        .collect()
}

/// `$var`/`${var}` substitution in a plain string (BLS `options` lines).
pub(super) fn expand_str(s: &str, vars: &HashMap<String, String>) -> String {
    let toks = tokenize(s);
    let words: Vec<String> = toks
        .into_iter()
        .filter_map(|(t, _)| match t {
            Tok::Word(w) => Some(expand(&w, vars)),
            _ => None,
        })
        .collect();
    words
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Menu tree: entries by index into the flat entry list, submenus with their children.
#[derive(Debug, Clone)]
pub(super) enum Item {
    Entry(usize),
    Submenu {
        title: String,
        id: Option<String>,
        items: Vec<Item>,
    },
}

/// One Boot Loader Specification entry (/boot/loader/entries/*.conf).
#[derive(Debug, Clone, Default)]
pub(super) struct BlsEntry {
    pub stem: String,
    pub file: String,
    pub title: Option<String>,
    pub version: Option<String>,
    pub linux: Option<String>,
    pub initrd: Vec<String>,
    pub options: String,
    pub line: usize,
}

pub(super) fn parse_bls(text: &str, file: &str, stem: &str) -> BlsEntry {
    let mut e = BlsEntry {
        stem: stem.to_string(),
        file: file.to_string(),
        line: 1,
        ..Default::default()
    };
    let mut opts = vec![];
    for (n, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.starts_with('#') {
            continue;
        }
        let (k, v) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        let v = v.trim().to_string();
        match k {
            "title" => {
                e.title = Some(v);
                e.line = n + 1;
            }
            "version" => e.version = Some(v),
            "linux" => e.linux = Some(v),
            "initrd" => e.initrd.extend(v.split_whitespace().map(String::from)),
            "options" => opts.push(v),
            _ => {}
        }
    }
    e.options = opts.join(" ");
    e
}

/// rpmvercmp-like ordering: digit runs compare numerically and beat letter runs.
pub(super) fn vercmp(a: &str, b: &str) -> Ordering {
    fn segs(s: &str) -> Vec<(bool, &str)> {
        let mut out = vec![];
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if !b[i].is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let digit = b[i].is_ascii_digit();
            let st = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() && b[i].is_ascii_digit() == digit {
                i += 1;
            }
            out.push((digit, &s[st..i]));
        }
        out
    }
    let (x, y) = (segs(a), segs(b));
    for ((dx, sx), (dy, sy)) in x.iter().zip(y.iter()) {
        let o = match (dx, dy) {
            (true, true) => {
                let (tx, ty) = (sx.trim_start_matches('0'), sy.trim_start_matches('0'));
                tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty))
            }
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => sx.cmp(sy),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    x.len().cmp(&y.len())
}

/// Newest first, as Fedora's blscfg lists them.
pub(super) fn sort_bls(v: &mut [BlsEntry]) {
    v.sort_by(|a, b| {
        let va = a.version.as_deref().unwrap_or(&a.stem);
        let vb = b.version.as_deref().unwrap_or(&b.stem);
        vercmp(vb, va).then_with(|| b.stem.cmp(&a.stem))
    });
}

/// grubenv: "# GRUB Environment Block" then key=value lines, padded with '#'.
pub(super) fn parse_grubenv(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("\\n", "\n").replace("\\\\", "\\")))
        .collect()
}

/// Value of the last `key=` on a kernel command line.
pub(super) fn cmdline_value(cmdline: &str, key: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .map(String::from)
}

pub(super) fn entry(
    title: String,
    kernel: Option<String>,
    initrd: Option<String>,
    cmdline: String,
    source: String,
) -> BootEntry {
    BootEntry {
        root: cmdline_value(&cmdline, "root"),
        resume: cmdline_value(&cmdline, "resume"),
        title,
        kernel,
        initrd,
        cmdline,
        source,
        ..Default::default()
    }
}

#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub entries: Vec<BootEntry>,
    pub items: Vec<Item>,
    /// Expanded `set default=` value (None when the file never sets it).
    pub default_spec: Option<String>,
    /// `blscfg` ran (or BLS was forced on by GRUB_ENABLE_BLSCFG=true).
    pub bls: bool,
    /// Index in `entries` of the first BLS entry (the newest).
    pub first_bls: Option<usize>,
    /// Target of a top-level `configfile`/`source` (UEFI stubs), expanded.
    pub redirect: Option<String>,
}

enum Frame {
    Menu(usize),
    Sub {
        title: String,
        id: Option<String>,
        items: Vec<Item>,
    },
    Func,
    Other,
}

/// Title and `--id` of a menuentry/submenu from its arguments.
fn title_and_id(args: &[String]) -> (String, Option<String>) {
    let mut title = None;
    let mut id = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if let Some(v) = a.strip_prefix("--id=") {
            id = Some(v.to_string());
        } else if a == "--id" {
            id = args.get(i + 1).cloned();
            i += 1;
        } else if a == "--unrestricted" {
        } else if a.starts_with("--") {
            i += 1; // --class X, --users X, --hotkey X
        } else if title.is_none() {
            title = Some(a.clone());
        }
        i += 1;
    }
    (title.unwrap_or_default(), id.filter(|s| !s.is_empty()))
}

/// Parses grub.cfg `text` (guest path `file`). `grubenv` is what `load_env` loads; `bls` are the
/// entries `blscfg` expands to (sorted newest first); with `force_bls` they are listed first
/// even if the file has no `blscfg` line.
/// Deepest block nesting whose menu entries are read (real configs nest 2-3 levels).
const MAX_BLOCK_DEPTH: usize = 64;

pub(super) fn parse_cfg(
    text: &str,
    file: &str,
    grubenv: &HashMap<String, String>,
    bls: &[BlsEntry],
    force_bls: bool,
) -> Parsed {
    let mut p = Parsed::default();
    let mut vars: HashMap<String, String> = HashMap::new();
    let mut env_loaded = false;
    let mut stack: Vec<Frame> = vec![];
    let mut top: Vec<Item> = vec![];

    fn level<'a>(stack: &'a mut [Frame], top: &'a mut Vec<Item>) -> &'a mut Vec<Item> {
        for f in stack.iter_mut().rev() {
            if let Frame::Sub { items, .. } = f {
                return items;
            }
        }
        top
    }
    let add_bls =
        |p: &mut Parsed, items: &mut Vec<Item>, vars: &HashMap<String, String>, at_front: bool| {
            let mut new = vec![];
            for b in bls {
                let cmdline = expand_str(&b.options, vars);
                let initrd: Vec<String> = b
                    .initrd
                    .iter()
                    .map(|i| expand_str(i, vars))
                    .filter(|i| !i.is_empty())
                    .collect();
                let mut e = entry(
                    b.title.clone().unwrap_or_else(|| b.stem.clone()),
                    b.linux.clone(),
                    (!initrd.is_empty()).then(|| initrd.join(" ")),
                    cmdline,
                    format!("{}:{}", b.file, b.line),
                );
                e.id = Some(b.stem.clone());
                p.first_bls.get_or_insert(p.entries.len());
                new.push(Item::Entry(p.entries.len()));
                p.entries.push(e);
            }
            if at_front {
                new.append(items);
                *items = new;
            } else {
                items.append(&mut new);
            }
            p.bls = true;
        };

    // Blocks opened past MAX_BLOCK_DEPTH are only counted: a tenant's grub.cfg can nest without
    // end (issue #8), and both the item tree and the per-command stack scans grow with depth.
    let mut too_deep = 0usize;
    for cmd in commands(tokenize(text)) {
        if too_deep > 0 || (cmd.opens && stack.len() >= MAX_BLOCK_DEPTH) {
            if cmd.opens {
                too_deep += 1;
            } else if cmd.close {
                too_deep -= 1;
            }
            continue;
        }
        if cmd.close {
            match stack.pop() {
                Some(Frame::Menu(idx)) => level(&mut stack, &mut top).push(Item::Entry(idx)),
                Some(Frame::Sub { title, id, items }) => {
                    level(&mut stack, &mut top).push(Item::Submenu { title, id, items })
                }
                _ => {}
            }
            continue;
        }
        // `if ..; then set x=y; fi` on one line: the keyword starts the command.
        let skip = usize::from(
            cmd.words.len() > 1
                && matches!(cmd.words[0].as_slice(), [Seg::Lit(k)] if matches!(k.as_str(), "then" | "else" | "do")),
        );
        let raw_words = &cmd.words[skip..];
        let words: Vec<String> = raw_words.iter().map(|w| expand(w, &vars)).collect();
        let first = words.first().map(String::as_str).unwrap_or("");
        let in_func = stack.iter().any(|f| matches!(f, Frame::Func));
        if cmd.opens {
            let frame = match first {
                _ if in_func => Frame::Other,
                "menuentry" => {
                    let (title, id) = title_and_id(&words[1..]);
                    let mut e = entry(
                        title,
                        None,
                        None,
                        String::new(),
                        format!("{file}:{}", cmd.line),
                    );
                    e.id = id;
                    e.submenu = stack.iter().rev().find_map(|f| match f {
                        Frame::Sub { title, .. } => Some(title.clone()),
                        _ => None,
                    });
                    p.entries.push(e);
                    Frame::Menu(p.entries.len() - 1)
                }
                "submenu" => {
                    let (title, id) = title_and_id(&words[1..]);
                    Frame::Sub {
                        title,
                        id,
                        items: vec![],
                    }
                }
                "function" => Frame::Func,
                _ => Frame::Other,
            };
            stack.push(frame);
            continue;
        }
        if in_func {
            continue;
        }
        if let Some(Frame::Menu(idx)) = stack.last() {
            let e = &mut p.entries[*idx];
            match first {
                "linux" | "linux16" | "linuxefi" => {
                    e.kernel = words.get(1).cloned();
                    e.cmdline = words
                        .get(2..)
                        .unwrap_or_default()
                        .join(" ")
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    e.root = cmdline_value(&e.cmdline, "root");
                    e.resume = cmdline_value(&e.cmdline, "resume");
                }
                "initrd" | "initrd16" | "initrdefi" => {
                    let v: Vec<&str> = words[1..]
                        .iter()
                        .flat_map(|w| w.split_whitespace())
                        .collect();
                    e.initrd = (!v.is_empty()).then(|| v.join(" "));
                }
                _ => {}
            }
            continue;
        }
        // Top level (or inside a submenu / if block).
        let assign = if first == "set" {
            words.get(1).map(|_| 1)
        } else {
            Some(0)
        };
        if let Some(wi) = assign {
            let raw = raw_words.get(wi);
            if let Some((k, v)) = words.get(wi).and_then(|w| w.split_once('=')) {
                let valid =
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if valid && (wi == 1 || words.len() == 1) {
                    let refs_next =
                        raw.is_some_and(|r| r.iter().any(|s| *s == Seg::Var("next_entry".into())));
                    if k == "default" {
                        if !refs_next {
                            p.default_spec = Some(v.to_string());
                        }
                    } else if !(env_loaded && grubenv.contains_key(k)) {
                        vars.insert(k.to_string(), v.to_string());
                    }
                    continue;
                }
            }
        }
        match first {
            "load_env" => {
                env_loaded = true;
                vars.extend(grubenv.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            "blscfg" if !p.bls => {
                let lvl = level(&mut stack, &mut top);
                add_bls(&mut p, lvl, &vars, false);
            }
            "configfile" | "source" | "." if p.redirect.is_none() => {
                p.redirect = words.get(1).cloned()
            }
            _ => {}
        }
    }
    // Unclosed blocks (truncated file): keep what was read.
    while let Some(f) = stack.pop() {
        match f {
            Frame::Menu(idx) => level(&mut stack, &mut top).push(Item::Entry(idx)),
            Frame::Sub { title, id, items } => {
                level(&mut stack, &mut top).push(Item::Submenu { title, id, items })
            }
            _ => {}
        }
    }
    // A UEFI stub that only hands over to another config gets no forced BLS entries.
    let stub = p.entries.is_empty() && p.redirect.is_some();
    if force_bls && !p.bls && !bls.is_empty() && !stub {
        add_bls(&mut p, &mut top, &vars, true);
    }
    p.items = top;
    p
}

/// Index of the entry a grub `default` spec selects: a number, a title or id, or a
/// `>`-separated path through submenus. Empty means the first item.
pub(super) fn resolve_default(items: &[Item], entries: &[BootEntry], spec: &str) -> Option<usize> {
    let spec = spec.trim();
    let parts: Vec<&str> = if spec.is_empty() {
        vec!["0"]
    } else {
        spec.split('>').collect()
    };
    let mut level = items;
    for (n, part) in parts.iter().enumerate() {
        let item = match part.parse::<usize>() {
            Ok(i) => level.get(i)?,
            Err(_) => level.iter().find(|it| match it {
                Item::Entry(i) => entries
                    .get(*i)
                    .is_some_and(|e| e.title == *part || e.id.as_deref() == Some(part)),
                Item::Submenu { title, id, .. } => title == part || id.as_deref() == Some(part),
            })?,
        };
        match item {
            Item::Entry(i) => return (n + 1 == parts.len()).then_some(*i),
            Item::Submenu { items, .. } => level = items,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deeply_nested_blocks_do_not_overflow() {
        let n = 200_000;
        let mut t = "submenu 'x' {\n".repeat(n);
        t.push_str("menuentry 'deep' { linux /vmlinuz root=/dev/sda1 }\n");
        t.push_str(&"}\n".repeat(n));
        t.push_str("menuentry 'top' { linux /vmlinuz-2 root=/dev/sda1 }\n");
        let p = parse_cfg(&t, "grub.cfg", &HashMap::new(), &[], false);
        // The entry past the depth cap is not read; the one after the blocks still is.
        assert_eq!(p.entries.len(), 1, "{:?}", p.entries);
        assert_eq!(p.entries[0].title, "top");
        assert_eq!(p.items.len(), 2);
    }

    #[test]
    fn tokenizer_quotes_vars_and_blocks() {
        let t = tokenize("menuentry 'A b' --id x\"$v\" {\n  linux /k a=\\$b # c\n}\n");
        let words: Vec<&Tok> = t
            .iter()
            .map(|(t, _)| t)
            .filter(|t| **t != Tok::Sep)
            .collect();
        assert_eq!(words.len(), 9, "{words:?}");
        assert_eq!(*words[1], Tok::Word(vec![Seg::Lit("A b".into())]));
        assert_eq!(
            *words[3],
            Tok::Word(vec![Seg::Lit("x".into()), Seg::Var("v".into())])
        );
        assert_eq!(*words[4], Tok::Open);
        assert_eq!(*words[7], Tok::Word(vec![Seg::Lit("a=$b".into())]));
        assert_eq!(*words[8], Tok::Close);
    }

    #[test]
    fn versions_sort_like_rpm() {
        assert_eq!(vercmp("5.14.0-427.el9", "5.14.0-70.el9"), Ordering::Greater);
        assert_eq!(vercmp("6.1.0-10-amd64", "6.1.0-9-amd64"), Ordering::Greater);
        assert_eq!(vercmp("1.0", "1.0"), Ordering::Equal);
        assert_eq!(vercmp("1.0a", "1.0"), Ordering::Greater);
    }

    #[test]
    fn cmdline_values_last_wins() {
        assert_eq!(
            cmdline_value("root=/dev/sda1 ro root=UUID=x quiet", "root").as_deref(),
            Some("UUID=x")
        );
        assert_eq!(cmdline_value("rootflags=x", "root"), None);
    }
}
