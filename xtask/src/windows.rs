//! Phony Windows guests, built from fixtures/images/windows/ (build.sh + guests/NAME.env) into
//! cache_dir()/windows/, plus the phony virtio-win driver source as a folder and an ISO.
//!
//! ```text
//! guests/*.env ──build.sh──▶ windows/NAME.img + NAME.key
//! virtio-win.sh ───────────▶ windows/virtio-win/ + virtio-win.iso + virtio-win.key
//! every .env (sourced) ────▶ windows/manifest.json: what inspect must report, what repair refuses
//! ```
//! One key, a hash of the whole recipe folder (and the empty-hive writer it borrows from
//! windows-mini), decides whether an artifact is current. Builds hold windows/build.lock, work in
//! a private scratch folder and rename finished files into place, so concurrent callers (test
//! binaries in parallel) wait for one build instead of clashing.
use crate::run;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when this builder's own logic changes the artifacts.
const BUILDER_VERSION: &str = "windows-v1";

pub fn recipe_dir() -> PathBuf {
    crate::repo_root().join("fixtures/images/windows")
}

pub fn out_dir() -> PathBuf {
    crate::cache_dir().join("windows")
}

/// One guest as the tests expect to find it.
#[derive(Serialize)]
struct GuestEntry {
    name: String,
    /// Image file name inside the windows/ folder (raw).
    file: String,
    /// "bios" (MBR) or "uefi" (GPT with an ESP).
    firmware: String,
    partition_table: String,
    /// What `revirt inspect` reports (Windows 11 from the build number, not ProductName).
    product: String,
    /// ProductName as stored in the SOFTWARE hive.
    registry_product: String,
    version: String,
    build: String,
    /// revirt's names: x86_64, i386.
    arch: String,
    /// Client or Server.
    installation_type: String,
    system_root: String,
    /// hibernated, dirty, hive-dirty, ntfs-log-unclean, bitlocker, dynamic, no-drivers (None: a
    /// guest revirt repairs).
    trouble: Option<String>,
    /// A fragment of the refusal `revirt repair` must give (None: not refused).
    refusal: Option<String>,
    /// The exit code of `revirt repair` with the phony virtio-win (6 = refused).
    repair_exit: Option<i32>,
    /// Hives inspect must report dirty (`dirty_hives`).
    dirty_hives: Vec<String>,
    /// How SYSTEM is dirty: "new-log" (its last write only in a new-format SYSTEM.LOG1, which
    /// revirt recovers) or "garbage-log" (no usable log: refused); None when clean.
    hive_dirty: Option<String>,
    /// The static address inspect must report on the first adapter: for "new-log" the value
    /// only the log holds (the primary file still has genreg.py's 192.168.10.20).
    static_ip: String,
    /// Service Start values only the log holds, "NAME=N" (inspect must report them).
    logged_start: Vec<String>,
}

#[derive(Serialize)]
struct Manifest {
    key: String,
    virtio_win: String,
    virtio_win_iso: String,
    guests: Vec<GuestEntry>,
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            all_files(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Hash of every file of the recipe folder (relative path + content) and mkhive.py.
fn recipe_key(dir: &Path) -> Result<String> {
    let mut files = vec![];
    all_files(dir, &mut files)?;
    files.sort();
    files.push(dir.join("../windows-mini/mkhive.py"));
    let mut h = Sha256::new();
    h.update(BUILDER_VERSION);
    for f in &files {
        let rel = f.strip_prefix(dir).unwrap_or(f);
        let bytes = fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        h.update(rel.to_string_lossy().as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(hex::encode(&h.finalize()[..8]))
}

fn guest_names(dir: &Path) -> Result<Vec<String>> {
    let gdir = dir.join("guests");
    let mut names: Vec<String> = fs::read_dir(&gdir)
        .with_context(|| format!("reading {}", gdir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".env"))
                .map(String::from)
        })
        .collect();
    names.sort();
    Ok(names)
}

fn is_current(out: &Path, name: &str, artifact: &str, key: &str) -> bool {
    fs::read_to_string(out.join(format!("{name}.key"))).is_ok_and(|k| k.trim() == key)
        && out.join(artifact).exists()
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// A scratch folder under `out`, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(out: &Path, tag: &str) -> Result<Self> {
        let p = out.join(format!("tmp-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn build_guest(dir: &Path, out: &Path, name: &str, key: &str) -> Result<()> {
    let s = Scratch::new(out, name)?;
    let img = s.0.join(format!("{name}.img"));
    run(Command::new("bash")
        .arg(dir.join("build.sh"))
        .arg(name)
        .arg(&img))?;
    let dest = out.join(format!("{name}.img"));
    fs::rename(&img, &dest).with_context(|| format!("renaming to {}", dest.display()))?;
    write_atomic(&out.join(format!("{name}.key")), key.as_bytes())
}

fn build_virtio_win(dir: &Path, out: &Path, key: &str) -> Result<()> {
    let s = Scratch::new(out, "virtio-win")?;
    let folder = s.0.join("virtio-win");
    let iso = s.0.join("virtio-win.iso");
    run(Command::new("bash")
        .arg(dir.join("virtio-win.sh"))
        .arg(&folder)
        .arg(&iso))?;
    // A folder cannot be renamed over a non-empty one: move the old one aside first.
    let dest = out.join("virtio-win");
    if dest.exists() {
        fs::rename(&dest, s.0.join("old")).with_context(|| format!("moving {}", dest.display()))?;
    }
    fs::rename(&folder, &dest).with_context(|| format!("renaming to {}", dest.display()))?;
    fs::rename(&iso, out.join("virtio-win.iso")).context("renaming virtio-win.iso")?;
    write_atomic(&out.join("virtio-win.key"), key.as_bytes())
}

/// The variables of guests/NAME.env (which may source another .env) as bash sees them.
fn describe(dir: &Path, name: &str) -> Result<GuestEntry> {
    const VARS: &[&str] = &[
        "PRODUCT",
        "EXPECT_PRODUCT",
        "MAJOR",
        "MINOR",
        "BUILD",
        "INSTTYPE",
        "ARCH",
        "TABLE",
        "TROUBLE",
        "HIBERFIL",
        "DIRTY",
        "HIVE_DIRTY",
        "LOGGED_IP",
        "LOGGED_START",
        "LOG_UNCLEAN",
        "EXPECT_REFUSAL",
        "SYSROOT",
    ];
    let env = dir.join("guests").join(format!("{name}.env"));
    let script = format!(
        ". \"$1\"; for v in {}; do printf '%s=%s\\n' \"$v\" \"${{!v:-}}\"; done",
        VARS.join(" ")
    );
    let o = Command::new("bash")
        .args(["-c", &script, "describe"])
        .arg(&env)
        .output()
        .with_context(|| format!("sourcing {}", env.display()))?;
    if !o.status.success() {
        bail!(
            "sourcing {} failed: {}",
            env.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let get = |k: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
            .unwrap_or("")
            .to_string()
    };
    let nonempty = |s: String| (!s.is_empty()).then_some(s);
    let gpt = get("TABLE") == "gpt";
    let refusal = nonempty(get("EXPECT_REFUSAL"));
    let trouble = nonempty(get("TROUBLE"))
        .or_else(|| nonempty(get("HIBERFIL")).map(|_| "hibernated".into()))
        .or_else(|| {
            nonempty(get("HIVE_DIRTY"))
                .filter(|h| h != "new-log")
                .map(|_| "hive-dirty".into())
        })
        .or_else(|| nonempty(get("LOG_UNCLEAN")).map(|_| "ntfs-log-unclean".into()))
        .or_else(|| {
            refusal
                .as_ref()
                .filter(|r| r.contains("no viostor"))
                .map(|_| "no-drivers".into())
        });
    let product = get("PRODUCT");
    let inst = get("INSTTYPE");
    Ok(GuestEntry {
        name: name.into(),
        file: format!("{name}.img"),
        firmware: if gpt { "uefi" } else { "bios" }.into(),
        partition_table: if gpt { "gpt" } else { "mbr" }.into(),
        product: nonempty(get("EXPECT_PRODUCT")).unwrap_or_else(|| product.clone()),
        version: format!("{}.{}", get("MAJOR"), get("MINOR")),
        build: get("BUILD"),
        arch: match get("ARCH").as_str() {
            "AMD64" => "x86_64".into(),
            "x86" => "i386".into(),
            a => a.to_string(),
        },
        // Before Windows 7 there is no InstallationType; revirt derives it from the name.
        installation_type: if !inst.is_empty() {
            inst
        } else if product.contains("Server") {
            "Server".into()
        } else {
            "Client".into()
        },
        registry_product: product,
        system_root: format!("/{}", nonempty(get("SYSROOT")).unwrap_or("Windows".into())),
        repair_exit: refusal.as_ref().map(|_| 6),
        trouble,
        refusal,
        dirty_hives: nonempty(get("HIVE_DIRTY"))
            .map(|_| vec!["SYSTEM".to_string()])
            .unwrap_or_default(),
        hive_dirty: nonempty(get("HIVE_DIRTY")),
        // genreg.py's address of NIC1, unless the log holds a newer one.
        static_ip: nonempty(get("LOGGED_IP")).unwrap_or_else(|| "192.168.10.20".into()),
        logged_start: get("LOGGED_START")
            .split_whitespace()
            .map(String::from)
            .collect(),
    })
}

/// Builds (or reuses) every Windows guest whose name contains `only`, the virtio-win folder and
/// ISO, and writes manifest.json describing all guests.
pub fn build_all(only: Option<&str>) -> Result<()> {
    let dir = recipe_dir();
    let out = out_dir();
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let key = recipe_key(&dir)?;
    let names = guest_names(&dir)?;
    let todo: Vec<&String> = names
        .iter()
        .filter(|n| only.is_none_or(|o| n.contains(o)))
        .collect();
    if todo.is_empty() && only.is_some_and(|o| !"virtio-win".contains(o)) {
        bail!(
            "no Windows guest matches {:?} in {}",
            only.unwrap_or(""),
            dir.display()
        );
    }
    let lock_path = out.join("build.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;

    if is_current(&out, "virtio-win", "virtio-win.iso", &key) && out.join("virtio-win").is_dir() {
        println!("windows: virtio-win is current");
    } else {
        build_virtio_win(&dir, &out, &key)?;
        println!("windows: built virtio-win and virtio-win.iso");
    }
    crate::parallel("windows", todo, |name| {
        let img = format!("{name}.img");
        if is_current(&out, name, &img, &key) {
            println!("windows: {name} is current");
            return Ok(());
        }
        let t = std::time::Instant::now();
        build_guest(&dir, &out, name, &key).map_err(|e| (name.to_string(), e))?;
        println!("windows: built {name} in {:.1}s", t.elapsed().as_secs_f64());
        Ok(())
    })?;
    let manifest = Manifest {
        key,
        virtio_win: "virtio-win".into(),
        virtio_win_iso: "virtio-win.iso".into(),
        guests: names
            .iter()
            .map(|n| describe(&dir, n))
            .collect::<Result<_>>()?,
    };
    write_atomic(
        &out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guest_describes_itself() {
        let dir = recipe_dir();
        let names = guest_names(&dir).unwrap();
        assert!(names.len() >= 15, "{names:?}");
        for n in &names {
            let g = describe(&dir, n).unwrap();
            assert!(!g.product.is_empty() && !g.build.is_empty(), "{n}");
            assert!(
                matches!(g.arch.as_str(), "x86_64" | "i386"),
                "{n}: {}",
                g.arch
            );
            assert_eq!(g.refusal.is_some(), g.trouble.is_some(), "{n}");
        }
        let w11 = describe(&dir, "w11-uefi-gpt").unwrap();
        assert_eq!(
            (
                w11.product.as_str(),
                w11.registry_product.as_str(),
                w11.firmware.as_str()
            ),
            ("Windows 11 Pro", "Windows 10 Pro", "uefi")
        );
        // The NTFS dirty flag alone is repaired, not a trouble case.
        let dirty_ntfs = describe(&dir, "w10-dirty").unwrap();
        assert_eq!((dirty_ntfs.trouble, dirty_ntfs.refusal), (None, None));
        // A hive whose newest data is only in its log is repaired; one with a garbage log not.
        let dirty = describe(&dir, "w10-dirty-hive").unwrap();
        assert_eq!(
            (dirty.trouble, dirty.refusal, dirty.hive_dirty.as_deref()),
            (None, None, Some("new-log"))
        );
        assert_eq!(
            (dirty.static_ip.as_str(), dirty.dirty_hives.len()),
            ("192.168.10.77", 1)
        );
        assert_eq!(dirty.logged_start, ["LSI_SAS=0"]);
        let bad = describe(&dir, "w10-dirty-hive-badlog").unwrap();
        assert_eq!(bad.trouble.as_deref(), Some("hive-dirty"));
        assert!(bad.refusal.is_some_and(|r| r.contains("SYSTEM")));
        let old = describe(&dir, "2k3r2-x86").unwrap();
        assert_eq!(old.trouble.as_deref(), Some("no-drivers"));
        assert_eq!(old.installation_type, "Server");
    }
}
