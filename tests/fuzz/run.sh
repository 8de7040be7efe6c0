#!/usr/bin/env bash
# run.sh EXE NAME SECONDS: fuzzes harness EXE (libFuzzer) for SECONDS,
# starting from its seeds (corpus/NAME) and past crashes (regressions/NAME),
# both read only. New inputs go to $RENKEI_FUZZ_CORPUS/NAME when that is set
# (ops/fuzz keeps them between runs), else to a directory thrown away. A
# crash leaves its input in $RENKEI_FUZZ_CRASHES/NAME (default: the build
# tree's fuzz-crashes/NAME) and fails: add it to regressions/NAME with the fix.
set -euo pipefail
exe=$1 name=$2 secs=${3:-10}
here=$(cd "$(dirname "$0")" && pwd)
crashes=${RENKEI_FUZZ_CRASHES:-$(dirname "$exe")/fuzz-crashes}/$name
mkdir -p "$crashes"
tmp=$(mktemp -d /tmp/renkei-fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [[ -n ${RENKEI_FUZZ_CORPUS:-} ]]; then
  corpus=$RENKEI_FUZZ_CORPUS/$name
else
  corpus=$tmp/corpus
fi
mkdir -p "$corpus"
dirs=("$corpus" "$here/corpus/$name" "$here/regressions/$name")
rc=0
began=$SECONDS
"$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 -artifact_prefix="$crashes/" "${dirs[@]}" 2>"$tmp/log" || rc=$?
grep -E '^(stat::|#[0-9]+[[:space:]]+DONE|INFO: Running with|Done [0-9]+ runs)' "$tmp/log" || true
echo "fuzzed $name for $((SECONDS - began)) s"
if ((rc != 0)); then
  tail -n 60 "$tmp/log"
  echo "fuzz $name: failed (exit $rc); the input is in $crashes" >&2
fi
exit "$rc"
