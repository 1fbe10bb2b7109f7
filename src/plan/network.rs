//! Network repair planning (in progress).
use super::{Action, PlanInputs, PlanOptions};
use crate::types::LinuxInfo;

/// Guest files the network planner reads.
pub fn wanted_inputs(l: &LinuxInfo) -> Vec<String> {
    let mut v: Vec<String> = l.network.configs.iter().map(|c| c.file.clone()).collect();
    v.extend(
        l.network
            .persistent_net_rules
            .iter()
            .map(|r| r.file.clone()),
    );
    v
}

/// Plans DHCP (or kept static) networking on whatever NIC appears, dropping MAC/name pins.
pub fn plan_network(
    _l: &LinuxInfo,
    _inputs: &PlanInputs,
    _opts: &PlanOptions,
    _notes: &mut Vec<String>,
) -> Vec<Action> {
    vec![]
}

/// Kernel command-line arguments the network repair relies on (e.g. "net.ifnames=0"); the
/// bootloader planner adds them to every entry.
pub fn kernel_args(_l: &LinuxInfo, _opts: &PlanOptions) -> Vec<String> {
    vec![]
}
