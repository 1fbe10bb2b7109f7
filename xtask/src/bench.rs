//! `cargo xtask bench`: wall time and peak RSS of `revirt inspect` on every cached real, skeleton
//! and phony guest and on a 100 GiB sparse qcow2 holding the same guest, whether it needed the
//! appliance, next to virt-v2v-inspector when installed.
//! Prints figures; asserts nothing (targets: < 1 s, < 64 MB, no appliance, flat in disk size).
//! Then `repair`: revirt repair natively and through the appliance, and virt-v2v-in-place, on
//! the same real guests (each into a fresh overlay); wall time and peak RSS (wait4 reports the
//! largest of the process and the descendants it waited for: revirt's helpers and daemons).
//! Then the crash table ([`crash`]): what recovery adds on crash-consistent snapshots.
pub mod crash;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

struct Sample {
    secs: f64,
    rss_mb: f64,
    ok: bool,
}

/// Runs a command and measures wall time and the child's peak RSS (via wait4's rusage).
fn measure(cmd: &mut Command) -> Result<Sample> {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawning {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain wait4 on our own child; rusage is a POD out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    anyhow::ensure!(r == pid, "wait4 failed for {cmd:?}");
    Ok(Sample {
        secs: start.elapsed().as_secs_f64(),
        rss_mb: ru.ru_maxrss as f64 / 1024.0,
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    })
}

fn best_of(n: usize, mut f: impl FnMut() -> Result<Sample>) -> Result<Sample> {
    let mut best: Option<Sample> = None;
    for _ in 0..n {
        let s = f()?;
        if best.as_ref().is_none_or(|b| s.secs < b.secs) {
            best = Some(s);
        }
    }
    Ok(best.expect("n >= 1"))
}

fn images() -> Vec<PathBuf> {
    let mut v = vec![];
    for set in ["real", "skeletons", "phony"] {
        if let Ok(rd) = std::fs::read_dir(crate::cache_dir().join(set)) {
            for e in rd.flatten() {
                let p = e.path();
                // `<guest>.<disk>.qcow2` is a further disk of `<guest>`, not a guest.
                if p.extension().is_some_and(|x| x == "qcow2")
                    && !p
                        .file_stem()
                        .is_some_and(|s| s.to_string_lossy().contains('.'))
                {
                    v.push(p);
                }
            }
        }
    }
    v.sort();
    v
}

pub fn run(only_real: bool, peers: bool) -> Result<()> {
    let root = crate::repo_root();
    let revirt = build_release(&root)?;
    let v2v = peer("virt-v2v-inspector", peers);
    let tmp = std::env::temp_dir().join(format!("revirt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let imgs: Vec<PathBuf> = images()
        .into_iter()
        .filter(|p| !only_real || p.to_string_lossy().contains("/real/"))
        .collect();
    anyhow::ensure!(
        !imgs.is_empty(),
        "no fixture images in {}: run `cargo xtask fixtures` first",
        crate::cache_dir().display()
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8}",
        "image", "revirt s", "RSS MB", "appliance", "v2v-insp s", "RSS MB", "ratio"
    );
    for img in &imgs {
        let name = img.file_stem().unwrap().to_string_lossy().to_string();
        let big = tmp.join(format!("{name}-100G.qcow2"));
        let st = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(img)
            .arg(&big)
            .arg("100G")
            .status()?;
        anyhow::ensure!(st.success(), "qemu-img create overlay for {name}");
        for (label, path) in [
            (name.clone(), img.clone()),
            (format!("{name} (100G)"), big.clone()),
        ] {
            // The 100G overlay stands for the first disk; further disks are the guest's own.
            let mut disks = crash::disks_of(img)?;
            disks[0] = path.clone();
            let app = appliance_used(&revirt, &disks, &key_args(img));
            let r = best_of(3, || {
                measure(
                    Command::new(&revirt)
                        .args(key_args(img))
                        .args(["inspect", "--json"])
                        .args(&disks)
                        .env("REVIRT_ALLOW_BACKING_DIR", crate::cache_dir()),
                )
            })?;
            let (vs, vr, ratio) = match &v2v {
                Some(v) if img.to_string_lossy().contains("/real/") => {
                    let s = measure(
                        Command::new(v)
                            .args(["-i", "disk"])
                            .arg(&path)
                            .env("LIBGUESTFS_BACKEND", "direct")
                            .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg"),
                    )?;
                    (
                        format!("{:.2}", s.secs),
                        format!("{:.0}", s.rss_mb),
                        format!("{:.0}x", s.secs / r.secs),
                    )
                }
                _ => ("-".into(), "-".into(), "-".into()),
            };
            println!(
                "{:<34} {:>9.3} {:>9.1} {:>9} {:>10} {:>10} {:>8}{}",
                label,
                r.secs,
                r.rss_mb,
                app,
                vs,
                vr,
                ratio,
                if r.ok {
                    ""
                } else {
                    "  (revirt exited non-zero)"
                }
            );
        }
        let _ = std::fs::remove_file(&big);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if v2v.is_none() {
        println!(
            "virt-v2v-inspector skipped (--no-v2v) or not installed (apt-get install virt-v2v)"
        );
    }
    Ok(())
}

/// Whether `revirt inspect` needed the appliance on these disks ("yes"/"no", "?" if it failed).
/// `--key` arguments for a fixture with encrypted volumes (the phony builder's `NAME.keys`).
/// `--key` arguments for a fixture: a phony guest's `<name>.keys` lines, a real guest's
/// sidecar keys (fixture passphrases: argv is fine for a benchmark).
fn key_args(img: &Path) -> Vec<String> {
    let mut specs: Vec<String> = std::fs::read_to_string(img.with_extension("keys"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let sidecar = std::fs::read_to_string(img.with_extension("boot.json")).ok();
    if let Some(info) = sidecar.and_then(|t| serde_json::from_str::<crate::boot::BootInfo>(&t).ok())
    {
        specs.extend(
            info.keys
                .iter()
                .map(|k| format!("{}:key:{}", k.device, k.passphrase)),
        );
    }
    specs
        .into_iter()
        .flat_map(|l| ["--key".to_string(), l])
        .collect()
}

fn appliance_used(revirt: &Path, disks: &[PathBuf], keys: &[String]) -> &'static str {
    let out = Command::new(revirt)
        .args(keys)
        .args(["inspect", "--json"])
        .args(disks)
        .env("REVIRT_ALLOW_BACKING_DIR", crate::cache_dir())
        .stderr(Stdio::null())
        .output();
    let v: Option<serde_json::Value> = out
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok());
    match v.as_ref().and_then(|v| v["appliance_used"].as_bool()) {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

/// Creates a fresh qcow2 overlay over `img` (absolute backing path, format pinned).
fn overlay(img: &Path, out: &Path) -> Result<()> {
    let _ = std::fs::remove_file(out);
    // The Windows fixtures are raw images, the Linux ones qcow2.
    let fmt = if img.extension().is_some_and(|x| x == "img") {
        "raw"
    } else {
        "qcow2"
    };
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", fmt, "-b"])
        .arg(img.canonicalize()?)
        .arg(out)
        .status()?;
    anyhow::ensure!(
        st.success(),
        "qemu-img create overlay over {}",
        img.display()
    );
    Ok(())
}

/// The Windows guests of the repair table (fixtures/images/windows/guests/NAME.env).
const WINDOWS_GUESTS: [&str; 2] = ["w10-22h2", "2k22-uefi-gpt"];

/// The repair table: `guests` real guests and as many Windows ones, three writers each.
pub fn repair(guests: usize, peers: bool) -> Result<()> {
    if guests == 0 {
        return Ok(());
    }
    let root = crate::repo_root();
    let revirt = build_release(&root)?;
    let v2v = peer("virt-v2v-in-place", peers);
    let tmp = std::env::temp_dir().join(format!("revirt-bench-repair-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut imgs: Vec<PathBuf> = images()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/real/"))
        .take(guests)
        .collect();
    // Windows: phony guests of the fixture set (NTFS + hives), with its phony virtio-win.
    let win = crate::cache_dir().join("windows");
    imgs.extend(
        WINDOWS_GUESTS
            .iter()
            .map(|g| win.join(format!("{g}.img")))
            .filter(|p| p.is_file())
            .take(guests),
    );
    println!();
    println!(
        "{:<24} {:>10} {:>8} {:>11} {:>8} {:>10} {:>8} {:>9} {:>9}",
        "repair",
        "native s",
        "RSS MB",
        "appliance s",
        "RSS MB",
        "v2v-ip s",
        "RSS MB",
        "app/nat",
        "v2v/nat"
    );
    for img in &imgs {
        let name = img.file_stem().unwrap().to_string_lossy().to_string();
        let trust = img.parent().unwrap().canonicalize()?;
        let windows = img.starts_with(&win);
        let drivers: Vec<PathBuf> = if windows {
            vec!["--virtio-win".into(), win.join("virtio-win")]
        } else {
            vec![]
        };
        let run = |writer: &str| -> Result<Sample> {
            best_of(if writer == "native" { 3 } else { 1 }, || {
                let out = tmp.join(format!("{name}-{writer}.qcow2"));
                let _ = std::fs::remove_file(&out);
                measure(
                    Command::new(&revirt)
                        .args(["repair", "--progress", "none", "--writer", writer])
                        .args(&drivers)
                        .arg("-o")
                        .arg(&out)
                        .arg(img)
                        .env("REVIRT_ALLOW_BACKING_DIR", &trust)
                        .env("LIBGUESTFS_BACKEND", "direct")
                        .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg"),
                )
            })
        };
        let n = run("native")?;
        let a = run("appliance")?;
        let v = match &v2v {
            Some(v) => {
                let ov = tmp.join(format!("{name}-v2v.qcow2"));
                overlay(img, &ov)?;
                let mut cmd = Command::new(v);
                cmd.args(["-i", "disk"])
                    .arg(&ov)
                    .env("LIBGUESTFS_BACKEND", "direct")
                    .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg");
                if windows {
                    cmd.env("VIRTIO_WIN", win.join("virtio-win.iso"));
                }
                Some(measure(&mut cmd)?)
            }
            None => None,
        };
        let f = |s: &Option<Sample>, g: fn(&Sample) -> f64, p: usize| {
            s.as_ref()
                .map_or("-".to_string(), |s| format!("{:.*}", p, g(s)))
        };
        println!(
            "{:<24} {:>10.3} {:>8.1} {:>11.2} {:>8.0} {:>10} {:>8} {:>8.0}x {:>9}{}",
            name,
            n.secs,
            n.rss_mb,
            a.secs,
            a.rss_mb,
            f(&v, |s| s.secs, 1),
            f(&v, |s| s.rss_mb, 0),
            a.secs / n.secs,
            v.as_ref()
                .map_or("-".into(), |v| format!("{:.0}x", v.secs / n.secs)),
            match (n.ok && a.ok, v.as_ref().is_none_or(|v| v.ok)) {
                (true, true) => "",
                (false, _) => "  (a revirt run exited non-zero)",
                (true, false) => "  (virt-v2v-in-place failed on this guest)",
            }
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if v2v.is_none() {
        println!(
            "virt-v2v-in-place skipped (--no-v2v) or not installed (apt-get install virt-v2v)"
        );
    }
    Ok(())
}

/// Builds revirt --release and returns the binary (honouring CARGO_TARGET_DIR).
fn build_release(root: &Path) -> Result<PathBuf> {
    let st = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--bin", "revirt"])
        .current_dir(root)
        .status()?;
    anyhow::ensure!(st.success(), "building revirt --release failed");
    Ok(std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("release/revirt"))
}

/// A peer tool to compare with, unless `--no-v2v` asked to skip them.
fn peer(name: &str, peers: bool) -> Option<PathBuf> {
    which(name).filter(|_| peers)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| Path::new(p).exists())
    })
}
