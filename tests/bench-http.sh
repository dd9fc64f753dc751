#!/usr/bin/env bash
# The HTTP load benchmark (issue 11): installs the `oha` load generator into
# target/tools (once), then runs `cargo bench -p dvhost --bench http`, which
# prints requests per second, p50 and p99 of a native axum no-op, the no-op
# plugin action, a native retrieve through the transport and the plugin's
# retrieve, with their ratios, and the resident memory of `dvhost serve`
# with 1,000 tenants. Not part of the test command: figures on a shared
# 2-core machine are noisy, so they go in the README with the load average.
#   DVHOST_BENCH_SECONDS (10)  DVHOST_BENCH_CONNECTIONS (8)  DVHOST_BENCH_TENANTS (1000)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x target/tools/bin/oha ]; then
  echo "== installing oha into target/tools"
  cargo install --locked oha@1.16.0 --root target/tools
fi
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
exec cargo bench -p dvhost --bench http
