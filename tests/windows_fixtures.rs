//! The phony Windows guest set (`cargo xtask fixtures --set windows`, described by its
//! manifest.json): `revirt inspect --json` reports each guest as the manifest expects (product,
//! version, build, arch, client/server, C: on the system volume, BIOS or UEFI with its ESP and BCD),
//! the trouble cases show their evidence, and `revirt repair` refuses each of them with the
//! refused exit code, writing nothing. All pure Rust: no appliance is launched.
#[path = "common/boot.rs"]
mod boot;
mod common;

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The adapter genreg.py gives a static address.
const NIC1: &str = "{5A1C3D2E-8F44-4B8B-9E61-2D3C4B5A6978}";

fn windows_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(boot::windows_guests)
}

fn manifest() -> Vec<Value> {
    let p = windows_dir().join("manifest.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let m: Value = serde_json::from_str(&text).unwrap();
    m["guests"].as_array().expect("manifest guests").clone()
}

fn image(g: &Value) -> PathBuf {
    windows_dir().join(g["file"].as_str().unwrap())
}

fn inspect(img: &Path) -> Value {
    let (code, out, err) = common::revirt_out(&["inspect", "--json", img.to_str().unwrap()]);
    assert_eq!(code, 0, "{}: {err}", img.display());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{}: {e}: {out}", img.display()))
}

fn sha(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

fn want(bad: &mut Vec<String>, name: &str, what: &str, got: &Value, exp: &Value) {
    if got != exp {
        bad.push(format!("{name}: {what}: got {got}, want {exp}"));
    }
}

/// Checks one guest against its manifest entry; returns the problems found.
fn check_guest(g: &Value) -> Vec<String> {
    let name = g["name"].as_str().unwrap();
    let j = inspect(&image(g));
    let mut bad = vec![];
    want(
        &mut bad,
        name,
        "appliance_used",
        &j["appliance_used"],
        &Value::Bool(false),
    );
    let disk = &j["disks"][0];
    want(
        &mut bad,
        name,
        "partition_table",
        &disk["partition_table"],
        &g["partition_table"],
    );
    let oses = j["operating_systems"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if oses.len() != 1 || oses[0]["kind"] != "windows" {
        return vec![format!("{name}: expected one Windows OS, got {oses:?}")];
    }
    let root = oses[0]["root"]["device"].clone();
    want(
        &mut bad,
        name,
        "root fstype",
        &oses[0]["root"]["fstype"],
        &"ntfs".into(),
    );
    let w = &oses[0]["windows"];
    want(
        &mut bad,
        name,
        "product_name",
        &w["product_name"],
        &g["product"],
    );
    want(&mut bad, name, "version", &w["version"], &g["version"]);
    want(&mut bad, name, "build", &w["build"], &g["build"]);
    want(&mut bad, name, "arch", &w["arch"], &g["arch"]);
    want(
        &mut bad,
        name,
        "installation_type",
        &w["installation_type"],
        &g["installation_type"],
    );
    want(
        &mut bad,
        name,
        "system_root",
        &w["system_root"],
        &g["system_root"],
    );
    want(&mut bad, name, "firmware", &w["firmware"], &g["firmware"]);
    // A dirty SYSTEM is listed, and read as recovered: the first adapter's address and the
    // Start values are the ones only its log holds.
    want(
        &mut bad,
        name,
        "dirty_hives",
        &w["dirty_hives"],
        &g["dirty_hives"],
    );
    let nic1 = w["interfaces"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["guid"] == NIC1))
        .map(|i| i["addresses"].clone())
        .unwrap_or_default();
    want(
        &mut bad,
        name,
        "NIC1 addresses",
        &nic1,
        &Value::Array(vec![g["static_ip"].clone()]),
    );
    for ls in g["logged_start"].as_array().into_iter().flatten() {
        let (svc, start) = ls.as_str().unwrap().split_once('=').unwrap();
        let got = w["drivers"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d["name"] == svc))
            .map(|d| d["start"].clone())
            .unwrap_or_default();
        want(
            &mut bad,
            name,
            &format!("{svc} Start"),
            &got,
            &start.parse::<u64>().unwrap().into(),
        );
    }
    if g["trouble"] == "dynamic" {
        // C: is an LDM volume ("DMIO:ID:" + volume GUID): no partition carries that GUID.
        want(
            &mut bad,
            name,
            "system_drive",
            &w["system_drive"],
            &Value::Null,
        );
        want(
            &mut bad,
            name,
            "C: mapping",
            &w["drive_letters"]["C:"],
            &"gpt:{5EED0A11-0005-4C6B-9A1E-0000000000D1}".into(),
        );
    } else {
        want(
            &mut bad,
            name,
            "system_drive",
            &w["system_drive"],
            &"C:".into(),
        );
        want(
            &mut bad,
            name,
            "C: device",
            &w["drive_letter_devices"]["C:"],
            &root,
        );
    }
    if g["firmware"] == "bios" && g["trouble"].is_null() {
        // bootmgr + Boot\BCD: on "System Reserved" (the active first partition) when the
        // guest has one, the BCD's loader being winload.exe.
        if w["bcd_default"].is_object() {
            want(
                &mut bad,
                name,
                "BIOS BCD default loader",
                &w["bcd_default"]["path"],
                &"\\Windows\\system32\\winload.exe".into(),
            );
        }
        if name == "2k16-sysreserved" {
            want(&mut bad, name, "system volume", &root, &"/dev/sda2".into());
            want(
                &mut bad,
                name,
                "BIOS boot volume",
                &w["bios_boot_volume"],
                &"/dev/sda1".into(),
            );
        }
    }
    if g["firmware"] == "uefi" {
        let esp = &w["esp"];
        let dev = esp["device"].as_str().unwrap_or("");
        let part = disk["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["device"] == dev);
        want(
            &mut bad,
            name,
            "ESP partition type",
            &part.map(|p| p["type_name"].clone()).unwrap_or_default(),
            &"efi-system".into(),
        );
        let files: Vec<&str> = esp["efi_files"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !files.contains(&"/EFI/Microsoft/Boot/bootmgfw.efi") {
            bad.push(format!("{name}: ESP files {files:?} lack bootmgfw.efi"));
        }
        want(
            &mut bad,
            name,
            "ESP fallback",
            &esp["has_fallback"],
            &Value::Bool(true),
        );
        want(
            &mut bad,
            name,
            "BCD default loader",
            &w["bcd_default"]["path"],
            &"\\Windows\\system32\\winload.efi".into(),
        );
        // GPT: C: is "DMIO:ID:" + the system partition's GUID.
        if g["trouble"].is_null() {
            let guid = w["drive_letters"]["C:"]
                .as_str()
                .unwrap_or("")
                .to_lowercase();
            let part_uuid = disk["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["device"] == root)
                .and_then(|p| p["part_uuid"].as_str())
                .unwrap_or("")
                .to_lowercase();
            if guid != format!("gpt:{{{part_uuid}}}") {
                bad.push(format!(
                    "{name}: C: is {guid}, system partition {part_uuid}"
                ));
            }
        }
    } else {
        want(&mut bad, name, "esp", &w["esp"], &Value::Null);
        want(
            &mut bad,
            name,
            "C: mapping",
            &w["drive_letters"]["C:"],
            &if g["trouble"] == "dynamic" {
                "gpt:{5EED0A11-0005-4C6B-9A1E-0000000000D1}".into()
            } else {
                // Disk signature + byte offset of the system partition.
                let start = disk["partitions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["device"] == root)
                    .and_then(|p| p["start"].as_u64())
                    .unwrap_or(0);
                format!("mbr:5eed0a11@{start}").into()
            },
        );
    }
    bad
}

#[test]
fn every_guest_inspects_as_its_manifest_says() {
    let guests = manifest();
    // The set the manifest must cover: versions from 2003 R2 to Windows 11 / Server 2022.
    for want in [
        "w7-sp1",
        "w7-sp1-x86",
        "2k8r2",
        "2k12r2",
        "2k16",
        "2k19",
        "2k22",
        "w10-22h2",
        "w11-uefi-gpt",
        "2k22-uefi-gpt",
        "w10-hibernated",
        "w10-dirty",
        "w10-bitlocker",
        "2k19-dynamic",
        "2k22-dynamic-gpt",
        "2k3r2-x86",
    ] {
        assert!(
            guests.iter().any(|g| g["name"] == want),
            "{want} missing from the manifest"
        );
    }
    let bad: Vec<String> = boot::run_parallel(&guests, check_guest)
        .into_iter()
        .flatten()
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

fn by_name(name: &str) -> Value {
    manifest()
        .into_iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the manifest"))
}

fn win(j: &Value) -> &Value {
    &j["operating_systems"][0]["windows"]
}

#[test]
fn windows_11_is_told_by_its_build_not_its_product_name() {
    let g = by_name("w11-uefi-gpt");
    assert_eq!(g["registry_product"], "Windows 10 Pro");
    let j = inspect(&image(&g));
    assert_eq!(win(&j)["product_name"], "Windows 11 Pro");
    assert_eq!(win(&j)["bcd_default"]["description"], "Windows 11");
}

#[test]
fn trouble_cases_show_their_evidence() {
    let j = inspect(&image(&by_name("w10-hibernated")));
    assert_eq!(win(&j)["hiberfil"], "hibernated");
    assert_eq!(win(&j)["fast_startup"], true);

    let j = inspect(&image(&by_name("w10-dirty")));
    assert_eq!(win(&j)["ntfs_dirty"], true);
    let clean = inspect(&image(&by_name("w10-22h2")));
    assert_eq!(win(&clean)["ntfs_dirty"], false);
    assert_eq!(win(&clean)["dirty_hives"], serde_json::json!([]));
    // A hive whose sequence numbers differ has data only in its transaction logs: reported
    // dirty, and read as recovered from SYSTEM.LOG1 (one new-format entry).
    let j = inspect(&image(&by_name("w10-dirty-hive")));
    assert_eq!(win(&j)["dirty_hives"], serde_json::json!(["SYSTEM"]));
    assert_eq!(
        win(&j)["hive_recovery"],
        serde_json::json!([{
            "hive": "SYSTEM",
            "path": "/Windows/System32/config/SYSTEM",
            "volume": null,
            "format": "new",
            "entries_applied": 1,
            "pages_applied": 2,
            "first_seq": 2,
            "last_seq": 2,
            "logs_used": ["LOG1"],
            "logs": ["/Windows/System32/config/SYSTEM.LOG1", "/Windows/System32/config/SYSTEM.LOG2"],
            "final_seq": 3,
            "notes": [],
            "error": null
        }])
    );
    // The logged address, not the primary file's stale 192.168.10.20.
    let s = win(&j)["interfaces"].to_string();
    assert!(
        s.contains("\"192.168.10.77\"") && !s.contains("192.168.10.20"),
        "{s}"
    );
    // A clean hive has no record; its empty logs are fine.
    assert_eq!(win(&clean)["hive_recovery"], serde_json::json!([]));
    // Garbage in the log: still reported dirty, read stale, with the log problem.
    let j = inspect(&image(&by_name("w10-dirty-hive-badlog")));
    assert_eq!(win(&j)["dirty_hives"], serde_json::json!(["SYSTEM"]));
    let rec = &win(&j)["hive_recovery"][0];
    assert_eq!(
        (&rec["hive"], &rec["format"]),
        (&"SYSTEM".into(), &Value::Null)
    );
    let e = rec["error"].as_str().unwrap_or("");
    assert!(
        e.contains("no transaction log is usable") && e.contains("LOG1 at offset 0x0"),
        "{e}"
    );
    assert!(win(&j)["interfaces"].to_string().contains("192.168.10.20"));
    // An NTFS journal with a client in use and the clean flag off; a reset (0xFF) log is clean.
    let j = inspect(&image(&by_name("w10-unclean-log")));
    assert_eq!(win(&j)["ntfs_log_unclean"], true);
    assert_eq!(win(&clean)["ntfs_log_unclean"], false);

    // BitLocker: the data volume is recognised from its boot sector and FVE metadata block.
    let j = inspect(&image(&by_name("w10-bitlocker")));
    let vols = j["volumes"].as_array().unwrap();
    let fve = vols
        .iter()
        .find(|v| v["fstype"] == "BitLocker")
        .unwrap_or_else(|| panic!("no BitLocker volume: {vols:?}"));
    assert_eq!(fve["flags"], serde_json::json!(["v2"]));
    assert_eq!(fve["uuid"], "4967d63b-2e29-4ad8-8399-f6a339e3d001");
    assert_eq!(fve["label"], "WINGUEST D: 1/15/2024");
    assert_eq!(fve["reader"], "none");
    assert_eq!(win(&j)["drive_letter_devices"]["D:"], fve["device"]);

    // Dynamic disks: the LDM PRIVHEAD names the disk group, MBR (0x42) and GPT (LDM types).
    let j = inspect(&image(&by_name("2k19-dynamic")));
    assert_eq!(j["disks"][0]["ldm_disk_group"], "WIN2019-Dg0");
    assert_eq!(j["disks"][0]["partitions"][0]["type_id"], "42");
    let j = inspect(&image(&by_name("2k22-dynamic-gpt")));
    assert_eq!(j["disks"][0]["ldm_disk_group"], "WIN2022-Dg0");
    let types: Vec<&str> = j["disks"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["type_name"].as_str())
        .collect();
    assert!(
        types.contains(&"windows-ldm-metadata") && types.contains(&"windows-ldm-data"),
        "{types:?}"
    );
    // A basic disk has no disk group.
    assert_eq!(clean["disks"][0]["ldm_disk_group"], Value::Null);

    // No drivers: Windows Server 2003 R2, 32-bit, C:\WINDOWS, no InstallationType in the hive.
    let j = inspect(&image(&by_name("2k3r2-x86")));
    assert_eq!(
        (
            &win(&j)["version"],
            &win(&j)["arch"],
            &win(&j)["system_root"]
        ),
        (&"5.2".into(), &"i386".into(), &"/WINDOWS".into())
    );
}

/// `revirt repair` of every trouble case (tests/windows_repair.rs covers the in-process API for
/// hibernated/dirty/no-source; this is the CLI and the new cases): the refused exit code, the
/// manifest's reason on stdout, no overlay, the input unchanged. The no-drivers case is also run
/// against the virtio-win ISO.
#[test]
fn trouble_cases_are_refused_by_the_cli_with_nothing_written() {
    let dir = windows_dir();
    let folder = dir.join("virtio-win");
    let iso = dir.join("virtio-win.iso");
    let trouble: Vec<Value> = manifest()
        .into_iter()
        .filter(|g| !g["refusal"].is_null())
        .collect();
    assert!(trouble.len() >= 6, "{trouble:?}");
    let mut runs = vec![];
    for g in &trouble {
        runs.push((g.clone(), folder.clone()));
        if g["trouble"] == "no-drivers" {
            runs.push((g.clone(), iso.clone()));
        }
    }
    for (g, source) in runs {
        let name = g["name"].as_str().unwrap();
        let img = image(&g);
        let before = sha(&img);
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out.qcow2");
        let (code, stdout, stderr) = common::revirt_out(&[
            "repair",
            img.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--virtio-win",
            source.to_str().unwrap(),
        ]);
        let want = g["repair_exit"].as_i64().unwrap() as i32;
        assert_eq!(
            code,
            want,
            "{name} ({}): {stdout}{stderr}",
            source.display()
        );
        let why = g["refusal"].as_str().unwrap();
        assert!(
            stdout.contains(why) || stderr.contains(why),
            "{name}: refusal {why:?} not given: {stdout}{stderr}"
        );
        assert!(!out.exists(), "{name}: an overlay was created");
        assert_eq!(sha(&img), before, "{name}: the input changed");
    }
}

/// A disk whose only volume is BitLocker-encrypted: inspection finds no OS (exit 4) but says
/// the volume is encrypted; repair is refused with the reason and writes nothing.
#[test]
fn an_encrypted_system_volume_is_named_not_just_no_os() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("part.img");
    let disk = dir.path().join("disk.img");
    std::fs::File::create(&part)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    common::run(
        std::process::Command::new("python3")
            .arg(boot::repo().join("fixtures/images/windows/trouble.py"))
            .args(["bitlocker"])
            .arg(&part)
            .arg("PC C:"),
    );
    let mut d = vec![0u8; 1 << 20];
    // MBR: one NTFS-type partition at 1 MiB holding the BitLocker volume.
    d[446 + 4] = 0x07;
    d[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
    d[446 + 12..446 + 16].copy_from_slice(&((8u32 << 20) / 512).to_le_bytes());
    d[510] = 0x55;
    d[511] = 0xaa;
    d.extend(std::fs::read(&part).unwrap());
    std::fs::write(&disk, &d).unwrap();
    let before = sha(&disk);
    let (code, _, err) = common::revirt_out(&["inspect", disk.to_str().unwrap()]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("/dev/sda1: BitLocker-encrypted volume"),
        "{err}"
    );
    let out = dir.path().join("out.qcow2");
    let (code, stdout, err) = common::revirt_out(&[
        "repair",
        disk.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    // No OS is its own exit code (4) in every command; the message still names BitLocker.
    assert_eq!(code, 4, "{stdout}{err}");
    assert!(
        err.contains("/dev/sda1 is BitLocker-encrypted and cannot be read without its key"),
        "{err}"
    );
    assert!(!out.exists(), "a refused repair left {}", out.display());
    assert_eq!(sha(&disk), before);
}

/// A dirty SYSTEM hive its log recovers is planned, not refused: first the recovered hive
/// written back over the primary (checked by its sha256 at apply time) and its non-empty log
/// emptied, then the usual edits computed against the recovered hive; the plan notes what was
/// replayed, `--network keep-static` moves the logged address. `verify` of the unrepaired disk
/// flags the hive still dirty. (The repair itself: windows_repair.rs and windows_roundtrip.rs.)
#[test]
fn a_dirty_hive_is_planned_as_recovered_then_edited() {
    let dir = windows_dir();
    let img = image(&by_name("w10-dirty-hive"));
    let src = dir.join("virtio-win");
    let before = sha(&img);
    let plan = |extra: &[&str]| -> Value {
        let mut args = vec!["plan", "--json", "--virtio-win", src.to_str().unwrap()];
        args.extend(extra);
        args.push(img.to_str().unwrap());
        let (code, out, err) = common::revirt_out(&args);
        assert_eq!(code, 0, "{out}{err}");
        serde_json::from_str(&out).unwrap()
    };
    let p = plan(&[]);
    assert_eq!(p["refusals"], serde_json::json!([]), "{p}");
    let notes = p["notes"].to_string();
    assert!(
        notes.contains("SYSTEM: recovered 1 log entry (seq 2..2) from LOG1"),
        "{notes}"
    );
    let acts = p["actions"].as_array().unwrap();
    let hive = "/Windows/System32/config/SYSTEM";
    assert_eq!(acts[0]["change"]["op"], "upload-file", "{}", acts[0]);
    assert_eq!(acts[0]["change"]["from"], format!("recovered-hive:{hive}"));
    assert_eq!(acts[0]["change"]["to"], hive);
    assert_eq!(acts[0]["change"]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(acts[1]["change"]["op"], "write-file");
    assert_eq!(acts[1]["change"]["path"], format!("{hive}.LOG1"));
    assert_eq!(acts[1]["change"]["content"], "");
    // SYSTEM.LOG2 is empty already: nothing to do for it; no other hive is touched as a file.
    let files: Vec<&str> = acts
        .iter()
        .filter_map(|a| a["change"]["path"].as_str().or(a["change"]["to"].as_str()))
        .filter(|t| t.contains("/config/"))
        .collect();
    assert_eq!(files, [hive.to_string(), format!("{hive}.LOG1")]);
    // Every registry edit comes after the write-back, its "before" read from the recovered
    // hive: LSI_SAS is 0 there (3 in the stale primary), so it is left alone.
    let first_reg = acts.iter().position(|a| a["change"]["op"] == "reg-set");
    assert!(first_reg.is_some_and(|i| i > 1), "{acts:?}");
    assert!(acts
        .iter()
        .any(|a| a["change"]["key"] == "ControlSet001\\Services\\viostor"
            && a["change"]["name"] == "Start"
            && a["change"]["value"]["data"] == 0));
    assert!(!acts
        .iter()
        .any(|a| a["change"]["key"] == "ControlSet001\\Services\\LSI_SAS"));
    let p = plan(&["--network", "keep-static"]);
    let text = p["actions"].to_string();
    assert!(
        text.contains("-IPAddress 192.168.10.77 ") && !text.contains("192.168.10.20"),
        "{text}"
    );
    // Not ready as it is: the hive is still dirty on disk.
    let (code, out, err) = common::revirt_out(&[
        "verify",
        "--json",
        "--virtio-win",
        src.to_str().unwrap(),
        img.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let findings = v["findings"].as_array().cloned().unwrap_or_default();
    assert!(
        findings
            .iter()
            .any(|f| f["check"] == "dirty-hive" && f["file"] == hive),
        "{v}"
    );
    // And the clean guest has no such finding (only the missing repair).
    let (_, out, _) = common::revirt_out(&[
        "verify",
        "--json",
        "--virtio-win",
        src.to_str().unwrap(),
        image(&by_name("w10-22h2")).to_str().unwrap(),
    ]);
    assert!(!out.contains("dirty-hive"), "{out}");
    assert_eq!(sha(&img), before, "plan and verify wrote nothing");
}
