; sdm-irq-coalesced: two requests for one vector while interrupts are disabled are one
; interrupt: the local APIC keeps one IRR bit per vector (Vol. 3A 11.8.4 "Interrupt Acceptance
; for Fixed Interrupts"; 10.8.4 in older editions).
; Expected from the SDM: the first IRQ 0x30 is delivered once interrupts are enabled; the
; second is coalesced with it and never delivered on its own, which is what hardware does
; (not a loss). Exit code 0 iff the handler ran exactly once.
%include "guest.inc"
start:
        call load_idt
        SET_GATE 0x30, irq_handler, 0, GATE_INTR
        PUTS msg_start
        mov al, 0x30
        out PORT_IRQ, al                          ; IF = 0: the request stays pending
        out PORT_IRQ, al                          ; same vector, still pending: coalesces
        sti
        nop                                       ; STI shadow; the interrupt is taken after it
        nop
        cli
        cmp qword [count], 1
        jne .bad
        PUTS msg_ok
        EXIT 0
.bad:   PUTS msg_bad
        EXIT 1

irq_handler:
        inc qword [count]
        iretq

align 8
count:     dq 0
msg_start: db "sdm-irq-coalesced: two requests for IRQ 0x30 with IF = 0", 10, 0
msg_ok:    db "sdm-irq-coalesced: the handler ran once", 10, 0
msg_bad:   db "sdm-irq-coalesced: FAILED, the handler did not run exactly once", 10, 0
%include "lib.inc"
