#include "replay/import/tracecmd_shim.h"

#include <stddef.h>
#include <trace-cmd.h>

#include "replay/import/tep_lazy_formats.h"

void es_tracecmd_quiet(void) {
  tracecmd_set_loglevel(TEP_LOG_NONE);
  tep_set_loglevel(TEP_LOG_NONE);
  tracefs_set_loglevel(TEP_LOG_NONE);
}

struct tracecmd_input* es_tracecmd_open(const char* path) {
  /* No plugins: they only change how events print, and loading them reads the user's
   * ~/.local/lib/traceevent/plugins. */
  /* Formats of systems other than kvm and ftrace, and kallsyms, are not parsed during the open
   * (tep_lazy_formats.c): the importer looks formats up through es_tep_find_event. */
  es_tep_lazy_begin();
  struct tracecmd_input* h = tracecmd_open(path, TRACECMD_FL_LOAD_NO_PLUGINS);
  es_tep_lazy_end(h != NULL);
  return h;
}

void es_tracecmd_close(struct tracecmd_input* handle) {
  if (!handle) return;
  es_tep_lazy_forget(tracecmd_get_tep(handle));
  tracecmd_close(handle);
}

struct tep_handle* es_tracecmd_tep(struct tracecmd_input* handle) {
  return tracecmd_get_tep(handle);
}

int es_tracecmd_buffer_instances(struct tracecmd_input* handle) { return tracecmd_buffer_instances(handle); }

struct iterate_ctx {
  es_tracecmd_record_fn fn;
  void* data;
};

static int iterate_cb(struct tracecmd_input* handle, struct tep_record* record, int cpu, void* data) {
  struct iterate_ctx* ctx = (struct iterate_ctx*)data;
  (void)handle;
  return ctx->fn(record, cpu, ctx->data);
}

int es_tracecmd_iterate(struct tracecmd_input* handle, es_tracecmd_record_fn fn, void* data) {
  struct iterate_ctx ctx = {fn, data};
  return tracecmd_iterate_events(handle, NULL, 0, iterate_cb, &ctx);
}
