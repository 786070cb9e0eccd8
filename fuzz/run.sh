#!/usr/bin/env bash
# Coverage-guided fuzzing of one of Backstop's most exposed parsers: SharpFuzz instruments Backstop's assemblies, AFL++
# mutates the corpus (fuzz/corpus/TARGET: the seeds, and every crash found before, kept so the suite replays it).
#   fuzz/run.sh TARGET [SECONDS]      TARGET: manifest, tar, rdb, oci, jsonlines; SECONDS: 600 by default
#   fuzz/run.sh all [SECONDS]         each target in turn
# Installs what it needs (afl++ from Debian, SharpFuzz's instrumenter as a .NET tool into .tools/). A crash is copied to
# fuzz/corpus/TARGET/crash-* and printed with how to replay it; the last line of each run is its summary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
target="${1:?usage: fuzz/run.sh TARGET|all [SECONDS]}"
seconds="${2:-600}"
if [ "$target" = all ]; then
  for t in manifest tar rdb oci jsonlines; do "$0" "$t" "$seconds"; done
  exit 0
fi

command -v afl-fuzz >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y afl++ >/dev/null; } || { echo "afl-fuzz is missing: apt-get install afl++"; exit 1; }
sharpfuzz="$repo/.tools/bin/sharpfuzz"
[ -x "$sharpfuzz" ] || dotnet tool install SharpFuzz.CommandLine --tool-path "$repo/.tools/bin" >/dev/null

work="${FUZZ_WORK:-$here/work}/$target"
bin="${FUZZ_WORK:-$here/work}/bin"
rm -rf "$work" && mkdir -p "$work"
if [ ! -f "$bin/.instrumented" ]; then
  echo "== building the harness and instrumenting Backstop's assemblies"
  rm -rf "$bin"
  dotnet publish "$here/Backstop.Fuzz/Backstop.Fuzz.csproj" -c Release -o "$bin" --nologo -v quiet >/dev/null
  for dll in Backstop.Core.dll Backstop.Sources.dll; do "$sharpfuzz" "$bin/$dll" >/dev/null; done
  touch "$bin/.instrumented"
fi

echo "== fuzzing $target for ${seconds}s (corpus: fuzz/corpus/$target, $(ls "$here/corpus/$target" | wc -l) input(s))"
export AFL_SKIP_BIN_CHECK=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 DOTNET_TieredPGO=0
afl-fuzz -V "$seconds" -i "$here/corpus/$target" -o "$work/findings" -t 10000 -m none -- dotnet "$bin/Backstop.Fuzz.dll" "$target" >"$work/afl.log" 2>&1 || {
  echo "afl-fuzz stopped early:"; tail -n 30 "$work/afl.log"; exit 1; }

stats="$work/findings/default/fuzzer_stats"
value() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
found=0
for crash in "$work"/findings/default/crashes/id:*; do
  [ -e "$crash" ] || continue
  found=$((found + 1))
  name="crash-$(sha256sum "$crash" | cut -c1-16)"
  cp "$crash" "$here/corpus/$target/$name"
  echo "   crash kept as fuzz/corpus/$target/$name: dotnet $bin/Backstop.Fuzz.dll --replay fuzz/corpus/$target/$name $target"
done
echo "$target: $(value execs_done) inputs in ${seconds}s ($(value execs_per_sec)/s), $(value corpus_count) paths, $found crash(es), $(value saved_hangs) hang(s)"
