//! Registry hive (regf) reader in pure Rust, read-only, over the whole hive file in memory.
//!
//! ```text
//!  0x0000 base block "regf" (root cell offset, checksum)   0x1000 hbin "hbin" | cells...
//!  cell = i32 size (negative: allocated) + data; offsets are relative to 0x1000
//!  nk (key) -> subkey list lf/lh/li (or ri of those) -> nk ...
//!          -> value list (u32 offsets) -> vk -> data inline | cell | db (segments of 16344 bytes)
//! ```
//! Every offset is bounds-checked, list sizes are bounded by their cells, and `ri` nesting is
//! limited, so a corrupt hive gives an error naming the file offset instead of a panic or a loop.
use std::fmt;

const BASE: usize = 0x1000;
/// Data of a value above this size lives in "db" segments (hive format 1.4+).
const BIG_DATA_SEGMENT: usize = 16344;
const MAX_RI_DEPTH: u32 = 4;

pub const REG_NONE: u32 = 0;
pub const REG_SZ: u32 = 1;
pub const REG_EXPAND_SZ: u32 = 2;
pub const REG_BINARY: u32 = 3;
pub const REG_DWORD: u32 = 4;
pub const REG_DWORD_BIG_ENDIAN: u32 = 5;
pub const REG_MULTI_SZ: u32 = 7;
pub const REG_QWORD: u32 = 11;

/// A hive that cannot be read, with the file offset of the bad structure.
#[derive(Debug, thiserror::Error)]
#[error("{hive}: corrupt registry hive at offset {offset:#x}: {what}")]
pub struct HiveError {
    pub hive: String,
    pub offset: usize,
    pub what: String,
}

pub struct Hive {
    name: String,
    data: Vec<u8>,
    root: u32,
    dirty: bool,
}

/// A key (nk cell) of a hive.
#[derive(Clone, Copy)]
pub struct Key<'h> {
    hive: &'h Hive,
    /// Cell offset (relative to the first hbin).
    off: u32,
}

/// A value as stored: name, type and raw data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegValue {
    pub name: String,
    pub ty: u32,
    pub data: Vec<u8>,
}

/// Typed view of a value's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegData {
    Sz(String),
    ExpandSz(String),
    MultiSz(Vec<String>),
    Dword(u32),
    Qword(u64),
    Binary(Vec<u8>),
    /// Any other type, or data too short for its type.
    Other(u32, Vec<u8>),
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// UTF-16LE up to the first NUL (an odd trailing byte is dropped).
fn utf16z(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// Latin-1 ("compressed") names as stored with the COMP_NAME flag.
fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

/// Case-insensitive name comparison as the registry does (upper-casing each character).
pub fn names_equal(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || a.chars()
            .flat_map(char::to_uppercase)
            .eq(b.chars().flat_map(char::to_uppercase))
}

impl Hive {
    /// Validates the base block and root key. `name` is used in errors (the guest path).
    pub fn from_bytes(name: impl Into<String>, data: Vec<u8>) -> Result<Self, HiveError> {
        let name = name.into();
        let err = |offset: usize, what: String| HiveError {
            hive: name.clone(),
            offset,
            what,
        };
        if data.len() < BASE + 32 {
            return Err(err(
                0,
                format!("file of {} bytes is too small for a hive", data.len()),
            ));
        }
        if &data[0..4] != b"regf" {
            return Err(err(0, "no \"regf\" signature".into()));
        }
        let major = le32(&data, 20);
        if major != 1 {
            return Err(err(20, format!("unsupported major version {major}")));
        }
        let mut sum = 0u32;
        for i in 0..127 {
            sum ^= le32(&data, i * 4);
        }
        sum = match sum {
            0 => 1,
            0xffff_ffff => 0xffff_fffe,
            s => s,
        };
        let stored = le32(&data, 508);
        if sum != stored {
            return Err(err(
                508,
                format!("base block checksum {stored:#x}, computed {sum:#x}"),
            ));
        }
        if &data[BASE..BASE + 4] != b"hbin" {
            return Err(err(
                BASE,
                "no \"hbin\" signature in the first hive bin".into(),
            ));
        }
        let bins = le32(&data, 40) as usize;
        if BASE + bins > data.len() {
            return Err(err(
                40,
                format!(
                    "hive bins size {bins:#x} runs past the {}-byte file",
                    data.len()
                ),
            ));
        }
        // Sequence numbers differ when a write was interrupted; the log files hold the newer
        // data (replayed by `hivelog` before parsing, see `HiveFiles::open`).
        let dirty = le32(&data, 4) != le32(&data, 8);
        let hive = Hive {
            root: le32(&data, 36),
            dirty,
            name,
            data,
        };
        hive.nk(hive.root)?;
        Ok(hive)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when the primary and secondary sequence numbers of the bytes parsed differ (an
    /// unflushed transaction). [`super::HiveFiles::open`] parses a dirty hive as recovered from
    /// its logs, which is clean; this is then false.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    fn err(&self, cell_off: u32, what: impl Into<String>) -> HiveError {
        HiveError {
            hive: self.name.clone(),
            offset: BASE + cell_off as usize,
            what: what.into(),
        }
    }

    /// The data of the allocated cell at `off` (without its 4-byte size).
    fn cell(&self, off: u32) -> Result<&[u8], HiveError> {
        let start = BASE
            .checked_add(off as usize)
            .filter(|s| s + 4 <= self.data.len());
        let Some(start) = start else {
            return Err(self.err(off, "cell offset beyond the end of the hive"));
        };
        let raw = le32(&self.data, start) as i32;
        if raw >= 0 {
            return Err(self.err(off, "reference to a free cell"));
        }
        let size = raw.unsigned_abs() as usize;
        if size < 8 || start + size > self.data.len() {
            return Err(self.err(off, format!("cell size {size} out of range")));
        }
        Ok(&self.data[start + 4..start + size])
    }

    fn nk(&self, off: u32) -> Result<&[u8], HiveError> {
        let c = self.cell(off)?;
        if c.len() < 76 || &c[0..2] != b"nk" {
            return Err(self.err(off, "expected a key (nk) cell"));
        }
        let name_len = le16(c, 72) as usize;
        if 76 + name_len > c.len() {
            return Err(self.err(
                off,
                format!("key name of {name_len} bytes overruns its cell"),
            ));
        }
        Ok(c)
    }

    pub fn root(&self) -> Key<'_> {
        Key {
            hive: self,
            off: self.root,
        }
    }

    /// Looks up a key below the root by a backslash-separated path, case-insensitively
    /// ("Microsoft\\Windows NT\\CurrentVersion"). `Ok(None)` when a component is missing.
    pub fn open_key(&self, path: &str) -> Result<Option<Key<'_>>, HiveError> {
        let mut k = self.root();
        for comp in path.split(['\\', '/']).filter(|c| !c.is_empty()) {
            match k.subkey(comp)? {
                Some(s) => k = s,
                None => return Ok(None),
            }
        }
        Ok(Some(k))
    }

    /// Collects the nk offsets of a subkey list (lf/lh/li, or ri of those). `budget` is how many
    /// list entries may still be visited: every entry takes 4 bytes of some cell, so a hive of N
    /// bytes has fewer than N / 4, and more visits mean lists shared or nested into themselves
    /// (a 16 KiB hive of ri lists fanning out to one lf made a billion offsets, issue #12).
    fn list_subkeys(
        &self,
        off: u32,
        depth: u32,
        out: &mut Vec<u32>,
        budget: &mut usize,
    ) -> Result<(), HiveError> {
        let c = self.cell(off)?;
        if c.len() < 4 {
            return Err(self.err(off, "subkey list cell too small"));
        }
        let n = le16(c, 2) as usize;
        let (stride, nested) = match &c[0..2] {
            b"lf" | b"lh" => (8, false),
            b"li" => (4, false),
            b"ri" => (4, true),
            sig => {
                return Err(self.err(off, format!("unknown subkey list type {:?}", latin1(sig))));
            }
        };
        if 4 + n * stride > c.len() {
            return Err(self.err(off, format!("subkey list of {n} entries overruns its cell")));
        }
        if nested && depth >= MAX_RI_DEPTH {
            return Err(self.err(off, "subkey index (ri) nested too deeply"));
        }
        *budget = budget.checked_sub(n).ok_or_else(|| {
            self.err(
                off,
                "subkey lists reference more entries than the hive holds",
            )
        })?;
        for i in 0..n {
            let o = le32(c, 4 + i * stride);
            if nested {
                self.list_subkeys(o, depth + 1, out, budget)?;
            } else {
                out.push(o);
            }
        }
        Ok(())
    }

    fn vk(&self, off: u32) -> Result<RegValue, HiveError> {
        let c = self.cell(off)?;
        if c.len() < 20 || &c[0..2] != b"vk" {
            return Err(self.err(off, "expected a value (vk) cell"));
        }
        let name_len = le16(c, 2) as usize;
        if 20 + name_len > c.len() {
            return Err(self.err(
                off,
                format!("value name of {name_len} bytes overruns its cell"),
            ));
        }
        let raw = &c[20..20 + name_len];
        let name = if le16(c, 16) & 1 != 0 {
            latin1(raw)
        } else {
            utf16z(raw)
        };
        let size = le32(c, 4);
        let data_off = le32(c, 8);
        let ty = le32(c, 12);
        let data = if size & 0x8000_0000 != 0 {
            // Up to 4 bytes stored in the offset field itself.
            let len = (size & 0x7fff_ffff) as usize;
            if len > 4 {
                return Err(self.err(off, format!("inline value data of {len} bytes")));
            }
            c[8..8 + len].to_vec()
        } else {
            self.value_data(data_off, size as usize, off)?
        };
        Ok(RegValue { name, ty, data })
    }

    fn value_data(&self, off: u32, len: usize, vk: u32) -> Result<Vec<u8>, HiveError> {
        if len == 0 {
            return Ok(vec![]);
        }
        let c = self.cell(off)?;
        // Windows writes values above 16344 bytes as a "db" cell; hivex writes one big cell.
        if len > BIG_DATA_SEGMENT && c.len() >= 8 && &c[0..2] == b"db" {
            let segs = le16(c, 2) as usize;
            let list_off = le32(c, 4);
            let list = self.cell(list_off)?;
            if segs * 4 > list.len() {
                return Err(self.err(
                    list_off,
                    format!("big data list of {segs} segments overruns its cell"),
                ));
            }
            let mut out = Vec::with_capacity(len);
            for i in 0..segs {
                let seg_off = le32(list, i * 4);
                let seg = self.cell(seg_off)?;
                let want = (len - out.len()).min(BIG_DATA_SEGMENT).min(seg.len());
                out.extend_from_slice(&seg[..want]);
                if out.len() == len {
                    return Ok(out);
                }
            }
            return Err(self.err(off, format!("big data has {} of {len} bytes", out.len())));
        }
        if len > c.len() {
            return Err(self.err(
                vk,
                format!(
                    "value data of {len} bytes overruns its {}-byte cell at {:#x}",
                    c.len(),
                    BASE + off as usize
                ),
            ));
        }
        Ok(c[..len].to_vec())
    }
}

impl<'h> Key<'h> {
    fn raw(&self) -> Result<&'h [u8], HiveError> {
        self.hive.nk(self.off)
    }

    /// The key's own name (the root key's name is whatever the hive's creator chose).
    pub fn name(&self) -> Result<String, HiveError> {
        let c = self.raw()?;
        let n = le16(c, 72) as usize;
        let raw = &c[76..76 + n];
        Ok(if le16(c, 2) & 0x20 != 0 {
            latin1(raw)
        } else {
            utf16z(raw)
        })
    }

    /// File offset of the key's cell, for messages.
    pub fn offset(&self) -> usize {
        BASE + self.off as usize
    }

    pub fn subkeys(&self) -> Result<Vec<Key<'h>>, HiveError> {
        let c = self.raw()?;
        let n = le32(c, 20);
        if n == 0 {
            return Ok(vec![]);
        }
        let mut offs = vec![];
        let mut budget = self.hive.data.len() / 4;
        self.hive
            .list_subkeys(le32(c, 28), 0, &mut offs, &mut budget)?;
        if offs.len() != n as usize {
            return Err(self.hive.err(
                self.off,
                format!("key says {n} subkeys but its list has {}", offs.len()),
            ));
        }
        offs.into_iter()
            .map(|off| {
                self.hive.nk(off)?;
                Ok(Key {
                    hive: self.hive,
                    off,
                })
            })
            .collect()
    }

    /// The direct subkey named `name`, compared case-insensitively.
    pub fn subkey(&self, name: &str) -> Result<Option<Key<'h>>, HiveError> {
        for k in self.subkeys()? {
            if names_equal(&k.name()?, name) {
                return Ok(Some(k));
            }
        }
        Ok(None)
    }

    pub fn values(&self) -> Result<Vec<RegValue>, HiveError> {
        let c = self.raw()?;
        let n = le32(c, 36) as usize;
        if n == 0 {
            return Ok(vec![]);
        }
        let list_off = le32(c, 40);
        let list = self.hive.cell(list_off)?;
        if n * 4 > list.len() {
            return Err(self.hive.err(
                list_off,
                format!("value list of {n} entries overruns its cell"),
            ));
        }
        (0..n).map(|i| self.hive.vk(le32(list, i * 4))).collect()
    }

    /// The value named `name` (case-insensitive; "" is the default value).
    pub fn value(&self, name: &str) -> Result<Option<RegValue>, HiveError> {
        Ok(self
            .values()?
            .into_iter()
            .find(|v| names_equal(&v.name, name)))
    }

    /// A REG_SZ / REG_EXPAND_SZ value as text; `Ok(None)` when missing or of another type.
    pub fn string(&self, name: &str) -> Result<Option<String>, HiveError> {
        Ok(self.value(name)?.and_then(|v| match v.decode() {
            RegData::Sz(s) | RegData::ExpandSz(s) => Some(s),
            _ => None,
        }))
    }

    /// A REG_DWORD value; `Ok(None)` when missing or of another type.
    pub fn dword(&self, name: &str) -> Result<Option<u32>, HiveError> {
        Ok(self.value(name)?.and_then(|v| match v.decode() {
            RegData::Dword(d) => Some(d),
            _ => None,
        }))
    }
}

impl fmt::Debug for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key({:#x}, {:?})",
            self.offset(),
            self.name().unwrap_or_default()
        )
    }
}

impl RegValue {
    pub fn decode(&self) -> RegData {
        let d = &self.data;
        match self.ty {
            REG_SZ => RegData::Sz(utf16z(d)),
            REG_EXPAND_SZ => RegData::ExpandSz(utf16z(d)),
            REG_MULTI_SZ => {
                let units: Vec<u16> = d
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                let mut v: Vec<String> = units
                    .split(|&u| u == 0)
                    .map(String::from_utf16_lossy)
                    .collect();
                // The list ends at the first empty string (the double NUL).
                if let Some(end) = v.iter().position(|s| s.is_empty()) {
                    v.truncate(end);
                }
                RegData::MultiSz(v)
            }
            REG_DWORD if d.len() >= 4 => RegData::Dword(le32(d, 0)),
            REG_DWORD_BIG_ENDIAN if d.len() >= 4 => {
                RegData::Dword(u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
            }
            REG_QWORD if d.len() >= 8 => {
                RegData::Qword(u64::from_le_bytes(d[..8].try_into().unwrap_or_default()))
            }
            REG_BINARY => RegData::Binary(d.clone()),
            ty => RegData::Other(ty, d.clone()),
        }
    }
}

#[cfg(test)]
pub(crate) mod build {
    //! A tiny hive writer for tests: cells are appended into one hbin, in the layouts Windows
    //! uses (including ri lists and db big data, which hivex never writes).
    pub struct Builder {
        pub bin: Vec<u8>,
    }

    impl Builder {
        pub fn new() -> Self {
            let mut bin = b"hbin".to_vec();
            bin.resize(32, 0);
            Builder { bin }
        }
        /// Appends an allocated cell and returns its offset.
        pub fn cell(&mut self, payload: &[u8]) -> u32 {
            let off = self.bin.len() as u32;
            let size = (4 + payload.len()).div_ceil(8) * 8;
            self.bin.extend_from_slice(&(-(size as i32)).to_le_bytes());
            self.bin.extend_from_slice(payload);
            self.bin.resize(off as usize + size, 0);
            off
        }
        pub fn nk(
            &mut self,
            name: &str,
            subkeys: &[u32],
            list_kind: &[u8; 2],
            values: &[u32],
        ) -> u32 {
            let list = if subkeys.is_empty() {
                u32::MAX
            } else {
                self.list(list_kind, subkeys)
            };
            let vlist = if values.is_empty() {
                u32::MAX
            } else {
                let b: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                self.cell(&b)
            };
            let mut c = vec![0u8; 76];
            c[0..2].copy_from_slice(b"nk");
            c[2..4].copy_from_slice(&0x20u16.to_le_bytes());
            c[20..24].copy_from_slice(&(subkeys.len() as u32).to_le_bytes());
            c[28..32].copy_from_slice(&list.to_le_bytes());
            c[36..40].copy_from_slice(&(values.len() as u32).to_le_bytes());
            c[40..44].copy_from_slice(&vlist.to_le_bytes());
            c[72..74].copy_from_slice(&(name.len() as u16).to_le_bytes());
            c.extend_from_slice(name.as_bytes());
            self.cell(&c)
        }
        pub fn list(&mut self, kind: &[u8; 2], offs: &[u32]) -> u32 {
            let mut b = kind.to_vec();
            b.extend_from_slice(&(offs.len() as u16).to_le_bytes());
            for o in offs {
                b.extend_from_slice(&o.to_le_bytes());
                if kind != b"li" && kind != b"ri" {
                    b.extend_from_slice(&0u32.to_le_bytes());
                }
            }
            self.cell(&b)
        }
        /// A vk with a UTF-16 name; data inline when up to 4 bytes, as db when `db` is set.
        pub fn vk(&mut self, name: &str, ty: u32, data: &[u8], db: bool) -> u32 {
            let name16: Vec<u8> = name.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
            let mut c = vec![0u8; 20];
            c[0..2].copy_from_slice(b"vk");
            c[2..4].copy_from_slice(&(name16.len() as u16).to_le_bytes());
            c[12..16].copy_from_slice(&ty.to_le_bytes());
            if data.len() <= 4 {
                c[4..8].copy_from_slice(&(data.len() as u32 | 0x8000_0000).to_le_bytes());
                c[8..8 + data.len()].copy_from_slice(data);
            } else {
                let off = if db {
                    let segs: Vec<u32> = data.chunks(16344).map(|s| self.cell(s)).collect();
                    let list: Vec<u8> = segs.iter().flat_map(|s| s.to_le_bytes()).collect();
                    let list = self.cell(&list);
                    let mut d = b"db".to_vec();
                    d.extend_from_slice(&(segs.len() as u16).to_le_bytes());
                    d.extend_from_slice(&list.to_le_bytes());
                    self.cell(&d)
                } else {
                    self.cell(data)
                };
                c[4..8].copy_from_slice(&(data.len() as u32).to_le_bytes());
                c[8..12].copy_from_slice(&off.to_le_bytes());
            }
            c.extend_from_slice(&name16);
            self.cell(&c)
        }
        pub fn finish(mut self, root: u32) -> Vec<u8> {
            let size = self.bin.len().div_ceil(4096) * 4096;
            let free = (size - self.bin.len()) as i32;
            if free > 0 {
                self.bin.extend_from_slice(&free.to_le_bytes());
            }
            self.bin.resize(size, 0);
            self.bin[8..12].copy_from_slice(&(size as u32).to_le_bytes());
            let mut base = vec![0u8; 4096];
            base[0..4].copy_from_slice(b"regf");
            for (o, v) in [
                (4, 1u32),
                (8, 1),
                (20, 1),
                (24, 5),
                (32, 1),
                (36, root),
                (40, size as u32),
                (44, 1),
            ] {
                base[o..o + 4].copy_from_slice(&v.to_le_bytes());
            }
            let mut sum = 0u32;
            for i in 0..127 {
                sum ^= u32::from_le_bytes(base[i * 4..i * 4 + 4].try_into().unwrap());
            }
            base[508..512].copy_from_slice(&sum.to_le_bytes());
            base.extend_from_slice(&self.bin);
            base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::build::Builder;
    use super::*;

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(|u| u.to_le_bytes())
            .collect()
    }

    /// ROOT\Microsoft\Windows NT\CurrentVersion with one value of each type; ROOT has subkeys in
    /// an ri of li + lh.
    fn sample() -> Vec<u8> {
        let mut b = Builder::new();
        let big: Vec<u8> = (0..40000u32).map(|i| (i % 251) as u8).collect();
        let vals = [
            b.vk(
                "ProductName",
                REG_SZ,
                &utf16("Windows Server 2019 Datacenter"),
                false,
            ),
            b.vk("PathName", REG_EXPAND_SZ, &utf16("%SystemRoot%"), false),
            b.vk(
                "CurrentMajorVersionNumber",
                REG_DWORD,
                &10u32.to_le_bytes(),
                false,
            ),
            b.vk(
                "InstallTime",
                REG_QWORD,
                &0x0102030405060708u64.to_le_bytes(),
                false,
            ),
            b.vk(
                "Multi",
                REG_MULTI_SZ,
                &[utf16("a"), utf16("bc"), vec![0, 0]].concat(),
                false,
            ),
            b.vk("DigitalProductId", REG_BINARY, &big, true),
            b.vk("", REG_SZ, &utf16("default"), false),
        ];
        let cv = b.nk("CurrentVersion", &[], b"lh", &vals);
        let wnt = b.nk("Windows NT", &[cv], b"lf", &[]);
        let ms = b.nk("Microsoft", &[wnt], b"lh", &[]);
        let other = b.nk("Classes", &[], b"lh", &[]);
        let li = b.list(b"li", &[other]);
        let lh = b.list(b"lh", &[ms]);
        let ri = b.list(b"ri", &[li, lh]);
        let mut root = vec![0u8; 76];
        root[0..2].copy_from_slice(b"nk");
        root[2..4].copy_from_slice(&0x2cu16.to_le_bytes());
        root[20..24].copy_from_slice(&2u32.to_le_bytes());
        root[28..32].copy_from_slice(&ri.to_le_bytes());
        root[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        root[72..74].copy_from_slice(&4u16.to_le_bytes());
        root.extend_from_slice(b"ROOT");
        let r = b.cell(&root);
        b.finish(r)
    }

    #[test]
    fn reads_keys_and_every_value_type() {
        let h = Hive::from_bytes("SOFTWARE", sample()).unwrap();
        assert!(!h.is_dirty());
        let names: Vec<String> = h
            .root()
            .subkeys()
            .unwrap()
            .iter()
            .map(|k| k.name().unwrap())
            .collect();
        assert_eq!(names, ["Classes", "Microsoft"]);
        let k = h
            .open_key("microsoft\\WINDOWS nt\\currentversion")
            .unwrap()
            .unwrap();
        assert_eq!(k.name().unwrap(), "CurrentVersion");
        assert_eq!(
            k.string("productname").unwrap().unwrap(),
            "Windows Server 2019 Datacenter"
        );
        assert_eq!(k.string("PathName").unwrap().unwrap(), "%SystemRoot%");
        assert_eq!(k.dword("CurrentMajorVersionNumber").unwrap(), Some(10));
        assert_eq!(k.dword("ProductName").unwrap(), None, "wrong type is None");
        assert_eq!(
            k.value("InstallTime").unwrap().unwrap().decode(),
            RegData::Qword(0x0102030405060708)
        );
        assert_eq!(
            k.value("Multi").unwrap().unwrap().decode(),
            RegData::MultiSz(vec!["a".into(), "bc".into()])
        );
        let big = k.value("DigitalProductId").unwrap().unwrap();
        assert_eq!(big.data.len(), 40000);
        assert!(big
            .data
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 251) as u8));
        assert_eq!(k.string("").unwrap().unwrap(), "default");
        assert!(h.open_key("Microsoft\\Nope").unwrap().is_none());
        assert_eq!(h.open_key("").unwrap().unwrap().name().unwrap(), "ROOT");
    }

    #[test]
    fn corruption_is_an_error_with_offset() {
        let good = sample();
        // Bad checksum.
        let mut d = good.clone();
        d[100] ^= 1;
        let e = Hive::from_bytes("h", d).err().unwrap();
        assert_eq!(e.offset, 508, "{e}");
        // Root offset pointing outside the file.
        let mut d = good.clone();
        d[36..40].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
        let sum = (0..127).fold(0u32, |s, i| s ^ le32(&d, i * 4));
        d[508..512].copy_from_slice(&sum.to_le_bytes());
        let e = Hive::from_bytes("h", d).err().unwrap();
        assert!(e.to_string().contains("beyond the end"), "{e}");
        // An ri list that contains itself must stop, not recurse forever.
        let mut b = Builder::new();
        let ri_off = b.bin.len() as u32;
        let ri = b.list(b"ri", &[ri_off]);
        assert_eq!(ri, ri_off);
        let root = b.nk("ROOT", &[], b"lh", &[]);
        let mut d = b.finish(root);
        let r = BASE + root as usize + 4;
        d[r + 20..r + 24].copy_from_slice(&1u32.to_le_bytes());
        d[r + 28..r + 32].copy_from_slice(&ri.to_le_bytes());
        let h = Hive::from_bytes("h", d).unwrap();
        let e = h.root().subkeys().err().unwrap();
        assert!(e.to_string().contains("nested too deeply"), "{e}");
        // Truncated file: a value whose data cell is cut off.
        let d = sample();
        let h = Hive::from_bytes("h", d[..d.len() - 4096].to_vec());
        assert!(h.is_err());
    }
}
