//! `revirt convert` runs qemu-img with progress, refuses to overwrite, and fails clearly.
mod common;
use common::*;

#[test]
fn converts_raw_to_qcow2_with_json_progress_and_same_bytes() {
    let g = mini_linux(
        "UUID=6f8e4f5c-9c1e-4c42-8f0a-8f6d3c2b1a00 / ext4 defaults 0 1\n",
        &[],
        &[],
    );
    let dst = g.dir.path().join("out.qcow2");
    let (code, _, err) = revirt_out(&[
        "convert",
        g.disk.to_str().unwrap(),
        dst.to_str().unwrap(),
        "--to",
        "qcow2",
        "--progress",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "progress" && e["percent"] == 100.0),
        "{err}"
    );
    assert_eq!(events.last().unwrap()["event"], "done");
    // Same guest seen through the converted image.
    let (code, out, _) = revirt_out(&["inspect", "--json", dst.to_str().unwrap()]);
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["disks"][0]["image"]["format"], "qcow2");
    assert_eq!(j["operating_systems"][0]["linux"]["distro"], "debian");
    let cmp = std::process::Command::new("qemu-img")
        .arg("compare")
        .arg(&g.disk)
        .arg(&dst)
        .output()
        .unwrap();
    assert!(
        cmp.status.success(),
        "{}",
        String::from_utf8_lossy(&cmp.stdout)
    );
    // Refuses to overwrite without --force.
    let (code, _, err) = revirt_out(&[
        "convert",
        g.disk.to_str().unwrap(),
        dst.to_str().unwrap(),
        "--to",
        "raw",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn convert_of_an_empty_file_fails_clearly() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("empty.vmdk");
    std::fs::write(&src, b"").unwrap();
    let (code, _, err) = revirt_out(&[
        "convert",
        src.to_str().unwrap(),
        d.path().join("x.qcow2").to_str().unwrap(),
        "--to",
        "qcow2",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("empty"), "{err}");
    assert!(!d.path().join("x.qcow2").exists());
}
