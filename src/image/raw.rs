//! Raw images and block devices.
use super::BlockDevice;
use crate::error::ImageError;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub struct RawImage {
    file: std::fs::File,
    size: u64,
    path: PathBuf,
}

impl RawImage {
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        use std::io::{Seek, SeekFrom};
        let mut file = std::fs::File::open(path).map_err(|e| ImageError::io(path, e))?;
        // Seek to the end: works for regular files and block devices alike.
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| ImageError::io(path, e))?;
        if size == 0 {
            return Err(ImageError::Empty { path: path.into() });
        }
        Ok(RawImage {
            file,
            size,
            path: path.into(),
        })
    }
}

impl BlockDevice for RawImage {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ImageError> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.size)
        {
            return Err(ImageError::OutOfRange {
                path: self.path.clone(),
                offset,
                len: buf.len(),
                size: self.size,
            });
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| ImageError::io(&self.path, e))
    }
    fn name(&self) -> String {
        self.path.display().to_string()
    }
    fn layout(&self) -> Option<Vec<super::Extent>> {
        Some(super::Extent::whole(&self.path, self.size))
    }
}
