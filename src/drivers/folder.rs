//! A virtio-win tree in a host folder (an unpacked or mounted ISO), read with std::fs.
use super::{name_eq, split_rel, DriverSource};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct FolderSource {
    root: PathBuf,
}

impl FolderSource {
    pub fn new(root: &Path) -> Self {
        FolderSource {
            root: root.to_path_buf(),
        }
    }

    /// Entries of a host folder: (name, is_dir). Names that are not UTF-8 are skipped: they
    /// cannot be virtio-win folder or file names.
    fn entries(dir: &Path) -> Result<Vec<(String, bool)>> {
        let mut v = vec![];
        for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let e = e.with_context(|| format!("listing {}", dir.display()))?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            // Follows symlinks, as the folder layout of a mounted ISO or a copy may use them.
            let p = e.path();
            if p.is_dir() {
                v.push((name, true));
            } else if p.is_file() {
                v.push((name, false));
            }
        }
        v.sort();
        Ok(v)
    }

    /// Host path of `rel`, each component matched case-insensitively (exact spelling first).
    fn resolve(&self, rel: &str) -> Result<Option<PathBuf>> {
        let mut p = self.root.clone();
        for c in split_rel(rel) {
            let exact = p.join(c);
            if exact.exists() {
                p = exact;
                continue;
            }
            if !p.is_dir() {
                return Ok(None);
            }
            let ents = Self::entries(&p)?;
            match ents.iter().find(|(n, _)| name_eq(n, c)) {
                Some((n, _)) => p.push(n),
                None => return Ok(None),
            }
        }
        Ok(Some(p))
    }
}

impl DriverSource for FolderSource {
    fn describe(&self) -> String {
        format!("virtio-win folder {}", self.root.display())
    }

    fn list_driver_dirs(&self) -> Result<Vec<String>> {
        let mut out = vec![];
        for (d, d_dir) in Self::entries(&self.root)? {
            if !d_dir {
                continue;
            }
            let dp = self.root.join(&d);
            // A folder that cannot be read is skipped, as today's listing did: it cannot hold a
            // driver the planner would pick.
            let Ok(oses) = Self::entries(&dp) else {
                continue;
            };
            for (o, o_dir) in oses {
                if !o_dir {
                    continue;
                }
                let Ok(archs) = Self::entries(&dp.join(&o)) else {
                    continue;
                };
                for (a, a_dir) in archs {
                    if a_dir {
                        out.push(format!("{d}/{o}/{a}"));
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        let p = self
            .resolve(dir)?
            .filter(|p| p.is_dir())
            .with_context(|| format!("{}: no folder {dir}", self.describe()))?;
        Ok(Self::entries(&p)?
            .into_iter()
            .filter(|(_, is_dir)| !is_dir)
            .map(|(n, _)| n)
            .collect())
    }

    fn copy_to(&self, rel: &str, out: &mut dyn Write) -> Result<Option<u64>> {
        let Some(p) = self.resolve(rel)?.filter(|p| p.is_file()) else {
            return Ok(None);
        };
        let mut f = std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?;
        let n = std::io::copy(&mut f, out).with_context(|| format!("reading {}", p.display()))?;
        Ok(Some(n))
    }

    fn reference(&self, rel: &str) -> String {
        // The stored spelling when the member exists, so the plan names a real host file.
        let p = self.resolve(rel).ok().flatten().unwrap_or_else(|| {
            split_rel(rel)
                .iter()
                .fold(self.root.clone(), |p, c| p.join(c))
        });
        p.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::testutil::sample_tree;

    #[test]
    fn folder_lists_three_levels_and_reads_case_insensitively() {
        let d = tempfile::tempdir().unwrap();
        sample_tree(d.path());
        let s = FolderSource::new(d.path());
        let dirs = s.list_driver_dirs().unwrap();
        assert!(dirs.contains(&"NetKVM/w10/amd64".to_string()), "{dirs:?}");
        assert!(
            dirs.contains(&"viostor/2k8R2/amd64".to_string()),
            "{dirs:?}"
        );
        assert!(
            !dirs.iter().any(|d| d.starts_with("guest-agent")),
            "{dirs:?}"
        );
        assert_eq!(
            s.list_files("netkvm/W10/AMD64").unwrap(),
            vec!["netkvm.cat", "netkvm.inf", "netkvm.sys"]
        );
        assert_eq!(
            s.read("NETKVM/w10/amd64/NetKVM.INF").unwrap().unwrap(),
            std::fs::read(d.path().join("NetKVM/w10/amd64/netkvm.inf")).unwrap()
        );
        assert_eq!(s.read("viostor/w10/amd64/none.sys").unwrap(), None);
        let e = s.list_files("viostor/w99/amd64").unwrap_err().to_string();
        assert!(e.contains("no folder viostor/w99/amd64"), "{e}");
        assert_eq!(
            s.reference("netkvm/w10/amd64/netkvm.inf"),
            d.path()
                .join("NetKVM/w10/amd64/netkvm.inf")
                .display()
                .to_string()
        );
    }
}
