// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* exitscope's KVM probes: one classic tracepoint program per kvm event (tp/kvm/<event>), each
 * copying the trace entry into its CPU's ring (kvm_ring.bpf.h) as an es_kvm_event. Classic tracepoints, not
 * raw_tp / tp_btf, because most fields these events print are computed in TP_fast_assign
 * (kvm_exit's info1/info2/intr_info come from kvm_x86_ops.get_exit_info(), which a raw
 * tracepoint's arguments do not carry; arch/x86/kvm/trace.h); the entry, described by the
 * tracefs `format` file, is the only stable way to them across kernels. Where tracefs cannot
 * give an event (not mounted, or a format exitscope does not know), the loader may take the
 * event's tp_btf program in kvm_btf.bpf.c instead, if the kernel's BTF prototype is a known one.
 *
 * Settings are read-only globals set by the loader before load (libbpf-tools style; the first
 * two are declared in kvm_ring.bpf.h):
 *   filter_tgid   record only this process (0: every process)
 *   ring_slots    records per CPU ring
 * Records that do not fit in their CPU's ring are counted in that CPU's es_kvm_ring_ctl.drops,
 * never silently lost. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "probes/kvm/kvm_event.h"

/* Bytes of each event's entry after the common header (from its tracefs format). A program may
 * not read its context past the entry: perf_event_set_bpf_prog() refuses the attach with EACCES
 * when the verifier saw a larger context offset. The loader sets these before load, and .rodata
 * is frozen then, so the verifier knows each program's length as a constant and never walks the
 * loads of copy_entry() beyond it: each program reads exactly its entry, with plain loads. */
const volatile __u32 copy_len[ES_KVM_EV_COUNT] = {};

#include "probes/kvm/kvm_ring.bpf.h"

/* sched_process_fork: the forking task is the parent; its entry's child_pid is at byte 44 while
 * the comms were char[16] arrays and at byte 20 since they are __data_loc strings
 * (include/trace/events/sched.h). A tracepoint context is read only at constant offsets, so each
 * layout has its own program; the loader loads the one the tracefs format describes. */
/* What every "tp/" program returns. A tracepoint program's return value is a filter for the
 * tracepoint's perf events (perf_trace_run_bpf_submit() in kernel/events/core.c drops the
 * sample when it is 0): returning 0 made every kvm event - and every fork - invisible to perf,
 * `perf kvm stat record` included, on the whole host for as long as exitscope recorded (found by
 * the test bed's comparison with perf kvm stat). 1 passes the event on; tracefs is not affected
 * either way, and tp_btf programs' return values are ignored. */
#define ES_TP_PASS 1

static __always_inline int es_follow_fork(__u32 child) {
  const __u32 parent = (__u32)(bpf_get_current_pid_tgid() >> 32);
  if (!filter_tgid || !es_kvm_traced(parent)) return ES_TP_PASS;
  const __u32 one = 1;
  bpf_map_update_elem(&es_children, &child, &one, BPF_ANY);
  return ES_TP_PASS;
}
SEC("tp/sched/sched_process_fork")
int handle_fork_pid_at_20(void* ctx) { return es_follow_fork(*(const __u32*)((const __u8*)ctx + 20)); }
SEC("tp/sched/sched_process_fork")
int handle_fork_pid_at_44(void* ctx) { return es_follow_fork(*(const __u32*)((const __u8*)ctx + 44)); }

/* Copies entry bytes [ES_KVM_RAW_BASE, ES_KVM_RAW_BASE + n) in aligned 8/4/2/1-byte loads. Every
 * load is at a constant offset from the unmodified context pointer, as the verifier requires of
 * a tracepoint context (and aligned to its size: tp_prog_is_valid_access()). */
#define ES_CTX(type, off) (*(const type*)((const __u8*)ctx + ES_KVM_RAW_BASE + (off)))
#define ES_RAW(type, off) (*(type*)(dst + (off)))
#define ES_COPY_TAIL(at)                                                    \
  do {                                                                      \
    if (n >= (at) + 4) {                                                    \
      ES_RAW(__u32, at) = ES_CTX(__u32, at);                                \
      if (n >= (at) + 6) ES_RAW(__u16, (at) + 4) = ES_CTX(__u16, (at) + 4); \
      if (n >= (at) + 7) ES_RAW(__u8, (at) + 6) = ES_CTX(__u8, (at) + 6);   \
    } else if (n >= (at) + 2) {                                             \
      ES_RAW(__u16, at) = ES_CTX(__u16, at);                                \
      if (n >= (at) + 3) ES_RAW(__u8, (at) + 2) = ES_CTX(__u8, (at) + 2);   \
    } else if (n >= (at) + 1) {                                             \
      ES_RAW(__u8, at) = ES_CTX(__u8, at);                                  \
    }                                                                       \
  } while (0)
#define ES_COPY_WORD(k)    \
  if (n < 8 * (k) + 8) {   \
    ES_COPY_TAIL(8 * (k)); \
    return;                \
  }                        \
  ES_RAW(__u64, 8 * (k)) = ES_CTX(__u64, 8 * (k));

static __always_inline void copy_entry(__u8* dst, const void* ctx, const __u32 n) {
  _Static_assert(ES_KVM_RAW_MAX == 80, "copy_entry copies 10 words");
  // clang-format off
  ES_COPY_WORD(0) ES_COPY_WORD(1) ES_COPY_WORD(2) ES_COPY_WORD(3) ES_COPY_WORD(4)
  ES_COPY_WORD(5) ES_COPY_WORD(6) ES_COPY_WORD(7) ES_COPY_WORD(8) ES_COPY_WORD(9)
  // clang-format on
}

static __always_inline int emit(const void* ctx, __u16 event) {
  struct es_kvm_event* e = es_kvm_reserve(event);
  if (!e) return ES_TP_PASS;
  __u32 n = copy_len[event < ES_KVM_EV_COUNT ? event : 0];
  if (n > ES_KVM_RAW_MAX) n = ES_KVM_RAW_MAX;
  copy_entry(e->raw, ctx, n);
  es_kvm_submit(e, n);
  return ES_TP_PASS;
}

#define ES_KVM_PROG(name, id) \
  SEC("tp/kvm/" #name) int handle_##name(void* ctx) { return emit(ctx, id); }

ES_KVM_PROG(kvm_exit, ES_KVM_EV_EXIT)
ES_KVM_PROG(kvm_entry, ES_KVM_EV_ENTRY)
ES_KVM_PROG(kvm_inj_virq, ES_KVM_EV_INJ_VIRQ)
ES_KVM_PROG(kvm_inj_exception, ES_KVM_EV_INJ_EXCEPTION)
ES_KVM_PROG(kvm_nested_vmexit, ES_KVM_EV_NESTED_VMEXIT)
ES_KVM_PROG(kvm_nested_vmexit_inject, ES_KVM_EV_NESTED_VMEXIT_INJECT)
ES_KVM_PROG(kvm_nested_intr_vmexit, ES_KVM_EV_NESTED_INTR_VMEXIT)
ES_KVM_PROG(kvm_page_fault, ES_KVM_EV_PAGE_FAULT)
ES_KVM_PROG(kvm_emulate_insn, ES_KVM_EV_EMULATE_INSN)
ES_KVM_PROG(kvm_pio, ES_KVM_EV_PIO)
ES_KVM_PROG(kvm_mmio, ES_KVM_EV_MMIO)
ES_KVM_PROG(kvm_msr, ES_KVM_EV_MSR)
ES_KVM_PROG(kvm_userspace_exit, ES_KVM_EV_USERSPACE_EXIT)
ES_KVM_PROG(kvm_apic_accept_irq, ES_KVM_EV_APIC_ACCEPT_IRQ)
ES_KVM_PROG(kvm_eoi, ES_KVM_EV_EOI)
ES_KVM_PROG(kvm_nested_vmenter, ES_KVM_EV_NESTED_VMENTER)
/* Before Linux 5.12 SVM's emulated VMRUN is kvm_nested_vmrun (the loader attaches one of the two) */
ES_KVM_PROG(kvm_nested_vmrun, ES_KVM_EV_NESTED_VMENTER)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
