#![no_main]
//! `revirt::fuzzing::grub_legacy` under libFuzzer; seeds from `revirt::fuzzing::seeds` at start-up.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: revirt::fuzzing::seeds::write_from_env("grub_legacy"),
    |data: &[u8]| revirt::fuzzing::grub_legacy(data)
);
