//! The cage a native-write helper runs in: a C library parses the tenant's filesystem metadata
//! (libext2fs, libntfs-3g) or registry hives (libhivex) there, so a bug it has must not reach
//! the worker or the host.
//!
//! Layers, in the order they are put on (each is inherited and cannot be lifted again):
//! 1. every file descriptor but stdin/stdout/stderr closed (the helper's only channel is its
//!    pipes to the parent, which does all block I/O and checks every range);
//! 2. resource limits: address space, CPU seconds, descriptors, no core dumps;
//! 3. best effort: new user + network + IPC namespaces (no network at all) where the kernel
//!    allows them;
//! 4. required: `no_new_privs` and a seccomp filter that allows only reads of stdin, writes to
//!    stdout/stderr, memory management without executable mappings, futexes, clocks, signals
//!    to itself and exit. `open`, `socket`, `connect`, `execve`, `ptrace`, ... fail with EPERM.
//!
//! The hive helper (libhivex opens its hive by path) also gets `open`, but under a landlock
//! ruleset that makes its private folder the only path it can open ([`enter_dir`]).
//!
//! If the seccomp layer cannot be installed the helper refuses to run, and the parent falls
//! back to the appliance and says so in the report: the parsers are never run uncaged.
use anyhow::{bail, Result};
use std::collections::BTreeMap;

/// Address-space cap of a helper (libext2fs keeps bitmaps and caches in memory).
pub const HELPER_AS_BYTES: u64 = 1 << 30;
/// CPU seconds a helper may use in all.
pub const HELPER_CPU_SECS: u64 = 600;

/// What was put on, for the report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Caged {
    pub seccomp: bool,
    pub namespaces: bool,
}

/// Cages the calling (single-threaded) process. Call it before reading any guest byte.
pub fn enter() -> Result<Caged> {
    close_other_fds();
    limits(3)?;
    let namespaces = namespaces();
    seccomp(false)?;
    Ok(Caged {
        seccomp: true,
        namespaces,
    })
}

/// The cage of a helper whose library can only work on a file by path (libhivex): as
/// [`enter`], but files may be opened, and landlock lets the open succeed only beneath `dir`
/// (the private folder holding the guest's bytes). Without landlock this fails: the library
/// is never run where it could open host files.
pub fn enter_dir(dir: &std::path::Path) -> Result<Caged> {
    close_other_fds();
    limits(8)?;
    // No file it writes may outgrow the largest hive edited.
    let max = crate::native::hive::MAX_HIVE as u64;
    // SAFETY: plain syscall on a stack value.
    if unsafe {
        libc::setrlimit(
            libc::RLIMIT_FSIZE,
            &libc::rlimit {
                rlim_cur: max,
                rlim_max: max,
            },
        )
    } != 0
    {
        bail!("setrlimit(FSIZE): {}", std::io::Error::last_os_error());
    }
    let namespaces = namespaces();
    landlock_to(dir)?;
    seccomp(true)?;
    Ok(Caged {
        seccomp: true,
        namespaces,
    })
}

/// Whether this kernel can enforce the hive helper's landlock ruleset (asked by the parent
/// before it chooses the native writer for a Windows repair: a hive edit cannot fall back to
/// the appliance half-way through a session).
pub fn landlock_available() -> Result<()> {
    use landlock::{Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, ABI};
    // Creating a ruleset (dropped unused) restricts nothing; as a hard requirement it fails
    // where landlock is off or older than v3 (file truncation).
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V3))?
        .create()?;
    Ok(())
}

fn landlock_to(dir: &std::path::Path) -> Result<()> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr,
        RulesetStatus, ABI,
    };
    let abi = ABI::V3;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules([dir], AccessFs::from_all(abi)))?
        .restrict_self()?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        bail!(
            "landlock is not fully enforced by this kernel ({:?})",
            status.ruleset
        );
    }
    Ok(())
}

fn close_other_fds() {
    // SAFETY: close_range only closes descriptors; 3.. are none the helper needs.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if rc != 0 {
        // Older kernels: close them one by one.
        for fd in 3..4096 {
            // SAFETY: closing a descriptor number that may or may not be open.
            unsafe { libc::close(fd) };
        }
    }
}

fn limits(files: u64) -> Result<()> {
    let set = |res, v: u64| -> Result<()> {
        let l = libc::rlimit {
            rlim_cur: v,
            rlim_max: v,
        };
        // SAFETY: plain syscall on a stack value.
        if unsafe { libc::setrlimit(res, &l) } != 0 {
            bail!("setrlimit({res}): {}", std::io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::RLIMIT_AS, HELPER_AS_BYTES)?;
    set(libc::RLIMIT_CPU, HELPER_CPU_SECS)?;
    set(libc::RLIMIT_CORE, 0)?;
    set(libc::RLIMIT_NOFILE, files)?;
    Ok(())
}

/// New user, network and IPC namespaces: no interface but a down loopback. Not every host lets
/// an unprivileged process do this, so it is an extra layer, not the one relied on.
fn namespaces() -> bool {
    let flags = libc::CLONE_NEWNET | libc::CLONE_NEWIPC;
    // SAFETY: unshare affects only this process.
    unsafe { libc::unshare(flags) == 0 || libc::unshare(libc::CLONE_NEWUSER | flags) == 0 }
}

/// `files`: also open, read, write, seek and close files (only where landlock lets them).
#[cfg(target_arch = "x86_64")]
fn seccomp(files: bool) -> Result<()> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
        SeccompFilter, SeccompRule,
    };
    let arg = |i: u8, op: Op, v: u64| Cond::new(i, Len::Qword, op, v);
    let rule = |c: Vec<Cond>| SeccompRule::new(c);
    let no_exec = || arg(2, Op::MaskedEq(libc::PROT_EXEC as u64), 0);
    let pid = std::process::id() as u64;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut add = |nr: i64, r: Vec<SeccompRule>| {
        rules.insert(nr, r);
    };
    if files {
        // O_PATH opens skip landlock's open check: refused.
        add(
            libc::SYS_openat,
            vec![rule(vec![arg(2, Op::MaskedEq(libc::O_PATH as u64), 0)?])?],
        );
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_close,
            libc::SYS_lseek,
            libc::SYS_fstat,
            libc::SYS_newfstatat,
            libc::SYS_pread64,
        ] {
            add(nr, vec![]);
        }
    } else {
        add(libc::SYS_read, vec![rule(vec![arg(0, Op::Eq, 0)?])?]);
        add(
            libc::SYS_write,
            vec![
                rule(vec![arg(0, Op::Eq, 1)?])?,
                rule(vec![arg(0, Op::Eq, 2)?])?,
            ],
        );
    }
    add(libc::SYS_mmap, vec![rule(vec![no_exec()?])?]);
    add(libc::SYS_mprotect, vec![rule(vec![no_exec()?])?]);
    add(libc::SYS_tgkill, vec![rule(vec![arg(0, Op::Eq, pid)?])?]);
    for nr in [
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_madvise,
        libc::SYS_brk,
        libc::SYS_futex,
        libc::SYS_clock_gettime,
        libc::SYS_gettimeofday,
        libc::SYS_time,
        libc::SYS_getrandom,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_sigaltstack,
        libc::SYS_sched_yield,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ] {
        add(nr, vec![]);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        seccompiler::TargetArch::x86_64,
    )?;
    let prog: seccompiler::BpfProgram = filter.try_into()?;
    seccompiler::apply_filter(&prog)?;
    Ok(())
}

#[cfg(not(target_arch = "x86_64"))]
fn seccomp(_files: bool) -> Result<()> {
    bail!("no seccomp filter is defined for this architecture")
}

/// What a caged process can still reach, tried from inside the cage (`revirt __native-helper
/// selftest`): each entry is a probe and whether it was denied.
pub fn probe() -> Vec<(String, bool)> {
    let mut out = vec![];
    let path = c"/etc/hostname";
    // SAFETY: open/socket/close on constant arguments; the results are only compared.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
        out.push(("open /etc/hostname".to_string(), fd < 0));
        if fd >= 0 {
            libc::close(fd);
        }
        let fd = libc::openat(libc::AT_FDCWD, c"/".as_ptr(), libc::O_RDONLY);
        out.push(("openat /".to_string(), fd < 0));
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        out.push(("socket AF_UNIX".to_string(), s < 0));
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        out.push(("socket AF_INET".to_string(), s < 0));
        let m = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        out.push(("mmap PROT_EXEC".to_string(), m == libc::MAP_FAILED));
        let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
        let r = libc::execve(c"/bin/true".as_ptr(), argv.as_ptr(), std::ptr::null());
        out.push(("execve /bin/true".to_string(), r < 0));
        let r = libc::kill(1, 0);
        out.push(("kill pid 1".to_string(), r < 0));
        let w = libc::write(3, b"x".as_ptr().cast(), 1);
        out.push(("write fd 3".to_string(), w < 0));
    }
    out
}

/// The extra probes of the hive helper's cage ([`enter_dir`]): paths outside `dir` denied (and
/// nothing created next to it); returns them and whether a file inside `dir` could be created
/// and written (what libhivex needs).
pub fn probe_dir(dir: &std::path::Path) -> (Vec<(String, bool)>, bool) {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_bytes()).ok();
    let try_open = |p: &std::path::Path, flags: i32| -> bool {
        let Some(cp) = c(p) else { return false };
        // SAFETY: open/close of a NUL-terminated path; only the result is used.
        unsafe {
            let fd = libc::open(cp.as_ptr(), flags, 0o600);
            if fd >= 0 {
                libc::close(fd);
            }
            fd >= 0
        }
    };
    let mut out = vec![];
    let outside = dir.parent().unwrap_or(dir).join("revirt-cage-probe");
    out.push((
        format!("create {}", outside.display()),
        !try_open(&outside, libc::O_CREAT | libc::O_WRONLY),
    ));
    for p in ["/etc/hostname", "/proc/self/status", "/dev/null"] {
        out.push((
            format!("open {p}"),
            !try_open(std::path::Path::new(p), libc::O_RDONLY),
        ));
    }
    // An O_PATH open would skip landlock's check (and give fstat of any host file).
    // SAFETY: open of a constant path; only the result is used.
    let fd = unsafe { libc::open(c"/etc".as_ptr(), libc::O_PATH) };
    out.push(("open /etc with O_PATH".to_string(), fd < 0));
    let inside = dir.join("probe");
    let ok = try_open(&inside, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC);
    (out, ok)
}
