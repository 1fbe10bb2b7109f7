//! In-memory replay of an ext3/ext4 journal (jbd2), served as a read-only block-device overlay.
//!
//! Role: revirt's inputs are crash-consistent snapshots, so an ext filesystem often has
//! `needs_recovery` set and committed transactions still in its journal. [`recover`] finds the
//! newest surviving journal copy of every block and returns a [`Dev`] that reads the filesystem as
//! if the journal had been replayed and then marked empty. Nothing is written and no journal data
//! is held in memory: the overlay keeps, per replayed block, where its copy lives in the journal.
//!
//! Format (big-endian; the kernel's `include/linux/jbd2.h`, e2fsprogs' `lib/ext2fs/kernel-jbd.h`):
//! the journal is inode `s_journal_inum` (extent tree or ext3 block map). Its block 0 is the
//! journal superblock (v1 or v2); the log is the circular range `s_first..s_maxlen` (less the
//! fast-commit area) and starts at `s_start` with transaction `s_sequence`. Every log block opens
//! with a header (magic, type, sequence): a descriptor block lists tags (fs block, flags,
//! checksum), each followed in the log by that block's data; a revoke block lists fs blocks whose
//! older copies must not be replayed; a commit block ends its transaction.
//!
//! Behaviour follows `jbd2_journal_recover` (fs/jbd2/recovery.c, shared by e2fsck) in three passes:
//! 1. Scan for the end of the log: a block with the wrong magic, sequence or type ends it, so a
//!    torn or uncommitted last transaction is ignored. A commit counts only if its checksum holds
//!    (v1: crc32 over descriptors and data; v2/v3: crc32c of the commit block, or of its header
//!    alone as newer kernels accept, e2fsck 1.47 not). A bad commit checksum ends the replay
//!    before that transaction: the kernel then refuses to mount, e2fsck keeps the earlier
//!    transactions and flags the filesystem with errors; revirt does as e2fsck and warns. A
//!    descriptor or revoke block with a bad checksum is stale data when no commit follows or the
//!    commit is older than the previous one, else corruption: recovery is refused, as both do.
//! 2. Index the tags of committed transactions, newest copy per fs block. A data block whose
//!    checksum fails, in the last or any middle transaction alike, is skipped (an older copy
//!    stays) and the rest replayed, as both do; the kernel then fails the mount, e2fsck clears the
//!    valid flag: revirt warns and clears it too.
//! 3. Apply revokes: a block revoked in transaction T is not replayed from transactions <= T.
//!    (The kernel reads revokes before replaying; indexing first keeps memory to the replayed
//!    blocks and gives the same result, since only the newest copy can survive.)
//!
//! Then, as e2fsck, the overlay's superblock has `needs_recovery` cleared (checksum redone) and
//! the journal superblock `s_start = 0` and `s_sequence` past the end, so nothing reading the
//! overlay sees a journal to replay. Refused: external journals, fast commits in use, unknown
//! journal features. Every number read is bounded before use; memory is O(replayed blocks +
//! journal extents).
use crate::error::{FsError, ImageError};
use crate::image::{read_vec, BlockDevice, Dev};
use std::collections::BTreeMap;
use std::sync::Arc;

const FS: &str = "ext4";

const EXT_MAGIC: u16 = 0xEF53;
const COMPAT_HAS_JOURNAL: u32 = 0x4;
const INCOMPAT_RECOVER: u32 = 0x4;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_64BIT: u32 = 0x80;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
const STATE_VALID: u16 = 0x1;
const STATE_ERROR: u16 = 0x2;
const EXTENTS_FL: u32 = 0x8_0000;
const INLINE_DATA_FL: u32 = 0x1000_0000;
const MAX_EXTENT_DEPTH: u16 = 5;

const JBD2_MAGIC: u32 = 0xC03B_3998;
const T_DESCRIPTOR: u32 = 1;
const T_COMMIT: u32 = 2;
const T_SB_V1: u32 = 3;
const T_SB_V2: u32 = 4;
const T_REVOKE: u32 = 5;
const J_COMPAT_CHECKSUM: u32 = 0x1;
const J_REVOKE: u32 = 0x1;
const J_64BIT: u32 = 0x2;
const J_ASYNC_COMMIT: u32 = 0x4;
const J_CSUM_V2: u32 = 0x8;
const J_CSUM_V3: u32 = 0x10;
const J_FAST_COMMIT: u32 = 0x20;
const J_KNOWN_INCOMPAT: u32 = 0x3f;
const TAG_ESCAPE: u16 = 0x1;
const TAG_SAME_UUID: u16 = 0x2;
const TAG_LAST: u16 = 0x8;
const MIN_JOURNAL_BLOCKS: u32 = 1024;
const DEFAULT_FC_BLOCKS: u32 = 256;
const FC_TAG_HEAD: u16 = 9;

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}
fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn be64(b: &[u8], o: usize) -> u64 {
    (be32(b, o) as u64) << 32 | be32(b, o + 4) as u64
}
/// A 64-bit number from its low half and, when `wide`, its high half.
fn join(lo: u32, hi: u32, wide: bool) -> u64 {
    lo as u64 | if wide { (hi as u64) << 32 } else { 0 }
}

fn corrupt(dev: &str, what: impl Into<String>) -> FsError {
    FsError::corrupt(dev, FS, what)
}
fn unsupported(dev: &str, what: String) -> FsError {
    FsError::Unsupported {
        dev: dev.into(),
        fs: FS,
        what,
    }
}

const fn crc_table(reflected: bool) -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = if reflected {
            i as u32
        } else {
            (i as u32) << 24
        };
        let mut k = 0;
        while k < 8 {
            c = match (reflected, c & 1 != 0, c & 0x8000_0000 != 0) {
                (true, true, _) => (c >> 1) ^ 0x82F6_3B78,
                (true, false, _) => c >> 1,
                (false, _, true) => (c << 1) ^ 0x04C1_1DB7,
                (false, _, false) => c << 1,
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}
static CRC32C: [u32; 256] = crc_table(true);
static CRC32_BE: [u32; 256] = crc_table(false);

/// Raw crc32c (Castagnoli, no final inversion), as the kernel's `jbd2_chksum`/`ext4_chksum`.
fn crc32c(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC32C[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// The kernel's `crc32_be` (MSB-first, no inversion): the v1 "journal_checksum" commit sum.
fn crc32_be(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC32_BE[(((crc >> 24) ^ b as u32) & 0xff) as usize] ^ (crc << 8);
    }
    crc
}

/// crc32c continued over `len` zero bytes, without allocating them.
fn crc32c_zeros(mut crc: u32, mut len: usize) -> u32 {
    while len > 0 {
        let n = len.min(256);
        crc = crc32c(crc, &[0; 256][..n]);
        len -= n;
    }
    crc
}

/// crc32c of a block whose 4-byte checksum field at `at` counts as zero.
fn crc32c_without(seed: u32, b: &[u8], at: usize) -> u32 {
    crc32c(crc32c_zeros(crc32c(seed, &b[..at]), 4), &b[at + 4..])
}

/// Transaction ids wrap: `a` is after `b` if the signed distance is positive (kernel `tid_gt`).
fn tid_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The ext superblock fields needed to find the journal inode.
struct ExtSb {
    bs: u64,
    blocks: u64,
    first_data_block: u64,
    blocks_per_group: u64,
    inodes_per_group: u64,
    inodes: u64,
    inode_size: u64,
    desc_size: u64,
    incompat: u32,
    first_meta_bg: u64,
}

impl ExtSb {
    fn parse(b: &[u8], name: &str) -> Result<Self, FsError> {
        let bad = |what: String| Err(corrupt(name, format!("superblock: {what}")));
        let log = le32(b, 0x18);
        if le16(b, 0x38) != EXT_MAGIC || log > 6 {
            return bad(format!(
                "no ext magic at byte 1024, or block size 2^(10+{log})"
            ));
        }
        let (bs, incompat) = (1024u64 << log, le32(b, 0x60));
        let is64 = incompat & INCOMPAT_64BIT != 0;
        let desc_size = if is64 { le16(b, 0xFE) as u64 } else { 32 };
        let inode_size = if le32(b, 0x4C) == 0 {
            128
        } else {
            le16(b, 0x58) as u64
        };
        let sb = ExtSb {
            bs,
            blocks: join(le32(b, 0x4), le32(b, 0x150), is64),
            first_data_block: le32(b, 0x14) as u64,
            blocks_per_group: le32(b, 0x20) as u64,
            inodes_per_group: le32(b, 0x28) as u64,
            inodes: le32(b, 0x0) as u64,
            inode_size,
            desc_size,
            incompat,
            first_meta_bg: le32(b, 0x104) as u64,
        };
        let pow2 = |v: u64, lo, hi| v.is_power_of_two() && (lo..=hi).contains(&v);
        if !pow2(desc_size, 32, bs.min(1024)) || !pow2(inode_size, 128, bs) {
            return bad(format!(
                "descriptor size {desc_size}, inode size {inode_size}"
            ));
        }
        if sb.blocks_per_group == 0 || sb.inodes_per_group == 0 || sb.first_data_block > 1 {
            return bad("zero blocks or inodes per group, or first data block over 1".into());
        }
        Ok(sb)
    }

    /// Byte offset of group `g`'s descriptor. With meta_bg only the classic descriptor blocks
    /// (before `s_first_meta_bg`, and always group 0's) are supported: the journal is inode 8.
    fn desc_offset(&self, g: u64, name: &str) -> Result<u64, FsError> {
        let per_block = self.bs / self.desc_size;
        let idx = g / per_block;
        if self.incompat & INCOMPAT_META_BG != 0 && idx > 0 && idx >= self.first_meta_bg {
            return Err(unsupported(
                name,
                format!("journal inode in meta_bg group {g}"),
            ));
        }
        Ok((self.first_data_block + 1 + idx) * self.bs + (g % per_block) * self.desc_size)
    }
}

/// A run of the journal inode: logical block, fs block, length.
type Run = (u64, u64, u64);

/// Collects the journal inode's block runs up to `limit` logical blocks.
struct Mapper<'a> {
    dev: &'a dyn BlockDevice,
    sb: &'a ExtSb,
    name: &'a str,
    limit: u64,
    runs: Vec<Run>,
    /// Tree blocks still allowed to be read: a hostile tree could name one child many times.
    budget: u64,
}

impl Mapper<'_> {
    fn corrupt(&self, what: String) -> FsError {
        corrupt(self.name, format!("journal inode: {what}"))
    }

    fn block(&mut self, b: u64) -> Result<Vec<u8>, FsError> {
        if b == 0 || b >= self.sb.blocks || self.budget == 0 {
            return Err(self.corrupt(format!("map block {b} outside the fs, or too many")));
        }
        self.budget -= 1;
        Ok(read_vec(self.dev, b * self.sb.bs, self.sb.bs as usize)?)
    }

    fn push(&mut self, logical: u64, phys: u64, len: u64) -> Result<(), FsError> {
        if logical >= self.limit || len == 0 {
            return Ok(());
        }
        let len = len.min(self.limit - logical);
        if phys == 0 || phys.checked_add(len).is_none_or(|e| e > self.sb.blocks) {
            let n = self.sb.blocks;
            return Err(self.corrupt(format!(
                "logical block {logical} maps to fs block {phys} (+{len}), outside the {n} blocks"
            )));
        }
        let last = self.runs.last_mut();
        if let Some(r) = last.filter(|r| r.0 + r.2 == logical && r.1 + r.2 == phys) {
            r.2 += len;
        } else if self.runs.len() as u64 >= self.limit {
            return Err(self.corrupt("more extents than journal blocks".into()));
        } else {
            self.runs.push((logical, phys, len));
        }
        Ok(())
    }

    /// One extent-tree node; `want` is the depth its parent promised (none for the root).
    fn extent_node(&mut self, node: &[u8], want: Option<u16>) -> Result<(), FsError> {
        let (entries, max, depth) = (
            le16(node, 2) as usize,
            le16(node, 4) as usize,
            le16(node, 6),
        );
        if le16(node, 0) != 0xF30A
            || entries > max
            || 12 + 12 * max > node.len()
            || depth > MAX_EXTENT_DEPTH
            || want.is_some_and(|w| w != depth)
        {
            return Err(self.corrupt(format!(
                "bad extent node (depth {depth}, {entries} entries)"
            )));
        }
        for e in node[12..12 + 12 * entries].chunks_exact(12) {
            let logical = le32(e, 0) as u64;
            if depth == 0 {
                // Unwritten extents (length over 32768) read as zeros: left as a hole, refused.
                let len = le16(e, 4) as u64;
                let phys = join(le32(e, 8), le16(e, 6) as u32, true);
                self.push(logical, phys, if len <= 32768 { len } else { 0 })?;
            } else if logical < self.limit {
                let child = self.block(join(le32(e, 4), le16(e, 8) as u32, true))?;
                self.extent_node(&child, Some(depth - 1))?;
            }
        }
        Ok(())
    }

    /// ext3 block map: 12 direct pointers, then single, double and triple indirect trees.
    fn block_map(&mut self, iblock: &[u8]) -> Result<(), FsError> {
        for i in 0..12 {
            let p = le32(iblock, 4 * i) as u64;
            self.push(i as u64, p, (p != 0) as u64)?;
        }
        let mut start = 12u64;
        for level in 1..=3u32 {
            let p = le32(iblock, 4 * (11 + level as usize)) as u64;
            if start < self.limit && p != 0 {
                self.indirect(p, level, start)?;
            }
            start = start.saturating_add((self.sb.bs / 4).pow(level));
        }
        Ok(())
    }

    fn indirect(&mut self, block: u64, level: u32, start: u64) -> Result<(), FsError> {
        let buf = self.block(block)?;
        let span = (self.sb.bs / 4).pow(level - 1);
        for (i, p) in buf.chunks_exact(4).enumerate() {
            let (s, p) = (start + i as u64 * span, le32(p, 0) as u64);
            match (p, level) {
                _ if s >= self.limit => break,
                (0, _) => {}
                (_, 1) => self.push(s, p, 1)?,
                _ => self.indirect(p, level - 1, s)?,
            }
        }
        Ok(())
    }
}

/// The runs covering logical blocks `0..len` exactly once, sorted; else the first gap/overlap.
fn covering(mut runs: Vec<Run>, len: u64) -> Result<Vec<Run>, u64> {
    runs.sort_unstable();
    let mut used: Vec<Run> = vec![];
    for r in runs {
        let next = used.last().map_or(0, |u| u.0 + u.2);
        if next >= len {
            break;
        }
        if r.0 != next {
            return Err(next.min(r.0));
        }
        used.push((r.0, r.1, r.2.min(len - r.0)));
    }
    match used.last().map_or(0, |u| u.0 + u.2) {
        n if n < len => Err(n),
        _ => Ok(used),
    }
}

/// Reads the journal inode and maps its blocks, up to its size and the filesystem's.
fn journal_runs(
    dev: &dyn BlockDevice,
    sb: &ExtSb,
    ino: u64,
    name: &str,
) -> Result<Vec<Run>, FsError> {
    let bad = |what: String| corrupt(name, format!("journal inode {ino}: {what}"));
    let (group, index) = (
        (ino - 1) / sb.inodes_per_group,
        (ino - 1) % sb.inodes_per_group,
    );
    let groups = (sb.blocks.saturating_sub(sb.first_data_block)).div_ceil(sb.blocks_per_group);
    if ino > sb.inodes || group >= groups {
        return Err(bad("outside the filesystem".into()));
    }
    let gd = read_vec(dev, sb.desc_offset(group, name)?, sb.desc_size as usize)?;
    let hi = if sb.desc_size >= 64 {
        le32(&gd, 0x28)
    } else {
        0
    };
    let table = join(le32(&gd, 0x8), hi, true);
    if table == 0 || table >= sb.blocks {
        return Err(bad(format!("group {group}'s inode table at block {table}")));
    }
    let inode = read_vec(dev, table * sb.bs + index * sb.inode_size, 128)?;
    let (size, flags) = (
        join(le32(&inode, 0x4), le32(&inode, 0x6C), true),
        le32(&inode, 0x20),
    );
    if le16(&inode, 0) & 0xF000 != 0x8000 || flags & INLINE_DATA_FL != 0 {
        return Err(bad("not a regular file with blocks".into()));
    }
    let limit = (size / sb.bs).min(sb.blocks);
    let mut m = Mapper {
        dev,
        sb,
        name,
        limit,
        runs: vec![],
        budget: 64 + limit,
    };
    let iblock = &inode[0x28..0x28 + 60];
    if flags & EXTENTS_FL != 0 {
        m.extent_node(iblock, None)?;
    } else {
        m.block_map(iblock)?;
    }
    Ok(m.runs)
}

/// What the journal superblock says, validated.
struct JSb {
    raw: Vec<u8>,
    v2: bool,
    maxlen: u32,
    first: u32,
    /// End (exclusive) of the log area: `s_maxlen` less the fast-commit blocks.
    last: u32,
    sequence: u32,
    start: u32,
    errno: u32,
    compat: u32,
    incompat: u32,
}

impl JSb {
    fn parse(raw: Vec<u8>, bs: u64, name: &str) -> Result<Self, FsError> {
        let bad = |what: String| Err(corrupt(name, format!("journal superblock: {what}")));
        let (blocktype, jbs) = (be32(&raw, 4), be32(&raw, 0xC) as u64);
        if be32(&raw, 0) != JBD2_MAGIC || !(T_SB_V1..=T_SB_V2).contains(&blocktype) || jbs != bs {
            return bad(format!(
                "bad magic or block type, or block size {jbs} (fs: {bs})"
            ));
        }
        let v2 = blocktype == T_SB_V2;
        let feature = |o| if v2 { be32(&raw, o) } else { 0 };
        let (compat, incompat) = (feature(0x24), feature(0x28));
        if incompat & !J_KNOWN_INCOMPAT != 0 {
            let f = incompat & !J_KNOWN_INCOMPAT;
            return Err(unsupported(
                name,
                format!("journal incompat features {f:#x}"),
            ));
        }
        let csum = incompat & (J_CSUM_V2 | J_CSUM_V3);
        if csum == J_CSUM_V2 | J_CSUM_V3 || (csum != 0 && compat & J_COMPAT_CHECKSUM != 0) {
            return bad("more than one checksum version".into());
        }
        if csum != 0 && (raw[0x50] != 4 || crc32c_without(!0, &raw, 0xFC) != be32(&raw, 0xFC)) {
            return bad(format!(
                "checksum mismatch, or type {} is not crc32c",
                raw[0x50]
            ));
        }
        let fc = match be32(&raw, 0x54) {
            _ if incompat & J_FAST_COMMIT == 0 => 0,
            0 => DEFAULT_FC_BLOCKS,
            n => n,
        };
        let (maxlen, first, start) = (be32(&raw, 0x10), be32(&raw, 0x14), be32(&raw, 0x1C));
        let last = maxlen.saturating_sub(fc);
        if last < MIN_JOURNAL_BLOCKS || first == 0 || first >= last {
            return bad(format!(
                "log blocks {first}..{last} of {maxlen} (fast commit {fc})"
            ));
        }
        if start != 0 && !(first..last).contains(&start) {
            return bad(format!("log start {start} outside the log {first}..{last}"));
        }
        let (sequence, errno) = (be32(&raw, 0x18), be32(&raw, 0x20));
        Ok(JSb {
            raw,
            v2,
            maxlen,
            first,
            last,
            sequence,
            start,
            errno,
            compat,
            incompat,
        })
    }

    fn layout(&self) -> String {
        let has = |f| self.incompat & f != 0;
        let csum = match () {
            _ if has(J_CSUM_V3) => "csum_v3",
            _ if has(J_CSUM_V2) => "csum_v2",
            _ if self.compat & J_COMPAT_CHECKSUM != 0 => "checksum_v1",
            _ => "no checksums",
        };
        let bits = if has(J_64BIT) { "64bit" } else { "32bit" };
        let mut v = format!("v{} {bits} {csum}", 1 + self.v2 as u8);
        for (f, n) in [
            (J_REVOKE, " revoke"),
            (J_ASYNC_COMMIT, " async_commit"),
            (J_FAST_COMMIT, " fast_commit"),
        ] {
            if has(f) {
                v.push_str(n);
            }
        }
        v
    }
}

/// One tag of a descriptor block.
struct Tag {
    block: u64,
    flags: u16,
    csum: u32,
}

/// Passes 2 and 3: the newest good copy of each fs block (tid, log block, escaped), copies whose
/// data checksum failed (fs block -> (tid, log block)), revoke records read and copies revoked.
#[derive(Default)]
struct Replay {
    copies: BTreeMap<u64, (u32, u32, bool)>,
    bad: BTreeMap<u64, Vec<(u32, u32)>>,
    records: u64,
    revoked: u64,
}

/// The journal log, readable by log block number.
struct Journal<'a> {
    dev: &'a dyn BlockDevice,
    name: &'a str,
    bs: usize,
    runs: Vec<Run>,
    sb: &'a JSb,
    fs_blocks: u64,
    seed: u32,
    tag_bytes: usize,
    /// Size of the checksum tail of descriptor and revoke blocks (v2/v3), else 0.
    tail: usize,
}

impl Journal<'_> {
    fn corrupt(&self, tid: u32, j: u32, what: String) -> FsError {
        corrupt(
            self.name,
            format!("journal transaction {tid}, journal block {j}: {what}"),
        )
    }
    fn has(&self, f: u32) -> bool {
        self.sb.incompat & f != 0
    }
    fn v1(&self) -> bool {
        self.sb.compat & J_COMPAT_CHECKSUM != 0
    }

    /// Fs block holding journal block `j` (the runs cover the whole journal).
    fn phys(&self, j: u32) -> u64 {
        let r = self.runs[self.runs.partition_point(|r| r.0 + r.2 <= j as u64)];
        r.1 + (j as u64 - r.0)
    }
    fn read(&self, j: u32, buf: &mut [u8]) -> Result<(), FsError> {
        Ok(self.dev.read_at(buf, self.phys(j) * self.bs as u64)?)
    }
    /// `n` blocks further along the circular log.
    fn advance(&self, j: u32, n: u64) -> u32 {
        let len = (self.sb.last - self.sb.first) as u64;
        self.sb.first + (((j - self.sb.first) as u64 + n % len) % len) as u32
    }

    fn tags(&self, b: &[u8]) -> Vec<Tag> {
        let (mut v, mut o) = (vec![], 12);
        while o + self.tag_bytes <= self.bs - self.tail {
            let flags = be16(b, o + 6);
            let csum = match () {
                _ if self.has(J_CSUM_V3) => be32(b, o + 12),
                _ if self.has(J_CSUM_V2) => be16(b, o + 4) as u32,
                _ => 0,
            };
            let hi = if self.has(J_64BIT) { be32(b, o + 8) } else { 0 };
            let block = join(be32(b, o), hi, true);
            v.push(Tag { block, flags, csum });
            o += self.tag_bytes + if flags & TAG_SAME_UUID == 0 { 16 } else { 0 };
            if flags & TAG_LAST != 0 {
                break;
            }
        }
        v
    }

    /// Descriptor and revoke block tails (v2/v3): crc32c of the block with the tail zeroed.
    fn tail_ok(&self, b: &[u8]) -> bool {
        self.tail == 0 || crc32c_without(self.seed, b, self.bs - 4) == be32(b, self.bs - 4)
    }
    /// v2/v3 commit block: over the whole block, or (newer kernels) its 60-byte header alone.
    fn commit_ok(&self, b: &[u8]) -> bool {
        let head = crc32c_zeros(crc32c(self.seed, &b[..16]), 4);
        let header_only = crc32c_zeros(crc32c(head, &b[20..60]), self.bs - 60);
        let want = be32(b, 16);
        self.tail == 0 || crc32c(head, &b[20..]) == want || header_only == want
    }
    fn data_ok(&self, tag: &Tag, tid: u32, data: &[u8]) -> bool {
        let sum = crc32c(crc32c(self.seed, &tid.to_be_bytes()), data);
        match () {
            _ if self.has(J_CSUM_V3) => tag.csum == sum,
            _ if self.has(J_CSUM_V2) => tag.csum == sum & 0xffff,
            _ => true,
        }
    }

    /// Walks the log from `s_start`: calls `visit(block, position, tid, next position)` for each
    /// block with the expected magic and sequence, until `visit` returns None or transaction
    /// `until` is reached. `visit` returns how many data blocks follow the header. Returns the
    /// transaction at which the walk stopped.
    fn walk(
        &self,
        until: Option<u32>,
        mut visit: impl FnMut(&[u8], u32, &mut u32, u32) -> Result<Option<u64>, FsError>,
    ) -> Result<u32, FsError> {
        let (mut j, mut tid) = (self.sb.start, self.sb.sequence);
        let mut buf = vec![0u8; self.bs];
        // A legitimate log never holds more than its length; a hostile one could loop forever.
        let (limit, mut walked) = ((self.sb.last - self.sb.first) as u64, 0u64);
        loop {
            if until.is_some_and(|u| !tid_gt(u, tid)) {
                return Ok(tid);
            }
            if walked > limit {
                return Err(self.corrupt(
                    tid,
                    j,
                    format!("log does not end within {limit} blocks"),
                ));
            }
            self.read(j, &mut buf)?;
            let next = self.advance(j, 1);
            if be32(&buf, 0) != JBD2_MAGIC || be32(&buf, 8) != tid {
                return Ok(tid);
            }
            let Some(n) = visit(&buf, j, &mut tid, next)? else {
                return Ok(tid);
            };
            walked += 1 + n;
            j = self.advance(next, n);
        }
    }

    /// Pass 1: the first transaction not to replay, and the one whose commit checksum failed.
    fn scan(&self) -> Result<(u32, Option<u32>), FsError> {
        let (mut end, mut failed) = (None, None);
        let (mut crc_v1, mut need_time_check, mut last_time) = (!0u32, false, 0u64);
        let mut data = vec![0u8; self.bs];
        let stop = self.walk(None, |b, j, tid, mut next| match be32(b, 4) {
            T_DESCRIPTOR => {
                need_time_check |= !self.tail_ok(b);
                let n = self.tags(b).len();
                if self.v1() && !need_time_check && end.is_none() {
                    crc_v1 = crc32_be(crc_v1, b);
                    for _ in 0..n {
                        self.read(next, &mut data)?;
                        crc_v1 = crc32_be(crc_v1, &data);
                        next = self.advance(next, 1);
                    }
                }
                Ok(Some(n as u64))
            }
            T_COMMIT => {
                let time = be64(b, 48);
                if need_time_check && time >= last_time {
                    let what = "a descriptor or revoke block has a bad checksum, yet its \
                                commit block is not older than the previous one";
                    return Err(self.corrupt(*tid, j, what.into()));
                }
                if need_time_check {
                    return Ok(None); // stale blocks of an older journal: the log ends here
                }
                if self.v1() && end.is_some() {
                    failed = end;
                    return Ok(None);
                }
                let (kind, size, found) = (b[12], b[13], be32(b, 16));
                let ok = if self.v1() {
                    (kind, size, found) == (1, 4, crc_v1) || (kind, size, found) == (0, 0, 0)
                } else {
                    self.commit_ok(b)
                };
                if ok {
                    crc_v1 = !0;
                } else if time < last_time {
                    return Ok(None);
                } else {
                    // Keep the first failure: replaying past a bad commit is never right.
                    end.get_or_insert(*tid);
                    if !self.has(J_ASYNC_COMMIT) {
                        failed = Some(*tid);
                        return Ok(None);
                    }
                }
                last_time = time;
                *tid = tid.wrapping_add(1);
                Ok(Some(0))
            }
            T_REVOKE => {
                need_time_check |= !self.tail_ok(b);
                Ok(Some(0))
            }
            _ => Ok(None),
        })?;
        Ok((end.unwrap_or(stop), failed))
    }

    /// Passes 2 (index the copies) and 3 (apply revokes) over transactions before `end`.
    fn replay(&self, end: u32) -> Result<Replay, FsError> {
        let mut r = Replay::default();
        let mut data = vec![0u8; self.bs];
        for revokes in [false, true] {
            let stop = self.walk(Some(end), |b, j, tid, next| match (be32(b, 4), revokes) {
                (T_DESCRIPTOR, _) if !self.tail_ok(b) => {
                    Err(self.corrupt(*tid, j, "descriptor with a bad checksum".into()))
                }
                (T_DESCRIPTOR, false) => self.index(b, j, *tid, next, &mut data, &mut r),
                (T_DESCRIPTOR, true) => Ok(Some(self.tags(b).len() as u64)),
                (T_REVOKE, true) => self.revoke(b, j, *tid, &mut r),
                (T_REVOKE, false) => Ok(Some(0)),
                (T_COMMIT, _) => {
                    *tid = tid.wrapping_add(1);
                    Ok(Some(0))
                }
                _ => Ok(None),
            })?;
            if stop != end {
                return Err(corrupt(
                    self.name,
                    format!("journal replay stopped at {stop}, not {end}"),
                ));
            }
        }
        Ok(r)
    }

    /// Records the data blocks following descriptor `b` (at journal block `j`).
    fn index(
        &self,
        b: &[u8],
        j: u32,
        tid: u32,
        mut next: u32,
        data: &mut [u8],
        r: &mut Replay,
    ) -> Result<Option<u64>, FsError> {
        let tags = self.tags(b);
        for tag in &tags {
            let log = next;
            next = self.advance(next, 1);
            if tag.block >= self.fs_blocks {
                let (blk, n) = (tag.block, self.fs_blocks);
                let what = format!(
                    "logs fs block {blk} (journal block {log}) past the filesystem's {n} blocks"
                );
                return Err(self.corrupt(tid, j, what));
            }
            if self.tail != 0 {
                self.read(log, data)?;
                if !self.data_ok(tag, tid, data) {
                    r.bad.entry(tag.block).or_default().push((tid, log));
                    continue;
                }
            }
            r.copies
                .insert(tag.block, (tid, log, tag.flags & TAG_ESCAPE != 0));
        }
        Ok(Some(tags.len() as u64))
    }

    /// Drops copies of the blocks revoke block `b` lists, from transactions up to `tid`.
    fn revoke(&self, b: &[u8], j: u32, tid: u32, r: &mut Replay) -> Result<Option<u64>, FsError> {
        let (count, rec) = (be32(b, 12) as usize, if self.has(J_64BIT) { 8 } else { 4 });
        if count > self.bs - self.tail {
            return Err(self.corrupt(tid, j, format!("revoke block claims {count} bytes")));
        }
        for o in (16..count.saturating_sub(rec - 1)).step_by(rec) {
            let blk = if rec == 8 {
                be64(b, o)
            } else {
                be32(b, o) as u64
            };
            r.records += 1;
            if r.copies.get(&blk).is_some_and(|c| !tid_gt(c.0, tid)) {
                r.copies.remove(&blk);
                r.revoked += 1;
            }
            if let Some(v) = r.bad.get_mut(&blk) {
                v.retain(|&(t, _)| tid_gt(t, tid));
            }
        }
        Ok(Some(0))
    }

    /// Whether the fast-commit area holds commits following the last full transaction: its first
    /// block opens with a head tag naming transaction `end` (as `ext4_fc_replay_scan` checks).
    fn fast_commit_in_use(&self, end: u32) -> Result<Option<u32>, FsError> {
        let fc_first = self.sb.last + 1;
        if !self.has(J_FAST_COMMIT) || fc_first >= self.sb.maxlen || self.sb.start == 0 {
            return Ok(None);
        }
        let mut b = vec![0u8; self.bs];
        self.read(fc_first, &mut b)?;
        let head = le16(&b, 0) == FC_TAG_HEAD && le16(&b, 2) >= 8 && le32(&b, 8) == end;
        Ok(head.then_some(fc_first))
    }
}

/// Counts of a replay, for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayStats {
    /// Committed transactions replayed.
    pub transactions: u32,
    /// Journal `s_sequence`: the first transaction looked for.
    pub first_sequence: u32,
    /// Last transaction replayed, if any.
    pub last_sequence: Option<u32>,
    /// Distinct filesystem blocks the overlay substitutes from the journal.
    pub blocks_replayed: u64,
    /// Revoke records read from committed transactions.
    pub revoke_records: u64,
    /// Distinct blocks whose newest journal copy a revoke suppressed.
    pub blocks_revoked: u64,
    /// Journal format, e.g. "v2 64bit csum_v3 revoke".
    pub layout: String,
}

/// The filesystem as seen after replay: base reads with journal copies and patched superblocks.
struct Overlay {
    base: Dev,
    bs: u64,
    /// fs block -> (byte offset of its journal copy, whose leading jbd2 magic was escaped).
    blocks: BTreeMap<u64, (u64, bool)>,
    /// (byte offset, bytes), applied in order after block substitution.
    patches: Vec<(u64, Vec<u8>)>,
}

impl Overlay {
    fn read_blocks(&self, buf: &mut [u8], offset: u64) -> Result<(), ImageError> {
        self.base.read_at(buf, offset)?;
        let end = offset + buf.len() as u64;
        if buf.is_empty() {
            return Ok(());
        }
        for (&blk, &(at, escape)) in self.blocks.range(offset / self.bs..=(end - 1) / self.bs) {
            let start = blk * self.bs;
            let (lo, hi) = (offset.max(start), end.min(start + self.bs));
            self.base.read_at(
                &mut buf[(lo - offset) as usize..(hi - offset) as usize],
                at + lo - start,
            )?;
            for (i, m) in JBD2_MAGIC.to_be_bytes().into_iter().enumerate() {
                let o = start + i as u64;
                if escape && (lo..hi).contains(&o) {
                    buf[(o - offset) as usize] = m;
                }
            }
        }
        Ok(())
    }
}

impl BlockDevice for Overlay {
    fn size(&self) -> u64 {
        self.base.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ImageError> {
        let (len, size) = (buf.len(), self.size());
        let end = offset.checked_add(len as u64).filter(|&e| e <= size);
        let end = end.ok_or_else(|| ImageError::OutOfRange {
            path: self.name().into(),
            offset,
            len,
            size,
        })?;
        self.read_blocks(buf, offset)?;
        for (at, bytes) in &self.patches {
            let (lo, hi) = (offset.max(*at), end.min(at + bytes.len() as u64));
            if lo < hi {
                buf[(lo - offset) as usize..(hi - offset) as usize]
                    .copy_from_slice(&bytes[(lo - at) as usize..(hi - at) as usize]);
            }
        }
        Ok(())
    }
    fn name(&self) -> String {
        format!("{} (journal replayed)", self.base.name())
    }
    /// The raw blocks underneath: a writer must first write [`Recovery::changed_blocks`].
    fn layout(&self) -> Option<Vec<crate::image::Extent>> {
        self.base.layout()
    }
}

/// A replayed journal: the overlay device, its statistics and what went wrong on the way.
pub struct Recovery {
    overlay: Arc<Overlay>,
    /// What was replayed.
    pub stats: ReplayStats,
    /// Problems recovered from as e2fsck does (bad data-block or commit checksums); the
    /// overlay's superblock then carries the flags e2fsck sets (not valid, errors).
    pub warnings: Vec<String>,
}

impl Recovery {
    /// The filesystem with the journal replayed; same size and block layout as the input.
    pub fn dev(&self) -> Dev {
        self.overlay.clone()
    }
    /// Filesystem block size in bytes.
    pub fn block_size(&self) -> u64 {
        self.overlay.bs
    }
    /// Filesystem blocks substituted from the journal, ascending.
    pub fn replayed_blocks(&self) -> impl Iterator<Item = u64> + '_ {
        self.overlay.blocks.keys().copied()
    }
    /// Every block whose overlay content may differ from the input, ascending: the replayed
    /// blocks plus those holding the ext and journal superblocks. Writing these blocks, read
    /// through [`Recovery::dev`], to a copy of the input applies the recovery.
    pub fn changed_blocks(&self) -> Vec<u64> {
        let bs = self.overlay.bs;
        let mut v: Vec<u64> = self.replayed_blocks().collect();
        for (at, bytes) in &self.overlay.patches {
            v.extend(at / bs..=(at + bytes.len() as u64 - 1) / bs);
        }
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Replays the journal of the ext3/ext4 filesystem on `dev` (a partition or LV) in memory.
///
/// `Ok(None)`: nothing to do (`needs_recovery` clear, or no journal). Errors: `Unsupported` for
/// an external journal, fast commits in use or unknown journal features; `Corrupt` (naming the
/// journal block and transaction) where the kernel would refuse to recover.
pub fn recover(dev: Dev) -> Result<Option<Recovery>, FsError> {
    let name = &dev.name();
    let Some((sb, jsb, runs, jsb_at)) = locate(&*dev, name)? else {
        return Ok(None);
    };
    let has = |f| jsb.incompat & f != 0;
    let j = Journal {
        dev: &*dev,
        name,
        bs: sb.bs as usize,
        runs,
        sb: &jsb,
        fs_blocks: sb.blocks,
        seed: crc32c(!0, &jsb.raw[0x30..0x40]),
        tag_bytes: match () {
            _ if has(J_CSUM_V3) => 16,
            _ => 8 + 4 * has(J_64BIT) as usize + 2 * has(J_CSUM_V2) as usize,
        },
        tail: if has(J_CSUM_V2 | J_CSUM_V3) { 4 } else { 0 },
    };
    // A clean log with the flag set: the kernel and e2fsck replay nothing and move on.
    let (end, failed) = if jsb.start == 0 {
        (jsb.sequence, None)
    } else {
        j.scan()?
    };
    if let Some(at) = j.fast_commit_in_use(end)? {
        let last = end.wrapping_sub(1);
        let what =
            format!("fast-commit blocks in use (journal block {at}, after transaction {last})");
        return Err(unsupported(
            name,
            format!("{what}; revirt does not replay fast commits"),
        ));
    }
    let r = if jsb.start == 0 {
        Replay::default()
    } else {
        j.replay(end)?
    };
    let mut warnings = vec![];
    for (b, (t, l)) in r
        .bad
        .iter()
        .flat_map(|(b, v)| v.iter().map(move |c| (b, c)))
    {
        let what = format!("block {b}'s copy (journal block {l}) has a bad checksum");
        warnings.push(format!("journal transaction {t}: {what}; not replayed"));
    }
    if let Some(t) = failed {
        warnings.push(format!(
            "journal transaction {t}: bad commit checksum; replay stops before it"
        ));
    }
    let transactions = end.wrapping_sub(jsb.sequence);
    let stats = ReplayStats {
        transactions,
        first_sequence: jsb.sequence,
        last_sequence: (transactions > 0).then(|| end.wrapping_sub(1)),
        blocks_replayed: r.copies.len() as u64,
        revoke_records: r.records,
        blocks_revoked: r.revoked,
        layout: jsb.layout(),
    };
    let blocks = (r.copies.iter()).map(|(&b, &(_, log, esc))| (b, (j.phys(log) * sb.bs, esc)));
    let mut overlay = Overlay {
        base: dev.clone(),
        bs: sb.bs,
        blocks: blocks.collect(),
        patches: vec![],
    };
    let bad_data = r.bad.values().any(|v| !v.is_empty());
    let ext = ext_sb_after(&overlay, name, bad_data, failed.is_some() || jsb.errno != 0)?;
    overlay.patches = vec![(jsb_at, journal_sb_after(&jsb, end)), (1024, ext)];
    Ok(Some(Recovery {
        overlay: Arc::new(overlay),
        stats,
        warnings,
    }))
}

/// The superblocks, the runs covering the whole journal and the journal superblock's offset.
type Located = (ExtSb, JSb, Vec<Run>, u64);

/// Finds and checks the journal of a filesystem that needs recovery.
fn locate(dev: &dyn BlockDevice, name: &str) -> Result<Option<Located>, FsError> {
    if dev.size() < 2048 {
        return Err(corrupt(name, "device too small for an ext superblock"));
    }
    let raw = read_vec(dev, 1024, 1024)?;
    let sb = ExtSb::parse(&raw, name)?;
    if sb.incompat & INCOMPAT_RECOVER == 0 || le32(&raw, 0x5C) & COMPAT_HAS_JOURNAL == 0 {
        return Ok(None);
    }
    let (ino, jdev, juuid) = (le32(&raw, 0xE0), le32(&raw, 0xE4), &raw[0xD0..0xE0]);
    if ino == 0 && (jdev != 0 || juuid.iter().any(|&b| b != 0)) {
        let uuid = super::probe::uuid_str(juuid);
        let what = format!("external journal (device {jdev:#x}, uuid {uuid}) needs recovery");
        return Err(unsupported(
            name,
            format!("{what}; revirt replays only internal journals"),
        ));
    }
    if ino == 0 || sb.blocks.checked_mul(sb.bs).is_none_or(|b| b > dev.size()) {
        let what = format!(
            "no journal inode, or {} blocks overrun the device",
            sb.blocks
        );
        return Err(corrupt(name, what));
    }
    let runs = journal_runs(dev, &sb, ino as u64, name)?;
    let Some(first) = runs.iter().find(|r| r.0 == 0) else {
        return Err(corrupt(name, "journal inode: block 0 is not mapped"));
    };
    let jsb_at = first.1 * sb.bs;
    let jsb = JSb::parse(read_vec(dev, jsb_at, 1024)?, sb.bs, name)?;
    let runs = covering(runs, jsb.maxlen as u64).map_err(|at| {
        let what = format!("block {at} of {} unmapped or mapped twice", jsb.maxlen);
        corrupt(name, format!("journal inode: {what}"))
    })?;
    Ok(Some((sb, jsb, runs, jsb_at)))
}

/// The journal superblock e2fsck writes after recovery: empty log, sequence `end + 1` (what
/// `jbd2_journal_recover` leaves), errno cleared (folded into the fs state), checksum redone.
fn journal_sb_after(jsb: &JSb, end: u32) -> Vec<u8> {
    let mut raw = jsb.raw.clone();
    raw[0x18..0x1C].copy_from_slice(&end.wrapping_add(1).to_be_bytes());
    raw[0x1C..0x24].fill(0); // s_start, s_errno
    if jsb.incompat & (J_CSUM_V2 | J_CSUM_V3) != 0 {
        let sum = crc32c_without(!0, &raw, 0xFC);
        raw[0xFC..0x100].copy_from_slice(&sum.to_be_bytes());
    }
    raw
}

/// The replayed ext superblock with `needs_recovery` cleared and e2fsck's state flags: not
/// valid after bad data checksums, errors after a bad commit or a journal errno.
fn ext_sb_after(
    ov: &Overlay,
    name: &str,
    bad_data: bool,
    errors: bool,
) -> Result<Vec<u8>, FsError> {
    let mut b = vec![0u8; 1024];
    ov.read_blocks(&mut b, 1024)?;
    if le16(&b, 0x38) != EXT_MAGIC {
        return Err(corrupt(
            name,
            "the superblock replayed from the journal has no ext magic",
        ));
    }
    let incompat = le32(&b, 0x60) & !INCOMPAT_RECOVER;
    b[0x60..0x64].copy_from_slice(&incompat.to_le_bytes());
    let mut state = le16(&b, 0x3A);
    if bad_data {
        state &= !STATE_VALID;
    }
    if errors {
        state |= STATE_ERROR;
    }
    b[0x3A..0x3C].copy_from_slice(&state.to_le_bytes());
    if le32(&b, 0x64) & RO_COMPAT_METADATA_CSUM != 0 {
        let sum = crc32c(!0, &b[..0x3FC]);
        b[0x3FC..].copy_from_slice(&sum.to_le_bytes());
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{raw::RawImage, MemDev};
    use std::os::unix::fs::FileExt;
    use std::path::PathBuf;
    use std::process::Command;

    fn run(cmd: &str, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(cmd).args(args).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout),
            text(&out.stderr),
        )
    }

    fn xorshift(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// "a,a+1,...": a debugfs block list.
    fn list(from: u64, n: u64) -> String {
        (from..from + n)
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A filesystem image in a temporary directory, made and edited with e2fsprogs.
    struct Img {
        dir: tempfile::TempDir,
        path: PathBuf,
        bs: u64,
    }

    /// `mkfs.ext4 -q -F ARGS IMG SIZE`, or None (printing why) when e2fsprogs is missing.
    fn mkfs(args: &[&str], size: &str) -> Option<Img> {
        let tools = ["mkfs.ext4", "debugfs", "e2fsck"];
        if let Some(t) = tools
            .iter()
            .find(|t| Command::new(t).arg("-V").output().is_err())
        {
            eprintln!("skipping: host tool {t} not found (apt-get install e2fsprogs)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs.img");
        let p = path.to_str().unwrap();
        let (code, _, err) = run("mkfs.ext4", &[&["-q", "-F"], args, &[p, size]].concat());
        assert_eq!(code, 0, "mkfs.ext4 {args:?}: {err}");
        let bs = 1024 << le32(&std::fs::read(&path).unwrap()[1024..], 0x18);
        Some(Img { dir, path, bs })
    }

    impl Img {
        fn at(&self, off: u64, len: usize) -> Vec<u8> {
            let mut v = vec![0; len];
            let f = std::fs::File::open(&self.path).unwrap();
            f.read_exact_at(&mut v, off).unwrap();
            v
        }
        fn put(&self, off: u64, data: &[u8]) {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&self.path)
                .unwrap();
            f.write_all_at(data, off).unwrap();
        }
        /// A file of `blocks` pseudo-random blocks; the first starts with the jbd2 magic if
        /// `magic` (so debugfs logs it escaped).
        fn data(&self, name: &str, blocks: usize, seed: u64, magic: bool) -> String {
            let mut s = seed | 1;
            let n = blocks * self.bs as usize;
            let mut v: Vec<u8> = (0..n).map(|_| xorshift(&mut s) as u8).collect();
            if magic {
                v[..4].copy_from_slice(&JBD2_MAGIC.to_be_bytes());
            }
            let p = self.dir.path().join(name);
            std::fs::write(&p, v).unwrap();
            p.to_str().unwrap().into()
        }
        fn debugfs(&self, script: &str) -> String {
            let cmds = self.dir.path().join("cmds");
            std::fs::write(&cmds, format!("{script}\n")).unwrap();
            let args = [
                "-w",
                "-f",
                cmds.to_str().unwrap(),
                self.path.to_str().unwrap(),
            ];
            let (code, out, err) = run("debugfs", &args);
            let errors: Vec<&str> = err.lines().filter(|l| !l.starts_with("debugfs ")).collect();
            assert!(code == 0 && errors.is_empty(), "debugfs: {errors:?}");
            out
        }
        /// Byte offsets of journal blocks, from the map debugfs reports (extents or blocks).
        fn jmap(&self) -> impl Fn(u64) -> u64 {
            let stat = self.debugfs("stat <8>");
            let tail = &stat[stat.find("BLOCKS:").or(stat.find("EXTENTS:")).unwrap()..];
            let re = regex::Regex::new(r"\((\d+)(?:-(\d+))?\):(\d+)").unwrap();
            let n = |c: &regex::Captures, i| c.get(i).map(|m| m.as_str().parse::<u64>().unwrap());
            let runs: Vec<(u64, u64, u64)> = (re.captures_iter(tail))
                .map(|c| {
                    (
                        n(&c, 1).unwrap(),
                        n(&c, 2).or(n(&c, 1)).unwrap(),
                        n(&c, 3).unwrap(),
                    )
                })
                .collect();
            let bs = self.bs;
            move |j| {
                let r = runs
                    .iter()
                    .find(|r| (r.0..=r.1).contains(&j))
                    .expect("mapped");
                (r.2 + j - r.0) * bs
            }
        }
        fn jphys(&self, j: u64) -> u64 {
            self.jmap()(j)
        }
        /// The nth (0-based) journal block debugfs's logdump reports for `what`.
        fn logged(&self, what: &str, nth: usize) -> u64 {
            let re = regex::Regex::new(&format!(r"{what} at (?:journal )?block (\d+)")).unwrap();
            let log = self.debugfs("logdump -a");
            let found = re.captures_iter(&log).nth(nth).expect(what)[1].parse();
            found.unwrap()
        }
        fn commit_block(&self, tid: u32) -> u64 {
            self.logged(&format!(r"sequence {tid}, type 2 \(commit block\)"), 0)
        }
        /// e2fsck's replay of a copy of the image, and what it said.
        fn fsck(&self) -> (PathBuf, String) {
            let copy = self.dir.path().join("fsck.img");
            std::fs::copy(&self.path, &copy).unwrap();
            let args = ["-y", "-E", "journal_only", copy.to_str().unwrap()];
            let (code, out, err) = run("e2fsck", &args);
            assert!((0..4).contains(&code), "e2fsck exit {code}: {out}{err}");
            (copy, out)
        }
        fn recover(&self) -> Result<Option<Recovery>, FsError> {
            recover(Arc::new(RawImage::open(&self.path).unwrap()))
        }
        /// Flips bit 0 of byte `at` of journal block `j`.
        fn flip(&self, j: u64, at: u64) {
            let off = self.jphys(j) + at;
            self.put(off, &[self.at(off, 1)[0] ^ 1]);
        }
    }

    /// Recomputes the checksum of the jbd2 superblock at `jsb` (v2/v3) or the ext one at `sb`.
    fn fix_csums(jsb: Option<&mut [u8]>, sb: Option<&mut [u8]>) {
        if let Some(j) = jsb.filter(|j| be32(j, 0x28) & (J_CSUM_V2 | J_CSUM_V3) != 0) {
            let sum = crc32c_without(!0, j, 0xFC);
            j[0xFC..0x100].copy_from_slice(&sum.to_be_bytes());
        }
        if let Some(s) = sb.filter(|s| le32(s, 0x64) & RO_COMPAT_METADATA_CSUM != 0) {
            let sum = crc32c(!0, &s[..0x3FC]);
            s[0x3FC..0x400].copy_from_slice(&sum.to_le_bytes());
        }
    }

    /// Requires every byte of the overlay to equal e2fsck's replay of a copy, except what e2fsck
    /// sets from the clock and its I/O counters, taken from its output before the superblock
    /// checksum is recomputed (so that is compared): s_wtime (0x30) and s_wtime_hi (0x274),
    /// s_kbytes_written (0x178, it adds the KiB it wrote). With `keep_sequence`, also the
    /// journal s_sequence: after a failed recovery e2fsck leaves it, revirt still advances it
    /// (module doc). Partial reads around replayed blocks are checked too.
    fn check(img: &Img, keep_sequence: bool) -> Recovery {
        let (want_path, said) = img.fsck();
        let rec = img.recover().unwrap().expect("journal needs recovery");
        let (ov, want) = (rec.dev(), std::fs::File::open(&want_path).unwrap());
        assert_eq!(ov.size(), want.metadata().unwrap().len());
        let jsb_at = rec.overlay.patches[0].0 as usize;
        let (mut got, mut exp) = (vec![0u8; ov.size() as usize], vec![0u8; ov.size() as usize]);
        ov.read_at(&mut got, 0).unwrap();
        want.read_exact_at(&mut exp, 0).unwrap();
        for r in [0x30..0x34, 0x178..0x180, 0x274..0x275] {
            got[1024 + r.start..1024 + r.end].copy_from_slice(&exp[1024 + r.start..1024 + r.end]);
        }
        if keep_sequence {
            got[jsb_at + 0x18..jsb_at + 0x1C].copy_from_slice(&exp[jsb_at + 0x18..jsb_at + 0x1C]);
        }
        let (head, rest) = got.split_at_mut(jsb_at);
        fix_csums(Some(&mut rest[..1024]), Some(&mut head[1024..2048]));
        let at = |i: usize| (i as u64 / img.bs, i as u64 % img.bs, got[i], exp[i]);
        let diffs: Vec<_> = (0..got.len())
            .filter(|&i| got[i] != exp[i])
            .map(at)
            .take(20)
            .collect();
        let w = &rec.warnings;
        assert!(
            diffs.is_empty(),
            "(block, offset, ours, e2fsck's): {diffs:?}\n{said}\n{w:?}"
        );
        for b in rec
            .replayed_blocks()
            .filter(|&b| b * img.bs > 4096)
            .take(64)
        {
            let (at, bs) = (b * img.bs, img.bs as usize);
            for (lo, len) in [
                (at + 1, 7),
                (at - 3, 10),
                (at + img.bs - 5, 9),
                (at - 100, 2 * bs),
            ] {
                let mut a = vec![0; len];
                if ov.read_at(&mut a, lo).is_ok() {
                    assert_eq!(
                        a,
                        exp[lo as usize..lo as usize + len],
                        "{len} bytes at {lo}"
                    );
                }
            }
        }
        rec
    }

    #[test]
    fn crc_vectors() {
        assert_eq!(!crc32c(!0, b"123456789"), 0xE306_9283);
        assert_eq!(crc32_be(!0, b"123456789"), 0x0376_E6E7); // CRC-32/MPEG-2
        assert_eq!(crc32c_zeros(7, 300), crc32c(7, &[0; 300]));
    }

    /// Default ext4 with 4 KiB blocks (64bit + csum_v3): an escaped block, the superblock in the
    /// journal, a block logged again after its revoke, a revoke of an older copy.
    #[test]
    fn csum_v3_revokes_escape_superblock() {
        let Some(img) = mkfs(&["-b", "4096"], "64M") else {
            return;
        };
        let (d1, d2) = (img.data("d1", 3, 1, true), img.data("d2", 2, 2, false));
        let (d3, d4) = (img.data("d3", 1, 3, false), img.data("d4", 1, 4, false));
        let mut b0 = img.at(0, 4096);
        b0[1024 + 0x78..1024 + 0x80].copy_from_slice(b"replayed"); // the label
        b0[1024 + 0x60] |= INCOMPAT_RECOVER as u8;
        fix_csums(None, Some(&mut b0[1024..2048]));
        let sb = img.dir.path().join("sb");
        std::fs::write(&sb, &b0).unwrap();
        let sb = sb.to_str().unwrap();
        // debugfs misplaces a transaction after one with revokes: end the session there.
        img.debugfs(&format!(
            "jo -c\njw -b 9000,9001,9002 {d1}\njw -b 9001,9100 -r 9002 {d2}\njc"
        ));
        img.debugfs(&format!(
            "jo\njw -b 0 {sb}\njw -b 9002 {d3}\njw -b 9200 -r 9100 {d4}\njc"
        ));
        let rec = check(&img, false);
        let st = &rec.stats;
        assert_eq!(
            (st.transactions, st.first_sequence, st.last_sequence),
            (5, 1, Some(5))
        );
        assert_eq!(
            (st.blocks_replayed, st.blocks_revoked, st.revoke_records),
            (5, 1, 2)
        );
        assert_eq!(st.layout, "v2 64bit csum_v3 revoke");
        assert_eq!(
            rec.replayed_blocks().collect::<Vec<_>>(),
            [0, 9000, 9001, 9002, 9200]
        );
        assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
        let mut head = [0u8; 12];
        rec.dev().read_at(&mut head, 9000 * 4096).unwrap();
        assert_eq!(
            head[..4],
            JBD2_MAGIC.to_be_bytes(),
            "escaped magic restored"
        );
        rec.dev().read_at(&mut head, 1024 + 0x78).unwrap();
        assert_eq!(&head[..8], b"replayed");
        let changed = rec.changed_blocks(); // the replayed ones and the journal superblock's
        assert!(changed.contains(&0) && changed.len() == 6, "{changed:?}");
        assert!(
            recover(rec.dev()).unwrap().is_none(),
            "the overlay needs no recovery"
        );
    }

    /// No checksums, 1 KiB blocks: 100 blocks need two descriptors; the last transaction's
    /// commit block is zeroed (torn), so it is ignored.
    #[test]
    fn no_checksums_multi_descriptor_torn_commit() {
        let Some(img) = mkfs(&["-O", "^metadata_csum", "-b", "1024"], "32M") else {
            return;
        };
        let (big, small) = (
            img.data("big", 100, 5, false),
            img.data("small", 3, 6, true),
        );
        let (l1, l2) = (list(20000, 100), list(20050, 3));
        img.debugfs(&format!(
            "jo\njw -b {l1} {big}\njw -b {l2} -r 20005 {small}\njc"
        ));
        img.debugfs(&format!("jo\njw -b {} {small}\njc", list(25000, 3)));
        img.put(img.jphys(img.commit_block(3)), &[0; 1024]);
        let rec = check(&img, false);
        assert_eq!((rec.stats.transactions, rec.stats.blocks_replayed), (2, 99));
        assert_eq!(rec.stats.layout, "v2 64bit no checksums revoke");
        assert!(!rec.replayed_blocks().any(|b| b == 20005 || b >= 25000));
    }

    /// ext4 without metadata_csum, `jo -c`: v1 crc32 commit sums; a trailing uncommitted
    /// transaction (`jw -c`) is ignored; a wrong sum ends the replay before its transaction.
    #[test]
    fn checksum_v1_uncommitted_tail() {
        let Some(img) = mkfs(&["-O", "^metadata_csum"], "32M") else {
            return;
        };
        let (a, b) = (img.data("a", 4, 7, false), img.data("b", 2, 8, false));
        let l = list(10000, 4);
        img.debugfs(&format!(
            "jo -c\njw -b {l} {a}\njw -b 10001,12000 {b}\njw -c -b 13000 {b}\njc"
        ));
        let rec = check(&img, false);
        assert_eq!((rec.stats.transactions, rec.stats.blocks_replayed), (2, 5));
        assert_eq!(rec.stats.layout, "v2 64bit checksum_v1");
        img.flip(img.commit_block(2), 16);
        let rec = check(&img, false);
        assert_eq!((rec.stats.transactions, rec.warnings.len()), (1, 1));
    }

    /// 32-bit ext4 with csum_v2 (10-byte tags, 16-bit checksums); a corrupt data block in a
    /// middle transaction is skipped (the older copy stays) and the rest replayed, as e2fsck does.
    #[test]
    fn csum_v2_32bit_bad_data_block() {
        let Some(img) = mkfs(&["-O", "^64bit", "-b", "1024"], "32M") else {
            return;
        };
        let (a, b) = (img.data("a", 2, 9, false), img.data("b", 2, 10, false));
        img.debugfs(&format!(
            "jo -c -v 2\njw -b 15000 {a}\njw -b 15000,15001 {b}\njw -b 15002 {a}\njc"
        ));
        assert_eq!(check(&img, false).stats.layout, "v2 32bit csum_v2");
        img.flip(img.logged("FS block 15000 logged", 1), 500);
        let rec = check(&img, true);
        assert_eq!((rec.stats.transactions, rec.stats.blocks_replayed), (3, 3));
        assert_eq!(rec.warnings.len(), 1, "{:?}", rec.warnings);
        let mut got = vec![0u8; 1024];
        rec.dev().read_at(&mut got, 15000 * 1024).unwrap();
        assert_eq!(
            got,
            std::fs::read(&a).unwrap()[..1024],
            "transaction 1's copy stays"
        );
    }

    /// Moves the first 80 log blocks (the tests' logs are shorter) to start `before_end` blocks
    /// before the end of the log area, so the log wraps to `s_first` (debugfs never wraps).
    /// Log blocks do not depend on their position.
    fn rotate(img: &Img, before_end: u64) {
        let (map, bs) = (img.jmap(), img.bs as usize);
        let mut jsb = img.at(map(0), 1024);
        let (maxlen, first, start) = (be32(&jsb, 0x10), be32(&jsb, 0x14), be32(&jsb, 0x1C));
        let (maxlen, first, start) = (maxlen as u64, first as u64, start as u64);
        let pos = |i: u64| map(first + i % (maxlen - first));
        let live: Vec<Vec<u8>> = (0..80)
            .map(|i| img.at(pos(start - first + i), bs))
            .collect();
        let new_start = maxlen - before_end;
        for (i, b) in live.iter().enumerate() {
            img.put(pos(new_start - first + i as u64), b);
        }
        jsb[0x1C..0x20].copy_from_slice(&(new_start as u32).to_be_bytes());
        fix_csums(Some(&mut jsb), None);
        img.put(map(0), &jsb);
    }

    /// The smallest journal (1024 blocks of 1 KiB), csum_v3, with its log wrapping around the
    /// end; then a bad commit checksum in the middle ends the replay there (a failed commit).
    #[test]
    fn wrap_around_small_journal_and_bad_commit() {
        let Some(img) = mkfs(&["-b", "1024", "-J", "size=1"], "32M") else {
            return;
        };
        let d = img.data("d", 8, 11, false);
        let script: String = (0..6)
            .map(|t| format!("jw -b {} {d}\n", list(9000 + 3 * t, 8)))
            .collect();
        img.debugfs(&format!("jo -c\n{script}jc"));
        rotate(&img, 20);
        let rec = check(&img, false);
        assert_eq!((rec.stats.transactions, rec.stats.blocks_replayed), (6, 23));
        // Past the commit header: newer kernels accept a commit block whose checksum covers its
        // header alone (a torn zero tail), e2fsck 1.47 does not; revirt follows the kernel.
        let commit = img.commit_block(4);
        img.flip(commit, 300);
        assert_eq!(img.recover().unwrap().unwrap().stats.transactions, 6);
        img.flip(commit, 24); // inside the header (h_chksum[1]): both reject
        let rec = check(&img, false);
        assert_eq!(rec.stats.transactions, 3);
        assert!(rec.warnings[0].contains("commit"), "{:?}", rec.warnings);
    }

    /// ext3 (block map) with a journal large enough for triple-indirect blocks, its log wrapping
    /// from the triple-indirect part back to the direct blocks.
    #[test]
    fn ext3_block_map_triple_indirect_wrap() {
        let Some(img) = mkfs(&["-t", "ext3", "-b", "1024", "-J", "size=66"], "150M") else {
            return;
        };
        let d = img.data("d", 4, 12, true);
        img.debugfs(&format!(
            "jo\njw -b 90000,90001 {d}\njw -b 90001,90002,90003 -r 90000 {d}\njc"
        ));
        img.debugfs(&format!("jo\njw -b 90004 {d}\njc"));
        rotate(&img, 3);
        let rec = check(&img, false);
        let st = &rec.stats;
        assert_eq!(
            (st.transactions, st.blocks_replayed, st.blocks_revoked),
            (3, 4, 1)
        );
        assert_eq!(st.layout, "v2 32bit no checksums revoke");
    }

    /// needs_recovery set over an empty log: nothing replayed, flag cleared, sequence bumped.
    #[test]
    fn needs_recovery_with_empty_log() {
        let Some(img) = mkfs(&[], "16M") else { return };
        assert!(img.recover().unwrap().is_none());
        img.debugfs("feature needs_recovery");
        let rec = check(&img, false);
        assert_eq!((rec.stats.transactions, rec.stats.blocks_replayed), (0, 0));
    }

    /// The fast-commit area is skipped when unused and refused when it holds commits.
    #[test]
    fn fast_commit() {
        let Some(img) = mkfs(&["-O", "fast_commit", "-b", "4096"], "64M") else {
            return;
        };
        let jsb_at = img.jphys(0);
        let mut jsb = img.at(jsb_at, 1024);
        jsb[0x28 + 3] |= J_FAST_COMMIT as u8; // as the kernel sets it at mount
        img.put(jsb_at, &jsb);
        let d = img.data("d", 2, 13, false);
        img.debugfs(&format!("jo -c\njw -b 9000,9001 {d}\njc"));
        assert!(check(&img, false).stats.layout.ends_with("fast_commit"));
        let jsb = img.at(jsb_at, 1024);
        let fc_first = (be32(&jsb, 0x10) - be32(&jsb, 0x54)) as u64 + 1;
        let mut head = [0u8; 12]; // head tag, 8 bytes: features, tid 2 (after transaction 1)
        head[..4].copy_from_slice(&[FC_TAG_HEAD as u8, 0, 8, 0]);
        head[8] = 2;
        img.put(img.jphys(fc_first), &head);
        let err = img
            .recover()
            .err()
            .expect("fast commits refused")
            .to_string();
        assert!(err.contains("fast-commit blocks in use"), "{err}");
    }

    /// A small image with committed transactions, in memory, and its journal's byte offset.
    fn small_image() -> Option<(Vec<u8>, usize, usize)> {
        let img = mkfs(&["-b", "1024", "-J", "size=1"], "8M")?;
        let d = img.data("d", 3, 14, true);
        img.debugfs(&format!(
            "jo -c\njw -b 5000,5001 {d}\njw -b 5002 -r 5000 {d}\njc"
        ));
        Some((
            std::fs::read(&img.path).unwrap(),
            img.jphys(0) as usize,
            1024,
        ))
    }

    fn recover_mem(bytes: Vec<u8>) -> Result<Option<Recovery>, FsError> {
        recover(Arc::new(MemDev(bytes)))
    }

    #[test]
    fn corrupt_and_unsupported_journals_are_errors() {
        let Some((good, j, bs)) = small_image() else {
            return;
        };
        let err = |mutate: &dyn Fn(&mut Vec<u8>)| {
            let mut img = good.clone();
            mutate(&mut img);
            recover_mem(img).err().expect("refused")
        };
        let e = err(&|i| i[j] ^= 0xff).to_string();
        assert!(e.contains("journal superblock: bad magic"), "{e}");
        // A descriptor naming a block past the filesystem (checksums off so only that fails).
        let e = err(&|i| {
            i[j + 0x28..j + 0x2C].copy_from_slice(&3u32.to_be_bytes()); // revoke, 64bit
            i[j + bs + 12..j + bs + 16].copy_from_slice(&0x00ff_0000u32.to_be_bytes());
        });
        let msg = e.to_string();
        assert!(
            msg.contains("past the filesystem") && msg.contains("transaction 1"),
            "{msg}"
        );
        let e = err(&|i| {
            i[1024 + 0xE0..1024 + 0xE4].fill(0); // s_journal_inum
            i[1024 + 0xD0] = 0x42; // s_journal_uuid
        });
        assert!(matches!(e, FsError::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains("external journal"), "{e}");
        let e = err(&|i| i[j + 0x2B] |= 0x80); // unknown incompat feature
        assert!(matches!(e, FsError::Unsupported { .. }), "{e}");
    }

    /// Random bit flips in the journal and the superblock never panic, and when recovery
    /// succeeds the overlay reads.
    #[test]
    fn mutations_do_not_panic() {
        let Some((good, j, bs)) = small_image() else {
            return;
        };
        let (mut s, mut ok, mut err) = (0x9E37_79B9_7F4A_7C15u64, 0, 0);
        for _ in 0..500 {
            let mut img = good.clone();
            for _ in 0..1 + xorshift(&mut s) % 8 {
                let r = xorshift(&mut s);
                let at = if r & 7 == 0 {
                    1024 + (r >> 8) % 1024
                } else {
                    (j + (r >> 8) as usize % (8 * bs)) as u64
                };
                img[at as usize] ^= 1 << ((r >> 40) % 8);
            }
            match recover_mem(img) {
                Ok(Some(rec)) => {
                    for b in rec.changed_blocks() {
                        let mut buf = vec![0u8; bs + 3];
                        let _ = rec
                            .dev()
                            .read_at(&mut buf, (b * bs as u64).saturating_sub(1));
                    }
                    ok += 1
                }
                Ok(None) => ok += 1,
                Err(_) => err += 1,
            }
        }
        assert!(ok > 0 && err > 0, "ok {ok} err {err}");
    }
}
