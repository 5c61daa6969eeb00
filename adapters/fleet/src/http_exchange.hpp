// One HTTP/1.1 exchange with a deadline over any Asio stream (TCP to etcd,
// the Unix socket to hotswap-httpd's admin listener). Beast's sync calls
// cannot time out, so each exchange runs its async steps on a private
// io_context with run_for and closes the stream when the deadline passes:
// a member that stops answering costs one deadline, never a hung thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <stdexcept>
#include <string>

namespace hotswap::fleet::detail {

namespace http = boost::beast::http;
using clock = std::chrono::steady_clock;

/// Thrown when the peer cannot be reached, does not answer in time, or
/// breaks the connection; the message names the step.
struct transport_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Runs `ioc` until `done` or `deadline`; on the deadline closes `stream`
/// (which completes the pending operation with operation_aborted) and throws.
template <class Stream>
void run_until(boost::asio::io_context& ioc, Stream& stream, const bool& done, clock::time_point deadline,
               const char* step) {
  ioc.restart();
  while (!done) {
    if (clock::now() >= deadline) {
      boost::system::error_code ignored;
      stream.close(ignored);
      ioc.restart();
      ioc.run();  // lets the aborted handler run, so nothing refers to the stack after return
      throw transport_error(std::string(step) + ": timed out");
    }
    ioc.run_for(std::chrono::milliseconds(50));
    if (ioc.stopped()) ioc.restart();
  }
}

/// Writes `req` and reads the whole response on a connected `stream`.
template <class Stream>
http::response<http::string_body> exchange(boost::asio::io_context& ioc, Stream& stream,
                                           http::request<http::string_body>& req, clock::time_point deadline) {
  bool done = false;
  boost::system::error_code ec;
  req.prepare_payload();
  http::async_write(stream, req, [&](boost::system::error_code e, std::size_t) { ec = e, done = true; });
  run_until(ioc, stream, done, deadline, "write");
  if (ec) throw transport_error("write: " + ec.message());
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  done = false;
  http::async_read(stream, buffer, parser, [&](boost::system::error_code e, std::size_t) { ec = e, done = true; });
  run_until(ioc, stream, done, deadline, "read");
  if (ec) throw transport_error("read: " + ec.message());
  return parser.release();
}

/// Connects `stream` to `endpoint` before `deadline`.
template <class Stream, class Endpoint>
void connect(boost::asio::io_context& ioc, Stream& stream, const Endpoint& endpoint, clock::time_point deadline) {
  bool done = false;
  boost::system::error_code ec;
  stream.async_connect(endpoint, [&](boost::system::error_code e) { ec = e, done = true; });
  run_until(ioc, stream, done, deadline, "connect");
  if (ec) throw transport_error("connect: " + ec.message());
}

}  // namespace hotswap::fleet::detail
