//! The green boot matrix (issue #3): every real guest that does not boot on virtio boots on
//! virtio after `revirt repair IN --output OUT` and gets the DHCP lease 10.0.2.15 from qemu's
//! user network; variants cover virtio-scsi, the guest's own initramfs tool, keep-static and an
//! encrypted root (LUKS2, repaired with its key; without it, refused with nothing written).
//! Real boots under qemu (TCG here), two at a time; about 15 minutes under TCG.
#[path = "common/boot.rs"]
mod boot;
use boot::*;
use std::path::PathBuf;
use std::process::Command;

struct Case {
    guest: &'static str,
    args: &'static [&'static str],
    platform: &'static str,
    /// None: expect the DHCP address 10.0.2.15; Some: the static address the guest kept.
    keep_static: bool,
}

const CASES: &[Case] = &[
    Case {
        guest: "deb12-bios-mbr",
        args: &[],
        platform: "virtio-blk",
        keep_static: false,
    },
    Case {
        guest: "deb12-uefi-gpt",
        args: &[],
        platform: "virtio-blk",
        keep_static: false,
    },
    Case {
        guest: "deb12-dracut-netplan",
        args: &[],
        platform: "virtio-blk",
        keep_static: false,
    },
    Case {
        guest: "deb12-bios-gpt",
        args: &[],
        platform: "virtio-blk",
        keep_static: false,
    },
    Case {
        guest: "deb12-bios-gpt",
        args: &["--block", "virtio-scsi"],
        platform: "virtio-scsi",
        keep_static: false,
    },
    Case {
        guest: "deb12-bios-mbr",
        args: &["--initramfs", "guest-tool"],
        platform: "virtio-blk",
        keep_static: false,
    },
    Case {
        guest: "deb12-luks",
        args: &[],
        platform: "virtio-blk",
        keep_static: false,
    },
    Case {
        guest: "deb12-md-boot",
        args: &[],
        platform: "virtio-blk",
        keep_static: false,
    },
    Case {
        guest: "deb12-uefi-gpt",
        args: &["--network", "keep-static"],
        platform: "virtio-blk",
        keep_static: true,
    },
];

/// Every md raid1 of the repaired disks holds the same data on each member (a write that
/// reached one mirror only would differ): read from the members' partitions by their own
/// superblocks. Returns a note for the result line ("" without arrays).
fn mirrors_alike(
    out: &std::path::Path,
    extra: &[(PathBuf, PathBuf)],
    input: &std::path::Path,
) -> Result<String, String> {
    let paths: Vec<PathBuf> = std::iter::once(out.to_path_buf())
        .chain(extra.iter().map(|(_, o)| o.clone()))
        .collect();
    let g = revirt::inspect::inspect_with(&paths, &trust(input)).map_err(|e| e.to_string())?;
    let mut checked = vec![];
    for md in &g.inspection.md_arrays {
        let mut data: Vec<Vec<u8>> = vec![];
        for m in &md.members {
            let dev = g
                .volumes
                .iter()
                .find(|v| &v.report.device == m)
                .and_then(|v| v.dev.clone())
                .ok_or(format!("{m}: no device"))?;
            let sb = revirt::md::read_member(dev.as_ref()).ok_or(format!("{m}: no superblock"))?;
            data.push(
                revirt::image::read_vec(dev.as_ref(), sb.data_offset, sb.data_size as usize)
                    .map_err(|e| e.to_string())?,
            );
        }
        if data.len() < 2 || data.iter().any(|d| *d != data[0]) {
            return Err(format!(
                "{}: its {} members do not hold the same data after the repair",
                md.device,
                data.len()
            ));
        }
        checked.push(format!("{} x{}", md.device, data.len()));
    }
    Ok(if checked.is_empty() {
        String::new()
    } else {
        format!(" (mirrors alike: {})", checked.join(", "))
    })
}

fn sha256(p: &std::path::Path) -> String {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// The first static IPv4 address inspection finds in the guest's network config.
fn static_address(img: &std::path::Path) -> Option<String> {
    let out = revirt_bin()
        .args(["inspect", "--json"])
        .arg(img)
        .output()
        .ok()?;
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let cfgs = j["operating_systems"][0]["linux"]["network"]["configs"]
        .as_array()?
        .clone();
    cfgs.iter()
        .flat_map(|c| c["interfaces"].as_array().cloned().unwrap_or_default())
        .find_map(|i| {
            i["addresses"].as_array()?.iter().find_map(|a| {
                a.as_str()
                    .filter(|a| !a.contains(':'))
                    .map(|a| a.split('/').next().unwrap_or(a).to_string())
            })
        })
}

#[test]
fn repaired_real_guests_boot_on_virtio_with_dhcp() {
    require_tools(&[
        "qemu-system-x86_64",
        "qemu-img",
        "debootstrap",
        "sfdisk",
        "sha256sum",
    ]);
    let real = real_guests();
    let tmp = tempfile::tempdir().unwrap();
    // REVIRT_BOOT_ONLY=substring runs the matching cases only (for development; CI runs all).
    let only = std::env::var("REVIRT_BOOT_ONLY").unwrap_or_default();
    let cases: Vec<&Case> = CASES
        .iter()
        .filter(|c| format!("{} {}", c.guest, c.args.join(" ")).contains(&only))
        .collect();
    if !only.is_empty() {
        println!(
            "REVIRT_BOOT_ONLY={only}: running {} of {} cases",
            cases.len(),
            CASES.len()
        );
    }
    let results = run_parallel(&cases, |c| -> Result<String, String> {
        let input = real.join(format!("{}.qcow2", c.guest));
        let expect_addr = if c.keep_static {
            static_address(&input).ok_or("no static address found in the source guest")?
        } else {
            "10.0.2.15".into()
        };
        let before = sha256(&input);
        let out: PathBuf = tmp.path().join(format!(
            "{}{}.qcow2",
            c.guest,
            c.args.join("").replace('-', "_")
        ));
        // The overlay has no .boot.json sidecar: take the firmware, further disks and any
        // LUKS keys from the source guest's.
        let sidecar: serde_json::Value =
            std::fs::read_to_string(real.join(format!("{}.boot.json", c.guest)))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
        // Further disks: `<guest>.<name>.qcow2`, repaired into `<out stem>.<name>.qcow2`.
        let extra: Vec<(PathBuf, PathBuf)> = sidecar["extra_disks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str())
            .map(|n| {
                (
                    real.join(format!("{}.{n}.qcow2", c.guest)),
                    out.with_extension(format!("{n}.qcow2")),
                )
            })
            .collect();
        let mut disk_args: Vec<std::ffi::OsString> = vec![input.clone().into()];
        disk_args.extend(extra.iter().map(|(i, _)| i.clone().into()));
        disk_args.extend(["-o".into(), out.clone().into()]);
        for (_, o) in &extra {
            disk_args.extend(["-o".into(), o.clone().into()]);
        }
        let mut keys = vec![];
        for (i, k) in sidecar["keys"].as_array().into_iter().flatten().enumerate() {
            let file = tmp.path().join(format!("{}.{i}.key", c.guest));
            std::fs::write(&file, k["passphrase"].as_str().unwrap_or_default())
                .map_err(|e| e.to_string())?;
            keys.push("--key".to_string());
            keys.push(format!(
                "{}:file:{}",
                k["device"].as_str().unwrap_or_default(),
                file.display()
            ));
        }
        if !keys.is_empty() {
            // Without its key an encrypted guest is refused clearly, and nothing is written.
            let o = revirt_bin()
                .arg("repair")
                .args(&disk_args)
                .args(c.args)
                .output()
                .map_err(|e| e.to_string())?;
            let err = String::from_utf8_lossy(&o.stderr);
            if o.status.success() || !err.contains("--key") || out.exists() {
                return Err(format!(
                    "without its key: exit {:?}, output left: {}, stderr {err}",
                    o.status.code(),
                    out.exists()
                ));
            }
        }
        let rep = revirt_bin()
            .arg("repair")
            .args(&disk_args)
            .args(c.args)
            .args(&keys)
            .arg("--json")
            .output()
            .map_err(|e| e.to_string())?;
        let report: serde_json::Value = serde_json::from_slice(&rep.stdout)
            .map_err(|e| format!("report: {e}: {}", String::from_utf8_lossy(&rep.stderr)))?;
        if rep.status.code() != Some(0) {
            return Err(format!(
                "repair exit {:?}: verify {}; stderr {}",
                rep.status.code(),
                report["verify"],
                String::from_utf8_lossy(&rep.stderr)
            ));
        }
        if sha256(&input) != before {
            return Err("the input image changed".into());
        }
        let mirrors = mirrors_alike(&out, &extra, &input)?;
        let outs: Vec<PathBuf> = extra.iter().map(|(_, o)| o.clone()).collect();
        let v = boot_with(&out, &outs, c.platform, sidecar["firmware"].as_str(), 420)?;
        let verdict = v["verdict"].as_str().unwrap_or("?");
        let addr = v["address"].as_str().unwrap_or("");
        if verdict != "booted-address" || addr != expect_addr {
            return Err(format!("booted as {verdict} with address {addr:?} (want {expect_addr}); last console lines: {}", v["last_lines"]));
        }
        Ok(format!(
            "{verdict} {addr} in {:.0} s{mirrors}, written by the {} writer",
            v["seconds"].as_f64().unwrap_or(0.0),
            report["writer"].as_str().unwrap_or("?")
        ))
    });
    println!(
        "{:<22} {:<28} {:<12} result",
        "guest", "repair options", "platform"
    );
    let mut failed = vec![];
    for (c, r) in cases.iter().zip(&results) {
        let shown = match r {
            Ok(s) => s.clone(),
            Err(e) => {
                failed.push(format!("{} {:?}: {e}", c.guest, c.args));
                format!("FAIL: {e}")
            }
        };
        println!(
            "{:<22} {:<28} {:<12} {}",
            c.guest,
            c.args.join(" "),
            c.platform,
            shown
        );
    }
    // The native path must be the one that made (most of) these boot: the BIOS guests touch
    // only ext filesystems and run no guest tool unless asked (--initramfs guest-tool).
    let native = results
        .iter()
        .filter(|r| {
            r.as_ref()
                .is_ok_and(|s| s.ends_with("by the native writer"))
        })
        .count();
    // (A REVIRT_BOOT_ONLY run may hold fewer cases than that.)
    assert!(
        native >= 3 || !only.is_empty(),
        "only {native} guests were written natively: {results:?}"
    );
    assert!(
        failed.is_empty(),
        "{} of {} repaired guests did not boot on virtio:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}
