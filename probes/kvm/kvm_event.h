/* exitscope KVM probe record: what probes/kvm/kvm.bpf.c writes into the per-CPU rings and
 * the loader (probes/kvm/kvm_loader.cpp) reads. Fixed-width fields only (no bool, long,
 * pointers or enums), usable from BPF C and C++.
 *
 * The BPF side does not interpret the tracepoint: it copies the trace entry's bytes after the
 * common header (entry offsets ES_KVM_RAW_BASE .. the entry's end, at most ES_KVM_RAW_MAX), and user
 * space decodes them at the offsets the running kernel's tracefs `format` file gives. A kernel
 * whose layout moved therefore needs no new BPF code; a layout the decoder does not know is
 * refused before anything is attached (probes/kvm/tracefs_format.h).
 */
#ifndef EXITSCOPE_KVM_EVENT_H
#define EXITSCOPE_KVM_EVENT_H

#ifndef ES_RECORD_NO_LINUX_TYPES
#include <linux/types.h>
#endif

/* The tracepoints, in the order of the programs in kvm.bpf.c (es_kvm_event.event). */
enum {
  ES_KVM_EV_EXIT = 0,
  ES_KVM_EV_ENTRY,
  ES_KVM_EV_INJ_VIRQ,
  ES_KVM_EV_INJ_EXCEPTION,
  ES_KVM_EV_NESTED_VMEXIT,
  ES_KVM_EV_NESTED_VMEXIT_INJECT,
  ES_KVM_EV_NESTED_INTR_VMEXIT,
  ES_KVM_EV_PAGE_FAULT,
  ES_KVM_EV_EMULATE_INSN,
  ES_KVM_EV_PIO,
  ES_KVM_EV_MMIO,
  ES_KVM_EV_MSR,
  ES_KVM_EV_USERSPACE_EXIT,
  ES_KVM_EV_APIC_ACCEPT_IRQ,
  ES_KVM_EV_EOI,
  ES_KVM_EV_NESTED_VMENTER, /* kvm_nested_vmenter (5.12+): L1's VMRUN / VMLAUNCH emulated, event_inj */
  ES_KVM_EV_COUNT
};

/* A tracepoint program may not read the first 8 bytes of its context (the common_type /
 * common_flags / common_preempt_count / common_pid words; kernel tp_prog_is_valid_access()),
 * and no KVM field lives there. */
#define ES_KVM_RAW_BASE 8
#define ES_KVM_RAW_MAX  80 /* bytes copied: entry offsets 8..88 (kvm_exit on 6.18 ends at 72) */

/* Records of the tp_btf programs (probes/kvm/kvm_btf.bpf.c) carry no trace entry (the tracepoint's
 * TP_fast_assign has not run): raw[] holds the values the entry would hold, as __u64 words (word i
 * at raw + 8 * i) in the order of the matched BTF shape (probes/kvm/btf_shape.h), and
 * kvm_emulate_insn's 15 instruction bytes at ES_KVM_BTF_INSN_AT. The loader gives the decoder that
 * layout instead of the tracefs one, so the event id alone says which fields are where. */
#define ES_KVM_BTF_INSN_AT 24

struct es_kvm_event {
  __u64 time_ns;            /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
  __u32 tgid;               /* process (the VMM) */
  __u32 tid;                /* thread (a vCPU thread for most events) */
  __u16 event;              /* ES_KVM_EV_* */
  __u16 cpu;                /* host CPU */
  __u32 raw_len;            /* bytes of raw[] copied from the entry (0: the copy failed) */
  __u8 raw[ES_KVM_RAW_MAX]; /* tp: trace entry bytes from offset ES_KVM_RAW_BASE; tp_btf: see above */
};

#ifdef __cplusplus
static_assert(sizeof(struct es_kvm_event) == 104, "es_kvm_event ABI size");
#else
_Static_assert(sizeof(struct es_kvm_event) == 104, "es_kvm_event ABI size");
#endif

/* The per-CPU rings (probes/kvm/kvm_ring.bpf.h). Each CPU owns `ring_slots` es_kvm_event slots in
 * the `ring` map (an mmap-able array: CPU c's slot k is element c * ring_slots + k) and one
 * es_kvm_ring_ctl in `ring_ctl`. Only the BPF programs running on CPU c write its head, busy and
 * drops; only the loader writes its tail. The producer's and the consumer's words sit on separate
 * cache lines so neither side's writes evict the other's. Counters only grow (slot = count %
 * ring_slots, ring_slots a power of two). */
struct es_kvm_ring_ctl {
  __u64 head;  /* records published on this CPU (stored after the record's bytes) */
  __u64 busy;  /* 1 while a program on this CPU is between reserve and submit */
  __u64 drops; /* records lost on this CPU: its ring was full, or a program nested in another */
  __u64 pad0[5];
  __u64 tail; /* records the consumer has taken (stored after it has copied them) */
  __u64 pad1[7];
};

#ifdef __cplusplus
static_assert(sizeof(struct es_kvm_ring_ctl) == 128, "es_kvm_ring_ctl ABI size");
#else
_Static_assert(sizeof(struct es_kvm_ring_ctl) == 128, "es_kvm_ring_ctl ABI size");
#endif

#endif /* EXITSCOPE_KVM_EVENT_H */
