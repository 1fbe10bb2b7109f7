//! The repair run: inspect -> plan -> apply (one appliance launch) -> verify, with a report.
//! Used by `revirt repair` and `revirt worker`.
use crate::apply::{self, ActionRecord, Target};
use crate::image::ImageInfo;
use crate::image::OpenPolicy;
use crate::inspect::InspectError;
use crate::inspect::{inspect_with, Guest};
use crate::plan::{collect_inputs, plan_linux, PlanOptions, RepairPlan};
use crate::types::OsReport;
use crate::verify::{verify_linux, Verdict};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Bumped on any incompatible change of the report JSON.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct RepairRequest {
    pub inputs: Vec<PathBuf>,
    /// One per input: write to qcow2 overlays; empty: write in place (with backups).
    pub outputs: Vec<PathBuf>,
    pub opts: PlanOptions,
    /// Which backing files the inputs may open (`--allow-backing-dir`).
    pub policy: OpenPolicy,
    /// Native writes, the appliance, or native where possible (`--writer`).
    pub writer: apply::WriterPref,
}

/// A request that cannot be run as given (exit 2), found before any disk is read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

impl RepairRequest {
    /// Checks the output paths: one per input, each new, in an existing folder, and none the same
    /// file as an input or another output (a write there would destroy the source).
    pub fn validate(&self) -> Result<(), BadRequest> {
        if self.inputs.is_empty() {
            return Err(BadRequest("no input disks".into()));
        }
        if self.outputs.is_empty() {
            return Ok(());
        }
        if self.outputs.len() != self.inputs.len() {
            return Err(BadRequest(format!(
                "{} input disk(s) but {} --output path(s): give one --output per input",
                self.inputs.len(),
                self.outputs.len()
            )));
        }
        let canon_in: Vec<Option<PathBuf>> =
            self.inputs.iter().map(|p| p.canonicalize().ok()).collect();
        let mut planned: Vec<PathBuf> = vec![];
        for out in &self.outputs {
            let bad = |why: &str| Err(BadRequest(format!("--output {}: {why}", out.display())));
            if out.symlink_metadata().is_ok() {
                return bad("already exists; revirt never overwrites an output");
            }
            let name = out.file_name();
            let parent = match out.parent() {
                Some(p) if p.as_os_str().is_empty() => Path::new("."),
                Some(p) => p,
                None => return bad("names no file"),
            };
            let Some(name) = name else {
                return bad("names no file");
            };
            let Ok(dir) = parent.canonicalize() else {
                return bad(&format!("folder {} does not exist", parent.display()));
            };
            if !dir.is_dir() {
                return bad(&format!("{} is not a folder", parent.display()));
            }
            let full = dir.join(name);
            if canon_in.iter().flatten().any(|i| *i == full) || planned.contains(&full) {
                return bad("is an input disk or another output");
            }
            planned.push(full);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Readiness {
    /// Verify passed: boot on virtio.
    Ready,
    /// Outside what revirt repairs safely; nothing was written.
    Refused,
    /// Changes were made but verify still finds problems.
    NotReady,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub schema_version: u32,
    pub revirt_version: String,
    pub run_id: String,
    pub inputs: Vec<ImageInfo>,
    pub outputs: Vec<String>,
    pub guest: Option<OsReport>,
    pub refusals: Vec<String>,
    pub notes: Vec<String>,
    pub actions: Vec<ActionRecord>,
    pub verify: Option<Verdict>,
    /// Seconds per phase: inspect, plan, apply, verify.
    pub timings: BTreeMap<String, f64>,
    pub appliance_used: bool,
    /// What wrote the changes: "native" (caged libext2fs helpers, no helper VM) or
    /// "appliance"; None when nothing was written.
    pub writer: Option<String>,
    /// Why the appliance wrote them, when it did.
    pub writer_reason: Option<String>,
    /// In place: whether the verified changes were committed into the disks (false: verify
    /// found the result not ready and the disks were left unchanged). None for overlays.
    pub committed: Option<bool>,
    pub readiness: Readiness,
}

/// A run id that sorts by time and is unique per process.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", now.as_secs(), std::process::id())
}

/// Picks the OS to repair: the one Linux root, or else the one Windows.
pub fn choose_os(g: &Guest) -> Result<&OsReport, String> {
    let oses = &g.inspection.operating_systems;
    let linux: Vec<&OsReport> = oses.iter().filter(|o| o.kind == "linux").collect();
    let windows: Vec<&OsReport> = oses.iter().filter(|o| o.kind == "windows").collect();
    match (linux.len(), windows.len(), oses.len()) {
        (1, _, _) => Ok(linux[0]),
        (0, 1, _) => Ok(windows[0]),
        (0, 0, 0) => {
            let locked: Vec<&str> = g
                .inspection
                .volumes
                .iter()
                .filter(|v| v.fstype.as_deref() == Some("BitLocker"))
                .map(|v| v.device.as_str())
                .collect();
            let missing: Vec<String> = g
                .inspection
                .volume_groups
                .iter()
                .filter(|vg| !vg.missing_pvs.is_empty())
                .map(|vg| format!("VG {} lacks PV {}", vg.name, vg.missing_pvs.join(", ")))
                .collect();
            let sealed: Vec<&str> = g
                .inspection
                .volumes
                .iter()
                .filter(|v| v.luks.as_ref().is_some_and(|l| l.opened_as.is_none()))
                .map(|v| v.device.as_str())
                .collect();
            Err(if !missing.is_empty() {
                format!(
                    "no operating system found; {}: give every disk of the guest",
                    missing.join("; ")
                )
            } else if !sealed.is_empty() {
                format!(
                    "no operating system found; {} is LUKS-encrypted and stays locked: give its key (--key DEVICE:key:PASS, DEVICE:file:FILE, or --keys-from-stdin)",
                    sealed.join(", ")
                )
            } else if locked.is_empty() {
                "no operating system found".into()
            } else {
                format!("no operating system found; {} is BitLocker-encrypted and cannot be read without its key (decrypt or suspend BitLocker on the source)", locked.join(", "))
            })
        }
        (0, 0, _) => Err(format!(
            "{} guests are not repaired by this version of revirt",
            oses[0].kind
        )),
        (0, n, _) => Err(format!(
            "{n} Windows installations found ({}); revirt repairs one OS per disk set",
            windows
                .iter()
                .map(|o| o.root.device.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (n, _, _) => Err(format!(
            "{n} Linux roots found ({}); revirt repairs one OS per disk set",
            linux
                .iter()
                .map(|o| o.root.device.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// A Vfs over the volume holding `os`'s root (Windows: the system volume).
pub fn root_vfs(g: &Guest, os: &OsReport) -> Result<crate::fs::Vfs> {
    g.root_vfs(os)
}

/// The options with VIRTIO_WIN as the default driver source (for the worker, too).
fn with_env(opts: &PlanOptions) -> PlanOptions {
    let mut o = opts.clone();
    if o.virtio_win.is_none() {
        o.virtio_win = std::env::var_os("VIRTIO_WIN").map(PathBuf::from);
    }
    o
}

/// No OS at all is its own outcome (exit 4) in every command, not a refusal.
pub fn no_os_is_an_error(g: &Guest, inputs: &[PathBuf]) -> Result<(), InspectError> {
    if !g.inspection.operating_systems.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    // choose_os names what hides the OS (BitLocker); its first words repeat ours.
    let why = choose_os(g).err().unwrap_or_default();
    let extra = why
        .strip_prefix("no operating system found")
        .unwrap_or(&why);
    Err(InspectError::NoOs(format!("{}{extra}", names.join(", "))))
}

/// Plans without writing (for `revirt plan`); dirty XFS logs are read through a throwaway
/// recovery ([`crate::recover`]).
pub fn plan_only(
    inputs: &[PathBuf],
    opts: &PlanOptions,
    policy: &OpenPolicy,
) -> Result<(Guest, Result<RepairPlan, String>)> {
    let g = crate::recover::inspect_recovered(inputs, policy)?;
    no_os_is_an_error(&g, inputs)?;
    let plan = plan_guest(&g, opts)?;
    Ok((g, plan))
}

/// The plan for the OS [`choose_os`] picks, or why there is none.
fn plan_guest(g: &Guest, opts: &PlanOptions) -> Result<Result<RepairPlan, String>> {
    let os = match choose_os(g) {
        Ok(os) => os,
        Err(e) => return Ok(Err(e)),
    };
    if let Some(why) = unrecovered_log(g, os) {
        return Ok(Err(why));
    }
    if os.kind == "windows" {
        let w = os.windows.as_ref().expect("windows");
        let vfs = root_vfs(g, os)?;
        let opts = with_env(opts);
        let inp = crate::plan::windows::collect_windows_inputs(&vfs, w, &opts)?;
        return Ok(Ok(crate::plan::windows::plan_windows(
            os,
            &g.inspection,
            &inp,
            &opts,
        )));
    }
    let l = os.linux.as_ref().expect("linux");
    let vfs = crate::inspect::linux::guest_vfs(&g.volumes, l)?;
    let inp = collect_inputs(&vfs, l)?;
    Ok(Ok(plan_linux(os, &g.inspection, &inp, opts)))
}

/// A filesystem of `os` whose XFS log needs recovery nobody did: a plan from it would be made
/// from blocks the guest's kernel overwrites from the log at boot.
fn unrecovered_log(g: &Guest, os: &OsReport) -> Option<String> {
    let mounted: Vec<&str> = match &os.linux {
        Some(l) => l.mounts.values().map(String::as_str).collect(),
        None => vec![os.root.device.as_str()],
    };
    let v = g.volumes.iter().find(|v| {
        mounted.contains(&v.report.device.as_str())
            && v.report
                .xfs_log
                .as_ref()
                .is_some_and(|l| l.needs_recovery && l.recovered_into.is_none())
    })?;
    let why = v
        .report
        .xfs_log
        .as_ref()
        .and_then(|l| l.error.clone())
        .unwrap_or_else(|| "not recovered".into());
    Some(format!(
        "{}: the XFS log needs recovery (a snapshot of a mounted filesystem) and was {why}",
        v.report.device
    ))
}

/// The run's output overlays (`--output`, or the in-place pending overlays) while it runs: a
/// run that fails or refuses removes them again, so nothing half-written is left.
struct Outputs {
    pending: Option<crate::pending::Pending>,
    made: Vec<PathBuf>,
}

impl Outputs {
    fn create(req: &RepairRequest, g: &Guest, run_id: &str) -> Result<Self> {
        if req.outputs.is_empty() {
            let p = crate::pending::Pending::begin(&req.inputs, run_id, |ovs| {
                apply::create_overlays(&g.images(), ovs)
            })?;
            return Ok(Outputs {
                pending: Some(p),
                made: vec![],
            });
        }
        apply::create_overlays(&g.images(), &req.outputs)?;
        Ok(Outputs {
            pending: None,
            made: req.outputs.clone(),
        })
    }

    fn paths(&self) -> Vec<PathBuf> {
        match &self.pending {
            Some(p) => p.overlays(),
            None => self.made.clone(),
        }
    }

    /// Keeps the `--output` overlays; returns the in-place pending overlays to commit or discard.
    fn keep(mut self) -> Option<crate::pending::Pending> {
        self.made.clear();
        self.pending.take()
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            let _ = p.discard();
        }
        for f in &self.made {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Recovers the dirty XFS logs of `g` into its outputs (created here) before anything is
/// planned; returns the guest as read from them and the appliance, which writes the plan next.
fn recover_into_outputs(
    req: &RepairRequest,
    g: &Guest,
    dirty: &[String],
    run_id: &str,
) -> Result<(Guest, Outputs, crate::guestfs::Appliance)> {
    let outputs = Outputs::create(req, g, run_id)?;
    let paths = outputs.paths();
    let app = apply::launch_rw(g, &Target::Overlays(paths.clone()))?;
    crate::recover::recover_logs(&app, dirty)?;
    let g = crate::recover::reinspect(g, &paths, dirty, "output", &req.policy)?;
    Ok((g, outputs, app))
}

/// Runs a full repair. `progress(phase, message)` is called at each phase.
pub fn repair(req: &RepairRequest, progress: &mut dyn FnMut(&str, &str)) -> Result<RepairReport> {
    let run_id = new_run_id();
    let mut timings = BTreeMap::new();
    let t = Instant::now();
    req.validate()?;
    let _locks = crate::lock::lock_disks(&req.inputs)?;
    let settled = crate::pending::settle(&req.inputs, &req.policy)?;
    progress("inspect", "reading the disks");
    let g = inspect_with(&req.inputs, &req.policy)?;
    // A dirty XFS log is recovered into the outputs first, so the plan is made from what the
    // guest will mount (issue #7); the same appliance session then writes.
    let dirty = crate::recover::dirty_xfs(&g);
    let (g, mut outputs, session) = if dirty.is_empty() {
        (g, None, None)
    } else {
        progress(
            "recover",
            &format!(
                "recovering the XFS log of {} into the output",
                dirty.join(", ")
            ),
        );
        match recover_into_outputs(req, &g, &dirty, &run_id) {
            Ok((g, o, app)) => (g, Some(o), Some(app)),
            Err(e) => {
                // The plan refuses (unrecovered_log); the outputs are gone again.
                let mut g = g;
                crate::recover::mark_unrecovered(&mut g, &dirty, &format!("{e:#}"));
                (g, None, None)
            }
        }
    };
    no_os_is_an_error(&g, &req.inputs)?;
    let plan = plan_guest(&g, &req.opts)?;
    timings.insert("inspect+plan".to_string(), t.elapsed().as_secs_f64());
    let mut report = RepairReport {
        schema_version: REPORT_SCHEMA_VERSION,
        revirt_version: env!("CARGO_PKG_VERSION").into(),
        run_id: run_id.clone(),
        inputs: g.inspection.disks.iter().map(|d| d.image.clone()).collect(),
        outputs: req
            .outputs
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        guest: None,
        refusals: vec![],
        notes: vec![],
        actions: vec![],
        verify: None,
        timings,
        appliance_used: g.inspection.appliance_used,
        writer: None,
        writer_reason: None,
        committed: None,
        readiness: Readiness::Refused,
    };
    let plan = match plan {
        Ok(p) => p,
        Err(why) => {
            report.refusals.push(why);
            return Ok(report);
        }
    };
    let os = choose_os(&g).expect("plan exists").clone();
    report.guest = Some(os.clone());
    report.notes = plan.notes.clone();
    report.notes.extend(settled);
    if !plan.refusals.is_empty() {
        report.refusals = plan.refusals.clone();
        return Ok(report);
    }
    // The overlays name the inputs as their backing files: trust those folders when reading back.
    let after = req.policy.also_folders_of(&req.inputs);
    if plan.actions.is_empty() {
        // Already repaired (or nothing needed): verify what is there, write nothing.
        progress("verify", "nothing to change; verifying");
        drop(session);
        let t = Instant::now();
        let paths = match (&outputs, req.outputs.is_empty()) {
            // In place: the disk keeps its bytes (its log is the guest's to replay at boot).
            (Some(o), _) => o.paths(),
            (None, true) => req.inputs.clone(),
            (None, false) => {
                outputs = Some(Outputs::create(req, &g, &run_id)?);
                req.outputs.clone()
            }
        };
        report.verify = Some(verify_paths(&paths, &os, &req.opts, &after)?);
        // -o: the overlays (with any recovered log) are the result; in place: nothing changes.
        if let Some(o) = outputs {
            if let Some(p) = o.keep() {
                p.discard()?;
            }
        }
        report
            .timings
            .insert("verify".into(), t.elapsed().as_secs_f64());
        report.readiness = if report.verify.as_ref().is_some_and(|v| v.ready) {
            Readiness::Ready
        } else {
            Readiness::NotReady
        };
        return Ok(report);
    }
    // In place is an overlay beside each input, committed only once verified (crate::pending).
    let outputs = match outputs {
        Some(o) => o,
        None => Outputs::create(req, &g, &run_id)?,
    };
    let result_paths = outputs.paths();
    let target = Target::Overlays(result_paths.clone());
    progress(
        "apply",
        &format!("{} change(s) in one write session", plan.actions.len()),
    );
    let mut verdict = None;
    let mut verify_secs = 0.0;
    let opts = req.opts.clone();
    let mut verify_cb = |records: &[ActionRecord]| -> Result<serde_json::Value> {
        progress("verify", "checking the result");
        let t = Instant::now();
        let v = verify_paths(&result_paths, &os, &opts, &after)?;
        verify_secs = t.elapsed().as_secs_f64();
        let rec = serde_json::json!({
            "revirt_version": env!("CARGO_PKG_VERSION"),
            "run_id": run_id,
            "ready": v.ready,
            "findings": v.findings,
            "actions": records.iter().map(|r| serde_json::json!({"area": r.area, "op": r.op, "target": r.target, "sha256_after": r.sha256_after})).collect::<Vec<_>>(),
            "options": opts,
        });
        verdict = Some(v);
        Ok(rec)
    };
    let session = session.map(|app| apply::Session {
        app,
        why: format!(
            "the appliance recovered the XFS log of {} in this session and writes too",
            dirty.join(", ")
        ),
    });
    // On an error `outputs` drops here and removes what this run created; the in-place disks
    // were never touched.
    let done = apply::apply(
        &g,
        &target,
        &os,
        &plan,
        &run_id,
        apply::WriteWith {
            pref: req.writer,
            session,
        },
        &mut verify_cb,
    )?;
    let pending = outputs.keep();
    report
        .timings
        .insert("apply".into(), done.secs - verify_secs);
    report.timings.insert("verify".into(), verify_secs);
    report.appliance_used |= done.writer == "appliance";
    report.writer = Some(done.writer.into());
    report.writer_reason = done.writer_reason;
    report.actions = done.records;
    report.verify = verdict;
    let ready = report.verify.as_ref().is_some_and(|v| v.ready);
    report.readiness = if ready {
        Readiness::Ready
    } else {
        Readiness::NotReady
    };
    if let Some(p) = pending {
        if ready {
            progress("commit", "committing the verified changes into the disk");
            let t = Instant::now();
            p.commit(&req.policy)?;
            report.committed = Some(true);
            report
                .timings
                .insert("commit".into(), t.elapsed().as_secs_f64());
        } else {
            // Not ready: the disk keeps its original bytes rather than a half-good repair.
            p.discard()?;
            report.committed = Some(false);
            report.notes.push(
                "in place: verify found the result not ready, so nothing was committed; the disk is unchanged"
                    .into(),
            );
        }
    }
    Ok(report)
}

/// Re-inspects `paths` with the pure readers and verifies the OS rooted where `os` was.
pub fn verify_paths(
    paths: &[PathBuf],
    os: &OsReport,
    opts: &PlanOptions,
    policy: &OpenPolicy,
) -> Result<Verdict> {
    let g = inspect_with(paths, policy).context("re-inspecting the result")?;
    let again = g
        .inspection
        .operating_systems
        .iter()
        .find(|o| o.root.device == os.root.device)
        .with_context(|| {
            format!(
                "the repaired disks no longer show an OS on {}",
                os.root.device
            )
        })?;
    verify_guest(&g, again, opts)
}

/// Verifies `os` of `g`; for Linux with the guest files the planner reads, so that every cause
/// `plan` repairs is a finding (without them, what the inspection alone shows, and a warning).
pub fn verify_guest(g: &Guest, os: &OsReport, opts: &PlanOptions) -> Result<Verdict> {
    if let Some(w) = &os.windows {
        let vfs = root_vfs(g, os)?;
        return crate::verify::windows::verify_windows(w, &vfs, &with_env(opts));
    }
    let l = os.linux.as_ref().context("not a Linux or Windows OS")?;
    let inputs =
        crate::inspect::linux::guest_vfs(&g.volumes, l).and_then(|v| collect_inputs(&v, l));
    Ok(match inputs {
        Ok(inputs) => crate::verify::verify_linux_files(l, &g.inspection, &inputs, opts),
        Err(e) => {
            tracing::warn!("guest files not read ({e:#}); verifying from the inspection only");
            verify_linux(l, &g.inspection, opts)
        }
    })
}
