//! Typed errors of the lower layers (image, partition table, LVM, filesystem). Each says what
//! failed and where (file, offset, path), and whether the input is unsupported or corrupt, so the
//! CLI can map them onto distinct exit codes.
use std::path::PathBuf;

/// Errors from opening or reading a disk image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: empty file (0 bytes), not a disk image")]
    Empty { path: PathBuf },
    #[error("{path}: {format} images are not read directly; convert first: revirt convert {path} OUT.qcow2 --to qcow2")]
    NeedsConvert { path: PathBuf, format: &'static str },
    #[error("{path}: backing file {name:?} refused: {why}")]
    BackingRefused {
        path: PathBuf,
        name: String,
        why: String,
    },
    #[error("{path}: unsupported image: {what}")]
    Unsupported { path: PathBuf, what: String },
    #[error("{path}: corrupt image at offset {offset:#x}: {what}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    #[error(
        "{path}: read of {len} bytes at offset {offset:#x} is past the end of the {size}-byte disk"
    )]
    OutOfRange {
        path: PathBuf,
        offset: u64,
        len: usize,
        size: u64,
    },
}

impl ImageError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Errors from partition tables and volume managers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartError {
    #[error("{disk}: {what}")]
    Corrupt { disk: String, what: String },
    #[error("{disk}: unsupported layout: {what}")]
    Unsupported { disk: String, what: String },
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// Errors from the read-only filesystem readers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    #[error("{path}: not a directory")]
    NotADirectory { path: String },
    #[error("{path}: is a directory")]
    IsADirectory { path: String },
    #[error("{path}: too many levels of symbolic links")]
    SymlinkLoop { path: String },
    #[error("{dev}: corrupt {fs} filesystem: {what}")]
    Corrupt {
        dev: String,
        fs: &'static str,
        what: String,
    },
    #[error("{dev}: unsupported {fs} feature: {what}")]
    Unsupported {
        dev: String,
        fs: &'static str,
        what: String,
    },
    #[error("{path}: file of {size} bytes is larger than the {limit}-byte read limit")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl FsError {
    pub fn corrupt(dev: impl Into<String>, fs: &'static str, what: impl Into<String>) -> Self {
        FsError::Corrupt {
            dev: dev.into(),
            fs,
            what: what.into(),
        }
    }
    pub fn not_found(path: impl Into<String>) -> Self {
        FsError::NotFound { path: path.into() }
    }
}

/// What revirt will not do safely (exit 6, refused), found before or instead of a write: the
/// message says what and where.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);
