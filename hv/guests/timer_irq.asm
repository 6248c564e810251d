; timer-irq: periodic timer IRQs wake an idle HLT loop.
; RDI = number of ticks to wait for (0 = forever, until the run's limit).
%include "guest.inc"
start:
        mov r15, rdi
        xor r14, r14                      ; ticks seen by the handler
        call load_idt
        SET_GATE 0x20, timer_handler, 0, GATE_INTR
        PUTS msg_start
        mov eax, 100000                   ; 100 us period
        out PORT_TIMER_PERIOD, eax
idle:   sti                               ; STI blocking covers HLT: no tick is lost in between
        hlt
        test r15, r15
        jz idle
        cmp r14, r15
        jb idle
        cli
        xor eax, eax
        out PORT_TIMER_PERIOD, eax
        PUTS msg_done
        EXIT 0

timer_handler:
        inc r14
        iretq

msg_start: db "timer-irq: idling in HLT, 100 us timer", 10, 0
msg_done:  db "timer-irq: all ticks seen", 10, 0
%include "lib.inc"
