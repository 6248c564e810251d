// The BTF side of probes/kvm: tracepoint prototypes read from BTF (a BTF built here with libbpf,
// and the running kernel's), matched against the shapes the tp_btf programs are written for;
// a prototype exitscope does not know is refused naming the event and the kernel, and a tp_btf
// record decodes to what the trace entry of the same event decodes to.
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "probes/kvm/btf_shape.h"
#include "probes/kvm/kvm_btf.skel.h"
#include "probes/kvm/kvm_decode.h"
#include "probes/kvm/tracefs_format.h"

namespace {

using namespace es::kvm;

struct BtfFree {
  void operator()(struct btf* b) const { btf__free(b); }
};
using BtfPtr = std::unique_ptr<struct btf, BtfFree>;

// typedef void (*btf_trace_<event>)(void *, ARGS...) in `b`, ARGS given as type ids.
void add_tracepoint(struct btf* b, const std::string& event, const std::vector<int>& args) {
  const int void_ptr = btf__add_ptr(b, 0);
  const int proto = btf__add_func_proto(b, 0);
  ASSERT_GT(proto, 0);
  ASSERT_EQ(btf__add_func_param(b, "__data", void_ptr), 0);
  for (int a : args) ASSERT_EQ(btf__add_func_param(b, "", a), 0);
  const int ptr = btf__add_ptr(b, proto);
  ASSERT_GT(btf__add_typedef(b, ("btf_trace_" + event).c_str(), ptr), 0);
}

const BtfShape* must_match(int event, const Prototype& args) {
  auto s = match_shape(event, args, "6.18.44");
  EXPECT_TRUE(s) << s.error();
  return s ? *s : nullptr;
}

TEST(BtfShape, ReadsPrototypesThroughTypedefsAndQualifiers) {
  BtfPtr b(btf__new_empty());
  ASSERT_TRUE(b);
  struct btf* t = b.get();
  const int uint = btf__add_int(t, "unsigned int", 4, 0);
  const int sint = btf__add_int(t, "int", 4, BTF_INT_SIGNED);
  const int boolean = btf__add_int(t, "_Bool", 1, BTF_INT_BOOL);
  const int u64 = btf__add_int(t, "long long unsigned int", 8, 0);
  const int u32 = btf__add_typedef(t, "u32", uint);  // kernel spellings reach the same words
  const int kvm_u32 = btf__add_typedef(t, "__u32", u32);
  const int vcpu = btf__add_struct(t, "kvm_vcpu", 8);
  const int vcpu_ptr = btf__add_ptr(t, vcpu);
  const int cvoid = btf__add_const(t, 0);
  const int cvoid_ptr = btf__add_ptr(t, cvoid);
  add_tracepoint(t, "kvm_inj_virq", {uint, boolean, boolean});
  add_tracepoint(t, "kvm_userspace_exit", {kvm_u32, sint});
  add_tracepoint(t, "kvm_page_fault", {vcpu_ptr, u64, u64});
  add_tracepoint(t, "kvm_pio", {uint, uint, uint, uint, cvoid_ptr});

  auto p = read_prototype(t, "kvm_inj_virq");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(to_string("kvm_inj_virq", *p), "btf_trace_kvm_inj_virq(u32, bool, bool)");
  p = read_prototype(t, "kvm_userspace_exit");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(*p, (Prototype{"u32", "s32"}));
  p = read_prototype(t, "kvm_page_fault");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(*p, (Prototype{"struct kvm_vcpu *", "u64", "u64"}));
  p = read_prototype(t, "kvm_pio");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(*p, (Prototype{"u32", "u32", "u32", "u32", "void *"}));
  EXPECT_EQ(must_match(ES_KVM_EV_PIO, *p)->program, "btf_kvm_pio");

  auto missing = read_prototype(t, "kvm_exit");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("btf_trace_kvm_exit"), std::string::npos) << missing.error();
  // A typedef of that name that is not a tracepoint prototype.
  ASSERT_GT(btf__add_typedef(t, "btf_trace_kvm_eoi", uint), 0);
  auto odd = read_prototype(t, "kvm_eoi");
  ASSERT_FALSE(odd);
  EXPECT_NE(odd.error().find("not a pointer to a tracepoint function prototype"), std::string::npos) << odd.error();
}

TEST(BtfShape, EachEraOfAnEventGetsItsOwnProgram) {
  // kvm_inj_virq / kvm_inj_exception before and since 5.19 (reinjected), kvm_page_fault before
  // and since 6.4 (the vCPU), kvm_mmio before and since 5.2 (val by pointer).
  EXPECT_EQ(must_match(ES_KVM_EV_INJ_VIRQ, {"u32", "bool", "bool"})->program, "btf_kvm_inj_virq");
  EXPECT_EQ(must_match(ES_KVM_EV_INJ_VIRQ, {"u32"})->program, "btf_kvm_inj_virq_irq");
  EXPECT_EQ(must_match(ES_KVM_EV_INJ_EXCEPTION, {"u32", "bool", "u32", "bool"})->program, "btf_kvm_inj_exception");
  EXPECT_EQ(must_match(ES_KVM_EV_INJ_EXCEPTION, {"u32", "bool", "u32"})->program, "btf_kvm_inj_exception_noreinj");
  EXPECT_EQ(must_match(ES_KVM_EV_PAGE_FAULT, {"struct kvm_vcpu *", "u64", "u64"})->program, "btf_kvm_page_fault");
  EXPECT_EQ(must_match(ES_KVM_EV_PAGE_FAULT, {"u64", "u32"})->program, "btf_kvm_page_fault_addr");
  EXPECT_EQ(must_match(ES_KVM_EV_MMIO, {"s32", "s32", "u64", "void *"})->program, "btf_kvm_mmio");
  EXPECT_EQ(must_match(ES_KVM_EV_MMIO, {"s32", "s32", "u64", "u64"})->program, "btf_kvm_mmio_value");
  EXPECT_EQ(must_match(ES_KVM_EV_EOI, {"struct kvm_lapic *", "s32"})->program, "btf_kvm_eoi");
  EXPECT_EQ(must_match(ES_KVM_EV_EMULATE_INSN, {"struct kvm_vcpu *", "u8"})->program, "btf_kvm_emulate_insn");
  // kvm_nested_vmenter since 5.12 (arch/x86/kvm/trace.h): rip, vmcb, nested_rip, int_ctl,
  // event_inj, tdp_enabled, guest_tdp_pgd, guest_cr3, isa.
  EXPECT_EQ(
      must_match(ES_KVM_EV_NESTED_VMENTER, {"u64", "u64", "u64", "u32", "u32", "bool", "u64", "u64", "u32"})->program,
      "btf_kvm_nested_vmenter");
  // The older era's layout says what it lacks, as the tracefs layout of that era does.
  const BtfShape* old = must_match(ES_KVM_EV_INJ_VIRQ, {"u32"});
  ASSERT_NE(old, nullptr);
  const EventLayout l = btf_layout(*old);
  EXPECT_FALSE(l.has(kReinjected));
  EXPECT_EQ(l.optional_missing, (std::vector<std::string>{"soft", "reinjected"}));
  EXPECT_EQ(l.copy_len, 8u);
}

TEST(BtfShape, UnknownPrototypeIsRefusedNamingEventAndKernel) {
  // A kernel that gave kvm_pio's port as u16: a program reading the old positions would record
  // garbage, so the event is refused.
  auto r = match_shape(ES_KVM_EV_PIO, {"u32", "u16", "u32", "u32", "void *"}, "9.9.9-test");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("kvm_pio on kernel 9.9.9-test"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("btf_trace_kvm_pio(u32, u16, u32, u32, void *)"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("not one exitscope knows"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("(u32, u32, u32, u32, void *)"), std::string::npos) << r.error();  // what it knows
  // One argument more than any known era.
  EXPECT_FALSE(match_shape(ES_KVM_EV_INJ_VIRQ, {"u32", "bool", "bool", "bool"}, "9.9.9-test"));
  // A struct pointer where a number was.
  EXPECT_FALSE(match_shape(ES_KVM_EV_EOI, {"struct kvm_vcpu *", "s32"}, "9.9.9-test"));
  // Never through tp_btf, whatever the prototype: the fields are computed inside the tracepoint.
  for (int e : {ES_KVM_EV_EXIT, ES_KVM_EV_NESTED_VMEXIT, ES_KVM_EV_ENTRY}) {
    auto x = match_shape(e, {"struct kvm_vcpu *", "u32"}, "6.18.44");
    ASSERT_FALSE(x);
    EXPECT_NE(x.error().find(std::string(kEventNames[static_cast<size_t>(e)]) + " on kernel 6.18.44"),
              std::string::npos)
        << x.error();
    EXPECT_NE(x.error().find("TP_fast_assign"), std::string::npos) << x.error();
  }
}

TEST(BtfShape, EveryShapeHasAProgramAndDistinctArguments) {
  for (const BtfShape& s : btf_shapes()) {
    EXPECT_EQ(s.program.substr(0, 4), "btf_") << s.program;
    EXPECT_FALSE(s.words.empty()) << s.program;
    EXPECT_LE(s.words.size() * 8, s.insn ? size_t{ES_KVM_BTF_INSN_AT} : size_t{ES_KVM_RAW_MAX}) << s.program;
    for (const BtfShape& o : btf_shapes()) {
      if (&o != &s && o.event == s.event) {
        EXPECT_NE(o.args, s.args) << s.program << " and " << o.program;
      }
    }
  }
}

std::string read_data(const std::string& name) {
  std::ifstream in(std::string(ES_KVM_TEST_DATA) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A tp_btf record of kvm_inj_exception (words as kvm_btf.bpf.c writes them) and the trace entry
// of the same injection (at the 6.18 format's offsets) decode to the same event.
TEST(BtfShape, TpBtfRecordDecodesLikeTheTraceEntry) {
  auto fmt = parse_format(read_data("kvm_inj_exception-6.18.format"), "f");
  ASSERT_TRUE(fmt) << fmt.error();
  auto tp_layout = resolve_layout(ES_KVM_EV_INJ_EXCEPTION, *fmt, "6.18.44");
  ASSERT_TRUE(tp_layout) << tp_layout.error();
  const BtfShape* shape = must_match(ES_KVM_EV_INJ_EXCEPTION, {"u32", "bool", "u32", "bool"});
  ASSERT_NE(shape, nullptr);

  es_kvm_event entry{};  // #GP(0x18), reinjected
  entry.event = ES_KVM_EV_INJ_EXCEPTION;
  entry.raw_len = tp_layout->copy_len;
  const uint32_t err = 0x18;
  entry.raw[8 - ES_KVM_RAW_BASE] = 13;
  entry.raw[9 - ES_KVM_RAW_BASE] = 1;
  std::memcpy(entry.raw + 12 - ES_KVM_RAW_BASE, &err, 4);
  entry.raw[16 - ES_KVM_RAW_BASE] = 1;

  es_kvm_event rec{};
  rec.event = ES_KVM_EV_INJ_EXCEPTION;
  const uint64_t words[4] = {13, 1, 0x18, 1};
  std::memcpy(rec.raw, words, sizeof words);
  rec.raw_len = sizeof words;

  Decoder::Layouts by_tp, by_btf;
  by_tp[ES_KVM_EV_INJ_EXCEPTION] = *tp_layout;
  by_btf[ES_KVM_EV_INJ_EXCEPTION] = btf_layout(*shape);
  es::kvmtrace::KvmEvent a, b;
  ASSERT_TRUE(Decoder(by_tp).decode(entry, a));
  ASSERT_TRUE(Decoder(by_btf).decode(rec, b));
  EXPECT_EQ(a.event, es::kvmtrace::Tracepoint::InjException);
  EXPECT_EQ(b.event, a.event);
  ASSERT_TRUE(a.injected);
  ASSERT_TRUE(b.injected);
  EXPECT_EQ(b.injected->word, a.injected->word);
  EXPECT_EQ(b.injected->error_code, 0x18u);
  EXPECT_EQ(b.injected->error_code, a.injected->error_code);
  EXPECT_TRUE(b.injected->reinjected);
  EXPECT_EQ(b.injected->reinjected_printed_era, a.injected->reinjected_printed_era);
  rec.raw_len = 16;  // a short record (failed copy) is not decoded as zeros
  EXPECT_FALSE(Decoder(by_btf).decode(rec, b));
}

// The running kernel's BTF: the prototypes of the events whose arguments have not changed for
// years are the known shapes; kvm_exit is never a tp_btf event.
TEST(BtfShape, ThisKernelsPrototypes) {
  if (::access("/sys/kernel/btf/vmlinux", R_OK) != 0)
    GTEST_SKIP() << "this kernel has no readable BTF (/sys/kernel/btf/vmlinux), so it has no tp_btf";
  auto k = KernelBtf::load();
  ASSERT_TRUE(k) << k.error();
  auto pio = k->prototype("kvm_pio");
  if (!pio)
    GTEST_SKIP() << "no kvm tracepoints in this kernel's BTF (KVM not built or its module not loaded): " << pio.error();
  for (const char* event :
       {"kvm_pio", "kvm_userspace_exit", "kvm_msr", "kvm_nested_vmexit_inject", "kvm_nested_vmenter"}) {
    auto p = k->prototype(event);
    ASSERT_TRUE(p) << event << ": " << p.error();
    auto s = match_shape(event_index(event), *p, "this kernel");
    EXPECT_TRUE(s) << s.error();
  }
  auto exit = k->prototype("kvm_exit");
  ASSERT_TRUE(exit) << exit.error();
  EXPECT_FALSE(match_shape(ES_KVM_EV_EXIT, *exit, "this kernel"));
  EXPECT_FALSE(k->prototype("kvm_no_such_event"));
}

// Every tp_btf program, also those of the eras this kernel is not (kvm_inj_virq(irq),
// kvm_page_fault(address, error_code) ...), passes this kernel's verifier when loaded for a
// tracepoint with exactly its prototype: the event itself, or a stand-in with the same argument
// words (kvm_pml_full(unsigned int) for kvm_inj_virq(irq)). Loaded only, never attached. A shape
// no tracepoint here shares is listed, not checked.
TEST(BtfShape, EveryProgramPassesTheVerifierForItsPrototype) {
  if (::geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root (run the tests as root)";
  if (::access("/sys/kernel/btf/vmlinux", R_OK) != 0)
    GTEST_SKIP() << "this kernel has no readable BTF (/sys/kernel/btf/vmlinux), so it has no tp_btf";
  BtfPtr vmlinux(btf__load_vmlinux_btf());
  ASSERT_TRUE(vmlinux);
  std::map<Prototype, std::string> tracepoint_of;  // the first tracepoint with each prototype
  const std::string prefix = "btf_trace_";
  for (uint32_t id = 1; id < btf__type_cnt(vmlinux.get()); ++id) {
    const btf_type* t = btf__type_by_id(vmlinux.get(), id);
    const char* n = btf__name_by_offset(vmlinux.get(), t->name_off);
    if (!btf_is_typedef(t) || !n || std::string_view(n).substr(0, prefix.size()) != prefix) continue;
    const std::string tp(n + prefix.size());
    if (auto p = read_prototype(vmlinux.get(), tp)) tracepoint_of.emplace(*p, tp);
  }
  if (!tracepoint_of.count({"u32", "u32", "u32", "u32", "void *"}))
    GTEST_SKIP() << "no kvm tracepoints in this kernel's vmlinux BTF (KVM is a module or not built)";
  auto kernel = KernelBtf::load();
  ASSERT_TRUE(kernel) << kernel.error();
  std::string unchecked;
  for (const BtfShape& s : btf_shapes()) {
    const Prototype args(s.args.begin(), s.args.end());
    const std::string own(kEventNames[static_cast<size_t>(s.event)]);
    auto pr = kernel->prototype(own);
    const std::string target = pr && *pr == args ? own : tracepoint_of.count(args) ? tracepoint_of[args] : "";
    if (target.empty()) {
      unchecked += " " + std::string(s.program);
      continue;
    }
    kvm_btf_bpf* skel = kvm_btf_bpf__open();
    ASSERT_NE(skel, nullptr);
    bpf_program* prog = nullptr;
    bpf_object__for_each_program(prog, skel->obj) bpf_program__set_autoload(prog, false);
    prog = bpf_object__find_program_by_name(skel->obj, std::string(s.program).c_str());
    ASSERT_NE(prog, nullptr) << s.program;
    bpf_program__set_autoload(prog, true);
    ASSERT_EQ(bpf_program__set_attach_target(prog, 0, target.c_str()), 0);
    EXPECT_EQ(kvm_btf_bpf__load(skel), 0) << s.program << " for " << target << " (" << to_string(target, args) << ")";
    kvm_btf_bpf__destroy(skel);
  }
  if (!unchecked.empty()) std::printf("no tracepoint of this kernel has the prototype of:%s\n", unchecked.c_str());
}

}  // namespace
