// Plain-text export for mailing lists: ASCII only, at most 80 columns, one event per line
// (long decodes wrap onto indented continuation lines), chains grouped and indented under
// their original event with the outcome.
#include <cstdio>
#include <unordered_set>

#include "replay/export/export.h"
#include "replay/format.h"
#include "replay/names.h"

namespace es::exporter {

namespace {

constexpr size_t kWidth = 80;
constexpr std::string_view kMemberIndent = "    ";
constexpr size_t kContinuation = 8;  // continuation lines start this far right of their event

// Anything outside printable ASCII (a guest path, a scenario label) becomes '?'.
std::string ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  return out;
}

// "#12    0.000001200 L1(L0) v0 VM_EXIT  "
std::string event_head(const es_record& r) {
  const std::string_view kind = replay::kind_name(r.kind);
  char buf[96];
  std::snprintf(buf, sizeof buf, "#%-5llu %s L%u(L%u) v%u %-8s ", static_cast<unsigned long long>(r.id),
                replay::format_time(r.time_ns).c_str(), r.level, r.hv_level, r.vcpu,
                kind.empty() ? ("kind" + std::to_string(r.kind)).c_str() : std::string(kind).c_str());
  return buf;
}

void put_lines(Output& out, const std::vector<std::string>& lines) {
  for (const std::string& l : lines) {
    out.put(l);
    out.put('\n');
  }
}

void put_event(Output& out, const replay::Event& ev, std::string_view indent) {
  std::string fields = ascii(replay::describe_event_fields(ev));
  if (ev.rec.cause) fields += " cause=#" + std::to_string(ev.rec.cause);
  const std::string first = std::string(indent) + event_head(ev.rec);
  put_lines(out, wrap(fields, first, std::string(indent.size() + kContinuation, ' '), kWidth));
}

class TextWriter {
 public:
  explicit TextWriter(ExportContext& ctx) : ctx_(ctx), out_(ctx.out) {}

  void header() {
    if (ctx_.only_chain) {
      put_lines(out_, wrap(ascii(chain_title(*ctx_.only_chain)), "", "    ", kWidth));
      out_.put('\n');
    }
    out_.put("exitscope recording\n");
    for (const auto& [label, value] : session_facts(ctx_)) {
      std::string first = "  " + label + ":";
      first.resize(13, ' ');
      put_lines(out_, wrap(ascii(value), first, std::string(6, ' '), kWidth));  // a sha256 fits whole
    }
    out_.put('\n');
    put_lines(out_, wrap("Events: #id, time (s), guest level (hypervisor level), vcpu, kind, decoded "
                         "fields. Chain members are indented under their original event.",
                         "", "", kWidth));
    out_.put('\n');
  }

  void event(const replay::Event& ev) {
    const uint64_t origin = ev.rec.origin;
    if (origin) {
      auto it = ctx_.chain_by_id.find(origin);
      if (it != ctx_.chain_by_id.end()) {
        if (printed_.insert(origin).second) chain(*it->second);
        return;
      }
    }
    put_event(out_, ev, "");
    ++shown_;
    out_.maybe_flush();
  }

  void footer() {
    if (shown_ == 0) out_.put("(no events match)\n");
  }

 private:
  void chain(const replay::Chain& c) {
    const bool root_shown = c.root_found && ctx_.in_window(c.root.rec);
    if (root_shown) {
      put_event(out_, c.root, "");
    } else {
      put_lines(out_, wrap(ascii("chain " + std::to_string(c.id) + ": " + chain_event_text(c) +
                                 (c.root_found ? " (root #" + std::to_string(c.id) + " outside the shown range)" : "")),
                           "", "    ", kWidth));
    }
    ++shown_;
    for (const replay::Event& m : c.events) {
      if (root_shown && m.rec.id == c.id) continue;
      if (!ctx_.in_window(m.rec)) continue;
      put_event(out_, m, kMemberIndent);
      ++shown_;
    }
    if (c.interrupts_chain) {
      auto it = ctx_.chain_by_id.find(c.interrupts_chain);
      put_lines(out_, wrap(ascii("raised during the delivery of chain " + std::to_string(c.interrupts_chain) +
                                 (it == ctx_.chain_by_id.end() ? "" : " (" + chain_event_text(*it->second) + ")")),
                           kMemberIndent, "        ", kWidth));
    }
    for (uint64_t other : c.interrupted_by) {
      auto it = ctx_.chain_by_id.find(other);
      put_lines(out_, wrap(ascii("interrupted by chain " + std::to_string(other) +
                                 (it == ctx_.chain_by_id.end()
                                      ? ""
                                      : " (" + chain_event_text(*it->second) + ", " +
                                            std::string(replay::to_string(it->second->outcome)) + ")")),
                           kMemberIndent, "        ", kWidth));
    }
    put_lines(out_, wrap(ascii("=> chain " + std::to_string(c.id) + " " + chain_event_text(c) + ": " +
                               chain_outcome_text(c) + (c.inferred ? " [inferred links]" : "")),
                         kMemberIndent, "        ", kWidth));
    out_.maybe_flush();
  }

  ExportContext& ctx_;
  Output& out_;
  std::unordered_set<uint64_t> printed_;
  uint64_t shown_ = 0;
};

}  // namespace

Result<void> export_text(ExportContext& ctx) {
  TextWriter w(ctx);
  w.header();
  if (auto r = ctx.for_each_event([&](const replay::Event& ev) { w.event(ev); }); !r) return r;
  w.footer();
  return {};
}

}  // namespace es::exporter
