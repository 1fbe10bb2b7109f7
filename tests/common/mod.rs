//! Helpers shared by the integration tests: tiny disk images built from host trees in
//! milliseconds with mkfs.ext4 -d, sfdisk and dd (no mounting, no appliance).
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (install: bash .ci/deps.sh)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd` with `input` on its stdin; returns its status and output (not checked).
pub fn feed(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (install: bash .ci/deps.sh)"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// [`run`], returning its standard output as text.
pub fn run_stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

/// The revirt binary built for this test run.
/// The folder the built fixtures live in (inputs of the repair tests).
pub fn fixture_cache() -> PathBuf {
    std::env::var_os("REVIRT_FIXTURE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fixtures"))
}

/// The revirt binary built for this test run. Overlays the tests create in temporary folders
/// name fixtures as backing files, so the fixture cache is trusted (and nothing else).
pub fn revirt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_revirt"));
    c.env("REVIRT_ALLOW_BACKING_DIR", trusted_dir());
    c
}

/// The fixture cache, created if missing so the trusted folder always exists.
pub fn trusted_dir() -> PathBuf {
    let d = fixture_cache();
    std::fs::create_dir_all(&d).ok();
    d
}

/// Runs revirt with args; returns (exit code, stdout, stderr).
pub fn revirt_out(args: &[&str]) -> (i32, String, String) {
    let o = revirt().args(args).output().expect("running revirt");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Writes `files` (path -> contents) and `links` (path -> target) under `root`.
pub fn tree(root: &Path, files: &[(&str, &str)], links: &[(&str, &str)]) {
    for (p, c) in files {
        let f = root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, c).unwrap();
    }
    for (p, t) in links {
        let f = root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(t, f).unwrap();
    }
}

/// An ext4 filesystem image of `mib` MiB populated from `dir`.
pub fn mkext4(dir: &Path, out: &Path, mib: u64, uuid: &str, label: &str) {
    let f = std::fs::File::create(out).unwrap();
    f.set_len(mib << 20).unwrap();
    run(Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-U",
            uuid,
            "-L",
            label,
            "-E",
            "root_owner=0:0",
            "-d",
        ])
        .arg(dir)
        .arg(out));
}

/// A disk image with a partition table ("gpt" or "dos") holding `parts` (fs image, sfdisk type)
/// in order, each partition sized to its image. Returns partition start offsets.
pub fn disk(out: &Path, label: &str, parts: &[(&Path, &str)]) -> Vec<u64> {
    let mut start = 1u64 << 20;
    let mut script = format!("label: {label}\n");
    let mut starts = vec![];
    for (img, ty) in parts {
        let len = std::fs::metadata(img).unwrap().len();
        script.push_str(&format!(
            "start={}, size={}, type={ty}\n",
            start / 512,
            len / 512
        ));
        starts.push(start);
        start += len;
    }
    let f = std::fs::File::create(out).unwrap();
    f.set_len(start + (1 << 20)).unwrap();
    drop(f);
    let o = feed(Command::new("sfdisk").arg("-q").arg(out), script.as_bytes());
    assert!(o.status.success(), "sfdisk failed for {script}: {o:?}");
    for ((img, _), s) in parts.iter().zip(&starts) {
        run(Command::new("dd")
            .arg(format!("if={}", img.display()))
            .arg(format!("of={}", out.display()))
            .args(["bs=1M", "conv=notrunc,sparse", "status=none"])
            .arg(format!("seek={}", s >> 20)));
    }
    starts
}

pub const DEBIAN12_OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";

/// A minimal Debian-like root tree plus its ext4 image and a GPT disk with /boot and /.
pub struct MiniGuest {
    pub dir: tempfile::TempDir,
    pub disk: PathBuf,
}

pub fn mini_linux(fstab: &str, extra_files: &[(&str, &str)], links: &[(&str, &str)]) -> MiniGuest {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut files: Vec<(&str, &str)> = vec![
        ("/etc/os-release", DEBIAN12_OS_RELEASE),
        ("/etc/hostname", "mini\n"),
        ("/etc/fstab", fstab),
        ("/usr/bin/.keep", ""),
    ];
    files.extend_from_slice(extra_files);
    tree(&root, &files, links);
    let img = dir.path().join("root.ext4");
    mkext4(
        &root,
        &img,
        16,
        "6f8e4f5c-9c1e-4c42-8f0a-8f6d3c2b1a00",
        "rootfs",
    );
    let disk_path = dir.path().join("disk.raw");
    disk(
        &disk_path,
        "gpt",
        &[(&img, "0FC63DAF-8483-4772-8E79-3D69D8477DE4")],
    );
    MiniGuest {
        dir,
        disk: disk_path,
    }
}

/// Builds (or reuses) the skeleton guest `name` and returns its image.
pub fn skeleton(name: &str) -> PathBuf {
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "run", "--quiet", "-p", "xtask", "--", "fixtures", "--set", "skeleton", "--only", name,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running xtask");
    assert!(st.success(), "building skeleton {name}");
    fixture_cache().join(format!("skeletons/{name}.qcow2"))
}

/// guestfish, run under TCG when KVM is broken, as revirt's own appliance is.
pub fn guestfish() -> Command {
    let mut gf = Command::new("guestfish");
    if !revirt::guestfs::kvm_works() {
        gf.env("LIBGUESTFS_BACKEND", "direct")
            .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg");
    }
    gf
}

/// The volume named `dev` in `revirt inspect --json` output.
pub fn volume<'a>(ins: &'a serde_json::Value, dev: &str) -> &'a serde_json::Value {
    ins["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["device"] == dev)
        .unwrap_or_else(|| panic!("no volume {dev}: {ins:#}"))
}
