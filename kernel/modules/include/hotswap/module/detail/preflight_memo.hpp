// Candidates that already passed the preflight: swapping back and forth
// between known builds need not spawn a child process each time.
//
// What a pass is remembered by: the candidate's SHA-256, computed on the
// bytes read for this very request (never a file name, size, inode or mtime),
// the interface the host expects (name, version, table size), and the
// SHA-256 and SONAME of each checked dependency in load order. These, and the
// loader's preflight options (helper program, run_hooks, deadline), are all
// the child's verdict depends on, besides the plugin's own nondeterminism.
// The options and the source policy are fixed for a loader's life, so the
// memo lives in the loader (one per registry) and nothing else needs to
// invalidate it: a registry built with another policy or other preflight
// options has a loader, and a memo, of its own, empty at first.
//
// A remembered pass skips only the child. Every check that refuses bad input
// runs on every request, on that request's bytes, before the memo is asked:
// the directory chain, owner and mode, the size cap, the allow list, the ELF
// validation, the metadata note, the seal and the dependencies. A file
// rewritten under the same name has another hash (a different build), or
// fails its seal (a half-written one), so it is checked afresh or refused.
//
// Only passes are remembered: a refusal (a crash, an exit, a timeout on a
// busy machine, no memory for the child) is tried again next time.
//
// What it gives up: a plugin that survives the preflight only sometimes (a
// race in a constructor) is tried once per build and loader, not once per
// load. Turn it off (preflight_options::remembered_passes = 0) to try it
// every time.
//
//   preflight_memo memo(64);
//   const std::string key = preflight_memo::key_of(file, deps, expected);
//   if (!memo.passed(key)) { run_preflight(file, deps, expected, options); memo.remember(key); }
#pragma once

#include <string>
#include <vector>

#include "dependency_check.hpp"
#include "descriptor_check.hpp"
#include "remembered_keys.hpp"
#include "source.hpp"

namespace hotswap::modules::detail {

class preflight_memo : public remembered_keys {
 public:
  using remembered_keys::remembered_keys;

  /// What a verdict is remembered by (see the top of this header).
  static std::string key_of(const plugin_file& file, const std::vector<checked_dependency>& deps,
                            const interface_id& expected) {
    // Names are length-prefixed: no name can be mistaken for the fields after it.
    auto text = [](const std::string& s) { return std::to_string(s.size()) + ':' + s; };
    std::string key = file.sha256 + '|' + text(expected.name) + '|' + std::to_string(expected.version) + '|' +
                      std::to_string(expected.table_size);
    for (const checked_dependency& d : deps) key += '|' + text(d.soname) + '=' + d.file.sha256;
    return key;
  }
};

}  // namespace hotswap::modules::detail
