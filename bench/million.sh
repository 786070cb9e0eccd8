#!/usr/bin/env bash
# Change detection at scale: a tree of 1,000,000 small files (1,000 folders of 1,000), backed up once (a full), then
# again with nothing changed (a level: every file lstat'ed and compared with the listing, none read). Records the
# seconds and peak memory of both in bench/RESULTS.md ("## A million files"). Goal (issue 21): the unchanged night in
# ≤ 30 s, memory ≤ 150 MiB.
# Usage: bench/million.sh [FOLDERS] [FILES_PER_FOLDER]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
work="${BENCH_WORK:-$here/work}"
folders="${1:-1000}"
per="${2:-1000}"
runs=1
mkdir -p "$work"
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build_backstop
tree="$work/million"
if [ ! -f "$tree/.complete-$folders-$per" ]; then
  echo "== making $((folders * per)) files in $tree"
  rm -rf "$tree" && mkdir -p "$tree/data"
  for ((d = 0; d < folders; d++)); do
    mkdir "$tree/data/d$d"
    (cd "$tree/data/d$d" && seq -f 'file-%g' 1 "$per" | xargs touch)
  done
  touch "$tree/.complete-$folders-$per"
fi
rm -rf "$tree/out"
{ echo "catalog: $tree/out/state/catalog.db"; echo "staging: $tree/out/staging"
  echo "targets: [ { name: local, kind: local, path: $tree/out/backstop } ]"
  echo "sources: [ { name: million, kind: files, paths: [$tree/data], expect: { allow_empty: true } } ]"; } > "$work/million.yaml"
run_once full "true" "$backstop -c $work/million.yaml run"; summarize full
run_once unchanged "true" "$backstop -c $work/million.yaml run"; summarize unchanged
listed="$($backstop -c "$work/million.yaml" list --json)"
stored=$(jq '.snapshots[-1].stored_bytes' <<< "$listed")
changed=$(jq '.snapshots[-1].facts.changed_files' <<< "$listed")
files=$(jq '.snapshots[-1].facts.files' <<< "$listed")
section="$work/million.md"
{
  echo "## A million files"
  echo
  echo "Recorded by \`bench/million.sh\` on $(date -u +%Y-%m-%d): $files empty files in $folders folders, hot cache."
  echo
  echo "| run | seconds | peak RSS |"
  echo "| --- | ---: | ---: |"
  echo "| full | ${secs[full]} s | $((rss[full] / 1024)) MiB |"
  echo "| nothing changed ($changed files stored, $((stored / 1024)) KiB stored with the listing) | ${secs[unchanged]} s | $((rss[unchanged] / 1024)) MiB |"
  echo
  echo "Goals (issue 21): change detection of 1 million unchanged files in ≤ 30 s; memory ≤ 150 MiB."
} > "$section"
replace_section "A million files" "$section"
cat "$section"
