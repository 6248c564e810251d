/* exitscope plugin ABI: in-process plugins that receive every record of a probe bus.
 *
 * A plugin is a shared object (built with -fvisibility=hidden) that exports exactly two
 * symbols, marked ES_PLUGIN_EXPORT:
 *
 *   ES_PLUGIN_EXPORT int es_plugin_version = ES_PLUGIN_VERSION;
 *   ES_PLUGIN_EXPORT int es_plugin_install(es_plugin_id_t id, const es_plugin_info_t *info,
 *                                          int argc, char **argv);
 *
 * The host reads es_plugin_version first and refuses the plugin unless
 * info->version_min <= es_plugin_version <= info->version_cur; then calls es_plugin_install
 * once. From it the plugin registers callbacks with the es_plugin_register_* functions
 * below (exported by the host, resolved when the plugin is loaded). A non-zero return
 * refuses installation: the host unregisters everything the plugin registered and unloads it.
 *
 * Only C types cross this boundary: fixed-width integers, const char*, opaque ids and
 * function pointers. No C++ / STL types, no ownership transfer.
 *
 * Threading: record callbacks run on the thread that emits the record (the hv vCPU thread);
 * they must not block for long and must not call back into the registration functions.
 *
 * Loading: `exitscope record ... --plugin PATH[:key=value,...]` (also `record --kvm`, where
 * records reach the plugin from the decoding thread, and `import`), repeatable; argv holds the
 * key=value strings in the order given. Plugins are installed before the recording is created,
 * in command-line order, and receive each record before the recorder does.
 *
 * Crashes: the host runs every call into a plugin (install, record and at-exit callbacks) under
 * its own SIGSEGV / SIGBUS / SIGFPE / SIGILL / SIGABRT handler. A plugin that faults there is
 * switched off: it is never called again, its remaining at-exit callbacks do not run, and it
 * is not unloaded (dlclose) for the rest of the process. `record` then stops the run and closes
 * the recording; `import` goes on without the plugin. Do not install handlers for these
 * signals from a plugin.
 *
 * Changelog
 *   1  first version: install / version negotiation, record and at-exit callbacks,
 *      es_plugin_outs, es_plugin_kind_name, es_plugin_exit_reason_name.
 *   1  (documentation only, no ABI change) loading from the command line (--plugin) and what
 *      the host does when a plugin crashes.
 */
#ifndef EXITSCOPE_PLUGIN_H
#define EXITSCOPE_PLUGIN_H

#include <stdint.h>

#include "exitscope/record.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ES_PLUGIN_EXPORT __attribute__((visibility("default")))

/* The API version this header describes (the host's "current"). */
#define ES_PLUGIN_VERSION 1
/* The oldest plugin API version a host built from this header still loads. */
#define ES_PLUGIN_VERSION_MIN 1

/* Opaque plugin handle, unique per loaded plugin for the life of the host. */
typedef uint64_t es_plugin_id_t;

typedef struct es_plugin_info {
  int version_min;         /* oldest API version the host supports */
  int version_cur;         /* API version of the host */
  const char* host_name;   /* "exitscope 0.1.0"; valid for the life of the plugin */
  const char* plugin_name; /* file name of the plugin or built-in name; valid for the life of the plugin */
  void* host_data;         /* NULL for loaded plugins; for built-ins, the pointer the host passed
                              to install_builtin (owned by the host, valid until unload) */
} es_plugin_info_t;

/* Called for every record of a subscribed kind. `rec` is valid only during the call: copy
 * what you keep. `userdata` is the pointer given at registration. */
typedef void (*es_plugin_record_cb_t)(es_plugin_id_t id, const struct es_record* rec, void* userdata);

/* Called once when the plugin is unloaded (host shutdown or refusal after install). */
typedef void (*es_plugin_udata_cb_t)(es_plugin_id_t id, void* userdata);

/* --- exported by the plugin -------------------------------------------------------- */

/* The API version the plugin was built against (set it to ES_PLUGIN_VERSION). */
/* ES_PLUGIN_EXPORT extern int es_plugin_version; */
typedef int (*es_plugin_install_fn)(es_plugin_id_t id, const es_plugin_info_t* info, int argc, char** argv);
/* `info` and argv (argc strings "key=value" as given by the user) are valid only during
 * es_plugin_install: copy what you keep. Return 0 to install, non-zero to refuse. */

/* --- exported by the host ---------------------------------------------------------- */

/* Subscribes `cb` to the kinds whose bit is set in `kind_mask` (bit k = ES_KIND k).
 * `userdata` is not touched by the host; it must stay valid until the at-exit callback.
 * Returns 0, or -1 if `id` is unknown or cb is NULL. */
int es_plugin_register_record_cb(es_plugin_id_t id, uint32_t kind_mask, es_plugin_record_cb_t cb, void* userdata);

/* Registers a callback run once at unload, after the last record callback. */
int es_plugin_register_atexit_cb(es_plugin_id_t id, es_plugin_udata_cb_t cb, void* userdata);

/* Writes a string to the host's output (stderr of the exitscope process). `s` is read
 * during the call only. */
void es_plugin_outs(const char* s);

/* Names of ABI values: static strings valid for the life of the process; "" if unknown.
 * Use these rather than keeping your own tables. */
const char* es_plugin_kind_name(uint16_t kind);          /* "VM_EXIT", ... */
const char* es_plugin_exit_reason_name(uint32_t reason); /* "EPT_VIOLATION", ... (basic reason) */

#ifdef __cplusplus
}
#endif

#endif /* EXITSCOPE_PLUGIN_H */
