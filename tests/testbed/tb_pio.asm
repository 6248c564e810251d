; testbed "pio": the plainest guest. Real mode, loaded at 0x1000, CS:IP = 0:0x1000.
; Touches only its own code page (no stack, no data), so the exits are: the first fetch's
; NPF (when KVM has not mapped 0x1000 yet), OUT 0xE9 = 1, IN 0xEA, OUT 0xE9 = 2, HLT.
; APM vol. 2, 15.10.2 (IOIO intercepts): each IN / OUT is an IOIO exit, code 0x7B ("io");
; 15.9 (instruction intercepts): HLT is exit code 0x78 ("hlt").
bits 16
org 0x1000
  mov al, 1
  out 0xE9, al
  in al, 0xEA
  mov al, 2
  out 0xE9, al
  hlt
  jmp $
