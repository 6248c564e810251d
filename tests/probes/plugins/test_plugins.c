/* Plugins for the loader tests, one per behaviour, selected by TEST_PLUGIN_KIND:
 *   1 newer API version than the host   2 refuses to install   3 exports nothing
 *   4 crashes on purpose, how and when its arguments say:
 *       crash=segv|bus|fpe|abort|stack|install|atexit   (default segv)
 *       after=N   crash in the record callback of the Nth VM exit (default 20)
 *       records=any   count records of every kind, not only VM exits
 *     segv writes through NULL, bus touches a truncated mapping past its end, fpe divides by
 *     zero, abort calls abort(), stack recurses without end; install and atexit crash (SIGSEGV)
 *     in that callback instead. */
#include "exitscope/plugin.h"

#if TEST_PLUGIN_KIND == 4
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

#if TEST_PLUGIN_KIND == 1
ES_PLUGIN_EXPORT int es_plugin_version = ES_PLUGIN_VERSION + 41;
ES_PLUGIN_EXPORT int es_plugin_install(es_plugin_id_t id, const es_plugin_info_t* info, int argc, char** argv) {
  (void)id;
  (void)info;
  (void)argc;
  (void)argv;
  return 0;
}
#elif TEST_PLUGIN_KIND == 2
static void never(es_plugin_id_t id, const struct es_record* rec, void* userdata) {
  (void)id;
  (void)rec;
  (void)userdata;
}
ES_PLUGIN_EXPORT int es_plugin_version = ES_PLUGIN_VERSION;
ES_PLUGIN_EXPORT int es_plugin_install(es_plugin_id_t id, const es_plugin_info_t* info, int argc, char** argv) {
  (void)info;
  (void)argc;
  (void)argv;
  es_plugin_register_record_cb(id, 1u << ES_KIND_VM_EXIT, never, 0);
  return 7;
}
#elif TEST_PLUGIN_KIND == 4
static char mode[16] = "segv";
static unsigned long after = 20, seen;
static uint32_t kind_mask = 1u << ES_KIND_VM_EXIT;
static volatile int zero, seven = 7;              /* 1 / y would be folded into a compare, no division */
static volatile int* volatile null_pointer;       /* NULL, out of the compiler's sight */
static volatile unsigned long depth_limit = ~0ul; /* never reached: the stack ends first */

static void segv(void) { *null_pointer = 1; }

static unsigned long recurse(unsigned long depth) {
  volatile char pad[256];
  pad[0] = (char)depth;
  if (depth == depth_limit) return 0;
  return recurse(depth + 1) + (unsigned long)pad[0];
}

static void crash_now(void) {
  if (strcmp(mode, "fpe") == 0) {
    volatile int x = seven / zero;
    (void)x;
  } else if (strcmp(mode, "abort") == 0) {
    abort();
  } else if (strcmp(mode, "stack") == 0) {
    (void)recurse(0);
  } else if (strcmp(mode, "bus") == 0) {
    /* A shared mapping of an empty file: touching it is SIGBUS (mmap(2), "Signals"). */
    char path[] = "/tmp/es_test_plugin_bus_XXXXXX";
    int fd = mkstemp(path);
    volatile char* m;
    if (fd < 0) segv();
    unlink(path);
    m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) segv();
    m[0] = 1;
  }
  segv();
}

static void on_exit_record(es_plugin_id_t id, const struct es_record* rec, void* userdata) {
  (void)id;
  (void)rec;
  (void)userdata;
  if (++seen == after && strcmp(mode, "install") != 0 && strcmp(mode, "atexit") != 0) crash_now();
}

static void on_unload(es_plugin_id_t id, void* userdata) {
  (void)id;
  (void)userdata;
  if (strcmp(mode, "atexit") == 0) segv();
}

ES_PLUGIN_EXPORT int es_plugin_version = ES_PLUGIN_VERSION;
ES_PLUGIN_EXPORT int es_plugin_install(es_plugin_id_t id, const es_plugin_info_t* info, int argc, char** argv) {
  int i;
  (void)info;
  /* A crashed plugin stays mapped (the host does not dlclose it): a second load in the same
   * process gets these statics as the first left them. */
  seen = 0;
  after = 20;
  snprintf(mode, sizeof mode, "segv");
  kind_mask = 1u << ES_KIND_VM_EXIT;
  for (i = 0; i < argc; i++) {
    if (strncmp(argv[i], "crash=", 6) == 0)
      snprintf(mode, sizeof mode, "%s", argv[i] + 6);
    else if (strncmp(argv[i], "after=", 6) == 0)
      after = strtoul(argv[i] + 6, NULL, 10);
    else if (strcmp(argv[i], "records=any") == 0)
      kind_mask = ~0u;
    else
      return 1;
  }
  if (strcmp(mode, "install") == 0) segv();
  if (es_plugin_register_record_cb(id, kind_mask, on_exit_record, NULL) != 0) return 1;
  return es_plugin_register_atexit_cb(id, on_unload, NULL);
}
#else
int not_a_plugin(void);
int not_a_plugin(void) { return 0; }
#endif
