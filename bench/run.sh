#!/usr/bin/env bash
# Backstop's benchmark: `backstop run` of a files source to a local target (including its read-back verify)
# against the floor (tar | zstd -3 -T0) and against restic and borg, on the same data, in the same run.
# Median of RUNS runs (default 3), ratios, peak RSS. Writes bench/RESULTS.md.
# Usage: bench/run.sh            (installs restic, borgbackup, zstd, time with apt-get when root)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
work="${BENCH_WORK:-$here/work}"
runs="${RUNS:-3}"
mkdir -p "$work"

if [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic borgbackup zstd time >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic borgbackup zstd time >/dev/null; }
fi
for tool in restic borg zstd tar /usr/bin/time; do command -v "$tool" >/dev/null || { echo "bench needs $tool"; exit 1; }; done

# measure, ratio, build_backstop, files_data_set
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build_backstop
files_data_set   # made once, then read into the page cache for everyone
files=$(find "$data" -type f ! -name .complete | wc -l)

cfg() { # cfg FILE PATHS...
  local file="$1"; shift
  { echo "catalog: $work/state/catalog.db"; echo "staging: $work/state/staging"
    echo "targets: [ { name: local, kind: local, path: $work/out/backstop } ]"
    echo "sources: [ { name: bench, kind: files, paths: [$(IFS=,; echo "$*")] } ]"; } > "$file"
}
cfg "$work/backstop.yaml" "$data"
cfg "$work/backstop-4x.yaml" "$data" "$data" "$data" "$data"

echo "== floor: tar -cf - | zstd -3 -T0"
measure floor "rm -rf $work/out && mkdir -p $work/out" "tar -cf - -C $data . | zstd -3 -T0 -q -o $work/out/floor.tar.zst"
floor_size=$(stat -c %s "$work/out/floor.tar.zst")
echo "== backstop run (files → local, with read-back verify)"
measure backstop "rm -rf $work/out $work/state && mkdir -p $work/out/backstop" "$backstop -c $work/backstop.yaml run"
backstop_size=$(du -sb "$work/out/backstop" | cut -f1)
echo "== restic backup (full, new repository)"
export RESTIC_PASSWORD=bench-only-password
measure restic "rm -rf $work/out && mkdir -p $work/out && restic init -q --repo $work/out/restic" "restic backup -q --repo $work/out/restic $data"
restic_size=$(du -sb "$work/out/restic" | cut -f1)
echo "== borg create --compression zstd,3 (new repository)"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
measure borg "rm -rf $work/out && mkdir -p $work/out && borg init -e none $work/out/borg" "borg create --compression zstd,3 $work/out/borg::a $data"
borg_size=$(du -sb "$work/out/borg" | cut -f1)
echo "== backstop on the data set ×4 (memory must stay flat)"
measure backstop4x "rm -rf $work/out $work/state && mkdir -p $work/out/backstop" "$backstop -c $work/backstop-4x.yaml run"
rm -rf "$work/out" "$work/state"

mib() { echo $(( $1 / 1024 )); }
machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -sr)"
{
  echo "# Benchmark results"
  echo
  echo "Recorded by \`bench/run.sh\` on $(date -u +%Y-%m-%d) — $machine."
  echo "Data set: $files files, $((bytes / 1048576)) MiB (about 20,000 files of 1–64 KiB and eight 64 MiB files, half text, half random),"
  echo "read from the page cache by every tool. Median of $runs runs; peak RSS is the largest of the runs."
  echo
  echo "| what | seconds (median) | × floor | × restic | peak RSS | stored |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  echo "| floor: \`tar -cf - \| zstd -3 -T0\` | ${secs[floor]} | 1.00 | $(ratio "${secs[floor]}" "${secs[restic]}") | $(mib "${rss[floor]}") MiB | $((floor_size / 1048576)) MiB |"
  echo "| **backstop run** (files → local, fsync, read-back XXH3-128 and tar check) | ${secs[backstop]} | $(ratio "${secs[backstop]}" "${secs[floor]}") | $(ratio "${secs[backstop]}" "${secs[restic]}") | $(mib "${rss[backstop]}") MiB | $((backstop_size / 1048576)) MiB |"
  echo "| restic backup (new repository) | ${secs[restic]} | $(ratio "${secs[restic]}" "${secs[floor]}") | 1.00 | $(mib "${rss[restic]}") MiB | $((restic_size / 1048576)) MiB |"
  echo "| borg create --compression zstd,3 | ${secs[borg]} | $(ratio "${secs[borg]}" "${secs[floor]}") | $(ratio "${secs[borg]}" "${secs[restic]}") | $(mib "${rss[borg]}") MiB | $((borg_size / 1048576)) MiB |"
  echo "| backstop run, data ×4 (same files listed four times) | ${secs[backstop4x]} | $(ratio "${secs[backstop4x]}" "${secs[floor]}") | | $(mib "${rss[backstop4x]}") MiB | |"
  echo
  echo "Goals (issue 2): backstop ≤ 1.2× floor and ≤ 0.6× restic; peak RSS ≤ 150 MiB and flat at ×4."
} > "$here/RESULTS.md.new"
if [ -f "$here/RESULTS.md" ] && grep -q '^## Notes' "$here/RESULTS.md"; then
  sed -n '/^## Notes/,$p' "$here/RESULTS.md" | { echo; cat; } >> "$here/RESULTS.md.new"
fi
mv "$here/RESULTS.md.new" "$here/RESULTS.md"
cat "$here/RESULTS.md"
