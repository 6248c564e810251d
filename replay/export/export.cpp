#include "replay/export/export.h"

#include <algorithm>
#include <array>
#include <mutex>
#include <system_error>
#include <thread>

#include "replay/export/handoff.h"
#include "replay/names.h"
#include "replay/summary.h"

namespace es::exporter {

namespace {

constexpr ExportFormat kFormats[] = {
    {"text", "mailing-list text: at most 80 columns, one decoded event per line, chains indented", &export_text, true,
     true},
    {"markdown", "Markdown tables for issue trackers: session facts, one table per chain, other events",
     &export_markdown, true, true},
    {"perfetto",
     "Perfetto protobuf trace (ui.perfetto.dev, trace_processor): a track per vCPU and level, "
     "exit-to-entry slices, chain flows, decoded SDM fields as args",
     &export_perfetto, false},
    {"chrome", "Chrome trace-event JSON (chrome://tracing): the same slices, flows and args", &export_chrome_json,
     false},
    // Drawn in this process by render/'s painters, through the picture module (image_export.cpp).
    {"svg", "SVG timeline picture: a lane per vCPU and guest level, exits coloured by reason, chain arcs", &export_svg,
     false, false, true},
    {"png", "PNG timeline picture (the same drawing as svg)", &export_png, false, false, true},
};

// Formats in the design that this build does not have (none: svg / png are the picture module's).
constexpr std::array<std::string_view, 0> kPlanned = {};

std::string plural(uint64_t n, std::string_view word) {
  return std::to_string(n) + " " + std::string(word) + (n == 1 ? "" : "s");
}

}  // namespace

void Output::flush() {
  if (buf_.empty()) return;
  for (const char c : buf_) characters_ += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  if (text_) {
    text_->append(buf_);
  } else if (file_ && !failed_) {
    if (std::fwrite(buf_.data(), 1, buf_.size(), file_) != buf_.size()) failed_ = true;
  }
  buf_.clear();
}

std::span<const ExportFormat> export_formats() { return kFormats; }

const ExportFormat* find_export_format(std::string_view name) {
  for (const ExportFormat& f : kFormats)
    if (f.name == name) return &f;
  return nullptr;
}

bool is_planned_format(std::string_view name) {
  return std::find(kPlanned.begin(), kPlanned.end(), name) != kPlanned.end();
}

std::string format_name_list() {
  std::string s;
  for (const ExportFormat& f : kFormats) {
    if (!s.empty()) s += ", ";
    s += f.name;
  }
  return s;
}

bool ExportContext::in_window(const es_record& r) const {
  if (options.vcpu && r.vcpu != *options.vcpu) return false;
  if (options.from_ns && r.time_ns < *options.from_ns) return false;
  if (options.to_ns && r.time_ns > *options.to_ns) return false;
  return true;
}

namespace {

// Events read on a second thread while the exporter formats them on the calling one. In a
// large export SQLite's row decoding and the formatting each take about half of the time
// (BENCHMARKS.md, Export), so with a second core they overlap. Batches pass through a short
// queue in id order and the formatting stays on the caller's thread: the output is the same
// bytes as a single-threaded read, and the exporters need no locking.
class EventPipe {
 public:
  static constexpr size_t kBatch = 1024;  // events per hand-over (~170 KB)
  static constexpr size_t kDepth = 4;     // batches read ahead at most

  // Reader side: false once the consumer has stopped. `batch` comes back empty (a recycled one).
  bool push(std::vector<replay::Event>& batch) {
    if (!q_.push(std::move(batch))) return false;
    batch = take_spare();
    return true;
  }
  void finish(Result<void> result) { q_.finish(std::move(result)); }
  // Consumer side: the next batch, or false at the end; the previous one is kept for reuse.
  bool pop(std::vector<replay::Event>& batch) {
    if (!batch.empty() || batch.capacity()) {
      batch.clear();
      std::lock_guard lock(spare_m_);
      spare_.push_back(std::move(batch));
    }
    return q_.pop(batch);
  }
  void stop() { q_.stop(); }
  Result<void> result() { return q_.result(); }

 private:
  std::vector<replay::Event> take_spare() {
    std::vector<replay::Event> b;
    {
      std::lock_guard lock(spare_m_);
      if (!spare_.empty()) {
        b = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    b.reserve(kBatch);
    return b;
  }

  Handoff<std::vector<replay::Event>, kDepth> q_;
  std::mutex spare_m_;
  std::vector<std::vector<replay::Event>> spare_;
};

}  // namespace

void ExportContext::tick(uint64_t n) {
  const uint64_t before = events_done;
  events_done += n;
  if (!options.progress) return;
  const uint64_t step = std::max<uint64_t>(1, total_events / 256);
  if (events_done / step != before / step || events_done == total_events) options.progress(events_done, total_events);
}

Result<void> ExportContext::for_each_event(const std::function<void(const replay::Event&)>& fn, Events which) {
  if (only_chain) {  // streamed from the recording when the chain is not held (issue #18)
    return replay::for_each_member(recording, *only_chain, [&](const replay::Event& ev) {
      if (!in_window(ev.rec)) return true;
      fn(ev);
      tick();
      return true;
    });
  }
  replay::EventFilter f;
  f.vcpu = options.vcpu;
  f.from_ns = options.from_ns;
  f.to_ns = options.to_ns;
  f.outside_chains = which == Events::OutsideChains;
  auto read_here = [&] {
    return recording.for_each_event(f, [&](const replay::Event& ev) {
      fn(ev);
      tick();
      return true;
    });
  };
  if (std::thread::hardware_concurrency() < 2) return read_here();
  // The recording's connection is used by the reader thread only until it is joined (SQLite
  // in multi-thread mode: one thread at a time per connection).
  EventPipe pipe;
  auto read_ahead = [&] {
    Result<void> r;
    try {
      std::vector<replay::Event> batch;
      batch.reserve(EventPipe::kBatch);
      r = recording.for_each_event(f, [&](const replay::Event& ev) {
        batch.push_back(ev);
        return batch.size() < EventPipe::kBatch || pipe.push(batch);
      });
      if (r && !batch.empty()) (void)pipe.push(batch);
    } catch (const std::exception& e) {  // out of memory: an error, not std::terminate
      r = make_error("could not read '" + recording.path() + "': " + e.what() + ".");
    }
    pipe.finish(std::move(r));
  };
  std::thread reader;
  try {
    reader = std::thread(read_ahead);
  } catch (const std::system_error&) {  // no thread to be had (limits): read on this one
    return read_here();
  }
  // Joined on every way out, also if the exporter throws.
  struct Join {
    EventPipe& pipe;
    std::thread& t;
    ~Join() {
      pipe.stop();
      t.join();
    }
  } join{pipe, reader};
  std::vector<replay::Event> batch;
  while (pipe.pop(batch)) {
    for (const replay::Event& ev : batch) {
      fn(ev);
      tick();
    }
  }
  return pipe.result();
}

std::string ExportContext::recording_name() const {
  const std::string& p = recording.path();
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

Result<void> run_export(replay::Recording& recording, const ExportFormat& format, const ExportOptions& options,
                        Output& out) {
  ExportContext ctx{recording, options, out, {}, false, {}, {}, nullptr, 0};
  if (format.reads_recording_itself) {
    if (auto r = format.run(ctx); !r) return r;
    out.flush();
    if (out.failed()) return make_error("could not write the export (disk full or output closed).");
    return {};
  }
  // The header needs the session row, the event count and the time extent only.
  auto session = recording.session(replay::Recording::Detail::Summary);
  if (!session) return make_error(session.error());
  ctx.session = std::move(session).value();
  // The chains by outcome for the header: from the chains table when it holds this build's
  // outcomes (replay::chain_figures_current: its writer decided each chain with these rules), one
  // GROUP BY; else counted in one streamed walk (memory: one chain) (issue #18: every chain and
  // member of a 10 M-event recording was 3.7 GB; the walk read every member again, 20 s of a 10 M
  // export with --chain).
  auto count_chains = [&]() -> Result<void> {
    std::array<uint64_t, std::size(replay::kAllOutcomes)> n{};
    auto count = [&](replay::Outcome o, uint64_t k) {
      for (size_t i = 0; i < n.size(); ++i)
        if (replay::kAllOutcomes[i] == o) n[i] += k;
      ctx.chain_count += k;
    };
    bool counted = false;
    if (auto current = replay::chain_figures_current(recording.db()); current && *current) {
      auto st = recording.db().prepare("SELECT outcome, count(*) FROM chains GROUP BY outcome");
      if (st) {
        counted = true;
        int rc;
        while ((rc = st->step()) == SQLITE_ROW) {
          const auto o = replay::outcome_from_string(st->col_text(0));
          if (!o)
            counted = false;  // a name this build does not know: walk instead
          else
            count(*o, st->col_u64(1));
        }
        counted = counted && rc == SQLITE_DONE;
      }
      if (!counted) {
        n = {};
        ctx.chain_count = 0;
      }
    }
    auto walked = counted ? Result<void>{} : replay::for_each_chain(recording, [&](const replay::Chain& c) {
      count(c.outcome, 1);
      return true;
    });
    if (!walked) return make_error(walked.error());
    for (size_t i = 0; i < n.size(); ++i) ctx.outcome_counts.emplace_back(replay::kAllOutcomes[i], n[i]);
    ctx.chains_counted = true;
    return {};
  };
  if (options.chain) {
    // That chain and the chains it names (their titles and outcomes), not every chain.
    auto chains = replay::load_chain_and_links(recording, *options.chain);
    if (!chains) return make_error(chains.error());
    ctx.chains = std::move(chains).value();
    for (const replay::Chain& c : ctx.chains) ctx.chain_by_id[c.id] = &c;
    ctx.chains_loaded = true;  // the ones the exporters read with --chain; the header counts all
    if (auto r = count_chains(); !r) return r;
  } else if (format.streams_chains) {
    // The exporter walks the chains again to print them.
    if (auto r = count_chains(); !r) return r;
  } else if (format.needs_chains) {
    auto chains = replay::load_chains(recording);
    if (!chains) return make_error(chains.error());
    ctx.chains = std::move(chains).value();
    for (const replay::Chain& c : ctx.chains) ctx.chain_by_id[c.id] = &c;
    ctx.chains_loaded = true;
  }
  if (options.chain) {
    auto it = ctx.chain_by_id.find(*options.chain);
    if (it == ctx.chain_by_id.end())
      return make_error("no chain " + std::to_string(*options.chain) + " in '" + recording.path() +
                        "'; run 'exitscope chains " + recording.path() + "' to list the chains.");
    ctx.only_chain = it->second;
    ctx.total_events = ctx.only_chain->member_count;
  } else if (options.vcpu || options.from_ns || options.to_ns) {
    // Counted up front so progress is a real percentage of this export.
    std::string sql = "SELECT count(*) FROM events WHERE 1";
    if (options.vcpu)  // `vcpu != 0`: the partial events_vcpu's condition (schema/indexes.sql)
      sql += " AND vcpu = " + std::to_string(*options.vcpu) + (*options.vcpu != 0 ? " AND vcpu != 0" : "");
    if (options.from_ns || options.to_ns) {
      auto window = replay::time_window_sql(recording.db(), options.from_ns, options.to_ns);
      if (!window) return make_error(window.error());
      sql += " AND " + *window;
    }
    auto st = recording.db().prepare(sql);
    if (st && st->step() == SQLITE_ROW) ctx.total_events = st->col_u64(0);
  } else {
    ctx.total_events = ctx.session.event_count;
  }
  if (auto r = format.run(ctx); !r) return r;
  out.flush();
  if (out.failed()) return make_error("could not write the export (disk full or output closed).");
  return {};
}

std::string chain_outcome_text(const replay::Chain& c) {
  std::string s(replay::to_string(c.outcome));
  if (c.outcome_event) s += " (#" + std::to_string(c.outcome_event) + ")";
  return s;
}

std::string chain_title(const replay::Chain& c) {
  const es_record& first = c.root_found ? c.root.rec : c.events.front().rec;
  return "Chain " + std::to_string(c.id) + ": " + chain_event_text(c) + " at L" + std::to_string(first.level) +
         " vcpu" + std::to_string(first.vcpu) + ", " + plural(c.member_count, "event") + ", " + chain_outcome_text(c);
}

Result<FlowSpan> shown_members(const ExportContext& ctx, db::Db& db, const replay::Chain& c, bool want_last) {
  FlowSpan sp;
  const ExportOptions& o = ctx.options;
  if (!c.members_held && !o.vcpu && !o.from_ns && !o.to_ns && !c.events.empty())
    return FlowSpan{c.events.front().rec.id, want_last ? c.events.back().rec.id : 0};
  auto r = replay::for_each_member(db, c, [&](const replay::Event& e) {
    if (!ctx.in_window(e.rec)) return true;
    if (!sp.first) sp.first = e.rec.id;
    sp.last = e.rec.id;
    return want_last;
  });
  if (!r) return make_error(r.error());
  if (!want_last) sp.last = 0;
  return sp;
}

std::vector<std::pair<std::string, std::string>> session_facts(const ExportContext& ctx) {
  std::vector<std::pair<std::string, std::string>> rows;
  for (auto& [label, value] : replay::session_facts(ctx.session, ctx.recording_name(), replay::SessionFactsFor::Report))
    rows.emplace_back(std::move(label), std::move(value));
  // Chains by outcome, in a fixed order.
  std::string by_outcome;
  for (auto o : replay::kAllOutcomes) {
    uint64_t n = 0;
    if (ctx.chains_counted) {
      for (const auto& [outcome, count] : ctx.outcome_counts)
        if (outcome == o) n = count;
    } else {
      n = static_cast<uint64_t>(
          std::count_if(ctx.chains.begin(), ctx.chains.end(), [&](const auto& c) { return c.outcome == o; }));
    }
    if (n == 0) continue;
    if (!by_outcome.empty()) by_outcome += ", ";
    by_outcome += std::to_string(n) + " " + std::string(replay::to_string(o));
  }
  if (ctx.chains_loaded || ctx.chains_counted)
    rows.emplace_back("chains", std::to_string(ctx.chains_counted ? ctx.chain_count : ctx.chains.size()) +
                                    (by_outcome.empty() ? "" : " (" + by_outcome + ")"));
  std::string shown;
  if (ctx.only_chain) shown = "chain " + std::to_string(ctx.only_chain->id);
  if (ctx.options.vcpu) shown += (shown.empty() ? "" : ", ") + std::string("vcpu ") + std::to_string(*ctx.options.vcpu);
  if (ctx.options.from_ns || ctx.options.to_ns) {
    shown += (shown.empty() ? "" : ", ") + std::string("time ") +
             (ctx.options.from_ns ? replay::format_time(*ctx.options.from_ns) + " s" : std::string("start")) + " .. " +
             (ctx.options.to_ns ? replay::format_time(*ctx.options.to_ns) + " s" : std::string("end"));
  }
  rows.emplace_back("shown", shown.empty() ? "all events" : shown);
  return rows;
}

namespace {

// The word wrap behind wrap() and wrap_to(): calls line(prefix, piece, last) for each line in
// order; a line is prefix + piece with trailing spaces removed, except the last, kept whole.
template <typename Line>
void wrap_lines(std::string_view text, std::string_view first_prefix, std::string_view cont_prefix, size_t width,
                Line&& line) {
  std::string_view prefix = first_prefix;
  size_t room = width > prefix.size() ? width - prefix.size() : 1;
  if (text.size() <= room) {  // the usual case: one line, no break points needed
    line(prefix, text, true);
    return;
  }
  // top[i]: a space at bracket / quote depth 0, the preferred break points.
  std::vector<unsigned char> top(text.size(), 0);
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"' && (i == 0 || text[i - 1] != '\\'))
      quoted = !quoted;
    else if (!quoted && c == '[')
      ++depth;
    else if (!quoted && c == ']' && depth > 0)
      --depth;
    else if (c == ' ')
      top[i] = depth == 0 && !quoted;
  }
  size_t pos = 0;
  bool first = true;
  while (true) {
    while (!first && pos < text.size() && text[pos] == ' ') ++pos;
    room = width > prefix.size() ? width - prefix.size() : 1;
    if (text.size() - pos <= room) {
      line(prefix, text.substr(pos), true);
      return;
    }
    size_t cut = 0;
    for (size_t i = pos + room; i > pos && cut == 0; --i)
      if (top[i]) cut = i;
    for (size_t i = pos + room; i > pos && cut == 0; --i)
      if (text[i] == ' ') cut = i;
    if (cut == 0) cut = pos + room;  // one long word: hard cut
    line(prefix, text.substr(pos, cut - pos), false);
    first = false;
    pos = cut;
    prefix = cont_prefix;
  }
}

}  // namespace

std::vector<std::string> wrap(std::string_view text, std::string_view first_prefix, std::string_view cont_prefix,
                              size_t width) {
  std::vector<std::string> lines;
  wrap_lines(text, first_prefix, cont_prefix, width, [&](std::string_view prefix, std::string_view piece, bool last) {
    std::string l = std::string(prefix) + std::string(piece);
    if (!last)
      while (!l.empty() && l.back() == ' ') l.pop_back();
    lines.push_back(std::move(l));
  });
  return lines;
}

void wrap_to(std::string& out, std::string_view text, std::string_view first_prefix, std::string_view cont_prefix,
             size_t width) {
  wrap_lines(text, first_prefix, cont_prefix, width, [&](std::string_view prefix, std::string_view piece, bool last) {
    const size_t start = out.size();
    out += prefix;
    out += piece;
    if (!last)
      while (out.size() > start && out.back() == ' ') out.pop_back();
    out += '\n';
  });
}

}  // namespace es::exporter
