//! Hypervisor guest tools (VMware, Hyper-V, Xen, VirtualBox, Parallels) only work on their old
//! platform and some fail or spin on KVM: their services are disabled offline (the enablement
//! links moved aside, so nothing starts them) and a one-shot first-boot job uninstalls them and
//! removes itself. Also SELinux: a relabel at next boot when files were changed.
use super::templates::render;
use super::{Action, Change, PlanInputs};
use crate::types::{GuestTool, LinuxInfo};

struct ToolSpec {
    name: &'static str,
    units: &'static [&'static str],
    sysv: &'static [&'static str],
    packages: &'static [&'static str],
    /// Vendor uninstaller (glob) for tarball installs, and its unattended arguments.
    uninstaller: Option<(&'static str, &'static str)>,
}

const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "open-vm-tools",
        units: &[
            "open-vm-tools.service",
            "vmtoolsd.service",
            "vgauthd.service",
            "vgauth.service",
            "run-vmblock\\x2dfuse.mount",
        ],
        sysv: &["open-vm-tools"],
        packages: &["open-vm-tools", "open-vm-tools-desktop"],
        uninstaller: None,
    },
    ToolSpec {
        name: "vmware-tools",
        units: &["vmware-tools.service", "vmware-tools-thinprint.service"],
        sysv: &["vmware-tools", "vmware-tools-thinprint"],
        packages: &[],
        uninstaller: Some(("/usr/bin/vmware-uninstall-tools.pl", "--default")),
    },
    ToolSpec {
        name: "hyperv-daemons",
        units: &[
            "hypervkvpd.service",
            "hypervvssd.service",
            "hypervfcopyd.service",
            "hv-kvp-daemon.service",
            "hv-vss-daemon.service",
            "hv-fcopy-daemon.service",
        ],
        sysv: &["hyperv-daemons"],
        packages: &["hyperv-daemons", "hypervkvpd", "hypervvssd", "hypervfcopyd"],
        uninstaller: None,
    },
    ToolSpec {
        name: "xe-guest-utilities",
        units: &["xe-linux-distribution.service", "xe-daemon.service"],
        sysv: &["xe-linux-distribution"],
        packages: &["xe-guest-utilities"],
        uninstaller: None,
    },
    ToolSpec {
        name: "virtualbox-additions",
        units: &["vboxadd.service", "vboxadd-service.service"],
        sysv: &["vboxadd", "vboxadd-service", "vboxadd-x11"],
        packages: &["virtualbox-guest-utils", "virtualbox-guest-x11"],
        uninstaller: Some(("/opt/VBoxGuestAdditions-*/uninstall.sh", "")),
    },
    ToolSpec {
        name: "parallels-tools",
        units: &["prltoolsd.service"],
        sysv: &["prltoolsd"],
        packages: &[],
        uninstaller: Some(("/usr/lib/parallels-tools/install", "--remove")),
    },
];

const WANTS_DIRS: &[&str] = &[
    "/etc/systemd/system/multi-user.target.wants",
    "/etc/systemd/system/graphical.target.wants",
    "/etc/systemd/system/default.target.wants",
    "/etc/systemd/system/sysinit.target.wants",
    "/etc/systemd/system/basic.target.wants",
];
const RC_DIRS: &[&str] = &[
    "/etc/rc2.d",
    "/etc/rc3.d",
    "/etc/rc4.d",
    "/etc/rc5.d",
    "/etc/rc.d/rc3.d",
    "/etc/rc.d/rc5.d",
    "/etc/init.d/rc3.d",
    "/etc/init.d/rc5.d",
];
const SERVICE: &str = "/etc/systemd/system/revirt-firstboot.service";
const SCRIPT: &str = "/usr/local/sbin/revirt-firstboot.sh";
const BACKUP: &str = "/var/lib/revirt/backup/disabled-services";

/// Directories whose listings the planner needs (enablement links).
pub fn wanted_dirs(l: &LinuxInfo) -> Vec<String> {
    if l.guest_tools.is_empty() {
        return vec![];
    }
    WANTS_DIRS
        .iter()
        .chain(RC_DIRS)
        .map(|s| s.to_string())
        .collect()
}

pub fn wanted_inputs(l: &LinuxInfo) -> Vec<String> {
    if l.guest_tools.is_empty() {
        return vec![];
    }
    vec![
        SERVICE.into(),
        "/lib/systemd/systemd".into(),
        "/usr/lib/systemd/systemd".into(),
    ]
}

/// rc link "S20vmware-tools" -> "vmware-tools".
fn sysv_name(link: &str) -> &str {
    let l = link
        .strip_prefix('S')
        .or_else(|| link.strip_prefix('K'))
        .unwrap_or(link);
    l.trim_start_matches(|c: char| c.is_ascii_digit())
}

/// Enablement links (systemd wants, SysV rc start links) of the known guest tools, with the
/// tool each one starts: what the planner moves aside. Pure.
pub fn enabled_links<'a>(l: &'a LinuxInfo, inputs: &PlanInputs) -> Vec<(&'a GuestTool, String)> {
    let mut v = vec![];
    for t in &l.guest_tools {
        let Some(spec) = TOOLS.iter().find(|s| s.name == t.name) else {
            continue;
        };
        for dir in WANTS_DIRS.iter().chain(RC_DIRS) {
            for name in inputs.dirs.get(*dir).into_iter().flatten() {
                let is_unit = WANTS_DIRS.contains(dir) && spec.units.contains(&name.as_str());
                let is_sysv = RC_DIRS.contains(dir)
                    && name.starts_with('S')
                    && spec.sysv.contains(&sysv_name(name));
                if is_unit || is_sysv {
                    v.push((t, format!("{dir}/{name}")));
                }
            }
        }
    }
    v
}

fn has_systemd(inputs: &PlanInputs) -> bool {
    inputs.existing.contains("/lib/systemd/systemd")
        || inputs.existing.contains("/usr/lib/systemd/systemd")
}

/// Known guest tools whose first-boot uninstall the planner queues (systemd guests where
/// revirt's first-boot unit is not there yet). Pure.
pub fn uninstall_to_queue<'a>(l: &'a LinuxInfo, inputs: &PlanInputs) -> Vec<&'a GuestTool> {
    if inputs.existing.contains(SERVICE) || !has_systemd(inputs) {
        return vec![];
    }
    l.guest_tools
        .iter()
        .filter(|t| TOOLS.iter().any(|s| s.name == t.name))
        .collect()
}

pub fn plan_tools(l: &LinuxInfo, inputs: &PlanInputs, notes: &mut Vec<String>) -> Vec<Action> {
    let mut actions = vec![];
    let mut steps = vec![];
    for (t, from) in enabled_links(l, inputs) {
        actions.push(Action {
            area: "guest-tools".into(),
            change: Change::Rename {
                to: format!("{BACKUP}{from}"),
                from,
            },
            reason: format!(
                "{} ({}) only works on the old hypervisor: do not start it on KVM",
                t.name, t.evidence
            ),
            diff: None,
        });
    }
    for t in &l.guest_tools {
        let Some(spec) = TOOLS.iter().find(|s| s.name == t.name) else {
            continue;
        };
        let mut ctx = tera::Context::new();
        ctx.insert("name", spec.name);
        steps.push(serde_json::json!({
            "name": spec.name,
            "packages": spec.packages,
            "uninstaller": spec.uninstaller.map(|u| u.0).unwrap_or(""),
            "uninstaller_args": spec.uninstaller.map(|u| u.1).unwrap_or(""),
        }));
    }
    if !steps.is_empty() && !inputs.existing.contains(SERVICE) {
        if !has_systemd(inputs) {
            notes.push(
                "guest tools found but no systemd: their uninstall is not queued for first boot"
                    .into(),
            );
            return actions;
        }
        let names: Vec<&str> = steps.iter().filter_map(|s| s["name"].as_str()).collect();
        let mut ctx = tera::Context::new();
        ctx.insert("tools", &names);
        ctx.insert("steps", &steps);
        let (Ok(unit), Ok(script)) = (
            render("firstboot/revirt-firstboot.service.tera", &ctx),
            render("firstboot/revirt-firstboot.sh.tera", &ctx),
        ) else {
            notes.push("first-boot templates failed to render".into());
            return actions;
        };
        let why = format!(
            "uninstall {} once at the first boot on KVM",
            names.join(", ")
        );
        actions.push(Action::edit(
            "guest-tools",
            SCRIPT,
            None,
            script,
            why.clone(),
        ));
        if let Some(Change::WriteFile { mode, .. }) = actions.last_mut().map(|a| &mut a.change) {
            *mode = 0o755;
        }
        actions.push(Action::edit(
            "guest-tools",
            SERVICE,
            None,
            unit,
            why.clone(),
        ));
        actions.push(Action {
            area: "guest-tools".into(),
            change: Change::Symlink {
                path: "/etc/systemd/system/multi-user.target.wants/revirt-firstboot.service".into(),
                target: SERVICE.into(),
            },
            reason: why,
            diff: None,
        });
    }
    actions
}

/// SELinux relabels files revirt wrote (they carry no labels) at the next boot.
pub fn plan_selinux(l: &LinuxInfo, inputs: &PlanInputs, changed: bool) -> Vec<Action> {
    let active = matches!(l.selinux.as_deref(), Some("enforcing") | Some("permissive"));
    if !active || !changed || inputs.existing.contains("/.autorelabel") {
        return vec![];
    }
    vec![Action::edit(
        "selinux",
        "/.autorelabel",
        None,
        String::new(),
        format!(
            "SELinux is {}: files written offline have no labels; relabel at next boot",
            l.selinux.as_deref().unwrap_or("?")
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::GuestTool;

    #[test]
    fn disables_links_and_queues_one_uninstall_job() {
        let l = LinuxInfo {
            guest_tools: vec![GuestTool {
                name: "open-vm-tools".into(),
                evidence: "/usr/bin/vmtoolsd".into(),
            }],
            selinux: Some("enforcing".into()),
            ..Default::default()
        };
        let mut inp = PlanInputs::default();
        inp.dirs.insert(
            "/etc/systemd/system/multi-user.target.wants".into(),
            vec!["open-vm-tools.service".into(), "sshd.service".into()],
        );
        inp.dirs.insert(
            "/etc/rc3.d".into(),
            vec!["S20open-vm-tools".into(), "S10network".into()],
        );
        inp.existing.insert("/usr/lib/systemd/systemd".into());
        let mut notes = vec![];
        let a = plan_tools(&l, &inp, &mut notes);
        let renamed: Vec<&str> = a
            .iter()
            .filter(|x| matches!(x.change, Change::Rename { .. }))
            .map(|x| x.target())
            .collect();
        assert_eq!(
            renamed,
            vec![
                "/etc/systemd/system/multi-user.target.wants/open-vm-tools.service",
                "/etc/rc3.d/S20open-vm-tools"
            ]
        );
        let Change::WriteFile { content, mode, .. } =
            &a.iter().find(|x| x.target() == SCRIPT).unwrap().change
        else {
            panic!()
        };
        assert_eq!(*mode, 0o755);
        assert!(
            content.contains("remove_pkgs open-vm-tools open-vm-tools-desktop"),
            "{content}"
        );
        assert!(content.contains("rm -f /usr/local/sbin/revirt-firstboot.sh"));
        // Already queued: only nothing more.
        inp.existing.insert(SERVICE.into());
        inp.dirs.clear();
        assert!(plan_tools(&l, &inp, &mut notes).is_empty());
        assert_eq!(plan_selinux(&l, &PlanInputs::default(), true).len(), 1);
        assert!(plan_selinux(&l, &PlanInputs::default(), false).is_empty());
    }
}
