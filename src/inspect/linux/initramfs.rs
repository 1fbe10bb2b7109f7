//! Lists what an initramfs holds without unpacking it to disk.
//!
//! An initramfs is one or more newc cpio archives back to back: typically an uncompressed early
//! microcode segment, then the main archive compressed with gzip, xz, zstd, lz4 (legacy frame),
//! bzip2 or lzma. The kernel unpacks each in turn; so do we. Segments are 4-byte aligned and may
//! be separated by zero padding.
use std::collections::BTreeMap;
use std::io::Read;

/// What the initramfs contains: every path (without a leading "/") and small text files.
#[derive(Debug, Default)]
pub struct InitramfsListing {
    /// Compression of each segment, in order: "none", "gzip", "xz", "zstd", "lz4", "bzip2", "lzma".
    pub segments: Vec<String>,
    /// Path -> size; later segments overwrite earlier ones, as the kernel does.
    pub files: BTreeMap<String, u64>,
    /// Contents of small config files (conf/modules, etc/modules-load.d/*, etc/cmdline.d/*).
    pub texts: BTreeMap<String, String>,
}

impl InitramfsListing {
    /// Kernel module names (basename without .ko[.xz|.zst|.gz], dashes as underscores) inside.
    pub fn module_names(&self) -> std::collections::BTreeSet<String> {
        self.files.keys().filter_map(|p| module_name(p)).collect()
    }
}

/// "kernel/drivers/block/virtio_blk.ko.xz" -> "virtio_blk".
pub fn module_name(path: &str) -> Option<String> {
    let base = path.rsplit('/').next()?;
    let stem = ["", ".xz", ".zst", ".gz"]
        .iter()
        .find_map(|c| base.strip_suffix(&format!(".ko{c}")))?;
    Some(stem.replace('-', "_"))
}

const MAX_UNPACKED: u64 = 2 << 30;

fn compression(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"070701") || b.starts_with(b"070702") {
        Some("none")
    } else if b.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if b.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if b.starts_with(&[0x02, 0x21, 0x4c, 0x18]) {
        Some("lz4")
    } else if b.starts_with(b"BZh") {
        Some("bzip2")
    } else if b.starts_with(&[0x5d, 0, 0]) {
        Some("lzma")
    } else if b.starts_with(&[0x89, b'L', b'Z', b'O']) {
        Some("lzo")
    } else {
        None
    }
}

/// Parses every segment of `data`. Errors name the offset and what was wrong.
pub fn list_initramfs(data: &[u8]) -> Result<InitramfsListing, String> {
    let mut out = InitramfsListing::default();
    let mut pos = 0usize;
    while pos < data.len() {
        // Skip the zero padding between segments.
        while pos < data.len() && data[pos] == 0 {
            pos += 1;
        }
        if pos >= data.len() {
            break;
        }
        let Some(kind) = compression(&data[pos..]) else {
            return Err(format!(
                "unknown data at offset {pos:#x} (not cpio nor a known compression)"
            ));
        };
        out.segments.push(kind.into());
        if kind == "none" {
            pos += parse_cpio(&data[pos..], &mut out)
                .map_err(|e| format!("cpio segment at {pos:#x}: {e}"))?;
            continue;
        }
        // Decompress one stream and continue after it: revirt itself appends an uncompressed
        // segment after the distro's compressed one, and the kernel reads on the same way.
        // The stream is parsed as it is decoded, so memory stays small whatever its size.
        let mut sink = CpioSink::new(&mut out);
        let used = decompress(kind, &data[pos..], &mut sink)
            .map_err(|e| format!("{kind} segment at {pos:#x}: {e}"))?;
        sink.finish()
            .map_err(|e| format!("cpio inside {kind} segment at {pos:#x}: {e}"))?;
        pos += used.max(1);
    }
    if out.segments.is_empty() {
        return Err("empty initramfs".into());
    }
    Ok(out)
}

/// Decompresses one stream at the start of `src`; returns the data and the input bytes used.
fn decompress(kind: &str, src: &[u8], sink: &mut CpioSink) -> Result<usize, String> {
    let mut rest: &[u8] = src;
    let e = |e: std::io::Error| e.to_string();
    match kind {
        "gzip" => {
            let mut d = flate2::bufread::GzDecoder::new(&mut rest).take(MAX_UNPACKED);
            std::io::copy(&mut d, sink).map_err(e)?;
        }
        "zstd" => {
            let mut d =
                ruzstd::decoding::StreamingDecoder::new(&mut rest).map_err(|e| e.to_string())?;
            std::io::copy(&mut d, sink).map_err(e)?;
        }
        "xz" => {
            // lzma-rs refuses data after the stream (e.g. a segment appended after the main
            // archive): decode exactly one stream, ending at its footer.
            let end = xz_stream_end(src).ok_or("no xz stream footer found")?;
            let mut one = &src[..end];
            lzma_rs::xz_decompress(&mut one, sink).map_err(|e| e.to_string())?;
            return Ok(end);
        }
        "lzma" => {
            lzma_rs::lzma_decompress(&mut rest, sink).map_err(|e| e.to_string())?;
        }
        "bzip2" => {
            let mut d = bzip2::bufread::BzDecoder::new(&mut rest).take(MAX_UNPACKED);
            std::io::copy(&mut d, sink).map_err(e)?;
        }
        "lz4" => return lz4_legacy(src, sink),
        other => return Err(format!("{other} compression is not supported")),
    }
    Ok(src.len() - rest.len())
}

/// Parses newc archives from a byte stream as it is written (by a decompressor), keeping only
/// names, sizes and small config texts: file data is skipped, never buffered.
pub(crate) struct CpioSink<'a> {
    out: &'a mut InitramfsListing,
    /// Bytes of the current header/name (or small text file) not yet complete.
    buf: Vec<u8>,
    /// File data (plus padding) still to discard.
    skip: u64,
    total: u64,
}

impl<'a> CpioSink<'a> {
    fn new(out: &'a mut InitramfsListing) -> Self {
        CpioSink {
            out,
            buf: Vec::new(),
            skip: 0,
            total: 0,
        }
    }

    /// Parses whatever complete records `buf` holds.
    fn drain(&mut self) -> std::io::Result<()> {
        let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
        loop {
            if self.skip > 0 {
                return Ok(());
            }
            // Zero padding between archives (after a trailer).
            let z = self.buf.iter().take_while(|&&b| b == 0).count();
            self.buf.drain(..z);
            if self.buf.len() < 110 {
                return Ok(());
            }
            let h = &self.buf[..110];
            if !(h.starts_with(b"070701") || h.starts_with(b"070702")) {
                return Err(bad(format!(
                    "bad cpio magic at unpacked offset {:#x}",
                    self.total - self.buf.len() as u64
                )));
            }
            let mode = hex(&h[14..22]).map_err(bad)?;
            let size = hex(&h[54..62]).map_err(bad)? as usize;
            let namesize = hex(&h[94..102]).map_err(bad)? as usize;
            if namesize == 0 || namesize > 4096 {
                return Err(bad(format!("bad name size {namesize}")));
            }
            let data_at = align4(110 + namesize);
            if self.buf.len() < data_at {
                return Ok(());
            }
            let name = String::from_utf8_lossy(&self.buf[110..110 + namesize - 1]).into_owned();
            let path = name
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_string();
            let is_file = mode & 0o170000 == 0o100000;
            let want_text = is_file && size < 64 * 1024 && is_interesting_text(&path);
            let padded = align4(size);
            if want_text {
                if self.buf.len() < data_at + padded {
                    return Ok(());
                }
                let text = String::from_utf8_lossy(&self.buf[data_at..data_at + size]).into_owned();
                self.out.texts.insert(path.clone(), text);
                self.buf.drain(..data_at + padded);
            } else {
                let have = self.buf.len() - data_at;
                self.buf.drain(..data_at + have.min(padded));
                self.skip = (padded - have.min(padded)) as u64;
            }
            if name != "TRAILER!!!" && !path.is_empty() && path != "." {
                self.out.files.insert(path, size as u64);
            }
        }
    }

    /// Fails if the stream ended inside a record.
    fn finish(self) -> Result<(), String> {
        if self.skip > 0 || self.buf.iter().any(|&b| b != 0) {
            return Err(format!("truncated archive ({} bytes unpacked)", self.total));
        }
        Ok(())
    }
}

impl std::io::Write for CpioSink<'_> {
    fn write(&mut self, mut data: &[u8]) -> std::io::Result<usize> {
        let n = data.len();
        self.total += n as u64;
        if self.total > MAX_UNPACKED {
            return Err(std::io::Error::other("unpacks to more than 2 GiB"));
        }
        while !data.is_empty() {
            if self.skip > 0 {
                let k = (self.skip as usize).min(data.len());
                self.skip -= k as u64;
                data = &data[k..];
                continue;
            }
            // drain() parses complete records; when it starts skipping file data it has
            // already emptied `buf`, so the rest of `data` goes to the skip branch above.
            self.buf.extend_from_slice(data);
            data = &[];
            self.drain()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// CRC-32 (IEEE), bitwise: only used on the 6 bytes an xz footer protects.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// End of the first xz stream in `src`: the first 12-byte footer (CRC32 of backward size and
/// flags, backward size, the header's stream flags, "YZ") at a 4-byte aligned end.
fn xz_stream_end(src: &[u8]) -> Option<usize> {
    let flags = src.get(6..8)?;
    (24..=src.len()).step_by(4).find(|&end| {
        let f = &src[end - 12..end];
        &f[10..12] == b"YZ" && &f[8..10] == flags && crc32(&f[4..10]).to_le_bytes() == f[0..4]
    })
}

/// The kernel's lz4 initramfs format is LZ4 "legacy": magic, then blocks of a u32 compressed
/// size followed by the block (each up to 8 MiB decompressed). A repeated magic may follow.
fn lz4_legacy(src: &[u8], sink: &mut CpioSink) -> Result<usize, String> {
    let mut p = 4;
    while p + 4 <= src.len() {
        let n = u32::from_le_bytes(src[p..p + 4].try_into().unwrap()) as usize;
        if n == 0x184c2102 {
            p += 4;
            continue;
        }
        if n == 0 || p + 4 + n > src.len() {
            break; // end of stream (padding or trailing data)
        }
        let block = lz4_flex::block::decompress(&src[p + 4..p + 4 + n], 8 << 20)
            .map_err(|e| format!("lz4 block at {p:#x}: {e}"))?;
        std::io::Write::write_all(sink, &block).map_err(|e| e.to_string())?;
        p += 4 + n;
    }
    Ok(p)
}

fn hex(field: &[u8]) -> Result<u64, String> {
    let s = std::str::from_utf8(field).map_err(|_| "non-ASCII header field")?;
    u64::from_str_radix(s, 16).map_err(|_| format!("bad hex field {s:?}"))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Parses one newc archive up to and including its TRAILER!!! entry; returns bytes consumed.
fn parse_cpio(b: &[u8], out: &mut InitramfsListing) -> Result<usize, String> {
    let mut p = 0usize;
    loop {
        if p + 110 > b.len() {
            return Err(format!("truncated header at {p:#x}"));
        }
        let h = &b[p..p + 110];
        if !(h.starts_with(b"070701") || h.starts_with(b"070702")) {
            return Err(format!("bad cpio magic at {p:#x}"));
        }
        let mode = hex(&h[14..22])?;
        let size = hex(&h[54..62])? as usize;
        let namesize = hex(&h[94..102])? as usize;
        if namesize == 0 || p + 110 + namesize > b.len() {
            return Err(format!("bad name size {namesize} at {p:#x}"));
        }
        let name_raw = &b[p + 110..p + 110 + namesize - 1];
        let name = String::from_utf8_lossy(name_raw).into_owned();
        let data_at = align4(p + 110 + namesize);
        if data_at + size > b.len() {
            return Err(format!(
                "{name}: {size} bytes of data run past the end at {data_at:#x}"
            ));
        }
        if name == "TRAILER!!!" {
            return Ok(align4(data_at + size).min(b.len()));
        }
        let path = name
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        let is_file = mode & 0o170000 == 0o100000;
        if is_file && size < 64 * 1024 && is_interesting_text(&path) {
            let text = String::from_utf8_lossy(&b[data_at..data_at + size]).into_owned();
            out.texts.insert(path.clone(), text);
        }
        if !path.is_empty() && path != "." {
            out.files.insert(path, size as u64);
        }
        p = align4(data_at + size);
    }
}

fn is_interesting_text(p: &str) -> bool {
    p == "conf/modules"
        || p.starts_with("etc/modules-load.d/")
        || p.starts_with("etc/cmdline.d/")
        || p == "etc/modules"
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a newc archive in memory (test helper, also used by other modules' tests).
    pub fn newc(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut entry = |name: &str, data: &[u8], mode: u32| {
            let hdr = format!(
                "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
                1, mode, 0, 0, 1, 0, data.len(), 0, 0, 0, 0, name.len() + 1, 0
            );
            out.extend_from_slice(hdr.as_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            while out.len() % 4 != 0 {
                out.push(0);
            }
            out.extend_from_slice(data);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        };
        for (n, d) in files {
            entry(n, d, 0o100644);
        }
        entry("TRAILER!!!", b"", 0);
        out
    }

    #[test]
    fn early_uncompressed_then_gzip_segment() {
        use std::io::Write;
        let early = newc(&[("kernel/x86/microcode/GenuineIntel.bin", b"ucode")]);
        let main = newc(&[
            (
                "usr/lib/modules/6.1.0-13-amd64/kernel/drivers/block/virtio_blk.ko",
                b"\x7fELF",
            ),
            ("conf/modules", b"ahci\nsd_mod\n"),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&main).unwrap();
        let mut img = early.clone();
        img.extend_from_slice(&[0u8; 512]);
        img.extend(gz.finish().unwrap());
        let l = list_initramfs(&img).unwrap();
        assert_eq!(l.segments, vec!["none", "gzip"]);
        assert!(l.module_names().contains("virtio_blk"));
        assert_eq!(l.texts["conf/modules"], "ahci\nsd_mod\n");
        assert!(l
            .files
            .contains_key("kernel/x86/microcode/GenuineIntel.bin"));
    }

    #[test]
    fn segment_appended_after_compressed_one_is_read() {
        use std::io::Write;
        let main = newc(&[("conf/modules", b"ahci\n")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&main).unwrap();
        let mut img = gz.finish().unwrap();
        while img.len() % 512 != 0 {
            img.push(0);
        }
        img.extend(newc(&[
            (
                "usr/lib/modules/6.1/kernel/drivers/block/virtio_blk.ko",
                b"x",
            ),
            ("conf/modules", b"ahci\nvirtio_blk\n"),
        ]));
        let l = list_initramfs(&img).unwrap();
        assert_eq!(l.segments, vec!["gzip", "none"]);
        assert!(l.module_names().contains("virtio_blk"));
        assert_eq!(
            l.texts["conf/modules"], "ahci\nvirtio_blk\n",
            "a later segment overrides"
        );
    }

    #[test]
    fn xz_and_zstd_segments() {
        let main = newc(&[(
            "lib/modules/5.14/kernel/drivers/virtio/virtio_pci.ko.xz",
            b"x",
        )]);
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut std::io::Cursor::new(&main), &mut xz).unwrap();
        let l = list_initramfs(&xz).unwrap();
        assert_eq!(l.segments, vec!["xz"]);
        assert!(l.module_names().contains("virtio_pci"));
    }

    #[test]
    fn segment_appended_after_xz_is_read() {
        let main = newc(&[("usr/lib/modules/4.18/kernel/fs/xfs/xfs.ko.xz", b"x")]);
        let mut img = Vec::new();
        lzma_rs::xz_compress(&mut std::io::Cursor::new(&main), &mut img).unwrap();
        while !img.len().is_multiple_of(4) {
            img.push(0);
        }
        img.extend(newc(&[(
            "usr/lib/modules/4.18/kernel/drivers/block/virtio_blk.ko.xz",
            b"y",
        )]));
        let l = list_initramfs(&img).unwrap();
        assert_eq!(l.segments, vec!["xz", "none"]);
        assert!(l.module_names().contains("virtio_blk"));
        assert!(l.module_names().contains("xfs"));
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(list_initramfs(b"hello world").is_err());
        let mut a = newc(&[("a", b"0123456789")]);
        a.truncate(120);
        assert!(
            list_initramfs(&a).unwrap_err().contains("truncated") || list_initramfs(&a).is_err()
        );
        assert!(list_initramfs(&[0u8; 64]).is_err());
    }

    #[test]
    fn streaming_parser_matches_slice_parser_at_any_chunk_size() {
        use std::io::Write;
        let big = vec![7u8; 100_000];
        let mut a = newc(&[
            ("conf/modules", b"ahci\nsd_mod\n"),
            (
                "usr/lib/modules/6.1/kernel/drivers/block/virtio_blk.ko",
                &big,
            ),
            ("x", b"abc"),
        ]);
        a.extend_from_slice(&[0u8; 16]);
        a.extend(newc(&[("etc/modules-load.d/v.conf", b"virtio_pci\n")]));
        let mut want = InitramfsListing::default();
        let used = parse_cpio(&a, &mut want).unwrap();
        parse_cpio(&a[used + 16..], &mut want).unwrap();
        for chunk in [1usize, 3, 7, 4096, 1 << 20] {
            let mut got = InitramfsListing::default();
            let mut sink = CpioSink::new(&mut got);
            for c in a.chunks(chunk) {
                sink.write_all(c).unwrap();
            }
            sink.finish().unwrap();
            assert_eq!(got.files, want.files, "chunk {chunk}");
            assert_eq!(got.texts, want.texts, "chunk {chunk}");
        }
        let mut got = InitramfsListing::default();
        let mut sink = CpioSink::new(&mut got);
        sink.write_all(&a[..5000]).unwrap();
        assert!(
            sink.finish().is_err(),
            "a stream cut inside a file is truncated"
        );
    }

    #[test]
    fn module_names_normalise() {
        assert_eq!(
            module_name("a/virtio-blk.ko.zst").as_deref(),
            Some("virtio_blk")
        );
        assert_eq!(module_name("a/readme.txt"), None);
    }
}
