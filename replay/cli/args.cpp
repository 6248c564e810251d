#include "replay/cli/args.h"

#include <cstdio>

#include "replay/names.h"

namespace es::cli {

Result<Args> parse_args(std::string_view command, int argc, char** argv, std::span<const OptionSpec> specs) {
  Args a;
  bool only_positional = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (only_positional || arg.size() < 2 || arg[0] != '-' ) {
      a.positional.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positional = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      a.help = true;
      continue;
    }
    if (arg.substr(0, 2) != "--")
      return make_error("unknown option '" + std::string(arg) + "'");
    std::string_view name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (const size_t eq = name.find('='); eq != std::string_view::npos) {
      inline_value = std::string(name.substr(eq + 1));
      name = name.substr(0, eq);
    }
    const OptionSpec* spec = nullptr;
    for (const OptionSpec& s : specs)
      if (s.name == name) spec = &s;
    if (!spec) return make_error("unknown option '--" + std::string(name) + "'");
    if (spec->value.empty()) {
      if (inline_value) return make_error("option '--" + std::string(name) + "' takes no value");
      a.values[std::string(name)] = "";
      continue;
    }
    if (inline_value) {
      a.values[std::string(name)] = *inline_value;
    } else if (i + 1 < argc) {
      a.values[std::string(name)] = argv[++i];
    } else {
      return make_error("option '--" + std::string(name) + "' needs a value (" + std::string(spec->value) + ")");
    }
  }
  (void)command;
  return a;
}

std::string usage_text(std::string_view command, std::string_view synopsis, std::string_view description,
                       std::span<const OptionSpec> specs) {
  std::string s = "Usage: exitscope " + std::string(command) + " " + std::string(synopsis) + "\n\n" +
                  std::string(description) + "\n\nOptions:\n";
  for (const OptionSpec& o : specs) {
    std::string left = "  --" + std::string(o.name);
    if (!o.value.empty()) left += " " + std::string(o.value);
    if (left.size() < 22) left.resize(22, ' ');
    else left += "  ";
    s += left + std::string(o.help) + "\n";
  }
  s += "  -h, --help            show this help\n";
  return s;
}

int usage_error(std::string_view command, std::string_view message) {
  std::fprintf(stderr, "exitscope %.*s: %.*s; run 'exitscope %.*s --help' for usage.\n",
               static_cast<int>(command.size()), command.data(), static_cast<int>(message.size()), message.data(),
               static_cast<int>(command.size()), command.data());
  return 2;
}

bool number_option(std::string_view command, const Args& a, std::string_view name, uint64_t max,
                   std::optional<uint64_t>& out, int& rc) {
  auto v = a.get(name);
  if (!v) return true;
  auto n = replay::parse_uint(*v);
  if (!n || *n > max) {
    rc = usage_error(command, "option '--" + std::string(name) + "' needs a number up to " + std::to_string(max) +
                                  ", not '" + *v + "'");
    return false;
  }
  out = n;
  return true;
}

}  // namespace es::cli
