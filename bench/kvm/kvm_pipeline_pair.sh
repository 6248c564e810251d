#!/usr/bin/env bash
# Does exitscope's decoding on the other CPU slow the traced workload? Each round runs
# es-kvm-guest untraced, under `exitscope record --kvm` (defaults: decoding at idle priority
# beside the guest) and under `record --kvm --test-slow-pipeline` (decoding nearly stopped while
# the guest runs, the backlog written after), then untraced again; prints the workload's CPU
# time (user + sys) of each run and the means.
#
#   sudo bench/kvm/kvm_pipeline_pair.sh [BUILD_DIR] [LOOPS] [ROUNDS]    (defaults: build 40000 12)
set -euo pipefail
BUILD=${1:-build}
LOOPS=${2:-40000}
ROUNDS=${3:-12}
ES=$BUILD/bin/exitscope
GUEST=$BUILD/bin/es-kvm-guest
[ "$(id -u)" = 0 ] || { echo "kvm_pipeline_pair: needs root (eBPF)" >&2; exit 2; }
[ -x "$ES" ] && [ -x "$GUEST" ] || { echo "kvm_pipeline_pair: build exitscope and es-kvm-guest in $BUILD first" >&2; exit 2; }
WORK=$(mktemp -d /tmp/kvm_pair.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

cpu_time() {  # the workload's user + sys seconds
  /usr/bin/time -f '%U %S' -o "$WORK/t" "$GUEST" --loops "$LOOPS" --quiet > /dev/null
  awk '{printf "%.3f", $1 + $2}' "$WORK/t"
}
traced() {  # [record options]: cpu_time while exitscope records
  rm -f "$WORK/es.db"
  "$ES" record --kvm -o "$WORK/es.db" "$@" > /dev/null 2> "$WORK/es.err" &
  local pid=$!
  for _ in $(seq 200); do grep -qs '^recording' "$WORK/es.err" && break; sleep 0.05; done
  grep -qs '^recording' "$WORK/es.err" || { echo "kvm_pipeline_pair: record --kvm did not start:" >&2; cat "$WORK/es.err" >&2; exit 1; }
  cpu_time
  kill -INT $pid
  wait $pid
}

echo "round  untraced  default  slow-pipeline  untraced"
for r in $(seq "$ROUNDS"); do
  printf '%5s  %8s  %7s  %13s  %8s\n' "$r" "$(cpu_time)" "$(traced)" "$(traced --test-slow-pipeline)" "$(cpu_time)"
done | tee "$WORK/rows"
awk '{u += $2 + $5; d += $3; s += $4; n++}
     END {printf "mean   %8.3f  %7.3f  %13.3f  (untraced: both columns)\n", u / 2 / n, d / n, s / n}' "$WORK/rows"
