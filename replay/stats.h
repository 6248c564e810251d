// Where the guest's time goes (issue #21): `perf kvm stat report`'s figures from a recording,
// plus what perf cannot say (event chains). Qt-free; the CLI (replay/cli/cmd_stats.cpp) prints.
//
// An exit's time is the time outside the guest: from the VM exit to the next VM entry of the
// same vCPU and level (KVM's kvm_exit -> kvm_entry, perf kvm stat's "exit-to-entry"). A nested
// exit (ES_KIND_NESTED_EXIT, L2 -> L1) runs likewise until the next NESTED_ENTRY of the same vCPU
// and level, i.e. L1's handling of it. An exit with no later entry has an unknown time (a trace
// without kvm_entry lines has only unknown times): it counts, its time is never taken as zero.
//
// Reading streams: one SQL query over exits and entries in id order (the events_exit_entry
// covering index where the recording has it), then one over the chains table's stored figures
// (schema v3; older files walk the chains' events instead). What stays in memory: per row of the
// exit tables its distinct exit-to-entry times with their counts (for the exact median and p99;
// at most one per timed exit, a handful per reason in hv recordings), the exits still waiting for
// their entry (one per vCPU and level), the chain-kind table and the few slowest chains.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <cstddef>
#include <string>
#include <vector>

#include "replay/chains.h"
#include "replay/recording.h"
#include "schema/result.h"

namespace es::replay {

// What a row of the exit table is keyed by (`stats --by`).
enum class StatsBy : uint8_t {
  Reason,  // exit reason (VMX basic reason with its flag bits, or SVM exit code)
  Port,    // I/O exits by port: VMX IO_INSTRUCTION qualification [31:16] (SDM Vol. 3C 28.2.1 Table 28-5),
           // SVM IOIO EXITINFO1 [31:16] (APM Vol. 2 15.10.2)
  Page,    // EPT violation / misconfiguration and SVM NPF exits by guest-physical page (GPA >> 12)
  Msr,     // RDMSR / WRMSR exits (VMX 31 / 32, SVM MSR 0x7c) by MSR index, from the kvm_msr record
           // of that exit (recordings without one: "unknown")
  Mmio,    // exits KVM handled as MMIO (perf kvm stat's mmio view), by guest-physical address and
           // direction, from the first kvm_mmio record of the exit (a read's "unsatisfied-read"
           // comes first, its completion later; both before the next entry); other exits are left out
};

// Which exits to list by id (Stats::picked), chosen by the same pass that makes the figures, so
// a GUI click on a row or a histogram bar selects exactly the exits that row or bar counts.
struct StatsPick {
  // Histogram: VM exits by exit-to-entry bucket; ChainHistogram: delivered chains by
  // raise-to-delivery bucket (their root records' ids, or first members' where a root is missing).
  enum class Table : uint8_t { Exits, NestedExits, Histogram, ChainHistogram };
  Table table = Table::Exits;
  uint8_t level = 0;  // Exits / NestedExits: the row's level and key (ExitRow::level, ::key)
  std::string key;
  unsigned bucket = 0;  // Histogram / ChainHistogram: the bucket (histogram_from_ns / _to_ns)
};

struct StatsOptions {
  std::optional<uint16_t> vcpu;
  std::optional<uint8_t> level;
  // Exit selection as `events --reason` resolves it (set_reason); only its exit members are used.
  std::optional<EventFilter> reason;
  std::optional<uint64_t> from_ns, to_ns;  // exits (and chain roots) whose time is in [from, to]
  StatsBy by = StatsBy::Reason;
  bool chains = true;             // walk the chains too
  size_t slowest_chains = 5;      // how many of the slowest chains to keep
  std::optional<StatsPick> pick;  // list these exits' ids in Stats::picked
  // Called now and then (every few thousand rows / chains) with the share of the work done,
  // 0..1 (the exit pass is the first half when chains are walked too); returning false stops
  // the computation, which then fails with kStatsCancelled. May be empty. Called on the
  // computing thread (the GUI's panel computes on a worker thread).
  std::function<bool(double)> progress;
};
inline constexpr const char* kStatsCancelled = "statistics cancelled.";

// Figures of a set of exits. Times in ns, over the `timed` exits only; unset when none is timed.
struct Latency {
  uint64_t count = 0;  // exits
  uint64_t timed = 0;  // exits whose next entry is in the recording
  uint64_t total_ns = 0;
  std::optional<uint64_t> min_ns, max_ns, mean_ns, median_ns, p99_ns;
};

struct ExitRow {
  std::string key;      // "EPT_VIOLATION", "npf", "port 0x3f8", "page 0x9e000", "msr 0x1b rd", "mmio 0xfee000b0 wr"
  uint8_t level = 0;    // guest level the exits left
  uint32_t reason = 0;  // By::Reason: the full exit reason / SVM exit code
  uint32_t flags = 0;   // By::Reason: ES_FLAG_SVM if an SVM exit code
  uint64_t value = 0;   // By::Port / Page / Msr / Mmio: the port, page address, MSR or MMIO GPA (UINT64_MAX = unknown)
  Latency lat;
};

struct ChainKindRow {
  std::string key;          // "IRQ 0x20", "NMI", "#PF", "INT 0x80"
  uint32_t event_word = 0;  // type and vector of the original event (VM-entry interruption-info format)
  uint64_t count = 0;       // chains
  uint64_t delivered = 0;   // delivered (first time or after reinjection): the timed ones
  uint64_t total_ns = 0;    // raise -> delivery, over the delivered ones
  std::optional<uint64_t> min_ns, max_ns, mean_ns;
  uint64_t exits = 0;         // VM exits (not nested exits) whose IDT-vectoring info named the event
  uint64_t reinjections = 0;  // INJECT_REINJECTED decisions in the chains
};

struct SlowChain {
  uint64_t id = 0;
  std::string key;
  uint64_t time_ns = 0;  // raise -> delivery
  uint64_t exits = 0, reinjections = 0;
  Outcome outcome = Outcome::Delivered;
};

struct Stats {
  StatsBy by = StatsBy::Reason;
  std::vector<ExitRow> exits;                // VM exits, by `by` and level
  std::vector<ExitRow> nested_exits;         // nested exits (L2 -> L1), by reason and level (By::Reason only)
  std::vector<ExitRow> by_vcpu;              // VM exits per vCPU (key "vcpu N", value = N)
  std::vector<ExitRow> by_level;             // VM exits per level (key "L1", value = level)
  Latency all_exits, all_nested;             // totals of the two tables
  uint64_t entries = 0, nested_entries = 0;  // VM_ENTRY / NESTED_ENTRY records in the recording
  // Exit latency histogram (VM exits): bucket i holds times in [2^i, 2^(i+1)) ns, bucket 0 [0, 2).
  std::vector<uint64_t> histogram;
  // Raise -> delivery histogram of the delivered chains, the same buckets.
  std::vector<uint64_t> chain_histogram;
  std::vector<uint64_t> picked;           // ids of the exits (or chain roots) StatsOptions::pick names, ascending
  std::vector<ChainKindRow> chain_kinds;  // most chains first
  // VM exits in the selection (whatever --reason says: the chain table ignores it too) whose source
  // did not say their IDT-vectoring info (ES_FLAG_VECTORING_UNKNOWN: kvm_exit before Linux 5.10,
  // trace-cmd's "info A B"): an event being delivered at such an exit is not seen and its delivery
  // is assumed, so the chain table is approximate when this is nonzero.
  uint64_t exits_without_vectoring = 0;
  std::vector<SlowChain> slowest;  // slowest delivered chains first
  uint64_t chains = 0;
  // One sentence when the chain figures had to be read the slow way (the recording stores none
  // decided by this build's chain rules, schema v3's chain_rules): why, and how to get a file
  // that stores them. Empty otherwise.
  std::string notice;
};

Result<Stats> compute_stats(Recording& rec, const StatsOptions& opt);

// Histogram bucket i holds times in [histogram_from_ns(i), histogram_to_ns(i)): [0, 2) ns for
// i = 0, else [2^i, 2^(i+1)) ns (log2 buckets, as perf's and bpftrace's hist()).
constexpr uint64_t histogram_from_ns(size_t i) { return i == 0 ? 0 : uint64_t{1} << i; }
constexpr uint64_t histogram_to_ns(size_t i) { return uint64_t{1} << (i + 1); }
unsigned histogram_bucket(uint64_t ns);
// A bucket edge as the histograms label it: "512ns", "1.0us", "2.1ms", "1s".
std::string short_duration(uint64_t ns);
// A time in a table, as perf kvm stat prints it: microseconds with ns precision ("1.234us");
// "unknown" when unset.
std::string duration_us(std::optional<uint64_t> ns);
// A share in percent with two decimals ("12.50"); "-" when the whole is zero.
std::string percent_text(uint64_t part, uint64_t whole);

// Order of an exit table (`--sort`): most first, then by key.
enum class StatsSort : uint8_t { Count, Time, Max, Mean };
void sort_rows(std::vector<ExitRow>& rows, StatsSort by);

// Nearest-rank percentile (the smallest value with at least p percent of the values at or
// below it) of sorted values; the median is p = 50. `sorted` must not be empty.
uint64_t nearest_rank(const std::vector<uint64_t>& sorted, unsigned p);

}  // namespace es::replay
