// The event table: a lazy QAbstractTableModel over the recording (KernelShark-style thin
// wrapper; the rows come from es_replay). Unfiltered and sorted by id, row r is event
// first_id + r and nothing is read until a row is shown; with a filter or a time sort the
// model keeps only the matching ids. Rows are fetched in pages of 256 and a few pages are
// cached.
#pragma once

#include <QAbstractTableModel>
#include <list>
#include <optional>
#include <unordered_map>
#include <vector>

#include "render/document.h"

namespace es::gui {

class EventTableModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { kId, kTime, kLevel, kVcpu, kKind, kDetails, kColumnCount };
  explicit EventTableModel(QObject* parent = nullptr) : QAbstractTableModel(parent) {}

  void set_document(render::Document* doc);
  // nullopt = every event. Returns the error sentence, or empty.
  QString set_filter(std::optional<replay::EventFilter> f);
  bool filtered() const { return filter_.has_value() || pinned_.has_value(); }
  // Shows exactly these events (ids ascending): the exits a stats row or histogram bar counts.
  // set_filter and set_document end it.
  void set_ids(std::vector<uint64_t> ids);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override { return parent.isValid() ? 0 : kColumnCount; }
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;
  void sort(int column, Qt::SortOrder order) override;

  uint64_t id_at(int row) const;
  // The row showing event `id`, or -1 when the filter hides it.
  int row_of(uint64_t id) const;
  std::optional<replay::Event> event_at(int row) const;

 private:
  static constexpr int kPage = 256;
  const replay::Event* fetch(int row) const;
  void rebuild();
  render::Document* doc_ = nullptr;
  std::optional<replay::EventFilter> filter_;
  std::optional<std::vector<uint64_t>> pinned_;
  bool by_time_ = false, descending_ = false;
  bool use_ids_ = false;       // ids_ holds the rows (filter or time sort)
  std::vector<uint64_t> ids_;  // ascending by id, or by time
  uint64_t rows_ = 0;
  // Page cache: page index -> events; least recently used dropped beyond kMaxPages.
  static constexpr size_t kMaxPages = 64;
  mutable std::unordered_map<int64_t, std::vector<replay::Event>> pages_;
  mutable std::list<int64_t> lru_;
};

}  // namespace es::gui
