#include "gui/event_table_model.h"

#include <QBrush>
#include <QColor>
#include <QFont>
#include <algorithm>

#include "replay/format.h"
#include "replay/names.h"

namespace es::gui {

void EventTableModel::set_document(render::Document* doc) {
  beginResetModel();
  doc_ = doc;
  filter_.reset();
  pinned_.reset();
  by_time_ = descending_ = false;
  rebuild();
  endResetModel();
}

void EventTableModel::rebuild() {
  pages_.clear();
  lru_.clear();
  ids_.clear();
  use_ids_ = false;
  rows_ = 0;
  if (!doc_) return;
  if (filter_ || pinned_) {
    if (pinned_)
      ids_ = *pinned_;
    else if (auto ids = replay::matching_ids(doc_->recording(), *filter_))
      ids_ = std::move(ids).value();
    use_ids_ = true;
    if (by_time_) {
      // Stable by (time, id) among the matches.
      std::vector<std::pair<uint64_t, uint64_t>> tmp;
      tmp.reserve(ids_.size());
      for (uint64_t id : ids_)
        if (auto e = doc_->event(id)) tmp.emplace_back(e->rec.time_ns, id);
      std::sort(tmp.begin(), tmp.end());
      for (size_t i = 0; i < tmp.size(); ++i) ids_[i] = tmp[i].second;
    }
  } else if (by_time_ || !doc_->span().dense) {
    auto ids = by_time_ ? replay::ids_by_time(doc_->recording()) : replay::matching_ids(doc_->recording(), {});
    if (ids) ids_ = std::move(ids).value();
    use_ids_ = true;
  }
  rows_ = use_ids_ ? ids_.size() : doc_->span().count;
}

QString EventTableModel::set_filter(std::optional<replay::EventFilter> f) {
  beginResetModel();
  filter_ = std::move(f);
  pinned_.reset();
  rebuild();
  endResetModel();
  return {};
}

void EventTableModel::set_ids(std::vector<uint64_t> ids) {
  beginResetModel();
  filter_.reset();
  pinned_ = std::move(ids);
  rebuild();
  endResetModel();
}

int EventTableModel::rowCount(const QModelIndex& parent) const {
  if (parent.isValid()) return 0;
  return static_cast<int>(std::min<uint64_t>(rows_, INT32_MAX));
}

uint64_t EventTableModel::id_at(int row) const {
  if (row < 0 || static_cast<uint64_t>(row) >= rows_) return 0;
  const uint64_t r = descending_ ? rows_ - 1 - static_cast<uint64_t>(row) : static_cast<uint64_t>(row);
  return use_ids_ ? ids_[r] : doc_->span().first_id + r;
}

int EventTableModel::row_of(uint64_t id) const {
  if (!doc_ || rows_ == 0) return -1;
  uint64_t r;
  if (!use_ids_) {
    if (id < doc_->span().first_id || id > doc_->span().last_id) return -1;
    r = id - doc_->span().first_id;
  } else if (!by_time_) {
    auto it = std::lower_bound(ids_.begin(), ids_.end(), id);
    if (it == ids_.end() || *it != id) return -1;
    r = static_cast<uint64_t>(it - ids_.begin());
  } else {
    auto it = std::find(ids_.begin(), ids_.end(), id);
    if (it == ids_.end()) return -1;
    r = static_cast<uint64_t>(it - ids_.begin());
  }
  return static_cast<int>(descending_ ? rows_ - 1 - r : r);
}

const replay::Event* EventTableModel::fetch(int row) const {
  const uint64_t id = id_at(row);
  if (!id) return nullptr;
  // Pages are keyed by the first id of a run of kPage consecutive rows in id order.
  const int64_t page =
      static_cast<int64_t>((descending_ ? rows_ - 1 - static_cast<uint64_t>(row) : static_cast<uint64_t>(row)) / kPage);
  auto it = pages_.find(page);
  if (it == pages_.end()) {
    std::vector<replay::Event> evs;
    const uint64_t first_row = static_cast<uint64_t>(page) * kPage;
    const uint64_t n = std::min<uint64_t>(kPage, rows_ - first_row);
    if (!use_ids_) {
      if (auto v = replay::events_from_id(doc_->recording(), doc_->span().first_id + first_row, n))
        evs = std::move(v).value();
    } else {
      const bool ascending_ids = !by_time_;
      if (ascending_ids) {
        // One range read, then keep the ids of this page.
        auto v =
            replay::events_from_id(doc_->recording(), ids_[first_row], ids_[first_row + n - 1] - ids_[first_row] + 1);
        if (v) {
          size_t k = first_row;
          for (auto& e : *v) {
            if (k < first_row + n && e.rec.id == ids_[k]) {
              evs.push_back(std::move(e));
              ++k;
            }
          }
        }
      } else {
        for (uint64_t k = first_row; k < first_row + n; ++k)
          if (auto e = doc_->event(ids_[k])) evs.push_back(*e);
      }
    }
    it = pages_.emplace(page, std::move(evs)).first;
    lru_.push_front(page);
    if (lru_.size() > kMaxPages) {
      pages_.erase(lru_.back());
      lru_.pop_back();
    }
  }
  for (const replay::Event& e : it->second)
    if (e.rec.id == id) return &e;
  return nullptr;
}

std::optional<replay::Event> EventTableModel::event_at(int row) const {
  if (const replay::Event* e = fetch(row)) return *e;
  return std::nullopt;
}

QVariant EventTableModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || !doc_) return {};
  if (role == Qt::UserRole) return QVariant::fromValue<quint64>(id_at(index.row()));
  if (role != Qt::DisplayRole && role != Qt::ForegroundRole && role != Qt::ToolTipRole) return {};
  const replay::Event* e = fetch(index.row());
  if (!e) return {};
  const es_record& r = e->rec;
  if (role == Qt::ForegroundRole) {
    if (r.kind == ES_KIND_VIOLATION) return QBrush(QColor(0xc0, 0x10, 0x10));
    if (r.kind == ES_KIND_DECISION) return QBrush(QColor(0x50, 0x50, 0x50));
    return {};
  }
  switch (index.column()) {
    case kId: return QString::number(r.id);
    case kTime: return QString::fromStdString(replay::format_time(r.time_ns));
    case kLevel: return QString::fromStdString(replay::level_text(r));
    case kVcpu: return QString::number(r.vcpu);
    case kKind:
      return QString::fromUtf8(replay::kind_name(r.kind).data(), static_cast<int>(replay::kind_name(r.kind).size()));
    case kDetails: {
      // A decision names its detail by the exit it answered, a row or two above in id order.
      // (fetch may evict the page `e` points into: keep a copy first.)
      const replay::Event self = *e;
      std::optional<replay::CauseExit> cause;
      if (self.rec.kind == ES_KIND_DECISION && self.rec.cause)
        for (int back = 1; back <= 4 && !cause && index.row() - back >= 0; ++back)
          if (const replay::Event* c = fetch(index.row() - back); c && c->rec.id == self.rec.cause)
            cause = replay::cause_exit(*c);
      return QString::fromStdString(replay::describe_event_fields(self, cause ? &*cause : nullptr));
    }
    default: return {};
  }
}

QVariant EventTableModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return QAbstractTableModel::headerData(section, o, role);
  static const char* kNames[] = {"#", "Time (s)", "Level", "vCPU", "Kind", "Details"};
  return section >= 0 && section < kColumnCount ? QString::fromLatin1(kNames[section]) : QVariant();
}

void EventTableModel::sort(int column, Qt::SortOrder order) {
  const bool by_time = column == kTime;
  const bool desc = order == Qt::DescendingOrder;
  if (column != kId && column != kTime) return;  // only id and time are sortable
  if (by_time == by_time_ && desc == descending_) return;
  beginResetModel();
  const bool rebuild_needed = by_time != by_time_;
  by_time_ = by_time;
  descending_ = desc;
  if (rebuild_needed)
    rebuild();
  else {
    pages_.clear();
    lru_.clear();
  }
  endResetModel();
}

}  // namespace es::gui
