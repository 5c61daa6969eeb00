// The admin API's request language, without any server around it: JSON body
// parsing, plugin file-name resolution, the bearer-token check and the status
// code of every registry refusal. Pure functions, so the fuzz target
// (tests/fuzz/http_admin_fuzz.cpp) and the tests can drive them directly.
//
//   POST /admin/swap      {"module": "greeting", "file": "greeting-2.so", "expected_version": 3}
//   POST /admin/rollback  {"module": "greeting", "version": 1}
//   POST /admin/policy    {"policy": "pinned"}  or  {"route": "/slow", "policy": "per-call"}
//   POST /admin/canary    {"module": "greeting", "file": "greeting-2.so", "steps": [1, 5, 25, 50, 100],
//                          "min_samples": 500, "max_error_increase": 0.02, "max_p99_ratio": 1.5,
//                          "min_latency_increase_ms": 0.25,
//                          "retryable": ["GET", "HEAD"], "shadow_sample": 0.1, "shadow_samples": 200,
//                          "max_shadow_mismatch": 0.01}   (all but module and file optional)
//   POST /admin/canary/promote  {"module": "greeting"}     (the next step now)
//   POST /admin/canary/abort    {"module": "greeting"}     (every request back to stable)
//   POST /admin/upgrade   {"binary": "/usr/local/bin/hotswap-httpd"}  (a new binary takes over)
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <hotswap/module/error.hpp>
#include <hotswap/module/verdict.hpp>

#include "config.hpp"

namespace hotswap::http {

/// An answer the admin API gives instead of doing something: status and why.
struct admin_refusal {
  int status;
  std::string message;
};

template <class T>
using admin_parse = std::variant<T, admin_refusal>;

struct swap_request {
  std::string module;
  std::string file;  ///< a plain file name inside the plugin directory
  std::optional<std::uint64_t> expected_version;
};
struct rollback_request {
  std::string module;
  std::uint64_t version = 0;
};
struct policy_request {
  std::optional<std::string> route;  ///< empty: server-wide
  call_policy policy = call_policy::per_call;
};

struct canary_request {
  std::string module;
  std::string file;
  modules::canary_policy policy;
  std::optional<std::vector<std::string>> retryable;  ///< methods, upper case; unset: keep the routes' (GET, HEAD)
};
struct module_request {
  std::string module;
};
struct upgrade_request {
  std::string binary;  ///< an absolute path
};

/// 400 with the reason on malformed JSON, missing or mistyped fields.
admin_parse<canary_request> parse_canary_request(std::string_view body);
admin_parse<module_request> parse_module_request(std::string_view body);
admin_parse<upgrade_request> parse_upgrade_request(std::string_view body);
admin_parse<swap_request> parse_swap_request(std::string_view body);
admin_parse<rollback_request> parse_rollback_request(std::string_view body);
admin_parse<policy_request> parse_policy_request(std::string_view body);

/// `name` as a file directly inside `dir`: one path component, no "." or
/// "..", no NUL or control characters, at most NAME_MAX bytes; else 403
/// (traversal). Symlinks that lead out of `dir` are the loader's to refuse
/// (also 403, through status_of).
admin_parse<std::filesystem::path> resolve_plugin_file(const std::filesystem::path& dir, std::string_view name);

/// The admin status code of a registry refusal: 403 policy, 404 unknown
/// module or version, 409 conflict or backpressure, 422 load/start/self-test.
int status_of(modules::module_errc code) noexcept;

/// Compares in time that depends only on the lengths, not on where they differ.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

/// The token of an "Authorization: Bearer TOKEN" value, or nullopt.
std::optional<std::string_view> bearer_token(std::string_view authorization) noexcept;

/// Reads the admin token: the file must be a regular file owned by this
/// process's user with no group or other permissions, holding one non-empty
/// line. A FIFO, device or socket is refused without waiting on it. Throws
/// config_error naming the file and the cause.
std::string read_token_file(const std::filesystem::path& file);

}  // namespace hotswap::http
