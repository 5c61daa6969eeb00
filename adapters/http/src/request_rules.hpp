// The rules of RFC 9112 that Boost.Beast's parser leaves to its user, checked
// on a request's header before any of its body is read, with nginx's answers:
//
//   no Host in an HTTP/1.1 request, two Host fields, an empty Host   400 (3.2)
//   Transfer-Encoding in an HTTP/1.0 request                         400 (6.1)
//   Transfer-Encoding together with Content-Length                   400 (6.3: request smuggling)
//   two Transfer-Encoding fields                                     400
//   a transfer coding other than exactly "chunked"                   501 (6.1; "gzip, chunked" too)
//   a method Beast does not know                                     501
//
// Beast itself refuses Content-Length with Transfer-Encoding: chunked when
// they come in one order (bad_transfer_encoding, bad_content_length); the
// connection answers both errors 400 as well, so the order does not matter.
#pragma once

#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <string_view>

namespace hotswap::http::detail {

struct header_refusal {
  boost::beast::http::status status;
  std::string_view reason;
};

/// Why this request header must not be served, if it must not.
template <class Header>
std::optional<header_refusal> check_request_header(const Header& h) {
  namespace bhttp = boost::beast::http;
  constexpr auto bad = bhttp::status::bad_request, unimplemented = bhttp::status::not_implemented;
  const auto hosts = h.count(bhttp::field::host);
  if (hosts > 1) return header_refusal{bad, "two Host header fields"};
  if (hosts == 0 && h.version() >= 11) return header_refusal{bad, "an HTTP/1.1 request needs a Host header field"};
  if (hosts == 1 && h[bhttp::field::host].empty()) return header_refusal{bad, "an empty Host header field"};
  if (h.method() == bhttp::verb::unknown) return header_refusal{unimplemented, "method not implemented"};
  const auto codings = h.count(bhttp::field::transfer_encoding);
  if (codings == 0) return std::nullopt;
  if (h.version() < 11) return header_refusal{bad, "Transfer-Encoding in an HTTP/1.0 request"};
  if (h.count(bhttp::field::content_length) != 0)
    return header_refusal{bad, "both Content-Length and Transfer-Encoding"};
  if (codings > 1) return header_refusal{bad, "two Transfer-Encoding header fields"};
  std::string_view coding = h[bhttp::field::transfer_encoding];
  while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t')) coding.remove_prefix(1);
  while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t')) coding.remove_suffix(1);
  if (!boost::beast::iequals(coding, "chunked")) return header_refusal{unimplemented, "transfer coding not implemented"};
  return std::nullopt;
}

}  // namespace hotswap::http::detail
