/* exitscope record ABI: the one record format every source (the hv core, the KVM eBPF
 * probes, the trace importers) hands to the recorder.
 *
 * Rules: fixed-width fields only (no bool, long, pointers or enums), version and kind first,
 * every size static_asserted, natural alignment with no implicit padding. Usable from C,
 * C++ and BPF C (define ES_RECORD_NO_LINUX_TYPES before including in BPF programs that get
 * __u8..__u64 from vmlinux.h).
 *
 * Changelog
 *   1  first version (128 bytes). Kinds and decision reasons are only ever appended.
 */
#ifndef EXITSCOPE_RECORD_H
#define EXITSCOPE_RECORD_H

#ifndef ES_RECORD_NO_LINUX_TYPES
#include <linux/types.h>
#endif

#define ES_RECORD_VERSION 1

/* es_record.kind */
enum {
  ES_KIND_NONE = 0,
  ES_KIND_VM_EXIT = 1,        /* a VM exit: reason, qualification, exit intr info, IDT-vectoring */
  ES_KIND_VM_ENTRY = 2,       /* a VM entry: intr_info = VM-entry interruption info (injection);
                                 aux = guest interruptibility state, aux64 = guest RFLAGS, as entered
                                 (both 0 when the source does not say them: KVM's kvm_entry) */
  ES_KIND_DELIVERY = 3,       /* the CPU delivered an event through the guest IDT (handler reached) */
  ES_KIND_DECISION = 4,       /* a hypervisor decision; reason = ES_DECISION_* */
  ES_KIND_RAISE = 5,          /* a source raised an event (timer IRQ, NMI source, guest fault); chain root */
  ES_KIND_NESTED_EXIT = 6,    /* an emulated VM exit from L2 to L1 (vmcs12 exit fields) as L0 writes
                                 them for L1: level 2, hv_level 0; reason, qualification, intr_info /
                                 intr_error, idt_vectoring_info / _error, instr_len as an exit's
                                 (SVM: EXITCODE, EXITINFO1, EXITINTINFO in idt_vectoring_info,
                                 aux64 = EXITINFO2, as ES_KIND_VM_EXIT); rip = L2's RIP at the exit
                                 (the RIP L1 finds in vmcs12 / vmcb12, not L1's); guest_linear /
                                 guest_phys = vmcs12's guest-linear / guest-physical address (0 when
                                 the source does not give them) */
  ES_KIND_CONSOLE = 7,        /* guest console output: bytes[0..aux) as written, '\n' included */
  ES_KIND_VIOLATION = 8,      /* an invariant-checker finding; reason = ES_VIOLATION_* */
  ES_KIND_INTERNAL_ERROR = 9, /* the model stopped: reason = ES_ERROR_*; rip / bytes name the instruction */
  ES_KIND_RUN_END = 10,       /* the run ended; reason = ES_END_*; hv: aux = the guest's exit code
                                 (ES_END_GUEST_EXIT), aux64 = VM exits handled */
  ES_KIND_CONTEXT = 11,       /* other trace lines kept for context (imports); VMCS dump lines
                                 (aux = field encoding, aux64 = value) */
  ES_KIND_NESTED_ENTRY = 12,  /* L1's VMLAUNCH/VMRESUME of L2 as emulated by L0 (vmcs12 -> vmcs02);
                                 level 2, hv_level 1. As for ES_KIND_VM_ENTRY, the fields say what
                                 L2 is entered with: rip = L2's RIP (vmcs12 / vmcb12 guest RIP; L1's
                                 own RIP, that of its VMLAUNCH / VMRESUME / VMRUN, is the rip of
                                 the L1 exit L0 handled to emulate it); intr_info = vmcs12's VM-entry
                                 interruption info (SVM: vmcb12's EVENTINJ in that format, with
                                 ES_FLAG_SVM), intr_error / instr_len = its error code and length;
                                 aux = L2's interruptibility state, aux64 = L2's RFLAGS;
                                 qualification = vmcs12's exception bitmap, guest_linear = its #PF
                                 error-code mask (bits 31:0) and match (63:32); guest_phys = the
                                 VMCS12 / VMCB12 address L1 named, where the source says it.
                                 Unknown is 0 throughout: aux64 without RFLAGS bit 1 (always 1 in a
                                 real RFLAGS) means RFLAGS and interruptibility were not recorded
                                 (KVM's kvm_nested_vmenter gives neither: its int_ctl is vmcs12's
                                 guest interrupt status / vmcb12's V_INTR word, not
                                 interruptibility); a source without the exception bitmap leaves
                                 qualification 0, which the checker reads as "L1 intercepts none" */
  ES_KIND_COUNT = 13
};

/* es_record.source */
enum { ES_SOURCE_HV = 0, ES_SOURCE_KVM = 1, ES_SOURCE_IMPORT = 2 };

/* ES_KIND_DECISION reasons. `intr_info` carries the event concerned as a VM-entry
 * interruption-information word (valid, type, vector, deliver-error-code), `intr_error`
 * its error code. */
enum {
  ES_DECISION_NONE = 0,
  ES_DECISION_QUEUE_IRQ = 1,             /* an interrupt became pending in the software queue */
  ES_DECISION_QUEUE_NMI = 2,
  ES_DECISION_QUEUE_EXCEPTION = 3,
  ES_DECISION_REQUEUE_FROM_VECTORING = 4, /* complete interrupts: IDT-vectoring valid -> requeued */
  ES_DECISION_DROP_FROM_VECTORING = 5,   /* policy dropped a hardware exception found in IDT-vectoring */
  ES_DECISION_INJECT_REINJECTED = 6,     /* injected an event requeued from IDT-vectoring */
  ES_DECISION_INJECT_NEW = 7,            /* injected a newly queued event */
  ES_DECISION_OPEN_IRQ_WINDOW = 8,       /* set interrupt-window exiting */
  ES_DECISION_OPEN_NMI_WINDOW = 9,       /* set NMI-window exiting */
  ES_DECISION_DEFER_BLOCKED = 10,        /* pending event blocked (IF=0, STI/MOV SS, NMI blocking) */
  ES_DECISION_CANCEL_INJECTION = 11,     /* an injection not taken was moved back to the queue */
  ES_DECISION_EPT_MAP = 12,              /* lazy EPT population; guest_phys = GPA mapped */
  ES_DECISION_EMULATE = 13,              /* exit handled by emulation (I/O, CPUID, ...) ; aux = detail */
  ES_DECISION_HALT = 14,                 /* vCPU blocked in HLT until the next event */
  ES_DECISION_SHUTDOWN = 15,             /* the VM is shut down (triple fault) */
  ES_DECISION_REFLECT_TO_L1 = 16,        /* nested: L2 exit reflected to L1 */
  ES_DECISION_HANDLE_IN_L0 = 17,         /* nested: L2 exit handled by L0 */
  ES_DECISION_IMMEDIATE_EXIT = 18,       /* enter with an immediate exit requested */
  ES_DECISION_HOST_NMI = 19,             /* NMI exit handed to the host NMI handler */
  ES_DECISION_UNEXPECTED_EXIT = 20,      /* exit reason without a handler (raw reason recorded) */
  ES_DECISION_DISCARD = 21,              /* a queued event was discarded: a pending exception raised
                                            during its delivery outranked its reinjection (KVM
                                            kvm_check_and_inject_events; as on hardware, it is lost) */
  ES_DECISION_FIX_PAGE_FAULT = 22,       /* an intercepted #PF was the hypervisor's to fix (shadow
                                            paging): it mapped the page, nothing injected;
                                            aux64 = the faulting address */
  ES_DECISION_RESTORE_NMI_BLOCKING = 23, /* the exit reported "NMI unblocking due to IRET": blocking by
                                            NMI set again before resuming (SDM 31.7.1.2; KVM
                                            vmx_recover_nmi_blocking); intr_info = the exit's
                                            interruption info, aux64 = its qualification, origin =
                                            the NMI left pending by it, if any */
  ES_DECISION_COUNT = 24
};

/* ES_KIND_RUN_END reasons */
enum {
  ES_END_GUEST_EXIT = 0,  /* the guest asked to end the run (exit device port) */
  ES_END_LIMIT = 1,       /* --max-exits / --max-insns reached */
  ES_END_TRIPLE_FAULT = 2,
  ES_END_INTERNAL_ERROR = 3,
  ES_END_STOPPED = 4,     /* stopped by the user (signal) */
  ES_END_HALTED = 5       /* the guest halted with nothing left that could wake it */
};

/* ES_KIND_VIOLATION reasons: the checker's rules (exitscope check --help names and explains
 * each; replay/check/rules.def is their table and must agree, which the checker's build
 * asserts). Stored in recordings: never renumbered, only appended. A plugin or a reader of the
 * SQLite file can rely on these numbers. */
enum {
  ES_VIOLATION_EXIT_EXT_INT_WITH_VECTORING = 1, /* external-interrupt exit with valid IDT-vectoring */
  ES_VIOLATION_INJECTED_TWICE = 2,              /* an event delivered twice / injected after delivery */
  ES_VIOLATION_EVENT_LOST = 3,                  /* an event owed delivery that a hypervisor lost */
  ES_VIOLATION_REINJECTION_LOOP = 4,            /* the same IDT-vectoring event re-exiting, no delivery */
  ES_VIOLATION_NMI_WHILE_BLOCKED = 5,           /* NMI injected with blocking by NMI set */
  ES_VIOLATION_IRQ_WINDOW_CLOSED = 6,           /* IRQ injected with IF = 0 or an STI / MOV SS shadow */
  ES_VIOLATION_L1_INTERCEPT_BYPASSED = 7,       /* L0 injected into L2 an exception L1 intercepts */
  ES_VIOLATION_NO_PROGRESS_LOOP = 8,            /* identical exits repeating with no progress */
  ES_VIOLATION_NMI_UNBLOCKING_IGNORED = 9,      /* NMI unblocking due to IRET not honoured */
  ES_VIOLATION_NO_PROGRESS_CYCLE = 10           /* a unit of 2-4 exits repeating with no progress */
};

/* ES_KIND_INTERNAL_ERROR reasons */
enum {
  ES_ERROR_UNIMPLEMENTED_INSN = 1, /* bytes[] = instruction bytes, rip = its address */
  ES_ERROR_INVALID_STATE = 2,      /* impossible state; aux64 = detail */
  ES_ERROR_BAD_MEMORY = 3          /* access outside host memory; guest_phys = address */
};

/* ES_KIND_CONTEXT reasons: what the context record is (replay decodes each). aux of the
 * tracepoint kinds = the line / record number in an imported file (0 when recorded live),
 * except for EMULATE_INSN whose aux is the byte count (ES_FLAG_BYTES_VALID). */
enum {
  ES_CONTEXT_VMCS_FIELD = 0,           /* hv dump_vmcs: aux = VMCS field encoding, aux64 = value */
  ES_CONTEXT_OTHER_EVENT = 0x100,      /* another tracepoint, kept for context */
  ES_CONTEXT_PAGE_FAULT = 0x101,       /* kvm_page_fault: guest_phys = address, aux64 = the full 64-bit
                                          error code (KVM's PFERR_GUEST_FINAL / GUEST_PAGE are bits 32 / 33),
                                          intr_error = its low 32 bits (recordings before aux64 have only these) */
  ES_CONTEXT_EMULATE_INSN = 0x102,     /* kvm_emulate_insn: rip, bytes[0..aux), intr_error = 1 if failed */
  ES_CONTEXT_PIO = 0x103,              /* kvm_pio: qualification = port, aux64 = value, instr_len = size,
                                          intr_error = 1 if write */
  ES_CONTEXT_MSR = 0x104,              /* kvm_msr: qualification = MSR, aux64 = data, intr_error = 1 if write */
  ES_CONTEXT_APIC_ACCEPT_IRQ = 0x105,  /* kvm_apic_accept_irq: qualification = APIC id, intr_info = the IRQ */
  ES_CONTEXT_EOI = 0x106,              /* kvm_eoi: qualification = APIC id, intr_info = the IRQ */
  ES_CONTEXT_MMIO = 0x107,             /* kvm_mmio: guest_phys = GPA, aux64 = value, instr_len = length,
                                          intr_error = 0 unsatisfied read, 1 read, 2 write */
  ES_CONTEXT_USERSPACE_EXIT = 0x108    /* kvm_userspace_exit: qualification = KVM_EXIT_* reason,
                                          intr_error = errno when KVM_RUN failed */
};

/* es_record.flags */
#define ES_FLAG_BYTES_VALID   (1u << 0)  /* bytes[] holds instruction bytes at rip, aux = count */
#define ES_FLAG_INFERRED      (1u << 1)  /* causal link inferred, not observed */
#define ES_FLAG_IMMEDIATE_EXIT (1u << 2) /* entry with an immediate exit requested */
#define ES_FLAG_SVM           (1u << 3)  /* reason / fields use SVM meanings */
#define ES_FLAG_RIP_UNKNOWN   (1u << 4)  /* the source did not say the RIP (e.g. "kvm_entry: vcpu 0"): rip = 0
                                            means unknown, printers show "rip=unknown" */
#define ES_FLAG_CR2_UNKNOWN   (1u << 5)  /* delivered #PF whose CR2 the source did not say (an inferred
                                            delivery of an imported trace): guest_linear means unknown */

struct es_record {
  __u16 version;            /* ES_RECORD_VERSION */
  __u16 kind;               /* ES_KIND_* */
  __u8 level;               /* guest level the event is about: 1 = L1 guest of L0, 2 = L2 */
  __u8 hv_level;            /* hypervisor level that observed / decided it: 0 = L0, 1 = L1 */
  __u16 vcpu;
  __u32 reason;             /* exit reason (full 32 bits) / ES_DECISION_* / ES_END_* / ... */
  __u32 flags;              /* ES_FLAG_* */
  __u64 id;                 /* unique in a session, increasing; 0 = unassigned */
  __u64 cause;              /* id of the record that caused this one; 0 = none */
  __u64 origin;             /* id of the chain's root (the original event); 0 = none */
  __u64 time_ns;            /* session time: simulated ns (hv) or trace clock ns */
  __u64 rip;                /* guest RIP (exit: RIP of the exiting instruction) */
  __u64 qualification;      /* exit qualification */
  __u64 guest_linear;       /* guest-linear address (exit) / CR2 (delivered #PF) */
  __u64 guest_phys;         /* guest-physical address (EPT exits, EPT map decisions) */
  __u32 intr_info;          /* exit: VM-exit intr info; entry/decision/delivery/raise: as VM-entry intr info */
  __u32 intr_error;         /* its error code */
  __u32 idt_vectoring_info; /* exit: IDT-vectoring information */
  __u32 idt_vectoring_error;
  __u32 instr_len;          /* exit: VM-exit instruction length; entry: VM-entry instruction length */
  __u32 aux;                /* kind-specific (bytes count, I/O value, ...) */
  __u64 aux64;              /* kind-specific */
  __u8 bytes[16];           /* instruction bytes at rip, or console text */
};

#ifdef __cplusplus
static_assert(sizeof(struct es_record) == 128, "es_record ABI size");
#else
_Static_assert(sizeof(struct es_record) == 128, "es_record ABI size");
#endif

#endif /* EXITSCOPE_RECORD_H */
