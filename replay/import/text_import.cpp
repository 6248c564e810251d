#include "replay/import/text_import.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "hv/arch/event_info.h"
#include "hv/arch/exit_reason.h"
#include "probes/recorder/recorder.h"
#include "replay/import/trace_text.h"

namespace es::import {

namespace {

using arch::EntryIntrInfo;
using arch::IdtVectoringInfo;

Error fail(std::string msg) { return Error{std::move(msg)}; }

std::string json_escape(std::string_view s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
      o += b;
    } else o += c;
  }
  return o;
}

struct Line {
  TraceLine t;
  uint64_t line_no = 0;
};

bool same_event(uint32_t a, uint32_t b) {
  const EntryIntrInfo x(a), y(b);
  return x.valid() && y.valid() && x.vector() == y.vector() && x.type() == y.type();
}

// Per-vCPU progress of the event being injected / reinjected (KVM's one-at-a-time injection).
struct VcpuState {
  enum class Phase : uint8_t { Idle, Decided, Entered, Exited };
  Phase phase = Phase::Idle;
  uint64_t chain = 0;      // origin of the event in flight
  uint32_t word = 0;       // it, VM-entry format
  uint32_t error = 0;
  uint64_t last_link = 0;  // last record of that chain on this vCPU
  size_t open_exit = SIZE_MAX;  // index of the exit not yet followed by an entry
};

class Builder {
 public:
  explicit Builder(ImportStats& stats) : stats_(stats) {}

  void add(const Line& l, uint64_t t0) {
    const TraceLine& t = l.t;
    cur_time_ = t.has_time ? t.time_ns - t0 : cur_time_;
    cur_line_ = l.line_no;
    cur_vcpu_ = resolve_vcpu(t);
    VcpuState& st = state(cur_vcpu_);
    switch (t.event) {
      case TraceEvent::Exit: on_exit(t, st, 1); break;
      case TraceEvent::NestedVmexit: on_nested_vmexit(t, st); break;
      case TraceEvent::NestedVmexitInject: on_nested_inject(t, st); break;
      case TraceEvent::NestedIntrVmexit: {
        es_record& d = push(ES_KIND_DECISION, 0);
        d.reason = ES_DECISION_REFLECT_TO_L1;
        d.level = 2;
        d.rip = t.rip;
        d.aux = static_cast<uint32_t>(arch::BasicExitReason::ExternalInterrupt);
        break;
      }
      case TraceEvent::Entry: on_entry(t, st); break;
      case TraceEvent::InjVirq:
      case TraceEvent::InjException: on_inject(t, st); break;
      default: on_context(t, st); break;
    }
  }

  std::vector<es_record>& records() { return out_; }

  // vCPU from the body, else the "CPU n/KVM" thread name, else what another line of the same
  // thread said, else a guess (recorded as an assumption).
  void learn(const TraceLine& t) {
    if (t.pid >= 0 && t.vcpu >= 0) pid_vcpu_.emplace_back(t.pid, t.vcpu);
  }
  void finish_learning() {
    std::sort(pid_vcpu_.begin(), pid_vcpu_.end());
    pid_vcpu_.erase(std::unique(pid_vcpu_.begin(), pid_vcpu_.end(),
                                [](auto& a, auto& b) { return a.first == b.first; }),
                    pid_vcpu_.end());
  }
  bool guessed_vcpu() const { return guessed_vcpu_; }

 private:
  uint16_t resolve_vcpu(const TraceLine& t) {
    if (t.vcpu >= 0) return last_vcpu_ = static_cast<uint16_t>(t.vcpu);
    if (t.task_vcpu >= 0) return last_vcpu_ = static_cast<uint16_t>(t.task_vcpu);
    if (t.pid >= 0 && t.event != TraceEvent::Other) {
      auto it = std::lower_bound(pid_vcpu_.begin(), pid_vcpu_.end(), std::pair<int32_t, int32_t>(t.pid, INT32_MIN));
      if (it != pid_vcpu_.end() && it->first == t.pid) return last_vcpu_ = static_cast<uint16_t>(it->second);
      // Unknown thread: one vCPU per thread, numbered in order of appearance.
      for (size_t i = 0; i < guessed_pids_.size(); ++i)
        if (guessed_pids_[i] == t.pid) return last_vcpu_ = static_cast<uint16_t>(i);
      guessed_pids_.push_back(t.pid);
      guessed_vcpu_ = true;
      return last_vcpu_ = static_cast<uint16_t>(guessed_pids_.size() - 1);
    }
    if (t.event != TraceEvent::Other && t.pid < 0) guessed_vcpu_ = true;  // no prefix: same vCPU as the line before
    return last_vcpu_;
  }

  VcpuState& state(uint16_t vcpu) {
    if (vcpus_.size() <= vcpu) vcpus_.resize(static_cast<size_t>(vcpu) + 1);
    return vcpus_[vcpu];
  }

  es_record& push(uint16_t kind, uint32_t flags) {
    es_record r{};
    r.version = ES_RECORD_VERSION;
    r.kind = kind;
    r.level = 1;
    r.hv_level = 0;
    r.vcpu = cur_vcpu_;
    r.id = out_.size() + 1;
    r.time_ns = cur_time_;
    r.flags = flags;
    out_.push_back(r);
    return out_.back();
  }

  // push() a record whose fields come from `parsed` (an exit line's decode), keeping the id,
  // vCPU and time push() stamped; `level` is the guest level it concerns, seen by L0.
  es_record& push_parsed(uint16_t kind, const es_record& parsed, uint8_t level) {
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
  uint64_t raise(uint32_t word, uint32_t error) {
    es_record& r = push(ES_KIND_RAISE, ES_FLAG_INFERRED);
    r.origin = r.id;
    r.intr_info = word;
    r.intr_error = error;
    return r.id;
  }

  // Fills an exit record's fields from kvm_exit / kvm_nested_vmexit(_inject) by era and vendor.
  void fill_exit(es_record& r, const TraceLine& t) {
    r.reason = t.reason;
    r.rip = t.rip;
    r.qualification = t.info1;
    if (t.svm) {
      // SVM: info1/info2 = EXITINFO1/2 (info2 = the faulting GPA of an NPF), intr_info =
      // EXITINTINFO, the event whose delivery was interrupted (same vector / type / EV / V layout
      // as VMX IDT-vectoring info; AMD APM Vol. 2 15.7.2 "Exit Int Info").
      r.flags |= ES_FLAG_SVM;
      r.aux64 = t.info2;
      if (t.reason == 0x400) r.guest_phys = t.info2;
      if (t.has_intr_info) {
        r.idt_vectoring_info = t.intr_info;
        r.idt_vectoring_error = t.error_code;
      }
      saw_svm_ = true;
      return;
    }
    saw_vmx_ = true;
    switch (t.exit_format) {
      case ExitFormat::IntrInfo:  // 5.10+: info2 = IDT-vectoring info, intr_info = exit interruption info
        r.idt_vectoring_info = static_cast<uint32_t>(t.info2);
        r.intr_info = t.intr_info;
        r.intr_error = t.error_code;
        break;
      case ExitFormat::InfoPair:  // before 5.10: info2 = VM-exit interruption info
        r.intr_info = static_cast<uint32_t>(t.info2);
        break;
      case ExitFormat::Info1Info2:  // labels of the 5.10+ format, intr_info cut off: assume 5.10+ meaning
        r.idt_vectoring_info = static_cast<uint32_t>(t.info2);
        r.flags |= ES_FLAG_INFERRED;
        assumed_info2_ = true;
        break;
      default: break;
    }
  }

  void on_exit(const TraceLine& t, VcpuState& st, uint8_t level) {
    es_record probe{};
    fill_exit(probe, t);
    const IdtVectoringInfo vec(probe.idt_vectoring_info);
    const uint32_t vec_word = arch::to_reinjection(vec).raw();
    const bool continues = (st.phase == VcpuState::Phase::Entered || st.phase == VcpuState::Phase::Decided ||
                            st.phase == VcpuState::Phase::Exited) &&
                           vec.valid() && same_event(vec_word, st.word);
    if (!continues && (st.phase == VcpuState::Phase::Entered || st.phase == VcpuState::Phase::Decided)) {
      // The next exit no longer reports the event in IDT-vectoring info: its delivery completed
      // (SDM Vol. 3C 28.2.4 "Information for VM Exits That Occur During Event Delivery"). Before
      // 5.10 the exit does not print it at all, so this is an inference either way.
      es_record& d = push(ES_KIND_DELIVERY, ES_FLAG_INFERRED);
      d.origin = st.chain;
      d.cause = st.last_link;
      d.intr_info = st.word;
      d.intr_error = st.error;
      d.level = level;
      st = VcpuState{.open_exit = st.open_exit};
    } else if (!continues) {
      st = VcpuState{.open_exit = st.open_exit};
    }
    uint64_t root = 0;
    if (vec.valid() && !continues) root = raise(vec_word, probe.idt_vectoring_error);
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
    st.open_exit = out_.size() - 1;
  }

  // kvm_nested_vmexit follows kvm_exit for the same L2 exit: mark that exit as L2's; without
  // a kvm_exit line, the nested line is the exit.
  void on_nested_vmexit(const TraceLine& t, VcpuState& st) {
    saw_nested_ = true;
    if (st.open_exit < out_.size()) {
      es_record& e = out_[st.open_exit];
      if (e.kind == ES_KIND_VM_EXIT && e.reason == t.reason && (!t.has_rip || e.rip == t.rip)) {
        e.level = 2;
        return;
      }
    }
    on_exit(t, st, 2);
  }

  // kvm_nested_vmexit_inject: L0 reflects the L2 exit to L1 (vmcs12 exit fields).
  void on_nested_inject(const TraceLine& t, VcpuState& st) {
    saw_nested_ = true;
    const uint64_t l2_exit = st.open_exit < out_.size() ? out_[st.open_exit].id : 0;
    const uint64_t origin = st.open_exit < out_.size() ? out_[st.open_exit].origin : 0;
    es_record& d = push(ES_KIND_DECISION, 0);
    d.reason = ES_DECISION_REFLECT_TO_L1;
    d.level = 2;
    d.cause = l2_exit;
    d.origin = origin;
    d.aux = t.reason;
    const uint64_t did = d.id;
    es_record n{};
    fill_exit(n, t);
    es_record& e = push_parsed(ES_KIND_NESTED_EXIT, n, 2);
    e.cause = did;
    e.origin = origin;
    // The event L2 was being delivered is now L1's to reinject (vmcs12's IDT-vectoring field):
    // the next L0 entry goes to L1, not carrying it.
    st.phase = VcpuState::Phase::Idle;
    st.open_exit = SIZE_MAX;
  }

  void on_inject(const TraceLine& t, VcpuState& st) {
    const bool matches = st.phase == VcpuState::Phase::Exited && same_event(t.event_word, st.word);
    uint64_t origin = 0, cause = 0;
    uint32_t reason = ES_DECISION_INJECT_NEW, flags = 0;
    if (matches) {
      origin = st.chain;
      cause = st.last_link;
      reason = ES_DECISION_INJECT_REINJECTED;
      if (!t.reinjected) {
        flags = ES_FLAG_INFERRED;  // the kernel does not say; IDT-vectoring does
        kernel_without_reinjected_ = true;
      }
    } else {
      origin = cause = raise(t.event_word, t.event_error);
      if (t.reinjected) reason = ES_DECISION_INJECT_REINJECTED;  // the exit that requeued it is not in the trace
    }
    es_record& d = push(ES_KIND_DECISION, flags);
    d.reason = reason;
    d.intr_info = t.event_word;
    d.intr_error = t.event_error;
    d.origin = origin;
    d.cause = cause;
    st.chain = origin;
    st.word = t.event_word;
    st.error = t.event_error;
    st.last_link = d.id;
    st.phase = VcpuState::Phase::Decided;
  }

  void on_entry(const TraceLine& t, VcpuState& st) {
    es_record& e = push(ES_KIND_VM_ENTRY, t.immediate_exit ? ES_FLAG_IMMEDIATE_EXIT : 0);
    e.rip = t.rip;
    if (t.has_intr_info) {
      e.intr_info = t.event_word;
      e.intr_error = t.event_error;
    }
    const bool carries = st.phase == VcpuState::Phase::Decided || st.phase == VcpuState::Phase::Exited;
    if (carries && (!t.has_intr_info || same_event(t.event_word, st.word))) {
      // KVM injects what it decided (or requeued from IDT-vectoring) at this entry; before 6.14
      // kvm_entry does not print it.
      if (!t.has_intr_info) {
        e.intr_info = st.word;
        e.intr_error = st.error;
        e.flags |= ES_FLAG_INFERRED;
      }
      e.origin = st.chain;
      e.cause = st.last_link;
      st.last_link = e.id;
      st.phase = VcpuState::Phase::Entered;
    } else if (t.has_intr_info && EntryIntrInfo(t.event_word).valid()) {
      const uint64_t entry_id = e.id;
      (void)entry_id;
      // An injection without an inj_* line: root it here (the RAISE gets the next id, so link
      // the entry to it by moving the entry after it).
      es_record saved = out_.back();
      out_.pop_back();
      const uint64_t root = raise(t.event_word, t.event_error);
      saved.id = out_.size() + 1;
      saved.origin = saved.cause = root;
      out_.push_back(saved);
      st.chain = root;
      st.word = t.event_word;
      st.error = t.event_error;
      st.last_link = saved.id;
      st.phase = VcpuState::Phase::Entered;
    } else if (st.phase != VcpuState::Phase::Exited) {
      st.phase = VcpuState::Phase::Idle;
    }
    st.open_exit = SIZE_MAX;
  }

  void on_context(const TraceLine& t, VcpuState& st) {
    es_record& c = push(ES_KIND_CONTEXT, 0);
    c.aux = static_cast<uint32_t>(cur_line_);
    c.rip = t.rip;
    switch (t.event) {
      case TraceEvent::PageFault: {
        c.reason = kContextPageFault;
        c.guest_phys = t.a;
        c.intr_error = static_cast<uint32_t>(t.b);
        // The GPA of the EPT violation / NPF this fault handles (kvm_exit does not print it on VMX).
        if (st.open_exit < out_.size()) {
          es_record& e = out_[st.open_exit];
          const bool ept = (e.flags & ES_FLAG_SVM)
                               ? e.reason == 0x400
                               : (arch::ExitReason(e.reason).is(arch::BasicExitReason::EptViolation) ||
                                  arch::ExitReason(e.reason).is(arch::BasicExitReason::EptMisconfig));
          if (ept && e.guest_phys == 0) e.guest_phys = t.a;
          c.origin = 0;
          c.cause = e.id;
        }
        break;
      }
      case TraceEvent::EmulateInsn:
        c.reason = kContextEmulateInsn;
        std::memcpy(c.bytes, t.bytes, sizeof c.bytes);
        c.instr_len = t.byte_count;
        break;
      case TraceEvent::Pio:
        c.reason = kContextPio;
        c.qualification = t.a;
        c.aux64 = t.b;
        c.intr_error = t.flag ? 1 : 0;
        c.instr_len = t.c;
        break;
      case TraceEvent::Msr:
        c.reason = kContextMsr;
        c.qualification = t.a;
        c.aux64 = t.b;
        c.intr_error = t.flag ? 1 : 0;
        break;
      case TraceEvent::ApicAcceptIrq:
      case TraceEvent::Eoi:
        c.reason = t.event == TraceEvent::Eoi ? kContextEoi : kContextApicAcceptIrq;
        c.qualification = t.a;
        c.intr_info = EntryIntrInfo::make(static_cast<uint8_t>(t.b), arch::InterruptionType::ExternalInterrupt).raw();
        break;
      default: c.reason = kContextOtherEvent; break;
    }
  }

 public:
  bool saw_vmx_ = false, saw_svm_ = false, saw_nested_ = false, assumed_info2_ = false;
  bool kernel_without_reinjected_ = false;

 private:
  ImportStats& stats_;
  std::vector<es_record> out_;
  std::vector<VcpuState> vcpus_;
  std::vector<std::pair<int32_t, int32_t>> pid_vcpu_;
  std::vector<int32_t> guessed_pids_;
  bool guessed_vcpu_ = false;
  uint16_t cur_vcpu_ = 0, last_vcpu_ = 0;
  uint64_t cur_time_ = 0, cur_line_ = 0;
};

bool looks_binary(std::string_view text) {
  const size_t n = std::min<size_t>(text.size(), 65536);
  size_t ctl = 0;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0) return true;
    if (c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f') ++ctl;
  }
  return ctl * 100 > n;  // more than 1 % control bytes
}

const char* format_name(FormatChoice f) {
  switch (f) {
    case FormatChoice::Ftrace: return "ftrace";
    case FormatChoice::TraceCmd: return "trace-cmd";
    case FormatChoice::Perf: return "perf";
    default: return "auto";
  }
}

}  // namespace

bool parse_format_choice(std::string_view s, FormatChoice& out) {
  if (s == "auto") out = FormatChoice::Auto;
  else if (s == "ftrace") out = FormatChoice::Ftrace;
  else if (s == "trace-cmd") out = FormatChoice::TraceCmd;
  else if (s == "perf") out = FormatChoice::Perf;
  else return false;
  return true;
}

Result<ParsedTrace> parse_trace_text(std::string_view text, const ImportOptions& options, std::string_view name) {
  const std::string file(name);
  if (text.empty()) return fail("trace file '" + file + "' is empty; give the file that holds the trace text.");
  if (text.size() >= 10 && text.substr(0, 3) == "\x17\x08\x44" && text.substr(3, 7) == "tracing")
    return fail("'" + file + "' is a binary trace-cmd trace.dat file, which this import does not read yet; convert it "
                "with 'trace-cmd report -i " + file + " > trace.txt' and import trace.txt.");
  if (looks_binary(text))
    return fail("'" + file + "' is binary data, not trace text; give the output of 'cat trace', 'trace-cmd report' "
                "or 'perf script'.");

  const bool perf_only = options.format == FormatChoice::Perf;
  const bool prefix_required = options.format != FormatChoice::Auto;
  ParsedTrace out;
  ImportStats& s = out.stats;
  std::vector<Line> lines;
  lines.reserve(text.size() / 96 + 16);

  // Logical lines: a line wrapped by a mailer continues with field words only; a prefix whose
  // event went to the next line is joined to it.
  struct Pending {
    bool active = false;
    LineClass cls = LineClass::Blank;
    uint64_t line_no = 0;
    std::string_view view;
    std::string joined;
    TraceLine t;
    bool last_physical = false;  // it is (or ends with) the file's last line
  } p;
  bool header_trace_cmd = false;
  auto note_unparsed = [&](uint64_t n) {
    ++s.unparsed;
    if (s.unparsed_lines.size() < kMaxListedLines) s.unparsed_lines.push_back(n);
  };
  auto finalize = [&](Pending& q) {
    if (!q.active) return;
    switch (q.cls) {
      case LineClass::Event:
        if (q.t.event == TraceEvent::Other) ++s.other_events;
        else ++s.kvm_events;
        lines.push_back(Line{q.t, q.line_no});
        break;
      case LineClass::Blank:
      case LineClass::Comment: ++s.comment_lines; break;
      default: note_unparsed(q.line_no); break;
    }
    q.active = false;
  };
  const bool ends_with_newline = text.back() == '\n';
  size_t pos = 0;
  uint64_t line_no = 0;
  TraceLine t;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    const bool last = nl == std::string_view::npos || nl + 1 >= text.size();
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view raw = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    bool quoted = false;
    const std::string_view line = strip_quotes(raw, &quoted);
    if (quoted) ++s.quoted_lines;
    const LineClass cls = parse_trace_line(line, t, perf_only, prefix_required);
    if (cls == LineClass::Comment && (line.find("cpus=") != std::string_view::npos ||
                                      line.find("version = ") != std::string_view::npos))
      header_trace_cmd = true;
    if (p.active && cls == LineClass::Continuation &&
        (p.cls == LineClass::Event || p.cls == LineClass::BadEvent) && p.t.event != TraceEvent::Other &&
        p.t.event != TraceEvent::None) {
      std::string joined = std::string(p.view) + " " + std::string(line);
      TraceLine jt;
      const LineClass jc = parse_trace_line(joined, jt, perf_only, prefix_required);
      if (jc == LineClass::Event || (jc == LineClass::BadEvent && p.cls == LineClass::BadEvent)) {
        p.joined = std::move(joined);
        p.view = p.joined;
        p.cls = jc;
        p.t = jt;
        p.last_physical = last;
        ++s.joined_lines;
        continue;
      }
    }
    if (p.active && p.cls == LineClass::DanglingPrefix && cls != LineClass::Blank) {
      std::string joined = std::string(p.view) + " " + std::string(line);
      TraceLine jt;
      const LineClass jc = parse_trace_line(joined, jt, perf_only, prefix_required);
      if (jc == LineClass::Event || jc == LineClass::BadEvent) {
        p.joined = std::move(joined);
        p.view = p.joined;
        p.cls = jc;
        p.t = jt;
        p.last_physical = last;
        ++s.joined_lines;
        continue;
      }
    }
    finalize(p);
    p.active = true;
    p.cls = cls;
    p.line_no = line_no;
    p.view = line;
    p.t = t;
    p.last_physical = last;
  }
  s.lines = line_no;
  // A file cut in the middle of a KVM line (no final newline, the line does not parse).
  if (p.active && p.last_physical && !ends_with_newline && p.cls == LineClass::BadEvent)
    return fail("trace file '" + file + "' ends in the middle of line " + std::to_string(p.line_no) +
                " (the trace is truncated); copy the whole trace again or delete that last line.");
  finalize(p);

  if (s.kvm_events == 0) {
    if (options.format != FormatChoice::Auto)
      return fail("'" + file + "' has no KVM trace events in the " + format_name(options.format) +
                  " format; check the file or try --format auto.");
    return fail("'" + file + "' has no KVM trace events (kvm_exit, kvm_entry, kvm_inj_virq, ...) in ftrace, "
                "trace-cmd report or perf script text; check that the kvm tracepoints were enabled when tracing.");
  }

  // Format: forced, or what the prefixes say.
  uint64_t perf = 0, full = 0, flags = 0, bare = 0;
  for (const Line& l : lines) {
    if (l.t.prefix == PrefixStyle::Perf) ++perf;
    else if (l.t.prefix == PrefixStyle::Ftrace) ++full, flags += l.t.has_cpu_flags ? 1 : 0;
    else ++bare;
  }
  if (options.format != FormatChoice::Auto) s.format = format_name(options.format);
  else if (s.quoted_lines > 0 || bare * 2 > lines.size()) s.format = "mail";
  else if (perf * 2 > lines.size()) s.format = "perf";
  else if (header_trace_cmd || flags * 2 <= full) s.format = "trace-cmd";
  else s.format = "ftrace";

  // Time: relative to the earliest timestamp; lines without one take their predecessor's. Sort
  // by time (stable: lines of one timestamp keep file order) when host CPUs were interleaved.
  bool any_time = false;
  uint64_t t0 = UINT64_MAX, prev = 0;
  for (Line& l : lines) {
    if (l.t.has_time) {
      any_time = true;
      t0 = std::min(t0, l.t.time_ns);
      if (l.t.time_ns < prev) ++s.out_of_order;
      prev = l.t.time_ns;
    }
  }
  if (!any_time) {
    for (Line& l : lines) {
      l.t.time_ns = l.line_no * 1000;
      l.t.has_time = true;
    }
    t0 = 0;
    s.assumptions.push_back("the lines carry no timestamps: time is 1 us per line number");
  } else {
    uint64_t last = t0;
    for (Line& l : lines) {
      if (!l.t.has_time) l.t.time_ns = last, l.t.has_time = true;
      last = l.t.time_ns;
    }
  }
  if (s.out_of_order)
    std::stable_sort(lines.begin(), lines.end(), [](const Line& a, const Line& b) { return a.t.time_ns < b.t.time_ns; });

  Builder b(s);
  for (const Line& l : lines) b.learn(l.t);
  b.finish_learning();
  out.records.reserve(lines.size() + lines.size() / 4);
  for (const Line& l : lines) b.add(l, t0);
  out.records = std::move(b.records());
  s.records = out.records.size();

  // Era and vendor: what the print formats tell.
  bool intr = false, pair = false, entry_intr = false, virq_new = false;
  for (const Line& l : lines) {
    if (l.t.event == TraceEvent::Exit) {
      intr |= l.t.exit_format == ExitFormat::IntrInfo;
      pair |= l.t.exit_format == ExitFormat::InfoPair;
    }
    if (l.t.event == TraceEvent::Entry && l.t.has_intr_info) entry_intr = true;
    if (l.t.event == TraceEvent::InjVirq && l.t.reinjected_printed_era) virq_new = true;
  }
  s.vendor = b.saw_vmx_ && b.saw_svm_ ? "mixed" : b.saw_svm_ ? "svm" : b.saw_vmx_ ? "vmx" : "unknown";
  if (entry_intr) s.era = "Linux 6.14+ (kvm_entry prints the injected event)";
  else if (intr && virq_new) s.era = "Linux 5.19+ (kvm_exit prints intr_info, kvm_inj_virq 'IRQ 0x..')";
  else if (intr) s.era = "Linux 5.10+ (kvm_exit prints info1 info2 intr_info error_code)";
  else if (pair) s.era = "before Linux 5.10 (kvm_exit prints 'info A B')";
  else s.era = "unknown (no kvm_exit with info fields)";
  if (pair && !b.saw_svm_)
    s.assumptions.push_back("kvm_exit 'info A B' (before 5.10): info2 is the VM-exit interruption info, "
                            "IDT-vectoring info is not in the trace; deliveries are inferred");
  if (b.assumed_info2_)
    s.assumptions.push_back("kvm_exit lines with info1/info2 but without intr_info: info2 taken as IDT-vectoring "
                            "info (Linux 5.10+ VMX meaning); those exits are marked inferred");
  if (b.kernel_without_reinjected_)
    s.assumptions.push_back("the kernel does not print [reinjected]: an injection of the event an exit reported in "
                            "IDT-vectoring info is taken as its reinjection (marked inferred)");
  if (b.guessed_vcpu())
    s.assumptions.push_back("some lines name no vCPU: taken from the thread (one vCPU per thread) or the line before");
  if (s.out_of_order)
    s.assumptions.push_back(std::to_string(s.out_of_order) + " lines were out of time order and were sorted");

  std::string j = "{\"import\": {\"file\": \"" + json_escape(name) + "\", \"format\": \"" + s.format +
                  "\", \"lines\": " + std::to_string(s.lines) + ", \"kvm_events\": " + std::to_string(s.kvm_events) +
                  ", \"other_events\": " + std::to_string(s.other_events) +
                  ", \"comment_lines\": " + std::to_string(s.comment_lines) +
                  ", \"joined_lines\": " + std::to_string(s.joined_lines) +
                  ", \"quoted_lines\": " + std::to_string(s.quoted_lines) +
                  ", \"unparsed\": " + std::to_string(s.unparsed) + ", \"unparsed_lines\": [";
  for (size_t i = 0; i < s.unparsed_lines.size(); ++i) j += (i ? ", " : "") + std::to_string(s.unparsed_lines[i]);
  j += "], \"vendor\": \"" + s.vendor + "\", \"era\": \"" + json_escape(s.era) + "\", \"assumptions\": [";
  for (size_t i = 0; i < s.assumptions.size(); ++i) j += std::string(i ? ", " : "") + "\"" + json_escape(s.assumptions[i]) + "\"";
  j += "]}}";
  out.config_json = std::move(j);
  return out;
}

namespace {

// Read-only mapping of a whole file.
class MappedFile {
 public:
  static Result<MappedFile> open(const std::string& path) {
    MappedFile m;
    m.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (m.fd_ < 0)
      return fail("cannot read trace file '" + path + "': " + std::strerror(errno) + "; check the path.");
    struct stat st {};
    if (::fstat(m.fd_, &st) != 0 || !S_ISREG(st.st_mode))
      return fail("trace file '" + path + "' is not a regular file; give a trace text file.");
    m.size_ = static_cast<size_t>(st.st_size);
    if (m.size_ > 0) {
      void* p = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, m.fd_, 0);
      if (p == MAP_FAILED) return fail("cannot map trace file '" + path + "': " + std::strerror(errno) + ".");
      m.data_ = static_cast<const char*>(p);
    }
    return m;
  }
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept { swap(o); }
  MappedFile& operator=(MappedFile&& o) noexcept {
    swap(o);
    return *this;
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  std::string_view text() const { return {data_ ? data_ : "", size_}; }

 private:
  void swap(MappedFile& o) {
    std::swap(fd_, o.fd_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
  }
  int fd_ = -1;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

void remove_db_files(const std::string& p) {
  std::error_code ec;
  for (const char* s : {"", "-wal", "-shm", "-journal"}) std::filesystem::remove(p + s, ec);
}

}  // namespace

Result<ImportStats> import_text_file(const std::string& file, const std::string& db, const ImportOptions& options) {
  std::error_code ec;
  if (std::filesystem::exists(db, ec) && !options.force)
    return fail("recording '" + db + "' already exists; pass --force to overwrite it or choose another name.");
  auto mapped = MappedFile::open(file);
  if (!mapped) return Error{mapped.error()};
  auto parsed = parse_trace_text(mapped->text(), options, file);
  if (!parsed) return Error{parsed.error()};

  recorder::SessionInfo info;
  info.source = recorder::Source::Import;
  info.scenario = std::filesystem::path(file).filename().string();
  info.guest_path = file;
  if (auto h = recorder::hash_file(file)) info.guest_hash = *h;
  info.host = "imported trace (" + parsed->stats.format + ")";
  info.kernel = parsed->stats.era;
  info.command_line = options.command_line;
  info.config_json = parsed->config_json;

  const std::string partial = db + ".partial";
  remove_db_files(partial);
  {
    recorder::RecorderOptions ro;
    auto rec = recorder::Recorder::open(partial, info, true, ro);
    if (!rec) return Error{rec.error()};
    for (const es_record& r : parsed->records) (*rec)->on_record(r);
    const std::string detail = "end of the imported trace '" + file + "' (" + std::to_string(parsed->stats.lines) +
                               " lines)";
    if (auto fin = (*rec)->finish({ES_END_STOPPED, detail, 0}); !fin) {
      rec->reset();
      remove_db_files(partial);
      return Error{fin.error()};
    }
  }
  if (options.force) remove_db_files(db);
  std::filesystem::rename(partial, db, ec);
  if (ec) {
    remove_db_files(partial);
    return fail("cannot rename '" + partial + "' to '" + db + "': " + ec.message() + "; check the directory.");
  }
  for (const char* s : {"-wal", "-shm", "-journal"}) std::filesystem::remove(partial + s, ec);
  return parsed->stats;
}

std::string describe_import_config(std::string_view j) {
  if (j.find("\"import\"") == std::string_view::npos) return {};
  auto str = [&](std::string_view key) -> std::string {
    const std::string k = "\"" + std::string(key) + "\": \"";
    const size_t b = j.find(k);
    if (b == std::string_view::npos) return {};
    const size_t s = b + k.size();
    size_t e = s;
    while (e < j.size() && j[e] != '"') e += j[e] == '\\' ? 2 : 1;
    return std::string(j.substr(s, std::min(e, j.size()) - s));
  };
  auto raw = [&](std::string_view key) -> std::string {
    const std::string k = "\"" + std::string(key) + "\": ";
    const size_t b = j.find(k);
    if (b == std::string_view::npos) return "0";
    const size_t s = b + k.size();
    size_t e = s;
    if (e < j.size() && j[e] == '[') {
      e = j.find(']', s);
      return std::string(j.substr(s + 1, (e == std::string_view::npos ? j.size() : e) - s - 1));
    }
    while (e < j.size() && j[e] >= '0' && j[e] <= '9') ++e;
    return std::string(j.substr(s, e - s));
  };
  std::string o = str("file") + " (" + str("format") + ", " + str("vendor") + "), " + raw("lines") + " lines: " +
                  raw("kvm_events") + " KVM events, " + raw("other_events") + " other, " + raw("unparsed") +
                  " unparsed";
  const std::string listed = raw("unparsed_lines");
  if (!listed.empty()) o += " (lines " + listed + (listed.size() > 60 ? "" : "") + ")";
  return o;
}

}  // namespace es::import
