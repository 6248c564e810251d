// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* exitscope's KVM probes through BTF-typed raw tracepoints (tp_btf/<event>): the way to an event
 * when tracefs is not there or its format is one exitscope does not know, but the kernel's BTF
 * prototype (btf_trace_<event>) is one of the shapes probes/kvm/btf_shape.cpp lists. The loader
 * loads only the program of the matched shape (autoload), so a program written for another
 * kernel era's arguments is never handed to this kernel's verifier.
 *
 * A tp_btf program sees the tracepoint's arguments, not the trace entry: TP_fast_assign has not
 * run. Only events whose entry is a plain function of the arguments are here; kvm_exit,
 * kvm_nested_vmexit and kvm_entry are not, because their entries are filled by
 * kvm_x86_ops.get_exit_info() / get_entry_info() and kvm_rip_read() inside the tracepoint
 * (arch/x86/kvm/trace.h), which a program cannot repeat; they stay classic tracepoints (kvm.bpf.c).
 *
 * Each program computes what TP_fast_assign would store and writes it into es_kvm_event.raw as
 * __u64 words (word i at raw + 8 * i, zero-extended from the entry field's width, int fields
 * sign-extended), in the order of its shape's `words` list; kvm_emulate_insn's instruction bytes
 * follow at ES_KVM_BTF_INSN_AT. btf_layout() describes that to the decoder, which then runs as for
 * the tracefs layout.
 *
 * The kernel passes every argument as a u64 zero-extended from its own width (__bpf_trace_* in
 * include/trace/bpf_probe.h, CAST_TO_U64), so each is narrowed to its declared type here.
 *
 * Kernel structures are read with CO-RE: the structs below declare only the members read, with
 * preserve_access_index, and libbpf relocates their offsets against the running kernel's BTF
 * (vmlinux, or the kvm module's) at load time. No vmlinux.h is generated at build time, so the
 * build needs no BTF; this object is a separate one from kvm.bpf.c because libbpf loads the
 * kernel's BTF for any object with CO-RE relocations, which would stop the classic tracepoints
 * on a kernel without BTF.
 *
 * Settings and drop counting as in kvm.bpf.c; the loader makes `ring` and `ring_ctl` share
 * kvm.bpf.c's maps (bpf_map__reuse_fd), so the consumer reads one set of per-CPU rings. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "probes/kvm/kvm_event.h"

/* The members read, relocated by CO-RE (include/linux/kvm_host.h, arch/x86/include/asm/kvm_host.h,
 * arch/x86/kvm/lapic.h, arch/x86/kvm/kvm_emulate.h). */
struct fetch_cache {
  __u8 data[15];
  __u8* ptr;
} __attribute__((preserve_access_index));

struct x86_emulate_ctxt {
  unsigned long _eip;
  struct fetch_cache fetch;
} __attribute__((preserve_access_index));

struct kvm_vcpu_arch {
  struct x86_emulate_ctxt* emulate_ctxt; /* a pointer since 5.8; the loader checks (btf_shape.cpp) */
} __attribute__((preserve_access_index));

struct kvm_vcpu {
  int vcpu_id;
  struct kvm_vcpu_arch arch;
} __attribute__((preserve_access_index));

struct kvm_lapic {
  struct kvm_vcpu* vcpu;
} __attribute__((preserve_access_index));

#include "probes/kvm/kvm_ring.bpf.h"

static __always_inline int commit(struct es_kvm_event* e, __u32 words) { return es_kvm_submit(e, words * 8); }

#define WORDS(e) ((__u64*)(e)->raw)
#define S32(x)   ((__u64)(__s64)(__s32)(x)) /* an int argument, sign-extended like the tracefs decoder does */

/* kvm_pio(unsigned int rw, unsigned int port, unsigned int size, unsigned int count, const void *data):
 * the entry's val is the first 1, 2 or 4 bytes at data (vcpu->arch.pio_data), by size. */
SEC("tp_btf/kvm_pio")
int btf_kvm_pio(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_PIO);
  if (!e) return 0;
  const __u32 size = (__u32)ctx[2];
  const void* data = (const void*)ctx[4];
  __u32 val = 0;
  if (data) {
    if (size == 1) {
      __u8 b = 0;
      bpf_probe_read_kernel(&b, 1, data);
      val = b;
    } else if (size == 2) {
      __u16 h = 0;
      bpf_probe_read_kernel(&h, 2, data);
      val = h;
    } else {
      bpf_probe_read_kernel(&val, 4, data);
    }
  }
  WORDS(e)[0] = (__u32)ctx[0]; /* rw */
  WORDS(e)[1] = (__u32)ctx[1]; /* port */
  WORDS(e)[2] = size;
  WORDS(e)[3] = (__u32)ctx[3]; /* count */
  WORDS(e)[4] = val;
  return commit(e, 5);
}

/* kvm_mmio(int type, int len, u64 gpa, void *val) since 5.2: the entry's val is up to 8 bytes at val. */
SEC("tp_btf/kvm_mmio")
int btf_kvm_mmio(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_MMIO);
  if (!e) return 0;
  const __u32 len = (__u32)ctx[1];
  const void* src = (const void*)ctx[3];
  __u64 val = 0;
  if (src) bpf_probe_read_kernel(&val, len < 8 ? (len & 7) : 8, src);
  WORDS(e)[0] = (__u32)ctx[0]; /* type: KVM_TRACE_MMIO_* */
  WORDS(e)[1] = len;
  WORDS(e)[2] = ctx[2]; /* gpa */
  WORDS(e)[3] = val;
  return commit(e, 4);
}

/* kvm_mmio(int type, int len, u64 gpa, u64 val) before 5.2. */
SEC("tp_btf/kvm_mmio")
int btf_kvm_mmio_value(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_MMIO);
  if (!e) return 0;
  WORDS(e)[0] = (__u32)ctx[0];
  WORDS(e)[1] = (__u32)ctx[1];
  WORDS(e)[2] = ctx[2];
  WORDS(e)[3] = ctx[3];
  return commit(e, 4);
}

/* kvm_msr(unsigned write, u32 ecx, u64 data, bool exception) */
SEC("tp_btf/kvm_msr")
int btf_kvm_msr(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_MSR);
  if (!e) return 0;
  WORDS(e)[0] = (__u32)ctx[0];
  WORDS(e)[1] = (__u32)ctx[1];
  WORDS(e)[2] = ctx[2];
  WORDS(e)[3] = (__u8)ctx[3];
  return commit(e, 4);
}

/* kvm_userspace_exit(__u32 reason, int errno) (include/trace/events/kvm.h) */
SEC("tp_btf/kvm_userspace_exit")
int btf_kvm_userspace_exit(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_USERSPACE_EXIT);
  if (!e) return 0;
  WORDS(e)[0] = (__u32)ctx[0];
  WORDS(e)[1] = S32(ctx[1]);
  return commit(e, 2);
}

/* kvm_inj_virq(unsigned int vector, bool soft, bool reinjected) since 5.19. */
SEC("tp_btf/kvm_inj_virq")
int btf_kvm_inj_virq(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_INJ_VIRQ);
  if (!e) return 0;
  WORDS(e)[0] = (__u32)ctx[0];
  WORDS(e)[1] = (__u8)ctx[1];
  WORDS(e)[2] = (__u8)ctx[2];
  return commit(e, 3);
}

/* kvm_inj_virq(unsigned int irq) before 5.19. */
SEC("tp_btf/kvm_inj_virq")
int btf_kvm_inj_virq_irq(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_INJ_VIRQ);
  if (!e) return 0;
  WORDS(e)[0] = (__u32)ctx[0];
  return commit(e, 1);
}

/* kvm_inj_exception(unsigned exception, bool has_error, unsigned error_code, bool reinjected) since
 * 5.19; the entry keeps exception and has_error as u8. */
SEC("tp_btf/kvm_inj_exception")
int btf_kvm_inj_exception(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_INJ_EXCEPTION);
  if (!e) return 0;
  WORDS(e)[0] = (__u8)ctx[0];
  WORDS(e)[1] = (__u8)ctx[1];
  WORDS(e)[2] = (__u32)ctx[2];
  WORDS(e)[3] = (__u8)ctx[3];
  return commit(e, 4);
}

/* kvm_inj_exception(unsigned exception, bool has_error, unsigned error_code) before 5.19. */
SEC("tp_btf/kvm_inj_exception")
int btf_kvm_inj_exception_noreinj(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_INJ_EXCEPTION);
  if (!e) return 0;
  WORDS(e)[0] = (__u8)ctx[0];
  WORDS(e)[1] = (__u8)ctx[1];
  WORDS(e)[2] = (__u32)ctx[2];
  return commit(e, 3);
}

/* kvm_page_fault(struct kvm_vcpu *vcpu, u64 fault_address, u64 error_code) since 6.4; the entry's
 * guest_rip (kvm_rip_read(), which may ask the vendor module for RIP) is not repeated here. */
SEC("tp_btf/kvm_page_fault")
int btf_kvm_page_fault(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_PAGE_FAULT);
  if (!e) return 0;
  const struct kvm_vcpu* vcpu = (const struct kvm_vcpu*)ctx[0];
  WORDS(e)[0] = (__u32)BPF_CORE_READ(vcpu, vcpu_id);
  WORDS(e)[1] = ctx[1];
  WORDS(e)[2] = ctx[2];
  return commit(e, 3);
}

/* kvm_page_fault(unsigned long fault_address, unsigned int error_code) before 6.4. */
SEC("tp_btf/kvm_page_fault")
int btf_kvm_page_fault_addr(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_PAGE_FAULT);
  if (!e) return 0;
  WORDS(e)[0] = ctx[0];
  WORDS(e)[1] = (__u32)ctx[1];
  return commit(e, 2);
}

/* kvm_apic_accept_irq(__u32 apicid, __u16 dm, __u16 tm, __u8 vec) */
SEC("tp_btf/kvm_apic_accept_irq")
int btf_kvm_apic_accept_irq(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_APIC_ACCEPT_IRQ);
  if (!e) return 0;
  WORDS(e)[0] = (__u32)ctx[0];
  WORDS(e)[1] = (__u16)ctx[1];
  WORDS(e)[2] = (__u16)ctx[2];
  WORDS(e)[3] = (__u8)ctx[3];
  return commit(e, 4);
}

/* kvm_eoi(struct kvm_lapic *apic, int vector): the entry's apicid is apic->vcpu->vcpu_id. */
SEC("tp_btf/kvm_eoi")
int btf_kvm_eoi(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_EOI);
  if (!e) return 0;
  const struct kvm_lapic* apic = (const struct kvm_lapic*)ctx[0];
  WORDS(e)[0] = (__u32)BPF_CORE_READ(apic, vcpu, vcpu_id);
  WORDS(e)[1] = S32(ctx[1]);
  return commit(e, 2);
}

/* kvm_nested_vmexit_inject(__u32 exit_code, __u64 exit_info1, __u64 exit_info2, __u32 exit_int_info,
 * __u32 exit_int_info_err, __u32 isa) */
SEC("tp_btf/kvm_nested_vmexit_inject")
int btf_kvm_nested_vmexit_inject(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_NESTED_VMEXIT_INJECT);
  if (!e) return 0;
  WORDS(e)[0] = (__u32)ctx[0];
  WORDS(e)[1] = ctx[1];
  WORDS(e)[2] = ctx[2];
  WORDS(e)[3] = (__u32)ctx[3];
  WORDS(e)[4] = (__u32)ctx[4];
  WORDS(e)[5] = (__u32)ctx[5];
  return commit(e, 6);
}

/* kvm_nested_vmenter(__u64 rip, __u64 vmcb, __u64 nested_rip, __u32 int_ctl, __u32 event_inj,
 * bool tdp_enabled, __u64 guest_tdp_pgd, __u64 guest_cr3, __u32 isa) (5.12+): the entry's rip,
 * vmcb, nested_rip, int_ctl, event_inj and isa are the arguments as they are (guest_pgd, a choice
 * between two of them, is not decoded by exitscope). */
SEC("tp_btf/kvm_nested_vmenter")
int btf_kvm_nested_vmenter(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_NESTED_VMENTER);
  if (!e) return 0;
  WORDS(e)[0] = ctx[0];
  WORDS(e)[1] = ctx[1];
  WORDS(e)[2] = ctx[2];
  WORDS(e)[3] = (__u32)ctx[3];
  WORDS(e)[4] = (__u32)ctx[4];
  WORDS(e)[5] = (__u32)ctx[8];
  return commit(e, 6);
}

/* kvm_nested_vmrun(__u64 rip, __u64 vmcb, __u64 nested_rip, __u32 int_ctl, __u32 event_inj,
 * bool npt) (SVM only, 5.12 renamed it kvm_nested_vmenter): the same first five words as
 * kvm_nested_vmenter's; no isa (SVM). */
SEC("tp_btf/kvm_nested_vmrun")
int btf_kvm_nested_vmrun(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_NESTED_VMENTER);
  if (!e) return 0;
  WORDS(e)[0] = ctx[0];
  WORDS(e)[1] = ctx[1];
  WORDS(e)[2] = ctx[2];
  WORDS(e)[3] = (__u32)ctx[3];
  WORDS(e)[4] = (__u32)ctx[4];
  return commit(e, 5);
}

/* kvm_nested_intr_vmexit(__u64 rip) */
SEC("tp_btf/kvm_nested_intr_vmexit")
int btf_kvm_nested_intr_vmexit(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_NESTED_INTR_VMEXIT);
  if (!e) return 0;
  WORDS(e)[0] = ctx[0];
  return commit(e, 1);
}

/* kvm_emulate_insn(struct kvm_vcpu *vcpu, __u8 failed): as TP_fast_assign, len = bytes fetched
 * (fetch.ptr - fetch.data), rip = _eip - len, the 15 bytes of fetch.data. csbase and the mode
 * flags are not decoded by exitscope and not repeated. */
SEC("tp_btf/kvm_emulate_insn")
int btf_kvm_emulate_insn(__u64* ctx) {
  struct es_kvm_event* e = es_kvm_reserve(ES_KVM_EV_EMULATE_INSN);
  if (!e) return 0;
  const struct kvm_vcpu* vcpu = (const struct kvm_vcpu*)ctx[0];
  const struct x86_emulate_ctxt* ectx = BPF_CORE_READ(vcpu, arch.emulate_ctxt);
  const __u8* fetched = BPF_CORE_READ(ectx, fetch.ptr);
  const __u8* start = (const __u8*)__builtin_preserve_access_index(&ectx->fetch.data);
  const __u64 len = (__u64)(fetched - start);
  WORDS(e)[0] = BPF_CORE_READ(ectx, _eip) - len;
  WORDS(e)[1] = (__u8)len;
  WORDS(e)[2] = (__u8)ctx[1];
  /* a failed copy leaves raw_len short of the layout: the decoder counts the event undecodable */
  if (bpf_probe_read_kernel(e->raw + ES_KVM_BTF_INSN_AT, 15, start) != 0) return commit(e, 0);
  return es_kvm_submit(e, ES_KVM_BTF_INSN_AT + 15);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
