# Shared by bench/run.sh and bench/postgres.sh: timing with GNU time, medians, ratios.
# measure NAME SETUP COMMAND: runs SETUP (untimed), then COMMAND under /usr/bin/time, RUNS times;
# sets secs[NAME] (median seconds) and rss[NAME] (largest peak RSS, KiB). Needs $work and $runs.
declare -A secs rss times_of mems_of
# run_once NAME SETUP COMMAND: one timed run, appended to the runs of NAME.
run_once() {
  local name="$1" setup="$2" cmd="$3" out
  bash -c "$setup" >/dev/null 2>&1
  sync
  /usr/bin/time -f '%e %M' -o "$work/time.out" bash -c "$cmd" >/dev/null 2>"$work/last.err" \
    || { echo "$name failed:"; cat "$work/last.err"; exit 1; }
  out=$(tail -n 1 "$work/time.out")
  times_of[$name]+="${out% *} "; mems_of[$name]+="${out#* } "
  echo "   $name: ${out% *}s, peak RSS $((${out#* } / 1024)) MiB"
}

# summarize NAME: secs[NAME] (median seconds) and rss[NAME] (largest peak RSS, KiB) from its runs.
summarize() {
  local name="$1"
  secs[$name]=$(printf '%s\n' ${times_of[$name]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  rss[$name]=$(printf '%s\n' ${mems_of[$name]} | sort -n | tail -n 1)
}

measure() {
  local i
  for ((i = 0; i < runs; i++)); do run_once "$@"; done
  summarize "$1"
}

# measure_turns NAME_A SETUP_A COMMAND_A NAME_B SETUP_B COMMAND_B: as measure for both, taking turns run by run,
# so that the machine's drift (write-back of the previous run, discards) falls on both alike.
measure_turns() {
  local i
  for ((i = 0; i < runs; i++)); do run_once "$1" "$2" "$3"; run_once "$4" "$5" "$6"; done
  summarize "$1"; summarize "$4"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# replace_section HEADING FILE: puts FILE's text in bench/RESULTS.md in place of the section that starts with
# "## HEADING" (up to the next "## " heading), or at the end when there is none; everything else is kept.
replace_section() {
  local heading="$1" section="$2" results="$here/RESULTS.md"
  touch "$results"
  awk -v file="$section" -v h="## $heading" '
    index($0, h) == 1 { skip = 1; while ((getline line < file) > 0) print line; print ""; next }
    /^## / && skip { skip = 0 }
    !skip { print }
  ' "$results" > "$results.new"
  grep -q "^## $heading" "$results" || { echo; cat "$section"; } >> "$results.new"
  mv "$results.new" "$results"
}

# build_backstop: the program in Release (ReadyToRun) into $work/bin; sets backstop (a command line) for the scripts.
build_backstop() {
  echo "== building backstop (Release, published ReadyToRun as ./backstop builds it)"
  rm -rf "$work/bin"
  dotnet publish "$repo/src/Backstop/Backstop.csproj" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
    -o "$work/bin" --nologo -v quiet >/dev/null
  backstop="dotnet $work/bin/backstop.dll"
}

# files_data_set: the files data set of bench/run.sh in $work/data (made once), read into the page cache;
# sets data and bytes.
files_data_set() {
  data="$work/data"
  if [ ! -f "$data/.complete" ]; then
    echo "== generating the data set in $data"
    rm -rf "$data"
    dotnet run "$here/gen-data.cs" -- "$data" 20000
    touch "$data/.complete"
  fi
  bytes=$(du -sb --exclude=.complete "$data" | cut -f1)
  cat "$data"/large/* > /dev/null; find "$data/small" -type f -exec cat {} + > /dev/null
}

# postgres_tools: PostgreSQL's server and zstd installed (as root), bin set to the newest server's binaries, and as_pg
# running a command as postgres when root (initdb and pg_ctl refuse root).
postgres_tools() {
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib zstd time >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib zstd time >/dev/null; }
  fi
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
