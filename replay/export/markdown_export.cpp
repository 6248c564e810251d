// Markdown export for issue trackers: the same content as the text export, as tables
// (session facts, one table per chain, the events outside chains). Cells escape '|'.
// Event ids are written as code spans (`#494`): GitHub and GitLab turn a bare #494 into a link
// to issue 494 of the repository the report is pasted into, which has nothing to do with it.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <deque>
#include <functional>
#include <vector>

#include "replay/browse.h"
#include "replay/export/export.h"
#include "replay/format.h"
#include "replay/names.h"

namespace es::exporter {

namespace {

// A table cell: '|' escaped (GFM), backslash before it kept distinct, control bytes dropped.
std::string cell(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '|')
      out += "\\|";
    else if (c == '#' && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '9') {
      size_t end = i + 1;
      while (end < s.size() && s[end] >= '0' && s[end] <= '9') ++end;
      ((out += '`') += s.substr(i, end - i)) += '`';
      i = end - 1;
    } else if (c == '\n' || c == '\r' || c == '\t')
      out += ' ';
    // Other C0 controls, DEL and the C1 controls in UTF-8 (U+0080..U+009F: C2 80..C2 9F) are
    // dropped: a session string from a stranger's file must not reach a terminal as ESC / CSI.
    else if (c < 0x20 || c == 0x7f)
      continue;
    else if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) < 0xa0 &&
             static_cast<unsigned char>(s[i + 1]) >= 0x80)
      ++i;
    else
      out += static_cast<char>(c);
  }
  return out;
}

constexpr std::string_view kEventTableHead =
    "| # | time (s) | level | vcpu | kind | decoded | cause |\n"
    "|--:|---|---|--:|---|---|--:|\n";

void append_dec(std::string& b, uint64_t v) {
  char tmp[24];
  auto [p, ec] = std::to_chars(tmp, tmp + sizeof tmp, v);
  (void)ec;
  b.append(tmp, static_cast<size_t>(p - tmp));
}

// One table row, written straight into the output buffer; the decoded cell is escaped in
// place (only a cell holding a '|' or a control byte is copied out to be rewritten).
void put_row(Output& out, const replay::Event& ev, replay::CauseExits& causes) {
  causes.see(ev);
  const es_record& r = ev.rec;
  const std::string_view kind = replay::kind_name(r.kind);
  std::string& b = out.buffer();
  b += "| ";
  append_dec(b, r.id);
  b += " | ";
  replay::append_time(b, r.time_ns);
  b += " | L";
  append_dec(b, r.level);
  if (r.kind != ES_KIND_DELIVERY) {  // format.h level_text: a delivery is the CPU's, "L2"
    b += "(L";
    append_dec(b, r.hv_level);
    b += ')';
  }
  b += " | ";
  append_dec(b, r.vcpu);
  b += " | ";
  if (kind.empty()) {
    b += "kind";
    append_dec(b, r.kind);
  } else {
    b += kind;
  }
  b += " | ";
  const size_t cell_start = b.size();
  replay::append_event_fields(b, ev, causes.cause_of(ev));
  size_t i = cell_start;
  while (i < b.size() && b[i] != '|' && b[i] != '\n' && b[i] != '\r' && b[i] != '\t' && b[i] != '#') ++i;
  if (i != b.size()) {
    const std::string tail = b.substr(i);
    b.resize(i);
    b += cell(tail);
  }
  b += " | ";
  if (r.cause) {
    b += "`#";
    append_dec(b, r.cause);
    b += '`';
  }
  b += " |\n";
  out.maybe_flush();
}

// Whether the chain has a table: with --chain the chain's own, else a chain with a member in
// the window (a chain not held is streamed from the recording: shown_members).
Result<bool> chain_shown(ExportContext& ctx, const replay::Chain& c) {
  if (ctx.only_chain) return &c == ctx.only_chain;
  auto sp = shown_members(ctx, ctx.recording.db(), c, false);
  if (!sp) return make_error(sp.error());
  return sp->first != 0;
}

// Another chain a chain's notes name: its title and outcome, false if it is not in the recording.
using NameFn = std::function<bool(uint64_t id, std::string& title, replay::Outcome& outcome)>;

// The chain's title, notes and members in the window (replay::for_each_member: a chain not held
// is streamed from the recording, on the connection of the caller's thread).
Result<void> put_chain(ExportContext& ctx, const replay::Chain& c, const NameFn& name_of) {
  Output& out = ctx.out;
  out.put("### " + cell("Chain " + std::to_string(c.id) + ": " + chain_event_text(c) + " -- " + chain_outcome_text(c)) +
          "\n\n");
  std::string notes;
  std::string title;
  replay::Outcome outcome = replay::Outcome::Lost;
  if (c.interrupts_chain) {
    const bool found = name_of(c.interrupts_chain, title, outcome);
    notes += "Raised during the delivery of chain " + std::to_string(c.interrupts_chain) +
             (found ? " (" + title + ")" : "") + ". ";
  }
  for (uint64_t other : c.interrupted_by) {
    const bool found = name_of(other, title, outcome);
    notes += "Interrupted by chain " + std::to_string(other) +
             (found ? " (" + title + ", " + std::string(replay::to_string(outcome)) + ")" : "") + ". ";
  }
  if (c.inferred) notes += "Some links are inferred. ";
  notes += "Outcome: **" + std::string(replay::to_string(c.outcome)) + "**" +
           (c.outcome_event ? " (#" + std::to_string(c.outcome_event) + ")" : "") + ": " +
           std::string(replay::chain_outcome_reference(c, ctx.vendor)) + ".";
  out.put(cell(notes) + "\n\n");
  out.put(kEventTableHead);
  auto r = replay::for_each_member(ctx.recording, c, [&](const replay::Event& e) {
    if (!ctx.in_window(e.rec)) return true;
    put_row(out, e, ctx.causes);
    ctx.tick();  // members come from the chain, not from for_each_event
    return true;
  });
  if (!r) return r;
  out.put('\n');
  return {};
}

}  // namespace

Result<void> export_markdown(ExportContext& ctx) {
  Output& out = ctx.out;
  ctx.vendor = replay::recording_vendor(ctx.recording);
  if (ctx.only_chain)
    out.put("# " + cell(chain_title(*ctx.only_chain)) + "\n\n");
  else
    out.put("# exitscope recording " + cell(ctx.recording_name()) + "\n\n");
  out.put("| session | |\n|---|---|\n");
  for (const auto& [label, value] : session_facts(ctx)) out.put("| " + cell(label) + " | " + cell(value) + " |\n");
  out.put('\n');

  size_t chains_shown = 0;
  if (ctx.chains_loaded) {
    const NameFn from_memory = [&](uint64_t id, std::string& title, replay::Outcome& outcome) {
      auto it = ctx.chain_by_id.find(id);
      if (it == ctx.chain_by_id.end()) return false;
      title = chain_event_text(*it->second);
      outcome = it->second->outcome;
      return true;
    };
    for (const replay::Chain& c : ctx.chains) {
      auto shown = chain_shown(ctx, c);
      if (!shown) return make_error(shown.error());
      if (!*shown) continue;
      if (chains_shown++ == 0) out.put("## Chains\n\n");
      if (auto r = put_chain(ctx, c, from_memory); !r) return r;
    }
  } else {
    // Streamed in id order (issue #18: memory was every chain and member). A chain whose notes
    // name a later chain (one raised during its delivery) waits until the walk has read it;
    // the others are named from a 16-byte brief each.
    struct Brief {
      uint64_t id;
      uint32_t event_word;
      bool root_found;
      replay::Outcome outcome;
    };
    std::vector<Brief> briefs;
    const NameFn from_briefs = [&](uint64_t id, std::string& title, replay::Outcome& outcome) {
      auto it = std::lower_bound(briefs.begin(), briefs.end(), id, [](const Brief& b, uint64_t v) { return b.id < v; });
      if (it == briefs.end() || it->id != id) return false;
      replay::Chain tmp;
      tmp.id = it->id;
      tmp.event_word = it->event_word;
      tmp.root_found = it->root_found;
      title = chain_event_text(tmp);
      outcome = it->outcome;
      return true;
    };
    auto last_named = [](const replay::Chain& c) {
      uint64_t m = c.interrupts_chain;
      for (uint64_t o : c.interrupted_by) m = std::max(m, o);
      return m;
    };
    std::deque<replay::Chain> waiting;
    // A chain not held is read while the walk's statement is open: the same connection, on
    // this thread (replay::for_each_member). The first failure stops the walk.
    Result<void> status;
    auto put = [&](const replay::Chain& c) {
      if (chains_shown++ == 0) out.put("## Chains\n\n");
      if (auto r = put_chain(ctx, c, from_briefs); !r && status) status = r;
    };
    auto put_ready = [&](uint64_t walked) {
      for (; status && !waiting.empty() && last_named(waiting.front()) <= walked; waiting.pop_front())
        put(waiting.front());
    };
    auto r = replay::for_each_chain(ctx.recording, [&](const replay::Chain& c) {
      briefs.push_back({c.id, c.event_word, c.root_found, c.outcome});
      put_ready(c.id);
      auto shown = chain_shown(ctx, c);
      if (!shown && status) status = make_error(shown.error());
      if (!status) return false;
      if (!*shown) return true;
      if (waiting.empty() && last_named(c) <= c.id)
        put(c);
      else
        waiting.push_back(c);
      return static_cast<bool>(status);
    });
    if (!r) return r;
    put_ready(UINT64_MAX);
    if (!status) return status;
  }
  if (ctx.only_chain) return {};

  // Every event with an origin is a member of a loaded chain, shown above: read only the others.
  uint64_t others = 0;
  auto r = ctx.for_each_event(
      [&](const replay::Event& ev) {
        if (others++ == 0) {
          out.put("## Other events\n\n");
          out.put(kEventTableHead);
        }
        put_row(out, ev, ctx.causes);
      },
      ExportContext::Events::OutsideChains);
  if (!r) return r;
  if (others) out.put('\n');
  if (chains_shown == 0 && others == 0) out.put("No events match.\n");
  return {};
}

}  // namespace es::exporter
