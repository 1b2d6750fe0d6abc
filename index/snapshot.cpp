#include "index/snapshot.h"

namespace vde::index {

uint64_t SnapshotRegistry::Acquire() {
  std::lock_guard lk(mu_);
  uint64_t e = epoch_.load(std::memory_order_relaxed);
  if (created_.load(std::memory_order_relaxed) || live_.empty() || *live_.rbegin() != e - 1) {
    // Pages of the current epoch exist (or may: the flag is only a hint when it is clear and a
    // snapshot of e - 1 is live, which covers everything created before it): a new epoch.
    epoch_.store(e + 1, std::memory_order_release);
    created_.store(false, std::memory_order_relaxed);
  } else {
    e = e - 1;  // nothing created since the newest live snapshot: share its epoch
  }
  live_.insert(e);
  newest_.store(*live_.rbegin(), std::memory_order_release);
  oldest_.store(*live_.begin(), std::memory_order_release);
  return e;
}

void SnapshotRegistry::Release(uint64_t epoch) {
  std::lock_guard lk(mu_);
  auto it = live_.find(epoch);
  if (it != live_.end()) live_.erase(it);
  newest_.store(live_.empty() ? 0 : *live_.rbegin(), std::memory_order_release);
  oldest_.store(live_.empty() ? 0 : *live_.begin(), std::memory_order_release);
}

uint64_t SnapshotRegistry::live() const {
  std::lock_guard lk(mu_);
  return live_.size();
}

}  // namespace vde::index
