"""Shared helpers for the zpage-memcached client tests (see CMakeLists.txt in this directory).

Every script: `/usr/bin/python3 <script> [--server PATH] [--reference] [--deadline S]`.
--reference means PATH is the real memcached: it gets `-u root` when we are root and the
zpage-only checks are skipped. Each script prints one PASS/FAIL/SKIP line per check and exits 1
if any check failed. A watchdog thread ends the process (exit 1, naming the step it was in) if
the whole script runs past its deadline, so a hang fails instead of stalling CI.
"""

import argparse
import atexit
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

DEFAULT_SERVER = "/work/main/build/release/examples/zpage-memcached"
HOST = "127.0.0.1"
SOCKET_TIMEOUT = 5.0  # every client and raw socket: a reply slower than this is a failure


class CheckFailed(Exception):
    pass


def fail(msg):
    raise CheckFailed(msg)


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def short(data, limit=160):
    """repr of bytes, shortened in the middle past `limit` bytes."""
    if data is None:
        return "None"
    if len(data) <= limit:
        return repr(data)
    half = limit // 2
    return "%r ...(%d bytes in all)... %r" % (data[:half], len(data), data[-half:])


# ---- watchdog ------------------------------------------------------------------------------------

class Watchdog:
    """Hard deadline for the whole script: os._exit(1) naming the step it was in."""

    def __init__(self, seconds):
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.step_name = "startup"
        self._lock = threading.Lock()
        t = threading.Thread(target=self._run, name="watchdog", daemon=True)
        t.start()

    def step(self, name):
        with self._lock:
            self.step_name = name

    def _run(self):
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.5))
        with self._lock:
            step = self.step_name
        msg = "WATCHDOG: hard deadline of %.0f s exceeded in step '%s': FAIL (hang?)\n" % (self.seconds, step)
        try:
            sys.stderr.write(msg)
            sys.stdout.write(msg)
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        _kill_all_servers()
        os._exit(1)


# ---- servers -------------------------------------------------------------------------------------

_servers = []
_servers_lock = threading.Lock()


def _kill_all_servers():
    with _servers_lock:
        servers = list(_servers)
    for s in servers:
        try:
            if s.proc is not None and s.proc.poll() is None:
                s.proc.kill()
        except Exception:
            pass


atexit.register(_kill_all_servers)


def _on_signal(signum, frame):
    """ctest's timeout sends SIGTERM: take the servers down too, then fail."""
    sys.stdout.write("FAIL: killed by signal %d; stopping the servers\n" % signum)
    sys.stdout.flush()
    _kill_all_servers()
    os._exit(1)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)

try:  # servers get SIGKILL if this script dies without cleaning up (prctl PR_SET_PDEATHSIG)
    import ctypes
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl

    def _die_with_parent():
        _prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG; the servers are started from the main thread
except Exception:  # not Linux, or no ctypes
    _die_with_parent = None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """One server process on 127.0.0.1 and a free port; its stdout/stderr go to a log file."""

    def __init__(self, binary, reference, memory_mb=64, conns=1024, threads=4, max_item="1m", verbose=False,
                 extra=(), name="server"):
        self.binary = binary
        self.reference = reference
        self.memory_mb = memory_mb
        self.conns = conns
        self.threads = threads
        self.max_item = max_item
        self.verbose = verbose
        self.extra = list(extra)
        self.name = name
        self.proc = None
        self.port = None
        self.log_path = None
        self.argv = None

    def start(self, timeout=10.0):
        last_err = None
        for _attempt in range(3):
            self.port = free_port()
            argv = [self.binary, "-p", str(self.port), "-l", HOST, "-m", str(self.memory_mb), "-c", str(self.conns),
                    "-t", str(self.threads), "-I", str(self.max_item)]
            if self.verbose:
                argv.append("-v")
            if self.reference and os.geteuid() == 0:
                argv += ["-u", "root"]
            argv += self.extra
            self.argv = argv
            fd, self.log_path = tempfile.mkstemp(prefix="%s-" % self.name, suffix=".log")
            log = os.fdopen(fd, "wb")
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)
            log.close()
            with _servers_lock:
                _servers.append(self)
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    break
                try:
                    with socket.create_connection((HOST, self.port), timeout=1.0):
                        return self
                except OSError:
                    time.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                fail("%s did not accept a TCP connection on %s:%d within %.0f s; argv %s; log:\n%s"
                     % (self.name, HOST, self.port, timeout, " ".join(argv), self.log_tail()))
            last_err = "%s exited with code %s at startup; argv %s; log:\n%s" % (
                self.name, self.proc.returncode, " ".join(argv), self.log_tail())
            if "in use" not in self.log_tail().lower():
                break
        fail(last_err)

    @property
    def addr(self):
        return (HOST, self.port)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
            return data[-n:].decode("utf-8", "replace")
        except Exception as e:
            return "(no log: %s)" % e

    def sanitizer_report(self):
        """The sanitizer (ASan/UBSan/TSan) report in the server's log, if any."""
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except Exception:
            return None
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
                       "runtime error:", "ERROR: ThreadSanitizer"):
            i = data.find(marker)
            if i >= 0:
                return data[max(0, i - 200):i + 3000]
        return None

    def kill(self):
        """SIGKILL, for tests that make a server vanish."""
        self.killed = True
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def stop(self):
        """SIGTERM, then SIGKILL after 5 s. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with _servers_lock:
            if self in _servers:
                _servers.remove(self)
        return self.proc.returncode

    def __enter__(self):
        return self.start() if self.proc is None else self

    def remove_log(self):
        try:
            if self.log_path:
                os.unlink(self.log_path)
        except OSError:
            pass

    def __exit__(self, *exc):
        if self.proc is not None and not self.alive() and not getattr(self, "killed", False):
            print("  server %s died (exit code %s); argv %s; log tail:\n%s"
                  % (self.name, self.proc.returncode, " ".join(self.argv), self.log_tail()))
        self.stop()
        rep = self.sanitizer_report()
        self.remove_log()
        if rep and exc[0] is None:
            fail("sanitizer report in %s's log:\n%s" % (self.name, rep))
        return False


# ---- command line and checks ---------------------------------------------------------------------

def parse_args(description, extra=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--server", default=DEFAULT_SERVER, help="server binary (default: %(default)s)")
    p.add_argument("--reference", action="store_true",
                   help="the binary is the real memcached: pass -u root, skip zpage-only checks")
    p.add_argument("--deadline", type=float, default=float(os.environ.get("ZPAGE_MC_DEADLINE", 240)),
                   help="hard deadline for the whole script in seconds (default %(default)s)")
    p.add_argument("--only", default=None, help="run only the checks whose name contains this")
    if extra:
        extra(p)
    args = p.parse_args()
    if not os.path.exists(args.server):
        print("FAIL setup: server binary %s does not exist" % args.server)
        sys.exit(2)
    return args


class Suite:
    """Runs checks, prints one line each, keeps going after a failure, and watches the server.

    `server` (optional) is the suite's main server: after every check it must still be running;
    if it died, the check fails (exit code and log tail printed) and the server is restarted (with
    `on_restart(server)` called) so that the remaining checks still run.
    """

    def __init__(self, name, args):
        self.name = name
        self.args = args
        self.reference = args.reference
        self.failures = []
        self.passed = 0
        self.skipped = 0
        self.server = None
        self.on_restart = None
        self.watchdog = Watchdog(args.deadline)
        self.t0 = time.monotonic()
        print("%s: server %s%s" % (name, args.server, " (reference memcached)" if args.reference else ""))
        sys.stdout.flush()

    def step(self, name):
        self.watchdog.step(name)

    def zpage_only(self):
        return not self.reference

    def check(self, name, fn, *a, zpage_only=False, always=False, **kw):
        """Run one check; `always`: even when --only names other checks (setup steps)."""
        if self.args.only and self.args.only not in name and not always:
            return
        if zpage_only and self.reference:
            print("SKIP %s (zpage-only check; --reference)" % name)
            self.skipped += 1
            sys.stdout.flush()
            return
        self.watchdog.step(name)
        t = time.monotonic()
        ok = True
        try:
            fn(*a, **kw)
        except CheckFailed as e:
            ok = False
            msg = str(e)
        except Exception as e:  # a client exception is a failed check too
            ok = False
            msg = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
        if self.server is not None and not self.server.alive():
            died = "server process died (exit code %s) during check '%s'; argv %s; log tail:\n%s" % (
                self.server.proc.returncode, name, " ".join(self.server.argv), self.server.log_tail())
            msg = died if ok else msg + "\n" + died
            ok = False
        if self.server is not None and self.server.alive():
            rep = self.server.sanitizer_report()
            if rep:
                msg = ("" if ok else msg + "\n") + "sanitizer report in the server log:\n" + rep
                ok = False
        dt = time.monotonic() - t
        if ok:
            self.passed += 1
            print("PASS %s (%.2f s)" % (name, dt))
        else:
            self.failures.append(name)
            print("FAIL %s (%.2f s): %s" % (name, dt, msg))
            if self.server is not None and not self.server.alive():
                self.watchdog.step("restart after " + name)
                old = self.server
                print("  (log of the server that died: %s)" % old.log_path)
                self.server = Server(old.binary, old.reference, old.memory_mb, old.conns, old.threads, old.max_item,
                                     old.verbose, old.extra, old.name)
                self.server.start()
                if self.on_restart:
                    self.on_restart(self.server)
        sys.stdout.flush()

    def finish(self):
        dt = time.monotonic() - self.t0
        if self.server is not None:
            self.watchdog.step("final server stop")
            self.server.stop()
            rep = self.server.sanitizer_report()
            if rep:
                self.failures.append("sanitizer")
                print("FAIL sanitizer: report in the server log:\n%s" % rep)
            if self.failures:
                print("server log kept: %s" % self.server.log_path)
            else:
                self.server.remove_log()
        if self.failures:
            print("%s: %d passed, %d skipped, %d FAILED (%s) in %.1f s"
                  % (self.name, self.passed, self.skipped, len(self.failures), ", ".join(self.failures), dt))
            sys.stdout.flush()
            return 1
        print("%s: all %d checks passed (%d skipped) in %.1f s" % (self.name, self.passed, self.skipped, dt))
        sys.stdout.flush()
        return 0


# ---- test data: real text ------------------------------------------------------------------------

_corpus = None


def corpus():
    """About 6 MiB of real text: /usr/share/common-licenses and headers under /usr/include."""
    global _corpus
    if _corpus is not None:
        return _corpus
    parts = []
    total = 0
    roots = ["/usr/share/common-licenses", "/usr/include"]
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in sorted(filenames):
                p = os.path.join(dirpath, fn)
                try:
                    if os.path.islink(p) or not os.path.isfile(p):
                        continue
                    with open(p, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                parts.append(data)
                total += len(data)
                if total >= 6 << 20:
                    break
            if total >= 6 << 20:
                break
    _corpus = b"".join(parts)
    if len(_corpus) < (2 << 20):
        _corpus = (_corpus * (((2 << 20) // max(1, len(_corpus))) + 1))
    return _corpus


def text_value(size, rng):
    """`size` bytes of real text starting at a random place in the corpus."""
    c = corpus()
    if size == 0:
        return b""
    if size >= len(c):
        return (c * (size // len(c) + 1))[:size]
    start = rng.randrange(0, len(c) - size)
    return c[start:start + size]


def text_files(min_size=1, max_size=900 * 1024, limit=40):
    """Real files to copy around: licenses and headers, with a spread of sizes."""
    out = []
    for p in sorted(os.listdir("/usr/share/common-licenses")):
        full = os.path.join("/usr/share/common-licenses", p)
        if os.path.isfile(full) and not os.path.islink(full):
            out.append(full)
    for root in ["/usr/include", "/usr/include/linux", "/usr/include/c++/12/bits"]:
        if not os.path.isdir(root):
            continue
        for p in sorted(os.listdir(root)):
            full = os.path.join(root, p)
            if os.path.isfile(full) and not os.path.islink(full):
                out.append(full)
    sized = [(os.path.getsize(p), p) for p in out]
    sized = [(s, p) for s, p in sized if min_size <= s <= max_size]
    # a spread: the largest few plus an even sample of the rest
    sized.sort()
    pick = sized[-5:]
    rest = sized[:-5]
    step = max(1, len(rest) // max(1, limit - len(pick)))
    pick += rest[::step]
    return [p for _, p in pick[:limit]]


# ---- raw socket with a transcript, for the bad-input tests ---------------------------------------

class Raw:
    """A raw TCP connection that records what was sent and received, for failure messages."""

    def __init__(self, port, timeout=SOCKET_TIMEOUT, rcvbuf=None, connect=True):
        self.port = port
        self.timeout = timeout
        self.log = []
        self.buf = b""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        if connect:
            self.sock.connect((HOST, port))

    def send(self, data):
        self.log.append((">>", data))
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(left)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionResetError("connection closed by the server")
        self.buf += chunk

    def readline(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while b"\r\n" not in self.buf:
                self._fill(deadline)
        except (socket.timeout, OSError) as e:
            self.log.append(("<<", self.buf + b"  [then %s]" % str(e).encode()))
            self.buf = b""
            raise
        line, self.buf = self.buf.split(b"\r\n", 1)
        self.log.append(("<<", line + b"\r\n"))
        return line

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        self.log.append(("<<", data))
        return data

    def reply(self, timeout=None):
        """One reply line, or 'CLOSED' if the server closed the connection, or 'TIMEOUT'."""
        try:
            return self.readline(timeout)
        except socket.timeout:
            return "TIMEOUT"
        except OSError:
            return "CLOSED"

    def closed_or_replies(self, timeout=None):
        """All the lines the server sends until it closes or goes quiet; ('CLOSED'|'QUIET', lines)."""
        lines = []
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                while b"\r\n" not in self.buf:
                    self._fill(deadline)
                line, self.buf = self.buf.split(b"\r\n", 1)
                self.log.append(("<<", line + b"\r\n"))
                lines.append(line)
            except socket.timeout:
                return "QUIET", lines
            except OSError:
                if self.buf:
                    self.log.append(("<<", self.buf))
                    lines.append(self.buf)
                    self.buf = b""
                return "CLOSED", lines

    def get(self, key):
        """`get key` -> (flags, value) or None; raises CheckFailed on a malformed reply."""
        self.send(b"get " + key + b"\r\n")
        line = self.readline()
        if line == b"END":
            return None
        parts = line.split()
        if len(parts) != 4 or parts[0] != b"VALUE" or parts[1] != key:
            fail("bad reply to get: %s\n%s" % (short(line), self.transcript()))
        n = int(parts[3])
        data = self.read_exact(n + 2)
        if data[-2:] != b"\r\n":
            fail("value not followed by \\r\\n\n" + self.transcript())
        end = self.readline()
        if end != b"END":
            fail("no END after the value\n" + self.transcript())
        return int(parts[2]), data[:-2]

    def transcript(self, limit=160):
        lines = []
        for d, data in self.log[-40:]:
            lines.append("  %s %s" % (d, short(data, limit)))
        return "exchange on one connection (>> sent, << received):\n" + "\n".join(lines)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def rng_from_env(name="ZPAGE_MC_SEED"):
    seed = os.environ.get(name)
    seed = int(seed) if seed else random.randrange(1, 2 ** 31)
    return seed, random.Random(seed)
