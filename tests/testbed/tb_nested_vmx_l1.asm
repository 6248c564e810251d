; testbed "nested" on VMX: a tiny VMX hypervisor (L1) that runs one L2, for tb-pm-guest.
; Loaded at 0x1000. The runner starts L1 in 32-bit protected mode with paging (one 4 MiB
; identity page, CR0.NE set: VMXON wants CR0 within IA32_VMX_CR0_FIXED0 = PE | NE | PG, SDM
; Vol. 3C 24.8 "Restrictions on VMX Operation"), has written L2's GDT / IDT (0x4000 / 0x4800)
; and, at 0xA000, the VMCS fields L1 writes: (encoding, value) pairs ending with encoding
; 0xFFFFFFFF (tb_pm_guest.cpp: controls from KVM's IA32_VMX_* capability MSRs, L2's guest
; state, L1's host state). L2 runs in 32-bit protected mode with paging on L1's own page
; directory (no EPT in vmcs12, so no unrestricted guest: L2's guest-physical = L1's); L1's
; controls: HLT exiting, unconditional I/O exiting, exception bitmap = #UD.
;
; What the SDM (Vol. 3C 26.6 "Event Injection", 27.2.4 "Information for VM Exits During Event
; Delivery") and KVM 6.1's vmx/nested.c make of each L2 step, and what the recording shows:
;   1. L2 `cpuid`: CPUID exits unconditionally; nested_vmx_l1_wants_exit: reflected to L1
;      (kvm_nested_vmexit, then kvm_nested_vmexit_inject reason CPUID). L1 skips it (RIP += the
;      VM-exit instruction length) and injects IRQ 0x21 through the VM-entry interruption-
;      information field (0x80000021) at its VMRESUME: kvm_nested_vmenter event_inj=0x80000021,
;      copied into vmcs02 by prepare_vmcs02 (no kvm_inj_virq: KVM does not inject it itself).
;      The delivery reads gate 0x21 of L2's IDT (GPA 0x4908), a page L2 never touched: L2's
;      TDP root is its own (the MMU role has guest_mode), so an EPT_VIOLATION in L0 with the
;      IDT-vectoring information = IRQ 0x21. L1 uses no EPT, so L0 keeps it
;      (nested_vmx_l0_wants_exit: EPT_VIOLATION), __vmx_complete_interrupts requeues the IRQ and
;      L0 injects it into L2 again (kvm_inj_virq 0x21 [reinjected]); the push onto L2's stack
;      page 0x1F000 meets a second EPT_VIOLATION, IRQ 0x21 again. Delivered at L2's handler.
;   2. L2's port writes (`out 0xE9`): unconditional I/O exiting, reflected to L1
;      (IO_INSTRUCTION), which does the write itself with L2's AL (VM exits do not switch the
;      general-purpose registers, SDM 27.5) and skips the instruction: the runner sees
;      0x21 (the IRQ handler), 1, 6 (the #UD handler), 2.
;   3. L2 `ud2`: #UD, in L1's exception bitmap (nested_vmx_l1_wants_exit: EXCEPTION_NMI with the
;      vector's bit set): reflected to L1 (exit interruption info 0x80000306). L1 injects #UD
;      back (0x80000306, hardware exception, no error code); delivered at L2's #UD handler,
;      which skips the ud2 (its pages are mapped by then: no EPT violation).
;   4. L2 `hlt`: HLT exiting, reflected to L1, which reports it and halts (KVM_EXIT_HLT).
; L1 reports every exit reason on port 0x10 (32 bits), the exit interruption info of an
; exception exit (or the exit qualification of an unexpected exit) on port 0x12, and a failed
; VMX instruction on port 0x11 (the VM-instruction error, or 0xFFFFFFFF for VMfailInvalid).
bits 32
org 0x1000

VMXON_REGION equ 0x5000
VMCS_REGION  equ 0x6000
FIELDS       equ 0xA000
L2_EAX       equ 0xAFF0          ; L2's EAX while L1 runs

; VMCS field encodings (SDM Vol. 3D Appendix B)
VM_ENTRY_INTR_INFO   equ 0x4016
VM_INSTRUCTION_ERROR equ 0x4400
VM_EXIT_REASON       equ 0x4402
VM_EXIT_INTR_INFO    equ 0x4404
VM_EXIT_INSTR_LEN    equ 0x440C
EXIT_QUALIFICATION   equ 0x6400
GUEST_RIP            equ 0x681E
HOST_CR0             equ 0x6C00
HOST_CR3             equ 0x6C02
HOST_CR4             equ 0x6C04
HOST_RSP             equ 0x6C14
HOST_RIP             equ 0x6C16

; Basic exit reasons (SDM Vol. 3D Appendix C)
EXIT_EXCEPTION_NMI equ 0
EXIT_CPUID         equ 10
EXIT_IO            equ 30

l1_entry:
  mov ecx, 0x3A                ; IA32_FEATURE_CONTROL: lock | VMX outside SMX (VMXON is #GP otherwise)
  mov eax, 5
  xor edx, edx
  wrmsr
  mov eax, cr4                 ; CR4.VMXE
  or eax, 1 << 13
  mov cr4, eax
  mov ecx, 0x480               ; IA32_VMX_BASIC[30:0]: the VMCS revision identifier
  rdmsr
  and eax, 0x7FFFFFFF
  mov [VMXON_REGION], eax
  mov [VMCS_REGION], eax
  vmxon [vmxon_ptr]
  jbe fail                     ; CF (VMfailInvalid) or ZF (VMfailValid)
  vmclear [vmcs_ptr]
  jbe fail
  vmptrld [vmcs_ptr]
  jbe fail
  mov esi, FIELDS
.field:
  mov eax, [esi]
  cmp eax, 0xFFFFFFFF
  je .fields_done
  mov ebx, [esi + 4]
  vmwrite eax, ebx
  jbe fail
  add esi, 8
  jmp .field
.fields_done:
  ; L1's own host state: its control registers, stack and exit handler.
  mov eax, HOST_CR0
  mov ebx, cr0
  vmwrite eax, ebx
  mov eax, HOST_CR3
  mov ebx, cr3
  vmwrite eax, ebx
  mov eax, HOST_CR4
  mov ebx, cr4
  vmwrite eax, ebx
  mov eax, HOST_RSP
  mov ebx, esp
  vmwrite eax, ebx
  mov eax, HOST_RIP
  mov ebx, l1_exit
  vmwrite eax, ebx
  jbe fail
  vmlaunch
  jmp fail                     ; VMLAUNCH returned: VMfail (the flags say which)

; VMfailInvalid sets CF and has no error number; VMfailValid sets ZF and the VM-instruction
; error field says why (SDM Vol. 3C 30.4 "VM Instruction Error Numbers").
fail:
  mov ebx, 0xFFFFFFFF
  jc .report
  mov eax, VM_INSTRUCTION_ERROR
  vmread ebx, eax
.report:
  mov eax, ebx
  out 0x11, eax
  hlt
  jmp $

l1_exit:
  mov [L2_EAX], eax
  mov eax, VM_EXIT_REASON
  vmread ebx, eax
  mov eax, ebx
  out 0x10, eax
  cmp ebx, EXIT_CPUID
  je on_cpuid
  cmp ebx, EXIT_IO
  je on_io
  cmp ebx, EXIT_EXCEPTION_NMI
  je on_exception
  cmp ebx, 12                  ; HLT: L2 is done
  je .halt
  mov eax, EXIT_QUALIFICATION  ; anything else (a failed VM entry has bit 31 set): say why
  vmread ebx, eax
  mov eax, ebx
  out 0x12, eax
.halt:
  hlt
  jmp $
on_cpuid:
  call skip_instruction
  mov eax, VM_ENTRY_INTR_INFO
  mov ebx, 0x80000021          ; valid, type 0 (external interrupt), vector 0x21
  vmwrite eax, ebx
  jmp resume
on_io:
  mov eax, [L2_EAX]
  out 0xE9, al
  call skip_instruction
  jmp resume
on_exception:                  ; only #UD is intercepted
  mov eax, VM_EXIT_INTR_INFO
  vmread ebx, eax
  mov eax, ebx
  out 0x12, eax
  mov eax, VM_ENTRY_INTR_INFO
  mov ebx, 0x80000306          ; valid, type 3 (hardware exception), vector 6, no error code
  vmwrite eax, ebx
  jmp resume
skip_instruction:
  mov eax, VM_EXIT_INSTR_LEN
  vmread ecx, eax
  mov eax, GUEST_RIP
  vmread ebx, eax
  add ebx, ecx
  vmwrite eax, ebx
  ret
resume:
  mov eax, [L2_EAX]
  vmresume
  jmp fail

align 8
vmxon_ptr: dq VMXON_REGION
vmcs_ptr:  dq VMCS_REGION

  times 0x2000 - ($ - $$) db 0
; L2 at 0x3000: 32-bit protected mode, paging on L1's page directory, its stack at 0x20000.
l2_entry:
  cpuid
  mov al, 1
  out 0xE9, al
  ud2
  mov al, 2
  out 0xE9, al
  hlt
  jmp $

  times 0x2200 - ($ - $$) db 0
l2_irq21:                      ; 0x3200
  mov al, 0x21
  out 0xE9, al
  iret
  times 0x2300 - ($ - $$) db 0
l2_ud:                         ; 0x3300: skip the ud2
  add dword [esp], 2
  mov al, 6
  out 0xE9, al
  iret
