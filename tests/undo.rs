//! In-place repair keeps backups and a journal in the guest; `revirt undo` restores every file
//! byte for byte (checked with revirt's pure readers against a pristine copy).
mod common;
use common::*;
use std::path::Path;

/// sha256 of each path as the guest on `img` sees it (None when absent).
fn file_sums(img: &Path, paths: &[String]) -> Vec<(String, Option<String>)> {
    let g = revirt::inspect::inspect(&[img.to_path_buf()]).unwrap();
    let os = revirt::repair::choose_os(&g).unwrap();
    let vfs = revirt::inspect::linux::guest_vfs(&g.volumes, os.linux.as_ref().unwrap()).unwrap();
    paths
        .iter()
        .map(|p| {
            (
                p.clone(),
                vfs.read_file(p).ok().map(|b| revirt::apply::sha256_hex(&b)),
            )
        })
        .collect()
}

#[test]
fn in_place_repair_then_undo_restores_every_file() {
    let src = skeleton("debian10");
    let d = tempfile::tempdir().unwrap();
    let pristine = d.path().join("pristine.qcow2");
    let work = d.path().join("work.qcow2");
    std::fs::copy(&src, &pristine).unwrap();
    std::fs::copy(&src, &work).unwrap();

    let (code, out, err) = revirt_out(&["repair", "--json", work.to_str().unwrap()]);
    assert_eq!(code, 0, "in-place repair should be ready: {err}\n{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut targets: Vec<String> = vec![];
    for a in report["actions"].as_array().unwrap() {
        targets.push(a["target"].as_str().unwrap().to_string());
        if let Some(t) = a["extra_target"].as_str() {
            targets.push(t.to_string());
        }
    }
    targets.push("/var/lib/revirt/ready.json".into());
    assert!(
        targets.iter().any(|t| t == "/etc/fstab"),
        "debian10 names /dev/sda1 in fstab: {targets:?}"
    );
    let before = file_sums(&pristine, &targets);
    let repaired = file_sums(&work, &targets);
    assert_ne!(before, repaired, "the repair changed nothing?");

    let (code, out, err) = revirt_out(&["undo", work.to_str().unwrap()]);
    assert_eq!(code, 0, "undo: {err}");
    assert!(out.contains("undid"), "{out}");
    let after = file_sums(&work, &targets);
    for ((p, a), (_, b)) in before.iter().zip(&after) {
        assert_eq!(a, b, "{p} differs from the original after undo");
    }
    // A second undo has no journal left to apply.
    let (code, _, err) = revirt_out(&["undo", work.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("nothing to undo"), "{err}");
}
