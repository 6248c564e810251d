; sdm-movss-shadow: an external interrupt that arrives right after MOV SS is held off for one
; more instruction, in VMX non-root operation too.
;
; Expected from the SDM, written before the first run:
; - MOV SS inhibits interrupts (NMIs included) on the instruction boundary that follows it
;   (Vol. 3A 6.8.3; Vol. 3C 25.4.2 Table 25-3 "blocking by MOV SS").
; - With "external-interrupt exiting", RFLAGS.IF no longer blocks external interrupts, but an
;   interrupt blocked "for other reasons" is still blocked (Vol. 3C 25.3); so the VM exit of an
;   interrupt that becomes pending in the shadow comes after the shadowed instruction, never on
;   the boundary between MOV SS and it. (Bochs' event loop agrees: nothing in its "external
;   interrupts" priority class is taken on an inhibited boundary.)
;
; How: port 0x45 arms the hypervisor's one-shot interrupt D ns from now; the guest then runs a
; sled of `mov ss, ax; mov rsp, rbx` pairs, one simulated ns per instruction. Sweeping D one ns
; at a time walks the interrupt over every boundary of the sled, the shadowed ones included: each
; EXTERNAL_INTERRUPT exit must sit before a MOV SS (after a pair), never before `mov rsp, rbx`
; (48 89 DC), and two consecutive D land on the same pair. The interrupt is the hypervisor's; the
; guest sees nothing of it. The sweep runs twice: with the flat data selector in SS, then with a
; null SS (allowed at CPL 0 in 64-bit mode, Vol. 3A 5.4.1.1): the shadow belongs to the MOV, not
; to what it loads. Exit code 0 once both sweeps are done.
%include "guest.inc"
%define PAIRS   512
%define D_FIRST 256
%define D_LAST  767
start:
        PUTS msg_start
        mov r13w, ss
        mov r14w, r13w                            ; the data selector, restored at the end
        mov rbx, rsp
        mov r15d, 2                               ; sweeps left
next_sweep:
        mov r12d, D_FIRST
sweep:
        mov eax, r12d
        out PORT_SELF_IRQ, eax
        mov ax, r13w
%rep PAIRS
        mov ss, ax                                ; 8E D0: blocking by MOV SS for one boundary
        mov rsp, rbx                              ; 48 89 DC: the shadowed instruction
%endrep
        inc r12d
        cmp r12d, D_LAST
        jbe sweep
        xor r13d, r13d                            ; the second sweep loads a null SS
        dec r15d
        jnz next_sweep
        mov ax, r14w
        mov ss, ax
        PUTS msg_ok
        EXIT 0

msg_start: db "sdm-movss-shadow: sweeping the hypervisor's interrupt over MOV SS shadows", 10, 0
msg_ok:    db "sdm-movss-shadow: both sweeps done", 10, 0
%include "lib.inc"
