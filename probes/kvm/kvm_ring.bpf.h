/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The ring-buffer side every exitscope KVM program shares (kvm.bpf.c, kvm_btf.bpf.c): reserve an
 * es_kvm_event with its header filled, submit it with the batching wakeup. Include after the
 * object's own `filter_tgid`, `wakeup_bytes`, `drops` and `events` (each object has its own; the
 * loader points both at one ring). */
#ifndef EXITSCOPE_KVM_RING_BPF_H
#define EXITSCOPE_KVM_RING_BPF_H

/* NULL when the event is filtered out, or when the ring is full (counted in drops[cpu]). */
static __always_inline struct es_kvm_event *es_kvm_reserve(__u16 event) {
  const __u64 pid_tgid = bpf_get_current_pid_tgid();
  const __u32 tgid = (__u32)(pid_tgid >> 32);
  if (filter_tgid && tgid != filter_tgid) return 0;
  const __u32 cpu = bpf_get_smp_processor_id();
  struct es_kvm_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    if (cpu < ES_KVM_MAX_CPUS) __sync_fetch_and_add(&drops[cpu], 1);
    return 0;
  }
  e->time_ns = bpf_ktime_get_ns();
  e->tgid = tgid;
  e->tid = (__u32)pid_tgid;
  e->event = event;
  e->cpu = (__u16)cpu;
  return e;
}

/* raw_len: bytes valid in raw[]. The consumer is woken only once wakeup_bytes wait (0: every event). */
static __always_inline int es_kvm_submit(struct es_kvm_event *e, __u32 raw_len) {
  e->raw_len = raw_len;
  __u64 flags = BPF_RB_NO_WAKEUP;
  if (!wakeup_bytes || bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes) flags = BPF_RB_FORCE_WAKEUP;
  bpf_ringbuf_submit(e, flags);
  return 0;
}

#endif /* EXITSCOPE_KVM_RING_BPF_H */
