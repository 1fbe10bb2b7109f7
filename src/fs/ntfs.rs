//! NTFS through the `ntfs` crate (read-only). Paths are looked up case-insensitively with the
//! volume's own $UpCase table, as Windows does. Junctions and symbolic links (reparse points)
//! are reported as symlinks whose targets are rewritten to guest paths ("\??\C:\Users" ->
//! "/Users"); data the crate would return undecoded (NTFS-compressed, EFS-encrypted, or
//! WOF/CompactOS-compressed files) is refused rather than returned as garbage.
use super::{DirEntry, FileType, GuestFs, Meta};
use crate::error::FsError;
use crate::image::{Dev, DevReader};
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
    reader: RefCell<DevReader>,
    name: String,
    dirty: bool,
}

impl Ntfs {
    /// Reads the boot sector, the $UpCase table and the volume flags.
    pub fn open(dev: Dev) -> Result<Self, FsError> {
        let name = dev.name();
        let mut r = DevReader::new(dev);
        let bad =
            |what: &str, e: ntfs::NtfsError| FsError::corrupt(&name, FS, format!("{what}: {e}"));
        let mut ntfs = ntfs::Ntfs::new(&mut r).map_err(|e| bad("boot sector", e))?;
        ntfs.read_upcase_table(&mut r)
            .map_err(|e| bad("$UpCase", e))?;
        let vi = ntfs
            .volume_info(&mut r)
            .map_err(|e| bad("$Volume information", e))?;
        let dirty = vi.flags().contains(NtfsVolumeFlags::IS_DIRTY);
        Ok(Ntfs {
            ntfs,
            reader: RefCell::new(r),
            name,
            dirty,
        })
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
        match self.lookup(path)? {
            None => Ok(None),
            Some(f) => Ok(Some(self.meta(&f, path)?)),
        }
    }

    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let dir = self.lookup(path)?.ok_or_else(|| FsError::not_found(path))?;
        if !dir.is_directory() {
            return Err(FsError::NotADirectory { path: path.into() });
        }
        let r = &mut *self.reader.borrow_mut();
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

    fn read_file(&self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
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

    fn read_link(&self, path: &str) -> Result<String, FsError> {
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
