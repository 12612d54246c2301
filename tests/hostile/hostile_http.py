#!/usr/bin/env python3
"""hostile_http.py: hostile HTTP clients against one contactd.

Goal: promise 10 at the socket level. Slow headers, slow bodies, hundreds of
idle connections, oversized headers, deep HTTP/1.1 pipelines, an HTTP/2
client opening streams as fast as it can, bodies that stop half way and
plain garbage: the server stays up, keeps serving a normal client while
each attack runs, and gives back what the attackers' connections held.
Method: contactd (2 worker threads) on a loopback port with one contact. A
probe thread makes one GET /contacts/{id} on its own keep-alive connection
every 50 ms for the whole run, recording success and latency per attack.
Each attack runs for ATTACK_SECONDS (default 6; HOSTILE_SECONDS scales the
whole run), then its sockets are closed. Checked, per attack: the server is
alive; at least 95% of the probe's requests succeeded, none took more than
2 s. Pipelined answers come back complete and in order. At the end, after
the attackers are gone, the server's resident memory (VmRSS) is within 64
MiB of its level after a warm-up (allocators keep some freed memory, so the
slack is generous, but a per-connection leak of 500+ connections with 1 MiB
headers and bodies would exceed it), and a last request works.
"""
import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crash"))
from srv import Contactd, Fail, check, deadline, rss_kb  # noqa: E402

RSS_SLACK_KB = 64 * 1024


class Probe:
    def __init__(self, srv, path):
        self.srv, self.path = srv, path
        self.stats = {}  # attack -> [ok, failed, max latency]
        self.attack = "warm-up"
        self.stop = threading.Event()
        self.th = threading.Thread(target=self.run, daemon=True)

    def run(self):
        c = self.srv.client(timeout=5)
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                status, _, _ = c.request("GET", self.path)
                ok = status == 200
            except Exception:
                ok = False
            dt = time.monotonic() - t0
            s = self.stats.setdefault(self.attack, [0, 0, 0.0])
            s[0 if ok else 1] += 1
            s[2] = max(s[2], dt)
            time.sleep(0.05)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closeall(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def slow_headers(port, key, secs, n=200):
    socks = []
    for _ in range(n):
        s = connect(port)
        s.sendall(b"GET /contacts?searchby=email&search=a HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    end = time.monotonic() + secs
    i = 0
    while time.monotonic() < end:
        for s in socks:
            try:
                s.send(b"X-a%d: b\r\n" % i)
            except OSError:
                pass
        i += 1
        time.sleep(0.5)
    closeall(socks)
    return f"{n} connections sending one header line each 0.5 s"


def slow_bodies(port, key, secs, n=100):
    socks = []
    for i in range(n):
        s = connect(port)
        s.sendall(b"POST /contacts HTTP/1.1\r\nHost: x\r\nx-api-key: " + key.encode() +
                  b"\r\ncontent-length: 900000\r\n\r\n{\"notes\": \"")
        socks.append(s)
    end = time.monotonic() + secs
    while time.monotonic() < end:
        for s in socks:
            try:
                s.send(b"a" * 64)
            except OSError:
                pass
        time.sleep(0.2)
    closeall(socks)
    return f"{n} POSTs announcing 900 kB, sending 64 B each 0.2 s"


def idle(port, key, secs, n=500):
    socks = [connect(port) for _ in range(n)]
    time.sleep(secs)
    closeall(socks)
    return f"{n} idle connections"


def oversized(port, key, secs):
    end = time.monotonic() + secs
    sent = 0
    answers = {}
    while time.monotonic() < end:
        for req in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-big: " + b"a" * (1 << 20) + b"\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-n: 1\r\n" * 20000 + b"\r\n",
                    b"GET /" + b"p" * 200000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"POST /contacts HTTP/1.1\r\nHost: x\r\nx-api-key: " + key.encode() +
                    b"\r\ncontent-length: 5000000\r\n\r\n" + b"{" * 300000):
            s = connect(port)
            try:
                s.sendall(req)
                r = s.recv(64).split(b" ")
                code = r[1].decode() if len(r) > 1 else "closed"
            except OSError:
                code = "closed"
            answers[code] = answers.get(code, 0) + 1
            s.close()
            sent += 1
    return f"{sent} requests with 1 MiB headers, 20000 headers, 200 kB paths, 5 MB bodies: answers {answers}"


def pipelined(port, key, secs):
    rounds = 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        s = connect(port)
        n = 200
        reqs = b"".join(b"GET /healthz HTTP/1.1\r\nHost: x\r\nx-request-id: p%d\r\n\r\n" % i for i in range(n))
        s.sendall(reqs)
        buf = b""
        s.settimeout(10)
        while buf.count(b"HTTP/1.1 ") < n or not buf.endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        ids = [int(line.split(b"p")[1]) for line in buf.split(b"\r\n")
               if line.lower().startswith(b"x-request-id: p")]
        check(ids == list(range(n)), f"pipelined answers missing or out of order: {ids[:10]}... ({len(ids)})")
        s.close()
        rounds += 1
    return f"{rounds} connections pipelining 200 requests each, every answer in order"


def h2_flood(port, key, secs, path):
    if not shutil.which("h2load"):
        return "h2load not installed: skipped"
    p = subprocess.run(["h2load", "-D", str(max(1, int(secs))), "-c", "4", "-m", "100", "-t", "1",
                        "-H", "x-api-key: " + key, f"http://127.0.0.1:{port}{path}"],
                       capture_output=True, text=True, timeout=secs + 30)
    line = [x for x in p.stdout.splitlines() if x.startswith("requests:") or x.startswith("status codes:")]
    check(p.returncode == 0, f"h2load failed: {p.stdout[-500:]} {p.stderr[-500:]}")
    return "h2load -c 4 -m 100 (400 concurrent streams): " + "; ".join(line)


def half_bodies(port, key, secs):
    end = time.monotonic() + secs
    n = 0
    held = []
    while time.monotonic() < end:
        s = connect(port)
        s.sendall(b"POST /contacts HTTP/1.1\r\nHost: x\r\nx-api-key: " + key.encode() +
                  b"\r\ncontent-length: 5000\r\n\r\n" + b"{\"first_name\": \"" + b"a" * 2000)
        if n % 2:
            s.close()
        else:
            held.append(s)
        n += 1
        if len(held) > 200:
            closeall(held)
            held = []
        time.sleep(0.005)
    closeall(held)
    return f"{n} POSTs stopping half way (half closed at once, half left open)"


def garbage(port, key, secs):
    rng = random.Random(1)
    end = time.monotonic() + secs
    n = 0
    while time.monotonic() < end:
        s = connect(port)
        try:
            s.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4000))))
            if rng.random() < 0.5:
                s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(rng.randrange(256) for _ in range(500)))
        except OSError:
            pass
        s.close()
        n += 1
    return f"{n} connections of random bytes (half after an HTTP/2 preface)"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--contactd", required=True)
    p.add_argument("--plugins", required=True)
    p.add_argument("--contactctl")
    a = p.parse_args()
    secs = float(os.environ.get("ATTACK_SECONDS", "6")) * float(os.environ.get("HOSTILE_SECONDS", "1"))
    deadline(int(secs * 12 + 120))
    work = tempfile.mkdtemp(prefix="contactd-hostile-")
    srv = None
    try:
        srv = Contactd(a.contactd, a.plugins, os.path.join(work, "data")).start()
        c = srv.client()
        status, data = c.json("POST", "/contacts", {"first_name": "Probe", "email": "probe@hostile.example"})
        check(status == 200, f"create: {status}")
        path = "/contacts/" + data["id"]
        for _ in range(300):
            c.request("GET", path)
        probe = Probe(srv, path)
        probe.th.start()
        time.sleep(1)
        base = rss_kb(srv.pid)
        print(f"baseline VmRSS {base} kB")
        attacks = [("slow headers", slow_headers), ("slow bodies", slow_bodies),
                   ("idle connections", idle), ("oversized", oversized),
                   ("pipelined", pipelined), ("half bodies", half_bodies),
                   ("garbage", garbage),
                   ("http/2 flood", lambda port, key, s: h2_flood(port, key, s, path))]
        peak = base
        for name, fn in attacks:
            probe.attack = name
            what = fn(srv.port, srv.key, secs)
            peak = max(peak, rss_kb(srv.pid))
            check(srv.alive(), f"contactd died during {name}:\n{srv.stderr()}")
            time.sleep(0.3)
            ok, bad, worst = probe.stats.get(name, [0, 0, 0.0])
            print(f"{name}: {what}; probe {ok} ok, {bad} failed, slowest {worst*1000:.0f} ms; "
                  f"VmRSS {rss_kb(srv.pid)} kB", flush=True)
            check(ok > 0 and bad <= 0.05 * (ok + bad), f"{name}: the probe failed {bad} of {ok + bad}")
            check(worst < 2.0, f"{name}: a probe request took {worst:.2f} s")
        probe.attack = "after"
        time.sleep(2)
        probe.stop.set()
        probe.th.join(10)
        after = rss_kb(srv.pid)
        print(f"VmRSS: baseline {base} kB, peak {peak} kB, after the attacks {after} kB "
              f"(allowed: baseline + {RSS_SLACK_KB} kB)")
        with open(a.contactd, "rb") as f:
            sanitized = b"__asan_init" in f.read()
        if sanitized:
            # ASan holds freed memory in its quarantine and never returns it,
            # so RSS says nothing there; LeakSanitizer checks at exit instead
            # (a leak makes the exit status below non-zero).
            print("AddressSanitizer build: RSS check replaced by LeakSanitizer at exit")
        else:
            check(after <= base + RSS_SLACK_KB, f"memory not given back: {after} kB vs {base} kB")
        c = srv.client()
        status, _, _ = c.request("GET", path)
        check(status == 200, "a request after the attacks failed")
        rc = srv.stop()
        check(rc == 0, f"SIGTERM after the attacks: exit {rc}")
        print("held: the server stayed up and kept serving through every attack")
        return 0
    except Fail as e:
        print(f"FAIL: {e}")
        if srv is not None:
            print(srv.stderr())
        return 1
    finally:
        if srv is not None:
            srv.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
