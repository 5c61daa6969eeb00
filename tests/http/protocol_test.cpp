// HTTP/1.1 rules Boost.Beast leaves to its user (issue 25): Host, Transfer-
// Encoding alone and with Content-Length, the header limit on both sides, and
// the admin listener's 401 from the header alone with a lingering close.
#include <nlohmann/json.hpp>

#include "fixture.hpp"

namespace hotswap::http::testing {
namespace {

using namespace std::chrono_literals;

TEST_F(http_test, host_and_transfer_encoding_violations_are_refused_and_close_the_connection) {
  start();
  const std::string post = "POST /json HTTP/1.1\r\nHost: x\r\n";
  const std::string chunked_body = "11\r\n{\"numbers\":[1,2]}\r\n0\r\n\r\n";
  const std::vector<refusal_case> cases = {
      {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", 400},
      {"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"an empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400},
      {"Content-Length, then Transfer-Encoding: chunked",
       post + "Content-Length: 17\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_body, 400},
      {"Transfer-Encoding: chunked, then Content-Length",
       post + "Transfer-Encoding: chunked\r\nContent-Length: 17\r\n\r\n" + chunked_body, 400},
      {"Content-Length with a coding we lack", post + "Content-Length: 17\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
      {"two Transfer-Encoding fields",
       post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_body, 400},
      {"Transfer-Encoding in HTTP/1.0", "POST /json HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_body, 400},
      {"gzip, chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked_body, 501},
      {"a coding we lack", post + "Transfer-Encoding: br\r\n\r\n", 501},
  };
  for (const auto& c : cases) expect_refused(c);
  // What is allowed still is: HTTP/1.0 without Host, and a chunked body.
  EXPECT_EQ(request("GET / HTTP/1.0\r\n\r\n").status, 200);
  const probe_reply chunked = request(post + "Transfer-Encoding: Chunked\r\n\r\n" + chunked_body);
  EXPECT_EQ(chunked.status, 200) << chunked.body;
  EXPECT_EQ(nlohmann::json::parse(chunked.body)["sum"], 3);
  EXPECT_NE(server_->metrics_text().find("hotswap_http_refused_total{status=\"501\"} 2"), std::string::npos);
}

// A GET whose header block (request line, fields, blank line) is `size` bytes.
std::string request_with_header_of(std::size_t size) {
  const std::string head = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ", end = "\r\n\r\n";
  return head + std::string(size - head.size() - end.size(), 'a') + end;
}

TEST_F(http_test, the_header_limit_is_exact_however_the_header_arrives) {
  std::size_t limit = 0;
  start([&](server_config& c) { limit = c.max_header_bytes; });
  for (const std::size_t piece : {std::size_t{0}, std::size_t{1000}}) {  // 0: the whole block in one write
    for (const auto& [size, status] : {std::pair{limit, 200}, std::pair{limit + 1, 431}}) {
      SCOPED_TRACE("header of " + std::to_string(size) + " bytes in " + (piece ? "pieces" : "one write"));
      const std::string bytes = request_with_header_of(size);
      ASSERT_EQ(bytes.size(), size);
      probe_client client(server_->port());
      ASSERT_EQ(client.connect(), probe_error::none);
      for (std::size_t at = 0; at < bytes.size(); at += piece ? piece : bytes.size())
        ASSERT_EQ(client.send(std::string_view(bytes).substr(at, piece ? piece : bytes.size())), probe_error::none);
      probe_reply reply;
      ASSERT_EQ(client.receive(reply), probe_error::none);
      EXPECT_EQ(reply.status, status);
    }
  }
}

TEST_F(http_test, admin_answers_401_from_the_header_alone_and_lingers_for_the_body) {
  start([](server_config& c) { c.read_timeout = 1s; });
  probe_client client(server_->admin_port(), 3s);
  ASSERT_EQ(client.connect(), probe_error::none);
  const std::size_t length = 60'000;  // under the body limit (64 KiB)
  ASSERT_EQ(client.send("POST /admin/swap HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer not-the-token\r\n"
                        "Content-Length: " + std::to_string(length) + "\r\n\r\n"),
            probe_error::none);
  probe_reply reply;
  ASSERT_EQ(client.receive(reply), probe_error::none) << "no answer before the body";
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(reply.header("connection"), "close");
  // The client sends the body it announced anyway: the server reads and
  // discards it rather than resetting the connection under the client's writes.
  const std::string piece(4000, 'x');
  for (std::size_t sent = 0; sent < length; sent += piece.size())
    ASSERT_EQ(client.send(piece), probe_error::none) << "after " << sent << " bytes of the body";
  EXPECT_TRUE(client.closed_by_peer());  // at the latest when the linger (read_timeout) ends
  EXPECT_NE(server_->metrics_text().find("hotswap_admin_unauthorized_total 1"), std::string::npos);
  EXPECT_EQ(request(probe_client::get("/")).version(), 1u);  // nothing was swapped
}

}  // namespace
}  // namespace hotswap::http::testing
