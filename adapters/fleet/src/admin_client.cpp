#include <boost/asio/local/stream_protocol.hpp>
#include <hotswap/fleet/admin_client.hpp>
#include <stdexcept>

#include "http_exchange.hpp"

namespace hotswap::fleet {

namespace asio = boost::asio;
namespace http = detail::http;

admin_client::admin_client(std::filesystem::path socket, std::chrono::milliseconds timeout)
    : socket_(std::move(socket)), timeout_(timeout) {}

admin_reply admin_client::get(const std::string& target) { return request(false, target, {}); }
admin_reply admin_client::post(const std::string& target, const std::string& body) { return request(true, target, body); }

admin_reply admin_client::request(bool post, const std::string& target, const std::string& body) {
  try {
    asio::io_context ioc;
    asio::local::stream_protocol::socket s(ioc);
    const auto deadline = detail::clock::now() + timeout_;
    detail::connect(ioc, s, asio::local::stream_protocol::endpoint(socket_.string()), deadline);
    http::request<http::string_body> req{post ? http::verb::post : http::verb::get, target, 11};
    req.set(http::field::host, "localhost");
    if (post) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    auto res = detail::exchange(ioc, s, req, deadline);
    return {static_cast<int>(res.result_int()), std::move(res.body())};
  } catch (const detail::transport_error& e) {
    throw std::runtime_error("admin socket " + socket_.string() + ": " + e.what());
  }
}

}  // namespace hotswap::fleet
