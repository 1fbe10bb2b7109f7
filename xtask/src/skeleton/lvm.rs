//! Writes an LVM2 physical volume (label, pv_header, one metadata area with the VG text) into a
//! partition-sized file, so LVM guests need neither the appliance nor host device-mapper.
//!
//! Layout (lvm2 `lib/format_text/layout.h`): sector 1 holds the "LABELONE" label header followed
//! by the pv_header; the metadata area starts at 4 KiB with a 512-byte mda_header whose raw_locn
//! points at the text right after it; data extents start at 1 MiB. Checksums are CRC-32
//! (reflected 0xEDB88320) seeded with 0xf597a6cf and without a final xor.
use super::ids;
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

pub const SECTOR: u64 = 512;
/// Extent size in bytes (4 MiB, lvm2's default).
pub const EXTENT: u64 = 4 << 20;
/// First data byte (pe_start), lvm2's default 1 MiB alignment.
pub const PE_START: u64 = 1 << 20;
const MDA_START: u64 = 4096;
const INITIAL_CRC: u32 = 0xf597_a6cf;
const FMTT_MAGIC: &[u8; 16] = b"\x20\x4c\x56\x4d\x32\x20\x78\x5b\x35\x41\x25\x72\x30\x4e\x2a\x3e";
/// Fixed creation time (2019-11-12) so metadata text is stable.
const CTIME: u64 = 1_573_553_025;

pub fn crc(data: &[u8]) -> u32 {
    let mut c = INITIAL_CRC;
    for b in data {
        c ^= *b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    c
}

/// One linear LV placed on this PV.
pub struct LvPlace {
    pub name: String,
    pub uuid: String,
    pub start_extent: u64,
    pub extent_count: u64,
}

/// A VG whose only PV is one partition.
pub struct PvSpec<'a> {
    pub guest: &'a str,
    pub vg: &'a str,
    pub vg_uuid: String,
    pub pv_uuid: String,
    /// Device name the source host saw (kept in metadata as a hint only).
    pub device_hint: String,
    pub size: u64,
    pub lvs: Vec<LvPlace>,
}

/// One PV of a VG.
pub struct Pv {
    pub uuid: String,
    /// Device name the source host saw (kept in metadata as a hint only).
    pub device_hint: String,
    pub size: u64,
}

/// A run of extents of an LV on one PV.
pub struct Segment {
    /// Index into [`VgSpec::pvs`].
    pub pv: usize,
    pub pv_start_extent: u64,
    pub extent_count: u64,
}

/// An LV made of linear segments, in LV order (several PVs: it spans their disks).
pub struct LvSegments {
    pub name: String,
    pub uuid: String,
    pub segments: Vec<Segment>,
}

/// A VG over any number of PVs; every PV carries the same metadata text.
pub struct VgSpec<'a> {
    pub guest: &'a str,
    pub vg: &'a str,
    pub vg_uuid: String,
    pub pvs: Vec<Pv>,
    pub lvs: Vec<LvSegments>,
}

impl PvSpec<'_> {
    fn vg(&self) -> VgSpec<'_> {
        VgSpec {
            guest: self.guest,
            vg: self.vg,
            vg_uuid: self.vg_uuid.clone(),
            pvs: vec![Pv {
                uuid: self.pv_uuid.clone(),
                device_hint: self.device_hint.clone(),
                size: self.size,
            }],
            lvs: self
                .lvs
                .iter()
                .map(|l| LvSegments {
                    name: l.name.clone(),
                    uuid: l.uuid.clone(),
                    segments: vec![Segment {
                        pv: 0,
                        pv_start_extent: l.start_extent,
                        extent_count: l.extent_count,
                    }],
                })
                .collect(),
        }
    }
}

pub fn pe_count(size: u64) -> u64 {
    size.saturating_sub(PE_START) / EXTENT
}

/// Byte offset of an extent inside the PV.
pub fn extent_offset(extent: u64) -> u64 {
    PE_START + extent * EXTENT
}

/// The VG metadata text in the shape `vgcfgbackup` writes.
pub fn vg_metadata_text(spec: &VgSpec) -> String {
    let mut t = String::new();
    t += &format!("{} {{\n", spec.vg);
    t += &format!("id = \"{}\"\n", ids::lvm_uuid_dashed(&spec.vg_uuid));
    t += "seqno = 1\nformat = \"lvm2\"\n";
    t += "status = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\nflags = []\n";
    t += &format!("extent_size = {}\n", EXTENT / SECTOR);
    t += "max_lv = 0\nmax_pv = 0\nmetadata_copies = 0\n\nphysical_volumes {\n";
    for (i, pv) in spec.pvs.iter().enumerate() {
        t += &format!("\npv{i} {{\n");
        t += &format!("id = \"{}\"\n", ids::lvm_uuid_dashed(&pv.uuid));
        t += &format!("device = \"{}\"\n\n", pv.device_hint);
        t += "status = [\"ALLOCATABLE\"]\nflags = []\n";
        t += &format!("dev_size = {}\n", pv.size / SECTOR);
        t += &format!("pe_start = {}\n", PE_START / SECTOR);
        t += &format!("pe_count = {}\n}}\n", pe_count(pv.size));
    }
    t += "}\n\n";
    if !spec.lvs.is_empty() {
        t += "logical_volumes {\n";
        for lv in &spec.lvs {
            t += &format!("\n{} {{\n", lv.name);
            t += &format!("id = \"{}\"\n", ids::lvm_uuid_dashed(&lv.uuid));
            t += "status = [\"READ\", \"WRITE\", \"VISIBLE\"]\nflags = []\n";
            t += &format!("creation_time = {CTIME}\n");
            t += &format!("creation_host = \"{}\"\n", spec.guest);
            t += &format!("segment_count = {}\n", lv.segments.len());
            let mut le = 0;
            for (k, seg) in lv.segments.iter().enumerate() {
                t += &format!("\nsegment{} {{\nstart_extent = {le}\n", k + 1);
                t += &format!("extent_count = {}\n\n", seg.extent_count);
                t += "type = \"striped\"\nstripe_count = 1\n\nstripes = [\n";
                t += &format!("\"pv{}\", {}\n]\n}}\n", seg.pv, seg.pv_start_extent);
                le += seg.extent_count;
            }
            t += "}\n";
        }
        t += "}\n";
    }
    t += "\n}\n";
    t += "# Generated by LVM2 version 2.02.187(2)-RHEL7 (2020-03-24)\n\n";
    t += "contents = \"Text Format Volume Group\"\nversion = 1\n\ndescription = \"\"\n\n";
    t += &format!("creation_host = \"{}\"\n", spec.guest);
    t += &format!("creation_time = {CTIME}\n");
    t
}

/// Writes label, pv_header and metadata into `f` for a one-PV VG starting at byte `base`.
pub fn write_pv(f: &mut File, base: u64, spec: &PvSpec) -> Result<()> {
    write_vg_pv(f, base, &spec.vg(), 0)
}

/// Writes label, pv_header and metadata of PV `index` of `spec` into `f` at byte `base`.
pub fn write_vg_pv(f: &mut File, base: u64, spec: &VgSpec, index: usize) -> Result<()> {
    let pv = &spec.pvs[index];
    // Label sector.
    let mut label = vec![0u8; SECTOR as usize];
    label[0..8].copy_from_slice(b"LABELONE");
    label[8..16].copy_from_slice(&1u64.to_le_bytes());
    label[20..24].copy_from_slice(&32u32.to_le_bytes());
    label[24..32].copy_from_slice(b"LVM2 001");
    let mut o = 32;
    label[o..o + 32].copy_from_slice(pv.uuid.as_bytes());
    o += 32;
    let put = |buf: &mut Vec<u8>, o: &mut usize, v: u64| {
        buf[*o..*o + 8].copy_from_slice(&v.to_le_bytes());
        *o += 8;
    };
    put(&mut label, &mut o, pv.size);
    // Data areas: one from pe_start to the end (size 0), then terminator.
    put(&mut label, &mut o, PE_START);
    put(&mut label, &mut o, 0);
    put(&mut label, &mut o, 0);
    put(&mut label, &mut o, 0);
    // Metadata areas: one at 4 KiB up to pe_start, then terminator.
    put(&mut label, &mut o, MDA_START);
    put(&mut label, &mut o, PE_START - MDA_START);
    put(&mut label, &mut o, 0);
    put(&mut label, &mut o, 0);
    // pv_header_extension: version 2, flags PV_EXT_USED, empty bootloader area list.
    label[o..o + 4].copy_from_slice(&2u32.to_le_bytes());
    label[o + 4..o + 8].copy_from_slice(&1u32.to_le_bytes());
    let c = crc(&label[20..]);
    label[16..20].copy_from_slice(&c.to_le_bytes());

    // Metadata text with its terminating NUL (lvm2 counts it in raw_locn.size).
    let mut text = vg_metadata_text(spec).into_bytes();
    text.push(0);
    let mut mda = vec![0u8; SECTOR as usize];
    mda[4..20].copy_from_slice(FMTT_MAGIC);
    mda[20..24].copy_from_slice(&1u32.to_le_bytes());
    mda[24..32].copy_from_slice(&MDA_START.to_le_bytes());
    mda[32..40].copy_from_slice(&(PE_START - MDA_START).to_le_bytes());
    mda[40..48].copy_from_slice(&SECTOR.to_le_bytes());
    mda[48..56].copy_from_slice(&(text.len() as u64).to_le_bytes());
    mda[56..60].copy_from_slice(&crc(&text).to_le_bytes());
    let c = crc(&mda[4..]);
    mda[0..4].copy_from_slice(&c.to_le_bytes());

    f.seek(SeekFrom::Start(base + SECTOR))?;
    f.write_all(&label)?;
    f.seek(SeekFrom::Start(base + MDA_START))?;
    f.write_all(&mda)?;
    f.write_all(&text)
        .with_context(|| format!("writing LVM metadata at offset {base}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_lvm2_seeded_crc32() {
        // Empty input leaves the seed; one zero byte must change it deterministically.
        assert_eq!(crc(b""), INITIAL_CRC);
        assert_ne!(crc(b"\0"), INITIAL_CRC);
        // Standard CRC-32 of "123456789" is 0xCBF43926 with seed !0 and final xor; check the
        // table-free loop against that definition.
        let mut c = 0xffff_ffffu32;
        for b in b"123456789" {
            c ^= *b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xedb8_8320
                } else {
                    c >> 1
                };
            }
        }
        assert_eq!(!c, 0xcbf4_3926);
    }

    #[test]
    fn metadata_names_lvs_and_extents() {
        let spec = PvSpec {
            guest: "g",
            vg: "centos",
            vg_uuid: ids::lvm_uuid("g", "vg"),
            pv_uuid: ids::lvm_uuid("g", "pv"),
            device_hint: "/dev/sda2".into(),
            size: 100 << 20,
            lvs: vec![LvPlace {
                name: "root".into(),
                uuid: ids::lvm_uuid("g", "lv"),
                start_extent: 3,
                extent_count: 10,
            }],
        };
        let t = vg_metadata_text(&spec.vg());
        assert!(t.starts_with("centos {\n"));
        assert!(t.contains("pe_count = 24\n"));
        assert!(t.contains("\"pv0\", 3\n"));
        assert!(t.contains("extent_count = 10\n"));
    }

    #[test]
    fn an_lv_spanning_two_pvs_has_a_segment_on_each() {
        let pv = |what: &str, mib: u64| Pv {
            uuid: ids::lvm_uuid("g", what),
            device_hint: format!("/dev/{what}"),
            size: mib << 20,
        };
        let spec = VgSpec {
            guest: "g",
            vg: "vg",
            vg_uuid: ids::lvm_uuid("g", "vg"),
            pvs: vec![pv("sda2", 41), pv("sdb1", 101)],
            lvs: vec![LvSegments {
                name: "root".into(),
                uuid: ids::lvm_uuid("g", "lv"),
                segments: vec![
                    Segment {
                        pv: 0,
                        pv_start_extent: 0,
                        extent_count: 10,
                    },
                    Segment {
                        pv: 1,
                        pv_start_extent: 0,
                        extent_count: 5,
                    },
                ],
            }],
        };
        let t = vg_metadata_text(&spec);
        assert!(t.contains("\npv1 {\n"), "{t}");
        assert!(t.contains("segment_count = 2\n"), "{t}");
        assert!(
            t.contains("segment2 {\nstart_extent = 10\nextent_count = 5\n"),
            "{t}"
        );
        assert!(t.contains("\"pv1\", 0\n"), "{t}");
    }
}
