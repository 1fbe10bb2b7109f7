#!/usr/bin/env bash
# The README's demo: installs what a fresh machine lacks, builds the demo guest (a Debian 12
# migrated from VMware that does not boot on virtio), and shows what revirt finds in it.
set -euo pipefail
cd "$(dirname "$0")/.."
export REVIRT_FIXTURE_CACHE="${REVIRT_FIXTURE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/revirt/fixtures}"
bash .ci/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet --bin revirt
cargo xtask fixtures --set real --only deb12-bios-mbr
img="$REVIRT_FIXTURE_CACHE/real/deb12-bios-mbr.qcow2"
echo "== revirt inspect $img"
time ./target/release/revirt inspect "$img"
