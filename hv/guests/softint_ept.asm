; softint-ept: INT 0x80 and INT3 whose deliveries push onto IST stacks not yet in EPT.
; Each exits with EPT_VIOLATION and IDT-vectoring = the software event (types 4 and 6) plus
; the VM-exit instruction length; L0 reinjects with that length so the pushed return RIP
; is the instruction after INT 0x80 / INT3.
%include "guest.inc"
start:
        call load_idt
        SET_GATE 0x80, int80_handler, 1, GATE_INTR
        SET_GATE 3, int3_handler, 2, GATE_INTR
        mov rax, 0x7F000                  ; page 0x7E000, untouched
        mov [abs TSS_IST(1)], rax
        mov rax, 0x7D000                  ; page 0x7C000, untouched
        mov [abs TSS_IST(2)], rax
        PUTS msg_start
        int 0x80
after80:
        int3
after3:
        cmp qword [ret80], after80
        jne fail
        cmp qword [ret3], after3
        jne fail
        PUTS msg_done
        EXIT 0
fail:   PUTS msg_fail
        EXIT 1

int80_handler:
        mov rax, [rsp]                    ; return RIP
        mov [ret80], rax
        iretq
int3_handler:
        mov rax, [rsp]
        mov [ret3], rax
        iretq

ret80:     dq 0
ret3:      dq 0
msg_start: db "softint-ept: INT 0x80 then INT3, both IST stacks outside EPT", 10, 0
msg_done:  db "softint-ept: both returned after their instruction", 10, 0
msg_fail:  db "softint-ept: FAILED, wrong return RIP", 10, 0
%include "lib.inc"
