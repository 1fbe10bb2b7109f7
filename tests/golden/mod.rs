//! Shared by the skeleton tests: builds the skeleton guests once per test binary, finds them,
//! and compares JSON output with checked-in golden files (`REVIRT_BLESS=1` rewrites them).
#![allow(dead_code)]
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Every skeleton guest (fixtures/images/skeletons/<name>).
pub const SKELETONS: &[&str] = &[
    "alma9",
    "debian10",
    "debian11",
    "debian12",
    "fedora",
    "ol8",
    "opensuse-leap15",
    "rhel7",
    "rocky8",
    "sles12",
    "sles15",
    "ubuntu1804",
    "ubuntu2004",
    "ubuntu2204",
    "ubuntu2404",
];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cargo xtask fixtures --set skeleton` once (a cache hit costs about a second) and
/// returns the folder holding `<name>.qcow2` and `<name>.expect.json`.
pub fn skeleton_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["xtask", "fixtures", "--set", "skeleton"])
            .current_dir(manifest_dir())
            .output()
            .expect("running cargo xtask fixtures --set skeleton");
        assert!(
            out.status.success(),
            "cargo xtask fixtures --set skeleton failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cache = std::env::var_os("REVIRT_FIXTURE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest_dir().join("target/fixtures"));
        cache.join("skeletons")
    })
}

pub fn image(name: &str) -> PathBuf {
    skeleton_dir().join(format!("{name}.qcow2"))
}

pub fn expect(name: &str) -> Value {
    let p = skeleton_dir().join(format!("{name}.expect.json"));
    let t = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs the revirt binary; returns (exit code, stdout, stderr).
pub fn revirt(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    // Overlays in temporary folders name fixtures as backing files: trust the fixture cache.
    let cache = std::env::var_os("REVIRT_FIXTURE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fixtures"));
    std::fs::create_dir_all(&cache).ok();
    let o = Command::new(env!("CARGO_BIN_EXE_revirt"))
        .args(args)
        .env("LIBGUESTFS_BACKEND", "direct")
        .env("REVIRT_ALLOW_BACKING_DIR", &cache)
        .output()
        .expect("running revirt");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Replaces machine-specific fields (image paths, file sizes, version) with fixed values.
pub fn normalise(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match k.as_str() {
                    "revirt_version" => *x = Value::String("VERSION".into()),
                    "file_size" => *x = Value::from(0),
                    "path" | "backing_file"
                        if x.as_str().is_some_and(|s| s.ends_with(".qcow2")) =>
                    {
                        let base = Path::new(x.as_str().unwrap_or(""))
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        *x = Value::String(base);
                    }
                    _ => normalise(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

/// Compares `actual` (already normalised) with tests/golden/<kind>/<name>.json, or rewrites
/// the golden when REVIRT_BLESS=1. A mismatch panics with the first differing lines.
pub fn check_golden(kind: &str, name: &str, actual: &Value) {
    let path = manifest_dir()
        .join("tests/golden")
        .join(kind)
        .join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(actual).expect("serialising JSON") + "\n";
    if std::env::var("REVIRT_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("golden folder"))
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with REVIRT_BLESS=1 cargo test --test skeleton_{}",
            path.display(),
            if kind == "inspect" {
                "inspect"
            } else {
                "repair"
            }
        )
    });
    if golden == text {
        return;
    }
    let diff = similar::TextDiff::from_lines(&golden, &text);
    let mut shown = String::new();
    for (n, hunk) in diff
        .unified_diff()
        .context_radius(3)
        .header("golden", "actual")
        .iter_hunks()
        .enumerate()
    {
        if n >= 6 {
            shown.push_str("... (more hunks)\n");
            break;
        }
        shown.push_str(&hunk.to_string());
    }
    panic!(
        "{name}: {kind} output differs from {} (REVIRT_BLESS=1 to accept):\n{shown}",
        path.display()
    );
}
