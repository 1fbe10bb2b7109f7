//! The crash table of `cargo xtask bench`: what recovering a crash-consistent snapshot adds to
//! `revirt inspect` and `revirt repair`, per real guest. Each crash image is made the way the
//! crash tests make theirs (fixtures/images/crash/: a writer that fsyncs files on / and /boot;
//! the guest booted on its source platform, SIGKILLed after 25 synced commits) and cached as a
//! standalone qcow2 under `<cache>/crash/`, keyed by the real guest's key and the writer.
use super::{best_of, build_release, measure, Sample};
use crate::boot::{self, BootArgs, Platform, Verdict};
use anyhow::{ensure, Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The real guests with a crash image: ext4 root on MBR (native repair) and an XFS root LV with
/// an ext4 /boot (the XFS log is recovered by the appliance).
const GUESTS: &[&str] = &["deb12-bios-mbr", "deb12-lvm-xfs"];

fn recipe() -> PathBuf {
    crate::repo_root().join("fixtures/images/crash")
}

fn key(guest: &str) -> Result<String> {
    let real = crate::real::out_dir().join(format!("{guest}.key"));
    let mut h = Sha256::new();
    h.update(fs::read(&real).with_context(|| format!("reading {}", real.display()))?);
    for f in ["crashwriter", "crashwriter.service"] {
        h.update(fs::read(recipe().join(f))?);
    }
    Ok(hex::encode(&h.finalize()[..8]))
}

/// The cached crash image of `guest`, made first if missing or stale.
fn crash_image(guest: &str) -> Result<PathBuf> {
    let dir = crate::cache_dir().join("crash");
    fs::create_dir_all(&dir)?;
    let (img, keyfile) = (
        dir.join(format!("{guest}.qcow2")),
        dir.join(format!("{guest}.key")),
    );
    let key = key(guest)?;
    if fs::read_to_string(&keyfile).is_ok_and(|k| k.trim() == key)
        && disks_of(&img).is_ok_and(|d| d.iter().all(|d| d.is_file()))
    {
        return Ok(img);
    }
    eprintln!("bench: making the crash image of {guest} (boot, writer, SIGKILL)");
    let real = crate::real::out_dir();
    let work = dir.join(format!("{guest}.work"));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    // Overlays over every disk of the guest: crashed.qcow2, crashed.<disk>.qcow2.
    let src = disks_of(&real.join(format!("{guest}.qcow2")))?;
    let ovs = disks_of_named(&src, &work.join("crashed.qcow2"));
    for (s, o) in src.iter().zip(&ovs) {
        crate::run(
            Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
                .arg(s)
                .arg(o),
        )?;
    }
    fs::copy(
        real.join(format!("{guest}.boot.json")),
        work.join("crashed.boot.json"),
    )?;
    let ov = ovs[0].clone();
    install_writer(&ovs)?;
    let log = work.join("source.log");
    let r = boot::boot(&BootArgs {
        image: ov.clone(),
        platform: Platform::Source,
        firmware: None,
        timeout: 420,
        json: false,
        log: Some(log.clone()),
        in_place: true,
        kill_after: Some("CRASHWRITER-SYNCED: 25".into()),
        disks: vec![],
    })?;
    ensure!(
        r.result.verdict == Verdict::Killed,
        "{guest}: the source boot ended {:?}, not killed mid-write (console: {})",
        r.result.verdict,
        log.display()
    );
    for (o, to) in ovs.iter().zip(disks_of_named(&src, &img)) {
        let tmp = to.with_extension("qcow2.tmp");
        crate::run(
            Command::new("qemu-img")
                .args(["convert", "-O", "qcow2"])
                .arg(o)
                .arg(&tmp),
        )?;
        fs::rename(&tmp, &to)?;
    }
    fs::copy(
        real.join(format!("{guest}.boot.json")),
        img.with_extension("boot.json"),
    )?;
    fs::write(&keyfile, format!("{key}\n"))?;
    fs::remove_dir_all(&work)?;
    Ok(img)
}

/// Every disk of a guest: the image, then the further disks its sidecar (if any) names.
pub fn disks_of(img: &Path) -> Result<Vec<PathBuf>> {
    let mut v = vec![img.to_path_buf()];
    let sidecar = img.with_extension("boot.json");
    if sidecar.is_file() {
        let info: boot::BootInfo = serde_json::from_str(&fs::read_to_string(&sidecar)?)
            .with_context(|| format!("parsing {}", sidecar.display()))?;
        v.extend(boot::extra_disks_of(img, &info));
    }
    Ok(v)
}

/// The same disks under another first name (`x.qcow2` -> `y.qcow2`, `x.d2.qcow2` -> `y.d2.qcow2`).
fn disks_of_named(src: &[PathBuf], first: &Path) -> Vec<PathBuf> {
    let (from, to) = (stem(&src[0]), stem(first));
    src.iter()
        .map(|p| {
            first.with_file_name(
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .replacen(&from, &to, 1),
            )
        })
        .collect()
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Installs the writer with guestfish's own inspection (`-i`) mounting the guest.
fn install_writer(disks: &[PathBuf]) -> Result<()> {
    let r = recipe();
    let script = format!(
        "mkdir-p /usr/local/sbin\nupload {} /usr/local/sbin/crashwriter\nchmod 0755 /usr/local/sbin/crashwriter\nupload {} /etc/systemd/system/crashwriter.service\nln-sf /etc/systemd/system/crashwriter.service /etc/systemd/system/multi-user.target.wants/crashwriter.service\n",
        r.join("crashwriter").display(),
        r.join("crashwriter.service").display()
    );
    let mut gf = Command::new("guestfish");
    gf.args(["--rw", "--format=qcow2", "-i"]);
    for d in disks {
        gf.arg("-a").arg(d);
    }
    let mut gf = gf
        .env("LIBGUESTFS_BACKEND", "direct")
        .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
        .stdin(Stdio::piped())
        .spawn()
        .context("running guestfish")?;
    gf.stdin
        .take()
        .context("guestfish stdin")?
        .write_all(script.as_bytes())?;
    ensure!(
        gf.wait()?.success(),
        "guestfish could not install the writer"
    );
    Ok(())
}

fn inspect(revirt: &Path, img: &Path, trust: &Path) -> Result<Sample> {
    let disks = disks_of(img)?;
    best_of(3, || {
        measure(
            Command::new(revirt)
                .args(["inspect", "--json"])
                .args(&disks)
                .env("REVIRT_ALLOW_BACKING_DIR", trust),
        )
    })
}

fn repair(revirt: &Path, img: &Path, out: &Path, trust: &Path) -> Result<Sample> {
    let disks = disks_of(img)?;
    let outs = disks_of_named(&disks, out);
    for o in &outs {
        let _ = fs::remove_file(o);
    }
    let mut cmd = Command::new(revirt);
    cmd.args(["repair", "--progress", "none"]);
    for o in &outs {
        cmd.arg("-o").arg(o);
    }
    let s = measure(
        cmd.args(&disks)
            .env("REVIRT_ALLOW_BACKING_DIR", trust)
            .env("LIBGUESTFS_BACKEND", "direct")
            .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg"),
    );
    for o in &outs {
        let _ = fs::remove_file(o);
    }
    s
}

pub fn run() -> Result<()> {
    let revirt = build_release(&crate::repo_root())?;
    crate::real::build_all(None)?;
    let tmp = std::env::temp_dir().join(format!("revirt-bench-crash-{}", std::process::id()));
    fs::create_dir_all(&tmp)?;
    println!();
    println!(
        "{:<18} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8}",
        "crash image", "inspect s", "crashed s", "adds s", "repair s", "crashed s", "adds s"
    );
    for guest in GUESTS {
        let crashed = crash_image(guest)?;
        let clean = crate::real::out_dir().join(format!("{guest}.qcow2"));
        let trust = crate::cache_dir().canonicalize()?;
        let (ic, ix) = (
            inspect(&revirt, &clean, &trust)?,
            inspect(&revirt, &crashed, &trust)?,
        );
        let out = tmp.join("out.qcow2");
        let (rc, rx) = (
            repair(&revirt, &clean, &out, &trust)?,
            repair(&revirt, &crashed, &out, &trust)?,
        );
        let failed = [&ic, &ix, &rc, &rx].iter().any(|s| !s.ok);
        println!(
            "{:<18} {:>10.3} {:>10.3} {:>+8.2} {:>10.2} {:>10.2} {:>+8.2}{}",
            guest,
            ic.secs,
            ix.secs,
            ix.secs - ic.secs,
            rc.secs,
            rx.secs,
            rx.secs - rc.secs,
            if failed {
                "  (a revirt run exited non-zero)"
            } else {
                ""
            }
        );
    }
    let _ = fs::remove_dir_all(&tmp);
    Ok(())
}
