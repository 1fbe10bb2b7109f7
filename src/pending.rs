//! In-place repairs that a kill at any moment cannot half-write.
//!
//! ```text
//!   record "writing"  -> overlays beside the inputs take every write; the inputs are untouched
//!   verify the overlays (ready?)          no -> drop the overlays: the inputs never changed
//!   record "committing" (fsynced)     -> qemu-img commit each overlay into its input, fsync
//!   remove the overlays, then the record
//! ```
//! The record `<input>.revirt-pending.json` sits beside the first input. A kill before
//! "committing" leaves the inputs as they were: the next writer drops the overlays. A kill
//! after it leaves complete, flushed overlays: committing them again writes the same bytes, so
//! the next writer (`repair`, `worker`, `undo`) finishes the commit first; readers (`inspect`,
//! `plan`, `verify`) refuse until then rather than read a half-committed disk.
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Writing,
    Committing,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub run_id: String,
    pub state: State,
    /// (input, overlay) pairs, absolute paths.
    pub disks: Vec<(PathBuf, PathBuf)>,
}

/// A pending commit was found that only a writer may finish (exit 8, like a held lock).
#[derive(Debug, thiserror::Error)]
#[error("{0}: an in-place repair was interrupted while committing; run `revirt repair` or `revirt undo` on it to finish the commit first")]
pub struct Interrupted(pub PathBuf);

pub fn record_path(first_input: &Path) -> PathBuf {
    let mut s = first_input.as_os_str().to_owned();
    s.push(".revirt-pending.json");
    PathBuf::from(s)
}

fn read(first_input: &Path) -> Result<Option<Record>> {
    let p = record_path(first_input);
    match std::fs::read(&p) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).with_context(|| {
            format!("{}: not a revirt pending-commit record", p.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// Writes the record durably (temp file, fsync, rename, fsync the folder).
fn write(first_input: &Path, r: &Record) -> Result<()> {
    let p = record_path(first_input);
    let tmp = p.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(r)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &p)?;
    sync_dir(&p)
}

fn sync_dir(p: &Path) -> Result<()> {
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn remove(first_input: &Path, r: &Record) -> Result<()> {
    for (_, ov) in &r.disks {
        match std::fs::remove_file(ov) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", ov.display())),
        }
    }
    let p = record_path(first_input);
    std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
    sync_dir(&p)
}

/// For readers: refuses a disk whose commit was interrupted; a "writing" record is harmless.
pub fn check_readable(inputs: &[PathBuf]) -> Result<()> {
    let Some(first) = inputs.first() else {
        return Ok(());
    };
    match read(first)? {
        Some(r) if r.state == State::Committing => Err(Interrupted(first.clone()).into()),
        _ => Ok(()),
    }
}

/// For writers, holding the disks' locks: finishes an interrupted commit, or drops the
/// overlays of a run killed before it. Returns what was done, for the report.
pub fn settle(inputs: &[PathBuf], policy: &crate::image::OpenPolicy) -> Result<Option<String>> {
    let Some(first) = inputs.first() else {
        return Ok(None);
    };
    let Some(r) = read(first)? else {
        return Ok(None);
    };
    match r.state {
        State::Writing => {
            remove(first, &r)?;
            Ok(Some(format!(
                "dropped the overlays of run {}, killed before its commit (the disk was not changed)",
                r.run_id
            )))
        }
        State::Committing => {
            commit_all(&r, policy)?;
            remove(first, &r)?;
            Ok(Some(format!(
                "finished the interrupted commit of run {}",
                r.run_id
            )))
        }
    }
}

/// A fresh in-place run: overlays beside the inputs and a "writing" record.
pub struct Pending {
    first: PathBuf,
    rec: Record,
}

impl Pending {
    /// Records the run; `create` then makes the overlays (paths given) over the inputs.
    pub fn begin(
        inputs: &[PathBuf],
        run_id: &str,
        create: impl FnOnce(&[PathBuf]) -> Result<()>,
    ) -> Result<Self> {
        let first = inputs.first().context("no input disks")?.clone();
        let mut disks = vec![];
        for i in inputs {
            let abs = i
                .canonicalize()
                .with_context(|| format!("resolving {}", i.display()))?;
            let mut ov = abs.as_os_str().to_owned();
            ov.push(format!(".revirt-{run_id}.qcow2"));
            disks.push((abs, PathBuf::from(ov)));
        }
        let rec = Record {
            run_id: run_id.into(),
            state: State::Writing,
            disks,
        };
        write(&first, &rec)?;
        let p = Pending { first, rec };
        if let Err(e) = create(&p.overlays()) {
            p.discard().ok();
            return Err(e);
        }
        Ok(p)
    }

    pub fn overlays(&self) -> Vec<PathBuf> {
        self.rec.disks.iter().map(|(_, o)| o.clone()).collect()
    }

    /// Drops the overlays: the inputs stay as they were.
    pub fn discard(self) -> Result<()> {
        remove(&self.first, &self.rec)
    }

    /// Commits the overlays into the inputs (durably), then forgets them.
    pub fn commit(mut self, policy: &crate::image::OpenPolicy) -> Result<()> {
        crate::test_kill_point("before-commit");
        self.rec.state = State::Committing;
        write(&self.first, &self.rec)?;
        crate::test_kill_point("commit-recorded");
        commit_all(&self.rec, policy)?;
        crate::test_kill_point("committed");
        remove(&self.first, &self.rec)
    }
}

/// Commits each overlay into its input. The input's chain is opened (and checked against
/// `policy`) by revirt and handed to qemu-img as one explicit graph.
fn commit_all(r: &Record, policy: &crate::image::OpenPolicy) -> Result<()> {
    for (input, ov) in &r.disks {
        if !ov.exists() {
            bail!(
                "{}: the overlay of run {} is missing; the commit cannot be finished",
                ov.display(),
                r.run_id
            );
        }
        let mut cmd = std::process::Command::new("qemu-img");
        cmd.args(["commit", "-q", "-d"]);
        // Tests slow the commit down to kill revirt in the middle of it.
        if let Ok(rate) = std::env::var("REVIRT_TEST_COMMIT_RATE") {
            cmd.args(["-r", &rate]);
        }
        let (_, info) = crate::image::open_image_with(input, policy)?;
        cmd.arg(crate::image::export::json_filename(&info, Some(ov))?);
        // A daemon of a killed run may still be letting go of the image: retry a lock refusal.
        let mut tries = 0;
        loop {
            let o = cmd.output().context("running qemu-img commit")?;
            if o.status.success() {
                break;
            }
            let err = String::from_utf8_lossy(&o.stderr);
            tries += 1;
            if err.contains("Failed to get") && tries < 40 {
                std::thread::sleep(std::time::Duration::from_millis(250));
                continue;
            }
            bail!(
                "qemu-img commit {} into {} failed: {}",
                ov.display(),
                input.display(),
                err.trim()
            );
        }
        std::fs::File::open(input)?.sync_all()?;
    }
    Ok(())
}
