/* Exit counts: counts VM exits per vCPU, guest level and exit reason, and writes them as CSV
 * when unloaded (the end of the recording or import).
 *
 *   exitscope record --scenario timer-irq -o r.db --plugin build/plugins/es_exit_counts.so:out=exits.csv
 *
 * Arguments: out=PATH  the CSV file to write (default: the host's output, stderr).
 *
 * CSV, one header line, then one line per (vcpu, level, hv_level, reason), sorted by them:
 *   vcpu,level,hv_level,reason,name,count
 * level is the guest level the exit is about (1 = L1, 2 = L2), hv_level the hypervisor that
 * observed it (0 = L0, 1 = L1), reason the full 32-bit exit reason, name its basic reason's name
 * (empty if exitscope has none). Exits beyond MAX_KEYS distinct keys are counted on a last line
 * with vcpu "other", never dropped silently.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exitscope/plugin.h"

#define MAX_KEYS 4096

struct key_count {
  uint16_t vcpu;
  uint8_t level;
  uint8_t hv_level;
  uint32_t reason;
  uint64_t count;
};

struct exit_counts {
  uint32_t used;
  uint32_t last; /* index of the last key hit: exits come in runs of the same vCPU and reason */
  uint64_t other;
  struct key_count keys[MAX_KEYS];
  char out_path[1024];
};

static int same_key(const struct key_count* k, const struct es_record* rec) {
  return k->vcpu == rec->vcpu && k->level == rec->level && k->hv_level == rec->hv_level && k->reason == rec->reason;
}

static void on_exit_record(es_plugin_id_t id, const struct es_record* rec, void* userdata) {
  struct exit_counts* s = userdata;
  uint32_t i;
  (void)id;
  if (s->used && same_key(&s->keys[s->last], rec)) {
    s->keys[s->last].count++;
    return;
  }
  for (i = 0; i < s->used; i++) {
    if (same_key(&s->keys[i], rec)) {
      s->keys[i].count++;
      s->last = i;
      return;
    }
  }
  if (s->used == MAX_KEYS) {
    s->other++;
    return;
  }
  s->keys[s->used].vcpu = rec->vcpu;
  s->keys[s->used].level = rec->level;
  s->keys[s->used].hv_level = rec->hv_level;
  s->keys[s->used].reason = rec->reason;
  s->keys[s->used].count = 1;
  s->last = s->used++;
}

static int compare_keys(const void* a, const void* b) {
  const struct key_count *x = a, *y = b;
  if (x->vcpu != y->vcpu) return x->vcpu < y->vcpu ? -1 : 1;
  if (x->level != y->level) return x->level < y->level ? -1 : 1;
  if (x->hv_level != y->hv_level) return x->hv_level < y->hv_level ? -1 : 1;
  if (x->reason != y->reason) return x->reason < y->reason ? -1 : 1;
  return 0;
}

static void emit_line(FILE* f, const char* line) {
  if (f)
    fputs(line, f);
  else
    es_plugin_outs(line);
}

static void on_unload(es_plugin_id_t id, void* userdata) {
  struct exit_counts* s = userdata;
  char line[160];
  FILE* f = NULL;
  uint32_t i;
  (void)id;
  if (s->out_path[0]) {
    f = fopen(s->out_path, "w");
    if (!f) {
      snprintf(line, sizeof line, "exit-counts: cannot write '%.100s'; the counts go here instead\n", s->out_path);
      es_plugin_outs(line);
    }
  }
  qsort(s->keys, s->used, sizeof s->keys[0], compare_keys);
  emit_line(f, "vcpu,level,hv_level,reason,name,count\n");
  for (i = 0; i < s->used; i++) {
    const struct key_count* k = &s->keys[i];
    snprintf(line, sizeof line, "%u,%u,%u,%lu,%s,%llu\n", (unsigned)k->vcpu, (unsigned)k->level, (unsigned)k->hv_level,
             (unsigned long)k->reason, es_plugin_exit_reason_name(k->reason), (unsigned long long)k->count);
    emit_line(f, line);
  }
  if (s->other) {
    snprintf(line, sizeof line, "other,,,,,%llu\n", (unsigned long long)s->other);
    emit_line(f, line);
  }
  if (f) fclose(f);
  free(s);
}

ES_PLUGIN_EXPORT int es_plugin_version = ES_PLUGIN_VERSION;

ES_PLUGIN_EXPORT int es_plugin_install(es_plugin_id_t id, const es_plugin_info_t* info, int argc, char** argv) {
  struct exit_counts* s;
  int i;
  (void)info;
  s = calloc(1, sizeof *s);
  if (!s) return 1;
  for (i = 0; i < argc; i++) {
    if (strncmp(argv[i], "out=", 4) == 0 && argv[i][4] && strlen(argv[i] + 4) < sizeof s->out_path) {
      strcpy(s->out_path, argv[i] + 4);
    } else {
      char msg[256];
      snprintf(msg, sizeof msg, "exit-counts: unknown argument '%.120s' (expected out=PATH)\n", argv[i]);
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
