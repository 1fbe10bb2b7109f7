//! Fuzz entry points (issue #12): one `pub fn <target>(data: &[u8])` per parser that reads
//! tenant bytes, each driving the entry point the pipeline itself calls, on in-memory data.
//!
//! ```text
//!   fuzz/fuzz_targets/<t>.rs ──libFuzzer──▶ fuzzing::<t>(bytes)      (cargo xtask fuzz)
//!   tests/fuzz_regressions.rs ─────────────▶ fuzzing::<t>(fuzz/regressions/<t>/*, seeds::for_target)
//! ```
//!
//! Input encodings, chosen so that mutations get past magics, checksums and mostly-zero images:
//! * **disk image**: the raw bytes, or a sparse image ([`Image`]): `"RVSP"`, u64 LE virtual size,
//!   then chunks of (u32 LE sector, u32 LE length, bytes). Seeds of real filesystems are their
//!   non-zero sectors only, so a 16 MiB XFS is a few KiB of input.
//! * **files**: NUL-separated pieces, the n-th going to the target's n-th fixed guest path
//!   ([`pieces`]); `linux_tree` takes (path, NUL, u32 LE length, content) records.
//! * **control byte**: targets whose structures carry checksums start with one byte whose bits
//!   ask for the checksums to be recomputed after mutation (seeds set them all); with a bit
//!   clear the parser sees the mutated checksum as is, so its "bad checksum" paths stay reachable.
//!
//! Precondition of every target: none; any input must return normally. A panic, an arithmetic
//! overflow (the fuzz build has overflow checks), a hang or a huge allocation is a bug in the
//! parser, fixed there, with the input saved under `fuzz/regressions/<target>/`. Work per input is
//! bounded here (directory walks, reads) so a slow input means a slow parser.
use crate::error::FsError;
use crate::fs::{DirEntry, FileType, GuestFs, Meta, Vfs};
use crate::image::{BlockDevice, Dev, OpenPolicy};
use crate::inspect::Volume;
use crate::types::{Inspection, LinuxInfo, VolumeReport};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

pub mod seeds;

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target, by the name its `fuzz/fuzz_targets/<name>.rs` and regression folder carry.
pub const TARGETS: &[(&str, Target)] = &[
    ("qcow2", qcow2),
    ("partitions", partitions),
    ("lvm", lvm),
    ("lvm_metadata", lvm_metadata),
    ("ext4", ext4),
    ("xfs", xfs),
    ("xfs_log", xfs_log),
    ("ntfs", ntfs),
    ("fat", fat),
    ("jbd2", jbd2),
    ("initramfs", initramfs),
    ("initramfs_packed", initramfs_packed),
    ("grub", grub),
    ("grub_legacy", grub_legacy),
    ("fstab", fstab),
    ("ifupdown", ifupdown),
    ("netplan", netplan),
    ("keyfile", keyfile),
    ("ifcfg", ifcfg),
    ("wicked", wicked),
    ("networkd", networkd),
    ("udev", udev),
    ("hive", hive),
    ("hivelog", hivelog),
    ("bcd", bcd),
    ("iso", iso),
    ("inspect", inspect),
    ("linux_tree", linux_tree),
    ("rpmdb", rpmdb),
    ("md", md),
    ("luks", luks),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

// ---------------------------------------------------------------------------------------------
// Input decoding

/// Largest virtual size of a sparse image (its holes cost nothing).
const MAX_VIRTUAL: u64 = 1 << 30;
const SPARSE_MAGIC: &[u8; 4] = b"RVSP";
const SECTOR: u64 = 512;

/// A disk image decoded from fuzz bytes: raw, or sparse (see the module docs). Read-only as a
/// [`BlockDevice`]; targets may patch it (checksum fix-ups) before sharing it.
pub struct Image {
    size: u64,
    /// Sector number -> its 512 bytes; absent sectors read as zeros.
    sectors: BTreeMap<u64, Box<[u8; 512]>>,
}

impl Image {
    /// Decodes `data` (raw bytes, or `RVSP` sparse).
    pub fn decode(data: &[u8]) -> Image {
        let mut img = Image {
            size: 0,
            sectors: BTreeMap::new(),
        };
        let Some(rest) = data.strip_prefix(SPARSE_MAGIC) else {
            img.size = data.len() as u64;
            img.write(0, data);
            return img;
        };
        let mut r = Reader(rest);
        let declared = r.u64().unwrap_or(0).min(MAX_VIRTUAL);
        let mut chunks = vec![];
        while let (Some(sector), Some(len)) = (r.u32(), r.u32()) {
            let bytes = r.take(len as usize);
            chunks.push((u64::from(sector) * SECTOR, bytes));
        }
        img.size = if declared > 0 {
            declared
        } else {
            let end = chunks.iter().map(|(o, b)| o + b.len() as u64).max();
            end.unwrap_or(0).min(MAX_VIRTUAL)
        };
        for (off, bytes) in chunks {
            img.write(off, bytes);
        }
        img
    }

    /// Overwrites bytes at `off`, clipped to the image.
    pub fn write(&mut self, off: u64, bytes: &[u8]) {
        let end = off.saturating_add(bytes.len() as u64).min(self.size);
        let mut at = off;
        while at < end {
            let (sec, within) = (at / SECTOR, (at % SECTOR) as usize);
            let n = ((SECTOR as usize) - within).min((end - at) as usize);
            let src = &bytes[(at - off) as usize..(at - off) as usize + n];
            if src.iter().any(|&b| b != 0) || self.sectors.contains_key(&sec) {
                let s = self
                    .sectors
                    .entry(sec)
                    .or_insert_with(|| Box::new([0; 512]));
                s[within..within + n].copy_from_slice(src);
            }
            at += n as u64;
        }
    }

    /// Bytes at `off` (zeros past the end).
    pub fn read(&self, off: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        let end = off.saturating_add(len as u64).min(self.size);
        if off < end {
            self.fill(&mut v[..(end - off) as usize], off);
        }
        v
    }

    fn fill(&self, buf: &mut [u8], off: u64) {
        buf.fill(0);
        let end = off + buf.len() as u64;
        for (&sec, data) in self.sectors.range(off / SECTOR..end.div_ceil(SECTOR)) {
            let s = sec * SECTOR;
            let (lo, hi) = (off.max(s), end.min(s + SECTOR));
            buf[(lo - off) as usize..(hi - off) as usize]
                .copy_from_slice(&data[(lo - s) as usize..(hi - s) as usize]);
        }
    }

    /// Writes the image to a (sparse) file.
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(path)?;
        f.set_len(self.size)?;
        for (&sec, data) in &self.sectors {
            let off = sec * SECTOR;
            let n = (self.size - off).min(SECTOR) as usize;
            f.write_all_at(&data[..n], off)?;
        }
        Ok(())
    }
}

impl BlockDevice for Image {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), crate::error::ImageError> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.size)
        {
            return Err(crate::error::ImageError::OutOfRange {
                path: "fuzz-image".into(),
                offset,
                len: buf.len(),
                size: self.size,
            });
        }
        self.fill(buf, offset);
        Ok(())
    }
    fn name(&self) -> String {
        "fuzz-image".into()
    }
}

/// Little-endian field reader over fuzz bytes; short reads give what is left.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4);
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8);
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
}

/// The first `n` NUL-separated pieces of `data` (fewer if it has fewer).
pub fn pieces(data: &[u8], n: usize) -> Vec<&[u8]> {
    data.splitn(n, |&b| b == 0).collect()
}

/// Splits off the control byte (0 for empty input).
fn ctl(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((c, rest)) => (*c, rest),
        None => (0, data),
    }
}

/// A fresh folder for one call's files on tmpfs (or the temp dir), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Option<Scratch> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = Path::new("/dev/shm");
        let base = if base.is_dir() {
            base.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("revirt-fuzz-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        Some(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// An in-memory guest filesystem and bounded walks

/// An in-memory filesystem: files and symlinks by absolute path; directories are implied by
/// the paths below them.
#[derive(Default)]
pub struct MemFs {
    nodes: BTreeMap<String, Node>,
}

enum Node {
    File(Vec<u8>),
    Link(String),
}

impl MemFs {
    /// Adds a regular file (a later one at the same path replaces it).
    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.nodes
            .insert(crate::fs::normalize(path), Node::File(data.to_vec()));
        self
    }

    /// Adds a symbolic link.
    pub fn link(&mut self, path: &str, target: &str) -> &mut Self {
        self.nodes
            .insert(crate::fs::normalize(path), Node::Link(target.into()));
        self
    }

    fn is_dir(&self, path: &str) -> bool {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// Serves this tree as a guest root.
    pub fn vfs(self) -> Vfs {
        Vfs::new(Rc::new(self))
    }
}

impl GuestFs for MemFs {
    fn fstype(&self) -> &'static str {
        "memfs"
    }
    fn stat(&self, path: &str) -> Result<Option<Meta>, FsError> {
        let path = crate::fs::normalize(path);
        Ok(match self.nodes.get(&path) {
            Some(Node::File(d)) => Some(Meta {
                ftype: FileType::File,
                size: d.len() as u64,
                mode: 0o100644,
            }),
            Some(Node::Link(t)) => Some(Meta {
                ftype: FileType::Symlink,
                size: t.len() as u64,
                mode: 0o120777,
            }),
            None if self.is_dir(&path) => Some(Meta {
                ftype: FileType::Dir,
                size: 0,
                mode: 0o40755,
            }),
            None => None,
        })
    }
    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let path = crate::fs::normalize(path);
        if !self.is_dir(&path) {
            return Err(match self.nodes.contains_key(&path) {
                true => FsError::NotADirectory { path },
                false => FsError::not_found(path),
            });
        }
        let prefix = if path == "/" {
            path
        } else {
            format!("{path}/")
        };
        let mut out: Vec<DirEntry> = vec![];
        for (k, n) in self.nodes.range(prefix.clone()..) {
            let Some(rest) = k.strip_prefix(&prefix) else {
                break;
            };
            let (name, deeper) = match rest.split_once('/') {
                Some((name, _)) => (name, true),
                None => (rest, false),
            };
            if out.last().is_some_and(|e| e.name == name) {
                continue;
            }
            let ftype = match (deeper, n) {
                (true, _) => FileType::Dir,
                (false, Node::File(_)) => FileType::File,
                (false, Node::Link(_)) => FileType::Symlink,
            };
            out.push(DirEntry {
                name: name.to_string(),
                ftype,
            });
        }
        Ok(out)
    }
    fn read_file(&self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
        let path = crate::fs::normalize(path);
        match self.nodes.get(&path) {
            Some(Node::File(d)) if d.len() as u64 > limit => Err(FsError::TooLarge {
                path,
                size: d.len() as u64,
                limit,
            }),
            Some(Node::File(d)) => Ok(d.clone()),
            Some(Node::Link(_)) => Err(FsError::not_found(path)),
            None if self.is_dir(&path) => Err(FsError::IsADirectory { path }),
            None => Err(FsError::not_found(path)),
        }
    }
    fn read_link(&self, path: &str) -> Result<String, FsError> {
        match self.nodes.get(&crate::fs::normalize(path)) {
            Some(Node::Link(t)) => Ok(t.clone()),
            _ => Err(FsError::not_found(path)),
        }
    }
}

/// The guest paths each text target's NUL-separated pieces are written to, in order.
const TREES: &[(&str, &[&str])] = &[
    (
        "grub",
        &[
            "/boot/grub/grub.cfg",
            "/boot/grub/grubenv",
            "/etc/default/grub",
            "/boot/loader/entries/0a1b-6.1.0-13-amd64.conf",
            "/boot/efi/EFI/debian/grub.cfg",
            "/etc/sysconfig/bootloader",
        ],
    ),
    (
        "grub_legacy",
        &[
            "/boot/grub/menu.lst",
            "/boot/grub/default",
            "/boot/extlinux/extlinux.conf",
        ],
    ),
    (
        "ifupdown",
        &[
            "/etc/network/interfaces",
            "/etc/network/interfaces.d/ens192",
            "/etc/network/interfaces.d/50-cloud-init",
        ],
    ),
    (
        "netplan",
        &[
            "/etc/netplan/00-installer-config.yaml",
            "/etc/netplan/50-cloud-init.yaml",
        ],
    ),
    (
        "keyfile",
        &[
            "/etc/NetworkManager/system-connections/ens192.nmconnection",
            "/usr/lib/NetworkManager/system-connections/Wired connection 1",
        ],
    ),
    (
        "ifcfg",
        &[
            "/etc/sysconfig/network-scripts/ifcfg-eth0",
            "/etc/sysconfig/network-scripts/ifcfg-ens3",
            "/etc/sysconfig/network-scripts/route-eth0",
            "/etc/sysconfig/network",
        ],
    ),
    (
        "wicked",
        &[
            "/etc/sysconfig/network/ifcfg-eth0",
            "/etc/sysconfig/network/ifroute-eth0",
            "/etc/sysconfig/network/routes",
            "/etc/sysconfig/network/config",
        ],
    ),
    (
        "networkd",
        &[
            "/etc/systemd/network/10-static.network",
            "/etc/systemd/network/10-lan0.link",
            "/etc/systemd/network/20-dhcp.network",
        ],
    ),
    (
        "udev",
        &[
            "/etc/udev/rules.d/70-persistent-net.rules",
            "/lib/udev/rules.d/75-persistent-net-generator.rules",
            "/etc/udev/rules.d/80-net-setup-link.rules",
        ],
    ),
];

/// The guest paths of text target `target` (empty for other targets).
pub fn tree_paths(target: &str) -> &'static [&'static str] {
    TREES
        .iter()
        .find(|(t, _)| *t == target)
        .map_or(&[], |(_, p)| p)
}

/// The tree text target `target` builds from `data`: the n-th piece at its n-th path, plus the
/// files its configs refer to.
fn tree_for(target: &str, data: &[u8]) -> MemFs {
    let paths = tree_paths(target);
    let mut fs = MemFs::default();
    for (p, d) in paths.iter().zip(pieces(data, paths.len())) {
        fs.file(p, d);
    }
    match target {
        "grub" => {
            fs.file("/boot/vmlinuz-6.1.0-13-amd64", b"k")
                .file("/boot/initrd.img-6.1.0-13-amd64", b"i");
        }
        "grub_legacy" => {
            fs.file("/boot/vmlinuz-2.6.32-754.el6.x86_64", b"k")
                .link("/boot/grub/grub.conf", "menu.lst");
        }
        _ => {}
    }
    fs
}

/// Work allowed for one walk of a filesystem.
struct Budget {
    entries: usize,
    files: usize,
}

const WALK_DEPTH: usize = 4;
const WALK_PER_DIR: usize = 16;
const WALK_ENTRIES: usize = 200;
const WALK_FILES: usize = 24;
const WALK_FILE_LIMIT: u64 = 1 << 20;

/// Opens the root and walks a few levels: stat every entry, read the first few files (capped),
/// read every symlink, and resolve it through a [`Vfs`] (loops, escapes).
fn walk_fs(fs: Rc<dyn GuestFs>) {
    let _ = fs.stat("/");
    let _ = fs.read_file("/", WALK_FILE_LIMIT);
    let _ = fs.stat("/no/such/file");
    let vfs = Vfs::new(fs.clone());
    let mut b = Budget {
        entries: WALK_ENTRIES,
        files: WALK_FILES,
    };
    walk_dir(fs.as_ref(), &vfs, "/", 0, &mut b);
}

fn walk_dir(fs: &dyn GuestFs, vfs: &Vfs, dir: &str, depth: usize, b: &mut Budget) {
    let Ok(entries) = fs.read_dir(dir) else {
        return;
    };
    for e in entries.into_iter().take(WALK_PER_DIR) {
        if b.entries == 0 {
            return;
        }
        b.entries -= 1;
        if e.name.is_empty() || e.name == "." || e.name == ".." || e.name.contains('/') {
            continue;
        }
        let p = format!("{}/{}", dir.trim_end_matches('/'), e.name);
        let _ = fs.stat(&p);
        match e.ftype {
            FileType::Dir if depth < WALK_DEPTH => walk_dir(fs, vfs, &p, depth + 1, b),
            FileType::File if b.files > 0 => {
                b.files -= 1;
                let _ = fs.read_file(&p, WALK_FILE_LIMIT);
            }
            FileType::Symlink => {
                let _ = fs.read_link(&p);
                let _ = vfs.resolve(&p, true);
                let _ = vfs.read_file_limited(&p, WALK_FILE_LIMIT);
            }
            _ => {}
        }
    }
}

/// Reads spread over a device: the start, the end, a span crossing 4 KiB boundaries
/// unaligned, and up to 64 evenly spaced 4 KiB blocks.
fn read_sample(dev: &dyn BlockDevice) {
    let size = dev.size();
    let mut buf = vec![0u8; 4096];
    let _ = dev.read_at(&mut buf, 0);
    let _ = dev.read_at(&mut buf, size.saturating_sub(4096));
    let _ = dev.read_at(&mut buf[..3000], 4096 - 7);
    let _ = dev.read_at(&mut buf[..1], size); // past the end: an error, never a panic
    let step = (size / 64).max(4096);
    let mut off = 0;
    while off < size {
        let _ = dev.read_at(&mut buf, off);
        off += step;
    }
}

/// Volumes as a guest's fstab sees them: a few spellings every resolver branch can match.
fn sample_volumes() -> Vec<VolumeReport> {
    let v = |device: &str, fstype: &str, uuid: &str, label: &str, disk, part| VolumeReport {
        device: device.into(),
        aliases: vec![format!("/dev/disk/by-id/x-{}", &device[5..])],
        size: 1 << 30,
        fstype: Some(fstype.into()),
        uuid: Some(uuid.into()),
        label: Some(label.into()),
        flags: vec![],
        reader: "pure".into(),
        part_uuid: Some(format!("{uuid}-p")),
        part_label: Some(label.to_lowercase()),
        disk_index: disk,
        part_number: part,
        journal_recovery: None,
        xfs_log: None,
        luks: None,
    };
    vec![
        v(
            "/dev/sda1",
            "ext4",
            "0b1f7a40-6c2d-4c3a-9f1e-1d2c3b4a5f60",
            "root",
            Some(0),
            Some(1),
        ),
        v("/dev/sda2", "vfat", "ABCD-1234", "EFI", Some(0), Some(2)),
        v(
            "/dev/sdb1",
            "xfs",
            "5e2c1d0a-1111-4222-8333-944455556666",
            "data",
            Some(1),
            Some(1),
        ),
        v(
            "/dev/mapper/vg0-swap",
            "swap",
            "7f00aa11-2222-4333-8444-955566667777",
            "swap",
            None,
            None,
        ),
    ]
}

/// A root volume served from `fs` (through the appliance seam: no device behind it).
fn mem_volume(device: &str, fstype: &str, fs: Rc<dyn GuestFs>) -> Volume {
    let mut report = sample_volumes().remove(0);
    report.device = device.into();
    report.fstype = Some(fstype.into());
    Volume {
        report,
        dev: None,
        appliance_fs: Some(fs),
        raw: None,
    }
}

/// Runs the Linux planners (pure: they read only `inputs`) and verify over what inspection found.
fn plan_linux_parts(vfs: &Vfs, l: &LinuxInfo, ins: &Inspection) {
    use crate::plan::{BlockBus, NetworkMode, PlanOptions};
    let Ok(inputs) = crate::plan::collect_inputs(vfs, l) else {
        return;
    };
    let variants = [
        PlanOptions::default(),
        PlanOptions {
            network: NetworkMode::KeepStatic,
            block: BlockBus::VirtioScsi,
            ..Default::default()
        },
    ];
    for opts in &variants {
        let mut notes = vec![];
        crate::plan::initramfs::plan_initramfs(l, &inputs, opts, &mut notes);
        crate::plan::fstab::plan_fstab(l, ins, &inputs, &mut notes);
        crate::plan::bootloader::plan_bootloader(l, ins, &inputs, opts, &mut notes);
        crate::plan::network::plan_network(l, &inputs, opts, &mut notes);
        crate::plan::tools::plan_tools(l, &inputs, &mut notes);
        let _ = crate::verify::verify_linux(l, ins, opts);
    }
}

/// An inspection record holding `vols`, for planners that look volumes up.
fn inspection_of(vols: Vec<VolumeReport>) -> Inspection {
    Inspection {
        volumes: vols,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Block layer, partitions, LVM

/// qcow2 (v2/v3, L1/L2 walk, compressed clusters, backing files): the image is written as
/// `disk.qcow2` next to `base.raw` (a 64 KiB pattern a backing name may point to) and opened
/// with [`crate::image::open_image`] (format sniffing, header checks, the crate's L2 cache);
/// then reads spread over the disk and the partition table on top.
pub fn qcow2(data: &[u8]) {
    let Some(dir) = Scratch::new() else { return };
    let base: Vec<u8> = (0..65536u32).map(|i| (i * 7 + (i >> 9)) as u8).collect();
    let path = dir.0.join("disk.qcow2");
    if std::fs::write(dir.0.join("base.raw"), base).is_err()
        || Image::decode(data).write_file(&path).is_err()
    {
        return;
    }
    let Ok((dev, _info)) = crate::image::open_image_with(&path, &OpenPolicy::default()) else {
        return;
    };
    read_sample(dev.as_ref());
    let _ = crate::part::detect_partitions(&dev, "/dev/sda");
}

/// Recomputes the CRCs of the GPT header at `lba` and of the partition array it names.
fn fix_gpt(img: &mut Image, lba: u64) {
    let crc = |b: &[u8]| {
        let mut c = flate2::Crc::new();
        c.update(b);
        c.sum()
    };
    let at = lba * SECTOR;
    let mut h = img.read(at, 512);
    if &h[..8] != b"EFI PART" {
        return;
    }
    let hsize = (u32::from_le_bytes([h[12], h[13], h[14], h[15]]) as usize).clamp(92, 512);
    let entries_lba = u64::from_le_bytes(h[72..80].try_into().unwrap_or_default());
    let n = u32::from_le_bytes([h[80], h[81], h[82], h[83]]) as usize;
    let esize = u32::from_le_bytes([h[84], h[85], h[86], h[87]]) as usize;
    let array_len = n.saturating_mul(esize);
    if array_len <= 1 << 20 && entries_lba < img.size / SECTOR {
        let array = img.read(entries_lba * SECTOR, array_len);
        h[88..92].copy_from_slice(&crc(&array).to_le_bytes());
    }
    h[16..20].fill(0);
    let c = crc(&h[..hsize]);
    h[16..20].copy_from_slice(&c.to_le_bytes());
    img.write(at, &h);
}

/// MBR (extended/logical chains) and GPT (primary, backup fallback) through
/// [`crate::part::detect_partitions`], then each partition probed and read. Control byte: bit 0
/// fixes the primary GPT CRCs, bit 1 the backup header's.
pub fn partitions(data: &[u8]) {
    let (c, rest) = ctl(data);
    let mut img = Image::decode(rest);
    if c & 1 != 0 {
        fix_gpt(&mut img, 1);
    }
    let last = (img.size / SECTOR).saturating_sub(1);
    if c & 2 != 0 && last > 1 {
        fix_gpt(&mut img, last);
    }
    let dev: Dev = Arc::new(img);
    let Ok(table) = crate::part::detect_partitions(&dev, "/dev/sda") else {
        return;
    };
    for p in table.partitions.iter().take(32) {
        let _ = crate::fs::probe::probe(p.dev.as_ref());
        let mut b = [0u8; 512];
        let _ = p.dev.read_at(&mut b, p.dev.size().saturating_sub(512));
    }
}

/// Volume candidates of one disk as [`crate::inspect::scan_volumes`] forms them: partitions, or
/// the whole disk when it has no table.
fn candidates(dev: &Dev) -> Vec<(String, Dev)> {
    match crate::part::detect_partitions(dev, "/dev/sda") {
        Ok(t) if t.kind != "none" => t
            .partitions
            .into_iter()
            .filter(|p| p.report.type_name != "extended")
            .map(|p| (p.report.device, p.dev))
            .collect(),
        Ok(_) => vec![("/dev/sda".into(), dev.clone())],
        Err(_) => vec![],
    }
}

/// Reads the LVs of the PVs found and probes each, as inspection does.
fn assemble_and_read(pvs: &[crate::lvm::Pv]) {
    for vg in crate::lvm::assemble(pvs) {
        for (_, _, d) in vg.lv_devs.iter().take(16) {
            read_sample(d.as_ref());
            let _ = crate::fs::probe::probe(d.as_ref());
        }
    }
}

/// LVM2 on a disk image: PV labels and metadata areas ([`crate::lvm::read_pv`], after the same
/// probe inspection runs), VG assembly and reads through the mapped linear LVs.
pub fn lvm(data: &[u8]) {
    let dev: Dev = Arc::new(Image::decode(data));
    let mut pvs = vec![];
    for (name, d) in candidates(&dev).into_iter().take(16) {
        let is_pv =
            matches!(crate::fs::probe::probe(d.as_ref()), Ok(Some(i)) if i.fstype == "LVM2_member");
        if let (true, Ok(Some(pv))) = (is_pv, crate::lvm::read_pv(&d, &name)) {
            pvs.push(pv);
        }
    }
    assemble_and_read(&pvs);
}

/// LVM text metadata alone ([`crate::lvm::parse_metadata`]) and assembled over a 64 MiB zero
/// PV whose UUID is the first `id = "..."` in the text, so segment maps get built and read.
pub fn lvm_metadata(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let _ = crate::lvm::parse_metadata(&text);
    let uuid = text
        .split("id = \"")
        .nth(2) // the VG's own id comes first, then the first PV's
        .and_then(|s| s.split('"').next())
        .unwrap_or("")
        .to_string();
    let dev: Dev = Arc::new(Image {
        size: 64 << 20,
        sectors: BTreeMap::new(),
    });
    let pv = crate::lvm::Pv {
        uuid: crate::lvm::format_lvm_uuid(&uuid),
        dev,
        device: "/dev/sda2".into(),
        metadata: Some(text),
    };
    assemble_and_read(&[pv]);
}

// ---------------------------------------------------------------------------------------------
// Filesystems

/// Opens `data` as a filesystem with `open` and walks it.
fn fs_target<F: GuestFs + 'static>(data: &[u8], open: impl Fn(Dev) -> Result<F, FsError>) {
    let dev: Dev = Arc::new(Image::decode(data));
    let _ = crate::fs::probe::probe(dev.as_ref());
    if let Ok(fs) = open(dev) {
        walk_fs(Rc::new(fs));
    }
}

/// ext2/3/4 through ext4-view ([`crate::fs::ext4::Ext4`]).
pub fn ext4(data: &[u8]) {
    fs_target(data, crate::fs::ext4::Ext4::open);
}

/// XFS v4/v5 ([`crate::fs::xfs::Xfs`]): short-form, block, leaf and node directories, extent
/// lists and bmbt trees, symlinks.
pub fn xfs(data: &[u8]) {
    fs_target(data, |dev| {
        let fs = crate::fs::xfs::Xfs::open(dev)?;
        let _ = fs.log_state();
        Ok(fs)
    });
}

/// Whether an XFS log needs recovery ([`crate::fs::xfs_log::Log::state`]): the input is the
/// log itself (raw or sparse), so head search, record headers and wrap-around get all of it.
pub fn xfs_log(data: &[u8]) {
    let dev: Dev = Arc::new(Image::decode(data));
    if let Ok(log) = crate::fs::xfs_log::Log::new(&dev, 0, dev.size()) {
        let _ = log.state();
    }
}

/// NTFS through the ntfs crate ([`crate::fs::ntfs::Ntfs`]), with its dirty and $LogFile checks.
pub fn ntfs(data: &[u8]) {
    fs_target(data, |dev| {
        let fs = crate::fs::ntfs::Ntfs::open(dev)?;
        let _ = (fs.is_dirty(), fs.is_log_unclean());
        Ok(fs)
    });
    let _ = crate::fs::ntfs::logfile_unclean(data);
}

/// FAT12/16/32 with long names ([`crate::fs::fat::Fat`]).
pub fn fat(data: &[u8]) {
    fs_target(data, crate::fs::fat::Fat::open);
}

/// jbd2 journal replay of an ext3/ext4 volume ([`crate::fs::jbd2::recover`]): the overlay is
/// read block by block where the journal changed it, then mounted and walked.
pub fn jbd2(data: &[u8]) {
    let dev: Dev = Arc::new(Image::decode(data));
    let Ok(Some(rec)) = crate::fs::jbd2::recover(dev) else {
        return;
    };
    let over = rec.dev();
    let bs = rec.block_size();
    let mut buf = vec![0u8; usize::try_from(bs).unwrap_or(4096).min(1 << 16)];
    for blk in rec.changed_blocks().into_iter().take(256) {
        let _ = over.read_at(&mut buf, blk.saturating_mul(bs));
    }
    read_sample(over.as_ref());
    if let Ok(fs) = crate::fs::ext4::Ext4::open(over) {
        walk_fs(Rc::new(fs));
    }
}

// ---------------------------------------------------------------------------------------------
// Linux guest files

/// An initramfs image as found in /boot: newc cpio segments, each possibly compressed (gzip,
/// xz, lzma, zstd, bzip2, lz4 legacy), through [`crate::inspect::linux::initramfs::list_initramfs`].
pub fn initramfs(data: &[u8]) {
    if let Ok(l) = crate::inspect::linux::initramfs::list_initramfs(data) {
        let _ = l.module_names();
    }
}

/// Structured initramfs: the control byte picks a compressor (low 3 bits: none, gzip, xz,
/// lzma, zstd, bzip2, lz4 legacy, none) and bit 3 an uncompressed early segment; the rest is the
/// cpio archive, compressed here, so the cpio parser is reached through each decompressor.
pub fn initramfs_packed(data: &[u8]) {
    let (c, cpio) = ctl(data);
    let mut img = vec![];
    if c & 8 != 0 {
        img.extend_from_slice(&seeds::newc(&[(
            "kernel/x86/microcode/GenuineIntel.bin",
            b"uc",
        )]));
    }
    match seeds::compress(c & 7, cpio) {
        Some(packed) => img.extend(packed),
        None => return,
    }
    initramfs(&img);
}

/// GRUB 2 through [`crate::inspect::linux::bootloader::detect_bootloader`]: grub.cfg (blocks,
/// submenus, variables), the UEFI stub on the ESP, grubenv, /etc/default/grub, a BLS entry;
/// then the bootloader planner edits the same files.
pub fn grub(data: &[u8]) {
    bootloader_target(tree_for("grub", data), Some("/dev/sda2"));
}

/// GRUB Legacy (menu.lst / grub.conf and its `default` file) and extlinux, through
/// [`crate::inspect::linux::bootloader::detect_bootloader`] and the planner.
pub fn grub_legacy(data: &[u8]) {
    bootloader_target(tree_for("grub_legacy", data), None);
}

fn bootloader_target(fs: MemFs, esp: Option<&str>) {
    let vfs = fs.vfs();
    let Ok(b) = crate::inspect::linux::bootloader::detect_bootloader(&vfs, esp) else {
        return;
    };
    let l = LinuxInfo {
        family: "debian".into(),
        bootloader: b,
        mounts: [("/".to_string(), "/dev/sda1".to_string())].into(),
        ..Default::default()
    };
    plan_linux_parts(&vfs, &l, &inspection_of(sample_volumes()));
}

/// /etc/fstab and /etc/crypttab ([`crate::inspect::fstab::parse_fstab`] and `parse_crypttab`,
/// resolved against sample volumes) and the fstab planner's edit of the same text.
pub fn fstab(data: &[u8]) {
    let p = pieces(data, 2);
    let fstab = String::from_utf8_lossy(p[0]).into_owned();
    let vols = sample_volumes();
    let mut l = LinuxInfo {
        fstab: crate::inspect::fstab::parse_fstab(&fstab, &vols),
        mounts: [("/".to_string(), "/dev/sda1".to_string())].into(),
        ..Default::default()
    };
    l.fstab.truncate(1024);
    let mut fs = MemFs::default();
    fs.file("/etc/fstab", p[0]);
    if let Some(c) = p.get(1) {
        l.crypttab = crate::inspect::fstab::parse_crypttab(&String::from_utf8_lossy(c), &vols);
        fs.file("/etc/crypttab", c);
    }
    plan_linux_parts(&fs.vfs(), &l, &inspection_of(vols));
}

/// Detects the network configuration in `fs` (every flavor) and plans its repair for a distro
/// family picked by the input's first byte (planning differs per family; one per input keeps
/// executions fast).
fn network_target(fs: MemFs, data: &[u8]) {
    let vfs = fs.vfs();
    let Ok(network) = crate::inspect::linux::network::detect_network(&vfs) else {
        return;
    };
    let family = ["debian", "rhel", "suse"][usize::from(data.first().copied().unwrap_or(0) % 3)];
    let l = LinuxInfo {
        family: family.into(),
        network,
        mounts: [("/".to_string(), "/dev/sda1".to_string())].into(),
        ..Default::default()
    };
    plan_linux_parts(&vfs, &l, &inspection_of(sample_volumes()));
}

/// ifupdown: /etc/network/interfaces with `source`/`source-directory` includes and two files
/// under interfaces.d.
pub fn ifupdown(data: &[u8]) {
    network_target(tree_for("ifupdown", data), data);
}

/// netplan YAML (two files, merged in name order).
pub fn netplan(data: &[u8]) {
    network_target(tree_for("netplan", data), data);
}

/// NetworkManager keyfiles (/etc and /usr/lib).
pub fn keyfile(data: &[u8]) {
    network_target(tree_for("keyfile", data), data);
}

/// RHEL ifcfg files (shell variables, [`crate::inspect::linux::network::shvars`]) and
/// /etc/sysconfig/network.
pub fn ifcfg(data: &[u8]) {
    network_target(tree_for("ifcfg", data), data);
}

/// SUSE wicked ifcfg files, routes and config.
pub fn wicked(data: &[u8]) {
    network_target(tree_for("wicked", data), data);
}

/// systemd-networkd .network and .link files.
pub fn networkd(data: &[u8]) {
    network_target(tree_for("networkd", data), data);
}

/// udev persistent-net rules and the generator rules.
pub fn udev(data: &[u8]) {
    network_target(tree_for("udev", data), data);
}

/// A file tree from records of (path, NUL, u32 LE length, content); a path starting with `@`
/// is a symlink whose target is the content.
fn tree_of(data: &[u8]) -> MemFs {
    let mut fs = MemFs::default();
    let mut rest = data;
    while let Some(nul) = rest.iter().position(|&b| b == 0) {
        let p = String::from_utf8_lossy(&rest[..nul]).into_owned();
        let mut r = Reader(&rest[nul + 1..]);
        let len = r.u32().unwrap_or(0) as usize;
        let c = r.take(len);
        rest = r.0;
        match p.strip_prefix('@') {
            Some(l) => fs.link(&format!("/{l}"), &String::from_utf8_lossy(c)),
            None => fs.file(&format!("/{p}"), c),
        };
    }
    fs
}

/// A whole Linux root ([`tree_of`]) through [`crate::inspect::linux::detect_linux`] (distro,
/// fstab mounts, kernels, modules, initramfs, bootloader, network, tools) and every planner.
pub fn linux_tree(data: &[u8]) {
    let fs: Rc<dyn GuestFs> = Rc::new(tree_of(data));
    let root = mem_volume("/dev/sda1", "ext4", fs.clone());
    let vfs = Vfs::new(fs);
    if !crate::inspect::linux::looks_like_linux_root(&vfs) {
        return;
    }
    let vols = [root];
    let Ok(l) = crate::inspect::linux::detect_linux(vfs, &vols[0], &vols) else {
        return;
    };
    let Ok(vfs) = crate::inspect::linux::guest_vfs(&vols, &l) else {
        return;
    };
    plan_linux_parts(&vfs, &l, &inspection_of(sample_volumes()));
}

// ---------------------------------------------------------------------------------------------
// Windows

const WIN_CONFIG: &str = "/Windows/System32/config";

/// Sets a hive's (or log's) base block checksum to what its first 508 bytes give.
fn fix_base_block(b: &mut [u8]) {
    if b.len() >= 512 {
        let sum = crate::inspect::windows::hivelog::base_block_checksum(b);
        b[508..512].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Walks a parsed hive a few levels: names, values, decoded data.
fn walk_hive(h: &crate::inspect::windows::hive::Hive) {
    fn walk(k: crate::inspect::windows::hive::Key<'_>, depth: usize, budget: &mut usize) {
        let _ = k.name();
        if let Ok(vals) = k.values() {
            for v in vals.iter().take(32) {
                let _ = v.decode();
            }
        }
        let Ok(subs) = k.subkeys() else { return };
        for s in subs.into_iter().take(32) {
            if *budget == 0 || depth >= 8 {
                return;
            }
            *budget -= 1;
            walk(s, depth + 1, budget);
        }
    }
    let mut budget = 512;
    walk(h.root(), 0, &mut budget);
    let _ = h.open_key("Microsoft\\Windows NT\\CurrentVersion");
    let _ = h.open_key("Select");
}

/// A registry hive ([`crate::inspect::windows::hive::Hive`]): parsed, walked, and read as both
/// the SOFTWARE and the SYSTEM hive of a Windows root by
/// [`crate::inspect::windows::detect_windows`] (product, version, control set, services,
/// drivers, interfaces, MountedDevices). Control byte bit 0 fixes the base block checksum.
pub fn hive(data: &[u8]) {
    let (c, rest) = ctl(data);
    let mut bytes = rest.to_vec();
    if c & 1 != 0 {
        fix_base_block(&mut bytes);
    }
    if let Ok(h) = crate::inspect::windows::hive::Hive::from_bytes("fuzz", bytes.clone()) {
        walk_hive(&h);
    }
    let mut fs = MemFs::default();
    fs.file(&format!("{WIN_CONFIG}/SOFTWARE"), &bytes)
        .file(&format!("{WIN_CONFIG}/SYSTEM"), &bytes)
        .file("/Windows/System32/drivers/viostor.sys", b"MZ");
    let _ = crate::inspect::windows::detect_windows(&fs.vfs());
}

/// Splits `rest` into three length-prefixed (u32 LE) parts: hive, LOG1, LOG2.
fn three_parts(rest: &[u8]) -> [Vec<u8>; 3] {
    let mut r = Reader(rest);
    let lens = [r.u32(), r.u32()];
    let a = r.take(lens[0].unwrap_or(0) as usize).to_vec();
    let b = r.take(lens[1].unwrap_or(0) as usize).to_vec();
    [a, b, r.0.to_vec()]
}

/// Recomputes both Marvin32 hashes of every new-format ("HvLE") entry of a log, in order, as
/// far as their sizes chain.
fn fix_log_entries(log: &mut [u8]) {
    let mut off = 512usize;
    while off + 40 <= log.len() && &log[off..off + 4] == b"HvLE" {
        let size = u32::from_le_bytes(log[off + 4..off + 8].try_into().unwrap_or_default());
        let size = size as usize;
        if size < 512 || !size.is_multiple_of(512) || off + size > log.len() {
            return;
        }
        let h1 = seeds::marvin32(&log[off + 40..off + size]);
        log[off + 24..off + 32].copy_from_slice(&h1.to_le_bytes());
        let h2 = seeds::marvin32(&log[off..off + 32]);
        log[off + 32..off + 40].copy_from_slice(&h2.to_le_bytes());
        off += size;
    }
}

/// Dirty hive recovery from .LOG1/.LOG2 ([`crate::inspect::windows::hivelog::recover`], both log
/// formats) as inspection runs it ([`crate::inspect::windows::read_hive_logged`]: the logs found
/// next to the hive, the recovered hive parsed and walked). Input: control byte, u32 LE length of
/// the hive, u32 LE length of LOG1, then hive, LOG1, LOG2. Control bits: 0 fixes the hive's base
/// block checksum, 1 the logs' base block checksums, 2 the logs' HvLE entry hashes.
pub fn hivelog(data: &[u8]) {
    let (c, rest) = ctl(data);
    let [mut hive, mut log1, mut log2] = three_parts(rest);
    for log in [&mut log1, &mut log2] {
        if c & 4 != 0 {
            fix_log_entries(log);
        }
        if c & 2 != 0 {
            fix_base_block(log);
        }
    }
    if c & 1 != 0 {
        fix_base_block(&mut hive);
    }
    let _ = crate::inspect::windows::hivelog::recover(&hive, Some(&log1), Some(&log2));
    let mut fs = MemFs::default();
    fs.file(&format!("{WIN_CONFIG}/SYSTEM"), &hive);
    if !log1.is_empty() {
        fs.file(&format!("{WIN_CONFIG}/SYSTEM.LOG1"), &log1);
    }
    if !log2.is_empty() {
        fs.file(&format!("{WIN_CONFIG}/system.log2"), &log2);
    }
    let path = format!("{WIN_CONFIG}/SYSTEM");
    if let Ok((h, _)) = crate::inspect::windows::read_hive_logged(&fs.vfs(), &path, "SYSTEM") {
        walk_hive(&h);
    }
}

/// md RAID member superblocks ([`crate::md::read_member`]: 1.1 at 0, 1.2 at 4 KiB, 1.0 and
/// 0.90 at the end) on the input as a sparse device ([`Image`]), then the member assembled
/// twice over (a mirror of two) and its data read.
pub fn md(data: &[u8]) {
    let dev: Dev = Arc::new(Image::decode(data));
    let Some(m) = crate::md::read_member(dev.as_ref()) else {
        return;
    };
    // As found (the same member twice), then as every slot of its array (the striped levels
    // read from all of them).
    let twice = vec![
        ("/dev/sda1".to_string(), dev.clone(), m.clone()),
        ("/dev/sdb1".to_string(), dev.clone(), m.clone()),
    ];
    let slots = (0..m.raid_disks.min(8))
        .map(|i| {
            let mut mi = m.clone();
            mi.role = Some(i);
            (
                format!("/dev/sd{}1", (b'a' + i as u8) as char),
                dev.clone(),
                mi,
            )
        })
        .collect();
    for members in [twice, slots] {
        let (arrays, _) = crate::md::assemble(members);
        for a in arrays {
            let Some(d) = a.dev else { continue };
            let mut buf = vec![0u8; 4096];
            let size = d.size();
            for at in [0, size / 2, size.saturating_sub(4096)] {
                let n = (size - at).min(4096) as usize;
                let _ = d.read_at(&mut buf[..n], at);
            }
            let _ = d.layout();
        }
    }
}

/// LUKS1/LUKS2 headers ([`crate::luks::read_header`]: binary headers, checksums, JSON
/// metadata) on the input as a sparse device ([`Image`]), then the passphrase "fuzz" tried
/// under small KDF caps (the seeds' headers derive in about a millisecond) and the payload's
/// first sector read.
pub fn luks(data: &[u8]) {
    let dev: Dev = Arc::new(Image::decode(data));
    let Ok(Some(h)) = crate::luks::read_header(dev.as_ref()) else {
        return;
    };
    let limits = crate::luks::Limits {
        pbkdf2_iterations: 1000,
        argon2_memory_kib: 64,
        argon2_time: 2,
        argon2_work_kib: 128,
        slots: 2,
    };
    if let Ok(Some(k)) = h.unlock(dev.as_ref(), b"fuzz", &limits) {
        let c = crate::luks::CryptDev::new(dev, &h, &k, "fuzz".into());
        let mut buf = [0u8; 512];
        let _ = c.read_at(&mut buf, 0);
    }
}

/// rpm's SQLite database ([`crate::inspect::rpmdb::applications`]: the SQLite b-tree walk,
/// records, overflow chains, header blobs), then the same bytes as one header blob on its own.
pub fn rpmdb(data: &[u8]) {
    use crate::inspect::rpmdb::header;
    let _ = crate::inspect::rpmdb::applications(data);
    if let Ok(h) = header::Header::parse(data) {
        for tag in [header::NAME, header::EPOCH, header::SUMMARY, header::URL] {
            let _ = (h.format(tag), h.number(tag));
        }
    }
}

/// The BCD store of a BIOS "System Reserved" volume: a hive read for the boot manager's default
/// entry by [`crate::inspect::windows::layout::detect_layout`]. Input: the control byte (bit 0
/// fixes the base block checksum), then the store.
pub fn bcd(data: &[u8]) {
    let (c, rest) = ctl(data);
    let mut store = rest.to_vec();
    if c & 1 != 0 {
        fix_base_block(&mut store);
    }
    let mut fs = MemFs::default();
    fs.file("/Boot/BCD", &store).file("/bootmgr", b"bootmgr");
    let vols = vec![mem_volume("/dev/sda1", "ntfs", Rc::new(fs))];
    let mut w = crate::types::WindowsInfo::default();
    let mut warnings = vec![];
    crate::inspect::windows::layout::detect_layout(&mut w, "/dev/sda1", &[], &vols, &mut warnings);
}

// ---------------------------------------------------------------------------------------------
// ISO 9660 and the whole pipeline

/// Writes `sink` output nowhere, failing past 1 MiB (a file's data is not the parser's concern).
struct Capped(usize);

impl std::io::Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        if self.0 > 1 << 20 {
            return Err(std::io::Error::other("capped"));
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An ISO 9660 virtio-win image (primary, Joliet and Rock Ridge names, multi-extent files)
/// through [`crate::drivers::iso::IsoSource`]: the driver folders listed, their files listed and
/// streamed (capped), and a few lookups by name.
pub fn iso(data: &[u8]) {
    use crate::drivers::DriverSource;
    let Some(dir) = Scratch::new() else { return };
    let path = dir.0.join("virtio-win.iso");
    if Image::decode(data).write_file(&path).is_err() {
        return;
    }
    let Ok(src) = crate::drivers::iso::IsoSource::open(&path) else {
        return;
    };
    let dirs = src.list_driver_dirs().unwrap_or_default();
    let mut reads = 0;
    for d in dirs.iter().take(16) {
        for f in src.list_files(d).unwrap_or_default().into_iter().take(8) {
            if reads < 16 {
                reads += 1;
                let _ = src.copy_to(&format!("{d}/{f}"), &mut Capped(0));
            }
        }
    }
    for rel in [
        "viostor/w10/amd64/viostor.inf",
        "NetKVM/2k22/AMD64/netkvm.sys",
        "x/../y",
    ] {
        let _ = src.copy_to(rel, &mut Capped(0));
    }
}

/// The whole inspection on a small raw disk, pure Rust only (no appliance): partitions, LVM,
/// probes, journal replay, every filesystem, Linux or Windows facts; then the planners and
/// verify, as `revirt plan` would run them.
pub fn inspect(data: &[u8]) {
    let Some(dir) = Scratch::new() else { return };
    let path = dir.0.join("disk.raw");
    if Image::decode(data).write_file(&path).is_err() {
        return;
    }
    let Ok(g) = crate::inspect::inspect_pure(&[path], &OpenPolicy::default()) else {
        return;
    };
    for os in &g.inspection.operating_systems {
        if let Some(l) = &os.linux {
            if let Ok(vfs) = crate::inspect::linux::guest_vfs(&g.volumes, l) {
                plan_linux_parts(&vfs, l, &g.inspection);
            }
        }
        if let (Some(w), Ok(vfs)) = (&os.windows, g.root_vfs(os)) {
            let opts = crate::plan::PlanOptions::default();
            if let Ok(inp) = crate::plan::windows::collect_windows_inputs(&vfs, w, &opts) {
                let _ = crate::plan::windows::plan_windows(os, &g.inspection, &inp, &opts);
            }
        }
    }
}
