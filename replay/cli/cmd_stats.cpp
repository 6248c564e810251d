// `exitscope stats`: where the guest's time goes, as `perf kvm stat report` shows it (issue #21),
// plus the event chains perf cannot see. Figures come from replay::compute_stats; this file
// parses flags and prints them as text, CSV or JSON (the same figures in each).
#include <cinttypes>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/cli/startup.h"
#include "replay/format.h"
#include "replay/names.h"
#include "replay/recording.h"
#include "replay/stats.h"

namespace es::cli {

namespace {
constexpr std::string_view kName = "stats";
constexpr OptionSpec kOptions[] = {
    {"sort", "KEY", "order of the exit tables: count (default), time, max or mean"},
    {"vcpu", "N", "only vCPU N"},
    {"level", "L", "only guest level L (1 = L1, 2 = L2)"},
    {"reason", "R", "only exits with this reason (EPT_VIOLATION, 48; on AMD npf, io, 'GP excp', 0x400)"},
    {"from", "T", "only exits, and chains whose event was raised, from session time T (ns, or 1.5us, 20ms, 2s)"},
    {"to", "T", "only exits, and chains whose event was raised, up to session time T (inclusive)"},
    {"by", "VIEW",
     "key of the exit table: reason (default), port (I/O exits), page (EPT / NPF exits by GPA page), msr, mmio (exits "
     "KVM emulated as MMIO, by address: kvm_mmio)"},
    {"format", "F", "text (default), csv or json"},
    {"histogram", "",
     "add histograms of exit-to-entry and raise-to-delivery times (log2 buckets; as a picture: "
     "'exitscope export DB --format svg|png --histogram exit|chain')"},
    {"slowest", "N", "list the N slowest chains (default 5)"},
    {"no-chains", "", "leave out the event chain figures"},
};

enum class Format { Text, Csv, Json };

std::string u64(uint64_t v) { return std::to_string(v); }

std::string us(std::optional<uint64_t> ns) { return replay::duration_us(ns); }

std::string pct(uint64_t part, uint64_t whole) { return replay::percent_text(part, whole); }

std::string opt_num(std::optional<uint64_t> v) { return v ? u64(*v) : std::string(); }

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c >= 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string csv_field(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string_view by_name(replay::StatsBy by) {
  switch (by) {
    case replay::StatsBy::Reason: return "reason";
    case replay::StatsBy::Port: return "port";
    case replay::StatsBy::Page: return "page";
    case replay::StatsBy::Msr: return "msr";
    case replay::StatsBy::Mmio: return "mmio";
  }
  return "reason";
}

uint64_t bucket_lo(size_t i) { return replay::histogram_from_ns(i); }
uint64_t bucket_hi(size_t i) { return replay::histogram_to_ns(i); }

std::string ns_short(uint64_t ns) { return replay::short_duration(ns); }

// ---- text ----

void text_table(const char* title, const std::vector<replay::ExitRow>& rows, const replay::Latency& all,
                bool level_column) {
  std::printf("\n%s\n", title);
  if (rows.empty()) {
    std::printf("  (none)\n");
    return;
  }
  std::printf("  %s%-24s %8s %7s %14s %7s %11s %11s %11s %11s %11s\n", level_column ? "LEVEL " : "", "KEY", "COUNT",
              "COUNT%", "TIME", "TIME%", "MIN", "MAX", "MEAN", "MEDIAN", "P99");
  uint64_t untimed = 0;
  std::string which;  // the rows that have untimed exits, "HLT 1, IO_INSTRUCTION 2"
  for (const replay::ExitRow& r : rows) {
    const replay::Latency& l = r.lat;
    untimed += l.count - l.timed;
    if (l.count != l.timed && l.timed)
      which += (which.empty() ? "" : ", ") + replay::terminal_safe(r.key) + ": " + u64(l.count - l.timed);
    const std::string key = replay::terminal_safe(r.key);
    std::printf("  %s%-24s %8" PRIu64 " %7s %14s %7s %11s %11s %11s %11s %11s\n",
                level_column ? ("L" + std::to_string(r.level) + std::string(4, ' ')).substr(0, 6).c_str() : "",
                key.c_str(), l.count, pct(l.count, all.count).c_str(), l.timed ? us(l.total_ns).c_str() : "unknown",
                l.timed ? pct(l.total_ns, all.total_ns).c_str() : "-", us(l.min_ns).c_str(), us(l.max_ns).c_str(),
                us(l.mean_ns).c_str(), us(l.median_ns).c_str(), us(l.p99_ns).c_str());
  }
  std::printf("  %s%-24s %8" PRIu64 " %7s %14s\n", level_column ? "      " : "", "total", all.count, "100.00",
              all.timed ? us(all.total_ns).c_str() : "unknown");
  if (untimed)
    std::printf("  %" PRIu64
                " of these exits %s no later entry of their vCPU and level: their time is unknown "
                "and left out of the times%s%s%s.\n",
                untimed, untimed == 1 ? "has" : "have", which.empty() ? "" : " (", which.c_str(),
                which.empty() ? "" : ")");
}

void text_histogram(const char* title, const char* what, const std::vector<uint64_t>& buckets, uint64_t known) {
  std::printf("\n%s (%" PRIu64 " %s with a known time)\n", title, known, what);
  if (known == 0) std::printf("  (none has a known time)\n");
  uint64_t peak = 0;
  for (uint64_t n : buckets) peak = std::max(peak, n);
  size_t first = 0;
  while (first < buckets.size() && buckets[first] == 0) ++first;
  for (size_t i = first; i < buckets.size(); ++i) {
    const uint64_t n = buckets[i];
    const size_t bar = peak ? static_cast<size_t>((n * 50 + peak - 1) / peak) : 0;
    std::printf("  [%8s, %8s) %8" PRIu64 " |%s\n", ns_short(bucket_lo(i)).c_str(), ns_short(bucket_hi(i)).c_str(), n,
                std::string(bar, '#').c_str());
  }
}

void print_text(const replay::Stats& s, const replay::StatsOptions& opt, const std::string& path, bool histogram) {
  std::printf("recording:  %s\n", replay::terminal_safe(path).c_str());
  std::printf(
      "time:       from a VM exit to the next VM entry of the same vCPU and level (perf kvm stat's "
      "exit-to-entry)\n");
  if (s.entries == 0 && s.all_exits.count)
    std::printf(
        "times:      unknown: the recording has no VM entry records (a trace without kvm_entry lines), so "
        "no exit-to-entry time can be measured\n");
  const char* title =
      opt.by == replay::StatsBy::Reason ? "VM exits by reason"
      : opt.by == replay::StatsBy::Port ? "I/O exits by port"
      : opt.by == replay::StatsBy::Page ? "EPT violation / misconfig and NPF exits by guest-physical page"
      : opt.by == replay::StatsBy::Msr  ? "MSR exits by MSR (from kvm_msr records)"
                                        : "MMIO exits by guest-physical address and direction (from kvm_mmio records)";
  text_table(title, s.exits, s.all_exits, true);
  if (!s.nested_exits.empty()) {
    text_table("Nested exits (L2 -> L1) by reason; time = until L1 enters L2 again (next nested entry)", s.nested_exits,
               s.all_nested, true);
    if (s.nested_entries == 0) std::printf("  times unknown: the recording has no nested entry records.\n");
  }
  replay::Latency all_vcpu;
  for (const replay::ExitRow& r : s.by_vcpu) {
    all_vcpu.count += r.lat.count;
    all_vcpu.total_ns += r.lat.total_ns;
    all_vcpu.timed += r.lat.timed;
  }
  text_table("VM exits by vCPU", s.by_vcpu, all_vcpu, false);
  text_table("VM exits by level", s.by_level, all_vcpu, false);

  if (histogram) {
    text_histogram("Exit-to-entry time histogram", "VM exits", s.histogram, s.all_exits.timed);
    if (opt.chains) {
      uint64_t delivered = 0;
      for (uint64_t n : s.chain_histogram) delivered += n;
      text_histogram("Raise-to-delivery time histogram", "delivered chains", s.chain_histogram, delivered);
    }
  }

  if (!opt.chains) return;
  std::printf("\nEvent chains: %" PRIu64
              " (time = raise -> delivery through the guest IDT; exits = VM exits "
              "during its delivery, IDT-vectoring)\n",
              s.chains);
  // Exits whose line does not print IDT-vectoring hide the events being delivered through them.
  auto vectoring_note = [&] {
    if (s.exits_without_vectoring)
      std::printf("  %" PRIu64
                  " VM exit%s say%s nothing of IDT-vectoring in the trace (kvm_exit before Linux 5.10, or "
                  "trace-cmd's 'info A B'): an event being delivered there is not seen and its delivery is assumed at "
                  "the next exit, so the chains and their times are approximate and EXITS and REINJECTED lower "
                  "bounds.\n",
                  s.exits_without_vectoring, s.exits_without_vectoring == 1 ? "" : "s",
                  s.exits_without_vectoring == 1 ? "s" : "");
  };
  if (s.chain_kinds.empty()) {
    std::printf("  (none)\n");
    vectoring_note();
    return;
  }
  std::printf("  %-24s %8s %9s %11s %11s %11s %7s %10s\n", "EVENT", "CHAINS", "DELIVERED", "MIN", "MEAN", "MAX",
              "EXITS", "REINJECTED");
  for (const replay::ChainKindRow& k : s.chain_kinds)
    std::printf("  %-24s %8" PRIu64 " %9" PRIu64 " %11s %11s %11s %7" PRIu64 " %10" PRIu64 "\n", k.key.c_str(), k.count,
                k.delivered, us(k.min_ns).c_str(), us(k.mean_ns).c_str(), us(k.max_ns).c_str(), k.exits,
                k.reinjections);
  vectoring_note();
  if (!s.slowest.empty()) {
    std::printf("\nSlowest chains (open one with 'exitscope chains %s --chain N')\n",
                replay::terminal_safe(path).c_str());
    for (const replay::SlowChain& c : s.slowest)
      std::printf("  chain %-8" PRIu64 " %-16s %11s  exits %" PRIu64 "  reinjections %" PRIu64 "  %.*s\n", c.id,
                  c.key.c_str(), us(c.time_ns).c_str(), c.exits, c.reinjections,
                  static_cast<int>(replay::to_string(c.outcome).size()), replay::to_string(c.outcome).data());
  }
}

// ---- csv ----

constexpr const char* kCsvHeader =
    "section,level,key,value,count,count_pct,timed,time_ns,time_pct,min_ns,max_ns,mean_ns,median_ns,p99_ns,"
    "delivered,exits,reinjections\n";

void csv_rows(const char* section, const std::vector<replay::ExitRow>& rows, const replay::Latency& all,
              replay::StatsBy by) {
  for (const replay::ExitRow& r : rows) {
    const replay::Latency& l = r.lat;
    const std::string value = by == replay::StatsBy::Reason ? u64(r.reason)
                              : r.value == UINT64_MAX       ? std::string()
                                                            : u64(r.value);
    std::printf(
        "%s,%u,%s,%s,%" PRIu64 ",%s,%" PRIu64 ",%s,%s,%s,%s,%s,%s,%s,,,\n", section, r.level, csv_field(r.key).c_str(),
        value.c_str(), l.count, pct(l.count, all.count).c_str(), l.timed, l.timed ? u64(l.total_ns).c_str() : "",
        l.timed && all.total_ns ? pct(l.total_ns, all.total_ns).c_str() : "", opt_num(l.min_ns).c_str(),
        opt_num(l.max_ns).c_str(), opt_num(l.mean_ns).c_str(), opt_num(l.median_ns).c_str(), opt_num(l.p99_ns).c_str());
  }
}

void print_csv(const replay::Stats& s, const replay::StatsOptions& opt, bool histogram) {
  std::fputs(kCsvHeader, stdout);
  const std::string section(by_name(opt.by));
  csv_rows(opt.by == replay::StatsBy::Reason ? "exit" : section.c_str(), s.exits, s.all_exits, opt.by);
  csv_rows("nested_exit", s.nested_exits, s.all_nested, replay::StatsBy::Reason);
  replay::Latency all;
  for (const replay::ExitRow& r : s.by_vcpu) {
    all.count += r.lat.count;
    all.total_ns += r.lat.total_ns;
  }
  csv_rows("vcpu", s.by_vcpu, all, replay::StatsBy::Port);
  csv_rows("level", s.by_level, all, replay::StatsBy::Port);
  if (histogram)
    for (size_t i = 0; i < s.histogram.size(); ++i)
      std::printf("histogram,,%s,%" PRIu64 ",%" PRIu64 ",,,,,%" PRIu64 ",%" PRIu64 ",,,,,,\n",
                  csv_field("[" + ns_short(bucket_lo(i)) + ", " + ns_short(bucket_hi(i)) + ")").c_str(), bucket_lo(i),
                  s.histogram[i], bucket_lo(i), bucket_hi(i));
  if (!opt.chains) return;
  if (histogram)
    for (size_t i = 0; i < s.chain_histogram.size(); ++i)
      std::printf("chain_histogram,,%s,%" PRIu64 ",%" PRIu64 ",,,,,%" PRIu64 ",%" PRIu64 ",,,,,,\n",
                  csv_field("[" + ns_short(bucket_lo(i)) + ", " + ns_short(bucket_hi(i)) + ")").c_str(), bucket_lo(i),
                  s.chain_histogram[i], bucket_lo(i), bucket_hi(i));
  for (const replay::ChainKindRow& k : s.chain_kinds)
    std::printf("chain_kind,,%s,%u,%" PRIu64 ",,%" PRIu64 ",%s,,%s,%s,%s,,,%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\n",
                csv_field(k.key).c_str(), k.event_word & 0x7FF, k.count, k.delivered,
                k.delivered ? u64(k.total_ns).c_str() : "", opt_num(k.min_ns).c_str(), opt_num(k.max_ns).c_str(),
                opt_num(k.mean_ns).c_str(), k.delivered, k.exits, k.reinjections);
  for (const replay::SlowChain& c : s.slowest)
    std::printf("slow_chain,,%s,%" PRIu64 ",1,,1,%" PRIu64 ",,,,,,,1,%" PRIu64 ",%" PRIu64 "\n",
                csv_field(c.key).c_str(), c.id, c.time_ns, c.exits, c.reinjections);
}

// ---- json ----

// Writes JSON as a tree is walked: the writer places the commas and the nesting, escapes every
// string (json_string) and writes every number from an integer, so no call site splices JSON text.
// One object per line inside arrays, to keep the output readable and diffable.
class JsonWriter {
 public:
  void begin_object(std::string_view key = {}) { open(key, '{'); }
  void end_object() { close('}'); }
  void begin_array(std::string_view key = {}) { open(key, '['); }
  void end_array() { close(']'); }
  void field(std::string_view key, std::string_view text) { put(key, json_string(text)); }
  void field(std::string_view key, const char* text) { field(key, std::string_view(text)); }
  void field(std::string_view key, uint64_t v) { put(key, u64(v)); }
  void field(std::string_view key, std::optional<uint64_t> v) { put(key, v ? u64(*v) : "null"); }
  void field(std::string_view key, bool v) { put(key, v ? "true" : "false"); }
  // A share in percent (two decimals, as text and csv print it), null when the whole is zero.
  void percent(std::string_view key, uint64_t part, uint64_t whole) {
    const std::string p = pct(part, whole);
    put(key, p == "-" ? "null" : p);
  }
  void null(std::string_view key) { put(key, "null"); }
  std::string take() { return std::move(out_) + "\n"; }

 private:
  void separator() {
    if (stack_.empty()) return;
    const bool first = first_.back();
    if (!first) out_ += ',';
    first_.back() = false;
    // Members of the top object and items of arrays start a line; an item object's members do not.
    if (stack_.size() == 1 || stack_.back() == '[')
      out_ += "\n" + std::string(2 * stack_.size(), ' ');
    else if (!first)
      out_ += ' ';
  }
  void put(std::string_view key, std::string_view value) {
    separator();
    if (!key.empty()) (out_ += json_string(key)) += ": ";
    out_ += value;
  }
  void open(std::string_view key, char bracket) {
    put(key, std::string_view(&bracket, 1));
    stack_.push_back(bracket);
    first_.push_back(true);
  }
  void close(char bracket) {
    const bool empty = first_.back();
    stack_.pop_back();
    first_.pop_back();
    if (!empty && (stack_.empty() || bracket == ']')) out_ += "\n" + std::string(2 * stack_.size(), ' ');
    out_ += bracket;
  }
  std::string out_;
  std::vector<char> stack_;
  std::vector<bool> first_;
};

void json_latency(JsonWriter& j, const replay::Latency& l) {
  j.field("count", l.count);
  j.field("timed", l.timed);
  j.field("time_ns", l.timed ? std::optional<uint64_t>(l.total_ns) : std::nullopt);
  j.field("min_ns", l.min_ns);
  j.field("max_ns", l.max_ns);
  j.field("mean_ns", l.mean_ns);
  j.field("median_ns", l.median_ns);
  j.field("p99_ns", l.p99_ns);
}

void json_rows(JsonWriter& j, const std::vector<replay::ExitRow>& rows, const replay::Latency& all,
               replay::StatsBy by) {
  j.begin_array("rows");
  for (const replay::ExitRow& r : rows) {
    const replay::Latency& l = r.lat;
    j.begin_object();
    j.field("level", uint64_t{r.level});
    j.field("key", r.key);
    if (by == replay::StatsBy::Reason) {
      j.field("reason", uint64_t{r.reason});
      j.field("svm", (r.flags & ES_FLAG_SVM) != 0);
    } else {
      j.field("value", r.value == UINT64_MAX ? std::nullopt : std::optional<uint64_t>(r.value));
    }
    j.field("count", l.count);
    j.percent("count_pct", l.count, all.count);
    j.field("timed", l.timed);
    j.field("time_ns", l.timed ? std::optional<uint64_t>(l.total_ns) : std::nullopt);
    if (l.timed)
      j.percent("time_pct", l.total_ns, all.total_ns);
    else
      j.null("time_pct");
    j.field("min_ns", l.min_ns);
    j.field("max_ns", l.max_ns);
    j.field("mean_ns", l.mean_ns);
    j.field("median_ns", l.median_ns);
    j.field("p99_ns", l.p99_ns);
    j.end_object();
  }
  j.end_array();
}

void print_json(const replay::Stats& s, const replay::StatsOptions& opt, const std::string& path, bool histogram,
                uint64_t dropped) {
  replay::Latency all;
  for (const replay::ExitRow& r : s.by_vcpu) {
    all.count += r.lat.count;
    all.total_ns += r.lat.total_ns;
  }
  JsonWriter j;
  j.begin_object();
  j.field("recording", path);
  j.field("by", by_name(opt.by));
  j.field("records_dropped", dropped);
  j.field("vm_entries", s.entries);
  j.field("nested_entries", s.nested_entries);
  j.field("times_known", s.all_exits.timed != 0);
  j.begin_object("exits");
  json_latency(j, s.all_exits);
  json_rows(j, s.exits, s.all_exits, opt.by);
  j.end_object();
  j.begin_object("nested_exits");
  json_latency(j, s.all_nested);
  json_rows(j, s.nested_exits, s.all_nested, replay::StatsBy::Reason);
  j.end_object();
  j.begin_object("vcpus");
  json_rows(j, s.by_vcpu, all, replay::StatsBy::Port);
  j.end_object();
  j.begin_object("levels");
  json_rows(j, s.by_level, all, replay::StatsBy::Port);
  j.end_object();
  if (histogram) {
    j.begin_array("histogram");
    for (size_t i = 0; i < s.histogram.size(); ++i) {
      j.begin_object();
      j.field("from_ns", bucket_lo(i));
      j.field("to_ns", bucket_hi(i));
      j.field("count", s.histogram[i]);
      j.end_object();
    }
    j.end_array();
  }
  if (opt.chains) {
    j.begin_object("chains");
    j.field("count", s.chains);
    if (histogram) {
      j.begin_array("histogram");
      for (size_t i = 0; i < s.chain_histogram.size(); ++i) {
        j.begin_object();
        j.field("from_ns", bucket_lo(i));
        j.field("to_ns", bucket_hi(i));
        j.field("count", s.chain_histogram[i]);
        j.end_object();
      }
      j.end_array();
    }
    j.begin_array("kinds");
    for (const replay::ChainKindRow& k : s.chain_kinds) {
      j.begin_object();
      j.field("key", k.key);
      j.field("vector", uint64_t{k.event_word & 0xFF});
      j.field("type", uint64_t{(k.event_word >> 8) & 7});
      j.field("count", k.count);
      j.field("delivered", k.delivered);
      j.field("time_ns", k.delivered ? std::optional<uint64_t>(k.total_ns) : std::nullopt);
      j.field("min_ns", k.min_ns);
      j.field("mean_ns", k.mean_ns);
      j.field("max_ns", k.max_ns);
      j.field("exits", k.exits);
      j.field("reinjections", k.reinjections);
      j.end_object();
    }
    j.end_array();
    j.begin_array("slowest");
    for (const replay::SlowChain& c : s.slowest) {
      j.begin_object();
      j.field("chain", c.id);
      j.field("key", c.key);
      j.field("time_ns", c.time_ns);
      j.field("exits", c.exits);
      j.field("reinjections", c.reinjections);
      j.field("outcome", replay::to_string(c.outcome));
      j.end_object();
    }
    j.end_array();
    j.end_object();
  }
  j.end_object();
  std::fputs(j.take().c_str(), stdout);
}

}  // namespace

int cmd_stats(int argc, char** argv) {
  const CommandSpec kSpec{kName, "DB [OPTIONS]",
                          "Where the guest's time goes, as 'perf kvm stat report' shows it: per exit reason\n"
                          "(VMX and SVM names; nested exits apart), per vCPU and per level, the count, its share,\n"
                          "the time spent outside the guest and its share, and min / max / mean / median / p99\n"
                          "exit-to-entry time (an exit's time runs to the next VM entry of the same vCPU and\n"
                          "level; median and p99 are nearest-rank). Then per event chain kind (IRQ, NMI, #PF ...):\n"
                          "raise-to-delivery time, exits and reinjections on the way, and the slowest chains.\n"
                          "Times are 'unknown', never zero, where the recording has no entry after an exit\n"
                          "(a trace without kvm_entry lines). Text times are in microseconds; csv and json\n"
                          "give the same figures in ns.\n"
                          "--from / --to select exits by the time of the exit, and chains by the time their\n"
                          "event was raised (the chain's root record; the first recorded member when the root\n"
                          "is missing), so a chain raised inside the window counts even if it is delivered\n"
                          "after it, and one raised before it does not.",
                          kOptions};
  auto args = start_command(kSpec, argc, argv);
  if (!args) return args.exit_code;
  replay::StatsOptions opt;
  int rc = 0;
  std::optional<uint64_t> v;
  if (!number_option(kName, *args, "vcpu", 65535, v, rc)) return rc;
  if (v) opt.vcpu = static_cast<uint16_t>(*v);
  v.reset();
  if (!number_option(kName, *args, "level", 255, v, rc)) return rc;
  if (v) opt.level = static_cast<uint8_t>(*v);
  v.reset();
  if (!number_option(kName, *args, "slowest", 1000, v, rc)) return rc;
  if (v) opt.slowest_chains = static_cast<size_t>(*v);
  if (auto r = args->get("reason")) {
    replay::EventFilter f;
    if (auto ok = replay::set_reason(f, *r); !ok)
      return usage_error(kName, ok.error().substr(0, ok.error().size() - 1));
    if (f.decision) return usage_error(kName, "'--reason " + *r + "' names a decision, not an exit reason");
    opt.reason = f;
  }
  for (const char* name : {"from", "to"}) {
    if (auto t = args->get(name)) {
      auto ns = replay::parse_time_ns(*t);
      if (!ns)
        return usage_error(kName, "option '--" + std::string(name) +
                                      "' needs a time such as 1500, 1.5us, 20ms or 2s, not '" + *t + "'");
      (std::string_view(name) == "from" ? opt.from_ns : opt.to_ns) = *ns;
    }
  }
  if (opt.from_ns && opt.to_ns && *opt.from_ns > *opt.to_ns)
    return usage_error(kName, "'--from' is after '--to': the time window is empty");
  replay::StatsSort sort = replay::StatsSort::Count;
  if (auto s = args->get("sort")) {
    if (*s == "count")
      sort = replay::StatsSort::Count;
    else if (*s == "time")
      sort = replay::StatsSort::Time;
    else if (*s == "max")
      sort = replay::StatsSort::Max;
    else if (*s == "mean")
      sort = replay::StatsSort::Mean;
    else
      return usage_error(kName, "unknown sort key '" + *s + "' for '--sort' (one of count, time, max, mean)");
  }
  if (auto b = args->get("by")) {
    if (*b == "reason")
      opt.by = replay::StatsBy::Reason;
    else if (*b == "port")
      opt.by = replay::StatsBy::Port;
    else if (*b == "page")
      opt.by = replay::StatsBy::Page;
    else if (*b == "msr")
      opt.by = replay::StatsBy::Msr;
    else if (*b == "mmio")
      opt.by = replay::StatsBy::Mmio;
    else
      return usage_error(kName, "unknown view '" + *b + "' for '--by' (one of reason, port, page, msr, mmio)");
  }
  Format format = Format::Text;
  if (auto f = args->get("format")) {
    if (*f == "text")
      format = Format::Text;
    else if (*f == "csv")
      format = Format::Csv;
    else if (*f == "json")
      format = Format::Json;
    else
      return usage_error(kName, "unknown format '" + *f + "' for '--format' (one of text, csv, json)");
  }
  opt.chains = !args->has("no-chains");
  const bool histogram = args->has("histogram");

  auto rec = open_recording(kName, args->positional[0]);
  if (!rec) return 2;
  // Records the recording never got are missing from every figure: say so first, with the
  // counts `exitscope info` shows (csv / json carry them as fields).
  auto drops = rec->drop_counts();
  if (!drops) {
    std::fprintf(stderr, "exitscope stats: %s\n", drops.error().c_str());
    return 2;
  }
  if (drops->total() && format == Format::Text)
    std::printf("# %" PRIu64 " records were dropped while recording (%" PRIu64 " by the recorder, %" PRIu64
                " by the source): these figures have gaps.\n",
                drops->total(), drops->recorder, drops->source);
  auto st = replay::compute_stats(*rec, opt);
  if (!st) {
    std::fprintf(stderr, "exitscope stats: %s\n", st.error().c_str());
    return 2;
  }
  if (!st->notice.empty()) std::fprintf(stderr, "exitscope stats: %s\n", replay::terminal_safe(st->notice).c_str());
  replay::sort_rows(st->exits, sort);
  replay::sort_rows(st->nested_exits, sort);
  switch (format) {
    case Format::Text: print_text(*st, opt, rec->path(), histogram); break;
    case Format::Csv: print_csv(*st, opt, histogram); break;
    case Format::Json: print_json(*st, opt, rec->path(), histogram, drops->total()); break;
  }
  return 0;
}

}  // namespace es::cli
