//! Stable identifiers derived from the guest name, so golden files never change between builds:
//! every UUID, serial and GUID is a hash of "<guest>/<purpose>".
use sha2::{Digest, Sha256};

fn digest(guest: &str, what: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(guest.as_bytes());
    h.update(b"/");
    h.update(what.as_bytes());
    h.finalize().into()
}

/// A version-4-shaped UUID, lower case with dashes.
pub fn uuid(guest: &str, what: &str) -> String {
    let mut b = digest(guest, what);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b[..16].iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// 32 hex digits, like /etc/machine-id.
pub fn hex32(guest: &str, what: &str) -> String {
    digest(guest, what)[..16]
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A 32-bit number (MBR disk signature, FAT volume serial).
pub fn u32_of(guest: &str, what: &str) -> u32 {
    let b = digest(guest, what);
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) | 0x1000_0000
}

/// LVM UUID: 32 characters from [0-9a-zA-Z], without dashes (the on-disk form).
pub fn lvm_uuid(guest: &str, what: &str) -> String {
    const ALPHA: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let b = digest(guest, what);
    b.iter()
        .map(|x| ALPHA[*x as usize % ALPHA.len()] as char)
        .collect()
}

/// The 6-4-4-4-4-4-6 printed form of an LVM UUID.
pub fn lvm_uuid_dashed(raw: &str) -> String {
    let mut out = String::new();
    let mut i = 0;
    for (k, n) in [6, 4, 4, 4, 4, 4, 6].iter().enumerate() {
        if k > 0 {
            out.push('-');
        }
        out.push_str(&raw[i..i + n]);
        i += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = uuid("rhel7", "fs/root");
        assert_eq!(a, uuid("rhel7", "fs/root"));
        assert_ne!(a, uuid("rhel7", "fs/boot"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        let l = lvm_uuid("rhel7", "vg");
        assert_eq!(l.len(), 32);
        assert!(l.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(lvm_uuid_dashed(&l).len(), 38);
    }
}
