//! Test helpers: a small virtio-win-like tree and ISO images of it made by xorriso.
use std::path::Path;
use std::process::Command;

/// Writes a tree with the virtio-win layout plus the awkward cases an ISO reader must handle:
/// mixed-case names, a long name, a file of many sectors and a folder spanning many sectors.
pub fn sample_tree(root: &Path) {
    let put = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    for (drv, base) in [("viostor", "viostor"), ("NetKVM", "netkvm")] {
        for os in ["w10", "2k8R2"] {
            for arch in ["amd64", "x86"] {
                for ext in ["sys", "inf", "cat"] {
                    put(
                        &format!("{drv}/{os}/{arch}/{base}.{ext}"),
                        format!("{base} {os} {arch} {ext}\r\n").as_bytes(),
                    );
                }
            }
        }
    }
    put("guest-agent/qemu-ga-x86_64.msi", b"msi");
    put(
        "Balloon/w10/amd64/a-rather-long-file-name-that-plain-iso9660-cannot-hold.txt",
        b"long",
    );
    // 300 KiB: several sectors, and not a multiple of 2048.
    let big: Vec<u8> = (0..300 * 1024 + 77).map(|i| (i * 7 % 251) as u8).collect();
    put("Balloon/w10/amd64/blnsvr.exe", &big);
    // 120 files with 40-character names: the folder's records span several sectors.
    for i in 0..120 {
        put(
            &format!("many/w10/amd64/file-{i:03}-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.bin"),
            &[i as u8],
        );
    }
}

/// Packs `tree` into the ISO image `out` with `xorriso NATIVE -as mkisofs ARGS` (xorriso
/// always writes Rock Ridge unless NATIVE has `-rockridge off`). xorriso is a test dependency
/// (installed by .ci/deps.sh): its absence fails the test, it is not skipped.
pub fn make_iso(tree: &Path, out: &Path, native: &[&str], args: &[&str]) {
    let r = Command::new("xorriso")
        .args(native)
        .args(["-as", "mkisofs", "-quiet"])
        .args(args)
        .args(["-V", "virtio-win", "-o"])
        .arg(out)
        .arg(tree)
        .output()
        .unwrap_or_else(|e| {
            panic!("xorriso is needed to build test ISO images (apt-get install xorriso): {e}")
        });
    assert!(
        r.status.success(),
        "xorriso failed: {}",
        String::from_utf8_lossy(&r.stderr)
    );
}
