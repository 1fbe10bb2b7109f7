//! Bootloader and firmware detection (in progress).
use crate::fs::Vfs;
use crate::types::BootloaderInfo;

/// Reads the guest's bootloader configuration: kind, firmware, entries, default entry.
/// `esp_device` is the volume mounted at the ESP mountpoint, if any.
pub fn detect_bootloader(_vfs: &Vfs, _esp_device: Option<&str>) -> anyhow::Result<BootloaderInfo> {
    Ok(BootloaderInfo::default())
}
