#!/usr/bin/env bash
# serve benchmark (issue 12). (1) /api/status latency with SOURCES sources × SNAPSHOTS snapshots in the catalog
# (default 200 × 1,000, made by gen-catalog.cs through the catalog's own schema): REQUESTS sequential requests after
# a warm-up, median, p95 and max, and the same for /metrics and the dashboard; `status --json` as a whole command.
# (2) serve idle for IDLE seconds (default 600) on that catalog, every source scheduled but none due, scraped on
# /metrics every 15 s as Prometheus would: CPU time used (utime + stime from /proc) over the wall time, and resident
# memory (sampled every 5 s; at the end split into private anonymous memory, JIT code and shared file mappings).
# Goals: /api/status < 100 ms; idle < 1% of a core and < 100 MiB. Writes the "## Serve" section of bench/RESULTS.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
work="${BENCH_WORK:-$here/work}"
sources="${SOURCES:-200}"
snapshots="${SNAPSHOTS:-1000}"
requests="${REQUESTS:-200}"
idle="${IDLE:-600}"
mkdir -p "$work"
for tool in curl python3 /usr/bin/time; do command -v "$tool" >/dev/null || { echo "bench needs $tool"; exit 1; }; done
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build_backstop

r="$work/serve"; rm -rf "$r"; mkdir -p "$r/t1" "$r/t2"
echo "== catalog: $sources sources × $snapshots snapshots"
dotnet run "$here/gen-catalog.cs" -- "$r/catalog.db" "$sources" "$snapshots"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
  echo "catalog: $r/catalog.db"
  echo "staging: $r/staging"
  echo "policy: { min_copies: 2, rpo: 24h, schedule: \"0 3 1 1 *\" }   # yearly: scheduled, never due in the bench"
  echo "serve: { listen: \"127.0.0.1:$port\" }"
  echo "targets: [ { name: local, kind: local, path: $r/t1 }, { name: nas, kind: local, path: $r/t2 } ]"
  echo "sources:"
  for ((i = 0; i < sources; i++)); do printf '  - { name: src-%03d, kind: command, command: [/bin/true], artifact: dump.out }\n' "$i"; done
} > "$r/backstop.yaml"

$backstop -c "$r/backstop.yaml" serve > "$r/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
started=$(date +%s.%N)

latency() { # PATH → "median p95 max" in ms over $requests sequential requests, after 5 warm-up ones
  local path="$1" i
  for i in 1 2 3 4 5; do curl -sf -o /dev/null "http://127.0.0.1:$port$path"; done
  for ((i = 0; i < requests; i++)); do curl -sf -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port$path"; done | python3 -c '
import statistics, sys
v = sorted(float(x) * 1000 for x in sys.stdin)
print(f"{statistics.median(v):.1f} {v[int(len(v) * 0.95) - 1]:.1f} {v[-1]:.1f}")'
}
echo "== latency, $requests requests each"
read -r st_med st_p95 st_max < <(latency /api/status); echo "   /api/status: median $st_med ms, p95 $st_p95 ms, max $st_max ms"
read -r me_med me_p95 me_max < <(latency /metrics); echo "   /metrics: median $me_med ms, p95 $me_p95 ms, max $me_max ms"
read -r da_med da_p95 da_max < <(latency /); echo "   dashboard: median $da_med ms, p95 $da_p95 ms, max $da_max ms"
bytes=$(curl -sf "http://127.0.0.1:$port/api/status" | wc -c)
/usr/bin/time -f '%e %M' -o "$r/time.out" $backstop -c "$r/backstop.yaml" status --json > /dev/null || true
read -r cmd_secs cmd_rss < <(tail -n 1 "$r/time.out")

echo "== idle for $idle s (nothing due; the state of every source evaluated every minute; /metrics scraped every 15 s)"
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
sleep 70 # past start-up, the requests above and the first idle collection
t0=$(date +%s.%N); c0=$(ticks); max_rss=0; n=0
end=$(( $(date +%s) + idle ))
while [ "$(date +%s)" -lt "$end" ]; do
  [ $((n % 3)) = 0 ] && curl -sf -o /dev/null "http://127.0.0.1:$port/metrics"
  rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"); [ "$rss" -gt "$max_rss" ] && max_rss=$rss
  n=$((n + 1)); sleep 5
done
t1=$(date +%s.%N); c1=$(ticks)
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
read -r anon file shmem < <(awk '/^RssAnon/ { a = $2 } /^RssFile/ { f = $2 } /^RssShmem/ { s = $2 } END { print int(a / 1024), int(f / 1024), int(s / 1024) }' "/proc/$pid/status")
cpu=$(awk -v c="$((c1 - c0))" -v hz="$hz" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", 100 * c / hz / (b - a) }')
cpu_secs=$(awk -v c="$((c1 - c0))" -v hz="$hz" 'BEGIN { printf "%.2f", c / hz }')
echo "   CPU $cpu% of a core ($cpu_secs s in $idle s), RSS max $((max_rss / 1024)) MiB (at the end: $anon MiB anonymous, $shmem MiB JIT code, $file MiB file mappings), peak (VmHWM, start-up and requests included) $((hwm / 1024)) MiB"
kill -TERM $pid; wait $pid || true
trap - EXIT
grep -c "" "$r/serve.log" > /dev/null

section="$work/serve-section.md"
cat > "$section" <<MD
## Serve

Recorded by \`bench/serve.sh\` on $(date -u +%Y-%m-%d) — $(nproc) cores. Catalog: $sources sources × $snapshots snapshots
(two artifacts, two copies each; $(du -m "$r/catalog.db" | cut -f1) MiB), every source scheduled yearly so none is due.
Latency is curl's total time on loopback over $requests sequential requests.

| what | median | p95 | max |
| --- | ---: | ---: | ---: |
| \`/api/status\` ($((bytes / 1024)) KiB of JSON) | $st_med ms | $st_p95 ms | $st_max ms |
| \`/metrics\` | $me_med ms | $me_p95 ms | $me_max ms |
| dashboard \`/\` | $da_med ms | $da_p95 ms | $da_max ms |
| \`backstop status --json\` (whole command, start-up included) | ${cmd_secs} s | | peak RSS $((cmd_rss / 1024)) MiB |

| serve idle, $idle s, /metrics scraped every 15 s | CPU | resident memory (max) | at the end: private (anonymous + JIT code) | shared file mappings (runtime, assemblies) |
| --- | ---: | ---: | ---: | ---: |
| every source's state evaluated every minute | $cpu% of a core ($cpu_secs s) | $((max_rss / 1024)) MiB | $((anon + shmem)) MiB ($anon + $shmem) | $file MiB |

Peak resident memory with start-up and the requests above: $((hwm / 1024)) MiB.

Goals (issue 12): \`/api/status\` < 100 ms with 200 × 1,000; idle < 1% of a core and < 100 MiB.
MD
replace_section "Serve" "$section"
cat "$section"
