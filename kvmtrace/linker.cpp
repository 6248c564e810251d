#include "kvmtrace/linker.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "exitscope/discard.h"

#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "hv/arch/exit_reason.h"
#include "hv/arch/svm.h"

namespace es::kvmtrace {

namespace {

using arch::EntryIntrInfo;
using arch::IdtVectoringInfo;

bool same_event(uint32_t a, uint32_t b) {
  const EntryIntrInfo x(a), y(b);
  return x.valid() && y.valid() && x.vector() == y.vector() && x.type() == y.type();
}

// INT n, INT3 / INTO, INT1: event types 4, 6 and 5 (SDM Vol. 3C 25.8.3 "VM-Entry Controls for Event
// Injection", Table 25-17), whose delivery depends on an instruction.
bool software_event(uint32_t word) {
  const arch::InterruptionType t = EntryIntrInfo(word).type();
  return t == arch::InterruptionType::SoftwareInterrupt || t == arch::InterruptionType::SoftwareException ||
         t == arch::InterruptionType::PrivilegedSoftwareException;
}

// A bit for each reading of "info A B" decode_exit can make: Undecided reads info2 as
// ExitIntrInfo does, so the two are one answer.
uint8_t info_pair_answer(InfoPairMeaning meaning, bool contested) {
  return static_cast<uint8_t>(1u << ((meaning == InfoPairMeaning::IdtVectoring ? 2 : 0) + (contested ? 1 : 0)));
}

}  // namespace

void Linker::learn(const KvmEvent& t, uint64_t line_no) {
  era_.learn(t, line_no);
  const bool exit_line =
      t.event == Tracepoint::Exit || t.event == Tracepoint::NestedVmexit || t.event == Tracepoint::NestedVmexitInject;
  if (exit_line && t.exit.reason && t.exit.isa != Isa::Unknown) (t.exit.svm() ? learned_svm_ : learned_vmx_) = true;
  if (t.event == Tracepoint::Entry) saw_entry_ = true;
  if (exit_line) saw_exit_ = true;
  if (t.event == Tracepoint::NestedVmexit) nested_vmexit_traced_ = true;

  if (t.pid < 0 || t.vcpu < 0) return;
  // A thread that names two vCPUs (it should not) keeps the lower one.
  auto [it, fresh] = learning_.try_emplace(t.pid, t.vcpu);
  if (!fresh && t.vcpu < it->second) it->second = t.vcpu;
  if (fresh) learned_threads_.push_back({t.pid, t.tgid});
}

void Linker::finish_learning() {
  era_.finish();
  // A single pass numbered the VMs and vCPUs as it went; check_speculation() compares.
  if (!speculating_) assign_learned_vms();
  pid_vcpu_.assign(learning_.begin(), learning_.end());
  std::sort(pid_vcpu_.begin(), pid_vcpu_.end());
  if (speculating_) speculation_held_ = check_speculation();
  learned_threads_.clear();
  learning_.clear();
}

// The VMs and their vCPU numbers from the whole file, threads in the order it names them: the
// first VM keeps its numbers even where another VM's lines come before some of its vCPUs'.
void Linker::assign_learned_vms() {
  std::vector<std::pair<uint32_t, int32_t>> vm_ids;
  for (const auto& [pid, tgid] : learned_threads_) {
    KvmEvent t;
    t.pid = pid;
    t.tgid = tgid;
    const int32_t id = learning_[pid];
    vm_ids.emplace_back(vm_of(t, id, false), id);
  }
  for (const auto& [vm, id] : vm_ids)
    if (vm == 0) recorded_vcpu(vm, id);
  for (const auto& [vm, id] : vm_ids)
    if (vm != 0) recorded_vcpu(vm, id);
}

// Whether the answers a single pass's add() took from the learned state so far are the whole
// file's (finish_learning() has run: pid_vcpu_, era_ and the flags are final). Then each add()
// did what it does after a learning pass, so the records are the same.
int32_t Linker::learned_vcpu(int32_t pid) const {
  auto it = std::lower_bound(pid_vcpu_.begin(), pid_vcpu_.end(), std::pair<int32_t, int32_t>(pid, INT32_MIN));
  return it != pid_vcpu_.end() && it->first == pid ? it->second : -1;
}

bool Linker::check_speculation() const {
  if (spec_inconsistent_) return false;
  // A thread's vCPU: the learned one, or guessed only for a thread no line names a vCPU for.
  for (const auto& [pid, answer] : spec_vcpu_) {
    const int32_t learned = learned_vcpu(pid);
    if (answer.guessed ? learned >= 0 : learned != answer.id) return false;
  }
  for (int32_t pid : spec_other_unnamed_)
    if (learned_vcpu(pid) >= 0) return false;
  const unsigned pair_bit = info_pair_answer(era_.info_pair(), era_.contested());
  if (spec_info_pair_ & ~pair_bit) return false;
  // With no named exit in the whole file, both passes read numeric reasons by the exits before.
  if ((learned_svm_ || learned_vmx_) && (spec_svm_numeric_ & ~(learned_svm_ && !learned_vmx_ ? 2u : 1u))) return false;
  if (spec_needed_entry_ && saw_entry_) return false;
  if (spec_needed_no_exit_ && saw_exit_) return false;
  if (spec_needed_nested_ && nested_vmexit_traced_) return false;
  // VMs: two passes number the learned threads' VMs before any event. With one VM and vCPU ids
  // that fit, every (VM, id) is recorded as its id either way; several VMs: link in two passes.
  Linker two;
  two.learning_ = learning_;
  two.learned_threads_ = learned_threads_;
  two.assign_learned_vms();
  if (vms_.size() > 1 || two.vms_.size() > 1) return false;
  if (!two.vms_.empty()) {
    if (vms_.empty() || vms_[0].process != two.vms_[0].process) return false;
    for (const auto& [id, thread] : two.vms_[0].thread_of_id) {
      auto it = vms_[0].thread_of_id.find(id);
      if (it == vms_[0].thread_of_id.end() || it->second != thread) return false;
    }
  }
  for (const auto& [key, n] : recorded_of_)
    if (key.second != static_cast<int32_t>(n)) return false;
  return true;
}

void Linker::add(const KvmEvent& t, uint64_t time_ns, uint64_t line_no) {
  cur_time_ = time_ns;
  cur_line_ = line_no;
  cur_vcpu_ = resolve_vcpu(t);
  era_.note(t);
  if (t.after_elision) ++elisions_;
  VcpuState& st = state(cur_vcpu_);
  // KVM's own events, the kvm tracepoints this decoder does not read among them, are what came
  // between an injection and an emulated instruction (on_context); a run of other tracepoints'
  // lines ends at a KVM event this decoder reads, or where the source left lines out.
  if (t.event != Tracepoint::Other || t.kvm_system) ++st.kvm_events;
  if (t.event != Tracepoint::Other || t.after_elision) st.other_run = 0;
  // KVM runs each vCPU on one thread for its whole life: the same vCPU number from another thread
  // is another VM's vCPU (two captures pasted one after the other, both "CPU 0/KVM"). Nothing of
  // the first one's state carries over: its open exit stays as it is, not claimed by the second.
  // (An APIC event is traced by whichever thread sent the interrupt, not the target's.)
  if (t.pid >= 0 && t.event != Tracepoint::Other && t.event != Tracepoint::None &&
      t.event != Tracepoint::ApicAcceptIrq && t.event != Tracepoint::Eoi) {
    if (st.thread >= 0 && st.thread != t.pid) {
      st = VcpuState{};
      ++vcpu_thread_changes_;
    }
    st.thread = t.pid;
  }
  // A reason printed as a number ("reason 0x4d": a code the kernel's table did not name) carries
  // no vendor: it is an SVM exit code when the trace's named exits are all SVM (the whole file,
  // or for a streaming source what came before), as an old AMD kernel printed an #GP intercept.
  const bool numeric = t.exit.reason && t.exit.isa == Isa::Unknown;
  const bool svm_numeric =
      numeric && (learned_svm_ || learned_vmx_ ? learned_svm_ && !learned_vmx_ : saw_svm_ && !saw_vmx_);
  if (speculating_ && numeric) spec_svm_numeric_ |= svm_numeric ? 2 : 1;
  if (svm_numeric) {
    KvmEvent svm_line = t;
    svm_line.exit.isa = Isa::Svm;
    numeric_as_svm_ = true;
    switch (t.event) {
      case Tracepoint::Exit: on_exit(svm_line, st, 1); return;
      case Tracepoint::NestedVmexit: on_nested_vmexit(svm_line, st); return;
      case Tracepoint::NestedVmexitInject: on_nested_inject(svm_line, st); return;
      default: break;
    }
  }
  switch (t.event) {
    case Tracepoint::Exit: on_exit(t, st, 1); break;
    case Tracepoint::NestedVmexit: on_nested_vmexit(t, st); break;
    case Tracepoint::NestedVmexitInject: on_nested_inject(t, st); break;
    case Tracepoint::NestedIntrVmexit: {
      // Only SVM traces it (arch/x86/kvm/svm/nested.c, before nested_svm_simple_vmexit(svm,
      // SVM_EXIT_INTR)): the reflected exit is SVM's INTR, 0x60, not VMX's EXTERNAL_INTERRUPT.
      es_record& d = push(ES_KIND_DECISION, ES_FLAG_SVM | (t.rip ? 0 : ES_FLAG_RIP_UNKNOWN));
      d.reason = ES_DECISION_REFLECT_TO_L1;
      d.level = 2;
      d.rip = t.rip.value_or(0);
      d.aux = static_cast<uint32_t>(arch::SvmExitCode::Intr);
      state(cur_vcpu_).intr_reflect = d.id;
      break;
    }
    case Tracepoint::Entry: on_entry(t, st); break;
    case Tracepoint::NestedVmenter: on_nested_vmenter(t, st); break;
    case Tracepoint::InjVirq:
    case Tracepoint::InjException: on_inject(t, st); break;
    default: on_context(t, st); break;
  }
}

void Linker::take_settled(std::vector<es_record>& out) {
  uint64_t limit = next_id_;
  for (const VcpuState& v : vcpus_) {
    if (v.open_exit < base_id_) continue;
    // An open exit's level may still change (settle_exit_level), and the raise inferred from
    // its IDT-vectoring with it: that raise stays held too.
    uint64_t from = v.open_exit;
    if (const es_record* e = held(v.open_exit); e && inferred_raise_of(*e)) from = v.open_exit - 1;
    limit = std::min(limit, from);
  }
  // A run of other tracepoints' lines still growing (on_context): one row, however the source
  // batches its hand-outs.
  for (const VcpuState& v : vcpus_)
    if (v.other_run >= base_id_ && v.other_run != 0) limit = std::min(limit, v.other_run);
  // Bounded memory: a vCPU whose exit stays open for long (blocked in user space) does not hold
  // everyone else's records; its exit is handed out unpatched.
  if (held_.size() > kMaxHeld) limit = std::max(limit, next_id_ - kMaxHeld / 2);
  while (base_id_ < limit) {
    out.push_back(held_.front());
    held_.pop_front();
    ++base_id_;
  }
}

void Linker::take_all(std::vector<es_record>& out) {
  for (const es_record& r : held_) out.push_back(r);
  held_.clear();
  base_id_ = next_id_;
}

// The recorded vCPU of an event: (its VM, its vCPU id), numbered as linker.h says.
// kvm_apic_accept_irq / kvm_eoi name the vCPU whose local APIC accepts or EOIs: their `apicid` is
// that vCPU's vcpu_id (arch/x86/kvm/lapic.c __apic_accept_irq passes vcpu->vcpu_id, trace.h's
// kvm_eoi stores apic->vcpu->vcpu_id), which is also KVM's default APIC id (kvm_lapic_reset ->
// kvm_apic_set_xapic_id(apic, vcpu->vcpu_id); x2APIC id = vcpu_id). KVM delivers an interrupt
// only within one VM, so the target is that vCPU of the sender's VM, whichever thread traced it
// (the sender's vCPU thread for an IPI, the VMM's I/O thread for a device's interrupt).
uint16_t Linker::resolve_vcpu(const KvmEvent& t) {
  const bool apic = t.event == Tracepoint::ApicAcceptIrq || t.event == Tracepoint::Eoi;
  const int32_t id = apic ? static_cast<int32_t>(std::min<uint64_t>(t.apic().apicid, 0xFFFF)) : vcpu_id_of(t);
  if (id < 0) return last_vcpu_;
  if (apic) ++apic_events_;
  cur_vm_ = vm_of(t, id, apic);
  return last_vcpu_ = recorded_vcpu(cur_vm_, id);
}

// vCPU id from the body, else the "CPU n/KVM" thread name, else what another line of the same
// thread said, else a guess (recorded as an assumption); -1: the same vCPU as the event before.
int32_t Linker::vcpu_id_of(const KvmEvent& t) {
  if (t.vcpu >= 0) {
    if (t.pid >= 0) seen_pid_vcpu_.try_emplace(t.pid, t.vcpu);
    return t.vcpu;
  }
  if (t.task_vcpu >= 0) return t.task_vcpu;
  if (t.pid >= 0 && t.event != Tracepoint::Other) {
    const auto unlearned = [&] {
      // Streaming sources (no learn() pass): what an earlier event of this thread said.
      if (auto seen = seen_pid_vcpu_.find(t.pid); seen != seen_pid_vcpu_.end()) return seen->second;
      // Unknown thread: one vCPU per thread, numbered in order of appearance.
      for (size_t i = 0; i < guessed_pids_.size(); ++i)
        if (guessed_pids_[i] == t.pid) return static_cast<int32_t>(i);
      guessed_pids_.push_back(t.pid);
      guessed_vcpu_ = true;
      return static_cast<int32_t>(guessed_pids_.size() - 1);
    };
    if (speculating_) {  // what the lines so far taught, noted for check_speculation()
      const auto known = [&](const std::unordered_map<int32_t, int32_t>& m) {
        const auto it = m.find(t.pid);
        return it == m.end() ? -1 : it->second;
      };
      int32_t id = known(learning_);
      if (id < 0) id = known(preview_vcpu_);
      const bool guessed = id < 0;
      if (guessed) id = unlearned();
      auto [a, fresh] = spec_vcpu_.try_emplace(t.pid, VcpuAnswer{id, guessed});
      if (!fresh && (a->second.id != id || a->second.guessed != guessed)) spec_inconsistent_ = true;
      return id;
    }
    if (const int32_t id = learned_vcpu(t.pid); id >= 0) return id;
    return unlearned();
  }
  if (t.pid >= 0 && t.event == Tracepoint::Other) {
    // Another tracepoint's line (sched_switch, a probe): its thread's vCPU when a KVM line of that
    // thread names it, anywhere in the file (KVM runs a vCPU on one thread); never a guess of its
    // own (the thread may run no vCPU at all): else the vCPU of the event before.
    if (speculating_) {
      for (const auto* m : {&learning_, &preview_vcpu_})
        if (auto it = m->find(t.pid); it != m->end()) {
          auto [a, fresh] = spec_vcpu_.try_emplace(t.pid, VcpuAnswer{it->second, false});
          if (!fresh && (a->second.id != it->second || a->second.guessed)) spec_inconsistent_ = true;
          return it->second;
        }
      if (auto it = spec_vcpu_.find(t.pid); it != spec_vcpu_.end()) return it->second.id;
      spec_other_unnamed_.insert(t.pid);
      return -1;
    }
    if (const int32_t id = learned_vcpu(t.pid); id >= 0) return id;
    if (auto seen = seen_pid_vcpu_.find(t.pid); seen != seen_pid_vcpu_.end()) return seen->second;
    for (size_t i = 0; i < guessed_pids_.size(); ++i)
      if (guessed_pids_[i] == t.pid) return static_cast<int32_t>(i);
    return -1;
  }
  if (t.event != Tracepoint::Other && t.pid < 0) guessed_vcpu_ = true;  // no prefix: same vCPU as the line before
  return -1;
}

uint32_t Linker::vm_of(const KvmEvent& t, int32_t id, bool apic) {
  const auto new_vm = [&](int32_t process) {
    vms_.push_back(Vm{process, t.pid, {}});
    return static_cast<uint32_t>(vms_.size() - 1);
  };
  if (t.pid < 0) {  // no thread (lines without a prefix): the VM of the event before
    if (vms_.empty()) return new_vm(t.tgid);
    return cur_vm_;
  }
  if (auto it = vm_of_thread_.find(t.pid); it != vm_of_thread_.end()) return it->second;
  if (apic) {
    // A thread that runs no vCPU (the VMM's I/O thread): its VM is its process when the source
    // says it; otherwise the only VM, or with several the VM of the event before (said).
    for (uint32_t i = 0; i < vms_.size(); ++i)
      if (t.tgid >= 0 && vms_[i].process == t.tgid) return i;
    if (t.tgid >= 0 || vms_.empty()) return new_vm(t.tgid);
    if (vms_.size() > 1) ++apic_vm_unknown_;
    return cur_vm_;
  }
  uint32_t vm = static_cast<uint32_t>(vms_.size());
  for (uint32_t i = 0; i < vms_.size() && vm == vms_.size(); ++i)
    if (vms_[i].process == t.tgid && !vms_[i].thread_of_id.count(id)) vm = i;
  if (vm == vms_.size()) new_vm(t.tgid);
  vms_[vm].thread_of_id.emplace(id, t.pid);
  vm_of_thread_.emplace(t.pid, vm);
  return vm;
}

uint16_t Linker::recorded_vcpu(uint32_t vm, int32_t id) {
  const auto key = std::make_pair(vm, id);
  if (auto it = recorded_of_.find(key); it != recorded_of_.end()) return it->second;
  // The first VM keeps its vCPU numbers (a one-VM trace records what KVM printed); a later VM, or
  // a number already taken, gets the next one above every number in use.
  uint32_t n = static_cast<uint32_t>(std::min(id, 0xFFFF));
  if (vm != 0 || recorded_.count(static_cast<uint16_t>(n)))
    n = recorded_.empty() ? 0 : std::min<uint32_t>(recorded_.rbegin()->first + 1u, 0xFFFF);
  recorded_of_.emplace(key, static_cast<uint16_t>(n));
  recorded_.emplace(static_cast<uint16_t>(n), RecordedVcpu{vm, id});
  return static_cast<uint16_t>(n);
}

Linker::VcpuState& Linker::state(uint16_t vcpu) {
  if (vcpus_.size() <= vcpu) vcpus_.resize(static_cast<size_t>(vcpu) + 1);
  return vcpus_[vcpu];
}

es_record* Linker::held(uint64_t id) {
  if (id < base_id_ || id >= next_id_) return nullptr;
  return &held_[static_cast<size_t>(id - base_id_)];
}

es_record& Linker::push(uint16_t kind, uint32_t flags) {
  es_record r{};
  r.version = ES_RECORD_VERSION;
  r.kind = kind;
  r.level = 1;
  r.hv_level = 0;
  r.vcpu = cur_vcpu_;
  r.id = next_id_++;
  r.time_ns = cur_time_;
  r.flags = flags;
  held_.push_back(r);
  return held_.back();
}

// push() a record whose fields come from `parsed` (an exit's decode), keeping the id, vCPU and
// time push() stamped; `level` is the guest level it concerns, seen by L0.
es_record& Linker::push_parsed(uint16_t kind, const es_record& parsed, uint8_t level) {
  es_record& e = push(kind, parsed.flags);
  const uint64_t id = e.id;
  const uint16_t vcpu = e.vcpu;
  const uint64_t time = e.time_ns;
  e = parsed;
  e.version = ES_RECORD_VERSION;
  e.kind = kind;
  e.id = id;
  e.vcpu = vcpu;
  e.time_ns = time;
  e.level = level;
  e.hv_level = 0;
  return e;
}

// A chain root for an event whose origin the trace does not show.
uint64_t Linker::raise(uint32_t word, uint32_t error, uint8_t level) {
  es_record& r = push(ES_KIND_RAISE, ES_FLAG_INFERRED);
  r.origin = r.id;
  r.level = level;
  r.intr_info = word;
  r.intr_error = error;
  return r.id;
}

// Fills an exit record's fields from kvm_exit / kvm_nested_vmexit(_inject) by era and vendor
// (decode_exit, kvmtrace/decode.h).
void Linker::fill_exit(es_record& r, const KvmEvent& t) {
  InfoPairMeaning meaning = era_.info_pair();
  bool contested = era_.contested();
  if (speculating_ && !t.exit.svm() && t.exit.format == ExitFormat::InfoPair) {  // decode_exit reads them
    meaning = era_.decision(contested);
    spec_info_pair_ |= info_pair_answer(meaning, contested);
  }
  const DecodedExit d = decode_exit(t, t.exit.svm(), meaning, contested);
  r.reason = d.reason;
  r.rip = d.rip.value_or(0);
  if (!d.rip) r.flags |= ES_FLAG_RIP_UNKNOWN;
  r.qualification = d.qualification;
  r.idt_vectoring_info = d.idt_vectoring_info.value_or(0);
  r.idt_vectoring_error = d.idt_vectoring_error;
  r.intr_info = d.exit_intr_info.value_or(0);
  r.intr_error = d.exit_intr_error;
  // What the line's era / format does not print is unknown, not 0 (inspect says so).
  if (!d.idt_vectoring_info) r.flags |= ES_FLAG_VECTORING_UNKNOWN;
  if (!d.svm && !d.exit_intr_info) r.flags |= ES_FLAG_EXIT_INTR_UNKNOWN;
  if (d.inferred) r.flags |= ES_FLAG_INFERRED;
  assumed_info2_ |= d.assumed_info2_vectoring;
  if (d.svm) {
    r.flags |= ES_FLAG_SVM;
    r.aux64 = d.exit_info2.value_or(0);  // EXITINFO2 (record.h)
    r.guest_phys = d.guest_phys.value_or(0);
    saw_svm_ = true;
  } else {
    saw_vmx_ = true;
  }
}

namespace {

// SDM Vol. 3A 6.13 "Error Code": with bit 1 (IDT) set, bits 15:3 index a gate of the IDT. An
// intercepted #TS / #NP / #SS / #GP whose error code names the gate of the event KVM just injected
// was raised while delivering that event (its gate is absent or bad, or a push faulted on the
// way): the delivery did not complete, whatever the exit's IDT-vectoring / EXITINTINFO shows
// (traces before 5.10 do not print it). AMD APM Vol. 2 15.12: SVM's exception intercepts are
// codes 0x40 + vector, EXITINFO1 the error code; VMX: exit 0 with the interruption info.
bool exit_faults_delivery_of(const es_record& e, uint32_t injected_word) {
  const arch::EntryIntrInfo injected(injected_word);
  if (!injected.valid()) return false;
  uint32_t vector = 0, error = 0;
  if (e.flags & ES_FLAG_SVM) {
    if (e.reason < 0x40 || e.reason > 0x5f) return false;
    vector = e.reason - 0x40;
    error = static_cast<uint32_t>(e.qualification);
  } else {
    if (!arch::ExitReason(e.reason).is(arch::BasicExitReason::ExceptionOrNmi)) return false;
    const arch::ExitIntrInfo info(e.intr_info);
    if (!info.valid() || !info.error_code_valid()) return false;
    vector = info.vector();
    error = e.intr_error;
  }
  if (vector != arch::kTS && vector != arch::kNP && vector != arch::kSS && vector != arch::kGP) return false;
  return (error & 2) != 0 && ((error >> 3) & 0x1fff) == injected.vector();
}

// The exception an exit intercepted (VMX: exit reason 0 with a hardware exception in the exit
// interruption info, SDM Vol. 3C 28.2.2; SVM: exit codes 0x40 + vector, APM Vol. 2 15.12), or -1.
int intercepted_exception(const es_record& e) {
  if (e.flags & ES_FLAG_SVM) return e.reason >= 0x40 && e.reason <= 0x5f ? static_cast<int>(e.reason - 0x40) : -1;
  if (!arch::ExitReason(e.reason).is(arch::BasicExitReason::ExceptionOrNmi)) return -1;
  const arch::ExitIntrInfo info(e.intr_info);
  if (!info.valid() || info.type() != arch::InterruptionType::HardwareException) return -1;
  return static_cast<int>(info.vector());
}

// Table 6-5 "Conditions for Generating a Double Fault": a contributory exception or a page fault
// while delivering a contributory exception, or a page fault while delivering a page fault.
bool double_fault_class(uint32_t first_word) {
  const arch::EntryIntrInfo first(first_word);
  if (!first.valid() || first.type() != arch::InterruptionType::HardwareException) return false;
  const arch::ExceptionClass c = arch::exception_class(static_cast<uint8_t>(first.vector()));
  return c == arch::ExceptionClass::Contributory || c == arch::ExceptionClass::PageFault;
}

}  // namespace

void Linker::on_exit(const KvmEvent& t, VcpuState& st, uint8_t level) {
  saw_exit_ = true;
  st.injected_l2_unentered = false;  // an exit: L2 (if entered) has run
  st.intr_reflect = 0;
  es_record probe{};
  fill_exit(probe, t);
  if (probe.flags & ES_FLAG_SVM) {
    const arch::SvmNpfInfo npf(probe.qualification);
    const bool vmgexit = probe.reason == static_cast<uint32_t>(arch::SvmExitCode::Vmgexit) ||
                         (probe.reason >= 0x80000000u && probe.reason <= 0x8000ffffu);  // the GHCB's own codes
    const bool snp_npf =
        probe.reason == static_cast<uint32_t>(arch::SvmExitCode::Npf) && (npf.rmp_check() || npf.vmpl_check());
    if (vmgexit || snp_npf) st.state_encrypted = true;
  }
  if (st.state_encrypted && probe.rip == 0) probe.flags |= ES_FLAG_RIP_UNKNOWN;
  const IdtVectoringInfo vec(probe.idt_vectoring_info);
  const uint32_t vec_word = arch::to_reinjection(vec).raw();
  const bool in_flight = st.phase == VcpuState::Phase::Entered || st.phase == VcpuState::Phase::Decided;
  // The exit is a fault raised by the injected event's own delivery: that delivery never
  // completed, so no delivery is inferred and the exit continues the event's chain.
  if (st.phase == VcpuState::Phase::Entered && st.chain != 0 && !vec.valid() &&
      exit_faults_delivery_of(probe, st.word)) {
    if (level != 2 && st.entered_level == 2) level = 2;
    st.exit_level_seen = level == 2 && t.event == Tracepoint::NestedVmexit;
    es_record& e = push_parsed(ES_KIND_VM_EXIT, probe, level);
    e.origin = st.chain;
    e.cause = st.last_link;
    st.last_link = e.id;
    st.phase = VcpuState::Phase::Exited;
    st.delivery_faulted = true;
    st.open_exit = e.id;
    return;
  }
  if (st.phase == VcpuState::Phase::HeldByL1 && !vec.valid() && !is_shutdown_exit(probe)) {
    // An exit of L1 while the event waits in vmcb12 / vmcs12 for L1 to inject it again.
    if (level != 2 && st.entered_level == 2) level = 2;
    st.exit_level_seen = level == 2 && t.event == Tracepoint::NestedVmexit;
    st.open_exit = push_parsed(ES_KIND_VM_EXIT, probe, level).id;
    return;
  }
  if (is_shutdown_exit(probe) && st.chain != 0 && (in_flight || st.phase == VcpuState::Phase::Exited)) {
    // As for any exit: whether a kvm_nested_vmexit line already said its level (a later one for
    // the same exit joins it; settle_exit_level decides without one).
    st.exit_level_seen = level == 2 && t.event == Tracepoint::NestedVmexit;
    on_shutdown(probe, st, level == 2 ? 2 : st.entered_level);
    return;
  }
  const bool continues =
      (in_flight || st.phase == VcpuState::Phase::Exited) && vec.valid() && same_event(vec_word, st.word);
  if (!continues && in_flight) {
    // The next exit no longer reports the event in IDT-vectoring info: its delivery completed
    // (SDM Vol. 3C 28.2.4 "Information for VM Exits That Occur During Event Delivery"). Before
    // 5.10 the exit does not print it at all, so this is an inference either way.
    // A trace never shows the CR2 of a delivered #PF (or any delivery): not 0, unknown.
    push_inferred_delivery(st, st.entered_level);  // delivered in the guest the last entry went to
  } else if (!continues) {
    st.reset_event();
  }
  // kvm_exit says nothing about the level: L2 when the vCPU was entered into L2 (a
  // kvm_nested_vmexit line confirms it, settle_exit_level() decides without one).
  if (level != 2 && st.entered_level == 2) level = 2;
  // The event in IDT-vectoring info was being delivered in the guest that exited (SDM Vol. 3C
  // 28.2.4): its raise is at the exit's level. A kvm_nested_vmexit is L2's even when the excerpt
  // shows no entry into L2 (KVM traces it only for an exit in guest mode).
  uint64_t root = 0;
  if (vec.valid() && !continues) root = raise(vec_word, probe.idt_vectoring_error, level);
  st.exit_level_seen = level == 2 && t.event == Tracepoint::NestedVmexit;
  es_record& e = push_parsed(ES_KIND_VM_EXIT, probe, level);
  const uint64_t id = e.id;
  if (continues) {
    e.origin = st.chain;
    e.cause = st.last_link;
    st.last_link = id;
    st.phase = VcpuState::Phase::Exited;
  } else if (root) {
    e.origin = e.cause = root;
    st.chain = root;
    st.word = vec_word;
    st.error = probe.idt_vectoring_error;
    st.last_link = id;
    st.phase = VcpuState::Phase::Exited;
  }
  st.open_exit = id;
}

// SDM Vol. 3A 6.15 "Interrupt 8 -- Double Fault Exception (#DF)" / AMD APM Vol. 2 8.2.9: a fault
// while the processor delivers #DF shuts it down (a triple fault); a shutdown is reached only
// through the delivery of an event that went wrong. VMX reports it as exit reason 2 (Vol. 3C
// 26.2 / 27.1), SVM as the SHUTDOWN intercept, exit code 0x7f (APM Vol. 2 Appendix C).
bool Linker::is_shutdown_exit(const es_record& e) {
  if (e.flags & ES_FLAG_SVM) return e.reason == static_cast<uint32_t>(arch::SvmExitCode::Shutdown);
  return arch::ExitReason(e.reason).is(arch::BasicExitReason::TripleFault);
}

// A shutdown exit while an event was being injected or delivered on this vCPU: that delivery
// escalated (#DE -> #GP -> #DF -> shutdown, say) and ended here, so it is never a delivery
// (the "next exit no longer reports it" inference of on_exit does not apply). The exit joins the
// event's chain whatever its IDT-vectoring / EXITINTINFO says:
//   - the event itself (what QEMU's SVM reports: the event whose delivery started it all): the
//     exit is the chain's end;
//   - nothing (VMX never reports IDT-vectoring at a triple fault, 28.2.4): the same, the link
//     marked inferred (the handler may have been reached and a later fault escalated);
//   - another event: it was raised during the chain's delivery and was itself being delivered
//     when the processor shut down. #DF (Table 6-5: the pair the original formed) is recorded
//     as a RAISE in the original chain, as a promotion keeps the failed delivery's chain; any
//     other as an inferred RAISE of its own chain caused inside this one (so `chains` shows it as
//     interrupting the original's delivery), and the exit names it as its cause.
void Linker::on_shutdown(const es_record& probe, VcpuState& st, uint8_t level) {
  const IdtVectoringInfo vec(probe.idt_vectoring_info);
  const uint32_t vec_word = arch::to_reinjection(vec).raw();
  uint64_t cause = st.last_link;
  if (vec.valid() && !same_event(vec_word, st.word)) {
    const EntryIntrInfo other(vec_word);
    const bool double_fault = other.vector() == arch::kDF && other.type() == arch::InterruptionType::HardwareException;
    es_record& r = push(ES_KIND_RAISE, ES_FLAG_INFERRED);
    r.origin = double_fault ? st.chain : r.id;
    r.cause = st.last_link;
    r.intr_info = vec_word;
    r.intr_error = probe.idt_vectoring_error;
    r.level = level;
    cause = r.id;
  }
  es_record& e = push_parsed(ES_KIND_VM_EXIT, probe, level);
  e.origin = st.chain;
  e.cause = cause;
  // VMX never reports IDT-vectoring info at a triple-fault exit (SDM Vol. 3C 28.2.4), SVM may
  // leave EXITINTINFO clear: the link to the event injected last is then inferred.
  if (!vec.valid()) e.flags |= ES_FLAG_INFERRED;
  const uint64_t id = e.id;
  // Nothing is in flight after a shutdown: KVM returns KVM_EXIT_SHUTDOWN to user space.
  st.reset_event();
  st.open_exit = id;
}

// kvm_nested_vmexit follows kvm_exit for the same L2 exit: mark that exit as L2's; without
// a kvm_exit line, the nested line is the exit.
void Linker::on_nested_vmexit(const KvmEvent& t, VcpuState& st) {
  saw_nested_ = true;
  saw_exit_ = true;
  nested_vmexit_traced_ = true;
  st.level = 2;  // the vCPU was in L2 (if L0 handles the exit, it goes back there)
  // The kvm_exit this line belongs to, if it is still open and no kvm_nested_vmexit claimed it
  // yet: KVM traces one kvm_nested_vmexit per exit from L2, so a second one (an excerpt without
  // kvm_exit / kvm_entry lines) is the next exit, even at the same RIP and reason.
  if (es_record* e = held(st.open_exit); e && !st.exit_level_seen) {
    if (e->kind == ES_KIND_VM_EXIT && t.exit.reason == e->reason && (!t.rip || e->rip == *t.rip)) {
      set_exit_level(*e, 2);
      st.exit_level_seen = true;
      return;
    }
  }
  on_exit(t, st, 2);
}

// An exit's level, once a later line says it (kvm_nested_vmexit, kvm_nested_vmexit_inject, or
// the absence of the first): the kvm_page_fault records of that exit, held with it, follow.
es_record* Linker::inferred_raise_of(const es_record& exit) {
  if (exit.cause == 0 || exit.cause + 1 != exit.id) return nullptr;
  es_record* r = held(exit.cause);
  return r && r->kind == ES_KIND_RAISE && (r->flags & ES_FLAG_INFERRED) ? r : nullptr;
}

void Linker::set_exit_level(es_record& e, uint8_t level) {
  e.level = level;
  // The event in the exit's IDT-vectoring was being delivered in the guest that exited (SDM
  // Vol. 3C 28.2.4): the raise inferred from it moves with the exit.
  if (es_record* r = inferred_raise_of(e)) r->level = level;
  bool handling = true;  // still in this exit's handling on its vCPU: only context records so far
  for (uint64_t id = e.id + 1; id < next_id_; ++id) {
    es_record* c = held(id);
    if (!c) continue;
    if (c->kind == ES_KIND_CONTEXT && c->reason == ES_CONTEXT_PAGE_FAULT && c->cause == e.id) c->level = level;
    if (c->vcpu != e.vcpu) continue;
    if (c->kind != ES_KIND_CONTEXT) handling = false;
    // The exit's other context events, up to the vCPU's next record of another kind (on_context).
    if (handling && follows_exit_level(c->reason) && c->cause == 0) c->level = level;
  }
}

// An exit labelled L2 because the vCPU had been entered into L2, with no kvm_nested_vmexit line
// for it, once the next event shows it is over. KVM traces kvm_nested_vmexit for every exit in
// guest mode (svm_handle_exit(), nested_vmx_reflect_vmexit()): in a trace that has that
// tracepoint, an exit without one was L1's (the vCPU left L2 in a part the excerpt lacks);
// in a trace without it, L2 stays, inferred from kvm_nested_vmenter, and describe() says so.
void Linker::settle_exit_level(VcpuState& st) {
  es_record* e = held(st.open_exit);
  if (!e || e->kind != ES_KIND_VM_EXIT || e->level != 2 || st.exit_level_seen) return;
  st.exit_level_seen = true;
  if (speculating_ && !nested_vmexit_traced_) spec_needed_nested_ = true;
  if (nested_vmexit_traced_) {
    set_exit_level(*e, 1);
    st.level = 1;
  } else {
    ++levels_from_tracking_;
  }
}

namespace {

// An exit of L1's instruction that enters L2: VMRUN (SVM exit code 0x80), VMLAUNCH / VMRESUME
// (VMX basic reasons 20 / 24); with `rsm`, also RSM (SVM 0x73, VMX 17), which returns into L2
// when the SMI came there.
bool is_nested_entry_exit(const es_record& e, bool rsm) {
  if (e.flags & ES_FLAG_SVM)
    return e.reason == static_cast<uint32_t>(arch::SvmExitCode::Vmrun) ||
           (rsm && e.reason == static_cast<uint32_t>(arch::SvmExitCode::Rsm));
  const arch::ExitReason r(e.reason);
  return r.is(arch::BasicExitReason::Vmlaunch) || r.is(arch::BasicExitReason::Vmresume) ||
         (rsm && r.is(arch::BasicExitReason::Rsm));
}

// A reflected exit that says the nested entry itself failed: SVM_EXIT_ERR (VMRUN with an invalid
// guest state, APM Vol. 2 15.5.1) or a VMX VM-entry failure (basic reason with bit 31 set, SDM
// Vol. 3C 27.8).
bool nested_entry_failed(const es_record& n) {
  if (n.flags & ES_FLAG_SVM)
    return n.reason == static_cast<uint32_t>(arch::SvmExitCode::Invalid) ||
           n.reason == static_cast<uint32_t>(arch::SvmExitCode::Busy);
  return arch::ExitReason(n.reason).entry_failure();
}

}  // namespace

// kvm_nested_vmexit_inject: L0 reflects the L2 exit to L1 (vmcs12 exit fields).
void Linker::on_nested_inject(const KvmEvent& t, VcpuState& st) {
  saw_nested_ = true;
  saw_exit_ = true;
  es_record* open = held(st.open_exit);
  // Only an L2 exit is reflected to L1: the exit before this line was L2's, said or not.
  if (open && open->kind == ES_KIND_VM_EXIT && !st.exit_level_seen) {
    ++levels_from_reflect_;
    set_exit_level(*open, 2);
    st.exit_level_seen = true;
  }
  // An exit said to be L1's (the VMRUN / VMRESUME of the nested entry before) is not the one
  // reflected: this exit was made up by KVM without an exit of L2 (kvm_nested_intr_vmexit, or a
  // line the excerpt lacks).
  if (open && open->kind == ES_KIND_VM_EXIT && open->level == 1) open = nullptr;
  // The REFLECT_TO_L1 of a kvm_nested_intr_vmexit just before is this exit's: its RIP is L2's.
  es_record* intr = st.intr_reflect ? held(st.intr_reflect) : nullptr;
  st.intr_reflect = 0;
  const uint64_t l2_exit = open ? open->id : 0;
  const uint64_t origin = open ? open->origin : 0;
  const uint64_t l2_rip = open ? open->rip : intr ? intr->rip : 0;
  const bool l2_rip_known = open ? !(open->flags & ES_FLAG_RIP_UNKNOWN) : intr && !(intr->flags & ES_FLAG_RIP_UNKNOWN);
  uint64_t did = 0;
  if (intr) {
    intr->cause = l2_exit;
    intr->origin = origin;
    did = intr->id;
  } else {
    es_record& d = push(ES_KIND_DECISION, t.exit.svm() ? ES_FLAG_SVM : 0);  // aux: the exit code in SVM's numbering
    d.reason = ES_DECISION_REFLECT_TO_L1;
    d.level = 2;
    d.cause = l2_exit;
    d.origin = origin;
    d.aux = t.exit.reason.value_or(0);
    did = d.id;
  }
  es_record n{};
  fill_exit(n, t);
  // kvm_nested_vmexit_inject prints no RIP: L2's, from the exit it reflects (vmcb12 / vmcs12
  // get the RIP L2 exited at); unknown without that exit.
  if (!t.rip && l2_rip_known) {
    n.rip = l2_rip;
    n.flags &= ~ES_FLAG_RIP_UNKNOWN;
  }
  es_record& e = push_parsed(ES_KIND_NESTED_EXIT, n, 2);
  e.cause = did;
  e.origin = origin;
  const uint64_t nid = e.id;
  // The event L2 was being delivered is now L1's to reinject (vmcb12's EXITINTINFO, vmcs12's
  // IDT-vectoring field): the chain waits for L1's VMRUN / VMRESUME that injects it
  // (kvm_nested_vmenter's event_inj); the next L0 entry goes to L1, not carrying it.
  const IdtVectoringInfo vec(n.idt_vectoring_info);
  const bool carried = vec.valid() && same_event(arch::to_reinjection(vec).raw(), st.word);
  if (origin && carried) {
    st.phase = VcpuState::Phase::HeldByL1;
    st.last_link = nid;
  } else if (st.injected_l2_unentered && st.phase == VcpuState::Phase::Decided && !carried && !nested_entry_failed(n)) {
    // L1 asked to inject this event at its nested entry, L2 never ran, and the exit to L1 does
    // not hand it back: an event being injected when the exit happened goes to vmcb12's
    // EXITINTINFO / vmcs12's IDT-vectoring information (AMD APM Vol. 2 15.7.2 "Intercepts During
    // IDT Interrupt Delivery"; SDM Vol. 3C 28.2.4; KVM nested_save_pending_event_to_vmcb12,
    // vmcs12_save_pending_event). L0 threw it away.
    // A paste that elides lines in between may hide L2's entry (and its exit): then the discard
    // is what the shown lines imply, marked inferred and said (describe()).
    const bool across_elision = elisions_ != st.elisions_at_nested_entry;
    if (across_elision && ++discards_across_elision_ <= 5) elided_discard_lines_.push_back(cur_line_);
    es_record& x = push(ES_KIND_DECISION, (t.exit.svm() ? ES_FLAG_SVM : 0) | (across_elision ? ES_FLAG_INFERRED : 0));
    x.reason = ES_DECISION_DISCARD;
    x.aux = ES_DISCARD_NOT_HANDED_BACK;
    x.level = 2;
    x.intr_info = st.word;
    x.intr_error = st.error;
    x.origin = st.chain;
    x.cause = nid;
    st.reset_event();
  } else {
    // (A failed nested entry, SVM_EXIT_ERR / a VMX entry failure, injected nothing: KVM hands
    // nothing back then, nested_svm_vmexit_update_vmcb12 / nested_vmx_vmexit.)
    st.reset_event();
  }
  st.level = 1;
  st.open_exit = 0;
}

// kvm_nested_vmenter: KVM emulated L1's VMRUN (VMLAUNCH / VMRESUME): the next entry goes to
// L2, with the event L1 asked to inject, if any (AMD APM Vol. 2 15.20 "Event Injection": the
// EVENTINJ field, same layout as EXITINTINFO; SDM Vol. 3C 25.8.3 / 27.6 for vmcs12's VM-entry
// interruption information). Recorded as a NESTED_ENTRY at L2 (hv_level 1: L1's request);
// an injection starts its chain there, observed, not inferred, unless it is L1 reinjecting
// the event the exit it was reflected still reported: then that chain goes on.
//
// What the tracepoint does not give stays unknown (record.h, ES_KIND_NESTED_ENTRY): an entry's
// aux / aux64 are the entered interruptibility state and RFLAGS, which the checker's
// irq-window-closed and nmi-while-blocked rules read (SDM Vol. 3C 27.3.1.4 / 27.3.1.5), and
// neither is printed: int_ctl is vmcs12's guest interrupt status on VMX (nested_vmx_enter_non_root_mode
// passes vmcs12->guest_intr_status) and vmcb12's V_IRQ / V_TPR / V_INTR_MASKING word on SVM
// (nested_svm_vmrun), the other "rip" is L1's. So aux = aux64 = 0 (RFLAGS bit 1 clear = not
// recorded). L1's RIP is the RIP of L1's own VMRUN / VMLAUNCH / VMRESUME exit that L0 is handling
// (the kvm_exit just before, at L1): it goes there when that exit did not print one.
void Linker::on_nested_vmenter(const KvmEvent& t, VcpuState& st) {
  saw_nested_ = true;
  // The open exit is the one KVM is handling by this nested entry: L1's VMRUN / VMLAUNCH /
  // VMRESUME (AMD APM Vol. 2 15.5 "VMRUN Instruction"; SDM Vol. 3C 26.1: VM-entry instructions
  // executed in VMX non-root operation cause VM exits), so it is L1's whatever the vCPU's last
  // entry was, and a later line of this entry (a reflected exit) does not relabel it.
  // KVM also traces this line when it restores a vCPU into L2 (KVM_SET_NESTED_STATE on VMX) and
  // on RSM back into L2 (vmx_leave_smm / svm_leave_smm): only an open exit that is one of those
  // instructions is taken as L1's, and only after L1's VMRUN / VMLAUNCH / VMRESUME is the
  // injection known to be new and not yet delivered.
  es_record* vmrun_exit = held(st.open_exit);
  if (vmrun_exit && (vmrun_exit->kind != ES_KIND_VM_EXIT || !is_nested_entry_exit(*vmrun_exit, true)))
    vmrun_exit = nullptr;
  if (vmrun_exit && !st.exit_level_seen) {
    if (vmrun_exit->level != 1) set_exit_level(*vmrun_exit, 1);
    st.exit_level_seen = true;
  }
  settle_exit_level(st);
  if (es_record* l1_exit = held(st.open_exit);
      l1_exit && l1_exit->kind == ES_KIND_VM_EXIT && l1_exit->level == 1 && (l1_exit->flags & ES_FLAG_RIP_UNKNOWN)) {
    l1_exit->rip = t.nested_vmenter().l1_rip;
    l1_exit->flags &= ~ES_FLAG_RIP_UNKNOWN;
  }
  const Injection inj = t.injected.value_or(Injection{});
  uint32_t word = inj.word;
  const bool svm = t.nested_vmenter().isa == Isa::Svm;
  if (svm) word = arch::to_vmx_entry(arch::SvmEventInfo::from_parts(inj.word, 0)).raw();
  const bool injects = EntryIntrInfo(word).valid();
  es_record& r = push(ES_KIND_NESTED_ENTRY, (svm ? ES_FLAG_SVM : 0) | (t.rip ? 0 : ES_FLAG_RIP_UNKNOWN));
  r.level = 2;
  r.hv_level = 1;
  r.rip = t.rip.value_or(0);
  r.guest_phys = t.nested_vmenter().vmcb;  // the VMCB / VMCS12 L1 named
  // aux (interruptibility), aux64 (RFLAGS): unknown, 0 (see above).
  r.intr_info = injects ? word : 0;
  const uint64_t id = r.id;
  const bool continues = injects && (st.phase == VcpuState::Phase::Exited || st.phase == VcpuState::Phase::HeldByL1) &&
                         same_event(word, st.word);
  if (continues) {
    r.origin = st.chain;
    r.cause = st.last_link;
    st.last_link = id;
    st.word = word;
    st.phase = VcpuState::Phase::Decided;
  } else if (injects) {
    r.origin = id;
    st.chain = id;
    st.word = word;
    st.error = 0;  // kvm_nested_vmenter does not print EVENTINJ's error code
    st.last_link = id;
    st.phase = VcpuState::Phase::Decided;
  } else {
    st.reset_event();
  }
  // After L1's traced exit: until this vCPU's next exit or entry, L2 has not run.
  st.injected_l2_unentered = injects && vmrun_exit && is_nested_entry_exit(*vmrun_exit, false);
  st.elisions_at_nested_entry = elisions_;
  st.intr_reflect = 0;
  st.level = 2;
}

// The event in flight injected again: an INJECT_REINJECTED in its chain, caused by `cause`; said
// by the kernel when it printed [reinjected], inferred otherwise.
// The event in flight delivered (inferred) in the guest at `level`; the vCPU has none in flight
// after. A trace never shows the CR2 of a delivered #PF (or of any delivery): unknown, not 0.
es_record& Linker::push_inferred_delivery(VcpuState& st, uint8_t level) {
  es_record& d = push(ES_KIND_DELIVERY, ES_FLAG_INFERRED | ES_FLAG_CR2_UNKNOWN);
  d.origin = st.chain;
  d.cause = st.last_link;
  d.intr_info = st.word;
  d.intr_error = st.error;
  d.level = level;
  st.reset_event();
  return d;
}

void Linker::reinject_in_chain(VcpuState& st, const Injection& inj, uint64_t cause) {
  es_record& d = push(ES_KIND_DECISION, inj.reinjected ? 0 : ES_FLAG_INFERRED);
  d.level = st.level;
  d.reason = ES_DECISION_INJECT_REINJECTED;
  d.intr_info = inj.word;
  d.intr_error = inj.error_code;
  d.origin = st.chain;
  d.cause = cause;
  st.word = inj.word;
  st.error = inj.error_code;
  st.last_link = d.id;
  st.elisions_at_injection = elisions_;
  st.kvm_events_at_injection = st.kvm_events;
}

void Linker::on_inject(const KvmEvent& t, VcpuState& st) {
  const Injection inj = t.injected.value_or(Injection{});
  settle_exit_level(st);
  // A kernel that can say "[reinjected]" (5.19+) and did not: KVM injects a new event of the
  // same vector, not the one the exit found in IDT-vectoring info (that one is not reinjected
  // here and, unless a later injection is, its chain never shows a delivery).
  const bool kernel_says_new = inj.reinjected_printed_era && !inj.reinjected;
  // (An exit that was a fault of the delivery itself reported no IDT-vectoring: what KVM injects
  // next is its answer to that fault, a new event, not the first one again.)
  const bool matches =
      st.phase == VcpuState::Phase::Exited && !st.delivery_faulted && same_event(inj.word, st.word) && !kernel_says_new;
  // The same event injected again with no VM entry since the last injection: KVM cancelled that
  // one before VMRUN / VMLAUNCH (vcpu_enter_guest's cancel_injection path after a late request,
  // signal or need_resched: svm_cancel_injection / vmx_cancel_injection move EVENTINJ / the
  // VM-entry interruption info back to the queue as an injected event, and the next
  // kvm_check_and_inject_events injects it again, which 5.19+ prints "[reinjected]"). ftrace
  // has no cancel event: the cancellation is recorded as an inferred CANCEL_INJECTION and the
  // event's chain goes on.
  // Only where the trace has kvm_entry lines at all: an excerpt without them (perf script of
  // kvm_inj_virq alone, a list of print formats) says nothing about entries in between.
  const bool cancelled =
      st.phase == VcpuState::Phase::Decided && st.chain != 0 && same_event(inj.word, st.word) && !kernel_says_new;
  if (speculating_ && cancelled && !saw_entry_) spec_needed_entry_ = true;
  if (saw_entry_ && cancelled) {
    es_record& c = push(ES_KIND_DECISION, ES_FLAG_INFERRED);
    c.level = st.level;
    c.reason = ES_DECISION_CANCEL_INJECTION;
    c.intr_info = st.word;
    c.intr_error = st.error;
    c.origin = st.chain;
    c.cause = st.last_link;
    reinject_in_chain(st, inj, c.id);
    return;
  }
  // A trace with no kvm_entry lines at all (a host whose KVM never fires kvm_entry / kvm_exit, or
  // an excerpt of injections alone): the same event injected again and marked "[reinjected]" is,
  // by the kernel's word, the one it injected before (kvm_inject_exception and the interrupt /
  // NMI paths trace the queue's `injected` flag: KVM still held the event as injected, no delivery
  // of it having completed). Why it did (a cancelled entry, an exit of its delivery, a state
  // restore) the trace does not show, so nothing is inferred between them; the chain goes on.
  if (cancelled && inj.reinjected) {
    reinject_in_chain(st, inj, st.last_link);
    return;
  }
  uint64_t origin = 0, cause = 0;
  uint32_t reason = ES_DECISION_INJECT_NEW, flags = 0;
  // KVM merges a fault raised while delivering a contributory exception / #PF into #DF
  // (kvm_multiple_exception, after SDM Vol. 3A Table 6-5): the #DF is the same story, raised in
  // that chain as the hv model records it, and the chain ends "promoted to #DF" or in a triple fault.
  const bool promoted = st.phase == VcpuState::Phase::Exited && st.chain != 0 && double_fault_class(st.word) &&
                        arch::EntryIntrInfo(inj.word).type() == arch::InterruptionType::HardwareException &&
                        arch::EntryIntrInfo(inj.word).vector() == arch::kDF;
  if (promoted) {
    es_record& r = push(ES_KIND_RAISE, 0);
    r.origin = st.chain;
    r.cause = st.last_link;
    r.level = st.level;
    r.intr_info = inj.word;
    r.intr_error = inj.error_code;
    origin = st.chain;
    cause = r.id;
  } else if (matches) {
    origin = st.chain;
    cause = st.last_link;
    reason = ES_DECISION_INJECT_REINJECTED;
    if (!inj.reinjected) {
      flags = ES_FLAG_INFERRED;  // the kernel does not say; IDT-vectoring does
      kernel_without_reinjected_ = true;
    }
  } else {
    // The exit before it stopped the chain's event in its delivery (IDT-vectoring / EXITINTINFO
    // named it, or a fault of the delivery itself): no DELIVERY happened (SDM Vol. 3C 28.2.4
    // "Information for VM Exits That Occur During Event Delivery", AMD APM Vol. 2 15.7.2), and
    // KVM requeued the event (vmx_complete_interrupts / svm_complete_interrupts ->
    // kvm_requeue_exception, or the interrupt / NMI queue marked injected). KVM now injects
    // another exception instead: kvm_multiple_exception() found the requeued one "injected" and,
    // short of the #DF merge above, replaced it ("in a hope that instruction re-execution will
    // regenerate lost exception"); an interrupt or NMI in the queue is not reinjected beside a
    // pending exception (kvm_check_and_inject_events) and the next exit's complete_interrupts
    // clears the queue. Either way the event is thrown away here: a DISCARD decision in its chain,
    // caused by that exit.
    const bool requeued = st.phase == VcpuState::Phase::Exited && st.chain != 0;
    const arch::EntryIntrInfo answer(inj.word);
    const bool answer_is_exception = answer.type() == arch::InterruptionType::HardwareException ||
                                     answer.type() == arch::InterruptionType::SoftwareException ||
                                     answer.type() == arch::InterruptionType::PrivilegedSoftwareException;
    // The exception KVM injects is the one the exit intercepted (a #PF / #GP intercept during the
    // delivery that KVM found to be the guest's): raised during that delivery, so its chain is
    // caused by the exit, inside the first event's, and chains reads the pair by Table 6-5.
    uint64_t raised_by = 0;
    if (requeued && answer.type() == arch::InterruptionType::HardwareException)
      if (const es_record* e = held(st.last_link);
          e && e->kind == ES_KIND_VM_EXIT && intercepted_exception(*e) == static_cast<int>(answer.vector()))
        raised_by = e->id;
    if (requeued && st.delivery_faulted) {
      // A fault of the delivery itself (no IDT-vectoring to requeue from: the gate the event
      // needed is bad, SDM Vol. 3A 6.13): chains judges the pair from that exit (Table 6-5; the
      // 2019 VMware backdoor bug answered #GP with #GP, not #DF). Nothing was delivered.
      st.delivery_faulted = false;
    } else if (requeued && answer_is_exception) {
      es_record& x = push(ES_KIND_DECISION, ES_FLAG_INFERRED);
      x.level = st.entered_level;  // the guest the event was being delivered to
      x.reason = ES_DECISION_DISCARD;
      x.intr_info = st.word;
      x.intr_error = st.error;
      x.origin = st.chain;
      x.cause = st.last_link;
    }
    origin = cause = raise(inj.word, inj.error_code, st.level);
    if (raised_by)
      if (es_record* r = held(origin)) r->cause = raised_by;
    if (inj.reinjected) reason = ES_DECISION_INJECT_REINJECTED;  // the exit that requeued it is not in the trace
  }
  es_record& d = push(ES_KIND_DECISION, flags);
  d.level = st.level;  // L0 injects into the guest the next entry goes to (L2 too)
  d.reason = reason;
  d.intr_info = inj.word;
  d.intr_error = inj.error_code;
  d.origin = origin;
  d.cause = cause;
  st.chain = origin;
  st.word = inj.word;
  st.error = inj.error_code;
  st.last_link = d.id;
  st.phase = VcpuState::Phase::Decided;
  st.delivery_faulted = false;
  st.elisions_at_injection = elisions_;
  st.kvm_events_at_injection = st.kvm_events;
}

void Linker::on_entry(const KvmEvent& t, VcpuState& st) {
  const Injection inj = t.injected.value_or(Injection{});
  saw_entry_ = true;
  st.injected_l2_unentered = false;
  st.intr_reflect = 0;
  settle_exit_level(st);
  st.entered_level = st.level;
  const bool carries = st.phase == VcpuState::Phase::Decided || st.phase == VcpuState::Phase::Exited;
  const bool injects = t.injected.has_value() && EntryIntrInfo(inj.word).valid();
  uint64_t root = 0;
  if (!(carries && (!t.injected.has_value() || same_event(inj.word, st.word))) && injects) {
    // An injection without an inj_* line: root it here, before the entry.
    root = raise(inj.word, inj.error_code, st.level);
  }
  // "kvm_entry: vcpu 0" (kernels before ~4.x, and trace-cmd's plugin) says no RIP: unknown, not 0.
  const bool rip_unknown = !t.rip || (st.state_encrypted && *t.rip == 0);  // see VcpuState::state_encrypted
  es_record& e =
      push(ES_KIND_VM_ENTRY, (t.immediate_exit ? ES_FLAG_IMMEDIATE_EXIT : 0) | (rip_unknown ? ES_FLAG_RIP_UNKNOWN : 0));
  e.level = st.level;
  e.rip = t.rip.value_or(0);
  if (t.injected.has_value()) {
    e.intr_info = inj.word;
    e.intr_error = inj.error_code;
  }
  if (root) {
    e.origin = e.cause = root;
    st.chain = root;
    st.word = inj.word;
    st.error = inj.error_code;
    st.last_link = e.id;
    st.phase = VcpuState::Phase::Entered;
  } else if (carries && (!t.injected.has_value() || same_event(inj.word, st.word))) {
    // KVM injects what it decided (or requeued from IDT-vectoring) at this entry; before 6.14
    // kvm_entry does not print it.
    if (!t.injected.has_value()) {
      e.intr_info = st.word;
      e.intr_error = st.error;
      e.flags |= ES_FLAG_INFERRED;
    }
    e.origin = st.chain;
    e.cause = st.last_link;
    st.last_link = e.id;
    st.phase = VcpuState::Phase::Entered;
  } else if (st.phase != VcpuState::Phase::Exited && st.phase != VcpuState::Phase::HeldByL1) {
    st.phase = VcpuState::Phase::Idle;
  }
  st.open_exit = 0;
}

void Linker::on_context(const KvmEvent& t, VcpuState& st) {
  // A trace without a single kvm_entry or kvm_exit line, in which the guest runs in KVM's x86
  // emulator: this CI host's KVM (the kvm_pvm backend, no VMX / SVM) running a real-mode guest,
  // which traces kvm_inj_exception, then one kvm_emulate_insn per guest instruction, and never
  // kvm_entry / kvm_exit. An injected event is delivered before the guest's next instruction (SDM
  // Vol. 3C 27.6.1 "Vectored-Event Injection"; real-address mode through the IVT, Vol. 3A 21.1.4):
  // the first instruction the emulator runs after the injection is the handler's, and the event
  // was delivered by then. Only there, and only:
  //  - in a trace with no kvm_entry and no kvm_exit at all (a source without a learning pass,
  //    trace.dat or live, answers from the events so far: where kvm_entry is traced, a host that
  //    enters the guest traces one between the injection and any emulated instruction), from a
  //    source that could have recorded them: with entries, the entry and the next exit say it (an SVM host emulates an
  //    INT3 / INTO to find its next RIP between kvm_inj_exception and kvm_entry,
  //    svm_update_soft_interrupt_rip, and drops the event if that fails); with exits but no
  //    entries (a filtered capture), an exit during the delivery may be what the emulator handles;
  //  - for a hardware exception, an external interrupt or an NMI, never a software event;
  //  - for an event a kvm_inj_* line decided, with no "..." since (the paste may hide the rest;
  //    a trace.dat's lost events count as one);
  //  - for the vCPU's next KVM event after that line: the emulator's next instruction. What came
  //    between (an exit to user space, a page fault) shows the guest ran in a way this trace does
  //    not show, as in a capture filtered to some events (the SVM test bed's tp_btf run:
  //    kvm_inj_exception, two KVM_EXIT_IO, then an emulated HLT).
  const bool emulated_after_injection = t.event == Tracepoint::EmulateInsn && st.phase == VcpuState::Phase::Decided &&
                                        st.chain != 0 && st.elisions_at_injection == elisions_ &&
                                        st.kvm_events == st.kvm_events_at_injection + 1 && !software_event(st.word) &&
                                        !entries_unrecorded_;
  if (speculating_ && emulated_after_injection && !saw_entry_ && !saw_exit_)
    spec_needed_entry_ = spec_needed_no_exit_ = true;
  if (emulated_after_injection && !saw_entry_ && !saw_exit_) {
    push_inferred_delivery(st, st.level).rip = t.rip.value_or(0);
  }
  // Other tracepoints' lines (sched_switch, rcu_utilization, write_msr: the importer keeps no
  // more of them than where they are) between two KVM events of a vCPU are one row: the first
  // line's time and line number (aux), the last one's line number (qualification) and how many
  // (aux64). A livelock paste has three per loop, 23 % of its lines (BENCHMARKS.md "Other
  // tracepoints' lines, one row per run"). take_settled holds an open run back.
  if (t.event == Tracepoint::Other) {
    if (es_record* run = held(st.other_run);
        run && run->kind == ES_KIND_CONTEXT && run->reason == ES_CONTEXT_OTHER_EVENT) {
      ++run->aux64;
      run->qualification = cur_line_;
      return;
    }
  }
  es_record& c = push(ES_KIND_CONTEXT, 0);
  c.aux = static_cast<uint32_t>(cur_line_);
  c.rip = t.rip.value_or(0);
  switch (t.event) {
    case Tracepoint::PageFault: {
      // kvm_page_fault's error code is 64 bits wide (since 6.4; AMD's NPF EXITINFO1 before):
      // KVM's PFERR_GUEST_FINAL (bit 32) and PFERR_GUEST_PAGE (bit 33) say whether the fault
      // hit the final GPA or a guest paging structure. Kept whole in aux64 (record.h).
      c.reason = ES_CONTEXT_PAGE_FAULT;
      c.guest_phys = t.page_fault().address;
      c.aux64 = t.page_fault().error_code;
      c.intr_error = static_cast<uint32_t>(t.page_fault().error_code);
      if (!t.rip) c.flags |= ES_FLAG_RIP_UNKNOWN;
      // The GPA of the EPT violation / NPF this fault handles (kvm_exit does not print it on VMX).
      if (es_record* e = held(st.open_exit)) {
        const bool ept = (e->flags & ES_FLAG_SVM)
                             ? e->reason == static_cast<uint32_t>(arch::SvmExitCode::Npf)
                             : (arch::ExitReason(e->reason).is(arch::BasicExitReason::EptViolation) ||
                                arch::ExitReason(e->reason).is(arch::BasicExitReason::EptMisconfig));
        if (ept && e->guest_phys == 0) e->guest_phys = t.page_fault().address;
        c.origin = 0;
        c.cause = e->id;
        // KVM traces kvm_page_fault in the handler of the exit it belongs to (VMX
        // handle_ept_violation(), SVM npf_interception(), both before kvm_mmu_page_fault(); the
        // #PF intercept's kvm_handle_page_fault()): the fault is in the guest that exited, L2 for
        // an exit of L2 (L0 walking its EPT / NPT for L2, or L1's as shadowed by L0), at L2(L0).
        c.level = e->level;
      }
      break;
    }
    case Tracepoint::EmulateInsn:
      // The bytes are kept (code table) only with ES_FLAG_BYTES_VALID, whose count is aux: the
      // line number gives way to it.
      c.reason = ES_CONTEXT_EMULATE_INSN;
      std::memcpy(c.bytes, t.emulate().bytes, sizeof c.bytes);
      c.instr_len = t.emulate().byte_count;
      c.aux = t.emulate().byte_count;
      if (t.emulate().byte_count) c.flags |= ES_FLAG_BYTES_VALID;
      c.intr_error = t.emulate().failed ? 1 : 0;
      break;
    case Tracepoint::UserspaceExit:
      c.reason = ES_CONTEXT_USERSPACE_EXIT;
      c.qualification = t.userspace_exit().reason;
      c.intr_error = static_cast<uint32_t>(t.userspace_exit().error);
      // KVM_EXIT_SHUTDOWN (8) right after a fault while delivering #DF: KVM turned it into a
      // triple fault itself (kvm_multiple_exception: KVM_REQ_TRIPLE_FAULT; SDM Vol. 3A 6.15), with
      // no shutdown exit of the CPU: the #DF's chain ends here.
      if (!t.userspace_exit().errno_printed() && t.userspace_exit().reason == 8 &&
          st.phase == VcpuState::Phase::Exited && st.delivery_faulted && st.chain != 0 &&
          arch::EntryIntrInfo(st.word).vector() == arch::kDF) {
        c.origin = st.chain;
        c.cause = st.last_link;
        st.reset_event();
        st.delivery_faulted = false;
      }
      break;
    case Tracepoint::Mmio:
      c.reason = ES_CONTEXT_MMIO;
      c.guest_phys = t.mmio().gpa;
      c.aux64 = t.mmio().value;
      c.intr_error = t.mmio().type;
      c.instr_len = t.mmio().len;
      break;
    case Tracepoint::Pio:
      c.reason = ES_CONTEXT_PIO;
      c.qualification = t.pio().port;
      c.aux64 = t.pio().value;
      c.intr_error = t.pio().write ? 1 : 0;
      c.instr_len = t.pio().size;
      break;
    case Tracepoint::Msr:
      c.reason = ES_CONTEXT_MSR;
      c.qualification = t.msr().index;
      c.aux64 = t.msr().data;
      c.intr_error = t.msr().write ? 1 : 0;
      break;
    case Tracepoint::ApicAcceptIrq:
    case Tracepoint::Eoi:
      c.reason = t.event == Tracepoint::Eoi ? ES_CONTEXT_EOI : ES_CONTEXT_APIC_ACCEPT_IRQ;
      c.qualification = t.apic().apicid;
      c.intr_info = EntryIntrInfo::make(t.apic().vector, arch::InterruptionType::ExternalInterrupt).raw();
      break;
    default:
      c.reason = ES_CONTEXT_OTHER_EVENT;
      c.aux64 = 1;
      c.qualification = cur_line_;
      st.other_run = c.id;
      break;
  }
  // kvm_pio, kvm_msr, kvm_mmio, kvm_emulate_insn are traced while L0 handles the open exit
  // (handle_io / io_interception, the MSR handlers, x86_emulate_instruction), kvm_userspace_exit
  // when KVM_RUN returns to userspace to finish it: they concern the guest that exited, L2 for an
  // exit of L2 that was not reflected to L1 (st.level still 2: no kvm_nested_vmexit_inject). They
  // follow the exit's level if a later line relabels it (set_exit_level).
  if (follows_exit_level(c.reason) && c.cause == 0)
    if (const es_record* e = held(st.open_exit); e && e->kind == ES_KIND_VM_EXIT && e->level == st.level)
      c.level = e->level;
}

bool Linker::follows_exit_level(uint32_t context_reason) {
  switch (context_reason) {
    case ES_CONTEXT_PIO:
    case ES_CONTEXT_MSR:
    case ES_CONTEXT_MMIO:
    case ES_CONTEXT_EMULATE_INSN:
    case ES_CONTEXT_USERSPACE_EXIT: return true;
    default: return false;
  }
}

void Linker::describe(TraceFacts& s) const {
  s.vendor = saw_vmx_ && saw_svm_ ? "mixed" : saw_svm_ ? "svm" : saw_vmx_ ? "vmx" : "unknown";
  era_.describe(saw_vmx_, s);
  if (assumed_info2_)
    s.assumptions.push_back(
        "kvm_exit lines with info1/info2 but without intr_info: info2 taken as IDT-vectoring "
        "info (Linux 5.10+ VMX meaning); those exits are marked inferred");
  if (kernel_without_reinjected_)
    s.assumptions.push_back(
        "the kernel does not print [reinjected]: an injection of the event an exit reported in "
        "IDT-vectoring info is taken as its reinjection (marked inferred)");
  if (numeric_as_svm_)
    s.assumptions.push_back(
        "exit reasons printed as numbers (codes the kernel's table did not name) are taken as "
        "SVM exit codes, as the trace's named exits are SVM");
  if (levels_from_tracking_)
    s.assumptions.push_back(std::to_string(levels_from_tracking_) + " exit" + (levels_from_tracking_ > 1 ? "s" : "") +
                            " labelled L2 because kvm_nested_vmenter had entered the vCPU into L2; the trace has no "
                            "kvm_nested_vmexit line to confirm it");
  if (vcpu_thread_changes_)
    s.assumptions.push_back(std::to_string(vcpu_thread_changes_) + " time" + (vcpu_thread_changes_ > 1 ? "s" : "") +
                            " a vCPU number came from another host thread than before: taken as another VM's vCPU "
                            "(KVM runs a vCPU on one thread), so nothing links across");
  describe_vms(s);
  if (levels_from_reflect_)
    s.assumptions.push_back(std::to_string(levels_from_reflect_) + " exit" + (levels_from_reflect_ > 1 ? "s" : "") +
                            " without a kvm_nested_vmexit line labelled L2 because kvm_nested_vmexit_inject reflected "
                            "it to L1 (only an L2 exit is reflected)");
  if (guessed_vcpu_)
    s.assumptions.push_back(
        "some events name no vCPU: taken from the thread (one vCPU per thread) or the event before");
  if (discards_across_elision_) {
    std::string lines;
    for (const uint64_t l : elided_discard_lines_) lines += (lines.empty() ? "" : ", ") + std::to_string(l);
    if (discards_across_elision_ > elided_discard_lines_.size()) lines += ", ...";
    s.assumptions.push_back("the text elides lines (\"...\") between L1's nested entry and L0's exit to L1 (line " +
                            lines +
                            "): the injection is taken as not handed back, as the lines shown say, though an entry "
                            "into L2 may be among those left out (the discard is marked inferred)");
  }
}

// The VMs the events came from and the APIC rule (issue #16): the vCPU map when there is more
// than one VM, and what had to be assumed.
void Linker::describe_vms(TraceFacts& s) const {
  bool by_threads = false;
  for (const Vm& vm : vms_) by_threads |= vm.process < 0;
  if (vms_.size() > 1) {
    for (const auto& [n, rv] : recorded_) {
      // A VM of a process is named by its pid; one told apart by threads by the vCPU's thread.
      const Vm& vm = vms_[rv.vm];
      const auto own = vm.thread_of_id.find(rv.id);
      const int32_t thread = own != vm.thread_of_id.end() ? own->second : vm.first_thread;
      const std::string who = vm.process >= 0 ? "pid " + std::to_string(vm.process)
                              : thread >= 0   ? "thread " + std::to_string(thread)
                                              : "no thread named";
      s.vcpu_map.push_back("vcpu " + std::to_string(n) + " = VM " + std::to_string(rv.vm + 1) + " (" + who + ") vcpu " +
                           std::to_string(rv.id));
    }
    s.assumptions.push_back(
        std::to_string(vms_.size()) + " VMs" +
        (by_threads ? " told apart by their threads (the trace names no processes): KVM runs a vCPU on one thread "
                      "for its life, so a second thread naming a vCPU id already running is another VM's, and a "
                      "thread joins the first VM that has no thread for its vCPU id"
                    : " told apart by their processes (and, within one, by their threads: KVM runs a vCPU on one "
                      "thread for its life)") +
        "; the first VM keeps its vCPU numbers, later VMs get the next free ones (the vCPU map says which is which)");
  }
  if (apic_events_)
    s.assumptions.push_back(
        std::to_string(apic_events_) + " kvm_apic_accept_irq / kvm_eoi event" + (apic_events_ > 1 ? "s" : "") +
        " put on the vCPU their apicid names, in the VM of the thread that traced them: KVM prints the target's "
        "vcpu_id there, which is also its default APIC id (kvm_apic_set_xapic_id at vCPU reset; x2APIC id = vcpu_id)");
  if (apic_vm_unknown_)
    s.assumptions.push_back(std::to_string(apic_vm_unknown_) + " APIC event" + (apic_vm_unknown_ > 1 ? "s" : "") +
                            " came from a thread that runs no vCPU while several VMs ran: put in the VM of the event "
                            "before (the trace names no processes)");
}

}  // namespace es::kvmtrace
