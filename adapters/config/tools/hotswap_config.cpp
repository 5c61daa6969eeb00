// hotswap-config: the operator's tool for a configuration served by
// hotswap::config::store. It acts on files only, so it works the same whether
// or not a server is running: a rollback writes the chosen history content as
// the main file (atomically, respecting an editor's lock), and a running
// server's watcher applies it through the same save sequence as a hand edit,
// validation and history included.
//
// Exit codes (stable, for scripts):
//   0  success: valid / no differences / rolled back / listed
//   1  the answer is no: invalid file, versions differ
//   2  usage error: unknown command or option, bad schema description
//   3  a file is missing or cannot be read or written
//   4  refused: the main file is locked by another editor, or read-only
#include <fcntl.h>
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

#include <hotswap/config/diff.hpp>
#include <hotswap/config/history.hpp>
#include <hotswap/config/httpd_settings.hpp>
#include <hotswap/config/loader.hpp>
#include <hotswap/config/schema_file.hpp>

namespace {

namespace fs = std::filesystem;
using namespace hotswap::config;

enum exit_code : int { ok = 0, no = 1, usage_error = 2, io_error = 3, refused = 4 };

constexpr const char* usage_text =
    "usage: hotswap-config COMMAND [OPTIONS] FILE ...\n"
    "  validate [--schema NAME | --schema-file PATH] FILE   check FILE against a schema\n"
    "  history FILE                                        list FILE's history versions\n"
    "  diff FILE A B                                       keys that differ between versions A and B\n"
    "  rollback [--schema NAME | --schema-file PATH] FILE V make history version V the main file again\n"
    "  errors FILE                                         list the rejected edits kept aside\n"
    "  error FILE N                                        show rejected edit N and its error\n"
    "  schema NAME                                         print a built-in schema description\n"
    "Versions: main, MAJOR.MINOR (history), error.N, or a path. Built-in schemas: httpd.\n"
    "Exit: 0 ok, 1 invalid or different, 2 usage, 3 file missing or unreadable, 4 locked or read-only.\n";

struct usage_failure {
  std::string message;
};

struct arguments {
  std::optional<schema> rules;
  std::vector<std::string> positional;
};

schema builtin_schema(const std::string& name) {
  if (name == "httpd") return httpd_schema();
  throw usage_failure{"unknown built-in schema '" + name + "' (known: httpd)"};
}

arguments parse(int argc, char** argv, int first) {
  arguments out;
  for (int i = first; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--schema" || a == "--schema-file") && i + 1 < argc) {
      const std::string v = argv[++i];
      try {
        out.rules = a == "--schema" ? builtin_schema(v) : load_schema_file(v);
      } catch (const config_exception& e) {
        throw usage_failure{"bad schema description: " + e.error().to_string()};
      }
    } else if (a.starts_with("--")) {
      throw usage_failure{"unknown option '" + a + "'"};
    } else {
      out.positional.push_back(a);
    }
  }
  return out;
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
  return e.reason.starts_with("cannot open") || e.reason == "read error" ? io_error : no;
}

int validate(const arguments& args) {
  if (args.positional.size() != 1) throw usage_failure{"validate takes one FILE"};
  if (!args.rules) throw usage_failure{"validate needs --schema NAME or --schema-file PATH"};
  const auto loaded = load_file(args.positional[0], &*args.rules);
  if (!loaded) return report_load_error(loaded.error);
  std::cout << args.positional[0] << ": valid (" << loaded.doc->values.size() << " keys";
  if (loaded.doc->history_major) std::cout << ", history major " << *loaded.doc->history_major;
  std::cout << ")\n";
  return ok;
}

int history(const arguments& args) {
  if (args.positional.size() != 1) throw usage_failure{"history takes one FILE"};
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
  if (args.positional.size() != 3) throw usage_failure{"diff takes FILE A B"};
  const history_dir files(args.positional[0]);
  const auto a = load_file(version_path(files, args.positional[1]), nullptr);
  if (!a) return report_load_error(a.error);
  const auto b = load_file(version_path(files, args.positional[2]), nullptr);
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
  if (args.positional.size() != 2) throw usage_failure{"rollback takes FILE VERSION"};
  const history_dir files(args.positional[0]);
  const fs::path source = version_path(files, args.positional[1]);
  config_error error;
  const auto text = read_text(source, 1 << 20, error);
  if (!text) return report_load_error(error);
  if (args.rules) {
    if (const auto checked = load(*text, source.string(), &*args.rules); !checked) return report_load_error(checked.error);
  }
  // The version the main file is based on now; the rollback is an edit on it.
  const auto main = load_file(files.main_file(), nullptr);
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
    write_durably(files.main_file(), with_history_major(*text, major));
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
  if (args.positional.size() != 1) throw usage_failure{"errors takes one FILE"};
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
  if (args.positional.size() != 2) throw usage_failure{"error takes FILE N"};
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
  if (args.positional.size() != 1) throw usage_failure{"schema takes one NAME"};
  std::cout << describe_schema(builtin_schema(args.positional[0]));
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    (argc < 2 ? std::cerr : std::cout) << usage_text;
    return argc < 2 ? usage_error : ok;
  }
  const std::string command = argv[1];
  try {
    const arguments args = parse(argc, argv, 2);
    if (command == "validate") return validate(args);
    if (command == "history") return history(args);
    if (command == "diff") return diff_versions(args);
    if (command == "rollback") return rollback(args);
    if (command == "errors") return errors(args);
    if (command == "error") return show_error(args);
    if (command == "schema") return print_schema(args);
    throw usage_failure{"unknown command '" + command + "'"};
  } catch (const usage_failure& u) {
    std::cerr << "hotswap-config: " << u.message << "\n" << usage_text;
    return usage_error;
  } catch (const std::invalid_argument& e) {
    std::cerr << "hotswap-config: " << e.what() << "\n";
    return usage_error;
  } catch (const std::exception& e) {
    std::cerr << "hotswap-config: " << e.what() << "\n";
    return io_error;
  }
}
