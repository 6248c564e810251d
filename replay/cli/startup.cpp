#include "replay/cli/startup.h"

#include <cstdio>
#include <utility>

namespace es::cli {

Started start_command(const CommandSpec& spec, int argc, char** argv) {
  Started s;
  // parse_args knows long options only; -o is the usual short form of --output.
  std::vector<char*> av(argv, argv + argc);
  static char kOutput[] = "--output";
  if (spec.short_output)
    for (size_t i = 1; i < av.size(); ++i)
      if (std::string_view(av[i]) == "-o") av[i] = kOutput;
  std::vector<OptionSpec> accepted(spec.options.begin(), spec.options.end());
  accepted.insert(accepted.end(), spec.hidden_options.begin(), spec.hidden_options.end());
  auto args = parse_args(spec.name, static_cast<int>(av.size()), av.data(), accepted);
  if (!args) {
    s.exit_code = usage_error(spec.name, args.error());
    return s;
  }
  if (args->help) {
    std::fputs(usage_text(spec.name, spec.synopsis, spec.description, spec.options).c_str(), stdout);
    return s;
  }
  const size_t n = args->positional.size();
  if (n < spec.positional.min) {
    s.exit_code = usage_error(spec.name, spec.positional.missing);
    return s;
  }
  if (n > spec.positional.max) {
    s.exit_code = usage_error(spec.name, spec.positional.too_many);
    return s;
  }
  s.args = std::move(*args);
  return s;
}

std::optional<replay::Recording> open_recording(std::string_view command, const std::string& path) {
  auto rec = replay::Recording::open(path);
  if (!rec) {
    std::fprintf(stderr, "exitscope %.*s: %s\n", static_cast<int>(command.size()), command.data(), rec.error().c_str());
    return std::nullopt;
  }
  return std::move(*rec);
}

}  // namespace es::cli
