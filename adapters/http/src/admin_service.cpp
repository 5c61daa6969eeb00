#include "admin_service.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <hotswap/thread_name.hpp>
#include <hotswap/http/admin_request.hpp>
#include <nlohmann/json.hpp>

namespace hotswap::http::detail {

namespace {

using json = nlohmann::json;

response json_response(bhttp::status s, const json& body) {
  response res{s, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.set(version_header, "0");
  res.body() = body.dump() + "\n";
  return res;
}
response error_response(int status, const std::string& message) {
  return json_response(static_cast<bhttp::status>(status), json{{"error", message}});
}

// The admin socket's path must be free, or hold a socket nobody listens on
// (left by a run that died), which is removed. Anything else refuses the
// start: a live socket (another server), a regular file, a directory, a symlink.
void claim_socket_path(const std::filesystem::path& path) {
  auto refuse = [&](const std::string& why) { return config_error("admin.socket " + path.string() + ": " + why); };
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw refuse(std::string("cannot be checked: ") + std::strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode))
    throw refuse("exists and is not a socket; refusing to replace it (remove it if it is not needed)");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.native().size() >= sizeof addr.sun_path) throw refuse("path too long for a Unix socket");
  std::memcpy(addr.sun_path, path.c_str(), path.native().size());
  // Non-blocking: a live listener with a full backlog answers EAGAIN instead of blocking us.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int rc = fd < 0 ? -1 : ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int err = errno;
  if (fd >= 0) ::close(fd);
  if (rc == 0 || err == EAGAIN) throw refuse("another process listens on this socket");
  if (err != ECONNREFUSED) throw refuse(std::string("cannot tell whether the socket is in use: ") + std::strerror(err));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw refuse(std::string("cannot remove the stale socket: ") + std::strerror(errno));
}

}  // namespace

admin_service::admin_service(server::impl& s, net::io_context& io) : s_(s), io_(io) {
  const server_config& c = s_.config;
  const bool taking_over = !c.takeover_socket.empty();  // the listeners come with adopt()
  if (c.admin_enabled) {
    if (c.admin_token_file.empty())
      throw config_error("admin.token_file: required for the admin listener (or admin.enabled = false)");
    token_ = read_token_file(c.admin_token_file);
  }
  if (c.admin_enabled && !taking_over) {
    tcp::endpoint ep(net::ip::make_address(c.admin_address), c.admin_port);
    tcp_.emplace(io_);
    tcp_->open(ep.protocol());
    tcp_->set_option(net::socket_base::reuse_address(true));
    boost::system::error_code ec;
    tcp_->bind(ep, ec);  // listen() waits for start()
    if (ec) throw config_error("admin.address, admin.port " + c.admin_address + ":" + std::to_string(c.admin_port) + ": " + ec.message());
    port_ = tcp_->local_endpoint().port();
    tcp_backoff_.emplace(io_.get_executor(), s_.exhaustion);
  }
  if (!c.admin_socket.empty() && c.admin_uids.empty())
    throw config_error("admin.uids: at least one is required with admin.socket");
  if (!c.admin_socket.empty() && !taking_over) {
    claim_socket_path(c.admin_socket);
    const net::local::stream_protocol::endpoint ep(c.admin_socket.string());
    unix_.emplace(io_);
    unix_->open(ep.protocol());
    boost::system::error_code ec;
    unix_->bind(ep, ec);
    if (ec) throw config_error("admin.socket " + c.admin_socket.string() + ": " + ec.message());
    struct stat st {};
    if (::lstat(c.admin_socket.c_str(), &st) == 0) {
      unix_dev_ = st.st_dev;
      unix_ino_ = st.st_ino;
    }
    unix_backoff_.emplace(io_.get_executor(), s_.exhaustion);
  }
}

admin_service::~admin_service() {
  close_listeners();  // also when the server never started
  pool_.join();
}

std::pair<int, int> admin_service::listener_fds() {
  return {tcp_ ? tcp_->native_handle() : -1, unix_ ? unix_->native_handle() : -1};
}

void admin_service::hand_over_listeners() {
  handed_over_ = true;
  close_listeners();
}

void admin_service::adopt(int tcp_fd, int unix_fd) {
  const server_config& c = s_.config;
  if (c.admin_enabled != (tcp_fd >= 0) || c.admin_socket.empty() != (unix_fd < 0)) {
    for (const int fd : {tcp_fd, unix_fd})
      if (fd >= 0) ::close(fd);
    throw config_error("takeover: the running server's admin listeners differ from these settings");
  }
  if (tcp_fd >= 0) {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    ::getsockname(tcp_fd, reinterpret_cast<sockaddr*>(&a), &len);
    tcp_.emplace(io_);
    tcp_->assign(a.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), tcp_fd);
    port_ = tcp_->local_endpoint().port();
    tcp_backoff_.emplace(io_.get_executor(), s_.exhaustion);
  }
  if (unix_fd >= 0) {
    unix_.emplace(io_);
    unix_->assign(net::local::stream_protocol(), unix_fd);
    struct stat st {};
    if (::lstat(c.admin_socket.c_str(), &st) == 0) {  // ours to remove at shutdown from now on
      unix_dev_ = st.st_dev;
      unix_ino_ = st.st_ino;
    }
    unix_backoff_.emplace(io_.get_executor(), s_.exhaustion);
  }
}

void admin_service::start() {
  if (tcp_) {
    tcp_->listen();
    accept_tcp();
  }
  if (unix_) {
    unix_->listen();
    accept_unix();
  }
}

void admin_service::stop() {
  close_listeners();
  connections_->shut_down_all();
}

void admin_service::close_listeners() {
  boost::system::error_code ignored;
  if (tcp_) {
    tcp_->close(ignored);
    tcp_backoff_->cancel();
  }
  if (unix_ && unix_->is_open()) {
    unix_->close(ignored);
    unix_backoff_->cancel();
    // Only the file bound here: after a stale-socket takeover by another server it is theirs.
    const auto& path = s_.config.admin_socket;
    struct stat st {};
    if (!handed_over_ && ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == unix_dev_ && st.st_ino == unix_ino_)
      ::unlink(path.c_str());
  }
}

void admin_service::accept_tcp() {
  tcp_->async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !tcp_->is_open()) return;
    if (tcp_backoff_->handle(ec, *tcp_, "admin", [this] { accept_tcp(); })) return;
    if (!ec) {
      s_.exhaustion.accepted();
      using conn = connection<beast::tcp_stream, admin_service>;
      boost::system::error_code ignored;
      const auto peer = socket.remote_endpoint(ignored);
      auto c = std::make_shared<conn>(beast::tcp_stream(std::move(socket)), *this, s_.limits, connections_);
      c->state().peer = peer.address().to_string() + ":" + std::to_string(peer.port());
      c->start();
    }
    accept_tcp();
  });
}

void admin_service::accept_unix() {
  unix_->async_accept([this](boost::system::error_code ec, net::local::stream_protocol::socket socket) {
    if (ec == net::error::operation_aborted || !unix_->is_open()) return;
    if (unix_backoff_->handle(ec, *unix_, "admin socket", [this] { accept_unix(); })) return;
    if (!ec) {
      s_.exhaustion.accepted();
      ucred cred{};
      socklen_t len = sizeof cred;
      const bool known = ::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
      using conn = connection<unix_stream, admin_service>;
      auto c = std::make_shared<conn>(unix_stream(std::move(socket)), *this, s_.limits, connections_);
      c->state().unix_peer = true;
      c->state().peer = known ? "uid " + std::to_string(cred.uid) + " pid " + std::to_string(cred.pid) : "unknown peer";
      const auto rules = s_.admin_access.read();
      if (known && std::find(rules->uids.begin(), rules->uids.end(), cred.uid) != rules->uids.end())
        c->state().principal = "uid:" + std::to_string(cred.uid);
      c->start();
    }
    accept_unix();
  });
}

std::optional<response> admin_service::on_header(state& st, const request& header) {
  if (st.unix_peer) {
    if (!st.principal.empty()) return std::nullopt;
    unauthorized_.fetch_add(1, std::memory_order_relaxed);  // a statistic
    std::fprintf(stderr, "admin: 403 for %s on the admin socket (not in admin.uids)\n", st.peer.c_str());
    return error_response(403, "forbidden: this uid may not use the admin socket");
  }
  const auto token = bearer_token(header[bhttp::field::authorization]);
  if (token && constant_time_equal(*token, token_)) {
    st.principal = s_.admin_access.read()->principal;
    return std::nullopt;
  }
  unauthorized_.fetch_add(1, std::memory_order_relaxed);  // a statistic
  std::fprintf(stderr, "admin: 401 for %s %s from %s (%s token)\n", std::string(header.method_string()).c_str(),
               escape_text(header.target()).c_str(), st.peer.c_str(), token ? "wrong" : "no");
  response res = error_response(401, "unauthorized: send Authorization: Bearer <token>");
  res.set(bhttp::field::www_authenticate, "Bearer realm=\"hotswap-admin\"");
  return res;
}

template <class Connection>
void admin_service::on_request(std::shared_ptr<Connection> c, request&& req) {
  // Off the listener's thread: a swap loads and starts code. on_header authorised it.
  net::post(pool_, [this, c, principal = c->state().principal, req = std::move(req)] {
    // asio's pool threads are unnamed: each names itself at its first request, not at every one (a syscall).
    [[maybe_unused]] static thread_local const bool named = (hotswap::name_this_thread("httpd-admin"), true);
    response res;
    try {
      res = handle(principal, req);
    } catch (const std::exception& e) {
      res = error_response(500, e.what());
    }
    c->send(std::move(res));
    if (upgraded_.exchange(false)) s_.upgrade_finished();  // after the answer is queued: stop() lets it go out
  });
}

template void admin_service::on_request(std::shared_ptr<connection<beast::tcp_stream, admin_service>>, request&&);
template void admin_service::on_request(std::shared_ptr<connection<admin_service::unix_stream, admin_service>>,
                                        request&&);

response admin_service::handle(const std::string& principal, const request& req) {
  const std::string_view target = req.target();
  const std::string_view path = target.substr(0, target.find('?'));
  const bool get = req.method() == bhttp::verb::get, post = req.method() == bhttp::verb::post;
  auto wrong_method = [](const char* allow) {
    response res = error_response(405, std::string("method not allowed: use ") + allow);
    res.set(bhttp::field::allow, allow);
    return res;
  };
  if (path == "/admin/status") {
    if (!get) return wrong_method("GET");
    response res{bhttp::status::ok, 11};
    res.set(bhttp::field::content_type, "application/json");
    res.set(version_header, "0");
    res.body() = s_.status_json();
    return res;
  }
  if (path == "/metrics") {
    if (!get) return wrong_method("GET");
    response res{bhttp::status::ok, 11};
    res.set(bhttp::field::content_type, "text/plain; version=0.0.4");
    res.set(version_header, "0");
    res.body() = s_.metrics_text();
    return res;
  }
  if (path == "/admin/canary" || path == "/admin/canary/promote" || path == "/admin/canary/abort") {
    if (!post) return wrong_method("POST");
    if (path == "/admin/canary") return start_canary(principal, req.body());
    return steer_canary(principal, req.body(), path.ends_with("promote"));
  }
  if (path == "/admin/upgrade") {
    if (!post) return wrong_method("POST");
    return upgrade(principal, req.body());
  }
  if (path == "/admin/swap" || path == "/admin/rollback" || path == "/admin/policy") {
    if (!post) return wrong_method("POST");
    if (path == "/admin/swap") return swap(principal, req.body());
    if (path == "/admin/rollback") return rollback(principal, req.body());
    return policy(req.body());
  }
  return error_response(404, "no such admin endpoint");
}

std::mutex* admin_service::swap_lock(const std::string& module) {
  const auto names = s_.registry->names();
  if (std::find(names.begin(), names.end(), module) == names.end()) return nullptr;  // the registry says 404
  std::lock_guard lock(swap_locks_mutex_);
  auto& m = swap_locks_[module];  // made on first use: a saved settings file may load modules
  if (!m) m = std::make_unique<std::mutex>();
  return m.get();
}

namespace {

template <class Request>
response registry_call(std::mutex* lock, const std::string& module, Request&& request) {
  // A second request for a module whose swap is still running is a conflict,
  // not a queue: the operator learns that someone else is changing it.
  std::unique_lock guard = lock ? std::unique_lock(*lock, std::try_to_lock) : std::unique_lock<std::mutex>();
  if (lock && !guard.owns_lock())
    return error_response(409, "conflict: a swap or rollback of '" + module + "' is in progress");
  try {
    const modules::swap_result r = request();
    json stages_ms = json::object();  // where the swap's time went, by stage
    r.timing.for_each([&](const char* stage, modules::swap_timing::duration d) {
      stages_ms[stage] = std::chrono::duration<double, std::milli>(d).count();
    });
    return json_response(bhttp::status::ok, json{{"module", module},
                                                 {"version", r.version},
                                                 {"replaced", r.replaced},
                                                 {"build", r.record ? r.record->identity().build_version : ""},
                                                 {"sha256", r.record ? r.record->identity().sha256 : ""},
                                                 {"took_ms", std::chrono::duration<double, std::milli>(r.timing.total()).count()},
                                                 {"stages_ms", std::move(stages_ms)},
                                                 {"preflight_remembered", r.timing.preflight_remembered}});
  } catch (const modules::module_error& e) {
    return error_response(status_of(e.code()), e.what());
  }
}

}  // namespace

response admin_service::swap(const std::string& principal, std::string_view body) {
  auto parsed = parse_swap_request(body);
  if (auto* r = std::get_if<admin_refusal>(&parsed)) return error_response(r->status, r->message);
  auto& req = std::get<swap_request>(parsed);
  auto file = resolve_plugin_file(s_.config.plugin_dir, req.file);
  if (auto* r = std::get_if<admin_refusal>(&file)) return error_response(r->status, r->message);
  const auto& path = std::get<std::filesystem::path>(file);
  return registry_call(swap_lock(req.module), req.module,
                       [&] { return s_.registry->swap(principal, req.module, path, req.expected_version); });
}

response admin_service::rollback(const std::string& principal, std::string_view body) {
  auto parsed = parse_rollback_request(body);
  if (auto* r = std::get_if<admin_refusal>(&parsed)) return error_response(r->status, r->message);
  auto& req = std::get<rollback_request>(parsed);
  return registry_call(swap_lock(req.module), req.module,
                       [&] { return s_.registry->rollback(principal, req.module, req.version); });
}

response admin_service::start_canary(const std::string& principal, std::string_view body) {
  auto parsed = parse_canary_request(body);
  if (auto* r = std::get_if<admin_refusal>(&parsed)) return error_response(r->status, r->message);
  auto& req = std::get<canary_request>(parsed);
  auto file = resolve_plugin_file(s_.config.plugin_dir, req.file);
  if (auto* r = std::get_if<admin_refusal>(&file)) return error_response(r->status, r->message);
  std::uint64_t retryable = 0;
  if (req.retryable)
    for (const std::string& m : *req.retryable) retryable |= std::uint64_t{1} << static_cast<unsigned>(bhttp::string_to_verb(m));
  const auto& path = std::get<std::filesystem::path>(file);
  response res = registry_call(swap_lock(req.module), req.module,
                               [&] { return s_.registry->start_canary(principal, req.module, path, req.policy); });
  if (res.result() == bhttp::status::ok && req.retryable)
    for (const auto& r : *s_.routes.read())
      if (r->module == req.module) r->retryable.store(retryable, std::memory_order_relaxed);  // flags; no partner
  return res;
}

response admin_service::steer_canary(const std::string& principal, std::string_view body, bool promote) {
  auto parsed = parse_module_request(body);
  if (auto* r = std::get_if<admin_refusal>(&parsed)) return error_response(r->status, r->message);
  const std::string& module = std::get<module_request>(parsed).module;
  try {
    modules::canary& c = s_.registry->canary(module);
    if (promote) c.promote(principal);
    else c.abort(principal);
    const modules::canary_status st = c.status();
    return json_response(bhttp::status::ok, json{{"module", module},
                                                 {"phase", to_string(st.phase)},
                                                 {"weight_percent", st.weight_bp / 100.0},
                                                 {"stable_version", s_.registry->module(module).current_version()}});
  } catch (const modules::module_error& e) {
    return error_response(status_of(e.code()), e.what());
  }
}

response admin_service::upgrade(const std::string& principal, std::string_view body) {
  auto parsed = parse_upgrade_request(body);
  if (auto* r = std::get_if<admin_refusal>(&parsed)) return error_response(r->status, r->message);
  try {
    std::string outcome = s_.upgrade(principal, std::get<upgrade_request>(parsed).binary);
    response res{bhttp::status::ok, 11};
    res.set(bhttp::field::content_type, "application/json");
    res.set(version_header, "0");
    res.body() = std::move(outcome);
    upgraded_.store(true);  // read by on_request on this thread: seq_cst for simplicity, no partner elsewhere
    return res;
  } catch (const upgrade_refusal& r) {
    return error_response(r.status, r.message);
  } catch (const config_error& e) {  // the takeover socket could not be made
    return error_response(500, e.what());
  }
}

response admin_service::policy(std::string_view body) {
  auto parsed = parse_policy_request(body);
  if (auto* r = std::get_if<admin_refusal>(&parsed)) return error_response(r->status, r->message);
  const auto& req = std::get<policy_request>(parsed);
  const std::string* prefix = req.route ? &*req.route : nullptr;
  if (!s_.set_policy(req.policy, prefix)) return error_response(404, "unknown route '" + req.route.value_or("") + "'");
  return json_response(bhttp::status::ok, json{{"route", req.route.value_or("*")}, {"policy", http::to_string(req.policy)}});
}

}  // namespace hotswap::http::detail
