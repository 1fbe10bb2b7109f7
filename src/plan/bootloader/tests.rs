//! Bootloader plans for skeleton guests holding the files real distros write, read by the real
//! inspection parser; each plan is applied to the tree and a second plan must be empty.
use super::*;
use crate::fs::{HostDirFs, Vfs};
use crate::inspect::fstab::parse_fstab;
use crate::inspect::linux::bootloader::detect_bootloader;
use crate::plan::BlockBus;
use std::path::PathBuf;
use std::rc::Rc;

/// A guest tree: filesystems (mountpoint, host dir), "/" first.
struct Guest {
    mounts: Vec<(String, tempfile::TempDir)>,
}

fn write_tree(root: &std::path::Path, files: &[(&str, &str)]) {
    for (p, c) in files {
        let host = root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(host.parent().expect("parent")).expect("mkdir");
        std::fs::write(host, c).expect("write");
    }
}

impl Guest {
    /// `fs`: (mountpoint, files with paths inside that filesystem).
    fn new(fs: &[(&str, &[(&str, &str)])]) -> Guest {
        let mut mounts = vec![];
        for (mp, files) in fs {
            let d = tempfile::tempdir().expect("tempdir");
            write_tree(d.path(), files);
            mounts.push((mp.to_string(), d));
        }
        Guest { mounts }
    }

    fn vfs(&self) -> Vfs {
        let mut vfs = Vfs::new(Rc::new(HostDirFs {
            root: self.mounts[0].1.path().to_path_buf(),
        }));
        for (mp, d) in &self.mounts[1..] {
            std::fs::create_dir_all(self.mounts[0].1.path().join(&mp[1..])).expect("mkdir");
            vfs.mount(
                mp,
                Rc::new(HostDirFs {
                    root: d.path().to_path_buf(),
                }),
            );
        }
        vfs
    }

    fn host(&self, guest: &str) -> PathBuf {
        let (mp, d) = self
            .mounts
            .iter()
            .filter(|(mp, _)| mp == "/" || guest.starts_with(&format!("{mp}/")))
            .max_by_key(|(mp, _)| mp.len())
            .expect("root mount");
        let rel = if mp == "/" { guest } else { &guest[mp.len()..] };
        d.path().join(rel.trim_start_matches('/'))
    }

    fn read(&self, guest: &str) -> String {
        std::fs::read_to_string(self.host(guest)).expect("read guest file")
    }

    /// What apply would do for the file changes (tools are not run here).
    fn apply(&self, actions: &[Action]) {
        for a in actions {
            match &a.change {
                Change::WriteFile { path, content, .. } => {
                    let h = self.host(path);
                    std::fs::create_dir_all(h.parent().expect("parent")).expect("mkdir");
                    std::fs::write(h, content).expect("write");
                }
                Change::CopyFile { from, to } => {
                    let h = self.host(to);
                    std::fs::create_dir_all(h.parent().expect("parent")).expect("mkdir");
                    std::fs::copy(self.host(from), h).expect("copy");
                }
                Change::RunBootloaderTool { .. } => {}
                c => panic!("unexpected change {c:?}"),
            }
        }
    }
}

fn vol(dev: &str, disk: Option<usize>, part: Option<u32>, fs: &str, uuid: &str) -> VolumeReport {
    VolumeReport {
        device: dev.into(),
        aliases: vec![],
        size: 1 << 30,
        fstype: Some(fs.into()),
        uuid: (!uuid.is_empty()).then(|| uuid.into()),
        label: None,
        flags: vec![],
        reader: "pure".into(),
        part_uuid: None,
        part_label: None,
        disk_index: disk,
        part_number: part,
        journal_recovery: None,
        xfs_log: None,
        luks: None,
    }
}

/// The inspection facts the planner uses, read from the tree as `inspect` does.
fn inspect(
    g: &Guest,
    vols: &[VolumeReport],
    distro: &str,
    family: &str,
) -> (LinuxInfo, Inspection) {
    let vfs = g.vfs();
    let fstab = vfs.read_text("/etc/fstab").unwrap().unwrap_or_default();
    let mut l = LinuxInfo {
        distro: distro.into(),
        family: family.into(),
        arch: Some("x86_64".into()),
        fstab: parse_fstab(&fstab, vols),
        ..Default::default()
    };
    l.mounts.insert("/".into(), "/dev/root".into());
    let mut esp = None;
    for e in &l.fstab {
        if g.mounts.iter().any(|(mp, _)| *mp == e.mountpoint) {
            let dev = e.resolves_to.clone().expect("test fstab entries resolve");
            if e.fstype == "vfat" {
                esp = Some(dev.clone());
            }
            l.mounts.insert(e.mountpoint.clone(), dev);
        }
    }
    l.bootloader = detect_bootloader(&vfs, esp.as_deref()).expect("detect_bootloader");
    let ins = Inspection {
        volumes: vols.to_vec(),
        ..Default::default()
    };
    (l, ins)
}

fn plan(
    g: &Guest,
    l: &LinuxInfo,
    ins: &Inspection,
    opts: &PlanOptions,
) -> (Vec<Action>, Vec<String>) {
    let vfs = g.vfs();
    let mut inputs = PlanInputs::default();
    for p in wanted_inputs(l) {
        if vfs.lstat(&p).unwrap().is_some() {
            inputs.existing.insert(p.clone());
        }
        if let Ok(Some(t)) = vfs.read_text(&p) {
            inputs.files.insert(p, t);
        }
    }
    let mut notes = vec![];
    let a = plan_bootloader(l, ins, &inputs, opts, &mut notes);
    (a, notes)
}

/// What the planner appends to a command line that has none of it: the network planner's
/// kernel_args (which depend on the guest's network setup) and the serial console.
fn additions(l: &LinuxInfo, opts: &PlanOptions) -> String {
    let fix = CmdlineFix {
        ensure: crate::plan::network::kernel_args(l, opts),
        console: opts.serial_console,
        ..Default::default()
    };
    missing_args(&fix, &[]).join(" ")
}

/// " " + `adds`, or nothing.
fn sp(adds: &str) -> String {
    if adds.is_empty() {
        String::new()
    } else {
        format!(" {adds}")
    }
}

/// Plans, checks the first plan with `check` (given [`additions`]), applies it, and checks that a second plan over
/// the repaired tree is empty.
fn plan_twice(
    g: &Guest,
    vols: &[VolumeReport],
    distro: &str,
    family: &str,
    opts: &PlanOptions,
    check: impl FnOnce(&[Action], &[String], &str),
) {
    let (l, ins) = inspect(g, vols, distro, family);
    let (actions, notes) = plan(g, &l, &ins, opts);
    check(&actions, &notes, &additions(&l, opts));
    g.apply(&actions);
    let (l, ins) = inspect(g, vols, distro, family);
    let (again, _) = plan(g, &l, &ins, opts);
    assert!(again.is_empty(), "second plan not empty: {again:#?}");
}

fn console() -> PlanOptions {
    PlanOptions {
        serial_console: true,
        ..Default::default()
    }
}

fn written<'a>(actions: &'a [Action], path: &str) -> &'a str {
    actions
        .iter()
        .find_map(|a| match &a.change {
            Change::WriteFile {
                path: p, content, ..
            } if p == path => Some(content.as_str()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no write of {path} in {actions:#?}"))
}

fn targets(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match &a.change {
            Change::WriteFile { path, .. } => format!("write {path}"),
            Change::CopyFile { from, to } => format!("copy {from} {to}"),
            Change::RunBootloaderTool { command, .. } => format!("run {}", command.join(" ")),
            c => format!("{c:?}"),
        })
        .collect()
}

fn grubenv(lines: &str) -> String {
    let head = format!("# GRUB Environment Block\n{lines}");
    format!("{head}{}", "#".repeat(1024 - head.len()))
}

// ---------------------------------------------------------------------------------------------
// Debian 12, BIOS, GRUB_DISABLE_LINUX_UUID=true: grub.cfg says root=/dev/sda1.

const DEB_ROOT: &str = "4f0c1a2b-3d4e-4f5a-8b6c-7d8e9f0a1b2c";
const DEB_SWAP: &str = "0e1d2c3b-4a59-4687-9a0b-1c2d3e4f5a6b";

const DEB_DEFAULT: &str = "# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.
# For full documentation of the options in this file, see:
#   info -f grub -n 'Simple configuration'

GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"
GRUB_CMDLINE_LINUX=\"\"

# Uncomment to use basic console
#GRUB_TERMINAL=console

# Uncomment if you don't want GRUB to pass \"root=UUID=xxx\" parameter to Linux
GRUB_DISABLE_LINUX_UUID=true
";

fn deb_cfg() -> String {
    let u = DEB_ROOT;
    format!(
        r#"#
# DO NOT EDIT THIS FILE
#
# It is automatically generated by grub-mkconfig using templates
# from /etc/grub.d and settings from /etc/default/grub
#

### BEGIN /etc/grub.d/00_header ###
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${{next_entry}}" ] ; then
   set default="${{next_entry}}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi
terminal_output gfxterm
set timeout=5
### END /etc/grub.d/00_header ###

### BEGIN /etc/grub.d/10_linux ###
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-{u}' {{
	load_video
	insmod gzio
	if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
	insmod part_msdos
	insmod ext2
	set root='hd0,msdos1'
	if [ x$feature_platform_search_hint = xy ]; then
	  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,msdos1 --hint-efi=hd0,msdos1 --hint-baremetal=ahci0,msdos1  {u}
	else
	  search --no-floppy --fs-uuid --set=root {u}
	fi
	echo	'Loading Linux 6.1.0-13-amd64 ...'
	linux	/boot/vmlinuz-6.1.0-13-amd64 root=/dev/sda1 ro  quiet
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-6.1.0-13-amd64
}}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-{u}' {{
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-13-amd64 (recovery mode)' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-6.1.0-13-amd64-recovery-{u}' {{
		load_video
		insmod gzio
		set root='hd0,msdos1'
		echo	'Loading Linux 6.1.0-13-amd64 ...'
		linux	/boot/vmlinuz-6.1.0-13-amd64 root=/dev/sda1 ro single 
		echo	'Loading initial ramdisk ...'
		initrd	/boot/initrd.img-6.1.0-13-amd64
	}}
}}
### END /etc/grub.d/10_linux ###
"#
    )
}

fn debian12() -> (Guest, Vec<VolumeReport>) {
    let cfg = deb_cfg();
    let env = grubenv("");
    let fstab = format!("# /etc/fstab: static file system information.\nUUID={DEB_ROOT} /               ext4    errors=remount-ro 0       1\nUUID={DEB_SWAP} none            swap    sw              0       0\n/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0\n");
    let g = Guest::new(&[(
        "/",
        &[
            ("/etc/fstab", fstab.as_str()),
            ("/etc/default/grub", DEB_DEFAULT),
            ("/boot/grub/grub.cfg", cfg.as_str()),
            ("/boot/grub/grubenv", env.as_str()),
            ("/boot/grub/i386-pc/normal.mod", "m"),
            ("/boot/vmlinuz-6.1.0-13-amd64", "k"),
            ("/boot/initrd.img-6.1.0-13-amd64", "i"),
        ],
    )]);
    let vols = vec![
        vol("/dev/sda1", Some(0), Some(1), "ext4", DEB_ROOT),
        vol("/dev/sda5", Some(0), Some(5), "swap", DEB_SWAP),
    ];
    (g, vols)
}

/// The Debian 12 plan: both the defaults and grub.cfg, then grub-mkconfig.
fn check_debian12(a: &[Action], notes: &[String], adds: &str) {
    assert_eq!(
        targets(a),
        [
            "write /etc/default/grub",
            "write /boot/grub/grub.cfg",
            "run grub-mkconfig -o /boot/grub/grub.cfg"
        ]
    );
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(
        written(a, "/etc/default/grub"),
        DEB_DEFAULT
            .replace(
                "GRUB_CMDLINE_LINUX=\"\"",
                &format!("GRUB_CMDLINE_LINUX=\"{adds}\"")
            )
            .replace(
                "GRUB_DISABLE_LINUX_UUID=true",
                "GRUB_DISABLE_LINUX_UUID=false"
            )
    );
    let want = deb_cfg()
        .replace(
            "root=/dev/sda1 ro  quiet",
            &format!("root=UUID={DEB_ROOT} ro  quiet{}", sp(adds)),
        )
        .replace(
            "root=/dev/sda1 ro single ",
            &format!("root=UUID={DEB_ROOT} ro single{} ", sp(adds)),
        );
    assert_eq!(written(a, "/boot/grub/grub.cfg"), want);
    assert!(
        a[1].reason
            .contains(&format!("root=/dev/sda1 -> root=UUID={DEB_ROOT}"))
            && a[1].reason.contains(adds),
        "{}",
        a[1].reason
    );
    assert!(
        a[0].reason.contains("GRUB_DISABLE_LINUX_UUID"),
        "{}",
        a[0].reason
    );
    assert!(a[1].diff.as_deref().unwrap().contains(&format!(
        "+\tlinux\t/boot/vmlinuz-6.1.0-13-amd64 root=UUID={DEB_ROOT}"
    )));
}

#[test]
fn debian12_disable_linux_uuid_root_sda1() {
    let (g, vols) = debian12();
    plan_twice(
        &g,
        &vols,
        "debian",
        "debian",
        &console(),
        |a, notes, adds| {
            assert!(adds.ends_with(CONSOLE_ARGS.join(" ").as_str()));
            check_debian12(a, notes, adds)
        },
    );
    // The grubenv (no kernelopts) is left alone.
    assert_eq!(g.read("/boot/grub/grubenv"), grubenv(""));
}

#[test]
fn debian12_without_serial_console() {
    let (g, vols) = debian12();
    plan_twice(
        &g,
        &vols,
        "debian",
        "debian",
        &PlanOptions::default(),
        |a, notes, adds| {
            assert!(!adds.contains("console="));
            check_debian12(a, notes, adds)
        },
    );
}

// ---------------------------------------------------------------------------------------------
// RHEL 8.5, BIOS, separate /boot, BLS entries with $kernelopts from grubenv; swap partition.

const R8_BOOT: &str = "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9";
const R8_SWAP: &str = "5e6f7081-92a3-4b4c-8d5e-6f708192a3b4";
const R8_ROOT: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";
const R8_MID: &str = "6a1f7e0b2c3d4e5f";

const R8_DEFAULT: &str = "GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=\"$(sed 's, release .*$,,g' /etc/system-release)\"
GRUB_DEFAULT=saved
GRUB_DISABLE_SUBMENU=true
GRUB_TERMINAL_OUTPUT=\"console\"
GRUB_CMDLINE_LINUX=\"crashkernel=auto resume=/dev/sda3 rd.lvm.lv=rhel/root rhgb quiet\"
GRUB_DISABLE_RECOVERY=\"true\"
GRUB_ENABLE_BLSCFG=true
";

const R8_CFG: &str = r#"#
# DO NOT EDIT THIS FILE
#
# It is automatically generated by grub2-mkconfig using templates
# from /etc/grub.d and settings from /etc/default/grub
#

### BEGIN /etc/grub.d/00_header ###
set pager=1

if [ -f ${config_directory}/grubenv ]; then
  load_env -f ${config_directory}/grubenv
elif [ -s $prefix/grubenv ]; then
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="${saved_entry}"
fi
### END /etc/grub.d/00_header ###

### BEGIN /etc/grub.d/10_linux ###
insmod part_msdos
insmod xfs
set root='hd0,msdos1'
if [ x$feature_platform_search_hint = xy ]; then
  search --no-floppy --fs-uuid --set=root --hint='hd0,msdos1'  1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9
else
  search --no-floppy --fs-uuid --set=root 1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9
fi
if [ -z "${kernelopts}" ]; then
  set kernelopts="root=/dev/mapper/rhel-root ro crashkernel=auto resume=/dev/sda3 rd.lvm.lv=rhel/root rhgb quiet "
fi

insmod blscfg
blscfg
### END /etc/grub.d/10_linux ###
"#;

const R8_OPTS: &str =
    "root=/dev/mapper/rhel-root ro crashkernel=auto resume=/dev/sda3 rd.lvm.lv=rhel/root rhgb quiet";

fn r8_bls(ver: &str) -> String {
    format!(
        "title Red Hat Enterprise Linux ({ver}) 8.5 (Ootpa)\nversion {ver}\nlinux /vmlinuz-{ver}\ninitrd /initramfs-{ver}.img $tuned_initrd\noptions $kernelopts $tuned_params\nid rhel-20211013-{ver}\ngrub_users $grub_users\ngrub_arg --unrestricted\ngrub_class kernel\n"
    )
}

fn r8_rescue() -> String {
    format!("title Red Hat Enterprise Linux (0-rescue-{R8_MID}) 8.5 (Ootpa)\nversion 0-rescue-{R8_MID}\nlinux /vmlinuz-0-rescue-{R8_MID}\ninitrd /initramfs-0-rescue-{R8_MID}.img\noptions {R8_OPTS}\nid rhel-20211013-0-rescue-{R8_MID}\ngrub_users $grub_users\ngrub_arg --unrestricted\ngrub_class kernel\n")
}

#[test]
fn rhel8_bls_grubenv_kernelopts() {
    let old = "4.18.0-348.el8.x86_64";
    let new = "4.18.0-348.7.1.el8_5.x86_64";
    let env = grubenv(&format!(
        "saved_entry={R8_MID}-{new}\nkernelopts={R8_OPTS} \nboot_success=0\n"
    ));
    let fstab = format!("/dev/mapper/rhel-root   /                       xfs     defaults        0 0\nUUID={R8_BOOT} /boot                   xfs     defaults        0 0\nUUID={R8_SWAP} none                    swap    defaults        0 0\n");
    let rescue = format!("/loader/entries/{R8_MID}-0-rescue-{R8_MID}.conf");
    let g = Guest::new(&[
        (
            "/",
            &[
                ("/etc/fstab", fstab.as_str()),
                ("/etc/default/grub", R8_DEFAULT),
            ],
        ),
        (
            "/boot",
            &[
                ("/grub2/grub.cfg", R8_CFG),
                ("/grub2/grubenv", env.as_str()),
                (
                    &format!("/loader/entries/{R8_MID}-{old}.conf"),
                    &r8_bls(old),
                ),
                (
                    &format!("/loader/entries/{R8_MID}-{new}.conf"),
                    &r8_bls(new),
                ),
                (&rescue, &r8_rescue()),
                (&format!("/vmlinuz-{new}"), "k"),
            ],
        ),
    ]);
    let vols = vec![
        vol("/dev/sda1", Some(0), Some(1), "xfs", R8_BOOT),
        vol("/dev/sda2", Some(0), Some(2), "LVM2_member", ""),
        vol("/dev/sda3", Some(0), Some(3), "swap", R8_SWAP),
        vol("/dev/mapper/rhel-root", None, None, "xfs", R8_ROOT),
    ];
    plan_twice(&g, &vols, "rhel", "rhel", &console(), |a, notes, adds| {
        let fixed = format!(
            "root=/dev/mapper/rhel-root ro crashkernel=auto resume=UUID={R8_SWAP} rd.lvm.lv=rhel/root rhgb quiet {adds}"
        );
        assert_eq!(
            targets(a),
            [
                "write /etc/default/grub".to_string(),
                "write /boot/grub2/grub.cfg".into(),
                "write /boot/grub2/grubenv".into(),
                format!("write /boot{rescue}"),
                "run grub2-mkconfig -o /boot/grub2/grub.cfg".into(),
            ],
            "BLS entries using $kernelopts get their options from grubenv"
        );
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            written(a, "/etc/default/grub"),
            R8_DEFAULT.replace(
                "resume=/dev/sda3 rd.lvm.lv=rhel/root rhgb quiet\"",
                &format!("resume=UUID={R8_SWAP} rd.lvm.lv=rhel/root rhgb quiet {adds}\"")
            )
        );
        assert_eq!(
            written(a, "/boot/grub2/grub.cfg"),
            R8_CFG.replace(&format!("\"{R8_OPTS} \""), &format!("\"{fixed} \""))
        );
        let env_after = written(a, "/boot/grub2/grubenv");
        assert_eq!(env_after.len(), 1024);
        assert_eq!(
            env_after,
            grubenv(&format!(
                "saved_entry={R8_MID}-{new}\nkernelopts={fixed} \nboot_success=0\n"
            ))
        );
        assert_eq!(
            written(a, &format!("/boot{rescue}")),
            r8_rescue().replace(R8_OPTS, &fixed)
        );
    });
}

// ---------------------------------------------------------------------------------------------
// RHEL 9.4 UEFI: literal BLS options, /etc/kernel/cmdline, ESP with only \EFI\redhat.

const R9_ESP: &str = "7E2A-11B3";
const R9_OPTS: &str = "root=/dev/mapper/rhel-root ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/mapper/rhel-swap rd.lvm.lv=rhel/root rd.lvm.lv=rhel/swap rhgb quiet";

fn r9_bls(v: &str) -> String {
    format!("title Red Hat Enterprise Linux ({v}) 9.4 (Plow)\nversion {v}\nlinux /boot/vmlinuz-{v}\ninitrd /boot/initramfs-{v}.img $tuned_initrd\noptions {R9_OPTS}\ngrub_users $grub_users\ngrub_arg --unrestricted\ngrub_class rhel\n")
}

#[test]
fn rhel9_uefi_without_fallback_gets_shim_copy() {
    let root_uuid = "5b7e0f4c-aa11-4c3e-9d1e-0c1f2e3d4a5b";
    let stub = format!("search --no-floppy --fs-uuid --set=dev {root_uuid}\nset prefix=($dev)/boot/grub2\n\nexport $prefix\nconfigfile $prefix/grub.cfg\n");
    let cfg = "set pager=1\nif [ -f ${config_directory}/grubenv ]; then\n  load_env -f ${config_directory}/grubenv\nelif [ -s $prefix/grubenv ]; then\n  load_env\nfi\nif [ \"${next_entry}\" ] ; then\n   set default=\"${next_entry}\"\nelse\n   set default=\"${saved_entry}\"\nfi\ninsmod blscfg\nblscfg\nmenuentry 'UEFI Firmware Settings' $menuentry_id_option 'uefi-firmware' {\n\tfwsetup\n}\n";
    let default = format!("GRUB_TIMEOUT=5\nGRUB_DEFAULT=saved\nGRUB_DISABLE_SUBMENU=true\nGRUB_TERMINAL_OUTPUT=\"console\"\nGRUB_CMDLINE_LINUX=\"{}\"\nGRUB_DISABLE_RECOVERY=\"true\"\nGRUB_ENABLE_BLSCFG=true\n", &R9_OPTS["root=/dev/mapper/rhel-root ro ".len()..]);
    let kcmd = format!("{R9_OPTS}\n");
    let env = grubenv("boot_success=1\n");
    let v1 = "5.14.0-427.13.1.el9_4.x86_64";
    let e1 = format!("/boot/loader/entries/ab12-{v1}.conf");
    let fstab = format!("/dev/mapper/rhel-root   /                       xfs     defaults        0 0\nUUID={R9_ESP}          /boot/efi               vfat    umask=0077,shortname=winnt 0 2\n/dev/mapper/rhel-swap   none                    swap    defaults        0 0\n");
    let g = Guest::new(&[
        (
            "/",
            &[
                ("/etc/fstab", fstab.as_str()),
                ("/etc/default/grub", default.as_str()),
                ("/etc/kernel/cmdline", kcmd.as_str()),
                ("/boot/grub2/grub.cfg", cfg),
                ("/boot/grub2/grubenv", env.as_str()),
                (&e1, &r9_bls(v1)),
                (&format!("/boot/vmlinuz-{v1}"), "k"),
            ],
        ),
        (
            "/boot/efi",
            &[
                ("/EFI/redhat/grub.cfg", stub.as_str()),
                ("/EFI/redhat/shimx64.efi", "shim"),
                ("/EFI/redhat/grubx64.efi", "grub"),
                ("/EFI/redhat/mmx64.efi", "mm"),
                (
                    "/EFI/redhat/BOOTX64.CSV",
                    "shimx64.efi,Red Hat Enterprise Linux,,\n",
                ),
            ],
        ),
    ]);
    let vols = vec![
        vol("/dev/sda1", Some(0), Some(1), "vfat", R9_ESP),
        vol("/dev/sda2", Some(0), Some(2), "LVM2_member", ""),
        vol("/dev/mapper/rhel-root", None, None, "xfs", root_uuid),
        vol(
            "/dev/mapper/rhel-swap",
            None,
            None,
            "swap",
            "0d1e2f30-4152-4637-8495-a6b7c8d9e0f1",
        ),
    ];
    plan_twice(&g, &vols, "rhel", "rhel", &console(), |a, notes, adds| {
        assert_eq!(
            targets(a),
            [
                "write /etc/default/grub".to_string(),
                "write /etc/kernel/cmdline".into(),
                format!("write {e1}"),
                "run grub2-mkconfig -o /boot/grub2/grub.cfg".into(),
                "copy /boot/efi/EFI/redhat/shimx64.efi /boot/efi/EFI/BOOT/BOOTX64.EFI".into(),
                "copy /boot/efi/EFI/redhat/grubx64.efi /boot/efi/EFI/BOOT/grubx64.efi".into(),
                "copy /boot/efi/EFI/redhat/mmx64.efi /boot/efi/EFI/BOOT/mmx64.efi".into(),
                "write /boot/efi/EFI/BOOT/grub.cfg".into(),
            ]
        );
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            written(a, "/etc/kernel/cmdline"),
            format!("{R9_OPTS} {adds}\n")
        );
        assert_eq!(
            written(a, &e1),
            r9_bls(v1).replace(R9_OPTS, &format!("{R9_OPTS} {adds}"))
        );
        assert_eq!(
            written(a, "/boot/efi/EFI/BOOT/grub.cfg"),
            "# Written by revirt: \\EFI\\BOOT holds a copy of the redhat boot loader, so that a VM with\n# a fresh NVRAM boots. A grub that reads its config from its own directory lands here and is\n# handed over to the redhat configuration, which the guest keeps up to date.\nsearch --no-floppy --fs-uuid --set=root 7e2a-11b3\nconfigfile /EFI/redhat/grub.cfg\n"
        );
    });
    assert_eq!(g.read("/boot/efi/EFI/BOOT/BOOTX64.EFI"), "shim");
    assert_eq!(g.read("/boot/efi/EFI/BOOT/grubx64.efi"), "grub");
}

#[test]
fn uefi_grub_only_vendor_and_existing_fallback() {
    // Debian UEFI without shim (grub-install --no-uefi-secure-boot): grubx64.efi is copied,
    // and the vendor grub.cfg stub gets a hand-over stub beside the copy.
    let fstab = format!("UUID={DEB_ROOT} / ext4 errors=remount-ro 0 1\nUUID=3A4B-5C6D /boot/efi vfat umask=0077 0 1\n");
    let stub = format!("search.fs_uuid {DEB_ROOT} root hd0,gpt2 \nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n");
    let cfg = deb_cfg().replace("root=/dev/sda1", &format!("root=UUID={DEB_ROOT}"));
    let env = grubenv("");
    let g = Guest::new(&[
        (
            "/",
            &[
                ("/etc/fstab", fstab.as_str()),
                (
                    "/etc/default/grub",
                    "GRUB_CMDLINE_LINUX=\"console=ttyS0\"\n",
                ),
                ("/boot/grub/grub.cfg", cfg.as_str()),
                ("/boot/grub/grubenv", env.as_str()),
            ],
        ),
        (
            "/boot/efi",
            &[
                ("/EFI/debian/grub.cfg", stub.as_str()),
                ("/EFI/debian/grubx64.efi", "grub"),
            ],
        ),
    ]);
    let vols = vec![
        vol("/dev/sda1", Some(0), Some(1), "vfat", "3A4B-5C6D"),
        vol("/dev/sda2", Some(0), Some(2), "ext4", DEB_ROOT),
    ];
    let opts = PlanOptions::default();
    plan_twice(&g, &vols, "debian", "debian", &opts, |a, _, _| {
        // (Command-line edits depend on the network planner's kernel_args here.)
        let efi: Vec<String> = targets(a)
            .into_iter()
            .filter(|t| t.contains("/boot/efi/"))
            .collect();
        assert_eq!(
            efi,
            [
                "copy /boot/efi/EFI/debian/grubx64.efi /boot/efi/EFI/BOOT/BOOTX64.EFI",
                "write /boot/efi/EFI/BOOT/grub.cfg"
            ]
        );
        assert!(written(a, "/boot/efi/EFI/BOOT/grub.cfg").ends_with(
            "search --no-floppy --fs-uuid --set=root 3a4b-5c6d\nconfigfile /EFI/debian/grub.cfg\n"
        ));
    });
}

// ---------------------------------------------------------------------------------------------
// CentOS 7, BIOS: linux16, root on LVM (stays), resume on a second disk, anaconda device.map.

const C7_SWAP: &str = "8c9d0e1f-2a3b-4c4d-8e5f-6a7b8c9d0e1f";
const C7_DEFAULT: &str = "GRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=\"$(sed 's, release .*$,,g' /etc/system-release)\"\nGRUB_DEFAULT=saved\nGRUB_DISABLE_SUBMENU=true\nGRUB_TERMINAL_OUTPUT=\"console\"\nGRUB_CMDLINE_LINUX=\"crashkernel=auto rd.lvm.lv=centos/root resume=/dev/sdb1 rhgb quiet\"\nGRUB_DISABLE_RECOVERY=\"true\"\n";
const C7_MAP: &str =
    "# this device map was generated by anaconda\n(hd0)      /dev/sda\n(hd1)      /dev/sdb\n";
const C7_CFG: &str = r#"### BEGIN /etc/grub.d/10_linux ###
menuentry 'CentOS Linux (3.10.0-1160.el7.x86_64) 7 (Core)' --class centos --class gnu-linux --class gnu --class os --unrestricted $menuentry_id_option 'gnulinux-3.10.0-1160.el7.x86_64-advanced-5d3f' {
	load_video
	set gfxpayload=keep
	insmod gzio
	insmod part_msdos
	insmod xfs
	set root='hd0,msdos1'
	if [ x$feature_platform_search_hint = xy ]; then
	  search --no-floppy --fs-uuid --set=root --hint='hd0,msdos1'  0c1d2e3f-4a5b-4c6d-8e7f-8a9b0c1d2e3f
	else
	  search --no-floppy --fs-uuid --set=root 0c1d2e3f-4a5b-4c6d-8e7f-8a9b0c1d2e3f
	fi
	linux16 /vmlinuz-3.10.0-1160.el7.x86_64 root=/dev/mapper/centos-root ro crashkernel=auto rd.lvm.lv=centos/root resume=/dev/sdb1 rhgb quiet LANG=en_US.UTF-8
	initrd16 /initramfs-3.10.0-1160.el7.x86_64.img
}
menuentry 'CentOS Linux (0-rescue-0a1b2c) 7 (Core)' --class centos --class gnu-linux --class gnu --class os --unrestricted $menuentry_id_option 'gnulinux-0-rescue-0a1b2c-advanced-5d3f' {
	load_video
	insmod gzio
	set root='hd0,msdos1'
	linux16 /vmlinuz-0-rescue-0a1b2c root=/dev/mapper/centos-root ro crashkernel=auto rd.lvm.lv=centos/root resume=/dev/sdb1 rhgb quiet
	initrd16 /initramfs-0-rescue-0a1b2c.img
}
### END /etc/grub.d/10_linux ###
"#;

fn centos7() -> (Guest, Vec<VolumeReport>) {
    let fstab = format!("/dev/mapper/centos-root /                       xfs     defaults        0 0\nUUID=0c1d2e3f-4a5b-4c6d-8e7f-8a9b0c1d2e3f /boot                   xfs     defaults        0 0\nUUID={C7_SWAP} swap                    swap    defaults        0 0\n");
    let env = grubenv("saved_entry=CentOS Linux (3.10.0-1160.el7.x86_64) 7 (Core)\n");
    let g = Guest::new(&[
        (
            "/",
            &[
                ("/etc/fstab", fstab.as_str()),
                ("/etc/default/grub", C7_DEFAULT),
            ],
        ),
        (
            "/boot",
            &[
                ("/grub2/grub.cfg", C7_CFG),
                ("/grub2/grubenv", env.as_str()),
                ("/grub2/device.map", C7_MAP),
                ("/vmlinuz-3.10.0-1160.el7.x86_64", "k"),
            ],
        ),
    ]);
    let vols = vec![
        vol(
            "/dev/sda1",
            Some(0),
            Some(1),
            "xfs",
            "0c1d2e3f-4a5b-4c6d-8e7f-8a9b0c1d2e3f",
        ),
        vol("/dev/sda2", Some(0), Some(2), "LVM2_member", ""),
        vol("/dev/sdb1", Some(1), Some(1), "swap", C7_SWAP),
        vol(
            "/dev/mapper/centos-root",
            None,
            None,
            "xfs",
            "2f3e4d5c-6b7a-4988-8776-655443322110",
        ),
    ];
    (g, vols)
}

#[test]
fn centos7_linux16_mapper_root_stays_resume_fixed_device_map() {
    let (g, vols) = centos7();
    plan_twice(&g, &vols, "centos", "rhel", &console(), |a, notes, adds| {
        assert_eq!(
            targets(a),
            [
                "write /etc/default/grub",
                "write /boot/grub2/grub.cfg",
                "write /boot/grub2/device.map",
                "run grub2-mkconfig -o /boot/grub2/grub.cfg"
            ]
        );
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            written(a, "/boot/grub2/grub.cfg"),
            C7_CFG
                .replace("resume=/dev/sdb1", &format!("resume=UUID={C7_SWAP}"))
                .replace(
                    "rhgb quiet LANG=en_US.UTF-8\n",
                    &format!("rhgb quiet LANG=en_US.UTF-8 {adds}\n")
                )
                .replace("rhgb quiet\n", &format!("rhgb quiet {adds}\n"))
        );
        assert!(written(a, "/boot/grub2/grub.cfg").contains("root=/dev/mapper/centos-root ro"));
        assert_eq!(
            written(a, "/boot/grub2/device.map"),
            "# this device map was generated by anaconda\n(hd0)      /dev/vda\n(hd1)      /dev/vdb\n"
        );
        assert_eq!(
            written(a, "/etc/default/grub"),
            C7_DEFAULT.replace(
                "resume=/dev/sdb1 rhgb quiet\"",
                &format!("resume=UUID={C7_SWAP} rhgb quiet {adds}\"")
            )
        );
    });
}

#[test]
fn centos7_virtio_scsi_keeps_sd_names_in_device_map() {
    let (g, vols) = centos7();
    let opts = PlanOptions {
        block: BlockBus::VirtioScsi,
        ..Default::default()
    };
    plan_twice(&g, &vols, "centos", "rhel", &opts, |a, _, adds| {
        assert!(!adds.contains("console="));
        assert_eq!(
            targets(a),
            [
                "write /etc/default/grub",
                "write /boot/grub2/grub.cfg",
                "run grub2-mkconfig -o /boot/grub2/grub.cfg"
            ]
        );
        assert_eq!(
            written(a, "/boot/grub2/grub.cfg"),
            C7_CFG
                .replace("resume=/dev/sdb1", &format!("resume=UUID={C7_SWAP}"))
                .replace(
                    "LANG=en_US.UTF-8\n",
                    &format!("LANG=en_US.UTF-8{}\n", sp(adds))
                )
                .replace("rhgb quiet\n", &format!("rhgb quiet{}\n", sp(adds)))
        );
    });
}

// ---------------------------------------------------------------------------------------------
// SLES 15 SP5: resume by-id in GRUB_CMDLINE_LINUX_DEFAULT and grub.cfg; sysconfig untouched.

const S15_ROOT: &str = "0f3e2d1c-0b9a-4877-9665-5a4b3c2d1e0f";
const S15_SWAP: &str = "9a8b7c6d-0000-4111-8222-333344445555";
const S15_BYID: &str = "/dev/disk/by-id/ata-VBOX_HARDDISK_VB0a1b2c3d-4e5f6a7b-part3";

#[test]
fn sles15_default_grub_and_by_id_resume() {
    let default = format!("# If you change this file, run 'grub2-mkconfig -o /boot/grub2/grub.cfg' afterwards to update\n# /boot/grub2/grub.cfg.\nGRUB_DISTRIBUTOR=\nGRUB_DEFAULT=saved\nGRUB_HIDDEN_TIMEOUT=0\nGRUB_HIDDEN_TIMEOUT_QUIET=true\nGRUB_TIMEOUT=8\nGRUB_CMDLINE_LINUX_DEFAULT=\"splash=silent resume={S15_BYID} mitigations=auto quiet security=apparmor\"\nGRUB_CMDLINE_LINUX=\"\"\nGRUB_TERMINAL=\"gfxterm\"\nGRUB_GFXMODE=\"auto\"\nGRUB_DISABLE_OS_PROBER=\"true\"\n");
    let sysconfig = "## Path: System/Bootloader\n## Description: Bootloader configuration\n## Type:\tlist(grub,grub2,grub2-efi,none)\nLOADER_TYPE=\"grub2\"\nSECURE_BOOT=\"no\"\nTRUSTED_BOOT=\"no\"\nUPDATE_NVRAM=\"yes\"\n";
    let cfg = format!("if [ -s $prefix/grubenv ]; then\n  set have_grubenv=true\n  load_env\nfi\nset default=\"${{saved_entry}}\"\nmenuentry 'SLES 15-SP5'  --class sles --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-{S15_ROOT}' {{\n\tload_video\n\tset gfxpayload=keep\n\tinsmod gzio\n\tinsmod part_gpt\n\tinsmod btrfs\n\tset root='hd0,gpt2'\n\techo\t'Loading Linux 5.14.21-150500.55.28-default ...'\n\tlinux\t/boot/vmlinuz-5.14.21-150500.55.28-default root=UUID={S15_ROOT}  ${{extra_cmdline}} splash=silent resume={S15_BYID} mitigations=auto quiet security=apparmor\n\techo\t'Loading initial ramdisk ...'\n\tinitrd\t/boot/initrd-5.14.21-150500.55.28-default\n}}\n");
    let fstab = format!("UUID={S15_ROOT}  /      btrfs  defaults  0  0\nUUID={S15_ROOT}  /var   btrfs  subvol=/@/var  0  0\nUUID={S15_SWAP}  swap   swap   defaults  0  0\n");
    let env = grubenv("saved_entry=SLES 15-SP5\n");
    let g = Guest::new(&[(
        "/",
        &[
            ("/etc/fstab", fstab.as_str()),
            ("/etc/default/grub", default.as_str()),
            ("/etc/sysconfig/bootloader", sysconfig),
            ("/boot/grub2/grub.cfg", cfg.as_str()),
            ("/boot/grub2/grubenv", env.as_str()),
            ("/boot/vmlinuz-5.14.21-150500.55.28-default", "k"),
        ],
    )]);
    let vols = vec![
        vol("/dev/sda1", Some(0), Some(1), "vfat", ""),
        vol("/dev/sda2", Some(0), Some(2), "btrfs", S15_ROOT),
        vol("/dev/sda3", Some(0), Some(3), "swap", S15_SWAP),
    ];
    plan_twice(&g, &vols, "sles", "suse", &console(), |a, notes, adds| {
        assert_eq!(
            targets(a),
            [
                "write /etc/default/grub",
                "write /boot/grub2/grub.cfg",
                "run grub2-mkconfig -o /boot/grub2/grub.cfg"
            ]
        );
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            written(a, "/etc/default/grub"),
            default
                .replace(S15_BYID, &format!("UUID={S15_SWAP}"))
                .replace(
                    "GRUB_CMDLINE_LINUX=\"\"",
                    &format!("GRUB_CMDLINE_LINUX=\"{adds}\"")
                )
        );
        assert_eq!(
            written(a, "/boot/grub2/grub.cfg"),
            cfg.replace(S15_BYID, &format!("UUID={S15_SWAP}")).replace(
                "security=apparmor\n",
                &format!("security=apparmor {adds}\n")
            )
        );
    });
    assert_eq!(g.read("/etc/sysconfig/bootloader"), sysconfig);
}

// ---------------------------------------------------------------------------------------------
// SLES 11 SP4: GRUB Legacy menu.lst, DEFAULT_APPEND in /etc/sysconfig/bootloader, device.map.

#[test]
fn sles11_grub_legacy_menu_lst() {
    let root = "6d5c4b3a-2918-4776-8554-433221100fed";
    let swap = "1a2b3c4d-5e6f-4a0b-9c1d-2e3f4a5b6c7d";
    let menu = "# Modified by YaST2. Last modification on Tue Mar 12 10:00:00 UTC 2013\ndefault 0\ntimeout 8\n##YaST - generic_mbr\ngfxmenu (hd0,1)/boot/message\n##YaST - activate\n\n###Don't change this comment - YaST2 identifier: Original name: linux###\ntitle SUSE Linux Enterprise Server 11 SP4 - 3.0.101-63\n    root (hd0,1)\n    kernel /boot/vmlinuz-3.0.101-63-default root=/dev/sda2 resume=/dev/sda1 splash=silent crashkernel=256M-:128M showopts vga=0x314\n    initrd /boot/initrd-3.0.101-63-default\n\n###Don't change this comment - YaST2 identifier: Original name: failsafe###\ntitle Failsafe -- SUSE Linux Enterprise Server 11 SP4 - 3.0.101-63\n    root (hd0,1)\n    kernel /boot/vmlinuz-3.0.101-63-default root=/dev/sda2 showopts ide=nodma apm=off noresume edd=off x11failsafe vga=0x314\n    initrd /boot/initrd-3.0.101-63-default\n";
    let sysconfig = "## Path:\tSystem/Bootloader\n## Description:\tBootloader configuration\nLOADER_TYPE=\"grub\"\nDEFAULT_APPEND=\"resume=/dev/sda1 splash=silent crashkernel=256M-:128M showopts vga=0x314\"\nDEFAULT_VGA=\"0x314\"\nFAILSAFE_APPEND=\"showopts ide=nodma apm=off noresume edd=off x11failsafe vga=0x314\"\n";
    let fstab = "/dev/sda1            swap                 swap       defaults              0 0\n/dev/sda2            /                    ext3       acl,user_xattr        1 1\nproc                 /proc                proc       defaults              0 0\n";
    let g = Guest::new(&[(
        "/",
        &[
            ("/etc/fstab", fstab),
            ("/etc/sysconfig/bootloader", sysconfig),
            ("/boot/grub/menu.lst", menu),
            ("/boot/grub/device.map", "(hd0)\t/dev/sda\n"),
            ("/boot/vmlinuz-3.0.101-63-default", "k"),
        ],
    )]);
    let vols = vec![
        vol("/dev/sda1", Some(0), Some(1), "swap", swap),
        vol("/dev/sda2", Some(0), Some(2), "ext3", root),
    ];
    plan_twice(&g, &vols, "sles", "suse", &console(), |a, notes, adds| {
        assert_eq!(
            targets(a),
            [
                "write /etc/sysconfig/bootloader",
                "write /boot/grub/menu.lst",
                "write /boot/grub/device.map"
            ],
            "no grub-mkconfig for GRUB Legacy"
        );
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            written(a, "/etc/sysconfig/bootloader"),
            sysconfig.replace(
                "resume=/dev/sda1 splash=silent crashkernel=256M-:128M showopts vga=0x314\"",
                &format!("resume=UUID={swap} splash=silent crashkernel=256M-:128M showopts vga=0x314 {adds}\"")
            )
        );
        assert_eq!(
            written(a, "/boot/grub/menu.lst"),
            menu.replace("root=/dev/sda2", &format!("root=UUID={root}"))
                .replace("resume=/dev/sda1", &format!("resume=UUID={swap}"))
                .replace("vga=0x314\n", &format!("vga=0x314 {adds}\n"))
        );
        assert_eq!(written(a, "/boot/grub/device.map"), "(hd0)\t/dev/vda\n");
    });
}

// ---------------------------------------------------------------------------------------------
// Resolution corner cases, on hand-built inspection facts.

#[test]
fn unresolved_root_falls_back_to_fstab_root_and_mapper_stays() {
    let cfg = "menuentry 'a' {\n\tlinux /vmlinuz root=UUID=0000-dead ro\n}\nmenuentry 'b' {\n\tlinux /vmlinuz root=/dev/mapper/luks-1234 resume=/dev/sdc2\n}\n";
    let vols = vec![vol("/dev/sda1", Some(0), Some(1), "ext4", "1111-2222")];
    let mut l = LinuxInfo {
        family: "debian".into(),
        fstab: parse_fstab("/dev/sda1 / ext4 defaults 0 1\n", &vols),
        ..Default::default()
    };
    l.bootloader.kind = "grub2".into();
    l.bootloader.firmware = "bios".into();
    l.bootloader.config = Some("/boot/grub/grub.cfg".into());
    let mut inputs = PlanInputs::default();
    inputs
        .files
        .insert("/boot/grub/grub.cfg".into(), cfg.into());
    let ins = Inspection {
        volumes: vols,
        ..Default::default()
    };
    let mut notes = vec![];
    let opts = PlanOptions::default();
    let a = plan_bootloader(&l, &ins, &inputs, &opts, &mut notes);
    assert_eq!(a.len(), 1, "no /etc/default/grub: no grub-mkconfig run");
    let adds = sp(&additions(&l, &opts));
    assert_eq!(
        written(&a, "/boot/grub/grub.cfg"),
        cfg.replace("UUID=0000-dead ro", &format!("UUID=1111-2222 ro{adds}"))
            .replace("/dev/sdc2\n", &format!("/dev/sdc2{adds}\n"))
    );
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(notes[0].contains("root=UUID=0000-dead") && notes[0].contains("root=UUID=1111-2222"));
    assert!(notes[1].contains("root=/dev/mapper/luks-1234") && notes[1].contains("left as is"));
    assert!(notes[2].contains("resume=/dev/sdc2") && notes[2].contains("left as is"));
}

#[test]
fn missing_grub_cmdline_linux_is_appended_and_templates_render() {
    let mut l = LinuxInfo::default();
    l.bootloader.kind = "grub2".into();
    let mut inputs = PlanInputs::default();
    inputs
        .files
        .insert(DEFAULT_GRUB.into(), "GRUB_TIMEOUT=5".into());
    let mut notes = vec![];
    let a = plan_bootloader(&l, &Inspection::default(), &inputs, &console(), &mut notes);
    assert_eq!(
        written(&a, DEFAULT_GRUB),
        format!(
            "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"{}\"\n",
            additions(&l, &console())
        )
    );
    assert!(crate::plan::templates::names()
        .iter()
        .any(|n| n == "bootloader/efi-boot-grub.cfg.tera"));
}

#[test]
fn console_in_cmdline_default_still_reaches_recovery_entries_and_40_custom() {
    let u = "1111-2222";
    let vols = vec![vol("/dev/sda1", Some(0), Some(1), "ext4", u)];
    let mut l = LinuxInfo {
        family: "debian".into(),
        distro: "ubuntu".into(),
        version: "22.04".into(),
        ..Default::default()
    };
    l.bootloader.kind = "grub2".into();
    l.bootloader.firmware = "bios".into();
    l.bootloader.config = Some("/boot/grub/grub.cfg".into());
    let default = "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet console=tty1 console=ttyS0\"\nGRUB_CMDLINE_LINUX=\"\"\n";
    let cfg = format!("menuentry 'Ubuntu' {{\n\tlinux\t/boot/vmlinuz root=UUID={u} ro quiet console=tty1 console=ttyS0\n}}\nmenuentry 'Ubuntu (recovery mode)' {{\n\tlinux\t/boot/vmlinuz root=UUID={u} ro recovery nomodeset\n}}\n");
    let custom = "#!/bin/sh\nexec tail -n +3 $0\n# This file provides an easy way to add custom menu entries.\nmenuentry 'Old kernel' {\n\tlinux /boot/vmlinuz.old root=/dev/sda1 ro\n}\n";
    let mut inputs = PlanInputs::default();
    inputs.files.insert(DEFAULT_GRUB.into(), default.into());
    inputs
        .files
        .insert("/boot/grub/grub.cfg".into(), cfg.clone());
    inputs
        .files
        .insert("/etc/grub.d/40_custom".into(), custom.into());
    let ins = Inspection {
        volumes: vols,
        ..Default::default()
    };
    let opts = console();
    let mut notes = vec![];
    let a = plan_bootloader(&l, &ins, &inputs, &opts, &mut notes);
    let adds = additions(&l, &opts);
    let net = additions(&l, &PlanOptions::default());
    assert_eq!(
        targets(&a),
        [
            "write /etc/default/grub",
            "write /boot/grub/grub.cfg",
            "write /etc/grub.d/40_custom",
            "run grub-mkconfig -o /boot/grub/grub.cfg"
        ]
    );
    assert_eq!(
        written(&a, DEFAULT_GRUB),
        default.replace(
            "GRUB_CMDLINE_LINUX=\"\"",
            &format!("GRUB_CMDLINE_LINUX=\"{adds}\"")
        )
    );
    assert_eq!(
        written(&a, "/boot/grub/grub.cfg"),
        cfg.replace("console=ttyS0\n", &format!("console=ttyS0{}\n", sp(&net)))
            .replace("nomodeset\n", &format!("nomodeset {adds}\n"))
    );
    assert_eq!(
        written(&a, "/etc/grub.d/40_custom"),
        custom.replace("root=/dev/sda1 ro", &format!("root=UUID={u} ro {adds}"))
    );
    assert!(matches!(a[2].change, Change::WriteFile { mode: 0o755, .. }));
}

/// A UEFI guest's facts with these ESP files, the ESP mounted at /boot/efi by fstab.
fn uefi_facts(kind: &str, distro: &str, files: &[&str]) -> LinuxInfo {
    let vols = vec![vol("/dev/sda1", Some(0), Some(1), "vfat", "AB12-CD34")];
    let mut l = LinuxInfo {
        distro: distro.into(),
        fstab: parse_fstab("UUID=AB12-CD34 /boot/efi vfat defaults 0 2\n", &vols),
        ..Default::default()
    };
    l.bootloader.kind = kind.into();
    l.bootloader.firmware = "uefi".into();
    l.bootloader.esp = Some(crate::types::EspInfo {
        device: "/dev/sda1".into(),
        efi_files: files.iter().map(|s| s.to_string()).collect(),
        has_fallback: false,
    });
    l
}

#[test]
fn suse_shim_loads_grub_efi_and_systemd_boot_is_copied() {
    let l = uefi_facts(
        "grub2",
        "sles",
        &[
            "/EFI/opensuse/grubx64.efi",
            "/EFI/sles/MokManager.efi",
            "/EFI/sles/grub.efi",
            "/EFI/sles/shim.efi",
        ],
    );
    let mut notes = vec![];
    let a = plan_bootloader(
        &l,
        &Inspection::default(),
        &PlanInputs::default(),
        &PlanOptions::default(),
        &mut notes,
    );
    assert_eq!(
        targets(&a),
        [
            "copy /boot/efi/EFI/sles/shim.efi /boot/efi/EFI/BOOT/BOOTX64.EFI",
            "copy /boot/efi/EFI/sles/grub.efi /boot/efi/EFI/BOOT/grub.efi",
            "copy /boot/efi/EFI/sles/MokManager.efi /boot/efi/EFI/BOOT/MokManager.efi",
        ],
        "a shim beats a bare grub, the distro's directory beats others; no vendor grub.cfg, no stub"
    );
    assert!(wanted_inputs(&l).contains(&"/boot/efi/EFI/sles/grub.cfg".to_string()));

    let l = uefi_facts(
        "systemd-boot",
        "arch",
        &["/EFI/Boot/fbx64.efi", "/EFI/systemd/systemd-bootx64.efi"],
    );
    let mut notes = vec![];
    let a = plan_bootloader(
        &l,
        &Inspection::default(),
        &PlanInputs::default(),
        &PlanOptions::default(),
        &mut notes,
    );
    assert_eq!(
        targets(&a),
        ["copy /boot/efi/EFI/systemd/systemd-bootx64.efi /boot/efi/EFI/Boot/BOOTX64.EFI"],
        "the ESP's own spelling of the BOOT directory is kept"
    );
    assert!(notes[0].contains("systemd-boot"), "{notes:?}");

    let mut l = uefi_facts("grub2", "debian", &["/EFI/debian/grubx64.efi"]);
    l.bootloader.esp.as_mut().unwrap().has_fallback = true;
    let a = plan_bootloader(
        &l,
        &Inspection::default(),
        &PlanInputs::default(),
        &PlanOptions::default(),
        &mut vec![],
    );
    assert!(a.is_empty(), "{a:#?}");
}
