//! A read-only reader of the SQLite 3 file format (<https://www.sqlite.org/fileformat2.html>),
//! just enough for rpm's database: the 100-byte header, the `sqlite_schema` table (page 1) to find
//! a table's root page, the table b-tree (interior 0x05 and leaf 0x0d pages) in rowid order,
//! records (serial types) and overflow page chains.
//!
//! ```text
//! page 1: header(100) | b-tree page of sqlite_schema ─rootpage─▶ table b-tree
//! interior page: cells [left child, rowid]..., right-most child
//! leaf page: cells [payload size, rowid, local payload, first overflow page]
//! overflow page: [next page (0 = last), U-4 bytes of payload]
//! ```
//! No crate on crates.io fit (2026-12: the pure-Rust readers were prototypes or yanked), so this
//! is revirt's own. Every byte comes from a guest: each page is visited at most once (a page
//! number seen twice is a cycle), the tree is at most [`MAX_DEPTH`] deep, a payload is at most
//! [`MAX_PAYLOAD`] bytes, and errors name the page. A WAL file beside the database is not read
//! (what the last checkpoint wrote is what is seen); UTF-16 databases are refused.
use anyhow::{bail, ensure, Context, Result};

/// Deepest b-tree accepted (SQLite's own cursor stops at 20 levels).
pub const MAX_DEPTH: usize = 20;
/// Largest payload (one row) read: rpm's biggest headers are a few MiB.
pub const MAX_PAYLOAD: u64 = 64 << 20;

/// A database file held in memory.
pub struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    /// Usable bytes of a page (page size less the reserved tail).
    usable: usize,
    pages: u32,
}

/// One column of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

/// Pages seen in one walk: a page met twice is a cycle (or two parents sharing a child).
struct Visited(Vec<u64>);

impl Visited {
    fn new(pages: u32) -> Self {
        Visited(vec![0; pages as usize / 64 + 1])
    }
    /// Marks `page`; false when it was marked already.
    fn mark(&mut self, page: u32) -> bool {
        let (w, b) = (page as usize / 64, page % 64);
        let seen = self.0[w] & (1 << b) != 0;
        self.0[w] |= 1 << b;
        !seen
    }
}

impl<'a> Db<'a> {
    /// Checks the header (magic, page size, reserved bytes, encoding, read version).
    pub fn open(data: &'a [u8]) -> Result<Self> {
        ensure!(
            data.len() >= 100 && &data[..16] == b"SQLite format 3\0",
            "not an SQLite 3 database (no header magic)"
        );
        let page_size = match u16::from_be_bytes([data[16], data[17]]) {
            1 => 65536,
            n if n >= 512 && n.is_power_of_two() => n as usize,
            n => bail!("SQLite header: page size {n} is not a power of two from 512 to 65536"),
        };
        // Read format 1 (rollback journal) or 2 (WAL); a higher one is unreadable by design.
        ensure!(
            matches!(data[19], 1 | 2),
            "SQLite header: read format version {}",
            data[19]
        );
        let usable = page_size - data[20] as usize;
        ensure!(
            usable >= 480,
            "SQLite header: {} reserved bytes per page",
            data[20]
        );
        let enc = u32::from_be_bytes([data[56], data[57], data[58], data[59]]);
        ensure!(
            enc <= 1,
            "SQLite header: text encoding {enc} (UTF-16) not supported"
        );
        // The page count in the header holds only while the change counter matches the
        // version-valid-for number (older writers left it stale); the file size bounds it.
        let in_file = (data.len() / page_size).min(u32::MAX as usize) as u32;
        let hdr_pages = u32::from_be_bytes([data[28], data[29], data[30], data[31]]);
        let valid = data[24..28] == data[92..96] && hdr_pages != 0;
        let pages = if valid {
            hdr_pages.min(in_file)
        } else {
            in_file
        };
        Ok(Db {
            data,
            page_size,
            usable,
            pages,
        })
    }

    /// Page `n` (1-based), whole.
    fn page(&self, n: u32) -> Result<&'a [u8]> {
        ensure!(
            n >= 1 && n <= self.pages,
            "page number {n} outside the database (1..={})",
            self.pages
        );
        let at = (n as usize - 1) * self.page_size;
        Ok(&self.data[at..at + self.page_size])
    }

    /// Root page of table `name` in sqlite_schema; None when there is no such table.
    pub fn table_root(&self, name: &str) -> Result<Option<u32>> {
        let mut found = None;
        self.walk_table(1, &mut |_, payload| {
            let cols = record(&payload).context("sqlite_schema row")?;
            let text = |i: usize| match cols.get(i) {
                Some(Value::Text(t)) => t.as_slice(),
                _ => &[],
            };
            if text(0) == b"table" && text(1).eq_ignore_ascii_case(name.as_bytes()) {
                match cols.get(3) {
                    Some(Value::Int(r)) if *r >= 1 && *r <= u32::MAX as i64 => {
                        found = Some(*r as u32)
                    }
                    r => bail!("sqlite_schema: table {name}: root page {r:?}"),
                }
                return Ok(false);
            }
            Ok(true)
        })
        .context("reading sqlite_schema")?;
        Ok(found)
    }

    /// Calls `f(rowid, payload)` for each row of the table b-tree rooted at `root`, in rowid
    /// order, until `f` returns false.
    pub fn walk_table(
        &self,
        root: u32,
        f: &mut dyn FnMut(i64, Vec<u8>) -> Result<bool>,
    ) -> Result<()> {
        let mut seen = Visited::new(self.pages);
        // Pages still to read, deepest last: (page, depth); children pushed in reverse.
        let mut todo = vec![(root, 0usize)];
        // Child pointers taken: a sound tree names each page once, so more than the database
        // has pages is a loop (bounds the stack before the pages are visited).
        let mut pushed = 1u64;
        // Payload bytes handed out: cells of a sound file do not overlap, so more than the file
        // holds means cell pointers sharing a cell (each copy bounded, their sum is not).
        let mut given = 0u64;
        while let Some((n, depth)) = todo.pop() {
            ensure!(
                depth < MAX_DEPTH,
                "page {n}: b-tree deeper than {MAX_DEPTH}"
            );
            ensure!(
                n >= 1 && n <= self.pages,
                "page number {n} outside the database (1..={})",
                self.pages
            );
            ensure!(
                seen.mark(n),
                "page {n} reached twice (a cycle in the b-tree)"
            );
            let page = self.page(n)?;
            let hdr = if n == 1 { 100 } else { 0 };
            let kind = page[hdr];
            let cells = u16::from_be_bytes([page[hdr + 3], page[hdr + 4]]) as usize;
            let head = match kind {
                0x05 => 12,
                0x0d => 8,
                k => bail!("page {n}: page type {k:#04x} is not a table b-tree page"),
            };
            let ptrs = hdr + head;
            ensure!(
                ptrs + 2 * cells <= self.usable,
                "page {n}: {cells} cells do not fit"
            );
            let cell_at = |i: usize| -> Result<usize> {
                let o = u16::from_be_bytes([page[ptrs + 2 * i], page[ptrs + 2 * i + 1]]) as usize;
                ensure!(
                    o >= ptrs + 2 * cells && o < self.usable,
                    "page {n}: cell {i} at offset {o} outside the cell area"
                );
                Ok(o)
            };
            match kind {
                0x05 => {
                    pushed += cells as u64 + 1;
                    ensure!(
                        pushed <= self.pages as u64,
                        "page {n}: more child pointers than the database has pages"
                    );
                    let right = be32(page, hdr + 8);
                    todo.push((right, depth + 1));
                    for i in (0..cells).rev() {
                        let o = cell_at(i)?;
                        ensure!(o + 4 <= self.usable, "page {n}: cell {i} truncated");
                        todo.push((be32(page, o), depth + 1));
                    }
                }
                _ => {
                    for i in 0..cells {
                        let o = cell_at(i)?;
                        let (rowid, payload) = self
                            .leaf_cell(n, &page[..self.usable], o, &mut seen)
                            .with_context(|| format!("page {n}: cell {i}"))?;
                        given += payload.len() as u64;
                        ensure!(
                            given <= self.data.len() as u64,
                            "page {n}: cell {i}: more payload than the file holds (cells overlap)"
                        );
                        if !f(rowid, payload)? {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A table leaf cell at offset `o`: rowid and the whole payload (overflow chain followed).
    fn leaf_cell(
        &self,
        n: u32,
        page: &[u8],
        o: usize,
        seen: &mut Visited,
    ) -> Result<(i64, Vec<u8>)> {
        let (size, a) = varint(page, o)?;
        let (rowid, b) = varint(page, o + a)?;
        ensure!(
            size <= MAX_PAYLOAD,
            "payload of {size} bytes (more than {MAX_PAYLOAD})"
        );
        let size = size as usize;
        let start = o + a + b;
        let u = self.usable;
        // How much stays on the leaf page (fileformat2 §1.6, "X", "M", "K").
        let x = u - 35;
        let local = if size <= x {
            size
        } else {
            let m = (u - 12) * 32 / 255 - 23;
            let k = m + (size - m) % (u - 4);
            if k <= x {
                k
            } else {
                m
            }
        };
        ensure!(start + local <= page.len(), "payload runs past page {n}");
        let mut out = Vec::with_capacity(local);
        out.extend_from_slice(&page[start..start + local]);
        if local < size {
            ensure!(
                start + local + 4 <= page.len(),
                "overflow pointer past page {n}"
            );
            let mut next = be32(page, start + local);
            while out.len() < size {
                ensure!(
                    next != 0,
                    "overflow chain ends {} bytes short",
                    size - out.len()
                );
                ensure!(
                    next <= self.pages,
                    "overflow page {next} outside the database (1..={})",
                    self.pages
                );
                ensure!(
                    seen.mark(next),
                    "overflow page {next} reached twice (a cycle)"
                );
                let p = self.page(next)?;
                let take = (size - out.len()).min(u - 4);
                out.extend_from_slice(&p[4..4 + take]);
                next = be32(p, 0);
            }
        }
        Ok((rowid as i64, out))
    }
}

/// A database of 512-byte pages holding one table `name` (`CREATE TABLE name (id INTEGER
/// PRIMARY KEY, blob BLOB)`) whose rows 1.. are `blobs`: page 1 the schema, page 2 an interior
/// page with one leaf per row, payloads past a page on overflow pages. For tests and fuzz seeds;
/// a blob of any size fits (what does not stay on its leaf goes to overflow pages).
pub fn synthetic(name: &str, blobs: &[Vec<u8>]) -> Vec<u8> {
    const PS: usize = 512;
    let mut pages: Vec<Vec<u8>> = vec![vec![0; PS], vec![0; PS]];
    let text = |t: &[u8]| (13 + 2 * t.len() as u64, t.to_vec());
    let schema = rec_bytes(&[
        text(b"table"),
        text(name.as_bytes()),
        text(name.as_bytes()),
        (1, vec![2]),
        text(b""),
    ]);
    put_leaf(&mut pages, 0, 100, &[(1, schema)]);
    let mut children = vec![];
    for (i, b) in blobs.iter().enumerate() {
        let row = rec_bytes(&[(0, vec![]), (12 + 2 * b.len() as u64, b.clone())]);
        pages.push(vec![0; PS]);
        let n = pages.len() - 1;
        put_leaf(&mut pages, n, 0, &[(i as u64 + 1, row)]);
        children.push((n as u32 + 1, i as u64 + 1));
    }
    // Page 2: the interior page, every leaf but the last a cell, the last the right-most child.
    let right = children.pop().map_or(0, |(n, _)| n);
    let p2 = &mut pages[1];
    p2[0] = 0x05;
    p2[3..5].copy_from_slice(&(children.len() as u16).to_be_bytes());
    p2[8..12].copy_from_slice(&right.to_be_bytes());
    let mut end = PS;
    for (i, (child, key)) in children.iter().enumerate() {
        let mut c = child.to_be_bytes().to_vec();
        c.extend(enc_varint(*key));
        end -= c.len();
        p2[end..end + c.len()].copy_from_slice(&c);
        p2[12 + 2 * i..14 + 2 * i].copy_from_slice(&(end as u16).to_be_bytes());
    }
    if right == 0 {
        p2[0] = 0x0d; // no rows: an empty leaf
    }
    let mut d: Vec<u8> = pages.concat();
    d[..16].copy_from_slice(b"SQLite format 3\0");
    d[16..18].copy_from_slice(&(PS as u16).to_be_bytes());
    (d[18], d[19]) = (1, 1);
    let count = (d.len() / PS) as u32;
    d[28..32].copy_from_slice(&count.to_be_bytes());
    d[56..60].copy_from_slice(&1u32.to_be_bytes());
    d
}

/// Writes a leaf page of `cells` (rowid, payload) into `pages[n]` (header at `hdr`), overflow
/// pages appended as needed.
fn put_leaf(pages: &mut Vec<Vec<u8>>, n: usize, hdr: usize, cells: &[(u64, Vec<u8>)]) {
    let u = pages[n].len();
    let mut end = u;
    for (i, (rowid, payload)) in cells.iter().enumerate() {
        let size = payload.len();
        let x = u - 35;
        let m = (u - 12) * 32 / 255 - 23;
        let k = m + size.saturating_sub(m) % (u - 4);
        let local = if size <= x {
            size
        } else if k <= x {
            k
        } else {
            m
        };
        let mut c = enc_varint(size as u64);
        c.extend(enc_varint(*rowid));
        c.extend_from_slice(&payload[..local]);
        if local < size {
            let first = pages.len() as u32 + 1;
            c.extend_from_slice(&first.to_be_bytes());
            let chunks: Vec<&[u8]> = payload[local..].chunks(u - 4).collect();
            for (j, ch) in chunks.iter().enumerate() {
                let mut p = vec![0; u];
                let next = if j + 1 < chunks.len() {
                    pages.len() as u32 + 2
                } else {
                    0
                };
                p[..4].copy_from_slice(&next.to_be_bytes());
                p[4..4 + ch.len()].copy_from_slice(ch);
                pages.push(p);
            }
        }
        end -= c.len();
        let page = &mut pages[n];
        page[end..end + c.len()].copy_from_slice(&c);
        page[hdr + 8 + 2 * i..hdr + 10 + 2 * i].copy_from_slice(&(end as u16).to_be_bytes());
    }
    let page = &mut pages[n];
    page[hdr] = 0x0d;
    page[hdr + 3..hdr + 5].copy_from_slice(&(cells.len() as u16).to_be_bytes());
}

/// SQLite varint encoding of `v` (below 2^56).
pub fn enc_varint(mut v: u64) -> Vec<u8> {
    let mut b = vec![(v & 0x7f) as u8];
    v >>= 7;
    while v > 0 {
        b.insert(0, 0x80 | (v & 0x7f) as u8);
        v >>= 7;
    }
    b
}

/// A record of (serial type, bytes) columns.
pub fn rec_bytes(cols: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let types: Vec<u8> = cols.iter().flat_map(|(t, _)| enc_varint(*t)).collect();
    let mut r = enc_varint(types.len() as u64 + 1);
    r.extend(types);
    for (_, v) in cols {
        r.extend_from_slice(v);
    }
    r
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// SQLite varint at `at`: value and length (1 to 9 bytes, the 9th contributing all 8 bits).
pub fn varint(b: &[u8], at: usize) -> Result<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..9 {
        let Some(&c) = b.get(at + i) else {
            bail!("varint at offset {at} truncated");
        };
        if i == 8 {
            return Ok(((v << 8) | c as u64, 9));
        }
        v = (v << 7) | (c & 0x7f) as u64;
        if c & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    unreachable!("the loop returns by its 9th byte")
}

/// The columns of a record (header size, serial types, then the values).
pub fn record(p: &[u8]) -> Result<Vec<Value>> {
    let (hlen, mut at) = varint(p, 0)?;
    ensure!(
        hlen as usize <= p.len() && hlen as usize >= at,
        "record header of {hlen} bytes in a {}-byte record",
        p.len()
    );
    let hlen = hlen as usize;
    let mut body = hlen;
    let mut out = vec![];
    while at < hlen {
        let (t, l) = varint(&p[..hlen], at)?;
        at += l;
        let len = match t {
            0 | 8 | 9 => 0,
            1..=4 => t as usize,
            5 => 6,
            6 | 7 => 8,
            10 | 11 => bail!("record: reserved serial type {t}"),
            t => ((t - 12) / 2) as usize,
        };
        ensure!(
            len <= p.len() - body,
            "record: column {} of {len} bytes past the record's end",
            out.len()
        );
        let v = &p[body..body + len];
        body += len;
        out.push(match t {
            0 => Value::Null,
            8 => Value::Int(0),
            9 => Value::Int(1),
            1..=6 => {
                // Big-endian two's complement of 1, 2, 3, 4, 6 or 8 bytes.
                let mut x = if v[0] & 0x80 != 0 { -1i64 } else { 0 };
                for &c in v {
                    x = (x << 8) | c as i64;
                }
                Value::Int(x)
            }
            7 => Value::Real(f64::from_be_bytes(v.try_into()?)),
            t if t % 2 == 0 => Value::Blob(v.to_vec()),
            _ => Value::Text(v.to_vec()),
        });
    }
    Ok(out)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A database of `pages` zeroed pages of 512 bytes with a valid header.
    pub fn blank(pages: u32) -> Vec<u8> {
        let mut d = vec![0u8; 512 * pages as usize];
        d[..16].copy_from_slice(b"SQLite format 3\0");
        d[16..18].copy_from_slice(&512u16.to_be_bytes());
        (d[18], d[19]) = (1, 1);
        d[28..32].copy_from_slice(&pages.to_be_bytes());
        d[56..60].copy_from_slice(&1u32.to_be_bytes());
        d
    }

    /// Writes a table leaf page holding `cells` (rowid, payload, overflow page) at page `n`.
    pub fn leaf(d: &mut [u8], n: u32, cells: &[(u8, &[u8], u32)]) {
        let base = (n as usize - 1) * 512;
        let hdr = if n == 1 { 100 } else { 0 };
        d[base + hdr] = 0x0d;
        d[base + hdr + 3..base + hdr + 5].copy_from_slice(&(cells.len() as u16).to_be_bytes());
        let mut end = 512;
        for (i, (rowid, payload, ovf)) in cells.iter().enumerate() {
            let mut c = vec![];
            c.extend(enc_varint(payload.len() as u64));
            c.push(*rowid);
            c.extend_from_slice(payload);
            if *ovf != 0 {
                c.extend_from_slice(&ovf.to_be_bytes());
            }
            end -= c.len();
            d[base + end..base + end + c.len()].copy_from_slice(&c);
            let p = base + hdr + 8 + 2 * i;
            d[p..p + 2].copy_from_slice(&(end as u16).to_be_bytes());
        }
    }

    /// A record of the given (serial type, bytes) columns.
    pub fn rec(cols: &[(u64, &[u8])]) -> Vec<u8> {
        let c: Vec<(u64, Vec<u8>)> = cols.iter().map(|(t, v)| (*t, v.to_vec())).collect();
        rec_bytes(&c)
    }

    fn schema_row(name: &str, root: u8) -> Vec<u8> {
        rec(&[
            (13 + 2 * 5, b"table"),
            (13 + 2 * name.len() as u64, name.as_bytes()),
            (13 + 2 * name.len() as u64, name.as_bytes()),
            (1, &[root]),
            (13, b""),
        ])
    }

    fn all_rows(db: &Db, root: u32) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut v = vec![];
        db.walk_table(root, &mut |r, p| {
            v.push((r, p));
            Ok(true)
        })?;
        Ok(v)
    }

    #[test]
    fn varints_and_records() {
        assert_eq!(varint(&[0x7f], 0).unwrap(), (0x7f, 1));
        assert_eq!(varint(&[0x81, 0x00], 0).unwrap(), (0x80, 2));
        assert_eq!(varint(&[0xff; 9], 0).unwrap(), (u64::MAX, 9));
        assert!(varint(&[0x81], 0).is_err());
        let r = rec(&[
            (0, b""),
            (2, &[0xff, 0xfe]),
            (9, b""),
            (12 + 6, b"abc"),
            (15, b"x"),
        ]);
        assert_eq!(
            record(&r).unwrap(),
            vec![
                Value::Null,
                Value::Int(-2),
                Value::Int(1),
                Value::Blob(b"abc".to_vec()),
                Value::Text(b"x".to_vec())
            ]
        );
        // A column longer than the record, a header longer than the record, a reserved type.
        assert!(record(&rec(&[(12 + 20, b"abc")])).is_err());
        assert!(record(&[0x10, 1]).is_err());
        assert!(record(&rec(&[(10, b"")])).is_err());
    }

    #[test]
    fn schema_lookup_interior_pages_and_overflow() {
        let mut d = blank(6);
        let schema = schema_row("Packages", 2);
        leaf(&mut d, 1, &[(1, &schema, 0)]);
        // Page 2: interior, left child 3, right-most child 4.
        let p2 = 512;
        d[p2] = 0x05;
        d[p2 + 3..p2 + 5].copy_from_slice(&1u16.to_be_bytes());
        d[p2 + 8..p2 + 12].copy_from_slice(&4u32.to_be_bytes());
        d[p2 + 12..p2 + 14].copy_from_slice(&500u16.to_be_bytes());
        d[p2 + 500..p2 + 504].copy_from_slice(&3u32.to_be_bytes());
        d[p2 + 504] = 1;
        let small = rec(&[(0, b""), (12 + 6, b"one")]);
        leaf(&mut d, 3, &[(1, &small, 0)]);
        // A 1000-byte blob: 512-byte pages keep M = 39 bytes local... written by hand below.
        let big: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let blob = rec(&[(0, b""), (12 + 2 * 1000, &big)]);
        let (u, size) = (512usize, blob.len());
        let m = (u - 12) * 32 / 255 - 23;
        let k = m + (size - m) % (u - 4);
        let local = if k <= u - 35 { k } else { m };
        let p4 = 3 * 512;
        d[p4] = 0x0d;
        d[p4 + 3..p4 + 5].copy_from_slice(&1u16.to_be_bytes());
        let mut cell = enc_varint(size as u64);
        cell.push(2);
        cell.extend_from_slice(&blob[..local]);
        cell.extend_from_slice(&5u32.to_be_bytes());
        let at = 512 - cell.len();
        d[p4 + at..p4 + 512].copy_from_slice(&cell);
        d[p4 + 8..p4 + 10].copy_from_slice(&(at as u16).to_be_bytes());
        // Overflow pages 5 then 6.
        let rest = &blob[local..];
        let (a, b) = rest.split_at(rest.len().min(508));
        d[4 * 512..4 * 512 + 4].copy_from_slice(&6u32.to_be_bytes());
        d[4 * 512 + 4..4 * 512 + 4 + a.len()].copy_from_slice(a);
        d[5 * 512 + 4..5 * 512 + 4 + b.len()].copy_from_slice(b);
        let db = Db::open(&d).unwrap();
        assert_eq!(db.table_root("packages").unwrap(), Some(2));
        assert_eq!(db.table_root("Name").unwrap(), None);
        let rows = all_rows(&db, 2).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], (1, small));
        assert_eq!(rows[1], (2, blob.clone()));
        assert_eq!(record(&rows[1].1).unwrap()[1], Value::Blob(big));

        // The overflow chain pointing back at itself, and one running out of pages.
        let mut cyc = d.clone();
        cyc[4 * 512..4 * 512 + 4].copy_from_slice(&5u32.to_be_bytes());
        let e = all_rows(&Db::open(&cyc).unwrap(), 2).unwrap_err();
        assert!(format!("{e:#}").contains("reached twice"), "{e:#}");
        let mut short = d.clone();
        short[4 * 512..4 * 512 + 4].copy_from_slice(&0u32.to_be_bytes());
        let e = all_rows(&Db::open(&short).unwrap(), 2).unwrap_err();
        assert!(format!("{e:#}").contains("short"), "{e:#}");
        let mut far = d.clone();
        far[4 * 512..4 * 512 + 4].copy_from_slice(&99u32.to_be_bytes());
        assert!(all_rows(&Db::open(&far).unwrap(), 2).is_err());
        // An interior page naming itself as a child.
        let mut loopy = d.clone();
        loopy[p2 + 8..p2 + 12].copy_from_slice(&2u32.to_be_bytes());
        let e = all_rows(&Db::open(&loopy).unwrap(), 2).unwrap_err();
        assert!(format!("{e:#}").contains("page 2 reached twice"), "{e:#}");
        // Every cell pointer of a leaf naming the same cell.
        let mut dup = blank(2);
        let row = rec(&[(0, b""), (12 + 2 * 400, &[7; 400])]);
        leaf(&mut dup, 2, &[(1, &row, 0)]);
        dup[512 + 3..512 + 5].copy_from_slice(&40u16.to_be_bytes());
        let first = [dup[512 + 8], dup[512 + 9]];
        for i in 1..40 {
            dup[512 + 8 + 2 * i..512 + 10 + 2 * i].copy_from_slice(&first);
        }
        let e = all_rows(&Db::open(&dup).unwrap(), 2).unwrap_err();
        assert!(format!("{e:#}").contains("overlap"), "{e:#}");
        // A cell pointer outside the page, a page of another type.
        let mut bad = d.clone();
        bad[2 * 512 + 8..2 * 512 + 10].copy_from_slice(&600u16.to_be_bytes());
        assert!(all_rows(&Db::open(&bad).unwrap(), 2).is_err());
        let mut idx = d.clone();
        idx[2 * 512] = 0x0a;
        assert!(all_rows(&Db::open(&idx).unwrap(), 2).is_err());
    }

    #[test]
    fn bad_headers_are_errors() {
        let d = blank(1);
        assert!(Db::open(&d[..99]).is_err());
        let mut p = d.clone();
        p[16..18].copy_from_slice(&1000u16.to_be_bytes());
        assert!(Db::open(&p).is_err());
        let mut e = d.clone();
        e[59] = 2;
        assert!(Db::open(&e).is_err());
        let mut r = d.clone();
        r[19] = 3;
        assert!(Db::open(&r).is_err());
        // A header claiming more pages than the file has: bounded by the file.
        let mut big = d.clone();
        big[28..32].copy_from_slice(&1000u32.to_be_bytes());
        let db = Db::open(&big).unwrap();
        assert!(db.page(2).is_err());
        // A zeroed page 1 is not a table page.
        assert!(Db::open(&d).unwrap().table_root("Packages").is_err());
    }

    #[test]
    fn synthetic_tables_read_back() {
        let blobs: Vec<Vec<u8>> = [0usize, 10, 470, 471, 2000, 5000]
            .iter()
            .map(|&n| (0..n).map(|i| (i * 7) as u8).collect())
            .collect();
        let d = synthetic("Packages", &blobs);
        let db = Db::open(&d).unwrap();
        let rows = all_rows(&db, db.table_root("Packages").unwrap().unwrap()).unwrap();
        assert_eq!(rows.len(), blobs.len());
        for ((rowid, p), (i, b)) in rows.iter().zip(blobs.iter().enumerate()) {
            assert_eq!(*rowid, i as i64 + 1);
            assert_eq!(record(p).unwrap()[1], Value::Blob(b.clone()));
        }
        let empty = synthetic("Packages", &[]);
        let db = Db::open(&empty).unwrap();
        assert!(all_rows(&db, 2).unwrap().is_empty());
    }

    #[test]
    fn deep_trees_stop() {
        // Pages 2..=30 each an interior page whose only child is the next one.
        let mut d = blank(32);
        for n in 2..=31u32 {
            let b = (n as usize - 1) * 512;
            d[b] = 0x05;
            d[b + 8..b + 12].copy_from_slice(&(n + 1).to_be_bytes());
        }
        leaf(&mut d, 32, &[]);
        let e = all_rows(&Db::open(&d).unwrap(), 2).unwrap_err();
        assert!(format!("{e:#}").contains("deeper"), "{e:#}");
    }
}
