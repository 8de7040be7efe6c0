# shellcheck shell=bash
# Shared by the benchmarks: machine-readable figures for ops/bench/all.
# When RENKEI_BENCH_TSV names a file, each figure is appended to it as one
# tab-separated line; otherwise nothing is written.
#
#   run   SECTION WORKLOAD CONNS RPS P50 P99 [PEER PEER_RPS PEER_P50 PEER_P99]
#         one throughput run (ms for the latencies; "-" where not measured)
#   fig   SECTION NAME VALUE UNIT [NOTE]
#         a single figure (a limit, a rate, memory, a time)

bench_run() {
  [[ -n ${RENKEI_BENCH_TSV:-} ]] || return 0
  local IFS=$'\t'
  printf '%s\n' "run	$*" >>"$RENKEI_BENCH_TSV"
}

bench_fig() {
  [[ -n ${RENKEI_BENCH_TSV:-} ]] || return 0
  local IFS=$'\t'
  printf '%s\n' "fig	$*" >>"$RENKEI_BENCH_TSV"
}

# rss_kb PID → "current peak" resident memory in kB
rss_kb() {
  awk '/VmRSS/ {r=$2} /VmHWM/ {h=$2} END {print r, h}' "/proc/$1/status"
}
