//! `cargo xtask fuzz`: the libFuzzer targets of fuzz/ (one per `revirt::fuzzing` function,
//! issue #12) on the stable toolchain.
//!
//! ```text
//!   cargo-fuzz (installed if missing) ─▶ cargo fuzz build -O -a -s none   (RUSTC_BOOTSTRAP=1)
//!                                         into <cache>/fuzz/target
//!   seeds: host tools + fixture recipes ─▶ <cache>/fuzz/seeds/<target>/  (+ in-process seeds,
//!          written there by each binary at start-up: $REVIRT_FUZZ_SEEDS)
//!   run:   <target binary> <cache>/fuzz/corpus/<target> seeds fuzz/regressions/<target>
//!          -max_total_time -rss_limit_mb=1024 -timeout=10, `--jobs` at a time
//!   report: executions, corpus, peak RSS per target; any crash, timeout or OOM fails
//! ```
//! `-O -a`: optimised, with debug assertions and overflow checks (an overflow is a bug here).
//! `-s none`: no sanitizer. revirt's parsers are safe Rust, so ASan would mostly slow them down;
//! libFuzzer still catches panics, stack overflows, timeouts and the RSS cap. `--sanitizer
//! address` is there for long runs (it also checks the unsafe code inside dependencies).
use crate::run;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(clap::Args)]
pub struct FuzzArgs {
    /// CI budget: every target for --time seconds (default 10), failing on any finding.
    #[arg(long)]
    ci: bool,
    /// Seconds per target (default 10 with --ci, else 60).
    #[arg(long)]
    time: Option<u64>,
    /// A long run: HOURS of wall time shared by the selected targets.
    #[arg(long, conflicts_with = "time")]
    long: Option<f64>,
    /// Only this target (repeatable).
    #[arg(long)]
    target: Vec<String>,
    /// Targets run at once (default: 2, the cores of a CI machine).
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// libFuzzer sanitizer: none or address (address needs RUSTC_BOOTSTRAP, set here).
    #[arg(long, default_value = "none")]
    sanitizer: String,
    /// Only (re)generate the seed corpora.
    #[arg(long)]
    seeds_only: bool,
}

/// Bump when a seed generator below changes what it writes.
const SEEDS_VERSION: &str = "fuzz-seeds-v1";
const RSS_LIMIT_MB: u32 = 1024;
const TIMEOUT_S: u32 = 10;

fn fuzz_dir() -> PathBuf {
    crate::repo_root().join("fuzz")
}

/// Seeds, corpora and logs live in the fixture cache (outside git).
fn work_dir() -> PathBuf {
    crate::cache_dir().join("fuzz")
}

/// Every target, from fuzz/fuzz_targets/*.rs.
fn all_targets() -> Result<Vec<String>> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut v = vec![];
    for e in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = e?.file_name().to_string_lossy().to_string();
        if let Some(t) = name.strip_suffix(".rs") {
            v.push(t.to_string());
        }
    }
    v.sort();
    Ok(v)
}

pub fn run_fuzz(a: FuzzArgs) -> Result<()> {
    let all = all_targets()?;
    for t in &a.target {
        if !all.contains(t) {
            bail!("no fuzz target {t}; targets: {}", all.join(" "));
        }
    }
    let targets: Vec<String> = if a.target.is_empty() {
        all
    } else {
        a.target.clone()
    };
    let t0 = Instant::now();
    let seeds = work_dir().join("seeds");
    gen_seeds(&seeds)?;
    if a.seeds_only {
        return Ok(());
    }
    ensure_cargo_fuzz()?;
    let tb = Instant::now();
    let bin_dir = build(&a.sanitizer)?;
    let build_time = tb.elapsed();
    let jobs = a.jobs.max(1);
    let secs = match (a.long, a.time) {
        (Some(h), _) => ((h * 3600.0 * jobs as f64 / targets.len() as f64) as u64).max(60),
        (None, Some(s)) => s,
        // 28 targets, two at a time: 10 s each keeps the CI step near 2.5 min of runs.
        (None, None) if a.ci => 10,
        (None, None) => 60,
    };
    println!(
        "fuzz: {} target(s), {secs} s each, {jobs} at a time (build {:.0} s)",
        targets.len(),
        build_time.as_secs_f64()
    );
    let results = std::sync::Mutex::new(Vec::new());
    let queue = std::sync::Mutex::new(targets.iter());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                let Some(t) = next else { break };
                let r = run_target(&bin_dir, t, &seeds.join(t), secs, a.ci);
                println!("{}", r.line());
                if let Ok(mut v) = results.lock() {
                    v.push(r);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by(|a, b| a.target.cmp(&b.target));
    let failed: Vec<&Outcome> = results.iter().filter(|r| r.problem.is_some()).collect();
    let execs: u64 = results.iter().map(|r| r.execs).sum();
    println!(
        "fuzz: {} targets, {execs} executions, {} crashes, build {:.0} s, total {:.0} s",
        results.len(),
        failed.len(),
        build_time.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        return Ok(());
    }
    for r in &failed {
        eprintln!(
            "\n== {} ({}): last lines of {}",
            r.target,
            r.problem.as_deref().unwrap_or(""),
            r.log.display()
        );
        eprintln!("{}", r.tail);
        if let Some(a) = &r.artifact {
            eprintln!(
                "input: {a}\n  replay: {}/{} {a}\n  keep it: minimise (cargo fuzz tmin -O -a -s none {} {a}), fix the parser, \
                 copy it to fuzz/regressions/{}/",
                bin_dir.display(),
                r.target,
                r.target,
                r.target
            );
        }
    }
    bail!(
        "fuzzing found {} problem(s): {}",
        failed.len(),
        failed
            .iter()
            .map(|r| r.target.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Installs cargo-fuzz from crates.io when `cargo fuzz` is missing.
fn ensure_cargo_fuzz() -> Result<()> {
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if have {
        return Ok(());
    }
    let t = Instant::now();
    println!("fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    run(Command::new("cargo").args(["install", "cargo-fuzz", "--version", "^0.13", "--locked"]))?;
    println!(
        "fuzz: cargo-fuzz installed in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds every target; returns the folder holding the binaries. The build lives in the cache
/// too, so a fresh clone on the same machine (CI) only rebuilds what changed.
fn build(sanitizer: &str) -> Result<PathBuf> {
    let target_dir = work_dir().join("target");
    let status = Command::new("cargo")
        .args(["fuzz", "build", "-O", "-a", "-s", sanitizer, "--target-dir"])
        .arg(&target_dir)
        .current_dir(crate::repo_root())
        // cargo-fuzz's -Z flags (sanitizers) on the stable toolchain.
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .context("running cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build failed ({status})");
    }
    let out = Command::new("rustc").arg("-vV").output()?;
    let host = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV names no host")?;
    Ok(target_dir.join(host).join("release"))
}

/// What one run found.
struct Outcome {
    target: String,
    execs: u64,
    corpus: u64,
    rss_mb: u64,
    secs: f64,
    /// "crash", "timeout", "out-of-memory", ... (None: clean).
    problem: Option<String>,
    artifact: Option<String>,
    log: PathBuf,
    tail: String,
}

impl Outcome {
    fn line(&self) -> String {
        format!(
            "fuzz: {:<17} executions {:>9}  exec/s {:>6.0}  corpus {:>5}  rss {:>4} MB  {}",
            self.target,
            self.execs,
            self.execs as f64 / self.secs.max(0.1),
            self.corpus,
            self.rss_mb,
            match &self.problem {
                None => "crashes 0".to_string(),
                Some(p) => format!("FAILED: {p}"),
            }
        )
    }
}

/// Runs one target for `secs`. CI runs start from the seeds and regressions each time (a corpus
/// grown over many runs would eat the budget in replay); other runs grow `<cache>/fuzz/corpus`.
fn run_target(bin_dir: &Path, target: &str, seeds: &Path, secs: u64, ci: bool) -> Outcome {
    let wd = work_dir();
    let corpus = wd
        .join(if ci { "corpus-ci" } else { "corpus" })
        .join(target);
    if ci {
        let _ = fs::remove_dir_all(&corpus);
    }
    let log = wd.join("logs").join(format!("{target}.log"));
    let artifacts = fuzz_dir().join("artifacts").join(target);
    let regressions = fuzz_dir().join("regressions").join(target);
    let mut out = Outcome {
        target: target.into(),
        execs: 0,
        corpus: 0,
        rss_mb: 0,
        secs: 0.0,
        problem: None,
        artifact: None,
        log: log.clone(),
        tail: String::new(),
    };
    for d in [&corpus, &artifacts, seeds, &wd.join("logs")] {
        if let Err(e) = fs::create_dir_all(d) {
            out.problem = Some(format!("creating {}: {e}", d.display()));
            return out;
        }
    }
    let Ok(logf) = fs::File::create(&log) else {
        out.problem = Some(format!("cannot write {}", log.display()));
        return out;
    };
    let mut cmd = Command::new(bin_dir.join(target));
    cmd.arg(format!("-max_total_time={secs}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-timeout={TIMEOUT_S}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&corpus)
        .arg(seeds);
    if regressions.is_dir() {
        cmd.arg(&regressions);
    }
    let t = Instant::now();
    let status = cmd
        .env("REVIRT_FUZZ_SEEDS", seeds)
        .stdout(
            logf.try_clone()
                .map(Into::into)
                .unwrap_or_else(|_| std::process::Stdio::null()),
        )
        .stderr(logf)
        .status();
    out.secs = t.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log).unwrap_or_default();
    parse_log(&text, &mut out);
    out.corpus = fs::read_dir(&corpus).map(|d| d.count() as u64).unwrap_or(0);
    let _ = fs::remove_dir(&artifacts); // only when empty: nothing found
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            let kind = [
                "timeout",
                "out-of-memory",
                "deadly signal",
                "crash",
                "leak",
                "fuzz target exited",
            ]
            .into_iter()
            .find(|k| {
                text.contains(&format!("libFuzzer: {k}"))
                    || text.contains(&format!("ERROR: libFuzzer: {k}"))
            });
            out.problem = Some(format!("{} ({s})", kind.unwrap_or("failure")));
        }
        Err(e) => {
            out.problem = Some(format!(
                "cannot run {}: {e}",
                bin_dir.join(target).display()
            ))
        }
    }
    if out.problem.is_some() {
        let lines: Vec<&str> = text.lines().collect();
        out.tail = lines[lines.len().saturating_sub(40)..].join("\n");
    }
    out
}

/// Executions, peak RSS and the crash artifact from libFuzzer's output.
fn parse_log(text: &str, out: &mut Outcome) {
    let stat = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    // Status lines ("#1234\tpulse ...") give the count when a crash cut the final stats.
    let last_status = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .max();
    out.execs = stat("number_of_executed_units")
        .or(last_status)
        .unwrap_or(0);
    out.rss_mb = stat("peak_rss_mb").unwrap_or(0);
    out.artifact = text
        .lines()
        .find_map(|l| l.split("Test unit written to ").nth(1))
        .map(|s| s.trim().to_string());
}

// ---------------------------------------------------------------------------------------------
// Seeds

/// Writes seeds made with host tools and from the fixture recipes into `dir/<target>/`, unless
/// the stamp says they are current. A generator whose tool is missing is skipped with a note
/// (the in-process seeds still cover its target).
fn gen_seeds(dir: &Path) -> Result<()> {
    let key = seeds_key()?;
    let stamp = dir.join(".key");
    if fs::read_to_string(&stamp).is_ok_and(|k| k == key) {
        return Ok(());
    }
    let t = Instant::now();
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir)?;
    let scratch = dir.join(".work");
    fs::create_dir_all(&scratch)?;
    let s = Seeds {
        dir,
        work: &scratch,
    };
    type Gen = fn(&Seeds) -> Result<()>;
    let gens: [(&str, Gen); 12] = [
        ("qcow2 (qemu-img)", qcow2),
        ("partitions (sfdisk)", partitions),
        ("ext4 + jbd2 (mkfs.ext4, debugfs)", ext4),
        ("xfs (mkfs.xfs)", xfs),
        ("fat (mkfs.vfat, mtools)", fat),
        ("ntfs (mkntfs, ntfscp)", ntfs),
        ("iso (xorriso)", iso),
        ("initramfs (cpio, compressors)", initramfs),
        ("hives (mkhive.py, hivexregedit)", hives),
        ("rpmdb (rpmbuild, rpm)", rpmdb),
        ("luks (cryptsetup)", luks),
        ("configs (fixture recipes) and disks", recipes_and_disks),
    ];
    let mut skipped = vec![];
    for (what, g) in gens {
        if let Err(e) = g(&s) {
            skipped.push(format!("{what}: {e:#}"));
        }
    }
    let _ = fs::remove_dir_all(&scratch);
    for sk in &skipped {
        let lines: Vec<&str> = sk.lines().collect();
        let why = lines
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(&"");
        println!(
            "fuzz: seeds skipped: {}: {why}",
            sk.split(':').next().unwrap_or("")
        );
    }
    let n: usize = fs::read_dir(dir)?
        .flatten()
        .filter_map(|d| fs::read_dir(d.path()).ok())
        .map(|d| d.count())
        .sum();
    println!(
        "fuzz: {n} seeds generated in {:.0} s into {}",
        t.elapsed().as_secs_f64(),
        dir.display()
    );
    fs::write(stamp, key)?;
    Ok(())
}

/// This generator's source and version, and the fixture recipes it reads.
fn seeds_key() -> Result<String> {
    let mut h = Sha256::new();
    h.update(SEEDS_VERSION);
    h.update(include_str!("fuzz.rs"));
    let root = crate::repo_root().join("fixtures/images");
    let mut files = vec![];
    for sub in [
        "skeletons",
        "windows-mini",
        "windows/trouble.py",
        "phony/fedora39/rpms",
    ] {
        collect(&root.join(sub), &mut files);
    }
    files.sort();
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        h.update(fs::read(&f).unwrap_or_default());
    }
    Ok(hex::encode(h.finalize()))
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    match fs::read_dir(p) {
        Ok(rd) => {
            for e in rd.flatten() {
                collect(&e.path(), out);
            }
        }
        Err(_) if p.is_file() => out.push(p.to_path_buf()),
        Err(_) => {}
    }
}

struct Seeds<'a> {
    dir: &'a Path,
    work: &'a Path,
}

impl Seeds<'_> {
    fn put(&self, target: &str, name: &str, data: &[u8]) -> Result<()> {
        let d = self.dir.join(target);
        fs::create_dir_all(&d)?;
        fs::write(d.join(name), data)?;
        Ok(())
    }
    /// A disk image file as a seed, in the sparse encoding when that is smaller.
    fn image(&self, target: &str, name: &str, img: &Path, prefix: &[u8]) -> Result<()> {
        let raw = fs::read(img).with_context(|| format!("reading {}", img.display()))?;
        let sp = sparse(&raw);
        let body = if sp.len() < raw.len() { sp } else { raw };
        self.put(target, name, &[prefix, &body].concat())
    }
    fn sh(&self, script: &str) -> Result<()> {
        run(Command::new("bash")
            .arg("-c")
            .arg(format!("set -euo pipefail\n{script}"))
            .current_dir(self.work)
            .env("TEST_DIR", "/tmp")
            .env("TEST_DEV", "fuzz-seed")
            .env("QA_CHECK_FS", "1"))
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.work.join(rel)
    }
}

/// The sparse image encoding of `revirt::fuzzing::Image`: "RVSP", u64 LE size, then
/// (u32 LE sector, u32 LE length, bytes) for each run of non-zero 512-byte sectors.
fn sparse(img: &[u8]) -> Vec<u8> {
    let mut out = b"RVSP".to_vec();
    out.extend((img.len() as u64).to_le_bytes());
    let secs: Vec<&[u8]> = img.chunks(512).collect();
    let mut i = 0;
    while i < secs.len() {
        if secs[i].iter().all(|&b| b == 0) {
            i += 1;
            continue;
        }
        let start = i;
        while i < secs.len() && secs[i].iter().any(|&b| b != 0) {
            i += 1;
        }
        let bytes = secs[start..i].concat();
        out.extend((start as u32).to_le_bytes());
        out.extend((bytes.len() as u32).to_le_bytes());
        out.extend(bytes);
    }
    out
}

/// Writes `files` (relative path, content) under `root`; a path starting with `@` is a
/// symlink to the content.
fn tree(root: &Path, files: &[(&str, &[u8])]) -> Result<()> {
    for (p, c) in files {
        let (link, rel) = match p.strip_prefix('@') {
            Some(r) => (true, r),
            None => (false, *p),
        };
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap_or(root))?;
        if link {
            std::os::unix::fs::symlink(String::from_utf8_lossy(c).as_ref(), &path)?;
        } else {
            fs::write(&path, c)?;
        }
    }
    Ok(())
}

/// A tree with what filesystem readers must handle: nesting, a multi-block file, an empty one,
/// a 300-entry folder, long names, fast and slow symlinks, a symlink loop.
fn sample_tree(root: &Path, with_links: bool) -> Result<()> {
    let big: Vec<u8> = (0..20_000u32).map(|i| (i * 31 + (i >> 11)) as u8).collect();
    let long = "l".repeat(200);
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("etc/hostname".into(), b"guest\n".to_vec()),
        (
            "etc/os-release".into(),
            b"ID=debian\nVERSION_ID=\"12\"\n".to_vec(),
        ),
        ("a/b/c/d/e/deep.txt".into(), b"deep\n".to_vec()),
        ("data/big.bin".into(), big),
        ("data/empty".into(), vec![]),
        (
            "data/a-rather-long-file-name-for-short-name-aliases.txt".into(),
            b"long\n".to_vec(),
        ),
    ];
    for i in 0..300 {
        files.push((
            format!("many/file-{i:04}.txt"),
            format!("{i}\n").into_bytes(),
        ));
    }
    if with_links {
        files.push(("@data/fast-link".into(), b"big.bin".to_vec()));
        files.push((
            "@data/slow-link".into(),
            format!("../{long}/x").into_bytes(),
        ));
        files.push(("@data/loop".into(), b"loop".to_vec()));
        files.push(("@etc/abs".into(), b"/etc/hostname".to_vec()));
    }
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    tree(root, &refs)
}

fn qcow2(s: &Seeds) -> Result<()> {
    s.sh(
        "python3 -c 'import sys; sys.stdout.buffer.write(bytes((i * 7 + (i >> 9)) & 0xff for i in range(65536)))' > base.raw
         truncate -s 1M disk.raw
         printf 'hello qcow2' | dd of=disk.raw bs=1 seek=70000 conv=notrunc status=none
         head -c 65536 base.raw | dd of=disk.raw bs=4096 seek=64 conv=notrunc status=none
         printf 'label: dos\nstart=64, size=1024, type=83\n' | sfdisk -q disk.raw
         qemu-img convert -f raw -O qcow2 -o cluster_size=4096 disk.raw v3.qcow2
         qemu-img convert -f raw -O qcow2 -o cluster_size=512,compat=0.10 disk.raw v2.qcow2
         qemu-img convert -c -f raw -O qcow2 -o cluster_size=4096 disk.raw deflate.qcow2
         qemu-img convert -c -f raw -O qcow2 -o cluster_size=4096,compression_type=zstd disk.raw zstd.qcow2
         qemu-img create -q -f qcow2 -o cluster_size=4096 -b base.raw -F raw overlay.qcow2 1M
         qemu-img create -q -f qcow2 -o cluster_size=65536,lazy_refcounts=on empty.qcow2 1G",
    )?;
    for n in ["v3", "v2", "deflate", "zstd", "overlay", "empty"] {
        s.image("qcow2", n, &s.path(&format!("{n}.qcow2")), b"")?;
    }
    s.image("partitions", "qcow2-raw", &s.path("disk.raw"), &[0xff])
}

fn partitions(s: &Seeds) -> Result<()> {
    s.sh(
        "truncate -s 16M dos.img gpt.img
         printf 'label: dos\nlabel-id: 0x12345678\nstart=2048, size=2048, type=83, bootable\nstart=4096, size=12288, type=5\nstart=16384, size=2048, type=c\nstart=18432, size=2048, type=ef\nsize=1024, type=82\nsize=1024, type=8e\nsize=1024, type=7\n' | sfdisk -q dos.img
         printf 'label: gpt\nlabel-id: 0A1B2C3D-1111-2222-3333-444455556666\nstart=2048, size=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"EFI System\"\nstart=4096, size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root\nstart=8192, size=2048, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\nstart=10240, size=2048, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=\"Basic data\"\n' | sfdisk -q gpt.img
         cp gpt.img gpt-bad-primary.img
         printf 'XXXX' | dd of=gpt-bad-primary.img bs=1 seek=520 conv=notrunc status=none",
    )?;
    for n in ["dos", "gpt", "gpt-bad-primary"] {
        s.image("partitions", n, &s.path(&format!("{n}.img")), &[0xff])?;
        s.image(
            "partitions",
            &format!("{n}-nofix"),
            &s.path(&format!("{n}.img")),
            &[0],
        )?;
    }
    Ok(())
}

fn ext4(s: &Seeds) -> Result<()> {
    sample_tree(&s.path("tree"), true)?;
    s.sh(
        "mkfs.ext4 -q -F -b 1024 -N 512 -O ^metadata_csum,^has_journal -E root_owner=0:0 -d tree ext4-1k.img 2M
         mkfs.ext4 -q -F -b 4096 -E root_owner=0:0 -d tree ext4-csum.img 4M
         mkfs.ext4 -q -F -t ext2 -b 1024 -N 512 -E root_owner=0:0 -d tree ext2.img 2M
         mkfs.ext4 -q -F -b 1024 -N 512 -O inline_data,^metadata_csum,^has_journal -E root_owner=0:0 -d tree ext4-inline.img 2M
         mkfs.ext4 -q -F -b 1024 -N 512 -O ^metadata_csum -J size=1 -E root_owner=0:0 -d tree jbd2.img 4M
         mkfs.ext4 -q -F -b 1024 -N 512 -J size=1 -E root_owner=0:0 -d tree jbd2-csum.img 4M
         printf 'crashed-new\\n' > new.blk; truncate -s 1024 new.blk
         for img in jbd2 jbd2-csum; do
           blk=$(debugfs -R 'bmap /etc/hostname 0' $img.img 2>/dev/null)
           ino=$(debugfs -R 'imap /etc/hostname' $img.img 2>/dev/null | awk '/located at block/ {print $4; exit}' | tr -d ,)
           cp $img.img $img-revoke.img
           if [ $img = jbd2-csum ]; then o='jo -c'; else o=jo; fi
           printf '%s\\njw -b %s new.blk\\njc\\n%s\\njw -b %s,%s new.blk\\njc\\n' \"$o\" $blk \"$o\" $((blk+1)) ${ino:-$((blk+2))} | debugfs -w -f - $img.img >/dev/null 2>&1
           printf '%s\\njw -b %s new.blk\\njc\\n%s\\njw -r %s\\njc\\n' \"$o\" $blk \"$o\" $blk | debugfs -w -f - $img-revoke.img >/dev/null 2>&1
         done",
    )?;
    for n in [
        "ext4-1k",
        "ext4-csum",
        "ext2",
        "ext4-inline",
        "jbd2",
        "jbd2-csum",
    ] {
        s.image("ext4", n, &s.path(&format!("{n}.img")), b"")?;
    }
    for n in ["jbd2", "jbd2-csum", "jbd2-revoke", "jbd2-csum-revoke"] {
        s.image("jbd2", n, &s.path(&format!("{n}.img")), b"")?;
        s.image("inspect", n, &s.path(&format!("{n}.img")), b"")?;
    }
    Ok(())
}

fn xfs(s: &Seeds) -> Result<()> {
    let root = s.path("xtree");
    sample_tree(&root, true)?;
    fs::write(s.path("proto-v4"), protofile(&root)?)?;
    // Past ~500 entries a 4 KiB-block directory takes the node form.
    for i in 0..300 {
        fs::write(root.join(format!("many/node-form-{i:04}")), b"")?;
    }
    fs::write(s.path("proto"), protofile(&root)?)?;
    s.sh("truncate -s 16M xfs-v5.img xfs-v4.img
         mkfs.xfs -q -f -p proto xfs-v5.img
         mkfs.xfs -q -f -m crc=0 -i size=256 -n size=8192 -p proto-v4 xfs-v4.img")?;
    for n in ["xfs-v5", "xfs-v4"] {
        s.image("xfs", n, &s.path(&format!("{n}.img")), b"")?;
    }
    Ok(())
}

/// An XFS protofile (mkfs.xfs -p) for `dir`.
fn protofile(dir: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    fn rec(dir: &Path, out: &mut String) -> Result<()> {
        let mut entries: Vec<_> = fs::read_dir(dir)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().to_string();
            let md = fs::symlink_metadata(e.path())?;
            if md.file_type().is_symlink() {
                let t = fs::read_link(e.path())?;
                out.push_str(&format!("{name} l--777 0 0 {}\n", t.display()));
            } else if md.is_dir() {
                out.push_str(&format!("{name} d--{:03o} 0 0\n", md.mode() & 0o777));
                rec(&e.path(), out)?;
                out.push_str("$\n");
            } else {
                out.push_str(&format!("{name} ---644 0 0 {}\n", e.path().display()));
            }
        }
        Ok(())
    }
    let mut out = "/dev/null\n0 0\nd--755 0 0\n".to_string();
    rec(dir, &mut out)?;
    out.push_str("$\n");
    Ok(out)
}

/// LUKS headers by cryptsetup itself, with KDF costs under the fuzz target's caps (PBKDF2,
/// 1000 iterations) and its passphrase "fuzz".
fn luks(s: &Seeds) -> Result<()> {
    s.sh("printf fuzz > luks.key
         truncate -s 2M luks2.img luks2-4k.img
         o='--batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --luks2-metadata-size 16k --luks2-keyslots-size 512k --key-file luks.key'
         cryptsetup luksFormat $o --sector-size 512 luks2.img
         cryptsetup luksFormat $o --sector-size 4096 --key-size 256 luks2-4k.img
         truncate -s 4M luks1.img
         cryptsetup luksFormat --batch-mode --type luks1 --pbkdf-force-iterations 1000 --key-file luks.key luks1.img")?;
    for n in ["luks2", "luks2-4k", "luks1"] {
        s.image("luks", n, &s.path(&format!("{n}.img")), b"")?;
    }
    Ok(())
}

fn fat(s: &Seeds) -> Result<()> {
    sample_tree(&s.path("ftree"), false)?;
    tree(
        &s.path("ftree"),
        &[
            ("EFI/BOOT/BOOTX64.EFI", b"MZ"),
            ("EFI/debian/grub.cfg", b"configfile x\n"),
        ],
    )?;
    s.sh("mkfs.vfat -C fat12.img 1440 >/dev/null
         mkfs.vfat -F 16 -C fat16.img 16384 >/dev/null
         mkfs.vfat -F 32 -s 1 -C fat32.img 40000 >/dev/null
         for f in fat12 fat16 fat32; do MTOOLS_SKIP_CHECK=1 mcopy -s -i $f.img ftree/* ::/; done")?;
    for n in ["fat12", "fat16", "fat32"] {
        s.image("fat", n, &s.path(&format!("{n}.img")), b"")?;
    }
    Ok(())
}

fn ntfs(s: &Seeds) -> Result<()> {
    s.sh("truncate -s 2M ntfs.img
         mkntfs -F -Q -q -L FUZZ ntfs.img >/dev/null 2>&1
         printf 'hello ntfs\\n' > small.txt
         seq 1 5000 > big.bin
         ntfscp -q ntfs.img small.txt small.txt >/dev/null 2>&1
         ntfscp -q ntfs.img big.bin 'A Long Name With Spaces.bin' >/dev/null 2>&1")?;
    s.image("ntfs", "mkntfs", &s.path("ntfs.img"), b"")
}

fn iso(s: &Seeds) -> Result<()> {
    let root = s.path("itree");
    let mut files: Vec<(String, Vec<u8>)> = vec![];
    for (drv, base) in [
        ("viostor", "viostor"),
        ("NetKVM", "netkvm"),
        ("vioscsi", "vioscsi"),
    ] {
        for os in ["w10", "2k8R2", "2k22"] {
            for arch in ["amd64", "x86"] {
                for ext in ["sys", "inf", "cat"] {
                    files.push((
                        format!("{drv}/{os}/{arch}/{base}.{ext}"),
                        format!("{base} {os} {arch} {ext}\r\n").into_bytes(),
                    ));
                }
            }
        }
    }
    files.push((
        "Balloon/w10/amd64/a-rather-long-file-name-that-plain-iso9660-cannot-hold.txt".into(),
        b"long".to_vec(),
    ));
    files.push((
        "Balloon/w10/amd64/blnsvr.exe".into(),
        (0..70_000u32).map(|i| i as u8).collect(),
    ));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    tree(&root, &refs)?;
    s.sh(
        "xorriso -as mkisofs -quiet -J -R -V virtio-win -o rr-joliet.iso itree 2>/dev/null
         xorriso -rockridge off -as mkisofs -quiet -J -V virtio-win -o joliet.iso itree 2>/dev/null
         xorriso -rockridge off -as mkisofs -quiet -V virtio-win -o plain.iso itree 2>/dev/null",
    )?;
    for n in ["rr-joliet", "joliet", "plain"] {
        s.image("iso", n, &s.path(&format!("{n}.iso")), b"")?;
    }
    Ok(())
}

fn initramfs(s: &Seeds) -> Result<()> {
    let kv = "6.1.0-13-amd64";
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 97) as u8).collect();
    let p = |rel: &str| format!("usr/lib/modules/{kv}/{rel}");
    let files: Vec<(String, Vec<u8>)> = vec![
        ("conf/modules".into(), b"virtio_blk\n".to_vec()),
        (
            "etc/modules-load.d/virtio.conf".into(),
            b"virtio_pci\n".to_vec(),
        ),
        (
            "etc/cmdline.d/01-root.conf".into(),
            b"root=UUID=x\n".to_vec(),
        ),
        (
            p("kernel/drivers/block/virtio_blk.ko.xz"),
            b"\xfd7zXZ\0".to_vec(),
        ),
        (
            p("kernel/drivers/scsi/virtio_scsi.ko.zst"),
            b"(\xb5/\xfd".to_vec(),
        ),
        (
            p("modules.dep"),
            b"kernel/drivers/block/virtio_blk.ko.xz:\n".to_vec(),
        ),
        ("usr/bin/busybox".into(), big),
        ("@bin".into(), b"usr/bin".to_vec()),
    ];
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    tree(&s.path("rtree"), &refs)?;
    tree(
        &s.path("early"),
        &[("kernel/x86/microcode/GenuineIntel.bin", b"microcode")],
    )?;
    s.sh(
        "(cd rtree && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > main.cpio
         (cd early && find . | cpio -o -H newc --quiet) > early.cpio
         gzip -n -9 -c main.cpio > gzip.img
         xz --check=crc32 -c main.cpio > xz.img
         xz --format=lzma -c main.cpio > lzma.img
         zstd -q -c main.cpio > zstd.img
         bzip2 -c main.cpio > bzip2.img
         lz4 -l -q -c main.cpio > lz4.img
         cat early.cpio zstd.img > early-zstd.img
         cat early.cpio xz.img main.cpio > early-xz-tail.img",
    )?;
    for n in [
        "gzip",
        "xz",
        "lzma",
        "zstd",
        "bzip2",
        "lz4",
        "early-zstd",
        "early-xz-tail",
    ] {
        s.put("initramfs", n, &fs::read(s.path(&format!("{n}.img")))?)?;
    }
    s.put(
        "initramfs_packed",
        "cpio-gzip",
        &[&[1u8][..], &fs::read(s.path("main.cpio"))?].concat(),
    )?;
    Ok(())
}

fn hives(s: &Seeds) -> Result<()> {
    let mini = crate::repo_root().join("fixtures/images/windows-mini");
    let trouble = crate::repo_root().join("fixtures/images/windows/trouble.py");
    let reg = |keys: &[(&str, &str)]| {
        let mut r = "Windows Registry Editor Version 5.00\r\n".to_string();
        for (k, v) in keys {
            r += &format!("\r\n[HKEY_LOCAL_MACHINE\\{k}]\r\n{v}");
        }
        r
    };
    let (mgr, ldr) = (
        "BCD\\Objects\\{9dea862c-5cdd-4e70-acc1-f32b344d4795}",
        "BCD\\Objects\\{3e5b1c2a-0000-4000-8000-000000000001}",
    );
    let el = |v: &str| format!("\"Element\"=\"{v}\"\r\n");
    let bcd = reg(&[
        ("BCD\\Objects", ""),
        (mgr, ""),
        (&format!("{mgr}\\Elements"), ""),
        (
            &format!("{mgr}\\Elements\\23000003"),
            &el("{3e5b1c2a-0000-4000-8000-000000000001}"),
        ),
        (ldr, ""),
        (&format!("{ldr}\\Elements"), ""),
        (&format!("{ldr}\\Elements\\12000004"), &el("Windows Server")),
        (
            &format!("{ldr}\\Elements\\12000002"),
            &el("\\\\Windows\\\\system32\\\\winload.exe"),
        ),
    ]);
    fs::write(s.path("bcd.reg"), bcd)?;
    let delta = reg(&[
        ("SYSTEM\\ControlSet001\\Services", ""),
        (
            "SYSTEM\\ControlSet001\\Services\\viostor",
            "\"Start\"=dword:00000000\r\n\"ImagePath\"=\"System32\\\\drivers\\\\viostor.sys\"\r\n",
        ),
    ]);
    fs::write(s.path("delta.reg"), delta)?;
    s.sh(&format!(
        "python3 {m}/mkhive.py SOFTWARE 'CMI-CreateHive{{199DAFC2-6F16-4946-BF90-5A3FC3A60902}}'
         hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\\SOFTWARE' SOFTWARE {m}/software.reg
         python3 {m}/mkhive.py SYSTEM 'CMI-CreateHive{{2A7FB991-7BBE-4F9D-B91E-7CB51D4737F5}}'
         hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\\SYSTEM' SYSTEM {m}/system.reg
         python3 {m}/mkhive.py BCD 'CMI-CreateHive{{2A7FB991-7BBE-4F9D-B91E-7CB51D4737F6}}'
         hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\\BCD' BCD bcd.reg
         cp SYSTEM SYSTEM.new
         hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\\SYSTEM' SYSTEM.new delta.reg
         cp SYSTEM SYSTEM.dirty
         python3 {t} hive-log SYSTEM.dirty SYSTEM.new SYSTEM.LOG1",
        m = mini.display(),
        t = trouble.display()
    ))?;
    let read = |n: &str| fs::read(s.path(n));
    for n in ["SOFTWARE", "SYSTEM"] {
        s.put("hive", n, &[&[0xffu8][..], &read(n)?].concat())?;
    }
    s.put("bcd", "hivex", &[&[0xffu8][..], &read("BCD")?].concat())?;
    let (hive, log) = (read("SYSTEM.dirty")?, read("SYSTEM.LOG1")?);
    s.put(
        "hivelog",
        "trouble-new-log",
        &hivelog_input(&hive, &log, &[]),
    )?;
    s.put(
        "hivelog",
        "trouble-new-log2",
        &hivelog_input(&hive, &[], &log),
    )?;
    // Real dirty hives and their logs (a developer machine's ../shared/winlogs, see its README).
    let real = crate::repo_root().join("../shared/winlogs");
    for name in [
        "yarp-NewDirtyHive1",
        "yarp-NewDirtyHive2",
        "yarp-OldDirtyHive",
        "regipy-NTUSER.DAT",
    ] {
        let p = |suf: &str| fs::read(real.join(format!("{name}{suf}")));
        if let (Ok(h), Ok(l1), Ok(l2)) = (p(""), p(".LOG1"), p(".LOG2")) {
            s.put("hivelog", name, &hivelog_input(&h, &l1, &l2))?;
        }
    }
    Ok(())
}

/// rpm's SQLite database as rpm 4.18 writes it (4 KiB pages, index tables, a header on overflow
/// pages) from the fedora39 phony guest's specs; where sqlite3 is installed, the same database
/// rewritten with 1 KiB pages (deeper trees, every header on overflow pages).
fn rpmdb(s: &Seeds) -> Result<()> {
    let specs = crate::repo_root().join("fixtures/images/phony/fedora39/rpms");
    s.sh(&format!(
        "mkdir -p db
         for f in {d}/*.spec; do
           SOURCE_DATE_EPOCH=1700000000 rpmbuild -bb --quiet --define \"_topdir $PWD/rpm\" \"$f\"
         done
         rpm --dbpath \"$PWD/db\" --define '_db_backend sqlite' -i --justdb --nodeps --noscripts \\
           --ignorearch --ignoreos rpm/RPMS/noarch/*.rpm 2>/dev/null
         if command -v sqlite3 >/dev/null; then
           cp db/rpmdb.sqlite small.sqlite
           sqlite3 small.sqlite 'PRAGMA journal_mode=DELETE; PRAGMA page_size=1024; VACUUM;' >/dev/null
         fi",
        d = specs.display()
    ))?;
    s.put("rpmdb", "rpm-4096", &fs::read(s.path("db/rpmdb.sqlite"))?)?;
    if let Ok(small) = fs::read(s.path("small.sqlite")) {
        s.put("rpmdb", "sqlite3-1024", &small)?;
    }
    Ok(())
}

/// The `hivelog` target's input: control byte (all fix-ups), u32 LE hive and LOG1 lengths,
/// hive, LOG1, LOG2.
fn hivelog_input(hive: &[u8], log1: &[u8], log2: &[u8]) -> Vec<u8> {
    let mut v = vec![0xff];
    v.extend((hive.len() as u32).to_le_bytes());
    v.extend((log1.len() as u32).to_le_bytes());
    v.extend_from_slice(hive);
    v.extend_from_slice(log1);
    v.extend_from_slice(log2);
    v
}

/// Config files from the skeleton recipes, each at its piece of the text target that reads it
/// (pieces are NUL-separated, see `revirt::fuzzing`); each recipe's whole root as a
/// `linux_tree` seed; and small whole-disk guests for `inspect`.
fn recipes_and_disks(s: &Seeds) -> Result<()> {
    // (path suffix or fragment, target, piece index)
    let rules: &[(&str, &str, usize)] = &[
        ("/etc/network/interfaces", "ifupdown", 0),
        ("/etc/network/interfaces.d/", "ifupdown", 1),
        ("/etc/netplan/", "netplan", 0),
        ("/NetworkManager/system-connections/", "keyfile", 0),
        ("/etc/sysconfig/network-scripts/ifcfg-", "ifcfg", 0),
        ("/etc/sysconfig/network-scripts/route-", "ifcfg", 2),
        ("/etc/sysconfig/network/ifcfg-", "wicked", 0),
        ("/etc/sysconfig/network/routes", "wicked", 2),
        ("/etc/sysconfig/network/config", "wicked", 3),
        (".network", "networkd", 0),
        (".link", "networkd", 1),
        ("/udev/rules.d/", "udev", 0),
        ("/etc/default/grub", "grub", 2),
        ("/etc/sysconfig/bootloader", "grub", 5),
        ("fstab", "fstab", 0),
        ("crypttab", "fstab", 1),
    ];
    let skel = crate::repo_root().join("fixtures/images/skeletons");
    let mut recipes: Vec<PathBuf> = fs::read_dir(&skel)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("root").is_dir())
        .collect();
    recipes.sort();
    for r in &recipes {
        let name = r
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let root = r.join("root");
        let mut files = vec![];
        collect(&root, &mut files);
        files.sort();
        let mut records = vec![];
        for f in &files {
            let rel = f
                .strip_prefix(&root)
                .unwrap_or(f)
                .to_string_lossy()
                .to_string();
            let data = fs::read(f)?;
            let guest = format!("/{rel}");
            for (frag, target, piece) in rules {
                if guest.contains(frag) {
                    let file = format!("{name}-{}", rel.replace('/', "_"));
                    s.put(target, &file, &[vec![0u8; *piece], data.clone()].concat())?;
                }
            }
            records.extend(rel.as_bytes());
            records.push(0);
            records.extend((data.len() as u32).to_le_bytes());
            records.extend(data);
        }
        s.put("linux_tree", &name, &records)?;
    }
    guest_disks(s)
}

/// Small Linux guests as whole raw disks: MBR with an ext4 root and a FAT ESP; GPT with an
/// ESP and an XFS root.
fn guest_disks(s: &Seeds) -> Result<()> {
    let kv = "6.1.0-13-amd64";
    let mut bz = vec![0u8; 0x300];
    bz[0x202..0x206].copy_from_slice(b"HdrS");
    bz[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
    bz.extend_from_slice(format!("{kv} (debian-kernel@lists.debian.org) #1 SMP\0").as_bytes());
    let uuid = "0b1f7a40-6c2d-4c3a-9f1e-1d2c3b4a5f60";
    let grub = format!(
        "set default=0\nmenuentry 'Debian' {{\n  linux /boot/vmlinuz-{kv} root=/dev/sda1 ro quiet\n  initrd /boot/initrd.img-{kv}\n}}\n"
    );
    let fstab = format!("UUID={uuid} / ext4 errors=remount-ro 0 1\nUUID=ABCD-1234 /boot/efi vfat umask=0077 0 1\n/dev/sdb1 /data xfs defaults 0 2\n");
    let files: Vec<(String, Vec<u8>)> = vec![
        (
            "etc/os-release".into(),
            b"NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n".to_vec(),
        ),
        ("etc/hostname".into(), b"deb12\n".to_vec()),
        ("etc/fstab".into(), fstab.into_bytes()),
        (
            "etc/default/grub".into(),
            b"GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n".to_vec(),
        ),
        (
            "etc/network/interfaces".into(),
            b"auto ens192\niface ens192 inet static\n address 10.0.0.5/24\n gateway 10.0.0.1\n"
                .to_vec(),
        ),
        (
            "etc/netplan/01.yaml".into(),
            b"network:\n  ethernets:\n    ens3:\n      dhcp4: true\n".to_vec(),
        ),
        ("boot/grub/grub.cfg".into(), grub.into_bytes()),
        (format!("boot/vmlinuz-{kv}"), bz),
        (
            format!("boot/initrd.img-{kv}"),
            fs::read(s.path("gzip.img")).unwrap_or_default(),
        ),
        (
            format!("lib/modules/{kv}/modules.dep"),
            b"kernel/drivers/block/virtio_blk.ko:\n".to_vec(),
        ),
        (
            format!("lib/modules/{kv}/kernel/drivers/block/virtio_blk.ko"),
            b"\x7fELF".to_vec(),
        ),
        (
            "usr/bin/bash".into(),
            b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec(),
        ),
        ("usr/sbin/update-initramfs".into(), b"#!/bin/sh\n".to_vec()),
        ("@bin".into(), b"usr/bin".to_vec()),
    ];
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    tree(&s.path("guest"), &refs)?;
    tree(
        &s.path("esp"),
        &[
            ("EFI/debian/grubx64.efi", b"MZ"),
            ("EFI/debian/grub.cfg", b"configfile $prefix/grub.cfg\n"),
        ],
    )?;
    fs::write(s.path("gproto"), protofile(&s.path("guest"))?)?;
    s.sh(&format!(
        "mkfs.ext4 -q -F -b 1024 -O ^metadata_csum -J size=1 -U {uuid} -E root_owner=0:0 -d guest root.img 6M
         mkfs.vfat -C -i ABCD1234 esp.img 1024 >/dev/null
         MTOOLS_SKIP_CHECK=1 mcopy -s -i esp.img esp/* ::/
         truncate -s 16M xroot.img; mkfs.xfs -q -f -p gproto xroot.img
         truncate -s 8M mbr.img; truncate -s 20M gpt.img
         printf 'label: dos\nstart=2048, size=12288, type=83, bootable\nstart=14336, size=2048, type=ef\n' | sfdisk -q mbr.img
         dd if=root.img of=mbr.img bs=512 seek=2048 conv=notrunc,sparse status=none
         dd if=esp.img of=mbr.img bs=512 seek=14336 conv=notrunc,sparse status=none
         printf 'label: gpt\nstart=2048, size=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=4096, size=32768, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' | sfdisk -q gpt.img
         dd if=esp.img of=gpt.img bs=512 seek=2048 conv=notrunc,sparse status=none
         dd if=xroot.img of=gpt.img bs=512 seek=4096 conv=notrunc,sparse status=none"
    ))?;
    s.image("inspect", "mbr-ext4-esp", &s.path("mbr.img"), b"")?;
    s.image("inspect", "gpt-esp-xfs", &s.path("gpt.img"), b"")?;
    s.image("inspect", "ext4-whole-disk", &s.path("root.img"), b"")?;
    s.image("ext4", "guest-root", &s.path("root.img"), b"")?;
    s.image("fat", "esp", &s.path("esp.img"), b"")?;
    s.image("xfs", "guest-root", &s.path("xroot.img"), b"")?;
    Ok(())
}
