//! Windows guest facts (in progress).
pub mod hive;

use crate::fs::Vfs;
use crate::types::WindowsInfo;

/// Returns Windows facts when `vfs` (an NTFS volume mounted at /) holds a Windows system root.
pub fn detect_windows(_vfs: &Vfs) -> anyhow::Result<Option<WindowsInfo>> {
    Ok(None)
}
