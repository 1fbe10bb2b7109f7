//! NTFS through the `ntfs` crate (read-only). Paths are looked up case-insensitively with the
//! volume's own $UpCase table, as Windows does. Junctions and symbolic links (reparse points)
//! are reported as symlinks whose targets are rewritten to guest paths ("\??\C:\Users" ->
//! "/Users"); data the crate would return undecoded (NTFS-compressed, EFS-encrypted, or
//! WOF/CompactOS-compressed files) is refused rather than returned as garbage.
use super::{DirEntry, FileType, GuestFs, Meta};
use crate::error::FsError;
use crate::image::Dev;
use ntfs::indexes::NtfsFileNameIndex;
use ntfs::structured_values::{NtfsFileNamespace, NtfsVolumeFlags};
use ntfs::{NtfsAttributeFlags, NtfsAttributeType, NtfsFile, NtfsReadSeek};
use std::cell::RefCell;
use std::io::Read;

const FS: &str = "ntfs";
const IO_REPARSE_TAG_MOUNT_POINT: u32 = 0xA000_0003;
const IO_REPARSE_TAG_SYMLINK: u32 = 0xA000_000C;
const IO_REPARSE_TAG_WOF: u32 = 0x8000_0017;
/// File records below this number are NTFS metadata files ($MFT, $Extend, reserved ones).
const FIRST_USER_RECORD: u64 = 24;
/// Deepest path walked (Windows paths are limited to 32767 characters anyway).
const MAX_DEPTH: usize = 256;

pub struct Ntfs {
    ntfs: ntfs::Ntfs,
    reader: RefCell<VolReader>,
    name: String,
    dirty: bool,
    log_unclean: bool,
    label: Option<String>,
    /// Directories whose index entries [`Ntfs::check_index`] found sound (file record numbers).
    sound_dirs: RefCell<std::collections::HashSet<u64>>,
}

/// The volume as the ntfs crate reads it: reads never fail and never come up short. A read past
/// the end of the device (or one the device fails) yields zeros and records the fault, which
/// every call then returns as its error ([`Ntfs::checked`]). The crate must not see the short
/// read itself: ntfs 0.4 turns any I/O error raised inside its binrw parsing into a panic
/// (`unreachable!` in `From<binrw::Error>`), e.g. on an empty or truncated volume (issue #12).
struct VolReader {
    dev: Dev,
    pos: u64,
    fault: Option<FsError>,
}

impl VolReader {
    fn new(dev: Dev) -> Self {
        VolReader {
            dev,
            pos: 0,
            fault: None,
        }
    }
}

impl std::io::Read for VolReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.dev.size();
        let avail = size.saturating_sub(self.pos).min(buf.len() as u64) as usize;
        let (have, past) = buf.split_at_mut(avail);
        if let Err(e) = self.dev.read_at(have, self.pos) {
            have.fill(0);
            self.fault.get_or_insert(e.into());
        }
        if !past.is_empty() {
            past.fill(0);
            self.fault.get_or_insert_with(|| {
                let what = format!(
                    "read at {:#x} past the end of the {size}-byte volume",
                    self.pos
                );
                FsError::corrupt(self.dev.name(), FS, what)
            });
        }
        self.pos = self.pos.saturating_add(buf.len() as u64);
        Ok(buf.len())
    }
}

impl std::io::Seek for VolReader {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        let new = match pos {
            std::io::SeekFrom::Start(p) => Some(p),
            std::io::SeekFrom::End(d) => self.dev.size().checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let new = new.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek out of range")
        })?;
        self.pos = new;
        Ok(new)
    }
}

/// Largest directory index read whole by [`Ntfs::check_index`] (a real one: a few MiB).
const INDEX_LIMIT: u64 = 256 << 20;

/// Applies the update sequence array of a multi-sector record (the last two bytes of each
/// 512-byte sector are stored in the array); false when the record is torn or malformed.
fn apply_fixups(rec: &mut [u8]) -> bool {
    let usa = usize::from(u16::from_le_bytes([rec[4], rec[5]]));
    let count = usize::from(u16::from_le_bytes([rec[6], rec[7]]));
    if count == 0 || usa + 2 * count > rec.len() || (count - 1) * 512 > rec.len() {
        return false;
    }
    let check = [rec[usa], rec[usa + 1]];
    for i in 1..count {
        let at = i * 512 - 2;
        if rec[at..at + 2] != check {
            return false;
        }
        rec[at] = rec[usa + 2 * i];
        rec[at + 1] = rec[usa + 2 * i + 1];
    }
    true
}

/// NTFS file record number of the $LogFile metadata file.
const LOGFILE_RECORD: u64 = 2;

/// Whether the $LogFile restart area says the journal holds changes not yet written to the
/// volume. `pages` is the start of $LogFile (its two restart pages). A log that was never used
/// or was emptied (all 0xFF, no "RSTR" page) is clean; otherwise the newest valid restart page
/// decides: clean when no client is in use or the "volume is clean" flag is set.
pub fn logfile_unclean(pages: &[u8]) -> bool {
    let le16 = |b: &[u8], o: usize| b.get(o..o + 2).map(|x| u16::from_le_bytes([x[0], x[1]]));
    let le64 = |b: &[u8], o: usize| {
        b.get(o..o + 8)
            .map(|x| u64::from_le_bytes(x.try_into().unwrap_or_default()))
    };
    let restart = |page: &[u8]| -> Option<(u64, bool)> {
        if page.get(0..4) != Some(b"RSTR") {
            return None;
        }
        let ra = usize::from(le16(page, 0x18)?);
        let lsn = le64(page, ra)?;
        let in_use = le16(page, ra + 12)?;
        let flags = le16(page, ra + 14)?;
        const NO_CLIENT: u16 = 0xffff;
        const VOLUME_IS_CLEAN: u16 = 0x0002;
        Some((lsn, in_use != NO_CLIENT && flags & VOLUME_IS_CLEAN == 0))
    };
    // The second restart page sits one system page (4 KiB here) after the first.
    let first = restart(pages);
    let second = pages.get(4096..).and_then(restart);
    match (first, second) {
        (Some(a), Some(b)) => {
            if b.0 > a.0 {
                b.1
            } else {
                a.1
            }
        }
        (Some(a), None) | (None, Some(a)) => a.1,
        (None, None) => false,
    }
}

impl Ntfs {
    /// Reads the boot sector, the $UpCase table and the volume flags.
    pub fn open(dev: Dev) -> Result<Self, FsError> {
        let name = dev.name();
        let mut r = VolReader::new(dev);
        let bad = |what: &str, e: ntfs::NtfsError, r: &mut VolReader| match r.fault.take() {
            Some(f) => f,
            None => FsError::corrupt(&name, FS, format!("{what}: {e}")),
        };
        let mut ntfs = ntfs::Ntfs::new(&mut r).map_err(|e| bad("boot sector", e, &mut r))?;
        ntfs.read_upcase_table(&mut r)
            .map_err(|e| bad("$UpCase", e, &mut r))?;
        let vi = ntfs
            .volume_info(&mut r)
            .map_err(|e| bad("$Volume information", e, &mut r))?;
        if let Some(f) = r.fault.take() {
            return Err(f);
        }
        let dirty = vi.flags().contains(NtfsVolumeFlags::IS_DIRTY);
        // The volume label ($Volume's $VOLUME_NAME; the boot sector has none), as blkid and
        // virt-inspector report it.
        let label = match ntfs.volume_name(&mut r) {
            Some(Ok(n)) => Some(n.name().to_string_lossy()).filter(|l| !l.is_empty()),
            _ => None,
        };
        // An unreadable $LogFile leaves the volume readable; the repair's mount judges it then.
        let log_unclean = match read_logfile_start(&ntfs, &mut r) {
            Ok(pages) if r.fault.is_none() => logfile_unclean(&pages),
            Ok(_) => {
                let f = r.fault.take();
                tracing::warn!(
                    "{name}: $LogFile: {}",
                    f.map(|f| f.to_string()).unwrap_or_default()
                );
                false
            }
            Err(e) => {
                tracing::warn!("{name}: $LogFile: {e}");
                false
            }
        };
        Ok(Ntfs {
            ntfs,
            reader: RefCell::new(r),
            name,
            dirty,
            log_unclean,
            label,
            sound_dirs: RefCell::default(),
        })
    }

    /// The volume label, None when unset.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// True when $LogFile holds metadata changes not yet applied to the volume (unclean
    /// shutdown, crash-consistent snapshot); only Windows replays them.
    pub fn is_log_unclean(&self) -> bool {
        self.log_unclean
    }

    /// True when the volume's dirty flag is set: Windows did not unmount it cleanly (crash,
    /// crash-consistent snapshot) and chkdsk will run at next boot.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    fn err(&self, path: &str, e: ntfs::NtfsError) -> FsError {
        FsError::corrupt(&self.name, FS, format!("{path}: {e}"))
    }

    fn unsupported(&self, path: &str, what: &str) -> FsError {
        FsError::Unsupported {
            dev: self.name.clone(),
            fs: FS,
            what: format!("{path}: {what}"),
        }
    }

    /// Walks `path` from the root directory; `Ok(None)` when a component is missing.
    fn lookup(&self, path: &str) -> Result<Option<NtfsFile<'_>>, FsError> {
        let r = &mut *self.reader.borrow_mut();
        let mut cur = self.ntfs.root_directory(r).map_err(|e| self.err("/", e))?;
        let comps: Vec<&str> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if comps.len() > MAX_DEPTH {
            return Err(self.unsupported(path, "path too deep"));
        }
        let mut walked = String::new();
        for comp in comps {
            if !cur.is_directory() {
                return Err(FsError::NotADirectory {
                    path: if walked.is_empty() {
                        "/".into()
                    } else {
                        walked
                    },
                });
            }
            walked.push('/');
            walked.push_str(comp);
            self.check_index(&cur, r, &walked)?;
            let index = cur.directory_index(r).map_err(|e| self.err(&walked, e))?;
            let mut finder = index.finder();
            let next = match NtfsFileNameIndex::find(&mut finder, &self.ntfs, r, comp) {
                None => return Ok(None),
                Some(entry) => {
                    let entry = entry.map_err(|e| self.err(&walked, e))?;
                    entry
                        .to_file(&self.ntfs, r)
                        .map_err(|e| self.err(&walked, e))?
                }
            };
            cur = next;
        }
        Ok(Some(cur))
    }

    /// Checks every entry of the directory index of `dir` (its $INDEX_ROOT and every record of
    /// its $INDEX_ALLOCATION) before the crate walks it: ntfs 0.4 builds an index entry of any
    /// declared length and then reads its header past a length under 16 bytes, which panics
    /// (slice index out of range, issue #12). Checked once per directory.
    fn check_index(
        &self,
        dir: &NtfsFile<'_>,
        r: &mut VolReader,
        path: &str,
    ) -> Result<(), FsError> {
        if self.sound_dirs.borrow().contains(&dir.file_record_number()) {
            return Ok(());
        }
        let mut root = None;
        let mut allocation = None;
        let mut it = dir.attributes();
        while let Some(item) = it.next(r) {
            let item = item.map_err(|e| self.err(path, e))?;
            let attr = item.to_attribute().map_err(|e| self.err(path, e))?;
            let ty = attr.ty().map_err(|e| self.err(path, e))?;
            let is_i30 = attr.name().is_ok_and(|n| n == "$I30");
            let slot = match ty {
                NtfsAttributeType::IndexRoot if is_i30 => &mut root,
                NtfsAttributeType::IndexAllocation if is_i30 => &mut allocation,
                _ => continue,
            };
            if attr.value_length() > INDEX_LIMIT {
                return Err(self.unsupported(path, "directory index over 256 MiB"));
            }
            let mut buf = vec![0u8; attr.value_length() as usize];
            let mut v = attr.value(r).map_err(|e| self.err(path, e))?;
            v.read_exact(r, &mut buf).map_err(|e| self.err(path, e))?;
            *slot = Some(buf);
        }
        let le = |b: &[u8], o: usize, n: usize| -> usize {
            b.get(o..o + n)
                .map_or(0, |x| x.iter().rev().fold(0, |a, &c| a << 8 | c as usize))
        };
        // A node header (entries offset, index size) at `node` of `b`; its entries follow.
        let check_node = |b: &[u8], node: usize| -> Result<(), FsError> {
            let end = (node + le(b, node + 4, 4)).min(b.len());
            let mut at = node + le(b, node, 4);
            while at + 16 <= end {
                let len = le(b, at + 8, 2);
                if len < 16 {
                    let what = format!("{path}: index entry of {len} bytes (under its header)");
                    return Err(FsError::corrupt(&self.name, FS, what));
                }
                if b[at + 12] & 2 != 0 {
                    break; // the last entry
                }
                at += len;
            }
            Ok(())
        };
        let Some(root) = root else {
            return Ok(()); // the crate reports a directory without an index
        };
        check_node(&root, 16)?;
        let record_size = le(&root, 8, 4);
        if let (Some(alloc), true) = (allocation, (512..=1 << 16).contains(&record_size)) {
            for rec in alloc.chunks_exact(record_size) {
                let mut rec = rec.to_vec();
                // Records the crate would refuse (signature, update sequence) are skipped.
                if &rec[..4] == b"INDX" && apply_fixups(&mut rec) {
                    check_node(&rec, 24)?;
                }
            }
        }
        self.sound_dirs
            .borrow_mut()
            .insert(dir.file_record_number());
        Ok(())
    }

    /// The reparse point of `file` as (tag, data), if it has one.
    fn reparse(&self, file: &NtfsFile<'_>, path: &str) -> Result<Option<(u32, Vec<u8>)>, FsError> {
        let r = &mut *self.reader.borrow_mut();
        let mut it = file.attributes();
        while let Some(item) = it.next(r) {
            let item = item.map_err(|e| self.err(path, e))?;
            let attr = item.to_attribute().map_err(|e| self.err(path, e))?;
            if attr.ty().map_err(|e| self.err(path, e))? != NtfsAttributeType::ReparsePoint {
                continue;
            }
            if attr.value_length() > 16 * 1024 {
                return Err(FsError::corrupt(
                    &self.name,
                    FS,
                    format!("{path}: reparse point over 16 KiB"),
                ));
            }
            let mut v = attr.value(r).map_err(|e| self.err(path, e))?;
            let mut buf = vec![0u8; attr.value_length() as usize];
            v.read_exact(r, &mut buf).map_err(|e| self.err(path, e))?;
            if buf.len() < 8 {
                return Err(FsError::corrupt(
                    &self.name,
                    FS,
                    format!("{path}: reparse point too short"),
                ));
            }
            let tag = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
            return Ok(Some((tag, buf)));
        }
        Ok(None)
    }

    fn meta(&self, file: &NtfsFile<'_>, path: &str) -> Result<Meta, FsError> {
        if let Some((tag, _)) = self.reparse(file, path)? {
            if tag == IO_REPARSE_TAG_SYMLINK || tag == IO_REPARSE_TAG_MOUNT_POINT {
                return Ok(Meta {
                    ftype: FileType::Symlink,
                    size: 0,
                    mode: 0o120777,
                });
            }
        }
        if file.is_directory() {
            return Ok(Meta {
                ftype: FileType::Dir,
                size: 0,
                mode: 0o40755,
            });
        }
        let r = &mut *self.reader.borrow_mut();
        let size = match file.data(r, "") {
            None => 0,
            Some(item) => {
                let item = item.map_err(|e| self.err(path, e))?;
                let attr = item.to_attribute().map_err(|e| self.err(path, e))?;
                attr.value_length()
            }
        };
        Ok(Meta {
            ftype: FileType::File,
            size,
            mode: 0o100644,
        })
    }
}

/// Turns a Windows reparse target into a guest path: "\??\C:\Users" -> "/Users" (assuming the
/// target is on this volume, the system drive), "..\x" -> "../x".
fn windows_target_to_guest(t: &str) -> String {
    let t = t.strip_prefix("\\??\\").unwrap_or(t);
    let t = t.replace('\\', "/");
    let b = t.as_bytes();
    if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
        let rest = &t[2..];
        if rest.starts_with('/') {
            rest.to_string()
        } else {
            format!("/{rest}")
        }
    } else {
        t
    }
}

/// Substitute name of a symlink or junction reparse buffer (see MS-FSCC 2.1.2.4 and 2.1.2.5).
/// The first 8 KiB of $LogFile (both restart pages); shorter if the file is.
fn read_logfile_start(ntfs: &ntfs::Ntfs, r: &mut VolReader) -> Result<Vec<u8>, ntfs::NtfsError> {
    let file = ntfs.file(r, LOGFILE_RECORD)?;
    let Some(item) = file.data(r, "") else {
        return Ok(vec![]);
    };
    let item = item?;
    let attr = item.to_attribute()?;
    let value = attr.value(r)?;
    let mut out = vec![];
    // An I/O error mid-way just shortens what is judged; the flags sit in the first bytes.
    let _ = value.attach(r).take(8192).read_to_end(&mut out);
    Ok(out)
}

fn reparse_target(tag: u32, buf: &[u8]) -> Option<String> {
    let rd = |o: usize| -> Option<usize> {
        Some(u16::from_le_bytes([*buf.get(o)?, *buf.get(o + 1)?]) as usize)
    };
    let sub_off = rd(8)?;
    let sub_len = rd(10)?;
    let path_start = match tag {
        IO_REPARSE_TAG_SYMLINK => 20, // has a 4-byte flags field
        IO_REPARSE_TAG_MOUNT_POINT => 16,
        _ => return None,
    };
    let s = buf.get(path_start + sub_off..path_start + sub_off + sub_len)?;
    let units: Vec<u16> = s
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let target = String::from_utf16_lossy(&units);
    let relative = tag == IO_REPARSE_TAG_SYMLINK && buf.get(16).is_some_and(|f| f & 1 != 0);
    Some(if relative {
        target.replace('\\', "/")
    } else {
        windows_target_to_guest(&target)
    })
}

impl GuestFs for Ntfs {
    fn fstype(&self) -> &'static str {
        FS
    }
    fn stat(&self, path: &str) -> Result<Option<Meta>, FsError> {
        self.checked(|| self.stat_raw(path))
    }
    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        self.checked(|| self.read_dir_raw(path))
    }
    fn read_file(&self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
        self.checked(|| self.read_file_raw(path, limit))
    }
    fn read_link(&self, path: &str) -> Result<String, FsError> {
        self.checked(|| self.read_link_raw(path))
    }
}

impl Ntfs {
    /// Runs `f`, failing it with the reader's fault if the crate read past the end of the
    /// volume or through a failing device on the way (it then saw zeros, see [`VolReader`]).
    fn checked<T>(&self, f: impl FnOnce() -> Result<T, FsError>) -> Result<T, FsError> {
        self.reader.borrow_mut().fault = None;
        let res = f();
        match self.reader.borrow_mut().fault.take() {
            Some(fault) => Err(fault),
            None => res,
        }
    }

    fn stat_raw(&self, path: &str) -> Result<Option<Meta>, FsError> {
        match self.lookup(path)? {
            None => Ok(None),
            Some(f) => Ok(Some(self.meta(&f, path)?)),
        }
    }

    fn read_dir_raw(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let dir = self.lookup(path)?.ok_or_else(|| FsError::not_found(path))?;
        if !dir.is_directory() {
            return Err(FsError::NotADirectory { path: path.into() });
        }
        let r = &mut *self.reader.borrow_mut();
        self.check_index(&dir, r, path)?;
        let index = dir.directory_index(r).map_err(|e| self.err(path, e))?;
        let mut entries = index.entries();
        let mut out = vec![];
        while let Some(entry) = entries.next(r) {
            let entry = entry.map_err(|e| self.err(path, e))?;
            if entry.file_reference().file_record_number() < FIRST_USER_RECORD {
                continue;
            }
            let Some(key) = entry.key() else { continue };
            let fname = key.map_err(|e| self.err(path, e))?;
            // A file with a long name has a second index entry for its 8.3 alias: list it once.
            if fname.namespace() == NtfsFileNamespace::Dos {
                continue;
            }
            // The reparse flag lives in the file attributes cached in the index entry.
            let attrs = fname.file_attributes().bits();
            let ftype = if attrs & 0x400 != 0 {
                FileType::Symlink
            } else if fname.is_directory() {
                FileType::Dir
            } else {
                FileType::File
            };
            out.push(DirEntry {
                name: fname.name().to_string_lossy(),
                ftype,
            });
        }
        Ok(out)
    }

    fn read_file_raw(&self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
        let file = self.lookup(path)?.ok_or_else(|| FsError::not_found(path))?;
        if file.is_directory() {
            return Err(FsError::IsADirectory { path: path.into() });
        }
        if let Some((tag, _)) = self.reparse(&file, path)? {
            if tag == IO_REPARSE_TAG_WOF {
                return Err(self.unsupported(path, "WOF (CompactOS) compressed file"));
            }
        }
        let r = &mut *self.reader.borrow_mut();
        let Some(item) = file.data(r, "") else {
            return Ok(vec![]);
        };
        let item = item.map_err(|e| self.err(path, e))?;
        let attr = item.to_attribute().map_err(|e| self.err(path, e))?;
        let flags = attr.flags();
        if flags.contains(NtfsAttributeFlags::COMPRESSED) {
            return Err(self.unsupported(path, "NTFS-compressed file"));
        }
        if flags.contains(NtfsAttributeFlags::ENCRYPTED) {
            return Err(self.unsupported(path, "EFS-encrypted file"));
        }
        let size = attr.value_length();
        if size > limit {
            return Err(FsError::TooLarge {
                path: path.into(),
                size,
                limit,
            });
        }
        let value = attr.value(r).map_err(|e| self.err(path, e))?;
        let mut out = Vec::with_capacity(size as usize);
        value
            .attach(r)
            .take(size)
            .read_to_end(&mut out)
            .map_err(|e| FsError::corrupt(&self.name, FS, format!("{path}: reading data: {e}")))?;
        if (out.len() as u64) < size {
            return Err(FsError::corrupt(
                &self.name,
                FS,
                format!("{path}: data ends after {} of {size} bytes", out.len()),
            ));
        }
        Ok(out)
    }

    fn read_link_raw(&self, path: &str) -> Result<String, FsError> {
        let file = self.lookup(path)?.ok_or_else(|| FsError::not_found(path))?;
        match self.reparse(&file, path)? {
            Some((tag, buf)) => reparse_target(tag, &buf).ok_or_else(|| {
                self.unsupported(
                    path,
                    &format!("reparse point with tag {tag:#x} is not a link"),
                )
            }),
            None => Err(self.unsupported(path, "not a symbolic link or junction")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restart page with its area at 0x30: (current LSN, client in use, flags).
    fn rstr(lsn: u64, in_use: u16, flags: u16) -> Vec<u8> {
        let mut p = vec![0u8; 4096];
        p[0..4].copy_from_slice(b"RSTR");
        p[0x18..0x1a].copy_from_slice(&0x30u16.to_le_bytes());
        p[0x30..0x38].copy_from_slice(&lsn.to_le_bytes());
        p[0x3c..0x3e].copy_from_slice(&in_use.to_le_bytes());
        p[0x3e..0x40].copy_from_slice(&flags.to_le_bytes());
        p
    }

    #[test]
    fn logfile_restart_area_decides_cleanliness() {
        assert!(!logfile_unclean(&[0xff; 8192]), "a reset log is clean");
        assert!(!logfile_unclean(&[]));
        assert!(logfile_unclean(&rstr(5, 0, 0)), "client in use, not clean");
        assert!(!logfile_unclean(&rstr(5, 0, 2)), "VOLUME_IS_CLEAN set");
        assert!(!logfile_unclean(&rstr(5, 0xffff, 0)), "no client in use");
        // The newer of the two restart pages wins.
        let both = |a: Vec<u8>, b: Vec<u8>| [a, b].concat();
        assert!(logfile_unclean(&both(rstr(5, 0xffff, 0), rstr(9, 0, 0))));
        assert!(!logfile_unclean(&both(rstr(9, 0xffff, 0), rstr(5, 0, 0))));
        // A truncated page never panics.
        assert!(!logfile_unclean(&rstr(5, 0, 0)[..0x32]));
    }

    fn reparse_buf(tag: u32, sub: &str, flags: Option<u32>) -> Vec<u8> {
        let sub16: Vec<u8> = sub.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let mut b = tag.to_le_bytes().to_vec();
        b.extend_from_slice(&0u32.to_le_bytes()); // data length, reserved (unused here)
        b.extend_from_slice(&0u16.to_le_bytes()); // substitute name offset
        b.extend_from_slice(&(sub16.len() as u16).to_le_bytes());
        b.extend_from_slice(&(sub16.len() as u16).to_le_bytes()); // print name offset
        b.extend_from_slice(&0u16.to_le_bytes());
        if let Some(f) = flags {
            b.extend_from_slice(&f.to_le_bytes());
        }
        b.extend_from_slice(&sub16);
        b
    }

    #[test]
    fn junction_and_symlink_targets_become_guest_paths() {
        let j = reparse_buf(IO_REPARSE_TAG_MOUNT_POINT, "\\??\\C:\\Users", None);
        assert_eq!(
            reparse_target(IO_REPARSE_TAG_MOUNT_POINT, &j).unwrap(),
            "/Users"
        );
        let s = reparse_buf(IO_REPARSE_TAG_SYMLINK, "..\\Program Files\\x", Some(1));
        assert_eq!(
            reparse_target(IO_REPARSE_TAG_SYMLINK, &s).unwrap(),
            "../Program Files/x"
        );
        let s = reparse_buf(IO_REPARSE_TAG_SYMLINK, "\\??\\D:\\data", Some(0));
        assert_eq!(reparse_target(IO_REPARSE_TAG_SYMLINK, &s).unwrap(), "/data");
        assert!(reparse_target(IO_REPARSE_TAG_SYMLINK, &s[..12]).is_none());
        assert!(reparse_target(IO_REPARSE_TAG_WOF, &s).is_none());
    }
}
