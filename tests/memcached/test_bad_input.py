#!/usr/bin/python3
"""zpage-memcached against malformed input, vanishing and slow clients, and thousands of connections.

Run: /usr/bin/python3 test_bad_input.py [--server PATH] [--reference]

Before everything ~100 items are stored with pymemcache; after every case another client must still be
served and every one of those items must come back byte-exact, and the server process must be alive.
Raw sockets are used only to send what no client library would send. With --reference every reply is
compared with memcached 1.6.18's exact one; otherwise the reply must be of the same kind (ERROR,
CLIENT_ERROR ..., SERVER_ERROR ..., or a closed connection where memcached closes), and the text after
CLIENT_ERROR/SERVER_ERROR may differ (it is printed).
"""

import os
import resource
import selectors
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import expect, fail, short  # noqa: E402

from pymemcache.client.base import Client  # noqa: E402

MiB = 1 << 20
MEMORY_MB = 128
MAX_CONNS = 4096
THREADS = 4
N_CONNS = 2500


class FlagSerde:
    def serialize(self, key, value):
        return value if isinstance(value, tuple) else (value, 0)

    def deserialize(self, key, value, flags):
        return (value, flags)


def pc(port):
    return Client((H.HOST, port), serde=FlagSerde(), connect_timeout=H.SOCKET_TIMEOUT, timeout=H.SOCKET_TIMEOUT,
                  default_noreply=False)


def until_version(r, timeout=H.SOCKET_TIMEOUT):
    """Lines the server sends before the VERSION reply to our sentinel `version` command.
    Returns (status, lines): status SYNC (VERSION seen: the connection is in step again), CLOSED, or QUIET."""
    lines = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "QUIET", lines
        try:
            line = r.readline(timeout=left)
        except socket.timeout:
            return "QUIET", lines
        except OSError:
            return "CLOSED", lines
        if line.startswith(b"VERSION "):
            return "SYNC", lines
        lines.append(line)


def kind(line):
    if line == b"ERROR":
        return "ERROR"
    for k in ("CLIENT_ERROR", "SERVER_ERROR"):
        if line.startswith(k.encode() + b" ") or line == k.encode():
            return k
    return "OTHER"


class T:
    def __init__(self, suite):
        self.suite = suite
        self.seed, self.rng = H.rng_from_env()
        self.items = {}
        self.notes = []

    @property
    def port(self):
        return self.suite.server.port

    def raw(self, **kw):
        return H.Raw(self.port, **kw)

    # ---- the stored items ------------------------------------------------------------------------

    def populate(self, server=None):
        port = (server or self.suite.server).port
        if not self.items:
            for i in range(100):
                n = self.rng.choice([1, 10, 100, 1000, 4096, 10000, 50000, 200000])
                self.items[b"keep:%03d" % i] = (H.text_value(n, self.rng), self.rng.randrange(1 << 32))
            self.items[b"keep:big"] = (H.text_value(1000000, self.rng), 1)
        c = pc(port)
        failed = c.set_many(self.items)
        expect(failed == [], "could not store the items: %s" % failed[:5])
        c.close()

    def intact(self, what):
        """Another client is served and every stored item is byte-exact."""
        expect(self.suite.server.alive(), "server died after %s (exit %s):\n%s"
               % (what, self.suite.server.proc.returncode, self.suite.server.log_tail()))
        c = pc(self.port)
        try:
            got = c.get_many(list(self.items))
        except Exception as e:
            fail("after %s another client is not served: %s: %s" % (what, type(e).__name__, e))
        lost = [k.decode() for k in self.items if k not in got]
        bad = [k.decode() for k in self.items if k in got and got[k] != self.items[k]]
        expect(not lost and not bad, "after %s: %d stored items lost %s, %d differ %s"
               % (what, len(lost), lost[:5], len(bad), bad[:5]))
        c.close()

    # ---- helpers ---------------------------------------------------------------------------------

    def case(self, name, payload, ref, ok_kinds, junk_ok=True, closed_ok=True):
        """Send payload + a sentinel `version`. With --reference the lines before VERSION must be `ref`
        (a list, or "CLOSED"). Otherwise: the first reply is one of ok_kinds (or the connection is closed if
        closed_ok), and after it only ERROR lines (the unread data block parsed as a command) if junk_ok."""
        r = self.raw()
        try:
            try:
                r.send(payload + b"version\r\n")
            except OSError:
                pass  # closed while we were still sending: judged below
            status, lines = until_version(r)
            if self.suite.reference:
                got = "CLOSED" if status == "CLOSED" and not lines else lines
                if status == "QUIET":
                    got = ("QUIET", lines)
                if got != ref and not (ref == "CLOSED" and status == "CLOSED"):
                    fail("%s: memcached replied %r, test expects %r\n%s" % (name, got, ref, r.transcript()))
            if status == "QUIET":
                fail("%s: no reply and no close within %.0f s (hang?)\n%s" % (name, H.SOCKET_TIMEOUT, r.transcript()))
            if status == "CLOSED" and not lines:
                expect(closed_ok, "%s: the server closed the connection instead of replying %s\n%s"
                       % (name, "/".join(ok_kinds), r.transcript()))
            else:
                expect(lines, "%s: no error reply before the next command's reply\n%s" % (name, r.transcript()))
                expect(kind(lines[0]) in ok_kinds, "%s: reply %s, want %s\n%s"
                       % (name, short(lines[0]), " or ".join(ok_kinds), r.transcript()))
                extra = [ln for ln in lines[1:] if kind(ln) != "ERROR" or not junk_ok]
                expect(not extra, "%s: unexpected further replies %s\n%s" % (name, extra, r.transcript()))
            desc = "closed" if status == "CLOSED" and not lines else " | ".join(
                ln.decode("latin-1") for ln in lines[:3])
            if status == "CLOSED" and lines:
                desc += " | then closed"
            print("  %-40s -> %s" % (name, desc))
        finally:
            r.close()
        self.intact(name)
        return status, lines, r

    # ---- cases -----------------------------------------------------------------------------------

    def malformed_commands(self):
        E, C = ["ERROR"], ["CLIENT_ERROR"]
        EC = ["ERROR", "CLIENT_ERROR"]
        self.case("unknown command", b"bogus\r\n", [b"ERROR"], E, junk_ok=False, closed_ok=False)
        self.case("unknown command, upper case GET", b"GET keep:000\r\n", [b"ERROR"], E, junk_ok=False,
                  closed_ok=False)
        self.case("empty line", b"\r\n", [b"ERROR"], E, junk_ok=False, closed_ok=False)
        self.case("line of spaces", b"     \r\n", [b"ERROR"], E, junk_ok=False, closed_ok=False)
        self.case("set without arguments", b"set\r\n", [b"ERROR"], EC, junk_ok=False, closed_ok=False)
        self.case("set with a key only", b"set foo\r\n", [b"ERROR"], EC, junk_ok=False, closed_ok=False)
        self.case("set missing the length", b"set foo 0 0\r\n", [b"ERROR"], EC, junk_ok=False, closed_ok=False)
        self.case("get without a key", b"get\r\n", [b"ERROR"], EC, junk_ok=False, closed_ok=False)
        self.case("cas without the token", b"cas foo 0 0 1\r\nz\r\n", [b"ERROR", b"ERROR"], EC, closed_ok=False)
        self.case("incr without a delta", b"incr keep:000\r\n", [b"ERROR"], EC, junk_ok=False, closed_ok=False)
        self.case("touch without an exptime", b"touch keep:000\r\n", [b"ERROR"], EC, junk_ok=False,
                  closed_ok=False)
        bad = [b"CLIENT_ERROR bad command line format", b"ERROR"]
        self.case("non-numeric flags", b"set foo abc 0 5\r\nhello\r\n", bad, C, closed_ok=False)
        self.case("negative flags", b"set foo -1 0 5\r\nhello\r\n", bad, C, closed_ok=False)
        self.case("non-numeric exptime", b"set foo 0 abc 5\r\nhello\r\n", bad, C, closed_ok=False)
        self.case("non-numeric length", b"set foo 0 0 abc\r\nhello\r\n", bad, C, closed_ok=False)
        self.case("length -1", b"set foo 0 0 -1\r\nhello\r\n", bad, C, closed_ok=False)
        self.case("length 1e3", b"set foo 0 0 1e3\r\nhello\r\n", bad, C, closed_ok=False)
        self.case("non-numeric cas token", b"cas foo 0 0 1 abc\r\nz\r\n", bad, C, closed_ok=False)
        self.case("non-numeric incr delta", b"incr keep:000 abc\r\n",
                  [b"CLIENT_ERROR invalid numeric delta argument"], C, junk_ok=False, closed_ok=False)
        self.case("negative incr delta", b"incr keep:000 -1\r\n",
                  [b"CLIENT_ERROR invalid numeric delta argument"], C, junk_ok=False, closed_ok=False)
        self.case("non-numeric touch exptime", b"touch keep:000 abc\r\n",
                  [b"CLIENT_ERROR invalid exptime argument"], C, junk_ok=False, closed_ok=False)
        self.case("non-numeric gat exptime", b"gat abc keep:000\r\n",
                  [b"CLIENT_ERROR invalid exptime argument"], C, junk_ok=False, closed_ok=False)
        self.case("non-numeric flush_all delay", b"flush_all abc\r\n",
                  [b"CLIENT_ERROR invalid exptime argument"], C, junk_ok=False, closed_ok=False)
        self.case("non-numeric verbosity", b"verbosity abc\r\n",
                  [b"CLIENT_ERROR bad command line format"], EC, junk_ok=False, closed_ok=False)
        self.case("delete with a time", b"delete nosuchkey 5\r\n",
                  [b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"], C, junk_ok=False,
                  closed_ok=False)
        self.intact("malformed commands")
        c = pc(self.port)
        expect(c.get(b"foo") is None, "a malformed set stored foo: %r" % (c.get(b"foo"),))

    def huge_lengths(self):
        C = ["CLIENT_ERROR", "SERVER_ERROR"]
        # memcached reads the length into an int32: 2^40 truncates to 0, so it then finds "he" where "\r\n"
        # should be (bad data chunk); 2^63, 2^64 and 2^31-1 fail its range check; -1 is negative.
        for name, n, ref in (("length 2^40", b"1099511627776", [b"CLIENT_ERROR bad data chunk", b"ERROR"]),
                             ("length 2^63", b"9223372036854775808", [b"CLIENT_ERROR bad command line format",
                                                                     b"ERROR"]),
                             ("length 2^64", b"18446744073709551616", [b"CLIENT_ERROR bad command line format",
                                                                      b"ERROR"]),
                             ("length 2^31-1", b"2147483647", [b"CLIENT_ERROR bad command line format", b"ERROR"]),
                             ("length -1", b"-1", [b"CLIENT_ERROR bad command line format", b"ERROR"]),
                             ("length 99999999999999999999999", b"99999999999999999999999",
                              [b"CLIENT_ERROR bad command line format", b"ERROR"])):
            self.case(name, b"set huge 0 0 " + n + b"\r\nhello\r\n", ref, C)
        self.intact("huge declared lengths")

    def long_keys(self):
        c = pc(self.port)
        k250 = b"k" * 250
        expect(c.set(k250, (b"ok", 0)) is True, "250-byte key refused")
        bad = [b"CLIENT_ERROR bad command line format", b"ERROR"]
        self.case("set with a 251-byte key", b"set " + b"k" * 251 + b" 0 0 5\r\nhello\r\n", bad, ["CLIENT_ERROR"])
        self.case("get with a 251-byte key", b"get " + b"k" * 251 + b"\r\n",
                  [b"CLIENT_ERROR bad command line format"], ["CLIENT_ERROR"], junk_ok=False)
        self.case("get of a good key and a 251-byte key", b"get keep:000 " + b"k" * 251 + b"\r\n",
                  [b"CLIENT_ERROR bad command line format"], ["CLIENT_ERROR"], junk_ok=False)
        self.case("delete with a 251-byte key", b"delete " + b"k" * 251 + b"\r\n",
                  [b"CLIENT_ERROR bad command line format"], ["CLIENT_ERROR"], junk_ok=False)
        self.case("set with a 10000-byte key", b"set " + b"k" * 10000 + b" 0 0 5\r\nhello\r\n", bad,
                  ["CLIENT_ERROR"])
        expect(c.get(k250) == (b"ok", 0), "250-byte key lost")
        self.intact("long keys")

    def control_char_keys(self):
        """memcached takes any byte but space, \\n and NUL in a key; a stricter server may refuse them.
        Either way: no hang, the connection stays in step, and a key that was STORED reads back."""
        for ch in (b"\x01", b"\t", b"\x1b", b"\x7f", b"\xff", b"\r", b"\x00"):
            key = b"ctl" + ch + b"key"
            r = self.raw()
            try:
                r.send(b"set " + key + b" 0 0 5\r\nhello\r\nversion\r\n")
                status, lines = until_version(r)
                expect(status == "SYNC", "set of key %r: %s %s\n%s" % (key, status, lines, r.transcript()))
                if lines and lines[0] == b"STORED":
                    expect(all(kind(ln) == "ERROR" for ln in lines[1:]), "after STORED: %s" % lines)
                    r.send(b"get " + key + b"\r\n")
                    line = r.readline()
                    expect(line == b"VALUE " + key + b" 0 5", "get %r: %s\n%s" % (key, line, r.transcript()))
                    expect(r.read_exact(7) == b"hello\r\n", "get %r data\n%s" % (key, r.transcript()))
                    expect(r.readline() == b"END", r.transcript())
                    outcome = "stored and read back"
                else:
                    expect(lines and all(kind(ln) in ("ERROR", "CLIENT_ERROR") for ln in lines),
                           "key %r: %s\n%s" % (key, lines, r.transcript()))
                    outcome = "refused: " + " | ".join(ln.decode("latin-1") for ln in lines)
                if self.suite.reference:
                    want = "refused" if ch == b"\x00" else "stored"
                    expect(outcome.startswith(want), "memcached %s a key with %r" % (outcome, ch))
                print("  key with %-6r -> %s" % (ch, outcome))
            finally:
                r.close()
        self.intact("keys with control characters")

    def too_large_value(self):
        """A value over -I: SERVER_ERROR, the data block swallowed, the next command on the connection served."""
        data = H.text_value(2 * MiB, self.rng)
        c = pc(self.port)
        c.set(b"tl:a", (b"old value", 5))
        r = self.raw()
        try:
            r.send(b"set tl:a 0 0 %d\r\n" % len(data) + data + b"\r\nget keep:001\r\n")
            line = r.readline(timeout=10)
            expect(kind(line) == "SERVER_ERROR", "value of 2 MiB with -I 1m: %s\n%s" % (short(line), r.transcript()))
            if self.suite.reference:
                expect(line == b"SERVER_ERROR object too large for cache", r.transcript())
            print("  2 MiB set -> %s" % line.decode())
            v, f = self.items[b"keep:001"]
            line = r.readline()
            expect(line == b"VALUE keep:001 %d %d" % (f, len(v)), "the get after the swallowed block: %s\n%s"
                   % (short(line), r.transcript()))
            expect(r.read_exact(len(v) + 2) == v + b"\r\n" and r.readline() == b"END", r.transcript())
            # the same through replace: old value kept; sent in pieces with pauses
            c.set(b"tl:b", (b"old b", 6))
            r.send(b"replace tl:b 0 0 %d\r\n" % len(data))
            for i in range(0, len(data), 256 * 1024):
                r.send(data[i:i + 256 * 1024])
                time.sleep(0.01)
            r.send(b"\r\nversion\r\n")
            status, lines = until_version(r, timeout=10)
            expect(status == "SYNC" and len(lines) == 1 and kind(lines[0]) == "SERVER_ERROR",
                   "replace of 2 MiB: %s %s\n%s" % (status, lines, r.transcript()))
        finally:
            r.close()
        got = c.get(b"tl:a")
        if self.suite.reference:
            expect(got is None, "memcached keeps the old value after a too-large set? %r" % (got,))
        else:
            expect(got in (None, (b"old value", 5)), "after a refused set: %r" % (got,))
        print("  after the refused set the key holds %s"
              % ("nothing (as memcached)" if got is None else "the old value"))
        expect(c.get(b"tl:b") == (b"old b", 6), "too-large replace changed the old value: %r" % (c.get(b"tl:b"),))
        self.intact("too-large values")

    def bad_data_chunk(self):
        c = pc(self.port)
        c.set(b"dc:a", (b"old", 1))
        st, lines, _ = self.case("data block longer than declared", b"set dc:a 0 0 3\r\nabcdef\r\n",
                                 [b"CLIENT_ERROR bad data chunk", b"ERROR"], ["CLIENT_ERROR"])
        got = c.get(b"dc:a")
        expect(got in ((b"old", 1), None), "after a bad data chunk dc:a holds %r" % (got,))
        if self.suite.reference:
            expect(got == (b"old", 1), "memcached dropped the old value on a bad data chunk")
        c.set(b"dc:b", (b"old", 1))
        self.case("data block shorter than declared", b"set dc:b 0 0 10\r\nabc\r\nXXXXXXXXXXXXXXXX\r\n",
                  [b"CLIENT_ERROR bad data chunk", b"ERROR"], ["CLIENT_ERROR"])
        got = c.get(b"dc:b")
        expect(got in ((b"old", 1), None), "after a short data block dc:b holds %r" % (got,))
        self.case("data block ending in a bare \\n", b"set dc:c 0 0 3\r\nabc\nX\r\n",
                  [b"CLIENT_ERROR bad data chunk", b"ERROR"], ["CLIENT_ERROR"])
        expect(c.get(b"dc:c") is None, "a bad data chunk was stored: %r" % (c.get(b"dc:c"),))
        self.case("append with a bad data chunk", b"append dc:a 0 0 2\r\nxyz\r\n",
                  [b"CLIENT_ERROR bad data chunk", b"ERROR"], ["CLIENT_ERROR"])
        expect(c.get(b"dc:a") in ((b"old", 1), None), "append with a bad chunk changed dc:a: %r" % (c.get(b"dc:a"),))
        self.intact("bad data chunks")

    def long_line(self):
        """A line with no newline: the server must answer (error) or close before it has buffered 8 MiB."""
        r = self.raw()
        sent = 0
        reaction = None
        try:
            chunk = b"x" * 65536
            r.sock.setblocking(False)
            while sent < 8 * MiB and reaction is None:
                try:
                    n = r.sock.send(chunk)
                    sent += n
                except BlockingIOError:
                    time.sleep(0.01)
                except OSError as e:
                    reaction = "closed (%s)" % type(e).__name__
                    break
                try:
                    data = r.sock.recv(4096)
                    reaction = "closed" if not data else "replied %s" % short(data)
                except BlockingIOError:
                    pass
                except OSError as e:
                    reaction = "closed (%s)" % type(e).__name__
            if reaction is None:
                r.sock.settimeout(H.SOCKET_TIMEOUT)
                try:
                    data = r.sock.recv(4096)
                    reaction = "closed" if not data else "replied %s" % short(data)
                except socket.timeout:
                    fail("the server accepted %d bytes of one line without a newline and neither replied nor "
                         "closed within %.0f s" % (sent, H.SOCKET_TIMEOUT))
                except OSError as e:
                    reaction = "closed (%s)" % type(e).__name__
        finally:
            r.close()
        print("  a line with no newline: after %d KiB sent the server %s" % (sent >> 10, reaction))
        if self.suite.reference:
            expect(reaction.startswith("closed"), "memcached %s" % reaction)
        # a 100 KB multiget line is legal: memcached serves it
        keys = [b"keep:%03d" % (i % 100) if i % 50 == 0 else b"nokey%06d" % i for i in range(10000)]
        line = b"get " + b" ".join(keys) + b"\r\n"
        r = self.raw()
        try:
            r.send(line + b"version\r\n")
            status, lines = until_version(r, timeout=10)
            expect(status != "QUIET", "a %d-byte get line: no reply\n%s" % (len(line), r.transcript()))
            if status == "SYNC" and lines and lines[0].startswith(b"VALUE"):
                expect(lines[-1] == b"END", "multiget of 10000 keys: no END\n" + r.transcript())
                outcome = "served (%d lines)" % len(lines)
            else:
                outcome = "refused: %s %s" % (status, lines[:2])
                expect(self.suite.zpage_only() and (status == "CLOSED" or kind(lines[0]) in ("CLIENT_ERROR",
                                                                                          "SERVER_ERROR")),
                       "a %d-byte get line: %s\n%s" % (len(line), outcome, r.transcript()))
            print("  get of 10000 keys in one %d-byte line -> %s" % (len(line), outcome))
        finally:
            r.close()
        self.intact("long lines")

    def vanishing_clients(self):
        c = pc(self.port)
        big = self.items[b"keep:big"]
        cases = [
            ("after the command line", b"set vc:k 0 0 100\r\n"),
            ("mid-data", b"set vc:k 0 0 100000\r\n" + H.text_value(50000, self.rng)),
            ("mid-data of a value over -I", b"set vc:k 0 0 2000000\r\n" + H.text_value(500000, self.rng)),
            ("mid-data, declared 2^31-10 bytes", b"set vc:k 0 0 2147483638\r\n" + H.text_value(1000000, self.rng)),
            ("mid-line", b"set vc:k 0 0"),
            ("mid-multiget line", b"get keep:000 keep:001 kee"),
        ]
        for name, payload in cases:
            self.suite.step("vanishing client " + name)
            c.set(b"vc:k", (b"before", 3))
            r = self.raw()
            try:
                r.send(payload)
                time.sleep(0.1)
            finally:
                r.close()
            time.sleep(0.05)
            got = c.get(b"vc:k")
            if self.suite.reference and "over -I" not in name and "2^31" not in name:
                expect(got == (b"before", 3), "memcached changed vc:k when a client vanished %s: %r" % (name, got))
            expect(got in ((b"before", 3), None), "client vanished %s: vc:k holds %r" % (name, got))
            print("  client vanished %-32s -> vc:k %s" % (name, "kept" if got else "gone (a failed set drops it)"))
            self.intact("a client vanishing " + name)
        # mid-get-response: a tiny receive buffer, 20 pipelined gets of 1 MB, read 1000 bytes, then reset
        for linger in (False, True):
            r = self.raw(rcvbuf=4096)
            try:
                r.send(b"get keep:big\r\n" * 20)
                time.sleep(0.2)
                got = r.sock.recv(1000)
                expect(got.startswith(b"VALUE keep:big"), "get response starts %s" % short(got))
                if linger:  # RST instead of FIN
                    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            finally:
                r.close()
            time.sleep(0.1)
            print("  client vanished mid-get-response (%s) -> server alive" % ("RST" if linger else "FIN"))
            self.intact("a client vanishing mid-get-response")
        expect(c.get(b"keep:big") == big, "keep:big after the vanishing readers")

    def slow_reader(self):
        """A client sends gets for 1 MB values and never reads: others are served at normal speed."""
        c = pc(self.port)
        t = time.monotonic()
        for i in range(100):
            c.get(b"keep:%03d" % i)
        for i in range(5):
            c.get(b"keep:big")
        baseline = time.monotonic() - t
        rss0 = self.rss()
        slow = []
        n_slow = 2 * THREADS  # more stalled connections than worker threads
        for _ in range(n_slow):
            r = self.raw(rcvbuf=4096)
            r.send(b"get keep:big\r\n" * 50)
            slow.append(r)
        try:
            time.sleep(0.3)
            t = time.monotonic()
            for i in range(100):
                k = b"keep:%03d" % i
                try:
                    got = c.get(k)
                except Exception as e:
                    fail("get %s while %d clients stall (the server has %d threads): %s: %s"
                         % (k.decode(), n_slow, THREADS, type(e).__name__, e))
                expect(got == self.items[k], "get %s while a client is stalled" % k.decode())
            for i in range(5):
                expect(c.get(b"keep:big") == self.items[b"keep:big"], "get keep:big while a client is stalled")
            c.set(b"slow:set", (b"x", 0))
            expect(c.get(b"slow:set") == (b"x", 0), "set/get while a client is stalled")
            other = time.monotonic() - t
            limit = max(2.0, 10 * baseline)
            print("  100 small + 5 large gets: %.3f s alone, %.3f s with %d stalled 50 MB readers (limit %.1f s); "
                  "server RSS %s -> %s KiB" % (baseline, other, n_slow, limit, rss0, self.rss()))
            expect(other < limit, "other clients slowed from %.3f s to %.3f s by a client that does not read"
                   % (baseline, other))
            # the stalled client can still be drained completely and gets byte-exact values
            r = slow[0]
            r.sock.settimeout(10)
            v, f = self.items[b"keep:big"]
            for i in range(50):
                line = r.readline(timeout=10)
                expect(line == b"VALUE keep:big %d %d" % (f, len(v)), "stalled reader, reply %d: %s" % (i, short(line)))
                expect(r.read_exact(len(v) + 2, timeout=10) == v + b"\r\n", "stalled reader, value %d differs" % i)
                expect(r.readline(timeout=10) == b"END", "stalled reader, END %d" % i)
        finally:
            for r in slow:
                r.close()
        self.intact("slow readers")

    def stalled_readers_memory(self):
        """Clients that pipeline gets of a 1 MB value and never read must not make the server buffer their
        replies: 4 such clients with 200 gets each (800 MB of replies) may grow the server by a bounded amount
        (memcached: by nothing; it reads a connection's next command only once the last reply is sent).
        A fresh server, so that earlier checks' freed memory does not hide the growth. The RSS bound is not
        checked on sanitizer builds (ASan's quarantine holds freed memory)."""
        n_clients, n_gets = 4, 200
        per_conn_mb, slack_mb = 16, 32
        srv = H.Server(self.suite.args.server, self.suite.reference, memory_mb=MEMORY_MB, threads=THREADS,
                       name="stalled")
        with srv:
            big = self.items[b"keep:big"]
            small = (b"small value", 3)
            c = pc(srv.port)
            expect(c.set(b"keep:big", big) is True and c.set(b"small", small) is True, "set")
            rss0 = peak = self.rss(srv)
            slow = []
            try:
                for _ in range(n_clients):
                    r = H.Raw(srv.port, rcvbuf=4096)
                    r.send(b"get keep:big\r\n" * n_gets)
                    slow.append(r)
                t = time.monotonic()
                while time.monotonic() - t < 3.0:
                    time.sleep(0.2)
                    peak = max(peak, self.rss(srv) or 0)
                try:
                    got = pc(srv.port).get(b"small")
                except Exception as e:
                    fail("a new client is not served while %d clients stall: %s: %s" % (n_clients, type(e).__name__, e))
                expect(got == small, "small value while clients stall: %r" % (got,))
            finally:
                for r in slow:
                    r.close()
            grown = (peak - rss0) >> 10
            limit = n_clients * per_conn_mb + slack_mb
            sanitized = self.sanitized()
            print("  %d clients x %d pipelined 1 MB gets, never read: server RSS %d -> peak %d MiB "
                  "(+%d MiB; bound %d MiB%s)" % (n_clients, n_gets, rss0 >> 10, peak >> 10, grown, limit,
                                                 ", not checked: sanitizer build" if sanitized else ""))
            if not sanitized:
                expect(grown <= limit, "the server grew by %d MiB buffering replies for %d clients that do not read "
                       "(%d MiB of replies asked for); memcached grows by ~0" % (grown, n_clients, n_clients * n_gets))
            expect(pc(srv.port).get(b"keep:big") == big, "keep:big after the stalled readers left")
        self.intact("stalled readers")

    def sanitized(self):
        try:
            with open(self.suite.args.server, "rb") as f:
                data = f.read()
            return b"__asan_init" in data or b"__tsan_init" in data or b"__ubsan_handle" in data
        except OSError:
            return False

    def rss(self, srv=None):
        try:
            with open("/proc/%d/status" % (srv or self.suite.server).proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None

    def binary_protocol_request(self):
        """A binary-protocol GET header (memcached speaks binary too; a text-only server may error or wait)."""
        hdr = bytes([0x80, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) + b"abc"
        r = self.raw()
        try:
            r.send(hdr)
            status, lines = r.closed_or_replies(timeout=1.0)
            print("  binary GET header -> %s, lines %s, other bytes %s"
                  % (status, [short(x, 40) for x in lines[:2]], short(r.buf, 40)))
        finally:
            r.close()
        self.intact("a binary-protocol request")

    def pipelined_mixed(self):
        """Good and bad commands in one write: replies in order, the bad ones do not disturb the good ones."""
        v, f = self.items[b"keep:002"]
        r = self.raw()
        try:
            r.send(b"get keep:002\r\nbogus\r\nset pm:x 7 0 1\r\nz\r\nset pm:y abc 0 1\r\nget pm:x\r\n"
                   b"incr pm:x 1\r\ndelete pm:x\r\nversion\r\n")
            expect(r.readline() == b"VALUE keep:002 %d %d" % (f, len(v)), r.transcript())
            expect(r.read_exact(len(v) + 2) == v + b"\r\n" and r.readline() == b"END", r.transcript())
            expect(r.readline() == b"ERROR", "bogus\n" + r.transcript())
            expect(r.readline() == b"STORED", "set\n" + r.transcript())
            line = r.readline()
            expect(kind(line) == "CLIENT_ERROR", "set with bad flags\n" + r.transcript())
            # no data block follows the unparsable set: the next line is a command again
            expect(r.readline() == b"VALUE pm:x 7 1" and r.read_exact(3) == b"z\r\n" and r.readline() == b"END",
                   r.transcript())
            line = r.readline()
            expect(kind(line) == "CLIENT_ERROR", "incr of z\n" + r.transcript())
            expect(r.readline() == b"DELETED", r.transcript())
            expect(r.readline().startswith(b"VERSION "), r.transcript())
        finally:
            r.close()
        self.intact("pipelined good and bad commands")

    def bare_newlines(self):
        """memcached also ends command lines at a bare \\n. Only a note if a server waits for \\r\\n."""
        v, f = self.items[b"keep:003"]
        r = self.raw()
        try:
            r.send(b"get keep:003\n")
            status, lines = r.closed_or_replies(timeout=1.0)
            ok = status == "QUIET" and lines[:1] == [b"VALUE keep:003 %d %d" % (f, len(v))]
            if self.suite.reference:
                expect(ok, "memcached and a bare \\n: %s %s" % (status, lines[:2]))
            elif not ok:
                self.notes.append("`get key\\n` (bare LF) -> %s %s; memcached answers it" % (status, lines[:1]))
            print("  get ending in a bare \\n -> %s" % ("served" if ok else "%s %s" % (status, lines[:1])))
        finally:
            r.close()
        self.intact("bare newlines")

    def many_connections(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = N_CONNS + 200
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)), hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        expect(soft >= want, "RLIMIT_NOFILE %d, need %d for %d connections" % (soft, want, N_CONNS))
        socks = []
        sel = selectors.DefaultSelector()
        t0 = time.monotonic()
        try:
            for i in range(N_CONNS):
                s = socket.create_connection((H.HOST, self.port), timeout=H.SOCKET_TIMEOUT)
                socks.append(s)
            t_conn = time.monotonic() - t0
            small = sorted(k for k, (v, f) in self.items.items() if len(v) <= 10000)
            for i, s in enumerate(socks):
                s.sendall(b"get %s\r\n" % small[i % len(small)])
            pending = {}
            for i, s in enumerate(socks):
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, i)
                k = small[i % len(small)]
                v, f = self.items[k]
                pending[i] = [b"", b"VALUE %s %d %d\r\n" % (k, f, len(v)) + v + b"\r\nEND\r\n"]
            deadline = time.monotonic() + 30
            while pending and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=1.0):
                    i = key.data
                    try:
                        data = key.fileobj.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        fail("connection %d of %d: %s" % (i, N_CONNS, e))
                    if not data:
                        fail("connection %d of %d closed by the server before its reply" % (i, N_CONNS))
                    buf, want_reply = pending[i]
                    buf += data
                    if len(buf) >= len(want_reply):
                        expect(buf == want_reply, "connection %d: wrong reply %s" % (i, short(buf)))
                        del pending[i]
                        sel.unregister(key.fileobj)
                    else:
                        pending[i][0] = buf
            expect(not pending, "%d of %d connections got no complete reply within 30 s" % (len(pending), N_CONNS))
            t_served = time.monotonic() - t0
            st = pc(self.port).stats()
            expect(st[b"curr_connections"] >= N_CONNS, "stats curr_connections %d with %d open"
                   % (st[b"curr_connections"], N_CONNS))
            print("  %d connections open (connect %.2f s), each served (%.2f s); curr_connections %d"
                  % (N_CONNS, t_conn, t_served, st[b"curr_connections"]))
        finally:
            sel.close()
            for s in socks:
                s.close()
        deadline = time.monotonic() + 5
        while True:
            cur = pc(self.port).stats()[b"curr_connections"]
            if cur < 20 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        expect(cur < 20, "curr_connections still %d 5 s after closing %d connections" % (cur, N_CONNS))
        print("  curr_connections %d %.2f s after closing them" % (cur, time.monotonic() - t0 - t_served))
        self.intact("%d connections" % N_CONNS)

    def connection_limit(self):
        """-c small: connections past the limit get an error and/or are closed; the server lives on."""
        # memcached lowers its RLIMIT_NOFILE to -c and needs some of those descriptors itself: it cannot start
        # with -c 10 (its listening socket and worker eventfds fail); -c 16 -t 1 is its smallest clean setting.
        limit, threads = (16, 1) if self.suite.reference else (10, 2)
        srv = H.Server(self.suite.args.server, self.suite.reference, memory_mb=16, conns=limit, threads=threads,
                       name="climit")
        with srv:
            conns = []
            served, refused, refused_msgs = [], [], set()
            try:
                for i in range(40):
                    try:
                        r = H.Raw(srv.port, timeout=3)
                    except OSError as e:
                        refused.append(i)
                        refused_msgs.add("connect: %s" % type(e).__name__)
                        continue
                    conns.append(r)
                    try:
                        r.send(b"version\r\n")
                    except OSError as e:
                        refused.append(i)
                        refused_msgs.add("send: %s" % type(e).__name__)
                        continue
                    line = r.reply(timeout=3.0)
                    if isinstance(line, bytes) and line.startswith(b"VERSION "):
                        served.append(i)
                    elif line == "CLOSED":
                        refused.append(i)
                        refused_msgs.add("(closed without a reply)")
                    elif isinstance(line, bytes) and r.reply(timeout=3.0) == "CLOSED":
                        refused.append(i)
                        refused_msgs.add(line.decode("latin-1"))
                    else:
                        fail("connection %d with -c %d: neither served nor refused (error and close) within 3 s\n%s"
                             % (i, limit, r.transcript()))
                print("  -c %d -t %d: of 40 connections %d served, %d refused with %s"
                      % (limit, threads, len(served), len(refused), sorted(refused_msgs)))
                expect(1 <= len(served) <= limit, "-c %d: %d connections served" % (limit, len(served)))
                expect(len(served) + len(refused) == 40, "connections unaccounted for")
                if self.suite.reference:
                    expect(refused_msgs == {"ERROR Too many open connections"}, "memcached refusal %s" % refused_msgs)
                for r in conns:  # the served ones still work
                    if r.log and r.log[-1][1].startswith(b"VERSION "):
                        r.send(b"version\r\n")
                        expect(r.readline().startswith(b"VERSION "), "a served connection stopped working\n"
                               + r.transcript())
                expect(srv.alive(), "server with -c %d died" % limit)
            finally:
                for r in conns:
                    r.close()
            time.sleep(0.3)
            deadline = time.monotonic() + 5
            while True:  # once the others are closed a new client is served again
                r = H.Raw(srv.port, timeout=3)
                try:
                    r.send(b"version\r\n")
                    status, lines = r.closed_or_replies(timeout=1.0)
                finally:
                    r.close()
                if lines and lines[0].startswith(b"VERSION "):
                    break
                expect(time.monotonic() < deadline, "-c %d: no connection served 5 s after the others closed: %s %s"
                       % (limit, status, lines))
                time.sleep(0.2)
            expect(srv.alive(), "server with -c %d died" % limit)


def main():
    args = H.parse_args(__doc__)
    suite = H.Suite("test_bad_input", args)
    t = T(suite)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < MAX_CONNS + 400 and hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, MAX_CONNS + 400), hard))  # the server inherits it
    suite.step("start server")
    suite.server = H.Server(args.server, args.reference, memory_mb=MEMORY_MB, conns=MAX_CONNS, threads=THREADS,
                            name="main").start()
    suite.on_restart = t.populate
    try:
        suite.check("populate", t.populate, always=True)
        suite.check("malformed_commands", t.malformed_commands)
        suite.check("huge_lengths", t.huge_lengths)
        suite.check("long_keys", t.long_keys)
        suite.check("control_char_keys", t.control_char_keys)
        suite.check("too_large_value", t.too_large_value)
        suite.check("bad_data_chunk", t.bad_data_chunk)
        suite.check("long_line", t.long_line)
        suite.check("pipelined_mixed", t.pipelined_mixed)
        suite.check("bare_newlines", t.bare_newlines)
        suite.check("binary_protocol_request", t.binary_protocol_request)
        suite.check("vanishing_clients", t.vanishing_clients)
        suite.check("slow_reader", t.slow_reader)
        suite.check("stalled_readers_memory", t.stalled_readers_memory)
        suite.check("many_connections", t.many_connections)
        suite.check("connection_limit", t.connection_limit)
        suite.check("final_intact", t.intact, "all cases")
    finally:
        for n in t.notes:
            print("NOTE %s" % n)
        rc = suite.finish()
    sys.exit(rc)


if __name__ == "__main__":
    main()
