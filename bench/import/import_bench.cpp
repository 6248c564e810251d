// Import throughput.
//
// Text: a generated trace-cmd report of several million lines (5.10+ VMX format, 4 vCPUs
// interleaved, EPT violations with IDT-vectoring, reinjections, page faults), measured as
//   (0) baseline: splitting the same text into lines (memchr), nothing parsed;
//   (1) parse_trace_line on every line (classification + fields, no linking);
//   (2) parse_trace_text: parse + link into records;
//   (3) import_text_file: the whole import into SQLite.
// trace.dat: a real one (a file given with --dat, or made here by running es-kvm-guest under the
// kvm tracepoints, as the tests do; needs root), measured as
//   (4) baseline: libtracecmd reading every record (tracecmd_iterate_events, nothing decoded);
//   (5) parse_trace_dat: records decoded from their fields and linked, in memory (isolate off);
//   (6) import_trace_dat_file: the whole import into SQLite, as `exitscope import` runs it (the
//       file read once in a child process first, then streamed into the recorder).
//
// Usage: import_bench [LINES] [--dat FILE | --dat-loops N] [--only text|dat] [--parse-only]
//        import_bench LINES --write-text FILE   (only writes the generated text, for end-to-end runs of
//                                                `exitscope import`: bench/import/import_e2e.sh)
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "replay/import/text_import.h"
#include "replay/import/trace_dat.h"
#include "replay/import/trace_text.h"
#include "replay/import/tracecmd_shim.h"
#include "tests/import/kvm_trace_capture.h"

namespace {

std::string generate(uint64_t lines) {
  std::string s;
  s.reserve(lines * 150);
  char buf[320];
  uint64_t t = 1'000'000'000;  // us
  for (uint64_t i = 0; i < lines;) {
    const unsigned v = static_cast<unsigned>(i / 4 % 4);
    const unsigned pid = 5000 + v;
    auto ts = [&] {
      t += 3;
      return std::pair<unsigned long long, unsigned long long>(t / 1'000'000, t % 1'000'000);
    };
    auto [s1, u1] = ts();
    std::snprintf(buf, sizeof buf,
                  "       CPU %u/KVM-%u  [%03u]  %llu.%06llu: kvm_exit:             vcpu %u reason EPT_VIOLATION rip "
                  "0xffffffff8100%04x info1 0x0000000000000182 info2 0x00000000800000ec intr_info 0x00000000 "
                  "error_code 0x00000000\n",
                  v, pid, v, s1, u1, v, static_cast<unsigned>(i & 0xffff));
    s += buf;
    auto [s2, u2] = ts();
    std::snprintf(buf, sizeof buf,
                  "       CPU %u/KVM-%u  [%03u]  %llu.%06llu: kvm_page_fault:       vcpu %u rip 0xffffffff8100%04x "
                  "address 0x0000000000%06x error_code 0x182\n",
                  v, pid, v, s2, u2, v, static_cast<unsigned>(i & 0xffff), static_cast<unsigned>(i & 0xffffff));
    s += buf;
    auto [s3, u3] = ts();
    std::snprintf(buf, sizeof buf,
                  "       CPU %u/KVM-%u  [%03u]  %llu.%06llu: kvm_inj_virq:         IRQ 0xec [reinjected]\n", v, pid, v,
                  s3, u3);
    s += buf;
    auto [s4, u4] = ts();
    std::snprintf(buf, sizeof buf,
                  "       CPU %u/KVM-%u  [%03u]  %llu.%06llu: kvm_entry:            vcpu %u, rip 0xffffffff8100%04x\n",
                  v, pid, v, s4, u4, v, static_cast<unsigned>(i & 0xffff));
    s += buf;
    i += 4;
  }
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Best wall-clock time of n runs; `cpu` gets this thread's CPU time of that run (on 2 shared
// cores the wall clock also counts time the scheduler gave to others).
double last_cpu = 0;
template <typename F>
double best_of(int n, F&& f) {
  double best = 1e9;
  for (int i = 0; i < n; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_seconds();
    f();
    const double s = seconds_since(t0);
    if (s < best) best = s, last_cpu = thread_cpu_seconds() - c0;
  }
  return best;
}

int bench_text(uint64_t lines, bool parse_only) {
  const std::string file = std::string(ES_BENCH_TMPDIR) + "/bench_trace.txt";
  const std::string db = std::string(ES_BENCH_TMPDIR) + "/bench_trace.db";
  const std::string text = generate(lines);
  std::printf("text: generated %llu lines, %.1f MB\n", static_cast<unsigned long long>(lines), text.size() / 1e6);

  volatile uint64_t sink = 0;
  const double split = best_of(3, [&] {
    uint64_t n = 0;
    for (const char* p = text.data();
         (p = static_cast<const char*>(std::memchr(p, '\n', text.data() + text.size() - p))); ++p)
      ++n;
    sink = n;
  });
  std::printf("(0) line splitting only (memchr), best of 3: %.3f s = %.0f M lines/s\n", split, lines / split / 1e6);
  const double per_line = best_of(3, [&] {
    es::import::TraceLine t;
    uint64_t events = 0;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      if (es::import::parse_trace_line(std::string_view(text).substr(pos, nl - pos), t) == es::import::LineClass::Event)
        ++events;
      pos = nl + 1;
    }
    sink = events;
  });
  std::printf("(1) parse_trace_line on every line, best of 3: %.3f s = %.2f M lines/s (CPU %.3f s = %.2f M lines/s)\n",
              per_line, lines / per_line / 1e6, last_cpu, lines / last_cpu / 1e6);

  es::import::ImportOptions opt;
  opt.force = true;
  uint64_t records = 0;
  const double parse = best_of(3, [&] {
    auto parsed = es::import::parse_trace_text(text, opt, file);
    if (!parsed) {
      std::fprintf(stderr, "%s\n", parsed.error().c_str());
      std::exit(1);
    }
    records = parsed->records.size();
  });
  std::printf(
      "(2) parse + link (parse_trace_text), best of 3: %.3f s = %.2f M lines/s (CPU %.3f s = %.2f M lines/s), "
      "%llu records; ratio (2) / (1): %.2f\n",
      parse, lines / parse / 1e6, last_cpu, lines / last_cpu / 1e6, static_cast<unsigned long long>(records),
      per_line / parse);
  if (parse_only) return 0;

  std::ofstream(file, std::ios::binary) << text;
  const auto t0 = std::chrono::steady_clock::now();
  auto st = es::import::import_text_file(file, db, opt);
  const double s = seconds_since(t0);
  if (!st) {
    std::fprintf(stderr, "%s\n", st.error().c_str());
    return 1;
  }
  std::printf("(3) whole import into SQLite (import_text_file, chains materialized): %.3f s = %.2f M lines/s\n", s,
              lines / s / 1e6);
  std::filesystem::remove(file);
  std::filesystem::remove(db);
  return 0;
}

int count_record(tep_record*, int, void* n) {
  ++*static_cast<uint64_t*>(n);
  return 0;
}

int bench_dat(std::string dat, unsigned loops, bool parse_only) {
  if (dat.empty()) {
    dat = std::string(ES_BENCH_TMPDIR) + "/bench_guest.dat";
    const auto t0 = std::chrono::steady_clock::now();
    // A ring buffer large enough for every event of the run (about 0.7 KB per loop).
    const unsigned kb = std::max(4096u, loops / 1000 * 1024 + 1024);
    const es::test::KvmTraceCapture c = es::test::capture_kvm_trace(ES_KVM_GUEST_BIN, loops, dat, kb);
    if (!c.skip.empty() || !c.error.empty()) {
      std::printf("trace.dat: not measured: %s%s\n", c.skip.c_str(), c.error.c_str());
      return c.error.empty() ? 0 : 1;
    }
    std::printf("trace.dat: es-kvm-guest --loops %u traced and extracted in %.1f s\n", loops, seconds_since(t0));
  }
  std::printf("trace.dat: %s, %.1f MB\n", dat.c_str(), std::filesystem::file_size(dat) / 1e6);

  uint64_t n = 0;
  const double base = best_of(3, [&] {
    es_tracecmd_quiet();
    tracecmd_input* h = es_tracecmd_open(dat.c_str());
    if (!h) {
      std::fprintf(stderr, "libtracecmd cannot open %s\n", dat.c_str());
      std::exit(1);
    }
    n = 0;
    es_tracecmd_iterate(h, count_record, &n);
    es_tracecmd_close(h);
  });
  std::printf(
      "(4) baseline, libtracecmd open + read every record (no decoding), best of 3: %.3f s = %.2f M events/s "
      "(CPU %.3f s), %llu events\n",
      base, n / base / 1e6, last_cpu, static_cast<unsigned long long>(n));

  es::import::TraceDatOptions opt;
  opt.import.force = true;
  es::import::TraceDatOptions in_process = opt;
  in_process.isolate = false;  // (5) measures the decoding itself, not the child read before it
  uint64_t events = 0, records = 0;
  const double parse = best_of(3, [&] {
    auto p = es::import::parse_trace_dat(dat, in_process);
    if (!p) {
      std::fprintf(stderr, "%s\n", p.error().c_str());
      std::exit(1);
    }
    events = p->stats.lines;
    records = p->records.size();
  });
  std::printf(
      "(5) decode + link (parse_trace_dat), best of 3: %.3f s = %.2f M events/s (CPU %.3f s), %llu records; "
      "ratio (5) / (4): %.2f\n",
      parse, events / parse / 1e6, last_cpu, static_cast<unsigned long long>(records), base / parse);
  if (parse_only) return 0;
  const std::string db = std::string(ES_BENCH_TMPDIR) + "/bench_dat.db";
  const auto t0 = std::chrono::steady_clock::now();
  auto st = es::import::import_trace_dat_file(dat, db, opt);
  const double s = seconds_since(t0);
  if (!st) {
    std::fprintf(stderr, "%s\n", st.error().c_str());
    return 1;
  }
  std::printf(
      "(6) whole import into SQLite (import_trace_dat_file, with the isolating child read): %.3f s = %.2f M "
      "events/s\n",
      s, events / s / 1e6);
  std::filesystem::remove(db);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t lines = 3'000'000;
  std::string dat, only;
  unsigned loops = 20000;
  bool parse_only = false;
  std::string write_text;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--dat" && i + 1 < argc)
      dat = argv[++i];
    else if (a == "--dat-loops" && i + 1 < argc)
      loops = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    else if (a == "--only" && i + 1 < argc)
      only = argv[++i];
    else if (a == "--parse-only")
      parse_only = true;
    else if (a == "--write-text" && i + 1 < argc)
      write_text = argv[++i];
    else if (a == "-h" || a == "--help") {
      std::printf("usage: import_bench [LINES] [--dat FILE | --dat-loops N] [--only text|dat] [--parse-only]\n");
      return 0;
    } else
      lines = std::strtoull(a.c_str(), nullptr, 10);
  }
  if (!write_text.empty()) {
    std::ofstream out(write_text, std::ios::binary);
    out << generate(lines);
    return out ? 0 : 1;
  }
  std::filesystem::create_directories(ES_BENCH_TMPDIR);
  int rc = 0;
  if (only.empty() || only == "text") rc |= bench_text(lines, parse_only);
  if (only.empty() || only == "dat") rc |= bench_dat(dat, loops, parse_only);
  return rc;
}
