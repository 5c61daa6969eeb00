#!/usr/bin/env python3
"""A long-lived hotswap-httpd admin client: one keep-alive connection, a request every INTERVAL seconds.

scripts/http_compare.sh changes the servers it measures from outside. With curl
each change starts a process (exec, dynamic linking, TLS setup of libcurl),
and on 2 cores saturated by wrk and the server that process's CPU alone
delays the callers: asking GET /admin/status through curl every 50 ms raises
keep-alive p99 about as much as swapping through it. This client pays its
start once, so what the callers feel is the server's change, not the client's.

  swap    POST /admin/swap, greeting-1.so and greeting-2.so in turn (version 1 serves greeting-1)
  status  GET /admin/status: the same pace and path, no change

A line per request answered 200 goes to COUNT_FILE (a change counted like the
curl loop counts it). Runs until SIGTERM; any other answer ends it with exit 1.

  scripts/admin_client.py ADMIN_PORT TOKEN_FILE INTERVAL COUNT_FILE swap|status
"""
import http.client
import json
import signal
import sys
import time


def ask(conn, auth, what, i):
    """One request over `conn`: swap number i (greeting-1.so and greeting-2.so in turn) or a status.
    Returns the reply's status and body."""
    if what == "swap":
        body = json.dumps({"module": "greeting", "file": f"greeting-{i % 2 + 1}.so"})
        conn.request("POST", "/admin/swap", body=body, headers={**auth, "Content-Type": "application/json"})
    else:
        conn.request("GET", "/admin/status", headers=auth)
    reply = conn.getresponse()
    return reply.status, reply.read()


def main():
    if len(sys.argv) != 6 or sys.argv[5] not in ("swap", "status"):
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    port, interval, count_file, what = int(sys.argv[1]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
    with open(sys.argv[2]) as f:
        auth = {"Authorization": f"Bearer {f.read().strip()}"}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    with open(count_file, "a", buffering=1) as count:
        for i in range(1, 1 << 62):
            status, text = ask(conn, auth, what, i)
            if status != 200:
                sys.exit(f"admin_client: {what} {i} answered {status}: {text[:200]!r}")
            count.write("\n")
            time.sleep(interval)


if __name__ == "__main__":
    main()
