//! The caged side: `revirt __native-helper ext|ntfs` runs libext2fs or libntfs-3g on one
//! volume whose blocks it asks the parent for (see [`super::proto`]). It cages itself before
//! the first guest byte.
use super::ext2fs::{BlockIo, ExtFs, NewMeta};
use super::ntfs::NtfsFs;
use super::proto::{read_frame, split_json, write_frame, write_json, Answer, Request};
use anyhow::{bail, Result};
use std::io::Write;

/// Block I/O forwarded to the parent over stdin/stdout. libext2fs reads and writes one block
/// at a time; each request is a round trip through revirt and qemu-storage-daemon, so reads
/// are fetched ahead and contiguous writes batched (flushed before any read they overlap, on
/// flush, and when the batch is full).
struct PipeIo {
    size: u64,
    /// The first I/O failure: every later call fails too, so an error the library drops (a
    /// write batch lost on a flush it did not check) still fails the session.
    failed: Option<String>,
    wbuf_off: u64,
    wbuf: Vec<u8>,
    rcache_off: u64,
    rcache: Vec<u8>,
}

/// Largest write batch sent at once.
const WRITE_BATCH: usize = 4 << 20;
/// How much is read at once when libext2fs asks for less.
const READ_AHEAD: usize = 256 << 10;

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Waits for the parent's answer to an I/O request: data ('D'), done ('K') or an error ('E').
fn reply(want: u8) -> std::io::Result<Vec<u8>> {
    let (tag, p) = read_frame(&mut std::io::stdin().lock())?;
    match tag {
        t if t == want => Ok(p),
        b'E' => Err(io_err(String::from_utf8_lossy(&p))),
        t => Err(io_err(format!("unexpected frame {:?}", t as char))),
    }
}

fn overlaps(a: u64, alen: usize, b: u64, blen: usize) -> bool {
    a < b + blen as u64 && b < a + alen as u64
}

impl PipeIo {
    fn new(size: u64) -> Self {
        PipeIo {
            size,
            failed: None,
            wbuf_off: 0,
            wbuf: vec![],
            rcache_off: 0,
            rcache: vec![],
        }
    }

    fn fetch(&self, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let l32 = u32::try_from(len).map_err(io_err)?;
        write_frame(
            &mut std::io::stdout().lock(),
            b'R',
            &[&off.to_le_bytes(), &l32.to_le_bytes()],
        )?;
        let data = reply(b'D')?;
        if data.len() != len {
            return Err(io_err("short read from the parent"));
        }
        Ok(data)
    }

    fn flush_writes(&mut self) -> std::io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.wbuf);
        let r = write_frame(
            &mut std::io::stdout().lock(),
            b'W',
            &[&self.wbuf_off.to_le_bytes(), &buf],
        )
        .and_then(|()| reply(b'K').map(drop));
        self.sticky(r)
    }

    /// Remembers the first failure and keeps failing with it.
    fn sticky<T>(&mut self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Some(e) = &self.failed {
            return Err(io_err(format!("an earlier block I/O failed: {e}")));
        }
        r.inspect_err(|e| self.failed = Some(e.to_string()))
    }

    fn check(&self) -> std::io::Result<()> {
        match &self.failed {
            Some(e) => Err(io_err(format!("an earlier block I/O failed: {e}"))),
            None => Ok(()),
        }
    }
}

impl Drop for PipeIo {
    fn drop(&mut self) {
        // libext2fs flushes before it closes; this only catches a batch left by an error path.
        let _ = self.flush_writes();
    }
}

impl BlockIo for PipeIo {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
        self.check()?;
        if overlaps(off, buf.len(), self.wbuf_off, self.wbuf.len()) {
            self.flush_writes()?;
        }
        let end = off + buf.len() as u64;
        let cached = off >= self.rcache_off && end <= self.rcache_off + self.rcache.len() as u64;
        if !cached {
            let len = (buf.len().max(READ_AHEAD) as u64).min(self.size.saturating_sub(off));
            let len = (len as usize).max(buf.len());
            // The read-ahead must not fetch blocks whose newer bytes are still in the write
            // batch: the cache would serve the old ones once the batch is sent.
            if overlaps(off, len, self.wbuf_off, self.wbuf.len()) {
                self.flush_writes()?;
            }
            let r = self.fetch(off, len);
            self.rcache = self.sticky(r)?;
            self.rcache_off = off;
        }
        let at = (off - self.rcache_off) as usize;
        buf.copy_from_slice(&self.rcache[at..at + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, buf: &[u8], off: u64) -> std::io::Result<()> {
        self.check()?;
        if overlaps(off, buf.len(), self.rcache_off, self.rcache.len()) {
            self.rcache.clear();
        }
        let contiguous = !self.wbuf.is_empty() && off == self.wbuf_off + self.wbuf.len() as u64;
        if contiguous && self.wbuf.len() + buf.len() <= WRITE_BATCH {
            self.wbuf.extend_from_slice(buf);
            return Ok(());
        }
        self.flush_writes()?;
        self.wbuf_off = off;
        self.wbuf = buf.to_vec();
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_writes()?;
        let r = write_frame(&mut std::io::stdout().lock(), b'F', &[])
            .and_then(|()| reply(b'K').map(drop));
        self.sticky(r)
    }
}

fn is_refusal(e: &anyhow::Error) -> bool {
    e.downcast_ref::<super::ext2fs::ExtError>()
        .is_some_and(super::ext2fs::ExtError::is_refusal)
        || e.downcast_ref::<super::ntfs::NtfsError>()
            .is_some_and(super::ntfs::NtfsError::is_refusal)
}

fn answer(r: Result<Option<String>>, data: &[u8]) -> std::io::Result<()> {
    let a = match r {
        Ok(value) => Answer {
            error: None,
            refused: false,
            value,
        },
        Err(e) => Answer {
            refused: is_refusal(&e),
            error: Some(format!("{e:#}")),
            value: None,
        },
    };
    write_json(&mut std::io::stdout().lock(), b'A', &a, data)
}

/// Which library a helper runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ext,
    Ntfs,
}

impl Kind {
    pub fn arg(self) -> &'static str {
        match self {
            Kind::Ext => "ext",
            Kind::Ntfs => "ntfs",
        }
    }
}

/// The operations a helper serves, over whichever library writes its filesystem.
trait HelperFs {
    fn write_file(&mut self, path: &str, data: &[u8], new: NewMeta) -> Result<()>;
    fn read_file(&mut self, path: &str, limit: u64) -> Result<Vec<u8>>;
    fn mkdir_p(&mut self, path: &str, mode: u32) -> Result<()>;
    fn symlink(&mut self, path: &str, target: &str) -> Result<()>;
    fn rename(&mut self, from: &str, to: &str) -> Result<()>;
    fn chmod(&mut self, path: &str, mode: u32) -> Result<()>;
    fn remove(&mut self, path: &str) -> Result<()>;
    fn rmdir(&mut self, path: &str) -> Result<()>;
    fn close(self: Box<Self>) -> Result<()>;
}

impl HelperFs for ExtFs {
    fn write_file(&mut self, path: &str, data: &[u8], new: NewMeta) -> Result<()> {
        Ok(ExtFs::write_file(self, path, data, new)?)
    }
    fn read_file(&mut self, path: &str, limit: u64) -> Result<Vec<u8>> {
        Ok(ExtFs::read_file(self, path, limit)?)
    }
    fn mkdir_p(&mut self, path: &str, mode: u32) -> Result<()> {
        Ok(ExtFs::mkdir_p(self, path, mode)?)
    }
    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        Ok(ExtFs::symlink(self, path, target)?)
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        Ok(ExtFs::rename(self, from, to)?)
    }
    fn chmod(&mut self, path: &str, mode: u32) -> Result<()> {
        Ok(ExtFs::chmod(self, path, mode)?)
    }
    fn remove(&mut self, path: &str) -> Result<()> {
        Ok(ExtFs::remove(self, path)?)
    }
    fn rmdir(&mut self, path: &str) -> Result<()> {
        Ok(ExtFs::rmdir(self, path)?)
    }
    fn close(self: Box<Self>) -> Result<()> {
        Ok(ExtFs::close(*self)?)
    }
}

/// NTFS has no POSIX modes, owners or symlinks to write; what Windows apply needs is there.
impl HelperFs for NtfsFs {
    fn write_file(&mut self, path: &str, data: &[u8], _new: NewMeta) -> Result<()> {
        NtfsFs::write_file(self, path, data)
    }
    fn read_file(&mut self, path: &str, limit: u64) -> Result<Vec<u8>> {
        NtfsFs::read_file(self, path, limit)
    }
    fn mkdir_p(&mut self, path: &str, _mode: u32) -> Result<()> {
        NtfsFs::mkdir_p(self, path)
    }
    fn symlink(&mut self, path: &str, _target: &str) -> Result<()> {
        bail!("{path}: the NTFS writer makes no symbolic links")
    }
    fn rename(&mut self, from: &str, _to: &str) -> Result<()> {
        bail!("{from}: the NTFS writer does not rename")
    }
    fn chmod(&mut self, path: &str, _mode: u32) -> Result<()> {
        bail!("{path}: NTFS has no POSIX modes to set")
    }
    fn remove(&mut self, path: &str) -> Result<()> {
        NtfsFs::remove(self, path)
    }
    fn rmdir(&mut self, path: &str) -> Result<()> {
        NtfsFs::rmdir(self, path)
    }
    fn close(self: Box<Self>) -> Result<()> {
        NtfsFs::close(*self)
    }
}

/// The helper's main loop. Returns when the parent closes the filesystem or the pipe.
pub fn run(kind: Kind) -> Result<()> {
    // Nothing may be read from the guest before the cage is on.
    if let Err(e) = super::sandbox::enter() {
        let msg = format!("the sandbox could not be set up: {e:#}");
        answer(Err(anyhow::anyhow!(msg.clone())), &[])?;
        bail!(msg);
    }
    let mut fs: Option<Box<dyn HelperFs>> = None;
    loop {
        let (tag, payload) = match read_frame(&mut std::io::stdin().lock()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if tag != b'Q' {
            bail!("unexpected frame {:?} from the parent", tag as char);
        }
        let (req, data): (Request, &[u8]) = split_json(&payload)?;
        let mut out = vec![];
        let r = handle(kind, &mut fs, req.clone(), data, &mut out);
        let closing = matches!(req, Request::Close);
        answer(r, &out)?;
        if closing {
            return Ok(());
        }
    }
}

/// Opens the filesystem: the helper's answer to `Open` is why it must not be written, if so.
fn open(kind: Kind, size: u64) -> Result<(Box<dyn HelperFs>, Option<String>)> {
    let io = Box::new(PipeIo::new(size));
    Ok(match kind {
        Kind::Ext => {
            let f = ExtFs::open(io)?;
            let why = f.unsupported();
            (Box::new(f), why)
        }
        Kind::Ntfs => (Box::new(NtfsFs::open(io)?), None),
    })
}

fn handle(
    kind: Kind,
    fs: &mut Option<Box<dyn HelperFs>>,
    req: Request,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<Option<String>> {
    if let Request::Open { size } = req {
        let (f, why) = open(kind, size)?;
        *fs = Some(f);
        return Ok(why);
    }
    if let Request::Close = req {
        if let Some(f) = fs.take() {
            f.close()?;
        }
        return Ok(None);
    }
    let Some(f) = fs.as_mut() else {
        bail!("no filesystem is open");
    };
    match req {
        Request::WriteFile {
            path,
            mode,
            new_mode,
            uid,
            gid,
        } => {
            f.write_file(
                &path,
                data,
                NewMeta {
                    mode: new_mode,
                    uid,
                    gid,
                },
            )?;
            if let Some(m) = mode {
                f.chmod(&path, m)?;
            }
        }
        Request::ReadFile { path, limit } => *out = f.read_file(&path, limit)?,
        Request::MkdirP { path, mode } => f.mkdir_p(&path, mode)?,
        Request::Symlink { path, target } => f.symlink(&path, &target)?,
        Request::Rename { from, to } => f.rename(&from, &to)?,
        Request::Chmod { path, mode } => f.chmod(&path, mode)?,
        Request::Remove { path } => f.remove(&path)?,
        Request::Rmdir { path } => f.rmdir(&path)?,
        Request::Open { .. } | Request::Close => unreachable!("handled above"),
    }
    Ok(None)
}

/// `revirt __native-helper selftest [DIR]`: cages itself (as the ext/NTFS helpers, or with
/// DIR as the hive helper) and prints which probes were denied (JSON).
pub fn run_selftest(dir: Option<std::ffi::OsString>) -> Result<()> {
    let dir = dir.map(std::path::PathBuf::from);
    let caged = match &dir {
        Some(d) => super::sandbox::enter_dir(d)?,
        None => super::sandbox::enter()?,
    };
    let mut probes = super::sandbox::probe();
    let mut inside = serde_json::Value::Null;
    if let Some(d) = &dir {
        let (more, ok) = super::sandbox::probe_dir(d);
        // With files allowed, fd 3 may legitimately be a file the probes opened.
        probes.retain(|p| p.0 != "write fd 3");
        probes.extend(more);
        inside = ok.into();
    }
    let mut o = std::io::stdout().lock();
    let j = serde_json::json!({"caged": caged, "probes": probes, "inside_writable": inside});
    o.write_all(j.to_string().as_bytes())?;
    o.write_all(b"\n")?;
    Ok(())
}
