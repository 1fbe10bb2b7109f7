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
            let pvh = o + le32(&head, o + 20) as usize;
            let raw = String::from_utf8_lossy(&head[pvh..pvh + 32]).to_string();
            return Ok(id(
                "LVM2_member",
                Some(crate::lvm::format_lvm_uuid(&raw)),
                None,
                vec![],
            ));
        }
    }
    if &head[0..6] == b"LUKS\xba\xbe" {
        return Ok(id("crypto_LUKS", cstr(&head[168..208]), None, vec![]));
    }
    if &head[0..4] == b"XFSB" {
        let version = be32(&head, 100) as u16 & 0xf; // sb_versionnum low nibble
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
    if &head[3..11] == b"-FVE-FS-" {
        return Ok(id("BitLocker", None, None, vec![]));
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
