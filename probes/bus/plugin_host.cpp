#include "probes/bus/plugin_host.h"

#include <dlfcn.h>
#include <setjmp.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <system_error>
#include <unordered_map>

#include "exitscope/names.h"
#include "hv/arch/exit_reason.h"

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
    Plugin* plugin;
  };
  es_plugin_id_t id = 0;
  ProbeBus* bus = nullptr;
  PluginHost* host = nullptr;
  // Set on the faulting thread when a call into the plugin crashed: never called again, no
  // at-exit, no dlclose (its code may still be on a stack we jumped over, its destructors
  // would run in a broken state).
  std::atomic<bool> crashed{false};
  int crash_signal = 0;
  const char* crash_where = "";
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

// --- crash guard ----------------------------------------------------------------------
//
// One frame per call into a plugin, linked per thread. The handler only reads the innermost
// frame of its own thread (the faulting one: SIGSEGV, SIGBUS, SIGFPE, SIGILL and abort()'s
// SIGABRT are delivered to the thread that caused them), so no lock is taken in it.
struct GuardFrame {
  sigjmp_buf env;
  const char* plugin_name;  // Plugin::name, alive while the frame is
  const char* where;        // "record callback", ...
  const char* note;         // the rest of the sentence (the host's), or nullptr
  bool quiet;               // write nothing: the caller reports the crash itself (install)
  volatile sig_atomic_t signal;
};
thread_local GuardFrame* t_frame = nullptr;

constexpr int kFaultSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
std::mutex g_guard_mu;
int g_guard_refs = 0;
struct sigaction g_old_actions[std::size(kFaultSignals)];

const char* signal_abbrev(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "a fatal signal";
  }
}

void write_all(const char* s) {
  size_t n = std::strlen(s);  // strlen is async-signal-safe since POSIX.1-2016
  while (n > 0) {
    const ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

extern "C" void es_plugin_fault_handler(int sig, siginfo_t*, void*) {
  GuardFrame* f = t_frame;
  if (!f) {
    // Not inside a plugin: whatever handled this signal before us (default: the process
    // dies with it, core and all).
    for (size_t i = 0; i < std::size(kFaultSignals); ++i)
      if (kFaultSignals[i] == sig) ::sigaction(sig, &g_old_actions[i], nullptr);
    ::raise(sig);
    return;
  }
  t_frame = nullptr;
  f->signal = sig;
  if (!f->quiet) {
    write_all("exitscope: plugin '");
    write_all(f->plugin_name);
    write_all("' crashed (");
    write_all(signal_abbrev(sig));
    write_all(") in its ");
    write_all(f->where);
    if (f->note) write_all(f->note);
    write_all(".\n");
  }
  siglongjmp(f->env, 1);
}

void acquire_guard() {
  std::lock_guard lk(g_guard_mu);
  if (g_guard_refs++ > 0) return;
  struct sigaction sa {};
  sa.sa_sigaction = &es_plugin_fault_handler;
  // SA_NODEFER: the frame is left with siglongjmp without restoring a signal mask (no
  // syscall per callback), so the signal must not be blocked while the handler runs.
  // SA_ONSTACK: a plugin that overflows its stack still reaches the handler.
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < std::size(kFaultSignals); ++i) ::sigaction(kFaultSignals[i], &sa, &g_old_actions[i]);
}

void release_guard() {
  std::lock_guard lk(g_guard_mu);
  if (--g_guard_refs > 0) return;
  for (size_t i = 0; i < std::size(kFaultSignals); ++i) ::sigaction(kFaultSignals[i], &g_old_actions[i], nullptr);
}

// An alternate signal stack for this thread, once (kept for the thread's life).
void ensure_altstack() {
  thread_local bool done = false;
  if (done) return;
  done = true;
  stack_t cur{};
  if (::sigaltstack(nullptr, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) return;  // someone set one
  constexpr size_t kSize = 64 * 1024;
  stack_t st{};
  st.ss_sp = new char[kSize];  // intentionally never freed: the thread may fault until it ends
  st.ss_size = kSize;
  ::sigaltstack(&st, nullptr);
}

// Runs f() (a call into `p`) inside a guard frame. False if the plugin is switched off or
// crashed in this call (then it is switched off and its host told).
template <class F>
bool guarded_call(Plugin& p, const char* where, const char* note, bool quiet, F&& f) {
  if (p.crashed.load(std::memory_order_relaxed)) return false;
  ensure_altstack();
  GuardFrame frame;
  frame.plugin_name = p.name.c_str();
  frame.where = where;
  frame.note = note;
  frame.quiet = quiet;
  frame.signal = 0;
  GuardFrame* const outer = t_frame;
  if (sigsetjmp(frame.env, 0) != 0) {
    t_frame = outer;
    p.crash_signal = frame.signal;
    p.crash_where = where;
    p.crashed.store(true);
    if (p.host) p.host->crashed(p);
    return false;
  }
  t_frame = &frame;
  f();
  t_frame = outer;
  return true;
}

void deliver(void* user, const es_record* rec) {
  auto* s = static_cast<Plugin::Sub*>(user);
  Plugin& p = *s->plugin;
  guarded_call(p, "record callback", p.host ? p.host->crash_note() : nullptr, false,
               [s, rec] { s->cb(s->id, rec, s->userdata); });
}

void teardown(Plugin& p) {
  for (auto& s : p.subs) p.bus->unsubscribe(s->bus_handle);
  p.subs.clear();
  auto callbacks = std::move(p.atexit);
  p.atexit.clear();
  for (auto& [cb, user] : callbacks) {
    const es_plugin_id_t id = p.id;
    if (!guarded_call(p, "at-exit callback", "; what it writes at the end may be incomplete, the recording is not",
                      false, [cb = cb, user = user, id] { cb(id, user); }))
      break;
  }
  {
    std::lock_guard lk(g_registry_mu);
    g_registry.erase(p.id);
  }
  if (p.handle && !p.crashed.load()) dlclose(p.handle);
  p.handle = nullptr;
}

}  // namespace

std::string PluginCrash::describe() const {
  return "plugin '" + plugin + "' crashed (" + signal_abbrev(signal) + ") in its " + where;
}

Result<PluginSpec> parse_plugin_spec(const std::string& value) {
  const std::string form = " (give --plugin PATH or PATH:key=value,key=value)";
  if (value.empty()) return make_error("--plugin needs the path of a plugin shared object" + form);
  PluginSpec spec;
  std::error_code ec;
  const size_t colon = value.find(':');
  if (colon == std::string::npos || std::filesystem::exists(value, ec)) {
    spec.path = value;
    return spec;
  }
  spec.path = value.substr(0, colon);
  if (spec.path.empty()) return make_error("--plugin '" + value + "' has no path before ':'" + form);
  const std::string opts = value.substr(colon + 1);
  size_t pos = 0;
  while (pos <= opts.size()) {
    const size_t comma = std::min(opts.find(',', pos), opts.size());
    const std::string kv = opts.substr(pos, comma - pos);
    const size_t eq = kv.find('=');
    if (kv.empty() || eq == std::string::npos || eq == 0)
      return make_error("--plugin '" + value + "': option '" + kv + "' is not key=value" + form);
    spec.args.push_back(kv);
    pos = comma + 1;
  }
  return spec;
}

Result<std::vector<std::string>> take_plugin_options(std::vector<char*>& av) {
  std::vector<std::string> values;
  std::vector<char*> rest;
  for (size_t i = 0; i < av.size(); ++i) {
    const std::string_view a = av[i];
    if (i > 0 && a == "--") {
      rest.insert(rest.end(), av.begin() + static_cast<std::ptrdiff_t>(i), av.end());
      break;
    }
    if (i > 0 && a == "--plugin") {
      if (i + 1 >= av.size()) return make_error("option '--plugin' needs a value (PATH[:key=value,...])");
      values.emplace_back(av[++i]);
    } else if (i > 0 && a.starts_with("--plugin=")) {
      values.emplace_back(a.substr(9));
    } else {
      rest.push_back(av[i]);
    }
  }
  av = std::move(rest);
  return values;
}

PluginHost::PluginHost(ProbeBus& bus) : bus_(bus) {}
PluginHost::~PluginHost() {
  unload_all();
  if (guard_held_) release_guard();
}

void PluginHost::set_crash_note(const std::string& note) {
  auto copy = std::make_unique<char[]>(note.size() + 1);
  std::memcpy(copy.get(), note.c_str(), note.size() + 1);
  crash_note_ = std::move(copy);  // set before the run: the handler reads it only during one
}

void PluginHost::crashed(Plugin& p) {
  {
    std::lock_guard lk(crash_mu_);
    if (!first_crash_) first_crash_ = PluginCrash{p.name, p.crash_signal, p.crash_where};
  }
  if (on_crash_) on_crash_();
}

std::optional<PluginCrash> PluginHost::crash() const {
  std::lock_guard lk(crash_mu_);
  return first_crash_;
}

Result<void> PluginHost::check_file(const std::string& path) {
  const std::string tail = "; pass the path of a shared object built against exitscope/plugin.h.";
  const std::string file = path.find('/') == std::string::npos ? "./" + path : path;
  std::ifstream in(file, std::ios::binary);
  if (!in) return make_error("cannot load plugin '" + path + "' (" + std::strerror(errno) + ")" + tail);
  char magic[4] = {};
  in.read(magic, sizeof magic);
  if (in.gcount() != 4 || std::memcmp(magic,
                                      "\x7f"
                                      "ELF",
                                      4) != 0)
    return make_error("cannot load plugin '" + path + "' (not an ELF file)" + tail);
  return {};
}

Result<void> PluginHost::load_all(const std::vector<PluginSpec>& specs) {
  std::vector<es_plugin_id_t> loaded;
  for (const PluginSpec& s : specs) {
    auto id = load(s.path, s.args);
    if (!id) {
      for (auto it = loaded.rbegin(); it != loaded.rend(); ++it) unload(*it);
      return make_error(id.error());
    }
    loaded.push_back(*id);
  }
  return {};
}

Result<es_plugin_id_t> PluginHost::install(std::unique_ptr<Plugin> p, es_plugin_install_fn fn,
                                           const std::vector<std::string>& args) {
  p->bus = &bus_;
  p->host = this;
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
  int rc = 0;
  Plugin& pr = *p;
  // No crash callback for install: nothing runs yet; the error below is the report.
  auto on_crash = std::move(on_crash_);
  on_crash_ = nullptr;
  const bool ok = guarded_call(pr, "install function", nullptr, true,
                               [&] { rc = fn(pr.id, &pr.info, static_cast<int>(copies.size()), argv.data()); });
  on_crash_ = std::move(on_crash);
  if (!ok) {
    const std::string msg = "plugin '" + pr.name + "' crashed (" + signal_abbrev(pr.crash_signal) +
                            ") in its install function; fix the plugin or leave it out.";
    {
      std::lock_guard lk(crash_mu_);
      first_crash_.reset();  // reported through the error below, not as a crash of the run
    }
    teardown(pr);
    return make_error(msg);
  }
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
  if (!guard_held_) {
    acquire_guard();
    guard_held_ = true;
  }
  // A bare file name is a file here, as for every other file argument (dlopen would search
  // the library path for it instead).
  const std::string file = path.find('/') == std::string::npos ? "./" + path : path;
  // RTLD_LOCAL: two plugins may define the same internal names.
  void* h = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    return make_error("cannot load plugin '" + path + "' (" + (e ? e : "unknown error") +
                      "); pass the path of a shared object built against exitscope/plugin.h.");
  }
  const auto* version = static_cast<const int*>(dlsym(h, "es_plugin_version"));
  auto install_fn = reinterpret_cast<es_plugin_install_fn>(dlsym(h, "es_plugin_install"));
  std::string error;
  if (!version || !install_fn)
    error = "plugin '" + path +
            "' does not export es_plugin_version and es_plugin_install; build it with "
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
  on_crash_ = nullptr;  // the run is over: a crash at exit stops nothing
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
  sub->plugin = p;
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
  return es_kind_name(kind);  // the ABI's table (exitscope/names.h): a literal or ""
}

const char* es_plugin_exit_reason_name(uint32_t reason) {
  const std::string_view n = es::arch::exit_reason_name(es::arch::ExitReason(reason).basic_number());
  return n.empty() ? "" : n.data();
}

}  // extern "C"
