#include "replay/summary.h"

#include "hv/arch/event_info.h"
#include "replay/format.h"
#include "replay/names.h"

namespace es::replay {

std::string chain_event_text(uint64_t chain_id, uint32_t event_word, bool root_found) {
  // A chain's event word is the one its root raised or injected, in VM-entry interruption
  // info form (replay/chains.h).
  std::string s = arch::describe(arch::EntryIntrInfo(event_word));
  if (!root_found) s += " (root #" + std::to_string(chain_id) + " not recorded)";
  return s;
}

std::string chain_event_text(const Chain& c) { return chain_event_text(c.id, c.event_word, c.root_found); }

bool first_injection_called_reinjection(const es_record& decision, bool only_raises_before) {
  return decision.kind == ES_KIND_DECISION && decision.reason == ES_DECISION_INJECT_REINJECTED &&
         arch::EntryIntrInfo(decision.intr_info).type() == arch::InterruptionType::ExternalInterrupt &&
         only_raises_before;
}

std::string_view first_injection_called_reinjection_note() {
  return "its first injection, though KVM calls it [reinjected]: no delivery of it was tried before. KVM says so for "
         "an interrupt user space queued with KVM_INTERRUPT (no in-kernel irqchip: kvm_queue_interrupt marks it "
         "injected before any entry), or the exit that interrupted an earlier delivery is not in the trace";
}

bool reinjected_without_exit(const es_record& decision, const es_record* cause) {
  return decision.kind == ES_KIND_DECISION && decision.reason == ES_DECISION_INJECT_REINJECTED && cause &&
         cause->kind == ES_KIND_DECISION && cause->origin == decision.origin &&
         (cause->reason == ES_DECISION_INJECT_NEW || cause->reason == ES_DECISION_INJECT_REINJECTED);
}

std::string_view reinjected_without_exit_note() {
  return "injected again, which KVM calls [reinjected], with no VM entry or exit recorded since its last injection: "
         "KVM still held it as injected, so no delivery of it had completed (an entry cancelled before it ran, by a "
         "late request, signal or reschedule; an exit during its delivery that the trace lacks; or a state restore)";
}

namespace {

// The end reason's name, or its number when this build does not know it.
std::string end_reason_text(uint32_t reason, std::string_view unknown_prefix) {
  const std::string_view name = end_reason_name(reason);
  return name.empty() ? std::string(unknown_prefix) + std::to_string(reason) : std::string(name);
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

std::vector<SessionFact> info_facts(const SessionSummary& s, std::string_view recording) {
  std::vector<SessionFact> f;
  f.push_back({"recording", std::string(recording)});
  f.push_back({"source", s.source});
  f.push_back({"scenario", or_dash(s.scenario)});
  f.push_back({"guest", or_dash(s.guest_path) + (s.guest_hash.empty() ? "" : "  ") + s.guest_hash});
  f.push_back({"policy", or_dash(s.policy)});
  f.push_back({"tool", "exitscope " + s.tool_version});
  f.push_back({"host", s.host});
  f.push_back({"command", or_dash(s.command_line)});
  f.push_back({"started", s.started_at});
  f.push_back({"status", s.complete ? "complete (ended " + s.ended_at + ")"
                                    : "INCOMPLETE: the recorder never finished (crash or kill); events up to the "
                                      "last written batch are kept"});
  f.push_back({"run end", s.end_reason
                              ? end_reason_text(*s.end_reason, "") + (s.end_detail.empty() ? "" : ": " + s.end_detail)
                              : "unknown"});
  f.push_back({"events", std::to_string(s.event_count) + "  (time " + format_time(s.first_time_ns) + " .. " +
                             format_time(s.last_time_ns) + " s)"});
  f.push_back({"dropped", std::to_string(s.records_dropped) + " by the recorder, " + std::to_string(s.source_dropped) +
                              " by the source"});
  // The same definition as record's summary: "VM exits" are the VM_EXIT records, exits to L0;
  // those L0 reflected to L1 are NESTED_EXIT records, said beside them (issue #20 item 9).
  uint64_t exits = 0, nested = 0;
  for (auto [kind, n] : s.counts_by_kind) {
    if (kind == ES_KIND_VM_EXIT) exits = n;
    if (kind == ES_KIND_NESTED_EXIT) nested = n;
  }
  f.push_back({"VM exits",
               std::to_string(exits) + (nested ? " (" + std::to_string(nested) + " reflected to L1)" : std::string())});
  std::string vcpus;
  for (uint16_t v : s.vcpus) vcpus += (vcpus.empty() ? "" : ", ") + std::to_string(v);
  f.push_back({"vcpus", or_dash(vcpus)});
  return f;
}

std::vector<SessionFact> report_facts(const SessionSummary& s, std::string_view recording) {
  std::vector<SessionFact> f;
  f.push_back({"recording", std::string(recording)});
  f.push_back({"source", s.source + (s.tool_version.empty() ? "" : " (exitscope " + s.tool_version + ")")});
  if (!s.scenario.empty()) f.push_back({"scenario", s.scenario});
  // The host kernel matters for KVM and imported traces; the built-in model does not use it.
  if (s.source != "hv" && !s.kernel.empty()) f.push_back({"kernel", s.kernel});
  if (!s.guest_path.empty() || !s.guest_hash.empty()) {
    std::string g = s.guest_path;
    if (!s.guest_hash.empty()) g += (g.empty() ? "" : " ") + s.guest_hash;
    f.push_back({"guest", g});
  }
  if (!s.policy.empty()) f.push_back({"policy", s.policy});
  f.push_back({"events", std::to_string(s.event_count) + " recorded, " + std::to_string(s.records_dropped) +
                             " dropped by the recorder, " + std::to_string(s.source_dropped) +
                             " dropped by the source"});
  std::string state;
  if (s.complete) {
    state = "complete";
    if (s.end_reason) state += ", ended by " + end_reason_text(*s.end_reason, "reason ");
    if (!s.end_detail.empty()) state += " (" + s.end_detail + ")";
  } else {
    state = "INCOMPLETE (the recorder did not finish; the end of the run may be missing)";
  }
  f.push_back({"session", state});
  if (s.event_count)
    f.push_back({"time", format_time(s.first_time_ns) + " s .. " + format_time(s.last_time_ns) + " s"});
  return f;
}

}  // namespace

std::vector<SessionFact> session_facts(const SessionSummary& s, std::string_view recording, SessionFactsFor who) {
  return who == SessionFactsFor::Info ? info_facts(s, recording) : report_facts(s, recording);
}

}  // namespace es::replay
