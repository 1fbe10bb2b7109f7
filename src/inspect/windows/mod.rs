//! Windows guest facts: finds the system root and reads product, version, edition and
//! architecture from the SOFTWARE and SYSTEM registry hives (with [`hive`], in pure Rust).
pub mod facts;
pub mod hive;
pub mod hivelog;
pub mod layout;

use crate::fs::{FileType, Vfs};
use crate::types::{HiveRecovery, WindowsInfo};
use anyhow::Context;
use hive::Hive;

/// Resolves `path` component by component, matching each name case-insensitively against the
/// directory listing (Windows names are case-insensitive; a guest path may differ in case from
/// what is stored). Returns the path as stored, or `Ok(None)` when a component is missing.
pub fn resolve_ci(vfs: &Vfs, path: &str) -> anyhow::Result<Option<String>> {
    let mut cur = String::new();
    for comp in path.split(['/', '\\']).filter(|c| !c.is_empty()) {
        let dir = if cur.is_empty() { "/" } else { cur.as_str() };
        let entries = vfs
            .read_dir(dir)
            .with_context(|| format!("listing {dir}"))?;
        let Some(e) = entries.iter().find(|e| hive::names_equal(&e.name, comp)) else {
            return Ok(None);
        };
        cur = format!("{cur}/{}", e.name);
    }
    Ok(Some(if cur.is_empty() { "/".into() } else { cur }))
}

/// A registry hive file as read from the guest, with the `.LOG1` / `.LOG2` transaction logs
/// stored next to it (names matched case-insensitively; missing logs are simply absent).
pub struct HiveFiles {
    /// Stored guest path of the primary file.
    pub path: String,
    pub data: Vec<u8>,
    pub logs: Vec<HiveLogFile>,
}

/// One transaction log of a hive.
pub struct HiveLogFile {
    /// "LOG1" or "LOG2".
    pub which: &'static str,
    /// Stored guest path.
    pub path: String,
    pub data: Vec<u8>,
}

impl HiveFiles {
    /// Reads the hive at `path` (a stored or case-insensitive guest path) and its logs.
    pub fn read(vfs: &Vfs, path: &str) -> anyhow::Result<Self> {
        let stored = resolve_ci(vfs, path)?.unwrap_or_else(|| path.to_string());
        let data = vfs
            .read_file(&stored)
            .with_context(|| format!("reading registry hive {stored}"))?;
        let (dir, file) = stored.rsplit_once('/').unwrap_or(("", &stored));
        let dir = if dir.is_empty() { "/" } else { dir };
        let entries = vfs
            .read_dir(dir)
            .with_context(|| format!("listing {dir}"))?;
        let mut logs = vec![];
        for which in ["LOG1", "LOG2"] {
            let want = format!("{file}.{which}");
            let Some(e) = entries
                .iter()
                .find(|e| e.ftype == FileType::File && hive::names_equal(&e.name, &want))
            else {
                continue;
            };
            let lp = format!("{}/{}", dir.trim_end_matches('/'), e.name);
            let data = vfs
                .read_file(&lp)
                .with_context(|| format!("reading transaction log {lp}"))?;
            logs.push(HiveLogFile {
                which,
                path: lp,
                data,
            });
        }
        Ok(HiveFiles {
            path: stored,
            data,
            logs,
        })
    }

    /// The contents of "LOG1" or "LOG2", when present.
    pub fn log(&self, which: &str) -> Option<&[u8]> {
        self.logs
            .iter()
            .find(|l| l.which == which)
            .map(|l| l.data.as_slice())
    }

    /// True when the primary needs its logs replayed (sequence numbers differ, or its base
    /// block is invalid).
    pub fn is_dirty(&self) -> bool {
        hivelog::is_dirty(&self.data)
    }

    /// Replays the logs over the primary as Windows does at load (the primary unchanged when
    /// it is clean).
    pub fn recover(&self) -> Result<hivelog::Recovered, hivelog::HiveLogError> {
        hivelog::recover(&self.data, self.log("LOG1"), self.log("LOG2"))
    }

    /// Parses the hive as Windows would load it: recovered from its logs in memory when dirty.
    /// Returns the record of that recovery (None for a clean hive). When no log is usable, the
    /// stale primary is parsed and the record carries the error.
    pub fn open(self, name: &str) -> anyhow::Result<(Hive, Option<HiveRecovery>)> {
        if !self.is_dirty() {
            return Ok((Hive::from_bytes(&self.path, self.data)?, None));
        }
        let mut rec = HiveRecovery {
            hive: name.to_string(),
            path: self.path.clone(),
            logs: self.logs.iter().map(|l| l.path.clone()).collect(),
            ..Default::default()
        };
        match self.recover() {
            Ok(r) => {
                rec.format = r.format.map(|f| match f {
                    hivelog::LogFormat::New => "new".to_string(),
                    hivelog::LogFormat::Old => "old".to_string(),
                });
                rec.entries_applied = r.entries_applied;
                rec.pages_applied = r.pages_applied;
                rec.first_seq = r.first_seq;
                rec.last_seq = r.last_seq;
                rec.logs_used = r.logs_used.iter().map(|s| s.to_string()).collect();
                rec.final_seq = Some(r.final_seq);
                rec.notes = r.notes.iter().map(ToString::to_string).collect();
                let hive = Hive::from_bytes(&self.path, r.data)
                    .with_context(|| format!("{}: as recovered from its logs", self.path))?;
                Ok((hive, Some(rec)))
            }
            Err(e) => {
                rec.error = Some(e.to_string());
                Ok((Hive::from_bytes(&self.path, self.data)?, Some(rec)))
            }
        }
    }
}

/// Reads the hive at `path` as Windows would load it (recovered from its logs when dirty).
pub fn read_hive(vfs: &Vfs, path: &str) -> anyhow::Result<Hive> {
    read_hive_logged(vfs, path, "").map(|(h, _)| h)
}

/// [`read_hive`] with the record of the log recovery, for a hive called `name` ("SYSTEM").
pub fn read_hive_logged(
    vfs: &Vfs,
    path: &str,
    name: &str,
) -> anyhow::Result<(Hive, Option<HiveRecovery>)> {
    let name = if name.is_empty() {
        path.rsplit('/').next().unwrap_or(path)
    } else {
        name
    };
    HiveFiles::read(vfs, path)?.open(name)
}

/// Returns Windows facts when `vfs` (an NTFS volume mounted at /) holds a Windows system root:
/// a /Windows or /WINNT directory (any case) with System32/config/SOFTWARE.
pub fn detect_windows(vfs: &Vfs) -> anyhow::Result<Option<WindowsInfo>> {
    let mut system_root = None;
    for cand in ["Windows", "WINNT"] {
        if let Some(root) = resolve_ci(vfs, cand)? {
            if !vfs.is_dir(&root) {
                continue;
            }
            if let Some(sw) = resolve_ci(vfs, &format!("{root}/System32/config/SOFTWARE"))? {
                if matches!(vfs.stat(&sw)?, Some(m) if m.ftype == FileType::File) {
                    system_root = Some((root, sw));
                    break;
                }
            }
        }
    }
    let Some((system_root, software)) = system_root else {
        return Ok(None);
    };
    let (sw, sw_rec) = read_hive_logged(vfs, &software, "SOFTWARE")?;
    let system = match resolve_ci(vfs, &format!("{system_root}/System32/config/SYSTEM"))? {
        Some(path) => Some(read_hive_logged(vfs, &path, "SYSTEM")?),
        None => None,
    };
    let cv = sw
        .open_key("Microsoft\\Windows NT\\CurrentVersion")?
        .with_context(|| format!("{software}: no Microsoft\\Windows NT\\CurrentVersion key"))?;
    let registry_product_name = cv.string("ProductName")?.unwrap_or_default();
    let mut product_name = registry_product_name.clone();
    // Windows 10 and later keep CurrentVersion at "6.3" for compatibility; the real version is in
    // the Current{Major,Minor}VersionNumber DWORDs, which older versions do not have.
    let (major, minor) = match (
        cv.dword("CurrentMajorVersionNumber")?,
        cv.dword("CurrentMinorVersionNumber")?,
    ) {
        (Some(ma), mi) => (ma, mi.unwrap_or(0)),
        _ => {
            let v = cv
                .string("CurrentVersion")?
                .with_context(|| format!("{software}: CurrentVersion has no version value"))?;
            parse_version(&v)
                .with_context(|| format!("{software}: CurrentVersion {v:?} is not MAJOR.MINOR"))?
        }
    };
    let build = match cv.string("CurrentBuildNumber")? {
        Some(b) => Some(b),
        None => cv.string("CurrentBuild")?,
    };
    // Windows 11 still says "Windows 10 Pro" etc. in ProductName (Microsoft never changed it);
    // builds from 22000 on are Windows 11.
    let build_no: Option<u32> = build.as_deref().and_then(|b| b.trim().parse().ok());
    if major == 10 && build_no.is_some_and(|b| b >= 22000) {
        if let Some(rest) = product_name.strip_prefix("Windows 10") {
            product_name = format!("Windows 11{rest}");
        }
    }
    // InstallationType appeared with Windows 7 / 2008 R2; before that only the name tells.
    let stored_installation_type = cv.string("InstallationType")?;
    let installation_type = match stored_installation_type.clone() {
        Some(t) => Some(t),
        None if product_name.contains("Server") => Some("Server".into()),
        None if !product_name.is_empty() => Some("Client".into()),
        None => None,
    };
    let edition_id = cv.string("EditionID")?;
    let arch = match detect_arch_registry(system.as_ref().map(|(h, _)| h))? {
        Some(a) => a,
        None => detect_arch_pe(vfs, &system_root)?.unwrap_or_else(|| "unknown".into()),
    };
    // Best effort: a damaged Tcpip key must not hide the whole guest.
    let hostname = system
        .as_ref()
        .and_then(|(h, _)| detect_hostname(h).ok().flatten());
    let mut w = WindowsInfo {
        hostname,
        product_name,
        version: format!("{major}.{minor}"),
        major,
        minor,
        build,
        installation_type,
        edition_id,
        arch,
        system_root: system_root.clone(),
        ..Default::default()
    };
    // Dirty hives are read as recovered from their logs: the facts are the newest data.
    for r in [system.as_ref().and_then(|(_, r)| r.clone()), sw_rec]
        .into_iter()
        .flatten()
    {
        w.dirty_hives.push(r.hive.clone());
        w.hive_recovery.push(r);
    }
    if let Some((sys, _)) = &system {
        facts::detect_system_facts(vfs, sys, &mut w)?;
    }
    facts::detect_software_facts(&sw, &mut w)?;
    w.identity = super::identity::windows_identity(
        &w,
        &registry_product_name,
        stored_installation_type.as_deref(),
    );
    Ok(Some(w))
}

/// The current control set's key `path` (below ControlSet00N) in the SYSTEM hive.
fn current_key<'h>(sys: &'h Hive, path: &str) -> anyhow::Result<Option<hive::Key<'h>>> {
    let current = match sys.open_key("Select")? {
        Some(k) => k.dword("Current")?,
        None => None,
    };
    let Some(current) = current else {
        return Ok(None);
    };
    Ok(sys.open_key(&format!("ControlSet{current:03}\\{path}"))?)
}

/// The computer name: Tcpip\Parameters `Hostname` (what virt-inspector reports), else the
/// NetBIOS name in Control\ComputerName\ComputerName.
fn detect_hostname(sys: &Hive) -> anyhow::Result<Option<String>> {
    if let Some(k) = current_key(sys, "Services\\Tcpip\\Parameters")? {
        if let Some(h) = k.string("Hostname")?.filter(|h| !h.is_empty()) {
            return Ok(Some(h));
        }
    }
    if let Some(k) = current_key(sys, "Control\\ComputerName\\ComputerName")? {
        return Ok(k.string("ComputerName")?.filter(|h| !h.is_empty()));
    }
    Ok(None)
}

/// Where revirt's first-boot script lives on the system volume (stored-case lookup).
pub const FIRSTBOOT_SCRIPT: &str = "/ProgramData/revirt/firstboot.cmd";

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Maps PROCESSOR_ARCHITECTURE to the names revirt reports.
fn arch_name(a: &str) -> String {
    match a.to_ascii_uppercase().as_str() {
        "AMD64" => "x86_64".into(),
        "X86" => "i386".into(),
        "ARM64" => "aarch64".into(),
        "IA64" => "ia64".into(),
        _ => a.to_string(),
    }
}

/// PROCESSOR_ARCHITECTURE from the current control set of the SYSTEM hive.
fn detect_arch_registry(sys: Option<&Hive>) -> anyhow::Result<Option<String>> {
    let Some(sys) = sys else {
        return Ok(None);
    };
    let current = match sys.open_key("Select")? {
        Some(k) => k.dword("Current")?,
        None => None,
    };
    let Some(current) = current else {
        return Ok(None);
    };
    let env = format!("ControlSet{current:03}\\Control\\Session Manager\\Environment");
    let Some(k) = sys.open_key(&env)? else {
        return Ok(None);
    };
    Ok(k.string("PROCESSOR_ARCHITECTURE")?.map(|a| arch_name(&a)))
}

/// Architecture from the PE header (the machine field of the COFF header) of the kernel, else
/// of cmd.exe, the binary libguestfs reads (a stripped-down or phony install may have only
/// that one, e.g. libguestfs's own Windows 7 test guest).
fn detect_arch_pe(vfs: &Vfs, system_root: &str) -> anyhow::Result<Option<String>> {
    for bin in ["ntoskrnl.exe", "cmd.exe"] {
        let Some(path) = resolve_ci(vfs, &format!("{system_root}/System32/{bin}"))? else {
            continue;
        };
        let data = vfs
            .read_file(&path)
            .with_context(|| format!("reading {path}"))?;
        if let Some(m) = pe_machine(&data) {
            return Ok(Some(m.to_string()));
        }
    }
    Ok(None)
}

fn pe_machine(d: &[u8]) -> Option<&'static str> {
    if d.get(0..2)? != b"MZ" {
        return None;
    }
    let pe = u32::from_le_bytes(d.get(0x3c..0x40)?.try_into().ok()?) as usize;
    if d.get(pe..pe.checked_add(4)?)? != b"PE\0\0" {
        return None;
    }
    let m = d.get(pe + 4..pe + 6)?;
    match u16::from_le_bytes([m[0], m[1]]) {
        0x8664 => Some("x86_64"),
        0x014c => Some("i386"),
        0xaa64 => Some("aarch64"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::hive::build::Builder;
    use super::hive::{REG_DWORD, REG_SZ};
    use super::*;
    use crate::fs::HostDirFs;
    use std::rc::Rc;

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(|u| u.to_le_bytes())
            .collect()
    }

    enum V<'a> {
        S(&'a str, &'a str),
        D(&'a str, u32),
    }

    /// A hive holding one key path with values.
    fn hive_with(path: &[&str], values: &[V]) -> Vec<u8> {
        let mut b = Builder::new();
        let vals: Vec<u32> = values
            .iter()
            .map(|v| match v {
                V::S(n, s) => b.vk(n, REG_SZ, &utf16(s), false),
                V::D(n, d) => b.vk(n, REG_DWORD, &d.to_le_bytes(), false),
            })
            .collect();
        let mut k = b.nk(path[path.len() - 1], &[], b"lh", &vals);
        for name in path[..path.len() - 1].iter().rev() {
            k = b.nk(name, &[k], b"lh", &[]);
        }
        let root = b.nk("ROOT", &[k], b"lh", &[]);
        b.finish(root)
    }

    fn system_hive(arch: &str) -> Vec<u8> {
        let mut b = Builder::new();
        let v = b.vk("PROCESSOR_ARCHITECTURE", REG_SZ, &utf16(arch), false);
        let env = b.nk("Environment", &[], b"lh", &[v]);
        let sm = b.nk("Session Manager", &[env], b"lh", &[]);
        let ctl = b.nk("Control", &[sm], b"lh", &[]);
        let cs2 = b.nk("ControlSet002", &[ctl], b"lh", &[]);
        let cur = b.vk("Current", REG_DWORD, &2u32.to_le_bytes(), false);
        let sel = b.nk("Select", &[], b"lh", &[cur]);
        let root = b.nk("ROOT", &[cs2, sel], b"lh", &[]);
        b.finish(root)
    }

    fn guest(
        root_dir: &str,
        software: Vec<u8>,
        system: Option<Vec<u8>>,
        kernel: Option<Vec<u8>>,
    ) -> (tempfile::TempDir, Vfs) {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join(root_dir).join("system32/CONFIG");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("software"), software).unwrap();
        if let Some(s) = system {
            std::fs::write(cfg.join("SYSTEM"), s).unwrap();
        }
        if let Some(k) = kernel {
            std::fs::write(d.path().join(root_dir).join("system32/ntoskrnl.exe"), k).unwrap();
        }
        let vfs = Vfs::new(Rc::new(HostDirFs {
            root: d.path().into(),
        }));
        (d, vfs)
    }

    const CV: &[&str] = &["Microsoft", "Windows NT", "CurrentVersion"];

    #[test]
    fn windows_11_is_named_from_the_build_number() {
        let sw = hive_with(
            CV,
            &[
                V::S("ProductName", "Windows 10 Pro"),
                V::D("CurrentMajorVersionNumber", 10),
                V::D("CurrentMinorVersionNumber", 0),
                V::S("CurrentVersion", "6.3"),
                V::S("CurrentBuildNumber", "22631"),
                V::S("InstallationType", "Client"),
                V::S("EditionID", "Professional"),
            ],
        );
        let (_d, vfs) = guest("windows", sw, Some(system_hive("AMD64")), None);
        let w = detect_windows(&vfs).unwrap().unwrap();
        assert_eq!(w.product_name, "Windows 11 Pro");
        assert_eq!((w.major, w.minor, w.version.as_str()), (10, 0, "10.0"));
        assert_eq!(w.build.as_deref(), Some("22631"));
        assert_eq!(w.edition_id.as_deref(), Some("Professional"));
        assert_eq!(w.installation_type.as_deref(), Some("Client"));
        assert_eq!(w.arch, "x86_64");
        assert_eq!(w.system_root, "/windows");
    }

    #[test]
    fn old_windows_uses_current_version_and_pe_fallback() {
        let sw = hive_with(
            CV,
            &[
                V::S("ProductName", "Windows Server 2008 R2 Standard"),
                V::S("CurrentVersion", "6.1"),
                V::S("CurrentBuildNumber", "7601"),
            ],
        );
        let mut pe = vec![0u8; 0x100];
        pe[0..2].copy_from_slice(b"MZ");
        pe[0x3c] = 0x80;
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        pe[0x84..0x86].copy_from_slice(&0x14cu16.to_le_bytes());
        let (_d, vfs) = guest("WINNT", sw, None, Some(pe));
        let w = detect_windows(&vfs).unwrap().unwrap();
        assert_eq!((w.major, w.minor), (6, 1));
        assert_eq!(w.product_name, "Windows Server 2008 R2 Standard");
        assert_eq!(w.installation_type.as_deref(), Some("Server"));
        assert_eq!(w.arch, "i386");
        assert_eq!(w.system_root, "/WINNT");
    }

    #[test]
    fn no_windows_or_bad_hive() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("Windows/System32")).unwrap();
        let vfs = Vfs::new(Rc::new(HostDirFs {
            root: d.path().into(),
        }));
        assert!(detect_windows(&vfs).unwrap().is_none());
        let (_d, vfs) = guest("Windows", b"regf but not really".to_vec(), None, None);
        let e = detect_windows(&vfs).unwrap_err();
        assert!(
            format!("{e:#}").contains("CONFIG/software: corrupt registry hive at offset 0x0"),
            "{e:#}"
        );
        assert_eq!(pe_machine(b"MZ"), None);
    }

    /// A config folder holding a real dirty hive from ../shared/winlogs as SYSTEM, its logs under
    /// the names given; None when that data folder is absent.
    fn real_dirty(logs: &[(&str, &[u8])]) -> Option<(tempfile::TempDir, Vfs)> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/winlogs");
        let hive = std::fs::read(src.join("yarp-NewDirtyHive1")).ok()?;
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("Windows/System32/config");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("SYSTEM"), hive).unwrap();
        for (name, data) in logs {
            let data = match *data {
                b"LOG1" | b"LOG2" => {
                    let ext = std::str::from_utf8(data).unwrap();
                    std::fs::read(src.join(format!("yarp-NewDirtyHive1.{ext}"))).unwrap()
                }
                other => other.to_vec(),
            };
            std::fs::write(cfg.join(name), data).unwrap();
        }
        let vfs = Vfs::new(Rc::new(HostDirFs {
            root: d.path().into(),
        }));
        Some((d, vfs))
    }

    fn key_names(h: &Hive) -> Vec<String> {
        let mut v: Vec<String> = h
            .root()
            .subkeys()
            .unwrap()
            .iter()
            .map(|k| k.name().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_dirty_hive_is_read_as_recovered_from_its_logs() {
        // Logs found whatever their case; a directory named like a log is no log.
        let Some((d, vfs)) = real_dirty(&[("system.log1", b"LOG1"), ("System.Log2", b"LOG2")])
        else {
            println!("skipping: ../shared/winlogs is missing");
            return;
        };
        std::fs::create_dir(d.path().join("Windows/System32/config/SYSTEM.LOG")).unwrap();
        let path = "/windows/system32/config/system";
        let files = HiveFiles::read(&vfs, path).unwrap();
        assert!(files.is_dirty());
        assert_eq!(files.path, "/Windows/System32/config/SYSTEM");
        let (h, rec) = read_hive_logged(&vfs, path, "SYSTEM").unwrap();
        let rec = rec.expect("a recovery record");
        assert_eq!(
            (
                rec.format.as_deref(),
                rec.first_seq,
                rec.last_seq,
                rec.final_seq
            ),
            (Some("new"), Some(2), Some(5), Some(6))
        );
        assert_eq!(rec.logs_used, ["LOG1", "LOG2"]);
        assert_eq!(
            rec.logs,
            [
                "/Windows/System32/config/system.log1",
                "/Windows/System32/config/System.Log2"
            ]
        );
        assert!(rec.error.is_none() && !h.is_dirty());
        // What Windows 10 itself recovered (../shared/winlogs/README.md): Key1 and Key2's
        // subkeys gone, Key3 added.
        let keys = key_names(&h);
        assert!(keys.contains(&"Key3".to_string()), "{keys:?}");
        assert!(!keys.contains(&"Key1".to_string()), "{keys:?}");
        // read_hive gives the same recovered hive.
        assert_eq!(key_names(&read_hive(&vfs, path).unwrap()), keys);
    }

    #[test]
    fn a_dirty_hive_without_a_usable_log_is_read_stale_with_the_error() {
        for logs in [
            &[("SYSTEM.LOG1", &b"garbage, not a log"[..])][..],
            &[("SYSTEM.LOG1", &b""[..]), ("SYSTEM.LOG2", &b""[..])][..],
            &[][..],
        ] {
            let Some((_d, vfs)) = real_dirty(logs) else {
                println!("skipping: ../shared/winlogs is missing");
                return;
            };
            let (h, rec) =
                read_hive_logged(&vfs, "/Windows/System32/config/SYSTEM", "SYSTEM").unwrap();
            let rec = rec.expect("a record for the dirty hive");
            let e = rec.error.clone().expect("no usable log");
            assert!(e.contains("no transaction log is usable"), "{e}");
            assert_eq!(rec.format, None);
            // The stale primary is what was read (and repair refuses it).
            assert!(h.is_dirty());
            assert!(key_names(&h).contains(&"Key1".to_string()));
        }
    }
}
