#include "probes/bus/plugin_host.h"

#include <dlfcn.h>

#include <cstdio>
#include <mutex>
#include <unordered_map>

#include "hv/arch/exit_reason.h"
#include "replay/names.h"

#ifndef ES_TOOL_VERSION
#define ES_TOOL_VERSION "unknown"
#endif

namespace es::probes {

struct Plugin {
  struct Sub {
    es_plugin_id_t id;
    es_plugin_record_cb_t cb;
    void* userdata;
    int bus_handle;
  };
  es_plugin_id_t id = 0;
  ProbeBus* bus = nullptr;
  void* handle = nullptr;  // dlopen handle; nullptr for built-ins
  std::string host_name = "exitscope " ES_TOOL_VERSION;
  std::string name;
  es_plugin_info_t info{};
  std::vector<std::unique_ptr<Sub>> subs;
  std::vector<std::pair<es_plugin_udata_cb_t, void*>> atexit;
};

namespace {

// id -> plugin, for the C API entry points (plugins only hold their id).
std::mutex g_registry_mu;
std::unordered_map<es_plugin_id_t, Plugin*> g_registry;
es_plugin_id_t g_next_id = 1;

Plugin* find_plugin(es_plugin_id_t id) {
  std::lock_guard lk(g_registry_mu);
  auto it = g_registry.find(id);
  return it == g_registry.end() ? nullptr : it->second;
}

void deliver(void* user, const es_record* rec) {
  const auto* s = static_cast<const Plugin::Sub*>(user);
  s->cb(s->id, rec, s->userdata);
}

void teardown(Plugin& p) {
  for (auto& s : p.subs) p.bus->unsubscribe(s->bus_handle);
  p.subs.clear();
  auto callbacks = std::move(p.atexit);
  p.atexit.clear();
  for (auto& [cb, user] : callbacks) cb(p.id, user);
  {
    std::lock_guard lk(g_registry_mu);
    g_registry.erase(p.id);
  }
  if (p.handle) dlclose(p.handle);
  p.handle = nullptr;
}

}  // namespace

PluginHost::PluginHost(ProbeBus& bus) : bus_(bus) {}
PluginHost::~PluginHost() { unload_all(); }

Result<es_plugin_id_t> PluginHost::install(std::unique_ptr<Plugin> p, es_plugin_install_fn fn,
                                           const std::vector<std::string>& args) {
  p->bus = &bus_;
  {
    std::lock_guard lk(g_registry_mu);
    p->id = g_next_id++;
    g_registry[p->id] = p.get();
  }
  p->info.version_min = ES_PLUGIN_VERSION_MIN;
  p->info.version_cur = ES_PLUGIN_VERSION;
  p->info.host_name = p->host_name.c_str();
  p->info.plugin_name = p->name.c_str();
  std::vector<std::string> copies = args;  // argv is writable per C convention
  std::vector<char*> argv;
  for (auto& a : copies) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = fn(p->id, &p->info, static_cast<int>(copies.size()), argv.data());
  if (rc != 0) {
    const std::string name = p->name;
    teardown(*p);
    return make_error("plugin '" + name + "' refused to install (returned " + std::to_string(rc) +
                      "); check its arguments.");
  }
  const es_plugin_id_t id = p->id;
  plugins_.push_back(std::move(p));
  return id;
}

Result<es_plugin_id_t> PluginHost::load(const std::string& path, const std::vector<std::string>& args) {
  // RTLD_LOCAL: two plugins may define the same internal names.
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    return make_error("cannot load plugin '" + path + "' (" + (e ? e : "unknown error") +
                      "); pass the path of a shared object built against exitscope/plugin.h.");
  }
  const auto* version = static_cast<const int*>(dlsym(h, "es_plugin_version"));
  auto install_fn = reinterpret_cast<es_plugin_install_fn>(dlsym(h, "es_plugin_install"));
  std::string error;
  if (!version || !install_fn)
    error = "plugin '" + path + "' does not export es_plugin_version and es_plugin_install; build it with "
            "ES_PLUGIN_EXPORT from exitscope/plugin.h.";
  else if (*version > ES_PLUGIN_VERSION)
    error = "plugin '" + path + "' needs plugin API v" + std::to_string(*version) + " but this exitscope provides v" +
            std::to_string(ES_PLUGIN_VERSION) + "; upgrade exitscope or rebuild the plugin.";
  else if (*version < ES_PLUGIN_VERSION_MIN)
    error = "plugin '" + path + "' was built for plugin API v" + std::to_string(*version) +
            ", older than the oldest this exitscope supports (v" + std::to_string(ES_PLUGIN_VERSION_MIN) +
            "); rebuild it against the current exitscope/plugin.h.";
  if (!error.empty()) {
    dlclose(h);
    return make_error(error);
  }
  auto p = std::make_unique<Plugin>();
  p->handle = h;
  p->name = path;
  return install(std::move(p), install_fn, args);
}

Result<es_plugin_id_t> PluginHost::install_builtin(const std::string& name, es_plugin_install_fn fn,
                                                   const std::vector<std::string>& args, void* host_data) {
  auto p = std::make_unique<Plugin>();
  p->name = name;
  p->info.host_data = host_data;
  return install(std::move(p), fn, args);
}

bool PluginHost::unload(es_plugin_id_t id) {
  for (auto it = plugins_.begin(); it != plugins_.end(); ++it) {
    if ((*it)->id != id) continue;
    teardown(**it);
    plugins_.erase(it);
    return true;
  }
  return false;
}

void PluginHost::unload_all() {
  // Reverse order of installation, like destructors.
  while (!plugins_.empty()) {
    teardown(*plugins_.back());
    plugins_.pop_back();
  }
}

}  // namespace es::probes

// --- C API exported to plugins --------------------------------------------------------

extern "C" {

int es_plugin_register_record_cb(es_plugin_id_t id, uint32_t kind_mask, es_plugin_record_cb_t cb, void* userdata) {
  es::probes::Plugin* p = es::probes::find_plugin(id);
  if (!p || !cb) return -1;
  auto sub = std::make_unique<es::probes::Plugin::Sub>();
  sub->id = id;
  sub->cb = cb;
  sub->userdata = userdata;
  sub->bus_handle = p->bus->subscribe(kind_mask & es::probes::kAllKinds, &es::probes::deliver, sub.get());
  p->subs.push_back(std::move(sub));
  return 0;
}

int es_plugin_register_atexit_cb(es_plugin_id_t id, es_plugin_udata_cb_t cb, void* userdata) {
  es::probes::Plugin* p = es::probes::find_plugin(id);
  if (!p || !cb) return -1;
  p->atexit.emplace_back(cb, userdata);
  return 0;
}

void es_plugin_outs(const char* s) {
  if (s) std::fputs(s, stderr);
}

const char* es_plugin_kind_name(uint16_t kind) {
  // replay's names are string_views into string literals: NUL-terminated.
  const std::string_view n = es::replay::kind_name(kind);
  return n.empty() ? "" : n.data();
}

const char* es_plugin_exit_reason_name(uint32_t reason) {
  const std::string_view n = es::arch::exit_reason_name(es::arch::ExitReason(reason).basic_number());
  return n.empty() ? "" : n.data();
}

}  // extern "C"
