// One import session: a trace file (trace-cmd trace.dat, KVM trace text) into a recording
// (replay/import), with your plugins seeing every imported record. Prints nothing and chooses
// no exit code; the CLI does (replay/cli/cmd_import.cpp).
//
//   auto s = es::session::ImportSession::open(request);  // plugins loaded, nothing written yet
//   auto stats = (*s)->run();                             // DB complete (or nothing: an error)
//   ... print *stats ...
//   bool crashed = (*s)->unload_plugins();                // your plugins' at-exit output
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "probes/bus/plugin_host.h"
#include "replay/import/text_import.h"
#include "schema/result.h"

namespace es::session {

struct ImportRequest {
  std::string file;    // the trace
  std::string output;  // the recording (written as OUTPUT.partial, renamed once complete)
  import::FormatChoice format = import::FormatChoice::Auto;
  bool force = false;        // replace `output` if it exists
  std::string command_line;  // for the session row
  std::vector<probes::PluginSpec> plugins;
  // trace.dat: now and then, the records read so far and the fraction done (-1: compressed).
  std::function<void(uint64_t records, double fraction)> progress;
  // Text: a sentence when the import reads the text again and its progress starts over.
  std::function<void(const std::string&)> notice;
};

class ImportSession {
 public:
  // Loads your plugins, in order. Error: one that cannot be loaded (nothing is written).
  static Result<std::unique_ptr<ImportSession>> open(const ImportRequest& request);
  ~ImportSession();
  ImportSession(const ImportSession&) = delete;
  ImportSession& operator=(const ImportSession&) = delete;

  // Imports the trace. A plugin that crashes is switched off and the import goes on. Error: one
  // sentence naming the file and what to do (no recording is left behind). Call once.
  Result<import::ImportStats> run();
  // Unloads your plugins (at-exit callbacks run now). True if one crashed, at any time.
  bool unload_plugins();

 private:
  ImportSession() = default;
  ImportRequest request_;
  probes::ProbeBus bus_;
  std::unique_ptr<probes::PluginHost> plugins_;
  bool ran_ = false, unloaded_ = false;
};

}  // namespace es::session
