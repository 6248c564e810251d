/* Event formats of a trace.dat parsed when a record needs them (tep_lazy_formats.c). */
#ifndef ES_IMPORT_TEP_LAZY_FORMATS_H
#define ES_IMPORT_TEP_LAZY_FORMATS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tep_handle;
struct tep_event;

/* Brackets tracecmd_open() on the calling thread: formats of systems other than kvm and ftrace
 * are kept as text, and kallsyms is not parsed. `opened`: whether the open gave a handle (if not,
 * what it kept is freed). */
void es_tep_lazy_begin(void);
void es_tep_lazy_end(int opened);
/* Frees the kept formats of `tep` (before the handle is closed). */
void es_tep_lazy_forget(struct tep_handle* tep);
/* How many formats are kept unparsed now (tests). */
size_t es_tep_lazy_deferred(void);
/* tep_find_event(), parsing a kept format of that id first if there is one. */
struct tep_event* es_tep_find_event(struct tep_handle* tep, int id);

#ifdef __cplusplus
}
#endif

#endif /* ES_IMPORT_TEP_LAZY_FORMATS_H */
