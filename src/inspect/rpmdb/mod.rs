//! rpm's SQLite database (`rpmdb.sqlite`, rpm >= 4.16: Fedora >= 33, RHEL 9 and its rebuilds,
//! openSUSE Tumbleweed): the `Packages` table, `(hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob
//! BLOB NOT NULL)`, one header blob per installed package. Read in pure Rust ([`sqlite`],
//! [`header`]) since every byte comes from the guest. The Berkeley DB (`Packages`) and ndb
//! (`Packages.db`) formats of older releases are not read.
//!
//! virt-inspector gets the list from librpm run chrooted in the guest (libguestfs
//! `daemon/rpm.ml`, `rpm-c.c`): NAME, VERSION, RELEASE, ARCH, URL, SUMMARY and DESCRIPTION through
//! `headerFormat` (so an absent tag reads "(none)"), EPOCH through `headerGetNumber`; every
//! package, gpg-pubkey entries included.
pub mod header;
pub mod sqlite;

use super::apps::Application;
use anyhow::{Context, Result};
use header::Header;
use sqlite::Value;

/// Where the database lives: librpm's `%_dbpath`, /var/lib/rpm upstream, /usr/lib/sysimage/rpm
/// on Fedora >= 36 and openSUSE (with /var/lib/rpm a link to it, or absent).
pub const DB_PATHS: [&str; 2] = [
    "/var/lib/rpm/rpmdb.sqlite",
    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
];

/// Largest database read into memory (a full Fedora Workstation's is about 100 MiB; the image
/// is a tenant's, so the worker's memory stays bounded).
pub const DB_LIMIT: u64 = 512 << 20;

/// The installed packages of an rpmdb.sqlite file, in the database's (rowid) order.
pub fn applications(db: &[u8]) -> Result<Vec<Application>> {
    let db = sqlite::Db::open(db)?;
    let root = db
        .table_root("Packages")?
        .context("no Packages table in the rpm database")?;
    let mut out = vec![];
    db.walk_table(root, &mut |hnum, payload| {
        let app = package(&payload).with_context(|| format!("Packages row {hnum}"))?;
        out.push(app);
        Ok(true)
    })
    .context("reading the Packages table")?;
    Ok(out)
}

/// One Packages row: (hnum, an alias of the rowid and so stored as NULL; blob).
fn package(record: &[u8]) -> Result<Application> {
    let cols = sqlite::record(record)?;
    let Some(Value::Blob(blob)) = cols.get(1) else {
        anyhow::bail!("no header blob in its second column");
    };
    let h = Header::parse(blob)?;
    Ok(Application {
        name: h.format(header::NAME)?,
        epoch: h.number(header::EPOCH)?.unwrap_or(0) as u32,
        version: h.format(header::VERSION)?,
        release: h.format(header::RELEASE)?,
        arch: h.format(header::ARCH)?,
        url: h.format(header::URL)?,
        summary: h.format(header::SUMMARY)?,
        description: h.format(header::DESCRIPTION)?,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::header::blob;
    use super::sqlite::tests::{blank, leaf, rec};
    use super::*;

    #[test]
    fn packages_table_to_applications() {
        let h = blob(&[
            (header::NAME, 6, 1, b"bash\0"),
            (header::VERSION, 6, 1, b"5.2.26\0"),
            (header::RELEASE, 6, 1, b"1.fc39\0"),
            (header::ARCH, 6, 1, b"x86_64\0"),
            (header::SUMMARY, 9, 1, b"The GNU Bourne Again shell\0"),
        ]);
        let mut d = blank(2);
        let schema = rec(&[
            (23, b"table"),
            (29, b"Packages"),
            (29, b"Packages"),
            (1, &[2]),
            (13, b""),
        ]);
        leaf(&mut d, 1, &[(1, &schema, 0)]);
        let row = rec(&[(0, b""), (12 + 2 * h.len() as u64, &h)]);
        leaf(&mut d, 2, &[(1, &row, 0)]);
        let a = applications(&d).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(
            (
                a[0].name.as_str(),
                a[0].version.as_str(),
                a[0].release.as_str()
            ),
            ("bash", "5.2.26", "1.fc39")
        );
        assert_eq!((a[0].epoch, a[0].url.as_str()), (0, "(none)"));
        // A row whose blob is not a header names the row.
        let bad = rec(&[(0, b""), (12 + 6, b"abc")]);
        leaf(&mut d, 2, &[(7, &bad, 0)]);
        let e = applications(&d).unwrap_err();
        assert!(format!("{e:#}").contains("Packages row 7"), "{e:#}");
        // No Packages table.
        leaf(&mut d, 1, &[]);
        assert!(applications(&d).is_err());
    }
}
