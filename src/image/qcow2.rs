//! qcow2 v2/v3 images (with backing chains and compressed clusters) through qcow2-rs.
use super::Dev;
use crate::error::ImageError;
use std::path::Path;

pub struct Qcow2Image;

impl Qcow2Image {
    /// Opens `path` and its backing chain. Returns the device and the resolved backing paths.
    pub fn open(path: &Path) -> Result<(Dev, Vec<String>), ImageError> {
        Err(ImageError::Unsupported {
            path: path.into(),
            what: "qcow2 backend not built yet".into(),
        })
    }
}
