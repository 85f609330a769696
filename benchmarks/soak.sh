#!/usr/bin/env bash
# The reliability soak, not run in CI: zpage-soak (a tiered store writing back under a memory limit,
# a compressed region over its budget and a swap device, every page verified; benchmarks/soak.cpp)
# and, beside it for the same time, zpage-memcached with a small -m (so that it evicts) under a
# client load that verifies every hit byte for byte. Each prints a line every REPORT_SECONDS; at
# the end a summary of both: operations, failures, RSS after warm-up and its largest move since.
#
#   benchmarks/soak.sh [MINUTES [zpage-soak flags...]]     MINUTES: default 30, fractional allowed
#
# Environment:
#   BUILD_DIR        build directory (default build/release: the release preset; any other is
#                    configured as a Release build with warnings as errors)
#   MEMCACHED_MIB    the server's -m (default 32)
#   CLIENT_THREADS   client threads, each with its own connection and keys (default 4)
#   REPORT_SECONDS   seconds between progress lines (default 30)
#   MAX_RSS_DRIFT_PERCENT  when set, an RSS drift beyond it fails either part
#
# Exit status: 0 when both parts finished with 0 failures (and the server stopped cleanly); 1
# otherwise; 2 for bad use or a missing prerequisite; 130 when interrupted (Ctrl-C). The server,
# the soak and their files (under /var/tmp) are cleaned up on every exit.
# shellcheck disable=SC2317  # stop_process and cleanup run from the EXIT trap, which shellcheck does not follow
set -euo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in -h | --help) usage; exit 0 ;; esac

minutes=${1:-30}
[[ $# -gt 0 ]] && shift
if ! [[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]] || [[ $minutes =~ ^0+([.]0*)?$ ]]; then
    echo "soak.sh: MINUTES must be a positive number, not '$minutes'" >&2
    exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build/release}
MEMCACHED_MIB=${MEMCACHED_MIB:-32}
CLIENT_THREADS=${CLIENT_THREADS:-4}
REPORT_SECONDS=${REPORT_SECONDS:-30}
python=/usr/bin/python3  # Debian's, which has python3-pymemcache (a pyenv or venv python may not)

if ! "$python" -c 'import pymemcache' 2>/dev/null; then
    echo "soak.sh: the client load needs Debian's python3 with pymemcache: sudo apt-get install python3 python3-pymemcache" >&2
    exit 2
fi

# ---- build (a no-op when up to date) ---------------------------------------------------------------
cd "$root"
if [[ $BUILD_DIR == build/release ]]; then
    [[ -f build/release/CMakeCache.txt ]] || cmake --preset release
    cmake --build --preset release --parallel "$(nproc)" --target zpage-soak zpage-memcached
else
    [[ -f $BUILD_DIR/CMakeCache.txt ]] ||
        cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DZPAGE_WARNINGS_AS_ERRORS=ON
    cmake --build "$BUILD_DIR" --parallel "$(nproc)" --target zpage-soak zpage-memcached
fi
soak_bin=$BUILD_DIR/benchmarks/zpage-soak
server_bin=$BUILD_DIR/examples/zpage-memcached

# ---- clean-up on every exit ---------------------------------------------------------------------------
work=$(mktemp -d /var/tmp/zpage-soak.XXXXXX)
server_pid='' soak_pid='' client_pid='' follower_pids=()

# Ends one of our processes: SIGTERM, then SIGKILL if it is still there after `patience` seconds
# (zpage-soak verifies and writes its summary after SIGTERM, which takes a few seconds).
stop_process() {
    local pid=$1 patience=$2 i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < patience * 10; ++i)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    stop_process "$client_pid" 10
    stop_process "$soak_pid" 120
    stop_process "$server_pid" 10
    for pid in "${follower_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "soak.sh: interrupted; stopping"; exit 130' INT TERM

# Shows a log as it grows, each line tagged, until its writer exits.
follow() {
    local tag=$1 file=$2 pid=$3
    tail -n +1 -F --pid="$pid" "$file" 2>/dev/null | sed -u "s/^/[$tag] /" &
    follower_pids+=($!)
}

# ---- the verifying memcached client -------------------------------------------------------------------
cat >"$work/client.py" <<'PY'
"""A verifying client load for zpage-memcached (run by benchmarks/soak.sh).

Each thread owns its keys and keeps what each may hold: the versions a get may return (one after a
successful set; none after a delete; the old and the new after a set that failed). Every value
carries its own proof, a header (magic, version, body length, BLAKE2b-128 of key, version and
body), so a hit is checked byte for byte and must be a version the model allows; a miss is fine
(the cache evicts). Failures: wrong bytes, a version not allowed (stale or resurrected), a
protocol or connection error, the server gone. Refusals (SERVER_ERROR out of memory) are counted
apart. The server's RSS is read from /proc/PID/statm every second.
"""
import argparse
import hashlib
import os
import random
import struct
import sys
import threading
import time

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheServerError

HOST = "127.0.0.1"
HEADER = struct.Struct("<4sQI16s")
MAGIC = b"ZSK1"


def digest(key, version, body):
    return hashlib.blake2b(key + struct.pack("<Q", version) + body, digest_size=16).digest()


def make_value(key, version, body):
    return HEADER.pack(MAGIC, version, len(body), digest(key, version, body)) + body


def check_value(key, value):
    """(version, None) for a whole value of this key, else (None, why)."""
    if len(value) < HEADER.size:
        return None, "%d bytes, shorter than the header" % len(value)
    magic, version, length, sum_ = HEADER.unpack_from(value)
    body = value[HEADER.size:]
    if magic != MAGIC:
        return None, "bad magic %r" % magic
    if length != len(body):
        return None, "body of %d bytes, the header says %d" % (len(body), length)
    if sum_ != digest(key, version, body):
        return None, "checksum mismatch (version %d, %d bytes)" % (version, len(body))
    return version, None


def make_bodies(seed):
    """Bodies by size class: mostly text-like (compressible), some random (incompressible)."""
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10))) for _ in range(800)]

    def body(n):
        if rng.random() < 0.15:
            return rng.randbytes(n)
        return b" ".join(rng.choices(words, k=n // 4 + 1))[:n]

    # (share of sets, bodies): 64 B-2 KiB, 2-16 KiB, 16-128 KiB, 128-900 KiB (under -I 1m)
    classes = [(0.75, 64, 2048, 256), (0.20, 2048, 16384, 64), (0.045, 16384, 131072, 24), (0.005, 131072, 921600, 6)]
    return [(share, [body(rng.randint(lo, hi)) for _ in range(count)]) for share, lo, hi, count in classes]


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = self.sets = self.gets = self.hits = self.misses = self.deletes = 0
        self.failures = self.refused = self.printed = 0

    def fail(self, msg):
        with self.lock:
            self.failures += 1
            self.printed += 1
            show = self.printed <= 20
        if show:
            print("FAILURE: " + msg, flush=True)


class Worker(threading.Thread):
    def __init__(self, tid, args, bodies, counters, stop):
        super().__init__(name="client-%d" % tid, daemon=True)
        self.tid, self.args, self.bodies, self.counters, self.stop = tid, args, bodies, counters, stop
        self.rng = random.Random(args.seed * 7919 + tid)
        self.keys = [b"soak:%d:%d" % (tid, k) for k in range(args.keys)]
        self.allowed = [set() for _ in range(args.keys)]  # versions a hit may hold
        self.version = 0
        self.op, self.ops = "starting", 0
        self.hot_base, self.hot_len = 0, max(1, args.keys // 10)
        self.client = self.connect()

    def connect(self):
        return Client((HOST, self.args.port), connect_timeout=5, timeout=10, no_delay=True, default_noreply=False)

    def pick(self):
        # Four picks in five from a hot tenth of the keys that moves on a key every 16 operations.
        if self.ops % 16 == 0:
            self.hot_base = (self.hot_base + 1) % len(self.keys)
        if self.rng.random() < 0.8:
            return (self.hot_base + self.rng.randrange(self.hot_len)) % len(self.keys)
        return self.rng.randrange(len(self.keys))

    def body(self):
        r = self.rng.random()
        for share, pool in self.bodies:
            if r < share:
                return self.rng.choice(pool)
            r -= share
        return self.rng.choice(self.bodies[0][1])

    def check_hit(self, k, value, when):
        version, why = check_value(self.keys[k], value)
        if why is not None:
            self.counters.fail("%s get of %s: %s" % (when, self.keys[k].decode(), why))
        elif version not in self.allowed[k]:
            self.counters.fail("%s get of %s returned version %d; allowed: %s" % (
                when, self.keys[k].decode(), version, sorted(self.allowed[k]) or "none (deleted or never set)"))

    def error(self, what, e):
        self.counters.fail("%s: %s: %s" % (what, type(e).__name__, e))
        try:
            self.client.close()  # pymemcache connects again at the next call
        except Exception:
            pass

    def one(self):
        dice = self.rng.random()
        k = self.pick()
        key = self.keys[k]
        c = self.counters
        if dice < 0.35:
            self.version += 1
            v = self.version
            self.op = "set %s" % key.decode()
            try:
                ok = self.client.set(key, make_value(key, v, self.body()))
            except MemcacheServerError as e:
                if "out of memory" in str(e):
                    with c.lock:
                        c.refused += 1
                    self.allowed[k].add(v)  # the old value may be gone or kept; the new one may not be there
                    return
                self.allowed[k].add(v)
                self.error("set of %s" % key.decode(), e)
                return
            except Exception as e:
                self.allowed[k].add(v)
                self.error("set of %s" % key.decode(), e)
                return
            if ok:
                self.allowed[k] = {v}
            else:
                self.allowed[k].add(v)
                c.fail("set of %s was not stored" % key.decode())
            with c.lock:
                c.sets += 1
        elif dice < 0.90:
            self.op = "get %s" % key.decode()
            try:
                value = self.client.get(key)
            except Exception as e:
                self.error("get of %s" % key.decode(), e)
                return
            with c.lock:
                c.gets += 1
                if value is None:
                    c.misses += 1
                else:
                    c.hits += 1
            if value is not None:
                self.check_hit(k, value, "a")
        elif dice < 0.95:
            ks = sorted({self.pick() for _ in range(8)})
            self.op = "get_many of %d keys" % len(ks)
            try:
                got = self.client.get_many([self.keys[i] for i in ks])
            except Exception as e:
                self.error("get_many", e)
                return
            with c.lock:
                c.gets += len(ks)
                c.hits += len(got)
                c.misses += len(ks) - len(got)
            for i in ks:
                if self.keys[i] in got:
                    self.check_hit(i, got[self.keys[i]], "a multi-key")
            extra = set(got) - {self.keys[i] for i in ks}
            if extra:
                c.fail("get_many returned keys not asked for: %s" % sorted(extra)[:4])
        else:
            self.op = "delete %s" % key.decode()
            try:
                self.client.delete(key)
            except Exception as e:
                self.error("delete of %s" % key.decode(), e)
                return
            self.allowed[k] = set()
            with c.lock:
                c.deletes += 1

    def run(self):
        while not self.stop.is_set():
            self.one()
            self.ops += 1
            with self.counters.lock:
                self.counters.ops += 1
        self.op = "final verification"
        # Every key once more, in batches: each hit verified against the model.
        for first in range(0, len(self.keys), 100):
            ks = list(range(first, min(first + 100, len(self.keys))))
            try:
                got = self.client.get_many([self.keys[i] for i in ks])
            except Exception as e:
                self.error("final get_many", e)
                continue
            for i in ks:
                if self.keys[i] in got:
                    self.check_hit(i, got[self.keys[i]], "the final")
            self.ops += 1
        self.op = None


def statm_rss(pid):
    try:
        with open("/proc/%d/statm" % pid) as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--keys", type=int, default=20000, help="keys per thread")
    ap.add_argument("--report-seconds", type=float, default=30)
    ap.add_argument("--stall-seconds", type=float, default=30)
    ap.add_argument("--warmup-percent", type=float, default=20)
    ap.add_argument("--max-rss-drift-percent", type=float)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    counters = Counters()
    stop = threading.Event()
    bodies = make_bodies(args.seed)
    workers = [Worker(t, args, bodies, counters, stop) for t in range(args.threads)]
    stats_client = Client((HOST, args.port), connect_timeout=5, timeout=10)
    mib = float(1 << 20)
    print("client: %d threads, %d keys each, against 127.0.0.1:%d (server pid %d) for %.1f min" % (
        args.threads, args.keys, args.port, args.server_pid, args.minutes), flush=True)

    # The watchdog: no operation finished for stall_seconds is a hang; say where each thread was.
    def watchdog():
        last, since = -1, time.monotonic()
        while True:
            time.sleep(0.5)
            total = sum(w.ops for w in workers)
            if total != last or all(w.op is None for w in workers):
                last, since = total, time.monotonic()
            elif time.monotonic() - since >= args.stall_seconds:
                print("WATCHDOG: no client operation finished for %.0f s; where each thread is:" % args.stall_seconds)
                for w in workers:
                    print("  %s: %d ops, in %s" % (w.name, w.ops, w.op or "nothing (finished)"))
                print("  server pid %d %s" % (args.server_pid,
                      "is alive" if statm_rss(args.server_pid) is not None else "is gone"), flush=True)
                os._exit(3)
    threading.Thread(target=watchdog, name="watchdog", daemon=True).start()

    start = time.monotonic()
    duration = args.minutes * 60
    for w in workers:
        w.start()
    samples = []  # (seconds, server RSS)
    first_eviction = None
    next_report = args.report_seconds
    server_gone = False
    while True:
        now = time.monotonic() - start
        if now >= duration:
            break
        rss = statm_rss(args.server_pid)
        if rss is None:
            counters.fail("the server (pid %d) is gone at %.1f s" % (args.server_pid, now))
            server_gone = True
            break
        samples.append((now, rss))
        if now >= next_report or first_eviction is None:
            try:
                st = stats_client.stats()
            except Exception as e:
                counters.fail("stats: %s: %s" % (type(e).__name__, e))
                st = {}
            evictions = int(st.get(b"evictions", 0))
            if first_eviction is None and evictions > 0:
                first_eviction = now
            if now >= next_report:
                next_report += args.report_seconds
                with counters.lock:
                    c = counters
                    line = ("[%7.1fs] ops %d (sets %d, gets %d: %.0f%% hits, deletes %d) | failures %d, refused %d"
                            % (now, c.ops, c.sets, c.gets, 100.0 * c.hits / max(1, c.gets), c.deletes, c.failures,
                               c.refused))
                print("%s | server RSS %.1f MiB, items %s, evictions %d, bytes %.1f MiB" % (
                    line, rss / mib, int(st.get(b"curr_items", 0)), evictions, int(st.get(b"bytes", 0)) / mib),
                    flush=True)
        time.sleep(1)
    ran = time.monotonic() - start
    stop.set()
    print("client: %.1f s done; verifying every key once more" % ran, flush=True)
    for w in workers:
        w.join()

    # Warm-up: warmup_percent of the run, and until the cache first evicted (it is full).
    warm_end = max(duration * args.warmup_percent / 100, first_eviction if first_eviction is not None else ran + 1)
    after = [(t, r) for t, r in samples if t >= warm_end]
    c = counters
    print("\nclient summary after %.1f s" % ran)
    print("  ops %d: sets %d, gets %d (hits %d, misses %d), deletes %d; failures %d, sets refused (out of memory) %d"
          % (c.ops, c.sets, c.gets, c.hits, c.misses, c.deletes, c.failures, c.refused))
    drift_ok = True
    warm_text = drift_text = "-"
    peak = max((r for _, r in samples), default=0)
    if after and not server_gone:
        base = after[0][1]
        lo, hi = min(r for _, r in after), max(r for _, r in after)
        up, down = (hi - base) / base * 100, (lo - base) / base * 100
        drift = up if up >= -down else down
        warm_text, drift_text = "%.1f" % (base / mib), "%+.2f" % drift
        print("  server RSS: after warm-up (%.0f s) %.1f MiB; since then %.1f .. %.1f MiB, at the end %.1f MiB: "
              "max drift %+.2f%%; peak %.1f MiB" % (after[0][0], base / mib, lo / mib, hi / mib, after[-1][1] / mib,
                                                    drift, peak / mib))
        if args.max_rss_drift_percent is not None and abs(drift) > args.max_rss_drift_percent:
            drift_ok = False
    else:
        print("  server RSS: the run ended before warm-up did (the cache full, %.0f%% of the run); peak %.1f MiB"
              % (args.warmup_percent, peak / mib))
        drift_ok = args.max_rss_drift_percent is None
    print("  failures: %d" % c.failures)
    print("RESULT part=zpage-memcached ops=%d failures=%d rss_after_warmup_mib=%s rss_max_drift_pct=%s seconds=%.1f"
          % (c.ops, c.failures, warm_text, drift_text, ran), flush=True)
    sys.exit(0 if c.failures == 0 and drift_ok else 1)


if __name__ == "__main__":
    main()
PY

# ---- the run --------------------------------------------------------------------------------------------
drift_flag=()
[[ -n ${MAX_RSS_DRIFT_PERCENT:-} ]] && drift_flag=(--max-rss-drift-percent "$MAX_RSS_DRIFT_PERCENT")

# -p 0: the server takes a free port and prints it (-v), so no other process can take it between.
"$server_bin" -p 0 -l 127.0.0.1 -m "$MEMCACHED_MIB" -v 2>"$work/server.log" &
server_pid=$!
port=''
for ((i = 0; i < 100; ++i)); do
    port=$(sed -n 's/.*listening on port \([0-9][0-9]*\).*/\1/p' "$work/server.log")
    [[ -n $port ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "soak.sh: zpage-memcached did not start:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
[[ -n $port ]] || { echo "soak.sh: zpage-memcached printed no port in 10 s" >&2; exit 1; }
echo "soak.sh: $minutes min; zpage-memcached -m $MEMCACHED_MIB on 127.0.0.1:$port (pid $server_pid); logs in $work"

"$python" "$work/client.py" --port "$port" --server-pid "$server_pid" --minutes "$minutes" \
    --threads "$CLIENT_THREADS" --report-seconds "$REPORT_SECONDS" "${drift_flag[@]}" >"$work/memcached.log" 2>&1 &
client_pid=$!
"$soak_bin" --minutes "$minutes" --backing "$work/soak.backing" --report-seconds "$REPORT_SECONDS" \
    "${drift_flag[@]}" "$@" >"$work/soak.log" 2>&1 &
soak_pid=$!
follow memcached "$work/memcached.log" "$client_pid"
follow soak "$work/soak.log" "$soak_pid"

soak_rc=0 client_rc=0
wait "$soak_pid" || soak_rc=$?
soak_pid=''
wait "$client_pid" || client_rc=$?
client_pid=''

# The server must still be there, and stop cleanly (exit status 0 after SIGTERM).
server_rc=0
if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid" || server_rc=$?
    echo "soak.sh: zpage-memcached exited during the run (status $server_rc)"
    if [[ $server_rc == 0 ]]; then server_rc=1; fi  # it must run until told to stop
else
    kill -TERM "$server_pid"
    wait "$server_pid" || server_rc=$?
fi
server_pid=''
for pid in "${follower_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
follower_pids=()

# ---- the summary ------------------------------------------------------------------------------------------
field() { sed -n "s/^RESULT .*$2=\([^ ]*\).*/\1/p" "$1" | tail -n 1; }
echo
echo "soak.sh summary: $minutes min"
printf '  %-16s %12s %9s %19s %15s %5s\n' part ops failures 'RSS after warm-up' 'max RSS drift' exit
status=0
for part in soak memcached; do
    log=$work/$part.log rc=$soak_rc name=zpage-soak
    [[ $part == memcached ]] && rc=$client_rc name=zpage-memcached
    ops=$(field "$log" ops) failures=$(field "$log" failures)
    warm=$(field "$log" rss_after_warmup_mib) drift=$(field "$log" rss_max_drift_pct)
    printf '  %-16s %12s %9s %15s MiB %14s%% %5s\n' "$name" "${ops:-?}" "${failures:-?}" "${warm:-?}" "${drift:-?}" "$rc"
    [[ $rc == 0 && ${failures:-x} == 0 ]] || status=1
done
if [[ $server_rc != 0 ]]; then
    echo "  zpage-memcached stopped with status $server_rc (its log: last lines below)"
    tail -n 20 "$work/server.log" | sed 's/^/    /'
    status=1
fi
echo "soak.sh: $([[ $status == 0 ]] && echo PASS || echo FAIL)"
exit "$status"
