#!/usr/bin/env bash
# A simulated month: 30 nights of about 1 % change each (200 small files rewritten, 16 MiB appended to one of the large
# files in turn, 50 files added), dated one day apart (Backstop under faketime; restic --time; borg --timestamp), with
# the default retention applied by all three after every night (last 3, daily 7, weekly 4, monthly 12). Records the
# bytes each holds at the end, and the seconds of the nights, in bench/RESULTS.md ("## A month"), as ratios to restic.
# Usage: bench/month.sh [NIGHTS]      (30 by default)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
work="${BENCH_WORK:-$here/work}"
nights_count="${1:-30}"
runs=1
mkdir -p "$work"

if [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic borgbackup zstd time faketime >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic borgbackup zstd time faketime >/dev/null; }
fi
for tool in restic borg faketime jq /usr/bin/time; do command -v "$tool" >/dev/null || { echo "bench needs $tool"; exit 1; }; done

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build_backstop
files_data_set
month="$work/month"
export RESTIC_PASSWORD=bench-only-password BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
keep="--keep-last 3 --keep-daily 7 --keep-weekly 4 --keep-monthly 12"

fresh() {
  rm -rf "$month" && mkdir -p "$month/out"
  cp -a "$data" "$month/data" && rm -f "$month/data/.complete"
}

# change N: night N's 1 %, the same for every tool.
change() {
  local n="$1" d="$month/data" small large i count
  mapfile -t small < <(find "$d/small" -type f -not -path '*/new-*' | sort)
  mapfile -t large < <(find "$d/large" -type f | sort)
  count=${#small[@]}
  for ((i = 0; i < 200; i++)); do printf 'changed on night %s\n' "$n" >> "${small[$(((n * 200 + i) % count))]}"; done
  head -c $((16 << 20)) /dev/zero | tr '\0' 'L' >> "${large[$((n % ${#large[@]}))]}" || true
  mkdir -p "$d/small/new-$n"
  for i in $(seq 1 50); do head -c 8192 /dev/urandom > "$d/small/new-$n/file-$i"; done
}

day() { echo "$(date -u -d "2027-01-01 +$(($1 - 1)) days" '+%Y-%m-%d') 02:00:00"; }

# month_of NAME COMMAND-TEMPLATE: the nights of one tool; DAY in the command is the night's date. Sets held[NAME], total[NAME].
declare -A held total
month_of() {
  local name="$1" cmd="$2" n sum=0
  for ((n = 1; n <= nights_count; n++)); do
    [ "$n" -gt 1 ] && change "$n"
    local started; started=$(date +%s.%N)
    bash -c "${cmd//DAY/$(day "$n")}" >/dev/null 2>"$work/last.err" || { echo "$name night $n failed:"; cat "$work/last.err"; exit 1; }
    sum=$(awk -v a="$sum" -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", a + e - s }')
  done
  held[$name]=$(du -sb "$month/out" | cut -f1)
  total[$name]=$sum
  echo "   $name: $nights_count nights in ${sum}s, holds $((held[$name] / 1048576)) MiB"
}

echo "== backstop: $nights_count nights"
fresh
{ echo "catalog: $month/out/state/catalog.db"; echo "staging: $month/staging"
  echo "retention: { last: 3, daily: 7, weekly: 4, monthly: 12 }"
  echo "targets: [ { name: local, kind: local, path: $month/out/backstop } ]"
  echo "sources: [ { name: bench, kind: files, paths: [$month/data] } ]"; } > "$work/month.yaml"
month_of backstop "faketime 'DAY' $backstop -c $work/month.yaml run"
listed="$($backstop -c "$work/month.yaml" list --json)"
kept=$(jq '[.snapshots[] | select(.condition == "valid")] | length' <<< "$listed")
fulls=$(jq '[.snapshots[] | select(.condition == "valid" and .level == 0)] | length' <<< "$listed")
full_mib=$(jq '[.snapshots[] | select(.condition == "valid" and .level == 0) | .stored_bytes] | add // 0 | . / 1048576 | floor' <<< "$listed")
level_mib=$(jq '[.snapshots[] | select(.condition == "valid" and .level > 0) | .stored_bytes] | add // 0 | . / 1048576 | floor' <<< "$listed")
echo "   backstop keeps $kept snapshots, $fulls of them fulls"

echo "== restic: $nights_count nights"
fresh
restic init -q --repo "$month/out/restic" >/dev/null
month_of restic "restic backup -q --repo $month/out/restic --time 'DAY' $month/data && restic forget -q --repo $month/out/restic $keep --prune"

echo "== borg: $nights_count nights"
fresh
borg init -e none "$month/out/borg" >/dev/null 2>&1
month_of borg "borg create --compression zstd,3 --timestamp \"\$(date -u -d 'DAY' +%Y-%m-%dT%H:%M:%S)\" $month/out/borg::night-\$(date +%s%N) $month/data && borg prune $keep $month/out/borg && borg compact $month/out/borg"
rm -rf "$month"

mib() { echo $(( $1 / 1048576 )); }
section="$work/month.md"
{
  echo "## A month"
  echo
  echo "Recorded by \`bench/month.sh\` on $(date -u +%Y-%m-%d): $nights_count nights one day apart, each about 1 % changed (200 small files"
  echo "rewritten, 16 MiB appended to one of the 8 large files in turn, 50 files added), retention last 3, daily 7, weekly 4,"
  echo "monthly 12 applied by each tool after every night. Backstop with its defaults (incremental: full_every 7d, max_chain 14)."
  echo
  echo "| | backstop | restic | borg | backstop × restic |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  echo "| bytes held at the end | $(mib "${held[backstop]}") MiB | $(mib "${held[restic]}") MiB | $(mib "${held[borg]}") MiB | $(ratio "${held[backstop]}" "${held[restic]}") |"
  echo "| seconds, all nights and retention | ${total[backstop]} s | ${total[restic]} s | ${total[borg]} s | $(ratio "${total[backstop]}" "${total[restic]}") |"
  echo
  echo "Backstop keeps $kept snapshots at the end: $fulls fulls ($full_mib MiB) and $((kept - fulls)) levels ($level_mib MiB). Goal (issue 21): ≤ 2× restic's bytes."
  echo "Where the bytes go: mostly fulls. Each kept weekly snapshot keeps its own chain, and each chain starts with a full"
  echo "(full_every 7d), while restic and borg store each chunk once across all snapshots. The levels add the rest: a level"
  echo "stores every changed file whole, and here one large file grows by 16 MiB each night, so each level holds a whole"
  echo "large file (64 MiB and more) where restic and borg store the 16 MiB appended. Stock-tar chains cannot share data"
  echo "between fulls; a longer full_every trades fewer fulls for longer chains (and longer restores)."
} > "$section"
replace_section "A month" "$section"
cat "$section"
