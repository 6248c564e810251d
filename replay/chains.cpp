#include "replay/chains.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "exitscope/discard.h"
#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "hv/arch/exit_reason.h"
#include "hv/arch/svm.h"
#include "schema/migrations.h"
#include "schema/kind_reason.h"

namespace es::replay {

std::string_view to_string(Outcome o) {
  switch (o) {
    case Outcome::Delivered: return "delivered";
    case Outcome::ReinjectedThenDelivered: return "delivered after reinjection";
    case Outcome::PromotedToDf: return "promoted to #DF";
    case Outcome::TripleFault: return "triple fault";
    case Outcome::HandledSerially: return "handled serially";
    case Outcome::Superseded: return "superseded";
    case Outcome::Collapsed: return "collapsed";
    case Outcome::Coalesced: return "coalesced";
    case Outcome::HandledByHypervisor: return "handled by hypervisor";
    case Outcome::DroppedByPolicy: return "dropped by policy";
    case Outcome::DiscardedByHypervisor: return "discarded by hypervisor";
    case Outcome::PendingAtEnd: return "pending at end";
    case Outcome::Lost: return "lost";
  }
  return "lost";
}

std::optional<Outcome> outcome_from_string(std::string_view name) {
  for (Outcome o : kAllOutcomes)
    if (to_string(o) == name) return o;
  return std::nullopt;
}

namespace {
// A record without ES_FLAG_SVM that only VMX writes so: an exit, or a nested entry (kvmtrace
// stamps an SVM one, kvm_nested_vmrun or a VMCB's kvm_nested_vmenter, with ES_FLAG_SVM; hv's
// are VMX).
bool speaks_vmx(const es_record& r) {
  return !(r.flags & ES_FLAG_SVM) &&
         (r.kind == ES_KIND_VM_EXIT || r.kind == ES_KIND_NESTED_EXIT || r.kind == ES_KIND_NESTED_ENTRY);
}
}  // namespace

Vendor chain_vendor(const Chain& c, Vendor fallback) {
  // Decided from every member when the chain was built (a chain too long to hold keeps only
  // its first and last member, which may say neither).
  if (c.vendor != Vendor::Unknown) return c.vendor;
  Vendor v = fallback;
  for (const Event& e : c.events) {
    if (e.rec.flags & ES_FLAG_SVM) return Vendor::Svm;
    if (speaks_vmx(e.rec)) v = Vendor::Vmx;
  }
  return v;
}

namespace {

// The references that differ on AMD: EXITINTINFO for IDT-vectoring info (APM Vol. 2 15.7.2
// "Intercepts During IDT Interrupt Delivery"), EVENTINJ for VM-entry injection (15.20 "Event
// Injection"), the shutdown intercept (exit code 0x7f, Appendix C) for VMX exit reason 2.
std::string_view svm_reference(Outcome o) {
  switch (o) {
    case Outcome::Delivered:
      return "the handler was reached (SDM Vol. 3A 6.12 \"Exception and Interrupt Handling\"; injected: AMD APM Vol. "
             "2 15.20 \"Event Injection\")";
    case Outcome::ReinjectedThenDelivered:
      return "intercepts interrupted its delivery and it was reinjected from EXITINTINFO until delivered (AMD APM "
             "Vol. 2 15.7.2 \"Intercepts During IDT Interrupt Delivery\"; KVM svm_complete_interrupts)";
    case Outcome::TripleFault:
      return "a fault while delivering #DF shut the processor down (SDM Vol. 3A 6.15 \"Interrupt 8\"; the shutdown "
             "intercept, SVM exit code 0x7f, AMD APM Vol. 2 Appendix C)";
    case Outcome::HandledByHypervisor:
      return "the event caused an intercept and the hypervisor consumed it; it was not meant for the guest (AMD APM "
             "Vol. 2 Appendix C, exception intercepts 0x40 - 0x5f)";
    case Outcome::DroppedByPolicy:
      return "the hypervisor's policy did not reinject it from EXITINTINFO (AMD APM Vol. 2 15.7.2; KVM reinjects, "
             "svm_complete_interrupts)";
    case Outcome::DiscardedByHypervisor:
      return "the hypervisor discarded it although the architecture still owed its delivery (AMD APM Vol. 2 15.7.2; "
             "KVM kvm_check_and_inject_events)";
    case Outcome::Lost:
      return "never delivered and nothing explains it, in a run the guest ended (AMD APM Vol. 2 15.7.2: an event in "
             "EXITINTINFO must be reinjected)";
    default: return outcome_reference(o, Vendor::Vmx);
  }
}

// A chain of neither vendor: both names where they differ.
std::string_view either_reference(Outcome o) {
  switch (o) {
    case Outcome::Delivered:
      return "the handler was reached (SDM Vol. 3A 6.12 \"Exception and Interrupt Handling\"; injected: SDM Vol. 3C "
             "27.6 / AMD APM Vol. 2 15.20 \"Event Injection\")";
    case Outcome::ReinjectedThenDelivered:
      return "VM exits interrupted its delivery and it was reinjected from IDT-vectoring info / EXITINTINFO until "
             "delivered (SDM Vol. 3C 28.2.4, AMD APM Vol. 2 15.7.2; KVM vmx_complete_interrupts / "
             "svm_complete_interrupts)";
    default: return outcome_reference(o, Vendor::Vmx);
  }
}

}  // namespace

std::string_view discard_reference(uint32_t discard_aux, Vendor v) {
  if (discard_aux != ES_DISCARD_NOT_HANDED_BACK) return outcome_reference(Outcome::DiscardedByHypervisor, v);
  // An event being injected when the exit happens is reported back in the exit's own vectoring
  // field (AMD APM Vol. 2 15.20 "Event Injection", 15.7.2; SDM Vol. 3C 28.2.4, which names events injected by VM entry
  // too); KVM does it for L1 in nested_save_pending_event_to_vmcb12 (SVM) and
  // vmcs12_save_pending_event (VMX), also for an event L2 never began to receive.
  switch (v) {
    case Vendor::Svm:
      return "L1 injected it into L2 at a nested VMRUN (EVENTINJ) and L0 exited to L1 before L2 ran without "
             "handing it back in EXITINTINFO, where an injected event that did not complete is recorded (AMD "
             "APM Vol. 2 15.20 \"Event Injection\", 15.7.2; KVM nested_save_pending_event_to_vmcb12)";
    case Vendor::Vmx:
      return "L1 injected it into L2 at a nested VM entry (VM-entry interruption information) and L0 exited to "
             "L1 before L2 ran without handing it back in IDT-vectoring information, where an event being "
             "injected at a VM exit must go (SDM Vol. 3C 28.2.4; KVM vmcs12_save_pending_event)";
    case Vendor::Unknown: break;
  }
  return "L1 injected it into L2 at a nested entry and L0 exited to L1 before L2 ran without handing it back in "
         "EXITINTINFO / IDT-vectoring information (AMD APM Vol. 2 15.20, 15.7.2; SDM Vol. 3C 28.2.4; KVM "
         "nested_save_pending_event_to_vmcb12, vmcs12_save_pending_event)";
}

std::string_view unanswered_pair_reference() {
  return "a fault during its delivery formed a pair that owes #DF (a shutdown when delivering #DF), and the "
         "hypervisor answered with neither that nor a reinjection (SDM Vol. 3A 6.15 Table 6-5 \"Conditions for "
         "Generating a Double Fault\"; KVM kvm_multiple_exception)";
}

std::string_view chain_outcome_reference(const Chain& c, Vendor fallback) {
  const Vendor v = chain_vendor(c, fallback);
  // Decided by the exit that showed a fault in the event's own delivery: the pair that fault
  // formed with the event is what the hypervisor did not answer (Table 6-5), not a discard.
  if (c.outcome == Outcome::DiscardedByHypervisor && c.delivery_fault && c.outcome_event == c.delivery_fault)
    return unanswered_pair_reference();
  if (c.outcome == Outcome::DiscardedByHypervisor) return discard_reference(c.outcome_discard_aux, v);
  return outcome_reference(c.outcome, v);
}

std::string_view outcome_reference(Outcome o, Vendor v) {
  if (v == Vendor::Svm) return svm_reference(o);
  if (v == Vendor::Unknown) return either_reference(o);
  switch (o) {
    case Outcome::Delivered:
      return "the handler was reached (SDM Vol. 3A 6.12 \"Exception and Interrupt Handling\"; injected: Vol. 3C 27.6 "
             "\"Event Injection\")";
    case Outcome::ReinjectedThenDelivered:
      return "VM exits interrupted its delivery and it was reinjected from IDT-vectoring info until delivered (SDM "
             "Vol. 3C 28.2.4 \"Information for VM Exits That Occur During Event Delivery\"; KVM "
             "vmx_complete_interrupts)";
    case Outcome::PromotedToDf:
      return "with a fault in the same delivery it formed a pair that raises #DF instead (SDM Vol. 3A 6.15, "
             "Table 6-5 \"Conditions for Generating a Double Fault\")";
    case Outcome::TripleFault:
      return "a fault while delivering #DF shut the processor down (SDM Vol. 3A 6.15 \"Interrupt 8\"; VM exit "
             "reason 2, Vol. 3C 26.2)";
    case Outcome::HandledSerially:
      return "a fault during its delivery was handled first and the event abandoned; the instruction that raised "
             "it re-executes and raises it again (SDM Vol. 3A 6.15, Table 6-5 \"handle exceptions serially\")";
    case Outcome::Superseded:
      return "a fault during its delivery was handled first and nothing raises this event again (an acknowledged "
             "interrupt, an NMI): hardware loses it (SDM Vol. 3A 6.15, Table 6-5 \"handle exceptions serially\")";
    case Outcome::Collapsed:
      return "an NMI while one is already pending is collapsed into it (SDM Vol. 3A 6.7.1 \"Handling Multiple "
             "NMIs\"; KVM process_nmi)";
    case Outcome::Coalesced:
      return "the vector was already requested: one IRR bit per vector (SDM Vol. 3A 11.8.4 \"Interrupt Acceptance "
             "for Fixed Interrupts\")";
    case Outcome::HandledByHypervisor:
      return "the event caused a VM exit and the hypervisor consumed it; it was not meant for the guest (SDM Vol. "
             "3C 28.2.2 \"Information for VM Exits Due to Vectored Events\")";
    case Outcome::DroppedByPolicy:
      return "the hypervisor's policy did not reinject it from IDT-vectoring info (SDM Vol. 3C 28.2.4; KVM "
             "reinjects, vmx_complete_interrupts)";
    case Outcome::DiscardedByHypervisor:
      return "the hypervisor discarded it although the architecture still owed its delivery (SDM Vol. 3C 28.2.4; "
             "KVM kvm_check_and_inject_events)";
    case Outcome::PendingAtEnd:
      return "the recording ends before it could be delivered (an imported trace or excerpt that stops there, a "
             "limit, a signal, or the VM shut down by a triple fault: SDM Vol. 3A 6.15 \"Interrupt 8\")";
    case Outcome::Lost:
      return "never delivered and nothing explains it, in a run the guest ended (SDM Vol. 3C 28.2.4: an event in "
             "IDT-vectoring info must be reinjected)";
  }
  return "";
}

// How many rows a chain stays open after its last member before it may be settled (issue #18).
// Only a cost / memory trade: a settled chain that hears of a late fact makes the recording take
// the read-back (materialize_chains), never a different table. ES_SETTLE_WINDOW overrides it (the
// output comparisons of bench/scale/same_output.sh run with a window of a few rows, so that every
// chain is settled and every late fact is met).
namespace {
// A positive count from environment variable `name` (testing knobs), else 65536.
size_t count_from_env(const char* name) {
  if (const char* v = std::getenv(name); v && *v) {
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v, &end, 10);
    if (end && *end == 0 && n > 0) return static_cast<size_t>(n);
  }
  return size_t{1} << 16;
}
}  // namespace

size_t settle_window() {
  static const size_t w = count_from_env("ES_SETTLE_WINDOW");
  return w;
}

namespace {
bool is_exit(const es_record& r) { return r.kind == ES_KIND_VM_EXIT || r.kind == ES_KIND_NESTED_EXIT; }
}  // namespace

// VMX exit reason 2 (SDM Vol. 3C 27.1 / 26.1), SVM's shutdown intercept, exit code 0x7f (APM
// Vol. 2 Appendix C; SVM code 2 is a CR2 read).
bool is_triple_fault_exit(const es_record& r) {
  if (!is_exit(r)) return false;
  if (r.flags & ES_FLAG_SVM) return r.reason == static_cast<uint32_t>(arch::SvmExitCode::Shutdown);
  return arch::ExitReason(r.reason).is(arch::BasicExitReason::TripleFault);
}

std::optional<uint8_t> delivery_fault_of(const es_record& r, uint32_t event_word, bool after_injection) {
  const arch::EntryIntrInfo event(event_word);
  if (!is_exit(r) || !event.valid()) return std::nullopt;
  uint8_t vector = 0;
  uint32_t error = 0;
  bool has_error = false, nested = false;
  if (r.flags & ES_FLAG_SVM) {
    if (r.reason < 0x40 || r.reason > 0x5f) return std::nullopt;
    vector = static_cast<uint8_t>(r.reason - 0x40);
    has_error = arch::exception_has_error_code(vector);
    error = static_cast<uint32_t>(r.qualification);
  } else {
    if (arch::ExitReason(r.reason).basic() != arch::BasicExitReason::ExceptionOrNmi) return std::nullopt;
    const arch::ExitIntrInfo info(r.intr_info);
    if (!info.valid() || info.type() != arch::InterruptionType::HardwareException) return std::nullopt;
    vector = static_cast<uint8_t>(info.vector());
    has_error = info.error_code_valid();
    error = r.intr_error;
    nested = info.nested_exception();
  }
  const arch::IdtVectoringInfo vec(r.idt_vectoring_info);
  if (vec.valid()) {
    const arch::EntryIntrInfo named = arch::to_reinjection(vec);
    if (named.vector() == event.vector() && named.type() == event.type()) return vector;
    return std::nullopt;  // the exit names another event's delivery
  }
  if (!after_injection) return std::nullopt;
  if (nested) return vector;
  const bool gate_fault = vector == arch::kTS || vector == arch::kNP || vector == arch::kSS || vector == arch::kGP;
  if (gate_fault && has_error && (error & 2) != 0 && ((error >> 3) & 0x1fff) == event.vector()) return vector;
  return std::nullopt;
}

namespace {

// Vol. 3A Table 6-4: the class of an event as the first one of a Table 6-5 pair. Everything that
// is not a hardware exception (an interrupt, an NMI, INT n) is benign.
arch::ExceptionClass first_event_class(arch::EntryIntrInfo e) {
  if (e.type() != arch::InterruptionType::HardwareException) return arch::ExceptionClass::Benign;
  return arch::exception_class(static_cast<uint8_t>(e.vector()));
}

// Same event = same vector and interruption type.
bool same_event(arch::EntryIntrInfo a, arch::EntryIntrInfo b) {
  return a.valid() && b.valid() && a.vector() == b.vector() && a.type() == b.type();
}

bool is_double_fault(arch::EntryIntrInfo e) {
  return e.valid() && e.vector() == arch::kDF && e.type() == arch::InterruptionType::HardwareException;
}

// Vol. 3C 28.2.4 "Information for VM Exits That Occur During Event Delivery": an event's
// delivery is in progress from the record that starts it (its RAISE, or a VM entry injecting
// it) until its DELIVERY (the handler reached) or a VM exit that names it (in IDT-vectoring
// info, or as the exit's own event: the attempt ends there; a reinjection opens a new one).
// +1 = the member opens a delivery attempt of its chain, -1 = closes it, 0 = neither.
int delivery_window_edge(const es_record& r) {
  switch (r.kind) {
    case ES_KIND_RAISE:
    case ES_KIND_VM_ENTRY:
    case ES_KIND_NESTED_ENTRY: return arch::EntryIntrInfo(r.intr_info).valid() ? 1 : 0;
    case ES_KIND_DELIVERY:
    case ES_KIND_VM_EXIT:
    case ES_KIND_NESTED_EXIT: return -1;
    default: return 0;
  }
}

// Chain `x` (its members by id) was being delivered when record `at` was raised: the last
// window edge of x before `at` opens an attempt. An event raised by an instruction after x's
// handler was reached (same entry, later instruction) is not "during its delivery".
bool in_delivery_window(const std::vector<Event>& x, uint64_t at) {
  auto it = std::lower_bound(x.begin(), x.end(), at, [](const Event& e, uint64_t id) { return e.rec.id < id; });
  while (it != x.begin()) {
    --it;
    if (const int edge = delivery_window_edge(it->rec); edge != 0) return edge > 0;
  }
  return false;
}

// answers_delivery_fault once the exit's fault vector is known.
bool answers_delivery_fault_vector(uint8_t fault_vector, uint32_t root_word) {
  const arch::EntryIntrInfo root(root_word);
  if (!root.valid() || root.type() != arch::InterruptionType::HardwareException) return false;
  return root.vector() == fault_vector || root.vector() == arch::kDF;
}

// The event KVM (or any hypervisor) raises in answer to an exit that reported a fault in
// another event's delivery is that fault, raised during that delivery, although the exit closed
// the delivery attempt: the exception the exit reports (delivery_fault_of), or the #DF Table 6-5
// makes of the pair. `root_word` is the raised event, `event_word` the interrupted chain's event,
// `after_injection` whether the chain's last entry / exit before the exit was an entry injecting it.
bool answers_delivery_fault(const es_record& exit, uint32_t event_word, bool after_injection, uint32_t root_word) {
  const auto v = delivery_fault_of(exit, event_word, after_injection);
  return v && answers_delivery_fault_vector(*v, root_word);
}

// Whether chain `x`'s last entry / exit before `at` is an entry injecting `word`.
bool injected_before(const std::vector<Event>& x, uint64_t at, uint32_t word) {
  auto it = std::lower_bound(x.begin(), x.end(), at, [](const Event& e, uint64_t id) { return e.rec.id < id; });
  while (it != x.begin()) {
    --it;
    const es_record& r = it->rec;
    if (is_exit(r)) return false;
    if (r.kind == ES_KIND_VM_ENTRY || r.kind == ES_KIND_NESTED_ENTRY)
      return same_event(arch::EntryIntrInfo(r.intr_info), arch::EntryIntrInfo(word));
  }
  return false;
}

// Table 6-1 "Protected-Mode Exceptions and Interrupts": faults report the faulting
// instruction, so an abandoned fault is raised again when the instruction re-executes; so are
// INT n / INT3 / INTO / INT1 (a fault during their delivery leaves RIP at the instruction).
// Traps (#DB), aborts (#MC, #DF), NMIs and external interrupts are not raised again.
bool raised_again_by_reexecution(arch::EntryIntrInfo e) {
  switch (e.type()) {
    case arch::InterruptionType::SoftwareInterrupt:
    case arch::InterruptionType::SoftwareException:
    case arch::InterruptionType::PrivilegedSoftwareException: return true;
    case arch::InterruptionType::HardwareException:
      return e.vector() < 32 && e.vector() != arch::kDB && e.vector() != arch::kNMI && e.vector() != arch::kBP &&
             e.vector() != arch::kOF && e.vector() != arch::kDF && e.vector() != arch::kMC && e.vector() != 9 &&
             e.vector() != 15 && e.vector() < 22;
    default: return false;
  }
}

// What deciding a chain needs from outside it, gathered once per recording: the run's end,
// records that end another event's life by effect (keyed by the id of their cause: a #DF
// raised because this chain's exception hit the double-fault table, or a triple-fault exit
// caused by it, Vol. 3A 6.15 Table 6-5), and links between chains (a chain whose root was
// caused inside another chain interrupts it).
struct ChainContext {
  std::vector<Event> run_ends;
  std::unordered_map<uint64_t, uint64_t> run_end_cause_origin;  // run end's cause -> its chain
  std::unordered_map<uint64_t, uint64_t> double_fault_by_cause;
  std::unordered_map<uint64_t, uint64_t> triple_fault_by_cause;
  std::unordered_map<uint64_t, uint64_t> interrupts;                   // chain -> chain it interrupts
  std::unordered_map<uint64_t, std::vector<uint64_t>> interrupted_by;  // chain -> its interrupters
};

// Vol. 3A 6.15 Table 6-5: the fault `second` raised during the delivery of `first` forms a pair
// that raises #DF (contributory + contributory, page fault + contributory / page fault).
bool pair_owes_double_fault(uint32_t first, uint32_t second) {
  const arch::EntryIntrInfo f(first), s(second);
  if (!f.valid() || !s.valid() || s.type() != arch::InterruptionType::HardwareException) return false;
  return arch::fault_during_delivery(first_event_class(f), arch::exception_class(static_cast<uint8_t>(s.vector()))) ==
         arch::FaultDuringDelivery::DoubleFault;
}

// A #DF the chain's own records show (raised or delivered), as MemberScan::promoted counts it.
bool shows_double_fault(const es_record& r) {
  return (r.kind == ES_KIND_DELIVERY || r.kind == ES_KIND_RAISE) && is_double_fault(arch::EntryIntrInfo(r.intr_info));
}

bool ends_by_effect(const es_record& r, bool& double_fault, bool& triple_fault) {
  double_fault = r.cause != 0 && r.kind == ES_KIND_RAISE && is_double_fault(arch::EntryIntrInfo(r.intr_info));
  triple_fault = r.cause != 0 && is_triple_fault_exit(r);
  return double_fault || triple_fault;
}

// What a chain's members say about its outcome, gathered one member at a time in id order (the
// whole-recording read and the recorder's ChainBuilder share it). `original` is the chain's
// event as known at that member: members before the first one naming an event cannot match it
// either way.
struct MemberScan {
  uint64_t delivered = 0, dropped = 0, discarded = 0, promoted = 0, triple = 0, handled = 0, interrupted = 0,
           reinjected = 0;
  uint32_t discard_aux = 0;
  // The last exit reporting a fault in the event's own delivery (delivery_fault_of) and its
  // vector; `faulted` until the event is injected again. A delivery the importer inferred after
  // such an exit (it has no IDT-vectoring to go by) is contradicted by it and does not count.
  uint64_t fault_exit = 0;
  uint8_t fault_vector = 0;
  bool faulted = false;
  bool injected = false;  // the last entry / exit of the chain is an entry injecting the event
  // Whose words the chain speaks (chain_vendor), from every member, held or not.
  bool svm = false, vmx = false;

  void add(const es_record& r, arch::EntryIntrInfo original, uint64_t chain_id) {
    if (r.flags & ES_FLAG_SVM)
      svm = true;
    else if (speaks_vmx(r))
      vmx = true;
    if (is_triple_fault_exit(r) && !triple) triple = r.id;
    if (is_exit(r)) {
      // Only an exception exit can report a fault (VMX basic reason 0, SVM 0x40..0x5f): most
      // exits stop at this test.
      const bool exception_exit = (r.flags & ES_FLAG_SVM) ? (r.reason - 0x40u) < 0x20u : (r.reason & 0xffffu) == 0;
      if (const auto v = exception_exit ? delivery_fault_of(r, original.raw(), injected) : std::nullopt) {
        fault_exit = r.id;
        fault_vector = *v;
        faulted = true;
      }
      injected = false;
    } else if (r.kind == ES_KIND_VM_ENTRY || r.kind == ES_KIND_NESTED_ENTRY) {
      injected = same_event(arch::EntryIntrInfo(r.intr_info), original);
      if (injected) faulted = false;
    }
    if (r.kind == ES_KIND_DELIVERY && faulted && (r.flags & ES_FLAG_INFERRED)) return;
    // KVM_EXIT_SHUTDOWN (8) in the chain: KVM made the triple fault itself (a fault while
    // delivering #DF that it intercepted; SDM Vol. 3A 6.15), no shutdown exit of the CPU.
    if (r.kind == ES_KIND_CONTEXT && r.reason == ES_CONTEXT_USERSPACE_EXIT && r.qualification == 8 &&
        r.intr_error == 0 && !triple)
      triple = r.id;
    if (r.kind == ES_KIND_DELIVERY && same_event(arch::EntryIntrInfo(r.intr_info), original)) delivered = r.id;
    // An exit whose IDT-vectoring info names the event, then an entry injecting it again: it
    // was reinjected (a dropped exception the CPU regenerates is not).
    if (is_exit(r) && !interrupted) {
      const arch::IdtVectoringInfo vec(r.idt_vectoring_info);
      if (vec.valid() && same_event(arch::to_reinjection(vec), original)) interrupted = r.id;
    }
    const bool injects_again = (r.kind == ES_KIND_VM_ENTRY || r.kind == ES_KIND_NESTED_ENTRY ||
                                (r.kind == ES_KIND_DECISION && r.reason == ES_DECISION_INJECT_REINJECTED));
    if (interrupted && !reinjected && injects_again && same_event(arch::EntryIntrInfo(r.intr_info), original))
      reinjected = r.id;
    if ((r.kind == ES_KIND_DELIVERY || r.kind == ES_KIND_RAISE) && r.id != chain_id &&
        is_double_fault(arch::EntryIntrInfo(r.intr_info)) && !is_double_fault(original) && !promoted)
      promoted = r.id;
    if (r.kind != ES_KIND_DECISION) return;
    if (r.reason == ES_DECISION_DROP_FROM_VECTORING) dropped = r.id;
    if (r.reason == ES_DECISION_DISCARD) {
      discarded = r.id;
      discard_aux = r.aux;
    }
    if (r.reason == ES_DECISION_FIX_PAGE_FAULT || r.reason == ES_DECISION_HOST_NMI) handled = r.id;
  }
};

// The outcome of chain `c` (its id, root_found, event_word and interrupted_by set) from what its
// members said (`m`) and what the rest of the recording says (`ctx`).
void conclude_outcome(Chain& c, const MemberScan& m, const ChainContext& ctx) {
  const arch::EntryIntrInfo original(c.event_word);
  uint64_t triple = 0, promoted = 0;
  c.delivery_fault = m.fault_exit;
  c.delivery_fault_vector = m.fault_vector;
  // Effects caused by the root come first (Vol. 3A 6.15 Table 6-5), then the members' own.
  if (c.root_found) {
    if (auto it = ctx.triple_fault_by_cause.find(c.id); it != ctx.triple_fault_by_cause.end()) triple = it->second;
    if (auto it = ctx.double_fault_by_cause.find(c.id);
        it != ctx.double_fault_by_cause.end() && !is_double_fault(original))
      promoted = it->second;
  }
  if (!triple) triple = m.triple;
  if (!promoted) promoted = m.promoted;
  // A #DF the hypervisor raised as a chain of its own in answer to the exit that reported a
  // fault in this event's delivery (kvm_multiple_exception's merge, Table 6-5).
  if (!promoted && m.fault_exit && !is_double_fault(original))
    if (auto it = ctx.double_fault_by_cause.find(m.fault_exit); it != ctx.double_fault_by_cause.end())
      promoted = it->second;
  const uint64_t delivered = m.delivered, dropped = m.dropped, discarded = m.discarded, handled = m.handled,
                 reinjected = m.reinjected;
  const uint32_t discard_aux = m.discard_aux;
  c.vendor = m.svm ? Vendor::Svm : m.vmx ? Vendor::Vmx : Vendor::Unknown;
  for (const Event& end : ctx.run_ends) {
    if (end.rec.reason != ES_END_TRIPLE_FAULT || triple) continue;
    const auto it = ctx.run_end_cause_origin.find(end.rec.cause);
    const uint64_t ended = it != ctx.run_end_cause_origin.end() ? it->second : 0;
    // A #DF raised (as a chain of its own) during the delivery of the chain whose fault shut the
    // VM down was the event being delivered then: a fault while delivering #DF (6.15).
    const bool df_of_ended = is_double_fault(original) && c.interrupts_chain != 0 && ended == c.interrupts_chain;
    if (end.rec.origin == c.id || (ended != 0 && ended == c.id) || df_of_ended) triple = end.rec.id;
  }
  // A fault raised during this event's delivery (a chain linked as interrupting it) that the
  // double-fault table handles serially (Vol. 3A 6.15 Table 6-5): the event is abandoned.
  const uint64_t serial_fault = c.interrupted_by.empty() ? 0 : c.interrupted_by.front();
  const Outcome abandoned = raised_again_by_reexecution(original) ? Outcome::HandledSerially : Outcome::Superseded;
  auto set = [&](Outcome o, uint64_t at) {
    c.outcome = o;
    c.outcome_event = at;
    c.outcome_discard_aux = at != 0 && at == discarded ? discard_aux : 0;
  };
  if (triple) {
    set(Outcome::TripleFault, triple);
  } else if (promoted) {
    set(Outcome::PromotedToDf, promoted);
  } else if (delivered && delivered > dropped && delivered > discarded) {
    set(reinjected && reinjected < delivered ? Outcome::ReinjectedThenDelivered : Outcome::Delivered, delivered);
  } else if (dropped) {
    set(Outcome::DroppedByPolicy, dropped);
  } else if (discarded) {
    // ES_DECISION_DISCARD's aux says why (hv/vmm): 1 the vector's IRR bit was already set,
    // 2 an NMI beyond the one KVM keeps latched, otherwise a pending exception outranked the
    // event's reinjection: hardware's own serial handling when that exception was raised
    // during this event's delivery, a hypervisor's discard when it was not.
    if (discard_aux == ES_DISCARD_COALESCED)
      set(Outcome::Coalesced, discarded);
    else if (discard_aux == ES_DISCARD_COLLAPSED)
      set(Outcome::Collapsed, discarded);
    else if (serial_fault)
      set(abandoned, discarded);
    else
      set(Outcome::DiscardedByHypervisor, discarded);
  } else if (handled && handled > delivered) {
    set(Outcome::HandledByHypervisor, handled);
  } else if (m.fault_exit && !delivered) {
    // An exit showed a fault in the event's own delivery and nothing delivered, reinjected,
    // promoted or shut it down after it. Table 6-5 decides what was owed: a pair that makes #DF
    // (contributory + contributory, page fault + contributory / page fault; a fault while
    // delivering #DF: shutdown) the hypervisor answered with something else, so it threw the
    // event away (KVM's kvm_multiple_exception merges such a pair into #DF; the 2019 VMware
    // backdoor emulation cleared the queue and re-injected #GP instead); a benign first event
    // is handled serially, as hardware does.
    const auto pair = arch::fault_during_delivery(first_event_class(original), arch::exception_class(m.fault_vector));
    if (pair == arch::FaultDuringDelivery::Serial)
      set(abandoned, m.fault_exit);
    else
      set(Outcome::DiscardedByHypervisor, m.fault_exit);
  } else if (serial_fault && !delivered) {
    set(abandoned, serial_fault);
  } else {
    // Ended by a limit / signal, or no RUN_END at all (the recording stopped first): the
    // event may still have been delivered later, so it is pending, not lost. A triple fault
    // ends the VM too (Vol. 3A 6.15 "Interrupt 8": shutdown; its hypervisor resets or ends
    // it, KVM_EXIT_SHUTDOWN): an event still waiting then (an NMI blocked by the handler whose
    // IRET faulted) was owed by nobody any more.
    bool stopped_early = ctx.run_ends.empty();
    for (const Event& end : ctx.run_ends)
      if (end.rec.reason == ES_END_LIMIT || end.rec.reason == ES_END_STOPPED ||
          end.rec.reason == ES_END_INTERNAL_ERROR || end.rec.reason == ES_END_TRIPLE_FAULT)
        stopped_early = true;  // cut short by a limit, the user, the model or the VM's shutdown, not by the guest
    set(stopped_early ? Outcome::PendingAtEnd : Outcome::Lost, 0);
  }
}

void decide_outcome(Chain& c, const ChainContext& ctx) {
  const arch::EntryIntrInfo original(c.event_word);
  MemberScan m;
  for (const Event& ev : c.events) m.add(ev.rec, original, c.id);
  conclude_outcome(c, m, ctx);
}

void note_level(Chain& c, const es_record& r) {
  const Chain::Level l{r.level, r.hv_level, r.kind == ES_KIND_DELIVERY, r.kind == ES_KIND_VIOLATION};
  if (std::find(c.levels.begin(), c.levels.end(), l) == c.levels.end()) c.levels.push_back(l);
}

// What a held chain's members tell of its root and original event, and which of them are
// interruptions and decisions.
void read_members(Chain& c) {
  for (const Event& ev : c.events) {
    const es_record& r = ev.rec;
    if (r.id == c.id) {
      c.root_found = true;
      c.root = ev;
    }
    if (r.flags & ES_FLAG_INFERRED) c.inferred = true;
    if (is_exit(r) && arch::IdtVectoringInfo(r.idt_vectoring_info).valid()) c.interruptions.push_back(r.id);
    if (r.kind == ES_KIND_DECISION) c.decisions.push_back(r.id);
  }
  if (!c.root_found) c.inferred = true;
  // The original event: the root's word; without a root, the first member naming an event.
  if (c.root_found) {
    c.event_word = c.root.rec.intr_info;
    c.event_error = c.root.rec.intr_error;
  }
  if (!arch::EntryIntrInfo(c.event_word).valid()) {
    for (const Event& ev : c.events) {
      if (is_exit(ev.rec) && arch::IdtVectoringInfo(ev.rec.idt_vectoring_info).valid()) {
        c.event_word = arch::to_reinjection(arch::IdtVectoringInfo(ev.rec.idt_vectoring_info)).raw();
        c.event_error = ev.rec.idt_vectoring_error;
        break;
      }
      if (!is_exit(ev.rec) && arch::EntryIntrInfo(ev.rec.intr_info).valid()) {
        c.event_word = ev.rec.intr_info;
        c.event_error = ev.rec.intr_error;
        break;
      }
    }
  }
}

void link_chain(Chain& c, const ChainContext& ctx) {
  if (auto it = ctx.interrupts.find(c.id); it != ctx.interrupts.end()) c.interrupts_chain = it->second;
  if (auto it = ctx.interrupted_by.find(c.id); it != ctx.interrupted_by.end()) c.interrupted_by = it->second;
}

// Everything about one held chain that its own members tell, then its outcome and links.
void finish_chain(Chain& c, const ChainContext& ctx) {
  read_members(c);
  link_chain(c, ctx);
  decide_outcome(c, ctx);
  c.member_count = c.events.size();
  for (const Event& ev : c.events) {
    note_level(c, ev.rec);
    if (counts_as_vectoring_exit(ev.rec)) ++c.vectoring_exits;
    if (counts_as_reinjection(ev.rec)) ++c.reinjections;
  }
  const auto at = std::lower_bound(c.events.begin(), c.events.end(), c.outcome_event,
                                   [](const Event& e, uint64_t v) { return e.rec.id < v; });
  if (c.outcome_event && at != c.events.end() && at->rec.id == c.outcome_event) c.outcome_ns = at->rec.time_ns;
}

// One chain's members read in id order (for_each_chain, read_chain), held up to `limit`; past
// it the chain lets them go and decides on, one member at a time, as finish_chain would from
// all of them (ChainBuilder's rule: the original event as known at each member; the members
// held until then are scanned with the event they tell, as finish_chain scans them).
class ChainReader {
 public:
  // `unheld`: called with every member of a chain it lets go, in id order (those held until then
  // when it lets them go, then each later one); may be empty.
  ChainReader(uint64_t id, size_t limit, const std::function<bool(const Event&)>* unheld = nullptr)
      : limit_(limit), unheld_(unheld && *unheld ? unheld : nullptr) {
    c_.id = id;
  }
  bool stopped() const { return stopped_; }
  uint64_t id() const { return c_.id; }
  bool empty() const { return c_.member_count == 0 && c_.events.empty(); }

  void add(const Event& e) {
    if (c_.members_held) {
      c_.events.push_back(e);
      if (c_.events.size() > limit_) let_go();
      return;
    }
    scan(e);
    c_.events.back() = e;
    hand_out(e);
  }

  // The chain decided; `db` to look up the outcome event's time of a chain not held.
  Result<Chain> finish(db::Db& db, const ChainContext& ctx) {
    if (c_.members_held) {
      finish_chain(c_, ctx);
      return std::move(c_);
    }
    if (!c_.root_found) c_.inferred = true;
    link_chain(c_, ctx);
    conclude_outcome(c_, m_, ctx);
    if (c_.outcome_event) {
      auto st = db.prepare("SELECT time_ns FROM events WHERE id = ? AND origin = ?");
      if (!st) return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), st.error()));
      st->bind_u64(1, c_.outcome_event);
      st->bind_u64(2, c_.id);
      if (st->step() == SQLITE_ROW) c_.outcome_ns = st->col_u64(0);
    }
    return std::move(c_);
  }

 private:
  // Over the limit: what finish_chain reads from the members held so far, then only the first
  // and the last member stay.
  void let_go() {
    read_members(c_);
    c_.interruptions.clear();
    c_.interruptions.shrink_to_fit();
    c_.decisions.clear();
    c_.decisions.shrink_to_fit();
    word_known_ = arch::EntryIntrInfo(c_.event_word).valid();
    std::vector<Event> held;
    held.swap(c_.events);
    c_.members_held = false;
    for (const Event& e : held) scan(e);
    for (const Event& e : held) hand_out(e);
    c_.events = {held.front(), held.back()};
  }

  void hand_out(const Event& e) {
    if (unheld_ && !stopped_ && !(*unheld_)(e)) stopped_ = true;
  }

  void scan(const Event& e) {
    const es_record& r = e.rec;
    ++c_.member_count;
    if (r.flags & ES_FLAG_INFERRED) c_.inferred = true;
    if (r.id == c_.id && !c_.root_found) {  // a root after members: only in a forged file
      c_.root_found = true;
      c_.root = e;
    }
    if (!word_known_) {  // finish_chain's rule for a chain without a root naming an event
      if (is_exit(r)) {
        if (const arch::IdtVectoringInfo vec(r.idt_vectoring_info); vec.valid()) {
          c_.event_word = arch::to_reinjection(vec).raw();
          c_.event_error = r.idt_vectoring_error;
          word_known_ = true;
        }
      } else if (arch::EntryIntrInfo(r.intr_info).valid()) {
        c_.event_word = r.intr_info;
        c_.event_error = r.intr_error;
        word_known_ = true;
      }
    }
    m_.add(r, arch::EntryIntrInfo(c_.event_word), c_.id);
    note_level(c_, r);
    if (counts_as_vectoring_exit(r)) ++c_.vectoring_exits;
    if (counts_as_reinjection(r)) ++c_.reinjections;
  }

  Chain c_;
  MemberScan m_;
  size_t limit_;
  const std::function<bool(const Event&)>* unheld_;
  bool stopped_ = false;
  bool word_known_ = false;
};

// The context from a recording's SQL, with memory proportional to what links chains (not to
// the number of events): a few targeted queries on the cause / origin indexes. With `only`,
// just what deciding those chains and their links needs: the run's end, the effects caused by
// their roots (cause index) and the links in which they take part, by root id (primary key)
// and by member (origin index), so nothing is read in proportion to the recording.
Result<ChainContext> load_context(db::Db& db, const std::vector<uint64_t>* only = nullptr) {
  ChainContext ctx;
  auto r = query_events(db, schema::kind_range_sql("e"),
                        {schema::kind_first_key(ES_KIND_RUN_END), schema::kind_last_key(ES_KIND_RUN_END)},
                        [&](const Event& e) {
                          ctx.run_ends.push_back(e);
                          return true;
                        });
  if (!r) return make_error(r.error());
  auto origin_of = db.prepare("SELECT origin FROM events WHERE id = ?");
  if (!origin_of) return make_error(origin_of.error());
  for (const Event& end : ctx.run_ends) {
    if (end.rec.cause == 0) continue;
    origin_of->bind_u64(1, end.rec.cause);
    if (origin_of->step() == SQLITE_ROW) ctx.run_end_cause_origin[end.rec.cause] = origin_of->col_u64(0);
    origin_of->reset();
  }
  // #DF raises and triple-fault exits that name a cause (Table 6-5 effects). Only the ones
  // caused by a chain's root are looked up (decide_outcome asks for its chain id).
  const int64_t df_word =
      int64_t{arch::EntryIntrInfo::make(arch::kDF, arch::InterruptionType::HardwareException).raw()};
  const std::string effects =
      "e.cause != 0 AND ((e.kind = ? AND (e.intr_info & 2147485695) = ?) OR "
      "(e.kind IN (?, ?) AND (((e.flags & ?) = 0 AND (e.reason & 65535) = 2) OR ((e.flags & ?) != 0 AND e.reason = "
      "?))))";
  auto add_effect = [&](const Event& e) {
    bool df = false, tf = false;
    if (ends_by_effect(e.rec, df, tf)) {
      if (df) ctx.double_fault_by_cause.emplace(e.rec.cause, e.rec.id);
      if (tf) ctx.triple_fault_by_cause.emplace(e.rec.cause, e.rec.id);
    }
    return true;
  };
  // Triple-fault exits as is_triple_fault_exit() names them: VMX basic reason 2, SVM shutdown.
  const std::vector<int64_t> effect_binds = {ES_KIND_RAISE,
                                             df_word,
                                             ES_KIND_VM_EXIT,
                                             ES_KIND_NESTED_EXIT,
                                             ES_FLAG_SVM,
                                             ES_FLAG_SVM,
                                             static_cast<int64_t>(arch::SvmExitCode::Shutdown)};
  if (!only) {
    // The whole recording: #DF raises, then triple-fault exits, each through its kinds' ranges of
    // events_kind_reason's keys (schema/kind_reason.h; one query with both would scan: SQLite
    // does not seek ORed ranges of one expression under other ORed terms). Each map is filled
    // by one of them, in id order.
    const std::string key = schema::kind_reason_key_sql("e");
    r = query_events(db, "e.cause != 0 AND " + key + " BETWEEN ? AND ? AND (e.intr_info & 2147485695) = ?",
                     {schema::kind_first_key(ES_KIND_RAISE), schema::kind_last_key(ES_KIND_RAISE), df_word},
                     add_effect);
    if (!r) return make_error(r.error());
    r = query_events(db,
                     "e.cause != 0 AND (" + key + " BETWEEN ? AND ? OR " + key +
                         " BETWEEN ? AND ?) AND (((e.flags & ?) = 0 AND (e.reason & 65535) = 2) OR ((e.flags & ?) "
                         "!= 0 AND e.reason = ?))",
                     {schema::kind_first_key(ES_KIND_VM_EXIT), schema::kind_last_key(ES_KIND_VM_EXIT),
                      schema::kind_first_key(ES_KIND_NESTED_EXIT), schema::kind_last_key(ES_KIND_NESTED_EXIT),
                      ES_FLAG_SVM, ES_FLAG_SVM, static_cast<int64_t>(arch::SvmExitCode::Shutdown)},
                     add_effect);
    if (!r) return make_error(r.error());
  } else {
    for (uint64_t id : *only) {
      std::vector<int64_t> binds = effect_binds;
      binds.push_back(static_cast<int64_t>(id));
      r = query_events(db, effects + " AND e.cause = ?", binds, add_effect);
      if (!r) return make_error(r.error());
      // ... and by the chain's exits (a #DF raised in answer to a fault in its delivery).
      std::vector<int64_t> by_exit = effect_binds;
      for (int64_t v : {int64_t{ES_KIND_VM_EXIT}, int64_t{ES_KIND_NESTED_EXIT}, static_cast<int64_t>(id)})
        by_exit.push_back(v);
      // `+e.kind`: SQLite would otherwise read the effect kinds (every exit and raise) through
      // the kind index and filter them (16 s at 100 M events), not the few rows the chain's exits
      // cause through the cause index (issue #18).
      std::string by_cause = effects;
      for (size_t at = 0; (at = by_cause.find("e.kind", at)) != std::string::npos; at += 7) by_cause.insert(at, "+");
      r = query_events(db,
                       by_cause + " AND e.cause IN (SELECT x.id FROM events x WHERE x.kind IN (?, ?) AND x.origin = ?)",
                       by_exit, add_effect);
      if (!r) return make_error(r.error());
    }
  }
  // Chain roots caused by an event of another chain, linked only if raised while that chain's
  // delivery was in progress: the last window edge (a member that opens or closes a delivery
  // attempt, delivery_window_edge) of that chain before the root opens an attempt.
  // (The root's word and its cause's exit fields serve the other way to be raised during a
  // delivery: in answer to an exit that reported a fault in it, answers_delivery_fault.)
  const std::string links_sql =
      "SELECT e.id, c.origin, e.intr_info, c.id, c.kind, c.reason, c.flags, c.intr_info, c.intr_error, "
      "c.qualification, c.idt_vectoring_info FROM events e JOIN events c ON c.id = e.cause "
      "WHERE e.origin = e.id AND e.cause != 0 AND c.origin != 0 AND c.origin != e.id";
  auto root_word = db.prepare("SELECT intr_info FROM events WHERE id = ?");
  if (!root_word) return make_error(root_word.error());
  auto first_df_after = db.prepare(
      "SELECT id FROM events WHERE origin = ? AND id > ? AND kind IN (?, ?) AND (intr_info & 2147485695) = ? "
      "ORDER BY id LIMIT 1");
  if (!first_df_after) return make_error(first_df_after.error());
  auto last_entry_or_exit = db.prepare(
      "SELECT kind, intr_info FROM events WHERE origin = ? AND id < ? AND kind IN (?, ?, ?, ?) ORDER BY id DESC LIMIT "
      "1");
  if (!last_entry_or_exit) return make_error(last_entry_or_exit.error());
  auto last_edge = db.prepare(
      "SELECT kind, intr_info FROM events WHERE origin = ? AND id < ? AND kind IN (?, ?, ?, ?, ?, ?) "
      "AND NOT (kind IN (?, ?, ?) AND (intr_info & 2147483648) = 0) ORDER BY id DESC LIMIT 1");
  if (!last_edge) return make_error(last_edge.error());
  std::unordered_set<uint64_t> seen_root;  // with `only`, a link can be found from both of its ends
  auto read_links = [&](const std::string& sql, std::optional<uint64_t> bind) -> Result<void> {
    auto links = db.prepare(sql + " ORDER BY e.id");
    if (!links) return make_error(links.error());
    if (bind) links->bind_u64(1, *bind);
    for (;;) {
      const int rc = links->step();
      if (rc == SQLITE_DONE) return {};
      if (rc != SQLITE_ROW)
        return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), db.errmsg()));
      const uint64_t root = links->col_u64(0), other = links->col_u64(1);
      if (only && !seen_root.insert(root).second) continue;
      db::Stmt& q = *last_edge;
      q.bind_u64(1, other);
      q.bind_u64(2, root);
      int i = 3;
      for (int kind : {ES_KIND_RAISE, ES_KIND_VM_ENTRY, ES_KIND_NESTED_ENTRY, ES_KIND_DELIVERY, ES_KIND_VM_EXIT,
                       ES_KIND_NESTED_EXIT, ES_KIND_RAISE, ES_KIND_VM_ENTRY, ES_KIND_NESTED_ENTRY})
        q.bind(i++, int64_t{kind});
      bool open = false;
      if (q.step() == SQLITE_ROW) {
        es_record edge{};
        edge.kind = static_cast<uint16_t>(q.col_u64(0));
        edge.intr_info = static_cast<uint32_t>(q.col_u64(1));
        open = delivery_window_edge(edge) > 0;
      }
      q.reset();
      if (!open) {
        es_record cause{};
        cause.id = links->col_u64(3);
        cause.kind = static_cast<uint16_t>(links->col_u64(4));
        if (!is_exit(cause)) continue;
        cause.reason = static_cast<uint32_t>(links->col_u64(5));
        cause.flags = static_cast<uint32_t>(links->col_u64(6));
        cause.intr_info = static_cast<uint32_t>(links->col_u64(7));
        cause.intr_error = static_cast<uint32_t>(links->col_u64(8));
        cause.qualification = links->col_u64(9);
        cause.idt_vectoring_info = static_cast<uint32_t>(links->col_u64(10));
        const uint32_t word_of_root = static_cast<uint32_t>(links->col_u64(2));
        uint32_t word = 0;
        root_word->bind_u64(1, other);
        if (root_word->step() == SQLITE_ROW) word = static_cast<uint32_t>(root_word->col_u64(0));
        root_word->reset();
        bool after_injection = false;
        db::Stmt& le = *last_entry_or_exit;
        le.bind_u64(1, other);
        le.bind_u64(2, cause.id);
        int j = 3;
        for (int kind : {ES_KIND_VM_ENTRY, ES_KIND_NESTED_ENTRY, ES_KIND_VM_EXIT, ES_KIND_NESTED_EXIT})
          le.bind(j++, int64_t{kind});
        if (le.step() == SQLITE_ROW) {
          const auto kind = le.col_u64(0);
          after_injection =
              (kind == ES_KIND_VM_ENTRY || kind == ES_KIND_NESTED_ENTRY) &&
              same_event(arch::EntryIntrInfo(static_cast<uint32_t>(le.col_u64(1))), arch::EntryIntrInfo(word));
        }
        le.reset();
        if (!answers_delivery_fault(cause, word, after_injection, word_of_root)) continue;
      }
      ctx.interrupts[root] = other;
      ctx.interrupted_by[other].push_back(root);
      // The pair rule of build_chains: the first #DF the interrupted chain shows after the root.
      if (!ctx.double_fault_by_cause.count(root)) {
        uint32_t word = 0;
        root_word->bind_u64(1, other);
        if (root_word->step() == SQLITE_ROW) word = static_cast<uint32_t>(root_word->col_u64(0));
        root_word->reset();
        if (pair_owes_double_fault(word, static_cast<uint32_t>(links->col_u64(2)))) {
          db::Stmt& d = *first_df_after;
          d.bind_u64(1, other);
          d.bind_u64(2, root);
          d.bind(3, int64_t{ES_KIND_RAISE});
          d.bind(4, int64_t{ES_KIND_DELIVERY});
          d.bind(5, df_word);
          if (d.step() == SQLITE_ROW) ctx.double_fault_by_cause.emplace(root, d.col_u64(0));
          d.reset();
        }
      }
    }
  };
  if (!only) {
    if (auto l = read_links(links_sql, std::nullopt); !l) return make_error(l.error());
  } else {
    for (uint64_t id : *only) {
      if (auto l = read_links(links_sql + " AND e.id = ?", id); !l) return make_error(l.error());
      if (auto l = read_links(links_sql + " AND c.origin = ?", id); !l) return make_error(l.error());
    }
    for (auto& [other, roots] : ctx.interrupted_by) std::sort(roots.begin(), roots.end());
  }
  return ctx;
}

// A chain's members by id through the origin index, decided with `ctx`; no chain (no members)
// if none.
Result<Chain> read_chain(db::Db& db, uint64_t id, const ChainContext& ctx) {
  ChainReader reader(id, chain_hold_limit());
  auto r = query_events(db, "e.origin = ?", {static_cast<int64_t>(id)}, [&](const Event& e) {
    reader.add(e);
    return true;
  });
  if (!r) return make_error(r.error());
  if (reader.empty()) return Chain{};
  return reader.finish(db, ctx);
}

}  // namespace

std::vector<Chain> build_chains(std::vector<Event> members, const std::vector<Event>& run_ends) {
  // load_chains reads the members in id order already: sort only what is not.
  auto by_event_id = [](const Event& a, const Event& b) { return a.rec.id < b.rec.id; };
  if (!std::is_sorted(members.begin(), members.end(), by_event_id))
    std::sort(members.begin(), members.end(), by_event_id);
  std::unordered_map<uint64_t, uint64_t> origin_of;  // event id -> chain id
  origin_of.reserve(members.size());
  std::map<uint64_t, Chain> by_id;
  ChainContext ctx;
  ctx.run_ends = run_ends;
  Chain* cur = nullptr;  // the previous member's chain: members of one chain mostly come together
  for (Event& ev : members) {
    origin_of[ev.rec.id] = ev.rec.origin;
    bool df = false, tf = false;
    if (ends_by_effect(ev.rec, df, tf)) {
      if (df) ctx.double_fault_by_cause.emplace(ev.rec.cause, ev.rec.id);
      if (tf) ctx.triple_fault_by_cause.emplace(ev.rec.cause, ev.rec.id);
    }
    if (!cur || cur->id != ev.rec.origin) {
      cur = &by_id[ev.rec.origin];
      cur->id = ev.rec.origin;
    }
    cur->events.push_back(std::move(ev));
  }
  for (const Event& end : run_ends)
    if (auto it = origin_of.find(end.rec.cause); it != origin_of.end())
      ctx.run_end_cause_origin[end.rec.cause] = it->second;
  for (const auto& [id, c] : by_id) {
    if (c.events.empty() || c.events.front().rec.id != id || c.events.front().rec.cause == 0) continue;
    const auto it = origin_of.find(c.events.front().rec.cause);
    if (it == origin_of.end() || it->second == id || it->second == 0) continue;
    const auto other = by_id.find(it->second);
    if (other == by_id.end()) continue;
    if (!in_delivery_window(other->second.events, id)) {
      // Or raised in answer to an exit that reported a fault in that chain's delivery.
      const std::vector<Event>& x = other->second.events;
      const uint64_t cause = c.events.front().rec.cause;
      const auto at =
          std::lower_bound(x.begin(), x.end(), cause, [](const Event& e, uint64_t v) { return e.rec.id < v; });
      if (at == x.end() || at->rec.id != cause || x.front().rec.id != other->first) continue;
      const uint32_t word = x.front().rec.intr_info;
      if (!answers_delivery_fault(at->rec, word, injected_before(x, cause, word), c.events.front().rec.intr_info))
        continue;
    }
    ctx.interrupts[id] = it->second;
    ctx.interrupted_by[it->second].push_back(id);
    // A fault that formed a #DF pair with the event it interrupted (Table 6-5) is promoted with
    // it when that chain shows the #DF after it: a hypervisor that intercepted the fault and
    // merged the pair (kvm_multiple_exception) records the #DF in the first event's chain.
    const std::vector<Event>& x = other->second.events;
    if (x.front().rec.id == other->first &&
        pair_owes_double_fault(x.front().rec.intr_info, c.events.front().rec.intr_info)) {
      auto at = std::upper_bound(x.begin(), x.end(), id, [](uint64_t v, const Event& e) { return v < e.rec.id; });
      for (; at != x.end(); ++at)
        if (shows_double_fault(at->rec)) {
          ctx.double_fault_by_cause.emplace(id, at->rec.id);
          break;
        }
    }
  }
  std::vector<Chain> out;
  out.reserve(by_id.size());
  for (auto& [id, c] : by_id) {
    finish_chain(c, ctx);
    out.push_back(std::move(c));
  }
  return out;
}

Result<void> for_each_chain(db::Db& db, const std::function<bool(const Chain&)>& fn) {
  return for_each_chain(db, nullptr, fn);
}

Result<void> for_each_chain(db::Db& db, const std::function<bool(const Event&)>& unheld_member,
                            const std::function<bool(const Chain&)>& fn) {
  auto ctx = load_context(db);
  if (!ctx) return make_error(ctx.error());
  const size_t limit = chain_hold_limit();
  std::optional<ChainReader> cur;
  bool stop = false;
  std::string failure;
  auto flush = [&]() {
    if (!cur || cur->empty()) return;
    auto c = cur->finish(db, *ctx);
    cur.reset();
    if (!c) {
      failure = c.error();
      stop = true;
    } else if (!fn(*c)) {
      stop = true;
    }
  };
  auto r = query_events(
      db, "e.origin != 0", {},
      [&](const Event& e) {
        if (!cur || e.rec.origin != cur->id()) {
          flush();
          if (stop) return false;
          cur.emplace(e.rec.origin, limit, &unheld_member);
        }
        cur->add(e);
        if (cur->stopped()) {
          stop = true;
          return false;
        }
        return true;
      },
      "e.origin, e.id");
  if (!r) return make_error(r.error());
  if (!stop) flush();
  if (!failure.empty()) return make_error(failure);
  return {};
}

size_t chain_hold_limit() {
  static const size_t w = count_from_env("ES_CHAIN_HOLD");
  return w;
}

Result<void> for_each_member(db::Db& db, const Chain& c, const std::function<bool(const Event&)>& fn) {
  if (c.members_held) {
    for (const Event& e : c.events)
      if (!fn(e)) break;
    return {};
  }
  return query_events(db, "e.origin = ?", {static_cast<int64_t>(c.id)}, fn);
}

Result<std::vector<Chain>> load_chain_and_links(db::Db& db, uint64_t id) {
  std::vector<Chain> out;
  if (id == 0) return out;  // origin 0 = in no chain
  // A recording whose writer never finished has no indexes (built at the end): each narrow
  // query below would be a scan, so one whole read is cheaper there.
  auto indexed = db.query_int(
      "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('events_origin', 'events_cause')");
  if (!indexed) return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), indexed.error()));
  if (*indexed != 2) {
    auto all = load_chains(db);
    if (!all) return make_error(all.error());
    auto it = std::find_if(all->begin(), all->end(), [&](const Chain& c) { return c.id == id; });
    if (it == all->end()) return out;
    std::vector<uint64_t> linked = it->interrupted_by;
    if (it->interrupts_chain) linked.push_back(it->interrupts_chain);
    out.push_back(std::move(*it));
    for (Chain& c : *all)
      if (c.id != id && std::find(linked.begin(), linked.end(), c.id) != linked.end()) out.push_back(std::move(c));
    return out;
  }
  const std::vector<uint64_t> one = {id};
  auto ctx = load_context(db, &one);
  if (!ctx) return make_error(ctx.error());
  auto first = read_chain(db, id, *ctx);
  if (!first) return make_error(first.error());
  if (first->events.empty()) return out;
  // The chains it names: the one it interrupts and those interrupting it, decided the same way.
  std::vector<uint64_t> linked = first->interrupted_by;
  if (first->interrupts_chain) linked.push_back(first->interrupts_chain);
  std::sort(linked.begin(), linked.end());
  linked.erase(std::unique(linked.begin(), linked.end()), linked.end());
  out.push_back(std::move(first).value());
  if (linked.empty()) return out;
  auto linked_ctx = load_context(db, &linked);
  if (!linked_ctx) return make_error(linked_ctx.error());
  for (uint64_t other : linked) {
    auto c = read_chain(db, other, *linked_ctx);
    if (!c) return make_error(c.error());
    if (c->events.empty()) continue;
    out.push_back(std::move(c).value());
  }
  return out;
}

Result<std::vector<Chain>> load_chains(db::Db& db) {
  std::vector<Event> members, run_ends;
  auto r = query_events(db, "e.origin != 0", {}, [&](const Event& e) {
    members.push_back(e);
    return true;
  });
  if (!r) return make_error(r.error());
  r = query_events(db, schema::kind_range_sql("e"),
                   {schema::kind_first_key(ES_KIND_RUN_END), schema::kind_last_key(ES_KIND_RUN_END)},
                   [&](const Event& e) {
                     run_ends.push_back(e);
                     return true;
                   });
  if (!r) return make_error(r.error());
  return build_chains(std::move(members), run_ends);
}

namespace {

// The chain row's statement and what it stores (schema v1 columns, then v3's stats figures).
constexpr const char* kInsertChain =
    "INSERT INTO chains (id, root_event, vector, type, level, outcome, first_event, last_event, event_count, "
    "inferred, interrupts_chain, event_word, vcpu, raise_ns, delivered_ns, vectoring_exits, reinjections) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

struct ChainRow {
  uint64_t id = 0;
  uint32_t event_word = 0;
  uint8_t level = 0;
  Outcome outcome = Outcome::Lost;
  uint64_t first = 0, last = 0, count = 0;
  bool inferred = false;
  uint64_t interrupts_chain = 0;
  uint16_t vcpu = 0;
  uint64_t raise_ns = 0;
  std::optional<uint64_t> delivered_ns;  // only for a delivered outcome
  uint64_t vectoring_exits = 0, reinjections = 0;
};

bool insert_chain(db::Stmt& s, const ChainRow& c) {
  const arch::EntryIntrInfo word(c.event_word);
  s.bind_u64(1, c.id);
  s.bind_u64(2, c.id);
  s.bind(3, int64_t{word.vector()});
  s.bind(4, static_cast<int64_t>(word.type()));
  s.bind(5, int64_t{c.level});
  s.bind(6, to_string(c.outcome));
  s.bind_u64(7, c.first);
  s.bind_u64(8, c.last);
  s.bind(9, static_cast<int64_t>(c.count));
  s.bind(10, int64_t{c.inferred ? 1 : 0});
  if (c.interrupts_chain)
    s.bind_u64(11, c.interrupts_chain);
  else
    s.bind_null(11);
  s.bind(12, int64_t{c.event_word});
  s.bind(13, int64_t{c.vcpu});
  s.bind_u64(14, c.raise_ns);
  if (c.delivered_ns)
    s.bind_u64(15, *c.delivered_ns);
  else
    s.bind_null(15);
  s.bind_u64(16, c.vectoring_exits);
  s.bind_u64(17, c.reinjections);
  const bool ok = s.step() == SQLITE_DONE;
  s.reset();
  return ok;
}

bool delivered_outcome(Outcome o) { return o == Outcome::Delivered || o == Outcome::ReinjectedThenDelivered; }

// The rules stamp that goes with the rows (schema v3 chain_rules), in their transaction.
std::string stamp_rules_sql() {
  return "DELETE FROM chain_rules; INSERT INTO chain_rules (version) VALUES (" + std::to_string(kChainRulesVersion) +
         ");";
}

}  // namespace

bool counts_as_vectoring_exit(const es_record& r) {
  return r.kind == ES_KIND_VM_EXIT && arch::IdtVectoringInfo(r.idt_vectoring_info).valid();
}
bool counts_as_reinjection(const es_record& r) {
  return r.kind == ES_KIND_DECISION && r.reason == ES_DECISION_INJECT_REINJECTED;
}

// ChainBuilder ------------------------------------------------------------------------------

namespace {

// One chain while the recording is written: its members reduced to what its row and its
// outcome need (finish_chain and decide_outcome read the same facts from the members).
struct OpenChain {
  uint64_t first = 0, last = 0, count = 0;
  uint32_t word = 0;  // the original event as known so far (finish_chain's rule)
  uint8_t level = 0;  // of the first member (the root when found)
  bool root_found = false, inferred = false;
  int8_t last_edge = 0;   // delivery_window_edge of its last member that had one
  bool df_wait = false;   // a #DF pair with the chain it interrupted is open (df_by_first)
  uint8_t tries = 0;      // sweeps that found its outcome still waiting for the run's end
  uint64_t retry_at = 0;  // the first row at which a sweep decides it again
  MemberScan scan;
  // The chain row's stats figures (schema v3): the raise (root, else first member), the time of
  // the delivery MemberScan last counted, and its exit / reinjection counts.
  uint16_t vcpu = 0;
  uint64_t raise_ns = 0, delivered_ns = 0;
  uint32_t vectoring_exits = 0, reinjections = 0;
};

}  // namespace

struct ChainBuilder::State {
  db::Db* db = nullptr;
  db::Stmt origin_of;  // SELECT origin FROM events WHERE id = ?
  bool exact = true;
  uint64_t last_id = 0;
  std::unordered_map<uint64_t, OpenChain> chains;
  // Recent rows' origins (id & mask), so a root's cause is rarely looked up in SQL.
  static constexpr size_t kRecent = 1u << 16;
  std::vector<std::pair<uint64_t, uint64_t>> recent = std::vector<std::pair<uint64_t, uint64_t>>(kRecent);
  ChainContext ctx;  // run_ends, effects by cause, links (as load_context gathers them)
  // (chain interrupted, fault chain) pairs that owe #DF (pair_owes_double_fault), by the first.
  std::unordered_multimap<uint64_t, uint64_t> df_by_first;

  // Settled chains (issue #18: memory O(open chains + window), not O(chains)). A chain is settled
  // when its row can no longer change: its outcome is decided by its own members (not "pending at
  // end" / "lost", which wait for the run's end), its delivery window is closed (no later root can
  // link to it through it), no #DF pair it takes part in as the fault is open, and it has had no
  // member for settle_window() rows. Its row then goes to a temporary table (not the recording:
  // a killed recording keeps an empty chains table, as before) and the chain leaves memory. The
  // only facts that could still change such a row are kept or looked up: a later member
  // (es_settled_chains has its id), a root answering the exit that reported a fault in its
  // delivery, or a #DF / triple-fault effect caused by its root or by that exit
  // (settled_fault_exits), a triple-fault end of the run caused inside it or inside the chain a
  // settled #DF chain interrupted (settled_df_interrupts). If one comes, exact() turns false and
  // the recording takes the read-back: the table is always the one materialize_chains builds.
  uint64_t next_sweep = 0, settled_count = 0;
  bool settled_any = false;
  db::Stmt settled_insert, settled_has;
  struct FaultExit {
    uint64_t chain;
    uint8_t vector;
    bool root_found;
  };
  std::unordered_map<uint64_t, FaultExit> settled_fault_exits;  // exit id -> its settled chain
  std::unordered_set<uint64_t> settled_df_interrupts;           // chains a settled #DF chain interrupted

  std::optional<uint64_t> origin_of_event(uint64_t id) {
    if (const auto& [rid, origin] = recent[id & (kRecent - 1)]; rid == id) return origin;
    if (!origin_of) {
      auto st = db->prepare("SELECT origin FROM events WHERE id = ?");
      if (!st) return std::nullopt;
      origin_of = std::move(st).value();
    }
    origin_of.bind_u64(1, id);
    std::optional<uint64_t> out;
    if (origin_of.step() == SQLITE_ROW) out = origin_of.col_u64(0);
    origin_of.reset();
    return out;
  }

  // The read-back decides the table instead (rows out of id order, or a late fact about a settled
  // chain); nothing of the streamed state is needed any more.
  void give_up() {
    exact = false;
    chains.clear();
    df_by_first.clear();
    settled_fault_exits.clear();
    settled_df_interrupts.clear();
    ctx = ChainContext{};
  }

  // Chain `id` with what conclude_outcome needs, decided from the context known now.
  Chain decide(uint64_t id, const OpenChain& o) const {
    Chain c;
    c.id = id;
    c.root_found = o.root_found;
    c.event_word = o.word;
    if (auto it = ctx.interrupts.find(id); it != ctx.interrupts.end()) c.interrupts_chain = it->second;
    if (auto it = ctx.interrupted_by.find(id); it != ctx.interrupted_by.end()) c.interrupted_by = it->second;
    conclude_outcome(c, o.scan, ctx);
    return c;
  }

  bool is_settled(uint64_t id) {
    if (!settled_any) return false;
    settled_has.bind_u64(1, id);
    const bool found = settled_has.step() == SQLITE_ROW;
    settled_has.reset();
    return found;
  }

  void sweep(uint64_t now);
};

namespace {

// INSERT of one chains row into `table` (the recording's chains, or the builder's temporary table
// of settled chains, which has the same columns).
Result<db::Stmt> prepare_chain_row(db::Db& db, std::string_view table) {
  return db.prepare(
      "INSERT INTO " + std::string(table) +
      " (id, root_event, vector, type, level, outcome, first_event, last_event, event_count, "
      "inferred, interrupts_chain, event_word, vcpu, raise_ns, delivered_ns, vectoring_exits, reinjections) "
      "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
}

bool write_chain_row(db::Stmt& s, uint64_t id, const OpenChain& o, const Chain& c) {
  ChainRow row;
  row.id = id;
  row.event_word = c.event_word;
  row.level = o.level;
  row.outcome = c.outcome;
  row.first = o.first;
  row.last = o.last;
  row.count = o.count;
  row.inferred = o.inferred || !o.root_found;
  row.interrupts_chain = c.interrupts_chain;
  row.vcpu = o.vcpu;
  row.raise_ns = o.raise_ns;
  // The outcome's event is the delivery MemberScan counted (conclude_outcome).
  if (delivered_outcome(c.outcome) && c.outcome_event == o.scan.delivered) row.delivered_ns = o.delivered_ns;
  row.vectoring_exits = o.vectoring_exits;
  row.reinjections = o.reinjections;
  return insert_chain(s, row);
}

}  // namespace

void ChainBuilder::State::sweep(uint64_t now) {
  const size_t window = settle_window();
  next_sweep = now + window;
  for (auto it = chains.begin(); it != chains.end();) {
    const uint64_t id = it->first;
    OpenChain& o = it->second;
    if (o.last + window > now || o.last_edge > 0 || o.df_wait || o.retry_at > now) {
      ++it;
      continue;
    }
    const Chain c = decide(id, o);
    if (c.outcome == Outcome::PendingAtEnd || c.outcome == Outcome::Lost) {  // the run's end decides
      // Decided again after 2, 4, ... 1024 windows: a recording of many events that are never
      // delivered does not decide each of them at every sweep. Settling later is always exact.
      o.retry_at = now + (uint64_t{window} << std::min<uint8_t>(o.tries, 10));
      if (o.tries < 10) ++o.tries;
      ++it;
      continue;
    }
    if (!settled_any) {
      if (!db->exec("CREATE TEMP TABLE es_settled_chains AS SELECT * FROM main.chains WHERE 0; "
                    "CREATE UNIQUE INDEX temp.es_settled_chains_id ON es_settled_chains(id)")) {
        give_up();
        return;
      }
      auto ins = prepare_chain_row(*db, "temp.es_settled_chains");
      auto has = db->prepare("SELECT 1 FROM temp.es_settled_chains WHERE id = ?");
      if (!ins || !has) {
        give_up();
        return;
      }
      settled_insert = std::move(ins).value();
      settled_has = std::move(has).value();
      settled_any = true;
    }
    if (!write_chain_row(settled_insert, id, o, c)) {
      give_up();
      return;
    }
    // Its #DF pairs as the interrupted chain: its members are final, so is its #DF (write()'s rule).
    const auto [b, e] = df_by_first.equal_range(id);
    for (auto p = b; p != e; ++p) {
      if (o.scan.promoted > p->second) ctx.double_fault_by_cause.emplace(p->second, o.scan.promoted);
      if (auto f = chains.find(p->second); f != chains.end()) f->second.df_wait = false;
    }
    df_by_first.erase(id);
    if (o.scan.fault_exit) settled_fault_exits[o.scan.fault_exit] = FaultExit{id, o.scan.fault_vector, o.root_found};
    if (is_double_fault(arch::EntryIntrInfo(o.word)) && c.interrupts_chain)
      settled_df_interrupts.insert(c.interrupts_chain);
    // What only this chain's outcome reads (its links, the effects keyed by its root or its fault exit).
    ctx.interrupts.erase(id);
    ctx.interrupted_by.erase(id);
    if (o.root_found) {
      ctx.double_fault_by_cause.erase(id);
      ctx.triple_fault_by_cause.erase(id);
    }
    if (o.scan.fault_exit) ctx.double_fault_by_cause.erase(o.scan.fault_exit);
    ++settled_count;
    it = chains.erase(it);
  }
}

ChainBuilder::ChainBuilder(db::Db& db) : s_(std::make_unique<State>()) { s_->db = &db; }
ChainBuilder::~ChainBuilder() {
  // With the testing window set, say what it exercised (bench/scale/same_output.sh counts it).
  if (std::getenv("ES_SETTLE_WINDOW"))
    std::fprintf(stderr, "exitscope: chain builder: %llu chains settled while written, %s\n",
                 static_cast<unsigned long long>(s_->settled_count),
                 s_->exact ? "streamed table" : "read back (late fact or rows out of order)");
  if (s_->settled_any) {
    s_->settled_insert = db::Stmt();
    s_->settled_has = db::Stmt();
    (void)s_->db->exec("DROP TABLE IF EXISTS temp.es_settled_chains");
  }
}
bool ChainBuilder::exact() const { return s_->exact; }

void ChainBuilder::add(const es_record& r) {
  State& st = *s_;
  if (!st.exact) return;
  if (r.id <= st.last_id || (r.origin && r.origin > r.id) || (r.origin == r.id && r.cause >= r.id)) {
    st.give_up();  // not in id order: materialize_chains reads the recording instead
    return;
  }
  if (r.id >= st.next_sweep) {
    st.sweep(r.id);
    if (!st.exact) return;
  }
  st.last_id = r.id;
  st.recent[r.id & (State::kRecent - 1)] = {r.id, r.origin};
  if (r.kind == ES_KIND_RUN_END) {
    st.ctx.run_ends.push_back(Event{r, 0});
    if (r.cause != 0) {
      const auto o = st.origin_of_event(r.cause);
      if (o) st.ctx.run_end_cause_origin[r.cause] = *o;
      // A triple-fault end decides the chain its cause is in and a #DF chain that interrupted it
      // (conclude_outcome): if that one is settled, its row may change.
      if (r.reason == ES_END_TRIPLE_FAULT && o && *o != 0 &&
          (st.settled_df_interrupts.count(*o) || (st.settled_any && !st.chains.count(*o)))) {
        st.give_up();
        return;
      }
    }
  }
  // Effects that end another event's life, keyed by their cause, as load_context selects them
  // (a VMX triple-fault exit or an SVM shutdown).
  bool df = false, tf = false;
  if (ends_by_effect(r, df, tf)) {
    if (st.settled_any) {
      // Caused by a settled chain's root or by the exit that reported a fault in its delivery.
      bool late = st.settled_fault_exits.count(r.cause) != 0;
      if (!late) {
        const auto o = st.origin_of_event(r.cause);  // a root (its own origin) no longer open
        late = o && *o == r.cause && !st.chains.count(r.cause);
      }
      if (late) {
        st.give_up();
        return;
      }
    }
    if (df) st.ctx.double_fault_by_cause.emplace(r.cause, r.id);
    if (tf) st.ctx.triple_fault_by_cause.emplace(r.cause, r.id);
  }
  if (r.origin == 0) return;
  // A root caused inside another chain's delivery window interrupts that chain (load_context).
  bool waits_df = false;
  if (r.origin == r.id && r.cause != 0) {
    const auto other = st.origin_of_event(r.cause);
    if (other && *other != 0 && *other != r.id) {
      const auto it = st.chains.find(*other);
      // In its delivery window, or raised in answer to the exit that reported a fault in it.
      if (it != st.chains.end() &&
          (it->second.last_edge > 0 || (it->second.scan.fault_exit == r.cause && it->second.root_found &&
                                        answers_delivery_fault_vector(it->second.scan.fault_vector, r.intr_info)))) {
        st.ctx.interrupts[r.id] = *other;
        st.ctx.interrupted_by[*other].push_back(r.id);
        // The pair rule (build_chains): decided in write(), once the #DF can have come.
        if (pair_owes_double_fault(it->second.word, r.intr_info)) {
          st.df_by_first.emplace(*other, r.id);
          waits_df = true;
        }
      } else if (it == st.chains.end()) {
        // A settled chain (its window was closed) links only through its fault exit.
        const auto f = st.settled_fault_exits.find(r.cause);
        if (f != st.settled_fault_exits.end() && f->second.root_found &&
            answers_delivery_fault_vector(f->second.vector, r.intr_info)) {
          st.give_up();
          return;
        }
      }
    }
  }
  auto found = st.chains.find(r.origin);
  if (found == st.chains.end()) {
    // A member of a chain already settled: its row would change.
    if (r.origin != r.id && st.is_settled(r.origin)) {
      st.give_up();
      return;
    }
    found = st.chains.emplace(r.origin, OpenChain{}).first;
  }
  OpenChain& c = found->second;
  if (c.count++ == 0 || r.id == r.origin) {
    c.vcpu = r.vcpu;
    c.raise_ns = r.time_ns;
  }
  if (c.count == 1) {
    c.first = r.id;
    c.level = r.level;
  }
  if (counts_as_vectoring_exit(r)) ++c.vectoring_exits;
  if (counts_as_reinjection(r)) ++c.reinjections;
  c.last = r.id;
  if (r.flags & ES_FLAG_INFERRED) c.inferred = true;
  if (r.id == r.origin) {
    c.root_found = true;
    c.word = r.intr_info;
    c.df_wait = waits_df;
  }
  if (!arch::EntryIntrInfo(c.word).valid()) {
    if (is_exit(r)) {
      if (const arch::IdtVectoringInfo vec(r.idt_vectoring_info); vec.valid()) c.word = arch::to_reinjection(vec).raw();
    } else if (arch::EntryIntrInfo(r.intr_info).valid()) {
      c.word = r.intr_info;
    }
  }
  c.scan.add(r, arch::EntryIntrInfo(c.word), r.origin);
  if (c.scan.delivered == r.id) c.delivered_ns = r.time_ns;
  if (const int edge = delivery_window_edge(r); edge != 0) c.last_edge = static_cast<int8_t>(edge);
}

Result<void> ChainBuilder::write() {
  State& st = *s_;
  db::Db& db = *st.db;
  auto fail = [&](std::string_view msg) {
    std::string m = schema::describe_sqlite_error(db.path(), "writing chains of", db.errcode(), msg);
    (void)db.exec("ROLLBACK");
    return make_error(m);
  };
  st.origin_of = db::Stmt();
  for (const Event& end : st.ctx.run_ends) {
    if (end.rec.cause == 0) continue;
    if (auto o = st.origin_of_event(end.rec.cause)) st.ctx.run_end_cause_origin[end.rec.cause] = *o;
  }
  st.origin_of = db::Stmt();
  for (const auto& [first, fault] : st.df_by_first) {
    const auto it = st.chains.find(first);
    if (it != st.chains.end() && it->second.scan.promoted > fault)
      st.ctx.double_fault_by_cause.emplace(fault, it->second.scan.promoted);
  }
  // A chain's members are the events with its origin (schema v4 has no chain_events table).
  if (auto b = db.exec("BEGIN; DELETE FROM chains;"); !b) return fail(b.error());
  if (st.settled_any) {
    st.settled_insert = db::Stmt();
    st.settled_has = db::Stmt();
    if (auto m = db.exec("INSERT INTO main.chains SELECT * FROM temp.es_settled_chains ORDER BY id"); !m)
      return fail(m.error());
  }
  auto ins_chain = prepare_chain_row(db, "main.chains");
  if (!ins_chain) return fail(ins_chain.error());
  std::vector<uint64_t> ids;
  ids.reserve(st.chains.size());
  for (const auto& [id, c] : st.chains) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    const OpenChain& o = st.chains[id];
    if (!write_chain_row(*ins_chain, id, o, st.decide(id, o))) return fail(db.errmsg());
  }
  ins_chain = db::Stmt();
  if (auto r = db.exec(stamp_rules_sql()); !r) return fail(r.error());
  if (auto cm = db.exec("COMMIT"); !cm) return fail(cm.error());
  return {};
}

Result<void> materialize_chains(db::Db& db) {
  auto fail = [&](std::string_view msg) {
    std::string m = schema::describe_sqlite_error(db.path(), "writing chains of", db.errcode(), msg);
    (void)db.exec("ROLLBACK");
    return make_error(m);
  };
  if (auto b = db.exec("BEGIN; DELETE FROM chains;"); !b) return fail(b.error());
  auto ins_chain = db.prepare(kInsertChain);
  if (!ins_chain) return fail(ins_chain.error());
  std::string failure;
  auto walked = for_each_chain(db, [&](const Chain& c) {
    const es_record& first = c.root_found ? c.root.rec : c.events.front().rec;
    ChainRow row;
    row.id = c.id;
    row.event_word = c.event_word;
    row.level = first.level;
    row.outcome = c.outcome;
    row.first = c.events.front().rec.id;
    row.last = c.events.back().rec.id;
    row.count = c.member_count;
    row.inferred = c.inferred;
    row.interrupts_chain = c.interrupts_chain;
    row.vcpu = first.vcpu;
    row.raise_ns = first.time_ns;
    if (delivered_outcome(c.outcome) && c.outcome_ns) row.delivered_ns = *c.outcome_ns;
    row.vectoring_exits = c.vectoring_exits;
    row.reinjections = c.reinjections;
    if (!insert_chain(*ins_chain, row)) {
      failure = db.errmsg();
      return false;
    }
    return true;
  });
  if (!walked) return fail(walked.error());
  if (!failure.empty()) return fail(failure);
  ins_chain = db::Stmt();
  if (auto r = db.exec(stamp_rules_sql()); !r) return fail(r.error());
  if (auto cm = db.exec("COMMIT"); !cm) return fail(cm.error());
  return {};
}

Result<bool> chain_figures_current(db::Db& db) {
  auto stamped = db.query_int("SELECT count(*) FROM chain_rules WHERE version = " + std::to_string(kChainRulesVersion));
  if (!stamped) return make_error(stamped.error());
  return *stamped == 1;
}

Result<bool> store_chain_figures(db::Db& db) {
  auto fail = [&](std::string_view msg) {
    return make_error(schema::describe_sqlite_error(db.path(), "writing chains of", db.errcode(), msg));
  };
  auto current = chain_figures_current(db);
  if (!current) return fail(current.error());
  auto indexed = db.query_int("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'events_origin'");
  if (!indexed) return fail(indexed.error());
  if (*current || *indexed == 0) return false;
  if (auto r = schema::create_indexes(db); !r) return make_error(r.error());
  if (auto r = materialize_chains(db); !r) return make_error(r.error());
  return true;
}

}  // namespace es::replay
