#!/usr/bin/env bash
# The README's demo: installs what a fresh machine lacks, builds the demo guest (a Debian 12
# migrated from VMware that does not boot on virtio), shows what revirt finds, repairs it into a
# qcow2 overlay (the demo guest is never modified), and boots the result on virtio under qemu.
set -euo pipefail
cd "$(dirname "$0")/.."
export REVIRT_FIXTURE_CACHE="${REVIRT_FIXTURE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/revirt/fixtures}"
bash .ci/deps.sh
export PATH="${HOME:-/root}/.cargo/bin:$PATH"
cargo build --release --quiet --bin revirt
cargo xtask fixtures --set real --only deb12-bios-mbr
img="$REVIRT_FIXTURE_CACHE/real/deb12-bios-mbr.qcow2"
out="$(mktemp -d)/deb12-bios-mbr.repaired.qcow2"
echo "== revirt inspect $img"
./target/release/revirt inspect "$img"
echo "== revirt plan (dry run)"
./target/release/revirt plan "$img"
echo "== revirt repair -> $out"
time ./target/release/revirt repair "$img" --output "$out" --report "${out%.qcow2}.report.json"
echo "== boot the repaired overlay on virtio-blk + virtio-net (qemu, TCG if KVM is unusable)"
cargo xtask boot "$out" --platform virtio-blk --firmware bios --timeout 600
