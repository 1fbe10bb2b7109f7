//! virtio-win driver sources: a host folder or the virtio-win ISO image, read the same way.
//!
//! ```text
//! --virtio-win PATH -> open(PATH) -> Box<dyn DriverSource>
//!        directory  -> FolderSource (std::fs)
//!        ISO 9660   -> IsoSource (pure Rust reader, Joliet / Rock Ridge names)
//! ```
//!
//! Paths inside a source are relative, `/`-separated and matched case-insensitively, as Windows
//! would (the real ISO ships `NetKVM/w10/amd64/netkvm.inf` next to `viostor/...`).
//!
//! A plan names each file to upload by a *reference* string ([`DriverSource::reference`]): the
//! host path for a folder, `ISO_PATH!/REL/PATH` for an ISO member. The string is stable and
//! readable in a printed plan; [`materialize`] turns it back into a host file at apply time
//! (extracting ISO members into the apply step's temporary folder).
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

pub mod folder;
pub mod iso;

pub use folder::FolderSource;
pub use iso::IsoSource;

/// Separator between an ISO image path and a member path in a reference string.
pub const ISO_MEMBER_SEP: &str = "!/";

/// A read-only tree of virtio-win drivers laid out as `DRIVER/OS/ARCH/files`.
pub trait DriverSource {
    /// What this source is, for messages ("virtio-win folder /x", "virtio-win ISO /x.iso").
    fn describe(&self) -> String;
    /// Every `DRIVER/OS/ARCH` folder (exactly three levels), names as stored, sorted.
    fn list_driver_dirs(&self) -> Result<Vec<String>>;
    /// Names of the regular files directly in the folder `dir` (relative), sorted.
    /// Errors when `dir` does not exist.
    fn list_files(&self, dir: &str) -> Result<Vec<String>>;
    /// Streams the file `rel` into `out`; `Ok(None)` when there is no such file.
    fn copy_to(&self, rel: &str, out: &mut dyn Write) -> Result<Option<u64>>;
    /// The plan's `from` string for the member `rel` (see the module docs).
    fn reference(&self, rel: &str) -> String;

    /// The bytes of the file `rel`; `Ok(None)` when there is no such file.
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let mut v = vec![];
        Ok(self.copy_to(rel, &mut v)?.map(|_| v))
    }
}

/// Opens a driver source: a directory as a folder source, a regular file holding an ISO 9660
/// volume (`CD001` at sector 16) as an ISO source; anything else is an error naming the path.
pub fn open(path: &Path) -> Result<Box<dyn DriverSource>> {
    let bad = |what: String| anyhow::Error::new(BadSource(format!("{}: {what}", path.display())));
    let md = std::fs::metadata(path)
        .map_err(|e| bad(format!("cannot open the virtio-win source: {e}")))?;
    if md.is_dir() {
        return Ok(Box::new(FolderSource::new(path)));
    }
    if !md.is_file() {
        return Err(bad(
            "the virtio-win source must be a folder or an ISO 9660 image file".into(),
        ));
    }
    if !iso::is_iso9660(path)? {
        return Err(bad("not an ISO 9660 image (no CD001 volume descriptor at sector 16); the virtio-win source must be a folder or the virtio-win ISO".into()));
    }
    Ok(Box::new(IsoSource::open(path)?))
}

/// The driver source the user named is missing or not a folder / ISO: bad input, not a
/// failure of revirt (the CLI exits 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadSource(pub String);

/// Turns a plan's `from` reference into a host file: an existing host file is used as is; an
/// `ISO!/member` reference is extracted under `dir` (the apply step's temporary folder).
pub fn materialize(from: &str, dir: &Path) -> Result<PathBuf> {
    let direct = Path::new(from);
    if direct.is_file() {
        return Ok(direct.to_path_buf());
    }
    // The ISO path itself may contain "!/": take the first split whose left side is a file.
    for (i, _) in from.match_indices(ISO_MEMBER_SEP) {
        let (img, member) = (&from[..i], &from[i + ISO_MEMBER_SEP.len()..]);
        if !Path::new(img).is_file() {
            continue;
        }
        let comps = split_rel(member);
        if comps.is_empty() || comps.contains(&"..") {
            bail!("{from}: bad member path {member:?} in an ISO reference");
        }
        let iso = IsoSource::open(Path::new(img))?;
        let mut out = dir.join("virtio-win");
        for c in &comps {
            out.push(c);
        }
        if let Some(p) = out.parent() {
            std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
        }
        let mut f =
            std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
        if iso.copy_to(member, &mut f)?.is_none() {
            bail!("{from}: no such file in {}", iso.describe());
        }
        f.flush()
            .with_context(|| format!("writing {}", out.display()))?;
        return Ok(out);
    }
    bail!("{from}: the driver file is neither a host file nor a member of an ISO image (ISO!/path)")
}

/// Components of a relative source path, empty and `.` components dropped.
pub(crate) fn split_rel(rel: &str) -> Vec<&str> {
    rel.split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// Case-insensitive name equality, as Windows compares file names.
pub(crate) fn name_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

/// The entry of `names` matching `want`: the exact spelling first, else case-insensitively.
pub(crate) fn pick<'a, T>(names: &'a [T], want: &str, name: impl Fn(&T) -> &str) -> Option<&'a T> {
    names
        .iter()
        .find(|n| name(n) == want)
        .or_else(|| names.iter().find(|n| name_eq(name(n), want)))
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use super::testutil::{make_iso, sample_tree};
    use super::*;

    #[test]
    fn open_picks_folder_or_iso_and_refuses_other_files() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        sample_tree(&tree);
        let iso = d.path().join("vw.iso");
        make_iso(&tree, &iso, &[], &["-J", "-R"]);
        assert!(open(&tree).unwrap().describe().contains("folder"));
        assert!(open(&iso).unwrap().describe().contains("ISO"));
        let junk = d.path().join("junk.iso");
        std::fs::write(&junk, vec![0u8; 40 * 2048]).unwrap();
        let e = open(&junk).err().expect("zeros are no ISO").to_string();
        assert!(e.contains("junk.iso") && e.contains("CD001"), "{e}");
        let e = format!("{:#}", open(&d.path().join("missing")).err().unwrap());
        assert!(e.contains("missing"), "{e}");
        let short = d.path().join("short");
        std::fs::write(&short, b"tiny").unwrap();
        let e = open(&short).err().expect("4 bytes are no ISO").to_string();
        assert!(e.contains("not an ISO 9660"), "{e}");
    }

    #[test]
    fn materialize_host_files_and_iso_members() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        sample_tree(&tree);
        let iso = d.path().join("v!/w.iso");
        std::fs::create_dir_all(iso.parent().unwrap()).unwrap();
        make_iso(&tree, &iso, &[], &["-J", "-R"]);
        let out = d.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let host = tree.join("viostor/w10/amd64/viostor.sys");
        let f = FolderSource::new(&tree);
        assert_eq!(
            f.reference("viostor/w10/amd64/viostor.sys"),
            host.display().to_string()
        );
        assert_eq!(
            materialize(&f.reference("viostor/w10/amd64/viostor.sys"), &out).unwrap(),
            host
        );
        let src = IsoSource::open(&iso).unwrap();
        let r = src.reference("viostor/w10/amd64/viostor.sys");
        assert_eq!(
            r,
            format!("{}!/viostor/w10/amd64/viostor.sys", iso.display())
        );
        let got = materialize(&r, &out).unwrap();
        assert!(got.starts_with(&out), "{}", got.display());
        assert_eq!(std::fs::read(got).unwrap(), std::fs::read(&host).unwrap());
        let e = format!(
            "{:#}",
            materialize(&format!("{}!/nope/x.sys", iso.display()), &out).unwrap_err()
        );
        assert!(e.contains("nope/x.sys: no such file"), "{e}");
        let e = format!(
            "{:#}",
            materialize(&format!("{}!/../x", iso.display()), &out).unwrap_err()
        );
        assert!(e.contains("bad member path"), "{e}");
        assert!(materialize("/no/such/file", &out).is_err());
    }
}
