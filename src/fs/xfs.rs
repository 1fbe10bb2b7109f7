//! Read-only XFS reader (v4 and v5 superblocks), reading blocks on demand.
//!
//! ```text
//!   superblock (sector 0) -> root inode -> directory lookup per path component -> inode
//!   inode data fork: local (short-form dir, inline symlink) | extent list | bmbt root -> bmbt blocks
//!   directories: short-form | block | leaf | node | btree: only the data blocks below the
//!   32 GiB logical offset are read (leaf, node and free-index blocks carry no names)
//! ```
//!
//! Why our own parsers rather than `xfs-core` 0.1.6: its whole-file API loads the filesystem into
//! memory, and its per-structure helpers take a `Read + Seek` over the whole image and return the
//! crate's own errors; we need reads through our [`Dev`] with a small block cache and
//! [`FsError`]s that name the inode and byte offset. The on-disk format below is the documented
//! XFS layout (xfs_format.h / xfs_da_format.h field offsets).
//!
//! Not handled (reported as errors, never guessed): realtime file data, v1 directories. A dirty
//! log is not replayed here: [`Xfs::log_state`] finds it, and `crate::recover` has the kernel
//! recover it before anything is read for a plan.
use super::{DirEntry, FileType, GuestFs, Meta};
use crate::error::FsError;
use crate::image::Dev;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

const FS: &str = "xfs";

const SB_MAGIC: u32 = 0x5846_5342; // "XFSB"
const INODE_MAGIC: u16 = 0x494e; // "IN"
const BMAP_MAGIC_V4: u32 = 0x424d_4150; // "BMAP"
const BMAP_MAGIC_V5: u32 = 0x424d_4133; // "BMA3"
const DIR_BLOCK_V4: u32 = 0x5844_3242; // "XD2B": single-block directory (data + leaf + tail)
const DIR_DATA_V4: u32 = 0x5844_3244; // "XD2D"
const DIR_BLOCK_V5: u32 = 0x5844_4233; // "XDB3"
const DIR_DATA_V5: u32 = 0x5844_4433; // "XDD3"
const SYMLINK_MAGIC: u32 = 0x5853_4c4d; // "XSLM": v5 remote symlink block header

/// Directory data blocks live below this logical byte offset; leaf blocks start here and
/// free-index blocks at twice it.
const DIR_LEAF_OFFSET: u64 = 32 << 30;
const SYMLINK_MAXLEN: u64 = 1024;
/// Deepest bmbt accepted (the real maximum for 2^64 extents is well below this).
const MAX_BMBT_LEVEL: u16 = 12;
/// Cap on path components walked, so a corrupt or hostile path cannot run unbounded.
const MAX_COMPONENTS: usize = 4096;
/// Metadata block cache size in bytes (inodes, directories, bmbt blocks; not file data).
const CACHE_BYTES: usize = 4 << 20;

// Superblock versionnum / feature bits.
const VERSION_DIRV2: u16 = 0x2000;
const VERSION_MOREBITS: u16 = 0x8000;
const FEATURES2_FTYPE: u32 = 0x200;
const INCOMPAT_FTYPE: u32 = 1 << 0;
/// v5 incompat features a reader may ignore or handles: ftype, sparse inodes, meta_uuid,
/// bigtime, needsrepair, nrext64, exchange-range, parent pointers, metadir.
const INCOMPAT_KNOWN: u32 = 0x1ff;

// Inode flags.
const DIFLAG_REALTIME: u16 = 0x1;
const DIFLAG2_NREXT64: u64 = 1 << 4;

// Data fork formats.
const FMT_DEV: u8 = 0;
const FMT_LOCAL: u8 = 1;
const FMT_EXTENTS: u8 = 2;
const FMT_BTREE: u8 = 3;

const S_IFMT: u16 = 0o170000;
const S_IFDIR: u16 = 0o040000;
const S_IFREG: u16 = 0o100000;
const S_IFLNK: u16 = 0o120000;

/// Big-endian readers that yield 0 out of range: callers check lengths where it matters, and
/// a short structure then fails validation instead of panicking.
fn be16(b: &[u8], o: usize) -> u16 {
    b.get(o..o + 2)
        .map_or(0, |s| u16::from_be_bytes([s[0], s[1]]))
}
fn be32(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}
fn be64(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_be_bytes(a)
    })
}
fn byte(b: &[u8], o: usize) -> u8 {
    b.get(o).copied().unwrap_or(0)
}

/// Geometry and features from the primary superblock, validated once at open.
#[derive(Debug, Clone)]
struct Sb {
    v5: bool,
    blocksize: u32,
    blocklog: u8,
    agblocks: u32,
    agblklog: u8,
    agcount: u32,
    inodesize: u16,
    inopblog: u8,
    rootino: u64,
    dirblklog: u8,
    ftype: bool,
    /// The internal log: first filesystem block (0: an external log device) and length.
    logstart: u64,
    logblocks: u32,
}

impl Sb {
    /// Parses and validates sector 0. `dev_size` catches truncated images up front.
    fn parse(b: &[u8], dev: &str, dev_size: u64) -> Result<Sb, FsError> {
        let bad =
            |what: String| FsError::corrupt(dev, FS, format!("superblock (offset 0): {what}"));
        let magic = be32(b, 0);
        if magic != SB_MAGIC {
            return Err(bad(format!("bad magic {magic:#010x}, expected XFSB")));
        }
        let versionnum = be16(b, 100);
        let version = versionnum & 0xf;
        let v5 = match version {
            4 => false,
            5 => true,
            1..=3 => {
                return Err(FsError::Unsupported {
                    dev: dev.into(),
                    fs: FS,
                    what: format!("superblock version {version} (pre-v4 XFS)"),
                })
            }
            _ => return Err(bad(format!("unknown version number {versionnum:#06x}"))),
        };
        let blocksize = be32(b, 4);
        let blocklog = byte(b, 120);
        if !(512..=65536).contains(&blocksize)
            || !blocksize.is_power_of_two()
            || 1u32 << blocklog.min(31) != blocksize
        {
            return Err(bad(format!(
                "absurd block size {blocksize} (blocklog {blocklog})"
            )));
        }
        let sectsize = be16(b, 102);
        if !(512..=32768).contains(&sectsize)
            || !sectsize.is_power_of_two()
            || u32::from(sectsize) > blocksize
        {
            return Err(bad(format!("absurd sector size {sectsize}")));
        }
        let inodesize = be16(b, 104);
        let inopblock = be16(b, 106);
        let inodelog = byte(b, 122);
        let inopblog = byte(b, 123);
        let min_inode = if v5 { 512 } else { 256 };
        if !(min_inode..=2048).contains(&inodesize)
            || !inodesize.is_power_of_two()
            || 1u32 << inodelog.min(31) != u32::from(inodesize)
            || u32::from(inopblock) * u32::from(inodesize) != blocksize
            || 1u32 << inopblog.min(31) != u32::from(inopblock)
        {
            return Err(bad(format!(
                "bad inode geometry: size {inodesize} (log {inodelog}), {inopblock} per block (log {inopblog}), block size {blocksize}"
            )));
        }
        let agblocks = be32(b, 84);
        let agcount = be32(b, 88);
        let agblklog = byte(b, 124);
        // agblklog is log2 of agblocks rounded up.
        if agblocks < 2
            || agcount == 0
            || agblklog > 31
            || (1u64 << agblklog) < u64::from(agblocks)
            || (1u64 << agblklog) >= 2 * u64::from(agblocks)
        {
            return Err(bad(format!(
                "bad allocation groups: {agcount} of {agblocks} blocks (agblklog {agblklog})"
            )));
        }
        if u32::from(agblklog) + u32::from(inopblog) > 32 {
            return Err(bad(format!(
                "agblklog {agblklog} + inopblog {inopblog} exceed 32-bit AG inode numbers"
            )));
        }
        let dblocks = be64(b, 8);
        let max_blocks = u64::from(agcount) * u64::from(agblocks);
        if dblocks == 0 || dblocks > max_blocks || dblocks <= max_blocks - u64::from(agblocks) {
            return Err(bad(format!(
                "{dblocks} data blocks do not fit {agcount} AGs of {agblocks} blocks"
            )));
        }
        let fs_bytes = dblocks << blocklog;
        if fs_bytes > dev_size {
            return Err(FsError::corrupt(
                dev,
                FS,
                format!("filesystem is {fs_bytes} bytes ({dblocks} blocks of {blocksize}) but the device holds only {dev_size}: truncated image?"),
            ));
        }
        if byte(b, 126) != 0 {
            return Err(bad("sb_inprogress is set: mkfs did not finish".into()));
        }
        let dirblklog = byte(b, 192);
        if u32::from(blocklog) + u32::from(dirblklog) > 16 {
            return Err(bad(format!(
                "directory block size 2^({blocklog}+{dirblklog}) above 64 KiB"
            )));
        }
        let ftype = if v5 {
            let incompat = be32(b, 216);
            if incompat & !INCOMPAT_KNOWN != 0 {
                return Err(FsError::Unsupported {
                    dev: dev.into(),
                    fs: FS,
                    what: format!(
                        "unknown incompatible features {:#x}",
                        incompat & !INCOMPAT_KNOWN
                    ),
                });
            }
            incompat & INCOMPAT_FTYPE != 0
        } else {
            if versionnum & VERSION_DIRV2 == 0 {
                return Err(FsError::Unsupported {
                    dev: dev.into(),
                    fs: FS,
                    what: "version 1 directories".into(),
                });
            }
            versionnum & VERSION_MOREBITS != 0 && be32(b, 200) & FEATURES2_FTYPE != 0
        };
        Ok(Sb {
            v5,
            blocksize,
            blocklog,
            agblocks,
            agblklog,
            agcount,
            inodesize,
            inopblog,
            rootino: be64(b, 56),
            dirblklog,
            ftype,
            logstart: be64(b, 48),
            logblocks: be32(b, 96),
        })
    }
}

/// One mapping of the data fork: `len` blocks at file block `off` stored at filesystem block
/// `start` (AG-encoded); unwritten (preallocated) extents read as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extent {
    off: u64,
    start: u64,
    len: u64,
    unwritten: bool,
}

fn decode_extent(r: &[u8]) -> Extent {
    let l0 = be64(r, 0);
    let l1 = be64(r, 8);
    Extent {
        unwritten: l0 >> 63 != 0,
        off: (l0 >> 9) & ((1 << 54) - 1),
        start: ((l0 & 0x1ff) << 43) | (l1 >> 21),
        len: l1 & ((1 << 21) - 1),
    }
}

/// The parts of an inode the reader uses.
#[derive(Debug, Clone)]
struct Inode {
    ino: u64,
    /// Byte offset on the device, for error messages.
    at: u64,
    mode: u16,
    format: u8,
    size: u64,
    nextents: u64,
    flags: u16,
    /// Data fork bytes (literal area up to the attribute fork).
    fork: Vec<u8>,
}

impl Inode {
    fn kind(&self) -> FileType {
        mode_type(self.mode)
    }
}

fn mode_type(mode: u16) -> FileType {
    match mode & S_IFMT {
        S_IFREG => FileType::File,
        S_IFDIR => FileType::Dir,
        S_IFLNK => FileType::Symlink,
        _ => FileType::Other,
    }
}

/// Directory entry file type byte (XFS_DIR3_FT_*); 0 means unknown: read the inode.
fn dirent_type(ft: u8) -> Option<FileType> {
    match ft {
        1 => Some(FileType::File),
        2 => Some(FileType::Dir),
        3..=6 => Some(FileType::Other),
        7 => Some(FileType::Symlink),
        _ => None,
    }
}

/// A raw directory entry borrowed from its block (no allocation per entry scanned): name
/// bytes, inode number, file type byte (0 when absent).
struct RawEntry<'a> {
    name: &'a [u8],
    ino: u64,
    ftype: u8,
}

/// FIFO cache of metadata blocks keyed by filesystem block number.
#[derive(Default)]
struct Cache {
    map: HashMap<u64, Rc<[u8]>>,
    order: VecDeque<u64>,
}

pub struct Xfs {
    dev: Dev,
    name: String,
    sb: Sb,
    cache: RefCell<Cache>,
    cache_cap: usize,
}

impl Xfs {
    /// Reads and validates the primary superblock; nothing else is read until asked.
    pub fn open(dev: Dev) -> Result<Self, FsError> {
        let name = dev.name();
        let size = dev.size();
        if size < 512 {
            return Err(FsError::corrupt(
                &name,
                FS,
                format!("device of {size} bytes is too small for a superblock"),
            ));
        }
        let mut b = vec![0u8; 512];
        dev.read_at(&mut b, 0)?;
        let sb = Sb::parse(&b, &name, size)?;
        let cache_cap = (CACHE_BYTES / sb.blocksize as usize).max(16);
        let fs = Xfs {
            dev,
            name,
            sb,
            cache: RefCell::new(Cache::default()),
            cache_cap,
        };
        // Catch a bad root inode number now rather than on the first lookup.
        fs.ino_location(fs.sb.rootino).map_err(|_| {
            fs.corrupt(format!(
                "superblock root inode {} lies outside the filesystem",
                fs.sb.rootino
            ))
        })?;
        Ok(fs)
    }

    /// "v4" or "v5", for reports.
    pub fn version(&self) -> &'static str {
        if self.sb.v5 {
            "v5"
        } else {
            "v4"
        }
    }

    /// Whether the internal log needs recovery (see [`super::xfs_log`]); None for a log on
    /// an external device, which revirt is not given.
    pub fn log_state(&self) -> Result<Option<super::xfs_log::LogState>, FsError> {
        if self.sb.logstart == 0 {
            return Ok(None);
        }
        let start = self.fsb_to_byte(self.sb.logstart).ok_or_else(|| {
            self.corrupt(format!(
                "log start block {} outside the filesystem",
                self.sb.logstart
            ))
        })?;
        let len = u64::from(self.sb.logblocks) << self.sb.blocklog;
        super::xfs_log::Log::new(&self.dev, start, len)?
            .state()
            .map(Some)
    }

    fn corrupt(&self, what: String) -> FsError {
        FsError::corrupt(&self.name, FS, what)
    }

    fn unsupported(&self, what: String) -> FsError {
        FsError::Unsupported {
            dev: self.name.clone(),
            fs: FS,
            what,
        }
    }

    /// Device byte offset of filesystem block `fsb`, checking it lies in a real AG.
    fn fsb_to_byte(&self, fsb: u64) -> Option<u64> {
        let agno = fsb >> self.sb.agblklog;
        let agbno = fsb & ((1u64 << self.sb.agblklog) - 1);
        if agno >= u64::from(self.sb.agcount) || agbno >= u64::from(self.sb.agblocks) {
            return None;
        }
        Some((agno * u64::from(self.sb.agblocks) + agbno) << self.sb.blocklog)
    }

    /// (filesystem block, byte offset within it) of inode `ino`.
    fn ino_location(&self, ino: u64) -> Result<(u64, usize), FsError> {
        let sb = &self.sb;
        let agino_bits = u32::from(sb.agblklog) + u32::from(sb.inopblog);
        let agno = ino >> agino_bits;
        let agbno = (ino >> sb.inopblog) & ((1u64 << sb.agblklog) - 1);
        let idx = ino & ((1u64 << sb.inopblog) - 1);
        if agno >= u64::from(sb.agcount) || agbno >= u64::from(sb.agblocks) {
            return Err(self.corrupt(format!("inode number {ino} lies outside the filesystem")));
        }
        Ok((
            (agno << sb.agblklog) | agbno,
            (idx as usize) * usize::from(sb.inodesize),
        ))
    }

    /// A metadata block through the cache.
    fn block(&self, fsb: u64, what: &dyn Fn() -> String) -> Result<Rc<[u8]>, FsError> {
        if let Some(b) = self.cache.borrow().map.get(&fsb) {
            return Ok(b.clone());
        }
        let off = self.fsb_to_byte(fsb).ok_or_else(|| {
            self.corrupt(format!(
                "{}: block {fsb} lies outside the filesystem",
                what()
            ))
        })?;
        let mut buf = vec![0u8; self.sb.blocksize as usize];
        self.dev.read_at(&mut buf, off)?;
        let rc: Rc<[u8]> = buf.into();
        let mut c = self.cache.borrow_mut();
        if c.order.len() >= self.cache_cap {
            if let Some(old) = c.order.pop_front() {
                c.map.remove(&old);
            }
        }
        c.order.push_back(fsb);
        c.map.insert(fsb, rc.clone());
        Ok(rc)
    }

    fn read_inode(&self, ino: u64) -> Result<Inode, FsError> {
        let (fsb, within) = self.ino_location(ino)?;
        let blk = self.block(fsb, &|| format!("inode {ino}"))?;
        let at = self.fsb_to_byte(fsb).unwrap_or(0) + within as u64;
        let isize = usize::from(self.sb.inodesize);
        let raw = blk
            .get(within..within + isize)
            .ok_or_else(|| self.corrupt(format!("inode {ino} at {at:#x}: past its block")))?;
        let bad = |what: &str| self.corrupt(format!("inode {ino} at offset {at:#x}: {what}"));
        if be16(raw, 0) != INODE_MAGIC {
            return Err(bad(&format!(
                "bad magic {:#06x}, expected IN",
                be16(raw, 0)
            )));
        }
        let version = byte(raw, 4);
        let core = match (version, self.sb.v5) {
            (3, true) => 176,
            (1 | 2, false) => 100,
            _ => {
                return Err(bad(&format!(
                    "inode version {version} on a {} filesystem",
                    self.version()
                )))
            }
        };
        if version == 3 && be64(raw, 152) != ino {
            return Err(bad(&format!("records inode number {}", be64(raw, 152))));
        }
        let forkoff = usize::from(byte(raw, 82)) * 8;
        let fork_len = if forkoff == 0 { isize - core } else { forkoff };
        if fork_len > isize - core {
            return Err(bad(&format!(
                "attribute fork offset {forkoff} beyond the inode"
            )));
        }
        let flags2 = if version == 3 { be64(raw, 120) } else { 0 };
        let nextents = if version == 3 && flags2 & DIFLAG2_NREXT64 != 0 {
            be64(raw, 24)
        } else {
            u64::from(be32(raw, 76))
        };
        Ok(Inode {
            ino,
            at,
            mode: be16(raw, 2),
            format: byte(raw, 5),
            size: be64(raw, 56),
            nextents,
            flags: be16(raw, 90),
            fork: raw[core..core + fork_len].to_vec(),
        })
    }

    /// The data fork's extents sorted by file offset (extent list or bmbt).
    fn extents(&self, ip: &Inode) -> Result<Vec<Extent>, FsError> {
        let mut out = match ip.format {
            FMT_EXTENTS => {
                let n = usize::try_from(ip.nextents).unwrap_or(usize::MAX);
                if n > ip.fork.len() / 16 {
                    return Err(self.corrupt(format!(
                        "inode {} at {:#x}: {} extents do not fit its {}-byte data fork",
                        ip.ino,
                        ip.at,
                        ip.nextents,
                        ip.fork.len()
                    )));
                }
                ip.fork
                    .chunks_exact(16)
                    .take(n)
                    .map(decode_extent)
                    .collect()
            }
            FMT_BTREE => self.bmbt_extents(ip)?,
            f => {
                return Err(self.corrupt(format!(
                    "inode {} at {:#x}: data fork format {f} has no extents",
                    ip.ino, ip.at
                )))
            }
        };
        out.retain(|e| e.len > 0);
        out.sort_by_key(|e| e.off);
        Ok(out)
    }

    /// Walks the extent B+tree whose root sits in the inode's data fork.
    fn bmbt_extents(&self, ip: &Inode) -> Result<Vec<Extent>, FsError> {
        let f = &ip.fork;
        let level = be16(f, 0);
        let numrecs = usize::from(be16(f, 2));
        let maxrecs = f.len().saturating_sub(4) / 16;
        let at = |what: String| {
            self.corrupt(format!(
                "inode {} at {:#x}: bmbt root: {what}",
                ip.ino, ip.at
            ))
        };
        if level == 0 || level > MAX_BMBT_LEVEL {
            return Err(at(format!("level {level}")));
        }
        if numrecs > maxrecs {
            return Err(at(format!("{numrecs} records, room for {maxrecs}")));
        }
        let mut out = Vec::new();
        // Each tree block is visited at most once in a sane tree; the budget stops a corrupt
        // tree whose pointers repeat from making us read forever.
        let mut budget = ip.nextents.saturating_mul(2).saturating_add(64);
        for i in 0..numrecs {
            let ptr = be64(f, 4 + maxrecs * 8 + i * 8);
            self.bmbt_walk(ip, ptr, level - 1, &mut out, &mut budget)?;
        }
        Ok(out)
    }

    fn bmbt_walk(
        &self,
        ip: &Inode,
        fsb: u64,
        level: u16,
        out: &mut Vec<Extent>,
        budget: &mut u64,
    ) -> Result<(), FsError> {
        let ctx = || format!("inode {} bmbt block {fsb}", ip.ino);
        if *budget == 0 {
            return Err(self.corrupt(format!(
                "{}: tree has more blocks than its {} extents allow",
                ctx(),
                ip.nextents
            )));
        }
        *budget -= 1;
        let b = self.block(fsb, &ctx)?;
        let (magic, hdr) = if self.sb.v5 {
            (BMAP_MAGIC_V5, 72)
        } else {
            (BMAP_MAGIC_V4, 24)
        };
        if be32(&b, 0) != magic {
            return Err(self.corrupt(format!("{}: bad magic {:#010x}", ctx(), be32(&b, 0))));
        }
        if be16(&b, 4) != level {
            return Err(self.corrupt(format!(
                "{}: level {} where {level} expected",
                ctx(),
                be16(&b, 4)
            )));
        }
        let numrecs = usize::from(be16(&b, 6));
        let room = (b.len() - hdr) / 16;
        if level == 0 {
            if numrecs > room {
                return Err(self.corrupt(format!("{}: {numrecs} records, room for {room}", ctx())));
            }
            if (out.len() + numrecs) as u64 > ip.nextents {
                return Err(self.corrupt(format!(
                    "{}: more records than the inode's {} extents",
                    ctx(),
                    ip.nextents
                )));
            }
            out.extend(
                b[hdr..hdr + numrecs * 16]
                    .chunks_exact(16)
                    .map(decode_extent),
            );
            return Ok(());
        }
        let maxrecs = (b.len() - hdr) / 16;
        if numrecs > maxrecs {
            return Err(self.corrupt(format!("{}: {numrecs} keys, room for {maxrecs}", ctx())));
        }
        for i in 0..numrecs {
            let ptr = be64(&b, hdr + maxrecs * 8 + i * 8);
            self.bmbt_walk(ip, ptr, level - 1, out, budget)?;
        }
        Ok(())
    }

    /// Calls `f` on each entry of directory `ip` (including "." and "..") until it returns true.
    fn scan_dir(&self, ip: &Inode, f: &mut dyn FnMut(RawEntry<'_>) -> bool) -> Result<(), FsError> {
        match ip.format {
            FMT_LOCAL => self.scan_shortform(ip, f),
            FMT_EXTENTS | FMT_BTREE => self.scan_blocks(ip, f),
            fmt => Err(self.corrupt(format!(
                "directory inode {} at {:#x}: data fork format {fmt}",
                ip.ino, ip.at
            ))),
        }
    }

    fn scan_shortform(
        &self,
        ip: &Inode,
        f: &mut dyn FnMut(RawEntry<'_>) -> bool,
    ) -> Result<(), FsError> {
        let bad = |what: String| {
            self.corrupt(format!(
                "short-form directory inode {} at {:#x}: {what}",
                ip.ino, ip.at
            ))
        };
        let len = usize::try_from(ip.size).unwrap_or(usize::MAX);
        let b = ip.fork.get(..len).ok_or_else(|| {
            bad(format!(
                "size {} exceeds the {}-byte fork",
                ip.size,
                ip.fork.len()
            ))
        })?;
        let count = usize::from(byte(b, 0));
        let inosize = if byte(b, 1) > 0 { 8 } else { 4 };
        let read_ino = |o: usize| {
            if inosize == 8 {
                be64(b, o)
            } else {
                u64::from(be32(b, o))
            }
        };
        if b.len() < 2 + inosize {
            return Err(bad("header truncated".into()));
        }
        let parent = read_ino(2);
        for (name, ino) in [(&b"."[..], ip.ino), (&b".."[..], parent)] {
            if f(RawEntry {
                name,
                ino,
                ftype: 2,
            }) {
                return Ok(());
            }
        }
        let ft = usize::from(self.sb.ftype);
        let mut p = 2 + inosize;
        for i in 0..count {
            let namelen = usize::from(byte(b, p));
            let end = p + 3 + namelen + ft + inosize;
            if namelen == 0 || end > b.len() {
                return Err(bad(format!(
                    "entry {i} at fork byte {p} overruns the directory"
                )));
            }
            let e = RawEntry {
                name: &b[p + 3..p + 3 + namelen],
                ftype: if ft == 1 { b[p + 3 + namelen] } else { 0 },
                ino: read_ino(p + 3 + namelen + ft),
            };
            if f(e) {
                return Ok(());
            }
            p = end;
        }
        Ok(())
    }

    /// Block, leaf, node and btree directories: scan every data block.
    fn scan_blocks(
        &self,
        ip: &Inode,
        f: &mut dyn FnMut(RawEntry<'_>) -> bool,
    ) -> Result<(), FsError> {
        let exts = self.extents(ip)?;
        let per = 1u64 << self.sb.dirblklog;
        let leaf_blk = DIR_LEAF_OFFSET >> self.sb.blocklog;
        let mut last: Option<u64> = None;
        for e in &exts {
            let end = e.off.saturating_add(e.len).min(leaf_blk);
            let mut lblk = e.off;
            while lblk < end {
                let db = lblk / per;
                lblk = (db + 1) * per;
                if last.is_some_and(|l| db <= l) {
                    continue;
                }
                last = Some(db);
                if self.scan_data_block(ip, &exts, db * per, f)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Parses one directory data block starting at file block `lblk`; true when `f` stopped.
    fn scan_data_block(
        &self,
        ip: &Inode,
        exts: &[Extent],
        lblk: u64,
        f: &mut dyn FnMut(RawEntry<'_>) -> bool,
    ) -> Result<bool, FsError> {
        let per = 1u64 << self.sb.dirblklog;
        let ctx = || format!("directory inode {} block {lblk}", ip.ino);
        let buf: Rc<[u8]> = if per == 1 {
            let (fsb, _) = map_block(exts, lblk)
                .ok_or_else(|| self.corrupt(format!("{}: not mapped", ctx())))?;
            self.block(fsb, &ctx)?
        } else {
            let mut v = Vec::with_capacity((self.sb.blocksize as usize) << self.sb.dirblklog);
            for i in 0..per {
                let (fsb, _) = map_block(exts, lblk + i).ok_or_else(|| {
                    self.corrupt(format!(
                        "{}: block {} of the directory block not mapped",
                        ctx(),
                        i
                    ))
                })?;
                v.extend_from_slice(&self.block(fsb, &ctx)?);
            }
            v.into()
        };
        let b = &buf[..];
        let magic = be32(b, 0);
        let hdr = if self.sb.v5 { 64 } else { 16 };
        let end = match magic {
            DIR_DATA_V4 | DIR_DATA_V5 => b.len(),
            DIR_BLOCK_V4 | DIR_BLOCK_V5 => {
                // Block form: leaf entries (8 bytes each) and an 8-byte tail end the block.
                let count = be32(b, b.len() - 8) as usize;
                b.len()
                    .checked_sub(8 + count.saturating_mul(8))
                    .filter(|&e| e >= hdr)
                    .ok_or_else(|| {
                        self.corrupt(format!("{}: block tail claims {count} leaf entries", ctx()))
                    })?
            }
            _ => {
                return Err(
                    self.corrupt(format!("{}: bad directory data magic {magic:#010x}", ctx()))
                )
            }
        };
        if (magic == DIR_DATA_V5 || magic == DIR_BLOCK_V5) != self.sb.v5 {
            return Err(self.corrupt(format!(
                "{}: magic {magic:#010x} of the other XFS version",
                ctx()
            )));
        }
        let ft = usize::from(self.sb.ftype);
        let mut p = hdr;
        while p + 8 <= end {
            if be16(b, p) == 0xffff {
                // Unused space: freetag, length, ... tag.
                let len = usize::from(be16(b, p + 2));
                if len < 8 || len % 8 != 0 || p + len > end {
                    return Err(self.corrupt(format!(
                        "{}: free region at byte {p} has length {len}",
                        ctx()
                    )));
                }
                p += len;
                continue;
            }
            let namelen = usize::from(byte(b, p + 8));
            let entsize = (8 + 1 + namelen + ft + 2 + 7) & !7;
            if namelen == 0 || p + entsize > end {
                return Err(
                    self.corrupt(format!("{}: entry at byte {p} overruns the block", ctx()))
                );
            }
            let e = RawEntry {
                ino: be64(b, p),
                name: &b[p + 9..p + 9 + namelen],
                ftype: if ft == 1 { b[p + 9 + namelen] } else { 0 },
            };
            if f(e) {
                return Ok(true);
            }
            p += entsize;
        }
        Ok(false)
    }

    fn lookup(&self, dir: &Inode, name: &[u8]) -> Result<Option<u64>, FsError> {
        let mut found = None;
        self.scan_dir(dir, &mut |e| {
            if e.name == name {
                found = Some(e.ino);
                true
            } else {
                false
            }
        })?;
        Ok(found)
    }

    /// Inode at `path` (final symlink not followed); `Ok(None)` when a component is missing.
    fn walk(&self, path: &str) -> Result<Option<Inode>, FsError> {
        let mut cur = self.read_inode(self.sb.rootino)?;
        let mut done = String::new();
        for (i, comp) in path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .enumerate()
        {
            if i >= MAX_COMPONENTS {
                return Err(FsError::not_found(path));
            }
            if cur.kind() != FileType::Dir {
                return Err(FsError::NotADirectory {
                    path: if done.is_empty() { "/".into() } else { done },
                });
            }
            done.push('/');
            done.push_str(comp);
            match self.lookup(&cur, comp.as_bytes())? {
                Some(ino) => cur = self.read_inode(ino)?,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    fn walk_existing(&self, path: &str) -> Result<Inode, FsError> {
        self.walk(path)?.ok_or_else(|| FsError::not_found(path))
    }

    fn read_data(&self, ip: &Inode, path: &str) -> Result<Vec<u8>, FsError> {
        if ip.flags & DIFLAG_REALTIME != 0 {
            return Err(self.unsupported(format!("{path}: file data on the realtime device")));
        }
        let size = usize::try_from(ip.size)
            .map_err(|_| self.corrupt(format!("{path}: size {}", ip.size)))?;
        match ip.format {
            FMT_LOCAL => {
                return ip.fork.get(..size).map(<[u8]>::to_vec).ok_or_else(|| {
                    self.corrupt(format!("{path}: inline size {size} exceeds the inode fork"))
                });
            }
            FMT_EXTENTS | FMT_BTREE => {}
            FMT_DEV => return Ok(Vec::new()),
            f => return Err(self.corrupt(format!("{path}: inode {} data fork format {f}", ip.ino))),
        }
        let exts = self.extents(ip)?;
        let mut out = vec![0u8; size];
        let bs = u64::from(self.sb.blocksize);
        for e in exts.iter().filter(|e| !e.unwritten) {
            let lstart = e.off.saturating_mul(bs);
            if lstart >= ip.size {
                continue;
            }
            let n = e.len.saturating_mul(bs).min(ip.size - lstart) as usize;
            let agbno = e.start & ((1u64 << self.sb.agblklog) - 1);
            let at = self
                .fsb_to_byte(e.start)
                .filter(|_| agbno + e.len <= u64::from(self.sb.agblocks))
                .ok_or_else(|| {
                    self.corrupt(format!(
                        "{path}: inode {} extent of {} blocks at block {} lies outside its AG",
                        ip.ino, e.len, e.start
                    ))
                })?;
            let lstart = lstart as usize;
            self.dev.read_at(&mut out[lstart..lstart + n], at)?;
        }
        Ok(out)
    }

    fn symlink_target(&self, ip: &Inode, path: &str) -> Result<String, FsError> {
        if ip.size == 0 || ip.size > SYMLINK_MAXLEN {
            return Err(self.corrupt(format!(
                "{path}: symlink inode {} has length {}",
                ip.ino, ip.size
            )));
        }
        let size = ip.size as usize;
        let bytes = match ip.format {
            FMT_LOCAL => ip
                .fork
                .get(..size)
                .ok_or_else(|| {
                    self.corrupt(format!("{path}: inline symlink longer than its fork"))
                })?
                .to_vec(),
            FMT_EXTENTS | FMT_BTREE => {
                let exts = self.extents(ip)?;
                let mut hdr = if self.sb.v5 { 56 } else { 0 };
                let mut v = Vec::with_capacity(size);
                'outer: for e in &exts {
                    for i in 0..e.len {
                        let ctx =
                            || format!("{path}: symlink inode {} block {}", ip.ino, e.off + i);
                        let b = self.block(e.start + i, &ctx)?;
                        if hdr > 0 && be32(&b, 0) != SYMLINK_MAGIC {
                            // mkfs.xfs -p (xfsprogs 6.1) writes v5 remote symlinks without the
                            // header: take such a first block as bare target bytes.
                            if !v.is_empty() {
                                return Err(self.corrupt(format!(
                                    "{}: bad magic {:#010x}",
                                    ctx(),
                                    be32(&b, 0)
                                )));
                            }
                            hdr = 0;
                        }
                        let take = (size - v.len()).min(b.len() - hdr);
                        v.extend_from_slice(&b[hdr..hdr + take]);
                        if v.len() == size {
                            break 'outer;
                        }
                    }
                }
                if v.len() != size {
                    return Err(self.corrupt(format!(
                        "{path}: symlink blocks hold {} of {size} bytes",
                        v.len()
                    )));
                }
                v
            }
            f => {
                return Err(self.corrupt(format!(
                    "{path}: symlink inode {} data fork format {f}",
                    ip.ino
                )))
            }
        };
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Filesystem block holding file block `lblk`, and whether it is unwritten.
fn map_block(exts: &[Extent], lblk: u64) -> Option<(u64, bool)> {
    let i = exts.partition_point(|e| e.off <= lblk);
    let e = exts.get(i.checked_sub(1)?)?;
    (lblk < e.off + e.len).then(|| (e.start + (lblk - e.off), e.unwritten))
}

impl GuestFs for Xfs {
    fn fstype(&self) -> &'static str {
        "xfs"
    }

    fn stat(&self, path: &str) -> Result<Option<Meta>, FsError> {
        Ok(self.walk(path)?.map(|ip| Meta {
            ftype: ip.kind(),
            size: ip.size,
            mode: u32::from(ip.mode),
        }))
    }

    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let ip = self.walk_existing(path)?;
        if ip.kind() != FileType::Dir {
            return Err(FsError::NotADirectory { path: path.into() });
        }
        let mut raw = Vec::new();
        self.scan_dir(&ip, &mut |e| {
            if e.name != b"." && e.name != b".." {
                raw.push((String::from_utf8_lossy(e.name).into_owned(), e.ino, e.ftype));
            }
            false
        })?;
        let mut out = Vec::with_capacity(raw.len());
        for (name, ino, ft) in raw {
            let ftype = match dirent_type(ft) {
                Some(t) => t,
                None => self.read_inode(ino)?.kind(),
            };
            out.push(DirEntry { name, ftype });
        }
        Ok(out)
    }

    fn read_file(&self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
        let ip = self.walk_existing(path)?;
        match ip.kind() {
            FileType::Dir => return Err(FsError::IsADirectory { path: path.into() }),
            // Paths come symlink-free from the Vfs; a link here is not ours to follow.
            FileType::Symlink => return Err(FsError::not_found(path)),
            _ => {}
        }
        if ip.size > limit {
            return Err(FsError::TooLarge {
                path: path.into(),
                size: ip.size,
                limit,
            });
        }
        self.read_data(&ip, path)
    }

    /// Target of the symlink at `path`; `NotFound` when it is not a symlink.
    fn read_link(&self, path: &str) -> Result<String, FsError> {
        let ip = self.walk_existing(path)?;
        if ip.kind() != FileType::Symlink {
            return Err(FsError::not_found(format!("{path} (not a symlink)")));
        }
        self.symlink_target(&ip, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_record_bit_layout() {
        // flag=1, startoff=5, startblock=(3<<43)|7, blockcount=9
        let l0: u64 = (1 << 63) | (5 << 9) | 3;
        let l1: u64 = (7 << 21) | 9;
        let mut r = [0u8; 16];
        r[..8].copy_from_slice(&l0.to_be_bytes());
        r[8..].copy_from_slice(&l1.to_be_bytes());
        assert_eq!(
            decode_extent(&r),
            Extent {
                off: 5,
                start: (3 << 43) | 7,
                len: 9,
                unwritten: true
            }
        );
    }

    #[test]
    fn map_block_finds_extent_and_holes() {
        let e = |off, start, len| Extent {
            off,
            start,
            len,
            unwritten: false,
        };
        let exts = [e(0, 100, 2), e(10, 200, 3)];
        assert_eq!(map_block(&exts, 1), Some((101, false)));
        assert_eq!(map_block(&exts, 5), None);
        assert_eq!(map_block(&exts, 12), Some((202, false)));
        assert_eq!(map_block(&exts, 13), None);
    }

    #[test]
    fn garbage_superblock_is_corrupt_not_panic() {
        for len in [0usize, 10, 100, 512] {
            let mut b = vec![0u8; len];
            if len >= 4 {
                b[..4].copy_from_slice(b"XFSB");
            }
            assert!(matches!(
                Sb::parse(&b, "t", 1 << 30),
                Err(FsError::Corrupt { .. })
            ));
        }
    }
}
