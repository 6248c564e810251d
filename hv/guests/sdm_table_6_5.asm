; sdm-table-6-5: the rows of Vol. 3A 6.15 Table 6-5 "Conditions for Generating a Double Fault"
; that the other guests do not cover, one per --arg (RDI):
;   0  benign (#UD) then contributory (#NP: the #UD gate is not present)  -> handled serially
;   1  benign (#UD) then page fault (#UD's IST stack is not mapped)        -> handled serially
;   2  page fault (#PF) then contributory (#NP: the #PF gate is not present) -> #DF
;   3  page fault (#PF) then page fault (#PF's IST stack is not mapped)    -> #DF
; (contributory + contributory: double-fault; contributory + page fault: sdm-gp-pf-serial.)
; Expected from the SDM: in 0 the #NP is delivered and the #UD abandoned (its handler is never
; reached: the #NP handler ends the run); in 1 the #PF is delivered, its handler maps the page,
; ud2 re-executes and the second #UD is delivered; in 2 and 3 #DF is delivered. The guest exits 0
; iff the handler that the table says must run is the one that runs.
%include "guest.inc"
%define DF_STACK_TOP    0x98000
%define OK_STACK_TOP    0x97000
%define BAD_STACK_TOP   (UNMAPPED_BASE + 0x20000)    ; not in the guest's page tables
start:
        mov [abs case_no], rdi
        call load_idt
        SET_GATE 8, df_handler, 1, GATE_INTR
        SET_GATE 11, np_handler, 2, GATE_INTR
        mov rax, DF_STACK_TOP
        mov [abs TSS_IST(1)], rax
        mov rax, OK_STACK_TOP
        mov [abs TSS_IST(2)], rax
        mov rax, BAD_STACK_TOP
        mov [abs TSS_IST(3)], rax
        mov qword [abs DF_STACK_TOP - 8], 0
        mov qword [abs OK_STACK_TOP - 8], 0
        PUTS msg_start
        mov rax, [case_no]
        cmp rax, 0
        je case0
        cmp rax, 1
        je case1
        cmp rax, 2
        je case2
        cmp rax, 3
        je case3
        EXIT 9

case0:  SET_GATE 6, ud_handler, 2, GATE_ABSENT          ; #UD gate not present -> #NP
        ud2
        EXIT 1
case1:  SET_GATE 6, ud_handler, 3, GATE_INTR            ; #UD on the unmapped IST3 stack -> #PF
        SET_GATE 14, demand_pf_handler, 2, GATE_INTR
        ud2
        EXIT 1
case2:  SET_GATE 14, demand_pf_handler, 2, GATE_ABSENT  ; #PF gate not present -> #NP
        mov rax, UNMAPPED_BASE + 0x100000
        mov [rax], rax                                  ; #PF
        EXIT 1
case3:  SET_GATE 14, demand_pf_handler, 3, GATE_INTR    ; #PF on the unmapped IST3 stack -> #PF
        mov rax, UNMAPPED_BASE + 0x100000
        mov [rax], rax                                  ; #PF
        EXIT 1

np_handler:                                             ; right only in case 0
        cmp qword [case_no], 0
        jne .bad
        PUTS msg_np
        EXIT 0
.bad:   EXIT 2
ud_handler:                                             ; right only in case 1, after one #PF
        cmp qword [case_no], 1
        jne .bad
        cmp qword [demand_pf_count], 1
        jne .bad
        PUTS msg_ud
        EXIT 0
.bad:   EXIT 3
df_handler:                                             ; right only in cases 2 and 3
        cmp qword [case_no], 2
        jb .bad
        PUTS msg_df
        EXIT 0
.bad:   EXIT 4

align 8
case_no:   dq 0
msg_start: db "sdm-table-6-5: a fault during the delivery of another", 10, 0
msg_np:    db "sdm-table-6-5: #NP handler reached (benign + contributory: serial)", 10, 0
msg_ud:    db "sdm-table-6-5: #UD handler reached after one #PF (benign + page fault: serial)", 10, 0
msg_df:    db "sdm-table-6-5: #DF handler reached (page fault + contributory / page fault)", 10, 0
%include "lib.inc"
