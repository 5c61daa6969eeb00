// One record per (thread, domain), found in a few instructions on the hot path.
//
// A domain owns a record_list: an append-only lock-free list of cache-line
// sized records that grace periods walk. A thread claims a free record the
// first time it enters the domain and gives it back when the thread exits, so
// records are reused and never freed while the list lives.
//
// The per-thread cache is a `thread_local`, so a header-only library gets one
// copy per shared object loaded with RTLD_LOCAL. That is harmless here: a
// thread that reaches one domain through two copies holds two records, and a
// grace period waits for both. It only costs a second record, which is why hot
// callers keep a `reader&` instead of looking one up per call.
//
// The cache is keyed by the address of the record_list, which cache entries
// keep alive (shared_ptr), so a key is never reused while an entry names it.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace hotswap::detail {

/// The part of a record the list itself needs. Record types derive from it.
struct record_links {
  std::atomic<bool> in_use{false};
  record_links* next = nullptr;  // immutable once the record is linked
};

/// The (list, record) pair this thread used last. Trivially destructible and
/// constant-initialised, so reaching it costs no TLS guard and no call: the
/// hot lookup is two thread-local loads and a compare, inlined.
struct hot_entry {
  const void* key = nullptr;
  void* record = nullptr;
};
inline hot_entry& this_thread_hot() noexcept {
  constinit thread_local hot_entry hot;
  return hot;
}

class thread_cache {
 public:
  using release_fn = void (*)(void* list, void* record) noexcept;

  struct entry {
    const void* key;
    void* record;
    std::shared_ptr<void> list;  // keeps the record memory and the key alive
    release_fn release;
  };

  void* find(const void* key) noexcept {
    if (const hot_entry& h = this_thread_hot(); h.key == key) return h.record;
    for (auto& e : entries_)
      if (e.key == key) return remember(e);
    return nullptr;
  }

  /// Gives back this thread's record of `key` now (thread pools, detach()).
  void remove(const void* key) noexcept {
    std::erase_if(entries_, [&](entry& e) {
      if (e.key != key) return false;
      e.release(e.list.get(), e.record);
      return true;
    });
    if (key == this_thread_hot().key) this_thread_hot() = {};
  }

  void* add(entry e) {
    entries_.push_back(std::move(e));
    return remember(entries_.back());
  }

  /// Gives back the records of lists whose domain is gone, so long-lived
  /// threads do not accumulate entries for domains that no longer exist.
  template <class IsClosed>
  void prune(IsClosed&& is_closed) noexcept {
    std::erase_if(entries_, [&](entry& e) {
      if (!is_closed(e.list.get())) return false;
      e.release(e.list.get(), e.record);
      if (e.key == this_thread_hot().key) this_thread_hot() = {};
      return true;
    });
  }

  ~thread_cache() {
    this_thread_hot() = {};
    for (auto& e : entries_) e.release(e.list.get(), e.record);
  }

 private:
  void* remember(entry& e) noexcept {
    this_thread_hot() = {e.key, e.record};
    return e.record;
  }

  std::vector<entry> entries_;
};

inline thread_cache& this_thread_cache() noexcept {
  thread_local thread_cache cache;
  return cache;
}

/// The records of one domain. Record must derive from record_links, be
/// default-constructible, and offer `on_claim()` / `on_release()`.
template <class Record>
class record_list : public std::enable_shared_from_this<record_list<Record>> {
 public:
  record_list() = default;
  record_list(const record_list&) = delete;
  record_list& operator=(const record_list&) = delete;

  ~record_list() {
    for (record_links* r = head_.load(std::memory_order_acquire); r != nullptr;) {
      record_links* next = r->next;
      delete static_cast<Record*>(r);
      r = next;
    }
  }

  /// This thread's record, claimed on first use. `init` runs on a newly claimed
  /// record before it is handed out.
  template <class Init>
  Record& this_thread(Init&& init) {
    // Hot path, inlined into the caller: the record this thread used last.
    if (const hot_entry& h = this_thread_hot(); h.key == this) [[likely]]
      return *static_cast<Record*>(h.record);
    return this_thread_slow(std::forward<Init>(init));
  }

  /// Everything else (other domains, first use), out of line.
  template <class Init>
  [[gnu::noinline]] Record& this_thread_slow(Init&& init) {
    thread_cache& cache = this_thread_cache();
    if (void* r = cache.find(this)) return *static_cast<Record*>(r);
    cache.prune([](void* list) { return static_cast<record_list*>(list)->closed(); });
    Record& rec = claim();
    init(rec);
    rec.on_claim();
    cache.add({this, &rec, this->shared_from_this(), &release});
    return rec;
  }

  /// This thread's record if it has one; never registers.
  Record* this_thread_if_any() noexcept {
    if (const hot_entry& h = this_thread_hot(); h.key == this) return static_cast<Record*>(h.record);
    return static_cast<Record*>(this_thread_cache().find(this));
  }

  /// Releases this thread's record, if it has one.
  void detach_this_thread() noexcept { this_thread_cache().remove(this); }

  /// Visits every record ever linked (claimed or free). Lock-free; records
  /// linked after the walk started may be missed (see the grace period).
  template <class F>
  void for_each(F&& f) const {
    // Acquire pairs with the release in link(): a record's fields are
    // initialised before it becomes reachable.
    for (record_links* r = head_.load(std::memory_order_seq_cst); r != nullptr; r = r->next)
      f(*static_cast<Record*>(r));
  }

  void close() noexcept { closed_.store(true, std::memory_order_release); }
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

 private:
  Record& claim() {
    for (record_links* r = head_.load(std::memory_order_acquire); r != nullptr; r = r->next) {
      bool expected = false;
      // Acquire pairs with the release in release(): the previous owner is done.
      if (!r->in_use.load(std::memory_order_relaxed) &&
          r->in_use.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
        // Pairs with the fence after the epoch bump (A) in a grace period that
        // skips records it reads as free: either it sees this claim, or our
        // first section's epoch load sees its bump.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        return *static_cast<Record*>(r);
      }
    }
    auto* rec = new Record();
    rec->in_use.store(true, std::memory_order_relaxed);
    link(rec);
    return *rec;
  }

  void link(Record* rec) noexcept {
    record_links* head = head_.load(std::memory_order_relaxed);
    do {
      rec->next = head;
      // seq_cst: a grace period bumps its epoch, then loads head (seq_cst). If
      // it missed this record, this push is later in the total order, so the
      // thread's first epoch load already sees the bump.
    } while (!head_.compare_exchange_weak(head, rec, std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
  }

  static void release(void* list, void* record) noexcept {
    (void)list;
    auto* rec = static_cast<Record*>(record);
    rec->on_release();
    // Release pairs with the acquire in claim().
    rec->in_use.store(false, std::memory_order_release);
  }

  std::atomic<record_links*> head_{nullptr};
  std::atomic<bool> closed_{false};
};

/// What a grace policy holds: the domain's records, closed when the policy
/// goes away so threads drop their cache entries for it.
template <class Record>
class thread_readers {
 public:
  thread_readers() = default;
  thread_readers(const thread_readers&) = delete;
  thread_readers& operator=(const thread_readers&) = delete;
  ~thread_readers() { list_->close(); }

  template <class Init>
  Record& this_thread(Init&& init) {
    return list_->this_thread(std::forward<Init>(init));
  }
  Record* this_thread_if_any() noexcept { return list_->this_thread_if_any(); }
  void detach_this_thread() noexcept { list_->detach_this_thread(); }
  template <class F>
  void for_each(F&& f) const {
    list_->for_each(std::forward<F>(f));
  }

 private:
  std::shared_ptr<record_list<Record>> list_ = std::make_shared<record_list<Record>>();
};

}  // namespace hotswap::detail
