//! Shared by the boot tests: the real-guest fixtures and the xtask boot harness.
#![allow(dead_code)]
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os("REVIRT_FIXTURE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/fixtures"))
}

/// The revirt binary, trusting backing files in the fixture cache (the tests' overlays in
/// temporary folders name fixtures as their backing files) and nowhere else.
pub fn revirt_bin() -> Command {
    let d = cache_dir();
    std::fs::create_dir_all(&d).ok();
    let mut c = Command::new(env!("CARGO_BIN_EXE_revirt"));
    c.env("REVIRT_ALLOW_BACKING_DIR", d);
    c
}

/// In-process policy for reading back an overlay created over `input`.
pub fn trust(input: &Path) -> revirt::image::OpenPolicy {
    revirt::image::OpenPolicy::default().also_folders_of(&[input.to_path_buf()])
}

pub fn xtask() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(["run", "--quiet", "-p", "xtask", "--"])
        .current_dir(repo());
    c
}

pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Fails (never skips) when the tools a boot test needs are missing: CI installs them.
pub fn require_tools(tools: &[&str]) {
    let missing: Vec<&&str> = tools.iter().filter(|t| !on_path(t)).collect();
    assert!(
        missing.is_empty(),
        "boot tests need {missing:?} (install the system packages with bash .ci/deps.sh)"
    );
}

/// Builds (or reuses from the cache) the real bootable guests; returns their folder.
pub fn real_guests() -> PathBuf {
    let status = xtask()
        .args(["fixtures", "--set", "real"])
        .status()
        .expect("running xtask fixtures");
    assert!(status.success(), "cargo xtask fixtures --set real failed");
    cache_dir().join("real")
}

/// Builds (or reuses from the cache) the phony Windows guests, the phony virtio-win folder and
/// ISO, and their manifest.json; returns their folder.
/// Repairs run in the test process (`revirt::repair::repair`) start their native-write helpers
/// as `$REVIRT_EXE __native-helper ...`: the test binary itself has no helper mode (without this
/// the helpers fail to start and the repair silently falls back to the appliance).
pub fn in_process_helpers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY (set_var): called before the test spawns the threads that run repairs.
    ONCE.call_once(|| std::env::set_var("REVIRT_EXE", env!("CARGO_BIN_EXE_revirt")));
}

pub fn windows_guests() -> PathBuf {
    // Once per test binary: a cache hit still costs a cargo invocation.
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        in_process_helpers();
        let status = xtask()
            .args(["fixtures", "--set", "windows"])
            .status()
            .expect("running xtask fixtures");
        assert!(
            status.success(),
            "cargo xtask fixtures --set windows failed"
        );
        cache_dir().join("windows")
    })
    .clone()
}

/// Boots `image` through a throwaway overlay and returns the harness's JSON verdict.
pub fn boot(
    image: &Path,
    platform: &str,
    firmware: Option<&str>,
    timeout: u64,
) -> Result<Value, String> {
    boot_with(image, &[], platform, firmware, timeout)
}

/// [`boot`] with further disks `disks` in bus order (else the ones the image's sidecar names).
pub fn boot_with(
    image: &Path,
    disks: &[PathBuf],
    platform: &str,
    firmware: Option<&str>,
    timeout: u64,
) -> Result<Value, String> {
    let mut c = xtask();
    c.arg("boot").arg(image);
    for d in disks {
        c.arg("--disk").arg(d);
    }
    c.args([
        "--platform",
        platform,
        "--timeout",
        &timeout.to_string(),
        "--json",
    ]);
    if let Some(f) = firmware {
        c.args(["--firmware", f]);
    }
    let out = c.output().map_err(|e| format!("running xtask boot: {e}"))?;
    if out.stdout.is_empty() {
        return Err(format!(
            "xtask boot failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("parsing xtask boot output: {e}"))
}

/// Runs `jobs` two at a time (the machine has 2 cores) and returns results in job order.
pub fn run_parallel<J: Sync, R: Send>(jobs: &[J], f: impl Fn(&J) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<(usize, R)>> = std::sync::Mutex::new(vec![]);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(j) = jobs.get(i) else { break };
                let r = f(j);
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let mut v = results.into_inner().unwrap();
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, r)| r).collect()
}
