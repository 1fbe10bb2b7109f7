//! Read-only guest filesystems behind one trait, and a mount table that joins them into the
//! guest's view of `/` with symlinks resolved inside the guest root (never against the host).
use crate::error::FsError;
use crate::image::{BlockDevice, Dev};
use std::rc::Rc;

pub mod ext4;
pub mod fat;
pub mod jbd2;
pub mod ntfs;
pub mod probe;
pub mod xfs;
pub mod xfs_log;

/// Kind of a directory entry or inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone)]
pub struct Meta {
    pub ftype: FileType,
    pub size: u64,
    pub mode: u32,
}

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub ftype: FileType,
}

/// One mounted filesystem, read-only (single-threaded: ext4-view is Rc-based). Paths are absolute within this filesystem and contain no
/// symlinked components (the [`Vfs`] resolves those), so an implementation only walks directories.
pub trait GuestFs {
    /// Short type name: "ext4", "xfs", "vfat", "ntfs".
    fn fstype(&self) -> &'static str;
    /// Like lstat(2): does not follow a final symlink. `Ok(None)` when the path does not exist.
    fn stat(&self, path: &str) -> Result<Option<Meta>, FsError>;
    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, FsError>;
    /// Whole file contents; fails with `TooLarge` above `limit` bytes.
    fn read_file(&self, path: &str, limit: u64) -> Result<Vec<u8>, FsError>;
    fn read_link(&self, path: &str) -> Result<String, FsError>;
}

/// Largest binary file read whole (an initramfs, a kernel, a registry hive: real ones stay
/// below ~150 MiB). A documented cap on what a tenant can make revirt hold in memory.
pub const READ_LIMIT: u64 = 256 << 20;
/// Largest text file read (configuration: fstab, grub.cfg, network files, module indexes; the
/// biggest real ones, modules.alias, are ~1.5 MiB). A sparse 1 GiB fstab stops here.
pub const TEXT_LIMIT: u64 = 4 << 20;

/// Filesystem identity found by probing a device's superblock.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FsIdent {
    /// "ext4", "xfs", "vfat", "ntfs", "btrfs", "swap", "LVM2_member", ...
    pub fstype: String,
    pub uuid: Option<String>,
    pub label: Option<String>,
    /// Extra facts the superblock gives (ext: "needs_recovery"; ntfs: "dirty"; xfs: "v4"/"v5").
    pub flags: Vec<String>,
}

/// Opens a pure-Rust reader for `dev` if revirt has one for this type.
pub fn open_fs(dev: Dev, ident: &FsIdent) -> Result<Option<Rc<dyn GuestFs>>, FsError> {
    Ok(match ident.fstype.as_str() {
        "ext2" | "ext3" | "ext4" => Some(Rc::new(ext4::Ext4::open(dev)?)),
        "xfs" => Some(Rc::new(xfs::Xfs::open(dev)?)),
        "vfat" => Some(Rc::new(fat::Fat::open(dev)?)),
        "ntfs" => Some(Rc::new(ntfs::Ntfs::open(dev)?)),
        _ => None,
    })
}

/// The guest's directory tree: filesystems mounted at guest paths, symlinks resolved within `/`.
#[derive(Clone, Default)]
pub struct Vfs {
    /// (mountpoint, filesystem), longest mountpoint first.
    mounts: Vec<(String, Rc<dyn GuestFs>)>,
}

const MAX_SYMLINKS: usize = 40;

impl Vfs {
    pub fn new(root: Rc<dyn GuestFs>) -> Self {
        Vfs {
            mounts: vec![("/".into(), root)],
        }
    }

    /// Mounts `fs` at the absolute guest path `at` (already resolved by the caller).
    pub fn mount(&mut self, at: &str, fs: Rc<dyn GuestFs>) {
        let at = normalize(at);
        self.mounts.retain(|(m, _)| *m != at);
        self.mounts.push((at, fs));
        self.mounts.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
    }

    pub fn mountpoints(&self) -> Vec<String> {
        self.mounts.iter().map(|(m, _)| m.clone()).collect()
    }

    /// The filesystem serving `path` (no symlinks in it) and the path inside that filesystem.
    fn route<'a>(&'a self, path: &str) -> (&'a dyn GuestFs, String) {
        for (m, fs) in &self.mounts {
            if m == "/" {
                return (fs.as_ref(), path.to_string());
            }
            if path == m {
                return (fs.as_ref(), "/".into());
            }
            if let Some(rest) = path.strip_prefix(m.as_str()) {
                if rest.starts_with('/') {
                    return (fs.as_ref(), rest.to_string());
                }
            }
        }
        unreachable!("the root mount serves every path")
    }

    fn lstat_resolved(&self, path: &str) -> Result<Option<Meta>, FsError> {
        let (fs, inner) = self.route(path);
        fs.stat(&inner)
    }

    /// Resolves `path` to a symlink-free absolute guest path. With `follow_last`, a final symlink
    /// is followed too. Absolute link targets restart at the guest root and `..` stops at `/`, so
    /// no link can escape the guest. Returns `Ok(None)` if a component does not exist.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<Option<String>, FsError> {
        let mut todo: Vec<String> = split(path).into_iter().rev().collect();
        let mut cur: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(comp) = todo.pop() {
            match comp.as_str() {
                "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            cur.push(comp);
            let p = join(&cur);
            let is_last = todo.is_empty();
            let Some(meta) = self.lstat_resolved(&p)? else {
                return Ok(None);
            };
            if meta.ftype == FileType::Symlink && (!is_last || follow_last) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(FsError::SymlinkLoop { path: path.into() });
                }
                let (fs, inner) = self.route(&p);
                let target = fs.read_link(&inner)?;
                cur.pop();
                if target.starts_with('/') {
                    cur.clear();
                }
                for c in split(&target).into_iter().rev() {
                    todo.push(c);
                }
            } else if !is_last && meta.ftype != FileType::Dir {
                return Err(FsError::NotADirectory { path: p });
            }
        }
        Ok(Some(join(&cur)))
    }

    /// stat following symlinks; `Ok(None)` if missing.
    pub fn stat(&self, path: &str) -> Result<Option<Meta>, FsError> {
        match self.resolve(path, true)? {
            Some(p) => self.lstat_resolved(&p),
            None => Ok(None),
        }
    }

    /// lstat: the final component is not followed.
    pub fn lstat(&self, path: &str) -> Result<Option<Meta>, FsError> {
        match self.resolve(path, false)? {
            Some(p) => self.lstat_resolved(&p),
            None => Ok(None),
        }
    }

    pub fn exists(&self, path: &str) -> bool {
        matches!(self.stat(path), Ok(Some(_)))
    }

    pub fn is_dir(&self, path: &str) -> bool {
        matches!(self.stat(path), Ok(Some(m)) if m.ftype == FileType::Dir)
    }

    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, FsError> {
        self.read_file_limited(path, READ_LIMIT)
    }

    /// Whole file contents; `TooLarge` above `limit` bytes (nothing is read then).
    pub fn read_file_limited(&self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
        let p = self
            .resolve(path, true)?
            .ok_or_else(|| FsError::not_found(path))?;
        let (fs, inner) = self.route(&p);
        fs.read_file(&inner, limit).map_err(|e| match e {
            // Name the guest path, not the path inside one mounted filesystem.
            FsError::TooLarge { size, limit, .. } => FsError::TooLarge {
                path: path.into(),
                size,
                limit,
            },
            e => e,
        })
    }

    /// File as text (lossy UTF-8, at most [`TEXT_LIMIT`] bytes), `Ok(None)` when missing.
    pub fn read_text(&self, path: &str) -> Result<Option<String>, FsError> {
        match self.read_file_limited(path, TEXT_LIMIT) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(FsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Directory listing (sorted by name), `Ok(empty)` when missing. Mountpoints below are not
    /// merged in: listings come from the filesystem that holds the directory.
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let Some(p) = self.resolve(path, true)? else {
            return Ok(vec![]);
        };
        let (fs, inner) = self.route(&p);
        let mut v = fs.read_dir(&inner)?;
        v.retain(|e| e.name != "." && e.name != "..");
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// Target of the symlink at `path` (its parent resolved), as written in the guest.
    pub fn read_link(&self, path: &str) -> Result<String, FsError> {
        let p = self
            .resolve(path, false)?
            .ok_or_else(|| FsError::not_found(path))?;
        let (fs, inner) = self.route(&p);
        fs.read_link(&inner)
    }
}

fn split(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

fn join(c: &[String]) -> String {
    if c.is_empty() {
        "/".into()
    } else {
        format!("/{}", c.join("/"))
    }
}

/// Lexically normalizes an absolute path ("//a/./b/" -> "/a/b").
pub fn normalize(p: &str) -> String {
    let mut out: Vec<String> = vec![];
    for c in split(p) {
        match c.as_str() {
            "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(c),
        }
    }
    join(&out)
}

/// A host directory served as a guest filesystem: used by tests on skeleton trees.
pub struct HostDirFs {
    pub root: std::path::PathBuf,
}

impl HostDirFs {
    fn host(&self, path: &str) -> std::path::PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

impl GuestFs for HostDirFs {
    fn fstype(&self) -> &'static str {
        "hostdir"
    }
    fn stat(&self, path: &str) -> Result<Option<Meta>, FsError> {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::symlink_metadata(self.host(path)) {
            Ok(m) => {
                let ft = m.file_type();
                let ftype = if ft.is_symlink() {
                    FileType::Symlink
                } else if ft.is_dir() {
                    FileType::Dir
                } else if ft.is_file() {
                    FileType::File
                } else {
                    FileType::Other
                };
                Ok(Some(Meta {
                    ftype,
                    size: m.len(),
                    mode: m.permissions().mode(),
                }))
            }
            Err(_) => Ok(None),
        }
    }
    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let rd = std::fs::read_dir(self.host(path)).map_err(|_| FsError::not_found(path))?;
        let mut v = vec![];
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ftype = self
                .stat(&format!("{}/{}", path.trim_end_matches('/'), name))?
                .map(|m| m.ftype)
                .unwrap_or(FileType::Other);
            v.push(DirEntry { name, ftype });
        }
        Ok(v)
    }
    fn read_file(&self, path: &str, _limit: u64) -> Result<Vec<u8>, FsError> {
        std::fs::read(self.host(path)).map_err(|_| FsError::not_found(path))
    }
    fn read_link(&self, path: &str) -> Result<String, FsError> {
        std::fs::read_link(self.host(path))
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|_| FsError::not_found(path))
    }
}

/// Convenience for a device-backed filesystem name in errors.
pub fn dev_name(dev: &dyn BlockDevice) -> String {
    dev.name()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Vfs) {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc/sub")).unwrap();
        std::fs::write(r.join("etc/sub/f"), "hello").unwrap();
        std::os::unix::fs::symlink("/etc/sub", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/sub/f", r.join("etc/up")).unwrap();
        std::os::unix::fs::symlink("loop2", r.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", r.join("loop2")).unwrap();
        std::os::unix::fs::symlink("/nonexistent-host-path/passwd", r.join("dangling")).unwrap();
        let vfs = Vfs::new(Rc::new(HostDirFs {
            root: r.to_path_buf(),
        }));
        (d, vfs)
    }

    #[test]
    fn absolute_symlinks_resolve_inside_guest_root() {
        let (_d, vfs) = tree();
        assert_eq!(vfs.read_file("/abs/f").unwrap(), b"hello");
        assert_eq!(vfs.resolve("/abs/f", true).unwrap().unwrap(), "/etc/sub/f");
    }

    #[test]
    fn dotdot_cannot_escape_root() {
        let (_d, vfs) = tree();
        assert_eq!(vfs.read_file("/etc/up").unwrap(), b"hello");
    }

    #[test]
    fn symlink_loop_is_an_error() {
        let (_d, vfs) = tree();
        assert!(matches!(
            vfs.read_file("/loop1"),
            Err(FsError::SymlinkLoop { .. })
        ));
    }

    #[test]
    fn dangling_link_is_not_found_not_host() {
        let (_d, vfs) = tree();
        assert!(matches!(
            vfs.read_file("/dangling"),
            Err(FsError::NotFound { .. })
        ));
        assert!(vfs.lstat("/dangling").unwrap().is_some());
    }

    #[test]
    fn mounts_route_by_longest_prefix() {
        let (d, mut vfs) = tree();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(b.path().join("vmlinuz"), "k").unwrap();
        vfs.mount(
            "/boot",
            Rc::new(HostDirFs {
                root: b.path().to_path_buf(),
            }),
        );
        assert_eq!(vfs.read_file("/boot/vmlinuz").unwrap(), b"k");
        assert_eq!(vfs.read_file("/etc/sub/f").unwrap(), b"hello");
        drop(d);
    }
}
