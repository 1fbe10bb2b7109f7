//! The parent's side of a helper: spawns `revirt __native-helper ext` for one volume, serves
//! its block requests from the output disks (checked against the volume's bounds and mapped
//! through its extents) and sends it the filesystem operations.
use super::nbd::NbdDisk;
use super::proto::{read_frame, split_json, write_frame, write_json, Answer, Request};
use crate::image::Extent;
use anyhow::{bail, Context, Result};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

/// How long a helper may stay silent (no block request, no answer) before it is killed.
const SILENCE: Duration = Duration::from_secs(120);
/// Largest block request served at once.
const MAX_IO: usize = 64 << 20;

/// A volume as laid out on the output disks (same offsets as on the inputs).
pub struct MappedVolume {
    pub name: String,
    pub size: u64,
    /// `start` within the volume; `image` is an index into `disks` (as a string from layout).
    extents: Vec<(u64, u64, usize, u64)>,
    disks: Rc<Vec<NbdDisk>>,
}

impl MappedVolume {
    /// Maps `layout` (a volume's extents on the input images) onto `disks`, whose order and
    /// paths are `images`.
    pub fn new(
        name: &str,
        size: u64,
        layout: &[Extent],
        images: &[String],
        disks: Rc<Vec<NbdDisk>>,
    ) -> Result<Self> {
        let mut extents = vec![];
        let mut at = 0;
        for e in layout {
            let i = images
                .iter()
                .position(|p| *p == e.image)
                .with_context(|| format!("{name}: lies on {}, which is not an input", e.image))?;
            if e.start != at
                || e.offset
                    .checked_add(e.len)
                    .is_none_or(|x| x > disks[i].size())
            {
                bail!("{name}: its extents do not map onto the output disks");
            }
            extents.push((e.start, e.len, i, e.offset));
            at += e.len;
        }
        if at != size {
            bail!("{name}: extents cover {at} of {size} bytes");
        }
        Ok(MappedVolume {
            name: name.into(),
            size,
            extents,
            disks,
        })
    }

    /// Calls `f(disk, disk offset, range in buf)` for each piece of `[off, off+len)`.
    fn each(
        &self,
        off: u64,
        len: usize,
        mut f: impl FnMut(&NbdDisk, u64, std::ops::Range<usize>) -> Result<()>,
    ) -> Result<()> {
        if off.checked_add(len as u64).is_none_or(|e| e > self.size) {
            bail!(
                "{}: {len} bytes at {off} lie outside the volume ({} bytes)",
                self.name,
                self.size
            );
        }
        let (mut o, mut done) = (off, 0usize);
        while done < len {
            let i = self.extents.partition_point(|e| e.0 + e.1 <= o);
            let (start, elen, disk, doff) = self.extents[i];
            let n = ((start + elen - o) as usize).min(len - done);
            f(&self.disks[disk], doff + o - start, done..done + n)?;
            done += n;
            o += n as u64;
        }
        Ok(())
    }

    pub fn read_at(&self, buf: &mut [u8], off: u64) -> Result<()> {
        self.each(off, buf.len(), |d, at, r| d.read_at(&mut buf[r], at))
    }

    pub fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        crate::test_kill_point(&format!("write-{n}"));
        self.each(off, buf.len(), |d, at, r| d.write_at(&buf[r], at))
    }

    pub fn flush(&self) -> Result<()> {
        let mut seen = vec![];
        for e in &self.extents {
            if !seen.contains(&e.2) {
                seen.push(e.2);
                self.disks[e.2].flush()?;
            }
        }
        Ok(())
    }
}

/// A running helper bound to one volume.
pub struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    vol: MappedVolume,
    /// Why the helper says this filesystem must not be written natively (from `open`).
    pub unsupported: Option<String>,
}

/// The program to run as the helper: this revirt binary, or `$REVIRT_EXE` for programs that
/// embed revirt's library (their own binary has no helper mode).
fn helper_exe() -> Result<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("REVIRT_EXE") {
        return Ok(p.into());
    }
    std::env::current_exe().context("finding the revirt binary to run the helper")
}

impl Helper {
    /// Starts a helper and opens the volume's filesystem in it.
    pub fn start(vol: MappedVolume) -> Result<Self> {
        let mut child = Command::new(helper_exe()?)
            .args(["__native-helper", "ext"])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the native-write helper")?;
        let stdin = child.stdin.take().context("helper stdin")?;
        let stdout = child.stdout.take().context("helper stdout")?;
        let mut h = Helper {
            child,
            stdin,
            stdout,
            vol,
            unsupported: None,
        };
        let size = h.vol.size;
        let (a, _) = h.call(&Request::Open { size }, &[])?;
        h.unsupported = a.value;
        Ok(h)
    }

    pub fn name(&self) -> &str {
        &self.vol.name
    }

    /// Sends one request and serves the helper's block I/O until it answers.
    pub fn call(&mut self, req: &Request, data: &[u8]) -> Result<(Answer, Vec<u8>)> {
        let what = || format!("helper for {}", self.vol.name);
        write_json(&mut self.stdin, b'Q', req, data).with_context(what)?;
        loop {
            wait_readable(&self.stdout, SILENCE).with_context(what)?;
            let (tag, p) = read_frame(&mut self.stdout).with_context(what)?;
            match tag {
                b'R' => {
                    let (off, len) = parse_rw(&p, true)?;
                    let mut buf = vec![0u8; len];
                    match self.vol.read_at(&mut buf, off) {
                        Ok(()) => write_frame(&mut self.stdin, b'D', &[&buf])?,
                        Err(e) => write_frame(&mut self.stdin, b'E', &[e.to_string().as_bytes()])?,
                    }
                }
                b'W' => {
                    let (off, _) = parse_rw(&p, false)?;
                    match self.vol.write_at(&p[8..], off) {
                        Ok(()) => write_frame(&mut self.stdin, b'K', &[])?,
                        Err(e) => write_frame(&mut self.stdin, b'E', &[e.to_string().as_bytes()])?,
                    }
                }
                b'F' => match self.vol.flush() {
                    Ok(()) => write_frame(&mut self.stdin, b'K', &[])?,
                    Err(e) => write_frame(&mut self.stdin, b'E', &[e.to_string().as_bytes()])?,
                },
                b'A' => {
                    let (a, data): (Answer, &[u8]) = split_json(&p)?;
                    if let Some(e) = &a.error {
                        bail!("{}: {e}", self.vol.name);
                    }
                    return Ok((a.clone(), data.to_vec()));
                }
                t => bail!("{}: unexpected frame {:?}", what(), t as char),
            }
        }
    }

    /// Closes the filesystem (flushing it), waits for the helper to exit and returns its peak
    /// RSS in KiB.
    pub fn close(mut self) -> Result<u64> {
        self.call(&Request::Close, &[])?;
        self.vol.flush()?;
        let pid = self.child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: wait4 on our own child with POD out-parameters.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::wait4(pid, &mut status, 0, &mut ru) } != pid {
            bail!(
                "waiting for the helper of {}: {}",
                self.vol.name,
                std::io::Error::last_os_error()
            );
        }
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            bail!("helper for {} failed (wait status {status})", self.vol.name);
        }
        Ok(ru.ru_maxrss as u64)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

/// 'R': offset + length; 'W': offset + data (length = the rest).
fn parse_rw(p: &[u8], with_len: bool) -> Result<(u64, usize)> {
    let off = u64::from_le_bytes(p.get(..8).context("short I/O frame")?.try_into()?);
    if !with_len {
        return Ok((off, p.len() - 8));
    }
    let len = u32::from_le_bytes(p.get(8..12).context("short I/O frame")?.try_into()?) as usize;
    if len > MAX_IO {
        bail!("helper asked for {len} bytes at once");
    }
    Ok((off, len))
}

fn wait_readable(r: &ChildStdout, limit: Duration) -> Result<()> {
    let mut pfd = libc::pollfd {
        fd: r.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one valid descriptor.
    let n = unsafe { libc::poll(&mut pfd, 1, limit.as_millis() as i32) };
    match n {
        0 => bail!("no answer within {limit:?}; the helper is stuck and was stopped"),
        n if n < 0 => Err(std::io::Error::last_os_error().into()),
        _ => Ok(()),
    }
}
