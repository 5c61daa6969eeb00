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
// The header is judged alone before any body is read: its size against
// max_header_bytes (request line, fields and the blank line, counted exactly
// however the bytes arrived), the rules of request_rules.hpp, then the
// handler's own on_header (the admin listener's token check). An answer that
// ends the connection is followed by a lingering close, as nginx does: stop
// sending, then read and discard what the client still sends until it closes
// or read_timeout passes. Closing at once would answer those unread bytes with
// a reset, which can destroy the answer before the client reads it.
//
// Expect: 100-continue (curl sends it for bodies over 1 KiB, then waits a
// second for an answer before sending anyway): once the header is read and
// accepted, an HTTP/1.1 request that expects it gets "100 Continue" before any
// of its body is read. A declared length over the body limit is refused with
// 413 from the header alone, before any 100, and the body is never read.
//
// Upgrade (hand_over): a connection waiting for its next request (idle, or
// with only part of a request's header read) is passed on to the new process
// at once: its socket and the bytes read but not yet parsed. A connection
// with a request in hand finishes it here first, and any pipelined request
// whose header is already in the buffer too; it is passed on at its next
// idle moment. A part of a header is handed to Beast's parser only while no
// hand-over is asked, and Beast takes complete lines out of the buffer as
// they arrive: a connection whose parser has taken some is not cut off (those
// bytes would be lost) but finishes that request here and moves after it; at
// the drain deadline it is closed and counted. Otherwise the unparsed bytes
// are all the new process needs to continue.
//
// Threads: everything here runs on the connection's worker io_context (one
// thread), except send(), which any thread may call once per request.
#pragma once

#include <fcntl.h>

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

#include "request_rules.hpp"

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

/// The limits as a saved settings file changes them: each connection takes a
/// copy when it starts reading a request, so a request keeps the limits it
/// began with. Relaxed: each bound stands alone, and a request that reads some
/// bounds from before an update and some from after is judged by valid bounds.
class live_limits {
 public:
  explicit live_limits(const connection_limits& l) { store(l); }
  void store(const connection_limits& l) noexcept {
    max_header_bytes_.store(l.max_header_bytes, std::memory_order_relaxed);
    max_body_bytes_.store(l.max_body_bytes, std::memory_order_relaxed);
    idle_ms_.store(l.idle_timeout.count(), std::memory_order_relaxed);
    read_ms_.store(l.read_timeout.count(), std::memory_order_relaxed);
    write_ms_.store(l.write_timeout.count(), std::memory_order_relaxed);
  }
  connection_limits load() const noexcept {
    using ms = std::chrono::milliseconds;
    return {max_header_bytes_.load(std::memory_order_relaxed), max_body_bytes_.load(std::memory_order_relaxed),
            ms(idle_ms_.load(std::memory_order_relaxed)), ms(read_ms_.load(std::memory_order_relaxed)),
            ms(write_ms_.load(std::memory_order_relaxed))};
  }

 private:
  std::atomic<std::size_t> max_header_bytes_, max_body_bytes_;
  std::atomic<std::chrono::milliseconds::rep> idle_ms_, read_ms_, write_ms_;
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
  /// Upgrade: pass the connection on at its next idle moment (see the top of this file).
  virtual void hand_over() = 0;
};

/// The live connections of one listener, for graceful shutdown. Shared with
/// each connection: one whose read is still pending when its io_context is
/// destroyed is destroyed with it, after the listener that made it is gone.
class connection_set {
 public:
  /// False once hand_over_all() ran: the connection is to be passed on at once.
  bool add(const std::shared_ptr<closable>& c) {
    std::lock_guard lock(mutex_);
    live_.emplace(c.get(), c);
    return !handing_over_;
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
  /// Every connection, and every one added from now on, is handed over.
  void hand_over_all() {
    std::lock_guard lock(mutex_);
    handing_over_ = true;
    for (auto& [raw, weak] : live_)
      if (auto c = weak.lock()) c->hand_over();
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return live_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::map<closable*, std::weak_ptr<closable>> live_;
  bool handing_over_ = false;
};

/// Handler: `typename Handler::state` is per-connection data;
/// `handler.on_header(state&, const request&)` may answer from the header
/// alone (an optional response; the connection then closes); and
/// `handler.on_request(std::shared_ptr<connection>, request&&)` must lead to
/// exactly one send() of the answer, from any thread, now or later. A handler
/// that can take part in an upgrade has `pass_on(state&, int fd, std::string
/// unparsed)`, which takes the socket's descriptor (a duplicate it must close).
template <class Stream, class Handler>
class connection final : public closable, public std::enable_shared_from_this<connection<Stream, Handler>> {
 public:
  using state_type = typename Handler::state;

  connection(Stream stream, Handler& handler, const live_limits& limits, std::shared_ptr<connection_set> set)
      : stream_(std::move(stream)), handler_(handler), live_limits_(limits), set_(std::move(set)) {}
  ~connection() override { set_->remove(this); }

  /// `unparsed`: bytes already read from the socket (a connection taken over from another process).
  void start(std::string_view unparsed = {}) {
    if (!unparsed.empty()) buffer_.commit(net::buffer_copy(buffer_.prepare(unparsed.size()), net::buffer(unparsed)));
    handing_over_ = !set_->add(this->shared_from_this());
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

  void hand_over() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->closing_ || self->handing_over_) return;
      self->handing_over_ = true;
      // A pending read for the next request ends with operation_aborted and passes the connection on,
      // unless Beast's parser has already taken complete lines of an unfinished header out of the
      // buffer (it does, line by line): those bytes could not be passed on, so that request is read
      // and answered here, like a busy connection's, and the connection moves after it.
      if (self->awaiting_request_ && !self->parser_->got_some()) self->stream_.socket().cancel();
    });
  }

  state_type& state() noexcept { return state_; }
  Stream& stream() noexcept { return stream_; }

 private:
  void read_next() {
    if (closing_) return close();
    if (handing_over_ && buffer_.size() == 0) return pass_on();
    awaiting_request_ = true;
    parser_.emplace();
    limits_ = live_limits_.load();
    parser_->header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
    parser_->body_limit(limits_.max_body_bytes);
    if (buffer_.size() > 0) return read_header();  // a pipelined request is already here
    stream_.expires_after(limits_.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
      if (ec) return self->fail(ec);  // a hand-over's cancel too
      self->buffer_.commit(n);
      self->read_header();
    });
  }

  void read_header() {
    if (handing_over_ && !header_in_buffer()) return pass_on();
    stream_.expires_after(limits_.read_timeout);
    // The bytes the parser consumed: the whole header, however many reads brought it.
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](beast::error_code ec, std::size_t header_bytes) {
                               if (ec) return self->fail(ec);  // a length over the limit: 413 here
                               self->judge_header(header_bytes);
                             });
  }

  void judge_header(std::size_t header_bytes) {
    awaiting_request_ = false;
    const request& h = parser_->get();
    version_ = h.version();
    keep_alive_ = h.keep_alive();
    // Beast's own limit counts the request line and the fields separately.
    if (header_bytes > limits_.max_header_bytes)
      return refuse(bhttp::status::request_header_fields_too_large, "header fields too large");
    if (const auto r = check_request_header(h)) return refuse(r->status, r->reason);
    if (auto answer = handler_.on_header(state_, h)) {
      busy_ = true;
      return write(std::move(*answer), true);
    }
    if (parser_->is_done()) return dispatch();
    if (expects_continue()) return send_continue();
    read_body();
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
    handler_.on_request(this->shared_from_this(), parser_->release());
  }

  // A read that ended without a request: the peer left, timed out, or broke a rule.
  void fail(beast::error_code ec) {
    if (ec == net::error::operation_aborted && handing_over_ && awaiting_request_) return pass_on();
    bhttp::status s;
    if (ec == bhttp::error::header_limit) s = bhttp::status::request_header_fields_too_large;
    else if (ec == bhttp::error::body_limit) s = bhttp::status::payload_too_large;
    // Any other parse error is the client's: bad_transfer_encoding too (Content-Length
    // with chunked, or chunked twice: request smuggling, RFC 9112 6.3).
    else if (ec.category() == beast::error_code(bhttp::error::bad_target).category() && ec != bhttp::error::end_of_stream &&
             ec != bhttp::error::partial_message && ec != bhttp::error::need_more)
      s = bhttp::status::bad_request;
    else return close();  // eof, reset, timeout, shutdown: nobody to answer
    refuse(s, ec.message());
  }

  // The host's own answer to a request it will not pass on; then close.
  void refuse(bhttp::status s, std::string_view why) {
    busy_ = true;
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
      if (ec || self->closing_) return self->close();
      if (!keep) return self->linger();
      self->read_next();
    });
  }

  // After an answer that ends the connection: see the top of this file.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(net::socket_base::shutdown_send, ignored);
    stream_.expires_after(limits_.read_timeout);  // the whole linger, not each read
    buffer_.clear();
    discard();
  }

  void discard() {
    stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec || self->closing_) return self->close();  // the client closed, or time is up, or we stop
      self->discard();
    });
  }

  // Whether the buffer holds a whole header. Called with a fresh parser: every byte is still in the buffer.
  bool header_in_buffer() const {
    const auto data = buffer_.data();
    const std::string_view bytes(static_cast<const char*>(data.data()), data.size());
    return bytes.find("\r\n\r\n") != std::string_view::npos;
  }

  // Gives the socket and the unparsed bytes to the handler's pass_on (the new
  // process). Our descriptor closes without a shutdown: the socket lives on there.
  void pass_on() {
    awaiting_request_ = false;
    closing_ = true;
    if constexpr (requires(Handler& h, state_type& s) { h.pass_on(s, 0, std::string()); }) {
      const auto data = buffer_.data();
      std::string unparsed(static_cast<const char*>(data.data()), data.size());
      const int fd = ::fcntl(stream_.socket().native_handle(), F_DUPFD_CLOEXEC, 0);
      beast::error_code ignored;
      stream_.socket().close(ignored);
      if (fd >= 0) handler_.pass_on(state_, fd, std::move(unparsed));
    } else {
      close();
    }
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(net::socket_base::shutdown_send, ignored);
    stream_.close();
  }

  Stream stream_;
  Handler& handler_;
  const live_limits& live_limits_;
  connection_limits limits_{};  // the request in hand's: taken from live_limits_ as its reading starts
  std::shared_ptr<connection_set> set_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::shared_ptr<response> response_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool busy_ = false;     // between a request read and its answer written
  bool closing_ = false;  // graceful shutdown asked, or passed on
  bool handing_over_ = false;     // pass the connection on at its next idle moment
  bool awaiting_request_ = false;  // no header parsed yet: a read for the next request may be pending
  state_type state_;
};

}  // namespace hotswap::http::detail
