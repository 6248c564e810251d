; exception-vectoring-policy: must a hardware exception found in IDT-vectoring info be
; reinjected? The guest's #PF handler runs on an IST stack L0 has not put in EPT yet, so the
; #PF's delivery exits with EPT_VIOLATION and IDT-vectoring = #PF. A timer tick comes due
; while L0 handles that exit. Reinjected (default), the #PF reaches its handler. Dropped
; (drop-hw-exceptions), the tick is taken first, its handler maps the page, and the faulting
; instruction no longer faults when it re-executes: the #PF the guest architecturally took is
; never delivered. The guest prints how many #PFs its handler saw.
%include "guest.inc"
%define TICK_DELAY_NS 700                 ; first tick: between the #PF's exit and re-entry
start:
        call load_idt
        SET_GATE 14, demand_pf_handler, 1, GATE_INTR
        SET_GATE 0x20, tick_handler, 0, GATE_INTR
        mov rax, 0x7F000                  ; #PF's IST stack: page 0x7E000, not in EPT yet
        mov [abs TSS_IST(1)], rax
        PUTS msg_start
        mov eax, TICK_DELAY_NS
        out PORT_TIMER_PERIOD, eax
        sti
        mov rbx, UNMAPPED_BASE
        mov [rbx], rbx                    ; #PF (not present)
        cli
        PUTS msg_count
        mov rax, [demand_pf_count]
        call puthex
        PUTS msg_nl
        EXIT 0


tick_handler:                             ; maps the same page: the #PF's cause goes away
        push rax
        xor eax, eax
        out PORT_TIMER_PERIOD, eax        ; one tick is all this needs
        mov rax, UNMAPPED_BASE
        call map_2m
        invlpg [rax]
        pop rax
        iretq

msg_start: db "exception-vectoring-policy: #PF whose delivery hits an EPT violation, tick due meanwhile", 10, 0
msg_count: db "exception-vectoring-policy: #PF handler ran ", 0
msg_nl:    db " time(s)", 10, 0
%include "lib.inc"
