; nmi-iret-ept / nmi-iret-pf: the NMI handler's IRETQ pops its frame from a page that is not
; there yet, while a second NMI is pending. IRET removes (virtual-)NMI blocking before it
; reads the frame (Vol. 3C 27.3 / 28.2.2 / Table 28-7 bit 12 "NMI unblocking due to IRET"),
; so the VM exit reports that it did; the hypervisor must set blocking by NMI again before it
; resumes the guest (Vol. 3C 31.7.1.2 "Resuming Guest Software after Handling an
; Exception"). Then the re-executed IRETQ completes first, and only then is the second NMI
; delivered (Vol. 3A 6.7.1 "Handling Multiple NMIs"). A hypervisor that forgets delivers it
; at the IRETQ, inside the first handler: the guest sees its handler re-entered and exits 1.
;
; RDI (--arg) picks where the frame is:
;   0: in a page of this image that nothing touches before the IRETQ: L0 has not put it in
;      EPT yet, so the frame read is an EPT violation (qualification bit 12).
;   1: at UNMAPPED_BASE + 0x800, a linear page the guest removed from its own page tables
;      after writing the frame there: the frame read is a #PF, which the hypervisor intercepts
;      and fixes (exit interruption info bit 12).
%include "guest.inc"
%define PF_FRAME (UNMAPPED_BASE + 0x800)
start:
        mov [variant], dil
        call load_idt
        SET_GATE 2, nmi_handler, 0, GATE_INTR
        cmp byte [variant], 0
        je .go
        ; Variant 1: write the frame through a 2-MiB page of our own, then take the page away.
        mov rax, PF_FRAME
        call map_2m
        lea rsi, [iret_frame]
        mov rdi, PF_FRAME
        mov ecx, 5
.copy:  mov rdx, [rsi]
        mov [rdi], rdx
        add rsi, 8
        add rdi, 8
        dec ecx
        jnz .copy
        mov qword [abs PD + (PF_FRAME >> 21) * 8], 0
        mov rax, PF_FRAME
        invlpg [rax]
.go:    PUTS msg_start
        mov al, 1
        out PORT_NMI, al                  ; the first NMI, delivered right after this OUT
.lost:  jmp .lost                         ; the handler returns to after_first, not here

; Every NMI lands here. The return RIP in the frame says what the NMI interrupted: inside this
; handler means the handler was re-entered before its IRETQ completed.
nmi_handler:
        push rax
        push rbx
        mov rax, [rsp + 16]               ; interrupted RIP
        lea rbx, [nmi_handler]
        cmp rax, rbx
        jb .outside
        lea rbx, [nmi_handler_end]
        cmp rax, rbx
        jae .outside
        mov byte [nested], 1
.outside:
        inc qword [nmi_count]
        cmp qword [nmi_count], 1
        jne .plain
        mov al, 1
        out PORT_NMI, al                  ; the second NMI: pending, blocked by this one
        cmp byte [variant], 0
        jne .pf_frame
        lea rsp, [iret_frame]             ; variant 0: the untouched page of this image
        jmp .iret
.pf_frame:
        mov rsp, PF_FRAME                 ; variant 1: the page missing from our page tables
.iret:  iretq                             ; -> after_first, with RSP = BOOT_STACK
.plain: pop rbx
        pop rax
        iretq
nmi_handler_end:

after_first:
        cmp qword [nmi_count], 2
        jb after_first
        cmp byte [nested], 0
        jne .fail
        PUTS msg_done
        EXIT 0
.fail:  PUTS msg_fail
        EXIT 1

nmi_count: dq 0
variant:   db 0
nested:    db 0
msg_start: db "nmi-iret: NMI handler IRETQ pops its frame from an absent page, a second NMI pending", 10, 0
msg_done:  db "nmi-iret: second NMI delivered after the IRETQ completed", 10, 0
msg_fail:  db "nmi-iret: FAILED, second NMI delivered inside the first handler", 10, 0
%include "lib.inc"

; The frame page: nothing above touches it (the copy for variant 1 reads it, but only then
; is variant 0's frame not used). Kept alone in its 4-KiB page.
align 4096
        times 0x800 db 0
iret_frame:
        dq after_first                    ; RIP
        dq KERNEL_CS                      ; CS
        dq 0x2                            ; RFLAGS: IF = 0
        dq BOOT_STACK                     ; RSP
        dq 0x10                           ; SS
        times 4096 - 0x800 - 40 db 0
