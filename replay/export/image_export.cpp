// svg / png: drawn in this process by the picture module exitscope-render.so (render/, Qt6 Gui
// + Svg, interface in render_module.h), loaded with dlopen the first time a picture is asked for.
// The CLI links no Qt: every other format and command works on a host without it, and there
// only these two formats say why they cannot be drawn.
#include <dlfcn.h>

#include <string>

#include "replay/export/export.h"
#include "replay/export/installed.h"
#include "replay/export/render_module.h"

namespace es::exporter {

namespace {

struct Module {
  es_render_image_fn draw = nullptr;
  std::string error;  // dlerror()'s words when it could not be loaded
};

// Loaded once and never closed: Qt keeps state (its threads, its plugins) that outlives a call,
// so unloading it while the process runs on is not safe.
const Module& render_module() {
  static const Module m = [] {
    Module r;
    const std::string path = render_module_path();
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* why = ::dlerror();
      r.error = why ? why : path + ": cannot be loaded";
      return r;
    }
    r.draw = reinterpret_cast<es_render_image_fn>(::dlsym(handle, ES_RENDER_ENTRY_SYMBOL));
    if (!r.draw) r.error = path + " has no " ES_RENDER_ENTRY_SYMBOL " (a module of another exitscope build?)";
    return r;
  }();
  return m;
}

int to_output(void* opaque, const void* data, size_t size) {
  static_cast<Output*>(opaque)->put(std::string_view(static_cast<const char*>(data), size));
  return 0;
}

Result<void> export_image(ExportContext& ctx, uint32_t format) {
  const char* name = format == ES_RENDER_PNG ? "png" : "svg";
  const Module& m = render_module();
  if (!m.draw)
    return make_error(
        std::string("the ") + name +
        " format is drawn by the picture module built with the GUI (exitscope-gui), which could not be loaded (" +
        m.error +
        "); build it with 'cmake --build BUILD --target exitscope-gui' and install Qt 6 (qt6-base-dev and "
        "qt6-svg-dev), or use text, markdown or perfetto.");
  const ExportOptions& o = ctx.options;
  es_render_request req{};
  req.abi_version = ES_RENDER_ABI_VERSION;
  req.format = format;
  req.picture = !o.histogram              ? ES_RENDER_TIMELINE
                : *o.histogram == "chain" ? ES_RENDER_CHAIN_HISTOGRAM
                                          : ES_RENDER_EXIT_HISTOGRAM;
  req.has = (o.chain ? ES_RENDER_HAS_CHAIN : 0) | (o.from_ns ? ES_RENDER_HAS_FROM : 0) |
            (o.to_ns ? ES_RENDER_HAS_TO : 0) | (o.vcpu ? ES_RENDER_HAS_VCPU : 0);
  req.chain = o.chain.value_or(0);
  req.from_ns = o.from_ns.value_or(0);
  req.to_ns = o.to_ns.value_or(0);
  req.vcpu = o.vcpu.value_or(0);
  const std::string path = ctx.recording.path();
  req.recording = path.c_str();
  char error[1024] = "";
  if (m.draw(&req, &to_output, &ctx.out, error, sizeof error) != 0)
    return make_error(error[0] ? std::string(error) : std::string("could not draw the ") + name + " picture.");
  return {};
}

}  // namespace

Result<void> export_svg(ExportContext& ctx) { return export_image(ctx, ES_RENDER_SVG); }
Result<void> export_png(ExportContext& ctx) { return export_image(ctx, ES_RENDER_PNG); }

}  // namespace es::exporter
