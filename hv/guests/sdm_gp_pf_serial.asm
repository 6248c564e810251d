; sdm-gp-pf-serial: a #PF while delivering #GP is handled serially (Vol. 3A 6.15 Table 6-5:
; first contributory, second page fault -> "handle exceptions serially").
; The #GP gate uses IST1, whose stack lies in [8, 16) MiB, outside the guest's page tables: the
; first #GP's delivery raises #PF when it pushes its frame. The #PF handler (IST2, mapped) maps
; the page and returns to the faulting instruction, which raises #GP again; that delivery
; succeeds.
; Expected from the SDM: the first #GP is abandoned ("handled serially": re-execution raises
; it again); the #PF was raised during its delivery and is delivered; the second #GP is a new
; event, delivered, raised after nothing's delivery. Exit code 0 iff the #GP handler ran once,
; after exactly one #PF.
%include "guest.inc"
%define GP_STACK_TOP (UNMAPPED_BASE + 0x10000)
%define PF_STACK_TOP 0x98000
start:
        call load_idt
        SET_GATE 13, gp_handler, 1, GATE_INTR
        SET_GATE 14, demand_pf_handler, 2, GATE_INTR
        mov rax, GP_STACK_TOP
        mov [abs TSS_IST(1)], rax
        mov rax, PF_STACK_TOP
        mov [abs TSS_IST(2)], rax
        mov qword [abs PF_STACK_TOP - 8], 0       ; touch the #PF stack
        PUTS msg_start
        mov rax, 0x8000000000000000               ; non-canonical
        mov [rax], rax                            ; #GP(0)
        PUTS msg_fail
        EXIT 1

gp_handler:
        cmp qword [demand_pf_count], 1
        jne .bad
        PUTS msg_ok
        EXIT 0
.bad:   PUTS msg_bad
        EXIT 2

msg_start: db "sdm-gp-pf-serial: #GP whose IST stack is not mapped", 10, 0
msg_ok:    db "sdm-gp-pf-serial: #GP handler reached after one #PF", 10, 0
msg_bad:   db "sdm-gp-pf-serial: FAILED, #GP handler saw the wrong #PF count", 10, 0
msg_fail:  db "sdm-gp-pf-serial: FAILED, no fault", 10, 0
%include "lib.inc"
