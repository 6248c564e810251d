#include "replay/chain_steps.h"

#include <memory>

#include "replay/chains.h"

namespace es::replay {

namespace {

class ChainSteps final : public recorder::RecordSteps {
 public:
  explicit ChainSteps(db::Db& db) : db_(db), builder_(db) {}
  void on_row(const es_record& row) override { builder_.add(row); }
  Result<void> finish() override {
    // Decided while the rows were written; read back only if they came out of id order.
    return builder_.exact() ? builder_.write() : materialize_chains(db_);
  }

 private:
  db::Db& db_;
  ChainBuilder builder_;
};

}  // namespace

recorder::RecordStepsFactory chain_steps() {
  return [](db::Db& db) -> std::unique_ptr<recorder::RecordSteps> { return std::make_unique<ChainSteps>(db); };
}

}  // namespace es::replay
