; triple-fault: as double-fault, but the #DF gate is not present either: the #NP raised
; while delivering #DF shuts the processor down -> TRIPLE_FAULT exit (reason 2).
%include "guest.inc"
start:
        call load_idt
        SET_GATE 8, start, 0, GATE_ABSENT
        SET_GATE 13, start, 0, GATE_ABSENT
        PUTS msg_start
        mov rax, 0x8000000000000000
        mov [rax], rax
        PUTS msg_fail
        EXIT 1

msg_start: db "triple-fault: #GP -> #NP -> #DF -> #NP", 10, 0
msg_fail:  db "triple-fault: FAILED, still running", 10, 0
%include "lib.inc"
