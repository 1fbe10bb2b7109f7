//! `revirt inspect --json` on every skeleton guest: (a) fact by fact against the recipe's
//! `<name>.expect.json` (facts the generator derived from the recipe, never from revirt), and
//! (b) as a whole against tests/golden/inspect/<name>.json (`REVIRT_BLESS=1` rewrites them).
mod golden;

use serde_json::Value;
use std::collections::BTreeMap;

/// Collects every mismatch so one run shows all of a guest's problems.
#[derive(Default)]
struct Checks {
    errs: Vec<String>,
}

impl Checks {
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, actual: T, expected: T) {
        if actual != expected {
            self.errs
                .push(format!("{what}: got {actual:?}, recipe says {expected:?}"));
        }
    }
    fn ok(&mut self, what: &str, cond: bool) {
        if !cond {
            self.errs.push(what.to_string());
        }
    }
    fn finish(self, name: &str) {
        assert!(
            self.errs.is_empty(),
            "{name}: {} inspection fact(s) differ from the recipe:\n  {}",
            self.errs.len(),
            self.errs.join("\n  ")
        );
    }
}

fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// How often the value appears in the text as a whole token (192.168.50.1 is not in .12).
fn mentions(text: &str, value: &str) -> usize {
    let t = text.to_ascii_lowercase();
    let v = value.to_ascii_lowercase();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == ':';
    t.match_indices(&v)
        .filter(|(i, _)| {
            let i = *i;
            let before = t[..i].chars().next_back();
            let rest = &t[i + v.len()..];
            // "1.2.3.4." ending a sentence is fine; "1.2.3.45" or "1.2.3.4.5" is another value.
            let continues = rest.starts_with(|c: char| c.is_ascii_alphanumeric())
                || rest.len() > 1
                    && rest.starts_with(['.', ':'])
                    && rest[1..].starts_with(|c: char| c.is_ascii_alphanumeric());
            !before.is_some_and(word) && !continues
        })
        .count()
}

/// Whether a device spec changes with the disk bus or controller.
fn bus_dependent(spec: &str) -> bool {
    let kernel_name = ["/dev/sd", "/dev/hd", "/dev/vd", "/dev/xvd", "/dev/nvme"]
        .iter()
        .any(|p| spec.starts_with(p));
    let by_id = spec
        .strip_prefix("/dev/disk/by-id/")
        .is_some_and(|t| !t.starts_with("dm-"));
    kernel_name || by_id || spec.starts_with("/dev/disk/by-path/")
}

/// Recipe volume id -> device name revirt reports (/dev/sdaN for partitions, whatever the
/// guest calls its disk; /dev/mapper/VG-LV for LVs).
fn device_map(exp: &Value) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for p in exp["disk"]["partitions"].as_array().into_iter().flatten() {
        if let (Some(id), Some(n)) = (s(&p["id"]), p["number"].as_u64()) {
            m.insert(id.to_string(), format!("/dev/sda{n}"));
        }
    }
    for f in exp["filesystems"].as_array().into_iter().flatten() {
        if let (Some(id), Some(mapper)) = (s(&f["id"]), s(&f["mapper"])) {
            m.insert(id.to_string(), mapper.to_string());
        }
    }
    m
}

/// The guest's own kernel name for a partition (/dev/vda5) -> revirt's (/dev/sda5).
fn guest_dev_to_report(exp: &Value, spec: &str) -> Option<String> {
    let gd = s(&exp["disk"]["guest_dev"])?;
    let n = spec.strip_prefix(&format!("/dev/{gd}"))?;
    Some(format!("/dev/sda{n}"))
}

fn check_guest(name: &str) {
    let exp = golden::expect(name);
    let img = golden::image(name);
    let (code, out, err) =
        golden::revirt(&["inspect".as_ref(), "--json".as_ref(), img.as_os_str()]);
    assert_eq!(code, 0, "{name}: revirt inspect exit {code}: {err}");
    let ins: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{name}: bad JSON: {e}"));
    let mut c = Checks::default();
    check_facts(&mut c, &exp, &ins);
    c.finish(name);
    let mut norm = ins;
    golden::normalise(&mut norm);
    golden::check_golden("inspect", name, &norm);
}

fn check_facts(c: &mut Checks, exp: &Value, ins: &Value) {
    c.eq(
        "appliance_used",
        ins["appliance_used"].as_bool(),
        Some(false),
    );
    c.eq("warnings", strs(&ins["warnings"]), vec![]);
    let devs = device_map(exp);

    // Disk and partitions.
    let disk = &ins["disks"][0];
    let ed = &exp["disk"];
    c.eq("disks", ins["disks"].as_array().map(Vec::len), Some(1));
    c.eq(
        "image format",
        s(&disk["image"]["format"]),
        s(&ed["format"]),
    );
    c.eq(
        "virtual size",
        disk["image"]["virtual_size"].as_u64(),
        ed["virtual_size"].as_u64(),
    );
    c.eq(
        "partition table",
        s(&disk["partition_table"]),
        s(&ed["table"]),
    );
    let parts = disk["partitions"].as_array().cloned().unwrap_or_default();
    let eparts = ed["partitions"].as_array().cloned().unwrap_or_default();
    c.eq("partition count", parts.len(), eparts.len());
    for ep in &eparts {
        let n = ep["number"].as_u64();
        let Some(p) = parts.iter().find(|p| p["number"].as_u64() == n) else {
            c.errs.push(format!("partition {n:?} missing"));
            continue;
        };
        let w = format!("partition {}", n.unwrap_or(0));
        c.eq(
            &format!("{w} start"),
            p["start"].as_u64(),
            ep["start"].as_u64(),
        );
        c.eq(
            &format!("{w} size"),
            p["size"].as_u64(),
            ep["size"].as_u64(),
        );
        // MBR type bytes: "05" and "5" are the same byte.
        let ty = |v: &Value| {
            let t = s(v).unwrap_or("").to_ascii_lowercase();
            u8::from_str_radix(&t, 16)
                .map(|b| format!("{b:02x}"))
                .unwrap_or(t)
        };
        c.eq(&format!("{w} type"), ty(&p["type_id"]), ty(&ep["ptype"]));
        c.eq(
            &format!("{w} bootable"),
            p["bootable"].as_bool(),
            ep["bootable"].as_bool(),
        );
        c.eq(
            &format!("{w} logical"),
            p["logical"].as_bool(),
            ep["logical"].as_bool(),
        );
        c.eq(
            &format!("{w} partuuid"),
            s(&p["part_uuid"]).map(str::to_ascii_lowercase),
            s(&ep["partuuid"]).map(str::to_ascii_lowercase),
        );
        if !ep["name"].is_null() {
            c.eq(&format!("{w} name"), s(&p["name"]), s(&ep["name"]));
        }
    }

    // Filesystems: type, UUID, label, size.
    let vols = ins["volumes"].as_array().cloned().unwrap_or_default();
    for f in exp["filesystems"].as_array().into_iter().flatten() {
        let id = s(&f["id"]).unwrap_or("?");
        let Some(dev) = devs.get(id) else {
            c.errs
                .push(format!("filesystem {id}: no device in the recipe"));
            continue;
        };
        let Some(v) = vols.iter().find(|v| s(&v["device"]) == Some(dev)) else {
            c.errs.push(format!("filesystem {id}: no volume {dev}"));
            continue;
        };
        let w = format!("volume {dev}");
        c.eq(&format!("{w} fstype"), s(&v["fstype"]), s(&f["fs"]));
        c.eq(
            &format!("{w} uuid"),
            s(&v["uuid"]).map(str::to_ascii_lowercase),
            s(&f["uuid"]).map(str::to_ascii_lowercase),
        );
        c.eq(&format!("{w} label"), s(&v["label"]), s(&f["label"]));
        c.eq(&format!("{w} size"), v["size"].as_u64(), f["size"].as_u64());
        let reader = if ["ext4", "xfs", "vfat"].contains(&s(&f["fs"]).unwrap_or("")) {
            "pure"
        } else {
            "none"
        };
        c.eq(&format!("{w} reader"), s(&v["reader"]), Some(reader));
    }

    // LVM.
    let vgs = ins["volume_groups"].as_array().cloned().unwrap_or_default();
    let elvm = exp["lvm"].as_array().cloned().unwrap_or_default();
    c.eq("volume group count", vgs.len(), elvm.len());
    for evg in &elvm {
        let vgname = s(&evg["vg"]).unwrap_or("?");
        let Some(vg) = vgs.iter().find(|g| s(&g["name"]) == Some(vgname)) else {
            c.errs.push(format!("VG {vgname} missing"));
            continue;
        };
        c.eq(
            &format!("VG {vgname} uuid"),
            s(&vg["uuid"]),
            s(&evg["uuid"]),
        );
        let pv = s(&evg["pv"]["partition"])
            .and_then(|p| devs.get(p))
            .cloned();
        c.eq(
            &format!("VG {vgname} pvs"),
            strs(&vg["pvs"]),
            pv.into_iter().collect(),
        );
        c.eq(
            &format!("VG {vgname} missing pvs"),
            strs(&vg["missing_pvs"]),
            vec![],
        );
        let lvs = vg["lvs"].as_array().cloned().unwrap_or_default();
        c.eq(
            &format!("VG {vgname} LV count"),
            lvs.len(),
            evg["lvs"].as_array().map_or(0, Vec::len),
        );
        for elv in evg["lvs"].as_array().into_iter().flatten() {
            let lvname = s(&elv["name"]).unwrap_or("?");
            let Some(lv) = lvs.iter().find(|l| s(&l["name"]) == Some(lvname)) else {
                c.errs.push(format!("LV {vgname}/{lvname} missing"));
                continue;
            };
            let mapper = format!(
                "/dev/mapper/{}-{}",
                vgname.replace('-', "--"),
                lvname.replace('-', "--")
            );
            c.eq(
                &format!("LV {lvname} device"),
                s(&lv["device"]),
                Some(mapper.as_str()),
            );
            c.eq(
                &format!("LV {lvname} size"),
                lv["size"].as_u64(),
                elv["size"].as_u64(),
            );
            c.eq(
                &format!("LV {lvname} pure"),
                lv["pure"].as_bool(),
                Some(true),
            );
            c.eq(
                &format!("LV {lvname} segments"),
                strs(&lv["segment_types"]),
                vec!["linear".to_string()],
            );
        }
    }

    // The OS.
    let oses = ins["operating_systems"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    c.eq("operating systems", oses.len(), 1);
    let Some(os) = oses.first() else { return };
    c.eq("os kind", s(&os["kind"]), Some("linux"));
    let root_id = exp["filesystems"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| s(&f["mount"]) == Some("/"))
        .and_then(|f| s(&f["id"]));
    c.eq(
        "root device",
        s(&os["root"]["device"]),
        root_id.and_then(|i| devs.get(i)).map(String::as_str),
    );
    let l = &os["linux"];
    let osr = &exp["os_release"];
    c.eq("distro", s(&l["distro"]), s(&osr["ID"]));
    c.eq("version", s(&l["version"]), s(&osr["VERSION_ID"]));
    c.eq(
        "product name",
        s(&l["product_name"]),
        s(&osr["PRETTY_NAME"]),
    );
    let family = match s(&exp["family"]) {
        Some("fedora") => Some("rhel"),
        f => f,
    };
    c.eq("family", s(&l["family"]), family);
    c.eq("arch", s(&l["arch"]), s(&exp["arch"]));
    c.eq("hostname", s(&l["hostname"]), s(&exp["hostname"]));
    c.eq("selinux", s(&l["selinux"]), s(&exp["selinux"]));
    c.eq("linux warnings", strs(&l["warnings"]), vec![]);
    let tool = if family == Some("debian") {
        "initramfs-tools"
    } else {
        "dracut"
    };
    c.eq("initramfs tool", s(&l["initramfs_tool"]), Some(tool));

    // Mounts: every recipe filesystem with a mountpoint is mounted from its device.
    for f in exp["filesystems"].as_array().into_iter().flatten() {
        if let (Some(mp), Some(id)) = (s(&f["mount"]), s(&f["id"])) {
            c.eq(
                &format!("mount {mp}"),
                s(&l["mounts"][mp]),
                devs.get(id).map(String::as_str),
            );
        }
    }

    check_fstab(c, exp, l, &devs);
    check_kernels(c, exp, l);
    check_bootloader(c, exp, l);
    check_network(c, exp, l);

    // Guest tools: hypervisor tools are reported by name; cloud-init has its own flag; the
    // qemu guest agent is KVM's own and is not a tool to disable.
    let tools: Vec<String> = l["guest_tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| s(&t["name"]).map(String::from))
        .collect();
    let mut etools = vec![];
    let mut cloud_init = false;
    for t in exp["tools"].as_array().into_iter().flatten() {
        match s(&t["name"]).unwrap_or("?") {
            "cloud-init" => cloud_init = true,
            "qemu-guest-agent" => {}
            "virtualbox" => etools.push("virtualbox-additions".to_string()),
            other => etools.push(other.to_string()),
        }
    }
    let mut sorted = tools.clone();
    sorted.sort();
    etools.sort();
    c.eq("guest tools", sorted, etools);
    c.eq("cloud_init", l["cloud_init"].as_bool(), Some(cloud_init));
}

fn check_fstab(c: &mut Checks, exp: &Value, l: &Value, devs: &BTreeMap<String, String>) {
    let fstab = l["fstab"].as_array().cloned().unwrap_or_default();
    let efstab = exp["fstab"].as_array().cloned().unwrap_or_default();
    c.eq("fstab entries", fstab.len(), efstab.len());
    for (i, (a, e)) in fstab.iter().zip(&efstab).enumerate() {
        let spec = s(&e["spec"]).unwrap_or("?");
        let w = format!("fstab[{i}] {spec}");
        c.eq(&format!("{w} spec"), s(&a["spec"]), Some(spec));
        c.eq(
            &format!("{w} mountpoint"),
            s(&a["mountpoint"]),
            s(&e["file"]),
        );
        c.eq(&format!("{w} fstype"), s(&a["fstype"]), s(&e["vfstype"]));
        c.eq(&format!("{w} options"), s(&a["options"]), s(&e["options"]));
        c.eq(
            &format!("{w} bus_dependent"),
            a["bus_dependent"].as_bool(),
            Some(bus_dependent(spec)),
        );
        match s(&e["kind"]).unwrap_or("?") {
            "volume" => {
                let dev = s(&e["volume"]).and_then(|v| devs.get(v));
                c.eq(
                    &format!("{w} resolves_to"),
                    s(&a["resolves_to"]),
                    dev.map(String::as_str),
                );
                c.eq(&format!("{w} present"), a["present"].as_bool(), Some(true));
            }
            "missing" => {
                c.eq(&format!("{w} resolves_to"), s(&a["resolves_to"]), None);
                c.eq(&format!("{w} present"), a["present"].as_bool(), Some(false));
            }
            // A crypttab mapping: present once its source (checked with crypttab) opens.
            "crypt" => {
                c.eq(
                    &format!("{w} spec_kind"),
                    s(&a["spec_kind"]),
                    Some("mapper"),
                );
                c.eq(&format!("{w} present"), a["present"].as_bool(), Some(true));
            }
            // A swap file: not a device.
            "file" => {
                c.eq(
                    &format!("{w} spec_kind"),
                    s(&a["spec_kind"]),
                    Some("virtual"),
                );
                c.eq(&format!("{w} present"), a["present"].as_bool(), Some(true));
            }
            k => c.errs.push(format!("{w}: unknown recipe kind {k}")),
        }
    }
    let crypttab = l["crypttab"].as_array().cloned().unwrap_or_default();
    let ecrypt = strs(&exp["crypttab"]);
    c.eq("crypttab entries", crypttab.len(), ecrypt.len());
    for (a, line) in crypttab.iter().zip(&ecrypt) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (name, spec) = (f.first().copied(), f.get(1).copied().unwrap_or("?"));
        let w = format!("crypttab {spec}");
        c.eq(&format!("{w} name"), s(&a["name"]), name);
        c.eq(&format!("{w} spec"), s(&a["spec"]), Some(spec));
        c.eq(
            &format!("{w} resolves_to"),
            s(&a["resolves_to"]).map(String::from),
            guest_dev_to_report(exp, spec),
        );
        c.eq(&format!("{w} present"), a["present"].as_bool(), Some(true));
        c.eq(
            &format!("{w} bus_dependent"),
            a["bus_dependent"].as_bool(),
            Some(bus_dependent(spec)),
        );
    }
}

const DRIVERS: [&str; 4] = ["virtio_blk", "virtio_scsi", "virtio_net", "virtio_pci"];

fn check_kernels(c: &mut Checks, exp: &Value, l: &Value) {
    let kernels = l["kernels"].as_array().cloned().unwrap_or_default();
    // RHEL rescue kernels carry a generic initramfs revirt does not repair: not listed.
    let ekernels: Vec<&Value> = exp["kernels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["rescue"].as_bool() != Some(true))
        .collect();
    c.eq("kernel count", kernels.len(), ekernels.len());
    for ek in ekernels {
        let vmlinuz = s(&ek["vmlinuz"]).unwrap_or("?");
        let Some(k) = kernels.iter().find(|k| s(&k["vmlinuz"]) == Some(vmlinuz)) else {
            c.errs.push(format!("kernel {vmlinuz} missing"));
            continue;
        };
        let w = format!("kernel {vmlinuz}");
        c.eq(&format!("{w} version"), s(&k["version"]), s(&ek["version"]));
        c.eq(
            &format!("{w} modules_dir"),
            s(&k["modules_dir"]),
            s(&ek["modules_dir"]),
        );
        c.eq(&format!("{w} config"), s(&k["config"]), s(&ek["config"]));
        let ei = &ek["initramfs"];
        c.eq(
            &format!("{w} initramfs"),
            s(&k["initramfs"]),
            s(&ei["path"]),
        );
        c.eq(
            &format!("{w} initramfs_error"),
            s(&k["initramfs_error"]),
            None,
        );
        if !ei.is_null() {
            let mut segs = vec![];
            if ei["early_microcode"].as_bool() == Some(true) {
                segs.push("none".to_string());
            }
            segs.extend(s(&ei["compression"]).map(String::from));
            c.eq(
                &format!("{w} initramfs segments"),
                strs(&k["initramfs_segments"]),
                segs,
            );
            c.eq(
                &format!("{w} initramfs modules dir"),
                s(&k["initramfs_modules_dir"]).map(|d| format!("/{d}")),
                s(&ei["modules_dir"]).map(String::from),
            );
        }
        let builtin = s(&ek["virtio"]) == Some("builtin");
        let in_initrd = strs(&ei["modules"]);
        for d in DRIVERS {
            let st = &k["drivers"][d];
            c.eq(
                &format!("{w} {d} builtin"),
                st["builtin"].as_bool(),
                Some(builtin),
            );
            c.eq(
                &format!("{w} {d} module_on_disk"),
                st["module_on_disk"].as_bool(),
                Some(!builtin && !ek["modules_dir"].is_null()),
            );
            c.eq(
                &format!("{w} {d} in_initramfs"),
                st["in_initramfs"].as_bool(),
                Some(builtin || in_initrd.iter().any(|m| m == d)),
            );
        }
        if builtin || ei["has_virtio"].as_bool() == Some(true) {
            c.ok(
                &format!("{w}: recipe has virtio but virtio_blk is not in the initramfs"),
                k["drivers"]["virtio_blk"]["in_initramfs"].as_bool() == Some(true),
            );
        }
    }
}

fn check_bootloader(c: &mut Checks, exp: &Value, l: &Value) {
    let b = &l["bootloader"];
    let eb = &exp["bootloader"];
    c.eq("bootloader kind", s(&b["kind"]), s(&eb["loader"]));
    c.eq("firmware", s(&b["firmware"]), s(&eb["firmware"]));
    c.eq("BLS", b["bls"].as_bool(), eb["bls"].as_bool());
    c.eq("bootloader warnings", strs(&b["warnings"]), vec![]);
    let configs = strs(&eb["config"]);
    c.ok(
        &format!(
            "bootloader config {:?} is not one the recipe writes ({configs:?})",
            b["config"]
        ),
        s(&b["config"]).is_some_and(|p| configs.iter().any(|x| x == p)),
    );
    if let Some(dir) = s(&eb["efi_dir"]) {
        let esp = &b["esp"];
        c.ok("UEFI guest without an ESP", esp.is_object());
        let vendor = dir.trim_start_matches("/boot/efi");
        c.ok(
            &format!(
                "ESP holds no EFI binary under {vendor}: {:?}",
                esp["efi_files"]
            ),
            strs(&esp["efi_files"])
                .iter()
                .any(|f| f.starts_with(&format!("{vendor}/"))),
        );
    }
    let entries = b["entries"].as_array().cloned().unwrap_or_default();
    let eentries = eb["entries"].as_array().cloned().unwrap_or_default();
    c.eq("boot entries", entries.len(), eentries.len());
    for ee in &eentries {
        let title = s(&ee["title"]).unwrap_or("?");
        let Some(e) = entries.iter().find(|e| s(&e["title"]) == Some(title)) else {
            c.errs.push(format!("boot entry '{title}' missing"));
            continue;
        };
        c.eq(
            &format!("entry '{title}' kernel"),
            s(&e["kernel_path"]),
            s(&ee["kernel"]),
        );
        c.eq(
            &format!("entry '{title}' initrd"),
            s(&e["initrd_path"]),
            s(&ee["initrd"]),
        );
    }
    // The default entry boots the recipe's default kernel with the recipe's root=.
    let def = b["default_entry"]
        .as_u64()
        .and_then(|i| entries.get(i as usize));
    let ek = exp["kernels"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["default"].as_bool() == Some(true));
    match def {
        None => c.errs.push("no default boot entry".into()),
        Some(e) => {
            c.eq(
                "default entry kernel",
                s(&e["kernel_path"]),
                ek.and_then(|k| s(&k["vmlinuz"])),
            );
            c.eq("default entry root=", s(&e["root"]), s(&eb["root"]));
            // grub expands variables the recipe leaves unset (${extra_cmdline}) to nothing.
            let words = |t: &str| -> Vec<String> {
                t.split_whitespace()
                    .filter(|w| !w.starts_with('$'))
                    .map(String::from)
                    .collect()
            };
            c.eq(
                "default entry cmdline",
                words(s(&e["cmdline"]).unwrap_or("")),
                words(s(&eb["cmdline"]).unwrap_or("")),
            );
        }
    }
}

fn check_network(c: &mut Checks, exp: &Value, l: &Value) {
    let n = &exp["network"];
    let net = &l["network"];
    c.eq("network warnings", strs(&net["warnings"]), vec![]);
    let flavor = match s(&n["flavor"]) {
        Some("nm-keyfile") => "networkmanager",
        Some("ifcfg") => "ifcfg-rhel",
        Some(f) => f,
        None => "?",
    };
    let iface = s(&n["iface"]).unwrap_or("?");
    let files = strs(&n["files"]);
    let (rules, confs): (Vec<&String>, Vec<&String>) =
        files.iter().partition(|f| f.contains("/udev/rules.d/"));
    // Text of the config files that hold the values: a value is only checked where the
    // recipe's files actually carry it (the recipe may list values no file holds).
    let text: String = confs
        .iter()
        .filter_map(|f| exp["files"][f.as_str()].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let ifaces: Vec<(&Value, &Value)> = net["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|cf| {
            cf["interfaces"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |i| (cf, i))
        })
        .collect();
    let Some((cf, i)) = ifaces
        .iter()
        .find(|(cf, i)| s(&i["name"]) == Some(iface) && s(&cf["flavor"]) == Some(flavor))
    else {
        c.errs.push(format!(
            "no {flavor} config for {iface} (found {:?})",
            ifaces
                .iter()
                .map(|(cf, i)| (s(&cf["flavor"]), s(&i["name"])))
                .collect::<Vec<_>>()
        ));
        return;
    };
    c.ok(
        &format!(
            "{iface} config file {:?} is not among the recipe's {confs:?}",
            cf["file"]
        ),
        s(&cf["file"]).is_some_and(|f| confs.iter().any(|x| *x == f)),
    );
    let dhcp = s(&n["bootproto"]) == Some("dhcp");
    c.eq(&format!("{iface} dhcp"), i["dhcp"].as_bool(), Some(dhcp));
    if let (Some(ip), Some(prefix)) = (s(&n["ip"]), n["prefix"].as_u64()) {
        c.eq(
            &format!("{iface} addresses"),
            strs(&i["addresses"]),
            vec![format!("{ip}/{prefix}")],
        );
    } else {
        c.eq(&format!("{iface} addresses"), strs(&i["addresses"]), vec![]);
    }
    if let Some(gw) = s(&n["gateway"]).filter(|g| mentions(&text, g) > 0) {
        c.eq(&format!("{iface} gateway"), s(&i["gateway"]), Some(gw));
    }
    let dns: Vec<String> = strs(&n["dns"])
        .into_iter()
        .filter(|d| {
            // A DNS server equal to the gateway only counts when it is written twice.
            let g = s(&n["gateway"]).unwrap_or("");
            mentions(&text, d) > usize::from(d == g)
        })
        .collect();
    if !dns.is_empty() {
        c.eq(&format!("{iface} dns"), strs(&i["dns"]), dns);
    }
    // MAC pins: in the config file, or in a persistent-net rule.
    let mac = s(&n["mac"]).unwrap_or("?").to_ascii_lowercase();
    if mentions(&text, &mac) > 0 {
        c.ok(
            &format!(
                "{iface}: the config names MAC {mac} but inspection shows mac={:?} set_mac={:?}",
                i["mac"], i["set_mac"]
            ),
            s(&i["mac"]) == Some(&mac) || s(&i["set_mac"]) == Some(&mac),
        );
    } else {
        c.eq(&format!("{iface} mac"), s(&i["mac"]), None);
    }
    let prules = net["persistent_net_rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    c.eq("persistent-net rules", prules.len(), rules.len());
    for r in &rules {
        c.ok(
            &format!("{r}: no rule pinning {iface} to {mac} ({prules:?})"),
            prules.iter().any(|p| {
                s(&p["file"]) == Some(r.as_str())
                    && s(&p["name"]) == Some(iface)
                    && s(&p["mac"]) == Some(&mac)
            }),
        );
    }
}

macro_rules! skeleton_tests {
    ($($f:ident => $name:literal),* $(,)?) => {
        $(#[test] fn $f() { check_guest($name); })*
        /// The list of tests above covers every guest the fixture set builds.
        #[test]
        fn every_skeleton_is_tested() {
            let mut tested = vec![$($name),*];
            tested.sort();
            assert_eq!(tested, golden::SKELETONS);
            let dir = env!("CARGO_MANIFEST_DIR").to_string() + "/fixtures/images/skeletons";
            let mut recipes: Vec<String> = std::fs::read_dir(&dir).expect("skeleton recipes").filter_map(|e| e.ok()).filter(|e| e.path().join("guest.toml").exists()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            recipes.sort();
            assert_eq!(recipes, golden::SKELETONS, "a recipe in {dir} has no test");
        }
    };
}

skeleton_tests! {
    alma9 => "alma9",
    debian10 => "debian10",
    debian11 => "debian11",
    debian12 => "debian12",
    fedora => "fedora",
    ol8 => "ol8",
    opensuse_leap15 => "opensuse-leap15",
    rhel7 => "rhel7",
    rocky8 => "rocky8",
    sles12 => "sles12",
    sles15 => "sles15",
    ubuntu1804 => "ubuntu1804",
    ubuntu2004 => "ubuntu2004",
    ubuntu2204 => "ubuntu2204",
    ubuntu2404 => "ubuntu2404",
}
