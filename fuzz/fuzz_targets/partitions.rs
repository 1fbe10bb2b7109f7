#![no_main]
//! `revirt::fuzzing::partitions` under libFuzzer; seeds from `revirt::fuzzing::seeds` at start-up.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: revirt::fuzzing::seeds::write_from_env("partitions"),
    |data: &[u8]| revirt::fuzzing::partitions(data)
);
