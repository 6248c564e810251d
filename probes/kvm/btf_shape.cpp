#include "probes/kvm/btf_shape.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "probes/kvm/kvm_event.h"

namespace es::kvm {

namespace {

// Skips typedefs and qualifiers (const, volatile, restrict, type tags).
const btf_type* skip_mods(const struct btf* b, uint32_t& id) {
  for (int guard = 0; guard < 64; ++guard) {
    if (id == 0) return nullptr;  // void
    const btf_type* t = btf__type_by_id(b, id);
    if (!t) return nullptr;
    switch (btf_kind(t)) {
      case BTF_KIND_TYPEDEF:
      case BTF_KIND_CONST:
      case BTF_KIND_VOLATILE:
      case BTF_KIND_RESTRICT:
      case BTF_KIND_TYPE_TAG: id = t->type; continue;
      default: return t;
    }
  }
  return nullptr;
}

std::string word_of(const struct btf* b, uint32_t id) {
  const btf_type* t = skip_mods(b, id);
  if (!t) return id == 0 ? "void" : "?";
  switch (btf_kind(t)) {
    case BTF_KIND_INT: {
      const uint32_t enc = btf_int_encoding(t);
      if (enc & BTF_INT_BOOL) return "bool";
      const uint32_t bits = t->size * 8;
      if (bits != 8 && bits != 16 && bits != 32 && bits != 64) return "?";
      return std::string(enc & BTF_INT_SIGNED ? "s" : "u") + std::to_string(bits);
    }
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64: return "enum" + std::to_string(t->size);
    case BTF_KIND_PTR: {
      uint32_t to = t->type;
      const btf_type* p = skip_mods(b, to);
      if (!p) return to == 0 ? "void *" : "ptr";
      if (btf_kind(p) == BTF_KIND_STRUCT || btf_kind(p) == BTF_KIND_UNION || btf_kind(p) == BTF_KIND_FWD) {
        const char* n = btf__name_by_offset(b, p->name_off);
        const bool is_union = btf_kind(p) == BTF_KIND_UNION || (btf_kind(p) == BTF_KIND_FWD && btf_kflag(p));
        return std::string(is_union ? "union " : "struct ") + (n ? n : "") + " *";
      }
      return "ptr";
    }
    default: return "?";
  }
}

// Where each event's values go, in record words; see kvm_btf.bpf.c for what computes each.
std::vector<BtfShape> make_shapes() {
  std::vector<BtfShape> s;
  auto add = [&](int event, std::string_view program, std::string_view era, std::vector<std::string_view> args,
                 std::vector<Slot> words, bool insn = false) {
    s.push_back(BtfShape{event, program, era, std::move(args), std::move(words), insn});
  };
  add(ES_KVM_EV_PIO, "btf_kvm_pio", "every kernel exitscope knows", {"u32", "u32", "u32", "u32", "void *"},
      {kRw, kPort, kSize, kCount, kVal});
  add(ES_KVM_EV_MMIO, "btf_kvm_mmio", "5.2+", {"s32", "s32", "u64", "void *"}, {kType, kLen, kGpa, kVal});
  add(ES_KVM_EV_MMIO, "btf_kvm_mmio_value", "before 5.2", {"s32", "s32", "u64", "u64"}, {kType, kLen, kGpa, kVal});
  add(ES_KVM_EV_MSR, "btf_kvm_msr", "every kernel exitscope knows", {"u32", "u32", "u64", "bool"},
      {kWrite, kEcx, kData, kException});
  add(ES_KVM_EV_USERSPACE_EXIT, "btf_kvm_userspace_exit", "every kernel exitscope knows", {"u32", "s32"},
      {kReason, kErrno});
  add(ES_KVM_EV_INJ_VIRQ, "btf_kvm_inj_virq", "5.19+", {"u32", "bool", "bool"}, {kVector, kSoft, kReinjected});
  add(ES_KVM_EV_INJ_VIRQ, "btf_kvm_inj_virq_irq", "before 5.19", {"u32"}, {kVector});
  add(ES_KVM_EV_INJ_EXCEPTION, "btf_kvm_inj_exception", "5.19+", {"u32", "bool", "u32", "bool"},
      {kException, kHasError, kErrorCode, kReinjected});
  add(ES_KVM_EV_INJ_EXCEPTION, "btf_kvm_inj_exception_noreinj", "before 5.19", {"u32", "bool", "u32"},
      {kException, kHasError, kErrorCode});
  add(ES_KVM_EV_PAGE_FAULT, "btf_kvm_page_fault", "6.4+", {"struct kvm_vcpu *", "u64", "u64"},
      {kVcpu, kAddress, kErrorCode});
  add(ES_KVM_EV_PAGE_FAULT, "btf_kvm_page_fault_addr", "before 6.4", {"u64", "u32"}, {kAddress, kErrorCode});
  add(ES_KVM_EV_APIC_ACCEPT_IRQ, "btf_kvm_apic_accept_irq", "every kernel exitscope knows", {"u32", "u16", "u16", "u8"},
      {kApicid, kDm, kTm, kVector});
  add(ES_KVM_EV_EOI, "btf_kvm_eoi", "every kernel exitscope knows", {"struct kvm_lapic *", "s32"}, {kApicid, kVector});
  add(ES_KVM_EV_NESTED_VMEXIT_INJECT, "btf_kvm_nested_vmexit_inject", "every kernel exitscope knows",
      {"u32", "u64", "u64", "u32", "u32", "u32"}, {kReason, kInfo1, kInfo2, kIntrInfo, kErrorCode, kIsa});
  add(ES_KVM_EV_NESTED_INTR_VMEXIT, "btf_kvm_nested_intr_vmexit", "every kernel exitscope knows", {"u64"}, {kRip});
  add(ES_KVM_EV_NESTED_VMENTER, "btf_kvm_nested_vmenter", "5.12+",
      {"u64", "u64", "u64", "u32", "u32", "bool", "u64", "u64", "u32"},
      {kRip, kVmcb, kNestedRip, kIntCtl, kEventInj, kIsa});
  add(ES_KVM_EV_NESTED_VMENTER, "btf_kvm_nested_vmrun", "before 5.12 (kvm_nested_vmrun, SVM only)",
      {"u64", "u64", "u64", "u32", "u32", "bool"}, {kRip, kVmcb, kNestedRip, kIntCtl, kEventInj});
  add(ES_KVM_EV_EMULATE_INSN, "btf_kvm_emulate_insn", "5.8+ (emulate_ctxt a pointer)", {"struct kvm_vcpu *", "u8"},
      {kRip, kLen, kFailed}, true);
  return s;
}

std::string join(const std::vector<std::string_view>& args) {
  std::string s = "(";
  for (size_t i = 0; i < args.size(); ++i) s += std::string(i ? ", " : "") + std::string(args[i]);
  return s + ")";
}

}  // namespace

std::string to_string(std::string_view event, const Prototype& args) {
  std::string s = "btf_trace_" + std::string(event) + "(";
  for (size_t i = 0; i < args.size(); ++i) s += (i ? ", " : "") + args[i];
  return s + ")";
}

Result<Prototype> read_prototype(const struct btf* b, std::string_view event) {
  const std::string name = "btf_trace_" + std::string(event);
  const int id = btf__find_by_name_kind(b, name.c_str(), BTF_KIND_TYPEDEF);
  if (id < 0) return Error{"its BTF has no " + name + " (the kernel has no such tracepoint)"};
  uint32_t ptr_id = btf__type_by_id(b, static_cast<uint32_t>(id))->type;
  const btf_type* ptr = skip_mods(b, ptr_id);
  uint32_t proto_id = ptr && btf_is_ptr(ptr) ? ptr->type : 0;
  const btf_type* proto = ptr && btf_is_ptr(ptr) ? skip_mods(b, proto_id) : nullptr;
  if (!proto || !btf_is_func_proto(proto) || btf_vlen(proto) < 1)
    return Error{"its BTF's " + name + " is not a pointer to a tracepoint function prototype"};
  Prototype args;
  const btf_param* p = btf_params(proto);
  for (uint16_t i = 1; i < btf_vlen(proto); ++i) args.push_back(word_of(b, p[i].type));  // [0]: void *__data
  return args;
}

void KernelBtf::Free::operator()(struct btf* b) const { btf__free(b); }

Result<KernelBtf> KernelBtf::load() {
  KernelBtf k;
  struct btf* v = btf__load_vmlinux_btf();
  if (!v) {
    const int err = errno;
    return Error{std::string("the kernel has no BTF (/sys/kernel/btf/vmlinux: ") + std::strerror(err) +
                 "; a kernel built with CONFIG_DEBUG_INFO_BTF has it), so tp_btf cannot be used"};
  }
  k.vmlinux_.reset(v);
  struct stat st {};
  k.kvm_is_module_ = ::stat("/sys/module/kvm/initstate", &st) == 0;  // initstate: modules only
  if (::stat("/sys/kernel/btf/kvm", &st) == 0) {
    struct btf* m = btf__parse_split("/sys/kernel/btf/kvm", v);
    if (m) k.kvm_.reset(m);  // unreadable: the prototypes are then looked up in vmlinux only
  }
  return k;
}

Result<Prototype> KernelBtf::prototype(std::string_view event) const {
  if (kvm_) {
    auto p = read_prototype(kvm_.get(), event);  // split BTF: also searches vmlinux
    if (p) return p;
  }
  auto p = read_prototype(vmlinux_.get(), event);
  if (!p && !kvm_ && kvm_is_module_) {
    // KVM built as a module keeps its tracepoints' types in the module's own BTF, which kernels
    // before 5.11 do not produce (CONFIG_DEBUG_INFO_BTF_MODULES): the tracepoint is there, its
    // prototype is not, so tp_btf cannot attach to it at all.
    return Error{
        "the kvm module has no BTF (/sys/kernel/btf/kvm is missing: kernels before 5.11 have no BTF for "
        "modules), so tp_btf cannot attach to its tracepoints; record with --attach tp"};
  }
  return p;
}

const std::vector<BtfShape>& btf_shapes() {
  static const std::vector<BtfShape> shapes = make_shapes();
  return shapes;
}

Result<const BtfShape*> match_shape(int event, const Prototype& args, std::string_view kernel_release) {
  const std::string name = event >= 0 && event < ES_KVM_EV_COUNT ? std::string(kEventNames[event]) : "?";
  const std::string head = name + " on kernel " + std::string(kernel_release) + ": ";
  if (event == ES_KVM_EV_EXIT || event == ES_KVM_EV_NESTED_VMEXIT || event == ES_KVM_EV_ENTRY)
    return Error{head + "tp_btf cannot record it, because the tracepoint computes its fields itself (" +
                 (event == ES_KVM_EV_ENTRY ? "kvm_rip_read(), get_entry_info()" : "kvm_rip_read(), get_exit_info()") +
                 " in TP_fast_assign) and its arguments " + to_string(name, args) +
                 " do not carry them; only the classic tracepoint (tp) records it"};
  std::string known;
  for (const BtfShape& s : btf_shapes()) {
    if (s.event != event) continue;
    if (args.size() == s.args.size()) {
      bool same = true;
      for (size_t i = 0; i < args.size() && same; ++i) same = args[i] == s.args[i];
      if (same) return &s;
    }
    known += (known.empty() ? "" : " or ") + join(s.args) + " (" + std::string(s.era) + ")";
  }
  if (known.empty()) return Error{head + "exitscope has no tp_btf program for it"};
  return Error{head + "its BTF prototype " + to_string(name, args) + " is not one exitscope knows (" + known +
               "), so it is not recorded through tp_btf"};
}

EventLayout btf_layout(const BtfShape& shape) {
  EventLayout l;
  l.event = shape.event;
  for (size_t i = 0; i < shape.words.size(); ++i) {
    FieldLoc& at = l.at[shape.words[i]];
    at.present = true;
    at.offset = static_cast<uint16_t>(8 * i);
    at.size = 8;
    l.copy_len = static_cast<uint32_t>(8 * (i + 1));
  }
  if (shape.insn) {
    FieldLoc& at = l.at[kInsn];
    at.present = true;
    at.offset = ES_KVM_BTF_INSN_AT;
    at.size = 15;
    l.copy_len = ES_KVM_BTF_INSN_AT + 15;
  }
  // What the tracefs layout of the same era would list as missing (formats_era(), `info`).
  auto missing = [&](Slot s, const char* field) {
    if (!l.has(s)) l.optional_missing.emplace_back(field);
  };
  switch (shape.event) {
    case ES_KVM_EV_INJ_VIRQ:
      missing(kSoft, "soft");
      missing(kReinjected, "reinjected");
      break;
    case ES_KVM_EV_INJ_EXCEPTION: missing(kReinjected, "reinjected"); break;
    case ES_KVM_EV_PAGE_FAULT:
      missing(kVcpu, "vcpu_id");
      missing(kRip, "guest_rip");
      break;
    default: break;
  }
  return l;
}

}  // namespace es::kvm
