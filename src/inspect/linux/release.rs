//! Which Linux distro a root holds, as libguestfs infers it (`daemon/inspect_fs_unix.ml`,
//! 1.5x): release files are tried in libguestfs's order and the first one that parses wins.
//! Every parser writes into one shared record, so what a failed parser set (os-release's
//! version on Debian, say) stays unless a later one overwrites it — the same as libguestfs, so
//! that revirt reports what virt-inspector reports on guests with no (or a partial) os-release.
//!
//! ```text
//! os-release ─▶ lsb-release ─▶ oracle/centos/rocky/altlinux ─▶ redhat-release (fedora, rhel,
//! centos, rocky, scientific, else redhat-based) ─▶ debian_version ─▶ arch-release ─▶ gentoo,
//! slackware ─▶ SuSE-release ─▶ alpine-release ...
//! ```
//! Pure reads; distro names are libguestfs's (`archlinux`, `oraclelinux`, `alpinelinux`...).
use super::parse_shell_vars;
use crate::fs::Vfs;
use regex::Regex;
use std::sync::OnceLock;

/// A distro as libguestfs names it, with what the release files said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    /// libguestfs's distro name ("debian", "fedora", "oraclelinux", "redhat-based"...); None
    /// when no release file named one.
    pub distro: Option<&'static str>,
    pub product_name: Option<String>,
    /// (major, minor); None when no version could be parsed.
    pub version: Option<(u32, u32)>,
    /// os-release BUILD_ID.
    pub build_id: Option<String>,
}

/// One release-file parser: Ok(true) ends the search.
type Parser = fn(&str, &mut Release) -> bool;

/// `(\d+)\.(\d+)` anywhere in `s`, else `(\d+)` as (n, 0); `None` when `s` has no number.
pub fn major_minor(s: &str) -> Option<(u32, u32)> {
    static MM: OnceLock<Regex> = OnceLock::new();
    static M: OnceLock<Regex> = OnceLock::new();
    let mm = MM.get_or_init(|| Regex::new(r"(\d+)\.(\d+)").expect("regex"));
    let m = M.get_or_init(|| Regex::new(r"(\d+)").expect("regex"));
    if let Some(c) = mm.captures(s) {
        return Some((c[1].parse().ok()?, c[2].parse().ok()?));
    }
    m.captures(s).and_then(|c| Some((c[1].parse().ok()?, 0)))
}

/// os-release ID -> libguestfs distro (only the IDs libguestfs knows: others leave it unset).
pub fn distro_of_os_release_id(id: &str) -> Option<&'static str> {
    Some(match id {
        "alpine" => "alpinelinux",
        "altlinux" => "altlinux",
        "arch" => "archlinux",
        "centos" => "centos",
        "circle" => "circle",
        "coreos" => "coreos",
        "debian" => "debian",
        "fedora" => "fedora",
        "frugalware" => "frugalware",
        "gentoo" => "gentoo",
        "kali" => "kalilinux",
        "kylin" => "kylin",
        "mageia" => "mageia",
        "neokylin" => "neokylin",
        "openEuler" => "openeuler",
        "openmandriva" => "openmandriva",
        "opencloudos" => "opencloudos",
        "tencentos" => "tencentos",
        "opensuse" => "opensuse",
        s if s.starts_with("opensuse-") => "opensuse",
        "pardus" => "pardus",
        "pld" => "pldlinux",
        "rhel" => "rhel",
        "rocky" => "rocky",
        "sles" | "sled" => "sles",
        "ubuntu" => "ubuntu",
        "void" => "voidlinux",
        _ => return None,
    })
}

/// Distros without versions: os-release has no VERSION_ID and that is fine.
const ROLLING: &[&str] = &["archlinux", "gentoo", "voidlinux"];

fn os_release(text: &str, r: &mut Release) -> bool {
    let v = parse_shell_vars(text);
    if let Some(d) = v.get("ID").and_then(|id| distro_of_os_release_id(id)) {
        r.distro = Some(d);
    }
    if let Some(p) = v.get("PRETTY_NAME") {
        r.product_name = Some(p.clone());
    }
    if let Some(ver) = v.get("VERSION_ID") {
        if let Some(mm) = os_release_version(ver) {
            r.version = Some(mm);
        }
    }
    if let Some(b) = v.get("BUILD_ID") {
        r.build_id = Some(b.clone());
    }
    let (Some(distro), Some(_)) = (r.distro, &r.product_name) else {
        return false;
    };
    match r.version {
        // Debian's and CentOS's os-release give only the major version: the release file
        // has the rest ("12.5", "CentOS Linux release 7.9.2009").
        Some((_, 0)) if matches!(distro, "debian" | "centos" | "circle" | "rocky") => false,
        None if ROLLING.contains(&distro) => {
            r.version = Some((0, 0));
            true
        }
        None => false,
        Some(_) => true,
    }
}

/// VERSION_ID; NeoKylin writes "V7Update6" (RHBZ#1476081).
fn os_release_version(v: &str) -> Option<(u32, u32)> {
    static NK: OnceLock<Regex> = OnceLock::new();
    let nk = NK.get_or_init(|| Regex::new(r"^V(\d+)Update(\d+)$").expect("regex"));
    if let Some(c) = nk.captures(v) {
        return Some((c[1].parse().ok()?, c[2].parse().ok()?));
    }
    major_minor(v)
}

/// Ubuntu 10.x, Linux Mint, Mandriva, CoreOS: DISTRIB_ID / DISTRIB_RELEASE / DISTRIB_DESCRIPTION.
/// A bare file with only LSB_VERSION (RHEL 3) does not count.
fn lsb_release(text: &str, r: &mut Release) -> bool {
    let mut ok = false;
    let v = parse_shell_vars(text);
    if let Some(id) = v.get("DISTRIB_ID") {
        let d = match id.as_str() {
            "CoreOS" => Some("coreos"),
            "LinuxMint" => Some("linuxmint"),
            "Mageia" => Some("mageia"),
            "Ubuntu" => Some("ubuntu"),
            _ => None,
        };
        if d.is_some() {
            r.distro = d;
            ok = true;
        }
    }
    if let Some(rel) = v.get("DISTRIB_RELEASE") {
        if let Some(mm) = major_minor(rel) {
            r.version = Some(mm);
        }
    }
    if let Some(d) = v.get("DISTRIB_DESCRIPTION") {
        r.product_name = Some(d.clone());
        ok = true;
    }
    ok
}

/// SLES 9-12 and old openSUSE: name on line 1, `VERSION = 11`, `PATCHLEVEL = 4`.
fn suse_release(text: &str, r: &mut Release) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    let Some(first) = lines.first() else {
        return false;
    };
    r.product_name = Some(first.to_string());
    let num_after = |line: Option<&&str>, key: &str| -> Option<u32> {
        let rest = line?.strip_prefix(key)?.trim_start().strip_prefix('=')?;
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let sles = first.starts_with("SUSE Linux Enterprise ")
        || first.starts_with("SUSE LINUX Enterprise ")
        || first.starts_with("Novell Linux Desktop ");
    if sles {
        let major = num_after(lines.get(1), "VERSION");
        let minor = num_after(lines.get(2), "PATCHLEVEL");
        r.distro = Some("sles");
        r.version = major.map(|m| (m, minor.unwrap_or(0)));
    } else if ["openSUSE ", "SuSE Linux ", "SUSE LINUX "]
        .iter()
        .any(|p| first.starts_with(p))
    {
        if let Some(mm) = lines.get(1).and_then(|l| major_minor(l)) {
            r.version = Some(mm);
        }
        r.distro = Some("opensuse");
    }
    true
}

/// A generic release file: its first line is the product name; with a pattern, the pattern
/// must match and its groups are (major, minor); without, any number in the line is the version.
fn generic(distro: &'static str, pattern: Option<&Regex>, text: &str, r: &mut Release) -> bool {
    let first = text.lines().next().unwrap_or("");
    if first.is_empty() {
        return false;
    }
    r.product_name = Some(first.to_string());
    r.distro = Some(distro);
    match pattern {
        Some(re) => {
            let Some(c) = re.captures(first) else {
                return false;
            };
            let major = c.get(1).and_then(|m| m.as_str().parse::<u32>().ok());
            let minor = c.get(2).and_then(|m| m.as_str().parse::<u32>().ok());
            if let Some(major) = major {
                r.version = Some((major, minor.unwrap_or(0)));
            }
            true
        }
        None => {
            if let Some(mm) = major_minor(first) {
                r.version = Some(mm);
            }
            true
        }
    }
}

macro_rules! generic_rex {
    ($name:ident, $distro:expr, $re:expr) => {
        fn $name(text: &str, r: &mut Release) -> bool {
            static RE: OnceLock<Regex> = OnceLock::new();
            let re = RE.get_or_init(|| Regex::new($re).expect("release regex"));
            generic($distro, Some(re), text, r)
        }
    };
}

macro_rules! generic_plain {
    ($name:ident, $distro:expr) => {
        fn $name(text: &str, r: &mut Release) -> bool {
            generic($distro, None, text, r)
        }
    };
}

generic_rex!(
    openmandriva,
    "openmandriva",
    r"OpenMandriva.*release (\d+)\.(\d+)\.?(\d+)? .*"
);
generic_rex!(opencloudos, "opencloudos", r"OpenCloudOS.*release (\d+)");
generic_rex!(tencentos, "tencentos", r"TencentOS.* (\d+)\.(\d+)");
generic_rex!(
    oracle_old,
    "oraclelinux",
    r"Oracle Linux.*release (\d+).*Update (\d+)"
);
generic_rex!(oracle, "oraclelinux", r"Oracle Linux.*release (\d+)\.(\d+)");
generic_rex!(oracle_major, "oraclelinux", r"Oracle Linux.*release (\d+)");
generic_rex!(centos_old, "centos", r"CentOS.*release (\d+).*Update (\d+)");
generic_rex!(centos, "centos", r"CentOS.*release (\d+)\.(\d+)");
generic_rex!(centos_major, "centos", r"CentOS.*release (\d+)");
generic_rex!(circle, "circle", r"Circle Linux.*release (\d+)\.(\d+)");
generic_rex!(circle_major, "circle", r"Circle Linux.*release (\d+)");
generic_rex!(rocky, "rocky", r"Rocky Linux.*release (\d+)\.(\d+)");
generic_rex!(rocky_major, "rocky", r"Rocky Linux.*release (\d+)");
generic_rex!(fedora, "fedora", r"Fedora release (\d+)");
generic_rex!(rhel_old, "rhel", r"Red Hat.*release (\d+).*Update (\d+)");
generic_rex!(rhel, "rhel", r"Red Hat.*release (\d+)\.(\d+)");
generic_rex!(rhel_major, "rhel", r"Red Hat.*release (\d+)");
generic_rex!(
    sl_old,
    "scientificlinux",
    r"Scientific Linux.*release (\d+).*Update (\d+)"
);
generic_rex!(
    sl,
    "scientificlinux",
    r"Scientific Linux.*release (\d+)\.(\d+)"
);
generic_rex!(
    sl_major,
    "scientificlinux",
    r"Scientific Linux.*release (\d+)"
);
generic_rex!(frugalware, "frugalware", r"Frugalware (\d+)\.(\d+)");
generic_rex!(pld, "pldlinux", r"(\d+)\.(\d+) PLD Linux");
generic_plain!(altlinux, "altlinux");
generic_plain!(redhat_based, "redhat-based");
generic_plain!(debian, "debian");
generic_plain!(pardus, "pardus");
generic_plain!(gentoo, "gentoo");
generic_plain!(meego, "meego");
generic_plain!(slackware, "slackware");
generic_plain!(ttylinux, "ttylinux");
generic_plain!(cirros, "cirros");
generic_plain!(alpine, "alpinelinux");

fn set_redhat_based(_: &str, r: &mut Release) -> bool {
    r.distro = Some("redhat-based");
    true
}

/// /etc/arch-release is empty: it only says "Arch".
fn set_archlinux(_: &str, r: &mut Release) -> bool {
    r.distro = Some("archlinux");
    true
}

fn set_suse_based(_: &str, r: &mut Release) -> bool {
    r.distro = Some("suse-based");
    true
}

/// The release files, in libguestfs's order (derivatives before the files they also carry:
/// OpenMandriva and the RHEL rebuilds ship a redhat-release too).
const TESTS: &[(&str, Parser)] = &[
    ("/etc/os-release", os_release),
    ("/etc/lsb-release", lsb_release),
    ("/etc/openmandriva-release", openmandriva),
    ("/etc/opencloudos-release", opencloudos),
    ("/etc/tencentos-release", tencentos),
    ("/etc/oracle-release", oracle_old),
    ("/etc/oracle-release", oracle),
    ("/etc/oracle-release", oracle_major),
    ("/etc/centos-release", centos_old),
    ("/etc/centos-release", centos),
    ("/etc/centos-release", centos_major),
    ("/etc/circle-release", circle),
    ("/etc/circle-release", circle_major),
    ("/etc/rocky-release", rocky),
    ("/etc/rocky-release", rocky_major),
    ("/etc/altlinux-release", altlinux),
    ("/etc/redhat-release", fedora),
    ("/etc/redhat-release", rhel_old),
    ("/etc/redhat-release", rhel),
    ("/etc/redhat-release", rhel_major),
    ("/etc/redhat-release", centos_old),
    ("/etc/redhat-release", centos),
    ("/etc/redhat-release", centos_major),
    ("/etc/redhat-release", circle),
    ("/etc/redhat-release", circle_major),
    ("/etc/redhat-release", rocky),
    ("/etc/redhat-release", rocky_major),
    ("/etc/redhat-release", sl_old),
    ("/etc/redhat-release", sl),
    ("/etc/redhat-release", sl_major),
    ("/etc/redhat-release", redhat_based),
    ("/etc/redhat-release", set_redhat_based),
    ("/etc/debian_version", debian),
    ("/etc/pardus-release", pardus),
    ("/etc/arch-release", set_archlinux),
    ("/etc/gentoo-release", gentoo),
    ("/etc/meego-release", meego),
    ("/etc/slackware-version", slackware),
    ("/etc/ttylinux-target", ttylinux),
    ("/etc/SuSE-release", suse_release),
    ("/etc/SuSE-release", set_suse_based),
    ("/etc/cirros/version", cirros),
    ("/etc/alpine-release", alpine),
    ("/etc/frugalware-release", frugalware),
    ("/etc/pld-release", pld),
];

/// Every release file libguestfs looks at (a root is recognised by any of them).
pub fn release_files() -> impl Iterator<Item = &'static str> {
    let mut seen = vec![];
    TESTS.iter().filter_map(move |(p, _)| {
        if seen.contains(p) {
            None
        } else {
            seen.push(*p);
            Some(*p)
        }
    })
}

/// Runs the release-file tests over the root in `vfs`, starting from `start` (a CoreOS root
/// starts as "coreos"). A file that is missing or unreadable is skipped, as libguestfs skips
/// what is not a small regular file.
pub fn detect_release(vfs: &Vfs, start: Release) -> Release {
    let mut r = start;
    let mut cache: Vec<(&str, Option<String>)> = vec![];
    for (path, parse) in TESTS {
        let text = match cache.iter().find(|(p, _)| p == path) {
            Some((_, t)) => t.clone(),
            None => {
                let regular =
                    matches!(vfs.stat(path), Ok(Some(m)) if m.ftype == crate::fs::FileType::File);
                let t = if regular {
                    vfs.read_text(path).ok().flatten()
                } else {
                    None
                };
                cache.push((path, t.clone()));
                t
            }
        };
        if let Some(t) = text {
            if parse(&t, &mut r) {
                break;
            }
        }
    }
    r
}

/// libguestfs's package format for a distro ("rpm", "deb", "pacman"...).
pub fn package_format(distro: &str) -> Option<&'static str> {
    Some(match distro {
        "altlinux" | "centos" | "circle" | "fedora" | "kylin" | "mageia" | "mandriva" | "meego"
        | "neokylin" | "opencloudos" | "tencentos" | "openeuler" | "openmandriva" | "opensuse"
        | "oraclelinux" | "redhat-based" | "rhel" | "rocky" | "scientificlinux" | "sles"
        | "suse-based" => "rpm",
        "debian" | "kalilinux" | "linuxmint" | "ubuntu" => "deb",
        "archlinux" => "pacman",
        "gentoo" => "ebuild",
        "pardus" => "pisi",
        "alpinelinux" => "apk",
        "voidlinux" => "xbps",
        _ => return None,
    })
}

/// libguestfs's package manager for a distro and major version; `has_dnf` is whether
/// /usr/bin/dnf exists (Fedora 22 and later may still use yum).
pub fn package_management(distro: &str, major: u32, has_dnf: bool) -> Option<&'static str> {
    Some(match distro {
        "meego" => "yum",
        "fedora" if major >= 22 && has_dnf => "dnf",
        "fedora" if major >= 1 => "yum",
        "neokylin" | "openmandriva" | "opencloudos" | "tencentos" | "openeuler" => "dnf",
        "centos" | "circle" | "kylin" | "oraclelinux" | "redhat-based" | "rhel" | "rocky"
        | "scientificlinux" => match major {
            8.. => "dnf",
            5..=7 => "yum",
            2..=4 => "up2date",
            _ => return None,
        },
        "altlinux" | "debian" | "kalilinux" | "linuxmint" | "ubuntu" => "apt",
        "archlinux" => "pacman",
        "gentoo" => "portage",
        "pardus" => "pisi",
        "mageia" | "mandriva" => "urpmi",
        "opensuse" | "sles" | "suse-based" => "zypper",
        "alpinelinux" => "apk",
        "voidlinux" => "xbps",
        _ => return None,
    })
}

/// The os-release ID revirt's own `distro` field uses for a guest whose identity came from
/// older release files (so plan sees "centos", "sles", "debian" whichever file said it).
pub fn os_release_id_of(distro: &str) -> &'static str {
    match distro {
        "alpinelinux" => "alpine",
        "archlinux" => "arch",
        "kalilinux" => "kali",
        "oraclelinux" => "ol",
        "pldlinux" => "pld",
        "scientificlinux" => "scientific",
        "voidlinux" => "void",
        "altlinux" => "altlinux",
        "centos" => "centos",
        "circle" => "circle",
        "coreos" => "coreos",
        "debian" => "debian",
        "fedora" => "fedora",
        "gentoo" => "gentoo",
        "linuxmint" => "linuxmint",
        "mageia" => "mageia",
        "opensuse" => "opensuse",
        "rhel" => "rhel",
        "rocky" => "rocky",
        "sles" => "sles",
        "ubuntu" => "ubuntu",
        "redhat-based" => "redhat-based",
        "suse-based" => "suse-based",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::HostDirFs;
    use std::rc::Rc;

    fn root(files: &[(&str, &str)]) -> (tempfile::TempDir, Vfs) {
        let d = tempfile::tempdir().unwrap();
        for (p, t) in files {
            let p = d.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
        let vfs = Vfs::new(Rc::new(HostDirFs {
            root: d.path().into(),
        }));
        (d, vfs)
    }

    fn release(files: &[(&str, &str)]) -> Release {
        let (_d, vfs) = root(files);
        detect_release(&vfs, Release::default())
    }

    #[test]
    fn old_release_files() {
        let r = release(&[("/etc/debian_version", "5.0.1\n")]);
        assert_eq!(r.distro, Some("debian"));
        assert_eq!(r.product_name.as_deref(), Some("5.0.1"));
        assert_eq!(r.version, Some((5, 0)));

        let r = release(&[
            ("/etc/redhat-release", "Fedora release 14 (Laughlin)"),
            ("/etc/fedora-release", "Fedora release 14 (Laughlin)"),
        ]);
        assert_eq!((r.distro, r.version), (Some("fedora"), Some((14, 0))));

        let r = release(&[(
            "/etc/redhat-release",
            "Red Hat Enterprise Linux Server release 6.10 (Santiago)\n",
        )]);
        assert_eq!((r.distro, r.version), (Some("rhel"), Some((6, 10))));

        let r = release(&[(
            "/etc/redhat-release",
            "Red Hat Enterprise Linux AS release 4 (Nahant Update 9)",
        )]);
        assert_eq!((r.distro, r.version), (Some("rhel"), Some((4, 9))));

        // Oracle Linux carries a redhat-release naming Red Hat: its own file wins.
        let r = release(&[
            ("/etc/oracle-release", "Oracle Linux Server release 7.9"),
            (
                "/etc/redhat-release",
                "Red Hat Enterprise Linux Server release 7.9 (Maipo)",
            ),
        ]);
        assert_eq!((r.distro, r.version), (Some("oraclelinux"), Some((7, 9))));

        let r = release(&[(
            "/etc/SuSE-release",
            "SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 4\n",
        )]);
        assert_eq!((r.distro, r.version), (Some("sles"), Some((11, 4))));

        let r = release(&[("/etc/arch-release", "")]);
        assert_eq!((r.distro, r.version), (Some("archlinux"), None));

        let r = release(&[("/etc/alpine-release", "3.19.1\n")]);
        assert_eq!((r.distro, r.version), (Some("alpinelinux"), Some((3, 19))));
    }

    #[test]
    fn os_release_and_its_fallbacks() {
        // Debian's os-release has only the major: debian_version gives the point release.
        let r = release(&[
            (
                "/etc/os-release",
                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
            ),
            ("/etc/debian_version", "12.5\n"),
        ]);
        assert_eq!((r.distro, r.version), (Some("debian"), Some((12, 5))));
        assert_eq!(r.product_name.as_deref(), Some("12.5"));

        let r = release(&[(
            "/etc/os-release",
            "NAME=Ubuntu\nID=ubuntu\nVERSION_ID=\"22.04\"\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\n",
        )]);
        assert_eq!((r.distro, r.version), (Some("ubuntu"), Some((22, 4))));

        // Arch: no VERSION_ID, a rolling release.
        let r = release(&[("/etc/os-release", "ID=arch\nPRETTY_NAME=\"Arch Linux\"\n")]);
        assert_eq!((r.distro, r.version), (Some("archlinux"), Some((0, 0))));

        // An ID libguestfs does not know falls through to the release files.
        let r = release(&[
            (
                "/etc/os-release",
                "ID=\"almalinux\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"AlmaLinux 9.3\"\n",
            ),
            (
                "/etc/redhat-release",
                "AlmaLinux release 9.3 (Shamrock Pink Panther)\n",
            ),
        ]);
        assert_eq!((r.distro, r.version), (Some("redhat-based"), Some((9, 3))));

        // Ubuntu 10.10: lsb-release only.
        let r = release(&[
            ("/etc/debian_version", "squeeze/sid\n"),
            (
                "/etc/lsb-release",
                "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=10.10\nDISTRIB_DESCRIPTION=\"Ubuntu 10.10\"\n",
            ),
        ]);
        assert_eq!((r.distro, r.version), (Some("ubuntu"), Some((10, 10))));
    }

    #[test]
    fn package_managers_follow_the_version() {
        assert_eq!(package_management("rhel", 6, false), Some("yum"));
        assert_eq!(package_management("rhel", 8, false), Some("dnf"));
        assert_eq!(package_management("fedora", 14, false), Some("yum"));
        assert_eq!(package_management("fedora", 39, true), Some("dnf"));
        assert_eq!(package_management("coreos", 899, false), None);
        assert_eq!(package_format("archlinux"), Some("pacman"));
        assert_eq!(major_minor("no digits"), None);
        assert_eq!(major_minor("release 7"), Some((7, 0)));
    }
}
