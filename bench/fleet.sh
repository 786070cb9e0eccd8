#!/usr/bin/env bash
# A fleet's catalog on PostgreSQL: (1) status over SOURCES sources × SNAPSHOTS snapshots each (an artifact and a copy
# each, generated in the catalog's own schema by SQL), answered by serve's /api/status (a warm process, as the
# dashboard and monitoring ask it) and by `backstop status --json` (a process each time: .NET's start included);
# (2) AGENTS agents (separate processes, machines of their own) committing at once: every snapshot committed, the
# catalog's lock waits over 100 ms as PostgreSQL logs them (log_lock_waits), and the slowest run against one alone.
# Writes the "## A fleet on PostgreSQL" section of bench/RESULTS.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
work="${BENCH_WORK:-$here/work}/fleet"
runs="${RUNS:-5}"
sources="${SOURCES:-1000}"
snapshots="${SNAPSHOTS:-1000}"
agents="${AGENTS:-20}"
mkdir -p "$work"

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
postgres_tools
build_backstop

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
data="$work/data"
rm -rf "$data" "$work/agents" "$work/state" && mkdir -p "$data"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$work"
as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
as_pg "$bin/pg_ctl" -D "$data" -l "$work/log" -w -o "-c listen_addresses=127.0.0.1 -p $port -k $work -c log_lock_waits=on -c deadlock_timeout=100ms -c max_connections=200" start >/dev/null
serve_pid=0
trap '[ "$serve_pid" = 0 ] || kill "$serve_pid" 2>/dev/null || true; as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true' EXIT
psql() { "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
psql -d postgres -c "CREATE DATABASE fleet" -c "CREATE DATABASE commits"
export PGPASSWORD=unused S3_KEY=k S3_SECRET=s

# The configuration of every source; the catalog's schema made by backstop itself (config check does not open it: status does).
{
  echo "catalog: { url: \"postgresql://postgres@127.0.0.1:$port/fleet\", password: env:PGPASSWORD, default_machine: m0 }"
  echo "machine: m0"
  echo "staging: $work/state/staging"
  echo "serve: { listen: \"127.0.0.1:$(free_port)\" }"
  echo "targets: [ { name: offsite, kind: s3, endpoint: \"http://127.0.0.1:9\", bucket: b, access_key: env:S3_KEY, secret_key: env:S3_SECRET } ]"
  echo "sources:"
  for ((i = 1; i <= sources; i++)); do printf '  - { name: s%04d, kind: command, machine: m%d, command: [echo, x] }\n' "$i" $((i % 10)); done
} > "$work/fleet.yaml"
$backstop -c "$work/fleet.yaml" status >/dev/null 2>&1 || true

echo "== $sources sources × $snapshots snapshots, an artifact and a verified copy each, by SQL"
start=$(date +%s)
psql -d fleet <<SQL
INSERT INTO sources(name, kind, machine) SELECT 's' || lpad(i::text, 4, '0'), 'command', 'm' || (i % 10) FROM generate_series(1, $sources) i;
INSERT INTO snapshots(id, source, state, started_at, finished_at, host, pid, raw_bytes, stored_bytes, facts, warnings)
  SELECT to_char(t, 'YYYYMMDD"T"HH24MISS"Z"') || '-' || lpad(to_hex(i), 4, '0'), 's' || lpad(i::text, 4, '0'),
         CASE WHEN j % 50 = 0 THEN 'failed' ELSE 'committed' END,
         to_char(t, 'YYYY-MM-DD"T"HH24:MI:SS".000Z"'), to_char(t + interval '30 seconds', 'YYYY-MM-DD"T"HH24:MI:SS".000Z"'),
         'h', 1, 1000, 500, '{"bytes":1000}', '[]'
  FROM generate_series(1, $sources) i, generate_series(1, $snapshots) j,
       LATERAL (SELECT (now() AT TIME ZONE 'UTC') - make_interval(hours => j) AS t) x;
INSERT INTO artifacts(snapshot_id, name, file_name, raw_bytes, stored_bytes, sha256, compression, facts, reported, level, seq)
  SELECT id, 'dump.out', 'dump.out.zst', 1000, 500, 'ab', 'zstd', '{"bytes":1000}', '[]', 0, 0 FROM snapshots;
INSERT INTO copies(snapshot_id, artifact, target, state, checked_at) SELECT id, 'dump.out', 'offsite', 'verified', finished_at FROM snapshots WHERE state = 'committed';
ANALYZE;
SQL
generated=$(( $(date +%s) - start ))
rows=$(psql -d fleet -c "SELECT count(*) FROM snapshots")
echo "   $rows snapshots in ${generated}s"

echo "== serve's /api/status, warm (median of $runs after one)"
$backstop -c "$work/fleet.yaml" serve >"$work/serve.log" 2>&1 &
serve_pid=$!
listen=$(grep '^serve:' "$work/fleet.yaml" | grep -o '127.0.0.1:[0-9]*')
for ((i = 0; i < 120; i++)); do curl -sf "http://$listen/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -sf "http://$listen/api/status" -o "$work/status.json"
ok=$(python3 -c "import json,sys; d=json.load(open('$work/status.json')); print(sum(1 for s in d['sources'] if s['state']=='ok'), 'of', len(d['sources']))")
api=()
for ((i = 0; i < runs; i++)); do api+=("$(curl -s -o /dev/null -w '%{time_total}' "http://$listen/api/status")"); done
api_median=$(printf '%s\n' "${api[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}')
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=0
echo "   /api/status: ${api_median}s ($ok ok)"

echo "== backstop status --json, a process each time"
measure cli "true" "$backstop -c $work/fleet.yaml status --json >/dev/null; test \$? -le 1"

echo "== $agents agents committing at once (each its own machine, source and folder), and one alone"
mkdir -p "$work/agents"
for ((a = 1; a <= agents; a++)); do
  mkdir -p "$work/agents/$a"
  cat > "$work/agents/$a/backstop.yaml" <<YAML
catalog: { url: "postgresql://postgres@127.0.0.1:$port/commits", password: env:PGPASSWORD }
machine: agent$a
staging: $work/agents/$a/staging
targets: [ { name: disk$a, kind: local, machine: agent$a, path: $work/agents/$a/backups } ]
sources: [ { name: app$a, kind: command, command: [head, -c, "2000000", /dev/urandom] } ]
YAML
done
$backstop -c "$work/agents/1/backstop.yaml" run >/dev/null 2>&1 # the schema, and a first snapshot
measure alone "true" "$backstop -c $work/agents/1/backstop.yaml run"
waits_before=$(grep -c 'still waiting for' "$work/log" || true)
start_ns=$(date +%s%N)
for ((a = 1; a <= agents; a++)); do
  ( /usr/bin/time -f '%e' -o "$work/agents/$a/time" $backstop -c "$work/agents/$a/backstop.yaml" run >"$work/agents/$a/out" 2>&1; echo $? > "$work/agents/$a/rc" ) &
done
wait
wall=$(awk -v s="$start_ns" -v e="$(date +%s%N)" 'BEGIN { printf "%.2f", (e - s) / 1e9 }')
failed=0; slowest=0
for ((a = 1; a <= agents; a++)); do
  [ "$(cat "$work/agents/$a/rc")" = 0 ] || failed=$((failed + 1))
  slowest=$(awk -v a="$slowest" -v b="$(cat "$work/agents/$a/time")" 'BEGIN { print (b > a ? b : a) }')
done
committed=$(psql -d commits -c "SELECT count(*) FROM snapshots WHERE state = 'committed' AND source <> 'app1'")
committed1=$(psql -d commits -c "SELECT count(*) FROM snapshots WHERE state = 'committed' AND source = 'app1'")
waits=$(( $(grep -c 'still waiting for' "$work/log" || true) - waits_before ))
echo "   $agents at once: ${wall}s wall, slowest ${slowest}s (alone ${secs[alone]}s), $failed failed, $((committed + committed1 - runs - 1)) of $agents committed, $waits lock wait(s) over 100 ms"

section="$work/section.md"
cat > "$section" <<MD
## A fleet on PostgreSQL

\`bench/fleet.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores, PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on loopback.

Status of **$sources sources × $snapshots snapshots** ($rows snapshots, an artifact and a verified copy each, generated by SQL in ${generated}s):

| | seconds |
| --- | ---: |
| serve's \`/api/status\` (warm, as the dashboard and monitoring ask; median of $runs) | $api_median |
| \`backstop status --json\` (a process each time, .NET's start included; median of $runs) | ${secs[cli]} |

The fleet's status: **${api_median} s** warm (goal < 0.1 s); $ok sources ok. Each source's newest snapshots come in one
statement per table (a lateral join: one index walk per source), the drills in one query.

**$agents agents committing at once** (separate processes, each its own machine, source and local folder, a 2 MB capture):
$failed failed, $((committed + committed1 - runs - 1)) of $agents committed; PostgreSQL logged **$waits lock wait(s) over 100 ms** (log_lock_waits,
deadlock_timeout 100 ms: goal, no wait of 1 s); wall ${wall}s, the slowest run ${slowest}s against ${secs[alone]}s for one agent alone
(the difference is two cores shared by $agents .NET processes, not the catalog).
MD
replace_section "A fleet on PostgreSQL" "$section"
cat "$section"
