; nmi-exit-host (runs as L2): L2 takes an NMI of its own (from L1's NMI source); inside its
; handler a physical NMI arrives. NMI exiting makes it a VM exit to L0, which hands it to its
; host's NMI handler: it is neither blocked by L2's NMI blocking nor given to L1 or L2.
%include "guest.inc"
start:
        call load_idt
        SET_GATE 2, nmi_handler, 0, GATE_INTR
        PUTS msg_start
        mov al, 1
        out PORT_NMI, al
wait_nmi:
        cmp qword [nmi_count], 1
        jb wait_nmi
        PUTS msg_done
        EXIT 0

nmi_handler:
        push rax
        out PORT_MACHINE_NMI, al          ; a physical NMI while L2 handles its own NMI
        inc qword [nmi_count]
        pop rax
        iretq

nmi_count: dq 0
msg_start: db "nmi-exit-host: L2 NMI, and a physical NMI inside its handler", 10, 0
msg_done:  db "nmi-exit-host: L2 saw exactly its own NMI", 10, 0
%include "lib.inc"
