// Shared by the db tests: a temporary directory, a container host over the
// example containers, an event log, and a few SQLite helpers.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <hotswap/db/connection.hpp>

namespace dbtest {

namespace fs = std::filesystem;
using namespace hotswap::db;

inline fs::path container(const std::string& name) { return fs::path(HOTSWAP_DB_CONTAINER_DIR) / (name + ".so"); }

/// A fresh directory, removed at the end.
struct temp_dir {
  fs::path path;
  temp_dir() {
    static std::atomic<int> serial{0};
    path = fs::temp_directory_path() /
           ("hotswap-db-test-" + std::to_string(::getpid()) + "-" + std::to_string(serial.fetch_add(1)));
    fs::create_directories(path);
    fs::permissions(path, fs::perms::owner_all);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// One container hook as a container logged it ("conn-startup 0x.. 2").
struct hook_event {
  std::string what;
  std::string db;
  int version = 0;
};

/// Collects the host's events; thread-safe.
struct event_log {
  std::mutex mutex;
  std::vector<hotswap::modules::module_event> events;
  std::atomic<std::uint64_t>* clock = nullptr;  // optional: stamps unloads with a sequence number
  std::vector<std::pair<std::uint64_t, std::uint64_t>> unloads;  // (slot version, stamp)

  hotswap::modules::module_log sink() {
    return [this](const hotswap::modules::module_event& e) {
      std::lock_guard lock(mutex);
      events.push_back(e);
      if (e.kind == hotswap::modules::module_event_kind::unloaded && clock != nullptr)
        unloads.emplace_back(e.from_version, clock->fetch_add(1));
    };
  }
  std::vector<hook_event> hooks(const std::string& db = {}) {
    std::lock_guard lock(mutex);
    std::vector<hook_event> out;
    for (const auto& e : events) {
      if (e.kind != hotswap::modules::module_event_kind::plugin_log) continue;
      std::istringstream in(e.message.substr(e.message.find(']') + 2));
      hook_event h;
      in >> h.what >> h.db >> h.version;
      if (db.empty() || h.db == db) out.push_back(h);
    }
    return out;
  }
  std::size_t count(hotswap::modules::module_event_kind k) {
    std::lock_guard lock(mutex);
    std::size_t n = 0;
    for (const auto& e : events) n += e.kind == k;
    return n;
  }
};

inline std::string pointer_text(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", p);
  return buf;
}

struct sqlite_db {
  sqlite3* db = nullptr;
  explicit sqlite_db(const fs::path& file) {
    if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK)
      throw std::runtime_error("open " + file.string());
    sqlite3_busy_timeout(db, 10000);
  }
  ~sqlite_db() { sqlite3_close(db); }
  operator sqlite3*() const { return db; }
};

/// Runs sql; returns SQLite's error message, or "" on success.
inline std::string exec(sqlite3* db, const std::string& sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
  std::string out = rc == SQLITE_OK ? "" : (message != nullptr ? message : sqlite3_errmsg(db));
  sqlite3_free(message);
  return out;
}

/// The first column of every row (as text), or throws with SQLite's message.
inline std::vector<std::string> column(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
    throw std::runtime_error(sql + ": " + sqlite3_errmsg(db));
  std::vector<std::string> out;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(st, 0);
    out.emplace_back(t != nullptr ? reinterpret_cast<const char*>(t) : "NULL");
  }
  const std::string why = sqlite3_errmsg(db);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) throw std::runtime_error(sql + ": " + why);
  return out;
}

inline std::string one(sqlite3* db, const std::string& sql) {
  auto rows = column(db, sql);
  return rows.empty() ? "" : rows.front();
}

inline host_options options_for(const fs::path& shadow, event_log& log) {
  host_options o;
  o.container_dir = HOTSWAP_DB_CONTAINER_DIR;
  o.shadow_dir = shadow;
  o.log = log.sink();
  return o;
}

}  // namespace dbtest
