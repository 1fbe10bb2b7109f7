//! The OS as virt-inspector names it ([`OsIdentity`]): libguestfs's distro spelling, version
//! pair, package tools and the libosinfo short id (`guestfs_inspect_get_osinfo`, libguestfs
//! `lib/inspect-osinfo.c`), which orchestrators use to pick a VM template. Pure.
use crate::types::{OsIdentity, WindowsInfo};

/// The libosinfo short id for an identity, "unknown" when no rule fits (libguestfs's rules:
/// CentOS 7 is "centos7.0", Ubuntu pads the minor to two digits, SLE 15 drops the "s", Windows
/// 10 and 11 are told apart by the build number, servers by the year in the product name).
pub fn osinfo(id: &OsIdentity) -> String {
    let (d, ma, mi) = (id.distro.as_str(), id.major_version, id.minor_version);
    let name = id.product_name.as_deref().unwrap_or("");
    let server = id
        .product_variant
        .as_deref()
        .is_some_and(|v| v.contains("Server"));
    let s = match id.os_type.as_str() {
        "linux" => match d {
            "centos" if ma >= 8 => Some(format!("centos{ma}")),
            "centos" if ma == 7 => Some("centos7.0".to_string()),
            "centos" if ma == 6 => Some(format!("centos6.{mi}")),
            "circle" | "rocky" if ma >= 8 => Some(format!("{d}{ma}")),
            "debian" if ma >= 4 => Some(format!("debian{ma}")),
            "fedora" | "mageia" => Some(format!("{d}{ma}")),
            "sles" => {
                let base = if ma >= 15 { "sle" } else { "sles" };
                Some(if mi == 0 {
                    format!("{base}{ma}")
                } else {
                    format!("{base}{ma}sp{mi}")
                })
            }
            "ubuntu" => Some(format!("ubuntu{ma}.{mi:02}")),
            "archlinux" | "gentoo" | "voidlinux" => Some(d.to_string()),
            "altlinux" if ma >= 8 => Some(format!("alt{ma}.{mi}")),
            "altlinux" => Some(format!("altlinux{ma}.{mi}")),
            _ => None,
        }
        .or_else(|| (d != "unknown" && (ma > 0 || mi > 0)).then(|| format!("{d}{ma}.{mi}"))),
        "windows" => match (ma, mi) {
            (5, 1) => Some("winxp"),
            (5, 2) if name.contains("XP") => Some("winxp"),
            (5, 2) if name.contains("R2") => Some("win2k3r2"),
            (5, 2) => Some("win2k3"),
            (6, 0) if server => Some("win2k8"),
            (6, 0) => Some("winvista"),
            (6, 1) if server => Some("win2k8r2"),
            (6, 1) => Some("win7"),
            (6, 2) if server => Some("win2k12"),
            (6, 2) => Some("win8"),
            (6, 3) if server => Some("win2k12r2"),
            (6, 3) => Some("win8.1"),
            (10, 0) if server && name.contains("2025") => Some("win2k25"),
            (10, 0) if server && name.contains("2022") => Some("win2k22"),
            (10, 0) if server && name.contains("2019") => Some("win2k19"),
            (10, 0) if server => Some("win2k16"),
            (10, 0) => match id.build_id.as_deref().map(|b| b.trim().parse::<u32>()) {
                Some(Ok(b)) if b >= 22000 => Some("win11"),
                Some(Ok(_)) => Some("win10"),
                _ => None,
            },
            _ => None,
        }
        .map(String::from),
        _ => None,
    };
    s.unwrap_or_else(|| "unknown".into())
}

/// A Windows guest's identity. `registry_product_name` is ProductName as stored (revirt's
/// `product_name` says "Windows 11" where the registry still says "Windows 10");
/// `installation_type` is the stored InstallationType, not the one revirt derives.
pub fn windows_identity(
    w: &WindowsInfo,
    registry_product_name: &str,
    installation_type: Option<&str>,
) -> OsIdentity {
    let mut id = OsIdentity {
        os_type: "windows".into(),
        distro: "windows".into(),
        product_name: Some(registry_product_name.to_string()).filter(|p| !p.is_empty()),
        product_variant: installation_type.map(String::from),
        major_version: w.major,
        minor_version: w.minor,
        arch: Some(w.arch.clone()).filter(|a| a != "unknown"),
        hostname: w.hostname.clone(),
        build_id: w.build.clone(),
        ..Default::default()
    };
    id.osinfo = osinfo(&id);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(distro: &str, ma: u32, mi: u32) -> String {
        osinfo(&OsIdentity {
            os_type: "linux".into(),
            distro: distro.into(),
            major_version: ma,
            minor_version: mi,
            ..Default::default()
        })
    }

    fn windows(ma: u32, mi: u32, name: &str, variant: &str, build: &str) -> String {
        osinfo(&OsIdentity {
            os_type: "windows".into(),
            distro: "windows".into(),
            major_version: ma,
            minor_version: mi,
            product_name: Some(name.into()),
            product_variant: Some(variant.into()),
            build_id: Some(build.into()),
            ..Default::default()
        })
    }

    #[test]
    fn libosinfo_ids_of_linux_guests() {
        assert_eq!(linux("debian", 5, 0), "debian5");
        assert_eq!(linux("rhel", 6, 10), "rhel6.10");
        assert_eq!(linux("ubuntu", 22, 4), "ubuntu22.04");
        assert_eq!(linux("fedora", 14, 0), "fedora14");
        assert_eq!(linux("centos", 7, 9), "centos7.0");
        assert_eq!(linux("centos", 6, 10), "centos6.10");
        assert_eq!(linux("rocky", 9, 3), "rocky9");
        assert_eq!(linux("sles", 12, 5), "sles12sp5");
        assert_eq!(linux("sles", 15, 0), "sle15");
        assert_eq!(linux("archlinux", 0, 0), "archlinux");
        assert_eq!(linux("coreos", 899, 13), "coreos899.13");
        assert_eq!(linux("alpinelinux", 3, 19), "alpinelinux3.19");
        assert_eq!(linux("redhat-based", 0, 0), "unknown");
        assert_eq!(linux("unknown", 5, 0), "unknown");
    }

    #[test]
    fn libosinfo_ids_of_windows_guests() {
        assert_eq!(
            windows(6, 1, "Windows 7 Professional", "Client", "7601"),
            "win7"
        );
        assert_eq!(
            windows(6, 1, "Windows Server 2008 R2", "Server", "7601"),
            "win2k8r2"
        );
        assert_eq!(
            windows(10, 0, "Windows Server 2019 Standard", "Server", "17763"),
            "win2k19"
        );
        assert_eq!(
            windows(
                10,
                0,
                "Windows Server 2022 Datacenter",
                "Server Core",
                "20348"
            ),
            "win2k22"
        );
        assert_eq!(windows(10, 0, "Windows 10 Pro", "Client", "19045"), "win10");
        assert_eq!(windows(10, 0, "Windows 10 Pro", "Client", "22631"), "win11");
        assert_eq!(
            windows(5, 2, "Windows Server 2003 R2", "unknown", "3790"),
            "win2k3r2"
        );
    }
}
