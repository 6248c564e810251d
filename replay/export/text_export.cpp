// Plain-text export for mailing lists: ASCII only, at most 80 columns, one event per line
// (long decodes wrap onto indented continuation lines), chains grouped and indented under
// their original event with the outcome.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
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

  // Prints the chain whole: its root (or a line naming it), its members in the window, its
  // links and outcome.
  void chain(const replay::Chain& c) {
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
    // Members come from memory, not from for_each_event (except with --chain): counted here.
    if (!ctx_.only_chain && root_shown) ctx_.tick();
    for (const replay::Event& m : c.events) {
      if (root_shown && m.rec.id == c.id) continue;
      if (!ctx_.in_window(m.rec)) continue;
      put_event(out_, m, kMemberIndent, ctx_.causes);
      ++shown_;
      if (!ctx_.only_chain) ctx_.tick();
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
  std::unordered_set<uint64_t> printed_;  // with --chain
  uint64_t shown_ = 0;
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
      uint64_t key = 0;
      for (const replay::Event& e : c.events)
        if (ctx.in_window(e.rec)) {
          key = std::max<uint64_t>(e.rec.id, c.id);  // members come after their root (see above)
          break;
        }
      if (!key) continue;
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
  return true;
}

}  // namespace

Result<void> export_text(ExportContext& ctx) {
  TextWriter w(ctx);
  w.header();
  if (ctx.only_chain) {
    if (auto r = ctx.for_each_event([&](const replay::Event& ev) { w.event(ev); }); !r) return r;
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
    for (const replay::Event& e : c.events) {
      if (!ctx.in_window(e.rec)) continue;
      at.emplace_back(e.rec.id, &c);
      break;
    }
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
  w.footer();
  return {};
}

}  // namespace es::exporter
