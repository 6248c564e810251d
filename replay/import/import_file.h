// `exitscope import FILE -o DB`: the format from the content (a trace-cmd trace.dat by its magic,
// else trace text) or forced with ImportOptions::format, then the matching importer.
#pragma once

#include <string>

#include "replay/import/text_import.h"
#include "replay/import/trace_dat.h"
#include "schema/result.h"

namespace es::import {

// Imports FILE into DB (written as DB.partial, renamed once complete). `options.progress` is
// used by the trace.dat reader. Errors: one sentence naming the file and what to do.
Result<ImportStats> import_file(const std::string& file, const std::string& db, const TraceDatOptions& options);

}  // namespace es::import
