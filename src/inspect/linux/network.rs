//! Network configuration of a Linux guest, read from its files: every flavor that is present
//! (ifupdown, netplan, NetworkManager keyfiles, RHEL ifcfg, SUSE wicked ifcfg, systemd-networkd
//! and .link files) plus udev persistent-net rules. A file that cannot be read or parsed becomes
//! a warning; the rest of the inspection goes on.
use crate::fs::{FileType, Vfs};
use crate::types::NetworkInfo;

mod ifcfg;
mod ifupdown;
pub(crate) mod ini;
mod keyfile;
mod netplan;
mod networkd;
pub(crate) mod shvars;
mod udev;

/// Reads every network config flavor present in the guest.
pub fn detect_network(vfs: &Vfs) -> anyhow::Result<NetworkInfo> {
    let mut info = NetworkInfo::default();
    ifupdown::detect(vfs, &mut info);
    netplan::detect(vfs, &mut info);
    keyfile::detect(vfs, &mut info);
    ifcfg::detect_rhel(vfs, &mut info);
    ifcfg::detect_suse(vfs, &mut info);
    networkd::detect(vfs, &mut info);
    udev::detect(vfs, &mut info);
    Ok(info)
}

/// File contents, or `None` (with a warning when the file exists but cannot be read).
pub(crate) fn read_text(vfs: &Vfs, path: &str, warnings: &mut Vec<String>) -> Option<String> {
    match vfs.read_text(path) {
        Ok(t) => t,
        Err(e) => {
            warnings.push(format!("reading {path}: {e}"));
            None
        }
    }
}

/// Regular files (symlinks followed) directly in `dir`, sorted by name, as (name, guest path).
pub(crate) fn list_files(
    vfs: &Vfs,
    dir: &str,
    warnings: &mut Vec<String>,
) -> Vec<(String, String)> {
    let entries = match vfs.read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            warnings.push(format!("listing {dir}: {e}"));
            return vec![];
        }
    };
    let mut out = vec![];
    for e in entries {
        let path = format!("{}/{}", dir.trim_end_matches('/'), e.name);
        let is_file = match e.ftype {
            FileType::File => true,
            FileType::Symlink => {
                matches!(vfs.stat(&path), Ok(Some(m)) if m.ftype == FileType::File)
            }
            _ => false,
        };
        if is_file {
            out.push((e.name, path));
        }
    }
    out
}

/// Lowercase colon-separated MAC ("00-0C-29-AB-CD-EF" -> "00:0c:29:ab:cd:ef"); `None` for
/// anything that is not hex bytes (NetworkManager's "permanent", "random"...).
pub(crate) fn normalize_mac(s: &str) -> Option<String> {
    let s = s
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_ascii_lowercase();
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() < 6
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(parts.join(":"))
}

/// Prefix length of a dotted netmask ("255.255.255.0" -> 24) or of a plain number ("64").
pub(crate) fn netmask_to_prefix(mask: &str) -> Option<u32> {
    let mask = mask.trim();
    if let Ok(n) = mask.parse::<u32>() {
        return (n <= 128).then_some(n);
    }
    let ip: std::net::Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(ip);
    let ones = bits.leading_ones();
    // A netmask must be contiguous ones then zeros.
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones)
}

/// "addr" plus an optional netmask/prefix as "addr/prefix"; an address that already carries
/// a prefix is kept as written, and so is a netmask that is not contiguous.
pub(crate) fn with_prefix(addr: &str, mask: Option<&str>) -> String {
    let addr = addr.trim();
    match mask {
        Some(m) if !addr.contains('/') && !m.trim().is_empty() => match netmask_to_prefix(m) {
            Some(p) => format!("{addr}/{p}"),
            None => format!("{addr}/{}", m.trim()),
        },
        _ => addr.to_string(),
    }
}

/// Truthy word in the spellings config files use (yes/true/on/1, any case).
pub(crate) fn truthy(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "yes" | "true" | "on" | "y" | "1"
    )
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::fs::{HostDirFs, Vfs};
    use std::rc::Rc;

    /// A temp dir holding `files` (path, contents) served as the guest root.
    pub fn guest(files: &[(&str, &str)]) -> (tempfile::TempDir, Vfs) {
        let d = tempfile::tempdir().expect("tempdir");
        for (p, c) in files {
            let host = d.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(host.parent().expect("parent")).expect("mkdir");
            std::fs::write(host, c).expect("write");
        }
        let vfs = Vfs::new(Rc::new(HostDirFs {
            root: d.path().to_path_buf(),
        }));
        (d, vfs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_normalized() {
        assert_eq!(
            normalize_mac("00:0C:29:AB:cd:EF").as_deref(),
            Some("00:0c:29:ab:cd:ef")
        );
        assert_eq!(
            normalize_mac("\"00-0C-29-AB-CD-EF\"").as_deref(),
            Some("00:0c:29:ab:cd:ef")
        );
        assert_eq!(normalize_mac("permanent"), None);
        assert_eq!(normalize_mac("00:0c:29"), None);
    }

    #[test]
    fn netmasks_convert_to_prefixes() {
        assert_eq!(netmask_to_prefix("255.255.255.0"), Some(24));
        assert_eq!(netmask_to_prefix("255.255.252.0"), Some(22));
        assert_eq!(netmask_to_prefix("0.0.0.0"), Some(0));
        assert_eq!(netmask_to_prefix("255.255.255.255"), Some(32));
        assert_eq!(netmask_to_prefix("255.0.255.0"), None);
        assert_eq!(netmask_to_prefix("64"), Some(64));
        assert_eq!(with_prefix("10.1.2.3", Some("255.255.0.0")), "10.1.2.3/16");
        assert_eq!(with_prefix("10.1.2.3/8", Some("255.255.0.0")), "10.1.2.3/8");
    }
}

#[cfg(test)]
mod detect_tests {
    use super::testutil::guest;
    use super::*;

    /// A RHEL 7 guest after a VMware migration: ifcfg pinned by HWADDR, a stale NetworkManager
    /// keyfile, and the old 70-persistent-net.rules.
    #[test]
    fn several_flavors_in_one_guest() {
        let (_d, vfs) = guest(&[
            ("/etc/sysconfig/network-scripts/ifcfg-ens192", "DEVICE=ens192\nBOOTPROTO=dhcp\nHWADDR=00:50:56:8a:01:02\nONBOOT=yes\n"),
            ("/etc/sysconfig/network", "NETWORKING=yes\n"),
            ("/etc/NetworkManager/system-connections/ens224.nmconnection", "[connection]\nid=ens224\ntype=ethernet\ninterface-name=ens224\n[ipv4]\nmethod=auto\n"),
            ("/etc/udev/rules.d/70-persistent-net.rules", "SUBSYSTEM==\"net\", ATTR{address}==\"00:50:56:8A:01:02\", NAME=\"ens192\"\n"),
            ("/usr/lib/udev/rules.d/75-persistent-net-generator.rules", "ACTION==\"add\", SUBSYSTEM==\"net\", IMPORT{program}=\"write_net_rules\"\n"),
        ]);
        let info = detect_network(&vfs).unwrap();
        let flavors: Vec<&str> = info.configs.iter().map(|c| c.flavor.as_str()).collect();
        assert_eq!(flavors, ["networkmanager", "ifcfg-rhel"]);
        assert_eq!(
            info.configs[1].interfaces[0].mac.as_deref(),
            Some("00:50:56:8a:01:02")
        );
        assert_eq!(info.persistent_net_rules.len(), 1);
        assert!(info.persistent_net_generator);
        assert!(info.warnings.is_empty(), "{:?}", info.warnings);
    }
}

#[cfg(test)]
mod garbage_tests {
    use super::testutil::guest;
    use super::*;

    /// Pseudo-random text from characters the parsers treat specially: no input may panic.
    fn garbage(seed: u64, len: usize) -> String {
        const ALPHA: &[&str] = &[
            "\"",
            "'",
            "\\",
            "\n",
            " ",
            "=",
            "[",
            "]",
            "{",
            "}",
            "$",
            "#",
            ";",
            ":",
            "-",
            ",",
            "/",
            "é",
            "☃",
            "a",
            "0",
            "iface ",
            "address ",
            "NAME",
            "==",
            "ATTR{address}",
            "network:",
            "  - ",
            "[Match]",
            "IPADDR",
            "${",
        ];
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ALPHA[(x >> 33) as usize % ALPHA.len()]
            })
            .collect()
    }

    #[test]
    fn garbage_never_panics() {
        for seed in 0..40 {
            let g = garbage(seed, 300);
            let files: Vec<(&str, &str)> = vec![
                ("/etc/network/interfaces", &g),
                ("/etc/netplan/01.yaml", &g),
                ("/etc/NetworkManager/system-connections/x.nmconnection", &g),
                ("/etc/sysconfig/network-scripts/ifcfg-eth0", &g),
                ("/etc/systemd/network/10.network", &g),
                ("/etc/systemd/network/10.link", &g),
                ("/etc/udev/rules.d/70-persistent-net.rules", &g),
            ];
            let (_d, vfs) = guest(&files);
            detect_network(&vfs).expect("detect_network");
            let (_d, vfs) = guest(&[
                ("/boot/grub/grub.cfg", &g),
                ("/boot/grub/grubenv", &g),
                ("/boot/loader/entries/a.conf", &g),
                ("/etc/default/grub", &g),
            ]);
            crate::inspect::linux::bootloader::detect_bootloader(&vfs, None).expect("grub2");
            let (_d, vfs) = guest(&[("/boot/grub/menu.lst", &g), ("/etc/fstab", &g)]);
            crate::inspect::linux::bootloader::detect_bootloader(&vfs, None).expect("legacy");
        }
    }
}
