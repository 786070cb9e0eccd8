#!/usr/bin/env bash
# Restore benchmark (issue 5): `backstop restore` of the files data set of bench/run.sh and of a `pgbench -i -s 50`
# database, against the stock pipelines alone on the same stored artifacts (`zstd -d | tar -x`,
# `zstd -d | pg_restore -d`), and against the stock recipe that `restore --explain` prints, which checks the
# SHA-256 first as Backstop does (`sha256sum -c`, then `zstd -d | tar -x`). Stock and Backstop take turns, run by
# run. Median of RUNS runs (default 5). Writes the "## Restore" section of bench/RESULTS.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
work="${BENCH_WORK:-$here/work}"
runs="${RUNS:-5}"
scale="${SCALE:-50}"
mkdir -p "$work"
for tool in zstd tar /usr/bin/time; do command -v "$tool" >/dev/null || { echo "bench needs $tool"; exit 1; }; done

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build_backstop
files_data_set

# --- files: one snapshot, restored again and again
r="$work/restore"; rm -rf "$r"; mkdir -p "$r"
cat > "$r/files.yaml" <<YAML
catalog: $r/state/catalog.db
staging: $r/state/staging
targets: [ { name: local, kind: local, path: $r/store } ]
sources: [ { name: bench, kind: files, paths: [$data] } ]
YAML
$backstop -c "$r/files.yaml" run >/dev/null
stored=$(find "$r/store" -name 'files.tar.zst')
cat "$stored" > /dev/null
sum=$(sha256sum "$stored" | cut -d' ' -f1)
# Every run restores into a folder of its own, and they are removed only at the end: ext4 skips inodes deleted in
# the last minutes when it allocates, so deleting 20k files before each run made the next run pay for the last.
fresh_dest="d=$r/out/\$(date +%s%N); mkdir -p \$d; echo \$d > $r/dest"
echo "== stock: zstd -d | tar -x, and backstop restore (one read: hashed while staged, published when it matches), by turns"
measure_turns tar "$fresh_dest" "zstd -d -c -q $stored | tar -xf - -C \$(cat $r/dest)" \
  restore "$fresh_dest" "$backstop -c $r/files.yaml restore --source bench --to \$(cat $r/dest)"
echo "== the explained stock recipe: sha256sum -c, then zstd -d | tar -x"
measure recipe "$fresh_dest" "echo '$sum  $stored' | sha256sum -c --quiet && zstd -d -c -q $stored | tar -xf - -C \$(cat $r/dest)"
rm -rf "$r/out"
if [ -d /dev/shm ] && [ "$(df --output=avail -k /dev/shm | tail -n 1)" -gt $(( bytes / 1024 * 2 )) ]; then
  shm="/dev/shm/backstop-restore-bench"
  echo "== the same into tmpfs (no disk: CPU only), by turns"
  measure_turns tarshm "rm -rf $shm && mkdir -p $shm" "zstd -d -c -q $stored | tar -xf - -C $shm" \
    restoreshm "rm -rf $shm" "$backstop -c $r/files.yaml restore --source bench --to $shm"
  rm -rf "$shm"
fi

# --- PostgreSQL
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
pg=""
if [ -n "$bin" ]; then
  as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  p="$r/pg"; mkdir -p "$p"; [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$p"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_pg "$bin/initdb" -D "$p/data" -U postgres --auth=trust >/dev/null
  as_pg "$bin/pg_ctl" -D "$p/data" -l "$p/log" -w -o "-c listen_addresses=127.0.0.1 -p $port -k $p" start >/dev/null
  trap 'as_pg "$bin/pg_ctl" -D "$p/data" -m fast -w stop >/dev/null 2>&1 || true' EXIT
  as_pg "$bin/pgbench" -i -s "$scale" -q -h 127.0.0.1 -p "$port" -U postgres postgres >/dev/null 2>&1
  cat > "$r/pg.yaml" <<YAML
catalog: $r/pgstate/catalog.db
staging: $r/pgstate/staging
targets: [ { name: local, kind: local, path: $r/pgstore } ]
sources: [ { name: pgbench, kind: postgres, host: 127.0.0.1, port: $port, user: postgres, databases: [postgres] } ]
YAML
  $backstop -c "$r/pg.yaml" run >/dev/null
  dump=$(find "$r/pgstore" -name 'postgres.dump.zst')
  conn="-h 127.0.0.1 -p $port -U postgres"
  # Each run starts from a checkpoint, so the previous run's dirty buffers are not written during the next.
  settle="$bin/psql $conn -d postgres -qc CHECKPOINT"
  fresh="$bin/dropdb $conn --if-exists restored && $bin/createdb $conn restored && $settle"
  echo "== stock: zstd -d | pg_restore -d, and backstop restore --to postgresql://… (hash first, facts compared after), by turns"
  measure_turns pgstock "$fresh" "zstd -d -c -q $dump | $bin/pg_restore $conn -d restored --no-owner" \
    pgrestore "$bin/dropdb $conn --if-exists restored && $settle" "$backstop -c $r/pg.yaml restore --source pgbench --artifact postgres.dump --to postgresql://postgres@127.0.0.1:$port/restored"
  pg=1
fi

section="$r/section.md"
{
  echo "## Restore"
  echo
  echo "Recorded by \`bench/restore.sh\` on $(date -u +%Y-%m-%d) — same machine; median of $runs runs; the stored copy is in the page cache."
  echo
  echo "| what | seconds (median) | × stock pipeline | peak RSS |"
  echo "| --- | ---: | ---: | ---: |"
  echo "| files ($((bytes / 1048576)) MiB): \`zstd -d \| tar -x\` | ${secs[tar]} | 1.00 | $((${rss[tar]} / 1024)) MiB |"
  echo "| files: **backstop restore** | ${secs[restore]} | $(ratio "${secs[restore]}" "${secs[tar]}") | $((${rss[restore]} / 1024)) MiB |"
  echo "| files: the explained stock recipe (\`sha256sum -c\`, then \`zstd -d \| tar -x\`) | ${secs[recipe]} | $(ratio "${secs[recipe]}" "${secs[tar]}") | $((${rss[recipe]} / 1024)) MiB |"
  if [ -n "${secs[tarshm]:-}" ]; then
    echo "| files into tmpfs: \`zstd -d \| tar -x\` | ${secs[tarshm]} | 1.00 | $((${rss[tarshm]} / 1024)) MiB |"
    echo "| files into tmpfs: **backstop restore** | ${secs[restoreshm]} | $(ratio "${secs[restoreshm]}" "${secs[tarshm]}") | $((${rss[restoreshm]} / 1024)) MiB |"
  fi
  if [ -n "$pg" ]; then
    echo "| pgbench -s $scale: \`zstd -d \| pg_restore -d\` | ${secs[pgstock]} | 1.00 | $((${rss[pgstock]} / 1024)) MiB |"
    echo "| pgbench: **backstop restore** (creates the database, restores in one transaction, compares its tables and rows) | ${secs[pgrestore]} | $(ratio "${secs[pgrestore]}" "${secs[pgstock]}") | $((${rss[pgrestore]} / 1024)) MiB |"
  fi
  echo
  cat "$here/restore-notes.md"
} > "$section"
replace_section Restore "$section"
cat "$section"
