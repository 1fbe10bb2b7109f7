//! Plan and repair every skeleton guest. Per guest two tests:
//! - `<guest>::plan`: `revirt plan --json` against tests/golden/plan/<guest>.json
//!   (`REVIRT_BLESS=1` rewrites it);
//! - `<guest>::repair`: `revirt repair` into a qcow2 overlay (the input must stay
//!   byte-identical), the result ready; `revirt verify` agrees; a second repair of the overlay
//!   plans nothing; and the repaired files are read back with revirt's own readers. Where every
//!   filesystem the repair touches is ext2/3/4 and no guest program must run, the repair must
//!   have been written natively (no appliance), and it is repeated with `--writer appliance`:
//!   both results must agree on every touched file (bytes, type, mode, owner, xattrs), and
//!   e2fsck must find every written ext filesystem clean (the differential test of issue #9).
//!
//! Appliance launches are slow under TCG (20-60 s each): run with `--test-threads=2` at most.
mod golden;

use revirt::types::LinuxInfo;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn sha256_file(p: &Path) -> String {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    hex::encode(Sha256::digest(bytes))
}

fn parse(name: &str, what: &str, out: &str, err: &str) -> Value {
    serde_json::from_str(out)
        .unwrap_or_else(|e| panic!("{name}: {what} printed no JSON ({e}); stderr:\n{err}"))
}

fn plan_golden(name: &str) {
    let img = golden::image(name);
    let (code, out, err) = golden::revirt(&["plan".as_ref(), "--json".as_ref(), img.as_os_str()]);
    assert_eq!(code, 0, "{name}: revirt plan exit {code}: {err}");
    let mut plan = parse(name, "plan", &out, &err);
    assert_eq!(
        plan["refusals"],
        Value::Array(vec![]),
        "{name}: plan refuses"
    );
    golden::normalise(&mut plan);
    golden::check_golden("plan", name, &plan);
}

/// Why a guest cannot be made ready, and the verify finding that says so. None: all are.
fn known_not_ready(_name: &str) -> Option<(&'static str, &'static str)> {
    None
}

fn repair(name: &str) {
    let img = golden::image(name);
    let before = sha256_file(&img);
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join(format!("{name}.repaired.qcow2"));
    let report_path = tmp.path().join("report.json");
    let (pcode, pout, perr) =
        golden::revirt(&["plan".as_ref(), "--json".as_ref(), img.as_os_str()]);
    assert_eq!(pcode, 0, "{name}: plan: {perr}");
    let plan = parse(name, "plan", &pout, &perr);
    let planned = plan["actions"].as_array().cloned().unwrap_or_default();
    assert!(
        !planned.is_empty(),
        "{name}: every skeleton needs some repair, the plan has none"
    );

    let t = std::time::Instant::now();
    let (code, rout, rerr) = golden::revirt(&[
        "repair".as_ref(),
        img.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--report".as_ref(),
        report_path.as_os_str(),
        "--json".as_ref(),
        "--progress".as_ref(),
        "none".as_ref(),
    ]);
    eprintln!("{name}: repair took {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(
        sha256_file(&img),
        before,
        "{name}: repair changed its input {}",
        img.display()
    );
    let report = serde_json::from_str::<Value>(&rout).unwrap_or_else(|e| {
        panic!("{name}: repair exit {code}, no JSON report ({e}).\nstderr:\n{rerr}")
    });
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{name}: --report file: {e}"));
    assert_eq!(
        on_disk, report,
        "{name}: --report file differs from the printed report"
    );
    let findings = &report["verify"]["findings"];
    if let Some((why, finding)) = known_not_ready(name) {
        assert_eq!(
            code, 7,
            "{name}: expected not ready ({why}); report: {report:#}"
        );
        assert!(
            findings.to_string().contains(finding),
            "{name}: expected the finding '{finding}' ({why}), got {findings:#}"
        );
        return;
    }
    assert_eq!(
        code, 0,
        "{name}: repair exit {code} (readiness {}), refusals {}, findings {findings:#}\nstderr:\n{rerr}",
        report["readiness"], report["refusals"]
    );
    assert_eq!(report["readiness"], "ready", "{name}");
    assert_eq!(report["refusals"], Value::Array(vec![]), "{name}");
    let records = report["actions"].as_array().cloned().unwrap_or_default();
    // The writer: native exactly when every touched filesystem is ext and no guest tool runs.
    let want = expected_writer(name, &records);
    assert_eq!(
        report["writer"].as_str(),
        Some(want),
        "{name}: written by {} ({}), expected {want}",
        report["writer"],
        report["writer_reason"]
    );
    if want == "native" {
        assert_eq!(report["writer_reason"], Value::Null, "{name}");
    } else {
        assert!(
            report["writer_reason"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{name}: the appliance wrote without a reason"
        );
    }
    let ops = |v: &[Value], key: &str| -> Vec<String> {
        v.iter()
            .map(|a| {
                format!(
                    "{}:{}",
                    a["area"].as_str().unwrap_or("?"),
                    a[key].as_str().unwrap_or("?")
                )
            })
            .collect()
    };
    let planned_ops: Vec<String> = planned
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["area"].as_str().unwrap_or("?"),
                a["change"]["op"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(
        ops(&records, "op"),
        planned_ops,
        "{name}: applied actions differ from the plan"
    );

    // verify on the overlay agrees.
    let (vcode, vout, verr) =
        golden::revirt(&["verify".as_ref(), "--json".as_ref(), out.as_os_str()]);
    assert_eq!(
        vcode, 0,
        "{name}: revirt verify of the repaired overlay: {vout}{verr}"
    );

    read_back(name, &img, &out, &records, &planned);
    if want == "native" {
        differential(name, &img, &out, &records, tmp.path());
    }

    // A second run over the repaired overlay finds nothing to do and stays ready.
    let out2 = tmp.path().join(format!("{name}.again.qcow2"));
    let (code2, rout2, rerr2) = golden::revirt(&[
        "repair".as_ref(),
        out.as_os_str(),
        "-o".as_ref(),
        out2.as_os_str(),
        "--json".as_ref(),
        "--progress".as_ref(),
        "none".as_ref(),
    ]);
    let again = parse(name, "second repair", &rout2, &rerr2);
    assert_eq!(
        again["actions"],
        Value::Array(vec![]),
        "{name}: a second repair still plans {} (notes {})",
        again["actions"],
        again["notes"]
    );
    assert_eq!(
        code2, 0,
        "{name}: second repair exit {code2}: {}",
        again["verify"]
    );
}

/// The filesystem (expected facts of the skeleton) holding guest path `p`: (mountpoint, fstype).
fn fs_of(expect: &Value, p: &str) -> (String, String) {
    let mut best = ("/".to_string(), "?".to_string(), 0usize);
    for f in expect["filesystems"].as_array().into_iter().flatten() {
        let Some(m) = f["mount"].as_str() else {
            continue;
        };
        let hit = m == "/" || p == m || p.starts_with(&format!("{m}/"));
        if hit && m.len() >= best.2 {
            best = (
                m.to_string(),
                f["fs"].as_str().unwrap_or("?").to_string(),
                m.len(),
            );
        }
    }
    (best.0, best.1)
}

/// Every guest path a record touches: its target, the rename destination, its backup.
fn touched(r: &Value) -> Vec<String> {
    ["target", "extra_target", "backup"]
        .iter()
        .filter_map(|k| r[*k].as_str().map(String::from))
        .collect()
}

/// "native" when every touched filesystem is ext2/3/4 and no action runs a guest program.
fn expected_writer(name: &str, records: &[Value]) -> &'static str {
    let expect = golden::expect(name);
    // The bootloader tool's run is optional and skipped natively; the initramfs tool is not.
    let tool = records.iter().any(|r| r["op"] == "run-initramfs-tool");
    let all_ext = records
        .iter()
        .flat_map(touched)
        .chain(["/var/lib/revirt/ready.json".to_string()])
        .all(|p| fs_of(&expect, &p).1.starts_with("ext"));
    if all_ext && !tool {
        "native"
    } else {
        "appliance"
    }
}

/// `qemu-img convert`s an overlay to a raw file and returns it with the output's inspection.
fn raw_copy(img: &Path, out: &Path, dir: &Path, tag: &str) -> (PathBuf, revirt::inspect::Guest) {
    let raw = dir.join(format!("{tag}.raw"));
    let st = std::process::Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(out)
        .arg(&raw)
        .status()
        .expect("qemu-img");
    assert!(st.success(), "qemu-img convert {}", out.display());
    let trust = revirt::image::OpenPolicy::default().also_folders_of(&[img.to_path_buf()]);
    let g = revirt::inspect::inspect_with(&[PathBuf::from(out)], &trust).expect("inspect");
    (raw, g)
}

/// debugfs's view of one inode, without what differs between two runs (inode number, times,
/// block numbers).
fn inode_facts(raw: &Path, offset: u64, path: &str) -> String {
    let o = std::process::Command::new("debugfs")
        .arg("-R")
        .arg(format!("stat \"{path}\""))
        .arg(format!("{}?offset={offset}", raw.display()))
        .output()
        .expect("debugfs");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut keep = vec![];
    let mut in_xattrs = false;
    for line in text.lines() {
        if line.starts_with("Extended attributes:") {
            in_xattrs = true;
            continue;
        }
        if in_xattrs && line.starts_with("  ") {
            keep.push(line.trim().to_string());
            continue;
        }
        in_xattrs = false;
        if let Some(i) = line.find("Type:") {
            // "Inode: N   Type: regular    Mode:  0644   Flags: 0x80000"
            let t = &line[i..];
            keep.push(
                t.split("Flags:")
                    .next()
                    .unwrap_or(t)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        if line.starts_with("User:") {
            keep.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        if line.starts_with("Fast link dest:") {
            keep.push(line.to_string());
        }
    }
    keep.join("\n")
}

/// Repairs `img` again through the appliance and compares the two results on every touched
/// file; runs e2fsck on each ext filesystem of both.
fn differential(name: &str, img: &Path, native: &Path, records: &[Value], dir: &Path) {
    if !["debugfs", "e2fsck", "qemu-img"].iter().all(|t| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {t} >/dev/null")])
            .status()
            .is_ok_and(|s| s.success())
    }) {
        eprintln!("{name}: SKIP differential: debugfs/e2fsck/qemu-img missing");
        return;
    }
    let app = dir.join(format!("{name}.appliance.qcow2"));
    let (code, out, err) = golden::revirt(&[
        "repair".as_ref(),
        img.as_os_str(),
        "-o".as_ref(),
        app.as_os_str(),
        "--writer".as_ref(),
        "appliance".as_ref(),
        "--json".as_ref(),
        "--progress".as_ref(),
        "none".as_ref(),
    ]);
    let rep = parse(name, "appliance repair", &out, &err);
    assert_eq!(code, 0, "{name}: appliance repair: {rep:#}");
    assert_eq!(rep["writer"], "appliance", "{name}");
    let run_of = |rs: &[Value]| -> String {
        rs.iter()
            .find_map(|r| r["backup"].as_str())
            .and_then(|b| b.split('/').nth(5).map(String::from))
            .unwrap_or_default()
    };
    let app_records = rep["actions"].as_array().cloned().unwrap_or_default();
    let (run_n, run_a) = (run_of(records), run_of(&app_records));
    let (raw_n, g_n) = raw_copy(img, native, dir, "native");
    let (raw_a, g_a) = raw_copy(img, &app, dir, "appliance");
    let expect = golden::expect(name);
    // Byte offset of the volume mounted at `mp` on the disk, if it lies there in one piece
    // (a partition, or an LV of one extent).
    let offset_of = |g: &revirt::inspect::Guest, mp: &str| -> Option<u64> {
        let l = g.inspection.operating_systems[0].linux.as_ref()?;
        let dev = l.mounts.get(mp)?;
        let v = g
            .volumes
            .iter()
            .find(|v| &v.report.device == dev || v.report.aliases.contains(dev))?;
        match v.raw.as_ref()?.layout()?.as_slice() {
            [one] => Some(one.offset),
            _ => None,
        }
    };
    let vfs_of = |g: &revirt::inspect::Guest| {
        let l = g.inspection.operating_systems[0]
            .linux
            .as_ref()
            .expect("Linux");
        revirt::inspect::linux::guest_vfs(&g.volumes, l).expect("mounting the result")
    };
    let (vfs_n, vfs_a) = (vfs_of(&g_n), vfs_of(&g_a));
    // Files the appliance's bootloader tool regenerated differ by design (not compared).
    let regenerated: Vec<&str> = app_records
        .iter()
        .filter(|r| {
            r["op"] == "run-bootloader-tool"
                && r["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("regenerated"))
        })
        .filter_map(|r| r["target"].as_str())
        .collect();
    let mut compared = 0;
    for r in records {
        for p in touched(r) {
            if regenerated.contains(&p.as_str()) {
                continue;
            }
            let (mp, fstype) = fs_of(&expect, &p);
            let (Some(on), Some(oa)) = (offset_of(&g_n, &mp), offset_of(&g_a, &mp)) else {
                eprintln!("{name}: {p}: on {mp} ({fstype}), not a plain partition: not compared");
                continue;
            };
            let inner = match mp.as_str() {
                "/" => p.clone(),
                m => p[m.len()..].to_string(),
            };
            let pa = inner.replace(&run_n, &run_a);
            let fn_ = inode_facts(&raw_n, on, &inner);
            let fa = inode_facts(&raw_a, oa, &pa);
            assert!(
                !fn_.is_empty() || !fa.is_empty() || r["op"] == "rename",
                "{name}: {p}: debugfs printed nothing"
            );
            assert_eq!(fn_, fa, "{name}: {p}: native and appliance results differ");
            let p_a = p.replace(&run_n, &run_a);
            if vfs_n
                .lstat(&p)
                .ok()
                .flatten()
                .is_some_and(|m| m.ftype == revirt::fs::FileType::File)
            {
                let (bn, ba) = (vfs_n.read_file(&p), vfs_a.read_file(&p_a));
                assert!(
                    bn.as_ref().ok() == ba.as_ref().ok() && bn.is_ok(),
                    "{name}: {p}: native and appliance wrote different bytes"
                );
            }
            compared += 1;
        }
    }
    assert!(compared > 0, "{name}: nothing compared");
    for (raw, g, tag) in [(&raw_n, &g_n, "native"), (&raw_a, &g_a, "appliance")] {
        for v in g.volumes.iter().filter(|v| {
            v.report
                .fstype
                .as_deref()
                .is_some_and(|f| f.starts_with("ext"))
        }) {
            let layout = v.raw.as_ref().and_then(|d| d.layout()).unwrap_or_default();
            let [one] = layout.as_slice() else {
                eprintln!(
                    "{name}: {}: not in one piece on the disk: e2fsck skipped",
                    v.report.device
                );
                continue;
            };
            let o = std::process::Command::new("e2fsck")
                .arg("-fn")
                .arg(format!("{}?offset={}", raw.display(), one.offset))
                .output()
                .expect("e2fsck");
            assert!(
                o.status.success(),
                "{name}: e2fsck -fn on the {tag} result's {}: {}{}",
                v.report.device,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    eprintln!("{name}: native and appliance agree on {compared} touched path(s)");
}

/// Reads the repaired guest back with revirt's pure readers: every written file has the hash
/// the report recorded, renamed files are gone, the initramfs carries virtio_blk, and fstab
/// names no bus-dependent device.
fn read_back(name: &str, img: &Path, out: &Path, records: &[Value], planned: &[Value]) {
    let trust = revirt::image::OpenPolicy::default().also_folders_of(&[img.to_path_buf()]);
    let g = revirt::inspect::inspect_with(&[PathBuf::from(out)], &trust)
        .unwrap_or_else(|e| panic!("{name}: inspecting the overlay: {e}"));
    let os = revirt::repair::choose_os(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
    let l: &LinuxInfo = os.linux.as_ref().expect("a Linux guest");
    let vfs = revirt::inspect::linux::guest_vfs(&g.volumes, l)
        .unwrap_or_else(|e| panic!("{name}: mounting the overlay: {e:#}"));
    let read = |p: &str| -> Vec<u8> {
        vfs.read_file(p)
            .unwrap_or_else(|e| panic!("{name}: reading {p} from the overlay: {e}"))
    };
    for r in records {
        let target = r["target"].as_str().unwrap_or("?");
        let op = r["op"].as_str().unwrap_or("?");
        match op {
            "write-file" | "append-initramfs" | "copy-file" => {
                let want = r["sha256_after"].as_str();
                let got = hex::encode(Sha256::digest(read(target)));
                // A bootloader tool may rewrite the config after the direct edit.
                let later_tool = records.iter().any(|x| {
                    x["op"] == "run-bootloader-tool"
                        && x["target"] == target
                        && x["outcome"]
                            .as_str()
                            .is_some_and(|o| o.starts_with("regenerated"))
                });
                if !later_tool {
                    assert_eq!(
                        Some(got.as_str()),
                        want,
                        "{name}: {target} ({op}) differs from what the report recorded"
                    );
                }
            }
            "rename" => {
                // The moved-aside original is at its destination; the old path is gone unless
                // a later action writes a replacement there (checked by that action's hash).
                let dest = r["extra_target"].as_str().unwrap_or("?");
                assert!(
                    vfs.lstat(dest).ok().flatten().is_some(),
                    "{name}: {target} was not moved to {dest}"
                );
                let rewritten = records
                    .iter()
                    .any(|x| x["target"] == target && x["op"] != "rename");
                if !rewritten {
                    let gone = vfs
                        .lstat(target)
                        .unwrap_or_else(|e| panic!("{name}: {target}: {e}"));
                    assert!(
                        gone.is_none(),
                        "{name}: {target} was renamed away but is still there"
                    );
                }
            }
            _ => {}
        }
    }
    // Planned file contents landed as planned (unless a later action rewrote the same path).
    for (i, a) in planned.iter().enumerate() {
        let c = &a["change"];
        if c["op"] != "write-file" {
            continue;
        }
        let path = c["path"].as_str().unwrap_or("?");
        let regenerated = records.iter().any(|x| {
            x["op"] == "run-bootloader-tool"
                && x["target"] == path
                && x["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("regenerated"))
        });
        let rewritten = regenerated
            || planned[i + 1..]
                .iter()
                .any(|b| b["change"]["path"] == path || b["change"]["to"] == path);
        if !rewritten {
            let text = String::from_utf8_lossy(&read(path)).into_owned();
            assert_eq!(
                Some(text.as_str()),
                c["content"].as_str(),
                "{name}: {path} is not what the plan wrote"
            );
        }
    }
    // fstab: nothing that changes with the bus, nothing missing that would stop the boot.
    let fstab = String::from_utf8_lossy(&read("/etc/fstab")).into_owned();
    for e in &l.fstab {
        if e.nofail {
            continue;
        }
        assert!(
            !e.bus_dependent,
            "{name}: /etc/fstab line {} still names {}:\n{fstab}",
            e.line, e.spec
        );
        assert!(
            e.present,
            "{name}: /etc/fstab line {} names a missing device without nofail:\n{fstab}",
            e.line
        );
    }
    // The default kernel's initramfs carries virtio_blk (or the kernel has it built in).
    let bl = &l.bootloader;
    let entry = bl
        .default_entry
        .and_then(|i| bl.entries.get(i))
        .expect("a default boot entry");
    let kpath = entry.kernel_path.as_deref().unwrap_or("?");
    let k = l
        .kernels
        .iter()
        .find(|k| k.vmlinuz == kpath)
        .unwrap_or_else(|| panic!("{name}: default entry boots {kpath}, not an installed kernel"));
    let blk = &k.drivers["virtio_blk"];
    assert!(
        blk.in_initramfs,
        "{name}: {}: virtio_blk not available at boot",
        k.version
    );
    if !blk.builtin {
        let initrd = k.initramfs.as_deref().expect("an initramfs");
        let bytes = read(initrd);
        let appended = records
            .iter()
            .any(|r| r["op"] == "append-initramfs" && r["target"] == initrd);
        // An appended segment is uncompressed newc: the module's path is plain text in it.
        if appended {
            assert!(
                bytes
                    .windows(b"/virtio_blk.ko".len())
                    .any(|w| w == b"/virtio_blk.ko"),
                "{name}: {initrd}: no virtio_blk.ko in the appended segment"
            );
        }
    }
    assert!(
        l.network.persistent_net_rules.is_empty(),
        "{name}: MAC-pinned udev rules remain: {:?}",
        l.network.persistent_net_rules
    );
}

macro_rules! skeleton_tests {
    ($($m:ident => $name:literal),* $(,)?) => {
        $(mod $m {
            #[test]
            fn plan() {
                super::plan_golden($name);
            }
            #[test]
            fn repair() {
                super::repair($name);
            }
        })*
        #[test]
        fn every_skeleton_is_tested() {
            let mut tested = vec![$($name),*];
            tested.sort();
            assert_eq!(tested, golden::SKELETONS);
        }
    };
}

skeleton_tests! {
    alma9 => "alma9",
    debian10 => "debian10",
    debian11 => "debian11",
    debian12 => "debian12",
    fedora => "fedora",
    ol8 => "ol8",
    opensuse_leap15 => "opensuse-leap15",
    rhel7 => "rhel7",
    rocky8 => "rocky8",
    sles12 => "sles12",
    sles15 => "sles15",
    ubuntu1804 => "ubuntu1804",
    ubuntu2004 => "ubuntu2004",
    ubuntu2204 => "ubuntu2204",
    ubuntu2404 => "ubuntu2404",
}
