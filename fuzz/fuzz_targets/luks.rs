#![no_main]
//! `revirt::fuzzing::luks` under libFuzzer; seeds from `revirt::fuzzing::seeds` at start-up.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: revirt::fuzzing::seeds::write_from_env("luks"),
    |data: &[u8]| revirt::fuzzing::luks(data)
);
