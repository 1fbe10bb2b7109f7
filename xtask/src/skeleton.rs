//! Skeleton guests: small but realistic Linux root trees (config files as the distros ship them,
//! fake kernels/modules, real cpio initramfs images) turned into qcow2 disks in seconds, for
//! inspection and repair tests.
//!
//! Each recipe is `fixtures/images/skeletons/<name>/guest.toml` (layout, kernels, boot, network,
//! tools) plus a `root/` overlay of distro files. The shared generator (`skeleton/tree.rs`) adds
//! the common parts, `skeleton/disk.rs` makes the disk. Output, in `cache_dir()/skeletons/`:
//! `<name>.qcow2` and `<name>.expect.json` (facts derived from the recipe, never from revirt), and
//! `<name>.hash` (recipe + generator hash: a build is skipped while it matches).
//!
//! All identifiers (filesystem UUIDs, PARTUUIDs, LVM UUIDs, machine-id) derive from the guest
//! name, so expectation files are stable across rebuilds.
use anyhow::{bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

// disk, ids, layout and recipe also build the phony guests (`crate::phony`).
pub mod disk;
pub mod ids;
pub mod layout;
pub mod lvm;
pub mod recipe;
pub mod tree;

/// Generator sources, hashed into every recipe's cache key.
const GENERATOR: &[&str] = &[
    include_str!("skeleton.rs"),
    include_str!("skeleton/disk.rs"),
    include_str!("skeleton/ids.rs"),
    include_str!("skeleton/layout.rs"),
    include_str!("skeleton/lvm.rs"),
    include_str!("skeleton/recipe.rs"),
    include_str!("skeleton/tree.rs"),
];

pub fn recipes_dir() -> PathBuf {
    crate::repo_root().join("fixtures/images/skeletons")
}

pub fn out_dir() -> PathBuf {
    crate::cache_dir().join("skeletons")
}

/// With SKELETON_TRACE set, prints how long each build step took.
pub fn trace(guest: &str, step: &str, since: Instant) {
    if std::env::var_os("SKELETON_TRACE").is_some_and(|v| !v.is_empty()) {
        eprintln!("  {guest}: {step} {:.2}s", since.elapsed().as_secs_f64());
    }
}

/// Runs `sh -c cmd` in `cwd`, feeding `stdin`, returning stdout; the error carries stderr.
pub fn run_sh(cmd: &str, stdin: Option<&[u8]>, cwd: &Path) -> Result<Vec<u8>> {
    let t = Instant::now();
    let r = run_sh_inner(cmd, stdin, cwd);
    trace("sh", &cmd[..cmd.len().min(60)], t);
    r
}

fn run_sh_inner(cmd: &str, stdin: Option<&[u8]>, cwd: &Path) -> Result<Vec<u8>> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(cwd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{cmd}`"))?;
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take();
        let data = data.to_vec();
        std::thread::spawn(move || {
            if let Some(p) = pipe.as_mut() {
                let _ = p.write_all(&data);
            }
        })
    });
    let out = child.wait_with_output()?;
    if let Some(f) = feeder {
        let _ = f.join();
    }
    if !out.status.success() {
        bail!(
            "`{cmd}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Hash of the recipe directory (paths, file bytes, symlink targets) and the generator source.
pub fn recipe_hash(dir: &Path) -> Result<String> {
    fn rec(base: &Path, dir: &Path, h: &mut Sha256) -> Result<()> {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p
                .strip_prefix(base)
                .unwrap_or(&p)
                .to_string_lossy()
                .to_string();
            let ft = e.file_type()?;
            h.update(rel.as_bytes());
            if ft.is_symlink() {
                h.update(b"\0L");
                h.update(fs::read_link(&p)?.to_string_lossy().as_bytes());
            } else if ft.is_dir() {
                h.update(b"\0D");
                rec(base, &p, h)?;
            } else {
                h.update(b"\0F");
                h.update(fs::read(&p)?);
            }
            h.update(b"\0");
        }
        Ok(())
    }
    let mut h = Sha256::new();
    for s in GENERATOR {
        h.update(s.as_bytes());
    }
    rec(dir, dir, &mut h)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The recipe folders (holding a guest.toml) under `rdir` whose name contains `only`, sorted.
pub fn recipe_names(rdir: &Path, only: Option<&str>) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(rdir)
        .with_context(|| format!("reading {}", rdir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("guest.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| only.is_none_or(|o| n.contains(o)))
        .collect();
    names.sort();
    Ok(names)
}

/// Builds every recipe (or those whose name contains `only`) that is missing or stale.
pub fn build_all(only: Option<&str>) -> Result<()> {
    let t0 = Instant::now();
    let rdir = recipes_dir();
    let names = recipe_names(&rdir, only)?;
    if names.is_empty() {
        bail!(
            "no skeleton recipe matches {:?} in {}",
            only,
            rdir.display()
        );
    }
    let out = out_dir();
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // One builder at a time per cache dir: a concurrent caller waits, then finds it current.
    let lock = fs::File::create(out.join(".lock"))?;
    lock.lock().context("locking the skeleton cache")?;

    let queue = Mutex::new(names.clone());
    let results = Mutex::new(vec![]);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            // The guard is consumed by and_then: the queue is not locked during a build.
            s.spawn(|| {
                while let Some(name) = queue.lock().ok().and_then(|mut q| q.pop()) {
                    let t = Instant::now();
                    let r = build_one(&name, &rdir.join(&name), &out);
                    let line = match &r {
                        Ok(true) => {
                            format!("{name:<16} built   {:>6.2}s", t.elapsed().as_secs_f64())
                        }
                        Ok(false) => format!("{name:<16} cached"),
                        Err(e) => format!("{name:<16} FAILED: {e:#}"),
                    };
                    println!("skeleton {line}");
                    if let Ok(mut v) = results.lock() {
                        v.push((name, r.is_ok()));
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n.as_str())
        .collect();
    println!(
        "skeletons: {} guests in {:.2}s ({} failed) -> {}",
        results.len(),
        t0.elapsed().as_secs_f64(),
        failed.len(),
        out.display()
    );
    if !failed.is_empty() {
        bail!("skeleton builds failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Builds one guest if stale; returns whether it built.
fn build_one(name: &str, dir: &Path, out: &Path) -> Result<bool> {
    let hash = recipe_hash(dir)?;
    let qcow = out.join(format!("{name}.qcow2"));
    let expect = out.join(format!("{name}.expect.json"));
    let hash_file = out.join(format!("{name}.hash"));
    if qcow.is_file()
        && expect.is_file()
        && fs::read_to_string(&hash_file).ok().as_deref() == Some(hash.as_str())
    {
        return Ok(false);
    }
    let work = out.join(format!(".work-{name}"));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let r = build_into(name, dir, &work);
    if r.is_err() {
        return r.map(|_| true);
    }
    let (tmp_qcow, tmp_expect) = r?;
    // Publish: drop the old key first so a crash never pairs a new image with an old key.
    let _ = fs::remove_file(&hash_file);
    fs::rename(&tmp_qcow, &qcow)?;
    fs::rename(&tmp_expect, &expect)?;
    let tmp_hash = work.join("hash");
    fs::write(&tmp_hash, &hash)?;
    fs::rename(&tmp_hash, &hash_file)?;
    fs::remove_dir_all(&work)?;
    Ok(true)
}

/// The staged guest tree and what went into it.
struct Staged {
    recipe: recipe::Recipe,
    layout: layout::Layout,
    facts: tree::Facts,
    machine_id: String,
    root: PathBuf,
}

fn build_into(name: &str, dir: &Path, work: &Path) -> Result<(PathBuf, PathBuf)> {
    let Staged {
        recipe,
        layout,
        facts,
        machine_id,
        root,
    } = stage(name, dir, work)?;
    let raw = work.join("disk.raw");
    let t = Instant::now();
    disk::build_raw(name, &recipe, &layout, &root, work, &raw)?;
    trace(name, "disk", t);
    let t = Instant::now();
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
    fs::remove_file(&raw)?;
    trace(name, "qcow2", t);

    let expect = json!({
        "name": name,
        "family": recipe.family,
        "arch": recipe.arch,
        "hostname": recipe.hostname,
        "machine_id": machine_id,
        "usrmerge": recipe.usrmerge,
        "selinux": recipe.selinux,
        "os_release": facts.os_release,
        "disk": {
            "format": "qcow2",
            "virtual_size": layout.disk_size,
            "table": layout.table,
            "disk_id": layout.disk_id,
            "guest_dev": recipe.disk.guest_dev,
            "partitions": layout.partitions,
        },
        "lvm": layout.vgs.iter().map(|vg| json!({
            "vg": vg.name,
            "uuid": ids::lvm_uuid_dashed(&vg.uuid),
            "pv": {"partition": vg.pv_part, "uuid": ids::lvm_uuid_dashed(&vg.pv_uuid)},
            "extent_size": lvm::EXTENT,
            "lvs": vg.lvs.iter().map(|l| json!({
                "name": l.name, "uuid": ids::lvm_uuid_dashed(&l.uuid),
                "start_extent": l.start_extent, "extent_count": l.extent_count, "size": l.size,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "filesystems": layout.volumes,
        "fstab": facts.fstab,
        "crypttab": facts.crypttab,
        "bootloader": facts.bootloader,
        "kernels": facts.kernels,
        "network": recipe.network,
        "tools": facts.tools,
        "files": facts.files,
    });
    let expect_path = work.join("expect.json");
    fs::write(&expect_path, serde_json::to_string_pretty(&expect)? + "\n")?;
    Ok((qcow, expect_path))
}

/// Resolves the recipe and generates the guest tree under `work/root`.
fn stage(name: &str, dir: &Path, work: &Path) -> Result<Staged> {
    let mut recipe = recipe::Recipe::load(&dir.join("guest.toml"))?;
    let layout = layout::Layout::resolve(name, &recipe)?;
    let root = work.join("root");
    let scratch = work.join("scratch");
    fs::create_dir_all(&root)?;
    fs::create_dir_all(&scratch)?;

    let mut vars = std::collections::BTreeMap::new();
    for v in &layout.volumes {
        vars.insert(format!("uuid.{}", v.id), v.uuid.clone());
        vars.insert(format!("dev.{}", v.id), v.dev.clone());
        if let Some(p) = &v.partuuid {
            vars.insert(format!("partuuid.{}", v.id), p.clone());
        }
        if let Some(p) = &v.by_id {
            vars.insert(format!("byid.{}", v.id), p.clone());
        }
        if let Some(l) = &v.label {
            vars.insert(format!("label.{}", v.id), l.clone());
        }
    }
    for p in &layout.partitions {
        vars.insert(format!("part.{}", p.id), p.device.clone());
        vars.insert(format!("partuuid.{}", p.id), p.partuuid.clone());
    }
    let n = &recipe.network;
    vars.insert("mac".into(), n.mac.clone());
    vars.insert("mac_upper".into(), n.mac.to_uppercase());
    vars.insert("iface".into(), n.iface.clone());
    vars.insert("hostname".into(), recipe.hostname.clone());
    vars.insert("ip".into(), n.ip.clone().unwrap_or_default());
    vars.insert(
        "prefix".into(),
        n.prefix.map(|p| p.to_string()).unwrap_or_default(),
    );
    vars.insert("gateway".into(), n.gateway.clone().unwrap_or_default());
    vars.insert("dns1".into(), n.dns.first().cloned().unwrap_or_default());
    vars.insert("dns2".into(), n.dns.get(1).cloned().unwrap_or_default());
    recipe.boot.cmdline = tree::expand(
        &vars,
        &recipe.boot.cmdline,
        Path::new("guest.toml boot.cmdline"),
    )?;
    vars.insert("cmdline".into(), recipe.boot.cmdline.clone());
    vars.insert("kver".into(), recipe.default_kernel().version.clone());
    vars.insert("conn_uuid".into(), ids::uuid(name, "nm-connection"));
    let machine_id = tree::machine_id(name);
    vars.insert("machine_id".into(), machine_id.clone());

    let mut ctx = tree::Ctx {
        recipe: &recipe,
        layout: &layout,
        recipe_dir: dir,
        root: root.clone(),
        scratch: scratch.clone(),
        vars,
        facts: tree::Facts::default(),
        machine_id: machine_id.clone(),
    };
    let t = Instant::now();
    ctx.generate()?;
    trace(name, "tree", t);
    // Contents of the network files, after placeholder expansion, for the expectations.
    for f in &n.files {
        let text = ctx
            .read_guest(f)
            .with_context(|| format!("network file {f} named in guest.toml"))?;
        ctx.facts.files.insert(f.clone(), text);
    }
    let facts = ctx.facts;
    Ok(Staged {
        recipe,
        layout,
        facts,
        machine_id,
        root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recipe_parses_and_lays_out() {
        let dir = recipes_dir();
        let mut n = 0;
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let g = e.path().join("guest.toml");
            if !g.is_file() {
                continue;
            }
            let name = e.file_name().to_string_lossy().to_string();
            let r = recipe::Recipe::load(&g).unwrap();
            let l = layout::Layout::resolve(&name, &r).unwrap();
            assert!(l.volume_at("/").is_some(), "{name}: no root volume");
            assert!(
                e.path()
                    .join("root/etc/os-release")
                    .symlink_metadata()
                    .is_ok(),
                "{name}: no os-release"
            );
            n += 1;
        }
        assert!(n >= 10, "only {n} recipes");
    }

    /// Member names of every segment of an initramfs (uncompressed cpio segments first, then
    /// one compressed segment), using the system cpio and decompressors.
    fn list_initramfs(path: &Path, decompress: &str) -> (Vec<String>, Vec<String>) {
        let data = fs::read(path).unwrap();
        let tmp = std::env::temp_dir();
        let mut early = vec![];
        let mut rest: &[u8] = &data;
        if data.starts_with(b"070701") {
            let t = data.windows(10).position(|w| w == b"TRAILER!!!").unwrap();
            let end = (t + 10).div_ceil(512) * 512;
            let out = run_sh("cpio -t --quiet", Some(&data[..end]), &tmp).unwrap();
            early = String::from_utf8(out)
                .unwrap()
                .lines()
                .map(String::from)
                .collect();
            rest = &data[end..];
        }
        let out = run_sh(&format!("{decompress} | cpio -t --quiet"), Some(rest), &tmp).unwrap();
        let main = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        (early, main)
    }

    fn staged(name: &str) -> (Staged, PathBuf) {
        let work = std::env::temp_dir().join(format!("skel-stage-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).unwrap();
        let s = stage(name, &recipes_dir().join(name), &work).unwrap();
        (s, work)
    }

    #[test]
    fn hostonly_initramfs_lacks_virtio_and_has_microcode() {
        let (s, work) = staged("debian12");
        let k = &s.facts.kernels[0];
        assert_eq!(k["initramfs"]["has_virtio"], false);
        let (early, main) =
            list_initramfs(&s.root.join("boot/initrd.img-6.1.0-18-amd64"), "zstd -dc");
        assert!(
            early
                .iter()
                .any(|m| m == "kernel/x86/microcode/GenuineIntel.bin"),
            "{early:?}"
        );
        let m = "usr/lib/modules/6.1.0-18-amd64/kernel/drivers/scsi/vmw_pvscsi.ko";
        assert!(main.iter().any(|x| x == m), "{main:?}");
        assert!(!main.iter().any(|x| x.contains("virtio_blk")), "{main:?}");
        // The installed modules do have virtio, with depmod-style dependencies.
        let dep =
            fs::read_to_string(s.root.join("usr/lib/modules/6.1.0-18-amd64/modules.dep")).unwrap();
        assert!(dep.contains("kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko"), "{dep}");
        // fstab: / by PARTUUID, and the entry for the disk that was left behind.
        let fstab = fs::read_to_string(s.root.join("etc/fstab")).unwrap();
        let part = s.layout.part("root").unwrap();
        assert!(
            fstab.contains(&format!("PARTUUID={} / ext4", part.partuuid)),
            "{fstab}"
        );
        assert!(s
            .facts
            .fstab
            .iter()
            .any(|f| f["file"] == "/data" && f["resolvable"] == false));
        fs::remove_dir_all(&work).unwrap();
    }

    #[test]
    fn rhel_initramfs_with_virtio_and_kernel_banner() {
        let (s, work) = staged("alma9");
        let v = "5.14.0-362.8.1.el9_3.x86_64";
        let (early, main) =
            list_initramfs(&s.root.join(format!("boot/initramfs-{v}.img")), "zstd -dc");
        assert!(early.is_empty());
        for m in [
            "drivers/block/virtio_blk.ko.xz",
            "drivers/virtio/virtio_pci_legacy_dev.ko.xz",
            "drivers/scsi/hv_storvsc.ko.xz",
        ] {
            let want = format!("usr/lib/modules/{v}/kernel/{m}");
            assert!(main.contains(&want), "{want} not in {main:?}");
        }
        let img = fs::read(s.root.join(format!("boot/vmlinuz-{v}"))).unwrap();
        assert_eq!(&img[0x202..0x206], b"HdrS");
        let off = u16::from_le_bytes([img[0x20e], img[0x20f]]) as usize + 0x200;
        assert!(img[off..].starts_with(v.as_bytes()));
        // BLS entry with the full command line (EL9 style, no $kernelopts).
        let entries = fs::read_dir(s.root.join("boot/loader/entries"))
            .unwrap()
            .count();
        assert_eq!(entries, 3, "two kernels + rescue");
        let cmd = s.facts.bootloader["cmdline"].as_str().unwrap().to_string();
        let swap = s.layout.volumes.iter().find(|v| v.id == "swap").unwrap();
        assert!(
            cmd.contains(&format!("resume=UUID={} ", swap.uuid)),
            "{cmd}"
        );
        assert!(cmd.starts_with(&format!(
            "root=UUID={} ro ",
            s.layout.volume_at("/").unwrap().uuid
        )));
        fs::remove_dir_all(&work).unwrap();
    }

    /// Builds real images and checks them with host tools only (sfdisk, blkid), never revirt:
    /// partition table, every filesystem's type and UUID at its offset (LVs through the extent
    /// map), the PV label, and that a second build is served from the cache.
    #[test]
    fn built_images_match_their_expectations() {
        let out = std::env::temp_dir().join(format!("skel-build-{}", std::process::id()));
        let _ = fs::remove_dir_all(&out);
        fs::create_dir_all(&out).unwrap();
        for name in ["rhel7", "debian10", "ubuntu2204"] {
            assert!(build_one(name, &recipes_dir().join(name), &out).unwrap());
            assert!(
                !build_one(name, &recipes_dir().join(name), &out).unwrap(),
                "cached"
            );
            let exp: serde_json::Value =
                serde_json::from_slice(&fs::read(out.join(format!("{name}.expect.json"))).unwrap())
                    .unwrap();
            let raw = out.join(format!("{name}.raw"));
            let q = out.join(format!("{name}.qcow2"));
            run_sh(
                &format!(
                    "qemu-img convert -O raw '{}' '{}'",
                    q.display(),
                    raw.display()
                ),
                None,
                &out,
            )
            .unwrap();
            let pt: serde_json::Value = serde_json::from_slice(
                &run_sh(&format!("sfdisk -J '{}'", raw.display()), None, &out).unwrap(),
            )
            .unwrap();
            let parts = exp["disk"]["partitions"].as_array().unwrap();
            let got = pt["partitiontable"]["partitions"].as_array().unwrap();
            assert_eq!(got.len(), parts.len(), "{name}: partition count");
            for (g, e) in got.iter().zip(parts) {
                assert_eq!(
                    g["start"].as_u64().unwrap() * 512,
                    e["start"].as_u64().unwrap()
                );
            }
            let offset_of = |on: &str| -> u64 {
                if let Some(p) = on.strip_prefix("part:") {
                    parts.iter().find(|x| x["id"] == p).unwrap()["start"]
                        .as_u64()
                        .unwrap()
                } else {
                    let (vg, lv) = on.strip_prefix("lv:").unwrap().split_once('/').unwrap();
                    let vgj = exp["lvm"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|x| x["vg"] == vg)
                        .unwrap();
                    let pv = vgj["pv"]["partition"].as_str().unwrap();
                    let lvj = vgj["lvs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|x| x["name"] == lv)
                        .unwrap();
                    let pv_start = parts.iter().find(|x| x["id"] == pv).unwrap()["start"]
                        .as_u64()
                        .unwrap();
                    let mut label = [0u8; 8];
                    {
                        use std::io::{Read, Seek, SeekFrom};
                        let mut f = fs::File::open(&raw).unwrap();
                        f.seek(SeekFrom::Start(pv_start + 512)).unwrap();
                        f.read_exact(&mut label).unwrap();
                    }
                    assert_eq!(&label, b"LABELONE", "{name}: PV label");
                    pv_start + lvm::PE_START + lvj["start_extent"].as_u64().unwrap() * lvm::EXTENT
                }
            };
            for fsj in exp["filesystems"].as_array().unwrap() {
                let off = offset_of(fsj["on"].as_str().unwrap());
                let probe = String::from_utf8(
                    run_sh(
                        &format!("blkid -p -O {off} -o export '{}'", raw.display()),
                        None,
                        &out,
                    )
                    .unwrap(),
                )
                .unwrap();
                let want_type = match fsj["fs"].as_str().unwrap() {
                    "vfat" => "TYPE=vfat",
                    "swap" => "TYPE=swap",
                    "xfs" => "TYPE=xfs",
                    _ => "TYPE=ext4",
                };
                assert!(probe.contains(want_type), "{name} {fsj}: {probe}");
                let uuid = format!("\nUUID={}\n", fsj["uuid"].as_str().unwrap());
                assert!(probe.contains(&uuid), "{name} {fsj}: {probe}");
            }
            fs::remove_file(&raw).unwrap();
        }
        fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn hash_changes_with_recipe_content() {
        let d = std::env::temp_dir().join(format!("skel-hash-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("root/etc")).unwrap();
        fs::write(d.join("root/etc/hostname"), "a\n").unwrap();
        let a = recipe_hash(&d).unwrap();
        fs::write(d.join("root/etc/hostname"), "b\n").unwrap();
        assert_ne!(a, recipe_hash(&d).unwrap());
        fs::remove_dir_all(&d).unwrap();
    }
}
