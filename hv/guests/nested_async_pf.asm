; nested-async-pf (runs as L2): L2 reads a page the host has swapped out. L0 answers with an
; asynchronous #PF (CR2 = a token) rather than blocking; L1 intercepts #PF, so the async #PF
; must reach L1 as a nested VM exit — L2's own #PF handler must not see it.
; (--bug async-pf-into-l2: L0 injects it into L2, whose handler gets a token for an address.)
%include "guest.inc"
%define SWAPPED_OUT 0x600000              ; L0's config: async_pf_gpa
start:
        call load_idt
        SET_GATE 14, pf_handler, 0, GATE_INTR
        PUTS msg_start
        mov rax, [abs SWAPPED_OUT]
        PUTS msg_count
        mov rax, [pf_count]
        call puthex
        PUTS msg_nl
        EXIT 0

pf_handler:
        push rax
        inc qword [pf_count]
        pop rax
        add rsp, 8
        iretq

pf_count:  dq 0
msg_start: db "nested-async-pf: L2 touches a page the host swapped out", 10, 0
msg_count: db "nested-async-pf: L2's #PF handler ran ", 0
msg_nl:    db " time(s)", 10, 0
%include "lib.inc"
