//! The virtio-win source read from a folder and from the ISO built from that folder gives the
//! same listing, bytes and hashes, and `revirt plan` of a Windows guest gives the same actions
//! with either (only `from` differs: host path vs `ISO!/member`). Uses the phony virtio-win of
//! fixtures/images/windows/virtio-win.sh (xorriso) and the phony w10-22h2 guest of build.sh.
#[path = "common/boot.rs"]
mod boot;
use revirt::drivers::{self, DriverSource};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The phony virtio-win as a folder and as the ISO xorriso made of it, from the Windows fixture
/// set (`cargo xtask fixtures --set windows`; the tmp argument is kept for call sites).
fn virtio_win(_tmp: &Path) -> (PathBuf, PathBuf) {
    let d = boot::windows_guests();
    let (dir, iso) = (d.join("virtio-win"), d.join("virtio-win.iso"));
    assert!(
        iso.is_file(),
        "{}: no ISO (is xorriso installed?)",
        iso.display()
    );
    (dir, iso)
}

fn guest(name: &str) -> PathBuf {
    boot::windows_guests().join(format!("{name}.img"))
}

/// (relative path, sha256) of every file in every DRIVER/OS/ARCH folder, plus the bytes.
fn contents(s: &dyn DriverSource) -> Vec<(String, String, Vec<u8>)> {
    let mut v = vec![];
    for d in s.list_driver_dirs().unwrap() {
        for f in s.list_files(&d).unwrap() {
            let rel = format!("{d}/{f}");
            let data = s
                .read(&rel)
                .unwrap()
                .unwrap_or_else(|| panic!("{}: {rel} listed but absent", s.describe()));
            v.push((rel, hex::encode(Sha256::digest(&data)), data));
        }
    }
    v
}

#[test]
fn folder_and_iso_give_the_same_listing_bytes_and_sha256() {
    let t = tempfile::tempdir().unwrap();
    let (dir, iso) = virtio_win(t.path());
    let folder = drivers::open(&dir).unwrap();
    let image = drivers::open(&iso).unwrap();
    assert!(
        folder.describe().contains("folder"),
        "{}",
        folder.describe()
    );
    assert!(image.describe().contains("ISO"), "{}", image.describe());
    let listing = folder.list_driver_dirs().unwrap();
    assert_eq!(image.list_driver_dirs().unwrap(), listing);
    // 8 drivers x (11 OS folders, 4 of them with x86 too).
    assert_eq!(listing.len(), 8 * 15, "{listing:?}");
    assert!(listing.contains(&"NetKVM/w10/amd64".to_string()));
    let (a, b) = (contents(folder.as_ref()), contents(image.as_ref()));
    assert_eq!(a.len(), 8 * 15 * 3);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.0, &x.1), (&y.0, &y.1));
        assert!(x.2 == y.2, "{}: bytes differ", x.0);
        // And both are the bytes on the host.
        assert_eq!(x.2, std::fs::read(dir.join(&x.0)).unwrap(), "{}", x.0);
    }
    assert_eq!(a.len(), b.len());
    // Names match case-insensitively, as on Windows, in both.
    for s in [&folder, &image] {
        assert_eq!(
            s.read("netkvm/W10/AMD64/NETKVM.INF").unwrap().unwrap(),
            std::fs::read(dir.join("NetKVM/w10/amd64/netkvm.inf")).unwrap(),
            "{}",
            s.describe()
        );
        assert_eq!(
            s.read("guest-agent/qemu-ga-x86_64.msi").unwrap().unwrap(),
            std::fs::read(dir.join("guest-agent/qemu-ga-x86_64.msi")).unwrap()
        );
    }
    // An ISO member reference turns back into the same bytes at apply time.
    let out = t.path().join("apply-tmp");
    std::fs::create_dir_all(&out).unwrap();
    let r = image.reference("viostor/w10/amd64/viostor.sys");
    assert_eq!(
        r,
        format!("{}!/viostor/w10/amd64/viostor.sys", iso.display())
    );
    let host = drivers::materialize(&r, &out).unwrap();
    assert_eq!(
        std::fs::read(host).unwrap(),
        std::fs::read(dir.join("viostor/w10/amd64/viostor.sys")).unwrap()
    );
}

/// `revirt plan --json` with `--virtio-win SRC`.
fn plan_json(img: &Path, src: &Path) -> serde_json::Value {
    let out = boot::revirt_bin()
        .arg("plan")
        .arg(img)
        .arg("--json")
        .arg("--virtio-win")
        .arg(src)
        .env_remove("VIRTIO_WIN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "revirt plan --virtio-win {}: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The plan's actions with each `from` made relative to the source (`prefix` removed).
fn actions_relative(plan: &serde_json::Value, prefix: &str) -> Vec<serde_json::Value> {
    let mut v = plan["actions"].as_array().unwrap().clone();
    for a in &mut v {
        if let Some(from) = a["change"].get_mut("from") {
            let s = from.as_str().unwrap();
            let rel = s
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("from {s} does not start with {prefix}"));
            *from = serde_json::Value::String(rel.to_string());
        }
    }
    v
}

#[test]
fn plan_is_the_same_with_a_folder_or_the_iso() {
    let t = tempfile::tempdir().unwrap();
    let (dir, iso) = virtio_win(t.path());
    let img = guest("w10-22h2");
    let by_dir = plan_json(&img, &dir);
    let by_iso = plan_json(&img, &iso);
    assert_eq!(by_dir["refusals"], serde_json::json!([]), "{by_dir:#}");
    let a = actions_relative(&by_dir, &format!("{}/", dir.display()));
    let b = actions_relative(&by_iso, &format!("{}!/", iso.display()));
    let uploads = a
        .iter()
        .filter(|x| x["change"].get("from").is_some())
        .count();
    assert!(uploads > 20, "{uploads} uploads: {by_dir:#}");
    assert!(
        a.iter()
            .any(|x| x["change"]["from"] == "viostor/w10/amd64/viostor.sys"),
        "{a:#?}"
    );
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    assert_eq!(by_dir["notes"], by_iso["notes"]);
}

/// Apply end to end from the ISO: the appliance uploads members extracted from the image, and
/// a re-plan against the FOLDER then has nothing to upload (the guest files hash like the
/// folder's), nor does one against the ISO.
#[test]
fn repair_from_the_iso_uploads_the_same_bytes_as_the_folder() {
    use revirt::plan::PlanOptions;
    use revirt::repair::{plan_only, repair, Readiness, RepairRequest};
    let t = tempfile::tempdir().unwrap();
    let (dir, iso) = virtio_win(t.path());
    let img = guest("w10-22h2");
    let out = t.path().join("w10.qcow2");
    let opts = |p: &Path| PlanOptions {
        virtio_win: Some(p.to_path_buf()),
        ..Default::default()
    };
    let req = RepairRequest {
        inputs: vec![img.clone()],
        policy: Default::default(),
        writer: Default::default(),
        outputs: vec![out.clone()],
        opts: opts(&iso),
    };
    let r = repair(&req, &mut |_, _| {}).unwrap();
    assert_eq!(r.readiness, Readiness::Ready, "{:#?}", r.verify);
    assert!(r
        .actions
        .iter()
        .any(|a| a.target == "/Windows/System32/drivers/viostor.sys"));
    for src in [&dir, &iso] {
        let (_g, plan) =
            plan_only(std::slice::from_ref(&out), &opts(src), &boot::trust(&img)).unwrap();
        let plan = plan.unwrap();
        assert!(
            plan.actions.is_empty(),
            "re-plan with {}: {:#?}",
            src.display(),
            plan.actions.iter().map(|a| a.target()).collect::<Vec<_>>()
        );
    }
}

/// A driver source that is missing or not a folder/ISO is bad input (exit 2), from the CLI and
/// from the orchestrator's job (`options.virtio_win`), where it is also a JSON error event.
#[test]
fn a_bad_driver_source_is_bad_input() {
    let img = guest("w10-22h2");
    let t = tempfile::tempdir().unwrap();
    let not_iso = t.path().join("drivers.txt");
    std::fs::write(&not_iso, "not an ISO").unwrap();
    for src in [t.path().join("missing.iso"), not_iso] {
        let o = boot::revirt_bin()
            .arg("plan")
            .arg("--virtio-win")
            .arg(&src)
            .arg(&img)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let job = t.path().join("job.json");
        let out = t.path().join("out.qcow2");
        std::fs::write(
            &job,
            serde_json::json!({"disks": [img], "outputs": [out], "options": {"virtio_win": src}})
                .to_string(),
        )
        .unwrap();
        let o = boot::revirt_bin()
            .args(["worker", "--job"])
            .arg(&job)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.lines()
                .any(|l| l.contains(r#""event":"error""#) && l.contains(r#""kind":"bad-input""#)),
            "{err}"
        );
        assert!(!out.exists(), "nothing may be written");
    }
}
