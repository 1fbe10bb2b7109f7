//! Developer tasks: fixture images, the boot harness, benchmarks, fuzzing.
//!
//! `cargo xtask fixtures [--only NAME]` builds every fixture recipe under fixtures/images/ into the
//! cache (target/fixtures/, or $REVIRT_FIXTURE_CACHE), reusing what is already built and current.
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::Command;

mod bench;
mod boot;
mod fuzz;
mod phony;
mod real;
mod skeleton;
mod windows;

#[derive(Parser)]
#[command(about = "revirt developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build (or reuse cached) fixture images.
    Fixtures {
        /// Only build fixtures whose name contains this string.
        #[arg(long)]
        only: Option<String>,
        /// Which set: skeleton, phony, real, windows or all.
        #[arg(long, default_value = "all")]
        set: String,
    },
    /// Boot an image under qemu and classify the outcome from the serial console.
    Boot(boot::BootArgs),
    /// Fuzz the parsers: seeds, cargo-fuzz build, a run per target (issue #12).
    Fuzz(fuzz::FuzzArgs),
    /// Print wall time and peak RSS of `revirt inspect` on the fixture images.
    Bench {
        /// Only the real (bootable) guests.
        #[arg(long)]
        real_only: bool,
        /// Real guests to repair natively, through the appliance and with virt-v2v-in-place
        /// (0: skip the repair table; virt-v2v-in-place takes minutes per guest under TCG).
        #[arg(long, default_value_t = 1)]
        repair_guests: usize,
        /// Only the repair table.
        #[arg(long)]
        repair_only: bool,
        /// Only the crash table (recovery cost on crash-consistent snapshots).
        #[arg(long)]
        crash_only: bool,
        /// Skip the virt-v2v columns (minutes per guest under TCG).
        #[arg(long)]
        no_v2v: bool,
    },
}

/// Runs a command, failing with its output when it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs `job` over `items` on two workers (the machine has two cores and each fixture build is
/// mostly single-threaded); every failure is collected and reported together under `what`.
pub fn parallel<T: Send>(
    what: &str,
    items: Vec<T>,
    job: impl Fn(T) -> std::result::Result<(), (String, anyhow::Error)> + Sync,
) -> Result<()> {
    let queue = std::sync::Mutex::new(items.into_iter());
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                let Some(item) = next else { break };
                if let Err((name, e)) = job(item) {
                    eprintln!("{what}: {name} failed: {e:#}");
                    if let Ok(mut v) = errors.lock() {
                        v.push(format!("{name}: {e:#}"));
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_default();
    if !errors.is_empty() {
        bail!("{what} fixtures failed to build:\n{}", errors.join("\n"));
    }
    Ok(())
}

/// Root of the repository (xtask lives one level below it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where built fixture images are cached, outside git.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("REVIRT_FIXTURE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/fixtures"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Fixtures { only, set } => {
            if set == "all" || set == "skeleton" {
                skeleton::build_all(only.as_deref())?;
            }
            if set == "all" || set == "phony" {
                phony::build_all(only.as_deref())?;
            }
            if set == "all" || set == "real" {
                real::build_all(only.as_deref())?;
            }
            if set == "all" || set == "windows" {
                windows::build_all(only.as_deref())?;
            }
            Ok(())
        }
        Cmd::Boot(args) => boot::run(args),
        Cmd::Fuzz(args) => fuzz::run_fuzz(args),
        Cmd::Bench {
            real_only,
            repair_guests,
            repair_only,
            crash_only,
            no_v2v,
        } => {
            if crash_only {
                return bench::crash::run();
            }
            if !repair_only {
                bench::run(real_only, !no_v2v)?;
            }
            bench::repair(repair_guests, !no_v2v)?;
            if !repair_only {
                bench::crash::run()?;
            }
            Ok(())
        }
    }
}
