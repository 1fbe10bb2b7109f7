//! Command-line types (clap derive). Doc comments are the help text.
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "revirt",
    version,
    about = "Offline inspection, driver repair and conversion of guest disks for KVM",
    help_expected = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Log more (-v info, -vv debug); logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Trust backing files under DIR (repeatable; env: ':'-separated). By default a backing file
    /// must lie in the folder of the image naming it; absolute names and escapes are refused.
    #[arg(
        long,
        value_name = "DIR",
        global = true,
        env = "REVIRT_ALLOW_BACKING_DIR",
        value_delimiter = ':'
    )]
    pub allow_backing_dir: Vec<PathBuf>,
    /// Key for an encrypted (LUKS) volume, as virt-v2v takes it (repeatable):
    /// SELECTOR:key:PASS or SELECTOR:file:FILE (its first line); SELECTOR is a device
    /// (/dev/sda2), a LUKS UUID, or all. A passphrase in argv is visible to other users of
    /// the host: prefer :file: or --keys-from-stdin. The worker takes key files from its job.
    #[arg(
        long,
        value_name = "SELECTOR:key:PASS|SELECTOR:file:FILE",
        global = true
    )]
    pub key: Vec<String>,
    /// Read passphrases from stdin, one per line, each tried on every encrypted volume.
    #[arg(long, global = true)]
    pub keys_from_stdin: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Inspect the disks of one guest (read-only, no appliance unless needed).
    Inspect(InspectCmd),
    /// Print the repair plan (ordered actions with diffs); writes nothing.
    Plan(PlanCmd),
    /// Repair the guest to boot on virtio with DHCP; verify the result.
    Repair(RepairCmd),
    /// Check statically whether the guest boots on virtio (exit 0 ready, 7 not).
    Verify(VerifyCmd),
    /// Orchestrator entry point: run a repair job (JSON file or - for stdin).
    Worker(WorkerCmd),
    /// Undo the last in-place repair from the journal kept inside the guest.
    Undo(UndoCmd),
    /// Convert a disk image between formats with qemu-img.
    Convert(ConvertCmd),
}

#[derive(clap::Args, Debug)]
pub struct UndoCmd {
    /// Disk images of one guest repaired in place, first disk first.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct WorkerCmd {
    /// Job file (JSON, see README), or - to read it from stdin.
    #[arg(long)]
    pub job: PathBuf,
}

/// Options shared by plan, repair and verify.
#[derive(clap::Args, Debug, Clone)]
pub struct TargetOpts {
    /// Network after repair: DHCP on any NIC, or keep static addresses.
    #[arg(long, value_enum, default_value = "dhcp")]
    pub network: revirt::plan::NetworkMode,
    /// Disk bus the guest will boot from.
    #[arg(long, value_enum, default_value = "virtio-blk")]
    pub block: revirt::plan::BlockBus,
    /// How virtio reaches the initramfs.
    #[arg(long, value_enum, default_value = "auto")]
    pub initramfs: revirt::plan::InitramfsMode,
    /// Do not add console=ttyS0 to the kernel command line.
    #[arg(long)]
    pub no_serial_console: bool,
    /// Windows: virtio-win driver folder or ISO image (default: $VIRTIO_WIN).
    #[arg(long, value_name = "PATH")]
    pub virtio_win: Option<PathBuf>,
}

impl TargetOpts {
    pub fn plan_options(&self) -> revirt::plan::PlanOptions {
        revirt::plan::PlanOptions {
            network: self.network,
            block: self.block,
            initramfs: self.initramfs,
            serial_console: !self.no_serial_console,
            virtio_win: self
                .virtio_win
                .clone()
                .or_else(|| std::env::var_os("VIRTIO_WIN").map(PathBuf::from)),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct PlanCmd {
    /// Disk images of one guest, first disk first.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: TargetOpts,
}

#[derive(clap::Args, Debug)]
pub struct RepairCmd {
    /// Disk images of one guest, first disk first.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// qcow2 overlay to create per input (inputs stay untouched); without it, in place.
    #[arg(long = "output", short = 'o')]
    pub outputs: Vec<PathBuf>,
    /// Write the JSON report here (it is also printed with --json).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Print the JSON report on stdout instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Progress on stderr: a bar on a terminal, or JSON lines.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// How to write: natively (caged libext2fs, no helper VM) where every filesystem the
    /// repair touches allows it, else the appliance (auto); only natively; only the appliance.
    #[arg(long, value_enum, default_value = "auto")]
    pub writer: revirt::apply::WriterPref,
    #[command(flatten)]
    pub target: TargetOpts,
}

#[derive(clap::Args, Debug)]
pub struct VerifyCmd {
    /// Disk images of one guest, first disk first.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Print findings as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: TargetOpts,
}

#[derive(clap::Args, Debug)]
pub struct InspectCmd {
    /// Disk images of one guest, in controller order (first disk first).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Print the versioned JSON report instead of the summary.
    #[arg(long, conflicts_with = "xml")]
    pub json: bool,
    /// Print virt-inspector's XML document (operating systems, mount points, filesystems,
    /// drive mappings, applications; valid against virt-inspector.rng).
    #[arg(long)]
    pub xml: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetFormat {
    Qcow2,
    Raw,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A progress bar when stderr is a terminal, nothing otherwise.
    Auto,
    /// JSON lines on stderr: {"event":"progress","percent":..}.
    Json,
    /// No progress output.
    None,
}

#[derive(clap::Args, Debug)]
pub struct ConvertCmd {
    /// Source image (raw, qcow2, vmdk, vhd, vhdx, vdi, ...).
    pub src: PathBuf,
    /// Destination file; must not exist unless --force.
    pub dst: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub to: TargetFormat,
    /// How to report progress.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// Overwrite DST if it exists.
    #[arg(long)]
    pub force: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_fits_80_columns() {
        for sub in [
            "inspect", "convert", "plan", "repair", "verify", "worker", "undo",
        ] {
            let mut cmd = Cli::command();
            // An 80-column terminal: help must wrap, not overflow.
            let sub_cmd = cmd.find_subcommand_mut(sub).unwrap();
            let help = std::mem::take(sub_cmd)
                .term_width(80)
                .render_help()
                .to_string();
            for l in help.lines() {
                assert!(l.chars().count() <= 80, "{sub} help line too long: {l}");
            }
        }
    }
}
