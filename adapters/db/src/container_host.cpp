// container_host: the registry, the schema check before a swap, the watcher.
#include "hotswap/db/container_host.hpp"

#include <algorithm>
#include <cctype>

#include "hotswap/db/connection.hpp"
#include "sql_exec.hpp"

namespace hotswap::db {

namespace {

modules::registry_options registry_options_of(const host_options& o) {
  if (o.container_dir.empty()) throw std::invalid_argument("hotswap::db::container_host: container_dir is required");
  modules::registry_options r;
  r.loader.policy.allowed_dir = std::filesystem::absolute(o.container_dir);
  r.loader.policy.sha256_allow = o.sha256_allow;
  r.loader.policy.check_permissions = o.check_permissions;
  r.loader.shadow.mode = o.shadow_copies ? modules::shadow_mode::file : modules::shadow_mode::in_place;
  r.loader.shadow.dir = o.shadow_dir;
  r.loader.log = o.log;
  r.history = o.history;
  return r;
}

std::string quoted(const std::string& identifier) {
  std::string out = "\"";
  for (char c : identifier) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

container_host::container_host(host_options options)
    : options_(std::move(options)), registry_(domain_, registry_options_of(options_)) {}

container_host::~container_host() { watcher_.reset(); }

std::uint64_t container_host::load(const std::string& name, const std::filesystem::path& file,
                                   const std::string& principal) {
  const std::uint64_t v = registry_.add<container_api>(principal, name, file);
  {
    std::lock_guard lock(mutex_);
    files_[name] = file;
  }
  bump();
  return v;
}

swap_report container_host::swap(const std::string& name, const std::filesystem::path& file,
                                 const swap_options& options) {
  return publish(name, options, false, file, 0);
}

swap_report container_host::rollback(const std::string& name, std::uint64_t version, const swap_options& options) {
  return publish(name, options, true, {}, version);
}

swap_report container_host::publish(const std::string& name, const swap_options& options, bool rollback,
                                    const std::filesystem::path& file, std::uint64_t version) {
  const std::vector<schema_use> uses = uses_of(name);
  if (!uses.empty() && !options.reindex) {
    std::string why = name + ": refused: the serving version's deterministic functions are stored in the schema (";
    for (std::size_t i = 0; i < uses.size(); ++i) why += (i ? "; " : "") + uses[i].describe();
    why += "); a new version could make that data wrong. Swap with reindex to rebuild it on the new version";
    emit_refusal(options.principal, name, file.string(), why);
    throw db_error(db_errc::used_by_schema, why);
  }
  const modules::swap_result r = rollback ? registry_.rollback(options.principal, name, version)
                                 : registry_.swap(options.principal, name, file);
  if (r.record) {
    std::lock_guard lock(mutex_);
    files_[name] = r.record->identity().file;
  }
  {
    // Before bump(): connections move only after it, and find this count.
    std::lock_guard lock(mutex_);
    tallies_[{name, r.version}].connections = attached_[name];
    std::erase_if(tallies_, [&](const auto& t) { return t.first.first == name && t.first.second + options_.history < r.version; });
  }
  bump();
  swap_report out{r.version, r.replaced, {}, {}};
  if (!uses.empty()) {
    reindex(name, uses);
    out.reindexed = uses;
  }
  if (options.wait_for_connections.count() > 0) {
    std::unique_lock lock(mutex_);
    moved_.wait_for(lock, options.wait_for_connections, [&] { return tallies_[{name, r.version}].pending() == 0; });
  }
  out.connections = moves(name, r.version);
  return out;
}

std::vector<schema_use> container_host::uses_of(const std::string& name) {
  std::vector<std::string> deterministic;
  {
    modules::module_pin<container_api> serving = container(name).pin();
    for (std::uint32_t i = 0; i < serving->function_count; ++i) {
      const hotswap_db_function& f = serving->functions[i];
      if ((f.flags & HOTSWAP_DB_DETERMINISTIC) != 0 && f.name != nullptr) deterministic.emplace_back(f.name);
    }
  }
  std::vector<schema_use> out;
  if (deterministic.empty()) return out;
  std::vector<std::string> paths;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [path, n] : databases_) paths.push_back(path);
  }
  for (const std::string& path : paths)
    for (schema_use& u : find_schema_uses(path, deterministic)) out.push_back(std::move(u));
  return out;
}

std::vector<schema_use> container_host::schema_uses(const std::string& name) { return uses_of(name); }

// On a connection of our own, attached to the version just published; the
// rebuilt indexes are recorded with that version's build in the same transaction.
void container_host::reindex(const std::string& name, const std::vector<schema_use>& uses) {
  const modules::version_identity built = container(name).pin().module().record().identity();
  std::vector<std::string> databases;
  for (const schema_use& u : uses)
    if (std::find(databases.begin(), databases.end(), u.database) == databases.end()) databases.push_back(u.database);
  for (const std::string& path : databases) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
    std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, &sqlite3_close);
    if (rc != SQLITE_OK) throw db_error(db_errc::sqlite, path + ": cannot open for REINDEX: " + sqlite3_errstr(rc));
    sqlite3_busy_timeout(db.get(), 10000);
    connection conn(*this, db.get());
    conn.guard_indexes(false);  // it rebuilds them
    conn.attach(name);
    detail::exec_or_throw(db.get(), "BEGIN IMMEDIATE", path);
    try {
      std::vector<index_build> builds;
      for (const schema_use& u : uses) {
        if (u.database != path) continue;
        detail::exec_or_throw(db.get(), "REINDEX " + quoted(u.type == "index" ? u.name : u.table), path);
        if (u.type == "index") builds.push_back({u.name, u.table, u.function, name, built.build_version, built.sha256});
      }
      record_index_builds(db.get(), builds);
      detail::exec_or_throw(db.get(), "COMMIT", path);
    } catch (...) {
      sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
}

std::vector<container_status> container_host::list() {
  std::vector<container_status> out;
  for (const std::string& name : registry_.names()) {
    container_status s;
    s.name = name;
    s.serving = registry_.module(name).current_version();
    s.versions = registry_.status(name);
    for (const modules::version_report& r : s.versions)
      if (r.number == s.serving) {
        s.build = r.id.build_version;
        s.file = r.id.file;
      }
    out.push_back(std::move(s));
  }
  return out;
}

void container_host::watch(std::chrono::milliseconds debounce) {
  if (watcher_) return;
  watch::watch_options w;
  w.filter = watch::name_ends_with(".so");
  w.debounce = debounce;
  watcher_ = std::make_unique<watch::watcher>(options_.container_dir, w, [this](const watch::file_change& c) {
    if (c.kind != watch::change_kind::changed) return;
    std::vector<std::string> names;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [name, file] : files_)
        if (file.filename() == c.path.filename()) names.push_back(name);
    }
    for (const std::string& name : names) {
      try {
        swap(name, c.path, {options_.watcher_principal, false});
      } catch (const std::exception&) {
        // Logged as a refusal by the registry or by publish(); the serving version stays.
      }
    }
  });
  watcher_->start();
}

bool container_host::sync_watcher(std::chrono::nanoseconds timeout) { return !watcher_ || watcher_->sync(timeout); }

void container_host::add_database(const std::string& path) {
  if (path.empty()) return;  // in-memory and temporary databases have no schema to protect across connections
  std::lock_guard lock(mutex_);
  ++databases_[path];
}

void container_host::remove_database(const std::string& path) {
  std::lock_guard lock(mutex_);
  auto it = databases_.find(path);
  if (it != databases_.end() && --it->second == 0) databases_.erase(it);
}

void container_host::connection_attached(const std::string& name) {
  std::lock_guard lock(mutex_);
  ++attached_[name];
}

void container_host::connection_detached(const std::string& name) {
  std::lock_guard lock(mutex_);
  if (auto it = attached_.find(name); it != attached_.end() && --it->second == 0) attached_.erase(it);
}

void container_host::connection_moved(const std::string& name, std::uint64_t version, const std::string& refusal) {
  {
    std::lock_guard lock(mutex_);
    move_tally& t = tallies_[{name, version}];
    if (refusal.empty()) {
      ++t.moved;
    } else if (t.refused++ == 0) {
      t.first_refusal = refusal;
    }
  }
  moved_.notify_all();
}

move_tally container_host::moves(const std::string& name, std::uint64_t version) {
  std::lock_guard lock(mutex_);
  auto it = tallies_.find({name, version});
  return it != tallies_.end() ? it->second : move_tally{};
}

std::string move_tally::describe() const {
  std::string out = std::to_string(moved) + " of " + std::to_string(connections) + " connections moved, " +
                    std::to_string(refused) + " refused";
  if (pending() != 0) out += ", " + std::to_string(pending()) + " not yet";
  if (!first_refusal.empty()) out += " (" + first_refusal + ")";
  return out;
}

void container_host::emit_refusal(const std::string& principal, const std::string& name, const std::string& file,
                                  const std::string& why) {
  if (!options_.log) return;
  modules::module_event e{modules::module_event_kind::refused, principal, name, file, 0, 0, {}, {}, why};
  try {
    e.from_version = registry_.module(name).current_version();
    options_.log(e);
  } catch (...) {  // a log sink's failure does not change the refusal
  }
}

}  // namespace hotswap::db
