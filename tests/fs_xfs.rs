//! XFS reader against real `mkfs.xfs -p PROTOFILE` images (never mounted).
//!
//! xfsprogs 6.1 copies each proto file into one contiguous extent and writes holes as data, so
//! holes, unwritten extents and a file extent B+tree are made afterwards: the extent list is
//! edited with `xfs_db -x` (which keeps CRCs right) and, for the bmbt, a leaf block is written
//! here and checked independently with `xfs_db bmap`. The ~50000-entry directory gets a real
//! bmbt (btree-format directory) from mkfs itself.
mod common;
use revirt::error::{FsError, ImageError};
use revirt::fs::xfs::Xfs;
use revirt::fs::{FileType, GuestFs, Vfs};
use revirt::image::raw::RawImage;
use revirt::image::{BlockDevice, Dev};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

#[derive(Clone)]
enum Node {
    File(Vec<u8>),
    Dir(BTreeMap<String, Node>),
    Link(String),
    Fifo,
}

fn dir(entries: Vec<(&str, Node)>) -> Node {
    Node::Dir(
        entries
            .into_iter()
            .map(|(n, e)| (n.to_string(), e))
            .collect(),
    )
}

fn os_release() -> Vec<u8> {
    std::fs::read("/etc/os-release").unwrap_or_else(|_| b"ID=debian\nVERSION_ID=\"12\"\n".to_vec())
}

/// Files whose bytes differ from the proto source after the xfs_db edits get these contents.
const BIG_LEN: usize = (6 << 20) + 123;
const FRAG_BLOCKS: usize = 64;

fn big_host() -> Vec<u8> {
    // Data, a 4 MiB gap, data: the gap becomes a real hole in the image (see punch_hole).
    let mut v = vec![0u8; BIG_LEN];
    for (i, b) in v.iter_mut().enumerate() {
        if !(1 << 20..5 << 20).contains(&i) {
            *b = (i % 251) as u8 + 1;
        }
    }
    v
}

fn frag_host() -> Vec<u8> {
    (0..FRAG_BLOCKS * 4096)
        .map(|i| (i / 4096) as u8 + 1)
        .collect()
}

fn long_target(len: usize) -> String {
    let mut s = String::from("/");
    let mut i = 0;
    while s.len() < len {
        s.push_str(&format!("segment{i:03}/"));
        i += 1;
    }
    s.truncate(len);
    s
}

fn names(prefix: &str, n: usize, node: impl Fn(usize) -> Node) -> Node {
    Node::Dir(
        (0..n)
            .map(|i| (format!("{prefix}{i:05}"), node(i)))
            .collect(),
    )
}

/// The tree every image holds; `huge` adds the ~50000-entry directory.
fn tree(huge: bool, long_link: usize) -> Node {
    let mut root = match dir(vec![
        (
            "etc",
            dir(vec![
                ("os-release", Node::File(os_release())),
                ("hostname", Node::File(b"guest\n".to_vec())),
                ("empty", Node::File(vec![])),
            ]),
        ),
        (
            "a",
            dir(vec![(
                "b",
                dir(vec![(
                    "c",
                    dir(vec![(
                        "d",
                        dir(vec![("deep.txt", Node::File(b"deep\n".to_vec()))]),
                    )]),
                )]),
            )]),
        ),
        (
            "d5",
            names("e", 5, |i| Node::File(format!("five {i}\n").into_bytes())),
        ),
        ("d100", names("f", 100, |_| Node::File(vec![]))),
        (
            "d2000",
            names(
                "a_rather_long_file_name_to_fill_blocks_",
                2000,
                |i| match i % 100 {
                    7 => Node::Link(format!("target{i}")),
                    9 => dir(vec![]),
                    _ => Node::File(vec![]),
                },
            ),
        ),
        ("big.bin", Node::File(big_host())),
        ("frag.bin", Node::File(frag_host())),
        ("spare.bin", Node::File(vec![0x55; 4096])),
        ("ln_short", Node::Link("etc/os-release".into())),
        ("ln_long", Node::Link(long_target(long_link))),
        ("fifo", Node::Fifo),
    ]) {
        Node::Dir(m) => m,
        _ => unreachable!(),
    };
    if huge {
        root.insert("d50k".into(), names("n", 50_000, |_| Node::File(vec![])));
    }
    Node::Dir(root)
}

/// Writes the protofile for `node` (a directory) and the host files it copies from.
/// Host files are shared between identical contents (the big directories hold empty files).
fn proto(node: &Node, content: &Path, out: &mut String, files: &mut BTreeMap<Vec<u8>, PathBuf>) {
    let Node::Dir(m) = node else { unreachable!() };
    for (name, n) in m {
        match n {
            Node::File(data) => {
                let k = files.len();
                let host = files.entry(data.clone()).or_insert_with(|| {
                    let host = content.join(format!("c{k}"));
                    std::fs::write(&host, data).unwrap();
                    host
                });
                out.push_str(&format!("{name} ---644 0 0 {}\n", host.display()));
            }
            Node::Dir(_) => {
                out.push_str(&format!("{name} d--755 0 0\n"));
                proto(n, content, out, files);
                out.push_str("$\n");
            }
            Node::Link(t) => out.push_str(&format!("{name} l--777 0 0 {t}\n")),
            Node::Fifo => out.push_str(&format!("{name} p--644 0 0\n")),
        }
    }
}

fn xfs_db(img: &Path, write: bool, cmds: &[String]) -> String {
    // `timeout`: xfs_db can spin on a damaged tree; a test must not hang on it.
    let mut c = Command::new("timeout");
    c.arg("60")
        .arg("xfs_db")
        .arg(if write { "-x" } else { "-r" });
    for x in cmds {
        c.arg("-c").arg(x);
    }
    common::run_stdout(c.arg(img))
}

fn ino_of(img: &Path, path: &str) -> u64 {
    let out = xfs_db(img, false, &[format!("path {path}"), "inode".into()]);
    out.trim()
        .rsplit(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("xfs_db inode: {out}"))
}

/// (startoff, startblock, blockcount, unwritten) from `xfs_db bmap`.
fn bmap(img: &Path, path: &str) -> Vec<(u64, u64, u64, bool)> {
    let out = xfs_db(img, false, &[format!("path {path}"), "bmap".into()]);
    out.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            // data offset O startblock B (a/b) count C flag F
            (w.len() >= 10 && w[0] == "data").then(|| {
                (
                    w[2].parse().unwrap(),
                    w[4].parse().unwrap(),
                    w[7].parse().unwrap(),
                    w[9] == "1",
                )
            })
        })
        .collect()
}

fn dbfield(img: &Path, path: &str, field: &str) -> String {
    let out = xfs_db(img, false, &[format!("path {path}"), format!("p {field}")]);
    out.split('=').nth(1).unwrap_or("").trim().to_string()
}

struct Image {
    path: PathBuf,
    spec: Node,
    /// Expected contents of files changed by xfs_db edits.
    edited: BTreeMap<String, Vec<u8>>,
}

fn build(name: &str, mkfs_args: &[&str], huge: bool, long_link: usize, edit: bool) -> Image {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fs_xfs");
    let work = base.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let spec = tree(huge, long_link);
    let mut text = String::from("revirt-test\n0 0\nd--755 0 0\n");
    proto(&spec, &work, &mut text, &mut BTreeMap::new());
    text.push_str("$\n");
    std::fs::write(work.join("proto"), text).unwrap();
    let t0 = std::time::Instant::now();
    let img = work.join("img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(512 << 20)
        .unwrap();
    common::run_stdout(
        Command::new("mkfs.xfs")
            .args(["-q", "-f"])
            .args(mkfs_args)
            .arg("-p")
            .arg(work.join("proto"))
            .arg(&img),
    );
    let mut edited = BTreeMap::new();
    if edit {
        punch_hole(&img);
        edited.insert("/big.bin".into(), big_host());
        let (frag, leaf) = make_bmbt(&img);
        edited.insert("/frag.bin".into(), frag);
        edited.insert("/spare.bin".into(), leaf);
        add_symlink_header(&img, "/ln_long");
    }
    // One image per name in a fixed place, replaced atomically (concurrent runs stay safe).
    let path = base.join(format!("{name}.img"));
    std::fs::rename(&img, &path).unwrap();
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("built {name} in {:?}", t0.elapsed());
    Image { path, spec, edited }
}

/// Turns big.bin's single extent into data / 4 MiB hole / data, as a sparse copy would be.
fn punch_hole(img: &Path) {
    let m = bmap(img, "/big.bin");
    assert_eq!(m.len(), 1, "mkfs made one extent: {m:?}");
    let (_, start, count, _) = m[0];
    assert_eq!(count, BIG_LEN.div_ceil(4096) as u64);
    let ino = ino_of(img, "/big.bin");
    xfs_db(
        img,
        true,
        &[
            format!("inode {ino}"),
            "write core.nextents 2".into(),
            "write u3.bmx[0].blockcount 256".into(),
            "write u3.bmx[1].startoff 1280".into(),
            format!("write u3.bmx[1].startblock {}", start + 1280),
            format!("write u3.bmx[1].blockcount {}", count - 1280),
        ],
    );
    assert_eq!(
        bmap(img, "/big.bin"),
        vec![
            (0, start, 256, false),
            (1280, start + 1280, count - 1280, false)
        ]
    );
}

fn byte_at(img: &Path, what: &str, n: u64) -> u64 {
    let out = xfs_db(img, false, &[format!("convert {what} {n} byte")]);
    out.split('(')
        .nth(1)
        .and_then(|s| s.trim_end().trim_end_matches(')').parse().ok())
        .unwrap()
}

fn sb_uuid(img: &Path) -> [u8; 16] {
    use std::os::unix::fs::FileExt;
    let mut uuid = [0u8; 16];
    std::fs::File::open(img)
        .unwrap()
        .read_exact_at(&mut uuid, 32)
        .unwrap();
    uuid
}

fn write_at(img: &Path, at: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let fh = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    fh.write_all_at(data, at).unwrap();
}

/// xfsprogs 6.1 `mkfs -p` writes v5 remote symlink blocks without their header (xfs_repair
/// flags them); give the block the header the kernel writes: XSLM, offset, bytes, crc, uuid,
/// owner, blkno, lsn, then the target.
fn add_symlink_header(img: &Path, path: &str) {
    let m = bmap(img, path);
    assert_eq!(m.len(), 1);
    let at = byte_at(img, "fsb", m[0].1);
    let ino = ino_of(img, path);
    let mut target = vec![0u8; dbfield(img, path, "core.size").parse().unwrap()];
    {
        use std::os::unix::fs::FileExt;
        std::fs::File::open(img)
            .unwrap()
            .read_exact_at(&mut target, at)
            .unwrap();
    }
    let mut blk = vec![0u8; 56];
    blk[0..4].copy_from_slice(b"XSLM");
    blk[8..12].copy_from_slice(&(target.len() as u32).to_be_bytes());
    blk[16..32].copy_from_slice(&sb_uuid(img));
    blk[32..40].copy_from_slice(&ino.to_be_bytes());
    blk[40..48].copy_from_slice(&(at / 512).to_be_bytes());
    blk.extend_from_slice(&target);
    write_at(img, at, &blk);
}

fn bmbt_rec(off: u64, start: u64, len: u64, unwritten: bool) -> [u8; 16] {
    let l0 = (u64::from(unwritten) << 63) | (off << 9) | (start >> 43);
    let l1 = ((start & ((1 << 43) - 1)) << 21) | len;
    let mut r = [0u8; 16];
    r[..8].copy_from_slice(&l0.to_be_bytes());
    r[8..].copy_from_slice(&l1.to_be_bytes());
    r
}

/// Gives frag.bin a bmbt: inode root (level 1) -> one leaf in spare.bin's block holding 30
/// two-block extents in reverse physical order, with a hole and an unwritten extent. Returns
/// the file's expected contents and the leaf block (spare.bin's new contents).
fn make_bmbt(img: &Path) -> (Vec<u8>, Vec<u8>) {
    let m = bmap(img, "/frag.bin");
    assert_eq!(m.len(), 1);
    let data = m[0].1;
    let leaf = bmap(img, "/spare.bin")[0].1;
    let ino = ino_of(img, "/frag.bin");
    let host = frag_host();
    let mut expect = vec![0u8; host.len()];
    let mut recs = vec![];
    for i in 0..FRAG_BLOCKS as u64 / 2 {
        if i == 5 {
            continue; // hole: blocks 10-11
        }
        let phys = FRAG_BLOCKS as u64 / 2 - 1 - i; // pair index on disk
        let unwritten = i == 20;
        recs.push((2 * i, data + 2 * phys, 2, unwritten));
        if !unwritten {
            let (lo, po) = (2 * i as usize * 4096, 2 * phys as usize * 4096);
            expect[lo..lo + 8192].copy_from_slice(&host[po..po + 8192]);
        }
    }
    // v5 long-format btree block header (72 bytes), then records.
    let leaf_at = byte_at(img, "fsb", leaf);
    let mut blk = vec![0u8; 4096];
    blk[0..4].copy_from_slice(b"BMA3");
    blk[6..8].copy_from_slice(&(recs.len() as u16).to_be_bytes());
    blk[8..24].fill(0xff); // no siblings
    blk[24..32].copy_from_slice(&(leaf_at / 512).to_be_bytes());
    blk[48..64].copy_from_slice(&sb_uuid(img));
    blk[64..72].copy_from_slice(&ino.to_be_bytes());
    for (k, r) in recs.iter().enumerate() {
        blk[72 + 16 * k..88 + 16 * k].copy_from_slice(&bmbt_rec(r.0, r.1, r.2, r.3));
    }
    write_at(img, leaf_at, &blk);
    xfs_db(
        img,
        true,
        &[
            format!("inode {ino}"),
            "write core.format 3".into(),
            format!("write core.nextents {}", recs.len()),
            "write u3.bmbt.level 1".into(),
            "write u3.bmbt.numrecs 1".into(),
            "write u3.bmbt.keys[1].startoff 0".into(),
            format!("write u3.bmbt.ptrs[1] {leaf}"),
        ],
    );
    // xfs_db decodes our tree independently.
    assert_eq!(bmap(img, "/frag.bin"), recs);
    (expect, blk)
}

fn open(img: &Image) -> Xfs {
    let dev: Dev = Arc::new(RawImage::open(&img.path).unwrap());
    Xfs::open(dev).unwrap()
}

fn v5() -> &'static Image {
    static I: OnceLock<Image> = OnceLock::new();
    I.get_or_init(|| build("v5", &[], true, 600, true))
}
fn v4() -> &'static Image {
    static I: OnceLock<Image> = OnceLock::new();
    I.get_or_init(|| build("v4", &["-m", "crc=0"], false, 300, false))
}
fn v4_noftype() -> &'static Image {
    static I: OnceLock<Image> = OnceLock::new();
    I.get_or_init(|| {
        build(
            "v4-noftype",
            &["-m", "crc=0", "-n", "ftype=0"],
            false,
            1000,
            false,
        )
    })
}
fn v5_1k() -> &'static Image {
    // 1 KiB blocks with 4 KiB directory blocks (dirblklog 2); a 1000-byte symlink spans two
    // remote blocks (each loses 56 bytes to its header).
    static I: OnceLock<Image> = OnceLock::new();
    I.get_or_init(|| {
        build(
            "v5-1k",
            &["-b", "size=1024", "-n", "size=4096"],
            false,
            1000,
            false,
        )
    })
}

/// Checks every spec entry under `path` against the filesystem; big directories are sampled
/// for per-entry stats (each lookup scans the directory) but always compared by listing.
fn check(fs: &Xfs, img: &Image, path: &str, node: &Node) {
    let meta = fs
        .stat(path)
        .unwrap()
        .unwrap_or_else(|| panic!("{path} missing"));
    match node {
        Node::File(data) => {
            let want = img.edited.get(path).unwrap_or(data);
            assert_eq!(meta.ftype, FileType::File, "{path}");
            assert_eq!(meta.size, want.len() as u64, "{path}");
            assert_eq!(meta.mode, 0o100644, "{path}");
            let got = fs.read_file(path, u64::MAX).unwrap();
            assert!(got == *want, "{path}: contents differ");
        }
        Node::Link(t) => {
            assert_eq!(meta.ftype, FileType::Symlink, "{path}");
            assert_eq!(fs.read_link(path).unwrap(), *t, "{path}");
        }
        Node::Fifo => assert_eq!(meta.ftype, FileType::Other, "{path}"),
        Node::Dir(m) => {
            assert_eq!(meta.ftype, FileType::Dir, "{path}");
            let mut got: Vec<(String, FileType)> = fs
                .read_dir(path)
                .unwrap()
                .into_iter()
                .map(|e| (e.name, e.ftype))
                .collect();
            got.sort_by(|a, b| a.0.cmp(&b.0));
            let want: Vec<(String, FileType)> = m
                .iter()
                .map(|(n, e)| {
                    let t = match e {
                        Node::File(_) => FileType::File,
                        Node::Dir(_) => FileType::Dir,
                        Node::Link(_) => FileType::Symlink,
                        Node::Fifo => FileType::Other,
                    };
                    (n.clone(), t)
                })
                .collect();
            assert!(
                got == want,
                "{path}: listing differs ({} vs {} entries)",
                got.len(),
                want.len()
            );
            let step = if m.len() > 200 { m.len() / 37 } else { 1 };
            for (name, child) in m.iter().step_by(step).chain(m.iter().last()) {
                let p = if path == "/" {
                    format!("/{name}")
                } else {
                    format!("{path}/{name}")
                };
                check(fs, img, &p, child);
            }
        }
    }
}

fn format_of(img: &Path, path: &str) -> (String, u64) {
    let f = dbfield(img, path, "core.format");
    (f, dbfield(img, path, "core.size").parse().unwrap())
}

#[test]
fn v5_whole_tree_matches() {
    let img = v5();
    let fs = open(img);
    assert_eq!(fs.version(), "v5");
    // The directories really are in the forms this test claims to cover.
    assert_eq!(format_of(&img.path, "/d5").0, "1 (local)");
    assert_eq!(
        format_of(&img.path, "/d100"),
        ("2 (extents)".into(), 4096),
        "single-block dir"
    );
    let (f, size) = format_of(&img.path, "/d2000");
    assert!(
        f == "2 (extents)" && size > 4 * 4096,
        "node dir: {f} {size}"
    );
    assert_eq!(format_of(&img.path, "/d50k").0, "3 (btree)");
    assert_eq!(
        format_of(&img.path, "/ln_long").0,
        "2 (extents)",
        "remote symlink"
    );
    assert_eq!(format_of(&img.path, "/ln_short").0, "1 (local)");
    check(&fs, img, "/", &img.spec);
}

#[test]
fn v4_whole_tree_matches() {
    let img = v4();
    let fs = open(img);
    assert_eq!(fs.version(), "v4");
    assert_eq!(dbfield(&img.path, "/", "core.version"), "2");
    check(&fs, img, "/", &img.spec);
}

#[test]
fn v4_without_ftype_reads_types_from_inodes() {
    let img = v4_noftype();
    assert!(xfs_db(&img.path, false, &["version".into()]).contains("V4"));
    assert!(!xfs_db(&img.path, false, &["version".into()]).contains("FTYPE"));
    check(&open(img), img, "/", &img.spec);
}

#[test]
fn v5_small_blocks_and_multiblock_directory_blocks() {
    let img = v5_1k();
    let sb = xfs_db(
        &img.path,
        false,
        &["sb 0".into(), "p dirblklog blocksize".into()],
    );
    assert!(
        sb.contains("dirblklog = 2") && sb.contains("blocksize = 1024"),
        "{sb}"
    );
    check(&open(img), img, "/", &img.spec);
}

#[test]
fn hole_and_bmbt_file_contents() {
    let img = v5();
    let fs = open(img);
    let big = fs.read_file("/big.bin", u64::MAX).unwrap();
    assert_eq!(big.len(), BIG_LEN);
    assert!(
        big[1 << 20..5 << 20].iter().all(|&b| b == 0),
        "hole reads as zeros"
    );
    assert_eq!(big[(5 << 20) + 7], ((((5 << 20) + 7) % 251) + 1) as u8);
    let frag = fs.read_file("/frag.bin", u64::MAX).unwrap();
    assert_eq!(
        frag[0],
        FRAG_BLOCKS as u8 - 1,
        "first extent maps the last pair on disk"
    );
    assert!(frag[10 * 4096..12 * 4096].iter().all(|&b| b == 0), "hole");
    assert!(
        frag[40 * 4096..42 * 4096].iter().all(|&b| b == 0),
        "unwritten extent"
    );
    assert!(matches!(
        fs.read_file("/big.bin", 1000),
        Err(FsError::TooLarge { .. })
    ));
}

#[test]
fn stat_and_errors() {
    let fs = open(v5());
    assert!(fs.stat("/nope").unwrap().is_none());
    assert!(fs.stat("/etc/nope").unwrap().is_none());
    assert!(fs.stat("/d50k/n49999").unwrap().is_some());
    assert!(fs.stat("/d50k/n50000").unwrap().is_none());
    assert_eq!(fs.stat("/").unwrap().unwrap().ftype, FileType::Dir);
    assert_eq!(
        fs.stat("/ln_short").unwrap().unwrap().ftype,
        FileType::Symlink,
        "lstat"
    );
    assert!(matches!(
        fs.stat("/etc/hostname/x"),
        Err(FsError::NotADirectory { .. })
    ));
    assert!(matches!(
        fs.read_file("/etc", 1 << 20),
        Err(FsError::IsADirectory { .. })
    ));
    assert!(matches!(
        fs.read_file("/nope", 1 << 20),
        Err(FsError::NotFound { .. })
    ));
    assert!(matches!(
        fs.read_dir("/etc/hostname"),
        Err(FsError::NotADirectory { .. })
    ));
    assert!(fs.read_link("/etc/hostname").is_err());
    assert_eq!(fs.read_file("/etc/empty", 10).unwrap(), b"");
}

#[test]
fn os_release_through_vfs_symlink() {
    for img in [v5(), v4()] {
        let vfs = Vfs::new(Rc::new(open(img)));
        assert_eq!(vfs.read_file("/ln_short").unwrap(), os_release());
        assert_eq!(vfs.read_file("/etc/os-release").unwrap(), os_release());
    }
}

/// Bytes to overwrite at a device offset.
type Patch = (u64, Vec<u8>);

/// Serves an image with byte patches and an optional cut-off (reads past it fail).
struct Patched {
    inner: Dev,
    patches: Vec<Patch>,
    readable: u64,
}

impl BlockDevice for Patched {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ImageError> {
        if offset + buf.len() as u64 > self.readable {
            return Err(ImageError::OutOfRange {
                path: "patched".into(),
                offset,
                len: buf.len(),
                size: self.readable,
            });
        }
        self.inner.read_at(buf, offset)?;
        for (at, bytes) in &self.patches {
            for (i, b) in bytes.iter().enumerate() {
                let p = at + i as u64;
                if p >= offset && p < offset + buf.len() as u64 {
                    buf[(p - offset) as usize] = *b;
                }
            }
        }
        Ok(())
    }
    fn name(&self) -> String {
        "patched".into()
    }
}

fn patched(img: &Image, patches: Vec<Patch>, readable: u64) -> Dev {
    let inner: Dev = Arc::new(RawImage::open(&img.path).unwrap());
    Arc::new(Patched {
        inner,
        patches,
        readable,
    })
}

#[test]
fn bad_superblocks_are_corrupt() {
    let img = v4();
    let cases: Vec<(&str, Vec<Patch>)> = vec![
        ("zeroed magic", vec![(0, vec![0; 4])]),
        ("block size 3000", vec![(4, 3000u32.to_be_bytes().to_vec())]),
        (
            "block size 1 GiB",
            vec![(4, (1u32 << 30).to_be_bytes().to_vec()), (120, vec![30])],
        ),
        ("agblklog", vec![(124, vec![40])]),
        ("inode size", vec![(104, 100u16.to_be_bytes().to_vec())]),
        ("agcount 0", vec![(88, vec![0; 4])]),
        ("dblocks huge", vec![(8, u64::MAX.to_be_bytes().to_vec())]),
        ("root inode", vec![(56, u64::MAX.to_be_bytes().to_vec())]),
    ];
    for (what, p) in cases {
        let r = Xfs::open(patched(img, p, u64::MAX));
        assert!(
            matches!(r, Err(FsError::Corrupt { .. })),
            "{what}: {:?}",
            r.err()
        );
    }
    let r = Xfs::open(patched(
        img,
        vec![(216, vec![0x80, 0, 0, 0]), (100, vec![0xb4, 0xa5])],
        u64::MAX,
    ));
    assert!(
        r.is_err(),
        "version 5 with an unknown incompat bit (on a v4 image, so the geometry may also fail)"
    );
}

#[test]
fn truncated_image_is_an_error() {
    let img = v5();
    let cut = std::env::temp_dir().join(format!("revirt-xfs-cut-{}", std::process::id()));
    std::fs::copy(&img.path, &cut).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let r = Xfs::open(Arc::new(RawImage::open(&cut).unwrap()));
    std::fs::remove_file(&cut).unwrap();
    assert!(matches!(r, Err(FsError::Corrupt { .. })), "{:?}", r.err());
    // A device whose tail is unreadable (e.g. a short qcow2 backing file): errors, no panic.
    let big_at = byte_at(&img.path, "fsb", bmap(&img.path, "/big.bin")[0].1);
    let fs = Xfs::open(patched(img, vec![], big_at + (1 << 20))).unwrap();
    assert!(fs.read_file("/big.bin", u64::MAX).is_err());
    assert!(fs.read_dir("/d50k").is_err());
}

#[test]
fn corrupt_metadata_never_panics_or_hangs() {
    let img = v4();
    let clean = open(img);
    let root_ino = ino_of(&img.path, "/");
    let d2000 = ino_of(&img.path, "/d2000");
    assert!(clean.stat("/d2000").unwrap().is_some());
    // Inode byte offsets on this v4 image (256-byte inodes, 4 KiB blocks).
    let at = |ino: u64| byte_at(&img.path, "ino", ino);
    let root_at = at(root_ino);
    let bad_root = Xfs::open(patched(img, vec![(root_at, vec![0, 0])], u64::MAX)).unwrap();
    assert!(matches!(
        bad_root.stat("/etc"),
        Err(FsError::Corrupt { .. })
    ));
    // Pseudo-random byte smashing over the metadata around d2000's inode and its directory
    // blocks: every outcome is fine except a panic or a hang.
    let blocks: Vec<u64> = bmap(&img.path, "/d2000")
        .iter()
        .map(|e| e.1 * 4096)
        .collect();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let d2000_at = at(d2000);
    for round in 0..300 {
        let (base, span) = if round % 3 == 0 {
            (d2000_at, 256)
        } else {
            (blocks[(next() as usize) % blocks.len()], 4096)
        };
        let patches = (0..4)
            .map(|_| (base + next() % span, vec![next() as u8, next() as u8]))
            .collect();
        if let Ok(fs) = Xfs::open(patched(img, patches, u64::MAX)) {
            let _ = fs.read_dir("/d2000");
            let _ = fs.stat("/d2000/a_rather_long_file_name_to_fill_blocks_01999");
        }
    }
}
