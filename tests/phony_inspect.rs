//! Phony guests (fixtures/images/phony: files laid out as each distro has them, like libguestfs's
//! test-data/phony-guests) inspected by `revirt inspect --json`: the root is found from the
//! release files alone, and the identity is what virt-inspector (Debian's guestfs-tools 1.48)
//! reports on the same images — distro spelling, product name, version, arch, hostname,
//! package format and manager, libosinfo id. `plan` refuses, by name, the distros revirt does
//! not repair.
mod golden;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Runs `cargo xtask fixtures --set phony` once (seconds; a cache hit costs well under one) and
/// returns the folder holding `<name>.qcow2`.
fn phony_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["xtask", "fixtures", "--set", "phony"])
            .current_dir(manifest)
            .output()
            .expect("running cargo xtask fixtures --set phony");
        assert!(
            out.status.success(),
            "cargo xtask fixtures --set phony failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::env::var_os("REVIRT_FIXTURE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("target/fixtures"))
            .join("phony")
    })
}

fn image(name: &str) -> PathBuf {
    phony_dir().join(format!("{name}.qcow2"))
}

/// What virt-inspector says about a guest (and what revirt's own fields must say).
struct Expect {
    name: &'static str,
    root: &'static str,
    distro: &'static str,
    product_name: Option<&'static str>,
    version: (u64, u64),
    arch: &'static str,
    hostname: &'static str,
    package_format: Option<&'static str>,
    package_management: Option<&'static str>,
    osinfo: &'static str,
    /// revirt's `linux.distro` / `linux.version` / `linux.family` (os-release spelling).
    revirt: Option<(&'static str, &'static str, &'static str)>,
}

const GUESTS: &[Expect] = &[
    Expect {
        name: "debian5",
        root: "/dev/mapper/debian-root",
        distro: "debian",
        product_name: Some("5.0.10"),
        version: (5, 0),
        arch: "x86_64",
        hostname: "lenny.example.org",
        package_format: Some("deb"),
        package_management: Some("apt"),
        osinfo: "debian5",
        revirt: Some(("debian", "5.0.10", "debian")),
    },
    Expect {
        name: "ubuntu1010",
        root: "/dev/sda2",
        distro: "ubuntu",
        product_name: Some("Ubuntu 10.10"),
        version: (10, 10),
        arch: "x86_64",
        hostname: "maverick-server",
        package_format: Some("deb"),
        package_management: Some("apt"),
        osinfo: "ubuntu10.10",
        revirt: Some(("ubuntu", "10.10", "debian")),
    },
    Expect {
        name: "archlinux",
        root: "/dev/sda1",
        distro: "archlinux",
        product_name: None,
        version: (0, 0),
        arch: "x86_64",
        hostname: "archlinux.test",
        package_format: Some("pacman"),
        package_management: Some("pacman"),
        osinfo: "archlinux",
        revirt: Some(("arch", "", "other")),
    },
    Expect {
        name: "coreos",
        root: "/dev/sda5",
        distro: "coreos",
        product_name: Some("Container Linux by CoreOS 2512.3.0 (Oklo)"),
        version: (2512, 3),
        arch: "x86_64",
        hostname: "core-01",
        package_format: None,
        package_management: None,
        osinfo: "coreos2512.3",
        revirt: Some(("coreos", "2512.3.0", "other")),
    },
    Expect {
        name: "fedora14",
        root: "/dev/mapper/VolGroup-lv_root",
        distro: "fedora",
        product_name: Some("Fedora release 14 (Laughlin)"),
        version: (14, 0),
        arch: "x86_64",
        hostname: "fedora14.example.com",
        package_format: Some("rpm"),
        package_management: Some("yum"),
        osinfo: "fedora14",
        revirt: Some(("fedora", "14", "rhel")),
    },
    Expect {
        name: "rhel6",
        root: "/dev/mapper/vg_rhel6-lv_root",
        distro: "rhel",
        product_name: Some("Red Hat Enterprise Linux Server release 6.10 (Santiago)"),
        version: (6, 10),
        arch: "x86_64",
        hostname: "rhel6.example.com",
        package_format: Some("rpm"),
        package_management: Some("yum"),
        osinfo: "rhel6.10",
        revirt: Some(("rhel", "6.10", "rhel")),
    },
    Expect {
        name: "fedora39",
        root: "/dev/mapper/fedora-root",
        distro: "fedora",
        product_name: Some("Fedora Linux 39 (Server Edition)"),
        version: (39, 0),
        arch: "x86_64",
        hostname: "fedora39.example.com",
        package_format: Some("rpm"),
        package_management: Some("yum"),
        osinfo: "fedora39",
        revirt: Some(("fedora", "39", "rhel")),
    },
    Expect {
        name: "fedora-luks",
        root: "/dev/mapper/fedora-root",
        distro: "fedora",
        product_name: Some("Fedora Linux 39 (Server Edition)"),
        version: (39, 0),
        arch: "x86_64",
        hostname: "fedora-luks.example.com",
        package_format: Some("rpm"),
        package_management: Some("yum"),
        osinfo: "fedora39",
        revirt: Some(("fedora", "39", "rhel")),
    },
    Expect {
        name: "fedora-luks-on-lvm",
        root: "/dev/mapper/luks-839f64c0-3b7d-40c0-abfd-8f4f72d2191d",
        distro: "fedora",
        product_name: Some("Fedora Linux 39 (Server Edition)"),
        version: (39, 0),
        arch: "x86_64",
        hostname: "fedora-luks-on-lvm.example.com",
        package_format: Some("rpm"),
        package_management: Some("yum"),
        osinfo: "fedora39",
        revirt: Some(("fedora", "39", "rhel")),
    },
    Expect {
        name: "sles11",
        root: "/dev/sda2",
        distro: "sles",
        product_name: Some("SUSE Linux Enterprise Server 11 (x86_64)"),
        version: (11, 4),
        arch: "x86_64",
        hostname: "sles11sp4.example.com",
        package_format: Some("rpm"),
        package_management: Some("zypper"),
        osinfo: "sles11sp4",
        revirt: Some(("sles", "11.4", "suse")),
    },
    Expect {
        name: "alpine",
        root: "/dev/sda1",
        distro: "alpinelinux",
        product_name: Some("3.19.1"),
        version: (3, 19),
        arch: "x86_64",
        hostname: "alpine319",
        package_format: Some("apk"),
        package_management: Some("apk"),
        osinfo: "alpinelinux3.19",
        revirt: Some(("alpine", "3.19.1", "other")),
    },
    Expect {
        name: "win7",
        root: "/dev/sda1",
        distro: "windows",
        product_name: Some("Windows 7 Professional"),
        version: (6, 1),
        arch: "i386",
        hostname: "win7-phony",
        package_format: None,
        package_management: None,
        osinfo: "win7",
        revirt: None,
    },
];

/// Phony guests whose identity has a test of its own (virt-inspector's and revirt's facts differ,
/// so no one `Expect` holds both); their XML is checked with the others'.
const OWN_IDENTITY_TEST: [&str; 1] = ["flatcar"];

/// Keys the encrypted phony guests are opened with (as virt-inspector was given them).
const KEYS: &[(&str, &str)] = &[
    ("fedora-luks", "/dev/sda2:key:FEDORA"),
    ("fedora-luks-on-lvm", "/dev/fedora/root:key:FEDORA-Root"),
];

/// revirt's arguments for `cmd` on guest `name`: its key first (a global option), then `rest`.
fn args_for(name: &str, rest: &[&std::ffi::OsStr]) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = vec![];
    for (_, k) in KEYS.iter().filter(|(n, _)| *n == name) {
        a.push("--key".into());
        a.push(k.into());
    }
    a.extend(rest.iter().map(|r| r.to_os_string()));
    a
}

fn revirt_for(name: &str, rest: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let a = args_for(name, rest);
    let refs: Vec<&std::ffi::OsStr> = a.iter().map(|x| x.as_os_str()).collect();
    golden::revirt(&refs)
}

fn expect(name: &str) -> &'static Expect {
    GUESTS
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no expectation for {name}"))
}

fn inspect(name: &str) -> Value {
    let img = image(name);
    let (code, out, err) = revirt_for(
        name,
        &["inspect".as_ref(), "--json".as_ref(), img.as_os_str()],
    );
    assert_eq!(code, 0, "{name}: revirt inspect exit {code}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{name}: bad JSON: {e}"))
}

/// Every mismatch of one guest at once.
fn check(name: &str) {
    let e = expect(name);
    let ins = inspect(name);
    let mut errs: Vec<String> = vec![];
    let mut eq = |what: &str, got: Value, want: Value| {
        if got != want {
            errs.push(format!("{what}: got {got}, want {want}"));
        }
    };
    eq("warnings", ins["warnings"].clone(), serde_json::json!([]));
    eq(
        "appliance_used",
        ins["appliance_used"].clone(),
        Value::Bool(false),
    );
    let oses = ins["operating_systems"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    eq("OS count", oses.len().into(), 1.into());
    let Some(os) = oses.first() else {
        panic!("{name}: no operating system found: {ins}");
    };
    let id = &os["identity"];
    let kind = if e.distro == "windows" {
        "windows"
    } else {
        "linux"
    };
    eq("kind", os["kind"].clone(), kind.into());
    eq("root", os["root"]["device"].clone(), e.root.into());
    eq("os_type", id["os_type"].clone(), kind.into());
    eq("distro", id["distro"].clone(), e.distro.into());
    eq(
        "product_name",
        id["product_name"].clone(),
        e.product_name.into(),
    );
    eq(
        "major_version",
        id["major_version"].clone(),
        e.version.0.into(),
    );
    eq(
        "minor_version",
        id["minor_version"].clone(),
        e.version.1.into(),
    );
    eq("arch", id["arch"].clone(), e.arch.into());
    eq("hostname", id["hostname"].clone(), e.hostname.into());
    eq(
        "package_format",
        id["package_format"].clone(),
        e.package_format.into(),
    );
    eq(
        "package_management",
        id["package_management"].clone(),
        e.package_management.into(),
    );
    eq("osinfo", id["osinfo"].clone(), e.osinfo.into());
    if let Some((distro, version, family)) = e.revirt {
        let l = &os["linux"];
        eq("linux.distro", l["distro"].clone(), distro.into());
        eq("linux.version", l["version"].clone(), version.into());
        eq("linux.family", l["family"].clone(), family.into());
        eq("linux.arch", l["arch"].clone(), e.arch.into());
        eq("linux.hostname", l["hostname"].clone(), e.hostname.into());
    } else {
        let w = &os["windows"];
        eq("windows.arch", w["arch"].clone(), e.arch.into());
        eq("windows.hostname", w["hostname"].clone(), e.hostname.into());
        eq("windows.build", w["build"].clone(), "7601".into());
        eq(
            "product_variant",
            id["product_variant"].clone(),
            "Client".into(),
        );
        eq(
            "drive C:",
            w["drive_letter_devices"]["C:"].clone(),
            "/dev/sda1".into(),
        );
    }
    assert!(
        errs.is_empty(),
        "{name}: {} fact(s) differ from virt-inspector's:\n  {}",
        errs.len(),
        errs.join("\n  ")
    );
}

#[test]
fn debian5_from_debian_version_alone() {
    check("debian5");
    // /usr, /var and /home are LVs the fstab mounts by /dev/mapper name.
    let ins = inspect("debian5");
    let mounts = &ins["operating_systems"][0]["linux"]["mounts"];
    assert_eq!(mounts["/usr"], "/dev/mapper/debian-usr", "{mounts}");
    assert_eq!(mounts["/boot"], "/dev/sda1", "{mounts}");
}

#[test]
fn ubuntu1010_from_lsb_release() {
    check("ubuntu1010");
}

#[test]
fn archlinux_from_an_empty_arch_release() {
    check("archlinux");
}

#[test]
fn coreos_with_usr_on_its_own_partition() {
    check("coreos");
    let ins = inspect("coreos");
    let mounts = &ins["operating_systems"][0]["linux"]["mounts"];
    assert_eq!(
        mounts["/usr"], "/dev/sda3",
        "USR-A mounted at /usr: {mounts}"
    );
}

/// Flatcar 3760.2.0: libguestfs 1.48 takes its root for a plain Linux root (/etc/hosts and the
/// /bin link come before its CoreOS test), reads it alone, where os-release is a link into the
/// unmounted /usr, and does not take USR-A for a CoreOS /usr (/usr/share/coreos is a link to
/// flatcar). virt-inspector names no distro, version or arch, and so does `identity`; revirt's
/// own facts come from the USR-A it finds and mounts.
#[test]
fn flatcar_identity_as_libguestfs_sees_it_and_facts_from_usr() {
    let ins = inspect("flatcar");
    assert_eq!(ins["warnings"], serde_json::json!([]), "{ins}");
    let oses = ins["operating_systems"]
        .as_array()
        .expect("operating_systems");
    assert_eq!(oses.len(), 1, "{ins}");
    let os = &oses[0];
    assert_eq!(
        os["root"]["device"], "/dev/sda7",
        "ROOT is partition 7: {os}"
    );
    let id = &os["identity"];
    let want_id = serde_json::json!({
        "os_type": "linux", "distro": "unknown", "product_name": null, "product_variant": null,
        "major_version": 0, "minor_version": 0, "arch": null, "hostname": "flatcar-01",
        "build_id": null, "package_format": null, "package_management": null,
        "osinfo": "unknown",
    });
    assert_eq!(*id, want_id, "virt-inspector's identity");
    let l = &os["linux"];
    for (field, want) in [
        ("distro", "flatcar"),
        ("version", "3760.2.0"),
        (
            "product_name",
            "Flatcar Container Linux by Kinvolk 3760.2.0 (Oklo)",
        ),
        ("family", "other"),
        ("arch", "x86_64"),
        ("hostname", "flatcar-01"),
    ] {
        assert_eq!(l[field], want, "linux.{field}");
    }
    assert_eq!(
        l["mounts"],
        serde_json::json!({"/": "/dev/sda7", "/usr": "/dev/sda3"}),
        "USR-A (ext2) mounted at /usr, OEM (sda5) left alone"
    );
}

#[test]
fn fedora14_is_fedora_not_redhat_based() {
    check("fedora14");
}

#[test]
fn fedora39_from_os_release_in_usr_lib() {
    check("fedora39");
}

/// The rpm database in SQLite (at /usr/lib/sysimage/rpm, /var/lib/rpm a link to it), made by rpm
/// itself, lists every package in the XML; the header spilling onto overflow pages is read whole.
#[test]
fn fedora39_applications_from_rpmdb_sqlite() {
    let img = image("fedora39");
    let (code, out, err) = golden::revirt(&["inspect".as_ref(), "--xml".as_ref(), img.as_os_str()]);
    assert_eq!(code, 0, "revirt inspect --xml exit {code}: {err}");
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("<name>")?.strip_suffix("</name>"))
        .filter(|n| *n != "linux")
        .collect();
    assert_eq!(
        names,
        ["bash", "fedora-release", "filesystem", "shadow-utils"],
        "{out}"
    );
    assert!(out.contains("<epoch>2</epoch>"), "{out}");
}

/// LVM on LUKS2 (Argon2id, made by cryptsetup): opened with the key as virt-inspector was,
/// the VG inside assembled; without it, the locked volume is named (exit 4).
#[test]
fn fedora_lvm_on_luks_opens_with_its_key() {
    check("fedora-luks");
    let img = image("fedora-luks");
    let (code, _, err) = golden::revirt(&["inspect".as_ref(), img.as_os_str()]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("/dev/sda2 is LUKS-encrypted and stays locked"),
        "{err}"
    );
}

/// LUKS on LVM: the root LV is a LUKS2 volume, opened (by the LV's /dev/VG/LV name, as
/// virt-inspector was given it) as /dev/mapper/luks-UUID, the name its fstab uses.
#[test]
fn fedora_luks_on_lvm_opens_the_root_lv() {
    check("fedora-luks-on-lvm");
}

#[test]
fn rhel6_from_redhat_release() {
    check("rhel6");
}

#[test]
fn sles11_from_suse_release() {
    check("sles11");
}

#[test]
fn alpine_from_alpine_release() {
    check("alpine");
}

#[test]
fn windows7_arch_from_cmd_exe_and_hostname_from_the_registry() {
    check("win7");
}

/// Found, but not a distro the repair knows: plan refuses by name (exit 6) and writes nothing.
#[test]
fn plan_refuses_distros_revirt_does_not_repair() {
    for (name, distro) in [
        ("archlinux", "arch"),
        ("alpine", "alpine"),
        ("coreos", "coreos"),
        ("flatcar", "flatcar"),
    ] {
        let img = image(name);
        let (code, out, err) = golden::revirt(&["plan".as_ref(), img.as_os_str()]);
        assert_eq!(code, 6, "{name}: plan exit {code}: {out}{err}");
        let want = format!("distro {distro} (");
        assert!(
            out.contains(&want) && out.contains("is not one revirt repairs"),
            "{name}: {out}{err}"
        );
    }
    // A supported family is not refused for its distro (only for what the phony guest lacks).
    let img = image("rhel6");
    let (code, out, _) = golden::revirt(&["plan".as_ref(), img.as_os_str()]);
    assert_eq!(code, 6, "{out}");
    assert!(!out.contains("is not one revirt repairs"), "{out}");
    assert!(out.contains("no kernel found"), "{out}");
}

/// virt-inspector.rng as Debian's guestfs-tools ships it (gzipped, under /usr/share/doc).
fn rng() -> PathBuf {
    static RNG: OnceLock<PathBuf> = OnceLock::new();
    RNG.get_or_init(|| {
        let gz = Path::new("/usr/share/doc/guestfs-tools/virt-inspector.rng.gz");
        let data = std::fs::read(gz).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: install guestfs-tools (and keep /usr/share/doc: a dpkg path-exclude \
                 drops it in slim images)",
                gz.display()
            )
        });
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&data[..]), &mut text)
            .expect("gunzip virt-inspector.rng.gz");
        let p = std::env::temp_dir().join(format!("virt-inspector-{}.rng", std::process::id()));
        std::fs::write(&p, text).expect("writing the RNG");
        p
    })
    .clone()
}

/// `revirt inspect --xml` is, byte for byte, what virt-inspector printed for the same image
/// (tests/golden/virt-inspector/NAME.xml, see its README), and valid against the schema.
fn check_xml(name: &str) {
    let img = image(name);
    let (code, out, err) = revirt_for(
        name,
        &["inspect".as_ref(), "--xml".as_ref(), img.as_os_str()],
    );
    assert_eq!(code, 0, "{name}: revirt inspect --xml exit {code}: {err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let xml = dir.path().join(format!("{name}.xml"));
    std::fs::write(&xml, &out).expect("writing the XML");
    let v = Command::new("xmllint")
        .args(["--noout", "--relaxng"])
        .arg(rng())
        .arg(&xml)
        .output()
        .expect("running xmllint (libxml2-utils)");
    assert!(
        v.status.success(),
        "{name}: not valid against virt-inspector.rng:\n{}{out}",
        String::from_utf8_lossy(&v.stderr)
    );
    let want_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/virt-inspector")
        .join(format!("{name}.xml"));
    let want = std::fs::read_to_string(&want_path)
        .unwrap_or_else(|e| panic!("{}: {e}", want_path.display()));
    if want != out {
        let diff = similar::TextDiff::from_lines(&want, &out);
        panic!(
            "{name}: revirt's XML differs from virt-inspector's ({}):\n{}",
            want_path.display(),
            diff.unified_diff().header("virt-inspector", "revirt")
        );
    }
}

#[test]
fn xml_is_virt_inspectors() {
    let mut failed = vec![];
    for name in GUESTS.iter().map(|e| e.name).chain(OWN_IDENTITY_TEST) {
        if let Err(p) = std::panic::catch_unwind(|| check_xml(name)) {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(msg);
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// The native writer's path through stacked LUKS and LVM (libguestfs's two encrypted test
/// layouts: an LV inside LUKS, LUKS inside an LV): the root volume revirt opened has a layout
/// down to the disk, and bytes written through it (not whole sectors, across sector edges) into
/// a qcow2 overlay read back the same after a fresh inspection of the overlay with the key. The
/// input stays byte-identical.
#[test]
fn native_writes_reach_the_root_through_lvm_on_luks_and_luks_on_lvm() {
    use revirt::image::{Extent, Via};
    fn crypt_depth(l: &[Extent]) -> usize {
        l.iter()
            .map(|e| match e.via.as_deref() {
                Some(Via::Crypt { inner, .. }) => 1 + crypt_depth(inner),
                Some(Via::Mirror { mirrors, .. }) => mirrors.iter().map(|m| crypt_depth(m)).sum(),
                None => 0,
            })
            .max()
            .unwrap_or(0)
    }
    for name in ["fedora-luks", "fedora-luks-on-lvm"] {
        let img = image(name);
        let spec = std::fs::read_to_string(phony_dir().join(format!("{name}.keys"))).unwrap();
        let keys: Vec<_> = spec
            .lines()
            .map(|k| revirt::luks::keys::Key::parse(k, false).unwrap())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let overlay = dir.path().join("out.qcow2");
        let st = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&img)
            .arg(&overlay)
            .status()
            .unwrap();
        assert!(st.success());
        let policy = revirt::image::OpenPolicy::default()
            .also_folders_of(std::slice::from_ref(&img))
            .with_keys(keys);
        let root_of = |p: &Path| {
            let g = revirt::inspect::inspect_with(&[p.to_path_buf()], &policy).unwrap();
            let dev = g.inspection.operating_systems[0].root.device.clone();
            let v = g.volumes.iter().find(|v| v.report.device == dev).unwrap();
            (g.images()[0].clone(), dev, v.raw.clone().unwrap())
        };
        let before = std::fs::read(&img).unwrap();
        let (info, dev, raw) = root_of(&img);
        let layout = raw
            .layout()
            .unwrap_or_else(|| panic!("{name}: {dev} has no layout"));
        assert_eq!(crypt_depth(&layout), 1, "{name}: {dev}: {layout:?}");
        let (off, len) = (raw.size() - (64 << 10) - 100, 5000usize);
        let data: Vec<u8> = (0..len).map(|k| (k * 11 + 3) as u8).collect();
        {
            let disks = std::rc::Rc::new(vec![revirt::native::nbd::NbdDisk::open(
                &info,
                Some(&overlay),
            )
            .unwrap()]);
            let vol = revirt::native::client::MappedVolume::new(
                &dev,
                raw.size(),
                &layout,
                std::slice::from_ref(&info.path),
                disks,
            )
            .unwrap();
            vol.write_at(&data, off).unwrap();
            vol.flush().unwrap();
        }
        assert!(
            std::fs::read(&img).unwrap() == before,
            "{name}: the input changed"
        );
        let (_, dev2, raw2) = root_of(&overlay);
        assert_eq!(dev2, dev);
        let got = revirt::image::read_vec(raw2.as_ref(), off, len).unwrap();
        assert!(got == data, "{name}: {dev} reads back other bytes");
    }
}
