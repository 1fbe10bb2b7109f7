#![no_main]
//! `revirt::fuzzing::initramfs_packed` under libFuzzer; seeds from `revirt::fuzzing::seeds` at start-up.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: revirt::fuzzing::seeds::write_from_env("initramfs_packed"),
    |data: &[u8]| revirt::fuzzing::initramfs_packed(data)
);
