#!/usr/bin/env bash
# Point-in-time recovery: a `pgbench -i -s 200` cluster's base backup by `backstop run` (mode: physical:
# pg_basebackup -Ft -D - -X none, zstd, SHA-256, the tar and its backup manifest checked while streaming, read-back)
# against `pg_basebackup -Ft -D - -X none | zstd -T0` alone on the same cluster, taking turns, in the same run; and
# `backstop wal-push` of real 16 MiB segments (process start, hash, zstd, commit, read-back, catalog) against
# `zstd` alone on each. Median of RUNS runs (default 3). Writes the "## Point-in-time recovery" section of bench/RESULTS.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
work="${BENCH_WORK:-$here/work}/pitr"
runs="${RUNS:-3}"
scale="${SCALE:-200}"
mkdir -p "$work"

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
postgres_tools
build_backstop

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55433)
data="$work/data"
rm -rf "$data" "$work/out" "$work/state" && mkdir -p "$data"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$work"
as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
as_pg "$bin/pg_ctl" -D "$data" -l "$work/log" -w -o "-c listen_addresses=127.0.0.1 -p $port -k $work -c wal_level=replica" start >/dev/null
trap 'as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true' EXIT
echo "== pgbench -i -s $scale"
as_pg "$bin/pgbench" -i -s "$scale" -q -h 127.0.0.1 -p "$port" -U postgres postgres >/dev/null 2>&1
size=$(du -sb --exclude=pg_wal "$data" | cut -f1) # what a base backup holds (-X none: no pg_wal)

cat > "$work/backstop.yaml" <<YAML
catalog: $work/state/catalog.db
staging: $work/state/staging
targets: [ { name: local, kind: local, path: $work/out/backstop } ]
sources: [ { name: pg, kind: postgres, mode: physical, host: 127.0.0.1, port: $port, user: postgres, expect: { max_shrink: none } } ]
YAML

conn="host=127.0.0.1 port=$port user=postgres"
echo "== pg_basebackup -Ft -D - -X none | zstd -T0, and backstop run (the same, checked, hashed, read back), taking turns"
fresh="rm -rf $work/out $work/state && mkdir -p $work/out/backstop"
measure_turns floor "$fresh" "$bin/pg_basebackup -D - -Ft -X none --checkpoint=fast -d '$conn' | zstd -T0 -q -o $work/out/base.tar.zst" \
  backstop "$fresh" "$backstop -c $work/backstop.yaml run"
stored=$(du -sb "$work/out/backstop" | cut -f1)

echo "== wal-push of real 16 MiB segments, and zstd alone on each"
rm -rf "$work/segments" && mkdir -p "$work/segments"
mapfile -t segments < <(ls "$data/pg_wal" | grep -E '^[0-9A-F]{24}$' | sort | head -n "$((runs + 1))")
[ "${#segments[@]}" -gt "$runs" ] || { echo "fewer than $((runs + 1)) segments in pg_wal"; exit 1; }
for s in "${segments[@]}"; do cp "$data/pg_wal/$s" "$work/segments/$s"; done
# The first push opens the catalog's WAL tables: untimed, so every timed push is one like the server's thousandth.
$backstop -c "$work/backstop.yaml" wal-push --source pg "$work/segments/${segments[0]}" 2>/dev/null
for ((i = 1; i <= runs; i++)); do
  seg="$work/segments/${segments[$i]}"
  run_once zstd "true" "zstd -3 -q -f $seg -o $seg.zst"
  run_once walpush "true" "$backstop -c $work/backstop.yaml wal-push --source pg $seg"
done
summarize zstd; summarize walpush

mib() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1048576 }'; }
section="$work/section.md"
cat > "$section" <<MD
## Point-in-time recovery

\`bench/pitr.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores, PostgreSQL $("$bin/postgres" --version | awk '{print $3}'), a \`pgbench -i -s $scale\` cluster
($((size >> 20)) MiB data folder), median of $runs runs taking turns, page cache warm.

| | seconds | MiB/s of the data folder | peak RSS | stored |
| --- | ---: | ---: | ---: | ---: |
| \`pg_basebackup -Ft -D - -X none \| zstd -T0\` (the floor) | ${secs[floor]} | $(mib "$size" "${secs[floor]}") | $((rss[floor] / 1024)) MiB | |
| \`backstop run\` (mode: physical: the same, the tar and manifest checked while streaming, SHA-256, read back) | ${secs[backstop]} | $(mib "$size" "${secs[backstop]}") | $((rss[backstop] / 1024)) MiB | $((stored >> 20)) MiB |

Base backup throughput: **$(ratio "${secs[floor]}" "${secs[backstop]}") × the floor** (goal ≥ 0.9).

| one 16 MiB WAL segment | seconds | peak RSS |
| --- | ---: | ---: |
| \`zstd -3\` alone | ${secs[zstd]} | $((rss[zstd] / 1024)) MiB |
| \`backstop wal-push\` (a process: start, config, hash, zstd, commit, read back, catalog) | ${secs[walpush]} | $((rss[walpush] / 1024)) MiB |

WAL push of a 16 MiB segment: **${secs[walpush]} s** (goal ≤ 1 s).
MD
replace_section "Point-in-time recovery" "$section"
cat "$section"
