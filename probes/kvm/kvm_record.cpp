#include "probes/kvm/kvm_record.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

#include "probes/kvm/kvm_loader.h"
#include "probes/kvm/spool.h"
#include "probes/kvm/vcpu_map.h"
#include "probes/kvm/workload.h"
#include "probes/kvm/live_stats.h"
#include "probes/recorder/recorder.h"
#include "kvmtrace/linker.h"
#include "schema/session_row.h"
#include "schema/sqlite_db.h"

namespace es::kvm {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signals{0};  // a second Ctrl-C while the backlog is written abandons it
extern "C" void on_kvm_stop_signal(int) {
  g_signals.fetch_add(1);
  g_stop.store(true);
}

uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);  // bpf_ktime_get_ns()'s clock
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

// What the running kernel's formats say about its era: kvmtrace::EraEvidence::formats_era(), the
// rule the trace.dat importer applies to a file's formats too (issue #15).
std::string formats_era(const Decoder& d) {
  kvmtrace::EraEvidence era;
  const auto& ls = d.layouts();
  const auto note = [&](int ev, kvmtrace::Tracepoint tp) {
    const auto& l = ls[static_cast<size_t>(ev)];
    if (!l) return;
    era.note_format(tp, [&](kvmtrace::Field f) {
      switch (f) {
        case kvmtrace::fIntrInfo: return l->has(kIntrInfo);
        case kvmtrace::fInfo2: return l->has(kInfo2);
        case kvmtrace::fImmediateExit: return l->has(kImmediateExit);
        case kvmtrace::fReinjected: return l->has(kReinjected);
        default: return false;
      }
    });
  };
  note(ES_KVM_EV_EXIT, kvmtrace::Tracepoint::Exit);
  note(ES_KVM_EV_ENTRY, kvmtrace::Tracepoint::Entry);
  note(ES_KVM_EV_INJ_VIRQ, kvmtrace::Tracepoint::InjVirq);
  note(ES_KVM_EV_INJ_EXCEPTION, kvmtrace::Tracepoint::InjException);
  return era.formats_era();
}

namespace {

// The stored configuration of this recording; the end part when `drops` (and `linked`) are given.
std::string config_json(const KvmProbes& p, const RecordOptions& o, uint64_t buffer_bytes, int64_t pid,
                        const std::vector<uint64_t>* drops, const kvmtrace::TraceFacts* linked, bool vcpu_guessed,
                        uint64_t undecodable, uint64_t spool_dropped = 0, uint64_t abandoned = 0,
                        const std::string& scheduling = {}) {
  KvmStoredConfig c;
  c.kernel = p.kernel_release();
  for (const AttachedEvent& a : p.attached())
    c.events.push_back({a.tracepoint, a.method, a.prototype, a.why, a.optional_missing});
  c.refused = p.refused();
  c.ring_bytes = p.ring_bytes();
  c.ring_slots = p.ring_slots();
  c.ring_cpus = p.cpus();
  c.pid = pid;
  c.vcpu = o.vcpu;
  c.duration_s = o.duration_s;
  c.buffer_bytes = buffer_bytes;
  c.scheduling = scheduling;
  if (drops) {
    c.drops_per_cpu = *drops;
    c.buffer_drops = spool_dropped;
    c.abandoned = abandoned;
  }
  if (linked) {
    c.linked = true;
    c.vendor = linked->vendor == "unknown" ? "no VM exits seen" : linked->vendor;
    c.era = formats_era(p.decoder());
    c.assumptions = linked->assumptions;
    if (vcpu_guessed)
      c.assumptions.push_back(
          "some threads name no vCPU: one vCPU per thread, numbered in order of appearance within their process");
    c.undecodable = undecodable;
    c.vcpu_map = linked->vcpu_map;
  }
  return to_json(c);
}

// sessions.config_json once the recording is complete (the recorder writes it at open).
Result<void> update_config(const std::string& path, const std::string& json) {
  auto db = db::Db::open(path, SQLITE_OPEN_READWRITE);
  if (!db) return Error{"cannot reopen '" + path + "' to store the drop counts: " + db.error()};
  auto st = db->prepare(schema::session_summary_sql());
  if (!st) return Error{"cannot store the drop counts in '" + path + "': " + st.error()};
  schema::bind_session_summary(*st, "", "", json);
  if (st->step() != SQLITE_DONE) return Error{"cannot store the drop counts in '" + path + "': " + db->errmsg()};
  return {};
}

}  // namespace

int parse_event_name(std::string_view name) {
  if (int e = event_index(name); e >= 0) return e;
  if (name.substr(0, 4) != "kvm_") return event_index("kvm_" + std::string(name));
  return -1;
}

Result<RecordResult> record_kvm(const RecordOptions& o, RecordObserver& observer) {
  auto fail = [](const std::string& msg) { return Error{msg}; };
  ProbeOptions po;
  for (const std::string& n : o.events) {
    const int e = parse_event_name(n);
    if (e < 0) {
      std::string known;
      for (std::string_view k : kEventNames) known += (known.empty() ? "" : ", ") + std::string(k);
      return fail("unknown tracepoint '" + n + "' in --events (known: " + known + ")");
    }
    po.events.push_back(e);
  }
  po.events_explicit = !o.events.empty();
  if (!parse_attach_method(o.attach, po.attach))
    return fail("--attach takes auto, tp or tp_btf, not '" + o.attach + "'");
  if (o.test_overflow) {
    po.ring_slots = 32;
  }
  // Plugins run no code as root: they are loaded once privileges are dropped (so what they
  // write belongs to you), before the recording is created. A missing or non-ELF plugin file is
  // reported here, before anything is attached.
  for (const probes::PluginSpec& s : o.plugins)
    if (auto c = probes::PluginHost::check_file(s.path); !c) return fail(c.error());
  probes::ProbeBus plugin_bus;  // fed from the pipeline thread only
  probes::PluginHost plugins(plugin_bus);
  if (::geteuid() != 0)
    return fail(
        "recording a KVM host attaches eBPF programs to the kernel's kvm tracepoints, which needs root: "
        "run it with sudo (the recording will belong to you)");
  const SudoUser user = sudo_user();

  Workload workload;
  int64_t pid = o.pid;
  if (!o.command.empty()) {
    if (auto w = workload.start(o.command, user); !w) return fail(w.error());
    pid = workload.pid();
  }
  po.filter_tgid = pid > 0 ? static_cast<uint32_t>(pid) : 0;
  po.follow_children = !o.command.empty();  // `-- sh -c "qemu ..."`: the VMM is the command's child
  auto probes = KvmProbes::open(po);
  if (!probes) return fail(probes.error());
  KvmProbes& p = **probes;
  {
    std::vector<std::string> not_tp;
    for (const AttachedEvent& a : p.attached())
      if (!a.why.empty()) not_tp.push_back(a.why);
    observer.attached(p.refused(), not_tp);
  }

  // Attached: from here on nothing needs root.
  allow_return_from_idle();
  if (auto d = drop_to(user); !d) return fail(d.error());
  if (auto l = plugins.load_all(o.plugins); !l) return fail(l.error());  // nothing recorded yet
  plugins.set_crash_note("; the recording is stopped and closed with everything decoded before");
  plugins.set_on_crash([] { g_stop.store(true); });
  const bool plugged = plugins.size() > 0;

  recorder::SessionStart info;
  info.source = recorder::Source::Kvm;
  info.guest_path = !o.command.empty() ? o.command.front() : pid > 0 ? "pid " + std::to_string(pid) : "all KVM guests";
  info.command_line = o.command_line;
  info.config_json = config_json(p, o, o.buffer_bytes, pid, nullptr, nullptr, false, 0);
  recorder::RecorderOptions ropt{.steps = o.steps};  // an empty o.steps is refused by open()
  // A deeper queue (256 Ki records, 32 MiB) than the hv source's: bursts wait here rather than
  // in the ring, whose overflow loses events.
  ropt.max_queued = 1u << 18;
  auto rec = recorder::Recorder::open(o.output, info, o.force, ropt);
  if (!rec) return fail(rec.error());

  g_stop.store(false);
  g_signals.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_kvm_stop_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);

  // The spool: at most a quarter of this machine's memory, whatever --buffer-size says.
  uint64_t buffer_bytes = o.buffer_bytes;
  if (const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE); pages > 0 && page > 0)
    buffer_bytes = std::min<uint64_t>(buffer_bytes, static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 4);
  Spool spool(buffer_bytes / sizeof(es_kvm_event));
  // Two threads besides the recorder's writer: this one drains the ring into the spool (a copy
  // per event, cheap enough to keep up with any guest), the pipeline thread decodes, links and
  // hands records to the recorder. The pipeline and the writer run at SCHED_IDLE while the
  // backlog is small (Yielder), so on a busy host the traced guests keep their CPUs.
  kvmtrace::Linker linker;
  {
    // Without kvm_entry and kvm_exit (refused, or left out by --events) their absence in the
    // recording says nothing of the host (kvmtrace::Linker::set_entries_unrecorded).
    bool entry = false, exit = false;
    for (const AttachedEvent& a : p.attached()) {
      entry |= a.event == ES_KVM_EV_ENTRY;
      exit |= a.event == ES_KVM_EV_EXIT;
    }
    if (!entry || !exit) linker.set_entries_unrecorded();
  }
  VcpuMap vcpus;
  uint64_t kvm_events = 0, filtered = 0, undecodable = 0;  // the pipeline's; read after join()
  std::set<uint32_t> vcpu_vms;  // --vcpu: the processes (VMs) whose vCPU N passed; read after join()
  const uint64_t t0 = monotonic_ns();
  const Decoder& dec = p.decoder();
  recorder::Recorder& recr = **rec;
  LiveStats live;  // --stats: fed the records the pipeline hands to the recorder
  live.set_start(t0);
  std::thread pipeline([&] {
    std::vector<es_kvm_event> chunk;
    std::vector<es_record> batch;
    while (spool.pop(chunk)) {
      for (const es_kvm_event& e : chunk) {
        kvmtrace::KvmEvent t;
        if (!dec.decode(e, t)) {
          ++undecodable;
          continue;
        }
        ++kvm_events;
        // The VM is the process (issue #16): the linker numbers (tgid, vCPU id) pairs.
        t.tgid = static_cast<int32_t>(e.tgid);
        // kvm_apic_accept_irq / kvm_eoi name their vCPU by apicid (the linker places them), and
        // an I/O thread that sends an interrupt must not become a vCPU of its own.
        const bool apic = t.event == kvmtrace::Tracepoint::ApicAcceptIrq || t.event == kvmtrace::Tracepoint::Eoi;
        if (!apic) t.vcpu = vcpus.resolve(t, e.tgid);
        if (o.vcpu >= 0 && (apic ? static_cast<int32_t>(t.apic().apicid) : t.vcpu) != o.vcpu) {
          ++filtered;
          continue;
        }
        if (o.vcpu >= 0 && !apic && vcpu_vms.size() < 8) vcpu_vms.insert(e.tgid);
        linker.add(t, e.time_ns > t0 ? e.time_ns - t0 : 0);  // no line number: recorded live
      }
      spool.done(chunk.size());
      if (o.test_slow_pipeline) ::usleep(100 * 1000);
      batch.clear();
      linker.take_settled(batch);
      if (o.stats) live.add(batch.data(), batch.size());
      if (plugged)
        for (es_record r : batch) plugin_bus.emit(r);  // a copy: the bus stamps version / id
      recr.on_records(batch.data(), batch.size());
    }
    batch.clear();
    linker.take_all(batch);
    if (o.stats) live.add(batch.data(), batch.size());
    if (plugged)
      for (es_record r : batch) plugin_bus.emit(r);
    recr.on_records(batch.data(), batch.size());
  });
  Yielder yielder(o.max_lag_s, spool.capacity(), {pipeline.native_handle(), recr.writer_thread()});
  KvmProbes::Sink sink = [&](const es_kvm_event& e) { spool.push(e); };

  workload.release();
  observer.started(p.attached().size(), o.output, pid);
  const uint64_t deadline = o.duration_s > 0 ? t0 + static_cast<uint64_t>(o.duration_s * 1e9) : 0;
  uint64_t last_report = t0;
  int workload_status = 0;
  bool workload_done = false;
  std::string end_detail = "stopped by signal";
  std::string error;
  while (true) {
    auto n = p.poll(o.test_overflow ? 0 : 50, sink);
    if (!n) {
      error = n.error();
      break;
    }
    spool.publish();
    if (o.test_overflow) ::usleep(100 * 1000);  // a consumer too slow for a 32-record ring
    const uint64_t now = monotonic_ns();
    yielder.update(spool.backlog(), spool.oldest_ns(), now);
    recr.set_source_dropped(p.drops_total() + spool.dropped());  // stored with the next batch
    if (now - last_report >= 1000000000ull) {
      observer.every_second({.now_ns = now,
                             .elapsed_ns = now - t0,
                             .seen = spool.pushed(),
                             .dropped = p.drops_total() + spool.dropped(),
                             .buffered = spool.backlog(),
                             .stats = o.stats ? &live : nullptr});
      last_report = now;
    }
    if (g_stop.load()) break;
    if (deadline && now >= deadline) {
      end_detail = "duration reached";
      break;
    }
    if (workload.exited(workload_status)) {
      workload_done = true;
      end_detail = "workload exited with status " + std::to_string(workload_status);
      break;
    }
  }
  // A signal from here on (detaching can take a while) abandons the backlog.
  const int signals_at_stop = g_signals.load();
  // Stop producing, drain everything already in the ring, then let the pipeline finish the
  // backlog at normal priority (nothing to yield to any more).
  p.detach();
  for (int i = 0; i < 1000 && error.empty(); ++i) {
    auto n = p.poll(0, sink);
    if (!n) error = n.error();
    if (!n || *n == 0) break;
  }
  spool.publish();
  spool.close();
  yielder.finish();
  while (spool.backlog() > 0) {
    if (g_signals.load() > signals_at_stop) {  // interrupted (again): keep what is written
      observer.abandoned(spool.abandon());
      break;
    }
    observer.writing_backlog(spool.backlog());
    ::usleep(200 * 1000);
  }
  pipeline.join();
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  observer.backlog_written();
  const uint64_t end_ns = monotonic_ns();

  const std::vector<uint64_t> drops = p.drops_per_cpu();
  uint64_t dropped = 0;
  for (uint64_t d : drops) dropped += d;
  dropped += spool.dropped() + spool.abandoned();
  kvmtrace::TraceFacts linked;
  linker.describe(linked);
  const std::string json = config_json(p, o, buffer_bytes, pid, &drops, &linked, vcpus.guessed(), undecodable,
                                       spool.dropped(), spool.abandoned(), yielder.summary());
  uint32_t end_reason = workload_done ? ES_END_GUEST_EXIT : ES_END_STOPPED;
  if (!error.empty()) end_detail = error;
  const auto crash = plugins.crash();
  if (crash) {
    end_reason = ES_END_STOPPED;
    end_detail = crash->describe() + "; the recording was stopped there";
  }
  observer.indexing();
  auto fin = (*rec)->finish({end_reason, end_detail, dropped});
  const auto stats = (*rec)->stats();
  rec->reset();
  if (!fin) return fail(fin.error());
  if (auto u = update_config(o.output, json); !u) return fail(u.error());
  if (!error.empty()) return fail(error + "; everything read before it is in " + o.output);
  RecordResult res;
  res.output = o.output;
  res.end_reason = end_reason;
  res.end_detail = end_detail;
  res.kvm_events = kvm_events;
  res.records = stats.written;
  res.ring_dropped = dropped - spool.dropped() - spool.abandoned();
  res.buffer_dropped = spool.dropped();
  res.abandoned = spool.abandoned();
  res.filtered = filtered;
  res.workload_failed = workload_done && workload_status != 0;
  // --stats: the whole session's table (rates over all of it).
  if (o.stats) res.stats_table = live.table(end_ns, end_ns - t0, true);
  // Silent nothing is the worst answer: say that the recording is empty and what was traced.
  if (kvm_events == 0)
    res.warnings.push_back("no KVM events were recorded" +
                           (!o.command.empty() ? " from '" + o.command.front() + "'"
                            : pid > 0          ? " from pid " + std::to_string(pid)
                                               : std::string()) +
                           "; " +
                           (!o.command.empty()
                                ? "it and the processes it starts were traced: did it run a guest (KVM_RUN)?"
                                : "did a guest run (KVM_RUN) while recording, on this kernel's KVM?"));
  // --vcpu N names a vCPU id, which every VM numbers from 0: without --pid it keeps vCPU N of
  // each VM that ran (the recording numbers them apart, issue #16). Say so rather than let a
  // second VM's events pass for the one the user meant.
  if (vcpu_vms.size() > 1) {
    std::string pids;
    for (uint32_t t : vcpu_vms) pids += (pids.empty() ? "" : ", ") + std::to_string(t);
    res.warnings.push_back("--vcpu " + std::to_string(o.vcpu) + " kept vCPU " + std::to_string(o.vcpu) + " of " +
                           (vcpu_vms.size() >= 8 ? "8 or more" : std::to_string(vcpu_vms.size())) + " VMs (processes " +
                           pids + (vcpu_vms.size() >= 8 ? ", ..." : "") +
                           "), each a vCPU of its own in the recording; give --pid PID to keep one VM's vCPU " +
                           std::to_string(o.vcpu));
  }
  observer.finished(res);
  plugins.unload_all();  // at-exit callbacks (the plugins' own output), after DB is complete
  res.plugin_crashed = plugins.crash().has_value();
  return res;
}

}  // namespace es::kvm
