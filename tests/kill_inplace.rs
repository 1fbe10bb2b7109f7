//! A kill at any moment of an in-place repair is harmless (issue #8, item 6): revirt is
//! SIGKILLed at every listed point (before and after each action, at the Nth block written,
//! around and inside the commit), then a plain `revirt repair` must converge to exactly what an
//! uninterrupted repair gives, with nothing left beside the disk. Kills before the commit must
//! leave the disk byte-identical.
#[path = "common/boot.rs"]
mod boot;
mod common;
use common::*;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

fn sha(p: &Path) -> String {
    revirt::apply::sha256_hex(&std::fs::read(p).unwrap())
}

/// sha256 of each path as the guest sees it (None when absent).
fn sums(img: &Path, paths: &[String]) -> Vec<(String, Option<String>)> {
    let g = revirt::inspect::inspect(&[img.to_path_buf()]).unwrap();
    let os = revirt::repair::choose_os(&g).unwrap();
    let vfs = revirt::inspect::linux::guest_vfs(&g.volumes, os.linux.as_ref().unwrap()).unwrap();
    paths
        .iter()
        .map(|p| {
            let got = match vfs.lstat(p).ok().flatten() {
                Some(m) if m.ftype == revirt::fs::FileType::Symlink => {
                    vfs.read_link(p).ok().map(|t| format!("-> {t}"))
                }
                Some(_) => vfs.read_file(p).ok().map(|b| revirt::apply::sha256_hex(&b)),
                None => None,
            };
            (p.clone(), got)
        })
        .collect()
}

/// Files beside the disk other than the disk itself (records, overlays).
fn leftovers(dir: &Path, disk: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != disk && p.to_string_lossy().contains(".revirt-"))
        .map(|p| p.display().to_string())
        .collect()
}

/// Runs an in-place repair of `disk` killed at `point`; true if the kill happened.
fn killed_at(disk: &Path, point: &str) -> bool {
    let st = revirt()
        .args(["repair", "--progress", "none"])
        .arg(disk)
        .env("REVIRT_TEST_KILL_AT", point)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    st.signal() == Some(libc::SIGKILL)
}

#[test]
fn a_kill_at_any_listed_point_converges() {
    boot::require_tools(&["qemu-img"]);
    let src = skeleton("debian10");
    let tmp = tempfile::tempdir().unwrap();
    let fresh = |tag: &str| -> PathBuf {
        let d = tmp.path().join(tag);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("disk.qcow2");
        std::fs::copy(&src, &p).unwrap();
        p
    };
    // The reference: one uninterrupted in-place repair.
    let reference = fresh("reference");
    let (code, out, err) = revirt_out(&["repair", "--json", reference.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}\n{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["committed"], true, "{report:#}");
    let actions = report["actions"].as_array().unwrap().clone();
    let targets: Vec<String> = actions
        .iter()
        .filter(|a| a["op"] != "rename" && a["op"] != "run-bootloader-tool")
        .map(|a| a["target"].as_str().unwrap().to_string())
        .collect();
    let want = sums(&reference, &targets);
    assert!(leftovers(reference.parent().unwrap(), &reference).is_empty());

    let mut points: Vec<String> = vec![];
    for i in 0..actions.len() {
        points.push(format!("before-action-{i}"));
        points.push(format!("after-action-{i}"));
    }
    for n in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233] {
        points.push(format!("write-{n}"));
    }
    points.extend(["before-commit", "commit-recorded", "committed"].map(String::from));
    let original = sha(&src);
    let (mut tried, mut reached) = (0, 0);
    for point in &points {
        tried += 1;
        let disk = fresh(point);
        let dir = disk.parent().unwrap().to_path_buf();
        if !killed_at(&disk, point) {
            // Past the last block write: the run finished normally.
            eprintln!("{point}: not reached (the repair finished)");
            continue;
        }
        reached += 1;
        let before_commit = !matches!(point.as_str(), "commit-recorded" | "committed");
        if before_commit {
            assert_eq!(
                sha(&disk),
                original,
                "{point}: the disk changed before its commit"
            );
        }
        // Readers refuse a disk whose commit was interrupted, until a writer finishes it.
        let (icode, _, ierr) = revirt_out(&["inspect", disk.to_str().unwrap()]);
        if before_commit {
            assert_eq!(icode, 0, "{point}: inspect: {ierr}");
        } else {
            assert_eq!(
                icode, 8,
                "{point}: inspect of a half-committed disk: {ierr}"
            );
        }
        let (code, out, err) = revirt_out(&["repair", "--json", disk.to_str().unwrap()]);
        assert_eq!(code, 0, "{point}: the next repair: {err}\n{out}");
        assert_eq!(sums(&disk, &targets), want, "{point}: did not converge");
        assert!(
            leftovers(&dir, &disk).is_empty(),
            "{point}: left behind {:?}",
            leftovers(&dir, &disk)
        );
        std::fs::remove_dir_all(&dir).ok();
    }
    // Inside the commit: a slowed-down qemu-img commit killed with revirt's process group.
    let disk = fresh("mid-commit");
    let dir = disk.parent().unwrap().to_path_buf();
    let record = revirt::pending::record_path(&disk);
    let mut child = revirt()
        .args(["repair", "--progress", "none"])
        .arg(&disk)
        .env("REVIRT_TEST_COMMIT_RATE", "262144")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    let mut mid = false;
    while t.elapsed().as_secs() < 120 {
        let text = std::fs::read_to_string(&record).unwrap_or_default();
        if text.contains("\"committing\"") {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            // SAFETY: signalling the process group we created.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            mid = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait().ok();
    assert!(mid, "the commit never started or ended before the kill");
    tried += 1;
    reached += 1;
    let (code, out, err) = revirt_out(&["repair", "--json", disk.to_str().unwrap()]);
    assert_eq!(code, 0, "mid-commit: the next repair: {err}\n{out}");
    assert!(out.contains("finished the interrupted commit"), "{out}");
    assert_eq!(sums(&disk, &targets), want, "mid-commit: did not converge");
    assert!(leftovers(&dir, &disk).is_empty());
    eprintln!("kill points: {tried} tried, {reached} reached, all converged");
    assert!(
        reached >= actions.len() * 2,
        "too few kill points were reached"
    );
}
