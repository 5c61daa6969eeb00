// A policy over libcds's general-purpose buffered URCU (cds::urcu::
// general_buffered): its read side and its synchronize(), with hotswap's own
// reclaimer on top, so deleters still never run on a caller's thread (libcds's
// own retire_ptr may synchronize and free on the retiring thread when its
// buffer fills).
//
// Requires libcds (link `cds`); not part of <hotswap/hotswap.hpp>. libcds's RCU
// is one process-wide singleton: every cds_urcu_domain shares its grace
// periods. Threads are attached to libcds on first use and detached at exit.
#pragma once

#include <cds/init.h>
#include <cds/threading/model.h>
#include <cds/urcu/general_buffered.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

#include <hotswap/detail/thread_records.hpp>
#include <hotswap/domain.hpp>
#include <hotswap/options.hpp>

namespace hotswap {

class cds_urcu_grace {
  using rcu = cds::urcu::gc<cds::urcu::general_buffered<>>;

  // Per thread: how many records of any cds_urcu_grace the thread holds, and
  // whether we attached it to libcds (a thread the host attached itself is
  // never detached by us).
  struct thread_attachment {
    unsigned records = 0;
    bool attached_by_us = false;
  };
  static thread_attachment& attachment() noexcept {
    constinit thread_local thread_attachment a;
    return a;
  }

 public:
  class reader : public detail::record_links {
   public:
    void lock() noexcept {
      if (nesting_++ == 0) rcu::access_lock();
    }
    void unlock() noexcept {
      if (--nesting_ == 0) rcu::access_unlock();
    }
    std::uint32_t nesting() const noexcept { return nesting_; }

   private:
    friend class cds_urcu_grace;
    friend class detail::record_list<reader>;
    void on_claim() {
      thread_attachment& a = attachment();
      if (a.records++ == 0 && !cds::threading::Manager::isThreadAttached()) {
        cds::threading::Manager::attachThread();
        a.attached_by_us = true;
      }
    }
    void on_release() noexcept {
      nesting_ = 0;
      thread_attachment& a = attachment();
      if (--a.records == 0 && std::exchange(a.attached_by_us, false)) cds::threading::Manager::detachThread();
    }
    std::uint32_t nesting_ = 0;  // owner thread only
  };

  explicit cds_urcu_grace(const domain_options&) {
    cds::Initialize();
    rcu::rcu_implementation::Construct();  // idempotent; the singleton lives until exit
  }

  reader& this_thread_reader() {
    return readers_.this_thread([](reader&) {});
  }
  reader* this_thread_reader_if_any() noexcept { return readers_.this_thread_if_any(); }
  void detach_this_thread() noexcept { readers_.detach_this_thread(); }

  void synchronize() {
    this_thread_reader();  // libcds wants the caller attached
    rcu::synchronize();
    grace_periods_.fetch_add(1, std::memory_order_relaxed);
  }

  grace_stats stats() const noexcept { return {grace_periods_.load(std::memory_order_relaxed), 0, 0}; }

 private:
  std::atomic<std::uint64_t> grace_periods_{0};
  detail::thread_readers<reader> readers_;
};

using cds_urcu_domain = basic_domain<cds_urcu_grace>;

}  // namespace hotswap
