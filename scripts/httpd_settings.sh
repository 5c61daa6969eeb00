#!/usr/bin/env bash
# A hotswap-httpd settings file (TOML; keys in adapters/http/README.md) for the
# scripts that start a server: loopback address, the greeting application at /
# (greeting-1.so). Source it for the function, or run it to print the file.
# Usage: httpd_settings PORT ADMIN_PORT THREADS PLUGIN_DIR SHADOW_DIR TOKEN_FILE [LINE...]
#   PORT, ADMIN_PORT: 0 for any free port (the server names both in its "serving on" line)
#   LINE: more top-level settings as TOML dotted keys, e.g. "admin.uids = [$(id -u)]";
#         toml_string PATH quotes a path for one.

# A TOML basic string holding $1.
toml_string() {
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}

httpd_settings() {
  local port=$1 admin=$2 threads=$3 plugins=$4 shadow=$5 token=$6
  shift 6
  printf 'server.address = "127.0.0.1"\nserver.port = %s\nserver.threads = %s\n' "$port" "$threads"
  printf 'server.plugin_dir = %s\nserver.shadow_dir = %s\n' "$(toml_string "$plugins")" "$(toml_string "$shadow")"
  printf 'admin.address = "127.0.0.1"\nadmin.port = %s\nadmin.token_file = %s\n' "$admin" "$(toml_string "$token")"
  [ $# -eq 0 ] || printf '%s\n' "$@"
  printf '\n[[routes]]\nprefix = "/"\nmodule = "greeting"\nfile = "greeting-1.so"\n'
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  [ $# -ge 6 ] || { sed -n 5,8p "$0" >&2; exit 2; }
  httpd_settings "$@"
fi
