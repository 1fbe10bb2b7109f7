//! Seeds built in process, in each target's input encoding: small valid inputs from which
//! mutation starts. `cargo xtask fuzz` adds seeds made by real tools (mkfs, qemu-img, xorriso,
//! cpio and compressors, hivex) and the fixture recipes' config files; these ones need nothing
//! but this crate, so `tests/fuzz_regressions.rs` runs every target on them too.
//!
//! A fuzz target binary writes its seeds into `$REVIRT_FUZZ_SEEDS` when it starts
//! ([`write_from_env`], from libFuzzer's initialize hook), so the corpus and this code never
//! drift apart.
use std::io::Write;

/// The seeds of target `name`: (file name, input bytes).
pub fn for_target(name: &str) -> Vec<(String, Vec<u8>)> {
    let one = |n: &str, b: Vec<u8>| vec![(n.to_string(), b)];
    match name {
        "qcow2" => vec![
            ("v3-deflate".into(), qcow2_image(3, 12, None)),
            ("v2".into(), qcow2_image(2, 9, None)),
            ("v3-backing".into(), qcow2_image(3, 16, Some("base.raw"))),
        ],
        "partitions" => vec![
            ("mbr-logical".into(), ctl_prefix(0xff, &sparse(&mbr_disk()))),
            ("gpt".into(), ctl_prefix(0xff, &sparse(&gpt_disk()))),
        ],
        "lvm" => one("pv-linear", sparse(&lvm_disk())),
        "lvm_metadata" => one("vg", LVM_METADATA.as_bytes().to_vec()),
        "initramfs" => {
            let cpio = sample_cpio();
            let mut v = vec![];
            for k in 0..7 {
                if let Some(c) = compress(k, &cpio) {
                    v.push((format!("kind{k}"), c));
                }
            }
            let mut early = newc(&[("kernel/x86/microcode/AuthenticAMD.bin", b"uc")]);
            early.extend(compress(1, &cpio).unwrap_or_default());
            v.push(("early+gzip".into(), early));
            v
        }
        "initramfs_packed" => (0..16u8)
            .map(|c| (format!("ctl{c}"), ctl_prefix(c, &sample_cpio())))
            .collect(),
        "grub" => one("debian", join_pieces(&[GRUB_CFG, GRUBENV, DEFAULT_GRUB, BLS, GRUB_STUB, SUSE_BOOTLOADER])),
        "grub_legacy" => one("rhel6", join_pieces(&[MENU_LST, "saved\n", EXTLINUX])),
        "fstab" => one("debian", join_pieces(&[FSTAB, CRYPTTAB])),
        "ifupdown" => one("debian", join_pieces(&[INTERFACES, IFACE_D, "auto lo\niface lo inet loopback\n"])),
        "netplan" => one("ubuntu", join_pieces(&[NETPLAN, NETPLAN_CLOUD])),
        "keyfile" => one("nm", join_pieces(&[KEYFILE, KEYFILE_DHCP])),
        "ifcfg" => one("rhel", join_pieces(&[IFCFG_ETH0, IFCFG_ENS3, "10.0.0.0/8 via 192.168.1.254\n", "NETWORKING=yes\nHOSTNAME=r\nGATEWAY=192.168.1.1\n"])),
        "wicked" => one("suse", join_pieces(&["BOOTPROTO='static'\nSTARTMODE='auto'\nIPADDR='10.161.1.20/16'\nLLADDR='00:16:3E:01:02:03'\n", "default 10.161.0.1 - eth0\n", "default 10.161.0.1 - -\n", "NETCONFIG_DNS_STATIC_SERVERS=\"10.161.0.2\"\n"])),
        "networkd" => one("systemd", join_pieces(&[NETWORKD, "[Match]\nMACAddress=00:0C:29:AA:BB:CC\n\n[Link]\nName=lan0\n", "[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n"])),
        "udev" => one("rules", join_pieces(&[UDEV_RULES, "ACTION==\"add\", SUBSYSTEM==\"net\", PROGRAM=\"write_net_rules\"\n", "# x\n"])),
        "hive" => one("software+system", ctl_prefix(0xff, &windows_hive())),
        "hivelog" => {
            let (old, log_new) = dirty_hive_new_log();
            let (old2, log_old) = dirty_hive_old_log();
            vec![
                ("new-format".into(), hivelog_input(&old, &log_new, &[])),
                ("new-in-log2".into(), hivelog_input(&old, &[], &log_new)),
                ("old-format".into(), hivelog_input(&old2, &log_old, &[])),
            ]
        }
        "xfs_log" => {
            use crate::fs::xfs_log::synthetic;
            vec![
                ("mkfs".into(), synthetic(16, &[], &[(0, 1, 1, 1, true)])),
                ("dirty".into(), synthetic(16, &[], &[(0, 1, 1, 1, true), (2, 1, 3, 5, false)])),
                ("wrapped".into(), synthetic(32, &[(0, 32, 2), (0, 10, 3)], &[(10, 3, 6, 4, false), (17, 3, 1, 1, true)])),
            ]
        }
        "bcd" => one("bios", ctl_prefix(0xff, &bcd_hive())),
        "linux_tree" => one("debian12", linux_tree()),
        "md" => one("raid1-1.2", sparse(&crate::md::synthetic_member([7; 16], 0, 5))),
        "rpmdb" => vec![
            ("packages".into(), rpm_sqlite()),
            ("header".into(), rpm_header("bash", 0, 0)),
        ],
        // Filesystems, ISO and whole disks need mkfs/xorriso: `cargo xtask fuzz` makes them.
        "inspect" => one("mbr-lvm", sparse(&lvm_disk())),
        _ => vec![],
    }
}

/// Writes the seeds of `target` into the folder `$REVIRT_FUZZ_SEEDS`, if set (errors ignored:
/// a missing seed only slows the fuzzer down).
pub fn write_from_env(target: &str) {
    let Some(dir) = std::env::var_os("REVIRT_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    if std::fs::create_dir_all(&dir).is_ok() {
        for (name, data) in for_target(target) {
            let _ = std::fs::write(dir.join(format!("inproc-{name}")), data);
        }
    }
}

/// An rpm header blob as the database stores it; `pad` bytes of description make it big.
fn rpm_header(name: &str, epoch: u32, pad: usize) -> Vec<u8> {
    use crate::inspect::rpmdb::header::*;
    let n = format!("{name}\0");
    let desc = format!("{}\0", "x".repeat(pad));
    blob(&[
        (NAME, STRING, 1, n.as_bytes()),
        (VERSION, STRING, 1, b"1.0\0"),
        (RELEASE, STRING, 1, b"1.fc39\0"),
        (SUMMARY, I18NSTRING, 1, b"summary\0"),
        (DESCRIPTION, I18NSTRING, 1, desc.as_bytes()),
        (ARCH, STRING, 1, b"noarch\0"),
        (EPOCH, INT32, 1, &epoch.to_be_bytes()),
    ])
}

/// rpmdb.sqlite with three packages, one spilling onto overflow pages.
fn rpm_sqlite() -> Vec<u8> {
    let rows = [
        rpm_header("bash", 0, 0),
        rpm_header("shadow-utils", 2, 1500),
        rpm_header("zlib", 0, 10),
    ];
    crate::inspect::rpmdb::sqlite::synthetic("Packages", &rows)
}

fn ctl_prefix(c: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![c];
    v.extend_from_slice(rest);
    v
}

fn join_pieces(p: &[&str]) -> Vec<u8> {
    p.join("\0").into_bytes()
}

/// The sparse encoding of `img` (see [`super::Image`]): its non-zero sectors as chunks.
pub fn sparse(img: &[u8]) -> Vec<u8> {
    let mut out = b"RVSP".to_vec();
    out.extend((img.len() as u64).to_le_bytes());
    let sectors: Vec<&[u8]> = img.chunks(512).collect();
    let mut i = 0;
    while i < sectors.len() {
        if sectors[i].iter().all(|&b| b == 0) {
            i += 1;
            continue;
        }
        let start = i;
        while i < sectors.len() && sectors[i].iter().any(|&b| b != 0) {
            i += 1;
        }
        let bytes: Vec<u8> = sectors[start..i].concat();
        out.extend((start as u32).to_le_bytes());
        out.extend((bytes.len() as u32).to_le_bytes());
        out.extend(bytes);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Block layer

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

/// A small qcow2: header (cluster 0), refcount table and block, L1, L2, one data cluster, one
/// zero cluster and one deflate-compressed cluster; optionally a backing file name.
fn qcow2_image(version: u32, cluster_bits: u32, backing: Option<&str>) -> Vec<u8> {
    let cs = 1usize << cluster_bits;
    let size: u64 = 8 * cs as u64;
    let (rt, rb, l1, l2, data, comp) = (cs, 2 * cs, 3 * cs, 4 * cs, 5 * cs, 6 * cs);
    let mut f = vec![0u8; 7 * cs];
    put(&mut f, 0, b"QFI\xfb");
    put(&mut f, 4, &version.to_be_bytes());
    put(&mut f, 20, &cluster_bits.to_be_bytes());
    put(&mut f, 24, &size.to_be_bytes());
    put(&mut f, 36, &1u32.to_be_bytes());
    put(&mut f, 40, &(l1 as u64).to_be_bytes());
    put(&mut f, 48, &(rt as u64).to_be_bytes());
    put(&mut f, 56, &1u32.to_be_bytes());
    if version == 3 {
        put(&mut f, 96, &4u32.to_be_bytes());
        put(&mut f, 100, &104u32.to_be_bytes());
    }
    if let Some(name) = backing {
        let at = 0x180;
        put(&mut f, 8, &(at as u64).to_be_bytes());
        put(&mut f, 16, &(name.len() as u32).to_be_bytes());
        put(&mut f, at, name.as_bytes());
        // Backing format extension "raw" right after the header.
        let ext = if version == 3 { 104 } else { 72 };
        put(&mut f, ext, &0xe279_2acau32.to_be_bytes());
        put(&mut f, ext + 4, &3u32.to_be_bytes());
        put(&mut f, ext + 8, b"raw");
    }
    put(&mut f, rt, &(rb as u64).to_be_bytes());
    for c in 0..7 {
        put(&mut f, rb + 2 * c, &1u16.to_be_bytes());
    }
    put(&mut f, l1, &((l2 as u64) | 1 << 63).to_be_bytes());
    // L2: cluster 0 data, cluster 1 zero (v3), cluster 2 compressed, the rest unallocated.
    put(&mut f, l2, &((data as u64) | 1 << 63).to_be_bytes());
    if version == 3 {
        put(&mut f, l2 + 8, &1u64.to_be_bytes());
    }
    let plain: Vec<u8> = (0..cs).map(|i| (i / 3) as u8).collect();
    let mut enc = flate2::write::DeflateEncoder::new(vec![], flate2::Compression::fast());
    let _ = enc.write_all(&plain);
    let packed = enc.finish().unwrap_or_default();
    let x = 62 - (cluster_bits - 8);
    let sectors = (packed.len().div_ceil(512) as u64).saturating_sub(1);
    put(
        &mut f,
        l2 + 16,
        &((comp as u64) | sectors << x | 1 << 62).to_be_bytes(),
    );
    for (i, b) in f[data..data + cs].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    f.truncate(comp);
    f.extend(packed);
    f.resize(f.len().div_ceil(512) * 512, 0);
    f
}

fn mbr_entry(b: &mut [u8], at: usize, boot: u8, ty: u8, start: u32, len: u32) {
    b[at] = boot;
    b[at + 4] = ty;
    put(b, at + 8, &start.to_le_bytes());
    put(b, at + 12, &len.to_le_bytes());
}

/// 1 MiB MBR disk: a primary partition and an extended one with two logical partitions.
fn mbr_disk() -> Vec<u8> {
    let mut d = vec![0u8; 1 << 20];
    put(&mut d, 440, &0x1234_5678u32.to_le_bytes());
    mbr_entry(&mut d, 446, 0x80, 0x83, 64, 512);
    mbr_entry(&mut d, 462, 0, 0x05, 1024, 1024);
    d[510..512].copy_from_slice(&[0x55, 0xaa]);
    // EBR 1 at 1024: logical at +32 (256 sectors), link to EBR 2 at +512.
    let e1 = 1024 * 512;
    mbr_entry(&mut d, e1 + 446, 0, 0x83, 32, 256);
    mbr_entry(&mut d, e1 + 462, 0, 0x05, 512, 512);
    d[e1 + 510..e1 + 512].copy_from_slice(&[0x55, 0xaa]);
    let e2 = (1024 + 512) * 512;
    mbr_entry(&mut d, e2 + 446, 0, 0x82, 32, 128);
    d[e2 + 510..e2 + 512].copy_from_slice(&[0x55, 0xaa]);
    d
}

fn crc32(b: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(b);
    c.sum()
}

/// 1 MiB GPT disk: protective MBR, primary and backup headers, three partitions.
fn gpt_disk() -> Vec<u8> {
    let sectors = 2048u64;
    let mut d = vec![0u8; (sectors * 512) as usize];
    mbr_entry(&mut d, 446, 0, 0xee, 1, (sectors - 1) as u32);
    d[510..512].copy_from_slice(&[0x55, 0xaa]);
    let mut entries = vec![0u8; 128 * 128];
    let types: [[u8; 16]; 3] = [
        // EFI system, Linux filesystem, Linux LVM (mixed-endian GUID bytes as stored).
        [
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ],
        [
            0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47,
            0x7d, 0xe4,
        ],
        [
            0x79, 0xd3, 0xd6, 0xe6, 0x07, 0xf5, 0xc2, 0x44, 0xa2, 0x3c, 0x23, 0x8f, 0x2a, 0x3d,
            0xf9, 0x28,
        ],
    ];
    for (i, t) in types.iter().enumerate() {
        let e = &mut entries[i * 128..i * 128 + 128];
        e[..16].copy_from_slice(t);
        e[16..32].copy_from_slice(&[i as u8 + 1; 16]);
        let (first, last) = (64 + 512 * i as u64, 64 + 512 * i as u64 + 255);
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
        for (j, c) in "part".encode_utf16().enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&c.to_le_bytes());
        }
    }
    let ecrc = crc32(&entries);
    let header = |me: u64, alt: u64, array: u64| {
        let mut h = vec![0u8; 92];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&me.to_le_bytes());
        h[32..40].copy_from_slice(&alt.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(sectors - 34).to_le_bytes());
        h[56..72].copy_from_slice(&[0x42; 16]);
        h[72..80].copy_from_slice(&array.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&ecrc.to_le_bytes());
        let c = crc32(&h);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        h
    };
    put(&mut d, 512, &header(1, sectors - 1, 2));
    put(&mut d, 1024, &entries);
    put(&mut d, ((sectors - 33) * 512) as usize, &entries);
    put(
        &mut d,
        ((sectors - 1) * 512) as usize,
        &header(sectors - 1, 1, sectors - 33),
    );
    d
}

const LVM_METADATA: &str = r#"vg0 {
id = "Xq1sWn-0000-1111-2222-3333-4444-555555"
seqno = 3
format = "lvm2"
status = ["RESIZEABLE", "READ", "WRITE"]
extent_size = 8
max_lv = 0
physical_volumes {
pv0 {
id = "AbCdEf-GhIj-KlMn-OpQr-StUv-WxYz-012345"
device = "/dev/sda1"
status = ["ALLOCATABLE"]
pe_start = 16
pe_count = 200
}
}
logical_volumes {
root {
id = "LvLvLv-0000-1111-2222-3333-4444-555555"
status = ["READ", "WRITE", "VISIBLE"]
segment_count = 2
segment1 {
start_extent = 0
extent_count = 100
type = "striped"
stripe_count = 1
stripes = ["pv0", 0]
}
segment2 {
start_extent = 100
extent_count = 50
type = "striped"
stripe_count = 1
stripes = ["pv0", 120]
}
}
thin {
id = "LvLvLv-9999-1111-2222-3333-4444-555555"
status = ["READ", "WRITE", "VISIBLE"]
segment_count = 1
segment1 {
start_extent = 0
extent_count = 10
type = "thin"
}
}
}
}
# Generated by LVM2
contents = "Text Format Volume Group"
version = 1
"#;

/// 2 MiB disk: MBR with one LVM partition holding a PV label, an mda and the metadata above.
fn lvm_disk() -> Vec<u8> {
    let mut d = vec![0u8; 2 << 20];
    mbr_entry(&mut d, 446, 0, 0x8e, 64, 4032);
    d[510..512].copy_from_slice(&[0x55, 0xaa]);
    let p = 64 * 512;
    // Label in sector 1 of the PV.
    let lab = p + 512;
    put(&mut d, lab, b"LABELONE");
    put(&mut d, lab + 8, &1u64.to_le_bytes());
    put(&mut d, lab + 20, &32u32.to_le_bytes());
    put(&mut d, lab + 24, b"LVM2 001");
    let pvh = lab + 32;
    put(&mut d, pvh, b"AbCdEfGhIjKlMnOpQrStUvWxYz012345");
    put(&mut d, pvh + 32, &((4032u64) * 512).to_le_bytes());
    // Data areas: one, then the end marker; metadata areas: one at 4096, then the end marker.
    put(&mut d, pvh + 40, &(8192u64).to_le_bytes());
    put(&mut d, pvh + 72, &4096u64.to_le_bytes());
    put(&mut d, pvh + 80, &4096u64.to_le_bytes());
    let mda = p + 4096;
    put(&mut d, mda + 4, b" LVM2 x[5A%r0N*>");
    put(&mut d, mda + 20, &1u32.to_le_bytes());
    put(&mut d, mda + 24, &4096u64.to_le_bytes());
    put(&mut d, mda + 32, &4096u64.to_le_bytes());
    put(&mut d, mda + 40, &512u64.to_le_bytes());
    put(&mut d, mda + 48, &(LVM_METADATA.len() as u64).to_le_bytes());
    put(&mut d, mda + 512, LVM_METADATA.as_bytes());
    d
}

// ---------------------------------------------------------------------------------------------
// initramfs

/// A newc cpio archive of regular files and their parent directories, with the trailer: the
/// writer revirt appends initramfs segments with ([`crate::apply::cpio::newc_archive`]).
pub fn newc(files: &[(&str, &[u8])]) -> Vec<u8> {
    let files: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(n, d)| (n.to_string(), d.to_vec()))
        .collect();
    crate::apply::cpio::newc_archive(&files)
}

fn sample_cpio() -> Vec<u8> {
    newc(&[
        ("conf/modules", b"virtio_blk\n# comment\n"),
        ("etc/modules-load.d/virtio.conf", b"virtio_pci\n"),
        (
            "usr/lib/modules/6.1.0-13-amd64/kernel/drivers/block/virtio_blk.ko.xz",
            b"\xfd7zXZ",
        ),
        (
            "usr/lib/modules/6.1.0-13-amd64/modules.dep",
            b"kernel/drivers/block/virtio_blk.ko.xz:\n",
        ),
        ("init", b"#!/bin/sh\n"),
    ])
}

/// Compresses `data` as an initramfs segment: 0 none, 1 gzip, 2 xz, 3 lzma, 4 zstd, 5 bzip2,
/// 6 lz4 legacy (the kernel's format), 7 none. `None` if the encoder fails.
pub fn compress(kind: u8, data: &[u8]) -> Option<Vec<u8>> {
    Some(match kind {
        1 => {
            let mut e = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
            e.write_all(data).ok()?;
            e.finish().ok()?
        }
        2 => {
            let mut out = vec![];
            lzma_rs::xz_compress(&mut &data[..], &mut out).ok()?;
            out
        }
        3 => {
            let mut out = vec![];
            lzma_rs::lzma_compress(&mut &data[..], &mut out).ok()?;
            out
        }
        4 => ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest),
        5 => {
            let mut e = bzip2::write::BzEncoder::new(vec![], bzip2::Compression::fast());
            e.write_all(data).ok()?;
            e.finish().ok()?
        }
        6 => {
            let mut out = vec![0x02, 0x21, 0x4c, 0x18];
            for chunk in data.chunks(8 << 20) {
                let b = lz4_flex::block::compress(chunk);
                out.extend((b.len() as u32).to_le_bytes());
                out.extend(b);
            }
            out
        }
        _ => data.to_vec(),
    })
}

// ---------------------------------------------------------------------------------------------
// Linux config samples

const GRUB_CFG: &str = r#"set default="${saved_entry}"
if [ -s $prefix/grubenv ]; then
  load_env
fi
set timeout=5
insmod part_msdos
search --no-floppy --fs-uuid --set=root 0b1f7a40-6c2d-4c3a-9f1e-1d2c3b4a5f60
function load_video {
  insmod all_video
}
menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple-0b1f' {
	load_video
	linux	/boot/vmlinuz-6.1.0-13-amd64 root=/dev/sda1 ro quiet
	initrd	/boot/initrd.img-6.1.0-13-amd64
}
submenu 'Advanced options' $menuentry_id_option 'gnulinux-advanced-0b1f' {
	menuentry 'Debian, with Linux 6.1.0-13-amd64 (recovery mode)' {
		linux	/boot/vmlinuz-6.1.0-13-amd64 root=UUID=0b1f7a40-6c2d-4c3a-9f1e-1d2c3b4a5f60 ro single
		initrd	/boot/initrd.img-6.1.0-13-amd64
	}
}
if [ "${grub_platform}" = "efi" ]; then
  menuentry 'UEFI Firmware Settings' { fwsetup }
fi
blscfg
"#;
const GRUBENV: &str = "# GRUB Environment Block\nsaved_entry=gnulinux-advanced-0b1f>0\nkernelopts=root=/dev/sda1 ro\n##########";
const DEFAULT_GRUB: &str = "GRUB_DEFAULT=saved\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"console=tty0\"\n#GRUB_DISABLE_LINUX_UUID=true\n";
const BLS: &str = "title Debian (6.1.0-13-amd64)\nversion 6.1.0-13-amd64\nlinux /vmlinuz-6.1.0-13-amd64\ninitrd /initrd.img-6.1.0-13-amd64\noptions $kernelopts root=/dev/sda1\nid debian-6.1\n";
const GRUB_STUB: &str = "search.fs_uuid 0b1f7a40-6c2d-4c3a-9f1e-1d2c3b4a5f60 root\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n";
const SUSE_BOOTLOADER: &str =
    "LOADER_TYPE=\"grub2\"\nDEFAULT_APPEND=\"resume=/dev/sda2 splash=silent\"\n";
const MENU_LST: &str = "default=0\ntimeout=5\nsplashimage=(hd0,0)/grub/splash.xpm.gz\nhiddenmenu\ntitle CentOS (2.6.32-754.el6.x86_64)\n\troot (hd0,0)\n\tkernel /vmlinuz-2.6.32-754.el6.x86_64 ro root=/dev/sda2 rd_NO_LUKS quiet\n\tinitrd /initramfs-2.6.32-754.el6.x86_64.img\ntitle Other\n\trootnoverify (hd0,1)\n\tchainloader +1\n";
const EXTLINUX: &str = "DEFAULT linux\nLABEL linux\n  KERNEL /vmlinuz-2.6.32-754.el6.x86_64\n  APPEND root=/dev/sda2\n";
const FSTAB: &str = "# /etc/fstab\nUUID=0b1f7a40-6c2d-4c3a-9f1e-1d2c3b4a5f60 / ext4 errors=remount-ro 0 1\n/dev/sda2 /boot/efi vfat umask=0077 0 1\nLABEL=data /srv/My\\040Data xfs defaults,nofail 0 2\nPARTUUID=5e2c1d0a-1111-4222-8333-944455556666-p /mnt/p xfs defaults 0 2\n/dev/mapper/vg0-swap none swap sw 0 0\n/dev/disk/by-id/x-sdb1 /x auto noauto 0 0\ntmpfs /tmp tmpfs defaults 0 0\n/srv /bind none bind 0 0\n/dev/mapper/cryptdata /enc ext4 defaults 0 2\n";
const CRYPTTAB: &str = "cryptdata UUID=5e2c1d0a-1111-4222-8333-944455556666 none luks,discard\ncryptswap /dev/sdb2 /dev/urandom swap\n";
const INTERFACES: &str = "source /etc/network/interfaces.d/*\nsource-directory /etc/network/interfaces.d\nauto lo\niface lo inet loopback\n\nallow-hotplug ens192\niface ens192 inet static\n  address 192.168.10.20\n  netmask 255.255.255.0\n  gateway 192.168.10.1\n  dns-nameservers 192.168.10.2 \\\n    192.168.10.3\n  hwaddress ether 00:50:56:aa:bb:cc\niface ens192 inet6 auto\nmapping eth*\n  script /usr/local/sbin/map\n";
const IFACE_D: &str = "auto ens224\niface ens224 inet dhcp\n";
const NETPLAN: &str = "network:\n  version: 2\n  renderer: networkd\n  ethernets:\n    ens160:\n      match:\n        macaddress: \"00:50:56:aa:bb:cc\"\n      set-name: ens160\n      addresses: [192.168.10.20/24, \"fd00::20/64\"]\n      routes:\n        - to: default\n          via: 192.168.10.1\n      nameservers:\n        addresses: [192.168.10.2]\n    id1:\n      match: {name: \"en*\"}\n      dhcp4: true\n  bonds:\n    bond0:\n      interfaces: [ens160]\n";
const NETPLAN_CLOUD: &str =
    "network:\n  ethernets:\n    eth0: &e\n      dhcp4: yes\n    eth1: *e\n";
const KEYFILE: &str = "[connection]\nid=ens192\nuuid=2b1c3d4e-1111-2222-3333-444455556666\ntype=ethernet\ninterface-name=ens192\n\n[ethernet]\nmac-address=00:50:56:AA:BB:CC\n\n[ipv4]\naddress1=192.168.10.20/24,192.168.10.1\ndns=192.168.10.2;\nmethod=manual\n\n[ipv6]\nmethod=auto\n";
const KEYFILE_DHCP: &str = "[connection]\nid=Wired connection 1\ntype=802-3-ethernet\n\n[802-3-ethernet]\nmac-address=00:0C:29:01:02:03\n\n[ipv4]\nmethod=auto\n";
const IFCFG_ETH0: &str = "# Generated\nDEVICE=eth0\nTYPE=Ethernet\nBOOTPROTO=none\nONBOOT=yes\nHWADDR=00:50:56:AA:BB:CC\nIPADDR=192.168.1.20\nNETMASK=255.255.255.0\nGATEWAY=192.168.1.1\nDNS1=\"192.168.1.2\"\nNAME=\"System eth0\"\nX=$(echo hi)\nY=${IPADDR}\n";
const IFCFG_ENS3: &str =
    "DEVICE=ens3\nBOOTPROTO=dhcp\nONBOOT=yes\nIPADDR0=10.0.0.5\nPREFIX0=8\nIPV6INIT=yes\n";
const NETWORKD: &str = "[Match]\nName=ens192\nMACAddress=00:50:56:aa:bb:cc\n\n[Network]\nAddress=192.168.10.20/24\nGateway=192.168.10.1\nDNS=192.168.10.2\n\n[Address]\nAddress=10.1.1.1/8\n\n[Route]\nGateway=10.0.0.1\nDestination=10.1.0.0/16\n";
const UDEV_RULES: &str = "# This file was automatically generated\n# PCI device 0x15ad:0x07b0 (vmxnet3)\nSUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"?*\", ATTR{address}==\"00:50:56:aa:bb:cc\", ATTR{dev_id}==\"0x0\", ATTR{type}==\"1\", KERNEL==\"eth*\", NAME=\"eth0\"\n";

/// A Debian 12 root as (path, content) pieces for `linux_tree`.
fn linux_tree() -> Vec<u8> {
    let mut bz = vec![0u8; 0x300];
    bz[0x202..0x206].copy_from_slice(b"HdrS");
    bz[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
    bz.extend_from_slice(b"6.1.0-13-amd64 (debian-kernel@lists.debian.org) #1 SMP\0");
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(18, 0);
    elf.extend_from_slice(&62u16.to_le_bytes());
    let initrd = compress(1, &sample_cpio()).unwrap_or_default();
    let kv = "6.1.0-13-amd64";
    let files: Vec<(String, Vec<u8>)> = vec![
        ("etc/os-release".into(), b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\nID_LIKE=\"\"\n".to_vec()),
        ("etc/debian_version".into(), b"12.2\n".to_vec()),
        ("etc/hostname".into(), b"deb12\n".to_vec()),
        ("etc/fstab".into(), FSTAB.as_bytes().to_vec()),
        ("etc/crypttab".into(), CRYPTTAB.as_bytes().to_vec()),
        ("etc/default/grub".into(), DEFAULT_GRUB.as_bytes().to_vec()),
        ("boot/grub/grub.cfg".into(), GRUB_CFG.as_bytes().to_vec()),
        ("boot/grub/grubenv".into(), GRUBENV.as_bytes().to_vec()),
        (format!("boot/vmlinuz-{kv}"), bz),
        (format!("boot/initrd.img-{kv}"), initrd),
        (format!("lib/modules/{kv}/modules.dep"), b"kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz\nkernel/drivers/virtio/virtio_ring.ko.xz:\nkernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz\n".to_vec()),
        (format!("lib/modules/{kv}/modules.builtin"), b"kernel/drivers/net/virtio_net.ko\n".to_vec()),
        (format!("lib/modules/{kv}/kernel/drivers/block/virtio_blk.ko.xz"), b"x".to_vec()),
        ("etc/network/interfaces".into(), INTERFACES.as_bytes().to_vec()),
        ("etc/network/interfaces.d/ens224".into(), IFACE_D.as_bytes().to_vec()),
        ("etc/netplan/50-cloud-init.yaml".into(), NETPLAN.as_bytes().to_vec()),
        ("etc/udev/rules.d/70-persistent-net.rules".into(), UDEV_RULES.as_bytes().to_vec()),
        ("etc/initramfs-tools/modules".into(), b"# modules\n".to_vec()),
        ("etc/selinux/config".into(), b"SELINUX=permissive\n".to_vec()),
        ("usr/bin/bash".into(), elf),
        ("usr/bin/vmtoolsd".into(), b"x".to_vec()),
        ("usr/sbin/update-initramfs".into(), b"#!/bin/sh\n".to_vec()),
        ("@vmlinuz".into(), format!("boot/vmlinuz-{kv}").into_bytes()),
        ("@bin".into(), b"usr/bin".to_vec()),
        ("@etc/loop".into(), b"/etc/loop".to_vec()),
    ];
    let mut out = vec![];
    for (p, c) in files {
        out.extend_from_slice(p.as_bytes());
        out.push(0);
        out.extend((c.len() as u32).to_le_bytes());
        out.extend_from_slice(&c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Registry hives

/// A key to write: name, values (name, type, data) and subkeys.
struct K {
    name: &'static str,
    values: Vec<(&'static str, u32, Vec<u8>)>,
    subs: Vec<K>,
}

fn k(name: &'static str, values: Vec<(&'static str, u32, Vec<u8>)>, subs: Vec<K>) -> K {
    K { name, values, subs }
}

const REG_SZ: u32 = 1;
const REG_BINARY: u32 = 3;
const REG_DWORD: u32 = 4;
const REG_MULTI_SZ: u32 = 7;

fn sz(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn dword(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Appends cells to one growing hive bins area (offsets relative to its start).
struct HiveWriter {
    bins: Vec<u8>,
}

impl HiveWriter {
    fn cell(&mut self, payload: &[u8]) -> u32 {
        let off = self.bins.len() as u32;
        let size = (4 + payload.len()).div_ceil(8) * 8;
        self.bins.extend((-(size as i32)).to_le_bytes());
        self.bins.extend_from_slice(payload);
        self.bins.resize(off as usize + size, 0);
        off
    }

    fn value(&mut self, name: &str, ty: u32, data: &[u8]) -> u32 {
        let (size, off) = if data.len() <= 4 {
            let mut inline = [0u8; 4];
            inline[..data.len()].copy_from_slice(data);
            (data.len() as u32 | 0x8000_0000, u32::from_le_bytes(inline))
        } else {
            (data.len() as u32, self.cell(data))
        };
        let mut vk = vec![0u8; 20];
        vk[..2].copy_from_slice(b"vk");
        vk[2..4].copy_from_slice(&(name.len() as u16).to_le_bytes());
        vk[4..8].copy_from_slice(&size.to_le_bytes());
        vk[8..12].copy_from_slice(&off.to_le_bytes());
        vk[12..16].copy_from_slice(&ty.to_le_bytes());
        vk[16..18].copy_from_slice(&1u16.to_le_bytes());
        vk.extend_from_slice(name.as_bytes());
        self.cell(&vk)
    }

    fn key(&mut self, key: &K, root: bool) -> u32 {
        let subs: Vec<(u32, &str)> = key
            .subs
            .iter()
            .map(|s| (self.key(s, false), s.name))
            .collect();
        let vals: Vec<u32> = key
            .values
            .iter()
            .map(|(n, t, d)| self.value(n, *t, d))
            .collect();
        let vlist = if vals.is_empty() {
            u32::MAX
        } else {
            self.cell(
                &vals
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>(),
            )
        };
        let slist = if subs.is_empty() {
            u32::MAX
        } else {
            let mut sorted = subs.clone();
            sorted.sort_by_key(|(_, n)| n.to_uppercase());
            let mut l = b"lf".to_vec();
            l.extend((sorted.len() as u16).to_le_bytes());
            for (o, n) in sorted {
                l.extend(o.to_le_bytes());
                let mut hint = [0u8; 4];
                for (h, c) in hint.iter_mut().zip(n.bytes()) {
                    *h = c;
                }
                l.extend(hint);
            }
            self.cell(&l)
        };
        let mut nk = vec![0u8; 76];
        nk[..2].copy_from_slice(b"nk");
        let flags: u16 = if root { 0x2c } else { 0x20 };
        nk[2..4].copy_from_slice(&flags.to_le_bytes());
        nk[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        nk[20..24].copy_from_slice(&(subs.len() as u32).to_le_bytes());
        nk[28..32].copy_from_slice(&slist.to_le_bytes());
        nk[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        nk[36..40].copy_from_slice(&(vals.len() as u32).to_le_bytes());
        nk[40..44].copy_from_slice(&vlist.to_le_bytes());
        nk[44..48].copy_from_slice(&u32::MAX.to_le_bytes());
        nk[48..52].copy_from_slice(&u32::MAX.to_le_bytes());
        nk[72..74].copy_from_slice(&(key.name.len() as u16).to_le_bytes());
        nk.extend_from_slice(key.name.as_bytes());
        self.cell(&nk)
    }
}

/// A whole hive file (base block, then one hive bin) with `root`; sequence numbers `seq1`/`seq2`.
fn hive_file(root: &K, seq1: u32, seq2: u32) -> Vec<u8> {
    let mut w = HiveWriter {
        bins: vec![0u8; 32],
    };
    let root_off = w.key(root, true);
    let size = w.bins.len().div_ceil(4096).max(1) * 4096;
    let free = size - w.bins.len();
    if free >= 8 {
        w.bins.extend((free as i32).to_le_bytes());
    }
    w.bins.resize(size, 0);
    w.bins[..4].copy_from_slice(b"hbin");
    w.bins[8..12].copy_from_slice(&(size as u32).to_le_bytes());
    let mut f = vec![0u8; 4096];
    f[..4].copy_from_slice(b"regf");
    f[4..8].copy_from_slice(&seq1.to_le_bytes());
    f[8..12].copy_from_slice(&seq2.to_le_bytes());
    f[12..20].copy_from_slice(&0x01d9_0000_0000_0000u64.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..28].copy_from_slice(&5u32.to_le_bytes());
    f[32..36].copy_from_slice(&1u32.to_le_bytes());
    f[36..40].copy_from_slice(&root_off.to_le_bytes());
    f[40..44].copy_from_slice(&(size as u32).to_le_bytes());
    f[44..48].copy_from_slice(&1u32.to_le_bytes());
    let sum = crate::inspect::windows::hivelog::base_block_checksum(&f);
    f[508..512].copy_from_slice(&sum.to_le_bytes());
    f.extend(w.bins);
    f
}

/// One hive holding what inspection reads from both SOFTWARE and SYSTEM.
fn windows_tree(ip: &str) -> K {
    let cv = k(
        "CurrentVersion",
        vec![
            ("ProductName", REG_SZ, sz("Windows 10 Pro")),
            ("CurrentVersion", REG_SZ, sz("6.3")),
            ("CurrentBuild", REG_SZ, sz("19045")),
            ("CurrentMajorVersionNumber", REG_DWORD, dword(10)),
            ("CurrentMinorVersionNumber", REG_DWORD, dword(0)),
            ("EditionID", REG_SZ, sz("Professional")),
            ("InstallationType", REG_SZ, sz("Client")),
            ("SystemRoot", REG_SZ, sz("C:\\Windows")),
        ],
        vec![],
    );
    let software = k("Microsoft", vec![], vec![k("Windows NT", vec![], vec![cv])]);
    let iface = k(
        "{4d36e972-e325-11ce-bfc1-08002be10318}",
        vec![
            ("EnableDHCP", REG_DWORD, dword(0)),
            ("IPAddress", REG_MULTI_SZ, [sz(ip), vec![0, 0]].concat()),
            (
                "SubnetMask",
                REG_MULTI_SZ,
                [sz("255.255.255.0"), vec![0, 0]].concat(),
            ),
            (
                "DefaultGateway",
                REG_MULTI_SZ,
                [sz("192.168.10.1"), vec![0, 0]].concat(),
            ),
        ],
        vec![],
    );
    let service = |name: &'static str, start: u32| {
        k(
            name,
            vec![
                ("Start", REG_DWORD, dword(start)),
                ("Type", REG_DWORD, dword(1)),
                ("ImagePath", REG_SZ, sz("System32\\drivers\\x.sys")),
                ("Group", REG_SZ, sz("SCSI miniport")),
            ],
            vec![],
        )
    };
    let control = k(
        "Control",
        vec![],
        vec![
            k(
                "Session Manager",
                vec![],
                vec![k(
                    "Environment",
                    vec![("PROCESSOR_ARCHITECTURE", REG_SZ, sz("AMD64"))],
                    vec![],
                )],
            ),
            k(
                "ComputerName",
                vec![],
                vec![k(
                    "ComputerName",
                    vec![("ComputerName", REG_SZ, sz("WIN10"))],
                    vec![],
                )],
            ),
            k(
                "TimeZoneInformation",
                vec![("RealTimeIsUniversal", REG_DWORD, dword(1))],
                vec![],
            ),
            k(
                "CrashControl",
                vec![("AutoReboot", REG_DWORD, dword(1))],
                vec![],
            ),
            k(
                "CriticalDeviceDatabase",
                vec![],
                vec![k(
                    "pci#ven_1af4&dev_1001",
                    vec![("Service", REG_SZ, sz("viostor"))],
                    vec![],
                )],
            ),
        ],
    );
    let cs = k(
        "ControlSet001",
        vec![],
        vec![
            control,
            k(
                "Services",
                vec![],
                vec![
                    service("viostor", 0),
                    service("vmci", 0),
                    service("vmtools", 2),
                    k(
                        "Tcpip",
                        vec![],
                        vec![k(
                            "Parameters",
                            vec![],
                            vec![k("Interfaces", vec![], vec![iface])],
                        )],
                    ),
                ],
            ),
        ],
    );
    let mut mounted = 0x1234_5678u32.to_le_bytes().to_vec();
    mounted.extend((1u64 << 20).to_le_bytes());
    k(
        "ROOT",
        vec![],
        vec![
            software,
            k(
                "Select",
                vec![
                    ("Current", REG_DWORD, dword(1)),
                    ("Default", REG_DWORD, dword(1)),
                ],
                vec![],
            ),
            cs,
            k(
                "MountedDevices",
                vec![("\\DosDevices\\C:", REG_BINARY, mounted)],
                vec![],
            ),
        ],
    )
}

fn windows_hive() -> Vec<u8> {
    hive_file(&windows_tree("192.168.10.20"), 8, 8)
}

/// A BCD store: the boot manager's default points at a Windows loader object.
fn bcd_hive() -> Vec<u8> {
    let el = |id: &'static str, v: &str| k(id, vec![("Element", REG_SZ, sz(v))], vec![]);
    let loader = "{3e5b1c2a-0000-4000-8000-000000000001}";
    let root = k(
        "ROOT",
        vec![],
        vec![k(
            "Objects",
            vec![],
            vec![
                k(
                    "{9dea862c-5cdd-4e70-acc1-f32b344d4795}",
                    vec![],
                    vec![k("Elements", vec![], vec![el("23000003", loader)])],
                ),
                k(
                    "{3E5B1C2A-0000-4000-8000-000000000001}",
                    vec![],
                    vec![k(
                        "Elements",
                        vec![],
                        vec![
                            el("12000002", "\\Windows\\system32\\winload.exe"),
                            el("12000004", "Windows 10"),
                            el("22000002", "\\Windows"),
                        ],
                    )],
                ),
            ],
        )],
    );
    hive_file(&root, 3, 3)
}

/// Marvin32 with the seed of hive log entries, as the hive log reader checks it.
pub fn marvin32(data: &[u8]) -> u64 {
    use crate::inspect::windows::hivelog;
    hivelog::marvin32(data, hivelog::MARVIN_SEED)
}

/// A log's 512-byte base block copy: `file_type` 6 (new) or 1 (old), sequence `seq`.
fn log_base(hive: &[u8], file_type: u32, seq: u32) -> Vec<u8> {
    let mut b = hive[..512].to_vec();
    b[4..8].copy_from_slice(&seq.to_le_bytes());
    b[8..12].copy_from_slice(&seq.to_le_bytes());
    b[28..32].copy_from_slice(&file_type.to_le_bytes());
    let sum = crate::inspect::windows::hivelog::base_block_checksum(&b);
    b[508..512].copy_from_slice(&sum.to_le_bytes());
    b
}

/// A dirty hive (its newest write only in the log) and a new-format LOG1 whose one entry
/// carries the changed hive bins page.
fn dirty_hive_new_log() -> (Vec<u8>, Vec<u8>) {
    let old = hive_file(&windows_tree("192.168.10.20"), 9, 8);
    let new = hive_file(&windows_tree("192.168.77.77"), 9, 8);
    let bins = u32::from_le_bytes(old[40..44].try_into().unwrap_or_default());
    let pages: Vec<usize> = (0..bins as usize / 4096)
        .filter(|p| old[4096 + p * 4096..][..4096] != new[4096 + p * 4096..][..4096])
        .collect();
    let mut e = vec![0u8; 40];
    e[..4].copy_from_slice(b"HvLE");
    e[12..16].copy_from_slice(&8u32.to_le_bytes());
    e[16..20].copy_from_slice(&bins.to_le_bytes());
    e[20..24].copy_from_slice(&(pages.len() as u32).to_le_bytes());
    for p in &pages {
        e.extend(((p * 4096) as u32).to_le_bytes());
        e.extend(4096u32.to_le_bytes());
    }
    for p in &pages {
        e.extend_from_slice(&new[4096 + p * 4096..][..4096]);
    }
    e.resize(e.len().div_ceil(512) * 512, 0);
    let size = e.len() as u32;
    e[4..8].copy_from_slice(&size.to_le_bytes());
    let h1 = marvin32(&e[40..]);
    e[24..32].copy_from_slice(&h1.to_le_bytes());
    let h2 = marvin32(&e[..32]);
    e[32..40].copy_from_slice(&h2.to_le_bytes());
    let mut log = log_base(&old, 6, 8);
    log.extend(e);
    (old, log)
}

/// A dirty hive and an old-format LOG1: dirty vector and the changed 512-byte pages.
fn dirty_hive_old_log() -> (Vec<u8>, Vec<u8>) {
    let old = hive_file(&windows_tree("10.0.0.1"), 5, 4);
    let new = hive_file(&windows_tree("10.9.9.9"), 5, 4);
    let bins = u32::from_le_bytes(old[40..44].try_into().unwrap_or_default()) as usize;
    let mut log = log_base(&old, 1, 5);
    let mut bitmap = vec![0u8; (bins / 512).div_ceil(8)];
    let mut pages = vec![];
    for s in 0..bins / 512 {
        let at = 4096 + s * 512;
        if old[at..at + 512] != new[at..at + 512] {
            bitmap[s / 8] |= 1 << (s % 8);
            pages.extend_from_slice(&new[at..at + 512]);
        }
    }
    log.extend_from_slice(b"DIRT");
    log.extend(bitmap);
    log.resize(log.len().div_ceil(512) * 512, 0);
    log.extend(pages);
    (old, log)
}

fn hivelog_input(hive: &[u8], log1: &[u8], log2: &[u8]) -> Vec<u8> {
    let mut v = vec![0xff];
    v.extend((hive.len() as u32).to_le_bytes());
    v.extend((log1.len() as u32).to_le_bytes());
    v.extend_from_slice(hive);
    v.extend_from_slice(log1);
    v.extend_from_slice(log2);
    v
}

#[cfg(test)]
mod tests {
    //! The seeds must be valid inputs, or fuzzing starts from nothing: each is checked to parse.
    use super::*;
    use crate::fuzzing::{pieces, Image, MemFs};
    use crate::image::Dev;
    use std::sync::Arc;

    fn seed(target: &str, name: &str) -> Vec<u8> {
        for_target(target)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d)
            .unwrap_or_else(|| panic!("no seed {target}/{name}"))
    }

    fn dev(data: &[u8]) -> Dev {
        Arc::new(Image::decode(data))
    }

    #[test]
    fn sparse_round_trip() {
        let mut img = vec![0u8; 5000];
        img[600] = 1;
        img[4999] = 2;
        let d = Image::decode(&sparse(&img));
        assert_eq!(d.size, 5000);
        assert_eq!(d.read(0, 5000), img);
    }

    #[test]
    fn qcow2_seeds_open_and_read_their_clusters() {
        for (name, data) in for_target("qcow2") {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("base.raw"), vec![7u8; 65536]).unwrap();
            let p = dir.path().join("x.qcow2");
            std::fs::write(&p, &data).unwrap();
            let (d, _) = crate::image::open_image(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
            let cs = d.size() as usize / 8;
            let mut b = vec![0u8; 3 * cs];
            d.read_at(&mut b, 0)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(b[1], 1, "{name}: data cluster");
            assert!(
                b[cs..2 * cs].iter().all(|&x| x == 0),
                "{name}: zero cluster"
            );
            assert_eq!(b[2 * cs + 5], 1, "{name}: compressed cluster");
        }
    }

    #[test]
    fn partition_seeds_have_their_partitions() {
        for (name, n, kind) in [("mbr-logical", 3, "mbr"), ("gpt", 3, "gpt")] {
            let d = seed("partitions", name);
            let t = crate::part::detect_partitions(&dev(&d[1..]), "/dev/sda").unwrap();
            let got: Vec<_> = t
                .partitions
                .iter()
                .filter(|p| p.report.type_name != "extended")
                .collect();
            assert_eq!(
                (t.kind, got.len(), t.gpt_backup_used),
                (kind, n, false),
                "{name}"
            );
        }
    }

    #[test]
    fn lvm_seed_maps_its_linear_lv() {
        let d = dev(&seed("lvm", "pv-linear"));
        let t = crate::part::detect_partitions(&d, "/dev/sda").unwrap();
        let pv = crate::lvm::read_pv(&t.partitions[0].dev, "/dev/sda1")
            .unwrap()
            .expect("a PV");
        let vgs = crate::lvm::assemble(&[pv]);
        assert_eq!(vgs[0].lv_devs.len(), 1, "{:?}", vgs[0].warnings);
        assert_eq!(vgs[0].lv_devs[0].2.size(), 150 * 4096);
    }

    #[test]
    fn initramfs_seeds_list_their_files() {
        for (name, data) in for_target("initramfs") {
            let l = crate::inspect::linux::initramfs::list_initramfs(&data)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                l.module_names().contains("virtio_blk"),
                "{name}: {:?}",
                l.segments
            );
            assert_eq!(
                l.texts.get("conf/modules").map(|s| s.len()),
                Some(21),
                "{name}"
            );
        }
    }

    #[test]
    fn hive_seed_reads_as_windows() {
        let d = seed("hive", "software+system");
        let mut fs = MemFs::default();
        fs.file("/Windows/System32/config/SOFTWARE", &d[1..])
            .file("/Windows/System32/config/SYSTEM", &d[1..]);
        let w = crate::inspect::windows::detect_windows(&fs.vfs())
            .unwrap()
            .expect("windows");
        assert_eq!(
            (w.product_name.as_str(), w.major, w.arch.as_str()),
            ("Windows 10 Pro", 10, "x86_64")
        );
    }

    #[test]
    fn rpmdb_seed_lists_its_packages() {
        let (_, db) = &for_target("rpmdb")[0];
        let a = crate::inspect::rpmdb::applications(db).unwrap();
        let names: Vec<&str> = a.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["bash", "shadow-utils", "zlib"]);
        assert_eq!(a[1].epoch, 2);
        assert_eq!(a[1].description.len(), 1500);
    }

    #[test]
    fn hivelog_seeds_recover() {
        for (name, data) in for_target("hivelog") {
            let [hive, l1, l2] = crate::fuzzing::three_parts(&data[1..]);
            assert!(crate::inspect::windows::hivelog::is_dirty(&hive), "{name}");
            let r = crate::inspect::windows::hivelog::recover(&hive, Some(&l1), Some(&l2))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(r.pages_applied > 0, "{name}: {:?}", r.notes);
            let h = crate::inspect::windows::hive::Hive::from_bytes("x", r.data).unwrap();
            let k = h
                .open_key("ControlSet001\\Services\\Tcpip\\Parameters\\Interfaces")
                .unwrap();
            let ip = k.unwrap().subkeys().unwrap()[0]
                .value("IPAddress")
                .unwrap()
                .unwrap();
            assert!(
                format!("{:?}", ip.decode()).contains(".77.77")
                    || format!("{:?}", ip.decode()).contains("10.9.9.9"),
                "{name}"
            );
        }
    }

    #[test]
    fn bcd_seed_has_a_default_entry() {
        let d = seed("bcd", "bios");
        let mut fs = MemFs::default();
        fs.file("/Boot/BCD", &d[1..]);
        let vols = vec![crate::fuzzing::mem_volume(
            "/dev/sda1",
            "ntfs",
            std::rc::Rc::new(fs),
        )];
        let mut w = crate::types::WindowsInfo::default();
        let mut warnings = vec![];
        crate::inspect::windows::layout::detect_layout(
            &mut w,
            "/dev/sda1",
            &[],
            &vols,
            &mut warnings,
        );
        let e = w.bcd_default.expect("default entry");
        assert_eq!(e.description.as_deref(), Some("Windows 10"), "{warnings:?}");
    }

    #[test]
    fn linux_tree_seed_is_a_debian_guest() {
        let data = seed("linux_tree", "debian12");
        let fs: std::rc::Rc<dyn crate::fs::GuestFs> =
            std::rc::Rc::new(crate::fuzzing::tree_of(&data));
        let root = crate::fuzzing::mem_volume("/dev/sda1", "ext4", fs.clone());
        let l = crate::inspect::linux::detect_linux(crate::fs::Vfs::new(fs), &root, &[]).unwrap();
        assert_eq!(
            (l.distro.as_str(), l.kernels.len()),
            ("debian", 1),
            "{:?}",
            l.warnings
        );
        assert!(
            !l.bootloader.entries.is_empty() && !l.network.configs.is_empty(),
            "{:?} {:?} {:?}",
            l.bootloader,
            l.network,
            l.warnings
        );
    }

    #[test]
    fn text_seeds_are_found_by_their_detectors() {
        for t in [
            "ifupdown", "netplan", "keyfile", "ifcfg", "wicked", "networkd",
        ] {
            let fs = match t {
                "ifupdown" => crate::fuzzing::tree_for(t, &seed(t, "debian")),
                _ => crate::fuzzing::tree_for(t, &for_target(t)[0].1),
            };
            let n = crate::inspect::linux::network::detect_network(&fs.vfs()).unwrap();
            assert!(
                n.configs.iter().any(|c| !c.interfaces.is_empty()),
                "{t}: {:?}",
                n.warnings
            );
        }
        let fs = crate::fuzzing::tree_for("udev", &seed("udev", "rules"));
        let n = crate::inspect::linux::network::detect_network(&fs.vfs()).unwrap();
        assert_eq!(n.persistent_net_rules.len(), 1);
        let fstab = seed("fstab", "debian");
        let p = pieces(&fstab, 2);
        let f = crate::inspect::fstab::parse_fstab(
            &String::from_utf8_lossy(p[0]),
            &crate::fuzzing::sample_volumes(),
        );
        assert!(
            f.len() >= 9 && f.iter().filter(|e| e.resolves_to.is_some()).count() >= 4,
            "{f:?}"
        );
        for (t, seedname) in [("grub", "debian"), ("grub_legacy", "rhel6")] {
            let fs = crate::fuzzing::tree_for(t, &seed(t, seedname));
            let b = crate::inspect::linux::bootloader::detect_bootloader(&fs.vfs(), None).unwrap();
            assert!(b.entries.len() >= 2, "{t}: {b:?}");
        }
    }
}
