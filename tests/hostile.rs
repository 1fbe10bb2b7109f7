//! Hostile and broken images (issue #8): every case is an image a tenant could hand revirt. Each
//! runs the real binary under a hard address-space limit (RLIMIT_AS 1 GiB) and a hang timeout
//! (60 s), asserts the documented exit code, that nothing panicked, and that the input is
//! byte-identical afterwards. Figures (time, peak RSS) are printed, never asserted: `cargo xtask
//! bench` reports them too.
#[path = "common/boot.rs"]
mod boot;
mod common;
use boot::require_tools;
use common::*;
use sha2::{Digest, Sha256};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const UNREADABLE: i32 = 3;
const NO_OS: i32 = 4;
const LAYOUT: i32 = 5;
const REFUSED: i32 = 6;
const BAD_INPUT: i32 = 2;
const LOCKED: i32 = 8;

const MEM_LIMIT: u64 = 1 << 30;
const HANG: Duration = Duration::from_secs(60);

struct Outcome {
    code: i32,
    out: String,
    err: String,
}

/// Runs revirt (trusting no backing folder) under the memory cap and the hang timeout.
fn bounded(case: &str, args: &[&str]) -> Outcome {
    bounded_env(case, args, &[])
}

/// [`bounded`] with extra environment variables.
fn bounded_env(case: &str, args: &[&str], env: &[(&str, &Path)]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_revirt"));
    cmd.args(args)
        .envs(env.iter().copied())
        .env_remove("REVIRT_ALLOW_BACKING_DIR")
        .env("LIBGUESTFS_BACKEND", "direct")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: MEM_LIMIT,
                rlim_max: MEM_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let t = Instant::now();
    // Reaped by wait4 below (std's wait has no rusage), hence the lint allowance.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("running revirt");
    let pid = child.id() as libc::pid_t;
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    loop {
        // SAFETY: wait4 on our own child with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        if t.elapsed() > HANG {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            panic!("{case}: revirt {args:?} still running after {HANG:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = t.elapsed().as_secs_f64();
    let err = std::fs::read_to_string(&e).unwrap_or_default();
    let out = std::fs::read_to_string(&o).unwrap_or_default();
    assert!(
        libc::WIFEXITED(status),
        "{case}: revirt {args:?} died by signal {} (stack overflow or abort?)\n{err}",
        libc::WTERMSIG(status)
    );
    assert!(!err.contains("panicked"), "{case}: revirt panicked: {err}");
    assert!(
        !err.contains("memory allocation") && !err.contains("capacity overflow"),
        "{case}: ran out of memory: {err}"
    );
    println!(
        "hostile {case:<28} {:<8} exit {} in {secs:.2} s, peak RSS {} MB",
        args[0],
        libc::WEXITSTATUS(status),
        usage.ru_maxrss / 1024
    );
    Outcome {
        code: libc::WEXITSTATUS(status),
        out,
        err,
    }
}

/// Streamed, so the test process stays small (children inherit its peak RSS figure).
fn sha(p: &Path) -> String {
    let mut h = Sha256::new();
    std::io::copy(&mut std::fs::File::open(p).unwrap(), &mut h).unwrap();
    hex::encode(h.finalize())
}

/// Runs `args` (with `img` appended) and checks the exit code and that `img` is unchanged.
fn expect(case: &str, img: &Path, args: &[&str], code: i32) -> Outcome {
    expect_env(case, img, args, code, &[])
}

/// [`expect`] with extra environment variables.
fn expect_env(case: &str, img: &Path, args: &[&str], code: i32, env: &[(&str, &Path)]) -> Outcome {
    let before = sha(img);
    let mut a: Vec<&str> = args.to_vec();
    a.push(img.to_str().unwrap());
    let o = bounded_env(case, &a, env);
    assert_eq!(
        o.code, code,
        "{case}: revirt {a:?}\nstdout: {}\nstderr: {}",
        o.out, o.err
    );
    assert_eq!(sha(img), before, "{case}: revirt {a:?} changed its input");
    o
}

/// A Debian-like root with a kernel (so a plan gets past "no kernel"), built by `extra`, as a GPT
/// disk. Returns the temp dir (kept alive) and the disk path.
fn guest(
    name: &str,
    files: &[(&str, &str)],
    extra: impl FnOnce(&Path),
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut all: Vec<(&str, &str)> = vec![
        ("/etc/os-release", DEBIAN12_OS_RELEASE),
        ("/etc/hostname", "hostile\n"),
        ("/usr/bin/.keep", ""),
        ("/boot/vmlinuz-6.1.0-13-amd64", "kernel"),
        ("/boot/initrd.img-6.1.0-13-amd64", "initrd"),
    ];
    if !files.iter().any(|(p, _)| *p == "/etc/fstab") {
        all.push((
            "/etc/fstab",
            "UUID=6f8e4f5c-9c1e-4c42-8f0a-8f6d3c2b1a00 / ext4 defaults 0 1\n",
        ));
    }
    all.extend_from_slice(files);
    tree(&root, &all, &[]);
    extra(&root);
    let img = dir.path().join("root.ext4");
    mkext4(
        &root,
        &img,
        256,
        "6f8e4f5c-9c1e-4c42-8f0a-8f6d3c2b1a00",
        "rootfs",
    );
    let d = dir.path().join(format!("{name}.raw"));
    disk(&d, "gpt", &[(&img, "0FC63DAF-8483-4772-8E79-3D69D8477DE4")]);
    (dir, d)
}

fn sparse(path: &Path, len: u64, tail: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(path).unwrap();
    f.seek(SeekFrom::Start(len - tail.len() as u64)).unwrap();
    f.write_all(tail).unwrap();
}

fn qemu_img(args: &[&str], cwd: &Path) {
    run(Command::new("qemu-img").args(args).current_dir(cwd));
}

/// The victim: another tenant's disk in a folder next to the attacker's.
fn victim(root: &Path) -> PathBuf {
    let (_d, v) = guest("victim", &[("/etc/hostname", "victim-secret\n")], |_| {});
    let dir = root.join("victim");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("victim.raw");
    std::fs::copy(&v, &p).unwrap();
    p
}

#[test]
fn backing_files_outside_the_image_folder_are_refused() {
    require_tools(&["qemu-img", "mkfs.ext4", "sfdisk"]);
    let t = tempfile::tempdir().unwrap();
    let v = victim(t.path());
    let a = t.path().join("attacker");
    std::fs::create_dir_all(&a).unwrap();
    std::os::unix::fs::symlink(&v, a.join("link.raw")).unwrap();
    let fifo = a.join("fifo");
    assert_eq!(
        unsafe {
            libc::mkfifo(
                std::ffi::CString::new(fifo.to_str().unwrap())
                    .unwrap()
                    .as_ptr(),
                0o600,
            )
        },
        0
    );
    let size = std::fs::metadata(&v).unwrap().len().to_string();
    let cases = [
        ("absolute", v.to_str().unwrap().to_string()),
        ("dotdot", "../victim/victim.raw".to_string()),
        ("symlink", "link.raw".to_string()),
        ("device", "/dev/zero".to_string()),
        ("fifo", "fifo".to_string()),
        ("host-file", "/etc/passwd".to_string()),
    ];
    for (case, name) in &cases {
        let top = a.join(format!("{case}.qcow2"));
        qemu_img(
            &[
                "create",
                "-q",
                "-u",
                "-f",
                "qcow2",
                "-F",
                "raw",
                "-b",
                name,
                top.to_str().unwrap(),
                &size,
            ],
            &a,
        );
        for cmd in ["inspect", "plan", "verify"] {
            let o = expect(case, &top, &[cmd], UNREADABLE);
            assert!(o.err.contains("refused"), "{case} {cmd}: {}", o.err);
            assert!(!o.out.contains("victim-secret") && !o.err.contains("victim-secret"));
        }
        let out = a.join(format!("{case}.out.qcow2"));
        let o = bounded(
            case,
            &["repair", top.to_str().unwrap(), "-o", out.to_str().unwrap()],
        );
        assert_eq!(o.code, UNREADABLE, "{case} repair: {}", o.err);
        assert!(
            !out.exists(),
            "{case}: repair created an output over a refused chain"
        );
        let job = a.join(format!("{case}.job.json"));
        let out2 = a.join(format!("{case}.worker.qcow2"));
        std::fs::write(
            &job,
            serde_json::json!({"disks": [top], "outputs": [out2]}).to_string(),
        )
        .unwrap();
        let o = bounded(case, &["worker", "--job", job.to_str().unwrap()]);
        assert_eq!(o.code, UNREADABLE, "{case} worker: {}", o.err);
        assert!(o.err.contains("\"kind\":\"unreadable-image\""), "{}", o.err);
        assert!(!out2.exists());
    }
    // The caller can trust a folder explicitly; then the chain opens (positive control).
    let top = a.join("absolute.qcow2");
    let dir = v.parent().unwrap().to_str().unwrap().to_string();
    let o = bounded(
        "allowed",
        &[
            "inspect",
            "--allow-backing-dir",
            &dir,
            top.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.err);
    assert!(o.out.contains("victim-secret"), "{}", o.out);
}

#[test]
fn oversized_and_sparse_files_stay_bounded() {
    require_tools(&["mkfs.ext4", "sfdisk"]);
    // A 1 GiB sparse /etc/fstab: the OS is still found, the plan refuses to edit it.
    let (_d, img) = guest("sparse-fstab", &[], |root| {
        sparse(
            &root.join("etc/fstab"),
            1 << 30,
            b"\n/dev/sda1 / ext4 defaults 0 1\n",
        );
    });
    let o = expect("sparse-fstab", &img, &["inspect", "--json"], 0);
    assert!(o.out.contains("\"distro\": \"debian\""), "{}", o.out);
    assert!(
        o.err.contains("/etc/fstab") && o.err.contains("limit"),
        "{}",
        o.err
    );
    let o = expect("sparse-fstab", &img, &["plan"], REFUSED);
    assert!(o.out.contains("partial read: /etc/fstab"), "{}", o.out);
    expect("sparse-fstab", &img, &["verify"], 7);

    // A 1 GiB sparse initramfs and kernel: never read whole.
    let (_d, img) = guest("sparse-initrd", &[], |root| {
        sparse(&root.join("boot/initrd.img-6.1.0-13-amd64"), 1 << 30, b"x");
        sparse(&root.join("boot/vmlinuz-6.1.0-13-amd64"), 1 << 30, b"x");
        sparse(&root.join("bin/sh"), 1 << 30, b"x");
    });
    let o = expect("sparse-initrd", &img, &["inspect", "--json"], 0);
    assert!(o.out.contains("initramfs_error"), "{}", o.out);

    // 10,000 fstab lines naming devices that do not exist.
    let mut fstab = String::from("UUID=6f8e4f5c-9c1e-4c42-8f0a-8f6d3c2b1a00 / ext4 defaults 0 1\n");
    for i in 0..10_000 {
        fstab.push_str(&format!("/dev/sdb{i} /mnt/m{i} ext4 defaults 0 2\n"));
    }
    let (_d, img) = guest("fstab-10k", &[("/etc/fstab", &fstab)], |_| {});
    expect("fstab-10k", &img, &["inspect"], 0);
    let o = expect("fstab-10k", &img, &["plan"], REFUSED);
    assert!(o.out.contains("10001 entries"), "{}", o.out);
}

#[test]
fn recursive_configs_terminate() {
    require_tools(&["mkfs.ext4", "sfdisk"]);
    // /etc/network/interfaces sourcing itself under many spellings, plus a glob over a deep tree.
    let mut ifaces = String::from("auto eth0\niface eth0 inet dhcp\n");
    for s in [
        "/etc/network/interfaces",
        "/etc/network/./interfaces",
        "/etc/network//interfaces",
        "/etc/network/../network/interfaces",
        "/etc/../etc/network/interfaces",
        "interfaces",
        "./interfaces",
        "/etc/network/i*",
        "/etc/network/self",
    ] {
        ifaces.push_str(&format!("source {s}\n"));
    }
    let deep_glob = format!("source-directory /deep{}\n", "/*".repeat(60));
    ifaces.push_str(&deep_glob);
    ifaces.push_str("source /etc/network/many/*\n");
    let (_d, img) = guest(
        "interfaces-loop",
        &[("/etc/network/interfaces", &ifaces)],
        |root| {
            std::os::unix::fs::symlink("interfaces", root.join("etc/network/self")).unwrap();
            let mut p = root.join("deep");
            for i in 0..1000 {
                p = p.join(format!("d{}", i % 3));
            }
            std::fs::create_dir_all(&p).unwrap();
            let many = root.join("etc/network/many");
            std::fs::create_dir_all(&many).unwrap();
            for i in 0..5_000 {
                std::fs::write(many.join(format!("f{i}")), "source /etc/network/many/*\n").unwrap();
            }
        },
    );
    let o = expect("interfaces-loop", &img, &["inspect", "--json"], 0);
    assert!(o.out.contains("\"eth0\""), "{}", o.out);

    // grub.cfg nested 200,000 blocks deep.
    let n = 200_000;
    let mut grub = "submenu 'x' {\n".repeat(n);
    grub.push_str(&"}\n".repeat(n));
    grub.push_str("menuentry 'Debian' {\n linux /boot/vmlinuz-6.1.0-13-amd64 root=/dev/sda1\n initrd /boot/initrd.img-6.1.0-13-amd64\n}\n");
    let (_d, img) = guest("grub-nested", &[("/boot/grub/grub.cfg", &grub)], |_| {});
    for cmd in ["inspect", "plan", "verify"] {
        let o = bounded("grub-nested", &[cmd, img.to_str().unwrap()]);
        assert!(matches!(o.code, 0 | 7), "grub-nested {cmd}: {}", o.err);
    }
}

#[test]
fn broken_layouts_have_their_own_exit_codes() {
    require_tools(&["mkfs.ext4", "sfdisk", "qemu-img"]);
    let t = tempfile::tempdir().unwrap();
    // An MBR whose extended partition starts at LBA 0 (mbrman used to panic).
    let mbr = t.path().join("ext-at-0.raw");
    let mut b = vec![0u8; 4 << 20];
    b[446 + 4] = 0x05;
    b[446 + 12..446 + 16].copy_from_slice(&4096u32.to_le_bytes());
    b[510] = 0x55;
    b[511] = 0xaa;
    std::fs::write(&mbr, &b).unwrap();
    for cmd in ["inspect", "plan", "verify"] {
        expect("mbr-extended-lba0", &mbr, &[cmd], LAYOUT);
    }
    // A disk with no OS: 4 from every command that needs one.
    let data = t.path().join("data.ext4");
    let root = t.path().join("data");
    tree(&root, &[("/photos/a.txt", "x")], &[]);
    mkext4(
        &root,
        &data,
        8,
        "11111111-2222-3333-4444-555555555555",
        "data",
    );
    for cmd in ["inspect", "plan", "verify", "undo"] {
        expect("no-os", &data, &[cmd], NO_OS);
    }
    let out = t.path().join("no-os.qcow2");
    let o = bounded(
        "no-os",
        &[
            "repair",
            data.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, NO_OS, "{}", o.err);
    // A compressed qcow2 whose clusters are garbage: unreadable image (3), like any corrupt image.
    let (_d, g) = guest("compressed", &[], |_| {});
    let c = t.path().join("c.qcow2");
    qemu_img(
        &[
            "convert",
            "-q",
            "-c",
            "-O",
            "qcow2",
            g.to_str().unwrap(),
            c.to_str().unwrap(),
        ],
        t.path(),
    );
    let mut bytes = std::fs::read(&c).unwrap();
    let len = bytes.len();
    // Past the header, L1/L2 and refcount clusters: data clusters, overwritten with noise.
    for (i, x) in bytes[len / 2..].iter_mut().enumerate() {
        *x = (i as u32).wrapping_mul(2654435761).to_le_bytes()[1];
    }
    std::fs::write(&c, &bytes).unwrap();
    let o = expect_any("compressed-garbage", &c, &["inspect"]);
    assert!(matches!(o.code, UNREADABLE | NO_OS), "{}", o.err);
}

/// Like [`expect`] without an exit-code assertion (for inputs whose exact damage varies).
fn expect_any(case: &str, img: &Path, args: &[&str]) -> Outcome {
    let before = sha(img);
    let mut a: Vec<&str> = args.to_vec();
    a.push(img.to_str().unwrap());
    let o = bounded(case, &a);
    assert_eq!(sha(img), before, "{case}: changed its input");
    o
}

#[test]
fn bad_output_paths_are_command_line_errors_found_first() {
    require_tools(&["mkfs.ext4", "sfdisk"]);
    let (d, img) = guest("outputs", &[], |_| {});
    let existing = d.path().join("exists.qcow2");
    std::fs::write(&existing, b"keep").unwrap();
    let cases: [(&str, PathBuf); 3] = [
        ("missing-folder", d.path().join("no/such/dir/out.qcow2")),
        ("same-as-input", img.clone()),
        ("existing", existing.clone()),
    ];
    for (case, out) in &cases {
        let o = bounded(
            case,
            &["repair", img.to_str().unwrap(), "-o", out.to_str().unwrap()],
        );
        assert_eq!(o.code, BAD_INPUT, "{case}: {}", o.err);
        assert!(o.err.contains("--output"), "{case}: {}", o.err);
    }
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep");
    // Found before any disk is read: a garbage input still gives 2, not 4.
    let garbage = d.path().join("garbage.raw");
    std::fs::write(&garbage, vec![7u8; 1 << 20]).unwrap();
    let o = bounded(
        "bad-out-first",
        &[
            "repair",
            garbage.to_str().unwrap(),
            "-o",
            existing.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, BAD_INPUT, "{}", o.err);
    // Two inputs, one output.
    let o = bounded(
        "count",
        &[
            "repair",
            img.to_str().unwrap(),
            garbage.to_str().unwrap(),
            "-o",
            "/tmp/x.qcow2",
        ],
    );
    assert_eq!(o.code, BAD_INPUT, "{}", o.err);
}

#[test]
fn every_writer_takes_the_disk_lock() {
    require_tools(&["mkfs.ext4", "sfdisk"]);
    use std::os::fd::AsRawFd;
    let (d, img) = guest("locked", &[], |_| {});
    let f = std::fs::File::open(&img).unwrap();
    // SAFETY: flock on an fd we own, held for the rest of the test.
    assert_eq!(
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    let me = std::process::id().to_string();
    let o = expect("locked-in-place", &img, &["repair"], LOCKED);
    assert!(o.err.contains(&me), "the holder's pid is named: {}", o.err);
    let out = d.path().join("o.qcow2");
    let o = expect(
        "locked-overlay",
        &img,
        &["repair", "-o", out.to_str().unwrap()],
        LOCKED,
    );
    assert!(o.err.contains("holds this disk"), "{}", o.err);
    expect("locked-undo", &img, &["undo"], LOCKED);
    let job = d.path().join("job.json");
    let out2 = d.path().join("w.qcow2");
    std::fs::write(
        &job,
        serde_json::json!({"disks": [img], "outputs": [out2]}).to_string(),
    )
    .unwrap();
    let o = bounded("locked-worker", &["worker", "--job", job.to_str().unwrap()]);
    assert_eq!(o.code, LOCKED, "{}", o.err);
    assert!(o.err.contains("\"kind\":\"locked\""), "{}", o.err);
    drop(f);
}

/// A guest the plan edits (fstab by device name, grub configs, network) and that verify finds
/// ready afterwards (virtio built into the kernel, an empty initramfs), on a 16 MiB ext4 made
/// with `mkfs` options and then damaged by `damage(fs image)`, as a GPT disk.
fn repairable(
    name: &str,
    mkfs: &[&str],
    damage: impl FnOnce(&Path),
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // An empty newc archive: just the trailer, padded to 512 bytes (what `cpio -o` writes).
    let mut initrd = format!("070701{}{:08X}00000000TRAILER!!!\0", "0".repeat(8 * 11), 11);
    initrd.push_str(&"\0".repeat(512 - initrd.len()));
    let grub_cfg = "set default=0\nmenuentry 'Debian' {\n linux /boot/vmlinuz-6.1.0-13-amd64 root=/dev/sda1 ro\n initrd /boot/initrd.img-6.1.0-13-amd64\n}\n";
    tree(
        &root,
        &[
            ("/etc/os-release", DEBIAN12_OS_RELEASE),
            ("/etc/hostname", "hostile\n"),
            ("/usr/bin/.keep", ""),
            ("/etc/fstab", "/dev/sda1 / ext4 errors=remount-ro 0 1\n"),
            ("/etc/default/grub", "GRUB_CMDLINE_LINUX=\"\"\n"),
            ("/etc/network/interfaces", "auto eth0\niface eth0 inet dhcp\n"),
            ("/boot/grub/grub.cfg", grub_cfg),
            ("/boot/vmlinuz-6.1.0-13-amd64", "kernel"),
            ("/boot/initrd.img-6.1.0-13-amd64", &initrd),
            (
                "/boot/config-6.1.0-13-amd64",
                "CONFIG_VIRTIO_BLK=y\nCONFIG_SCSI_VIRTIO=y\nCONFIG_VIRTIO_NET=y\nCONFIG_VIRTIO_PCI=y\n",
            ),
        ],
        &[],
    );
    let img = dir.path().join("root.ext4");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(FS_LEN)
        .unwrap();
    run(Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-b",
            "4096",
            "-U",
            "6f8e4f5c-9c1e-4c42-8f0a-8f6d3c2b1a00",
        ])
        .args(["-E", "root_owner=0:0"])
        .args(mkfs)
        .arg("-d")
        .arg(&root)
        .arg(&img));
    damage(&img);
    let d = dir.path().join(format!("{name}.raw"));
    disk(&d, "gpt", &[(&img, "0FC63DAF-8483-4772-8E79-3D69D8477DE4")]);
    (dir, d)
}

/// The first few offsets where `b` differs from `a` (same length), with `b`'s byte; streamed.
fn differing_bytes(a: &Path, b: &Path) -> Vec<(u64, u8)> {
    use std::io::Read;
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    assert_eq!(fa.metadata().unwrap().len(), fb.metadata().unwrap().len());
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let (mut at, mut out) = (0u64, vec![]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            return out;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        for i in (0..n).filter(|&i| ba[i] != bb[i]).take(4) {
            out.push((at + i as u64, bb[i]));
        }
        at += n as u64;
    }
}

/// Size of a [`repairable`] guest's filesystem (4096 blocks of 4 KiB, one group).
const FS_LEN: u64 = 16 << 20;

/// `debugfs -R cmd img`'s standard output.
fn debugfs(img: &Path, cmd: &str) -> String {
    run_stdout(Command::new("debugfs").args(["-R", cmd]).arg(img))
}

/// Runs `debugfs -w` commands on `img` (the tenant's tool for consistent-looking damage:
/// checksums are recomputed).
fn debugfs_w(img: &Path, cmds: &[String]) {
    let f = img.with_extension("cmds");
    std::fs::write(&f, cmds.join("\n")).unwrap();
    run(Command::new("debugfs").arg("-w").arg("-f").arg(&f).arg(img));
}

/// The first number after `after` in `text`.
fn number_after(text: &str, after: &str) -> u64 {
    let rest = &text[text
        .find(after)
        .unwrap_or_else(|| panic!("{after:?} in {text}"))
        + after.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("number after {after:?} in {text}"))
}

/// The partition of a [`repairable`] disk, as e2fsck and debugfs name it in a raw copy.
fn partition_of(raw: &Path) -> String {
    format!("{}?offset={}", raw.display(), 1 << 20)
}

fn to_raw(qcow2: &Path) -> PathBuf {
    let raw = qcow2.with_extension("raw-copy");
    run(Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(qcow2)
        .arg(&raw));
    raw
}

/// A helper that keeps libext2fs busy for longer than its overall budget is stopped however
/// chatty it stays (issue #8): with a budget of 0 s the first exchange is over budget, the
/// repair fails naming the budget, and nothing is left at --output.
#[test]
fn native_helper_over_its_budget_is_stopped_and_leaves_nothing() {
    require_tools(&["mkfs.ext4", "sfdisk", "qemu-img"]);
    let (d, img) = repairable("budget", &[], |_| {});
    let out = d.path().join("budget.qcow2");
    let o = expect_env(
        "helper-budget",
        &img,
        &["repair", "--writer", "native", "-o", out.to_str().unwrap()],
        1,
        &[("REVIRT_HELPER_BUDGET_SECS", Path::new("0"))],
    );
    assert!(
        o.err.contains("used its whole budget") && o.err.contains("REVIRT_HELPER_BUDGET_SECS"),
        "{}",
        o.err
    );
    assert!(!out.exists(), "a failed repair left its output behind");
}

/// ext roots that inspect and plan but whose allocation metadata lies (issue #9): the native
/// writer must refuse or fail before writing where the lie says it may, never hand back a disk
/// that verify calls ready while file data sits in the journal or an inode table, and leave no
/// output or overlay behind when it fails.
#[test]
fn native_writer_refuses_ext_metadata_that_lies() {
    require_tools(&["mkfs.ext4", "debugfs", "e2fsck", "sfdisk", "qemu-img"]);
    // Control: the undamaged guest is repaired natively, ready, clean for e2fsck.
    let (d, img) = repairable("clean", &[], |_| {});
    let out = d.path().join("clean.qcow2");
    let o = expect(
        "native-clean",
        &img,
        &["repair", "--writer", "native", "-o", out.to_str().unwrap()],
        0,
    );
    assert!(o.out.contains("READY"), "{}", o.out);
    let raw = to_raw(&out);
    run(Command::new("e2fsck").arg("-fn").arg(partition_of(&raw)));
    let fstab = debugfs(Path::new(&partition_of(&raw)), "cat /etc/fstab");
    assert!(fstab.starts_with("UUID=6f8e4f5c"), "{fstab}");

    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, &[&str], Damage, &str)> = vec![
        // Journal blocks marked free: libext2fs put every edited file in the journal, which the
        // guest's first journaled write then overwrites.
        (
            "journal-marked-free",
            &[],
            Box::new(|fs| {
                let b = debugfs(fs, "bmap <8> 500").trim().parse::<u64>().unwrap();
                debugfs_w(fs, &[format!("freeb {b} 100")]);
            }),
            "marks block",
        ),
        // Unused inode-table blocks marked free (no checksums to notice): file data went into
        // the inode table.
        (
            "itable-marked-free",
            &["-O", "^metadata_csum"],
            Box::new(|fs| {
                let b = number_after(&debugfs(fs, "imap <4000>"), "located at block");
                debugfs_w(fs, &[format!("freeb {b} 16")]);
            }),
            "marks block",
        ),
        // Group 0 claims an uninitialised block bitmap: libext2fs computes one in which the
        // journal and the other groups' bitmaps are free.
        (
            "group0-block-uninit",
            &[],
            Box::new(|fs| {
                debugfs_w(
                    fs,
                    &["set_bg 0 flags 6".into(), "set_bg 0 checksum calc".into()],
                )
            }),
            "marks block",
        ),
        // The kernel's inode marked free: the first new directory took it over.
        (
            "live-inode-marked-free",
            &[],
            Box::new(|fs| debugfs_w(fs, &["freei /boot/vmlinuz-6.1.0-13-amd64".into()])),
            "free in the inode bitmap",
        ),
        // Every block marked in use (the superblock still counts free ones).
        (
            "no-free-blocks",
            &[],
            Box::new(|fs| debugfs_w(fs, &["setb 1 4095".into()])),
            "allocate",
        ),
        (
            "larger-than-partition",
            &[],
            Box::new(|fs| debugfs_w(fs, &["ssv blocks_count 20000".into()])),
            "larger than its volume",
        ),
        (
            "first-data-block",
            &[],
            Box::new(|fs| debugfs_w(fs, &["ssv first_data_block 1".into()])),
            "s_first_data_block",
        ),
    ];
    for (case, mkfs, damage, why) in &cases {
        let (d, img) = repairable(case, mkfs, damage);
        let out = d.path().join("out.qcow2");
        let o = expect(
            case,
            &img,
            &["repair", "--writer", "native", "-o", out.to_str().unwrap()],
            6,
        );
        assert!(o.err.contains(why), "{case}: {}", o.err);
        assert!(!out.exists(), "{case}: a failed repair left its output");
    }
    // In place: refused, the disk unchanged, no overlay or pending record left beside it.
    let (d, img) = repairable("in-place", &[], &cases[0].2);
    let o = expect(
        "journal-free-in-place",
        &img,
        &["repair", "--writer", "native"],
        6,
    );
    assert!(o.err.contains("marks block"), "{}", o.err);
    let left: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".revirt"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A stand-in for `revirt __native-helper ext` ($REVIRT_EXE): speaks the helper protocol
/// (src/native/proto.rs) and misbehaves as MODE says.
const FAKE_HELPER: &str = r#"
import sys, struct, json, os, signal
inp, out = sys.stdin.buffer, sys.stdout.buffer
def rd(n):
    b = b''
    while len(b) < n:
        c = inp.read(n - len(b))
        if not c: sys.exit(0)
        b += c
    return b
def frame():
    h = rd(5)
    return h[0], rd(struct.unpack('<I', h[1:])[0])
def send(tag, payload):
    out.write(bytes([tag]) + struct.pack('<I', len(payload)) + payload); out.flush()
def answer():
    j = json.dumps({"error": None, "value": None}).encode()
    send(ord('A'), struct.pack('<I', len(j)) + j)
size, done = 0, False
while True:
    tag, p = frame()
    req = json.loads(p[4:4 + struct.unpack('<I', p[:4])[0]])
    if req['op'] == 'open':
        size = req['size']
        if MODE == 'crash-open': os.kill(os.getpid(), signal.SIGSEGV)
        answer(); continue
    if req['op'] == 'close': answer(); sys.exit(0)
    if MODE == 'escape' and not done:
        done = True
        for tag, off, n in [('W', size - 1, 2), ('W', size, 1), ('W', 2**64 - 4, 8),
                            ('W', 2**63, 512), ('R', size - 1, 2), ('R', 2**64 - 1, 1)]:
            if tag == 'W': send(ord('W'), struct.pack('<Q', off) + b'X' * n)
            else: send(ord('R'), struct.pack('<QI', off, n))
            t, _ = frame()
            if t != ord('E'): sys.stderr.write('FAKE ACCEPTED %s %d+%d\n' % (tag, off, n))
        send(ord('W'), struct.pack('<Q', size - 1) + b'Z')
        t, _ = frame()
        sys.stderr.write('FAKE refused all, last byte %s\n' % chr(t)); sys.stderr.flush()
    if MODE == 'crash': os.kill(os.getpid(), signal.SIGSEGV)
    if MODE == 'abort': os.abort()
    if MODE == 'garbage': out.write(b'Zjunk'); out.flush()
    answer()
"#;

/// The parent checks every block request of a helper: one that asks outside its volume (past
/// the end, at offsets that overflow) is refused and nothing else on the disk changes; one that
/// crashes (a SIGSEGV or abort in libext2fs) or talks nonsense fails the repair with a clear
/// error, and no output or overlay is left.
#[test]
fn native_helpers_are_held_to_their_volume_and_their_crashes_reported() {
    require_tools(&["python3", "mkfs.ext4", "sfdisk", "qemu-img"]);
    let (d, img) = repairable("fake-helper", &[], |_| {});
    let helper = |mode: &str| -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = d.path().join(format!("helper-{mode}"));
        let text = format!("#!/usr/bin/env python3\nMODE = {mode:?}\n{FAKE_HELPER}");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let out = d.path().join("escape.qcow2");
    let h = helper("escape");
    // The fake writes nothing real, so verify finds the guest not ready (7), output kept.
    let o = expect_env(
        "helper-escape",
        &img,
        &["repair", "--writer", "native", "-o", out.to_str().unwrap()],
        7,
        &[("REVIRT_EXE", &h)],
    );
    assert!(o.err.contains("FAKE refused all, last byte K"), "{}", o.err);
    assert!(!o.err.contains("FAKE ACCEPTED"), "{}", o.err);
    // Byte for byte the input, but for the last byte of the partition.
    let raw = to_raw(&out);
    let last = (1u64 << 20) + FS_LEN - 1;
    assert_eq!(
        differing_bytes(&img, &raw),
        [(last, b'Z')],
        "bytes changed outside the helper's volume"
    );
    std::fs::remove_file(&raw).unwrap();
    for (mode, writer, why) in [
        ("crash", "native", "died (signal 11, SIGSEGV)"),
        ("abort", "auto", "died (signal 6, SIGABRT)"),
        ("crash-open", "native", "died (signal 11, SIGSEGV)"),
        ("garbage", "native", "exceeds"),
    ] {
        let case = format!("helper-{mode}");
        let out = d.path().join(format!("{mode}.qcow2"));
        let h = helper(mode);
        let o = expect_env(
            &case,
            &img,
            &["repair", "--writer", writer, "-o", out.to_str().unwrap()],
            1,
            &[("REVIRT_EXE", &h)],
        );
        assert!(o.err.contains(why), "{case}: {}", o.err);
        assert!(!out.exists(), "{case}: a failed repair left its output");
    }
    // In place: the disk unchanged and nothing left beside it.
    let h = helper("crash");
    let o = expect_env(
        "helper-crash-in-place",
        &img,
        &["repair", "--writer", "native"],
        1,
        &[("REVIRT_EXE", &h)],
    );
    assert!(o.err.contains("SIGSEGV"), "{}", o.err);
    let left: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".revirt"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
