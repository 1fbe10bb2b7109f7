//! Turns the staged guest tree into a disk: splits it per mount point, makes each filesystem
//! into a file with the host mkfs tools (ext4 `-d`, XFS protofile, vfat + mtools, mkswap), writes
//! the partition table with sfdisk, LVM metadata with our own writer, and copies every filesystem
//! to its offset, skipping zero blocks so the raw image stays sparse. No mounts, no loop devices.
use super::layout::{Layout, Volume, LUKS_RESERVE};
use super::lvm::{self, LvPlace, PvSpec};
use super::recipe::Recipe;
use super::run_sh;
use anyhow::{bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

const SECTOR: u64 = 512;

/// Moves each non-root mount point's subtree out of `root` into its own directory, deepest
/// first, leaving the (empty) mount point directory behind. Returns volume id -> tree.
pub fn split_trees(root: &Path, work: &Path, layout: &Layout) -> Result<Vec<(String, PathBuf)>> {
    let mut mounted: Vec<&Volume> = layout
        .volumes
        .iter()
        .filter(|v| v.mount.as_deref().is_some_and(|m| m != "/"))
        .collect();
    mounted.sort_by_key(|v| std::cmp::Reverse(v.mount.as_ref().map(|m| m.len())));
    let mut out = vec![];
    for v in mounted {
        let m = v.mount.as_deref().unwrap_or_default();
        let src = root.join(m.trim_start_matches('/'));
        let dst = work.join(format!("tree-{}", v.id));
        if src.is_dir() {
            fs::rename(&src, &dst).with_context(|| format!("moving {}", src.display()))?;
        } else {
            fs::create_dir_all(&dst)?;
        }
        fs::create_dir_all(&src)?;
        out.push((v.id.clone(), dst));
    }
    if let Some(v) = layout.volume_at("/") {
        out.push((v.id.clone(), root.to_path_buf()));
    }
    Ok(out)
}

fn sfdisk_script(layout: &Layout) -> String {
    let mut s = String::new();
    if layout.table == "gpt" {
        s += &format!(
            "label: gpt\nlabel-id: {}\nunit: sectors\nfirst-lba: 2048\n\n",
            layout.disk_id
        );
    } else {
        s += &format!(
            "label: dos\nlabel-id: {}\nunit: sectors\n\n",
            layout.disk_id
        );
    }
    for p in &layout.partitions {
        s += &format!(
            "start={}, size={}, type={}",
            p.start / SECTOR,
            p.size / SECTOR,
            p.ptype
        );
        if layout.table == "gpt" {
            s += &format!(", uuid={}", p.partuuid.to_uppercase());
            if let Some(n) = &p.name {
                s += &format!(", name=\"{n}\"");
            }
        }
        if p.bootable {
            s += ", bootable";
        }
        s.push('\n');
    }
    s
}

/// Copies `src` into `dst` at `offset`, visiting only the data extents of `src` (SEEK_DATA /
/// SEEK_HOLE) and skipping all-zero blocks inside them, so the target stays sparse.
pub fn copy_sparse(src: &Path, dst: &mut File, offset: u64) -> Result<()> {
    use std::os::unix::io::AsRawFd;
    static ZERO: [u8; 1 << 20] = [0; 1 << 20];
    let mut f = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let len = f.metadata()?.len();
    let fd = f.as_raw_fd();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < len {
        // SAFETY: plain lseek on a file descriptor we own; errors come back as -1.
        let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            break; // ENXIO: no data after pos
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let (start, end) = (data as u64, if hole < 0 { len } else { hole as u64 });
        f.seek(SeekFrom::Start(start))?;
        let mut p = start;
        while p < end {
            let n = ((end - p) as usize).min(buf.len());
            f.read_exact(&mut buf[..n])
                .with_context(|| format!("reading {} at {p}", src.display()))?;
            if buf[..n] != ZERO[..n] {
                dst.seek(SeekFrom::Start(offset + p))?;
                dst.write_all(&buf[..n])
                    .with_context(|| format!("writing {} at {}", src.display(), offset + p))?;
            }
            p += n as u64;
        }
        pos = end;
    }
    Ok(())
}

/// An XFS protofile (mkfs.xfs -p) describing `dir`, files referenced by host path, and the
/// directories with the sticky bit (a protofile mode cannot hold it; see [`set_sticky`]).
/// `owners`: keep each entry's uid/gid (a real guest's tree); otherwise everything is root's.
pub fn protofile(dir: &Path, owners: bool) -> Result<(String, Vec<String>)> {
    fn mode_str(kind: char, mode: u32) -> String {
        format!(
            "{kind}{}{}{:03o}",
            if mode & 0o4000 != 0 { 'u' } else { '-' },
            if mode & 0o2000 != 0 { 'g' } else { '-' },
            mode & 0o777
        )
    }
    struct Walk {
        owners: bool,
        out: String,
        sticky: Vec<String>,
    }
    impl Walk {
        fn ids(&self, md: &fs::Metadata) -> String {
            if self.owners {
                format!("{} {}", md.uid(), md.gid())
            } else {
                "0 0".into()
            }
        }
        fn rec(&mut self, dir: &Path, guest: &str) -> Result<()> {
            let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let name = e.file_name().to_string_lossy().to_string();
                if name.contains(char::is_whitespace) {
                    bail!("{}: protofile names cannot hold spaces", e.path().display());
                }
                let md = fs::symlink_metadata(e.path())?;
                let (mode, ids, ft) = (md.mode(), self.ids(&md), md.file_type());
                let line = if ft.is_symlink() {
                    let t = fs::read_link(e.path())?;
                    format!("{name} {} {ids} {}\n", mode_str('l', 0o777), t.display())
                } else if ft.is_dir() {
                    self.out
                        .push_str(&format!("{name} {} {ids}\n", mode_str('d', mode)));
                    if mode & 0o1000 != 0 {
                        self.sticky.push(format!("{guest}/{name}"));
                    }
                    self.rec(&e.path(), &format!("{guest}/{name}"))?;
                    "$\n".into()
                } else if ft.is_char_device() || ft.is_block_device() {
                    let k = if ft.is_char_device() { 'c' } else { 'b' };
                    let r = md.rdev();
                    let (maj, min) = (libc::major(r), libc::minor(r));
                    format!("{name} {} {ids} {maj} {min}\n", mode_str(k, mode))
                } else if ft.is_fifo() {
                    format!("{name} {} {ids}\n", mode_str('p', mode))
                } else if ft.is_file() {
                    format!(
                        "{name} {} {ids} {}\n",
                        mode_str('-', mode),
                        e.path().display()
                    )
                } else {
                    continue; // sockets: created by their daemons at run time
                };
                self.out.push_str(&line);
            }
            Ok(())
        }
    }
    let md = fs::metadata(dir)?;
    let mut w = Walk {
        owners,
        out: String::new(),
        sticky: Vec::new(),
    };
    w.out = format!(
        "/dev/null\n0 0\n{} {}\n",
        format_args!("d--{:03o}", md.mode() & 0o777),
        w.ids(&md)
    );
    w.rec(dir, "")?;
    w.out.push_str("$\n");
    Ok((w.out, w.sticky))
}

/// Adds the sticky bit to directories of an XFS image made from a protofile (`/tmp`, `/var/tmp`).
pub fn set_sticky(img: &Path, dirs: &[String], cwd: &Path) -> Result<()> {
    for d in dirs {
        let cmd = format!(
            "xfs_db -x -c 'path {d}' -c 'print core.mode' '{}'",
            img.display()
        );
        let out = String::from_utf8_lossy(&run_sh(&cmd, None, cwd)?).to_string();
        let mode = out
            .split('=')
            .nth(1)
            .and_then(|m| u32::from_str_radix(m.trim().trim_start_matches('0'), 8).ok())
            .with_context(|| format!("xfs_db: no mode for {d}: {out}"))?;
        run_sh(
            &format!(
                "xfs_db -x -c 'path {d}' -c 'write core.mode 0{:o}' '{}' >/dev/null",
                mode | 0o1000,
                img.display()
            ),
            None,
            cwd,
        )?;
    }
    Ok(())
}

/// Makes the filesystem of `v` into a new file of its size.
fn mkfs(v: &Volume, tree: Option<&Path>, img: &Path, scratch: &Path) -> Result<()> {
    let f = File::create(img)?;
    f.set_len(v.size)?;
    drop(f);
    let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let extra: String = v
        .mnt
        .mkfs_opts
        .iter()
        .map(|o| format!(" {}", q(o)))
        .collect();
    let label = |flag: &str| {
        v.label
            .as_ref()
            .map(|l| format!(" {flag} {}", q(l)))
            .unwrap_or_default()
    };
    let empty = scratch.join("empty");
    fs::create_dir_all(&empty)?;
    let tree = tree.unwrap_or(&empty);
    let mut sticky_dirs = Vec::new();
    let cmd = match v.fs.as_str() {
        "ext4" => format!(
            "mkfs.ext4 -q -F -U {}{} -E root_owner=0:0{extra} -d {} {}",
            v.uuid,
            label("-L"),
            q(&tree.to_string_lossy()),
            q(&img.to_string_lossy())
        ),
        "xfs" => {
            let proto = scratch.join(format!("proto-{}", v.id));
            let (text, sticky) = protofile(tree, false)?;
            fs::write(&proto, text)?;
            sticky_dirs = sticky;
            // The TEST_* variables lift mkfs.xfs's 300 MB minimum (meant for fstests) so the
            // skeleton filesystems stay small.
            format!(
                "TEST_DIR=/tmp TEST_DEV=skeleton QA_CHECK_FS=1 mkfs.xfs -q -f -m uuid={}{}{extra} -p {} {}",
                v.uuid,
                label("-L"),
                q(&proto.to_string_lossy()),
                q(&img.to_string_lossy())
            )
        }
        "swap" => format!(
            "mkswap -U {}{} {} >/dev/null",
            v.uuid,
            label("-L"),
            q(&img.to_string_lossy())
        ),
        "vfat" => {
            let serial = v.uuid.replace('-', "");
            let mut c = format!(
                "mkfs.vfat -F 32 -s 1 -i {serial}{}{extra} {} >/dev/null",
                label("-n"),
                q(&img.to_string_lossy())
            );
            let mut items: Vec<String> = fs::read_dir(tree)?
                .map(|e| e.map(|e| q(&e.path().to_string_lossy())))
                .collect::<std::io::Result<_>>()?;
            items.sort();
            if !items.is_empty() {
                c += &format!(
                    " && MTOOLS_SKIP_CHECK=1 mcopy -s -p -Q -i {} {} ::/",
                    q(&img.to_string_lossy()),
                    items.join(" ")
                );
            }
            c
        }
        f => bail!("volume {}: cannot make filesystem {f:?}", v.id),
    };
    run_sh(&cmd, None, scratch).with_context(|| format!("making {} on volume {}", v.fs, v.id))?;
    set_sticky(img, &sticky_dirs, scratch)?;
    Ok(())
}

/// Builds the raw disk image at `raw` from the staged root tree.
pub fn build_raw(
    guest: &str,
    recipe: &Recipe,
    layout: &Layout,
    root: &Path,
    work: &Path,
    raw: &Path,
) -> Result<()> {
    let trees = split_trees(root, work, layout)?;
    let f = File::create(raw)?;
    f.set_len(layout.disk_size)?;
    drop(f);
    run_sh(
        &format!("sfdisk -q --no-reread --no-tell-kernel '{}'", raw.display()),
        Some(sfdisk_script(layout).as_bytes()),
        work,
    )
    .context("partitioning with sfdisk")?;
    let mut disk = OpenOptions::new().read(true).write(true).open(raw)?;

    if recipe.boot.firmware == "bios" {
        // GRUB's boot.img in the MBR code area (not the signature or table).
        let code = fs::read("/usr/lib/grub/i386-pc/boot.img").unwrap_or_else(|_| {
            let mut b = vec![0u8; 512];
            b[0x180..0x185].copy_from_slice(b"GRUB ");
            b
        });
        disk.seek(SeekFrom::Start(0))?;
        disk.write_all(&code[..440.min(code.len())])?;
    }

    for vg in &layout.vgs {
        let Some(part) = layout.part(&vg.pv_part) else {
            bail!("vg {}: PV partition {} missing", vg.name, vg.pv_part)
        };
        let spec = PvSpec {
            guest,
            vg: &vg.name,
            vg_uuid: vg.uuid.clone(),
            pv_uuid: vg.pv_uuid.clone(),
            device_hint: part.device.clone(),
            size: part.data_size(),
            lvs: vg
                .lvs
                .iter()
                .map(|l| LvPlace {
                    name: l.name.clone(),
                    uuid: l.uuid.clone(),
                    start_extent: l.start_extent,
                    extent_count: l.extent_count,
                })
                .collect(),
        };
        lvm::write_pv(&mut disk, part.start, &spec)
            .with_context(|| format!("writing PV for vg {}", vg.name))?;
    }

    let mut sealed_lvs = vec![];
    for v in &layout.volumes {
        let tree = trees
            .iter()
            .find(|(id, _)| *id == v.id)
            .map(|(_, p)| p.as_path());
        let img = work.join(format!("vol-{}.img", v.id));
        mkfs(v, tree, &img, work)?;
        let offset = if let Some(pid) = v.on.strip_prefix("part:") {
            layout.part(pid).map(|p| p.start)
        } else if let Some(lv) = v.on.strip_prefix("lv:") {
            layout.vgs.iter().find_map(|vg| {
                vg.lvs
                    .iter()
                    .find(|l| format!("{}/{}", l.vg, l.name) == lv)
                    .and_then(|l| {
                        layout
                            .part(&vg.pv_part)
                            .map(|p| p.start + lvm::extent_offset(l.start_extent))
                    })
            })
        } else {
            None
        };
        let Some(offset) = offset else {
            bail!("volume {}: cannot place {}", v.id, v.on)
        };
        if v.luks.is_some() {
            sealed_lvs.push((v, offset));
        }
        copy_sparse(&img, &mut disk, offset)?;
        fs::remove_file(&img)?;
    }
    for p in &layout.partitions {
        if let Some((pass, uuid)) = &p.luks {
            seal(&mut disk, p.start, p.size, pass, uuid, work)
                .with_context(|| format!("encrypting partition {}", p.id))?;
        }
    }
    for (v, at) in &sealed_lvs {
        if let Some((pass, uuid)) = &v.luks {
            seal(&mut disk, *at, v.size + LUKS_RESERVE, pass, uuid, work)
                .with_context(|| format!("encrypting LV {}", v.id))?;
        }
    }
    disk.sync_all()?;
    Ok(())
}

/// Encrypts `size` bytes of the disk at `start` (a partition or an LV) in place with the host's
/// cryptsetup: an offline `reencrypt --encrypt` moves the content up past the new LUKS2 header,
/// so what was written at the region's start is the start of the LUKS volume (Argon2id at small costs: the fixture
/// opens in milliseconds; the UUID derives from the guest).
pub(crate) fn seal(
    disk: &mut File,
    start: u64,
    size: u64,
    pass: &str,
    uuid: &str,
    work: &Path,
) -> Result<()> {
    let q = |s: &Path| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let img = work.join(format!("luks-{uuid}.img"));
    let key = work.join(format!("luks-{uuid}.key"));
    let mut buf = vec![0u8; size as usize];
    disk.seek(SeekFrom::Start(start))?;
    disk.read_exact(&mut buf)?;
    fs::write(&img, &buf)?;
    fs::write(&key, pass)?;
    run_sh(
        &format!(
            "cryptsetup reencrypt --encrypt --batch-mode --type luks2 --uuid {uuid} \
             --pbkdf argon2id --pbkdf-memory 32768 --pbkdf-force-iterations 4 \
             --reduce-device-size {}M --key-file {} {}",
            super::layout::LUKS_RESERVE >> 20,
            q(&key),
            q(&img)
        ),
        None,
        work,
    )?;
    let enc = fs::read(&img)?;
    disk.seek(SeekFrom::Start(start))?;
    disk.write_all(&enc)?;
    fs::remove_file(&img)?;
    fs::remove_file(&key)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protofile_lists_files_links_and_dirs() {
        let d = std::env::temp_dir().join(format!("skel-proto-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("etc")).unwrap();
        fs::write(d.join("etc/hostname"), "x\n").unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", d.join("etc/os-release")).unwrap();
        let (p, sticky) = protofile(&d, false).unwrap();
        assert!(sticky.is_empty());
        assert!(p.contains("etc d--"), "{p}");
        assert!(
            p.contains("os-release l--777 0 0 ../usr/lib/os-release"),
            "{p}"
        );
        assert!(
            p.contains(&format!(
                "hostname ---644 0 0 {}",
                d.join("etc/hostname").display()
            )),
            "{p}"
        );
        assert!(p.ends_with("$\n$\n"), "{p}");
        fs::remove_dir_all(&d).unwrap();
    }
}
