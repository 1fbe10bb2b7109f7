//! Apply for Windows: the plan's file uploads, text files and registry edits in one write
//! session: native (libntfs-3g writes the system volume and libhivex the hives, each in a caged
//! helper) where it can, else the appliance (ntfs-3g mounts the volume, hivex edits in place).
//! Every replaced file and every edited hive is copied first under
//! `/ProgramData/revirt/backup/RUN-ID/` with a journal, as for Linux.
use super::native::{Choice, WriterPref};
use super::writer::GuestWriter;
use super::{parent, sha256_hex, tempdir, ActionRecord, Journal, JournalEntry, Target};
use crate::native::hive::HiveEdit;

use crate::inspect::windows::resolve_ci;
use crate::inspect::Guest;
use crate::plan::windows::RECOVERED_HIVE;
use crate::plan::{Change, RepairPlan};
use crate::types::OsReport;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

pub const WIN_BACKUP_ROOT: &str = "/ProgramData/revirt/backup";
pub const WIN_READY_PATH: &str = "/ProgramData/revirt/ready.json";

/// Guest path of a hive named in a RegSet ("SYSTEM" -> /Windows/System32/config/SYSTEM).
fn hive_path(vfs: &crate::fs::Vfs, system_root: &str, hive: &str) -> Result<String> {
    let p = format!("{system_root}/System32/config/{hive}");
    resolve_ci(vfs, &p)?.with_context(|| format!("{p}: hive not found"))
}

pub fn apply_windows(
    guest: &Guest,
    target: &Target,
    os: &OsReport,
    plan: &RepairPlan,
    run_id: &str,
    pref: WriterPref,
    verify: &mut dyn FnMut(&[ActionRecord]) -> Result<serde_json::Value>,
) -> Result<super::Applied> {
    let w = os
        .windows
        .as_ref()
        .context("apply_windows needs a Windows OS")?;
    let vfs = guest.root_vfs(os)?;
    let backup_dir = format!("{WIN_BACKUP_ROOT}/{run_id}");
    let tmp = tempdir()?;
    // 1. Records and payloads from the pure readers, before the appliance starts.
    let mut records = vec![];
    let mut hives: BTreeMap<String, String> = BTreeMap::new();
    // Driver files as host files (ISO members extracted into tmp), before anything is written.
    let mut hosts: BTreeMap<String, PathBuf> = BTreeMap::new();
    for a in &plan.actions {
        let (target_path, before, after) = match &a.change {
            // A dirty hive written back as recovered from its logs: replayed again here (pure
            // read) and uploaded only if it is still what the plan saw.
            Change::UploadFile { from, to, sha256 } if from.starts_with(RECOVERED_HIVE) => {
                let hp = &from[RECOVERED_HIVE.len()..];
                let files = crate::inspect::windows::HiveFiles::read(&vfs, hp)?;
                let r = files
                    .recover()
                    .with_context(|| format!("{hp}: replaying its transaction logs"))?;
                let got = sha256_hex(&r.data);
                if &got != sha256 {
                    bail!("{hp}: its recovery from the logs changed since the plan (sha256 {got}, planned {sha256}); plan again");
                }
                let host = tmp.join(format!("recovered-hive-{}", hosts.len()));
                std::fs::write(&host, &r.data)
                    .with_context(|| format!("writing {}", host.display()))?;
                hosts.insert(from.clone(), host);
                (to.clone(), Some(files.data), Some(sha256.clone()))
            }
            Change::UploadFile { from, to, sha256 } => {
                let host = crate::drivers::materialize(from, &tmp)?;
                // The source may have changed since the plan was made: upload what was planned.
                let got = sha256_hex(
                    &std::fs::read(&host).with_context(|| format!("reading {}", host.display()))?,
                );
                if &got != sha256 {
                    bail!("{from}: changed since the plan (sha256 {got}, planned {sha256}); plan again");
                }
                hosts.insert(from.clone(), host);
                (to.clone(), existing(&vfs, to)?, Some(sha256.clone()))
            }
            Change::WriteFile { path, content, .. } => (
                path.clone(),
                existing(&vfs, path)?,
                Some(sha256_hex(content.as_bytes())),
            ),
            Change::RegSet {
                hive, key, name, ..
            } => {
                let hp = hive_path(&vfs, &w.system_root, hive)?;
                hives.insert(hive.clone(), hp.clone());
                (format!("HKLM\\{hive}\\{key}\\{name}"), None, None)
            }
            _ => bail!("{}: {} is not a Windows change", a.target(), a.op()),
        };
        let is_file = !matches!(a.change, Change::RegSet { .. });
        let (undo, backup) = match (&before, is_file) {
            (Some(_), true) => (
                "restore".to_string(),
                Some(format!("{backup_dir}{target_path}")),
            ),
            (None, true) => ("remove".to_string(), None),
            _ => ("hive".to_string(), None),
        };
        records.push(ActionRecord {
            area: a.area.clone(),
            op: a.op(),
            target: target_path,
            reason: a.reason.clone(),
            sha256_before: before.as_deref().map(sha256_hex),
            sha256_after: after,
            backup,
            undo,
            extra_target: None,
            outcome: None,
            value_before: None,
            value_after: None,
        });
        if let Change::RegSet { value, before, .. } = &a.change {
            let r = records.last_mut().expect("just pushed");
            r.value_before = before.clone();
            r.value_after = Some(value.clone());
        }
    }
    // 2. One write session: native (libntfs-3g and libhivex in caged helpers) where it can
    // write safely, else one appliance launch.
    let t0 = Instant::now();
    let (mut w, reason) = open_writer(guest, target, os, pref)?;
    let mut journal = Journal {
        run_id: run_id.into(),
        entries: vec![],
    };
    let mut made = Folders {
        vfs: &vfs,
        created: BTreeSet::new(),
    };
    // Hives are backed up whole before the first edit: undo restores them byte for byte.
    let mut backed_up = BTreeSet::new();
    for hp in hives.values() {
        let b = format!("{backup_dir}{hp}");
        made.mkdirs_for_backup(w.as_mut(), parent(&b))?;
        w.copy(hp, &b)?;
        backed_up.insert(b.clone());
        journal.entries.push(JournalEntry {
            target: hp.clone(),
            undo: "restore".into(),
            backup: Some(b),
            from: None,
        });
    }
    for (a, rec) in plan.actions.iter().zip(records.iter_mut()) {
        // A file already backed up (a hive written back as recovered, then edited) keeps its
        // first copy, the original, and the journal entry that restores it.
        let first = rec.backup.as_ref().is_none_or(|b| !backed_up.contains(b));
        if let Some(b) = rec.backup.as_ref().filter(|_| first) {
            made.mkdirs_for_backup(w.as_mut(), parent(b))?;
            w.copy(&rec.target, b)?;
            backed_up.insert(b.clone());
        }
        match &a.change {
            Change::UploadFile { from, to, .. } => {
                made.mkdirs(w.as_mut(), parent(to), &mut journal)?;
                let host = hosts
                    .get(from)
                    .with_context(|| format!("{from}: not extracted before the upload"))?;
                w.upload(host, to)?;
            }
            Change::WriteFile { path, content, .. } => {
                made.mkdirs(w.as_mut(), parent(path), &mut journal)?;
                w.write(path, content.as_bytes(), None)?;
            }
            Change::RegSet { .. } => continue,
            _ => unreachable!("checked above"),
        }
        if !first {
            continue;
        }
        journal.entries.push(JournalEntry {
            target: rec.target.clone(),
            undo: rec.undo.clone(),
            backup: rec.backup.clone(),
            from: None,
        });
    }
    // Registry edits, one hive at a time, committed once per hive.
    for (hive, hp) in &hives {
        let edits: Vec<HiveEdit> = plan
            .actions
            .iter()
            .filter_map(|a| match &a.change {
                Change::RegSet {
                    hive: h,
                    key,
                    name,
                    value,
                    ..
                } if h == hive => {
                    let (ty, data) = value.encode();
                    Some(HiveEdit {
                        key: key.clone(),
                        name: name.clone(),
                        ty,
                        data,
                    })
                }
                _ => None,
            })
            .collect();
        w.edit_hive(hp, &edits)
            .with_context(|| format!("editing HKLM\\{hive}"))?;
    }
    drop(made);
    let kind = w.kind();
    super::finish_session(
        w,
        &backup_dir,
        &journal,
        &records,
        &os.root.device,
        WIN_READY_PATH,
        verify,
    )?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(super::Applied {
        records,
        secs: t0.elapsed().as_secs_f64(),
        writer: kind,
        writer_reason: reason,
    })
}

/// The bytes of `path` in the input, None if there is no such file. Any other read error stops
/// the run: a file that exists but cannot be read must not be taken for a new one (it would
/// be overwritten without a backup, and undo would remove it).
fn existing(vfs: &crate::fs::Vfs, path: &str) -> Result<Option<Vec<u8>>> {
    match vfs.read_file(path) {
        Ok(b) => Ok(Some(b)),
        Err(crate::error::FsError::NotFound { .. }) => Ok(None),
        Err(e) => {
            Err(anyhow::Error::new(e).context(format!("{path}: reading it before replacing it")))
        }
    }
}

/// The writer for this run and, when it is the appliance, why.
fn open_writer(
    guest: &Guest,
    target: &Target,
    os: &OsReport,
    pref: WriterPref,
) -> Result<(Box<dyn GuestWriter>, Option<String>)> {
    match super::native::choose_windows(guest, target, os, pref)? {
        Choice::Native(w) => Ok((w, None)),
        Choice::Appliance(why) if pref == WriterPref::Native => Err(super::native_refused(&why)),
        Choice::Appliance(why) => {
            let app = super::launch_rw(guest, target)?;
            app.mount_rw(&os.root.device, "/")
                .with_context(|| format!("mounting {} read-write", os.root.device))?;
            Ok((
                Box::new(super::writer::ApplianceWriter {
                    app,
                    mounts: vec![],
                }),
                Some(why),
            ))
        }
    }
}

/// Folders the run creates, for undo: what existed is read from the input (pure reader), what
/// this run made is remembered.
struct Folders<'a> {
    vfs: &'a crate::fs::Vfs,
    created: BTreeSet<String>,
}

impl Folders<'_> {
    fn exists(&self, d: &str) -> bool {
        self.created.contains(&d.to_ascii_lowercase())
            || resolve_ci(self.vfs, d)
                .ok()
                .flatten()
                .is_some_and(|p| self.vfs.is_dir(&p))
    }

    /// `mkdir -p` of a backup folder: not journaled (undo keeps the backups and the record), but
    /// remembered, so a later write under /ProgramData/revirt does not journal its removal.
    fn mkdirs_for_backup(&mut self, w: &mut dyn GuestWriter, dir: &str) -> Result<()> {
        w.mkdir_p(dir)?;
        let mut d = dir;
        while d != "/" {
            self.created.insert(d.to_ascii_lowercase());
            d = parent(d);
        }
        Ok(())
    }

    /// `mkdir -p dir`, journaling each folder it creates so undo removes it again (outermost
    /// first in the journal, so undo, which runs backwards, empties the innermost first).
    fn mkdirs(&mut self, w: &mut dyn GuestWriter, dir: &str, journal: &mut Journal) -> Result<()> {
        let mut missing = vec![];
        let mut d = dir;
        while d != "/" && !self.exists(d) {
            missing.push(d.to_string());
            d = parent(d);
        }
        w.mkdir_p(dir)?;
        for m in missing.into_iter().rev() {
            self.created.insert(m.to_ascii_lowercase());
            journal.entries.push(JournalEntry {
                target: m,
                undo: "rmdir".into(),
                backup: None,
                from: None,
            });
        }
        Ok(())
    }
}
