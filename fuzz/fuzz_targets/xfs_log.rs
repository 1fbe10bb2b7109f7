#![no_main]
//! `revirt::fuzzing::xfs_log` under libFuzzer; seeds from `revirt::fuzzing::seeds` at start-up.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: revirt::fuzzing::seeds::write_from_env("xfs_log"),
    |data: &[u8]| revirt::fuzzing::xfs_log(data)
);
