#include "replay/import/text_import.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>
#include <optional>
#include <thread>
#include <type_traits>

#include "probes/recorder/recorder.h"
#include "replay/import/kvm_linker.h"
#include "replay/import/mapped_file.h"
#include "replay/import/recording_out.h"
#include "replay/import/trace_text.h"

namespace es::import {

namespace {

Error fail(std::string msg) { return Error{std::move(msg)}; }

struct Line {
  TraceLine t;
  uint64_t line_no = 0;
};
static_assert(std::is_trivially_copyable_v<Line>);

// Pass 1's parsed event lines, in order, in an unnamed file (issue #18: parsing every line a
// second time was the text import's largest cost next to SQLite's). Pass 2 reads them back instead
// of the text: the same lines in the same order, so the same records. Memory: one 1 MiB buffer;
// disk: the 8-byte words of each line that differ from the last line of its event (a trace
// repeats its events with new times and values: a few words of each) until the import ends, in
// the recording's directory (O_TMPFILE: the disk the user chose for the recording, not a /tmp
// that may be RAM; nothing is left behind).
// If it cannot be made or written (no space), ok() turns false and pass 2 parses the text again.
class LineSpill {
 public:
  explicit LineSpill(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 && !(f_ = ::fdopen(fd, "w+b"))) ::close(fd);
  }
  ~LineSpill() {
    if (f_) std::fclose(f_);
  }
  LineSpill(const LineSpill&) = delete;
  LineSpill& operator=(const LineSpill&) = delete;

  bool ok() const { return f_ && ok_; }
  // A line is stored as its event's slot, a mask of the words that differ from the last line
  // put in that slot, and those words XOR the old ones (the reader keeps the same last lines).
  void put(const TraceLine& t, uint64_t line_no) {
    if (!ok()) return;
    Line l;
    l.t = t;
    l.line_no = line_no;
    uint64_t w[kWords];
    std::memcpy(w, &l, sizeof l);
    // Written in place at the buffer's end (room for a whole record is kept), the header last:
    // one pass over the words, no zero-filling resize.
    if (used_ + kMaxRecord > kBuffer) flush();
    const uint8_t slot = static_cast<uint8_t>(static_cast<size_t>(t.event) % kSlots);
    uint64_t* const last = last_put_[slot];
    char* const rec = buf_.get() + used_;
    char* o = rec + kHeader;
    uint32_t mask = 0;
    for (size_t i = 0; i < kWords; ++i) {
      const uint64_t d = w[i] ^ last[i];
      last[i] = w[i];
      std::memcpy(o, &d, 8);
      const bool differs = d != 0;
      mask |= static_cast<uint32_t>(differs) << i;
      o += differs ? 8 : 0;
    }
    std::memcpy(rec, &mask, sizeof mask);
    rec[sizeof mask] = static_cast<char>(slot);
    used_ = static_cast<size_t>(o - buf_.get());
  }
  // Every line put, in order: fn(const Line&). False if the file could not be read back whole.
  template <typename Fn>
  bool for_each(Fn&& fn) {
    flush();
    if (!ok() || std::fseek(f_, 0, SEEK_SET) != 0) return false;
    std::vector<char> in(kBuffer + kMaxRecord);
    const auto last = std::make_unique<uint64_t[][kWords]>(kSlots);  // zero, as the writer's were
    size_t have = 0;
    for (;;) {
      const size_t got = std::fread(in.data() + have, 1, kBuffer, f_);
      have += got;
      size_t pos = 0;
      // Whole records only; a record cut by the end of the read waits for the next one.
      while (have - pos >= kHeader) {
        uint32_t mask = 0;
        std::memcpy(&mask, in.data() + pos, sizeof mask);
        const size_t len = kHeader + 8 * static_cast<size_t>(std::popcount(mask));
        if (have - pos < len) break;
        const uint8_t slot = static_cast<uint8_t>(in[pos + sizeof mask]);
        if (slot >= kSlots) return false;  // not what put() wrote
        uint64_t* const w = last[slot];
        const char* p = in.data() + pos + kHeader;
        for (uint32_t m = mask; m; m &= m - 1, p += 8) {
          uint64_t d = 0;
          std::memcpy(&d, p, 8);
          w[static_cast<size_t>(std::countr_zero(m))] ^= d;
        }
        Line l;
        std::memcpy(static_cast<void*>(&l), w, sizeof l);  // Line is trivially copyable
        fn(l);
        pos += len;
      }
      std::memmove(in.data(), in.data() + pos, have - pos);
      have -= pos;
      if (got < kBuffer) return std::ferror(f_) == 0 && have == 0;
    }
  }

 private:
  static constexpr size_t kBuffer = size_t{1} << 20;
  static constexpr size_t kWords = sizeof(Line) / 8;
  static_assert(sizeof(Line) % 8 == 0 && kWords <= 32);
  static constexpr size_t kSlots = 32;                     // events by slot: Tracepoint % 32
  static constexpr size_t kHeader = sizeof(uint32_t) + 1;  // mask, slot
  static constexpr size_t kMaxRecord = kHeader + sizeof(Line);
  void flush() {
    if (ok() && used_ && std::fwrite(buf_.get(), 1, used_, f_) != used_) ok_ = false;
    used_ = 0;
  }
  std::FILE* f_ = nullptr;
  bool ok_ = true;
  std::unique_ptr<char[]> buf_ = std::make_unique<char[]>(kBuffer);
  size_t used_ = 0;
  uint64_t last_put_[kSlots][kWords] = {};  // the last line put in each slot, as words
};

// (string_view's find_first_not_of / find_last_of with a set of characters call memchr once per
// byte: a tenth of a pasted trace's parse went there. These two loops do the same.)
size_t last_blank(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  for (size_t i = s.size(); i > 0; --i)
    if (s[i - 1] == ' ' || s[i - 1] == '\t') return i - 1;
  return static_cast<size_t>(-1);
}

size_t first_non_blank(std::string_view s) {
  const size_t i = leading_blanks(s);
  return i < s.size() ? i : std::string_view::npos;
}

// A hex value as KVM prints them, with or without 0x.
bool parse_hex_word(std::string_view t, uint64_t& out) {
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) t.remove_prefix(2);
  if (t.empty() || t.size() > 16) return false;
  out = 0;
  for (char c : t) {
    int d = -1;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    if (d < 0) return false;
    out = out << 4 | static_cast<uint64_t>(d);
  }
  return true;
}

std::string_view trim_left(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Whether `line` stops right after a tracepoint's name: its last word ends in ':' and the word
// before it is the prefix's timestamp ("5559771.610942:"), so that word is the event's name
// (not a body that ends in ':', "tracing_mark_write: phase 2:", nor perf's "1 cycles:").
bool ends_at_event_name(std::string_view line) {
  std::string_view t = trim_right(line);
  if (t.empty() || t.back() != ':') return false;
  const size_t name = t.find_last_of(" \t");
  if (name == std::string_view::npos) return false;
  t = trim_right(t.substr(0, name));
  const size_t b = t.find_last_of(" \t");
  const std::string_view stamp = t.substr(b == std::string_view::npos ? 0 : b + 1);
  if (stamp.size() < 4 || stamp.back() != ':') return false;
  bool dot = false;
  for (size_t i = 0; i + 1 < stamp.size(); ++i) {
    if (stamp[i] == '.' && !dot && i > 0)
      dot = true;
    else if (stamp[i] < '0' || stamp[i] > '9')
      return false;
  }
  return dot;
}

// A line an author put where they left lines out: "...", "[...]", "<snip>", "[ ... ]", "…".
bool is_elision(std::string_view line) {
  std::string_view t = trim_right(trim_left(line));
  if (t.size() >= 2 && ((t.front() == '[' && t.back() == ']') || (t.front() == '<' && t.back() == '>') ||
                        (t.front() == '(' && t.back() == ')'))) {
    t = trim_right(trim_left(t.substr(1, t.size() - 2)));
  }
  if (t == "snip" || t == "\u2026" || t == "...snip..." || t == "snipped") return true;
  if (t.size() < 3) return false;
  for (const char c : t)
    if (c != '.') return false;
  return true;
}

bool looks_binary(std::string_view text) {
  const size_t n = std::min<size_t>(text.size(), 65536);
  size_t ctl = 0;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0) return true;
    if (c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f') ++ctl;
  }
  return ctl * 100 > n;  // more than 1 % control bytes
}

// True when clean_line() would return `line` untouched with nothing repaired: every byte is
// printable ASCII (no control byte, not even a tab) other than '<' (a marker, "<CANT FIND
// FIELD"), '=' ("=3D", a quoted-printable soft break) and '\'' ("CAN'T FIND FIELD"), and the line
// does not start with a "CPU n:" tag. It reads 16 (SSE2) or 8 bytes at a time, for the common line of a
// generated or clean trace, which then skips clean_line's separate scans (issue #18: they were
// a quarter of the parse). Any line it is unsure of goes to clean_line.
bool has_cpu_tag(std::string_view line);
bool needs_no_cleaning(std::string_view line) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  auto has_below = [&](uint64_t x, uint64_t n) { return (x - kOnes * n) & ~x & kHigh; };
  auto has_byte = [&](uint64_t x, uint8_t b) {
    const uint64_t y = x ^ (kOnes * b);
    return (y - kOnes) & ~y & kHigh;
  };
  const char* p = line.data();
  size_t n = line.size();
#ifdef __SSE2__
  // 16 bytes at a time: a signed compare below 0x20 also catches the bytes >= 0x80.
  const __m128i below = _mm_set1_epi8(0x20), lt = _mm_set1_epi8('<'), eq = _mm_set1_epi8('='),
                quote = _mm_set1_epi8('\'');
  auto bad16 = [&](const char* at) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
    const __m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(x, below), _mm_cmpeq_epi8(x, lt)),
                                     _mm_or_si128(_mm_cmpeq_epi8(x, eq), _mm_cmpeq_epi8(x, quote)));
    return _mm_movemask_epi8(bad) != 0;
  };
  if (n >= 16) {
    for (; n > 16; p += 16, n -= 16)
      if (bad16(p)) return false;
    // The last 16 bytes of the line (overlapping bytes already checked): no byte-wise tail.
    if (bad16(line.data() + line.size() - 16)) return false;
    n = 0;
  }
#endif
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t x;
    std::memcpy(&x, p, 8);
    if ((x & kHigh) | has_below(x, 0x20) | has_byte(x, '<') | has_byte(x, '=') | has_byte(x, '\'')) return false;
  }
  for (; n > 0; ++p, --n) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c >= 0x80 || c < 0x20 || c == '<' || c == '=' || c == '\'') return false;
  }
  return !has_cpu_tag(line);
}

// The first byte at or after `at` that is a line end or a byte needs_no_cleaning refuses
// (control bytes, '\n' among them, non-ASCII, '<', '=', '\''); text.size() if none. One scan
// finds the line's end and tells whether it is clean (issue #15: a separate memchr for the
// newline and a second pass for the check).
size_t first_unclean(std::string_view text, size_t at) {
  const char* const base = text.data();
  const size_t n = text.size();
  size_t i = at;
#ifdef __SSE2__
  const __m128i below = _mm_set1_epi8(0x20), lt = _mm_set1_epi8('<'), eq = _mm_set1_epi8('='),
                quote = _mm_set1_epi8('\'');
  for (; i + 16 <= n; i += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + i));
    const __m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(x, below), _mm_cmpeq_epi8(x, lt)),
                                     _mm_or_si128(_mm_cmpeq_epi8(x, eq), _mm_cmpeq_epi8(x, quote)));
    if (const int m = _mm_movemask_epi8(bad))
      return i + static_cast<size_t>(std::countr_zero(static_cast<unsigned>(m)));
  }
#endif
  for (; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(base[i]);
    if (c >= 0x80 || c < 0x20 || c == '<' || c == '=' || c == '\'') return i;
  }
  return n;
}

// A leading "CPU 0:" / "cpu0:" tag after blanks (QEMU's thread "CPU 0/KVM" is no tag).
bool has_cpu_tag(std::string_view line) {
  size_t i = skip_spaces(line, 0);
  if (i >= line.size() || line.size() - i < 3) return false;
  if (line.compare(i, 3, "CPU") != 0 && line.compare(i, 3, "cpu") != 0) return false;
  i += 3;
  while (i < line.size() && line[i] == ' ') ++i;
  while (i < line.size() && line[i] >= '0' && line[i] <= '9') ++i;
  return i < line.size() && line[i] == ':';
}

const char* format_name(FormatChoice f) {
  switch (f) {
    case FormatChoice::Ftrace: return "ftrace";
    case FormatChoice::TraceCmd: return "trace-cmd";
    case FormatChoice::Perf: return "perf";
    case FormatChoice::TraceDat: return "trace.dat";
    default: return "auto";
  }
}

}  // namespace

bool parse_format_choice(std::string_view s, FormatChoice& out) {
  if (s == "auto")
    out = FormatChoice::Auto;
  else if (s == "ftrace")
    out = FormatChoice::Ftrace;
  else if (s == "trace-cmd")
    out = FormatChoice::TraceCmd;
  else if (s == "perf")
    out = FormatChoice::Perf;
  else if (s == "trace.dat" || s == "tracedat" || s == "dat")
    out = FormatChoice::TraceDat;
  else
    return false;
  return true;
}

namespace {

// One pass over the text's logical lines: `emit(line, line_no)` for every event line, in file
// order, and the line counts and skip / repair sentences in `s`. The same text gives the same
// lines every pass: the import reads it once (link_in_one_pass) or, when what the whole file
// teaches changes how its first lines are linked, twice (learn, then link), instead of keeping a
// TraceLine per line (issue #18: memory was linear in the file).
// `release(pos)` is told, every few MiB, that nothing before `pos` is needed any more (a line
// kept from before is read again from the file if it is used).
constexpr size_t kReleaseStep = size_t{1} << 20;  // also the single pass's progress step
// `stop`: when it turns true, the scan ends at the next physical line (s is then incomplete).
template <typename Emit, typename Release>
void scan_trace_text(std::string_view text, const ImportOptions& options, ImportStats& s, bool& header_trace_cmd,
                     Emit&& emit, Release&& release, const bool* stop = nullptr) {
  const bool perf_only = options.format == FormatChoice::Perf;
  const bool prefix_required = options.format != FormatChoice::Auto;

  // Logical lines: a line wrapped by a mailer continues with field words only (or, after a
  // KVM line that does not parse yet, with any text that completes it); a prefix whose event
  // went to the next line is joined to it; a line that ends in a blank was broken by a
  // format=flowed mailer (RFC 3676 4.2 "soft line break") and continues on the next line.
  enum Skip : uint8_t { kSkipText, kSkipBadKvm, kSkipBadTrace, kSkipBinary, kSkipCut, kSkipCount };
  struct SkipList {
    uint64_t count = 0;
    std::vector<uint64_t> lines;
  };
  std::array<SkipList, kSkipCount> skips;
  struct Pending {
    bool active = false;
    LineClass cls = LineClass::Blank;
    uint64_t line_no = 0;
    std::string_view view;
    std::string joined;
    TraceLine t;
    bool soft_break = false;     // the physical line ended in a blank
    bool non_text = false;       // non-text bytes were replaced
    bool trace_prefix = false;   // it starts with a trace prefix
    size_t indent = 0;           // leading blanks of its first physical line
    size_t last_len = 0;         // length of its last physical line
    bool qp_soft_break = false;  // its last physical line ends in '=' (see the quoted-printable join)
  } p;
  uint64_t rep_non_text = 0, rep_cpu = 0, rep_marker = 0, rep_old_name = 0, rep_field = 0, rep_qp = 0, rep_qp_eq = 0;
  header_trace_cmd = false;
  auto skip = [&](Skip why, uint64_t n) {
    ++s.unparsed;
    if (s.unparsed_lines.size() < kMaxListedLines) s.unparsed_lines.push_back(n);
    ++skips[why].count;
    if (skips[why].lines.size() < kMaxListedLines) skips[why].lines.push_back(n);
  };
  bool elided = false;  // an elision line ("...") since the last event
  auto finalize = [&](Pending& q, bool last_of_file) {
    if (!q.active) return;
    switch (q.cls) {
      case LineClass::Event:
        if (q.t.event == TraceEvent::Other)
          ++s.other_events;
        else
          ++s.kvm_events;
        if (q.t.old_name) ++rep_old_name;
        q.t.after_elision = elided;
        elided = false;
        emit(q.t, q.line_no);
        break;
      case LineClass::Blank:
      case LineClass::Comment: ++s.comment_lines; break;
      default: {
        const bool tracey = q.cls == LineClass::BadEvent || q.cls == LineClass::DanglingPrefix || q.trace_prefix;
        if (last_of_file && tracey)
          skip(kSkipCut, q.line_no);
        else if (q.cls == LineClass::BadEvent)
          skip(kSkipBadKvm, q.line_no);
        else if (tracey)
          skip(kSkipBadTrace, q.line_no);
        else if (q.non_text)
          skip(kSkipBinary, q.line_no);
        else
          skip(kSkipText, q.line_no);
        // Skipped like any prose, and remembered: what it stands for is unknown to the linker.
        if (q.cls == LineClass::Text && is_elision(q.view)) elided = true;
        break;
      }
    }
    q.active = false;
  };
  // The previous line of each KVM event: a last line without its newline that has fewer fields
  // than it was cut even when what is left parses. Kept as a view (a copy for joined lines).
  std::array<std::string_view, 32> prev_of_event{};
  std::array<std::string, 32> prev_copy{};
  auto tokens_of = [](std::string_view v) {
    uint8_t n = 0;
    bool in = false;
    for (char c : v) {
      const bool blank = c == ' ' || c == '\t' || c == ',';
      if (!blank && !in && n < 255) ++n;
      in = !blank;
    }
    return n;
  };
  const bool ends_with_newline = text.back() == '\n';
  size_t pos = 0, next_release = kReleaseStep;
  uint64_t line_no = 0;
  TraceLine t, jt;  // the line's own parse; a joined line's
  std::string clean_buf, join_buf;
  // One physical line, unquoted and cleaned (into clean_buf when it needed repairs).
  struct Physical {
    std::string_view line;
    size_t next = 0;  // where the line after it starts
    bool quoted = false;
    LineRepairs rep;
    bool soft_break = false;  // it ends in a blank (and is not blank)
  };
  auto read_physical = [&](size_t at) {
    Physical ph;
    // A physical line with no byte needs_no_cleaning refuses has none once unquoted either (a
    // part of it): only its "CPU n:" tag is left to check.
    size_t nl = first_unclean(text, at);
    const bool clean = nl == text.size() || text[nl] == '\n';
    if (!clean) nl = text.find('\n', nl);
    if (nl == std::string_view::npos) nl = text.size();
    ph.next = nl + 1;
    const std::string_view unquoted = strip_quotes(text.substr(at, nl - at), &ph.quoted);
    ph.line = (clean ? !has_cpu_tag(unquoted) : needs_no_cleaning(unquoted)) ? unquoted
                                                                             : clean_line(unquoted, clean_buf, ph.rep);
    ph.soft_break = !ph.line.empty() && ph.line.back() == ' ' && skip_spaces(ph.line, 0) < ph.line.size();
    return ph;
  };
  // What every physical line counts, whatever becomes of it.
  auto count_physical = [&](const Physical& ph) {
    ++line_no;
    if (ph.quoted) ++s.quoted_lines;
    rep_non_text += ph.rep.non_text;
    rep_cpu += ph.rep.cpu_prefix;
    rep_marker += ph.rep.marker;
  };
  while (pos < text.size()) {
    if (stop && *stop) return;
    if (pos >= next_release) {
      release(pos);
      next_release = pos + kReleaseStep;
    }
    const Physical cur = read_physical(pos);
    pos = cur.next;
    count_physical(cur);
    const std::string_view line = cur.line;
    const LineRepairs& rep = cur.rep;
    const bool soft_break = cur.soft_break;
    // The pending line joined to `next` (quoted_printable: without a blank, its '=' dropped),
    // parsed into jt. Built in join_buf, which then trades places with p.joined on a commit: no
    // allocation per join once both have grown to a line's size (a pasted trace joins every
    // other line).
    auto parse_joined = [&](const Physical& next, bool quoted_printable) {
      std::string& joined = join_buf;
      joined.assign(p.view);
      if (quoted_printable)
        joined.pop_back();  // the '=': the text goes on without a blank
      else if (!joined.empty() && joined.back() != ' ')
        joined += ' ';
      joined += quoted_printable ? next.line : trim_left(next.line);
      return parse_trace_line(joined, jt, perf_only, prefix_required);
    };
    // The joined line (jc, jt) replaces the pending one.
    auto commit_join = [&](const Physical& next, LineClass jc) {
      if (jc == LineClass::Event && p.t.host_cpu >= 0 && jt.host_cpu < 0) jt.host_cpu = p.t.host_cpu;
      p.joined.swap(join_buf);
      p.view = p.joined;
      p.cls = jc;
      p.t = jt;
      p.soft_break = next.soft_break;
      p.non_text |= next.rep.non_text;
      p.last_len = next.line.size();
      p.qp_soft_break = !next.line.empty() && next.line.back() == '=';
      ++s.joined_lines;
    };
    // Joins `line` to the pending one when the result parses as a line of the accepted class.
    auto join = [&](bool accept_bad, bool quoted_printable = false) {
      const LineClass jc = parse_joined(cur, quoted_printable);
      if (jc != LineClass::Event && !(jc == LineClass::BadEvent && accept_bad)) return false;
      commit_join(cur, jc);
      return true;
    };
    // The pending line ends (its last view is kept for the cut-last-line check) and `line`, of
    // class `cls` parsed into `lt`, becomes the pending one.
    auto start_pending = [&](LineClass cls, const TraceLine& lt, bool trace_prefix, size_t indent) {
      if (p.active && p.cls == LineClass::Event && static_cast<size_t>(p.t.event) < prev_of_event.size()) {
        const size_t e = static_cast<size_t>(p.t.event);
        if (p.view.data() == p.joined.data())
          prev_of_event[e] = prev_copy[e] = p.view;
        else
          prev_of_event[e] = p.view;
      }
      finalize(p, false);
      p.active = true;
      p.cls = cls;
      p.line_no = line_no;
      p.view = line.data() == clean_buf.data() ? std::string_view(p.joined = std::string(line)) : line;
      p.t = lt;
      p.soft_break = soft_break;
      p.non_text = rep.non_text;
      p.trace_prefix = trace_prefix;
      p.indent = indent == std::string_view::npos ? 0 : indent;
      p.last_len = line.size();
      p.qp_soft_break = !line.empty() && line.back() == '=';
    };
    // The common wrap of a pasted trace: a KVM line cut before its values, or a line broken by a
    // format=flowed mailer (its last blank), goes on in a line that can only be a continuation
    // (no ':', see continues_a_line). The rules below would join the two whenever the joined
    // line parses as an event (and, after a KVM line that did not parse, also when it still does
    // not): that is decided here from the joined line alone, without classifying `line` on its
    // own first (issue #15: each wrapped line was parsed three times). Any other outcome goes
    // through the rules below, which reach the same join again.
    if (p.active && !p.qp_soft_break && (p.cls == LineClass::BadEvent || (p.cls == LineClass::Event && p.soft_break)) &&
        continues_a_line(line)) {
      const LineClass jc = parse_joined(cur, false);
      if (jc == LineClass::Event || (jc == LineClass::BadEvent && p.cls == LineClass::BadEvent)) {
        rep_field += rep.missing_field;  // as below, for a line that is no comment
        rep_qp_eq += rep.qp_equals;
        commit_join(cur, jc);
        continue;
      }
    }
    // ... and the same one step earlier: `line` breaks at a blank and the next physical line can
    // only continue it. When the two joined parse as an event and `line` is no comment, `line`
    // alone is an event or a KVM line that did not parse (the next line adds no ':', so the
    // event's name and prefix are all in `line`, and a comment or header there would make the
    // joined line one too, but for "CPU n ... is empty", hence the check). Such a line joins no pending line (only
    // a pending quoted-printable break or a dangling prefix takes a line that is neither plain
    // text, a continuation nor a comment: those go the long way), so it becomes the pending line
    // and the next one joins it, as the rules would do: `line` is never parsed on its own.
    // (Not for a line held in clean_buf: the next line is cleaned into it.)
    if (soft_break && pos < text.size() && line.data() != clean_buf.data() &&
        !(p.active && (p.qp_soft_break || p.cls == LineClass::DanglingPrefix)) &&
        line.find(':') != std::string_view::npos && !is_comment_line(line)) {
      const Physical next = read_physical(pos);
      if (continues_a_line(next.line)) {
        // parse_joined on `line` as the pending view (it ends in a blank: none is added).
        join_buf.assign(line);
        join_buf += trim_left(next.line);
        const LineClass jc = parse_trace_line(join_buf, jt, perf_only, prefix_required);
        if (jc == LineClass::Event) {
          // `line`: an event or a KVM line that did not parse, no comment; its trace_prefix is
          // read only for pending lines of other classes, and it stays an event once joined.
          rep_field += rep.missing_field;
          rep_qp_eq += rep.qp_equals;
          // Its own parse is not needed: commit_join replaces p.t and p.cls, and its copy of a
          // CPU the joined line lacks changes nothing when both are unknown (-1).
          TraceLine none;
          start_pending(LineClass::BadEvent, none, false, first_non_blank(line));
          pos = next.next;
          count_physical(next);
          rep_field += next.rep.missing_field;
          rep_qp_eq += next.rep.qp_equals;
          commit_join(next, jc);
          continue;
        }
      }
    }
    LineClass cls = parse_trace_line(line, t, perf_only, prefix_required);
    if (rep.cpu_prefix && t.host_cpu < 0) t.host_cpu = rep.host_cpu;
    rep_field += rep.missing_field && cls != LineClass::Comment;
    rep_qp_eq += rep.qp_equals && cls != LineClass::Comment;
    if (cls == LineClass::Comment &&
        (line.find("cpus=") != std::string_view::npos || line.find("version = ") != std::string_view::npos))
      header_trace_cmd = true;
    const bool trace_prefix = cls != LineClass::Event && cls != LineClass::Comment && has_trace_prefix(line);
    const bool pending_kvm = p.active && (p.cls == LineClass::Event || p.cls == LineClass::BadEvent) &&
                             p.t.event != TraceEvent::Other && p.t.event != TraceEvent::None;
    const bool plain = cls == LineClass::Text && !trace_prefix;  // no trace line of its own
    // A quoted-printable mail (RFC 2045 6.7 rule 5): a line ending in '=' is a soft line break and
    // the text goes on, with no blank, on the next line ("reason =" / "npf" is "reason npf",
    // "0:fc95=" / "a:" is "0:fc95a:"). KVM's print formats put '=' only between blanks (kvm_msr
    // "msr_write 830 = 0x..."), so a '=' glued to a word, or ending any other KVM line, is one.
    // The break may fall inside the event's name ("... 18136.763651:  kvm:kvm_e=" / "xit:"), so a
    // line with a trace prefix whose event did not parse takes it too.
    if (p.active && p.qp_soft_break && cls != LineClass::Blank &&
        (pending_kvm || p.cls == LineClass::Event || p.trace_prefix) &&
        (p.t.event != TraceEvent::Msr || (p.view.size() >= 2 && p.view[p.view.size() - 2] != ' '))) {
      const size_t physical = p.last_len - 1 + line.size();  // the line the encoder broke
      if (join(true, true)) {
        p.last_len = physical;
        ++rep_qp;
        continue;
      }
    }
    // A continuation may end in a field's name whose value the wrap put on the next line
    // ("... info2 0x... intr_info" / "0x00000000 error_code 0x..."): incomplete until then.
    uint64_t unused = 0;
    const bool ends_in_key =
        cls == LineClass::Continuation && !parse_hex_word(line.substr(last_blank(line) + 1), unused);
    if (pending_kvm && cls == LineClass::Continuation && join(p.cls == LineClass::BadEvent || ends_in_key)) continue;
    // A KVM line cut by the wrap before its values ("kvm_exit: reason" / "EPT_VIOLATION rip ..."):
    // whatever completes it.
    if (p.active && p.cls == LineClass::BadEvent && (plain || cls == LineClass::Continuation) && join(true)) continue;
    // ... also when the rest starts with '#' like a comment ("kvm_inj_exception:" / "#DB").
    if (p.active && p.cls == LineClass::BadEvent && cls == LineClass::Comment && join(false)) continue;
    if (p.active && p.soft_break && (p.cls == LineClass::Event || p.cls == LineClass::BadEvent) &&
        (plain || cls == LineClass::Continuation) && join(false))
      continue;
    if (p.active && p.cls == LineClass::DanglingPrefix && cls != LineClass::Blank) {
      if (join(true)) continue;
      // ... also when the event's name itself goes on after a quoted-printable soft break
      // ("... 18136.763622:" / "kvm:kvm_set_i=" / "rq:"): held until the name is whole.
      if (!line.empty() && line.back() == '=') {
        std::string joined = std::string(p.view);
        if (!joined.empty() && joined.back() != ' ') joined += ' ';
        joined += trim_left(line);
        p.joined = std::move(joined);
        p.view = p.joined;
        p.cls = LineClass::Text;
        p.trace_prefix = true;
        p.qp_soft_break = true;
        p.last_len = line.size();
        ++s.joined_lines;
        continue;
      }
    }
    // A hard wrap by a mailer at 72-80 columns: the line before stopped near the limit and this
    // line's first word would not have fitted on it.
    // (A first "word" of 72 characters or more was not moved there by the wrap: it would not have
    // fitted on any line. Encoded prose and rule lines are such words.)
    if (p.active && p.cls == LineClass::Event && (plain || cls == LineClass::Continuation) && p.last_len <= 80) {
      const std::string_view rest = trim_left(line);
      size_t word = 0;
      while (word < rest.size() && rest[word] != ' ' && rest[word] != '\t') ++word;
      if (word < 72 && p.last_len + 1 + word > 72 && join(false)) continue;
    }
    // Another tracepoint's line that stops at its name ("... 5559771.610942: write_msr:" /
    // "1d9, value 4000"): a wrap in trace-cmd's padding after the name, which a mailer makes
    // when it drops the blanks it broke at, so the 72-column test above cannot see it. No
    // tracepoint's line ends at its name but for such a wrap (a KVM one is a BadEvent, above).
    if (p.active && p.cls == LineClass::Event && p.t.event == TraceEvent::Other &&
        (plain || cls == LineClass::Continuation) && ends_at_event_name(p.view) && join(false))
      continue;
    // A record pasted without prefixes continues on lines indented deeper than its first one
    // ("  kvm_nested_vmrun: rip: ..." / "    nrip: ... int_ctl: ...").
    const size_t indent = first_non_blank(line);
    if (p.active && p.cls == LineClass::Event && p.t.prefix == PrefixStyle::None && plain &&
        indent != std::string_view::npos && indent > p.indent && join(false))
      continue;
    start_pending(cls, t, trace_prefix, indent);
  }
  s.lines = line_no;
  // The last logical line: a trace line that does not parse there was cut (a paste or a file
  // copied while the tracer wrote it). It is skipped, the rest imported.
  if (p.active && p.cls == LineClass::Event && !ends_with_newline && p.t.event != TraceEvent::Other &&
      static_cast<size_t>(p.t.event) < prev_of_event.size() &&
      tokens_of(p.view) < tokens_of(prev_of_event[static_cast<size_t>(p.t.event)]))
    p.cls = LineClass::BadEvent;  // cut: fewer fields than the same event's complete lines
  finalize(p, true);
  {
    static constexpr const char* kWhy[kSkipCount] = {
        "not trace text (prose, quoted mail, logs of other programs)",
        "KVM tracepoint lines whose fields did not parse (an unknown name or format)",
        "trace lines whose event did not parse",
        "binary data, not text",
        "the last line, cut in the middle of a record",
    };
    for (size_t i = 0; i < kSkipCount; ++i) {
      if (!skips[i].count) continue;
      std::string l = std::to_string(skips[i].count) + (skips[i].count == 1 ? " line (" : " lines (");
      for (size_t k = 0; k < skips[i].lines.size(); ++k) l += (k ? ", " : "") + std::to_string(skips[i].lines[k]);
      if (skips[i].count > skips[i].lines.size()) l += ", ...";
      s.skipped.push_back(l + "): " + kWhy[i]);
    }
    auto repaired = [&](uint64_t n, const char* what) {
      if (n) s.repaired.push_back(std::to_string(n) + (n == 1 ? " line: " : " lines: ") + what);
    };
    repaired(s.joined_lines, "joined to the line they continue (wrapped by a mailer, or a prefix on its own line)");
    repaired(s.quoted_lines, "mail quote marks removed");
    repaired(rep_non_text, "non-text bytes (NUL, control, non-ASCII) read as blanks");
    repaired(rep_cpu, "a leading 'CPU n:' tag removed (its number kept as the host CPU)");
    repaired(rep_marker, "a trailing marker ('<--', '<==', '<<<' and what follows) removed");
    repaired(rep_field, "trace-cmd's complaint about a field its kvm plugin expected ('CAN'T FIND FIELD ...') removed");
    repaired(rep_qp, "a quoted-printable soft line break ('=' at the end of the line) joined without a blank");
    repaired(rep_qp_eq, "a quoted-printable '=3D' read as '='");
    repaired(rep_old_name, "an old VMX exit name (PENDING_INTERRUPT = INTERRUPT_WINDOW, exit 7)");
  }
}

// What the import counts of every event line, in whichever pass reads them all first: the
// prefixes that decide the format, and the time base.
struct LineCensus {
  uint64_t perf = 0, full = 0, flags = 0, bare = 0, events = 0, prev = 0;
  uint64_t t0 = UINT64_MAX;
  bool any_time = false;

  void see(const TraceLine& t, ImportStats& s) {
    ++events;
    if (t.prefix == PrefixStyle::Perf)
      ++perf;
    else if (t.prefix == PrefixStyle::Ftrace)
      ++full, flags += t.has_cpu_flags ? 1 : 0;
    else
      ++bare;
    if (t.has_time) {
      any_time = true;
      t0 = std::min(t0, t.time_ns);
      if (t.time_ns < prev) ++s.out_of_order;
      prev = t.time_ns;
    }
  }

  // After the last line: the refusal of a text with no KVM event in it, else its format.
  Result<void> finish(std::string_view text, const ImportOptions& options, const std::string& file,
                      bool header_trace_cmd, ImportStats& s) const {
    if (s.kvm_events == 0) {
      if (looks_binary(text))
        return fail("'" + file +
                    "' is binary data, not trace text; give the output of 'cat trace', 'trace-cmd report' "
                    "or 'perf script'.");
      if (options.format != FormatChoice::Auto)
        return fail("'" + file + "' has no KVM trace events in the " + format_name(options.format) +
                    " format; check the file or try --format auto.");
      // Trace text with other tracepoints only (a kvm_apicv_inhibit_changed excerpt): what it
      // has, and which events to trace.
      if (s.other_events > 0)
        return fail(
            "'" + file + "' has no KVM trace events exitscope reads (kvm_exit, kvm_entry, kvm_inj_virq, ...), only " +
            std::to_string(s.other_events) + (s.other_events == 1 ? " line" : " lines") +
            " of tracepoints it does not read; trace with those enabled ('trace-cmd record -e kvm', 'perf record -e "
            "\"kvm:*\"').");
      return fail("'" + file +
                  "' has no KVM trace events (kvm_exit, kvm_entry, kvm_inj_virq, ...) in ftrace, "
                  "trace-cmd report or perf script text; check that the kvm tracepoints were enabled when tracing.");
    }
    // Format: forced, or what the prefixes say.
    if (options.format != FormatChoice::Auto)
      s.format = format_name(options.format);
    else if (s.quoted_lines > 0 || bare * 2 > events)
      s.format = "mail";
    else if (perf * 2 > events)
      s.format = "perf";
    else if (header_trace_cmd || flags * 2 <= full)
      s.format = "trace-cmd";
    else
      s.format = "ftrace";
    return {};
  }
};

// A text no pass needs to read: empty, or a trace.dat given as text.
Result<void> refuse_before_reading(std::string_view text, const std::string& file) {
  if (text.empty()) return fail("trace file '" + file + "' is empty; give the file that holds the trace text.");
  if (text.size() >= 10 && text.substr(0, 3) == "\x17\x08\x44" && text.substr(3, 7) == "tracing")
    return fail("'" + file +
                "' is a binary trace-cmd trace.dat file, not trace text; import it with --format trace.dat "
                "(or --format auto).");
  return {};
}

// Pass 1: what the whole text tells before any record is made (counts, format, vCPUs of
// threads, the meaning of kvm_exit's info pair, the time base). Holds nothing per line.
struct TextPlan {
  ImportStats stats;
  KvmEventLinker linker;  // learned
  uint64_t t0 = 0;
  bool any_time = false;
};

using Release = std::function<void(size_t)>;
const Release kKeepAll = [](size_t) {};
// Records handed out in id order, a batch at a time, with the fraction of the text done; false
// when they cannot be taken (the recording could not be made): the single pass stops reading.
using Sink = std::function<bool(std::vector<es_record>&, double fraction)>;

Result<TextPlan> plan_trace_text(std::string_view text, const ImportOptions& options, std::string_view name,
                                 const Release& release = kKeepAll, LineSpill* spill = nullptr) {
  const std::string file(name);
  if (auto r = refuse_before_reading(text, file); !r) return Error{r.error()};
  TextPlan plan;
  ImportStats& s = plan.stats;
  bool header_trace_cmd = false;
  LineCensus census;
  scan_trace_text(
      text, options, s, header_trace_cmd,
      [&](const TraceLine& t, uint64_t line_no) {
        census.see(t, s);
        plan.linker.learn(t, line_no);
        if (spill) spill->put(t, line_no);
      },
      release);
  if (auto r = census.finish(text, options, file, header_trace_cmd, s); !r) return Error{r.error()};
  plan.linker.finish_learning();
  plan.any_time = census.any_time;
  plan.t0 = plan.any_time ? census.t0 : 0;
  if (!plan.any_time) s.assumptions.push_back("the lines carry no timestamps: time is 1 us per line number");
  return plan;
}

// Pass 2: the lines again, linked into records handed to `sink` in id order, a batch at a time
// (memory: the linker's window). Lines without a timestamp take their predecessor's, or 1 us
// per line number when no line has one. Lines out of time order are sorted (stable: lines of
// one timestamp keep file order) and only then is every line kept in memory.
void link_trace_text(std::string_view text, const ImportOptions& options, TextPlan& plan, const Sink& sink,
                     const Release& release = kKeepAll, LineSpill* spill = nullptr) {
  ImportStats& s = plan.stats;
  KvmEventLinker& linker = plan.linker;
  ImportStats again;  // pass 1 counted already
  bool header = false;
  std::vector<es_record> batch;
  batch.reserve(8192);
  uint64_t n = 0, last = plan.t0;
  const double total_lines = static_cast<double>(std::max<uint64_t>(1, s.lines));
  auto add = [&](const TraceLine& t, uint64_t time_ns, uint64_t line_no, double done) {
    linker.add(t, time_ns - plan.t0, line_no);
    if ((++n & 4095) == 0) {
      linker.take_settled(batch);
      sink(batch, done);
      batch.clear();
    }
  };
  // Pass 1's event lines: from the spill when it holds them all, else parsed again.
  const bool spilled = spill && spill->ok();
  auto each_line = [&](auto&& fn) {
    if (spilled) {
      (void)spill->for_each([&](const Line& l) { fn(l.t, l.line_no); });
      return;
    }
    scan_trace_text(text, options, again, header, fn, release);
  };
  if (s.out_of_order) {
    std::vector<Line> lines;
    each_line([&](const TraceLine& t, uint64_t line_no) {
      lines.push_back(Line{t, line_no});
      Line& l = lines.back();
      if (!l.t.has_time) l.t.time_ns = last;
      last = l.t.time_ns;
    });
    std::stable_sort(lines.begin(), lines.end(),
                     [](const Line& a, const Line& b) { return a.t.time_ns < b.t.time_ns; });
    for (const Line& l : lines)
      add(l.t, l.t.time_ns, l.line_no, static_cast<double>(n) / static_cast<double>(lines.size()));
  } else {
    each_line([&](const TraceLine& t, uint64_t line_no) {
      const uint64_t time_ns = !plan.any_time ? line_no * 1000 : t.has_time ? t.time_ns : last;
      last = time_ns;
      add(t, time_ns, line_no, static_cast<double>(line_no) / total_lines);
    });
  }
  linker.take_all(batch);
  sink(batch, 1.0);
  s.records = linker.records_made();
  s.passes = 2;
  // Era and vendor: what the print formats tell.
  linker.describe(s);
  if (s.out_of_order)
    s.assumptions.push_back(std::to_string(s.out_of_order) + " lines were out of time order and were sorted");
}

// The single pass (issue #18): each line is parsed, learned and linked as it is read, the linker
// answering from what the lines so far taught (kvmtrace::Linker::speculate), and the records
// go to `sink` while the text is still being read. The whole file's learning then checks every
// answer taken: when all hold, the records are exactly the two passes' (pass 1 learns every
// line, pass 2 links them) and the stats are returned. nullopt when they would differ - a line
// out of time order (those are sorted first), a thread's vCPU or the meaning of "info A B" only
// settled by a later line, several VMs - and then what `sink` got must be dropped and the text
// linked in two passes. An error (no KVM event) is the same as pass 1's.
Result<std::optional<ImportStats>> link_in_one_pass(std::string_view text, const ImportOptions& options,
                                                    const std::string& file, const Sink& sink, const Release& release,
                                                    std::string* why = nullptr) {
  const auto gave_up = [&](const char* reason) {
    if (why) *why = reason;
    return std::optional<ImportStats>{};
  };
  if (auto r = refuse_before_reading(text, file); !r) return Error{r.error()};
  ImportStats s;
  KvmEventLinker linker;
  {
    // The first lines, learned on their own first: which thread runs which vCPU, for the lines
    // of a thread that come before its first line that says (kvmtrace::Linker::speculate).
    constexpr size_t kPreview = size_t{256} << 10;
    size_t cut = text.size();
    if (cut > kPreview) {
      const size_t nl = text.rfind('\n', kPreview);
      cut = nl == std::string_view::npos ? kPreview : nl + 1;
    }
    KvmEventLinker preview;
    ImportStats ignored;
    bool header = false;
    scan_trace_text(
        text.substr(0, cut), options, ignored, header,
        [&](const TraceLine& t, uint64_t line_no) { preview.learn(t, line_no); }, [](size_t) {});
    linker.speculate(&preview);
  }
  LineCensus census;
  bool header_trace_cmd = false, abandoned = false;  // abandoned: stop reading, nothing is kept
  bool sink_ok = true;
  std::vector<es_record> batch;
  batch.reserve(8192);
  uint64_t n = 0, t0 = 0, last = 0;
  size_t read_to = 0;
  const double size = static_cast<double>(text.size());
  auto add = [&](const TraceLine& t, uint64_t time_ns, uint64_t line_no) {
    linker.add(t, time_ns, line_no);
    if ((++n & 4095) == 0) {
      linker.take_settled(batch);
      if (!sink(batch, static_cast<double>(read_to) / size)) sink_ok = false, abandoned = true;
      batch.clear();
    }
  };
  // Pass 2's time base: relative to the first timestamp (in time order, the smallest); lines
  // before it take it too. Until a line has one those lines wait here; after kMaxUntimed of
  // them the text is taken to have none (1 us per line number), which the end checks.
  enum class Times : uint8_t { NoneYet, Timed, Untimed } times = Times::NoneYet;
  constexpr size_t kMaxUntimed = 4096;
  std::vector<Line> waiting;
  scan_trace_text(
      text, options, s, header_trace_cmd,
      [&](const TraceLine& t, uint64_t line_no) {
        census.see(t, s);
        linker.learn(t, line_no);
        // Known not to hold before the end: stop reading, link in two passes.
        if (s.out_of_order || (times == Times::Untimed && t.has_time) || linker.speculation_lost()) {
          abandoned = true;
          return;
        }
        if (times == Times::Timed) {
          last = t.has_time ? t.time_ns : last;
          add(t, last - t0, line_no);
        } else if (times == Times::Untimed) {
          add(t, line_no * 1000, line_no);
        } else if (t.has_time) {
          times = Times::Timed;
          t0 = last = t.time_ns;
          for (const Line& w : waiting) add(w.t, 0, w.line_no);
          waiting = {};
          add(t, 0, line_no);
        } else {
          waiting.push_back(Line{t, line_no});
          if (waiting.size() >= kMaxUntimed) {
            times = Times::Untimed;
            for (const Line& w : waiting) add(w.t, w.line_no * 1000, w.line_no);
            waiting = {};
          }
        }
      },
      [&](size_t pos) {
        read_to = pos;
        release(pos);
      },
      &abandoned);
  if (abandoned && !sink_ok) return gave_up("the records could not be written");
  if (s.out_of_order) return gave_up("lines out of time order");
  if (abandoned && linker.speculation_lost()) return gave_up("several VMs, or a thread naming two vCPUs");
  if (abandoned || (times == Times::Untimed && census.any_time))
    return gave_up("timestamps only after the first 4096 lines");
  if (auto r = census.finish(text, options, file, header_trace_cmd, s); !r) return Error{r.error()};
  for (const Line& w : waiting) add(w.t, w.line_no * 1000, w.line_no);  // no line had a time
  linker.finish_learning();
  if (!linker.speculation_held()) return gave_up("later lines change how earlier ones are read");
  if (!census.any_time) s.assumptions.push_back("the lines carry no timestamps: time is 1 us per line number");
  linker.take_all(batch);
  sink(batch, 1.0);
  s.records = linker.records_made();
  s.passes = 1;
  linker.describe(s);
  return std::optional<ImportStats>{std::move(s)};
}

bool two_passes_asked(const ImportOptions& options) {
  // ES_IMPORT_TWO_PASS=1: always learn the whole text first (tests compare the two ways).
  const char* env = std::getenv("ES_IMPORT_TWO_PASS");
  return options.two_passes || (env && *env && std::string_view(env) != "0");
}

}  // namespace

Result<ParsedTrace> parse_trace_text(std::string_view text, const ImportOptions& options, std::string_view name) {
  ParsedTrace out;
  if (!two_passes_asked(options)) {
    auto one = link_in_one_pass(
        text, options, std::string(name),
        [&](std::vector<es_record>& batch, double) {
          out.records.insert(out.records.end(), batch.begin(), batch.end());
          return true;
        },
        kKeepAll);
    if (!one) return Error{one.error()};
    if (*one) {
      out.stats = std::move(**one);
      out.config_json = import_config_json(out.stats, name);
      return out;
    }
    out.records.clear();
  }
  auto plan = plan_trace_text(text, options, name);
  if (!plan) return Error{plan.error()};
  link_trace_text(text, options, *plan, [&](std::vector<es_record>& batch, double) {
    out.records.insert(out.records.end(), batch.begin(), batch.end());
    return true;
  });
  out.stats = std::move(plan->stats);
  out.config_json = import_config_json(out.stats, name);
  return out;
}

Result<ImportStats> import_text_file(const std::string& file, const std::string& db, const ImportOptions& options) {
  std::error_code ec;
  if (std::filesystem::exists(db, ec) && !options.force)
    return fail("recording '" + db + "' already exists; pass --force to overwrite it or choose another name.");
  auto mapped = MappedFile::open(file);
  if (!mapped) return Error{mapped.error()};
  // The file's hash while the text is read (0.04 s per 50 MB with SHA-NI), stored at commit:
  // the writer does not wait for it.
  FileHasher hasher(file);
  const Release release = [&](size_t pos) { mapped->release_before(pos); };

  recorder::SessionStart info;
  info.source = recorder::Source::Import;
  info.scenario = std::filesystem::path(file).filename().string();
  info.guest_path = file;
  info.command_line = options.command_line;
  std::optional<PartialRecording> out;
  uint64_t done = 0;
  double next_progress = 0;
  // The recording (DB.partial) is made when the first records are ready: a text refused before
  // any (empty, not trace text) creates nothing. Its writer thread commits one batch while this
  // thread parses and links the next; host and counts are stored at commit.
  auto open_out = [&]() -> Result<void> {
    if (out) return {};
    auto made = PartialRecording::create(db, info, options.force);
    if (!made) return Error{made.error()};
    out.emplace(std::move(*made));
    return {};
  };
  std::string open_error;
  auto sink = [&](std::vector<es_record>& batch, double fraction) {
    if (!out) {
      if (auto r = open_out(); !r) {
        open_error = r.error();
        return false;
      }
    }
    if (options.observer)
      for (const es_record& r : batch) options.observer(r);
    out->add(batch.data(), batch.size());
    done += batch.size();
    if (options.progress && (fraction >= next_progress || fraction >= 1.0)) {
      options.progress(done, fraction);
      next_progress = fraction + 0.01;
    }
    return true;
  };

  // One pass when the linker's answers from the lines so far hold for the whole file (the
  // usual case), else pass 1 learns the whole text and pass 2 links it. A plugin observing the
  // records (import --plugin) sees them once: two passes.
  std::optional<ImportStats> stats;
  if (!options.observer && !two_passes_asked(options)) {
    std::string why;
    auto one = link_in_one_pass(mapped->text(), options, file, sink, release, &why);
    if (!one) return Error{one.error()};
    if (!open_error.empty()) return Error{open_error};
    stats = std::move(*one);
    if (!stats) {  // drop what was written, read the text again in two passes
      if (options.notice) options.notice("reading the text again in two passes (" + why + ")");
      out.reset();
      done = 0;
      next_progress = 0;
      mapped->rewind();
    }
  }
  if (!stats) {
    std::string dir = std::filesystem::path(db).parent_path().string();
    LineSpill spill(dir.empty() ? "." : dir);
    auto plan = plan_trace_text(mapped->text(), options, file, release, &spill);
    if (!plan) return Error{plan.error()};
    if (auto r = open_out(); !r) return Error{r.error()};
    if (!spill.ok()) mapped->rewind();  // pass 2 parses the text again
    link_trace_text(mapped->text(), options, *plan, sink, release, &spill);
    stats = std::move(plan->stats);
  }
  if (auto r = open_out(); !r) return Error{r.error()};  // a text whose events made no record
  const std::string detail = "end of the imported trace '" + file + "' (" + std::to_string(stats->lines) + " lines)";
  PartialRecording::SessionUpdate update;
  update.host = "imported trace (" + stats->format + ")";
  update.kernel = stats->era;
  update.config_json = import_config_json(*stats, file);
  update.guest_hash = hasher.hash();
  if (auto c = out->commit({ES_END_STOPPED, detail, 0}, update); !c) return Error{c.error()};
  return std::move(*stats);
}

}  // namespace es::import
