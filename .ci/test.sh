#!/usr/bin/env bash
# The README's test command: installs what a fresh machine lacks, checks formatting and lints,
# fuzzes every parser for a short budget, builds the fixtures (cached in $REVIRT_FIXTURE_CACHE),
# and runs every test including the boot matrix.
set -euo pipefail
cd "$(dirname "$0")/.."
# Built fixture images live outside the clone, keyed by recipe hashes, so a fresh clone on the
# same machine reuses them (a debootstrap base and four guests take ~10 min to build).
export REVIRT_FIXTURE_CACHE="${REVIRT_FIXTURE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/revirt/fixtures}"
bash .ci/deps.sh
export PATH="${HOME:-/root}/.cargo/bin:$PATH"
echo "== fmt";    cargo fmt --all -- --check
echo "== clippy"; cargo clippy --workspace --all-targets -- -D warnings
echo "== fuzz";   cargo xtask fuzz --ci
echo "== fixtures"
time cargo xtask fixtures
echo "== tests"
cargo test --workspace --no-fail-fast -- --test-threads=2
