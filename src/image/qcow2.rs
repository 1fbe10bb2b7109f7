//! qcow2 v2/v3 images (with backing chains and compressed clusters) through qcow2-rs.
//!
//! ```text
//!   Qcow2Image::open(top)
//!     parse_header()      own validation: magic, version, cluster_bits, crypt, features,
//!                         L1/refcount table bounds, every L1 entry (L2 tables inside the file)
//!     Qcow2Dev (qcow2-rs) fed a normalised v3 header with no backing file: L1/L2 lookups,
//!                         L2 slice cache, data and deflate-compressed cluster reads
//!     backing: Dev        opened by us (raw or qcow2, path relative to the naming image's folder)
//!   read_at: per cluster  get_mapping -> Zero | DataFile/Compressed (crate) | Backing (our Dev)
//! ```
//!
//! Why the layering instead of the crate's own `qcow2_setup_dev_sync`: that helper panics on a
//! missing file (`unwrap`), resolves relative backing names against the process cwd, cannot use
//! a raw backing file, parses v2 headers as if they had v3 fields, and its multi-cluster read
//! swallows errors. So the crate only ever sees one image with a header we checked, a file
//! handle we opened read-only, and one-cluster, 512-aligned reads (bounce buffer for the rest).
//! zstd-compressed clusters (incompatible bit 3) are decoded here with ruzstd: the crate only
//! inflates deflate data.
use super::{BlockDevice, Dev};
use super::{Layer, OpenPolicy};
use crate::error::ImageError;
use qcow2_rs::dev::{Qcow2Dev, Qcow2DevParams};
use qcow2_rs::error::{Qcow2Error, Qcow2Result};
use qcow2_rs::meta::{Mapping, MappingSource, Qcow2Header};
use qcow2_rs::ops::Qcow2IoOps;
use std::fs::File;
use std::future::Future;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

const MAGIC: &[u8; 4] = b"QFI\xfb";
/// Deepest backing chain accepted (number of backing files below the top image).
pub const MAX_CHAIN_DEPTH: usize = 16;
/// qemu's limits (block/qcow2.h QCOW_MAX_L1_SIZE, QCOW_MAX_REFTABLE_SIZE): larger tables are
/// refused by qemu too, and bounding them keeps a forged header from making us allocate gigabytes.
const MAX_L1_BYTES: u64 = 32 << 20;
const MAX_REFTABLE_BYTES: u64 = 8 << 20;
/// Bytes of L2 table kept in the crate's slice cache per image (4 KiB slices).
const L2_CACHE_BYTES: u64 = 4 << 20;

const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;

const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_FEATURE_TABLE: u32 = 0x6803_f857;
const EXT_DATA_FILE: u32 = 0x4441_5441;

const L1_RESERVED: u64 = 0x7f00_0000_0000_01fe;
const L1_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Deflate,
    Zstd,
}

/// The header fields we use, after validation.
#[derive(Debug)]
struct Header {
    version: u32,
    cluster_bits: u32,
    size: u64,
    l1_entries: u64,
    l1_offset: u64,
    reftable_offset: u64,
    reftable_clusters: u32,
    refcount_order: u32,
    compression: Compression,
    backing: Option<PathBuf>,
    backing_format: Option<String>,
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn corrupt(path: &Path, offset: u64, what: impl Into<String>) -> ImageError {
    ImageError::Corrupt {
        path: path.into(),
        offset,
        what: what.into(),
    }
}

fn unsupported(path: &Path, what: impl Into<String>) -> ImageError {
    ImageError::Unsupported {
        path: path.into(),
        what: what.into(),
    }
}

/// Reads up to `buf.len()` bytes at `offset`; returns how many were there before EOF.
fn pread_full(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Parses and validates the header in `head` (the first cluster of the file, or the whole file
/// if shorter). `file_len` bounds every table. Pure, so it can be unit-tested on byte arrays.
fn parse_header(path: &Path, head: &[u8], file_len: u64) -> Result<Header, ImageError> {
    if head.len() < 4 || &head[..4] != MAGIC {
        return Err(corrupt(path, 0, "no qcow2 magic (QFI\\xfb)"));
    }
    if head.len() < 72 {
        return Err(corrupt(
            path,
            0,
            format!(
                "file of {} bytes is shorter than a qcow2 header",
                head.len()
            ),
        ));
    }
    let version = be32(head, 4);
    if version != 2 && version != 3 {
        return Err(unsupported(
            path,
            format!("qcow2 version {version} (only 2 and 3 exist)"),
        ));
    }
    let cluster_bits = be32(head, 20);
    if !(9..=21).contains(&cluster_bits) {
        return Err(corrupt(
            path,
            20,
            format!("cluster_bits {cluster_bits} outside 9..=21"),
        ));
    }
    let cs = 1u64 << cluster_bits;
    let crypt = be32(head, 32);
    if crypt != 0 {
        let kind = match crypt {
            1 => "AES",
            2 => "LUKS",
            _ => "unknown",
        };
        return Err(unsupported(
            path,
            format!("encrypted qcow2 (crypt_method {crypt}, {kind}); decrypt it first, e.g. qemu-img convert with --object secret"),
        ));
    }
    let (incompat, refcount_order, header_len, compression_type) = if version == 2 {
        (0u64, 4u32, 72u64, 0u8)
    } else {
        if head.len() < 104 {
            return Err(corrupt(
                path,
                0,
                "qcow2 v3 header cut short (under 104 bytes)",
            ));
        }
        let hl = be32(head, 100) as u64;
        if hl < 104 || !hl.is_multiple_of(8) || hl > cs {
            return Err(corrupt(
                path,
                100,
                format!("header_length {hl} invalid (>= 104, multiple of 8, within cluster 0)"),
            ));
        }
        if hl > head.len() as u64 {
            return Err(corrupt(
                path,
                100,
                format!("header of {hl} bytes runs past the end of the {file_len}-byte file"),
            ));
        }
        let ct = if hl > 104 { head[104] } else { 0 };
        (be64(head, 72), be32(head, 96), hl, ct)
    };
    if refcount_order > 6 {
        return Err(corrupt(
            path,
            96,
            format!("refcount_order {refcount_order} above 6"),
        ));
    }

    // Header extensions: backing format, feature names (for messages), external data file.
    let mut backing_format = None;
    let mut feature_names: Vec<(u8, u8, String)> = Vec::new();
    let mut has_data_file_ext = false;
    let mut at = header_len;
    loop {
        if at + 8 > head.len() as u64 || at + 8 > cs {
            // qemu tolerates a missing end marker when the cluster is exhausted; so do we.
            break;
        }
        let ty = be32(head, at as usize);
        let len = be32(head, at as usize + 4) as u64;
        let data_at = at + 8;
        if ty == EXT_END {
            break;
        }
        if data_at + len > head.len() as u64 || data_at + len > cs {
            return Err(corrupt(
                path,
                at,
                format!(
                    "header extension {ty:#x} of {len} bytes runs past cluster 0 or the file end"
                ),
            ));
        }
        let data = &head[data_at as usize..(data_at + len) as usize];
        match ty {
            EXT_BACKING_FORMAT => backing_format = Some(String::from_utf8_lossy(data).into_owned()),
            EXT_FEATURE_TABLE => {
                for f in data.chunks_exact(48) {
                    let name = String::from_utf8_lossy(&f[2..])
                        .trim_end_matches('\0')
                        .to_string();
                    feature_names.push((f[0], f[1], name));
                }
            }
            EXT_DATA_FILE => has_data_file_ext = true,
            _ => {}
        }
        at = data_at + len.div_ceil(8) * 8;
    }

    if incompat & INCOMPAT_DATA_FILE != 0 || has_data_file_ext {
        return Err(unsupported(path, "external data file (incompatible feature bit 2 / data-file extension): the guest data is not in this file; convert the image first"));
    }
    if incompat & INCOMPAT_EXTL2 != 0 {
        return Err(unsupported(
            path,
            "extended L2 entries (subclusters, incompatible feature bit 4)",
        ));
    }
    let unknown = incompat
        & !(INCOMPAT_DIRTY
            | INCOMPAT_CORRUPT
            | INCOMPAT_DATA_FILE
            | INCOMPAT_COMPRESSION
            | INCOMPAT_EXTL2);
    if unknown != 0 {
        let bits: Vec<String> = (0..64u8)
            .filter(|b| unknown & (1u64 << b) != 0)
            .map(
                |b| match feature_names.iter().find(|f| f.0 == 0 && f.1 == b) {
                    Some(f) => format!("{b} ({})", f.2),
                    None => b.to_string(),
                },
            )
            .collect();
        return Err(unsupported(
            path,
            format!("unknown incompatible feature bit(s) {}", bits.join(", ")),
        ));
    }
    let compression = match (incompat & INCOMPAT_COMPRESSION != 0, compression_type) {
        (false, 0) => Compression::Deflate,
        (true, 1) => Compression::Zstd,
        (false, t) => {
            return Err(corrupt(
                path,
                104,
                format!("compression_type {t} set without incompatible bit 3"),
            ));
        }
        (true, t) => {
            return Err(unsupported(
                path,
                format!("compression type {t} (only deflate and zstd are known)"),
            ))
        }
    };
    if incompat & INCOMPAT_DIRTY != 0 {
        // Only refcounts may be stale; the L1/L2 mapping we read is always valid.
        tracing::warn!(image = %path.display(), "qcow2 dirty bit set (refcounts not repaired); reading anyway");
    }
    if incompat & INCOMPAT_CORRUPT != 0 {
        tracing::warn!(image = %path.display(), "qcow2 corrupt bit set; qemu allows read-only access, so do we");
    }

    // Backing file name.
    let bf_offset = be64(head, 8);
    let bf_len = be32(head, 16) as u64;
    let backing = if bf_offset != 0 && bf_len != 0 {
        if bf_len > 1023 {
            return Err(corrupt(
                path,
                16,
                format!("backing file name of {bf_len} bytes (max 1023)"),
            ));
        }
        let end = bf_offset.checked_add(bf_len).filter(|&e| e <= cs);
        match end {
            Some(e) if e <= head.len() as u64 => {
                let name = &head[bf_offset as usize..e as usize];
                Some(PathBuf::from(std::ffi::OsStr::from_bytes(name)))
            }
            Some(_) => return Err(corrupt(path, 8, format!("backing file name at {bf_offset:#x} runs past the end of the {file_len}-byte file"))),
            None => return Err(corrupt(path, 8, format!("backing file name at {bf_offset:#x}+{bf_len} lies outside cluster 0"))),
        }
    } else {
        None
    };

    // Virtual size and the L1 table it needs.
    let size = be64(head, 24);
    if size == 0 {
        return Err(unsupported(path, "virtual disk size is 0"));
    }
    if !size.is_multiple_of(512) {
        return Err(unsupported(
            path,
            format!("virtual size {size} is not a multiple of 512"),
        ));
    }
    let bytes_per_l1 = (cs / 8) << cluster_bits; // one L2 table maps this much
    let needed_l1 = size.div_ceil(bytes_per_l1);
    if needed_l1 * 8 > MAX_L1_BYTES {
        return Err(unsupported(
            path,
            format!(
                "virtual size {size} needs an L1 table over 32 MiB at cluster_bits {cluster_bits}"
            ),
        ));
    }
    let l1_entries = be32(head, 36) as u64;
    let l1_offset = be64(head, 40);
    if l1_entries < needed_l1 {
        return Err(corrupt(
            path,
            36,
            format!(
                "L1 table has {l1_entries} entries, {needed_l1} needed for virtual size {size}"
            ),
        ));
    }
    if l1_entries * 8 > MAX_L1_BYTES {
        return Err(corrupt(
            path,
            36,
            format!("L1 table of {l1_entries} entries exceeds 32 MiB"),
        ));
    }
    if l1_offset == 0 || !l1_offset.is_multiple_of(cs) {
        return Err(corrupt(
            path,
            40,
            format!("L1 table offset {l1_offset:#x} not a non-zero multiple of the cluster size"),
        ));
    }
    if l1_offset
        .checked_add(l1_entries * 8)
        .is_none_or(|e| e > file_len)
    {
        return Err(corrupt(path, l1_offset, format!("L1 table ({l1_entries} entries) runs past the end of the {file_len}-byte file (truncated?)")));
    }
    let reftable_offset = be64(head, 48);
    let reftable_clusters = be32(head, 56);
    let rt_bytes = (reftable_clusters as u64) << cluster_bits;
    if reftable_offset == 0 || !reftable_offset.is_multiple_of(cs) {
        return Err(corrupt(path, 48, format!("refcount table offset {reftable_offset:#x} not a non-zero multiple of the cluster size")));
    }
    if reftable_clusters == 0 || rt_bytes > MAX_REFTABLE_BYTES {
        return Err(corrupt(
            path,
            56,
            format!("refcount table of {reftable_clusters} clusters (1..=8 MiB expected)"),
        ));
    }
    if reftable_offset
        .checked_add(rt_bytes)
        .is_none_or(|e| e > file_len)
    {
        return Err(corrupt(
            path,
            reftable_offset,
            format!("refcount table runs past the end of the {file_len}-byte file (truncated?)"),
        ));
    }
    Ok(Header {
        version,
        cluster_bits,
        size,
        l1_entries,
        l1_offset,
        reftable_offset,
        reftable_clusters,
        refcount_order,
        compression,
        backing,
        backing_format,
    })
}

/// Checks the L1 entries that map the virtual disk: reserved bits clear, L2 tables aligned and
/// inside the file. After this no L2 lookup can read past EOF or interpret garbage.
fn check_l1(path: &Path, file: &File, h: &Header, file_len: u64) -> Result<(), ImageError> {
    let cs = 1u64 << h.cluster_bits;
    let needed = h.size.div_ceil((cs / 8) << h.cluster_bits);
    let mut l1 = vec![0u8; (needed * 8) as usize];
    let got = pread_full(file, &mut l1, h.l1_offset).map_err(|e| ImageError::io(path, e))?;
    if got < l1.len() {
        return Err(corrupt(
            path,
            h.l1_offset,
            "L1 table cut short by end of file",
        ));
    }
    for (i, e) in l1.chunks_exact(8).enumerate() {
        let v = be64(e, 0);
        let at = h.l1_offset + 8 * i as u64;
        if v & L1_RESERVED != 0 {
            return Err(corrupt(
                path,
                at,
                format!("L1 entry {i} ({v:#x}) has reserved bits set"),
            ));
        }
        let l2 = v & L1_OFFSET_MASK;
        if l2 == 0 {
            continue;
        }
        if !l2.is_multiple_of(cs) {
            return Err(corrupt(
                path,
                at,
                format!("L1 entry {i}: L2 table offset {l2:#x} not cluster-aligned"),
            ));
        }
        if l2 + cs > file_len {
            return Err(corrupt(path, at, format!("L1 entry {i}: L2 table at {l2:#x} lies past the end of the {file_len}-byte file (truncated?)")));
        }
    }
    Ok(())
}

/// A v3 header with no backing file, extensions or feature bits, built from validated fields:
/// the only header the crate sees (its own parser misreads v2 headers and refuses dirty images).
fn crate_header(h: &Header) -> Result<Qcow2Header, Qcow2Error> {
    let mut b = vec![0u8; 512];
    b[0..4].copy_from_slice(MAGIC);
    b[4..8].copy_from_slice(&3u32.to_be_bytes());
    b[20..24].copy_from_slice(&h.cluster_bits.to_be_bytes());
    b[24..32].copy_from_slice(&h.size.to_be_bytes());
    b[36..40].copy_from_slice(&(h.l1_entries as u32).to_be_bytes());
    b[40..48].copy_from_slice(&h.l1_offset.to_be_bytes());
    b[48..56].copy_from_slice(&h.reftable_offset.to_be_bytes());
    b[56..60].copy_from_slice(&h.reftable_clusters.to_be_bytes());
    b[96..100].copy_from_slice(&h.refcount_order.to_be_bytes());
    b[100..104].copy_from_slice(&104u32.to_be_bytes());
    // bytes 104..112 stay zero: the end-of-extensions marker.
    Qcow2Header::from_buf(&b)
}

/// Read-only file access for the crate. Never writes; reports a read that starts at or past EOF
/// (data cluster beyond a truncated file) through `fault`, and zero-fills a read that only ends
/// past EOF, as qemu does for the file's last cluster.
struct ReadOnlyIo {
    file: File,
    path: PathBuf,
    len: u64,
    fault: Arc<Mutex<Option<ImageError>>>,
}

impl ReadOnlyIo {
    fn record(&self, err: ImageError) {
        let mut f = self.fault.lock().unwrap_or_else(PoisonError::into_inner);
        if f.is_none() {
            *f = Some(err);
        }
    }
}

impl Qcow2IoOps for ReadOnlyIo {
    async fn read_to(&self, offset: u64, buf: &mut [u8]) -> Qcow2Result<usize> {
        match pread_full(&self.file, buf, offset) {
            Ok(n) if n == buf.len() => Ok(n),
            Ok(0) => {
                self.record(corrupt(
                    &self.path,
                    offset,
                    format!("cluster at file offset {offset:#x} lies past the end of the {}-byte file (truncated?)", self.len),
                ));
                Err(Qcow2Error::from_desc(format!(
                    "read at {offset:#x} past EOF"
                )))
            }
            Ok(n) => {
                buf[n..].fill(0);
                Ok(buf.len())
            }
            Err(e) => {
                let desc = format!("read at {offset:#x}: {e}");
                self.record(ImageError::io(&self.path, e));
                Err(Qcow2Error::from_desc(desc))
            }
        }
    }
    async fn write_from(&self, offset: u64, _buf: &[u8]) -> Qcow2Result<()> {
        Err(Qcow2Error::from_desc(format!(
            "revirt opens images read-only (write at {offset:#x} refused)"
        )))
    }
    async fn fallocate(&self, offset: u64, _len: usize, _flags: u32) -> Qcow2Result<()> {
        Err(Qcow2Error::from_desc(format!(
            "revirt opens images read-only (discard at {offset:#x} refused)"
        )))
    }
    async fn fsync(&self, _offset: u64, _len: usize, _flags: u32) -> Qcow2Result<()> {
        Ok(())
    }
}

/// Drives one of the crate's futures on the calling thread. The crate's futures only wait on its
/// own async locks, so parking until woken is all the executor we need: no runtime, no thread.
fn block_on<F: Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

struct Inner {
    dev: Qcow2Dev<ReadOnlyIo>,
    /// Last decompressed cluster (virtual cluster start, bytes): sequential small reads of a
    /// compressed image would otherwise inflate the same cluster many times.
    last_compressed: Option<(u64, Vec<u8>)>,
}

/// A read-only qcow2 image, layered over its (already opened) backing device.
pub struct Qcow2Image {
    path: PathBuf,
    size: u64,
    cluster_bits: u32,
    compression: Compression,
    /// Second handle for zstd clusters, which we read ourselves.
    file: File,
    fault: Arc<Mutex<Option<ImageError>>>,
    inner: Mutex<Inner>,
    backing: Option<Dev>,
}

impl Qcow2Image {
    /// Opens `path` and its backing chain read-only. Returns the device and the resolved backing
    /// paths, nearest first. Relative backing names are resolved against the folder of the image
    /// that names them; backing files may be raw or qcow2.
    pub fn open(path: &Path, policy: &OpenPolicy) -> Result<(Dev, Vec<Layer>), ImageError> {
        let mut walk = Walk {
            policy,
            seen: Vec::new(),
            chain: Vec::new(),
        };
        let dev = open_layer(path, 0, &mut walk)?;
        Ok((dev, walk.chain))
    }

    /// Virtual cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    fn take_fault(&self) -> Option<ImageError> {
        self.fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Turns a crate result into ours, preferring the precise I/O fault our reader recorded.
    fn check<T>(&self, res: Qcow2Result<T>, voff: u64) -> Result<T, ImageError> {
        if let Some(f) = self.take_fault() {
            return Err(f);
        }
        res.map_err(|e| {
            corrupt(
                &self.path,
                voff,
                format!("reading virtual offset {voff:#x}: {e}"),
            )
        })
    }

    fn read_backing(&self, buf: &mut [u8], offset: u64) -> Result<(), ImageError> {
        let Some(b) = &self.backing else {
            buf.fill(0);
            return Ok(());
        };
        // A backing file smaller than the overlay reads as zeros past its end (qemu does so).
        let n = (b.size().saturating_sub(offset)).min(buf.len() as u64) as usize;
        if n > 0 {
            b.read_at(&mut buf[..n], offset)?;
        }
        buf[n..].fill(0);
        Ok(())
    }

    /// Reads bytes `[within, within + buf.len())` of one allocated (data) cluster through the
    /// crate, which wants 512-aligned offsets and lengths.
    fn read_data(
        &self,
        inner: &Inner,
        cl: u64,
        within: usize,
        buf: &mut [u8],
    ) -> Result<(), ImageError> {
        let a = within & !511;
        let e = (within + buf.len()).div_ceil(512) * 512;
        if a == within && e == within + buf.len() {
            let n = self.check(
                block_on(inner.dev.read_at(buf, cl + a as u64)),
                cl + a as u64,
            )?;
            return self.expect_len(n, buf.len(), cl + a as u64);
        }
        let mut bounce = vec![0u8; e - a];
        let n = self.check(
            block_on(inner.dev.read_at(&mut bounce, cl + a as u64)),
            cl + a as u64,
        )?;
        self.expect_len(n, bounce.len(), cl + a as u64)?;
        buf.copy_from_slice(&bounce[within - a..within - a + buf.len()]);
        Ok(())
    }

    fn expect_len(&self, got: usize, want: usize, voff: u64) -> Result<(), ImageError> {
        if got == want {
            Ok(())
        } else {
            Err(corrupt(
                &self.path,
                voff,
                format!("short read at virtual offset {voff:#x}: {got} of {want} bytes"),
            ))
        }
    }

    /// Decompresses the whole cluster starting at virtual offset `cl`. Both formats are decoded
    /// here from the raw bytes: qcow2-rs only inflates deflate, and does it with miniz_oxide 0.7
    /// in wrapping-buffer mode, which panics (slice index out of range) on some corrupt streams
    /// (issue #12).
    fn decompress(&self, cl: u64, m: &Mapping) -> Result<Vec<u8>, ImageError> {
        let cs = self.cluster_size() as usize;
        let mut out = vec![0u8; cs];
        let (Some(host), Some(clen)) = (m.cluster_offset, m.compressed_length) else {
            return Err(corrupt(
                &self.path,
                cl,
                "compressed cluster without host range",
            ));
        };
        let mut raw = vec![0u8; clen];
        let got =
            pread_full(&self.file, &mut raw, host).map_err(|e| ImageError::io(&self.path, e))?;
        if got == 0 {
            return Err(corrupt(
                &self.path,
                host,
                "compressed cluster lies past the end of the file (truncated?)",
            ));
        }
        raw.truncate(got);
        let bad = |kind: &str, e: String| {
            let what = format!("{kind} cluster for virtual offset {cl:#x}: {e}");
            corrupt(&self.path, host, what)
        };
        match self.compression {
            Compression::Deflate => {
                // Raw deflate (no zlib header), and the cluster must come out whole (qemu's
                // qcow2_decompress: Z_STREAM_END or Z_BUF_ERROR with the output full).
                let mut d = flate2::Decompress::new(false);
                d.decompress(&raw, &mut out, flate2::FlushDecompress::Finish)
                    .map_err(|e| bad("deflate", e.to_string()))?;
                if d.total_out() != cs as u64 {
                    let e = format!("inflates to {} of {cs} bytes", d.total_out());
                    return Err(bad("deflate", e));
                }
            }
            Compression::Zstd => {
                // qemu stores one zstd frame; the descriptor's length is a sector-rounded upper
                // bound, so stop after the cluster is full and ignore what follows.
                let mut dec = ruzstd::decoding::StreamingDecoder::new(&raw[..])
                    .map_err(|e| bad("zstd", e.to_string()))?;
                std::io::Read::read_exact(&mut dec, &mut out)
                    .map_err(|e| bad("zstd", e.to_string()))?;
            }
        }
        Ok(out)
    }
}

impl BlockDevice for Qcow2Image {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, mut buf: &mut [u8], mut offset: u64) -> Result<(), ImageError> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.size)
        {
            return Err(ImageError::OutOfRange {
                path: self.path.clone(),
                offset,
                len: buf.len(),
                size: self.size,
            });
        }
        let cs = self.cluster_size();
        while !buf.is_empty() {
            let cl = offset & !(cs - 1);
            let within = (offset - cl) as usize;
            let n = (cs as usize - within).min(buf.len());
            let (chunk, rest) = buf.split_at_mut(n);
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let mapping = self.check(block_on(inner.dev.get_mapping(offset)), offset)?;
            match mapping.source {
                MappingSource::Zero => chunk.fill(0),
                MappingSource::Backing | MappingSource::Unallocated => {
                    drop(inner); // the backing device has its own lock
                    self.read_backing(chunk, offset)?;
                }
                MappingSource::DataFile => self.read_data(&inner, cl, within, chunk)?,
                MappingSource::Compressed => {
                    let hit = matches!(&inner.last_compressed, Some((c, _)) if *c == cl);
                    if !hit {
                        let data = self.decompress(cl, &mapping)?;
                        inner.last_compressed = Some((cl, data));
                    }
                    if let Some((_, data)) = &inner.last_compressed {
                        chunk.copy_from_slice(&data[within..within + n]);
                    }
                }
            }
            buf = rest;
            offset += n as u64;
        }
        Ok(())
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
    fn layout(&self) -> Option<Vec<super::Extent>> {
        Some(super::Extent::whole(&self.path, self.size))
    }
}

/// Where a backing name points: absolute as is, relative against the naming image's folder
/// (qemu's rule; qcow2-rs would use the process cwd instead). The result must be a regular file
/// inside the naming image's folder or inside a root the caller allowed, after symlinks: a
/// backing name is tenant data, and would otherwise open another tenant's disk or any host file.
fn resolve_backing(image: &Path, name: &Path, policy: &OpenPolicy) -> Result<PathBuf, ImageError> {
    let s = name.to_string_lossy();
    if s.starts_with("json:") || s.contains("://") {
        return Err(unsupported(
            image,
            format!("backing file {s:?} is a protocol or json: specification, not a file"),
        ));
    }
    let folder = image.parent().unwrap_or(Path::new(""));
    let joined = if name.is_absolute() {
        name.to_path_buf()
    } else {
        folder.join(name)
    };
    let refuse = |why: String| ImageError::BackingRefused {
        path: image.into(),
        name: s.to_string(),
        why,
    };
    let canon = match std::fs::canonicalize(&joined) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImageError::io(
                image,
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "backing file {s:?} named by this image: not found (looked for {})",
                        joined.display()
                    ),
                ),
            ))
        }
        Err(e) => return Err(refuse(format!("cannot resolve {}: {e}", joined.display()))),
    };
    let meta = std::fs::metadata(&canon).map_err(|e| refuse(e.to_string()))?;
    if !meta.is_file() {
        return Err(refuse(format!(
            "{} is not a regular file (devices, folders and fifos are never opened as backing files)",
            canon.display()
        )));
    }
    let own = std::fs::canonicalize(if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    })
    .map_err(|e| refuse(format!("cannot resolve the image's folder: {e}")))?;
    let inside_own = !name.is_absolute() && canon.starts_with(&own);
    if inside_own || policy.allows(&canon) {
        return Ok(canon);
    }
    Err(refuse(if name.is_absolute() {
        format!(
            "absolute backing name resolves to {}; allow its folder with --allow-backing-dir",
            canon.display()
        )
    } else {
        format!(
            "resolves to {}, outside the image's folder {}; allow it with --allow-backing-dir",
            canon.display(),
            own.display()
        )
    }))
}

/// State of one chain walk: the caller's policy, the files opened so far (loop check) and the
/// chain for the report.
struct Walk<'a> {
    policy: &'a OpenPolicy,
    seen: Vec<PathBuf>,
    chain: Vec<Layer>,
}

fn open_layer(path: &Path, depth: usize, walk: &mut Walk) -> Result<Dev, ImageError> {
    let seen = &mut walk.seen;
    let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
    // Seek to the end rather than stat: qcow2 also lives on block devices (LVs).
    let file_len = std::io::Seek::seek(&mut &file, std::io::SeekFrom::End(0))
        .map_err(|e| ImageError::io(path, e))?;
    if file_len == 0 {
        return Err(ImageError::Empty { path: path.into() });
    }
    let canon = std::fs::canonicalize(path).map_err(|e| ImageError::io(path, e))?;
    if seen.contains(&canon) {
        let mut names: Vec<String> = seen.iter().map(|p| p.display().to_string()).collect();
        names.push(canon.display().to_string());
        return Err(unsupported(
            path,
            format!("backing chain loops: {}", names.join(" -> ")),
        ));
    }
    seen.push(canon);

    // Cluster 0 holds the header, its extensions and the backing name; read it (at most 2 MiB).
    let mut head = vec![0u8; 4096.min(file_len) as usize];
    let got = pread_full(&file, &mut head, 0).map_err(|e| ImageError::io(path, e))?;
    head.truncate(got);
    if head.len() >= 24 && &head[..4] == MAGIC {
        let cb = be32(&head, 20);
        if (9..=21).contains(&cb)
            && (1u64 << cb) > head.len() as u64
            && file_len > head.len() as u64
        {
            head.resize((1u64 << cb).min(file_len) as usize, 0);
            let got = pread_full(&file, &mut head, 0).map_err(|e| ImageError::io(path, e))?;
            head.truncate(got);
        }
    }
    let h = parse_header(path, &head, file_len)?;
    check_l1(path, &file, &h, file_len)?;

    let backing = match &h.backing {
        None => None,
        Some(name) => {
            if depth + 1 > MAX_CHAIN_DEPTH {
                return Err(unsupported(
                    path,
                    format!("backing chain deeper than {MAX_CHAIN_DEPTH} images"),
                ));
            }
            let resolved = resolve_backing(path, name, walk.policy)?;
            Some(open_backing(
                path,
                &resolved,
                h.backing_format.as_deref(),
                depth + 1,
                walk,
            )?)
        }
    };

    let fault = Arc::new(Mutex::new(None));
    let io = ReadOnlyIo {
        file: file.try_clone().map_err(|e| ImageError::io(path, e))?,
        path: path.into(),
        len: file_len,
        fault: fault.clone(),
    };
    let crate_err = |e: Qcow2Error| corrupt(path, 0, format!("qcow2-rs refused the image: {e}"));
    let header = crate_header(&h).map_err(crate_err)?;
    // Slices of at most 4 KiB (and never more than a cluster: the crate's default of 4 KiB
    // underflows for 512-byte and 2 KiB clusters).
    let slice_bits = h.cluster_bits.min(12) as u8;
    let l2_total = h.size.div_ceil(1 << h.cluster_bits) * 8;
    let l2_cache = l2_total.clamp(2 << slice_bits, L2_CACHE_BYTES) as usize;
    let params = Qcow2DevParams::new(
        9,
        Some((slice_bits, 2 << slice_bits)),
        Some((slice_bits, l2_cache)),
        true,
        false,
    );
    let dev = Qcow2Dev::new(path, header, &params, io).map_err(crate_err)?;
    // Without this the crate reads every cluster as zeros (NOTES.md).
    block_on(dev.qcow2_prep_io()).map_err(|e| {
        match fault.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(f) => f,
            None => crate_err(e),
        }
    })?;
    tracing::debug!(image = %path.display(), version = h.version, cluster_bits = h.cluster_bits, size = h.size, "opened qcow2");
    Ok(Arc::new(Qcow2Image {
        path: path.into(),
        size: h.size,
        cluster_bits: h.cluster_bits,
        compression: h.compression,
        file,
        fault,
        inner: Mutex::new(Inner {
            dev,
            last_compressed: None,
        }),
        backing,
    }))
}

/// Opens a backing file as the format its overlay names, or as sniffed when none is named.
fn open_backing(
    overlay: &Path,
    path: &Path,
    format: Option<&str>,
    depth: usize,
    walk: &mut Walk,
) -> Result<Dev, ImageError> {
    use super::Format;
    let fmt = match format {
        Some("raw") => Format::Raw,
        Some("qcow2") => Format::Qcow2,
        Some(other) => {
            return Err(unsupported(overlay, format!("backing file {} has format {other:?}; only raw and qcow2 backing files are read", path.display())));
        }
        None => super::detect_format(path)?,
    };
    walk.chain.push(Layer {
        path: path.display().to_string(),
        format: fmt,
    });
    match fmt {
        Format::Raw => Ok(Arc::new(super::raw::RawImage::open(path)?)),
        Format::Qcow2 => open_layer(path, depth, walk),
        other => Err(unsupported(
            overlay,
            format!(
                "backing file {} is {}; only raw and qcow2 backing files are read",
                path.display(),
                other.as_str()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid v3 header: 64 KiB clusters, 1 GiB, L1 at 0x30000 (1 entry), refcount
    /// table at 0x10000 (1 cluster); file of 0x40000 bytes.
    fn v3() -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[0..4].copy_from_slice(MAGIC);
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        b[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        b[36..40].copy_from_slice(&2u32.to_be_bytes());
        b[40..48].copy_from_slice(&0x30000u64.to_be_bytes());
        b[48..56].copy_from_slice(&0x10000u64.to_be_bytes());
        b[56..60].copy_from_slice(&1u32.to_be_bytes());
        b[96..100].copy_from_slice(&4u32.to_be_bytes());
        b[100..104].copy_from_slice(&104u32.to_be_bytes());
        b
    }

    fn parse(b: &[u8]) -> Result<Header, ImageError> {
        parse_header(Path::new("t.qcow2"), b, 0x40000)
    }

    fn set32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    #[test]
    fn valid_header_parses() {
        let h = parse(&v3()).expect("valid header");
        assert_eq!(
            (h.version, h.cluster_bits, h.size, h.l1_entries),
            (3, 16, 1 << 30, 2)
        );
        assert_eq!(h.compression, Compression::Deflate);
        assert!(h.backing.is_none());
    }

    #[test]
    fn v2_ignores_v3_fields() {
        let mut b = v3();
        set32(&mut b, 4, 2);
        // In v2 these bytes belong to header extensions, not feature bits.
        b[72..80].copy_from_slice(&u64::MAX.to_be_bytes());
        b[72..76].copy_from_slice(&0u32.to_be_bytes()); // end marker
        let h = parse(&b).expect("v2 header");
        assert_eq!((h.version, h.refcount_order), (2, 4));
    }

    type Patch = Box<dyn Fn(&mut Vec<u8>)>;

    #[test]
    fn field_validation() {
        let cases: Vec<(Patch, &str)> = vec![
            (Box::new(|b| set32(b, 20, 8)), "cluster_bits 8"),
            (Box::new(|b| set32(b, 20, 22)), "cluster_bits 22"),
            (Box::new(|b| set32(b, 4, 4)), "version 4"),
            (Box::new(|b| set32(b, 32, 1)), "encrypted"),
            (Box::new(|b| b[79] = 1 << 5), "unknown incompatible bit"),
            (Box::new(|b| b[79] = 1 << 2), "external data file"),
            (Box::new(|b| b[79] = 1 << 4), "extended L2"),
            (Box::new(|b| set32(b, 36, 0)), "L1 too small"),
            (
                Box::new(|b| set32(b, 36, 0x0100_0000)),
                "L1 past EOF / too large",
            ),
            (
                Box::new(|b| b[40..48].copy_from_slice(&0x30200u64.to_be_bytes())),
                "L1 unaligned",
            ),
            (
                Box::new(|b| b[40..48].copy_from_slice(&0x40000u64.to_be_bytes())),
                "L1 past EOF",
            ),
            (Box::new(|b| set32(b, 56, 1000)), "refcount table past EOF"),
            (
                Box::new(|b| b[24..32].copy_from_slice(&u64::MAX.to_be_bytes())),
                "huge size",
            ),
            (
                Box::new(|b| b[24..32].copy_from_slice(&1000u64.to_be_bytes())),
                "unaligned size",
            ),
            (Box::new(|b| set32(b, 100, 100)), "header_length"),
            (Box::new(|b| set32(b, 96, 7)), "refcount_order"),
            (Box::new(|b| b.truncate(60)), "short header"),
            (Box::new(|b| b[0] = b'X'), "magic"),
            (
                Box::new(|b| {
                    b[8..16].copy_from_slice(&0xfff0u64.to_be_bytes());
                    set32(b, 16, 100);
                }),
                "backing name outside cluster 0 / file",
            ),
        ];
        for (patch, what) in cases {
            let mut b = v3();
            patch(&mut b);
            assert!(parse(&b).is_err(), "{what} accepted");
        }
    }

    #[test]
    fn backing_name_and_format_extension() {
        let mut b = v3();
        b[8..16].copy_from_slice(&0x200u64.to_be_bytes());
        set32(&mut b, 16, 8);
        b[0x200..0x208].copy_from_slice(b"base.raw");
        set32(&mut b, 104, EXT_BACKING_FORMAT);
        set32(&mut b, 108, 3);
        b[112..115].copy_from_slice(b"raw");
        let h = parse(&b).expect("header with backing");
        assert_eq!(h.backing.as_deref(), Some(Path::new("base.raw")));
        assert_eq!(h.backing_format.as_deref(), Some("raw"));
        // A data-file extension is refused even without the feature bit.
        set32(&mut b, 120, EXT_DATA_FILE);
        set32(&mut b, 124, 1);
        assert!(matches!(parse(&b), Err(ImageError::Unsupported { .. })));
    }

    #[test]
    fn backing_names_must_stay_in_the_image_folder_unless_allowed() {
        let d = tempfile::tempdir().unwrap();
        let (img, other) = (d.path().join("img"), d.path().join("other"));
        std::fs::create_dir_all(img.join("sub")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        for f in [
            img.join("base.raw"),
            img.join("sub/b.raw"),
            other.join("victim.raw"),
        ] {
            std::fs::write(f, b"x").unwrap();
        }
        std::os::unix::fs::symlink(other.join("victim.raw"), img.join("link.raw")).unwrap();
        let top = img.join("top.qcow2");
        let none = OpenPolicy::default();
        let canon = |p: PathBuf| p.canonicalize().unwrap();
        assert_eq!(
            resolve_backing(&top, Path::new("base.raw"), &none).unwrap(),
            canon(img.join("base.raw"))
        );
        assert_eq!(
            resolve_backing(&top, Path::new("sub/b.raw"), &none).unwrap(),
            canon(img.join("sub/b.raw"))
        );
        let refused = |name: &str, p: &OpenPolicy| {
            matches!(
                resolve_backing(&top, Path::new(name), p),
                Err(ImageError::BackingRefused { .. })
            )
        };
        let abs = other.join("victim.raw");
        for name in [
            "../other/victim.raw",
            "link.raw",
            abs.to_str().unwrap(),
            "/dev/null",
            "sub",
        ] {
            assert!(refused(name, &none), "{name} must be refused by default");
        }
        assert!(resolve_backing(&top, Path::new("nbd://host/x"), &none).is_err());
        assert!(matches!(
            resolve_backing(&top, Path::new("missing.raw"), &none),
            Err(ImageError::Io { .. })
        ));
        // Allowing the other folder lets exactly its files through.
        let allow = OpenPolicy::allowing(std::slice::from_ref(&other)).unwrap();
        for name in ["../other/victim.raw", "link.raw", abs.to_str().unwrap()] {
            assert!(!refused(name, &allow), "{name} is under an allowed root");
        }
        assert!(refused("/dev/null", &allow));
    }

    #[test]
    fn zstd_needs_bit_and_known_type() {
        let mut b = v3();
        set32(&mut b, 100, 112);
        b[104] = 1;
        assert!(parse(&b).is_err(), "compression_type without bit 3");
        b[79] = 1 << 3;
        assert_eq!(parse(&b).unwrap().compression, Compression::Zstd);
        b[104] = 2;
        assert!(parse(&b).is_err(), "unknown compression type");
    }
}
