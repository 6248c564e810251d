#include "kvmtrace/era.h"

#include "hv/arch/exit_reason.h"

namespace es::kvmtrace {

// When the fields appeared in arch/x86/kvm/trace.h (torvalds/linux history):
//   - kvm_exit info1 / info2 / intr_info / error_code: 5.10;
//   - kvm_inj_virq's `soft` / `reinjected` (commit 2d61391270a3 "KVM: x86: Differentiate Soft
//     vs. Hard IRQs vs. reinjected in tracepoint") and kvm_inj_exception's `reinjected` (commit
//     a61d7c5432ac "KVM: x86: Trace re-injected exceptions"): both came in the KVM pull for the
//     merge window after 5.19 ("KVM changes for Linux 5.20 merge window", 2022-08-02, on top of
//     5.19-rc8, "patches that had come in too late for 5.19"), so the first release with them is
//     Linux 6.0, not 5.19;
//   - kvm_entry's immediate_exit: 6.9 upstream, taken into stable kernels too (the test bed's
//     Debian 6.1.192 has it), so it says nothing certain;
//   - kvm_entry's intr_info / error_code: 6.14.

void EraEvidence::learn(const KvmEvent& t, uint64_t line_no) {
  // The sentence is made for the first line of each kind only (a whole-file pass calls this for
  // every line: building it for each was most of the pass's cost here).
  const auto add = [&](Evidence& e, auto&& what) {
    if (e.count)
      ++e.count;
    else
      e.add(line_no, std::string(what()) + " (line " + std::to_string(line_no) + ")");
  };
  if ((t.event == Tracepoint::Exit || t.event == Tracepoint::NestedVmexit) && !t.exit.svm() && t.exit.reason &&
      !t.exit.old_nested_format) {  // the old kvm_nested_vmexit's "int_info" says nothing of the era
    const arch::ExitReason reason(*t.exit.reason);
    const auto name = [&] { return std::string(arch::exit_reason_name(reason.basic_number())); };
    if (t.exit.format == ExitFormat::IntrInfo) {
      add(newer_kernel_, [&] { return "kvm_exit prints intr_info, Linux 5.10+"; });
    } else if (t.exit.format == ExitFormat::InfoPair) {
      ++info_pair_exits_;
      const bool valid = (t.exit.info2.value_or(0) >> 31) & 1;
      const bool exception = reason.is(arch::BasicExitReason::ExceptionOrNmi);
      const bool external = reason.is(arch::BasicExitReason::ExternalInterrupt);
      // SDM Vol. 3C 28.2.2 "Information for VM Exits Due to Vectored Events": the VM-exit
      // interruption information is valid only for exits due to an exception / NMI or an
      // external interrupt (KVM acknowledges interrupts on exit since Linux 3.11), and always
      // valid for those. 28.2.4 "Information for VM Exits That Occur During Event Delivery":
      // an external interrupt is never taken in the middle of delivering another event.
      if (valid && !exception && !external)
        add(info2_is_vectoring_,
            [&] { return name() + " exit with a valid info2: only IDT-vectoring info can be valid there"; });
      else if (!valid && (exception || external))
        add(info2_is_vectoring_,
            [&] { return name() + " exit with info2 not valid: its VM-exit interruption info always is"; });
      else if (valid && external)
        add(info2_is_exit_intr_,
            [&] { return "EXTERNAL_INTERRUPT exit with a valid info2: IDT-vectoring info is never valid there"; });
    }
  }
  // Print formats of Linux 6.0+ (kvm_inj_virq "IRQ 0x.. [reinjected]", kvm_inj_exception
  // without the error code it does not deliver; see kReinjectedSince) and 6.14+ (kvm_entry intr_info).
  if ((t.event == Tracepoint::InjVirq || t.event == Tracepoint::InjException) && t.injected &&
      t.injected->reinjected_printed_era)
    add(newer_kernel_, [&] { return std::string(to_string(t.event)) + " in the Linux 6.0+ format"; });
  if (t.event == Tracepoint::Entry && t.injected)
    add(newer_kernel_, [&] { return "kvm_entry prints intr_info, Linux 6.14+"; });
  // "kvm_entry: vcpu 0" without the RIP: the kernel's own format before 5.9 (trace-cmd's kvm
  // plugin does not reformat kvm_entry), so its kvm_exit printed info2 = VM-exit interruption info.
  if (t.event == Tracepoint::Entry && !t.rip && !t.injected && t.vcpu >= 0)
    add(entries_without_rip_, [&] { return "kvm_entry prints no RIP, a kernel before 5.9"; });
  // kvm_nested_vmexit in its own format ("rip X reason Y info1 .. int_info ..") was printed by a
  // kernel before 5.10, which made it print like kvm_exit; trace-cmd's kvm plugin reads those old
  // fields too and cannot print them from a newer kernel (it complains CAN'T FIND FIELD instead).
  if (t.event == Tracepoint::NestedVmexit && t.exit.old_nested_format)
    add(older_kernel_, [&] { return "kvm_nested_vmexit prints int_info, its format before Linux 5.10"; });
  if (t.event == Tracepoint::Entry && t.rip) ++entries_with_rip_;
}

void EraEvidence::finish() {
  learned_ = true;
  // kvm_entry lines with and without the RIP in one file: the author trimmed some (Linux prints
  // it on every kvm_entry or on none), so those without say nothing about the kernel.
  if (entries_with_rip_ && entries_without_rip_.count) {
    trimmed_entries_ = entries_without_rip_;
  } else if (entries_without_rip_.count) {
    // The kvm_entry evidence first (it is what describe() has always cited), then the rest.
    Evidence merged = entries_without_rip_;
    merged.count += older_kernel_.count;
    older_kernel_ = merged;
    entries_without_rip_ = Evidence{};  // counted in older_kernel_ now (decision() reads both)
  }
  info_pair_ = decision(info_pair_conflict_);
}

InfoPairMeaning EraEvidence::decision(bool& conflict) const {
  conflict = false;
  // finish()'s merge: kvm_entry lines without the RIP count as older-kernel evidence unless
  // other kvm_entry lines have it.
  const uint64_t kernel_old = older_kernel_.count + (entries_with_rip_ ? 0 : entries_without_rip_.count);
  const uint64_t kernel_new = newer_kernel_.count;
  const uint64_t lines_new = info2_is_vectoring_.count, lines_old = info2_is_exit_intr_.count;
  const bool newer = kernel_new || lines_new;
  const bool older = kernel_old || lines_old;
  if (!info_pair_exits_ || !(newer || older)) return InfoPairMeaning::Undecided;
  conflict = newer && older;
  // A kernel's version is a fact about every line; one exit's reason is a fact about that
  // line. When they disagree the kernel wins, and the disagreement is said (describe()); when
  // the kernel evidence itself disagrees, or only lines do, the larger count.
  bool vec;
  if (kernel_new != kernel_old && (!kernel_new || !kernel_old))
    vec = kernel_new > 0;
  else if (kernel_new || kernel_old)
    vec = kernel_new >= kernel_old;
  else
    vec = lines_new >= lines_old;
  return vec ? InfoPairMeaning::IdtVectoring : InfoPairMeaning::ExitIntrInfo;
}

void EraEvidence::note(const KvmEvent& t) {
  // kvm_nested_vmexit's "int_info" before 5.10 is not kvm_exit's 5.10+ "intr_info".
  if ((t.event == Tracepoint::Exit || t.event == Tracepoint::NestedVmexit) && !t.exit.old_nested_format) {
    era_intr_ |= t.exit.format == ExitFormat::IntrInfo;
    era_intr_from_exit_ |= t.exit.format == ExitFormat::IntrInfo && t.event == Tracepoint::Exit;
    era_pair_ |= t.exit.format == ExitFormat::InfoPair;
  }
  if (t.event == Tracepoint::Entry && t.injected) era_entry_intr_ = true;
  if ((t.event == Tracepoint::InjVirq || t.event == Tracepoint::InjException) && t.injected &&
      t.injected->reinjected_printed_era)
    era_virq_new_ = true;
}

void EraEvidence::describe(bool saw_vmx, TraceFacts& s) const {
  if (era_entry_intr_)
    s.era = "Linux 6.14+ (kvm_entry prints the injected event)";
  else if (era_intr_ && era_virq_new_)
    s.era = std::string("Linux 6.0+ (") + (era_intr_from_exit_ ? "kvm_exit" : "kvm_nested_vmexit") +
            " prints intr_info, kvm_inj_virq / kvm_inj_exception in the 6.0+ format)";
  else if (era_intr_)
    s.era = std::string("Linux 5.10+ (") + (era_intr_from_exit_ ? "kvm_exit" : "kvm_nested_vmexit") +
            " prints info1 info2 intr_info error_code)";
  else if (era_virq_new_)
    s.era = "Linux 6.0+ (kvm_inj_virq / kvm_inj_exception print [reinjected])";
  else if (era_pair_ && info_pair_ == InfoPairMeaning::IdtVectoring)
    s.era = "Linux 5.10+ (kvm_exit 'info A B' as trace-cmd's kvm plugin prints it; see the evidence below)";
  else if (era_pair_ && info_pair_ == InfoPairMeaning::ExitIntrInfo)
    s.era = "before Linux 5.10 (kvm_exit 'info A B' with info2 = VM-exit interruption info; see the evidence below)";
  else if (era_pair_ && !learned_)  // trace.dat / live: the event's fields themselves lack intr_info
    s.era = "before Linux 5.10 (kvm_exit has info1 / info2 fields but no intr_info)";
  else if (era_pair_)  // trace-cmd's kvm plugin prints "info A B" on every kernel: no era from it alone
    s.era =
        "unknown: kvm_exit 'info A B' is the kernel's format before 5.10 and trace-cmd's kvm plugin's on every "
        "kernel";
  else
    s.era = "unknown (no kvm_exit with info fields)";
  if (era_pair_ && saw_vmx && !learned_)
    s.assumptions.push_back(
        "kvm_exit without intr_info (before 5.10): info2 is the VM-exit interruption info, "
        "IDT-vectoring info is not in the trace; deliveries are inferred");
  if (era_pair_ && saw_vmx && learned_) {
    // What "info A B" was read as, and which lines decided it (or that none did).
    const char* kPlugin =
        "kvm_exit 'info A B' (the kernel's format before 5.10, trace-cmd's kvm plugin's on every kernel)";
    std::string a;
    if (info_pair_ == InfoPairMeaning::Undecided) {
      a = std::string(kPlugin) +
          ": nothing in the file tells which kernel printed it; info2 read as the VM-exit "
          "interruption info (before 5.10), IDT-vectoring info is not in the trace and deliveries are inferred";
    } else {
      const bool vec = info_pair_ == InfoPairMeaning::IdtVectoring;
      a = std::string(kPlugin) + ": info2 read as " +
          (vec ? "the IDT-vectoring info (Linux 5.10+), the VM-exit interruption info is not in the trace"
               : "the VM-exit interruption info (before 5.10), IDT-vectoring info is not in the trace and deliveries "
                 "are inferred") +
          "; decided by ";
      std::string by;
      auto cite = [&](const Evidence& e) {
        if (!e.count) return;
        by += (by.empty() ? "" : "; ") + e.what;
        if (e.count > 1) by += " and " + std::to_string(e.count - 1) + " more line" + (e.count > 2 ? "s" : "");
      };
      if (vec) {
        cite(newer_kernel_);
        cite(info2_is_vectoring_);
      } else {
        cite(older_kernel_);
        cite(info2_is_exit_intr_);
      }
      a += by;
    }
    s.assumptions.push_back(a);
    if (trimmed_entries_.count)
      s.assumptions.push_back(std::to_string(trimmed_entries_.count) + " kvm_entry line" +
                              (trimmed_entries_.count > 1 ? "s" : "") + " without the RIP beside others with it (" +
                              trimmed_entries_.what + "): taken as trimmed, not as a kernel before 5.9");
    if (info_pair_conflict_) {
      const bool vec = info_pair_ == InfoPairMeaning::IdtVectoring;
      const Evidence& against = vec ? (older_kernel_.count ? older_kernel_ : info2_is_exit_intr_)
                                    : (newer_kernel_.count ? newer_kernel_ : info2_is_vectoring_);
      s.assumptions.push_back("the file contradicts itself about kvm_exit's info2: " + against.what +
                              " says the other "
                              "meaning (" +
                              std::to_string(against.count) + " line" + (against.count > 1 ? "s" : "") +
                              "); every 'info A B' exit is marked inferred");
    }
  }
}

std::string EraEvidence::formats_era() const {
  const FormatSeen& f = formats_;
  if (!f.exit) return "unknown (no kvm_exit event format)";
  std::string era;
  if (f.entry_intr_info)
    era = "Linux 6.14+";
  else if (f.exit_intr_info && (f.inj_virq_reinjected || f.inj_exception_reinjected))
    era = "Linux 6.0+";
  else if (f.exit_intr_info)
    era = "Linux 5.10+";
  else if (f.exit_info2)
    era = "before Linux 5.10";
  else
    era = "unknown";
  std::string why;
  const auto add = [&](const char* x) { why += (why.empty() ? "" : "; ") + std::string(x); };
  add(f.exit_intr_info ? "kvm_exit has intr_info (5.10+: info2 = IDT-vectoring info)"
      : f.exit_info2   ? "kvm_exit has info1 / info2 without intr_info (before 5.10: info2 = VM-exit interruption info)"
                       : "kvm_exit has no info fields");
  if (f.entry)
    add(f.entry_intr_info        ? "kvm_entry has the injected event (6.14+)"
        : f.entry_immediate_exit ? "kvm_entry has immediate_exit (6.9+, or a stable kernel that took it)"
                                 : "kvm_entry has vcpu and rip only");
  if (f.inj_virq || f.inj_exception)
    add(f.inj_virq_reinjected || f.inj_exception_reinjected
            ? "kvm_inj_virq / kvm_inj_exception have reinjected (6.0+)"
            : "kvm_inj_virq / kvm_inj_exception without reinjected (before 6.0: reinjections are inferred)");
  return era + " (from the event formats: " + why + ")";
}

}  // namespace es::kvmtrace
