//! Boot harness: boots a guest image under qemu on a throwaway overlay and classifies the outcome
//! from the serial console.
//!
//! The real guests (see real.rs) print `REVIRT-IP: <addr>` (or `REVIRT-IP: none`) on ttyS0 once
//! network-online.target is reached, so reaching that line proves userspace came up. Failures are
//! recognised by the messages initramfs-tools, dracut, the kernel, grub, SeaBIOS and OVMF print.
//! qemu is stopped as soon as a verdict is known.
//!
//! Platforms: `source` is what the guest came from (IDE or AHCI disk, e1000 NIC with the guest's
//! old MAC, optional VMware-like disk model/serial so /dev/disk/by-id names match);
//! `virtio-blk` / `virtio-scsi` are the KVM targets (virtio-net with a fresh MAC).
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    Bios,
    Uefi,
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    Source,
    VirtioBlk,
    VirtioScsi,
}

/// How the source platform presented the guest's disk and NIC.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct SourceSpec {
    /// "ide" (PIIX) or "sata" (AHCI).
    pub bus: String,
    /// The NIC's MAC on the source platform (configs may be bound to it).
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_serial: Option<String>,
}

/// Sidecar `<image>.boot.json` written by the fixture builder: how to boot the image.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct BootInfo {
    pub name: String,
    pub firmware: Firmware,
    pub source: SourceSpec,
    /// The verdict expected on the source platform ("booted-address" / "booted-no-network").
    pub expect_source: String,
    /// The guest's further disks, in bus order: `<image stem>.<name>.qcow2` beside the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_disks: Vec<String>,
    /// LUKS passphrases the guest's volumes open with (the guest itself has them as keyfiles
    /// in its initramfs, to boot unattended).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeySpec>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct KeySpec {
    /// As revirt names it: /dev/sda2.
    pub device: String,
    pub passphrase: String,
}

/// The further disks of `image` its sidecar names (`<stem>.<name>.qcow2` beside it).
pub fn extra_disks_of(image: &Path, info: &BootInfo) -> Vec<PathBuf> {
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    info.extra_disks
        .iter()
        .map(|n| image.with_file_name(format!("{stem}.{n}.qcow2")))
        .collect()
}

#[derive(clap::Args)]
pub struct BootArgs {
    /// Image to boot (qcow2; booted through a throwaway overlay, never written).
    pub image: PathBuf,
    /// Which hardware to present.
    #[arg(long, value_enum, default_value = "source")]
    pub platform: Platform,
    /// Firmware; default from the image's .boot.json sidecar, else bios.
    #[arg(long, value_enum)]
    pub firmware: Option<Firmware>,
    /// Seconds before giving up.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Print a JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also copy the full serial console log here.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Boot the image itself (writable, cache=writeback: what the guest fsyncs is in the
    /// file), not a throwaway overlay. For making crash-consistent images.
    #[arg(long)]
    pub in_place: bool,
    /// SIGKILL qemu as soon as the console shows this text (a power cut mid-write); the
    /// verdict is then `killed`.
    #[arg(long)]
    pub kill_after: Option<String>,
    /// Further disks, in bus order (default: the ones the image's .boot.json names).
    #[arg(long = "disk")]
    pub disks: Vec<PathBuf>,
}

/// What a boot came to.
#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Userspace reached network-online and the guest has an IPv4 address.
    BootedAddress,
    /// Userspace reached network-online without any address.
    BootedNoNetwork,
    /// The initramfs (or kernel) found no root filesystem, or an emergency shell started.
    NoRootDevice,
    /// Firmware or grub could not load the kernel.
    BootloaderError,
    /// A kernel panic other than a missing root.
    KernelPanic,
    /// qemu exited before any verdict.
    QemuExited,
    Timeout,
    /// Killed on `--kill-after`, as asked.
    Killed,
}

impl Verdict {
    pub fn booted(self) -> bool {
        matches!(self, Verdict::BootedAddress | Verdict::BootedNoNetwork)
    }
}

/// A verdict with the console line that decided it.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    pub verdict: Verdict,
    /// The guest's IPv4 address for `booted-address`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The console line that decided the verdict.
    pub evidence: String,
}

/// Removes ANSI escape sequences (OVMF and grub draw with them) and carriage returns.
pub fn clean_console(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI: ESC [ params final-byte; other escapes: ESC + one char.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// Classifies a (cleaned) console transcript; `None` while nothing decisive has been printed.
///
/// Precondition: `console` went through [`clean_console`].
pub fn classify(console: &str) -> Option<Classified> {
    let hit = |verdict, line: &str| {
        Some(Classified {
            verdict,
            address: None,
            evidence: line.trim().to_owned(),
        })
    };
    for line in console.lines() {
        if let Some(pos) = line.find("REVIRT-IP: ") {
            let addr = line[pos + "REVIRT-IP: ".len()..]
                .split_whitespace()
                .next()
                .unwrap_or("");
            if addr.is_empty() {
                continue; // the line is still being written
            }
            if addr == "none" {
                return hit(Verdict::BootedNoNetwork, line);
            }
            return Some(Classified {
                verdict: Verdict::BootedAddress,
                address: Some(addr.to_owned()),
                evidence: line.trim().to_owned(),
            });
        }
        // initramfs-tools: "Gave up waiting for root file system device." then
        // "ALERT!  /dev/sda1 does not exist.  Dropping to a shell!"
        if line.contains("ALERT!")
            || line.contains("Gave up waiting for root")
            || line.contains("VFS: Unable to mount root")
            // dracut / systemd in the initramfs or after switch-root
            || line.contains("Could not boot")
            // dracut's initqueue gave up on its "finished" hooks (the root device among them);
            // "Could not boot" follows only minutes later under TCG.
            || line.contains("dracut-initqueue: timeout, still waiting")
            || line.contains("Entering emergency mode")
            || line.contains("You are in emergency mode")
            || line.contains("emergency shell")
            || line.trim_start().starts_with("(initramfs)")
        {
            return hit(Verdict::NoRootDevice, line);
        }
        if line.contains("Kernel panic - not syncing") {
            return hit(Verdict::KernelPanic, line);
        }
        let t = line.trim_start();
        if t.starts_with("grub rescue>")
            || line.contains("No bootable device")
            || line.contains("Boot failed: could not read")
            || line.contains("UEFI Interactive Shell")
            || t.starts_with("Shell>")
            || (t.starts_with("error:")
                && [
                    "not found",
                    "no such",
                    "unknown filesystem",
                    "load the kernel first",
                    "out of partition",
                ]
                .iter()
                .any(|k| t.contains(k)))
        {
            return hit(Verdict::BootloaderError, line);
        }
    }
    None
}

/// Full result of one boot.
#[derive(Serialize, Debug)]
pub struct BootReport {
    pub image: PathBuf,
    pub platform: Platform,
    pub firmware: Firmware,
    pub accel: String,
    #[serde(flatten)]
    pub result: Classified,
    pub seconds: f64,
    pub last_lines: Vec<String>,
}

/// Private temp folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("revirt-boot-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Kills qemu when the harness leaves early.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS.fd";
const VIRTIO_MAC: &str = "52:54:00:12:34:56";

/// "kvm" when /dev/kvm exists and a host kernel boots to its no-root panic under it within a few
/// seconds; "tcg" otherwise. On some hosts qemu 7.2 + KVM aborts with an MSR assertion or hangs
/// right after "Linux version", so presence of /dev/kvm proves nothing. The answer is cached for
/// six hours in the temp folder; $REVIRT_BOOT_ACCEL overrides.
fn pick_accel() -> String {
    if let Ok(a) = std::env::var("REVIRT_BOOT_ACCEL") {
        return a;
    }
    if !Path::new("/dev/kvm").exists() {
        return "tcg".into();
    }
    let cache = std::env::temp_dir().join("revirt-accel-probe");
    let fresh = fs::metadata(&cache)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < Duration::from_secs(6 * 3600));
    if fresh {
        if let Ok(a) = fs::read_to_string(&cache) {
            if a == "kvm" || a == "tcg" {
                return a;
            }
        }
    }
    let accel = if probe_kvm() { "kvm" } else { "tcg" };
    let _ = fs::write(&cache, accel);
    accel.into()
}

fn probe_kvm() -> bool {
    let Some(kernel) = fs::read_dir("/boot").ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("vmlinuz-"))
    }) else {
        return false;
    };
    let Ok(tmp) = TempDir::new() else {
        return false;
    };
    let log = tmp.0.join("probe.log");
    let child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "kvm",
            "-machine",
            "pc",
            "-m",
            "256",
            "-nodefaults",
            "-display",
            "none",
        ])
        .args(["-no-reboot", "-monitor", "none", "-serial"])
        .arg(format!("file:{}", log.display()))
        .arg("-kernel")
        .arg(&kernel)
        .args(["-append", "console=ttyS0 panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else { return false };
    let mut q = Qemu(child);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        let text = fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Kernel panic") || text.contains("VFS:") {
            return true;
        }
        if let Ok(Some(_)) = q.0.try_wait() {
            let text = fs::read_to_string(&log).unwrap_or_default();
            return text.contains("Kernel panic") || text.contains("VFS:");
        }
    }
    false
}

fn sidecar(image: &Path) -> Option<BootInfo> {
    let p = image.with_extension("boot.json");
    let text = fs::read_to_string(p).ok()?;
    serde_json::from_str(&text).ok()
}

/// A qcow2 overlay over `image` at `overlay`, so a boot never writes the image.
fn throwaway_overlay(image: &Path, overlay: &Path) -> Result<PathBuf> {
    let o = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(image)
        .arg(overlay)
        .output()
        .context("running qemu-img create")?;
    if !o.status.success() {
        bail!(
            "qemu-img create over {}: {}",
            image.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(overlay.to_path_buf())
}

/// Boots `image` and classifies the console. Never writes to `image`.
pub fn boot(args: &BootArgs) -> Result<BootReport> {
    let image = fs::canonicalize(&args.image)
        .with_context(|| format!("opening image {}", args.image.display()))?;
    let info = sidecar(&image);
    let firmware = args
        .firmware
        .or(info.as_ref().map(|i| i.firmware))
        .unwrap_or(Firmware::Bios);
    let source = info
        .as_ref()
        .map(|i| i.source.clone())
        .unwrap_or(SourceSpec {
            bus: "ide".into(),
            mac: "00:50:56:00:00:01".into(),
            disk_model: None,
            disk_serial: None,
        });
    for tool in ["qemu-system-x86_64", "qemu-img"] {
        if crate::real::which(tool).is_none() {
            bail!("{tool} not found: install qemu-system-x86 and qemu-utils (.ci/deps.sh)");
        }
    }
    let tmp = TempDir::new()?;
    let mut disks = vec![image.clone()];
    if !args.disks.is_empty() {
        for d in &args.disks {
            disks.push(
                fs::canonicalize(d).with_context(|| format!("opening disk {}", d.display()))?,
            );
        }
    } else if let Some(i) = &info {
        disks.extend(extra_disks_of(&image, i));
    }
    ensure!(disks.len() <= 4, "at most 4 disks (IDE has 4 places)");
    let mut drives = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        drives.push(if args.in_place {
            d.clone()
        } else {
            throwaway_overlay(d, &tmp.0.join(format!("overlay{i}.qcow2")))?
        });
    }
    let console = tmp.0.join("console.log");
    let accel = pick_accel();

    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-accel", &accel, "-machine", "pc", "-m", "1024", "-smp", "1",
    ])
    .args([
        "-nodefaults",
        "-display",
        "none",
        "-vga",
        "none",
        "-no-reboot",
        "-monitor",
        "none",
    ])
    .arg("-serial")
    .arg(format!("file:{}", console.display()));
    if firmware == Firmware::Uefi {
        let vars = tmp.0.join("OVMF_VARS.fd");
        fs::copy(OVMF_VARS, &vars)
            .with_context(|| format!("copying {OVMF_VARS} (install ovmf)"))?;
        cmd.arg("-drive").arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
        ));
        cmd.arg("-drive").arg(format!(
            "if=pflash,format=raw,unit=1,file={}",
            vars.display()
        ));
    }
    for (i, d) in drives.iter().enumerate() {
        cmd.arg("-drive").arg(format!(
            "file={},format=qcow2,if=none,id=d{i},cache=writeback",
            d.display()
        ));
    }
    cmd.args(["-netdev", "user,id=n0"]);
    match args.platform {
        Platform::Source => {
            if source.bus == "sata" {
                cmd.args(["-device", "ahci,id=ahci0"]);
            }
            for i in 0..drives.len() {
                let mut disk = format!("ide-hd,drive=d{i}");
                match source.bus.as_str() {
                    // Two IDE buses, master then slave: sda, sdb on ide.0, sdc, sdd on ide.1.
                    "ide" => disk.push_str(&format!(",bus=ide.{},unit={}", i / 2, i % 2)),
                    "sata" => disk.push_str(&format!(",bus=ahci0.{i}")),
                    other => bail!("unknown source bus {other:?} (ide or sata)"),
                }
                if i == 0 {
                    if let Some(m) = &source.disk_model {
                        disk.push_str(&format!(",model={m}"));
                    }
                    if let Some(s) = &source.disk_serial {
                        disk.push_str(&format!(",serial={s}"));
                    }
                }
                cmd.arg("-device").arg(disk);
            }
            cmd.arg("-device")
                .arg(format!("e1000,netdev=n0,mac={},romfile=", source.mac));
        }
        Platform::VirtioBlk | Platform::VirtioScsi => {
            if args.platform == Platform::VirtioScsi {
                cmd.args(["-device", "virtio-scsi-pci,id=scsi0"]);
            }
            for i in 0..drives.len() {
                let boot = if i == 0 { ",bootindex=0" } else { "" };
                let dev = if args.platform == Platform::VirtioBlk {
                    format!("virtio-blk-pci,drive=d{i}{boot}")
                } else {
                    format!("scsi-hd,drive=d{i},bus=scsi0.0,scsi-id={i}{boot}")
                };
                cmd.arg("-device").arg(dev);
            }
            cmd.arg("-device").arg(format!(
                "virtio-net-pci,netdev=n0,mac={VIRTIO_MAC},romfile="
            ));
        }
    }
    let qemu_err = tmp.0.join("qemu.err");
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(
        fs::File::create(&qemu_err).with_context(|| format!("creating {}", qemu_err.display()))?,
    );

    let t0 = Instant::now();
    let mut q = Qemu(cmd.spawn().context("starting qemu-system-x86_64")?);
    let deadline = Duration::from_secs(args.timeout);
    let mut text;
    let result = loop {
        std::thread::sleep(Duration::from_millis(300));
        text = clean_console(&fs::read(&console).unwrap_or_default());
        if let Some(line) = args
            .kill_after
            .as_deref()
            .and_then(|k| text.lines().find(|l| l.contains(k)))
            .map(String::from)
        {
            let _ = q.0.kill();
            let _ = q.0.wait();
            text = clean_console(&fs::read(&console).unwrap_or_default());
            break Classified {
                verdict: Verdict::Killed,
                address: None,
                evidence: line,
            };
        }
        // Waiting for --kill-after, only a failure ends the boot early.
        if let Some(c) =
            classify(&text).filter(|c| args.kill_after.is_none() || !c.verdict.booted())
        {
            break c;
        }
        if let Ok(Some(status)) = q.0.try_wait() {
            text = clean_console(&fs::read(&console).unwrap_or_default());
            if let Some(c) = classify(&text) {
                break c;
            }
            let err = fs::read_to_string(&qemu_err).unwrap_or_default();
            break Classified {
                verdict: Verdict::QemuExited,
                address: None,
                evidence: format!("qemu exited ({status}): {}", err.trim()),
            };
        }
        if t0.elapsed() >= deadline {
            break Classified {
                verdict: Verdict::Timeout,
                address: None,
                evidence: format!("no verdict after {} s", args.timeout),
            };
        }
    };
    drop(q);
    if let Some(dst) = &args.log {
        fs::write(dst, &text).with_context(|| format!("writing {}", dst.display()))?;
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let last_lines = lines[lines.len().saturating_sub(25)..]
        .iter()
        .map(|l| l.to_string())
        .collect();
    Ok(BootReport {
        image,
        platform: args.platform,
        firmware,
        accel,
        result,
        seconds: (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        last_lines,
    })
}

pub fn run(args: BootArgs) -> Result<()> {
    let r = boot(&args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let verdict = serde_json::to_value(r.result.verdict)?;
    println!(
        "{} on {:?} ({:?}, {}): {} in {:.0} s{}",
        r.image.display(),
        r.platform,
        r.firmware,
        r.accel,
        verdict.as_str().unwrap_or("?"),
        r.seconds,
        r.result
            .address
            .as_deref()
            .map(|a| format!(" (address {a})"))
            .unwrap_or_default()
    );
    println!("  evidence: {}", r.result.evidence);
    if !r.result.verdict.booted() {
        println!("  last console lines:");
        for l in &r.last_lines {
            println!("    {l}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes() {
        assert_eq!(
            clean_console(b"\x1b[2J\x1b[01;01HBdsDxe: x\r\n"),
            "BdsDxe: x\n"
        );
    }

    #[test]
    fn classifies_consoles() {
        let c = classify("[  OK  ] Reached target network-online\nREVIRT-IP: 10.0.2.15\n").unwrap();
        assert_eq!(c.verdict, Verdict::BootedAddress);
        assert_eq!(c.address.as_deref(), Some("10.0.2.15"));
        assert_eq!(
            classify("REVIRT-IP: none\n").unwrap().verdict,
            Verdict::BootedNoNetwork
        );
        assert_eq!(classify("REVIRT-IP: ").map(|c| c.verdict), None);
        let v = classify(
            "Gave up waiting for root file system device.\nALERT!  /dev/sda1 does not exist.\n",
        );
        assert_eq!(v.unwrap().verdict, Verdict::NoRootDevice);
        assert_eq!(
            classify("Entering emergency mode. Exit the shell to continue.\n")
                .unwrap()
                .verdict,
            Verdict::NoRootDevice
        );
        let dracut = "[ 428.1] dracut-initqueue[229]: Warning: dracut-initqueue: timeout, still waiting for following initqueue hooks:\n";
        assert_eq!(classify(dracut).unwrap().verdict, Verdict::NoRootDevice);
        assert_eq!(
            classify("grub rescue> ").unwrap().verdict,
            Verdict::BootloaderError
        );
        assert_eq!(
            classify("error: file `/boot/vmlinuz' not found.\n")
                .unwrap()
                .verdict,
            Verdict::BootloaderError
        );
        assert_eq!(classify("error: no suitable video mode found.\n"), None);
        assert_eq!(
            classify("Loading Linux 6.1.0 ...\n[ 0.0] Linux version\n"),
            None
        );
    }
}
