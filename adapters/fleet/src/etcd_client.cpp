#include <openssl/evp.h>

#include <boost/asio/ip/tcp.hpp>
#include <hotswap/fleet/etcd_client.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "http_exchange.hpp"

namespace hotswap::fleet {

namespace asio = boost::asio;
using json = nlohmann::json;
using detail::clock;
namespace http = detail::http;

namespace {

std::string base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string unbase64(const std::string& in) {
  if (in.empty()) return {};
  std::string out(3 * (in.size() / 4), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) throw etcd_error("etcd sent invalid base64");
  std::size_t size = static_cast<std::size_t>(n);
  for (std::size_t i = in.size(); i > 0 && in[i - 1] == '='; --i) --size;  // DecodeBlock counts padding as zeros
  out.resize(size);
  return out;
}

// int64 fields arrive as JSON strings ("42"), and are absent when zero.
std::int64_t int_field(const json& j, const char* name) {
  const auto it = j.find(name);
  if (it == j.end()) return 0;
  if (it->is_string()) return std::stoll(it->get<std::string>());
  return it->get<std::int64_t>();
}

key_value parse_kv(const json& j) {
  key_value kv;
  kv.key = unbase64(j.value("key", ""));
  kv.value = unbase64(j.value("value", ""));
  kv.create_revision = int_field(j, "create_revision");
  kv.mod_revision = int_field(j, "mod_revision");
  kv.version = int_field(j, "version");
  kv.lease = int_field(j, "lease");
  return kv;
}

range_result parse_range(const json& j) {
  range_result r;
  r.revision = int_field(j.value("header", json::object()), "revision");
  for (const json& kv : j.value("kvs", json::array())) r.kvs.push_back(parse_kv(kv));
  return r;
}

json to_json(const operation& op) {
  switch (op.what) {
    case operation::kind::put: {
      json put{{"key", base64(op.key)}, {"value", base64(op.value)}};
      if (op.lease != 0) put["lease"] = std::to_string(op.lease);
      return json{{"request_put", put}};
    }
    case operation::kind::remove: return json{{"request_delete_range", {{"key", base64(op.key)}}}};
    case operation::kind::remove_prefix:
      return json{{"request_delete_range", {{"key", base64(op.key)}, {"range_end", base64(prefix_end(op.key))}}}};
  }
  return {};
}

}  // namespace

std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    if (static_cast<unsigned char>(prefix.back()) < 0xff) {
      prefix.back() = static_cast<char>(prefix.back() + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

std::vector<etcd_endpoint> parse_endpoints(const std::string& list) {
  std::vector<etcd_endpoint> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string entry = list.substr(start, end - start);
    start = end + 1;
    if (entry.empty()) continue;
    if (entry.rfind("http://", 0) == 0) entry.erase(0, 7);
    const auto colon = entry.rfind(':');
    int port = 0;
    try {
      port = colon == std::string::npos ? 0 : std::stoi(entry.substr(colon + 1));
    } catch (const std::exception&) {
    }
    if (colon == std::string::npos || colon == 0 || port <= 0 || port > 65535)
      throw std::invalid_argument("etcd endpoint '" + entry + "': expected HOST:PORT");
    out.push_back({entry.substr(0, colon), static_cast<std::uint16_t>(port)});
  }
  if (out.empty()) throw std::invalid_argument("no etcd endpoint given");
  return out;
}

const key_value* range_result::find(const std::string& key) const {
  for (const key_value& kv : kvs)
    if (kv.key == key) return &kv;
  return nullptr;
}

etcd_client::etcd_client(std::vector<etcd_endpoint> members, std::chrono::milliseconds timeout)
    : members_(std::move(members)), timeout_(timeout) {
  if (members_.empty()) throw std::invalid_argument("etcd_client: no member given");
}

std::string etcd_client::call(const std::string& path, const std::string& body) {
  std::string failures;
  const std::size_t first = preferred_.load(std::memory_order_relaxed);  // a hint; no partner
  for (std::size_t i = 0; i < members_.size(); ++i) {
    const std::size_t index = (first + i) % members_.size();
    const etcd_endpoint& m = members_[index];
    try {
      asio::io_context ioc;
      asio::ip::tcp::socket socket(ioc);
      const auto deadline = clock::now() + timeout_;
      detail::connect(ioc, socket, asio::ip::tcp::endpoint(asio::ip::make_address(m.host), m.port), deadline);
      http::request<http::string_body> req{http::verb::post, path, 11};
      req.set(http::field::host, m.host);
      req.set(http::field::content_type, "application/json");
      req.body() = body;
      auto res = detail::exchange(ioc, socket, req, deadline);
      if (res.result_int() >= 400 && res.result_int() < 500)
        throw etcd_refused("etcd " + path + " refused: HTTP " + std::to_string(res.result_int()) + ": " + res.body());
      if (res.result() != http::status::ok) throw detail::transport_error("HTTP " + std::to_string(res.result_int()) + ": " + res.body());
      preferred_.store(index, std::memory_order_relaxed);  // a hint; no partner
      return std::move(res.body());
    } catch (const etcd_refused&) {
      throw;
    } catch (const std::exception& e) {
      failures += (failures.empty() ? "" : "; ") + m.host + ":" + std::to_string(m.port) + " " + e.what();
    }
  }
  throw etcd_error("etcd " + path + " failed on every member: " + failures);
}

range_result etcd_client::get(const std::string& key) {
  return parse_range(json::parse(call("/v3/kv/range", json{{"key", base64(key)}}.dump())));
}

range_result etcd_client::get_prefix(const std::string& prefix) {
  return parse_range(json::parse(
      call("/v3/kv/range", json{{"key", base64(prefix)}, {"range_end", base64(prefix_end(prefix))}}.dump())));
}

std::int64_t etcd_client::put(const std::string& key, const std::string& value, std::int64_t lease) {
  json req{{"key", base64(key)}, {"value", base64(value)}};
  if (lease != 0) req["lease"] = std::to_string(lease);
  return int_field(json::parse(call("/v3/kv/put", req.dump())).value("header", json::object()), "revision");
}

txn_result etcd_client::txn(const std::vector<compare>& when, const std::vector<operation>& then,
                            const std::vector<operation>& otherwise) {
  json req{{"compare", json::array()}, {"success", json::array()}, {"failure", json::array()}};
  for (const compare& c : when) {
    const bool mod = c.what == compare::target::mod;
    req["compare"].push_back({{"key", base64(c.key)},
                              {"result", "EQUAL"},
                              {"target", mod ? "MOD" : "CREATE"},
                              {mod ? "mod_revision" : "create_revision", std::to_string(c.revision)}});
  }
  for (const operation& op : then) req["success"].push_back(to_json(op));
  for (const operation& op : otherwise) req["failure"].push_back(to_json(op));
  const json res = json::parse(call("/v3/kv/txn", req.dump()));
  return {res.value("succeeded", false), int_field(res.value("header", json::object()), "revision")};
}

std::int64_t etcd_client::lease_grant(std::int64_t ttl_seconds) {
  const json res = json::parse(call("/v3/lease/grant", json{{"TTL", std::to_string(ttl_seconds)}}.dump()));
  if (res.contains("error") && !res["error"].get<std::string>().empty())
    throw etcd_error("lease grant: " + res["error"].get<std::string>());
  return int_field(res, "ID");
}

std::int64_t etcd_client::lease_keepalive(std::int64_t id) {
  const json res = json::parse(call("/v3/lease/keepalive", json{{"ID", std::to_string(id)}}.dump()));
  return int_field(res.value("result", json::object()), "TTL");
}

void etcd_client::lease_revoke(std::int64_t id) {
  call("/v3/lease/revoke", json{{"ID", std::to_string(id)}}.dump());
}

std::int64_t etcd_client::watch(const std::string& key, bool prefix, std::int64_t start_revision,
                                const std::function<void(const std::vector<watch_event>&, std::int64_t)>& on_events,
                                const std::function<bool()>& keep_going) {
  const std::size_t index = preferred_.load(std::memory_order_relaxed);  // a hint; no partner
  const etcd_endpoint& m = members_[index % members_.size()];
  asio::io_context ioc;
  asio::ip::tcp::socket socket(ioc);
  const std::string where = m.host + ":" + std::to_string(m.port);
  try {
    detail::connect(ioc, socket, asio::ip::tcp::endpoint(asio::ip::make_address(m.host), m.port),
                    clock::now() + timeout_);
  } catch (const std::exception& e) {
    preferred_.store(index + 1, std::memory_order_relaxed);  // try the next member next time; a hint
    throw etcd_error("watch on " + where + ": " + e.what());
  }
  http::request<http::string_body> req{http::verb::post, "/v3/watch", 11};
  req.set(http::field::host, m.host);
  req.set(http::field::content_type, "application/json");
  json create{{"key", base64(key)}, {"start_revision", std::to_string(start_revision)}};
  if (prefix) create["range_end"] = base64(prefix_end(key));
  req.body() = json{{"create_request", create}}.dump();
  req.prepare_payload();
  bool done = false;
  boost::system::error_code ec;
  http::async_write(socket, req, [&](boost::system::error_code e, std::size_t) { ec = e, done = true; });
  detail::run_until(ioc, socket, done, clock::now() + timeout_, "watch write");
  if (ec) throw etcd_error("watch on " + where + ": " + ec.message());

  // The gateway answers with a chunked body of JSON messages, one per line.
  std::int64_t revision = start_revision > 0 ? start_revision - 1 : 0;
  std::string pending;
  std::string failure;
  http::response_parser<http::empty_body> parser;
  parser.body_limit(boost::none);
  auto on_chunk = [&](std::uint64_t, boost::beast::string_view body, boost::system::error_code&) {
    pending.append(body.data(), body.size());
    for (std::size_t nl; failure.empty() && (nl = pending.find('\n')) != std::string::npos;) {
      const std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      const json msg = json::parse(line, nullptr, false);
      if (msg.is_discarded()) continue;
      const json result = msg.value("result", json::object());
      if (msg.contains("error") || result.value("canceled", false)) {
        failure = "watch canceled: " + msg.dump();
        break;
      }
      revision = std::max(revision, int_field(result.value("header", json::object()), "revision"));
      std::vector<watch_event> events;
      for (const json& e : result.value("events", json::array()))
        events.push_back({e.value("type", "") == "DELETE", parse_kv(e.value("kv", json::object()))});
      if (!events.empty()) on_events(events, revision);
    }
    return body.size();
  };
  parser.on_chunk_body(on_chunk);
  boost::beast::flat_buffer buffer;
  done = false;
  http::async_read_header(socket, buffer, parser, [&](boost::system::error_code e, std::size_t) { ec = e, done = true; });
  detail::run_until(ioc, socket, done, clock::now() + timeout_, "watch header");
  if (ec || parser.get().result() != http::status::ok)
    throw etcd_error("watch on " + where + ": " + (ec ? ec.message() : "HTTP " + std::to_string(parser.get().result_int())));
  for (;;) {
    done = false;
    http::async_read_some(socket, buffer, parser, [&](boost::system::error_code e, std::size_t) { ec = e, done = true; });
    ioc.restart();
    while (!done) {
      ioc.run_for(std::chrono::milliseconds(50));
      if (ioc.stopped()) ioc.restart();
      if (!done && !keep_going()) {
        boost::system::error_code ignored;
        socket.close(ignored);
        ioc.restart();
        ioc.run();
        return revision;
      }
    }
    if (!failure.empty()) throw etcd_error(failure);
    if (ec) throw etcd_error("watch on " + where + " broke: " + ec.message());
    if (parser.is_done()) throw etcd_error("watch on " + where + " ended");
  }
}

}  // namespace hotswap::fleet
