; testbed "irq" / "irq-npf": an external interrupt injected by the runner with KVM_INTERRUPT.
; Real mode at 0x1000. The word at 0x0FFC (written by the runner) selects the stack:
;   0x8000  the stack page is touched first (a push / pop), so delivery of IRQ 0x20 only
;           writes mapped memory: one kvm_inj_virq, delivered (the handler's OUT 0xE9 = 0x20).
;   0xF000  a page KVM never mapped (the runner never touches it): delivering IRQ 0x20 pushes
;           FLAGS / CS / IP there -> NPF with EXITINTINFO = IRQ 0x20 (APM 15.7.2, exit
;           during event delivery), KVM requeues it (svm_complete_interrupts) and injects it
;           again: two kvm_inj_virq for one IRQ, then the handler runs.
; After STI a NOP leaves the STI shadow (APM 15.21.5) so the exit of OUT 0xE9 = 1 is one
; where KVM reports ready_for_interrupt_injection; the runner injects there.
bits 16
org 0x1000
  cli
  xor ax, ax
  mov ds, ax
  mov ss, ax
  mov word [0x20 * 4], irq_handler
  mov word [0x20 * 4 + 2], 0
  mov byte [flag], 0
  mov sp, [0x0FFC]
  cmp sp, 0x8000
  jne .go
  push ax
  pop ax
.go:
  sti
  nop
  mov al, 1
  out 0xE9, al
.wait:
  cmp byte [flag], 0
  je .wait
  cli
  mov al, 2
  out 0xE9, al
  hlt
  jmp $

irq_handler:
  mov byte [flag], 1
  push ax
  mov al, 0x20
  out 0xE9, al
  pop ax
  iret

flag: db 0
