// One HTTP/1.1 connection, for the application and the admin listeners alike:
// read a request under the limits, hand it to a handler, write its answer,
// repeat. Requests are answered one at a time in arrival order, so pipelined
// requests wait in the read buffer and their responses cannot be reordered.
//
// Timeouts (slowloris): a keep-alive connection waits idle_timeout for the
// first byte of its next request; from then on the whole header must arrive
// within read_timeout, and the body within another read_timeout. A request
// that breaks a rule gets its 4xx/5xx (400, 413, 431, 501) with Connection:
// close and only its own connection is closed.
//
// Expect: 100-continue (curl sends it for bodies over 1 KiB, then waits a
// second for an answer before sending anyway): once the header is read and
// accepted, an HTTP/1.1 request that expects it gets "100 Continue" before any
// of its body is read. A declared length over the body limit is refused with
// 413 from the header alone, before any 100, and the body is never read.
//
// Threads: everything here runs on the connection's worker io_context (one
// thread), except send(), which any thread may call once per request.
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

namespace hotswap::http::detail {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;

using request = bhttp::request<bhttp::string_body>;
using response = bhttp::response<bhttp::string_body>;

/// The header on every response naming the module version that produced it;
/// "0" on answers the host gave without a module (400, 431, 503...).
inline constexpr std::string_view version_header = "X-Hotswap-Version";
inline constexpr std::string_view build_header = "X-Hotswap-Build";

struct connection_limits {
  std::size_t max_header_bytes;
  std::size_t max_body_bytes;
  std::chrono::milliseconds idle_timeout, read_timeout, write_timeout;
};

/// A plain answer from the host itself.
inline response host_response(bhttp::status s, std::string_view text, unsigned version = 11) {
  response res{s, version};
  res.set(bhttp::field::content_type, "text/plain");
  res.set(version_header, "0");
  res.body() = std::string(text) + "\n";
  return res;
}

/// What graceful shutdown needs of a connection.
class closable {
 public:
  virtual ~closable() = default;
  /// Idle: close now. Busy: answer the request in hand with Connection: close.
  virtual void shut_down() = 0;
};

/// The live connections of one listener, for graceful shutdown. Shared with
/// each connection: one whose read is still pending when its io_context is
/// destroyed is destroyed with it, after the listener that made it is gone.
class connection_set {
 public:
  void add(const std::shared_ptr<closable>& c) {
    std::lock_guard lock(mutex_);
    live_.emplace(c.get(), c);
  }
  void remove(closable* c) {
    std::lock_guard lock(mutex_);
    live_.erase(c);
  }
  void shut_down_all() {
    std::lock_guard lock(mutex_);
    for (auto& [raw, weak] : live_)
      if (auto c = weak.lock()) c->shut_down();
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return live_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::map<closable*, std::weak_ptr<closable>> live_;
};

/// Handler: `typename Handler::state` is per-connection data, and
/// `handler.on_request(std::shared_ptr<connection>, request&&)` must lead to
/// exactly one send() of the answer, from any thread, now or later.
template <class Stream, class Handler>
class connection final : public closable, public std::enable_shared_from_this<connection<Stream, Handler>> {
 public:
  using state_type = typename Handler::state;

  connection(Stream stream, Handler& handler, const connection_limits& limits, std::shared_ptr<connection_set> set)
      : stream_(std::move(stream)), handler_(handler), limits_(limits), set_(std::move(set)) {}
  ~connection() override { set_->remove(this); }

  void start() {
    set_->add(this->shared_from_this());
    read_next();
  }

  /// The answer to the request in hand. Any thread.
  void send(response res) {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this(), res = std::move(res)]() mutable {
      self->write(std::move(res));
    });
  }

  void shut_down() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      self->closing_ = true;
      if (!self->busy_) self->close();
    });
  }

  state_type& state() noexcept { return state_; }
  Stream& stream() noexcept { return stream_; }

 private:
  void read_next() {
    if (closing_) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
    parser_->body_limit(limits_.max_body_bytes);
    if (buffer_.size() > 0) return read_header();  // a pipelined request is already here
    stream_.expires_after(limits_.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
      if (ec) return self->fail(ec);
      self->buffer_.commit(n);
      self->read_header();
    });
  }

  void read_header() {
    stream_.expires_after(limits_.read_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                               if (ec) return self->fail(ec);  // a length over the limit: 413 here
                               if (self->parser_->is_done()) return self->dispatch();
                               if (self->expects_continue()) return self->send_continue();
                               self->read_body();
                             });
  }

  // RFC 9110 10.1.1: only an HTTP/1.1 client waits for 100 Continue; an
  // HTTP/1.0 request's expectation is ignored. The client may already have
  // sent (part of) the body: then the 100 is merely redundant.
  bool expects_continue() const {
    const auto& h = parser_->get();
    return h.version() >= 11 && beast::iequals(h[bhttp::field::expect], "100-continue");
  }

  void send_continue() {
    static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
    stream_.expires_after(limits_.write_timeout);
    net::async_write(stream_, net::buffer(go_on), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      self->read_body();
    });
  }

  void read_body() {
    stream_.expires_after(limits_.read_timeout);
    bhttp::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->fail(ec);
      self->dispatch();
    });
  }

  void dispatch() {
    stream_.expires_never();
    busy_ = true;
    request req = parser_->release();
    version_ = req.version();
    keep_alive_ = req.keep_alive();
    if (req.method() == bhttp::verb::unknown)
      return refuse(bhttp::status::not_implemented, "method not implemented");
    // Beast frames a body only by Content-Length or a final "chunked"; any
    // other transfer coding is one we do not implement (RFC 9112 6.1).
    if (req.count(bhttp::field::transfer_encoding) != 0 && !req.chunked())
      return refuse(bhttp::status::not_implemented, "transfer coding not implemented");
    handler_.on_request(this->shared_from_this(), std::move(req));
  }

  // A read that ended without a request: the peer left, timed out, or broke a rule.
  void fail(beast::error_code ec) {
    bhttp::status s;
    if (ec == bhttp::error::header_limit) s = bhttp::status::request_header_fields_too_large;
    else if (ec == bhttp::error::body_limit) s = bhttp::status::payload_too_large;
    else if (ec == bhttp::error::bad_transfer_encoding) s = bhttp::status::not_implemented;
    else if (ec.category() == beast::error_code(bhttp::error::bad_target).category() && ec != bhttp::error::end_of_stream &&
             ec != bhttp::error::partial_message && ec != bhttp::error::need_more)
      s = bhttp::status::bad_request;
    else return close();  // eof, reset, timeout, shutdown: nobody to answer
    busy_ = true;
    refuse(s, ec.message());
  }

  // The host's own answer to a request it will not pass on; then close.
  void refuse(bhttp::status s, std::string_view why) {
    handler_.on_refused(static_cast<unsigned>(s));
    write(host_response(s, why, version_), true);
  }

  void write(response res, bool must_close = false) {
    const bool keep = keep_alive_ && !must_close && !closing_;
    res.version(version_);
    res.keep_alive(keep);
    res.prepare_payload();
    response_ = std::make_shared<response>(std::move(res));
    stream_.expires_after(limits_.write_timeout);
    bhttp::async_write(stream_, *response_, [self = this->shared_from_this(), keep](beast::error_code ec, std::size_t) {
      self->response_.reset();
      self->busy_ = false;
      if (ec || !keep) return self->close();
      self->read_next();
    });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(net::socket_base::shutdown_send, ignored);
    stream_.close();
  }

  Stream stream_;
  Handler& handler_;
  const connection_limits& limits_;
  std::shared_ptr<connection_set> set_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::shared_ptr<response> response_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool busy_ = false;     // between a request read and its answer written
  bool closing_ = false;  // graceful shutdown asked
  state_type state_;
};

}  // namespace hotswap::http::detail
