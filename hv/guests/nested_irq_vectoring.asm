; nested-irq-vectoring (runs as L2): L1 injects IRQ 0x20; its delivery pushes onto an IST
; page not yet in L0's EPT, so L0 takes an EPT violation with IDT-vectoring = IRQ 0x20. By
; then L1's own interrupt (armed through port 0x45) is due: L0 must not exit to L1 with
; EXTERNAL_INTERRUPT while that IRQ is in flight; it re-enters L2 to finish the delivery
; with an immediate exit, then exits to L1.
%include "guest.inc"
%define L1_IRQ_DELAY_NS 800               ; lands between L1's injection and L0's EPT fix-up
start:
        call load_idt
        SET_GATE 0x20, irq_handler, 1, GATE_INTR
        mov rax, 0x7F000                  ; page 0x7E000: untouched, not in L0's EPT yet
        mov [abs TSS_IST(1)], rax
        PUTS msg_start
        mov eax, L1_IRQ_DELAY_NS
        out PORT_SELF_IRQ, eax
        sti
        mov al, 0x20
        out PORT_IRQ, al
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
msg_start: db "nested-irq-vectoring: L1 injects IRQ 0x20, its delivery faults in L0's EPT", 10, 0
msg_done:  db "nested-irq-vectoring: IRQ 0x20 delivered in L2", 10, 0
%include "lib.inc"
