//! Dirty XFS logs (crash-consistent snapshots, issue #7): reads must see what the guest's kernel
//! will mount, not the blocks before the log. revirt does not replay XFS logs itself; the
//! appliance's kernel does, on an overlay, and the pure readers then read that overlay.
//!
//! ```text
//!   inspect/plan/verify:  overlays in a temp folder ─▶ appliance: mount + umount each dirty
//!                         XFS (the kernel recovers) ─▶ pure readers on the overlays ─▶ report
//!                         as the inputs (which are never written); overlays deleted
//!   repair:               the same into the run's outputs, before planning; the appliance
//!                         stays up and writes the plan (one session)
//! ```
use crate::apply::{create_overlays, launch_rw, Target};
use crate::guestfs::Appliance;
use crate::image::OpenPolicy;
use crate::inspect::{inspect_with, Guest, InspectError};
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Volumes whose XFS log needs recovery that no overlay has recovered yet.
pub fn dirty_xfs(g: &Guest) -> Vec<String> {
    g.volumes
        .iter()
        .filter(|v| {
            v.report
                .xfs_log
                .as_ref()
                .is_some_and(|l| l.needs_recovery && l.recovered_into.is_none())
        })
        .map(|v| v.report.device.clone())
        .collect()
}

/// Has the appliance's kernel recover the logs of `devices` (on disks attached read-write):
/// a mount replays the log, the unmount and sync put the result on the overlays.
pub fn recover_logs(app: &Appliance, devices: &[String]) -> Result<()> {
    for dev in devices {
        app.mount_rw(dev, "/")
            .with_context(|| format!("{dev}: recovering the XFS log (mount)"))?;
        app.umount_all()
            .with_context(|| format!("{dev}: recovering the XFS log (unmount)"))?;
    }
    app.sync().context("flushing the recovered XFS logs")?;
    Ok(())
}

/// Re-reads the guest from `overlays` (over `before`'s disks, whose `devices` were recovered
/// into them). The result reports the original disks and the logs as found, marked recovered
/// into `into`; its devices read the overlays.
pub fn reinspect(
    before: &Guest,
    overlays: &[PathBuf],
    devices: &[String],
    into: &str,
    policy: &OpenPolicy,
) -> Result<Guest, InspectError> {
    let inputs: Vec<PathBuf> = before
        .images()
        .iter()
        .map(|i| i.path.clone().into())
        .collect();
    let mut g = inspect_with(overlays, &policy.also_folders_of(&inputs))?;
    for (d, old) in g.inspection.disks.iter_mut().zip(&before.inspection.disks) {
        d.image = old.image.clone();
    }
    for v in &mut g.volumes {
        let old = before
            .volumes
            .iter()
            .find(|o| o.report.device == v.report.device);
        if let Some(log) = old.and_then(|o| o.report.xfs_log.clone()) {
            let recovered = devices.contains(&v.report.device);
            v.report.xfs_log = Some(crate::types::XfsLogReport {
                recovered_into: recovered.then(|| into.to_string()),
                ..log
            });
        }
    }
    sync_volume_reports(&mut g);
    g.inspection.appliance_used = true;
    Ok(g)
}

/// The inspection's copy of the volume reports follows the volumes.
fn sync_volume_reports(g: &mut Guest) {
    g.inspection.volumes = g.volumes.iter().map(|v| v.report.clone()).collect();
}

/// [`inspect_with`], reading past dirty XFS logs: they are recovered into throwaway overlays
/// (the inputs stay untouched). When that fails, the guest is returned as read, each dirty log
/// carrying the reason, so that inspect still reports and plan refuses.
pub fn inspect_recovered(paths: &[PathBuf], policy: &OpenPolicy) -> Result<Guest, InspectError> {
    let mut g = inspect_with(paths, policy)?;
    let dirty = dirty_xfs(&g);
    if dirty.is_empty() {
        return Ok(g);
    }
    tracing::info!(
        "XFS log(s) of {} need recovery: recovering into a throwaway overlay",
        dirty.join(", ")
    );
    match throwaway(&g, &dirty, policy) {
        Ok(r) => Ok(r),
        Err(e) => {
            mark_unrecovered(&mut g, &dirty, &format!("{e:#}"));
            Ok(g)
        }
    }
}

/// Records on each of the `dirty` volumes why its log was not recovered; reads see the state
/// before the log, and plans refuse.
pub fn mark_unrecovered(g: &mut Guest, dirty: &[String], err: &str) {
    let why = format!("not recovered: {err}");
    for v in &mut g.volumes {
        if !dirty.contains(&v.report.device) {
            continue;
        }
        if let Some(l) = v.report.xfs_log.as_mut() {
            l.error = Some(why.clone());
        }
    }
    g.inspection.warnings.push(format!(
        "XFS log(s) of {} need recovery and were {why}; reads show the state before the log",
        dirty.join(", ")
    ));
    sync_volume_reports(g);
}

fn throwaway(g: &Guest, dirty: &[String], policy: &OpenPolicy) -> Result<Guest> {
    let dir = tempfile::Builder::new()
        .prefix("revirt-recover-")
        .tempdir()
        .context("creating a folder for the recovery overlays")?;
    let outs: Vec<PathBuf> = (0..g.inspection.disks.len())
        .map(|i| dir.path().join(format!("disk{i}.qcow2")))
        .collect();
    create_overlays(&g.images(), &outs)?;
    let app = launch_rw(g, &Target::Overlays(outs.clone()))?;
    recover_logs(&app, dirty)?;
    app.shutdown().context("stopping the recovery appliance")?;
    drop(app);
    // The readers keep the overlays open; the folder goes when `dir` does.
    Ok(reinspect(g, &outs, dirty, "throwaway-overlay", policy)?)
}
