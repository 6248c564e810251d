#!/usr/bin/env bash
# KVM recorder benchmark: the same KVM workload (es-kvm-guest, a real-mode guest through
# /dev/kvm whose every instruction KVM emulates here, ~18 kvm events per loop) run
#   1. untraced,
#   2. traced by ftrace: the same kvm events enabled in tracefs, per-CPU trace_pipe_raw drained
#      to files while it runs (what trace-cmd record does),
#   3. traced by exitscope: `exitscope record --kvm` (eBPF) attached system-wide, with its
#      default scheduling (decoding and SQLite at idle priority while under --max-lag behind),
#   4. the same with --max-lag 0 (decoding and SQLite beside the guest at normal priority),
# ROUNDS times each, interleaved; prints the median workload times, the overhead ratio
# exitscope / ftrace ((t_exitscope - t_untraced) / (t_ftrace - t_untraced), target <= 1.0) and the
# sustained event rate with the ring-buffer drop count. Then, if perf is installed, PROFILE_ROUNDS
# (default 3) more ftrace and exitscope runs under `perf record` give the time per event spent
# in the kvm tracepoint handlers themselves.
#
#   sudo bench/kvm/kvm_bench.sh [BUILD_DIR] [LOOPS] [ROUNDS]     (defaults: build 65535 3)
#   ES_NICE='nice -n 19' ...: run the recorder at low priority (the guest keeps its CPU; drops rise)
set -euo pipefail
BUILD=${1:-build}
LOOPS=${2:-65535}
ROUNDS=${3:-3}
ES=$BUILD/bin/exitscope
GUEST=$BUILD/bin/es-kvm-guest
T=/sys/kernel/tracing
EVENTS="kvm_exit kvm_entry kvm_inj_virq kvm_inj_exception kvm_nested_vmexit kvm_nested_vmexit_inject
kvm_nested_intr_vmexit kvm_page_fault kvm_emulate_insn kvm_pio kvm_mmio kvm_msr kvm_userspace_exit
kvm_apic_accept_irq kvm_eoi"
[ "$(id -u)" = 0 ] || { echo "kvm_bench: needs root (tracefs and eBPF)" >&2; exit 2; }
[ -x "$ES" ] && [ -x "$GUEST" ] || { echo "kvm_bench: build exitscope and es-kvm-guest in $BUILD first" >&2; exit 2; }
[ -d $T/events ] || mount -t tracefs nodev $T
# The trace.dat import tests enable kvm events in tracefs too: one user at a time.
exec 9> /tmp/exitscope-tracefs.lock
flock 9
WORK=$(mktemp -d /tmp/kvm_bench.XXXXXX)
trap 'echo 0 > $T/tracing_on; for e in $EVENTS; do echo 0 > $T/events/kvm/$e/enable; done; rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
run_guest() {  # prints the workload's wall time in seconds; its CPU time (user + sys) goes to $WORK/cpu
  local a b
  a=$(now)
  if [ -n "${PROFILE:-}" ]; then  # the in-kernel phase: sample the workload instead of timing it
    perf record -q -e cpu-clock -F 20000 -g -o "$WORK/perf.data" -- "$GUEST" --loops "$LOOPS" --quiet > /dev/null 2>&1
    echo "0 0" > "$WORK/cpu.raw"
  else
    /usr/bin/time -f '%U %S' -o "$WORK/cpu.raw" "$GUEST" --loops "$LOOPS" --quiet > /dev/null
  fi
  b=$(now)
  awk '{print $1 + $2}' "$WORK/cpu.raw" > "$WORK/cpu"
  echo "$b - $a" | bc -l
}

untraced() { run_guest; }

ftrace_run() {
  echo 0 > $T/tracing_on
  echo > $T/trace
  echo 131072 > $T/buffer_size_kb
  for e in $EVENTS; do echo 1 > $T/events/kvm/$e/enable; done
  local pids=()
  for d in $T/per_cpu/cpu*; do
    cat "$d/trace_pipe_raw" > "$WORK/$(basename "$d").raw" &
    pids+=($!)
  done
  echo 1 > $T/tracing_on
  run_guest
  echo 0 > $T/tracing_on
  for e in $EVENTS; do echo 0 > $T/events/kvm/$e/enable; done
  sleep 0.3
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  FTRACE_LOST=$(cat $T/per_cpu/cpu*/stats | awk '/^overrun|^dropped events/ {s += $NF} END {print s + 0}')
  FTRACE_EVENTS=$(cat $T/per_cpu/cpu*/stats | awk '/^read events/ {s += $NF} END {print s + 0}')
  rm -f "$WORK"/*.raw
  echo 1408 > $T/buffer_size_kb
}

exitscope_run() {  # [extra record options]
  rm -f "$WORK/es.db"
  ${ES_NICE:-} "$ES" record --kvm -o "$WORK/es.db" "$@" > "$WORK/es.out" 2> "$WORK/es.err" &
  local pid=$!
  # Attached once it says "recording ...".
  local up=0
  for _ in $(seq 200); do
    if grep -qs '^recording' "$WORK/es.err"; then up=1; break; fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  [ $up = 1 ] || { echo "kvm_bench: exitscope record --kvm did not start:" >&2; cat "$WORK/es.err" >&2; exit 1; }
  run_guest
  local a b
  a=$(now)
  kill -INT $pid
  wait $pid
  b=$(now)
  ES_FINISH=$(echo "$b - $a" | bc -l)  # writing what was still buffered, indexes, chains
  ES_EVENTS=$(sed -n 's/^recorded \([0-9]*\) kvm events.*/\1/p' "$WORK/es.out")
  ES_DROPS=$(sed -n 's/.*; \([0-9]*\) dropped by the ring buffer.*/\1/p' "$WORK/es.out")
}

median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
# "median (q1..q3)" of the numbers on stdin: the spread of the per-round ratios.
quartiles() { sort -g | awk '{a[NR] = $1} END {printf "%.2f (quartiles %.2f..%.2f)", a[int((NR + 1) / 2)], a[int((NR + 3) / 4)], a[int((3 * NR + 3) / 4)]}'; }
# The kvm tracepoint handlers in $WORK/perf.data: the share of cpu-clock samples under ftrace's
# trace_event_raw_event_kvm_*, or the BPF path's perf_trace_kvm_* (tp) and __bpf_trace_kvm_*
# (tp_btf). Prints "NS_PER_EVENT RELATIVE": the sampled time in them over EVENTS, and their time
# relative to the rest of the workload's (share / (1 - share), which a VM running slower or
# faster during one run does not move).
handler_cost() {  # EVENTS
  perf report -i "$WORK/perf.data" --children --sort sym --stdio -g none 2> /dev/null |
    awk -v ev="$1" '/^# Event count/ {total = $NF}
      $4 ~ /^(perf_trace_kvm|__bpf_trace_kvm|trace_event_raw_event_kvm)_/ {sub("%", "", $1); share += $1}
      END {printf "%.1f %.4f\n", share / 100 * total / ev, share / (100 - share)}'
}

declare -a TU TF TE TN FE FN CU CF CE CN RW RC
ES_EVENTS=0; ES_DROPS=0; FTRACE_LOST=0; FTRACE_EVENTS=0; TOTAL_DROPS=0; FTRACE_LOST_ALL=0; NOYIELD_DROPS=0
untraced > /dev/null  # warm up
for r in $(seq "$ROUNDS"); do
  TU+=("$(untraced)"); CU+=("$(cat "$WORK/cpu")")
  ftrace_run > "$WORK/t"; TF+=("$(cat "$WORK/t")"); CF+=("$(cat "$WORK/cpu")")
  FTRACE_LOST_ALL=$((FTRACE_LOST_ALL + FTRACE_LOST))
  exitscope_run --max-lag 0 > "$WORK/t"; TN+=("$(cat "$WORK/t")"); CN+=("$(cat "$WORK/cpu")")
  NOYIELD_DROPS=$((NOYIELD_DROPS + ES_DROPS)); FN+=("$ES_FINISH")
  exitscope_run > "$WORK/t"; TE+=("$(cat "$WORK/t")"); CE+=("$(cat "$WORK/cpu")")
  TOTAL_DROPS=$((TOTAL_DROPS + ES_DROPS)); FE+=("$ES_FINISH")
  # This round's own ratios (a round's runs are seconds apart, so drift between rounds cancels).
  i=$((r - 1))
  RW+=("$(echo "(${TE[$i]} - ${TU[$i]}) / (${TF[$i]} - ${TU[$i]})" | bc -l)")
  RC+=("$(echo "(${CE[$i]} - ${CU[$i]}) / (${CF[$i]} - ${CU[$i]} + 0.000001)" | bc -l)")
done
mu=$(printf '%s\n' "${TU[@]}" | median)
mf=$(printf '%s\n' "${TF[@]}" | median)
me=$(printf '%s\n' "${TE[@]}" | median)
mn=$(printf '%s\n' "${TN[@]}" | median)
fe=$(printf '%s\n' "${FE[@]}" | median)
fn=$(printf '%s\n' "${FN[@]}" | median)
ratio=$(echo "($me - $mu) / ($mf - $mu)" | bc -l)
ratio_n=$(echo "($mn - $mu) / ($mf - $mu)" | bc -l)
rate=$(echo "$ES_EVENTS / $me" | bc -l)
printf 'kernel %s, %s CPUs, es-kvm-guest --loops %s, %s rounds (median)\n' "$(uname -r)" "$(nproc)" "$LOOPS" "$ROUNDS"
printf '  untraced           %8.3f s\n' "$mu"
printf '  ftrace (tracefs)   %8.3f s   overhead %+.3f s   %s events in the last round, %s lost in all rounds\n' \
  "$mf" "$(echo "$mf - $mu" | bc -l)" "$FTRACE_EVENTS" "$FTRACE_LOST_ALL"
printf '  exitscope --kvm    %8.3f s   overhead %+.3f s   %s events in the last round, %s dropped in all rounds\n' \
  "$me" "$(echo "$me - $mu" | bc -l)" "$ES_EVENTS" "$TOTAL_DROPS"
printf '  exitscope --max-lag 0 %5.3f s   overhead %+.3f s   %s dropped in all rounds\n' \
  "$mn" "$(echo "$mn - $mu" | bc -l)" "$NOYIELD_DROPS"
printf '  overhead ratio exitscope/ftrace %.2f (target <= 1.0); sustained %.0f events/s with %s drops\n' \
  "$ratio" "$rate" "$TOTAL_DROPS"
printf '  overhead ratio with --max-lag 0: %.2f\n' "$ratio_n"
printf '  per-round ratio exitscope/ftrace, median of %s: %s on wall time, %s on the workload'"'"'s CPU time\n' \
  "$ROUNDS" "$(printf '%s\n' "${RW[@]}" | quartiles)" "$(printf '%s\n' "${RC[@]}" | quartiles)"
printf '  workload CPU time (median): untraced %.2f s, ftrace %.2f s, exitscope %.2f s, --max-lag 0 %.2f s\n' \
  "$(printf '%s\n' "${CU[@]}" | median)" "$(printf '%s\n' "${CF[@]}" | median)" \
  "$(printf '%s\n' "${CE[@]}" | median)" "$(printf '%s\n' "${CN[@]}" | median)"
printf '  recording complete after the workload: %.3f s (default), %.3f s (--max-lag 0) from SIGINT to exit\n' \
  "$fe" "$fn"

# In-kernel cost per event, from perf samples of the workload (the VM's speed drifts between runs;
# a share of one run's own samples does not). PROFILE_ROUNDS=0 or no perf: skipped.
if command -v perf > /dev/null && [ "${PROFILE_ROUNDS:-3}" -gt 0 ]; then
  declare -a HF HE RF RE RH
  for r in $(seq "${PROFILE_ROUNDS:-3}"); do
    PROFILE=1 ftrace_run > /dev/null; read -r f rf <<< "$(handler_cost "$ES_EVENTS")"
    PROFILE=1 exitscope_run > /dev/null; read -r e re <<< "$(handler_cost "$ES_EVENTS")"
    HF+=("$f"); HE+=("$e"); RF+=("$rf"); RE+=("$re"); RH+=("$(echo "$re / $rf" | bc -l)")
  done
  printf '  in the kvm tracepoint handlers (perf cpu-clock samples, median of %s): ftrace %.0f ns/event (%.1f %% of the workload'"'"'s own time), exitscope %.0f ns/event (%.1f %%)\n' \
    "${PROFILE_ROUNDS:-3}" "$(printf '%s\n' "${HF[@]}" | median)" "$(echo "100 * $(printf '%s\n' "${RF[@]}" | median)" | bc -l)" \
    "$(printf '%s\n' "${HE[@]}" | median)" "$(echo "100 * $(printf '%s\n' "${RE[@]}" | median)" | bc -l)"
  printf '  handler cost ratio exitscope/ftrace, per round (each run against its own samples): %s\n' \
    "$(printf '%s\n' "${RH[@]}" | quartiles)"
fi
