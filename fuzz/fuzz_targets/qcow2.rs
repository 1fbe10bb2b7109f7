#![no_main]
//! `revirt::fuzzing::qcow2` under libFuzzer; seeds from `revirt::fuzzing::seeds` at start-up.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: revirt::fuzzing::seeds::write_from_env("qcow2"),
    |data: &[u8]| revirt::fuzzing::qcow2(data)
);
