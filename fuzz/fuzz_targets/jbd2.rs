#![no_main]
//! `revirt::fuzzing::jbd2` under libFuzzer; seeds from `revirt::fuzzing::seeds` at start-up.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: revirt::fuzzing::seeds::write_from_env("jbd2"),
    |data: &[u8]| revirt::fuzzing::jbd2(data)
);
