// A client for etcd's v3 API through its JSON gateway (POST /v3/kv/range,
// /v3/kv/put, /v3/kv/txn, /v3/kv/deleterange, /v3/lease/*, /v3/watch), on
// Boost.Beast. Keys and values travel base64-encoded and int64 fields as
// strings; this class hides both. Every call has a deadline; a call that
// fails on one member (refused, timed out, a 5xx while a leader is elected)
// is tried on the next member of the list, so one dead member costs one
// deadline at most. A txn that timed out may still have been applied: callers
// guard writes with a compare on mod_revision and re-read on failure.
//
// Why the gateway and not gRPC: Debian packages grpc++, but the gateway needs
// nothing beyond Beast, which hotswap-httpd already links, and etcd 3.4
// serves it on the client port by default. It costs JSON+base64 and a
// connection per call; at the write rates of a rollout (a few per second
// per host) that is noise (adapters/fleet/README.md has the numbers).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace hotswap::fleet {

/// No member of the cluster answered the call; the message names each failure.
struct etcd_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// etcd answered and refused the request (HTTP 4xx: too many operations in a
/// txn, a malformed request): retrying, on this member or another, cannot help.
struct etcd_refused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct etcd_endpoint {
  std::string host;  ///< a numeric address (127.0.0.1)
  std::uint16_t port = 0;
};
/// "127.0.0.1:2379,127.0.0.1:2380" (an optional http:// prefix per entry);
/// throws std::invalid_argument naming the bad entry.
std::vector<etcd_endpoint> parse_endpoints(const std::string& list);

struct key_value {
  std::string key, value;
  std::int64_t create_revision = 0, mod_revision = 0, version = 0, lease = 0;
};

struct range_result {
  std::int64_t revision = 0;  ///< the store's revision when read
  std::vector<key_value> kvs;
  /// The entry for `key`, or nullptr.
  const key_value* find(const std::string& key) const;
};

/// A txn condition: the key's mod_revision (or create_revision) equals `revision`;
/// create_revision == 0 means "the key does not exist".
struct compare {
  enum class target { mod, create };
  std::string key;
  target what = target::mod;
  std::int64_t revision = 0;
};

/// A txn operation: put (with an optional lease) or delete (a key or a prefix).
struct operation {
  enum class kind { put, remove, remove_prefix };
  kind what = kind::put;
  std::string key, value;
  std::int64_t lease = 0;
  static operation put(std::string k, std::string v, std::int64_t lease = 0) { return {kind::put, std::move(k), std::move(v), lease}; }
  static operation remove(std::string k) { return {kind::remove, std::move(k), {}, 0}; }
  static operation remove_prefix(std::string p) { return {kind::remove_prefix, std::move(p), {}, 0}; }
};

struct txn_result {
  bool succeeded = false;
  std::int64_t revision = 0;
};

struct watch_event {
  bool deleted = false;
  key_value kv;  ///< for a delete: the key and its mod_revision
};

class etcd_client {
 public:
  explicit etcd_client(std::vector<etcd_endpoint> members, std::chrono::milliseconds timeout = std::chrono::seconds(2));

  range_result get(const std::string& key);
  range_result get_prefix(const std::string& prefix);
  std::int64_t put(const std::string& key, const std::string& value, std::int64_t lease = 0);
  txn_result txn(const std::vector<compare>& when, const std::vector<operation>& then,
                 const std::vector<operation>& otherwise = {});

  /// A lease of `ttl_seconds`; returns its ID.
  std::int64_t lease_grant(std::int64_t ttl_seconds);
  /// Renews the lease; returns its remaining TTL, 0 when it has expired.
  std::int64_t lease_keepalive(std::int64_t id);
  void lease_revoke(std::int64_t id);

  /// Streams changes of `key` (with `prefix`: of every key under it) from `start_revision` to `on_events`
  /// until `keep_going` returns false (checked every 50 ms), the stream
  /// breaks, or etcd cancels it (compaction). Throws etcd_error when no
  /// member accepts the stream or it breaks; returns normally only when
  /// `keep_going` said stop. Returns the last revision seen.
  std::int64_t watch(const std::string& key, bool prefix, std::int64_t start_revision,
                     const std::function<void(const std::vector<watch_event>&, std::int64_t revision)>& on_events,
                     const std::function<bool()>& keep_going);

  const std::vector<etcd_endpoint>& members() const noexcept { return members_; }

 private:
  std::string call(const std::string& path, const std::string& body);  // tries each member in turn

  std::vector<etcd_endpoint> members_;
  std::chrono::milliseconds timeout_;
  std::atomic<std::size_t> preferred_{0};  // the member that answered last; a hint, no ordering needed
};

/// The first key after every key starting with `prefix` (etcd's range_end for a prefix).
std::string prefix_end(std::string prefix);

}  // namespace hotswap::fleet
