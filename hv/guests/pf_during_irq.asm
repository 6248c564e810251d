; pf-during-irq: IRQ 0x20's IST stack is not mapped in the guest's page tables, so its
; delivery raises a guest #PF. L0 intercepts #PF (as with shadow paging): the exit carries
; the #PF with IDT-vectoring = IRQ 0x20. The #PF belongs to the guest and is reflected; a
; pending exception outranks reinjecting the IRQ (KVM), and as on hardware the IRQ is lost.
; The guest's #PF handler maps the stack; a second IRQ is then delivered normally.
%include "guest.inc"
%define IST_STACK_TOP (UNMAPPED_BASE + 0x1000)
start:
        call load_idt
        SET_GATE 14, demand_pf_handler, 0, GATE_INTR
        SET_GATE 0x20, irq_handler, 1, GATE_INTR
        mov rax, IST_STACK_TOP
        mov [abs TSS_IST(1)], rax
        PUTS msg_start
        sti
        mov al, 0x20
        out PORT_IRQ, al                  ; first IRQ: its delivery faults
        mov ecx, 1000
spin:   pause
        dec ecx
        jnz spin
        cmp qword [irq_count], 0
        jne first_seen
        PUTS msg_lost
first_seen:
        mov al, 0x20
        out PORT_IRQ, al                  ; second IRQ: the stack is mapped now
wait2:  cmp qword [irq_count], 0
        je wait2
        cli
        PUTS msg_done
        EXIT 0


irq_handler:
        inc qword [irq_count]
        iretq

irq_count: dq 0
msg_start: db "pf-during-irq: IRQ 0x20 with an unmapped IST stack", 10, 0
msg_lost:  db "pf-during-irq: first IRQ lost to the #PF raised during its delivery", 10, 0
msg_done:  db "pf-during-irq: second IRQ delivered", 10, 0
%include "lib.inc"
