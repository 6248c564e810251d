#include "session/import_session.h"

#include "replay/import/import_file.h"

namespace es::session {

Result<std::unique_ptr<ImportSession>> ImportSession::open(const ImportRequest& request) {
  std::unique_ptr<ImportSession> s(new ImportSession());
  s->request_ = request;
  // Your plugins load before the recording exists; they unload (at-exit callbacks) after it is
  // complete.
  s->plugins_ = std::make_unique<probes::PluginHost>(s->bus_);
  if (auto l = s->plugins_->load_all(request.plugins); !l) return Error{l.error()};
  s->plugins_->set_crash_note("; it is switched off and the import goes on without it");
  return s;
}

ImportSession::~ImportSession() = default;  // the host unloads the plugins the caller did not

Result<import::ImportStats> ImportSession::run() {
  if (ran_) return Error{"this import has already run"};
  ran_ = true;
  import::TraceDatOptions dat;
  dat.import.format = request_.format;
  dat.import.force = request_.force;
  dat.import.command_line = request_.command_line;
  dat.progress = request_.progress;
  dat.import.notice = request_.notice;
  if (plugins_->size() > 0)
    dat.import.observer = [this](const es_record& r) {
      es_record copy = r;  // the bus stamps version / id on what it delivers
      bus_.emit(copy);
    };
  return import::import_file(request_.file, request_.output, dat);
}

bool ImportSession::unload_plugins() {
  if (!plugins_) return false;
  if (!unloaded_) {
    plugins_->unload_all();
    unloaded_ = true;
  }
  return plugins_->crash().has_value();
}

}  // namespace es::session
