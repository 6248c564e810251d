/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The ring side every exitscope KVM program shares (kvm.bpf.c, kvm_btf.bpf.c): one
 * single-producer ring per CPU in an mmap-able array map, read by the loader without wakeups
 * (the layout: es_kvm_ring_ctl in kvm_event.h).
 *
 * Why not a BPF_MAP_TYPE_RINGBUF: its reservation takes a spinlock with interrupts off, and its
 * submit checks whether to wake the reader; together with the wakeup query they were about a
 * third of a tracepoint program's cost on a KVM exit path (perf, BENCHMARKS "KVM recorder").
 * Here a record costs two inlined array lookups and a few plain loads and stores.
 *
 * One producer per CPU: tracepoint programs run with preemption off, so only programs on CPU c
 * touch CPU c's head. A program can still run nested in another on the same CPU (a tp_btf
 * program from an interrupt while a classic one runs); `busy` turns the inner one into a counted
 * drop instead of a torn record.
 *
 * Ordering: the record's bytes are stored before head (a compiler barrier keeps the order in
 * the program, and x86 does not reorder stores with older stores: SDM Vol. 3A, "Memory Ordering in P6 and More
 * Recent Processor Families"); the
 * loader reads head with acquire semantics before the record and stores tail with release
 * semantics after copying it. KVM's x86 tracepoints exist only on x86 hosts.
 *
 * Each object that includes this gets its own copy of the settings and maps below; the loader
 * sets both objects' settings alike and points both at one pair of maps. Every es_kvm_reserve()
 * that returns a record must be followed by es_kvm_submit(): unlike a ringbuf reservation, the
 * verifier does not check that, and a missing submit would leave the CPU's ring busy. */
#ifndef EXITSCOPE_KVM_RING_BPF_H
#define EXITSCOPE_KVM_RING_BPF_H

#define ES_KVM_BARRIER() asm volatile("" ::: "memory")

/* Set by the loader before load. */
const volatile __u32 filter_tgid = 0;     /* record only this process (0: every process) */
const volatile __u32 follow_children = 0; /* also the processes it starts, at any depth (es_children) */
const volatile __u32 ring_slots = 1;      /* records per CPU ring, a power of two */

/* The processes filter_tgid started (and theirs), filled by kvm.bpf.c's sched_process_fork
 * program when follow_children is set: `record --kvm -- sh -c "qemu ..."` records the QEMU the
 * shell starts. Keys are the new tasks' pids (a new process's pid is its tgid; a new thread's pid
 * is a key no event ever looks up). Shared by both objects like the rings. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, __u32);
  __type(value, __u32);
  __uint(max_entries, 16384);
} es_children SEC(".maps");

static __always_inline int es_kvm_traced(__u32 tgid) {
  if (!filter_tgid || tgid == filter_tgid) return 1;
  return follow_children && bpf_map_lookup_elem(&es_children, &tgid) != 0;
}

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, struct es_kvm_event);
  __uint(max_entries, 1); /* possible CPUs * ring_slots, set by the loader */
} ring SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, struct es_kvm_ring_ctl);
  __uint(max_entries, 1); /* possible CPUs, set by the loader */
} ring_ctl SEC(".maps");

/* NULL when the event is filtered out, or when it cannot be written (counted in drops). */
static __always_inline struct es_kvm_event* es_kvm_reserve(__u16 event) {
  const __u64 pid_tgid = bpf_get_current_pid_tgid();
  const __u32 tgid = (__u32)(pid_tgid >> 32);
  if (!es_kvm_traced(tgid)) return 0;
  __u32 cpu = bpf_get_smp_processor_id();
  struct es_kvm_ring_ctl* c = bpf_map_lookup_elem(&ring_ctl, &cpu);
  if (!c) return 0; /* not a possible CPU: cannot happen */
  if (c->busy) {
    __sync_fetch_and_add(&c->drops, 1);
    return 0;
  }
  c->busy = 1;
  ES_KVM_BARRIER();
  const __u64 head = c->head;
  const __u64 tail = *(volatile __u64*)&c->tail;
  if (head - tail >= ring_slots) {
    __sync_fetch_and_add(&c->drops, 1);
    ES_KVM_BARRIER();
    c->busy = 0;
    return 0;
  }
  __u32 slot = cpu * ring_slots + (__u32)(head & (ring_slots - 1));
  struct es_kvm_event* e = bpf_map_lookup_elem(&ring, &slot);
  if (!e) {
    c->busy = 0;
    return 0;
  }
  e->time_ns = bpf_ktime_get_ns();
  e->tgid = tgid;
  e->tid = (__u32)pid_tgid;
  e->event = event;
  e->cpu = (__u16)cpu;
  return e;
}

/* raw_len: bytes valid in raw[]. Publishes the record to the loader. */
static __always_inline int es_kvm_submit(struct es_kvm_event* e, __u32 raw_len) {
  e->raw_len = raw_len;
  __u32 cpu = e->cpu;
  struct es_kvm_ring_ctl* c = bpf_map_lookup_elem(&ring_ctl, &cpu);
  if (!c) return 0;
  ES_KVM_BARRIER();
  c->head = c->head + 1;
  ES_KVM_BARRIER();
  c->busy = 0;
  return 0;
}

#endif /* EXITSCOPE_KVM_RING_BPF_H */
