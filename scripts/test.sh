#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds, runs every test (unit and live-mount).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
swift test --skip-build "$@"
