//! Human-readable summaries of the JSON records.
use crate::types::Inspection;
use std::fmt::Write;

fn gib(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
}

/// A short, readable summary of an inspection (the `--json` output has everything).
/// What a crash-consistent volume needed before it could be read (issue #7).
fn recovery_note(v: &crate::types::VolumeReport) -> Option<String> {
    if let Some(j) = &v.journal_recovery {
        return Some(match &j.error {
            Some(e) => format!("journal needs recovery, not replayed: {e}"),
            None => "journal replayed in memory (needs_recovery)".into(),
        });
    }
    let l = v.xfs_log.as_ref()?;
    match (&l.recovered_into, &l.error) {
        (_, Some(e)) => Some(format!("XFS log: {e}")),
        (Some(into), None) if into == "output" => {
            Some("dirty XFS log, recovered into the output before any edit".into())
        }
        (Some(_), None) => {
            Some("dirty XFS log, read through a throwaway recovery (the input is unchanged)".into())
        }
        (None, None) if l.needs_recovery => Some("dirty XFS log, not recovered".into()),
        _ => None,
    }
}

pub fn summary(ins: &Inspection) -> String {
    let mut s = String::new();
    for d in &ins.disks {
        let _ = writeln!(
            s,
            "disk {} = {} ({}, {} virtual, table {}{})",
            d.device,
            d.image.path,
            d.image.format.as_str(),
            gib(d.image.virtual_size),
            d.partition_table,
            if d.gpt_backup_used {
                ", backup GPT header used"
            } else {
                ""
            }
        );
    }
    for v in &ins.volumes {
        let _ = writeln!(
            s,
            "  {:<28} {:>10}  {:<12} {:<38} reader={}",
            v.device,
            gib(v.size),
            v.fstype.as_deref().unwrap_or("-"),
            v.uuid.as_deref().unwrap_or(""),
            v.reader
        );
        if let Some(note) = recovery_note(v) {
            let _ = writeln!(s, "  {:<28} {note}", "");
        }
    }
    for os in &ins.operating_systems {
        let _ = writeln!(
            s,
            "\n{} on {} ({})",
            os.kind,
            os.root.device,
            os.root.fstype.as_deref().unwrap_or("?")
        );
        if let Some(l) = &os.linux {
            let _ = writeln!(
                s,
                "  distro     {} {} ({} family), arch {}",
                l.distro,
                l.version,
                l.family,
                l.arch.as_deref().unwrap_or("?")
            );
            let _ = writeln!(s, "  hostname   {}", l.hostname.as_deref().unwrap_or("-"));
            let _ = writeln!(
                s,
                "  bootloader {} ({}), initramfs tool {}",
                l.bootloader.kind, l.bootloader.firmware, l.initramfs_tool
            );
            if let Some(e) = l
                .bootloader
                .default_entry
                .and_then(|i| l.bootloader.entries.get(i))
            {
                let _ = writeln!(
                    s,
                    "  default    {} root={}",
                    e.title,
                    e.root.as_deref().unwrap_or("?")
                );
            }
            for k in &l.kernels {
                let virtio: Vec<String> = k
                    .drivers
                    .iter()
                    .map(|(d, st)| {
                        format!(
                            "{d}:{}",
                            if st.builtin {
                                "builtin"
                            } else if st.in_initramfs {
                                "initramfs"
                            } else if st.module_on_disk {
                                "disk-only"
                            } else {
                                "missing"
                            }
                        )
                    })
                    .collect();
                let _ = writeln!(
                    s,
                    "  kernel     {} initramfs={} [{}]",
                    k.version,
                    k.initramfs.as_deref().unwrap_or("-"),
                    virtio.join(" ")
                );
            }
            for f in &l.fstab {
                let mark = if !f.present {
                    " MISSING"
                } else if f.bus_dependent {
                    " bus-dependent"
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    "  fstab:{:<3} {:<44} {:<12} -> {}{}",
                    f.line,
                    f.spec,
                    f.mountpoint,
                    f.resolves_to.as_deref().unwrap_or("?"),
                    mark
                );
            }
            for c in &l.network.configs {
                for i in &c.interfaces {
                    let _ = writeln!(
                        s,
                        "  network    {} {} {} {}{}",
                        c.flavor,
                        i.name.as_deref().unwrap_or("*"),
                        if i.dhcp {
                            "dhcp".to_string()
                        } else {
                            i.addresses.join(",")
                        },
                        c.file,
                        i.mac
                            .as_ref()
                            .map(|m| format!(" mac={m}"))
                            .unwrap_or_default()
                    );
                }
            }
            for r in &l.network.persistent_net_rules {
                let _ = writeln!(
                    s,
                    "  net-rule   {} pins {} to {}",
                    r.file,
                    r.name,
                    r.mac.as_deref().unwrap_or("?")
                );
            }
            for t in &l.guest_tools {
                let _ = writeln!(s, "  tools      {} ({})", t.name, t.evidence);
            }
        }
        if let Some(w) = &os.windows {
            let _ = writeln!(
                s,
                "  product    {} (version {}, build {}), arch {}",
                w.product_name,
                w.version,
                w.build.as_deref().unwrap_or("?"),
                w.arch
            );
            let _ = writeln!(s, "  hostname   {}", w.hostname.as_deref().unwrap_or("-"));
        }
        let _ = writeln!(
            s,
            "  osinfo     {} (virt-inspector distro {})",
            os.identity.osinfo, os.identity.distro
        );
    }
    if ins.operating_systems.is_empty() {
        let _ = writeln!(s, "\nno operating system found");
    }
    s
}

/// The plan as a readable list with diffs.
pub fn plan_summary(p: &crate::plan::RepairPlan) -> String {
    let mut s = String::new();
    for r in &p.refusals {
        let _ = writeln!(s, "REFUSED: {r}");
    }
    if p.refusals.is_empty() && p.actions.is_empty() {
        let _ = writeln!(s, "nothing to do: the guest already looks ready for virtio");
    }
    for (i, a) in p.actions.iter().enumerate() {
        let op = a.op();
        let _ = writeln!(
            s,
            "{:>2}. [{}] {} {}\n    why: {}",
            i + 1,
            a.area,
            op,
            a.target(),
            a.reason
        );
        if let crate::plan::Change::AppendInitramfs { modules, extra, .. } = &a.change {
            let _ = writeln!(
                s,
                "    adds {} module file(s) and {}",
                modules.len(),
                extra.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        if let crate::plan::Change::RegSet { value, before, .. } = &a.change {
            let _ = writeln!(
                s,
                "    {}",
                crate::plan::windows::RegValueSpec::change(before.as_ref(), value)
            );
        }
        if let Some(d) = &a.diff {
            for l in d.lines() {
                let _ = writeln!(s, "    {l}");
            }
        }
    }
    for n in &p.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

/// Verify findings, one per line with file and line.
pub fn verdict_summary(v: &crate::verify::Verdict) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}",
        if v.ready {
            "READY: boots on virtio"
        } else {
            "NOT READY"
        }
    );
    for f in &v.findings {
        let loc = match (&f.file, f.line) {
            (Some(file), Some(l)) => format!("{file}:{l}"),
            (Some(file), None) => file.clone(),
            _ => "-".into(),
        };
        let _ = writeln!(s, "  [{}] {loc}: {}", f.check, f.message);
    }
    s
}

/// Short summary of a repair run.
pub fn repair_summary(r: &crate::repair::RepairReport) -> String {
    let mut s = String::new();
    for x in &r.refusals {
        let _ = writeln!(s, "REFUSED (nothing written): {x}");
    }
    for a in &r.actions {
        let _ = writeln!(s, "  [{}] {} {}", a.area, a.op, a.target);
        if let Some(after) = &a.value_after {
            let _ = writeln!(
                s,
                "      {}",
                crate::plan::windows::RegValueSpec::change(a.value_before.as_ref(), after)
            );
        }
    }
    if let Some(v) = &r.verify {
        s.push_str(&verdict_summary(v));
    }
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    let _ = writeln!(s, "run {} readiness: {:?}", r.run_id, r.readiness);
    s
}
