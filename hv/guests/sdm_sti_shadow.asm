; sdm-sti-shadow: an interrupt pending while IF = 0 is taken only after the instruction that
; follows STI (Vol. 3A 6.8.3 "Masking Exceptions and Interrupts When Switching Stacks" / the STI
; entry in Vol. 2B; Vol. 3C 25.4.2 Table 25-3 "blocking by STI"), and `sti; hlt` halts first and is
; woken by it (the classic idle loop: the HLT is in the shadow).
; Expected from the SDM: the first IRQ 0x30's handler finds the shadowed instruction executed and
; its return RIP just after it; the second IRQ 0x30's return RIP is just after the HLT. The
; hypervisor must not inject into the shadow (check's irq-window-closed rule). Exit code 0 iff both
; return RIPs are the expected ones.
%include "guest.inc"
start:
        call load_idt
        SET_GATE 0x30, irq_handler, 0, GATE_INTR
        PUTS msg_start
        mov al, 0x30
        out PORT_IRQ, al                          ; pending, IF = 0
        sti
        mov qword [marker], 1                     ; in the STI shadow: runs before the interrupt
after_shadow:
        cli
        mov rax, [ret1]
        lea rcx, [after_shadow]
        cmp rax, rcx
        jne fail
        cmp qword [marker_seen], 1
        jne fail
        mov al, 0x30
        out PORT_IRQ, al
        sti
        hlt                                       ; in the shadow: halts, then the IRQ wakes it
after_hlt:
        cli
        mov rax, [ret2]
        lea rcx, [after_hlt]
        cmp rax, rcx
        jne fail
        PUTS msg_ok
        EXIT 0
fail:   PUTS msg_bad
        EXIT 1

irq_handler:
        mov rax, [rsp]                            ; the return RIP
        cmp qword [count], 0
        jne .second
        mov [ret1], rax
        mov rax, [marker]
        mov [marker_seen], rax
        jmp .done
.second:
        mov [ret2], rax
.done:  inc qword [count]
        iretq

align 8
marker:      dq 0
marker_seen: dq 0
ret1:        dq 0
ret2:        dq 0
count:       dq 0
msg_start: db "sdm-sti-shadow: IRQ 0x30 pending at STI, then at STI; HLT", 10, 0
msg_ok:    db "sdm-sti-shadow: taken after the shadowed instruction, and after the HLT", 10, 0
msg_bad:   db "sdm-sti-shadow: FAILED, the interrupt was taken inside the STI shadow", 10, 0
%include "lib.inc"
