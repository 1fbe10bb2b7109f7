//! Installed applications, as virt-inspector lists them (libguestfs `lib/inspect-apps.c`), from
//! the package databases that are cheap to read in pure Rust: dpkg's status file, pacman's local
//! database, apk's installed file, rpm's SQLite database ([`super::rpmdb`]), and the Windows
//! Uninstall keys (native and WOW6432Node views). rpm's older Berkeley DB (RHEL <= 8, SLES <= 15)
//! is not read, so such a guest has no application list (`None`), which is not an error.
use super::windows::hive::{Hive, Key};
use crate::fs::{FileType, Vfs};

/// One installed package; empty strings are absent fields (libguestfs's convention).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Application {
    pub name: String,
    pub display_name: String,
    pub epoch: u32,
    pub version: String,
    pub release: String,
    pub arch: String,
    pub install_path: String,
    pub publisher: String,
    pub url: String,
    pub source_package: String,
    pub summary: String,
    pub description: String,
}

/// Sorted by name as libguestfs sorts them (byte order).
fn sorted(mut v: Vec<Application>) -> Vec<Application> {
    v.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    v
}

/// Applications of a Linux guest whose package format is `format` ("deb", "pacman", "apk",
/// "rpm"...). `None`: a database revirt does not read (rpm without rpmdb.sqlite); an unknown
/// format is an empty list.
pub fn linux_applications(
    vfs: &Vfs,
    format: Option<&str>,
) -> anyhow::Result<Option<Vec<Application>>> {
    Ok(Some(sorted(match format {
        Some("deb") => match vfs.read_text("/var/lib/dpkg/status")? {
            Some(t) => parse_dpkg_status(&t),
            None => vec![],
        },
        Some("pacman") => pacman_local(vfs)?,
        Some("apk") => match vfs.read_text("/lib/apk/db/installed")? {
            Some(t) => parse_apk_installed(&t),
            None => vec![],
        },
        Some("rpm") => match rpm_sqlite(vfs)? {
            Some(v) => v,
            None => return Ok(None),
        },
        _ => vec![],
    })))
}

/// The packages of the first rpmdb.sqlite of [`super::rpmdb::DB_PATHS`]; None when there is
/// none (a Berkeley DB guest). In reverse database order before the sort, as libguestfs's
/// `Rpm.list_rpm_applications` builds its list, so packages of one name keep its order.
fn rpm_sqlite(vfs: &Vfs) -> anyhow::Result<Option<Vec<Application>>> {
    use anyhow::Context;
    for path in super::rpmdb::DB_PATHS {
        if !matches!(vfs.stat(path)?, Some(m) if m.ftype == FileType::File) {
            continue;
        }
        let db = vfs.read_file_limited(path, super::rpmdb::DB_LIMIT)?;
        let mut v = super::rpmdb::applications(&db).with_context(|| path.to_string())?;
        v.reverse();
        return Ok(Some(v));
    }
    Ok(None)
}

/// `[epoch:]version[-release]`, split at the first ':' and then the first '-', as libguestfs
/// does; None when the epoch is not a number (libguestfs drops such a package).
fn split_version(v: &str) -> Option<(u32, String, String)> {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) => (e.parse().ok()?, r),
        None => (0, v),
    };
    let (ver, rel) = rest.split_once('-').unwrap_or((rest, ""));
    Some((epoch, ver.to_string(), rel.to_string()))
}

/// /var/lib/dpkg/status: paragraphs ended by a blank line (one without is not counted, as in
/// libguestfs); packages whose Status says "installed"; Description's first line is the
/// summary, its continuation lines (one leading space removed) the description.
pub fn parse_dpkg_status(text: &str) -> Vec<Application> {
    let mut out = vec![];
    let mut cur = Application::default();
    let (mut installed, mut version_ok) = (false, false);
    // The description's lines, once the Description field started.
    let mut description: Option<Vec<&str>> = None;
    for line in text.lines() {
        if let (Some(d), Some(cont)) = (description.as_mut(), line.strip_prefix(' ')) {
            d.push(cont);
            continue;
        }
        if let Some(d) = description.take() {
            cur.description = d.join("\n");
        }
        if let Some(v) = line.strip_prefix("Package: ") {
            cur.name = v.to_string();
        } else if let Some(v) = line.strip_prefix("Status: ") {
            installed = v.contains("installed");
        } else if let Some(v) = line.strip_prefix("Version: ") {
            version_ok = match split_version(v) {
                Some((e, ver, rel)) => {
                    (cur.epoch, cur.version, cur.release) = (e, ver, rel);
                    true
                }
                None => false,
            };
        } else if let Some(v) = line.strip_prefix("Architecture: ") {
            cur.arch = v.to_string();
        } else if let Some(v) = line.strip_prefix("Homepage: ") {
            cur.url = v.to_string();
        } else if let Some(v) = line.strip_prefix("Source: ") {
            // "Source: foo (1.0)" names the source package foo.
            cur.source_package = v.split(' ').next().unwrap_or("").to_string();
        } else if let Some(v) = line.strip_prefix("Description: ") {
            cur.summary = v.to_string();
            description = Some(vec![]);
        } else if line.is_empty() {
            let app = std::mem::take(&mut cur);
            if installed && !app.name.is_empty() && version_ok {
                out.push(app);
            }
            (installed, version_ok) = (false, false);
        }
    }
    out
}

/// pacman's local database: /var/lib/pacman/local/NAME-VERSION/desc with %NAME%, %VERSION%
/// (`[epoch:]ver-rel`, the release required), %DESC%, %URL%, %ARCH%.
fn pacman_local(vfs: &Vfs) -> anyhow::Result<Vec<Application>> {
    let mut out = vec![];
    for e in vfs.read_dir("/var/lib/pacman/local")? {
        if e.ftype != FileType::Dir {
            continue;
        }
        let Some(t) = vfs.read_text(&format!("/var/lib/pacman/local/{}/desc", e.name))? else {
            continue;
        };
        if let Some(a) = parse_pacman_desc(&t) {
            out.push(a);
        }
    }
    Ok(out)
}

fn parse_pacman_desc(text: &str) -> Option<Application> {
    let (mut name, mut version, mut desc, mut url, mut arch) = (None, None, None, None, None);
    let mut key: Option<&mut Option<String>> = None;
    for line in text.lines() {
        if line.is_empty() {
            key = None;
            continue;
        }
        if let Some(k) = key.take() {
            *k = Some(line.to_string());
            continue;
        }
        key = match line {
            "%NAME%" => Some(&mut name),
            "%VERSION%" => Some(&mut version),
            "%DESC%" => Some(&mut desc),
            "%URL%" => Some(&mut url),
            "%ARCH%" => Some(&mut arch),
            _ => None,
        };
    }
    let (epoch, ver, rel) = split_version(version.as_deref()?)?;
    if ver.is_empty() || rel.is_empty() {
        return None;
    }
    Some(Application {
        name: name?,
        epoch,
        version: ver,
        release: rel,
        arch: arch?,
        url: url.unwrap_or_default(),
        description: desc.unwrap_or_default(),
        ..Default::default()
    })
}

/// apk's /lib/apk/db/installed: `X:value` lines, packages ended by a blank line; V is
/// `[epoch:]ver[-rN]` (the leading "r" of the revision dropped).
pub fn parse_apk_installed(text: &str) -> Vec<Application> {
    let mut out = vec![];
    let mut cur = Application::default();
    let mut epoch_ok = true;
    for line in text.lines() {
        let b = line.as_bytes();
        if b.len() > 1 && b[1] != b':' {
            continue;
        }
        match b.first() {
            None => {
                let app = std::mem::take(&mut cur);
                if !app.name.is_empty() && !app.version.is_empty() && epoch_ok {
                    out.push(app);
                }
                epoch_ok = true;
            }
            Some(b'A') => cur.arch = line[2..].to_string(),
            Some(b'P') => cur.name = line[2..].to_string(),
            Some(b'T') => cur.description = line[2..].to_string(),
            Some(b'U') => cur.url = line[2..].to_string(),
            Some(b'V') => {
                let v = &line[2..];
                let (epoch, rest) = match v.split_once(':') {
                    Some((e, r)) => match e.parse() {
                        Ok(e) => (e, r),
                        Err(_) => {
                            epoch_ok = false;
                            (0, r)
                        }
                    },
                    None => (0, v),
                };
                let (ver, rel) = match rest.split_once('-') {
                    Some((v, r)) => (v, r.strip_prefix('r').unwrap_or(r)),
                    None => (rest, ""),
                };
                (cur.epoch, cur.version, cur.release) = (epoch, ver.into(), rel.into());
            }
            _ => {}
        }
    }
    out
}

/// Windows programs: every Uninstall subkey with a DisplayName, native then WOW6432Node (32-bit
/// programs on 64-bit Windows), plus Microsoft Defender, which has no Uninstall key, unless its
/// DisableAntiVirus is 1.
pub fn windows_applications(sw: &Hive) -> anyhow::Result<Vec<Application>> {
    let mut out = vec![];
    for k in super::windows::facts::uninstall_keys(sw)? {
        if let Some(a) = uninstall_entry(&k)? {
            out.push(a);
        }
    }
    if let Some(d) = sw.open_key("Microsoft\\Windows Defender")? {
        if d.dword("DisableAntiVirus")? != Some(1) {
            out.push(Application {
                name: "WinDefend".into(),
                display_name: "Microsoft Defender Antivirus".into(),
                publisher: "Microsoft Corporation".into(),
                ..Default::default()
            });
        }
    }
    Ok(sorted(out))
}

fn uninstall_entry(k: &Key) -> anyhow::Result<Option<Application>> {
    let s =
        |n: &str| -> anyhow::Result<String> { Ok(k.string(n).ok().flatten().unwrap_or_default()) };
    let Some(display_name) = k.string("DisplayName").ok().flatten() else {
        return Ok(None);
    };
    Ok(Some(Application {
        name: k.name()?,
        display_name,
        version: s("DisplayVersion")?,
        install_path: s("InstallLocation")?,
        publisher: s("Publisher")?,
        url: s("URLInfoAbout")?,
        description: s("Comments")?,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_as_libguestfs_reads_it() {
        let t = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc (2.36-9)\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n first line\n .\n last\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\nPackage: vim\nStatus: install ok installed\nVersion: 2:9.0.1378-2\nHomepage: https://www.vim.org/\n\nPackage: unterminated\nStatus: install ok installed\nVersion: 1\n";
        let a = parse_dpkg_status(t);
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!(
            (
                a[0].name.as_str(),
                a[0].version.as_str(),
                a[0].release.as_str()
            ),
            ("libc6", "2.36", "9+deb12u4")
        );
        assert_eq!(a[0].source_package, "glibc");
        assert_eq!(a[0].summary, "GNU C Library");
        assert_eq!(a[0].description, "first line\n.\nlast");
        assert_eq!(a[0].display_name, "");
        assert_eq!((a[1].epoch, a[1].version.as_str()), (2, "9.0.1378"));
        assert_eq!(a[1].url, "https://www.vim.org/");
    }

    #[test]
    fn pacman_and_apk_entries() {
        let a = parse_pacman_desc(
            "%NAME%\nffmpeg\n\n%VERSION%\n2:6.1.1-7\n\n%DESC%\nvideo\n\n%ARCH%\nx86_64\n",
        )
        .unwrap();
        assert_eq!(
            (a.epoch, a.version.as_str(), a.release.as_str()),
            (2, "6.1.1", "7")
        );
        assert!(parse_pacman_desc("%NAME%\nx\n\n%VERSION%\n1.0\n\n%ARCH%\nany\n").is_none());
        let a = parse_apk_installed("P:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nT:libc\n\n");
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].version.as_str(), a[0].release.as_str()),
            ("1.2.4_git20230717", "4")
        );
    }
}
