#!/usr/bin/env bash
# metafs's main job, end to end: install what is missing, build, then for each main reclaim
# setting make a fresh store, mount it under a small cache budget, run metadata-heavy workloads
# (a tree of files walked with stat, a fragmenting delete, a flood of negative lookups), sample
# the caches and the reclaim throughout, unmount, fsck, and write a report: a table per workload
# and charts (slab memory and pages freed over time, one line per setting).
# `metafs compare` leaves nothing mounted, even when interrupted.
#
#   scripts/demo.sh [REPORT_DIR]        (default ./metafs-report)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh gnuplot-nox
swift build -c release --product metafs
metafs=$(swift build -c release --show-bin-path)/metafs
report=${1:-$PWD/metafs-report}
rm -rf "$report"

"$metafs" compare \
    --workloads tree,fragment,negative \
    --setting lru:policy=lru \
    --setting page:policy=page \
    --setting page-segregated:policy=page,segregate=on \
    --budget 4M --shrink 25% --scale 0.4 --threads 2 --store-size 1G \
    --report "$report"

echo
echo "report: $report/report.md (tables), $report/charts/*.png (charts), $report/samples.csv"
