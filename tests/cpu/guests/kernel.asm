; Kernel-like test guest. RBX at entry selects a scenario (see the table); handlers record
; their stack frame at FRAME(v) = 0x80000 + v*0x40: [0] RSP at entry, [8..0x30] the six
; qwords above it, [0x38] CR2; then report `out PORT_DONE` with AL = vector and spin.
%include "guests/common.inc"
%define FRAME(v) (0x80000 + (v) * 0x40)
%define FLAG_IRET_FAULT 0x80FF0
GUEST_HEADER

_vectors:
  GATE 1, h1, 0
  GATE 2, h_nmi, 0
  GATE 3, h3, 3
  GATE 6, h6, 0
  GATE 8, h8, 0x10          ; #DF on IST1
  GATE 11, h11, 0
  GATE 12, h12, 0
  GATE 13, h13, 0
  GATE 14, h14, 0
  GATE 0x20, h32, 0
  GATE 0x30, h48, 0
  GATE 0x31, h49, 0x100     ; trap gate
  GATE 0x80, h128, 3
  END_GATES

%macro HANDLER 1  ; decimal vector
h%1:
  mov [FRAME(%1)], rsp
  push rax
  mov rax, [rsp + 8]
  mov [FRAME(%1) + 0x08], rax
  mov rax, [rsp + 16]
  mov [FRAME(%1) + 0x10], rax
  mov rax, [rsp + 24]
  mov [FRAME(%1) + 0x18], rax
  mov rax, [rsp + 32]
  mov [FRAME(%1) + 0x20], rax
  mov rax, [rsp + 40]
  mov [FRAME(%1) + 0x28], rax
  mov rax, [rsp + 48]
  mov [FRAME(%1) + 0x30], rax
  mov rax, cr2
  mov [FRAME(%1) + 0x38], rax
  pushfq
  pop rax
  mov [FRAME(%1) + 0x3C], eax     ; RFLAGS inside the handler (low half; overlaps CR2 high)
  pop rax
  mov eax, %1
  out PORT_DONE, al
  jmp $
%endmacro

HANDLER 1
HANDLER 3
HANDLER 6
HANDLER 8
HANDLER 11
HANDLER 12
HANDLER 13
HANDLER 14
HANDLER 32
HANDLER 48
HANDLER 49
HANDLER 128

; NMI: report a mark, optionally fault on IRET (FLAG_IRET_FAULT), else return.
h_nmi:
  mov [FRAME(2)], rsp
  push rax
  mov al, 2
  out PORT_MARK, al
  pop rax
  cmp qword [FLAG_IRET_FAULT], 0
  jne .fault
  iretq
.fault:
  mov rsp, 0x400000 - 8       ; just below an address the guest paging does not map
  add rsp, 8
  iretq                        ; reads the frame at 0x400000 -> #PF

_start:
  jmp [scenarios + rbx * 8]

scenarios:
  dq s_spin, s_sti_spin, s_int80, s_int3, s_int1, s_into, s_ud2, s_lock_reg
  dq s_user, s_exits, s_sti_shadow, s_mov_ss, s_hlt, s_cr0, s_cr3_invlpg_rdtsc, s_write_ro
  dq s_read_pt2, s_smc, s_unimpl, s_in_ports, s_read_unmapped, s_nx_fetch, s_int21, s_alu

s_spin:
  jmp s_spin

s_sti_spin:
  sti
.l:
  nop
  jmp .l

s_int80:
  int 0x80
  mov al, 0xAA
  out PORT_DONE, al

s_int3:
  int3
  out PORT_DONE, al

s_int1:
  int1
  out PORT_DONE, al

s_into:
  db 0xCE
  out PORT_DONE, al

s_ud2:
  ud2

s_lock_reg:
  db 0xF0, 0x01, 0xC0          ; lock add eax, eax

s_int21:
  int 0x21
  out PORT_DONE, al

; Drop to CPL 3 with IRETQ, then INT 0x80 (DPL 3 gate) and VMCALL from user mode.
s_user:
  push USER_DATA_SEL
  push 0x60000
  push 0x2
  push USER_CODE_SEL
  push user_code
  iretq
user_code:
  mov [0x80F80], rsp
  int 0x80
  vmcall

s_exits:
  cpuid
  rdmsr
  wrmsr
  vmcall
  mov al, 0
  out PORT_DONE, al

s_sti_shadow:
  cli
  mov al, 1
  sti
  nop                  ; in the STI shadow
  nop                  ; first instruction an interrupt window can precede
  out PORT_DONE, al

s_mov_ss:
  mov ax, DATA_SEL
  mov ss, ax
  out 0xE2, al         ; exits inside the MOV SS shadow

s_hlt:
  hlt
  mov al, 0
  out PORT_DONE, al

s_cr0:
  mov rax, cr0
  mov [0x80F00], rax
  mov rcx, rax
  mov cr0, rcx                  ; unchanged value: no exit
  and rcx, ~0x10000             ; clear WP: owned by the host -> exit
  mov cr0, rcx
  out PORT_DONE, al

s_cr3_invlpg_rdtsc:
  mov rax, cr3
  mov cr3, rax
  invlpg [0x81000]
  rdtsc
  out PORT_DONE, al

s_write_ro:
  mov qword [0x90000], 1
  out PORT_DONE, al

s_read_pt2:
  mov rax, [0x200000]
  out PORT_DONE, al

s_smc:
  mov byte [.patch + 1], 0x55   ; mov al, imm8 -> 0x55
  mov al, 0
.patch:
  mov al, 0x11
  out PORT_DONE, al

s_unimpl:
  fld1
  out PORT_DONE, al

s_in_ports:
  in al, 0x80
  in al, 0x81
  mov al, 0
  out PORT_DONE, al

s_read_unmapped:
  mov rax, [0x400000]
  out PORT_DONE, al

s_nx_fetch:
  mov rax, 0x91000
  jmp rax

; Arithmetic self-check: results stored at 0x80E00.. and compared by the test.
s_alu:
  mov rdi, 0x80E00
  mov rax, -5
  mov rcx, 7
  imul rax, rcx                 ; -35
  mov [rdi], rax
  mov eax, 0xFFFFFFFF
  add eax, 1                    ; 0, CF=1 ZF=1
  pushfq
  pop rdx
  and edx, 0x8D5
  mov [rdi + 8], rdx
  mov rax, 0x8000000000000000
  sar rax, 63
  mov [rdi + 16], rax           ; -1
  mov eax, 1000
  xor edx, edx
  mov ecx, 7
  div ecx
  shl rdx, 32
  or rax, rdx
  mov [rdi + 24], rax           ; q=142 r=6
  movzx eax, byte [rdi + 16]
  movsx rcx, byte [rdi + 16]
  add rax, rcx                  ; 255 + -1 = 254
  mov [rdi + 32], rax
  mov rcx, 10
  xor eax, eax
.l:
  add eax, ecx
  loop .l
  mov [rdi + 40], rax           ; 55
  mov eax, 3
  cmp eax, 5
  setl cl
  cmovl eax, ecx
  movzx eax, al
  mov [rdi + 48], rax           ; 1
  mov rax, 0x0123456789ABCDEF
  rol rax, 8
  bswap rax
  mov [rdi + 56], rax
  lea rsi, [rdi + 64]
  mov rdi, rsi
  mov al, 0x5A
  mov ecx, 8
  cld
  rep stosb
  mov al, 0
  out PORT_DONE, al
