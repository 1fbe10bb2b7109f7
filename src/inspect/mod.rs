//! Inspection: finds volumes, filesystems and operating systems on the guest's disks and reads
//! what repair needs to know, in pure Rust and without launching an appliance when possible.
pub mod linux;
pub mod windows;
