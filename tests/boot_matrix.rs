//! The RED boot matrix: every real Debian 12 guest (fixtures/images/real) boots on the platform it
//! came from and fails on virtio, before any repair.
//!
//! Builds or reuses the guests with `cargo xtask fixtures --set real`, then boots each with
//! `cargo xtask boot --json` on the source platform (IDE/AHCI + e1000) and on virtio-blk, two boots
//! at a time. Expensive (about 10 minutes under TCG) and deliberately not ignored: a machine
//! without qemu or debootstrap fails here with a message instead of passing silently.
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cache_dir() -> PathBuf {
    std::env::var_os("REVIRT_FIXTURE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/fixtures"))
}

fn xtask() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(["run", "--quiet", "-p", "xtask", "--"])
        .current_dir(repo());
    c
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|d| d.join(tool).is_file())
}

struct Job {
    guest: String,
    platform: &'static str,
    timeout: u64,
}

/// One boot through the harness; the parsed JSON report or an error text.
fn boot(image: &Path, platform: &str, timeout: u64) -> Result<Value, String> {
    let out = xtask()
        .arg("boot")
        .arg(image)
        .args([
            "--platform",
            platform,
            "--json",
            "--timeout",
            &timeout.to_string(),
        ])
        .output()
        .map_err(|e| format!("running xtask boot: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "xtask boot failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("parsing xtask boot output: {e}"))
}

#[test]
fn real_guests_boot_on_source_and_fail_on_virtio() {
    let missing: Vec<&str> = [
        "qemu-system-x86_64",
        "qemu-img",
        "debootstrap",
        "sfdisk",
        "mkfs.vfat",
        "mcopy",
    ]
    .into_iter()
    .filter(|t| !on_path(t))
    .collect();
    assert!(
        missing.is_empty(),
        "boot matrix needs {} (install the system packages with .ci/deps.sh)",
        missing.join(", ")
    );

    let status = xtask()
        .args(["fixtures", "--set", "real"])
        .status()
        .expect("running xtask fixtures");
    assert!(status.success(), "cargo xtask fixtures --set real failed");

    let manifest_path = repo().join("fixtures/images/real/manifest.json");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).expect("reading manifest"))
            .expect("manifest");
    let guests: Vec<(String, String)> = manifest["guests"]
        .as_array()
        .expect("manifest has guests")
        .iter()
        .map(|g| {
            let name = g["name"].as_str().expect("guest name").to_owned();
            let expect = g["expect_source"]
                .as_str()
                .expect("expect_source")
                .to_owned();
            (name, expect)
        })
        .collect();
    assert!(
        guests.len() >= 4,
        "expected at least 4 real guests, found {}",
        guests.len()
    );

    // Failing virtio boots first: dracut waits minutes for its root before giving up (542 s seen
    // under TCG on a loaded 2-core machine).
    let mut jobs: Vec<Job> = Vec::new();
    for (g, _) in &guests {
        jobs.push(Job {
            guest: g.clone(),
            platform: "virtio-blk",
            timeout: 900,
        });
    }
    for (g, _) in &guests {
        jobs.push(Job {
            guest: g.clone(),
            platform: "source",
            timeout: 600,
        });
    }
    let real = cache_dir().join("real");
    let queue = Mutex::new(jobs.into_iter());
    let results: Mutex<Vec<(String, String, Result<Value, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(job) = queue.lock().unwrap().next() else {
                    break;
                };
                let image = real.join(format!("{}.qcow2", job.guest));
                let r = boot(&image, job.platform, job.timeout);
                results
                    .lock()
                    .unwrap()
                    .push((job.guest, job.platform.to_owned(), r));
            });
        }
    });
    let results = results.into_inner().unwrap();

    let cell = |guest: &str, platform: &str| -> (String, Option<Value>) {
        match results.iter().find(|(g, p, _)| g == guest && p == platform) {
            Some((_, _, Ok(v))) => {
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
                    Some(v.clone()),
                )
            }
            Some((_, _, Err(e))) => (format!("ERROR {e}"), None),
            None => ("not run".into(), None),
        }
    };
    let mut table = format!("\n{:<22} {:<38} {}\n", "guest", "source", "virtio-blk");
    let mut failures = Vec::new();
    for (g, expect) in &guests {
        let (src, src_v) = cell(g, "source");
        let (vio, vio_v) = cell(g, "virtio-blk");
        table.push_str(&format!("{g:<22} {src:<38} {vio}\n"));
        let src_verdict = src_v
            .as_ref()
            .and_then(|v| v["verdict"].as_str())
            .unwrap_or("");
        if src_verdict != expect {
            let tail = src_v
                .as_ref()
                .map(|v| v["last_lines"].to_string())
                .unwrap_or_default();
            failures.push(format!(
                "{g} on source: {src}, expected {expect}; console tail {tail}"
            ));
        }
        let vio_verdict = vio_v
            .as_ref()
            .and_then(|v| v["verdict"].as_str())
            .unwrap_or("");
        if vio_verdict != "no-root-device" {
            let tail = vio_v
                .as_ref()
                .map(|v| v["last_lines"].to_string())
                .unwrap_or_default();
            failures.push(format!(
                "{g} on virtio-blk: {vio}, expected no-root-device; console tail {tail}"
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
