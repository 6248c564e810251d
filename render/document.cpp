#include "render/document.h"

namespace es::render {

std::unique_ptr<Document> Document::open(const QString& path, QString& error) {
  // An older-schema recording is read through a migrated copy: the window says so (status bar),
  // not stderr, which a GUI user does not see.
  std::string notice;
  replay::set_open_notice_handler([&notice](const std::string& n) { notice = n; });
  auto rec = replay::Recording::open(path.toStdString());
  replay::set_open_notice_handler({});
  if (!rec) {
    error = QString::fromStdString(rec.error());
    return nullptr;
  }
  std::unique_ptr<Document> d(new Document(std::move(rec).value()));
  d->open_notice_ = QString::fromStdString(notice);
  auto span = replay::event_span(d->rec_);
  if (!span) {
    error = QString::fromStdString(span.error());
    return nullptr;
  }
  d->span_ = *span;
  auto lanes = replay::lanes(d->rec_, d->span_);
  if (!lanes) {
    error = QString::fromStdString(lanes.error());
    return nullptr;
  }
  d->lanes_ = std::move(lanes).value();
  if (auto v = replay::violations(d->rec_)) d->violations_ = std::move(v).value();
  if (auto m = replay::chains_materialized(d->rec_)) d->chains_materialized_ = *m;
  if (auto drops = d->rec_.drop_counts()) d->drops_ = *drops;
  // The overview strip: an even sample of the whole session (a few thousand point reads).
  if (d->span_.count) {
    if (auto w = replay::window_events(d->rec_, d->span_.first_time_ns, d->span_.last_time_ns, 3000))
      d->overview_ = std::move(w->events);
  }
  return d;
}

std::optional<replay::Event> Document::event(uint64_t id) {
  auto e = rec_.event(id);
  if (!e) return std::nullopt;
  return *e;
}

std::optional<std::pair<uint64_t, uint64_t>> Document::chain_extent(uint64_t chain_id) {
  auto e = replay::chain_time_extent(rec_, chain_id, kChainMarks);
  if (!e) return std::nullopt;
  return *e;
}

TimelineScene Document::scene(uint64_t from_ns, uint64_t to_ns, std::optional<uint64_t> chain,
                              std::optional<uint64_t> cursor, std::optional<uint16_t> vcpu, uint64_t max_marks) {
  TimelineScene s;
  s.from_ns = from_ns;
  s.to_ns = std::max(to_ns, from_ns + 1);
  s.session_from_ns = span_.first_time_ns;
  s.session_to_ns = std::max(span_.last_time_ns, span_.first_time_ns + 1);
  for (const replay::Lane& l : lanes_)
    if (!vcpu || l.vcpu == *vcpu) s.lanes.push_back(l);
  if (auto w = replay::window_events(rec_, s.from_ns, s.to_ns, max_marks, vcpu)) {
    s.events = std::move(w->events);
    s.sampled = !w->exact;
    s.window_count = w->approx_count;
  }
  if (chain && *chain) {
    s.chain_id = *chain;
    const std::vector<replay::Event>* members = nullptr;
    std::optional<replay::ChainMarks> marks;
    if (*chain == cached_chain_) {
      members = &cached_members_;
    } else if (auto m = replay::chain_marks(rec_, *chain, s.from_ns, s.to_ns, kChainMarks)) {
      marks = std::move(m).value();
      members = &marks->members;
      s.chain_sampled = !marks->exact;
      s.chain_in_window = marks->in_window;
      if (marks->whole) {  // a chain drawn whole stays the same whatever the window: kept
        cached_chain_ = *chain;
        cached_members_ = std::move(marks->members);
        members = &cached_members_;
      }
    }
    if (members)
      for (const replay::Event& e : *members)
        if (!vcpu || e.rec.vcpu == *vcpu) s.chain.push_back(e);
  }
  for (const replay::Event& v : violations_)
    if (!vcpu || v.rec.vcpu == *vcpu) s.violations.push_back(v);
  s.overview = overview_;
  s.cursor = cursor;
  return s;
}

}  // namespace es::render
