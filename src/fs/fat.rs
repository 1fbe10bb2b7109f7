//! Read-only FAT12/16/32 reader for EFI System Partitions, written by hand because the `fatfs`
//! crate wants a writable device.
//!
//! ```text
//!  sector 0: BPB | reserved | FAT #0 .. FAT #n | root dir (12/16 only) | data clusters 2..
//! ```
//! Directories are parsed with VFAT long names; lookups compare names case-insensitively (ESP
//! paths like /EFI/BOOT/BOOTX64.EFI are stored in whatever case the tool that wrote them chose).
//! Every cluster chain walk is bounded by the cluster count, so a looping FAT is an error.
use super::{DirEntry, FileType, GuestFs, Meta};
use crate::error::FsError;
use crate::image::{read_vec, Dev};

const FS: &str = "vfat";
const ATTR_DIR: u8 = 0x10;
const ATTR_VOLUME: u8 = 0x08;
const ATTR_LFN: u8 = 0x0F;
/// A FAT directory holds at most 65536 entries of 32 bytes.
const MAX_DIR_BYTES: u64 = 65536 * 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatKind {
    Fat12,
    Fat16,
    Fat32,
}

pub struct Fat {
    dev: Dev,
    name: String,
    kind: FatKind,
    /// The active FAT, as raw bytes (ESP FATs are a few MiB at most).
    fat: Vec<u8>,
    cluster_size: u64,
    /// Byte offset of cluster 2.
    data_start: u64,
    /// Highest valid cluster number.
    max_cluster: u32,
    /// FAT12/16: byte range of the fixed root directory.
    root_fixed: Option<(u64, u64)>,
    /// FAT32: first cluster of the root directory.
    root_cluster: u32,
}

/// Where a directory's entries live.
#[derive(Clone, Copy)]
enum DirLoc {
    FixedRoot,
    Chain(u32),
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    short: String,
    attr: u8,
    cluster: u32,
    size: u32,
}

impl Entry {
    fn is_dir(&self) -> bool {
        self.attr & ATTR_DIR != 0
    }
    fn meta(&self) -> Meta {
        if self.is_dir() {
            Meta {
                ftype: FileType::Dir,
                size: 0,
                mode: 0o40755,
            }
        } else {
            Meta {
                ftype: FileType::File,
                size: self.size as u64,
                mode: 0o100644,
            }
        }
    }
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl Fat {
    /// Parses and validates the BIOS parameter block and loads the active FAT.
    pub fn open(dev: Dev) -> Result<Self, FsError> {
        let name = dev.name();
        let bad = |what: String| FsError::corrupt(&name, FS, what);
        if dev.size() < 512 {
            return Err(bad(format!(
                "device of {} bytes is too small for a boot sector",
                dev.size()
            )));
        }
        let bs = read_vec(dev.as_ref(), 0, 512)?;
        let bps = le16(&bs, 11) as u64;
        let spc = bs[13] as u64;
        let reserved = le16(&bs, 14) as u64;
        let nfats = bs[16] as u64;
        let root_entries = le16(&bs, 17) as u64;
        let total16 = le16(&bs, 19) as u64;
        let fatsz16 = le16(&bs, 22) as u64;
        let total32 = le32(&bs, 32) as u64;
        let fatsz32 = le32(&bs, 36) as u64;
        if !matches!(bps, 512 | 1024 | 2048 | 4096) {
            return Err(bad(format!(
                "boot sector offset 0xb: bytes per sector {bps} is not 512..4096"
            )));
        }
        if spc == 0 || !spc.is_power_of_two() {
            return Err(bad(format!(
                "boot sector offset 0xd: sectors per cluster {spc} is not a power of two"
            )));
        }
        if reserved == 0 {
            return Err(bad("boot sector offset 0xe: zero reserved sectors".into()));
        }
        if nfats == 0 || nfats > 4 {
            return Err(bad(format!("boot sector offset 0x10: {nfats} FATs")));
        }
        let fat_sectors = if fatsz16 != 0 { fatsz16 } else { fatsz32 };
        let total = if total16 != 0 { total16 } else { total32 };
        if fat_sectors == 0 || total == 0 {
            return Err(bad(
                "boot sector: zero FAT size or zero total sectors".into()
            ));
        }
        let root_sectors = (root_entries * 32).div_ceil(bps);
        let fat_start = reserved * bps;
        let root_start = (reserved + nfats * fat_sectors) * bps;
        let data_sector = reserved + nfats * fat_sectors + root_sectors;
        if data_sector >= total {
            return Err(bad(format!(
                "boot sector: metadata ({data_sector} sectors) fills the {total}-sector volume"
            )));
        }
        let clusters = (total - data_sector) / spc;
        // The FAT type is decided by the cluster count alone (Microsoft's FAT specification).
        let kind = if clusters < 4085 {
            FatKind::Fat12
        } else if clusters < 65525 {
            FatKind::Fat16
        } else {
            FatKind::Fat32
        };
        if kind == FatKind::Fat32 && (root_entries != 0 || fatsz16 != 0) {
            return Err(bad(
                "FAT32 by cluster count but the BPB has a fixed root directory".into(),
            ));
        }
        if kind != FatKind::Fat32 && root_entries == 0 {
            return Err(bad("FAT12/16 with no root directory entries".into()));
        }
        let fat_bytes_needed = match kind {
            FatKind::Fat12 => ((clusters + 2) * 3).div_ceil(2),
            FatKind::Fat16 => (clusters + 2) * 2,
            FatKind::Fat32 => (clusters + 2) * 4,
        };
        if fat_bytes_needed > fat_sectors * bps {
            return Err(bad(format!(
                "FAT of {} bytes cannot map {clusters} clusters",
                fat_sectors * bps
            )));
        }
        if root_start + root_sectors * bps > dev.size() {
            return Err(bad(format!(
                "FAT and root directory end at byte {} beyond the {}-byte device",
                root_start + root_sectors * bps,
                dev.size()
            )));
        }
        // FAT32 extended flags: bit 7 set means only FAT number (bits 0-3) is kept up to date.
        let mut active = 0;
        let mut root_cluster = 0;
        if kind == FatKind::Fat32 {
            let ext = le16(&bs, 40);
            if ext & 0x80 != 0 {
                active = (ext & 0xf) as u64;
                if active >= nfats {
                    return Err(bad(format!(
                        "boot sector offset 0x28: active FAT {active} of {nfats}"
                    )));
                }
            }
            root_cluster = le32(&bs, 44);
        }
        let fat = read_vec(
            dev.as_ref(),
            fat_start + active * fat_sectors * bps,
            fat_bytes_needed as usize,
        )?;
        let fs = Fat {
            name: name.clone(),
            kind,
            fat,
            cluster_size: spc * bps,
            data_start: data_sector * bps,
            max_cluster: (clusters + 1) as u32,
            root_fixed: (kind != FatKind::Fat32).then_some((root_start, root_sectors * bps)),
            root_cluster,
            dev,
        };
        if kind == FatKind::Fat32 && !fs.valid_cluster(root_cluster) {
            return Err(bad(format!(
                "boot sector offset 0x2c: root cluster {root_cluster} out of range"
            )));
        }
        Ok(fs)
    }

    pub fn kind(&self) -> FatKind {
        self.kind
    }

    fn corrupt(&self, what: String) -> FsError {
        FsError::corrupt(&self.name, FS, what)
    }

    fn valid_cluster(&self, c: u32) -> bool {
        (2..=self.max_cluster).contains(&c)
    }

    /// The FAT entry of cluster `c` (masked to 28 bits on FAT32).
    fn fat_entry(&self, c: u32) -> u32 {
        let c = c as usize;
        // `fat` covers every cluster up to max_cluster (checked at open); callers pass valid ones.
        match self.kind {
            FatKind::Fat12 => {
                let o = c + c / 2;
                let v = le16(&self.fat, o) as u32;
                if c & 1 == 1 {
                    v >> 4
                } else {
                    v & 0xfff
                }
            }
            FatKind::Fat16 => le16(&self.fat, c * 2) as u32,
            FatKind::Fat32 => le32(&self.fat, c * 4) & 0x0fff_ffff,
        }
    }

    fn is_eoc(&self, v: u32) -> bool {
        match self.kind {
            FatKind::Fat12 => v >= 0xff8,
            FatKind::Fat16 => v >= 0xfff8,
            FatKind::Fat32 => v >= 0x0fff_fff8,
        }
    }

    /// The cluster chain starting at `start`, stopping after `want` clusters if given. A cluster
    /// seen twice is a loop (a chain can then never end, or would repeat data).
    fn chain(&self, start: u32, want: Option<u64>, path: &str) -> Result<Vec<u32>, FsError> {
        let mut out = vec![];
        let mut seen = std::collections::HashSet::new();
        let mut c = start;
        loop {
            if !self.valid_cluster(c) {
                return Err(self.corrupt(format!(
                    "{path}: cluster chain points to invalid cluster {c:#x}"
                )));
            }
            if !seen.insert(c) {
                return Err(self.corrupt(format!(
                    "{path}: cluster chain from {start} loops back to {c}"
                )));
            }
            out.push(c);
            if want.is_some_and(|w| out.len() as u64 >= w) {
                return Ok(out);
            }
            let next = self.fat_entry(c);
            if self.is_eoc(next) {
                return Ok(out);
            }
            c = next;
        }
    }

    /// Reads the clusters of `chain` (merging runs of adjacent clusters into one read) up to
    /// `len` bytes.
    fn read_chain(&self, chain: &[u32], len: u64) -> Result<Vec<u8>, FsError> {
        let mut out = vec![0u8; len as usize];
        let mut done = 0u64;
        let mut i = 0;
        while i < chain.len() && done < len {
            let mut j = i + 1;
            while j < chain.len() && chain[j] == chain[j - 1] + 1 {
                j += 1;
            }
            let run = (j - i) as u64 * self.cluster_size;
            let n = run.min(len - done);
            let off = self.data_start + (chain[i] as u64 - 2) * self.cluster_size;
            self.dev
                .read_at(&mut out[done as usize..(done + n) as usize], off)?;
            done += n;
            i = j;
        }
        Ok(out)
    }

    fn dir_bytes(&self, loc: DirLoc, path: &str) -> Result<Vec<u8>, FsError> {
        match loc {
            DirLoc::FixedRoot => {
                let (off, len) = self
                    .root_fixed
                    .ok_or_else(|| self.corrupt("FAT32 has no fixed root directory".into()))?;
                Ok(read_vec(self.dev.as_ref(), off, len as usize)?)
            }
            DirLoc::Chain(c) => {
                let max = MAX_DIR_BYTES.div_ceil(self.cluster_size);
                let chain = self.chain(c, Some(max + 1), path)?;
                if chain.len() as u64 > max {
                    return Err(
                        self.corrupt(format!("{path}: directory larger than 65536 entries"))
                    );
                }
                self.read_chain(&chain, chain.len() as u64 * self.cluster_size)
            }
        }
    }

    fn root_loc(&self) -> DirLoc {
        match self.kind {
            FatKind::Fat32 => DirLoc::Chain(self.root_cluster),
            _ => DirLoc::FixedRoot,
        }
    }

    fn entries(&self, loc: DirLoc, path: &str) -> Result<Vec<Entry>, FsError> {
        Ok(parse_dir(
            &self.dir_bytes(loc, path)?,
            self.kind == FatKind::Fat32,
        ))
    }

    /// Walks `path` from the root; `Ok(None)` if a component is missing.
    fn lookup(&self, path: &str) -> Result<Option<Option<Entry>>, FsError> {
        // Outer None: missing. Inner None: the root directory itself.
        let mut cur: Option<Entry> = None;
        let mut walked = String::new();
        for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            let loc = match &cur {
                None => self.root_loc(),
                Some(e) if !e.is_dir() => return Err(FsError::NotADirectory { path: walked }),
                Some(e) => self.dir_loc(e),
            };
            walked.push('/');
            walked.push_str(comp);
            let found = self
                .entries(loc, &walked)?
                .into_iter()
                .find(|e| names_equal(&e.name, comp) || names_equal(&e.short, comp));
            match found {
                Some(e) => cur = Some(e),
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    fn dir_loc(&self, e: &Entry) -> DirLoc {
        // ".." of a first-level directory stores cluster 0 for the root.
        if e.cluster == 0 {
            self.root_loc()
        } else {
            DirLoc::Chain(e.cluster)
        }
    }
}

/// Case-insensitive comparison as Windows does for FAT long names (simple Unicode case folding).
fn names_equal(a: &str, b: &str) -> bool {
    !a.is_empty() && (a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase())
}

/// Checksum of an 8.3 name stored in each of its long-name entries.
fn lfn_checksum(short: &[u8]) -> u8 {
    short
        .iter()
        .fold(0u8, |s, &c| s.rotate_right(1).wrapping_add(c))
}

/// The 8.3 name as displayed, honouring the NT lowercase flags (byte 12: 0x08 base, 0x10 ext).
fn short_name(raw: &[u8], nt_flags: u8) -> String {
    let conv = |b: &[u8], lower: bool| -> String {
        let s: String = b
            .iter()
            .map(|&c| if c < 0x80 { c as char } else { '_' })
            .collect::<String>()
            .trim_end_matches(' ')
            .to_string();
        if lower {
            s.to_ascii_lowercase()
        } else {
            s
        }
    };
    let mut base_raw = raw[..8].to_vec();
    if base_raw[0] == 0x05 {
        base_raw[0] = 0xE5; // 0x05 stands for a real leading 0xE5 byte.
    }
    let base = conv(&base_raw, nt_flags & 0x08 != 0);
    let ext = conv(&raw[8..11], nt_flags & 0x10 != 0);
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

/// Parses raw directory entries into files and subdirectories (volume labels, deleted entries
/// and "."/".." are kept out except "." and ".." which lookups never ask for).
fn parse_dir(b: &[u8], fat32: bool) -> Vec<Entry> {
    let mut out = vec![];
    // Long-name parts collected so far: (expected next order, checksum, UTF-16 units by order).
    let mut lfn: Vec<Option<[u16; 13]>> = vec![];
    let mut lfn_sum = 0u8;
    let mut lfn_next = 0u8;
    for e in b.chunks_exact(32) {
        match e[0] {
            0x00 => break,
            0xE5 => {
                lfn.clear();
                continue;
            }
            _ => {}
        }
        let attr = e[11];
        if attr & 0x3F == ATTR_LFN {
            let ord = e[0] & 0x1F;
            if e[0] & 0x40 != 0 {
                lfn = vec![None; ord as usize];
                lfn_sum = e[13];
                lfn_next = ord;
            }
            if ord == 0 || ord != lfn_next || e[13] != lfn_sum || lfn.len() < ord as usize {
                lfn.clear();
                lfn_next = 0;
                continue;
            }
            let mut units = [0u16; 13];
            for (k, o) in [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]
                .iter()
                .enumerate()
            {
                units[k] = le16(e, *o);
            }
            lfn[ord as usize - 1] = Some(units);
            lfn_next = ord - 1;
            continue;
        }
        let long = if !lfn.is_empty() && lfn_next == 0 && lfn_checksum(&e[..11]) == lfn_sum {
            let mut units: Vec<u16> = lfn
                .iter()
                .flatten()
                .flat_map(|u| u.iter().copied())
                .collect();
            if let Some(end) = units.iter().position(|&u| u == 0) {
                units.truncate(end);
            }
            Some(String::from_utf16_lossy(&units))
        } else {
            None
        };
        lfn.clear();
        lfn_next = 0;
        if attr & ATTR_VOLUME != 0 {
            continue;
        }
        let short = short_name(&e[..11], e[12]);
        if short == "." || short == ".." {
            continue;
        }
        let hi = if fat32 { le16(e, 20) as u32 } else { 0 };
        out.push(Entry {
            name: long.unwrap_or_else(|| short.clone()),
            short,
            attr,
            cluster: (hi << 16) | le16(e, 26) as u32,
            size: le32(e, 28),
        });
    }
    out
}

impl GuestFs for Fat {
    fn fstype(&self) -> &'static str {
        FS
    }

    fn stat(&self, path: &str) -> Result<Option<Meta>, FsError> {
        Ok(match self.lookup(path)? {
            None => None,
            Some(None) => Some(Meta {
                ftype: FileType::Dir,
                size: 0,
                mode: 0o40755,
            }),
            Some(Some(e)) => Some(e.meta()),
        })
    }

    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let loc = match self.lookup(path)? {
            None => return Err(FsError::not_found(path)),
            Some(None) => self.root_loc(),
            Some(Some(e)) if e.is_dir() => self.dir_loc(&e),
            Some(Some(_)) => return Err(FsError::NotADirectory { path: path.into() }),
        };
        Ok(self
            .entries(loc, path)?
            .into_iter()
            .map(|e| DirEntry {
                ftype: e.meta().ftype,
                name: e.name,
            })
            .collect())
    }

    fn read_file(&self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
        let e = match self.lookup(path)? {
            None => return Err(FsError::not_found(path)),
            Some(None) => return Err(FsError::IsADirectory { path: path.into() }),
            Some(Some(e)) if e.is_dir() => return Err(FsError::IsADirectory { path: path.into() }),
            Some(Some(e)) => e,
        };
        let size = e.size as u64;
        if size > limit {
            return Err(FsError::TooLarge {
                path: path.into(),
                size,
                limit,
            });
        }
        if size == 0 {
            return Ok(vec![]);
        }
        let want = size.div_ceil(self.cluster_size);
        let chain = self.chain(e.cluster, Some(want), path)?;
        if (chain.len() as u64) < want {
            return Err(self.corrupt(format!(
                "{path}: {size}-byte file has a chain of only {} clusters",
                chain.len()
            )));
        }
        self.read_chain(&chain, size)
    }

    fn read_link(&self, path: &str) -> Result<String, FsError> {
        Err(FsError::Unsupported {
            dev: self.name.clone(),
            fs: FS,
            what: format!("{path}: FAT has no symbolic links"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lfn_entry(ord: u8, last: bool, sum: u8, units: &[u16]) -> [u8; 32] {
        let mut e = [0xffu8; 32];
        e[0] = ord | if last { 0x40 } else { 0 };
        e[11] = ATTR_LFN;
        e[12] = 0;
        e[13] = sum;
        e[26] = 0;
        e[27] = 0;
        let mut u = units.to_vec();
        if u.len() < 13 {
            u.push(0);
        }
        u.resize(13, 0xffff);
        for (k, o) in [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]
            .iter()
            .enumerate()
        {
            e[*o..*o + 2].copy_from_slice(&u[k].to_le_bytes());
        }
        e
    }

    fn short_entry(name: &[u8; 11], attr: u8, cluster: u32, size: u32) -> [u8; 32] {
        let mut e = [0u8; 32];
        e[..11].copy_from_slice(name);
        e[11] = attr;
        e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
        e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
        e[28..32].copy_from_slice(&size.to_le_bytes());
        e
    }

    #[test]
    fn long_names_are_assembled_and_checked() {
        let short = *b"GRUBX6~1EFI";
        let sum = lfn_checksum(&short);
        let name: Vec<u16> = "grubx64-signed.efi".encode_utf16().collect();
        let mut dir = vec![];
        dir.extend_from_slice(&lfn_entry(2, true, sum, &name[13..]));
        dir.extend_from_slice(&lfn_entry(1, false, sum, &name[..13]));
        dir.extend_from_slice(&short_entry(&short, 0x20, 0x12345, 77));
        // An orphan long name with a wrong checksum must not be attached to the next entry.
        dir.extend_from_slice(&lfn_entry(1, true, sum.wrapping_add(1), &name[..5]));
        dir.extend_from_slice(&short_entry(b"BOOT       ", ATTR_DIR, 3, 0));
        dir.extend_from_slice(&short_entry(b"LABEL      ", ATTR_VOLUME, 0, 0));
        dir.extend_from_slice(&[0u8; 32]);
        dir.extend_from_slice(&short_entry(b"AFTEREND   ", 0x20, 4, 1));
        let v = parse_dir(&dir, true);
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].name, "grubx64-signed.efi");
        assert_eq!(v[0].short, "GRUBX6~1.EFI");
        assert_eq!(v[0].cluster, 0x12345);
        assert_eq!(v[0].size, 77);
        assert_eq!(v[1].name, "BOOT");
        assert!(v[1].is_dir());
    }

    #[test]
    fn nt_case_flags_lowercase_short_names() {
        assert_eq!(short_name(b"GRUB    CFG", 0x18), "grub.cfg");
        assert_eq!(short_name(b"GRUB    CFG", 0x08), "grub.CFG");
        assert!(names_equal("BOOTX64.EFI", "bootx64.efi"));
        assert!(names_equal("Ärger", "äRGER"));
        assert!(!names_equal("", ""));
    }
}
