// The reference policy: a read section is a shared lock, a grace period is
// taking the lock exclusively once. Obviously correct and obviously slow
// (every reader writes the lock's cache line); it exists to cross-check the
// other policies in the typed tests and as an honest benchmark baseline.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>

#include <hotswap/detail/thread_records.hpp>
#include <hotswap/domain.hpp>
#include <hotswap/options.hpp>

namespace hotswap {

class shared_mutex_grace {
 public:
  class reader : public detail::record_links {
   public:
    void lock() {
      if (nesting_++ == 0) mutex_->lock_shared();
    }
    void unlock() {
      if (--nesting_ == 0) mutex_->unlock_shared();
    }
    std::uint32_t nesting() const noexcept { return nesting_; }

   private:
    friend class shared_mutex_grace;
    friend class detail::record_list<reader>;
    void on_claim() noexcept {}
    void on_release() noexcept { nesting_ = 0; }
    std::shared_mutex* mutex_ = nullptr;
    std::uint32_t nesting_ = 0;  // owner thread only
  };

  explicit shared_mutex_grace(const domain_options&) {}

  reader& this_thread_reader() {
    return readers_.this_thread([this](reader& r) { r.mutex_ = &mutex_; });
  }
  reader* this_thread_reader_if_any() noexcept { return readers_.this_thread_if_any(); }
  void detach_this_thread() noexcept { readers_.detach_this_thread(); }
  bool owns(const reader& r) const noexcept { return r.mutex_ == &mutex_; }

  void synchronize() {
    mutex_.lock();  // waits for every shared holder (readers that began earlier)
    mutex_.unlock();
    ++grace_periods_;
  }

  grace_stats stats() const noexcept { return {grace_periods_.load(std::memory_order_relaxed), 0, 0}; }

 private:
  std::shared_mutex mutex_;
  std::atomic<std::uint64_t> grace_periods_{0};
  detail::thread_readers<reader> readers_;
};

using shared_mutex_domain = basic_domain<shared_mutex_grace>;

}  // namespace hotswap
