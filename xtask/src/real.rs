//! Real bootable Debian 12 guests, built from the recipes in fixtures/images/real/.
//!
//! ```text
//! manifest.json ─┬─ base: debootstrap minbase + base.sh ──▶ real/base-<key>.tar  (shared, cached)
//!                └─ guests[i]: untar base, chroot setup.sh (lib.sh helpers)
//!                     ─▶ sfdisk, LVM metadata ─▶ split the tree per volume (partition or LV)
//!                     ─▶ mkfs.ext4 -d / mkfs.xfs -p protofile / mkswap / mkfs.vfat + mcopy
//!                     ─▶ copy at volume offsets ─▶ grub boot.img/core.img patched in
//!                     ─▶ qemu-img convert ─▶ real/<name>.qcow2 + <name>.boot.json + <name>.key
//! ```
//! Keys are hashes of the recipe text, so a rebuild happens only when a recipe changes. Builds take
//! a per-artifact lock file and work in a private temp folder, renaming finished files into place,
//! so two builders at once neither clash nor leave half-written images behind.
//!
//! BIOS grub is installed without any block device: the guest's own grub-mkimage makes core.img in
//! the chroot, and [`install_bios_grub`] writes boot.img into the MBR and core.img into the post-MBR
//! gap (MBR) or the BIOS boot partition (GPT), patching the sector pointers the way grub's setup
//! does for a blocklist install.
use crate::boot::{BootInfo, Firmware};
use crate::run;
use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Bump when the builder's own logic changes in a way that changes the images.
const BUILDER_VERSION: &str = "real-v1";

#[derive(Deserialize)]
struct Manifest {
    base: BaseSpec,
    guests: Vec<GuestSpec>,
}

#[derive(Deserialize)]
struct BaseSpec {
    suite: String,
    mirror: String,
    include: Vec<String>,
    script: String,
}

#[derive(Deserialize, Clone)]
struct GuestSpec {
    name: String,
    firmware: Firmware,
    table: Table,
    disk_mib: u64,
    partitions: Vec<PartSpec>,
    /// Further disks (the same partition table type), attached after the first in bus order.
    #[serde(default)]
    extra_disks: Vec<DiskSpec>,
    source: crate::boot::SourceSpec,
    expect_source: String,
    /// md arrays over partitions of kind `raid` (made by mdadm in the libguestfs appliance).
    #[serde(default)]
    arrays: Vec<ArraySpec>,
}

#[derive(Deserialize, Clone)]
struct ArraySpec {
    /// What the member partitions' `md` says; the array is /dev/md0 in the guest
    /// (`--name=0` under the guest's hostname as homehost, as the Debian installer names it).
    name: String,
    /// raid1 over every member, superblock `metadata` (1.0: at the end, the data at 0).
    metadata: String,
    fs: String,
    mount: Option<String>,
}

#[derive(Deserialize, Clone)]
struct DiskSpec {
    /// Built as `<guest>.<name>.qcow2`.
    name: String,
    disk_mib: u64,
    partitions: Vec<PartSpec>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Table {
    Mbr,
    Gpt,
}

#[derive(Deserialize, Clone)]
struct PartSpec {
    /// 0 = the rest of the disk (last partition only).
    size_mib: u64,
    kind: PartKind,
    fs: Option<String>,
    mount: Option<String>,
    /// kind `lvm`: the volume group this partition is the first PV of, with its LVs.
    #[serde(default)]
    vg: Option<VgSpec>,
    /// kind `lvm`: a further PV of the named VG (its LVs continue onto it, in disk order).
    #[serde(default)]
    pv_of: Option<String>,
    /// The partition is a LUKS2 container (UUID `$LUKS_UUID` in setup.sh) holding `fs`.
    #[serde(default)]
    luks: Option<LuksSpec>,
    /// kind `raid`: the array (of `arrays`) this partition is a member of.
    #[serde(default)]
    md: Option<String>,
}

#[derive(Deserialize, Clone)]
struct LuksSpec {
    passphrase: String,
}

/// A LUKS container to seal around a filesystem once it is on the disk.
struct Seal {
    disk: usize,
    start: u64,
    bytes: u64,
    passphrase: String,
    /// As revirt names the partition (/dev/sda2).
    device: String,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum PartKind {
    Linux,
    Esp,
    BiosBoot,
    Lvm,
    Raid,
}

#[derive(Deserialize, Clone)]
struct VgSpec {
    name: String,
    /// LVs placed one after the other from the first extent of the first PV, each running on
    /// into the next PV when one is full (an LV spanning disks).
    lvs: Vec<LvSpec>,
}

#[derive(Deserialize, Clone)]
struct LvSpec {
    name: String,
    /// 0 = every extent left (last LV only).
    size_mib: u64,
    fs: String,
    mount: Option<String>,
}

/// A filesystem to make: where its bytes go once the layout is known.
struct FsVol {
    what: String,
    fs: String,
    mount: Option<String>,
    bytes: u64,
    /// (disk index, byte offset on that disk, length), in filesystem order.
    pieces: Vec<(usize, u64, u64)>,
    /// On an md array instead: written through it in the appliance.
    md: Option<MdBuild>,
}

/// An md array to create over member partitions, then fill with a filesystem.
struct MdBuild {
    metadata: String,
    /// (disk index, partition number), in member order.
    members: Vec<(usize, usize)>,
}

/// Folder holding the recipes.
pub fn recipe_dir() -> PathBuf {
    crate::repo_root().join("fixtures/images/real")
}

/// Folder holding the built guests.
pub fn out_dir() -> PathBuf {
    crate::cache_dir().join("real")
}

fn load_manifest(dir: &Path) -> Result<(Manifest, serde_json::Value)> {
    let path = dir.join("manifest.json");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let raw: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let m: Manifest = serde_json::from_value(raw.clone())
        .with_context(|| format!("parsing {}", path.display()))?;
    Ok((m, raw))
}

/// Builds (or reuses) every real guest whose name contains `only`.
pub fn build_all(only: Option<&str>) -> Result<()> {
    let dir = recipe_dir();
    let (manifest, raw) = load_manifest(&dir)?;
    let out = out_dir();
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let base_key = base_key(&dir, &manifest.base)?;
    let mut todo = Vec::new();
    for (i, g) in manifest.guests.iter().enumerate() {
        if only.is_some_and(|o| !g.name.contains(o)) {
            continue;
        }
        let key = guest_key(&dir, &base_key, g, &raw["guests"][i])?;
        todo.push((g.clone(), key));
    }
    if todo.is_empty() {
        bail!(
            "no real guest matches {:?} in {}",
            only.unwrap_or(""),
            dir.display()
        );
    }
    if todo.iter().all(|(g, k)| is_current(&out, &g.name, k)) {
        for (g, _) in &todo {
            println!(
                "real: {} is current: {}",
                g.name,
                out.join(format!("{}.qcow2", g.name)).display()
            );
        }
        return Ok(());
    }
    check_tools()?;
    let base = ensure_base(&dir, &manifest.base, &base_key, &out)?;

    crate::parallel("real", todo, |(g, key)| {
        build_guest_locked(&dir, &out, &base, &g, &key).map_err(|e| (g.name.clone(), e))
    })?;
    Ok(())
}

fn check_tools() -> Result<()> {
    let tools = [
        "debootstrap",
        "chroot",
        "sfdisk",
        "mkfs.ext4",
        "mkfs.vfat",
        "mkfs.xfs",
        "xfs_db",
        "mkswap",
        "mcopy",
        "qemu-img",
        "tar",
        "mount",
    ];
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    ensure!(
        missing.is_empty(),
        "missing tools for the real guests: {} (install them with .ci/deps.sh)",
        missing.join(", ")
    );
    Ok(())
}

/// Finds an executable on PATH (plus the sbin folders, which a non-login PATH may lack).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn sha_files(h: &mut Sha256, files: &[PathBuf]) -> Result<()> {
    for f in files {
        let bytes = fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        h.update(
            f.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(())
}

fn base_key(dir: &Path, base: &BaseSpec) -> Result<String> {
    let mut h = Sha256::new();
    h.update(BUILDER_VERSION);
    h.update(format!(
        "{}|{}|{}",
        base.suite,
        base.mirror,
        base.include.join(",")
    ));
    sha_files(&mut h, &[dir.join(&base.script)])?;
    Ok(hex::encode(&h.finalize()[..8]))
}

fn guest_key(dir: &Path, base_key: &str, g: &GuestSpec, raw: &serde_json::Value) -> Result<String> {
    let mut h = Sha256::new();
    h.update(BUILDER_VERSION);
    h.update(base_key);
    h.update(raw.to_string());
    let gdir = dir.join(&g.name);
    let mut files: Vec<PathBuf> = fs::read_dir(&gdir)
        .with_context(|| format!("reading recipe folder {}", gdir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.push(dir.join("lib.sh"));
    sha_files(&mut h, &files)?;
    Ok(hex::encode(&h.finalize()[..8]))
}

fn is_current(out: &Path, name: &str, key: &str) -> bool {
    let keyfile = out.join(format!("{name}.key"));
    let info: Option<BootInfo> = fs::read_to_string(out.join(format!("{name}.boot.json")))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    fs::read_to_string(keyfile).is_ok_and(|k| k.trim() == key)
        && out.join(format!("{name}.qcow2")).is_file()
        && info.is_some_and(|i| {
            crate::boot::extra_disks_of(&out.join(format!("{name}.qcow2")), &i)
                .iter()
                .all(|d| d.is_file())
        })
}

/// An exclusive lock held while the file handle lives.
fn lock(path: &Path) -> Result<File> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    f.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(f)
}

/// A private scratch folder under `out`, removed on drop unless something is still mounted there.
struct Scratch(PathBuf);

impl Scratch {
    fn new(out: &Path, tag: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = out.join(format!("tmp-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if mounts_under(&self.0).is_empty() {
            let _ = fs::remove_dir_all(&self.0);
        } else {
            eprintln!(
                "real: leaving {} in place: mounts remain under it",
                self.0.display()
            );
        }
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

/// proc, sys and dev mounted into a build chroot; unmounted (innermost first) on drop.
struct ChrootMounts {
    mounted: Vec<PathBuf>,
}

impl ChrootMounts {
    fn new(root: &Path) -> Result<Self> {
        let mut m = ChrootMounts {
            mounted: Vec::new(),
        };
        let specs: [(&[&str], &str); 4] = [
            (&["-t", "proc", "proc"], "proc"),
            (&["-t", "sysfs", "sysfs"], "sys"),
            (&["--bind", "/dev"], "dev"),
            (&["--bind", "/dev/pts"], "dev/pts"),
        ];
        for (args, sub) in specs {
            let target = root.join(sub);
            fs::create_dir_all(&target)
                .with_context(|| format!("creating {}", target.display()))?;
            run(Command::new("mount").args(args).arg(&target))?;
            m.mounted.push(target);
        }
        Ok(m)
    }
}

impl Drop for ChrootMounts {
    fn drop(&mut self) {
        for t in self.mounted.iter().rev() {
            let ok = Command::new("umount")
                .arg(t)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(t).status();
            }
        }
    }
}

/// Runs a long command with its output going to `log`; on failure the error quotes the log's tail.
fn run_logged(cmd: &mut Command, log: &Path) -> Result<()> {
    let f = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .status()
        .with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{cmd:?} failed ({status}); log {}:\n{}",
            log.display(),
            tail.join("\n")
        );
    }
    Ok(())
}

/// Runs `script` (a path inside the chroot) with /bin/sh in `root`, services blocked.
fn chroot_script(root: &Path, script: &str, env: &[(&str, String)], log: &Path) -> Result<()> {
    let policy = root.join("usr/sbin/policy-rc.d");
    fs::write(
        &policy,
        "#!/bin/sh\n# no services during the image build\nexit 101\n",
    )
    .with_context(|| format!("writing {}", policy.display()))?;
    set_mode(&policy, 0o755)?;
    let resolv = root.join("etc/resolv.conf");
    let _ = fs::remove_file(&resolv);
    fs::copy("/etc/resolv.conf", &resolv)
        .with_context(|| format!("writing {}", resolv.display()))?;
    let result = {
        let _mounts = ChrootMounts::new(root)?;
        let mut cmd = Command::new("chroot");
        cmd.arg(root).args(["/bin/sh", "-e", script]).env_clear();
        cmd.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive");
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_logged(&mut cmd, log)
    };
    fs::remove_file(&policy).with_context(|| format!("removing {}", policy.display()))?;
    fs::write(&resolv, "nameserver 10.0.2.3\n")
        .with_context(|| format!("writing {}", resolv.display()))?;
    result
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", p.display()))
}

/// The shared base tree as a tarball, built once per recipe key.
fn ensure_base(dir: &Path, spec: &BaseSpec, key: &str, out: &Path) -> Result<PathBuf> {
    let tar = out.join(format!("base-{key}.tar"));
    let _lock = lock(&out.join("base.lock"))?;
    if tar.is_file() {
        return Ok(tar);
    }
    let t0 = Instant::now();
    eprintln!(
        "real: building base {key} (debootstrap {}, ~2 min)",
        spec.suite
    );
    let scratch = Scratch::new(out, "base")?;
    let root = scratch.0.join("root");
    let log = scratch.0.join("base.log");
    let result = (|| -> Result<()> {
        run_logged(
            Command::new("debootstrap")
                .arg("--variant=minbase")
                .arg(format!("--include={}", spec.include.join(",")))
                .arg(&spec.suite)
                .arg(&root)
                .arg(&spec.mirror),
            &log,
        )?;
        let rdir = root.join(".revirt");
        fs::create_dir_all(&rdir)?;
        fs::copy(dir.join(&spec.script), rdir.join("base.sh"))?;
        chroot_script(&root, "/.revirt/base.sh", &[], &log)?;
        fs::remove_dir_all(&rdir)?;
        let tmp = scratch.0.join("base.tar");
        run(Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-cf"])
            .arg(&tmp)
            .arg("."))?;
        fs::rename(&tmp, &tar).with_context(|| format!("moving base into {}", tar.display()))?;
        Ok(())
    })();
    if let Err(e) = result {
        // Keep the log for a look after the scratch folder goes.
        let _ = fs::copy(&log, out.join("base-failed.log"));
        return Err(e);
    }
    // Old bases are dead weight (hundreds of MB each).
    for e in fs::read_dir(out)?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("base-") && n.ends_with(".tar") && e.path() != tar {
            let _ = fs::remove_file(e.path());
        }
    }
    eprintln!(
        "real: base {key} built in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(tar)
}

fn build_guest_locked(dir: &Path, out: &Path, base: &Path, g: &GuestSpec, key: &str) -> Result<()> {
    let _lock = lock(&out.join(format!("{}.lock", g.name)))?;
    // Another builder may have finished it while we waited for the lock.
    if is_current(out, &g.name, key) {
        println!("real: {} is current", g.name);
        return Ok(());
    }
    let t0 = Instant::now();
    eprintln!("real: building {} ({key})", g.name);
    let scratch = Scratch::new(out, &g.name)?;
    let log = scratch.0.join("build.log");
    build_guest(dir, out, base, g, key, &scratch.0, &log).inspect_err(|_| {
        let _ = fs::copy(&log, out.join(format!("{}-failed.log", g.name)));
    })?;
    let _ = fs::remove_file(out.join(format!("{}-failed.log", g.name)));
    println!(
        "real: built {} in {:.0} s: {}",
        g.name,
        t0.elapsed().as_secs_f64(),
        out.join(format!("{}.qcow2", g.name)).display()
    );
    Ok(())
}

/// A v4-shaped UUID derived from the guest key, so a rebuild of the same recipe is identical.
fn derived_uuid(key: &str, what: &str) -> String {
    let mut b: [u8; 16] = Sha256::digest(format!("{key}/{what}"))[..16]
        .try_into()
        .unwrap_or([0; 16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The udev /dev/disk/by-id name of an ATA disk with this model and serial.
pub fn ata_by_id(model: &str, serial: &str) -> String {
    format!("ata-{}_{}", model.trim().replace(' ', "_"), serial.trim())
}

struct Placed {
    start: u64,
    sectors: u64,
}

fn build_guest(
    dir: &Path,
    out: &Path,
    base: &Path,
    g: &GuestSpec,
    key: &str,
    scratch: &Path,
    log: &Path,
) -> Result<()> {
    let root = scratch.join("root");
    fs::create_dir_all(&root)?;
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf"])
        .arg(base))?;

    // Recipe files into /.revirt, then the guest's setup.sh in the chroot.
    let rdir = root.join(".revirt");
    fs::create_dir_all(&rdir)?;
    fs::copy(dir.join("lib.sh"), rdir.join("lib.sh"))?;
    for e in fs::read_dir(dir.join(&g.name))?.flatten() {
        if e.path().is_file() {
            fs::copy(e.path(), rdir.join(e.file_name()))?;
        }
    }
    let root_uuid = derived_uuid(key, "root");
    let boot_uuid = derived_uuid(key, "boot");
    let esp_serial = hex::encode_upper(&Sha256::digest(format!("{key}/esp"))[..4]);
    let esp_uuid = format!("{}-{}", &esp_serial[..4], &esp_serial[4..]);
    let luks_uuid = derived_uuid(key, "luks");
    let md_uuid = derived_uuid(key, "md");
    let mut env = vec![
        ("MD_UUID", md_uuid.clone()),
        ("LUKS_UUID", luks_uuid.clone()),
        ("ROOT_UUID", root_uuid.clone()),
        ("BOOT_UUID", boot_uuid.clone()),
        ("ESP_UUID", esp_uuid.clone()),
        ("OLD_MAC", g.source.mac.clone()),
    ];
    if let (Some(m), Some(s)) = (&g.source.disk_model, &g.source.disk_serial) {
        env.push(("DISK_BYID", ata_by_id(m, s)));
    }
    chroot_script(&root, "/.revirt/setup.sh", &env, log)?;
    let (core, bootimg) = if g.firmware == Firmware::Bios {
        let c = fs::read(rdir.join("out/core.img"))
            .context("setup.sh left no /.revirt/out/core.img")?;
        let b = fs::read(rdir.join("out/boot.img"))
            .context("setup.sh left no /.revirt/out/boot.img")?;
        (c, b)
    } else {
        (Vec::new(), Vec::new())
    };
    fs::remove_dir_all(&rdir)?;

    // Partition the raw images, then place every filesystem (partitions and LVs).
    let mut raws = Vec::new();
    let mut placed = Vec::new();
    let mut imgs = Vec::new();
    for (i, (mib, parts)) in std::iter::once((g.disk_mib, &g.partitions))
        .chain(g.extra_disks.iter().map(|d| (d.disk_mib, &d.partitions)))
        .enumerate()
    {
        let raw = scratch.join(format!("disk{i}.raw"));
        File::create(&raw)?.set_len(mib << 20)?;
        placed.push(partition(&raw, g.table, parts, &g.name)?);
        imgs.push(File::options().read(true).write(true).open(&raw)?);
        raws.push(raw);
    }
    let (vols, seals) = place_volumes(g, &placed, &mut imgs)?;
    ensure!(seals.len() <= 1, "{}: one LUKS partition at most", g.name);

    // Split the tree: each mounted volume's folder moves out, deepest mount first.
    let mut order: Vec<usize> = (0..vols.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(vols[i].mount.as_deref().map_or(0, str::len)));
    let mut trees = vec![None; vols.len()];
    for &i in &order {
        let Some(m) = vols[i].mount.as_deref() else {
            continue;
        };
        if m == "/" {
            trees[i] = Some(root.clone());
            continue;
        }
        let src = root.join(m.trim_start_matches('/'));
        let dst = scratch.join(format!("vol{i}"));
        if src.exists() {
            fs::rename(&src, &dst)
                .with_context(|| format!("moving {} out of the root", src.display()))?;
        } else {
            fs::create_dir_all(&dst)?;
        }
        fs::create_dir_all(&src)?;
        trees[i] = Some(dst);
    }

    // Filesystems as files, copied in at their offsets.
    let empty = scratch.join("empty");
    fs::create_dir_all(&empty)?;
    for (i, v) in vols.iter().enumerate() {
        let tree = trees[i].as_deref().unwrap_or(&empty);
        let fsimg = scratch.join(format!("vol{i}.img"));
        File::create(&fsimg)?.set_len(v.bytes)?;
        let (uuid, label) = match v.mount.as_deref() {
            Some("/") => (root_uuid.clone(), "root"),
            Some("/boot") => (boot_uuid.clone(), "boot"),
            _ => (derived_uuid(key, &v.what), ""),
        };
        mkfs(v, &uuid, label, &esp_serial, tree, &fsimg, scratch)
            .with_context(|| format!("{}: making {} on {}", g.name, v.fs, v.what))?;
        if let Some(md) = &v.md {
            imgs.iter().try_for_each(File::sync_all)?;
            build_md(md, &md_uuid, &g.name, &raws, &fsimg)
                .with_context(|| format!("{}: making {}", g.name, v.what))?;
            fs::remove_file(&fsimg)?;
            continue;
        }
        copy_pieces(&fsimg, &v.pieces, &mut imgs)
            .with_context(|| format!("copying {} into the disks", fsimg.display()))?;
        fs::remove_file(&fsimg)?;
    }
    for sl in &seals {
        crate::skeleton::disk::seal(
            &mut imgs[sl.disk],
            sl.start,
            sl.bytes,
            &sl.passphrase,
            &luks_uuid,
            scratch,
        )
        .with_context(|| format!("{}: encrypting {}", g.name, sl.device))?;
    }

    if g.firmware == Firmware::Bios {
        let first = &placed[0];
        let core_lba = match g.table {
            Table::Mbr => {
                let gap = first.iter().map(|p| p.start).min().unwrap_or(0);
                ensure!(gap > 1, "{}: no post-MBR gap", g.name);
                (1, gap - 1)
            }
            Table::Gpt => {
                let i = g
                    .partitions
                    .iter()
                    .position(|p| p.kind == PartKind::BiosBoot)
                    .with_context(|| {
                        format!("{}: BIOS boot on GPT needs a bios-boot partition", g.name)
                    })?;
                (first[i].start, first[i].sectors)
            }
        };
        install_bios_grub(&mut imgs[0], &bootimg, &core, core_lba.0, core_lba.1)
            .with_context(|| format!("installing grub into {}", raws[0].display()))?;
    }
    for img in imgs {
        img.sync_all()?;
    }

    // Disk i > 0 is `<name>.<disk name>.qcow2`.
    let names: Vec<String> = std::iter::once(g.name.clone())
        .chain(
            g.extra_disks
                .iter()
                .map(|d| format!("{}.{}", g.name, d.name)),
        )
        .collect();
    for (raw, name) in raws.iter().zip(&names) {
        run(Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .arg(raw)
            .arg(scratch.join(format!("{name}.qcow2"))))?;
        fs::remove_file(raw)?;
    }

    let info = BootInfo {
        name: g.name.clone(),
        firmware: g.firmware,
        source: g.source.clone(),
        expect_source: g.expect_source.clone(),
        extra_disks: g.extra_disks.iter().map(|d| d.name.clone()).collect(),
        keys: seals
            .iter()
            .map(|sl| crate::boot::KeySpec {
                device: sl.device.clone(),
                passphrase: sl.passphrase.clone(),
            })
            .collect(),
    };
    let info_tmp = scratch.join("boot.json");
    fs::write(&info_tmp, serde_json::to_string_pretty(&info)?)?;
    let key_tmp = scratch.join("key");
    fs::write(&key_tmp, format!("{key}\n"))?;
    // The key goes last: a crash between the renames leaves a stale key, i.e. a rebuild next time.
    for name in &names {
        let f = format!("{name}.qcow2");
        fs::rename(scratch.join(&f), out.join(&f))?;
    }
    fs::rename(&info_tmp, out.join(format!("{}.boot.json", g.name)))?;
    fs::rename(&key_tmp, out.join(format!("{}.key", g.name)))?;
    Ok(())
}

fn read_layout(raw: &Path) -> Result<Vec<Placed>> {
    let o = Command::new("sfdisk")
        .arg("--json")
        .arg(raw)
        .output()
        .context("running sfdisk --json")?;
    ensure!(
        o.status.success(),
        "sfdisk --json {}: {}",
        raw.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).context("parsing sfdisk --json")?;
    let parts = v["partitiontable"]["partitions"]
        .as_array()
        .context("sfdisk --json: no partitions")?;
    parts
        .iter()
        .map(|p| {
            Ok(Placed {
                start: p["start"].as_u64().context("sfdisk --json: no start")?,
                sectors: p["size"].as_u64().context("sfdisk --json: no size")?,
            })
        })
        .collect()
}

/// Writes the partition table with sfdisk and reads back where each partition landed.
fn partition(raw: &Path, table: Table, parts: &[PartSpec], guest: &str) -> Result<Vec<Placed>> {
    let mut script = String::from(match table {
        Table::Mbr => "label: dos\nunit: sectors\n",
        Table::Gpt => "label: gpt\nunit: sectors\n",
    });
    for (i, p) in parts.iter().enumerate() {
        let ty = match (table, p.kind) {
            (Table::Mbr, PartKind::Linux) => "83",
            (Table::Mbr, PartKind::Esp) => "ef",
            (Table::Mbr, PartKind::Lvm) => "8e",
            (Table::Mbr, PartKind::Raid) => "fd",
            (Table::Gpt, PartKind::Raid) => "A19D880F-05FC-4D3B-A006-743F0F84911E",
            (Table::Gpt, PartKind::Linux) => "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            (Table::Gpt, PartKind::Esp) => "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            (Table::Gpt, PartKind::BiosBoot) => "21686148-6449-6E6F-744E-656564454649",
            (Table::Gpt, PartKind::Lvm) => "E6D6D379-F507-44C2-A23C-238F2A3DF928",
            (Table::Mbr, PartKind::BiosBoot) => {
                bail!("{guest}: a BIOS boot partition needs GPT")
            }
        };
        let size = if p.size_mib == 0 {
            String::new()
        } else {
            format!(", size={}", p.size_mib * 2048)
        };
        let boot = if table == Table::Mbr && i == 0 {
            ", bootable"
        } else {
            ""
        };
        script.push_str(&format!("{}: type={ty}{size}{boot}\n", i + 1));
    }
    let mut child = Command::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(raw)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running sfdisk")?;
    child
        .stdin
        .take()
        .context("sfdisk stdin")?
        .write_all(script.as_bytes())?;
    let o = child.wait_with_output()?;
    ensure!(
        o.status.success(),
        "sfdisk on {} failed: {}",
        raw.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let placed = read_layout(raw)?;
    ensure!(
        placed.len() == parts.len(),
        "{guest}: sfdisk made {} partitions",
        placed.len()
    );
    Ok(placed)
}

/// A PV partition while the VGs are laid out.
struct PvAt {
    disk: usize,
    part: usize,
    start: u64,
    bytes: u64,
}

/// Every filesystem of the guest with its place on the disks; writes the LVM metadata of each
/// PV. A VG's first PV is the partition giving its `vg`, then come its `pv_of` partitions in
/// disk order; LVs are linear, one after the other, running on into the next PV when one is
/// full (as `lvcreate` allocates on a VG whose first PV is too small).
/// The filesystems to make and where they go, with the LUKS containers to seal around some.
fn place_volumes(
    g: &GuestSpec,
    placed: &[Vec<Placed>],
    imgs: &mut [File],
) -> Result<(Vec<FsVol>, Vec<Seal>)> {
    use crate::skeleton::{ids, layout::LUKS_RESERVE, lvm};
    let mut seals = vec![];
    let mut raid: Vec<(String, usize, usize, u64)> = vec![];
    let disks: Vec<&[PartSpec]> = std::iter::once(g.partitions.as_slice())
        .chain(g.extra_disks.iter().map(|d| d.partitions.as_slice()))
        .collect();
    let mut vols = Vec::new();
    let mut vgs: Vec<(&VgSpec, Vec<PvAt>)> = Vec::new();
    for (d, parts) in disks.iter().enumerate() {
        for (i, (p, at)) in parts.iter().zip(&placed[d]).enumerate() {
            let (start, bytes) = (at.start * 512, at.sectors * 512);
            let what = format!("disk {} partition {}", d + 1, i + 1);
            if let Some(fs_kind) = &p.fs {
                // Sealed: the filesystem is written at the start and the offline reencryption
                // moves it up past the LUKS2 header it makes room for.
                let fs_bytes = match &p.luks {
                    Some(l) => {
                        ensure!(
                            bytes > LUKS_RESERVE,
                            "{}: {what} too small for LUKS",
                            g.name
                        );
                        seals.push(Seal {
                            disk: d,
                            start,
                            bytes,
                            passphrase: l.passphrase.clone(),
                            device: format!("/dev/sd{}{}", (b'a' + d as u8) as char, i + 1),
                        });
                        bytes - LUKS_RESERVE
                    }
                    None => bytes,
                };
                vols.push(FsVol {
                    what: what.clone(),
                    fs: fs_kind.clone(),
                    mount: p.mount.clone(),
                    bytes: fs_bytes,
                    pieces: vec![(d, start, fs_bytes)],
                    md: None,
                });
            }
            let pv = PvAt {
                disk: d,
                part: i,
                start,
                bytes,
            };
            if let Some(a) = &p.md {
                ensure!(
                    p.kind == PartKind::Raid,
                    "{}: {what}: md on kind raid only",
                    g.name
                );
                raid.push((a.clone(), d, i + 1, bytes));
            }
            let lvm_part = p.kind == PartKind::Lvm;
            match (&p.vg, &p.pv_of) {
                (None, None) if !lvm_part => {}
                (Some(vg), None) if lvm_part => vgs.push((vg, vec![pv])),
                (None, Some(name)) if lvm_part => vgs
                    .iter_mut()
                    .find(|(v, _)| &v.name == name)
                    .with_context(|| {
                        format!("{}: {what}: pv_of {name:?} names no earlier vg", g.name)
                    })?
                    .1
                    .push(pv),
                _ => bail!(
                    "{}: {what}: vg or pv_of (exactly one) on kind lvm partitions only",
                    g.name
                ),
            }
        }
    }
    for (vg, pvs) in &vgs {
        let mut free: Vec<(usize, u64, u64)> = pvs
            .iter()
            .enumerate()
            .map(|(k, p)| (k, 0, lvm::pe_count(p.bytes)))
            .collect();
        let left = |f: &[(usize, u64, u64)]| f.iter().map(|(_, used, n)| n - used).sum::<u64>();
        let mut lvs = Vec::new();
        for (k, lv) in vg.lvs.iter().enumerate() {
            let want = if lv.size_mib == 0 {
                ensure!(
                    k + 1 == vg.lvs.len(),
                    "{}: only the last LV may take the rest",
                    g.name
                );
                left(&free)
            } else {
                (lv.size_mib << 20).div_ceil(lvm::EXTENT)
            };
            ensure!(
                want > 0 && want <= left(&free),
                "{}: LV {}/{} does not fit its PVs ({} extents free)",
                g.name,
                vg.name,
                lv.name,
                left(&free)
            );
            let (mut segments, mut pieces, mut need) = (Vec::new(), Vec::new(), want);
            for (pv, used, n) in free.iter_mut() {
                let take = need.min(*n - *used);
                if take == 0 {
                    continue;
                }
                let at = &pvs[*pv];
                pieces.push((
                    at.disk,
                    at.start + lvm::extent_offset(*used),
                    take * lvm::EXTENT,
                ));
                segments.push(lvm::Segment {
                    pv: *pv,
                    pv_start_extent: *used,
                    extent_count: take,
                });
                *used += take;
                need -= take;
                if need == 0 {
                    break;
                }
            }
            vols.push(FsVol {
                what: format!("lv {}/{}", vg.name, lv.name),
                fs: lv.fs.clone(),
                mount: lv.mount.clone(),
                bytes: want * lvm::EXTENT,
                pieces,
                md: None,
            });
            lvs.push(lvm::LvSegments {
                name: lv.name.clone(),
                uuid: ids::lvm_uuid(&g.name, &format!("lv:{}/{}", vg.name, lv.name)),
                segments,
            });
        }
        let spec = lvm::VgSpec {
            guest: &g.name,
            vg: &vg.name,
            vg_uuid: ids::lvm_uuid(&g.name, &format!("vg:{}", vg.name)),
            pvs: pvs
                .iter()
                .map(|p| lvm::Pv {
                    // The first disk's PVs keep the ids they had before disks were added.
                    uuid: if p.disk == 0 {
                        ids::lvm_uuid(&g.name, &format!("pv:{}", p.part + 1))
                    } else {
                        ids::lvm_uuid(&g.name, &format!("pv:{}:{}", p.disk + 1, p.part + 1))
                    },
                    device_hint: format!("/dev/sd{}{}", (b'a' + p.disk as u8) as char, p.part + 1),
                    size: p.bytes,
                })
                .collect(),
            lvs,
        };
        for (k, p) in pvs.iter().enumerate() {
            lvm::write_vg_pv(&mut imgs[p.disk], p.start, &spec, k)
                .with_context(|| format!("{}: writing PV {} of {}", g.name, k + 1, vg.name))?;
        }
    }
    for a in &g.arrays {
        let members: Vec<_> = raid.iter().filter(|r| r.0 == a.name).collect();
        ensure!(
            members.len() >= 2,
            "{}: array {} needs 2 members",
            g.name,
            a.name
        );
        // Room for mdadm's superblock (and its rounding) at the members' end.
        let bytes = members.iter().map(|m| m.3).min().unwrap_or(0) - (1 << 20);
        vols.push(FsVol {
            what: format!("md {}", a.name),
            fs: a.fs.clone(),
            mount: a.mount.clone(),
            bytes,
            pieces: vec![],
            md: Some(MdBuild {
                metadata: a.metadata.clone(),
                members: members.iter().map(|m| (m.1, m.2)).collect(),
            }),
        });
    }
    ensure!(g.arrays.len() <= 1, "{}: one md array at most", g.name);
    Ok((vols, seals))
}

/// Creates the array `md` over its member partitions of the raw disks (mdadm in the libguestfs
/// appliance: the host kernel's md is not used) and writes the filesystem image through it, so
/// every mirror holds it.
fn build_md(md: &MdBuild, uuid: &str, host: &str, raws: &[PathBuf], fsimg: &Path) -> Result<()> {
    let devs: Vec<String> = md
        .members
        .iter()
        .map(|(d, p)| format!("/dev/sd{}{p}", (b'a' + *d as u8) as char))
        .collect();
    let script = format!(
        "run\n\
         debug sh \"udevadm settle; mdadm --create /dev/md0 --run --assume-clean --bitmap=none --metadata={} --level=1 --raid-devices={} --homehost={host} --name=0 --uuid={uuid} {}\"\n\
         upload {} /dev/md0\n\
         debug sh \"sync; mdadm --stop /dev/md0\"\n",
        md.metadata,
        devs.len(),
        devs.join(" "),
        fsimg.display()
    );
    let mut gf = Command::new("guestfish");
    gf.env("LIBGUESTFS_BACKEND", "direct")
        .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg");
    for r in raws {
        gf.arg("--format=raw").arg("-a").arg(r);
    }
    let mut child = gf
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("starting guestfish")?;
    child
        .stdin
        .take()
        .context("guestfish stdin")?
        .write_all(script.as_bytes())?;
    let st = child.wait()?;
    ensure!(
        st.success(),
        "guestfish (mdadm --create, upload) failed: {st}"
    );
    Ok(())
}

/// Copies the filesystem image `src` into its pieces on the disks, skipping all-zero MiBs
/// (the raw disks stay sparse).
fn copy_pieces(src: &Path, pieces: &[(usize, u64, u64)], imgs: &mut [File]) -> Result<()> {
    let mut f = File::open(src)?;
    let mut buf = vec![0u8; 1 << 20];
    for &(disk, offset, len) in pieces {
        let mut done = 0;
        while done < len {
            let n = ((len - done) as usize).min(buf.len());
            f.read_exact(&mut buf[..n])?;
            if buf[..n].iter().any(|&b| b != 0) {
                imgs[disk].seek(SeekFrom::Start(offset + done))?;
                imgs[disk].write_all(&buf[..n])?;
            }
            done += n as u64;
        }
    }
    Ok(())
}

/// Makes one filesystem from `tree` into the file `fsimg`, sized already.
fn mkfs(
    v: &FsVol,
    uuid: &str,
    label: &str,
    esp_serial: &str,
    tree: &Path,
    fsimg: &Path,
    scratch: &Path,
) -> Result<()> {
    let with_label = |flag: &str| -> Vec<String> {
        if label.is_empty() {
            vec![]
        } else {
            vec![flag.into(), label.into()]
        }
    };
    match v.fs.as_str() {
        "ext4" => run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-U", uuid])
            .args(with_label("-L"))
            .arg("-d")
            .arg(tree)
            .arg(fsimg)),
        "xfs" => {
            // Owners kept: a real guest's tree has files of other users and groups (shadow, ...).
            let (proto, sticky) = crate::skeleton::disk::protofile(tree, true)?;
            let pf = scratch.join("xfs.proto");
            fs::write(&pf, proto)?;
            run(Command::new("mkfs.xfs")
                .args(["-q", "-f", "-m", &format!("uuid={uuid}")])
                .args(with_label("-L"))
                .arg("-p")
                .arg(&pf)
                .arg(fsimg))?;
            crate::skeleton::disk::set_sticky(fsimg, &sticky, scratch)
        }
        "swap" => run(Command::new("mkswap")
            .args(["-q", "-U", uuid])
            .args(with_label("-L"))
            .arg(fsimg)),
        "vfat" => {
            run(Command::new("mkfs.vfat")
                .args(["-F", "32", "-n", "EFI", "-i", esp_serial])
                .arg(fsimg))?;
            for e in fs::read_dir(tree)?.flatten() {
                run(Command::new("mcopy")
                    .args(["-s", "-p", "-Q", "-i"])
                    .arg(fsimg)
                    .arg(e.path())
                    .arg("::/"))?;
            }
            Ok(())
        }
        other => bail!("unknown filesystem {other:?}"),
    }
}

// Offsets in grub 2.06's i386-pc boot.img and diskboot.img (include/grub/i386/pc/boot.h).
const BOOT_BPB_START: usize = 0x3;
const BOOT_BPB_END: usize = 0x5a;
const BOOT_KERNEL_SECTOR: usize = 0x5c;
const BOOT_DRIVE: usize = 0x64;
const BOOT_DRIVE_CHECK: usize = 0x66;
/// From here on the MBR keeps the disk's own bytes (NT disk signature, partition table, 55AA).
const BOOT_WINDOWS_NT_MAGIC: usize = 0x1b8;

/// Writes grub's boot.img into sector 0 and core.img at `core_lba` (at most `room` sectors).
///
/// boot.img loads the first core sector from its kernel-sector field; that sector (diskboot.img)
/// loads the rest from the blocklist at its end: start = core_lba + 1, length = sectors - 1.
fn install_bios_grub(
    img: &mut File,
    boot: &[u8],
    core: &[u8],
    core_lba: u64,
    room: u64,
) -> Result<()> {
    ensure!(
        boot.len() == 512,
        "boot.img is {} bytes, expected 512",
        boot.len()
    );
    ensure!(core.len() > 512, "core.img is only {} bytes", core.len());
    let sectors = core.len().div_ceil(512) as u64;
    ensure!(
        sectors <= room,
        "core.img needs {sectors} sectors, only {room} free at LBA {core_lba}"
    );

    let mut core = core.to_vec();
    core.resize(sectors as usize * 512, 0);
    // The first (and only) blocklist entry sits in the last 12 bytes of the first sector.
    let bl = 512 - 12;
    let old_start = u64::from_le_bytes(core[bl..bl + 8].try_into()?);
    ensure!(
        old_start == 2,
        "core.img blocklist does not have grub's default start (found {old_start})"
    );
    core[bl..bl + 8].copy_from_slice(&(core_lba + 1).to_le_bytes());
    let rest = u16::try_from(sectors - 1).context("core.img too large for one blocklist entry")?;
    core[bl + 8..bl + 10].copy_from_slice(&rest.to_le_bytes());
    img.seek(SeekFrom::Start(core_lba * 512))?;
    img.write_all(&core)?;

    let mut mbr = [0u8; 512];
    img.seek(SeekFrom::Start(0))?;
    img.read_exact(&mut mbr)?;
    let mut new = [0u8; 512];
    new.copy_from_slice(boot);
    new[BOOT_BPB_START..BOOT_BPB_END].copy_from_slice(&mbr[BOOT_BPB_START..BOOT_BPB_END]);
    new[BOOT_WINDOWS_NT_MAGIC..].copy_from_slice(&mbr[BOOT_WINDOWS_NT_MAGIC..]);
    new[BOOT_KERNEL_SECTOR..BOOT_KERNEL_SECTOR + 8].copy_from_slice(&core_lba.to_le_bytes());
    new[BOOT_DRIVE] = 0xff;
    // A hard disk: skip boot.img's check for buggy BIOSes that pass a floppy drive number.
    new[BOOT_DRIVE_CHECK] = 0x90;
    new[BOOT_DRIVE_CHECK + 1] = 0x90;
    img.seek(SeekFrom::Start(0))?;
    img.write_all(&new)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_parses_and_names_recipe_folders() {
        let dir = recipe_dir();
        let (m, _) = load_manifest(&dir).unwrap();
        assert!(m.guests.len() >= 4);
        for g in &m.guests {
            assert!(
                dir.join(&g.name).join("setup.sh").is_file(),
                "{} has no setup.sh",
                g.name
            );
            // / on a partition, or on an LV of a VG on one.
            let root = g.partitions.iter().any(|p| {
                p.mount.as_deref() == Some("/")
                    || p.vg
                        .as_ref()
                        .is_some_and(|vg| vg.lvs.iter().any(|l| l.mount.as_deref() == Some("/")))
            });
            assert!(root, "{}: no / mount", g.name);
        }
    }

    #[test]
    fn derived_uuid_is_stable_v4() {
        let a = derived_uuid("k", "root");
        assert_eq!(a, derived_uuid("k", "root"));
        assert_ne!(a, derived_uuid("k", "boot"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn by_id_name_matches_udev() {
        assert_eq!(
            ata_by_id("VMware Virtual SATA Hard Drive", "00000000000000000001"),
            "ata-VMware_Virtual_SATA_Hard_Drive_00000000000000000001"
        );
    }
}
