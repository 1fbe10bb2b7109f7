#![no_main]
//! `revirt::fuzzing::fat` under libFuzzer; seeds from `revirt::fuzzing::seeds` at start-up.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: revirt::fuzzing::seeds::write_from_env("fat"),
    |data: &[u8]| revirt::fuzzing::fat(data)
);
