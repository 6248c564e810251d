// The chain list: a lazy model over the recording's chains table (ids kept, rows fetched in
// pages), filtered by vector, interruption type, outcome and level. A recording without a
// materialized chains table gets its chains built in memory by replay::load_chains.
#pragma once

#include <QAbstractTableModel>
#include <unordered_map>
#include <vector>

#include "render/document.h"
#include "replay/chains.h"

namespace es::gui {

class ChainListModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { kId, kEvent, kLevel, kEvents, kOutcome, kColumnCount };
  explicit ChainListModel(QObject* parent = nullptr) : QAbstractTableModel(parent) {}

  void set_document(render::Document* doc);
  void set_filter(const replay::ChainFilter& f);
  const replay::ChainFilter& filter() const { return filter_; }

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override { return parent.isValid() ? 0 : kColumnCount; }
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  uint64_t id_at(int row) const {
    return row >= 0 && static_cast<size_t>(row) < ids_.size() ? ids_[static_cast<size_t>(row)] : 0;
  }
  int row_of(uint64_t chain_id) const;
  const replay::ChainRow* row(int r) const;

 private:
  static constexpr int kPage = 256;
  void rebuild();
  render::Document* doc_ = nullptr;
  replay::Vendor vendor_ = replay::Vendor::Unknown;  // whose sections the outcome tooltips cite
  replay::ChainFilter filter_;
  std::vector<uint64_t> ids_;
  std::vector<replay::ChainRow> memory_;  // only when the chains table is empty
  mutable std::unordered_map<size_t, std::vector<replay::ChainRow>> pages_;
};

}  // namespace es::gui
