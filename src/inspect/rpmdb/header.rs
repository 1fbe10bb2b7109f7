//! rpm's header blob, as the database stores it (rpm `lib/header.c`, headerImport without the
//! 8-byte magic of a package file):
//!
//! ```text
//! be32 il | be32 dl | il × entry { be32 tag, be32 type, be32 offset, be32 count } | dl bytes
//! ```
//! An entry's value sits at `offset` in the data area. The first entry of an installed header is
//! usually a region tag (61..=63) whose value is a trailer entry; entries after the region
//! ("dribbles", written at install time) replace region entries of the same tag, so the last
//! entry of a tag is the one read. Only the few tags virt-inspector prints are looked at.
use anyhow::{ensure, Result};

pub const NAME: u32 = 1000;
pub const VERSION: u32 = 1001;
pub const RELEASE: u32 = 1002;
pub const EPOCH: u32 = 1003;
pub const SUMMARY: u32 = 1004;
pub const DESCRIPTION: u32 = 1005;
pub const URL: u32 = 1020;
pub const ARCH: u32 = 1022;

pub const CHAR: u32 = 1;
pub const INT8: u32 = 2;
pub const INT16: u32 = 3;
pub const INT32: u32 = 4;
pub const INT64: u32 = 5;
pub const STRING: u32 = 6;
pub const STRING_ARRAY: u32 = 8;
pub const I18NSTRING: u32 = 9;

/// A parsed header: the index entries (tag, type, offset, count) and the data area.
pub struct Header<'a> {
    entries: Vec<[u32; 4]>,
    data: &'a [u8],
}

impl<'a> Header<'a> {
    /// Checks the counts against the blob's length; values are checked when read.
    pub fn parse(blob: &'a [u8]) -> Result<Self> {
        ensure!(blob.len() >= 8, "rpm header of {} bytes", blob.len());
        let il = be32(blob, 0) as u64;
        let dl = be32(blob, 4) as u64;
        ensure!(
            il >= 1 && 8 + 16 * il + dl <= blob.len() as u64,
            "rpm header: {il} entries and {dl} data bytes do not fit its {} bytes",
            blob.len()
        );
        let il = il as usize;
        let entries = (0..il)
            .map(|i| {
                let at = 8 + 16 * i;
                [0, 4, 8, 12].map(|k| be32(blob, at + k))
            })
            .collect();
        let start = 8 + 16 * il;
        Ok(Header {
            entries,
            data: &blob[start..start + dl as usize],
        })
    }

    fn entry(&self, tag: u32) -> Option<&[u32; 4]> {
        self.entries.iter().rev().find(|e| e[0] == tag)
    }

    /// The tag as librpm's `headerFormat("%{TAG}")` prints it: a string (the first of an array;
    /// the first of an i18n string is the C locale's), a number, or "(none)" when the tag is
    /// absent. Err when the value lies outside the data area.
    pub fn format(&self, tag: u32) -> Result<String> {
        let Some(&[_, ty, off, count]) = self.entry(tag) else {
            return Ok("(none)".into());
        };
        let off = off as usize;
        ensure!(
            off < self.data.len() && count >= 1,
            "rpm header: tag {tag} at offset {off} (count {count}) outside its {} data bytes",
            self.data.len()
        );
        let rest = &self.data[off..];
        Ok(match ty {
            STRING | STRING_ARRAY | I18NSTRING => {
                let Some(end) = rest.iter().position(|&b| b == 0) else {
                    anyhow::bail!("rpm header: tag {tag}: string at offset {off} not terminated");
                };
                String::from_utf8_lossy(&rest[..end]).into_owned()
            }
            CHAR | INT8 | INT16 | INT32 | INT64 => self.number(tag)?.unwrap_or(0).to_string(),
            _ => "(none)".into(),
        })
    }

    /// The first value of an integer tag (librpm's `headerGetNumber`); None when absent.
    pub fn number(&self, tag: u32) -> Result<Option<u64>> {
        let Some(&[_, ty, off, count]) = self.entry(tag) else {
            return Ok(None);
        };
        let width = match ty {
            CHAR | INT8 => 1,
            INT16 => 2,
            INT32 => 4,
            INT64 => 8,
            _ => return Ok(None),
        };
        let off = off as usize;
        ensure!(
            count >= 1 && off.checked_add(width).is_some_and(|e| e <= self.data.len()),
            "rpm header: tag {tag}: {width}-byte number at offset {off} outside its {} data bytes",
            self.data.len()
        );
        Ok(Some(
            self.data[off..off + width]
                .iter()
                .fold(0u64, |v, &b| (v << 8) | b as u64),
        ))
    }
}

/// A header blob of (tag, type, count, value bytes) entries, values in order in the data
/// area (for tests and fuzz seeds).
pub fn blob(entries: &[(u32, u32, u32, &[u8])]) -> Vec<u8> {
    let mut idx = vec![];
    let mut data = vec![];
    for (tag, ty, count, v) in entries {
        for x in [*tag, *ty, data.len() as u32, *count] {
            idx.extend_from_slice(&x.to_be_bytes());
        }
        data.extend_from_slice(v);
    }
    let mut b = (entries.len() as u32).to_be_bytes().to_vec();
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend(idx);
    b.extend(data);
    b
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_as_headerformat_prints_them() {
        let b = blob(&[
            (NAME, STRING, 1, b"bash\0"),
            (EPOCH, INT32, 1, &2u32.to_be_bytes()),
            (SUMMARY, I18NSTRING, 2, b"The shell\0Die Shell\0"),
            (NAME, STRING, 1, b"dribble\0"),
        ]);
        let h = Header::parse(&b).unwrap();
        assert_eq!(h.format(NAME).unwrap(), "dribble");
        assert_eq!(h.format(SUMMARY).unwrap(), "The shell");
        assert_eq!(h.format(URL).unwrap(), "(none)");
        assert_eq!(h.format(EPOCH).unwrap(), "2");
        assert_eq!(h.number(EPOCH).unwrap(), Some(2));
        assert_eq!(h.number(RELEASE).unwrap(), None);
    }

    #[test]
    fn corrupt_headers_are_errors() {
        assert!(Header::parse(&[0, 0, 0]).is_err());
        // Counts larger than the blob (truncated), no entries at all.
        let b = blob(&[(NAME, STRING, 1, b"bash\0")]);
        assert!(Header::parse(&b[..b.len() - 1]).is_err());
        assert!(Header::parse(&[0; 8]).is_err());
        let mut huge = b.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Header::parse(&huge).is_err());
        // An unterminated string, an offset past the data, a number running past it.
        let h = blob(&[(NAME, STRING, 1, b"bash")]);
        assert!(Header::parse(&h).unwrap().format(NAME).is_err());
        let mut far = b.clone();
        far[16..20].copy_from_slice(&100u32.to_be_bytes());
        assert!(Header::parse(&far).unwrap().format(NAME).is_err());
        let e = blob(&[(EPOCH, INT32, 1, &[0, 1])]);
        assert!(Header::parse(&e).unwrap().number(EPOCH).is_err());
        let mut wrap = blob(&[(EPOCH, INT64, 1, &[0; 8])]);
        wrap[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Header::parse(&wrap).unwrap().number(EPOCH).is_err());
    }
}
