#!/usr/bin/env bash
# Drill benchmark (issue 11): `backstop drill` of the files data set of bench/run.sh and of a `pgbench -i -s 50`
# database, against the stock restore pipeline on the same stored artifacts in the same run (`zstd -d | tar -x` into a
# new folder; `createdb` and `zstd -d | pg_restore -d` into a running server). The drill also checks what it restored
# (facts compared; the PostgreSQL drill counts every table's rows exactly) and sets its scratch place up and removes
# it: the table gives the whole command's time and the RTO the drill measured (restore and checks, without setting
# up the throwaway cluster). Stock and drill take turns, run by run. Median of RUNS runs (default 3). Writes the
# "## Drill" section of bench/RESULTS.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
work="${BENCH_WORK:-$here/work}"
runs="${RUNS:-3}"
scale="${SCALE:-50}"
mkdir -p "$work"
for tool in zstd tar python3 /usr/bin/time; do command -v "$tool" >/dev/null || { echo "bench needs $tool"; exit 1; }; done

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build_backstop
files_data_set

r="$work/drill"; rm -rf "$r"; mkdir -p "$r/store"
median_rto() { # the drills' own measured RTO (seconds), median of the runs recorded in the catalog's evidence files
  python3 - "$1" <<'PY'
import json, glob, statistics, sys
values = [json.load(open(f))["seconds"] for f in glob.glob(sys.argv[1] + "/*.json")]
print(f"{statistics.median(values):.2f}" if values else "-")
PY
}
median_setup() {
  python3 - "$1" <<'PY'
import json, glob, statistics, sys
values = [json.load(open(f))["phases"].get("setup", 0) for f in glob.glob(sys.argv[1] + "/*.json")]
print(f"{statistics.median(values):.2f}" if values else "-")
PY
}

# --- files
cat > "$r/files.yaml" <<YAML
catalog: $r/state/catalog.db
staging: $r/state/staging
targets: [ { name: local, kind: local, path: $r/store } ]
sources: [ { name: bench, kind: files, paths: [$data] } ]
YAML
$backstop -c "$r/files.yaml" run >/dev/null
stored=$(find "$r/store" -name 'files.tar.zst')
cat "$stored" > /dev/null
fresh_dest="d=$r/out/\$(date +%s%N); mkdir -p \$d; echo \$d > $r/dest"
echo "== files: stock zstd -d | tar -x, and backstop drill (restore into a scratch folder, facts compared, folder removed), by turns"
measure_turns tar "$fresh_dest" "zstd -d -c -q $stored | tar -xf - -C \$(cat $r/dest)" \
  drill "true" "$backstop -c $r/files.yaml drill --source bench"
rm -rf "$r/out"
files_rto=$(median_rto "$r/state/drills")

# --- PostgreSQL: the stock restore into the running server; the drill into its own throwaway cluster
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
pg=""
if [ -n "$bin" ]; then
  as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  p="$r/pg"; mkdir -p "$p"; [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$p"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_pg "$bin/initdb" -D "$p/data" -U postgres --auth=trust >/dev/null
  as_pg "$bin/pg_ctl" -D "$p/data" -l "$p/log" -w -o "-c listen_addresses=127.0.0.1 -p $port -k $p -c fsync=off -c full_page_writes=off -c synchronous_commit=off" start >/dev/null
  trap 'as_pg "$bin/pg_ctl" -D "$p/data" -m fast -w stop >/dev/null 2>&1 || true' EXIT
  as_pg "$bin/pgbench" -i -s "$scale" -q -h 127.0.0.1 -p "$port" -U postgres postgres >/dev/null 2>&1
  mkdir -p "$r/pgstore"
  cat > "$r/pg.yaml" <<YAML
catalog: $r/pgstate/catalog.db
staging: $r/pgstate/staging
targets: [ { name: local, kind: local, path: $r/pgstore } ]
sources: [ { name: pgbench, kind: postgres, host: 127.0.0.1, port: $port, user: postgres, databases: [postgres] } ]
YAML
  $backstop -c "$r/pg.yaml" run >/dev/null
  dump=$(find "$r/pgstore" -name 'postgres.dump.zst')
  conn="-h 127.0.0.1 -p $port -U postgres"
  settle="$bin/psql $conn -d postgres -qc CHECKPOINT"
  fresh="$bin/dropdb $conn --if-exists restored && $bin/createdb $conn restored && $settle"
  echo "== pgbench -s $scale: stock zstd -d | pg_restore -d (same fsync-off settings as the drill's cluster), and backstop drill (throwaway cluster), by turns"
  measure_turns pgstock "$fresh" "zstd -d -c -q $dump | $bin/pg_restore $conn -d restored --no-owner" \
    pgdrill "$settle" "$backstop -c $r/pg.yaml drill --source pgbench"
  pg_rto=$(median_rto "$r/pgstate/drills")
  pg_setup=$(median_setup "$r/pgstate/drills")
  pg=1
fi

section="$r/section.md"
{
  echo "## Drill"
  echo
  echo "Recorded by \`bench/drill.sh\` on $(date -u +%Y-%m-%d) — same machine; median of $runs runs, stock and drill by turns; the stored copy is in the page cache."
  echo
  echo "| what | seconds (median) | × stock pipeline | measured RTO (drill's own) | peak RSS |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  echo "| files ($((bytes / 1048576)) MiB): \`zstd -d \| tar -x\` | ${secs[tar]} | 1.00 | | $((${rss[tar]} / 1024)) MiB |"
  echo "| files: **backstop drill** (restore into a scratch folder, files, bytes, folders and links compared, folder removed) | ${secs[drill]} | $(ratio "${secs[drill]}" "${secs[tar]}") | $files_rto s ($(ratio "$files_rto" "${secs[tar]}")×) | $((${rss[drill]} / 1024)) MiB |"
  if [ -n "$pg" ]; then
    echo "| pgbench -s $scale: \`createdb\`, \`zstd -d \| pg_restore -d\` | ${secs[pgstock]} | 1.00 | | $((${rss[pgstock]} / 1024)) MiB |"
    echo "| pgbench: **backstop drill** (initdb and a throwaway server, globals and the database restored, every table's rows counted, server removed) | ${secs[pgdrill]} | $(ratio "${secs[pgdrill]}" "${secs[pgstock]}") | $pg_rto s ($(ratio "$pg_rto" "${secs[pgstock]}")×); setup $pg_setup s apart | $((${rss[pgdrill]} / 1024)) MiB |"
  fi
  echo
  echo "The goal is a drill within 1.2× of the stock restore on the same data. \"× stock\" compares the whole \`drill\` command"
  echo "(start-up, scratch setup and removal included) with the stock pipeline alone; the measured RTO is what the drill"
  echo "itself reports and records: the restore and its checks, wall clock, without setting the throwaway cluster up."
} > "$section"
replace_section Drill "$section"
cat "$section"
