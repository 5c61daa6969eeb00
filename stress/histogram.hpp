// Log-linear latency histograms (HdrHistogram-style buckets), in clock ticks.
//
// Values below 128 have a bucket each; above, every power of two is split in
// 64 equal buckets, so a bucket is at most 1/64 (1.6 %) of its value wide.
// `histogram` is for one thread (plain counters, merged after the run);
// `shared_histogram` takes records from several threads (relaxed atomics) for
// the writer side: publish, grace-period and reclaim latencies.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace hotswap::stress {

struct buckets {
  static constexpr unsigned sub_bits = 6;
  static constexpr std::uint64_t sub = std::uint64_t{1} << sub_bits;
  static constexpr unsigned max_shift = 41;  // values up to 2^48 ticks (~30 h at 2.6 GHz)
  static constexpr std::size_t count = (max_shift + 2) * sub;
  static constexpr std::uint64_t max_value = (std::uint64_t{1} << (max_shift + sub_bits + 1)) - 1;

  static std::size_t index(std::uint64_t v) noexcept {
    if (v < 2 * sub) return static_cast<std::size_t>(v);
    v = std::min(v, max_value);
    const unsigned shift = static_cast<unsigned>(std::bit_width(v)) - 1 - sub_bits;  // >= 1
    return static_cast<std::size_t>(shift) * sub + static_cast<std::size_t>(v >> shift);
  }
  /// Smallest value that lands in bucket i.
  static std::uint64_t lower(std::size_t i) noexcept {
    if (i < 2 * sub) return i;
    const std::size_t shift = i / sub - 1;
    return (static_cast<std::uint64_t>(i % sub) + sub) << shift;
  }
  /// Largest value that lands in bucket i.
  static std::uint64_t upper(std::size_t i) noexcept { return i + 1 < count ? lower(i + 1) - 1 : max_value; }
};

class histogram {
 public:
  histogram() : counts_(std::make_unique<std::uint64_t[]>(buckets::count)) {}
  histogram(const histogram& o) : histogram() { *this += o; }
  histogram(histogram&&) noexcept = default;
  histogram& operator=(histogram&&) noexcept = default;
  histogram& operator=(const histogram& o) {
    if (this != &o) {
      clear();
      *this += o;
    }
    return *this;
  }

  void record(std::uint64_t v) noexcept {
    ++counts_[buckets::index(v)];
    ++total_;
    sum_ += v;
    max_ = std::max(max_, v);
    min_ = std::min(min_, v);
  }
  void record_n(std::uint64_t v, std::uint64_t n) noexcept {
    if (n == 0) return;
    counts_[buckets::index(v)] += n;
    total_ += n;
    sum_ += v * n;
    max_ = std::max(max_, v);
    min_ = std::min(min_, v);
  }

  void clear() noexcept {
    std::fill_n(counts_.get(), buckets::count, 0);
    total_ = sum_ = max_ = 0;
    min_ = ~std::uint64_t{0};
  }

  histogram& operator+=(const histogram& o) noexcept {
    for (std::size_t i = 0; i < buckets::count; ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    sum_ += o.sum_;
    max_ = std::max(max_, o.max_);
    min_ = std::min(min_, o.min_);
    return *this;
  }

  std::uint64_t count() const noexcept { return total_; }
  std::uint64_t max() const noexcept { return max_; }
  std::uint64_t sum() const noexcept { return sum_; }
  std::uint64_t min() const noexcept { return total_ == 0 ? 0 : min_; }
  double mean() const noexcept { return total_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(total_); }
  std::uint64_t bucket(std::size_t i) const noexcept { return counts_[i]; }

  /// The value at quantile q (0..1]: the top of the bucket holding it, capped
  /// at the exact maximum (HdrHistogram's "highest equivalent value").
  std::uint64_t quantile(double q) const noexcept {
    if (total_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_) + 0.5);
    const std::uint64_t want = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets::count; ++i) {
      seen += counts_[i];
      if (seen >= want) return std::min(buckets::upper(i), max_);
    }
    return max_;
  }

 private:
  friend class shared_histogram;
  std::unique_ptr<std::uint64_t[]> counts_;
  std::uint64_t total_ = 0, sum_ = 0, max_ = 0, min_ = ~std::uint64_t{0};
};

class shared_histogram {
 public:
  shared_histogram() : counts_(std::make_unique<std::atomic<std::uint64_t>[]>(buckets::count)) {}

  void record(std::uint64_t v) noexcept {
    counts_[buckets::index(v)].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(v, std::memory_order_relaxed);
    std::uint64_t m = max_.load(std::memory_order_relaxed);
    while (v > m && !max_.compare_exchange_weak(m, v, std::memory_order_relaxed)) {
    }
  }

  /// Approximate while records race with it; used between phases.
  void clear() noexcept {
    for (std::size_t i = 0; i < buckets::count; ++i) counts_[i].store(0, std::memory_order_relaxed);
    sum_.store(0, std::memory_order_relaxed);
    max_.store(0, std::memory_order_relaxed);
  }

  histogram snapshot() const {
    histogram h;
    for (std::size_t i = 0; i < buckets::count; ++i) {
      const std::uint64_t n = counts_[i].load(std::memory_order_relaxed);
      if (n == 0) continue;
      h.counts_[i] = n;
      h.total_ += n;
      h.min_ = std::min(h.min_, buckets::lower(i));
    }
    h.sum_ = sum_.load(std::memory_order_relaxed);
    h.max_ = max_.load(std::memory_order_relaxed);
    return h;
  }

 private:
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
  std::atomic<std::uint64_t> sum_{0};
  std::atomic<std::uint64_t> max_{0};
};

}  // namespace hotswap::stress
