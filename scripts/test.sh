#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and the integration tests that
# drive real berthd daemons with the real docker CLI and berth. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# berthd's modules depend on each other one way only (docs/ARCHITECTURE.md).
python3 scripts/modgraph.py
cargo build --workspace --bins --locked
# nextest runs each test in its own process and ends one that hangs
# (.config/nextest.toml); plain cargo test where nextest is missing.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked
  # The docker CLI tests again against a rootless berthd (the ones that cannot
  # apply are listed there with the reason).
  scripts/rootless-subset.sh
else
  cargo test --workspace --locked
  BERTH_TEST_ROOTLESS=1 cargo test -p berth-tests --locked --test exec -- \
    --skip privileged_exec_gets_every_capability_the_daemon_has
fi
