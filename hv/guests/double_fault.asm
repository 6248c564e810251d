; double-fault: a #GP whose IDT gate is not present raises #NP during its delivery;
; contributory + contributory = #DF (Vol. 3A Table 6-5), delivered to the #DF handler.
%include "guest.inc"
%define DF_STACK_TOP 0x98000
start:
        call load_idt
        SET_GATE 8, df_handler, 1, GATE_INTR
        SET_GATE 13, df_handler, 0, GATE_ABSENT   ; #GP gate not present
        mov rax, DF_STACK_TOP
        mov [abs TSS_IST(1)], rax
        mov qword [abs DF_STACK_TOP - 8], 0           ; touch the #DF stack (EPT-mapped already)
        PUTS msg_start
        mov rax, 0x8000000000000000               ; non-canonical
        mov [rax], rax                            ; #GP(0)
        PUTS msg_fail
        EXIT 1

df_handler:
        PUTS msg_df
        EXIT 0

msg_start: db "double-fault: #GP with a not-present gate", 10, 0
msg_df:    db "double-fault: #DF handler reached", 10, 0
msg_fail:  db "double-fault: FAILED, no fault", 10, 0
%include "lib.inc"
