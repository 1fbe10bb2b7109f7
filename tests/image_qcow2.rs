//! qcow2 backend against images made by qemu-img: every byte read is compared with the raw source
//! the image was converted from, and broken images must give an ImageError (never a panic).
use revirt::error::ImageError;
use revirt::image::qcow2::Qcow2Image;
use revirt::image::{open_image, BlockDevice, Dev};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn qemu_img(args: &[&str], cwd: Option<&Path>) {
    let mut c = Command::new("qemu-img");
    c.args(args);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let out = c.output().expect("run qemu-img");
    assert!(
        out.status.success(),
        "qemu-img {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Deterministic pseudo-random bytes (xorshift), distinct per seed.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Sparse raw file of `size` bytes with patterns at awkward places: sector and cluster
/// boundaries straddled, the 4 GiB boundary crossed, the last bytes of the disk.
fn make_raw(path: &Path, size: u64, seed: u64) -> Vec<(u64, usize)> {
    let f = File::create(path).unwrap();
    f.set_len(size).unwrap();
    let mut spots = vec![
        (0u64, 4096usize),
        (511, 3),
        (65_535, 70_001),
        (3 * MIB + 17, 200_000),
        (size / 2 - 1, 2),
        (size - 1000, 1000),
    ];
    if size > 5 * GIB {
        spots.push((4 * GIB - 100, 300));
        spots.push((5 * GIB + 12_345, 131_072));
    }
    for (i, &(off, len)) in spots.iter().enumerate() {
        f.write_all_at(&pattern(seed + i as u64, len), off).unwrap();
    }
    // Low-entropy data, so `convert -c` really stores compressed clusters (random data it
    // keeps uncompressed).
    let text: Vec<u8> = (0..300_000u32)
        .map(|i| b"revirt qcow2 "[(i as usize * 7 + seed as usize) % 13] ^ (i / 4096) as u8)
        .collect();
    let at = size / 3 + 77;
    f.write_all_at(&text, at).unwrap();
    spots.push((at, text.len()));
    spots
}

/// Compares `dev` with `raw` over `[start, end)` using reads of odd sizes and offsets.
fn compare_range(dev: &dyn BlockDevice, raw: &File, start: u64, end: u64) {
    let mut off = start;
    let steps = [1usize, 7, 511, 512, 513, 4096, 65_537, 1 << 20];
    let mut i = 0;
    while off < end {
        let n = (steps[i % steps.len()] as u64).min(end - off) as usize;
        let mut a = vec![0xa5u8; n];
        let mut b = vec![0u8; n];
        dev.read_at(&mut a, off)
            .unwrap_or_else(|e| panic!("read {n} at {off:#x}: {e}"));
        raw.read_exact_at(&mut b, off).unwrap();
        if a != b {
            let k = a.iter().zip(&b).position(|(x, y)| x != y).unwrap();
            panic!(
                "{}: byte {:#x} differs: got {:#x}, want {:#x}",
                dev.name(),
                off + k as u64,
                a[k],
                b[k]
            );
        }
        off += n as u64;
        i += 1;
    }
}

/// Whole-disk comparison in 4 MiB reads, plus odd-sized reads around every pattern.
fn compare_all(dev: &dyn BlockDevice, raw_path: &Path, spots: &[(u64, usize)]) {
    let raw = File::open(raw_path).unwrap();
    let size = raw.metadata().unwrap().len();
    assert_eq!(dev.size(), size, "virtual size of {}", dev.name());
    let chunk = 4 * MIB as usize;
    let mut a = vec![0u8; chunk];
    let mut b = vec![0u8; chunk];
    let mut off = 0;
    while off < size {
        let n = (chunk as u64).min(size - off) as usize;
        dev.read_at(&mut a[..n], off)
            .unwrap_or_else(|e| panic!("read at {off:#x}: {e}"));
        raw.read_exact_at(&mut b[..n], off).unwrap();
        assert!(
            a[..n] == b[..n],
            "{}: 4 MiB block at {off:#x} differs",
            dev.name()
        );
        off += n as u64;
    }
    for &(o, len) in spots {
        let s = o.saturating_sub(700);
        let e = (o + len as u64 + 700).min(size);
        compare_range(dev, &raw, s, e);
    }
}

fn open(path: &Path) -> (Dev, Vec<String>) {
    let (dev, chain) = Qcow2Image::open(path, &Default::default())
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    (dev, chain.into_iter().map(|l| l.path).collect())
}

#[test]
fn v2_v3_compressed_and_cluster_sizes_match_raw() {
    let d = tempfile::tempdir().unwrap();
    let raw = d.path().join("src.raw");
    let spots = make_raw(&raw, 96 * MIB, 1);
    let variants: &[(&str, &[&str])] = &[
        ("v2.qcow2", &["-o", "compat=0.10"]),
        ("v3.qcow2", &["-o", "compat=1.1"]),
        ("v2c.qcow2", &["-c", "-o", "compat=0.10"]),
        ("v3c.qcow2", &["-c"]),
        ("zstd.qcow2", &["-c", "-o", "compression_type=zstd"]),
        ("c512.qcow2", &["-o", "cluster_size=512"]),
        ("c2k.qcow2", &["-c", "-o", "cluster_size=2048"]),
        ("c2m.qcow2", &["-o", "cluster_size=2M"]),
    ];
    for (name, opts) in variants {
        let out = d.path().join(name);
        let mut args = vec!["convert", "-f", "raw", "-O", "qcow2"];
        args.extend_from_slice(opts);
        args.push(p(&raw));
        args.push(p(&out));
        qemu_img(&args, None);
        let (dev, chain) = open(&out);
        assert!(chain.is_empty());
        compare_all(&*dev, &raw, &spots);
    }
}

#[test]
fn large_sparse_image_above_4gib() {
    let d = tempfile::tempdir().unwrap();
    let raw = d.path().join("big.raw");
    let spots = make_raw(&raw, 6 * GIB, 2);
    for (name, opts) in [
        ("big3.qcow2", vec!["-o", "compat=1.1"]),
        ("big2c.qcow2", vec!["-c", "-o", "compat=0.10"]),
    ] {
        let out = d.path().join(name);
        let mut args = vec!["convert", "-f", "raw", "-O", "qcow2"];
        args.extend(opts);
        args.push(p(&raw));
        args.push(p(&out));
        qemu_img(&args, None);
        let (dev, _) = open(&out);
        let f = File::open(&raw).unwrap();
        assert_eq!(dev.size(), 6 * GIB);
        for &(o, len) in &spots {
            compare_range(
                &*dev,
                &f,
                o.saturating_sub(70_000),
                (o + len as u64 + 70_000).min(6 * GIB),
            );
        }
        // A whole read straddling 4 GiB, and the unwritten middle reads as zeros.
        compare_range(&*dev, &f, 4 * GIB - 3 * MIB, 4 * GIB + 3 * MIB);
        let mut z = vec![1u8; 1 << 20];
        dev.read_at(&mut z, 2 * GIB + GIB / 2 + 12_345).unwrap();
        assert!(z.iter().all(|&b| b == 0));
        // Past the end is an error, not a panic.
        let mut one = [0u8; 2];
        assert!(matches!(
            dev.read_at(&mut one, 6 * GIB - 1),
            Err(ImageError::OutOfRange { .. })
        ));
    }
}

/// Writes `(offset, len, byte)` runs into a qcow2 overlay with qemu-io (so the overlay holds
/// only those clusters, copied-on-write from its backing file) and mirrors them into `raw`.
fn edit(img: &Path, raw: &Path, edits: &[(u64, usize, u8)]) {
    let mut c = Command::new("qemu-io");
    c.args(["-f", "qcow2"]);
    for &(o, l, v) in edits {
        c.args(["-c", &format!("write -P {v:#x} {o} {l}")]);
    }
    let out = c.arg(img).output().expect("run qemu-io");
    assert!(
        out.status.success(),
        "qemu-io: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = OpenOptions::new().write(true).open(raw).unwrap();
    for &(o, l, v) in edits {
        f.write_all_at(&vec![v; l], o).unwrap();
    }
}

/// base.qcow2 <- overlay.qcow2 named relatively ("base.qcow2") in a folder that is not the cwd.
#[test]
fn relative_qcow2_backing_from_another_cwd() {
    let d = tempfile::tempdir().unwrap();
    let sub = d.path().join("vm");
    std::fs::create_dir(&sub).unwrap();
    let base_raw = d.path().join("base.raw");
    let mut spots = make_raw(&base_raw, 64 * MIB, 3);
    let big = (10 * MIB + 5, 8 * MIB as usize);
    OpenOptions::new()
        .write(true)
        .open(&base_raw)
        .unwrap()
        .write_all_at(&pattern(30, big.1), big.0)
        .unwrap();
    spots.push(big);
    let top_raw = d.path().join("top.raw");
    std::fs::copy(&base_raw, &top_raw).unwrap();
    qemu_img(
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "-o",
            "compat=0.10",
            p(&base_raw),
            "vm/base.qcow2",
        ],
        Some(d.path()),
    );
    qemu_img(
        &[
            "create",
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            "overlay.qcow2",
        ],
        Some(&sub),
    );
    let top = sub.join("overlay.qcow2");
    let edits = [
        (100u64, 50usize, 0xab),
        (65_530, 20, 0x01),
        (12 * MIB + 3, 300_000, 0x5c),
        (64 * MIB - 4096, 4096, 0xee),
    ];
    edit(&top, &top_raw, &edits);
    // The overlay must really be an overlay: most data stays in the base.
    assert!(std::fs::metadata(&top).unwrap().len() < 2 * MIB);

    // Opened by absolute path from the test's cwd, where no base.qcow2 exists.
    let (dev, chain) = open(&top);
    assert_eq!(chain, vec![sub.join("base.qcow2").display().to_string()]);
    spots.extend(edits.iter().map(|e| (e.0, e.1)));
    compare_all(&*dev, &top_raw, &spots);

    // And through open_image with a relative top path from a third folder. Only this test
    // changes the cwd, and every other test here uses absolute paths.
    let elsewhere = tempfile::tempdir().unwrap();
    assert!(
        d.path().parent() == elsewhere.path().parent(),
        "tempdirs share a parent"
    );
    let orig = std::env::current_dir().unwrap();
    std::env::set_current_dir(elsewhere.path()).unwrap();
    let rel = PathBuf::from("..")
        .join(d.path().file_name().unwrap())
        .join("vm/overlay.qcow2");
    let (dev, info) = open_image(&rel).unwrap();
    assert_eq!(info.backing_chain.len(), 1);
    compare_range(
        &*dev,
        &File::open(&top_raw).unwrap(),
        12 * MIB - 1000,
        12 * MIB + 400_000,
    );
    std::env::set_current_dir(orig).unwrap();
}

/// raw base <- mid.qcow2 (v2) <- top.qcow2, each overlay holding only its own writes.
#[test]
fn raw_backing_and_three_level_chain() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("base.raw");
    let spots = make_raw(&base, 32 * MIB, 4);
    let want = d.path().join("want.raw");
    std::fs::copy(&base, &want).unwrap();
    qemu_img(
        &[
            "create",
            "-f",
            "qcow2",
            "-o",
            "compat=0.10",
            "-b",
            "base.raw",
            "-F",
            "raw",
            "mid.qcow2",
        ],
        Some(d.path()),
    );
    let mid = d.path().join("mid.qcow2");
    edit(&mid, &want, &[(5 * MIB + 1, 100_000, 0x77), (511, 2, 0x99)]);
    let (dev, chain) = open(&mid);
    assert_eq!(chain, vec![base.display().to_string()]);
    compare_all(&*dev, &want, &spots);
    qemu_img(
        &[
            "create",
            "-f",
            "qcow2",
            "-b",
            "mid.qcow2",
            "-F",
            "qcow2",
            "top.qcow2",
        ],
        Some(d.path()),
    );
    let top = d.path().join("top.qcow2");
    edit(
        &top,
        &want,
        &[(5 * MIB + 50_000, 70_000, 0x42), (32 * MIB - 1, 1, 0x24)],
    );
    let (dev, chain) = open(&top);
    assert_eq!(
        chain,
        vec![mid.display().to_string(), base.display().to_string()]
    );
    compare_all(
        &*dev,
        &want,
        &[(5 * MIB, 130_000), (0, 4096), (32 * MIB - 4096, 4096)],
    );
}

/// An overlay bigger than its backing file reads zeros past the backing file's end.
#[test]
fn overlay_larger_than_backing() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("small.raw");
    make_raw(&base, 8 * MIB, 5);
    qemu_img(
        &[
            "create",
            "-f",
            "qcow2",
            "-b",
            "small.raw",
            "-F",
            "raw",
            "grown.qcow2",
            "20M",
        ],
        Some(d.path()),
    );
    let (dev, _) = open(&d.path().join("grown.qcow2"));
    assert_eq!(dev.size(), 20 * MIB);
    let expect = d.path().join("expect.raw");
    std::fs::copy(&base, &expect).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&expect)
        .unwrap()
        .set_len(20 * MIB)
        .unwrap();
    compare_all(&*dev, &expect, &[(8 * MIB - 10, 20)]);
}

#[test]
fn dirty_bit_is_readable() {
    let d = tempfile::tempdir().unwrap();
    let raw = d.path().join("r.raw");
    let spots = make_raw(&raw, 16 * MIB, 6);
    let img = d.path().join("dirty.qcow2");
    qemu_img(
        &["convert", "-f", "raw", "-O", "qcow2", p(&raw), p(&img)],
        None,
    );
    patch(&img, 79, &[1]); // incompatible_features bit 0 (lazy refcounts left dirty)
    let (dev, _) = open(&img);
    compare_all(&*dev, &raw, &spots);
}

#[test]
fn reads_are_thread_safe() {
    let d = tempfile::tempdir().unwrap();
    let raw = d.path().join("r.raw");
    make_raw(&raw, 48 * MIB, 9);
    let img = d.path().join("c.qcow2");
    qemu_img(
        &[
            "convert",
            "-c",
            "-f",
            "raw",
            "-O",
            "qcow2",
            p(&raw),
            p(&img),
        ],
        None,
    );
    let (dev, _) = open(&img);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let dev = dev.clone();
            let raw = &raw;
            s.spawn(move || {
                let f = File::open(raw).unwrap();
                // Interleaved stripes so threads contend for the same L2 slices.
                let mut off = t * 777_777;
                while off + 300_000 < 48 * MIB {
                    compare_range(&*dev, &f, off, off + 300_000);
                    off += 4 * 777_777;
                }
            });
        }
    });
}

// ---- bad input ----

fn patch(path: &Path, at: u64, bytes: &[u8]) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .write_all_at(bytes, at)
        .unwrap();
}

fn small_image(dir: &Path, name: &str) -> PathBuf {
    let raw = dir.join(format!("{name}.raw"));
    make_raw(&raw, 16 * MIB, 11);
    let img = dir.join(name);
    qemu_img(
        &["convert", "-f", "raw", "-O", "qcow2", p(&raw), p(&img)],
        None,
    );
    img
}

fn open_err(path: &Path) -> ImageError {
    match Qcow2Image::open(path, &Default::default()) {
        Ok(_) => panic!("{} opened but should be refused", path.display()),
        Err(e) => e,
    }
}

#[test]
fn truncated_images_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let img = small_image(d.path(), "t.qcow2");
    let len = std::fs::metadata(&img).unwrap().len();
    let full = std::fs::read(&img).unwrap();
    let l1 = u64::from_be_bytes(full[40..48].try_into().unwrap());
    // Header cut, L1 table cut, then everything after the L1 table (L2 tables) cut.
    for cut in [50u64, 100, 4096, l1 + 8, l1 + 65_536] {
        let t = d.path().join(format!("cut{cut}.qcow2"));
        std::fs::write(&t, &full[..cut as usize]).unwrap();
        let e = open_err(&t);
        assert!(matches!(e, ImageError::Corrupt { .. }), "cut at {cut}: {e}");
        assert!(
            e.to_string().contains(&t.display().to_string()),
            "error names the file: {e}"
        );
    }
    // Data clusters cut off: open may work, reading the lost data must fail.
    let t = d.path().join("cutdata.qcow2");
    std::fs::write(&t, &full[..(len - 4 * 65_536) as usize]).unwrap();
    // (a 16 MiB image has its only L2 table near the start, so the metadata is intact)
    let (dev, _) = open(&t);
    let mut buf = vec![0u8; 1 << 20];
    let mut failed = false;
    let mut off = 0;
    while off < dev.size() {
        if let Err(e) = dev.read_at(&mut buf, off) {
            assert!(
                matches!(e, ImageError::Corrupt { .. }) && e.to_string().contains("past the end"),
                "{e}"
            );
            failed = true;
        }
        off += buf.len() as u64;
    }
    assert!(failed, "reading data past EOF did not fail");
}

#[test]
fn empty_and_garbage_files() {
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("empty.qcow2");
    File::create(&empty).unwrap();
    assert!(matches!(open_err(&empty), ImageError::Empty { .. }));
    for (i, len) in [4usize, 80, 4096, 300_000].into_iter().enumerate() {
        let g = d.path().join(format!("garbage{i}.qcow2"));
        let mut bytes = pattern(50 + i as u64, len);
        bytes[..4].copy_from_slice(b"QFI\xfb");
        std::fs::write(&g, &bytes).unwrap();
        open_err(&g);
    }
    let missing = d.path().join("nope.qcow2");
    assert!(matches!(open_err(&missing), ImageError::Io { .. }));
}

/// Random corruption of the header and metadata of a real image: never a panic.
#[test]
fn mutated_headers_never_panic() {
    let d = tempfile::tempdir().unwrap();
    let plain = small_image(d.path(), "m.qcow2");
    let raw = d.path().join("m.qcow2.raw");
    let packed = d.path().join("mc.qcow2");
    qemu_img(
        &[
            "convert",
            "-c",
            "-O",
            "qcow2",
            "-o",
            "compat=0.10",
            p(&raw),
            p(&packed),
        ],
        None,
    );
    for (k, img) in [plain, packed].iter().enumerate() {
        let full = std::fs::read(img).unwrap();
        let be = |at: usize| u64::from_be_bytes(full[at..at + 8].try_into().unwrap());
        let l1 = be(40) as usize;
        let l2 = (be(l1) & 0x00ff_ffff_ffff_fe00) as usize;
        assert!(l2 > 0, "image has an L2 table");
        let noise = pattern(99 + k as u64, 4 * 400);
        for round in 0..400usize {
            let mut b = full.clone();
            let r = &noise[round * 4..round * 4 + 4];
            // Mostly header fields, sometimes the L1 table or the L2 table.
            let at = match r[0] % 4 {
                0 | 1 => (r[1] as usize) % 112,
                2 => l1 + (r[1] as usize) % 16,
                _ => l2 + (r[1] as usize) * 64 + (r[2] as usize % 8),
            }
            .min(b.len() - 1);
            b[at] ^= r[2] | 1;
            if r[3] & 1 == 1 {
                let at2 = (at + 1 + r[3] as usize % 16).min(b.len() - 1);
                b[at2] = r[3];
            }
            let t = d.path().join("mut.qcow2");
            std::fs::write(&t, &b).unwrap();
            if let Ok((dev, _)) = Qcow2Image::open(&t, &Default::default()) {
                let mut buf = vec![0u8; 70_000];
                for off in [0u64, 511, 3 * MIB, 8 * MIB - 1, 16 * MIB - 70_000] {
                    if off + buf.len() as u64 <= dev.size() {
                        let _ = dev.read_at(&mut buf, off);
                    }
                }
            }
        }
    }
}

#[test]
fn encrypted_images_are_refused() {
    let d = tempfile::tempdir().unwrap();
    // Real LUKS qcow2 made by qemu-img.
    let luks = d.path().join("luks.qcow2");
    qemu_img(
        &[
            "create",
            "-f",
            "qcow2",
            "--object",
            "secret,id=sec0,data=hunter2",
            "-o",
            "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10",
            p(&luks),
            "4M",
        ],
        None,
    );
    let e = open_err(&luks);
    assert!(
        matches!(e, ImageError::Unsupported { .. }) && e.to_string().contains("encrypted"),
        "{e}"
    );
    // Old AES: hand-patched crypt_method in a copy.
    let aes = small_image(d.path(), "aes.qcow2");
    patch(&aes, 32, &1u32.to_be_bytes());
    let e = open_err(&aes);
    assert!(e.to_string().contains("AES"), "{e}");
}

#[test]
fn data_file_extended_l2_and_unknown_features_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let df = d.path().join("df.qcow2");
    qemu_img(
        &[
            "create",
            "-f",
            "qcow2",
            "-o",
            &format!("data_file={}", p(&d.path().join("df.data"))),
            p(&df),
            "4M",
        ],
        None,
    );
    let e = open_err(&df);
    assert!(e.to_string().contains("external data file"), "{e}");
    let xl2 = d.path().join("xl2.qcow2");
    qemu_img(
        &[
            "create",
            "-f",
            "qcow2",
            "-o",
            "extended_l2=on",
            p(&xl2),
            "4M",
        ],
        None,
    );
    assert!(open_err(&xl2).to_string().contains("extended L2"));
    let unk = small_image(d.path(), "unk.qcow2");
    patch(&unk, 79, &[1 << 6]);
    let e = open_err(&unk);
    assert!(
        e.to_string()
            .contains("unknown incompatible feature bit(s) 6"),
        "{e}"
    );
}

#[test]
fn missing_backing_names_the_overlay() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("gone.raw");
    make_raw(&base, 4 * MIB, 12);
    qemu_img(
        &[
            "create", "-f", "qcow2", "-b", "gone.raw", "-F", "raw", "ov.qcow2",
        ],
        Some(d.path()),
    );
    std::fs::remove_file(&base).unwrap();
    let ov = d.path().join("ov.qcow2");
    let e = open_err(&ov);
    let msg = e.to_string();
    assert!(
        msg.contains(&ov.display().to_string()) && msg.contains("gone.raw"),
        "{msg}"
    );
}

#[test]
fn backing_loops_and_deep_chains_are_refused() {
    let d = tempfile::tempdir().unwrap();
    qemu_img(&["create", "-f", "qcow2", "b.qcow2", "4M"], Some(d.path()));
    qemu_img(
        &[
            "create", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", "a.qcow2",
        ],
        Some(d.path()),
    );
    qemu_img(
        &["rebase", "-u", "-b", "a.qcow2", "-F", "qcow2", "b.qcow2"],
        Some(d.path()),
    );
    let e = open_err(&d.path().join("a.qcow2"));
    assert!(e.to_string().contains("loops"), "{e}");

    // l0 <- l1 <- ... : the top of l16 has 16 backing files (accepted), l17 has 17 (refused).
    qemu_img(&["create", "-f", "qcow2", "l0.qcow2", "4M"], Some(d.path()));
    for i in 1..=17 {
        let prev = format!("l{}.qcow2", i - 1);
        let cur = format!("l{i}.qcow2");
        qemu_img(
            &[
                "create", "-u", "-f", "qcow2", "-b", &prev, "-F", "qcow2", &cur, "4M",
            ],
            Some(d.path()),
        );
    }
    let (_, chain) = open(&d.path().join("l16.qcow2"));
    assert_eq!(chain.len(), 16);
    let e = open_err(&d.path().join("l17.qcow2"));
    assert!(e.to_string().contains("deeper than 16"), "{e}");
}

/// The source is never modified: byte-identical and same mtime after opening and reading.
#[test]
fn source_is_not_modified() {
    let d = tempfile::tempdir().unwrap();
    let img = small_image(d.path(), "ro.qcow2");
    patch(&img, 79, &[1]); // dirty: a writer would try to repair refcounts
    let before = std::fs::read(&img).unwrap();
    let mtime = std::fs::metadata(&img).unwrap().modified().unwrap();
    let (dev, _) = open(&img);
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < dev.size() {
        dev.read_at(&mut buf, off).unwrap();
        off += buf.len() as u64;
    }
    drop(dev);
    assert_eq!(std::fs::read(&img).unwrap(), before);
    assert_eq!(std::fs::metadata(&img).unwrap().modified().unwrap(), mtime);
}
