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

class store_test : public ::testing::Test {
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

TEST_F(store_test, starts_from_the_main_file_and_records_it_as_history) {
  save_in_place(main(), "a = 1\n");
  auto cfg = open();
  EXPECT_EQ(cfg->read()->integer("a"), 1);
  EXPECT_EQ(cfg->read()->integer("limits.max"), 10);  // default filled in
  EXPECT_EQ(history_names(), std::set<std::string>{"app.0.0.toml"});
  EXPECT_EQ(read_all(dir / "app.0.0.toml"), "a = 1\n");
}

TEST_F(store_test, save_sequence_applies_writes_history_and_notifies_with_a_diff) {
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

TEST_F(store_test, save_without_a_change_does_nothing) {
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

TEST_F(store_test, in_place_save_is_applied) {
  save_in_place(main(), "a = 1\n");
  auto cfg = open();
  cfg->start();
  save_in_place(main(), "a = 5\n");
  ASSERT_TRUE(cfg->sync(bounded_wait));
  EXPECT_EQ(cfg->read()->integer("a"), 5);
  EXPECT_EQ(history_names(), (std::set<std::string>{"app.0.0.toml", "app.0.1.toml"}));
}

TEST_F(store_test, save_written_in_two_chunks_with_a_pause_is_read_once_complete) {
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

TEST_F(store_test, rapid_burst_ends_on_the_last_save_and_every_history_file_is_complete) {
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
TEST_F(store_test, readers_never_see_a_torn_snapshot_during_a_burst) {
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

TEST_F(store_test, concurrent_api_writers_exactly_one_wins) {
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

TEST_F(store_test, api_update_is_validated_like_a_file) {
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

TEST_F(store_test, hand_edit_based_on_an_old_major_is_refused) {
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

TEST_F(store_test, hand_edit_merges_with_pending_updates_and_refuses_the_same_key) {
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

class write_to_disk_test : public store_test {
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

TEST_F(write_to_disk_test, writes_a_new_major_and_the_watcher_sees_no_change) {
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

TEST_F(write_to_disk_test, nothing_pending_writes_nothing) {
  ASSERT_TRUE(cfg->write_to_disk());
  EXPECT_EQ(cfg->write_to_disk().result, write_result::status::nothing_pending);
}

TEST_F(write_to_disk_test, refuses_while_another_editor_holds_the_lock) {
  const int fd = ::open(main().c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  expect_refused(write_result::status::locked);
  ::close(fd);
  EXPECT_TRUE(cfg->write_to_disk());  // lock gone: the retry succeeds
}

// A refused write leaves NAME.1.0.toml behind without a main file of major 1.
// A rejected edit naming that major must not move the store onto it.
TEST_F(write_to_disk_test, a_rejected_edit_does_not_adopt_an_orphan_major) {
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

TEST_F(write_to_disk_test, refuses_a_read_only_main_file) {
  fs::permissions(main(), fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  expect_refused(write_result::status::read_only);
}

TEST_F(write_to_disk_test, refuses_a_main_file_newer_than_the_temp) {
  const timespec future[2] = {{::time(nullptr) + 3600, 0}, {::time(nullptr) + 3600, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, main().c_str(), future, 0), 0);
  expect_refused(write_result::status::main_newer);
}

TEST_F(write_to_disk_test, refuses_a_main_file_with_an_edit_not_handled_yet) {
  save_in_place(main(), "a = 1\nb = 4\n");  // not started: the store has not seen it
  original = read_all(main());
  expect_refused(write_result::status::main_newer);
}

TEST_F(store_test, history_is_pruned_to_the_configured_count) {
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

TEST_F(store_test, invalid_main_file_at_start_serves_the_newest_valid_history) {
  save_in_place(main(), "a = 1\n");
  { auto first = open(); }
  save_in_place(main(), "a = \n");
  auto cfg = open();
  EXPECT_EQ(cfg->read()->integer("a"), 1);
  save_in_place(main(), "a = \n");
  fs::remove(dir / "app.0.0.toml");
  EXPECT_THROW(open(), config_exception);
}

TEST_F(store_test, subscriber_cannot_reenter_the_store) {
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

TEST_F(store_test, httpd_settings_refuse_the_old_policy_spelling_and_keep_serving) {
  const fs::path file = dir / "httpd.toml";
  const std::string head = "server.plugin_dir = \"/srv/plugins\"\n[[routes]]\nprefix = \"/\"\nmodule = \"app\"\n";
  save_in_place(file, head + "policy = \"pinned\"\n");
  store cfg(dom, file, httpd_schema(), quiet_options());
  typed_view<std::string> policy(cfg, dom, [](const snapshot& s) { return s.string("routes[0].policy"); });
  cfg.start();
  EXPECT_EQ(*policy.read(), "pinned");
  EXPECT_EQ(cfg.read()->string("version.policy"), "per-call");  // the default, in the kernel's spelling

  save_by_rename(file, head + "policy = \"per-request\"\n");
  const save_report r = cfg.reload();
  ASSERT_EQ(r.result, save_report::outcome::rejected);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->to_string(),
            file.string() + ":5:1: 'routes[0].policy': \"per-request\" was renamed: write \"per-call\"");
  EXPECT_EQ(*policy.read(), "pinned");  // the serving settings keep serving

  save_by_rename(file, head + "policy = \"per-call\"\n");
  ASSERT_EQ(cfg.reload().result, save_report::outcome::applied);
  EXPECT_EQ(*policy.read(), "per-call");
}

}  // namespace
