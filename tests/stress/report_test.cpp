// The stress report is written by nlohmann-json: hostile text in every string
// field (the command line, --meta, backend and case names, skip reasons,
// violations, metric names) reads back from the file as it was given
// (ill-formed UTF-8 as U+FFFD), and the numbers keep their places.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../hostile_names.hpp"
#include "report.hpp"

namespace hotswap::stress {
namespace {

using hotswap::testing::hostile_name;
using hotswap::testing::hostile_names;

/// A file under $TMPDIR (or /tmp), removed at the end.
class temp_file {
 public:
  temp_file() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/hotswap-report-XXXXXX";
    const int fd = ::mkstemp(pattern.data());
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    ::close(fd);
    path_ = pattern;
  }
  ~temp_file() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

nlohmann::json written(const report_context& ctx, const std::vector<measured>& runs,
                       const std::vector<host_outcome>& outcomes) {
  temp_file f;
  EXPECT_TRUE(write_json(f.path(), ctx, runs, outcomes));
  std::ifstream in(f.path());
  return nlohmann::json::parse(in);  // throws (fails the test) on a writer's mistake
}

TEST(stress_report, reads_every_hostile_string_back) {
  const std::vector<hostile_name> names = hostile_names();
  report_context ctx;
  ctx.command = "hotswap-stress";
  std::vector<host_outcome> outcomes(1);
  outcomes[0].scenario = "escaping";
  std::vector<measured> runs;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string& text = names[i].text;
    ctx.command += " --meta '" + text + "'";
    ctx.meta.emplace_back(names[i].what, text);
    host_case c;
    c.name = text;
    c.metrics = {{text, 1.5}};
    c.violations = {text};
    outcomes[0].cases.push_back(c);
    // One run skipped (its reason is text), one measured (its backend is text).
    run_result skipped;
    skipped.config.backend = text;
    skipped.skipped = true;
    skipped.skip_reason = text;
    run_result ran;
    ran.config.backend = text;
    ran.config.scenario = "memory";
    ran.elapsed_s = 1;
    ran.calls = 1000 + i;
    runs.push_back({{skipped}, summarize({skipped}, pick_rule::median)});
    runs.push_back({{ran}, summarize({ran}, pick_rule::median)});
  }
  const nlohmann::json j = written(ctx, runs, outcomes);

  std::string command = "hotswap-stress";
  for (const hostile_name& n : names) command += " --meta '" + n.as_utf8 + "'";
  EXPECT_EQ(j.at("command"), command);
  ASSERT_EQ(j.at("runs").size(), 2 * names.size());
  ASSERT_EQ(j.at("host_scenarios").size(), names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    const hostile_name& n = names[i];
    EXPECT_EQ(j.at("meta").at(n.what), n.as_utf8) << n.what;
    const auto& skipped = j.at("runs")[2 * i];
    EXPECT_EQ(skipped.at("backend"), n.as_utf8) << n.what;
    EXPECT_EQ(skipped.at("result"), "skip");
    EXPECT_EQ(skipped.at("skip_reason"), n.as_utf8) << n.what;
    const auto& ran = j.at("runs")[2 * i + 1];
    EXPECT_EQ(ran.at("backend"), n.as_utf8) << n.what;
    EXPECT_EQ(ran.at("repetitions").at(0).at("calls"), 1000 + i);
    EXPECT_EQ(ran.at("reported").at("calls"), 1000.0 + static_cast<double>(i));
    const auto& c = j.at("host_scenarios")[i];
    EXPECT_EQ(c.at("case"), n.as_utf8) << n.what;
    EXPECT_EQ(c.at("metrics").at(n.as_utf8), 1.5) << n.what;
    EXPECT_EQ(c.at("violations").at(0), n.as_utf8) << n.what;
  }
}

}  // namespace
}  // namespace hotswap::stress
