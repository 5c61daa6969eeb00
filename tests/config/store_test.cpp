// config::store end to end: real files, the real watcher on its own thread,
// a real domain. Waits are store.sync() (every save made before it has been
// handled) with a bounded timeout; nothing sleeps and hopes.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <hotswap/config/httpd_settings.hpp>
#include <hotswap/config/store.hpp>
#include <hotswap/config/typed_view.hpp>

#include "test_support.hpp"

namespace {

using namespace config_test;
using namespace hotswap::config;
using outcome = save_report::outcome;

class StoreTest : public ::testing::Test {
 protected:
  fs::path main() const { return dir / "app.toml"; }

  std::unique_ptr<store> open(store_options o = quiet_options()) {
    o.on_save = std::ref(saves);
    return std::make_unique<store>(dom, main(), test_schema(), std::move(o));
  }

  std::set<std::string> history_names() const {
    std::set<std::string> out;
    for (const auto& e : history_dir(main()).list()) out.insert(e.path.filename().string());
    return out;
  }

  temp_dir dir;
  hotswap::domain dom;
  recorder saves;
};

TEST_F(StoreTest, StartsFromTheMainFileAndRecordsItAsHistory) {
  save_in_place(main(), "a = 1\n");
  auto cfg = open();
  EXPECT_EQ(cfg->read()->integer("a"), 1);
  EXPECT_EQ(cfg->read()->integer("limits.max"), 10);  // default filled in
  EXPECT_EQ(history_names(), std::set<std::string>{"app.0.0.toml"});
  EXPECT_EQ(read_all(dir / "app.0.0.toml"), "a = 1\n");
}

TEST_F(StoreTest, SaveSequenceAppliesWritesHistoryAndNotifiesWithADiff) {
  save_in_place(main(), "a = 1\nname = \"abc\"\n");
  auto cfg = open();
  std::vector<change> seen;
  std::uint64_t seen_a = 0;
  cfg->subscribe([&](const snapshot& now, const std::vector<change>& changes) {
    seen = changes;
    seen_a = static_cast<std::uint64_t>(now.integer("a"));
  });
  cfg->start();
  const auto before = cfg->version();
  const std::string edited = "a = 2\n[limits]\nmax = 20\n";
  save_by_rename(main(), edited);
  ASSERT_TRUE(cfg->sync(bounded_wait));

  EXPECT_EQ(cfg->read()->integer("a"), 2);
  EXPECT_EQ(cfg->read()->string("name"), "x");  // removed: back to its default
  EXPECT_GT(cfg->version(), before);
  EXPECT_EQ(read_all(dir / "app.0.1.toml"), edited);  // history is the saved text
  EXPECT_EQ(cfg->serving_history().minor, 1u);
  EXPECT_EQ(seen_a, 2u);
  const std::vector<change> expected = {
      {"a", change::kind::changed, value{std::int64_t{1}}, value{std::int64_t{2}}},
      {"limits.max", change::kind::changed, value{std::int64_t{10}}, value{std::int64_t{20}}},
      {"name", change::kind::changed, value{std::string("abc")}, value{std::string("x")}},
  };
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(saves.count(outcome::applied), 1u);
}

TEST_F(StoreTest, SaveWithoutAChangeDoesNothing) {
  save_in_place(main(), "a = 1\n");
  auto cfg = open();
  int notified = 0;
  cfg->subscribe([&](const snapshot&, const std::vector<change>&) { ++notified; });
  cfg->start();
  const auto before = cfg->version();
  save_by_rename(main(), "# a comment, same values\na = 1  \nb = 0\n");  // b = 0 is its default
  ASSERT_TRUE(cfg->sync(bounded_wait));
  EXPECT_EQ(saves.count(outcome::unchanged), 1u);
  EXPECT_EQ(cfg->version(), before);
  EXPECT_EQ(notified, 0);
  EXPECT_EQ(history_names(), std::set<std::string>{"app.0.0.toml"});
}

TEST_F(StoreTest, InPlaceSaveIsApplied) {
  save_in_place(main(), "a = 1\n");
  auto cfg = open();
  cfg->start();
  save_in_place(main(), "a = 5\n");
  ASSERT_TRUE(cfg->sync(bounded_wait));
  EXPECT_EQ(cfg->read()->integer("a"), 5);
  EXPECT_EQ(history_names(), (std::set<std::string>{"app.0.0.toml", "app.0.1.toml"}));
}

TEST_F(StoreTest, SaveWrittenInTwoChunksWithAPauseIsReadOnceComplete) {
  save_in_place(main(), "a = 1\n");
  store_options o = quiet_options();
  o.debounce = 400ms;  // far above the pause below, even under a sanitizer
  auto cfg = open(std::move(o));
  cfg->start();
  {
    std::ofstream out(main(), std::ios::binary | std::ios::trunc);
    out << "a = 7\nname = \"ab";  // half a string: invalid if read now
    out.flush();
    std::this_thread::sleep_for(20ms);
    out << "cd\"\n";
  }
  ASSERT_TRUE(cfg->sync(bounded_wait));
  EXPECT_EQ(saves.count(outcome::rejected), 0u);
  EXPECT_EQ(saves.count(outcome::applied), 1u);
  EXPECT_EQ(cfg->read()->string("name"), "abcd");
}

TEST_F(StoreTest, RapidBurstEndsOnTheLastSaveAndEveryHistoryFileIsComplete) {
  save_in_place(main(), "a = 0\n");
  auto cfg = open();
  cfg->start();
  for (int i = 1; i <= 40; ++i) {
    const std::string text = "a = " + std::to_string(i) + "\nb = " + std::to_string(i) + "\n";
    if (i % 2 == 0) {
      save_by_rename(main(), text);
    } else {
      save_in_place(main(), text);
    }
  }
  ASSERT_TRUE(cfg->sync(bounded_wait));
  EXPECT_EQ(cfg->read()->integer("a"), 40);
  EXPECT_EQ(cfg->read()->integer("b"), 40);
  for (const auto& e : history_dir(main()).list()) {
    const auto loaded = load_file(e.path, &cfg->rules());
    ASSERT_TRUE(loaded) << loaded.error.to_string();
    EXPECT_EQ(loaded.doc->values.integer("a"), loaded.doc->values.integer("b"));
  }
}

// Readers during a burst see only whole versions: a, b and c always agree,
// versions never go backwards, and every values seen is a history file.
TEST_F(StoreTest, ReadersNeverSeeATornSnapshotDuringABurst) {
  save_in_place(main(), "a = 0\nb = 0\nc = 0\n");
  store_options o = quiet_options();
  o.history_keep = 1000;
  auto cfg = open(std::move(o));
  cfg->start();
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0}, backwards{0};
  std::vector<std::set<std::int64_t>> seen(2);
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      std::uint64_t last = 0;
      for (int i = 0; i < 2'000'000 && !stop.load(std::memory_order_relaxed); ++i) {
        auto c = cfg->read();
        const std::int64_t a = c->integer("a");
        if (c->integer("b") != a || c->integer("c") != a) torn.fetch_add(1, std::memory_order_relaxed);
        if (c.version().number < last) backwards.fetch_add(1, std::memory_order_relaxed);
        last = c.version().number;
        seen[static_cast<std::size_t>(r)].insert(a);
      }
    });
  }
  for (int i = 1; i <= 30; ++i) {
    const std::string n = std::to_string(i);
    save_by_rename(main(), "a = " + n + "\nb = " + n + "\nc = " + n + "\n");
    if (i % 10 == 0) {
      ASSERT_TRUE(cfg->sync(bounded_wait));  // let some land while readers run
    }
  }
  ASSERT_TRUE(cfg->sync(bounded_wait));
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_EQ(backwards.load(), 0);
  std::set<std::int64_t> in_history;
  for (const auto& e : history_dir(main()).list()) {
    const auto loaded = load_file(e.path, &cfg->rules());
    ASSERT_TRUE(loaded);
    in_history.insert(loaded.doc->values.integer("a"));
  }
  for (const auto& s : seen)
    for (const auto a : s) EXPECT_TRUE(in_history.contains(a)) << "a snapshot with a = " << a << " is no history file";
}

TEST_F(StoreTest, ConcurrentApiWritersExactlyOneWins) {
  save_in_place(main(), "a = 1\n");
  auto cfg = open();
  for (int round = 0; round < 20; ++round) {
    const auto v = cfg->version();
    std::barrier go(2);
    std::vector<update_result> results(2);
    std::vector<std::thread> writers;
    for (int w = 0; w < 2; ++w) {
      writers.emplace_back([&, w] {
        go.arrive_and_wait();
        results[static_cast<std::size_t>(w)] = cfg->update(v, {{"b", value{std::int64_t{round * 10 + w + 1}}}});
      });
    }
    for (auto& t : writers) t.join();
    const int won = (results[0].result == update_result::status::published) +
                    (results[1].result == update_result::status::published);
    const int lost = (results[0].result == update_result::status::conflict) +
                     (results[1].result == update_result::status::conflict);
    ASSERT_EQ(won, 1);
    ASSERT_EQ(lost, 1);
    const auto& winner = results[0] ? results[0] : results[1];
    EXPECT_EQ(cfg->version(), winner.version);
  }
  EXPECT_TRUE(cfg->pending());
}

TEST_F(StoreTest, ApiUpdateIsValidatedLikeAFile) {
  save_in_place(main(), "a = 1\n");
  auto cfg = open();
  const auto v = cfg->version();
  auto r = cfg->update(v, {{"a", value{std::int64_t{-5}}}});
  EXPECT_EQ(r.result, update_result::status::invalid);
  ASSERT_TRUE(r.error);
  EXPECT_NE(r.error->reason.find("below the minimum"), std::string::npos) << r.error->reason;
  r = cfg->update(v, {{"nope", value{true}}});
  EXPECT_EQ(r.result, update_result::status::invalid);
  r = cfg->update(v, {{"name", value{std::string("forbidden")}}});
  EXPECT_EQ(r.result, update_result::status::invalid);
  EXPECT_EQ(cfg->version(), v);
  EXPECT_FALSE(cfg->pending());
}

TEST_F(StoreTest, HandEditBasedOnAnOldMajorIsRefused) {
  save_in_place(main(), "a = 1\n");
  auto cfg = open();
  cfg->start();
  ASSERT_TRUE(cfg->update(cfg->version(), {{"b", value{std::int64_t{2}}}}));
  ASSERT_TRUE(cfg->write_to_disk());  // major 1
  ASSERT_TRUE(cfg->sync(bounded_wait));
  const auto serving = cfg->version();
  // An editor that opened the file before the write saves its old copy.
  save_by_rename(main(), "_history_major = 0\na = 9\n");
  ASSERT_TRUE(cfg->sync(bounded_wait));
  EXPECT_EQ(cfg->version(), serving);
  EXPECT_EQ(cfg->read()->integer("a"), 1);
  EXPECT_EQ(cfg->read()->integer("b"), 2);
  const auto reports = saves.reports();
  ASSERT_FALSE(reports.empty());
  ASSERT_TRUE(reports.back().error);
  EXPECT_NE(reports.back().error->reason.find("based on history version 0"), std::string::npos);
  EXPECT_TRUE(fs::exists(reports.back().error_copy));
}

TEST_F(StoreTest, HandEditMergesWithPendingUpdatesAndRefusesTheSameKey) {
  save_in_place(main(), "a = 1\n");
  auto cfg = open();
  cfg->start();
  ASSERT_TRUE(cfg->update(cfg->version(), {{"b", value{std::int64_t{5}}}}));
  save_by_rename(main(), "a = 2\n");  // another key: merged
  ASSERT_TRUE(cfg->sync(bounded_wait));
  EXPECT_EQ(cfg->read()->integer("a"), 2);
  EXPECT_EQ(cfg->read()->integer("b"), 5);
  save_by_rename(main(), "a = 2\nb = 7\n");  // the key the update changed: refused
  ASSERT_TRUE(cfg->sync(bounded_wait));
  EXPECT_EQ(cfg->read()->integer("b"), 5);
  EXPECT_EQ(saves.count(outcome::rejected), 1u);
}

// ---- write to disk ------------------------------------------------------

class WriteToDiskTest : public StoreTest {
 protected:
  void SetUp() override {
    save_in_place(main(), "a = 1\n");
    cfg = open();
    original = read_all(main());
    ASSERT_TRUE(cfg->update(cfg->version(), {{"a", value{std::int64_t{3}}}}));
  }
  void expect_refused(write_result::status why) {
    const auto r = cfg->write_to_disk();
    EXPECT_EQ(r.result, why) << r.message;
    EXPECT_EQ(read_all(main()), original);                   // main file untouched
    EXPECT_TRUE(fs::exists(r.kept_temp));                     // the new content kept
    EXPECT_NE(read_all(r.kept_temp).find("a = 3"), std::string::npos);
    EXPECT_TRUE(cfg->pending());
    EXPECT_EQ(cfg->read()->integer("a"), 3);                  // still serving
  }
  std::unique_ptr<store> cfg;
  std::string original;
};

TEST_F(WriteToDiskTest, WritesANewMajorAndTheWatcherSeesNoChange) {
  cfg->start();
  const auto r = cfg->write_to_disk();
  ASSERT_EQ(r.result, write_result::status::written) << r.message;
  EXPECT_EQ(r.major, 1u);
  const std::string text = read_all(main());
  EXPECT_TRUE(text.starts_with("_history_major = 1\n")) << text;
  EXPECT_EQ(read_all(dir / "app.1.0.toml"), text);
  EXPECT_FALSE(fs::exists(history_dir(main()).temp_file()));
  EXPECT_FALSE(cfg->pending());
  const auto v = cfg->version();
  ASSERT_TRUE(cfg->sync(bounded_wait));
  EXPECT_EQ(cfg->version(), v);
  EXPECT_EQ(saves.count(outcome::applied), 0u);
  EXPECT_EQ(cfg->write_to_disk().result, write_result::status::nothing_pending);
  // The written file loads back to the serving snapshot.
  const auto loaded = load(text, "x", &cfg->rules());
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded.doc->values, *cfg->read());
}

TEST_F(WriteToDiskTest, NothingPendingWritesNothing) {
  ASSERT_TRUE(cfg->write_to_disk());
  EXPECT_EQ(cfg->write_to_disk().result, write_result::status::nothing_pending);
}

TEST_F(WriteToDiskTest, RefusesWhileAnotherEditorHoldsTheLock) {
  const int fd = ::open(main().c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  expect_refused(write_result::status::locked);
  ::close(fd);
  EXPECT_TRUE(cfg->write_to_disk());  // lock gone: the retry succeeds
}

// A refused write leaves NAME.1.0.toml behind without a main file of major 1.
// A rejected edit naming that major must not move the store onto it.
TEST_F(WriteToDiskTest, ARejectedEditDoesNotAdoptAnOrphanMajor) {
  fs::permissions(main(), fs::perms::owner_read);
  ASSERT_EQ(cfg->write_to_disk().result, write_result::status::read_only);
  ASSERT_TRUE(fs::exists(dir / "app.1.0.toml"));
  fs::permissions(main(), fs::perms::owner_read | fs::perms::owner_write);
  save_in_place(main(), "_history_major = 1\na = -4\n");
  ASSERT_EQ(cfg->reload().result, outcome::rejected);
  EXPECT_EQ(cfg->serving_history().major, 0u);
  save_in_place(main(), "a = 1\nc = 6\n");
  ASSERT_EQ(cfg->reload().result, outcome::applied);
  EXPECT_EQ(cfg->serving_history().major, 0u);
  EXPECT_EQ(cfg->read()->integer("c"), 6);
  EXPECT_EQ(cfg->read()->integer("a"), 3);  // the pending update, merged
}

TEST_F(WriteToDiskTest, RefusesAReadOnlyMainFile) {
  fs::permissions(main(), fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  expect_refused(write_result::status::read_only);
}

TEST_F(WriteToDiskTest, RefusesAMainFileNewerThanTheTemp) {
  const timespec future[2] = {{::time(nullptr) + 3600, 0}, {::time(nullptr) + 3600, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, main().c_str(), future, 0), 0);
  expect_refused(write_result::status::main_newer);
}

TEST_F(WriteToDiskTest, RefusesAMainFileWithAnEditNotHandledYet) {
  save_in_place(main(), "a = 1\nb = 4\n");  // not started: the store has not seen it
  original = read_all(main());
  expect_refused(write_result::status::main_newer);
}

TEST_F(StoreTest, HistoryIsPrunedToTheConfiguredCount) {
  save_in_place(main(), "a = 0\n");
  store_options o = quiet_options();
  o.history_keep = 3;
  auto cfg = open(std::move(o));
  for (int i = 1; i <= 8; ++i) {
    save_in_place(main(), "a = " + std::to_string(i) + "\n");
    ASSERT_EQ(cfg->reload().result, outcome::applied);
  }
  EXPECT_EQ(history_names(), (std::set<std::string>{"app.0.6.toml", "app.0.7.toml", "app.0.8.toml"}));
  ASSERT_TRUE(cfg->update(cfg->version(), {{"b", value{std::int64_t{1}}}}));
  ASSERT_TRUE(cfg->write_to_disk());
  EXPECT_EQ(history_names(), (std::set<std::string>{"app.0.7.toml", "app.0.8.toml", "app.1.0.toml"}));
}

TEST_F(StoreTest, InvalidMainFileAtStartServesTheNewestValidHistory) {
  save_in_place(main(), "a = 1\n");
  { auto first = open(); }
  save_in_place(main(), "a = \n");
  auto cfg = open();
  EXPECT_EQ(cfg->read()->integer("a"), 1);
  save_in_place(main(), "a = \n");
  fs::remove(dir / "app.0.0.toml");
  EXPECT_THROW(open(), config_exception);
}

TEST_F(StoreTest, SubscriberCannotReenterTheStore) {
  save_in_place(main(), "a = 1\n");
  auto cfg = open();
  bool refused = false;
  cfg->subscribe([&](const snapshot&, const std::vector<change>&) {
    try {
      cfg->update(cfg->version(), {});
    } catch (const std::logic_error&) {
      refused = true;
    }
  });
  ASSERT_TRUE(cfg->update(cfg->version(), {{"a", value{std::int64_t{2}}}}));
  EXPECT_TRUE(refused);
}

// ---- hotswap-httpd's settings --------------------------------------------

TEST_F(StoreTest, HttpdSettingsFollowASaveThroughATypedView) {
  const fs::path file = dir / "httpd.toml";
  save_in_place(file, "[routes]\n\"/\" = \"app\"\n\"/api\" = \"api\"\n");
  store cfg(dom, file, httpd_schema(), quiet_options());
  typed_view<httpd_settings> settings(cfg, dom, httpd_settings::from);
  cfg.start();
  settings.call([](const httpd_settings& s) {
    EXPECT_EQ(s.max_connections, 1024);
    EXPECT_EQ(s.policy, httpd_settings::version_policy::per_call);
    ASSERT_NE(s.route_for("/api/users"), nullptr);
    EXPECT_EQ(s.route_for("/api/users")->module, "api");
    EXPECT_EQ(s.route_for("/apix")->module, "app");
  });
  save_by_rename(file, "[limits]\nmax_connections = 8\n[version]\npolicy = \"pinned\"\n[log]\nlevel = \"warn\"\n");
  ASSERT_TRUE(cfg.sync(bounded_wait));
  const auto s = settings.read();
  EXPECT_EQ(s->max_connections, 8);
  EXPECT_EQ(s->policy, httpd_settings::version_policy::pinned);
  EXPECT_EQ(s->log, httpd_settings::log_level::warn);
  EXPECT_EQ(s->route_for("/"), nullptr);
}

}  // namespace
