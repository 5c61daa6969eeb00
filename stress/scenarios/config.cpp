// The `config` end-to-end scenario: a configuration file served by
// hotswap::config::store, edited by rename-style saves while reader threads
// hammer the snapshot.
//
// Case "save-to-visible": N saves, one at a time; for each, the time from the
// rename(2) that completes the save to the publish that makes it visible to
// readers (the store's subscriber runs right after the publish). It includes
// the watcher's debounce (--scenario-arg debounce_us=, default 1000), the
// hash, the parse and validation, the diff against the history file, the
// publish and the history write with its fsyncs. Invariants, checked by the
// readers on every read: the snapshot is whole (gen == check, a validator
// guarantees it in every accepted file, so a torn read would show), versions
// never go backwards, every observed generation is one that was saved, and
// every save became visible.
//
// Case "reader-cost": ns per read, in the same run and process, of a plain
// hotswap::slot<int> call (the kernel's floor), a snapshot read through the
// store (the same slot call), a snapshot read plus one key lookup, and a
// typed_view read of one field (the recommended hot path).
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <hotswap/config/store.hpp>
#include <hotswap/config/typed_view.hpp>

#include "../host_scenario.hpp"

namespace hotswap::stress {

namespace {

namespace fs = std::filesystem;
namespace cfg = hotswap::config;
using steady = std::chrono::steady_clock;

cfg::schema stress_schema() {
  cfg::schema s;
  s.integer("gen").min(0).required();
  s.integer("check").min(0).required();
  s.integer("limits.max_connections").range(1, 1'000'000).default_to(std::int64_t{1024});
  s.integer("limits.max_request_bytes").range(1024, 1 << 30).default_to(std::int64_t{1} << 20);
  s.string("log.level").one_of({"debug", "info", "warn", "error"}).default_to("info");
  s.string_map("routes").pattern("[a-z0-9_-]+");
  s.validator([](const cfg::snapshot& c) -> std::optional<cfg::veto> {
    if (c.integer("gen") != c.integer("check")) return cfg::veto{"check", "must equal gen"};
    return std::nullopt;
  });
  return s;
}

std::string file_text(std::int64_t gen) {
  const std::string g = std::to_string(gen);
  return "gen = " + g + "\ncheck = " + g +
         "\n\n[limits]\nmax_connections = " + std::to_string(1000 + gen % 100) +
         "\nmax_request_bytes = 1048576\n\n[log]\nlevel = \"info\"\n\n[routes]\n\"/\" = \"app\"\n\"/api\" = \"api\"\n";
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

/// ns per call of f over `n` calls (after a short warm-up).
template <class F>
double ns_per_call(std::uint64_t n, F&& f) {
  std::uint64_t sink = 0;
  for (std::uint64_t i = 0; i < n / 10; ++i) sink += f();
  const auto t0 = steady::now();
  for (std::uint64_t i = 0; i < n; ++i) sink += f();
  const auto t1 = steady::now();
  asm volatile("" : : "r"(sink) : "memory");  // keep the reads
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(n);
}

struct temp_dir {
  fs::path path;
  temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/hotswap-stress-config-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct typed_gen {
  std::int64_t gen = 0;
};

}  // namespace

std::vector<host_case> run_config_scenario(const host_config& config) {
  const auto arg = [&](const char* key, double fallback) {
    const std::string v = config.args.get(key);
    return v.empty() ? fallback : std::stod(v);
  };
  const auto saves = static_cast<std::int64_t>(arg("saves", config.quick ? 100 : std::max(100.0, config.seconds * 100)));
  const auto debounce = std::chrono::microseconds(static_cast<std::int64_t>(arg("debounce_us", 1000)));
  const auto readers = static_cast<unsigned>(arg("readers", 1));
  const auto reads_for_cost = static_cast<std::uint64_t>(arg("cost_reads", config.quick ? 2e6 : 1e7));

  temp_dir dir;
  const fs::path main = dir.path / "stress.toml";
  write_file(main, file_text(0));

  hotswap::domain dom;
  cfg::store_options options;
  options.debounce = debounce;
  options.history_keep = 64;
  std::atomic<std::uint64_t> store_errors{0};
  options.log = [&](cfg::log_level level, const std::string& message) {
    if (level == cfg::log_level::error) {
      store_errors.fetch_add(1, std::memory_order_relaxed);
      std::fprintf(stderr, "config scenario: %s\n", message.c_str());
    }
  };
  cfg::store store(dom, main, stress_schema(), options);

  // ---- reader cost, same process, before the saves --------------------
  host_case cost{"reader-cost", {}, {}, {}};
  {
    hotswap::slot<int> plain(dom, 42);
    cfg::typed_view<typed_gen> typed(store, dom, [](const cfg::snapshot& s) { return typed_gen{s.integer("gen")}; });
    auto& reader = dom.this_thread();
    const double slot_ns = ns_per_call(reads_for_cost, [&] {
      return static_cast<std::uint64_t>(plain.call(reader, [](const int& v) { return v; }));
    });
    const double snapshot_ns = ns_per_call(reads_for_cost, [&] {
      return store.slot().call(reader, [](const cfg::snapshot& s) { return static_cast<std::uint64_t>(s.size()); });
    });
    const double lookup_ns = ns_per_call(reads_for_cost, [&] {
      return store.slot().call(reader, [](const cfg::snapshot& s) { return static_cast<std::uint64_t>(s.integer("gen")); });
    });
    const double typed_ns = ns_per_call(reads_for_cost, [&] {
      return typed.call([](const typed_gen& t) { return static_cast<std::uint64_t>(t.gen); });
    });
    cost.metrics = {{"reads_per_variant", static_cast<double>(reads_for_cost)},
                    {"slot_call_ns", slot_ns},
                    {"snapshot_read_ns", snapshot_ns},
                    {"snapshot_read_lookup_ns", lookup_ns},
                    {"typed_view_read_ns", typed_ns},
                    {"snapshot_over_slot_ratio", snapshot_ns / slot_ns}};
  }

  // ---- save-to-visible under readers -----------------------------------
  host_case visible{"save-to-visible", {}, {}, {}};
  std::mutex m;
  std::condition_variable cv;
  std::int64_t published_gen = 0;
  steady::time_point published_at;
  store.subscribe([&](const cfg::snapshot& now, const std::vector<cfg::change>&) {
    const auto t = steady::now();
    std::lock_guard lock(m);
    published_gen = now.integer("gen");
    published_at = t;
    cv.notify_all();
  });
  store.start();

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> torn{0}, backwards{0}, reads{0}, unknown_gen{0};
  std::vector<std::thread> reader_threads;
  for (unsigned r = 0; r < readers; ++r) {
    reader_threads.emplace_back([&] {
      auto& reader = dom.this_thread();
      std::uint64_t last_version = 0, n = 0;
      std::int64_t last_gen = 0;
      // Bounded: it stops when the saves are done, or after 10 s of saving at most.
      const auto deadline = steady::now() + std::chrono::seconds(10) + std::chrono::duration<double>(config.seconds);
      while (!stop.load(std::memory_order_relaxed) && (n % 4096 != 0 || steady::now() < deadline)) {
        auto c = store.read(reader);
        const std::int64_t gen = c->integer("gen");
        if (c->integer("check") != gen) torn.fetch_add(1, std::memory_order_relaxed);
        if (c.version().number < last_version || gen < last_gen) backwards.fetch_add(1, std::memory_order_relaxed);
        if (gen < 0 || gen > saves) unknown_gen.fetch_add(1, std::memory_order_relaxed);
        last_version = c.version().number;
        last_gen = gen;
        ++n;
      }
      reads.fetch_add(n, std::memory_order_relaxed);
    });
  }

  std::vector<double> latencies_us;
  std::uint64_t lost = 0;
  const auto saving_deadline = steady::now() + std::chrono::seconds(10) + std::chrono::duration<double>(config.seconds);
  for (std::int64_t gen = 1; gen <= saves && steady::now() < saving_deadline; ++gen) {
    const fs::path temp = main.parent_path() / ".stress-save.tmp";
    write_file(temp, file_text(gen));  // an editor's save: a temp renamed over the file
    const auto t0 = steady::now();
    fs::rename(temp, main);
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, std::chrono::seconds(2), [&] { return published_gen == gen; })) {
      ++lost;
      continue;
    }
    latencies_us.push_back(std::chrono::duration<double, std::micro>(published_at - t0).count());
  }
  stop = true;
  for (auto& t : reader_threads) t.join();
  store.stop();

  const std::size_t history_files = store.files().list().size();
  visible.metrics = {{"saves", static_cast<double>(latencies_us.size())},
                     {"debounce_us", static_cast<double>(debounce.count())},
                     {"p50_us", percentile(latencies_us, 0.50)},
                     {"p90_us", percentile(latencies_us, 0.90)},
                     {"p99_us", percentile(latencies_us, 0.99)},
                     {"max_us", percentile(latencies_us, 1.0)},
                     {"readers", static_cast<double>(readers)},
                     {"reads", static_cast<double>(reads.load())},
                     {"history_files", static_cast<double>(history_files)}};
  if (torn.load() != 0) visible.violations.push_back(std::to_string(torn.load()) + " torn snapshots (gen != check)");
  if (backwards.load() != 0)
    visible.violations.push_back(std::to_string(backwards.load()) + " reads went backwards (version or gen)");
  if (unknown_gen.load() != 0)
    visible.violations.push_back(std::to_string(unknown_gen.load()) + " reads of a generation never saved");
  if (lost != 0) visible.violations.push_back(std::to_string(lost) + " saves never became visible within 2 s");
  if (store_errors.load() != 0)
    visible.violations.push_back(std::to_string(store_errors.load()) + " errors reported by the store");
  if (latencies_us.size() + lost < static_cast<std::size_t>(saves))
    visible.violations.push_back("the 10 s bound ended the saves early");
  return {visible, cost};
}

}  // namespace hotswap::stress
