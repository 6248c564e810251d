#include "replay/check/check_recording.h"

namespace es::check {

Result<std::vector<Violation>> check_recording(replay::Recording& rec, const CheckOptions& options) {
  Checker checker(options);
  auto r = rec.for_each_event({}, [&](const replay::Event& e) {
    checker.feed(e.rec);
    return true;
  });
  if (!r) return make_error(r.error());
  checker.finish();
  return checker.violations();
}

Result<std::vector<Violation>> recorded_violations(replay::Recording& rec) {
  std::vector<Violation> out;
  replay::EventFilter f;
  f.kind = ES_KIND_VIOLATION;
  auto r = rec.for_each_event(f, [&](const replay::Event& e) {
    const es_record& x = e.rec;
    Violation v;
    v.rule = static_cast<RuleId>(x.reason);
    v.chain = x.origin;
    if (x.aux64) v.events.push_back(x.aux64);
    if (x.cause) v.events.push_back(x.cause);
    v.count = x.aux;
    v.first_ns = v.last_ns = x.time_ns;
    v.level = x.level;
    v.hv_level = x.hv_level;
    v.vcpu = x.vcpu;
    const Rule* rule = find_rule(x.reason);
    v.explanation = rule ? std::string(rule->description) : "unknown rule " + std::to_string(x.reason);
    out.push_back(std::move(v));
    return true;
  });
  if (!r) return make_error(r.error());
  return out;
}

}  // namespace es::check
