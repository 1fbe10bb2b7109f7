//! The RED boot matrix: every real Debian 12 guest (fixtures/images/real) boots on the platform it
//! came from and fails on virtio, before any repair.
//!
//! Builds or reuses the guests with `cargo xtask fixtures --set real`, then boots each with
//! `cargo xtask boot --json` on the source platform (IDE/AHCI + e1000) and on virtio-blk, two boots
//! at a time. Expensive (about 10-15 minutes under TCG) and deliberately not ignored: a machine
//! without qemu or debootstrap fails here with a message instead of passing silently.
#[path = "common/boot.rs"]
mod boot;
use boot::*;
use serde_json::Value;

#[test]
fn real_guests_boot_on_source_and_fail_on_virtio() {
    require_tools(&[
        "qemu-system-x86_64",
        "qemu-img",
        "debootstrap",
        "sfdisk",
        "mkfs.vfat",
        "mcopy",
    ]);
    let real = real_guests();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("fixtures/images/real/manifest.json"))
            .expect("reading manifest"),
    )
    .expect("manifest");
    let guests: Vec<(String, String)> = manifest["guests"]
        .as_array()
        .expect("manifest has guests")
        .iter()
        .map(|g| {
            (
                g["name"].as_str().expect("guest name").to_owned(),
                g["expect_source"]
                    .as_str()
                    .expect("expect_source")
                    .to_owned(),
            )
        })
        .collect();
    assert!(
        guests.len() >= 4,
        "expected at least 4 real guests, found {}",
        guests.len()
    );

    // Failing virtio boots first: dracut waits minutes for its root before giving up.
    let mut jobs: Vec<(String, &str)> = guests
        .iter()
        .map(|(g, _)| (g.clone(), "virtio-blk"))
        .collect();
    jobs.extend(guests.iter().map(|(g, _)| (g.clone(), "source")));
    let results = run_parallel(&jobs, |(g, platform)| {
        boot(&real.join(format!("{g}.qcow2")), platform, None, 900)
    });

    let cell = |guest: &str, platform: &str| -> (String, String, String) {
        let i = jobs
            .iter()
            .position(|(g, p)| g == guest && *p == platform)
            .expect("job");
        match &results[i] {
            Ok(v) => {
                let verdict = v["verdict"].as_str().unwrap_or("?").to_owned();
                let addr = v["address"]
                    .as_str()
                    .map(|a| format!(" {a}"))
                    .unwrap_or_default();
                (
                    format!(
                        "{verdict}{addr} ({:.0} s)",
                        v["seconds"].as_f64().unwrap_or(0.0)
                    ),
                    verdict,
                    v["last_lines"].to_string(),
                )
            }
            Err(e) => (format!("ERROR {e}"), String::new(), String::new()),
        }
    };
    let mut table = format!("\n{:<22} {:<38} {}\n", "guest", "source", "virtio-blk");
    let mut failures = Vec::new();
    for (g, expect) in &guests {
        let (src, src_verdict, src_tail) = cell(g, "source");
        let (vio, vio_verdict, vio_tail) = cell(g, "virtio-blk");
        table.push_str(&format!("{g:<22} {src:<38} {vio}\n"));
        if &src_verdict != expect {
            failures.push(format!(
                "{g} on source: {src}, expected {expect}; console tail {src_tail}"
            ));
        }
        if vio_verdict != "no-root-device" {
            failures.push(format!(
                "{g} on virtio-blk: {vio}, expected no-root-device; console tail {vio_tail}"
            ));
        }
    }
    println!("{table}");
    assert!(
        failures.is_empty(),
        "boot matrix mismatches:{table}\n{}",
        failures.join("\n")
    );
}
