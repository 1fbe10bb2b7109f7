//! Identifies what a device holds from its superblock magic: type, UUID, label, and flags that
//! matter for repair (ext needs_recovery, NTFS dirty). Reads at most a few KiB.
use super::FsIdent;
use crate::error::ImageError;
use crate::image::{read_vec, BlockDevice};

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
}

/// Formats 16 bytes as a canonical lowercase UUID.
pub fn uuid_str(b: &[u8]) -> String {
    uuid::Uuid::from_slice(&b[..16])
        .map(|u| u.to_string())
        .unwrap_or_default()
}

fn cstr(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end]).trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

/// A BitLocker volume, recognised the way libblkid does: the boot sector's jump + OEM id
/// ("-FVE-FS-" for Vista and Windows 7+, "MSWIN4.1" for BitLocker To Go on FAT) and, except on
/// Vista, the first FVE metadata block (offset at 176, or 440 for To Go) starting "-FVE-FS-".
/// Reports the block's version as a flag ("v2"), the volume identifier of the metadata header
/// as the UUID and the description entry ("HOST D: 1/15/2024") as the label.
fn bitlocker(dev: &dyn BlockDevice, head: &[u8]) -> Result<Option<FsIdent>, ImageError> {
    let (vista, meta_at) = match &head[0..11] {
        b"\xeb\x52\x90-FVE-FS-" => (true, 0),
        b"\xeb\x58\x90-FVE-FS-" => (false, 176),
        b"\xeb\x58\x90MSWIN4.1" => (false, 440),
        _ => return Ok(None),
    };
    let mut ident = FsIdent {
        fstype: "BitLocker".into(),
        uuid: None,
        label: None,
        flags: vec![],
    };
    if vista {
        return Ok(Some(ident));
    }
    let off = u64::from_le_bytes(head[meta_at..meta_at + 8].try_into().unwrap_or_default());
    if off == 0 || off % 64 != 0 || off.saturating_add(4096) > dev.size() {
        return Ok(None); // a FAT volume (To Go id without metadata) or garbage
    }
    let m = read_vec(dev, off, 4096)?;
    if &m[0..8] != b"-FVE-FS-" {
        return Ok(None);
    }
    ident.flags.push(format!("v{}", le16(&m, 10)));
    // Metadata header at 64: size, version, header size, size copy, volume identifier.
    let (size, hsize) = (le32(&m, 64) as usize, le32(&m, 72) as usize);
    ident.uuid = Some(guid_str(&m[80..96]));
    // Entries follow the header: size, type (7 = description), value type (2 = UTF-16 string).
    let end = (64 + size).min(m.len());
    let mut at = 64 + hsize;
    while at + 8 <= end {
        let len = le16(&m, at) as usize;
        if len < 8 || at + len > end {
            break;
        }
        if le16(&m, at + 2) == 7 && le16(&m, at + 4) == 2 {
            let units: Vec<u16> = m[at + 8..at + len]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&u| u != 0)
                .collect();
            ident.label = Some(String::from_utf16_lossy(&units)).filter(|l| !l.is_empty());
            break;
        }
        at += len;
    }
    Ok(Some(ident))
}

/// A Windows GUID (little-endian first three fields) in canonical lowercase form.
fn guid_str(b: &[u8]) -> String {
    uuid::Uuid::from_slice_le(&b[..16])
        .map(|u| u.to_string())
        .unwrap_or_default()
}

/// Returns `Ok(None)` when nothing is recognised (empty or unknown content).
pub fn probe(dev: &dyn BlockDevice) -> Result<Option<FsIdent>, ImageError> {
    let size = dev.size();
    if size < 4096 {
        return Ok(None);
    }
    let head = read_vec(dev, 0, 4096.min(size as usize))?;
    let id = |t: &str, uuid: Option<String>, label: Option<String>, flags: Vec<String>| {
        Some(FsIdent {
            fstype: t.into(),
            uuid,
            label,
            flags,
        })
    };
    // LVM2 PV label in one of the first four sectors.
    for s in 0..4 {
        let o = s * 512;
        if &head[o..o + 8] == b"LABELONE" && &head[o + 24..o + 32] == b"LVM2 001" {
            // The pv_header offset is tenant data: outside the sector read, no UUID (read_pv
            // then reports the label corrupt) rather than a slice past the end (issue #12).
            let pvh = o.saturating_add(le32(&head, o + 20) as usize);
            let uuid = head
                .get(pvh..pvh.saturating_add(32))
                .map(|raw| crate::lvm::format_lvm_uuid(&String::from_utf8_lossy(raw)));
            return Ok(id("LVM2_member", uuid, None, vec![]));
        }
    }
    if &head[0..6] == b"LUKS\xba\xbe" {
        return Ok(id("crypto_LUKS", cstr(&head[168..208]), None, vec![]));
    }
    if &head[0..4] == b"XFSB" {
        let version = (be32(&head, 100) >> 16) & 0xf; // sb_versionnum (be16 at 100), low nibble
        return Ok(id(
            "xfs",
            Some(uuid_str(&head[32..48])),
            cstr(&head[108..120]),
            vec![format!("v{version}")],
        ));
    }
    // ext2/3/4: superblock at 1024, magic at +56.
    let sb = &head[1024..2048];
    if le16(sb, 56) == 0xEF53 {
        let compat = le32(sb, 92);
        let incompat = le32(sb, 96);
        let ro_compat = le32(sb, 100);
        let t = if incompat & 0x2c0 != 0 || ro_compat & 0x8 != 0 || incompat & 0x40 != 0 {
            "ext4" // extents, 64bit, flex_bg, huge_file
        } else if compat & 0x4 != 0 {
            "ext3" // has_journal
        } else {
            "ext2"
        };
        let mut flags = vec![];
        if incompat & 0x4 != 0 {
            flags.push("needs_recovery".into());
        }
        if le16(sb, 58) & 1 == 0 {
            flags.push("not_clean".into());
        }
        return Ok(id(
            t,
            Some(uuid_str(&sb[104..120])),
            cstr(&sb[120..136]),
            flags,
        ));
    }
    // NTFS boot sector.
    if &head[3..11] == b"NTFS    " {
        let serial = u64::from_le_bytes(head[72..80].try_into().unwrap());
        return Ok(id("ntfs", Some(format!("{serial:016X}")), None, vec![]));
    }
    if let Some(b) = bitlocker(dev, &head)? {
        return Ok(Some(b));
    }
    // FAT: boot signature plus a filesystem type string.
    if head[510] == 0x55 && head[511] == 0xAA {
        let fat32 = &head[82..87] == b"FAT32";
        let fat1x =
            &head[54..59] == b"FAT12" || &head[54..59] == b"FAT16" || &head[54..57] == b"FAT";
        if fat32 || fat1x {
            let (serial_off, label_off) = if fat32 { (67, 71) } else { (39, 43) };
            let serial = le32(&head, serial_off);
            let uuid = format!("{:04X}-{:04X}", serial >> 16, serial & 0xffff);
            let label = cstr(&head[label_off..label_off + 11]).filter(|l| l != "NO NAME");
            return Ok(id("vfat", Some(uuid), label, vec![]));
        }
    }
    // Swap: signature at the end of the first page.
    if &head[4086..4096] == b"SWAPSPACE2" || &head[4086..4096] == b"SWAP-SPACE" {
        return Ok(id(
            "swap",
            Some(uuid_str(&head[1036..1052])),
            cstr(&head[1052..1068]),
            vec![],
        ));
    }
    // btrfs: superblock at 64 KiB.
    if size >= 0x10000 + 4096 {
        let b = read_vec(dev, 0x10000, 4096)?;
        if &b[64..72] == b"_BHRfS_M" {
            return Ok(id(
                "btrfs",
                Some(uuid_str(&b[32..48])),
                cstr(&b[0x12b..0x12b + 256]),
                vec![],
            ));
        }
    }
    // ISO 9660 at 32 KiB.
    if size >= 0x8000 + 2048 {
        let b = read_vec(dev, 0x8000, 2048)?;
        if &b[1..6] == b"CD001" {
            return Ok(id("iso9660", None, cstr(&b[40..72]), vec![]));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::image::MemDev as Mem;

    /// A Windows 7+ BitLocker volume: boot sector, one FVE metadata block at 64 KiB with a
    /// header (volume id) and a description entry.
    fn fve(jump_oem: &[u8], meta_at: usize, with_block: bool) -> Mem {
        let mut d = vec![0u8; 256 * 1024];
        d[0..11].copy_from_slice(jump_oem);
        d[meta_at..meta_at + 8].copy_from_slice(&65536u64.to_le_bytes());
        d[510] = 0x55;
        d[511] = 0xAA;
        if with_block {
            let m = &mut d[65536..];
            m[0..8].copy_from_slice(b"-FVE-FS-");
            m[10] = 2;
            let desc: Vec<u8> = "PC C: 1/1/2024\0"
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes())
                .collect();
            let size = 48 + 8 + desc.len();
            m[64..68].copy_from_slice(&(size as u32).to_le_bytes());
            m[72..76].copy_from_slice(&48u32.to_le_bytes());
            m[80..96].copy_from_slice(&[
                0x3b, 0xd6, 0x67, 0x49, 0x29, 0x2e, 0xd8, 0x4a, 0x83, 0x99, 0xf6, 0xa3, 0x39, 0xe3,
                0xd0, 0x01,
            ]);
            let e = 64 + 48;
            m[e..e + 2].copy_from_slice(&((8 + desc.len()) as u16).to_le_bytes());
            m[e + 2] = 7;
            m[e + 4] = 2;
            m[e + 8..e + 8 + desc.len()].copy_from_slice(&desc);
        }
        Mem(d)
    }

    #[test]
    fn bitlocker_needs_its_metadata_block_and_reports_id_and_label() {
        let b = probe(&fve(b"\xeb\x58\x90-FVE-FS-", 176, true))
            .unwrap()
            .unwrap();
        assert_eq!(b.fstype, "BitLocker");
        assert_eq!(
            b.uuid.as_deref(),
            Some("4967d63b-2e29-4ad8-8399-f6a339e3d001")
        );
        assert_eq!(b.label.as_deref(), Some("PC C: 1/1/2024"));
        assert_eq!(b.flags, vec!["v2".to_string()]);
        // The OEM id alone (no metadata block where the header points) is not BitLocker.
        assert!(probe(&fve(b"\xeb\x58\x90-FVE-FS-", 176, false))
            .unwrap()
            .is_none());
        // BitLocker To Go: FAT-looking boot sector, metadata offset at 440.
        let togo = probe(&fve(b"\xeb\x58\x90MSWIN4.1", 440, true))
            .unwrap()
            .unwrap();
        assert_eq!(togo.fstype, "BitLocker");
        // Vista has no metadata pointer in the boot sector: the jump + OEM id decide.
        let vista = probe(&fve(b"\xeb\x52\x90-FVE-FS-", 176, false))
            .unwrap()
            .unwrap();
        assert_eq!((vista.fstype.as_str(), vista.uuid), ("BitLocker", None));
    }
}
