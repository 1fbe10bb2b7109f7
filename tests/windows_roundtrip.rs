//! Every repairable Windows fixture guest, end to end (issue #4, proof):
//! - its plan against tests/golden/plan-windows/<guest>.json (`REVIRT_BLESS=1` rewrites it);
//! - `revirt repair` (native writer: libntfs-3g + libhivex in caged helpers) into a qcow2
//!   overlay, the input byte-identical; the same repair with `--writer appliance` into a second
//!   overlay, compared file by file, hive by hive and security descriptor by descriptor;
//! - the result read back by revirt's pure readers (inspection) AND by independent tools
//!   (`ntfscat` from ntfs-3g pulls the hive and the driver out of the raw partition,
//!   `hivexregedit --export` decodes the hive);
//! - `revirt verify` ready, a second plan empty;
//! - `revirt undo` restores every hive and file byte for byte (only revirt's own
//!   /ProgramData/revirt record stays).
//!
//! Two guests at a time (each costs two appliance launches, ~20 s each under TCG: the
//! differential repair and the undo).
#[path = "common/boot.rs"]
mod boot;
mod common;
mod golden;

use revirt::repair::{repair, Readiness, RepairRequest};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Fixture {
    name: String,
    image: PathBuf,
    /// The static address of the first adapter as inspect must report it (manifest).
    static_ip: String,
    /// "new-log": SYSTEM's last write only in SYSTEM.LOG1, recovered by the repair.
    hive_dirty: Option<String>,
}

/// The repairable guests of the Windows fixture set and the phony virtio-win folder.
fn fixtures() -> (Vec<Fixture>, PathBuf) {
    let dir = boot::windows_guests();
    let m: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("windows manifest.json"),
    )
    .expect("windows manifest.json is JSON");
    let guests = m["guests"].as_array().expect("manifest: guests[]");
    let list = guests
        .iter()
        .filter(|g| g["refusal"].is_null())
        .map(|g| Fixture {
            name: g["name"].as_str().expect("guest name").to_string(),
            image: dir.join(g["file"].as_str().expect("guest file")),
            static_ip: g["static_ip"].as_str().expect("static_ip").to_string(),
            hive_dirty: g["hive_dirty"].as_str().map(String::from),
        })
        .collect();
    (list, dir.join("virtio-win"))
}

fn sha(p: &Path) -> String {
    hex::encode(Sha256::digest(
        std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    ))
}

/// Replaces the host folder of the driver source by a fixed name in a plan.
fn normalise_source(v: &mut Value, src: &str) {
    match v {
        Value::String(s) if s.contains(src) => *s = s.replace(src, "VIRTIO_WIN"),
        Value::Array(a) => a.iter_mut().for_each(|x| normalise_source(x, src)),
        Value::Object(m) => m.values_mut().for_each(|x| normalise_source(x, src)),
        _ => {}
    }
}

/// sha256 of every file of the system volume, by guest path (pure reader), minus `skip`.
/// `input`: the fixture `image` is an overlay of (its folder is trusted for the backing file).
fn tree(image: &Path, input: &Path, skip: &str) -> BTreeMap<String, String> {
    let g = revirt::inspect::inspect_with(&[image.to_path_buf()], &boot::trust(input))
        .expect("inspect");
    let os = g
        .inspection
        .operating_systems
        .iter()
        .find(|o| o.kind == "windows")
        .expect("a Windows OS");
    let vfs = revirt::repair::root_vfs(&g, os).expect("system volume");
    let mut out = BTreeMap::new();
    let mut todo = vec!["/".to_string()];
    while let Some(d) = todo.pop() {
        for e in vfs.read_dir(&d).unwrap_or_else(|e| panic!("{d}: {e}")) {
            let p = format!("{}/{}", d.trim_end_matches('/'), e.name);
            if p.eq_ignore_ascii_case(skip) {
                continue;
            }
            if e.ftype == revirt::fs::FileType::Dir {
                out.insert(format!("{p}/"), "dir".into());
                todo.push(p);
            } else {
                let data = vfs.read_file(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
                out.insert(p, hex::encode(Sha256::digest(data)));
            }
        }
    }
    out
}

/// The system partition of `overlay` as a raw file, for the independent NTFS tools.
fn raw_partition(overlay: &Path, part: u32, dir: &Path) -> PathBuf {
    let raw = dir.join("disk.raw");
    common::run(
        Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(overlay)
            .arg(&raw),
    );
    let table: Value =
        serde_json::from_slice(&common::run(Command::new("sfdisk").arg("-J").arg(&raw)).stdout)
            .expect("sfdisk -J output");
    let p = &table["partitiontable"]["partitions"][(part - 1) as usize];
    let (start, size) = (
        p["start"].as_u64().expect("partition start"),
        p["size"].as_u64().expect("partition size"),
    );
    let out = dir.join("part.raw");
    let mut f = std::fs::File::open(&raw).unwrap();
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(start * 512)).unwrap();
    let mut buf = vec![];
    f.take(size * 512).read_to_end(&mut buf).unwrap();
    std::fs::write(&out, buf).unwrap();
    out
}

/// A REG_SZ as `hivexregedit --export` prints it in hex form: `hex(1):` + UTF-16LE + NUL.
fn hex1(s: &str) -> String {
    let b: Vec<String> = s
        .encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .map(|x| format!("{x:02x}"))
        .collect();
    format!("hex(1):{}", b.join(","))
}

fn ntfscat(part: &Path, path: &str) -> Vec<u8> {
    // --force: a guest whose NTFS dirty flag is set (kept by the repair for Windows' chkdsk) is
    // read too; ntfscat only reads.
    common::run(Command::new("ntfscat").arg("--force").arg(part).arg(path)).stdout
}

/// The whole round trip for one guest; returns the failures (empty = passed).
fn roundtrip(f: &Fixture, src: &Path) -> Vec<String> {
    let mut bad = vec![];
    let name = &f.name;
    let before = sha(&f.image);
    let srcs = src.to_string_lossy().into_owned();

    // 1. Golden plan.
    let (code, out, err) = golden::revirt(&[
        "plan".as_ref(),
        "--json".as_ref(),
        "--virtio-win".as_ref(),
        src.as_os_str(),
        f.image.as_os_str(),
    ]);
    if code != 0 {
        return vec![format!("{name}: revirt plan exit {code}: {err}")];
    }
    let mut plan: Value = serde_json::from_str(&out).expect("plan JSON");
    golden::normalise(&mut plan);
    normalise_source(&mut plan, &srcs);
    if let Err(e) = std::panic::catch_unwind(|| golden::check_golden("plan-windows", name, &plan)) {
        bad.push(format!(
            "{name}: golden plan: {}",
            e.downcast_ref::<String>().cloned().unwrap_or_default()
        ));
    }

    // 2. Repair into an overlay.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("{name}.qcow2"));
    let req = RepairRequest {
        inputs: vec![f.image.clone()],
        policy: Default::default(),
        writer: Default::default(),
        outputs: vec![out.clone()],
        opts: revirt::plan::PlanOptions {
            virtio_win: Some(src.to_path_buf()),
            ..Default::default()
        },
    };
    let r = match repair(&req, &mut |_, _| {}) {
        Ok(r) => r,
        Err(e) => return vec![format!("{name}: repair failed: {e:#}")],
    };
    if r.readiness != Readiness::Ready {
        bad.push(format!(
            "{name}: readiness {:?}: {:?}",
            r.readiness, r.verify
        ));
    }
    if sha(&f.image) != before {
        bad.push(format!("{name}: the input image changed"));
    }
    // Every registry edit in the report says what it was and what it became.
    for a in r.actions.iter().filter(|a| a.op == "reg-set") {
        if a.value_after.is_none() {
            bad.push(format!(
                "{name}: report lacks the new value of {}",
                a.target
            ));
        }
    }

    if r.writer.as_deref() != Some("native") {
        bad.push(format!(
            "{name}: written by {:?} ({:?}), want the native writer",
            r.writer, r.writer_reason
        ));
    }
    bad.extend(differential(f, &req, &r, dir.path()));

    // 3. Pure read-back.
    let g = revirt::inspect::inspect_with(std::slice::from_ref(&out), &boot::trust(&f.image))
        .expect("inspect overlay");
    let os = &g.inspection.operating_systems[0];
    let w = os.windows.clone().expect("windows");
    let drv = w.drivers.iter().find(|d| d.name == "viostor");
    match drv {
        Some(d) if (d.start, d.service_type, d.file_present) == (Some(0), Some(1), Some(true)) => {}
        other => bad.push(format!("{name}: viostor service after repair: {other:?}")),
    }
    let bound = w.virtio_bindings.get("PCI\\VEN_1AF4&DEV_1001");
    let bound_ok = if (w.major, w.minor) <= (6, 1) {
        bound.map(String::as_str) == Some("viostor")
    } else {
        bound.is_some_and(|b| b.starts_with("oem") && b.ends_with(".inf"))
    };
    if !bound_ok {
        bad.push(format!("{name}: virtio-blk PCI id bound to {bound:?}"));
    }
    if !w.staged_drivers.iter().any(|d| d == "NetKVM") || !w.revirt_firstboot {
        bad.push(format!(
            "{name}: staging {:?}, first boot registered {}",
            w.staged_drivers, w.revirt_firstboot
        ));
    }
    if w.guest_tools.iter().any(|t| t.start != Some(4)) {
        bad.push(format!(
            "{name}: hypervisor tools still enabled: {:?}",
            w.guest_tools
        ));
    }
    if (w.san_policy, w.crash_auto_reboot) != (Some(1), Some(0)) {
        bad.push(format!(
            "{name}: SanPolicy {:?} AutoReboot {:?}",
            w.san_policy, w.crash_auto_reboot
        ));
    }

    // 4. Independent read-back: ntfs-3g's ntfscat and hivex's export.
    let part_no = system_partition(&g, os);
    let part = raw_partition(&out, part_no, dir.path());
    let hive = dir.path().join("SYSTEM");
    std::fs::write(
        &hive,
        ntfscat(&part, &format!("{}/System32/config/SYSTEM", w.system_root)),
    )
    .unwrap();
    let reg = common::run_stdout(
        Command::new("hivexregedit")
            .args(["--export", "--prefix", "HKEY_LOCAL_MACHINE\\SYSTEM"])
            .arg(&hive)
            .arg("\\"),
    )
    .replace("\r\n", "\n");
    let cs = format!("ControlSet{:03}", w.current_control_set.unwrap_or(1));
    let key = format!("[HKEY_LOCAL_MACHINE\\SYSTEM\\{cs}\\Services\\viostor]\n");
    match reg
        .split(&key)
        .nth(1)
        .map(|s| s.split("\n[").next().unwrap_or(""))
    {
        Some(svc)
            if svc.contains("\"Start\"=dword:00000000")
                && svc.contains("\"Type\"=dword:00000001")
                && (svc.contains("\"Group\"=\"SCSI miniport\"")
                    || svc.contains(&format!("\"Group\"={}", hex1("SCSI miniport")))) => {}
        other => bad.push(format!("{name}: hivexregedit sees viostor as {other:?}")),
    }
    // A hive recovered from its log: flushed on disk (hivex's commit keeps both sequence
    // numbers equal, checksum valid), the logged address kept next to revirt's edits, and both
    // logs empty so Windows replays nothing over them.
    if f.hive_dirty.as_deref() == Some("new-log") {
        let h = std::fs::read(&hive).unwrap();
        let le = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().unwrap());
        let mut sum = (0..127).fold(0u32, |c, i| c ^ le(4 * i));
        if sum == 0 {
            sum = 1;
        } else if sum == u32::MAX {
            sum = u32::MAX - 1;
        }
        if le(4) != le(8) || le(508) != sum {
            bad.push(format!(
                "{name}: repaired SYSTEM base block seq {}/{} checksum {:#x} (computed {sum:#x})",
                le(4),
                le(8),
                le(508)
            ));
        }
        let logged = reg.contains(&format!(
            "\"IPAddress\"=hex(7):{}",
            f.static_ip
                .encode_utf16()
                .chain([0, 0])
                .flat_map(u16::to_le_bytes)
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(",")
        ));
        if !logged {
            bad.push(format!(
                "{name}: hivexregedit lacks the logged IPAddress {}",
                f.static_ip
            ));
        }
        for log in ["LOG1", "LOG2"] {
            let p = format!("{}/System32/config/SYSTEM.{log}", w.system_root);
            let n = ntfscat(&part, &p).len();
            if n != 0 {
                bad.push(format!("{name}: {p} is {n} bytes after repair, want empty"));
            }
        }
        if !w.dirty_hives.is_empty() || !w.hive_recovery.is_empty() {
            bad.push(format!(
                "{name}: still dirty after repair: {:?}",
                w.hive_recovery
            ));
        }
    }
    let sys = ntfscat(
        &part,
        &format!("{}/System32/drivers/viostor.sys", w.system_root),
    );
    if !String::from_utf8_lossy(&sys).starts_with("MZ phony viostor") {
        bad.push(format!(
            "{name}: ntfscat viostor.sys: {:?}",
            String::from_utf8_lossy(&sys)
        ));
    }

    // 5. verify agrees; a second plan is empty.
    let (code, _, err) = golden::revirt(&[
        "verify".as_ref(),
        "--virtio-win".as_ref(),
        src.as_os_str(),
        out.as_os_str(),
    ]);
    if code != 0 {
        bad.push(format!("{name}: revirt verify exit {code}: {err}"));
    }
    let (code, again, err) = golden::revirt(&[
        "plan".as_ref(),
        "--json".as_ref(),
        "--virtio-win".as_ref(),
        src.as_os_str(),
        out.as_os_str(),
    ]);
    let again: Value = serde_json::from_str(&again).unwrap_or(Value::Null);
    if code != 0 || again["actions"].as_array().is_none_or(|a| !a.is_empty()) {
        bad.push(format!(
            "{name}: second plan (exit {code}) not empty: {again} {err}"
        ));
    }

    // 6. undo restores every hive and file byte for byte.
    let (code, _, err) = golden::revirt(&["undo".as_ref(), out.as_os_str()]);
    if code != 0 {
        bad.push(format!("{name}: revirt undo exit {code}: {err}"));
    } else {
        let orig = tree(&f.image, &f.image, "/ProgramData/revirt");
        let undone = tree(&out, &f.image, "/ProgramData/revirt");
        for (p, h) in &orig {
            if undone.get(p) != Some(h) {
                bad.push(format!(
                    "{name}: after undo {p} is {:?}, was {h}",
                    undone.get(p)
                ));
            }
        }
        // /ProgramData itself may be new: it holds revirt's record of the run.
        for p in undone
            .keys()
            .filter(|p| !orig.contains_key(*p) && p.as_str() != "/ProgramData/")
        {
            bad.push(format!("{name}: after undo {p} is left over"));
        }
    }
    bad
}

/// The security descriptor of `path` on the raw NTFS `part`, as ntfs-3g's ntfssecaudit dumps
/// it (independent of revirt's writer), or None if the file is not there.
fn security(part: &Path, path: &str) -> Option<Vec<u8>> {
    let out = Command::new("ntfssecaudit")
        .arg("-v")
        .arg(part)
        .arg(path)
        .output()
        .expect("running ntfssecaudit");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut sd = vec![];
    for l in text.lines() {
        let mut words = l.split_whitespace();
        let Some(off) = words.next() else { continue };
        if off.len() != 6 || !off.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        for w in words {
            sd.extend(hex::decode(w).ok()?);
        }
    }
    (!sd.is_empty()).then_some(sd)
}

/// (type, flags, mask, SID) of each ACE of a self-relative descriptor's DACL; its control word.
fn aces(sd: &[u8]) -> (u16, Vec<(u8, u8, u32, String)>) {
    let u32at = |o: usize| u32::from_le_bytes(sd[o..o + 4].try_into().unwrap());
    let sid = |o: usize| {
        let mut a = [0u8; 8];
        a[2..].copy_from_slice(&sd[o + 2..o + 8]);
        let mut s = format!("S-{}-{}", sd[o], u64::from_be_bytes(a));
        for i in 0..sd[o + 1] as usize {
            s += &format!("-{}", u32at(o + 8 + 4 * i));
        }
        s
    };
    let control = u16::from_le_bytes([sd[2], sd[3]]);
    let d = u32at(16) as usize;
    if d == 0 {
        return (control, vec![]);
    }
    let mut at = d + 8;
    let mut out = vec![];
    for _ in 0..u16::from_le_bytes([sd[d + 4], sd[d + 5]]) {
        let size = u16::from_le_bytes([sd[at + 2], sd[at + 3]]) as usize;
        out.push((sd[at], sd[at + 1], u32at(at + 4), sid(at + 8)));
        at += size;
    }
    (control, out)
}

/// The DACL a new FILE gets in a folder whose descriptor is `parent`, by the Windows rules
/// written out here (not by ntfs-3g): every object-inheritable ACE, its inheritance flags
/// dropped, marked inherited when the folder's DACL is auto-inherited, generic rights mapped
/// to file rights, CREATOR OWNER / GROUP replaced by the creator (Administrators, as for a
/// SYSTEM write).
fn inherited_by_a_file(parent: &[u8]) -> Vec<(u8, u8, u32, String)> {
    let (control, list) = aces(parent);
    let auto = control & 0x0400 != 0;
    let map = |m: u32| {
        let mut out = m & 0x00FF_FFFF;
        for (g, specific) in [
            (0x1000_0000, 0x001F_01FF),
            (0x8000_0000, 0x0012_0089),
            (0x4000_0000, 0x0012_0116),
            (0x2000_0000, 0x0012_00A0),
        ] {
            if m & g != 0 {
                out |= specific;
            }
        }
        out
    };
    list.into_iter()
        .filter(|a| a.1 & 0x01 != 0)
        .map(|(t, _, m, s)| {
            let s = match s.as_str() {
                "S-1-3-0" | "S-1-3-1" => "S-1-5-32-544".to_string(),
                _ => s,
            };
            (t, if auto { 0x10 } else { 0 }, map(m), s)
        })
        .collect()
}

fn ntfsfix_clean(part: &Path) -> Result<(), String> {
    let o = Command::new("ntfsfix")
        .arg("-n")
        .arg(part)
        .output()
        .unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stdout).into_owned())
    }
}

/// The same repair written by the appliance into a second overlay, compared with the native
/// one (`r`, `req`): every file the plan writes has the same bytes on both; the hives export
/// the same; a file that existed keeps its original security descriptor on both; a new file
/// gets the one its folder gives it (native; the appliance's ntfs-3g gives none of its own,
/// which is printed, not failed); ntfsfix finds both volumes as clean as the input.
fn differential(
    f: &Fixture,
    req: &RepairRequest,
    r: &revirt::repair::RepairReport,
    dir: &Path,
) -> Vec<String> {
    let name = &f.name;
    let mut bad = vec![];
    let app_out = dir.join(format!("{name}-appliance.qcow2"));
    let mut areq = req.clone();
    areq.writer = revirt::apply::WriterPref::Appliance;
    areq.outputs = vec![app_out.clone()];
    let ra = match repair(&areq, &mut |_, _| {}) {
        Ok(ra) => ra,
        Err(e) => return vec![format!("{name}: appliance repair failed: {e:#}")],
    };
    if ra.writer.as_deref() != Some("appliance") {
        bad.push(format!(
            "{name}: --writer appliance wrote with {:?}",
            ra.writer
        ));
    }
    let g = revirt::inspect::inspect(std::slice::from_ref(&f.image)).expect("inspect input");
    let os = &g.inspection.operating_systems[0];
    let part_no = system_partition(&g, os);
    let parts: Vec<PathBuf> = [&f.image, &req.outputs[0], &app_out]
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let d = dir.join(format!("diff-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            raw_partition(img, part_no, &d)
        })
        .collect();
    let (input, native, appliance) = (&parts[0], &parts[1], &parts[2]);
    let input_clean = ntfsfix_clean(input).is_ok();
    let mut appliance_gaps = 0;
    for (what, p) in [("native", native), ("appliance", appliance)] {
        if let Err(e) = ntfsfix_clean(p) {
            if input_clean {
                bad.push(format!("{name}: ntfsfix -n on the {what} result: {e}"));
            }
        }
    }
    let files: Vec<&str> = r
        .actions
        .iter()
        .filter(|a| a.op == "upload-file" || a.op == "write-file")
        .map(|a| a.target.as_str())
        .collect();
    for path in files {
        let (n, a) = (ntfscat(native, path), ntfscat(appliance, path));
        if n != a {
            bad.push(format!(
                "{name}: {path}: native {} bytes, appliance {} bytes, differ",
                n.len(),
                a.len()
            ));
        }
        if path.to_ascii_lowercase().contains("/system32/config/") {
            continue; // hives: compared by their export below
        }
        let (sn, sa) = (security(native, path), security(appliance, path));
        match security(input, path) {
            // A replaced file keeps its own descriptor, on both paths.
            Some(orig) => {
                for (what, s) in [("native", &sn), ("appliance", &sa)] {
                    if s.as_ref() != Some(&orig) {
                        bad.push(format!(
                            "{name}: {path}: the {what} write changed its security descriptor"
                        ));
                    }
                }
            }
            // A new file gets what its folder gives it.
            None => {
                let folder = &path[..path.rfind('/').unwrap_or(0).max(1)];
                let Some(parent) = security(native, folder) else {
                    bad.push(format!("{name}: {folder}: no security descriptor"));
                    continue;
                };
                let want = inherited_by_a_file(&parent);
                let got = sn.as_deref().map(|s| aces(s).1);
                if got.as_ref() != Some(&want) {
                    bad.push(format!(
                        "{name}: {path}: native ACEs {got:?}, its folder gives {want:?}"
                    ));
                }
                let ga = sa.as_deref().map(|s| aces(s).1);
                if ga.as_ref() != Some(&want) {
                    appliance_gaps += 1;
                }
            }
        }
    }
    let export = |part: &Path, hive: &str| {
        let local = dir.join(format!("{hive}-export"));
        let w = os.windows.as_ref().expect("windows");
        std::fs::write(
            &local,
            ntfscat(part, &format!("{}/System32/config/{hive}", w.system_root)),
        )
        .unwrap();
        common::run_stdout(
            Command::new("hivexregedit")
                .args([
                    "--export",
                    "--prefix",
                    &format!("HKEY_LOCAL_MACHINE\\{hive}"),
                ])
                .arg(&local)
                .arg("\\"),
        )
    };
    if appliance_gaps > 0 {
        eprintln!("{name}: {appliance_gaps} new files written by the appliance's ntfs-3g lack what their folder gives (its default descriptor)");
    }
    for hive in ["SYSTEM", "SOFTWARE"] {
        if export(native, hive) != export(appliance, hive) {
            bad.push(format!(
                "{name}: the {hive} hive exports differently native vs appliance"
            ));
        }
    }
    bad
}

/// The partition number of the Windows system volume.
fn system_partition(g: &revirt::inspect::Guest, os: &revirt::types::OsReport) -> u32 {
    g.inspection
        .volumes
        .iter()
        .find(|v| v.device == os.root.device)
        .and_then(|v| v.part_number)
        .expect("system volume is a partition")
}

#[test]
fn every_windows_guest_repairs_reads_back_verifies_and_undoes() {
    boot::require_tools(&[
        "ntfscat",
        "ntfssecaudit",
        "ntfsfix",
        "hivexregedit",
        "qemu-img",
        "sfdisk",
    ]);
    let (mut list, src) = fixtures();
    assert!(
        list.len() >= 8,
        "expected the whole Windows set, got {}",
        list.len()
    );
    // REVIRT_WINDOWS_ONLY=NAME: one guest, when chasing a failure.
    if let Ok(only) = std::env::var("REVIRT_WINDOWS_ONLY") {
        eprintln!("REVIRT_WINDOWS_ONLY={only}: the other Windows guests are skipped");
        list.retain(|f| f.name == only);
    }
    let results = boot::run_parallel(&list, |f| roundtrip(f, &src));
    let failures: Vec<String> = results.into_iter().flatten().collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `--network keep-static` moves the static address found in Tcpip\Parameters\Interfaces to
/// the new virtio adapter at first boot: PowerShell on Windows >= 8, netsh before.
#[test]
fn keep_static_moves_the_address_to_the_virtio_adapter() {
    let (list, src) = fixtures();
    let mut seen = 0;
    for f in &list {
        let (code, out, err) = golden::revirt(&[
            "plan".as_ref(),
            "--json".as_ref(),
            "--network".as_ref(),
            "keep-static".as_ref(),
            "--virtio-win".as_ref(),
            src.as_os_str(),
            f.image.as_os_str(),
        ]);
        assert_eq!(code, 0, "{}: {err}", f.name);
        let plan: Value = serde_json::from_str(&out).unwrap();
        let script = plan["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| {
                a["change"]["path"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("firstboot.cmd"))
            })
            .and_then(|a| a["change"]["content"].as_str().map(String::from))
            .unwrap_or_else(|| panic!("{}: no first-boot script in {out}", f.name));
        let version = plan_version(&f.image);
        // The address as inspect reports it: for a dirty hive, the one only its log holds.
        let ip = &f.static_ip;
        if version >= (6, 2) {
            assert!(
                script.contains(&format!("New-NetIPAddress -InterfaceIndex $a.ifIndex -IPAddress {ip} -PrefixLength 24 -DefaultGateway 192.168.10.1"))
                    && script.contains("-ServerAddresses 192.168.10.2,192.168.10.3"),
                "{}: {script}",
                f.name
            );
        } else {
            assert!(
                script.contains(&format!("static {ip} 255.255.255.0 192.168.10.1")),
                "{}: {script}",
                f.name
            );
        }
        // Without the option the address is only reported, never applied.
        let (_, out, _) = golden::revirt(&[
            "plan".as_ref(),
            "--json".as_ref(),
            "--virtio-win".as_ref(),
            src.as_os_str(),
            f.image.as_os_str(),
        ]);
        assert!(!out.contains(&format!("{ip} -PrefixLength")), "{}", f.name);
        seen += 1;
    }
    assert!(seen >= 8, "only {seen} guests planned");
}

fn plan_version(image: &Path) -> (u32, u32) {
    let g = revirt::inspect::inspect(&[image.to_path_buf()]).expect("inspect");
    let w = g.inspection.operating_systems[0]
        .windows
        .clone()
        .expect("windows");
    (w.major, w.minor)
}

/// `--block virtio-scsi` makes vioscsi the boot driver, bound to its own PCI ids
/// (DEV_1004 legacy, DEV_1048 modern) the way each Windows version needs.
#[test]
fn virtio_scsi_binds_vioscsi_per_version() {
    let (list, src) = fixtures();
    for f in &list {
        let (code, out, err) = golden::revirt(&[
            "plan".as_ref(),
            "--json".as_ref(),
            "--block".as_ref(),
            "virtio-scsi".as_ref(),
            "--virtio-win".as_ref(),
            src.as_os_str(),
            f.image.as_os_str(),
        ]);
        assert_eq!(code, 0, "{}: {err}", f.name);
        let plan: Value = serde_json::from_str(&out).unwrap();
        let acts = plan["actions"].as_array().unwrap();
        let reg = |key: &dyn Fn(&str) -> bool, name: &str| {
            acts.iter().any(|a| {
                a["change"]["op"] == "reg-set"
                    && a["change"]["key"].as_str().is_some_and(key)
                    && a["change"]["name"] == name
            })
        };
        let upload = |to: &str| {
            acts.iter()
                .any(|a| a["change"]["to"].as_str().is_some_and(|t| t.ends_with(to)))
        };
        assert!(upload("/System32/drivers/vioscsi.sys"), "{}", f.name);
        assert!(!upload("/System32/drivers/viostor.sys"), "{}", f.name);
        assert!(
            reg(&|k| k.ends_with("\\Services\\vioscsi"), "Start"),
            "{}",
            f.name
        );
        assert!(
            !reg(&|k| k.ends_with("\\Services\\viostor"), "Start"),
            "{}",
            f.name
        );
        for dev in ["1004", "1048"] {
            let bound = if plan_version(&f.image) <= (6, 1) {
                reg(
                    &|k| k.ends_with(&format!("CriticalDeviceDatabase\\pci#ven_1af4&dev_{dev}")),
                    "Service",
                )
            } else {
                acts.iter().any(|a| {
                    a["change"]["key"]
                        == format!("DriverDatabase\\DeviceIds\\PCI\\VEN_1AF4&DEV_{dev}")
                })
            };
            assert!(bound, "{}: DEV_{dev} not bound to vioscsi", f.name);
        }
    }
}
