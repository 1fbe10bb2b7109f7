//! Network configuration flavors and persistent-net rules (in progress).
use crate::fs::Vfs;
use crate::types::NetworkInfo;

/// Reads every network config flavor present in the guest.
pub fn detect_network(_vfs: &Vfs) -> anyhow::Result<NetworkInfo> {
    Ok(NetworkInfo::default())
}
