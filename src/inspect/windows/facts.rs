//! The SYSTEM-hive and file facts a Windows repair decides on: control set, drive letters,
//! hibernation / Fast Startup, drivers of interest and their Start values, hypervisor tools,
//! static addresses, how boot drivers are bound (CriticalDeviceDatabase or DriverDatabase), and
//! what an earlier revirt run left (staged drivers, first-boot script). Pure reads.
use super::hive::{Hive, Key, RegData};
use super::resolve_ci;
use crate::fs::{FileType, Vfs};
use crate::types::{WinInterface, WinService, WindowsInfo};
use anyhow::Result;

/// Services whose Start value matters when moving to KVM: storage and network drivers.
pub const DRIVERS_OF_INTEREST: &[&str] = &[
    "viostor",
    "vioscsi",
    "netkvm",
    "pvscsi",
    "LSI_SAS",
    "LSI_SCSI",
    "LSI_SAS2",
    "storvsc",
    "vmxnet3ndis6",
    "vmxnet3",
    "netvsc",
    "E1G60",
    "e1iexpress",
    "e1i63x64",
    "intelide",
    "atapi",
    "msahci",
    "storahci",
    "iaStorV",
];

/// Hypervisor tools that fail or misbehave on KVM: (service, product).
pub const GUEST_TOOLS: &[(&str, &str)] = &[
    ("VMTools", "vmware-tools"),
    ("VGAuthService", "vmware-tools"),
    ("vmci", "vmware-tools"),
    ("vm3dmp", "vmware-tools"),
    ("vmhgfs", "vmware-tools"),
    ("vmmouse", "vmware-tools"),
    ("vmvss", "vmware-tools"),
    ("vmicheartbeat", "hyperv-integration"),
    ("vmicshutdown", "hyperv-integration"),
    ("vmictimesync", "hyperv-integration"),
    ("xenbus", "xen-pv"),
    ("xenvbd", "xen-pv"),
    ("xennet", "xen-pv"),
    ("prl_tools", "parallels-tools"),
];

/// The virtio PCI ids revirt binds boot-critical storage to (legacy and modern).
pub const VIRTIO_STORAGE_IDS: &[(&str, &str)] = &[
    ("viostor", "PCI\\VEN_1AF4&DEV_1001"),
    ("viostor", "PCI\\VEN_1AF4&DEV_1042"),
    ("vioscsi", "PCI\\VEN_1AF4&DEV_1004"),
    ("vioscsi", "PCI\\VEN_1AF4&DEV_1048"),
];

fn sz(k: &Key, name: &str) -> Result<Option<String>> {
    Ok(match k.value(name)?.map(|v| v.decode()) {
        Some(RegData::Sz(s) | RegData::ExpandSz(s)) => Some(s),
        Some(RegData::MultiSz(v)) => v.into_iter().next(),
        _ => None,
    })
}

fn multi(k: &Key, name: &str) -> Result<Vec<String>> {
    Ok(match k.value(name)?.map(|v| v.decode()) {
        Some(RegData::MultiSz(v)) => v.into_iter().filter(|s| !s.is_empty()).collect(),
        Some(RegData::Sz(s)) => s
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        _ => vec![],
    })
}

/// A service key's state; `file` resolves a kernel driver's ImagePath on the volume.
fn service(vfs: &Vfs, system_root: &str, k: &Key, name: &str) -> Result<WinService> {
    let image_path = sz(k, "ImagePath")?;
    let service_type = k.dword("Type")?;
    let file_present = match (&image_path, service_type) {
        (Some(p), Some(1 | 2)) => Some(driver_file(vfs, system_root, p)?.is_some()),
        (None, Some(1 | 2)) => Some(
            driver_file(vfs, system_root, &format!("system32\\drivers\\{name}.sys"))?.is_some(),
        ),
        _ => None,
    };
    Ok(WinService {
        name: name.to_string(),
        start: k.dword("Start")?,
        service_type,
        group: sz(k, "Group")?,
        image_path,
        file_present,
    })
}

/// Resolves a driver ImagePath ("system32\drivers\x.sys", "\SystemRoot\System32\...",
/// "%SystemRoot%\...") to the stored guest path of an existing file.
pub fn driver_file(vfs: &Vfs, system_root: &str, image: &str) -> Result<Option<String>> {
    let p = image.trim().trim_matches('"').replace('/', "\\");
    let lower = p.to_ascii_lowercase();
    let rel = [
        "\\systemroot\\",
        "%systemroot%\\",
        "\\??\\c:\\windows\\",
        "c:\\windows\\",
    ]
    .iter()
    .find_map(|pre| lower.starts_with(pre).then(|| &p[pre.len()..]))
    .unwrap_or(&p);
    let path = format!("{system_root}/{}", rel.replace('\\', "/"));
    Ok(resolve_ci(vfs, &path)?
        .filter(|s| matches!(vfs.stat(s), Ok(Some(m)) if m.ftype == FileType::File)))
}

/// Reads the control-set facts into `w` (whose system_root is set).
pub fn detect_system_facts(vfs: &Vfs, sys: &Hive, w: &mut WindowsInfo) -> Result<()> {
    let root = w.system_root.clone();
    let cur = match sys.open_key("Select")? {
        Some(k) => k.dword("Current")?,
        None => None,
    };
    w.current_control_set = cur;
    let cs = format!("ControlSet{:03}", cur.unwrap_or(1));
    if let Some(md) = sys.open_key("MountedDevices")? {
        for v in md.values()? {
            let Some(letter) = v.name.strip_prefix("\\DosDevices\\") else {
                continue;
            };
            let d = &v.data;
            let what = if d.len() == 12 {
                let sig = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
                let off = u64::from_le_bytes(d[4..12].try_into().unwrap_or_default());
                format!("mbr:{sig:08x}@{off}")
            } else if d.len() == 24 && d.starts_with(b"DMIO:ID:") {
                format!("gpt:{}", guid(&d[8..24]))
            } else {
                "other".into()
            };
            w.drive_letters.insert(letter.to_string(), what);
        }
    }
    let dword_at = |key: &str, name: &str| -> Result<Option<u32>> {
        Ok(match sys.open_key(&format!("{cs}\\{key}"))? {
            Some(k) => k.dword(name)?,
            None => None,
        })
    };
    w.real_time_is_universal = dword_at("Control\\TimeZoneInformation", "RealTimeIsUniversal")?;
    w.san_policy = dword_at("Services\\partmgr\\Parameters", "SanPolicy")?;
    w.crash_auto_reboot = dword_at("Control\\CrashControl", "AutoReboot")?;
    if let Some(p) = sys.open_key(&format!("{cs}\\Control\\Session Manager\\Power"))? {
        w.fast_startup = p.dword("HiberbootEnabled")? == Some(1);
    }
    if let Some(h) = resolve_ci(vfs, "/hiberfil.sys")? {
        // The header's first four bytes: "hibr"/"HIBR" while a session is saved; "wake",
        // "RSTR" or zeros once Windows resumed or discarded it.
        let head = vfs
            .read_file(&h)
            .map(|b| b.get(..4).map(<[u8]>::to_vec))
            .ok()
            .flatten();
        let saved = head
            .as_deref()
            .is_some_and(|b| b.eq_ignore_ascii_case(b"hibr"));
        w.hiberfil = Some(if saved { "hibernated" } else { "clean" }.into());
    }
    if let Some(svcs) = sys.open_key(&format!("{cs}\\Services"))? {
        for sk in svcs.subkeys()? {
            let name = sk.name()?;
            if DRIVERS_OF_INTEREST
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&name))
            {
                w.drivers.push(service(vfs, &root, &sk, &name)?);
            }
            if GUEST_TOOLS
                .iter()
                .any(|(d, _)| d.eq_ignore_ascii_case(&name))
            {
                w.guest_tools.push(service(vfs, &root, &sk, &name)?);
            }
        }
        if let Some(ifs) = svcs
            .subkey("Tcpip")?
            .and_then(|t| t.subkey("Parameters").ok().flatten())
            .and_then(|p| p.subkey("Interfaces").ok().flatten())
        {
            for i in ifs.subkeys()? {
                let mut dns = multi(&i, "NameServer")?;
                if dns.is_empty() {
                    dns = multi(&i, "DhcpNameServer")?;
                }
                w.interfaces.push(WinInterface {
                    guid: i.name()?,
                    dhcp: i.dword("EnableDHCP")? == Some(1),
                    addresses: multi(&i, "IPAddress")?
                        .into_iter()
                        .filter(|a| a != "0.0.0.0")
                        .collect(),
                    masks: multi(&i, "SubnetMask")?,
                    gateways: multi(&i, "DefaultGateway")?,
                    dns,
                });
            }
        }
    }
    if let Some(cdd) = sys.open_key(&format!("{cs}\\Control\\CriticalDeviceDatabase"))? {
        w.critical_device_database = true;
        for (_, id) in VIRTIO_STORAGE_IDS {
            let k = id.replace('\\', "#").to_ascii_lowercase();
            if let Some(e) = cdd.subkey(&k)? {
                if let Some(s) = sz(&e, "Service")? {
                    w.virtio_bindings.insert(id.to_string(), s);
                }
            }
        }
    }
    if let Some(db) = sys.open_key("DriverDatabase")? {
        w.driver_database = true;
        for (_, id) in VIRTIO_STORAGE_IDS {
            let _ = &db;
            if let Some(e) = sys.open_key(&format!("DriverDatabase\\DeviceIds\\{id}"))? {
                // The value names are the inf files (oemN.inf) that match this id.
                if let Some(v) = e.values()?.into_iter().next() {
                    w.virtio_bindings.insert(id.to_string(), v.name);
                }
            }
        }
    }
    w.group_policy = resolve_ci(vfs, &format!("{root}/System32/GroupPolicy/gpt.ini"))?.is_some();
    if let Some(ini) = resolve_ci(
        vfs,
        &format!("{root}/System32/GroupPolicy/Machine/Scripts/scripts.ini"),
    )? {
        let text = decode_text(&vfs.read_file(&ini)?);
        let script = resolve_ci(vfs, crate::inspect::windows::FIRSTBOOT_SCRIPT)?;
        w.revirt_firstboot = script.is_some()
            && text
                .to_ascii_lowercase()
                .contains(&FIRSTBOOT_CMDLINE.to_ascii_lowercase());
    }
    if let Some(dir) = resolve_ci(vfs, &format!("{root}/Drivers/VirtIO"))? {
        if vfs.is_dir(&dir) {
            let mut v: Vec<String> = vfs
                .read_dir(&dir)?
                .into_iter()
                .filter(|e| e.ftype == FileType::Dir)
                .map(|e| e.name)
                .collect();
            v.sort();
            w.staged_drivers = v;
        }
    }
    Ok(())
}

/// Installed products that are another hypervisor's tools: (DisplayName prefix, product).
pub const TOOL_PRODUCTS: &[(&str, &str)] = &[
    ("VMware Tools", "vmware-tools"),
    ("Citrix XenServer", "xen-pv"),
    ("XenServer VM Tools", "xen-pv"),
    ("Citrix Hypervisor", "xen-pv"),
    ("Parallels Tools", "parallels-tools"),
    (
        "Oracle VM VirtualBox Guest Additions",
        "virtualbox-additions",
    ),
];

/// Every program's Uninstall key in SOFTWARE: the native view, then WOW6432Node (32-bit
/// programs on 64-bit Windows).
pub fn uninstall_keys(sw: &Hive) -> Result<Vec<Key<'_>>> {
    let mut out = vec![];
    for view in [
        "Microsoft\\Windows\\CurrentVersion\\Uninstall",
        "WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall",
    ] {
        if let Some(u) = sw.open_key(view)? {
            out.extend(u.subkeys()?);
        }
    }
    Ok(out)
}

/// Hypervisor tools with an uninstaller, from SOFTWARE\...\Uninstall (64- and 32-bit views).
pub fn detect_software_facts(sw: &Hive, w: &mut WindowsInfo) -> Result<()> {
    for k in uninstall_keys(sw)? {
        let Some(name) = sz(&k, "DisplayName")? else {
            continue;
        };
        let Some((_, product)) = TOOL_PRODUCTS.iter().find(|(p, _)| {
            name.to_ascii_lowercase()
                .starts_with(&p.to_ascii_lowercase())
        }) else {
            continue;
        };
        let key = k.name()?;
        if w.tool_uninstallers.iter().any(|t| t.key == key) {
            continue;
        }
        let command = match sz(&k, "QuietUninstallString")? {
            Some(c) => Some(c),
            None => sz(&k, "UninstallString")?,
        };
        w.tool_uninstallers.push(crate::types::WinUninstaller {
            name,
            product: product.to_string(),
            key,
            command,
            msi: k.dword("WindowsInstaller")? == Some(1),
        });
    }
    Ok(())
}

/// The command line revirt's first-boot script is registered with (scripts.ini).
pub const FIRSTBOOT_CMDLINE: &str = "C:\\ProgramData\\revirt\\firstboot.cmd";

/// Text of a Windows config file: UTF-16LE with BOM, UTF-8 with or without BOM, or Latin-1.
pub fn decode_text(b: &[u8]) -> String {
    if let Some(rest) = b.strip_prefix(&[0xff, 0xfe]) {
        let u: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&u);
    }
    let b = b.strip_prefix(&[0xef, 0xbb, 0xbf]).unwrap_or(b);
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|&c| c as char).collect(),
    }
}

/// A GUID from its 16 on-disk bytes (mixed endian), as Windows prints it.
fn guid(b: &[u8]) -> String {
    format!(
        "{{{:08X}-{:04X}-{:04X}-{}-{}}}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        hex::encode_upper(&b[8..10]),
        hex::encode_upper(&b[10..16])
    )
}
