#include <cstdio>
#include <map>
#include <optional>

#include "replay/chains.h"
#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/cli/startup.h"
#include "replay/format.h"
#include "replay/import/text_import.h"
#include "replay/names.h"
#include "replay/recording.h"
#include "replay/summary.h"
#include "schema/kind_reason.h"

#ifdef ES_HAVE_KVM
#include "probes/kvm/kvm_record.h"
#endif

namespace es::cli {

namespace {
constexpr std::string_view kName = "info";
constexpr OptionSpec kOptions[] = {
    {"no-console", "", "do not print the guest console output"},
};
}  // namespace

int cmd_info(int argc, char** argv) {
  const CommandSpec kSpec{kName, "DB",
                          "Summarize the recording DB: where it came from (source, scenario, guest image and\n"
                          "hash, policy, host), whether it is complete, why the run ended, event counts by\n"
                          "kind, VM exits by reason, decisions by reason, chain outcomes and console output.",
                          kOptions};
  auto args = start_command(kSpec, argc, argv);
  if (!args) return args.exit_code;
  auto rec = open_recording(kName, args->positional[0]);
  if (!rec) return 2;
  auto s = rec->session();
  if (!s) {
    std::fprintf(stderr, "exitscope info: %s\n", s.error().c_str());
    return 2;
  }
  // Every string below comes from the file, which may come from anyone: printed through
  // terminal_safe so it cannot carry escape sequences to the terminal (RELIABILITY.md).
  auto safe = [](const std::string& text) { return replay::terminal_safe(text); };
  // The same for a text of several lines (the import summary): each line escaped, the breaks kept.
  auto safe_lines = [](const std::string& text) {
    std::string out;
    size_t start = 0;
    for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
      (out += replay::terminal_safe(std::string_view(text).substr(start, nl - start))) += '\n';
    return out + replay::terminal_safe(std::string_view(text).substr(start));
  };
  // The session's facts (replay::session_facts), with what only this command reads from the
  // file beside them: the migration history and the source's configuration after the start
  // time, the guest's exit code after the run end, the vCPU map after the vCPUs.
  for (const replay::SessionFact& f : replay::session_facts(*s, rec->path(), replay::SessionFactsFor::Info)) {
    std::printf("%-12s%s\n", (f.label + ":").c_str(), safe(f.value).c_str());
    if (f.label == "started") {
      // Migration steps this file went through (schema v2's schema_history; none if created current).
      if (auto h = rec->db().prepare("SELECT version, from_version, migrated_at, tool_version, source_file "
                                     "FROM schema_history ORDER BY version")) {
        while (h->step() == SQLITE_ROW) {
          const std::string from = h->col_text(4);
          std::printf("schema:     v%lld from v%lld on %s by exitscope %s%s%s\n", static_cast<long long>(h->col_i64(0)),
                      static_cast<long long>(h->col_i64(1)), safe(h->col_text(2)).c_str(), safe(h->col_text(3)).c_str(),
                      from.empty() ? " (in place)" : ", copied from ", safe(from).c_str());
        }
      }
      if (const std::string imp = import::describe_import_config(s->config_json); !imp.empty())
        std::printf("import:     %s\n", safe_lines(imp).c_str());
#ifdef ES_HAVE_KVM
      for (const std::string& line : kvm::describe_kvm_config(s->config_json))
        std::printf("kvm:        %s\n", safe(line).c_str());
#endif
    } else if (f.label == "run end" && s->end_reason && *s->end_reason == ES_END_GUEST_EXIT) {
      // The guest's exit code travels in the RUN_END record of a guest exit (aux, record.h).
      std::optional<uint32_t> code;
      auto q = replay::query_events(rec->db(), schema::kind_reason_key_sql("e") + " = ?",
                                    {schema::kind_reason_key(ES_KIND_RUN_END, ES_END_GUEST_EXIT)},
                                    [&](const replay::Event& e) {
                                      code = e.rec.aux;
                                      return true;
                                    });
      if (!q) {
        std::fprintf(stderr, "exitscope info: %s\n", q.error().c_str());
        return 2;
      }
      if (code) std::printf("exit code:  %u (the guest's, port 0xF4)\n", *code);
    } else if (f.label == "vcpus") {
      // Events of several VMs (issue #16): which VM and vCPU id each recorded vCPU is.
      for (const std::string& line : import::describe_vcpu_map(s->config_json))
        std::printf("            %s\n", safe(line).c_str());
    }
  }

  std::printf("\nevents by kind:\n");
  for (auto [kind, n] : s->counts_by_kind) {
    const std::string_view name = replay::kind_name(kind);
    std::printf("  %-22s %llu\n", name.empty() ? ("kind " + std::to_string(kind)).c_str() : std::string(name).c_str(),
                static_cast<unsigned long long>(n));
  }
  std::printf("\nexits by reason:\n");
  if (s->exits_by_reason.empty() && s->svm_exits_by_reason.empty()) std::printf("  (none)\n");
  for (auto [reason, n] : s->svm_exits_by_reason)
    std::printf("  %-22s %llu\n", replay::exit_reason_text(reason, ES_FLAG_SVM).c_str(),
                static_cast<unsigned long long>(n));
  for (auto [reason, n] : s->exits_by_reason)
    std::printf("  %-22s %llu\n", replay::exit_reason_text(reason, 0).c_str(), static_cast<unsigned long long>(n));
  std::printf("\ndecisions by reason:\n");
  if (s->decisions_by_reason.empty()) std::printf("  (none)\n");
  for (auto [reason, n] : s->decisions_by_reason) {
    const std::string_view name = replay::decision_name(reason);
    std::printf("  %-22s %llu\n",
                name.empty() ? ("decision " + std::to_string(reason)).c_str() : std::string(name).c_str(),
                static_cast<unsigned long long>(n));
  }
  std::map<std::string_view, uint64_t> outcomes;
  uint64_t chain_count = 0;
  auto walked = replay::for_each_chain(*rec, [&](const replay::Chain& c) {
    ++outcomes[replay::to_string(c.outcome)];
    ++chain_count;
    return true;
  });
  if (!walked) {
    std::fprintf(stderr, "exitscope info: %s\n", walked.error().c_str());
    return 2;
  }
  std::printf("\nchains:     %llu", static_cast<unsigned long long>(chain_count));
  for (auto [o, n] : outcomes)
    std::printf("  %.*s=%llu", static_cast<int>(o.size()), o.data(), static_cast<unsigned long long>(n));
  std::printf("\n");
  // Findings of the live invariant checker stored in the recording (replay/check).
  uint64_t violations = 0;
  for (auto [kind, n] : s->counts_by_kind)
    if (kind == ES_KIND_VIOLATION) violations = n;
  if (violations)
    std::printf("violations: %llu recorded by the live checker (run 'exitscope check %s' for details)\n",
                static_cast<unsigned long long>(violations), safe(rec->path()).c_str());
  else
    std::printf("violations: none recorded\n");

  if (!args->has("no-console")) {
    auto lines = rec->console_lines();
    if (!lines) {
      std::fprintf(stderr, "exitscope info: %s\n", lines.error().c_str());
      return 2;
    }
    std::printf("\nconsole output:%s\n", lines->empty() ? " (none)" : "");
    for (const std::string& l : *lines) std::printf("  | %s\n", safe(l).c_str());
  }
  return 0;
}

}  // namespace es::cli
