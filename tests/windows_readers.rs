//! FAT, NTFS and registry hive readers against images and hives made by the real tools
//! (mkfs.vfat + mtools, mkntfs + ntfs-3g, hivexregedit), and detect_windows on a phony Windows
//! volume built by fixtures/images/windows-mini/build.sh (cached under target/test-fixtures/).
mod common;
use revirt::error::FsError;
use revirt::fs::fat::{Fat, FatKind};
use revirt::fs::ntfs::Ntfs;
use revirt::fs::{FileType, GuestFs, Vfs};
use revirt::image::raw::RawImage;
use revirt::image::Dev;
use revirt::inspect::windows::detect_windows;
use revirt::inspect::windows::hive::{Hive, Key, RegValue};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

fn dev(path: &Path) -> Dev {
    Arc::new(RawImage::open(path).unwrap())
}

/// The pattern build.sh writes into Data/big.bin (and the FAT tests into big files).
fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| ((i * 31 + (i >> 11)) & 0xff) as u8)
        .collect()
}

fn recipe_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/images/windows-mini")
}

fn fixture_cache() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let d = target.join("test-fixtures");
    std::fs::create_dir_all(&d).unwrap();
    d
}

static BUILD: Mutex<()> = Mutex::new(());

/// windows-mini.img, rebuilt only when a file of its recipe changes.
fn windows_mini() -> PathBuf {
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let mut files: Vec<PathBuf> = std::fs::read_dir(recipe_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut h = Sha256::new();
    for f in &files {
        h.update(f.file_name().unwrap().as_encoded_bytes());
        h.update(std::fs::read(f).unwrap());
    }
    let key = hex::encode(&h.finalize()[..8]);
    let img = fixture_cache().join(format!("windows-mini-{key}.img"));
    if !img.exists() {
        common::run(
            Command::new("bash")
                .arg(recipe_dir().join("build.sh"))
                .arg(&img),
        );
    }
    img
}

// ---------------------------------------------------------------- FAT

/// A FAT image of the given type holding an ESP-like tree, built with mkfs.vfat and mtools.
fn fat_image(bits: u32, dir: &Path) -> PathBuf {
    let img = dir.join(format!("fat{bits}.img"));
    // FAT12 must stay under 4085 clusters: 4 MiB in 2 KiB clusters.
    let (kib, spc) = match bits {
        12 => (4096, "4"),
        16 => (32 * 1024, "1"),
        _ => (64 * 1024, "1"),
    };
    common::run(
        Command::new("mkfs.vfat")
            .args([
                "-C",
                "-F",
                &bits.to_string(),
                "-S",
                "512",
                "-s",
                spc,
                "-n",
                "ESP",
            ])
            .arg(&img)
            .arg(kib.to_string()),
    );
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("boot"), pattern(100_000)).unwrap();
    std::fs::write(src.join("cfg"), "set root=hd0\n").unwrap();
    std::fs::write(src.join("hole"), vec![b'h'; 3000]).unwrap();
    std::fs::write(src.join("after"), b"after").unwrap();
    std::fs::write(src.join("frag"), pattern(20_000)).unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    let i = img.to_str().unwrap();
    let m = |args: &[&str]| {
        common::run(
            Command::new(args[0])
                .env("MTOOLS_SKIP_CHECK", "1")
                .args(["-i", i])
                .args(&args[1..]),
        );
    };
    let s = |n: &str| src.join(n).to_str().unwrap().to_string();
    m(&["mmd", "::/EFI", "::/EFI/BOOT", "::/EFI/debian", "::/many"]);
    m(&["mcopy", &s("boot"), "::/EFI/BOOT/BOOTX64.EFI"]);
    m(&["mcopy", &s("cfg"), "::/EFI/debian/grub.cfg"]);
    m(&["mcopy", &s("boot"), "::/EFI/debian/grubx64.efi"]);
    m(&[
        "mcopy",
        &s("cfg"),
        "::/EFI/debian/A very long file name, needing three LFN entries.txt",
    ]);
    m(&["mcopy", &s("cfg"), "::/EFI/debian/Ünïcödé.txt"]);
    m(&["mcopy", &s("empty"), "::/EFI/empty"]);
    // A fragmented file: it fills the hole left by a deleted one, then continues after it.
    m(&["mcopy", &s("hole"), "::/hole"]);
    m(&["mcopy", &s("after"), "::/after"]);
    m(&["mdel", "::/hole"]);
    m(&["mcopy", &s("frag"), "::/frag.bin"]);
    // 200 entries: the directory spans several clusters.
    for n in 0..200 {
        let f = src.join(format!("f{n}"));
        std::fs::write(&f, format!("{n}\n")).unwrap();
    }
    let mut args: Vec<String> = vec!["mcopy".into()];
    args.extend((0..200).map(|n| s(&format!("f{n}"))));
    args.push("::/many/".into());
    m(&args.iter().map(String::as_str).collect::<Vec<_>>());
    img
}

fn check_fat(bits: u32, kind: FatKind) {
    let d = tempfile::tempdir().unwrap();
    let img = fat_image(bits, d.path());
    let fs = Fat::open(dev(&img)).unwrap();
    assert_eq!(fs.kind(), kind);
    assert_eq!(fs.fstype(), "vfat");
    // Case-insensitive lookups, whatever case the tool stored.
    assert_eq!(
        fs.read_file("/efi/boot/bootx64.efi", 1 << 20).unwrap(),
        pattern(100_000)
    );
    assert_eq!(
        fs.read_file("/EFI/Debian/GRUBX64.EFI", 1 << 20).unwrap(),
        pattern(100_000)
    );
    assert_eq!(
        fs.read_file("/EFI/debian/grub.cfg", 100).unwrap(),
        b"set root=hd0\n"
    );
    assert_eq!(
        fs.read_file(
            "/EFI/debian/a VERY long file name, needing three lfn entries.txt",
            100
        )
        .unwrap(),
        b"set root=hd0\n"
    );
    assert_eq!(
        fs.read_file("/EFI/debian/üNÏCÖDÉ.TXT", 100).unwrap(),
        b"set root=hd0\n"
    );
    assert_eq!(fs.read_file("/EFI/empty", 100).unwrap(), b"");
    assert_eq!(fs.read_file("/frag.bin", 1 << 20).unwrap(), pattern(20_000));
    assert_eq!(fs.read_file("/after", 100).unwrap(), b"after");
    // Names are listed as stored (long names), without the deleted file or the volume label.
    let mut names: Vec<String> = fs
        .read_dir("/EFI/debian")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "A very long file name, needing three LFN entries.txt",
            "grub.cfg",
            "grubx64.efi",
            "Ünïcödé.txt"
        ]
    );
    let root: Vec<(String, FileType)> = fs
        .read_dir("/")
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.ftype))
        .collect();
    assert!(root.contains(&("EFI".into(), FileType::Dir)), "{root:?}");
    assert!(
        !root.iter().any(|(n, _)| n == "hole" || n == "ESP"),
        "{root:?}"
    );
    let many = fs.read_dir("/many").unwrap();
    assert_eq!(many.len(), 200);
    assert_eq!(fs.read_file("/many/F199", 10).unwrap(), b"199\n");
    let m = fs.stat("/EFI/BOOT/BOOTX64.EFI").unwrap().unwrap();
    assert_eq!((m.ftype, m.size), (FileType::File, 100_000));
    assert_eq!(fs.stat("/efi").unwrap().unwrap().ftype, FileType::Dir);
    assert!(fs.stat("/EFI/nope").unwrap().is_none());
    assert!(matches!(
        fs.read_file("/EFI/BOOT/BOOTX64.EFI", 99_999),
        Err(FsError::TooLarge { .. })
    ));
    assert!(matches!(
        fs.read_file("/nope", 10),
        Err(FsError::NotFound { .. })
    ));
    assert!(matches!(
        fs.read_file("/EFI", 10),
        Err(FsError::IsADirectory { .. })
    ));
    assert!(matches!(
        fs.read_dir("/after/x"),
        Err(FsError::NotADirectory { .. })
    ));
    // Through the Vfs (as the ESP mounted at /boot/efi).
    std::fs::create_dir_all(d.path().join("boot/efi")).unwrap();
    let mut vfs = Vfs::new(Rc::new(revirt::fs::HostDirFs {
        root: d.path().into(),
    }));
    vfs.mount("/boot/efi", Rc::new(fs));
    assert!(vfs.exists("/boot/efi/EFI/BOOT/BOOTX64.EFI"));
}

#[test]
fn fat12_esp() {
    check_fat(12, FatKind::Fat12);
}

#[test]
fn fat16_esp() {
    check_fat(16, FatKind::Fat16);
}

#[test]
fn fat32_esp() {
    check_fat(32, FatKind::Fat32);
}

#[test]
fn fat_corruption_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let img = fat_image(16, d.path());
    let good = std::fs::read(&img).unwrap();
    let write = |b: &[u8]| {
        let p = d.path().join("bad.img");
        std::fs::write(&p, b).unwrap();
        dev(&p)
    };
    // Nonsense BPB: 0 bytes per sector.
    let mut b = good.clone();
    b[11] = 0;
    b[12] = 0;
    let e = Fat::open(write(&b)).err().unwrap();
    assert!(matches!(e, FsError::Corrupt { .. }), "{e}");
    // Every FAT entry points to cluster 2: each chain loops.
    let mut b = good.clone();
    let reserved = u16::from_le_bytes([b[14], b[15]]) as usize;
    let fat_sectors = u16::from_le_bytes([b[22], b[23]]) as usize;
    for c in 2..(fat_sectors * 512 / 2) {
        let o = reserved * 512 + c * 2;
        b[o..o + 2].copy_from_slice(&2u16.to_le_bytes());
    }
    let fs = Fat::open(write(&b)).unwrap();
    let e = fs.read_file("/EFI/BOOT/BOOTX64.EFI", 1 << 20).unwrap_err();
    assert!(e.to_string().contains("loops"), "{e}");
}

// ---------------------------------------------------------------- NTFS

#[test]
fn ntfs_reads_windows_mini() {
    let img = windows_mini();
    let fs = Ntfs::open(dev(&img)).unwrap();
    assert!(!fs.is_dirty());
    assert_eq!(fs.fstype(), "ntfs");
    assert_eq!(
        fs.read_file("/data/SMALL.TXT", 100).unwrap(),
        b"hello ntfs\n"
    );
    assert_eq!(
        fs.read_file("/Data/big.bin", 2 << 20).unwrap(),
        pattern(1 << 20)
    );
    assert_eq!(fs.read_file("/Data/empty", 10).unwrap(), b"");
    assert_eq!(
        fs.read_file("/DATA/long file name with spaces.TXT", 10)
            .unwrap(),
        b"long\n"
    );
    assert_eq!(fs.read_file("/Data/ÜNÏCÖDÉ.txt", 10).unwrap(), b"unicode\n");
    assert!(matches!(
        fs.read_file("/Data/big.bin", 1000),
        Err(FsError::TooLarge { size: 1048576, .. })
    ));
    assert!(matches!(
        fs.read_file("/Data/nope", 10),
        Err(FsError::NotFound { .. })
    ));
    assert!(matches!(
        fs.read_file("/Data", 10),
        Err(FsError::IsADirectory { .. })
    ));
    assert!(matches!(
        fs.read_dir("/Data/small.txt/x"),
        Err(FsError::NotADirectory { .. })
    ));
    let m = fs
        .stat("/windows/system32/CONFIG/software")
        .unwrap()
        .unwrap();
    assert_eq!(m.ftype, FileType::File);
    assert!(m.size > 4096);
    assert_eq!(
        fs.stat("/Program Files").unwrap().unwrap().ftype,
        FileType::Dir
    );
    assert!(fs.stat("/nope").unwrap().is_none());
    // NTFS-compressed data is refused (the ntfs crate would hand back raw LZNT1 bytes). The
    // file exists only when build.sh had FUSE (see there).
    if fs.stat("/Data/Compressed").unwrap().is_some() {
        let m = fs.stat("/Data/Compressed/big.bin").unwrap().unwrap();
        assert_eq!(m.size, 1 << 20);
        let e = fs
            .read_file("/Data/Compressed/big.bin", 2 << 20)
            .unwrap_err();
        assert!(matches!(e, FsError::Unsupported { .. }), "{e}");
    }
    // Listings: long names only (no 8.3 aliases), no $MFT and friends.
    let mut data: Vec<String> = fs
        .read_dir("/Data")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    data.sort();
    data.retain(|n| n != "Compressed");
    assert_eq!(
        data,
        [
            "Long File Name With Spaces.txt",
            "big.bin",
            "empty",
            "small.txt",
            "Ünïcödé.txt"
        ]
    );
    let root: Vec<String> = fs
        .read_dir("/")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(root.contains(&"Windows".to_string()), "{root:?}");
    assert!(!root.iter().any(|n| n.starts_with('$')), "{root:?}");
    let big = fs.read_dir("/program files/big dir").unwrap();
    assert_eq!(big.len(), 300);
    assert!(big.iter().all(|e| e.ftype == FileType::File));
    assert_eq!(
        fs.read_file("/Program Files/Big Dir/FILE150.txt", 10)
            .unwrap(),
        b"150\n"
    );
}

/// Sets VOLUME_IS_DIRTY in $Volume's $VOLUME_INFORMATION (MFT record 3), as an unclean shutdown
/// leaves it.
fn set_ntfs_dirty(b: &mut [u8]) {
    let bps = u16::from_le_bytes([b[11], b[12]]) as usize;
    let cluster = bps * b[13] as usize;
    let mft = u64::from_le_bytes(b[48..56].try_into().unwrap()) as usize * cluster;
    let c = b[64] as i8;
    let rec_size = if c < 0 {
        1usize << (-c)
    } else {
        c as usize * cluster
    };
    let rec = mft + 3 * rec_size;
    assert_eq!(&b[rec..rec + 4], b"FILE");
    let mut a = rec + u16::from_le_bytes([b[rec + 20], b[rec + 21]]) as usize;
    loop {
        let ty = u32::from_le_bytes(b[a..a + 4].try_into().unwrap());
        assert_ne!(ty, 0xffff_ffff, "no $VOLUME_INFORMATION");
        let len = u32::from_le_bytes(b[a + 4..a + 8].try_into().unwrap()) as usize;
        if ty == 0x70 {
            let v = a + u16::from_le_bytes([b[a + 20], b[a + 21]]) as usize;
            // The flags must not sit in the last two bytes of a sector (the fixup slot).
            assert_ne!((v + 10 - rec) % 512, 510);
            b[v + 10] |= 1;
            return;
        }
        a += len;
    }
}

#[test]
fn ntfs_dirty_flag() {
    let mut b = std::fs::read(windows_mini()).unwrap();
    set_ntfs_dirty(&mut b);
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("dirty.img");
    std::fs::write(&p, &b).unwrap();
    let fs = Ntfs::open(dev(&p)).unwrap();
    assert!(fs.is_dirty());
    assert_eq!(
        fs.read_file("/Data/small.txt", 100).unwrap(),
        b"hello ntfs\n"
    );
}

#[test]
fn ntfs_rejects_garbage() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("zero.img");
    let mut b = vec![0u8; 1 << 20];
    b[3..11].copy_from_slice(b"NTFS    ");
    std::fs::write(&p, &b).unwrap();
    assert!(matches!(Ntfs::open(dev(&p)), Err(FsError::Corrupt { .. })));
}

// ---------------------------------------------------------------- Windows

#[test]
fn detect_windows_on_windows_mini() {
    let img = windows_mini();
    let vfs = Vfs::new(Rc::new(Ntfs::open(dev(&img)).unwrap()));
    let w = detect_windows(&vfs)
        .unwrap()
        .expect("a Windows system root");
    assert_eq!(w.product_name, "Windows 11 Pro");
    assert_eq!(w.version, "10.0");
    assert_eq!((w.major, w.minor), (10, 0));
    assert_eq!(w.build.as_deref(), Some("22631"));
    assert_eq!(w.installation_type.as_deref(), Some("Client"));
    assert_eq!(w.edition_id.as_deref(), Some("Professional"));
    // ControlSet002 says x86: AMD64 proves Select\Current was followed.
    assert_eq!(w.arch, "x86_64");
    assert_eq!(w.system_root, "/Windows");
}

// ---------------------------------------------------------------- registry hives

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// hivexregedit prints names through Perl without an output encoding: Latin-1 bytes.
fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

/// Compares two exports line by line, showing only the first difference (lines can be huge).
fn assert_same(mine: &str, expected: &str) {
    let short = |s: &str| s.chars().take(200).collect::<String>();
    for (i, (a, b)) in mine.lines().zip(expected.lines()).enumerate() {
        assert!(
            a == b,
            "line {}: ours {:?} vs hivexregedit {:?}",
            i + 1,
            short(a),
            short(b)
        );
    }
    assert_eq!(mine.lines().count(), expected.lines().count());
}

/// Renders a key tree the way `hivexregedit --export` does.
fn export(k: Key, path: &str, out: &mut String) {
    out.push_str(&format!("[{path}]\n"));
    let mut vals: Vec<RegValue> = k.values().unwrap();
    vals.sort_by(|a, b| a.name.cmp(&b.name));
    for v in vals {
        if v.name.is_empty() {
            out.push_str("@=");
        } else {
            out.push_str(&format!("\"{}\"=", escape(&v.name)));
        }
        if v.ty == 4 && v.data.len() == 4 {
            out.push_str(&format!(
                "dword:{:08x}\n",
                u32::from_le_bytes(v.data[..4].try_into().unwrap())
            ));
        } else {
            out.push_str(&format!("hex({:x}):{}\n", v.ty, hex(&v.data)));
        }
    }
    out.push('\n');
    let mut subs = k.subkeys().unwrap();
    subs.sort_by_key(|s| s.name().unwrap());
    for s in subs {
        let name = s.name().unwrap();
        let p = if path == "\\" {
            format!("\\{name}")
        } else {
            format!("{path}\\{name}")
        };
        export(s, &p, out);
    }
}

#[test]
fn hive_matches_hivexregedit_export() {
    let d = tempfile::tempdir().unwrap();
    let hive = d.path().join("test.hive");
    common::run(
        Command::new("python3")
            .arg(recipe_dir().join("mkhive.py"))
            .arg(&hive),
    );
    let mut reg =
        String::from("Windows Registry Editor Version 5.00\n\n[HKEY_LOCAL_MACHINE\\T\\Many]\n\n");
    for i in 0..150 {
        reg.push_str(&format!(
            "[HKEY_LOCAL_MACHINE\\T\\Many\\Key {i:03}]\n\"n\"=dword:{i:08x}\n\n"
        ));
    }
    let big = pattern(40_000);
    reg.push_str(&format!(
        "[HKEY_LOCAL_MACHINE\\T\\Values]\n@=\"default\"\n\"sz\"=\"a \\\"quoted\\\" \\\\ string\"\n\
         \"expand\"=hex(2):25,00,41,00,25,00,00,00\n\"multi\"=hex(7):61,00,00,00,62,00,63,00,00,00,00,00\n\
         \"qword\"=hex(b):01,02,03,04,05,06,07,08\n\"bin\"=hex:de,ad,be,ef,01\n\"small\"=hex:01,02\n\
         \"big\"=hex:{}\n\"none\"=hex(0):\n\n[HKEY_LOCAL_MACHINE\\T\\Ünïcode Këy]\n\"Ñame\"=hex(1):{}\n",
        hex(&big),
        // hivexregedit reads .reg text as bytes: give non-ASCII string data as UTF-16 hex.
        hex(&"välue\0".encode_utf16().flat_map(|u| u.to_le_bytes()).collect::<Vec<u8>>())
    ));
    let regf = d.path().join("in.reg");
    std::fs::write(&regf, reg).unwrap();
    common::run(
        Command::new("hivexregedit")
            .args(["--merge", "--prefix", "HKEY_LOCAL_MACHINE\\T"])
            .arg(&hive)
            .arg(&regf),
    );
    let out = Command::new("hivexregedit")
        .arg("--export")
        .arg(&hive)
        .arg("\\")
        .output()
        .unwrap();
    assert!(out.status.success());
    let expected = latin1(&out.stdout);

    let h = Hive::from_bytes("test.hive", std::fs::read(&hive).unwrap()).unwrap();
    let mut mine = String::from("Windows Registry Editor Version 5.00\n\n");
    export(h.root(), "\\", &mut mine);
    assert_same(&mine, &expected);
    // Spot checks through the typed API.
    let v = h.open_key("VALUES").unwrap().unwrap();
    assert_eq!(v.string("").unwrap().as_deref(), Some("default"));
    assert_eq!(
        v.string("SZ").unwrap().as_deref(),
        Some("a \"quoted\" \\ string")
    );
    assert_eq!(v.value("big").unwrap().unwrap().data, big);
    assert_eq!(
        h.open_key("many\\KEY 149")
            .unwrap()
            .unwrap()
            .dword("N")
            .unwrap(),
        Some(149)
    );
    assert_eq!(
        h.open_key("ünïcode KËY")
            .unwrap()
            .unwrap()
            .string("ñame")
            .unwrap()
            .as_deref(),
        Some("välue")
    );
}

#[test]
fn fixture_hives_read_back() {
    // The hives inside windows-mini, read straight from NTFS, agree with hivexregedit.
    let img = windows_mini();
    let fs = Ntfs::open(dev(&img)).unwrap();
    let data = fs
        .read_file("/Windows/System32/config/SYSTEM", 1 << 24)
        .unwrap();
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("SYSTEM");
    std::fs::write(&p, &data).unwrap();
    let out = Command::new("hivexregedit")
        .arg("--export")
        .arg(&p)
        .arg("\\")
        .output()
        .unwrap();
    assert!(out.status.success());
    let h = Hive::from_bytes("SYSTEM", data).unwrap();
    let mut mine = String::from("Windows Registry Editor Version 5.00\n\n");
    export(h.root(), "\\", &mut mine);
    assert_same(&mine, &latin1(&out.stdout));
}
