#!/bin/bash
# Host side of the real-KVM test bed: compares each scenario's `exitscope record --kvm`
# recording (OUT/S.ATTACH.db) with the tracefs instance's text of the same run
# (OUT/S.ATTACH.ftrace.txt), both written inside the emulated machine by inner.sh:
#   1. per tracepoint, ftrace's event count = the recording's;
#   2. every event's decoded fields = what ftrace printed (exit reason by its SVM name, RIP,
#      EXITINFO1 / EXITINFO2, EXITINTINFO, injected vector and [reinjected], port I/O, ...);
#   3. `exitscope import` of the ftrace text = the live recording (`exitscope diff` clean);
#   4. the chains and `check` verdicts written down from the APM and KVM before the first run.
#   check.sh --exitscope BIN --out DIR --runs "SCENARIO.ATTACH ..." --tracepoints "..." [--vendor svm|vmx] [--stats]
# --vendor vmx (testbed_vmx.sh): kvm_exit's fields and the verdicts as the Intel SDM and KVM's
# vmx.c give them (exit names EPT_VIOLATION, IO_INSTRUCTION, ...; IDT-vectoring info).
# Prints one line per check ("ok" / "FAIL", "note" for what a run could not check), then
# "check: N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
es="" out="" runs="" tracepoints="" vendor=svm stats=0
while [ $# -gt 0 ]; do
  case "$1" in
    --exitscope) es=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --tracepoints) tracepoints=$2; shift 2 ;;
    --vendor) vendor=$2; shift 2 ;;
    --stats) stats=1; shift ;;  # the runs were recorded with --stats (inner.sh STATS=1)
    *) echo "check: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
passed=0 failed=0 known=0
ok() { echo "ok    $*"; passed=$((passed + 1)); }
bad() { echo "FAIL  $*"; failed=$((failed + 1)); }
# expect NAME WANT GOT
expect() { if [ "$2" = "$3" ]; then ok "$1: $3"; else bad "$1: expected '$2', got '$3'"; fi; }
# expect_known NAME WANT GOT REASON: a check whose failure is a known defect outside the test bed
# (REASON says where): it prints KNOWN instead of failing, and ok once the defect is fixed.
expect_known() {
  if [ "$2" = "$3" ]; then ok "$1: $3"
  else echo "KNOWN $1: expected '$2', got '$3' ($4)"; known=$((known + 1)); fi
}

# ftrace_lines FILE TP: the trace lines of tracepoint TP (header lines start with '#').
ftrace_lines() { grep -v '^#' "$1" | grep -E " $2: " || true; }
events() { "$es" events "$@" 2>/dev/null || true; }

# How a recording shows each tracepoint's events (exitscope events lines).
es_count() {  # DB TP ATTACHED
  case "$2" in
    kvm_exit) events "$1" --kind VM_EXIT | grep -c . ;;
    kvm_entry) events "$1" --kind VM_ENTRY | grep -c . ;;
    kvm_inj_virq) events "$1" --kind DECISION | grep -cE 'INJECT_[A-Z_]+ +IRQ ' ;;
    kvm_inj_exception) events "$1" --kind DECISION | grep -cE 'INJECT_[A-Z_]+ +#' ;;
    kvm_nested_vmexit) events "$1" --kind VM_EXIT | awk '$3 ~ /^L2/' | grep -c . ;;  # the exits at L2
    kvm_nested_vmexit_inject) events "$1" --kind NESTED_EXIT | grep -c . ;;
    kvm_nested_vmenter|kvm_nested_vmrun)  # one name per kernel (kvm_nested_vmrun before 5.12): the attached one
      case " $3 " in *" $2 "*) events "$1" --kind NESTED_ENTRY | grep -c . ;; *) echo 0 ;; esac ;;
    kvm_nested_intr_vmexit) events "$1" --kind DECISION | grep -c 'REFLECT_TO_L1 exit=interrupt' ;;
    *) events "$1" --kind CONTEXT | grep -cE "CONTEXT +$2( |$)" ;;
  esac
}

# One normalized line per KVM event, from either side, in time order:
#   exit REASON rip=R info1=Q info2=I2 vec=TYPE:VECTOR|-   entry rip=R imm=0|1
#   inj IRQ 0x20|#DE reinj=0|1   pio read|write PORT VAL SIZE   pf ADDR ERR
#   uexit NAME   emul RIP
# info2 is compared where the recording shows it (npf's GPA, io's next RIP, exitinfo2=).
norm_ftrace() {
  grep -v '^#' "$1" | awk -v vendor="$vendor" -f "$here/norm_ftrace.awk"
}
norm_recording() {
  events "$1" | awk -v vendor="$vendor" -f "$here/norm_recording.awk"
}

# same_but_pf_rip DB: the events without ids, times, links, import line numbers and
# kvm_page_fault's RIP, for a recording whose tp_btf program cannot see that RIP.
same_but_pf_rip() {
  events "$1" | sed -E 's/^#[0-9]+ +[0-9.]+ +//; s/ (cause|origin)=#[0-9]+//g; s/ line=[0-9]+//; /kvm_page_fault/s/ rip=[^ ]+//'
}

# chain_outcomes DB: "ROOT-EVENT -> OUTCOME" per chain, in order.
chain_outcomes() {
  "$es" chains "$1" 2>/dev/null | awk '
    /^chain [0-9]+:/ { sub(/^chain [0-9]+: /, ""); sub(/  L[0-9].*/, ""); root = $0 }
    /^  outcome:/ { sub(/^  outcome: +/, ""); sub(/ \(#[0-9]+\)/, ""); print root " -> " $0 }' | paste -sd';' - | sed 's/^$/(none)/'
}

# Verdicts written from the AMD APM and KVM 6.1 before the first run (each tb_*.asm says why).
declare -A want_chains want_exits want_l2_exits want_vmenters want_levels want_l0_injections want_pio
want_chains[pio]="(none)"                                       # no event injected or raised
want_chains[mmio]="(none)"
want_chains[irq]="IRQ 0x20 -> delivered"                     # KVM_INTERRUPT, IF=1: one injection, delivered
want_chains[irq-npf]="IRQ 0x20 -> delivered after reinjection" # NPF during delivery, EXITINTINFO -> requeued
want_chains[npf]="#DE -> delivered after reinjection"        # the same for a #DE the CPU raised
want_chains[triple]="#DE -> triple fault"                    # #DE -> #GP -> #DF -> shutdown
want_chains[escalate]="#UD -> triple fault"                  # tb_escalate.asm: NPF, reinjected, #GP, #GP, #DF, shutdown
# nested (tb_nested_l1.asm says why): L1's EVENTINJ IRQ 0x21, whose delivery in L2 L0's NPFs
# interrupt (L0 reinjects it into L2); L0's IRQ 0x20 injected into L2 directly (L1 does not
# intercept INTR); #UD in L2 reflected to L1, which injects it back through EVENTINJ.
want_chains[nested]="IRQ 0x21 -> delivered after reinjection;IRQ 0x20 -> delivered;#UD -> delivered"
want_vmenters[nested]="no injection;inject=IRQ 0x21;inject=#UD"     # L1's VMRUNs and their EVENTINJ
want_levels[nested]="L2 L2 L2"
# Port I/O (kvm_pio: "LEVEL VALUE", in order) and the exit to user space that completes each. L1
# does not intercept IOIO, so each OUT of L2 to 0xE9 (the IRQ 0x21, IRQ 0x20 and #UD handlers'
# and its own two) is an exit KVM keeps (nested_svm_exit_handled: NESTED_EXIT_HOST), handled in
# L2's context by io_interception: L2(L0). L1's OUTs of each #VMEXIT code to port 0x10 (CPUID
# 0x72, #UD 0x46, HLT 0x78) are L1's own: L1(L0). (Written from tb_nested_l1.asm and svm.c.)
want_pio[nested]="L1(L0) 0x72;L2(L0) 0x21;L2(L0) 0x1;L2(L0) 0x20;L1(L0) 0x46;L2(L0) 0x6;L2(L0) 0x2;L1(L0) 0x78"
# Exits other than the host's interrupts (which TCG's timer places at will), by SVM name.
want_exits[pio]="npf io io io hlt"
# mmio (tb_mmio.asm says why): the code page; the write to 0x20000, a GPA no memslot backs (KVM
# installs an MMIO SPTE and emulates: KVM_EXIT_MMIO); the read of 0x20010, an NPF on that MMIO
# SPTE (reserved-bit error code, handle_mmio_page_fault); the OUT of the value read; HLT.
want_exits[mmio]="npf npf npf io hlt"
want_exits[irq]="npf npf npf io io io hlt"                   # code, IVT (0x80), stack (0x7ffe)
want_exits[irq-npf]="npf npf io npf io io hlt"               # code, IVT, the stack at 0xeffe during delivery
want_exits[npf]="npf npf npf io io hlt"                      # code, IVT (0x0), the stack at 0xeffe
want_exits[triple]="npf shutdown"
want_exits[escalate]="npf npf io UD npf shutdown"            # page directory, code, OUT, ud2, IDT gate 6
# nested: the exits L1 sees (NESTED_EXIT, kvm_nested_vmexit_inject): its intercepts CPUID, #UD, HLT.
want_exits[nested]="cpuid UD excp hlt"
# The exit during delivery: "REASON vectoring=EVENT gpa=GPA" (APM 15.7.2: EXITINTINFO).
declare -A want_vectoring
want_vectoring[irq-npf]="npf vectoring=IRQ 0x20 gpa=0xeffe"
want_vectoring[npf]="npf vectoring=#DE gpa=0xeffe"
want_vectoring[triple]="shutdown vectoring=#DE"
want_vectoring[escalate]="npf vectoring=#UD gpa=0x30030"     # gate 6 of the IDT at 0x30000
if [ "$vendor" = vmx ]; then
  # VMX (written from the Intel SDM and KVM 6.1's vmx.c before the first run). With EPT and
  # unrestricted guest the real-mode guest runs natively; vmx_update_exception_bitmap intercepts
  # #PF (not with EPT), #UD, #MC, #DB, #AC only, so #DE / #GP / #DF go through the guest's IVT.
  # Exits: the first touch of a page KVM has not mapped is EPT_VIOLATION (SDM Vol. 3C "EPT-Induced VM Exits"),
  # IN / OUT is IO_INSTRUCTION (exit 30), HLT is HLT (12); the host's interrupts
  # (EXTERNAL_INTERRUPT) come where the timer puts them and are left out as on SVM.
  want_exits[pio]="EPT_VIOLATION IO_INSTRUCTION IO_INSTRUCTION IO_INSTRUCTION HLT"
  # The MMIO SPTE KVM installs at the first access is a misconfigured EPT entry on VMX (the
  # read's exit is EPT_MISCONFIG, SDM Vol. 3C 29.3.3.1 "EPT Misconfigurations"; handle_ept_misconfig).
  want_exits[mmio]="EPT_VIOLATION EPT_VIOLATION EPT_MISCONFIG IO_INSTRUCTION HLT"
  want_exits[irq]="EPT_VIOLATION EPT_VIOLATION EPT_VIOLATION IO_INSTRUCTION IO_INSTRUCTION IO_INSTRUCTION HLT"
  want_exits[irq-npf]="EPT_VIOLATION EPT_VIOLATION IO_INSTRUCTION EPT_VIOLATION IO_INSTRUCTION IO_INSTRUCTION HLT"
  want_exits[npf]="EPT_VIOLATION EPT_VIOLATION EPT_VIOLATION IO_INSTRUCTION IO_INSTRUCTION HLT"
  # #DE -> #GP -> #DF -> triple fault: exit 2 (SDM Vol. 3C 26.2 "Other Causes of VM Exits");
  # KVM's handle_triple_fault returns KVM_EXIT_SHUTDOWN.
  want_exits[triple]="EPT_VIOLATION TRIPLE_FAULT"
  # An EPT violation while delivering the event sets the IDT-vectoring info (SDM Vol. 3C 27.2.4,
  # "Information for VM Exits During Event Delivery"); __vmx_complete_interrupts requeues it
  # (kvm_queue_interrupt for an external interrupt, kvm_requeue_exception for #DE) and the next
  # entry injects it again, [reinjected]. The GPA is kvm_page_fault's (kvm_exit has none on VMX).
  want_vectoring[irq-npf]="EPT_VIOLATION vectoring=IRQ 0x20 gpa=0xeffe"
  want_vectoring[npf]="EPT_VIOLATION vectoring=#DE gpa=0xeffe"
  # 27.2.4: "A VM exit is not considered to occur during event delivery" when it "is caused by a
  # triple fault": no IDT-vectoring info, and KVM never saw #DE, #GP or #DF (not intercepted),
  # so there is no event to make a chain of; the exit must not claim one.
  want_vectoring[triple]="TRIPLE_FAULT no vectoring"
  want_chains[triple]="(none)"
  # nested (tb_nested_vmx_l1.asm says why): L1 intercepts CPUID (always), I/O (unconditional I/O
  # exiting), #UD (exception bitmap) and HLT; nested_vmx_l1_wants_exit reflects each
  # (kvm_nested_vmexit_inject). L0 keeps L2's EPT violations (nested_vmx_l0_wants_exit: L1 uses
  # no EPT) and the host's interrupts.
  want_exits[nested]="CPUID IO_INSTRUCTION IO_INSTRUCTION EXCEPTION_NMI IO_INSTRUCTION IO_INSTRUCTION HLT"
  # Every exit of L2 that L0 sees (kvm_nested_vmexit), host interrupts aside: L2's own TDP root
  # (the MMU role has guest_mode) maps nothing at first, so its first fetch at 0x3000 meets an
  # EPT violation on the page directory (0x9000, the guest page walk) and one on the code page;
  # IRQ 0x21's delivery one on the IDT / GDT page and one on the stack page; the rest are L1's.
  want_l2_exits[nested]="EPT_VIOLATION EPT_VIOLATION CPUID EPT_VIOLATION EPT_VIOLATION IO_INSTRUCTION IO_INSTRUCTION EXCEPTION_NMI IO_INSTRUCTION IO_INSTRUCTION HLT"
  # L1's VMLAUNCH and six VMRESUMEs (kvm_nested_vmenter): the VM-entry interruption-information
  # field holds IRQ 0x21 after the CPUID exit and #UD after the #UD exit, nothing otherwise
  # (KVM clears its valid bit on every nested VM exit, as SDM 27.2.5 says the CPU does).
  want_vmenters[nested]="no injection;inject=IRQ 0x21;no injection;no injection;inject=#UD;no injection;no injection"
  # L1's IRQ 0x21, whose delivery L0's EPT violations interrupt (the IDT gate at 0x4800 + 8 *
  # 0x21 first) and L0 reinjects into L2 (kvm_inj_virq [reinjected], twice); L1's #UD injected
  # back, delivered at once. Both chains and both deliveries are L2's (SDM 26.6: the event is
  # delivered in the guest the VM entry enters).
  want_vectoring[nested]="EPT_VIOLATION vectoring=IRQ 0x21 gpa=0x4908"
  want_chains[nested]="IRQ 0x21 -> delivered after reinjection;#UD -> delivered"
  want_levels[nested]="L2 L2"
  unset 'want_pio[nested]'  # L1 intercepts I/O on VMX: not written down for Bochs yet
  want_l0_injections[nested]="INJECT_REINJECTED IRQ 0x21;INJECT_REINJECTED IRQ 0x21"
fi

if [ "$vendor" = svm ] && grep -q '^kernel 5\.10\.' "$out/env.txt" 2>/dev/null; then
  # Linux 5.10 (./run testbed --suite bullseye): its default MMU is the legacy one (tdp_mmu=N, in
  # env.txt), whose direct_pte_prefetch (arch/x86/kvm/mmu/mmu.c) maps, with a faulting page, the
  # other pages of its 8-page-aligned block that the host already maps. The VMM wrote the IVT
  # page (0x0) when it loaded the guest, so the NPF on the code page (0x1000) maps it too: no NPF
  # on the IVT. The stack pages (0x7000, 0xe000: never touched by the VMM) still fault. 6.1's
  # TDP MMU prefetches nothing. (Written after the first 5.10 run showed one NPF fewer, from
  # 5.10's mmu.c; the 6.1 lists above are unchanged.)
  want_exits[irq]="npf npf io io io hlt"        # code (+ IVT), stack (0x7ffe)
  want_exits[irq-npf]="npf io npf io io hlt"    # code (+ IVT), the stack at 0xeffe during delivery
  want_exits[npf]="npf npf io io hlt"           # code (+ IVT), the stack at 0xeffe
fi
# KVM sometimes injects an event, cancels the injection before VMRUN (vcpu_enter_guest's
# cancel_injection path: a pending request, a signal, need_resched) and injects it again, so
# ftrace shows two kvm_inj_* for one event with no kvm_entry between. The chain verdicts are the
# same with or without it (the kvm linker keeps one chain and records an inferred
# CANCEL_INJECTION); the check says how many ftrace showed, so a run that had one is visible.
cancelled_injections() {  # FTRACE: kvm_inj_* lines followed by another before any kvm_entry
  grep -v '^#' "$1" | grep -oE ' kvm_(inj_virq|inj_exception|entry): ' |
    awk '/inj/ { if (pending) n++; pending = 1; next } { pending = 0 } END { print n + 0 }'
}

for n in $runs; do
  s=${n%%.*} att=${n#*.}
  {
    db=$out/$n.db ft=$out/$n.ftrace.txt
    if [ ! -f "$out/$n.record.txt" ]; then bad "$n: inner.sh did not run it (see $out/console.txt)"; continue; fi
    if [ "$att" = tp_btf ] && grep -q '^kernel 5\.10\.' "$out/env.txt"; then
      # Linux 5.10 has no BTF for modules (it came with 5.11, CONFIG_DEBUG_INFO_BTF_MODULES) and
      # Debian builds KVM as one: no kvm tracepoint has a prototype, tp_btf cannot attach to any.
      expect "$n: tp_btf refused on 5.10 with the reason (no BTF for the kvm module), exit 2" \
        "the kvm module has no BTF;record exit 2" \
        "$(grep -o -m1 'the kvm module has no BTF' "$out/$n.record.txt");$(grep -o '^record exit [0-9]*' "$out/$n.record.txt")"
      continue
    fi
    if grep -q '^record exit 0$' "$out/$n.record.txt" && [ -f "$db" ] && [ -f "$ft" ]; then ok "$n: record --kvm exit 0"
    else bad "$n: record --kvm failed: $(grep -v -E '^(pid|out|in|irq|hlt|done) ' "$out/$n.record.txt" | tail -n 4 | tr '\n' ' ')"; continue; fi
    # A tracepoint the recording left out (not offered through this attach method on this kernel,
    # or refused by the verifier) is said, with exitscope's sentence, and left out of the ftrace
    # text compared; the chain verdicts need kvm_exit, kvm_entry and kvm_inj_* all recorded.
    attached=$("$es" info "$db" | sed -n 's/^kvm: *attached //p' | grep -oE 'kvm_[a-z_]+' | paste -sd' ' -)
    for tp in $tracepoints; do
      case " $attached " in *" $tp "*) ;; *)
        [ -n "$(ftrace_lines "$ft" "$tp")" ] &&
          echo "note  $n: $tp not recorded: $(grep -m1 "not recording $tp " "$out/$n.record.txt" | sed 's/^exitscope record: not recording //')" ;;
      esac
    done
    # A refusal names the verifier's reason and never blames permissions (this runs as root).
    refusals=$(grep '^exitscope record: not recording' "$out/$n.record.txt" || true)
    if echo "$refusals" | grep -qiE 'permission|sudo|root'; then
      bad "$n: a refusal blames permissions although record ran as root: $(echo "$refusals" | grep -iE 'permission|sudo|root' | head -n 1)"
    fi
    if [ "$att" = tp_btf ] && grep -q '^kernel 6\.1\.' "$out/env.txt"; then
      # Linux 6.1's btf_trace_kvm_pio has 'const void *data' as its fifth argument: the verifier
      # will not let a tp_btf program read it (btf_ctx_access: not a struct pointer).
      expect "$n: kvm_pio's tp_btf program refused by the verifier, with its reason" \
        "the kernel's verifier refused its tp_btf program btf_kvm_pio (func 'kvm_pio' arg4 type UNKNOWN is not a struct" \
        "$(echo "$refusals" | grep -o "the kernel's verifier refused its tp_btf program btf_kvm_pio (func 'kvm_pio' arg4 type UNKNOWN is not a struct")"
    fi
    full=$ft
    ft=$out/$n.ftrace.attached.txt
    grep -E "^#| ($(echo $attached | sed 's/ /|/g')): " "$full" > "$ft"
    grep -q ' 0 dropped by the ring buffer' "$out/$n.record.txt" || bad "$n: the recording dropped records"
    grep -q "^done $s$" "$out/$n.record.txt" || bad "$n: tb-kvm-guest did not finish its scenario"
    # The guest program's own verdict: status 0 when it saw what its .asm expects (nested: the exits
    # L1 reported and the port writes L1 made for L2, in order).
    status=$(grep -o -m1 'workload exited with status [0-9]*' "$out/$n.record.txt" | grep -o '[0-9]*$')
    [ "${status:-0}" = 0 ] || bad "$n: the guest program exited with status $status: $(grep -m1 '^unexpected' "$out/$n.record.txt")"

    # 1. Per-tracepoint counts.
    for tp in $tracepoints; do
      want=$(ftrace_lines "$ft" "$tp" | grep -c .)
      got=$(es_count "$db" "$tp" "$attached")
      [ "$want" = 0 ] && [ "$got" = 0 ] && continue
      expect "$n: $tp events (ftrace = record)" "$want" "$got"
    done

    # 2. Decoded fields, event by event.
    norm_ftrace "$ft" > "$out/$n.ftrace.norm"
    norm_recording "$db" > "$out/$n.record.norm"
    if diff -u "$out/$n.ftrace.norm" "$out/$n.record.norm" > "$out/$n.norm.diff"; then
      ok "$n: decoded fields of all $(wc -l < "$out/$n.ftrace.norm") events equal ftrace's"
    else
      bad "$n: decoded fields differ from ftrace's ($out/$n.norm.diff):"; head -n 12 "$out/$n.norm.diff" | sed 's/^/      /'
    fi

    # 3. The ftrace text imported = the live recording.
    if "$es" import "$ft" -o "$out/$n.imported.db" --force > "$out/$n.import.txt" 2>&1; then
      if "$es" diff "$out/$n.imported.db" "$db" > "$out/$n.diff.txt" 2>&1; then
        ok "$n: exitscope import of the ftrace text = the recording (diff: $(grep -m1 '^events:' "$out/$n.diff.txt"))"
      elif [ "$(same_but_pf_rip "$out/$n.imported.db"; echo x)" = "$(same_but_pf_rip "$db"; echo x)" ] &&
           events "$db" | grep -q 'kvm_page_fault .*rip=unknown'; then
        # tp_btf: kvm_page_fault's arguments (6.1: vcpu, fault_address, error_code) lack the RIP
        # that its TP_fast_assign reads with kvm_rip_read(), so the recording says rip=unknown.
        ok "$n: exitscope import of the ftrace text = the recording, but for kvm_page_fault's RIP (rip=unknown: its tp_btf arguments do not carry it)"
      else
        bad "$n: exitscope diff of the import and the recording is not clean ($out/$n.diff.txt):"
        sed -n '3,20p' "$out/$n.diff.txt" | sed 's/^/      /'
      fi
    else
      bad "$n: exitscope import failed: $(tail -n 2 "$out/$n.import.txt" | tr '\n' ' ')"
    fi

    # 3b. record --stats (issue #21): the whole session's table, per exit reason (both levels
    # summed), per reflected exit "(nested)", per context tracepoint and per injection kind,
    # against the tracefs text of the same run. Columns: "  %-32s %-5s %10s ..." (live_stats.cpp).
    if [ "$stats" = 1 ] && ! grep -q '^KVM events by reason, whole session:' "$out/$n.record.txt"; then
      bad "$n: record --stats printed no whole-session table"
    elif [ "$stats" = 1 ]; then
      stats_table=$(sed -n '/^KVM events by reason, whole session:/,$p' "$out/$n.record.txt" | sed -n '3,$p' |
        grep -E '^  ' | grep -v '(nothing yet)' | awk '{
          name = substr($0, 3, 32); sub(/ +$/, "", name); count = substr($0, 42, 10) + 0
          if (name ~ / \(nested\)$/) { sub(/ \(nested\)$/, "", name); key = "nested " name }
          else if (name ~ /^kvm_/) key = "context " name
          else if (name == "injection" || name == "reinjection") key = name
          else key = "exit " name
          n[key] += count }
          END { for (k in n) print k "=" n[k] }' | sort | paste -sd';' -)
      ftrace_table=$({
          sed -n 's/^exit \(.*\) rip=.*/exit \1/p' "$out/$n.ftrace.norm"
          sed -n 's/^reflect \(.*\) vec=.*/nested \1/p' "$out/$n.ftrace.norm"
          sed -n 's/^inj .* reinj=0$/injection/p; s/^inj .* reinj=1$/reinjection/p' "$out/$n.ftrace.norm"
          for tp in $tracepoints; do
            case $tp in kvm_page_fault|kvm_emulate_insn|kvm_pio|kvm_msr|kvm_apic_accept_irq|kvm_eoi|kvm_mmio|kvm_userspace_exit)
              ftrace_lines "$ft" "$tp" | sed "s/.*/context $tp/" ;;
            esac
          done
        } | sort | uniq -c | awk '{ c = $1; sub(/^ *[0-9]+ /, ""); print $0 "=" c }' | sort | paste -sd';' -)
      expect "$n: record --stats' whole-session table (ftrace = record)" "$ftrace_table" "$stats_table"
    fi

    # 3c. stats --by mmio (issue #21, perf kvm stat's mmio view): per MMIO address and direction,
    # the exits whose handling did that MMIO, from the ftrace text: the first kvm_mmio between a
    # kvm_exit and the next kvm_entry (an unsatisfied read is the read's first line).
    if [ "$s" = mmio ]; then
      want=$(grep -v '^#' "$ft" | awk '/ kvm_exit: / { open = 1; next } / kvm_entry: / { open = 0; next }
               open && / kvm_mmio: / { split(substr($0, index($0, "kvm_mmio: ") + 10), f, " ")
                 print "mmio " f[6] " " (f[2] == "write" ? "wr" : "rd"); open = 0 }' |
             sort | uniq -c | awk '{ print $2 " " $3 " " $4 "=" $1 }' | paste -sd';' -)
      got=$("$es" stats "$db" --by mmio --format csv 2>/dev/null |
            awk -F, '$1 == "mmio" { gsub(/"/, "", $3); print $3 "=" $5 }' | sort | paste -sd';' -)
      expect "$n: stats --by mmio: MMIO exits by address and direction (ftrace = stats)" "$want" "$got"
    fi

    # 4. The verdicts.
    case " $attached " in *" kvm_exit kvm_entry kvm_inj_virq kvm_inj_exception "*) ;; *)
      echo "note  $n: no chain verdicts: kvm_exit, kvm_entry or kvm_inj_* not recorded"; continue ;;
    esac
    if [ "$s" = nested ]; then
      exits=$(events "$db" --kind NESTED_EXIT | sed -E 's/.*NESTED_EXIT +//; s/ [a-z0-9_]+=.*//' | paste -sd' ' -)
      expect "$n: exits reflected to L1" "${want_exits[$s]}" "$exits"
      # L1's VM entries (kvm_nested_vmenter; SVM: VMRUN with its EVENTINJ, VMX: VMLAUNCH /
      # VMRESUME with the VM-entry interruption-information field).
      expect "$n: L1's VM entries and what they inject" "${want_vmenters[$s]}" \
        "$(events "$db" --kind NESTED_ENTRY | grep -oE '(no injection|inject=[^=]*) rip=' | sed 's/ rip=$//' | paste -sd';' -)"
      # Every chain is L2's: its root, and where it was delivered (APM 15.20, SDM 26.6: L1's
      # injections and L0's alike are taken by the guest the VM entry enters, L2).
      expect "$n: chain levels" "${want_levels[$s]}" \
        "$("$es" chains "$db" 2>/dev/null | sed -nE 's/^chain [0-9]+: .*  (L[0-9]) vcpu.*/\1/p' | paste -sd' ' -)"
      expect "$n: deliveries at L2" "${want_levels[$s]}" "$(events "$db" --kind DELIVERY | awk '{print $3}' | paste -sd' ' -)"
      if [ -n "${want_l2_exits[$s]:-}" ]; then
        expect "$n: L2's exits at L0 (host interrupts aside)" "${want_l2_exits[$s]}" \
          "$(events "$db" --kind VM_EXIT | awk '$3 ~ /^L2/ {print $6}' | grep -v -E '^(interrupt|EXTERNAL_INTERRUPT)$' | paste -sd' ' -)"
      fi
      # What L0 does while handling an exit of L2 (kvm_page_fault of its EPT violation / NPF, its
      # port I/O, the exit to user space) concerns L2: each event caused by an exit at L2(L0)
      # is at L2(L0) too (KVM traces kvm_page_fault in that exit's handler: VMX
      # handle_ept_violation, SVM npf_interception).
      expect "$n: context events of L2's exits at L2(L0)" "0 elsewhere" \
        "$(events "$db" | awk '$5 == "VM_EXIT" { lvl[$1] = $3 }
            $5 == "CONTEXT" && match($0, / cause=#[0-9]+/) { c = substr($0, RSTART + 8, RLENGTH - 8)
              if (lvl["#" c] ~ /^L2/ && $3 != lvl["#" c]) n++ }
            END { print n + 0 " elsewhere" }')"
      if [ -n "${want_pio[$s]:-}" ]; then
        expect "$n: port I/O and its level" "${want_pio[$s]}" \
          "$(events "$db" | awk '$5 == "CONTEXT" && $6 == "kvm_pio" { sub(/^val=/, "", $9); print $3, $9 }' | paste -sd';' -)"
        # KVM_EXIT_IO completes the port I/O just traced (kvm_pio, then the exit to user space).
        expect "$n: exits to user space at their port I/O's level" "0 elsewhere" \
          "$(events "$db" | awk '$5 == "CONTEXT" && $6 == "kvm_pio" { l = $3 }
            $5 == "CONTEXT" && $6 == "kvm_userspace_exit" && $7 == "KVM_EXIT_IO" && $3 != l { n++ }
            END { print n + 0 " elsewhere" }')"
      fi
      if [ -n "${want_l0_injections[$s]:-}" ]; then
        # L0's own injections into L2 (kvm_inj_*), labelled L2(L0): here only the reinjections.
        expect "$n: L0's injections into L2" "${want_l0_injections[$s]}" \
          "$(events "$db" --kind DECISION | awk '$6 ~ /^INJECT_/ {print $6, $7, $8}' | sed 's/ cause=.*//; s/ origin=.*//' | paste -sd';' -)"
        expect "$n: level of L0's injections" "L2(L0)" \
          "$(events "$db" --kind DECISION | awk '$6 ~ /^INJECT_/ {print $3}' | sort -u | paste -sd' ' -)"
      fi
    else
      exits=$(events "$db" --kind VM_EXIT | awk '{print $6}' | grep -v -E '^(interrupt|EXTERNAL_INTERRUPT)$' | paste -sd' ' -)
      expect "$n: exits (host interrupts aside)" "${want_exits[$s]}" "$exits"
    fi
    if [ "${want_vectoring[$s]:-}" = "TRIPLE_FAULT no vectoring" ]; then
      got=$(events "$db" --kind VM_EXIT | grep -m1 -o 'TRIPLE_FAULT .*' | sed -E 's/ rip=.*//')
      case "$got" in *vectoring=*) ;; TRIPLE_FAULT*) got="TRIPLE_FAULT no vectoring" ;; esac
      expect "$n: the triple-fault exit" "${want_vectoring[$s]}" "$got"
    elif [ -n "${want_vectoring[$s]:-}" ]; then
      got=$(events "$db" --kind VM_EXIT | grep -m1 -o "${want_vectoring[$s]%% *} .*vectoring=.*" |
            sed -E 's/ qual=[^ ]+ \[[^]]*\]//; s/ rip=.*//')
      expect "$n: exit during delivery" "${want_vectoring[$s]}" "$got"
    fi
    got=$(chain_outcomes "$db")
    cancelled=$(cancelled_injections "$full")
    if [ "$cancelled" = 0 ]; then
      expect "$n: chains" "${want_chains[$s]}" "$got"
    else
      expect "$n: chains (KVM cancelled and injected again $cancelled time(s))" "${want_chains[$s]}" "$got"
      # Each cancellation is one inferred CANCEL_INJECTION in the recording.
      expect "$n: cancelled injections recorded" "$cancelled" \
        "$(events "$db" --kind DECISION | grep -c 'CANCEL_INJECTION')"
    fi
    verdict=$("$es" check "$db" 2>&1)
    # (Nested VMX: a NESTED_ENTRY's aux / aux64 are unknown, 0, as kvm_nested_vmenter gives neither
    # L2's interruptibility nor its RFLAGS (record.h), so irq-window-closed has nothing to read.)
    expect "$n: check" "no violations" "$(echo "$verdict" | grep -o -m1 '^no violations')"
  }
done
# exitscope stats against perf kvm stat report of the same run (perf_kvm.sh; issue #21). perf
# pairs each kvm_exit with the next kvm_entry of the same vCPU thread and counts only completed
# pairs; exitscope stats' "timed" column is the same set. Counts must be equal per reason. Times
# come from two clocks read at the same tracepoint hits: exitscope's BPF program takes its time
# first and perf samples after it, and the program copies more at kvm_exit than at kvm_entry,
# so under TCG (every instruction emulated) exitscope's intervals are a few microseconds longer
# (3.8 us mean seen), and a host interrupt that lands between the two reads moves one pair by
# ~70 us; so means must agree within 10 % or 10 us where a reason has 20 pairs or more, and
# are only shown for the rarer ones.
perf_compare() {
  local db=$out/perfkvm.db report=$out/perfkvm.report.txt
  if [ -f "$out/perfkvm.skip" ]; then echo "note  perf kvm stat: $(cat "$out/perfkvm.skip")"; return; fi
  if [ ! -s "$report" ] || [ ! -f "$db" ]; then bad "perf kvm stat: no report or no recording (see $out/perfkvm.log)"; return; fi
  local perf_rows es_rows
  # perf: "REASON SAMPLES SAMPLES% TIME% MIN MAX AVG ( +- x% )" with times in us.
  perf_rows=$(awk '$2 ~ /^[0-9]+$/ && $5 ~ /us$/ { sub(/us$/, "", $7); print $1, $2, $7 }' "$report" | sort)
  # exitscope: section,level,key,value,count,count_pct,timed,time_ns,time_pct,min,max,mean,...
  es_rows=$("$es" stats "$db" --format csv 2>/dev/null |
            awk -F, '$1 == "exit" && $7 > 0 { gsub(/"/, "", $3); printf "%s %s %.2f\n", $3, $7, $12 / 1000 }' | sort)
  local total
  total=$(echo "$perf_rows" | awk '{ n += $2 } END { print n + 0 }')
  if [ "$total" -lt 100 ]; then bad "perf kvm stat: perf saw $total exits (expected the loop guests' ~600 each; is exitscope hiding the tracepoints from perf?)"; return; fi
  expect "perf kvm stat: exit reasons with a time (perf = exitscope stats)" \
    "$(echo "$perf_rows" | awk '{ print $1 }' | tr '\n' ' ')" "$(echo "$es_rows" | awk '{ print $1 }' | tr '\n' ' ')"
  local reason n mean es_n es_mean
  while read -r reason n mean; do
    read -r es_n es_mean < <(echo "$es_rows" | awk -v r="$reason" '$1 == r { print $2, $3 }')
    expect "perf kvm stat: $reason exits with a time (perf = exitscope)" "$n" "${es_n:-none}"
    if [ "$n" -lt 20 ]; then
      echo "note  perf kvm stat: $reason mean exit-to-entry time over $n pair(s): perf ${mean} us, exitscope ${es_mean:-none} us (too few to compare)"
    elif awk -v a="$mean" -v b="${es_mean:-0}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 10 || d <= 0.10 * a) }'; then
      ok "perf kvm stat: $reason mean exit-to-entry time: perf ${mean} us, exitscope ${es_mean} us"
    else
      bad "perf kvm stat: $reason mean exit-to-entry time: perf ${mean} us, exitscope ${es_mean:-none} us (more than 10 % and 10 us apart)"
    fi
  done <<< "$perf_rows"
}
# Several VMs in one recording (issue #16): perf_kvm.sh ran VMS processes of tb-kvm-guest loop,
# two at a time, each a VM whose only vCPU is vcpu_id 0. Written from KVM and the linker's rule
# before the run: the VMs are told apart by process (tgid), so there are VMS recorded vCPUs, the
# first VM's is vcpu 0 and each later VM gets the next number; info lists "vcpu N = VM K (pid P)
# vcpu 0" for each; every VM ends with its HLT (KVM_EXIT_HLT, then the process exits), so the
# VMS hlt exits have no later entry of their own vCPU and none is timed (before issue #16 the
# recording had one vCPU and paired each VM's HLT with the next VM's first entry: 50-130 ms).
multi_vm() {
  local db=$out/perfkvm.db vms info hlt
  if [ -f "$out/perfkvm.skip" ] || [ ! -f "$db" ]; then return; fi
  vms=$(cat "$out/perfkvm.vms" 2>/dev/null)
  if [ -z "$vms" ]; then bad "several VMs: perf_kvm.sh wrote no perfkvm.vms"; return; fi
  info=$("$es" info --no-console "$db" 2>&1)
  expect "several VMs: recorded vCPUs (one per VM)" "$vms" "$(echo "$info" | awk '/^vcpus:/ { print NF - 1 }')"
  expect "several VMs: info's vCPU map lines" "$vms" \
    "$(echo "$info" | grep -c -E '^ +vcpu [0-9]+ = VM [0-9]+ \(pid [0-9]+\) vcpu 0$')"
  expect "several VMs: distinct processes in the vCPU map" "$vms" \
    "$(echo "$info" | grep -o -E '= VM [0-9]+ \(pid [0-9]+\)' | sort -u | wc -l | tr -d ' ')"
  hlt=$("$es" stats "$db" --format csv 2>/dev/null | awk -F, '$1 == "exit" && $3 == "\"hlt\"" { print $5, $7 }')
  expect "several VMs: hlt exits (one per VM)" "$vms" "${hlt%% *}"
  expect "several VMs: hlt exits with a time (none: each VM's HLT is its last exit)" "0" "${hlt##* }"
}
# Not on another release's kernel (testbed.sh --suite: PERF=0 in the run's config).
if [ "$vendor" = svm ] && ! grep -q '^PERF=0$' "$out/config" 2>/dev/null; then perf_compare; multi_vm; fi
[ "$known" = 0 ] || echo "check: $known known defects outside the test bed (KNOWN lines)"
echo "check: $passed passed, $failed failed"
[ "$failed" = 0 ]
