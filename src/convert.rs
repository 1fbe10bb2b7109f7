//! `revirt convert`: image format conversion through qemu-img (not reimplemented), with progress.
use crate::image::{detect_format, Format};
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

/// Progress callback: percent done (0..=100).
pub type Progress<'a> = &'a mut dyn FnMut(f64);

/// Converts `src` to `dst` in `fmt` ("qcow2" or "raw"). `dst` must not exist unless `force`.
/// The conversion writes to a temporary name next to `dst` and renames it at the end, so an
/// interrupted run never leaves a half-written image under the final name.
pub fn convert(src: &Path, dst: &Path, fmt: &str, force: bool, progress: Progress) -> Result<()> {
    let src_fmt = detect_format(src)?;
    let src_fmt = match src_fmt {
        Format::Raw => "raw",
        other => other.as_str(),
    };
    if dst.exists() && !force {
        bail!(
            "{}: already exists (use --force to overwrite)",
            dst.display()
        );
    }
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dst.canonicalize()) {
        if a == b {
            bail!(
                "{}: source and destination are the same file",
                src.display()
            );
        }
    }
    let tmp = dst.with_file_name(format!(
        ".{}.revirt-partial",
        dst.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut child = Command::new("qemu-img")
        .args(["convert", "-p", "-f", src_fmt, "-O", fmt])
        .arg(src)
        .arg(&tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running qemu-img (install qemu-utils: bash .ci/deps.sh)")?;
    // qemu-img -p writes "    (12.50/100%)\r" updates to stdout.
    let mut out = child.stdout.take().expect("piped stdout");
    let mut buf = [0u8; 256];
    let mut line = String::new();
    loop {
        let n = out.read(&mut buf).context("reading qemu-img progress")?;
        if n == 0 {
            break;
        }
        for &c in &buf[..n] {
            if c == b'\r' || c == b'\n' {
                if let Some(p) = parse_progress(&line) {
                    progress(p);
                }
                line.clear();
            } else {
                line.push(c as char);
            }
        }
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = child.wait().context("waiting for qemu-img")?;
    if !status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "qemu-img convert {} -> {} failed ({status}): {}",
            src.display(),
            dst.display(),
            err.trim()
        );
    }
    std::fs::rename(&tmp, dst)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dst.display()))?;
    progress(100.0);
    Ok(())
}

fn parse_progress(s: &str) -> Option<f64> {
    let s = s.trim();
    let inner = s.strip_prefix('(')?.split('/').next()?;
    inner.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_qemu_img_progress() {
        assert_eq!(super::parse_progress("    (12.50/100%)"), Some(12.5));
        assert_eq!(super::parse_progress("garbage"), None);
    }
}
