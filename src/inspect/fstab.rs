//! fstab / crypttab parsing and device-spec resolution against the volumes on these disks.
use crate::types::{CrypttabEntry, FstabEntry, SpecKind, VolumeReport as Volume};

/// Decodes fstab octal escapes (\040 for space) and udev's \x20 in by-label names. Works on
/// bytes so that UTF-8 labels (and escaped UTF-8 bytes) come out as written.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        let hex = b
            .get(i + 2..i + 4)
            .filter(|_| b.get(i + 1) == Some(&b'x'))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], octal, hex) {
            (b'\\', Some(d), _) => {
                let v = d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            (b'\\', None, Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn strip_quotes(s: &str) -> &str {
    s.trim_matches('"').trim_matches('\'')
}

/// Disk index from a bus-dependent kernel name: sda -> 0, hdb -> 1, xvdc -> 2, vdaa -> 26.
fn disk_letter_index(letters: &str) -> Option<usize> {
    if letters.is_empty() || !letters.bytes().all(|c| c.is_ascii_lowercase()) {
        return None;
    }
    // Tenant text: "sdaaaaaaaaaaaaaa" names no disk rather than overflowing (issue #12).
    let mut n = 0usize;
    for c in letters.bytes() {
        n = n.checked_mul(26)?.checked_add((c - b'a' + 1) as usize)?;
    }
    Some(n - 1)
}

/// How a spec is written, whether it depends on the bus, and the volume it names.
pub fn resolve_spec<'a>(spec: &str, vols: &'a [Volume]) -> (SpecKind, bool, Option<&'a Volume>) {
    let spec = strip_quotes(spec);
    let eq = |a: &Option<String>, b: &str| a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(b));
    let by = |f: &dyn Fn(&Volume) -> bool| vols.iter().find(|v| f(v));
    if let Some(u) = spec.strip_prefix("UUID=") {
        let u = strip_quotes(u);
        return (SpecKind::Uuid, false, by(&|v| eq(&v.uuid, u)));
    }
    if let Some(l) = spec.strip_prefix("LABEL=") {
        let l = unescape(strip_quotes(l));
        return (
            SpecKind::Label,
            false,
            by(&|v| v.label.as_deref() == Some(l.as_str())),
        );
    }
    if let Some(u) = spec.strip_prefix("PARTUUID=") {
        let u = strip_quotes(u);
        return (SpecKind::Partuuid, false, by(&|v| eq(&v.part_uuid, u)));
    }
    if let Some(l) = spec.strip_prefix("PARTLABEL=") {
        let l = strip_quotes(l);
        return (
            SpecKind::Partlabel,
            false,
            by(&|v| v.part_label.as_deref() == Some(l)),
        );
    }
    if let Some(u) = spec.strip_prefix("/dev/disk/by-uuid/") {
        return (SpecKind::ByUuid, false, by(&|v| eq(&v.uuid, u)));
    }
    if let Some(l) = spec.strip_prefix("/dev/disk/by-label/") {
        let l = unescape(l);
        return (
            SpecKind::ByLabel,
            false,
            by(&|v| v.label.as_deref() == Some(l.as_str())),
        );
    }
    if let Some(u) = spec.strip_prefix("/dev/disk/by-partuuid/") {
        return (SpecKind::Partuuid, false, by(&|v| eq(&v.part_uuid, u)));
    }
    if let Some(l) = spec.strip_prefix("/dev/disk/by-partlabel/") {
        return (
            SpecKind::Partlabel,
            false,
            by(&|v| v.part_label.as_deref() == Some(l)),
        );
    }
    if spec.starts_with("/dev/disk/by-id/") || spec.starts_with("/dev/disk/by-path/") {
        let kind = if spec.starts_with("/dev/disk/by-id/") {
            SpecKind::ById
        } else {
            SpecKind::ByPath
        };
        // by-id embeds a serial (dm-uuid-LVM-... and dm-name-... excepted) and by-path a
        // controller address: neither can be matched offline. With a single disk the "-partN"
        // suffix still identifies the partition.
        let tail = spec.rsplit('/').next().unwrap_or("");
        if tail.starts_with("dm-uuid-") {
            // Device-mapper UUIDs (LVM: VG + LV uuid) do not change with the bus.
            return (kind, false, by(&|v| v.aliases.iter().any(|a| a == spec)));
        }
        if let Some(name) = tail.strip_prefix("dm-name-") {
            let dev = format!("/dev/mapper/{name}");
            return (
                kind,
                false,
                by(&|v| v.device == dev || v.aliases.contains(&dev)),
            );
        }
        let disks: std::collections::BTreeSet<usize> =
            vols.iter().filter_map(|v| v.disk_index).collect();
        let part = tail
            .rsplit_once("-part")
            .and_then(|(_, n)| n.parse::<u32>().ok());
        let found = if disks.len() == 1 {
            let d = *disks.iter().next().unwrap_or(&0);
            by(&|v| v.disk_index == Some(d) && v.part_number == part)
        } else {
            None
        };
        return (kind, true, found);
    }
    if let Some(rest) = spec.strip_prefix("/dev/mapper/") {
        // An alias: the crypttab name of an opened LUKS volume.
        let dev = format!("/dev/mapper/{rest}");
        return (
            SpecKind::Mapper,
            false,
            by(&|v| v.device == dev || v.aliases.contains(&dev)),
        );
    }
    if let Some(rest) = spec.strip_prefix("/dev/") {
        // Kernel names: sdXN, hdXN, vdXN, xvdXN, nvmeDnNpP.
        for prefix in ["xvd", "sd", "hd", "vd"] {
            if let Some(r) = rest.strip_prefix(prefix) {
                let letters: String = r.chars().take_while(|c| c.is_ascii_lowercase()).collect();
                let num = &r[letters.len()..];
                if let Some(d) = disk_letter_index(&letters) {
                    let part = if num.is_empty() {
                        None
                    } else {
                        num.parse::<u32>().ok()
                    };
                    if num.is_empty() || part.is_some() {
                        return (
                            SpecKind::DeviceName,
                            true,
                            by(&|v| v.disk_index == Some(d) && v.part_number == part),
                        );
                    }
                }
            }
        }
        if let Some(r) = rest.strip_prefix("nvme") {
            // nvme0n1p2: controller 0 -> disk 0, partition 2.
            let parts: Vec<&str> = r.splitn(2, 'n').collect();
            if let (Some(Ok(d)), Some(tail)) =
                (parts.first().map(|c| c.parse::<usize>()), parts.get(1))
            {
                let part = tail
                    .split_once('p')
                    .and_then(|(_, p)| p.parse::<u32>().ok());
                return (
                    SpecKind::DeviceName,
                    true,
                    by(&|v| v.disk_index == Some(d) && v.part_number == part),
                );
            }
        }
        // /dev/VG/LV
        let dev = format!("/dev/{rest}");
        if rest.matches('/').count() == 1 {
            return (SpecKind::Mapper, false, by(&|v| v.aliases.contains(&dev)));
        }
        return (
            SpecKind::Other,
            false,
            by(&|v| v.device == dev || v.aliases.contains(&dev)),
        );
    }
    (SpecKind::Virtual, false, None)
}

/// Whether a spec names a block device at all (not tmpfs, proc, nfs, bind mounts...).
fn is_device_spec(kind: &SpecKind) -> bool {
    !matches!(kind, SpecKind::Virtual)
}

/// Non-comment lines of a whitespace-separated table (fstab, crypttab) with at least `min`
/// fields, as (index of the line, fields); shorter lines are skipped and logged, never fatal.
fn table_rows(text: &str, min: usize) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(move |(i, line)| {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            return None;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < min {
            tracing::debug!("line {}: too few fields: {l}", i + 1);
            return None;
        }
        Some((i, f))
    })
}

/// Parses fstab text. Malformed lines are skipped (and logged), never fatal.
pub fn parse_fstab(text: &str, vols: &[Volume]) -> Vec<FstabEntry> {
    let mut out = vec![];
    for (i, f) in table_rows(text, 3) {
        let (kind, bus, vol) = resolve_spec(f[0], vols);
        let options = f.get(3).copied().unwrap_or("defaults").to_string();
        let nofail = options.split(',').any(|o| o == "nofail" || o == "noauto");
        let device_spec = is_device_spec(&kind)
            && !["bind", "rbind"]
                .iter()
                .any(|b| options.split(',').any(|o| o == *b));
        out.push(FstabEntry {
            line: i + 1,
            spec: f[0].to_string(),
            mountpoint: unescape(f[1]),
            fstype: f[2].to_string(),
            options,
            nofail,
            spec_kind: if device_spec { kind } else { SpecKind::Virtual },
            resolves_to: vol.map(|v| v.device.clone()),
            present: !device_spec || vol.is_some(),
            bus_dependent: bus,
        });
    }
    out
}

/// Parses crypttab text: name, device, keyfile, options.
pub fn parse_crypttab(text: &str, vols: &[Volume]) -> Vec<CrypttabEntry> {
    let mut out = vec![];
    for (i, f) in table_rows(text, 2) {
        let (kind, bus, vol) = resolve_spec(f[1], vols);
        out.push(CrypttabEntry {
            line: i + 1,
            name: f[0].to_string(),
            spec: f[1].to_string(),
            spec_kind: kind,
            resolves_to: vol.map(|v| v.device.clone()),
            present: vol.is_some(),
            bus_dependent: bus,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(
        device: &str,
        disk: usize,
        part: Option<u32>,
        uuid: &str,
        label: Option<&str>,
    ) -> Volume {
        Volume {
            device: device.into(),
            aliases: vec![],
            size: 1,
            fstype: Some("ext4".into()),
            uuid: Some(uuid.into()),
            label: label.map(String::from),
            flags: vec![],
            reader: "pure".into(),
            part_uuid: Some(format!("pu-{uuid}")),
            part_label: None,
            disk_index: Some(disk),
            part_number: part,
            journal_recovery: None,
            xfs_log: None,
            luks: None,
        }
    }

    #[test]
    fn resolves_every_spec_style() {
        let vols = vec![
            vol("/dev/sda1", 0, Some(1), "1111-aaaa", Some("boot fs")),
            vol("/dev/sda2", 0, Some(2), "2222-bbbb", Some("root")),
        ];
        let fstab = "# comment\nUUID=2222-BBBB / ext4 defaults 0 1\nLABEL=boot\\040fs /boot ext4 defaults 0 2\n\
/dev/sda2 /x ext4 defaults 0 0\n/dev/hda1 /y ext4 defaults 0 0\n/dev/disk/by-id/ata-QEMU_HARDDISK_QM00001-part1 /z ext4 defaults 0 0\n\
PARTUUID=pu-1111-aaaa /p ext4 defaults 0 0\n/dev/sdc1 /data ext4 defaults 0 0\ntmpfs /tmp tmpfs defaults 0 0\n\
/dev/disk/by-uuid/9999 /gone xfs nofail 0 0\n";
        let e = parse_fstab(fstab, &vols);
        assert_eq!(e.len(), 9);
        assert_eq!(e[0].resolves_to.as_deref(), Some("/dev/sda2"));
        assert_eq!(e[0].line, 2);
        assert_eq!(e[1].mountpoint, "/boot");
        assert_eq!(e[1].resolves_to.as_deref(), Some("/dev/sda1"));
        assert!(e[2].bus_dependent && e[2].resolves_to.as_deref() == Some("/dev/sda2"));
        assert_eq!(e[3].resolves_to.as_deref(), Some("/dev/sda1"));
        assert_eq!(e[4].spec_kind, SpecKind::ById);
        assert_eq!(e[4].resolves_to.as_deref(), Some("/dev/sda1"));
        assert_eq!(e[5].resolves_to.as_deref(), Some("/dev/sda1"));
        assert!(!e[6].present, "sdc is not on these disks");
        assert!(e[7].present && e[7].spec_kind == SpecKind::Virtual);
        assert!(!e[8].present && e[8].nofail);
    }

    #[test]
    fn dm_uuid_by_id_names_the_lv_on_any_bus() {
        let spec = "/dev/disk/by-id/dm-uuid-LVM-3zzTmp6s3J4kLaV88a1B1JU1bokqMSoILQJbq4uKlHMa5f69olzFvu4jpn26pxwc";
        let mut lv = vol("/dev/mapper/vg-root", 0, None, "3333-cccc", None);
        lv.disk_index = None;
        lv.aliases = vec!["/dev/vg/root".into(), spec.into()];
        let vols = vec![vol("/dev/sda1", 0, Some(1), "1111-aaaa", None), lv];
        let (kind, bus, found) = resolve_spec(spec, &vols);
        assert_eq!(kind, SpecKind::ById);
        assert!(!bus, "a dm uuid does not change with the bus");
        assert_eq!(
            found.map(|v| v.device.as_str()),
            Some("/dev/mapper/vg-root")
        );
        let other = "/dev/disk/by-id/dm-uuid-LVM-0000000000000000000000000000000000000000000000000000000000000000";
        assert!(resolve_spec(other, &vols).2.is_none());
    }

    #[test]
    fn unescape_keeps_utf8_and_decodes_escapes() {
        assert_eq!(unescape("boot\\040fs"), "boot fs");
        assert_eq!(unescape("my\\x20disk"), "my disk");
        assert_eq!(unescape("donn\u{e9}es"), "donn\u{e9}es");
        assert_eq!(unescape("\\xa\u{e9}"), "\\xa\u{e9}");
        assert_eq!(unescape("d\\303\\251"), "d\u{e9}");
        assert_eq!(unescape("tail\\"), "tail\\");
    }

    #[test]
    fn letter_index() {
        assert_eq!(disk_letter_index("a"), Some(0));
        assert_eq!(disk_letter_index("c"), Some(2));
        assert_eq!(disk_letter_index("aa"), Some(26));
    }
}
