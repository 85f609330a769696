#!/usr/bin/python3
"""zpage-memcached beside Debian's memcached: capacity, hit ratio, throughput and p99 latency.

Both servers run on 127.0.0.1 at the same memory limit (-m, default 64 MiB), each started fresh
for every measurement and killed on every exit path (SIGINT/SIGTERM/SIGHUP, exceptions, and
PR_SET_PDEATHSIG should this script itself be killed).

Usage (Debian's /usr/bin/python3; the per-value compression ratios need python3-lz4 and
python3-zstandard, else they print n/a; the client is the script's own, no pymemcache):

    benchmarks/memcached_compare.py                       # all parts, lz4 and zstd-1, ~6 minutes
    benchmarks/memcached_compare.py --parts capacity --codecs lz4,zstd-1,lz4hc-9
    benchmarks/memcached_compare.py --zpage-is-memcached  # rehearsal: memcached in both roles

Parts (one table each, servers side by side, then a block with every target and whether it holds):

 1. capacity   Set --fill-factor x (memory / mean value size) items "k:<n>" (159k at -m 64), values
               cut from text files under /usr/share and /usr/include (see "Values"), then get every
               key back in multi-gets of 50 and compare each value and its 32-bit flags byte for byte
               with what was set. Items held, their raw bytes, the server's own stats, and
               zpage/memcached items held. Targets: >= 2.3x with lz4, >= 3.2x with zstd-1. Also the
               per-value compression ratio of each codec on these values (python3-lz4 and
               python3-zstandard): sum(raw) / sum(min(compressed, raw)) over every value set.
 2. hitratio   Read-through replay (get; on a miss, set) of a Zipf(alpha = 0.99) request sequence,
               seeded and the same for every server, over --keyspace-factor x (memory / mean value
               size) keys "h:<n>" (63.5k at -m 64, about 4x what memcached holds). Hits are counted
               after --warmup requests; every hit is checked byte for byte. Target: zpage > memcached.
 3. throughput Ops/s and latency at a fixed concurrency, get:set 9:1, for --seconds per run; medians
               of --runs runs, servers interleaved run by run, each started fresh. Target: ops/s >= 0.5x
               memcached. Two load generators (--loadgen; auto: memaslap when every server stores
               memaslap's keys, if need be with --memcached-keys, else python for every server):
               memaslap   memcaslap from libmemcached-tools, -T 2 -c 16 -w 1k, keys 16 B, values
                          uniform 256 B - 8 KiB of random alphanumerics (they compress little: the
                          codec's worst-ish case). ops/s is its "Run time: ... TPS"; p99 comes from
                          its final "Total Statistics" Log2 Dist histogram, where bucket i counts
                          latencies in (2^(i-1), 2^i] us: the 99th percentile is interpolated
                          geometrically inside the bucket that holds it (so it is exact only to within
                          that bucket's factor of 2; the bucket is printed). memaslap counts error
                          replies as operations, so a run in which the server's own cmd_get + cmd_set
                          fall short of memaslap's by over 5% is void. Its keys begin with 8 binary
                          bytes (0x10-0xff: never space, CR, LF, NUL), which memcached stores and
                          protocol.txt forbids: zpage-memcached refuses them by default, so part 3
                          runs it with --memcached-keys when its --help lists that flag (said in the
                          output); a server that still refuses them cannot be measured by memaslap.
               python     this script's own: --concurrency forked processes, one blocking connection
                          each, on --tp-keys-factor x (memory / mean value size) keys (7.9k, 32 MiB
                          raw at -m 64: both servers hold them all), preloaded, uniform key choice, the
                          text values of parts 1-2; every op timed (monotonic clock, send to full
                          reply), so p50/p99/p99.9 are exact; every hit is checked byte for byte. Its
                          clients are python, so they, not the servers, use most of the 2 cores:
                          ops/s is about half what memaslap drives, and the ratio is that of servers
                          sharing the machine with a heavy client, not what a C client would see.
               The 1-minute load average is printed before and after: other work on the machine
               moves these figures (not those of parts 1-2).

Values: sizes uniform in [--value-min, --value-max] = [256, 8192] B (mean 4224 B; --value-dist
loguniform for a log-uniform draw), each at a uniformly random offset in a corpus of up to
--corpus-mib (64) MiB: text files (no NUL byte; compressed and image extensions skipped) from
--corpus-roots (/usr/share/doc, /usr/share/common-licenses, /usr/share/perl*, /usr/include: about
78% of the bytes come from /usr/include), in a seeded random order, joined by newlines.
Everything derives from --seed, so two runs on one machine set the same bytes.

Reading the capacity figures: at -m 64 memcached has only 64 slab pages of 1 MiB, and every slab
class that sees an item keeps at least one, so its small classes (values up to ~1.8 KB, 5% of the
bytes set) hold 8 pages and about half of the items it keeps: the items it holds average 2.9 KB
against 4.2 KB set. zpage-memcached's default policy, s3fifo-size, also keeps small items longer
(it holds about 3.0 KB per item here); with --eviction s3fifo, which is size-neutral, the items it
holds average 4.2 KB, so "items held / memcached" comes out below "raw bytes held / memcached".

Servers: memcached -u root -p PORT -l 127.0.0.1 -m MiB -c 4096 -t T
         zpage-memcached -p PORT -l 127.0.0.1 -m MiB -c 4096 -t T --codec C --eviction E
(-u root only when run as root; a zpage column per codec C and policy E: --eviction
s3fifo-size,s3fifo compares two). --zpage-is-memcached runs --memcached in the zpage columns
instead (the codec is then only a label): memcached against itself, all ratios should be ~1.0.

Exit status: 0 when every measurement ran (whether or not the targets hold); 1 when a value came
back wrong, a reply broke the protocol or a server died; 2 on a setup error (missing binary...).
"""

import argparse
import array
import bisect
import collections
import ctypes
import itertools
import math
import os
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20
DEFAULT_ZPAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "build", "release",
                             "examples", "zpage-memcached")
CORPUS_ROOTS = "/usr/share/doc,/usr/share/common-licenses,/usr/share/perl,/usr/share/perl5,/usr/include"
SKIP_EXT = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".zip", ".jar", ".png", ".gif", ".jpg", ".jpeg",
            ".ico", ".svgz", ".pdf", ".woff", ".woff2", ".ttf", ".otf", ".mo", ".pyc", ".so", ".a", ".o")
TARGET_CAPACITY = {"lz4": 2.3, "zstd-1": 3.2}
TARGET_THROUGHPUT = 0.5
ZIPF_ALPHA_DEFAULT = 0.99


class SetupError(Exception):
    """A problem with the environment: exit 2."""


class ServerError(Exception):
    """A server died, would not start, or broke the protocol: exit 1."""


class ProtocolError(ServerError):
    pass


def log(msg=""):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes: everything this script starts is in _live and is killed on the way out.

_live = []
_live_workers = []  # the python load generator's processes


def _child_setup():
    # Die with this script even if it is SIGKILLed (PR_SET_PDEATHSIG = 1).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def spawn(argv, **kw):
    p = subprocess.Popen(argv, preexec_fn=_child_setup, **kw)
    _live.append(p)
    return p


def stop(p):
    try:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    finally:
        if p in _live:
            _live.remove(p)


def stop_all():
    for w in list(_live_workers):
        try:
            if w.is_alive():
                w.kill()
            w.join(2)
        except Exception:
            pass
    for p in list(_live):
        try:
            stop(p)
        except Exception:
            pass


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------------------------
# Servers


class ServerSpec:
    """One column: memcached, or zpage-memcached with one codec."""

    def __init__(self, label, binary, is_memcached, codec=None, eviction=None, extra=()):
        self.label, self.binary, self.is_memcached = label, binary, is_memcached
        self.codec, self.eviction, self.extra = codec, eviction, list(extra)

    def with_extra(self, extra):
        return ServerSpec(self.label, self.binary, self.is_memcached, self.codec, self.eviction,
                          self.extra + list(extra))

    def argv(self, port, args):
        common = ["-p", str(port), "-l", "127.0.0.1", "-m", str(args.memory), "-c", "4096", "-t",
                  str(args.threads)]
        if self.is_memcached:
            return [self.binary] + (["-u", "root"] if os.geteuid() == 0 else []) + common + self.extra
        return [self.binary] + common + ["--codec", self.codec, "--eviction", self.eviction] + self.extra


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running server (context manager): started on a free port, stopped on exit."""

    def __init__(self, spec, args, logdir):
        self.spec, self.args, self.logdir = spec, args, logdir
        self.proc = None
        self.port = None
        self.logpath = None
        self.version = None

    def log_tail(self, n=25):
        try:
            with open(self.logpath, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join("    | " + l for l in lines[-n:]) or "    | (empty)"
        except OSError:
            return "    | (no log)"

    def __enter__(self):
        for attempt in range(3):
            self.port = free_port()
            argv = self.spec.argv(self.port, self.args)
            self.logpath = os.path.join(self.logdir, "%s-%d.log" % (re.sub(r"\W+", "_", self.spec.label), self.port))
            with open(self.logpath, "wb") as logf:
                self.proc = spawn(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=1)
                except (ConnectionRefusedError, socket.timeout, ConnectionResetError):
                    time.sleep(0.05)
                    continue
                with s:  # up; its answer to "version" is only informative
                    try:
                        s.settimeout(2)
                        s.sendall(b"version\r\n")
                        self.version = s.recv(256).decode("utf-8", "replace").strip()
                    except OSError:
                        pass
                return self
            rc = self.proc.poll()
            stop(self.proc)
            if rc is not None and "in use" in self.log_tail() and attempt < 2:
                continue  # lost the port race; try another
            raise ServerError("%s did not come up (%s): %s\n%s" % (
                self.spec.label, "exit code %s" % rc if rc is not None else "no answer in 15 s",
                " ".join(argv), self.log_tail()))
        raise AssertionError("unreachable")

    def check_alive(self):
        rc = self.proc.poll()
        if rc is not None:
            raise ServerError("%s exited (%s) during the run; its output:\n%s" % (
                self.spec.label, "signal %d" % -rc if rc < 0 else "code %d" % rc, self.log_tail()))

    def __exit__(self, etype, evalue, tb):
        rc = self.proc.poll()
        if rc is None and etype is not None and issubclass(etype, (OSError, ProtocolError)):
            time.sleep(0.2)  # a reset connection: did the server just die?
            rc = self.proc.poll()
        stop(self.proc)
        if rc is not None and (etype is None or issubclass(etype, (OSError, ProtocolError))):
            raise ServerError("%s exited (%s)%s; its output:\n%s" % (
                self.spec.label, "signal %d" % -rc if rc < 0 else "code %d" % rc,
                ", the client saw: %s" % evalue if evalue else " before it was stopped", self.log_tail())) from evalue
        return False


# ---------------------------------------------------------------------------------------------
# A minimal memcached text-protocol client (pipelined sets, multi-gets, stats).


class Client:
    def __init__(self, port, timeout=60):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rf = self.sock.makefile("rb", buffering=1 << 16)

    def close(self):
        try:
            self.rf.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def line(self):
        l = self.rf.readline(65536)
        if not l:
            raise ProtocolError("the server closed the connection")
        if not l.endswith(b"\r\n"):
            raise ProtocolError("reply line not ended by CRLF: %r" % l[:200])
        return l[:-2]

    def set_batch(self, items):
        """items: (key, flags, value) triples, sent in one write; returns the reply lines."""
        parts = []
        for key, flags, value in items:
            parts += (b"set %s %d 0 %d\r\n" % (key, flags, len(value)), value, b"\r\n")
        self.sock.sendall(b"".join(parts))
        return [self.line() for _ in items]

    def set(self, key, flags, value):
        return self.set_batch([(key, flags, value)])[0]

    def _read_values(self, out):
        while True:
            l = self.line()
            if l == b"END":
                return out
            f = l.split(b" ")
            if len(f) < 4 or f[0] != b"VALUE":
                raise ProtocolError("unexpected reply to get: %r" % l[:200])
            key, flags, n = f[1], int(f[2]), int(f[3])
            data = self.rf.read(n + 2)
            if len(data) != n + 2 or data[-2:] != b"\r\n":
                raise ProtocolError("bad data block for %r (%d bytes announced)" % (key, n))
            if key in out:
                raise ProtocolError("key %r returned twice in one get" % key)
            out[key] = (flags, data[:-2])

    def get_multi(self, keys):
        self.sock.sendall(b"get " + b" ".join(keys) + b"\r\n")
        return self._read_values({})

    def get(self, key):
        self.sock.sendall(b"get %s\r\n" % key)
        got = self._read_values({})
        if len(got) > 1 or (got and key not in got):
            raise ProtocolError("get %r returned other keys: %r" % (key, list(got)[:3]))
        return got.get(key)

    def stats(self):
        self.sock.sendall(b"stats\r\n")
        st = {}
        while True:
            l = self.line()
            if l == b"END":
                return st
            if not st and l.split(b" ")[0] in (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR"):
                return {"(stats refused)": l.decode("utf-8", "replace")}
            f = l.decode("utf-8", "replace").split(" ", 2)
            if len(f) != 3 or f[0] != "STAT":
                raise ProtocolError("unexpected reply to stats: %r" % l[:200])
            st[f[1]] = f[2]


def stat_int(st, name):
    try:
        return int(st[name])
    except (KeyError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# Corpus and values


def load_corpus(seed, cap_bytes, roots):
    files = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in sorted(filenames):
                p = os.path.join(dirpath, fn)
                if fn.lower().endswith(SKIP_EXT) or os.path.islink(p) or not os.path.isfile(p):
                    continue
                files.append(p)
    if not files:
        raise SetupError("no files under %s" % ", ".join(roots))
    random.Random("%s:corpus" % seed).shuffle(files)
    chunks, total, binary = [], 0, 0
    per_root = collections.Counter()
    for p in files:
        if total >= cap_bytes:
            break
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError:
            continue
        if not data:
            continue
        if b"\0" in data:
            binary += 1
            continue
        chunks.append(data)
        total += len(data) + 1
        per_root[next((r for r in roots if p.startswith(r.rstrip("/") + "/")), "?")] += len(data)
    corpus = b"\n".join(chunks)[:cap_bytes]
    if len(corpus) < 64 * 1024:
        raise SetupError("the text corpus is only %d bytes" % len(corpus))
    info = "%.1f MiB from %d text files (%s), %d files with NUL bytes skipped" % (
        len(corpus) / MiB, len(chunks),
        ", ".join("%s %.0f%%" % (r, 100.0 * b / max(1, sum(per_root.values()))) for r, b in sorted(per_root.items())),
        binary)
    return corpus, info


def mean_value_size(args):
    lo, hi = args.value_min, args.value_max
    if args.value_dist == "uniform" or lo == hi:
        return (lo + hi) / 2.0
    return (hi - lo) / math.log(hi / lo)


class ValueSet:
    """n values: value(i) is a slice of the corpus, flags(i) a 32-bit number, both from the seed."""

    def __init__(self, corpus, n, args, tag):
        if args.value_max >= len(corpus):
            raise SetupError("--value-max %d is not below the corpus size %d" % (args.value_max, len(corpus)))
        rng = random.Random("%s:%s" % (args.seed, tag))
        self.mv = memoryview(corpus)
        self.off = array.array("Q")
        self.size = array.array("I")
        lo, hi = args.value_min, args.value_max
        llo, lhi = math.log(lo), math.log(hi)
        for _ in range(n):
            if args.value_dist == "uniform":
                s = rng.randint(lo, hi)
            else:
                s = min(hi, max(lo, int(round(math.exp(rng.uniform(llo, lhi))))))
            self.size.append(s)
            self.off.append(rng.randrange(len(corpus) - s))
        self.salt = rng.getrandbits(32)
        self.n = n

    def value(self, i):
        o = self.off[i]
        return self.mv[o:o + self.size[i]]

    def flags(self, i):
        return (i * 2654435761 + self.salt) & 0xFFFFFFFF


def codec_compressor(codec):
    """A function bytes -> compressed length for a --codecs name, or None (module missing)."""
    m = re.fullmatch(r"lz4|identity|none|zstd-(-?\d+)|lz4hc-(\d+)|lz4-(\d+)", codec)
    if not m:
        return None
    if codec in ("identity", "none"):
        return len
    try:
        if codec.startswith("zstd"):
            import zstandard
            cctx = zstandard.ZstdCompressor(level=int(m.group(1)), write_content_size=False,
                                            write_checksum=False, write_dict_id=False)
            return lambda v: len(cctx.compress(v))
        import lz4.block
        if codec == "lz4":
            return lambda v: len(lz4.block.compress(v, store_size=False))
        if m.group(3):
            acc = int(m.group(3))
            return lambda v: len(lz4.block.compress(v, mode="fast", acceleration=acc, store_size=False))
        level = int(m.group(2))
        return lambda v: len(lz4.block.compress(v, mode="high_compression", compression=level,
                                                store_size=False))
    except ImportError:
        return None


def per_value_ratio(vs, codec):
    comp = codec_compressor(codec)
    if comp is None:
        return None
    raw = packed = 0
    each = 0.0
    for i in range(vs.n):
        v = vs.value(i)
        c = min(len(v), comp(v))
        raw += len(v)
        packed += c
        each += len(v) / c
    return raw / packed, each / vs.n


# ---------------------------------------------------------------------------------------------
# Tables


def fmt(v, spec=None):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if spec:
        return format(v, spec)
    if isinstance(v, float):
        return "%.3f" % v
    return "{:,}".format(v)


def table(title, columns, rows):
    """rows: (label, [value per column]) with values already strings."""
    w0 = max(len(r[0]) for r in rows + [("", None)])
    ws = [max([len(c)] + [len(r[1][i]) for r in rows]) for i, c in enumerate(columns)]
    log()
    log(title)
    log("  " + " " * w0 + "".join("  " + c.rjust(w) for c, w in zip(columns, ws)))
    for label, vals in rows:
        log("  " + label.ljust(w0) + "".join("  " + v.rjust(w) for v, w in zip(vals, ws)))


def ratio(a, b):
    return a / b if (a is not None and b) else None


# ---------------------------------------------------------------------------------------------
# Part 1: capacity

STAT_NAMES = ["curr_items", "total_items", "bytes", "limit_maxbytes", "evictions"]


def capacity_one(spec, args, logdir, vs):
    r = {"errors": []}
    with Server(spec, args, logdir) as srv, Client(srv.port) as c:
        replies = collections.Counter()
        t0 = time.monotonic()
        for start in range(0, vs.n, 64):
            idx = range(start, min(vs.n, start + 64))
            for reply in c.set_batch([(b"k:%d" % i, vs.flags(i), vs.value(i)) for i in idx]):
                replies[reply.decode("utf-8", "replace")] += 1
        r["fill_s"] = time.monotonic() - t0
        srv.check_alive()
        r["stats_filled"] = c.stats()
        held = held_bytes = mismatches = 0
        t0 = time.monotonic()
        for start in range(0, vs.n, args.get_batch):
            idx = range(start, min(vs.n, start + args.get_batch))
            keys = [b"k:%d" % i for i in idx]
            got = c.get_multi(keys)
            for i, k in zip(idx, keys):
                hit = got.pop(k, None)
                if hit is None:
                    continue
                flags, data = hit
                if data != vs.value(i) or flags != vs.flags(i):
                    mismatches += 1
                    if len(r["errors"]) < 5:
                        r["errors"].append("%s: %s came back %s (%d B, flags %d; set %d B, flags %d)" % (
                            spec.label, k.decode(), "with other bytes" if data != vs.value(i) else "with other flags",
                            len(data), flags, vs.size[i], vs.flags(i)))
                else:
                    held += 1
                    held_bytes += len(data)
            if got:
                raise ProtocolError("%s: get returned keys not asked for: %r" % (spec.label, list(got)[:3]))
        r["verify_s"] = time.monotonic() - t0
        r["stats"] = c.stats()
        srv.check_alive()
    r.update(held=held, held_bytes=held_bytes, mismatches=mismatches, replies=replies)
    bad = {k: v for k, v in replies.items() if k != "STORED" and not k.startswith("SERVER_ERROR")}
    if bad:
        r["errors"].append("%s: set replies other than STORED / SERVER_ERROR: %r" % (spec.label, bad))
    if mismatches:
        r["errors"].append("%s: %d values or flags came back different from what was set" % (spec.label, mismatches))
    return r


def part_capacity(args, corpus, specs, logdir, summary, failures, summary_notes):
    mean = mean_value_size(args)
    n = int(math.ceil(args.fill_factor * args.memory * MiB / mean))
    vs = ValueSet(corpus, n, args, "capacity")
    raw_total = sum(vs.size)
    log()
    log("== 1. capacity: %s items set (%.0f MiB raw, %.1fx the %d MiB limit), values %s %d-%d B (mean %.0f B), "
        "then every key read back and compared" % ("{:,}".format(n), raw_total / MiB, raw_total / (args.memory * MiB),
                                                   args.memory, args.value_dist, args.value_min, args.value_max,
                                                   raw_total / n))
    t0 = time.monotonic()
    pv = {}
    for spec in specs:
        if spec.codec and spec.codec not in pv:
            pv[spec.codec] = per_value_ratio(vs, spec.codec)
    log("   per-value compression of these values, python lz4/zstandard, sum raw / sum compressed (mean of the "
        "values' own ratios): %s (%.0f s)" % (", ".join("%s %s" % (k, "%.2fx (%.2fx)" % v if v else "n/a")
                                                      for k, v in pv.items()), time.monotonic() - t0))
    pv = {k: (v[0] if v else None) for k, v in pv.items()}
    results = {}
    for spec in specs:
        try:
            results[spec.label] = capacity_one(spec, args, logdir, vs)
            r = results[spec.label]
            log("   %-22s set %.1f s, read back %.1f s: %s items held" % (
                spec.label, r["fill_s"], r["verify_s"], "{:,}".format(r["held"])))
            failures.extend(r["errors"])
        except (ServerError, OSError) as e:
            failures.append("capacity, %s: %s" % (spec.label, e))
            log("   %-22s FAILED: %s" % (spec.label, e))
    mc = results.get(specs[0].label)
    cols = [s.label for s in specs]
    rows = []

    def row(label, f, spec_fmt=None):
        rows.append((label, [fmt(f(results[s.label], s) if s.label in results else None, spec_fmt) for s in specs]))

    row("items set", lambda r, s: n)
    row("set replies STORED", lambda r, s: r["replies"].get("STORED", 0))
    row("set replies other", lambda r, s: sum(v for k, v in r["replies"].items() if k != "STORED"))
    row("set rate (MB/s raw)", lambda r, s: raw_total / r["fill_s"] / 1e6, ".0f")
    row("items held (verified)", lambda r, s: r["held"])
    row("raw MiB held", lambda r, s: r["held_bytes"] / MiB, ".1f")
    row("mean size held (B)", lambda r, s: r["held_bytes"] / r["held"] if r["held"] else None, ".0f")
    row("raw bytes held / -m", lambda r, s: r["held_bytes"] / (args.memory * MiB), ".2f")
    row("values/flags mismatched", lambda r, s: r["mismatches"])
    for name in STAT_NAMES:
        if name in ("bytes", "limit_maxbytes"):
            row("stats %s (MiB)" % name,
                lambda r, s, name=name: None if stat_int(r["stats"], name) is None else stat_int(r["stats"], name) / MiB,
                ".1f")
        else:
            row("stats %s" % name, lambda r, s, name=name: stat_int(r["stats"], name))
    row("per-value codec ratio", lambda r, s: pv.get(s.codec) if s.codec else None, ".2f")
    row("items held / memcached", lambda r, s: ratio(r["held"], mc["held"]) if mc else None, ".2f")
    row("raw bytes held / memcached", lambda r, s: ratio(r["held_bytes"], mc["held_bytes"]) if mc else None, ".2f")
    table("capacity at -m %d (one run: deterministic apart from the servers' own background threads)" % args.memory,
          cols, rows)
    # stats a zpage server has that memcached does not (its compression figures, say)
    if mc:
        base = set(mc["stats"])
        for spec in specs[1:]:
            r = results.get(spec.label)
            if r:
                extra = {k: v for k, v in r["stats"].items() if k not in base}
                if extra:
                    log("  %s stats memcached lacks: %s" % (
                        spec.label, " ".join("%s=%s" % kv for kv in sorted(extra.items()))))
    notes = []
    for spec in specs:
        r = results.get(spec.label)
        if not r:
            continue
        ci = stat_int(r["stats"], "curr_items")
        if ci is not None and ci != r["held"]:
            notes.append("%s: stats curr_items %d, but %d items found by getting every key" % (
                spec.label, ci, r["held"]))
        ev = stat_int(r["stats"], "evictions")
        if r["held"] >= n:
            notes.append("%s held every item set: it was never full, its ratio is only a lower bound "
                         "(raise --fill-factor)"
                         % spec.label)
        elif ev == 0:
            notes.append("%s reports 0 evictions yet holds %d of %d items" % (spec.label, r["held"], n))
        lm = stat_int(r["stats"], "limit_maxbytes")
        if lm is not None and lm != args.memory * MiB:
            notes.append("%s: limit_maxbytes %d, not -m %d MiB = %d" % (spec.label, lm, args.memory, args.memory * MiB))
        b = stat_int(r["stats"], "bytes")
        if b is not None and lm and b > lm:
            notes.append("%s: stats bytes %d above limit_maxbytes %d" % (spec.label, b, lm))
    for note in notes:
        log("  note: " + note)
    for spec in specs[1:]:
        r = results.get(spec.label)
        t = TARGET_CAPACITY.get(spec.codec)
        if t is not None:
            got = ratio(r["held"], mc["held"]) if (r and mc) else None
            summary.append(("capacity, %s: items held zpage/memcached" % spec.label, ">= %.1fx" % t,
                            "%.2fx" % got if got is not None else "n/a",
                            got is not None and got >= t))
    if pv:
        summary_notes.append("(capacity targets assume per-value lz4 2.67x, zstd-1 3.74x; these values: %s)" %
                             ", ".join(
            "%s %s" % (k, "%.2fx" % v if v else "n/a") for k, v in pv.items()))
    return results


# ---------------------------------------------------------------------------------------------
# Part 2: hit ratio


def zipf_requests(k, count, alpha, seed):
    rng = random.Random("%s:zipf" % seed)
    cdf = list(itertools.accumulate(1.0 / (r ** alpha) for r in range(1, k + 1)))
    total = cdf[-1]
    perm = list(range(k))
    rng.shuffle(perm)  # rank -> key, so that the hot keys are spread over the key space
    return array.array("I", (perm[bisect.bisect_left(cdf, rng.random() * total)] for _ in range(count))), cdf


def hitratio_one(spec, args, logdir, vs, reqs):
    r = {"errors": []}
    warm = args.warmup
    hits = misses = set_fail = wrong = 0
    with Server(spec, args, logdir) as srv, Client(srv.port) as c:
        t0 = time.monotonic()
        for j, i in enumerate(reqs):
            key = b"h:%d" % i
            got = c.get(key)
            if got is None:
                if j >= warm:
                    misses += 1
                reply = c.set(key, vs.flags(i), vs.value(i))
                if reply != b"STORED":
                    set_fail += 1
                    if not reply.startswith(b"SERVER_ERROR") and len(r["errors"]) < 5:
                        r["errors"].append("%s: set %s answered %r" % (spec.label, key.decode(), reply[:100]))
            else:
                flags, data = got
                if data != vs.value(i) or flags != vs.flags(i):
                    wrong += 1
                    if len(r["errors"]) < 5:
                        r["errors"].append("%s: %s came back different from what was set" % (spec.label, key.decode()))
                elif j >= warm:
                    hits += 1
        r["secs"] = time.monotonic() - t0
        r["stats"] = c.stats()
        srv.check_alive()
    if wrong:
        r["errors"].append("%s: %d hits returned other bytes or flags than were set" % (spec.label, wrong))
    r.update(hits=hits, misses=misses, set_fail=set_fail, wrong=wrong,
             ratio=hits / (hits + misses) if hits + misses else None)
    return r


def part_hitratio(args, corpus, specs, logdir, summary, failures, capacity):
    mean = mean_value_size(args)
    k = int(args.keyspace_factor * args.memory * MiB / mean)
    vs = ValueSet(corpus, k, args, "hitratio")
    reqs, cdf = zipf_requests(k, args.requests, args.alpha, args.seed)
    distinct = len(set(reqs))
    top = cdf[max(0, k // 100 - 1)] / cdf[-1]
    mc_held = capacity.get(specs[0].label, {}).get("held") if capacity else None
    log()
    log("== 2. hit ratio: read-through (get; set on a miss) replay of %s requests, Zipf alpha %.2f over %s keys "
        "(%s%s), %s distinct keys requested; the top 1%% of keys draw %.0f%% of requests; hits "
        "counted after %s warm-up "
        "requests" % ("{:,}".format(args.requests), args.alpha, "{:,}".format(k),
                      "%.1fx memory / mean value size" % args.keyspace_factor,
                      ", %.1fx the items memcached held in part 1" % (k / mc_held) if mc_held else "",
                      "{:,}".format(distinct), 100 * top, "{:,}".format(args.warmup)))
    results = {}
    for spec in specs:
        try:
            r = hitratio_one(spec, args, logdir, vs, reqs)
            results[spec.label] = r
            failures.extend(r["errors"])
            log("   %-22s %.1f s: hit ratio %.4f" % (spec.label, r["secs"], r["ratio"]))
        except (ServerError, OSError) as e:
            failures.append("hit ratio, %s: %s" % (spec.label, e))
            log("   %-22s FAILED: %s" % (spec.label, e))
    mc = results.get(specs[0].label)
    rows = []

    def row(label, f, spec_fmt=None):
        rows.append((label, [fmt(f(results[s.label], s) if s.label in results else None, spec_fmt) for s in specs]))

    row("requests counted", lambda r, s: r["hits"] + r["misses"])
    row("hits", lambda r, s: r["hits"])
    row("misses", lambda r, s: r["misses"])
    row("hit ratio", lambda r, s: r["ratio"], ".4f")
    row("miss ratio / memcached", lambda r, s: ratio(1 - r["ratio"], 1 - mc["ratio"]) if mc else None, ".3f")
    row("sets not STORED", lambda r, s: r["set_fail"])
    row("hits with wrong value", lambda r, s: r["wrong"])
    row("stats curr_items (end)", lambda r, s: stat_int(r["stats"], "curr_items"))
    row("stats evictions (end)", lambda r, s: stat_int(r["stats"], "evictions"))
    row("requests/s (1 client)", lambda r, s: args.requests / r["secs"], ".0f")
    table("hit ratio (one run: the request sequence is seeded and replayed by one client; memcached against itself "
          "differs by up to ~0.3 points, from its background LRU threads)", [s.label for s in specs], rows)
    for spec in specs[1:]:
        r = results.get(spec.label)
        ok = r is not None and mc is not None and r["ratio"] > mc["ratio"]
        summary.append(("hit ratio, %s: zpage > memcached" % spec.label,
                        "> %.4f" % mc["ratio"] if mc else "> memcached",
                        "%.4f (%+.1f points)" % (r["ratio"], 100 * (r["ratio"] - mc["ratio"])) if (r and mc) else "n/a",
                        ok))
    return results


# ---------------------------------------------------------------------------------------------
# Part 3: throughput and p99 with memaslap


def parse_log2_dist(lines, start):
    """Counts per bucket from the lines after 'Log2 Dist:' at lines[start]."""
    hist = {}
    for l in lines[start + 1:]:
        m = re.match(r"\s*(\d+):((?:\s+\d+)+)\s*$", l)
        if not m:
            break
        b = int(m.group(1))
        for i, cnt in enumerate(m.group(2).split()):
            hist[b + i] = hist.get(b + i, 0) + int(cnt)
    return hist


def percentile_log2(hist, q):
    """q-quantile (us) of a memaslap Log2 histogram: bucket i holds (2^(i-1), 2^i] us; geometric
    interpolation inside the bucket. Returns (value, (lo, hi))."""
    total = sum(hist.values())
    if not total:
        return None, None
    target = q * total
    cum = 0
    for b in sorted(hist):
        c = hist[b]
        if c and cum + c >= target:
            lo, hi = (2 ** (b - 1) if b > 0 else 0), 2 ** b
            frac = (target - cum) / c
            v = lo * (hi / lo) ** frac if lo > 0 else hi * frac
            return v, (lo, hi)
        cum += c
    b = max(hist)
    return 2 ** b, (2 ** (b - 1), 2 ** b)


def parse_memaslap(out):
    out = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out)
    lines = out.splitlines()
    res = {}
    m = re.search(r"Run time:\s*([\d.]+)s\s+Ops:\s*(\d+)\s+TPS:\s*(\d+)", out)
    if not m:
        raise ServerError("memaslap printed no 'Run time: ... TPS' line; its output ends:\n" +
                          "\n".join("    | " + l for l in lines[-15:]))
    res["run_s"], res["ops"], res["tps"] = float(m.group(1)), int(m.group(2)), int(m.group(3))
    for name in ("cmd_get", "cmd_set", "get_misses"):
        mm = re.search(r"^%s:\s*(\d+)" % name, out, re.M)
        res[name] = int(mm.group(1)) if mm else None
    # The final per-command blocks: "<Kind> Statistics (N events)" ... "Log2 Dist:" ...
    for kind in ("Get", "Set", "Total"):
        idx = [i for i, l in enumerate(lines) if re.match(r"\s*%s Statistics \(\d+ events\)" % kind, l)]
        if not idx:
            continue
        i = idx[-1]
        block = {}
        for j in range(i + 1, min(len(lines), i + 12)):
            mm = re.match(r"\s*(Min|Max|Avg|Geo|Std):\s*([\d.]+)", lines[j])
            if mm:
                block[mm.group(1)] = float(mm.group(2))
            if "Log2 Dist:" in lines[j]:
                block["hist"] = parse_log2_dist(lines, j)
                break
        res[kind] = block
    if "hist" not in res.get("Total", {}):
        raise ServerError("memaslap printed no Total Log2 Dist histogram")
    return res


def memaslap_config(path, args):
    with open(path, "w") as f:
        f.write("key\n16 16 1\nvalue\n%d %d 1\ncmd\n0 0.1\n1 0.9\n" % (args.value_min, args.value_max))


# memaslap's keys: an 8-byte binary prefix (a counter OR 0x1010101010101010, so bytes 0x10-0xff but
# never space, CR, LF or NUL) then alphanumerics. memcached takes any byte but those in a key.
MEMASLAP_STYLE_KEY = b"\x10\x10\x10\x10\x10\x10\x18\x10" + b"N7e3tUiq"


def zpage_has_flag(specs, flag):
    """Whether the zpage binary's --help mentions flag."""
    for s in specs:
        if not s.is_memcached:
            try:
                out = subprocess.run([s.binary, "--help"], capture_output=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                return False
            return flag.encode() in out.stdout + out.stderr
    return False


def accepts_memaslap_keys(spec, args, logdir):
    """Whether the server stores a value under a memaslap-style key (on a connection of its own)."""
    with Server(spec, args, logdir) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(b"set %s 0 0 1\r\nx\r\n" % MEMASLAP_STYLE_KEY)
            s.settimeout(2)
            reply = b""
            try:
                while b"\r\n" not in reply:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            except socket.timeout:
                pass
        return reply.startswith(b"STORED\r\n"), reply.split(b"\r\n")[0].decode("utf-8", "replace")


def memaslap_one(spec, args, logdir, cfg):
    with Server(spec, args, logdir) as srv:
        argv = [args.memaslap, "-s", "127.0.0.1:%d" % srv.port, "-F", cfg, "-t", "%ds" % args.seconds,
                "-T", str(args.loadgen_threads), "-c", str(args.concurrency), "-w", "1k", "-S", "%ds" % args.seconds]
        p = spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = p.communicate(timeout=args.seconds + 60)
        except subprocess.TimeoutExpired:
            raise ServerError("%s: memaslap did not finish within %d s" % (spec.label, args.seconds + 60))
        finally:
            stop(p)
        srv.check_alive()
        with Client(srv.port) as c:
            st = c.stats()
    m = parse_memaslap(out.decode("utf-8", "replace"))
    # memaslap counts an error reply as an operation: check that the server saw the commands.
    sent = (m["cmd_get"] or 0) + (m["cmd_set"] or 0)
    seen = (stat_int(st, "cmd_get") or 0) + (stat_int(st, "cmd_set") or 0)
    if sent and seen < 0.95 * sent:
        raise ServerError("%s: memaslap reports %d gets+sets (%d ops/s), the server's stats count %d: its replies "
                          "were errors, the run is void" % (spec.label, sent, m["tps"], seen))
    r = {"tps": m["tps"], "stats": st, "avg": m["Total"].get("Avg"), "max": m["Total"].get("Max"),
         "get_miss_pct": 100.0 * (m["get_misses"] or 0) / max(1, m["cmd_get"] or 0), "set_fail": None, "wrong": None}
    r["p50"], _ = percentile_log2(m["Total"]["hist"], 0.50)
    r["p99"], r["p99_bucket"] = percentile_log2(m["Total"]["hist"], 0.99)
    r["p999"], _ = percentile_log2(m["Total"]["hist"], 0.999)
    r["get_p99"] = percentile_log2(m["Get"]["hist"], 0.99)[0] if "hist" in m.get("Get", {}) else None
    r["set_p99"] = percentile_log2(m["Set"]["hist"], 0.99)[0] if "hist" in m.get("Set", {}) else None
    r["line"] = "p99 %6.0f us (bucket %d-%d us)" % (r["p99"], r["p99_bucket"][0], r["p99_bucket"][1])
    return r


# ---- the python load generator: --concurrency forked processes, one blocking connection each


def percentile_exact(hist, q):
    """q-quantile of {microseconds: count}."""
    total = sum(hist.values())
    if not total:
        return None
    target, cum = q * total, 0
    for us in sorted(hist):
        cum += hist[us]
        if cum >= target:
            return float(us)
    return float(max(hist))


def _pyload_worker(wid, port, vs, nkeys, seed, t_start, seconds, out):
    _child_setup()
    res = {"gets": 0, "sets": 0, "misses": 0, "set_fail": 0, "wrong": 0, "hist_get": {}, "hist_set": {},
           "error": None}
    try:
        rng = random.Random("%s:pyload:%d" % (seed, wid))
        now = time.monotonic_ns
        with Client(port) as c:
            while time.monotonic() < t_start:
                time.sleep(0.002)
            t0_all = now()
            end = t0_all + int(seconds * 1e9)
            hg, hs = res["hist_get"], res["hist_set"]
            while True:
                i = rng.randrange(nkeys)
                key = b"t:%d" % i
                if rng.random() < 0.1:
                    t0 = now()
                    reply = c.set(key, vs.flags(i), vs.value(i))
                    t1 = now()
                    us = (t1 - t0) // 1000
                    hs[us] = hs.get(us, 0) + 1
                    res["sets"] += 1
                    if reply != b"STORED":
                        res["set_fail"] += 1
                else:
                    t0 = now()
                    got = c.get(key)
                    t1 = now()
                    us = (t1 - t0) // 1000
                    hg[us] = hg.get(us, 0) + 1
                    res["gets"] += 1
                    if got is None:
                        res["misses"] += 1
                    elif got[1] != vs.value(i) or got[0] != vs.flags(i):
                        res["wrong"] += 1
                if t1 >= end:
                    break
            res["elapsed"] = (t1 - t0_all) / 1e9
    except Exception as e:  # reported by the parent
        res["error"] = "%s: %s" % (type(e).__name__, e)
    out.send(res)
    out.close()


def pyload_one(spec, args, logdir, vs):
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    with Server(spec, args, logdir) as srv:
        with Client(srv.port) as c:  # preload every key, so that gets hit from the start
            for start in range(0, vs.n, 64):
                idx = range(start, min(vs.n, start + 64))
                c.set_batch([(b"t:%d" % i, vs.flags(i), vs.value(i)) for i in idx])
        t_start = time.monotonic() + 0.5 + 0.05 * args.concurrency
        procs = []
        try:
            for w in range(args.concurrency):
                rd, wr = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_pyload_worker, 
                                args=(w, srv.port, vs, vs.n, args.seed, t_start, args.seconds, wr),
                                daemon=True)
                p.start()
                _live_workers.append(p)
                wr.close()
                procs.append((p, rd))
            results = []
            deadline = t_start + args.seconds + 60
            for p, rd in procs:
                if rd.poll(max(0.0, deadline - time.monotonic())):
                    results.append(rd.recv())
                else:
                    results.append({"error": "worker sent no result within %d s" % (args.seconds + 60)})
        finally:
            for p, rd in procs:
                p.join(2)
                if p.is_alive():
                    p.kill()
                    p.join()
                if p in _live_workers:
                    _live_workers.remove(p)
        srv.check_alive()
        with Client(srv.port) as c:
            st = c.stats()
    errs = [r["error"] for r in results if r.get("error")]
    if errs:
        raise ServerError("%s: %d of %d load processes failed, first: %s" % (
            spec.label, len(errs), len(results), errs[0]))
    hg, hs = collections.Counter(), collections.Counter()
    for r in results:
        hg.update(r["hist_get"])
        hs.update(r["hist_set"])
    ha = hg + hs
    gets = sum(r["gets"] for r in results)
    out = {"tps": sum((r["gets"] + r["sets"]) / r["elapsed"] for r in results), "stats": st,
           "p50": percentile_exact(ha, 0.50), "p99": percentile_exact(ha, 0.99), "p999": percentile_exact(ha, 0.999),
           "get_p99": percentile_exact(hg, 0.99), "set_p99": percentile_exact(hs, 0.99),
           "avg": sum(us * n for us, n in ha.items()) / max(1, sum(ha.values())), "max": float(max(ha)),
           "get_miss_pct": 100.0 * sum(r["misses"] for r in results) / max(1, gets),
           "set_fail": sum(r["set_fail"] for r in results), "wrong": sum(r["wrong"] for r in results),
           "slow": sum(n for us, n in ha.items() if us >= 100000)}
    out["line"] = "p99 %6.0f us" % out["p99"]
    if out["wrong"]:
        raise ServerError("%s: %d gets returned other bytes or flags than were set" % (spec.label, out["wrong"]))
    return out


def part_throughput(args, corpus_fn, specs, logdir, summary, failures, summary_notes):
    tool = args.loadgen
    log()
    if tool in ("auto", "memaslap"):
        def probe(specs):
            refused, replies = [], set()
            for spec in specs:
                ok, reply = accepts_memaslap_keys(spec, args, logdir)
                if not ok:
                    refused.append(spec.label)
                    replies.add(repr(reply))
            return refused, replies

        refused, replies = probe(specs)
        if refused and all(not s.is_memcached for s in specs if s.label in refused) and zpage_has_flag(
                specs, "--memcached-keys"):
            # zpage-memcached follows protocol.txt by default; its --memcached-keys takes keys as memcached does.
            log("   note: %s refused memaslap's keys (an 8-byte binary prefix, bytes 0x10-0x1f; protocol.txt forbids "
                "control characters, memcached stores them), answering %s; part 3 runs zpage with --memcached-keys" % (
                    ", ".join(refused), " / ".join(sorted(replies))))
            specs = [s if s.is_memcached else s.with_extra(["--memcached-keys"]) for s in specs]
            summary_notes.append("(part 3 ran zpage-memcached with --memcached-keys, for memaslap's keys)")
            refused, replies = probe(specs)
        if refused:
            msg = ("%s refused memaslap's keys (an 8-byte binary prefix, bytes 0x10-0x1f, then alphanumerics; "
                   "memcached "
                   "stores them), answering %s" % (", ".join(refused), " / ".join(sorted(replies))))
            if tool == "memaslap":
                failures.append("throughput: " + msg + ": memaslap cannot measure them")
                log("== 3. throughput: " + msg)
            else:
                log("   note: " + msg + "; --loadgen auto measures every server with the python load generator instead")
                summary_notes.append("(throughput by the python load generator: %s)" % msg)
                tool = "python"
        else:
            tool = "memaslap"
    vs = None
    if tool == "memaslap":
        cfg = os.path.join(logdir, "memaslap.cfg")
        memaslap_config(cfg, args)
        log("== 3. throughput: %s -T %d -c %d -w 1k, get:set 9:1, keys 16 B, values uniform %d-%d B (random "
            "alphanumerics), %d s per run, %d run(s), servers -t %d; medians over runs" % (
                os.path.basename(args.memaslap), args.loadgen_threads, args.concurrency, args.value_min,
                args.value_max, args.seconds, args.runs, args.threads))
        title = "throughput and latency, memaslap (p99: its Log2 histogram, interpolated inside the power-of-2 bucket)"
    else:
        nkeys = max(1, int(args.tp_keys_factor * args.memory * MiB / mean_value_size(args)))
        vs = ValueSet(corpus_fn(), nkeys, args, "throughput")
        log("== 3. throughput: python load generator, %d processes with one connection each, get:set 9:1 on %s keys "
            "(%.0f MiB raw, preloaded), uniform random key choice, text values %s %d-%d B, %d s per run, %d run(s), "
            "servers -t %d; exact latency of every op timed in the client; medians over runs" % (
                args.concurrency, "{:,}".format(nkeys), sum(vs.size) / MiB, args.value_dist, args.value_min,
                args.value_max, args.seconds, args.runs, args.threads))
        title = "throughput and latency, python load generator (latency timed per op around send and reply)"
    log("   load average before: %.2f (1 min), %d cores" % (os.getloadavg()[0], os.cpu_count() or 0))
    runs = collections.defaultdict(list)
    for run in range(args.runs):
        for spec in specs:
            try:
                r = memaslap_one(spec, args, logdir, cfg) if tool == "memaslap" else pyload_one(spec, args, logdir, vs)
                runs[spec.label].append(r)
                log("   run %d %-22s %8d ops/s  %s  max %7.0f us  get misses %.1f%%" % (
                    run + 1, spec.label, r["tps"], r["line"], r["max"] or 0, r["get_miss_pct"]))
            except (ServerError, OSError) as e:
                failures.append("throughput run %d, %s: %s" % (run + 1, spec.label, e))
                log("   run %d %-22s FAILED: %s" % (run + 1, spec.label, e))

    load = os.getloadavg()[0]
    log("   load average after: %.2f (1 min)%s" % (load, "  -- the machine was busy: these figures moved with it"
                                                 if load > 1.5 * (os.cpu_count() or 1) else ""))

    def med(label, key):
        vals = [r.get(key) for r in runs.get(label, [])]
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else None

    mc_tps = med(specs[0].label, "tps")
    mc_p99 = med(specs[0].label, "p99")
    rows = []

    def row(label, f, spec_fmt=None):
        rows.append((label, [fmt(f(s), spec_fmt) for s in specs]))

    row("runs completed", lambda s: len(runs.get(s.label, [])))
    row("ops/s (median)", lambda s: med(s.label, "tps"), ".0f")
    row("ops/s min-max", lambda s: "%d-%d" % (
        min(r["tps"] for r in runs[s.label]), max(r["tps"] for r in runs[s.label]))
        if runs.get(s.label) else None)
    row("ops/s / memcached", lambda s: ratio(med(s.label, "tps"), mc_tps), ".2f")
    row("p50 us (all ops)", lambda s: med(s.label, "p50"), ".0f")
    row("p99 us (all ops)", lambda s: med(s.label, "p99"), ".0f")
    row("p99 / memcached", lambda s: ratio(med(s.label, "p99"), mc_p99), ".2f")
    row("p99.9 us (all ops)", lambda s: med(s.label, "p999"), ".0f")
    row("p99 us (gets)", lambda s: med(s.label, "get_p99"), ".0f")
    row("p99 us (sets)", lambda s: med(s.label, "set_p99"), ".0f")
    row("avg us (all ops)", lambda s: med(s.label, "avg"), ".0f")
    row("max us (all ops)", lambda s: med(s.label, "max"), ".0f")
    row("get misses %", lambda s: med(s.label, "get_miss_pct"), ".1f")
    if tool == "python":
        row("sets not STORED", lambda s: med(s.label, "set_fail"), ".0f")
        row("ops >= 100 ms (all runs)", lambda s: sum(r["slow"] for r in runs[s.label]) if runs.get(s.label) else None)
    row("stats curr_items (end)",
        lambda s: statistics.median([stat_int(r["stats"], "curr_items") or 0 for r in runs[s.label]])
        if runs.get(s.label) else None, ".0f")
    row("stats evictions (end)",
        lambda s: statistics.median([stat_int(r["stats"], "evictions") or 0 for r in runs[s.label]])
        if runs.get(s.label) else None, ".0f")
    table(title, [s.label for s in specs], rows)
    for spec in specs[1:]:
        got = ratio(med(spec.label, "tps"), mc_tps)
        summary.append(("throughput, %s: ops/s zpage/memcached (%s)" % (spec.label, tool),
                        ">= %.1fx" % TARGET_THROUGHPUT,
                        "%.2fx" % got if got is not None else "n/a", got is not None and got >= TARGET_THROUGHPUT))
        p = ratio(med(spec.label, "p99"), mc_p99)
        summary.append(("p99 latency, %s: zpage/memcached (no target)" % spec.label, "-",
                        "%.2fx (%s vs %s us)" % (p, fmt(med(spec.label, "p99"), ".0f"), fmt(mc_p99, ".0f"))
                        if p is not None else "n/a", None))
    return runs


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[2:]))
    ap.add_argument("--memory", type=int, default=64, help="-m of both servers, MiB (64)")
    ap.add_argument("--codecs", default="lz4,zstd-1",
                    help="zpage --codec values, one column each: lz4, lz4-N, lz4hc-N, zstd-N, identity (lz4,zstd-1)")
    ap.add_argument("--eviction", dest="evictions", default="s3fifo-size",
                    help="zpage --eviction values, a column each per codec: s3fifo-size, s3fifo, lru (s3fifo-size)")
    ap.add_argument("--zpage-args", default="", help="more arguments for zpage-memcached, one string ('')")
    ap.add_argument("--parts", default="capacity,hitratio,throughput", help="which parts (all three)")
    ap.add_argument("--seconds", type=int, default=20, help="memaslap run length, part 3 (20)")
    ap.add_argument("--runs", type=int, default=3, help="part 3 runs per server; medians are reported (3)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the corpus order, values and requests (1)")
    ap.add_argument("--zpage", default=DEFAULT_ZPAGE, help="zpage-memcached binary (build/release/examples/)")
    ap.add_argument("--memcached", default="/usr/bin/memcached", help="memcached binary (/usr/bin/memcached)")
    ap.add_argument("--zpage-is-memcached", action="store_true",
                    help="rehearsal: run --memcached in the zpage columns too (ratios should be ~1.0)")
    ap.add_argument("--threads", type=int, default=2, help="-t of both servers (2)")
    ap.add_argument("--memaslap", default=None, help="memaslap binary (memcaslap or memaslap on PATH)")
    ap.add_argument("--loadgen", choices=["auto", "memaslap", "python"], default="auto",
                    help="part 3 load generator: memaslap, this script's own (python), or auto: memaslap unless a "
                         "server refuses its keys, then python for every server (auto)")
    ap.add_argument("--loadgen-threads", type=int, default=2, help="memaslap -T (2)")
    ap.add_argument("--concurrency", type=int, default=16,
                    help="memaslap -c, or the python load generator's processes (16)")
    ap.add_argument("--tp-keys-factor", type=float, default=0.5,
                    help="python load generator's key space, x memory / mean value size (0.5: 7.9k keys at 64 MiB)")
    ap.add_argument("--value-min", type=int, default=256, help="smallest value, bytes (256)")
    ap.add_argument("--value-max", type=int, default=8192, help="largest value, bytes (8192)")
    ap.add_argument("--value-dist", choices=["uniform", "loguniform"], default="uniform",
                    help="value size distribution, parts 1-2 (uniform)")
    ap.add_argument("--corpus-mib", type=int, default=64, help="text read from --corpus-roots, MiB (64)")
    ap.add_argument("--corpus-roots", default=CORPUS_ROOTS, help="directories the values come from (%s)" % CORPUS_ROOTS)
    ap.add_argument("--fill-factor", type=float, default=10.0,
                    help="part 1 sets this x memory / mean value size items (10: 159k at 64 MiB)")
    ap.add_argument("--keyspace-factor", type=float, default=4.0,
                    help="part 2 key space, x memory / mean value size (4: 63.5k keys at 64 MiB)")
    ap.add_argument("--get-batch", type=int, default=50, help="keys per multi-get in part 1's read-back (50)")
    ap.add_argument("--alpha", type=float, default=ZIPF_ALPHA_DEFAULT, help="Zipf exponent, part 2 (0.99)")
    ap.add_argument("--requests", type=int, default=500000, help="part 2 requests (500000)")
    ap.add_argument("--warmup", type=int, default=150000, help="part 2 requests not counted (150000)")
    args = ap.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    for p in args.parts:
        if p not in ("capacity", "hitratio", "throughput"):
            ap.error("unknown part %r (capacity, hitratio, throughput)" % p)
    args.codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    args.evictions = [e.strip() for e in args.evictions.split(",") if e.strip()]
    for e in args.evictions:
        if e not in ("s3fifo-size", "s3fifo", "lru"):
            ap.error("eviction %r is not s3fifo-size, s3fifo or lru" % e)
    if not args.evictions:
        ap.error("--eviction is empty")
    args.corpus_roots = [r.strip() for r in args.corpus_roots.split(",") if r.strip()]
    for c in args.codecs:
        if not re.fullmatch(r"lz4|identity|none|zstd-\d+|lz4hc-\d+|lz4-\d+", c):
            ap.error("codec %r is not lz4, lz4-N, lz4hc-N, zstd-N, identity or none" % c)
    if not args.codecs:
        ap.error("--codecs is empty")
    if not (1 <= args.value_min <= args.value_max):
        ap.error("need 1 <= --value-min <= --value-max")
    if args.warmup >= args.requests:
        ap.error("--warmup must be below --requests")
    if args.runs < 1 or args.seconds < 1 or args.memory < 1:
        ap.error("--runs, --seconds and --memory must be positive")
    return args


def check_binary(path, what, hint):
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise SetupError("%s not found or not executable: %s\n  %s" % (what, path, hint))


def main(argv):
    args = parse_args(argv)
    check_binary(args.memcached, "memcached", "apt-get install memcached, or pass --memcached PATH")
    if args.zpage_is_memcached:
        zbin = args.memcached
    else:
        args.zpage = os.path.normpath(args.zpage)
        check_binary(args.zpage, "zpage-memcached",
                     "build it (cmake --build build/release --target zpage-memcached), pass --zpage PATH, "
                     "or rehearse with --zpage-is-memcached")
        zbin = args.zpage
    if "throughput" in args.parts and args.loadgen != "python":
        args.memaslap = args.memaslap or shutil.which("memcaslap") or shutil.which("memaslap")
        check_binary(args.memaslap, "memaslap", "apt-get install libmemcached-tools, or pass --memaslap PATH")

    specs = [ServerSpec("memcached", args.memcached, True)]
    for codec in args.codecs:
        if args.zpage_is_memcached:
            specs.append(ServerSpec("zpage*%s" % codec, zbin, True, codec=codec))
            continue
        for eviction in args.evictions:
            label = "zpage %s" % codec if len(args.evictions) == 1 else "zpage %s %s" % (codec, eviction)
            specs.append(ServerSpec(label, zbin, False, codec=codec, eviction=eviction,
                                    extra=shlex.split(args.zpage_args)))

    t_start = time.monotonic()
    log("memcached_compare: -m %d MiB, -t %d, parts %s, codecs %s, eviction %s, seed %d" % (
        args.memory, args.threads, ",".join(args.parts), ",".join(args.codecs), ",".join(args.evictions), args.seed))
    for s in specs:
        log("  %-14s %s" % (s.label, " ".join(s.argv("PORT", args))))
    if args.zpage_is_memcached:
        log("  (* rehearsal: the zpage columns run memcached; their codec is a label only)")
    try:
        v = subprocess.run([args.memcached, "-V"], capture_output=True, timeout=10).stdout.decode().strip()
        log("  %s" % v)
    except Exception:
        pass

    summary, failures, summary_notes = [], [], []
    logdir = tempfile.mkdtemp(prefix="memcached_compare.")
    try:
        corpus_cache = []

        def corpus_fn():
            if not corpus_cache:
                t0 = time.monotonic()
                corpus, info = load_corpus(args.seed, args.corpus_mib * MiB, args.corpus_roots)
                log("  corpus: %s (%.1f s)" % (info, time.monotonic() - t0))
                corpus_cache.append(corpus)
            return corpus_cache[0]

        capacity = {}
        if "capacity" in args.parts:
            capacity = part_capacity(args, corpus_fn(), specs, logdir, summary, failures, summary_notes)
        if "hitratio" in args.parts:
            part_hitratio(args, corpus_fn(), specs, logdir, summary, failures, capacity)
        if "throughput" in args.parts:
            part_throughput(args, corpus_fn, specs, logdir, summary, failures, summary_notes)
    finally:
        stop_all()
        shutil.rmtree(logdir, ignore_errors=True)

    log()
    log("== summary (-m %d MiB, %s%s), %.0f s in all" % (
        args.memory, ", ".join(s.label for s in specs[1:]),
        "; REHEARSAL: memcached in the zpage columns" if args.zpage_is_memcached else "",
        time.monotonic() - t_start))
    if summary:
        w = max(len(s[0]) for s in summary)
        wt = max(len(s[1]) for s in summary)
        wm = max(len(s[2]) for s in summary)
        for what, target, got, ok in summary:
            verdict = "" if ok is None else ("holds" if ok else "MISSED")
            log(("  %s  target %s  measured %s  %s" % (
                what.ljust(w), target.ljust(wt), got.ljust(wm), verdict)).rstrip())
        for note in summary_notes:
            log("  " + note)
    if failures:
        log()
        log("FAILURES (%d):" % len(failures))
        for f in failures:
            log("  " + f)
        return 1
    return 0


if __name__ == "__main__":
    for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(_sig, _on_signal)
    try:
        sys.exit(main(sys.argv[1:]))
    except SetupError as e:
        print("memcached_compare: %s" % e, file=sys.stderr)
        sys.exit(2)
    finally:
        stop_all()
