; guest-pf: the guest's own #PF handler maps 2-MiB pages on demand; L0 is not involved in
; the faults (no #PF intercept), only in populating EPT for the new pages.
%include "guest.inc"
start:
        call load_idt
        SET_GATE 14, demand_pf_handler, 0, GATE_INTR
        PUTS msg_start
        mov rbx, UNMAPPED_BASE
        mov ecx, 4
touch:  mov [rbx], rbx                    ; #PF (not present) -> handler maps -> retried
        cmp [rbx], rbx
        jne fail
        add rbx, 0x200000
        dec ecx
        jnz touch
        mov rax, [demand_pf_count]
        cmp rax, 4
        jne fail
        PUTS msg_done
        EXIT 0
fail:   PUTS msg_fail
        EXIT 1


msg_start: db "guest-pf: touching 4 unmapped 2-MiB pages", 10, 0
msg_done:  db "guest-pf: 4 page faults handled by the guest", 10, 0
msg_fail:  db "guest-pf: FAILED", 10, 0
%include "lib.inc"
