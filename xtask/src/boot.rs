//! Boot harness (in progress).
use anyhow::Result;

#[derive(clap::Args)]
pub struct BootArgs {
    /// Image to boot (through a throwaway overlay).
    pub image: std::path::PathBuf,
}

pub fn run(_args: BootArgs) -> Result<()> {
    anyhow::bail!("boot harness not built yet")
}
