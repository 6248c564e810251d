; sdm-nmi-collapse: three NMIs at once. One is delivered, one stays latched while NMIs are
; blocked by the first's delivery and is delivered after its IRET, and the third collapses
; into the latched one (Vol. 3A 6.7.1 "Handling Multiple NMIs"; KVM process_nmi keeps two).
; Expected from the SDM: two NMI deliveries, the second after the first handler's IRET; the
; third NMI collapsed (not a loss). Exit code 0 iff the handler ran twice, never nested.
%include "guest.inc"
start:
        call load_idt
        SET_GATE 2, nmi_handler, 0, GATE_INTR
        PUTS msg_start
        mov al, 3
        out PORT_NMI, al
        mov ecx, 100
.wait:  pause
        dec ecx
        jnz .wait
        cmp qword [count], 2
        jne .bad
        cmp qword [nested], 0
        jne .bad
        PUTS msg_ok
        EXIT 0
.bad:   PUTS msg_bad
        EXIT 1

nmi_handler:
        cmp qword [inside], 0
        je .ok
        inc qword [nested]
.ok:    mov qword [inside], 1
        inc qword [count]
        mov qword [inside], 0
        iretq

align 8
count:     dq 0
inside:    dq 0
nested:    dq 0
msg_start: db "sdm-nmi-collapse: three NMIs at once", 10, 0
msg_ok:    db "sdm-nmi-collapse: two NMI handler runs, not nested", 10, 0
msg_bad:   db "sdm-nmi-collapse: FAILED, wrong NMI count or a nested NMI", 10, 0
%include "lib.inc"
