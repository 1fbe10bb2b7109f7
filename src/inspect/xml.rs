//! `revirt inspect --xml`: virt-inspector's XML document (guestfs-tools `inspector/inspector.c`,
//! schema `virt-inspector.rng`) built from an inspection, for the tools that consume it
//! (Forklift parses `virt-v2v-inspector` output, KubeVirt tooling picks templates by `<osinfo>`).
//!
//! ```text
//! <operatingsystems><operatingsystem>  root, name, arch, distro, product_name, product_variant,
//!   major/minor_version, package_format/management, windows_systemroot,
//!   windows_current_control_set, hostname, osinfo, mountpoints, filesystems, drive_mappings,
//!   applications
//! ```
//! Elements come in virt-inspector's order and with its rules: "unknown" values are left out,
//! mount points sort by length then name, filesystems by device, device names are libguestfs's
//! canonical ones (/dev/VG/LV for an LV). Only the elements of the schema shipped with Debian
//! 12's guestfs-tools (1.48) are written, so the document validates against that RNG as well as
//! the current upstream one (`build_id`, `windows_group_policy` and `class` came later).
use super::apps::{self, Application};
use super::{linux, windows, Guest};
use crate::types::{FstabEntry, Inspection, OsReport, VolumeReport};
use anyhow::Context;
use std::fmt::Write as _;

/// The XML document for every OS of `g`; application lists are read from the guest now.
pub fn inspector_xml(g: &Guest) -> anyhow::Result<String> {
    let mut w = Xml::default();
    w.out.push_str("<?xml version=\"1.0\"?>\n");
    w.open("operatingsystems", &[]);
    for os in &g.inspection.operating_systems {
        let apps =
            applications(g, os).with_context(|| format!("{}: applications", os.root.device))?;
        operating_system(&mut w, &g.inspection, os, apps.as_deref());
    }
    w.close("operatingsystems");
    Ok(w.out)
}

/// The OS's installed applications; None when its package database is one revirt does not
/// read (then the element is left out).
fn applications(g: &Guest, os: &OsReport) -> anyhow::Result<Option<Vec<Application>>> {
    if let Some(l) = &os.linux {
        let vfs = linux::guest_vfs(&g.volumes, l)?;
        return apps::linux_applications(&vfs, os.identity.package_format.as_deref());
    }
    if let Some(w) = &os.windows {
        let vfs = g.root_vfs(os)?;
        let sw = windows::read_hive(&vfs, &format!("{}/System32/config/SOFTWARE", w.system_root))?;
        return Ok(Some(apps::windows_applications(&sw)?));
    }
    Ok(Some(vec![]))
}

/// libguestfs's name for a volume: an LV as /dev/VG/LV, anything else as revirt names it.
fn canonical(ins: &Inspection, dev: &str) -> String {
    let Some(v) = ins.volumes.iter().find(|v| v.device == dev) else {
        return dev.to_string();
    };
    if dev.starts_with("/dev/mapper/") {
        if let Some(a) = v.aliases.iter().find(|a| {
            a.starts_with("/dev/") && !a.starts_with("/dev/mapper/") && a.matches('/').count() == 3
        }) {
            return a.clone();
        }
    }
    dev.to_string()
}

/// The (device, mount point) list libguestfs builds from fstab (`check_fstab_entry`): floppy,
/// CD-ROM and pseudo filesystems dropped, UUID=/LABEL= that resolve to nothing dropped, other
/// /dev names kept as written when they name nothing on these disks.
fn fstab_mounts(ins: &Inspection, os: &OsReport, fstab: &[FstabEntry]) -> Vec<(String, String)> {
    let mut out = vec![];
    for e in fstab {
        let spec = e.spec.as_str();
        let numbered = |p: &str| {
            spec.strip_prefix(p)
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        };
        if numbered("/dev/fd")
            || numbered("/dev/cd")
            || spec == "/dev/floppy"
            || spec == "/dev/cdrom"
            || spec.starts_with("/dev/iso9660/")
        {
            continue;
        }
        let mp = crate::fs::normalize(&e.mountpoint);
        let mp = if e.mountpoint.starts_with('/') {
            mp
        } else {
            e.mountpoint.clone()
        };
        let under = |d: &str| mp == d || mp.starts_with(&format!("{d}/"));
        if mp.starts_with("/dev/")
            || under("/dev")
            || mp.starts_with("/media/")
            || under("/proc")
            || under("/selinux")
            || under("/sys")
        {
            continue;
        }
        let by_tag = ["UUID=", "LABEL=", "PARTUUID=", "PARTLABEL="]
            .iter()
            .any(|p| spec.starts_with(p));
        let dev = if spec == "/dev/root" {
            Some(os.root.device.clone())
        } else if by_tag || spec.starts_with("/dev/") {
            match &e.resolves_to {
                Some(d) => Some(d.clone()),
                None if by_tag => None,
                None => Some(spec.to_string()),
            }
        } else {
            None // tmpfs, proc, nfs server:/path ...
        };
        if let Some(d) = dev {
            out.push((canonical(ins, &d), mp));
        }
    }
    out
}

fn operating_system(w: &mut Xml, ins: &Inspection, os: &OsReport, apps: Option<&[Application]>) {
    let id = &os.identity;
    w.open("operatingsystem", &[]);
    w.leaf("root", &canonical(ins, &os.root.device));
    w.leaf("name", &id.os_type);
    w.opt("arch", id.arch.as_deref());
    w.opt("distro", Some(id.distro.as_str()));
    w.opt("product_name", id.product_name.as_deref());
    w.opt("product_variant", id.product_variant.as_deref());
    w.leaf("major_version", &id.major_version.to_string());
    w.leaf("minor_version", &id.minor_version.to_string());
    w.opt("package_format", id.package_format.as_deref());
    w.opt("package_management", id.package_management.as_deref());
    if let Some(win) = &os.windows {
        w.leaf("windows_systemroot", &win.system_root);
        if let Some(cs) = win.current_control_set {
            w.leaf("windows_current_control_set", &format!("ControlSet{cs:03}"));
        }
    }
    w.opt("hostname", id.hostname.as_deref());
    w.opt("osinfo", Some(id.osinfo.as_str()));

    // Mount points and filesystems: fstab's (Linux), the root alone (Windows), or for a root
    // with no fstab what libguestfs mounted (CoreOS: / and its /usr; Flatcar: / alone).
    let root = canonical(ins, &os.root.device);
    let mut pairs = match &os.linux {
        Some(l) if !l.fstab.is_empty() => fstab_mounts(ins, os, &l.fstab),
        Some(l) => l
            .inspector_mounts
            .iter()
            .map(|(mp, d)| (canonical(ins, d), mp.clone()))
            .collect(),
        None => vec![(root.clone(), "/".to_string())],
    };
    let mut mps: Vec<&(String, String)> =
        pairs.iter().filter(|(_, m)| m.starts_with('/')).collect();
    mps.sort_by(|a, b| a.1.len().cmp(&b.1.len()).then_with(|| a.1.cmp(&b.1)));
    w.open("mountpoints", &[]);
    for (dev, mp) in mps {
        w.leaf_attr("mountpoint", &[("dev", dev)], mp);
    }
    w.close("mountpoints");
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    w.open("filesystems", &[]);
    for (dev, _) in &pairs {
        let v = ins
            .volumes
            .iter()
            .find(|v| canonical(ins, &v.device) == *dev);
        filesystem(w, dev, v);
    }
    w.close("filesystems");

    if let Some(win) = &os.windows {
        if !win.drive_letter_devices.is_empty() {
            let mut letters: Vec<(&String, &String)> = win.drive_letter_devices.iter().collect();
            letters.sort_by_key(|(l, _)| l.to_ascii_lowercase());
            w.open("drive_mappings", &[]);
            for (letter, dev) in letters {
                let name = letter.trim_end_matches(':');
                w.leaf_attr("drive_mapping", &[("name", name)], &canonical(ins, dev));
            }
            w.close("drive_mappings");
        }
    }
    if let Some(apps) = apps {
        if apps.is_empty() {
            w.empty("applications", &[]);
        } else {
            w.open("applications", &[]);
            for a in apps {
                application(w, a);
            }
            w.close("applications");
        }
    }
    w.close("operatingsystem");
}

fn filesystem(w: &mut Xml, dev: &str, v: Option<&VolumeReport>) {
    let fields: Vec<(&str, &str)> = v
        .map(|v| {
            [
                ("type", v.fstype.as_deref()),
                ("label", v.label.as_deref()),
                ("uuid", v.uuid.as_deref()),
            ]
            .into_iter()
            .filter_map(|(k, x)| x.filter(|x| !x.is_empty()).map(|x| (k, x)))
            .collect()
        })
        .unwrap_or_default();
    if fields.is_empty() {
        w.empty("filesystem", &[("dev", dev)]);
        return;
    }
    w.open("filesystem", &[("dev", dev)]);
    for (k, x) in fields {
        w.leaf(k, x);
    }
    w.close("filesystem");
}

fn application(w: &mut Xml, a: &Application) {
    w.open("application", &[]);
    w.leaf("name", &a.name);
    let epoch = (a.epoch != 0).then(|| a.epoch.to_string());
    for (k, v) in [
        ("display_name", a.display_name.as_str()),
        ("epoch", epoch.as_deref().unwrap_or("")),
        ("version", &a.version),
        ("release", &a.release),
        ("arch", &a.arch),
        ("install_path", &a.install_path),
        ("publisher", &a.publisher),
        ("url", &a.url),
        ("source_package", &a.source_package),
        ("summary", &a.summary),
        ("description", &a.description),
    ] {
        if !v.is_empty() {
            w.leaf(k, v);
        }
    }
    w.close("application");
}

/// An indenting writer that formats as libxml2's xmlTextWriter does with indentation on (two
/// spaces, empty elements self-closed).
#[derive(Default)]
struct Xml {
    out: String,
    depth: usize,
}

impl Xml {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }
    fn start(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.indent();
        let _ = write!(self.out, "<{name}");
        for (k, v) in attrs {
            let _ = write!(self.out, " {k}=\"{}\"", escape(v, true));
        }
    }
    fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start(name, attrs);
        self.out.push_str(">\n");
        self.depth += 1;
    }
    fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.indent();
        let _ = writeln!(self.out, "</{name}>");
    }
    fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start(name, attrs);
        self.out.push_str("/>\n");
    }
    fn leaf_attr(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.start(name, attrs);
        let _ = writeln!(self.out, ">{}</{name}>", escape(text, false));
    }
    fn leaf(&mut self, name: &str, text: &str) {
        self.leaf_attr(name, &[], text);
    }
    /// Left out when missing or "unknown" (virt-inspector's rule).
    fn opt(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text.filter(|t| !t.is_empty() && *t != "unknown") {
            self.leaf(name, t);
        }
    }
}

/// XML escaping as libxml2 writes text (&, <, >, CR) and attributes (also the quote, tab and
/// newline); control characters XML 1.0 cannot carry are dropped.
fn escape(s: &str, attr: bool) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\r' => o.push_str("&#13;"),
            '"' if attr => o.push_str("&quot;"),
            '\n' if attr => o.push_str("&#10;"),
            '\t' if attr => o.push_str("&#9;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_formats_like_libxml2() {
        let mut w = Xml::default();
        w.open("a", &[]);
        w.leaf_attr("b", &[("dev", "x\"y")], "1 < 2 & 3");
        w.empty("c", &[("dev", "/dev/sda1")]);
        w.opt("d", Some("unknown"));
        w.opt("e", None);
        w.close("a");
        assert_eq!(
            w.out,
            "<a>\n  <b dev=\"x&quot;y\">1 &lt; 2 &amp; 3</b>\n  <c dev=\"/dev/sda1\"/>\n</a>\n"
        );
    }
}
