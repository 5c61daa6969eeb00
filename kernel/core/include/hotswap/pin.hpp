// A version kept alive across many calls, without holding a read section.
//
// A connection, a statement or a piece of asynchronous work takes a pin and
// keeps calling the same version until it lets go, even if the slot has moved
// on meanwhile. The version is destroyed only after its grace period has passed
// and its last pin is released. Pins are sharded per thread (see
// detail/pin_counter.hpp): taking one costs an uncontended atomic increment.
//
//   hotswap::pin session = handlers.pin();      // at connect
//   session->handle(request);                   // every request, same version
//   // at disconnect the pin is dropped; the old version may now be unloaded
#pragma once

#include <utility>

#include "detail/version_block.hpp"
#include "version.hpp"

namespace hotswap {

template <class T, class Domain>
class slot;

template <class T, class Domain>
class pin {
 public:
  pin() noexcept = default;  // empty: holds nothing

  pin(const pin& other) noexcept : domain_(other.domain_), block_(other.block_), shard_(other.shard_) {
    if (block_ != nullptr) block_->pins.acquire_copy(shard_);
  }
  pin(pin&& other) noexcept
      : domain_(other.domain_), block_(std::exchange(other.block_, nullptr)), shard_(other.shard_) {}
  pin& operator=(pin other) noexcept {
    swap(other);
    return *this;
  }
  ~pin() { reset(); }

  void reset() noexcept {
    if (block_ == nullptr) return;
    // The last pin of a replaced version hands it back to the reclaimer, so
    // the version's destructor never runs on this (a caller's) thread.
    if (block_->pins.release(shard_)) domain_->retire(block_);
    block_ = nullptr;
  }

  void swap(pin& other) noexcept {
    std::swap(domain_, other.domain_);
    std::swap(block_, other.block_);
    std::swap(shard_, other.shard_);
  }

  explicit operator bool() const noexcept { return block_ != nullptr; }
  const T& operator*() const noexcept { return block_->value; }
  const T* operator->() const noexcept { return &block_->value; }
  const T& value() const noexcept { return block_->value; }
  const version_info& version() const noexcept { return block_->info; }
  /// False only if the pinned version was destroyed under us: a kernel bug.
  bool alive() const noexcept { return block_ != nullptr && block_->alive(); }

 private:
  friend class slot<T, Domain>;
  pin(Domain& d, detail::version_block<T>* b, unsigned shard) noexcept : domain_(&d), block_(b), shard_(shard) {}

  Domain* domain_ = nullptr;
  detail::version_block<T>* block_ = nullptr;
  unsigned shard_ = 0;
};

}  // namespace hotswap
