"""proxy_lib.py: what the tests of shards behind HAProxy share.

Starts N contactd shards (each on a free loopback port, its data directory
made for shard K with an operator's admin key before its first start),
writes a cluster file for tools/contactd-cluster, has the tool write
HAProxy's configuration from deploy/haproxy.cfg, starts HAProxy on free
loopback ports (in the clear and with TLS), makes accounts and routes them
with the tool, and stops every process it started, also on failure (the
kernel kills a child whose test dies: PR_SET_PDEATHSIG). Every wait is
bounded. The servers themselves are e2e_lib's (tests/e2e).
"""
import argparse
import atexit
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
from e2e_lib import (Fail, Raw, Server, Workdir, _die_with_parent,  # noqa: E402,F401
                     check, check_eq, make_cert, run_tests)

TOOL = os.path.join(SRC, "tools", "contactd-cluster")
E2E = os.path.join(SRC, "tests", "e2e")
# The first id of shard K (interface of the shard identity: engine/cs_limits.h).
ID_BASE = 10 ** 19
SHARD_SPAN = 2 ** 56

_procs = []


def _stop_all():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_stop_all)


def parse_args():
    """The e2e drivers' arguments (passed on to the drivers a test runs)
    and --haproxy."""
    p = argparse.ArgumentParser()
    for name in ("contactd", "keytool", "hello", "probe", "badversion",
                 "plugins"):
        p.add_argument("--" + name, required=True)
    p.add_argument("--streamer")
    p.add_argument("--contactctl", required=True)
    p.add_argument("--haproxy", default="haproxy")
    p.add_argument("--only")
    p.add_argument("--keep", action="store_true")
    a = p.parse_args()
    for name in ("contactd", "keytool", "hello", "probe", "badversion",
                 "plugins", "contactctl", "streamer"):
        if getattr(a, name):
            setattr(a, name, os.path.abspath(getattr(a, name)))
    return a


def e2e_args(a):
    """The command line an e2e driver takes, from ours."""
    out = []
    for name in ("contactd", "keytool", "hello", "probe", "badversion",
                 "streamer", "plugins", "contactctl"):
        if getattr(a, name):
            out += ["--" + name, getattr(a, name)]
    return out


def have_haproxy(a):
    try:
        p = subprocess.run([a.haproxy, "-v"], capture_output=True, timeout=10)
        return p.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def contactd_has(a, option):
    p = subprocess.run([a.contactd, "--help"], capture_output=True, timeout=10)
    return option in (p.stdout + p.stderr).decode(errors="replace")


class Http:
    """A keep-alive HTTP/1.1 client of one address, for writers."""

    def __init__(self, url, timeout=10):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.timeout = u.hostname, u.port, timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        """A Raw answer, or None when the connection failed (the request's
        outcome is then unknown)."""
        data = json.dumps(body) if isinstance(body, (dict, list)) else body
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=self.timeout)
            self.conn.request(method, path, data, headers or {})
            r = Raw.read(self.conn.getresponse())
            if (r.header("connection") or "").lower() == "close":
                self.close()
            return r
        except (OSError, http.client.HTTPException):
            self.close()
            return None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Cluster:
    """N shards, HAProxy in front, and the cluster file of the tool."""

    def __init__(self, a, work, shards=3, standbys=()):
        self.a = a
        self.work = work
        self.n = shards
        # Shards with a standby: their primary waits for the standby's
        # acknowledgement (--standby-ack required), so a promotion loses
        # no acknowledged write.
        self.standbys = set(standbys)
        self.standby = {}
        self.dir = work.sub("cluster")
        self.path = os.path.join(self.dir, "cluster.json")
        self.servers = []
        self.data = []
        self.key_files = []
        self.haproxy = None
        self.with_shard = contactd_has(a, "--shard")

    # ------------------------------------------------------------ shards

    def shard_args(self, k):
        out = ["--shard", str(k)] if self.with_shard else []
        if k in self.standbys:
            out += ["--standby-ack", "required", "--standby-timeout", "2000"]
        return out

    def start_standby(self, k):
        """Shard k's standby: the primary's backup restored into a
        directory of its own, started with --follow."""
        tar = os.path.join(self.dir, f"s{k}-backup.tar")
        d = os.path.join(self.work.path, f"shard{k}-standby")
        for cmd in (["backup", "--from", self.servers[k].url, "--key-file",
                     self.key_files[k], "--output", tar],
                    ["--data", d, "restore", tar]):
            p = subprocess.run([self.a.contactctl] + cmd, capture_output=True,
                               timeout=120)
            check(p.returncode == 0, f"contactctl {cmd[0]}: {p.stderr!r}")
        self.standby[k] = Server(self.a.contactd, d, self.a.plugins, args=[
            "--follow", self.servers[k].url, "--follow-key-file",
            self.key_files[k]]).start()
        return self.standby[k]

    def make_shard(self, k):
        d = self.work.sub(f"shard{k}")
        p = subprocess.run([self.a.contactctl, "--data", d, "keys", "add",
                            "--account", "ops", "--admin"],
                           capture_output=True, timeout=60)
        check(p.returncode == 0, f"contactctl keys add: {p.stderr!r}")
        key = re.search(r"\b(ck_[A-Za-z0-9]{40})\b", p.stdout.decode()).group(1)
        kf = os.path.join(self.dir, f"s{k}.key")
        fd = os.open(kf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        return d, kf, key

    def start_shard(self, k):
        """Starts shard k: on a free port the first time, on its own port
        (the one HAProxy knows) after that."""
        listen = ("127.0.0.1:0",)
        if k < len(self.servers):
            listen = (urllib.parse.urlsplit(self.servers[k].url).netloc,)
        s = Server(self.a.contactd, self.data[k], self.a.plugins,
                   args=self.shard_args(k), listen=listen).start()
        if k < len(self.servers):
            self.servers[k] = s
        else:
            self.servers.append(s)
        return s

    def start(self, check_path=None, accounts=0):
        """Shards, then accounts (made on the shards, account i on shard
        i % n: self.accounts), then the standbys, seeded from a backup
        taken after the accounts were made (a key added to a primary later
        does not reach its standby), then HAProxy, and the accounts
        routed."""
        self.admin_keys = []
        for k in range(self.n):
            d, kf, key = self.make_shard(k)
            self.data.append(d)
            self.key_files.append(kf)
            self.admin_keys.append(key)
            self.start_shard(k)
        self.accounts = self.make_accounts(accounts)
        for k in sorted(self.standbys):
            self.start_standby(k)
        if check_path is None:
            # The route that tells a primary from a standby, where the
            # server has it; plain /healthz where it has not.
            r = self.admin(0, "GET", "/healthz/primary", key=None)
            check_path = "/healthz/primary" if r.status == 200 else "/healthz"
        self.check_path = check_path
        cert, key = make_cert(self.work)
        self.pem = os.path.join(self.dir, "site.pem")
        with open(self.pem, "w") as f:
            f.write(open(cert).read() + open(key).read())
        self.start_haproxy()
        if self.accounts:
            self.tool("maps", "--push")
        return self

    def write_cluster_file(self, bind, tls_bind):
        shards = [{"name": f"s{k}", "url": self.servers[k].url,
                   "admin_key_file": self.key_files[k]} for k in range(self.n)]
        for k, sb in self.standby.items():
            shards[k]["standby"] = {"url": sb.url,
                                    "admin_key_file": self.key_files[k]}
        doc = {"shards": shards,
               "haproxy": {"socket": "admin.sock", "keys_map": "keys.map",
                           "accounts_map": "accounts.map",
                           "config": "haproxy.cfg", "bind": bind,
                           "tls_bind": tls_bind, "tls_pem": self.pem,
                           "check_path": self.check_path},
               "contactctl": self.a.contactctl}
        with open(self.path, "w") as f:
            json.dump(doc, f, indent=2)

    def start_haproxy(self, attempts=3):
        for _ in range(attempts):
            self.port, self.tls_port = free_port(), free_port()
            self.write_cluster_file(f"127.0.0.1:{self.port}",
                                    f"127.0.0.1:{self.tls_port}")
            self.tool("config")
            cfg = os.path.join(self.dir, "haproxy.cfg")
            self.haproxy_log = open(os.path.join(self.dir, "haproxy.log"), "ab")
            p = subprocess.Popen([self.a.haproxy, "-db", "-f", cfg],
                                 stdin=subprocess.DEVNULL,
                                 stdout=self.haproxy_log,
                                 stderr=self.haproxy_log,
                                 preexec_fn=_die_with_parent)
            _procs.append(p)
            self.haproxy = p
            if self.wait_up(range(self.n), timeout=15, fail=False):
                return
            p.kill()
            p.wait(10)
        raise Fail("HAProxy did not start:\n" + self.haproxy_text())

    def haproxy_text(self):
        try:
            with open(os.path.join(self.dir, "haproxy.log"), "rb") as f:
                return f.read().decode(errors="replace")[-3000:]
        except OSError:
            return ""

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_url(self):
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def socket_path(self):
        return os.path.join(self.dir, "admin.sock")

    def sock(self, cmd):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        try:
            s.connect(self.socket_path)
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                b = s.recv(65536)
                if not b:
                    return out.decode(errors="replace")
                out += b
        finally:
            s.close()

    def server_status(self):
        """{(backend, server): status} from HAProxy's show stat."""
        out = {}
        lines = self.sock("show stat").splitlines()
        if not lines or not lines[0].startswith("# "):
            return out
        cols = lines[0][2:].split(",")
        for line in lines[1:]:
            f = dict(zip(cols, line.split(",")))
            if f.get("svname") not in ("FRONTEND", "BACKEND", None):
                out[(f["pxname"], f["svname"])] = f.get("status", "")
        return out

    def wait_up(self, shards, timeout=10, fail=True, want="UP"):
        """Waits until HAProxy's check says each shard's primary is want."""
        end = time.time() + timeout
        names = {(f"shard_s{k}", urllib.parse.urlsplit(
            self.servers[k].url).netloc) for k in shards}
        while time.time() < end:
            if self.haproxy is not None and self.haproxy.poll() is not None:
                break
            try:
                st = self.server_status()
            except OSError:
                st = {}
            if all(st.get(n, "").startswith(want) for n in names):
                return True
            time.sleep(0.05)
        if fail:
            raise Fail(f"shards {list(shards)} not {want} in HAProxy within "
                       f"{timeout}s: {self.server_status()}")
        return False

    # ------------------------------------------------------------ helpers

    def tool(self, *rest, env=None, want=0, timeout=300):
        p = subprocess.run([sys.executable, TOOL, "--cluster", self.path] +
                           list(rest), capture_output=True, timeout=timeout,
                           env=dict(os.environ, **(env or {})))
        out = p.stdout.decode(errors="replace")
        err = p.stderr.decode(errors="replace")
        if want is not None and p.returncode != want:
            raise Fail(f"contactd-cluster {' '.join(rest)} exited "
                       f"{p.returncode} (want {want}):\n{out}{err}")
        return p.returncode, out, err

    def admin(self, k, method, path, body=None, key=0, timeout=60):
        """A request straight to shard k (its admin key by default)."""
        if key == 0:
            key = self.admin_keys[k]
        u = urllib.parse.urlsplit(self.servers[k].url)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        h = {} if key is None else {"x-api-key": key}
        data = json.dumps(body) if isinstance(body, (dict, list)) else body
        try:
            c.request(method, path, data, h)
            return Raw.read(c.getresponse())
        finally:
            c.close()

    def add_accounts(self, count, prefix="acct"):
        """count accounts, account i on shard i % n, each with a key made
        on its shard (POST /admin/keys), then routed by the tool's maps
        --push; returns [(account, shard, key)]."""
        out = self.make_accounts(count, prefix)
        self.tool("maps", "--push")
        return out

    def make_accounts(self, count, prefix="acct"):
        out = []
        for i in range(count):
            name, k = f"{prefix}{i:02d}", i % self.n
            r = self.admin(k, "POST", "/admin/keys", {"account": name})
            check(r.status in (200, 201), f"POST /admin/keys: {r!r}")
            out.append((name, k, r.json()["key"]))
        return out

    def kill_shard(self, k):
        self.servers[k].proc.kill()
        self.servers[k].proc.wait(10)

    def stop(self):
        status = 0
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(10)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
        for k, s in list(enumerate(self.servers)) + list(self.standby.items()):
            if s.proc is not None and s.proc.poll() is None:
                rc = s.stop()
                if rc != 0:
                    print(f"FAIL shard {k} exited {rc}:\n{s.stderr()}")
                    status = 1
            if any("AddressSanitizer" in ln or "runtime error" in ln
                   for ln in s.lines):
                print(f"FAIL shard {k} reported:\n{s.stderr()}")
                status = 1
        return status


_CURL_FLAGS = {"h1": ["--http1.1"], "h2c": ["--http2-prior-knowledge"],
               "upgrade": ["--http2"], "tls-h1": ["--http1.1", "-k"],
               "tls-h2": ["--http2", "-k"]}


def curl_version(url, proto, key, body=None, timeout=20):
    """One request with curl: (status, HTTP version answered)."""
    cmd = ["curl", "-sS", "-o", "/dev/null", "-w",
           "%{http_code} %{http_version}", "--max-time", str(timeout),
           "-H", f"x-api-key: {key}"] + _CURL_FLAGS[proto]
    if body is not None:
        cmd += ["-H", "content-type: application/json", "--data-binary",
                json.dumps(body)]
    p = subprocess.run(cmd + [url], capture_output=True, timeout=timeout + 10)
    check(p.returncode == 0, f"curl {proto} {url}: {p.stderr!r}")
    status, version = p.stdout.decode().split()
    return int(status), version


def contacts_of(url, key, timeout=60):
    """Every live contact a key sees through url, by id (a paged search)."""
    h = Http(url, timeout)
    out, cursor = {}, None
    try:
        while True:
            q = "/contacts?searchby=email&match=words&search=example.com&limit=1000"
            if cursor:
                q += f"&cursor={cursor}"
            r = h.request("GET", q, headers={"x-api-key": key})
            check(r is not None and r.status == 200,
                  f"listing through {url}: {r!r}")
            page = r.json()
            for c in page["contacts"]:
                out[c["id"]] = c
            cursor = page["next_cursor"]
            if cursor is None:
                return out
    finally:
        h.close()


def main(tests, a, cluster, work):
    """Runs the tests, stops the cluster; the exit status."""
    try:
        status = run_tests(tests, a)
        status |= cluster.stop()
    finally:
        _stop_all()
        work.cleanup()
    return status
