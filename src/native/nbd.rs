//! A writable disk served by qemu-storage-daemon ([`NbdExport`]), read and written through
//! libnbd (libnbd-dev): qemu's own block layer keeps the qcow2 overlay (or the in-place disk)
//! consistent, revirt never writes qcow2 metadata itself.
use crate::image::export::NbdExport;
use crate::image::ImageInfo;
use anyhow::{bail, Context, Result};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;

#[allow(non_camel_case_types)]
enum nbd_handle {}

#[link(name = "nbd")]
extern "C" {
    fn nbd_create() -> *mut nbd_handle;
    fn nbd_close(h: *mut nbd_handle);
    fn nbd_set_export_name(h: *mut nbd_handle, name: *const c_char) -> c_int;
    fn nbd_connect_unix(h: *mut nbd_handle, path: *const c_char) -> c_int;
    fn nbd_get_size(h: *mut nbd_handle) -> i64;
    fn nbd_pread(h: *mut nbd_handle, buf: *mut c_void, n: usize, off: u64, flags: u32) -> c_int;
    fn nbd_pwrite(h: *mut nbd_handle, buf: *const c_void, n: usize, off: u64, flags: u32) -> c_int;
    fn nbd_flush(h: *mut nbd_handle, flags: u32) -> c_int;
    fn nbd_shutdown(h: *mut nbd_handle, flags: u32) -> c_int;
    fn nbd_get_error() -> *const c_char;
}

fn last_error() -> String {
    // SAFETY: libnbd returns a thread-local string valid until the next call on this thread.
    let p = unsafe { nbd_get_error() };
    if p.is_null() {
        return "unknown libnbd error".into();
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Largest single request sent (qemu's NBD server caps requests at 32 MiB).
const MAX_REQUEST: usize = 16 << 20;

/// One output disk open for writing: the daemon plus a connected client.
pub struct NbdDisk {
    h: *mut nbd_handle,
    size: u64,
    /// The disk's path, for messages.
    pub name: String,
    // Dropped after the handle is closed (the daemon flushes when it stops).
    _export: NbdExport,
}

impl NbdDisk {
    /// Starts an export of `disk` (with `overlay` on top when given) and connects to it.
    pub fn open(disk: &ImageInfo, overlay: Option<&Path>) -> Result<Self> {
        let export = NbdExport::start(disk, overlay, true)?;
        let sock = CString::new(export.socket().as_os_str().as_encoded_bytes())?;
        let name = CString::new(export.name.as_str())?;
        // SAFETY: a fresh handle, closed in Drop (or here on failure).
        let h = unsafe { nbd_create() };
        if h.is_null() {
            bail!("libnbd: {}", last_error());
        }
        let mut d = NbdDisk {
            h,
            size: 0,
            name: overlay
                .map(|o| o.display().to_string())
                .unwrap_or_else(|| disk.path.clone()),
            _export: export,
        };
        // SAFETY: valid handle and NUL-terminated strings that outlive the calls.
        unsafe {
            if nbd_set_export_name(h, name.as_ptr()) != 0 || nbd_connect_unix(h, sock.as_ptr()) != 0
            {
                bail!(
                    "connecting to the NBD export of {}: {}",
                    d.name,
                    last_error()
                );
            }
            let size = nbd_get_size(h);
            if size < 0 {
                bail!("NBD size of {}: {}", d.name, last_error());
            }
            d.size = size as u64;
        }
        Ok(d)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    fn check(&self, off: u64, len: usize) -> Result<()> {
        if off.checked_add(len as u64).is_none_or(|e| e > self.size) {
            bail!(
                "{}: {len} bytes at {off} lie beyond the disk ({} bytes)",
                self.name,
                self.size
            );
        }
        Ok(())
    }

    pub fn read_at(&self, buf: &mut [u8], off: u64) -> Result<()> {
        self.check(off, buf.len())?;
        for (i, chunk) in buf.chunks_mut(MAX_REQUEST).enumerate() {
            let o = off + (i * MAX_REQUEST) as u64;
            // SAFETY: the buffer is valid for its length; the handle is connected.
            let rc = unsafe { nbd_pread(self.h, chunk.as_mut_ptr().cast(), chunk.len(), o, 0) };
            if rc != 0 {
                bail!("reading {} at {o}: {}", self.name, last_error());
            }
        }
        Ok(())
    }

    pub fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        self.check(off, buf.len())?;
        for (i, chunk) in buf.chunks(MAX_REQUEST).enumerate() {
            let o = off + (i * MAX_REQUEST) as u64;
            // SAFETY: as in read_at.
            let rc = unsafe { nbd_pwrite(self.h, chunk.as_ptr().cast(), chunk.len(), o, 0) };
            if rc != 0 {
                bail!("writing {} at {o}: {}", self.name, last_error());
            }
        }
        Ok(())
    }

    /// Makes every write so far durable in the image file (qcow2 metadata included).
    pub fn flush(&self) -> Result<()> {
        // SAFETY: connected handle.
        if unsafe { nbd_flush(self.h, 0) } != 0 {
            bail!("flushing {}: {}", self.name, last_error());
        }
        Ok(())
    }

    /// Flushes, disconnects and stops the daemon; errors are reported, unlike in Drop.
    pub fn close(self) -> Result<()> {
        self.flush().context("before closing")?;
        Ok(())
    }
}

impl Drop for NbdDisk {
    fn drop(&mut self) {
        // SAFETY: the handle was created in open and is closed once.
        unsafe {
            nbd_shutdown(self.h, 0);
            nbd_close(self.h);
        }
    }
}
