// Loads plugins (probes/include/exitscope/plugin.h) and attaches them to a ProbeBus.
// dlopen()ed plugins and built-in ones (exit statistics, the recorder) go through the same
// path: install function -> es_plugin_register_* -> ProbeBus::subscribe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "exitscope/plugin.h"
#include "probes/bus/probe_bus.h"
#include "schema/result.h"

namespace es::probes {

struct Plugin;  // one loaded plugin (defined in plugin_host.cpp)

class PluginHost {
 public:
  // `bus` must outlive the host.
  explicit PluginHost(ProbeBus& bus);
  // Unloads every plugin: unsubscribes, runs at-exit callbacks, dlcloses.
  ~PluginHost();
  PluginHost(const PluginHost&) = delete;
  PluginHost& operator=(const PluginHost&) = delete;

  // dlopen()s `path`, negotiates the version and calls es_plugin_install with `args`.
  // Error: one sentence naming the file and what to do.
  Result<es_plugin_id_t> load(const std::string& path, const std::vector<std::string>& args = {});

  // Installs a plugin linked into the host; `host_data` reaches it as info->host_data.
  Result<es_plugin_id_t> install_builtin(const std::string& name, es_plugin_install_fn install,
                                         const std::vector<std::string>& args = {}, void* host_data = nullptr);

  // Unloads one plugin (at-exit callback runs). False if unknown.
  bool unload(es_plugin_id_t id);
  void unload_all();
  size_t size() const { return plugins_.size(); }

 private:
  Result<es_plugin_id_t> install(std::unique_ptr<Plugin> p, es_plugin_install_fn fn,
                                 const std::vector<std::string>& args);
  ProbeBus& bus_;
  std::vector<std::unique_ptr<Plugin>> plugins_;
};

// The built-in exit-statistics plugin (probes/plugins/exit_stats.c): counts VM exits by
// reason and prints the table at unload. args: "out=PATH" writes the table to PATH instead.
extern "C" int es_builtin_exit_stats_install(es_plugin_id_t id, const es_plugin_info_t* info, int argc,
                                             char** argv);

}  // namespace es::probes
