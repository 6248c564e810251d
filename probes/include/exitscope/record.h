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
 *   1  (no ABI change: the same names and numbers) kind, decision and violation ids come from
 *      one table each beside this header (record_kinds.def, decisions.def, violations.def);
 *      names.h turns them into names for C and C++ alike.
 */
#ifndef EXITSCOPE_RECORD_H
#define EXITSCOPE_RECORD_H

#ifndef ES_RECORD_NO_LINUX_TYPES
/* The field documentation below is laid out in columns that continue over several lines, which
 * clang-format does not keep aligned: the ABI header is left unformatted. */
/* clang-format off */
#include <linux/types.h>
#endif

#define ES_RECORD_VERSION 1

/* es_record.kind: ES_KIND_VM_EXIT, ... from the kind table (record_kinds.def, where each kind's
 * fields are described). ES_KIND_COUNT counts the entries; the table has no gap, so it is also
 * one past the largest id. */
enum {
#define ES_KIND(id, name) ES_KIND_##name = id, /* NOLINT(bugprone-macro-parentheses): X-macro */
#include "record_kinds.def"
#undef ES_KIND
  ES_KIND_COUNT = 0
#define ES_KIND(id, name) + 1 /* NOLINT(bugprone-macro-parentheses): X-macro */
#include "record_kinds.def"
#undef ES_KIND
};

/* es_record.source */
enum { ES_SOURCE_HV = 0, ES_SOURCE_KVM = 1, ES_SOURCE_IMPORT = 2 };

/* ES_KIND_DECISION reasons: ES_DECISION_INJECT_NEW, ... from the decision table (decisions.def,
 * which also says what intr_info and the other fields carry). ES_DECISION_COUNT counts the
 * entries (the table has no gap). */
enum {
#define ES_DECISION(id, name) ES_DECISION_##name = id, /* NOLINT(bugprone-macro-parentheses): X-macro */
#include "decisions.def"
#undef ES_DECISION
  ES_DECISION_COUNT = 0
#define ES_DECISION(id, name) + 1 /* NOLINT(bugprone-macro-parentheses): X-macro */
#include "decisions.def"
#undef ES_DECISION
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

/* ES_KIND_VIOLATION reasons: the checker's rules, ES_VIOLATION_EVENT_LOST, ... from the rule
 * table (violations.def: id, name, what each checks; `exitscope check --help` prints it). The
 * checker, replay's names and plugins all read that table. Stored in recordings: never
 * renumbered, only appended. A plugin or a reader of the SQLite file can rely on these numbers. */
enum {
#define ES_VIOLATION(id, name, rule, rule_name, description) ES_VIOLATION_##name = id, /* NOLINT(bugprone-macro-parentheses): X-macro */
#include "violations.def"
#undef ES_VIOLATION
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
  ES_CONTEXT_OTHER_EVENT = 0x100,      /* other tracepoints' lines between two KVM events of a vCPU: aux =
                                          the first's line, qualification = the last's, aux64 = how many
                                          (0 in older files: one) */
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
#define ES_FLAG_VECTORING_UNKNOWN (1u << 6) /* an exit whose source did not say its IDT-vectoring info /
                                              EXITINTINFO (a kvm_exit line of an era or format that does
                                              not print it): idt_vectoring_info 0 means unknown */
#define ES_FLAG_EXIT_INTR_UNKNOWN (1u << 7) /* a VMX exit whose source did not say its VM-exit interruption
                                              info: intr_info 0 means unknown */

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
