#include <hotswap/http/admin_request.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

namespace hotswap::http {

namespace {

using json = nlohmann::json;

admin_refusal bad_request(const std::string& why) { return {400, "malformed body: " + why}; }

// The body as a JSON object, or why not.
std::variant<json, admin_refusal> object_of(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad_request("not valid JSON");
  if (!j.is_object()) return bad_request("expected a JSON object");
  return j;
}

std::optional<std::string> string_field(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::optional<std::uint64_t> version_field(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<std::uint64_t>();
}

// The "module" and "file" fields every loading request names.
std::optional<admin_refusal> module_and_file(const json& j, std::string& module, std::string& file) {
  auto m = string_field(j, "module");
  auto f = string_field(j, "file");
  if (!m || m->empty()) return bad_request("\"module\" must be a non-empty string");
  if (!f || f->empty()) return bad_request("\"file\" must be a non-empty string");
  module = std::move(*m);
  file = std::move(*f);
  return std::nullopt;
}

}  // namespace

admin_parse<swap_request> parse_swap_request(std::string_view body) {
  auto parsed = object_of(body);
  if (auto* r = std::get_if<admin_refusal>(&parsed)) return *r;
  const json& j = std::get<json>(parsed);
  swap_request out;
  if (auto refused = module_and_file(j, out.module, out.file)) return *refused;
  if (j.contains("expected_version")) {
    out.expected_version = version_field(j, "expected_version");
    if (!out.expected_version) return bad_request("\"expected_version\" must be a non-negative integer");
  }
  return out;
}

admin_parse<rollback_request> parse_rollback_request(std::string_view body) {
  auto parsed = object_of(body);
  if (auto* r = std::get_if<admin_refusal>(&parsed)) return *r;
  const json& j = std::get<json>(parsed);
  auto module = string_field(j, "module");
  auto version = version_field(j, "version");
  if (!module || module->empty()) return bad_request("\"module\" must be a non-empty string");
  if (!version) return bad_request("\"version\" must be a non-negative integer");
  return rollback_request{std::move(*module), *version};
}

admin_parse<policy_request> parse_policy_request(std::string_view body) {
  auto parsed = object_of(body);
  if (auto* r = std::get_if<admin_refusal>(&parsed)) return *r;
  const json& j = std::get<json>(parsed);
  policy_request out;
  const auto policy = string_field(j, "policy");
  if (!policy) return bad_request("\"policy\" must be \"per-call\" or \"pinned\"");
  std::string why;
  const auto p = parse_call_policy(*policy, &why);
  if (!p) return bad_request("\"policy\": " + why);
  out.policy = *p;
  if (j.contains("route")) {
    out.route = string_field(j, "route");
    if (!out.route) return bad_request("\"route\" must be a string");
  }
  return out;
}

admin_parse<canary_request> parse_canary_request(std::string_view body) {
  auto parsed = object_of(body);
  if (auto* r = std::get_if<admin_refusal>(&parsed)) return *r;
  const json& j = std::get<json>(parsed);
  canary_request out;
  if (auto refused = module_and_file(j, out.module, out.file)) return *refused;
  modules::canary_policy& p = out.policy;
  if (j.contains("steps")) {
    const json& steps = j["steps"];
    if (!steps.is_array() || steps.empty()) return bad_request("\"steps\" must be a non-empty array of percentages");
    p.steps_bp.clear();
    for (const json& s : steps) {
      if (!s.is_number() || !(s.get<double>() > 0) || s.get<double>() > 100)
        return bad_request("\"steps\" must hold percentages in (0, 100]");
      p.steps_bp.push_back(static_cast<std::uint32_t>(s.get<double>() * 100 + 0.5));
    }
  }
  for (auto [key, field] : {std::pair{"min_samples", &p.min_samples}, std::pair{"max_samples", &p.max_samples},
                            std::pair{"shadow_samples", &p.shadow_samples},
                            std::pair{"min_stable_samples", &p.min_stable_samples}}) {
    if (!j.contains(key)) continue;
    const auto v = version_field(j, key);
    if (!v) return bad_request(std::string("\"") + key + "\" must be a non-negative integer");
    *field = *v;
  }
  for (auto [key, field] : {std::pair{"max_error_increase", &p.max_error_increase},
                            std::pair{"max_p99_ratio", &p.max_p99_ratio}, std::pair{"false_rollback", &p.false_rollback},
                            std::pair{"max_shadow_mismatch", &p.max_shadow_mismatch}}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_number()) return bad_request(std::string("\"") + key + "\" must be a number");
    *field = j[key].get<double>();
  }
  if (j.contains("min_latency_increase_ms")) {
    const json& f = j["min_latency_increase_ms"];
    if (!f.is_number() || f.get<double>() < 0) return bad_request("\"min_latency_increase_ms\" must be a non-negative number");
    p.min_latency_increase = std::chrono::microseconds(static_cast<std::int64_t>(f.get<double>() * 1000));
  }
  if (j.contains("shadow_sample")) {
    const json& f = j["shadow_sample"];
    if (!f.is_number() || f.get<double>() < 0 || f.get<double>() > 1)
      return bad_request("\"shadow_sample\" must be a fraction in [0, 1]");
    p.shadow_bp = static_cast<std::uint32_t>(f.get<double>() * 10000 + 0.5);
  }
  if (const std::string problem = modules::policy_problem(p); !problem.empty()) return bad_request(problem);
  if (j.contains("retryable")) {
    const json& m = j["retryable"];
    if (!m.is_array()) return bad_request("\"retryable\" must be an array of methods");
    std::vector<std::string> methods;
    for (const json& x : m) {
      static constexpr std::string_view known[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST", "PATCH"};
      if (!x.is_string() || std::find(std::begin(known), std::end(known), x.get<std::string>()) == std::end(known))
        return bad_request("\"retryable\" methods are GET, HEAD, OPTIONS, PUT, DELETE, POST, PATCH");
      methods.push_back(x.get<std::string>());
    }
    out.retryable = std::move(methods);
  }
  return out;
}

admin_parse<module_request> parse_module_request(std::string_view body) {
  auto parsed = object_of(body);
  if (auto* r = std::get_if<admin_refusal>(&parsed)) return *r;
  auto module = string_field(std::get<json>(parsed), "module");
  if (!module || module->empty()) return bad_request("\"module\" must be a non-empty string");
  return module_request{std::move(*module)};
}

admin_parse<upgrade_request> parse_upgrade_request(std::string_view body) {
  auto parsed = object_of(body);
  if (auto* r = std::get_if<admin_refusal>(&parsed)) return *r;
  auto binary = string_field(std::get<json>(parsed), "binary");
  if (!binary || binary->empty() || binary->front() != '/') return bad_request("\"binary\" must be an absolute path");
  return upgrade_request{std::move(*binary)};
}

admin_parse<std::filesystem::path> resolve_plugin_file(const std::filesystem::path& dir, std::string_view name) {
  auto refuse = [&](const char* why) {
    return admin_refusal{403, "file refused: " + std::string(why) + " (give a file name inside the plugin directory)"};
  };
  if (name.empty()) return refuse("empty name");
  if (name.size() > NAME_MAX) return refuse("name too long");
  if (name == "." || name == "..") return refuse("traversal");
  for (const char c : name) {
    if (c == '/') return refuse("traversal: a path, not a file name");
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return refuse("control character in the name");
  }
  return dir / std::string(name);
}

int status_of(modules::module_errc code) noexcept {
  switch (code) {
    case modules::module_errc::outside_allowed_dir:
    case modules::module_errc::insecure_permissions:
    case modules::module_errc::wrong_owner:
    case modules::module_errc::hash_not_allowed:
    case modules::module_errc::principal_not_allowed: return 403;
    case modules::module_errc::bad_policy: return 400;
    case modules::module_errc::unknown_module:
    case modules::module_errc::unknown_version: return 404;
    case modules::module_errc::conflict:
    case modules::module_errc::backpressure:
    case modules::module_errc::path_busy: return 409;
    default: return 422;  // the file could not be read, loaded, started or self-tested
  }
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  // Every byte of the longer input is visited and the lengths are folded in,
  // so neither a matching prefix nor the length of a guess shortens the loop.
  const std::size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

std::optional<std::string_view> bearer_token(std::string_view authorization) noexcept {
  constexpr std::string_view scheme = "Bearer ";
  if (authorization.size() <= scheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < scheme.size(); ++i)  // the scheme is case-insensitive (RFC 9110)
    if ((authorization[i] | 0x20) != (scheme[i] | 0x20)) return std::nullopt;
  std::string_view token = authorization.substr(scheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return token;
}

std::string read_token_file(const std::filesystem::path& file) {
  auto fail = [&](const std::string& why) { return config_error(file.string() + ": admin token file " + why); };
  // Non-blocking: opening a FIFO for reading would wait for a writer forever.
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) throw fail(std::string("cannot be opened: ") + std::strerror(errno) + " (symlinks are refused)");
  struct stat st {};
  std::string token;
  const bool statted = ::fstat(fd, &st) == 0;
  if (statted && S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size <= 4096) {
    token.resize(static_cast<std::size_t>(st.st_size));
    const ssize_t n = ::read(fd, token.data(), token.size());
    token.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  ::close(fd);
  if (!statted || !S_ISREG(st.st_mode))
    throw fail(std::string("is not a regular file") + (statted && S_ISFIFO(st.st_mode) ? " (a FIFO)" : ""));
  if (st.st_uid != ::geteuid()) throw fail("must be owned by this server's user (uid " + std::to_string(::geteuid()) + ")");
  if ((st.st_mode & 077) != 0) throw fail("must be readable by its owner only (chmod 600)");
  if (const auto nl = token.find_first_of("\r\n"); nl != std::string::npos) token.resize(nl);
  if (token.size() < 16) throw fail("must hold a token of at least 16 characters on its first line");
  return token;
}

}  // namespace hotswap::http
