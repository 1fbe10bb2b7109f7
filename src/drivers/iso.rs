//! A virtio-win ISO image read in place: ISO 9660 (ECMA-119) with Joliet or Rock Ridge names.
//!
//! ```text
//! sector 16..  volume descriptors: 1 = primary, 2 = supplementary (Joliet when its escape
//!              sequence is %/@, %/C or %/E), 255 = terminator
//! directory    extent of 2048-byte sectors holding records; a record never crosses a sector,
//!              a zero length byte means "next sector"
//! record       len, ext-attr len, extent LBA, data length, flags, name, System Use (SUSP)
//! ```
//!
//! Names: the Joliet tree (UCS-2 big endian) when the image has one, else Rock Ridge `NM`
//! entries (following `CE` continuation areas), else the plain 8.3-style name. `;1` version
//! suffixes are stripped. Multi-extent files are read extent by extent; interleaved files are
//! refused. Rock Ridge relocated folders (`RE`/`CL`, only for trees deeper than 8 levels) are
//! followed. Only the sectors needed are read: never the whole image.
//!
//! The `cdfs` crate was tried first and not used: it makes FUSE, clap and a logger hard
//! dependencies and panics on some truncated input (`nom::Err::Incomplete => panic!()`).
use super::{pick, split_rel, DriverSource};
use anyhow::{bail, Context, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const SECTOR: u64 = 2048;
/// Volume descriptors scanned before giving up on a terminator.
const MAX_DESCRIPTORS: u64 = 64;
/// Largest directory accepted (a corrupt length must not make us read gigabytes).
const MAX_DIR_BYTES: u32 = 16 << 20;
/// Rock Ridge continuation areas followed per record.
const MAX_CONTINUATIONS: usize = 16;
/// Parsed directories kept (the whole virtio-win ISO has about 1500).
const MAX_CACHED_DIRS: usize = 4096;
/// Copy buffer for file contents.
const CHUNK: usize = 64 * 1024;

/// Whether `path` holds an ISO 9660 volume descriptor ("CD001") at sector 16.
pub fn is_iso9660(path: &Path) -> Result<bool> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut b = [0u8; 6];
    match f.read_exact_at(&mut b, 16 * SECTOR) {
        Ok(()) => Ok(&b[1..6] == b"CD001"),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e).with_context(|| format!("reading sector 16 of {}", path.display())),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Names {
    Joliet,
    /// Primary tree; `susp_skip` is the SP entry's byte count to skip in each System Use area,
    /// None when the image has no SUSP (then plain names).
    Primary {
        susp_skip: Option<usize>,
    },
}

/// One directory entry, its data as a list of extents (several for a multi-extent file).
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    is_dir: bool,
    extents: Vec<(u32, u32)>,
    interleaved: bool,
    /// The record's flags said more extents follow (multi-extent file).
    more: bool,
}

pub struct IsoSource {
    path: PathBuf,
    file: File,
    size: u64,
    root: Entry,
    names: Names,
    /// Directories already parsed, by extent: a plan looks up the same few folders many times.
    dirs: RefCell<HashMap<(u32, u32), Vec<Entry>>>,
}

impl IsoSource {
    /// Reads the volume descriptors and picks the name flavour; fails on anything that is not
    /// an ISO 9660 image with 2048-byte blocks.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let size = file
            .metadata()
            .with_context(|| format!("reading the size of {}", path.display()))?
            .len();
        let mut s = IsoSource {
            path: path.to_path_buf(),
            file,
            size,
            root: Entry {
                name: String::new(),
                is_dir: true,
                extents: vec![],
                interleaved: false,
                more: false,
            },
            names: Names::Primary { susp_skip: None },
            dirs: RefCell::default(),
        };
        let mut primary = None;
        let mut joliet = None;
        let mut terminated = false;
        for n in 16..16 + MAX_DESCRIPTORS {
            let vd = s.sector(n)?;
            if &vd[1..6] != b"CD001" {
                bail!(
                    "{}: sector {n}: no ISO 9660 volume descriptor (CD001) where one was expected",
                    s.path.display()
                );
            }
            match vd[0] {
                1 if primary.is_none() => {
                    let block = u16::from_le_bytes([vd[128], vd[129]]);
                    if u64::from(block) != SECTOR {
                        bail!(
                            "{}: logical block size {block} is not supported (only 2048)",
                            s.path.display()
                        );
                    }
                    primary = Some(s.record(&vd[156..190], n, 156)?);
                }
                2 if joliet.is_none() && matches!(&vd[88..91], b"%/@" | b"%/C" | b"%/E") => {
                    joliet = Some(s.record(&vd[156..190], n, 156)?);
                }
                255 => {
                    terminated = true;
                    break;
                }
                _ => {}
            }
        }
        if !terminated {
            bail!(
                "{}: no volume descriptor set terminator in sectors 16..{}",
                s.path.display(),
                16 + MAX_DESCRIPTORS
            );
        }
        let Some(primary) = primary else {
            bail!("{}: no primary volume descriptor", s.path.display());
        };
        if let Some((root, _)) = joliet {
            s.root = root.entry("");
            s.names = Names::Joliet;
        } else {
            s.root = primary.0.entry("");
            s.names = Names::Primary {
                susp_skip: s.susp_skip()?,
            };
        }
        if !s.root.is_dir {
            bail!(
                "{}: the root directory record is not a directory",
                s.path.display()
            );
        }
        Ok(s)
    }

    /// Which names this image is read with, for messages.
    fn flavour(&self) -> &'static str {
        match self.names {
            Names::Joliet => "Joliet names",
            Names::Primary { susp_skip: Some(_) } => "Rock Ridge names",
            Names::Primary { susp_skip: None } => "ISO 9660 names",
        }
    }

    fn sector(&self, n: u64) -> Result<[u8; SECTOR as usize]> {
        let mut b = [0u8; SECTOR as usize];
        self.read_at(&mut b, n * SECTOR)
            .with_context(|| format!("reading sector {n}"))?;
        Ok(b)
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<()> {
        let end = off.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.size) {
            bail!(
                "{}: {} bytes at offset {off} lie beyond the end of the image ({} bytes; truncated?)",
                self.path.display(),
                buf.len(),
                self.size
            );
        }
        self.file.read_exact_at(buf, off).with_context(|| {
            format!(
                "{}: reading {} bytes at offset {off}",
                self.path.display(),
                buf.len()
            )
        })
    }

    /// Parses one directory record (`b` is exactly the record) found in sector `lba` at `off`.
    fn record(&self, b: &[u8], lba: u64, off: usize) -> Result<(Rec, Vec<u8>)> {
        let here = || {
            format!(
                "{}: directory record in sector {lba} at byte {off}",
                self.path.display()
            )
        };
        if b.len() < 34 {
            bail!(
                "{}: {} bytes, shorter than the 34-byte minimum",
                here(),
                b.len()
            );
        }
        let id_len = b[32] as usize;
        if 33 + id_len > b.len() {
            bail!(
                "{}: name of {id_len} bytes overruns the {}-byte record",
                here(),
                b.len()
            );
        }
        let extent = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let len = u32::from_le_bytes([b[10], b[11], b[12], b[13]]);
        let flags = b[25];
        let id = b[33..33 + id_len].to_vec();
        // One pad byte follows an even-length name, then the System Use area.
        let su_start = (33 + id_len + usize::from(id_len.is_multiple_of(2))).min(b.len());
        Ok((
            Rec {
                extent,
                len,
                flags,
                interleaved: b[26] != 0 || b[27] != 0,
                id,
            },
            b[su_start..].to_vec(),
        ))
    }

    /// The SP entry of the root's "." record: SUSP present, and how many bytes to skip.
    fn susp_skip(&self) -> Result<Option<usize>> {
        let Some(&(lba, _)) = self.root.extents.first() else {
            return Ok(None);
        };
        let sec = self.sector(u64::from(lba))?;
        let rlen = sec[0] as usize;
        if rlen < 34 {
            return Ok(None);
        }
        let (_, su) = self.record(&sec[..rlen], u64::from(lba), 0)?;
        if su.len() >= 7 && &su[0..2] == b"SP" && su[4] == 0xBE && su[5] == 0xEF {
            return Ok(Some(su[6] as usize));
        }
        Ok(None)
    }

    /// The entries of a directory (without "." and ".."), parsed once.
    fn read_dir(&self, dir: &Entry) -> Result<Vec<Entry>> {
        let key = dir.extents.first().copied().unwrap_or_default();
        if let Some(v) = self.dirs.borrow().get(&key) {
            return Ok(v.clone());
        }
        let v = self.parse_dir(dir)?;
        let mut cache = self.dirs.borrow_mut();
        if cache.len() >= MAX_CACHED_DIRS {
            cache.clear();
        }
        cache.insert(key, v.clone());
        Ok(v)
    }

    fn parse_dir(&self, dir: &Entry) -> Result<Vec<Entry>> {
        let where_ = || {
            let name = if dir.name.is_empty() { "/" } else { &dir.name };
            format!("{}: directory {name:?}", self.path.display())
        };
        let &[(lba, len)] = dir.extents.as_slice() else {
            bail!("{}: a directory must have one extent", where_());
        };
        if len > MAX_DIR_BYTES {
            bail!(
                "{}: {len} bytes is too large for a directory (corrupt?)",
                where_()
            );
        }
        let mut out: Vec<Entry> = vec![];
        let sectors = u64::from(len).div_ceil(SECTOR);
        for i in 0..sectors {
            let n = u64::from(lba) + i;
            let sec = self.sector(n).with_context(where_)?;
            let mut pos = 0usize;
            while pos < SECTOR as usize && (i * SECTOR + pos as u64) < u64::from(len) {
                let rlen = sec[pos] as usize;
                if rlen == 0 {
                    break;
                }
                if pos + rlen > SECTOR as usize {
                    bail!(
                        "{}: record at byte {pos} of sector {n} ({rlen} bytes) crosses the sector end",
                        where_()
                    );
                }
                let (rec, su) = self.record(&sec[pos..pos + rlen], n, pos)?;
                pos += rlen;
                if rec.id == [0] || rec.id == [1] {
                    continue;
                }
                // Associated files (resource forks) are not part of the tree.
                if rec.flags & 0x04 != 0 {
                    continue;
                }
                let (name, relocated) = self.name_of(&rec, &su, n)?;
                let Some(name) = name else { continue };
                if relocated.hidden {
                    continue;
                }
                let mut e = rec.entry(&name);
                if let Some(child) = relocated.child {
                    // Rock Ridge CL: a file record standing for a folder moved elsewhere; its
                    // size is in the "." record of the moved folder.
                    let csec = self.sector(u64::from(child))?;
                    let clen = (csec[0] as usize).max(34).min(SECTOR as usize);
                    let (dot, _) = self.record(&csec[..clen], u64::from(child), 0)?;
                    e.is_dir = true;
                    e.extents = vec![(child, dot.len)];
                }
                match out.last_mut() {
                    Some(prev) if prev.more && prev.name == e.name && !e.is_dir => {
                        prev.extents.extend(e.extents);
                        prev.more = e.more;
                        prev.interleaved |= e.interleaved;
                    }
                    _ => out.push(e),
                }
            }
        }
        Ok(out)
    }

    /// The display name of a record, and its Rock Ridge relocation marks.
    fn name_of(&self, rec: &Rec, su: &[u8], lba: u64) -> Result<(Option<String>, Reloc)> {
        let mut reloc = Reloc::default();
        let name = match self.names {
            Names::Joliet => {
                let units = rec
                    .id
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]));
                let s: String = char::decode_utf16(units)
                    .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect();
                strip_version(&s).to_string()
            }
            Names::Primary { susp_skip } => {
                let nm = match susp_skip {
                    Some(skip) => {
                        self.rock_ridge(su.get(skip..).unwrap_or(&[]), lba, &mut reloc)?
                    }
                    None => None,
                };
                match nm {
                    Some(n) => n,
                    None => {
                        let s = String::from_utf8_lossy(&rec.id);
                        let s = strip_version(&s);
                        s.strip_suffix('.').unwrap_or(s).to_string()
                    }
                }
            }
        };
        Ok(((!name.is_empty()).then_some(name), reloc))
    }

    /// Walks a System Use area and its continuation areas: the NM name, RE and CL marks.
    fn rock_ridge(&self, first: &[u8], lba: u64, reloc: &mut Reloc) -> Result<Option<String>> {
        let mut area = first.to_vec();
        let mut name: Option<Vec<u8>> = None;
        for _ in 0..=MAX_CONTINUATIONS {
            let mut next = None;
            let mut off = 0usize;
            while off + 4 <= area.len() {
                let sig = [area[off], area[off + 1]];
                let len = area[off + 2] as usize;
                if len < 4 || off + len > area.len() {
                    break; // padding, or a damaged entry: what was read so far stands
                }
                let body = &area[off + 4..off + len];
                match &sig {
                    b"NM" if !body.is_empty() => {
                        let flags = body[0];
                        // CURRENT / PARENT: "." and "..", not a name.
                        if flags & 0x06 == 0 {
                            name.get_or_insert_with(Vec::new)
                                .extend_from_slice(&body[1..]);
                        }
                    }
                    b"CE" if body.len() >= 24 => {
                        let b = |i: usize| {
                            u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]])
                        };
                        next = Some((b(0), b(8), b(16)));
                    }
                    b"RE" => reloc.hidden = true,
                    b"CL" if body.len() >= 4 => {
                        reloc.child =
                            Some(u32::from_le_bytes([body[0], body[1], body[2], body[3]]));
                    }
                    b"ST" => break,
                    _ => {}
                }
                off += len;
            }
            let Some((ce_lba, ce_off, ce_len)) = next else {
                break;
            };
            if ce_len > SECTOR as u32 * 4 {
                bail!(
                    "{}: Rock Ridge continuation area of {ce_len} bytes (record in sector {lba}) is too large",
                    self.path.display()
                );
            }
            let mut buf = vec![0u8; ce_len as usize];
            self.read_at(&mut buf, u64::from(ce_lba) * SECTOR + u64::from(ce_off))
                .with_context(|| {
                    format!("Rock Ridge continuation area of a record in sector {lba}")
                })?;
            area = buf;
        }
        Ok(name.map(|n| String::from_utf8_lossy(&n).into_owned()))
    }

    /// The entry at `rel` (components matched case-insensitively), None when absent.
    fn lookup(&self, rel: &str) -> Result<Option<Entry>> {
        let mut cur = self.root.clone();
        for c in split_rel(rel) {
            if !cur.is_dir {
                return Ok(None);
            }
            let ents = self.read_dir(&cur)?;
            match pick(&ents, c, |e| e.name.as_str()) {
                Some(e) => cur = e.clone(),
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    fn subdirs(&self, d: &Entry) -> Result<Vec<Entry>> {
        Ok(self.read_dir(d)?.into_iter().filter(|e| e.is_dir).collect())
    }
}

impl DriverSource for IsoSource {
    fn describe(&self) -> String {
        format!(
            "virtio-win ISO {} ({})",
            self.path.display(),
            self.flavour()
        )
    }

    fn list_driver_dirs(&self) -> Result<Vec<String>> {
        let mut out = vec![];
        for d in self.subdirs(&self.root)? {
            for o in self.subdirs(&d)? {
                for a in self.subdirs(&o)? {
                    out.push(format!("{}/{}/{}", d.name, o.name, a.name));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        let d = self
            .lookup(dir)?
            .filter(|e| e.is_dir)
            .with_context(|| format!("{}: no folder {dir}", self.describe()))?;
        let mut v: Vec<String> = self
            .read_dir(&d)?
            .into_iter()
            .filter(|e| !e.is_dir)
            .map(|e| e.name)
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }

    fn copy_to(&self, rel: &str, out: &mut dyn Write) -> Result<Option<u64>> {
        let Some(e) = self.lookup(rel)?.filter(|e| !e.is_dir) else {
            return Ok(None);
        };
        if e.interleaved {
            bail!(
                "{}: {rel} is an interleaved file, which this reader does not support",
                self.path.display()
            );
        }
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        for (lba, len) in e.extents {
            let start = u64::from(lba) * SECTOR;
            let mut done = 0u64;
            while done < u64::from(len) {
                let n = (u64::from(len) - done).min(CHUNK as u64) as usize;
                self.read_at(&mut buf[..n], start + done)
                    .with_context(|| format!("reading {rel}"))?;
                out.write_all(&buf[..n])
                    .with_context(|| format!("writing the contents of {rel}"))?;
                done += n as u64;
            }
            total += done;
        }
        Ok(Some(total))
    }

    fn reference(&self, rel: &str) -> String {
        format!(
            "{}{}{}",
            self.path.display(),
            super::ISO_MEMBER_SEP,
            split_rel(rel).join("/")
        )
    }
}

/// A parsed directory record.
struct Rec {
    extent: u32,
    len: u32,
    flags: u8,
    interleaved: bool,
    id: Vec<u8>,
}

impl Rec {
    fn entry(&self, name: &str) -> Entry {
        Entry {
            name: name.to_string(),
            is_dir: self.flags & 0x02 != 0,
            extents: vec![(self.extent, self.len)],
            interleaved: self.interleaved,
            more: self.flags & 0x80 != 0,
        }
    }
}

/// Rock Ridge relocation marks of a record.
#[derive(Default)]
struct Reloc {
    /// RE: this folder was moved here from deeper down; its CL link shows it in place.
    hidden: bool,
    /// CL: this file record stands for the folder at this sector.
    child: Option<u32>,
}

/// "NAME.EXT;1" -> "NAME.EXT".
fn strip_version(s: &str) -> &str {
    match s.rfind(';') {
        Some(i) if s[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &s[..i],
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::testutil::{make_iso, sample_tree};
    use crate::drivers::FolderSource;

    /// Every folder, file name and file content of `s`, for comparing sources.
    fn walk(s: &dyn DriverSource) -> Result<Vec<(String, Vec<u8>)>> {
        let mut v = vec![];
        for d in s.list_driver_dirs()? {
            for f in s.list_files(&d)? {
                let rel = format!("{d}/{f}");
                let data = s
                    .read(&rel)?
                    .with_context(|| format!("{rel} listed but absent"))?;
                v.push((rel, data));
            }
        }
        Ok(v)
    }

    fn tree_and_iso(native: &[&str], args: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        sample_tree(&tree);
        let iso = d.path().join("vw.iso");
        make_iso(&tree, &iso, native, args);
        (d, tree, iso)
    }

    #[test]
    fn joliet_rock_ridge_and_each_alone_read_like_the_folder() {
        for (args, flavour) in [
            (&["-J", "-R"][..], "Joliet"),
            (&["-R"][..], "Rock Ridge"),
            (&["-J"][..], "Joliet"),
        ] {
            let (_d, tree, iso) = tree_and_iso(&[], args);
            let s = IsoSource::open(&iso).unwrap();
            assert!(s.describe().contains(flavour), "{args:?}: {}", s.describe());
            let folder = walk(&FolderSource::new(&tree)).unwrap();
            let got = walk(&s).unwrap();
            assert_eq!(
                got.iter().map(|x| &x.0).collect::<Vec<_>>(),
                folder.iter().map(|x| &x.0).collect::<Vec<_>>(),
                "{args:?}"
            );
            assert!(got == folder, "{args:?}: contents differ");
            assert_eq!(got.len(), 146, "{args:?}");
            let long =
                "Balloon/w10/amd64/a-rather-long-file-name-that-plain-iso9660-cannot-hold.txt";
            assert_eq!(
                s.read(long).unwrap().as_deref(),
                Some(&b"long"[..]),
                "{args:?}"
            );
            let big = s.read("balloon/W10/amd64/BLNSVR.EXE").unwrap().unwrap();
            assert_eq!(big.len(), 300 * 1024 + 77);
            assert_eq!(
                big,
                std::fs::read(tree.join("Balloon/w10/amd64/blnsvr.exe")).unwrap()
            );
            assert_eq!(
                s.read("guest-agent/qemu-ga-x86_64.msi").unwrap().as_deref(),
                Some(&b"msi"[..])
            );
            assert_eq!(s.read("guest-agent/none.msi").unwrap(), None);
            assert_eq!(
                s.read("guest-agent").unwrap(),
                None,
                "a folder is not a file"
            );
            assert_eq!(s.list_files("many/w10/amd64").unwrap().len(), 120);
            let e = s.list_files("viostor/w99/amd64").unwrap_err().to_string();
            assert!(e.contains("no folder viostor/w99/amd64"), "{e}");
        }
    }

    #[test]
    fn plain_iso9660_names_match_case_insensitively() {
        let (_d, tree, iso) = tree_and_iso(&["-rockridge", "off"], &["-iso-level", "2"]);
        let s = IsoSource::open(&iso).unwrap();
        assert!(s.describe().contains("ISO 9660 names"), "{}", s.describe());
        let dirs = s.list_driver_dirs().unwrap();
        assert!(dirs.iter().any(|d| d == "VIOSTOR/W10/AMD64"), "{dirs:?}");
        assert_eq!(
            s.read("viostor/w10/amd64/viostor.inf").unwrap().unwrap(),
            std::fs::read(tree.join("viostor/w10/amd64/viostor.inf")).unwrap()
        );
    }

    #[test]
    fn rock_ridge_names_continued_in_ce_areas() {
        // A 230-byte name cannot fit in a directory record: xorriso puts the rest of the NM
        // entries in a continuation area (CE).
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        let long = format!("{}.sys", "n".repeat(226));
        let p = tree.join("viostor/w10/amd64").join(&long);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"ce").unwrap();
        let iso = d.path().join("ce.iso");
        make_iso(&tree, &iso, &[], &["-R"]);
        let s = IsoSource::open(&iso).unwrap();
        assert_eq!(
            s.list_files("viostor/w10/amd64").unwrap(),
            vec![long.clone()]
        );
        assert_eq!(
            s.read(&format!("VIOSTOR/w10/amd64/{}", long.to_uppercase()))
                .unwrap()
                .as_deref(),
            Some(&b"ce"[..])
        );
    }

    /// A hand-made image: PVD, terminator, a root folder whose BIG.BIN has two extents.
    fn hand_made_multi_extent() -> Vec<u8> {
        let mut img = vec![0u8; 22 * SECTOR as usize];
        let rec = |extent: u32, len: u32, flags: u8, id: &[u8]| -> Vec<u8> {
            let mut r = vec![0u8; 33 + id.len() + usize::from(id.len().is_multiple_of(2))];
            r[0] = r.len() as u8;
            r[2..6].copy_from_slice(&extent.to_le_bytes());
            r[6..10].copy_from_slice(&extent.to_be_bytes());
            r[10..14].copy_from_slice(&len.to_le_bytes());
            r[14..18].copy_from_slice(&len.to_be_bytes());
            r[25] = flags;
            r[28] = 1; // volume sequence number
            r[32] = id.len() as u8;
            r[33..33 + id.len()].copy_from_slice(id);
            r
        };
        let pvd = 16 * SECTOR as usize;
        img[pvd] = 1;
        img[pvd + 1..pvd + 6].copy_from_slice(b"CD001");
        img[pvd + 6] = 1;
        img[pvd + 128..pvd + 130].copy_from_slice(&2048u16.to_le_bytes());
        let root = rec(18, 2048, 2, &[0]);
        img[pvd + 156..pvd + 156 + 34].copy_from_slice(&root);
        let term = 17 * SECTOR as usize;
        img[term] = 255;
        img[term + 1..term + 6].copy_from_slice(b"CD001");
        let mut dir = vec![];
        dir.extend(rec(18, 2048, 2, &[0]));
        dir.extend(rec(18, 2048, 2, &[1]));
        dir.extend(rec(19, 2048, 0x80, b"BIG.BIN;1"));
        dir.extend(rec(20, 100, 0, b"BIG.BIN;1"));
        dir.extend(rec(21, 5, 0, b"SMALL.TXT;1"));
        let d = 18 * SECTOR as usize;
        img[d..d + dir.len()].copy_from_slice(&dir);
        for (i, b) in img[19 * 2048..20 * 2048 + 100].iter_mut().enumerate() {
            *b = (i % 253) as u8;
        }
        img[21 * 2048..21 * 2048 + 5].copy_from_slice(b"small");
        img
    }

    #[test]
    fn multi_extent_files_are_read_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("multi.iso");
        std::fs::write(&p, hand_made_multi_extent()).unwrap();
        let s = IsoSource::open(&p).unwrap();
        assert_eq!(s.list_files("").unwrap(), vec!["BIG.BIN", "SMALL.TXT"]);
        let big = s.read("big.bin").unwrap().unwrap();
        assert_eq!(big.len(), 2048 + 100);
        assert!(big.iter().enumerate().all(|(i, b)| *b == (i % 253) as u8));
        assert_eq!(s.read("small.txt").unwrap().as_deref(), Some(&b"small"[..]));
    }

    /// Opens and walks a damaged image: any error is fine, a panic is not.
    fn survive(p: &Path) {
        if let Ok(s) = IsoSource::open(p) {
            let _ = walk(&s);
            let _ = s.read("viostor/w10/amd64/viostor.sys");
        }
    }

    #[test]
    fn truncated_or_garbled_images_give_errors_not_panics() {
        let d = tempfile::tempdir().unwrap();
        let (_t, _tree, iso) = tree_and_iso(&[], &["-J", "-R"]);
        let good = std::fs::read(&iso).unwrap();
        let p = d.path().join("bad.iso");
        // Truncations: inside the descriptors, the path tables, the folders, the files.
        let mut cut = 0;
        while cut < good.len() {
            std::fs::write(&p, &good[..cut]).unwrap();
            survive(&p);
            cut += if cut < 64 * 2048 { 1021 } else { 23 * 2048 + 7 };
        }
        // Cut inside the 300 KiB file (found by its first bytes): its read must fail clearly.
        let head: Vec<u8> = (0..64).map(|i| (i * 7 % 251) as u8).collect();
        let at = good
            .windows(64)
            .position(|w| w == head)
            .expect("big file in the image");
        std::fs::write(&p, &good[..at + 100 * 1024]).unwrap();
        let s = IsoSource::open(&p).unwrap();
        let e = walk(&s).expect_err("a truncated image cannot read every file");
        assert!(
            format!("{e:#}").contains("beyond the end of the image"),
            "{e:#}"
        );
        // Garbled metadata: random bytes over the descriptors and the directory sectors.
        let meta = good.len().min(80 * 2048);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..300 {
            let mut bad = good.clone();
            for _ in 0..1 + round % 16 {
                let at = 16 * 2048 + (rnd() as usize) % (meta - 16 * 2048);
                bad[at] = rnd() as u8;
            }
            std::fs::write(&p, &bad).unwrap();
            survive(&p);
        }
        for bad in [hand_made_multi_extent(), vec![0xffu8; 40 * 2048]] {
            let mut bad = bad;
            for round in 0..200 {
                let mut b = bad.clone();
                let at = 16 * 2048 + (rnd() as usize) % (b.len() - 16 * 2048);
                b[at] = rnd() as u8;
                if round % 2 == 0 {
                    bad = b.clone();
                }
                std::fs::write(&p, &b).unwrap();
                survive(&p);
            }
        }
    }
}
