// Markdown export for issue trackers: the same content as the text export, as tables
// (session facts, one table per chain, the events outside chains). Cells escape '|'.
#include <cstdio>

#include "replay/export/export.h"
#include "replay/format.h"
#include "replay/names.h"

namespace es::exporter {

namespace {

// A table cell: '|' escaped (GFM), backslash before it kept distinct, control bytes dropped.
std::string cell(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r' || c == '\t') out += ' ';
    else out += c;
  }
  return out;
}

constexpr std::string_view kEventTableHead =
    "| # | time (s) | level | vcpu | kind | decoded | cause |\n"
    "|--:|---|---|--:|---|---|--:|\n";

void put_row(Output& out, const replay::Event& ev) {
  const es_record& r = ev.rec;
  const std::string_view kind = replay::kind_name(r.kind);
  std::string& b = out.buffer();
  b += "| ";
  b += std::to_string(r.id);
  b += " | ";
  b += replay::format_time(r.time_ns);
  b += " | L" + std::to_string(r.level) + "(L" + std::to_string(r.hv_level) + ") | ";
  b += std::to_string(r.vcpu);
  b += " | ";
  b += kind.empty() ? "kind" + std::to_string(r.kind) : std::string(kind);
  b += " | ";
  b += cell(replay::describe_event_fields(ev));
  b += " | ";
  if (r.cause) b += "#" + std::to_string(r.cause);
  b += " |\n";
  out.maybe_flush();
}

bool chain_shown(const ExportContext& ctx, const replay::Chain& c) {
  if (ctx.only_chain) return &c == ctx.only_chain;
  for (const replay::Event& e : c.events)
    if (ctx.in_window(e.rec)) return true;
  return false;
}

void put_chain(ExportContext& ctx, const replay::Chain& c) {
  Output& out = ctx.out;
  out.put("### " + cell("Chain " + std::to_string(c.id) + ": " + chain_event_text(c) + " -- " +
                        chain_outcome_text(c)) +
          "\n\n");
  std::string notes;
  if (c.interrupts_chain) {
    auto it = ctx.chain_by_id.find(c.interrupts_chain);
    notes += "Raised during the delivery of chain " + std::to_string(c.interrupts_chain) +
             (it == ctx.chain_by_id.end() ? "" : " (" + chain_event_text(*it->second) + ")") + ". ";
  }
  for (uint64_t other : c.interrupted_by) {
    auto it = ctx.chain_by_id.find(other);
    notes += "Interrupted by chain " + std::to_string(other) +
             (it == ctx.chain_by_id.end()
                  ? ""
                  : " (" + chain_event_text(*it->second) + ", " + std::string(replay::to_string(it->second->outcome)) +
                        ")") +
             ". ";
  }
  if (c.inferred) notes += "Some links are inferred. ";
  notes += "Outcome: **" + std::string(replay::to_string(c.outcome)) + "**" +
           (c.outcome_event ? " (#" + std::to_string(c.outcome_event) + ")" : "") + ".";
  out.put(notes + "\n\n");
  out.put(kEventTableHead);
  for (const replay::Event& e : c.events)
    if (ctx.in_window(e.rec)) put_row(out, e);
  out.put('\n');
}

}  // namespace

Result<void> export_markdown(ExportContext& ctx) {
  Output& out = ctx.out;
  if (ctx.only_chain) out.put("# " + cell(chain_title(*ctx.only_chain)) + "\n\n");
  else out.put("# exitscope recording " + cell(ctx.recording_name()) + "\n\n");
  out.put("| session | |\n|---|---|\n");
  for (const auto& [label, value] : session_facts(ctx)) out.put("| " + cell(label) + " | " + cell(value) + " |\n");
  out.put('\n');

  size_t chains_shown = 0;
  for (const replay::Chain& c : ctx.chains) {
    if (!chain_shown(ctx, c)) continue;
    if (chains_shown++ == 0) out.put("## Chains\n\n");
    put_chain(ctx, c);
  }
  if (ctx.only_chain) return {};

  uint64_t others = 0;
  auto r = ctx.for_each_event([&](const replay::Event& ev) {
    if (ev.rec.origin && ctx.chain_by_id.count(ev.rec.origin)) return;
    if (others++ == 0) {
      out.put("## Other events\n\n");
      out.put(kEventTableHead);
    }
    put_row(out, ev);
  });
  if (!r) return r;
  if (others) out.put('\n');
  if (chains_shown == 0 && others == 0) out.put("No events match.\n");
  return {};
}

}  // namespace es::exporter
