#include "temp_server.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace hotswap::pg {

namespace fs = std::filesystem;

namespace {

int run(const std::string& command) { return std::system(command.c_str()); }

}  // namespace

std::unique_ptr<temp_server> temp_server::start(const temp_server_options& options, std::string* why_not) {
  if (!fs::exists(options.bindir / "initdb") || !fs::exists(options.bindir / "pg_ctl")) {
    *why_not = "PostgreSQL 15 is not installed (" + (options.bindir / "initdb").string() + ")";
    return nullptr;
  }
  const fs::path extension_dir = options.sharedir / "extension";
  if (::access(extension_dir.c_str(), W_OK) != 0) {
    *why_not = extension_dir.string() + " is not writable: CREATE EXTENSION needs hotswap_pg.control there (run as root)";
    return nullptr;
  }
  for (const char* f : {"hotswap_pg.control", "hotswap_pg--1.0.sql"})
    fs::copy_file(options.extension_dir / f, extension_dir / f, fs::copy_options::overwrite_existing);
  auto s = std::unique_ptr<temp_server>(new temp_server);
  s->options_ = options;
  char pattern[] = "/tmp/hotswap-pg-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp /tmp/hotswap-pg-XXXXXX failed");
  s->root_ = pattern;
  ::chmod(s->root_.c_str(), 0755);
  s->as_server_ = ::geteuid() == 0 ? "runuser -u postgres -- " : "";
  fs::create_directories(s->containers());
  ::chmod(s->containers().c_str(), 0755);
  for (const auto& e : fs::directory_iterator(options.containers))
    if (e.path().extension() == ".so") {
      fs::copy_file(e.path(), s->containers() / e.path().filename());
      ::chmod((s->containers() / e.path().filename()).c_str(), 0644);
    }
  const fs::path socket_dir = s->root_ / "sock";
  fs::create_directories(s->root_ / "pg");
  fs::create_directories(socket_dir);
  if (::geteuid() == 0 && run("chown postgres " + (s->root_ / "pg").string() + " " + socket_dir.string()) != 0)
    throw std::runtime_error("chown postgres " + (s->root_ / "pg").string() + " failed (is the postgres account there?)");
  const fs::path data = s->root_ / "pg" / "data";
  const fs::path initdb_log = s->root_ / "initdb.log";
  if (run(s->as_server_ + (options.bindir / "initdb").string() + " -D " + data.string() +
          " -A trust -U postgres --no-sync >" + initdb_log.string() + " 2>&1") != 0)
    throw std::runtime_error("initdb failed: see " + initdb_log.string());
  {
    std::ofstream conf(data / "postgresql.conf", std::ios::app);
    conf << "listen_addresses = ''\n"
         << "unix_socket_directories = '" << socket_dir.string() << "'\n"
         << "shared_preload_libraries = '" << options.library.string() << "'\n"
         << "hotswap.container_dir = '" << s->containers().string() << "'\n"
         << "fsync = off\n"
         << options.settings;
  }
  if (run(s->pg_ctl("-l " + s->log().string() + " -w -t 120 start")) != 0)
    throw std::runtime_error("pg_ctl start failed: see " + s->log().string());
  s->started_ = true;
  s->watch_for_our_exit();
  return s;
}

temp_server::~temp_server() {
  if (started_) run(pg_ctl("-m fast -w -t 60 stop"));
  std::error_code ec;
  if (std::getenv("HOTSWAP_PG_KEEP") == nullptr) fs::remove_all(root_, ec);
}

std::string temp_server::conninfo(const std::string& user) const {
  return "host=" + (root_ / "sock").string() + " port=5432 dbname=postgres user=" + user;
}

std::string temp_server::pg_ctl(const std::string& arguments) const {
  return as_server_ + (options_.bindir / "pg_ctl").string() + " -D " + (root_ / "pg" / "data").string() + " " +
         arguments + " >/dev/null 2>&1";
}

// A crashed or killed caller must not leave a server behind: a shell reads a
// pipe whose only writer is this process, and stops the server when it reads
// end-of-file. The write end is never closed: it goes with this process.
void temp_server::watch_for_our_exit() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return;
  const std::string command = "cat >/dev/null; " + pg_ctl("-m immediate stop");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[0], 0);  // dup2 clears close-on-exec on the copy
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[0]);
}

}  // namespace hotswap::pg
