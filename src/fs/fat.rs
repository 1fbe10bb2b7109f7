//! FAT12/16/32 reader (in progress).
use super::{DirEntry, GuestFs, Meta};
use crate::error::FsError;
use crate::image::Dev;

pub struct Fat {
    dev: Dev,
}

impl Fat {
    pub fn open(dev: Dev) -> Result<Self, FsError> {
        Err(FsError::Unsupported { dev: dev.name(), fs: "vfat", what: "reader not built yet".into() })
    }
}

impl GuestFs for Fat {
    fn fstype(&self) -> &'static str { "vfat" }
    fn stat(&self, _path: &str) -> Result<Option<Meta>, FsError> { Ok(None) }
    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, FsError> { Err(FsError::not_found(path)) }
    fn read_file(&self, path: &str, _limit: u64) -> Result<Vec<u8>, FsError> { let _ = &self.dev; Err(FsError::not_found(path)) }
    fn read_link(&self, path: &str) -> Result<String, FsError> { Err(FsError::not_found(path)) }
}
