//! Initramfs planning: every kernel whose initramfs lacks the virtio storage/PCI drivers (and has
//! them as modules) gets them, offline by appending a cpio segment (no guest binary runs), or
//! by the guest's own tool inside the appliance; the persistent config is written too, so the
//! next kernel update keeps virtio.
use super::templates::render;
use super::{Action, BlockBus, Change, InitramfsMode, PlanInputs, PlanOptions};
use crate::inspect::linux::initramfs::module_name;
use crate::types::{KernelInfo, LinuxInfo};
use std::collections::{BTreeMap, BTreeSet};

/// Drivers the guest needs at boot on the chosen bus, in load order.
pub fn boot_drivers(bus: BlockBus) -> Vec<&'static str> {
    let disk = match bus {
        BlockBus::VirtioBlk => "virtio_blk",
        BlockBus::VirtioScsi => "virtio_scsi",
    };
    // Both storage drivers are always added so the disk can move between buses later.
    let mut v = vec![
        "virtio_pci",
        disk,
        if disk == "virtio_blk" {
            "virtio_scsi"
        } else {
            "virtio_blk"
        },
        "virtio_net",
    ];
    v.dedup();
    v
}

pub fn wanted_inputs(l: &LinuxInfo) -> Vec<String> {
    let mut v = vec![
        "/etc/initramfs-tools/modules".to_string(),
        "/etc/dracut.conf.d/90-revirt-virtio.conf".to_string(),
    ];
    for k in &l.kernels {
        if let Some(d) = &k.modules_dir {
            v.push(format!("{d}/modules.dep"));
        }
    }
    v
}

/// Whether `k` lacks a driver needed to boot on `bus`.
pub fn kernel_needs_virtio(k: &KernelInfo, bus: BlockBus) -> bool {
    let disk = if bus == BlockBus::VirtioBlk {
        "virtio_blk"
    } else {
        "virtio_scsi"
    };
    ["virtio_pci", disk]
        .iter()
        .any(|d| !k.drivers.get(*d).is_some_and(|s| s.in_initramfs))
}

/// The drivers of [`boot_drivers`] that `k` has as modules on disk (not built in): what an
/// initramfs repair adds.
pub fn modules_to_add(k: &KernelInfo, bus: BlockBus) -> Vec<&'static str> {
    boot_drivers(bus)
        .into_iter()
        .filter(|d| {
            !k.drivers.get(*d).is_some_and(|s| s.builtin)
                && k.drivers.get(*d).is_some_and(|s| s.module_on_disk)
        })
        .collect()
}

/// Whether the initramfs planner acts on `k`: it lacks a boot driver, has an initramfs and a
/// modules directory, and the drivers are modules on disk. Verify flags the same kernels, so a
/// kernel the repair cannot fix (only noted) does not keep a repaired guest "not ready".
pub fn kernel_repairable(k: &KernelInfo, bus: BlockBus) -> bool {
    kernel_needs_virtio(k, bus)
        && k.initramfs.is_some()
        && k.modules_dir.is_some()
        && !modules_to_add(k, bus).is_empty()
}

/// Resolves `names` and all their dependencies to paths relative to the modules dir, from
/// modules.dep text. Modules missing from modules.dep (built in) are skipped.
pub fn module_closure(dep: &str, names: &[&str]) -> Vec<String> {
    let mut by_name: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in dep.lines() {
        let Some((m, deps)) = line.split_once(':') else {
            continue;
        };
        if let Some(n) = module_name(m) {
            by_name.insert(
                n,
                (
                    m.trim().to_string(),
                    deps.split_whitespace().map(String::from).collect(),
                ),
            );
        }
    }
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut seen = BTreeSet::new();
    while let Some(n) = todo.pop() {
        if !seen.insert(n.clone()) {
            continue;
        }
        if let Some((path, deps)) = by_name.get(&n) {
            out.insert(path.clone());
            for d in deps {
                if let Some(dn) = module_name(d) {
                    todo.push(dn);
                }
            }
        }
    }
    out.into_iter().collect()
}

fn ctx_modules(modules: &[&str], original: Option<&str>) -> tera::Context {
    let mut c = tera::Context::new();
    c.insert("modules", modules);
    c.insert("original", original.unwrap_or(""));
    c
}

pub fn plan_initramfs(
    l: &LinuxInfo,
    inputs: &PlanInputs,
    opts: &PlanOptions,
    notes: &mut Vec<String>,
) -> Vec<Action> {
    let mut actions = vec![];
    // Guest-tool runs go last: they must see the persistent config written below.
    let mut tool_runs: Vec<Action> = vec![];
    let drivers = boot_drivers(opts.block);
    let mut any = false;
    for k in &l.kernels {
        if !kernel_needs_virtio(k, opts.block) {
            continue;
        }
        let Some(initrd) = &k.initramfs else {
            notes.push(format!(
                "kernel {}: no initramfs found; cannot add virtio drivers",
                k.version
            ));
            continue;
        };
        let missing = modules_to_add(k, opts.block);
        let Some(mdir) = &k.modules_dir else {
            notes.push(format!(
                "kernel {}: no /lib/modules/{} directory; cannot add virtio drivers",
                k.version, k.version
            ));
            continue;
        };
        let dep = inputs.text(&format!("{mdir}/modules.dep")).unwrap_or("");
        let mods = module_closure(dep, &missing);
        if mods.is_empty() {
            notes.push(format!(
                "kernel {}: virtio modules not found in {mdir}/modules.dep",
                k.version
            ));
            continue;
        }
        any = true;
        let offline_possible = k.initramfs_error.is_none()
            && matches!(
                l.initramfs_tool.as_str(),
                "initramfs-tools" | "dracut" | "mkinitrd"
            );
        let use_tool = opts.initramfs == InitramfsMode::GuestTool
            || (opts.initramfs == InitramfsMode::Auto && !offline_possible);
        if use_tool {
            let command = match l.initramfs_tool.as_str() {
                "initramfs-tools" => vec![
                    "update-initramfs".into(),
                    "-u".into(),
                    "-k".into(),
                    k.version.clone(),
                ],
                "dracut" => vec![
                    "dracut".into(),
                    "-f".into(),
                    "--add-drivers".into(),
                    missing.join(" "),
                    initrd.clone(),
                    k.version.clone(),
                ],
                _ => vec![
                    "mkinitrd".into(),
                    "-f".into(),
                    initrd.clone(),
                    k.version.clone(),
                ],
            };
            tool_runs.push(Action {
                area: "initramfs".into(),
                change: Change::RunInitramfsTool {
                    kernel: k.version.clone(),
                    command,
                },
                reason: format!(
                    "{initrd} lacks {} (initramfs mode {:?})",
                    missing.join(", "),
                    opts.initramfs
                ),
                diff: None,
            });
            continue;
        }
        let mut extra = BTreeMap::new();
        let mut ctx_err = |e: tera::Error| notes.push(format!("template error: {e}"));
        match l.initramfs_tool.as_str() {
            "initramfs-tools" => {
                // initramfs-tools' init loads /conf/modules at init-top: extend the original list.
                match render(
                    "initramfs/initramfs-tools-conf-modules.tera",
                    &ctx_modules(
                        &drivers,
                        k.initramfs_texts.get("conf/modules").map(String::as_str),
                    ),
                ) {
                    Ok(t) => {
                        extra.insert("conf/modules".to_string(), t);
                    }
                    Err(e) => ctx_err(e),
                }
            }
            _ => {
                // dracut: rd.driver.pre from etc/cmdline.d, and modules-load.d for systemd initrds.
                if let Ok(t) = render(
                    "initramfs/dracut-cmdline.conf.tera",
                    &ctx_modules(&drivers, None),
                ) {
                    extra.insert("etc/cmdline.d/90-revirt-virtio.conf".to_string(), t);
                }
                if let Ok(t) = render(
                    "initramfs/modules-load.conf.tera",
                    &ctx_modules(&drivers, None),
                ) {
                    extra.insert("etc/modules-load.d/90-revirt-virtio.conf".to_string(), t);
                }
            }
        }
        actions.push(Action {
            area: "initramfs".into(),
            change: Change::AppendInitramfs {
                path: initrd.clone(),
                kernel: k.version.clone(),
                modules_dir_in_initramfs: k.initramfs_modules_dir.clone().unwrap_or_else(|| format!("lib/modules/{}", k.version)),
                modules: mods.iter().map(|m| format!("{mdir}/{m}")).collect(),
                extra,
            },
            reason: format!(
                "{initrd} lacks {} (modules on disk, not built in); appending them with their dependencies offline",
                missing.join(", ")
            ),
            diff: None,
        });
    }
    if any {
        // Keep virtio in every future initramfs.
        match l.initramfs_tool.as_str() {
            "initramfs-tools" => {
                let path = "/etc/initramfs-tools/modules";
                let before = inputs.text(path);
                let have: BTreeSet<&str> = before
                    .unwrap_or("")
                    .lines()
                    .map(|x| x.split_whitespace().next().unwrap_or(""))
                    .collect();
                let add: Vec<&str> = drivers
                    .iter()
                    .copied()
                    .filter(|d| !have.contains(d))
                    .collect();
                if !add.is_empty() {
                    if let Ok(after) = render(
                        "initramfs/initramfs-tools-modules.tera",
                        &ctx_modules(&add, before),
                    ) {
                        actions.push(Action::edit(
                            "persist-drivers",
                            path,
                            before,
                            after,
                            "future initramfs builds keep the virtio drivers".into(),
                        ));
                    }
                }
            }
            "dracut" | "mkinitrd" => {
                let path = "/etc/dracut.conf.d/90-revirt-virtio.conf";
                if let Ok(after) = render(
                    "initramfs/dracut-virtio.conf.tera",
                    &ctx_modules(&drivers, None),
                ) {
                    if inputs.text(path) != Some(after.as_str()) {
                        actions.push(Action::edit(
                            "persist-drivers",
                            path,
                            inputs.text(path),
                            after,
                            "future dracut builds keep the virtio drivers, hostonly or not".into(),
                        ));
                    }
                }
            }
            _ => {
                notes.push("unknown initramfs tool: future initramfs builds may drop virtio".into())
            }
        }
    }
    actions.extend(tool_runs);
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n\
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n\
kernel/drivers/virtio/virtio_ring.ko:\nkernel/drivers/virtio/virtio.ko:\nkernel/drivers/virtio/virtio_pci_modern_dev.ko:\nkernel/drivers/virtio/virtio_pci_legacy_dev.ko:\n\
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n\
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\nkernel/net/core/failover.ko:\n";

    #[test]
    fn closure_follows_dependencies() {
        let m = module_closure(DEP, &["virtio_pci", "virtio_blk", "virtio_net"]);
        assert_eq!(m.len(), 9, "{m:?}");
        assert!(m.contains(&"kernel/net/core/failover.ko".to_string()));
        assert!(
            module_closure(DEP, &["virtio_scsi"]).is_empty(),
            "not in modules.dep = built in or absent"
        );
    }

    #[test]
    fn conf_modules_extends_the_original() {
        let t = render(
            "initramfs/initramfs-tools-conf-modules.tera",
            &ctx_modules(&["virtio_pci", "virtio_blk"], Some("ahci\nsd_mod")),
        )
        .unwrap();
        assert_eq!(
            t,
            "ahci\nsd_mod\n# Added by revirt: virtio drivers for KVM\nvirtio_pci\nvirtio_blk\n"
        );
    }
}
