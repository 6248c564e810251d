; nmi-blocking: the NMI handler raises a second NMI; it must wait for the handler's IRETQ
; (Vol. 3A 6.7.1 "Handling Multiple NMIs"): L0 finds NMIs blocked, opens an NMI window,
; and injects it after the IRET.
%include "guest.inc"
start:
        call load_idt
        SET_GATE 2, nmi_handler, 0, GATE_INTR
        PUTS msg_start
        mov al, 1
        out PORT_NMI, al
wait_nmis:
        cmp qword [nmi_count], 2
        jb wait_nmis
        cmp byte [nested], 0
        jne fail
        PUTS msg_done
        EXIT 0
fail:   PUTS msg_fail
        EXIT 1

nmi_handler:
        push rax
        cmp byte [in_nmi], 0
        je .first
        mov byte [nested], 1
.first: mov byte [in_nmi], 1
        inc qword [nmi_count]
        cmp qword [nmi_count], 1
        jne .out
        mov al, 1
        out PORT_NMI, al                  ; a second NMI while this one is being handled
        mov eax, 100
.spin:  pause
        dec eax
        jnz .spin
.out:   mov byte [in_nmi], 0
        pop rax
        iretq

nmi_count: dq 0
in_nmi:    db 0
nested:    db 0
msg_start: db "nmi-blocking: NMI handler raises another NMI", 10, 0
msg_done:  db "nmi-blocking: 2 NMIs, the second after IRET", 10, 0
msg_fail:  db "nmi-blocking: FAILED, NMI nested", 10, 0
%include "lib.inc"
