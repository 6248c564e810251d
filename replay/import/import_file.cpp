#include "replay/import/import_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>

namespace es::import {

Result<ImportStats> import_file(const std::string& file, const std::string& db, const TraceDatOptions& options) {
  const FormatChoice f = options.import.format;
  if (f == FormatChoice::TraceDat) return import_trace_dat_file(file, db, options);
  if (f == FormatChoice::Auto) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return Error{"cannot read trace file '" + file + "': " + std::strerror(errno) + "; check the path."};
    char head[16] = {};
    in.read(head, sizeof head);
    if (is_trace_dat(std::string_view(head, static_cast<size_t>(in.gcount()))))
      return import_trace_dat_file(file, db, options);
  }
  ImportOptions text = options.import;
  if (!text.progress) text.progress = options.progress;  // the same progress line as trace.dat
  return import_text_file(file, db, text);
}

}  // namespace es::import
