//! Replays every input the fuzzers ever found (`fuzz/regressions/<target>/<file>`, issue #12)
//! and the in-process seeds of every target through `revirt::fuzzing`, so `cargo test` proves
//! they no longer crash. A panic here names the target and the file.
use std::path::PathBuf;

fn regressions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions")
}

/// Runs `target` on `data`, reporting which input failed.
fn replay(target: &str, what: &str, data: &[u8]) {
    let f = revirt::fuzzing::target(target)
        .unwrap_or_else(|| panic!("{what}: no fuzz target called {target}"));
    let r = std::panic::catch_unwind(|| f(data));
    assert!(r.is_ok(), "{target} panicked on {what}");
}

#[test]
fn saved_crashes_replay_cleanly() {
    let mut n = 0;
    let dirs = std::fs::read_dir(regressions_dir()).expect("fuzz/regressions");
    for d in dirs.flatten() {
        let target = d.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(d.path())
            .expect("regression folder")
            .flatten()
        {
            let data = std::fs::read(f.path()).expect("regression input");
            replay(&target, &f.path().display().to_string(), &data);
            n += 1;
        }
    }
    assert!(n > 0, "fuzz/regressions holds no inputs");
    println!("{n} regression inputs replayed");
}

#[test]
fn every_regression_folder_names_a_target() {
    let dirs = std::fs::read_dir(regressions_dir()).expect("fuzz/regressions");
    for d in dirs.flatten() {
        let name = d.file_name().to_string_lossy().into_owned();
        assert!(
            revirt::fuzzing::target(&name).is_some(),
            "fuzz/regressions/{name}: no such target"
        );
    }
}

#[test]
fn in_process_seeds_run_cleanly() {
    for (target, _) in revirt::fuzzing::TARGETS {
        for (name, data) in revirt::fuzzing::seeds::for_target(target) {
            replay(target, &format!("seed {name}"), &data);
        }
        // Degenerate inputs every target must survive.
        for (name, data) in [
            ("empty", &b""[..]),
            ("zero", &[0u8; 4096][..]),
            ("ff", &[0xff; 700][..]),
        ] {
            replay(target, name, data);
        }
    }
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    for (target, _) in revirt::fuzzing::TARGETS {
        let f = dir.join(format!("{target}.rs"));
        let src = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            src.contains(&format!("revirt::fuzzing::{target}(")),
            "{}",
            f.display()
        );
    }
}
