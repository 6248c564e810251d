; testbed "escalate": an exception whose delivery escalates to a shutdown after KVM handled an
; NPF in the middle of it (issue #14's real sequence). 32-bit protected mode at 0x1000 (the
; runner's setup, tb_pm_guest.cpp); LIDT with the IDT on page 0x30000, which nothing has
; touched, and a limit covering vectors 0..6 only; its gates are all zero.
;   1. `ud2`: SVM intercepts #UD (KVM always does), KVM cannot emulate it and injects #UD
;      (kvm_inj_exception #UD).
;   2. Delivering #UD reads gate 6 at 0x30030: NPF (EXITINTINFO = #UD, APM Vol. 2 15.7.2); KVM
;      maps the page and reinjects #UD (kvm_inj_exception #UD [reinjected]).
;   3. Gate 6 is not a gate (type 0): #GP(0x32) (SDM Vol. 3A 6.12.1 / APM Vol. 2 8.4); #UD is
;      benign, so #GP is delivered serially (Table 6-5); gate 13 lies beyond the limit: #GP
;      again, contributory on contributory: #DF (APM 8.2.9); gate 8 lies beyond the limit too:
;      shutdown. KVM intercepts SHUTDOWN (exit 0x7f) and returns KVM_EXIT_SHUTDOWN.
; One event, one chain: #UD, injected, interrupted by the NPF, reinjected, ended by the triple
; fault. #GP and #DF happen inside the CPU and are not intercepted: no record of their own.
bits 32
org 0x1000
  lidt [idtr]
  mov al, 1
  out 0xE9, al
  ud2
  mov al, 2        ; never reached
  out 0xE9, al
  hlt
  jmp $

idtr:
  dw 7 * 8 - 1     ; vectors 0..6
  dd 0x30000
