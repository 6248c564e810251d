; nested-exception-reflect (runs as L2): IRQ 0x20's IST stack is not in L2's page tables.
; Used by two scenarios (nested-exception-reflect, fred-nested-exception): its console lines
; name what it does, not one scenario, so either recording reads true.
; L1 intercepts #PF (exception bitmap) and fixes L2's page tables itself, as a shadow-paging
; hypervisor does. The #PF raised while delivering the IRQ L1 injected goes to L1 with the
; IRQ in IDT-vectoring; L1 fixes the page and reinjects the IRQ. Then a plain #PF at an
; instruction (no delivery in progress) goes to L1 too, without IDT-vectoring.
%include "guest.inc"
start:
        call load_idt
        SET_GATE 0x20, irq_handler, 1, GATE_INTR
        mov rax, UNMAPPED_BASE + 0x1000
        mov [abs TSS_IST(1)], rax
        PUTS msg_start
        sti
        mov al, 0x20
        out PORT_IRQ, al
wait_irq:
        cmp qword [irq_count], 0
        je wait_irq
        mov rax, UNMAPPED_BASE + 0x400000
        mov [rax], rax                    ; #PF at an instruction: L1 fixes it, we retry
        cli
        PUTS msg_done
        EXIT 0

irq_handler:
        inc qword [irq_count]
        iretq

irq_count: dq 0
msg_start: db "L2 (#PF reflected to L1 during delivery): IRQ 0x20 with an IST stack L2 has not mapped", 10, 0
msg_done:  db "L2 (#PF reflected to L1 during delivery): IRQ delivered after L1 fixed the page", 10, 0
%include "lib.inc"
