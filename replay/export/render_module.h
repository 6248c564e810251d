/* The C interface of the picture module exitscope-render.so (render/module.cpp, Qt6 Gui + Svg),
 * which `exitscope export --format svg|png` loads with dlopen (replay/export/image_export.cpp)
 * only for those formats, so the CLI, Qt-free, runs every other command on a host without Qt.
 * Fixed-width C types only: the module and the CLI share no C++ ABI. The module refuses a
 * request of another abi_version with a sentence.
 *
 * Version 1: the first.
 */
#ifndef EXITSCOPE_RENDER_MODULE_H
#define EXITSCOPE_RENDER_MODULE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ES_RENDER_ABI_VERSION 1u
/* The module's file name, and the one symbol it exports (an es_render_image_fn). */
#define ES_RENDER_MODULE_NAME  "exitscope-render.so"
#define ES_RENDER_ENTRY_SYMBOL "es_render_image"

enum { ES_RENDER_SVG = 0, ES_RENDER_PNG = 1 };                                                          /* format */
enum { ES_RENDER_TIMELINE = 0, ES_RENDER_EXIT_HISTOGRAM = 1, ES_RENDER_CHAIN_HISTOGRAM = 2 };           /* picture */
enum { ES_RENDER_HAS_CHAIN = 1, ES_RENDER_HAS_FROM = 2, ES_RENDER_HAS_TO = 4, ES_RENDER_HAS_VCPU = 8 }; /* has */

typedef struct es_render_request {
  uint32_t abi_version; /* ES_RENDER_ABI_VERSION, first in every version */
  uint32_t format;      /* ES_RENDER_SVG or ES_RENDER_PNG */
  uint32_t picture;     /* ES_RENDER_TIMELINE or a histogram (then no chain) */
  uint32_t has;         /* ES_RENDER_HAS_* bits: which of chain, from_ns, to_ns, vcpu are set */
  uint64_t chain;       /* a chain's id (its root event) */
  uint64_t from_ns;     /* session-time window, inclusive */
  uint64_t to_ns;
  uint32_t vcpu;
  uint32_t width;  /* pixels; 0 = the picture's default (timeline 1600 x by its lanes, histogram 1000 x 560) */
  uint32_t height; /* pixels; 0 = the picture's default */
  uint32_t reserved;
  /* The recording's path, UTF-8, NUL-terminated; read during the call only. */
  const char* recording;
} es_render_request;

/* Receives the picture's bytes, in order, possibly in several pieces; `data` is valid during the
 * call only. Returns 0 to go on; anything else stops the drawing (es_render_image then fails). */
typedef int (*es_render_sink)(void* opaque, const void* data, size_t size);

/* Draws the picture the request asks for and hands its bytes to `sink`. Returns 0 on success;
 * otherwise writes one sentence naming the problem into `error` (NUL-terminated, cut at
 * error_size) and returns nonzero, having passed no bytes to `sink` unless the sink stopped it.
 * Creates a QGuiApplication on Qt's offscreen platform for the call when the process has none
 * (no display needed; the drawing does not depend on the user's display), and restores the C
 * locale Qt sets. Call from the process's main thread, one call at a time. */
typedef int (*es_render_image_fn)(const es_render_request* req, es_render_sink sink, void* opaque, char* error,
                                  size_t error_size);

#ifdef __cplusplus
}
#endif

#endif /* EXITSCOPE_RENDER_MODULE_H */
