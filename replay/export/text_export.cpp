// Plain-text export for mailing lists: ASCII only, at most 80 columns, one event per line
// (long decodes wrap onto indented continuation lines), chains grouped and indented under
// their original event with the outcome.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_set>

#include "replay/export/export.h"
#include "replay/export/handoff.h"
#include "replay/format.h"
#include "replay/names.h"
#include "replay/recording.h"
#include "replay/chains.h"

namespace es::exporter {

namespace {

constexpr size_t kWidth = 80;
constexpr std::string_view kMemberIndent = "    ";
constexpr size_t kContinuation = 8;  // continuation lines start this far right of their event

// Anything outside printable ASCII (a guest path, a scenario label) becomes '?'.
void make_ascii(char* p, char* end) {
  for (; p != end; ++p)
    if (static_cast<unsigned char>(*p) < 0x20 || static_cast<unsigned char>(*p) > 0x7e) *p = '?';
}
std::string ascii(std::string_view s) {
  std::string out(s);
  make_ascii(out.data(), out.data() + out.size());
  return out;
}

void append_padded(std::string& b, std::string_view s, size_t width) {
  b += s;
  if (s.size() < width) b.append(width - s.size(), ' ');
}

void append_dec(std::string& b, uint64_t v) {
  char tmp[24];
  auto [p, ec] = std::to_chars(tmp, tmp + sizeof tmp, v);
  (void)ec;
  b.append(tmp, static_cast<size_t>(p - tmp));
}

// "#12    0.000001200 L1(L0) v0 VM_EXIT  " (printf's "#%-5llu %s L%u(L%u) v%u %-8s ").
void append_event_head(std::string& b, const es_record& r) {
  char id[24];
  auto [p, ec] = std::to_chars(id, id + sizeof id, r.id);
  (void)ec;
  b += '#';
  append_padded(b, std::string_view(id, static_cast<size_t>(p - id)), 5);
  b += ' ';
  replay::append_time(b, r.time_ns);
  b += " L";
  append_dec(b, r.level);
  if (r.kind != ES_KIND_DELIVERY) {  // format.h level_text: a delivery is the CPU's, "L2"
    b += "(L";
    append_dec(b, r.hv_level);
    b += ')';
  }
  b += " v";
  append_dec(b, r.vcpu);
  b += ' ';
  const std::string_view kind = replay::kind_name(r.kind);
  if (kind.empty())
    append_padded(b, "kind" + std::to_string(r.kind), 8);
  else
    append_padded(b, kind, 8);
  b += ' ';
}

// One event: its head and decoded fields written straight into the output buffer; only a line
// longer than 80 columns is copied out again to be wrapped.
void put_event(Output& out, const replay::Event& ev, std::string_view indent, replay::CauseExits& causes) {
  causes.see(ev);
  std::string& b = out.buffer();
  const size_t line_start = b.size();
  b += indent;
  append_event_head(b, ev.rec);
  const size_t fields_start = b.size();
  replay::append_event_fields(b, ev, causes.cause_of(ev));
  if (ev.rec.cause) {
    b += " cause=#";
    append_dec(b, ev.rec.cause);
  }
  make_ascii(b.data() + fields_start, b.data() + b.size());
  if (b.size() - line_start <= kWidth) {  // fits: exactly wrap()'s single line
    b += '\n';
    return;
  }
  const std::string first = b.substr(line_start, fields_start - line_start);
  const std::string fields = b.substr(fields_start);
  b.resize(line_start);
  wrap_to(b, fields, first, std::string(indent.size() + kContinuation, ' '), kWidth);
}

class TextWriter {
 public:
  explicit TextWriter(ExportContext& ctx) : ctx_(ctx), out_(ctx.out) {}

  void header() {
    if (ctx_.only_chain) {
      wrap_to(out_.buffer(), ascii(chain_title(*ctx_.only_chain)), "", "    ", kWidth);
      out_.put('\n');
    }
    out_.put("exitscope recording\n");
    for (const auto& [label, value] : session_facts(ctx_)) {
      std::string first = "  " + label + ":";
      first.resize(13, ' ');
      wrap_to(out_.buffer(), ascii(value), first, std::string(6, ' '), kWidth);  // a sha256 fits whole
    }
    out_.put('\n');
    wrap_to(out_.buffer(),
            "Events: #id, time (s), guest level (hypervisor level), vcpu, kind, decoded "
            "fields. Chain members are indented under their original event.",
            "", "", kWidth);
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
    put_event(out_, ev, "", ctx_.causes);
    ++shown_;
    out_.maybe_flush();
  }

  void footer() {
    if (shown_ == 0) out_.put("(no events match)\n");
  }

  // The first failure reading a chain's members.
  const Result<void>& status() const { return status_; }

  // The connection chains not held are read on: the recording's own, unless another thread
  // reads that one while this one prints (the streamed export: set_own_connection()); then
  // one for this thread alone, opened at the first such chain (SQLite: one thread at a time on
  // a connection).
  void set_own_connection() { own_connection_ = true; }
  Result<db::Db*> member_db() {
    if (!own_connection_) return &ctx_.recording.db();
    if (!own_) {
      auto r = replay::Recording::open(ctx_.recording.path());
      if (!r) return make_error(r.error());
      own_.emplace(std::move(r).value());
    }
    return &own_->db();
  }

  // Prints the chain whole: its root (or a line naming it), its members in the window, its
  // links and outcome. A chain not held (issue #18) is streamed from member_db(); a failure is
  // kept for status() and nothing more is printed.
  void chain(const replay::Chain& c) {
    if (!status_) return;
    db::Db* db = nullptr;
    if (!c.members_held) {
      auto d = member_db();
      if (!d) {
        status_ = make_error(d.error());
        return;
      }
      db = *d;
    }
    const bool root_shown = c.root_found && ctx_.in_window(c.root.rec);
    if (root_shown) {
      put_event(out_, c.root, "", ctx_.causes);
    } else {
      wrap_to(out_.buffer(),
              ascii("chain " + std::to_string(c.id) + ": " + chain_event_text(c) +
                    (c.root_found ? " (root #" + std::to_string(c.id) + " outside the shown range)" : "")),
              "", "    ", kWidth);
    }
    ++shown_;
    // Members come from the chain, not from for_each_event: counted here.
    if (root_shown) ctx_.tick();
    auto members = [&](const replay::Event& m) {
      if (root_shown && m.rec.id == c.id) return true;
      if (!ctx_.in_window(m.rec)) return true;
      put_event(out_, m, kMemberIndent, ctx_.causes);
      ++shown_;
      ctx_.tick();
      out_.maybe_flush();
      return true;
    };
    if (c.members_held) {
      for (const replay::Event& m : c.events) members(m);
    } else if (auto r = replay::for_each_member(*db, c, members); !r) {
      status_ = r;
      return;
    }
    if (c.interrupts_chain) {
      const Named n = named(c.interrupts_chain);
      wrap_to(out_.buffer(),
              ascii("raised during the delivery of chain " + std::to_string(c.interrupts_chain) +
                    (n.found ? " (" + n.title + ")" : "")),
              kMemberIndent, "        ", kWidth);
    }
    for (uint64_t other : c.interrupted_by) {
      const Named n = named(other);
      wrap_to(out_.buffer(),
              ascii("interrupted by chain " + std::to_string(other) +
                    (n.found ? " (" + n.title + ", " + std::string(replay::to_string(n.outcome)) + ")" : "")),
              kMemberIndent, "        ", kWidth);
    }
    wrap_to(out_.buffer(),
            ascii("=> chain " + std::to_string(c.id) + " " + chain_event_text(c) + ": " + chain_outcome_text(c) +
                  (c.inferred ? " [inferred links]" : "")),
            kMemberIndent, "        ", kWidth);
    out_.maybe_flush();
  }

  // What a chain's story says of another chain: from the chains in memory, or from the briefs
  // of a streamed walk.
  struct Named {
    bool found = false;
    std::string title;
    replay::Outcome outcome = replay::Outcome::Lost;
  };
  Named named(uint64_t id) const {
    Named n;
    if (briefs_) {
      auto it = std::lower_bound(briefs_->begin(), briefs_->end(), id,
                                 [](const ChainBrief& b, uint64_t v) { return b.id < v; });
      if (it == briefs_->end() || it->id != id) return n;
      replay::Chain tmp;
      tmp.id = it->id;
      tmp.event_word = it->event_word;
      tmp.root_found = it->root_found;
      n = {true, chain_event_text(tmp), it->outcome};
      return n;
    }
    auto it = ctx_.chain_by_id.find(id);
    if (it == ctx_.chain_by_id.end()) return n;
    return {true, chain_event_text(*it->second), it->second->outcome};
  }

 public:
  struct ChainBrief {
    uint64_t id = 0;
    uint32_t event_word = 0;
    bool root_found = false;
    replay::Outcome outcome = replay::Outcome::Lost;
  };
  const std::vector<ChainBrief>* briefs_ = nullptr;  // streamed walk: every chain read so far, by id

 private:
  ExportContext& ctx_;
  Output& out_;
  std::unordered_set<uint64_t> printed_;  // chains event() printed at a member it was handed
  uint64_t shown_ = 0;
  Result<void> status_;
  bool own_connection_ = false;
  std::optional<replay::Recording> own_;
};

// Chains handed from the walking thread to the printing one, a few at a time.
using ChainQueue = Handoff<replay::Chain, 256>;

// The whole-recording text export with the chains streamed (issue #18: memory was every chain
// and member). A second connection walks the chains in id order on its own thread while this
// one reads the events outside chains; each chain is printed where its first member in the
// window comes, exactly as from the chains in memory. That needs every chain whose first shown
// member comes before an event to have been read: a chain's members come after its root
// (origin = the root's id), so once the walk has passed id X no later chain shows anything
// before X. A chain that names a later one waits until the walk has read that one. Memory: the
// chains read ahead and not yet printed, and 16 bytes for each chain read.
// Returns false (nothing written) when no thread can be had.
Result<bool> export_text_streamed(ExportContext& ctx, TextWriter& w) {
  auto other = replay::Recording::open(ctx.recording.path());
  if (!other) return make_error(other.error());
  ChainQueue queue;
  auto walk = [&] {
    Result<void> r;
    try {
      r = replay::for_each_chain(*other, [&](const replay::Chain& c) { return queue.push(replay::Chain(c)); });
    } catch (const std::exception& e) {  // out of memory: an error, not std::terminate
      r = make_error("could not read '" + ctx.recording.path() + "': " + e.what() + ".");
    }
    queue.finish(std::move(r));
  };
  std::thread walker;
  try {
    walker = std::thread(walk);
  } catch (const std::system_error&) {
    return false;
  }
  struct Join {
    ChainQueue& q;
    std::thread& t;
    ~Join() {
      q.stop();
      replay::Chain drop;
      while (q.pop(drop)) {
      }
      t.join();
    }
  } join{queue, walker};

  std::vector<TextWriter::ChainBrief> briefs;
  w.briefs_ = &briefs;
  w.set_own_connection();
  Result<void> failure;  // finding a chain's first member in the window
  struct Waiting {
    uint64_t key;    // its first member in the window
    uint64_t named;  // the highest chain id its story names
    replay::Chain chain;
  };
  auto later = [](const Waiting& a, const Waiting& b) { return a.key > b.key; };
  std::vector<Waiting> heap;  // min-heap on key
  uint64_t walked = 0;        // id of the last chain read
  bool done = false;
  auto pull_until = [&](uint64_t id) {
    replay::Chain c;
    while (!done && walked < id) {
      if (!queue.pop(c)) {
        done = true;
        break;
      }
      walked = c.id;
      briefs.push_back({c.id, c.event_word, c.root_found, c.outcome});
      // Its first member in the window; a chain not held is streamed on this thread's own
      // connection (the recording's is read on for_each_event's reader thread).
      uint64_t first = 0;
      if (c.members_held) {
        for (const replay::Event& e : c.events)
          if (ctx.in_window(e.rec)) {
            first = e.rec.id;
            break;
          }
      } else if (auto db = w.member_db(); !db) {
        failure = make_error(db.error());
      } else if (auto sp = shown_members(ctx, **db, c, false); !sp) {
        failure = make_error(sp.error());
      } else {
        first = sp->first;
      }
      if (!first) continue;
      const uint64_t key = std::max(first, c.id);  // members come after their root (see above)
      uint64_t named = c.interrupts_chain;
      for (uint64_t o : c.interrupted_by) named = std::max(named, o);
      heap.push_back({key, named, std::move(c)});
      std::push_heap(heap.begin(), heap.end(), later);
      c = replay::Chain{};
    }
  };
  auto chains_before = [&](uint64_t id) {
    for (;;) {
      pull_until(id == UINT64_MAX ? id : id - 1);
      if (heap.empty() || heap.front().key >= id) return;
      pull_until(heap.front().named);
      std::pop_heap(heap.begin(), heap.end(), later);
      w.chain(heap.back().chain);
      heap.pop_back();
    }
  };
  auto r = ctx.for_each_event(
      [&](const replay::Event& ev) {
        chains_before(ev.rec.id);
        w.event(ev);
      },
      ExportContext::Events::OutsideChains);
  if (!r) return make_error(r.error());
  chains_before(UINT64_MAX);
  if (auto q = queue.result(); !q) return make_error(q.error());
  if (!failure) return make_error(failure.error());
  if (!w.status()) return make_error(w.status().error());
  return true;
}

}  // namespace

Result<void> export_text(ExportContext& ctx) {
  TextWriter w(ctx);
  w.header();
  if (ctx.only_chain) {
    // The chain is printed whole where its first member in the window comes, as in a whole
    // export (w.event would print it at that member and skip the others): found first, then
    // the members streamed once more, a chain not held from the recording (issue #18).
    auto sp = shown_members(ctx, ctx.recording.db(), *ctx.only_chain, false);
    if (!sp) return make_error(sp.error());
    if (sp->first) w.chain(*ctx.only_chain);
    if (!w.status()) return w.status();
    w.footer();
    return {};
  }
  if (!ctx.chains_loaded) {
    if (auto r = export_text_streamed(ctx, w); !r || *r) {
      if (!r) return make_error(r.error());
      w.footer();
      return {};
    }
    // No second thread to be had: the chains in memory, as before.
    auto chains = replay::load_chains(ctx.recording);
    if (!chains) return make_error(chains.error());
    ctx.chains = std::move(chains).value();
    for (const replay::Chain& c : ctx.chains) ctx.chain_by_id[c.id] = &c;
    ctx.chains_loaded = true;
  }
  // Every chain is printed where its first member in the window comes in id order, from the
  // chains in memory; the recording is read again only for the events outside chains (every
  // event with an origin is a member of a loaded chain), so no member row is decoded twice.
  std::vector<std::pair<uint64_t, const replay::Chain*>> at;  // (first shown member, chain)
  for (const replay::Chain& c : ctx.chains) {
    auto sp = shown_members(ctx, ctx.recording.db(), c, false);  // load_chains holds them all
    if (!sp) return make_error(sp.error());
    if (sp->first) at.emplace_back(sp->first, &c);
  }
  std::sort(at.begin(), at.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t next = 0;
  auto chains_before = [&](uint64_t id) {
    for (; next < at.size() && at[next].first < id; ++next) w.chain(*at[next].second);
  };
  auto r = ctx.for_each_event(
      [&](const replay::Event& ev) {
        chains_before(ev.rec.id);
        w.event(ev);
      },
      ExportContext::Events::OutsideChains);
  if (!r) return r;
  chains_before(UINT64_MAX);
  if (!w.status()) return w.status();
  w.footer();
  return {};
}

}  // namespace es::exporter
