//! Bootloader repair planning (in progress).
use super::{Action, PlanInputs, PlanOptions};
use crate::types::{Inspection, LinuxInfo};

/// Guest files the bootloader planner reads.
pub fn wanted_inputs(l: &LinuxInfo) -> Vec<String> {
    let mut v: Vec<String> = l.bootloader.config.iter().cloned().collect();
    v.extend(l.bootloader.defaults_file.iter().cloned());
    v
}

/// Plans root=/resume= and console fixes in the bootloader configuration.
pub fn plan_bootloader(
    _l: &LinuxInfo,
    _ins: &Inspection,
    _inputs: &PlanInputs,
    _opts: &PlanOptions,
    _notes: &mut Vec<String>,
) -> Vec<Action> {
    vec![]
}
