; Compute loop for the instructions-per-second benchmark: arithmetic, memory, branches.
%include "guests/common.inc"
GUEST_HEADER
_vectors:
  END_GATES
_start:
  mov rsi, 0x80000
  xor ecx, ecx
.loop:
  mov rax, [rsi + rcx*8]
  add rax, rcx
  imul rax, rax, 3
  xor rdx, rax
  mov [rsi + rcx*8], rax
  inc ecx
  and ecx, 255
  jmp .loop
