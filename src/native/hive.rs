//! Registry edits without the appliance: libhivex on a hive's bytes, in a caged helper
//! (`revirt __native-helper hive DIR`).
//!
//! libhivex opens and commits a hive only by path, so the parent puts the bytes in a private
//! folder, the helper cages itself with that folder as the only path it can open (landlock)
//! and no network, file or process reach beyond it (seccomp), reads the edits on stdin, edits
//! and commits the hive there, and exits; the parent reads the result back. Keys are found
//! case-insensitively and created where missing, as the appliance's hivex does.
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all
)]
mod ffi {
    include!(concat!(env!("OUT_DIR"), "/hivex_bindings.rs"));
}

/// One value to set: `key` below the hive's root (`\`-separated), REG_* type and raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HiveEdit {
    pub key: String,
    pub name: String,
    pub ty: u32,
    pub data: Vec<u8>,
}

/// File name of the hive inside the helper's folder.
const HIVE: &str = "hive";
/// Largest hive edited (a SYSTEM hive is tens of MB; SOFTWARE can pass 100 MB).
pub const MAX_HIVE: usize = 512 << 20;
/// How long the helper may take (a real edit takes well under a second).
const DEADLINE: Duration = Duration::from_secs(120);

/// Applies `edits` to the hive `data` in a caged helper and returns the committed hive.
pub fn edit(name: &str, data: &[u8], edits: &[HiveEdit]) -> Result<Vec<u8>> {
    if data.len() > MAX_HIVE {
        bail!(
            "{name}: {} bytes is over the {MAX_HIVE}-byte hive limit",
            data.len()
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("revirt-hive-")
        .tempdir()
        .context("creating the hive helper's folder")?;
    let file = dir.path().join(HIVE);
    std::fs::write(&file, data).with_context(|| format!("writing {}", file.display()))?;
    let mut child = Command::new(super::client::helper_exe()?)
        .args(["__native-helper", "hive"])
        .arg(dir.path())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the hive helper")?;
    let mut stdin = child.stdin.take().context("hive helper stdin")?;
    // Drained while it runs: a helper that writes a lot to stderr must not stall on the pipe.
    let stderr = child.stderr.take().context("hive helper stderr")?;
    let errs = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.take(64 << 10).read_to_string(&mut err);
        err
    });
    let json = serde_json::to_vec(edits)?;
    // The edits are small (a pipe buffer holds them); a helper that died early is seen below.
    let _ = stdin.write_all(&json);
    drop(stdin);
    let until = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= until {
            child.kill().ok();
            child.wait().ok();
            bail!("{name}: the hive helper took over {DEADLINE:?} and was stopped");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let err = errs.join().unwrap_or_default();
    if !status.success() {
        let err = err.trim();
        if err.contains("sandbox could not be set up") {
            return Err(crate::error::Refused(format!("{name}: {err}")).into());
        }
        bail!("{name}: the hive helper failed ({status}): {err}");
    }
    let len = std::fs::metadata(&file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    if len > MAX_HIVE as u64 {
        bail!("{name}: the edited hive grew past {MAX_HIVE} bytes");
    }
    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))
}

/// The helper: cage, read the edits, edit `DIR/hive`, commit.
pub fn run_helper(dir: Option<std::ffi::OsString>) -> Result<()> {
    let dir = dir.context("__native-helper hive: expected the hive's folder")?;
    let dir = Path::new(&dir);
    warm_iconv();
    if let Err(e) = super::sandbox::enter_dir(dir) {
        bail!("the sandbox could not be set up: {e:#}");
    }
    let mut json = vec![];
    std::io::stdin()
        .take(64 << 20)
        .read_to_end(&mut json)
        .context("reading the edits")?;
    let edits: Vec<HiveEdit> = serde_json::from_slice(&json).context("parsing the edits")?;
    let path = dir.join(HIVE);
    Hive::open(&path)?.apply(&edits)
}

/// libhivex converts key and value names with iconv, whose LATIN1 converter glibc loads from a
/// gconv module on first use: a file the cage cannot open (nor map executable). Opened once here,
/// before the cage, and kept open, the modules stay loaded for hivex's own iconv_open calls.
fn warm_iconv() {
    for (to, from) in [
        (c"LATIN1", c"UTF-8"),
        (c"UTF-8", c"LATIN1"),
        (c"UTF-16LE", c"UTF-8"),
        (c"UTF-8", c"UTF-16LE"),
    ] {
        // SAFETY: constant NUL-terminated names; the descriptor is deliberately never closed.
        unsafe { libc::iconv_open(to.as_ptr(), from.as_ptr()) };
    }
}

/// An open hivex handle, closed on drop.
struct Hive(*mut ffi::hive_h);

fn c(s: &str, what: &str) -> Result<CString> {
    CString::new(s).with_context(|| format!("{what}: contains a NUL byte"))
}

fn os_err(what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", std::io::Error::last_os_error())
}

impl Hive {
    fn open(path: &Path) -> Result<Self> {
        let p = c(&path.to_string_lossy(), "hive path")?;
        // SAFETY: p is NUL-terminated; a null handle is an error.
        let h = unsafe { ffi::hivex_open(p.as_ptr(), ffi::HIVEX_OPEN_WRITE as i32) };
        if h.is_null() {
            return Err(os_err("hivex_open (not a valid hive?)"));
        }
        Ok(Hive(h))
    }

    /// Every edit, then one commit.
    fn apply(self, edits: &[HiveEdit]) -> Result<()> {
        // SAFETY: self.0 is an open handle for every call below; strings live across them.
        unsafe {
            let root = ffi::hivex_root(self.0);
            if root == 0 {
                return Err(os_err("hivex_root"));
            }
            for e in edits {
                let mut node = root;
                for comp in e.key.split('\\').filter(|c| !c.is_empty()) {
                    let cc = c(comp, &e.key)?;
                    let child = ffi::hivex_node_get_child(self.0, node, cc.as_ptr());
                    node = if child != 0 {
                        child
                    } else {
                        let n = ffi::hivex_node_add_child(self.0, node, cc.as_ptr());
                        if n == 0 {
                            return Err(os_err(&format!("adding key {}", e.key)));
                        }
                        n
                    };
                }
                let key = c(&e.name, &e.key)?;
                let v = ffi::hive_set_value {
                    key: key.as_ptr() as *mut _,
                    t: e.ty,
                    len: e.data.len(),
                    value: e.data.as_ptr() as *mut _,
                };
                if ffi::hivex_node_set_value(self.0, node, &v, 0) != 0 {
                    return Err(os_err(&format!("setting {}\\{}", e.key, e.name)));
                }
            }
            if ffi::hivex_commit(self.0, std::ptr::null(), 0) != 0 {
                return Err(os_err("hivex_commit"));
            }
        }
        Ok(())
    }
}

impl Drop for Hive {
    fn drop(&mut self) {
        // SAFETY: the handle is open and closed only here.
        unsafe { ffi::hivex_close(self.0) };
    }
}
