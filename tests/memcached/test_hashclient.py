#!/usr/bin/python3
"""Two zpage-memcached processes behind client-side key distribution.

Run: /usr/bin/python3 test_hashclient.py [--server PATH] [--reference]

pymemcache's HashClient (rendezvous hashing) over two servers: 2000 keys spread over both, every key
on the server the hash names, and after one server is killed the client keeps serving the other's
keys and fails the dead one's keys over to the live server. Then libmemcached's tools over two servers
(modula distribution with libhashkit's one-at-a-time hash; the tools cannot be given consistent/ketama
distribution, see HASH_NOTE), and the same failure with them.
"""

import os
import subprocess
import sys
import tempfile
import shutil
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import expect, fail, short  # noqa: E402

from pymemcache.client.base import Client  # noqa: E402
from pymemcache.client.hash import HashClient  # noqa: E402

N_KEYS = 2000

# The settings printed for the README.
HASHCLIENT_SETTINGS = dict(connect_timeout=2.0, timeout=2.0, ignore_exc=True, retry_attempts=2, retry_timeout=0.2,
                           dead_timeout=60, default_noreply=False, use_pooling=False)
HASH_NOTE = ("libmemcached-tools 1.1.4 build their client with memcached_create() and --servers/MEMCACHED_SERVERS "
             "(memcached_servers_parse), never memcached(config_string): no tool takes --DISTRIBUTION=consistent "
             "(ketama) or reads the LIBMEMCACHED configuration variable; only --hash (-H) picks the key hash "
             "(md5, crc, fnv1_64, fnv1a_64, fnv1_32, fnv1a_32, murmur, jenkins, murmur3; hsieh is not built in). "
             "Distribution is always modula: server = hash(key) %% N in --servers order.")


class FlagSerde:
    def serialize(self, key, value):
        return value if isinstance(value, tuple) else (value, 0)

    def deserialize(self, key, value, flags):
        return (value, flags)


def direct(srv):
    return Client(srv.addr, serde=FlagSerde(), connect_timeout=H.SOCKET_TIMEOUT, timeout=H.SOCKET_TIMEOUT,
                  default_noreply=False)


def one_at_a_time(key):
    """libhashkit's default hash (hashkit_one_at_a_time), which libmemcached's tools use unless -H is given."""
    v = 0
    for b in key:
        if b >= 0x80:
            b |= 0xFFFFFF00  # (uint32_t) of a signed char
        v = (v + b) & 0xFFFFFFFF
        v = (v + (v << 10)) & 0xFFFFFFFF
        v ^= v >> 6
    v = (v + (v << 3)) & 0xFFFFFFFF
    v ^= v >> 11
    v = (v + (v << 15)) & 0xFFFFFFFF
    return v


def run(argv, timeout=30):
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        fail("`%s` did not finish within %d s (hang?)" % (" ".join(argv), timeout))
    return p.returncode, p.stdout, p.stderr


class T:
    def __init__(self, suite):
        self.suite = suite
        self.seed, self.rng = H.rng_from_env()
        self.args = suite.args
        self.tmp = tempfile.mkdtemp(prefix="zpage-mc-hash-")

    def pair(self):
        return [H.Server(self.args.server, self.args.reference, memory_mb=64, threads=2, name="node%d" % i)
                for i in range(2)]

    def hashclient(self):
        a, b = self.pair()
        with a, b:
            servers = [a.addr, b.addr]
            print("  HashClient(%s, serde=<flags pass-through>, %s)" % (
                servers, ", ".join("%s=%r" % kv for kv in HASHCLIENT_SETTINGS.items())))
            hc = HashClient(servers, serde=FlagSerde(), **HASHCLIENT_SETTINGS)
            items = {}
            for i in range(N_KEYS):
                items[b"hc:%05d" % i] = (H.text_value(self.rng.choice([10, 100, 1000, 2000]), self.rng), i)
            failed = hc.set_many(items)
            expect(not failed, "HashClient.set_many failed for %d keys: %s" % (len(failed), list(failed)[:5]))
            got = hc.get_many(list(items))
            expect(len(got) == N_KEYS, "HashClient.get_many returned %d of %d keys" % (len(got), N_KEYS))
            bad = [k for k, v in items.items() if got.get(k) != v]
            expect(not bad, "%d keys differ through HashClient: %s" % (len(bad), bad[:5]))
            for k in list(items)[::20]:
                expect(hc.get(k) == items[k], "HashClient.get %s" % k.decode())
            # each key is on the server the hash names, and only there
            node_of = {}
            for k in items:
                node_of[k] = hc.hasher.get_node(k)  # what HashClient._get_client does
            name = {"%s:%s" % a.addr: a, "%s:%s" % b.addr: b}
            on = {srv: set() for srv in (a, b)}
            for srv in (a, b):
                c = direct(srv)
                keys = list(items)
                for i in range(0, len(keys), 200):
                    on[srv].update(c.get_many(keys[i:i + 200]))
            for k in items:
                home = name[node_of[k]]
                other = b if home is a else a
                if k not in on[home] or k in on[other]:
                    fail("%s: hash names %s, found on %s" % (k.decode(), node_of[k],
                                                             [s.name for s in (a, b) if k in on[s]]))
            counts = [direct(s).stats()[b"curr_items"] for s in (a, b)]
            print("  %d keys: node0 curr_items %d, node1 curr_items %d" % (N_KEYS, counts[0], counts[1]))
            expect(sum(counts) == N_KEYS, "curr_items %s sum to %d, want %d" % (counts, sum(counts), N_KEYS))
            expect(min(counts) >= N_KEYS * 35 // 100, "uneven shares %s" % counts)
            # kill node1: node0's keys keep being served, node1's keys miss without an exception, then fail over
            a_keys = [k for k in items if k in on[a]]
            b_keys = [k for k in items if k in on[b]]
            self.suite.step("hashclient: node1 killed")
            b.kill()
            t0 = time.monotonic()
            for k in a_keys[:300]:
                expect(hc.get(k) == items[k], "node0 key %s after node1 died" % k.decode())
            for k in b_keys[:20]:
                v = hc.get(k)
                expect(v is None, "node1 key %s after node1 died: %r" % (k.decode(), v))
            # retry_attempts failures 0.2 s apart mark node1 dead; its keys then map to node0
            moved = False
            deadline = time.monotonic() + 10
            probe = b_keys[0]
            while time.monotonic() < deadline:
                hc.set(probe, (b"moved", 1))
                if hc.get(probe) == (b"moved", 1):
                    moved = True
                    break
                time.sleep(0.1)
            expect(moved, "HashClient never failed node1's keys over to node0 within 10 s")
            expect(direct(a).get(probe) == (b"moved", 1), "the failed-over key is not on node0")
            got = hc.get_many(a_keys)
            expect(len(got) == len(a_keys) and all(got[k] == items[k] for k in a_keys),
                   "node0's keys after failover: %d of %d" % (len(got), len(a_keys)))
            dt = time.monotonic() - t0
            expect(dt < 15, "failover took %.1f s" % dt)
            print("  node1 killed: %d node0 keys still served, node1's keys failed over in %.2f s (nodes left %s)"
                  % (len(a_keys), dt, getattr(hc.hasher, "nodes", "?")))
            expect(a.alive(), "node0 died")

    def tools(self):
        a, b = self.pair()
        with a, b:
            servers = "%s:%d,%s:%d" % (H.HOST, a.port, H.HOST, b.port)
            print("  libmemcached tools: --servers=%s (modula, one-at-a-time hash)" % servers)
            src = os.path.join(self.tmp, "files")
            os.makedirs(src, exist_ok=True)
            files = {}
            for i in range(60):
                name = "file-%02d.txt" % i
                data = H.text_value(self.rng.choice([100, 5000, 50000]), self.rng)
                with open(os.path.join(src, name), "wb") as f:
                    f.write(data)
                files[name] = data
            rc, out, err = run(["/usr/bin/memccp", "--servers=" + servers] + [os.path.join(src, n) for n in files])
            expect(rc == 0, "memccp to two servers: exit %d %s" % (rc, err[-500:]))
            ca, cb = direct(a), direct(b)
            wrong = []
            on_a = []
            for n in files:
                k = n.encode()
                want = [a, b][one_at_a_time(k) % 2]
                ga, gb = ca.get(k), cb.get(k)
                where = [s for s, g in ((a, ga), (b, gb)) if g is not None]
                if where != [want]:
                    wrong.append("%s on %s, one-at-a-time %% 2 names %s" % (n, [s.name for s in where], want.name))
                if where == [a]:
                    on_a.append(n)
                g = ga if ga is not None else gb
                expect(g == (files[n], 0), "%s through memccp: %s" % (n, short(g[0] if g else None)))
            expect(not wrong, "libmemcached placed keys where modula/one-at-a-time does not: %s" % wrong[:5])
            counts = [direct(s).stats()[b"curr_items"] for s in (a, b)]
            print("  %d files: node0 curr_items %d, node1 curr_items %d; placement = one_at_a_time(key) %% 2"
                  % (len(files), counts[0], counts[1]))
            expect(min(counts) > 0 and sum(counts) == len(files), "shares %s" % counts)
            out_dir = os.path.join(self.tmp, "back")
            os.makedirs(out_dir, exist_ok=True)
            for n, data in list(files.items())[:20]:
                dst = os.path.join(out_dir, n)
                rc, out, err = run(["/usr/bin/memccat", "--servers=" + servers, "--file=" + dst, n])
                expect(rc == 0, "memccat %s: exit %d %s" % (n, rc, err[-300:]))
                with open(os.path.join(out_dir, n), "rb") as f:
                    expect(f.read() == data, "memccat %s over two servers differs" % n)
            # --hash=md5 places keys differently; reading needs the same --hash
            rc, out, err = run(["/usr/bin/memccp", "--servers=" + servers, "--hash=md5",
                                os.path.join(src, "file-00.txt")])
            expect(rc == 0, "memccp --hash=md5: %s" % err[-300:])
            rc, out, err = run(["/usr/bin/memccat", "--servers=" + servers, "--hash=md5", "file-00.txt"])
            expect(rc == 0 and out == files["file-00.txt"] + b"\n", "memccat --hash=md5: exit %d" % rc)
            # one server killed: keys on the live one are served, the dead one's fail fast (no hang)
            self.suite.step("tools: node1 killed")
            b.kill()
            t0 = time.monotonic()
            for n in files:
                rc, out, err = run(["/usr/bin/memccat", "--servers=" + servers, n], timeout=20)
                if n in on_a:
                    expect(rc == 0 and out == files[n] + b"\n", "memccat %s (on the live node0): exit %d %s"
                           % (n, rc, err[-300:]))
                else:
                    expect(rc != 0, "memccat %s (on the dead node1) succeeded?" % n)
            dt = time.monotonic() - t0
            print("  node1 killed: %d keys on node0 served by memccat, %d on node1 fail; %d memccat runs in %.2f s"
                  % (len(on_a), len(files) - len(on_a), len(files), dt))
            expect(a.alive(), "node0 died")
            print("  NOTE " + HASH_NOTE.replace("%%", "%"))

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    args = H.parse_args(__doc__)
    suite = H.Suite("test_hashclient", args)
    t = T(suite)
    try:
        suite.check("hashclient", t.hashclient)
        suite.check("libmemcached_tools_two_servers", t.tools)
    finally:
        t.cleanup()
        rc = suite.finish()
    sys.exit(rc)


if __name__ == "__main__":
    main()
