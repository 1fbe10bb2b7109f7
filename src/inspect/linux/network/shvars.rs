//! Shell-style `KEY=value` files (RHEL/SUSE ifcfg, /etc/sysconfig/*, /etc/default/grub): the
//! subset of sh those files use — quoting, backslash escapes, line continuation, comments,
//! `export`, and `$VAR`/`${VAR}` expansion from earlier assignments. Anything that is not an
//! assignment (if/fi, commands) is skipped to the end of its line.
use std::collections::HashMap;

/// One assignment, with the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShVar {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// Parsed assignments in file order; `get` returns the last value of a name.
#[derive(Debug, Clone, Default)]
pub struct ShVars {
    pub vars: Vec<ShVar>,
}

impl ShVars {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|v| v.name == name)
            .map(|v| v.value.as_str())
    }
    pub fn line_of(&self, name: &str) -> Option<usize> {
        self.vars
            .iter()
            .rev()
            .find(|v| v.name == name)
            .map(|v| v.line)
    }
    /// Case-insensitive yes/true/on.
    pub fn is_yes(&self, name: &str) -> Option<bool> {
        self.get(name).map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "yes" | "true" | "on" | "y" | "1"
            )
        })
    }
}

/// Parses `text`; `env` supplies values for `$VAR` references to names not assigned earlier in
/// this text (e.g. /etc/default/grub when reading /etc/default/grub.d/*.cfg).
pub fn parse(text: &str, env: &HashMap<String, String>) -> ShVars {
    let mut known: HashMap<String, String> = env.clone();
    let mut out = ShVars::default();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        // Start of a simple command: skip blanks and separators.
        match chars[i] {
            '\n' => {
                line += 1;
                i += 1;
                continue;
            }
            ' ' | '\t' | '\r' | ';' => {
                i += 1;
                continue;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        let start_line = line;
        let mut name = read_name(&chars, &mut i);
        // `export X=..` and `if ..; then X=..; fi` still assign.
        while matches!(name.as_str(), "export" | "then" | "else" | "do")
            && i < chars.len()
            && (chars[i] == ' ' || chars[i] == '\t')
        {
            while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
                i += 1;
            }
            name = read_name(&chars, &mut i);
        }
        if !name.is_empty() && i < chars.len() && chars[i] == '=' {
            i += 1;
            let value = read_value(&chars, &mut i, &mut line, &known);
            known.insert(name.clone(), value.clone());
            out.vars.push(ShVar {
                name,
                value,
                line: start_line,
            });
        } else {
            skip_command(&chars, &mut i, &mut line);
        }
    }
    out
}

fn read_name(chars: &[char], i: &mut usize) -> String {
    let mut s = String::new();
    while *i < chars.len() && (chars[*i].is_ascii_alphanumeric() || chars[*i] == '_') {
        s.push(chars[*i]);
        *i += 1;
    }
    s
}

/// Skips the rest of a non-assignment command, honouring quotes so a quoted newline or `;`
/// does not end it early.
fn skip_command(chars: &[char], i: &mut usize, line: &mut usize) {
    while *i < chars.len() {
        match chars[*i] {
            '\n' | ';' => return,
            '\\' => {
                if chars.get(*i + 1) == Some(&'\n') {
                    *line += 1;
                }
                *i += 2;
            }
            q @ ('\'' | '"') => {
                *i += 1;
                while *i < chars.len() && chars[*i] != q {
                    if chars[*i] == '\n' {
                        *line += 1;
                    }
                    if q == '"' && chars[*i] == '\\' {
                        *i += 1;
                    }
                    *i += 1;
                }
                *i += 1;
            }
            _ => *i += 1,
        }
    }
}

fn read_value(
    chars: &[char],
    i: &mut usize,
    line: &mut usize,
    known: &HashMap<String, String>,
) -> String {
    let mut v = String::new();
    while *i < chars.len() {
        let c = chars[*i];
        match c {
            ' ' | '\t' | '\n' | ';' | '\r' => break,
            '\'' => {
                *i += 1;
                while *i < chars.len() && chars[*i] != '\'' {
                    if chars[*i] == '\n' {
                        *line += 1;
                    }
                    v.push(chars[*i]);
                    *i += 1;
                }
                *i += 1;
            }
            '"' => {
                *i += 1;
                while *i < chars.len() && chars[*i] != '"' {
                    match chars[*i] {
                        '\\' if matches!(chars.get(*i + 1), Some('$' | '`' | '"' | '\\')) => {
                            v.push(chars[*i + 1]);
                            *i += 2;
                        }
                        '\\' if chars.get(*i + 1) == Some(&'\n') => {
                            *line += 1;
                            *i += 2;
                        }
                        '$' => expand(chars, i, known, &mut v),
                        ch => {
                            if ch == '\n' {
                                *line += 1;
                            }
                            v.push(ch);
                            *i += 1;
                        }
                    }
                }
                *i += 1;
            }
            '\\' => {
                match chars.get(*i + 1) {
                    Some('\n') => *line += 1,
                    Some(&n) => v.push(n),
                    None => {}
                }
                *i += 2;
            }
            '$' => expand(chars, i, known, &mut v),
            _ => {
                v.push(c);
                *i += 1;
            }
        }
    }
    v
}

/// Expands `$NAME` or `${NAME}` at `chars[*i] == '$'`; a lone `$` stays literal.
fn expand(chars: &[char], i: &mut usize, known: &HashMap<String, String>, out: &mut String) {
    let braced = chars.get(*i + 1) == Some(&'{');
    let mut j = *i + 1 + usize::from(braced);
    let mut name = String::new();
    while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
        name.push(chars[j]);
        j += 1;
    }
    if name.is_empty() || (braced && chars.get(j) != Some(&'}')) {
        out.push('$');
        *i += 1;
        return;
    }
    if braced {
        j += 1;
    }
    if let Some(v) = known.get(&name) {
        out.push_str(v);
    }
    *i = j;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_comments_continuation_and_expansion() {
        let text = "# comment\nBOOTPROTO='dhcp'\nexport IPADDR=\"10.0.0.5\" # trailing\n\
                    A=one\\\ntwo\nB=\"$A ${IPADDR} \\$x\"\nif [ -f x ]; then C=3; fi\n\
                    D=\"multi\nline\"\nE=after\n";
        let v = parse(text, &HashMap::new());
        assert_eq!(v.get("BOOTPROTO"), Some("dhcp"));
        assert_eq!(v.get("IPADDR"), Some("10.0.0.5"));
        assert_eq!(v.line_of("IPADDR"), Some(3));
        assert_eq!(v.get("A"), Some("onetwo"));
        assert_eq!(v.get("B"), Some("onetwo 10.0.0.5 $x"));
        assert_eq!(v.get("C"), Some("3"));
        assert_eq!(v.get("D"), Some("multi\nline"));
        assert_eq!(v.line_of("E"), Some(10));
    }

    #[test]
    fn env_supplies_earlier_values() {
        let mut env = HashMap::new();
        env.insert("GRUB_CMDLINE_LINUX".to_string(), "quiet".to_string());
        let v = parse(
            "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX console=ttyS0\"",
            &env,
        );
        assert_eq!(v.get("GRUB_CMDLINE_LINUX"), Some("quiet console=ttyS0"));
    }
}
