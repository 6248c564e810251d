#include "replay/import/trace_dat.h"

#include <event-parse.h>  // libtraceevent (pkg-config adds its include directory)
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <unordered_map>

#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "probes/recorder/session_info.h"
#include "replay/import/kvm_fields.h"
#include "replay/import/kvm_linker.h"
#include "replay/import/mapped_file.h"
#include "replay/import/recording_out.h"
#include "replay/import/trace_text.h"
#include "replay/import/tep_lazy_formats.h"
#include "replay/import/tracecmd_shim.h"

namespace es::import {

namespace {

using arch::EntryIntrInfo;
using arch::InterruptionType;

constexpr std::string_view kMagic("\x17\x08\x44tracing", 10);

// trace-cmd option ids (Documentation/trace-cmd/trace-cmd.dat.v7.5.txt; the same numbers in v6).
enum OptionId : uint16_t {
  kOptDone = 0,
  kOptBuffer = 3,
  kOptTraceClock = 4,
  kOptUname = 5,
  kOptCpuCount = 8,
  kOptVersion = 9,
  kOptHeaderInfo = 16,
  kOptCmdlines = 21,
  kOptBufferText = 22,
};
constexpr uint16_t kSectionStrings = 15;  // v7 section id of the section-name strings

// Bounds-checked reads of the file header in the file's byte order. The first failed read
// sticks: every later read returns zeros, so a walk can check once at the end of a step.
class HeaderReader {
 public:
  HeaderReader(std::string_view d, bool big_endian) : d_(d), be_(big_endian) {}
  bool ok() const { return !failed_; }
  size_t pos() const { return pos_; }
  size_t size() const { return d_.size(); }
  const std::string& what() const { return what_; }
  size_t failed_at() const { return failed_at_; }

  // Names the part being read, for the error.
  void part(std::string what) {
    if (!failed_) what_ = std::move(what);
  }
  bool seek(uint64_t off) {
    if (failed_) return false;
    if (off > d_.size()) return fail();
    pos_ = static_cast<size_t>(off);
    return true;
  }
  uint64_t num(size_t width) {
    if (!need(width)) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < width; ++i) {
      const uint64_t b = static_cast<unsigned char>(d_[pos_ + (be_ ? i : width - 1 - i)]);
      v = (v << 8) | b;
    }
    pos_ += width;
    return v;
  }
  uint16_t u16() { return static_cast<uint16_t>(num(2)); }
  uint32_t u32() { return static_cast<uint32_t>(num(4)); }
  uint64_t u64() { return num(8); }
  std::string_view bytes(uint64_t n) {
    if (n > d_.size()) {
      fail();
      return {};
    }
    if (!need(static_cast<size_t>(n))) return {};
    const std::string_view v = d_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return v;
  }
  bool skip(uint64_t n) {
    bytes(n);
    return ok();
  }
  // A NUL-terminated string of at most `max` bytes before the NUL.
  std::string_view cstr(size_t max = 4096) {
    if (failed_) return {};
    const size_t end = d_.find('\0', pos_);
    if (end == std::string_view::npos || end - pos_ > max) {
      fail();
      return {};
    }
    const std::string_view v = d_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return v;
  }

 private:
  bool need(size_t n) {
    if (failed_) return false;
    if (d_.size() - pos_ < n) return fail();
    return true;
  }
  bool fail() {
    if (!failed_) failed_at_ = pos_;
    failed_ = true;
    return false;
  }
  std::string_view d_;
  size_t pos_ = 0;
  bool be_;
  bool failed_ = false;
  size_t failed_at_ = 0;
  std::string what_;
};

std::string bracketed_clock(std::string_view trace_clock) {
  // "[local] global counter ...": the selected clock is in brackets.
  const size_t b = trace_clock.find('[');
  const size_t e = trace_clock.find(']', b == std::string_view::npos ? 0 : b);
  if (b == std::string_view::npos || e == std::string_view::npos) return {};
  return std::string(trace_clock.substr(b + 1, e - b - 1));
}

// Options libtracecmd reads as C strings (strdup, sscanf: TRACECLOCK 4, UNAME 5, HOOK 6, VERSION 9,
// PROCMAPS 10): trace-cmd writes them with their NUL; one without it makes libtracecmd read past
// the option (a fuzzed VERSION did, under ASan). Names the option, or "" if it is fine.
std::string_view unterminated_string_option(uint16_t id, std::string_view data) {
  static constexpr std::pair<uint16_t, std::string_view> kStringOptions[] = {
      {4, "TRACECLOCK"}, {5, "UNAME"}, {6, "HOOK"}, {9, "VERSION"}, {10, "PROCMAPS"}};
  for (const auto& [opt, opt_name] : kStringOptions)
    if (id == opt && !data.empty() && data.find('\0') == std::string_view::npos) return opt_name;
  return {};
}

std::string trim_nul(std::string_view s) {
  while (!s.empty() && (s.back() == '\0' || s.back() == '\n')) s.remove_suffix(1);
  return std::string(s);
}

struct CpuData {
  uint32_t cpu = 0;
  uint64_t offset = 0, size = 0;
};

struct Layout : TraceDatLayout {
  std::vector<CpuData> cpu_data;  // top buffer
  std::string problem;            // set: the walk failed (one sentence)
};

std::string truncated(std::string_view name, const HeaderReader& r) {
  return "trace.dat '" + std::string(name) + "' is truncated or corrupt: it ends at byte " + std::to_string(r.size()) +
         " inside " + r.what() + " (read at byte " + std::to_string(r.failed_at()) +
         "); copy the whole file again, or record it again with trace-cmd.";
}

std::string corrupt(std::string_view name, const std::string& what) {
  return "trace.dat '" + std::string(name) + "' is corrupt: " + what +
         "; record it again, or check it with 'trace-cmd dump --summary -i " + std::string(name) + "'.";
}

// CPU data ranges must lie inside the file (libtracecmd maps them page by page).
bool check_cpu_data(std::string_view name, Layout& l, const CpuData& c, size_t file_size) {
  if (c.size == 0) return true;
  // trace-cmd pads the CPU data to a page boundary (both versions); libtracecmd maps it from there.
  if (c.offset % l.page_size != 0) {
    l.problem = corrupt(name, "the data of CPU " + std::to_string(c.cpu) + " starts at byte " +
                                  std::to_string(c.offset) + ", not at a page boundary");
    return false;
  }
  if (c.offset > file_size || c.size > file_size - c.offset) {
    l.problem = "trace.dat '" + std::string(name) + "' is truncated: the data of CPU " + std::to_string(c.cpu) +
                " should end at byte " + std::to_string(c.offset + c.size) + " but the file has " +
                std::to_string(file_size) + " bytes; copy the whole file again, or record it again with trace-cmd.";
    return false;
  }
  return true;
}

// Version 6: header_page, header_event, ftrace and event formats, kallsyms, printk formats,
// saved cmdlines, CPU count, options, then "flyrecord" and the per-CPU (offset, size) index.
void walk_v6(std::string_view name, HeaderReader& r, Layout& l) {
  const size_t file_size = r.size();
  r.part("the header_page section");
  if (r.bytes(12) != std::string_view("header_page\0", 12) && r.ok()) {
    l.problem = corrupt(name, "no 'header_page' section where the v6 header has it");
    return;
  }
  r.skip(r.u64());
  r.part("the header_event section");
  if (r.bytes(13) != std::string_view("header_event\0", 13) && r.ok()) {
    l.problem = corrupt(name, "no 'header_event' section where the v6 header has it");
    return;
  }
  r.skip(r.u64());
  r.part("the ftrace event formats");
  for (uint32_t n = r.u32(); n > 0 && r.ok(); --n) r.skip(r.u64());
  r.part("the event formats");
  for (uint32_t systems = r.u32(); systems > 0 && r.ok(); --systems) {
    r.cstr();
    for (uint32_t n = r.u32(); n > 0 && r.ok(); --n) r.skip(r.u64());
  }
  r.part("the kallsyms section");
  r.skip(r.u32());
  r.part("the printk formats");
  r.skip(r.u32());
  r.part("the saved command lines");
  r.skip(r.u64());
  r.part("the CPU count");
  const uint32_t cpus = r.u32();
  r.part("the options");
  std::string_view tag = r.bytes(10);
  if (tag == std::string_view("options  \0", 10)) {
    for (uint16_t id = r.u16(); id != kOptDone && r.ok(); id = r.u16()) {
      const std::string_view data = r.bytes(r.u32());
      if (!r.ok()) break;
      if (const std::string_view bad = unterminated_string_option(id, data); !bad.empty()) {
        l.problem = corrupt(name, "its " + std::string(bad) + " option is not a NUL-terminated string");
        return;
      }
      if (id == kOptUname)
        l.uname = trim_nul(data);
      else if (id == kOptVersion)
        l.tracer = trim_nul(data);
      else if (id == kOptTraceClock)
        l.clock = bracketed_clock(data);
    }
    tag = r.bytes(10);
  }
  if (!r.ok()) return;
  if (tag == std::string_view("latency  \0", 10)) {
    l.latency = true;
    return;
  }
  if (tag != std::string_view("flyrecord\0", 10)) {
    l.problem = corrupt(name, "neither 'flyrecord' nor 'latency' after the v6 header");
    return;
  }
  r.part("the CPU data index");
  l.cpus = cpus;
  for (uint32_t cpu = 0; cpu < cpus && r.ok(); ++cpu) {
    CpuData c;
    c.cpu = cpu;
    c.offset = r.u64();
    c.size = r.u64();
    if (!r.ok()) return;
    if (!check_cpu_data(name, l, c, file_size)) return;
    l.cpu_data.push_back(c);
    l.cpu_data_bytes += c.size;
  }
}

// Checks the section header at `off` (id, flags, string id, size) and that its data fits.
bool check_section(std::string_view name, HeaderReader& r, Layout& l, uint64_t off, const char* what) {
  const size_t back = r.pos();
  r.part(std::string("the ") + what + " section");
  if (!r.seek(off)) return false;
  r.u16();
  r.u16();
  r.u32();
  const uint64_t size = r.u64();
  if (!r.ok()) return false;
  if (size > r.size() - r.pos()) {
    l.problem = "trace.dat '" + std::string(name) + "' is truncated: its " + what + " section should end at byte " +
                std::to_string(r.pos() + size) + " but the file has " + std::to_string(r.size()) +
                " bytes; copy the whole file again, or record it again with trace-cmd.";
    return false;
  }
  r.seek(back);
  return true;
}

// Compressed CPU data (v7): a chunk count, then per chunk its compressed size, its uncompressed
// size (whole pages) and the compressed bytes. libtracecmd sizes its buffers and mappings from
// these; damaged, they make it print mmap errors or read garbage.
bool check_chunks(std::string_view name, HeaderReader& r, Layout& l, const CpuData& c) {
  if (c.size == 0) return true;
  const size_t back = r.pos();
  r.part("the compressed data of CPU " + std::to_string(c.cpu));
  r.seek(c.offset);
  const uint32_t chunks = r.u32();
  for (uint32_t i = 0; i < chunks && r.ok(); ++i) {
    const uint32_t packed = r.u32();
    const uint32_t unpacked = r.u32();
    if (!r.ok()) break;
    if (unpacked == 0 || unpacked % l.page_size != 0 || unpacked > (64u << 20)) {
      l.problem = corrupt(name, "chunk " + std::to_string(i) + " of CPU " + std::to_string(c.cpu) +
                                    "'s compressed data claims " + std::to_string(unpacked) + " bytes uncompressed");
      return false;
    }
    r.skip(packed);
  }
  if (!r.ok()) {
    l.problem =
        corrupt(name, "the chunk table of CPU " + std::to_string(c.cpu) + "'s compressed data runs past the file");
    return false;
  }
  // trace-cmd's size for the CPU leaves out the chunk count (3.1); accept either.
  const uint64_t walked = r.pos() - c.offset;
  if (walked != c.size && walked != c.size + 4) {
    l.problem = corrupt(name, "the chunks of CPU " + std::to_string(c.cpu) + "'s compressed data take " +
                                  std::to_string(walked) + " bytes, its index says " + std::to_string(c.size));
    return false;
  }
  r.seek(back);
  return true;
}

// Version 7: compression header, then sections located by a chain of option sections; the
// BUFFER options hold the per-CPU (offset, size) index of each trace instance.
void walk_v7(std::string_view name, HeaderReader& r, Layout& l) {
  const size_t file_size = r.size();
  r.part("the compression header");
  const std::string_view algo = r.cstr(64);
  const std::string_view algo_version = r.cstr(64);
  l.compression = std::string(algo) + (algo_version.empty() ? "" : " " + std::string(algo_version));
  const bool compressed = !algo.empty() && algo != "none";
  r.part("the offset of the first options section");
  uint64_t next = r.u64();
  uint64_t last_end = 0;  // end of the last options section
  uint64_t scanned = 0;   // bytes of option sections walked: a corrupt chain must not loop
  while (next != 0 && r.ok() && l.problem.empty()) {
    const uint64_t section_at = next;
    r.part("an options section header");
    if (!r.seek(next)) break;
    const uint16_t id = r.u16();
    const uint16_t flags = r.u16();
    r.u32();
    const uint64_t size = r.u64();
    if (!r.ok()) break;
    if (id != 0) {
      l.problem = corrupt(
          name, "the options section at byte " + std::to_string(next) + " has section id " + std::to_string(id));
      return;
    }
    if (flags & 1) {  // compressed: only libtracecmd can read it
      l.options_checked = false;
      return;
    }
    scanned += size + 16;
    if (scanned > 2 * uint64_t{file_size}) {
      l.problem = corrupt(name, "its chain of option sections loops or overlaps");
      return;
    }
    r.part("an options section");
    const std::string_view body = r.bytes(size);
    if (!r.ok()) break;
    last_end = r.pos();
    HeaderReader o(body, l.big_endian);
    next = 0;
    while (o.ok() && o.pos() < o.size()) {
      const uint16_t opt = o.u16();
      const std::string_view data = o.bytes(o.u32());
      if (!o.ok()) {
        l.problem = corrupt(name, "an option overruns the options section at byte " + std::to_string(section_at));
        return;
      }
      if (const std::string_view bad = unterminated_string_option(opt, data); !bad.empty()) {
        l.problem = corrupt(name, "its " + std::string(bad) + " option is not a NUL-terminated string");
        return;
      }
      HeaderReader d(data, l.big_endian);
      if (opt == kOptDone) {
        next = d.u64();
        break;
      }
      if (opt == kOptUname)
        l.uname = trim_nul(data);
      else if (opt == kOptVersion)
        l.tracer = trim_nul(data);
      else if (opt == kOptBuffer) {
        const uint64_t section = d.u64();
        const std::string_view instance = d.cstr();
        const std::string_view clock = d.cstr();
        // trace-cmd 3.1 and later write the buffer's page size before the CPU count, earlier
        // v7 writers do not: the option's length tells which.
        uint32_t count = d.u32();
        if (d.ok() && d.size() - d.pos() != uint64_t{count} * 20) {
          const uint32_t page = count;  // this buffer's page size, which libtracecmd maps by
          if (page < 1024 || page > (1u << 20) || (page & (page - 1)) != 0) {
            l.problem = corrupt(name, "a BUFFER option's page size " + std::to_string(page) + " is not a power of two");
            return;
          }
          count = d.u32();
        }
        if (!d.ok() || d.size() - d.pos() != uint64_t{count} * 20) {
          l.problem = corrupt(name, "a BUFFER option is cut short");
          return;
        }
        if (!check_section(name, r, l, section, "trace data")) break;
        std::vector<CpuData> cpus;
        for (uint32_t i = 0; i < count && d.ok(); ++i) {
          CpuData c;
          c.cpu = d.u32();
          c.offset = d.u64();
          c.size = d.u64();
          if (!d.ok()) {
            l.problem = corrupt(name, "a BUFFER option's CPU index is cut short");
            return;
          }
          if (!check_cpu_data(name, l, c, file_size)) return;
          if (compressed && !check_chunks(name, r, l, c)) return;
          cpus.push_back(c);
        }
        if (instance.empty()) {
          l.clock = std::string(clock);
          l.cpus = count;
          l.cpu_data = std::move(cpus);
          for (const CpuData& c : l.cpu_data) l.cpu_data_bytes += c.size;
        }
      } else if (opt == kOptBufferText) {
        const uint64_t section = d.u64();
        const std::string_view instance = d.cstr();
        if (!d.ok()) {
          l.problem = corrupt(name, "a BUFFER_TEXT option is cut short");
          return;
        }
        if (!check_section(name, r, l, section, "latency data")) break;
        if (instance.empty()) l.latency = true;
      } else if (opt >= kOptHeaderInfo && opt <= kOptCmdlines) {
        static constexpr const char* kNames[] = {"header info", "ftrace event formats", "event formats",
                                                 "kallsyms",    "printk formats",       "saved command lines"};
        const uint64_t section = d.u64();
        if (!d.ok()) {
          l.problem = corrupt(name, "a section offset option is cut short");
          return;
        }
        if (!check_section(name, r, l, section, kNames[opt - kOptHeaderInfo])) break;
      }
    }
  }
  // trace-cmd writes the section names (a STRINGS section, id 15) last, right after the last
  // options section; a file cut there has all its events but is still not what was written.
  if (r.ok() && l.problem.empty() && l.options_checked && last_end > 0 && last_end < file_size) {
    r.seek(last_end);
    r.part("the section names at the end of the file");
    const uint16_t id = r.u16();
    if (r.ok() && id == kSectionStrings) check_section(name, r, l, last_end, "section names");
  }
}

Layout walk(std::string_view bytes, std::string_view name) {
  Layout l;
  if (!is_trace_dat(bytes)) {
    l.problem = "'" + std::string(name) +
                "' is not a trace-cmd trace.dat file (no \"\\x17\\x08\\x44tracing\" magic); "
                "give a trace.dat or use --format to read it as text.";
    return l;
  }
  HeaderReader r(bytes, false);
  r.seek(kMagic.size());
  r.part("the file version");
  const std::string_view version = r.cstr(8);
  const uint64_t endian = r.num(1);
  l.long_size = static_cast<unsigned>(r.num(1));
  if (!r.ok()) {
    l.problem = truncated(name, r);
    return l;
  }
  if (version == "6")
    l.version = 6;
  else if (version == "7")
    l.version = 7;
  else {
    l.problem = "trace.dat '" + std::string(name) + "' has file version '" + std::string(version.substr(0, 8)) +
                "', which this import does not read (versions 6 and 7); convert it with 'trace-cmd convert "
                "--file-version 7 -i " +
                std::string(name) + " -o converted.dat'.";
    return l;
  }
  if (endian > 1 || (l.long_size != 4 && l.long_size != 8)) {
    l.problem = corrupt(name, "the header's byte order or long size is not valid");
    return l;
  }
  l.big_endian = endian == 1;
  HeaderReader fr(bytes, l.big_endian);
  fr.seek(r.pos());
  fr.part("the page size");
  l.page_size = fr.u32();
  // The ring buffer's page: a power of two (4 KiB on x86; allow 1 KiB .. 1 MiB). libtracecmd maps
  // the CPU data page by page and says so on stderr when it cannot.
  if (fr.ok() && (l.page_size < 1024 || l.page_size > (1u << 20) || (l.page_size & (l.page_size - 1)) != 0)) {
    l.problem =
        corrupt(name, "its page size " + std::to_string(l.page_size) + " is not a power of two from 1 KiB to 1 MiB");
    return l;
  }
  if (l.version == 6)
    walk_v6(name, fr, l);
  else
    walk_v7(name, fr, l);
  if (l.problem.empty() && !fr.ok()) l.problem = truncated(name, fr);
  return l;
}

// ---------------------------------------------------------------------------------------------
// Records: each event's fields, found by name in the file's formats.

struct EventDecoder {
  bool known = false;  // decoder built
  bool valid = false;  // the event exists in the file's formats
  TraceEvent event = TraceEvent::None;
  bool kvm_system = false;  // Other of the kvm system (KvmEvent::kvm_system)
  std::array<tep_format_field*, kFieldCount> f{};
  int min_size = 0;  // a record shorter than this cannot hold the fields
  ExitFormat exit_format = ExitFormat::None;
  bool has(Field x) const { return f[x] != nullptr; }
};

TraceEvent kvm_event(std::string_view system, std::string_view name) {
  if (system != "kvm") return TraceEvent::Other;
  const TraceEvent e = kvm_event_from_name(name);
  return e == TraceEvent::None ? TraceEvent::Other : e;
}

EventDecoder make_decoder(tep_event* ev) {
  EventDecoder d;
  d.known = true;
  if (!ev) return d;
  d.valid = true;
  d.event = kvm_event(ev->system ? ev->system : "", ev->name ? ev->name : "");
  d.kvm_system = ev->system && std::string_view(ev->system) == "kvm";
  if (d.event == TraceEvent::Other) return d;
  for (size_t i = 0; i < kFieldCount; ++i) {
    tep_format_field* fld = tep_find_field(ev, kFieldNames[i]);
    if (!fld || fld->offset < 0 || fld->size <= 0 || (fld->flags & TEP_FIELD_IS_DYNAMIC)) continue;
    d.f[i] = fld;
    d.min_size = std::max(d.min_size, fld->offset + fld->size);
  }
  // Which fields the format has is the kernel era, as the print format is for text
  // (trace_text.h ExitFormat): intr_info since 5.10 (kvm_nested_vmexit before 6.x: exit_int_info).
  if (d.event == TraceEvent::Exit || d.event == TraceEvent::NestedVmexit || d.event == TraceEvent::NestedVmexitInject) {
    d.exit_format = exit_format_of(d);
  }
  return d;
}

class DatReader {
 public:
  using Sink = std::function<void(std::vector<es_record>&)>;

  DatReader(std::string name, const Layout& layout, const TraceDatOptions& options, Sink sink)
      : name_(std::move(name)), layout_(layout), options_(options), sink_(std::move(sink)) {}

  // Reads every record of `path` (already walked: `layout_`). Errors: one sentence.
  Result<ImportStats> run(const std::string& path) {
    es_tracecmd_quiet();
    tracecmd_input* h = es_tracecmd_open(path.c_str());
    if (!h)
      return Error{"libtracecmd cannot read the event formats or CPU data of trace.dat '" + name_ +
                   "' (corrupt, or written by a newer trace-cmd); check it with 'trace-cmd report -i " + name_ + "'."};
    struct Closer {
      tracecmd_input* h;
      ~Closer() { es_tracecmd_close(h); }
    } closer{h};
    tep_ = es_tracecmd_tep(h);
    if (!tep_) return Error{"libtracecmd gave no event formats for trace.dat '" + name_ + "'."};
    const int instances = es_tracecmd_buffer_instances(h);
    const int rc = es_tracecmd_iterate(h, &DatReader::on_record, this);
    if (!error_.empty()) return Error{error_};
    if (rc < 0)
      return Error{"libtracecmd stopped reading the CPU data of trace.dat '" + name_ + "' after " +
                   std::to_string(stats_.lines) +
                   " records (corrupt or truncated data); copy the whole file "
                   "again, or record it again with trace-cmd."};
    linker_.take_all(batch_);
    flush();
    ImportStats& s = stats_;
    s.format = "trace.dat v" + std::to_string(layout_.version);
    s.file_version = layout_.version;
    s.uname = layout_.uname;
    s.cpus = layout_.cpus;
    s.clock = layout_.clock;
    s.records = linker_.records_made();
    linker_.describe(s);
    if (!linker_.era_from_exit_or_entry()) s.era = era_from_formats();
    if (s.kvm_events == 0)
      return Error{"trace.dat '" + name_ + "' has no KVM events (" + std::to_string(s.lines) +
                   " records of other events); record with the kvm events enabled, e.g. 'trace-cmd record -e kvm'."};
    if (unknown_lost_)
      s.assumptions.push_back("the kernel's ring buffer lost events at " + std::to_string(unknown_lost_) +
                              " places without saying how many");
    if (s.lost_events)
      s.assumptions.push_back(std::to_string(s.lost_events) +
                              " events were lost in the kernel's ring buffer: chains across the gaps may be wrong");
    if (!layout_.clock.empty() && layout_.clock != "local" && layout_.clock != "global" && layout_.clock != "mono" &&
        layout_.clock != "mono_raw" && layout_.clock != "boot" && layout_.clock != "perf")
      s.assumptions.push_back("trace clock '" + layout_.clock + "' does not count nanoseconds: times are its ticks");
    if (instances > 0)
      s.assumptions.push_back("the file holds " + std::to_string(instances) +
                              " more trace instance buffer(s); only the top buffer is imported");
    return s;
  }

  // Sizes the per-CPU progress positions from the CPU data index (call before run()).
  void init_cpu_positions() {
    uint32_t max_cpu = 0;
    for (const CpuData& c : layout_.cpu_data) max_cpu = std::max(max_cpu, c.cpu);
    cpu_pos_.assign(layout_.cpu_data.empty() ? 0 : max_cpu + 1, 0);
  }
  // kvm_exit had no `isa` field: exits were taken as VMX.
  bool assumed_vmx() const { return no_isa_; }

 private:
  static int on_record(tep_record* rec, int cpu, void* self) {
    try {
      return static_cast<DatReader*>(self)->handle(rec, cpu);
    } catch (const std::exception& e) {
      static_cast<DatReader*>(self)->error_ = "reading trace.dat failed: " + std::string(e.what()) + ".";
      return 1;
    }
  }

  void undecodable() {
    ++stats_.unparsed;
    if (stats_.unparsed_lines.size() < kMaxListedLines) stats_.unparsed_lines.push_back(stats_.lines);
  }

  uint64_t read(const EventDecoder& d, Field x, const tep_record* rec) const {
    const tep_format_field* fld = d.f[x];
    if (!fld) return 0;
    unsigned long long v = 0;
    if (tep_read_number_field(const_cast<tep_format_field*>(fld), rec->data, &v) != 0) return 0;
    if ((fld->flags & TEP_FIELD_IS_SIGNED) && fld->size < 8) {  // sign-extend (errno, vector)
      const unsigned bits = static_cast<unsigned>(fld->size) * 8;
      if (v & (1ull << (bits - 1))) v |= ~0ull << bits;
    }
    return v;
  }

  int handle(tep_record* rec, int cpu) {
    ++stats_.lines;
    if (rec->missed_events > 0)
      stats_.lost_events += static_cast<uint64_t>(rec->missed_events);
    else if (rec->missed_events < 0)
      ++unknown_lost_;
    if (!rec->data || rec->size < 8) {  // shorter than the common fields (type, flags, preempt, pid)
      undecodable();
      return 0;
    }
    const int type = tep_data_type(tep_, rec);
    const EventDecoder& d = decoder(type);
    if (!d.valid || rec->size < d.min_size) {
      undecodable();
      return 0;
    }
    TraceLine& t = line_;
    t = TraceLine{};
    t.event = d.event;
    // The ring buffer dropped events of this CPU right before this record: as a paste's "...",
    // nothing is concluded from an absence across it.
    t.after_elision = rec->missed_events != 0;
    t.prefix = PrefixStyle::Ftrace;
    t.has_time = true;
    t.time_ns = rec->ts;
    t.host_cpu = cpu;
    t.pid = tep_data_pid(tep_, rec);
    t.task_vcpu = task_vcpu(t.pid);
    if (!fill(d, rec, t)) {
      undecodable();
      return 0;
    }
    if (d.event == TraceEvent::Other)
      ++stats_.other_events;
    else
      ++stats_.kvm_events;
    if (!have_t0_) t0_ = rec->ts, have_t0_ = true;
    linker_.add(t, rec->ts >= t0_ ? rec->ts - t0_ : 0, stats_.lines);
    if (cpu >= 0 && static_cast<size_t>(cpu) < cpu_pos_.size() && rec->offset > cpu_pos_[cpu])
      cpu_pos_[cpu] = rec->offset;
    if ((stats_.lines & 4095) == 0) {
      linker_.take_settled(batch_);
      flush();
      report_progress();
    }
    return 0;
  }

  // The fields of one record, for fill_from_fields (kvm_fields.h).
  struct RecordFields {
    const DatReader& r;
    const EventDecoder& d;
    const tep_record* rec;
    bool has(Field x) const { return d.has(x); }
    uint64_t get(Field x) const { return r.read(d, x, rec); }
    size_t bytes(Field x, uint8_t* out, size_t max) const {
      const tep_format_field* f = d.f[x];
      if (!f) return 0;
      const size_t n = std::min(static_cast<size_t>(f->size), max);
      std::memcpy(out, static_cast<const uint8_t*>(rec->data) + f->offset, n);
      return n;
    }
  };

  bool fill(const EventDecoder& d, const tep_record* rec, TraceLine& t) {
    if (!d.has(fIsa) && (d.event == TraceEvent::Exit || d.event == TraceEvent::NestedVmexit ||
                         d.event == TraceEvent::NestedVmexitInject))
      no_isa_ = true;
    t.kvm_system = d.event == TraceEvent::Other && d.kvm_system;
    return fill_from_fields(d.event, RecordFields{*this, d, rec}, t);
  }

  const EventDecoder& decoder(int type) {
    if (type < 0 || type > 0xFFFF) return invalid_;
    if (static_cast<size_t>(type) >= decoders_.size()) decoders_.resize(static_cast<size_t>(type) + 1);
    EventDecoder& d = decoders_[static_cast<size_t>(type)];
    if (!d.known) d = make_decoder(es_tep_find_event(tep_, type));  // parses a deferred format
    return d;
  }

  // QEMU names its vCPU threads "CPU n/KVM".
  int32_t task_vcpu(int pid) {
    if (pid < 0) return -1;
    auto [it, fresh] = comm_vcpu_.try_emplace(pid, -1);
    if (fresh) {
      const char* comm = tep_data_comm_from_pid(tep_, pid);
      std::string_view c = comm ? comm : "";
      if (c.size() > 8 && c.substr(0, 4) == "CPU " && c.substr(c.size() - 4) == "/KVM") {
        int32_t n = 0;
        bool digits = true;
        for (char ch : c.substr(4, c.size() - 8)) {
          if (ch < '0' || ch > '9' || n > 0xFFFF)
            digits = false;
          else
            n = n * 10 + (ch - '0');
        }
        if (digits) it->second = n;
      }
    }
    return it->second;
  }

  // The kernel era from the event formats in the file, when no kvm_exit record says it: the one
  // rule of kvmtrace::EraEvidence::formats_era(), the same the live recorder applies to the
  // running kernel's tracefs formats.
  std::string era_from_formats() {
    kvmtrace::EraEvidence era;
    for (const TraceEvent tp : {TraceEvent::Exit, TraceEvent::Entry, TraceEvent::InjVirq, TraceEvent::InjException}) {
      const std::string name(kvmtrace::to_string(tp));
      const EventDecoder d = make_decoder(tep_find_event_by_name(tep_, "kvm", name.c_str()));
      if (d.valid) era.note_format(tp, [&](Field f) { return d.has(f); });
    }
    return era.formats_era();
  }

  void flush() {
    if (batch_.empty()) return;
    sink_(batch_);
    batch_.clear();
  }

  void report_progress() {
    if (!options_.progress) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_progress_ < std::chrono::milliseconds(200) && last_progress_.time_since_epoch().count() != 0) return;
    last_progress_ = now;
    double fraction = -1;
    const bool compressed = !layout_.compression.empty() && layout_.compression.rfind("none", 0) != 0;
    if (!compressed && layout_.cpu_data_bytes) {
      uint64_t done = 0;
      for (const CpuData& c : layout_.cpu_data)
        if (c.cpu < cpu_pos_.size() && cpu_pos_[c.cpu] > c.offset) done += std::min(cpu_pos_[c.cpu] - c.offset, c.size);
      fraction = static_cast<double>(done) / static_cast<double>(layout_.cpu_data_bytes);
    }
    options_.progress(stats_.lines, fraction);
  }

 private:
  std::string name_;
  const Layout& layout_;
  const TraceDatOptions& options_;
  Sink sink_;
  tep_handle* tep_ = nullptr;
  KvmEventLinker linker_;
  TraceLine line_;
  std::vector<es_record> batch_;
  std::vector<EventDecoder> decoders_;
  EventDecoder invalid_{.known = true};
  std::unordered_map<int, int32_t> comm_vcpu_;
  std::vector<uint64_t> cpu_pos_;
  ImportStats stats_;
  uint64_t t0_ = 0;
  bool have_t0_ = false;
  uint64_t unknown_lost_ = 0;
  bool no_isa_ = false;
  std::string error_;
  std::chrono::steady_clock::time_point last_progress_{};
};

Result<Layout> checked_layout(std::string_view bytes, std::string_view name) {
  if (bytes.empty()) return Error{"trace.dat '" + std::string(name) + "' is empty; give the file trace-cmd wrote."};
  Layout l = walk(bytes, name);
  if (!l.problem.empty()) return Error{l.problem};
  if (l.latency)
    return Error{"trace.dat '" + std::string(name) +
                 "' holds a latency-tracer text buffer, not event records; "
                 "record the kvm events, e.g. 'trace-cmd record -e kvm'."};
  return l;
}

// How long the isolating read may take: a minute, plus a second per 5 MB (reading runs at tens
// of MB/s). ES_TRACE_DAT_CHILD_TIMEOUT_MS replaces it (tests).
uint64_t child_timeout_ms(size_t file_bytes) {
  if (const char* t = std::getenv("ES_TRACE_DAT_CHILD_TIMEOUT_MS"); t && *t) return std::strtoull(t, nullptr, 10);
  return 60000 + file_bytes / 5000;
}

// The isolating read (issue #18: the file is read once). libtraceevent and libtracecmd trust the
// event formats and ring-buffer pages inside the file (a corrupt format text crashes
// tep_parse_event), so they run only in a child process: it reads the file and sends its linked
// records, its progress and, at the end, its ImportStats (or its error sentence) through a pipe;
// this process writes what arrives. A crash ends the child and becomes one sentence here, and the
// records already received stay unwritten (the caller's DB.partial is removed). The child's
// stderr goes to /dev/null (libtracecmd prints some complaints about damaged data whatever its
// log level), so a bad file never reaches libtracecmd in this process. A child still reading
// after `timeout_ms` (a file that makes the library loop) is killed and that is the error.
//
// Messages: a Frame header, then `bytes` of payload. Records are es_record (fixed-width, the
// record ABI), so they cross the pipe as they are.
struct Frame {
  enum Kind : uint32_t { kRecords = 1, kProgress, kStats, kError };
  uint32_t kind = 0;
  uint32_t reserved = 0;
  uint64_t bytes = 0;
};
static_assert(sizeof(Frame) == 16);

// ImportStats as bytes (u64 numbers, strings and lists length-first) and back. Every field of
// ImportStats (text_import.h) is here: the trace.dat tests compare an isolated read's stats with
// an in-process read's.
class StatsCodec {
 public:
  static std::string encode(const ImportStats& s) {
    std::string o;
    auto num = [&](uint64_t v) { o.append(reinterpret_cast<const char*>(&v), sizeof v); };
    auto str = [&](const std::string& v) {
      num(v.size());
      o += v;
    };
    auto strs = [&](const std::vector<std::string>& v) {
      num(v.size());
      for (const auto& x : v) str(x);
    };
    str(s.format);
    for (uint64_t v : {s.lines, s.kvm_events, s.other_events, s.comment_lines, s.joined_lines, s.quoted_lines,
                       s.unparsed, s.out_of_order, s.records, s.lost_events})
      num(v);
    num(s.unparsed_lines.size());
    for (uint64_t v : s.unparsed_lines) num(v);
    strs(s.skipped);
    strs(s.repaired);
    str(s.vendor);
    str(s.era);
    strs(s.assumptions);
    strs(s.vcpu_map);
    num(s.file_version);
    str(s.uname);
    num(s.cpus);
    str(s.clock);
    return o;
  }
  // False if `in` is not what encode() wrote.
  static bool decode(std::string_view in, ImportStats& s) {
    bool ok = true;
    auto num = [&]() -> uint64_t {
      uint64_t v = 0;
      if (in.size() < sizeof v) return ok = false, 0;
      std::memcpy(&v, in.data(), sizeof v);
      in.remove_prefix(sizeof v);
      return v;
    };
    auto str = [&]() {
      const uint64_t n = num();
      if (n > in.size()) return ok = false, std::string();
      std::string v(in.substr(0, n));
      in.remove_prefix(n);
      return v;
    };
    auto strs = [&]() {
      std::vector<std::string> v;
      for (uint64_t n = num(); ok && n > 0; --n) v.push_back(str());
      return v;
    };
    s.format = str();
    for (uint64_t* v : {&s.lines, &s.kvm_events, &s.other_events, &s.comment_lines, &s.joined_lines, &s.quoted_lines,
                        &s.unparsed, &s.out_of_order, &s.records, &s.lost_events})
      *v = num();
    for (uint64_t n = num(); ok && n > 0; --n) s.unparsed_lines.push_back(num());
    s.skipped = strs();
    s.repaired = strs();
    s.vendor = str();
    s.era = str();
    s.assumptions = strs();
    s.vcpu_map = strs();
    s.file_version = static_cast<unsigned>(num());
    s.uname = str();
    s.cpus = static_cast<uint32_t>(num());
    s.clock = str();
    return ok && in.empty();
  }
};

bool write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool send_frame(int fd, Frame::Kind kind, const void* data, size_t n) {
  Frame f;
  f.kind = kind;
  f.bytes = n;
  return write_all(fd, &f, sizeof f) && (n == 0 || write_all(fd, data, n));
}

// Forks the child that reads `path`; receive() takes what it sends. If no child can be made
// (no pipe, no fork), started() is false and the caller reads in this process as before.
// Start it while the process has no other threads (fork copies only the calling thread).
class ChildRead {
 public:
  ChildRead(const std::string& path, std::string_view name, const Layout& layout, bool progress) : name_(name) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    (void)::fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);  // fewer, larger transfers where the system allows
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      return;
    }
    if (pid_ == 0) {
      ::close(fds[0]);
      child_main(fds[1], path, name, layout, progress);
    }
    ::close(fds[1]);
    fd_ = fds[0];
  }
  ~ChildRead() {
    if (fd_ >= 0) ::close(fd_);
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  ChildRead(const ChildRead&) = delete;
  ChildRead& operator=(const ChildRead&) = delete;

  bool started() const { return fd_ >= 0; }

  // Hands every batch of records to `sink` and progress to `progress` (if set) as they arrive;
  // the child's ImportStats at the end, or the sentence that says why the file could not be read.
  Result<ImportStats> receive(uint64_t timeout_ms, const DatReader::Sink& sink,
                              const std::function<void(uint64_t, double)>& progress) {
    // The deadline counts the time spent waiting for the child, not writing what it sent (the
    // recording's inserts hold the child back through the pipe; a looping library sends nothing).
    using Clock = std::chrono::steady_clock;
    const auto limit = std::chrono::milliseconds(timeout_ms);
    Clock::duration waited{};
    // Bytes read and not yet taken: [pos, len) of a buffer that is never zero-filled (a pipe read
    // returns a page or a few: filling a MiB before each was 1.4 % of an import).
    size_t cap = kChunk * 2, len = 0, pos = 0;
    std::unique_ptr<char[]> in(new char[cap]);
    std::vector<es_record> batch;
    std::string error;
    std::optional<ImportStats> stats;
    bool bad_message = false, timed_out = false;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(limit - waited);
      if (left.count() <= 0) {
        timed_out = true;
        break;
      }
      const auto wait_start = Clock::now();
      pollfd pfd{fd_, POLLIN, 0};
      const int ready = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
      waited += Clock::now() - wait_start;
      if (ready < 0 && errno != EINTR) break;
      if (ready <= 0) continue;
      if (cap - len < kChunk && pos > 0) {  // keep what is not yet a whole message, make room
        std::memmove(in.get(), in.get() + pos, len - pos);
        len -= pos;
        pos = 0;
      }
      if (cap - len < kChunk) {  // a message larger than the buffer
        std::unique_ptr<char[]> bigger(new char[cap * 2]);
        std::memcpy(bigger.get(), in.get(), len);
        in = std::move(bigger);
        cap *= 2;
      }
      const ssize_t n = ::read(fd_, in.get() + len, cap - len);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // the child closed the pipe: it is ending
      len += static_cast<size_t>(n);
      // Whole messages only; the rest waits for the next read.
      while (len - pos >= sizeof(Frame)) {
        Frame f;
        std::memcpy(&f, in.get() + pos, sizeof f);
        if (f.bytes > kMaxMessage) {
          bad_message = true;
          break;
        }
        if (len - pos - sizeof f < f.bytes) break;
        const char* body = in.get() + pos + sizeof f;
        pos += sizeof f + f.bytes;
        switch (f.kind) {
          case Frame::kRecords:
            if (f.bytes % sizeof(es_record) != 0) {
              bad_message = true;
              break;
            }
            batch.resize(f.bytes / sizeof(es_record));  // the same size batch after batch: no refill
            std::memcpy(batch.data(), body, f.bytes);
            sink(batch);
            break;
          case Frame::kProgress:
            if (progress && f.bytes == 16) {
              uint64_t records = 0;
              double fraction = 0;
              std::memcpy(&records, body, 8);
              std::memcpy(&fraction, body + 8, 8);
              progress(records, fraction);
            }
            break;
          case Frame::kStats: {
            ImportStats s;
            if (!StatsCodec::decode(std::string_view(body, f.bytes), s)) bad_message = true;
            stats = std::move(s);
            break;
          }
          case Frame::kError: error.assign(body, f.bytes); break;
          default: bad_message = true; break;
        }
        if (bad_message) break;
      }
      if (bad_message) break;
    }
    ::close(fd_);
    fd_ = -1;
    if (timed_out || bad_message) ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    const std::string name(name_);
    if (timed_out)
      return Error{"trace.dat '" + name + "' could not be read: libtracecmd was still reading it after " +
                   std::to_string(timeout_ms / 1000) + " s (a damaged file can make it loop); check it with " +
                   "'trace-cmd report -i " + name + "', or record it again."};
    if (WIFSIGNALED(status) && !bad_message)
      return Error{"trace.dat '" + name + "' is corrupt: libtraceevent / libtracecmd crashed (signal " +
                   std::to_string(WTERMSIG(status)) +
                   ") reading its event formats or trace data; record it again, "
                   "or check it with 'trace-cmd report -i " +
                   name + "'."};
    if (!error.empty()) return Error{error};
    if (bad_message || !stats || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      return Error{"trace.dat '" + name + "' could not be read: the process reading it (libtracecmd) ended " +
                   "without finishing; check it with 'trace-cmd report -i " + name + "', or record it again."};
    return std::move(*stats);
  }

 private:
  static constexpr size_t kChunk = size_t{1} << 20;
  static constexpr uint64_t kMaxMessage = uint64_t{1} << 30;

  [[noreturn]] static void child_main(int out, const std::string& path, std::string_view name, const Layout& layout,
                                      bool progress) {
    // A crash in the libraries must end this child plainly: no handler inherited from the
    // parent (a sanitizer's or a fuzzer's report, which would treat it as the parent's crash).
    for (const int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) ::signal(sig, SIG_DFL);
    if (const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC); null >= 0) ::dup2(null, STDERR_FILENO);
    TraceDatOptions options;
    options.isolate = false;
    bool sent = true;
    if (progress)
      options.progress = [&](uint64_t records, double fraction) {
        char b[16];
        std::memcpy(b, &records, 8);
        std::memcpy(b + 8, &fraction, 8);
        sent = sent && send_frame(out, Frame::kProgress, b, sizeof b);
      };
    // ES_TRACE_DAT_CHILD_CRASH_AFTER=N (tests): crash as a library would, once N records are sent.
    uint64_t crash_after = 0, records = 0;
    if (const char* c = std::getenv("ES_TRACE_DAT_CHILD_CRASH_AFTER"); c && *c)
      crash_after = std::strtoull(c, nullptr, 10);
    DatReader reader(std::string(name), layout, options, [&](std::vector<es_record>& b) {
      sent = sent && send_frame(out, Frame::kRecords, b.data(), b.size() * sizeof(es_record));
      records += b.size();
      if (crash_after && records >= crash_after) ::raise(SIGSEGV);
    });
    reader.init_cpu_positions();
    auto st = reader.run(path);
    if (st && reader.assumed_vmx())
      st->assumptions.push_back("kvm_exit has no 'isa' field (a very old kernel): exits taken as VMX");
    if (st) {
      const std::string bytes = StatsCodec::encode(*st);
      sent = sent && send_frame(out, Frame::kStats, bytes.data(), bytes.size());
    } else {
      sent = sent && send_frame(out, Frame::kError, st.error().data(), st.error().size());
    }
    ::_exit(sent ? 0 : 3);
  }

  std::string_view name_;
  pid_t pid_ = -1;
  int fd_ = -1;
  bool reaped_ = false;
};

Result<ImportStats> read_dat(const std::string& path, std::string_view bytes, std::string_view name,
                             const TraceDatOptions& options, const DatReader::Sink& sink) {
  auto layout = checked_layout(bytes, name);
  if (!layout) return Error{layout.error()};
  if (options.isolate) {
    ChildRead child(path, name, *layout, static_cast<bool>(options.progress));
    if (child.started()) return child.receive(child_timeout_ms(bytes.size()), sink, options.progress);
  }
  // Not isolated (a fuzzer's choice, or no child could be made): read in this process.
  DatReader reader(std::string(name), *layout, options, sink);
  reader.init_cpu_positions();
  auto st = reader.run(path);
  if (st && reader.assumed_vmx())
    st->assumptions.push_back("kvm_exit has no 'isa' field (a very old kernel): exits taken as VMX");
  return st;
}

// An in-memory file holding `bytes`, closed on destruction.
class MemFile {
 public:
  explicit MemFile(std::string_view bytes) {
    fd_ = ::memfd_create("exitscope-trace.dat", MFD_CLOEXEC);
    if (fd_ < 0) return;
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        ::close(fd_);
        fd_ = -1;
        return;
      }
      done += static_cast<size_t>(n);
    }
  }
  ~MemFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  bool ok() const { return fd_ >= 0; }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_ = -1;
};

ParsedTrace finish_parsed(ImportStats stats, std::vector<es_record> records, std::string_view name) {
  ParsedTrace p;
  p.records = std::move(records);
  p.stats = std::move(stats);
  p.config_json = import_config_json(p.stats, name);
  return p;
}

// "Linux host 6.1.0-18-amd64 #1 SMP ..." -> "6.1.0-18-amd64".
std::string release_of(std::string_view uname) {
  size_t b = 0;
  for (int word = 0; word < 2; ++word) {
    b = uname.find(' ', b);
    if (b == std::string_view::npos) return {};
    ++b;
  }
  const size_t e = uname.find(' ', b);
  return std::string(uname.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
}

}  // namespace

bool is_trace_dat(std::string_view head) { return head.substr(0, kMagic.size()) == kMagic; }

Result<TraceDatLayout> read_trace_dat_layout(std::string_view bytes, std::string_view name) {
  auto l = checked_layout(bytes, name);
  if (!l) return Error{l.error()};
  return static_cast<TraceDatLayout>(*l);
}

Result<ParsedTrace> parse_trace_dat(const std::string& file, const TraceDatOptions& options) {
  auto mapped = MappedFile::open(file);
  if (!mapped) return Error{mapped.error()};
  std::vector<es_record> records;
  auto st = read_dat(file, mapped->text(), file, options,
                     [&](std::vector<es_record>& b) { records.insert(records.end(), b.begin(), b.end()); });
  if (!st) return Error{st.error()};
  return finish_parsed(std::move(*st), std::move(records), file);
}

Result<ParsedTrace> parse_trace_dat_bytes(std::string_view bytes, const TraceDatOptions& options,
                                          std::string_view name) {
  auto layout = checked_layout(bytes, name);  // before copying: most bad input stops here
  if (!layout) return Error{layout.error()};
  MemFile mem(bytes);
  if (!mem.ok())
    return Error{"cannot create an in-memory file for '" + std::string(name) + "': " + std::strerror(errno) + "."};
  std::vector<es_record> records;
  auto st = read_dat(mem.path(), bytes, name, options,
                     [&](std::vector<es_record>& b) { records.insert(records.end(), b.begin(), b.end()); });
  if (!st) return Error{st.error()};
  return finish_parsed(std::move(*st), std::move(records), name);
}

Result<ImportStats> import_trace_dat_file(const std::string& file, const std::string& db,
                                          const TraceDatOptions& options) {
  std::error_code ec;
  if (std::filesystem::exists(db, ec) && !options.import.force)
    return Error{"recording '" + db + "' already exists; pass --force to overwrite it or choose another name."};
  auto mapped = MappedFile::open(file);
  if (!mapped) return Error{mapped.error()};
  auto layout = checked_layout(mapped->text(), file);
  if (!layout) return Error{layout.error()};

  recorder::SessionStart info;
  info.source = recorder::Source::Import;
  info.scenario = std::filesystem::path(file).filename().string();
  info.guest_path = file;
  info.host = "imported trace (trace.dat v" + std::to_string(layout->version) + ")";
  info.kernel = release_of(layout->uname);
  info.command_line = options.import.command_line;
  // The child that reads the file starts before the recorder's writer thread (fork copies only
  // the calling thread); its records are written as they arrive (the file is read once).
  std::optional<ChildRead> child;
  if (options.isolate) child.emplace(file, file, *layout, static_cast<bool>(options.progress));
  FileHasher hasher(file);  // after the fork; stored at commit
  auto out = PartialRecording::create(db, info, options.import.force);
  if (!out) return Error{out.error()};

  const DatReader::Sink sink = [&](std::vector<es_record>& b) {
    if (options.import.observer)
      for (const es_record& r : b) options.import.observer(r);
    out->add(b.data(), b.size());  // one lock of the recorder's queue per batch
  };
  TraceDatOptions in_process = options;
  in_process.isolate = false;
  auto st = child && child->started() ? child->receive(child_timeout_ms(mapped->text().size()), sink, options.progress)
                                      : read_dat(file, mapped->text(), file, in_process, sink);
  if (!st) return Error{st.error()};  // `out` removes DB.partial
  PartialRecording::SessionUpdate update;
  if (!st->uname.empty()) update.host = "traced host: " + st->uname;
  update.kernel = st->uname.empty() ? st->era : release_of(st->uname);
  update.config_json = import_config_json(*st, file);
  update.guest_hash = hasher.hash();
  const std::string detail = "end of the imported trace '" + file + "' (" + std::to_string(st->lines) + " records)";
  if (auto c = out->commit({ES_END_STOPPED, detail, st->lost_events}, update); !c) return Error{c.error()};
  return st;
}

}  // namespace es::import
