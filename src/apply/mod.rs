//! Apply: the only stage that writes. It reads what it needs through the pure readers, then makes
//! every change in ONE libguestfs appliance launch, on a qcow2 overlay of each input (the input's
//! bytes never change) or in place with backups and a journal for `revirt undo`.
pub mod cpio;
pub mod native;
pub mod windows;
pub mod writer;

use crate::guestfs::{Appliance, ApplianceConfig};
use crate::image::export::NbdExport;
use crate::image::ImageInfo;
use crate::inspect::Guest;
use crate::plan::{Change, RepairPlan};
use crate::types::{LinuxInfo, OsReport};
use anyhow::{bail, Context, Result};
pub use native::WriterPref;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;
use writer::{ApplianceWriter, GuestWriter};

/// Where backups and the journal of run RUN-ID live inside the guest.
pub const BACKUP_ROOT: &str = "/var/lib/revirt/backup";
/// The readiness record written into the guest.
pub const READY_PATH: &str = "/var/lib/revirt/ready.json";

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// What was done for one planned action.
#[derive(Debug, Clone, Serialize)]
pub struct ActionRecord {
    pub area: String,
    pub op: String,
    pub target: String,
    pub reason: String,
    pub sha256_before: Option<String>,
    pub sha256_after: Option<String>,
    /// Guest path of the copy kept before the change (None for new files).
    pub backup: Option<String>,
    /// Rename/symlink/new file: how undo restores it ("restore", "remove", "rename-back").
    pub undo: String,
    pub extra_target: Option<String>,
    /// What happened when it is worth saying (a guest tool's output or failure).
    pub outcome: Option<String>,
    /// Registry edits: the value before (None: it did not exist) and after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_before: Option<crate::plan::windows::RegValueSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_after: Option<crate::plan::windows::RegValueSpec>,
}

/// The journal kept in the guest for `revirt undo`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Journal {
    pub run_id: String,
    pub entries: Vec<JournalEntry>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct JournalEntry {
    pub target: String,
    /// "restore" (copy backup over target), "remove" (target was new), "rename-back" (to -> from).
    pub undo: String,
    pub backup: Option<String>,
    pub from: Option<String>,
}

/// Where writes go.
pub enum Target {
    /// One overlay per input disk, created here; inputs stay untouched.
    Overlays(Vec<PathBuf>),
    /// The input disks themselves.
    InPlace,
}

/// Creates qcow2 overlays backed by the inputs (absolute canonical backing paths, format
/// pinned). `-u`: qemu-img does not open the input, so it resolves none of the tenant's backing
/// names; every later open goes through [`NbdExport`]'s pinned node graph.
pub fn create_overlays(disks: &[&ImageInfo], outputs: &[PathBuf]) -> Result<()> {
    if disks.len() != outputs.len() {
        bail!(
            "{} input disk(s) but {} --output path(s): give one --output per input",
            disks.len(),
            outputs.len()
        );
    }
    if let Some(out) = outputs.iter().find(|o| o.exists()) {
        bail!(
            "{}: already exists; revirt will not overwrite an output",
            out.display()
        );
    }
    for (i, (d, out)) in disks.iter().zip(outputs).enumerate() {
        // All or none: a failure on a later disk removes the overlays made before it.
        create_overlay(d, out).inspect_err(|_| {
            for made in &outputs[..i] {
                let _ = std::fs::remove_file(made);
            }
        })?;
    }
    Ok(())
}

fn create_overlay(d: &ImageInfo, out: &Path) -> Result<()> {
    let abs = std::path::Path::new(&d.path)
        .canonicalize()
        .with_context(|| format!("resolving {}", d.path))?;
    let st = std::process::Command::new("qemu-img")
        .args([
            "create",
            "-q",
            "-u",
            "-f",
            "qcow2",
            "-F",
            d.format.as_str(),
            "-b",
        ])
        .arg(&abs)
        .arg(out)
        .arg(d.virtual_size.to_string())
        .status()
        .context("running qemu-img (bash .ci/deps.sh installs it)")?;
    if !st.success() {
        bail!(
            "qemu-img create overlay {} over {} failed",
            out.display(),
            abs.display()
        );
    }
    Ok(())
}

/// Payload for an action, computed before the appliance starts (pure reads only).
enum Payload {
    Bytes(Vec<u8>),
    HostFile(PathBuf),
    None,
}

/// Builds the new initramfs: original bytes + an appended newc segment with the modules (as
/// stored on disk), the module index files, and the generated config files.
fn build_initramfs(vfs: &crate::fs::Vfs, l: &LinuxInfo, change: &Change) -> Result<Vec<u8>> {
    let Change::AppendInitramfs {
        path,
        kernel,
        modules,
        extra,
        modules_dir_in_initramfs,
    } = change
    else {
        unreachable!()
    };
    let orig = vfs
        .read_file(path)
        .with_context(|| format!("reading {path}"))?;
    let k = l
        .kernels
        .iter()
        .find(|k| &k.version == kernel)
        .context("kernel vanished from inspection")?;
    let mdir = k.modules_dir.clone().context("kernel has no modules dir")?;
    let mut files: Vec<(String, Vec<u8>)> = vec![];
    for m in modules {
        let rel = m.strip_prefix(&format!("{mdir}/")).unwrap_or(m);
        let data = vfs
            .read_file(m)
            .with_context(|| format!("reading module {m}"))?;
        files.push((format!("{modules_dir_in_initramfs}/{rel}"), data));
    }
    // The guest's full module index, so modprobe in the initramfs finds the new modules.
    for e in vfs.read_dir(&mdir)? {
        if e.name.starts_with("modules.") && e.ftype == crate::fs::FileType::File {
            let data = vfs.read_file(&format!("{mdir}/{}", e.name))?;
            files.push((format!("{modules_dir_in_initramfs}/{}", e.name), data));
        }
    }
    for (p, t) in extra {
        files.push((p.clone(), t.clone().into_bytes()));
    }
    let seg = cpio::newc_archive(&files);
    Ok(cpio::append_segment(&orig, &seg))
}

/// What [`apply`] did.
pub struct Applied {
    /// One record per action, in order.
    pub records: Vec<ActionRecord>,
    /// Seconds the writer was open (verify included).
    pub secs: f64,
    /// "native" or "appliance".
    pub writer: &'static str,
    /// Why the appliance was used, when it was.
    pub writer_reason: Option<String>,
}

/// An appliance already running on the write targets (it recovered dirty XFS logs into them
/// before the plan was made, see `crate::recover`): it writes the plan too, one session.
pub struct Session {
    pub app: Appliance,
    /// What the report says about the writer choice.
    pub why: String,
}

/// `--writer native` was asked for and this repair needs the appliance: refused (exit 6)
/// before anything is written.
fn native_refused(why: &str) -> anyhow::Error {
    crate::error::Refused(format!("only native writes were allowed, but {why}")).into()
}

/// How [`apply`] writes: the `--writer` preference, and the session to write in if one runs.
pub struct WriteWith {
    pub pref: WriterPref,
    pub session: Option<Session>,
}

/// Applies `plan` to the guest. `verify` runs once the changes are flushed (filesystems
/// closed, disks synced), still inside the one write session, and reads the result with the
/// pure readers; the readiness record it returns is written into the guest at [`READY_PATH`].
pub fn apply(
    guest: &Guest,
    target: &Target,
    os: &OsReport,
    plan: &RepairPlan,
    run_id: &str,
    with: WriteWith,
    verify: &mut dyn FnMut(&[ActionRecord]) -> Result<serde_json::Value>,
) -> Result<Applied> {
    let WriteWith { pref, session } = with;
    if os.kind == "windows" {
        drop(session);
        return windows::apply_windows(guest, target, os, plan, run_id, pref, verify);
    }
    let l = os
        .linux
        .as_ref()
        .context("apply: only Linux guests are repaired so far")?;
    let vfs = crate::inspect::linux::guest_vfs(&guest.volumes, l)?;
    let tmp = tempdir()?;
    let backup_dir = format!("{BACKUP_ROOT}/{run_id}");
    // 1. Payloads and records, from the pure readers.
    let mut work = vec![];
    // Paths an earlier action moved aside: a later write there creates a new file (the
    // original lives at the rename's destination, and undo moves it back).
    let mut moved_away = std::collections::BTreeSet::new();
    for (i, a) in plan.actions.iter().enumerate() {
        let target_path = a.target().to_string();
        let before = match &a.change {
            Change::RunInitramfsTool { .. } => None,
            _ if moved_away.contains(&target_path) => None,
            Change::CopyFile { to, .. } => vfs.read_file(to).ok(),
            _ => vfs.read_file(&target_path).ok(),
        };
        if let Change::Rename { from, .. } = &a.change {
            moved_away.insert(from.clone());
        }
        let (payload, after) = match &a.change {
            Change::WriteFile { content, .. } => (
                Payload::Bytes(content.clone().into_bytes()),
                Some(sha256_hex(content.as_bytes())),
            ),
            Change::AppendInitramfs { .. } => {
                let b = build_initramfs(&vfs, l, &a.change)?;
                let sha = sha256_hex(&b);
                let f = tmp.join(format!("initramfs-{i}"));
                std::fs::write(&f, &b)?;
                (Payload::HostFile(f), Some(sha))
            }
            Change::CopyFile { from, .. } => {
                let b = vfs
                    .read_file(from)
                    .with_context(|| format!("reading {from}"))?;
                let sha = sha256_hex(&b);
                (Payload::Bytes(b), Some(sha))
            }
            _ => (Payload::None, None),
        };
        let (undo, backup, extra_target) = match &a.change {
            Change::Rename { to, .. } => ("rename-back".to_string(), None, Some(to.clone())),
            Change::RunInitramfsTool { .. } => ("none".to_string(), None, None),
            Change::RunBootloaderTool { .. } if before.is_some() => (
                "restore".to_string(),
                Some(format!("{backup_dir}{target_path}")),
                None,
            ),
            _ if before.is_some() => (
                "restore".to_string(),
                Some(format!("{backup_dir}{target_path}")),
                None,
            ),
            _ => ("remove".to_string(), None, None),
        };
        let rec = ActionRecord {
            area: a.area.clone(),
            op: a.op(),
            target: target_path,
            reason: a.reason.clone(),
            sha256_before: before.as_deref().map(sha256_hex),
            sha256_after: after,
            backup,
            undo,
            extra_target,
            outcome: None,
            value_before: None,
            value_after: None,
        };
        work.push((a, payload, rec));
    }
    drop(vfs);
    // 2. One writer: native where every touched filesystem allows it, else one appliance.
    let t0 = Instant::now();
    let mut touched: Vec<String> = vec![format!("{backup_dir}/journal.json"), READY_PATH.into()];
    for (_, _, r) in &work {
        touched.push(r.target.clone());
        touched.extend(r.extra_target.clone());
        touched.extend(r.backup.clone());
    }
    // Only the initramfs tool makes the appliance necessary: the bootloader tool's run is
    // optional (the direct edits boot) and is skipped on the native path.
    let tool = plan.actions.iter().find_map(|a| match &a.change {
        Change::RunInitramfsTool { command, .. } => Some(command.join(" ")),
        _ => None,
    });
    let (mut w, writer_reason) =
        open_writer(guest, target, l, &touched, tool.as_deref(), pref, session)?;
    let mut records = vec![];
    let mut journal = Journal {
        run_id: run_id.into(),
        entries: vec![],
    };
    let mut backed_up = std::collections::BTreeSet::new();
    for (i, (a, payload, mut rec)) in work.into_iter().enumerate() {
        crate::test_kill_point(&format!("before-action-{i}"));
        // Back up each target once per run, before its first change, so undo gets the original.
        if let Some(b) = &rec.backup {
            if backed_up.insert(b.clone()) {
                w.mkdir_p(parent(b))?;
                w.copy(&rec.target, b)?;
            }
        }
        match (&a.change, payload) {
            (Change::WriteFile { path, mode, .. }, Payload::Bytes(b)) => {
                w.mkdir_p(parent(path))?;
                w.write(path, &b, Some(*mode))?;
            }
            (Change::CopyFile { to, .. }, Payload::Bytes(b)) => {
                w.mkdir_p(parent(to))?;
                w.write(to, &b, None)?;
            }
            (Change::AppendInitramfs { path, .. }, Payload::HostFile(f)) => w.upload(&f, path)?,
            (Change::Rename { from, to }, _) => {
                w.mkdir_p(parent(to))?;
                w.rename(from, to)?;
            }
            (Change::Symlink { path, target }, _) => {
                w.mkdir_p(parent(path))?;
                w.symlink(target, path)?;
            }
            (Change::RunInitramfsTool { command, .. }, _) => {
                let out = w
                    .command(command)
                    .with_context(|| format!("guest tool {}", command.join(" ")))?;
                tracing::info!("{}: {}", command.join(" "), out.trim());
                rec.outcome = Some(format!("ran {}", command.join(" ")));
            }
            (Change::RunBootloaderTool { config, command }, _) if w.kind() == "native" => {
                rec.outcome = Some(format!(
                    "not run: native writes run no guest program; the directly edited {config} boots ({} runs with --writer appliance)",
                    command.join(" ")
                ));
            }
            (Change::RunBootloaderTool { config, command }, _) => {
                // The direct edits already boot; the guest's tool only makes them permanent.
                // If it fails, put the edited config back (the tool may have truncated it).
                let keep = format!("{backup_dir}/edited{config}");
                w.mkdir_p(parent(&keep))?;
                w.copy(config, &keep)?;
                match w.command(command) {
                    Ok(_) => rec.outcome = Some(format!("regenerated with {}", command.join(" "))),
                    Err(e) => {
                        w.copy(&keep, config)?;
                        tracing::warn!("{}: {e}; keeping the direct edits", command.join(" "));
                        rec.outcome = Some(format!(
                            "{} failed ({e}); the directly edited {config} was kept",
                            command.join(" ")
                        ));
                    }
                }
            }
            _ => bail!("internal: payload does not match change for {}", rec.target),
        }
        journal.entries.push(JournalEntry {
            target: rec.target.clone(),
            undo: rec.undo.clone(),
            backup: rec.backup.clone(),
            from: rec.extra_target.clone(),
        });
        records.push(rec);
        crate::test_kill_point(&format!("after-action-{i}"));
    }
    let kind = w.kind();
    finish_session(
        w,
        &backup_dir,
        &journal,
        &records,
        &os.root.device,
        READY_PATH,
        verify,
    )?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(Applied {
        records,
        secs: t0.elapsed().as_secs_f64(),
        writer: kind,
        writer_reason,
    })
}

/// Opens the writer for a Linux run (see [`native::choose`]).
fn open_writer(
    guest: &Guest,
    target: &Target,
    l: &LinuxInfo,
    touched: &[String],
    tool: Option<&str>,
    pref: WriterPref,
    session: Option<Session>,
) -> Result<(Box<dyn GuestWriter>, Option<String>)> {
    if let Some(Session { app, why }) = session {
        if pref == WriterPref::Native {
            return Err(native_refused(&why));
        }
        no_appliance_on_stacks(guest, l, &why)?;
        let mounts = mount_guest(&app, l)?;
        return Ok((Box::new(ApplianceWriter { app, mounts }), Some(why)));
    }
    match native::choose(guest, target, l, touched, tool, pref)? {
        native::Choice::Native(w) => Ok((w, None)),
        native::Choice::Appliance(why) if pref == WriterPref::Native => Err(native_refused(&why)),
        native::Choice::Appliance(why) => {
            no_appliance_on_stacks(guest, l, &why)?;
            tracing::info!("writing through the appliance: {why}");
            let app = launch_rw(guest, target)?;
            let mounts = mount_guest(&app, l)?;
            Ok((Box::new(ApplianceWriter { app, mounts }), Some(why)))
        }
    }
}

/// The appliance is not given LUKS keys, and its view of md arrays (names, which member it
/// assembles) is not the one revirt inspected: a guest whose filesystems lie on either is
/// written natively or not at all. Refused before anything is written.
fn no_appliance_on_stacks(guest: &Guest, l: &LinuxInfo, why: &str) -> Result<()> {
    let ins = &guest.inspection;
    let on: Vec<String> = crate::plan::on_luks(ins, l)
        .into_iter()
        .chain(crate::plan::on_md(ins, l))
        .map(|(d, c)| format!("{d} on {c}"))
        .collect();
    if on.is_empty() {
        return Ok(());
    }
    Err(crate::error::Refused(format!(
        "the native writer cannot write this guest ({why}), and the appliance is not used on encrypted volumes or md arrays ({})",
        on.join(", ")
    ))
    .into())
}

/// Ends an apply session: journal (when anything changed), flush everything, verify with the
/// pure readers on the flushed disks, write the readiness record at `ready_path` on the root
/// filesystem, flush again and release the disks.
pub(crate) fn finish_session(
    mut w: Box<dyn GuestWriter>,
    backup_dir: &str,
    journal: &Journal,
    records: &[ActionRecord],
    root_dev: &str,
    ready_path: &str,
    verify: &mut dyn FnMut(&[ActionRecord]) -> Result<serde_json::Value>,
) -> Result<()> {
    if !records.is_empty() {
        w.mkdir_p(backup_dir)?;
        w.write(
            &format!("{backup_dir}/journal.json"),
            serde_json::to_string_pretty(journal)?.as_bytes(),
            None,
        )?;
    }
    w.settle()?;
    let ready = verify(records)?;
    w.reopen(root_dev)?;
    w.mkdir_p(parent(ready_path))?;
    w.write(
        ready_path,
        serde_json::to_string_pretty(&ready)?.as_bytes(),
        None,
    )?;
    w.finish()
}

/// Launches the one appliance with the write targets attached read-write.
pub(crate) fn launch_rw(guest: &Guest, target: &Target) -> Result<Appliance> {
    let app = Appliance::new(&ApplianceConfig::default())?;
    let disks = &guest.inspection.disks;
    match target {
        Target::Overlays(outs) => {
            for (o, d) in outs.iter().zip(disks) {
                app.add_export(NbdExport::start(&d.image, Some(o), true)?, false)?;
            }
        }
        Target::InPlace => {
            for d in disks {
                app.add_export(NbdExport::start(&d.image, None, true)?, false)?;
            }
        }
    }
    app.launch()?;
    Ok(app)
}

/// Mounts the guest's root and its fstab mounts (as inspection found them) read-write.
/// Returns them as (mountpoint, device), in mount order.
fn mount_guest(app: &Appliance, l: &LinuxInfo) -> Result<Vec<(String, String)>> {
    let mut mps: Vec<(String, String)> = l
        .mounts
        .iter()
        .map(|(m, d)| (m.clone(), d.clone()))
        .collect();
    mps.sort_by_key(|(m, _)| {
        if m == "/" {
            0
        } else {
            1 + m.matches('/').count()
        }
    });
    if mps.first().is_none_or(|(m, _)| m != "/") {
        bail!("no root mount");
    }
    for (mp, dev) in &mps {
        app.mount_rw(dev, mp)
            .with_context(|| format!("mounting {dev} at {mp}"))?;
    }
    Ok(mps)
}

fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

fn tempdir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!(
        "revirt-apply-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// The part of a guest undo needs: where its journals live and how to mount it read-write.
pub enum UndoRoot<'a> {
    Linux(&'a LinuxInfo),
    /// Windows: the system volume's device.
    Windows(&'a str),
}

impl UndoRoot<'_> {
    pub fn backup_root(&self) -> &'static str {
        match self {
            UndoRoot::Linux(_) => BACKUP_ROOT,
            UndoRoot::Windows(_) => windows::WIN_BACKUP_ROOT,
        }
    }
    fn ready_path(&self) -> &'static str {
        match self {
            UndoRoot::Linux(_) => READY_PATH,
            UndoRoot::Windows(_) => windows::WIN_READY_PATH,
        }
    }
    fn mount(&self, app: &Appliance) -> Result<()> {
        match self {
            UndoRoot::Linux(l) => mount_guest(app, l).map(drop),
            UndoRoot::Windows(dev) => app
                .mount_rw(dev, "/")
                .with_context(|| format!("mounting {dev} read-write")),
        }
    }
}

/// Finds the newest run journal of `root` in the guest (pure read).
pub fn latest_journal(vfs: &crate::fs::Vfs, root: &UndoRoot) -> Result<Option<Journal>> {
    let base = root.backup_root();
    if !vfs.is_dir(base) {
        return Ok(None);
    }
    let mut runs: Vec<String> = vfs
        .read_dir(base)?
        .into_iter()
        .map(|e| e.name)
        .filter(|n| vfs.exists(&format!("{base}/{n}/journal.json")))
        .collect();
    // Run ids start with the Unix time: the numerically largest is the newest.
    runs.sort_by_key(|r| {
        r.split('-')
            .next()
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0)
    });
    let Some(last) = runs.last() else {
        return Ok(None);
    };
    let text = vfs.read_file(&format!("{base}/{last}/journal.json"))?;
    Ok(Some(serde_json::from_slice(&text).with_context(|| {
        format!("{base}/{last}/journal.json: not a revirt journal")
    })?))
}

/// Restores what the journaled run changed, newest change first, in one appliance session.
/// Returns the number of entries undone.
pub fn undo(disks: &[&ImageInfo], root: &UndoRoot, journal: &Journal) -> Result<usize> {
    let app = Appliance::new(&ApplianceConfig::default())?;
    for d in disks {
        app.add_export(NbdExport::start(d, None, true)?, false)?;
    }
    app.launch()?;
    root.mount(&app)?;
    let mut n = 0;
    for e in journal.entries.iter().rev() {
        match e.undo.as_str() {
            "restore" => {
                let b = e
                    .backup
                    .as_deref()
                    .context("journal: restore without a backup path")?;
                app.cp(b, &e.target)
                    .with_context(|| format!("restoring {} from {b}", e.target))?;
            }
            "remove" => app.rm_f(&e.target)?,
            "rename-back" => {
                let to = e
                    .from
                    .as_deref()
                    .context("journal: rename-back without its destination")?;
                app.mv(to, &e.target)
                    .with_context(|| format!("moving {to} back to {}", e.target))?;
            }
            // A folder the run created; left alone if something else was put in it since.
            "rmdir" => {
                if app.rmdir(&e.target).is_err() {
                    tracing::warn!("{}: not empty, kept", e.target);
                    continue;
                }
            }
            _ => continue,
        }
        n += 1;
    }
    app.rm_f(root.ready_path())?;
    // The journal is kept (renamed) so a second undo is a no-op and the history stays readable.
    let dir = format!("{}/{}", root.backup_root(), journal.run_id);
    app.mv(
        &format!("{dir}/journal.json"),
        &format!("{dir}/journal.undone.json"),
    )?;
    app.umount_all()?;
    app.sync()?;
    app.shutdown()?;
    Ok(n)
}
