//! Bootloader and firmware of a Linux guest, read from its files: GRUB 2 (grub.cfg with
//! submenus, UEFI stubs, grubenv, BLS entries), GRUB Legacy, and detection of systemd-boot and
//! extlinux; /etc/default/grub and SUSE /etc/sysconfig/bootloader; the ESP's EFI binaries.
//!
//! Kernel and initrd paths in these configs are relative to the filesystem grub reads them
//! from: with a separate /boot, "/vmlinuz-X" is the guest's "/boot/vmlinuz-X". Each entry keeps
//! the path as written and gets `kernel_path`/`initrd_path` resolved in the guest.
use crate::fs::{FileType, Vfs};
use crate::inspect::linux::network::{list_files, read_text, shvars};
use crate::types::{BootloaderInfo, EspInfo};
use std::collections::HashMap;

mod grub2;
mod legacy;

const ESP_MOUNTS: &[&str] = &["/boot/efi", "/efi"];
const GRUB_CFGS: &[&str] = &["/boot/grub2/grub.cfg", "/boot/grub/grub.cfg"];
const LEGACY_CFGS: &[&str] = &["/boot/grub/menu.lst", "/boot/grub/grub.conf"];
const EXTLINUX_CFGS: &[&str] = &[
    "/boot/extlinux/extlinux.conf",
    "/boot/extlinux.conf",
    "/extlinux.conf",
    "/boot/syslinux/syslinux.cfg",
];
const BLS_DIR: &str = "/boot/loader/entries";
/// Stub → real config hops followed at most.
const MAX_REDIRECTS: usize = 3;

/// Reads the guest's bootloader configuration: kind, firmware, entries, default entry.
/// `esp_device` is the volume mounted at the ESP mountpoint, if any.
pub fn detect_bootloader(vfs: &Vfs, esp_device: Option<&str>) -> anyhow::Result<BootloaderInfo> {
    let mut info = BootloaderInfo {
        kind: "none".into(),
        ..Default::default()
    };
    let fstab_esp = fstab_esp(vfs, &mut info.warnings);
    let esp_root = ESP_MOUNTS
        .iter()
        .find(|m| vfs.is_dir(&format!("{m}/EFI")))
        .map(|m| m.to_string())
        .or_else(|| fstab_esp.as_ref().map(|(_, mp)| mp.clone()));
    let uefi = esp_device.is_some()
        || fstab_esp.is_some()
        || esp_root
            .as_ref()
            .is_some_and(|r| vfs.is_dir(&format!("{r}/EFI")));
    info.firmware = if uefi { "uefi" } else { "bios" }.into();
    if uefi {
        if let Some(root) = &esp_root {
            let device = esp_device
                .map(String::from)
                .or_else(|| fstab_esp.as_ref().map(|(s, _)| s.clone()))
                .unwrap_or_default();
            info.esp = Some(esp_info(vfs, root, device, &mut info.warnings));
        }
    }
    let defaults = read_defaults(vfs, &mut info);
    let boot_separate = vfs.mountpoints().iter().any(|m| m == "/boot");

    if !detect_grub2(
        vfs,
        uefi.then_some(esp_root.as_deref()).flatten(),
        &defaults,
        &mut info,
    ) {
        detect_other(vfs, esp_root.as_deref(), &mut info);
    }

    for e in &mut info.entries {
        e.kernel_path = e
            .kernel
            .as_deref()
            .and_then(|k| boot_path(vfs, k, boot_separate));
        e.initrd_path = e
            .initrd
            .as_deref()
            .and_then(|i| i.split_whitespace().last())
            .and_then(|i| boot_path(vfs, i, boot_separate));
    }
    Ok(info)
}

/// Bootloaders other than GRUB 2 with a grub.cfg: GRUB Legacy (parsed), systemd-boot and
/// extlinux (detected only), or a GRUB 2 install whose grub.cfg is missing.
fn detect_other(vfs: &Vfs, esp_root: Option<&str>, info: &mut BootloaderInfo) {
    if let Some(cfg) = LEGACY_CFGS.iter().find(|p| vfs.exists(p)) {
        info.kind = "grub-legacy".into();
        info.config = Some(cfg.to_string());
        if let Some(text) = read_text(vfs, cfg, &mut info.warnings) {
            let p = legacy::parse(&text, cfg);
            let spec = match p.default.as_deref() {
                // `default saved`: the number savedefault wrote to /boot/grub/default.
                Some("saved") => read_text(vfs, "/boot/grub/default", &mut info.warnings)
                    .and_then(|t| t.lines().next().map(|l| l.trim().to_string())),
                d => d.map(String::from),
            };
            info.entries = p.entries;
            let n = spec.as_deref().unwrap_or("0").parse::<usize>().unwrap_or(0);
            info.default_entry = (n < info.entries.len())
                .then_some(n)
                .or((!info.entries.is_empty()).then_some(0));
            info.default_spec = spec;
        }
    } else if let Some(conf) = systemd_boot(vfs, esp_root) {
        info.kind = "systemd-boot".into();
        info.config = Some(conf);
    } else if let Some(cfg) = EXTLINUX_CFGS.iter().find(|p| vfs.exists(p)) {
        info.kind = "extlinux".into();
        info.config = Some(cfg.to_string());
    } else if vfs.exists("/etc/default/grub") || vfs.is_dir("/boot/grub2") {
        info.kind = "grub2".into();
        info.warnings
            .push("grub 2 is installed but no grub.cfg was found".into());
    }
}

/// Guest path of a path as grub sees it: a "(hd0,1)" device prefix is dropped, and a path on a
/// separate /boot gets "/boot" in front. When the preferred reading does not exist the other
/// one is tried (a kernel named "/boot/vmlinuz" on a root-filesystem /boot, SUSE's "/@" btrfs
/// subvolume prefix); if none exists the preferred reading is returned.
fn boot_path(vfs: &Vfs, p: &str, boot_separate: bool) -> Option<String> {
    let p = if p.starts_with('(') {
        p.find(')').map(|i| &p[i + 1..]).unwrap_or(p)
    } else {
        p
    };
    if p.is_empty() || !p.starts_with('/') {
        return None;
    }
    let on_boot = format!("/boot{p}");
    let mut cands = if boot_separate {
        vec![on_boot, p.to_string()]
    } else {
        vec![p.to_string(), on_boot]
    };
    if let Some(rest) = p.strip_prefix("/@") {
        cands.push(rest.to_string());
    }
    cands
        .iter()
        .find(|c| vfs.exists(c))
        .or(cands.first())
        .cloned()
}

/// (device spec, mountpoint) of an ESP line in /etc/fstab.
fn fstab_esp(vfs: &Vfs, warnings: &mut Vec<String>) -> Option<(String, String)> {
    let text = read_text(vfs, "/etc/fstab", warnings)?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            [spec, mp, ..]
                if !spec.starts_with('#') && ESP_MOUNTS.contains(&mp.trim_end_matches('/')) =>
            {
                Some((spec.to_string(), mp.trim_end_matches('/').to_string()))
            }
            _ => None,
        }
    })
}

fn esp_info(vfs: &Vfs, root: &str, device: String, warnings: &mut Vec<String>) -> EspInfo {
    let mut files = vec![];
    let mut todo = vec![("/EFI".to_string(), 0)];
    while let Some((dir, depth)) = todo.pop() {
        let entries = match vfs.read_dir(&format!("{root}{dir}")) {
            Ok(e) => e,
            Err(e) => {
                warnings.push(format!("listing {root}{dir}: {e}"));
                continue;
            }
        };
        for e in entries {
            let p = format!("{dir}/{}", e.name);
            match e.ftype {
                FileType::Dir if depth < 4 => todo.push((p, depth + 1)),
                FileType::File if e.name.to_ascii_lowercase().ends_with(".efi") => files.push(p),
                _ => {}
            }
        }
    }
    files.sort();
    // FAT is case-insensitive; x86_64 and aarch64 removable-media paths.
    let has_fallback = files.iter().any(|f| {
        matches!(
            f.to_ascii_lowercase().as_str(),
            "/efi/boot/bootx64.efi" | "/efi/boot/bootaa64.efi"
        )
    });
    EspInfo {
        device,
        efi_files: files,
        has_fallback,
    }
}

/// /etc/default/grub then /etc/default/grub.d/*.cfg (sourced after it by grub-mkconfig, e.g.
/// Ubuntu cloud images' 50-cloudimg-settings.cfg), and SUSE's /etc/sysconfig/bootloader.
fn read_defaults(vfs: &Vfs, info: &mut BootloaderInfo) -> HashMap<String, String> {
    let mut vals: HashMap<String, String> = HashMap::new();
    let mut files = vec![];
    if vfs.exists("/etc/default/grub") {
        files.push("/etc/default/grub".to_string());
        info.defaults_file = Some("/etc/default/grub".into());
    }
    for (name, path) in list_files(vfs, "/etc/default/grub.d", &mut info.warnings) {
        if name.ends_with(".cfg") {
            files.push(path);
        }
    }
    for f in files {
        if let Some(text) = read_text(vfs, &f, &mut info.warnings) {
            for v in shvars::parse(&text, &vals).vars {
                vals.insert(v.name, v.value);
            }
        }
    }
    let cmd: Vec<&str> = ["GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT"]
        .iter()
        .filter_map(|k| vals.get(*k))
        .map(|s| s.trim())
        .collect();
    if ["GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT"]
        .iter()
        .any(|k| vals.contains_key(*k))
    {
        info.grub_cmdline_linux = Some(
            cmd.into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    info.grub_disable_linux_uuid = vals
        .get("GRUB_DISABLE_LINUX_UUID")
        .is_some_and(|v| v == "true");
    info.grub_enable_blscfg = vals.get("GRUB_ENABLE_BLSCFG").map(|v| v == "true");
    info.grub_default = vals.get("GRUB_DEFAULT").cloned();
    if let Some(text) = read_text(vfs, "/etc/sysconfig/bootloader", &mut info.warnings) {
        info.loader_type = shvars::parse(&text, &HashMap::new())
            .get("LOADER_TYPE")
            .map(String::from);
        info.defaults_file
            .get_or_insert_with(|| "/etc/sysconfig/bootloader".into());
    }
    vals
}

fn load_bls(vfs: &Vfs, warnings: &mut Vec<String>) -> Vec<grub2::BlsEntry> {
    let mut out = vec![];
    for (name, path) in list_files(vfs, BLS_DIR, warnings) {
        let Some(stem) = name.strip_suffix(".conf") else {
            continue;
        };
        if let Some(text) = read_text(vfs, &path, warnings) {
            out.push(grub2::parse_bls(&text, &path, stem));
        }
    }
    grub2::sort_bls(&mut out);
    out
}

fn parent(p: &str) -> &str {
    p.rfind('/').map(|i| &p[..i]).unwrap_or("/")
}

/// Finds and reads grub.cfg; false when there is none. On UEFI the vendor directory on the ESP
/// comes first: RHEL 7 and SLES keep the real config there (or a stub that hands over to
/// /boot/grub2/grub.cfg, as RHEL 9 and Ubuntu do).
fn detect_grub2(
    vfs: &Vfs,
    esp_root: Option<&str>,
    defaults: &HashMap<String, String>,
    info: &mut BootloaderInfo,
) -> bool {
    let mut cands: Vec<String> = vec![];
    if let Some(root) = esp_root {
        let mut dirs: Vec<String> = vfs
            .read_dir(&format!("{root}/EFI"))
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.ftype == FileType::Dir)
            .map(|e| e.name)
            .collect();
        // The removable-media BOOT directory only as a last resort.
        dirs.sort_by_key(|d| d.eq_ignore_ascii_case("boot"));
        cands.extend(dirs.iter().map(|d| format!("{root}/EFI/{d}/grub.cfg")));
    }
    cands.extend(GRUB_CFGS.iter().map(|s| s.to_string()));
    let Some(first) = cands.into_iter().find(|c| vfs.exists(c)) else {
        return false;
    };
    let boot_separate = vfs.mountpoints().iter().any(|m| m == "/boot");
    let force_bls = defaults
        .get("GRUB_ENABLE_BLSCFG")
        .is_some_and(|v| v == "true");
    let bls = load_bls(vfs, &mut info.warnings);
    info.kind = "grub2".into();
    let mut cfg = first;
    let mut hops = 0;
    loop {
        let text = read_text(vfs, &cfg, &mut info.warnings).unwrap_or_default();
        // `$prefix/grubenv` sits beside the config; fall back to the usual places.
        let env_path = std::iter::once(format!("{}/grubenv", parent(&cfg)))
            .chain([
                "/boot/grub2/grubenv".to_string(),
                "/boot/grub/grubenv".to_string(),
            ])
            .find(|p| vfs.exists(p));
        let env = env_path
            .and_then(|p| read_text(vfs, &p, &mut info.warnings))
            .map(|t| grub2::parse_grubenv(&t))
            .unwrap_or_default();
        let p = grub2::parse_cfg(&text, &cfg, &env, &bls, force_bls);
        if p.entries.is_empty() && !p.bls && hops < MAX_REDIRECTS {
            let next = p
                .redirect
                .as_deref()
                .and_then(|r| boot_path(vfs, r, boot_separate))
                .filter(|n| *n != cfg && vfs.exists(n));
            if let Some(next) = next {
                info.stub_config.get_or_insert(cfg.clone());
                cfg = next;
                hops += 1;
                continue;
            }
        }
        let spec = p.default_spec.clone().map(|s| {
            if s == "saved" {
                env.get("saved_entry").cloned().unwrap_or_default()
            } else {
                s
            }
        });
        info.default_entry =
            grub2::resolve_default(&p.items, &p.entries, spec.as_deref().unwrap_or(""))
                .or(p.first_bls)
                .or_else(|| grub2::resolve_default(&p.items, &p.entries, "0"));
        info.default_spec = spec;
        info.bls = p.bls;
        info.entries = p.entries;
        info.config = Some(cfg);
        return true;
    }
}

/// loader.conf of systemd-boot on the ESP (or XBOOTLDR /boot), or its EFI binary.
fn systemd_boot(vfs: &Vfs, esp_root: Option<&str>) -> Option<String> {
    let mut roots: Vec<&str> = esp_root.into_iter().collect();
    roots.push("/boot");
    for r in &roots {
        let conf = format!("{r}/loader/loader.conf");
        if vfs.exists(&conf) {
            return Some(conf);
        }
    }
    let r = esp_root?;
    let dir = format!("{r}/EFI/systemd");
    vfs.read_dir(&dir)
        .ok()?
        .into_iter()
        .find(|e| e.name.to_ascii_lowercase().starts_with("systemd-boot"))
        .map(|e| format!("{dir}/{}", e.name))
}

#[cfg(test)]
mod tests;
