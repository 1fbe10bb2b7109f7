//! Registry hive (regf) reader in pure Rust (in progress).
