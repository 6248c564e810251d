// Chrome trace-event JSON ("Trace Event Format": a traceEvents array), `--format chrome`, for
// chrome://tracing (ui.perfetto.dev reads it too; `--format perfetto` writes Perfetto's own
// protobuf trace, perfetto_proto_export.cpp).
//
//  - one process per guest level (pid = level + 1, named "L1 guest"), one thread per vCPU
//    of that level (tid = pid * 100000 + vcpu, unique across processes, named "vCPU 0 (L1)");
//  - a VM exit and the next VM entry of the same vCPU and level make one "X" slice named
//    by the exit reason (an exit without a later entry ends at the session end);
//  - injections, decisions, deliveries, raises, nested exits, console output and checker
//    findings are zero-length "X" slices on their vCPU's thread; the run end is a global "i";
//  - each chain is one flow (flow v2: "bind_id" = chain id on the slices themselves, "flow_out"
//    on its first exported member, "flow_in" on its last, both on the ones between). A VM exit
//    in a chain gets a zero-length "exit REASON" slice at the exit, inside its exit-to-entry
//    slice, to carry the arrow: an arrow leaves a slice at its end, and the exit slice ends at
//    the next entry, after the decisions that follow the exit;
//  - args carry the decoded fields and the raw hardware words in hex.
// Why slices and v2: both viewers bind a flow only to a slice. Perfetto's JSON importer binds
// a v1 flow event ("s"/"t"/"f") to whatever slice is topmost on its thread's stack when the
// event is processed (flow_tracker.cc, slice_tracker.cc), which after an instant or beside a
// longer exit slice is often another event; Chrome's viewer drops a v1 step with no slice
// around its ts. A v2 flow is bound to the "X" that carries it, in both (json_trace_parser.cc
// MaybeAddFlow; catapult trace_event_importer.html createFlowSlices_). Both order a flow's
// points by ts, then by position in the file (Perfetto puts longer "X" slices first at one ts,
// so every flow point is a zero-length slice, written in id order).
// Timestamps are µs with exactly 3 decimals (ns / 1000, printed from integers); every
// object's keys come in a fixed order, so the same recording gives the same bytes.
#include <array>
#include <charconv>
#include <cstring>
#include <map>
#include <unordered_map>

#include "hv/arch/event_info.h"
#include "replay/export/export.h"
#include "replay/format.h"
#include "replay/names.h"
#include "schema/migrations.h"

namespace es::exporter {

void append_instant_name(std::string& b, const es_record& r);

namespace {

constexpr std::string_view kCat = "exitscope";

void append_u64(std::string& b, uint64_t v) {
  char tmp[24];
  auto [p, ec] = std::to_chars(tmp, tmp + sizeof tmp, v);
  (void)ec;
  b.append(tmp, static_cast<size_t>(p - tmp));
}

// JSON string; output stays ASCII (other bytes become '?'). Runs of plain characters are
// appended in one piece (most names and decodes are plain).
constexpr std::array<bool, 256> kPlainJson = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x7f; ++c) t[static_cast<size_t>(c)] = c != '"' && c != '\\';
  return t;
}();

// The body of a JSON string (no quotes).
void append_escaped(std::string& b, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (kPlainJson[c]) continue;
    b.append(s.data() + run, i - run);
    run = i + 1;
    if (c == '"' || c == '\\') {
      b += '\\';
      b += static_cast<char>(c);
    } else if (c < 0x20) {
      b += "\\u00";
      b += kHex[c >> 4];
      b += kHex[c & 15];
    } else {
      b += '?';
    }
  }
  b.append(s.data() + run, s.size() - run);
}

void append_str(std::string& b, std::string_view s) {
  b += '"';
  append_escaped(b, s);
  b += '"';
}

// A JSON string whose text `write(b)` appends straight into the output (a decode, a name),
// escaped afterwards in place. Decodes are nearly always plain: then the check is one table
// lookup per character and nothing is copied.
template <typename Write>
void append_str_with(std::string& b, Write&& write) {
  b += '"';
  const size_t start = b.size();
  write(b);
  size_t i = start;
  while (i < b.size() && kPlainJson[static_cast<unsigned char>(b[i])]) ++i;
  if (i != b.size()) {
    const std::string tail = b.substr(i);
    b.resize(i);
    append_escaped(b, tail);
  }
  b += '"';
}

// Write-combining front of the output string: the small pieces of a trace event (keys,
// punctuation, numbers, hex words) are copied into a stack buffer and appended to the string
// in one call. std::string's append checks capacity and writes a terminator on every call,
// dozens of times per event, which was a tenth of a 1 M-event export. Text written straight
// into the string (decodes) goes through str(), which flushes first, so order is kept.
class JsonOut {
 public:
  explicit JsonOut(std::string& out) : out_(out) {}
  JsonOut(const JsonOut&) = delete;
  JsonOut& operator=(const JsonOut&) = delete;
  ~JsonOut() { flush(); }

  [[gnu::always_inline]] JsonOut& operator+=(std::string_view s) {
    if (s.size() > room()) {
      flush();
      if (s.size() > kSize) {
        out_ += s;
        return *this;
      }
    }
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
    return *this;
  }
  JsonOut& operator+=(char c) {
    if (room() == 0) flush();
    *p_++ = c;
    return *this;
  }
  // At least n (<= kSize) writable bytes at the returned cursor; commit() the new end.
  [[gnu::always_inline]] char* reserve(size_t n) {
    if (n > room()) flush();
    return p_;
  }
  void commit(char* end) { p_ = end; }
  std::string& str() {
    flush();
    return out_;
  }
  void flush() {
    out_.append(buf_, static_cast<size_t>(p_ - buf_));
    p_ = buf_;
  }

 private:
  static constexpr size_t kSize = 2048;
  size_t room() const { return static_cast<size_t>(buf_ + kSize - p_); }
  std::string& out_;
  char buf_[kSize];
  char* p_ = buf_;
};

void append_u64(JsonOut& b, uint64_t v) {
  char* p = b.reserve(20);
  if (v < 10) {  // levels, vCPUs, lengths: most numbers in a trace are one digit
    *p++ = static_cast<char>('0' + v);
    b.commit(p);
    return;
  }
  b.commit(std::to_chars(p, p + 20, v).ptr);
}

void append_hex(JsonOut& b, uint64_t v) {
  char* p = b.reserve(20);
  *p++ = '"';
  *p++ = '0';
  *p++ = 'x';
  p = std::to_chars(p, p + 16, v, 16).ptr;
  *p++ = '"';
  b.commit(p);
}

// ns -> µs with 3 decimals, exact.
void append_us(JsonOut& b, uint64_t ns) {
  char* p = b.reserve(24);
  p = std::to_chars(p, p + 20, ns / 1000).ptr;
  const unsigned frac = static_cast<unsigned>(ns % 1000);
  *p++ = '.';
  *p++ = static_cast<char>('0' + frac / 100);
  *p++ = static_cast<char>('0' + frac / 10 % 10);
  *p++ = static_cast<char>('0' + frac % 10);
  b.commit(p);
}

void append_str(JsonOut& b, std::string_view s) {
  bool plain = true;
  for (const char c : s) plain = plain && kPlainJson[static_cast<unsigned char>(c)];
  if (!plain) return append_str(b.str(), s);
  b += '"';
  b += s;
  b += '"';
}

template <typename Write>
void append_str_with(JsonOut& b, Write&& write) {
  append_str_with(b.str(), write);
}

struct Track {
  uint32_t pid = 0;
  uint64_t tid = 0;
};
Track track_of(const es_record& r) {
  const uint32_t pid = r.level + 1u;
  return {pid, static_cast<uint64_t>(pid) * 100000u + r.vcpu};
}

// A member's part in its chain's flow (flow v2): the first only sends ("flow_out"), the last
// only receives ("flow_in"), the ones between do both. Perfetto: FlowTracker Begin / Step /
// End; Chrome: producer / step / consumer.
enum class FlowRole { None, Out, Step, In };

}  // namespace

// With chains loaded (--chain) from them; otherwise from the materialized chains table, or one
// grouped query on the events_origin index with the export's window and vCPU (the members
// themselves are not read twice). A chain's members are recorded in time order, so the first by
// id is also the first a viewer meets.
Result<std::unordered_map<uint64_t, FlowSpan>> chain_flow_spans(ExportContext& ctx) {
  std::unordered_map<uint64_t, FlowSpan> flows;
  if (ctx.chains_loaded) {
    for (const replay::Chain& c : ctx.chains) {
      if (ctx.only_chain && &c != ctx.only_chain) continue;
      auto sp = shown_members(ctx, ctx.recording.db(), c, true);  // a chain not held: streamed
      if (!sp) return make_error(sp.error());
      if (sp->first && sp->first != sp->last) flows[c.id] = *sp;
    }
    return flows;
  }
  const ExportOptions& o = ctx.options;
  auto read = [&](const std::string& sql) -> Result<void> {
    auto st = ctx.recording.db().prepare(sql);
    if (!st) return make_error(st.error());
    int rc;
    while ((rc = st->step()) == SQLITE_ROW) flows[st->col_u64(0)] = FlowSpan{st->col_u64(1), st->col_u64(2)};
    if (rc != SQLITE_DONE)
      return make_error(schema::describe_sqlite_error(ctx.recording.db(), "reading the chains of"));
    return {};
  };
  // The whole recording: the chains table the recorder materialized holds both ends (a tenth of
  // the time of grouping a million events).
  if (!o.vcpu && !o.from_ns && !o.to_ns) {
    if (auto r = read("SELECT id, first_event, last_event FROM chains WHERE event_count > 1"); !r)
      return make_error(r.error());
    if (!flows.empty()) return flows;
  }
  std::string sql = "SELECT origin, min(id), max(id) FROM events WHERE origin != 0";
  if (o.vcpu)  // `vcpu != 0`: the partial events_vcpu's condition (schema/indexes.sql)
    sql += " AND vcpu = " + std::to_string(*o.vcpu) + (*o.vcpu != 0 ? " AND vcpu != 0" : "");
  if (o.from_ns || o.to_ns) {
    auto window = replay::time_window_sql(ctx.recording.db(), o.from_ns, o.to_ns);
    if (!window) return make_error(window.error());
    sql += " AND " + *window;
  }
  sql += " GROUP BY origin HAVING min(id) < max(id)";
  if (auto r = read(sql); !r) return make_error(r.error());
  return flows;
}

namespace {

class PerfettoWriter {
 public:
  explicit PerfettoWriter(ExportContext& ctx) : ctx_(ctx), b_(ctx.out.buffer()) {}
  PerfettoWriter(const PerfettoWriter&) = delete;
  PerfettoWriter& operator=(const PerfettoWriter&) = delete;

  Result<void> find_flows() {
    auto spans = chain_flow_spans(ctx_);
    if (!spans) return make_error(spans.error());
    flows_ = std::move(*spans);
    return {};
  }

  void begin() {
    b_ += "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"exporter\":\"exitscope export --format perfetto\"";
    for (const auto& [label, value] : session_facts(ctx_)) {
      b_ += ',';
      append_str(b_, label);
      b_ += ':';
      append_str(b_, value);
    }
    b_ += "},\n\"traceEvents\":[";
  }

  void event(const replay::Event& ev) {
    ctx_.causes.see(ev);  // before any output: an exit's slice is written later, at its entry
    const es_record& r = ev.rec;
    const Track t = track_of(r);
    metadata(r, t);
    const FlowRole role = role_of(r);
    switch (r.kind) {
      case ES_KIND_VM_EXIT: {
        if (role != FlowRole::None) exit_point(ev, t, role);
        auto [it, fresh] = open_.try_emplace(key(r), ev);
        if (!fresh) {  // no entry recorded between two exits: the first ends at the second
          slice(it->second, r.time_ns, nullptr);
          it->second = ev;
        }
        break;
      }
      case ES_KIND_VM_ENTRY: {
        auto it = open_.find(key(r));
        if (it != open_.end()) {
          slice(it->second, r.time_ns, &ev);
          open_.erase(it);
        }
        // An entry is shown when it injects (or belongs to a chain); otherwise it only ends the slice.
        if (replay::injects_event(r) || r.origin) point(ev, t, role);
        break;
      }
      case ES_KIND_RUN_END:
        if (role == FlowRole::None) {
          global_instant(ev, t);
          break;
        }
        [[fallthrough]];
      default: point(ev, t, role); break;
    }
    b_.flush();
    ctx_.out.maybe_flush();
  }

  Result<void> end() {
    // Exits still open: end at the next entry of that vCPU and level in the whole recording
    // (outside the window / chain), else at the session end. By exit id: deterministic.
    std::map<uint64_t, const replay::Event*> left;
    for (const auto& [k, ev] : open_) left[ev.rec.id] = &ev;
    for (const auto& [id, ev] : left) {
      uint64_t end_ns = ctx_.session.last_time_ns;
      auto st = ctx_.recording.db().prepare(
          "SELECT time_ns FROM events WHERE kind = ? AND level = ? AND vcpu = ? AND id > ? ORDER BY id LIMIT 1");
      if (!st) return make_error(st.error());
      st->bind(1, static_cast<int64_t>(ES_KIND_VM_ENTRY));
      st->bind(2, static_cast<int64_t>(ev->rec.level));
      st->bind(3, static_cast<int64_t>(ev->rec.vcpu));
      st->bind(4, static_cast<int64_t>(id));
      const bool found = st->step() == SQLITE_ROW;
      if (found) end_ns = st->col_u64(0);
      slice(*ev, end_ns < ev->rec.time_ns ? ev->rec.time_ns : end_ns, nullptr,
            found ? "next entry (not exported)" : "session end");
    }
    b_ += "\n]}\n";
    b_.flush();
    return {};
  }

 private:
  static uint64_t key(const es_record& r) { return (static_cast<uint64_t>(r.level) << 16) | r.vcpu; }

  void sep() {
    if (count_++) b_ += ',';
    b_ += '\n';
  }

  void metadata(const es_record& r, const Track& t) {
    if (t.tid == last_tid_) return;  // most events stay on one vCPU: skip the lookups
    last_tid_ = t.tid;
    if (seen_processes_.try_emplace(t.pid, true).second) {
      const std::string name = "L" + std::to_string(r.level) + " guest";
      meta("process_name", t.pid, 0, "name", name);
      meta_number("process_sort_index", t.pid, 0, t.pid);
    }
    if (seen_threads_.try_emplace(t.tid, true).second) {
      meta("thread_name", t.pid, t.tid, "name",
           "vCPU " + std::to_string(r.vcpu) + " (L" + std::to_string(r.level) + ")");
      meta_number("thread_sort_index", t.pid, t.tid, r.vcpu);
    }
  }
  void meta_head(std::string_view name, uint32_t pid, uint64_t tid) {
    sep();
    b_ += "{\"name\":";
    append_str(b_, name);
    b_ += ",\"cat\":\"__metadata\",\"ph\":\"M\",\"ts\":0.000,\"pid\":";
    append_u64(b_, pid);
    b_ += ",\"tid\":";
    append_u64(b_, tid);
  }
  void meta(std::string_view name, uint32_t pid, uint64_t tid, std::string_view key, const std::string& value) {
    meta_head(name, pid, tid);
    b_ += ",\"args\":{";
    append_str(b_, key);
    b_ += ':';
    append_str(b_, value);
    b_ += "}}";
  }
  void meta_number(std::string_view name, uint32_t pid, uint64_t tid, uint64_t v) {
    meta_head(name, pid, tid);
    b_ += ",\"args\":{\"sort_index\":";
    append_u64(b_, v);
    b_ += "}}";
  }

  // The name is appended by `name(b_)` (see append_str_with).
  template <typename Name>
  void head(Name&& name, char ph, uint64_t ts_ns) {
    sep();
    b_ += "{\"name\":";
    append_str_with(b_, name);
    b_ += ",\"cat\":\"";
    b_ += kCat;
    b_ += "\",\"ph\":\"";
    b_ += ph;
    b_ += "\",\"ts\":";
    append_us(b_, ts_ns);
  }
  void where(const Track& t) {
    b_ += ",\"pid\":";
    append_u64(b_, t.pid);
    b_ += ",\"tid\":";
    append_u64(b_, t.tid);
  }

  // ,"key": from a literal: its length is a constant, so the copy is a few moves, not a call.
  template <size_t N>
  void put_key(const char (&k)[N]) {
    char* p = b_.reserve(N + 3);
    *p++ = ',';
    *p++ = '"';
    std::memcpy(p, k, N - 1);
    p += N - 1;
    *p++ = '"';
    *p++ = ':';
    b_.commit(p);
  }
  template <size_t N>
  void field_hex(const char (&k)[N], uint64_t v) {
    put_key(k);
    append_hex(b_, v);
  }
  template <size_t N>
  void field_str(const char (&k)[N], std::string_view v) {
    put_key(k);
    append_str(b_, v);
  }
  template <size_t N, typename Write>
  void field_with(const char (&k)[N], Write&& write) {
    put_key(k);
    append_str_with(b_, write);
  }
  template <size_t N>
  void field_num(const char (&k)[N], uint64_t v) {
    put_key(k);
    append_u64(b_, v);
  }

  // The args object of one record: decoded text, then the raw words of its kind in hex.
  void args(const replay::Event& ev) {
    const es_record& r = ev.rec;
    b_ += ",\"args\":{\"id\":";
    append_u64(b_, r.id);
    const std::string_view kind = replay::kind_name(r.kind);
    field_str("kind", kind.empty() ? std::string_view("unknown") : kind);
    field_with("decoded", [&](std::string& b) { replay::append_event_fields(b, ev, ctx_.causes.cause_of(ev)); });
    field_num("level", r.level);
    field_num("hv_level", r.hv_level);
    field_num("vcpu", r.vcpu);
    if (r.cause) field_num("cause", r.cause);
    if (r.origin) field_num("chain", r.origin);
    switch (r.kind) {
      case ES_KIND_VM_EXIT:
      case ES_KIND_NESTED_EXIT: {
        field_with("exit_reason", [&](std::string& b) { replay::append_exit_reason(b, r.reason, r.flags); });
        field_hex("reason_raw", r.reason);
        field_hex("qualification", r.qualification);
        {
          std::string& b = b_.str();
          const size_t mark = b.size();
          b += ",\"qualification_decoded\":";
          bool decoded = false;
          append_str_with(b, [&](std::string& s) {
            decoded = replay::append_qualification(s, r.reason, r.flags, r.qualification);
          });
          if (!decoded) b.resize(mark);
        }
        // Raw words always; their decodes and error codes only where the word says they
        // mean something (keeps a 1 M-event trace small).
        // A word the trace line did not print (record.h ES_FLAG_*_UNKNOWN) is said to be unknown,
        // not written as a 0 a reader takes for "not valid".
        const auto unknown = [](std::string& b) { b += "not in the trace"; };
        const arch::ExitIntrInfo info(r.intr_info);
        if (r.flags & ES_FLAG_EXIT_INTR_UNKNOWN) {
          field_with("intr_info", unknown);
        } else {
          field_hex("intr_info", r.intr_info);
          if (info.valid()) field_with("intr_info_decoded", [&](std::string& b) { arch::describe_to(b, info); });
          if (info.valid() && info.error_code_valid()) field_hex("intr_error", r.intr_error);
        }
        const arch::IdtVectoringInfo vec(r.idt_vectoring_info);
        if (r.flags & ES_FLAG_VECTORING_UNKNOWN) {
          field_with("idt_vectoring_info", unknown);
        } else {
          field_hex("idt_vectoring_info", r.idt_vectoring_info);
          if (vec.valid()) field_with("idt_vectoring_decoded", [&](std::string& b) { arch::describe_to(b, vec); });
          if (vec.valid() && vec.error_code_valid()) field_hex("idt_vectoring_error", r.idt_vectoring_error);
        }
        if (r.guest_phys) field_hex("guest_phys", r.guest_phys);
        if (r.guest_linear) field_hex("guest_linear", r.guest_linear);
        field_hex("rip", r.rip);
        field_num("instr_len", r.instr_len);
        break;
      }
      case ES_KIND_VM_ENTRY:
      case ES_KIND_DELIVERY:
      case ES_KIND_RAISE:
      case ES_KIND_DECISION:
        if (r.kind == ES_KIND_DECISION) {
          const std::string_view d = replay::decision_name(r.reason);
          if (d.empty())
            field_with("decision", [&](std::string& b) { append_u64(b, r.reason); });
          else
            field_str("decision", d);
        }
        field_hex("intr_info", r.intr_info);
        if (arch::EntryIntrInfo(r.intr_info).valid()) {
          field_with("intr_info_decoded",
                     [&](std::string& b) { arch::describe_to(b, arch::EntryIntrInfo(r.intr_info)); });
          if (arch::EntryIntrInfo(r.intr_info).deliver_error_code()) field_hex("intr_error", r.intr_error);
        }
        if (r.kind == ES_KIND_VM_ENTRY) field_num("instr_len", r.instr_len);
        if (r.guest_phys) field_hex("guest_phys", r.guest_phys);
        if (r.guest_linear) field_hex("guest_linear", r.guest_linear);
        field_hex("rip", r.rip);
        if (r.aux) field_hex("aux", r.aux);
        break;
      default:
        field_hex("reason_raw", r.reason);
        if (r.rip) field_hex("rip", r.rip);
        if (r.aux) field_hex("aux", r.aux);
        if (r.aux64) field_hex("aux64", r.aux64);
        break;
    }
    if (r.flags) field_hex("flags", r.flags);
    if ((r.flags & ES_FLAG_BYTES_VALID) && r.kind != ES_KIND_CONSOLE) {
      static constexpr char kHex[] = "0123456789abcdef";
      b_ += ",\"bytes\":\"";
      const unsigned n = r.aux < sizeof r.bytes ? r.aux : sizeof r.bytes;
      for (unsigned i = 0; i < n; ++i) {
        if (i) b_ += ' ';
        b_ += kHex[r.bytes[i] >> 4];
        b_ += kHex[r.bytes[i] & 15];
      }
      b_ += '"';
    }
  }

  void slice(const replay::Event& exit, uint64_t end_ns, const replay::Event* entry, std::string_view ended_by = {}) {
    const es_record& r = exit.rec;
    head([&](std::string& b) { replay::append_exit_reason(b, r.reason, r.flags); }, 'X', r.time_ns);
    b_ += ",\"dur\":";
    append_us(b_, end_ns - r.time_ns);
    where(track_of(r));
    args(exit);
    if (entry) {
      field_num("entry_id", entry->rec.id);
      field_with("entry", [&](std::string& b) { replay::append_event_fields(b, *entry); });
    } else {
      field_str("ended_by", ended_by.empty() ? std::string_view("next exit (no entry recorded)") : ended_by);
    }
    b_ += "}}";
  }

  // An event at one instant of a vCPU: a zero-length slice (both viewers show a thread
  // instant as one too, but bind flows only to "X" slices).
  void point(const replay::Event& ev, const Track& t, FlowRole role) {
    head([&](std::string& b) { append_instant_name(b, ev.rec); }, 'X', ev.rec.time_ns);
    b_ += ",\"dur\":0.000";
    where(t);
    flow_fields(ev.rec.origin, role);
    args(ev);
    b_ += "}}";
  }
  void global_instant(const replay::Event& ev, const Track& t) {
    head([&](std::string& b) { append_instant_name(b, ev.rec); }, 'i', ev.rec.time_ns);
    b_ += ",\"s\":\"g\"";
    where(t);
    args(ev);
    b_ += "}}";
  }
  // A chain's VM exit as a flow point: a zero-length "exit REASON" slice at the exit, inside
  // the exit-to-entry slice that carries the exit's fields.
  void exit_point(const replay::Event& ev, const Track& t, FlowRole role) {
    const es_record& r = ev.rec;
    head(
        [&](std::string& b) {
          b += "exit ";
          replay::append_exit_reason(b, r.reason, r.flags);
        },
        'X', r.time_ns);
    b_ += ",\"dur\":0.000";
    where(t);
    flow_fields(r.origin, role);
    b_ += ",\"args\":{\"id\":";
    append_u64(b_, r.id);
    field_str("kind", replay::kind_name(r.kind));
    field_num("chain", r.origin);
    b_ += "}}";
  }

  FlowRole role_of(const es_record& r) const {
    if (!r.origin) return FlowRole::None;
    auto it = flows_.find(r.origin);
    if (it == flows_.end()) return FlowRole::None;
    if (r.id == it->second.first) return FlowRole::Out;
    if (r.id == it->second.last) return FlowRole::In;
    return FlowRole::Step;
  }
  void flow_fields(uint64_t chain, FlowRole role) {
    if (role == FlowRole::None) return;
    b_ += ",\"bind_id\":";
    append_u64(b_, chain);
    if (role != FlowRole::Out) b_ += ",\"flow_in\":true";
    if (role != FlowRole::In) b_ += ",\"flow_out\":true";
  }

  ExportContext& ctx_;
  JsonOut b_;
  uint64_t count_ = 0;
  uint64_t last_tid_ = ~uint64_t{0};
  std::unordered_map<uint64_t, FlowSpan> flows_;      // chain -> its first and last exported member
  std::unordered_map<uint64_t, replay::Event> open_;  // exit awaiting its entry, by level/vcpu
  std::unordered_map<uint64_t, bool> seen_processes_, seen_threads_;
};

}  // namespace

// The name of a point event, shared with the protobuf writer (perfetto_proto_export.cpp):
// "inject IRQ 0x20", "REQUEUE_FROM_VECTORING IRQ 0x20", "nested exit EPT_VIOLATION".
void append_instant_name(std::string& b, const es_record& r) {
  switch (r.kind) {
    case ES_KIND_VM_ENTRY: {
      const arch::EntryIntrInfo info(r.intr_info);
      if (!info.valid()) {
        b += "VM entry";
        return;
      }
      b += "inject ";
      arch::describe_to(b, info);
      return;
    }
    case ES_KIND_DELIVERY:
      b += "deliver ";
      arch::describe_to(b, arch::EntryIntrInfo(r.intr_info));
      return;
    case ES_KIND_RAISE:
      b += "raise ";
      arch::describe_to(b, arch::EntryIntrInfo(r.intr_info));
      return;
    case ES_KIND_DECISION: {
      const std::string_view d = replay::decision_name(r.reason);
      if (d.empty()) {
        b += "decision ";
        append_u64(b, r.reason);
      } else {
        b += d;
      }
      const arch::EntryIntrInfo info(r.intr_info);
      if (info.valid()) {
        b += ' ';
        arch::describe_to(b, info);
      }
      return;
    }
    case ES_KIND_NESTED_EXIT:
      b += "nested exit ";
      replay::append_exit_reason(b, r.reason, r.flags);
      return;
    case ES_KIND_RUN_END: {
      const std::string_view e = replay::end_reason_name(r.reason);
      b += "run end: ";
      if (e.empty())
        append_u64(b, r.reason);
      else
        b += e;
      return;
    }
    default: {
      const std::string_view k = replay::kind_name(r.kind);
      if (k.empty()) {
        b += "kind ";
        append_u64(b, r.kind);
      } else {
        b += k;
      }
      return;
    }
  }
}

Result<void> export_chrome_json(ExportContext& ctx) {
  PerfettoWriter w(ctx);
  if (auto r = w.find_flows(); !r) return r;
  w.begin();
  if (auto r = ctx.for_each_event([&](const replay::Event& ev) { w.event(ev); }); !r) return r;
  return w.end();
}

}  // namespace es::exporter
