//! revirt binary: parse, dispatch, map errors onto documented exit codes.
mod cli;

use anyhow::Result;
use clap::Parser;
use cli::{Cli, Cmd, ProgressMode};
use revirt::inspect::InspectError;
use std::io::IsTerminal;

/// Exit codes (README "Exit codes").
mod exit {
    pub const OK: i32 = 0;
    pub const INTERNAL: i32 = 1;
    pub const UNREADABLE_IMAGE: i32 = 3;
    pub const NO_OS: i32 = 4;
    pub const UNSUPPORTED_LAYOUT: i32 = 5;
    /// Outside what revirt repairs safely; nothing written.
    pub const REFUSED: i32 = 6;
    /// Not ready: verify finds problems (verify; repair and worker after writing).
    pub const NOT_READY: i32 = 7;
    /// Bad command line or job: found before any disk is read.
    pub const BAD_INPUT: i32 = 2;
    /// Another revirt run holds one of the disks.
    pub const LOCKED: i32 = 8;
    /// Keys were given for an encrypted volume and none of them opens it.
    pub const WRONG_KEY: i32 = 9;
}

fn main() {
    // The caged native-write helper (revirt's own child): nothing else runs before its cage.
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(std::ffi::OsStr::new("__native-helper")) {
        let r = match args.next().as_deref().and_then(|a| a.to_str()) {
            Some("ext") => revirt::native::helper::run(revirt::native::helper::Kind::Ext),
            Some("ntfs") => revirt::native::helper::run(revirt::native::helper::Kind::Ntfs),
            Some("hive") => revirt::native::hive::run_helper(args.next()),
            Some("selftest") => revirt::native::helper::run_selftest(args.next()),
            _ => Err(anyhow::anyhow!(
                "__native-helper: expected ext, ntfs, hive or selftest"
            )),
        };
        if let Err(e) = r {
            eprintln!("revirt helper: {e:#}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REVIRT_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("revirt: error: {}", message(&e));
            exit_code(&e)
        }
    };
    std::process::exit(code);
}

/// The error and its causes, skipping a cause its parent already printed (thiserror messages
/// often embed their source).
fn message(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for c in e.chain().skip(1) {
        let c = c.to_string();
        if !out.contains(&c) {
            out = format!("{out}: {c}");
        }
    }
    out
}

fn exit_code(e: &anyhow::Error) -> i32 {
    if let Some(ie) = e.downcast_ref::<InspectError>() {
        return match ie {
            InspectError::Image(_) => exit::UNREADABLE_IMAGE,
            InspectError::Layout(_) => exit::UNSUPPORTED_LAYOUT,
            InspectError::NoOs(_) => exit::NO_OS,
            InspectError::WrongKey { .. } => exit::WRONG_KEY,
        };
    }
    if e.downcast_ref::<revirt::error::ImageError>().is_some() {
        return exit::UNREADABLE_IMAGE;
    }
    if e.chain()
        .any(|c| c.is::<revirt::drivers::BadSource>() || c.is::<revirt::repair::BadRequest>())
    {
        return exit::BAD_INPUT;
    }
    if e.chain()
        .any(|c| c.is::<revirt::lock::Locked>() || c.is::<revirt::pending::Interrupted>())
    {
        return exit::LOCKED;
    }
    if e.chain().any(|c| c.is::<revirt::error::ImageError>()) {
        return exit::UNREADABLE_IMAGE;
    }
    if e.chain().any(|c| c.is::<revirt::error::Refused>()) {
        return exit::REFUSED;
    }
    exit::INTERNAL
}

/// The orchestrator's job: disks, overlay outputs, options, report path.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Job {
    disks: Vec<std::path::PathBuf>,
    outputs: Vec<std::path::PathBuf>,
    #[serde(default)]
    report: Option<std::path::PathBuf>,
    #[serde(default)]
    options: JobOptions,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct JobOptions {
    network: Option<String>,
    block: Option<String>,
    initramfs: Option<String>,
    serial_console: Option<bool>,
    /// Windows: the virtio-win folder or ISO (else $VIRTIO_WIN).
    virtio_win: Option<std::path::PathBuf>,
    /// Folders whose files the disks' backing chains may open (see --allow-backing-dir).
    allow_backing_dirs: Vec<std::path::PathBuf>,
    /// auto (default), native or appliance (see repair --writer).
    writer: Option<String>,
    /// Keys for encrypted volumes: "SELECTOR:file:FILE" only (see --key).
    keys: Vec<String>,
}

fn parse_enum<T: clap::ValueEnum>(field: &str, v: &Option<String>) -> Result<Option<T>, String> {
    match v {
        None => Ok(None),
        Some(s) => T::from_str(s, false)
            .map(Some)
            .map_err(|_| format!("job: options.{field}: unknown value {s:?}")),
    }
}

fn worker(c: &cli::WorkerCmd) -> Result<i32> {
    let event = |v: serde_json::Value| eprintln!("{v}");
    let text = if c.job.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else {
        match std::fs::read_to_string(&c.job) {
            Ok(s) => s,
            Err(e) => {
                event(
                    serde_json::json!({"event": "error", "kind": "bad-input", "message": format!("{}: {e}", c.job.display())}),
                );
                return Ok(exit::BAD_INPUT);
            }
        }
    };
    let bad = |msg: String| {
        event(serde_json::json!({"event": "error", "kind": "bad-input", "message": msg}));
        Ok(exit::BAD_INPUT)
    };
    let job: Job = match serde_json::from_str(&text) {
        Ok(j) => j,
        Err(e) => return bad(format!("job: {e}")),
    };
    if job.disks.is_empty() {
        return bad("job: no disks".into());
    }
    if job.outputs.len() != job.disks.len() {
        return bad(format!(
            "job: {} disks but {} outputs (one overlay per disk)",
            job.disks.len(),
            job.outputs.len()
        ));
    }
    let mut opts = revirt::plan::PlanOptions {
        serial_console: true,
        ..Default::default()
    };
    match (
        parse_enum::<revirt::plan::NetworkMode>("network", &job.options.network),
        parse_enum::<revirt::plan::BlockBus>("block", &job.options.block),
        parse_enum::<revirt::plan::InitramfsMode>("initramfs", &job.options.initramfs),
    ) {
        (Ok(n), Ok(b), Ok(i)) => {
            opts.network = n.unwrap_or_default();
            opts.block = b.unwrap_or_default();
            opts.initramfs = i.unwrap_or_default();
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return bad(e),
    }
    if let Some(sc) = job.options.serial_console {
        opts.serial_console = sc;
    }
    opts.virtio_win = job.options.virtio_win.clone();
    let policy = match revirt::image::OpenPolicy::allowing(&job.options.allow_backing_dirs) {
        Ok(p) => p,
        Err(e) => return bad(format!("job: options.allow_backing_dirs: {e}")),
    };
    let mut keys = vec![];
    for k in &job.options.keys {
        match revirt::luks::keys::Key::parse(k, true) {
            Ok(k) => keys.push(k),
            Err(e) => return bad(format!("job: options.keys: {e}")),
        }
    }
    let policy = policy.with_keys(keys);
    let writer = match parse_enum::<revirt::apply::WriterPref>("writer", &job.options.writer) {
        Ok(w) => w.unwrap_or_default(),
        Err(e) => return bad(e),
    };
    let req = revirt::repair::RepairRequest {
        inputs: job.disks.clone(),
        outputs: job.outputs.clone(),
        opts,
        policy,
        writer,
    };
    if let Err(e) = req.validate() {
        return bad(format!("job: {e}"));
    }
    let mut progress = |phase: &str, msg: &str| {
        event(serde_json::json!({"event": "phase", "phase": phase, "message": msg}))
    };
    let report = match revirt::repair::repair(&req, &mut progress) {
        Ok(r) => r,
        Err(e) => {
            // The orchestrator reads events, not stderr prose: say what failed as one.
            let kind = match exit_code(&e) {
                exit::BAD_INPUT => "bad-input",
                exit::UNREADABLE_IMAGE => "unreadable-image",
                exit::NO_OS => "no-os",
                exit::UNSUPPORTED_LAYOUT => "unsupported-layout",
                exit::LOCKED => "locked",
                _ => "internal",
            };
            event(serde_json::json!({"event": "error", "kind": kind, "message": message(&e)}));
            return Err(e);
        }
    };
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(p) = &job.report {
        std::fs::write(p, &text)
            .map_err(|e| anyhow::anyhow!("writing report {}: {e}", p.display()))?;
    }
    println!("{text}");
    event(serde_json::json!({"event": "done", "readiness": report.readiness}));
    Ok(readiness_code(report.readiness))
}

/// Exit code of a repair run (repair and worker share it).
fn readiness_code(r: revirt::repair::Readiness) -> i32 {
    match r {
        revirt::repair::Readiness::Ready => exit::OK,
        revirt::repair::Readiness::Refused => exit::REFUSED,
        revirt::repair::Readiness::NotReady => exit::NOT_READY,
    }
}

/// The keys of `--key` and `--keys-from-stdin` (the worker takes its own from the job).
fn keys(cli: &Cli) -> Result<Vec<revirt::luks::keys::Key>, String> {
    if matches!(cli.cmd, Cmd::Worker(_)) && (!cli.key.is_empty() || cli.keys_from_stdin) {
        return Err(
            "worker: keys come from the job (options.keys, key files only), not --key".into(),
        );
    }
    let mut out = vec![];
    for k in &cli.key {
        out.push(revirt::luks::keys::Key::parse(k, false).map_err(|e| e.to_string())?);
    }
    if cli.keys_from_stdin {
        let stdin = std::io::stdin().lock();
        out.extend(
            revirt::luks::keys::from_reader(stdin)
                .map_err(|e| format!("--keys-from-stdin: {e}"))?,
        );
    }
    Ok(out)
}

fn run(cli: Cli) -> Result<i32> {
    let policy = match revirt::image::OpenPolicy::allowing(&cli.allow_backing_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("revirt: error: --allow-backing-dir: {e}");
            return Ok(exit::BAD_INPUT);
        }
    };
    let policy = match keys(&cli) {
        Ok(k) => policy.with_keys(k),
        Err(e) => {
            eprintln!("revirt: error: {e}");
            return Ok(exit::BAD_INPUT);
        }
    };
    // A disk whose in-place commit was interrupted is read only after a writer finishes it.
    match &cli.cmd {
        Cmd::Inspect(cli::InspectCmd { images, .. })
        | Cmd::Plan(cli::PlanCmd { images, .. })
        | Cmd::Verify(cli::VerifyCmd { images, .. }) => revirt::pending::check_readable(images)?,
        _ => {}
    }
    match cli.cmd {
        Cmd::Inspect(c) => {
            let guest = revirt::recover::inspect_recovered(&c.images, &policy)?;
            let ins = &guest.inspection;
            if c.json {
                println!("{}", serde_json::to_string_pretty(ins)?);
            } else if c.xml {
                print!("{}", revirt::inspect::xml::inspector_xml(&guest)?);
            } else {
                print!("{}", revirt::report::summary(ins));
            }
            for w in &ins.warnings {
                eprintln!("revirt: warning: {w}");
            }
            revirt::repair::no_os_is_an_error(&guest, &c.images)?;
            Ok(exit::OK)
        }
        Cmd::Plan(c) => {
            let (_g, plan) =
                revirt::repair::plan_only(&c.images, &c.target.plan_options(), &policy)?;
            match plan {
                Err(why) => {
                    eprintln!("revirt: refused: {why}");
                    Ok(exit::REFUSED)
                }
                Ok(p) => {
                    if c.json {
                        println!("{}", serde_json::to_string_pretty(&p)?);
                    } else {
                        print!("{}", revirt::report::plan_summary(&p));
                    }
                    Ok(if p.refusals.is_empty() {
                        exit::OK
                    } else {
                        exit::REFUSED
                    })
                }
            }
        }
        Cmd::Verify(c) => {
            let g = revirt::recover::inspect_recovered(&c.images, &policy)?;
            revirt::repair::no_os_is_an_error(&g, &c.images)?;
            let os = match revirt::repair::choose_os(&g) {
                Ok(os) => os,
                Err(why) => {
                    eprintln!("revirt: refused: {why}");
                    return Ok(exit::REFUSED);
                }
            };
            let v = revirt::repair::verify_guest(&g, os, &c.target.plan_options())?;
            if c.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", revirt::report::verdict_summary(&v));
            }
            Ok(if v.ready { exit::OK } else { exit::NOT_READY })
        }
        Cmd::Repair(c) => {
            let req = revirt::repair::RepairRequest {
                inputs: c.images.clone(),
                outputs: c.outputs.clone(),
                opts: c.target.plan_options(),
                policy,
                writer: c.writer,
            };
            let json_progress = c.progress == ProgressMode::Json;
            let tty = c.progress == ProgressMode::Auto && std::io::stderr().is_terminal();
            let mut progress = |phase: &str, msg: &str| {
                if json_progress {
                    eprintln!(
                        "{}",
                        serde_json::json!({"event": "phase", "phase": phase, "message": msg})
                    );
                } else if tty {
                    eprintln!("revirt: {phase}: {msg}");
                }
            };
            let report = revirt::repair::repair(&req, &mut progress)?;
            let text = serde_json::to_string_pretty(&report)?;
            if let Some(p) = &c.report {
                std::fs::write(p, &text)
                    .map_err(|e| anyhow::anyhow!("writing report {}: {e}", p.display()))?;
            }
            if c.json {
                println!("{text}");
            } else {
                print!("{}", revirt::report::repair_summary(&report));
            }
            Ok(readiness_code(report.readiness))
        }
        Cmd::Worker(c) => worker(&c),
        Cmd::Undo(c) => {
            let _locks = revirt::lock::lock_disks(&c.images)?;
            if let Some(done) = revirt::pending::settle(&c.images, &policy)? {
                eprintln!("revirt: {done}");
            }
            let g = revirt::inspect::inspect_with(&c.images, &policy)?;
            revirt::repair::no_os_is_an_error(&g, &c.images)?;
            let os = match revirt::repair::choose_os(&g) {
                Ok(os) => os,
                Err(why) => {
                    eprintln!("revirt: refused: {why}");
                    return Ok(exit::REFUSED);
                }
            };
            let (root, vfs) = match (&os.linux, &os.windows) {
                (Some(l), _) => (
                    revirt::apply::UndoRoot::Linux(l),
                    revirt::inspect::linux::guest_vfs(&g.volumes, l)?,
                ),
                (None, Some(_)) => (
                    revirt::apply::UndoRoot::Windows(&os.root.device),
                    revirt::repair::root_vfs(&g, os)?,
                ),
                _ => {
                    eprintln!(
                        "revirt: refused: undo of {} guests is not supported",
                        os.kind
                    );
                    return Ok(exit::REFUSED);
                }
            };
            let Some(journal) = revirt::apply::latest_journal(&vfs, &root)? else {
                eprintln!(
                    "revirt: nothing to undo: no journal under {}",
                    root.backup_root()
                );
                return Ok(exit::REFUSED);
            };
            drop(vfs);
            let n = revirt::apply::undo(&g.images(), &root, &journal)?;
            println!("undid {n} change(s) of run {}", journal.run_id);
            Ok(exit::OK)
        }
        Cmd::Convert(c) => {
            let fmt = match c.to {
                cli::TargetFormat::Qcow2 => "qcow2",
                cli::TargetFormat::Raw => "raw",
            };
            let mode = match c.progress {
                ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Auto,
                ProgressMode::Auto => ProgressMode::None,
                m => m,
            };
            let bar = (mode == ProgressMode::Auto).then(|| {
                let b = indicatif::ProgressBar::new(1000);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg} [{bar:40}] {percent:>3}% {elapsed}",
                    )
                    .unwrap(),
                );
                b.set_message("converting");
                b
            });
            let mut last = -1.0;
            let mut cb = |p: f64| match mode {
                ProgressMode::Json if p - last >= 1.0 || p >= 100.0 => {
                    last = p;
                    eprintln!(
                        "{}",
                        serde_json::json!({"event": "progress", "phase": "convert", "percent": p})
                    );
                }
                ProgressMode::Auto => {
                    if let Some(b) = &bar {
                        b.set_position((p * 10.0) as u64);
                    }
                }
                _ => {}
            };
            revirt::convert::convert(&c.src, &c.dst, fmt, c.force, &mut cb)?;
            if let Some(b) = bar {
                b.finish_with_message("converted");
            }
            if mode == ProgressMode::Json {
                eprintln!(
                    "{}",
                    serde_json::json!({"event": "done", "phase": "convert", "output": c.dst})
                );
            }
            Ok(exit::OK)
        }
    }
}
