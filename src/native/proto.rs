//! The wire between revirt and a caged helper: frames over the helper's stdin/stdout.
//!
//! ```text
//!   frame = tag (1 byte) | payload length (u32 LE) | payload
//!   parent -> helper   'Q' request: json length (u32 LE) | json (Request) | data
//!                      'D' block data answering 'R'   'K' done   'E' error text
//!   helper -> parent   'R' read:  offset (u64 LE) | length (u32 LE)
//!                      'W' write: offset (u64 LE) | data
//!                      'F' flush
//!                      'A' answer: json length | json (Answer) | data
//! ```
//! The helper never touches a disk: every block it reads or writes is a request the parent
//! checks against the volume's bounds and maps onto the output disk.
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// Largest frame either side accepts (a file payload: an initramfs with drivers added).
pub const MAX_FRAME: u32 = 512 << 20;

/// One operation on the helper's filesystem. Paths are absolute within that filesystem.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Opens the filesystem (a volume of `size` bytes); answers why it must not be written
    /// natively, if so (`value` = reason).
    Open {
        size: u64,
    },
    /// The file's bytes are the frame's data. A new file gets mode/uid/gid; an existing one
    /// keeps its inode (owner, mode, xattrs) unless `mode` says otherwise.
    WriteFile {
        path: String,
        mode: Option<u32>,
        new_mode: u32,
        uid: u32,
        gid: u32,
    },
    ReadFile {
        path: String,
        limit: u64,
    },
    MkdirP {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Chmod {
        path: String,
        mode: u32,
    },
    Remove {
        path: String,
    },
    Rmdir {
        path: String,
    },
    /// Flushes and closes the filesystem; the helper exits after answering.
    Close,
}

/// The helper's answer: `error` set on failure; `value` a short result; data in the frame.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Answer {
    pub error: Option<String>,
    /// The error is a refusal (corrupt or unsupported metadata, no space), not a failure.
    #[serde(default)]
    pub refused: bool,
    pub value: Option<String>,
}

pub fn write_frame(w: &mut dyn Write, tag: u8, parts: &[&[u8]]) -> std::io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(len).map_err(|_| std::io::Error::other("frame too large"))?;
    w.write_all(&[tag])?;
    w.write_all(&len.to_le_bytes())?;
    for p in parts {
        w.write_all(p)?;
    }
    w.flush()
}

pub fn read_frame(r: &mut dyn Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes exceeds the {MAX_FRAME}-byte cap"
        )));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    Ok((head[0], buf))
}

/// Frames a JSON header followed by raw data ('Q' and 'A').
pub fn write_json(
    w: &mut dyn Write,
    tag: u8,
    json: &impl Serialize,
    data: &[u8],
) -> std::io::Result<()> {
    let j = serde_json::to_vec(json).map_err(std::io::Error::other)?;
    let jl = (j.len() as u32).to_le_bytes();
    write_frame(w, tag, &[&jl, &j, data])
}

/// Splits a 'Q'/'A' payload into its JSON header and data.
pub fn split_json<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> std::io::Result<(T, &[u8])> {
    let bad = || std::io::Error::other("malformed frame");
    let jl = u32::from_le_bytes(payload.get(..4).ok_or_else(bad)?.try_into().unwrap()) as usize;
    let j = payload.get(4..4 + jl).ok_or_else(bad)?;
    let v = serde_json::from_slice(j).map_err(std::io::Error::other)?;
    Ok((v, &payload[4 + jl..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut buf = vec![];
        let q = Request::Chmod {
            path: "/etc/x".into(),
            mode: 0o600,
        };
        write_json(&mut buf, b'Q', &q, b"data").unwrap();
        let (tag, p) = read_frame(&mut buf.as_slice()).unwrap();
        assert_eq!(tag, b'Q');
        let (r, data): (Request, _) = split_json(&p).unwrap();
        assert!(matches!(r, Request::Chmod { mode: 0o600, .. }));
        assert_eq!(data, b"data");
        let mut huge = vec![b'W'];
        huge.extend_from_slice(&(MAX_FRAME + 1).to_le_bytes());
        assert!(read_frame(&mut huge.as_slice()).is_err());
        assert!(split_json::<Answer>(&[9, 0, 0, 0, b'{']).is_err());
    }
}
