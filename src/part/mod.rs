//! Partition tables: MBR (with extended/logical partitions, through mbrman) and GPT (through
//! gpt, falling back to the backup header when the primary is corrupt). A disk with neither is
//! treated as one volume (a filesystem on the whole disk).
use crate::error::PartError;
use crate::image::{read_vec, Dev, DevReader, Slice};
use crate::types::PartitionReport;
use std::sync::Arc;

/// One partition with its device and what the table says about it.
pub struct Partition {
    pub report: PartitionReport,
    pub dev: Dev,
}

pub struct PartTable {
    /// "mbr", "gpt" or "none".
    pub kind: &'static str,
    pub gpt_backup_used: bool,
    pub disk_guid: Option<String>,
    pub partitions: Vec<Partition>,
    pub warnings: Vec<String>,
    /// Dynamic disks: the LDM disk group named by the PRIVHEAD.
    pub ldm_disk_group: Option<String>,
}

const SECTOR: u64 = 512;

/// Guest device name of partition `n` of disk `disk` ("/dev/sda" + 1 -> "/dev/sda1").
pub fn part_device(disk: &str, n: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{n}")
    } else {
        format!("{disk}{n}")
    }
}

/// Reads the partition table of `dev`, whose guest device name is `disk` (e.g. /dev/sda).
pub fn detect_partitions(dev: &Dev, disk: &str) -> Result<PartTable, PartError> {
    let size = dev.size();
    if size < 2 * SECTOR {
        return Ok(none_table());
    }
    let mbr0 = read_vec(dev.as_ref(), 0, 512)?;
    let has_sig = mbr0[510] == 0x55 && mbr0[511] == 0xAA;
    let protective = has_sig && (0..4).any(|i| mbr0[446 + i * 16 + 4] == 0xEE);
    let gpt_sig = read_vec(dev.as_ref(), SECTOR, 8)? == b"EFI PART";
    if protective || gpt_sig {
        return read_gpt(dev, disk);
    }
    if has_sig && looks_like_mbr(&mbr0) {
        return read_mbr(dev, disk);
    }
    Ok(none_table())
}

fn none_table() -> PartTable {
    PartTable {
        kind: "none",
        gpt_backup_used: false,
        disk_guid: None,
        partitions: vec![],
        warnings: vec![],
        ldm_disk_group: None,
    }
}

/// A boot sector of a filesystem also ends in 55AA; an MBR has sane entries (boot flag 0 or
/// 0x80, and at least one non-empty entry) and no filesystem signature.
fn looks_like_mbr(s: &[u8]) -> bool {
    if &s[3..11] == b"NTFS    "
        || &s[82..87] == b"FAT32"
        || &s[54..59] == b"FAT16"
        || &s[54..59] == b"FAT12"
    {
        return false;
    }
    let mut any = false;
    for i in 0..4 {
        let e = &s[446 + i * 16..446 + i * 16 + 16];
        if e[0] != 0 && e[0] != 0x80 {
            return false;
        }
        if e[4] != 0 {
            any = true;
        }
    }
    any
}

fn mbr_type_name(t: u8) -> &'static str {
    match t {
        0x83 => "linux",
        0x8e => "lvm",
        0x82 => "linux-swap",
        0x05 | 0x0f | 0x85 => "extended",
        0x07 => "ntfs",
        0x0b | 0x0c | 0x0e | 0x06 | 0x04 | 0x01 => "fat",
        0xef => "efi-system",
        0xfd => "linux-raid",
        0x42 => "windows-dynamic",
        0x27 => "windows-recovery",
        _ => "other",
    }
}

/// Most logical partitions followed in an extended partition's EBR chain (Linux: 60).
const MAX_LOGICAL: usize = 128;

fn is_extended(sys: u8) -> bool {
    matches!(sys, 0x05 | 0x0f | 0x85)
}

/// Checks what mbrman trusts before it walks the table: an extended partition starting at LBA 0
/// (it re-reads the MBR as an EBR and panics, issue #8), every partition starting at LBA 0
/// (issue #12), EBR links outside the extended partition or the disk, chains that loop or run
/// past [`MAX_LOGICAL`].
fn check_mbr_chain(dev: &Dev, disk: &str) -> Result<(), PartError> {
    let corrupt = |what: String| PartError::Corrupt {
        disk: disk.into(),
        what: format!("MBR partition table: {what}"),
    };
    let sectors = dev.size() / SECTOR;
    let entry = |b: &[u8], i: usize| {
        let o = 446 + 16 * i;
        let le = |x: usize| u32::from_le_bytes([b[x], b[x + 1], b[x + 2], b[x + 3]]) as u64;
        (b[o + 4], le(o + 8), le(o + 12))
    };
    let mut mbr = [0u8; 512];
    dev.read_at(&mut mbr, 0)?;
    // mbrman derives an alignment from the used entries' start LBAs and panics (unwrap on an
    // empty range) when every one of them is 0 (issue #12).
    let used: Vec<u64> = (0..4)
        .map(|i| entry(&mbr, i))
        .filter(|e| e.0 != 0)
        .map(|e| e.1)
        .collect();
    if !used.is_empty() && used.iter().all(|&start| start == 0) {
        return Err(corrupt(
            "every partition starts at LBA 0, over the partition table itself".into(),
        ));
    }
    for i in 0..4 {
        let (sys, start, len) = entry(&mbr, i);
        if !is_extended(sys) || len == 0 {
            continue;
        }
        if start == 0 || start >= sectors {
            return Err(corrupt(format!(
                "extended partition {} starts at LBA {start}, outside 1..{sectors}",
                i + 1
            )));
        }
        let mut ebr = start;
        let mut seen = std::collections::BTreeSet::new();
        loop {
            if !seen.insert(ebr) || seen.len() > MAX_LOGICAL {
                return Err(corrupt(format!(
                    "extended partition {}: EBR chain loops or holds more than {MAX_LOGICAL} logical partitions",
                    i + 1
                )));
            }
            let mut b = [0u8; 512];
            dev.read_at(&mut b, ebr * SECTOR)?;
            if b[510..512] != [0x55, 0xaa] {
                break; // mbrman stops at an EBR without a signature too
            }
            // mbrman adds the logical entry's start to the EBR's LBA in u32, whatever its type,
            // and panics (overflow checks) or wraps past LBA 2^32 (issue #12).
            let (_, rel, _) = entry(&b, 0);
            if ebr + rel > u64::from(u32::MAX) {
                return Err(corrupt(format!(
                    "logical partition of the EBR at LBA {ebr} starts at LBA {}, past 2^32",
                    ebr + rel
                )));
            }
            let (next_sys, next_rel, next_len) = entry(&b, 1);
            if next_sys == 0 || next_len == 0 {
                break;
            }
            let next = start + next_rel;
            let past = next > u64::from(u32::MAX);
            if next_rel == 0 || past || next >= sectors || next >= start + len {
                return Err(corrupt(format!(
                    "EBR at LBA {ebr} links to LBA {next}, outside the extended partition {start}+{len}"
                )));
            }
            ebr = next;
        }
    }
    Ok(())
}

fn read_mbr(dev: &Dev, disk: &str) -> Result<PartTable, PartError> {
    check_mbr_chain(dev, disk)?;
    let mut r = DevReader::new(dev.clone());
    let mbr = mbrman::MBR::read_from(&mut r, SECTOR as u32).map_err(|e| PartError::Corrupt {
        disk: disk.into(),
        what: format!("MBR partition table: {e}"),
    })?;
    let mut t = none_table();
    t.kind = "mbr";
    for (i, e) in mbr.iter() {
        if e.sys == 0 || e.sectors == 0 {
            continue;
        }
        let n = i as u32;
        let start = e.starting_lba as u64 * SECTOR;
        let len = e.sectors as u64 * SECTOR;
        if start + len > dev.size() {
            t.warnings.push(format!(
                "{disk}: partition {n} ends at byte {} past the end of the {}-byte disk (truncated image?)",
                start + len,
                dev.size()
            ));
        }
        let device = part_device(disk, n);
        let report = PartitionReport {
            number: n,
            device: device.clone(),
            start,
            size: len,
            type_id: format!("{:02x}", e.sys),
            type_name: mbr_type_name(e.sys).into(),
            part_uuid: mbr_disk_signature(dev).map(|sig| format!("{sig:08x}-{n:02x}")),
            name: None,
            bootable: e.boot == 0x80,
            logical: n > 4,
        };
        let d: Dev = Arc::new(Slice::new(dev.clone(), start, len, device));
        t.partitions.push(Partition { report, dev: d });
    }
    // A dynamic disk on MBR: type 0x42 entries, PRIVHEAD in sector 6.
    if t.partitions.iter().any(|p| p.report.type_id == "42") {
        ldm_check(dev, disk, LDM_MBR_PRIVHEAD_LBA, &mut t);
    }
    Ok(t)
}

/// Where an MBR dynamic disk keeps its LDM PRIVHEAD; its copies sit in the private region (the
/// LDM database) in the last MiB of the disk.
const LDM_MBR_PRIVHEAD_LBA: u64 = 6;

/// Reads the LDM PRIVHEAD (big-endian) at `lba`: the disk group name, or why it is not there.
fn ldm_privhead(dev: &Dev, lba: u64) -> Result<String, String> {
    let b = read_vec(dev.as_ref(), lba * SECTOR, SECTOR as usize).map_err(|e| e.to_string())?;
    if &b[0..8] != b"PRIVHEAD" {
        return Err(format!("no PRIVHEAD at LBA {lba}"));
    }
    let (major, minor) = (
        u16::from_be_bytes([b[12], b[13]]),
        u16::from_be_bytes([b[14], b[15]]),
    );
    if major != 2 || !(11..=12).contains(&minor) {
        return Err(format!(
            "PRIVHEAD at LBA {lba} has unknown version {major}.{minor}"
        ));
    }
    let name = &b[0xF0..0xF0 + 31];
    let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    Ok(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// Records the LDM disk group of a dynamic disk, or warns that the LDM database is missing.
/// revirt does not assemble LDM volumes: partitions are read where an entry maps them.
fn ldm_check(dev: &Dev, disk: &str, lba: u64, t: &mut PartTable) {
    match ldm_privhead(dev, lba) {
        Ok(group) => t.ldm_disk_group = Some(group),
        Err(why) => t.warnings.push(format!(
            "{disk}: dynamic disk (LDM partition types) but {why}; the LDM database may be damaged"
        )),
    }
}

fn mbr_disk_signature(dev: &Dev) -> Option<u32> {
    let b = read_vec(dev.as_ref(), 440, 4).ok()?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn gpt_type_name(t: &uuid::Uuid) -> &'static str {
    match t.to_string().as_str() {
        "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" => "efi-system",
        "21686148-6449-6e6f-744e-656564454649" => "bios-boot",
        "0fc63daf-8483-4772-8e79-3d69d8477de4" => "linux",
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709" => "linux-root-x86-64",
        "e6d6d379-f507-44c2-a23c-238f2a3df928" => "lvm",
        "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f" => "linux-swap",
        "bc13c2ff-59e6-4262-a352-b275fd6f7172" => "linux-xbootldr",
        "933ac7e1-2eb4-4f13-b844-0e14e2aef915" => "linux-home",
        "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7" => "basic-data",
        "e3c9e316-0b5c-4db8-817d-f92df00215ae" => "microsoft-reserved",
        "de94bba4-06d1-4d40-a16a-bfd50179d6ac" => "windows-recovery",
        "5808c8aa-7e8f-42e0-85d2-e1e90434cfb3" => "windows-ldm-metadata",
        "af9b60a0-1431-4f62-bc68-3311714a69ad" => "windows-ldm-data",
        "a19d880f-05fc-4d3b-a006-743f0f84911e" => "linux-raid",
        _ => "other",
    }
}

fn read_gpt(dev: &Dev, disk: &str) -> Result<PartTable, PartError> {
    let lb = gpt::disk::LogicalBlockSize::Lb512;
    let mut r = DevReader::new(dev.clone());
    let mut t = none_table();
    t.kind = "gpt";
    let primary = gpt::header::read_header_from_arbitrary_device(&mut r, lb)
        .map_err(|e| format!("{e}"))
        .and_then(|h| check_entries(dev, &h).map(|_| h));
    let header = match primary {
        Ok(h) => h,
        Err(why) => {
            // The backup header sits in the last sector. gpt reads a header at LBA 1 of whatever
            // device it is given, so hand it a view that starts one sector before the last one.
            let last = dev.size() / SECTOR - 1;
            let view: Dev = Arc::new(Slice::new(
                dev.clone(),
                (last - 1) * SECTOR,
                2 * SECTOR,
                disk.into(),
            ));
            let mut vr = DevReader::new(view);
            let backup = gpt::header::read_header_from_arbitrary_device(&mut vr, lb)
                .map_err(|e| format!("{e}"))
                .and_then(|h| check_entries(dev, &h).map(|_| h));
            match backup {
                Ok(h) => {
                    t.gpt_backup_used = true;
                    t.warnings.push(format!(
                        "{disk}: primary GPT header is corrupt ({why}); using the backup header at LBA {last}"
                    ));
                    h
                }
                Err(why2) => {
                    return Err(PartError::Corrupt {
                        disk: disk.into(),
                        what: format!("GPT: primary header corrupt ({why}) and backup header at LBA {last} corrupt ({why2})"),
                    })
                }
            }
        }
    };
    t.disk_guid = Some(header.disk_guid.to_string());
    let parts = gpt::partition::file_read_partitions(&mut r, &header, lb).map_err(|e| {
        PartError::Corrupt {
            disk: disk.into(),
            what: format!("GPT partition entries at LBA {}: {e}", header.part_start),
        }
    })?;
    for (n, p) in parts {
        if !p.is_used() {
            continue;
        }
        // LBAs are tenant data: a range whose byte offsets overflow is no partition (issue #12).
        let sectors = p.last_lba.saturating_add(1).saturating_sub(p.first_lba);
        let (Some(start), Some(len)) =
            (p.first_lba.checked_mul(SECTOR), sectors.checked_mul(SECTOR))
        else {
            t.warnings.push(format!(
                "{disk}: GPT partition {n}: LBA range {}..={} lies beyond any disk; ignored",
                p.first_lba, p.last_lba
            ));
            continue;
        };
        let device = part_device(disk, n);
        let report = PartitionReport {
            number: n,
            device: device.clone(),
            start,
            size: len,
            type_id: p.part_type_guid.guid.to_string(),
            type_name: gpt_type_name(&p.part_type_guid.guid).into(),
            part_uuid: Some(p.part_guid.to_string()),
            name: (!p.name.is_empty()).then(|| p.name.clone()),
            bootable: p.flags & 4 != 0,
            logical: false,
        };
        let d: Dev = Arc::new(Slice::new(dev.clone(), start, len, device));
        t.partitions.push(Partition { report, dev: d });
    }
    // A dynamic disk on GPT: the LDM metadata partition ends with the PRIVHEAD.
    let meta = t
        .partitions
        .iter()
        .find(|p| p.report.type_name == "windows-ldm-metadata")
        .map(|p| (p.report.start.saturating_add(p.report.size) / SECTOR).saturating_sub(1));
    if let Some(lba) = meta {
        ldm_check(dev, disk, lba, &mut t);
    }
    Ok(t)
}

/// Validates what gpt does not: entry size (gpt asserts 128 and would panic), table bounds, and
/// the CRC of the entry array.
fn check_entries(dev: &Dev, h: &gpt::header::Header) -> Result<(), String> {
    if h.part_size != 128 {
        return Err(format!("unsupported partition entry size {}", h.part_size));
    }
    if h.num_parts == 0 || h.num_parts > 4096 {
        return Err(format!("implausible partition entry count {}", h.num_parts));
    }
    let len = h.num_parts as usize * 128;
    let off = h
        .part_start
        .checked_mul(SECTOR)
        .ok_or("entry array offset overflows")?;
    let bytes = read_vec(dev.as_ref(), off, len).map_err(|e| e.to_string())?;
    let mut crc = flate2::Crc::new();
    crc.update(&bytes);
    if crc.sum() != h.crc32_parts {
        return Err(format!(
            "partition entry array CRC mismatch at LBA {}",
            h.part_start
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::image::MemDev as Mem;

    /// A 2 MiB MBR disk with one type-0x42 partition, with or without a PRIVHEAD in sector 6.
    fn dynamic_mbr(privhead: bool) -> Dev {
        let mut d = vec![0u8; 2 << 20];
        let e = &mut d[446..462];
        e[0] = 0x80;
        e[4] = 0x42;
        e[8..12].copy_from_slice(&2048u32.to_le_bytes());
        e[12..16].copy_from_slice(&1024u32.to_le_bytes());
        d[510] = 0x55;
        d[511] = 0xAA;
        if privhead {
            let p = &mut d[6 * 512..7 * 512];
            p[0..8].copy_from_slice(b"PRIVHEAD");
            p[12..16].copy_from_slice(&[0, 2, 0, 12]);
            p[0xF0..0xF0 + 7].copy_from_slice(b"HOSTDg0");
        }
        Arc::new(Mem(d))
    }

    #[test]
    fn dynamic_mbr_disk_names_its_ldm_disk_group() {
        let t = detect_partitions(&dynamic_mbr(true), "/dev/sda").unwrap();
        assert_eq!(t.ldm_disk_group.as_deref(), Some("HOSTDg0"));
        assert_eq!(t.partitions[0].report.type_name, "windows-dynamic");
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
        let t = detect_partitions(&dynamic_mbr(false), "/dev/sda").unwrap();
        assert_eq!(t.ldm_disk_group, None);
        assert!(
            t.warnings[0].contains("no PRIVHEAD at LBA 6"),
            "{:?}",
            t.warnings
        );
    }

    /// An MBR disk of 4 MiB with one extended partition at `start` (length 4096 sectors).
    fn extended_at(start: u32) -> Vec<u8> {
        let mut d = vec![0u8; 4 << 20];
        let e = &mut d[446..462];
        e[4] = 0x05;
        e[8..12].copy_from_slice(&start.to_le_bytes());
        e[12..16].copy_from_slice(&4096u32.to_le_bytes());
        d[510] = 0x55;
        d[511] = 0xAA;
        d
    }

    /// Writes an EBR at `lba` with one logical partition and a link to `next_rel`.
    fn ebr(d: &mut [u8], lba: usize, next_rel: u32) {
        let b = &mut d[lba * 512..lba * 512 + 512];
        b[446 + 4] = 0x83;
        b[446 + 8..446 + 12].copy_from_slice(&63u32.to_le_bytes());
        b[446 + 12..446 + 16].copy_from_slice(&64u32.to_le_bytes());
        if next_rel != 0 {
            b[462 + 4] = 0x05;
            b[462 + 8..462 + 12].copy_from_slice(&next_rel.to_le_bytes());
            b[462 + 12..462 + 16].copy_from_slice(&128u32.to_le_bytes());
        }
        b[510] = 0x55;
        b[511] = 0xAA;
    }

    #[test]
    fn hostile_extended_partitions_are_corrupt_not_panics() {
        let zero: Dev = Arc::new(Mem(extended_at(0)));
        let e = detect_partitions(&zero, "/dev/sda").err().expect("refused");
        assert!(e.to_string().contains("starts at LBA 0"), "{e}");
        // EBR chain looping back onto itself.
        let mut d = extended_at(2048);
        ebr(&mut d, 2048, 256);
        ebr(&mut d, 2048 + 256, 256);
        let e = detect_partitions(&(Arc::new(Mem(d)) as Dev), "/dev/sda")
            .err()
            .expect("refused");
        assert!(e.to_string().contains("loops"), "{e}");
        // A sane chain of two logical partitions still reads.
        let mut d = extended_at(2048);
        ebr(&mut d, 2048, 256);
        ebr(&mut d, 2048 + 256, 0);
        let t = detect_partitions(&(Arc::new(Mem(d)) as Dev), "/dev/sda").unwrap();
        let logical = t.partitions.iter().filter(|p| p.report.number >= 5).count();
        assert_eq!(logical, 2, "{:?}", t.warnings);
    }
}
