// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Example: an external eBPF program on exitscope's USDT probe `exitscope:record`
 * (probes/include/exitscope/probe_bus.h). Every record the hv core delivers is copied from the traced
 * process's memory into a ring buffer; es-usdt-tail (usdt_tail.cpp) prints them.
 *
 * The probe's arguments: arg0 = const struct es_record *, arg1 = kind, arg2 = id. Records the
 * ring cannot take are counted in `dropped`. */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "exitscope/record.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

__u64 dropped = 0;

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 22);
} records SEC(".maps");

SEC("usdt")
int BPF_USDT(on_record, const struct es_record* rec, long kind, __u64 id) {
  (void)kind;
  (void)id;
  struct es_record* out = bpf_ringbuf_reserve(&records, sizeof(*out), 0);
  if (!out) {
    __sync_fetch_and_add(&dropped, 1);
    return 0;
  }
  if (bpf_probe_read_user(out, sizeof(*out), rec) != 0) {
    bpf_ringbuf_discard(out, 0);
    __sync_fetch_and_add(&dropped, 1);
    return 0;
  }
  bpf_ringbuf_submit(out, 0);
  return 0;
}
