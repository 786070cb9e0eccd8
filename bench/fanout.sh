#!/usr/bin/env bash
# Fan-out benchmark: the same files source backed up to one target and to three at once (one read of the
# source, every copy read back and hashed), on the data set of bench/run.sh. Three local folders measure the
# pipeline's own fan-out cost; local + sftp (sshd through rclone) + s3 (s3rver) on loopback measure the real
# kinds, next to each remote kind alone. Median of RUNS runs (default 3). Writes the "## Fan-out" section of bench/RESULTS.md.
# Usage: bench/fanout.sh   (after ./test.sh has installed rclone, openssh and s3rver)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
work="${BENCH_WORK:-$here/work}"
runs="${RUNS:-3}"
mkdir -p "$work"
for tool in rclone /usr/sbin/sshd ssh-keygen /usr/bin/time "$repo/.tools/node_modules/.bin/s3rver"; do
  command -v "$tool" >/dev/null || [ -x "$tool" ] || { echo "bench needs $tool: run ./test.sh first"; exit 1; }
done

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build_backstop
files_data_set
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# An sshd and an s3rver on loopback, stopped on exit.
srv="$work/servers"; rm -rf "$srv"; mkdir -p "$srv/s3" /run/sshd
ssh_port=$(free_port); s3_port=$(free_port)
ssh-keygen -q -t ed25519 -N '' -f "$srv/host_key"; ssh-keygen -q -t ed25519 -N '' -f "$srv/client_key"
cp "$srv/client_key.pub" "$srv/authorized_keys"
cat > "$srv/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $ssh_port
HostKey $srv/host_key
PidFile $srv/sshd.pid
AuthorizedKeysFile $srv/authorized_keys
UsePAM no
StrictModes no
PasswordAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
EOF
/usr/sbin/sshd -f "$srv/sshd_config"
"$repo/.tools/node_modules/.bin/s3rver" -d "$srv/s3" -a 127.0.0.1 -p "$s3_port" --configure-bucket bench --silent & s3pid=$!
trap 'kill "$(cat "$srv/sshd.pid")" "$s3pid" 2>/dev/null || true' EXIT
sleep 2
export S3_KEY=S3RVER S3_SECRET=S3RVER
host_key="$(cut -d' ' -f1,2 "$srv/host_key.pub")"

local_t() { echo "  - { name: $1, kind: local, path: $work/out/$1 }"; }
sftp_t() { echo "  - { name: nas, kind: sftp, host: 127.0.0.1, port: $ssh_port, user: $(id -un), key: \"file:$srv/client_key\", host_key: \"$host_key\", path: $work/out/nas }"; }
s3_t() { echo "  - { name: s3, kind: s3, endpoint: \"http://127.0.0.1:$s3_port\", bucket: bench, access_key: \"env:S3_KEY\", secret_key: \"env:S3_SECRET\" }"; }
cfg() { # cfg NAME MIN_COPIES TARGET-LINES...
  local name="$1" min="$2"; shift 2
  { echo "catalog: $work/state/catalog.db"; echo "staging: $work/state/staging"; echo "policy: { min_copies: $min }"
    echo "targets:"; printf '%s\n' "$@"; echo "sources: [ { name: bench, kind: files, paths: [$data] } ]"; } > "$work/fanout-$name.yaml"
}
cfg one 1 "$(local_t a)"
cfg three 3 "$(local_t a)" "$(local_t b)" "$(local_t c)"
cfg s3 1 "$(s3_t)"
cfg sftp 1 "$(sftp_t)"
cfg mixed 3 "$(local_t a)" "$(sftp_t)" "$(s3_t)"
reset="rm -rf $work/out $work/state $srv/s3/bench/bench && mkdir -p $work/out/a $work/out/b $work/out/c"

for c in one three s3 sftp mixed; do
  echo "== backstop run → $c"
  measure "$c" "$reset" "$backstop -c $work/fanout-$c.yaml run"
done
bash -c "$reset"

mib() { echo $(( $1 / 1024 )); }
{
  echo "## Fan-out (bench/fanout.sh, $(date -u +%Y-%m-%d))"
  echo
  echo "Same data set ($((bytes / 1048576)) MiB), one read of the source, each copy committed then read back and hashed."
  echo "Servers on loopback on the same 2-core machine (sshd, s3rver), so they compete with Backstop for CPU."
  echo
  echo "| targets | seconds (median) | × one local | peak RSS |"
  echo "| --- | ---: | ---: | ---: |"
  echo "| one local folder | ${secs[one]} | 1.00 | $(mib "${rss[one]}") MiB |"
  echo "| **three local folders** | ${secs[three]} | $(ratio "${secs[three]}" "${secs[one]}") | $(mib "${rss[three]}") MiB |"
  echo "| s3 alone (s3rver) | ${secs[s3]} | $(ratio "${secs[s3]}" "${secs[one]}") | $(mib "${rss[s3]}") MiB |"
  echo "| sftp alone (sshd via rclone) | ${secs[sftp]} | $(ratio "${secs[sftp]}" "${secs[one]}") | $(mib "${rss[sftp]}") MiB |"
  echo "| **local + sftp + s3** | ${secs[mixed]} | $(ratio "${secs[mixed]}" "${secs[one]}") | $(mib "${rss[mixed]}") MiB |"
  echo
  slowest=$(printf '%s\n' "${secs[s3]}" "${secs[sftp]}" "${secs[one]}" | sort -n | tail -n 1)
  echo "Goal (issue 4): three targets ≤ 1.3× one target for the same source. Three local folders: $(ratio "${secs[three]}" "${secs[one]}")×."
  echo "Local + sftp + s3 against the slowest of its targets alone: $(ratio "${secs[mixed]}" "$slowest")× — the copies run at once, so"
  echo "the slowest target sets the pace; here s3rver (Node.js), sshd and rclone share the 2 cores with Backstop."
} > "$work/fanout.md"
replace_section Fan-out "$work/fanout.md"
cat "$work/fanout.md"
