#!/usr/bin/env bash
# The whole test suite on a fresh machine (Rust toolchain, plus the python3 and
# node/npm every machine of this kind has): installs the Python test
# dependencies into tests/.venv and the Node ones into tests/node_modules, then
# checks formatting, lints with warnings as errors, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=tests/.venv
if [ ! -x "$venv/bin/python" ] || ! cmp -s tests/requirements.txt "$venv/.installed-requirements"; then
  echo "== installing Python test dependencies into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$venv/.installed-requirements"
fi
export DVHOST_TEST_PYTHON="$PWD/$venv/bin/python"

modules=tests/node_modules
if [ ! -d "$modules" ] || ! cmp -s tests/package-lock.json "$modules/.installed-lock"; then
  echo "== installing Node test dependencies into $modules"
  npm ci --prefix tests --no-audit --no-fund
  cp tests/package-lock.json "$modules/.installed-lock"
fi

# The Python and Node client tests skip (with a printed reason) when these
# are unset; here they are always set, so CI never skips them.
DVHOST_TEST_NODE="$(command -v node)"
export DVHOST_TEST_NODE

# Plugins (examples, test fixtures) are components built for WASI 0.2.
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "== installing the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
