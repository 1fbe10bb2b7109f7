//! One exclusive lock per disk for every revirt writer (repair, worker, undo), so two runs never
//! write the same disk. `flock(2)` on the image file itself: no lock file to leave behind, released
//! by the kernel when the process dies, and independent of qemu's own OFD byte-range locks.
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Another process holds a disk (exit 8).
#[derive(Debug, thiserror::Error)]
#[error("{path}: another revirt run holds this disk{holder}")]
pub struct Locked {
    pub path: PathBuf,
    /// " (pid N: command line)" when /proc/locks names the holder, else empty.
    pub holder: String,
}

/// Held locks; dropping this releases them.
pub struct DiskLocks {
    _files: Vec<std::fs::File>,
}

/// Takes an exclusive, non-blocking lock on each disk, in order. Fails on the first disk held
/// elsewhere (saying who holds it when the kernel tells) or that cannot be opened.
pub fn lock_disks(disks: &[PathBuf]) -> anyhow::Result<DiskLocks> {
    let mut files = vec![];
    for d in disks {
        let f = std::fs::File::open(d)
            .map_err(|e| crate::error::ImageError::io(d, e))
            .map_err(anyhow::Error::from)?;
        // SAFETY: flock on a valid fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Locked {
                path: d.clone(),
                holder: holder(d).unwrap_or_default(),
            }
            .into());
        }
        files.push(f);
    }
    Ok(DiskLocks { _files: files })
}

/// Who holds a FLOCK on `path`, from /proc/locks ("1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE ...").
fn holder(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let (maj, min) = (libc::major(m.dev()), libc::minor(m.dev()));
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = find_flock_holder(&text, maj, min, m.ino())?;
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    Some(format!(" (pid {pid}: {cmd})"))
}

/// Pure part of [`holder`]: the pid of the FLOCK line naming device `maj:min` and inode `ino`.
fn find_flock_holder(proc_locks: &str, maj: u32, min: u32, ino: u64) -> Option<u32> {
    proc_locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 6 || f[1] != "FLOCK" || f.contains(&"->") {
            return None;
        }
        let id: Vec<&str> = f[5].split(':').collect();
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let same = id.len() == 3
            && hex(id[0]) == Some(maj)
            && hex(id[1]) == Some(min)
            && id[2].parse::<u64>().ok() == Some(ino);
        if same {
            f[4].parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_flock_holder_by_device_and_inode() {
        let t = "1: POSIX  ADVISORY  WRITE 99 fd:01:1234 0 EOF\n\
                 2: FLOCK  ADVISORY  WRITE 4321 fd:01:1234 0 EOF\n\
                 3: FLOCK  ADVISORY  WRITE 77 08:02:1234 0 EOF\n";
        assert_eq!(find_flock_holder(t, 0xfd, 1, 1234), Some(4321));
        assert_eq!(find_flock_holder(t, 8, 2, 1234), Some(77));
        assert_eq!(find_flock_holder(t, 8, 2, 999), None);
    }

    #[test]
    fn a_second_lock_is_refused_and_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("disk.img");
        std::fs::write(&p, b"x").unwrap();
        let held = lock_disks(std::slice::from_ref(&p)).unwrap();
        // flock locks belong to the open file description: a second open conflicts even in
        // the same process.
        let e = lock_disks(std::slice::from_ref(&p)).err().expect("refused");
        let l = e.downcast_ref::<Locked>().expect("a Locked error");
        assert!(
            l.holder.contains(&std::process::id().to_string()),
            "{}",
            l.holder
        );
        drop(held);
        assert!(lock_disks(&[p]).is_ok());
    }
}
