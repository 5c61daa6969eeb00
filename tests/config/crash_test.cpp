// Crash safety of write-to-disk: a child process runs it and is SIGKILLed
// after each step in turn. Afterwards the main file is byte for byte either
// the old or the new content, every history file is complete (old or new
// values), and a store opened on the directory starts with one of the two.
#include <gtest/gtest.h>

#include <spawn.h>
#include <sys/wait.h>

#include <csignal>
#include <string>

#include <hotswap/config/store.hpp>

#include "crash_schema.hpp"
#include "test_support.hpp"

extern char** environ;

namespace {

using namespace config_test;
using namespace hotswap::config;

int run_child(const fs::path& dir, int step) {
  const std::string d = dir.string();
  const std::string s = std::to_string(step);
  char* argv[] = {const_cast<char*>(HOTSWAP_CONFIG_CRASH_CHILD), const_cast<char*>(d.c_str()),
                  const_cast<char*>(s.c_str()), nullptr};
  pid_t pid = 0;
  if (::posix_spawn(&pid, HOTSWAP_CONFIG_CRASH_CHILD, nullptr, nullptr, argv, environ) != 0) return -1;
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

class crash_test : public ::testing::TestWithParam<int> {};

TEST_P(crash_test, main_file_and_history_are_each_old_or_new) {
  const int step = GetParam();
  temp_dir dir;
  const fs::path main = dir / "app.toml";
  const std::string old_text = "a = 1\n";
  save_in_place(main, old_text);
  const schema rules = crash_schema();
  const snapshot old_values = load(old_text, "old", &rules).doc->values;
  snapshot::map next = old_values.values();
  next["a"] = std::int64_t{2};
  const snapshot new_values(next);
  const std::string new_text = to_toml(new_values, 1);

  const int status = run_child(dir.path(), step);
  if (step <= static_cast<int>(write_step::pruned)) {
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  } else {
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  }

  const std::string main_now = read_all(main);
  EXPECT_TRUE(main_now == old_text || main_now == new_text) << main_now;
  EXPECT_EQ(main_now, step >= static_cast<int>(write_step::replaced) ? new_text : old_text);
  for (const auto& e : history_dir(main).list()) {
    const auto loaded = load_file(e.path, &rules);
    ASSERT_TRUE(loaded) << loaded.error.to_string();
    EXPECT_TRUE(loaded.doc->values == old_values || loaded.doc->values == new_values) << e.path;
  }
  hotswap::domain dom;
  store restarted(dom, main, rules, quiet_options());
  const snapshot serving = *restarted.read();
  EXPECT_TRUE(serving == old_values || serving == new_values);
  EXPECT_EQ(serving.integer("a"), main_now == new_text ? 2 : 1);
}

// 0..4: killed after each write_step; 5: not killed (the whole sequence).
INSTANTIATE_TEST_SUITE_P(after_step, crash_test, ::testing::Range(0, 6));

}  // namespace
