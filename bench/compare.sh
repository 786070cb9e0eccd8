#!/usr/bin/env bash
# Old and new build by turns (issue 26's check that a redesign costs nothing): the build of REV (default: the commit
# before the redesign began) and the build of the working tree take turns on the same data, run by run, median of RUNS
# (default 5): `backstop run` of bench/run.sh's files data set to a local folder (with its read-back), then
# `backstop restore` of that snapshot into a fresh folder. Ratios new/old and peak RSS. Writes the
# "## Old and new build by turns" section of bench/RESULTS.md.
# Usage: bench/compare.sh [REV]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
work="${BENCH_WORK:-$here/work}"
runs="${RUNS:-5}"
old_rev="${1:-4476581}"
mkdir -p "$work"
for tool in zstd tar git /usr/bin/time; do command -v "$tool" >/dev/null || { echo "bench needs $tool"; exit 1; }; done

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build_backstop
new="$backstop"
echo "== building the old backstop ($old_rev) the same way"
old_tree="$work/old-tree"; rm -rf "$old_tree" "$work/bin-old"; mkdir -p "$old_tree"
git -C "$repo" archive "$old_rev" | tar -x -C "$old_tree"
dotnet publish "$old_tree/src/Backstop/Backstop.csproj" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
  -o "$work/bin-old" --nologo -v quiet >/dev/null
old="dotnet $work/bin-old/backstop.dll"
old_label="$(git -C "$repo" rev-parse --short "$old_rev")"; new_label="$(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet || echo +)"
files_data_set

c="$work/compare"; rm -rf "$c"; mkdir -p "$c"
for b in old new; do
  cat > "$c/$b.yaml" <<YAML
catalog: $c/$b/state/catalog.db
staging: $c/$b/state/staging
targets: [ { name: local, kind: local, path: $c/$b/store } ]
sources: [ { name: bench, kind: files, paths: [$data] } ]
YAML
done
echo "== backstop run (files → local, with read-back), old and new by turns"
# Each timed command starts with nothing left to write back: the setup (untimed) removes what the last one wrote and
# syncs, so one build never pays for the other's dirty pages (restores into ever more folders spread 1.5-9.5 s).
measure_turns oldrun "rm -rf $c/old/state $c/old/store; sync" "$old -c $c/old.yaml run" \
  newrun "rm -rf $c/new/state $c/new/store; sync" "$new -c $c/new.yaml run"
# The last run of each left one snapshot: restore it again and again, each into a fresh folder (the last one removed first).
fresh_dest="rm -rf $c/out; d=$c/out/\$(date +%s%N); mkdir -p \$d; echo \$d > $c/dest; sync"
echo "== backstop restore of that snapshot, old and new by turns"
measure_turns oldrestore "$fresh_dest" "$old -c $c/old.yaml restore --source bench --to \$(cat $c/dest)" \
  newrestore "$fresh_dest" "$new -c $c/new.yaml restore --source bench --to \$(cat $c/dest)"
rm -rf "$c" "$old_tree" "$work/bin-old"

mib() { echo $(( $1 / 1024 )); }
section="$work/compare.md"
{
  echo "## Old and new build by turns"
  echo
  echo "Recorded by \`bench/compare.sh\` on $(date -u +%Y-%m-%d): the build of $old_label (before the redesign of issue 26) and of"
  echo "$new_label, taking turns run by run on bench/run.sh's data set ($((bytes / 1048576)) MiB); median of $runs runs, peak RSS the largest."
  echo
  echo "| | old | new | new / old | RSS old | RSS new |"
  echo "|---|---|---|---|---|---|"
  echo "| \`backstop run\` (files → local, read back) | ${secs[oldrun]} s | ${secs[newrun]} s | $(ratio "${secs[newrun]}" "${secs[oldrun]}") | $(mib "${rss[oldrun]}") MiB | $(mib "${rss[newrun]}") MiB |"
  echo "| \`backstop restore\` (files, into a fresh folder) | ${secs[oldrestore]} s | ${secs[newrestore]} s | $(ratio "${secs[newrestore]}" "${secs[oldrestore]}") | $(mib "${rss[oldrestore]}") MiB | $(mib "${rss[newrestore]}") MiB |"
  echo
  echo "Runs: old run ${times_of[oldrun]}s; new run ${times_of[newrun]}s; old restore ${times_of[oldrestore]}s; new restore ${times_of[newrestore]}s."
  echo
  echo "Each timed command starts after the last one's output is removed and synced (untimed), so neither build pays for the"
  echo "other's write-back. Measured so, a restore takes longer here than bench/restore.sh's figure (this disk's write-back is in"
  echo "every measurement), alike for both builds."
} > "$section"
replace_section "Old and new build by turns" "$section"
cat "$section"
