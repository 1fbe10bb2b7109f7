//! Block layer: random-access reads of a virtual disk, whatever its container format.
//!
//! ```text
//!   open_image(path) --sniff magic--> RawImage | Qcow2Image (backing chain) | error naming `revirt convert`
//!          |                                   
//!          v  Arc<dyn BlockDevice>   ---> Slice (partition) / LinearMap (LVM LV)
//! ```
use crate::error::ImageError;
use std::path::Path;
use std::sync::Arc;

pub mod export;
pub mod qcow2;
pub mod raw;

/// A read-only virtual disk. Reads are positional so one device can serve many readers.
pub trait BlockDevice: Send + Sync {
    /// Size of the virtual disk in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` from `offset`. Reads past the end are an error; holes read as zeros.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ImageError>;
    /// Human name used in errors and reports (a path, or `path:partN`).
    fn name(&self) -> String;
    /// Where this device's bytes lie on the input images, for writers that write the same
    /// bytes elsewhere (native writes through the output disks). None: not a plain mapping.
    fn layout(&self) -> Option<Vec<Extent>> {
        None
    }
}

/// `len` bytes of a device starting at `start` are those at `offset` of the image `image`
/// (its path as opened, [`ImageInfo::path`]); or, with `via`, the bytes at `offset` of a
/// device stacked on the images (`image` then names it) that a writer must go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub len: u64,
    pub image: String,
    pub offset: u64,
    pub via: Option<Arc<Via>>,
}

/// A stacked device as a writer sees it.
#[derive(Debug)]
pub enum Via {
    /// An opened LUKS payload: the sector transform and where its ciphertext lies (from 0 to
    /// `crypt.len`).
    Crypt {
        crypt: Arc<crate::luks::Crypt>,
        inner: Vec<Extent>,
    },
    /// An md raid1 array: every mirror's data, each `len` bytes; a write goes to all of them.
    Mirror { len: u64, mirrors: Vec<Vec<Extent>> },
}

/// Two stacks are equal when they are the same one (a key is never compared).
impl PartialEq for Via {
    fn eq(&self, o: &Self) -> bool {
        std::ptr::eq(self, o)
    }
}
impl Eq for Via {}

impl Extent {
    /// A whole image file: the layout of a disk as opened.
    pub fn whole(image: &Path, len: u64) -> Vec<Extent> {
        vec![Extent {
            start: 0,
            len,
            image: image.display().to_string(),
            offset: 0,
            via: None,
        }]
    }
}

/// The part `[start, start+len)` of `layout`, renumbered from `at`.
pub(crate) fn clip(layout: Vec<Extent>, start: u64, len: u64, at: u64) -> Vec<Extent> {
    let end = start.saturating_add(len);
    let mut out = vec![];
    for e in layout {
        let (lo, hi) = (e.start.max(start), (e.start + e.len).min(end));
        if lo < hi {
            out.push(Extent {
                start: at + lo - start,
                len: hi - lo,
                image: e.image,
                offset: e.offset + lo - e.start,
                via: e.via,
            });
        }
    }
    out
}

pub type Dev = Arc<dyn BlockDevice>;

/// Container formats recognised by their magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Raw,
    Qcow2,
    Vmdk,
    Vhd,
    Vhdx,
    Vdi,
    Qed,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Vmdk => "vmdk",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
            Format::Vdi => "vdi",
            Format::Qed => "qed",
        }
    }
}

/// Sniffs the container format from the first bytes (and the VHD footer).
pub fn detect_format(path: &Path) -> Result<Format, ImageError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(|e| ImageError::io(path, e))?;
    let len = f.metadata().map_err(|e| ImageError::io(path, e))?.len();
    if len == 0 && !is_block_device(path) {
        return Err(ImageError::Empty { path: path.into() });
    }
    let mut head = [0u8; 512];
    let n = read_full(&mut f, &mut head).map_err(|e| ImageError::io(path, e))?;
    let head = &head[..n];
    let fmt = if head.starts_with(b"QFI\xfb") {
        Format::Qcow2
    } else if head.starts_with(b"KDMV")
        || head.starts_with(b"# Disk DescriptorFile")
        || head.starts_with(b"COWD")
    {
        Format::Vmdk
    } else if head.starts_with(b"vhdxfile") {
        Format::Vhdx
    } else if head.starts_with(b"conectix") {
        Format::Vhd
    } else if head.starts_with(b"QED\0") {
        Format::Qed
    } else if head.len() >= 68 && head[64..68] == [0x7f, 0x10, 0xda, 0xbe] {
        Format::Vdi
    } else {
        // A fixed VHD is raw data followed by a 512-byte footer.
        let mut foot = [0u8; 8];
        if len >= 512
            && f.seek(SeekFrom::Start(len - 512)).is_ok()
            && f.read_exact(&mut foot).is_ok()
            && &foot == b"conectix"
        {
            Format::Vhd
        } else {
            Format::Raw
        }
    };
    Ok(fmt)
}

fn read_full(f: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn is_block_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false)
}

/// What was opened: format and backing chain, for reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageInfo {
    pub path: String,
    pub format: Format,
    pub virtual_size: u64,
    pub file_size: u64,
    /// Backing files, nearest first, as resolved paths: every file revirt opened for this disk.
    pub backing_chain: Vec<String>,
    /// The format of each backing file, in the same order.
    pub backing_formats: Vec<Format>,
}

/// One backing file of a chain, as opened.
#[derive(Debug, Clone)]
pub struct Layer {
    pub path: String,
    pub format: Format,
}

/// Which files a backing chain may open besides those in the naming image's own folder.
#[derive(Debug, Clone, Default)]
pub struct OpenPolicy {
    /// Canonical folders the caller trusts (`--allow-backing-dir`).
    allowed_roots: Vec<std::path::PathBuf>,
    /// Keys for encrypted volumes (`--key`; Debug shows selectors only).
    keys: Arc<Vec<crate::luks::keys::Key>>,
    /// Caps on the KDF work a tenant's LUKS header may ask for.
    pub luks_limits: crate::luks::Limits,
}

impl OpenPolicy {
    /// Trusts backing files under each folder (resolved once, here; missing folders are an
    /// error so a typo does not silently widen nothing).
    pub fn allowing(dirs: &[std::path::PathBuf]) -> Result<Self, ImageError> {
        let mut allowed_roots = vec![];
        for d in dirs {
            let c = std::fs::canonicalize(d).map_err(|e| ImageError::io(d, e))?;
            if !c.is_dir() {
                return Err(ImageError::io(
                    d,
                    std::io::Error::other("--allow-backing-dir names no folder"),
                ));
            }
            allowed_roots.push(c);
        }
        Ok(OpenPolicy {
            allowed_roots,
            ..Default::default()
        })
    }

    /// The same policy with these keys for encrypted volumes.
    pub fn with_keys(mut self, keys: Vec<crate::luks::keys::Key>) -> Self {
        self.keys = Arc::new(keys);
        self
    }

    pub fn keys(&self) -> &[crate::luks::keys::Key] {
        &self.keys
    }

    /// The same policy plus the folders holding `files` (for overlays revirt created itself).
    pub fn also_folders_of(&self, files: &[std::path::PathBuf]) -> Self {
        let mut p = self.clone();
        for f in files {
            if let Some(dir) = std::fs::canonicalize(f)
                .ok()
                .and_then(|c| c.parent().map(Path::to_path_buf))
            {
                p.allowed_roots.push(dir);
            }
        }
        p
    }

    /// Precondition: `canon` is canonical (symlinks resolved).
    pub fn allows(&self, canon: &Path) -> bool {
        self.allowed_roots.iter().any(|r| canon.starts_with(r))
    }
}

/// Opens a disk image read-only with the default policy (backing files only from the folder of
/// the image naming them).
pub fn open_image(path: &Path) -> Result<(Dev, ImageInfo), ImageError> {
    open_image_with(path, &OpenPolicy::default())
}

/// Opens a disk image read-only, picking the backend from its magic.
pub fn open_image_with(path: &Path, policy: &OpenPolicy) -> Result<(Dev, ImageInfo), ImageError> {
    let fmt = detect_format(path)?;
    let file_size = std::fs::metadata(path)
        .map_err(|e| ImageError::io(path, e))?
        .len();
    match fmt {
        Format::Raw => {
            let dev = raw::RawImage::open(path)?;
            let info = ImageInfo {
                path: path.display().to_string(),
                format: fmt,
                virtual_size: dev.size(),
                file_size,
                backing_chain: vec![],
                backing_formats: vec![],
            };
            Ok((Arc::new(dev), info))
        }
        Format::Qcow2 => {
            let (dev, chain) = qcow2::Qcow2Image::open(path, policy)?;
            let info = ImageInfo {
                path: path.display().to_string(),
                format: fmt,
                virtual_size: dev.size(),
                file_size,
                backing_chain: chain.iter().map(|l| l.path.clone()).collect(),
                backing_formats: chain.iter().map(|l| l.format).collect(),
            };
            Ok((dev, info))
        }
        other => Err(ImageError::NeedsConvert {
            path: path.into(),
            format: other.as_str(),
        }),
    }
}

/// A byte range of another device: a partition, or a filesystem at an offset.
pub struct Slice {
    dev: Dev,
    start: u64,
    len: u64,
    name: String,
}

impl Slice {
    /// Precondition: `start + len` lies within `dev` (checked; an overrun is clamped to the end and
    /// the caller is expected to have reported it).
    pub fn new(dev: Dev, start: u64, len: u64, name: String) -> Self {
        let len = len.min(dev.size().saturating_sub(start));
        Slice {
            dev,
            start,
            len,
            name,
        }
    }
}

impl BlockDevice for Slice {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ImageError> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(ImageError::OutOfRange {
                path: self.name.clone().into(),
                offset,
                len: buf.len(),
                size: self.len,
            });
        }
        self.dev.read_at(buf, self.start + offset)
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn layout(&self) -> Option<Vec<Extent>> {
        Some(clip(self.dev.layout()?, self.start, self.len, 0))
    }
}

/// A device made of extents of other devices (an LVM linear LV, possibly spanning disks).
pub struct LinearMap {
    /// (logical start, length, device, device offset), sorted by logical start, contiguous.
    pub extents: Vec<(u64, u64, Dev, u64)>,
    pub name: String,
}

impl BlockDevice for LinearMap {
    fn size(&self) -> u64 {
        self.extents.last().map(|e| e.0 + e.1).unwrap_or(0)
    }
    fn read_at(&self, mut buf: &mut [u8], mut offset: u64) -> Result<(), ImageError> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.size()) {
            return Err(ImageError::OutOfRange {
                path: self.name.clone().into(),
                offset,
                len: buf.len(),
                size: self.size(),
            });
        }
        while !buf.is_empty() {
            let i = self.extents.partition_point(|e| e.0 + e.1 <= offset);
            let (lstart, len, dev, doff) = &self.extents[i];
            let within = offset - lstart;
            let n = ((len - within) as usize).min(buf.len());
            let (head, tail) = buf.split_at_mut(n);
            // The map comes from tenant metadata: an offset past u64 is past the device end.
            let at = doff
                .checked_add(within)
                .ok_or_else(|| ImageError::OutOfRange {
                    path: self.name.clone().into(),
                    offset: *doff,
                    len: n,
                    size: dev.size(),
                })?;
            dev.read_at(head, at)?;
            buf = tail;
            offset += n as u64;
        }
        Ok(())
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn layout(&self) -> Option<Vec<Extent>> {
        let mut out = vec![];
        for (lstart, len, dev, doff) in &self.extents {
            out.extend(clip(dev.layout()?, *doff, *len, *lstart));
        }
        Some(out)
    }
}

/// Reads `len` bytes at `offset` into a new vector.
pub fn read_vec(dev: &dyn BlockDevice, offset: u64, len: usize) -> Result<Vec<u8>, ImageError> {
    let mut v = vec![0u8; len];
    dev.read_at(&mut v, offset)?;
    Ok(v)
}

/// Adapts a device to `Read + Seek` for crates that want a stream (mbrman, gpt, ntfs).
pub struct DevReader {
    dev: Dev,
    pos: u64,
}

impl DevReader {
    pub fn new(dev: Dev) -> Self {
        DevReader { dev, pos: 0 }
    }
}

impl std::io::Read for DevReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.dev.size();
        if self.pos >= size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(size - self.pos) as usize;
        self.dev
            .read_at(&mut buf[..n], self.pos)
            .map_err(std::io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for DevReader {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        let size = self.dev.size() as i128;
        let new = match pos {
            std::io::SeekFrom::Start(p) => p as i128,
            std::io::SeekFrom::End(d) => size + d as i128,
            std::io::SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if new < 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before start",
            ));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}

/// `gpt` wants Write even to read; writes are refused so the source is never modified.
impl std::io::Write for DevReader {
    fn write(&mut self, _buf: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "revirt opens disks read-only",
        ))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An in-memory disk for unit tests; reads past the end are errors, as on a real device.
#[cfg(test)]
pub(crate) struct MemDev(pub Vec<u8>);

#[cfg(test)]
impl BlockDevice for MemDev {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ImageError> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|o| self.0.get(o..o.checked_add(buf.len())?))
            .ok_or(ImageError::OutOfRange {
                path: "mem".into(),
                offset,
                len: buf.len(),
                size: self.size(),
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn name(&self) -> String {
        "mem".into()
    }
}
