#!/usr/bin/env python3
"""e2e_observe.py: what an operator watches, end to end, with the real
plugins and the probe plugin.

/metrics passes `promtool check metrics` (promtool from Debian's
prometheus package, put on the PATH by tools/deps.sh), has sane process_*
figures and contactd_build_info, and a request of a few tens of
microseconds lands in a bucket far below 0.5 ms with exact counts. The
access log in both formats keeps one line per request and every field in
its place whatever a client sends (request ids with spaces and quotes, user
agents with quotes, newlines and invalid UTF-8, over HTTP/1.1 and raw
HTTP/2 frames), json lines parse with Python's json module, and every line
the server writes on stderr starts with a time stamp and a level.
"""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import (Fail, Server, Workdir, check, check_eq, curl,  # noqa: E402
                     parse_args, run_contactd, run_tests, sanitizer_lines)

args = parse_args()
work = Workdir(args.keep)
real = sorted(glob.glob(os.path.join(args.plugins, "*.so")))
if not any(p.endswith("/metrics.so") for p in real):
    print(f"skipped: no metrics.so in {args.plugins}")
    sys.exit(0)
plugins = work.plugin_dir("obs", *real, args.probe)

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
QUOTED = r'"(?:[ !#-\[\]-~]|\\x[0-9a-f]{2})*"'  # printable, escapes only
FIELD = r"(?:[!#-\[\]-~]|\\x[0-9a-f]{2})+"      # the same without spaces
DEFAULT_LINE = re.compile(
    rf"^({TIME}) ({FIELD}) ({QUOTED}|-) ({FIELD}) ({FIELD}) ({QUOTED}|-) "
    rf"(HTTP/1\.0|HTTP/1\.1|HTTP/2|-) (\d{{3}}) (\d+) (\d+) ({QUOTED}|-)$")
STDERR_LINE = re.compile(rf"^{TIME} (info|warning|error) \S")

started_at = time.time()
logs = {fmt: os.path.join(work.path, f"access-{fmt}.log")
        for fmt in ("default", "json")}
servers = {fmt: Server(args.contactd, work.sub(f"data-{fmt}"), plugins,
                       args=["--access-log", logs[fmt],
                             "--access-log-format", fmt]).start()
           for fmt in ("default", "json")}
main = servers["default"]


def get(server, path, proto="h1", **kw):
    return curl(server.url + path, proto, workdir=work.path, **kw)


def metrics(server):
    r = get(server, "/metrics")
    check_eq(r.status, 200, "GET /metrics")
    return r.body.decode()


def value(text, name, labels=""):
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    check(m, f"no {name}{labels} in /metrics")
    return float(m.group(1))


def host_port(server):
    host, port = server.url.split("//")[1].rsplit(":", 1)
    return host, int(port)


def raw_http1(server, request):
    s = socket.create_connection(host_port(server), timeout=5)
    try:
        s.sendall(request)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    except socket.timeout:
        return out
    finally:
        s.close()


def _hpack_len(n):
    if n < 127:
        return bytes([n])
    out, n = bytearray([127]), n - 127
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    out.append(n)
    return bytes(out)


def _frame(kind, flags, stream, payload):
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags]) +
            stream.to_bytes(4, "big") + payload)


def raw_http2(server, headers):
    """One request over h2c with prior knowledge, its header block written
    by hand (HPACK literals without indexing, so any byte goes through);
    returns once stream 1 ends, is reset, or the connection goes away."""
    block = b"".join(b"\x00" + _hpack_len(len(n)) + n + _hpack_len(len(v)) + v
                     for n, v in headers)
    s = socket.create_connection(host_port(server), timeout=5)
    try:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0, b"") +
                  _frame(1, 0x5, 1, block))  # END_STREAM | END_HEADERS
        buf = b""
        while True:
            while len(buf) >= 9:
                size = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + size:
                    break
                kind, flags = buf[3], buf[4]
                stream = int.from_bytes(buf[5:9], "big") & 0x7fffffff
                buf = buf[9 + size:]
                if kind == 7 or (stream == 1 and (kind == 3 or flags & 1)):
                    return
            chunk = s.recv(65536)
            if not chunk:
                return
            buf += chunk
    except socket.timeout:
        return
    finally:
        s.close()


def unescape(field):
    """A quoted field of the default format back to its bytes."""
    check(field.startswith('"') and field.endswith('"'), f"not quoted: {field}")
    return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                  field[1:-1].encode("ascii"))


def log_lines(fmt, marker, want):
    """The lines of the access log holding marker, once there are want."""
    deadline = time.time() + 5
    while True:
        with open(logs[fmt], "rb") as f:
            lines = [l for l in f.read().split(b"\n") if marker in l]
        if len(lines) >= want or time.time() > deadline:
            return lines
        time.sleep(0.05)


# Hostile requests: (what is sent, what the log must give back). Request
# ids are the client's when they are 1 to 128 printable ASCII characters.
RID_SPACES = b'say "hi" 200 0 0 "x'
UA_QUOTES = b'evil" 200 1 1 "x\\ \xff\xfe caf\xc3\xa9'
PATH_HIGH = b'/nowhere/\xff\xc3\xa9"q'


def send_hostile(server, marker):
    """Four requests carrying marker (in the path or the user agent)."""
    m = marker.encode()
    raw_http1(server, b"GET /healthz?" + m + b" HTTP/1.1\r\nHost: x\r\n"
              b"x-request-id: " + RID_SPACES + b"\r\nUser-Agent: " +
              UA_QUOTES + b" " + m + b"\r\nConnection: close\r\n\r\n")
    raw_http1(server, b"GET " + PATH_HIGH + m + b" HTTP/1.1\r\nHost: x\r\n"
              b"Connection: close\r\n\r\n")
    # HTTP/2 carries what HTTP/1 cannot: a newline in a header value.
    raw_http2(server, [(b":method", b"GET"), (b":scheme", b"http"),
                       (b":path", b"/healthz"), (b":authority", b"x"),
                       (b"user-agent", b"a\nb\r\x01 " + m),
                       (b"x-request-id", b"r\n1")])
    raw_http2(server, [(b":method", b"GET"), (b":scheme", b"http"),
                       (b":path", b"/nowhere/" + m + b"\n" + b"forged"),
                       (b":authority", b"x")])


def test_default_access_log_keeps_every_field_in_its_place():
    marker = f"mk{os.getpid()}d"
    send_hostile(main, marker)
    get(main, "/probe/whoami", headers=[f"x-api-key: {main.key}",
                                        f"x-request-id: who-{marker}",
                                        "user-agent: agent/1.0"])
    lines = log_lines("default", marker.encode(), 5)
    with open(logs["default"], "rb") as f:
        every = f.read()
    check(every.endswith(b"\n"), "the log ends mid-line")
    for line in every.split(b"\n")[:-1]:
        check(DEFAULT_LINE.match(line.decode("ascii", "replace")),
              f"a line out of shape: {line!r}")
    check(main.key.encode() not in every, "a key in the access log")
    check_eq(len(lines), 5, f"one line per request: {lines}")
    fields = [DEFAULT_LINE.match(l.decode()).groups() for l in lines]
    by_rid = {f[2]: f for f in fields}
    f = [f for f in fields if f[10] != "-" and unescape(f[10]).endswith(
        b" " + marker.encode()) and f[6] == "HTTP/1.1"]
    check(f, f"no HTTP/1.1 line with the user agent: {lines}")
    f = f[0]
    check_eq(f[1], "127.0.0.1", "client")
    check_eq(unescape(f[2]), RID_SPACES, "request id, back from its escapes")
    check_eq(f[3], "-", "no account without a key")
    check_eq(f[5], '"/healthz"', "path without the query string")
    check_eq(unescape(f[10]), UA_QUOTES + b" " + marker.encode(), "user agent")
    f = [f for f in fields if f[5] != "-" and unescape(f[5]) ==
         PATH_HIGH + marker.encode()]
    check(f, f"no line with the raw path: {lines}")
    check_eq((f[0][7], f[0][10]), ("404", "-"), "404 without a user agent")
    h2 = [f for f in fields if f[6] == "HTTP/2"]
    check_eq(len(h2), 2, f"two HTTP/2 lines: {lines}")
    for f in h2:
        check(re.fullmatch(r'"[0-9a-f]{16}"', f[2]),
              f"an invalid request id is replaced: {f[2]}")
    who = by_rid.get(f'"who-{marker}"')
    check(who, f"no line for the authenticated request: {lines}")
    check_eq((who[3], who[4], who[5], who[7], who[10]),
             ("default", "GET", '"/probe/whoami"', "200", '"agent/1.0"'),
             "authenticated line")


def test_json_access_log_lines_parse():
    s = servers["json"]
    marker = f"mk{os.getpid()}j"
    send_hostile(s, marker)
    get(s, "/probe/whoami", headers=[f"x-api-key: {s.key}",
                                     f"x-request-id: who-{marker}"],
        proto="h2c")
    lines = log_lines("json", marker.encode(), 5)
    with open(logs["json"], "rb") as f:
        every = f.read()
    check(s.key.encode() not in every, "a key in the access log")
    objs = []
    for line in every.split(b"\n")[:-1]:
        try:
            objs.append(json.loads(line.decode("utf-8")))
        except ValueError as e:
            raise Fail(f"not one JSON object per line ({e}): {line!r}")
    keys = ["time", "client", "request_id", "account", "method", "path",
            "protocol", "status", "bytes", "duration_us", "user_agent"]
    for o in objs:
        check_eq(list(o), keys, "keys, in order")
        check(re.fullmatch(TIME, o["time"]), f"time: {o['time']}")
        check(isinstance(o["status"], int) and isinstance(o["bytes"], int) and
              isinstance(o["duration_us"], int), f"numbers: {o}")
    check_eq(len(lines), 5, f"one line per request: {lines}")
    mine = [json.loads(l) for l in lines]
    ua = [o for o in mine if o["user_agent"] and
          o["user_agent"].endswith(" " + marker) and o["protocol"] == "HTTP/1.1"]
    check(ua, f"no HTTP/1.1 line with the user agent: {mine}")
    check_eq(ua[0]["request_id"], RID_SPACES.decode(), "request id")
    check_eq(ua[0]["user_agent"],
             (UA_QUOTES + b" " + marker.encode()).decode("utf-8", "replace"),
             "user agent (invalid UTF-8 as U+FFFD)")
    check_eq((ua[0]["client"], ua[0]["account"], ua[0]["path"],
              ua[0]["status"]), ("127.0.0.1", None, "/healthz", 200), "fields")
    path = [o for o in mine if o["path"].endswith('"q' + marker)]
    check(path, f"no line with the raw path: {mine}")
    check_eq(path[0]["path"],
             (PATH_HIGH + marker.encode()).decode("utf-8", "replace"), "path")
    check_eq(path[0]["user_agent"], None, "no user agent is null")
    h2 = [o for o in mine if o["protocol"] == "HTTP/2"]
    check_eq(len(h2), 3, f"three HTTP/2 lines: {mine}")
    nl = [o for o in h2 if o["user_agent"] and "\n" in o["user_agent"]]
    if nl:  # h2o passed the newline on: it is escaped, not a line break
        check_eq(nl[0]["user_agent"], "a\nb\r\x01 " + marker, "user agent")
    who = [o for o in mine if o["request_id"] == f"who-{marker}"]
    check(who and who[0]["account"] == "default" and who[0]["status"] == 200,
          f"authenticated line: {who}")


def test_metrics_pass_promtool():
    promtool = shutil.which("promtool")
    check(promtool, "promtool not found: tools/deps.sh installs it")
    for path in ("/healthz", "/nowhere", "/openapi.json"):
        get(main, path)
    text = metrics(main)
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    check_eq(p.returncode, 0, "promtool check metrics: " +
             (p.stdout + p.stderr).decode(errors="replace"))
    for name in ("process_resident_memory_bytes", "process_virtual_memory_bytes",
                 "process_cpu_seconds_total", "process_open_fds",
                 "process_max_fds", "process_start_time_seconds",
                 "contactd_build_info", "contactd_http_requests_total",
                 "contactd_http_request_duration_seconds"):
        check(f"# TYPE {name} " in text, f"no {name} in what promtool read")


def test_process_metrics_are_sane():
    text = metrics(main)
    rss = value(text, "process_resident_memory_bytes")
    check(rss > 1 << 20, f"resident memory {rss}")
    check(value(text, "process_virtual_memory_bytes") >= rss, "virtual < rss")
    start = value(text, "process_start_time_seconds")
    check(started_at - 5 <= start <= time.time() + 1,
          f"start time {start}, started near {started_at}")
    fds = value(text, "process_open_fds")
    have = len(os.listdir(f"/proc/{main.proc.pid}/fd"))
    check(0 < fds and abs(fds - have) <= 8, f"open fds {fds}, /proc has {have}")
    check(value(text, "process_max_fds") >= fds, "max fds below open fds")
    cpu = value(text, "process_cpu_seconds_total")
    check(0 <= cpu < time.time() - started_at + 60, f"cpu seconds {cpu}")
    # Read at scrape time: a second scrape sees the fds it opens.
    socks = [socket.create_connection(host_port(main)) for _ in range(20)]
    try:
        time.sleep(0.2)
        more = value(metrics(main), "process_open_fds")
        check(more >= fds + 15, f"open fds {fds} then {more} with 20 more")
    finally:
        for s in socks:
            s.close()


def test_build_info():
    rc, out, _ = run_contactd(args.contactd, ["--version"])
    m = re.match(r"contactd (\S+) \(h2o (\S+), plugin API (\d+)\)", out)
    check(rc == 0 and m, f"--version: {out}")
    text = metrics(main)
    b = re.search(r'^contactd_build_info\{version="([^"]*)",commit="([^"]*)",'
                  r'plugin_api="(\d+)",h2o="([^"]*)"\} 1$', text, re.M)
    check(b, "no contactd_build_info{...} 1")
    check_eq((b.group(1), b.group(3), b.group(4)),
             (m.group(1), m.group(3), m.group(2)), "build info vs --version")
    check(re.fullmatch(r"unknown|[0-9a-f]{7,40}(-dirty)?|v?\S+-g[0-9a-f]+"
                       r"(-dirty)?|v?[0-9][\w.]*(-dirty)?", b.group(2)),
          f"commit: {b.group(2)}")


def test_fast_request_lands_far_below_half_a_millisecond():
    s = Server(args.contactd, work.sub("data-fast"), plugins).start()
    try:
        n = 50
        for _ in range(n):
            get(s, "/probe/echo/x")
        text = metrics(s)
        lab = '{method="GET",route="/probe/echo/{name}"'
        count = value(text, "contactd_http_request_duration_seconds_count",
                      lab + "}")
        check_eq(count, n, "exact count")
        check_eq(value(text, "contactd_http_request_duration_seconds_bucket",
                       lab + ',le="+Inf"}'), n, "+Inf is the count")
        check_eq(value(text, "contactd_http_requests_total",
                       lab + ',status="200"}'), n, "exact status count")
        edges = re.findall(r'_bucket\{method="GET",route="/probe/echo/\{name\}",'
                           r'le="([^"]+)"\}', text)
        check_eq(edges[:4], ["1e-05", "2.5e-05", "5e-05", "0.0001"],
                 "the first buckets")
        check_eq(edges[-2:], ["10", "+Inf"], "the last buckets")
        fast = value(text, "contactd_http_request_duration_seconds_bucket",
                     lab + ',le="0.00025"}')
        check(fast >= 1, f"no request of {n} under 250 us: {fast}")
    finally:
        check_eq(s.stop(), 0, "stop")


def test_every_stderr_line_has_a_time_and_level():
    d = work.sub("data-lines")
    s = Server(args.contactd, d, plugins,
               args=["--durability", "none"]).start()
    get(s, "/probe/silent")  # the host logs a plugin that did not answer
    check_eq(s.stop(), 0, "stop")
    lines = [l for l in s.lines if l.strip()]
    check(len(lines) >= 8, f"too few lines: {lines}")
    for line in lines:
        check(STDERR_LINE.match(line), f"no time and level: {line!r}")
    text = "\n".join(lines)
    for what in (r" info API key for account default: ck_",
                 r" warning --durability none", r" info plugin metrics loaded",
                 r" info listening on http://", r" info contactd \S+ ready \(",
                 r" error \[[0-9a-f]{16}\] plugin probe: GET /probe/silent",
                 r" info SIGTERM: finishing", r" info store closed; bye"):
        check(re.search(what, text), f"no line like {what!r}:\n{text}")
    # A failed start is a line with a time too; a usage error is a message
    # for the person typing, without one.
    rc, _, err = run_contactd(args.contactd, [
        "--data", d, "--plugins", "/nonexistent/plugins",
        "--listen", "127.0.0.1:0"])
    last = err.strip().splitlines()[-1]
    check(rc == 1 and STDERR_LINE.match(last) and " error " in last,
          f"failed start: {rc} {err!r}")
    rc, _, err = run_contactd(args.contactd, ["--access-log-format", "xml"])
    check_eq((rc, err.strip()),
             (2, "contactd: --access-log-format xml: expected default or json "
                 "(see contactd --help)"), "usage error")


TESTS = [(name, fn) for name, fn in sorted(globals().items())
         if name.startswith("test_") and callable(fn)]

if __name__ == "__main__":
    try:
        status = run_tests(TESTS, args)
        for fmt, s in servers.items():
            rc = s.stop()
            if rc != 0:
                print(f"FAIL {fmt} server exited {rc}:\n{s.stderr()}")
                status = 1
            if sanitizer_lines(s):
                print(f"FAIL {fmt} server reported:\n{s.stderr()}")
                status = 1
    finally:
        work.cleanup()
    sys.exit(status)
