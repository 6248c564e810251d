#include "gui/chain_list_model.h"

#include <QBrush>
#include <QColor>
#include <algorithm>

#include "replay/browse.h"
#include "replay/chains.h"

namespace es::gui {

void ChainListModel::set_document(render::Document* doc) {
  beginResetModel();
  doc_ = doc;
  vendor_ = doc_ ? replay::recording_vendor(doc_->recording()) : replay::Vendor::Unknown;
  filter_ = {};
  memory_.clear();
  if (doc_ && !doc_->chains_materialized()) {
    if (auto chains = replay::load_chains(doc_->recording())) {
      for (const replay::Chain& c : *chains) memory_.push_back(replay::chain_row_of(c));
    }
  }
  rebuild();
  endResetModel();
}

void ChainListModel::set_filter(const replay::ChainFilter& f) {
  beginResetModel();
  filter_ = f;
  rebuild();
  endResetModel();
}

void ChainListModel::rebuild() {
  ids_.clear();
  pages_.clear();
  if (!doc_) return;
  if (doc_->chains_materialized()) {
    if (auto ids = replay::chain_ids(doc_->recording(), filter_)) ids_ = std::move(ids).value();
    return;
  }
  for (const replay::ChainRow& r : memory_) {
    if (filter_.vector && r.vector != *filter_.vector) continue;
    if (filter_.type && r.type != *filter_.type) continue;
    if (filter_.level && r.level != *filter_.level) continue;
    if (filter_.outcome && r.outcome != *filter_.outcome) continue;
    ids_.push_back(r.id);
  }
}

int ChainListModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(std::min<size_t>(ids_.size(), INT32_MAX));
}

int ChainListModel::row_of(uint64_t chain_id) const {
  auto it = std::lower_bound(ids_.begin(), ids_.end(), chain_id);
  return it != ids_.end() && *it == chain_id ? static_cast<int>(it - ids_.begin()) : -1;
}

const replay::ChainRow* ChainListModel::row(int r) const {
  if (r < 0 || static_cast<size_t>(r) >= ids_.size()) return nullptr;
  const uint64_t id = ids_[static_cast<size_t>(r)];
  if (!doc_->chains_materialized()) {
    auto it = std::lower_bound(memory_.begin(), memory_.end(), id, [](const auto& c, uint64_t v) { return c.id < v; });
    return it != memory_.end() && it->id == id ? &*it : nullptr;
  }
  const size_t page = static_cast<size_t>(r) / kPage;
  auto it = pages_.find(page);
  if (it == pages_.end()) {
    if (pages_.size() > 64) pages_.clear();
    std::vector<replay::ChainRow> rows;
    if (auto v = replay::chain_rows(doc_->recording(), filter_, ids_[page * kPage], kPage)) rows = std::move(v).value();
    it = pages_.emplace(page, std::move(rows)).first;
  }
  for (const replay::ChainRow& c : it->second)
    if (c.id == id) return &c;
  return nullptr;
}

QVariant ChainListModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || !doc_) return {};
  if (role == Qt::UserRole) return QVariant::fromValue<quint64>(id_at(index.row()));
  const replay::ChainRow* c = row(index.row());
  if (!c) return {};
  if (role == Qt::ForegroundRole) {
    // Red: what a hypervisor can be blamed for, and a shutdown; amber: anything but a delivery.
    const auto o = replay::outcome_from_string(c->outcome);
    if (!o || replay::outcome_is_loss(*o) || *o == replay::Outcome::TripleFault)
      return QBrush(QColor(0xc0, 0x10, 0x10));
    if (*o != replay::Outcome::Delivered && *o != replay::Outcome::ReinjectedThenDelivered)
      return QBrush(QColor(0xa0, 0x60, 0x00));
    return {};
  }
  // The outcome's SDM section, as `exitscope chains` prints it.
  if (role == Qt::ToolTipRole && index.column() == kOutcome) {
    // The whole outcome first: the column may be too narrow for it.
    const auto o = replay::outcome_from_string(c->outcome);
    const std::string ref = doc_ ? replay::row_outcome_reference(doc_->recording(), *c, vendor_)
                            : o  ? std::string(replay::outcome_reference(*o, vendor_))
                                 : std::string();
    return ref.empty() ? QVariant() : QString::fromStdString(c->outcome + ": " + ref);
  }
  if (role != Qt::DisplayRole) return {};
  switch (index.column()) {
    case kId: return QString::number(c->id);
    case kEvent: return QString::fromStdString(replay::chain_row_event_text(*c));
    case kLevel: return QStringLiteral("L%1").arg(c->level);
    case kEvents: return QString::number(c->event_count);
    case kOutcome:
      return QString::fromStdString(c->outcome) + (c->inferred ? QStringLiteral(" (inferred)") : QString());
    default: return {};
  }
}

QVariant ChainListModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return QAbstractTableModel::headerData(section, o, role);
  static const char* kNames[] = {"Chain", "Event", "Level", "Events", "Outcome"};
  return section >= 0 && section < kColumnCount ? QString::fromLatin1(kNames[section]) : QVariant();
}

}  // namespace es::gui
