//! fstab / crypttab: names that change with the bus become UUID= (LABEL= without a UUID);
//! entries naming devices absent from these disks get `nofail` so boot does not stop on them.
use super::{Action, PlanInputs};
use crate::types::{Inspection, LinuxInfo, VolumeReport};

/// The bus-independent spec for a volume: UUID=, else LABEL=.
pub fn stable_spec(v: &VolumeReport) -> Option<String> {
    if let Some(u) = &v.uuid {
        return Some(format!("UUID={u}"));
    }
    v.label
        .as_ref()
        .map(|l| format!("LABEL={}", l.replace(' ', "\\040")))
}

/// The spec a bus-dependent fstab/crypttab entry gets: the stable spec of the volume it
/// resolves to. None when the entry is not bus dependent or its volume has no UUID or label.
pub fn stable_replacement(
    bus_dependent: bool,
    resolves_to: Option<&str>,
    ins: &Inspection,
) -> Option<String> {
    if !bus_dependent {
        return None;
    }
    let d = resolves_to?;
    ins.volumes
        .iter()
        .find(|v| v.device == d)
        .and_then(stable_spec)
}

/// Replaces field `idx` (0-based, whitespace separated) of a line, keeping its spacing.
fn replace_field(line: &str, idx: usize, new: &str) -> String {
    let mut out = String::new();
    let mut field = 0;
    let mut in_field = false;
    let mut replaced = false;
    for c in line.chars() {
        let ws = c.is_whitespace();
        if !ws && !in_field {
            in_field = true;
            if field == idx {
                out.push_str(new);
                replaced = true;
            }
        } else if ws && in_field {
            in_field = false;
            field += 1;
        }
        if !(in_field && field == idx) {
            out.push(c);
        }
    }
    if !replaced {
        return line.to_string();
    }
    out
}

/// fstab edit: `specs` maps line number -> new spec; `nofail` lists lines that get nofail.
pub fn edit_fstab(text: &str, specs: &[(usize, String)], nofail: &[usize]) -> String {
    let mut out = String::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let n = i + 1;
        let (body, nl) = line
            .strip_suffix('\n')
            .map(|b| (b, "\n"))
            .unwrap_or((line, ""));
        let mut l = body.to_string();
        if let Some((_, s)) = specs.iter().find(|(k, _)| *k == n) {
            l = replace_field(&l, 0, s);
        }
        if nofail.contains(&n) {
            let fields: Vec<&str> = l.split_whitespace().collect();
            match fields.get(3) {
                Some(opts) => {
                    let new = format!("{opts},nofail");
                    l = replace_field(&l, 3, &new);
                }
                None if fields.len() == 3 => l.push_str(" defaults,nofail"),
                None => {}
            }
        }
        out.push_str(&l);
        out.push_str(nl);
    }
    out
}

pub fn plan_fstab(
    l: &LinuxInfo,
    ins: &Inspection,
    inputs: &PlanInputs,
    notes: &mut Vec<String>,
) -> Vec<Action> {
    let mut actions = vec![];
    if let Some(text) = inputs.text("/etc/fstab") {
        let mut specs = vec![];
        let mut nofail = vec![];
        let mut why = vec![];
        for e in &l.fstab {
            if let Some(new) = stable_replacement(e.bus_dependent, e.resolves_to.as_deref(), ins) {
                why.push(format!("line {}: {} -> {new}", e.line, e.spec));
                specs.push((e.line, new));
                continue;
            }
            if !e.present && !e.nofail {
                nofail.push(e.line);
                why.push(format!(
                    "line {}: {} is not on these disks, mounted with nofail",
                    e.line, e.spec
                ));
                notes.push(format!(
                    "/etc/fstab line {}: {} ({}) names a device not on these disks",
                    e.line, e.spec, e.mountpoint
                ));
            }
        }
        if !specs.is_empty() || !nofail.is_empty() {
            let after = edit_fstab(text, &specs, &nofail);
            actions.push(Action::edit(
                "fstab",
                "/etc/fstab",
                Some(text),
                after,
                format!("device names that change on virtio: {}", why.join("; ")),
            ));
        }
    }
    if let Some(text) = inputs.text("/etc/crypttab") {
        let mut specs = vec![];
        let mut why = vec![];
        for e in &l.crypttab {
            if let Some(new) = stable_replacement(e.bus_dependent, e.resolves_to.as_deref(), ins) {
                why.push(format!("line {}: {} -> {new}", e.line, e.spec));
                // crypttab's device is its second field.
                specs.push((e.line, new));
            }
        }
        if !specs.is_empty() {
            let mut out = String::new();
            for (i, line) in text.split_inclusive('\n').enumerate() {
                match specs.iter().find(|(k, _)| *k == i + 1) {
                    Some((_, s)) => {
                        let (body, nl) = line
                            .strip_suffix('\n')
                            .map(|b| (b, "\n"))
                            .unwrap_or((line, ""));
                        out.push_str(&replace_field(body, 1, s));
                        out.push_str(nl);
                    }
                    None => out.push_str(line),
                }
            }
            actions.push(Action::edit(
                "fstab",
                "/etc/crypttab",
                Some(text),
                out,
                format!("device names that change on virtio: {}", why.join("; ")),
            ));
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_spec_keeping_spacing_and_comments() {
        let t = "# static\n/dev/sda1  /     ext4  errors=remount-ro 0 1\n/dev/sdb1\t/data\text4\tdefaults\t0 2\nproc /proc proc defaults 0 0\n";
        let out = edit_fstab(t, &[(2, "UUID=abc".into())], &[3]);
        assert_eq!(out, "# static\nUUID=abc  /     ext4  errors=remount-ro 0 1\n/dev/sdb1\t/data\text4\tdefaults,nofail\t0 2\nproc /proc proc defaults 0 0\n");
    }

    #[test]
    fn three_field_line_gets_options() {
        assert_eq!(
            edit_fstab("/dev/sdc1 /x ext4\n", &[], &[1]),
            "/dev/sdc1 /x ext4 defaults,nofail\n"
        );
    }
}
