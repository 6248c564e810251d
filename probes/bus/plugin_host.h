// Loads plugins (probes/include/exitscope/plugin.h) and attaches them to a ProbeBus.
// dlopen()ed plugins and built-in ones (exit statistics, the recorder) go through the same
// path: install function -> es_plugin_register_* -> ProbeBus::subscribe.
//
// Crash containment (in-process, no child): every call into a plugin (install, each record
// callback, at-exit) runs inside a guard frame kept per thread. While any host has a loaded
// plugin, SIGSEGV / SIGBUS / SIGFPE / SIGILL / SIGABRT go to a handler that, when the fault
// happened inside a guard frame, writes one sentence naming the plugin with write(2) and
// siglongjmp()s back to the host side of the call. The plugin is then switched off (never
// called again, its at-exit callbacks skipped, its object left mapped), the host's crash
// callback runs on the faulting thread (record: stop the run), and the caller finishes the
// recording normally with the crash as its end detail. A fault outside any guard frame gets the
// previous disposition (the process dies as it would have).
// Why not a child process fed from the bus: plugin callbacks are documented to run on the
// emitting thread, synchronously (a built-in emits from its callback), and a copy of every
// record through a pipe would cost the hv source more than the guard (a sigsetjmp without the
// signal mask, no syscall). The price: a plugin that corrupted the heap before faulting can
// still take the host down while it finishes; the recording stays consistent even then, since
// the recorder commits whole batches and SQLite's WAL rolls back an unfinished one.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "exitscope/plugin.h"
#include "exitscope/probe_bus.h"
#include "schema/result.h"

namespace es::probes {

struct Plugin;  // one loaded plugin (defined in plugin_host.cpp)

// One --plugin value: "PATH" or "PATH:key=value[,key=value...]". The options become the
// plugin's argv ("key=value" each, in order). The split is at the first ':' unless PATH as a
// whole names an existing file; a value cannot contain ','.
struct PluginSpec {
  std::string path;
  std::vector<std::string> args;
};
// Error: one sentence naming the value and what is wrong with it.
Result<PluginSpec> parse_plugin_spec(const std::string& value);

// Takes every "--plugin X" / "--plugin=X" out of `av` (av[0] is the command; a "--" ends the
// options) and returns the X in order, so the option can be repeated. Error: "--plugin" last
// without a value.
Result<std::vector<std::string>> take_plugin_options(std::vector<char*>& av);

// What a crashed plugin left behind (PluginHost::crash()).
struct PluginCrash {
  std::string plugin;  // its name (the path given)
  int signal = 0;      // SIGSEGV, ...
  std::string where;   // "record callback", "install", "at-exit callback"
  // "plugin 'x.so' crashed (SIGSEGV) in its record callback"
  std::string describe() const;
};

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

  // Checks without loading it (no plugin code runs) that `path` is a readable ELF file: for a
  // caller that must load plugins later (record --kvm, after dropping root) but wants the
  // obvious mistakes reported first. Error: the same sentence load() would give.
  static Result<void> check_file(const std::string& path);

  // Loads each spec in order; on the first failure unloads what this call loaded and returns
  // that plugin's sentence.
  Result<void> load_all(const std::vector<PluginSpec>& specs);

  // Called on the faulting thread, right after a plugin of this host crashed and was switched
  // off (e.g. Machine::request_stop). Set it before the run; keep it async-safe in spirit:
  // flag, don't print or allocate.
  void set_on_crash(std::function<void()> fn) { on_crash_ = std::move(fn); }
  // The end of the sentence the signal handler writes after "plugin 'X' crashed (SIGSEGV) in
  // its record callback", e.g. "; the run is stopped and the recording closed". Copied.
  void set_crash_note(const std::string& note);
  // The first crash of one of this host's plugins during a run or at unload, if any (kept
  // after unload_all).
  std::optional<PluginCrash> crash() const;

  // Internal, for the guard in plugin_host.cpp: the note above (nullptr if none), and the step
  // after a crash on the faulting thread (flag, then the crash callback).
  const char* crash_note() const { return crash_note_.get(); }
  void crashed(Plugin& p);

 private:
  Result<es_plugin_id_t> install(std::unique_ptr<Plugin> p, es_plugin_install_fn fn,
                                 const std::vector<std::string>& args);
  ProbeBus& bus_;
  std::vector<std::unique_ptr<Plugin>> plugins_;
  std::function<void()> on_crash_;
  mutable std::mutex crash_mu_;
  std::optional<PluginCrash> first_crash_;  // the first crash after install (any thread)
  std::unique_ptr<char[]> crash_note_;      // read by the signal handler
  bool guard_held_ = false;                 // this host holds a reference on the fault handlers
};

// The built-in exit-statistics plugin (probes/plugins/exit_stats.c): counts VM exits by
// reason and prints the table at unload. args: "out=PATH" writes the table to PATH instead.
extern "C" int es_builtin_exit_stats_install(es_plugin_id_t id, const es_plugin_info_t* info, int argc, char** argv);

}  // namespace es::probes
