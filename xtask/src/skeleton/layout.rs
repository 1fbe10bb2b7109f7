//! Resolves a recipe's disk into concrete partitions (start, size, number), LVs (extents) and
//! filesystem volumes with their derived UUIDs, labels and guest device names.
use super::ids;
use super::lvm;
use super::recipe::{Mountable, Recipe};
use anyhow::{bail, Result};
use serde::Serialize;
use std::collections::BTreeMap;

const MIB: u64 = 1 << 20;

#[derive(Debug, Clone, Serialize)]
pub struct PartPlace {
    pub id: String,
    pub number: u32,
    pub start: u64,
    pub size: u64,
    pub fs: String,
    /// MBR type byte (hex) or GPT type GUID.
    pub ptype: String,
    pub partuuid: String,
    pub bootable: bool,
    pub logical: bool,
    pub name: Option<String>,
    /// Guest device, e.g. /dev/sda2.
    pub device: String,
    /// Encrypted: (passphrase, LUKS UUID); the content is [`PartPlace::data_size`] bytes.
    pub luks: Option<(String, String)>,
}

/// Room a LUKS2 header takes from an encrypted partition (cryptsetup's
/// `--reduce-device-size` for an offline encryption).
pub const LUKS_RESERVE: u64 = 16 * MIB;

impl PartPlace {
    /// Bytes of content: the partition, less the LUKS header room when encrypted.
    pub fn data_size(&self) -> u64 {
        match self.luks {
            Some(_) => self.size.saturating_sub(LUKS_RESERVE),
            None => self.size,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LvInfo {
    pub vg: String,
    pub name: String,
    pub uuid: String,
    pub start_extent: u64,
    pub extent_count: u64,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VgInfo {
    pub name: String,
    pub uuid: String,
    pub pv_part: String,
    pub pv_uuid: String,
    pub lvs: Vec<LvInfo>,
}

/// A filesystem (or swap) to make: on a partition or an LV.
#[derive(Debug, Clone, Serialize)]
pub struct Volume {
    /// Partition id, or "vg-lv" for an LV.
    pub id: String,
    pub fs: String,
    /// Filesystem UUID as blkid prints it (vfat: XXXX-XXXX).
    pub uuid: String,
    pub label: Option<String>,
    pub mount: Option<String>,
    /// Where it lives: "part:<id>" or "lv:<vg>/<lv>".
    pub on: String,
    pub size: u64,
    #[serde(skip)]
    pub mnt: Mountable,
    /// Names the guest could use for it.
    pub dev: String,
    pub partuuid: Option<String>,
    pub by_id: Option<String>,
    pub mapper: Option<String>,
    pub lvm_dev: Option<String>,
    /// Inside a LUKS2 volume of its own (LUKS on LVM): (passphrase, LUKS UUID); `size` is
    /// what is left for the filesystem, `dev` the opened name (/dev/mapper/luks-UUID).
    pub luks: Option<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Layout {
    pub table: String,
    /// GPT disk GUID or MBR signature (0x%08x).
    pub disk_id: String,
    pub disk_size: u64,
    pub partitions: Vec<PartPlace>,
    pub vgs: Vec<VgInfo>,
    pub volumes: Vec<Volume>,
}

fn gpt_type(fs: &str) -> &'static str {
    match fs {
        "vfat" => "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        "swap" => "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
        "lvm" => "E6D6D379-F507-44C2-A23C-238F2A3DF928",
        "bios_grub" => "21686148-6449-6E6F-744E-656564454649",
        _ => "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
    }
}

fn mbr_type(fs: &str) -> &'static str {
    match fs {
        "vfat" => "ef",
        "swap" => "82",
        "lvm" => "8e",
        "extended" => "5",
        _ => "83",
    }
}

impl Layout {
    pub fn resolve(guest: &str, r: &Recipe) -> Result<Layout> {
        let disk_size = r.disk.size_mib * MIB;
        let gpt = r.disk.table == "gpt";
        // GPT keeps the last MiB free for the backup header.
        let disk_end = if gpt { disk_size - MIB } else { disk_size };
        let disk_id = if gpt {
            ids::uuid(guest, "disk").to_uppercase()
        } else {
            format!("0x{:08x}", ids::u32_of(guest, "mbr-signature"))
        };
        let dev = format!("/dev/{}", r.disk.guest_dev);
        let wwn = ids::hex32(guest, "wwn");
        let by_id_base = format!("/dev/disk/by-id/scsi-36000c29{}", &wwn[..25]);

        let mut parts = vec![];
        let mut cursor = MIB;
        let mut ext_end = 0u64;
        let mut primary_no = 0u32;
        let mut logical_no = 4u32;
        for p in &r.disk.partitions {
            let limit = if p.logical { ext_end } else { disk_end };
            if p.logical {
                if ext_end == 0 {
                    bail!("partition {}: logical without a preceding extended", p.id);
                }
                cursor += MIB; // room for the EBR, aligned like fdisk does
            }
            let start = cursor;
            let size = match p.size_mib {
                Some(m) => m * MIB,
                None => limit.saturating_sub(start),
            };
            if size == 0 || start + size > limit {
                bail!(
                    "partition {} does not fit on the {} MiB disk",
                    p.id,
                    r.disk.size_mib
                );
            }
            let number = if p.logical {
                logical_no += 1;
                logical_no
            } else {
                primary_no += 1;
                primary_no
            };
            if !gpt && !p.logical && number > 4 {
                bail!("partition {}: more than 4 primary partitions", p.id);
            }
            if p.fs == "extended" {
                ext_end = start + size;
                cursor = start;
            } else {
                cursor = start + size;
            }
            let partuuid = if gpt {
                ids::uuid(guest, &format!("partuuid/{}", p.id))
            } else {
                format!("{}-{:02x}", &disk_id[2..], number)
            };
            parts.push(PartPlace {
                id: p.id.clone(),
                number,
                start,
                size,
                fs: p.fs.clone(),
                ptype: if gpt {
                    gpt_type(&p.fs).into()
                } else {
                    mbr_type(&p.fs).into()
                },
                partuuid,
                bootable: p.bootable,
                logical: p.logical,
                name: p.name.clone(),
                device: format!("{dev}{number}"),
                luks: p.luks.as_ref().map(|l| {
                    (
                        l.passphrase.clone(),
                        ids::uuid(guest, &format!("luks/{}", p.id)),
                    )
                }),
            });
        }

        let mut volumes = vec![];
        if let Some(p) = r
            .disk
            .partitions
            .iter()
            .find(|p| p.luks.is_some() && p.fs != "lvm")
        {
            bail!("partition {}: luks is for a PV (fs = \"lvm\") so far", p.id);
        }
        for (p, place) in r.disk.partitions.iter().zip(&parts) {
            if matches!(p.fs.as_str(), "lvm" | "extended" | "bios_grub" | "none") {
                continue;
            }
            volumes.push(Volume {
                id: p.id.clone(),
                fs: p.fs.clone(),
                uuid: fs_uuid(guest, &p.id, &p.fs),
                label: p.mnt.label.clone(),
                mount: p.mnt.mount.clone(),
                on: format!("part:{}", p.id),
                size: place.size,
                mnt: p.mnt.clone(),
                dev: place.device.clone(),
                partuuid: Some(place.partuuid.clone()),
                by_id: Some(format!("{by_id_base}-part{}", place.number)),
                mapper: None,
                lvm_dev: None,
                luks: None,
            });
        }

        let mut vgs: BTreeMap<String, VgInfo> = BTreeMap::new();
        for lv in &r.lvm {
            let place = r
                .disk
                .partitions
                .iter()
                .zip(&parts)
                .find(|(p, _)| p.vg.as_deref() == Some(lv.vg.as_str()))
                .map(|(_, pl)| pl.clone());
            let Some(pv) = place else {
                bail!("lv {}/{}: no PV", lv.vg, lv.name)
            };
            let vg = vgs.entry(lv.vg.clone()).or_insert_with(|| VgInfo {
                name: lv.vg.clone(),
                uuid: ids::lvm_uuid(guest, &format!("vg/{}", lv.vg)),
                pv_part: pv.id.clone(),
                pv_uuid: ids::lvm_uuid(guest, &format!("pv/{}", pv.id)),
                lvs: vec![],
            });
            let start_extent = vg.lvs.iter().map(|l| l.extent_count).sum::<u64>();
            let extent_count = (lv.size_mib * MIB).div_ceil(lvm::EXTENT);
            if start_extent + extent_count > lvm::pe_count(pv.data_size()) {
                bail!(
                    "lv {}/{}: {} MiB does not fit on PV {}",
                    lv.vg,
                    lv.name,
                    lv.size_mib,
                    pv.id
                );
            }
            let size = extent_count * lvm::EXTENT;
            vg.lvs.push(LvInfo {
                vg: lv.vg.clone(),
                name: lv.name.clone(),
                uuid: ids::lvm_uuid(guest, &format!("lv/{}/{}", lv.vg, lv.name)),
                start_extent,
                extent_count,
                size,
            });
            let id = format!("{}-{}", lv.vg, lv.name);
            // device-mapper doubles dashes inside VG and LV names.
            let dm = format!(
                "{}-{}",
                lv.vg.replace('-', "--"),
                lv.name.replace('-', "--")
            );
            let dm_uuid = format!(
                "/dev/disk/by-id/dm-uuid-LVM-{}{}",
                vg.uuid,
                ids::lvm_uuid(guest, &format!("lv/{}/{}", lv.vg, lv.name))
            );
            let luks = lv.luks.as_ref().map(|l| {
                (
                    l.passphrase.clone(),
                    ids::uuid(guest, &format!("luks/{id}")),
                )
            });
            let (size, dev) = match &luks {
                Some((_, u)) => (
                    size.saturating_sub(LUKS_RESERVE),
                    format!("/dev/mapper/luks-{u}"),
                ),
                None => (size, format!("/dev/mapper/{dm}")),
            };
            volumes.push(Volume {
                id: id.clone(),
                fs: lv.fs.clone(),
                uuid: fs_uuid(guest, &id, &lv.fs),
                label: lv.mnt.label.clone(),
                mount: lv.mnt.mount.clone(),
                on: format!("lv:{}/{}", lv.vg, lv.name),
                size,
                mnt: lv.mnt.clone(),
                dev: dev.clone(),
                partuuid: None,
                by_id: Some(dm_uuid),
                mapper: Some(dev),
                lvm_dev: Some(format!("/dev/{}/{}", lv.vg, lv.name)),
                luks,
            });
        }
        Ok(Layout {
            table: r.disk.table.clone(),
            disk_id,
            disk_size,
            partitions: parts,
            vgs: vgs.into_values().collect(),
            volumes,
        })
    }

    pub fn volume_at(&self, mount: &str) -> Option<&Volume> {
        self.volumes
            .iter()
            .find(|v| v.mount.as_deref() == Some(mount))
    }

    /// The volume holding `path` in the guest (longest mount prefix).
    pub fn volume_for(&self, path: &str) -> Option<&Volume> {
        self.volumes
            .iter()
            .filter(|v| {
                v.mount
                    .as_deref()
                    .is_some_and(|m| m == "/" || path == m || path.starts_with(&format!("{m}/")))
            })
            .max_by_key(|v| v.mount.as_ref().map(|m| m.len()).unwrap_or(0))
    }

    pub fn part(&self, id: &str) -> Option<&PartPlace> {
        self.partitions.iter().find(|p| p.id == id)
    }
}

fn fs_uuid(guest: &str, id: &str, fs: &str) -> String {
    if fs == "vfat" {
        let s = ids::u32_of(guest, &format!("fs/{id}"));
        format!("{:04X}-{:04X}", s >> 16, s & 0xffff)
    } else {
        ids::uuid(guest, &format!("fs/{id}"))
    }
}

impl Volume {
    /// The device spec in the given fstab/root= style.
    pub fn spec(&self, style: &str) -> Result<String> {
        Ok(match style {
            "uuid" => format!("UUID={}", self.uuid),
            "label" => match &self.label {
                Some(l) => format!("LABEL={l}"),
                None => bail!("volume {}: label style without a label", self.id),
            },
            "dev" => self.dev.clone(),
            "partuuid" => match &self.partuuid {
                Some(p) => format!("PARTUUID={p}"),
                None => bail!("volume {}: partuuid style on an LV", self.id),
            },
            // On an LV this is the dm-uuid-LVM-<vg uuid><lv uuid> link (Ubuntu's subiquity).
            "by-id" => match &self.by_id {
                Some(p) => p.clone(),
                None => bail!("volume {}: no by-id name", self.id),
            },
            "by-uuid" => format!("/dev/disk/by-uuid/{}", self.uuid),
            "mapper" => match &self.mapper {
                Some(p) => p.clone(),
                None => bail!("volume {}: mapper style on a partition", self.id),
            },
            "lvm-dev" => match &self.lvm_dev {
                Some(p) => p.clone(),
                None => bail!("volume {}: lvm-dev style on a partition", self.id),
            },
            s => bail!("volume {}: unknown device style {s:?}", self.id),
        })
    }
}
