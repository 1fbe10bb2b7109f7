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
    /// repair: outside what revirt repairs safely; nothing written.
    pub const REFUSED: i32 = 6;
    /// repair: changes made, verify still fails.
    pub const REPAIRED_NOT_READY: i32 = 7;
    /// verify: not ready.
    pub const NOT_READY: i32 = 1;
}

fn main() {
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
            eprintln!("revirt: error: {e:#}");
            exit_code(&e)
        }
    };
    std::process::exit(code);
}

fn exit_code(e: &anyhow::Error) -> i32 {
    if let Some(ie) = e.downcast_ref::<InspectError>() {
        return match ie {
            InspectError::Image(_) => exit::UNREADABLE_IMAGE,
            InspectError::Layout(_) => exit::UNSUPPORTED_LAYOUT,
            InspectError::NoOs(_) => exit::NO_OS,
        };
    }
    if e.downcast_ref::<revirt::error::ImageError>().is_some() {
        return exit::UNREADABLE_IMAGE;
    }
    exit::INTERNAL
}

fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Inspect(c) => {
            let guest = revirt::inspect::inspect(&c.images)?;
            let ins = &guest.inspection;
            if c.json {
                println!("{}", serde_json::to_string_pretty(ins)?);
            } else {
                print!("{}", revirt::report::summary(ins));
            }
            for w in &ins.warnings {
                eprintln!("revirt: warning: {w}");
            }
            if ins.operating_systems.is_empty() {
                let names: Vec<String> = c.images.iter().map(|p| p.display().to_string()).collect();
                return Err(InspectError::NoOs(names.join(", ")).into());
            }
            Ok(exit::OK)
        }
        Cmd::Plan(c) => {
            let (_g, plan) = revirt::repair::plan_only(&c.images, &c.target.plan_options())?;
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
                    Ok(if p.refusals.is_empty() { exit::OK } else { exit::REFUSED })
                }
            }
        }
        Cmd::Verify(c) => {
            let g = revirt::inspect::inspect(&c.images)?;
            let os = match revirt::repair::choose_os(&g) {
                Ok(os) => os,
                Err(why) => {
                    eprintln!("revirt: refused: {why}");
                    return Ok(exit::REFUSED);
                }
            };
            let v = revirt::verify::verify_linux(os.linux.as_ref().expect("linux"), &g.inspection, &c.target.plan_options());
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
            };
            let json_progress = c.progress == ProgressMode::Json;
            let tty = c.progress == ProgressMode::Auto && std::io::stderr().is_terminal();
            let mut progress = |phase: &str, msg: &str| {
                if json_progress {
                    eprintln!("{}", serde_json::json!({"event": "phase", "phase": phase, "message": msg}));
                } else if tty {
                    eprintln!("revirt: {phase}: {msg}");
                }
            };
            let report = revirt::repair::repair(&req, &mut progress)?;
            let text = serde_json::to_string_pretty(&report)?;
            if let Some(p) = &c.report {
                std::fs::write(p, &text).map_err(|e| anyhow::anyhow!("writing report {}: {e}", p.display()))?;
            }
            if c.json {
                println!("{text}");
            } else {
                print!("{}", revirt::report::repair_summary(&report));
            }
            Ok(match report.readiness {
                revirt::repair::Readiness::Ready => exit::OK,
                revirt::repair::Readiness::Refused => exit::REFUSED,
                revirt::repair::Readiness::NotReady => exit::REPAIRED_NOT_READY,
            })
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
