//! Linux guest facts.
pub mod bootloader;
pub mod network;
