/* Event formats parsed when a record needs them, not when the trace.dat is opened (issue #18:
 * trace.dat import against `trace-cmd report`).
 *
 * A trace.dat written by `trace-cmd record` carries the format of every event the kernel has
 * (2 305 formats in 101 systems on this machine's Debian 6.1, whatever -e selected) and the whole
 * kallsyms (5.4 MB). tracecmd_open() parses all of it before the first record can be read: 170 ms
 * of a 4 MB file whose records then take 0.3 s, time in which the import's writer has nothing to
 * write. The importer reads kvm events by name and every other event by its type id, once per
 * type (trace_dat.cpp), and prints no event, so it needs neither kallsyms nor the formats of
 * systems whose events the file does not hold.
 *
 * libtracecmd has no option to skip them. It parses each format through libtraceevent's
 * exported tep_parse_event() and the kallsyms through tep_parse_kallsyms(), calls into another
 * shared object that the dynamic linker binds to the first definition in the process: these
 * two, defined here, while es_tep_lazy_begin() .. es_tep_lazy_end() bracket the open. Outside
 * that window (the live recorder's libtracefs, any other caller) they pass every call to
 * libtraceevent's own definitions (dlsym RTLD_NEXT). Inside it, formats of the kvm and ftrace
 * systems are parsed at once; the others are kept as text, each under the type id its "ID:" line
 * gives, and es_tep_find_event() parses one when a record of that type is first looked up.
 * Nothing is lost: a format that was deferred parses exactly as it would have during the open.
 * If the binding does not happen (a static libtracecmd), everything is parsed at open as before.
 * The kept formats are one table for the process, each under its handle, behind one mutex: two
 * threads may open and read trace.dat files at the same time (the GUI importing while a test or
 * a plugin reads another). */
#define _GNU_SOURCE /* NOLINT(bugprone-reserved-identifier): dlfcn.h declares RTLD_NEXT only with it */
#include "replay/import/tep_lazy_formats.h"

#include <dlfcn.h>
#include <event-parse.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef enum tep_errno (*parse_event_fn)(struct tep_handle*, const char*, unsigned long, const char*);
typedef int (*parse_kallsyms_fn)(struct tep_handle*, const char*);

struct deferred_format {
  struct tep_handle* tep;
  unsigned long open; /* the open that kept it (es_tep_lazy_begin's number) */
  int id;
  char* sys;
  char* text;
  unsigned long size;
};

/* The bracket is the opening thread's own: another thread's calls meanwhile pass through. Kept
 * formats carry their handle, so two files open at once keep theirs apart. */
static _Thread_local int lazy_open;
/* This thread's current open, numbered for the whole process: a failed open forgets what it kept
 * by this number, not by its handle, which libtracecmd has freed by then and may have given to
 * another thread's open again. */
static _Thread_local unsigned long this_open;
static pthread_mutex_t deferred_lock = PTHREAD_MUTEX_INITIALIZER; /* guards the four below */
static unsigned long opens;
static struct deferred_format* deferred;
static size_t deferred_count, deferred_cap;

/* libtraceevent's own definitions, looked up once for the process. */
static parse_event_fn real_event;
static parse_kallsyms_fn real_kallsyms;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;
static void find_real(void) {
  real_event = (parse_event_fn)dlsym(RTLD_NEXT, "tep_parse_event");
  real_kallsyms = (parse_kallsyms_fn)dlsym(RTLD_NEXT, "tep_parse_kallsyms");
}
static parse_event_fn real_parse_event(void) {
  pthread_once(&real_once, find_real);
  return real_event;
}
static parse_kallsyms_fn real_parse_kallsyms(void) {
  pthread_once(&real_once, find_real);
  return real_kallsyms;
}

/* The number after "ID:" in a format's text (the line after "name:"), read as libtraceevent reads
 * it (strtoul base 0: decimal, 0x hex, 0 octal); -1 if there is none or it is no type id. */
static int format_id(const char* text, unsigned long size) {
  static const char key[] = "\nID:";
  const size_t klen = sizeof key - 1;
  for (unsigned long i = 0; i + klen <= size; ++i) {
    if (memcmp(text + i, key, klen) != 0) continue;
    unsigned long j = i + klen;
    while (j < size && (text[j] == ' ' || text[j] == '\t')) ++j;
    char digits[24];
    size_t n = 0;
    while (j < size && n + 1 < sizeof digits && text[j] != '\n') digits[n++] = text[j++];
    digits[n] = '\0';
    char* end = NULL;
    const unsigned long id = strtoul(digits, &end, 0);
    return end != digits && id <= 0xFFFF ? (int)id : -1;
  }
  return -1;
}

static int eager_system(const char* sys) { return !sys || !strcmp(sys, "kvm") || !strcmp(sys, "ftrace"); }

/* Keeps a format for later; 0 if it cannot be kept (then it is parsed now). */
static int keep(struct tep_handle* tep, int id, const char* sys, const char* text, unsigned long size) {
  char* s = strdup(sys);
  char* t = malloc(size ? size : 1);
  if (!s || !t) {
    free(s);
    free(t);
    return 0;
  }
  memcpy(t, text, size);
  pthread_mutex_lock(&deferred_lock);
  if (deferred_count == deferred_cap) {
    const size_t cap = deferred_cap ? deferred_cap * 2 : 256;
    struct deferred_format* grown = realloc(deferred, cap * sizeof *grown);
    if (!grown) {
      pthread_mutex_unlock(&deferred_lock);
      free(s);
      free(t);
      return 0;
    }
    deferred = grown;
    deferred_cap = cap;
  }
  deferred[deferred_count++] = (struct deferred_format){tep, this_open, id, s, t, size};
  pthread_mutex_unlock(&deferred_lock);
  return 1;
}

enum tep_errno tep_parse_event(struct tep_handle* tep, const char* buf, unsigned long size, const char* sys) {
  parse_event_fn real = real_parse_event();
  if (lazy_open && tep && buf && !eager_system(sys)) {
    const int id = format_id(buf, size);
    if (id >= 0 && keep(tep, id, sys, buf, size)) return TEP_ERRNO__SUCCESS;
  }
  return real ? real(tep, buf, size, sys) : TEP_ERRNO__MEM_ALLOC_FAILED;
}

int tep_parse_kallsyms(struct tep_handle* tep, const char* kallsyms) {
  if (lazy_open) return 0; /* the importer prints no function names */
  parse_kallsyms_fn real = real_parse_kallsyms();
  return real ? real(tep, kallsyms) : -1;
}

void es_tep_lazy_begin(void) {
  pthread_mutex_lock(&deferred_lock);
  this_open = ++opens;
  pthread_mutex_unlock(&deferred_lock);
  /* Only where both of libtraceevent's definitions are found behind ours. */
  lazy_open = real_parse_event() != NULL && real_parse_kallsyms() != NULL;
}

/* Drops the kept formats of handle `tep` (when not NULL), else of open number `open`. */
static void forget(const struct tep_handle* tep, unsigned long open) {
  pthread_mutex_lock(&deferred_lock);
  for (size_t i = 0; i < deferred_count;) {
    if (tep ? deferred[i].tep != tep : deferred[i].open != open) {
      ++i;
      continue;
    }
    free(deferred[i].sys);
    free(deferred[i].text);
    deferred[i] = deferred[--deferred_count];
  }
  if (deferred_count == 0) {
    free(deferred);
    deferred = NULL;
    deferred_cap = 0;
  }
  pthread_mutex_unlock(&deferred_lock);
}

void es_tep_lazy_end(int opened) {
  lazy_open = 0;
  /* A failed open freed its handle: what it kept goes too. */
  if (!opened && this_open) forget(NULL, this_open);
  this_open = 0;
}

void es_tep_lazy_forget(struct tep_handle* tep) {
  if (tep) forget(tep, 0);
}

size_t es_tep_lazy_deferred(void) {
  pthread_mutex_lock(&deferred_lock);
  const size_t n = deferred_count;
  pthread_mutex_unlock(&deferred_lock);
  return n;
}

struct tep_event* es_tep_find_event(struct tep_handle* tep, int id) {
  struct tep_event* ev = tep_find_event(tep, id);
  if (ev) return ev;
  parse_event_fn real = real_parse_event();
  struct deferred_format f = {0};
  int found = 0;
  pthread_mutex_lock(&deferred_lock);
  for (size_t i = 0; i < deferred_count; ++i) {
    if (deferred[i].tep != tep || deferred[i].id != id) continue;
    f = deferred[i];
    deferred[i] = deferred[--deferred_count];
    found = 1;
    break;
  }
  pthread_mutex_unlock(&deferred_lock);
  if (!found) return NULL;
  /* Parsed outside the lock: the handle is the caller's alone. */
  if (real) (void)real(tep, f.text, f.size, f.sys);
  free(f.sys);
  free(f.text);
  return tep_find_event(tep, id);
}
