// exitscope-render.so: the pictures of render/ behind the C entry point of
// replay/export/render_module.h, for `exitscope export --format svg|png`, which loads this module
// with dlopen only for those formats (the CLI links no Qt). Built with hidden visibility and the
// static libraries' symbols kept local (render/CMakeLists.txt): es_render_image is its only export.
#include <QCoreApplication>
#include <QGuiApplication>
#include <algorithm>
#include <clocale>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "render/image.h"
#include "render/offscreen.h"
#include "replay/export/render_module.h"

namespace {

int fail(char* error, size_t error_size, const QString& sentence) {
  if (error && error_size) {
    const QByteArray text = sentence.toUtf8();
    const size_t n = std::min(static_cast<size_t>(text.size()), error_size - 1);
    std::memcpy(error, text.constData(), n);
    error[n] = '\0';
  }
  return 1;
}

// A QGuiApplication on the offscreen platform for one call, when the process has none: fonts
// and QPainter need one, a display is never needed, and the picture is the same whatever
// QT_QPA_PLATFORM or DISPLAY say (the command line's -platform outranks QT_QPA_PLATFORM).
// QCoreApplication's constructor sets the C locale from the environment (setlocale(LC_ALL, ""));
// the caller's is restored when the application goes.
class OffscreenApp {
 public:
  OffscreenApp() {
    if (QCoreApplication::instance()) return;
    if (const char* l = std::setlocale(LC_ALL, nullptr)) locale_ = l;
    es::render::provide_runtime_dir();
    app_ = std::make_unique<QGuiApplication>(argc_, argv_);
  }
  ~OffscreenApp() {
    if (!app_) return;
    app_.reset();
    std::setlocale(LC_ALL, locale_.c_str());
  }
  OffscreenApp(const OffscreenApp&) = delete;
  OffscreenApp& operator=(const OffscreenApp&) = delete;
  // A plain QCoreApplication (a caller without a GUI) cannot draw text.
  static bool usable() { return qobject_cast<QGuiApplication*>(QCoreApplication::instance()) != nullptr; }

 private:
  char arg0_[16] = "exitscope", arg1_[16] = "-platform", arg2_[16] = "offscreen";
  char* argv_[4] = {arg0_, arg1_, arg2_, nullptr};
  int argc_ = 3;
  std::string locale_ = "C";
  std::unique_ptr<QGuiApplication> app_;
};

}  // namespace

extern "C" __attribute__((visibility("default"))) int es_render_image(const es_render_request* req, es_render_sink sink,
                                                                      void* opaque, char* error, size_t error_size) {
  if (!req || !sink) return fail(error, error_size, QStringLiteral("the picture module was called without a request."));
  if (req->abi_version != ES_RENDER_ABI_VERSION)
    return fail(error, error_size,
                QStringLiteral("the picture module speaks version %1 of its interface, exitscope version %2; "
                               "install exitscope and exitscope-render.so from the same build.")
                    .arg(ES_RENDER_ABI_VERSION)
                    .arg(req->abi_version));
  if (!req->recording) return fail(error, error_size, QStringLiteral("the picture module got no recording."));
  es::render::ImageOptions opt;
  opt.format = req->format == ES_RENDER_PNG ? QStringLiteral("png") : QStringLiteral("svg");
  opt.width = static_cast<int>(req->width);
  opt.height = static_cast<int>(req->height);
  if (req->has & ES_RENDER_HAS_CHAIN) opt.chain = req->chain;
  if (req->has & ES_RENDER_HAS_FROM) opt.from_ns = req->from_ns;
  if (req->has & ES_RENDER_HAS_TO) opt.to_ns = req->to_ns;
  if (req->has & ES_RENDER_HAS_VCPU) opt.vcpu = static_cast<uint16_t>(req->vcpu);
  if (req->picture == ES_RENDER_EXIT_HISTOGRAM) opt.histogram = QStringLiteral("exit");
  if (req->picture == ES_RENDER_CHAIN_HISTOGRAM) opt.histogram = QStringLiteral("chain");
  QByteArray bytes;
  QString sentence;
  {
    OffscreenApp app;
    if (!OffscreenApp::usable())
      return fail(error, error_size,
                  QStringLiteral("the picture module needs a QGuiApplication, and this process has a plain "
                                 "QCoreApplication."));
    bytes = es::render::render_image(QString::fromUtf8(req->recording), opt, sentence);
  }
  if (bytes.isEmpty())
    return fail(error, error_size, sentence.isEmpty() ? QStringLiteral("could not draw the picture.") : sentence);
  if (sink(opaque, bytes.constData(), static_cast<size_t>(bytes.size())) != 0)
    return fail(error, error_size, QStringLiteral("the picture could not be written."));
  return 0;
}
