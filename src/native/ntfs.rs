//! libntfs-3g over a [`BlockIo`]: the NTFS writer the caged helper runs (`revirt
//! __native-helper ntfs`). It writes what Windows apply needs: whole files (an existing file
//! keeps its MFT record, so its security descriptor, attributes and streams stay), folders, and
//! removals. New files and folders get the security descriptor their folder's inheritable ACEs
//! give them, as Windows would (libntfs-3g alone gives them none of their own).
//!
//! New names are in the POSIX namespace, as the appliance's ntfs-3g writes them: Windows finds
//! them by the exact name the plan gives (its drivers and .inf names).
//!
//! libntfs-3g refuses an unclean `$LogFile`, a hibernated volume and Fast Startup by itself (we
//! never pass `NTFS_MNT_RECOVER`, which would empty the log); it leaves the dirty flag alone,
//! which the planner has already judged (a clean log with the flag set is repaired and the flag
//! kept, so Windows runs chkdsk at its next boot).
use super::ext2fs::BlockIo;
use anyhow::{bail, Result};
use std::ffi::{c_int, c_void, CString};

#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all
)]
mod ffi {
    include!(concat!(env!("OUT_DIR"), "/ntfs_bindings.rs"));
}

/// What the NTFS writer refuses or fails at; refusals send the repair to the appliance.
#[derive(Debug, thiserror::Error)]
pub enum NtfsError {
    #[error("{path}: {op}: {msg}")]
    Lib {
        path: String,
        op: &'static str,
        msg: String,
    },
    #[error("libntfs-3g refused the volume: {what}")]
    Refused { what: String },
    #[error("{path}: no such file or folder")]
    NotFound { path: String },
    #[error("{path}: {what}")]
    Invalid { path: String, what: String },
    #[error("{path}: {size} bytes is over the {limit}-byte limit")]
    TooBig { path: String, size: u64, limit: u64 },
}

impl NtfsError {
    /// A refusal (the volume's state, not a failure of the write): the appliance may try.
    pub fn is_refusal(&self) -> bool {
        matches!(self, NtfsError::Refused { .. })
    }
}

/// The device state libntfs-3g's callbacks reach through `d_private`.
struct Dev {
    io: Box<dyn BlockIo>,
    /// Position for the seek/read/write calls (libntfs-3g mostly uses pread/pwrite).
    pos: i64,
    /// What the BlockIo said on the last failed call (libntfs-3g only keeps errno).
    last_error: Option<String>,
}

/// The device behind `d`.
///
/// # Safety
/// `d` is a device made by [`NtfsFs::open`], not yet freed.
unsafe fn dev<'a>(d: *mut ffi::ntfs_device) -> &'a mut Dev {
    &mut *((*d).d_private as *mut Dev)
}

fn set_errno(e: c_int) {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() = e };
}

const ND_OPEN: u64 = 1 << 0;
const ND_READ_ONLY: u64 = 1 << 1;

unsafe extern "C" fn d_open(d: *mut ffi::ntfs_device, flags: c_int) -> c_int {
    (*d).d_state |= ND_OPEN;
    if flags & libc::O_ACCMODE == libc::O_RDONLY {
        (*d).d_state |= ND_READ_ONLY;
    }
    0
}

unsafe extern "C" fn d_close(d: *mut ffi::ntfs_device) -> c_int {
    let r = d_sync(d);
    (*d).d_state &= !(ND_OPEN | ND_READ_ONLY);
    r
}

unsafe extern "C" fn d_seek(d: *mut ffi::ntfs_device, off: i64, whence: c_int) -> i64 {
    let s = dev(d);
    let base = match whence {
        libc::SEEK_SET => 0,
        libc::SEEK_CUR => s.pos,
        libc::SEEK_END => s.io.size() as i64,
        _ => -1,
    };
    match base.checked_add(off) {
        Some(p) if base >= 0 && p >= 0 => {
            s.pos = p;
            p
        }
        _ => {
            set_errno(libc::EINVAL);
            -1
        }
    }
}

unsafe extern "C" fn d_pread(
    d: *mut ffi::ntfs_device,
    buf: *mut c_void,
    count: i64,
    off: i64,
) -> i64 {
    let s = dev(d);
    let size = s.io.size() as i64;
    if count < 0 || off < 0 {
        set_errno(libc::EINVAL);
        return -1;
    }
    let n = count.min(size.saturating_sub(off)).max(0);
    if n == 0 {
        return 0;
    }
    let b = std::slice::from_raw_parts_mut(buf as *mut u8, n as usize);
    let r = s.io.read_at(b, off as u64);
    done(s, r, n)
}

/// A BlockIo result as libntfs-3g wants it: `n` bytes, or -1 with errno EIO (the reason kept
/// for the error message).
fn done(s: &mut Dev, r: std::io::Result<()>, n: i64) -> i64 {
    match r {
        Ok(()) => n,
        Err(e) => {
            s.last_error = Some(e.to_string());
            set_errno(libc::EIO);
            -1
        }
    }
}

unsafe extern "C" fn d_pwrite(
    d: *mut ffi::ntfs_device,
    buf: *const c_void,
    count: i64,
    off: i64,
) -> i64 {
    if (*d).d_state & ND_READ_ONLY != 0 {
        set_errno(libc::EROFS);
        return -1;
    }
    let s = dev(d);
    let size = s.io.size() as i64;
    if count < 0 || off < 0 || off.checked_add(count).is_none_or(|e| e > size) {
        set_errno(libc::ENOSPC);
        return -1;
    }
    if count == 0 {
        return 0;
    }
    let b = std::slice::from_raw_parts(buf as *const u8, count as usize);
    let r = s.io.write_at(b, off as u64);
    done(s, r, count)
}

unsafe extern "C" fn d_read(d: *mut ffi::ntfs_device, buf: *mut c_void, count: i64) -> i64 {
    let pos = dev(d).pos;
    let n = d_pread(d, buf, count, pos);
    if n > 0 {
        dev(d).pos += n;
    }
    n
}

unsafe extern "C" fn d_write(d: *mut ffi::ntfs_device, buf: *const c_void, count: i64) -> i64 {
    let pos = dev(d).pos;
    let n = d_pwrite(d, buf, count, pos);
    if n > 0 {
        dev(d).pos += n;
    }
    n
}

unsafe extern "C" fn d_sync(d: *mut ffi::ntfs_device) -> c_int {
    if (*d).d_state & ND_READ_ONLY != 0 {
        return 0;
    }
    let s = dev(d);
    let r = s.io.flush();
    done(s, r, 0) as c_int
}

unsafe extern "C" fn d_stat(d: *mut ffi::ntfs_device, st: *mut ffi::stat) -> c_int {
    std::ptr::write_bytes(st, 0, 1);
    (*st).st_mode = libc::S_IFREG | 0o600;
    (*st).st_size = dev(d).io.size() as i64;
    (*st).st_blksize = 4096;
    0
}

/// Only the size queries libntfs-3g makes of a block device.
unsafe extern "C" fn d_ioctl(
    d: *mut ffi::ntfs_device,
    req: std::ffi::c_ulong,
    arg: *mut c_void,
) -> c_int {
    const BLKGETSIZE64: std::ffi::c_ulong = 0x8008_1272;
    const BLKSSZGET: std::ffi::c_ulong = 0x1268;
    const BLKBSZSET: std::ffi::c_ulong = 0x4008_1271;
    match req {
        BLKGETSIZE64 => *(arg as *mut u64) = dev(d).io.size(),
        BLKSSZGET => *(arg as *mut c_int) = 512,
        BLKBSZSET => {}
        _ => {
            set_errno(libc::ENOTTY);
            return -1;
        }
    }
    0
}

static OPS: OpsCell = OpsCell(ffi::ntfs_device_operations {
    open: Some(d_open),
    close: Some(d_close),
    seek: Some(d_seek),
    read: Some(d_read),
    write: Some(d_write),
    pread: Some(d_pread),
    pwrite: Some(d_pwrite),
    sync: Some(d_sync),
    stat: Some(d_stat),
    ioctl: Some(d_ioctl),
});

struct OpsCell(ffi::ntfs_device_operations);
// SAFETY: the table is immutable (libntfs-3g only calls through it).
unsafe impl Sync for OpsCell {}

fn errno_text() -> String {
    std::io::Error::last_os_error().to_string()
}

/// A mounted NTFS volume.
pub struct NtfsFs {
    vol: *mut ffi::ntfs_volume,
    /// Owns the device state `dev` points to.
    state: *mut Dev,
}

/// An open inode, closed on drop.
struct Inode(*mut ffi::ntfs_inode);

impl Drop for Inode {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: an inode opened by libntfs-3g and not closed elsewhere.
            unsafe { ffi::ntfs_inode_close(self.0) };
        }
    }
}

impl Inode {
    fn is_dir(&self) -> bool {
        // SAFETY: an open inode has its MFT record loaded.
        unsafe {
            let m = (*self.0).mrec;
            !m.is_null() && (*m).flags & ffi::MFT_RECORD_FLAGS_MFT_RECORD_IS_DIRECTORY != 0
        }
    }
    /// Closes the inode, writing its MFT record back; a failure there is a failed write (the
    /// record holds a small file's data, sizes and times). On failure the inode is left open,
    /// as libntfs-3g asks (the helper exits soon after the error).
    fn close(self) -> std::result::Result<(), std::io::Error> {
        let ni = self.release();
        // SAFETY: an open inode, closed once.
        if unsafe { ffi::ntfs_inode_close(ni) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reparse points (WOF-compressed system files, deduplicated or cloud files) and EFS files
    /// keep their content outside the unnamed data stream: writing or copying that stream would
    /// silently miss it.
    fn content_elsewhere(&self) -> bool {
        // SAFETY: an open inode.
        let flags = unsafe { (*self.0).flags };
        flags
            & (ffi::FILE_ATTR_FLAGS_FILE_ATTR_REPARSE_POINT
                | ffi::FILE_ATTR_FLAGS_FILE_ATTR_ENCRYPTED)
            != 0
    }

    /// Hands the inode to a call that closes it itself (ntfs_delete).
    fn release(mut self) -> *mut ffi::ntfs_inode {
        std::mem::replace(&mut self.0, std::ptr::null_mut())
    }
}

/// A name in NTFS's UTF-16, as libntfs-3g allocates it.
struct UName(*mut u16, u8);

impl Drop for UName {
    fn drop(&mut self) {
        // SAFETY: ntfs_mbstoucs allocates with malloc.
        unsafe { libc::free(self.0.cast()) };
    }
}

fn uname(path: &str, name: &str) -> Result<UName> {
    let c = cstr(path, name)?;
    let mut out: *mut u16 = std::ptr::null_mut();
    // SAFETY: c is NUL-terminated; out receives a malloc'd buffer.
    let n = unsafe { ffi::ntfs_mbstoucs(c.as_ptr(), &mut out) };
    if n <= 0 || n > 255 {
        if !out.is_null() {
            // SAFETY: as above.
            unsafe { libc::free(out.cast()) };
        }
        return Err(NtfsError::Invalid {
            path: path.into(),
            what: "name is empty, too long or not valid UTF-8".into(),
        }
        .into());
    }
    Ok(UName(out, n as u8))
}

fn cstr(path: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| {
        NtfsError::Invalid {
            path: path.into(),
            what: "contains a NUL byte".into(),
        }
        .into()
    })
}

fn elsewhere(path: &str) -> anyhow::Error {
    NtfsError::Refused {
        what: format!("{path} is a reparse point or EFS-encrypted: its content is not in its data stream (WOF-compressed, deduplicated or cloud file), so it is not rewritten"),
    }
    .into()
}

/// `/a/b/c` -> (`/a/b`, `c`).
fn split(path: &str) -> Result<(&str, &str)> {
    let p = path.trim_end_matches('/');
    match p.rfind('/') {
        Some(i) if !p[i + 1..].is_empty() => Ok((if i == 0 { "/" } else { &p[..i] }, &p[i + 1..])),
        _ => Err(NtfsError::Invalid {
            path: path.into(),
            what: "not an absolute path to a file".into(),
        }
        .into()),
    }
}

impl NtfsFs {
    /// Mounts the volume read-write. Fails with a refusal on what libntfs-3g will not write
    /// (unclean `$LogFile`, hibernation, Fast Startup) and on metadata it cannot parse.
    pub fn open(io: Box<dyn BlockIo>) -> Result<Self> {
        // libntfs-3g's own error messages (what it found wrong) go to the helper's stderr,
        // which the parent passes through.
        // SAFETY: sets a global function pointer to libntfs-3g's own stderr handler.
        unsafe { ffi::ntfs_log_set_handler(Some(ffi::ntfs_log_handler_stderr)) };
        let state = Box::into_raw(Box::new(Dev {
            io,
            pos: 0,
            last_error: None,
        }));
        // SAFETY: the name is copied by ntfs_device_alloc; OPS is 'static; state outlives dev
        // (freed in drop after the device).
        unsafe {
            let d = ffi::ntfs_device_alloc(
                c"revirt-ntfs".as_ptr(),
                0,
                &OPS.0 as *const _ as *mut _,
                state.cast(),
            );
            if d.is_null() {
                drop(Box::from_raw(state));
                bail!("ntfs_device_alloc: {}", errno_text());
            }
            let vol = ffi::ntfs_device_mount(d, ffi::NTFS_MNT_NONE as _);
            if vol.is_null() {
                let e = std::io::Error::last_os_error();
                let io = (*state).last_error.take();
                ffi::ntfs_device_free(d);
                drop(Box::from_raw(state));
                if let Some(io) = io {
                    bail!("reading the volume: {io}");
                }
                let what = match e.raw_os_error() {
                    Some(libc::EOPNOTSUPP) => "its $LogFile is unclean (Windows did not shut down; replay it in Windows, never by emptying it)".to_string(),
                    Some(libc::EPERM) => "hibernated or Fast Startup (Windows must shut down fully)".to_string(),
                    _ => format!("cannot mount it ({e})"),
                };
                return Err(NtfsError::Refused { what }.into());
            }
            Ok(NtfsFs { vol, state })
        }
    }

    fn lib_err(&self, path: &str, op: &'static str) -> anyhow::Error {
        let errno = errno_text();
        // SAFETY: state lives as long as self.
        let io = unsafe { (*self.state).last_error.take() };
        NtfsError::Lib {
            path: path.into(),
            op,
            msg: io.unwrap_or(errno),
        }
        .into()
    }

    /// The inode at `path`, None if nothing is there: walked one folder at a time from the
    /// root. (A walk of the whole path by libntfs-3g consults its path cache, which files
    /// created through ntfs_create do not keep current: it failed with EIO on a folder made
    /// in the same session.)
    fn lookup(&self, path: &str) -> Result<Option<Inode>> {
        let mut cur = self
            .lookup_in(None, "/", path)?
            .ok_or_else(|| NtfsError::NotFound { path: "/".into() })?;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            match self.lookup_in(Some(&cur), c, path)? {
                Some(next) => cur = next,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// The inode named `rel` in the folder `from` (the root if None: only "/" is asked), None
    /// if nothing is there. An inode must not be open twice, so callers holding a folder
    /// open look up below it.
    fn lookup_in(&self, from: Option<&Inode>, rel: &str, path: &str) -> Result<Option<Inode>> {
        let c = cstr(path, rel)?;
        let from = from.map_or(std::ptr::null_mut(), |i| i.0);
        // SAFETY: vol is mounted; from is null or an open folder; c is NUL-terminated.
        let ni = unsafe { ffi::ntfs_pathname_to_inode(self.vol, from, c.as_ptr()) };
        if ni.is_null() {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOENT) {
                return Ok(None);
            }
            return Err(self.lib_err(path, "lookup"));
        }
        Ok(Some(Inode(ni)))
    }

    fn dir(&self, path: &str) -> Result<Inode> {
        match self.lookup(path)? {
            Some(d) if d.is_dir() => Ok(d),
            Some(_) => Err(NtfsError::Invalid {
                path: path.into(),
                what: "not a folder".into(),
            }
            .into()),
            None => Err(NtfsError::NotFound { path: path.into() }.into()),
        }
    }

    /// Runs `f` with a security context for this volume: no user mapping, root, and an empty
    /// permissions cache (libntfs-3g dereferences `pseccache`, so it must point at a null).
    fn with_scx<T>(&self, f: impl FnOnce(&mut ffi::SECURITY_CONTEXT) -> T) -> T {
        let mut cache: *mut ffi::PERMISSIONS_CACHE = std::ptr::null_mut();
        let mut scx = ffi::SECURITY_CONTEXT {
            vol: self.vol,
            pseccache: &mut cache,
            ..Default::default()
        };
        f(&mut scx)
    }

    /// Creates `name` in `parent` (a file or a folder) with the security descriptor the
    /// folder's inheritable ACEs give it.
    fn create(&self, parent: &Inode, path: &str, name: &str, folder: bool) -> Result<Inode> {
        let u = uname(path, name)?;
        // SAFETY: parent is an open folder of vol; scx lives for the call; u is a valid name.
        unsafe {
            let securid = self.with_scx(|scx| ffi::ntfs_inherited_id(scx, parent.0, folder as _));
            if securid == 0 {
                return Err(NtfsError::Lib {
                    path: path.into(),
                    op: "create",
                    msg: "libntfs-3g built no inherited security descriptor from the folder's"
                        .into(),
                }
                .into());
            }
            let ty = if folder { libc::S_IFDIR } else { libc::S_IFREG };
            let ni = ffi::ntfs_create(parent.0, securid, u.0, u.1, ty);
            if ni.is_null() {
                return Err(self.lib_err(path, "create"));
            }
            Ok(Inode(ni))
        }
    }

    /// Writes `data` as the whole unnamed data stream of `path`: an existing file is truncated
    /// and rewritten in place, a missing one created in its (existing) folder.
    pub fn write_file(&mut self, path: &str, data: &[u8]) -> Result<()> {
        let ni = match self.lookup(path)? {
            Some(ni) if ni.is_dir() => {
                return Err(NtfsError::Invalid {
                    path: path.into(),
                    what: "is a folder".into(),
                }
                .into())
            }
            Some(ni) if ni.content_elsewhere() => return Err(elsewhere(path)),
            Some(ni) => ni,
            None => {
                let (dir, name) = split(path)?;
                let parent = self.dir(dir)?;
                self.create(&parent, path, name, false)?
            }
        };
        // SAFETY: ni is open; AT_UNNAMED is libntfs-3g's empty name; na is closed below.
        unsafe {
            let na = ffi::ntfs_attr_open(
                ni.0,
                ffi::ATTR_TYPES::AT_DATA,
                std::ptr::addr_of_mut!(ffi::AT_UNNAMED).cast(),
                0,
            );
            if na.is_null() {
                return Err(self.lib_err(path, "opening its data"));
            }
            let ok = ffi::ntfs_attr_truncate(na, 0) == 0
                && ffi::ntfs_attr_pwrite(na, 0, data.len() as i64, data.as_ptr().cast())
                    == data.len() as i64;
            let err = (!ok).then(|| self.lib_err(path, "writing"));
            ffi::ntfs_attr_close(na);
            if let Some(e) = err {
                return Err(e);
            }
            ffi::ntfs_inode_update_times(
                ni.0,
                ffi::ntfs_time_update_flags_NTFS_UPDATE_MTIME
                    | ffi::ntfs_time_update_flags_NTFS_UPDATE_CTIME,
            );
        }
        ni.close().map_err(|e| NtfsError::Lib {
            path: path.into(),
            op: "writing its MFT record",
            msg: e.to_string(),
        })?;
        Ok(())
    }

    /// The unnamed data stream of `path`, at most `limit` bytes.
    pub fn read_file(&mut self, path: &str, limit: u64) -> Result<Vec<u8>> {
        let ni = self
            .lookup(path)?
            .ok_or_else(|| NtfsError::NotFound { path: path.into() })?;
        if ni.content_elsewhere() {
            return Err(elsewhere(path));
        }
        // SAFETY: as in write_file; the buffer is as long as the attribute's size.
        unsafe {
            let na = ffi::ntfs_attr_open(
                ni.0,
                ffi::ATTR_TYPES::AT_DATA,
                std::ptr::addr_of_mut!(ffi::AT_UNNAMED).cast(),
                0,
            );
            if na.is_null() {
                return Err(self.lib_err(path, "opening its data"));
            }
            let size = (*na).data_size.max(0) as u64;
            if size > limit {
                ffi::ntfs_attr_close(na);
                return Err(NtfsError::TooBig {
                    path: path.into(),
                    size,
                    limit,
                }
                .into());
            }
            let mut buf = vec![0u8; size as usize];
            let n = ffi::ntfs_attr_pread(na, 0, size as i64, buf.as_mut_ptr().cast());
            let err = (n != size as i64).then(|| self.lib_err(path, "reading"));
            ffi::ntfs_attr_close(na);
            match err {
                Some(e) => Err(e),
                None => Ok(buf),
            }
        }
    }

    /// `mkdir -p`: each missing folder inherits from the one it is created in.
    pub fn mkdir_p(&mut self, path: &str) -> Result<()> {
        let mut at = String::new();
        let mut parent = self.dir("/")?;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            at.push('/');
            at.push_str(c);
            parent = match self.lookup_in(Some(&parent), c, &at)? {
                Some(d) if d.is_dir() => d,
                Some(_) => {
                    return Err(NtfsError::Invalid {
                        path: at,
                        what: "is a file, not a folder".into(),
                    }
                    .into())
                }
                None => self.create(&parent, &at, c, true)?,
            };
        }
        Ok(())
    }

    /// Removes a file (`rm -f`: nothing there is fine) or, with `folder`, an empty folder.
    fn delete(&mut self, path: &str, folder: bool) -> Result<()> {
        let Some(ni) = self.lookup(path)? else {
            return Ok(());
        };
        if ni.is_dir() != folder {
            return Err(NtfsError::Invalid {
                path: path.into(),
                what: if folder {
                    "not a folder"
                } else {
                    "is a folder"
                }
                .into(),
            }
            .into());
        }
        let (dir, name) = split(path)?;
        let parent = self.dir(dir)?;
        let u = uname(path, name)?;
        let c = cstr(path, path)?;
        // SAFETY: ntfs_delete closes both inodes whatever it returns.
        let rc = unsafe {
            ffi::ntfs_delete(
                self.vol,
                c.as_ptr(),
                ni.release(),
                parent.release(),
                u.0,
                u.1,
            )
        };
        if rc != 0 {
            return Err(self.lib_err(path, "delete"));
        }
        Ok(())
    }

    pub fn remove(&mut self, path: &str) -> Result<()> {
        self.delete(path, false)
    }

    pub fn rmdir(&mut self, path: &str) -> Result<()> {
        self.delete(path, true)
    }

    /// The security descriptor of `path` (self-relative, as Windows stores it).
    pub fn security(&mut self, path: &str) -> Result<Vec<u8>> {
        let ni = self
            .lookup(path)?
            .ok_or_else(|| NtfsError::NotFound { path: path.into() })?;
        // SAFETY: a size query first, then a buffer of that size.
        unsafe {
            let n = self.with_scx(|scx| ffi::ntfs_get_ntfs_acl(scx, ni.0, std::ptr::null_mut(), 0));
            if n <= 0 {
                return Err(self.lib_err(path, "reading its security descriptor"));
            }
            let mut buf = vec![0u8; n as usize];
            let m = self.with_scx(|scx| {
                ffi::ntfs_get_ntfs_acl(scx, ni.0, buf.as_mut_ptr().cast(), buf.len())
            });
            if m != n {
                return Err(self.lib_err(path, "reading its security descriptor"));
            }
            Ok(buf)
        }
    }

    /// Replaces the security descriptor of `path` (tests set a folder's before creating in it).
    #[cfg(test)]
    fn set_security(&mut self, path: &str, sd: &[u8]) -> Result<()> {
        let ni = self
            .lookup(path)?
            .ok_or_else(|| NtfsError::NotFound { path: path.into() })?;
        // SAFETY: ni is open; sd is a buffer of its length.
        let rc = self.with_scx(|scx| unsafe {
            ffi::ntfs_set_ntfs_acl(scx, ni.0, sd.as_ptr().cast(), sd.len(), 0)
        });
        if rc != 0 {
            return Err(self.lib_err(path, "setting its security descriptor"));
        }
        Ok(())
    }

    /// Unmounts (flushing everything) and releases the device.
    pub fn close(mut self) -> Result<()> {
        let vol = std::mem::replace(&mut self.vol, std::ptr::null_mut());
        // SAFETY: vol is mounted; ntfs_umount flushes, closes and frees it and its device.
        if unsafe { ffi::ntfs_umount(vol, 0) } != 0 {
            return Err(self.lib_err("/", "unmount"));
        }
        Ok(())
    }
}

impl Drop for NtfsFs {
    fn drop(&mut self) {
        // SAFETY: an error path: unmount (which frees the device too), then the device state
        // the callbacks used.
        unsafe {
            if !self.vol.is_null() {
                ffi::ntfs_umount(self.vol, 1);
            }
            drop(Box::from_raw(self.state));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;
    use std::process::Command;

    struct FileIo {
        f: std::fs::File,
        size: u64,
    }

    impl BlockIo for FileIo {
        fn size(&self) -> u64 {
            self.size
        }
        fn read_at(&mut self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
            self.f.read_exact_at(buf, off)
        }
        fn write_at(&mut self, buf: &[u8], off: u64) -> std::io::Result<()> {
            self.f.write_all_at(buf, off)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.f.sync_data()
        }
    }

    /// A fresh 16 MiB NTFS image made by mkntfs, or None (printed) without ntfs-3g's tools.
    fn image(dir: &std::path::Path) -> Option<std::path::PathBuf> {
        let img = dir.join("ntfs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        let ok = Command::new("mkntfs")
            .args(["-F", "-f", "-q", "-L", "TEST"])
            .arg(&img)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIP: mkntfs (ntfs-3g) is not installed: bash .ci/deps.sh");
            return None;
        }
        Some(img)
    }

    fn open(img: &std::path::Path) -> NtfsFs {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(img)
            .unwrap();
        let size = f.metadata().unwrap().len();
        NtfsFs::open(Box::new(FileIo { f, size })).unwrap()
    }

    fn ntfscat(img: &std::path::Path, path: &str) -> Vec<u8> {
        let out = Command::new("ntfscat").arg(img).arg(path).output().unwrap();
        assert!(out.status.success(), "ntfscat {path}: {:?}", out);
        out.stdout
    }

    fn ntfsfix_clean(img: &std::path::Path) {
        let out = Command::new("ntfsfix").arg("-n").arg(img).output().unwrap();
        assert!(
            out.status.success(),
            "ntfsfix -n: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    #[test]
    fn files_and_folders_written_read_back_by_ntfs_3g_tools() {
        let dir = tempfile::tempdir().unwrap();
        let Some(img) = image(dir.path()) else { return };
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + (i >> 9)) as u8).collect();
        let mut fs = open(&img);
        fs.mkdir_p("/Windows/System32/drivers").unwrap();
        fs.mkdir_p("/Windows/System32/drivers").unwrap();
        fs.write_file("/Windows/System32/drivers/viostor.sys", &big)
            .unwrap();
        // Resident, then non-resident, then small again: the same record each time.
        fs.write_file("/a.txt", b"first\n").unwrap();
        fs.write_file("/a.txt", &big[..70_000]).unwrap();
        fs.write_file("/a.txt", b"last\n").unwrap();
        fs.write_file("/gone.txt", b"x").unwrap();
        fs.remove("/gone.txt").unwrap();
        fs.remove("/never-was.txt").unwrap();
        assert!(fs.rmdir("/Windows/System32").is_err(), "a full folder");
        fs.mkdir_p("/Empty").unwrap();
        fs.rmdir("/Empty").unwrap();
        assert!(fs.write_file("/Windows", b"x").is_err(), "a folder");
        assert!(fs.write_file("/No/Such/file", b"x").is_err());
        assert_eq!(fs.read_file("/a.txt", 100).unwrap(), b"last\n");
        assert!(fs
            .read_file("/Windows/System32/drivers/viostor.sys", 10)
            .is_err());
        fs.close().unwrap();
        ntfsfix_clean(&img);
        assert_eq!(ntfscat(&img, "/Windows/System32/drivers/viostor.sys"), big);
        assert_eq!(ntfscat(&img, "/a.txt"), b"last\n");
        let ls = Command::new("ntfsls").arg(&img).output().unwrap();
        let ls = String::from_utf8_lossy(&ls.stdout);
        assert!(!ls.contains("gone.txt") && !ls.contains("Empty"), "{ls}");
    }

    /// (type, flags, mask, SID) of each ACE in a self-relative descriptor's DACL, and its owner.
    fn dacl(sd: &[u8]) -> (String, Vec<(u8, u8, u32, String)>) {
        let u32at = |o: usize| u32::from_le_bytes(sd[o..o + 4].try_into().unwrap());
        let sid = |o: usize| {
            let n = sd[o + 1] as usize;
            let auth = u64::from_be_bytes([
                0,
                0,
                sd[o + 2],
                sd[o + 3],
                sd[o + 4],
                sd[o + 5],
                sd[o + 6],
                sd[o + 7],
            ]);
            let mut s = format!("S-{}-{auth}", sd[o]);
            for i in 0..n {
                s += &format!("-{}", u32at(o + 8 + 4 * i));
            }
            s
        };
        let owner = sid(u32at(4) as usize);
        let d = u32at(16) as usize;
        let count = u16::from_le_bytes([sd[d + 4], sd[d + 5]]) as usize;
        let mut at = d + 8;
        let mut aces = vec![];
        for _ in 0..count {
            let size = u16::from_le_bytes([sd[at + 2], sd[at + 3]]) as usize;
            aces.push((sd[at], sd[at + 1], u32at(at + 4), sid(at + 8)));
            at += size;
        }
        (owner, aces)
    }

    /// A self-relative descriptor: owner and group SYSTEM, DACL of (flags, mask, SID) allows.
    fn descriptor(aces: &[(u8, u32, &[u8])]) -> Vec<u8> {
        let system: &[u8] = &[1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0];
        let mut acl = vec![];
        for (flags, mask, sid) in aces {
            let size = (8 + sid.len()) as u16;
            acl.extend([0u8, *flags]);
            acl.extend(size.to_le_bytes());
            acl.extend(mask.to_le_bytes());
            acl.extend(*sid);
        }
        let mut sd = vec![1u8, 0];
        // Self-relative, DACL present and auto-inherited (as Windows marks every folder's).
        sd.extend((0x8404u16).to_le_bytes());
        let owner = 20u32;
        let group = owner + system.len() as u32;
        let dacl = group + system.len() as u32;
        for v in [owner, group, 0, dacl] {
            sd.extend(v.to_le_bytes());
        }
        sd.extend(system);
        sd.extend(system);
        sd.extend([2u8, 0]);
        sd.extend(((8 + acl.len()) as u16).to_le_bytes());
        sd.extend((aces.len() as u16).to_le_bytes());
        sd.extend([0u8, 0]);
        sd.extend(acl);
        sd
    }

    #[test]
    fn new_files_and_folders_inherit_their_folders_security() {
        let dir = tempfile::tempdir().unwrap();
        let Some(img) = image(dir.path()) else { return };
        let system: &[u8] = &[1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0];
        let users: &[u8] = &[1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x21, 2, 0, 0];
        // OI|CI: SYSTEM full control for everything below; no flags: Users read on the folder
        // itself only; OI|IO: Users read+execute on files only, not on the folder.
        let sd = descriptor(&[
            (0x03, 0x1F01FF, system),
            (0, 0x1200A9, users),
            (0x09, 0x1200A9, users),
        ]);
        let mut fs = open(&img);
        fs.mkdir_p("/Drivers").unwrap();
        fs.set_security("/Drivers", &sd).unwrap();
        fs.write_file("/Drivers/new.sys", b"driver").unwrap();
        fs.mkdir_p("/Drivers/Sub/Deeper").unwrap();
        fs.write_file("/Drivers/Sub/Deeper/f.inf", b"inf").unwrap();
        let (_, deep) = dacl(&fs.security("/Drivers/Sub/Deeper/f.inf").unwrap());
        let (fowner, file) = dacl(&fs.security("/Drivers/new.sys").unwrap());
        let (_, sub) = dacl(&fs.security("/Drivers/Sub").unwrap());
        let (_, parent) = dacl(&fs.security("/Drivers").unwrap());
        fs.close().unwrap();
        ntfsfix_clean(&img);
        assert_eq!(parent.len(), 3, "the folder keeps what was set: {parent:?}");
        assert_eq!(
            fowner, "S-1-5-32-544",
            "owner: Administrators, as for a SYSTEM write"
        );
        // The file: both object-inheritable ACEs, marked inherited, no inheritance flags left.
        assert_eq!(
            file,
            vec![
                (0, 0x10, 0x1F01FF, "S-1-5-18".to_string()),
                (0, 0x10, 0x1200A9, "S-1-5-32-545".to_string()),
            ]
        );
        // The sub-folder: the OI|CI ACE (inherited, still inheritable); the OI-only one stays
        // inherit-only, to pass on to files; the folder-only ACE is not inherited.
        assert!(
            sub.contains(&(0, 0x13, 0x1F01FF, "S-1-5-18".to_string())),
            "{sub:?}"
        );
        assert!(sub.iter().all(|a| a.1 & 0x10 != 0), "{sub:?}");
        assert!(
            !sub.iter().any(|a| a.1 & 0x08 == 0 && a.3 == "S-1-5-32-545"),
            "{sub:?}"
        );
        // A file in folders made in the same session inherits as one in the first folder.
        assert_eq!(deep, file, "a file two new folders down");
    }

    #[test]
    fn what_is_not_ntfs_is_refused_without_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("zero.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(4 << 20)
            .unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&img)
            .unwrap();
        let r = NtfsFs::open(Box::new(FileIo { f, size: 4 << 20 }));
        assert!(r.is_err());
    }
}
