; A small real-mode guest for /dev/kvm tests and benchmarks (tests/kvm/kvm_guest.cpp runs it).
; Loaded at 0x1000, entered at CS:IP = 0:0x1000 with SS:SP = 0:0x8000. Each of the N loops
; (N in the word at 0x0FFE, written by the runner) does:
;   out 0xE9, al        the loop counter's low byte (KVM_EXIT_IO to the runner)
;   ud2                 #UD; the IVT handler below skips the two bytes and IRETs
;   in  al, 0xEA        a port read (KVM_EXIT_IO, the runner answers 0x5A)
; then writes 0xE5 ("end") to port 0xEB and halts (KVM_EXIT_HLT).
bits 16
org 0x1000

start:
  cli
  xor ax, ax
  mov ds, ax
  mov es, ax
  mov word [6 * 4], ud_handler      ; IVT entry 6: #UD, offset then segment
  mov word [6 * 4 + 2], 0
  mov cx, [0x0FFE]
  xor bx, bx
.loop:
  mov al, bl
  out 0xE9, al
  ud2
  in al, 0xEA
  inc bx
  dec cx
  jnz .loop
  mov al, 0xE5
  out 0xEB, al
  hlt
  jmp $

; Real-mode #UD: the CPU pushed FLAGS, CS, IP (IP on top); IP points at the UD2.
ud_handler:
  push bp
  mov bp, sp
  add word [bp + 2], 2
  pop bp
  iret
