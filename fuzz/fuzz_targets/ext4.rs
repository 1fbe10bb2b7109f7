#![no_main]
//! `revirt::fuzzing::ext4` under libFuzzer; seeds from `revirt::fuzzing::seeds` at start-up.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: revirt::fuzzing::seeds::write_from_env("ext4"),
    |data: &[u8]| revirt::fuzzing::ext4(data)
);
