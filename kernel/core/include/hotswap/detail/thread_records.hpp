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
//
// Thread exit: the cache gives its records back from a thread-exit handler.
// Other thread_local objects may use a domain in their destructors (a pool's
// guard calling detach(), a section in a TLS destructor) after that handler
// ran; the cache is then built again and registers a new handler, which the
// C++ runtime runs in the same exit sequence. It is never used destroyed.
#pragma once

#include <atomic>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "atomic.hpp"

namespace hotswap::detail {

/// The part of a record the list itself needs. Record types derive from it.
struct record_links {
  atomic<bool> in_use{false};
  record_links* next = nullptr;  // immutable once the record is linked
};

/// The (list, record) pair this thread used last. Trivially destructible and
/// constant-initialised, so reaching it costs no TLS guard and no call: the
/// hot lookup is two thread-local loads and a compare, inlined.
struct hot_entry {
  const void* key = nullptr;
  void* record = nullptr;
};
inline hot_entry& this_thread_hot() noexcept { return this_thread_value<hot_entry>(); }

class thread_cache {
 public:
  using release_fn = void (*)(void* record) noexcept;

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
      e.release(e.record);
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
      e.release(e.record);
      if (e.key == this_thread_hot().key) this_thread_hot() = {};
      return true;
    });
  }

  ~thread_cache() {
    this_thread_hot() = {};
    for (auto& e : entries_) e.release(e.record);
  }

 private:
  void* remember(entry& e) noexcept {
    this_thread_hot() = {e.key, e.record};
    return e.record;
  }

  std::vector<entry> entries_;
};

/// Where this thread's cache lives: raw storage, so that it can be rebuilt
/// after its exit handler destroyed it (see the top of this file).
struct thread_cache_storage {
  alignas(thread_cache) unsigned char bytes[sizeof(thread_cache)] = {};
  bool live = false;

  static void destroy(void* self) noexcept {
    auto* st = static_cast<thread_cache_storage*>(self);
    std::destroy_at(reinterpret_cast<thread_cache*>(st->bytes));
    st->live = false;
  }
};

inline thread_cache& this_thread_cache() noexcept {
  thread_cache_storage& storage = this_thread_value<thread_cache_storage>();
  auto* cache = reinterpret_cast<thread_cache*>(storage.bytes);
  if (!storage.live) [[unlikely]] {
    std::construct_at(cache);
    storage.live = true;
    // The handler compiler-generated thread_local destructors use.
    at_thread_exit(&thread_cache_storage::destroy, &storage);
  }
  return *std::launder(cache);
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
    // TR.L2: acquire pairs with TR.L1 (a record's fields are initialised before it
    // becomes reachable); seq_cst so that a grace period that misses a record
    // being linked is ordered before that record's claim fence EG.F.
    for (record_links* r = head_.load(std::memory_order_seq_cst); r != nullptr; r = r->next)
      f(*static_cast<Record*>(r));
  }

  void close() noexcept { closed_.store(true, std::memory_order_release); }
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

 private:
  Record& claim() {
    Record* rec = claim_free();
    if (rec == nullptr) {
      rec = new Record();
      rec->in_use.store(true, std::memory_order_relaxed);  // not reachable yet; TR.L1 publishes it
      link(rec);
    }
    // EG.F (claim side): pairs with the writer's fence after the epoch bump (EG.F
    // in epoch_grace.hpp). A grace period that read this record as free (TR.G)
    // or did not find it in the list (TR.L2) is earlier than this fence in the
    // seq_cst order, so our first section's epoch load (EG.B) sees its bump:
    // that section cannot hold anything the grace period protects. The seq_cst
    // CAS of link() alone is not enough: EG.B is an acquire load, outside the
    // seq_cst order, and may read a stale epoch without this fence.
    if (!weakened(mutant::no_claim_fence)) thread_fence(std::memory_order_seq_cst);
    return *rec;
  }

  Record* claim_free() noexcept {
    for (record_links* r = head_.load(std::memory_order_acquire); r != nullptr; r = r->next) {  // TR.L2's acquire
      bool expected = false;
      // Acquire pairs with TR.G (release()): the previous owner is done.
      if (!r->in_use.load(std::memory_order_relaxed) &&
          r->in_use.compare_exchange_strong(expected, true, std::memory_order_acquire))
        return static_cast<Record*>(r);
    }
    return nullptr;
  }

  void link(Record* rec) noexcept {
    record_links* head = head_.load(std::memory_order_relaxed);
    do {
      rec->next = head;
      // TR.L1: release pairs with TR.L2 (the record's fields are initialised before
      // it is reachable); seq_cst so that EG.F (in claim()) orders it against a
      // grace period's TR.L2.
    } while (!head_.compare_exchange_weak(head, rec, std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
  }

  static void release(void* record) noexcept {
    auto* rec = static_cast<Record*>(record);
    rec->on_release();
    // TR.G: release pairs with the acquire CAS in claim_free() and with the
    // grace period's acquire load of in_use: the sections of this thread
    // happen before a later owner's and before a grace period that skips it.
    rec->in_use.store(false, std::memory_order_release);
  }

  atomic<record_links*> head_{nullptr};
  atomic<bool> closed_{false};
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
