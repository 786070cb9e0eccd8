#!/usr/bin/env bash
# A disaster rehearsal of a reference estate against the sum of its drills: a PostgreSQL database (`pgbench -i -s 20`),
# an SQLite ledger and a folder of files (a fifth of the files data set of bench/run.sh), on two machines with a NAS
# of its own. `rehearse cluster` restores all three from the NAS (recovery.parallel: 2, in the kinds' order); the
# same three drilled one after another, from the same NAS, give the sum. Recorded in bench/RESULTS.md ("## Rehearsal").
# Usage: bench/rehearsal.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
work="${BENCH_WORK:-$here/work}"
runs=1
mkdir -p "$work"

if [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql sqlite3 zstd jq time >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql sqlite3 zstd jq time >/dev/null; }
fi
for tool in sqlite3 jq /usr/bin/time; do command -v "$tool" >/dev/null || { echo "bench needs $tool"; exit 1; }; done
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build_backstop
files_data_set
est="$work/estate"
rm -rf "$est" && mkdir -p "$est/files" "$est/pg"
mapfile -t folders < <(ls "$data/small")
for d in "${folders[@]:0:20}"; do cp -r "$data/small/$d" "$est/files/"; done   # a fifth of the small files
mapfile -t large < <(ls "$data/large")
for f in "${large[@]:0:2}"; do cp "$data/large/$f" "$est/files/"; done
sqlite3 "$est/ledger.db" "CREATE TABLE entries (id INTEGER PRIMARY KEY, amount INT, memo TEXT);
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) INSERT INTO entries (amount, memo) SELECT i, hex(randomblob(32)) FROM n;"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$est/pg"
as_pg "$bin/initdb" -D "$est/pg/data" -U postgres --auth=trust >/dev/null
as_pg "$bin/pg_ctl" -D "$est/pg/data" -l "$est/pg/log" -w -o "-c listen_addresses=127.0.0.1 -p $port -k $est/pg" start >/dev/null
trap 'as_pg "$bin/pg_ctl" -D "$est/pg/data" -m fast -w stop >/dev/null 2>&1 || true' EXIT
as_pg "$bin/pgbench" -i -s 20 -q -h 127.0.0.1 -p "$port" -U postgres postgres >/dev/null 2>&1

cat > "$est/backstop.yaml" <<YAML
machine: vps1
catalog: $est/state/catalog.db
staging: $est/state/staging
targets:
  - { name: disk, kind: local, path: $est/disk }
  - { name: nas, kind: local, path: $est/nas, machine: nas }
sources:
  - { name: shop, kind: postgres, machine: vps2, host: 127.0.0.1, port: $port, user: postgres, databases: [postgres] }
  - { name: ledger, kind: sqlite, machine: vps2, path: $est/ledger.db }
  - { name: files, kind: files, paths: [$est/files] }
recovery:
  parallel: 2
  scenarios: [ { name: cluster, rto: 1h, lost: { machines: all } } ]
YAML
$backstop -c "$est/backstop.yaml" run > /dev/null

echo "== the three drilled one after another, each from the NAS"
drilled=0
drill_wall=0
for s in shop ledger files; do
  run_once "drill-$s" "true" "$backstop -c $est/backstop.yaml --json drill --source $s --target nas > $work/drill-$s.json"
  summarize "drill-$s"
  t=$(jq '.drills[0].seconds' "$work/drill-$s.json")
  echo "   $s: restore and checks ${t}s"
  drilled=$(awk -v a="$drilled" -v b="$t" 'BEGIN { print a + b }')
  drill_wall=$(awk -v a="$drill_wall" -v b="${secs[drill-$s]}" 'BEGIN { print a + b }')
done
echo "== rehearse cluster (everything lost but the NAS)"
run_once rehearsal "true" "$backstop -c $est/backstop.yaml --json rehearse cluster > $work/rehearsal.json"
summarize rehearsal
rehearsed=$(jq '.seconds' "$work/rehearsal.json")
sum=$(jq '.sum_of_restores' "$work/rehearsal.json")
path=$(jq -r '.critical_path | join(" → ")' "$work/rehearsal.json")
echo "   measured total ${rehearsed}s (its restores alone: ${sum}s one after another); drills: ${drilled}s; critical path $path"

section="$work/rehearsal.md"
{
  echo "## Rehearsal"
  echo
  echo "Recorded by \`bench/rehearsal.sh\` on $(date -u +%Y-%m-%d) — a reference estate: PostgreSQL (\`pgbench -i -s 20\`), an"
  echo "SQLite ledger of 200,000 rows and 4,000 files plus two 64 MiB files, on two machines, with a NAS of its own."
  echo "\`rehearse cluster\` loses both machines and restores everything from the NAS, two at once (\`recovery.parallel: 2\`)."
  echo
  echo "| what | three drills, one after another | \`rehearse cluster\` | rehearsal × drills |"
  echo "| --- | ---: | ---: | ---: |"
  echo "| restores and checks (the measured RTO; a drill's leaves out its scratch server's start) | $drilled s | $sum s | $(ratio "$sum" "$drilled") |"
  echo "| wall clock of the estate's recovery (the rehearsal's total: servers started, restored, checked, two at once) | | $rehearsed s | |"
  echo "| whole commands (start, sweeps, the rebuilt view, the runbook) | $drill_wall s | ${secs[rehearsal]} s | $(ratio "${secs[rehearsal]}" "$drill_wall") |"
  echo
  echo "Critical path: $path. Goal (issue 22): the rehearsal below the sum of the drills, by running independent restores at"
  echo "once (here the database and the ledger; the files wait for both, as the kinds' default order says)."
} > "$section"
replace_section "Rehearsal" "$section"
cat "$section"
