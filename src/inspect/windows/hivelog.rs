//! Offline recovery of "dirty" Windows registry hives from their transaction logs
//! (`.LOG1` / `.LOG2`), in safe Rust, replaying the logs the way the Windows kernel does.
//!
//! A hive is dirty when its base block has a wrong checksum or its primary sequence number
//! (offset 4) differs from its secondary one (offset 8): a write to the primary file began and
//! did not finish, so the newest data is only in the logs. Two log formats exist:
//!
//! * old (Windows XP .. 8, file type 1 or 2): a base block copy, a "DIRT" dirty vector (one bit
//!   per 512-byte page of hive bins data) and the dirty pages in bit order;
//! * new (Windows 8.1 and later, file type 6): a 512-byte base block copy and "HvLE" log entries,
//!   each carrying a sequence number, the hive bins data size, page references and pages, guarded
//!   by two Marvin32 hashes.
//!
//! Reference: Maxim Suhanov, "Windows registry file format specification" (github.com/msuhanov/
//! regf), sections "Format of transaction log files", "Dirty state of a hive" and "Multiple
//! transaction log files". The code here is written from that text, not from any implementation.
//!
//! All offsets and sizes read from the files are checked; the recovered hive bins size is capped
//! ([`DEFAULT_MAX_BINS_SIZE`] or the caller's limit) and so is the number of entries per log.

use std::fmt;

/// Size of the base block (file header) of a primary hive file.
pub const BASE_BLOCK_SIZE: usize = 4096;
/// Default cap on the recovered hive bins data size: [`crate::fs::READ_LIMIT`] (256 MiB), the
/// largest hive file revirt reads. The recovered hive is allocated whole and one log entry of a
/// few KiB may declare any size up to the cap: at 2 GiB a 13 KiB log made revirt zero-fill
/// 2 GiB (issue #12). Windows' own limit is lower still.
pub const DEFAULT_MAX_BINS_SIZE: u32 = crate::fs::READ_LIMIT as u32;
/// Log pages, sectors and dirty-vector pages are 512 bytes as of Windows 8 (clustering factor 1).
const SECTOR: usize = 512;
/// Hive bins are multiples of 4096 bytes.
const HBIN_ALIGN: u32 = 4096;
/// A log entry is at least 512 bytes, so this bounds work on absurd input long before memory.
const MAX_ENTRIES_PER_LOG: usize = 1 << 20;
/// Seed of the Marvin32 hashes in new-format log entries (spec: bytes 82 EF 4D 88 7A 4E 55 C5).
pub const MARVIN_SEED: u64 = 0x82EF_4D88_7A4E_55C5;
/// Header of a new-format log entry: signature .. Hash-2.
const ENTRY_HEADER: usize = 40;

const FILE_TYPE_PRIMARY: u32 = 0;
const FILE_TYPE_LOG_OLD: u32 = 1;
/// Windows 2000 and earlier wrote 2 into old-format logs.
const FILE_TYPE_LOG_NT5: u32 = 2;
const FILE_TYPE_LOG_NEW: u32 = 6;

/// Which transaction log format was replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Dirty vector ("DIRT") and dirty pages, Windows XP .. 8.
    Old,
    /// "HvLE" log entries, Windows 8.1 and later.
    New,
}

/// One finding about one file: which file ("hive", "LOG1", "LOG2"), where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: &'static str,
    pub offset: u64,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Problem { file, offset, what } = self;
        write!(f, "{file} at offset {offset:#x}: {what}")
    }
}

fn problem(file: &'static str, offset: usize, what: impl Into<String>) -> Problem {
    Problem {
        file,
        offset: offset as u64,
        what: what.into(),
    }
}

/// Why a hive could not be recovered.
#[derive(Debug, thiserror::Error)]
pub enum HiveLogError {
    /// The primary file itself is unusable (too short, truncated, absurd size).
    #[error("{0}")]
    Hive(Problem),
    /// The hive is dirty and no log supplied a usable entry; one finding per file explains why.
    #[error("hive is dirty but no transaction log is usable: {}", join(.0))]
    NoUsableLog(Vec<Problem>),
}

fn join(ps: &[Problem]) -> String {
    let all: Vec<String> = ps.iter().map(Problem::to_string).collect();
    all.join("; ")
}

/// Result of [`recover`].
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// The whole recovered primary file: base block (clean, checksum recomputed) and hive bins,
    /// grown if the logs grew the hive; bytes past the hive bins are kept from the input.
    pub data: Vec<u8>,
    /// Log format replayed; `None` when the hive was clean and `data` is the input unchanged.
    pub format: Option<LogFormat>,
    /// New format: log entries applied; old format: 1 (the dirty vector).
    pub entries_applied: u32,
    /// Pages written into the hive bins (new: page references; old: 512-byte pages).
    pub pages_applied: u32,
    /// Sequence numbers of the first and last entry applied (old format: the log's own number).
    pub first_seq: Option<u32>,
    pub last_seq: Option<u32>,
    /// Logs whose data was applied, in application order ("LOG1", "LOG2").
    pub logs_used: Vec<&'static str>,
    /// Both sequence numbers of the recovered base block (last applied + 1, as after a flush).
    pub final_seq: u32,
    /// Informational findings: ignored logs, stale entries, where and why replay stopped.
    pub notes: Vec<Problem>,
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from(le32(b, off)?) | (u64::from(le32(b, off + 4)?) << 32))
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = b.get_mut(off..off + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// XOR-32 checksum of a base block: the XOR of its first 127 little-endian dwords (508 bytes),
/// with 0xFFFFFFFF mapped to 0xFFFFFFFE and 0 mapped to 1 (so it is never 0 or -1).
/// Precondition: `b` holds at least 508 bytes; a shorter slice is summed over its whole dwords.
pub fn base_block_checksum(b: &[u8]) -> u32 {
    let x = b[..b.len().min(508)].chunks_exact(4).fold(0u32, |c, d| {
        c ^ u32::from_le_bytes([d[0], d[1], d[2], d[3]])
    });
    match x {
        0xFFFF_FFFF => 0xFFFF_FFFE,
        0 => 1,
        x => x,
    }
}

/// The base block fields recovery needs.
#[derive(Debug, Clone, Copy)]
struct Base {
    seq1: u32,
    seq2: u32,
    timestamp: u64,
    file_type: u32,
    bins_size: u32,
    clustering: u32,
}

/// Parses a base block (of a primary file or a log), requiring signature and checksum.
fn read_base(b: &[u8], file: &'static str) -> Result<Base, Problem> {
    let field = |off| le32(b, off).ok_or_else(|| problem(file, 0, "shorter than a base block"));
    if b.len() < SECTOR {
        let what = format!("{} bytes, no base block", b.len());
        return Err(problem(file, 0, what));
    }
    if &b[..4] != b"regf" {
        return Err(problem(file, 0, "no \"regf\" signature"));
    }
    let (stored, computed) = (field(508)?, base_block_checksum(b));
    if stored != computed {
        let what = format!("base block checksum {stored:#x}, computed {computed:#x}");
        return Err(problem(file, 508, what));
    }
    Ok(Base {
        seq1: field(4)?,
        seq2: field(8)?,
        timestamp: le64(b, 12).unwrap_or(0),
        file_type: field(28)?,
        bins_size: field(40)?,
        clustering: field(44)?,
    })
}

/// True when the hive needs recovery: its base block is missing or has a bad signature or
/// checksum, or its primary and secondary sequence numbers differ.
pub fn is_dirty(hive: &[u8]) -> bool {
    read_base(hive, "hive").map_or(true, |b| b.seq1 != b.seq2)
}

/// Replacement content for a `.LOG1` / `.LOG2` after the recovered hive was written back: an
/// empty file. Zero length is what Windows itself leaves for an unused log (fresh or saved
/// hives ship empty logs) and it carries no base block or entries at all, so neither Windows nor
/// a naive offline tool (one that ignores sequence numbers) can ever replay stale data from it;
/// a log with a merely stale base block would still hold pages such a tool could misapply.
pub fn invalidated_log() -> Vec<u8> {
    Vec::new()
}

/// Marvin32 (the keyed hash of .NET / the Windows kernel) of `data` with a 64-bit `seed`,
/// returned as (high state << 32) | low state, the order used in log entries.
pub fn marvin32(data: &[u8], seed: u64) -> u64 {
    fn mix(lo: &mut u32, hi: &mut u32) {
        *hi ^= *lo;
        *lo = lo.rotate_left(20).wrapping_add(*hi);
        *hi = hi.rotate_left(9) ^ *lo;
        *lo = lo.rotate_left(27).wrapping_add(*hi);
        *hi = hi.rotate_left(19);
    }
    let (mut lo, mut hi) = (seed as u32, (seed >> 32) as u32);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        lo = lo.wrapping_add(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        mix(&mut lo, &mut hi);
    }
    // The 0..3 tail bytes are padded with a single 0x80 byte, then two finalisation rounds.
    let tail = words.remainder();
    let mut last = 0x80u32 << (8 * tail.len());
    for (i, &byte) in tail.iter().enumerate() {
        last |= u32::from(byte) << (8 * i);
    }
    lo = lo.wrapping_add(last);
    mix(&mut lo, &mut hi);
    mix(&mut lo, &mut hi);
    (u64::from(hi) << 32) | u64::from(lo)
}

/// A checked new-format log entry (offsets into its log file).
#[derive(Debug, Clone, Copy)]
struct Entry {
    off: usize,
    flags: u32,
    seq: u32,
    bins_size: u32,
    pages: usize,
}

/// Validates the log entry at `off`: signature, size, hive bins data size, both hashes and every
/// page reference (inside the entry and inside the hive bins data it declares).
fn check_entry(log: &[u8], off: usize, max_bins: u32) -> Result<Entry, String> {
    if log.get(off..off + 4) != Some(b"HvLE".as_slice()) {
        return Err("no \"HvLE\" log entry signature".into());
    }
    let field = |at: usize| le32(log, off + at).ok_or("entry header cut off by end of file");
    let size = field(4)? as usize;
    if size < SECTOR || !size.is_multiple_of(SECTOR) {
        return Err(format!("entry size {size:#x} not a multiple of 512"));
    }
    let Some(entry) = off.checked_add(size).and_then(|end| log.get(off..end)) else {
        return Err(format!("entry size {size:#x} runs past end of file"));
    };
    let (flags, seq, bins_size, pages) = (field(8)?, field(12)?, field(16)?, field(20)? as usize);
    if bins_size == 0 || !bins_size.is_multiple_of(HBIN_ALIGN) || bins_size > max_bins {
        return Err(format!("hive bins size {bins_size:#x} bad or over limit"));
    }
    let refs_end = pages
        .checked_mul(8)
        .and_then(|n| n.checked_add(ENTRY_HEADER))
        .filter(|&n| n <= size)
        .ok_or_else(|| format!("{pages} page references do not fit in the entry"))?;
    if le64(entry, 32) != Some(marvin32(&entry[..32], MARVIN_SEED)) {
        return Err(format!("Hash-2 mismatch (sequence {seq})"));
    }
    if le64(entry, 24) != Some(marvin32(&entry[ENTRY_HEADER..], MARVIN_SEED)) {
        return Err(format!("Hash-1 mismatch (sequence {seq})"));
    }
    let mut data_end = refs_end as u64;
    for i in 0..pages {
        let at = ENTRY_HEADER + 8 * i;
        let p_off = le32(entry, at).unwrap_or(0);
        let p_size = le32(entry, at + 4).unwrap_or(0);
        if u64::from(p_off) + u64::from(p_size) > u64::from(bins_size) {
            return Err(format!("page {p_off:#x}+{p_size:#x} beyond hive bins"));
        }
        data_end += u64::from(p_size);
    }
    if data_end > size as u64 {
        return Err(format!("pages need {data_end:#x} bytes, entry {size:#x}"));
    }
    Ok(Entry {
        off,
        flags,
        seq,
        bins_size,
        pages,
    })
}

/// Reads the chain of valid entries with consecutive sequence numbers from offset 512 on, and
/// the reason the chain ended (`None` at end of file). What follows a break is remnants of
/// older cycles or torn writes, so nothing after it is trusted.
fn read_entries(log: &[u8], file: &'static str, max_bins: u32) -> (Vec<Entry>, Option<Problem>) {
    let mut out: Vec<Entry> = Vec::new();
    let mut off = SECTOR;
    while off < log.len() {
        if out.len() >= MAX_ENTRIES_PER_LOG {
            let what = "too many log entries, rest ignored";
            return (out, Some(problem(file, off, what)));
        }
        let e = match check_entry(log, off, max_bins) {
            Ok(e) => e,
            Err(what) => return (out, Some(problem(file, off, what))),
        };
        if let Some(prev) = out.last() {
            if Some(e.seq) != prev.seq.checked_add(1) {
                let what = format!("sequence {} does not follow {}", e.seq, prev.seq);
                return (out, Some(problem(file, off, what)));
            }
        }
        off += le32(log, off + 4).unwrap_or(0) as usize; // checked by check_entry
        out.push(e);
    }
    (out, None)
}

/// A new-format log with a valid base block and at least one entry.
struct NewLog<'a> {
    name: &'static str,
    data: &'a [u8],
    base: Base,
    entries: Vec<Entry>,
    stop: Option<Problem>,
}

/// Loads a new-format log, or records in `notes` why it is unusable. A log is valid when its
/// base block is ("regf", checksum, file type 6, both sequence numbers equal) and its first
/// entry carries the base block's sequence number.
fn load_new_log<'a>(
    name: &'static str,
    data: &'a [u8],
    base: Base,
    max_bins: u32,
    notes: &mut Vec<Problem>,
) -> Option<NewLog<'a>> {
    if base.seq1 != base.seq2 {
        let what = format!("log base block sequence {}/{}", base.seq1, base.seq2);
        notes.push(problem(name, 4, what));
        return None;
    }
    let (entries, stop) = read_entries(data, name, max_bins);
    let Some(first) = entries.first() else {
        notes.push(stop.unwrap_or_else(|| problem(name, SECTOR, "no log entries")));
        return None;
    };
    if first.seq != base.seq1 {
        let what = format!("first entry {}, base block {}", first.seq, base.seq1);
        notes.push(problem(name, SECTOR, what));
        return None;
    }
    Some(NewLog {
        name,
        data,
        base,
        entries,
        stop,
    })
}

/// The recovery in progress: the output file and the statistics.
struct Replay {
    out: Vec<u8>,
    /// Current hive bins data size.
    bins: u32,
    rec: Recovered,
}

impl Replay {
    /// Starts from the primary file with `base` (4096 bytes) as its base block. The primary
    /// must hold the hive bins its base block declares: the logs only carry dirty pages.
    fn new(hive: &[u8], base: &[u8], bins: u32, max_bins: u32) -> Result<Self, HiveLogError> {
        if !bins.is_multiple_of(HBIN_ALIGN) || bins > max_bins {
            let what = format!("hive bins data size {bins:#x} invalid or over limit");
            return Err(HiveLogError::Hive(problem("hive", 40, what)));
        }
        let need = BASE_BLOCK_SIZE + bins as usize;
        if hive.len() < need {
            let what = format!("file is {} bytes, hive bins need {need}", hive.len());
            return Err(HiveLogError::Hive(problem("hive", hive.len(), what)));
        }
        let mut out = hive.to_vec();
        out[..BASE_BLOCK_SIZE].copy_from_slice(&base[..BASE_BLOCK_SIZE]);
        let rec = Recovered::default();
        Ok(Replay { out, bins, rec })
    }

    /// Sets the hive bins data size, growing the file (zero-filled) when needed.
    fn set_bins_size(&mut self, size: u32) {
        let need = BASE_BLOCK_SIZE + size as usize;
        if self.out.len() < need {
            self.out.resize(need, 0);
        }
        self.bins = size;
    }

    /// Writes `page` at `off` within the hive bins; the caller has checked the range.
    fn write(&mut self, off: usize, page: &[u8]) {
        let start = BASE_BLOCK_SIZE + off;
        if let Some(dst) = self.out.get_mut(start..start + page.len()) {
            dst.copy_from_slice(page);
        }
    }

    fn used(&mut self, name: &'static str) {
        if !self.rec.logs_used.contains(&name) {
            self.rec.logs_used.push(name);
        }
    }

    /// Applies one checked new-format entry: grows or shrinks the hive bins to the entry's size,
    /// writes its pages and takes over its flag bit 0 (the only bit logs save, per the spec).
    fn apply_entry(&mut self, log: &[u8], e: &Entry) {
        self.set_bins_size(e.bins_size);
        let mut data = e.off + ENTRY_HEADER + 8 * e.pages;
        for i in 0..e.pages {
            let r = e.off + ENTRY_HEADER + 8 * i;
            let (off, size) = (le32(log, r).unwrap_or(0), le32(log, r + 4).unwrap_or(0));
            if let Some(page) = log.get(data..data + size as usize) {
                self.write(off as usize, page);
            }
            data += size as usize;
        }
        let flags = le32(&self.out, 144).unwrap_or(0);
        put32(&mut self.out, 144, (flags & !1) | (e.flags & 1));
        self.rec.entries_applied += 1;
        self.rec.pages_applied = self.rec.pages_applied.saturating_add(e.pages as u32);
        self.rec.first_seq.get_or_insert(e.seq);
        self.rec.last_seq = Some(e.seq);
    }

    /// Writes the clean base block (both sequence numbers `seq`, file type primary, hive bins
    /// data size, checksum) and returns the result.
    fn finish(mut self, format: LogFormat, seq: u32) -> Recovered {
        let b = &mut self.out;
        put32(b, 4, seq);
        put32(b, 8, seq);
        put32(b, 28, FILE_TYPE_PRIMARY);
        put32(b, 40, self.bins);
        let sum = base_block_checksum(b);
        put32(b, 508, sum);
        self.rec.final_seq = seq;
        self.rec.format = Some(format);
        self.rec.data = self.out;
        self.rec
    }
}

/// Builds a 4096-byte base block for a hive whose own one is invalid, from a log's 512-byte
/// copy (the spec: "recovered using a base block from a transaction log file"); the rest of the
/// block is kept from the primary file (it holds nothing Windows needs on disk).
fn base_from_log(hive: &[u8], log: &[u8]) -> Vec<u8> {
    let mut base = vec![0u8; BASE_BLOCK_SIZE];
    let keep = hive.len().min(BASE_BLOCK_SIZE);
    base[..keep].copy_from_slice(&hive[..keep]);
    let copy = log.len().min(SECTOR);
    base[..copy].copy_from_slice(&log[..copy]);
    base
}

/// Replays new-format logs. With a valid hive base block, entries older than the hive's
/// secondary sequence number are stale (already in the primary) and skipped, the log holding
/// the earlier entries goes first and the other continues it at N + 1; any gap stops recovery.
/// With an invalid hive base block only the log with the latest entries is used, and its base
/// block replaces the hive's.
fn recover_new(
    hive: &[u8],
    hive_base: Option<Base>,
    mut logs: Vec<NewLog<'_>>,
    max_bins: u32,
    mut notes: Vec<Problem>,
) -> Result<Recovered, HiveLogError> {
    let mut replay = match hive_base {
        Some(hb) => {
            for log in &mut logs {
                let before = log.entries.len();
                log.entries.retain(|e| e.seq >= hb.seq2);
                let (n, s) = (before - log.entries.len(), hb.seq2);
                if n > 0 {
                    let what = format!("{n} entries older than the hive ({s}) skipped");
                    notes.push(problem(log.name, SECTOR, what));
                }
            }
            logs.retain(|l| !l.entries.is_empty());
            logs.sort_by_key(|l| l.entries.first().map(|e| e.seq));
            Replay::new(hive, hive, hb.bins_size, max_bins)?
        }
        None => {
            logs.sort_by_key(|l| l.entries.last().map(|e| e.seq));
            logs.reverse();
            logs.truncate(1);
            let Some(log) = logs.first() else {
                return Err(HiveLogError::NoUsableLog(notes));
            };
            let base = base_from_log(hive, log.data);
            Replay::new(hive, &base, log.base.bins_size, max_bins)?
        }
    };
    if logs.is_empty() {
        return Err(HiveLogError::NoUsableLog(notes));
    }
    'logs: for log in &logs {
        for e in &log.entries {
            if let Some(last) = replay.rec.last_seq {
                if e.seq <= last {
                    continue; // the other log already supplied it
                }
                if Some(e.seq) != last.checked_add(1) {
                    let what = format!("entry {} does not continue {last}; recovery stops", e.seq);
                    notes.push(problem(log.name, e.off, what));
                    break 'logs;
                }
            }
            replay.apply_entry(log.data, e);
            replay.used(log.name);
        }
        notes.extend(log.stop.clone());
    }
    let last = replay.rec.last_seq.unwrap_or(0);
    let seq = hive_base.map_or(0, |b| b.seq1).max(last.wrapping_add(1));
    replay.rec.notes = notes;
    Ok(replay.finish(LogFormat::New, seq))
}

/// An old-format log with a valid base block and dirty vector.
struct OldLog<'a> {
    name: &'static str,
    data: &'a [u8],
    base: Base,
    /// Offset of the bitmap and of the first dirty page.
    bitmap: usize,
    pages: usize,
}

/// Loads an old-format log, or records in `notes` why it is unusable: base block ("regf",
/// checksum, file type 1 or 2, equal sequence numbers), a "DIRT" vector in the second sector
/// (sector = clustering factor * 512) and every dirty page present.
fn load_old_log<'a>(
    name: &'static str,
    data: &'a [u8],
    base: Base,
    max_bins: u32,
    notes: &mut Vec<Problem>,
) -> Option<OldLog<'a>> {
    let mut reject = |off: usize, what: String| {
        notes.push(problem(name, off, what));
        None
    };
    if base.seq1 != base.seq2 {
        return reject(4, format!("sequence numbers {} / {}", base.seq1, base.seq2));
    }
    if !(1..=8).contains(&base.clustering) {
        return reject(44, format!("clustering factor {}", base.clustering));
    }
    if !base.bins_size.is_multiple_of(HBIN_ALIGN) || base.bins_size > max_bins {
        return reject(40, format!("hive bins data size {:#x}", base.bins_size));
    }
    let sector = SECTOR * base.clustering as usize;
    if data.get(sector..sector + 4) != Some(b"DIRT".as_slice()) {
        return reject(sector, "no \"DIRT\" dirty vector".into());
    }
    let bits = base.bins_size as usize / SECTOR;
    let bitmap = sector + 4;
    let Some(map) = data.get(bitmap..bitmap + bits.div_ceil(8)) else {
        return reject(bitmap, format!("dirty vector of {bits} bits cut off"));
    };
    let dirty = map.iter().map(|b| b.count_ones() as usize).sum::<usize>();
    let pages = (bitmap + map.len()).div_ceil(sector) * sector;
    let need = pages + dirty * SECTOR;
    if data.len() < need {
        let have = data.len();
        let what = format!("{dirty} dirty pages need {need} bytes, have {have}");
        return reject(have, what);
    }
    Some(OldLog {
        name,
        data,
        base,
        bitmap,
        pages,
    })
}

/// Picks the old-format log as Windows 8 (and patched Windows 7) do: LOG1 when its timestamp
/// matches the hive's; otherwise LOG2 when LOG1 is unusable or LOG2's log is more recent.
fn pick_old<'a>(
    hive_ts: u64,
    log1: Option<OldLog<'a>>,
    log2: Option<OldLog<'a>>,
) -> Option<OldLog<'a>> {
    match (log1, log2) {
        (Some(l1), _) if l1.base.timestamp == hive_ts => Some(l1),
        (Some(l1), Some(l2)) if l2.base.timestamp > l1.base.timestamp => Some(l2),
        (None, l2) => l2,
        _ => None,
    }
}

/// Applies an old-format log: dirty page k (in bit order) goes to hive bins offset 512 * bit.
/// A dirty 4096-byte block starting with a hive bin header whose offset or size is wrong stops
/// recovery there (the spec: an invalid dirty hive bin ends recovery, earlier pages are kept).
fn recover_old(
    hive: &[u8],
    hive_base: Option<Base>,
    log: OldLog<'_>,
    max_bins: u32,
    mut notes: Vec<Problem>,
) -> Result<Recovered, HiveLogError> {
    let mut replay = match hive_base {
        Some(hb) => Replay::new(hive, hive, hb.bins_size, max_bins)?,
        None => {
            let base = base_from_log(hive, log.data);
            Replay::new(hive, &base, log.base.bins_size, max_bins)?
        }
    };
    let size = log.base.bins_size;
    replay.set_bins_size(size);
    let bits = size as usize / SECTOR;
    let mut src = log.pages;
    for bit in 0..bits {
        let byte = log.data.get(log.bitmap + bit / 8).copied().unwrap_or(0);
        if byte & (1 << (bit % 8)) == 0 {
            continue;
        }
        let Some(page) = log.data.get(src..src + SECTOR) else {
            break; // load_old_log checked that every page is present
        };
        if let Err(what) = check_dirty_bin(page, bit * SECTOR, size) {
            notes.push(problem(log.name, src, format!("{what}; recovery stops")));
            break;
        }
        replay.write(bit * SECTOR, page);
        replay.rec.pages_applied = replay.rec.pages_applied.saturating_add(1);
        src += SECTOR;
    }
    replay.used(log.name);
    replay.rec.entries_applied = 1;
    replay.rec.first_seq = Some(log.base.seq1);
    replay.rec.last_seq = Some(log.base.seq1);
    let hive_seq = hive_base.map_or(0, |b| b.seq1);
    let seq = hive_seq.max(log.base.seq1).wrapping_add(1);
    replay.rec.notes = notes;
    Ok(replay.finish(LogFormat::Old, seq))
}

/// Checks a dirty page that starts a 4096-byte block and carries a hive bin header.
fn check_dirty_bin(page: &[u8], at: usize, bins_size: u32) -> Result<(), String> {
    if !at.is_multiple_of(HBIN_ALIGN as usize) || page.get(..4) != Some(b"hbin".as_slice()) {
        return Ok(());
    }
    let (off, size) = (le32(page, 4).unwrap_or(0), le32(page, 8).unwrap_or(0));
    let fits = u64::from(off) + u64::from(size) <= u64::from(bins_size);
    if off as usize != at || size < HBIN_ALIGN || !size.is_multiple_of(HBIN_ALIGN) || !fits {
        return Err(format!(
            "hive bin {at:#x} says offset {off:#x} size {size:#x}"
        ));
    }
    Ok(())
}

/// Recovers a dirty hive from its logs, with the hive bins capped at [`DEFAULT_MAX_BINS_SIZE`].
/// See [`recover_with_limit`].
pub fn recover(
    hive: &[u8],
    log1: Option<&[u8]>,
    log2: Option<&[u8]>,
) -> Result<Recovered, HiveLogError> {
    recover_with_limit(hive, log1, log2, DEFAULT_MAX_BINS_SIZE)
}

/// Recovers the primary file `hive` from its `.LOG1` / `.LOG2` contents (`None` or empty when
/// absent) as Windows does, and returns the flushed result: both sequence numbers equal (last
/// applied + 1), checksum recomputed. A clean hive is returned unchanged with `format: None`
/// (logs are then ignored, as by Windows). The hive bins may not exceed `max_bins` bytes.
///
/// Errors: the primary file is too short for its declared hive bins, or the hive is dirty and
/// no log yields a usable entry (each log's finding is in the error; the stale hive is never
/// returned as if recovered).
pub fn recover_with_limit(
    hive: &[u8],
    log1: Option<&[u8]>,
    log2: Option<&[u8]>,
    max_bins: u32,
) -> Result<Recovered, HiveLogError> {
    let mut notes = Vec::new();
    let hive_base = match read_base(hive, "hive") {
        Ok(b) if b.seq1 == b.seq2 => return Ok(clean(hive)),
        Ok(b) => Some(b),
        Err(p) => {
            notes.push(p);
            None
        }
    };
    let present: Vec<(&'static str, &[u8])> = [("LOG1", log1), ("LOG2", log2)]
        .into_iter()
        .filter_map(|(n, d)| Some((n, d?)))
        .filter(|(_, d)| !d.is_empty())
        .collect();
    if present.is_empty() {
        notes.push(problem("LOG1+LOG2", 0, "no log data supplied"));
        return Err(HiveLogError::NoUsableLog(notes));
    }
    let (mut new, mut old1, mut old2) = (Vec::new(), None, None);
    for (name, data) in present {
        match read_base(data, name) {
            Err(p) => notes.push(p),
            Ok(b) if b.file_type == FILE_TYPE_LOG_NEW => {
                new.extend(load_new_log(name, data, b, max_bins, &mut notes));
            }
            Ok(b) if matches!(b.file_type, FILE_TYPE_LOG_OLD | FILE_TYPE_LOG_NT5) => {
                let log = load_old_log(name, data, b, max_bins, &mut notes);
                *(if name == "LOG1" { &mut old1 } else { &mut old2 }) = log;
            }
            Ok(b) => {
                let what = format!("file type {} is not a log", b.file_type);
                notes.push(problem(name, 28, what));
            }
        }
    }
    if !new.is_empty() {
        return recover_new(hive, hive_base, new, max_bins, notes);
    }
    // The hive's timestamp, or the first hive bin's backup copy of it when the base is bad.
    let hive_ts = match hive_base {
        Some(b) => b.timestamp,
        None => le64(hive, BASE_BLOCK_SIZE + 20).unwrap_or(0),
    };
    let Some(log) = pick_old(hive_ts, old1, old2) else {
        let what = format!("no log matches the hive's last written timestamp {hive_ts:#x}");
        notes.push(problem("LOG1+LOG2", 12, what));
        return Err(HiveLogError::NoUsableLog(notes));
    };
    recover_old(hive, hive_base, log, max_bins, notes)
}

fn clean(hive: &[u8]) -> Recovered {
    Recovered {
        data: hive.to_vec(),
        final_seq: le32(hive, 4).unwrap_or(0),
        ..Recovered::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    const NEW1: &str = "yarp-NewDirtyHive1";
    const NEW2: &str = "yarp-NewDirtyHive2";
    const OLD: &str = "yarp-OldDirtyHive";
    const NTUSER: &str = "regipy-NTUSER.DAT";
    const USRCLASS: &str = "regipy-UsrClass.dat";
    const NEW_MD5: &str = "5e4a3fa7db70678f2029d3cfba585828";
    const OLD_MD5: &str = "339c6d4902c3f4dd250a654fd821e3f2";

    struct Set {
        hive: Vec<u8>,
        log1: Vec<u8>,
        log2: Vec<u8>,
    }

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/winlogs")
    }

    /// Reads a real set from ../shared/winlogs (see its README.md); `None` when it is absent.
    fn load(name: &str) -> Option<Set> {
        if !dir().is_dir() {
            println!(
                "skipping: {} (real dirty hives) is missing",
                dir().display()
            );
            return None;
        }
        let read = |suffix: &str| {
            let p = dir().join(format!("{name}{suffix}"));
            std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let (hive, log1, log2) = (read(""), read(".LOG1"), read(".LOG2"));
        Some(Set { hive, log1, log2 })
    }

    /// Loads a set or returns from the test (the data folder is missing).
    macro_rules! set {
        ($name:expr) => {
            match load($name) {
                Some(s) => s,
                None => return,
            }
        };
    }

    fn run(s: &Set) -> Result<Recovered, HiveLogError> {
        recover(&s.hive, Some(&s.log1), Some(&s.log2))
    }

    fn md5(data: &[u8]) -> String {
        let mut child = Command::new("md5sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("md5sum");
        // md5sum prints only after reading all input, so writing first cannot deadlock.
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(data)
            .expect("write");
        let out = child.wait_with_output().expect("md5sum output");
        String::from_utf8_lossy(&out.stdout)[..32].to_string()
    }

    /// Hive bins size and MD5 of the hive bins, the README's ground truth.
    fn bins_md5(r: &Recovered) -> (u32, String) {
        let size = le32(&r.data, 40).expect("size");
        let bins = &r.data[BASE_BLOCK_SIZE..BASE_BLOCK_SIZE + size as usize];
        (size, md5(bins))
    }

    fn noted(r: &Recovered, file: &str, what: &str) -> bool {
        r.notes
            .iter()
            .any(|p| p.file == file && p.what.contains(what))
    }

    fn assert_flushed(r: &Recovered) {
        assert_eq!(le32(&r.data, 4), Some(r.final_seq));
        assert_eq!(le32(&r.data, 8), Some(r.final_seq));
        assert_eq!(le32(&r.data, 508), Some(base_block_checksum(&r.data)));
        assert_eq!(le32(&r.data, 28), Some(FILE_TYPE_PRIMARY));
        assert!(!is_dirty(&r.data));
    }

    /// Offset of the `n`-th log entry (0-based) of a new-format log.
    fn entry_off(log: &[u8], n: usize) -> usize {
        (0..n).fold(SECTOR, |off, _| off + le32(log, off + 4).unwrap() as usize)
    }

    /// Recomputes both hashes of the entry at `off`, so a crafted entry passes the hash checks.
    fn rehash(log: &mut [u8], off: usize) {
        let size = le32(log, off + 4).unwrap() as usize;
        let h1 = marvin32(&log[off + ENTRY_HEADER..off + size], MARVIN_SEED);
        log[off + 24..off + 32].copy_from_slice(&h1.to_le_bytes());
        let h2 = marvin32(&log[off..off + 32], MARVIN_SEED);
        log[off + 32..off + 40].copy_from_slice(&h2.to_le_bytes());
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn real_hives_match_ground_truth() {
        // (set, hive bins size, first and last sequence, MD5 of the hive bins, logs used)
        let cases = [
            (NEW1, 20_480, 2, 5, NEW_MD5, "LOG1 LOG2"),
            (NEW2, 20_480, 3, 5, NEW_MD5, "LOG2"),
            (OLD, 487_424, 5, 5, OLD_MD5, "LOG1"),
            (
                NTUSER,
                925_696,
                566,
                588,
                "7a9eea0f6eeb34d2b095fbc243226be0",
                "LOG1",
            ),
            (
                USRCLASS,
                2_830_336,
                287,
                300,
                "65eb562d198287fbca0ed66abaf76216",
                "LOG1 LOG2",
            ),
        ];
        for (name, size, first, last, sum, used) in cases {
            let set = set!(name);
            assert!(is_dirty(&set.hive), "{name}");
            let r = run(&set).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(bins_md5(&r), (size, sum.into()), "{name}: {:?}", r.notes);
            assert_eq!(
                (r.first_seq, r.last_seq),
                (Some(first), Some(last)),
                "{name}"
            );
            assert_eq!(r.logs_used.join(" "), used, "{name}");
            let old = name == OLD;
            let format = if old { LogFormat::Old } else { LogFormat::New };
            assert_eq!((r.format, r.final_seq), (Some(format), last + 1), "{name}");
            assert_flushed(&r);
        }
    }

    #[test]
    fn matches_the_file_windows_10_recovered() {
        let set = set!(NEW1);
        let windows = std::fs::read(dir().join(format!("{NEW1}.RecoveredByWindows10"))).unwrap();
        let r = run(&set).unwrap();
        assert!(
            r.data == windows,
            "byte-for-byte equal to Windows 10's own recovery"
        );
        // A clean hive is returned unchanged, its logs ignored.
        let c = recover(&windows, Some(&set.log1), Some(&set.log2)).unwrap();
        assert_eq!((c.format, c.entries_applied), (None, 0));
        assert!(c.data == windows && !is_dirty(&windows));
    }

    #[test]
    fn invalid_hive_base_block_is_taken_from_the_latest_log() {
        let mut set = set!(NEW1);
        set.hive[100] ^= 0x55; // in the file name: checksum now wrong
        let r = run(&set).unwrap();
        assert_eq!(
            (r.logs_used.as_slice(), bins_md5(&r).1),
            (&["LOG2"][..], NEW_MD5.into())
        );
        assert_eq!(r.data[100], set.log2[100], "base block comes from the log");
        assert_flushed(&r);
        // Old format: the log must match the first hive bin's timestamp, a backup copy that
        // Windows refreshes rarely; here it is stale, so LOG1 is not applicable.
        let mut old = set!(OLD);
        old.hive[100] ^= 0x55;
        let e = run(&old).unwrap_err().to_string();
        assert!(e.contains("timestamp"), "{e}");
        let ts = old.log1[12..20].to_vec();
        old.hive[BASE_BLOCK_SIZE + 20..BASE_BLOCK_SIZE + 28].copy_from_slice(&ts);
        let r = run(&old).unwrap();
        assert_eq!(bins_md5(&r).1, OLD_MD5);
        assert_flushed(&r);
    }

    #[test]
    fn truncated_logs_keep_the_entries_before_the_cut() {
        let mut set = set!(NTUSER);
        let cut = entry_off(&set.log1, 10) + 1000;
        set.log1.truncate(cut);
        let r = run(&set).unwrap();
        assert_eq!((r.first_seq, r.last_seq), (Some(566), Some(575)));
        assert!(noted(&r, "LOG1", "end of file"), "{:?}", r.notes);
        assert_flushed(&r);
        // Only the base block left in LOG1, and LOG2 holds only a stale entry: nothing usable.
        set.log1.truncate(SECTOR);
        let e = run(&set).unwrap_err();
        assert!(matches!(e, HiveLogError::NoUsableLog(_)), "{e}");
        assert!(e.to_string().contains("older than the hive"), "{e}");
        // An old-format log missing dirty pages is rejected whole.
        let mut old = set!(OLD);
        old.log1.truncate(old.log1.len() - SECTOR);
        let e = run(&old).unwrap_err().to_string();
        assert!(e.contains("LOG1") && e.contains("dirty pages"), "{e}");
    }

    #[test]
    fn flipped_page_byte_stops_at_that_entry() {
        let mut set = set!(USRCLASS);
        let off = entry_off(&set.log2, 3); // sequence 294
        let refs = le32(&set.log2, off + 20).unwrap() as usize;
        set.log2[off + ENTRY_HEADER + 8 * refs + 10] ^= 1;
        let r = run(&set).unwrap();
        assert_eq!((r.last_seq, r.entries_applied), (Some(293), 7));
        assert!(noted(&r, "LOG2", "Hash-1"), "{:?}", r.notes);
        assert_flushed(&r);
        // A bad entry in the first log also ends it: LOG2 (291..) cannot continue 288.
        let mut set = set!(USRCLASS);
        let off = entry_off(&set.log1, 2); // sequence 289
        set.log1[off + 12] ^= 1;
        let r = run(&set).unwrap();
        assert_eq!(
            (r.last_seq, r.logs_used.as_slice()),
            (Some(288), &["LOG1"][..])
        );
        assert!(noted(&r, "LOG1", "Hash-2") && noted(&r, "LOG2", "does not continue"));
    }

    #[test]
    fn crafted_entries_with_valid_hashes_are_range_checked() {
        let set = set!(NEW1);
        let off = entry_off(&set.log2, 1); // sequence 4
        let mut log2 = set.log2.clone();
        put32(&mut log2, off + ENTRY_HEADER, 0xFFFF_F000); // page far outside the hive bins
        rehash(&mut log2, off);
        let r = recover(&set.hive, Some(&set.log1), Some(&log2)).unwrap();
        assert_eq!(r.last_seq, Some(3));
        assert!(noted(&r, "LOG2", "beyond hive bins"), "{:?}", r.notes);
        let mut log2 = set.log2.clone();
        put32(&mut log2, off + 16, 0x8000_0000); // 2 GiB hive bins, over the caller's cap
        rehash(&mut log2, off);
        let r = recover_with_limit(&set.hive, Some(&set.log1), Some(&log2), 1 << 20).unwrap();
        assert_eq!((r.last_seq, r.data.len()), (Some(3), set.hive.len()));
    }

    #[test]
    fn garbage_or_missing_logs_for_a_dirty_hive_are_an_error() {
        let set = set!(NEW1);
        let mut state = 0x9E37_79B9_7F4A_7C15;
        let junk: Vec<u8> = (0..65_536).map(|_| xorshift(&mut state) as u8).collect();
        let empty: &[u8] = &[];
        for (l1, l2) in [
            (None, None),
            (Some(&junk[..]), Some(&junk[..])),
            (Some(empty), None),
        ] {
            let e = recover(&set.hive, l1, l2).unwrap_err();
            assert!(matches!(e, HiveLogError::NoUsableLog(_)), "{e}");
        }
        // A valid log base block followed by no entries: the error names file and offset.
        let mut fake = set.log2[..SECTOR].to_vec();
        fake.resize(SECTOR + 4096, 0);
        let e = recover(&set.hive, Some(&fake), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("LOG1 at offset 0x200") && e.contains("HvLE"),
            "{e}"
        );
        assert!(recover(&set.hive[..2048], None, Some(&set.log2)).is_err());
        assert!(invalidated_log().is_empty());
    }

    #[test]
    fn random_mutations_never_panic_and_stay_bounded() {
        let (new, old) = (set!(NEW1), set!(OLD));
        let cap = 1 << 20;
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        for i in 0..2000 {
            let set = if i % 4 == 3 { &old } else { &new };
            let (mut hive, mut l1, mut l2) = (set.hive.clone(), set.log1.clone(), set.log2.clone());
            let r = xorshift(&mut state);
            let target = match r % 5 {
                0 => &mut hive,
                1 | 2 => &mut l1,
                _ => &mut l2,
            };
            for _ in 0..1 + (r >> 8) % 4 {
                let v = xorshift(&mut state);
                // Half the time in the first 8 KiB: headers and first entries decide the most.
                let span = if v.is_multiple_of(2) {
                    8192
                } else {
                    usize::MAX
                }
                .min(target.len());
                let Some(at) = (v >> 16).checked_rem(span as u64).map(|a| a as usize) else {
                    break;
                };
                match v % 3 {
                    0 => target[at] ^= 1 << ((v >> 8) % 8),
                    1 => put32(target, at & !3, (v >> 32) as u32),
                    _ => target.truncate(at),
                }
            }
            let fits = |t: &[u8]| le32(t, 516).is_some_and(|n| 512 + n as usize <= t.len());
            if r.is_multiple_of(7) && target.get(512..516) == Some(b"HvLE") && fits(target) {
                rehash(target, SECTOR); // let structural checks, not hashes, reject it
            }
            if let Ok(rec) = recover_with_limit(&hive, Some(&l1), Some(&l2), cap) {
                assert!(rec.data.len() <= hive.len().max(BASE_BLOCK_SIZE + cap as usize));
                if rec.format.is_some() {
                    assert_flushed(&rec);
                }
            }
        }
    }
}
