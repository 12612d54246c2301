"""e2e_lib.py: what the end-to-end drivers share.

Starts contactd on a free loopback port (it is given 127.0.0.1:0 and reports
the port the kernel chose, so two tests never race for a port), reads the
key it prints, drives it with real clients (curl over HTTP/1.1, h2c with
prior knowledge and with Upgrade, TLS with ALPN; nghttp), and makes sure no
server outlives the run: every server started is killed at exit, and every
wait has a timeout.
"""
import argparse
import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

# Every protocol a client can reach contactd with; TLS ones need a server
# started with a certificate.
CLEAR_PROTOCOLS = ("h1", "h2c", "upgrade")
TLS_PROTOCOLS = ("tls-h1", "tls-h2")

_servers = []

# h2o's per-thread buffer caches are not leaks (see lsan.supp); anything
# else LeakSanitizer finds in a sanitizer build fails the test.
_SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsan.supp")
os.environ["LSAN_OPTIONS"] = ":".join(
    filter(None, [os.environ.get("LSAN_OPTIONS"), f"suppressions={_SUPP}",
                  "print_suppressions=0"]))


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def check_eq(got, want, what):
    if got != want:
        raise Fail(f"{what}: got {got!r}, want {want!r}")


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--contactd", required=True)
    p.add_argument("--keytool", required=True)
    p.add_argument("--hello", required=True)
    p.add_argument("--probe", required=True)
    p.add_argument("--badversion", required=True)
    p.add_argument("--streamer", help="the plugin API 3 test plugin")
    p.add_argument("--plugins", required=True, help="the build's plugin dir")
    p.add_argument("--contactctl", help="the admin tool, when built")
    p.add_argument("--only", help="run only tests whose name has this")
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    p.add_argument("--target", help="a JSON file naming a running server "
                   "(or a proxy in front of servers) to drive instead of "
                   "starting one: {\"url\", \"tls_url\", \"keys\": {\"a\", "
                   "\"b\", \"ro\", \"tls\"}, \"upgrade_version\"}; see "
                   "load_target")
    a = p.parse_args()
    for name in ("contactd", "keytool", "hello", "probe", "badversion",
                 "plugins"):
        setattr(a, name, os.path.abspath(getattr(a, name)))
    for name in ("contactctl", "streamer"):
        if getattr(a, name):
            setattr(a, name, os.path.abspath(getattr(a, name)))
    return a


class Workdir:
    def __init__(self, keep=False):
        self.path = tempfile.mkdtemp(prefix="contactd-e2e-")
        self.keep = keep
        self.count = 0

    def sub(self, name):
        self.count += 1
        p = os.path.join(self.path, f"{self.count:03d}-{name}")
        os.makedirs(p)
        return p

    def plugin_dir(self, name, *sos):
        """A plugin directory holding links to the given shared objects."""
        d = self.sub("plugins-" + name)
        for so in sos:
            os.symlink(so, os.path.join(d, os.path.basename(so)))
        return d

    def cleanup(self):
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)


def _die_with_parent():
    """Runs in the child before exec: the kernel kills the server if the
    driver dies without cleaning up (even by SIGKILL, e.g. a test timeout)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _kill_all():
    for s in _servers:
        s.kill()


atexit.register(_kill_all)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, lambda *_: sys.exit(1))


class Server:
    """One contactd process. start() waits for 'ready' on stderr."""

    def __init__(self, contactd, data_dir, plugins_dir, args=(), tls=None,
                 env=None, listen=("127.0.0.1:0",)):
        self.cmd = [contactd, "--data", data_dir, "--plugins", plugins_dir,
                    "--threads", "2"]
        for addr in listen:
            self.cmd += ["--listen", addr]
        if tls is not None:
            self.cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        self.cmd += list(args)
        self.data_dir = data_dir
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.lines = []
        self.ready = threading.Event()
        self.urls = []
        self.key = None

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            m = re.search(r"listening on (https?://\S+)", line)
            if m:
                self.urls.append(m.group(1))
            m = re.search(r"API key for account default: (ck_[A-Za-z0-9]+)", line)
            if m:
                self.key = m.group(1)
            if " ready (" in line:
                self.ready.set()
        self.ready.set()

    def start(self, timeout=20):
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env,
                                     preexec_fn=_die_with_parent)
        _servers.append(self)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        self.stdout_lines = []
        if not self.ready.wait(timeout) or self.proc.poll() is not None:
            self.kill()
            raise Fail("contactd did not start: " + " ".join(self.cmd) +
                       "\n" + self.stderr())
        if self.key is None:
            path = os.path.join(self.data_dir, "default.key")
            if os.path.exists(path):
                with open(path) as f:
                    self.key = f.read().strip()
        return self

    def _drain_stdout(self):
        while self.proc is None:
            time.sleep(0.01)
        for raw in self.proc.stdout:
            self.stdout_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def url(self):
        return self.urls[0]

    def stderr(self):
        return "\n".join(self.lines)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=40):
        """Sends sig and returns the exit status (killing on timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Fail(f"contactd did not stop within {timeout}s of {sig}")
        time.sleep(0.05)  # let the reader threads see the last lines
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass


class Remote:
    """A server the driver did not start (--target): what a driver reads
    of a Server. Stopping it is its owner's business."""

    def __init__(self, url, key=None):
        self.url = url
        self.urls = [url]
        self.key = key
        self.lines = []
        self.proc = None

    def stop(self, sig=signal.SIGTERM, timeout=40):
        return 0

    def stderr(self):
        return ""

    def kill(self):
        pass


def load_target(args):
    """The --target file (a dict), or None without one. It names a running
    server by "url" (in the clear) and "tls_url", keys made for the
    driver's use in "keys": "a" and "b" of two accounts, "ro" a read-only
    key of a's account, "tls" a key for the TLS address; and
    "upgrade_version", the HTTP version an `Upgrade: h2c` request is
    answered in there ("2" from contactd itself; "1.1" through HAProxy,
    which does not do the upgrade). A driver tests through it what it
    tests on a server of its own, leaving out what needs a server it
    starts and stops itself."""
    if not args.target:
        return None
    with open(args.target) as f:
        t = json.load(f)
    for k in ("url", "tls_url", "keys"):
        check(k in t, f"--target {args.target}: no {k!r}")
    if t.get("upgrade_version"):
        _PROTO_VERSION["upgrade"] = t["upgrade_version"]
    return t


def run_contactd(contactd, args, timeout=20, env=None):
    """Runs contactd expecting it to exit on its own: (rc, stdout, stderr)."""
    p = subprocess.run([contactd] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})),
                       preexec_fn=_die_with_parent)
    return p.returncode, p.stdout.decode(errors="replace"), \
        p.stderr.decode(errors="replace")


class Raw:
    """One HTTP answer as a test reads it: status, headers (lower-case name
    -> value, the last one), body bytes."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value (last one)
        self.body = body

    @classmethod
    def read(cls, r):
        """The answer of an http.client response r, its body read whole."""
        return cls(r.status, {k.lower(): v for k, v in r.getheaders()},
                   r.read())

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise Fail(f"not JSON ({self.status}): {self.body[:300]!r}")

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:200]!r}>"


class Resp(Raw):
    """An answer that keeps every value of a header and the HTTP version."""

    def __init__(self, status, version, headers, body):
        super().__init__(status, headers, body)
        self.version = version  # headers: lower-case name -> list of values

    def header(self, name):
        v = self.headers.get(name.lower())
        return v[-1] if v else None

    def __repr__(self):
        return (f"<{self.status} HTTP/{self.version} {self.headers} "
                f"{self.body[:200]!r}>")


_PROTO_FLAGS = {
    "h1": ["--http1.1"],
    "h2c": ["--http2-prior-knowledge"],
    "upgrade": ["--http2"],
    "tls-h1": ["--http1.1", "-k"],
    "tls-h2": ["--http2", "-k"],
}
_PROTO_VERSION = {"h1": "1.1", "h2c": "2", "upgrade": "2", "tls-h1": "1.1",
                  "tls-h2": "2"}

_tmp_counter = [0]


def curl(url, proto="h1", method="GET", headers=(), data=None, timeout=20,
         extra=(), workdir=None):
    """One request with curl; data is bytes/str (sent as is) or None."""
    tmp = workdir or tempfile.gettempdir()
    _tmp_counter[0] += 1
    base = os.path.join(tmp, f"curl-{os.getpid()}-{_tmp_counter[0]}")
    cmd = ["curl", "-sS", "-o", base + ".body", "-D", base + ".hdr",
           "-w", "%{http_code} %{http_version}", "--max-time", str(timeout)]
    cmd += _PROTO_FLAGS[proto]
    if method == "HEAD":
        cmd += ["--head"]
    elif method != "GET" or data is not None:
        cmd += ["-X", method]
    for h in headers:
        cmd += ["-H", h]
    if data is not None:
        with open(base + ".data", "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        cmd += ["--data-binary", "@" + base + ".data"]
    cmd += list(extra) + [url]
    p = subprocess.run(cmd, capture_output=True, timeout=timeout + 10)
    try:
        out = p.stdout.decode().split()
        if p.returncode != 0 or len(out) != 2:
            raise Fail(f"curl {' '.join(cmd)} failed ({p.returncode}): "
                       f"{p.stderr.decode(errors='replace')}")
        with open(base + ".hdr", "rb") as f:
            raw = f.read().decode("latin-1")
        body = b""
        if os.path.exists(base + ".body"):
            with open(base + ".body", "rb") as f:
                body = f.read()
    finally:
        for ext in (".body", ".hdr", ".data"):
            try:
                os.unlink(base + ext)
            except FileNotFoundError:
                pass
    # The last block is the final response (after 100 Continue or 101).
    blocks = [b for b in re.split(r"\r?\n\r?\n", raw) if b.startswith("HTTP/")]
    headers = {}
    for line in blocks[-1].splitlines()[1:] if blocks else []:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.setdefault(k.strip().lower(), []).append(v.strip())
    if method == "HEAD":
        # curl --head writes the headers where the body would go.
        check(body.endswith(b"\r\n\r\n") or body.endswith(b"\n\n") or
              body == b"", f"HEAD answered with a body: {body[-100:]!r}")
        body = b""
    r = Resp(int(out[0]), out[1], headers, body)
    check_eq(r.version, _PROTO_VERSION[proto], f"protocol of {proto} request")
    return r


def nghttp(url, headers=(), data=None, upgrade=False, timeout=20,
           workdir=None):
    """One request with nghttp: (status, headers dict, body bytes)."""
    cmd = ["nghttp", "-v", "-t", str(timeout)]
    if upgrade:
        cmd.append("-u")
    for h in headers:
        cmd += ["-H", h]
    if data is not None:
        tmp = workdir or tempfile.gettempdir()
        path = os.path.join(tmp, f"nghttp-{os.getpid()}.data")
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        cmd += ["-d", path]
    cmd.append(url)
    p = subprocess.run(cmd, capture_output=True, timeout=timeout + 10)
    text = p.stdout.decode("utf-8", "replace")
    check(p.returncode == 0, f"nghttp {url} failed: {text[-500:]}")
    status = None
    hdrs = {}
    for m in re.finditer(r"recv \(stream_id=\d+\) ([^\s:]+|:status): (.*)", text):
        name, value = m.group(1), m.group(2).strip()
        if name == ":status":
            status = int(value)
        else:
            hdrs[name] = value
    check(status is not None, f"nghttp {url}: no status in output")
    return status, hdrs, text


def make_cert(workdir):
    d = workdir.sub("tls")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def keytool(args, data_dir, *rest):
    p = subprocess.run([args.keytool, data_dir] + list(rest),
                       capture_output=True, timeout=30)
    check(p.returncode == 0,
          f"fe_e2e_keys {' '.join(rest)}: {p.stderr.decode(errors='replace')}")
    return p.stdout.decode().strip()


def run_tests(tests, args, setup=None):
    """Runs each test function (name, fn) and prints a summary; returns the
    process exit status."""
    failed = []
    ran = 0
    start = time.time()
    for name, fn in tests:
        if args.only and args.only not in name:
            continue
        ran += 1
        t0 = time.time()
        try:
            fn()
            print(f"ok   {name} ({time.time() - t0:.1f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every kind of failure
            failed.append(name)
            print(f"FAIL {name}: {e}", flush=True)
            if not isinstance(e, Fail):
                traceback.print_exc()
    print(f"{ran - len(failed)}/{ran} passed in {time.time() - start:.1f}s")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


def sanitizer_lines(server):
    """The lines of a server's stderr where a sanitizer build reported."""
    return [line for line in server.lines
            if "AddressSanitizer" in line or "runtime error" in line]


def run_and_stop(tests, args, server, work):
    """Runs the tests, then stops server (SIGTERM): an exit status other
    than 0 or a sanitizer's report fails the run too. Cleans work up either
    way; returns the process exit status."""
    try:
        status = run_tests(tests, args)
        rc = server.stop()
        if rc != 0:
            print(f"FAIL the server exited {rc}:\n{server.stderr()}")
            status = 1
        if sanitizer_lines(server):
            print(f"FAIL the server reported:\n{server.stderr()}")
            status = 1
    finally:
        work.cleanup()
    return status
