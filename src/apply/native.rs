//! The native backend of [`GuestWriter`]: every filesystem the plan touches is written by a
//! caged libext2fs helper over the output disks (see [`crate::native`]). Chosen only when all
//! of them are ext2/3/4 laid out plainly on the disks and no action needs a guest program;
//! otherwise [`choose`] says why and apply uses the appliance.
use super::writer::GuestWriter;
use super::Target;
use crate::fs::Vfs;
use crate::inspect::{Guest, Volume};
use crate::native::client::{Helper, MappedVolume};
use crate::native::helper::Kind;
use crate::native::hive::HiveEdit;
use crate::native::nbd::NbdDisk;
use crate::native::proto::{Request, MAX_FRAME};
use crate::types::LinuxInfo;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Which writer a run may use.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum WriterPref {
    /// Native where it can write safely, the appliance otherwise.
    #[default]
    Auto,
    /// Only native: refuse rather than launch the appliance.
    Native,
    /// Always the appliance.
    Appliance,
}

/// One filesystem that will be written: its mountpoint, volume and the library that writes it.
struct Mount {
    at: String,
    vol: usize,
    kind: Kind,
}

pub struct NativeWriter {
    disks: Rc<Vec<NbdDisk>>,
    images: Vec<String>,
    /// Longest mountpoint first.
    mounts: Vec<Mount>,
    /// Volume index -> (name, size, layout, writer), for the volumes in `mounts`.
    specs: BTreeMap<usize, (String, u64, Vec<crate::image::Extent>, Kind)>,
    helpers: BTreeMap<usize, Helper>,
    /// The input as inspected: resolves symlinks in the paths the plan names.
    vfs: Vfs,
    /// Paths moved away in this run: a later write there creates a file, it follows nothing.
    moved: BTreeSet<String>,
    /// Largest peak RSS of a helper so far, KiB.
    pub helper_peak_kib: u64,
}

/// The mountpoint of `path` among `mps` (longest prefix on a component boundary).
fn mountpoint_of<'a>(mps: impl Iterator<Item = &'a String>, path: &str) -> Option<&'a String> {
    mps.filter(|m| *m == "/" || path == m.as_str() || path.starts_with(&format!("{m}/")))
        .max_by_key(|m| m.len())
}

fn volume_of(guest: &Guest, dev: &str) -> Option<usize> {
    guest
        .volumes
        .iter()
        .position(|v| v.report.device == dev || v.report.aliases.iter().any(|a| a == dev))
}

/// Why volume `v` (mounted at `at`) cannot be written natively by `kind`, if so.
fn blocker(v: &Volume, at: &str, kind: Kind) -> Option<String> {
    let fstype = v.report.fstype.as_deref().unwrap_or("unknown");
    let fits = match kind {
        Kind::Ext => matches!(fstype, "ext2" | "ext3" | "ext4"),
        Kind::Ntfs => fstype == "ntfs",
    };
    if !fits {
        let only = match kind {
            Kind::Ext => "ext2/3/4",
            Kind::Ntfs => "NTFS",
        };
        return Some(format!(
            "{at} ({}) is {fstype}: only {only} has a native writer here",
            v.report.device
        ));
    }
    if v.raw.as_ref().and_then(|d| d.layout()).is_none() {
        return Some(format!(
            "{at} ({}) is not laid out plainly on the disks",
            v.report.device
        ));
    }
    if let Some(e) = v
        .report
        .journal_recovery
        .as_ref()
        .and_then(|j| j.error.as_ref())
    {
        return Some(format!("{at}: its journal cannot be replayed ({e})"));
    }
    None
}

/// What apply will write with.
pub enum Choice {
    Native(Box<NativeWriter>),
    /// The appliance, and why.
    Appliance(String),
}

/// Picks the writer for a Linux run whose actions touch `paths` (guest paths, including
/// backups, the run journal and the readiness record). `needs_guest_tool`: an action runs a
/// guest program. On `Choice::Native` the output disks are open and, where the input had a
/// journal to replay, the replay is already written to them (what the kernel would do first).
pub fn choose(
    guest: &Guest,
    target: &Target,
    l: &LinuxInfo,
    paths: &[String],
    needs_guest_tool: Option<&str>,
    pref: WriterPref,
) -> Result<Choice> {
    if pref == WriterPref::Appliance {
        return Ok(Choice::Appliance("the appliance was asked for".into()));
    }
    if let Some(t) = needs_guest_tool {
        return Ok(Choice::Appliance(format!("{t} must run inside the guest")));
    }
    let mut mounts = vec![];
    for p in paths {
        let at = mountpoint_of(l.mounts.keys(), p).with_context(|| format!("{p}: not mounted"))?;
        let dev = &l.mounts[at];
        let vol = volume_of(guest, dev).with_context(|| format!("{dev}: volume vanished"))?;
        if let Some(why) = blocker(&guest.volumes[vol], at, Kind::Ext) {
            return Ok(Choice::Appliance(why));
        }
        if !mounts.iter().any(|m: &Mount| m.at == *at) {
            mounts.push(Mount {
                at: at.clone(),
                vol,
                kind: Kind::Ext,
            });
        }
    }
    let vfs = crate::inspect::linux::guest_vfs(&guest.volumes, l)?;
    open_writer(guest, target, mounts, vfs, pref)
}

/// Picks the writer for a Windows run: native when its system volume is NTFS laid out plainly
/// on the disks and libntfs-3g agrees to write it.
pub fn choose_windows(
    guest: &Guest,
    target: &Target,
    os: &crate::types::OsReport,
    pref: WriterPref,
) -> Result<Choice> {
    if pref == WriterPref::Appliance {
        return Ok(Choice::Appliance("the appliance was asked for".into()));
    }
    let dev = &os.root.device;
    let vol = volume_of(guest, dev).with_context(|| format!("{dev}: volume vanished"))?;
    if let Some(why) = blocker(&guest.volumes[vol], "C:", Kind::Ntfs) {
        return Ok(Choice::Appliance(why));
    }
    if let Err(e) = crate::native::sandbox::landlock_available() {
        let why = format!("the hive helper's cage cannot be set up here (landlock: {e:#})");
        return match pref {
            WriterPref::Native => Err(anyhow::anyhow!(why)),
            _ => Ok(Choice::Appliance(why)),
        };
    }
    let mounts = vec![Mount {
        at: "/".into(),
        vol,
        kind: Kind::Ntfs,
    }];
    open_writer(guest, target, mounts, guest.root_vfs(os)?, pref)
}

/// Opens the output disks and starts a helper per filesystem in `mounts`; falls back to the
/// appliance (under `--writer auto`) when a helper cannot start or refuses its filesystem.
fn open_writer(
    guest: &Guest,
    target: &Target,
    mut mounts: Vec<Mount>,
    vfs: Vfs,
    pref: WriterPref,
) -> Result<Choice> {
    mounts.sort_by_key(|m| std::cmp::Reverse(m.at.len()));
    let images: Vec<String> = guest.images().iter().map(|i| i.path.clone()).collect();
    let mut disks = vec![];
    for (i, d) in guest.images().into_iter().enumerate() {
        let overlay = match target {
            Target::Overlays(o) => Some(o[i].as_path()),
            Target::InPlace => None,
        };
        disks.push(NbdDisk::open(d, overlay)?);
    }
    let mut w = NativeWriter {
        disks: Rc::new(disks),
        images,
        mounts,
        specs: BTreeMap::new(),
        helpers: BTreeMap::new(),
        vfs,
        moved: BTreeSet::new(),
        helper_peak_kib: 0,
    };
    let vols: BTreeMap<usize, Kind> = w.mounts.iter().map(|m| (m.vol, m.kind)).collect();
    for (v, kind) in vols {
        let vol = &guest.volumes[v];
        let raw = vol.raw.as_ref().context("no raw device")?;
        let layout = raw.layout().context("no layout")?;
        w.specs
            .insert(v, (vol.report.device.clone(), raw.size(), layout, kind));
        if vol.report.journal_recovery.is_some() {
            w.write_replay(v, raw.clone())?;
        }
        match w.start(v) {
            Ok(h) => {
                if let Some(why) = &h.unsupported {
                    return Ok(Choice::Appliance(format!("{}: {why}", vol.report.device)));
                }
                w.helpers.insert(v, h);
            }
            Err(e) if pref == WriterPref::Auto => {
                return Ok(Choice::Appliance(format!(
                    "native writer unavailable: {e:#}"
                )))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Choice::Native(Box::new(w)))
}

impl NativeWriter {
    fn mapped(&self, v: usize) -> Result<MappedVolume> {
        let (name, size, layout, _) = &self.specs[&v];
        MappedVolume::new(name, *size, layout, &self.images, self.disks.clone())
    }

    fn start(&self, v: usize) -> Result<Helper> {
        Helper::start(self.specs[&v].3, self.mapped(v)?)
    }

    /// Writes the journal replay of volume `v` (read from `raw`) to the output: the blocks
    /// the in-memory replay changed, read through it. The helper then opens a clean filesystem.
    fn write_replay(&self, v: usize, raw: crate::image::Dev) -> Result<()> {
        let r = crate::fs::jbd2::recover(raw)?.context("journal needs no recovery any more")?;
        let (dev, bs, out) = (r.dev(), r.block_size(), self.mapped(v)?);
        let mut buf = vec![0u8; bs as usize];
        for b in r.changed_blocks() {
            dev.read_at(&mut buf, b * bs)?;
            out.write_at(&buf, b * bs)?;
        }
        out.flush()
    }

    /// A symlink-free guest path for `path`: its deepest existing ancestor resolved through the
    /// input, the rest appended (created in this run).
    fn resolve(&self, path: &str, follow_last: bool) -> String {
        let follow_last = follow_last && !self.moved.contains(path);
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        for k in (0..=comps.len()).rev() {
            let prefix = format!("/{}", comps[..k].join("/"));
            let follow = k < comps.len() || follow_last;
            if let Ok(Some(r)) = self.vfs.resolve(&prefix, follow) {
                let mut out = r.trim_end_matches('/').to_string();
                for c in &comps[k..] {
                    out.push('/');
                    out.push_str(c);
                }
                return if out.is_empty() { "/".into() } else { out };
            }
        }
        path.to_string()
    }

    /// The helper writing `path` and the path within its filesystem.
    fn locate(&mut self, path: &str, follow_last: bool) -> Result<(&mut Helper, String)> {
        let p = self.resolve(path, follow_last);
        let m = self
            .mounts
            .iter()
            .filter(|m| m.at == "/" || p == m.at || p.starts_with(&format!("{}/", m.at)))
            .max_by_key(|m| m.at.len())
            .with_context(|| format!("{path}: on no filesystem opened for writing"))?;
        let rel = match m.at.as_str() {
            "/" => p.clone(),
            at => match &p[at.len()..] {
                "" => "/".to_string(),
                r => r.to_string(),
            },
        };
        let h = self
            .helpers
            .get_mut(&m.vol)
            .with_context(|| format!("{path}: its filesystem is closed"))?;
        Ok((h, rel))
    }

    /// Which library writes `path`.
    fn kind_of(&mut self, path: &str) -> Result<Kind> {
        let (h, _) = self.locate(path, true)?;
        let name = h.name().to_string();
        self.specs
            .values()
            .find(|s| s.0 == name)
            .map(|s| s.3)
            .with_context(|| format!("{path}: no writer"))
    }

    fn call(
        &mut self,
        path: &str,
        follow: bool,
        req: impl FnOnce(String) -> Request,
    ) -> Result<()> {
        let (h, rel) = self.locate(path, follow)?;
        h.call(&req(rel), &[])
            .with_context(|| format!("native write of {path}"))?;
        Ok(())
    }

    fn close_all(&mut self) -> Result<()> {
        for (_, h) in std::mem::take(&mut self.helpers) {
            let name = h.name().to_string();
            let kib = h.close().with_context(|| format!("closing {name}"))?;
            self.helper_peak_kib = self.helper_peak_kib.max(kib);
        }
        for d in self.disks.iter() {
            d.flush()?;
        }
        Ok(())
    }
}

impl GuestWriter for NativeWriter {
    fn write(&mut self, path: &str, data: &[u8], mode: Option<u32>) -> Result<()> {
        if data.len() as u64 > u64::from(MAX_FRAME) - 4096 {
            bail!(
                "{path}: {} bytes is more than a native write carries",
                data.len()
            );
        }
        let (h, rel) = self.locate(path, true)?;
        let req = Request::WriteFile {
            path: rel,
            mode,
            new_mode: mode.unwrap_or(0o644),
            uid: 0,
            gid: 0,
        };
        h.call(&req, data)
            .with_context(|| format!("native write of {path}"))?;
        self.moved.remove(path);
        Ok(())
    }
    fn mkdir_p(&mut self, path: &str) -> Result<()> {
        self.call(path, true, |p| Request::MkdirP {
            path: p,
            mode: 0o755,
        })
    }
    fn copy(&mut self, from: &str, to: &str) -> Result<()> {
        let (h, rel) = self.locate(from, true)?;
        let limit = u64::from(MAX_FRAME) - 4096;
        let (_, data) = h
            .call(&Request::ReadFile { path: rel, limit }, &[])
            .with_context(|| format!("reading {from}"))?;
        if self.kind_of(to)? == Kind::Ntfs {
            // A new NTFS file inherits its folder's security; there is no mode to copy.
            return self.write(to, &data, None);
        }
        let mode = self
            .vfs
            .stat(from)
            .ok()
            .flatten()
            .map(|m| m.mode & 0o7777)
            .unwrap_or(0o644);
        self.write(to, &data, Some(mode))
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let (h, rf) = self.locate(from, false)?;
        let hf = h.name().to_string();
        let (h, rt) = self.locate(to, false)?;
        if h.name() != hf {
            bail!("rename {from} -> {to}: crosses filesystems");
        }
        h.call(&Request::Rename { from: rf, to: rt }, &[])
            .with_context(|| format!("rename {from} -> {to}"))?;
        self.moved.insert(from.to_string());
        Ok(())
    }
    fn symlink(&mut self, target: &str, path: &str) -> Result<()> {
        let target = target.to_string();
        self.call(path, false, |p| Request::Symlink { path: p, target })
    }
    fn remove(&mut self, path: &str) -> Result<()> {
        self.call(path, false, |p| Request::Remove { path: p })
    }
    fn rmdir(&mut self, path: &str) -> Result<()> {
        self.call(path, false, |p| Request::Rmdir { path: p })
    }
    /// The hive's bytes read through its filesystem's helper, edited by the caged hive helper,
    /// written back whole.
    fn edit_hive(&mut self, path: &str, edits: &[HiveEdit]) -> Result<()> {
        let (h, rel) = self.locate(path, true)?;
        let limit = crate::native::hive::MAX_HIVE as u64;
        let (_, data) = h
            .call(&Request::ReadFile { path: rel, limit }, &[])
            .with_context(|| format!("reading {path}"))?;
        let out = crate::native::hive::edit(path, &data, edits)?;
        self.write(path, &out, None)
    }
    fn settle(&mut self) -> Result<()> {
        self.close_all()
    }
    fn reopen(&mut self, _root_dev: &str) -> Result<()> {
        let vols: BTreeSet<usize> = self.mounts.iter().map(|m| m.vol).collect();
        for v in vols {
            let h = self.start(v)?;
            self.helpers.insert(v, h);
        }
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        self.close_all()?;
        tracing::info!("native helpers: peak RSS {} KiB", self.helper_peak_kib);
        // Dropping the disks stops the daemons, which flush and close the images.
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "native"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountpoints_match_on_component_boundaries() {
        let mps: Vec<String> = ["/", "/boot", "/boot/efi", "/var"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = |p: &str| mountpoint_of(mps.iter(), p).unwrap().clone();
        assert_eq!(m("/boot/grub/grub.cfg"), "/boot");
        assert_eq!(m("/boot/efi/EFI/x"), "/boot/efi");
        assert_eq!(m("/bootx"), "/");
        assert_eq!(m("/boot"), "/boot");
        assert_eq!(m("/variable"), "/");
        assert_eq!(m("/var/lib/revirt"), "/var");
    }
}
