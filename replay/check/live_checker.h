// The live invariant checker: a built-in probe plugin (probes/include/exitscope/plugin.h)
// that feeds every record of the bus to a Checker and emits each violation it finds as an
// ES_KIND_VIOLATION record into the same bus, so the recorder stores it beside the events
// (reason = rule id, cause = offending event, origin = its chain, aux = count).
//
// Violations are emitted from inside the bus callback; ProbeBus::emit defers such nested
// records until the offending record has reached every subscriber (probes/include/exitscope/probe_bus.h).
//
//   es::check::LiveChecker live(bus);
//   probes::PluginHost host(bus);
//   live.install(host);             // after the recorder attached
//   ... vmm.run() ...
//   live.finish();                  // end-of-run rules (event-lost); before Recorder::finish
#pragma once

#include <cstddef>
#include <vector>

#include "exitscope/plugin.h"
#include "probes/bus/plugin_host.h"
#include "exitscope/probe_bus.h"
#include "replay/check/checker.h"
#include "schema/result.h"

namespace es::check {

class LiveChecker {
 public:
  // `bus` must outlive this object.
  explicit LiveChecker(probes::ProbeBus& bus, CheckOptions options = {});
  ~LiveChecker();
  LiveChecker(const LiveChecker&) = delete;
  LiveChecker& operator=(const LiveChecker&) = delete;

  // Installs the built-in plugin "checker" into `host` (whose bus must be this bus). The
  // host must unload it (or be destroyed) before this object is destroyed.
  Result<es_plugin_id_t> install(probes::PluginHost& host);
  // Runs the end-of-run rules and emits their violations into the bus. Call once after the
  // run and before the recorder finishes. Later records are no longer checked.
  void finish();

  size_t violation_count() const { return checker_.violations().size(); }
  const std::vector<Violation>& violations() const { return checker_.violations(); }
  const Checker& checker() const { return checker_; }

  // Plugin entry points (C ABI).
  static void on_record(es_plugin_id_t id, const es_record* rec, void* self);

 private:
  void emit_new();
  probes::ProbeBus& bus_;
  Checker checker_;
  size_t emitted_ = 0;
  bool finished_ = false;
};

}  // namespace es::check

// The built-in plugin's install function; info->host_data must be the LiveChecker.
extern "C" int es_builtin_checker_install(es_plugin_id_t id, const es_plugin_info_t* info, int argc, char** argv);
