// kvmtrace::Linker: turns KVM tracepoint events into linked records, whatever carried them:
// lines of trace text, trace.dat records (libtraceevent) or live eBPF records. Every source first
// fills a KvmEvent (kvmtrace/event.h) per event, then hands it here in time order.
//
//   Linker l;
//   for (each event) { l.add(line, time_ns_since_start, line_no); l.take_settled(batch); ... }
//   l.take_all(batch);
//   l.describe(facts);   // vendor, era, assumptions
//
// Mapping: kvm_exit -> VM_EXIT, kvm_entry -> VM_ENTRY, kvm_inj_virq / kvm_inj_exception ->
// DECISION (INJECT_REINJECTED / INJECT_NEW), kvm_nested_vmexit -> the L2 exit (level 2),
// kvm_nested_vmexit_inject -> DECISION REFLECT_TO_L1 + NESTED_EXIT, kvm_nested_vmenter -> NESTED_ENTRY
// (level 2, hv_level 1; its event_inj roots the chain of an injection L1 asked for), everything else -> CONTEXT
// (reason = ES_CONTEXT_*, exitscope/record.h; aux = line number; kvm_emulate_insn: the instruction bytes with
// ES_FLAG_BYTES_VALID, aux = their count). Chains: every injected or IDT-vectoring event
// gets a chain root (a RAISE marked ES_FLAG_INFERRED: a trace never shows where an event came
// from); the exits that find it in IDT-vectoring info, its reinjections and entries join the
// chain; a delivery is inferred when the next exit on that vCPU no longer reports it; an
// exception KVM injects instead of the event an exit stopped in its delivery throws that event
// away (DECISION DISCARD in its chain, caused by the exit; #DF: a promotion). Levels:
// each vCPU's level follows kvm_nested_vmenter (L2) and kvm_nested_vmexit_inject (L1); entries,
// injections and deliveries carry the level the vCPU runs at, exits L2 when kvm_nested_vmexit
// confirms it or, without that tracepoint in the trace, when the vCPU was entered into L2 (said).
//
// Streaming: a few later events patch an earlier record (kvm_nested_vmexit marks the kvm_exit
// before it as L2's; kvm_page_fault gives an EPT violation its GPA), so records stay held while
// their vCPU's exit is open (until its next kvm_entry). take_settled() hands out the rest, in id
// order. At most kMaxHeld records are held: beyond that the oldest are handed out anyway and
// those exits simply do not get patched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "exitscope/record.h"
#include "kvmtrace/decode.h"
#include "kvmtrace/era.h"
#include "kvmtrace/event.h"

namespace es::kvmtrace {

class Linker {
 public:
  static constexpr size_t kMaxHeld = 1u << 16;

  // Optional first pass (whole-file sources): learn which thread is which vCPU from the lines
  // that say both, so lines that name only their thread get the right vCPU.
  // The same pass gathers the evidence that decides what kvm_exit's "info A B" means (see
  // InfoPairMeaning); `line_no` names the line in what describe() says.
  void learn(const KvmEvent& t, uint64_t line_no = 0);
  void finish_learning();

  // Single pass (a whole-file source that links while it reads): after speculate(), learn() and
  // add() each event in turn, add() answering from what was learned so far. Every answer it takes
  // from the learned state is noted; once finish_learning() has run on the whole file,
  // speculation_held() says whether the whole file's learning gives each of those answers. When it
  // does, the records are exactly those of two passes (every learn(), then every add()): the
  // learned state is all add() reads that the passes order differently. When it does not, the
  // caller drops the records and links again in two passes with a fresh Linker.
  // `preview`: a Linker that learn()ed the file's first lines, whose threads' vCPUs answer for a
  // thread none of whose own lines has named its vCPU yet (an excerpt that starts with kvm_exit
  // lines of a kernel before 5.10, which print none, then a kvm_entry that does).
  void speculate(const Linker* preview = nullptr) {
    speculating_ = true;
    if (preview) preview_vcpu_ = preview->learning_;
  }
  bool speculation_held() const { return speculation_held_; }
  // Already known not to hold, whatever comes next (a thread's vCPU answered two ways, several VMs).
  bool speculation_lost() const { return speculating_ && (spec_inconsistent_ || vms_.size() > 1); }

  // The source cannot record kvm_entry or kvm_exit (a live recording whose tp_btf programs could
  // not take them): their absence says nothing of the host, and no rule reads it as "this host's
  // KVM never enters the guest".
  void set_entries_unrecorded() { entries_unrecorded_ = true; }

  // One event, in time order. `time_ns`: relative to the session start. `line_no`: where it came
  // from (text line, trace.dat record index; 0 for none), kept in CONTEXT records' aux.
  void add(const KvmEvent& t, uint64_t time_ns, uint64_t line_no = 0);

  // Appends the records no later event can change to `out` (ids 1, 2, ... across calls).
  void take_settled(std::vector<es_record>& out);
  // Appends everything still held (at the end of the input).
  void take_all(std::vector<es_record>& out);

  uint64_t records_made() const { return next_id_ - 1; }
  // What the events told about the kernel and what had to be assumed: fills s.vendor, s.era
  // and appends to s.assumptions.
  void describe(TraceFacts& s) const;
  // Whether a kvm_exit or kvm_entry event said the era (a trace.dat without one reads it from
  // its event formats instead, which are exact).
  bool era_from_exit_or_entry() const { return era_.from_exit_or_entry(); }

 private:
  // Per-vCPU progress of the event being injected / reinjected (KVM injects one at a time).
  struct VcpuState {
    // HeldByL1: reflected to L1 with the event in vmcb12's EXITINTINFO / vmcs12's IDT-vectoring
    // field; L0's entries into L1 do not carry it, L1's next VMRUN / VMRESUME may inject it.
    enum class Phase : uint8_t { Idle, Decided, Entered, Exited, HeldByL1 };
    Phase phase = Phase::Idle;
    uint64_t chain = 0;  // origin of the event in flight
    uint32_t word = 0;   // it, VM-entry format
    uint32_t error = 0;
    uint64_t last_link = 0;  // last record of that chain on this vCPU
    uint64_t open_exit = 0;  // id of the exit not yet followed by an entry; 0 = none
    // Nested levels (1 = L1, 2 = L2): where the next entry goes (kvm_nested_vmenter -> 2,
    // kvm_nested_vmexit_inject -> 1), where the last entry went (deliveries happen there), and
    // whether a kvm_nested_vmexit line confirmed the open exit as L2's.
    uint8_t level = 1;
    uint8_t entered_level = 1;
    bool exit_level_seen = false;
    int32_t thread = -1;            // the host thread that runs this vCPU (one per vCPU, for its lifetime)
    bool delivery_faulted = false;  // the open exit is a fault raised by the chain's own delivery
    // The event in flight is one L1 asked to inject at a nested VM entry that followed L1's own
    // traced exit, and no exit or entry of this vCPU came since: L2 has not run, so the event is
    // not delivered (leaving L2 takes a VM exit, which kvm_exit traces where the trace has it).
    bool injected_l2_unentered = false;
    // The elisions seen (Linker::elisions_) when injected_l2_unentered was set: more by the exit
    // to L1 means the paste may hide an entry into L2 in between.
    uint64_t elisions_at_nested_entry = 0;
    // The elisions seen when on_inject decided the event in flight (kNoInjection: the event in
    // flight, if any, was not decided by a kvm_inj_* line): more since means the paste may hide
    // what happened to it.
    static constexpr uint64_t kNoInjection = ~uint64_t{0};
    uint64_t elisions_at_injection = kNoInjection;
    // KVM events of this vCPU so far (other tracepoints' lines not counted), and their count at
    // its last kvm_inj_* line: what came between that line and the next.
    uint64_t kvm_events = 0, kvm_events_at_injection = 0;
    // The row that other tracepoints' lines of this vCPU go into until its next KVM event (0:
    // none yet): one row per run of them, its aux64 the number of lines (on_context).
    uint64_t other_run = 0;
    // The REFLECT_TO_L1 decision of a kvm_nested_intr_vmexit (SVM), for the
    // kvm_nested_vmexit_inject that KVM traces right after it for the same synthesized exit.
    uint64_t intr_reflect = 0;
    // An SEV-ES / SEV-SNP guest (a VMGEXIT, or an NPF with SEV-SNP's RMP / VMPL bits): its
    // register state is encrypted, KVM cannot read its RIP and prints 0 (svm_vcpu_run copies the
    // RIP only for other guests), so a printed 0 on this vCPU is unknown, not 0.
    bool state_encrypted = false;
    // Forgets the event in flight, keeps the levels and the open exit.
    void reset_event() {
      injected_l2_unentered = false;
      elisions_at_injection = kNoInjection;
      phase = Phase::Idle;
      chain = 0;
      word = 0;
      error = 0;
      last_link = 0;
    }
  };

  // vCPUs of several VMs (issue #16). A recorded vCPU is (VM, vCPU id). A VM is a process when the
  // source says it (live: the tgid) and, within it (or without one: trace text, trace.dat), a
  // group of threads: KVM runs a vCPU on one thread for its life, so a second thread naming a
  // vCPU id the group already runs is another VM's; a thread joins the first VM of its process
  // that has no thread for its vCPU id. The first VM (the first the file names, for sources with
  // a learn() pass; else the first seen) keeps its vCPU numbers, later VMs get the next free ones
  // (the map is in describe()'s vcpu_map).
  struct Vm {
    int32_t process = -1;  // tgid; -1 when the source does not say
    int32_t first_thread = -1;
    std::unordered_map<int32_t, int32_t> thread_of_id;  // vCPU id -> the thread that runs it
  };
  struct RecordedVcpu {
    uint32_t vm = 0;  // index into vms_
    int32_t id = 0;   // KVM's vcpu_id within that VM
  };
  void assign_learned_vms();  // finish_learning(): the learned threads' VMs and vCPU numbers
  bool check_speculation() const;
  int32_t learned_vcpu(int32_t pid) const;  // the vCPU id the learning pass gave thread `pid`, -1 if none
  uint16_t resolve_vcpu(const KvmEvent& t);
  int32_t vcpu_id_of(const KvmEvent& t);  // the old rule: body, thread name, thread, guess; -1 = as before
  uint32_t vm_of(const KvmEvent& t, int32_t id, bool apic);
  uint16_t recorded_vcpu(uint32_t vm, int32_t id);
  void describe_vms(TraceFacts& s) const;
  VcpuState& state(uint16_t vcpu);
  es_record* held(uint64_t id);  // nullptr once handed out
  es_record& push(uint16_t kind, uint32_t flags);
  es_record& push_parsed(uint16_t kind, const es_record& parsed, uint8_t level);
  uint64_t raise(uint32_t word, uint32_t error, uint8_t level);
  void settle_exit_level(VcpuState& st);
  void set_exit_level(es_record& e, uint8_t level);
  // The raise on_exit / on_shutdown inferred from `exit`'s IDT-vectoring, pushed just before it
  // and named as the exit's cause (on_exit: also its origin; on_shutdown: the exit stays in the
  // chain whose delivery shut down); nullptr if there is none or it is no longer held.
  es_record* inferred_raise_of(const es_record& exit);
  static bool follows_exit_level(uint32_t context_reason);
  void on_nested_vmenter(const KvmEvent& t, VcpuState& st);
  void fill_exit(es_record& r, const KvmEvent& t);
  void on_exit(const KvmEvent& t, VcpuState& st, uint8_t level);
  static bool is_shutdown_exit(const es_record& e);
  void on_shutdown(const es_record& probe, VcpuState& st, uint8_t level);
  void on_nested_vmexit(const KvmEvent& t, VcpuState& st);
  void on_nested_inject(const KvmEvent& t, VcpuState& st);
  void on_inject(const KvmEvent& t, VcpuState& st);
  void reinject_in_chain(VcpuState& st, const Injection& inj, uint64_t cause);
  es_record& push_inferred_delivery(VcpuState& st, uint8_t level);
  void on_entry(const KvmEvent& t, VcpuState& st);
  void on_context(const KvmEvent& t, VcpuState& st);

  std::deque<es_record> held_;  // ids base_id_ .. next_id_-1
  uint64_t base_id_ = 1, next_id_ = 1;
  std::vector<VcpuState> vcpus_;
  std::unordered_map<int32_t, int32_t> learning_;             // learn(): thread -> vCPU
  std::vector<std::pair<int32_t, int32_t>> learned_threads_;  // learn(): (thread, process) in order of appearance
  std::vector<std::pair<int32_t, int32_t>> pid_vcpu_;         // the same after finish_learning(), sorted
  std::unordered_map<int32_t, int32_t> seen_pid_vcpu_;        // the same, from events added so far
  std::vector<int32_t> guessed_pids_;
  std::vector<Vm> vms_;                                           // in order of appearance
  std::unordered_map<int32_t, uint32_t> vm_of_thread_;            // thread -> index into vms_
  std::map<std::pair<uint32_t, int32_t>, uint16_t> recorded_of_;  // (VM, vCPU id) -> recorded number
  std::map<uint16_t, RecordedVcpu> recorded_;                     // recorded number -> (VM, vCPU id)
  uint32_t cur_vm_ = 0;
  uint64_t apic_events_ = 0;      // kvm_apic_accept_irq / kvm_eoi put on the vCPU their apicid names
  uint64_t apic_vm_unknown_ = 0;  // of those, from a thread that runs no vCPU while several VMs ran
  uint16_t cur_vcpu_ = 0, last_vcpu_ = 0;
  uint64_t cur_time_ = 0, cur_line_ = 0;

  EraEvidence era_;  // which kernel printed the trace, what "info A B" means (era.h)

  bool guessed_vcpu_ = false;
  bool saw_vmx_ = false, saw_svm_ = false, saw_nested_ = false, assumed_info2_ = false;
  // Vendors of the exits whose reason was a name (learn() pass), for reasons printed as numbers.
  bool learned_vmx_ = false, learned_svm_ = false, numeric_as_svm_ = false;
  bool kernel_without_reinjected_ = false;
  bool saw_entry_ = false;
  bool saw_exit_ = false;  // a kvm_exit / kvm_nested_vmexit line (learned, or added so far)
  bool entries_unrecorded_ = false;
  bool nested_vmexit_traced_ = false;  // the trace has kvm_nested_vmexit lines (learn() or add())
  uint64_t elisions_ = 0;              // events after an elision ("...") seen so far
  // The exits to L1 whose discard an elision may hide: how many, and the lines of the first few
  // (describe() names at most five), so a long paste costs no more.
  uint64_t discards_across_elision_ = 0;
  std::vector<uint64_t> elided_discard_lines_;
  uint64_t vcpu_thread_changes_ = 0;   // a vCPU number seen from a new thread (another VM)
  uint64_t levels_from_tracking_ = 0;  // exits labelled L2 by kvm_nested_vmenter alone
  uint64_t levels_from_reflect_ = 0;   // exits labelled L2 because kvm_nested_vmexit_inject reflected them

  // speculate(): the answers add() took from the learned state so far, checked by finish_learning().
  bool speculating_ = false, speculation_held_ = false;
  bool spec_inconsistent_ = false;  // a thread's vCPU answered two ways
  struct VcpuAnswer {
    int32_t id;
    bool guessed;  // no learned vCPU for the thread yet: numbered in order of appearance
  };
  std::unordered_map<int32_t, VcpuAnswer> spec_vcpu_;  // thread -> the vCPU id add() gave it
  // Threads whose other-tracepoint lines took the vCPU of the event before because nothing so far
  // named theirs: the speculation is lost if the whole file names one (two passes would use it).
  std::unordered_set<int32_t> spec_other_unnamed_;
  std::unordered_map<int32_t, int32_t> preview_vcpu_;  // speculate()'s preview: thread -> vCPU
  uint8_t spec_info_pair_ = 0;                         // info_pair_answer() of each reading given
  uint8_t spec_svm_numeric_ = 0;                       // bit 0: a numeric reason read as VMX's, bit 1: as SVM's
  bool spec_needed_entry_ = false;    // an answer that holds only if the file has no kvm_entry (cancel, emulation)
  bool spec_needed_no_exit_ = false;  // one that holds only if it has no kvm_exit (a delivery from emulation)
  bool spec_needed_nested_ = false;   // an L2 exit kept at L2 because no kvm_nested_vmexit was seen yet
};

}  // namespace es::kvmtrace
