#!/usr/bin/env python3
"""framing.py: requests whose framing is ambiguous or broken, on raw sockets.

Goal: every answer follows API.md, also the ones h2o would give on its own,
and no request is smuggled past another (RFC 9112 section 6.3). Checked:
  - two Content-Length fields (different or equal), Content-Length beside
    Transfer-Encoding, two Transfer-Encoding fields: 400 JSON with
    x-request-id, the connection closed, and nothing after the head run or
    stored (a smuggled create never happens, a valid body is not created);
  - a head h2o cannot parse (a DEL byte in a header value, a broken request
    line, a head over h2o's size limit): 400 JSON with x-request-id;
  - an x-api-key with spaces or a tab around it is the same key;
  - over HTTP/2, a body over the 1 MiB limit is answered 413 (JSON), and one
    whose content-length is past the server's 4 MiB buffer is answered 413
    while it streams, never reset with REFUSED_STREAM (which makes clients
    retry forever).
Method: contactd on a loopback port; HTTP/1.1 over python sockets, HTTP/2 with
nghttp and curl --http2-prior-knowledge. Usage: framing.py --contactd BIN
--plugins DIR
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crash"))
from srv import Contactd, Fail, check, deadline  # noqa: E402

failures = []
passed = 0


def exchange(port, raw, timeout=5):
    """Sends raw, then reads until the server closes. (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(raw)
    out = b""
    closed = False
    try:
        while True:
            d = s.recv(65536)
            if not d:
                closed = True
                break
            out += d
    except socket.timeout:
        pass
    except ConnectionResetError:
        # The server closed with part of raw unread (a head it refused
        # before the rest arrived): the kernel answers that with a reset,
        # which may come after the answer was read. Closed either way.
        closed = True
    s.close()
    return out, closed


def answers(raw):
    """The answers in raw: [(status, headers dict, body)]."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        check(sep, f"an answer cut short: {raw[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        h = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            h[k.strip().lower()] = v.strip()
        n = int(h.get("content-length", "0"))
        out.append((status, h, rest[:n]))
        raw = rest[n:]
    return out


def expect_json_error(a, status, code):
    st, h, body = a
    check(st == status, f"status {st}, want {status}: {body[:200]!r}")
    check("x-request-id" in h, f"no x-request-id: {h}")
    check(h.get("content-type", "").startswith("application/json"), f"not JSON: {h}")
    check(json.loads(body)["error"]["code"] == code, f"code: {body!r}")


def case(fn):
    global passed
    try:
        fn()
        passed += 1
        print(f"ok   {fn.__name__}")
    except Fail as e:
        failures.append(fn.__name__)
        print(f"FAIL {fn.__name__}: {e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--contactd", required=True)
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--contactctl")
    a = ap.parse_args()
    deadline(240)
    work = tempfile.mkdtemp(prefix="contactd-framing-")
    srv = Contactd(a.contactd, a.plugins, os.path.join(work, "data")).start()
    port, key = srv.port, srv.key
    c = srv.client()

    def stored(email):
        st, data = c.json("GET", f"/contacts?searchby=email&search={email}")
        check(st == 200, f"search: {st}")
        return data["total"]

    def create_raw(email, headers):
        body = json.dumps({"first_name": "S", "email": email}).encode()
        return (b"POST /contacts HTTP/1.1\r\nHost: x\r\nx-api-key: " + key.encode() +
                b"\r\n" + headers(len(body)) + b"\r\n" + body)

    def test_framing_two_content_lengths_smuggle_nothing():
        inner = create_raw("smuggled@x.io", lambda n: b"Content-Length: %d\r\n" % n)
        raw = (b"POST /contacts HTTP/1.1\r\nHost: x\r\nx-api-key: " + key.encode() +
               b"\r\nContent-Length: 2\r\nContent-Length: %d\r\n\r\n{}" % (2 + len(inner)) + inner)
        out, closed = exchange(port, raw)
        got = answers(out)
        check(len(got) == 1, f"{len(got)} answers: {out[:400]!r}")
        expect_json_error(got[0], 400, "bad_request")
        check(closed, "the connection stayed open")
        check(stored("smuggled@x.io") == 0, "the smuggled request ran")

    def test_framing_two_equal_content_lengths_refused():
        raw = create_raw("twice@x.io", lambda n: b"Content-Length: %d\r\nContent-Length: %d\r\n" % (n, n))
        out, closed = exchange(port, raw)
        got = answers(out)
        expect_json_error(got[0], 400, "bad_request")
        check(closed and len(got) == 1, "more than one answer, or left open")
        check(stored("twice@x.io") == 0, "created despite two lengths")

    def test_framing_length_beside_transfer_encoding_refused():
        raw = create_raw("te@x.io", lambda n: b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n" % n)
        out, closed = exchange(port, raw)
        expect_json_error(answers(out)[0], 400, "bad_request")
        check(closed, "left open")
        check(stored("te@x.io") == 0, "created")
        raw = (b"POST /contacts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        out, closed = exchange(port, raw)
        expect_json_error(answers(out)[0], 400, "bad_request")

    def test_framing_one_length_still_works():
        raw = create_raw("once@x.io", lambda n: b"Content-Length: %d\r\n" % n)
        st, h, body = answers(exchange(port, raw + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0])[0]
        check(st == 200, f"create: {st} {body!r}")
        check(stored("once@x.io") == 1, "not created")

    def test_framing_heads_h2o_refuses_answer_json():
        for raw in [b"GET /contacts HTTP/1.1\r\nHost: x\r\nX-Bad: a\x7fb\r\n\r\n",
                    b"GET /contacts HTTP/1.1 extra\r\nHost: x\r\n\r\n",
                    b"\x00\x01\x02 garbage\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 500000 + b"\r\n\r\n"]:
            out, closed = exchange(port, raw)
            got = answers(out)
            check(len(got) == 1, f"{len(got)} answers to {raw[:40]!r}")
            expect_json_error(got[0], 400, "bad_request")
            check(closed, f"left open after {raw[:40]!r}")

    def test_framing_key_whitespace_is_not_part_of_it():
        for k in (key + "  ", key + "\t", " " + key, "\t" + key + " \t"):
            raw = (b"GET /contacts?searchby=email&search=once@x.io HTTP/1.1\r\nHost: x\r\n"
                   b"Connection: close\r\nx-api-key: " + k.encode() + b"\r\n\r\n")
            st, _, body = answers(exchange(port, raw)[0])[0]
            check(st == 200, f"key {k!r}: {st} {body!r}")
        raw = b"GET /contacts?searchby=email&search=a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-api-key:   \r\n\r\n"
        expect_json_error(answers(exchange(port, raw)[0])[0], 401, "missing_api_key")

    def test_framing_http2_body_over_the_limit_is_413():
        if not shutil.which("curl") or not shutil.which("nghttp"):
            raise Fail("curl and nghttp are needed")
        body = os.path.join(work, "body")
        for size in (2 << 20, 6 << 20):
            with open(body, "wb") as f:
                f.write(b"a" * size)
            p = subprocess.run(["nghttp", "-v", "-d", body, "-H", f"x-api-key: {key}",
                                f"http://127.0.0.1:{port}/contacts"],
                               capture_output=True, text=True, timeout=60)
            check(":status: 413" in p.stdout, f"{size} bytes: no 413:\n{p.stdout[-1500:]}")
            check("REFUSED_STREAM" not in p.stdout, f"{size} bytes: refused stream")
        with open(body, "wb") as f:
            f.write(b"a" * (2 << 20))
        p = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-H", f"x-api-key: {key}",
                            "--data-binary", "@" + body, f"http://127.0.0.1:{port}/contacts"],
                           capture_output=True, text=True, timeout=60)
        check(json.loads(p.stdout)["error"]["code"] == "payload_too_large", p.stdout[:300])

    try:
        for fn in (test_framing_two_content_lengths_smuggle_nothing,
                   test_framing_two_equal_content_lengths_refused,
                   test_framing_length_beside_transfer_encoding_refused,
                   test_framing_one_length_still_works,
                   test_framing_heads_h2o_refuses_answer_json,
                   test_framing_key_whitespace_is_not_part_of_it,
                   test_framing_http2_body_over_the_limit_is_413):
            case(fn)
        check(srv.alive(), "the server died")
        rc = srv.stop()
        if rc != 0:
            failures.append(f"exit status {rc}")
    finally:
        srv.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
