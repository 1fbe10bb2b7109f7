#![no_main]
//! `revirt::fuzzing::iso` under libFuzzer; seeds from `revirt::fuzzing::seeds` at start-up.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: revirt::fuzzing::seeds::write_from_env("iso"),
    |data: &[u8]| revirt::fuzzing::iso(data)
);
