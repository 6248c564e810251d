// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* exitscope's KVM probes: one classic tracepoint program per kvm event (tp/kvm/<event>), each
 * copying the trace entry into the ring buffer as an es_kvm_event. Classic tracepoints, not
 * raw_tp / tp_btf, because most fields these events print are computed in TP_fast_assign
 * (kvm_exit's info1/info2/intr_info come from kvm_x86_ops.get_exit_info(), which a raw
 * tracepoint's arguments do not carry; arch/x86/kvm/trace.h); the entry, described by the
 * tracefs `format` file, is the only stable way to them across kernels. Where tracefs cannot
 * give an event (not mounted, or a format exitscope does not know), the loader may take the
 * event's tp_btf program in kvm_btf.bpf.c instead, if the kernel's BTF prototype is a known one.
 *
 * Settings are read-only globals set by the loader before load (libbpf-tools style):
 *   filter_tgid   record only this process (0: every process)
 *   wakeup_bytes  wake the consumer only once this much data waits (batching; 0: every event)
 * Records that do not fit in the ring are counted per CPU in `drops` (a global array the
 * loader reads through the skeleton's mmap of .bss), never silently lost. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "probes/kvm/kvm_event.h"

const volatile __u32 filter_tgid = 0;
const volatile __u64 wakeup_bytes = 0;
/* Bytes of each event's entry after the common header (from its tracefs format): a program may
 * not read its context past the entry (perf_event_set_bpf_prog() refuses the attach with
 * EACCES when the verifier saw a larger context offset), so the copy goes through
 * bpf_probe_read_kernel() with this length. */
const volatile __u32 copy_len[ES_KVM_EV_COUNT] = {};

__u64 drops[ES_KVM_MAX_CPUS] = {};

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20); /* resized by the loader before load (per CPU count) */
} events SEC(".maps");

#include "probes/kvm/kvm_ring.bpf.h"

static __always_inline int emit(const void *ctx, __u16 event) {
  struct es_kvm_event *e = es_kvm_reserve(event);
  if (!e) return 0;
  __u32 n = copy_len[event < ES_KVM_EV_COUNT ? event : 0];
  if (n > ES_KVM_RAW_MAX) n = ES_KVM_RAW_MAX;
  if (bpf_probe_read_kernel(e->raw, n, (const char *)ctx + ES_KVM_RAW_BASE) != 0) n = 0;
  return es_kvm_submit(e, n);
}

#define ES_KVM_PROG(name, id) \
  SEC("tp/kvm/" #name) int handle_##name(void *ctx) { return emit(ctx, id); }

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

char LICENSE[] SEC("license") = "Dual BSD/GPL";
