; testbed "loop": many exits from one VM, for comparing `exitscope stats` with `perf kvm stat`
; (perf_kvm.sh). Real mode at 0x1000, touching only its code page: 300 times OUT 0xE9 then
; IN 0xEA (each an IOIO intercept, exit code 0x7B "io", APM vol. 2 15.10.2), then OUT 0xE9 = 2
; and HLT. Host timer interrupts add "interrupt" exits, the first fetch an "npf" exit.
bits 16
org 0x1000
  mov cx, 300
again:
  mov al, 3
  out 0xE9, al
  in al, 0xEA
  loop again
  mov al, 2
  out 0xE9, al
  hlt
  jmp $
