#!/usr/bin/env bash
# The long soak of issue 6 (not run in CI): stress-ng's file-system stressors, several workers
# each, on a metafs mount with a small store, a 1 s flusher and reclaim running (drop_caches every
# 2 s through the control file, plus `budget`/`policy` if this build has them); then unmount and
# fsck. Prints stress-ng's summary, the daemon's errors and fsck's verdict.
#
#   Tools/crashcheck/soak.sh [SECONDS [MOUNT ARGUMENTS...]]      (default 600)
#   e.g. Tools/crashcheck/soak.sh 120 --entry-timeout 1 --attr-timeout 1 --kernel-invalidate on
#
# Leaves nothing mounted, even when interrupted. Exit 0 when stress-ng reports no failed
# stressor, the daemon logged no error and fsck is clean.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-600}
shift || true
scripts/install-deps.sh stress-ng
swift build --product metafs >/dev/null
metafs=$(swift build --show-bin-path)/metafs

work=$(mktemp -d /tmp/metafs-soak.XXXXXX)
store=$work/soak.store
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
    [ -n "${reclaimer:-}" ] && kill "$reclaimer" 2>/dev/null || true
    if grep -qs " $mnt " /proc/mounts; then
        fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$metafs" mkfs "$store" --size 512M
"$metafs" mount "$store" "$mnt" --flush-interval 1 --threads 8 --pid-file "$work/daemon.pid" --log "$work/daemon.log" "$@"
ctl=$mnt/.metafs/control
echo "budget 32M" > "$ctl" 2>/dev/null && echo "reclaim budget: 32M" || echo "reclaim budget: not in this build (drop_caches only)"
echo "policy lru" > "$ctl" 2>/dev/null || true
( while sleep 2; do echo drop_caches > "$ctl" 2>/dev/null || exit 0; done ) &
reclaimer=$!

mkdir -p "$mnt/stress"
start=$(date +%s)
set +e
stress-ng --temp-path "$mnt/stress" --timeout "${seconds}s" --metrics-brief \
    --dir 2 --dentry 2 --rename 2 --link 2 --symlink 1 --hdd 2 --hdd-bytes 8M --filename 1 \
    --fallocate 1 --fallocate-bytes 8M --chmod 1 --utime 1 --xattr 1 --fstat 1 --lease 0 \
    2>&1 | tee "$work/stress.log"
stress_rc=${PIPESTATUS[0]}
set -e
end=$(date +%s)
kill "$reclaimer" 2>/dev/null || true
reclaimer=
cat "$mnt/.metafs/stats" | sed -n '1,25p'
fusermount3 -u "$mnt"
# Wait for the daemon's write-back to finish.
for _ in $(seq 1 300); do [ -e "$work/daemon.pid" ] || break; sleep 0.2; done
# Expected: setxattr of more than an xattr block holds fails with ENOSPC (logged by the commit).
errors=$(grep -E "commit failed|error" "$work/daemon.log" | grep -v -c "xattrs need" || true)
set +e
"$metafs" fsck "$store"
fsck_rc=$?
set -e
echo "soak: $((end - start)) s of stress-ng (exit $stress_rc), daemon log errors: $errors, fsck exit $fsck_rc"
echo "soak: work directory $work (daemon.log, stress.log)"
[ "$stress_rc" -eq 0 ] && [ "$errors" -eq 0 ] && [ "$fsck_rc" -eq 0 ]
