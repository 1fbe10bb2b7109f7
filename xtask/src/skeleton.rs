//! Skeleton guests (in progress).
use anyhow::Result;

pub fn build_all(_only: Option<&str>) -> Result<()> {
    Ok(())
}
