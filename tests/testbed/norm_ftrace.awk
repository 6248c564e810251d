# tests/testbed/check.sh: ftrace text lines of the kvm tracepoints -> normalized events (see
# check.sh). Formats: Linux 6.1 arch/x86/kvm/trace.h; -v vendor=vmx for kvm_exit's VMX fields
# (vmx_get_exit_info: info1 = exit qualification, info2 = IDT-vectoring info, intr_info = VM-exit
# interruption info), SVM otherwise (svm_get_exit_info: EXITINFO1, EXITINFO2, EXITINTINFO).
function hex(s) { sub(/^0x0*/, "", s); return "0x" (s == "" ? "0" : tolower(s)) }
# The value of hex digit c (POSIX awk has no bit operations: intr_info is taken apart by digit).
function hd(c) { return index("0123456789abcdef", tolower(c)) - 1 }
# An event word printed as hex (EXITINTINFO, IDT-vectoring info, VM-exit interruption info share
# the low 32 bits' layout: [31] valid, [10:8] type, [7:0] vector; SDM Vol. 3C 24.9.2 / 24.9.3,
# APM 15.7.2) -> "IRQ 0x20", "#DE", "NMI", or "-" when not valid.
function event(w,   t, v) {
  w = substr(w, 3); w = substr(w, length(w) - 7)
  if (length(w) != 8 || hd(substr(w, 1, 1)) < 8) return "-"
  t = hd(substr(w, 6, 1)) % 8; v = hd(substr(w, 7, 1)) * 16 + hd(substr(w, 8, 1))
  return (t == 0 ? sprintf("IRQ 0x%x", v) : (t == 2 ? "NMI" : (t == 3 ? "#" exc[v + 1] : sprintf("type%d 0x%x", t, v))))
}
BEGIN {
  split("DE DB NMI BP OF BR UD NM DF 09 TS NP SS GP PF 15 MF AC MC XM VE CP", exc, " ")
}
{
  for (i = 1; i <= NF; i++) if ($i ~ /^kvm_[a-z_]+:$/) break
  tp = $i; sub(/:$/, "", tp)
  rest = ""; for (j = i + 1; j <= NF; j++) rest = rest (j > i + 1 ? " " : "") $j
  if (tp == "kvm_exit") {
    # vcpu N reason NAME rip R info1 Q info2 I intr_info II error_code E
    match(rest, /reason .* rip /); reason = substr(rest, RSTART + 7, RLENGTH - 12)
    split(substr(rest, RSTART + RLENGTH), f, " ")
    rip = hex(f[1]); info1 = hex(f[3]); info2 = hex(f[5])
    if (vendor == "vmx") {
      # The IDT-vectoring info (info2) and the VM-exit interruption info; the EPT violation's
      # GPA is not in kvm_exit (the recording takes it from kvm_page_fault, compared as pf).
      vec = event(f[5]); intr = event(f[7]); last_vec = vec
      if (info1 == "0x0") info1 = "-"
      printf "exit %s rip=%s info1=%s info2=- vec=%s intr=%s\n", reason, rip, info1, vec, intr
      next
    }
    # EXITINTINFO (APM 15.7.2), printed as 0x%08x.
    vec = event(f[7]); last_vec = vec
    # EXITINFO2 as the recording shows it: npf's GPA, io's next RIP; else not shown.
    if ((reason != "npf" && reason != "io") || info2 == "0x0") info2 = "-"
    if (info1 == "0x0") info1 = "-"
    printf "exit %s rip=%s info1=%s info2=%s vec=%s\n", reason, rip, info1, info2, vec
  } else if (tp == "kvm_nested_vmexit") {
    # the kvm_exit's layout (6.1): the exit just printed was L2's
    match(rest, /reason .* rip /); reason = substr(rest, RSTART + 7, RLENGTH - 12)
    split(substr(rest, RSTART + RLENGTH), f, " ")
    printf "l2 %s rip=%s\n", reason, hex(f[1])
  } else if (tp == "kvm_nested_vmexit_inject") {
    # reason: NAME ext_inf1: Q ext_inf2: I ext_int: II ext_int_err: E (vmcb12's exit fields)
    match(rest, /reason: .* ext_inf1: /); reason = substr(rest, RSTART + 8, RLENGTH - 19)
    split(substr(rest, RSTART + RLENGTH), f, " ")
    if (vendor == "vmx") {
      # nested_vmx_vmexit passes vmcs12's exit qualification, IDT-vectoring info (ext_inf2) and
      # VM-exit interruption info (ext_int): the vectoring is ext_inf2 here, not ext_int.
      printf "reflect %s vec=%s intr=%s\n", reason, event(f[3]), event(f[5])
      next
    }
    printf "reflect %s vec=%s\n", reason, event(f[5])
  } else if (tp == "kvm_nested_vmenter" || tp == "kvm_nested_vmrun") {  # kvm_nested_vmrun: before 5.12, same fields
    # rip: R vmcb: V nested_rip: N int_ctl: C event_inj: E ... (EVENTINJ: EXITINTINFO's layout)
    split(rest, f, " ")
    printf "vmrun rip=%s inj=%s\n", hex(f[6]), event(f[10])
  } else if (tp == "kvm_entry") {
    # vcpu N, rip R[immediate exit]
    pending_inj = ""
    imm = (rest ~ /\[immediate exit\]/); sub(/\[immediate exit\]/, "", rest)
    split(rest, f, " "); printf "entry rip=%s imm=%d\n", hex(f[4]), imm
  } else if (tp == "kvm_inj_virq") {
    # IRQ 0xVV [reinjected]  (6.1.y stable: soft / reinjected flags); before 5.19 "irq N", N in
    # decimal (TP_printk "irq %u"), with no reinjected flag: then it is a reinjection when the
    # exit before it was taken while delivering that same IRQ (its EXITINTINFO / IDT-vectoring
    # info names it: APM 15.7.2, SDM 27.2.4), which KVM requeues and injects again
    # (svm_complete_interrupts / vmx_complete_interrupts); and when the same IRQ was injected
    # since the last entry: KVM cancelled that injection before VMRUN (vcpu_enter_guest's
    # cancel_injection requeues it as injected) and injects it again, as 5.19+ prints [reinjected].
    split(rest, f, " ")
    if (f[1] == "irq") {
      v = sprintf("IRQ 0x%x", f[2] + 0); printf "inj %s reinj=%d\n", v, (last_vec == v || pending_inj == v)
      pending_inj = v
    }
    else printf "inj IRQ %s reinj=%d\n", hex(f[2]), (rest ~ /reinjected/)
  } else if (tp == "kvm_inj_exception") {
    split(rest, f, " "); printf "inj %s reinj=%d\n", f[1], (rest ~ /reinjected/)
  } else if (tp == "kvm_pio") {
    # pio_write at 0xe9 size 1 count 1 val 0x1
    split(rest, f, " "); d = (f[1] == "pio_write" ? "out" : "in")
    printf "pio %s %s %s %s\n", d, hex(f[3]), hex(f[9]), f[5]
  } else if (tp == "kvm_page_fault") {
    # vcpu N rip R address A error_code E; before 6.4 "address A error_code E", hex without 0x
    # (TP_printk "address %lx error_code %x")
    split(rest, f, " ")
    if (f[1] == "address") printf "pf %s %s\n", hex("0x" f[2]), hex("0x" f[4])
    else printf "pf %s %s\n", hex(f[6]), hex(f[8])
  } else if (tp == "kvm_userspace_exit") {
    split(rest, f, " "); printf "uexit %s\n", f[2]
  } else if (tp == "kvm_emulate_insn") {
    # 0:100a:f4 (real)
    split(rest, f, ":"); printf "emul %s\n", hex(f[2])
  } else if (tp == "kvm_mmio") {
    # mmio write|read|unsatisfied-read len L gpa G val V
    split(rest, f, " "); printf "mmio %s %s %s %s\n", f[2], hex(f[6]), hex(f[8]), f[4]
  } else {
    printf "other %s\n", tp
  }
}
