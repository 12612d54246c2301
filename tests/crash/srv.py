"""srv.py: a contactd process and plain HTTP/1.1 clients, for the crash,
fault and hostile tests (python3 stdlib only).

Contactd starts on 127.0.0.1 port 0 (the kernel picks a free port, which
the server reports on stderr), so tests never race for a port. Every server
started here is killed when the test exits, however it exits, and the whole
test is killed by SIGALRM after its time budget (deadline()), so nothing
outlives a run.
"""
import atexit
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

_procs = []

# h2o's per-thread buffer caches are not leaks (tests/e2e/lsan.supp says
# why); anything else LeakSanitizer finds in a sanitizer build fails the
# server's exit status, which the tests check.
_SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e", "lsan.supp")
os.environ["LSAN_OPTIONS"] = ":".join(
    filter(None, [os.environ.get("LSAN_OPTIONS"), f"suppressions={_SUPP}",
                  "print_suppressions=0"]))


def _kill_all():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_kill_all)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, lambda *_: sys.exit(1))


def deadline(seconds):
    """Kills the test (and, through atexit, its servers) after seconds."""
    def on_alarm(*_):
        sys.stderr.write(f"test exceeded its {seconds}s budget\n")
        _kill_all()
        os._exit(3)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(seconds))


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Contactd:
    """One contactd process on a free loopback port."""

    def __init__(self, binary, plugins, data, args=()):
        self.cmd = [binary, "--data", data, "--plugins", plugins,
                    "--listen", "127.0.0.1:0", "--threads", "2"] + list(args)
        self.data = data
        self.proc = None
        self.lines = []
        self.port = None
        self.key = None

    def start(self, timeout=30):
        self.lines = []
        ready = threading.Event()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        _procs.append(self.proc)

        def read(proc):
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.lines.append(line)
                m = re.search(r"listening on https?://[^:]+:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                m = re.search(r"API key for account default: (ck_\w+)", line)
                if m:
                    self.key = m.group(1)
                if " ready (" in line:
                    ready.set()
            ready.set()
        threading.Thread(target=read, args=(self.proc,), daemon=True).start()
        if not ready.wait(timeout) or self.proc.poll() is not None \
                or self.port is None:
            self.kill()
            raise Fail("contactd did not start: " + " ".join(self.cmd) +
                       "\n" + self.stderr())
        if self.key is None:
            with open(os.path.join(self.data, "default.key")) as f:
                self.key = f.read().strip()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout=40):
        """SIGTERM; returns the exit status."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Fail(f"contactd did not stop within {timeout}s of SIGTERM")

    def stderr(self):
        return "\n".join(self.lines[-40:])

    def client(self, timeout=10):
        return Client(self.port, self.key, timeout)


class Client:
    """A keep-alive HTTP/1.1 connection with the API key set."""

    def __init__(self, port, key, timeout=10):
        self.port = port
        self.key = key
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None, key=True):
        """(status, headers dict lower-case, body bytes). Raises OSError or
        http.client.HTTPException when the connection breaks."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                   timeout=self.timeout)
        h = {}
        if key and self.key:
            h["x-api-key"] = self.key
        if headers:
            h.update(headers)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        try:
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
            data = r.read()
        except Exception:
            self.close()
            raise
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def json(self, method, path, body=None, **kw):
        status, headers, data = self.request(method, path, body, **kw)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, data

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def contactctl(binary, data, *args, timeout=120):
    """Runs contactctl on data; (rc, stdout, stderr)."""
    p = subprocess.run([binary, "--data", data] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), \
        p.stderr.decode("utf-8", "replace")
