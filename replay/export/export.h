// Exporters for bug reports: a recording (or one chain / a time window / one vCPU of it) as
// mailing-list text, Markdown tables, Perfetto's protobuf trace, Chrome trace-event JSON, or an
// SVG / PNG picture.
//
// Each format is one {name, summary, function} row of a small table (export_formats()); a
// new format registers by adding a row. Every exporter reads the same ExportContext and
// writes through an Output, so the same recording and options always give the same bytes.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "replay/chains.h"
#include "replay/format.h"
#include "replay/recording.h"
#include "replay/summary.h"
#include "schema/result.h"

namespace es::exporter {

struct ExportOptions {
  std::optional<uint64_t> chain;           // only this chain (its root event id)
  std::optional<uint64_t> from_ns, to_ns;  // inclusive session-time window
  std::optional<uint16_t> vcpu;
  // svg / png only: draw this latency histogram instead of the timeline, "exit" (exit-to-entry
  // times of the VM exits) or "chain" (raise-to-delivery times of the event chains), with the
  // buckets of `exitscope stats --histogram`.
  std::optional<std::string> histogram;
  // Called with (events done, events to do) about every 1/256 of the work; may be empty.
  std::function<void(uint64_t, uint64_t)> progress;
};

// Buffered sink: a FILE* (the CLI: a file or stdout) or a string (tests). Write errors are
// remembered and reported by finish().
// GitHub refuses an issue or comment body longer than this many characters.
inline constexpr uint64_t kGithubBodyLimit = 65536;

class Output {
 public:
  explicit Output(std::FILE* file) : file_(file) { buf_.reserve(kReserve); }
  explicit Output(std::string* text) : text_(text) { buf_.reserve(kReserve); }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;
  ~Output() { flush(); }

  void put(std::string_view s) {
    buf_.append(s);
    if (buf_.size() >= kFlushAt) flush();
  }
  void put(char c) {
    buf_.push_back(c);
    if (buf_.size() >= kFlushAt) flush();
  }
  std::string& buffer() { return buf_; }  // direct appends; call maybe_flush() after
  void maybe_flush() {
    if (buf_.size() >= kFlushAt) flush();
  }
  void flush();
  bool failed() const { return failed_; }
  // Characters (UTF-8 code points) flushed so far: what a web form's length limit counts.
  uint64_t characters() const { return characters_; }

 private:
  static constexpr size_t kFlushAt = 1 << 20;
  // Room for the flush threshold plus the largest usual record, so appends do not reallocate.
  static constexpr size_t kReserve = kFlushAt + (64 << 10);
  std::FILE* file_ = nullptr;
  std::string* text_ = nullptr;
  std::string buf_;
  bool failed_ = false;
  uint64_t characters_ = 0;
};

// What every exporter gets: the session, the chains, the options, the sink.
struct ExportContext {
  replay::Recording& recording;
  const ExportOptions& options;
  Output& out;
  replay::SessionSummary session;
  bool chains_loaded = false;         // chains / chain_by_id are filled
  std::vector<replay::Chain> chains;  // every chain of the recording, by id
  std::unordered_map<uint64_t, const replay::Chain*> chain_by_id;
  const replay::Chain* only_chain = nullptr;  // set when options.chain is
  uint64_t total_events = 0;                  // events to export (for progress)
  uint64_t events_done = 0;                   // counted by tick()

  // The window / vCPU filter (the chain restriction is applied by the exporters).
  bool in_window(const es_record& r) const;
  // Which events for_each_event reads. OutsideChains: only events with no chain (origin 0),
  // for exporters that print chain members from `chains` (loaded already), so a large export
  // does not decode every member row twice.
  enum class Events { All, OutsideChains };
  // Calls fn for every event to export in id order: the chain's members with --chain, else
  // the events in the window. Counts each with tick().
  Result<void> for_each_event(const std::function<void(const replay::Event&)>& fn, Events which = Events::All);
  // Counts n exported events and reports progress about every 1/256 of total_events. An
  // exporter that prints chain members from `chains` ticks for those itself.
  void tick(uint64_t n = 1);
  // The recording's file name without directories (output does not depend on where it is).
  std::string recording_name() const;
  // The exits seen so far, so a decision's detail is named by the exit it answered.
  replay::CauseExits causes{};
  // Set instead of chains_loaded for a format that streams the chains: how many there are,
  // by outcome (replay::kAllOutcomes order), for the header.
  bool chains_counted = false;
  uint64_t chain_count = 0;
  std::vector<std::pair<replay::Outcome, uint64_t>> outcome_counts{};
  // Whose sections (Intel SDM / AMD APM) a chain without exits cites (replay::recording_vendor).
  replay::Vendor vendor = replay::Vendor::Unknown;
};

using ExportFn = Result<void> (*)(ExportContext& ctx);

struct ExportFormat {
  std::string_view name;
  std::string_view summary;
  ExportFn run;
  // Loads every chain before running (text / Markdown group events by chain). Perfetto
  // only needs each chain's first and last event, which it asks SQLite for, so a large
  // export does not read the chain members twice. --chain always loads them.
  bool needs_chains = true;
  // Walks the chains itself (text): run_export counts them by outcome for the header
  // (ExportContext::chains_counted) instead of loading them, unless --chain is given.
  bool streams_chains = false;
  // Opens the recording itself and needs nothing run_export reads (svg / png: the picture module
  // draws from its own Document and says itself when --chain names no chain): run_export reads
  // no session row and no chain for it (a chain of 18.75 M members took 60 s to load for a
  // picture that draws 4 096 of them).
  bool reads_recording_itself = false;
};

// The formats built into this binary, in --help order.
std::span<const ExportFormat> export_formats();
const ExportFormat* find_export_format(std::string_view name);
// Formats that exist in the design but are not built yet ("svg", "png").
bool is_planned_format(std::string_view name);
// "text, markdown, perfetto"
std::string format_name_list();

// Loads the session and chains, checks --chain, runs the format. Errors are one sentence
// (an unknown chain names the id and the command that lists chains).
Result<void> run_export(replay::Recording& recording, const ExportFormat& format, const ExportOptions& options,
                        Output& out);

// --- helpers shared by the text and Markdown exporters (export_common.cpp) -----------------

// Session facts as (label, value) rows, in display order: replay::session_facts (Report)
// and what this export holds (chains by outcome, what is shown).
std::vector<std::pair<std::string, std::string>> session_facts(const ExportContext& ctx);
// "IRQ 0x20" for the chain's original event, with " (root #N not recorded)" if missing.
using replay::chain_event_text;
// "delivered (#10)"
std::string chain_outcome_text(const replay::Chain& c);
// The title line of a --chain export: "Chain 1: IRQ 0x20 at L1 vcpu0, 10 events, delivered (#10)".
std::string chain_title(const replay::Chain& c);

// Member ids of a chain (0: none).
struct FlowSpan {
  uint64_t first = 0, last = 0;
};
// The first and, with `want_last`, the last member of chain `c` in the export's window / vCPU,
// by id ({0, 0}: none shown). A chain not held (replay::Chain::members_held, issue #18) keeps its
// first and last member, the answer when nothing is filtered out; otherwise its members are
// streamed from `db`, a connection the calling thread may use (replay::for_each_member).
Result<FlowSpan> shown_members(const ExportContext& ctx, db::Db& db, const replay::Chain& c, bool want_last);

// Greedy word wrap of `text` into lines of at most `width` columns: the first line starts
// with `first_prefix`, the others with `cont_prefix`. Breaks at spaces outside [...] and
// "..." first, then at any space, then anywhere. Never returns a line longer than width
// (as long as the prefixes are shorter than width).
std::vector<std::string> wrap(std::string_view text, std::string_view first_prefix, std::string_view cont_prefix,
                              size_t width);
// The same lines appended to `out`, each ending in '\n' (no vector of strings).
void wrap_to(std::string& out, std::string_view text, std::string_view first_prefix, std::string_view cont_prefix,
             size_t width);

// The exporters (one file each).
Result<void> export_text(ExportContext& ctx);
Result<void> export_markdown(ExportContext& ctx);
Result<void> export_perfetto(ExportContext& ctx);     // Perfetto's protobuf trace (perfetto_proto_export.cpp)
Result<void> export_chrome_json(ExportContext& ctx);  // Chrome trace-event JSON (perfetto_export.cpp)
// The timeline picture (or with options.histogram the latency histogram) as SVG / PNG, drawn by
// the picture module exitscope-render.so (image_export.cpp); a sentence when it cannot be loaded.
Result<void> export_svg(ExportContext& ctx);
Result<void> export_png(ExportContext& ctx);
// The first and last exported member of each chain with at least two, by chain id: a chain's
// flow arrow begins and ends there in both trace formats (perfetto_export.cpp).
Result<std::unordered_map<uint64_t, FlowSpan>> chain_flow_spans(ExportContext& ctx);
// A point event's name in both trace formats: "inject IRQ 0x20", "nested exit EPT_VIOLATION".
void append_instant_name(std::string& b, const es_record& r);

}  // namespace es::exporter
