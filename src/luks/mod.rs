//! LUKS1 and LUKS2 volumes opened in-process (issue #11), never through dm-crypt on the host.
//!
//! ```text
//! read_header: binary header(s) -> (LUKS2: checksum, newest valid copy, JSON) -> Header
//! unlock:      passphrase -> slot KDF (PBKDF2 / Argon2, costs capped: the tenant chose them)
//!              -> decrypt the slot's key material -> AF-merge -> volume key -> digest check
//! CryptDev:    payload sectors decrypted on read (AES-XTS-plain64, AES-CBC-ESSIV)
//! ```
//! Every number in a header is the tenant's: offsets and sizes are checked against the device,
//! KDF costs against [`Limits`], before anything is allocated or derived.
pub mod keys;

use crate::error::ImageError;
use crate::image::{read_vec, BlockDevice, Dev, Extent};
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use sha2::Digest as _;
use std::sync::Arc;

/// Why a LUKS volume cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum LuksError {
    #[error("{dev}: corrupt LUKS header: {what}")]
    Corrupt { dev: String, what: String },
    #[error("{dev}: LUKS volume not supported: {what}")]
    Unsupported { dev: String, what: String },
    #[error("{dev}: LUKS keyslot {slot}: {what} is above revirt's cap ({cap}); refused")]
    TooCostly {
        dev: String,
        slot: u32,
        what: String,
        cap: String,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// Caps on what a keyslot may cost to try (a tenant picks its KDF parameters).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub pbkdf2_iterations: u32,
    pub argon2_memory_kib: u32,
    pub argon2_time: u32,
    /// Argon2 memory x passes, in KiB: ~1 s of one core per GiB-pass.
    pub argon2_work_kib: u64,
    /// Keyslots tried per volume and key.
    pub slots: usize,
}

impl Default for Limits {
    /// cryptsetup's defaults fit (PBKDF2 for ~2 s on a fast host; Argon2 up to 1 GiB x 16).
    fn default() -> Self {
        Limits {
            pbkdf2_iterations: 20_000_000,
            argon2_memory_kib: 1 << 20,
            argon2_time: 64,
            argon2_work_kib: 16 << 20,
            slots: 8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha512,
}

impl Hash {
    fn parse(dev: &str, s: &str) -> Result<Hash, LuksError> {
        match s.to_ascii_lowercase().as_str() {
            "sha1" => Ok(Hash::Sha1),
            "sha256" => Ok(Hash::Sha256),
            "sha512" => Ok(Hash::Sha512),
            other => Err(unsupported(dev, format!("hash {other:?}"))),
        }
    }
    fn len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha512 => 64,
        }
    }
    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut h = D::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().to_vec()
        }
        match self {
            Hash::Sha1 => run::<sha1::Sha1>(parts),
            Hash::Sha256 => run::<sha2::Sha256>(parts),
            Hash::Sha512 => run::<sha2::Sha512>(parts),
        }
    }
    fn pbkdf2(self, pass: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
        match self {
            Hash::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(pass, salt, iterations, out),
            Hash::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(pass, salt, iterations, out),
            Hash::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(pass, salt, iterations, out),
        }
    }
}

#[derive(Debug, Clone)]
enum Kdf {
    Pbkdf2 {
        hash: Hash,
        iterations: u32,
        salt: Vec<u8>,
    },
    Argon2 {
        id: bool,
        time: u32,
        memory_kib: u32,
        lanes: u32,
        salt: Vec<u8>,
    },
}

/// One active keyslot: how to turn a passphrase into the key that decrypts its key material.
#[derive(Debug, Clone)]
struct Keyslot {
    index: u32,
    kdf: Kdf,
    /// Key material: offset and length in bytes from the start of the LUKS device.
    area_offset: u64,
    area_len: u64,
    area_cipher: Cipher,
    area_key_size: usize,
    stripes: u32,
    af_hash: Hash,
    /// Bytes of the volume key this slot holds.
    key_size: usize,
}

/// The volume key check: PBKDF2 of the key must give `digest`.
#[derive(Debug, Clone)]
struct KeyDigest {
    hash: Hash,
    iterations: u32,
    salt: Vec<u8>,
    digest: Vec<u8>,
    /// LUKS2: the keyslots this digest covers (LUKS1: all).
    slots: Option<Vec<u32>>,
}

/// How sectors are encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// aes-xts-plain64 (and aes-xts-plain, the same below 2 TiB).
    AesXts,
    /// aes-cbc-essiv:sha256 (LUKS1 before cryptsetup 1.6: RHEL 6 era).
    AesCbcEssiv,
}

impl Cipher {
    fn parse(dev: &str, spec: &str) -> Result<Cipher, LuksError> {
        match spec.to_ascii_lowercase().as_str() {
            "aes-xts-plain64" | "aes-xts-plain" => Ok(Cipher::AesXts),
            "aes-cbc-essiv:sha256" => Ok(Cipher::AesCbcEssiv),
            other => Err(unsupported(
                dev,
                format!("cipher {other:?} (revirt opens aes-xts-plain64 and aes-cbc-essiv:sha256)"),
            )),
        }
    }
    pub fn spec(self) -> &'static str {
        match self {
            Cipher::AesXts => "aes-xts-plain64",
            Cipher::AesCbcEssiv => "aes-cbc-essiv:sha256",
        }
    }
    fn key_ok(self, len: usize) -> bool {
        match self {
            Cipher::AesXts => len == 32 || len == 64,
            Cipher::AesCbcEssiv => len == 16 || len == 32,
        }
    }
}

/// A parsed LUKS header.
#[derive(Debug, Clone)]
pub struct Header {
    pub version: u16,
    pub uuid: String,
    pub label: Option<String>,
    pub cipher: Cipher,
    pub key_size: usize,
    /// The encrypted payload: offset and length in bytes on the LUKS device.
    pub payload_offset: u64,
    pub payload_len: u64,
    pub sector_size: u64,
    slots: Vec<Keyslot>,
    digests: Vec<KeyDigest>,
}

fn corrupt(dev: &str, what: impl Into<String>) -> LuksError {
    LuksError::Corrupt {
        dev: dev.into(),
        what: what.into(),
    }
}

fn unsupported(dev: &str, what: impl Into<String>) -> LuksError {
    LuksError::Unsupported {
        dev: dev.into(),
        what: what.into(),
    }
}

fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}
fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
}
fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().unwrap())
}
fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

const MAGIC: &[u8; 6] = b"LUKS\xba\xbe";
const MAGIC2: &[u8; 6] = b"SKUL\xba\xbe";
const SECTOR: u64 = 512;

/// The LUKS header on `dev`, or None when there is no LUKS magic at its start.
pub fn read_header(dev: &dyn BlockDevice) -> Result<Option<Header>, LuksError> {
    let name = dev.name();
    if dev.size() < 1024 {
        return Ok(None);
    }
    let head = read_vec(dev, 0, 1024)?;
    if &head[0..6] != MAGIC {
        return Ok(None);
    }
    let h = match be16(&head, 6) {
        1 => luks1(dev, &name, &head)?,
        2 => luks2(dev, &name)?,
        v => return Err(unsupported(&name, format!("LUKS version {v}"))),
    };
    check_payload(dev, &name, &h)?;
    Ok(Some(h))
}

fn check_payload(dev: &dyn BlockDevice, name: &str, h: &Header) -> Result<(), LuksError> {
    if !h.cipher.key_ok(h.key_size) {
        return Err(unsupported(
            name,
            format!("{}-byte key for {}", h.key_size, h.cipher.spec()),
        ));
    }
    if !h.payload_offset.is_multiple_of(SECTOR)
        || h.payload_offset.saturating_add(h.payload_len) > dev.size()
    {
        return Err(corrupt(
            name,
            format!(
                "payload {}+{} outside the {}-byte device",
                h.payload_offset,
                h.payload_len,
                dev.size()
            ),
        ));
    }
    for s in &h.slots {
        if s.area_offset.saturating_add(s.area_len) > dev.size() {
            return Err(corrupt(
                name,
                format!("keyslot {} key material outside the device", s.index),
            ));
        }
    }
    Ok(())
}

fn luks1(dev: &dyn BlockDevice, name: &str, b: &[u8]) -> Result<Header, LuksError> {
    let cipher = Cipher::parse(name, &format!("{}-{}", cstr(&b[8..40]), cstr(&b[40..72])))?;
    let hash = Hash::parse(name, &cstr(&b[72..104]))?;
    let key_size = be32(b, 108) as usize;
    let payload_offset = u64::from(be32(b, 104)) * SECTOR;
    let mut slots = vec![];
    for i in 0..8u32 {
        let o = 208 + 48 * i as usize;
        match be32(b, o) {
            0x00AC_71F3 => {}
            0x0000_DEAD => continue,
            s => return Err(corrupt(name, format!("keyslot {i}: state {s:#x}"))),
        }
        let stripes = be32(b, o + 44);
        if !(1..=65536).contains(&stripes) || !(16..=64).contains(&key_size) {
            return Err(corrupt(
                name,
                format!("keyslot {i}: {stripes} stripes of {key_size} bytes"),
            ));
        }
        slots.push(Keyslot {
            index: i,
            kdf: Kdf::Pbkdf2 {
                hash,
                iterations: be32(b, o + 4),
                salt: b[o + 8..o + 40].to_vec(),
            },
            area_offset: u64::from(be32(b, o + 40)) * SECTOR,
            area_len: af_len(key_size, stripes),
            area_cipher: cipher,
            area_key_size: key_size,
            stripes,
            af_hash: hash,
            key_size,
        });
    }
    Ok(Header {
        version: 1,
        uuid: cstr(&b[168..208]),
        label: None,
        cipher,
        key_size,
        payload_offset,
        payload_len: dev.size().saturating_sub(payload_offset) / SECTOR * SECTOR,
        sector_size: SECTOR,
        slots,
        digests: vec![KeyDigest {
            hash,
            iterations: be32(b, 164),
            salt: b[132..164].to_vec(),
            digest: b[112..132].to_vec(),
            slots: None,
        }],
    })
}

/// Bytes of AF-split key material, whole sectors.
fn af_len(key_size: usize, stripes: u32) -> u64 {
    (key_size as u64 * u64::from(stripes)).div_ceil(SECTOR) * SECTOR
}

/// LUKS2 binary header sizes cryptsetup writes (header + JSON area).
const LUKS2_SIZES: [u64; 9] = [
    16 << 10,
    32 << 10,
    64 << 10,
    128 << 10,
    256 << 10,
    512 << 10,
    1 << 20,
    2 << 20,
    4 << 20,
];

/// One LUKS2 header copy at `at` whose magic, size and checksum hold.
struct Luks2Copy {
    seqid: u64,
    size: u64,
    json: serde_json::Value,
    uuid: String,
    label: String,
}

fn luks2_copy(
    dev: &dyn BlockDevice,
    name: &str,
    at: u64,
    magic: &[u8; 6],
) -> Result<Option<Luks2Copy>, LuksError> {
    if at + 4096 > dev.size() {
        return Ok(None);
    }
    let bin = read_vec(dev, at, 4096)?;
    if &bin[0..6] != magic || be16(&bin, 6) != 2 {
        return Ok(None);
    }
    let size = be64(&bin, 8);
    if !LUKS2_SIZES.contains(&size) || at + size > dev.size() || be64(&bin, 256) != at {
        return Ok(None);
    }
    let mut all = read_vec(dev, at, size as usize)?;
    let alg = cstr(&bin[72..104]);
    let hash = Hash::parse(name, &alg)?;
    let want = all[448..448 + hash.len()].to_vec();
    all[448..512].fill(0);
    if hash.digest(&[&all]) != want {
        return Ok(None);
    }
    let json = &all[4096..];
    let end = json.iter().position(|&c| c == 0).unwrap_or(json.len());
    let v = serde_json::from_slice(&json[..end])
        .map_err(|e| corrupt(name, format!("JSON metadata at {at}: {e}")))?;
    Ok(Some(Luks2Copy {
        seqid: be64(&bin, 16),
        size,
        json: v,
        uuid: cstr(&bin[168..208]),
        label: cstr(&bin[24..72]),
    }))
}

fn luks2(dev: &dyn BlockDevice, name: &str) -> Result<Header, LuksError> {
    let primary = luks2_copy(dev, name, 0, MAGIC)?;
    // The secondary copy sits right after the primary; if the primary is damaged, at each
    // size cryptsetup may have used.
    let mut secondary = None;
    let offsets: Vec<u64> = match &primary {
        Some(p) => vec![p.size],
        None => LUKS2_SIZES.to_vec(),
    };
    for at in offsets {
        if let Some(c) = luks2_copy(dev, name, at, MAGIC2)? {
            secondary = Some(c);
            break;
        }
    }
    // The newest valid copy; its own UUID and label (a damaged primary's may be garbage).
    let c = match (primary, secondary) {
        (Some(p), Some(s)) if s.seqid > p.seqid => s,
        (Some(p), _) => p,
        (None, Some(s)) => s,
        (None, None) => return Err(corrupt(name, "no LUKS2 header copy with a valid checksum")),
    };
    luks2_json(dev, name, &c.json, c.uuid, c.label)
}

fn jstr<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(|x| x.as_str())
}

/// A u64 in LUKS2 JSON: a decimal string (offsets, sizes) or a number (key sizes, costs).
fn jnum(name: &str, v: &serde_json::Value, key: &str) -> Result<u64, LuksError> {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        _ => None,
    }
    .ok_or_else(|| corrupt(name, format!("JSON field {key:?} missing or not a number")))
}

fn jb64(name: &str, v: &serde_json::Value, key: &str) -> Result<Vec<u8>, LuksError> {
    use base64::Engine as _;
    let s = jstr(v, key).ok_or_else(|| corrupt(name, format!("JSON field {key:?} missing")))?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| corrupt(name, format!("JSON field {key:?}: {e}")))
}

fn luks2_json(
    dev: &dyn BlockDevice,
    name: &str,
    j: &serde_json::Value,
    uuid: String,
    label: String,
) -> Result<Header, LuksError> {
    if let Some(req) = j
        .pointer("/config/requirements/mandatory")
        .and_then(|r| r.as_array())
        .filter(|r| !r.is_empty())
    {
        return Err(unsupported(
            name,
            format!("mandatory requirements {req:?} (a reencryption in progress?)"),
        ));
    }
    let segs = j
        .get("segments")
        .and_then(|s| s.as_object())
        .ok_or_else(|| corrupt(name, "no segments"))?;
    if segs.len() != 1 {
        return Err(unsupported(
            name,
            format!("{} segments (a reencryption in progress?)", segs.len()),
        ));
    }
    let seg = segs.values().next().unwrap();
    if jstr(seg, "type") != Some("crypt") {
        return Err(unsupported(name, "a segment that is not of type crypt"));
    }
    if jnum(name, seg, "iv_tweak").unwrap_or(0) != 0 {
        return Err(unsupported(name, "a segment with a non-zero iv_tweak"));
    }
    let cipher = Cipher::parse(name, jstr(seg, "encryption").unwrap_or(""))?;
    let sector_size = jnum(name, seg, "sector_size")?;
    if !matches!(sector_size, 512 | 1024 | 2048 | 4096) {
        return Err(corrupt(name, format!("sector_size {sector_size}")));
    }
    let payload_offset = jnum(name, seg, "offset")?;
    let payload_len = match jstr(seg, "size") {
        Some("dynamic") => dev.size().saturating_sub(payload_offset),
        _ => jnum(name, seg, "size")?,
    } / sector_size
        * sector_size;

    let mut digests = vec![];
    for d in j
        .get("digests")
        .and_then(|d| d.as_object())
        .into_iter()
        .flat_map(|o| o.values())
    {
        if jstr(d, "type") != Some("pbkdf2") {
            continue;
        }
        let slots = d
            .get("keyslots")
            .and_then(|k| k.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().and_then(|s| s.parse().ok()))
                    .collect()
            })
            .unwrap_or_default();
        digests.push(KeyDigest {
            hash: Hash::parse(name, jstr(d, "hash").unwrap_or(""))?,
            iterations: u32::try_from(jnum(name, d, "iterations")?)
                .map_err(|_| corrupt(name, "digest iterations"))?,
            salt: jb64(name, d, "salt")?,
            digest: jb64(name, d, "digest")?,
            slots: Some(slots),
        });
    }
    if digests.is_empty() {
        return Err(unsupported(name, "no pbkdf2 digest for the volume key"));
    }

    let mut slots = vec![];
    let mut key_size = 0;
    let objs = j.get("keyslots").and_then(|k| k.as_object());
    for (id, s) in objs.into_iter().flat_map(|o| o.iter()) {
        let index: u32 = id
            .parse()
            .map_err(|_| corrupt(name, format!("keyslot id {id:?}")))?;
        if jstr(s, "type") != Some("luks2") {
            continue; // reencryption slots hold no passphrase
        }
        let area = s
            .get("area")
            .ok_or_else(|| corrupt(name, format!("keyslot {index}: no area")))?;
        let af = s
            .get("af")
            .ok_or_else(|| corrupt(name, format!("keyslot {index}: no af")))?;
        let kdf = s
            .get("kdf")
            .ok_or_else(|| corrupt(name, format!("keyslot {index}: no kdf")))?;
        if jstr(area, "type") != Some("raw") || jstr(af, "type") != Some("luks1") {
            return Err(unsupported(
                name,
                format!("keyslot {index}: area or AF type"),
            ));
        }
        let ks = jnum(name, s, "key_size")? as usize;
        let stripes =
            u32::try_from(jnum(name, af, "stripes")?).map_err(|_| corrupt(name, "stripes"))?;
        let area_len = jnum(name, area, "size")?;
        if !(1..=65536).contains(&stripes) || !(16..=64).contains(&ks) {
            return Err(corrupt(
                name,
                format!("keyslot {index}: {stripes} stripes of {ks} bytes"),
            ));
        }
        if af_len(ks, stripes) > area_len {
            return Err(corrupt(
                name,
                format!("keyslot {index}: key material larger than its area"),
            ));
        }
        key_size = ks;
        let salt = jb64(name, kdf, "salt")?;
        let kdf = match jstr(kdf, "type") {
            Some("pbkdf2") => Kdf::Pbkdf2 {
                hash: Hash::parse(name, jstr(kdf, "hash").unwrap_or(""))?,
                iterations: u32::try_from(jnum(name, kdf, "iterations")?)
                    .map_err(|_| corrupt(name, "iterations"))?,
                salt,
            },
            Some(t @ ("argon2i" | "argon2id")) => Kdf::Argon2 {
                id: t == "argon2id",
                time: u32::try_from(jnum(name, kdf, "time")?).unwrap_or(u32::MAX),
                memory_kib: u32::try_from(jnum(name, kdf, "memory")?).unwrap_or(u32::MAX),
                lanes: u32::try_from(jnum(name, kdf, "cpus")?).unwrap_or(u32::MAX),
                salt,
            },
            other => return Err(unsupported(name, format!("keyslot {index}: KDF {other:?}"))),
        };
        slots.push(Keyslot {
            index,
            kdf,
            area_offset: jnum(name, area, "offset")?,
            area_len: af_len(ks, stripes),
            area_cipher: Cipher::parse(name, jstr(area, "encryption").unwrap_or(""))?,
            area_key_size: jnum(name, area, "key_size")? as usize,
            stripes,
            af_hash: Hash::parse(name, jstr(af, "hash").unwrap_or(""))?,
            key_size: ks,
        });
    }
    slots.sort_by_key(|s| s.index);
    if key_size == 0 {
        return Err(unsupported(name, "no passphrase keyslot"));
    }
    Ok(Header {
        version: 2,
        uuid,
        label: Some(label).filter(|l| !l.is_empty()),
        cipher,
        key_size,
        payload_offset,
        payload_len,
        sector_size,
        slots,
        digests,
    })
}

/// A volume key; never printed.
pub struct VolumeKey {
    bytes: Vec<u8>,
    pub slot: u32,
}

impl std::fmt::Debug for VolumeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VolumeKey(slot {}, {} bytes)",
            self.slot,
            self.bytes.len()
        )
    }
}

impl Drop for VolumeKey {
    fn drop(&mut self) {
        self.bytes.iter_mut().for_each(|b| *b = 0);
    }
}

impl VolumeKey {
    /// The raw key (tests compare it with `cryptsetup luksDump --dump-volume-key`).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Header {
    /// Tries `pass` on each active keyslot (at most `limits.slots`); None: it opens none.
    pub fn unlock(
        &self,
        dev: &dyn BlockDevice,
        pass: &[u8],
        limits: &Limits,
    ) -> Result<Option<VolumeKey>, LuksError> {
        let name = dev.name();
        for slot in self.slots.iter().take(limits.slots) {
            let Some(d) = self
                .digests
                .iter()
                .find(|d| d.slots.as_ref().is_none_or(|s| s.contains(&slot.index)))
            else {
                continue;
            };
            // Every cheap check before the costly derivation.
            if slot.key_size != self.key_size || !self.cipher.key_ok(slot.key_size) {
                continue; // a slot for another key size cannot open this segment
            }
            if !slot.area_cipher.key_ok(slot.area_key_size) {
                return Err(unsupported(
                    &name,
                    format!(
                        "keyslot {}: {}-byte area key",
                        slot.index, slot.area_key_size
                    ),
                ));
            }
            if d.iterations > limits.pbkdf2_iterations {
                return Err(LuksError::TooCostly {
                    dev: name,
                    slot: slot.index,
                    what: format!("digest PBKDF2 {} iterations", d.iterations),
                    cap: limits.pbkdf2_iterations.to_string(),
                });
            }
            let mut k = vec![0u8; slot.area_key_size];
            derive(&name, slot, pass, limits, &mut k)?;
            let mut material = read_vec(dev, slot.area_offset, slot.area_len as usize)?;
            let c = SectorCipher::new(slot.area_cipher, &k);
            k.iter_mut().for_each(|b| *b = 0);
            for (i, s) in material.chunks_mut(SECTOR as usize).enumerate() {
                c.decrypt(s, i as u64);
            }
            let mk = af_merge(
                &material,
                slot.key_size,
                slot.stripes as usize,
                slot.af_hash,
            );
            material.iter_mut().for_each(|b| *b = 0);
            let mut check = vec![0u8; d.digest.len()];
            d.hash.pbkdf2(&mk, &d.salt, d.iterations.max(1), &mut check);
            if check == d.digest {
                return Ok(Some(VolumeKey {
                    bytes: mk,
                    slot: slot.index,
                }));
            }
        }
        Ok(None)
    }
}

/// The keyslot's KDF of `pass` into `out`, its costs checked against `limits` first.
fn derive(
    name: &str,
    slot: &Keyslot,
    pass: &[u8],
    limits: &Limits,
    out: &mut [u8],
) -> Result<(), LuksError> {
    let too = |what: String, cap: String| LuksError::TooCostly {
        dev: name.into(),
        slot: slot.index,
        what,
        cap,
    };
    match &slot.kdf {
        Kdf::Pbkdf2 {
            hash,
            iterations,
            salt,
        } => {
            if *iterations > limits.pbkdf2_iterations {
                return Err(too(
                    format!("PBKDF2 {iterations} iterations"),
                    limits.pbkdf2_iterations.to_string(),
                ));
            }
            hash.pbkdf2(pass, salt, (*iterations).max(1), out);
        }
        Kdf::Argon2 {
            id,
            time,
            memory_kib,
            lanes,
            salt,
        } => {
            let work = u64::from(*memory_kib) * u64::from(*time);
            if *memory_kib > limits.argon2_memory_kib
                || *time > limits.argon2_time
                || work > limits.argon2_work_kib
                || *lanes > 64
            {
                return Err(too(
                    format!("Argon2 memory {memory_kib} KiB x {time} passes, {lanes} lanes"),
                    format!(
                        "{} KiB, {} passes, {} KiB-passes, 64 lanes",
                        limits.argon2_memory_kib, limits.argon2_time, limits.argon2_work_kib
                    ),
                ));
            }
            let params = argon2::Params::new(*memory_kib, *time, *lanes, Some(out.len()))
                .map_err(|e| corrupt(name, format!("keyslot {}: Argon2 {e}", slot.index)))?;
            let alg = if *id {
                argon2::Algorithm::Argon2id
            } else {
                argon2::Algorithm::Argon2i
            };
            argon2::Argon2::new(alg, argon2::Version::V0x13, params)
                .hash_password_into(pass, salt, out)
                .map_err(|e| corrupt(name, format!("keyslot {}: Argon2 {e}", slot.index)))?;
        }
    }
    Ok(())
}

/// LUKS's anti-forensic merge: XOR the stripes together, diffusing the running value with
/// `hash` between them.
fn af_merge(src: &[u8], key_size: usize, stripes: usize, hash: Hash) -> Vec<u8> {
    let mut d = vec![0u8; key_size];
    for i in 0..stripes.saturating_sub(1) {
        let s = &src[i * key_size..(i + 1) * key_size];
        d.iter_mut().zip(s).for_each(|(a, b)| *a ^= b);
        d = diffuse(&d, hash);
    }
    let last = &src[(stripes - 1) * key_size..stripes * key_size];
    d.iter_mut().zip(last).for_each(|(a, b)| *a ^= b);
    d
}

fn diffuse(d: &[u8], hash: Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.len());
    for (i, block) in d.chunks(hash.len()).enumerate() {
        let h = hash.digest(&[&(i as u32).to_be_bytes(), block]);
        out.extend_from_slice(&h[..block.len()]);
    }
    out
}

/// AES of either key length (one per open volume: the size difference does not matter).
#[allow(clippy::large_enum_variant)]
enum Aes {
    A128(aes::Aes128),
    A256(aes::Aes256),
}

impl Aes {
    fn new(key: &[u8]) -> Aes {
        match key.len() {
            16 => Aes::A128(aes::Aes128::new_from_slice(key).unwrap()),
            _ => Aes::A256(aes::Aes256::new_from_slice(key).unwrap()),
        }
    }
    fn encrypt(&self, b: &mut [u8; 16]) {
        let b = aes::Block::from_mut_slice(b);
        match self {
            Aes::A128(a) => a.encrypt_block(b),
            Aes::A256(a) => a.encrypt_block(b),
        }
    }
    fn decrypt(&self, b: &mut [u8; 16]) {
        let b = aes::Block::from_mut_slice(b);
        match self {
            Aes::A128(a) => a.decrypt_block(b),
            Aes::A256(a) => a.decrypt_block(b),
        }
    }
}

/// Encrypts and decrypts one sector given its number (the IV source).
struct SectorCipher {
    mode: Cipher,
    /// XTS: data key, tweak key. CBC-ESSIV: data key, ESSIV key (AES-256 of sha256(key)).
    k1: Aes,
    k2: Aes,
}

impl SectorCipher {
    fn new(mode: Cipher, key: &[u8]) -> SectorCipher {
        match mode {
            Cipher::AesXts => {
                let (a, b) = key.split_at(key.len() / 2);
                SectorCipher {
                    mode,
                    k1: Aes::new(a),
                    k2: Aes::new(b),
                }
            }
            Cipher::AesCbcEssiv => SectorCipher {
                mode,
                k1: Aes::new(key),
                k2: Aes::new(&sha2::Sha256::digest(key)),
            },
        }
    }

    fn iv(&self, sector: u64) -> [u8; 16] {
        let mut t = [0u8; 16];
        t[..8].copy_from_slice(&sector.to_le_bytes());
        self.k2.encrypt(&mut t);
        t
    }

    /// XTS's multiplication of the tweak by x in GF(2^128), little-endian.
    fn xts_next(t: &mut [u8; 16]) {
        let carry = t[15] >> 7;
        for i in (1..16).rev() {
            t[i] = (t[i] << 1) | (t[i - 1] >> 7);
        }
        t[0] = (t[0] << 1) ^ (carry * 0x87);
    }

    fn decrypt(&self, data: &mut [u8], sector: u64) {
        self.transform(data, sector, false)
    }

    fn encrypt(&self, data: &mut [u8], sector: u64) {
        self.transform(data, sector, true)
    }

    /// One sector through the cipher, either way.
    fn transform(&self, data: &mut [u8], sector: u64, encrypt: bool) {
        let mut t = self.iv(sector);
        let blocks = data
            .chunks_exact_mut(16)
            .map(|b| <&mut [u8; 16]>::try_from(b).unwrap());
        match self.mode {
            Cipher::AesXts => {
                for b in blocks {
                    xor(b, &t);
                    if encrypt {
                        self.k1.encrypt(b)
                    } else {
                        self.k1.decrypt(b)
                    }
                    xor(b, &t);
                    Self::xts_next(&mut t);
                }
            }
            Cipher::AesCbcEssiv => {
                for b in blocks {
                    if encrypt {
                        xor(b, &t);
                        self.k1.encrypt(b);
                        t = *b;
                    } else {
                        let c = *b;
                        self.k1.decrypt(b);
                        xor(b, &t);
                        t = c;
                    }
                }
            }
        }
    }
}

fn xor(a: &mut [u8; 16], b: &[u8; 16]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x ^= y);
}

/// The sector transform of one opened LUKS volume: what both the reader ([`CryptDev`]) and
/// the native writer (through [`crate::image::Via::Crypt`]) apply to the payload.
pub struct Crypt {
    cipher: SectorCipher,
    /// Bytes per encryption sector (512 to 4096).
    pub sector: u64,
    /// Plaintext bytes.
    pub len: u64,
}

impl std::fmt::Debug for Crypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crypt({:?}, sector {})", self.cipher.mode, self.sector)
    }
}

impl Crypt {
    /// The whole sectors around `[off, off+len)`: (first sector, its byte offset, byte length).
    pub fn span(&self, off: u64, len: usize) -> (u64, u64, usize) {
        let first = off / self.sector;
        let end = (off + len as u64).div_ceil(self.sector) * self.sector;
        (
            first,
            first * self.sector,
            (end - first * self.sector) as usize,
        )
    }

    /// Decrypts whole sectors in place; `first` is the index of `data`'s first sector.
    pub fn decrypt(&self, data: &mut [u8], first: u64) {
        // dm-crypt counts the IV in 512-byte units whatever the sector size (LUKS2 does not
        // set iv_large_sectors).
        let per = self.sector / SECTOR;
        for (i, s) in data.chunks_mut(self.sector as usize).enumerate() {
            self.cipher.decrypt(s, (first + i as u64) * per);
        }
    }

    /// Encrypts whole sectors in place (the inverse of [`Crypt::decrypt`]).
    pub fn encrypt(&self, data: &mut [u8], first: u64) {
        let per = self.sector / SECTOR;
        for (i, s) in data.chunks_mut(self.sector as usize).enumerate() {
            self.cipher.encrypt(s, (first + i as u64) * per);
        }
    }
}

/// The plaintext of a LUKS payload, decrypted sector by sector on read. Its layout, when the
/// container's is plain, is one extent through its [`Crypt`]: a native writer encrypts what it
/// writes there.
pub struct CryptDev {
    inner: Dev,
    offset: u64,
    crypt: Arc<Crypt>,
    name: String,
}

impl CryptDev {
    pub fn new(inner: Dev, h: &Header, key: &VolumeKey, name: String) -> CryptDev {
        CryptDev {
            inner,
            offset: h.payload_offset,
            crypt: Arc::new(Crypt {
                cipher: SectorCipher::new(h.cipher, &key.bytes),
                sector: h.sector_size,
                len: h.payload_len,
            }),
            name,
        }
    }
}

impl BlockDevice for CryptDev {
    fn size(&self) -> u64 {
        self.crypt.len
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ImageError> {
        let len = self.crypt.len;
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > len) {
            return Err(ImageError::OutOfRange {
                path: self.name.clone().into(),
                offset,
                len: buf.len(),
                size: len,
            });
        }
        let (first, at, n) = self.crypt.span(offset, buf.len());
        let mut tmp = vec![0u8; n];
        self.inner.read_at(&mut tmp, self.offset + at)?;
        self.crypt.decrypt(&mut tmp, first);
        let skip = (offset - at) as usize;
        buf.copy_from_slice(&tmp[skip..skip + buf.len()]);
        Ok(())
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn layout(&self) -> Option<Vec<Extent>> {
        let inner = self.inner.layout()?;
        Some(vec![Extent {
            start: 0,
            len: self.crypt.len,
            image: self.name.clone(),
            offset: 0,
            via: Some(Arc::new(crate::image::Via::Crypt {
                crypt: self.crypt.clone(),
                inner: crate::image::clip(inner, self.offset, self.crypt.len, 0),
            })),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IEEE 1619 XTS-AES-128 test vector 2 (key1 = 0x11.., key2 = 0x22.., sector 0x3333333333):
    /// its ciphertext decrypts to its plaintext. (CBC-ESSIV and XTS against cryptsetup's own
    /// encryption: tests/luks.rs.)
    #[test]
    fn xts_matches_ieee_1619_vector() {
        let mut key = vec![0x11u8; 16];
        key.extend([0x22u8; 16]);
        let c = SectorCipher::new(Cipher::AesXts, &key);
        let mut data: [u8; 32] =
            hex::decode("c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0")
                .unwrap()
                .try_into()
                .unwrap();
        c.decrypt(&mut data, 0x33_3333_3333);
        assert_eq!(data, [0x44u8; 32]);
    }

    #[test]
    fn af_merge_of_one_stripe_is_the_stripe() {
        assert_eq!(af_merge(&[9u8; 32], 32, 1, Hash::Sha256), vec![9u8; 32]);
        // Two stripes: H-diffused first stripe XOR the second.
        let mut src = vec![1u8; 32];
        src.extend([0u8; 32]);
        assert_eq!(
            af_merge(&src, 32, 2, Hash::Sha256),
            diffuse(&[1u8; 32], Hash::Sha256)
        );
    }
}
