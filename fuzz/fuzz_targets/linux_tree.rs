#![no_main]
//! `revirt::fuzzing::linux_tree` under libFuzzer; seeds from `revirt::fuzzing::seeds` at start-up.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: revirt::fuzzing::seeds::write_from_env("linux_tree"),
    |data: &[u8]| revirt::fuzzing::linux_tree(data)
);
