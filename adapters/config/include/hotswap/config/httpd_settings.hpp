// The schema of hotswap-httpd's settings file (also the CLI's `--schema
// httpd`). hotswap-httpd serves it through a store and applies a save while it
// runs: the sections marked "live" take effect at once, a change anywhere else
// is reported as needing a restart (adapters/http/README.md).
//
//   [server]                       # read at start: a change needs a restart
//   address = "127.0.0.1"
//   port = 8080                    # 0: any free port
//   threads = 0                    # 0: one per core
//   plugin_dir = "/srv/plugins"    # required: the only directory modules load from
//   [limits]                       # live
//   max_header_bytes = 8192        # larger: 431
//   max_body_bytes = 1048576       # larger: 413
//   max_connections = 880          # absent: what the descriptor limit leaves
//   [timeouts]                     # live, milliseconds
//   idle_ms = 30000
//   [version]                      # live
//   policy = "per-call"            # or "pinned": a connection keeps the version it first used
//   [[routes]]                     # live; the longest matching prefix wins
//   prefix = "/"
//   module = "greeting"
//   file = "greeting-1.so"         # loads the module if no route loaded it yet
//   policy = "pinned"              # optional: this route's own policy
//   [admin]                        # principal and uids live, the rest at start
//   token_file = "/etc/hotswap/admin.token"
#pragma once

#include "schema.hpp"

namespace hotswap::config {

/// Every key of hotswap-httpd's settings file, with its default and rules.
schema httpd_schema();

}  // namespace hotswap::config
