/* Exit statistics: counts VM exits by exit reason and prints the table when unloaded.
 *
 * Built twice from this file: as the example plugin es_exit_stats.so (loaded with dlopen)
 * and linked into the host as the built-in "exit-stats" (ES_PLUGIN_BUILTIN), so both go
 * through the same install / register path.
 *
 * Arguments: out=PATH  write the table to PATH instead of the host output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exitscope/plugin.h"

#define MAX_REASONS 128

struct exit_stats {
  uint64_t total;
  uint32_t used;
  uint32_t reason[MAX_REASONS]; /* full exit reason as recorded */
  uint64_t count[MAX_REASONS];
  uint64_t other; /* exits beyond MAX_REASONS distinct reasons */
  char out_path[512];
};

static void on_exit_record(es_plugin_id_t id, const struct es_record* rec, void* userdata) {
  struct exit_stats* s = userdata;
  uint32_t i;
  (void)id;
  s->total++;
  for (i = 0; i < s->used; i++) {
    if (s->reason[i] == rec->reason) {
      s->count[i]++;
      return;
    }
  }
  if (s->used < MAX_REASONS) {
    s->reason[s->used] = rec->reason;
    s->count[s->used] = 1;
    s->used++;
  } else {
    s->other++;
  }
}

static void on_unload(es_plugin_id_t id, void* userdata) {
  struct exit_stats* s = userdata;
  char line[160];
  FILE* f = NULL;
  uint32_t i;
  (void)id;
  if (s->out_path[0]) f = fopen(s->out_path, "w");
  snprintf(line, sizeof line, "exit-stats: %llu VM exits\n", (unsigned long long)s->total);
  if (f)
    fputs(line, f);
  else
    es_plugin_outs(line);
  for (i = 0; i < s->used; i++) {
    const char* name = es_plugin_exit_reason_name(s->reason[i]);
    snprintf(line, sizeof line, "  %-24s %llu\n", name[0] ? name : "(unknown)", (unsigned long long)s->count[i]);
    if (f)
      fputs(line, f);
    else
      es_plugin_outs(line);
  }
  if (s->other) {
    snprintf(line, sizeof line, "  %-24s %llu\n", "(other)", (unsigned long long)s->other);
    if (f)
      fputs(line, f);
    else
      es_plugin_outs(line);
  }
  if (f) fclose(f);
  free(s);
}

#ifdef ES_PLUGIN_BUILTIN
#define ES_EXIT_STATS_INSTALL es_builtin_exit_stats_install
#else
ES_PLUGIN_EXPORT int es_plugin_version = ES_PLUGIN_VERSION;
#define ES_EXIT_STATS_INSTALL es_plugin_install
#endif

ES_PLUGIN_EXPORT int ES_EXIT_STATS_INSTALL(es_plugin_id_t id, const es_plugin_info_t* info, int argc, char** argv) {
  struct exit_stats* s;
  int i;
  (void)info;
  s = calloc(1, sizeof *s);
  if (!s) return 1;
  for (i = 0; i < argc; i++) {
    if (strncmp(argv[i], "out=", 4) == 0 && strlen(argv[i] + 4) < sizeof s->out_path) {
      strcpy(s->out_path, argv[i] + 4);
    } else {
      char msg[256];
      snprintf(msg, sizeof msg, "exit-stats: unknown argument '%s' (expected out=PATH)\n", argv[i]);
      es_plugin_outs(msg);
      free(s);
      return 1;
    }
  }
  if (es_plugin_register_record_cb(id, 1u << ES_KIND_VM_EXIT, on_exit_record, s) != 0 ||
      es_plugin_register_atexit_cb(id, on_unload, s) != 0) {
    free(s);
    return 1;
  }
  return 0;
}
