#include "replay/cli/args.h"

#include <algorithm>
#include <cstdio>

#include "replay/names.h"

namespace es::cli {

namespace {

// Edit distance with adjacent transpositions ("chian" -> "chain" is one edit); the words are
// option, command and scenario names (short), so a full table is fine.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

}  // namespace

std::string closest_name(std::string_view word, std::span<const std::string_view> candidates) {
  if (word.empty()) return {};
  std::string_view best;
  size_t best_d = 3;  // at most 2 edits; never more than a third of the word
  for (std::string_view c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d && d * 3 <= std::max(word.size(), c.size())) {
      best_d = d;
      best = c;
    }
  }
  if (!best.empty()) return std::string(best);
  // A unique prefix ("--verb" for "--verbose").
  std::string_view only;
  for (std::string_view c : candidates) {
    if (word.size() >= 3 && c.substr(0, word.size()) == word) {
      if (!only.empty()) return {};
      only = c;
    }
  }
  return std::string(only);
}

Result<Args> parse_args(std::string_view command, int argc, char** argv, std::span<const OptionSpec> specs) {
  Args a;
  bool only_positional = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (only_positional || arg.size() < 2 || arg[0] != '-') {
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
    if (arg.substr(0, 2) != "--") {
      // "-verbose" for "--verbose": one dash short.
      for (const OptionSpec& s : specs)
        if (arg.substr(1) == s.name)
          return make_error("unknown option '" + std::string(arg) + "' (did you mean '--" + std::string(s.name) +
                            "'?)");
      return make_error("unknown option '" + std::string(arg) + "'");
    }
    std::string_view name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (const size_t eq = name.find('='); eq != std::string_view::npos) {
      inline_value = std::string(name.substr(eq + 1));
      name = name.substr(0, eq);
    }
    const OptionSpec* spec = nullptr;
    for (const OptionSpec& s : specs)
      if (s.name == name) spec = &s;
    if (!spec) {
      std::vector<std::string_view> names{"help"};
      for (const OptionSpec& s : specs) names.push_back(s.name);
      const std::string near = closest_name(name, names);
      return make_error("unknown option '--" + std::string(name) + "'" +
                        (near.empty() ? std::string() : " (did you mean '--" + near + "'?)"));
    }
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
    if (left.size() < 22)
      left.resize(22, ' ');
    else
      left += "  ";
    s += left + std::string(o.help) + "\n";
  }
  std::string help = "  -h, --help";
  help.resize(22, ' ');  // the column every option's help starts at
  s += help + "show this help\n";
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

bool time_option(std::string_view command, const Args& a, std::string_view name, std::optional<uint64_t>& out,
                 int& rc) {
  const auto t = a.get(name);
  if (!t) return true;
  const auto ns = replay::parse_time_ns(*t);
  if (!ns) {
    rc = usage_error(
        command, "option '--" + std::string(name) + "' needs a time such as 1500, 1.5us, 20ms or 2s, not '" + *t + "'");
    return false;
  }
  out = ns;
  return true;
}

}  // namespace es::cli
