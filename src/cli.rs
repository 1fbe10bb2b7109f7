//! Command-line types (clap derive). Doc comments are the help text.
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "revirt", version, about = "Offline inspection, driver repair and conversion of guest disks for KVM", help_expected = true)]
pub struct Cli {
    /// Log more (-v info, -vv debug); logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Inspect the disks of one guest (read-only, no appliance unless needed).
    Inspect(InspectCmd),
    /// Convert a disk image between formats with qemu-img.
    Convert(ConvertCmd),
}

#[derive(clap::Args, Debug)]
pub struct InspectCmd {
    /// Disk images of one guest, in controller order (first disk first).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Print the versioned JSON report instead of the summary.
    #[arg(long)]
    pub json: bool,
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
        for sub in ["inspect", "convert"] {
            let mut cmd = Cli::command();
            let help = cmd.find_subcommand_mut(sub).unwrap().render_help().to_string();
            for l in help.lines() {
                assert!(l.chars().count() <= 80, "{sub} help line too long: {l}");
            }
        }
    }
}
