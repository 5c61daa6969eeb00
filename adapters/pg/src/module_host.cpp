// module_host: one registry per backend, entered with every signal blocked.
#include "module_host.hpp"

#include <signal.h>

#include <utility>

#include <hotswap/module/audit.hpp>

namespace hotswap::pg {

namespace {

// Blocks every signal on this thread for its lifetime; threads created meanwhile inherit the mask.
class signals_blocked {
 public:
  signals_blocked() {
    sigset_t all;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, &saved_);
  }
  ~signals_blocked() { ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  signals_blocked(const signals_blocked&) = delete;
  signals_blocked& operator=(const signals_blocked&) = delete;

 private:
  sigset_t saved_;
};

modules::registry_options registry_options_of(const host_settings& s, modules::module_log log) {
  modules::registry_options r;
  r.loader.policy.allowed_dir = s.container_dir;
  r.loader.shadow.mode = s.shadow;
  r.loader.log = std::move(log);
  // Each backend loads bytes whose SHA-256 the swapping backend's preflight passed
  // (backend.cpp compares them): one child per swap, not one per backend.
  r.preflight = false;
  r.history = 2;  // rollback is a new swap of an older file; the history only costs memory here
  return r;
}

}  // namespace

module_host::module_host(const host_settings& settings)
    : registry_(domain_, registry_options_of(settings, [this](const modules::module_event& e) { collect(e); })) {}

std::unique_ptr<module_host> module_host::create(const host_settings& settings) {
  signals_blocked blocked;
  return std::make_unique<module_host>(settings);
}

void module_host::collect(const modules::module_event& e) {
  std::string line = modules::to_json_line(e);
  std::lock_guard lock(audit_mutex_);
  audit_lines_.push_back(std::move(line));
}

std::deque<std::string> module_host::take_audit_lines() {
  std::lock_guard lock(audit_mutex_);
  return std::exchange(audit_lines_, {});
}

loaded_version module_host::load(const std::string& principal, const std::string& name,
                                 const std::filesystem::path& file, const std::string& expected_sha256) {
  signals_blocked blocked;
  const std::vector<std::string> names = registry_.names();
  const bool known = std::find(names.begin(), names.end(), name) != names.end();
  modules::request_options request;
  request.expected_sha256 = expected_sha256;
  if (known)
    registry_.swap(principal, name, file, std::nullopt, request);
  else
    registry_.add<hotswap_pg_container_api>(principal, name, file, request);
  loaded_version out;
  out.pin = registry_.get<hotswap_pg_container_api>(name).pin();
  const modules::version_identity& id = out.pin.module().record().identity();
  out.sha256 = id.sha256;
  out.build = id.build_version;
  check_table(*out.pin, file.string());
  return out;
}

std::string module_host::sha256_of(const std::filesystem::path& file) const {
  return registry_.loader().read(file).sha256;
}

void module_host::release(container_pin& pin) {
  signals_blocked blocked;
  pin.reset();
}

void check_table(const hotswap_pg_container_api& table, const std::string& file) {
  if (table.function_count != 0 && table.functions == nullptr)
    throw modules::module_error(modules::module_errc::bad_descriptor, file,
                                "bad container table: function_count without functions");
  for (std::uint32_t i = 0; i < table.function_count; ++i)
    if (table.functions[i].name == nullptr || table.functions[i].fn == nullptr)
      throw modules::module_error(modules::module_errc::bad_descriptor, file,
                                  "bad container table: function " + std::to_string(i) + " has no name or no code");
}

const char* sqlstate_of(modules::module_errc code) noexcept {
  using e = modules::module_errc;
  switch (code) {
    case e::not_found: return "58P01";  // undefined_file
    case e::permission_denied:
    case e::outside_allowed_dir:
    case e::insecure_permissions:
    case e::wrong_owner:
    case e::hash_not_allowed:
    case e::principal_not_allowed:
    case e::dependency_refused: return "42501";  // insufficient_privilege
    case e::hash_mismatch: return "55000";  // object_not_in_prerequisite_state: not the published bytes
    case e::io_error:
    case e::resource_exhausted:
    case e::shadow_failed: return "58000";  // system_error
    case e::startup_failed:
    case e::migrate_failed:
    case e::self_test_failed:
    case e::hook_timeout:
    case e::preflight_failed: return "38000";  // external_routine_exception
    case e::unknown_module:
    case e::unknown_version: return "42704";  // undefined_object
    default: return "22023";  // invalid_parameter_value: the file is not a usable container
  }
}

}  // namespace hotswap::pg
