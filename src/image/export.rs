//! Serving a checked disk to qemu-based tools (the libguestfs appliance) without letting qemu
//! resolve a tenant's backing names again.
//!
//! ```text
//!   [overlay (qcow2, rw)] -> input (fmt) -> backing 1 (fmt) -> ... -> last    (node graph)
//!        qemu-storage-daemon --blockdev ... backing=<node> ... --export nbd on a unix socket
//!   libguestfs add_drive(protocol=nbd, server=unix:SOCK, format=raw)
//! ```
//! Every node names its file and format, and its backing by node name (or none): qemu opens
//! exactly the files [`ImageInfo`] lists, which revirt's own open already checked against the
//! caller's [`super::OpenPolicy`].
use super::{Format, ImageInfo};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long qemu-storage-daemon may take to open its images and create the socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One disk exported over NBD by a qemu-storage-daemon child; the daemon stops (flushing) when
/// this is dropped.
pub struct NbdExport {
    child: Child,
    dir: tempfile::TempDir,
    pub name: String,
}

impl NbdExport {
    /// Exports `disk` (and its backing chain, read-only), with `overlay` (a qcow2 file revirt
    /// created over the disk) on top if given. Writes go to the top node when `writable`.
    pub fn start(disk: &ImageInfo, overlay: Option<&Path>, writable: bool) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("revirt-nbd-")
            .tempdir()
            .context("creating a folder for the NBD socket")?;
        let sock = dir.path().join("nbd.sock");
        let args = blockdev_args(disk, overlay, writable)?;
        let mut cmd = Command::new("qemu-storage-daemon");
        // If revirt dies (killed), the daemon goes too instead of holding the images locked.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        cmd.args(&args)
            .arg("--nbd-server")
            .arg(format!("addr.type=unix,addr.path={}", sock.display()))
            .arg("--export")
            .arg(format!(
                "type=nbd,id=e0,node-name=top,name=disk,writable={}",
                if writable { "on" } else { "off" }
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context(
            "running qemu-storage-daemon (bash .ci/deps.sh installs qemu-system-common)",
        )?;
        let t = Instant::now();
        while !sock.exists() {
            if let Some(st) = child.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    std::io::Read::read_to_string(&mut e, &mut err).ok();
                }
                bail!(
                    "qemu-storage-daemon could not open {} ({st}): {}",
                    disk.path,
                    err.trim()
                );
            }
            if t.elapsed() > START_TIMEOUT {
                child.kill().ok();
                child.wait().ok();
                bail!("qemu-storage-daemon did not start within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(NbdExport {
            child,
            dir,
            name: "disk".into(),
        })
    }

    /// The unix socket the export listens on.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("nbd.sock")
    }
}

impl Drop for NbdExport {
    fn drop(&mut self) {
        // SIGTERM makes qemu-storage-daemon flush and close its images cleanly.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The `--blockdev` arguments (JSON, which can say `"backing": null`) for the node graph:
/// leaves first, each format node naming its backing node explicitly, or none.
fn blockdev_args(disk: &ImageInfo, overlay: Option<&Path>, writable: bool) -> Result<Vec<String>> {
    let mut layers: Vec<(PathBuf, Format)> = vec![(canonical(Path::new(&disk.path))?, disk.format)];
    for (p, f) in disk.backing_chain.iter().zip(&disk.backing_formats) {
        layers.push((canonical(Path::new(p))?, *f));
    }
    if let Some(o) = overlay {
        layers.insert(0, (canonical(o)?, Format::Qcow2));
    }
    let n = layers.len();
    let mut args = vec![];
    let mut below: Option<String> = None;
    for (i, (path, fmt)) in layers.iter().enumerate().rev() {
        let top = i == 0;
        let read_only = !(top && writable);
        let name = if top {
            "top".to_string()
        } else {
            format!("n{i}")
        };
        let mut node = serde_json::json!({
            "driver": fmt.as_str(),
            "node-name": name,
            "read-only": read_only,
            "file": {"driver": "file", "filename": path, "read-only": read_only},
        });
        if *fmt == Format::Qcow2 {
            node["backing"] = below.clone().map_or(serde_json::Value::Null, Into::into);
        } else if i + 1 < n {
            bail!("{}: a raw image cannot have a backing file", path.display());
        }
        args.push("--blockdev".into());
        args.push(node.to_string());
        below = Some(name);
    }
    Ok(args)
}

/// The same chain as one nested `json:` filename for qemu-img (each layer names its file,
/// format and backing; the last `backing: null`), so qemu-img resolves no backing name itself.
pub fn json_filename(disk: &ImageInfo, overlay: Option<&Path>) -> Result<String> {
    let mut layers: Vec<(PathBuf, Format)> = vec![(canonical(Path::new(&disk.path))?, disk.format)];
    for (p, f) in disk.backing_chain.iter().zip(&disk.backing_formats) {
        layers.push((canonical(Path::new(p))?, *f));
    }
    if let Some(o) = overlay {
        layers.insert(0, (canonical(o)?, Format::Qcow2));
    }
    let mut below: Option<serde_json::Value> = None;
    for (i, (path, fmt)) in layers.iter().enumerate().rev() {
        let mut node = serde_json::json!({
            "driver": fmt.as_str(),
            "file": {"driver": "file", "filename": path},
        });
        if *fmt == Format::Qcow2 {
            node["backing"] = below.take().unwrap_or(serde_json::Value::Null);
        } else if i + 1 < layers.len() {
            bail!("{}: a raw image cannot have a backing file", path.display());
        }
        below = Some(node);
    }
    Ok(format!("json:{}", below.expect("at least one layer")))
}

fn canonical(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(path: &str, fmt: Format, chain: &[(&str, Format)]) -> ImageInfo {
        ImageInfo {
            path: path.into(),
            format: fmt,
            virtual_size: 0,
            file_size: 0,
            backing_chain: chain.iter().map(|(p, _)| p.to_string()).collect(),
            backing_formats: chain.iter().map(|(_, f)| *f).collect(),
        }
    }

    #[test]
    fn every_node_names_its_backing_explicitly() {
        let d = tempfile::tempdir().unwrap();
        for f in ["top.qcow2", "base.raw", "o.qcow2"] {
            std::fs::write(d.path().join(f), b"x").unwrap();
        }
        let p = |f: &str| d.path().join(f).display().to_string();
        let i = info(
            &p("top.qcow2"),
            Format::Qcow2,
            &[(&p("base.raw"), Format::Raw)],
        );
        let args = blockdev_args(&i, Some(&d.path().join("o.qcow2")), true).unwrap();
        let nodes: Vec<serde_json::Value> = args
            .iter()
            .skip(1)
            .step_by(2)
            .map(|a| serde_json::from_str(a).unwrap())
            .collect();
        assert_eq!(nodes.len(), 3, "{args:?}");
        assert_eq!(nodes[0]["driver"], "raw");
        assert_eq!(nodes[0]["node-name"], "n2");
        assert!(nodes[0].get("backing").is_none());
        assert_eq!(nodes[1]["backing"], "n2");
        assert_eq!(nodes[1]["read-only"], true);
        assert_eq!(nodes[1]["file"]["filename"], p("top.qcow2"));
        assert_eq!(nodes[2]["node-name"], "top");
        assert_eq!(nodes[2]["backing"], "n1");
        assert_eq!(nodes[2]["read-only"], false);
        // Without an overlay the input is the top and the chain ends in "backing": null.
        let solo = info(&p("top.qcow2"), Format::Qcow2, &[]);
        let a = blockdev_args(&solo, None, false).unwrap();
        let top: serde_json::Value = serde_json::from_str(&a[1]).unwrap();
        assert!(top["backing"].is_null() && top.get("backing").is_some());
        assert_eq!(top["read-only"], true);
    }
}
