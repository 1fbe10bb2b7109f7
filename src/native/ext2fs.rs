//! ext2/3/4 edits through libext2fs (e2fsprogs 1.47), for the caged native helper.
//!
//! ```text
//!   ExtFs::open(Box<dyn BlockIo>) --1 KiB at 1024--> refusal()   (pure: features, state, orphans)
//!        |  ext2fs_open2(RW only if nothing is refused, io_manager = BLOCKIO_MANAGER)
//!        v
//!   ext2_filsys --read_blk64/write_blk64/write_byte/flush--> Channel { Box<dyn BlockIo> }
//!        |  namei by hand (no symlink is ever followed), link/unlink/expand_dir, mkdir,
//!        |  symlink, file write/set_size2, punch, inode/block alloc stats
//!        v
//!   close(): ext2fs_close_free writes bitmaps, group descriptors and superblocks, then flushes
//! ```
//!
//! The image is tenant-controlled: libext2fs parses it inside the sandboxed helper, and this
//! module adds the checks libext2fs leaves to its callers (path length and depth, file types of
//! every component, sizes, link counts, free space). It does not replay a journal, update quota
//! or write inline-data inodes: [`ExtFs::unsupported`] says when a filesystem needs any of that,
//! and then every edit is refused and no byte is written (the channel rejects writes until the
//! first edit passes that check). An edit that fails half-way leaves the filesystem half-edited
//! (libext2fs has no transactions): the handle then refuses further edits and `close` reports it,
//! so the caller discards its overlay.
#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all
)]
mod ffi {
    include!(concat!(env!("OUT_DIR"), "/ext2fs_bindings.rs"));
}

use std::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_ulonglong, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};

type Errcode = ffi::errcode_t;
type Inode = ffi::ext2_inode_large;

/// Longest path accepted (Linux PATH_MAX, counting the NUL).
pub const MAX_PATH: usize = 4095;
/// Deepest path accepted, in components (real guests stay below ~20).
pub const MAX_DEPTH: usize = 256;
/// Longest file name in an ext directory entry.
pub const MAX_NAME: usize = 255;
/// Largest file [`ExtFs::write_file`] accepts (the caller holds it in memory anyway).
pub const MAX_WRITE: u64 = 1 << 32;
/// Bytes handed to one ext2fs_file_read/write call.
const CHUNK: usize = 1 << 20;

/// The bytes of the one filesystem an [`ExtFs`] edits: a partition or LV of the overlay, seen
/// from offset 0. Offsets and lengths are in bytes; a read past [`BlockIo::size`] is an error.
pub trait BlockIo: Send {
    fn size(&self) -> u64;
    fn read_at(&mut self, buf: &mut [u8], off: u64) -> std::io::Result<()>;
    fn write_at(&mut self, buf: &[u8], off: u64) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()>;
}

/// Owner and permissions of a file [`ExtFs::write_file`] creates (ignored for existing files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewMeta {
    /// Permission bits (`& 0o7777`); the file type is always regular.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Kind of an inode, from its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// What [`ExtFs::lstat`] reports (the final component is not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub ino: u32,
    pub kind: Kind,
    /// Full `st_mode`: file type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub links: u16,
}

/// Errors of the ext2fs writer. Each names the path inside the filesystem; libext2fs failures
/// carry its own message (`error_message`) and, for I/O, what the [`BlockIo`] said.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtError {
    #[error("{path}: {op}: {msg}")]
    Lib {
        path: String,
        op: &'static str,
        code: i64,
        msg: String,
    },
    #[error("ext2fs writer refused: {what}")]
    Unsupported { what: String },
    #[error("an earlier edit failed half-way ({what}); discard this overlay")]
    Broken { what: String },
    #[error("{path}: corrupt filesystem: {what}")]
    Corrupt { path: String, what: String },
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    #[error("{path}: not a directory")]
    NotADirectory { path: String },
    #[error("{path}: is a directory")]
    IsADirectory { path: String },
    #[error("{path}: not a regular file")]
    NotRegular { path: String },
    #[error("{path}: {at} is a symbolic link (resolve it before asking the ext2fs writer)")]
    Symlink { path: String, at: String },
    #[error("{path}: directory not empty")]
    NotEmpty { path: String },
    #[error("{path}: immutable or append-only (chattr +i / +a): left alone")]
    Immutable { path: String },
    #[error("{path}: invalid: {why}")]
    Invalid { path: String, why: String },
    #[error("{path}: {size} bytes is over the {limit}-byte limit")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: no space left: {need} blocks needed, {free} free")]
    NoSpace { path: String, need: u64, free: u64 },
    #[error("{path}: too many links")]
    TooManyLinks { path: String },
}

impl ExtError {
    /// A refusal rather than a failure: metadata revirt will not edit, or no room for the edit
    /// (the repair exits "refused", and nothing it wrote is kept).
    pub fn is_refusal(&self) -> bool {
        const FULL: [u32; 4] = [
            ffi::EXT2_ET_BLOCK_ALLOC_FAIL,
            ffi::EXT2_ET_INODE_ALLOC_FAIL,
            ffi::EXT2_ET_DIR_NO_SPACE,
            ffi::EXT2_ET_DIR_NO_SPACE_FOR_CSUM,
        ];
        match self {
            ExtError::Corrupt { .. } | ExtError::Unsupported { .. } | ExtError::NoSpace { .. } => {
                true
            }
            ExtError::Lib { code, .. } => FULL.iter().any(|&c| i64::from(c) == *code),
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The io_manager: libext2fs's block I/O routed to a BlockIo.

/// State shared between an [`ExtFs`] and its channel (which libext2fs frees on close).
#[derive(Default)]
struct Shared {
    /// Writes are refused until the first edit passes [`ExtFs::unsupported`].
    writable: AtomicBool,
    /// What the BlockIo said on the last failed call (libext2fs only keeps an errcode).
    last_error: Mutex<Option<String>>,
}

struct Channel {
    io: Box<dyn BlockIo>,
    shared: Arc<Shared>,
    name: CString,
}

thread_local! {
    /// The channel `ExtFs::open` hands to `io_open` through ext2fs_open2.
    static PENDING: std::cell::RefCell<Option<Box<Channel>>> = const { std::cell::RefCell::new(None) };
}

struct Manager(ffi::struct_io_manager);
// SAFETY: the manager is immutable after construction (libext2fs only reads it); the raw name
// pointer is to a 'static C string.
unsafe impl Sync for Manager {}

static BLOCKIO_MANAGER: Manager = Manager(ffi::struct_io_manager {
    magic: ffi::EXT2_ET_MAGIC_IO_MANAGER as Errcode,
    name: c"revirt BlockIo".as_ptr(),
    open: Some(io_open),
    close: Some(io_close),
    set_blksize: Some(io_set_blksize),
    read_blk: Some(io_read_blk),
    write_blk: Some(io_write_blk),
    flush: Some(io_flush),
    write_byte: Some(io_write_byte),
    set_option: Some(io_set_option),
    get_stats: None,
    read_blk64: Some(io_read_blk64),
    write_blk64: Some(io_write_blk64),
    discard: None,
    cache_readahead: None,
    zeroout: None,
    reserved: [0; 14],
});

/// The channel behind `ch`, if it is one of ours.
///
/// # Safety
/// `ch` is null or a channel made by [`io_open`] and not yet closed.
unsafe fn channel<'a>(ch: ffi::io_channel) -> Option<&'a mut Channel> {
    if ch.is_null() || (*ch).magic != ffi::EXT2_ET_MAGIC_IO_CHANNEL as Errcode {
        return None;
    }
    ((*ch).private_data as *mut Channel).as_mut()
}

unsafe extern "C" fn io_open(
    _name: *const c_char,
    _flags: c_int,
    out: *mut ffi::io_channel,
) -> Errcode {
    let Some(state) = PENDING.with(|p| p.borrow_mut().take()) else {
        return ffi::EXT2_ET_BAD_DEVICE_NAME as Errcode;
    };
    if out.is_null() {
        return ffi::EXT2_ET_INVALID_ARGUMENT as Errcode;
    }
    let name = state.name.as_ptr() as *mut c_char;
    let ch = Box::new(ffi::struct_io_channel {
        magic: ffi::EXT2_ET_MAGIC_IO_CHANNEL as Errcode,
        manager: &BLOCKIO_MANAGER.0 as *const _ as ffi::io_manager,
        name,
        block_size: 1024,
        refcount: 1,
        private_data: Box::into_raw(state) as *mut c_void,
        ..Default::default()
    });
    *out = Box::into_raw(ch);
    0
}

unsafe extern "C" fn io_close(ch: ffi::io_channel) -> Errcode {
    if channel(ch).is_none() {
        return ffi::EXT2_ET_MAGIC_IO_CHANNEL as Errcode;
    }
    (*ch).refcount -= 1;
    if (*ch).refcount > 0 {
        return 0;
    }
    drop(Box::from_raw((*ch).private_data as *mut Channel));
    (*ch).magic = 0;
    drop(Box::from_raw(ch));
    0
}

unsafe extern "C" fn io_set_blksize(ch: ffi::io_channel, blksize: c_int) -> Errcode {
    if channel(ch).is_none() {
        return ffi::EXT2_ET_MAGIC_IO_CHANNEL as Errcode;
    }
    if !(512..=(1 << 20)).contains(&blksize) {
        return ffi::EXT2_ET_INVALID_ARGUMENT as Errcode;
    }
    (*ch).block_size = blksize;
    0
}

/// Byte offset and length of `count` blocks at `block` (a negative count is a byte count).
unsafe fn extent_of(ch: ffi::io_channel, block: u64, count: c_int) -> Option<(u64, usize)> {
    let bs = (*ch).block_size as u64;
    let len = if count < 0 {
        count.unsigned_abs() as u64
    } else {
        (count as u64).checked_mul(bs)?
    };
    Some((block.checked_mul(bs)?, usize::try_from(len).ok()?))
}

/// One read or write through the BlockIo, panics and errors turned into an errcode.
unsafe fn transfer(
    ch: ffi::io_channel,
    off: u64,
    len: usize,
    data: *mut c_void,
    write: bool,
) -> Errcode {
    let Some(c) = channel(ch) else {
        return ffi::EXT2_ET_MAGIC_IO_CHANNEL as Errcode;
    };
    if len == 0 {
        return 0;
    }
    if data.is_null() {
        return ffi::EXT2_ET_INVALID_ARGUMENT as Errcode;
    }
    let (what, code) = if write {
        ("write", ffi::EXT2_ET_SHORT_WRITE as Errcode)
    } else {
        ("read", ffi::EXT2_ET_SHORT_READ as Errcode)
    };
    if write && !c.shared.writable.load(Ordering::SeqCst) {
        *c.shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(format!(
            "{what} of {len} bytes at {off:#x} refused: no edit was allowed"
        ));
        return ffi::EXT2_ET_RO_FILSYS as Errcode;
    }
    let io = &mut c.io;
    let r = catch_unwind(AssertUnwindSafe(|| {
        if off
            .checked_add(len as u64)
            .is_none_or(|end| end > io.size())
        {
            return Err(std::io::Error::other(format!(
                "past the end of the {}-byte volume",
                io.size()
            )));
        }
        if write {
            io.write_at(std::slice::from_raw_parts(data as *const u8, len), off)
        } else {
            io.read_at(std::slice::from_raw_parts_mut(data as *mut u8, len), off)
        }
    }));
    let e = match r {
        Ok(Ok(())) => return 0,
        Ok(Err(e)) => e.to_string(),
        Err(_) => "the block device panicked".to_string(),
    };
    *c.shared
        .last_error
        .lock()
        .unwrap_or_else(|e| e.into_inner()) =
        Some(format!("{what} of {len} bytes at {off:#x}: {e}"));
    code
}

unsafe extern "C" fn io_read_blk64(
    ch: ffi::io_channel,
    block: c_ulonglong,
    count: c_int,
    data: *mut c_void,
) -> Errcode {
    if channel(ch).is_none() {
        return ffi::EXT2_ET_MAGIC_IO_CHANNEL as Errcode;
    }
    match extent_of(ch, block, count) {
        Some((off, len)) => transfer(ch, off, len, data, false),
        None => ffi::EXT2_ET_BAD_BLOCK_NUM as Errcode,
    }
}

unsafe extern "C" fn io_write_blk64(
    ch: ffi::io_channel,
    block: c_ulonglong,
    count: c_int,
    data: *const c_void,
) -> Errcode {
    if channel(ch).is_none() {
        return ffi::EXT2_ET_MAGIC_IO_CHANNEL as Errcode;
    }
    match extent_of(ch, block, count) {
        Some((off, len)) => transfer(ch, off, len, data as *mut c_void, true),
        None => ffi::EXT2_ET_BAD_BLOCK_NUM as Errcode,
    }
}

unsafe extern "C" fn io_read_blk(
    ch: ffi::io_channel,
    block: c_ulong,
    count: c_int,
    data: *mut c_void,
) -> Errcode {
    io_read_blk64(ch, block as c_ulonglong, count, data)
}

unsafe extern "C" fn io_write_blk(
    ch: ffi::io_channel,
    block: c_ulong,
    count: c_int,
    data: *const c_void,
) -> Errcode {
    io_write_blk64(ch, block as c_ulonglong, count, data)
}

unsafe extern "C" fn io_write_byte(
    ch: ffi::io_channel,
    offset: c_ulong,
    count: c_int,
    data: *const c_void,
) -> Errcode {
    let Ok(len) = usize::try_from(count) else {
        return ffi::EXT2_ET_INVALID_ARGUMENT as Errcode;
    };
    transfer(ch, offset, len, data as *mut c_void, true)
}

unsafe extern "C" fn io_flush(ch: ffi::io_channel) -> Errcode {
    let Some(c) = channel(ch) else {
        return ffi::EXT2_ET_MAGIC_IO_CHANNEL as Errcode;
    };
    if !c.shared.writable.load(Ordering::SeqCst) {
        return 0;
    }
    let io = &mut c.io;
    let e = match catch_unwind(AssertUnwindSafe(|| io.flush())) {
        Ok(Ok(())) => return 0,
        Ok(Err(e)) => e.to_string(),
        Err(_) => "the block device panicked".to_string(),
    };
    *c.shared
        .last_error
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(format!("flush: {e}"));
    ffi::EXT2_ET_SHORT_WRITE as Errcode
}

unsafe extern "C" fn io_set_option(
    _ch: ffi::io_channel,
    _option: *const c_char,
    _arg: *const c_char,
) -> Errcode {
    ffi::EXT2_ET_INVALID_ARGUMENT as Errcode
}

// ---------------------------------------------------------------------------------------------
// What this writer refuses, decided from the raw superblock before libext2fs opens it.

/// Offsets in the 1 KiB superblock (struct ext2_super_block; checked against the bindings in
/// the tests).
mod sb {
    pub const BLOCKS_COUNT: usize = 0x04;
    pub const FIRST_DATA_BLOCK: usize = 0x14;
    pub const LOG_BLOCK_SIZE: usize = 0x18;
    pub const BLOCKS_COUNT_HI: usize = 0x150;
    pub const MAGIC: usize = 0x38;
    pub const STATE: usize = 0x3a;
    pub const REV_LEVEL: usize = 0x4c;
    pub const FEATURE_INCOMPAT: usize = 0x60;
    pub const FEATURE_RO_COMPAT: usize = 0x64;
    pub const LAST_ORPHAN: usize = 0xe8;
}

const EXT2_MAGIC: u16 = 0xef53;

fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Incompat features libext2fs handles and this writer was tested with (or that only change
/// where metadata lives: meta_bg, csum_seed, largedir).
const INCOMPAT_OK: u32 = ffi::EXT2_FEATURE_INCOMPAT_FILETYPE
    | ffi::EXT3_FEATURE_INCOMPAT_EXTENTS
    | ffi::EXT4_FEATURE_INCOMPAT_64BIT
    | ffi::EXT4_FEATURE_INCOMPAT_FLEX_BG
    | ffi::EXT2_FEATURE_INCOMPAT_META_BG
    | ffi::EXT4_FEATURE_INCOMPAT_CSUM_SEED
    | ffi::EXT4_FEATURE_INCOMPAT_LARGEDIR;

const INCOMPAT_WHY: &[(u32, &str)] = &[
    (ffi::EXT3_FEATURE_INCOMPAT_RECOVER, "needs_recovery: the journal holds transactions that were never replayed (replay first: the appliance, or e2fsck -E journal_only)"),
    (ffi::EXT3_FEATURE_INCOMPAT_JOURNAL_DEV, "journal_dev: this is an external journal, not a filesystem"),
    (ffi::EXT4_FEATURE_INCOMPAT_MMP, "mmp: multi-mount protection (the filesystem may be in use on another host)"),
    (ffi::EXT4_FEATURE_INCOMPAT_INLINE_DATA, "inline_data: files stored in their inodes are not written by this writer"),
    (ffi::EXT4_FEATURE_INCOMPAT_ENCRYPT, "encrypt: fscrypt directories"),
    (ffi::EXT4_FEATURE_INCOMPAT_CASEFOLD, "casefold: case-insensitive directories"),
    (ffi::EXT4_FEATURE_INCOMPAT_EA_INODE, "ea_inode: extended attributes in their own inodes (they would leak on delete)"),
    (ffi::EXT2_FEATURE_INCOMPAT_COMPRESSION, "compression"),
    (ffi::EXT4_FEATURE_INCOMPAT_DIRDATA, "dirdata (Lustre)"),
];

/// Read-only-compatible features whose meaning edits keep intact.
const RO_COMPAT_OK: u32 = ffi::EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER
    | ffi::EXT2_FEATURE_RO_COMPAT_LARGE_FILE
    | ffi::EXT4_FEATURE_RO_COMPAT_HUGE_FILE
    | ffi::EXT4_FEATURE_RO_COMPAT_GDT_CSUM
    | ffi::EXT4_FEATURE_RO_COMPAT_DIR_NLINK
    | ffi::EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE
    | ffi::EXT4_FEATURE_RO_COMPAT_METADATA_CSUM;

const RO_COMPAT_WHY: &[(u32, &str)] = &[
    (
        ffi::EXT4_FEATURE_RO_COMPAT_QUOTA,
        "quota: usage in the quota inodes would go stale (libext2fs edits do not update it)",
    ),
    (
        ffi::EXT4_FEATURE_RO_COMPAT_PROJECT,
        "project: project quota would go stale",
    ),
    (
        ffi::EXT4_FEATURE_RO_COMPAT_BIGALLOC,
        "bigalloc: cluster allocation (untested with this writer)",
    ),
    (
        ffi::EXT4_FEATURE_RO_COMPAT_HAS_SNAPSHOT,
        "has_snapshot (next3 snapshots)",
    ),
    (ffi::EXT4_FEATURE_RO_COMPAT_REPLICA, "replica"),
    (
        ffi::EXT4_FEATURE_RO_COMPAT_READONLY,
        "readonly: the filesystem is marked read-only",
    ),
    (
        ffi::EXT4_FEATURE_RO_COMPAT_SHARED_BLOCKS,
        "shared_blocks: blocks shared between files (e2fsck -E unshare_blocks first)",
    ),
    (
        ffi::EXT4_FEATURE_RO_COMPAT_VERITY,
        "verity: fs-verity files",
    ),
    (
        ffi::EXT4_FEATURE_RO_COMPAT_ORPHAN_PRESENT,
        "orphan_present: the orphan file lists inodes still to be cleaned up (run e2fsck)",
    ),
];

/// Why revirt must not write the filesystem whose superblock is `sb` (1024 bytes) on a volume
/// of `volume` bytes, or None. Pure: decided before libext2fs opens the filesystem read-write.
fn refusal(sb: &[u8], volume: u64) -> Option<String> {
    let mut why = vec![];
    let state = le16(sb, sb::STATE);
    if state & ffi::EXT2_VALID_FS as u16 == 0 {
        why.push("not cleanly unmounted (no valid flag in s_state): run e2fsck first".to_string());
    }
    if state & ffi::EXT2_ERROR_FS as u16 != 0 {
        why.push("the kernel recorded errors (s_state has ERROR_FS): run e2fsck first".to_string());
    }
    let log = le32(sb, sb::LOG_BLOCK_SIZE);
    let mut blocks = le32(sb, sb::BLOCKS_COUNT) as u64;
    if le32(sb, sb::FEATURE_INCOMPAT) & ffi::EXT4_FEATURE_INCOMPAT_64BIT != 0 {
        blocks |= (le32(sb, sb::BLOCKS_COUNT_HI) as u64) << 32;
    }
    if log > 6 {
        why.push(format!(
            "block size 2^{} is out of range",
            log.saturating_add(10)
        ));
    } else if le32(sb, sb::FIRST_DATA_BLOCK) != (log == 0) as u32 {
        // Where group 0 starts; e2fsck stops on any other value (bigalloc is refused below).
        why.push(format!(
            "s_first_data_block is {}, but {} with {}-byte blocks",
            le32(sb, sb::FIRST_DATA_BLOCK),
            (log == 0) as u32,
            1024 << log
        ));
    } else if blocks.saturating_mul(1024 << log) > volume {
        why.push(format!(
            "the filesystem ({} bytes) is larger than its volume ({volume} bytes)",
            blocks.saturating_mul(1024 << log)
        ));
    }
    let rev = le32(sb, sb::REV_LEVEL);
    if rev > 1 {
        why.push(format!("superblock revision {rev} is unknown"));
    }
    let features =
        |value: u32, ok: u32, table: &[(u32, &str)], kind: &str, why: &mut Vec<String>| {
            let mut bad = value & !ok;
            for (bit, text) in table {
                if bad & bit != 0 {
                    why.push((*text).to_string());
                    bad &= !bit;
                }
            }
            if bad != 0 {
                why.push(format!("unknown {kind} feature bits {bad:#x}"));
            }
        };
    features(
        le32(sb, sb::FEATURE_INCOMPAT),
        INCOMPAT_OK,
        INCOMPAT_WHY,
        "incompat",
        &mut why,
    );
    features(
        le32(sb, sb::FEATURE_RO_COMPAT),
        RO_COMPAT_OK,
        RO_COMPAT_WHY,
        "ro_compat",
        &mut why,
    );
    let orphan = le32(sb, sb::LAST_ORPHAN);
    if orphan != 0 {
        why.push(format!(
            "the orphan list is not empty (s_last_orphan {orphan}): the kernel would finish those deletes at mount"
        ));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

// ---------------------------------------------------------------------------------------------
// Paths, modes, times.

/// The components of an absolute path: no "..", no NUL, bounded length, depth and names.
fn components(path: &str) -> Result<Vec<&str>, ExtError> {
    let invalid = |why: &str| ExtError::Invalid {
        path: path.chars().take(200).collect(),
        why: why.into(),
    };
    if !path.starts_with('/') {
        return Err(invalid("not an absolute path"));
    }
    if path.len() > MAX_PATH {
        return Err(invalid("path longer than 4095 bytes"));
    }
    if path.contains('\0') {
        return Err(invalid("NUL byte in path"));
    }
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if comps.len() > MAX_DEPTH {
        return Err(invalid("more than 256 components"));
    }
    for c in &comps {
        if *c == ".." {
            return Err(invalid("'..' in path (pass a resolved path)"));
        }
        if c.len() > MAX_NAME {
            return Err(invalid("a name is longer than 255 bytes"));
        }
    }
    Ok(comps)
}

fn join(comps: &[&str]) -> String {
    format!("/{}", comps.join("/"))
}

fn kind(mode: u16) -> Kind {
    match mode as u32 & ffi::LINUX_S_IFMT {
        ffi::LINUX_S_IFREG => Kind::File,
        ffi::LINUX_S_IFDIR => Kind::Dir,
        ffi::LINUX_S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    }
}

/// Directory entry file type for an inode mode.
fn dirent_type(mode: u16) -> c_int {
    (match mode as u32 & ffi::LINUX_S_IFMT {
        ffi::LINUX_S_IFREG => ffi::EXT2_FT_REG_FILE,
        ffi::LINUX_S_IFDIR => ffi::EXT2_FT_DIR,
        ffi::LINUX_S_IFLNK => ffi::EXT2_FT_SYMLINK,
        ffi::LINUX_S_IFCHR => ffi::EXT2_FT_CHRDEV,
        ffi::LINUX_S_IFBLK => ffi::EXT2_FT_BLKDEV,
        ffi::LINUX_S_IFIFO => ffi::EXT2_FT_FIFO,
        ffi::LINUX_S_IFSOCK => ffi::EXT2_FT_SOCK,
        _ => ffi::EXT2_FT_UNKNOWN,
    }) as c_int
}

/// Seconds and nanoseconds since the epoch, now.
fn now() -> (i64, u32) {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(_) => (0, 0),
    }
}

/// ext4's on-disk time: low 32 bits, and the `_extra` word (2 epoch bits, then nanoseconds).
fn encode_time(secs: i64, nsec: u32) -> (u32, u32) {
    let lo = secs as u32;
    let epoch = ((secs - lo as i32 as i64) >> 32) as u32 & 3;
    (lo, epoch | (nsec << 2))
}

/// Which timestamps [`ExtFs::stamp`] sets.
#[derive(Clone, Copy)]
struct Times {
    mtime: bool,
    atime: bool,
}
const CTIME: Times = Times {
    mtime: false,
    atime: false,
};
const MCTIME: Times = Times {
    mtime: true,
    atime: false,
};
const ALL_TIMES: Times = Times {
    mtime: true,
    atime: true,
};

fn inode_size(i: &Inode) -> u64 {
    i.i_size as u64 | (i.i_size_high as u64) << 32
}

fn uid_of(i: &Inode) -> u32 {
    // SAFETY: linux2 is the osd2 layout of every Linux-created inode; all fields are integers.
    let hi = unsafe { i.osd2.linux2.l_i_uid_high };
    i.i_uid as u32 | (hi as u32) << 16
}

fn gid_of(i: &Inode) -> u32 {
    // SAFETY: as in uid_of.
    let hi = unsafe { i.osd2.linux2.l_i_gid_high };
    i.i_gid as u32 | (hi as u32) << 16
}

fn protected(i: &Inode) -> bool {
    i.i_flags & (ffi::EXT2_IMMUTABLE_FL | ffi::EXT2_APPEND_FL) != 0
}

/// A name as libext2fs wants it (components never hold NUL: see [`components`]).
fn cname(name: &str) -> CString {
    CString::new(name).unwrap_or_default()
}

/// Where a path leads: its parent directory, its last name and, if that exists, its inode.
struct Found {
    parent: u32,
    /// None for "/".
    name: Option<CString>,
    ino: Option<u32>,
}

type DirFn<'a> = dyn FnMut(&mut ffi::ext2_dir_entry, &[u8]) -> c_int + 'a;

/// ext2fs_dir_iterate2 callback calling the closure behind `priv_data`.
unsafe extern "C" fn dir_trampoline(
    _dir: ffi::ext2_ino_t,
    _entry: c_int,
    dirent: *mut ffi::ext2_dir_entry,
    _offset: c_int,
    _blocksize: c_int,
    _buf: *mut c_char,
    priv_data: *mut c_void,
) -> c_int {
    if dirent.is_null() || priv_data.is_null() {
        return ffi::DIRENT_ABORT as c_int;
    }
    let f = &mut *(priv_data as *mut &mut DirFn);
    let d = &mut *dirent;
    // libext2fs checked name_len against rec_len before calling back; the low byte is the length.
    let len = (d.name_len & 0xff) as usize;
    let mut name = [0u8; MAX_NAME];
    for (o, c) in name.iter_mut().zip(d.name.iter()).take(len) {
        *o = *c as u8;
    }
    catch_unwind(AssertUnwindSafe(|| f(d, &name[..len]))).unwrap_or(ffi::DIRENT_ABORT as c_int)
}

/// What [`mark_block`] marks blocks in, and the first block it refused.
struct Marks {
    meta: ffi::ext2fs_block_bitmap,
    first: u64,
    count: u64,
    /// Blocks still allowed (a file maps at most as many blocks as the filesystem has).
    left: u64,
    bad: Option<u64>,
}

/// ext2fs_block_iterate3 callback: marks each block of the inode in `Marks::meta`.
unsafe extern "C" fn mark_block(
    _fs: ffi::ext2_filsys,
    blocknr: *mut ffi::blk64_t,
    _blockcnt: ffi::e2_blkcnt_t,
    _ref_blk: ffi::blk64_t,
    _ref_offset: c_int,
    priv_data: *mut c_void,
) -> c_int {
    if blocknr.is_null() || priv_data.is_null() {
        return ffi::BLOCK_ABORT as c_int;
    }
    let m = &mut *(priv_data as *mut Marks);
    let b = *blocknr;
    if b < m.first || b >= m.count || m.left == 0 {
        m.bad = Some(b);
        return ffi::BLOCK_ABORT as c_int;
    }
    m.left -= 1;
    ffi::ext2fs_mark_block_bitmap_range2(m.meta, b, 1);
    0
}

static ERROR_TABLE: Once = Once::new();

/// libext2fs's text for `code` (com_err's error_message: ext2 codes, else strerror).
fn error_text(code: Errcode) -> String {
    ERROR_TABLE.call_once(|| unsafe { ffi::initialize_ext2_error_table() });
    // SAFETY: error_message returns a NUL-terminated static (or thread-static) string.
    let p = unsafe { ffi::error_message(code as c_long) };
    if p.is_null() {
        return format!("error {code}");
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------------
// The filesystem handle.

/// One ext2/3/4 filesystem opened through libext2fs over a [`BlockIo`].
pub struct ExtFs {
    fs: ffi::ext2_filsys,
    shared: Arc<Shared>,
    refused: Option<String>,
    bitmaps: bool,
    /// An edit ran (so close must write bitmaps and superblock).
    changed: bool,
    /// The current edit has modified the filesystem: an error from here on breaks the handle.
    started: bool,
    broken: Option<String>,
}

// SAFETY: the ext2_filsys is owned by this handle and used from one thread at a time; libext2fs
// keeps no thread-local state for it and the BlockIo is Send.
unsafe impl Send for ExtFs {}

impl ExtFs {
    /// Opens the filesystem on `io`. Read-write when [`ExtFs::unsupported`] finds nothing;
    /// otherwise read-only (reads still work), or `Unsupported` if libext2fs cannot even read it.
    pub fn open(mut io: Box<dyn BlockIo>) -> Result<Self, ExtError> {
        ERROR_TABLE.call_once(|| unsafe { ffi::initialize_ext2_error_table() });
        let mut sbuf = vec![0u8; 1024];
        if io.size() < 2048 {
            return Err(ExtError::Corrupt {
                path: "/".into(),
                what: format!("{}-byte volume is too small for ext2", io.size()),
            });
        }
        io.read_at(&mut sbuf, 1024).map_err(|e| ExtError::Lib {
            path: "/".into(),
            op: "reading the superblock",
            code: 0,
            msg: e.to_string(),
        })?;
        if le16(&sbuf, sb::MAGIC) != EXT2_MAGIC {
            return Err(ExtError::Corrupt {
                path: "/".into(),
                what: "no ext2/3/4 superblock (bad magic)".into(),
            });
        }
        let refused = refusal(&sbuf, io.size());
        let shared = Arc::new(Shared::default());
        let chan = Box::new(Channel {
            io,
            shared: shared.clone(),
            name: CString::from(c"revirt-blockio"),
        });
        PENDING.with(|p| *p.borrow_mut() = Some(chan));
        let mut flags = ffi::EXT2_FLAG_64BITS | ffi::EXT2_FLAG_SKIP_MMP;
        if refused.is_none() {
            flags |= ffi::EXT2_FLAG_RW;
        }
        let mut fs: ffi::ext2_filsys = std::ptr::null_mut();
        // SAFETY: the manager is static; on success `fs` owns the channel io_open made.
        let rc = unsafe {
            ffi::ext2fs_open2(
                c"revirt-blockio".as_ptr(),
                std::ptr::null(),
                flags as c_int,
                0,
                0,
                &BLOCKIO_MANAGER.0 as *const _ as ffi::io_manager,
                &mut fs,
            )
        };
        PENDING.with(|p| p.borrow_mut().take());
        if rc != 0 || fs.is_null() {
            let mut msg = error_text(rc);
            if let Some(io) = shared
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                msg = format!("{msg} ({io})");
            }
            return Err(match refused {
                Some(what) => ExtError::Unsupported {
                    what: format!("{what} (and libext2fs cannot open it: {msg})"),
                },
                None => ExtError::Lib {
                    path: "/".into(),
                    op: "opening the filesystem",
                    code: rc as i64,
                    msg,
                },
            });
        }
        let mut me = ExtFs {
            fs,
            shared,
            refused,
            bitmaps: false,
            changed: false,
            started: false,
            broken: None,
        };
        if me.refused.is_none() {
            me.refused = me.metadata_marked_free();
        }
        Ok(me)
    }

    /// Why allocating blocks here could overwrite the filesystem's own metadata, or None. The
    /// block bitmap must mark in use every block of the superblocks and group descriptors
    /// (reserved GDT blocks included), the bitmaps, the inode tables, the journal and the resize
    /// inode: libext2fs hands out any block the bitmap says is free, where the kernel refuses
    /// (block_validity). Loads the bitmaps.
    fn metadata_marked_free(&mut self) -> Option<String> {
        // SAFETY: self.fs is open.
        let rc = unsafe { ffi::ext2fs_read_bitmaps(self.fs) };
        if rc != 0 {
            let e = self.lib_err("reading the allocation bitmaps", "/", rc);
            return Some(format!("the allocation bitmaps cannot be read ({e})"));
        }
        self.bitmaps = true;
        let mut meta: ffi::ext2fs_block_bitmap = std::ptr::null_mut();
        // SAFETY: allocates an empty bitmap the size of the filesystem, freed below.
        let rc =
            unsafe { ffi::ext2fs_allocate_block_bitmap(self.fs, c"metadata".as_ptr(), &mut meta) };
        if rc != 0 {
            return Some(format!("no memory for a block bitmap ({})", error_text(rc)));
        }
        let r = self
            .mark_metadata(meta)
            .and_then(|()| self.check_in_use(meta));
        // SAFETY: meta was allocated above and is not used after this.
        unsafe { ffi::ext2fs_free_block_bitmap(meta) };
        r.err()
    }

    /// Marks in `meta` the blocks of every group's superblock, descriptors, bitmaps and inode
    /// table (as e2fsck expects them), and of the resize and journal inodes.
    fn mark_metadata(&self, meta: ffi::ext2fs_block_bitmap) -> Result<(), String> {
        let fs = self.fs;
        let sb = self.sb();
        // SAFETY (this function): fs is open with its descriptors loaded; meta covers it.
        let first = sb.s_first_data_block as u64;
        let count = unsafe { ffi::ext2fs_blocks_count((*fs).super_) };
        let itable = unsafe { (*fs).inode_blocks_per_group };
        for g in 0..unsafe { (*fs).group_desc_count } {
            unsafe { ffi::ext2fs_reserve_super_and_bgd(fs, g, meta) };
            let locs = unsafe {
                [
                    ("block bitmap", ffi::ext2fs_block_bitmap_loc(fs, g), 1),
                    ("inode bitmap", ffi::ext2fs_inode_bitmap_loc(fs, g), 1),
                    ("inode table", ffi::ext2fs_inode_table_loc(fs, g), itable),
                ]
            };
            for (what, at, n) in locs {
                if at < first || at.checked_add(n as u64).is_none_or(|e| e > count) {
                    return Err(format!(
                        "group {g}'s {what} (block {at}) lies outside the filesystem"
                    ));
                }
                unsafe { ffi::ext2fs_mark_block_bitmap_range2(meta, at, n) };
            }
        }
        let mut special = vec![];
        if sb.s_feature_compat & ffi::EXT2_FEATURE_COMPAT_RESIZE_INODE != 0 {
            special.push(("resize inode", ffi::EXT2_RESIZE_INO));
        }
        if sb.s_feature_compat & ffi::EXT3_FEATURE_COMPAT_HAS_JOURNAL != 0 && sb.s_journal_inum != 0
        {
            special.push(("journal", sb.s_journal_inum));
        }
        for (what, ino) in special {
            if ino == 0 || ino > sb.s_inodes_count {
                return Err(format!("the {what} is inode {ino}, which does not exist"));
            }
            let mut m = Marks {
                meta,
                first,
                count,
                left: count,
                bad: None,
            };
            let rc = unsafe {
                ffi::ext2fs_block_iterate3(
                    fs,
                    ino,
                    ffi::BLOCK_FLAG_READ_ONLY as c_int,
                    std::ptr::null_mut(),
                    Some(mark_block),
                    &mut m as *mut Marks as *mut c_void,
                )
            };
            if let Some(b) = m.bad {
                return Err(format!(
                    "the {what} (inode {ino}) maps block {b}, outside the filesystem, or more blocks than it has"
                ));
            }
            if rc != 0 {
                let e = self.lib_err("listing the blocks", "/", rc);
                return Err(format!("the blocks of the {what} cannot be listed ({e})"));
            }
        }
        Ok(())
    }

    /// Errors if the block bitmap marks free a block that `meta` holds.
    fn check_in_use(&self, meta: ffi::ext2fs_block_bitmap) -> Result<(), String> {
        let fs = self.fs;
        // SAFETY (this function): fs is open with its bitmaps loaded; both bitmaps cover
        // [s_first_data_block, blocks_count).
        let end = unsafe { ffi::ext2fs_blocks_count((*fs).super_) }.saturating_sub(1);
        let mut at = self.sb().s_first_data_block as u64;
        while at <= end {
            let (mut start, mut stop, mut free) = (0, 0, 0);
            if unsafe { ffi::ext2fs_find_first_set_block_bitmap2(meta, at, end, &mut start) } != 0 {
                break;
            }
            let last = match unsafe {
                ffi::ext2fs_find_first_zero_block_bitmap2(meta, start, end, &mut stop)
            } {
                0 => stop - 1,
                _ => end,
            };
            let found = unsafe {
                ffi::ext2fs_find_first_zero_block_bitmap2((*fs).block_map, start, last, &mut free)
            };
            if found == 0 {
                return Err(format!(
                    "the block bitmap marks block {free} free, but the filesystem's own metadata is there (superblocks, group descriptors, bitmaps, inode tables, journal or resize inode): run e2fsck first"
                ));
            }
            at = last + 1;
        }
        Ok(())
    }

    /// Why revirt must not write this filesystem natively (needs_recovery, errors, quota,
    /// inline_data, encrypt, casefold, verity, MMP, an unknown feature bit, metadata the block
    /// bitmap calls free, ...), or None.
    pub fn unsupported(&self) -> Option<String> {
        self.refused.clone()
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u32 {
        // SAFETY: self.fs is open.
        unsafe { (*self.fs).blocksize }
    }

    /// Free blocks according to the superblock (as libext2fs keeps it up to date).
    pub fn free_blocks(&self) -> u64 {
        // SAFETY: self.fs is open and its super is valid while it is.
        unsafe { ffi::ext2fs_free_blocks_count((*self.fs).super_) }
    }

    fn sb(&self) -> &ffi::ext2_super_block {
        // SAFETY: self.fs is open and its super is valid while it is.
        unsafe { &*(*self.fs).super_ }
    }

    fn has_incompat(&self, bit: u32) -> bool {
        self.sb().s_feature_incompat & bit != 0
    }

    fn has_ro_compat(&self, bit: u32) -> bool {
        self.sb().s_feature_ro_compat & bit != 0
    }

    /// On-disk inode size (128 on revision 0).
    fn disk_inode_size(&self) -> usize {
        if self.sb().s_rev_level == 0 {
            128
        } else {
            self.sb().s_inode_size as usize
        }
    }

    fn lib_err(&self, op: &'static str, path: &str, code: Errcode) -> ExtError {
        let mut msg = error_text(code);
        let io = self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(io) = io {
            msg = format!("{msg} ({io})");
        }
        ExtError::Lib {
            path: path.into(),
            op,
            code,
            msg,
        }
    }

    fn check(&self, code: Errcode, op: &'static str, path: &str) -> Result<(), ExtError> {
        if code == 0 {
            Ok(())
        } else {
            Err(self.lib_err(op, path, code))
        }
    }

    /// Runs one edit: refuses unsupported or broken filesystems, loads the bitmaps, opens the
    /// write gate, and breaks the handle if the edit fails after it started changing things.
    fn edit<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, ExtError>) -> Result<T, ExtError> {
        if let Some(what) = &self.refused {
            return Err(ExtError::Unsupported { what: what.clone() });
        }
        if let Some(what) = &self.broken {
            return Err(ExtError::Broken { what: what.clone() });
        }
        if !self.bitmaps {
            // SAFETY: self.fs is open.
            let rc = unsafe { ffi::ext2fs_read_bitmaps(self.fs) };
            self.check(rc, "reading the allocation bitmaps", "/")?;
            self.bitmaps = true;
        }
        self.shared.writable.store(true, Ordering::SeqCst);
        self.fresh();
        self.started = false;
        let r = f(self);
        if self.started {
            self.changed = true;
        }
        if let (Err(e), true) = (&r, self.started) {
            self.broken = Some(e.to_string());
        }
        r
    }

    /// Forgets an I/O error text from an earlier call, so it is not pinned on a later error.
    fn fresh(&self) {
        *self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Marks the current edit as having changed the filesystem.
    fn begin(&mut self) {
        self.started = true;
    }

    fn read_inode(&self, ino: u32, path: &str) -> Result<Inode, ExtError> {
        let mut i = Inode::default();
        // SAFETY: `i` is a zeroed ext2_inode_large; bufsize is its size.
        let rc = unsafe {
            ffi::ext2fs_read_inode_full(
                self.fs,
                ino,
                &mut i as *mut Inode as *mut ffi::ext2_inode,
                std::mem::size_of::<Inode>() as c_int,
            )
        };
        self.check(rc, "reading the inode", path)?;
        Ok(i)
    }

    /// Writes `i` back; bytes past it on disk (in-inode xattrs) are kept by libext2fs's
    /// read-modify-write, and the inode checksum is recomputed.
    fn write_inode(&self, ino: u32, i: &mut Inode, path: &str) -> Result<(), ExtError> {
        // SAFETY: as in read_inode.
        let rc = unsafe {
            ffi::ext2fs_write_inode_full(
                self.fs,
                ino,
                i as *mut Inode as *mut ffi::ext2_inode,
                std::mem::size_of::<Inode>() as c_int,
            )
        };
        self.check(rc, "writing the inode", path)
    }

    /// Sets ctime (and mtime / atime) to now, with nanoseconds where the inode has room.
    fn stamp(&self, i: &mut Inode, which: Times) {
        let (secs, nsec) = now();
        let (lo, extra) = encode_time(secs, nsec);
        // An `_extra` field at byte `end - 4` exists if the inode's extra area reaches `end`.
        let room = |end: usize| {
            self.disk_inode_size() > 128 && 128 + i.i_extra_isize as usize >= end && end <= 160
        };
        i.i_ctime = lo;
        if room(0x88) {
            i.i_ctime_extra = extra;
        }
        if which.mtime {
            i.i_mtime = lo;
            if room(0x8c) {
                i.i_mtime_extra = extra;
            }
        }
        if which.atime {
            i.i_atime = lo;
            if room(0x90) {
                i.i_atime_extra = extra;
            }
        }
    }

    fn touch(&self, ino: u32, which: Times, path: &str) -> Result<(), ExtError> {
        let mut i = self.read_inode(ino, path)?;
        self.stamp(&mut i, which);
        self.write_inode(ino, &mut i, path)
    }

    /// `name` in directory `dir`, or None.
    fn lookup(&self, dir: u32, name: &CStr, path: &str) -> Result<Option<u32>, ExtError> {
        let mut ino: ffi::ext2_ino_t = 0;
        let len = name.to_bytes().len() as c_int;
        // SAFETY: name is NUL-terminated and `len` long.
        let rc = unsafe {
            ffi::ext2fs_lookup(
                self.fs,
                dir,
                name.as_ptr(),
                len,
                std::ptr::null_mut(),
                &mut ino,
            )
        };
        if rc == ffi::EXT2_ET_FILE_NOT_FOUND as Errcode {
            return Ok(None);
        }
        self.check(rc, "looking up a name", path)?;
        if ino == 0 || ino > self.sb().s_inodes_count {
            return Err(ExtError::Corrupt {
                path: path.into(),
                what: format!("directory entry points at inode {ino}"),
            });
        }
        Ok(Some(ino))
    }

    /// Walks `comps` from the root. Every component but the last must be a real directory
    /// (a symlink is an error, never followed); the last is looked up, not followed.
    fn walk(&self, path: &str, comps: &[&str]) -> Result<Found, ExtError> {
        let root = ffi::EXT2_ROOT_INO;
        let ri = self.read_inode(root, "/")?;
        if kind(ri.i_mode) != Kind::Dir {
            return Err(ExtError::Corrupt {
                path: "/".into(),
                what: "the root inode is not a directory".into(),
            });
        }
        let Some((last, dirs)) = comps.split_last() else {
            return Ok(Found {
                parent: root,
                name: None,
                ino: Some(root),
            });
        };
        let mut dir = root;
        for (n, comp) in dirs.iter().enumerate() {
            let here = join(&comps[..=n]);
            let Some(ino) = self.lookup(dir, &cname(comp), &here)? else {
                return Err(ExtError::NotFound { path: here });
            };
            let i = self.read_inode(ino, &here)?;
            match kind(i.i_mode) {
                Kind::Dir => dir = ino,
                Kind::Symlink => {
                    return Err(ExtError::Symlink {
                        path: path.into(),
                        at: here,
                    })
                }
                _ => return Err(ExtError::NotADirectory { path: here }),
            }
        }
        let name = cname(last);
        let ino = self.lookup(dir, &name, path)?;
        Ok(Found {
            parent: dir,
            name: Some(name),
            ino,
        })
    }

    /// Calls `f` on each live entry of directory `dir` (until it returns DIRENT_ABORT).
    fn iterate(
        &self,
        dir: u32,
        path: &str,
        mut f: impl FnMut(&mut ffi::ext2_dir_entry, &[u8]) -> c_int,
    ) -> Result<(), ExtError> {
        let mut fref: &mut DirFn = &mut f;
        // SAFETY: the trampoline only runs during this call, with priv_data = &mut fref.
        let rc = unsafe {
            ffi::ext2fs_dir_iterate2(
                self.fs,
                dir,
                0,
                std::ptr::null_mut(),
                Some(dir_trampoline),
                &mut fref as *mut &mut DirFn as *mut c_void,
            )
        };
        self.check(rc, "reading the directory", path)
    }

    /// Links `ino` into `dir` as `name`, growing a linear directory by a block when it is full,
    /// then sets the directory's mtime and ctime.
    fn link_into(
        &mut self,
        dir: u32,
        name: &CStr,
        ino: u32,
        ft: c_int,
        path: &str,
    ) -> Result<(), ExtError> {
        self.begin();
        let mut grown = false;
        loop {
            // SAFETY: name is NUL-terminated; dir and ino were checked by lookup/new_inode.
            let rc = unsafe { ffi::ext2fs_link(self.fs, dir, name.as_ptr(), ino, ft) };
            if rc == 0 {
                break;
            }
            if rc != ffi::EXT2_ET_DIR_NO_SPACE as Errcode || grown {
                return Err(self.lib_err("adding the directory entry", path, rc));
            }
            let d = self.read_inode(dir, path)?;
            if d.i_flags & ffi::EXT2_INDEX_FL != 0 {
                // dx_link already tried to grow the tree: a new unindexed block would corrupt it.
                return Err(self.lib_err("adding to the full htree directory", path, rc));
            }
            // SAFETY: dir is a directory inode.
            let rc = unsafe { ffi::ext2fs_expand_dir(self.fs, dir) };
            self.check(rc, "growing the directory", path)?;
            grown = true;
        }
        self.touch(dir, MCTIME, path)
    }

    /// Points the entry `name` of `dir` (now `old`) at `new`: replaces a file in one step.
    fn repoint(
        &mut self,
        dir: u32,
        name: &CStr,
        old: u32,
        new: u32,
        ft: c_int,
        path: &str,
    ) -> Result<(), ExtError> {
        self.begin();
        let want = name.to_bytes();
        let filetype = self.has_incompat(ffi::EXT2_FEATURE_INCOMPAT_FILETYPE);
        let mut done = false;
        self.iterate(dir, path, |d, n| {
            if n != want || d.inode != old {
                return 0;
            }
            d.inode = new;
            if filetype {
                // SAFETY: d is a live entry handed out by dir_iterate.
                unsafe { ffi::ext2fs_dirent_set_file_type(d, ft) };
            }
            done = true;
            (ffi::DIRENT_CHANGED | ffi::DIRENT_ABORT) as c_int
        })?;
        if !done {
            return Err(ExtError::Corrupt {
                path: path.into(),
                what: "the directory entry vanished while it was replaced".into(),
            });
        }
        self.touch(dir, MCTIME, path)
    }

    fn unlink(&mut self, dir: u32, name: &CStr, ino: u32, path: &str) -> Result<(), ExtError> {
        self.begin();
        // SAFETY: name is NUL-terminated.
        let rc = unsafe { ffi::ext2fs_unlink(self.fs, dir, name.as_ptr(), ino, 0) };
        self.check(rc, "removing the directory entry", path)?;
        self.touch(dir, MCTIME, path)
    }

    /// Checks that directory `dir` can take one more subdirectory link.
    fn check_subdir_room(&self, dir: u32, path: &str) -> Result<(), ExtError> {
        let d = self.read_inode(dir, path)?;
        let nlink = self.has_ro_compat(ffi::EXT4_FEATURE_RO_COMPAT_DIR_NLINK);
        if d.i_links_count != 1 && d.i_links_count as u32 >= ffi::EXT2_LINK_MAX && !nlink {
            return Err(ExtError::TooManyLinks { path: path.into() });
        }
        Ok(())
    }

    /// A new subdirectory's ".." was added to `dir`: count it as the kernel does (dir_nlink: a
    /// count past 65000, or an already overflowed 1, stays 1).
    fn fix_subdir_links(&mut self, dir: u32, before: u16, path: &str) -> Result<(), ExtError> {
        let mut d = self.read_inode(dir, path)?;
        d.i_links_count = if before == 1 || before as u32 >= ffi::EXT2_LINK_MAX {
            1
        } else {
            before + 1
        };
        self.write_inode(dir, &mut d, path)
    }

    /// One subdirectory left `dir` (the kernel leaves counts of 2 or less alone).
    fn drop_subdir_link(&mut self, dir: u32, path: &str) -> Result<(), ExtError> {
        let mut d = self.read_inode(dir, path)?;
        if d.i_links_count > 2 {
            d.i_links_count -= 1;
            self.write_inode(dir, &mut d, path)?;
        }
        Ok(())
    }

    /// One name of `ino` is gone: decrement its link count, freeing it at zero.
    fn drop_link(&mut self, ino: u32, path: &str) -> Result<(), ExtError> {
        self.begin();
        let mut i = self.read_inode(ino, path)?;
        if i.i_links_count > 1 && kind(i.i_mode) != Kind::Dir {
            i.i_links_count -= 1;
            self.stamp(&mut i, CTIME);
            return self.write_inode(ino, &mut i, path);
        }
        self.free_inode(ino, path)
    }

    /// Frees `ino` as the kernel's evict does: data and mapping blocks, its share of an xattr
    /// block, then the inode itself (links 0, dtime now).
    fn free_inode(&mut self, ino: u32, path: &str) -> Result<(), ExtError> {
        self.begin();
        let mut i = self.read_inode(ino, path)?;
        let ip = &mut i as *mut Inode as *mut ffi::ext2_inode;
        // SAFETY: ip points at a valid inode image for the calls below.
        if unsafe { ffi::ext2fs_inode_has_valid_blocks2(self.fs, ip) } != 0 {
            let rc = unsafe { ffi::ext2fs_punch(self.fs, ino, ip, std::ptr::null_mut(), 0, !0) };
            self.check(rc, "freeing the blocks", path)?;
        }
        let mut i = self.read_inode(ino, path)?;
        let ip = &mut i as *mut Inode as *mut ffi::ext2_inode;
        // SAFETY: as above.
        let ea = unsafe { ffi::ext2fs_file_acl_block(self.fs, ip) };
        if ea != 0 {
            let sb = self.sb();
            let blocks = sb.s_blocks_count as u64 | (sb.s_blocks_count_hi as u64) << 32;
            if ea <= sb.s_first_data_block as u64 || ea >= blocks {
                return Err(ExtError::Corrupt {
                    path: path.into(),
                    what: format!("xattr block {ea} is outside the filesystem"),
                });
            }
            let mut left: u32 = 0;
            // SAFETY: ea is in range; libext2fs reads, checks and rewrites the block.
            let rc = unsafe {
                ffi::ext2fs_adjust_ea_refcount3(
                    self.fs,
                    ea,
                    std::ptr::null_mut(),
                    -1,
                    &mut left,
                    ino,
                )
            };
            self.check(rc, "releasing the xattr block", path)?;
            if left == 0 {
                unsafe { ffi::ext2fs_block_alloc_stats2(self.fs, ea, -1) };
            }
            unsafe { ffi::ext2fs_file_acl_block_set(self.fs, ip, 0) };
        }
        let isdir = kind(i.i_mode) == Kind::Dir;
        let (secs, _) = now();
        i.i_links_count = 0;
        i.i_dtime = encode_time(secs, 0).0;
        i.i_size = 0;
        i.i_size_high = 0;
        i.i_blocks = 0;
        i.osd2.linux2.l_i_blocks_hi = 0;
        self.stamp(&mut i, MCTIME);
        self.write_inode(ino, &mut i, path)?;
        // SAFETY: ino is an allocated inode being released.
        unsafe { ffi::ext2fs_inode_alloc_stats2(self.fs, ino, -1, isdir as c_int) };
        Ok(())
    }

    /// A new inode number near `parent` for an inode of `mode`.
    fn new_ino(&self, parent: u32, mode: u32, path: &str) -> Result<u32, ExtError> {
        let mut ino: ffi::ext2_ino_t = 0;
        // SAFETY: plain allocation query on the loaded bitmaps.
        let rc = unsafe {
            ffi::ext2fs_new_inode(
                self.fs,
                parent,
                mode as c_int,
                std::ptr::null_mut(),
                &mut ino,
            )
        };
        self.check(rc, "allocating an inode", path)?;
        // The inode bitmap may call free an inode a file still uses (e2fsck goes by the link
        // count, in the part of each inode table that was ever initialised): never reuse it.
        let ipg = self.sb().s_inodes_per_group;
        let csum = ffi::EXT4_FEATURE_RO_COMPAT_GDT_CSUM | ffi::EXT4_FEATURE_RO_COMPAT_METADATA_CSUM;
        let unused = match self.has_ro_compat(csum) {
            // SAFETY: the group of an inode libext2fs just allocated exists.
            true => unsafe { ffi::ext2fs_bg_itable_unused(self.fs, (ino - 1) / ipg) },
            false => 0,
        };
        if (ino - 1) % ipg < ipg.saturating_sub(unused) {
            let old = self.read_inode(ino, path)?;
            if old.i_links_count != 0 {
                return Err(ExtError::Corrupt {
                    path: path.into(),
                    what: format!(
                        "inode {ino} is free in the inode bitmap but has {} link(s): run e2fsck first",
                        old.i_links_count
                    ),
                });
            }
        }
        Ok(ino)
    }

    /// Fails before any change if `len` bytes (replacing a file that holds `held` blocks) do not
    /// fit: data blocks plus ~1% for extent or indirect blocks.
    fn check_space(&self, len: u64, held: u64, path: &str) -> Result<(), ExtError> {
        let bs = self.block_size() as u64;
        let data = len.div_ceil(bs);
        let need = data + data / 100 + 4;
        let free = self.free_blocks() + held;
        if need > free {
            return Err(ExtError::NoSpace {
                path: path.into(),
                need,
                free,
            });
        }
        Ok(())
    }

    /// Replaces the contents of regular file `ino` with `data` (truncate, write, size).
    fn write_data(&mut self, ino: u32, data: &[u8], path: &str) -> Result<(), ExtError> {
        self.begin();
        let mut file: ffi::ext2_file_t = std::ptr::null_mut();
        // SAFETY: ino is a regular file inode.
        let rc = unsafe {
            ffi::ext2fs_file_open(self.fs, ino, ffi::EXT2_FILE_WRITE as c_int, &mut file)
        };
        self.check(rc, "opening the file", path)?;
        let r = self.write_open_file(file, ino, data, path);
        // SAFETY: file is open; close writes the inode and flushes its buffer.
        let rc = unsafe { ffi::ext2fs_file_close(file) };
        r?;
        self.check(rc, "closing the file", path)
    }

    fn write_open_file(
        &self,
        file: ffi::ext2_file_t,
        ino: u32,
        data: &[u8],
        path: &str,
    ) -> Result<(), ExtError> {
        let bs = self.block_size() as usize;
        // SAFETY (this function): file is open for writing on inode `ino`; every buffer is
        // valid for the length passed with it.
        let rc = unsafe { ffi::ext2fs_file_set_size2(file, 0) };
        self.check(rc, "truncating the file", path)?;
        // Extent files get all their blocks mapped up front, as a few initialized extents
        // (every block is written below). Block by block, ext2fs_file_write would zero each new
        // block and rewrite the inode: 4 writes per block instead of 1.
        let inode = unsafe { ffi::ext2fs_file_get_inode(file) };
        let blocks = data.len().div_ceil(bs) as u64;
        if blocks > 0 && !inode.is_null() && unsafe { (*inode).i_flags } & ffi::EXT4_EXTENTS_FL != 0
        {
            let flags = ffi::EXT2_FALLOCATE_FORCE_INIT as c_int;
            let rc = unsafe { ffi::ext2fs_fallocate(self.fs, flags, ino, inode, !0, 0, blocks) };
            self.check(rc, "allocating the file's blocks", path)?;
        }
        // The last partial block goes out padded with zeros, so no stale bytes of a block that
        // was someone else's remain past the end of the file.
        let full = data.len() - data.len() % bs;
        let mut tail = vec![];
        if full < data.len() {
            tail = data[full..].to_vec();
            tail.resize(bs, 0);
        }
        for chunk in data[..full].chunks(CHUNK).chain(std::iter::once(&tail[..])) {
            if chunk.is_empty() {
                continue;
            }
            let mut written: c_uint = 0;
            let rc = unsafe {
                ffi::ext2fs_file_write(
                    file,
                    chunk.as_ptr() as *const c_void,
                    chunk.len() as c_uint,
                    &mut written,
                )
            };
            self.check(rc, "writing the file", path)?;
            if written as usize != chunk.len() {
                return Err(ExtError::Corrupt {
                    path: path.into(),
                    what: format!("short write: {written} of {} bytes", chunk.len()),
                });
            }
        }
        let rc = unsafe { ffi::ext2fs_file_set_size2(file, data.len() as ffi::ext2_off64_t) };
        self.check(rc, "setting the file size", path)
    }

    /// Creates, fills and links a new regular file `name` in `parent`.
    fn create_file(
        &mut self,
        parent: u32,
        name: &CStr,
        data: &[u8],
        meta: NewMeta,
        path: &str,
    ) -> Result<(), ExtError> {
        let mode = ffi::LINUX_S_IFREG | (meta.mode & 0o7777);
        let ino = self.new_ino(parent, mode, path)?;
        let (secs, _) = now();
        let t = encode_time(secs, 0).0;
        let mut i = Inode {
            i_mode: mode as u16,
            i_uid: meta.uid as u16,
            i_gid: meta.gid as u16,
            i_links_count: 1,
            i_atime: t,
            i_ctime: t,
            i_mtime: t,
            ..Default::default()
        };
        i.osd2.linux2.l_i_uid_high = (meta.uid >> 16) as u16;
        i.osd2.linux2.l_i_gid_high = (meta.gid >> 16) as u16;
        let ip = &mut i as *mut Inode as *mut ffi::ext2_inode;
        if self.has_incompat(ffi::EXT3_FEATURE_INCOMPAT_EXTENTS) {
            let mut h: ffi::ext2_extent_handle_t = std::ptr::null_mut();
            // SAFETY: with an all-zero i_block, extent_open2 writes an empty extent header into
            // `i` and sets EXTENTS_FL; the handle is freed at once.
            let rc = unsafe { ffi::ext2fs_extent_open2(self.fs, ino, ip, &mut h) };
            self.check(rc, "setting up the extent tree", path)?;
            unsafe { ffi::ext2fs_extent_free(h) };
        }
        self.begin();
        // SAFETY: ip is a complete inode image; write_new_inode sets extra_isize and crtime.
        let rc = unsafe { ffi::ext2fs_write_new_inode(self.fs, ino, ip) };
        self.check(rc, "writing the new inode", path)?;
        unsafe { ffi::ext2fs_inode_alloc_stats2(self.fs, ino, 1, 0) };
        let r = self
            .write_data(ino, data, path)
            .and_then(|_| self.touch(ino, ALL_TIMES, path))
            .and_then(|_| self.link_into(parent, name, ino, ffi::EXT2_FT_REG_FILE as c_int, path));
        if r.is_err() {
            let _ = self.free_inode(ino, path);
        }
        r
    }

    /// Writes `data` to the regular file at `path`. An existing file keeps its inode (mode,
    /// owner, xattrs such as security.selinux, links) and gets new contents, mtime and ctime; a
    /// missing one is created with `new` (extent-mapped on extent filesystems) and linked into
    /// its parent, which must exist. A symlink at `path` is an error (resolve it first).
    pub fn write_file(&mut self, path: &str, data: &[u8], new: NewMeta) -> Result<(), ExtError> {
        let comps = components(path)?;
        if data.len() as u64 > MAX_WRITE {
            return Err(ExtError::TooLarge {
                path: path.into(),
                size: data.len() as u64,
                limit: MAX_WRITE,
            });
        }
        self.edit(|s| {
            let f = s.walk(path, &comps)?;
            let Some(name) = f.name else {
                return Err(ExtError::IsADirectory { path: path.into() });
            };
            let Some(ino) = f.ino else {
                s.check_space(data.len() as u64, 0, path)?;
                return s.create_file(f.parent, &name, data, new, path);
            };
            let i = s.read_inode(ino, path)?;
            match kind(i.i_mode) {
                Kind::File => {}
                Kind::Dir => return Err(ExtError::IsADirectory { path: path.into() }),
                Kind::Symlink => {
                    return Err(ExtError::Symlink {
                        path: path.into(),
                        at: path.into(),
                    })
                }
                Kind::Other => return Err(ExtError::NotRegular { path: path.into() }),
            }
            if protected(&i) {
                return Err(ExtError::Immutable { path: path.into() });
            }
            let held = (i.i_blocks as u64 * 512) / s.block_size() as u64;
            s.check_space(data.len() as u64, held, path)?;
            s.write_data(ino, data, path)?;
            s.touch(ino, MCTIME, path)
        })
    }

    /// Creates `dir` named `name` in `parent` with permission bits `mode`.
    fn make_dir(
        &mut self,
        parent: u32,
        name: &CStr,
        mode: u32,
        path: &str,
    ) -> Result<u32, ExtError> {
        self.check_subdir_room(parent, path)?;
        let before = self.read_inode(parent, path)?.i_links_count;
        let ino = self.new_ino(parent, ffi::LINUX_S_IFDIR | 0o755, path)?;
        self.begin();
        // SAFETY: with a NULL name ext2fs_mkdir builds and accounts the directory (one block,
        // "." and "..") and bumps the parent's count, but links nothing: link_into does that.
        let rc = unsafe { ffi::ext2fs_mkdir(self.fs, parent, ino, std::ptr::null()) };
        self.check(rc, "creating the directory", path)?;
        let r = self
            .fix_subdir_links(parent, before, path)
            .and_then(|_| self.link_into(parent, name, ino, ffi::EXT2_FT_DIR as c_int, path));
        if let Err(e) = r {
            let _ = self.free_inode(ino, path);
            if let Ok(mut d) = self.read_inode(parent, path) {
                d.i_links_count = before;
                let _ = self.write_inode(parent, &mut d, path);
            }
            return Err(e);
        }
        let mut i = self.read_inode(ino, path)?;
        i.i_mode = (ffi::LINUX_S_IFDIR | (mode & 0o7777)) as u16;
        self.stamp(&mut i, ALL_TIMES);
        self.write_inode(ino, &mut i, path)?;
        Ok(ino)
    }

    /// `mkdir -p`: creates each missing directory of `path` with permission bits `mode` (all of
    /// them, not only the last), owned by root. Existing directories are left as they are.
    pub fn mkdir_p(&mut self, path: &str, mode: u32) -> Result<(), ExtError> {
        let comps = components(path)?;
        self.edit(|s| {
            s.walk(path, &[])?;
            let mut dir = ffi::EXT2_ROOT_INO;
            for n in 0..comps.len() {
                let here = join(&comps[..=n]);
                let name = cname(comps[n]);
                dir = match s.lookup(dir, &name, &here)? {
                    Some(ino) => match kind(s.read_inode(ino, &here)?.i_mode) {
                        Kind::Dir => ino,
                        Kind::Symlink => {
                            return Err(ExtError::Symlink {
                                path: path.into(),
                                at: here,
                            })
                        }
                        _ => return Err(ExtError::NotADirectory { path: here }),
                    },
                    None => s.make_dir(dir, &name, mode, &here)?,
                };
            }
            Ok(())
        })
    }

    /// `ln -sfn target path`: a fast symlink (in the inode) below 60 bytes, else one block.
    /// Replaces a file or symlink at `path`; refuses a directory.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), ExtError> {
        let comps = components(path)?;
        if target.is_empty() || target.contains('\0') {
            return Err(ExtError::Invalid {
                path: path.into(),
                why: "empty symlink target or NUL in it".into(),
            });
        }
        if target.len() >= self.block_size() as usize || target.len() > MAX_PATH {
            return Err(ExtError::TooLarge {
                path: path.into(),
                size: target.len() as u64,
                limit: (self.block_size() as u64 - 1).min(MAX_PATH as u64),
            });
        }
        let ctarget = cname(target);
        self.edit(|s| {
            let f = s.walk(path, &comps)?;
            let Some(name) = f.name else {
                return Err(ExtError::IsADirectory { path: path.into() });
            };
            if let Some(old) = f.ino {
                let i = s.read_inode(old, path)?;
                if kind(i.i_mode) == Kind::Dir {
                    return Err(ExtError::IsADirectory { path: path.into() });
                }
                if protected(&i) {
                    return Err(ExtError::Immutable { path: path.into() });
                }
            }
            s.check_space(target.len() as u64, 0, path)?;
            let ino = s.new_ino(f.parent, ffi::LINUX_S_IFLNK | 0o777, path)?;
            s.begin();
            // SAFETY: with a NULL name ext2fs_symlink builds and accounts the inode (and block
            // for a slow link) without linking it.
            let rc = unsafe {
                ffi::ext2fs_symlink(s.fs, f.parent, ino, std::ptr::null(), ctarget.as_ptr())
            };
            s.check(rc, "creating the symlink", path)?;
            let ft = ffi::EXT2_FT_SYMLINK as c_int;
            let r = s.touch(ino, ALL_TIMES, path).and_then(|_| match f.ino {
                Some(old) => s
                    .repoint(f.parent, &name, old, ino, ft, path)
                    .and_then(|_| s.drop_link(old, path)),
                None => s.link_into(f.parent, &name, ino, ft, path),
            });
            if r.is_err() {
                let _ = s.free_inode(ino, path);
            }
            r
        })
    }

    /// rename(2) within this filesystem, never following symlinks. A file or symlink at `to` is
    /// replaced (and freed if that was its last name); a directory at `to` is refused. Moving a
    /// directory to another parent updates its ".." and both parents' link counts.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), ExtError> {
        let fc = components(from)?;
        let tc = components(to)?;
        if fc == tc {
            return Ok(());
        }
        if fc.is_empty() || tc.is_empty() {
            return Err(ExtError::Invalid {
                path: from.into(),
                why: "cannot rename the root directory".into(),
            });
        }
        self.edit(|s| {
            let src = s.walk(from, &fc)?;
            let (Some(sname), Some(sino)) = (src.name, src.ino) else {
                return Err(ExtError::NotFound { path: from.into() });
            };
            let si = s.read_inode(sino, from)?;
            let sdir = kind(si.i_mode) == Kind::Dir;
            if protected(&si) {
                return Err(ExtError::Immutable { path: from.into() });
            }
            if sdir && tc.starts_with(&fc) {
                return Err(ExtError::Invalid {
                    path: to.into(),
                    why: format!("cannot move {from} into itself"),
                });
            }
            let dst = s.walk(to, &tc)?;
            let Some(dname) = dst.name else {
                return Err(ExtError::IsADirectory { path: to.into() });
            };
            let ft = dirent_type(si.i_mode);
            let moves_dir = sdir && src.parent != dst.parent;
            if moves_dir {
                s.check_subdir_room(dst.parent, to)?;
            }
            match dst.ino {
                Some(t) if t == sino => return Ok(()),
                Some(t) => {
                    let ti = s.read_inode(t, to)?;
                    if kind(ti.i_mode) == Kind::Dir {
                        return Err(ExtError::IsADirectory { path: to.into() });
                    }
                    if sdir {
                        return Err(ExtError::NotADirectory { path: to.into() });
                    }
                    if protected(&ti) {
                        return Err(ExtError::Immutable { path: to.into() });
                    }
                    s.repoint(dst.parent, &dname, t, sino, ft, to)?;
                    s.drop_link(t, to)?;
                }
                None => s.link_into(dst.parent, &dname, sino, ft, to)?,
            }
            s.unlink(src.parent, &sname, sino, from)?;
            if moves_dir {
                s.set_dotdot(sino, dst.parent, to)?;
                s.drop_subdir_link(src.parent, from)?;
                let before = s.read_inode(dst.parent, to)?.i_links_count;
                s.fix_subdir_links(dst.parent, before, to)?;
            }
            s.touch(sino, CTIME, to)
        })
    }

    /// Points the ".." entry of directory `dir` at `parent`.
    fn set_dotdot(&mut self, dir: u32, parent: u32, path: &str) -> Result<(), ExtError> {
        let mut done = false;
        self.iterate(dir, path, |d, n| {
            if n != b".." {
                return 0;
            }
            d.inode = parent;
            done = true;
            (ffi::DIRENT_CHANGED | ffi::DIRENT_ABORT) as c_int
        })?;
        if !done {
            return Err(ExtError::Corrupt {
                path: path.into(),
                what: "directory has no '..' entry".into(),
            });
        }
        Ok(())
    }

    /// chmod(2) on `path` without following a final symlink (an error: resolve it first):
    /// permission bits become `mode & 0o7777`, the file type stays, ctime is now.
    pub fn chmod(&mut self, path: &str, mode: u32) -> Result<(), ExtError> {
        let comps = components(path)?;
        self.edit(|s| {
            let f = s.walk(path, &comps)?;
            let Some(ino) = f.ino else {
                return Err(ExtError::NotFound { path: path.into() });
            };
            let mut i = s.read_inode(ino, path)?;
            if kind(i.i_mode) == Kind::Symlink {
                return Err(ExtError::Symlink {
                    path: path.into(),
                    at: path.into(),
                });
            }
            if protected(&i) {
                return Err(ExtError::Immutable { path: path.into() });
            }
            i.i_mode = (i.i_mode as u32 & ffi::LINUX_S_IFMT | (mode & 0o7777)) as u16;
            s.stamp(&mut i, CTIME);
            s.begin();
            s.write_inode(ino, &mut i, path)
        })
    }

    /// `rm -f path`: unlinks a non-directory (a final symlink itself); the inode and its blocks
    /// are freed when that was its last name. A missing path (or parent) is Ok.
    pub fn remove(&mut self, path: &str) -> Result<(), ExtError> {
        let comps = components(path)?;
        self.edit(|s| {
            let f = match s.walk(path, &comps) {
                Err(ExtError::NotFound { .. }) => return Ok(()),
                r => r?,
            };
            let (Some(name), Some(ino)) = (f.name, f.ino) else {
                return match f.ino {
                    None => Ok(()),
                    Some(_) => Err(ExtError::IsADirectory { path: path.into() }),
                };
            };
            let i = s.read_inode(ino, path)?;
            if kind(i.i_mode) == Kind::Dir {
                return Err(ExtError::IsADirectory { path: path.into() });
            }
            if protected(&i) {
                return Err(ExtError::Immutable { path: path.into() });
            }
            s.unlink(f.parent, &name, ino, path)?;
            s.drop_link(ino, path)
        })
    }

    /// rmdir(2): removes an empty directory (not a symlink to one).
    pub fn rmdir(&mut self, path: &str) -> Result<(), ExtError> {
        let comps = components(path)?;
        if comps.is_empty() {
            return Err(ExtError::Invalid {
                path: path.into(),
                why: "cannot remove the root directory".into(),
            });
        }
        self.edit(|s| {
            let f = s.walk(path, &comps)?;
            let (Some(name), Some(ino)) = (f.name, f.ino) else {
                return Err(ExtError::NotFound { path: path.into() });
            };
            let i = s.read_inode(ino, path)?;
            if kind(i.i_mode) != Kind::Dir {
                return Err(ExtError::NotADirectory { path: path.into() });
            }
            if protected(&i) {
                return Err(ExtError::Immutable { path: path.into() });
            }
            let mut empty = true;
            s.iterate(ino, path, |d, n| {
                if d.inode == 0 || n == b"." || n == b".." {
                    return 0;
                }
                empty = false;
                ffi::DIRENT_ABORT as c_int
            })?;
            if !empty {
                return Err(ExtError::NotEmpty { path: path.into() });
            }
            s.unlink(f.parent, &name, ino, path)?;
            s.free_inode(ino, path)?;
            s.drop_subdir_link(f.parent, path)
        })
    }

    /// lstat(2): None if `path` (or a parent) does not exist.
    pub fn lstat(&self, path: &str) -> Result<Option<Stat>, ExtError> {
        self.fresh();
        let comps = components(path)?;
        let f = match self.walk(path, &comps) {
            Err(ExtError::NotFound { .. }) => return Ok(None),
            r => r?,
        };
        let Some(ino) = f.ino else { return Ok(None) };
        let i = self.read_inode(ino, path)?;
        Ok(Some(Stat {
            ino,
            kind: kind(i.i_mode),
            mode: i.i_mode as u32,
            uid: uid_of(&i),
            gid: gid_of(&i),
            size: inode_size(&i),
            links: i.i_links_count,
        }))
    }

    /// The whole regular file at `path`; `TooLarge` above `limit` bytes. A symlink is an error.
    pub fn read_file(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, ExtError> {
        self.fresh();
        let comps = components(path)?;
        let f = self.walk(path, &comps)?;
        let Some(ino) = f.ino else {
            return Err(ExtError::NotFound { path: path.into() });
        };
        let i = self.read_inode(ino, path)?;
        match kind(i.i_mode) {
            Kind::File => {}
            Kind::Dir => return Err(ExtError::IsADirectory { path: path.into() }),
            Kind::Symlink => {
                return Err(ExtError::Symlink {
                    path: path.into(),
                    at: path.into(),
                })
            }
            Kind::Other => return Err(ExtError::NotRegular { path: path.into() }),
        }
        let size = inode_size(&i);
        if size > limit || usize::try_from(size).is_err() {
            return Err(ExtError::TooLarge {
                path: path.into(),
                size,
                limit,
            });
        }
        self.read_inode_data(ino, size as usize, path)
    }

    /// The first `size` bytes of inode `ino`'s data (holes read as zeros).
    fn read_inode_data(&self, ino: u32, size: usize, path: &str) -> Result<Vec<u8>, ExtError> {
        let mut file: ffi::ext2_file_t = std::ptr::null_mut();
        // SAFETY: read-only open of an inode that exists.
        let rc = unsafe { ffi::ext2fs_file_open(self.fs, ino, 0, &mut file) };
        self.check(rc, "opening the file", path)?;
        let mut out = vec![0u8; size];
        let mut at = 0;
        let mut r = Ok(());
        while at < size {
            let want = (size - at).min(CHUNK);
            let mut got: c_uint = 0;
            // SAFETY: out[at..at + want] is valid for writes.
            let rc = unsafe {
                ffi::ext2fs_file_read(
                    file,
                    out[at..].as_mut_ptr() as *mut c_void,
                    want as c_uint,
                    &mut got,
                )
            };
            if rc != 0 {
                r = Err(self.lib_err("reading the file", path, rc));
                break;
            }
            if got == 0 {
                r = Err(ExtError::Corrupt {
                    path: path.into(),
                    what: format!("file ends at byte {at} of {size}"),
                });
                break;
            }
            at += got as usize;
        }
        // SAFETY: file is open.
        unsafe { ffi::ext2fs_file_close(file) };
        r.map(|_| out)
    }

    /// readlink(2) on `path` (which must be a symlink).
    pub fn read_link(&self, path: &str) -> Result<String, ExtError> {
        self.fresh();
        let comps = components(path)?;
        let f = self.walk(path, &comps)?;
        let Some(ino) = f.ino else {
            return Err(ExtError::NotFound { path: path.into() });
        };
        let mut i = self.read_inode(ino, path)?;
        if kind(i.i_mode) != Kind::Symlink {
            return Err(ExtError::Invalid {
                path: path.into(),
                why: "not a symbolic link".into(),
            });
        }
        let size = inode_size(&i);
        if size == 0 || size >= self.block_size() as u64 {
            return Err(ExtError::Corrupt {
                path: path.into(),
                what: format!("symlink of {size} bytes"),
            });
        }
        let ip = &mut i as *mut Inode as *mut ffi::ext2_inode;
        // SAFETY: ip is a valid inode image.
        let slow = unsafe { ffi::ext2fs_inode_has_valid_blocks2(self.fs, ip) } != 0;
        let bytes = if slow {
            self.read_inode_data(ino, size as usize, path)?
        } else {
            if size as usize > std::mem::size_of_val(&i.i_block) {
                return Err(ExtError::Corrupt {
                    path: path.into(),
                    what: format!("fast symlink of {size} bytes"),
                });
            }
            let raw: Vec<u8> = i.i_block.iter().flat_map(|w| w.to_le_bytes()).collect();
            raw[..size as usize].to_vec()
        };
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Writes bitmaps, group descriptors and superblocks (if anything was edited), flushes the
    /// BlockIo and frees the handle. Errors if an earlier edit broke the filesystem.
    pub fn close(mut self) -> Result<(), ExtError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ExtError> {
        if self.fs.is_null() {
            return Ok(());
        }
        if !self.changed {
            // Nothing was edited: make sure close writes nothing at all.
            let clean = ffi::EXT2_FLAG_DIRTY | ffi::EXT2_FLAG_BB_DIRTY | ffi::EXT2_FLAG_IB_DIRTY;
            // SAFETY: self.fs is open.
            unsafe { (*self.fs).flags &= !(clean as c_int) };
            self.shared.writable.store(false, Ordering::SeqCst);
        }
        // SAFETY: close_free frees the handle whatever it returns and nulls the pointer.
        let rc = unsafe { ffi::ext2fs_close_free(&mut self.fs) };
        self.fs = std::ptr::null_mut();
        if rc != 0 {
            let mut msg = error_text(rc);
            if let Some(io) = self
                .shared
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                msg = format!("{msg} ({io})");
            }
            return Err(ExtError::Lib {
                path: "/".into(),
                op: "closing (writing bitmaps, group descriptors and superblocks)",
                code: rc as i64,
                msg,
            });
        }
        match &self.broken {
            Some(what) => Err(ExtError::Broken { what: what.clone() }),
            None => Ok(()),
        }
    }
}

impl Drop for ExtFs {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("ext2fs: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::GuestFs;
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// A BlockIo over a file, the filesystem starting `off` bytes in.
    struct FileIo {
        f: std::fs::File,
        off: u64,
        size: u64,
    }

    impl BlockIo for FileIo {
        fn size(&self) -> u64 {
            self.size
        }
        fn read_at(&mut self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
            self.f.read_exact_at(buf, self.off + off)
        }
        fn write_at(&mut self, buf: &[u8], off: u64) -> std::io::Result<()> {
            self.f.write_all_at(buf, self.off + off)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.f.sync_data()
        }
    }

    fn run(cmd: &str, args: &[&str]) -> (i32, Vec<u8>, String) {
        let out = Command::new(cmd).args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn tools() -> bool {
        for t in ["mkfs.ext4", "debugfs", "e2fsck"] {
            if Command::new(t).arg("-V").output().is_err() {
                eprintln!("skipping: host tool {t} not found (apt-get install e2fsprogs)");
                return false;
            }
        }
        true
    }

    fn noise(seed: u64, n: usize) -> Vec<u8> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    /// Guard bytes around an embedded filesystem.
    const GUARD: u64 = (1 << 20) + 3 * 4096;

    /// A filesystem image made by mkfs.ext4 -d, optionally embedded at an offset in a bigger
    /// file (`outer`) that the BlockIo sees; `path` is what e2fsprogs and the reader check.
    struct Img {
        dir: tempfile::TempDir,
        path: PathBuf,
        outer: Option<PathBuf>,
        len: u64,
    }

    fn mkimg(args: &[&str], size: &str, fill: impl FnOnce(&Path)) -> Img {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        fill(&tree);
        let path = dir.path().join("fs.img");
        let (p, t) = (path.to_str().unwrap(), tree.to_str().unwrap());
        let (code, _, err) = run(
            "mkfs.ext4",
            &[&["-q", "-F"], args, &["-d", t, p, size]].concat(),
        );
        assert_eq!(code, 0, "mkfs.ext4 {args:?}: {err}");
        let len = std::fs::metadata(&path).unwrap().len();
        Img {
            dir,
            path,
            outer: None,
            len,
        }
    }

    fn put(root: &Path, rel: &str, data: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    #[derive(Debug)]
    struct DStat {
        ino: u32,
        mode: u32,
        flags: u32,
        uid: u32,
        gid: u32,
        links: u32,
        size: u64,
        blockcount: u64,
        text: String,
    }

    impl Img {
        /// Moves the filesystem GUARD bytes into a bigger file between guard patterns.
        fn embed(&mut self) {
            let outer = self.dir.path().join("disk.img");
            let mut v = vec![0xa5; GUARD as usize];
            v.extend(std::fs::read(&self.path).unwrap());
            v.extend(vec![0x5a; GUARD as usize]);
            std::fs::write(&outer, v).unwrap();
            self.outer = Some(outer);
        }
        /// After an edit through the outer file: checks the guards, copies the fs back to `path`.
        fn settle(&self) {
            let Some(o) = &self.outer else { return };
            let v = std::fs::read(o).unwrap();
            let (g, l) = (GUARD as usize, self.len as usize);
            assert!(
                v[..g].iter().all(|b| *b == 0xa5),
                "bytes before the fs changed"
            );
            assert!(
                v[g + l..].iter().all(|b| *b == 0x5a),
                "bytes after the fs changed"
            );
            assert_eq!(v.len(), 2 * g + l);
            std::fs::write(&self.path, &v[g..g + l]).unwrap();
        }
        fn open(&self) -> ExtFs {
            let (p, off) = match &self.outer {
                Some(o) => (o, GUARD),
                None => (&self.path, 0),
            };
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .unwrap();
            ExtFs::open(Box::new(FileIo {
                f,
                off,
                size: self.len,
            }))
            .unwrap()
        }
        fn fsck(&self) {
            let (code, out, err) = run("e2fsck", &["-fn", self.path.to_str().unwrap()]);
            assert_eq!(
                code,
                0,
                "e2fsck -fn: {}{err}",
                String::from_utf8_lossy(&out)
            );
        }
        fn debugfs(&self, write: bool, script: &str) -> Vec<u8> {
            let cmds = self.dir.path().join("cmds");
            std::fs::write(&cmds, format!("{script}\n")).unwrap();
            let c = cmds.to_str().unwrap();
            let p = self.path.to_str().unwrap();
            let args: Vec<&str> = if write {
                vec!["-w", "-f", c, p]
            } else {
                vec!["-f", c, p]
            };
            let (code, out, err) = run("debugfs", &args);
            let errors: Vec<&str> = (err.lines())
                .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
                .collect();
            assert!(
                code == 0 && errors.is_empty(),
                "debugfs {script:?}: {errors:?}"
            );
            out
        }
        /// One read-only debugfs request (-R: no command echo on stdout).
        fn ask(&self, req: &str) -> Vec<u8> {
            let (code, out, err) = run("debugfs", &["-R", req, self.path.to_str().unwrap()]);
            let errors: Vec<&str> = (err.lines())
                .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
                .collect();
            assert!(
                code == 0 && errors.is_empty(),
                "debugfs -R {req:?}: {errors:?}"
            );
            out
        }
        fn cat(&self, p: &str) -> Vec<u8> {
            self.ask(&format!("cat {p}"))
        }
        fn stat(&self, p: &str) -> DStat {
            let text = String::from_utf8(self.ask(&format!("stat {p}"))).unwrap();
            let grab = |re: &str, radix: u32| -> u64 {
                let c = regex::Regex::new(re).unwrap().captures(&text);
                let c = c.unwrap_or_else(|| panic!("{re} not in stat {p}: {text}"));
                u64::from_str_radix(c.get(1).unwrap().as_str(), radix).unwrap()
            };
            DStat {
                ino: grab(r"Inode: (\d+)", 10) as u32,
                mode: grab(r"Mode:\s+([0-7]+)", 8) as u32,
                flags: grab(r"Flags: 0x([0-9a-f]+)", 16) as u32,
                uid: grab(r"User:\s+(\d+)", 10) as u32,
                gid: grab(r"Group:\s+(\d+)", 10) as u32,
                links: grab(r"Links: (\d+)", 10) as u32,
                size: grab(r"Size: (\d+)", 10),
                blockcount: grab(r"Blockcount: (\d+)", 10),
                text: text.clone(),
            }
        }
        fn free_blocks(&self) -> u64 {
            let text = String::from_utf8(self.ask("stats")).unwrap();
            let re = regex::Regex::new(r"Free blocks:\s+(\d+)").unwrap();
            re.captures(&text).unwrap()[1].parse().unwrap()
        }
        fn exists(&self, p: &str) -> bool {
            let (_, _, err) = run(
                "debugfs",
                &["-R", &format!("stat {p}"), self.path.to_str().unwrap()],
            );
            !err.contains("File not found")
        }
        /// revirt's own read-only ext4 reader (ext4-view) over the image.
        fn reader(&self) -> crate::fs::ext4::Ext4 {
            let dev = crate::image::raw::RawImage::open(&self.path).unwrap();
            crate::fs::ext4::Ext4::open(std::sync::Arc::new(dev)).unwrap()
        }
    }

    const META: NewMeta = NewMeta {
        mode: 0o644,
        uid: 0,
        gid: 0,
    };
    const SELINUX: &str = "system_u:object_r:etc_t:s0";

    fn guest_tree(root: &Path) {
        put(root, "etc/f", b"old labelled contents\n");
        put(root, "etc/fstab", b"/dev/sda1 / ext4 defaults 0 1\n");
        put(root, "etc/imm", b"immutable\n");
        put(root, "boot/initrd.img", &noise(1, 3 << 20));
        put(root, "data/blob", &noise(2, 1 << 20));
        put(root, "data/keep", b"keep me\n");
        put(root, "data/h1", b"hard linked\n");
        std::fs::hard_link(root.join("data/h1"), root.join("data/h2")).unwrap();
        put(root, "srcdir/moved.txt", b"moving\n");
        put(root, "dir/sub/inner", b"inner\n");
        std::fs::create_dir_all(root.join("dst")).unwrap();
        std::os::unix::fs::symlink("etc/fstab", root.join("link_old")).unwrap();
    }

    /// Every operation on one image, then e2fsck, debugfs and revirt's reader check the result.
    fn exercise(mut img: Img, embed: bool) {
        let value = img.dir.path().join("bigvalue");
        std::fs::write(&value, vec![b'x'; 600]).unwrap();
        img.debugfs(
            true,
            &format!(
                "ea_set /etc/f security.selinux {SELINUX}\nsif /etc/f uid 1234\nsif /etc/f gid 2345\n\
                 sif /etc/f mode 0100640\nsif /etc/f mtime 1000\nea_set -f {} /data/blob user.big",
                value.display()
            ),
        );
        let imm = img.stat("/etc/imm").flags | ffi::EXT2_IMMUTABLE_FL;
        img.debugfs(true, &format!("sif /etc/imm flags {imm:#x}"));
        img.fsck();
        let before_f = img.stat("/etc/f");
        let blob = img.stat("/data/blob");
        let bs = img.open().block_size() as u64;
        assert!(
            blob.blockcount * 512 / bs > (1 << 20) / bs,
            "the xattr block is counted"
        );
        if embed {
            img.embed();
        }
        let initrd = [noise(1, 3 << 20), noise(3, 3 << 20)].concat();
        let big = noise(4, 5 << 20);
        let slow_target = format!("/usr/lib/{}/libsomething.so.1", "x".repeat(80));
        let mut fs = img.open();
        assert_eq!(fs.unsupported(), None);

        // write_file: replace in place, create, big, grow.
        fs.write_file(
            "/etc/f",
            b"new contents\n",
            NewMeta {
                mode: 0o600,
                ..META
            },
        )
        .unwrap();
        fs.write_file(
            "/etc/new.conf",
            b"hello",
            NewMeta {
                mode: 0o640,
                uid: 1001,
                gid: 70000,
            },
        )
        .unwrap();
        fs.write_file("/big5m", &big, META).unwrap();
        fs.write_file("/boot/initrd.img", &initrd, META).unwrap();
        assert_eq!(fs.read_file("/big5m", 6 << 20).unwrap(), big);
        assert!(matches!(
            fs.read_file("/big5m", 1 << 20),
            Err(ExtError::TooLarge { .. })
        ));
        // mkdir_p: nested, idempotent, then a file inside.
        fs.mkdir_p("/opt/a/b/c", 0o750).unwrap();
        fs.mkdir_p("/opt/a/b/c", 0o700).unwrap();
        fs.write_file("/opt/a/b/c/x", b"deep", META).unwrap();
        // symlinks: fast, slow, replacing one, refusing a directory.
        fs.symlink("/fast", "etc/fstab").unwrap();
        fs.symlink("/slow", &slow_target).unwrap();
        fs.symlink("/link_old", "/etc/new.conf").unwrap();
        assert!(matches!(
            fs.symlink("/dir", "x"),
            Err(ExtError::IsADirectory { .. })
        ));
        // rename: file to another dir, dir to another parent, over an existing file.
        fs.rename("/srcdir/moved.txt", "/dst/moved.txt").unwrap();
        fs.rename("/dir/sub", "/dst/sub").unwrap();
        fs.write_file("/dst/victim", &noise(5, 100_000), META)
            .unwrap();
        fs.rename("/data/keep", "/dst/victim").unwrap();
        assert!(matches!(
            fs.rename("/dst", "/dst/sub/x"),
            Err(ExtError::Invalid { .. })
        ));
        // chmod, remove, rmdir.
        fs.chmod("/etc/fstab", 0o4755).unwrap();
        fs.remove("/data/h1").unwrap();
        fs.remove("/nonexistent").unwrap();
        fs.remove("/nope/deeper").unwrap();
        fs.rmdir("/dir").unwrap();
        assert!(matches!(fs.rmdir("/dst"), Err(ExtError::NotEmpty { .. })));
        assert!(matches!(
            fs.remove("/dst"),
            Err(ExtError::IsADirectory { .. })
        ));
        // Paths that must be refused.
        let e = fs.write_file("/link_old/x", b"", META).unwrap_err();
        assert!(
            matches!(&e, ExtError::Symlink { at, .. } if at == "/link_old"),
            "{e}"
        );
        assert!(matches!(
            fs.write_file("/fast", b"", META),
            Err(ExtError::Symlink { .. })
        ));
        assert!(matches!(
            fs.chmod("/fast", 0o600),
            Err(ExtError::Symlink { .. })
        ));
        assert!(matches!(
            fs.write_file("/etc/../x", b"", META),
            Err(ExtError::Invalid { .. })
        ));
        let long = format!("/{}", "n".repeat(256));
        assert!(matches!(
            fs.write_file(&long, b"", META),
            Err(ExtError::Invalid { .. })
        ));
        assert!(matches!(
            fs.write_file("relative", b"", META),
            Err(ExtError::Invalid { .. })
        ));
        assert!(matches!(
            fs.write_file("/missing/x", b"", META),
            Err(ExtError::NotFound { .. })
        ));
        assert!(matches!(
            fs.write_file("/etc/imm", b"", META),
            Err(ExtError::Immutable { .. })
        ));
        assert!(matches!(
            fs.write_file("/", b"", META),
            Err(ExtError::IsADirectory { .. })
        ));
        let e = fs.read_file("/missing/x", 10).unwrap_err();
        assert!(e.to_string().contains("/missing"), "{e}");
        assert_eq!(fs.read_link("/slow").unwrap(), slow_target);
        assert_eq!(fs.read_link("/fast").unwrap(), "etc/fstab");
        let st = fs.lstat("/etc/new.conf").unwrap().unwrap();
        assert_eq!(
            (st.mode, st.uid, st.gid, st.links),
            (0o100640, 1001, 70000, 1)
        );
        fs.close().unwrap();
        img.settle();

        img.fsck();
        // The replaced file: same inode, xattr, mode and owner kept, new bytes and mtime.
        let f = img.stat("/etc/f");
        assert_eq!(f.ino, before_f.ino);
        assert_eq!((f.mode, f.uid, f.gid, f.links), (0o640, 1234, 2345, 1));
        assert!(!f.text.contains("mtime: 0x000003e8"), "{}", f.text);
        let ea = String::from_utf8(img.ask("ea_get /etc/f security.selinux")).unwrap();
        assert!(ea.contains(SELINUX), "{ea}");
        assert_eq!(img.cat("/etc/f"), b"new contents\n");
        let n = img.stat("/etc/new.conf");
        assert_eq!(
            (n.mode, n.uid, n.gid, n.links, n.size),
            (0o640, 1001, 70000, 1, 5)
        );
        let extents = img.open().has_incompat(ffi::EXT3_FEATURE_INCOMPAT_EXTENTS);
        assert_eq!(n.flags & ffi::EXT4_EXTENTS_FL != 0, extents, "{}", n.text);
        assert_eq!(img.cat("/big5m"), big);
        assert_eq!(img.cat("/boot/initrd.img"), initrd);
        assert_eq!(img.cat("/opt/a/b/c/x"), b"deep");
        for d in ["/opt", "/opt/a", "/opt/a/b", "/opt/a/b/c"] {
            let s = img.stat(d);
            assert_eq!(
                (s.mode, s.links),
                (0o750, if d.ends_with('c') { 2 } else { 3 }),
                "{d}"
            );
        }
        assert!(img
            .stat("/fast")
            .text
            .contains("Fast link dest: \"etc/fstab\""));
        let slow = img.stat("/slow");
        assert_eq!((slow.size, slow.mode), (slow_target.len() as u64, 0o777));
        assert!(!slow.text.contains("Fast link dest"), "{}", slow.text);
        assert!(img
            .stat("/link_old")
            .text
            .contains("Fast link dest: \"/etc/new.conf\""));
        assert!(!img.exists("/srcdir/moved.txt"));
        assert_eq!(img.cat("/dst/moved.txt"), b"moving\n");
        assert_eq!(img.cat("/dst/sub/inner"), b"inner\n");
        assert_eq!(img.cat("/dst/victim"), b"keep me\n");
        assert!(!img.exists("/data/keep"));
        assert_eq!(img.stat("/dst").links, 3);
        assert!(!img.exists("/dir"));
        assert_eq!(img.stat("/etc/fstab").mode, 0o4755);
        let h2 = img.stat("/data/h2");
        assert_eq!(
            (h2.links, img.cat("/data/h2")),
            (1, b"hard linked\n".to_vec())
        );

        // revirt's reader sees the same tree.
        let r = img.reader();
        assert_eq!(r.read_file("/etc/f", 1 << 20).unwrap(), b"new contents\n");
        assert_eq!(r.read_file("/big5m", 6 << 20).unwrap(), big);
        assert_eq!(r.read_file("/boot/initrd.img", 7 << 20).unwrap(), initrd);
        assert_eq!(r.read_link("/slow").unwrap(), slow_target);
        assert_eq!(r.read_link("/fast").unwrap(), "etc/fstab");
        assert_eq!(r.stat("/opt/a/b/c").unwrap().unwrap().mode & 0o7777, 0o750);
        assert_eq!(r.stat("/etc/fstab").unwrap().unwrap().mode & 0o7777, 0o4755);
        assert!(r.stat("/srcdir/moved.txt").unwrap().is_none());

        // remove frees the data blocks and the xattr block.
        let free0 = img.free_blocks();
        if embed {
            img.embed();
        }
        let mut fs = img.open();
        fs.remove("/data/blob").unwrap();
        fs.close().unwrap();
        img.settle();
        img.fsck();
        assert!(!img.exists("/data/blob"));
        assert_eq!(img.free_blocks() - free0, blob.blockcount * 512 / bs);
    }

    #[test]
    fn ext4_default_features() {
        if !tools() {
            return;
        }
        let img = mkimg(&["-t", "ext4", "-b", "4096"], "64M", guest_tree);
        let t = String::from_utf8(img.ask("features")).unwrap();
        assert!(t.contains("metadata_csum") && t.contains("64bit"), "{t}");
        exercise(img, false);
    }

    #[test]
    fn ext4_without_csum_and_64bit() {
        if !tools() {
            return;
        }
        let img = mkimg(
            &["-t", "ext4", "-b", "4096", "-O", "^metadata_csum,^64bit"],
            "64M",
            guest_tree,
        );
        exercise(img, false);
    }

    #[test]
    fn ext3() {
        if !tools() {
            return;
        }
        exercise(mkimg(&["-t", "ext3"], "64M", guest_tree), false);
    }

    #[test]
    fn ext2_with_1k_blocks() {
        if !tools() {
            return;
        }
        exercise(
            mkimg(&["-t", "ext2", "-b", "1024"], "64M", guest_tree),
            false,
        );
    }

    #[test]
    fn ext4_at_an_offset() {
        if !tools() {
            return;
        }
        exercise(mkimg(&["-t", "ext4"], "64M", guest_tree), true);
    }

    /// 2000 entries: a linear directory grows by blocks; after e2fsck -D an htree one grows
    /// through libext2fs's dx_link. Both stay clean for e2fsck, which checks the htree.
    #[test]
    fn big_directories() {
        if !tools() {
            return;
        }
        let fill = |root: &Path| {
            for n in 0..2000 {
                put(root, &format!("big/file-with-a-longish-name-{n:05}"), b"");
            }
        };
        for indexed in [false, true] {
            let img = mkimg(&["-t", "ext4"], "64M", fill);
            if indexed {
                let (code, _, err) = run("e2fsck", &["-fyD", img.path.to_str().unwrap()]);
                assert!(code <= 1, "e2fsck -fyD: {err}");
            }
            let flags0 = img.stat("/big").flags;
            assert_eq!(flags0 & ffi::EXT2_INDEX_FL != 0, indexed);
            let size0 = img.stat("/big").size;
            let mut fs = img.open();
            for n in 0..1500 {
                let p = format!("/big/added-entry-with-long-name-{n:05}");
                fs.write_file(&p, format!("{n}").as_bytes(), META).unwrap();
            }
            fs.close().unwrap();
            img.fsck();
            let st = img.stat("/big");
            assert!(st.size > size0, "the directory grew");
            assert_eq!(st.flags & ffi::EXT2_INDEX_FL != 0, indexed);
            assert_eq!(img.cat("/big/added-entry-with-long-name-01499"), b"1499");
            let r = img.reader();
            let names = r.read_dir("/big").unwrap();
            assert_eq!(
                names.iter().filter(|e| !e.name.starts_with('.')).count(),
                3500
            );
            let got = r
                .read_file("/big/added-entry-with-long-name-00777", 10)
                .unwrap();
            assert_eq!(got, b"777");
        }
    }

    /// Refused filesystems: the reason names the feature, edits fail, not one byte changes.
    #[test]
    fn unsupported_filesystems() {
        if !tools() {
            return;
        }
        let fill = |root: &Path| put(root, "etc/hostname", b"guest\n");
        let cases: [(&[&str], &str, &str); 4] = [
            (&["-t", "ext4", "-O", "quota"], "", "quota"),
            (&["-t", "ext4"], "feature needs_recovery", "needs_recovery"),
            (&["-t", "ext4", "-O", "inline_data"], "", "inline_data"),
            (&["-t", "ext4"], "ssv state 0", "not cleanly unmounted"),
        ];
        for (args, script, want) in cases {
            let img = mkimg(args, "32M", fill);
            if !script.is_empty() {
                img.debugfs(true, script);
            }
            let bytes = std::fs::read(&img.path).unwrap();
            let mut fs = img.open();
            let why = fs.unsupported().unwrap_or_default();
            assert!(why.contains(want), "{args:?} {script}: {why}");
            let e = fs.write_file("/etc/hostname", b"x", META).unwrap_err();
            assert!(matches!(e, ExtError::Unsupported { .. }), "{e}");
            assert!(fs.remove("/etc/hostname").is_err());
            assert!(fs.mkdir_p("/x", 0o755).is_err());
            // Reads still work on a refused filesystem.
            if want != "inline_data" {
                assert_eq!(fs.read_file("/etc/hostname", 100).unwrap(), b"guest\n");
            }
            fs.close().unwrap();
            assert!(
                std::fs::read(&img.path).unwrap() == bytes,
                "{want}: image changed"
            );
        }
    }

    /// Counts writes: a big file costs about one write per block (fallocate, then full-block
    /// writes), which matters when every write is a round trip to the parent process.
    struct CountingIo(FileIo, Arc<std::sync::atomic::AtomicU64>);

    impl BlockIo for CountingIo {
        fn size(&self) -> u64 {
            self.0.size()
        }
        fn read_at(&mut self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
            self.0.read_at(buf, off)
        }
        fn write_at(&mut self, buf: &[u8], off: u64) -> std::io::Result<()> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.write_at(buf, off)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }

    #[test]
    fn big_writes_cost_one_write_per_block() {
        if !tools() {
            return;
        }
        let img = mkimg(&["-t", "ext4"], "64M", |root| {
            put(root, "boot/initrd", b"x")
        });
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&img.path)
            .unwrap();
        let writes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let io = FileIo {
            f,
            off: 0,
            size: img.len,
        };
        let mut fs = ExtFs::open(Box::new(CountingIo(io, writes.clone()))).unwrap();
        let data = noise(9, (8 << 20) + 123);
        fs.write_file("/boot/initrd", &data, META).unwrap();
        let n = writes.load(Ordering::SeqCst);
        let blocks = data.len() as u64 / fs.block_size() as u64 + 1;
        assert!(
            n >= blocks && n < blocks + 32,
            "{n} writes for {blocks} blocks"
        );
        let fs_bs = fs.block_size() as u64;
        fs.close().unwrap();
        img.fsck();
        assert_eq!(img.cat("/boot/initrd"), data);
        // The padded tail: bytes past the end of the file in its last block are zero.
        let st = img.stat("/boot/initrd");
        let re = regex::Regex::new(r"\((\d+)-(\d+)\):(\d+)-(\d+)\s*$").unwrap();
        let ext = st
            .text
            .lines()
            .last()
            .map(|l| l.to_string())
            .unwrap_or_default();
        let last = (st.text.split([',', '\n']))
            .filter_map(|x| re.captures(x.trim()))
            .next_back()
            .unwrap_or_else(|| panic!("no extent in {}", st.text));
        let pblk: u64 = last[4].parse().unwrap();
        let bs = fs_bs;
        let raw = std::fs::read(&img.path).unwrap();
        let tail = &raw[(pblk * bs) as usize..((pblk + 1) * bs) as usize];
        let used = data.len() % bs as usize;
        assert_eq!(&tail[..used], &data[data.len() - used..], "{ext}");
        assert!(tail[used..].iter().all(|b| *b == 0));
    }

    /// Fails every write once `left` reaches zero.
    struct FailingIo(FileIo, Arc<std::sync::atomic::AtomicI64>);

    impl BlockIo for FailingIo {
        fn size(&self) -> u64 {
            self.0.size()
        }
        fn read_at(&mut self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
            self.0.read_at(buf, off)
        }
        fn write_at(&mut self, buf: &[u8], off: u64) -> std::io::Result<()> {
            if self.1.fetch_sub(1, Ordering::SeqCst) <= 0 {
                return Err(std::io::Error::other("injected failure"));
            }
            self.0.write_at(buf, off)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }

    /// A write failing half-way: the error names the path, libext2fs's text and the BlockIo's;
    /// the handle then refuses edits and close reports it.
    #[test]
    fn failed_edit_breaks_the_handle() {
        if !tools() {
            return;
        }
        let img = mkimg(&["-t", "ext4"], "32M", |root| {
            put(root, "etc/hostname", b"g\n")
        });
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&img.path)
            .unwrap();
        let left = Arc::new(std::sync::atomic::AtomicI64::new(5));
        let io = FileIo {
            f,
            off: 0,
            size: img.len,
        };
        let mut fs = ExtFs::open(Box::new(FailingIo(io, left.clone()))).unwrap();
        let e = fs.write_file("/big", &noise(3, 1 << 20), META).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ExtError::Lib { .. }), "{text}");
        assert!(
            text.starts_with("/big: ") && text.contains("injected failure"),
            "{text}"
        );
        left.store(i64::MAX, Ordering::SeqCst);
        let e = fs.mkdir_p("/x", 0o755).unwrap_err();
        assert!(matches!(e, ExtError::Broken { .. }), "{e}");
        assert!(matches!(fs.close(), Err(ExtError::Broken { .. })));
    }

    #[test]
    fn superblock_offsets_match_the_headers() {
        use std::mem::offset_of;
        type S = ffi::ext2_super_block;
        assert_eq!(offset_of!(S, s_blocks_count), sb::BLOCKS_COUNT);
        assert_eq!(offset_of!(S, s_log_block_size), sb::LOG_BLOCK_SIZE);
        assert_eq!(offset_of!(S, s_first_data_block), sb::FIRST_DATA_BLOCK);
        assert_eq!(offset_of!(S, s_blocks_count_hi), sb::BLOCKS_COUNT_HI);
        assert_eq!(offset_of!(S, s_magic), sb::MAGIC);
        assert_eq!(offset_of!(S, s_state), sb::STATE);
        assert_eq!(offset_of!(S, s_rev_level), sb::REV_LEVEL);
        assert_eq!(offset_of!(S, s_feature_incompat), sb::FEATURE_INCOMPAT);
        assert_eq!(offset_of!(S, s_feature_ro_compat), sb::FEATURE_RO_COMPAT);
        assert_eq!(offset_of!(S, s_last_orphan), sb::LAST_ORPHAN);
        assert_eq!(std::mem::size_of::<S>(), 1024);
    }

    #[test]
    fn refusal_names_each_problem() {
        let mut s = vec![0u8; 1024];
        s[sb::STATE] = 1;
        s[sb::REV_LEVEL] = 1;
        let set =
            |s: &mut Vec<u8>, at: usize, v: u32| s[at..at + 4].copy_from_slice(&v.to_le_bytes());
        set(&mut s, sb::FEATURE_INCOMPAT, INCOMPAT_OK);
        set(&mut s, sb::FEATURE_RO_COMPAT, RO_COMPAT_OK);
        s[sb::BLOCKS_COUNT] = 64;
        s[sb::FIRST_DATA_BLOCK] = 1;
        assert_eq!(refusal(&s, 64 << 10), None);
        s[sb::FIRST_DATA_BLOCK] = 0;
        assert!(refusal(&s, 64 << 10)
            .unwrap()
            .contains("s_first_data_block is 0, but 1"));
        s[sb::FIRST_DATA_BLOCK] = 1;
        assert!(refusal(&s, 63 << 10)
            .unwrap()
            .contains("larger than its volume"));
        set(
            &mut s,
            sb::FEATURE_INCOMPAT,
            INCOMPAT_OK | ffi::EXT4_FEATURE_INCOMPAT_CASEFOLD | 1 << 30,
        );
        set(
            &mut s,
            sb::FEATURE_RO_COMPAT,
            ffi::EXT4_FEATURE_RO_COMPAT_VERITY,
        );
        set(&mut s, sb::LAST_ORPHAN, 12);
        s[sb::STATE] = 3;
        let why = refusal(&s, 1 << 20).unwrap();
        for w in [
            "casefold",
            "0x40000000",
            "verity",
            "s_last_orphan 12",
            "ERROR_FS",
        ] {
            assert!(why.contains(w), "{w} not in {why}");
        }
    }

    #[test]
    fn paths_are_bounded() {
        assert_eq!(components("/etc//./fstab").unwrap(), ["etc", "fstab"]);
        assert!(components("/").unwrap().is_empty());
        assert!(components("etc").is_err());
        assert!(components("/a/../b").is_err());
        assert!(components("/a\0b").is_err());
        assert!(components(&"/a".repeat(300)).is_err());
        assert!(components(&format!("/{}", "x".repeat(4096))).is_err());
        assert_eq!(encode_time(1_700_000_000, 5), (1_700_000_000, 5 << 2));
        assert_eq!(encode_time(1 << 32, 0), (0, 1));
    }
}
