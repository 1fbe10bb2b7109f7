//! revirt: offline inspection and repair of guest disks migrated to KVM.
//!
//! Pipeline: [`image`] (block devices) -> [`part`] / [`lvm`] (volumes) -> [`fs`] (read-only
//! filesystems) -> [`inspect`] (guest facts) -> plan -> apply -> verify.
pub mod apply;
pub mod convert;
pub mod drivers;
pub mod error;
pub mod fs;
pub mod guestfs;
pub mod image;
pub mod inspect;
pub mod lock;
pub mod lvm;
pub mod part;
pub mod plan;
pub mod repair;
pub mod report;
pub mod types;
pub mod verify;
