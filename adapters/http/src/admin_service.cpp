#include "admin_service.hpp"

#include <sys/socket.h>
#include <unistd.h>

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

}  // namespace

admin_service::admin_service(server::impl& s, net::io_context& io) : s_(s), io_(io) {
  const server_config& c = s_.config;
  if (c.admin_enabled) {
    if (c.admin_token_file.empty())
      throw config_error("admin-token-file: required for the admin listener (or --no-admin)");
    token_ = read_token_file(c.admin_token_file);
    tcp::endpoint ep(net::ip::make_address(c.admin_address), c.admin_port);
    tcp_.emplace(io_);
    tcp_->open(ep.protocol());
    tcp_->set_option(net::socket_base::reuse_address(true));
    boost::system::error_code ec;
    tcp_->bind(ep, ec);
    if (ec) throw config_error("admin-listen " + c.admin_address + ":" + std::to_string(c.admin_port) + ": " + ec.message());
    tcp_->listen();
    port_ = tcp_->local_endpoint().port();
  }
  if (!c.admin_socket.empty()) {
    if (c.admin_uids.empty()) throw config_error("admin-uid: at least one is required with --admin-socket");
    ::unlink(c.admin_socket.c_str());  // a stale socket of an earlier run
    unix_.emplace(io_, net::local::stream_protocol::endpoint(c.admin_socket.string()));
  }
  for (const auto& name : s_.registry->names()) swap_locks_.emplace(name, std::make_unique<std::mutex>());
}

admin_service::~admin_service() { pool_.join(); }

void admin_service::start() {
  if (tcp_) accept_tcp();
  if (unix_) accept_unix();
}

void admin_service::stop() {
  boost::system::error_code ignored;
  if (tcp_) tcp_->close(ignored);
  if (unix_) {
    unix_->close(ignored);
    ::unlink(s_.config.admin_socket.c_str());
  }
  connections_->shut_down_all();
}

void admin_service::accept_tcp() {
  tcp_->async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !tcp_->is_open()) return;
    if (!ec) {
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
    if (!ec) {
      ucred cred{};
      socklen_t len = sizeof cred;
      const bool known = ::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
      using conn = connection<unix_stream, admin_service>;
      auto c = std::make_shared<conn>(unix_stream(std::move(socket)), *this, s_.limits, connections_);
      c->state().unix_peer = true;
      c->state().peer = known ? "uid " + std::to_string(cred.uid) + " pid " + std::to_string(cred.pid) : "unknown peer";
      const auto& uids = s_.config.admin_uids;
      if (known && std::find(uids.begin(), uids.end(), cred.uid) != uids.end())
        c->state().principal = "uid:" + std::to_string(cred.uid);
      c->start();
    }
    accept_unix();
  });
}

template <class Connection>
void admin_service::on_request(std::shared_ptr<Connection> c, request&& req) {
  const state& st = c->state();
  std::string principal = st.principal;
  if (st.unix_peer && principal.empty()) {
    unauthorized_.fetch_add(1, std::memory_order_relaxed);  // a statistic
    std::fprintf(stderr, "admin: 403 for %s on the admin socket (not in admin-uid)\n", st.peer.c_str());
    return c->send(error_response(403, "forbidden: this uid may not use the admin socket"));
  }
  if (!st.unix_peer) {
    const auto token = bearer_token(req[bhttp::field::authorization]);
    if (!token || !constant_time_equal(*token, token_)) {
      unauthorized_.fetch_add(1, std::memory_order_relaxed);  // a statistic
      std::fprintf(stderr, "admin: 401 for %s %s from %s (%s token)\n", std::string(req.method_string()).c_str(),
                   escape_text(req.target()).c_str(), st.peer.c_str(), token ? "wrong" : "no");
      response res = error_response(401, "unauthorized: send Authorization: Bearer <token>");
      res.set(bhttp::field::www_authenticate, "Bearer realm=\"hotswap-admin\"");
      return c->send(std::move(res));
    }
    principal = s_.config.admin_principal;
  }
  // Off the listener's thread: a swap loads and starts code.
  net::post(pool_, [this, c, principal = std::move(principal), req = std::move(req)] {
    response res;
    try {
      res = handle(principal, req);
    } catch (const std::exception& e) {
      res = error_response(500, e.what());
    }
    c->send(std::move(res));
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
  if (path == "/admin/swap" || path == "/admin/rollback" || path == "/admin/policy") {
    if (!post) return wrong_method("POST");
    if (path == "/admin/swap") return swap(principal, req.body());
    if (path == "/admin/rollback") return rollback(principal, req.body());
    return policy(req.body());
  }
  return error_response(404, "no such admin endpoint");
}

std::mutex* admin_service::swap_lock(const std::string& module) {
  const auto it = swap_locks_.find(module);
  return it == swap_locks_.end() ? nullptr : it->second.get();
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

response admin_service::policy(std::string_view body) {
  auto parsed = parse_policy_request(body);
  if (auto* r = std::get_if<admin_refusal>(&parsed)) return error_response(r->status, r->message);
  const auto& req = std::get<policy_request>(parsed);
  bool found = false;
  for (auto& r : s_.routes) {
    if (req.route && r->prefix != *req.route) continue;
    r->policy.store(req.policy, std::memory_order_relaxed);  // a flag read per request; no partner
    found = true;
  }
  if (!found) return error_response(404, "unknown route '" + req.route.value_or("") + "'");
  return json_response(bhttp::status::ok, json{{"route", req.route.value_or("*")}, {"policy", to_string(req.policy)}});
}

}  // namespace hotswap::http::detail
