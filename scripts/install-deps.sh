#!/usr/bin/env bash
# Installs what metafs needs on a fresh Debian machine with Swift: libfuse3 (headers and
# fusermount3) attr (setfattr/getfattr, used by the tests) and bc (the demo's arithmetic). Skips apt when all are present.
set -euo pipefail
need=()
for pkg in libfuse3-dev fuse3 attr bc; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -e /dev/fuse ] || { modprobe fuse 2>/dev/null || true; }
[ -e /dev/fuse ] || { echo "error: /dev/fuse is missing (load the fuse module)" >&2; exit 1; }
