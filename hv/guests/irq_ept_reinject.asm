; irq-ept-reinject: the IRQ's delivery pushes its frame on an IST stack whose page L0 has
; not mapped in EPT yet -> EPT violation with IDT-vectoring = IRQ 0x20 -> L0 maps the page
; and reinjects the IRQ -> delivered.
%include "guest.inc"
%define IST_STACK_TOP 0x7F000             ; page 0x7E000: never touched before the IRQ
start:
        call load_idt
        SET_GATE 0x20, irq_handler, 1, GATE_INTR
        mov rax, IST_STACK_TOP
        mov [abs TSS_IST(1)], rax
        PUTS msg_start
        mov al, 0x20
        out PORT_IRQ, al                  ; L0 raises IRQ 0x20 for us
        sti
wait_irq:
        cmp byte [irq_seen], 0
        je wait_irq
        cli
        PUTS msg_done
        EXIT 0

irq_handler:
        mov byte [irq_seen], 1
        iretq

irq_seen:  db 0
msg_start: db "irq-ept-reinject: raising IRQ 0x20, its IST stack is not in EPT yet", 10, 0
msg_done:  db "irq-ept-reinject: IRQ 0x20 delivered", 10, 0
%include "lib.inc"
