//! revirt: offline inspection and repair of guest disks migrated to KVM.
//!
//! Pipeline: [`image`] (block devices) -> [`part`] / [`lvm`] (volumes) -> [`fs`] (read-only
//! filesystems) -> [`inspect`] (guest facts) -> plan -> apply -> verify.
pub mod apply;
pub mod convert;
pub mod drivers;
pub mod error;
pub mod fs;
pub mod fuzzing;
pub mod guestfs;
pub mod image;
pub mod inspect;
pub mod lock;
pub mod luks;
pub mod lvm;
pub mod md;
pub mod native;
pub mod part;
pub mod pending;
pub mod plan;
pub mod recover;
pub mod repair;
pub mod report;
pub mod types;
pub mod verify;

/// Test hook for the kill-at-any-moment tests: when `REVIRT_TEST_KILL_AT` names `point`, the
/// process kills itself with SIGKILL there (no unwinding, no cleanup: a power cut).
pub fn test_kill_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT
        .get_or_init(|| std::env::var("REVIRT_TEST_KILL_AT").ok())
        .as_deref()
        == Some(point)
    {
        // SAFETY: signalling ourselves.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}
