//! Linux md RAID members and arrays, read in pure Rust (issue #11, read side).
//!
//! ```text
//!   partition ──read_member──▶ Member (superblock 0.90 or 1.0/1.1/1.2) ──assemble──▶ Array
//!                                                                  raid1: the freshest member's data
//! ```
//! Superblock places (linux `include/uapi/linux/raid/md_p.h`): 1.1 at 0, 1.2 at 4 KiB, 1.0 at
//! the end (8 KiB from it, 4 KiB aligned), 0.90 in the last 64 KiB-aligned 64 KiB. A member whose
//! data starts at 0 (0.90, 1.0) also looks like a plain filesystem: it must never be read or
//! written as one, or a repair would change one mirror only. raid1 is read from its freshest
//! member (any in-sync one holds the whole array); raid0 and raid5 (left-symmetric, mdadm's
//! default) from all their members, equal in size, the raid5 parity never read (so never
//! rebuilt: a member missing leaves the array unread); other levels are reported and left
//! unread. A raid1 array whose every member is on the given disks and in sync has a
//! layout through all its mirrors ([`crate::image::Via::Mirror`]): a native write reaches each
//! one alike. A degraded one has none (a member that comes back later would hold stale data
//! that md takes for current), and the planner refuses to write it.
use crate::image::{BlockDevice, Slice};
use std::collections::BTreeMap;
use std::sync::Arc;

type Dev = Arc<dyn BlockDevice>;

const MAGIC: u32 = 0xa92b_4efc;
/// Roles at or above this are spare (0xffff) or faulty (0xfffe).
const ROLE_SPARE_OR_FAULTY: u16 = 0xfffe;
/// Most devices a 1.x superblock may list (the kernel's own limit).
const MAX_DEVS: u32 = 1920;

/// One member's superblock, as far as assembly needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// "0.90", "1.0", "1.1" or "1.2".
    pub version: &'static str,
    /// The array UUID in mdadm's form (8:8:8:8 hex).
    pub array_uuid: String,
    /// 1.x: the array name ("host:0", "boot"); 0.90: empty.
    pub name: String,
    /// 0.90: the md minor it was assembled as.
    pub minor: Option<u32>,
    /// -1 linear, 0 raid0, 1 raid1, 4/5/6, 10.
    pub level: i32,
    pub raid_disks: u32,
    /// Slot in the array, None for a spare or faulty member.
    pub role: Option<u32>,
    pub events: u64,
    /// Where the array's data lies on this member, in bytes.
    pub data_offset: u64,
    pub data_size: u64,
    /// Striped levels: bytes per chunk and the parity layout (md's `algorithm` numbers).
    pub chunk: u64,
    pub layout: u32,
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}

fn uuid(words: [u32; 4]) -> String {
    words
        .iter()
        .map(|w| format!("{w:08x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The 1.x superblock checksum (md_p.h `calc_sb_1_csum`): 32-bit words summed into 64 bits with
/// the csum field as zero, a trailing 16-bit half word added, then folded.
fn csum_1(sb: &[u8]) -> u32 {
    let mut sum: u64 = 0;
    let mut words = sb.chunks_exact(4);
    for (i, w) in words.by_ref().enumerate() {
        if i != 216 / 4 {
            sum += u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as u64;
        }
    }
    if let [a, b] = words.remainder() {
        sum += u16::from_le_bytes([*a, *b]) as u64;
    }
    ((sum & 0xffff_ffff) + (sum >> 32)) as u32
}

/// Parses a 1.x superblock found at byte `at` of a device of `size` bytes. None: not one, or
/// one that does not hold together (checksum, offsets outside the device).
pub fn parse_1(b: &[u8], at: u64, size: u64, version: &'static str) -> Option<Member> {
    if b.len() < 256 || le32(b, 0) != MAGIC || le32(b, 4) != 1 {
        return None;
    }
    let max_dev = le32(b, 220);
    if max_dev > MAX_DEVS {
        return None;
    }
    let len = 256 + 2 * max_dev as usize;
    if b.len() < len || csum_1(&b[..len]) != le32(b, 216) {
        return None;
    }
    let sectors = |o: usize| le64(b, o).checked_mul(512);
    let (data_offset, data_size) = (sectors(128)?, sectors(136)?);
    let super_offset = sectors(144)?;
    if super_offset != at || data_offset.checked_add(data_size)? > size || data_size == 0 {
        return None;
    }
    let dev_number = le32(b, 160);
    let role = (dev_number < max_dev)
        .then(|| {
            u16::from_le_bytes([
                b[256 + 2 * dev_number as usize],
                b[257 + 2 * dev_number as usize],
            ])
        })
        .filter(|r| *r < ROLE_SPARE_OR_FAULTY)
        .map(u32::from);
    let name_raw = &b[32..64];
    let name_end = name_raw.iter().position(|&c| c == 0).unwrap_or(32);
    Some(Member {
        version,
        array_uuid: uuid([
            u32::from_be_bytes(b[16..20].try_into().ok()?),
            u32::from_be_bytes(b[20..24].try_into().ok()?),
            u32::from_be_bytes(b[24..28].try_into().ok()?),
            u32::from_be_bytes(b[28..32].try_into().ok()?),
        ]),
        name: String::from_utf8_lossy(&name_raw[..name_end]).into_owned(),
        minor: None,
        level: le32(b, 72) as i32,
        raid_disks: le32(b, 92),
        role,
        events: le64(b, 200),
        data_offset,
        data_size,
        chunk: le32(b, 88) as u64 * 512,
        layout: le32(b, 76),
    })
}

/// Parses a 0.90 superblock (4 KiB, host-endian: little on x86) of a device of `size` bytes.
pub fn parse_090(b: &[u8], size: u64) -> Option<Member> {
    if b.len() < 4096 || le32(b, 0) != MAGIC || le32(b, 4) != 0 || le32(b, 8) != 90 {
        return None;
    }
    // Checksum (md.c calc_sb_csum): the 1024 words summed into 64 bits with the checksum word
    // (index 38) as zero, then folded.
    let sum: u64 = b[..4096]
        .chunks_exact(4)
        .enumerate()
        .filter(|(i, _)| *i != 38)
        .map(|(_, w)| le32(w, 0) as u64)
        .sum();
    if ((sum & 0xffff_ffff) + (sum >> 32)) as u32 != le32(b, 38 * 4) {
        return None;
    }
    let data_size = (le32(b, 32) as u64) * 1024; // "size": KiB used on each member
    if data_size == 0 || data_size > size {
        return None;
    }
    // This device's descriptor (this_disk, word 992): number, major, minor, raid_disk, state.
    let raid_disk = le32(b, 992 * 4 + 12);
    let state = le32(b, 992 * 4 + 16);
    let active = state & (1 << 1) != 0 && state & 1 == 0; // ACTIVE, not FAULTY
    Some(Member {
        version: "0.90",
        array_uuid: uuid([le32(b, 20), le32(b, 52), le32(b, 56), le32(b, 60)]),
        name: String::new(),
        minor: Some(le32(b, 44)),
        level: le32(b, 28) as i32,
        raid_disks: le32(b, 40),
        role: active.then_some(raid_disk),
        // events_lo, events_hi: words 39 and 40 (little-endian hosts).
        events: ((le32(b, 40 * 4) as u64) << 32) | le32(b, 39 * 4) as u64,
        data_offset: 0,
        data_size,
        // The personality section: layout (word 64), chunk size in bytes (word 65).
        chunk: le32(b, 65 * 4) as u64,
        layout: le32(b, 64 * 4),
    })
}

/// The md member superblock on `dev`, if it has one (every place each version uses).
pub fn read_member(dev: &dyn BlockDevice) -> Option<Member> {
    let size = dev.size();
    let read = |at: u64, len: usize| {
        let mut b = vec![0u8; len];
        (at.checked_add(len as u64)? <= size && dev.read_at(&mut b, at).is_ok()).then_some(b)
    };
    // 1.x: room for the 256-byte header plus the role table of the most devices allowed.
    let len_1 = 256 + 2 * MAX_DEVS as usize;
    let end_1 = (size / 512).checked_sub(16).map(|s| (s & !7) * 512);
    for (at, v) in [(Some(0), "1.1"), (Some(4096), "1.2"), (end_1, "1.0")] {
        let Some(at) = at else { continue };
        let len = len_1.min(size.saturating_sub(at) as usize);
        if let Some(m) = read(at, len).and_then(|b| parse_1(&b, at, size, v)) {
            return Some(m);
        }
    }
    let end_090 = (size & !(64 * 1024 - 1)).checked_sub(64 * 1024)?;
    read(end_090, 4096).and_then(|b| parse_090(&b, size))
}

/// An assembled array.
pub struct Array {
    pub report: crate::types::MdReport,
    /// raid1 with a usable member: its data, read-only and with no plain layout.
    pub dev: Option<Dev>,
}

/// The raid1 data: reads go to the freshest member; a writer goes through every mirror, or,
/// when the array is not whole, gets no layout.
struct Mirror {
    data: Slice,
    name: String,
    /// Every member's data when all `raid_disks` are here and in sync; else empty.
    all: Vec<Slice>,
}

impl BlockDevice for Mirror {
    fn size(&self) -> u64 {
        self.data.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), crate::error::ImageError> {
        self.data.read_at(buf, offset)
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn layout(&self) -> Option<Vec<crate::image::Extent>> {
        if self.all.is_empty() {
            return None;
        }
        let mirrors: Option<Vec<_>> = self.all.iter().map(|m| m.layout()).collect();
        Some(vec![crate::image::Extent {
            start: 0,
            len: self.data.size(),
            image: self.name.clone(),
            offset: 0,
            via: Some(Arc::new(crate::image::Via::Mirror {
                len: self.data.size(),
                mirrors: mirrors?,
            })),
        }])
    }
}

/// Whether `active` (freshest first) holds every slot of a `raid_disks` array, each at the
/// freshest event count and with the same data size: a write to all of them is a write to
/// the array.
fn whole(active: &[&(String, Dev, Member)], raid_disks: u32) -> bool {
    let Some(first) = active.first() else {
        return false;
    };
    (0..raid_disks).all(|slot| active.iter().filter(|m| m.2.role == Some(slot)).count() == 1)
        && active.len() == raid_disks as usize
        && active
            .iter()
            .all(|m| m.2.events == first.2.events && m.2.data_size == first.2.data_size)
}

/// md's raid5 parity layout "left-symmetric" (mdadm's default).
const LEFT_SYMMETRIC: u32 = 2;
/// Largest chunk read (md's own limit is far below).
const MAX_CHUNK: u64 = 1 << 30;

/// A raid0 or raid5 array read from all its members (read-only: no layout). raid5 reads the
/// data chunks and never the parity, so every member must be here.
struct Striped {
    /// By role.
    members: Vec<Slice>,
    chunk: u64,
    /// 0 or 5.
    level: i32,
    size: u64,
    name: String,
}

impl Striped {
    /// (member, offset on it) of the byte at `off` and how many bytes of its chunk follow.
    fn locate(&self, off: u64) -> (usize, u64, u64) {
        let n = self.members.len() as u64;
        let (k, within) = (off / self.chunk, off % self.chunk);
        let (disk, row) = if self.level == 0 {
            (k % n, k / n)
        } else {
            let data = n - 1;
            let (row, d) = (k / data, k % data);
            let parity = data - row % n;
            ((parity + 1 + d) % n, row)
        };
        (
            disk as usize,
            row * self.chunk + within,
            self.chunk - within,
        )
    }
}

impl BlockDevice for Striped {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), crate::error::ImageError> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.size)
        {
            return Err(crate::error::ImageError::OutOfRange {
                path: self.name.clone().into(),
                offset,
                len: buf.len(),
                size: self.size,
            });
        }
        let mut done = 0;
        while done < buf.len() {
            let (disk, at, left) = self.locate(offset + done as u64);
            let n = (left as usize).min(buf.len() - done);
            self.members[disk].read_at(&mut buf[done..done + n], at)?;
            done += n;
        }
        Ok(())
    }
    fn name(&self) -> String {
        self.name.clone()
    }
}

/// raid0 / raid5 (left-symmetric) over every member, all the same size and at the same event
/// count; else why not.
fn striped(
    active: &[&(String, Dev, Member)],
    first: &Member,
    device: &str,
) -> Result<Striped, String> {
    let n = first.raid_disks as usize;
    let chunk = first.chunk;
    if first.level == 5 && first.layout != LEFT_SYMMETRIC {
        return Err(format!(
            "raid5 layout {} (only left-symmetric is read)",
            first.layout
        ));
    }
    if chunk == 0 || chunk > MAX_CHUNK || !chunk.is_multiple_of(512) {
        return Err(format!("chunk size {chunk}"));
    }
    let mut members = vec![];
    for slot in 0..first.raid_disks {
        let Some((name, d, m)) = active.iter().map(|a| &**a).find(|a| a.2.role == Some(slot))
        else {
            return Err(format!("member {slot} is not among the given disks"));
        };
        if m.events != first.events || m.data_size != first.data_size || m.chunk != chunk {
            return Err(format!("{name} does not match the freshest member"));
        }
        members.push(Slice::new(
            d.clone(),
            m.data_offset,
            m.data_size,
            format!("{name} (md data)"),
        ));
    }
    let per = first.data_size / chunk * chunk;
    let data = if first.level == 0 { n } else { n - 1 } as u64;
    Ok(Striped {
        members,
        chunk,
        level: first.level,
        size: per * data,
        name: device.to_string(),
    })
}

/// The device name an array gets: `/dev/mdN` from a 0.90 minor or a numeric 1.x name ("host:0"),
/// else `/dev/md/NAME` (as udev names it).
fn array_device(m: &Member, fallback: usize) -> String {
    if let Some(n) = m.minor {
        return format!("/dev/md{n}");
    }
    let short = m.name.rsplit(':').next().unwrap_or("");
    if !short.is_empty() && short.chars().all(|c| c.is_ascii_digit()) && short.len() < 6 {
        format!("/dev/md{short}")
    } else if !short.is_empty()
        && short
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        format!("/dev/md/{short}")
    } else {
        format!("/dev/md{}", 127 - fallback.min(127))
    }
}

/// Groups members by array UUID and assembles each: `members` are (device name, device, member).
pub fn assemble(members: Vec<(String, Dev, Member)>) -> (Vec<Array>, Vec<String>) {
    let mut by_uuid: BTreeMap<String, Vec<(String, Dev, Member)>> = BTreeMap::new();
    for m in members {
        by_uuid.entry(m.2.array_uuid.clone()).or_default().push(m);
    }
    let mut warnings = vec![];
    let mut out = vec![];
    for (i, (uuid, mut ms)) in by_uuid.into_iter().enumerate() {
        ms.sort_by(|a, b| b.2.events.cmp(&a.2.events).then(a.0.cmp(&b.0)));
        let first = &ms[0].2;
        let device = array_device(first, i);
        let active: Vec<&(String, Dev, Member)> =
            ms.iter().filter(|m| m.2.role.is_some()).collect();
        let level = match first.level {
            -1 => "linear".to_string(),
            l => format!("raid{l}"),
        };
        let mut dev: Option<Dev> = None;
        let mut writable = false;
        let freshest = active.first().filter(|m| m.2.events == first.events);
        match (first.level, freshest) {
            (1, Some((name, d, m))) => {
                let data = |name: &String, d: &Dev, m: &Member| {
                    Slice::new(
                        d.clone(),
                        m.data_offset,
                        m.data_size,
                        format!("{name} (md data)"),
                    )
                };
                writable = whole(&active, first.raid_disks);
                dev = Some(Arc::new(Mirror {
                    data: data(name, d, m),
                    name: device.clone(),
                    all: if writable {
                        active.iter().map(|(n, d, m)| data(n, d, m)).collect()
                    } else {
                        vec![]
                    },
                }));
            }
            (1, None) => warnings.push(format!(
                "{device}: no in-sync raid1 member among the given disks"
            )),
            (0 | 5, _) if first.raid_disks >= 2 && first.raid_disks <= 64 => {
                match striped(&active, first, &device) {
                    Ok(s) => dev = Some(Arc::new(s)),
                    Err(why) => warnings.push(format!("{device}: {level} not read: {why}")),
                }
            }
            _ => warnings.push(format!(
                "{device}: {level} arrays are not read in pure Rust (raid1, raid0 and raid5 are)"
            )),
        }
        if active.len() < first.raid_disks as usize {
            warnings.push(format!(
                "{device}: {} of {} members are on the given disks",
                active.len(),
                first.raid_disks
            ));
        }
        out.push(Array {
            report: crate::types::MdReport {
                device,
                uuid,
                name: first.name.clone(),
                metadata: first.version.into(),
                level,
                raid_disks: first.raid_disks,
                members: ms.iter().map(|m| m.0.clone()).collect(),
                read: dev.is_some(),
                writable,
            },
            dev,
        });
    }
    (out, warnings)
}

/// A 1.2 superblock of a two-member raid1 named `name` (4 role slots, this member in slot
/// `role`, data from 1 MiB to the end of a `size`-byte member): for tests and fuzz seeds.
pub fn synthetic_1_2(uuid: [u8; 16], name: &str, role: u16, events: u64, size: u64) -> Vec<u8> {
    let mut b = vec![0u8; 256 + 2 * 4];
    b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    b[16..32].copy_from_slice(&uuid);
    b[32..32 + name.len()].copy_from_slice(name.as_bytes());
    b[72..76].copy_from_slice(&1u32.to_le_bytes()); // raid1
    b[92..96].copy_from_slice(&2u32.to_le_bytes());
    b[128..136].copy_from_slice(&2048u64.to_le_bytes()); // data at 1 MiB
    b[136..144].copy_from_slice(&((size / 512) - 2048).to_le_bytes());
    b[144..152].copy_from_slice(&8u64.to_le_bytes()); // 1.2: at 4 KiB
    b[160..164].copy_from_slice(&(role as u32).to_le_bytes());
    b[200..208].copy_from_slice(&events.to_le_bytes());
    b[220..224].copy_from_slice(&4u32.to_le_bytes());
    for k in 0..4u16 {
        let r = if k < 2 { k } else { 0xffff };
        b[256 + 2 * k as usize..258 + 2 * k as usize].copy_from_slice(&r.to_le_bytes());
    }
    let c = csum_1(&b);
    b[216..220].copy_from_slice(&c.to_le_bytes());
    b
}

/// A 4 MiB raid1 member with a 1.2 superblock (array `uuid`, name "deb:0").
pub fn synthetic_member(uuid: [u8; 16], role: u16, events: u64) -> Vec<u8> {
    let size = 4 << 20;
    let mut d = vec![0u8; size as usize];
    let sb = synthetic_1_2(uuid, "deb:0", role, events, size);
    d[4096..4096 + sb.len()].copy_from_slice(&sb);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::image::MemDev as Mem;

    fn member(fill: u8, role: u16, events: u64) -> Dev {
        let mut d = synthetic_member([7; 16], role, events);
        d[1 << 20..].fill(fill);
        Arc::new(Mem(d))
    }

    /// A member on an image file of its own (so it has a layout).
    struct OnImage(Vec<u8>, &'static str);
    impl BlockDevice for OnImage {
        fn size(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_at(&self, buf: &mut [u8], o: u64) -> Result<(), crate::error::ImageError> {
            buf.copy_from_slice(&self.0[o as usize..o as usize + buf.len()]);
            Ok(())
        }
        fn name(&self) -> String {
            self.1.into()
        }
        fn layout(&self) -> Option<Vec<crate::image::Extent>> {
            Some(crate::image::Extent::whole(
                std::path::Path::new(self.1),
                self.size(),
            ))
        }
    }

    #[test]
    fn a_whole_in_sync_raid1_is_laid_out_through_every_mirror_a_stale_one_not() {
        let assembled = |ev_b: u64| {
            let ms: Vec<(String, Dev, Member)> = [("a.img", 0u16, 5u64), ("b.img", 1, ev_b)]
                .into_iter()
                .map(|(img, role, ev)| {
                    let d: Dev = Arc::new(OnImage(synthetic_member([3; 16], role, ev), img));
                    let m = read_member(d.as_ref()).unwrap();
                    (format!("/dev/{img}"), d, m)
                })
                .collect();
            assemble(ms).0.remove(0)
        };
        let a = assembled(5);
        assert!(a.report.writable);
        let l = a.dev.as_ref().unwrap().layout().expect("a layout");
        let Some(crate::image::Via::Mirror { len, mirrors }) = l[0].via.as_deref() else {
            panic!("not a mirror: {l:?}");
        };
        assert_eq!(*len, (4 << 20) - (1 << 20));
        let imgs: Vec<(&str, u64, u64)> = mirrors
            .iter()
            .map(|m| (m[0].image.as_str(), m[0].offset, m[0].len))
            .collect();
        assert_eq!(
            imgs,
            vec![("a.img", 1 << 20, *len), ("b.img", 1 << 20, *len)]
        );
        // One member behind the other: no layout, not writable.
        let a = assembled(4);
        assert!(!a.report.writable);
        assert!(a.dev.as_ref().unwrap().layout().is_none());
    }

    #[test]
    fn raid1_reads_the_freshest_member_and_has_no_plain_layout() {
        let a = member(0xaa, 0, 10);
        let b = member(0xbb, 1, 11);
        let ma = read_member(a.as_ref()).expect("member a");
        assert_eq!(
            (ma.version, ma.level, ma.role, ma.data_offset),
            ("1.2", 1, Some(0), 1 << 20)
        );
        let mb = read_member(b.as_ref()).unwrap();
        let (arrays, warnings) = assemble(vec![
            ("/dev/sda1".into(), a, ma),
            ("/dev/sdb1".into(), b, mb),
        ]);
        assert!(warnings.is_empty(), "{warnings:?}");
        let r = &arrays[0].report;
        assert_eq!(r.device, "/dev/md0");
        assert_eq!(r.members, vec!["/dev/sdb1", "/dev/sda1"]);
        let dev = arrays[0].dev.as_ref().unwrap();
        let mut buf = [0u8; 4];
        dev.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [0xbb; 4], "the member with the most events is read");
        assert!(
            dev.layout().is_none(),
            "one mirror must never look like the array"
        );
    }

    #[test]
    fn a_bad_checksum_or_offsets_past_the_end_are_not_members() {
        let size = 4u64 << 20;
        let mut sb = synthetic_1_2([1; 16], "x", 0, 1, size);
        assert!(parse_1(&sb, 4096, size, "1.2").is_some());
        sb[100] ^= 1;
        assert!(parse_1(&sb, 4096, size, "1.2").is_none(), "checksum");
        let mut sb = synthetic_1_2([1; 16], "x", 0, 1, size);
        sb[136..144].copy_from_slice(&u64::MAX.to_le_bytes());
        let c = csum_1(&sb);
        sb[216..220].copy_from_slice(&c.to_le_bytes());
        assert!(
            parse_1(&sb, 4096, size, "1.2").is_none(),
            "data past the end"
        );
        assert!(parse_090(&[0u8; 10], size).is_none());
    }

    #[test]
    fn a_lone_member_of_a_two_disk_mirror_is_read_and_flagged() {
        let a = member(0xaa, 0, 3);
        let ma = read_member(a.as_ref()).unwrap();
        let (arrays, warnings) = assemble(vec![("/dev/sda1".into(), a, ma)]);
        assert!(arrays[0].report.read);
        assert!(
            warnings.iter().any(|w| w.contains("1 of 2 members")),
            "{warnings:?}"
        );
    }
}
