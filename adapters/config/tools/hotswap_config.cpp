// hotswap-config: the operator's tool for a configuration served by
// hotswap::config::store. It acts on files only, so it works the same whether
// or not a server is running: a rollback writes the chosen history content as
// the main file (atomically, respecting an editor's lock), and a running
// server's watcher applies it through the same save sequence as a hand edit,
// validation and history included. `check` says whether a file is TOML 1.0
// at all (and decodes it for the toml-test suite); `serve` runs a store on a
// file and prints every save it handles, to try edit-while-running by hand.
//
// The command line is CLI11's: `hotswap-config --help` and
// `hotswap-config COMMAND --help` are generated from the declarations in
// main(). Exit codes (stable, for scripts; README.md):
//   0  success: valid / no differences / rolled back / listed (also --help)
//   1  the answer is no: invalid file, versions differ
//   2  usage error: unknown command or option, bad schema description
//   3  a file is missing or cannot be read or written (or is not a regular
//      file, or a symlink out of its directory)
//   4  refused: the main file is locked by another editor, or read-only
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <hotswap/config/check.hpp>
#include <hotswap/config/diff.hpp>
#include <hotswap/config/history.hpp>
#include <hotswap/config/httpd_settings.hpp>
#include <hotswap/config/loader.hpp>
#include <hotswap/config/schema_file.hpp>
#include <hotswap/config/store.hpp>

namespace {

namespace fs = std::filesystem;
using namespace hotswap::config;

enum exit_code : int { ok = 0, no = 1, usage_error = 2, io_error = 3, refused = 4 };

constexpr const char* exit_codes_text =
    "Versions: main, MAJOR.MINOR (history), error.N, or a path. Built-in schemas: httpd.\n"
    "Exit status: 0 ok (also --help); 1 invalid or different; 2 the command line was refused;\n"
    "3 a file is missing or unreadable; 4 the main file is locked or read-only.";

struct usage_failure {
  std::string message;
};

struct arguments {
  std::optional<schema> rules;
  bool json = false;
  std::optional<std::uint64_t> exit_after;
  std::vector<std::string> positional;
};

schema builtin_schema(const std::string& name) {
  if (name == "httpd") return httpd_schema();
  throw usage_failure{"unknown built-in schema '" + name + "' (known: httpd)"};
}

/// The schema named by --schema or --schema-file, once the command line is parsed.
schema chosen_schema(const std::string& name, const std::string& file) {
  if (!name.empty()) return builtin_schema(name);
  try {
    return load_schema_file(file);
  } catch (const config_exception& e) {
    throw usage_failure{"bad schema description: " + e.error().to_string()};
  }
}

/// Resolves a version name next to `main` to a file.
fs::path version_path(const history_dir& files, const std::string& v) {
  if (v == "main") return files.main_file();
  if (v.starts_with("error.")) return files.error_copy(std::stoull(v.substr(6)));
  const auto dot = v.find('.');
  if (dot != std::string::npos && v.find_first_not_of("0123456789.") == std::string::npos)
    return files.path_for(std::stoull(v.substr(0, dot)), std::stoull(v.substr(dot + 1)));
  return v;
}

int report_load_error(const config_error& e) {
  std::cerr << e.to_string() << "\n";
  // read_config()'s refusals to read (as opposed to a file read and found invalid).
  const bool unreadable = e.reason.starts_with("cannot ") || e.reason.starts_with("read error") ||
                          e.reason.starts_with("not a regular file") || e.reason.starts_with("is a symlink");
  return unreadable ? io_error : no;
}

int validate(const arguments& args) {
  const auto loaded = load_file(args.positional[0], &*args.rules);
  if (!loaded) return report_load_error(loaded.error);
  std::cout << args.positional[0] << ": valid (" << loaded.doc->values.size() << " keys";
  if (loaded.doc->history_major) std::cout << ", history major " << *loaded.doc->history_major;
  std::cout << ")\n";
  return ok;
}

int check(const arguments& args) {
  const file_read read = read_config(args.positional[0], load_limits{}.max_bytes);
  if (!read.text) return report_load_error(read.error);
  const auto checked = check_toml(*read.text, args.positional[0], args.json);
  if (!checked) return report_load_error(*checked.error);
  std::cout << (args.json ? checked.json : args.positional[0] + ": TOML 1.0") << "\n";
  return ok;
}

/// One line per save the store handled, for a person watching edits apply.
void print_save(const save_report& r) {
  switch (r.result) {
    case save_report::outcome::applied:
      std::cout << "applied";
      if (r.history) std::cout << " as history " << r.history->version();
      std::cout << " (version " << r.version << ", " << r.changes.size() << " changes)\n";
      for (const auto& c : r.changes) std::cout << "  " << c.to_string() << "\n";
      break;
    case save_report::outcome::unchanged:
      std::cout << "unchanged (version " << r.version << " keeps serving)\n";
      break;
    case save_report::outcome::rejected:
      std::cout << "refused " << (r.error ? r.error->to_string() : std::string("(no reason)"));
      if (!r.error_copy.empty()) std::cout << " (kept as " << r.error_copy.filename().string() << ")";
      std::cout << "; version " << r.version << " keeps serving\n";
      break;
  }
  std::cout << std::flush;
}

int serve(const arguments& args) {
  // Every thread the store starts inherits this mask; the signals wait for sigwait() below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::uint64_t handled = 0;
  store_options options;
  options.log = [](log_level level, const std::string& message) {
    if (level != log_level::info) std::cerr << "hotswap-config: " << message << "\n";
  };
  options.on_save = [&](const save_report& r) {  // on the watcher thread, one save at a time
    print_save(r);
    if (args.exit_after && ++handled == *args.exit_after) ::kill(::getpid(), SIGTERM);
  };
  hotswap::domain dom;
  std::optional<store> running;
  try {
    running.emplace(dom, args.positional[0], *args.rules, std::move(options));
  } catch (const config_exception& e) {  // neither the file nor any history version is valid
    std::cerr << e.what() << "\n";
    return no;
  }
  store& config = *running;
  config.start();
  const auto serving = config.serving_history();
  std::cout << "serving " << args.positional[0] << " as history " << serving.version() << " (version "
            << config.version() << ", " << config.read()->size() << " keys); watching for saves\n"
            << std::flush;
  int signal = 0;
  sigwait(&stop_signals, &signal);
  config.stop();
  std::cout << "stopped\n";
  return ok;
}

int history(const arguments& args) {
  const history_dir files(args.positional[0]);
  const auto main = load_file(files.main_file(), nullptr);
  const auto all = files.list();
  if (all.empty()) std::cout << "no history files for " << files.main_file().string() << "\n";
  for (const auto& e : all) {
    std::error_code ec;
    const auto size = fs::file_size(e.path, ec);
    const auto recorded = load_file(e.path, nullptr);
    std::cout << e.version() << "\t" << size << " bytes\t" << e.path.filename().string();
    if (!recorded) std::cout << "\t(unreadable: " << recorded.error.reason << ")";
    if (recorded && main && recorded.doc->values == main.doc->values) std::cout << "\t= main";
    std::cout << "\n";
  }
  if (!main) std::cerr << "main file: " << main.error.to_string() << "\n";
  return ok;
}

int diff_versions(const arguments& args) {
  const auto n = args.positional.size();
  // Two arguments: two paths. Three: versions of the first (main, 0.3, error.2, a path).
  const auto path_of = [&](const std::string& v) -> fs::path {
    return n == 2 ? fs::path(v) : version_path(history_dir(args.positional[0]), v);
  };
  const auto a = load_file(path_of(args.positional[n - 2]), nullptr);
  if (!a) return report_load_error(a.error);
  const auto b = load_file(path_of(args.positional[n - 1]), nullptr);
  if (!b) return report_load_error(b.error);
  const auto changes = diff(a.doc->values, b.doc->values);
  for (const auto& c : changes) std::cout << c.to_string() << "\n";
  if (a.doc->history_major != b.doc->history_major)
    std::cout << "# history major: " << (a.doc->history_major ? std::to_string(*a.doc->history_major) : "none")
              << " -> " << (b.doc->history_major ? std::to_string(*b.doc->history_major) : "none") << "\n";
  return changes.empty() ? ok : no;
}

/// `text` with its history key set to `major` (the key line replaced, or
/// added at the top): the rollback is then an edit on the current version,
/// not a stale one.
std::string with_history_major(const std::string& text, std::uint64_t major) {
  std::istringstream in(text);
  std::string out;
  std::string line;
  bool replaced = false;
  bool in_root = true;
  while (std::getline(in, line)) {
    const auto start = line.find_first_not_of(" \t");
    const std::string_view body = start == std::string::npos ? std::string_view() : std::string_view(line).substr(start);
    if (body.starts_with('[')) in_root = false;
    if (in_root && !replaced && body.starts_with(history_major_key) &&
        body.substr(history_major_key.size()).find_first_not_of(" \t") != std::string_view::npos &&
        body[body.find_first_not_of(" \t", history_major_key.size())] == '=') {
      line = std::string(history_major_key) + " = " + std::to_string(major);
      replaced = true;
    }
    out += line + "\n";
  }
  if (!replaced) out = std::string(history_major_key) + " = " + std::to_string(major) + "\n" + out;
  return out;
}

int rollback(const arguments& args) {
  const history_dir files(args.positional[0]);
  const fs::path source = version_path(files, args.positional[1]);
  const file_read read = read_config(source, 1 << 20);
  if (!read.text) return report_load_error(read.error);
  const std::string& text = *read.text;
  if (args.rules) {
    if (const auto checked = load(text, source.string(), &*args.rules); !checked) return report_load_error(checked.error);
  }
  // The version the main file is based on now; the rollback is an edit on it.
  const auto main = load_file(files.main_file(), nullptr);
  // The rolled-back main file keeps the main file's mode and owner.
  const auto main_access = read_config(files.main_file(), 1 << 20).access;
  std::uint64_t major = 0;
  if (main && main.doc->history_major) {
    major = *main.doc->history_major;
  } else if (const auto newest = files.newest()) {
    major = newest->major;
  }
  const std::string& main_path = files.main_file().string();
  const int fd = ::open(main_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    struct stat st {};
    const bool locked = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    const bool read_only = ::fstat(fd, &st) == 0 && (st.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)) == 0;
    if (locked || read_only) {
      ::close(fd);
      std::cerr << main_path << ": " << (locked ? "locked by another editor" : "read-only") << "; not rolled back\n";
      return refused;
    }
  }
  try {
    write_durably(files.main_file(), with_history_major(text, major), main_access.value_or(*read.access));
  } catch (const std::exception& e) {
    if (fd >= 0) ::close(fd);
    std::cerr << e.what() << "\n";
    return io_error;
  }
  if (fd >= 0) ::close(fd);
  std::cout << "rolled back " << main_path << " to " << source.filename().string() << " (as an edit on history major "
            << major << "); a running server applies it as its next history version\n";
  return ok;
}

int errors(const arguments& args) {
  const history_dir files(args.positional[0]);
  const auto numbers = files.error_numbers();
  if (numbers.empty()) std::cout << "no rejected edits kept for " << files.main_file().string() << "\n";
  for (const auto n : numbers) {
    config_error e;
    const auto reason = read_text(files.error_reason(n), 1 << 16, e);
    std::string first_line = reason ? reason->substr(0, reason->find('\n')) : "(no reason recorded)";
    std::cout << "error." << n << "\t" << first_line << "\n";
  }
  return ok;
}

int show_error(const arguments& args) {
  const history_dir files(args.positional[0]);
  const std::uint64_t n = std::stoull(args.positional[1]);
  config_error e;
  const auto text = read_text(files.error_copy(n), 1 << 24, e);
  if (!text) return report_load_error(e);
  const auto reason = read_text(files.error_reason(n), 1 << 16, e);
  std::cout << "# " << files.error_copy(n).string() << "\n# " << (reason ? *reason : "(no reason recorded)\n");
  std::cout << *text;
  if (!text->empty() && text->back() != '\n') std::cout << "\n";
  return ok;
}

int print_schema(const arguments& args) {
  std::cout << describe_schema(builtin_schema(args.positional[0]));
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"The operator's tool for a configuration served by hotswap::config::store.", "hotswap-config"};
  app.footer(exit_codes_text);
  app.require_subcommand(1);
  arguments args;
  std::string schema_name, schema_file;
  std::function<int()> run;

  // Each command: its positional arguments (exactly `count`, or between `count` and `most`).
  const auto command = [&](const char* name, const char* help, const char* what, int count, int most,
                           int (*fn)(const arguments&)) {
    CLI::App* c = app.add_subcommand(name, help);
    c->footer(exit_codes_text);
    c->add_option("args", args.positional, what)->required()->expected(count, most);
    c->callback([&run, fn, &args] { run = [fn, &args] { return fn(args); }; });
    return c;
  };
  const auto schema_options = [&](CLI::App* c) {
    auto* named = c->add_option("--schema", schema_name, "a built-in schema")->check(CLI::IsMember({"httpd"}));
    auto* file = c->add_option("--schema-file", schema_file, "a schema description file (see the schema command)");
    named->excludes(file);
  };
  command("check", "is FILE TOML 1.0? (no schema)", "FILE", 1, 1, check)
      ->add_flag("--json", args.json, "print it decoded, in toml-test's JSON encoding");
  schema_options(command("validate", "check FILE against a schema (--schema or --schema-file)", "FILE", 1, 1, validate));
  CLI::App* serving = command("serve", "run the store on FILE (--schema or --schema-file) and print every save it "
                              "handles until SIGINT/SIGTERM", "FILE", 1, 1, serve);
  schema_options(serving);
  serving->add_option("--exit-after", args.exit_after, "stop after N saves")->check(CLI::PositiveNumber);
  command("history", "list FILE's history versions", "FILE", 1, 1, history);
  command("diff", "keys that differ between versions A and B of FILE, or between two files", "FILE A B | PATH_A PATH_B",
          2, 3, diff_versions);
  schema_options(command("rollback", "make history version V the main file again", "FILE V", 2, 2, rollback));
  command("errors", "list the rejected edits kept aside", "FILE", 1, 1, errors);
  command("error", "show rejected edit N and its error", "FILE N", 2, 2, show_error);
  command("schema", "print a built-in schema description", "NAME", 1, 1, print_schema);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);  // prints --help, or the error and a pointer to --help
    return status == 0 ? ok : usage_error;
  }
  try {
    if (!schema_name.empty() || !schema_file.empty()) args.rules = chosen_schema(schema_name, schema_file);
    for (const char* needs_schema : {"validate", "serve"})
      if (app.got_subcommand(needs_schema) && !args.rules)
        throw usage_failure{std::string(needs_schema) + " needs --schema NAME or --schema-file PATH"};
    return run();
  } catch (const usage_failure& u) {
    std::cerr << "hotswap-config: " << u.message << "\nRun with --help for more information.\n";
    return usage_error;
  } catch (const std::invalid_argument& e) {
    std::cerr << "hotswap-config: " << e.what() << "\n";
    return usage_error;
  } catch (const std::exception& e) {
    std::cerr << "hotswap-config: " << e.what() << "\n";
    return io_error;
  }
}
