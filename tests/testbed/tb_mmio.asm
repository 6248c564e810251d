; testbed "mmio": a write and a read of guest-physical memory no memslot backs (0x20000: the VM
; has 64 KiB at GPA 0), which KVM emulates as MMIO and hands to the VMM (KVM_EXIT_MMIO).
; Real mode, loaded at 0x1000. Written from KVM before the first run (arch/x86/kvm/mmu/mmu.c,
; x86.c): the first touch of 0x20000 is an NPF (SVM) / EPT violation (VMX) on a GPA with no
; memslot: KVM installs an MMIO SPTE for the page and emulates the MOV, whose write has no
; in-kernel device: kvm_mmio "write", KVM_EXIT_MMIO. The read of 0x20010, the same page, then
; faults on that MMIO SPTE (SVM: NPF with the reserved-bit error code; VMX: EPT misconfiguration),
; handle_mmio_page_fault emulates it: kvm_mmio "unsatisfied-read", KVM_EXIT_MMIO, and when the VMM
; has put the value in kvm_run, kvm_mmio "read" before the next entry. The value read (0x5C) goes
; out on port 0xE9, so the runner sees the read completed; then HLT.
bits 16
org 0x1000
  mov ax, 0x2000
  mov ds, ax
  mov byte [0x0], 0xAB       ; GPA 0x20000: MMIO write
  mov al, [0x10]             ; GPA 0x20010: MMIO read
  out 0xE9, al
  hlt
  jmp $
