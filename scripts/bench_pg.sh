#!/usr/bin/env bash
# hotswap_pg measured with PostgreSQL's own client, pgbench, on a server this
# script starts (initdb into a temporary directory, Unix socket only, stopped
# at the end; as root the server runs as `postgres`). Every phase runs the same
# load: CLIENTS pgbench sessions of short transactions that call two functions
# of one container and check they answered from one version (a mismatch bumps a
# sequence, so it is counted, not hidden), and one session of long transactions
# (the same two calls LONG_MS apart, spanning changes), every transaction logged:
#   steady      hotswap_pg, no swaps
#   swapping    hotswap_pg, hotswap.swap() every INTERVAL s (v1 <-> v2)
#   replace     what users do today: CREATE OR REPLACE FUNCTION ... AS 'lib-vN.so'
#               with a new file name per version, every INTERVAL s
#   restart     plain functions, `pg_ctl restart -m fast` once, a third of the way in
#               (pgbench is started again when its clients abort, as an application reconnects)
# Per phase: TPS per second and the longest time without a completed transaction (from the
# logs), failed transactions, aborted clients, transactions that saw two versions, and the
# container or library lines mapped in each pgbench backend near the phase's end and in the
# backend that made the changes (what accumulates). Then the dispatcher's cost per row against
# the same function as a plain C function: SELECT sum(f(i)) FROM generate_series(1, ROWS) i
# (medians of REPS interleaved runs), and, where valgrind is installed, the same in instructions
# per row (callgrind on a single-user backend after the server stopped).
# Writes results/pg-bench.{json,md,png}. Holds /tmp/hotswap-measure.lock.
# With CHECK=1 it exits 1 unless the hotswap phases had 0 failed transactions, 0 aborted
# clients, 0 version mismatches (short and long) and the swapping phase swapped (the ctest
# pg.pgbench_quick).
# Usage: scripts/bench_pg.sh [seconds-per-phase (default 60)]
# Then the swaps' cost on its own: PAIRS interleaved pairs of PAIR_S s, the same short transactions
# beside a changer session that does nothing every INTERVAL s and beside one that swaps, the
# order alternating from pair to pair (so a machine drifting one way does not favour a side); the
# median of the pairs' TPS ratios is the figure quoted (the 60 s phases run once each, in order,
# so the machine's drift between them is in their ratio too).
# Environment: BUILD (default build/test), CLIENTS (4), INTERVAL (0.1), LONG_MS (250),
#              ROWS (10000000), REPS (5), PAIRS (5; 1 under 10 s phases), PAIR_S (10, at most
#              the phase length), IR_ROWS (100000), OUT (results), CHECK
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=${BUILD:-build/test}
clients=${CLIENTS:-4}
interval=${INTERVAL:-0.1}
rows=${ROWS:-10000000}
reps=${REPS:-5}
pair_s=${PAIR_S:-$(( seconds < 10 ? seconds : 10 ))}
pairs=${PAIRS:-$(( seconds < 10 ? 1 : 5 ))}
out=${OUT:-results}
bin=/usr/lib/postgresql/15/bin
for tool in "$bin/initdb" "$bin/pg_ctl" "$bin/pgbench" psql gnuplot python3; do
  command -v "$tool" >/dev/null || { echo "bench_pg: $tool is not installed (scripts/setup.sh)"; exit 1; }
done
cmake --build "$build" -j2 --target hotswap_pg_bench >/dev/null
pg=$(cd "$build/adapters/pg" && pwd)
sharedir=$("$bin/pg_config" --sharedir)
cp "$pg/extension/hotswap_pg.control" "$pg/extension/hotswap_pg--1.0.sql" "$sharedir/extension/"

exec 9>/tmp/hotswap-measure.lock
flock 9

work=$(mktemp -d /tmp/hotswap-pgbench.XXXXXX)
chmod 755 "$work"
as_server=()
[ "$(id -u)" -eq 0 ] && as_server=(runuser -u postgres --)
mkdir -p "$work/containers" "$work/lib" "$work/pg" "$work/sock"
chmod 755 "$work/containers" "$work/lib"
cp "$pg"/containers/pg_version_v1.so "$pg"/containers/pg_version_v2.so "$work/containers/"
chmod 644 "$work"/containers/*.so
[ "$(id -u)" -eq 0 ] && chown postgres "$work/pg" "$work/sock" "$work/lib"
data="$work/pg/data"
stop() { "${as_server[@]}" "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true; }
cleanup() {
  kill "${loop:-}" 2>/dev/null || true
  stop
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
"${as_server[@]}" "$bin/initdb" -D "$data" -A trust -U postgres --no-sync >"$work/initdb.log" 2>&1
cat >>"$data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$work/sock'
shared_preload_libraries = '$pg/hotswap_pg.so'
hotswap.container_dir = '$work/containers'
max_connections = 40
EOF
"${as_server[@]}" "$bin/pg_ctl" -D "$data" -l "$work/pg/server.log" -w start >/dev/null
export PGHOST="$work/sock" PGUSER=postgres PGDATABASE=postgres
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

q <<EOF
CREATE EXTENSION hotswap_pg;
SELECT hotswap.define('ver', 'container_version()', 'int4');
SELECT hotswap.define('ver', 'add_one(int4)', 'int4');
SELECT hotswap.swap('ver', 'pg_version_v1.so');
CREATE SEQUENCE mismatches;
CREATE SEQUENCE long_mismatches;
CREATE TABLE one_row AS SELECT 1 AS n;
EOF
# The plain library's first version (each later version gets a file name never used before:
# overwriting a file that backends have mapped crashes them).
cp "$pg/bench/hotswap_pg_plain_v1.so" "$work/lib/lib-v1.so"
chmod 644 "$work/lib/lib-v1.so"
q <<EOF
CREATE FUNCTION plain_version() RETURNS int4 AS '$work/lib/lib-v1.so', 'plain_version' LANGUAGE C STRICT;
CREATE FUNCTION plain_add_one(int4) RETURNS int4 AS '$work/lib/lib-v1.so', 'plain_add_one' LANGUAGE C STRICT;
CREATE FUNCTION plain_file() RETURNS int4 AS '$work/lib/lib-v1.so', 'plain_file' LANGUAGE C STRICT;
EOF

# One transaction: two container calls that must agree (the builds alternate). The long one
# sleeps LONG_MS between them, so it spans changes (what a running session sees in the middle
# of a transaction), and reads a table, as transactions do (a lock: PostgreSQL takes in
# catalog changes when a statement locks something, not before); it also compares which loaded
# copy answered: the session's version in hotswap.versions, or the N of the lib-vN.so file the
# plain function runs from.
short() {  # $1: version function, $2: add_one function
  printf '%s\n' "BEGIN;" "SELECT $1() AS a \\gset" "SELECT $2($1()) - 1 AS b \\gset" "\\if :a != :b" \
    "SELECT nextval('mismatches');" "\\endif" "END;"
}
long() {  # $1: version function, $2: add_one function, $3: a query naming the copy as f
  printf '%s\n' "BEGIN;" "SELECT $1() AS a \\gset" "${3/ f/ f1} \\gset" "SELECT pg_sleep($long_s);" "SELECT n FROM one_row;" \
    "SELECT $2($1()) - 1 AS b \\gset" "${3/ f/ f2} \\gset" "\\if :a != :b OR :f1 != :f2" \
    "SELECT nextval('long_mismatches');" "\\endif" "END;"
}
long_s=$(awk "BEGIN { print ${LONG_MS:-250} / 1000 }")
short container_version add_one >"$work/hotswap.sql"
short plain_version plain_add_one >"$work/plain.sql"
long container_version add_one \
  "SELECT version AS f FROM hotswap.versions WHERE pid = pg_backend_pid() AND container = 'ver'" >"$work/hotswap-long.sql"
long plain_version plain_add_one "SELECT plain_file() AS f" >"$work/plain-long.sql"

count() { q -c "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM $1"; }
reset_counts() { q -c "SELECT setval('mismatches', 1, false), setval('long_mismatches', 1, false)" >/dev/null; }

# pgbench for the phase's time, started again whenever it ends early (a restart aborts its
# clients: an application reconnects), each transaction logged (-l: completion time).
pgbench_until() {  # $1: log name, $2: script, $3: clients, $4: end (epoch s)
  local n=0 left
  while left=$(( $4 - $(date +%s) )); [ "$left" -gt 0 ]; do
    "$bin/pgbench" -n -c "$3" -j "$(( $3 < 2 ? 1 : 2 ))" -T "$left" -l --log-prefix="$work/log-$1-$n" -f "$2" \
      >>"$work/$1.out" 2>>"$work/$1.err" || sleep 0.02
    n=$(( n + 1 ))
  done
}
# The container or library mappings of every pgbench backend, sampled 2 s before the phase
# ends: what has accumulated in each session.
sample_maps() {  # $1: phase, $2: end (epoch s)
  local wait=$(( $2 - $(date +%s) - 2 ))
  sleep $(( wait > 0 ? wait : 0 ))
  q -c "SELECT coalesce(max(n), -1) FROM (SELECT (SELECT count(*) FROM regexp_split_to_table(
          pg_read_file('/proc/' || pid || '/maps'), E'\n') l WHERE l LIKE '%pg_version_v%' OR l LIKE '%lib-v%') n
        FROM pg_stat_activity WHERE application_name = 'pgbench') s" >"$work/$1.maps" 2>/dev/null ||
    echo -1 >"$work/$1.maps"
}
# One phase: CLIENTS sessions of short transactions and one of long ones, for `seconds`.
run_phase() {  # $1: phase, $2: short script, $3: long script
  reset_counts
  cut -d' ' -f1-3 /proc/loadavg >"$work/$1.load_before"
  local start end long sampler
  start=$(date +%s)
  end=$(( start + seconds ))
  echo "$start" >"$work/$1.start"  # the phase is [start, end), whole seconds
  pgbench_until "$1-long" "$3" 1 "$end" &
  long=$!
  sample_maps "$1" "$end" &
  sampler=$!
  pgbench_until "$1" "$2" "$clients" "$end"
  wait "$long" "$sampler"
  cut -d' ' -f1-3 /proc/loadavg >"$work/$1.load_after"
}
# Per phase, from the per-transaction logs: transactions, failed, TPS per second
# (-> $work/<phase>.tps) and the longest time between two completed transactions; pgbench's aborted
# clients; the mismatch counts; `extra` JSON fields -> $work/<phase>.json.
summarize() {  # $1: phase, $2: extra fields
  local start stats aborted long_tx failed
  start=$(cat "$work/$1.start")
  failed=$(cat "$work/log-$1"-[0-9]* | awk '$3 == "failed"' | wc -l)
  stats=$(cat "$work/log-$1"-[0-9]* | awk -v s="$start" '$3 != "failed" { printf "%.6f\n", $5 + $6 / 1e6 - s }' |
    sort -g | awk -v len="$seconds" -v tps="$work/$1.tps" -v failed="$failed" '
    { n++; sec[int($1)]++; if (n > 1 && $1 - last > gap) gap = $1 - last; last = $1 }
    END { if (n < 2) gap = len;
          for (i = 0; i < len; i++) print i + 1, sec[i] + 0 > tps;
          printf "\"transactions\": %d, \"failed\": %d, \"tps\": %.1f, \"longest_gap_s\": %.3f", n, failed, n / len, gap }')
  long_tx=$(cat "$work/log-$1-long"-[0-9]* | awk '$3 != "failed"' | wc -l)
  aborted=$(cat "$work/$1.err" "$work/$1-long.err" | grep -c 'aborted in command' || true)
  echo "{\"phase\": \"$1\", $stats, \"aborted_clients\": $aborted, \"mismatches\": $(count mismatches)," \
       "\"long_transactions\": $long_tx, \"long_mismatches\": $(count long_mismatches)," \
       "\"maps_per_backend_max\": $(cat "$work/$1.maps"), \"load_before\": \"$(cat "$work/$1.load_before")\"," \
       "\"load_after\": \"$(cat "$work/$1.load_after")\", $2}" >"$work/$1.json"
}

# ---- hotswap_pg: steady, then swapping --------------------------------------------------
run_phase steady "$work/hotswap.sql" "$work/hotswap-long.sql"
summarize steady '"changes": 0'

# One backend swaps: a DO loop that commits each swap (its history row) and sleeps; at the end
# it says how many container lines its own backend maps (it loaded every version).
q -c "DO \$\$ DECLARE stop timestamptz := clock_timestamp() + interval '$seconds s'; i int := 0;
      BEGIN WHILE clock_timestamp() < stop LOOP
        PERFORM hotswap.swap('ver', CASE WHEN i % 2 = 0 THEN 'pg_version_v2.so' ELSE 'pg_version_v1.so' END);
        COMMIT; i := i + 1; PERFORM pg_sleep($interval); END LOOP;
        COMMIT; PERFORM container_version(); PERFORM pg_sleep(1);
        RAISE NOTICE 'changer maps % lines', (SELECT count(*) FROM regexp_split_to_table(
          pg_read_file('/proc/' || pg_backend_pid() || '/maps'), E'\n') l WHERE l LIKE '%pg_version_v%'); END \$\$" \
  2>"$work/swapping.loop" &
loop=$!
before=$(q -c "SELECT count(*) FROM hotswap.swap_history")
run_phase swapping "$work/hotswap.sql" "$work/hotswap-long.sql"
wait "$loop"; loop=
changer_maps() { sed -n 's/.*changer maps \([0-9]*\) lines.*/\1/p' "$work/$1.loop"; }
summarize swapping "\"changes\": $(( $(q -c "SELECT count(*) FROM hotswap.swap_history") - before )),
                    \"changer_backend_maps\": $(changer_maps swapping)"

# ---- the swaps' cost on its own: interleaved pairs -------------------------------------------
# Both sides of a pair carry the same changer session, waking every INTERVAL s to commit a
# transaction; only what it runs differs: nothing, or a swap.
changer() {  # $1: the statement it runs each time (i counts them), for PAIR_S + 1 s
  q -c "DO \$\$ DECLARE stop timestamptz := clock_timestamp() + interval '$(( pair_s + 1 )) s'; i int := 0;
        BEGIN WHILE clock_timestamp() < stop LOOP $1; COMMIT; i := i + 1; PERFORM pg_sleep($interval); END LOOP;
        END \$\$"
}
# The server's CPU: user and system clock ticks of the postmaster and of its children, the
# backends, each with what its own exited children used (cutime, cstime: a backend that exited
# adds its time to the postmaster's once reaped; a preflight child to its backend's). A zombie
# shows no time until then, so the count waits (at most 2 s) until no child of the postmaster is one.
server_cpu_ticks() {
  local pm reading
  pm=$(head -1 "$data/postmaster.pid")
  for _ in $(seq 200); do
    # cat, not awk's own open: a process that exits after the glob would stop awk (mawk).
    reading=$({ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pm="$pm" '{ pid = $1; sub(/^.*\) /, "") }
      $2 == pm || pid == pm { t += $12 + $13 + $14 + $15; zombies += $1 == "Z" }
      END { print t + 0, zombies + 0 }')
    [[ ${reading#* } == 0 ]] && break
    sleep 0.01
  done
  echo "${reading% *}"
}
pair_tps() {  # "TPS ticks": the short transactions' TPS over PAIR_S s beside changer "$1", the server's CPU ticks
  local before tps
  changer "$1" &
  loop=$!
  before=$(server_cpu_ticks)
  tps=$("$bin/pgbench" -n -c "$clients" -j 2 -T "$pair_s" -f "$work/hotswap.sql" 2>>"$work/pairs.err" |
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
  echo "${tps:-0} $(( $(server_cpu_ticks) - before ))"
  wait "$loop"; loop=
}
swaps="PERFORM hotswap.swap('ver', CASE WHEN i % 2 = 0 THEN 'pg_version_v2.so' ELSE 'pg_version_v1.so' END)"
pairs_json=$(for r in $(seq "$pairs"); do
  if (( r % 2 )); then
    read -r steady_tps steady_ticks <<<"$(pair_tps "PERFORM 1")"
    read -r swapping_tps swapping_ticks <<<"$(pair_tps "$swaps")"
  else
    read -r swapping_tps swapping_ticks <<<"$(pair_tps "$swaps")"
    read -r steady_tps steady_ticks <<<"$(pair_tps "PERFORM 1")"
  fi
  printf '{"steady_tps": %s, "swapping_tps": %s, "steady_ticks": %s, "swapping_ticks": %s, "first": "%s"}\n' \
    "$steady_tps" "$swapping_tps" "$steady_ticks" "$swapping_ticks" "$( (( r % 2 )) && echo steady || echo swapping)"
done | paste -sd, -)

# ---- today: CREATE OR REPLACE FUNCTION with a new file name per version -----------------
# The files first (a new name per version, alternating builds), then one backend replaces the
# functions every INTERVAL s, committing each, as the swap loop does. At the end it calls every
# version once, as a long-lived session would have, and says how many lines of them it maps.
changes=$(awk "BEGIN { print int($seconds / $interval) + 10 }")
for n in $(seq 2 "$changes"); do
  cp "$pg/bench/hotswap_pg_plain_v$(( n % 2 + 1 )).so" "$work/lib/lib-v$n.so"
done
chmod 644 "$work"/lib/*.so
q -c "DO \$\$ DECLARE stop timestamptz := clock_timestamp() + interval '$seconds s'; n int := 2; k int;
      BEGIN WHILE clock_timestamp() < stop AND n <= $changes LOOP
        EXECUTE format('CREATE OR REPLACE FUNCTION plain_version() RETURNS int4 AS %L, %L LANGUAGE C STRICT',
                       '$work/lib/lib-v' || n || '.so', 'plain_version');
        EXECUTE format('CREATE OR REPLACE FUNCTION plain_add_one(int4) RETURNS int4 AS %L, %L LANGUAGE C STRICT',
                       '$work/lib/lib-v' || n || '.so', 'plain_add_one');
        EXECUTE format('CREATE OR REPLACE FUNCTION plain_file() RETURNS int4 AS %L, %L LANGUAGE C STRICT',
                       '$work/lib/lib-v' || n || '.so', 'plain_file');
        COMMIT; n := n + 1; PERFORM pg_sleep($interval); END LOOP;
        RAISE NOTICE 'replaced % times', n - 2;
        FOR k IN 1 .. n - 1 LOOP
          EXECUTE format('CREATE OR REPLACE FUNCTION pg_temp.v() RETURNS int4 AS %L, %L LANGUAGE C STRICT',
                         '$work/lib/lib-v' || k || '.so', 'plain_version');
          PERFORM pg_temp.v();
        END LOOP;
        RAISE NOTICE 'changer maps % lines', (SELECT count(*) FROM regexp_split_to_table(
          pg_read_file('/proc/' || pg_backend_pid() || '/maps'), E'\n') l WHERE l LIKE '%lib-v%'); END \$\$" \
  2>"$work/replace.loop" &
loop=$!
run_phase replace "$work/plain.sql" "$work/plain-long.sql"
wait "$loop"; loop=
replaced=$(sed -n 's/.*replaced \([0-9]*\) times.*/\1/p' "$work/replace.loop")
summarize replace "\"changes\": ${replaced:-0}, \"changer_backend_maps\": $(changer_maps replace)"

# ---- today: a restart under load -----------------------------------------------------------
rm -f "$work/restart.start"
( until [ -f "$work/restart.start" ]; do sleep 0.05; done
  sleep "$(awk "BEGIN { print $seconds / 3 }")"; s=$(date +%s.%N)
  "${as_server[@]}" "$bin/pg_ctl" -D "$data" -m fast -w restart -l "$work/pg/server.log" >/dev/null
  awk "BEGIN { print $(date +%s.%N) - $s }" >"$work/restart.seconds" ) &
loop=$!
run_phase restart "$work/plain.sql" "$work/plain-long.sql"
wait "$loop"; loop=
summarize restart "\"changes\": 1, \"pg_ctl_restart_s\": $(cat "$work/restart.seconds")"

# ---- the dispatcher's cost per row ----------------------------------------------------------
q -c "SELECT hotswap.swap('ver', 'pg_version_v1.so')" >/dev/null  # shared memory starts empty after the restart
# Wall time, and the CPU time the backend spent (utime + stime from /proc/self/stat): on a
# shared machine the wall time includes waiting for a CPU, the CPU time does not.
tick_ms=$(awk "BEGIN { print 1000 / $(getconf CLK_TCK) }")
ticks="SELECT a[14]::bigint + a[15]::bigint FROM (SELECT string_to_array(pg_read_file('/proc/self/stat'), ' ') a) s"
timing() {  # prints "wall_ms cpu_ms" of one query
  psql -X -q -A -t -c "$ticks" -c '\timing on' -c "SELECT sum($1) FROM generate_series(1, $rows) i" -c '\timing off' \
    -c "$ticks" | awk -v tick="$tick_ms" 'NR == 1 { t0 = $1 } /^Time:/ { wall = $2 } END { print wall, ($1 - t0) * tick }'
}
declare -A wall cpu
for r in $(seq "$reps"); do
  for f in "add_one(i)" "plain_add_one(i)" "i + 1"; do
    read -r w c < <(timing "$f")
    wall[$f]+="$w "; cpu[$f]+="$c "
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
per_row_json=$(for f in "add_one(i)" "plain_add_one(i)" "i + 1"; do
  printf '"%s": {"wall_ms": [%s], "cpu_ms": [%s], "wall_median_ms": %s, "cpu_median_ms": %s}\n' "$f" \
    "$(echo ${wall[$f]} | tr ' ' ',')" "$(echo ${cpu[$f]} | tr ' ' ',')" "$(echo "${wall[$f]}" | median)" \
    "$(echo "${cpu[$f]}" | median)"
done | paste -sd, -)

# ---- the same per row, in instructions --------------------------------------------------------
# CPU time moves with the machine; the instructions a backend retires do not. Where valgrind is
# installed, a single-user backend (the server stopped) runs each query under callgrind with
# IR_ROWS and 3 x IR_ROWS rows: the difference over 2 x IR_ROWS rows is the instructions per row,
# free of the session's start and of the swap that loads the container (shared memory starts empty).
instructions_json=null
if command -v valgrind >/dev/null; then
  stop
  ir_rows=${IR_ROWS:-100000}
  instructions() {  # function rows: the total instructions (callgrind's Ir) of one single-user session
    local profile="$work/pg/callgrind.$2"
    printf "SELECT hotswap.swap('ver', 'pg_version_v1.so');\nSELECT sum(%s) FROM generate_series(1, %s) i;\n" "$1" "$2" |
      "${as_server[@]}" valgrind --tool=callgrind --callgrind-out-file="$profile" "$bin/postgres" --single -D "$data" \
        postgres >"$work/single.log" 2>&1
    grep -q 'ERROR:' "$work/single.log" && { echo "bench_pg: a single-user run failed:" >&2; cat "$work/single.log" >&2; exit 1; }
    sed -n 's/^\(summary\|totals\): \([0-9]*\).*/\2/p' "$profile" | head -1
  }
  instructions_json=$(for f in "add_one(i)" "plain_add_one(i)" "i + 1"; do
    a=$(instructions "$f" "$ir_rows"); b=$(instructions "$f" $(( 3 * ir_rows )))
    printf '"%s": %s\n' "$f" "$(awk "BEGIN { printf \"%.2f\", ($b - $a) / (2 * $ir_rows) }")"
  done | paste -sd, -)
  instructions_json="{\"rows\": $ir_rows, \"per_row\": {$instructions_json}}"
fi

# ---- results ---------------------------------------------------------------------------------
python3 - "$work" "$out" "$seconds" "$clients" "$interval" "$rows" "$reps" "$long_s" "{$per_row_json}" \
  "[$pairs_json]" "$pair_s" "$instructions_json" <<'EOF'
import json, statistics, sys, os
sys.path.insert(0, "scripts")
import machine
work, out, seconds, clients, interval, rows, reps, long_s, per_row, pairs, pair_s, instructions = sys.argv[1:]
per_row = json.loads(per_row)
instructions = json.loads(instructions)
pairs = json.loads(pairs)
for p in pairs:
    p["ratio"] = p["swapping_tps"] / p["steady_tps"] if p["steady_tps"] else 0
    for side in ("steady", "swapping"):
        p[f"{side}_cpu_s"] = p.pop(f"{side}_ticks") / os.sysconf("SC_CLK_TCK")
    # The server's CPU per transaction, steady over swapping: the TPS ratio a CPU-bound server would
    # see at equal CPU, which the machine's other work moves far less than TPS itself.
    per_tx = lambda cpu, tps: cpu / (tps * int(pair_s)) if tps else 0
    swapping_cost = per_tx(p["swapping_cpu_s"], p["swapping_tps"])
    p["cpu_ratio"] = per_tx(p["steady_cpu_s"], p["steady_tps"]) / swapping_cost if swapping_cost else 0
pair_ratio = statistics.median(p["ratio"] for p in pairs) if pairs else 0
pair_ratios = ", ".join(f"{p['ratio']:.3f}" for p in pairs)
cpu_pair_ratio = statistics.median(p["cpu_ratio"] for p in pairs) if pairs else 0
cpu_pair_ratios = ", ".join(f"{p['cpu_ratio']:.3f}" for p in pairs)
disp, plain, builtin = per_row["add_one(i)"], per_row["plain_add_one(i)"], per_row["i + 1"]
phases = [json.load(open(f"{work}/{p}.json")) for p in ("steady", "swapping", "replace", "restart")]
by = {p["phase"]: p for p in phases}
m = machine.facts()
doc = {"command": f"scripts/bench_pg.sh {seconds}", "commit": m["commit"], "uncommitted": m["uncommitted"],
       "cpu": m["cpu"], "cores": m["cores"], "kernel": m["kernel"], "compiler": m["compiler"], "date": m["date"],
       "clients": int(clients), "interval_s": float(interval), "long_transaction_pause_s": float(long_s),
       "phases": phases,
       "tps_pairs": {"pair_s": int(pair_s), "pairs": pairs, "median_ratio": pair_ratio,
                     "median_cpu_per_transaction_ratio": cpu_pair_ratio},
       "per_row": {"rows": int(rows), "reps": int(reps), "dispatcher": disp, "direct_c": plain, "builtin": builtin},
       "instructions_per_row": instructions,
       "load_end": m["load"]}
json.dump(doc, open(f"{out}/pg-bench.json", "w"), indent=2)
ratio = by["swapping"]["tps"] / by["steady"]["tps"] if by["steady"]["tps"] else 0
# CPU time comes in clock ticks (10 ms): a short run (the CI check's ROWS) can show 0 of them.
ratio_text = lambda a, b: f"{a / b:.3f}x" if b else "n/a (under one clock tick)"
cpu_ratio = ratio_text(disp["cpu_median_ms"], plain["cpu_median_ms"])
wall_ratio = ratio_text(disp["wall_median_ms"], plain["wall_median_ms"])
loads = [float(p["load_before"].split()[0]) for p in phases] + [float(p["load_after"].split()[0]) for p in phases]
with open(f"{out}/pg-bench.md", "w") as f:
    w = f.write
    w("# hotswap_pg under pgbench: swapping, CREATE OR REPLACE, restart\n\n")
    w(f"`scripts/bench_pg.sh {seconds}` at commit `{m['commit'][:7]}` ({m['uncommitted']} uncommitted files), "
      f"{m['date']}, {m['cpu']} ({m['cores']} cores, shared), {m['kernel']}. Per phase, the same load: pgbench "
      f"`-c {clients} -j 2 -T {seconds}` running short transactions (two calls of one container, or of the plain "
      f"library, checked to answer from one version) plus one pgbench client running long ones (the same two calls "
      f"{float(long_s):g} s apart), each transaction logged (`-l`); a change every {interval} s. pgbench is started "
      f"again when its clients abort (an application that reconnects). Load average (1 min) during the phases: "
      f"{min(loads):.1f} to {max(loads):.1f}; ratios below are from this one run.\n\n")
    w("![transactions per second](pg-bench.png)\n\n")
    w("| phase | changes | transactions | TPS | failed | aborted clients | longest time without a completed transaction | "
      "short tx seeing two versions | long tx | long tx seeing two versions | container/library lines per pgbench backend | "
      "lines in the changing backend |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    for p in phases:
        cb = p.get("changer_backend_maps", "")
        w(f"| {p['phase']} | {p['changes']} | {p['transactions']} | {p['tps']:.0f} | {p['failed']} | "
          f"{p['aborted_clients']} | {p['longest_gap_s']:.3f} s | {p['mismatches']} | {p['long_transactions']} | "
          f"{p['long_mismatches']} | {p['maps_per_backend_max']} | {cb} |\n")
    w(f"\n- TPS swapping / steady: **{pair_ratio:.3f}** (target >= 0.95), the median of {len(pairs)} interleaved "
      f"pairs of {pair_s} s, the same short transactions beside a changer session that did nothing every {interval} s "
      f"and beside one that swapped, which ran first alternating from pair to pair (pair ratios: {pair_ratios}). "
      f"The {seconds} s phases above, run once each, one after the other: {ratio:.3f} "
      f"({by['swapping']['changes']} swaps), which also holds the machine's drift between them.\n")
    w(f"- The same pairs by the server's CPU per transaction (the postmaster and every backend, user and system), "
      f"steady / swapping: **{cpu_pair_ratio:.3f}**, the TPS ratio a CPU-bound server would see at equal CPU (pair "
      f"ratios: {cpu_pair_ratios}). Where it spreads as widely as TPS, the machine's noise is in the cost of a "
      f"transaction itself (a shared host), not only in the CPU the server gets.\n")
    w(f"- Per row, `SELECT sum(f(i)) FROM generate_series(1, {rows}) i`, {reps} interleaved runs each, medians of "
      f"the backend's CPU time (wall time in brackets, which includes waiting for a CPU): dispatcher "
      f"{disp['cpu_median_ms']:.0f} ms ({disp['wall_median_ms']:.0f}), the same function as a plain C function "
      f"{plain['cpu_median_ms']:.0f} ms ({plain['wall_median_ms']:.0f}): **{cpu_ratio}** CPU, {wall_ratio} wall "
      f"(target <= 1.05); builtin `i + 1` {builtin['cpu_median_ms']:.0f} ms ({builtin['wall_median_ms']:.0f}).\n")
    if instructions:
        ir = instructions["per_row"]
        w(f"- The same per row in instructions, which the machine's noise does not move (callgrind, a single-user "
          f"backend, {instructions['rows']:,} and {3 * instructions['rows']:,} rows, the difference per row): "
          f"dispatcher {ir['add_one(i)']:.1f}, plain C function {ir['plain_add_one(i)']:.1f}: "
          f"**{ir['add_one(i)'] / ir['plain_add_one(i)']:.3f}x** (target <= 1.05), "
          f"{ir['add_one(i)'] - ir['plain_add_one(i)']:.1f} instructions per call; builtin `i + 1` {ir['i + 1']:.1f}.\n")
    else:
        w("- Instructions per row: not counted (valgrind is not installed).\n")
    w(f"- `pg_ctl restart -m fast` took {by['restart']['pg_ctl_restart_s']:.2f} s; the clients saw "
      f"{by['restart']['longest_gap_s']:.2f} s without a completed transaction and {by['restart']['aborted_clients']} "
      f"aborted sessions (each loses its transaction in flight and its session state).\n")
    w(f"- `CREATE OR REPLACE FUNCTION` with a new file per version: {by['replace']['long_mismatches']} of "
      f"{by['replace']['long_transactions']} long transactions saw two versions (a session takes in the catalog change at its next statement "
      f"that locks something, here the table read between the calls), "
      f"hotswap_pg {by['swapping']['long_mismatches']} of {by['swapping']['long_transactions']}. Every file a session "
      f"called stays mapped in it for the session's life (PostgreSQL never unloads): a pgbench backend mapped "
      f"{by['replace']['maps_per_backend_max']} lines near the phase's end, and the backend that replaced and then "
      f"called every version {by['replace'].get('changer_backend_maps')}; with hotswap_pg "
      f"{by['swapping']['maps_per_backend_max']} and {by['swapping'].get('changer_backend_maps')} "
      f"(one version takes 5 lines; the replaced one unloads after a grace period).\n")
    # The phases load the machine themselves (4 + 1 clients and their backends on 2 cores); the load
    # before the first one says whether other work shared it.
    idle_load = float(phases[0]["load_before"].split()[0])
    if idle_load > 1:
        w(f"\n**The 1-minute load average was {idle_load:.1f} on {m['cores']} cores before the first phase: other work "
          f"shared the machine, and ratios within a few percent of 1 are within its noise.**\n")
bad = [f"{p['phase']}: {k}={p[k]}" for p in phases if p["phase"] in ("steady", "swapping")
       for k in ("failed", "aborted_clients", "mismatches", "long_mismatches") if p[k] != 0]
if by["swapping"]["changes"] == 0: bad.append("swapping: no swap happened")
if by["swapping"]["long_transactions"] == 0: bad.append("swapping: no long transaction completed")
print("pg-bench check:", "; ".join(bad) if bad else "ok")
open(f"{work}/check", "w").write("bad" if bad else "ok")
EOF
gnuplot <<EOF
set terminal pngcairo size 900,420 noenhanced
set output "$out/pg-bench.png"
set xlabel "second of the phase"; set ylabel "completed transactions per second"; set key bottom right; set grid
set yrange [0:*]
plot "$work/steady.tps" using 1:2 with lines title "hotswap_pg steady", \
     "$work/swapping.tps" using 1:2 with lines title "hotswap_pg, swap every ${interval} s", \
     "$work/replace.tps" using 1:2 with lines title "CREATE OR REPLACE every ${interval} s", \
     "$work/restart.tps" using 1:2 with lines title "pg_ctl restart"
EOF
cat "$out/pg-bench.md"
[ -z "${CHECK:-}" ] || [ "$(cat "$work/check")" = ok ]
