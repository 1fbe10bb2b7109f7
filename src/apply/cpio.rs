//! newc cpio writer for the segment revirt appends to an initramfs.
use std::collections::BTreeSet;

fn header(out: &mut Vec<u8>, ino: u32, mode: u32, size: usize, name: &str) {
    let h = format!(
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
        0, 0, 1, 0, 0, 0, 0, 0, name.len() + 1, 0
    );
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Builds one uncompressed newc archive holding `files` (path without leading "/", bytes) and
/// every parent directory (the kernel does not create missing parents when unpacking).
pub fn newc_archive(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut dirs = BTreeSet::new();
    for (p, _) in files {
        let mut acc = String::new();
        let parts: Vec<&str> = p.split('/').collect();
        for d in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(d);
            dirs.insert(acc.clone());
        }
    }
    let mut out = Vec::new();
    let mut ino = 0x7e_0000u32; // away from the inode numbers of the original segments
    for d in &dirs {
        ino += 1;
        header(&mut out, ino, 0o040755, 0, d);
    }
    for (p, data) in files {
        ino += 1;
        header(&mut out, ino, 0o100644, data.len(), p);
        out.extend_from_slice(data);
        pad4(&mut out);
    }
    header(&mut out, 0, 0, 0, "TRAILER!!!");
    out
}

/// Appends `segment` to `initrd`, zero-padding so the new header starts 4-byte aligned (the
/// kernel requires it after a compressed segment).
pub fn append_segment(initrd: &[u8], segment: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(initrd.len() + segment.len() + 512);
    out.extend_from_slice(initrd);
    while !out.len().is_multiple_of(512) {
        out.push(0);
    }
    out.extend_from_slice(segment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::linux::initramfs::list_initramfs;

    #[test]
    fn appended_segment_is_listed_after_a_gzip_segment() {
        use std::io::Write;
        let base = newc_archive(&[("conf/modules".into(), b"ahci\n".to_vec())]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&base).unwrap();
        let gz = gz.finish().unwrap();
        let seg = newc_archive(&[
            (
                "usr/lib/modules/6.1/kernel/drivers/block/virtio_blk.ko".into(),
                b"\x7fELF".to_vec(),
            ),
            ("conf/modules".into(), b"ahci\nvirtio_blk\n".to_vec()),
        ]);
        // Our own reader stops after a compressed segment, so check the appended one alone,
        // and that the padding keeps the header aligned.
        let all = append_segment(&gz, &seg);
        assert_eq!((all.len() - seg.len()) % 4, 0);
        let l = list_initramfs(&seg).unwrap();
        assert!(l.module_names().contains("virtio_blk"));
        assert!(l
            .files
            .contains_key("usr/lib/modules/6.1/kernel/drivers/block"));
        assert_eq!(l.texts["conf/modules"], "ahci\nvirtio_blk\n");
    }
}
