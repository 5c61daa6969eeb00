// Freed memory kept mapped until the end of a run (plain builds only).
//
// The explorer must catch a reader that touches a reclaimed version without
// the test itself being undefined behaviour or crashing at random: every
// operator delete during a run parks the block instead of freeing it, so a
// late reader sees the poisoned canary the destructor left behind. Sanitizer
// builds keep their own allocator (ASan's quarantine does the same job, and
// reports the access).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HOTSWAP_EXPLORE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HOTSWAP_EXPLORE_SANITIZED 1
#endif
#endif

namespace hotswap::explore {

class quarantine {
 public:
  static quarantine& instance() {
    static quarantine q;
    return q;
  }
  void hold(bool on) {
    std::lock_guard lock(mutex_);
    holding_ = on;
    if (!on) {
      for (std::size_t i = 0; i < size_; ++i) std::free(parked_[i]);
      size_ = 0;
    }
  }
  /// Returns true if it kept `p`. Grows with realloc, never with operator
  /// new: that would call back into operator delete under our own lock.
  bool park(void* p) {
    std::lock_guard lock(mutex_);
    if (!holding_) return false;
    if (size_ == capacity_) {
      const std::size_t grown = capacity_ == 0 ? 1024 : capacity_ * 2;
      void* bigger = std::realloc(parked_, grown * sizeof(void*));
      if (bigger == nullptr) return false;  // out of memory: free for real
      parked_ = static_cast<void**>(bigger);
      capacity_ = grown;
    }
    parked_[size_++] = p;
    return true;
  }

 private:
  std::mutex mutex_;
  bool holding_ = false;
  void** parked_ = nullptr;
  std::size_t size_ = 0, capacity_ = 0;
};

/// RAII: quarantine frees for the lifetime of one explored run.
struct quarantine_scope {
  quarantine_scope() { quarantine::instance().hold(true); }
  ~quarantine_scope() { quarantine::instance().hold(false); }
};

}  // namespace hotswap::explore
