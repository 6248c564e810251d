; testbed "triple": a triple fault. Real mode at 0x1000; LIDT with limit 0 and DIV by zero:
; #DE's IVT entry lies beyond the limit -> #GP (SDM vol. 3A 20.1.4 / APM vol. 2, 16.1: a real
; mode vector past the IDT limit), #GP's entry is beyond it too -> #DF (contributory +
; contributory, APM 8.2.9), #DF's entry too -> shutdown. KVM intercepts SHUTDOWN (exit 0x7F,
; "shutdown") and returns KVM_EXIT_SHUTDOWN to the runner. None of #DE / #GP / #DF is
; intercepted, so the recording holds no injection for them.
bits 16
org 0x1000
  cli
  xor ax, ax
  mov ds, ax
  lidt [idtr]
  xor bl, bl
  mov ax, 7
  div bl
  mov al, 2
  out 0xE9, al
  hlt
  jmp $

idtr:
  dw 0
  dd 0
