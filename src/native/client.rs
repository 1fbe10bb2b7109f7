//! The parent's side of a helper: spawns `revirt __native-helper ext|ntfs` for one volume, serves
//! its block requests from the output disks (checked against the volume's bounds and mapped
//! through its extents) and sends it the filesystem operations.
use super::nbd::NbdDisk;
use super::proto::{read_frame, split_json, write_frame, write_json, Answer, Request};
use crate::image::{Extent, Via};
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a helper may stay silent (no block request, no answer) before it is killed; also
/// how long one frame may take to cross the pipe either way.
const SILENCE: Duration = Duration::from_secs(120);
/// How long one helper may work in all, however busy it keeps the pipe (a hostile filesystem
/// can make libext2fs loop over block requests without ever going silent):
/// `REVIRT_HELPER_BUDGET_SECS` seconds, by default ten minutes (a real repair takes seconds).
fn budget() -> Duration {
    std::env::var("REVIRT_HELPER_BUDGET_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(600), Duration::from_secs)
}

/// Largest block request served at once.
const MAX_IO: usize = 64 << 20;

/// A volume as laid out on the output disks (same offsets as on the inputs).
pub struct MappedVolume {
    pub name: String,
    pub size: u64,
    /// Sorted by `start` within the volume, contiguous from 0.
    pieces: Vec<Piece>,
    disks: Rc<Vec<NbdDisk>>,
}

/// `len` bytes of the volume from `start` lie at `off` of `on`.
struct Piece {
    start: u64,
    len: u64,
    on: On,
    off: u64,
}

enum On {
    /// An output disk (index into `disks`).
    Disk(usize),
    /// The plaintext of an opened LUKS payload: encrypted on the way out.
    Crypt(Box<CryptVolume>),
    /// An md raid1 array: read from the first mirror, written to every one.
    Mirror(Vec<MappedVolume>),
}

/// A LUKS payload: its sector transform over the payload's ciphertext, mapped in turn.
struct CryptVolume {
    crypt: std::sync::Arc<crate::luks::Crypt>,
    inner: MappedVolume,
}

impl CryptVolume {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<()> {
        let (first, at, n) = self.crypt.span(off, buf.len());
        let mut tmp = vec![0u8; n];
        self.inner.read_at(&mut tmp, at)?;
        self.crypt.decrypt(&mut tmp, first);
        let skip = (off - at) as usize;
        buf.copy_from_slice(&tmp[skip..skip + buf.len()]);
        Ok(())
    }

    /// Encrypts and writes `buf`; a write that does not cover whole sectors first reads back
    /// the sectors it shares with what is already there.
    fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        let (first, at, n) = self.crypt.span(off, buf.len());
        let mut tmp = if at == off && n == buf.len() {
            buf.to_vec()
        } else {
            let mut t = vec![0u8; n];
            self.read_at(&mut t, at)?;
            let skip = (off - at) as usize;
            t[skip..skip + buf.len()].copy_from_slice(buf);
            t
        };
        self.crypt.encrypt(&mut tmp, first);
        self.inner.write_raw(&tmp, at)
    }
}

impl MappedVolume {
    /// Maps `layout` (a volume's extents on the input images, possibly through opened LUKS
    /// payloads) onto `disks`, whose order and paths are `images`.
    pub fn new(
        name: &str,
        size: u64,
        layout: &[Extent],
        images: &[String],
        disks: Rc<Vec<NbdDisk>>,
    ) -> Result<Self> {
        let mut pieces: Vec<Piece> = vec![];
        let mut at = 0;
        for e in layout {
            let sub =
                |l: &[Extent], len| MappedVolume::new(&e.image, len, l, images, disks.clone());
            let (on, room) = match e.via.as_deref() {
                Some(Via::Crypt { crypt, inner }) => {
                    if !crypt.len.is_multiple_of(crypt.sector) {
                        bail!("{}: payload is not whole sectors", e.image);
                    }
                    let (inner, len) = (sub(inner, crypt.len)?, crypt.len);
                    let crypt = crypt.clone();
                    (On::Crypt(Box::new(CryptVolume { crypt, inner })), len)
                }
                Some(Via::Mirror { len, mirrors }) => {
                    if mirrors.is_empty() {
                        bail!("{}: an array without mirrors", e.image);
                    }
                    let m: Result<Vec<_>> = mirrors.iter().map(|l| sub(l, *len)).collect();
                    (On::Mirror(m?), *len)
                }
                None => {
                    let i = images.iter().position(|p| *p == e.image).with_context(|| {
                        format!("{name}: lies on {}, which is not an input", e.image)
                    })?;
                    (On::Disk(i), disks[i].size())
                }
            };
            if e.start != at || e.offset.checked_add(e.len).is_none_or(|x| x > room) {
                bail!("{name}: its extents do not map onto the output disks");
            }
            pieces.push(Piece {
                start: e.start,
                len: e.len,
                on,
                off: e.offset,
            });
            at += e.len;
        }
        if at != size {
            bail!("{name}: extents cover {at} of {size} bytes");
        }
        Ok(MappedVolume {
            name: name.into(),
            size,
            pieces,
            disks,
        })
    }

    /// Calls `f(piece's target, offset there, range in buf)` for each piece of `[off, off+len)`.
    fn each(
        &self,
        off: u64,
        len: usize,
        mut f: impl FnMut(&On, u64, std::ops::Range<usize>) -> Result<()>,
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
            let i = self.pieces.partition_point(|p| p.start + p.len <= o);
            let p = &self.pieces[i];
            let n = ((p.start + p.len - o) as usize).min(len - done);
            f(&p.on, p.off + o - p.start, done..done + n)?;
            done += n;
            o += n as u64;
        }
        Ok(())
    }

    pub fn read_at(&self, buf: &mut [u8], off: u64) -> Result<()> {
        self.each(off, buf.len(), |on, at, r| match on {
            On::Disk(d) => self.disks[*d].read_at(&mut buf[r], at),
            On::Crypt(c) => c.read_at(&mut buf[r], at),
            On::Mirror(m) => m[0].read_at(&mut buf[r], at),
        })
    }

    pub fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        crate::test_kill_point(&format!("write-{n}"));
        self.write_raw(buf, off)
    }

    fn write_raw(&self, buf: &[u8], off: u64) -> Result<()> {
        self.each(off, buf.len(), |on, at, r| match on {
            On::Disk(d) => self.disks[*d].write_at(&buf[r], at),
            On::Crypt(c) => c.write_at(&buf[r], at),
            On::Mirror(m) => m.iter().try_for_each(|v| v.write_raw(&buf[r.clone()], at)),
        })
    }

    /// Flushes every output disk under the volume.
    pub fn flush(&self) -> Result<()> {
        let mut seen = vec![];
        self.disks_under(&mut seen);
        seen.iter().try_for_each(|&d| self.disks[d].flush())
    }

    fn disks_under(&self, seen: &mut Vec<usize>) {
        for p in &self.pieces {
            match &p.on {
                On::Disk(d) if !seen.contains(d) => seen.push(*d),
                On::Disk(_) => {}
                On::Crypt(c) => c.inner.disks_under(seen),
                On::Mirror(m) => m.iter().for_each(|v| v.disks_under(seen)),
            }
        }
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
    /// When its [`budget`] runs out.
    deadline: Instant,
    budget: Duration,
}

/// The program to run as the helper: this revirt binary, or `$REVIRT_EXE` for programs that
/// embed revirt's library (their own binary has no helper mode).
pub(crate) fn helper_exe() -> Result<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("REVIRT_EXE") {
        return Ok(p.into());
    }
    std::env::current_exe().context("finding the revirt binary to run the helper")
}

impl Helper {
    /// Starts a helper of `kind` and opens the volume's filesystem in it.
    pub fn start(kind: super::helper::Kind, vol: MappedVolume) -> Result<Self> {
        let mut child = Command::new(helper_exe()?)
            .args(["__native-helper", kind.arg()])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the native-write helper")?;
        let stdin = child.stdin.take().context("helper stdin")?;
        let stdout = child.stdout.take().context("helper stdout")?;
        // Non-blocking, so a helper that stops reading cannot hold a write forever (TimedWrite).
        // SAFETY: fcntl on a descriptor we own; only O_NONBLOCK is added.
        unsafe {
            let fd = stdin.as_raw_fd();
            libc::fcntl(
                fd,
                libc::F_SETFL,
                libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
            );
        }
        let budget = budget();
        let mut h = Helper {
            child,
            stdin,
            stdout,
            vol,
            unsupported: None,
            deadline: Instant::now() + budget,
            budget,
        };
        let size = h.vol.size;
        let (a, _) = h.call(&Request::Open { size }, &[])?;
        h.unsupported = a.value;
        Ok(h)
    }

    pub fn name(&self) -> &str {
        &self.vol.name
    }

    /// Sends one request and serves the helper's block I/O until it answers. A helper that
    /// dies meanwhile (a crash in libext2fs) is reported as such.
    pub fn call(&mut self, req: &Request, data: &[u8]) -> Result<(Answer, Vec<u8>)> {
        let r = self.exchange(req, data);
        if r.is_err() && Instant::now() >= self.deadline {
            return Err(self.over_budget());
        }
        if let Err(e) = &r {
            let pipe = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| {
                    matches!(
                        io.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe
                    )
                })
            });
            if let Some(how) = pipe.then(|| self.ended()).flatten() {
                bail!("helper for {} {how}", self.vol.name);
            }
        }
        r
    }

    fn exchange(&mut self, req: &Request, data: &[u8]) -> Result<(Answer, Vec<u8>)> {
        let what = || format!("helper for {}", self.vol.name);
        let until = self.deadline;
        write_json(
            &mut TimedWrite::new(&mut self.stdin, until),
            b'Q',
            req,
            data,
        )
        .with_context(what)?;
        loop {
            if Instant::now() >= self.deadline {
                return Err(self.over_budget());
            }
            let (tag, p) =
                read_frame(&mut TimedRead::new(&mut self.stdout, until)).with_context(what)?;
            let mut out = TimedWrite::new(&mut self.stdin, until);
            let sent = match tag {
                b'R' => {
                    let (off, len) = parse_rw(&p, true)?;
                    let mut buf = vec![0u8; len];
                    match self.vol.read_at(&mut buf, off) {
                        Ok(()) => write_frame(&mut out, b'D', &[&buf]),
                        Err(e) => write_frame(&mut out, b'E', &[e.to_string().as_bytes()]),
                    }
                }
                b'W' => {
                    let (off, _) = parse_rw(&p, false)?;
                    match self.vol.write_at(&p[8..], off) {
                        Ok(()) => write_frame(&mut out, b'K', &[]),
                        Err(e) => write_frame(&mut out, b'E', &[e.to_string().as_bytes()]),
                    }
                }
                b'F' => match self.vol.flush() {
                    Ok(()) => write_frame(&mut out, b'K', &[]),
                    Err(e) => write_frame(&mut out, b'E', &[e.to_string().as_bytes()]),
                },
                b'A' => {
                    let (a, data): (Answer, &[u8]) = split_json(&p)?;
                    if let Some(e) = &a.error {
                        let msg = format!("{}: {e}", self.vol.name);
                        if a.refused {
                            return Err(crate::error::Refused(msg).into());
                        }
                        bail!(msg);
                    }
                    return Ok((a.clone(), data.to_vec()));
                }
                t => bail!("{}: unexpected frame {:?}", what(), t as char),
            };
            sent.with_context(what)?;
        }
    }

    /// Stops a helper whose budget ran out and says so.
    fn over_budget(&mut self) -> anyhow::Error {
        self.child.kill().ok();
        anyhow::anyhow!(
            "helper for {} used its whole budget of {:?} (REVIRT_HELPER_BUDGET_SECS) and was stopped: the filesystem keeps it busy far longer than any repair needs",
            self.vol.name,
            self.budget
        )
    }

    /// How the helper ended, once its pipe closed under us: "died (signal 11, SIGSEGV)" or
    /// "exited with status N"; None if it is still running a second later.
    fn ended(&mut self) -> Option<String> {
        for _ in 0..50 {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(match st.signal() {
                    Some(sig) => {
                        let name = match sig {
                            libc::SIGSEGV => ", SIGSEGV",
                            libc::SIGABRT => ", SIGABRT",
                            libc::SIGBUS => ", SIGBUS",
                            libc::SIGKILL => ", SIGKILL",
                            libc::SIGXCPU => ", SIGXCPU: its CPU time limit",
                            _ => "",
                        };
                        format!("died (signal {sig}{name})")
                    }
                    None => format!(
                        "exited with status {} before answering",
                        st.code().unwrap_or(-1)
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
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
        // Polled: a helper that answers but stays cannot hold revirt.
        let until = Instant::now() + SILENCE;
        loop {
            match unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) } {
                r if r == pid => break,
                0 if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
                0 => {
                    self.child.kill().ok();
                    bail!("helper for {} did not exit once closed", self.vol.name);
                }
                _ => bail!(
                    "waiting for the helper of {}: {}",
                    self.vol.name,
                    std::io::Error::last_os_error()
                ),
            }
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

/// Waits until `fd` is ready for `events` (POLLIN, POLLOUT), or fails once `until` has passed.
fn wait_fd(fd: RawFd, events: libc::c_short, until: Instant) -> std::io::Result<()> {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: poll on one valid descriptor.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
        match n {
            0 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {SILENCE:?}; the helper is stuck and was stopped"),
                ))
            }
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            _ => return Ok(()),
        }
    }
}

/// The helper's stdout, read with one deadline for a whole frame: a helper that stalls
/// before or in the middle of a frame cannot hold revirt.
struct TimedRead<'a> {
    r: &'a mut ChildStdout,
    until: Instant,
}

/// A frame's deadline: `SILENCE` from now, or the helper's overall deadline if sooner.
fn frame_deadline(overall: Instant) -> Instant {
    (Instant::now() + SILENCE).min(overall)
}

impl<'a> TimedRead<'a> {
    fn new(r: &'a mut ChildStdout, overall: Instant) -> Self {
        TimedRead {
            r,
            until: frame_deadline(overall),
        }
    }
}

impl Read for TimedRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        wait_fd(self.r.as_raw_fd(), libc::POLLIN, self.until)?;
        self.r.read(buf)
    }
}

/// The helper's (non-blocking) stdin, written with one deadline for a whole frame.
struct TimedWrite<'a> {
    w: &'a mut ChildStdin,
    until: Instant,
}

impl<'a> TimedWrite<'a> {
    fn new(w: &'a mut ChildStdin, overall: Instant) -> Self {
        TimedWrite {
            w,
            until: frame_deadline(overall),
        }
    }
}

impl Write for TimedWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        loop {
            match self.w.write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    wait_fd(self.w.as_raw_fd(), libc::POLLOUT, self.until)?
                }
                r => return r,
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}
