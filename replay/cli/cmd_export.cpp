// exitscope export: a recording, one chain, a time window or one vCPU as text, Markdown or
// a Perfetto trace or Chrome JSON for a bug report (replay/export/).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/cli/output.h"
#include "replay/cli/startup.h"
#include "replay/export/export.h"
#include "replay/names.h"
#include "replay/recording.h"

namespace es::cli {

namespace {
constexpr std::string_view kName = "export";
constexpr OptionSpec kOptions[] = {
    {"format", "F", "text (default), markdown, perfetto, chrome, svg or png"},
    {"output", "FILE", "write to FILE (also -o FILE); '-' or no option = standard output"},
    {"chain", "N", "only chain N (its root event id; 'exitscope chains DB' lists them)"},
    {"from", "T", "from session time T (ns, or with a unit: 1.5us, 20ms, 2s)"},
    {"to", "T", "up to session time T (inclusive)"},
    {"vcpu", "N", "only vCPU N"},
    {"histogram", "WHAT",
     "svg / png: draw a latency histogram instead of the timeline: exit (exit-to-entry "
     "times of the VM exits) or chain (raise-to-delivery times of the event chains)"},
    {"force", "", "replace FILE if it exists"},
};

// Percentage on stderr every 5%, rewritten in place, on a terminal; elsewhere (a log file, a
// CI job) one final line, not twenty (issue #17).
class Progress {
 public:
  explicit Progress(bool tty) : tty_(tty) {}
  void operator()(uint64_t done, uint64_t total) {
    if (total == 0) return;
    if (!tty_) {
      if (done == total && !shown_) {
        shown_ = true;
        std::fprintf(stderr, "exitscope export: %llu events exported\n", static_cast<unsigned long long>(total));
      }
      return;
    }
    const unsigned pct = static_cast<unsigned>(done * 100 / total);
    if (pct < next_) return;
    next_ = pct - pct % 5 + 5;
    std::fprintf(stderr, "\rexitscope export: %3u%% (%llu of %llu events)", pct, static_cast<unsigned long long>(done),
                 static_cast<unsigned long long>(total));
    shown_ = true;
  }
  ~Progress() {
    if (tty_ && shown_) std::fputc('\n', stderr);
  }

 private:
  bool tty_;
  bool shown_ = false;
  unsigned next_ = 5;
};

constexpr uint64_t kProgressAbove = 1'000'000;  // events; below this only a terminal sees progress

}  // namespace

int cmd_export(int argc, char** argv) {
  constexpr std::string_view kDescription =
      "Export the recording DB for a bug report, to FILE or standard output:\n"
      "  text      mailing-list ready: ASCII, at most 80 columns, a header of session facts,\n"
      "            one decoded event per line, chain members indented under their original\n"
      "            event, each chain ending with its outcome\n"
      "  markdown  the same as tables (session facts, one table per chain, other events)\n"
      "  perfetto  Perfetto's protobuf trace (binary; open in ui.perfetto.dev, query with\n"
      "            trace_processor): a process per guest level, a thread per lane (vCPU and\n"
      "            observing hypervisor, as the GUI draws them), exit-to-entry slices,\n"
      "            instants for injections / decisions / deliveries, one flow per chain,\n"
      "            the decoded SDM fields as args\n"
      "  chrome    the same as Chrome trace-event JSON, for chrome://tracing\n"
      "  svg, png  the timeline as a picture, drawn by the module built with exitscope-gui\n"
      "            (no display needed): a lane per vCPU and guest level, exits coloured by reason,\n"
      "            injections and deliveries, the --chain as arcs, a legend and a time axis;\n"
      "            with --histogram exit|chain, the latency histogram of 'exitscope stats\n"
      "            --histogram' instead: log2 time buckets on the x axis, counts on the y axis\n"
      "            (--from / --to / --vcpu select the exits and chains as 'stats' does)\n\n"
      "For a mail, export the chain the report is about: its events, decoded, in 80\n"
      "columns, with the session facts a reader needs to trust them (find N with\n"
      "'exitscope chains DB'):\n"
      "  exitscope export rec.db --chain 5 -o chain5.txt\n"
      "For an issue, the same as Markdown (event ids are written `#5` so they do not\n"
      "link to issues; a warning says when it exceeds the 65536 characters GitHub takes):\n"
      "  exitscope export rec.db --format markdown --chain 5 -o chain5.md\n"
      "A whole recording is for attaching, not pasting; --from / --to cut a window.\n"
      "A latency histogram as a picture:\n"
      "  exitscope export rec.db --format svg --histogram exit -o exits.svg";
  const CommandSpec kSpec{kName,         "DB [--format text|markdown|perfetto|chrome|svg|png] [OPTIONS] [-o FILE]",
                          kDescription,  kOptions,
                          kOneRecording, /*short_output=*/true};
  auto args = start_command(kSpec, argc, argv);
  if (!args) return args.exit_code;
  const std::string format_name = args->get("format").value_or("text");
  const exporter::ExportFormat* format = exporter::find_export_format(format_name);
  if (!format) {
    if (exporter::is_planned_format(format_name)) {
      std::fprintf(stderr,
                   "exitscope export: format '%s' is not available yet in this build (it will reuse the GUI's "
                   "timeline drawing); use one of %s.\n",
                   format_name.c_str(), exporter::format_name_list().c_str());
      return 2;
    }
    return usage_error(
        kName, "unknown format '" + format_name + "' for '--format' (one of " + exporter::format_name_list() + ")");
  }

  exporter::ExportOptions opt;
  if (auto v = args->get("chain")) {
    opt.chain = replay::parse_uint(*v);
    if (!opt.chain) return usage_error(kName, "option '--chain' needs a chain id (a number), not '" + *v + "'");
  }
  if (auto v = args->get("vcpu")) {
    auto n = replay::parse_uint(*v);
    if (!n || *n > 65535) return usage_error(kName, "option '--vcpu' needs a number up to 65535, not '" + *v + "'");
    opt.vcpu = static_cast<uint16_t>(*n);
  }
  int rc = 0;
  if (!time_option(kName, *args, "from", opt.from_ns, rc) || !time_option(kName, *args, "to", opt.to_ns, rc)) return rc;
  if (opt.from_ns && opt.to_ns && *opt.from_ns > *opt.to_ns)
    return usage_error(kName, "'--from' is after '--to'; give the earlier time to '--from'");
  if (auto h = args->get("histogram")) {
    if (*h != "exit" && *h != "chain")
      return usage_error(kName, "unknown histogram '" + *h + "' for '--histogram' (exit or chain)");
    if (format_name != "svg" && format_name != "png")
      return usage_error(kName,
                         "'--histogram' draws a picture: use it with '--format svg' or '--format png' "
                         "('exitscope stats --histogram' prints it as text)");
    if (opt.chain)
      return usage_error(kName, "'--histogram' and '--chain' do not go together: a histogram counts many chains");
    opt.histogram = *h;
  }

  const std::string output = args->get("output").value_or("-");
  if (output.empty()) return usage_error(kName, "option '--output' needs a file name or '-'");
  const std::string& db_path = args->positional[0];
  std::error_code ec;
  // A device, FIFO or terminal is written as a stream; only a regular file is replaced (RELIABILITY.md).
  OutputPlan plan{output, true};
  if (output != "-") {
    auto p = plan_output(output, {db_path}, false, "recording");
    if (!p) {
      std::fprintf(stderr, "exitscope export: %s\n", p.error().c_str());
      return 2;
    }
    plan = *p;
    // The same rule as record / import / migrate: an existing file is replaced only on request
    // (an export over another recording lost it).
    struct stat existing {};
    if (!plan.stream && ::stat(plan.path.c_str(), &existing) == 0 && !args->has("force")) {
      std::fprintf(stderr, "exitscope export: '%s' exists; pass --force to replace it, or choose another -o FILE.\n",
                   output.c_str());
      return 2;
    }
  } else if (format_name == "png" && ::isatty(STDOUT_FILENO)) {
    std::fprintf(stderr,
                 "exitscope export: a PNG is binary and standard output is a terminal; give -o FILE.png or "
                 "redirect standard output to a file.\n");
    return 2;
  } else if (format_name == "perfetto" && ::isatty(STDOUT_FILENO)) {
    std::fprintf(stderr,
                 "exitscope export: a Perfetto trace is binary protobuf and standard output is a terminal; "
                 "give -o FILE.pftrace, redirect standard output, or use --format chrome for JSON.\n");
    return 2;
  }

  auto rec = open_recording(kName, db_path);
  if (!rec) return 2;

  // A file is written beside the target and renamed at the end: a failed export leaves no
  // partial file. A stream is opened as it is (O_APPEND: /dev/stdout redirected to a file with
  // '>>' keeps what it holds) and never created, truncated or renamed over.
  const std::string partial = plan.path + ".partial";
  std::FILE* file = stdout;
  if (output != "-" && plan.stream) {
    const int fd = ::open(plan.path.c_str(), O_WRONLY | O_APPEND | O_NOCTTY | O_CLOEXEC);
    file = fd >= 0 ? ::fdopen(fd, "w") : nullptr;
    if (!file) {
      if (fd >= 0) ::close(fd);
      std::fprintf(stderr, "exitscope export: cannot write to '%s' (%s); check its permissions.\n", output.c_str(),
                   std::strerror(errno));
      return 2;
    }
  } else if (output != "-") {
    // FILE.partial is created, never followed: a symlink or FIFO left there is refused.
    struct stat st {};
    const bool foreign = ::lstat(partial.c_str(), &st) == 0 && !S_ISREG(st.st_mode);
    const int fd =
        foreign ? -1
                : ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0666);
    if (foreign || (fd >= 0 && (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)))) {
      if (fd >= 0) ::close(fd);
      std::fprintf(stderr, "exitscope export: '%s' exists and is not a regular file; move it away and retry.\n",
                   partial.c_str());
      return 2;
    }
    file = fd >= 0 ? ::fdopen(fd, "wb") : nullptr;
    if (!file && fd >= 0) ::close(fd);
    if (!file) {
      std::fprintf(stderr, "exitscope export: cannot write '%s'; check that its directory exists and is writable.\n",
                   output.c_str());
      return 2;
    }
  }
  Result<void> r;
  uint64_t characters = 0;
  {
    const bool tty = isatty(STDERR_FILENO) != 0;
    Progress progress(tty);
    opt.progress = [&](uint64_t done, uint64_t total) {
      if (tty || total > kProgressAbove) progress(done, total);
    };
    exporter::Output out(file);
    r = exporter::run_export(*rec, *format, opt, out);
    out.flush();
    characters = out.characters();
  }
  if (file != stdout && plan.stream) {
    if (std::fclose(file) != 0 && r)
      r = make_error("could not write to '" + output + "' (" + std::strerror(errno) + ").");
  } else if (file != stdout) {
    const bool closed = std::fclose(file) == 0;
    if (r && !closed) r = make_error("could not write '" + output + "' (disk full?).");
    if (!r) {
      std::filesystem::remove(partial, ec);
    } else if (std::filesystem::rename(partial, plan.path, ec); ec) {
      std::filesystem::remove(partial, ec);
      r = make_error("could not create '" + output + "'; check that it is writable.");
    }
  } else {
    std::fflush(stdout);
  }
  if (!r) {
    std::fprintf(stderr, "exitscope export: %s\n", r.error().c_str());
    return 2;
  }
  // Markdown is for an issue: say so when it will not paste as one.
  if (format_name == "markdown" && characters > exporter::kGithubBodyLimit)
    std::fprintf(stderr,
                 "exitscope export: warning: this Markdown is %llu characters, more than the %llu a GitHub issue or "
                 "comment holds; export one chain (--chain N, 'exitscope chains %s' lists them) or a window "
                 "(--from T --to T), or attach the file instead of pasting it.\n",
                 static_cast<unsigned long long>(characters),
                 static_cast<unsigned long long>(exporter::kGithubBodyLimit), db_path.c_str());
  return 0;
}

}  // namespace es::cli
