; sdm-int-gate-gp: INT n at CPL 3 through a DPL-0 gate raises #GP(vector*8+2) during its
; delivery (Vol. 3A 6.12.1.1 "Protection of Exception- and Interrupt-Handler Procedures";
; error code format 6.13: IDT bit set, EXT clear for INT n).
; The #GP handler makes the gate DPL 3 and returns to the INT instruction (a fault during the
; delivery of INT n leaves RIP at the instruction), which executes again and now reaches
; its handler at CPL 0 (stack from TSS.RSP0).
; Expected from the SDM: the first INT 0x81 is abandoned and raised again by re-execution
; ("handled serially", Table 6-5: INT n is benign); its #GP was raised during its delivery and
; is delivered; the second INT 0x81 is delivered. Exit code 0 iff the #GP error code was 0x40a
; and the INT handler ran after exactly one #GP.
%include "guest.inc"
%define USER_CS     0x23                      ; GDT 0x20 | RPL 3
%define USER_DS     0x1b                      ; GDT 0x18 | RPL 3
%define USER_STACK  0x90000
start:
        call load_idt
        SET_GATE 0x81, int81_handler, 0, GATE_INTR   ; DPL 0
        SET_GATE 13, gp_handler, 0, GATE_INTR
        mov qword [abs USER_STACK - 8], 0
        PUTS msg_start
        push USER_DS                              ; SS
        push USER_STACK                           ; RSP
        push 0x2                                  ; RFLAGS (IF = 0)
        push USER_CS                              ; CS
        lea rax, [user_code]
        push rax                                  ; RIP
        iretq                                     ; to CPL 3
user_code:
        int 0x81
.spin:  jmp .spin                                 ; not reached

gp_handler:
        cmp qword [rsp], 0x81 * 8 + 2             ; error code: vector 0x81, IDT bit
        jne .bad
        inc qword [gp_count]
        SET_GATE 0x81, int81_handler, 0, 0xEE     ; present, DPL 3, interrupt gate
        add rsp, 8
        iretq                                     ; back to INT 0x81 at CPL 3
.bad:   PUTS msg_bad_gp
        EXIT 2

int81_handler:
        cmp qword [gp_count], 1
        jne .bad
        PUTS msg_ok
        EXIT 0
.bad:   PUTS msg_bad_int
        EXIT 3

align 8
gp_count:  dq 0
msg_start:   db "sdm-int-gate-gp: INT 0x81 at CPL 3 through a DPL-0 gate", 10, 0
msg_ok:      db "sdm-int-gate-gp: INT 0x81 handler reached after one #GP", 10, 0
msg_bad_gp:  db "sdm-int-gate-gp: FAILED, unexpected #GP error code", 10, 0
msg_bad_int: db "sdm-int-gate-gp: FAILED, INT 0x81 reached without the #GP", 10, 0
%include "lib.inc"
