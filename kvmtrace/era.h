// Which kernel printed a KVM trace, decided from all the evidence in it (issue #15): the one
// place that weighs the evidence of every event, for the linker (kvmtrace/linker.h) whatever the
// source. What it decides:
//   - what kvm_exit's "info A B" means on VMX (InfoPairMeaning, kvmtrace/decode.h): the
//     kernel's own format before 5.10 (info2 = VM-exit interruption info), but also trace-cmd's
//     kvm plugin's on every kernel (info2 = IDT-vectoring info from 5.10). Evidence for the newer
//     kernel: formats only newer kernels print (kvm_exit intr_info, kvm_inj_* "[reinjected]",
//     kvm_entry intr_info) and exits whose reason rules the older meaning out; for the older: a
//     kvm_entry without RIP, kvm_nested_vmexit's old "int_info", EXTERNAL_INTERRUPT exits with a
//     valid info2. A kernel's version is a fact about every line and wins over one line's reason;
//     a disagreement is said and marks the exits inferred;
//   - the era sentence and the assumptions an import or a recording keeps (describe()).
// Whole-file sources (text) call learn() for every event, then finish(), then note() while
// linking; streaming sources (trace.dat, live) only note(): their fields say the era exactly.
// Sources that have the event formats themselves (the running kernel's tracefs `format` files,
// the copies a trace.dat carries) also feed them to note_format(): formats_era() is then the era
// from the formats alone, one sentence whichever source read them (issue #15: the live recorder
// and the trace.dat importer used to decide it each in their own way, and disagreed).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kvmtrace/decode.h"
#include "kvmtrace/event.h"
#include "kvmtrace/fields.h"

namespace es::kvmtrace {

// What the events told about the kernel and what had to be assumed (an import's and a live
// recording's session keep it); the linker fills it (Linker::describe).
struct TraceFacts {
  std::string vendor;                    // "vmx", "svm", "mixed", "unknown"
  std::string era;                       // what the formats say about the kernel
  std::vector<std::string> assumptions;  // where the events did not say (records ES_FLAG_INFERRED)
  // With more than one VM in the events: which VM and vCPU id each recorded vCPU number is, one
  // line each in recorded order ("vcpu 1 = VM 2 (pid 4321) vcpu 0"); empty for one VM.
  std::vector<std::string> vcpu_map;
};

class EraEvidence {
 public:
  void learn(const KvmEvent& t, uint64_t line_no);  // a whole-file source's first pass
  void finish();                                    // decides InfoPairMeaning from what learn() saw
  void note(const KvmEvent& t);                     // every event as it is linked
  // One event's format: the fields it declares (by kvmtrace::Field; an event the kernel or file
  // has no format for is simply not noted).
  template <typename Has>  // bool has(Field)
  void note_format(Tracepoint tp, const Has& has) {
    FormatSeen& f = formats_;
    switch (tp) {
      case Tracepoint::Exit:
        f.exit = true;
        f.exit_intr_info |= has(fIntrInfo);
        f.exit_info2 |= has(fInfo2);
        break;
      case Tracepoint::Entry:
        f.entry = true;
        f.entry_intr_info |= has(fIntrInfo);
        f.entry_immediate_exit |= has(fImmediateExit);
        break;
      case Tracepoint::InjVirq:
        f.inj_virq = true;
        f.inj_virq_reinjected |= has(fReinjected);
        break;
      case Tracepoint::InjException:
        f.inj_exception = true;
        f.inj_exception_reinjected |= has(fReinjected);
        break;
      default: break;
    }
  }
  // The era the noted formats say, with the fields that say it ("Linux 6.0+ (from the event
  // formats: kvm_exit has intr_info; kvm_inj_virq / kvm_inj_exception have reinjected; ...)").
  std::string formats_era() const;

  InfoPairMeaning info_pair() const { return info_pair_; }
  // What finish() would decide from the evidence learned so far (`conflict`: contested()), without
  // finishing: a single-pass source's answer for the lines it links before the end.
  InfoPairMeaning decision(bool& conflict) const;
  bool contested() const { return info_pair_conflict_; }  // the trace contradicts itself about info2
  // Whether a kvm_exit or kvm_entry event said the era (a trace.dat without one reads it from
  // its event formats instead, which are exact).
  bool from_exit_or_entry() const { return era_intr_ || era_pair_ || era_entry_intr_; }

  // Sets s.era and appends the assumptions about the era (what "info A B" was read as and which
  // lines decided it, trimmed kvm_entry lines, a contradiction). `saw_vmx`: the trace has VMX exits.
  void describe(bool saw_vmx, TraceFacts& s) const;

 private:
  struct Evidence {
    uint64_t count = 0;
    uint64_t first_line = 0;
    std::string what;  // of the first line that gave it
    void add(uint64_t line, std::string why) {
      if (count++ == 0) {
        first_line = line;
        what = std::move(why);
      }
    }
  };

  // learn() evidence for the 5.10+ meaning: from the kernel's version (a print format only
  // newer kernels have) and from exits whose reason rules the other meaning out; and for the
  // pre-5.10 meaning, from exits whose reason rules out IDT-vectoring.
  Evidence newer_kernel_, older_kernel_, info2_is_vectoring_, info2_is_exit_intr_, trimmed_entries_;
  Evidence entries_without_rip_;  // older-kernel evidence unless other kvm_entry lines have the RIP
  uint64_t info_pair_exits_ = 0;
  uint64_t entries_with_rip_ = 0;  // a kernel that prints the RIP prints it on every kvm_entry
  InfoPairMeaning info_pair_ = InfoPairMeaning::Undecided;
  bool info_pair_conflict_ = false;
  bool learned_ = false;  // finish() ran: a text source (fields by print format, not by name)
  // note_format(): what the event formats declare.
  struct FormatSeen {
    bool exit = false, exit_intr_info = false, exit_info2 = false;
    bool entry = false, entry_intr_info = false, entry_immediate_exit = false;
    bool inj_virq = false, inj_virq_reinjected = false, inj_exception = false, inj_exception_reinjected = false;
  };
  FormatSeen formats_;
  // note(): the formats the linked events had.
  bool era_intr_ = false, era_pair_ = false, era_entry_intr_ = false, era_virq_new_ = false;
  // Which tracepoint printed intr_info (describe() names it): kvm_exit, else kvm_nested_vmexit only.
  bool era_intr_from_exit_ = false;
};

}  // namespace es::kvmtrace
