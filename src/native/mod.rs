//! Native writes: repairs made without the libguestfs appliance.
//!
//! ```text
//!   revirt (parent)                                   caged helper (one per filesystem)
//!   output disk <- qemu-storage-daemon <- libnbd  <-  block requests  <-  libext2fs | libntfs-3g
//!                 (qcow2 overlay or in place)         (checked, mapped)   (seccomp, rlimits)
//!
//!   hive bytes  -> private folder  <-  caged hive helper: libhivex (seccomp + landlock: that
//!                                      folder is the only path it can open)
//! ```
//! The parent never parses the guest's filesystem metadata with C code; the helper that does
//! can reach nothing but its two pipes (see [`sandbox`]).
pub mod client;
pub mod ext2fs;
pub mod helper;
pub mod hive;
pub mod nbd;
pub mod ntfs;
pub mod proto;
pub mod sandbox;
