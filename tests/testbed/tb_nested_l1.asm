; testbed "nested": a tiny SVM hypervisor (L1) that runs one L2, for tb-pm-guest.
; Loaded at 0x1000; the runner starts it in 32-bit protected mode with paging (KVM's
; nested_svm_check_permissions: VMRUN is #UD without EFER.SVME or with paging off), and has
; written L2's GDT / IDT (0x4000 / 0x4800) and the VMCB (0x6000, APM Vol. 2 Appendix B) whose
; intercepts are CPUID, HLT, VMRUN and #UD; not INTR, not IOIO: L2's port I/O and interrupts
; stay L0's (KVM nested_svm_exit_handled: NESTED_EXIT_HOST).
;
; What the APM (Vol. 2 15.5 "VMRUN", 15.20 "Event Injection", 15.7.2 "Exit Int Info") and KVM's
; nested.c make of each L2 step, and what the recording should show:
;   1. L2 `cpuid`: #VMEXIT(CPUID, 0x72) reflected to L1 (kvm_nested_vmexit_inject). L1 skips it
;      (no NRIPS under TCG: RIP += 2) and injects IRQ 0x21 through EVENTINJ = 0x80000021 at its
;      next VMRUN (kvm_nested_vmenter event_inj=0x80000021): an injection requested by L1.
;      Its delivery pushes onto L2's stack page 0x1F000, which nothing touched before: an NPF in
;      L0's page tables with EXITINTINFO = IRQ 0x21, which L0 handles itself (L1 runs L2 without
;      nested paging) and reinjects into L2 (kvm_inj_virq [reinjected]); L1 never sees it. IRQ
;      0x21 is delivered at L2's handler (it writes 0x21 to port 0xE9).
;   2. L2 `out 0xE9, 1`: L0's (KVM_EXIT_IO at L2); the runner raises IRQ 0x20 (KVM_INTERRUPT),
;      which L0 injects into L2 directly (L1 does not intercept INTR: svm_interrupt_allowed);
;      delivered at L2's handler (0x20 to port 0xE9).
;   3. L2 `ud2`: #UD, which L1 intercepts: #VMEXIT(UD excp, 0x46) reflected to L1; L1 injects
;      #UD back into L2 (EVENTINJ = 0x80000306); delivered at L2's #UD handler (6 to 0xE9),
;      which skips the ud2.
;   4. L2 `hlt`: #VMEXIT(HLT, 0x78) reflected to L1, which reports it and halts (KVM_EXIT_HLT).
; L1 writes every #VMEXIT code it receives to port 0x10 (an exit of L1 to L0's user space).
bits 32
org 0x1000

VMCB       equ 0x6000
EXITCODE   equ VMCB + 0x070
EVENTINJ   equ VMCB + 0x0A8
L2_RIP     equ VMCB + 0x400 + 0x178

l1_entry:
  mov ecx, 0xC0000080          ; EFER.SVME (bit 12)
  rdmsr
  or eax, 1 << 12
  wrmsr
  mov ecx, 0xC0010117          ; VM_HSAVE_PA = 0x5000
  mov eax, 0x5000
  xor edx, edx
  wrmsr
l1_run:
  mov eax, VMCB
  vmrun
  ; #VMEXIT: EVENTINJ is L1's to clear (KVM copies vmcb12's control area back as it was).
  mov dword [EVENTINJ], 0
  mov eax, [EXITCODE]
  out 0x10, al
  cmp eax, 0x72
  je on_cpuid
  cmp eax, 0x46
  je on_ud
  hlt                          ; HLT (0x78) or anything unexpected: L1 stops
  jmp $
on_cpuid:
  add dword [L2_RIP], 2
  mov dword [EVENTINJ], 0x80000021   ; V, type 0 (external interrupt), vector 0x21
  jmp l1_run
on_ud:
  mov dword [EVENTINJ], 0x80000306   ; V, type 3 (exception), vector 6, no error code
  jmp l1_run

  times 0x2000 - ($ - $$) db 0
; L2 at 0x3000: 32-bit protected mode, flat segments, no paging, its stack at 0x20000.
l2_entry:
  cpuid
  mov al, 1
  out 0xE9, al
  nop
  nop
  ud2
  mov al, 2
  out 0xE9, al
  hlt
  jmp $

  times 0x2100 - ($ - $$) db 0
l2_irq20:                      ; 0x3100
  mov al, 0x20
  out 0xE9, al
  iret
  times 0x2200 - ($ - $$) db 0
l2_irq21:                      ; 0x3200
  mov al, 0x21
  out 0xE9, al
  iret
  times 0x2300 - ($ - $$) db 0
l2_ud:                         ; 0x3300: skip the ud2
  add dword [esp], 2
  mov al, 6
  out 0xE9, al
  iret
