#!/bin/bash
# Runs inside the test bed's emulated machine (as root; on SVM in a chroot of the host's root,
# on VMX in Bochs's self-contained initramfs).
# For each scenario of tb-kvm-guest: a tracefs instance records the kvm events while
# `exitscope record --kvm` records the same run. Writes OUT/<scenario>.{db,ftrace.txt,record.txt,
# guest.txt} and OUT/env.txt; testbed.sh compares them on the host. SQLite's WAL needs shared
# mmap, which 9p lacks, so recordings are written on tmpfs and copied out.
# usage: inner.sh OUT   (reads OUT/config: ES, GUEST, PM_GUEST, RUNS (scenario.attach ...), TRACEPOINTS,
#                       STATS (optional: 1 records with --stats), PERF (optional: 0 leaves out perf_kvm.sh))
set -u
OUT=$1
STATS=""
. "$OUT/config"
W=${TMPDIR:-/tmp}/tb-work; mkdir -p "$W"
{
  echo "kernel $(uname -r)"
  grep -m1 -o -w -E 'svm|vmx' /proc/cpuinfo | sed 's/^/cpu flag /'
  for p in /sys/module/kvm_amd/parameters/npt /sys/module/kvm_amd/parameters/nested \
           /sys/module/kvm_intel/parameters/ept /sys/module/kvm_intel/parameters/unrestricted_guest \
           /sys/module/kvm_intel/parameters/nested /sys/module/kvm_intel/parameters/enable_shadow_vmcs \
           /sys/module/kvm_intel/parameters/eptad /sys/module/kvm/parameters/tdp_mmu; do
    [ -f $p ] && echo "$p $(cat $p)"
  done
  [ -c /dev/kvm ] && echo "dev-kvm yes" || echo "dev-kvm no"
} > "$OUT/env.txt"
if [ ! -c /dev/kvm ]; then echo "inner: /dev/kvm is missing (kvm_amd / kvm_intel did not load)"; exit 0; fi
# The kernel's kvm tracepoint formats, kept with the run (fixtures for the format parser).
mkdir -p "$OUT/formats"
for f in /sys/kernel/tracing/events/kvm/*/format; do cp "$f" "$OUT/formats/$(basename "$(dirname "$f")")" 2>/dev/null; done
T=/sys/kernel/tracing/instances/exitscope-tb
for n in $RUNS; do
    s=${n%%.*} att=${n#*.}
    rmdir $T 2>/dev/null; mkdir $T
    echo 4096 > $T/buffer_size_kb
    # The tracepoints record --kvm attaches, and only those, so that the ftrace text and
    # its import hold the same events as the live recording.
    for tp in $TRACEPOINTS; do
      [ -d $T/events/kvm/$tp ] && echo 1 > $T/events/kvm/$tp/enable
    done
    echo 1 > $T/tracing_on
    start=$(cut -d' ' -f1 /proc/uptime)
    g=$GUEST
    case $s in nested|escalate) g=$PM_GUEST ;; esac  # the protected-mode scenarios' program
    # --stats (issue #21): the whole session's per-reason table at the end, which check.sh
    # compares with the tracefs counts of the same run.
    "$ES" record --kvm --attach "$att" ${STATS:+--stats} -o "$W/$n.db" --force -- "$g" "$s" > "$W/$n.record.txt" 2>&1
    echo "record exit $?" >> "$W/$n.record.txt"
    end=$(cut -d' ' -f1 /proc/uptime)
    echo 0 > $T/tracing_on
    cat $T/trace > "$W/$n.ftrace.txt"
    echo 0 > $T/events/kvm/enable
    rmdir $T
    echo "inner: $n recorded in $(echo "$end $start" | awk '{printf "%.1f", $1 - $2}') s"
    cp "$W/$n.db" "$W/$n.record.txt" "$W/$n.ftrace.txt" "$OUT/" 2>/dev/null
done
# exitscope stats against perf kvm stat on one more run (perf_kvm.sh; checked by check.sh); not
# on another release's kernel (PERF=0: the host's perf is built for the host's kernel).
[ "${PERF:-1}" = 1 ] && [ -f "$(dirname "$0")/perf_kvm.sh" ] && bash "$(dirname "$0")/perf_kvm.sh" "$OUT" "$W"
echo "inner: done"
