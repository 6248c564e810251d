// The start-up every exitscope command shares (issue #19): parse argv against the command's
// options, print --help, check the positional arguments, and open a recording with the
// command's error prefix. A command keeps only its own flags and what it prints:
//
//   constexpr CommandSpec kCommand{"info", "DB", "Summarize the recording DB ...", kOptions};
//   int cmd_info(int argc, char** argv) {
//     auto args = start_command(kCommand, argc, argv);
//     if (!args) return args.exit_code;      // --help printed (0) or a usage error (2)
//     auto rec = open_recording(kCommand.name, args->positional[0]);
//     if (!rec) return 2;                    // "exitscope info: <why>" printed
//     ...
//   }
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "replay/cli/args.h"
#include "replay/recording.h"

namespace es::cli {

// What a command takes after its options, and the usage error when the count is wrong.
struct Positional {
  size_t min = 1;
  size_t max = 1;
  std::string_view missing;   // fewer than min: "missing the recording file (DB)"
  std::string_view too_many;  // more than max: "expects exactly one recording file"
};
inline constexpr Positional kOneRecording{1, 1, "missing the recording file (DB)",
                                          "expects exactly one recording file"};

struct CommandSpec {
  std::string_view name;         // "info": the usage line and the "exitscope info: " error prefix
  std::string_view synopsis;     // "DB [OPTIONS]"
  std::string_view description;  // --help, after the usage line
  std::span<const OptionSpec> options;
  Positional positional = kOneRecording;
  bool short_output = false;                        // -o FILE is accepted for --output FILE (the options need "output")
  std::span<const OptionSpec> hidden_options = {};  // accepted, not listed by --help (test hooks)
};

// The arguments to run with, or (when the command is done already) its exit code.
struct Started {
  std::optional<Args> args;
  int exit_code = 0;  // when args is empty: 0 after --help, 2 after a usage error

  explicit operator bool() const { return args.has_value(); }
  Args& operator*() { return *args; }
  Args* operator->() { return &*args; }
};

// argv[0] is the command name (argv is not modified). --help prints the usage text to stdout (exit code 0); a bad
// option or a wrong number of positional arguments prints one usage error naming it to stderr
// (exit code 2). Otherwise the parsed arguments.
Started start_command(const CommandSpec& spec, int argc, char** argv);

// Opens the recording at `path` for reading (replay::Recording::open: an older schema is
// migrated on a copy). On failure prints "exitscope COMMAND: <the reason>" to stderr and
// returns nothing; the command then exits with 2.
std::optional<replay::Recording> open_recording(std::string_view command, const std::string& path);

}  // namespace es::cli
