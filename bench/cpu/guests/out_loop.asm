; Smallest guest: out dx, al forever (the benchmark's loop and the first smoke test).
%include "guests/common.inc"
GUEST_HEADER
_vectors:
  END_GATES
_start:
  mov edx, 0x3F8
  mov al, 'x'
.loop:
  out dx, al
  jmp .loop
