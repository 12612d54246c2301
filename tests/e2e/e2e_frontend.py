#!/usr/bin/env python3
"""e2e_frontend.py: the front end, end to end, with the example plugin and a
probe plugin (tests/e2e/fe_probe.c) that shows what a handler was given.

Every behaviour the front end owns is checked with real clients over every
protocol: routing (404, 405 with allow), keys (401 missing and invalid, 403
read-only, accounts), request ids (echo and generation), bodies (413 at the
limit, any content type), content-length without chunking, asynchronous
answers (also after the client left), plugin loading (version refusal),
options (bad ones exit non-zero naming the culprit), metrics, the access
log, and shutdown (SIGTERM and SIGINT finish in-flight answers and exit 0).
"""
import http.client
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import (CLEAR_PROTOCOLS, TLS_PROTOCOLS, Fail, Server, Workdir,  # noqa: E402
                     check, check_eq, curl, keytool, make_cert, nghttp,
                     parse_args, run_contactd, run_tests)

BODY_MAX = 1024 * 1024

args = parse_args()
work = Workdir(args.keep)
plugins = work.plugin_dir("main", args.hello, args.probe)
cert, key = make_cert(work)
access_log = os.path.join(work.path, "access.log")

# One server for the read-only checks, clear and TLS, both with the
# access log; tests that change keys or stop servers start their own.
clear = Server(args.contactd, work.sub("data-clear"), plugins,
               args=["--access-log", access_log]).start()
tls = Server(args.contactd, work.sub("data-tls"), plugins, tls=(cert, key),
             listen=("127.0.0.1:0", "127.0.0.1:0")).start()


def servers_and_protocols():
    for p in CLEAR_PROTOCOLS:
        yield clear, p
    for p in TLS_PROTOCOLS:
        yield tls, p


def get(server, proto, path, **kw):
    return curl(server.url + path, proto, workdir=work.path, **kw)


def check_json_error(r, status, code, where):
    check_eq(r.status, status, f"{where}: status")
    check_eq(r.header("content-type"), "application/json",
             f"{where}: content-type")
    e = r.json().get("error")
    check(isinstance(e, dict), f"{where}: no error object in {r.body!r}")
    check_eq(e.get("code"), code, f"{where}: error code")
    check(isinstance(e.get("message"), str) and e["message"],
          f"{where}: error message")
    return e


def check_framing(r, where):
    check(r.header("transfer-encoding") is None,
          f"{where}: chunked response {r.headers}")
    check(r.header("content-length") is not None,
          f"{where}: no content-length {r.headers}")
    check(r.header("x-request-id"), f"{where}: no x-request-id")


# ------------------------------------------------------------------ tests

def test_first_key_is_printed_and_kept():
    check(clear.key and clear.key.startswith("ck_"), "no key printed")
    line = [l for l in clear.lines if "API key for account default" in l][0]
    path = os.path.join(clear.data_dir, "default.key")
    check(os.path.realpath(path) in line or path in line,
          f"key file not named: {line}")
    check("readable by its owner only" in line, line)
    st = os.stat(path)
    check_eq(stat.S_IMODE(st.st_mode), 0o600, "default.key mode")
    with open(path) as f:
        check_eq(f.read().strip(), clear.key, "default.key content")


def test_hello_on_every_protocol():
    for server, proto in servers_and_protocols():
        r = get(server, proto, "/hello")
        check_eq(r.status, 200, f"{proto} status")
        check_eq(r.json(), {"hello": "world"}, f"{proto} body")
        check_eq(r.header("content-type"), "application/json", proto)
        check_eq(r.header("content-length"), str(len(r.body)), proto)
        check_framing(r, proto)
        check(re.fullmatch(r"[0-9a-f]{16}", r.header("x-request-id")),
              f"{proto}: generated id {r.header('x-request-id')}")


def test_nghttp_prior_knowledge_upgrade_and_tls():
    for url, upgrade in ((clear.url, False), (clear.url, True),
                         (tls.url, False)):
        status, hdrs, text = nghttp(url + "/hello", upgrade=upgrade,
                                    headers=["x-request-id: nghttp-1"],
                                    workdir=work.path)
        check_eq(status, 200, f"nghttp {url} upgrade={upgrade}")
        check_eq(hdrs.get("x-request-id"), "nghttp-1", "nghttp request id")
        check_eq(hdrs.get("content-length"), "18", "nghttp content-length")
        check('{"hello": "world"}' in text, "nghttp body")


def test_tls_alpn_offers_h2_and_http11():
    host, port = tls.url[len("https://"):].rsplit(":", 1)
    for alpn in ("h2", "http/1.1"):
        p = subprocess.run(["openssl", "s_client", "-connect", f"{host}:{port}",
                            "-alpn", alpn], input=b"",
                           capture_output=True, timeout=20)
        out = (p.stdout + p.stderr).decode(errors="replace")
        check(f"ALPN protocol: {alpn}" in out,
              f"ALPN {alpn} not negotiated: {out[-400:]}")


def test_every_listen_address_serves():
    check_eq(len(tls.urls), 2, "listener count")
    for u in tls.urls:
        r = curl(u + "/hello", "tls-h2", workdir=work.path)
        check_eq(r.status, 200, u)


def test_request_id_echo_and_generation():
    for server, proto in servers_and_protocols():
        r = get(server, proto, "/hello", headers=["x-request-id: my-id 42"])
        check_eq(r.header("x-request-id"), "my-id 42", f"{proto} echo")
        long_id = "x" * 128
        r = get(server, proto, "/hello", headers=[f"x-request-id: {long_id}"])
        check_eq(r.header("x-request-id"), long_id, f"{proto} 128 chars")
        r = get(server, proto, "/hello", headers=["x-request-id: " + "y" * 129])
        check(re.fullmatch(r"[0-9a-f]{16}", r.header("x-request-id")),
              f"{proto}: 129 chars must not be echoed")
        r = get(server, proto, "/probe/echo/x",
                headers=["x-request-id: seen-by-plugin"])
        check_eq(r.json()["request_id"], "seen-by-plugin", "plugin's view")
        # Errors carry one too.
        r = get(server, proto, "/nowhere", headers=["x-request-id: e-1"])
        check_eq(r.header("x-request-id"), "e-1", f"{proto} on 404")


def test_unknown_route_is_404_json():
    for server, proto in servers_and_protocols():
        for path in ("/nowhere", "/hello/", "/hello/x", "/probe/echo/",
                     "/HELLO"):
            r = get(server, proto, path)
            check_json_error(r, 404, "not_found", f"{proto} {path}")
            check_framing(r, f"{proto} {path}")


def test_wrong_method_is_405_with_allow():
    for server, proto in servers_and_protocols():
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            r = get(server, proto, "/hello", method=method)
            check_json_error(r, 405, "method_not_allowed", f"{proto} {method}")
            check_eq(r.header("allow"), "GET, HEAD", f"{proto} allow")
        r = get(server, proto, "/probe/write", method="GET")
        check_eq(r.status, 405, "GET on a POST route")
        check_eq(r.header("allow"), "POST", "allow of /probe/write")


def test_head_is_get_without_body():
    for server, proto in servers_and_protocols():
        r = get(server, proto, "/hello", method="HEAD")
        check_eq(r.status, 200, f"{proto} HEAD")
        check_eq(r.header("content-length"), "18", f"{proto} HEAD length")
    # A body after a HEAD answer would corrupt the next answer on the
    # connection; a keep-alive client notices.
    host, port = clear.url[len("http://"):].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    for method in ("HEAD", "GET", "HEAD", "GET"):
        conn.request(method, "/hello")
        r = conn.getresponse()
        body = r.read()
        check_eq(r.status, 200, f"keep-alive {method}")
        check_eq(body, b"" if method == "HEAD" else b'{"hello": "world"}',
                 f"keep-alive {method} body")
    conn.close()


def test_missing_and_invalid_key_are_401():
    for server, proto in servers_and_protocols():
        r = get(server, proto, "/probe/whoami")
        check_json_error(r, 401, "missing_api_key", f"{proto} no key")
        r = get(server, proto, "/probe/whoami", headers=["x-api-key:"])
        check_json_error(r, 401, "missing_api_key", f"{proto} empty key")
        for bad in ("ck_nope", server.key + "x", server.key[:-1],
                    "ck_" + "A" * 40):
            r = get(server, proto, "/probe/whoami", headers=[f"x-api-key: {bad}"])
            check_json_error(r, 401, "invalid_api_key", f"{proto} bad key")
        # Another server's key is just as unknown here.
        other = tls if server is clear else clear
        r = get(server, proto, "/probe/whoami",
                headers=[f"x-api-key: {other.key}"])
        check_json_error(r, 401, "invalid_api_key", f"{proto} foreign key")
        r = get(server, proto, "/probe/write", method="POST", data="{}")
        check_json_error(r, 401, "missing_api_key", f"{proto} write no key")


def test_valid_key_reaches_plugin_with_account():
    for server, proto in servers_and_protocols():
        r = get(server, proto, "/probe/whoami",
                headers=[f"x-api-key: {server.key}"])
        check_eq(r.status, 200, f"{proto} whoami")
        who = r.json()
        check_eq(who["account"], "default", "account")
        check_eq(who["role"], "read-write", "role")
        r = get(server, proto, "/probe/write", method="POST", data="{}",
                headers=[f"x-api-key: {server.key}"])
        check_eq(r.status, 200, f"{proto} write")
        # The key itself is not handed to plugins.
        r = get(server, proto, "/probe/echo/k",
                headers=[f"x-api-key: {server.key}"])
        check("x-api-key" not in r.json()["headers"], "key leaked to plugin")


def test_read_only_key_and_second_account():
    data = work.sub("data-keys")
    s = Server(args.contactd, data, plugins).start()
    default_key = s.key
    check_eq(s.stop(), 0, "first stop")
    ro = keytool(args, data, "add", "default", "ro")
    other = keytool(args, data, "add", "other", "rw")
    s = Server(args.contactd, data, plugins).start()
    try:
        check(not any("API key for account default" in l for l in s.lines),
              "a second default key was made although keys exist")
        for proto in CLEAR_PROTOCOLS:
            r = get(s, proto, "/probe/whoami", headers=[f"x-api-key: {ro}"])
            check_eq(r.json()["role"], "read-only", "ro role")
            r = get(s, proto, "/probe/write", method="POST", data="{}",
                    headers=[f"x-api-key: {ro}"])
            check_json_error(r, 403, "read_only_key", f"{proto} ro write")
            r = get(s, proto, "/probe/whoami", headers=[f"x-api-key: {other}"])
            who = r.json()
            check_eq(who["account"], "other", "second account")
            r2 = get(s, proto, "/probe/whoami",
                     headers=[f"x-api-key: {default_key}"]).json()
            check(who["account_id"] != r2["account_id"],
                  "two accounts share an id")
    finally:
        check_eq(s.stop(), 0, "second stop")
    keytool(args, data, "revoke", ro)
    s = Server(args.contactd, data, plugins).start()
    try:
        r = get(s, "h1", "/probe/whoami", headers=[f"x-api-key: {ro}"])
        check_json_error(r, 401, "invalid_api_key", "revoked key")
        r = get(s, "h1", "/probe/whoami", headers=[f"x-api-key: {other}"])
        check_eq(r.status, 200, "unrevoked key still works")
    finally:
        check_eq(s.stop(), 0, "third stop")


def test_body_limit_is_413():
    for server, proto in servers_and_protocols():
        r = get(server, proto, "/probe/body", method="POST",
                data=b"a" * BODY_MAX)
        check_eq(r.status, 200, f"{proto} body at the limit")
        check_eq(r.json()["body_len"], BODY_MAX, "body length at the limit")
        r = get(server, proto, "/probe/body", method="POST",
                data=b"a" * (BODY_MAX + 1))
        check_json_error(r, 413, "payload_too_large", f"{proto} limit + 1")
        check_framing(r, f"{proto} 413")
    # Far past the limit, h2o stops reading itself; the answer is still ours.
    for proto in ("h1", "tls-h1"):
        server = clear if proto == "h1" else tls
        r = get(server, proto, "/probe/body", method="POST",
                data=b"a" * (5 * BODY_MAX), headers=["x-request-id: big-1"])
        check_json_error(r, 413, "payload_too_large", f"{proto} 5 MiB")
        check_eq(r.header("x-request-id"), "big-1", "413 request id")
    r = get(clear, "h1", "/probe/body", method="POST",
            data=b"a" * (BODY_MAX + 1), headers=["Transfer-Encoding: chunked"])
    check_json_error(r, 413, "payload_too_large", "chunked limit + 1")


def test_body_read_whatever_the_content_type():
    body = b'{"first_name": "Ann", "email": "ann@example.com"}'
    for server, proto in servers_and_protocols():
        for ctype in (None, "application/json",
                      "application/x-www-form-urlencoded", "text/plain"):
            hdrs = [f"content-type: {ctype}"] if ctype else ["Content-Type:"]
            r = get(server, proto, "/probe/body", method="POST", data=body,
                    headers=hdrs)
            got = r.json()
            check_eq(got["body_len"], len(body), f"{proto} {ctype} length")
            check_eq(got["content_type"], ctype or "", f"{proto} type")
        # curl's form default, as clients of the original spec send.
        r = curl(server.url + "/probe/body", proto, method="POST",
                 extra=["-d", body.decode()], workdir=work.path)
        check_eq(r.json()["body_len"], len(body), "curl -d body")


def test_query_params_and_headers_reach_plugin():
    for server, proto in servers_and_protocols():
        r = get(server, proto,
                "/probe/echo/J%C3%B6rg%20x?searchby=company&search="
                "Example+Inc.&e=%C3%A9&flag&a%26b=c%3Dd",
                headers=["X-Custom: Value"])
        v = r.json()
        check_eq(v["method"], "GET", "method")
        check_eq(v["path"], "/probe/echo/J%C3%B6rg%20x", "path")
        check_eq(v["params"], {"name": "J\u00f6rg x"}, "params")
        check_eq(v["query"], [["searchby", "company"],
                              ["search", "Example Inc."], ["e", "\u00e9"],
                              ["flag", ""], ["a&b", "c=d"]], "query")
        check_eq(v["headers"].get("x-custom"), "Value", "header lower-cased")
        check_eq(v["has_store"], True, "store handed over")


def test_async_answers_on_every_protocol():
    for server, proto in servers_and_protocols():
        r = get(server, proto, "/probe/async?delay_ms=50",
                headers=["x-request-id: async-1"])
        check_eq(r.status, 200, f"{proto} async")
        check_eq(r.json(), {"async": True, "delay_ms": 50}, "async body")
        check_eq(r.header("x-request-id"), "async-1", "async request id")
        check_framing(r, f"{proto} async")


def test_many_concurrent_async_answers():
    """Answers from many threads at once, over one HTTP/2 connection."""
    urls = [clear.url + f"/probe/async?delay_ms={i % 7 * 10}&n={i}"
            for i in range(60)]
    p = subprocess.run(["nghttp", "-n", "-s"] + urls,
                       capture_output=True, timeout=60)
    out = p.stdout.decode(errors="replace")
    check(p.returncode == 0, f"nghttp failed: {out[-500:]}")
    rows = re.findall(r"^\s*\d+\s+\+\S+\s+\+\S+\s+\S+\s+(\d{3})\s",
                      out, re.M)
    check_eq(len(rows), 60, "answers on one connection")
    check_eq(set(rows), {"200"}, "statuses")


def test_client_gone_before_async_answer():
    p = subprocess.run(["curl", "-s", "--max-time", "0.2",
                        clear.url + "/probe/async?delay_ms=600"],
                       capture_output=True, timeout=20)
    check(p.returncode != 0, "the slow answer should have timed out")
    p = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "--max-time",
                        "0.2", clear.url + "/probe/async?delay_ms=600"],
                       capture_output=True, timeout=20)
    time.sleep(0.8)
    r = get(clear, "h1", "/hello")
    check_eq(r.status, 200, "server still serves after the client left")
    check(clear.proc.poll() is None, "server died")


def test_plugin_that_does_not_answer_is_500():
    for server, proto in servers_and_protocols():
        r = get(server, proto, "/probe/silent")
        check_json_error(r, 500, "internal", f"{proto} silent")
        check("plugin" not in r.body.decode() and "/" not in
              r.json()["error"]["message"], "500 body leaks internals")


def test_plugin_headers_and_503():
    r = get(clear, "h1", "/probe/unavailable")
    check_json_error(r, 503, "unavailable", "503")
    check_eq(r.header("retry-after"), "1", "retry-after")
    check_eq(r.header("x-probe"), "yes", "custom header")
    check_eq(r.header("content-length"), str(len(r.body)),
             "plugin could not override content-length")


def test_large_bodies_have_content_length():
    for server, proto in servers_and_protocols():
        for n in (0, 1, 65536, 3 * BODY_MAX):
            if proto == "upgrade" and n > 16384:
                # curl 7.88 cannot take more than its buffer right after
                # the 101 (its own limit, "connection buffer size is too
                # small"); the prior-knowledge and TLS runs cover h2.
                continue
            r = get(server, proto, f"/probe/big?bytes={n}")
            check_eq(r.status, 200, f"{proto} {n}")
            check_eq(len(r.body), n, f"{proto} body size")
            check_eq(r.header("content-length"), str(n), f"{proto} length")
            check(r.header("transfer-encoding") is None, "chunked")


def test_http11_keep_alive():
    host, port = clear.url[len("http://"):].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    sockets = set()
    for i in range(5):
        conn.request("GET", "/hello", headers={"x-request-id": f"ka-{i}"})
        r = conn.getresponse()
        body = r.read()
        check_eq(r.status, 200, "keep-alive status")
        check_eq(body, b'{"hello": "world"}', "keep-alive body")
        check_eq(r.getheader("x-request-id"), f"ka-{i}", "keep-alive id")
        sockets.add(id(conn.sock))
        check(conn.sock is not None, "connection closed by the server")
    conn.close()
    check_eq(len(sockets), 1, "requests shared one connection")


def raw_exchange(server, payload, timeout=5):
    host, port = server.url[len("http://"):].rsplit(":", 1)
    c = socket.create_connection((host, int(port)), timeout=timeout)
    c.sendall(payload)
    chunks = []
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            chunks.append(b)
    except socket.timeout:
        pass
    c.close()
    return b"".join(chunks)


def test_malformed_requests_get_json_errors():
    bad = [
        b"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /probe/body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip"
        b"\r\n\r\n",
        b"POST /probe/body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
        b"\r\nx-request-id: raw-1\r\n\r\nzz\r\n",
    ]
    for payload in bad:
        out = raw_exchange(clear, payload)
        head, _, body = out.partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 400"), f"status for {payload!r}: {out!r}")
        check(b"content-type: application/json" in head.lower(), "type")
        check(b"x-request-id: " in head.lower(), "request id")
        check_eq(json.loads(body)["error"]["code"], "bad_request", "code")
    # Garbage that is no HTTP at all is dropped; the server lives on.
    raw_exchange(clear, b"\x00\x01GARBAGE\r\n\r\n", timeout=2)
    raw_exchange(clear, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nnot frames", 2)
    check_eq(get(clear, "h1", "/hello").status, 200, "alive after garbage")


def test_metrics_count_by_route_and_status():
    get(clear, "h1", "/hello")
    get(clear, "h1", "/nowhere")
    r = get(clear, "h1", "/probe/metrics")
    text = r.body.decode()
    check(re.search(r'contactd_http_requests_total\{method="GET",'
                    r'route="/hello",status="200"\} \d+', text),
          "no /hello 200 counter")
    check(re.search(r'contactd_http_requests_total\{method="-",'
                    r'route="unmatched",status="404"\} \d+', text),
          "no unmatched 404 counter")
    check('contactd_http_request_duration_seconds_bucket{method="GET",'
          'route="/hello",le="+Inf"}' in text, "no histogram")


def test_access_log_lines():
    get(clear, "h1", "/probe/whoami", headers=[f"x-api-key: {clear.key}",
                                               "x-request-id: log-1"])
    get(clear, "h1", "/hello?secret=query", headers=["x-request-id: log-2"])
    time.sleep(0.2)
    with open(access_log) as f:
        lines = f.read().splitlines()
    line = [l for l in lines if ' "log-1" ' in l]
    check(line, "no line for log-1")
    parts = re.findall(r'"[^"]*"|\S+', line[0])
    check_eq(len(parts), 11, f"fields of {line[0]}")
    check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", parts[0]),
          f"time: {parts[0]}")
    check_eq(parts[1:8], ["127.0.0.1", '"log-1"', "default", "GET",
                          '"/probe/whoami"', "HTTP/1.1", "200"], "fields")
    check(parts[8].isdigit() and parts[9].isdigit(), "bytes and micros")
    check(parts[10].startswith('"curl/'), f"user agent: {parts[10]}")
    line = [l for l in lines if ' "log-2" ' in l][0]
    check(' - GET "/hello" HTTP/1.1 200 18 ' in line,
          f"unauthenticated line: {line}")
    check("secret" not in "\n".join(lines), "query string logged")
    check(clear.key not in "\n".join(lines), "key logged")
    check(clear.key not in "\n".join(clear.lines[1:]), "key on stderr twice")


def test_access_log_to_stdout():
    s = Server(args.contactd, work.sub("data-stdout"), plugins,
               args=["--access-log", "-"]).start()
    get(s, "h1", "/hello", headers=["x-request-id: out-1"])
    check_eq(s.stop(), 0, "stop")
    check(any(' "out-1" - GET "/hello" HTTP/1.1 200 ' in l
              for l in s.stdout_lines),
          f"no access line on stdout: {s.stdout_lines}")


def test_plugin_api_version_is_refused():
    d = work.plugin_dir("bad", args.hello, args.badversion)
    rc, out, err = run_contactd(args.contactd, [
        "--data", work.sub("data-bad"), "--plugins", d, "--listen",
        "127.0.0.1:0"])
    check(rc != 0, "started with a plugin of another API version")
    check("fe_badversion.so" in err, f"file not named: {err}")
    # fe_badversion is built for one version past this contactd's newest.
    check(re.search(r"version 4\b", err) and
          re.search(r"versions 1 to 3\b", err),
          f"its version and the ones loaded not named: {err}")
    check(len([l for l in err.splitlines() if "version" in l]) >= 1, err)


def test_plugin_create_failure_stops_start():
    rc, out, err = run_contactd(args.contactd, [
        "--data", work.sub("data-fail"), "--plugins", plugins, "--listen",
        "127.0.0.1:0"], env={"FE_PROBE_FAIL": "1"})
    check(rc != 0, "started although a plugin failed")
    check("asked to fail by FE_PROBE_FAIL" in err and "probe" in err, err)


def test_bad_options_exit_nonzero_naming_them():
    used = socket.socket()
    used.bind(("127.0.0.1", 0))
    used.listen(1)
    port = used.getsockname()[1]
    a_file = os.path.join(work.path, "a-file")
    with open(a_file, "w") as f:
        f.write("x")
    d = work.sub("data-opts")
    cases = [
        (["--bogus"], 2, "--bogus"),
        (["--threads", "0"], 2, "--threads"),
        (["--threads"], 2, "--threads"),
        (["--durability", "maybe"], 2, "--durability"),
        (["--listen", "nonsense"], 2, "--listen nonsense"),
        (["--tls-cert", cert], 2, "--tls-key"),
        (["--changes-days", "0"], 2, "--changes-days"),
        (["--webhook-allow", "no_such:host"], 2, "--webhook-allow"),
        (["--webhook-allow", "example.com:0"], 2, "--webhook-allow"),
        (["--webhook-retry-seconds", "0"], 2, "--webhook-retry-seconds"),
        (["--listen", f"127.0.0.1:{port}"], 1, f"127.0.0.1:{port}"),
        (["--listen", "192.0.2.1:8080"], 1, "192.0.2.1:8080"),
        (["--listen", "no.such.host.invalid:80"], 1, "no.such.host.invalid"),
        (["--data", a_file], 1, a_file),
        (["--data", "/proc/forbidden/data"], 1, "/proc/forbidden/data"),
        (["--plugins", "/nonexistent/plugins"], 1, "/nonexistent/plugins"),
        (["--tls-cert", "/nonexistent.pem", "--tls-key", key], 1,
         "/nonexistent.pem"),
        (["--tls-cert", a_file, "--tls-key", key], 1, a_file),
        (["--tls-cert", cert, "--tls-key", a_file], 1, a_file),
        (["--access-log", "/nonexistent/dir/log"], 1, "/nonexistent/dir/log"),
    ]
    try:
        for extra, want_rc, needle in cases:
            base = ["--data", d, "--plugins", plugins, "--listen",
                    "127.0.0.1:0"]
            rc, out, err = run_contactd(args.contactd, base + extra)
            check_eq(rc, want_rc, f"exit status of {extra} ({err.strip()})")
            lines = [l for l in err.splitlines() if l.strip()]
            check(lines and needle in lines[-1],
                  f"{extra}: message does not name {needle}: {err!r}")
    finally:
        used.close()


def test_help_and_version():
    rc, out, err = run_contactd(args.contactd, ["--help"])
    check_eq(rc, 0, "--help status")
    for opt in ("--listen", "--data", "--threads", "--tls-cert", "--tls-key",
                "--durability", "--plugins", "--access-log", "--version",
                "--changes-days", "--webhook-allow", "--webhook-retry-seconds",
                "default"):
        check(opt in out, f"--help does not show {opt}")
    rc, out, err = run_contactd(args.contactd, ["--version"])
    check_eq(rc, 0, "--version status")
    check(re.match(r"contactd \d+\.\d+\.\d+", out), out)


def test_second_server_on_same_data_is_refused():
    rc, out, err = run_contactd(args.contactd, [
        "--data", clear.data_dir, "--plugins", plugins, "--listen",
        "127.0.0.1:0"])
    check(rc != 0, "two servers on one data directory")
    check(clear.data_dir in err, f"data dir not named: {err}")


def test_durability_none_is_loud():
    s = Server(args.contactd, work.sub("data-none"), plugins,
               args=["--durability", "none"]).start()
    check_eq(s.stop(), 0, "stop")
    check(any(" warning " in l and "--durability none" in l for l in s.lines),
          "no warning for --durability none")


def test_sigterm_finishes_in_flight_and_exits_0():
    for sig in (signal.SIGTERM, signal.SIGINT):
        s = Server(args.contactd, work.sub("data-term"), plugins).start()
        results = {}

        def slow(proto):
            results[proto] = get(s, proto, "/probe/async?delay_ms=1500")

        threads = [threading.Thread(target=slow, args=(p,))
                   for p in ("h1", "h2c")]
        for t in threads:
            t.start()
        time.sleep(0.4)
        rc = s.stop(sig)
        for t in threads:
            t.join(20)
        check_eq(rc, 0, f"exit status after {sig.name}")
        for p in ("h1", "h2c"):
            check(p in results, f"{p}: in-flight request got no answer")
            check_eq(results[p].status, 200, f"{p} in-flight answer")
        check(any("store closed" in l for l in s.lines), "store not closed")
        # The port is closed.
        host, port = s.url[len("http://"):].rsplit(":", 1)
        c = socket.socket()
        check(c.connect_ex((host, int(port))) != 0, "still accepting")
        c.close()


TESTS = [(name, fn) for name, fn in sorted(globals().items())
         if name.startswith("test_") and callable(fn)]

if __name__ == "__main__":
    try:
        status = run_tests(TESTS, args)
        for s, name in ((clear, "clear"), (tls, "tls")):
            rc = s.stop()
            if rc != 0:
                print(f"FAIL shared {name} server exited {rc}:\n{s.stderr()}")
                status = 1
            if any("ERROR" in l or "AddressSanitizer" in l or
                   "runtime error" in l for l in s.lines):
                print(f"FAIL shared {name} server reported:\n{s.stderr()}")
                status = 1
    finally:
        work.cleanup()
    sys.exit(status)
