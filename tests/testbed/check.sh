#!/bin/bash
# Host side of the real-KVM test bed: compares each scenario's `exitscope record --kvm`
# recording (OUT/S.ATTACH.db) with the tracefs instance's text of the same run
# (OUT/S.ATTACH.ftrace.txt), written inside the emulated machine by inner.sh.
#   check.sh --exitscope BIN --out DIR --scenarios "..." --attach "..."
# Prints one line per check ("ok ..." / "FAIL ..."), then "N passed, N failed".
set -uo pipefail
es="" out="" scenarios="" attach=""
while [ $# -gt 0 ]; do
  case "$1" in
    --exitscope) es=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    --attach) attach=$2; shift 2 ;;
    *) echo "check: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
passed=0 failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
# expect NAME WANT GOT
expect() { if [ "$2" = "$3" ]; then ok "$1: $3"; else bad "$1: expected '$2', got '$3'"; fi; }

# The kvm tracepoints `record --kvm` attaches (kvm_fpu, kvm_update_master_clock ... are not).
recorded_tps="kvm_exit kvm_entry kvm_inj_virq kvm_inj_exception kvm_nested_vmexit kvm_nested_vmexit_inject
  kvm_nested_intr_vmexit kvm_page_fault kvm_emulate_insn kvm_pio kvm_mmio kvm_msr kvm_userspace_exit
  kvm_apic_accept_irq kvm_eoi"

# ftrace_lines FILE TP: the trace lines of tracepoint TP (header lines start with '#').
ftrace_lines() { grep -v '^#' "$1" | grep -E " $2: " || true; }

# How a recording shows each tracepoint's events (replay/cli `events` lines).
es_count() {  # DB TP
  local ev=$2
  case "$2" in
    kvm_exit) "$es" events "$1" --kind VM_EXIT 2>/dev/null | grep -c . ;;
    kvm_entry) "$es" events "$1" --kind VM_ENTRY 2>/dev/null | grep -c . ;;
    kvm_inj_virq) "$es" events "$1" --kind DECISION 2>/dev/null | grep -cE 'INJECT_[A-Z_]+ +IRQ ' ;;
    kvm_inj_exception) "$es" events "$1" --kind DECISION 2>/dev/null | grep -cE 'INJECT_[A-Z_]+ +#' ;;
    kvm_nested_*) "$es" events "$1" --kind NESTED_EXIT 2>/dev/null | grep -c "$ev" ;;
    *) "$es" events "$1" --kind CONTEXT 2>/dev/null | grep -cE "CONTEXT +$ev( |$)" ;;
  esac
}

for s in $scenarios; do
  for att in $attach; do
    n=$s.$att db=$out/$s.$att.db ft=$out/$s.$att.ftrace.txt
    if [ ! -f "$db" ] || [ ! -f "$ft" ]; then bad "$n: no recording or no ftrace text in $out"; continue; fi
    grep -q '^record exit 0$' "$out/$n.record.txt" || bad "$n: record --kvm failed: $(tail -n 3 "$out/$n.record.txt" | tr '\n' ' ')"
    grep -q ' 0 dropped by the ring buffer' "$out/$n.record.txt" || bad "$n: the recording dropped records"
    # 1. Per-tracepoint counts: every event ftrace saw, the recording has, and no more.
    for tp in $recorded_tps; do
      want=$(ftrace_lines "$ft" "$tp" | grep -c .)
      got=$(es_count "$db" "$tp")
      [ "$want" = 0 ] && [ "$got" = 0 ] && continue
      expect "$n: $tp events (ftrace vs record)" "$want" "$got"
    done
  done
done
echo "check: $passed passed, $failed failed"
[ "$failed" = 0 ]
