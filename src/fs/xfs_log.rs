//! Is an XFS log clean? A snapshot of a running machine has a dirty log (issue #7): committed
//! transactions whose metadata never reached its home blocks. Reads of such a volume see the
//! state before those transactions, so revirt must know before it plans.
//!
//! ```text
//!   the log: N basic blocks (512 B), each stamped with the cycle (pass number) that wrote it
//!   [ c c c c c | c-1 c-1 c-1 ]   head = first block of the older cycle (binary search,
//!               ^ head              then a window check for holes left by in-flight writes)
//!   the record just before the head: clean iff it is one op flagged UNMOUNT and ends at the head
//! ```
//! This follows the kernel's xlog_find_head / xlog_find_tail / xlog_check_unmount_rec on the
//! documented on-disk format (xfs_log_format.h); revirt does not replay the log itself: a dirty
//! log is recovered by the appliance's kernel (see `crate::recover`).
use crate::error::FsError;
use crate::image::Dev;

const FS: &str = "xfs";
const BB: u64 = 512;
const RECORD_MAGIC: u32 = 0xfeed_babe;
/// Bytes of cycle data per header block; v2 records longer than this have extra header blocks.
const HEADER_CYCLE_SIZE: u64 = 32 << 10;
/// Largest log record: 256 KiB of data in 8 in-flight buffers: the kernel's hole window.
const SCAN_WINDOW: u64 = 8 * (256 << 10) / BB;
/// The op header flag of an unmount record.
const UNMOUNT_TRANS: u8 = 0x20;

/// What the log says, in basic blocks from the log's start.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogState {
    /// No recovery needed: the last record is an unmount record, or the log was zeroed.
    pub clean: bool,
    /// Where the next record would go.
    pub head_block: u64,
    /// The oldest block recovery would replay from (= head when clean).
    pub tail_block: u64,
    /// The cycle (pass over the log) at the head.
    pub cycle: u32,
}

/// The log of an XFS volume: `start` bytes into the device, `len` bytes long.
pub struct Log<'a> {
    dev: &'a Dev,
    start: u64,
    blocks: u64,
}

fn be32(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .map_or(0, |x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

fn be64(b: &[u8], o: usize) -> u64 {
    (u64::from(be32(b, o)) << 32) | u64::from(be32(b, o + 4))
}

impl<'a> Log<'a> {
    pub fn new(dev: &'a Dev, start: u64, len: u64) -> Result<Self, FsError> {
        let blocks = len / BB;
        let inside = start.checked_add(len).is_some_and(|end| end <= dev.size());
        if blocks < 2 || !inside {
            let what = format!(
                "log of {len} bytes at {start:#x} does not fit the {}-byte device",
                dev.size()
            );
            return Err(FsError::corrupt(dev.name(), FS, what));
        }
        Ok(Log { dev, start, blocks })
    }

    fn read(&self, blk: u64, n: u64) -> Result<Vec<u8>, FsError> {
        let mut b = vec![0u8; (n * BB) as usize];
        self.dev.read_at(&mut b, self.start + blk * BB)?;
        Ok(b)
    }

    /// The cycle stamped on a block: a record header's h_cycle, else the block's first word.
    fn cycle_of(b: &[u8]) -> u32 {
        if be32(b, 0) == RECORD_MAGIC {
            be32(b, 4)
        } else {
            be32(b, 0)
        }
    }

    fn cycle(&self, blk: u64) -> Result<u32, FsError> {
        Ok(Self::cycle_of(&self.read(blk, 1)?))
    }

    /// First block in `lo..hi` whose cycle is `want`, given every block from there to `hi` has
    /// it and none before does (binary search, as the log is written in order).
    fn first_with(&self, mut lo: u64, mut hi: u64, want: u32) -> Result<u64, FsError> {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.cycle(mid)? == want {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    /// Moves `head` back to the first block of `stop` cycle in the window before it: in-flight
    /// writes finish out of order, and the kernel treats the earliest hole as the head.
    fn back_over_holes(&self, head: u64, stop: u32) -> Result<u64, FsError> {
        let from = head.saturating_sub(SCAN_WINDOW);
        if from == head {
            return Ok(head);
        }
        let w = self.read(from, head - from)?;
        let hole = w
            .chunks_exact(BB as usize)
            .position(|b| Self::cycle_of(b) == stop);
        Ok(hole.map_or(head, |i| from + i as u64))
    }

    /// The head block and its cycle (xlog_find_head).
    fn head(&self) -> Result<(u64, u32), FsError> {
        let n = self.blocks;
        let first = self.cycle(0)?;
        let last = self.cycle(n - 1)?;
        if last == 0 {
            // Never wrapped: the head is the first block still zero.
            let head = self.first_with(0, n, 0)?;
            return Ok((self.back_over_holes(head, 0)?, first));
        }
        if first == last {
            // The whole log is one cycle: the head is at the end unless a hole of the previous
            // cycle lies just before it.
            let head = self.back_over_holes(n, last.wrapping_sub(1))?;
            return Ok((head % n, last));
        }
        // [0, head) has the new cycle, [head, n) the previous one.
        let head = self.first_with(0, n, last)?;
        Ok((self.back_over_holes(head, last)?, first))
    }

    /// A record header at `blk`: (header blocks, data blocks, ops, tail block).
    fn header(&self, blk: u64) -> Result<Option<(u64, u64, u32, u64)>, FsError> {
        let h = self.read(blk, 1)?;
        if be32(&h, 0) != RECORD_MAGIC || be64(&h, 16) & 0xffff_ffff != blk {
            return Ok(None);
        }
        let len = u64::from(be32(&h, 12));
        let version = be32(&h, 8);
        let size = u64::from(be32(&h, 320));
        let hblks = if version & 2 != 0 && size > HEADER_CYCLE_SIZE {
            size.div_ceil(HEADER_CYCLE_SIZE)
        } else {
            1
        };
        let tail = be64(&h, 24) & 0xffff_ffff;
        Ok(Some((hblks, len.div_ceil(BB), be32(&h, 40), tail)))
    }

    /// Whether recovery is needed (xlog_find_tail and xlog_check_unmount_rec).
    pub fn state(&self) -> Result<LogState, FsError> {
        let n = self.blocks;
        if self.cycle(0)? == 0 {
            // A zeroed log (xfs_repair -L, or never written): nothing to recover.
            return Ok(LogState {
                clean: true,
                head_block: 0,
                tail_block: 0,
                cycle: 0,
            });
        }
        let (head, cycle) = self.head()?;
        // The last record header before the head, wrapping to the log's end.
        let mut rec = None;
        for back in 1..=SCAN_WINDOW.min(n) {
            let blk = (head + n - back) % n;
            if let Some(h) = self.header(blk)? {
                rec = Some((blk, h));
                break;
            }
        }
        let dirty = |tail| LogState {
            clean: false,
            head_block: head,
            tail_block: tail,
            cycle,
        };
        let Some((at, (hblks, dblks, ops, tail))) = rec else {
            // Cycle stamps without a record header near the head: not a log the kernel mounts
            // cleanly either.
            return Ok(dirty(head));
        };
        let ends_at_head = (at + hblks + dblks) % n == head;
        if !(ends_at_head && ops == 1 && dblks > 0) {
            return Ok(dirty(tail));
        }
        let data = self.read((at + hblks) % n, 1)?;
        if data[9] & UNMOUNT_TRANS == 0 {
            return Ok(dirty(tail));
        }
        Ok(LogState {
            clean: true,
            head_block: head,
            tail_block: head,
            cycle,
        })
    }
}

/// A log of `n` basic blocks for tests and fuzz seeds: `fill` stamps (from, to, cycle) ranges,
/// `records` are (block, cycle, data blocks, ops, unmount flag) record headers.
pub fn synthetic(
    n: u64,
    fill: &[(u64, u64, u32)],
    records: &[(u64, u32, u64, u32, bool)],
) -> Vec<u8> {
    let mut b = vec![0u8; (n * BB) as usize];
    for &(from, to, cycle) in fill {
        for blk in from..to {
            let o = (blk * BB) as usize;
            b[o..o + 4].copy_from_slice(&cycle.to_be_bytes());
        }
    }
    for &(blk, cycle, dblks, ops, unmount) in records {
        let o = (blk * BB) as usize;
        let h = &mut b[o..o + BB as usize];
        h[0..4].copy_from_slice(&RECORD_MAGIC.to_be_bytes());
        h[4..8].copy_from_slice(&cycle.to_be_bytes());
        h[8..12].copy_from_slice(&2u32.to_be_bytes());
        h[12..16].copy_from_slice(&((dblks * BB) as u32).to_be_bytes());
        let lsn = (u64::from(cycle) << 32) | blk;
        h[16..24].copy_from_slice(&lsn.to_be_bytes());
        h[24..32].copy_from_slice(&lsn.to_be_bytes());
        h[40..44].copy_from_slice(&ops.to_be_bytes());
        h[320..324].copy_from_slice(&32768u32.to_be_bytes());
        for d in 1..=dblks {
            let o = ((blk + d) * BB) as usize;
            b[o..o + 4].copy_from_slice(&cycle.to_be_bytes());
        }
        if unmount {
            b[((blk + 1) * BB) as usize + 9] = UNMOUNT_TRANS;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::image::MemDev as Mem;

    fn log(n: u64, fill: &[(u64, u64, u32)], records: &[(u64, u32, u64, u32, bool)]) -> Dev {
        Arc::new(Mem(synthetic(n, fill, records)))
    }

    fn state(d: &Dev) -> LogState {
        Log::new(d, 0, d.size()).unwrap().state().unwrap()
    }

    #[test]
    fn fresh_mkfs_log_is_clean() {
        // mkfs: an unmount record at block 0, cycle 1; the rest zero.
        let d = log(64, &[], &[(0, 1, 1, 1, true)]);
        let s = state(&d);
        assert!(s.clean, "{s:?}");
        assert_eq!(s.head_block, 2);
    }

    #[test]
    fn transactions_after_the_unmount_record_are_dirty() {
        let d = log(64, &[], &[(0, 1, 1, 1, true), (2, 1, 3, 5, false)]);
        let s = state(&d);
        assert!(!s.clean, "{s:?}");
        assert_eq!((s.head_block, s.tail_block), (6, 2));
    }

    #[test]
    fn a_torn_unmount_record_is_dirty() {
        // The unmount record claims two data blocks, only one carries the cycle.
        let d = log(64, &[], &[(0, 1, 1, 1, false), (2, 1, 1, 1, true)]);
        let mut raw = vec![0u8; 64 * 512];
        d.read_at(&mut raw, 0).unwrap();
        raw[2 * 512 + 12..2 * 512 + 16].copy_from_slice(&1024u32.to_be_bytes());
        let s = state(&(Arc::new(Mem(raw)) as Dev));
        assert!(!s.clean, "{s:?}");
    }

    #[test]
    fn wrapped_log_finds_the_head_mid_log() {
        // Cycle 3 up to block 19 (ending in an unmount record), cycle 2 after it.
        let d = log(
            64,
            &[(0, 64, 2)],
            &[(10, 3, 6, 4, false), (17, 3, 1, 1, true)],
        );
        let mut raw = vec![0u8; 64 * 512];
        d.read_at(&mut raw, 0).unwrap();
        for blk in 0..10u64 {
            let o = (blk * 512) as usize;
            raw[o..o + 4].copy_from_slice(&3u32.to_be_bytes());
        }
        let d: Dev = Arc::new(Mem(raw));
        let s = state(&d);
        assert!(s.clean, "{s:?}");
        assert_eq!((s.head_block, s.cycle), (19, 3));
    }

    #[test]
    fn zeroed_log_is_clean_and_garbage_is_dirty() {
        assert!(state(&log(64, &[], &[])).clean);
        let s = state(&log(64, &[(0, 30, 7)], &[]));
        assert!(!s.clean, "{s:?}");
    }

    #[test]
    fn a_log_past_the_device_is_corrupt() {
        let d = log(8, &[], &[]);
        assert!(Log::new(&d, 512, 8 * 512).is_err());
        assert!(Log::new(&d, u64::MAX - 10, 1024).is_err());
    }
}
