//! Phony guests: the kind libguestfs tests its own inspection on (`test-data/phony-guests/
//! make-*-img.sh`): just the files each distro lays out — release files, fstab, hostname, a
//! binary header for the architecture, a package database — and no kernel or bootloader.
//! They prove root detection and identity on guests revirt never built itself: Debian 5 with only
//! /etc/debian_version, CoreOS and Flatcar with /usr on their own partition, a Windows 7 whose
//! only binary is cmd.exe...
//!
//! ```text
//! fixtures/images/phony/NAME/guest.toml + root/ ──stage──▶ tree ──skeleton::disk──▶ raw ──▶ NAME.qcow2
//!                          (NTFS guests: mkntfs + ntfs-3g + hivexregedit instead of the disk step)
//! ```
//! The disk layout is a skeleton `[disk]` / `[[lvm]]` table and goes through the skeleton disk
//! machinery (sfdisk, mkfs -d, the LVM writer), so UUIDs derive from the guest name and the
//! images are identical on every build. Output in `cache_dir()/phony/`: `NAME.qcow2` and
//! `NAME.hash` (recipe + builder hash).
use crate::skeleton::{self, disk, layout, recipe, run_sh};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Instant;

const BUILDER: &str = include_str!("phony.rs");

pub fn recipes_dir() -> PathBuf {
    crate::repo_root().join("fixtures/images/phony")
}

pub fn out_dir() -> PathBuf {
    crate::cache_dir().join("phony")
}

/// `guest.toml` of a phony guest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Phony {
    /// x86_64 or i386: the ELF (Linux) or PE (paths ending in .exe) header of `binaries`.
    arch: String,
    /// Executables written as bare ELF or PE headers (guest paths).
    #[serde(default)]
    binaries: Vec<String>,
    /// Empty directories to create (git keeps none).
    #[serde(default)]
    dirs: Vec<String>,
    /// Symlinks as [guest path, target].
    #[serde(default)]
    links: Vec<[String; 2]>,
    /// Registry hives built from .reg files of the recipe folder.
    #[serde(default)]
    hives: Vec<HiveSpec>,
    /// An rpm database made by rpm itself from spec files of the recipe folder.
    rpmdb: Option<RpmDbSpec>,
    /// Partitions and filesystems, as in a skeleton recipe; `fs = "ntfs"` (one partition,
    /// mounted at /) is made here with mkntfs and ntfs-3g.
    disk: recipe::Disk,
    #[serde(default)]
    lvm: Vec<recipe::Lv>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HiveSpec {
    /// Guest path of the hive file ("/Windows/System32/config/SOFTWARE").
    path: String,
    /// The .reg file (in the recipe folder) merged into an empty hive.
    reg: String,
    /// The HKLM key the .reg file writes under ("SOFTWARE", "SYSTEM").
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RpmDbSpec {
    /// Guest directory of the database ("/var/lib/rpm", "/usr/lib/sysimage/rpm").
    path: String,
    /// Folder (in the recipe folder) of the `.spec` files: each built with rpmbuild into a
    /// noarch package, all recorded with `rpm --justdb` into an SQLite database.
    specs: String,
}

/// Builds every phony guest (or those whose name contains `only`) that is missing or stale.
pub fn build_all(only: Option<&str>) -> Result<()> {
    let t0 = Instant::now();
    let rdir = recipes_dir();
    let names = crate::skeleton::recipe_names(&rdir, only)?;
    let out = out_dir();
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // One builder at a time per cache dir: a concurrent caller waits, then finds it current.
    let lock = fs::File::create(out.join(".lock"))?;
    lock.lock().context("locking the phony cache")?;
    let count = names.len();
    crate::parallel("phony", names, |name| {
        let t = Instant::now();
        match build_one(&name, &rdir.join(&name), &out) {
            Ok(true) => {
                println!(
                    "phony {name:<12} built  {:>6.2}s",
                    t.elapsed().as_secs_f64()
                );
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err((name, e)),
        }
    })?;
    println!(
        "phony: {count} guests current in {:.2}s -> {}",
        t0.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

fn build_one(name: &str, dir: &Path, out: &Path) -> Result<bool> {
    let mut h = Sha256::new();
    h.update(BUILDER.as_bytes());
    h.update(skeleton::recipe_hash(dir)?.as_bytes());
    let hash: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let qcow = out.join(format!("{name}.qcow2"));
    let hash_file = out.join(format!("{name}.hash"));
    if qcow.is_file() && fs::read_to_string(&hash_file).ok().as_deref() == Some(hash.as_str()) {
        return Ok(false);
    }
    let work = out.join(format!(".work-{name}"));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let tmp = build_into(name, dir, &work)?;
    let _ = fs::remove_file(&hash_file);
    fs::rename(&tmp, &qcow)?;
    // The keys of its encrypted volumes, as `--key` takes them (the bench opens it with them).
    let keys = out.join(format!("{name}.keys"));
    let _ = fs::remove_file(&keys);
    if work.join("keys").is_file() {
        fs::rename(work.join("keys"), &keys)?;
    }
    fs::write(&hash_file, &hash)?;
    fs::remove_dir_all(&work)?;
    Ok(true)
}

/// `--key` arguments for the layout's LUKS volumes: the PV partition or the LV by name.
fn luks_keys(layout: &layout::Layout) -> Vec<String> {
    let parts = layout.partitions.iter().filter_map(|p| {
        p.luks
            .as_ref()
            .map(|(pass, _)| format!("{}:key:{pass}", p.device))
    });
    let lvs = layout.volumes.iter().filter_map(|v| {
        let (pass, _) = v.luks.as_ref()?;
        Some(format!(
            "{}:key:{pass}",
            v.lvm_dev.as_ref().unwrap_or(&v.dev)
        ))
    });
    parts.chain(lvs).collect()
}

/// A skeleton recipe carrying only the phony guest's disk (the generator parts are unused).
fn as_recipe(p: &Phony) -> recipe::Recipe {
    let mut disk = p.disk.clone();
    for part in &mut disk.partitions {
        if part.fs == "ntfs" {
            part.fs = "none".into(); // laid out by the skeleton code, made here
        }
    }
    recipe::Recipe {
        family: recipe::Family::Debian,
        arch: p.arch.clone(),
        hostname: String::new(),
        usrmerge: false,
        selinux: None,
        tools: vec![],
        module_compress: "none".into(),
        disk,
        lvm: p.lvm.clone(),
        fstab: Default::default(),
        // "uefi": no GRUB boot code in the MBR (phony guests have no bootloader).
        boot: recipe::Boot {
            firmware: "uefi".into(),
            bls: false,
            grubenv_kernelopts: false,
            efi_vendor: None,
            efi_full_cfg: false,
            root_spec: None,
            cmdline: String::new(),
            linuxefi: false,
        },
        kernels: vec![],
        network: recipe::Network {
            flavor: "none".into(),
            iface: String::new(),
            mac: String::new(),
            bootproto: String::new(),
            ip: None,
            prefix: None,
            gateway: None,
            dns: vec![],
            files: vec![],
        },
        crypttab: vec![],
    }
}

fn build_into(name: &str, dir: &Path, work: &Path) -> Result<PathBuf> {
    let text = fs::read_to_string(dir.join("guest.toml"))?;
    let p: Phony = toml::from_str(&text).with_context(|| format!("parsing {name}/guest.toml"))?;
    if p.arch != "x86_64" && p.arch != "i386" {
        bail!("{name}: arch {:?}: want x86_64 or i386", p.arch);
    }
    let recipe = as_recipe(&p);
    let layout = layout::Layout::resolve(name, &recipe)?;
    let keys = luks_keys(&layout);
    if !keys.is_empty() {
        fs::write(work.join("keys"), keys.join("\n") + "\n")?;
    }
    let root = work.join("root");
    stage(name, dir, &p, &layout, &root)?;
    let raw = work.join("disk.raw");
    disk::build_raw(name, &recipe, &layout, &root, work, &raw)?;
    let ntfs: Vec<&recipe::Partition> = p
        .disk
        .partitions
        .iter()
        .filter(|x| x.fs == "ntfs")
        .collect();
    match ntfs.as_slice() {
        [] => {}
        [part] if part.mnt.mount.as_deref() == Some("/") => {
            let place = layout
                .part(&part.id)
                .with_context(|| format!("partition {} not laid out", part.id))?;
            write_ntfs(name, place, part.mnt.label.as_deref(), &root, work, &raw)?;
        }
        _ => bail!("{name}: one NTFS partition, mounted at /, is supported"),
    }
    let qcow = work.join("disk.qcow2");
    run_sh(
        &format!(
            "qemu-img convert -q -c -f raw -O qcow2 '{}' '{}'",
            raw.display(),
            qcow.display()
        ),
        None,
        work,
    )
    .context("converting to qcow2")?;
    Ok(qcow)
}

/// Lays out the guest tree: the recipe's root/ overlay (text placeholders `{{uuid.ID}}`,
/// `{{label.ID}}`, `{{dev.ID}}`, `{{mounted.ID}}` expanded), empty directories, symlinks,
/// binary headers and registry hives.
fn stage(name: &str, dir: &Path, p: &Phony, layout: &layout::Layout, root: &Path) -> Result<()> {
    fs::create_dir_all(root)?;
    let overlay = dir.join("root");
    if overlay.is_dir() {
        run_sh(
            &format!("cp -a '{}/.' '{}/'", overlay.display(), root.display()),
            None,
            dir,
        )?;
    }
    let vars = placeholders(layout);
    expand_tree(root, &vars)?;
    let at = |guest: &str| root.join(guest.trim_start_matches('/'));
    for d in &p.dirs {
        fs::create_dir_all(at(d))?;
    }
    for [path, target] in &p.links {
        let l = at(path);
        fs::create_dir_all(l.parent().unwrap_or(root))?;
        symlink(target, &l).with_context(|| format!("{name}: link {path}"))?;
    }
    for b in &p.binaries {
        let f = at(b);
        fs::create_dir_all(f.parent().unwrap_or(root))?;
        let bytes = if b.to_ascii_lowercase().ends_with(".exe") {
            pe_bytes(&p.arch)
        } else {
            skeleton::tree::elf_bytes(&p.arch, 2, &format!("phony {b}"))
        };
        fs::write(&f, bytes)?;
        fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let mkhive = crate::repo_root().join("fixtures/images/windows-mini/mkhive.py");
    for h in &p.hives {
        let f = at(&h.path);
        fs::create_dir_all(f.parent().unwrap_or(root))?;
        let reg = dir.join(&h.reg);
        let text = fs::read_to_string(&reg).with_context(|| format!("{}", reg.display()))?;
        let expanded = root.join(format!("../{}.expanded", h.reg));
        fs::write(&expanded, expand(&vars, &text, &reg)?)?;
        let root_name = match h.key.as_str() {
            "SOFTWARE" => "CMI-CreateHive{199DAFC2-6F16-4946-BF90-5A3FC3A60902}",
            "SYSTEM" => "CMI-CreateHive{2A7FB991-7BBE-4F9D-B91E-7CB51D4737F5}",
            k => bail!("{name}: hive key {k:?}: want SOFTWARE or SYSTEM"),
        };
        run_sh(
            &format!(
                "python3 '{}' '{}' '{root_name}' && hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\\{}' '{}' '{}'",
                mkhive.display(),
                f.display(),
                h.key,
                f.display(),
                expanded.display()
            ),
            None,
            dir,
        )
        .with_context(|| format!("{name}: building hive {}", h.path))?;
        fs::remove_file(&expanded)?;
    }
    if let Some(r) = &p.rpmdb {
        write_rpmdb(name, dir, r, &at(&r.path), root)?;
    }
    Ok(())
}

/// Builds the packages of `r.specs` with rpmbuild and records them in an SQLite database at
/// `db` (`rpm --justdb`: no files, no scripts). Build times, hosts and the changelog cut-off
/// come from a fixed SOURCE_DATE_EPOCH; the install time and transaction id rpm writes into the
/// database still vary between builds, which no inspection output shows.
fn write_rpmdb(name: &str, dir: &Path, r: &RpmDbSpec, db: &Path, root: &Path) -> Result<()> {
    let top = root.join("../rpmbuild");
    fs::create_dir_all(db)?;
    let mut specs: Vec<PathBuf> = fs::read_dir(dir.join(&r.specs))
        .with_context(|| format!("{name}: rpmdb specs {}", r.specs))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "spec"))
        .collect();
    specs.sort();
    let defs = format!(
        "--define '_topdir {}' --define '_buildhost phony.example.org' \
         --define 'use_source_date_epoch_as_buildtime 1'",
        top.display()
    );
    for spec in &specs {
        run_sh(
            &format!(
                "SOURCE_DATE_EPOCH=1700000000 rpmbuild -bb --quiet {defs} '{}'",
                spec.display()
            ),
            None,
            dir,
        )
        .with_context(|| {
            format!(
                "{name}: rpmbuild {} (needs the rpm package)",
                spec.display()
            )
        })?;
    }
    run_sh(
        &format!(
            "rpm --dbpath '{}' --define '_db_backend sqlite' -i --justdb --nodeps --noscripts \
             --ignorearch --ignoreos '{}'/RPMS/noarch/*.rpm",
            db.display(),
            top.display()
        ),
        None,
        dir,
    )
    .with_context(|| format!("{name}: rpm --justdb"))?;
    if !db.join("rpmdb.sqlite").is_file() {
        bail!("{name}: rpm wrote no rpmdb.sqlite in {}", db.display());
    }
    fs::remove_dir_all(&top)?;
    Ok(())
}

fn placeholders(layout: &layout::Layout) -> Vec<(String, String)> {
    let mut v = vec![];
    for vol in &layout.volumes {
        v.push((format!("uuid.{}", vol.id), vol.uuid.clone()));
        v.push((format!("dev.{}", vol.id), vol.dev.clone()));
        if let Some((_, u)) = &vol.luks {
            v.push((format!("luks.{}", vol.id), u.clone()));
        }
        if let Some(l) = &vol.label {
            v.push((format!("label.{}", vol.id), l.clone()));
        }
    }
    // MountedDevices value of an MBR partition: disk signature + byte offset, little endian,
    // in .reg hex(3) notation.
    let sig = u32::from_str_radix(layout.disk_id.trim_start_matches("0x"), 16).unwrap_or(0);
    for part in &layout.partitions {
        let mut b = sig.to_le_bytes().to_vec();
        b.extend_from_slice(&part.start.to_le_bytes());
        let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
        v.push((
            format!("mounted.{}", part.id),
            format!("hex(3):{}", hex.join(",")),
        ));
    }
    v
}

fn expand(vars: &[(String, String)], text: &str, origin: &Path) -> Result<String> {
    let mut out = text.to_string();
    for (k, val) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), val);
    }
    if let Some(i) = out.find("{{") {
        let end = out[i..].find("}}").map_or(out.len(), |e| i + e + 2);
        bail!("{}: unknown placeholder {}", origin.display(), &out[i..end]);
    }
    Ok(out)
}

fn expand_tree(dir: &Path, vars: &[(String, String)]) -> Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() {
            expand_tree(&e.path(), vars)?;
        } else if ft.is_file() {
            let b = fs::read(e.path())?;
            if let Ok(t) = String::from_utf8(b) {
                if t.contains("{{") {
                    fs::write(e.path(), expand(vars, &t, &e.path())?)?;
                }
            }
        }
    }
    Ok(())
}

/// A PE header that `file(1)` calls "PE32 executable (console) Intel 80386" (or PE32+ x86-64)
/// and no sections: enough for libguestfs's and revirt's architecture checks.
pub fn pe_bytes(arch: &str) -> Vec<u8> {
    let (machine, magic, opt_size, flags) = if arch == "x86_64" {
        (0x8664u16, 0x20bu16, 0xf0u16, 0x0022u16)
    } else {
        (0x014c, 0x010b, 0xe0, 0x0102)
    };
    let pe = 0x80usize;
    let mut b = vec![0u8; 0x200];
    b[0..2].copy_from_slice(b"MZ");
    b[0x3c..0x40].copy_from_slice(&(pe as u32).to_le_bytes());
    b[pe..pe + 4].copy_from_slice(b"PE\0\0");
    // COFF header: machine, no sections, optional header size, characteristics.
    b[pe + 4..pe + 6].copy_from_slice(&machine.to_le_bytes());
    b[pe + 20..pe + 22].copy_from_slice(&opt_size.to_le_bytes());
    b[pe + 22..pe + 24].copy_from_slice(&flags.to_le_bytes());
    // Optional header: magic, subsystem 3 (Windows console).
    let opt = pe + 24;
    b[opt..opt + 2].copy_from_slice(&magic.to_le_bytes());
    b[opt + 68..opt + 70].copy_from_slice(&3u16.to_le_bytes());
    b
}

/// Makes the NTFS volume of `part` from the staged tree (mkntfs, then ntfs-3g over FUSE), with
/// a volume serial derived from the guest name, and writes it into the disk with MBR type 07.
fn write_ntfs(
    name: &str,
    part: &layout::PartPlace,
    label: Option<&str>,
    tree: &Path,
    work: &Path,
    raw: &Path,
) -> Result<()> {
    let img = work.join("ntfs.img");
    fs::File::create(&img)?.set_len(part.size)?;
    run_sh(
        &format!(
            "mkntfs -F -Q -q -L '{}' -p {} -H 255 -S 63 '{}'",
            label.unwrap_or("System"),
            part.start / 512,
            img.display()
        ),
        None,
        work,
    )
    .context("mkntfs")?;
    let mnt = work.join("mnt");
    fs::create_dir_all(&mnt)?;
    run_sh(
        &format!("ntfs-3g '{}' '{}'", img.display(), mnt.display()),
        None,
        work,
    )
    .context("mounting the NTFS image with ntfs-3g (needs FUSE)")?;
    let copied = run_sh(
        &format!("cp -r '{}/.' '{}/'", tree.display(), mnt.display()),
        None,
        work,
    );
    run_sh(
        &format!(
            "fusermount -u '{0}' 2>/dev/null || umount '{0}'",
            mnt.display()
        ),
        None,
        work,
    )?;
    copied.context("copying the tree onto NTFS")?;
    // The volume serial (boot sector 0x48, and its backup in the last sector): stable UUIDs.
    let serial = u64::from_le_bytes(
        Sha256::digest(format!("{name}/ntfs-serial"))[..8]
            .try_into()
            .unwrap_or_default(),
    );
    let mut f = fs::OpenOptions::new().read(true).write(true).open(&img)?;
    let mut boot = [0u8; 512];
    f.read_exact(&mut boot)?;
    let total = u64::from_le_bytes(boot[0x28..0x30].try_into().unwrap_or_default());
    for at in [0, total * 512] {
        f.seek(SeekFrom::Start(at + 0x48))?;
        f.write_all(&serial.to_le_bytes())?;
    }
    drop(f);
    let mut d = fs::OpenOptions::new().write(true).open(raw)?;
    let mut src = fs::File::open(&img)?;
    d.seek(SeekFrom::Start(part.start))?;
    std::io::copy(&mut src, &mut d)?;
    // MBR partition type 07 (NTFS/exFAT/IFS) for this partition's entry.
    if !part.logical && part.number <= 4 {
        d.seek(SeekFrom::Start(0x1be + 16 * (part.number as u64 - 1) + 4))?;
        d.write_all(&[0x07])?;
    }
    d.sync_all()?;
    fs::remove_file(&img)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phony_recipe_lays_out() {
        let mut n = 0;
        for e in fs::read_dir(recipes_dir()).unwrap() {
            let e = e.unwrap();
            let g = e.path().join("guest.toml");
            if !g.is_file() {
                continue;
            }
            let name = e.file_name().to_string_lossy().to_string();
            let p: Phony = toml::from_str(&fs::read_to_string(&g).unwrap()).unwrap();
            let l = layout::Layout::resolve(&name, &as_recipe(&p)).unwrap();
            let ntfs_root = p
                .disk
                .partitions
                .iter()
                .any(|x| x.fs == "ntfs" && x.mnt.mount.as_deref() == Some("/"));
            assert!(
                l.volume_at("/").is_some() || ntfs_root,
                "{name}: no root volume"
            );
            n += 1;
        }
        assert!(n >= 9, "only {n} phony recipes");
    }

    #[test]
    fn pe_header_is_what_file_reads() {
        let b = pe_bytes("i386");
        assert_eq!(&b[0x80..0x84], b"PE\0\0");
        assert_eq!(u16::from_le_bytes([b[0x84], b[0x85]]), 0x14c);
        assert_eq!(u16::from_le_bytes([b[0x98], b[0x99]]), 0x10b);
    }
}
