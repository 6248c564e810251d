// Text import throughput: a generated trace-cmd report of several million lines (5.10+ VMX
// format, 4 vCPUs interleaved, EPT violations with IDT-vectoring, reinjections, page faults,
// MSR context lines), parsed into linked records (parse_trace_text), then the whole import
// into SQLite (import_text_file). Usage: import_bench [LINES] (default 3000000).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "replay/import/text_import.h"

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
    std::snprintf(buf, sizeof buf, "       CPU %u/KVM-%u  [%03u]  %llu.%06llu: kvm_inj_virq:         IRQ 0xec [reinjected]\n",
                  v, pid, v, s3, u3);
    s += buf;
    auto [s4, u4] = ts();
    std::snprintf(buf, sizeof buf,
                  "       CPU %u/KVM-%u  [%03u]  %llu.%06llu: kvm_entry:            vcpu %u, rip 0xffffffff8100%04x\n", v,
                  pid, v, s4, u4, v, static_cast<unsigned>(i & 0xffff));
    s += buf;
    i += 4;
  }
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t lines = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 3'000'000;
  std::filesystem::create_directories(ES_BENCH_TMPDIR);
  const std::string file = std::string(ES_BENCH_TMPDIR) + "/bench_trace.txt";
  const std::string db = std::string(ES_BENCH_TMPDIR) + "/bench_trace.db";
  const std::string text = generate(lines);
  std::ofstream(file, std::ios::binary) << text;
  std::printf("generated %llu lines, %.1f MB\n", static_cast<unsigned long long>(lines), text.size() / 1e6);

  es::import::ImportOptions opt;
  opt.force = true;
  double best = 1e9;
  uint64_t records = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    auto parsed = es::import::parse_trace_text(text, opt, file);
    const double s = seconds_since(t0);
    if (!parsed) {
      std::fprintf(stderr, "%s\n", parsed.error().c_str());
      return 1;
    }
    records = parsed->records.size();
    best = std::min(best, s);
  }
  std::printf("parse + link (parse_trace_text), best of 3: %.3f s = %.2f M lines/s (%llu records)\n", best,
              lines / best / 1e6, static_cast<unsigned long long>(records));

  const auto t0 = std::chrono::steady_clock::now();
  auto st = es::import::import_text_file(file, db, opt);
  const double s = seconds_since(t0);
  if (!st) {
    std::fprintf(stderr, "%s\n", st.error().c_str());
    return 1;
  }
  std::printf("whole import into SQLite (import_text_file, chains materialized): %.3f s = %.2f M lines/s\n", s,
              lines / s / 1e6);
  std::filesystem::remove(file);
  std::filesystem::remove(db);
  return 0;
}
