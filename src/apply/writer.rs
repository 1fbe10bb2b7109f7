//! The seam between what apply does and how it is written: the appliance (a helper VM whose
//! kernel mounts the guest) or native writers (libext2fs in caged helpers over NBD).
//! Paths are guest paths as the plan names them; each backend resolves them its own way.
use crate::guestfs::Appliance;
use crate::native::hive::HiveEdit;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The operations apply needs, on the guest's mounted filesystems.
pub trait GuestWriter {
    /// Writes a whole file. An existing file keeps its inode (owner, xattrs); `mode` is set
    /// when given, a new file is created 0644 root:root otherwise.
    fn write(&mut self, path: &str, data: &[u8], mode: Option<u32>) -> Result<()>;
    /// Replaces `path` with the host file `host` (big payloads built by apply).
    fn upload(&mut self, host: &Path, path: &str) -> Result<()> {
        let data = std::fs::read(host).with_context(|| format!("reading {}", host.display()))?;
        self.write(path, &data, None)
    }
    fn mkdir_p(&mut self, path: &str) -> Result<()>;
    /// Copies a file (a backup): the copy is a new file with the original's bytes.
    fn copy(&mut self, from: &str, to: &str) -> Result<()>;
    fn rename(&mut self, from: &str, to: &str) -> Result<()>;
    /// `ln -sf target path`.
    fn symlink(&mut self, target: &str, path: &str) -> Result<()>;
    /// `rm -f`.
    fn remove(&mut self, path: &str) -> Result<()>;
    fn rmdir(&mut self, path: &str) -> Result<()>;
    /// Sets registry values in the hive file at `path`, creating missing keys; one commit.
    fn edit_hive(&mut self, path: &str, edits: &[HiveEdit]) -> Result<()>;
    /// Runs a guest program (only the appliance can).
    fn command(&mut self, argv: &[String]) -> Result<String> {
        bail!(
            "{}: guest programs run only in the appliance",
            argv.join(" ")
        )
    }
    /// Makes everything written so far durable and readable by the pure readers; nothing is
    /// mounted or open for writing afterwards.
    fn settle(&mut self) -> Result<()>;
    /// After [`GuestWriter::settle`]: opens the guest's filesystems again (at least the root,
    /// `root_dev`), for the readiness record.
    fn reopen(&mut self, root_dev: &str) -> Result<()>;
    /// Flushes and releases the disks.
    fn finish(self: Box<Self>) -> Result<()>;
    /// "appliance" or "native", for the report.
    fn kind(&self) -> &'static str;
}

/// The appliance with the guest mounted read-write.
pub struct ApplianceWriter {
    pub app: Appliance,
    /// (mountpoint, device) to mount again in [`GuestWriter::reopen`], shallowest first;
    /// empty: only the root device at `/`.
    pub mounts: Vec<(String, String)>,
}

impl GuestWriter for ApplianceWriter {
    fn write(&mut self, path: &str, data: &[u8], mode: Option<u32>) -> Result<()> {
        self.app.write(path, data)?;
        if let Some(m) = mode {
            // NetworkManager ignores keyfiles readable by others: modes matter.
            self.app.chmod(m, path)?;
        }
        Ok(())
    }
    fn upload(&mut self, host: &Path, path: &str) -> Result<()> {
        Ok(self.app.upload(host, path)?)
    }
    fn mkdir_p(&mut self, path: &str) -> Result<()> {
        Ok(self.app.mkdir_p(path)?)
    }
    fn copy(&mut self, from: &str, to: &str) -> Result<()> {
        Ok(self.app.cp(from, to)?)
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        Ok(self.app.mv(from, to)?)
    }
    fn symlink(&mut self, target: &str, path: &str) -> Result<()> {
        Ok(self.app.ln_sf(target, path)?)
    }
    fn remove(&mut self, path: &str) -> Result<()> {
        Ok(self.app.rm_f(path)?)
    }
    fn rmdir(&mut self, path: &str) -> Result<()> {
        Ok(self.app.rmdir(path)?)
    }
    fn command(&mut self, argv: &[String]) -> Result<String> {
        Ok(self.app.command(argv)?)
    }
    /// The appliance's own hivex, on the mounted hive file.
    fn edit_hive(&mut self, path: &str, edits: &[HiveEdit]) -> Result<()> {
        let app = &self.app;
        app.hivex_open_rw(path)?;
        let root = app.hivex_root()?;
        for e in edits {
            let mut node = root;
            for comp in e.key.split('\\').filter(|c| !c.is_empty()) {
                node = app
                    .hivex_child_or_create(node, comp)
                    .with_context(|| format!("{path}: {}", e.key))?;
            }
            app.hivex_set_value(node, &e.name, e.ty, &e.data)
                .with_context(|| format!("{path}: {}\\{}", e.key, e.name))?;
        }
        app.hivex_commit_close()?;
        Ok(())
    }
    fn settle(&mut self) -> Result<()> {
        self.app.umount_all()?;
        self.app.sync()?;
        Ok(())
    }
    fn reopen(&mut self, root_dev: &str) -> Result<()> {
        if self.mounts.is_empty() {
            return Ok(self.app.mount_rw(root_dev, "/")?);
        }
        for (mp, dev) in &self.mounts {
            self.app
                .mount_rw(dev, mp)
                .with_context(|| format!("mounting {dev} at {mp}"))?;
        }
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<()> {
        self.app.umount_all()?;
        self.app.sync()?;
        self.app.shutdown()?;
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "appliance"
    }
}
