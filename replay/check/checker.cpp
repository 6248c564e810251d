#include "replay/check/checker.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "exitscope/discard.h"

#include "hv/arch/controls.h"
#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "hv/arch/exit_qualification.h"
#include "hv/arch/exit_reason.h"
#include "replay/chains.h"
#include "replay/format.h"
#include "replay/names.h"
#include "schema/sqlite_db.h"

namespace es::check {

namespace {

// A RIP the source did not say (ES_FLAG_RIP_UNKNOWN, or an inferred record's 0): exits there
// cannot be compared by RIP. A printed 0 is a RIP like any other (real/
// kvm_list_2023_smep_rip_zero_is_known.txt) unless the importer knows it is not: an SEV-ES /
// SNP guest's, whose RIP KVM cannot read (kvmtrace's VcpuState::state_encrypted).
bool rip_unknown(const es_record& r) {
  if (r.flags & ES_FLAG_RIP_UNKNOWN) return true;
  // An inferred record made without a RIP (a chain root an exit's vectoring implies); an exit or
  // entry is inferred for other reasons (how its fields were read) and says its RIP by the flag.
  const bool exit_or_entry = r.kind == ES_KIND_VM_EXIT || r.kind == ES_KIND_VM_ENTRY || r.kind == ES_KIND_NESTED_EXIT ||
                             r.kind == ES_KIND_NESTED_ENTRY;
  return !exit_or_entry && (r.flags & ES_FLAG_INFERRED) && r.rip == 0;
}

using arch::EntryIntrInfo;
using arch::IdtVectoringInfo;
using arch::InterruptionType;

bool is_exit(const es_record& r) { return r.kind == ES_KIND_VM_EXIT || r.kind == ES_KIND_NESTED_EXIT; }
bool is_entry(const es_record& r) { return r.kind == ES_KIND_VM_ENTRY || r.kind == ES_KIND_NESTED_ENTRY; }
// Exit reasons, interruptibility and RFLAGS below have VMX meanings only.
bool is_vmx(const es_record& r) { return (r.flags & ES_FLAG_SVM) == 0; }

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}
std::string num(uint64_t v) { return std::to_string(v); }
// "L2(L0)": the guest level the event is about and the hypervisor that observed / decided it.
std::string where(const es_record& r) { return "L" + num(r.level) + "(L" + num(r.hv_level) + ")"; }
std::string kind_text(const es_record& r) {
  const std::string_view k = replay::kind_name(r.kind);
  return k.empty() ? "record" : std::string(k);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// State shared by the rules.

struct Delivered {
  uint8_t level;
  uint32_t word;  // VM-entry format
  uint64_t id;
};

// A run of exits in one chain with valid IDT-vectoring for it and the same basic reason,
// RIP and GPA (reinjection-loop).
// Where a run of repeated exits (the two loop rules) starts and ends.
struct RunSpan {
  uint64_t first_id = 0, first_ns = 0, last_id = 0, last_ns = 0;
  uint8_t level = 0, hv_level = 0;
  uint16_t vcpu = 0;
  void start(const es_record& r) {
    first_id = last_id = r.id;
    first_ns = last_ns = r.time_ns;
    level = r.level;
    hv_level = r.hv_level;
    vcpu = r.vcpu;
  }
  void extend(const es_record& r) {
    last_id = r.id;
    last_ns = r.time_ns;
  }
  void fill(Violation& v) const {
    v.events = {first_id, last_id};
    v.first_ns = first_ns;
    v.last_ns = last_ns;
    v.level = level;
    v.hv_level = hv_level;
    v.vcpu = vcpu;
  }
};

struct LoopRun : RunSpan {
  uint32_t count = 0;
  uint32_t basic_reason = 0;  // VMX basic reason, or the SVM exit code
  uint32_t reason_flags = 0;  // ES_FLAG_SVM of the exits
  uint64_t rip = 0, gpa = 0;
  uint32_t vectoring = 0;
};

// A run of identical VM exits without IDT-vectoring on one vCPU and level (no-progress-loop).
struct ExitRun : RunSpan {
  uint32_t count = 0;
  uint32_t reason = 0, intr_info = 0, flags = 0;
  uint64_t rip = 0, gpa = 0, qualification = 0;
};

// no-progress-cycle: one VM exit as the cycle detector compares it, and whether the next VM entry
// resumed at its very RIP (the instruction is executed again).
struct CycleExit {
  uint64_t id = 0, ns = 0;
  uint32_t reason = 0, flags = 0, intr_info = 0, vectoring = 0;
  uint64_t rip = 0, gpa = 0, qualification = 0;
  uint8_t level = 0, hv_level = 0;
  bool reentered = false;
  bool asynchronous = false;  // asynchronous_exit(): re-entering it at its RIP proves nothing
  bool same(const CycleExit& o) const {
    return reason == o.reason && flags == o.flags && rip == o.rip && gpa == o.gpa && qualification == o.qualification &&
           intr_info == o.intr_info && vectoring == o.vectoring && level == o.level;
  }
};

// Per vCPU: its last exits and, per unit length p, the current run of exits equal to the exit p
// before them. O(1) per record: a ring of the last kCycleMaxUnit + 1 exits.
struct CycleStream {
  static constexpr size_t kRing = kCycleMaxUnit + 1;
  std::array<CycleExit, kRing> ring{};
  uint64_t n = 0;  // exits since the last reset
  struct Run {
    uint32_t match = 0;                           // exits equal to the one p before them, in a row
    std::array<CycleExit, kCycleMaxUnit> unit{};  // the run's first p exits
    uint64_t last_n = 0;                          // index of its last exit
    uint64_t last_id = 0, last_ns = 0;
    bool reentered = false;  // one of its exits was re-entered at its own RIP
  };
  std::array<Run, kCycleMaxUnit + 1> runs{};  // [p], p = kCycleMinUnit .. kCycleMaxUnit
  CycleExit& at(uint64_t k) { return ring[k % kRing]; }
};

struct ChainState {
  uint32_t word = 0;  // the original event (the root's intr_info), if the root was seen
  bool root_seen = false;
  bool settled = false;  // its original event was delivered: it can no longer be lost
  // As replay::chains' member scan: the last entry / exit injected the event, and an exit has
  // shown a fault in its delivery since (then an inferred delivery does not settle it).
  bool injected = false, faulted = false;
  std::vector<Delivered> delivered;
  LoopRun loop;
  std::vector<replay::Event> members;  // kept for event-lost until settled
  uint64_t last = 0;                   // its last member's id
};

// Settled chains forgotten by a checker with no recording to read them back from (the live
// checker: CheckOptions::forget_to_disk): what recall_chain rebuilds from a chain's members (its
// event, whether its root was seen, its deliveries, its last member), one row per chain in a
// private temporary SQLite database on disk (SQLite deletes it on close), so the checker's
// memory holds the open chains and the window, not every chain of the run (issue #18). Written
// in one transaction that is never committed: a reader on the same connection sees its rows, and
// SQLite spills pages beyond its small cache to the file.
class ForgottenChains {
 public:
  // nullptr if the temporary database cannot be made (the checker then keeps every chain).
  static std::unique_ptr<ForgottenChains> open() {
    auto db = db::Db::open("", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (!db) return nullptr;
    auto f = std::unique_ptr<ForgottenChains>(new ForgottenChains);
    f->db_ = std::move(*db);
    if (!f->db_.exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -4096;"
                     "CREATE TABLE forgotten (id INTEGER PRIMARY KEY, word INTEGER, root_seen INTEGER, "
                     "last INTEGER, delivered BLOB); BEGIN"))
      return nullptr;
    auto ins = f->db_.prepare("INSERT OR REPLACE INTO forgotten VALUES (?, ?, ?, ?, ?)");
    auto sel = f->db_.prepare("SELECT word, root_seen, last, delivered FROM forgotten WHERE id = ?");
    if (!ins || !sel) return nullptr;
    f->ins_ = std::move(*ins);
    f->sel_ = std::move(*sel);
    return f;
  }

  bool put(uint64_t id, const ChainState& c) {
    std::string blob(c.delivered.size() * kDelivered, '\0');
    for (size_t i = 0; i < c.delivered.size(); ++i) {
      char* p = blob.data() + i * kDelivered;
      std::memcpy(p, &c.delivered[i].level, 1);
      std::memcpy(p + 1, &c.delivered[i].word, 4);
      std::memcpy(p + 5, &c.delivered[i].id, 8);
    }
    ins_.bind_u64(1, id);
    ins_.bind(2, int64_t{c.word});
    ins_.bind(3, int64_t{c.root_seen});
    ins_.bind_u64(4, c.last);
    ins_.bind_blob(5, blob.data(), static_cast<int>(blob.size()));
    const int rc = ins_.step();
    ins_.reset();
    return rc == SQLITE_DONE;
  }

  // The state forget_settled_chains wrote for `id` (as recall_chain rebuilds it from members);
  // false if there is none.
  bool get(uint64_t id, ChainState& c) {
    sel_.bind_u64(1, id);
    const bool found = sel_.step() == SQLITE_ROW;
    if (found) {
      c.settled = true;
      c.word = static_cast<uint32_t>(sel_.col_i64(0));
      c.root_seen = sel_.col_i64(1) != 0;
      c.last = sel_.col_u64(2);
      const std::string_view blob = sel_.col_bytes(3);
      for (size_t off = 0; off + kDelivered <= blob.size(); off += kDelivered) {
        Delivered d{};
        std::memcpy(&d.level, blob.data() + off, 1);
        std::memcpy(&d.word, blob.data() + off + 1, 4);
        std::memcpy(&d.id, blob.data() + off + 5, 8);
        c.delivered.push_back(d);
      }
    }
    sel_.reset();
    return found;
  }

 private:
  ForgottenChains() = default;
  static constexpr size_t kDelivered = 13;  // level, word, id
  db::Db db_;
  db::Stmt ins_, sel_;
};

struct Checker::State {
  CheckOptions options;
  std::unique_ptr<ForgottenChains> spill;  // forget_to_disk without chain_history
  std::array<bool, 64> on{};
  std::unordered_map<uint64_t, ChainState> chains;
  // Records that end another chain's life by effect (a #DF raised by it, a triple-fault
  // exit caused by it), kept even when their own chain settles: replay::build_chains needs
  // them to tell "promoted to #DF" / "triple fault" from "lost".
  std::vector<replay::Event> effects;
  size_t effects_kept = 0;                 // effects.size() after the last prune_effects()
  std::unordered_set<uint64_t> unsettled;  // ids of the chains with members kept
  std::vector<replay::Event> run_ends;
  // event-lost: exceptions a reinjection policy dropped (vCPU, level, vector, error code -> the
  // chain), until the next delivery of the same exception there, kept by the dropped chain (id,
  // chain): the CPU raised it again when the instruction re-executed.
  std::unordered_map<uint64_t, uint64_t> pending_drops;
  std::unordered_map<uint64_t, std::pair<uint64_t, uint64_t>> delivered_again;
  std::vector<Violation> out;
  bool finished = false;
  // Settled chains forgotten (options.chain_history, or into `spill`): the highest such id, and
  // when to look next.
  uint64_t forgotten_max = 0;
  uint64_t next_sweep = 0;
  uint64_t forgotten = 0, recalled = 0;  // counts, said on stderr with ES_SETTLE_WINDOW set
  // l1-intercept-bypassed: per vCPU, what L1 intercepts while L2 runs (the last NESTED_ENTRY's
  // vmcs12 exception bitmap and #PF error-code mask / match), and whether L2 runs now.
  struct L1Intercepts {
    bool in_l2 = false;
    uint32_t exception_bitmap = 0, pfec_mask = 0, pfec_match = 0;
    uint64_t entry_id = 0;
  };
  std::unordered_map<uint16_t, L1Intercepts> l1;
  // no-progress-loop: the current run of identical exits per (vCPU, level).
  std::unordered_map<uint32_t, ExitRun> exit_runs;
  // A kvm_page_fault seen before any exit of its stream (an excerpt cut after that exit), and
  // the streams that have had an exit.
  std::unordered_map<uint32_t, es_record> cut_page_fault;
  std::unordered_set<uint32_t> streams_with_exit;
  // no-progress-cycle: per vCPU (every level: a cycle may cross them, as L2 exit -> L1 -> L2).
  std::unordered_map<uint16_t, CycleStream> cycles;
  // nmi-unblocking-ignored: per (vCPU, level), the last VM exit that reported NMI unblocking due
  // to IRET and has not been followed by a VM entry yet.
  std::unordered_map<uint32_t, es_record> nmi_unblocked;

  void report(Violation v) { out.push_back(std::move(v)); }
};

namespace {

using State = Checker::State;

Violation make(RuleId rule, const es_record& at, uint64_t chain, std::vector<uint64_t> events, std::string text) {
  Violation v;
  v.rule = rule;
  v.chain = chain;
  v.events = std::move(events);
  v.first_ns = v.last_ns = at.time_ns;
  v.level = at.level;
  v.hv_level = at.hv_level;
  v.vcpu = at.vcpu;
  v.explanation = std::move(text);
  return v;
}

// --- exit-ext-int-with-vectoring ------------------------------------------------------
// Vol. 3C 28.2.4 "Information for VM Exits That Occur During Event Delivery": IDT-vectoring
// info is valid only for an exit that occurred while delivering an event. An external
// interrupt is recognized at an instruction boundary, never in the middle of another
// event's delivery, so its exit cannot carry one. KVM nested_vmx_vmexit():
// WARN_ON_ONCE(... "unexpected, valid vectoring info").
void rule_exit_ext_int_with_vectoring(State& st, const es_record& r) {
  if (!is_exit(r) || !is_vmx(r)) return;
  const arch::ExitReason reason(r.reason);
  const IdtVectoringInfo vec(r.idt_vectoring_info);
  if (!reason.is(arch::BasicExitReason::ExternalInterrupt) || !vec.valid()) return;
  st.report(make(RuleId::ExitExtIntWithVectoring, r, r.origin, {r.id},
                 kind_text(r) + " #" + num(r.id) + " (" + where(r) +
                     ", EXTERNAL_INTERRUPT) carries valid "
                     "IDT-vectoring info (" +
                     arch::describe(vec) +
                     "), which is architecturally impossible: an "
                     "external interrupt is recognized only at an instruction boundary, never during another event's "
                     "delivery (SDM Vol. 3C 28.2.4 \"Information for VM Exits That Occur During Event Delivery\"; KVM "
                     "nested_vmx_vmexit warns \"unexpected, valid vectoring info\")."));
}

// --- injected-twice ---------------------------------------------------------------------
// Vol. 3C 28.2.4: IDT-vectoring info is valid only when the delivery did not complete; an
// event whose delivery completed must never be reinjected (KVM vmx_complete_interrupts
// requeues only what IDT-vectoring reports).
bool same_event(uint32_t a, uint32_t b) {
  const EntryIntrInfo x(a), y(b);
  return x.valid() && y.valid() && x.vector() == y.vector() && x.type() == y.type();
}

void rule_injected_twice(State& st, const es_record& r) {
  if (r.origin == 0 || (r.kind != ES_KIND_DELIVERY && !is_entry(r))) return;
  const EntryIntrInfo word(r.intr_info);
  if (!word.valid()) return;
  const auto it = st.chains.find(r.origin);
  if (it == st.chains.end()) return;
  for (const Delivered& d : it->second.delivered) {
    if (d.level != r.level || !same_event(d.word, r.intr_info)) continue;
    const std::string ev = arch::describe(word);
    if (r.kind == ES_KIND_DELIVERY)
      st.report(make(RuleId::InjectedTwice, r, r.origin, {d.id, r.id},
                     ev + " of chain " + num(r.origin) + " was delivered twice at L" + num(r.level) + " (#" +
                         num(d.id) + " and #" + num(r.id) +
                         "): the guest's handler ran twice for one event, an event "
                         "reinjected although its delivery had completed (SDM Vol. 3C 28.2.4 \"Information for VM "
                         "Exits That Occur During Event Delivery\": IDT-vectoring info is valid only if the delivery "
                         "did not complete)."));
    else
      st.report(make(RuleId::InjectedTwice, r, r.origin, {d.id, r.id},
                     kind_text(r) + " #" + num(r.id) + " (" + where(r) + ") injects " + ev + " of chain " +
                         num(r.origin) + " although that event was already delivered at L" + num(r.level) + " (#" +
                         num(d.id) +
                         "): only an event found in valid IDT-vectoring info may be reinjected (SDM Vol. "
                         "3C 28.2.4 \"Information for VM Exits That Occur During Event Delivery\"; KVM "
                         "vmx_complete_interrupts)."));
    return;
  }
}

// --- reinjection-loop -------------------------------------------------------------------
// Each reinjection repeats the same delivery; if the exit handler does not remove the
// cause (e.g. does not map the page), the delivery exits again at the same RIP and GPA with
// the same IDT-vectoring info (Vol. 3C 28.2.4) and the guest never progresses.
void flush_loop(State& st, uint64_t chain, LoopRun& run) {
  if (run.count >= kReinjectionLoopThreshold) {
    Violation v;
    v.rule = RuleId::ReinjectionLoop;
    v.chain = chain;
    run.fill(v);
    v.count = run.count;
    v.explanation = "Chain " + num(chain) + "'s " + arch::describe(IdtVectoringInfo(run.vectoring)) +
                    " was reinjected without progress: " + num(run.count) + " consecutive " +
                    replay::exit_reason_text(run.basic_reason, run.reason_flags) + " exits (" + "L" + num(run.level) +
                    "(L" + num(run.hv_level) + ")) at rip " + hex(run.rip) + " gpa " + hex(run.gpa) +
                    " with valid IDT-vectoring info for it and no delivery in between, from " +
                    replay::format_time(run.first_ns) + " to " + replay::format_time(run.last_ns) + " s (#" +
                    num(run.first_id) + " .. #" + num(run.last_id) +
                    "): the exit handler does not remove the cause, "
                    "so every reinjection repeats the same faulting delivery (SDM Vol. 3C 28.2.4 \"Information for VM "
                    "Exits That Occur During Event Delivery\").";
    st.report(std::move(v));
  }
  run = LoopRun{};
}

void rule_reinjection_loop(State& st, const es_record& r) {
  if (r.origin == 0) return;
  if (!is_exit(r) && r.kind != ES_KIND_DELIVERY) return;
  ChainState& c = st.chains[r.origin];
  LoopRun& run = c.loop;
  const IdtVectoringInfo vec(r.idt_vectoring_info);
  if (r.kind == ES_KIND_DELIVERY || !vec.valid()) {  // progress: delivered, or an exit not during delivery
    flush_loop(st, r.origin, run);
    return;
  }
  const uint32_t svm = r.flags & ES_FLAG_SVM;
  const uint32_t basic = svm ? r.reason : arch::ExitReason(r.reason).basic_number();
  if (run.count > 0 && run.basic_reason == basic && run.reason_flags == svm && run.rip == r.rip &&
      run.gpa == r.guest_phys && run.vectoring == r.idt_vectoring_info && run.level == r.level) {
    ++run.count;
    run.extend(r);
    return;
  }
  flush_loop(st, r.origin, run);
  run.count = 1;
  run.basic_reason = basic;
  run.reason_flags = svm;
  run.rip = r.rip;
  run.gpa = r.guest_phys;
  run.vectoring = r.idt_vectoring_info;
  run.start(r);
}

void finish_reinjection_loop(State& st) {
  std::vector<uint64_t> ids;
  for (auto& [id, c] : st.chains)
    if (c.loop.count >= kReinjectionLoopThreshold) ids.push_back(id);
  std::sort(ids.begin(), ids.end());  // deterministic order
  for (uint64_t id : ids) flush_loop(st, id, st.chains[id].loop);
}

// --- no-progress-loop --------------------------------------------------------------------
// A guest that exits again and again at the same instruction for the same reason (same RIP,
// GPA / qualification, interruption info), with no event delivered and no VM entry past that
// instruction in between, is not moving: the hypervisor never removes the cause (an EPT / NPF
// violation whose mapping is never installed, an I/O or MSR exit never completed, a #GP
// re-raised by the same instruction, an L2 exit L1 never completes). Exits with IDT-vectoring
// are reinjection-loop's; asynchronous exits (host interrupts, NMIs, interrupt / NMI windows,
// the preemption timer) can repeat at one RIP while a guest spins and are not counted.
bool asynchronous_exit(const es_record& r) {
  if (r.flags & ES_FLAG_SVM) {
    // AMD APM Vol. 2 Appendix C: 0x60 INTR, 0x61 NMI, 0x62 SMI, 0x63 INIT, 0x64 VINTR.
    return r.reason >= 0x60 && r.reason <= 0x64;
  }
  const arch::ExitReason reason(r.reason);
  if (reason.is(arch::BasicExitReason::ExceptionOrNmi))
    return arch::ExitIntrInfo(r.intr_info).valid() && arch::ExitIntrInfo(r.intr_info).type() == InterruptionType::Nmi;
  return reason.is(arch::BasicExitReason::ExternalInterrupt) || reason.is(arch::BasicExitReason::InterruptWindow) ||
         reason.is(arch::BasicExitReason::NmiWindow) || reason.basic_number() == 52 /* VMX-preemption timer */;
}

uint32_t stream_key(const es_record& r) { return (uint32_t{r.vcpu} << 8) | r.level; }

// Where each vendor says a fault-like exit leaves the guest's RIP at the instruction, for an
// exit of `flags` (ES_FLAG_SVM: AMD's words).
std::string saved_rip_reference(uint32_t flags) {
  return (flags & ES_FLAG_SVM) ? "AMD APM Vol. 2 15.7.1 \"State Saved on Exit\": an intercept taken before its "
                                 "instruction completes saves RIP at that instruction"
                               : "SDM Vol. 3C 28.1 \"Architectural State Before a VM Exit\": a fault-like exit "
                                 "leaves RIP at the instruction";
}

void flush_exit_run(State& st, ExitRun& run) {
  if (run.count >= kNoProgressLoopThreshold) {
    Violation v;
    v.rule = RuleId::NoProgressLoop;
    run.fill(v);
    v.count = run.count;
    es_record unit{};
    unit.kind = ES_KIND_VM_EXIT;
    unit.reason = run.reason;
    unit.flags = run.flags;
    unit.intr_info = run.intr_info;
    unit.rip = run.rip;
    unit.guest_phys = run.gpa;
    unit.qualification = run.qualification;
    v.explanation = num(run.count) + " identical VM exits on vcpu " + num(run.vcpu) + " (L" + num(run.level) + "(L" +
                    num(run.hv_level) + ")), each \"" + replay::describe_event_fields(replay::Event{unit, 0}) +
                    "\", from " + replay::format_time(run.first_ns) + " to " + replay::format_time(run.last_ns) +
                    " s (#" + num(run.first_id) + " .. #" + num(run.last_id) +
                    "), with no event delivered and no "
                    "VM entry past the exiting instruction in between: the guest re-executes the same instruction "
                    "and the hypervisor never removes the cause (a mapping never installed, an exit never "
                    "completed), so it makes no progress (" +
                    saved_rip_reference(run.flags) + ").";
    st.report(std::move(v));
  }
  run = ExitRun{};
}

void rule_no_progress_loop(State& st, const es_record& r) {
  // KVM traces kvm_page_fault from its EPT-violation / NPF handler, after the exit: one before
  // any exit of its vCPU is what is left of an exit the excerpt cut off, and counts as one more
  // repetition if the next exit is the same fault (same RIP and GPA).
  if (r.kind == ES_KIND_CONTEXT && r.reason == ES_CONTEXT_PAGE_FAULT) {
    const uint32_t key = stream_key(r);
    if (!st.streams_with_exit.count(key) && !st.cut_page_fault.count(key)) st.cut_page_fault.emplace(key, r);
    return;
  }
  if (r.kind == ES_KIND_DELIVERY) {  // an event delivered: progress
    if (auto pf = st.cut_page_fault.find(stream_key(r)); pf != st.cut_page_fault.end()) pf->second.id = 0;
    if (auto it = st.exit_runs.find(stream_key(r)); it != st.exit_runs.end()) flush_exit_run(st, it->second);
    return;
  }
  if (r.kind == ES_KIND_VM_ENTRY) {
    if (auto pf = st.cut_page_fault.find(stream_key(r)); pf != st.cut_page_fault.end() && pf->second.rip != r.rip)
      pf->second.id = 0;
    // Entered past the exiting instruction (it completed or was emulated), or at an unknown
    // RIP (a trace that does not print it: no evidence of a loop): progress. An entry at an
    // unknown RIP may also be the one into L2 that an import records at L1 (a pre-5.9 "kvm_entry:
    // vcpu 3" does not say the level): it is progress for every level of the vCPU.
    if (rip_unknown(r)) {
      for (uint32_t level = 0; level < 8; ++level) {
        auto it = st.exit_runs.find((uint32_t{r.vcpu} << 8) | level);
        if (it != st.exit_runs.end() && it->second.count > 0) flush_exit_run(st, it->second);
      }
      return;
    }
    auto it = st.exit_runs.find(stream_key(r));
    if (it != st.exit_runs.end() && it->second.count > 0 && r.rip != it->second.rip) flush_exit_run(st, it->second);
    return;
  }
  if (r.kind != ES_KIND_VM_EXIT) return;
  const bool first_exit = st.streams_with_exit.insert(stream_key(r)).second;
  ExitRun& run = st.exit_runs[stream_key(r)];
  if (IdtVectoringInfo(r.idt_vectoring_info).valid() || asynchronous_exit(r) || rip_unknown(r)) {
    flush_exit_run(st, run);
    return;
  }
  if (run.count > 0 && run.reason == r.reason && run.flags == (r.flags & ES_FLAG_SVM) && run.rip == r.rip &&
      run.gpa == r.guest_phys && run.qualification == r.qualification && run.intr_info == r.intr_info) {
    ++run.count;
    run.extend(r);
    return;
  }
  flush_exit_run(st, run);
  es_record cut{};
  if (first_exit) {
    if (auto pf = st.cut_page_fault.find(stream_key(r)); pf != st.cut_page_fault.end()) cut = pf->second;
  }
  run.count = 1;
  run.reason = r.reason;
  run.flags = r.flags & ES_FLAG_SVM;
  run.intr_info = r.intr_info;
  run.rip = r.rip;
  run.gpa = r.guest_phys;
  run.qualification = r.qualification;
  run.start(r);
  if (cut.id != 0 && cut.rip == r.rip && cut.guest_phys == r.guest_phys) {
    run.count = 2;
    run.first_id = cut.id;
    run.first_ns = cut.time_ns;
  }
}

void finish_no_progress_loop(State& st) {
  std::vector<uint32_t> keys;
  for (auto& [key, run] : st.exit_runs)
    if (run.count >= kNoProgressLoopThreshold) keys.push_back(key);
  std::sort(keys.begin(), keys.end());  // deterministic order
  for (uint32_t key : keys) flush_exit_run(st, st.exit_runs[key]);
}

// --- no-progress-cycle -------------------------------------------------------------------
// The no-progress loop over a longer unit: a vCPU that goes round the same 2 to 4 exits (same
// reasons, RIPs, GPAs / qualifications, interruption and IDT-vectoring info, levels) again and
// again, with no event delivered and no new event injected, is back in the same state each turn.
// The 2019 Hyper-V-on-KVM hang is one: L1 VMRESUMEs, L2 takes an immediate preemption-timer exit
// at the same RIP before running anything, KVM reflects the re-asserted level-triggered interrupt
// to L1, L1 EOIs it and VMRESUMEs again. A guest polling two ports in turn also repeats its
// exits, but each one completes and the guest moves on (SDM Vol. 3C 28.1 "Architectural State
// Before a VM Exit": a fault-like exit leaves RIP at the instruction, a completed one moves it): a
// cycle is only reported when one of its exits shows the guest not moving at that level: the
// next VM entry resumed at its very RIP, or the next exit of its level in the unit is at the same
// RIP (L2's preemption-timer exit above: L2 never gets past that instruction). Entries whose RIP
// the trace does not say are no evidence either way. Advancing RIPs or GPAs make the exits differ,
// so they never form a unit. Exits at unknown RIPs end a cycle.
bool primitive_unit(const CycleStream::Run& run, uint32_t p) {
  for (uint32_t q = 1; q < p; ++q) {
    if (p % q) continue;
    bool periodic = true;
    for (uint32_t i = q; i < p && periodic; ++i) periodic = run.unit[i].same(run.unit[i - q]);
    if (periodic) return false;  // a shorter unit repeated: reported (or left to the loop rule) as that
  }
  return true;
}

// An exit of the unit whose level's next exit, going round the unit, is at the same RIP.
bool unit_has_a_level_that_does_not_move(const CycleStream::Run& run, uint32_t p) {
  for (uint32_t i = 0; i < p; ++i)
    for (uint32_t d = 1; d <= p; ++d) {
      const CycleExit& next = run.unit[(i + d) % p];
      if (next.level != run.unit[i].level) continue;
      if (next.rip == run.unit[i].rip) return true;
      break;
    }
  return false;
}

void flush_cycle(State& st, CycleStream& cs, uint32_t p, uint16_t vcpu) {
  CycleStream::Run& run = cs.runs[p];
  const bool last_seen = run.match > 0 && run.last_n + CycleStream::kRing > cs.n && run.last_n < cs.n;
  const bool stuck = run.reentered || (last_seen && cs.at(run.last_n).reentered) ||
                     (run.match > 0 && unit_has_a_level_that_does_not_move(run, p));
  if (run.match >= p + 1 && stuck && primitive_unit(run, p)) {
    Violation v;
    v.rule = RuleId::NoProgressCycle;
    const CycleExit& first = run.unit[0];
    v.events = {first.id, run.last_id};
    v.first_ns = first.ns;
    v.last_ns = run.last_ns;
    v.level = first.level;
    v.hv_level = first.hv_level;
    v.vcpu = vcpu;
    v.count = run.match + p;
    v.unit = p;
    std::string unit;
    for (uint32_t i = 0; i < p; ++i) {
      const CycleExit& x = run.unit[i];
      es_record u{};
      u.kind = ES_KIND_VM_EXIT;
      u.reason = x.reason;
      u.flags = x.flags;
      u.rip = x.rip;
      u.guest_phys = x.gpa;
      u.qualification = x.qualification;
      u.intr_info = x.intr_info;
      u.idt_vectoring_info = x.vectoring;
      unit += (i ? " -> \"" : "\"") + replay::describe_event_fields(replay::Event{u, 0}) + "\" at L" + num(x.level);
    }
    const uint32_t rest = v.count % p;
    const std::string turns =
        num(v.count / p) + " full turns" +
        (rest ? ", then the first " + (rest == 1 ? std::string("exit") : num(rest) + " exits") + " of another" : "");
    v.explanation = num(v.count) + " VM exits on vcpu " + num(vcpu) + " go round the same " + num(p) + " exits, " +
                    unit + ": " + turns + ", from " + replay::format_time(v.first_ns) + " to " +
                    replay::format_time(v.last_ns) + " s (#" + num(first.id) + " .. #" + num(run.last_id) +
                    "), with no event delivered and no new event injected in between, and a level that never gets "
                    "past its instruction (re-entered at it, or exiting there again each turn): each turn brings the "
                    "vCPU back to the same instructions in the same state, so the guest makes no progress; the "
                    "hypervisor keeps recreating the cause (an immediate exit re-armed, a level-triggered interrupt "
                    "re-asserted, an exit never completed) (" +
                    saved_rip_reference(run.unit[0].flags) + ").";
    st.report(std::move(v));
  }
  run.match = 0;
  run.reentered = false;
}

void reset_cycles(State& st, CycleStream& cs, uint16_t vcpu) {
  for (uint32_t p = kCycleMinUnit; p <= kCycleMaxUnit; ++p) flush_cycle(st, cs, p, vcpu);
  cs.n = 0;
}

void rule_no_progress_cycle(State& st, const es_record& r) {
  // A delivery or a newly injected event is new work for the guest: progress.
  if (r.kind == ES_KIND_DELIVERY || (r.kind == ES_KIND_DECISION && r.reason == ES_DECISION_INJECT_NEW)) {
    if (auto it = st.cycles.find(r.vcpu); it != st.cycles.end()) reset_cycles(st, it->second, r.vcpu);
    return;
  }
  if (is_entry(r)) {
    auto it = st.cycles.find(r.vcpu);
    if (it == st.cycles.end() || it->second.n == 0) return;
    CycleExit& last = it->second.at(it->second.n - 1);
    // Re-entering an asynchronous exit (host interrupt, NMI, window, timer) at its RIP is what
    // always happens, not evidence of being stuck: only the level's next exit at the same RIP is.
    if (!rip_unknown(r) && r.rip == last.rip && !last.asynchronous) last.reentered = true;
    return;
  }
  if (r.kind != ES_KIND_VM_EXIT) return;
  CycleStream& cs = st.cycles[r.vcpu];
  if (rip_unknown(r)) {  // a RIP the trace does not say: the exits cannot be compared
    reset_cycles(st, cs, r.vcpu);
    return;
  }
  CycleExit cur;
  cur.id = r.id;
  cur.ns = r.time_ns;
  cur.reason = r.reason;
  cur.flags = r.flags & ES_FLAG_SVM;
  cur.intr_info = r.intr_info;
  cur.vectoring = r.idt_vectoring_info;
  cur.rip = r.rip;
  cur.gpa = r.guest_phys;
  cur.qualification = r.qualification;
  cur.level = r.level;
  cur.hv_level = r.hv_level;
  cur.asynchronous = asynchronous_exit(r);
  const uint64_t k = cs.n;
  for (uint32_t p = kCycleMinUnit; p <= kCycleMaxUnit; ++p) {
    CycleStream::Run& run = cs.runs[p];
    if (k >= p && cs.at(k - p).same(cur)) {
      if (run.match == 0) {
        run.reentered = false;
        for (uint32_t i = 0; i < p; ++i) {
          run.unit[i] = cs.at(k - p + i);
          run.reentered |= run.unit[i].reentered;
        }
      } else {
        run.reentered |= cs.at(k - 1).reentered;
      }
      ++run.match;
      run.last_n = k;
      run.last_id = r.id;
      run.last_ns = r.time_ns;
    } else {
      flush_cycle(st, cs, p, r.vcpu);
    }
  }
  cs.at(k) = cur;
  ++cs.n;
}

void finish_no_progress_cycle(State& st) {
  std::vector<uint16_t> vcpus;
  for (const auto& [vcpu, cs] : st.cycles) vcpus.push_back(vcpu);
  std::sort(vcpus.begin(), vcpus.end());  // deterministic order
  for (uint16_t vcpu : vcpus) reset_cycles(st, st.cycles[vcpu], vcpu);
}

// --- nmi-unblocking-ignored --------------------------------------------------------------
// SDM Vol. 3C 28.2.3 / Table 28-7 and 28.2.2: an EPT violation (exit qualification bit 12) or an
// exception / NMI exit (VM-exit interruption info bit 12, not for #DF, not with valid
// IDT-vectoring info) that happened while IRET was unblocking NMIs reports it; IRET is then
// re-executed, so 31.7.1.2 "Resuming Guest Software after Handling an Exception" has the VMM set
// blocking by NMI in the guest interruptibility state before it resumes the guest. Otherwise an
// NMI pending now is injected at the IRET and re-enters the handler it was waiting for. KVM:
// vmx_recover_nmi_blocking(), handle_ept_violation(). Needs the entered interruptibility state,
// which only recordings of the built-in core have (RFLAGS recorded: bit 1 set).
bool reports_nmi_unblocking(const es_record& r) {
  if (!is_vmx(r) || IdtVectoringInfo(r.idt_vectoring_info).valid()) return false;
  const arch::ExitReason reason(r.reason);
  if (reason.is(arch::BasicExitReason::EptViolation))
    return arch::EptViolationQual(r.qualification).nmi_unblocking_due_to_iret();
  if (reason.is(arch::BasicExitReason::ExceptionOrNmi)) {
    const arch::ExitIntrInfo info(r.intr_info);
    return info.valid() && info.vector() != arch::kDF && info.nmi_unblocking_due_to_iret();
  }
  return false;
}

void rule_nmi_unblocking_ignored(State& st, const es_record& r) {
  if (r.kind == ES_KIND_VM_EXIT) {
    if (reports_nmi_unblocking(r)) st.nmi_unblocked[stream_key(r)] = r;
    return;
  }
  if (r.kind != ES_KIND_VM_ENTRY || !is_vmx(r)) return;
  const auto it = st.nmi_unblocked.find(stream_key(r));
  if (it == st.nmi_unblocked.end()) return;
  const es_record exit = it->second;
  st.nmi_unblocked.erase(it);
  const bool state_recorded = (r.aux64 & arch::rflags::kFixed1) != 0;
  if (!state_recorded || (r.aux & arch::interruptibility::kBlockingByNmi)) return;
  const EntryIntrInfo inj(r.intr_info);
  st.report(make(RuleId::NmiUnblockingIgnored, r, r.origin, {exit.id, r.id},
                 kind_text(r) + " #" + num(r.id) + " (" + where(r) + ") resumes the guest at rip " + hex(r.rip) +
                     " with interruptibility " + hex(r.aux) + " (no blocking by NMI) after VM exit #" + num(exit.id) +
                     " reported NMI unblocking due to IRET" +
                     (inj.valid() ? ", and injects " + arch::describe(inj) : std::string()) +
                     ": the IRET is re-executed, so blocking by NMI must be set again first, or an NMI pending now "
                     "re-enters the handler the IRET was leaving (SDM Vol. 3C 31.7.1.2 \"Resuming Guest Software "
                     "after Handling an Exception\"; 28.2.3; KVM vmx_recover_nmi_blocking)."));
}

// --- nmi-while-blocked -------------------------------------------------------------------
// Vol. 3C 27.3.1.5 "Checks on Guest Non-Register State": blocking by NMI (interruptibility
// bit 3) must be 0 when injecting an NMI with virtual NMIs; without them, the NMI handler
// would be re-entered before its IRET (Vol. 3A 6.7.1 "Handling Multiple NMIs").
void rule_nmi_while_blocked(State& st, const es_record& r) {
  if (!is_entry(r) || !is_vmx(r)) return;
  const EntryIntrInfo inj(r.intr_info);
  if (!inj.valid() || inj.type() != InterruptionType::Nmi) return;
  if ((r.aux & arch::interruptibility::kBlockingByNmi) == 0) return;
  st.report(make(RuleId::NmiWhileBlocked, r, r.origin, {r.id},
                 kind_text(r) + " #" + num(r.id) + " (" + where(r) +
                     ") injects an NMI while the entered "
                     "interruptibility state " +
                     hex(r.aux) +
                     " has blocking by NMI: with virtual NMIs this entry fails "
                     "its checks (SDM Vol. 3C 27.3.1.5 \"Checks on Guest Non-Register State\"), without them the NMI "
                     "handler is re-entered before its IRET (Vol. 3A 6.7.1 \"Handling Multiple NMIs\"); KVM's "
                     "nmi_allowed() refuses this and opens an NMI window."));
}

// --- irq-window-closed -------------------------------------------------------------------
// Vol. 3C 27.3.1.4 "Checks on Guest RIP, RFLAGS, and SSP": RFLAGS.IF must be 1 when an
// external interrupt is injected; 27.3.1.5 "Checks on Guest Non-Register State": blocking
// by STI and by MOV SS must then be 0.
void rule_irq_window_closed(State& st, const es_record& r) {
  if (!is_entry(r) || !is_vmx(r)) return;
  const EntryIntrInfo inj(r.intr_info);
  if (!inj.valid() || inj.type() != InterruptionType::ExternalInterrupt) return;
  std::string why;
  // RFLAGS bit 1 is always 1: a zero word means the source did not record RFLAGS.
  const bool rflags_known = (r.aux64 & arch::rflags::kFixed1) != 0;
  if (rflags_known && (r.aux64 & arch::rflags::kIF) == 0) why = "RFLAGS.IF = 0 (RFLAGS " + hex(r.aux64) + ")";
  if (r.aux & arch::interruptibility::kBlockingBySti) why += std::string(why.empty() ? "" : ", ") + "blocking by STI";
  if (r.aux & arch::interruptibility::kBlockingByMovSs)
    why += std::string(why.empty() ? "" : ", ") + "blocking by MOV SS";
  if (why.empty()) return;
  st.report(make(RuleId::IrqWindowClosed, r, r.origin, {r.id},
                 kind_text(r) + " #" + num(r.id) + " (" + where(r) + ") injects " + arch::describe(inj) +
                     " while the interrupt window is closed (" + why +
                     "): an injected external interrupt needs "
                     "RFLAGS.IF = 1 and no blocking by STI or MOV SS (SDM Vol. 3C 27.3.1.4 \"Checks on Guest RIP, "
                     "RFLAGS, and SSP\" and 27.3.1.5 \"Checks on Guest Non-Register State\"); KVM opens an interrupt "
                     "window instead."));
}

// --- l1-intercept-bypassed ---------------------------------------------------------------
// While L2 runs, an exception L1 intercepts (vmcs12 exception bitmap; for #PF bit 14 together
// with the page-fault error-code mask and match, SDM Vol. 3C 25.6.3 "Exception Bitmap") must
// reach L1 as a VM exit (exit reason 0), not be delivered to L2: L0 injecting such an
// exception into L2 on its own (a new event, not L1's vmcs12 injection and not a reinjection
// of an event whose delivery an L0 exit interrupted) bypasses L1. KVM turns it into a nested
// VM exit (nested_vmx_check_exception()); the async #PF bug of the mailing-list thread
// injected it into L2 instead.
void rule_l1_intercept_bypassed(State& st, const es_record& r) {
  if (!is_vmx(r)) return;
  if (r.kind == ES_KIND_NESTED_ENTRY) {
    State::L1Intercepts& l = st.l1[r.vcpu];
    l.in_l2 = true;
    l.exception_bitmap = static_cast<uint32_t>(r.qualification);
    l.pfec_mask = static_cast<uint32_t>(r.guest_linear);
    l.pfec_match = static_cast<uint32_t>(r.guest_linear >> 32);
    l.entry_id = r.id;
    return;
  }
  if (r.kind == ES_KIND_NESTED_EXIT) {
    st.l1[r.vcpu].in_l2 = false;
    return;
  }
  if (r.kind != ES_KIND_DECISION || r.reason != ES_DECISION_INJECT_NEW || r.hv_level != 0 || r.level != 2) return;
  auto it = st.l1.find(r.vcpu);
  if (it == st.l1.end() || !it->second.in_l2) return;
  const State::L1Intercepts& l = it->second;
  const EntryIntrInfo inj(r.intr_info);
  if (!inj.valid() || inj.type() != InterruptionType::HardwareException) return;
  bool intercepted = (l.exception_bitmap >> inj.vector()) & 1u;
  if (inj.vector() == 14 && (r.intr_error & l.pfec_mask) != l.pfec_match) intercepted = !intercepted;
  if (!intercepted) return;
  st.report(make(RuleId::L1InterceptBypassed, r, r.origin, {l.entry_id, r.id},
                 "L0 injected " + arch::describe(inj) + " (error code " + hex(r.intr_error) + ") into L2 at #" +
                     num(r.id) + " (vcpu " + num(r.vcpu) + ") although L1 intercepts it (vmcs12 exception bitmap " +
                     hex(l.exception_bitmap) + " at L1's entry #" + num(l.entry_id) +
                     "): the exception must become a nested VM exit to L1 with exit reason EXCEPTION_NMI (SDM Vol. 3C "
                     "25.6.3 \"Exception Bitmap\"; KVM nested_vmx_check_exception()), as for an asynchronous #PF "
                     "destined to L2."));
}

// --- event-lost --------------------------------------------------------------------------
uint64_t exception_key(uint32_t vcpu, uint8_t level, uint32_t word, uint32_t error) {
  return (uint64_t{vcpu & 0xffffu} << 48) | (uint64_t{level} << 40) | (uint64_t{EntryIntrInfo(word).vector()} << 32) |
         error;
}

bool is_double_fault_word(uint32_t w) {
  const EntryIntrInfo e(w);
  return e.valid() && e.vector() == arch::kDF && e.type() == arch::InterruptionType::HardwareException;
}

// The chain's outcome as replay/chains decides it, counted only where a hypervisor is to
// blame: an event it discarded although the architecture still owed its delivery, an event
// in IDT-vectoring info it did not reinject (its policy), or one that vanished without any
// explanation in a run the guest ended. What hardware itself does to an event (handled
// serially, superseded by a fault in its delivery, a collapsed NMI, a coalesced IRQ,
// promoted to #DF) is not a violation. Vol. 3C 28.2.4: an event found in IDT-vectoring info
// must be reinjected or it is lost.
void prune_effects(State& st);

// The rule every event-lost sentence ends with, in the chain's vendor's words.
std::string owed_reinjection(replay::Vendor v) {
  switch (v) {
    case replay::Vendor::Svm:
      return "An event found in EXITINTINFO must be reinjected (AMD APM Vol. 2 15.7.2 \"Intercepts During IDT "
             "Interrupt Delivery\"; KVM svm_complete_interrupts).";
    case replay::Vendor::Vmx:
      return "An event found in IDT-vectoring info must be reinjected (SDM Vol. 3C 28.2.4 \"Information for VM Exits "
             "That Occur During Event Delivery\"; KVM vmx_complete_interrupts).";
    case replay::Vendor::Unknown: break;
  }
  return "An event found in IDT-vectoring info / EXITINTINFO must be reinjected (SDM Vol. 3C 28.2.4, AMD APM Vol. 2 "
         "15.7.2; KVM vmx_complete_interrupts / svm_complete_interrupts).";
}

// The event-lost violation of chain `c`, whose outcome is a loss.
void report_lost(State& st, const replay::Chain& c) {
  const es_record& last = c.events.back().rec;
  const es_record& first = c.root_found ? c.root.rec : c.events.front().rec;
  std::string what;
  switch (c.outcome) {
    case replay::Outcome::DiscardedByHypervisor:
      if (c.delivery_fault && c.outcome_event == c.delivery_fault) {
        // Vol. 3A 6.15 Table 6-5: the pair the delivery formed owes #DF (or, delivering #DF,
        // a shutdown); KVM's kvm_multiple_exception merges it so.
        const bool df = is_double_fault_word(c.event_word);
        what = "had its delivery fault with " + std::string(arch::exception_mnemonic(c.delivery_fault_vector)) +
               " (VM exit #" + num(c.delivery_fault) +
               "), and the hypervisor answered with neither a reinjection nor " + (df ? "a shutdown" : "#DF") +
               ": that pair must " +
               (df ? "shut the guest down (SDM Vol. 3A 6.15 \"Interrupt 8\")"
                   : "become a double fault (SDM Vol. 3A 6.15 Table 6-5 \"Conditions for Generating a Double "
                     "Fault\"; KVM kvm_multiple_exception)") +
               ", so the event was thrown away";
        break;
      }
      if (c.outcome_discard_aux == ES_DISCARD_NOT_HANDED_BACK) {
        // The exit to L1 is the discard's cause (replay/import/kvmtrace), when the member is held.
        uint64_t exit_to_l1 = 0;
        bool inferred = false;  // the importer saw lines left out in between (kvmtrace)
        for (const replay::Event& m : c.events)
          if (m.rec.id == c.outcome_event) {
            exit_to_l1 = m.rec.cause;
            inferred = (m.rec.flags & ES_FLAG_INFERRED) != 0;
          }
        what = "was thrown away at #" + num(c.outcome_event) +
               (exit_to_l1 ? " (L0's exit to L1 #" + num(exit_to_l1) + ")" : std::string()) + ": " +
               std::string(replay::discard_reference(c.outcome_discard_aux, replay::chain_vendor(c))) +
               (inferred ? " (inferred: the text leaves lines out between that entry and that exit, and an entry "
                           "into L2 may be among them; the lines shown have none)"
                         : "");
        break;
      }
      what = "was discarded by the hypervisor at #" + num(c.outcome_event) +
             " although no fault raised during its own delivery superseded it: the architecture still owed its "
             "delivery";
      break;
    case replay::Outcome::DroppedByPolicy: {
      what = "was found in IDT-vectoring info and not reinjected (the reinjection policy dropped it at #" +
             num(c.outcome_event) + ")";
      // The same exception delivered later at that level: the CPU raised it again when the
      // instruction re-executed (a fault), this time; nothing guarantees it (a hypervisor's own
      // injection, or state that changed in between, is not raised again).
      if (const auto again = st.delivered_again.find(c.id); again != st.delivered_again.end())
        what += "; the same exception (vector and error code) was delivered next at that level (#" +
                num(again->second.first) + ", chain " + num(again->second.second) +
                "), as when re-executing the instruction raises it again, which nothing guarantees";
      else
        what += ", so the guest never saw it";
      break;
    }
    default:
      what =
          "was never delivered, and nothing the architecture does explains it (not handled serially, "
          "superseded, collapsed, coalesced or promoted to #DF) in a run the guest ended: the event is lost";
      break;
  }
  // A loss not handed back and a delivery fault answered with neither #DF nor a reinjection broke
  // their own rules, said above; the others the reinjection rule.
  const bool own_rule = c.outcome == replay::Outcome::DiscardedByHypervisor &&
                        (c.outcome_discard_aux == ES_DISCARD_NOT_HANDED_BACK ||
                         (c.delivery_fault && c.outcome_event == c.delivery_fault));
  Violation v =
      make(RuleId::EventLost, last, c.id, {c.id, last.id},
           arch::describe(EntryIntrInfo(c.event_word)) + " of chain " + num(c.id) + " (raised at #" + num(c.id) + ", " +
               where(first) + ", rip " + (rip_unknown(first) ? std::string("unknown") : hex(first.rip)) + ") " + what +
               "; its last event is #" + num(last.id) + " (" + replay::describe_event_fields(c.events.back()) + ")." +
               (own_rule ? std::string() : " " + owed_reinjection(replay::chain_vendor(c))));
  v.first_ns = first.time_ns;
  st.report(std::move(v));
}

void finish_event_lost(State& st) {
  if (st.options.lost_chain) {
    // The recording's stored outcomes decide (CheckOptions::lost_chain): only a chain not
    // delivered can be lost, and only one whose stored outcome is a loss is read back.
    std::vector<uint64_t> open;
    for (const auto& [id, c] : st.chains)
      if (!c.settled) open.push_back(id);
    std::sort(open.begin(), open.end());
    for (uint64_t id : open) {
      std::optional<replay::Chain> lost;
      if (!st.options.lost_chain(id, lost)) return;
      if (lost && replay::outcome_is_loss(lost->outcome)) report_lost(st, *lost);
    }
    return;
  }
  prune_effects(st);
  std::vector<replay::Event> members;
  // A chain no longer in st.chains was forgotten once settled (forget_settled_chains).
  auto settled = [&](uint64_t id) {
    if (id == 0) return false;
    const auto it = st.chains.find(id);
    return it == st.chains.end() || it->second.settled;
  };
  for (auto& [id, c] : st.chains)
    if (!c.settled)
      for (auto& e : c.members) members.push_back(e);
  for (const auto& e : st.effects)
    if (settled(e.rec.origin)) members.push_back(e);
  std::vector<replay::Chain> chains = replay::build_chains(std::move(members), st.run_ends);
  for (const replay::Chain& c : chains)
    if (replay::outcome_is_loss(c.outcome) && !settled(c.id)) report_lost(st, c);
}

// Name and description of a rule, from the ABI's rule table (exitscope/violations.def).
constexpr Rule rule_info(RuleId id) {
  switch (id) {
#define ES_VIOLATION(num, abi_name, enumerator, name, description) \
  case RuleId::enumerator:                                         \
    return Rule{RuleId::enumerator, name, description};
#include "exitscope/violations.def"
#undef ES_VIOLATION
  }
  return Rule{id, "", ""};
}

// The rule table. One entry (violations.def + here) and one function per rule.
struct RuleImpl {
  Rule info;
  void (*on_record)(State&, const es_record&);
  void (*on_finish)(State&);
};

constexpr RuleImpl kRules[] = {
    {rule_info(RuleId::ExitExtIntWithVectoring), &rule_exit_ext_int_with_vectoring, nullptr},
    {rule_info(RuleId::InjectedTwice), &rule_injected_twice, nullptr},
    {rule_info(RuleId::EventLost), nullptr, &finish_event_lost},
    {rule_info(RuleId::ReinjectionLoop), &rule_reinjection_loop, &finish_reinjection_loop},
    {rule_info(RuleId::NmiWhileBlocked), &rule_nmi_while_blocked, nullptr},
    {rule_info(RuleId::IrqWindowClosed), &rule_irq_window_closed, nullptr},
    {rule_info(RuleId::L1InterceptBypassed), &rule_l1_intercept_bypassed, nullptr},
    {rule_info(RuleId::NoProgressLoop), &rule_no_progress_loop, &finish_no_progress_loop},
    {rule_info(RuleId::NmiUnblockingIgnored), &rule_nmi_unblocking_ignored, nullptr},
    {rule_info(RuleId::NoProgressCycle), &rule_no_progress_cycle, &finish_no_progress_cycle},
};

std::vector<Rule> make_rule_list() {
  std::vector<Rule> v;
  for (const RuleImpl& r : kRules) v.push_back(r.info);
  return v;
}

// An effect tells build_chains the outcome of the chain its cause belongs to; once that chain
// has settled (or its cause is in no chain) no outcome event-lost reports can depend on it, and
// a settled chain never becomes unsettled. Dropped here so a recording where every chain root is
// caused inside another chain (a timer interrupting the last one's handler) does not keep one
// record per chain (issue #18: `check` of 10 M events peaked at 1.9 GB).
void prune_effects(State& st) {
  std::unordered_set<uint64_t> live;
  for (uint64_t id : st.unsettled) {
    auto it = st.chains.find(id);
    if (it == st.chains.end()) continue;
    for (const replay::Event& e : it->second.members) live.insert(e.rec.id);
  }
  std::erase_if(st.effects, [&](const replay::Event& e) { return !live.count(e.rec.cause); });
  st.effects_kept = st.effects.size();
}

bool is_effect(const es_record& r) {
  if (r.cause == 0) return false;
  // A chain root caused inside another chain: the other chain's outcome may depend on it
  // (handled serially / superseded when it was raised during that chain's delivery).
  if (r.id == r.origin) return true;
  const EntryIntrInfo w(r.intr_info);
  if (r.kind == ES_KIND_RAISE && w.valid() && w.vector() == 8 && w.type() == InterruptionType::HardwareException)
    return true;
  return replay::is_triple_fault_exit(r);
}

// A settled chain (its event delivered: event-lost no longer needs it) whose reinjection-loop run
// is empty keeps only what injected-twice compares a later member with: its event and deliveries.
// Those are in the recording, so it leaves memory; recall_chain rebuilds that state from its members
// if one more comes.
void forget_settled_chains(State& st, uint64_t now) {
  const size_t window = st.options.settle_window ? st.options.settle_window : replay::settle_window();
  st.next_sweep = now + window;
  for (auto it = st.chains.begin(); it != st.chains.end();) {
    const ChainState& c = it->second;
    if (!c.settled || c.loop.count != 0 || c.last + window > now ||
        (!st.options.chain_history && !st.spill->put(it->first, c))) {  // not written: kept
      ++it;
      continue;
    }
    st.forgotten_max = std::max<uint64_t>(st.forgotten_max, it->first);
    st.delivered_again.erase(it->first);  // event-lost reports only unsettled chains
    ++st.forgotten;
    it = st.chains.erase(it);
  }
}

// The state of forgotten chain `id` before record `before`, as feed() left it: settled, its event
// from its root, its deliveries (flush_loop emptied its loop run, so that is the default again).
void recall_chain(State& st, uint64_t id, uint64_t before) {
  if (!st.options.chain_history) {  // forgotten into st.spill: the same state, stored
    ChainState c;
    if (!st.spill->get(id, c)) return;
    st.chains[id] = std::move(c);
    ++st.recalled;
    return;
  }
  std::vector<es_record> rows;
  (void)st.options.chain_history(id, before, rows);
  std::erase_if(rows, [](const es_record& m) { return m.kind == ES_KIND_VIOLATION; });
  if (rows.empty()) return;  // no member before: a new chain (its root not recorded), not a forgotten one
  ChainState& c = st.chains[id];
  ++st.recalled;
  c.settled = true;
  for (const es_record& m : rows) {
    if (m.id == id) {
      c.root_seen = true;
      c.word = m.intr_info;
    }
    if (m.kind == ES_KIND_DELIVERY && EntryIntrInfo(m.intr_info).valid())
      c.delivered.push_back({m.level, m.intr_info, m.id});
    c.last = std::max<uint64_t>(c.last, m.id);
  }
}

}  // namespace

std::span<const Rule> rules() {
  static const std::vector<Rule> kList = make_rule_list();
  return kList;
}

const Rule* find_rule(std::string_view name) {
  for (const Rule& r : rules())
    if (r.name == name) return &r;
  return nullptr;
}

const Rule* find_rule(uint32_t id) {
  for (const Rule& r : rules())
    if (static_cast<uint32_t>(r.id) == id) return &r;
  return nullptr;
}

std::string rule_name_list() {
  std::string s;
  for (const Rule& r : rules()) s += (s.empty() ? "" : ", ") + std::string(r.name);
  return s;
}

es_record to_record(const Violation& v) {
  es_record r{};
  r.version = ES_RECORD_VERSION;
  r.kind = ES_KIND_VIOLATION;
  r.reason = static_cast<uint32_t>(v.rule);
  r.level = v.level;
  r.hv_level = v.hv_level;
  r.vcpu = v.vcpu;
  r.time_ns = v.last_ns;
  r.origin = v.chain;
  r.cause = v.events.empty() ? 0 : v.events.back();
  r.aux = v.count;
  r.aux64 = v.events.size() > 1 ? v.events.front() : 0;
  return r;
}

Checker::Checker(CheckOptions options) : st_(std::make_unique<State>()) {
  st_->options = std::move(options);
  if (st_->options.forget_to_disk && !st_->options.chain_history) st_->spill = ForgottenChains::open();
  for (const RuleImpl& r : kRules) {
    const auto idx = static_cast<size_t>(r.info.id);
    st_->on[idx] = st_->options.only.empty() ||
                   std::find(st_->options.only.begin(), st_->options.only.end(), r.info.id) != st_->options.only.end();
  }
}
Checker::~Checker() = default;
Checker::Checker(Checker&&) noexcept = default;
Checker& Checker::operator=(Checker&&) noexcept = default;

bool Checker::enabled(RuleId id) const {
  const auto idx = static_cast<size_t>(id);
  return idx < st_->on.size() && st_->on[idx];
}

const std::vector<Violation>& Checker::violations() const { return st_->out; }
size_t Checker::chains_held() const { return st_->chains.size(); }
uint64_t Checker::chains_forgotten() const { return st_->forgotten; }
uint64_t Checker::chains_recalled() const { return st_->recalled; }

void Checker::feed(const es_record& r) {
  State& st = *st_;
  if (r.kind == ES_KIND_VIOLATION || st.finished) return;
  if (st.options.chain_history || st.spill) {
    if (r.id >= st.next_sweep) forget_settled_chains(st, r.id);
    if (r.origin != 0 && r.origin <= st.forgotten_max && r.origin != r.id && !st.chains.count(r.origin))
      recall_chain(st, r.origin, r.id);
  }
  for (const RuleImpl& rule : kRules)
    if (rule.on_record && st.on[static_cast<size_t>(rule.info.id)]) rule.on_record(st, r);

  // Bookkeeping after the rules (they look at the state before this record).
  if (r.kind == ES_KIND_RUN_END) st.run_ends.push_back({r, 0});
  if (r.origin == 0) return;
  ChainState& c = st.chains[r.origin];
  c.last = r.id;
  if (r.id == r.origin) {
    c.root_seen = true;
    c.word = r.intr_info;
  }
  if (r.kind == ES_KIND_DELIVERY && EntryIntrInfo(r.intr_info).valid())
    c.delivered.push_back({r.level, r.intr_info, r.id});
  if (!enabled(RuleId::EventLost)) return;
  if (r.kind == ES_KIND_DECISION && r.reason == ES_DECISION_DROP_FROM_VECTORING && r.origin)
    st.pending_drops[exception_key(r.vcpu, r.level, r.intr_info, r.intr_error)] = r.origin;
  if (r.kind == ES_KIND_DELIVERY && !st.pending_drops.empty()) {
    const auto it = st.pending_drops.find(exception_key(r.vcpu, r.level, r.intr_info, r.intr_error));
    if (it != st.pending_drops.end() && it->second != r.origin) {
      st.delivered_again[it->second] = {r.id, r.origin};
      st.pending_drops.erase(it);
    }
  }
  if (is_effect(r) && !st.options.lost_chain) {
    st.effects.push_back({r, 0});
    if (st.effects.size() >= 2 * std::max<size_t>(st.effects_kept, 4096)) prune_effects(st);
  }
  if (c.settled) return;
  if (!st.options.lost_chain) {  // kept for build_chains at the end, unless the recording decides
    if (c.members.empty()) st.unsettled.insert(r.origin);
    c.members.push_back({r, 0});
  }
  if (r.kind == ES_KIND_VM_EXIT || r.kind == ES_KIND_NESTED_EXIT) {
    if (replay::delivery_fault_of(r, c.word, c.injected)) c.faulted = true;
    c.injected = false;
  } else if (r.kind == ES_KIND_VM_ENTRY || r.kind == ES_KIND_NESTED_ENTRY) {
    c.injected = c.root_seen && same_event(r.intr_info, c.word);
    if (c.injected) c.faulted = false;
  }
  // Delivered its original event: replay/chains can then only say delivered, dropped by
  // policy, promoted or triple fault, never lost. Its members are no longer needed. (A delivery
  // an importer inferred after an exit that showed a fault in that delivery is no delivery.)
  if (c.root_seen && r.kind == ES_KIND_DELIVERY && same_event(r.intr_info, c.word) &&
      !(c.faulted && (r.flags & ES_FLAG_INFERRED))) {
    c.settled = true;
    c.members.clear();
    c.members.shrink_to_fit();
    st.unsettled.erase(r.origin);
  }
}

void Checker::finish() {
  State& st = *st_;
  if (st.finished) return;
  for (const RuleImpl& rule : kRules)
    if (rule.on_finish && st.on[static_cast<size_t>(rule.info.id)]) rule.on_finish(st);
  st.finished = true;
  if ((st.options.chain_history || st.spill) && std::getenv("ES_SETTLE_WINDOW"))
    std::fprintf(stderr, "exitscope: checker: %llu settled chains forgotten, %llu read back\n",
                 static_cast<unsigned long long>(st.forgotten), static_cast<unsigned long long>(st.recalled));
}

}  // namespace es::check
