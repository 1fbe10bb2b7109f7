#!/usr/bin/env bash
# Installs the system packages revirt's build, tests and fixtures need on a fresh Debian 12 machine.
# Idempotent: does nothing when everything is already present.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PKGS=(libguestfs-tools libguestfs-dev libguestfs-xfs linux-image-amd64 supermin
      libhivex-dev libhivex-bin libclang-dev ntfs-3g ntfs-3g-dev debootstrap dosfstools mtools fdisk gdisk
      cpio zstd xz-utils lz4 bzip2 ovmf grub-efi-amd64-bin grub-pc-bin xfsprogs lvm2
      e2fsprogs btrfs-progs xorriso python3 virt-v2v nbdkit time guestfs-tools libxml2-utils
      libext2fs-dev libnbd-dev rpm cryptsetup-bin)

missing=()
for p in qemu-system-x86 "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all system packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
# qemu-system-x86 from bookworm needs the qemu-utils of the same release; a machine may carry a
# newer backported qemu-utils, so pin qemu-utils to the version qemu-system-x86 depends on.
want=$(apt-cache show qemu-system-x86 | awk '/^Depends:/ {print; exit}' |
       grep -o 'qemu-system-common (= [^)]*)' | sed 's/.*(= \(.*\))/\1/' || true)
have=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
if [ -n "$want" ] && [ "$have" != "$want" ]; then
  $SUDO apt-get install -y -qq --no-install-recommends --allow-downgrades \
    qemu-system-x86 "qemu-utils=$want"
else
  $SUDO apt-get install -y -qq --no-install-recommends qemu-system-x86
fi
$SUDO apt-get install -y -qq --no-install-recommends "${PKGS[@]}"
echo "deps: done"
