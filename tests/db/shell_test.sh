#!/usr/bin/env bash
# The loadable extension in the real sqlite3 shell, one session: load a
# container, call it, swap it, call again, roll back, list.
#   shell_test.sh <sqlite3> <hotswapdb.so> <container dir>
set -euo pipefail
shell=$1 extension=$2 containers=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A private shadow directory: XDG_RUNTIME_DIR/hotswap is where the loader puts copies.
export XDG_RUNTIME_DIR=$work

out=$("$shell" -batch -bail "$work/shell.db" <<SQL 2>&1
.load ${extension%.so}
SELECT 'load ' || hotswap_load('ver', '$containers/version_v1.so');
SELECT 'call ' || container_version();
SELECT 'swap ' || hotswap_swap('ver', '$containers/version_v2.so');
SELECT 'call ' || container_version();
CREATE TABLE items(x INTEGER);
CREATE TABLE audit_log(version INTEGER, x INTEGER);
CREATE TRIGGER items_audit AFTER INSERT ON items BEGIN SELECT audit(NEW.x); END;
INSERT INTO items VALUES (7);
SELECT 'audit ' || version || ':' || x FROM audit_log;
SELECT 'rollback ' || hotswap_rollback('ver', 1);
SELECT 'call ' || container_version();
SELECT 'policy ' || hotswap_policy('never');
SELECT 'swap ' || hotswap_swap('ver', '$containers/version_v3.so');
SELECT 'call ' || container_version();
SELECT 'list ' || hotswap_list();
SQL
) || { echo "sqlite3 failed:"; echo "$out"; exit 1; }
echo "$out"

expect() {
  grep -qF -- "$1" <<<"$out" || { echo "MISSING: $1"; exit 1; }
}
[[ $(grep '^call ' <<<"$out" | tr '\n' ' ') == "call 1 call 2 call 1 call 1 " ]] || { echo "wrong call sequence"; exit 1; }
expect "load 1"
expect "(0 of 1 connections moved, 0 refused, 1 not yet); this connection runs version 3"
expect "swap ver: version 2 serving, version 1 draining"
expect "audit 2:7"
expect "rollback ver: version 3 serving, version 2 draining"
expect "policy never"
expect "swap ver: version 4 serving, version 3 draining"
expect "this connection runs version 3"
echo "sqlite3 shell session: ok"
