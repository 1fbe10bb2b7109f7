//! Encrypted volumes (issue #11): LUKS containers made by the host's own cryptsetup (offline
//! `reencrypt --encrypt` of a Debian-like root, so the payload is encrypted by cryptsetup, not by
//! revirt) in each format revirt opens: LUKS2 with Argon2id and PBKDF2, 512- and 4096-byte
//! sectors; LUKS1 (cryptsetup `convert` of a LUKS2 one: its offline encryption needs
//! device-mapper) with AES-XTS and with the AES-CBC-ESSIV of RHEL 6. Judges: `cryptsetup
//! luksDump --dump-volume-key` gives the key revirt derives; the guest inside (hostname, fstab
//! UUID) is what mkfs wrote before encryption. Keys never show in output; a wrong key, a missing
//! key and a KDF above the caps are each refused clearly.
mod common;

use common::{disk, revirt, tree, DEBIAN12_OS_RELEASE};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT_UUID: &str = "3d5f6a7b-1c2d-4e3f-8a9b-0c1d2e3f4a5b";
const PASS: &str = "correct horse";

/// One cryptsetup recipe.
struct Variant {
    name: &'static str,
    args: &'static [&'static str],
    version: u64,
    cipher: &'static str,
}

/// LUKS2 options for a header `cryptsetup convert --type luks1` can turn into LUKS1.
const LUKS1_ABLE: &[&str] = &[
    "--type",
    "luks2",
    "--pbkdf",
    "pbkdf2",
    "--pbkdf-force-iterations",
    "1000",
];

const VARIANTS: &[Variant] = &[
    Variant {
        name: "luks2-argon2id",
        args: &[
            "--type",
            "luks2",
            "--pbkdf",
            "argon2id",
            "--pbkdf-memory",
            "32768",
            "--pbkdf-force-iterations",
            "4",
            "--reduce-device-size",
            "16M",
        ],
        version: 2,
        cipher: "aes-xts-plain64",
    },
    Variant {
        name: "luks2-pbkdf2-4k-xts256",
        args: &[
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--sector-size",
            "4096",
            "--key-size",
            "256",
            "--reduce-device-size",
            "16M",
        ],
        version: 2,
        cipher: "aes-xts-plain64",
    },
    Variant {
        name: "luks1-xts",
        args: &["--hash", "sha256", "--reduce-device-size", "16M"],
        version: 1,
        cipher: "aes-xts-plain64",
    },
    Variant {
        name: "luks1-cbc-essiv",
        args: &[
            "--cipher",
            "aes-cbc-essiv:sha256",
            "--key-size",
            "256",
            "--hash",
            "sha1",
            "--reduce-device-size",
            "16M",
        ],
        version: 1,
        cipher: "aes-cbc-essiv:sha256",
    },
];

/// A raw file as a block device, for the library-level checks.
fn raw_dev(p: &Path) -> revirt::image::Dev {
    std::sync::Arc::new(revirt::image::raw::RawImage::open(p).unwrap())
}

/// cryptsetup present (else the skip is printed), a scratch folder and the first variant's
/// guest in it: (folder, disk, key file, partition image).
fn first_guest() -> Option<(tempfile::TempDir, PathBuf, PathBuf, PathBuf)> {
    if !have_cryptsetup() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (d, key, part) = luks_guest(dir.path(), &VARIANTS[0], "k");
    Some((dir, d, key, part))
}

fn have_cryptsetup() -> bool {
    let ok = Command::new("cryptsetup")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: cryptsetup not installed (bash .ci/deps.sh installs cryptsetup-bin)");
    }
    ok
}

/// A GPT disk whose one partition is a LUKS container (made by cryptsetup) holding a
/// Debian-like ext4 root whose hostname is `host`. Returns (disk, key file, partition image).
fn luks_guest(dir: &Path, v: &Variant, host: &str) -> (PathBuf, PathBuf, PathBuf) {
    let root = dir.join("root");
    let fstab = format!("UUID={ROOT_UUID} / ext4 defaults 0 1\n");
    tree(
        &root,
        &[
            ("/etc/os-release", DEBIAN12_OS_RELEASE),
            ("/etc/debian_version", "12.8\n"),
            ("/etc/hostname", &format!("{host}\n")),
            ("/etc/fstab", &fstab),
            ("/usr/bin/.keep", ""),
        ],
        &[],
    );
    // 48 MiB of filesystem in a 64 MiB partition: cryptsetup takes the header room at its end.
    let part = dir.join("part.img");
    // 4 KiB blocks: cryptsetup refuses 4096-byte sectors under a smaller block size.
    std::fs::File::create(&part)
        .unwrap()
        .set_len(48 << 20)
        .unwrap();
    common::run(
        Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-b",
                "4096",
                "-U",
                ROOT_UUID,
                "-E",
                "root_owner=0:0",
                "-d",
            ])
            .arg(&root)
            .arg(&part),
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&part)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let key = dir.join("key");
    std::fs::write(&key, PASS).unwrap();
    common::run(
        Command::new("cryptsetup")
            .args(["reencrypt", "--encrypt", "--batch-mode", "--key-file"])
            .arg(&key)
            .args(if v.version == 1 { LUKS1_ABLE } else { &[] })
            .args(v.args)
            .arg(&part),
    );
    if v.version == 1 {
        common::run(
            Command::new("cryptsetup")
                .args(["convert", "--type", "luks1", "--batch-mode"])
                .arg(&part),
        );
    }
    let d = dir.join("disk.raw");
    disk(
        &d,
        "gpt",
        &[(&part, "0FC63DAF-8483-4772-8E79-3D69D8477DE4")],
    );
    (d, key, part)
}

fn inspect_json(disk: &Path, keyargs: &[String]) -> (i32, serde_json::Value, String) {
    let o = revirt()
        .args(["inspect", "--json"])
        .args(keyargs)
        .arg(disk)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The volume key as cryptsetup prints it (`MK dump:` hex, over several lines).
fn cryptsetup_volume_key(part: &Path, key: &Path) -> Vec<u8> {
    let out = Command::new("cryptsetup")
        .args([
            "luksDump",
            "--dump-volume-key",
            "--batch-mode",
            "--key-file",
        ])
        .arg(key)
        .arg(part)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let from = text.find("MK dump:").expect("MK dump in luksDump") + "MK dump:".len();
    let hex: String = text[from..]
        .split_whitespace()
        .take_while(|w| w.len() == 2 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    hex::decode(hex).unwrap()
}

#[test]
fn every_luks_format_opens_to_the_guest_inside() {
    if !have_cryptsetup() {
        return;
    }
    for v in VARIANTS {
        let dir = tempfile::tempdir().unwrap();
        let host = format!("enc-{}", v.name);
        let (d, key, part) = luks_guest(dir.path(), v, &host);

        // The key revirt derives is the one cryptsetup keeps.
        let dev = raw_dev(&part);
        let h = revirt::luks::read_header(dev.as_ref())
            .unwrap()
            .expect("a LUKS header");
        let vk = h
            .unlock(dev.as_ref(), PASS.as_bytes(), &Default::default())
            .unwrap()
            .expect("the passphrase opens a keyslot");
        assert_eq!(
            hex::encode(vk.bytes()),
            hex::encode(cryptsetup_volume_key(&part, &key)),
            "{}: volume key",
            v.name
        );
        assert!(h
            .unlock(dev.as_ref(), b"wrong", &Default::default())
            .unwrap()
            .is_none());

        // The CLI opens it by key file and shows the guest inside.
        let sel = format!("/dev/sda1:file:{}", key.display());
        let (code, ins, err) = inspect_json(&d, &["--key".into(), sel]);
        assert_eq!(code, 0, "{}: {err}", v.name);
        let os = &ins["operating_systems"][0];
        assert_eq!(
            os["root"]["device"], "/dev/mapper/cryptsda1",
            "{}: {os:#}",
            v.name
        );
        assert_eq!(
            os["identity"]["hostname"],
            host.as_str(),
            "{}: {os:#}",
            v.name
        );
        let luks = &common::volume(&ins, "/dev/sda1")["luks"];
        assert_eq!(luks["version"], v.version, "{}: {luks:#}", v.name);
        assert_eq!(luks["cipher"], v.cipher, "{}: {luks:#}", v.name);
        assert_eq!(luks["opened_as"], "/dev/mapper/cryptsda1");
        let uuid = common::run_stdout(Command::new("cryptsetup").arg("luksUUID").arg(&part));
        assert_eq!(luks["uuid"], uuid.trim(), "{}", v.name);
        let inner = common::volume(&ins, "/dev/mapper/cryptsda1");
        assert_eq!(inner["fstype"], "ext4");
        assert_eq!(inner["uuid"], ROOT_UUID);
        assert!(
            !ins.to_string().contains(PASS),
            "the passphrase is in the report"
        );
    }
}

#[test]
fn missing_wrong_and_job_passphrase_keys_are_refused_clearly() {
    let Some((dir, d, key, part)) = first_guest() else {
        return;
    };

    // No key: no OS, and the error says which volume is locked and how to give its key.
    let (code, ins, err) = inspect_json(&d, &[]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("/dev/sda1 is LUKS-encrypted and stays locked"),
        "{err}"
    );
    assert!(err.contains("--key"), "{err}");
    assert_eq!(
        common::volume(&ins, "/dev/sda1")["luks"]["opened_as"],
        serde_json::Value::Null
    );

    // A wrong key: exit 9, the device named, the passphrase nowhere.
    let (code, _, err) = inspect_json(&d, &["--key".into(), "/dev/sda1:key:hunter2-wrong".into()]);
    assert_eq!(code, 9, "{err}");
    assert!(
        err.contains("/dev/sda1") && !err.contains("hunter2"),
        "{err}"
    );

    // By LUKS UUID, and from stdin.
    let uuid = common::run_stdout(Command::new("cryptsetup").arg("luksUUID").arg(&part));
    let (code, _, err) = inspect_json(&d, &["--key".into(), format!("{}:key:{PASS}", uuid.trim())]);
    assert_eq!(code, 0, "{err}");
    let o = common::feed(
        revirt()
            .args(["inspect", "--json", "--keys-from-stdin"])
            .arg(&d),
        format!("not it\n{PASS}\n").as_bytes(),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The worker job takes key files only.
    let job = dir.path().join("job.json");
    let out = dir.path().join("out.qcow2");
    std::fs::write(
        &job,
        serde_json::json!({"disks": [d], "outputs": [out], "options": {"keys": [format!("/dev/sda1:key:{PASS}")]}})
            .to_string(),
    )
    .unwrap();
    let o = revirt()
        .args(["worker", "--job"])
        .arg(&job)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("key file") && !err.contains(PASS), "{err}");
    assert!(!out.exists());

    // Repair with the right key: the volume opens and the guest is judged on what is inside
    // (this one has no kernel: refused for that, nothing written).
    let o = revirt()
        .arg("repair")
        .arg("--key")
        .arg(format!("all:file:{}", key.display()))
        .arg(&d)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(6), "{err}");
    assert!(err.contains("no kernel found"), "{err}");
    assert!(!err.contains("LUKS"), "{err}");
    assert!(!out.exists(), "a refused repair left {}", out.display());
}

#[test]
fn kdf_costs_above_the_caps_are_refused_before_deriving() {
    let Some((_dir, _, _, part)) = first_guest() else {
        return;
    };
    let dev = raw_dev(&part);
    let h = revirt::luks::read_header(dev.as_ref()).unwrap().unwrap();
    let limits = revirt::luks::Limits {
        argon2_memory_kib: 16 << 10,
        ..Default::default()
    };
    let e = h
        .unlock(dev.as_ref(), PASS.as_bytes(), &limits)
        .unwrap_err();
    assert!(
        matches!(e, revirt::luks::LuksError::TooCostly { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("32768 KiB"), "{e}");
}

/// A LUKS2 header whose primary copy is damaged is read from its secondary copy (as cryptsetup
/// does); both damaged: refused as corrupt, naming the device, nothing derived.
#[test]
fn a_damaged_primary_luks2_header_falls_back_to_the_secondary() {
    let Some((dir, _, _, part)) = first_guest() else {
        return;
    };
    let mut bytes = std::fs::read(&part).unwrap();
    let hdr_size = u64::from_be_bytes(bytes[8..16].try_into().unwrap()) as usize;
    // One byte of the primary's JSON area: its checksum no longer holds.
    bytes[4096 + 10] ^= 0x55;
    let damaged = dir.path().join("damaged.img");
    std::fs::write(&damaged, &bytes).unwrap();
    let open = |p: &Path| -> Result<Option<Vec<u8>>, String> {
        let dev = raw_dev(p);
        let h = revirt::luks::read_header(dev.as_ref())
            .map_err(|e| e.to_string())?
            .ok_or("no header")?;
        Ok(h.unlock(dev.as_ref(), PASS.as_bytes(), &Default::default())
            .map_err(|e| e.to_string())?
            .map(|k| k.bytes().to_vec()))
    };
    let good = open(&part).unwrap().expect("opens");
    assert_eq!(open(&damaged).unwrap(), Some(good));
    // The secondary copy damaged too.
    bytes[hdr_size + 4096 + 10] ^= 0x55;
    std::fs::write(&damaged, &bytes).unwrap();
    let e = open(&damaged).unwrap_err();
    assert!(
        e.contains("damaged.img") && e.contains("no LUKS2 header copy with a valid checksum"),
        "{e}"
    );
}

/// The native writer's path through an opened LUKS payload (`MappedVolume` over a `CryptDev`
/// layout, onto a qemu-storage-daemon export of the container): writes that start and end
/// inside sectors, span sectors and cover whole ones. Judged by reading back through a fresh
/// open of the container: the decryption is the one the test above proves equal to cryptsetup's,
/// and a sector cipher that decrypts to what was written is the one that encrypted it. Every
/// other ciphertext byte must stay as cryptsetup wrote it.
#[test]
fn native_writes_through_every_luks_format_read_back_and_touch_nothing_else() {
    if !have_cryptsetup() {
        return;
    }
    use revirt::image::BlockDevice;
    for v in VARIANTS {
        let dir = tempfile::tempdir().unwrap();
        let (_d, _key, part) = luks_guest(dir.path(), v, "w");
        let before = std::fs::read(&part).unwrap();
        let open = || {
            let (raw, _) = revirt::image::open_image(&part).unwrap();
            let h = revirt::luks::read_header(raw.as_ref()).unwrap().unwrap();
            let vk = h
                .unlock(raw.as_ref(), PASS.as_bytes(), &Default::default())
                .unwrap()
                .unwrap();
            (
                h.clone(),
                revirt::luks::CryptDev::new(raw, &h, &vk, "/dev/mapper/t".into()),
            )
        };
        let (h, plain) = open();
        let sector = h.sector_size as usize;
        let old_plain = revirt::image::read_vec(&plain, 0, 4 << 20).unwrap();
        // (offset, length): inside one sector, across a sector edge, whole sectors.
        let writes = [
            (sector as u64 + 100, 37usize),
            (3 * sector as u64 - 10, sector + 20),
            (1 << 20, 16 * sector),
        ];
        {
            let (_, info) = revirt::image::open_image(&part).unwrap();
            let disks = std::rc::Rc::new(vec![
                revirt::native::nbd::NbdDisk::open(&info, None).unwrap()
            ]);
            let layout = plain
                .layout()
                .expect("a plain container has a crypt layout");
            assert!(
                layout
                    .iter()
                    .all(|e| matches!(e.via.as_deref(), Some(revirt::image::Via::Crypt { .. }))),
                "{}",
                v.name
            );
            let vol = revirt::native::client::MappedVolume::new(
                "t",
                plain.size(),
                &layout,
                std::slice::from_ref(&info.path),
                disks,
            )
            .unwrap();
            for (i, (off, len)) in writes.iter().enumerate() {
                let data: Vec<u8> = (0..*len).map(|k| (k * 7 + i * 13 + 1) as u8).collect();
                vol.write_at(&data, *off).unwrap();
            }
            vol.flush().unwrap();
        }
        let (_, plain) = open();
        let mut want = old_plain.clone();
        for (i, (off, len)) in writes.iter().enumerate() {
            for k in 0..*len {
                want[*off as usize + k] = (k * 7 + i * 13 + 1) as u8;
            }
        }
        let got = revirt::image::read_vec(&plain, 0, 4 << 20).unwrap();
        assert!(
            got == want,
            "{}: read back differs from what was written",
            v.name
        );
        // Ciphertext: only the sectors written changed.
        let after = std::fs::read(&part).unwrap();
        assert_eq!(before.len(), after.len());
        let payload = h.payload_offset as usize;
        for (s, (a, b)) in before.chunks(sector).zip(after.chunks(sector)).enumerate() {
            let touched = s * sector >= payload && {
                let (lo, hi) = (
                    (s * sector - payload) as u64,
                    (s * sector - payload + sector) as u64,
                );
                writes.iter().any(|(o, l)| *o < hi && o + *l as u64 > lo)
            };
            assert_eq!(
                a != b,
                touched,
                "{}: sector {s} {} unexpectedly",
                v.name,
                if touched { "unchanged" } else { "changed" }
            );
        }
    }
}
