#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and the integration tests that
# drive real berthd daemons with the real docker CLI and berth. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --bins --locked
cargo test --workspace --locked
