#!/usr/bin/env python3
"""e2e_contacts.py: the contacts API through contactd with the real plugins.

Every /contacts endpoint over every protocol (HTTP/1.1, h2c with prior
knowledge and with Upgrade, TLS with ALPN h2 and http/1.1, and nghttp);
tenant isolation between two accounts; a read-only key; the service
endpoints; a restart keeps everything; SIGTERM while clients write loses
no acknowledged write; kill -9 loses no acknowledged write either.
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import (CLEAR_PROTOCOLS, TLS_PROTOCOLS, Fail, Remote, Server,  # noqa: E402
                     Workdir, check, check_eq, curl, keytool, load_target,
                     make_cert, nghttp, parse_args, run_tests)

args = parse_args()
work = Workdir(args.keep)
cert, key = make_cert(work)
PLUGINS = args.plugins
ID_RE = re.compile(r"[1-9][0-9]{19}")

if not os.path.exists(os.path.join(PLUGINS, "contacts.so")):
    print(f"skipped: no contacts.so in {PLUGINS}")
    sys.exit(0)

# One server for most tests, listening in clear and (a second process on
# the same kind of data) over TLS; accounts made before they start. With
# --target, a running server (or HAProxy in front of shards) instead, and
# the tests that start servers of their own are left out.
TARGET = load_target(args)
if TARGET:
    main = Remote(TARGET["url"])
    tls = Remote(TARGET["tls_url"], TARGET["keys"]["tls"])
    KEY_A, KEY_B, KEY_RO = (TARGET["keys"][k] for k in ("a", "b", "ro"))
else:
    data = work.sub("data-main")
    Server(args.contactd, data, PLUGINS).start().stop()
    with open(os.path.join(data, "default.key")) as f:
        KEY_A = f.read().strip()
    KEY_B = keytool(args, data, "add", "other", "rw")
    KEY_RO = keytool(args, data, "add", "default", "ro")
    main = Server(args.contactd, data, PLUGINS).start()
    tls_data = work.sub("data-tls")
    tls = Server(args.contactd, tls_data, PLUGINS, tls=(cert, key)).start()
TLS_KEY = tls.key
OWN_SERVERS = ("test_keys_made_with_contactctl", "test_restart_keeps_everything",
               "test_sigterm_while_writing_loses_nothing",
               "test_kill_9_loses_no_acknowledged_write")

_n = [0]


def unique_email(tag):
    _n[0] += 1
    return f"{tag}.{os.getpid()}.{_n[0]}@example.com"


def req(server, proto, method, path, body=None, key=None, headers=()):
    hdrs = list(headers)
    if key is not None:
        hdrs.append(f"x-api-key: {key}")
    data = json.dumps(body) if isinstance(body, (dict, list)) else body
    return curl(server.url + path, proto, method=method, headers=hdrs,
                data=data, workdir=work.path)


def targets():
    for p in CLEAR_PROTOCOLS:
        yield main, p, KEY_A
    for p in TLS_PROTOCOLS:
        yield tls, p, TLS_KEY


def check_error(r, status, code, where):
    check_eq(r.status, status, f"{where}: status ({r.body[:200]!r})")
    check_eq(r.header("content-type"), "application/json", f"{where}: type")
    check_eq(r.json()["error"]["code"], code, f"{where}: code")
    return r.json()["error"]


def create(server, proto, key, **fields):
    r = req(server, proto, "POST", "/contacts", fields, key)
    check_eq(r.status, 200, f"create over {proto}: {r.body[:300]!r}")
    cid = r.json()["id"]
    check(ID_RE.fullmatch(cid), f"bad id {cid}")
    return cid


# ------------------------------------------------------------------ tests

def test_full_life_cycle_on_every_protocol():
    for server, proto, key in targets():
        email = unique_email("life")
        # Create, as the original specification shows it (phone an integer,
        # curl's form content type).
        cid = create(server, proto, key, first_name="John", last_name="Doe",
                     email=email, phone=1234567890, company="Example Inc.",
                     job_title="Engineer", notes="met at the fair")
        r = req(server, proto, "GET", f"/contacts/{cid}", key=key)
        check_eq(r.status, 200, f"{proto} get")
        c = r.json()
        check_eq((c["id"], c["first_name"], c["email"], c["phone"]),
                 (cid, "John", email, "1234567890"), f"{proto} contact")
        check(r.header("content-length") and not r.header("transfer-encoding"),
              f"{proto} framing")
        # Search by query string and by a JSON body on the GET.
        r = req(server, proto, "GET",
                f"/contacts?searchby=email&search={email.upper()}", key=key)
        check_eq(r.status, 200, f"{proto} search")
        page = r.json()
        check_eq([x["id"] for x in page["contacts"]], [cid], "search result")
        check_eq((page["count"], page["total"], page["next_cursor"]),
                 (1, 1, None), "search page")
        r = req(server, proto, "GET", "/contacts",
                {"searchby": "company", "search": "example inc."}, key)
        check(cid in [x["id"] for x in r.json()["contacts"]],
              f"{proto} JSON-body search")
        # Edit the original way (contactID/updateFields), then the REST way.
        r = req(server, proto, "POST", "/contacts",
                {"contactID": cid, "updateFields": {"phone": "+1 (555) 010",
                                                    "company": None}}, key)
        check_eq((r.status, r.json()), (200, {"id": cid}), f"{proto} edit")
        r = req(server, proto, "PATCH", f"/contacts/{cid}",
                {"name": "Jane Q Public"}, key)
        check_eq(r.status, 200, f"{proto} patch")
        c = req(server, proto, "GET", f"/contacts/{cid}", key=key).json()
        check_eq((c["first_name"], c.get("last_name"), c["phone"],
                  c.get("company")), ("Jane", "Q Public", "+1 (555) 010", None),
                 f"{proto} edited contact")
        # Duplicate email is a 409 naming the holder.
        r = req(server, proto, "POST", "/contacts",
                {"first_name": "Dup", "email": email.upper()}, key)
        e = check_error(r, 409, "duplicate_email", f"{proto} duplicate")
        check_eq(e.get("id"), cid, "409 names the holder")
        # Batch.
        r = req(server, proto, "POST", "/contacts/batch",
                {"contacts": [{"first_name": "B1", "email": unique_email("b")},
                              {"first_name": "B2", "email": email}]}, key)
        check_eq(r.status, 200, f"{proto} batch")
        results = r.json()["results"]
        check(ID_RE.fullmatch(results[0]["id"]), "batch item 1")
        check_eq(results[1]["error"]["code"], "duplicate_email", "batch item 2")
        # Delete by body, then by id.
        r = req(server, proto, "DELETE", "/contacts", {"contact_id": cid}, key)
        check_eq(r.status, 200, f"{proto} delete")
        check_eq(r.body, b"Document deleted successfully", "delete body")
        check(r.header("content-type").startswith("text/plain"), "delete type")
        check_error(req(server, proto, "GET", f"/contacts/{cid}", key=key),
                    404, "not_found", f"{proto} after delete")
        check_error(req(server, proto, "DELETE", f"/contacts/{cid}", key=key),
                    404, "not_found", f"{proto} second delete")
        r = req(server, proto, "DELETE", f"/contacts/{results[0]['id']}",
                key=key)
        check_eq(r.status, 200, f"{proto} delete by id")
        # The email is free again.
        create(server, proto, key, first_name="Again", email=email)


def test_nghttp_creates_and_reads():
    email = unique_email("ng")
    # nghttp -u gives up when the answer is not a 101 (a proxy that does
    # not upgrade, such as HAProxy, answers in HTTP/1.1; curl checks that).
    upgrades = not TARGET or TARGET.get("upgrade_version", "2") == "2"
    for url, k, up in ((main.url, KEY_A, False), (main.url, KEY_A, True),
                       (tls.url, TLS_KEY, False)):
        if up and not upgrades:
            continue
        e = f"{up}-{url[:5]}-{email}"
        status, hdrs, text = nghttp(url + "/contacts",
                                    headers=[f"x-api-key: {k}"],
                                    data=json.dumps({"first_name": "Ng",
                                                     "email": e}),
                                    upgrade=up, workdir=work.path)
        check_eq(status, 200, f"nghttp create {url} {up}")
        cid = re.search(r'"id":\s*"(\d{20})"', text).group(1)
        status, hdrs, text = nghttp(f"{url}/contacts/{cid}",
                                    headers=[f"x-api-key: {k}"],
                                    upgrade=up, workdir=work.path)
        check_eq(status, 200, "nghttp get")
        check(e in text, "nghttp body")


def test_errors_have_the_api_shape():
    for server, proto, key in targets():
        check_error(req(server, proto, "GET", "/contacts"), 401,
                    "missing_api_key", proto)
        check_error(req(server, proto, "GET", "/contacts", key="ck_bad"), 401,
                    "invalid_api_key", proto)
        check_error(req(server, proto, "POST", "/contacts",
                        {"first_name": "X", "email": unique_email("u"),
                         "favourite": 1}, key), 400, "unknown_field", proto)
        e = check_error(req(server, proto, "POST", "/contacts",
                            {"first_name": "X", "email": "not-an-email"}, key),
                        400, "invalid_field", proto)
        check_eq(e.get("field"), "email", "field named")
        check_error(req(server, proto, "GET", "/contacts/12345", key=key), 404,
                    "not_found", proto)
        r = req(server, proto, "PUT", "/contacts", {}, key)
        check_eq((r.status, r.header("allow")), (405, "DELETE, GET, HEAD, POST"),
                 f"{proto} 405")
        check_error(req(server, proto, "POST", "/contacts",
                        "x" * (1024 * 1024 + 1), key), 413,
                    "payload_too_large", proto)


def test_tenant_isolation():
    email = unique_email("iso")
    a = create(main, "h1", KEY_A, first_name="Alice", email=email,
               company="Shared Co")
    # The same email may live in another account.
    b = create(main, "h2c", KEY_B, first_name="Bob", email=email,
               company="Shared Co")
    for proto in CLEAR_PROTOCOLS:
        for key, mine, theirs in ((KEY_A, a, b), (KEY_B, b, a)):
            check_eq(req(main, proto, "GET", f"/contacts/{mine}",
                         key=key).status, 200, "own contact")
            check_error(req(main, proto, "GET", f"/contacts/{theirs}", key=key),
                        404, "not_found", f"{proto} read other account")
            check_error(req(main, proto, "PATCH", f"/contacts/{theirs}",
                            {"first_name": "Mallory"}, key), 404, "not_found",
                        f"{proto} edit other account")
            check_error(req(main, proto, "POST", "/contacts",
                            {"contact_id": theirs,
                             "update_fields": {"notes": "x"}}, key),
                        404, "not_found", f"{proto} POST-edit other account")
            check_error(req(main, proto, "DELETE", f"/contacts/{theirs}",
                            key=key), 404, "not_found",
                        f"{proto} delete other account")
            check_error(req(main, proto, "DELETE", "/contacts",
                            {"contactID": theirs}, key), 404, "not_found",
                        f"{proto} body delete other account")
            for searchby, term in (("email", email), ("company", "Shared Co"),
                                   ("id", theirs)):
                r = req(main, proto, "GET",
                        f"/contacts?searchby={searchby}&search="
                        f"{urllib.parse.quote_plus(term)}", key=key)
                ids = [x["id"] for x in r.json()["contacts"]]
                check(theirs not in ids, f"{proto} search by {searchby} leaks")
    # The other account's contact is unchanged.
    c = req(main, "h1", "GET", f"/contacts/{b}", key=KEY_B).json()
    check_eq((c["first_name"], c.get("notes")), ("Bob", None), "untouched")


def test_read_only_key():
    cid = create(main, "h1", KEY_A, first_name="Ro", email=unique_email("ro"))
    for proto in CLEAR_PROTOCOLS:
        check_eq(req(main, proto, "GET", f"/contacts/{cid}",
                     key=KEY_RO).status, 200, "read-only reads")
        check_error(req(main, proto, "POST", "/contacts",
                        {"first_name": "N", "email": unique_email("n")},
                        KEY_RO), 403, "read_only_key", proto)
        check_error(req(main, proto, "PATCH", f"/contacts/{cid}",
                        {"first_name": "N"}, KEY_RO), 403, "read_only_key",
                    proto)
        check_error(req(main, proto, "DELETE", f"/contacts/{cid}", key=KEY_RO),
                    403, "read_only_key", proto)
        check_error(req(main, proto, "POST", "/contacts/batch",
                        {"contacts": [{"first_name": "N"}]}, KEY_RO), 403,
                    "read_only_key", proto)


def test_keys_made_with_contactctl():
    """The admin tool's keys work in the server: a read-only key of a new
    account reads only its own (empty) list and cannot write; a revoked
    key stops working at the next start."""
    if not args.contactctl or not os.path.exists(args.contactctl):
        print("  (contactctl not built: skipped)")
        return
    d = work.sub("data-ctl")
    s = Server(args.contactd, d, PLUGINS).start()
    k = s.key
    cid = create(s, "h1", k, first_name="Ctl", email=unique_email("ctl"))
    check_eq(s.stop(), 0, "stop")

    def ctl(*rest):
        p = subprocess.run([args.contactctl, "--data", d] + list(rest),
                           capture_output=True, timeout=60)
        check(p.returncode == 0, f"contactctl {rest}: {p.stderr.decode()}")
        return p.stdout.decode()

    out = ctl("keys", "add", "--account", "viewer", "--read-only")
    ro = re.search(r"\b(ck_[A-Za-z0-9]{40})\b", out).group(1)
    key_id = re.search(r"key_id\s+(ck_\S+)", out).group(1)
    s = Server(args.contactd, d, PLUGINS).start()
    try:
        check_error(req(s, "h2c", "POST", "/contacts",
                        {"first_name": "N", "email": unique_email("n")}, ro),
                    403, "read_only_key", "contactctl read-only key")
        check_error(req(s, "h1", "GET", f"/contacts/{cid}", key=ro), 404,
                    "not_found", "another account's contact")
        r = req(s, "h1", "GET", "/contacts?searchby=first_name&search=Ctl",
                key=ro)
        check_eq(r.json()["total"], 0, "the new account sees nothing")
    finally:
        check_eq(s.stop(), 0, "stop")
    ctl("keys", "revoke", key_id)
    s = Server(args.contactd, d, PLUGINS).start()
    try:
        check_error(req(s, "h1", "GET", "/contacts?searchby=id&search=1",
                        key=ro), 401, "invalid_api_key", "revoked key")
        check_eq(req(s, "h1", "GET", f"/contacts/{cid}", key=k).status, 200,
                 "the default key still works")
    finally:
        check_eq(s.stop(), 0, "stop")


def test_paging_with_cursor():
    company = f"Pager {os.getpid()}"
    ids = [create(main, "h2c", KEY_A, first_name=f"P{i}",
                  email=unique_email("page"), company=company)
           for i in range(7)]
    seen, cursor = [], None
    for _ in range(10):
        q = f"/contacts?searchby=company&search={company.replace(' ', '+')}&limit=3"
        if cursor:
            q += f"&cursor={cursor}"
        page = req(main, "h1", "GET", q, key=KEY_A).json()
        check_eq(page["total"], 7, "total")
        seen += [c["id"] for c in page["contacts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    check_eq(seen, ids, "pages in creation order, none twice, none skipped")


def test_service_endpoints():
    for server, proto, _ in targets():
        r = req(server, proto, "GET", "/healthz")
        check_eq((r.status, r.json()), (200, {"status": "ok"}), f"{proto} health")
        if proto == "upgrade":
            # Over Upgrade, curl 7.88 cannot take a first answer larger than
            # its 32 KiB buffer (its own limit): the OpenAPI document and the
            # metrics (every route's histogram, every plugin's metrics) are
            # past it. The other protocols cover them.
            continue
        r = req(server, proto, "GET", "/openapi.json")
        check_eq(r.status, 200, f"{proto} openapi")
        check(str(r.json().get("openapi", "")).startswith("3.1"),
              "openapi 3.1")
        r = req(server, proto, "GET", "/metrics")
        check_eq(r.status, 200, f"{proto} metrics")
        text = r.body.decode()
        check('contactd_http_requests_total{method="GET",route="/healthz",'
              'status="200"}' in text, "front-end counters in /metrics")
        check("contactd_http_request_duration_seconds_bucket" in text,
              "histograms in /metrics")


def contact_state(server, key):
    """Every contact the key sees, by id (via a search that pages)."""
    out, cursor = {}, None
    while True:
        q = "/contacts?searchby=email&match=words&search=example.com&limit=1000"
        if cursor:
            q += f"&cursor={cursor}"
        page = req(server, "h1", "GET", q, key=key).json()
        for c in page["contacts"]:
            out[c["id"]] = c
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def test_restart_keeps_everything():
    d = work.sub("data-restart")
    s = Server(args.contactd, d, PLUGINS).start()
    k = s.key
    ids = [create(s, "h1", k, first_name=f"R{i}", email=unique_email("r"),
                  notes=f"note {i}") for i in range(20)]
    req(s, "h1", "PATCH", f"/contacts/{ids[0]}", {"company": "Edited"}, k)
    req(s, "h1", "DELETE", f"/contacts/{ids[1]}", key=k)
    before = contact_state(s, k)
    check_eq(len(before), 19, "contacts before restart")
    check_eq(s.stop(), 0, "stop")
    s = Server(args.contactd, d, PLUGINS).start()
    try:
        check(s.key is None or s.key == k, "a new key was made on restart")
        check(not any("API key for account default" in l for l in s.lines),
              "restart printed a key again")
        check_eq(contact_state(s, k), before, "contacts after restart")
        check_eq(req(s, "h1", "GET", f"/contacts/{ids[0]}", key=k)
                 .json()["company"], "Edited", "edit kept")
        check_eq(req(s, "h1", "GET", f"/contacts/{ids[1]}", key=k).status,
                 404, "delete kept")
        new = create(s, "h1", k, first_name="After", email=unique_email("a"))
        check(int(new) > max(int(i) for i in ids), "ids keep increasing")
    finally:
        check_eq(s.stop(), 0, "second stop")


def writers_until_gone(server, key, nthreads=8):
    """Creates contacts from nthreads keep-alive clients until the server
    goes away; returns the ids it answered 200 for."""
    host, port = server.url[len("http://"):].rsplit(":", 1)
    acked, lock, stop = [], threading.Lock(), threading.Event()

    def writer(t):
        i = 0
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, int(port), timeout=10)
                body = json.dumps({"first_name": f"W{t}",
                                   "email": f"w{t}.{i}@example.com"})
                conn.request("POST", "/contacts", body,
                             {"x-api-key": key, "content-type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status == 200:
                    with lock:
                        acked.append(json.loads(data)["id"])
                i += 1
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
    threads = [threading.Thread(target=writer, args=(t,)) for t in range(nthreads)]
    for t in threads:
        t.start()
    return acked, stop, threads


def test_sigterm_while_writing_loses_nothing():
    d = work.sub("data-sigterm")
    s = Server(args.contactd, d, PLUGINS).start()
    k = s.key
    acked, stop, threads = writers_until_gone(s, k)
    time.sleep(1.5)
    rc = s.stop(signal.SIGTERM)
    stop.set()
    for t in threads:
        t.join(30)
    check_eq(rc, 0, "exit status after SIGTERM under load")
    check(len(acked) > 20, f"too few writes acknowledged ({len(acked)})")
    s = Server(args.contactd, d, PLUGINS).start()
    try:
        have = contact_state(s, k)
        missing = [i for i in acked if i not in have]
        check_eq(missing, [], f"acknowledged writes lost ({len(acked)} acked)")
    finally:
        check_eq(s.stop(), 0, "stop")


def test_kill_9_loses_no_acknowledged_write():
    d = work.sub("data-kill")
    s = Server(args.contactd, d, PLUGINS).start()
    k = s.key
    acked, stop, threads = writers_until_gone(s, k)
    time.sleep(1.0)
    s.proc.kill()
    s.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(30)
    s = Server(args.contactd, d, PLUGINS).start()
    try:
        have = contact_state(s, k)
        missing = [i for i in acked if i not in have]
        check_eq(missing, [], f"acknowledged writes lost after kill -9 "
                 f"({len(acked)} acked)")
    finally:
        check_eq(s.stop(), 0, "stop")


TESTS = [(name, fn) for name, fn in sorted(globals().items())
         if name.startswith("test_") and callable(fn)
         and not (TARGET and name in OWN_SERVERS)]

if __name__ == "__main__":
    try:
        status = run_tests(TESTS, args)
        for s, name in ((main, "main"), (tls, "tls")):
            rc = s.stop()
            if rc != 0:
                print(f"FAIL shared {name} server exited {rc}:\n{s.stderr()}")
                status = 1
            if any("AddressSanitizer" in l or "runtime error" in l
                   for l in s.lines):
                print(f"FAIL shared {name} server reported:\n{s.stderr()}")
                status = 1
    finally:
        work.cleanup()
    sys.exit(status)
