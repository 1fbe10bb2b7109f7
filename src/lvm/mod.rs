//! LVM2 in pure Rust: PV labels, the text metadata, and linear LVs mapped onto their PVs (which
//! may sit on several disks). Striped, thin, raid, mirror and cache LVs are reported but not
//! mapped: the appliance serves those.
//!
//! On-disk layout (lvm2 `lib/format_text/layout.h`): a "LABELONE" label in one of the first four
//! sectors points at a pv_header (PV UUID, data and metadata area lists); each metadata area starts
//! with an mda_header whose raw_locn gives the offset of the current text metadata inside the area's
//! circular buffer.
use crate::error::PartError;
use crate::image::{read_vec, Dev, LinearMap};
use crate::types::{LvReport, VgReport};
use std::collections::BTreeMap;
use std::sync::Arc;

/// LVM prints UUIDs as 6-4-4-4-4-4-6 groups.
pub fn format_lvm_uuid(raw: &str) -> String {
    let raw: String = raw.chars().filter(|c| *c != '-').collect();
    // Byte offsets below: a label's UUID bytes are tenant data, and may not be ASCII (issue #12).
    if raw.len() != 32 || !raw.is_ascii() {
        return raw;
    }
    let g = [6, 4, 4, 4, 4, 4, 6];
    let mut out = vec![];
    let mut i = 0;
    for n in g {
        out.push(&raw[i..i + n]);
        i += n;
    }
    out.join("-")
}

/// A physical volume found on some device.
pub struct Pv {
    pub uuid: String,
    pub dev: Dev,
    pub device: String,
    /// Text metadata of the VG, if the PV carries a metadata area.
    pub metadata: Option<String>,
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Reads the PV label and current metadata of `dev`. `Ok(None)` if it is not a PV.
pub fn read_pv(dev: &Dev, device: &str) -> Result<Option<Pv>, PartError> {
    if dev.size() < 4096 {
        return Ok(None);
    }
    let head = read_vec(dev.as_ref(), 0, 2048)?;
    let Some(sec) = (0..4).find(|s| {
        &head[s * 512..s * 512 + 8] == b"LABELONE"
            && &head[s * 512 + 24..s * 512 + 32] == b"LVM2 001"
    }) else {
        return Ok(None);
    };
    let corrupt = |what: String| PartError::Corrupt {
        disk: device.into(),
        what: format!("LVM2 PV: {what}"),
    };
    let lab = sec * 512;
    let pvh = lab + le32(&head, lab + 20) as usize;
    if pvh + 40 > head.len() {
        return Err(corrupt(format!(
            "pv_header offset {pvh} outside the label sector"
        )));
    }
    let uuid = format_lvm_uuid(&String::from_utf8_lossy(&head[pvh..pvh + 32]));
    // Skip the data area list (offset,size pairs ending with a zero pair), then read metadata areas.
    let mut o = pvh + 40;
    let mut lists = 0;
    let mut mdas = vec![];
    while o + 16 <= head.len() && lists < 2 {
        let (off, size) = (le64(&head, o), le64(&head, o + 8));
        o += 16;
        if off == 0 && size == 0 {
            lists += 1;
            continue;
        }
        if lists == 1 {
            mdas.push((off, size));
        }
    }
    let mut metadata = None;
    for (off, size) in mdas {
        // Offsets are tenant data: sums that overflow lie past the end too (issue #12).
        if off.checked_add(512).is_none_or(|end| end > dev.size()) {
            return Err(corrupt(format!(
                "metadata area at {off:#x} past the end of the device"
            )));
        }
        let mh = read_vec(dev.as_ref(), off, 512)?;
        if &mh[4..20] != b" LVM2 x[5A%r0N*>" {
            return Err(corrupt(format!("bad mda_header magic at {off:#x}")));
        }
        let (roff, rsize) = (le64(&mh, 40), le64(&mh, 48));
        if rsize == 0 || rsize > 64 << 20 || roff >= size {
            continue;
        }
        // The text may wrap around the end of the circular buffer back to offset 512.
        let first = rsize.min(size - roff);
        let at = off.checked_add(roff).ok_or_else(|| {
            corrupt(format!(
                "metadata text at {off:#x}+{roff:#x} past the end of the device"
            ))
        })?;
        let mut text = read_vec(dev.as_ref(), at, first as usize)?;
        if first < rsize {
            text.extend(read_vec(dev.as_ref(), off + 512, (rsize - first) as usize)?);
        }
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        metadata = Some(String::from_utf8_lossy(&text[..end]).into_owned());
        break;
    }
    Ok(Some(Pv {
        uuid,
        dev: dev.clone(),
        device: device.into(),
        metadata,
    }))
}

/// A value in LVM's text metadata.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Str(String),
    List(Vec<Value>),
    Section(BTreeMap<String, Value>),
}

impl Value {
    fn get(&self, k: &str) -> Option<&Value> {
        match self {
            Value::Section(m) => m.get(k),
            _ => None,
        }
    }
    fn int(&self, k: &str) -> Option<i64> {
        match self.get(k)? {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    fn str(&self, k: &str) -> Option<&str> {
        match self.get(k)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    fn sections(&self) -> Vec<(&String, &Value)> {
        match self {
            Value::Section(m) => m
                .iter()
                .filter(|(_, v)| matches!(v, Value::Section(_)))
                .collect(),
            _ => vec![],
        }
    }
}

/// Parses LVM text metadata into a tree. Tolerates comments and unknown keys.
pub fn parse_metadata(text: &str) -> Result<BTreeMap<String, Value>, String> {
    let toks = tokenize(text)?;
    let mut pos = 0;
    let m = parse_section(&toks, &mut pos, 0)?;
    Ok(m)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Sym(char),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let mut out = vec![];
    let b: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' && i + 1 < b.len() {
                    i += 1;
                }
                s.push(b[i]);
                i += 1;
            }
            if i >= b.len() {
                return Err("unterminated string".into());
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if "{}[]=,".contains(c) {
            out.push(Tok::Sym(c));
            i += 1;
        } else if c == '-' || c.is_ascii_digit() {
            let st = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.') {
                i += 1;
            }
            let s: String = b[st..i].iter().collect();
            match s.parse::<i64>() {
                Ok(n) => out.push(Tok::Int(n)),
                Err(_) => out.push(Tok::Ident(s)), // floats and odd values are kept as names
            }
        } else {
            let st = i;
            while i < b.len() && !b[i].is_whitespace() && !"{}[]=,#\"".contains(b[i]) {
                i += 1;
            }
            out.push(Tok::Ident(b[st..i].iter().collect()));
        }
    }
    Ok(out)
}

/// Deepest nesting of sections and lists in LVM text metadata (real metadata: 4 levels).
const MAX_DEPTH: usize = 16;

fn parse_section(
    t: &[Tok],
    pos: &mut usize,
    depth: usize,
) -> Result<BTreeMap<String, Value>, String> {
    if depth > MAX_DEPTH {
        return Err("sections nested too deep".into());
    }
    let mut m = BTreeMap::new();
    while *pos < t.len() {
        match &t[*pos] {
            Tok::Sym('}') if depth > 0 => {
                *pos += 1;
                return Ok(m);
            }
            Tok::Ident(name) | Tok::Str(name) => {
                let name = name.clone();
                *pos += 1;
                match t.get(*pos) {
                    Some(Tok::Sym('{')) => {
                        *pos += 1;
                        let s = parse_section(t, pos, depth + 1)?;
                        m.insert(name, Value::Section(s));
                    }
                    Some(Tok::Sym('=')) => {
                        *pos += 1;
                        let v = parse_value(t, pos, depth + 1)?;
                        m.insert(name, v);
                    }
                    other => {
                        return Err(format!(
                            "expected '{{' or '=' after {name}, found {other:?}"
                        ))
                    }
                }
            }
            other => return Err(format!("unexpected token {other:?}")),
        }
    }
    if depth > 0 {
        return Err("unterminated section".into());
    }
    Ok(m)
}

/// Precondition: `depth` counts the lists and sections around this value; LVM writes at most
/// one level of lists, so anything past [`MAX_DEPTH`] is hostile (issue #8: stack overflow).
fn parse_value(t: &[Tok], pos: &mut usize, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("values nested deeper than {MAX_DEPTH} levels"));
    }
    let v = match t.get(*pos) {
        Some(Tok::Int(n)) => Value::Int(*n),
        Some(Tok::Str(s)) | Some(Tok::Ident(s)) => Value::Str(s.clone()),
        Some(Tok::Sym('[')) => {
            *pos += 1;
            let mut items = vec![];
            loop {
                match t.get(*pos) {
                    Some(Tok::Sym(']')) => break,
                    Some(Tok::Sym(',')) => *pos += 1,
                    Some(_) => {
                        items.push(parse_value(t, pos, depth + 1)?);
                    }
                    None => return Err("unterminated list".into()),
                }
            }
            Value::List(items)
        }
        other => return Err(format!("expected a value, found {other:?}")),
    };
    *pos += 1;
    Ok(v)
}

/// An assembled VG with its LVs; `devs` holds the mapped devices of the pure-mappable LVs.
pub struct Vg {
    pub report: VgReport,
    /// (device name, aliases, device) per mapped LV.
    pub lv_devs: Vec<(String, Vec<String>, Dev)>,
    pub warnings: Vec<String>,
}

/// /dev/mapper name: dashes inside VG and LV names are doubled.
pub fn mapper_name(vg: &str, lv: &str) -> String {
    format!(
        "/dev/mapper/{}-{}",
        vg.replace('-', "--"),
        lv.replace('-', "--")
    )
}

/// `n` units of `unit` bytes; `None` for a negative count or a product past u64 (metadata
/// numbers are tenant data, issue #12).
fn bytes(n: i64, unit: u64) -> Option<u64> {
    u64::try_from(n).ok()?.checked_mul(unit)
}

/// Groups PVs by VG (newest metadata seqno wins) and maps linear LVs.
pub fn assemble(pvs: &[Pv]) -> Vec<Vg> {
    let by_uuid: BTreeMap<&str, &Pv> = pvs.iter().map(|p| (p.uuid.as_str(), p)).collect();
    let mut vgs: BTreeMap<String, (i64, Value)> = BTreeMap::new();
    let mut out = vec![];
    for pv in pvs {
        let Some(text) = &pv.metadata else { continue };
        let tree = match parse_metadata(text) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("{}: unreadable LVM metadata: {e}", pv.device);
                continue;
            }
        };
        for (name, v) in tree {
            if let Value::Section(_) = &v {
                let seq = v.int("seqno").unwrap_or(0);
                if vgs.get(&name).is_none_or(|(s, _)| *s < seq) {
                    vgs.insert(name, (seq, v));
                }
            }
        }
    }
    for (vgname, (_, vg)) in vgs {
        let mut warnings = vec![];
        let extent_size = vg.int("extent_size").unwrap_or(8192);
        let extent = bytes(extent_size, 512).filter(|&e| e > 0);
        if extent.is_none() {
            warnings.push(format!(
                "VG {vgname}: extent_size {extent_size} is not a size; no LV is mapped"
            ));
        }
        let mut pv_map: BTreeMap<String, (&Pv, u64)> = BTreeMap::new();
        let mut missing_keys: Vec<String> = Vec::new();
        let mut report = VgReport {
            name: vgname.clone(),
            uuid: vg.str("id").unwrap_or("").to_string(),
            pvs: vec![],
            missing_pvs: vec![],
            lvs: vec![],
        };
        if let Some(pvsec) = vg.get("physical_volumes") {
            for (key, p) in pvsec.sections() {
                let id = format_lvm_uuid(p.str("id").unwrap_or(""));
                let pe_start = bytes(p.int("pe_start").unwrap_or(2048), 512);
                match (by_uuid.get(id.as_str()), pe_start) {
                    (Some(found), None) => {
                        report.pvs.push(found.device.clone());
                        warnings.push(format!("VG {vgname}: PV {id} has no valid pe_start"));
                    }
                    (Some(found), Some(pe_start)) => {
                        report.pvs.push(found.device.clone());
                        pv_map.insert(key.clone(), (found, pe_start));
                    }
                    (None, _) => {
                        missing_keys.push(key.clone());
                        let hint = p.str("device").unwrap_or("?");
                        report.missing_pvs.push(format!("{id} (was {hint})"));
                        warnings.push(format!(
                            "VG {vgname}: PV {id} (was {hint}) is not on the given disks"
                        ));
                    }
                }
            }
        }
        let mut lv_devs = vec![];
        if let Some(lvsec) = vg.get("logical_volumes") {
            for (lvname, lv) in lvsec.sections() {
                let visible = matches!(lv.get("status"), Some(Value::List(l)) if l.contains(&Value::Str("VISIBLE".into())));
                if !visible {
                    continue; // internal LVs (thin pool data, raid images) are not mounted
                }
                let device = mapper_name(&vgname, lvname);
                let mut types = vec![];
                let mut extents = vec![];
                let mut segments = vec![];
                let mut pure = true;
                let mut incomplete = false;
                let mut size = 0u64;
                for (_, seg) in lv.sections() {
                    let ty = seg.str("type").unwrap_or("?").to_string();
                    let stripes = seg.int("stripe_count").unwrap_or(1);
                    let count = seg.int("extent_count").unwrap_or(0);
                    let start = seg.int("start_extent").unwrap_or(0);
                    let span = extent.and_then(|x| Some((bytes(start, x)?, bytes(count, x)?)));
                    size = size.saturating_add(span.map_or(0, |(_, len)| len));
                    let label = if ty == "striped" && stripes == 1 {
                        "linear".to_string()
                    } else {
                        ty.clone()
                    };
                    if !types.contains(&label) {
                        types.push(label.clone());
                    }
                    let (true, Some((seg_start, seg_len))) = (label == "linear", span) else {
                        pure = false;
                        continue;
                    };
                    let (pvkey, pe) = match seg.get("stripes") {
                        Some(Value::List(l)) if l.len() == 2 => match (&l[0], &l[1]) {
                            (Value::Str(k), Value::Int(pe)) => (k.clone(), *pe),
                            _ => {
                                pure = false;
                                continue;
                            }
                        },
                        _ => {
                            pure = false;
                            continue;
                        }
                    };
                    let at =
                        |pe_start: u64| extent.and_then(|x| bytes(pe, x)?.checked_add(pe_start));
                    if !pv_map.contains_key(&pvkey) && missing_keys.contains(&pvkey) {
                        incomplete = true;
                    }
                    match pv_map.get(&pvkey).and_then(|(pv, s)| Some((pv, at(*s)?))) {
                        Some((pv, dev_off)) => {
                            segments.push(crate::types::LvSegment {
                                start: seg_start,
                                length: seg_len,
                                pv: pv.device.clone(),
                                pv_offset: dev_off,
                            });
                            extents.push((seg_start, seg_len, pv.dev.clone(), dev_off))
                        }
                        None => pure = false,
                    }
                }
                extents.sort_by_key(|e| e.0);
                segments.sort_by_key(|s| s.start);
                let contiguous = extents.iter().try_fold(0u64, |at, e| {
                    (e.0 == at).then(|| e.0.checked_add(e.1)).flatten()
                }) == Some(size);
                if pure && !contiguous {
                    warnings.push(format!(
                        "{device}: segments do not cover the LV contiguously"
                    ));
                    pure = false;
                }
                if incomplete {
                    warnings.push(format!(
                        "{device}: a PV it uses is not on the given disks (give every disk of the guest)"
                    ));
                } else if !pure {
                    warnings.push(format!(
                        "{device}: {} LV not mapped in pure Rust; the appliance serves it",
                        types.join("+")
                    ));
                } else {
                    let dev: Dev = Arc::new(LinearMap {
                        extents,
                        name: device.clone(),
                    });
                    // udev's /dev/disk/by-id/dm-uuid-LVM-<vg uuid><lv uuid> (dashes dropped),
                    // which Ubuntu's installer writes into fstab.
                    let dm_uuid = format!(
                        "/dev/disk/by-id/dm-uuid-LVM-{}{}",
                        report.uuid.replace('-', ""),
                        lv.str("id").unwrap_or("").replace('-', "")
                    );
                    lv_devs.push((
                        device.clone(),
                        vec![format!("/dev/{vgname}/{lvname}"), dm_uuid],
                        dev,
                    ));
                }
                report.lvs.push(LvReport {
                    name: lvname.clone(),
                    device,
                    size,
                    segment_types: types,
                    segments: if pure { segments } else { vec![] },
                    pure,
                    incomplete,
                });
            }
        }
        out.push(Vg {
            report,
            lv_devs,
            warnings,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::image::MemDev as Mem;

    const META: &str = r#"centos {
id = "AbCdEf-1234-5678-9abc-def0-1234-567890"
seqno = 3
format = "lvm2" # informational
status = ["RESIZEABLE", "READ", "WRITE"]
extent_size = 8192
physical_volumes {
pv0 {
id = "Xy0123-4567-89ab-cdef-0123-4567-89abcd"
device = "/dev/sda2"
pe_start = 2048
pe_count = 100
}
}
logical_volumes {
root {
id = "r"
status = ["READ", "WRITE", "VISIBLE"]
segment_count = 2
segment1 {
start_extent = 0
extent_count = 10
type = "striped"
stripe_count = 1
stripes = [
"pv0", 50
]
}
segment2 {
start_extent = 10
extent_count = 5
type = "striped"
stripe_count = 1
stripes = [
"pv0", 0
]
}
}
thinpool {
id = "t"
status = ["READ", "WRITE", "VISIBLE"]
segment1 {
start_extent = 0
extent_count = 5
type = "thin-pool"
}
}
}
}
"#;

    #[test]
    fn parses_metadata_tree() {
        let t = parse_metadata(META).unwrap();
        let vg = &t["centos"];
        assert_eq!(vg.int("seqno"), Some(3));
        assert_eq!(vg.get("logical_volumes").unwrap().sections().len(), 2);
    }

    #[test]
    fn maps_linear_segments_in_order_and_flags_thin() {
        let ext = 8192 * 512;
        let mut data = vec![0u8; 1024 * 1024 + 100 * ext];
        let base = 1024 * 1024; // pe_start 2048 sectors
        data[base + 50 * ext] = 0xAA; // LV extent 0 = PE 50
        data[base] = 0xBB; // LV extent 10 = PE 0
        let dev: Dev = Arc::new(Mem(data));
        let pv = Pv {
            uuid: "Xy0123-4567-89ab-cdef-0123-4567-89abcd".into(),
            dev,
            device: "/dev/sda2".into(),
            metadata: Some(META.into()),
        };
        let vgs = assemble(&[pv]);
        assert_eq!(vgs.len(), 1);
        let vg = &vgs[0];
        let root = vg.report.lvs.iter().find(|l| l.name == "root").unwrap();
        assert!(root.pure);
        assert_eq!(root.size, 15 * ext as u64);
        let thin = vg.report.lvs.iter().find(|l| l.name == "thinpool").unwrap();
        assert!(!thin.pure);
        let (_, _, d) = &vg.lv_devs[0];
        let mut b = [0u8; 1];
        d.read_at(&mut b, 0).unwrap();
        assert_eq!(b[0], 0xAA);
        d.read_at(&mut b, 10 * ext as u64).unwrap();
        assert_eq!(b[0], 0xBB);
    }

    #[test]
    fn lv_spanning_two_disks_reads_across_the_boundary() {
        let meta = r#"data {
id = "v"
seqno = 7
extent_size = 8
physical_volumes {
pv0 {
id = "AAAAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAAAA"
pe_start = 8
}
pv1 {
id = "BBBBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBBBB"
pe_start = 8
}
}
logical_volumes {
big {
status = ["READ", "WRITE", "VISIBLE"]
segment1 {
start_extent = 0
extent_count = 2
type = "striped"
stripe_count = 1
stripes = [
"pv0", 1
]
}
segment2 {
start_extent = 2
extent_count = 1
type = "striped"
stripe_count = 1
stripes = [
"pv1", 0
]
}
}
}
}
"#;
        // Extents are 4 KiB (8 sectors) after a 4 KiB pe_start; fill each with its own byte.
        let disk = |fill: &[u8]| {
            let mut d = vec![0u8; 4096];
            for &f in fill {
                d.extend(std::iter::repeat_n(f, 4096));
            }
            Arc::new(Mem(d)) as Dev
        };
        let a = Pv {
            uuid: "AAAAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAAAA".into(),
            dev: disk(&[1, 2, 3]),
            device: "/dev/sda2".into(),
            metadata: Some(meta.into()),
        };
        // The second disk's PV carries an older copy of the metadata: the newest seqno wins.
        let b = Pv {
            uuid: "BBBBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBBBB".into(),
            dev: disk(&[9]),
            device: "/dev/sdb".into(),
            metadata: Some(meta.replace("seqno = 7", "seqno = 6")),
        };
        let vgs = assemble(&[a, b]);
        assert_eq!(vgs[0].report.pvs, vec!["/dev/sda2", "/dev/sdb"]);
        let seg: Vec<(u64, u64, &str, u64)> = vgs[0].report.lvs[0]
            .segments
            .iter()
            .map(|s| (s.start, s.length, s.pv.as_str(), s.pv_offset))
            .collect();
        assert_eq!(
            seg,
            vec![(0, 8192, "/dev/sda2", 8192), (8192, 4096, "/dev/sdb", 4096)]
        );
        let (_, _, lv) = &vgs[0].lv_devs[0];
        assert_eq!(lv.size(), 3 * 4096);
        let mut buf = vec![0u8; 3 * 4096];
        lv.read_at(&mut buf, 0).unwrap();
        assert!(
            buf[..4096].iter().all(|&x| x == 2)
                && buf[4096..8192].iter().all(|&x| x == 3)
                && buf[8192..].iter().all(|&x| x == 9)
        );
        // A missing second disk is reported and the LV is not mapped.
        let a2 = Pv {
            uuid: "AAAAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAAAA".into(),
            dev: disk(&[1, 2, 3]),
            device: "/dev/sda2".into(),
            metadata: Some(meta.into()),
        };
        let vgs = assemble(&[a2]);
        assert_eq!(vgs[0].report.missing_pvs.len(), 1);
        assert!(vgs[0].lv_devs.is_empty() && !vgs[0].report.lvs[0].pure);
        assert!(
            vgs[0].report.lvs[0].incomplete,
            "a PV is missing: nothing can read it"
        );
        assert!(vgs[0].report.lvs[0].segments.is_empty());
    }

    #[test]
    fn deeply_nested_lists_and_sections_are_errors() {
        let lists = format!(
            "vg {{ x = {}1{} }}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(parse_metadata(&lists).unwrap_err().contains("nested"));
        let secs = format!("{}{}", "a {\n".repeat(100_000), "}\n".repeat(100_000));
        assert!(parse_metadata(&secs).unwrap_err().contains("nested"));
    }

    #[test]
    fn bad_metadata_is_an_error_not_a_panic() {
        assert!(parse_metadata("vg { a = [ 1, ").is_err());
        assert!(parse_metadata("vg { a = \"x").is_err());
        assert!(parse_metadata("}}}").is_err());
    }

    #[test]
    fn mapper_names_double_dashes() {
        assert_eq!(
            mapper_name("my-vg", "lv-root"),
            "/dev/mapper/my--vg-lv--root"
        );
    }
}
