; testbed "npf": an exception whose delivery faults on a page KVM has not mapped yet.
; Real mode at 0x1000, SS:SP = 0:0xF000 on a page the runner never touches. DIV by zero
; raises #DE (vector 0, a fault: no error code); KVM does not intercept #DE on SVM
; (init_vmcb intercepts #UD, #MC, #AC only), so the CPU delivers it through the IVT, and
; pushing FLAGS at 0xEFFE hits the unmapped page: NPF (exit 0x400) with EXITINTINFO valid,
; type 3 (exception), vector 0 (APM 15.7.2). KVM maps the page and requeues #DE
; (svm_complete_interrupts -> kvm_requeue_exception): kvm_inj_exception #DE, reinjected;
; the handler then writes 0xDE to port 0xE9 and skips the 2-byte DIV; OUT 0xE9 = 2; HLT.
bits 16
org 0x1000
  cli
  xor ax, ax
  mov ds, ax
  mov ss, ax
  mov word [0 * 4], de_handler
  mov word [0 * 4 + 2], 0
  mov sp, 0xF000
  xor bl, bl
  mov ax, 7
  div bl
  mov al, 2
  out 0xE9, al
  hlt
  jmp $

de_handler:
  push bp
  mov bp, sp
  add word [bp + 2], 2
  pop bp
  push ax
  mov al, 0xDE
  out 0xE9, al
  pop ax
  iret
