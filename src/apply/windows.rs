//! Apply for Windows: the plan's file uploads, text files and registry edits in the same single
//! appliance session (ntfs-3g mounts the system volume; hivex edits the hive files in place).
//! Every replaced file and every edited hive is copied first under
//! `/ProgramData/revirt/backup/RUN-ID/` with a journal, as for Linux.
use super::{parent, sha256_hex, tempdir, ActionRecord, Journal, JournalEntry, Target};

use crate::inspect::windows::resolve_ci;
use crate::inspect::Guest;
use crate::plan::windows::RECOVERED_HIVE;
use crate::plan::{Change, RepairPlan};
use crate::types::OsReport;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

pub const WIN_BACKUP_ROOT: &str = "/ProgramData/revirt/backup";
pub const WIN_READY_PATH: &str = "/ProgramData/revirt/ready.json";

/// Guest path of a hive named in a RegSet ("SYSTEM" -> /Windows/System32/config/SYSTEM).
fn hive_path(vfs: &crate::fs::Vfs, system_root: &str, hive: &str) -> Result<String> {
    let p = format!("{system_root}/System32/config/{hive}");
    resolve_ci(vfs, &p)?.with_context(|| format!("{p}: hive not found"))
}

/// `mkdir -p dir`, journaling each folder it creates so undo removes it again (outermost
/// first in the journal, so undo, which runs backwards, empties the innermost first).
fn mkdirs(app: &crate::guestfs::Appliance, dir: &str, journal: &mut Journal) -> Result<()> {
    let mut missing = vec![];
    let mut d = dir;
    while d != "/" && !app.is_dir(d)? {
        missing.push(d.to_string());
        d = parent(d);
    }
    app.mkdir_p(dir)?;
    for m in missing.into_iter().rev() {
        journal.entries.push(JournalEntry {
            target: m,
            undo: "rmdir".into(),
            backup: None,
            from: None,
        });
    }
    Ok(())
}

pub fn apply_windows(
    guest: &Guest,
    target: &Target,
    os: &OsReport,
    plan: &RepairPlan,
    run_id: &str,
    verify: &mut dyn FnMut(&[ActionRecord]) -> Result<serde_json::Value>,
) -> Result<(Vec<ActionRecord>, f64)> {
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
                (to.clone(), vfs.read_file(to).ok(), Some(sha256.clone()))
            }
            Change::WriteFile { path, content, .. } => (
                path.clone(),
                vfs.read_file(path).ok(),
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
    drop(vfs);
    // 2. One appliance launch.
    let t0 = Instant::now();
    let app = super::launch_rw(guest, target)?;
    app.mount_rw(&os.root.device, "/")
        .with_context(|| format!("mounting {} read-write", os.root.device))?;
    let mut journal = Journal {
        run_id: run_id.into(),
        entries: vec![],
    };
    // Hives are backed up whole before the first edit: undo restores them byte for byte.
    let mut backed_up = std::collections::BTreeSet::new();
    for hp in hives.values() {
        let b = format!("{backup_dir}{hp}");
        app.mkdir_p(parent(&b))?;
        app.cp(hp, &b)?;
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
            app.mkdir_p(parent(b))?;
            app.cp(&rec.target, b)?;
            backed_up.insert(b.clone());
        }
        match &a.change {
            Change::UploadFile { from, to, .. } => {
                mkdirs(&app, parent(to), &mut journal)?;
                let host = hosts
                    .get(from)
                    .with_context(|| format!("{from}: not extracted before the upload"))?;
                app.upload(host, to)?;
            }
            Change::WriteFile { path, content, .. } => {
                mkdirs(&app, parent(path), &mut journal)?;
                app.write(path, content.as_bytes())?;
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
    // Registry edits, one hive open at a time, committed once per hive.
    for (hive, hp) in &hives {
        app.hivex_open_rw(hp)?;
        let root = app.hivex_root()?;
        for a in &plan.actions {
            let Change::RegSet {
                hive: h,
                key,
                name,
                value,
                ..
            } = &a.change
            else {
                continue;
            };
            if h != hive {
                continue;
            }
            let mut node = root;
            for comp in key.split('\\').filter(|c| !c.is_empty()) {
                node = app
                    .hivex_child_or_create(node, comp)
                    .with_context(|| format!("HKLM\\{hive}\\{key}"))?;
            }
            let (ty, data) = value.encode();
            app.hivex_set_value(node, name, ty, &data)
                .with_context(|| format!("HKLM\\{hive}\\{key}\\{name}"))?;
        }
        app.hivex_commit_close()?;
    }
    super::finish_session(
        Box::new(super::writer::ApplianceWriter {
            app,
            mounts: vec![],
        }),
        &backup_dir,
        &journal,
        &records,
        &os.root.device,
        WIN_READY_PATH,
        verify,
    )?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok((records, t0.elapsed().as_secs_f64()))
}
