// The session row's configuration as stored text: one line, "key": value pairs separated by ", "
// (the form recordings on disk have, which older readers searched as text). Header-only, for any
// nlohmann-json type, so es_recorder itself does not depend on the JSON library.
#pragma once

#include <string>

namespace es::recorder {

template <class Json>
std::string config_text(const Json& j) {
  // The indented dump puts each item on a line of its own after ",\n" (indent 0: no leading
  // spaces) and ": " after each key; a string never holds a raw newline (dump escapes it), so
  // joining the lines, with a space after each comma, gives the stored form.
  const std::string lines = j.dump(0, ' ', false, Json::error_handler_t::replace);  // bad UTF-8 -> U+FFFD
  std::string out;
  out.reserve(lines.size());
  for (const char c : lines) {
    if (c != '\n')
      out += c;
    else if (!out.empty() && out.back() == ',')
      out += ' ';
  }
  return out;
}

}  // namespace es::recorder
