#!/usr/bin/env bash
# Nights, as a team's backups live them: night 1 a full backup, night 2 nothing changed, night 3 about 1 % changed
# (200 small files rewritten, 16 MiB appended to a large file, 50 files added). Backstop, restic and borg each take
# the three nights on their own copy of the files data set of bench/run.sh, in one run; the seconds per night and the
# bytes each holds after night 3 are recorded in bench/RESULTS.md ("## Nights"), as ratios to restic.
# Usage: bench/nightly.sh        (RUNS is not used: every night runs once per tool, on a fresh copy of the data)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
work="${BENCH_WORK:-$here/work}"
runs=1
mkdir -p "$work"

if [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic borgbackup zstd time >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic borgbackup zstd time >/dev/null; }
fi
for tool in restic borg /usr/bin/time; do command -v "$tool" >/dev/null || { echo "bench needs $tool"; exit 1; }; done

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build_backstop
files_data_set
nights="$work/nights"
export RESTIC_PASSWORD=bench-only-password BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

# fresh: a copy of the data set for one tool's nights (changed in place on night 3), read into the page cache.
fresh() {
  rm -rf "$nights" && mkdir -p "$nights/out"
  cp -a "$data" "$nights/data" && rm -f "$nights/data/.complete"
  cat "$nights"/data/large/* > /dev/null; find "$nights/data/small" -type f -exec cat {} + > /dev/null
}

# change: about 1 % of the data set, the same for every tool (no randomness between tools).
change() {
  local d="$nights/data"
  local small large i
  mapfile -t small < <(find "$d/small" -type f | sort)
  mapfile -t large < <(find "$d/large" -type f | sort)
  for ((i = 0; i < 200; i++)); do printf 'changed on night 3\n' >> "${small[i]}"; done
  head -c $((16 << 20)) /dev/zero | tr '\0' 'L' >> "${large[0]}" || true
  mkdir -p "$d/small/new"
  for i in $(seq 1 50); do head -c 8192 /dev/urandom > "$d/small/new/file-$i"; done
}

# three_nights NAME INIT COMMAND: the three nights of one tool; sets secs[NAME-1..3] and held[NAME].
declare -A held
three_nights() {
  local name="$1" init="$2" cmd="$3"
  fresh
  bash -c "$init" >/dev/null 2>&1
  run_once "$name-1" "true" "$cmd"; summarize "$name-1"
  run_once "$name-2" "true" "$cmd"; summarize "$name-2"
  change
  run_once "$name-3" "true" "$cmd"; summarize "$name-3"
  held[$name]=$(du -sb "$nights/out" | cut -f1)
  echo "   $name holds $((held[$name] / 1048576)) MiB after night 3"
}

{ echo "catalog: $nights/out/state/catalog.db"; echo "staging: $nights/state/staging"
  echo "targets: [ { name: local, kind: local, path: $nights/out/backstop } ]"
  echo "sources: [ { name: bench, kind: files, paths: [$nights/data] } ]"; } > "$work/nightly.yaml"
echo "== backstop: three nights"
three_nights backstop "true" "$backstop -c $work/nightly.yaml run"
echo "== restic: three nights"
three_nights restic "restic init -q --repo $nights/out/restic" "restic backup -q --repo $nights/out/restic $nights/data"
echo "== borg: three nights"
three_nights borg "borg init -e none $nights/out/borg" "borg create --compression zstd,3 $nights/out/borg::night-\$(date +%s%N) $nights/data"
rm -rf "$nights"

mib() { echo $(( $1 / 1048576 )); }
section="$work/nights.md"
{
  echo "## Nights"
  echo
  echo "Recorded by \`bench/nightly.sh\` on $(date -u +%Y-%m-%d) — the data set of the table above, one copy per tool: night 1"
  echo "full, night 2 nothing changed, night 3 about 1 % changed (200 small files rewritten, 16 MiB appended to a large"
  echo "file, 50 files added). One run per night; bytes held are the repository's (Backstop: its target folder and catalog)."
  echo
  echo "| night | backstop | restic | borg | backstop × restic |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  for n in 1 2 3; do
    label=$([ $n = 1 ] && echo "1, full" || { [ $n = 2 ] && echo "2, nothing changed" || echo "3, 1 % changed"; })
    echo "| $label | ${secs[backstop-$n]} s | ${secs[restic-$n]} s | ${secs[borg-$n]} s | $(ratio "${secs[backstop-$n]}" "${secs[restic-$n]}") |"
  done
  echo "| bytes held after night 3 | $(mib "${held[backstop]}") MiB | $(mib "${held[restic]}") MiB | $(mib "${held[borg]}") MiB | $(ratio "${held[backstop]}" "${held[restic]}") |"
  echo
  echo "Goals (issue 21): unchanged night ≤ 1× restic, 1 % night ≤ 2× restic, bytes after three nights ≤ 1.3× restic."
} > "$section"
replace_section "Nights" "$section"
cat "$section"
