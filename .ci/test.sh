#!/usr/bin/env bash
# The README's test command: installs what a fresh machine lacks, checks formatting and lints,
# builds the fixtures (cached under target/fixtures), and runs every test including the boot matrix.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "== fmt";    cargo fmt --all -- --check
echo "== clippy"; cargo clippy --workspace --all-targets -- -D warnings
echo "== fixtures"
time cargo xtask fixtures
echo "== tests"
cargo test --workspace -- --test-threads=2
