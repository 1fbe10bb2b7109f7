//! wip
pub fn format_lvm_uuid(raw: &str) -> String { raw.to_string() }
