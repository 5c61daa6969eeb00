// A swappable handle to the current version of a T.
//
// Readers call through the slot inside a read section of its domain: one
// acquire load of the current version, no lock, no read-modify-write. Writers
// publish a whole new version with one atomic exchange; the replaced version
// is retired to the domain and destroyed after its grace period and its last
// pin, on the reclaimer thread, never on a caller's.
//
//   hotswap::domain dom;
//   hotswap::slot<handler> handlers(dom, handler{v1});
//   handlers.call([&](const handler& h) { return h.handle(req); });  // per call
//   if (!handlers.publish(handler{v2}, "v2")) { /* refused: backpressure */ }
//
// Writers of one slot serialise on a small bookkeeping mutex (version numbers,
// the list of live versions, the draining cap); readers never touch it.
// publish() never waits: past slot_options::max_draining replaced versions it
// answers backpressure (publish_result is [[nodiscard]]: a refusal cannot pass
// unnoticed). publish_until() waits for room instead, up to a deadline, and
// wait_for_room() waits without publishing; both sleep until the reclaimer
// destroys a replaced version, so a refused writer takes no CPU from callers.
#pragma once

#include <atomic>
#include <algorithm>
#include <chrono>
#include <concepts>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "detail/assert_debug.hpp"
#include "detail/atomic.hpp"
#include "detail/schedule_point.hpp"
#include "detail/version_block.hpp"
#include "domain.hpp"
#include "options.hpp"
#include "pin.hpp"
#include "version.hpp"

namespace hotswap {

template <class T, class Domain = domain>
class slot {
  using block = detail::version_block<T>;

 public:
  using reader = typename Domain::reader;

  /// A read section plus the version it read. Move-only; keep it short.
  class read_ptr {
   public:
    read_ptr(read_ptr&& other) noexcept
        : reader_(std::exchange(other.reader_, nullptr)), block_(other.block_) {}
    read_ptr& operator=(read_ptr&&) = delete;
    read_ptr(const read_ptr&) = delete;
    ~read_ptr() {
      if (reader_ != nullptr) reader_->unlock();
    }
    const T& operator*() const noexcept { return block_->value; }
    const T* operator->() const noexcept { return &block_->value; }
    const version_info& version() const noexcept { return block_->info; }
    bool alive() const noexcept { return block_->alive(); }

   private:
    friend class slot;
    read_ptr(reader& r, const block* b) noexcept : reader_(&r), block_(b) {}
    reader* reader_;
    const block* block_;
  };

  template <class... Args>
  explicit slot(Domain& d, std::string label, slot_options options, Args&&... initial)
      : domain_(d), options_(options) {
    if (options_.max_draining == 0)
      throw std::invalid_argument("hotswap: slot_options::max_draining must be at least 1 (0 refuses every publish)");
    current_.store(make_block(std::move(label), std::forward<Args>(initial)...), std::memory_order_release);
  }
  slot(Domain& d, T initial, std::string label = "initial")
      : slot(d, std::move(label), slot_options{}, std::move(initial)) {}

  slot(const slot&) = delete;
  slot& operator=(const slot&) = delete;

  /// Retires the serving version. Readers must be done with the slot; pins may
  /// outlive it and keep their version alive.
  ~slot() {
    std::lock_guard lock(books_->mutex);
    retire_replaced(current_.exchange(nullptr, std::memory_order_acq_rel));
  }

  // ---- read side --------------------------------------------------------

  read_ptr read(reader& r) const noexcept {
    HOTSWAP_ASSERT(domain_.owns(r), "hotswap: a reader of another domain passed to slot::read()");
    r.lock();
    // Acquire pairs with the release in publish(): the value is fully built.
    const block* b = current_.load(std::memory_order_acquire);
    HOTSWAP_SCHEDULE_POINT("reader: version loaded");
    return read_ptr(r, b);
  }
  read_ptr read() const { return read(domain_.this_thread()); }

  /// f(const T&) inside one read section; returns what f returns.
  template <class F>
  decltype(auto) call(reader& r, F&& f) const {
    HOTSWAP_ASSERT(domain_.owns(r), "hotswap: a reader of another domain passed to slot::call()");
    std::lock_guard section(r);  // the reader is BasicLockable
    // Acquire pairs with the release in publish().
    return std::forward<F>(f)(current_.load(std::memory_order_acquire)->value);
  }
  template <class F>
  decltype(auto) call(F&& f) const {
    return call(domain_.this_thread(), std::forward<F>(f));
  }

  /// Keeps the serving version alive until the pin is dropped.
  hotswap::pin<T, Domain> pin(reader& r) const {
    HOTSWAP_ASSERT(domain_.owns(r), "hotswap: a reader of another domain passed to slot::pin()");
    std::lock_guard section(r);
    block* b = current_.load(std::memory_order_acquire);  // pairs with publish()
    HOTSWAP_SCHEDULE_POINT("pin: version loaded");
    const unsigned shard = b->pins.acquire_fresh();
    return hotswap::pin<T, Domain>(domain_, b, shard);
  }
  hotswap::pin<T, Domain> pin() const { return pin(domain_.this_thread()); }

  std::uint64_t current_version() const { return read().version().number; }

  // ---- write side -------------------------------------------------------

  /// Publishes `value` as the new version. Never waits. On backpressure
  /// `value` is left untouched, so nothing is lost.
  [[nodiscard]] publish_result publish(T&& value, std::string label = {}) {
    std::lock_guard lock(books_->mutex);
    if (auto refused = refuse_if_full()) return *refused;
    return install(make_block(std::move(label), std::move(value)));
  }
  [[nodiscard]] publish_result publish(const T& value, std::string label = {}) {
    T copy(value);
    return publish(std::move(copy), std::move(label));
  }

  /// publish(), but at the draining cap it waits for room (wait_for_room())
  /// until `deadline` instead of refusing at once. On backpressure `value` is
  /// left untouched.
  [[nodiscard]] publish_result publish_until(T&& value, std::chrono::steady_clock::time_point deadline,
                                             std::string label = {}) {
    for (;;) {
      publish_result r = publish(std::move(value), label);
      if (r.status != publish_status::backpressure || !wait_for_room(deadline)) return r;
    }
  }

  /// Waits until publish() would not answer backpressure, or until
  /// `deadline`; returns whether there is room. What it waits for: replaced
  /// versions of this slot being destroyed, i.e. their grace period (every
  /// read section older than their replacement ending) and their last pin.
  /// With a background reclaimer it sleeps until the reclaimer destroys one
  /// (a futex wake, no polling: a refused writer takes no CPU its callers
  /// need); in reclaim_mode::manual nobody else may reclaim, so it drives
  /// rounds itself (domain poll()) and sleeps between them (50 us doubling to
  /// 1 ms). It never waits for the calling thread's own read section: called
  /// inside one of this domain, it answers at once (a grace period would wait
  /// for that very section). A pin the caller holds on a replaced version is
  /// not released by waiting: expect false at the deadline.
  bool wait_for_room(std::chrono::steady_clock::time_point deadline) {
    const bool may_wait = !domain_.in_read_section();
    const bool background = domain_.reclaims_in_background();
    detail::slot_books& b = *books_;
    for (std::chrono::microseconds pause{50};; pause = std::min(2 * pause, std::chrono::microseconds(1000))) {
      if (b.draining.load(std::memory_order_relaxed) < options_.max_draining) return true;
      const auto now = std::chrono::steady_clock::now();
      if (!may_wait || now >= deadline) return false;
      if (!background) {
        domain_.poll();  // runs a round if one is due: versions drain
        if (b.draining.load(std::memory_order_relaxed) < options_.max_draining) return true;
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
        continue;
      }
      [[maybe_unused]] const auto idle = domain_.offline_while_waiting();  // a qsbr writer must not hold up the reclaimer
      b.waiters.fetch_add(1, std::memory_order_seq_cst);  // SB.W1: pairs with SB.D1 (version_block.hpp)
      const std::uint32_t seen = b.destroyed.load(std::memory_order_seq_cst);  // SB.W1: acquires the room SB.D1 released
      if (b.draining.load(std::memory_order_relaxed) >= options_.max_draining)
        detail::futex_wait(b.destroyed, seen,
                           std::min<std::chrono::nanoseconds>(deadline - now, std::chrono::milliseconds(10)));
      b.waiters.fetch_sub(1, std::memory_order_relaxed);  // a hint for destroy(): a late wake costs one syscall
    }
  }

  /// Publishes only if version `expected` is still the serving one, so two
  /// concurrent editors cannot silently overwrite each other. On conflict or
  /// backpressure `value` is left untouched.
  [[nodiscard]] publish_result compare_and_publish(std::uint64_t expected, T&& value, std::string label = {}) {
    std::lock_guard lock(books_->mutex);
    const std::uint64_t serving = current_.load(std::memory_order_relaxed)->info.number;
    if (serving != expected) return {publish_status::conflict, serving};
    if (auto refused = refuse_if_full()) return *refused;
    return install(make_block(std::move(label), std::move(value)));
  }

  /// Numbers the next version published after `number` when that is ahead of
  /// this slot's own count, and never moves the count back. A process that
  /// takes over from another (a host upgrade) continues its numbering, so the
  /// versions its clients see never go backwards.
  void continue_numbering_after(std::uint64_t number) {
    std::lock_guard lock(books_->mutex);
    books_->last_number = std::max(books_->last_number, number);
  }

  /// Every live version, oldest first: the serving one and those draining.
  std::vector<version_status> versions() const {
    std::lock_guard lock(books_->mutex);
    const block* serving = current_.load(std::memory_order_relaxed);
    std::vector<version_status> out;
    out.reserve(books_->live.size());
    for (const detail::version_base* v : books_->live)
      out.push_back({v->info, v == serving, v->pins.approximate()});
    return out;
  }

  /// Replaced versions not destroyed yet.
  std::size_t draining() const noexcept { return books_->draining.load(std::memory_order_relaxed); }

  Domain& get_domain() const noexcept { return domain_; }

 private:
  template <class... Args>
  block* make_block(std::string label, Args&&... args) {
    // Called with books_->mutex held, or from the constructor. The number is
    // taken only once the block exists: a value whose constructor throws
    // consumes none.
    books_->live.reserve(books_->live.size() + 1);
    version_info info{books_->last_number + 1, std::move(label), std::chrono::system_clock::now()};
    auto* b = new block(std::move(info), options_.pin_shards, books_, std::forward<Args>(args)...);
    ++books_->last_number;
    books_->live.push_back(b);  // cannot throw: reserved above
    return b;
  }

  std::optional<publish_result> refuse_if_full() const {
    if (books_->draining.load(std::memory_order_relaxed) < options_.max_draining) return std::nullopt;
    return publish_result{publish_status::backpressure, current_.load(std::memory_order_relaxed)->info.number};
  }

  publish_result install(block* next) {
    // Release pairs with the readers' acquire load: `next` is fully built
    // before anyone can reach it.
    retire_replaced(current_.exchange(next, std::memory_order_acq_rel));
    return {publish_status::published, next->info.number};
  }

  void retire_replaced(block* old) {
    if (old == nullptr) return;
    books_->draining.fetch_add(1, std::memory_order_relaxed);
    domain_.retire(old);
  }

  Domain& domain_;
  slot_options options_;
  std::shared_ptr<detail::slot_books> books_ = std::make_shared<detail::slot_books>();
  alignas(64) detail::atomic<block*> current_{nullptr};  // the only word readers load
};

}  // namespace hotswap
