/* The few libtracecmd calls the trace.dat importer makes (trace_dat.cpp), behind a C API:
 * libtracecmd's header includes tracefs.h, which does not compile as C++. libtraceevent's
 * event-parse.h does, so record and field decoding stay in C++. */
#ifndef ES_IMPORT_TRACECMD_SHIM_H
#define ES_IMPORT_TRACECMD_SHIM_H

#ifdef __cplusplus
extern "C" {
#endif

struct tracecmd_input;
struct tep_handle;
struct tep_record;

/* Silences libtracecmd, libtraceevent and libtracefs (their warnings go to stderr otherwise):
 * the importer reports problems itself, in one sentence. */
void es_tracecmd_quiet(void);

/* Opens the trace.dat at `path` without loading plugins and reads its headers and CPU data
 * index; the formats of systems other than kvm and ftrace are parsed when es_tep_find_event
 * (tep_lazy_formats.h) first asks for one, kallsyms never. NULL on failure. */
struct tracecmd_input* es_tracecmd_open(const char* path);
void es_tracecmd_close(struct tracecmd_input* handle);

/* The event formats of the file; owned by the handle. */
struct tep_handle* es_tracecmd_tep(struct tracecmd_input* handle);

/* Trace instance buffers besides the top one (only the top one is read). */
int es_tracecmd_buffer_instances(struct tracecmd_input* handle);

/* Calls `fn` for every record of every CPU in time order (the record is valid during the call
 * only). `fn` returns 0 to go on, anything else to stop. Returns libtracecmd's result. */
typedef int (*es_tracecmd_record_fn)(struct tep_record* record, int cpu, void* data);
int es_tracecmd_iterate(struct tracecmd_input* handle, es_tracecmd_record_fn fn, void* data);

#ifdef __cplusplus
}
#endif

#endif /* ES_IMPORT_TRACECMD_SHIM_H */
