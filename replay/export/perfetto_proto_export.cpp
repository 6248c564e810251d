// Perfetto's native trace format (`--format perfetto`): a protobuf `Trace`, that is a stream of
// `TracePacket`s, which ui.perfetto.dev and trace_processor read without a JSON importer.
//
//  - a TrackDescriptor per guest level (a process: pid = level + 1, "L2 guest") and, under it,
//    one per lane, that is vCPU and observing hypervisor (a thread, "vCPU 0 · L2(L0)"), as the
//    GUI draws them (replay::lane_of), plus a "session" track for the run end;
//  - a VM exit is a slice from the exit to the next VM entry of its lane (TYPE_SLICE_BEGIN /
//    TYPE_SLICE_END); the other records are instants (TYPE_INSTANT, a zero-length slice);
//  - each chain is one flow whose id is the chain id: its members carry it in flow_ids, the last
//    one in terminating_flow_ids. trace_processor binds a TrackEvent's flow ids to the slice the
//    event itself makes (track_event_event_importer.h, MaybeParseTrackEventFlows), so no arrow
//    depends on what else is open on the track. A chain's VM exit carries its flow on an
//    "exit REASON" instant at the exit, inside the exit's slice: the UI draws an arrow from a
//    slice's end, and the exit's slice ends at the entry, after the decisions that answer it;
//  - debug annotations carry the decoded SDM fields and the raw words in hex.
// trace_processor orders the packets by timestamp, then by their place in the file (its
// sorter's (ts, chunk, offset) key for proto events, sorter/trace_sorter.h): an instant written
// after a SLICE_BEGIN at the same time is inside that slice, one written after a SLICE_END is not.
//
// Field numbers, read from google/perfetto protos/perfetto/trace/ (trace.proto, trace_packet.proto,
// track_event/track_event.proto, track_descriptor.proto, process_descriptor.proto,
// thread_descriptor.proto, debug_annotation.proto). The encoder is the protobuf wire format
// (varints, length-delimited fields, fixed64), written here; packets come in id order, the same
// recording gives the same bytes.
#include <charconv>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "hv/arch/event_info.h"
#include "replay/browse.h"
#include "replay/export/export.h"
#include "replay/format.h"
#include "replay/names.h"
#include "schema/migrations.h"

namespace es::exporter {

namespace {

namespace pf {
// Trace
constexpr uint32_t kTracePacket = 1;
// TracePacket
constexpr uint32_t kTimestamp = 8;
constexpr uint32_t kTrustedPacketSequenceId = 10;
constexpr uint32_t kTrackEvent = 11;
constexpr uint32_t kSequenceFlags = 13;
constexpr uint32_t kTrackDescriptor = 60;
constexpr uint64_t kSeqIncrementalStateCleared = 1;
constexpr uint64_t kSeqNeedsIncrementalState = 2;
// TrackDescriptor
constexpr uint32_t kUuid = 1;
constexpr uint32_t kName = 2;
constexpr uint32_t kProcess = 3;
constexpr uint32_t kThread = 4;
constexpr uint32_t kParentUuid = 5;
// ProcessDescriptor
constexpr uint32_t kProcessPid = 1;
constexpr uint32_t kProcessName = 6;
// ThreadDescriptor
constexpr uint32_t kThreadPid = 1;
constexpr uint32_t kThreadTid = 2;
constexpr uint32_t kThreadName = 5;
// TrackEvent
constexpr uint32_t kDebugAnnotations = 4;
constexpr uint32_t kType = 9;
constexpr uint32_t kTrackUuid = 11;
constexpr uint32_t kCategories = 22;
constexpr uint32_t kEventName = 23;
constexpr uint32_t kFlowIds = 47;             // repeated fixed64
constexpr uint32_t kTerminatingFlowIds = 48;  // repeated fixed64
constexpr uint64_t kSliceBegin = 1;
constexpr uint64_t kSliceEnd = 2;
constexpr uint64_t kInstant = 3;
// DebugAnnotation
constexpr uint32_t kUintValue = 3;
constexpr uint32_t kStringValue = 6;
constexpr uint32_t kAnnotationName = 10;
}  // namespace pf

// Protobuf wire format (protobuf.dev "Encoding"): a key is (field << 3 | wire type); wire type 0
// a varint, 1 eight little-endian bytes, 2 a varint length and that many bytes.
class Pb {
 public:
  void varint(uint64_t v) {
    while (v >= 0x80) {
      b_ += static_cast<char>((v & 0x7F) | 0x80);
      v >>= 7;
    }
    b_ += static_cast<char>(v);
  }
  void key(uint32_t field, unsigned wire) { varint((static_cast<uint64_t>(field) << 3) | wire); }
  void u64(uint32_t field, uint64_t v) {
    key(field, 0);
    varint(v);
  }
  void fixed64(uint32_t field, uint64_t v) {
    key(field, 1);
    for (int i = 0; i < 8; ++i) b_ += static_cast<char>((v >> (8 * i)) & 0xFF);
  }
  void bytes(uint32_t field, std::string_view s) {
    key(field, 2);
    varint(s.size());
    b_ += s;
  }
  // A nested message: written in place, its length inserted before it when it ends (a varint
  // of unknown size, so the body moves once, in place; messages here are small).
  size_t open(uint32_t field) {
    key(field, 2);
    return b_.size();
  }
  void close(size_t start) {
    uint64_t n = b_.size() - start;
    char len[10];
    size_t k = 0;
    while (n >= 0x80) {
      len[k++] = static_cast<char>((n & 0x7F) | 0x80);
      n >>= 7;
    }
    len[k++] = static_cast<char>(n);
    b_.insert(start, len, k);
  }
  std::string& str() { return b_; }
  void clear() { b_.clear(); }

 private:
  std::string b_;
};

// Track uuids: one per level (a process), one per lane (a thread under it), one for the session.
constexpr uint64_t kSessionTrack = 1;
uint64_t level_uuid(uint8_t level) { return 0x100 + level; }
uint64_t lane_uuid(const replay::Lane& l) {
  return (uint64_t{1} << 40) | (uint64_t{l.level} << 32) | (uint64_t{l.hv_level} << 24) | l.vcpu;
}
int32_t level_pid(uint8_t level) { return level + 1; }
int64_t lane_tid(const replay::Lane& l) {
  return static_cast<int64_t>(level_pid(l.level)) * 10'000'000 + l.hv_level * 100'000 + l.vcpu;
}

// Strings that come from the recording (session facts, console text inside a decode) may hold
// any byte: a protobuf string must be UTF-8, and a viewer shows what it gets. Anything but
// printable ASCII is written as \xNN text, as `events` prints it (format.h terminal_safe).
std::string_view safe(std::string_view s, std::string& scratch) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) {
      scratch = replay::terminal_safe(s);
      return scratch;
    }
  }
  return s;
}

class ProtoWriter {
 public:
  explicit ProtoWriter(ExportContext& ctx) : ctx_(ctx) {}

  // The last exported member of each chain with two or more (chain_flow_spans, as the JSON
  // writer): its flow begins at the first and terminates there.
  Result<void> find_flows() {
    auto spans = chain_flow_spans(ctx_);
    if (!spans) return make_error(spans.error());
    for (const auto& [chain, span] : *spans) last_of_flow_[chain] = span.last;
    return {};
  }

  void begin() {
    // The session track, and the session's facts as the args of an instant at its start.
    Pb& p = packet();
    const size_t td = p.open(pf::kTrackDescriptor);
    p.u64(pf::kUuid, kSessionTrack);
    std::string scratch;
    p.bytes(pf::kName, safe("session " + ctx_.recording_name(), scratch));
    p.close(td);
    emit();
    Pb& q = packet(ctx_.session.first_time_ns);
    const size_t te = q.open(pf::kTrackEvent);
    q.u64(pf::kType, pf::kInstant);
    q.u64(pf::kTrackUuid, kSessionTrack);
    q.bytes(pf::kCategories, "exitscope");
    q.bytes(pf::kEventName, "exitscope session");
    annotate(q, "exporter", "exitscope export --format perfetto");
    for (const auto& [label, value] : session_facts(ctx_)) annotate(q, label, value);
    q.close(te);
    emit();
  }

  void event(const replay::Event& ev) {
    ctx_.causes.see(ev);
    const es_record& r = ev.rec;
    const replay::Lane lane = replay::lane_of(r);
    const uint64_t track = declare(lane);
    const uint64_t lk = lane_key(lane);
    switch (r.kind) {
      case ES_KIND_VM_EXIT: {
        auto it = open_.find(lk);
        if (it != open_.end()) {  // no entry recorded between two exits: the first ends here
          end_slice(track, r.time_ns, nullptr, "next exit (no entry recorded)");
          open_.erase(it);
        }
        begin_slice(ev, track);
        open_.emplace(lk, r.id);
        if (r.origin && last_of_flow_.count(r.origin)) point(ev, track, true);
        break;
      }
      case ES_KIND_VM_ENTRY: {
        auto it = open_.find(lk);
        if (it != open_.end()) {
          end_slice(track, r.time_ns, &ev, {});
          open_.erase(it);
        }
        if (replay::injects_event(r) || r.origin) point(ev, track, false);
        break;
      }
      case ES_KIND_RUN_END: point(ev, r.origin ? track : kSessionTrack, false); break;
      default: point(ev, track, false); break;
    }
    ctx_.out.maybe_flush();
  }

  Result<void> end() {
    // Exits still open: end at the next entry of that lane in the whole recording, else at the
    // session end (a SLICE_END later in the file than events after it: trace_processor sorts
    // packets by timestamp). By exit id: deterministic.
    std::map<uint64_t, uint64_t> left;  // exit id -> lane key
    for (const auto& [k, id] : open_) left[id] = k;
    for (const auto& [id, k] : left) {
      auto ev = ctx_.recording.event(id);
      if (!ev) return make_error(ev.error());
      if (!*ev) continue;
      const es_record& x = (*ev)->rec;
      const replay::Lane lane = replay::lane_of(x);
      uint64_t end_ns = ctx_.session.last_time_ns;
      auto st = ctx_.recording.db().prepare(
          "SELECT time_ns FROM events WHERE kind = ? AND level = ? AND vcpu = ? AND hv_level = ? AND id > ? "
          "ORDER BY id LIMIT 1");
      if (!st) return make_error(st.error());
      st->bind(1, static_cast<int64_t>(ES_KIND_VM_ENTRY));
      st->bind(2, static_cast<int64_t>(x.level));
      st->bind(3, static_cast<int64_t>(x.vcpu));
      st->bind(4, static_cast<int64_t>(x.hv_level));
      st->bind(5, static_cast<int64_t>(id));
      const bool found = st->step() == SQLITE_ROW;
      if (found) end_ns = st->col_u64(0);
      end_slice(declare(lane), end_ns < x.time_ns ? x.time_ns : end_ns, nullptr,
                found ? "next entry (not exported)" : "session end");
    }
    ctx_.out.flush();
    return {};
  }

 private:
  static uint64_t lane_key(const replay::Lane& l) {
    return (uint64_t{l.level} << 32) | (uint64_t{l.hv_level} << 24) | l.vcpu;
  }

  // A packet on our one sequence; the caller fills it and calls emit().
  Pb& packet(std::optional<uint64_t> ts = std::nullopt) {
    pkt_.clear();
    if (ts) pkt_.u64(pf::kTimestamp, *ts);
    pkt_.u64(pf::kTrustedPacketSequenceId, 1);
    // As the SDK writes a sequence: the first packet clears the incremental state, the others
    // depend on it (trace_packet.proto SequenceFlags); without it trace_processor may drop
    // TrackEvents as written after a data loss.
    pkt_.u64(pf::kSequenceFlags, packets_ ? pf::kSeqNeedsIncrementalState : pf::kSeqIncrementalStateCleared);
    return pkt_;
  }
  void emit() {
    ++packets_;
    std::string& out = ctx_.out.buffer();
    // Trace.packet: key, length, the packet's bytes.
    uint64_t n = pkt_.str().size();
    out += static_cast<char>((pf::kTracePacket << 3) | 2);
    while (n >= 0x80) {
      out += static_cast<char>((n & 0x7F) | 0x80);
      n >>= 7;
    }
    out += static_cast<char>(n);
    out += pkt_.str();
  }

  // The descriptors of a lane's track (and its level's) before its first event.
  uint64_t declare(const replay::Lane& lane) {
    const uint64_t uuid = lane_uuid(lane);
    if (!tracks_.insert(uuid).second) return uuid;
    if (levels_.insert(lane.level).second) {
      Pb& p = packet();
      const size_t td = p.open(pf::kTrackDescriptor);
      p.u64(pf::kUuid, level_uuid(lane.level));
      const size_t pd = p.open(pf::kProcess);
      p.u64(pf::kProcessPid, static_cast<uint64_t>(level_pid(lane.level)));
      p.bytes(pf::kProcessName, "L" + std::to_string(lane.level) + " guest");
      p.close(pd);
      p.close(td);
      emit();
    }
    Pb& p = packet();
    const size_t td = p.open(pf::kTrackDescriptor);
    p.u64(pf::kUuid, uuid);
    p.u64(pf::kParentUuid, level_uuid(lane.level));
    const size_t thd = p.open(pf::kThread);
    p.u64(pf::kThreadPid, static_cast<uint64_t>(level_pid(lane.level)));
    p.u64(pf::kThreadTid, static_cast<uint64_t>(lane_tid(lane)));
    p.bytes(pf::kThreadName, replay::lane_label(lane));
    p.close(thd);
    p.close(td);
    emit();
    return uuid;
  }

  static void annotate(Pb& p, std::string_view name, std::string_view value) {
    std::string scratch;
    const size_t da = p.open(pf::kDebugAnnotations);
    p.bytes(pf::kAnnotationName, name);
    p.bytes(pf::kStringValue, safe(value, scratch));
    p.close(da);
  }
  // A raw hardware word, as "0x1b".
  static void annotate_hex(Pb& p, std::string_view name, uint64_t value) {
    char buf[20] = {'0', 'x'};
    char* end = std::to_chars(buf + 2, buf + sizeof buf, value, 16).ptr;
    annotate(p, name, std::string_view(buf, static_cast<size_t>(end - buf)));
  }
  static void annotate(Pb& p, std::string_view name, uint64_t value) {
    const size_t da = p.open(pf::kDebugAnnotations);
    p.bytes(pf::kAnnotationName, name);
    p.u64(pf::kUintValue, value);
    p.close(da);
  }

  // The decoded SDM fields and raw words of a record (the JSON writer's args, same names).
  void annotations(Pb& p, const replay::Event& ev) {
    const es_record& r = ev.rec;
    annotate(p, "id", r.id);
    const std::string_view kind = replay::kind_name(r.kind);
    annotate(p, "kind", kind.empty() ? std::string_view("unknown") : kind);
    std::string s;
    replay::append_event_fields(s, ev, ctx_.causes.cause_of(ev));
    annotate(p, "decoded", s);
    annotate(p, "level", replay::level_text(r));
    annotate(p, "vcpu", r.vcpu);
    if (r.cause) annotate(p, "cause", r.cause);
    if (r.origin) annotate(p, "chain", r.origin);
    switch (r.kind) {
      case ES_KIND_VM_EXIT:
      case ES_KIND_NESTED_EXIT: {
        s.clear();
        replay::append_exit_reason(s, r.reason, r.flags);
        annotate(p, "exit_reason", s);
        annotate_hex(p, "reason_raw", r.reason);
        annotate_hex(p, "qualification", r.qualification);
        s.clear();
        if (replay::append_qualification(s, r.reason, r.flags, r.qualification))
          annotate(p, "qualification_decoded", s);
        // A word the trace line did not print (record.h ES_FLAG_*_UNKNOWN) is said to be unknown,
        // not written as a 0 a reader takes for "not valid".
        const arch::ExitIntrInfo info(r.intr_info);
        if (r.flags & ES_FLAG_EXIT_INTR_UNKNOWN) {
          annotate(p, "intr_info", std::string_view("not in the trace"));
        } else {
          annotate_hex(p, "intr_info", r.intr_info);
        }
        if (info.valid() && !(r.flags & ES_FLAG_EXIT_INTR_UNKNOWN)) {
          s.clear();
          arch::describe_to(s, info);
          annotate(p, "intr_info_decoded", s);
          if (info.error_code_valid()) annotate_hex(p, "intr_error", r.intr_error);
        }
        const arch::IdtVectoringInfo vec(r.idt_vectoring_info);
        if (r.flags & ES_FLAG_VECTORING_UNKNOWN)
          annotate(p, "idt_vectoring_info", std::string_view("not in the trace"));
        else
          annotate_hex(p, "idt_vectoring_info", r.idt_vectoring_info);
        if (vec.valid() && !(r.flags & ES_FLAG_VECTORING_UNKNOWN)) {
          s.clear();
          arch::describe_to(s, vec);
          annotate(p, "idt_vectoring_decoded", s);
          if (vec.error_code_valid()) annotate_hex(p, "idt_vectoring_error", r.idt_vectoring_error);
        }
        if (r.guest_phys) annotate_hex(p, "guest_phys", r.guest_phys);
        if (r.guest_linear) annotate_hex(p, "guest_linear", r.guest_linear);
        annotate_hex(p, "rip", r.rip);
        annotate(p, "instr_len", r.instr_len);
        break;
      }
      case ES_KIND_VM_ENTRY:
      case ES_KIND_DELIVERY:
      case ES_KIND_RAISE:
      case ES_KIND_DECISION: {
        if (r.kind == ES_KIND_DECISION) {
          const std::string_view d = replay::decision_name(r.reason);
          if (d.empty())
            annotate(p, "decision", r.reason);
          else
            annotate(p, "decision", d);
        }
        const arch::EntryIntrInfo info(r.intr_info);
        annotate_hex(p, "intr_info", r.intr_info);
        if (info.valid()) {
          s.clear();
          arch::describe_to(s, info);
          annotate(p, "intr_info_decoded", s);
          if (info.deliver_error_code()) annotate_hex(p, "intr_error", r.intr_error);
        }
        if (r.kind == ES_KIND_VM_ENTRY) annotate(p, "instr_len", r.instr_len);
        if (r.guest_phys) annotate_hex(p, "guest_phys", r.guest_phys);
        if (r.guest_linear) annotate_hex(p, "guest_linear", r.guest_linear);
        annotate_hex(p, "rip", r.rip);
        if (r.aux) annotate_hex(p, "aux", r.aux);
        break;
      }
      default:
        annotate_hex(p, "reason_raw", r.reason);
        if (r.rip) annotate_hex(p, "rip", r.rip);
        if (r.aux) annotate_hex(p, "aux", r.aux);
        if (r.aux64) annotate_hex(p, "aux64", r.aux64);
        break;
    }
    if (r.flags) annotate_hex(p, "flags", r.flags);
  }

  void begin_slice(const replay::Event& ev, uint64_t track) {
    Pb& p = packet(ev.rec.time_ns);
    const size_t te = p.open(pf::kTrackEvent);
    p.u64(pf::kType, pf::kSliceBegin);
    p.u64(pf::kTrackUuid, track);
    p.bytes(pf::kCategories, "exitscope");
    std::string name;
    replay::append_exit_reason(name, ev.rec.reason, ev.rec.flags);
    p.bytes(pf::kEventName, name);
    annotations(p, ev);
    p.close(te);
    emit();
  }
  void end_slice(uint64_t track, uint64_t ts, const replay::Event* entry, std::string_view ended_by) {
    Pb& p = packet(ts);
    const size_t te = p.open(pf::kTrackEvent);
    p.u64(pf::kType, pf::kSliceEnd);
    p.u64(pf::kTrackUuid, track);
    // An end's annotations are added to the slice's args.
    if (entry) {
      annotate(p, "entry_id", entry->rec.id);
      std::string s;
      replay::append_event_fields(s, *entry);
      annotate(p, "entry", s);
    } else {
      annotate(p, "ended_by", ended_by);
    }
    p.close(te);
    emit();
  }
  // An instant; `exit_point`: the "exit REASON" instant that carries a chain's VM exit.
  void point(const replay::Event& ev, uint64_t track, bool exit_point) {
    const es_record& r = ev.rec;
    Pb& p = packet(r.time_ns);
    const size_t te = p.open(pf::kTrackEvent);
    p.u64(pf::kType, pf::kInstant);
    p.u64(pf::kTrackUuid, track);
    p.bytes(pf::kCategories, "exitscope");
    std::string name;
    if (exit_point) {
      name = "exit ";
      replay::append_exit_reason(name, r.reason, r.flags);
    } else {
      append_instant_name(name, r);
    }
    std::string scratch;
    p.bytes(pf::kEventName, safe(name, scratch));
    if (r.origin) {
      auto it = last_of_flow_.find(r.origin);
      if (it != last_of_flow_.end()) p.fixed64(it->second == r.id ? pf::kTerminatingFlowIds : pf::kFlowIds, r.origin);
    }
    if (exit_point) {
      annotate(p, "id", r.id);
      annotate(p, "chain", r.origin);
    } else {
      annotations(p, ev);
    }
    p.close(te);
    emit();
  }

  ExportContext& ctx_;
  Pb pkt_;
  uint64_t packets_ = 0;
  std::unordered_map<uint64_t, uint64_t> last_of_flow_;  // chain -> id of its last exported member
  std::unordered_map<uint64_t, uint64_t> open_;          // lane -> exit awaiting its entry
  std::unordered_set<uint64_t> tracks_;
  std::unordered_set<uint8_t> levels_;
};

}  // namespace

Result<void> export_perfetto(ExportContext& ctx) {
  ProtoWriter w(ctx);
  if (auto r = w.find_flows(); !r) return r;
  w.begin();
  if (auto r = ctx.for_each_event([&](const replay::Event& ev) { w.event(ev); }); !r) return r;
  return w.end();
}

}  // namespace es::exporter
