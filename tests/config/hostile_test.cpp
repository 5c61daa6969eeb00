// Input an attacker (or an accident) can put in the configuration directory
// (issue #17): no file may crash or hang the loader, the CLI, a running store
// or a restart, and nothing from outside the directory may be copied into it.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <hotswap/config/loader.hpp>
#include <hotswap/config/store.hpp>

#include "test_support.hpp"

namespace {

using namespace config_test;
using namespace hotswap::config;

std::string dotted(std::size_t parts, const std::string& name = "a") {
  std::string key = name;
  for (std::size_t i = 1; i < parts; ++i) key += "." + name;
  return key;
}

// toml++ 3.3 recursed once per dotted part and overflowed the stack at about
// 100,000 parts: the pre-lexer refuses the part past max_depth, with its position.
TEST(deep_input_test, dotted_header_and_key_are_refused_at_the_part_past_the_limit) {
  const auto header = load("[" + dotted(120'000) + "]\nx = 1\n", "deep.toml", nullptr);
  ASSERT_FALSE(header);
  EXPECT_EQ(header.error.to_string(), "deep.toml:1:257: nested deeper than 128 levels (each part of a dotted key or "
                                      "table header, each array and inline table is one)");
  const auto key = load(dotted(120'000) + " = 1\n", "deep.toml", nullptr);
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error.line, 1u);
  EXPECT_EQ(key.error.column, 256u);
  // Levels add up: a header, a dotted key under it, inline tables and arrays.
  const auto mixed = load("[" + dotted(60) + "]\n" + dotted(30) + " = {" + dotted(30) + " = [[{" + dotted(10) +
                              " = 1}]]}\n",
                          "deep.toml", nullptr);
  ASSERT_FALSE(mixed);
  EXPECT_EQ(mixed.error.line, 2u);
  EXPECT_NE(mixed.error.reason.find("nested deeper than 128"), std::string::npos);
  // At the limit it loads.
  const auto at_limit = load("[" + dotted(100) + "]\n" + dotted(27) + " = 1\n", "deep.toml", nullptr);
  ASSERT_TRUE(at_limit) << at_limit.error.to_string();
  EXPECT_EQ(at_limit.doc->values.size(), 1u);
}

// The flat keys repeat their tables' names: a long header over many short
// keys cost memory quadratic in the file (a 40 KB file took 1.4 GB). The
// walk has a byte budget linear in the file's size.
TEST(deep_input_test, flat_keys_are_bounded_by_the_files_size) {
  std::string text = "[" + std::string(100'000, 'h') + "]\n";
  for (int i = 0; i < 200; ++i) text += "k" + std::to_string(i) + " = 1\n";
  const auto r = load(text, "long.toml", nullptr);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error.reason.find("the dotted keys of this file are too long"), std::string::npos)
      << r.error.to_string();
  EXPECT_GT(r.error.line, 2u);  // a key well after the header: the budget ran out there
}

// A deep file saved under a running store is refused (the store keeps
// serving), and a restart on it serves the newest valid history file.
TEST(deep_input_test, a_store_refuses_it_and_a_restart_serves_history) {
  temp_dir dir;
  const fs::path main = dir / "app.toml";
  save_in_place(main, "a = 42\n");
  hotswap::domain dom;
  // "x", not "a": a header redefining the key a = 1 would stop toml++ early.
  const std::string deep = "a = 1\n[" + dotted(120'000, "x") + "]\n";
  {
    store cfg(dom, main, test_schema(), quiet_options());
    save_in_place(main, deep);
    const auto report = cfg.reload();
    ASSERT_EQ(report.result, save_report::outcome::rejected);
    EXPECT_EQ(report.error->line, 2u);
    EXPECT_EQ(cfg.read()->integer("a"), 42);
  }
  store restarted(dom, main, test_schema(), quiet_options());
  EXPECT_EQ(restarted.read()->integer("a"), 42);
  EXPECT_EQ(restarted.serving_history().version(), "0.0");

  const auto r = cli("diff " + main.string() + " main 0.0");
  EXPECT_EQ(r.code, 1) << r.output;  // not 139 (SIGSEGV)
  EXPECT_NE(r.output.find(main.string() + ":2:257: nested deeper than 128 levels"), std::string::npos) << r.output;
}

// TOML 1.0 allows a UTF-8 byte order mark at the start (toml-test's utf8-bom cases).
TEST(byte_order_mark_test, is_accepted_at_the_start_only) {
  const schema rules = test_schema();
  const auto r = load("\xEF\xBB\xBF" "a = 7\nname = \"x\"\n", "bom.toml", &rules);
  ASSERT_TRUE(r) << r.error.to_string();
  EXPECT_EQ(r.doc->values.integer("a"), 7);
  EXPECT_EQ(r.doc->positions.at("a"), (std::pair<std::uint32_t, std::uint32_t>{1, 1}));
  const auto later = load("a = 7\n\xEF\xBB\xBF" "b = 1\n", "bom.toml", &rules);
  ASSERT_FALSE(later);
  EXPECT_EQ(later.error.to_string(), "bom.toml:2:1: non-ASCII character U+FEFF outside a string or comment (TOML "
                                     "keys and values are ASCII)");
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 0777;
}

uid_t owner_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_uid;
}

// app.toml replaced by a symlink to a file outside its directory (a root
// server and /etc/shadow): refused without reading it, and no byte of it is
// copied into the directory; a restart serves history instead of it. A link
// to a file inside the directory (subdirectories too) is followed.
TEST(hostile_file_test, a_symlink_out_of_the_directory_is_never_read_or_copied) {
  temp_dir dir;
  temp_dir elsewhere;
  const fs::path main = dir / "app.toml";
  const fs::path secret = elsewhere / "shadow";
  save_in_place(secret, "root:$6$secret-hash:19000:0:99999:7:::\n");
  save_in_place(main, "a = 42\n");
  hotswap::domain dom;
  {
    store cfg(dom, main, test_schema(), quiet_options());
    fs::remove(main);
    fs::create_symlink(secret, main);
    const auto report = cfg.reload();
    ASSERT_EQ(report.result, save_report::outcome::rejected);
    EXPECT_NE(report.error->reason.find("outside its directory"), std::string::npos) << report.error->to_string();
    EXPECT_EQ(cfg.read()->integer("a"), 42);
    for (const auto& entry : fs::directory_iterator(dir.path())) {
      if (entry.is_symlink()) continue;
      EXPECT_EQ(read_all(entry.path()).find("secret-hash"), std::string::npos) << entry.path();
    }
    EXPECT_EQ(cli("validate --schema httpd " + main.string()).code, 3);
  }
  store restarted(dom, main, test_schema(), quiet_options());
  EXPECT_EQ(restarted.read()->integer("a"), 42);

  // Inside the directory, as a Kubernetes ConfigMap lays it out: followed.
  fs::create_directories(dir / "..data");
  save_in_place(dir / "..data" / "app.toml", "a = 7\n");
  fs::remove(main);
  fs::create_symlink("..data/app.toml", main);
  const auto report = restarted.reload();
  ASSERT_EQ(report.result, save_report::outcome::applied) << report.error->to_string();
  EXPECT_EQ(restarted.read()->integer("a"), 7);
}

// A FIFO planted as the main file is refused, not waited on (the read would
// otherwise block the store's writer thread forever).
TEST(hostile_file_test, a_fifo_is_refused_not_waited_on) {
  temp_dir dir;
  const fs::path main = dir / "app.toml";
  save_in_place(main, "a = 42\n");
  hotswap::domain dom;
  store cfg(dom, main, test_schema(), quiet_options());
  fs::remove(main);
  ASSERT_EQ(::mkfifo(main.c_str(), 0600), 0);
  const auto report = cfg.reload();
  ASSERT_EQ(report.result, save_report::outcome::rejected);
  EXPECT_EQ(report.error->to_string(), main.string() + ":1:1: not a regular file; not read");
  EXPECT_EQ(cfg.read()->integer("a"), 42);
}

// History and error copies of a 0600 file are 0600 with its owner, and
// neither write-to-disk nor a rollback makes the main file 0644.
TEST(hostile_file_test, copies_and_rewrites_keep_the_main_files_mode_and_owner) {
  temp_dir dir;
  const fs::path main = dir / "app.toml";
  save_in_place(main, "a = 1\n");
  ASSERT_EQ(::chmod(main.c_str(), 0600), 0);
  const bool root = ::geteuid() == 0;
  const uid_t user = root ? 4242 : ::geteuid();  // as root: a user's file
  if (root) {
    ASSERT_EQ(::chown(main.c_str(), user, static_cast<gid_t>(-1)), 0);
  }
  hotswap::domain dom;
  store cfg(dom, main, test_schema(), quiet_options());
  const auto first = history_dir(main).list().at(0).path;
  EXPECT_EQ(mode_of(first), 0600u);
  EXPECT_EQ(owner_of(first), user);

  save_in_place(main, "a = 2\npassword = \"hunter2\"\n");  // refused: unknown key
  const auto refused = cfg.reload();
  ASSERT_EQ(refused.result, save_report::outcome::rejected);
  EXPECT_EQ(mode_of(refused.error_copy), 0600u);
  EXPECT_EQ(owner_of(refused.error_copy), user);
  EXPECT_EQ(mode_of(history_dir(main).error_reason(1)), 0600u);

  save_in_place(main, "a = 3\n");
  const auto applied = cfg.reload();
  ASSERT_EQ(applied.result, save_report::outcome::applied);
  EXPECT_EQ(mode_of(applied.history->path), 0600u);
  EXPECT_EQ(owner_of(applied.history->path), user);

  ASSERT_TRUE(cfg.update(cfg.version(), {{"b", value{std::int64_t{5}}}}));
  ASSERT_EQ(cfg.write_to_disk().result, write_result::status::written);
  EXPECT_EQ(mode_of(main), 0600u);
  EXPECT_EQ(owner_of(main), user);
  EXPECT_EQ(mode_of(history_dir(main).newest()->path), 0600u);

  ASSERT_EQ(cli("rollback " + main.string() + " 0.0").code, 0);
  EXPECT_EQ(mode_of(main), 0600u);
  EXPECT_EQ(owner_of(main), user);
}

// A file over the size limit: its error copy keeps a bounded head, and the
// error says so (16 kept copies of 100 MB files took 1.6 GB).
TEST(hostile_file_test, an_over_size_file_keeps_only_a_bounded_head) {
  temp_dir dir;
  const fs::path main = dir / "app.toml";
  save_in_place(main, "a = 1\n");
  hotswap::domain dom;
  store cfg(dom, main, test_schema(), quiet_options());
  std::string big = "a = 2\n";
  while (big.size() < 3 * load_limits{}.max_bytes) big += "# padding padding padding padding padding padding\n";
  save_in_place(main, big);
  const auto report = cfg.reload();
  ASSERT_EQ(report.result, save_report::outcome::rejected);
  EXPECT_EQ(fs::file_size(report.error_copy), head_bytes);
  EXPECT_EQ(read_all(report.error_copy), big.substr(0, head_bytes));
  EXPECT_EQ(read_all(history_dir(main).error_reason(1)),
            report.error->to_string() + "\n# only its first " + std::to_string(head_bytes) + " bytes are kept\n");
}

}  // namespace
