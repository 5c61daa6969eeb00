// A bounded set of keys a loader remembers a good verdict by (a preflight
// passed, a seal held), oldest forgotten first. Only good verdicts are kept:
// a refusal is checked afresh every time.
//
//   remembered_keys seals(64);
//   if (!seals.passed(file.sha256)) { check...; seals.remember(file.sha256); }
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>

namespace hotswap::modules::detail {

class remembered_keys {
 public:
  /// Remembers up to `capacity` keys, forgetting the oldest first; 0: none.
  explicit remembered_keys(std::size_t capacity) : capacity_(capacity) {}
  remembered_keys(const remembered_keys&) = delete;
  remembered_keys& operator=(const remembered_keys&) = delete;

  bool passed(const std::string& key) const {
    std::lock_guard lock(mutex_);
    return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
  }

  void remember(const std::string& key) {
    if (capacity_ == 0) return;
    std::lock_guard lock(mutex_);
    if (std::find(keys_.begin(), keys_.end(), key) != keys_.end()) return;
    keys_.push_back(key);
    while (keys_.size() > capacity_) keys_.pop_front();
  }

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::deque<std::string> keys_;  // guarded by mutex_; oldest first
};

}  // namespace hotswap::modules::detail
