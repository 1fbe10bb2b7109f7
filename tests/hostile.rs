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
    let dir = tempfile::tempdir().unwrap();
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_revirt"));
    cmd.args(args)
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
    let before = sha(img);
    let mut a: Vec<&str> = args.to_vec();
    a.push(img.to_str().unwrap());
    let o = bounded(case, &a);
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
