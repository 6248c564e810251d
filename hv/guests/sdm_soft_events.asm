; sdm-soft-events: each kind of software event, its delivery interrupted by an EPT violation on a
; never-touched IST stack page, so the VM exit reports it in IDT-vectoring info with its type and
; the VM-exit instruction-length field holds the length of the instruction (Vol. 3C 28.2.4;
; 28.2.5 "Information for VM Exits Due to Instruction Execution" / 27.6.1.1 for the reinjection
; with the VM-entry instruction length). Types (Vol. 3C Table 25-17 / 24.8.3): INT n = 4 software
; interrupt, INT3 (CC) = 6 software exception, INT1 (F1) = 5 privileged software exception; INT 3
; written as CD 03 is INT n (type 4, length 2); a prefix counts in the length (66 CD 80: 3).
; INTO is invalid in 64-bit mode (#UD, Table 6-1 note), so it is not here.
; Expected from the SDM, in order: INT 0x80 type 4 len 2; INT 0x80 with a 66 prefix type 4 len 3;
; INT3 type 6 len 1; INT 3 (CD 03) type 4 len 2; INT1 type 5 len 1; each reinjected with that
; length and delivered once. Exit code 0 iff each handler ran once, in that order.
%include "guest.inc"
%define STACKS 0x60000                   ; 0x61000, 0x62000, ...: one never-touched page each
%macro FRESH_IST 1
        mov rax, STACKS + 0x1000 * (%1 + 1)
        mov [abs TSS_IST(1)], rax
%endmacro
start:
        call load_idt
        SET_GATE 0x80, h80, 1, 0xEE
        SET_GATE 3, h3, 1, 0xEE
        SET_GATE 1, h1, 1, GATE_INTR
        PUTS msg_start
        FRESH_IST 0
        int 0x80
        FRESH_IST 1
        db 0x66, 0xcd, 0x80                 ; o16 int 0x80
        FRESH_IST 2
        int3
        FRESH_IST 3
        db 0xcd, 0x03                       ; int 3, the two-byte INT n form
        FRESH_IST 4
        db 0xf1                             ; int1 (icebp)
        cmp qword [seq], 0x12345
        jne .bad
        PUTS msg_ok
        EXIT 0
.bad:   PUTS msg_bad
        EXIT 1

; Each handler shifts its digit into seq: 1 (INT 0x80), 2 (o16 INT 0x80), 3 (INT3), 4 (CD 03), 5 (INT1).
h80:    mov rax, [seq]
        shl rax, 4
        mov rcx, [n80]
        inc qword [n80]
        lea rax, [rax + rcx + 1]
        mov [seq], rax
        iretq
h3:     mov rax, [seq]
        shl rax, 4
        mov rcx, [n3]
        inc qword [n3]
        lea rax, [rax + rcx + 3]
        mov [seq], rax
        iretq
h1:     mov rax, [seq]
        shl rax, 4
        add rax, 5
        mov [seq], rax
        iretq

align 8
seq:       dq 0
n80:       dq 0
n3:        dq 0
msg_start: db "sdm-soft-events: INT n, o16 INT n, INT3, INT 3 (CD 03), INT1", 10, 0
msg_ok:    db "sdm-soft-events: every handler ran once, in order", 10, 0
msg_bad:   db "sdm-soft-events: FAILED, handlers ran out of order or not once", 10, 0
%include "lib.inc"
