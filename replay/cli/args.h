// Minimal option parsing shared by the exitscope commands: --name value, --name=value,
// boolean --name, positional arguments, and -h / --help.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "schema/result.h"

namespace es::cli {

struct OptionSpec {
  std::string_view name;   // without the leading "--"
  std::string_view value;  // value placeholder ("N"), empty for a boolean flag
  std::string_view help;
};

struct Args {
  bool help = false;
  std::vector<std::string> positional;
  std::map<std::string, std::string, std::less<>> values;  // options given (boolean flags map to "")

  bool has(std::string_view name) const { return values.find(name) != values.end(); }
  std::optional<std::string> get(std::string_view name) const {
    auto it = values.find(name);
    return it == values.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
};

// argv[0] is the command name. Error: one sentence naming the bad option.
Result<Args> parse_args(std::string_view command, int argc, char** argv, std::span<const OptionSpec> specs);

// "Usage: exitscope CMD SYNOPSIS\n\nDESCRIPTION\n\nOptions:\n  --x N  help\n"
std::string usage_text(std::string_view command, std::string_view synopsis, std::string_view description,
                       std::span<const OptionSpec> specs);

// The candidate closest to a mistyped `word` (edit distance at most 2, or a unique prefix
// match), "" when none is close enough: for "did you mean" hints.
std::string closest_name(std::string_view word, std::span<const std::string_view> candidates);

// Prints "exitscope CMD: MESSAGE" and the --help hint to stderr; returns 2.
int usage_error(std::string_view command, std::string_view message);

// --NAME as an unsigned number no larger than `max` into `out` (left alone when not given).
// False after printing COMMAND's usage error for a bad value, with its exit code in `rc`.
bool number_option(std::string_view command, const Args& a, std::string_view name, uint64_t max,
                   std::optional<uint64_t>& out, int& rc);

// --NAME as a session time (replay::parse_time_ns: "1500", "1.5us", "20ms", "2s") into `out` (left
// alone when not given). False after printing COMMAND's usage error for a bad value, with its
// exit code in `rc`. For --from / --to.
bool time_option(std::string_view command, const Args& a, std::string_view name, std::optional<uint64_t>& out, int& rc);

}  // namespace es::cli
