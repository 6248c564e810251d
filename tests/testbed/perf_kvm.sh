#!/bin/bash
# Runs inside the test bed's emulated machine, after inner.sh's scenarios (issue #21: exitscope
# stats against `perf kvm stat report` on the same run). VMS VMs of ~600 exits each (tb-kvm-guest
# loop, one process and one vCPU 0 each), two at a time, are recorded at once by `perf kvm stat
# record` (system-wide kvm:kvm_exit / kvm_entry) and by `exitscope record --kvm` (issue #16:
# several VMs in one recording share vCPU numbers; exitscope must keep them apart, as perf does
# by thread). Writes OUT/perfkvm.db (the recording), OUT/perfkvm.report.txt (perf's
# per-exit-reason table), OUT/perfkvm.vms (how many VMs ran) and OUT/perfkvm.log.
# check.sh compares them. Without perf (package linux-perf) it writes OUT/perfkvm.skip.
# usage: perf_kvm.sh OUT WORKDIR   (reads OUT/config)
set -u
OUT=$1 W=$2
. "$OUT/config"
log=$OUT/perfkvm.log
if ! command -v perf >/dev/null; then echo "perf is not installed (package linux-perf)" > "$OUT/perfkvm.skip"; exit 0; fi
VMS=6
echo "$VMS" > "$OUT/perfkvm.vms"
{
  # Three rounds of two VMs at once: their exits interleave on the emulated CPU.
  perf kvm --host stat record -a -o "$W/perf.data" -- \
    "$ES" record --kvm -o "$W/perfkvm.db" --force -- /bin/sh -c \
      'for r in $(seq $(($2 / 2))); do "$1" loop & "$1" loop; wait; done' sh "$GUEST" "$VMS"
  echo "perf record exit $?"
  perf kvm --host -i "$W/perf.data" stat report --event=vmexit --key=sample
  echo "perf report exit $?"
  perf script -i "$W/perf.data" -F time,event,trace > "$OUT/perfkvm.script.txt" 2>/dev/null
} > "$log" 2>&1
# perf kvm stat report prints its table on stderr: keep it from its header on.
sed -n '/VM-EXIT/,/^Total Samples/p' "$log" > "$OUT/perfkvm.report.txt"
cp "$W/perfkvm.db" "$OUT/" 2>/dev/null
echo "inner: perf kvm stat comparison recorded"
