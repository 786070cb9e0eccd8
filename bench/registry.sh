#!/usr/bin/env bash
# A registry's nights: a throwaway Debian docker-registry on a loopback port holding a few images (five repositories,
# 1.1 GiB of layers, a base layer every image shares), backed up by Backstop to a local target three times: night 1
# full, night 2 nothing new, night 3 one tag gains one 64 MiB layer. Seconds per night and bytes sent (the growth of
# the target folder, and the blobs Backstop says it sent) are recorded in bench/RESULTS.md ("## Registry nights").
# Usage: bench/registry.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
work="${BENCH_WORK:-$here/work}"
runs=1
mkdir -p "$work"

if [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry skopeo jq time >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry skopeo jq time >/dev/null; }
fi
for tool in docker-registry skopeo jq /usr/bin/time; do command -v "$tool" >/dev/null || { echo "bench needs $tool"; exit 1; }; done

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
build_backstop
reg="$work/registry"
rm -rf "$reg" && mkdir -p "$reg/storage" "$reg/images/blobs/sha256" "$reg/out"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$reg/config.yml" <<EOF
version: 0.1
log: { level: warn }
storage: { filesystem: { rootdirectory: $reg/storage }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$port }
EOF
docker-registry serve "$reg/config.yml" > "$reg/registry.log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

# blob FILE MEDIATYPE: moves FILE into the layout under its digest; prints its descriptor.
blob() {
  local hex size
  hex=$(sha256sum "$1" | cut -c1-64); size=$(stat -c %s "$1")
  mv "$1" "$reg/images/blobs/sha256/$hex"
  printf '{"mediaType":"%s","digest":"sha256:%s","size":%s}' "$2" "$hex" "$size"
}
# layer MIB: a gzip layer's worth of incompressible bytes (what a registry holds: compressed layers).
layer() { head -c $(($1 << 20)) /dev/urandom > "$reg/layer.tmp"; blob "$reg/layer.tmp" application/vnd.oci.image.layer.v1.tar+gzip; }
# image REPO TAG LAYERS...: an image of those layer descriptors, pushed into the registry with skopeo.
image() {
  local name="$1" tag="$2"; shift 2
  local layers; layers=$(IFS=,; echo "$*")
  printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/%s"]},"rootfs":{"type":"layers","diff_ids":[]},"created":"%s"}' \
    "$name" "$(date -u +%FT%TZ)" > "$reg/config.tmp"
  local config; config=$(blob "$reg/config.tmp" application/vnd.oci.image.config.v1+json)
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}' "$config" "$layers" > "$reg/manifest.tmp"
  local manifest; manifest=$(blob "$reg/manifest.tmp" application/vnd.oci.image.manifest.v1+json)
  echo '{"imageLayoutVersion":"1.0.0"}' > "$reg/images/oci-layout"
  jq -n --argjson m "$manifest" --arg t "$tag" '{schemaVersion: 2, manifests: [$m + {annotations: {"org.opencontainers.image.ref.name": $t}}]}' > "$reg/images/index.json"
  skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$reg/images:$tag" "docker://127.0.0.1:$port/$name:$tag"
}

echo "== five images (a shared 200 MiB base, 1.1 GiB of layers in all)"
base=$(layer 200)
api_own=$(layer 150); api_top=$(layer 20)
image app/api v1 "$base" "$api_own" "$api_top"
image app/web v1 "$base" "$(layer 180)" "$(layer 30)"
image tools/db 15 "$base" "$(layer 250)"
image tools/cache 7 "$base" "$(layer 120)"
image ops/agent 3 "$(layer 160)" "$(layer 10)"

{ echo "catalog: $reg/out/state/catalog.db"; echo "staging: $reg/state/staging"
  echo "targets: [ { name: local, kind: local, path: $reg/out/backstop } ]"
  echo "sources: [ { name: images, kind: registry, url: \"http://127.0.0.1:$port\" } ]"; } > "$work/registry.yaml"

declare -A sent held
blobs_said() { grep -o '[0-9]* shared blob(s) sent ([^)]*), [0-9]* already verified' "$work/registry-$1.err" | head -n 1 || true; }
night() {
  local n="$1" before
  before=$(du -sb "$reg/out" 2>/dev/null | cut -f1 || echo 0)
  run_once "registry-$n" "true" "$backstop -c $work/registry.yaml run > $work/registry-$n.err 2>&1"
  summarize "registry-$n"
  held[$n]=$(du -sb "$reg/out" | cut -f1)
  sent[$n]=$((held[$n] - before))
  echo "   $(blobs_said "$n"); $(( sent[$n] / 1048576 )) MiB more on the target"
}
echo "== night 1: everything"
night 1
echo "== night 2: nothing new"
night 2
echo "== night 3: app/api:v2 is v1 plus one 64 MiB layer"
image app/api v2 "$base" "$api_own" "$api_top" "$(layer 64)"
night 3

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
section="$work/registry.md"
{
  echo "## Registry nights"
  echo
  echo "Recorded by \`bench/registry.sh\` on $(date -u +%Y-%m-%d) — a throwaway Debian docker-registry on loopback with five"
  echo "repositories (1.1 GiB of gzip-like layers, a 200 MiB base layer shared by four images), backed up to a local target."
  echo "Bytes sent: the growth of the target folder (and catalog) that night."
  echo
  echo "| night | seconds | × night 1 | bytes sent | Backstop said |"
  echo "| --- | ---: | ---: | ---: | --- |"
  echo "| 1, everything | ${secs[registry-1]} s | 1.00 | $(mib "${sent[1]}") MiB | $(blobs_said 1) |"
  echo "| 2, nothing new | ${secs[registry-2]} s | $(ratio "${secs[registry-2]}" "${secs[registry-1]}") | $(mib "${sent[2]}") MiB | $(blobs_said 2) |"
  echo "| 3, one tag gains a 64 MiB layer | ${secs[registry-3]} s | $(ratio "${secs[registry-3]}" "${secs[registry-1]}") | $(mib "${sent[3]}") MiB | $(blobs_said 3) |"
  echo
  echo "Goals (issue 21): a second backup with nothing new sends no blob and takes ≤ 10 % of the first; one new layer sends"
  echo "that layer only (with the image's new config: a new layer always changes it)."
} > "$section"
replace_section "Registry nights" "$section"
cat "$section"
rm -rf "$reg"
