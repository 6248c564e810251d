#include "replay/check/live_checker.h"

namespace es::check {

namespace {

// The live checker has no recording to read a forgotten chain back from: it forgets settled
// chains to disk (issue #18: memory O(open chains), as the offline checker).
CheckOptions forgetting(CheckOptions options) {
  options.forget_to_disk = true;
  return options;
}

}  // namespace

LiveChecker::LiveChecker(probes::ProbeBus& bus, CheckOptions options)
    : bus_(bus), checker_(forgetting(std::move(options))) {}
LiveChecker::~LiveChecker() = default;

Result<es_plugin_id_t> LiveChecker::install(probes::PluginHost& host) {
  return host.install_builtin("checker", &es_builtin_checker_install, {}, this);
}

void LiveChecker::on_record(es_plugin_id_t, const es_record* rec, void* self) {
  auto* live = static_cast<LiveChecker*>(self);
  if (live->finished_ || rec->kind == ES_KIND_VIOLATION) return;
  live->checker_.feed(*rec);
  live->emit_new();
}

void LiveChecker::emit_new() {
  const auto& all = checker_.violations();
  for (; emitted_ < all.size(); ++emitted_) {
    es_record r = to_record(all[emitted_]);
    bus_.emit(r);  // deferred by the bus while inside a callback
  }
}

void LiveChecker::finish() {
  if (finished_) return;
  checker_.finish();
  emit_new();
  finished_ = true;
}

}  // namespace es::check

extern "C" int es_builtin_checker_install(es_plugin_id_t id, const es_plugin_info_t* info, int argc, char**) {
  if (!info || !info->host_data || argc != 0) return 1;
  // Every kind but our own output.
  const uint32_t mask = es::probes::kAllKinds & ~(1u << ES_KIND_VIOLATION);
  return es_plugin_register_record_cb(id, mask, &es::check::LiveChecker::on_record, info->host_data) == 0 ? 0 : 1;
}
