#!/usr/bin/env python3
"""e2e_safe.py: the safe writes of API.md through contactd, end to end.

Versions and entity tags (etag, If-Match with its 412, If-None-Match with
its 304), idempotency keys (a replay byte for byte with
idempotent-replayed, 422 for another request, 409 while in flight, batches
replayed whole), upsert and batch upsert, the trash (newest first, paged),
restore (200, 404, 409 naming the holder), purge, and --trash-days. Then
the concurrency the issue asks for, over real connections: 50 upserts of
one new email at once create one contact; 50 edits naming one version at
once apply one; 50 retries of one idempotent create at once make one
contact and get one answer (or 409 while it is in flight).

Requests go through curl (HTTP/1.1, h2c with prior knowledge and with
Upgrade), nghttp, and http.client (raw HTTP/1.1, for the concurrent ones
and wherever bytes are compared).
"""
import http.client
import json
import os
import re
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import (Raw, CLEAR_PROTOCOLS, Fail, Server, Workdir,  # noqa: E402
                     check, check_eq, curl, keytool, nghttp,
                     parse_args, run_and_stop, run_contactd)


args = parse_args()
work = Workdir(args.keep)
PLUGINS = args.plugins
ID_RE = re.compile(r"[1-9][0-9]{19}")
DELETED = b"Document deleted successfully"

if not os.path.exists(os.path.join(PLUGINS, "contacts.so")):
    print(f"skipped: no contacts.so in {PLUGINS}")
    sys.exit(0)

# The accounts are made before the server starts: default (read-write),
# a read-only key of it, and a second account.
data = work.sub("data-safe")
Server(args.contactd, data, PLUGINS).start().stop()
with open(os.path.join(data, "default.key")) as f:
    KEY = f.read().strip()
KEY_RO = keytool(args, data, "add", "default", "ro")
KEY_B = keytool(args, data, "add", "other", "rw")
main = Server(args.contactd, data, PLUGINS).start()
HOSTPORT = urllib.parse.urlsplit(main.url).netloc

_n = [0]


def unique(tag):
    _n[0] += 1
    return f"{tag}-{os.getpid()}-{_n[0]}"


def email(tag):
    return f"{unique(tag)}@safe.example.com"


def raw(method, path, body=None, headers=None, key=KEY, conn=None):
    """One HTTP/1.1 request over http.client: the body as bytes."""
    own = conn is None
    c = conn or http.client.HTTPConnection(HOSTPORT, timeout=60)
    h = dict(headers or {})
    if key is not None:
        h["x-api-key"] = key
    data = json.dumps(body) if isinstance(body, (dict, list)) else body
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        out = Raw.read(r)
    finally:
        if own:
            c.close()
    return out


def req(proto, method, path, body=None, headers=(), key=KEY):
    hdrs = list(headers)
    if key is not None:
        hdrs.append(f"x-api-key: {key}")
    data = json.dumps(body) if isinstance(body, (dict, list)) else body
    return curl(main.url + path, proto, method=method, headers=hdrs,
                data=data, workdir=work.path)


def check_error(r, status, code, where, field=None):
    check_eq(r.status, status, f"{where}: status ({r.body[:200]!r})")
    check_eq(r.header("content-type"), "application/json", f"{where}: type")
    e = r.json()["error"]
    check_eq(e["code"], code, f"{where}: code")
    if field is not None:
        check_eq(e.get("field"), field, f"{where}: field")
    return e


def create(**fields):
    r = raw("POST", "/contacts", fields)
    check_eq(r.status, 200, f"create {r.body!r}")
    check_eq(r.header("etag"), '"1"', "a create's etag")
    return r.json()["id"]


def run_all(n, fn):
    """Runs fn(i) in n threads released at once; returns the results."""
    out = [None] * n
    gate = threading.Barrier(n)

    def one(i):
        c = http.client.HTTPConnection(HOSTPORT, timeout=120)
        try:
            c.connect()
            gate.wait(30)
            out[i] = fn(i, c)
        except Exception as e:  # noqa: BLE001 - reported below
            out[i] = e
        finally:
            c.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    for r in out:
        if isinstance(r, Exception):
            raise Fail(f"a concurrent request failed: {r!r}")
    return out


def search_total(field, term, match="exact"):
    q = urllib.parse.urlencode({"searchby": field, "search": term,
                                "match": match, "limit": 1000})
    r = raw("GET", "/contacts?" + q)
    check_eq(r.status, 200, "search")
    return r.json()


# ------------------------------------------------------------- versions

def test_version_and_etag_on_every_protocol():
    for proto in CLEAR_PROTOCOLS:
        r = req(proto, "POST", "/contacts",
                {"first_name": "V", "email": email("v")})
        check_eq(r.status, 200, f"{proto} create")
        check_eq(r.header("etag"), '"1"', f"{proto} create etag")
        cid = r.json()["id"]
        r = req(proto, "GET", f"/contacts/{cid}")
        check_eq(r.header("etag"), '"1"', f"{proto} get etag")
        check_eq(r.json()["version"], 1, f"{proto} version")
        r = req(proto, "PATCH", f"/contacts/{cid}", {"company": "C"},
                headers=['if-match: "1"'])
        check_eq(r.status, 200, f"{proto} if-match edit")
        check_eq(r.header("etag"), '"2"', f"{proto} edit etag")
        r = req(proto, "GET", f"/contacts/{cid}",
                headers=['if-none-match: "2"'])
        check_eq(r.status, 304, f"{proto} if-none-match")
        check_eq(r.body, b"", f"{proto} 304 body")
        check_eq(r.header("etag"), '"2"', f"{proto} 304 etag")
        r = req(proto, "GET", f"/contacts/{cid}",
                headers=['if-none-match: "1"'])
        check_eq(r.status, 200, f"{proto} if-none-match, old version")
        check_eq(r.json()["version"], 2, f"{proto} version after edit")
        r = req(proto, "DELETE", f"/contacts/{cid}")
        check_eq(r.status, 200, f"{proto} delete")
        check_eq(r.header("etag"), None, f"{proto} delete has no etag")


def test_nghttp_sees_etag_and_304():
    cid = create(first_name="N", email=email("n"))
    url = f"{main.url}/contacts/{cid}"
    status, hdrs, _ = nghttp(url, headers=[f"x-api-key: {KEY}"],
                             workdir=work.path)
    check_eq(status, 200, "nghttp get")
    check_eq(hdrs.get("etag"), '"1"', "nghttp etag")
    status, hdrs, _ = nghttp(url, headers=[f"x-api-key: {KEY}",
                                           'if-none-match: W/"1"'],
                             workdir=work.path)
    check_eq(status, 304, "nghttp if-none-match")


def test_if_match_412_names_the_current_etag():
    cid = create(first_name="M", email=email("m"))
    r = raw("PATCH", f"/contacts/{cid}", {"company": "A"},
            {"if-match": '"1"'})
    check_eq(r.status, 200, "first edit")
    for method, path, body in (
            ("PATCH", f"/contacts/{cid}", {"company": "B"}),
            ("POST", "/contacts", {"contact_id": cid,
                                   "update_fields": {"company": "B"}}),
            ("DELETE", f"/contacts/{cid}", None),
            ("DELETE", "/contacts", {"contact_id": cid})):
        r = raw(method, path, body, {"if-match": '"1", "7"'})
        e = check_error(r, 412, "precondition_failed", f"{method} {path}")
        check_eq(e.get("etag"), '"2"', f"{method} {path}: etag in the error")
    r = raw("GET", f"/contacts/{cid}")
    check_eq(r.json().get("company"), "A", "nothing changed by a 412")
    check_eq(r.json()["version"], 2, "version after the 412s")
    r = raw("PATCH", f"/contacts/{cid}", {"company": "C"}, {"if-match": "*"})
    check_eq(r.status, 200, "if-match *")
    missing = "19999999999999999999"
    r = raw("PATCH", f"/contacts/{missing}", {"company": "C"},
            {"if-match": "*"})
    e = check_error(r, 412, "precondition_failed", "a missing contact")
    check("etag" not in e, f"no etag for a missing contact: {e}")
    r = raw("PATCH", f"/contacts/{cid}", {"company": "C"},
            {"if-match": 'W/"3"'})
    check_error(r, 400, "invalid_field", "a weak If-Match", "if-match")
    many = ", ".join(f'"{i}"' for i in range(1, 10))
    r = raw("PATCH", f"/contacts/{cid}", {"company": "C"}, {"if-match": many})
    check_error(r, 400, "invalid_field", "nine tags", "if-match")


# ------------------------------------------------------- idempotency keys

def test_idempotent_create_replays_byte_for_byte():
    key = unique("key")
    body = json.dumps({"first_name": "I", "email": email("i")})
    first = raw("POST", "/contacts", body, {"idempotency-key": key})
    check_eq(first.status, 200, "first")
    check_eq(first.header("idempotent-replayed"), None, "first not replayed")
    for proto in CLEAR_PROTOCOLS:
        again = req(proto, "POST", "/contacts", body,
                    headers=[f"idempotency-key: {key}"])
        check_eq(again.status, 200, f"{proto} replay status")
        check_eq(again.body, first.body, f"{proto} replay body")
        check_eq(again.header("idempotent-replayed"), "true",
                 f"{proto} replay header")
        check_eq(again.header("content-type"), "application/json",
                 f"{proto} replay type")
    check_eq(search_total("email", json.loads(body)["email"])["total"], 1,
             "one contact made")
    r = raw("POST", "/contacts", json.dumps({"first_name": "J",
                                             "email": email("j")}),
            {"idempotency-key": key})
    check_error(r, 422, "idempotency_key_reused", "another body")
    r = raw("POST", "/contacts/batch", body, {"idempotency-key": key})
    check_error(r, 422, "idempotency_key_reused", "another path")
    r = raw("POST", "/contacts", body, {"idempotency-key": "caf\u00e9"
                                        .encode().decode("latin-1")})
    check_error(r, 400, "invalid_field", "a key not ASCII", "idempotency-key")
    r = raw("POST", "/contacts", body, {"idempotency-key": "k" * 256})
    check_error(r, 400, "invalid_field", "a key too long", "idempotency-key")


def test_idempotent_delete_and_batch_replay_whole():
    cid = create(first_name="D", email=email("d"))
    key = unique("del")
    a = raw("DELETE", f"/contacts/{cid}", None, {"idempotency-key": key})
    b = raw("DELETE", f"/contacts/{cid}", None, {"idempotency-key": key})
    check_eq((a.status, a.body), (200, DELETED), "delete")
    check_eq((b.status, b.body), (200, DELETED), "delete replayed")
    check_eq(b.header("content-type"), "text/plain; charset=utf-8",
             "replayed text type")
    check_eq(b.header("idempotent-replayed"), "true", "delete replay header")
    r = raw("DELETE", f"/contacts/{cid}?purge=true", None,
            {"idempotency-key": key})
    check_error(r, 422, "idempotency_key_reused", "the query counts")
    dup = email("b")
    body = json.dumps({"contacts": [{"first_name": "B", "email": dup},
                                    {"first_name": "B", "email": dup},
                                    {"first_name": "C"}]})
    key = unique("batch")
    a = raw("POST", "/contacts/batch", body, {"idempotency-key": key})
    b = raw("POST", "/contacts/batch", body, {"idempotency-key": key})
    check_eq(a.status, 200, "batch")
    check_eq(b.body, a.body, "batch replayed byte for byte")
    check_eq(b.header("idempotent-replayed"), "true", "batch replay header")
    res = a.json()["results"]
    check("id" in res[0] and res[1]["error"]["code"] == "duplicate_email" and
          res[2]["error"]["code"] == "missing_field", f"batch results {res}")


def test_in_flight_key_is_409_and_one_batch_is_carried_out():
    domain = unique("inflight") + ".example.com"
    body = json.dumps({"contacts": [
        {"first_name": "F", "email": f"p{i}@{domain}"} for i in range(1000)]})
    key = unique("flight")

    def send(i, c):
        return raw("POST", "/contacts/batch", body, {"idempotency-key": key},
                   conn=c)
    a, b = run_all(2, send)
    answers = sorted((a, b), key=lambda r: r.header("idempotent-replayed")
                     is not None or r.status != 200)
    original, other = answers
    check_eq(original.status, 200, "the batch carried out")
    check_eq(original.header("idempotent-replayed"), None,
             "one answer is the original")
    if other.status == 409:
        check_error(other, 409, "idempotency_key_in_use", "in flight")
        check_eq(other.header("retry-after"), "1", "retry-after of a 409")
    else:
        check_eq(other.status, 200, f"the other: {other!r}")
        check_eq(other.header("idempotent-replayed"), "true", "replayed")
        check_eq(other.body, original.body, "the replay is the answer")
    ids = [x["id"] for x in original.json()["results"]]
    check_eq(len(ids), 1000, "every item stored")
    page = search_total("email", domain, "words")
    check_eq(page["total"], 1000, "exactly one batch was carried out")
    again = raw("POST", "/contacts/batch", body, {"idempotency-key": key})
    check_eq(again.body, original.body, "a later retry replays")


# ---------------------------------------------------------------- upsert

def test_upsert_created_updated_unchanged():
    addr = email("u")
    r = raw("POST", "/contacts/upsert", {"email": addr, "first_name": "U"})
    check_eq(r.status, 200, f"upsert {r.body!r}")
    check_eq(r.json()["result"], "created", "created")
    check_eq(r.header("etag"), '"1"', "created etag")
    cid = r.json()["id"]
    check(ID_RE.fullmatch(cid), f"id {cid}")
    r = raw("POST", "/contacts/upsert", {"email": addr, "first_name": "U"})
    check_eq(r.json(), {"id": cid, "result": "unchanged"}, "unchanged")
    check_eq(r.header("etag"), '"1"', "unchanged keeps the version")
    r = raw("POST", "/contacts/upsert", {"email": addr.upper(),
                                         "company": None, "job_title": "J"})
    check_eq(r.json(), {"id": cid, "result": "updated"}, "updated")
    check_eq(r.header("etag"), '"2"', "updated etag")
    got = raw("GET", f"/contacts/{cid}").json()
    check_eq((got["email"], got["job_title"], got["version"]),
             (addr.upper(), "J", 2), "stored as the upsert gave it")
    r = raw("POST", "/contacts/upsert", {"email": email("nofirst")})
    check_error(r, 400, "missing_field", "create without first_name",
                "first_name")
    r = raw("POST", "/contacts/upsert", {"first_name": "X"})
    check_error(r, 400, "missing_field", "no email", "email")
    r = raw("POST", "/contacts/upsert", {"email": addr, "version": 3})
    check_error(r, 400, "invalid_field", "version given", "version")
    r = raw("POST", "/contacts/upsert", {"email": addr, "company": "Q"},
            {"if-match": '"1"'})
    e = check_error(r, 412, "precondition_failed", "upsert if-match")
    check_eq(e.get("etag"), '"2"', "upsert 412 etag")


def test_batch_upsert_applies_in_order():
    a, b = email("ba"), email("bb")
    r = raw("POST", "/contacts/batch/upsert", {"contacts": [
        {"email": a, "first_name": "A"},
        {"email": a, "company": "Second"},
        {"email": b},
        {"email": a, "company": "Second"},
        {"first_name": "no email"}]})
    check_eq(r.status, 200, "batch upsert")
    res = r.json()["results"]
    check_eq([x.get("result") for x in res],
             ["created", "updated", None, "unchanged", None], "results")
    check_eq(res[0]["id"], res[1]["id"], "one contact for the email twice")
    check_eq(res[2]["error"]["field"], "first_name", "create needs first_name")
    check_eq(res[4]["error"]["field"], "email", "an item needs email")
    got = raw("GET", f"/contacts/{res[0]['id']}").json()
    check_eq((got["company"], got["version"]), ("Second", 2), "applied")
    r = raw("POST", "/contacts/batch/upsert", {"contacts": []})
    check_error(r, 400, "invalid_field", "an empty batch", "contacts")


# ----------------------------------------------------------------- trash

def test_trash_lists_newest_first_and_pages():
    mark = unique("trash")
    ids = [create(first_name="T", email=f"{mark}.{i}@example.com")
           for i in range(5)]
    for cid in ids:
        check_eq(raw("DELETE", f"/contacts/{cid}").status, 200, "delete")
    seen, cursor = [], None
    while True:
        q = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = raw("GET", f"/contacts/trash?{q}")
        check_eq(r.status, 200, f"trash page {r.body!r}")
        page = r.json()
        check(page["count"] == len(page["contacts"]) <= 2, "page count")
        for c in page["contacts"]:
            check("deleted_at" in c and "version" in c, f"trash object {c}")
            seen.append(c["id"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    mine = [i for i in seen if i in ids]
    check_eq(mine, list(reversed(ids)), "newest deletion first, each once")
    check_eq(len(seen), len(set(seen)), "no contact twice")
    r = raw("GET", f"/contacts/{ids[0]}")
    check_error(r, 404, "not_found", "a trashed contact is not readable")
    r = raw("GET", "/contacts/trash?cursor=nonsense")
    check_error(r, 400, "invalid_cursor", "a made-up cursor", "cursor")
    r = raw("GET", "/contacts/trash?limit=1001")
    check_error(r, 400, "invalid_field", "limit too large", "limit")


def test_restore_200_404_409():
    addr = email("r")
    cid = create(first_name="R", email=addr, company="Kept")
    check_eq(raw("PATCH", f"/contacts/{cid}", {"job_title": "J"}).status, 200,
             "edit to version 2")
    check_eq(raw("DELETE", f"/contacts/{cid}").status, 200, "delete")
    r = raw("POST", f"/contacts/{cid}/restore", None, {"if-match": '"1"'})
    e = check_error(r, 412, "precondition_failed", "restore if-match")
    check_eq(e.get("etag"), None, "no etag: the contact is not live")
    r = raw("POST", f"/contacts/{cid}/restore", None, {"if-match": '"2"'})
    check_eq(r.status, 200, f"restore {r.body!r}")
    check_eq(r.json(), {"id": cid}, "restore answer")
    check_eq(r.header("etag"), '"3"', "restore etag")
    got = raw("GET", f"/contacts/{cid}").json()
    check_eq((got["company"], got["job_title"], got["version"]),
             ("Kept", "J", 3), "restored as it was")
    r = raw("POST", f"/contacts/{cid}/restore")
    check_error(r, 404, "not_found", "restore of a live contact")
    r = raw("POST", "/contacts/19999999999999999999/restore")
    check_error(r, 404, "not_found", "restore of nothing")
    check_eq(raw("DELETE", "/contacts", {"contact_id": cid}).status, 200,
             "delete again")
    holder = create(first_name="H", email=addr.upper())
    r = raw("POST", f"/contacts/{cid}/restore")
    e = check_error(r, 409, "duplicate_email", "email taken meanwhile")
    check_eq(e.get("id"), holder, "409 names the holder")


def test_purge_by_path_and_by_body():
    a = create(first_name="P", email=email("pa"))
    b = create(first_name="P", email=email("pb"))
    r = raw("DELETE", f"/contacts/{a}?purge=true")
    check_eq((r.status, r.body), (200, DELETED), "purge by path")
    check_eq(raw("DELETE", f"/contacts/{b}").status, 200, "trash b")
    r = raw("DELETE", "/contacts", {"contact_id": b, "purge": True})
    check_eq((r.status, r.body), (200, DELETED), "purge from the trash")
    for cid in (a, b):
        check_error(raw("POST", f"/contacts/{cid}/restore"), 404, "not_found",
                    "restore after purge")
        check_error(raw("GET", f"/contacts/{cid}"), 404, "not_found",
                    "get after purge")
    trash = raw("GET", "/contacts/trash?limit=1000").json()["contacts"]
    check(not [c for c in trash if c["id"] in (a, b)], "purged not in trash")
    r = raw("DELETE", f"/contacts/{a}?purge=maybe")
    check_error(r, 400, "invalid_field", "purge=maybe", "purge")


def test_routes_do_not_take_trash_or_upsert_for_an_id():
    r = raw("GET", "/contacts/trash")
    check_eq(r.status, 200, "GET /contacts/trash")
    check("contacts" in r.json(), "the trash's page")
    r = raw("GET", "/contacts/upsert")
    check_error(r, 404, "not_found", "GET /contacts/upsert is an id")
    r = raw("POST", "/contacts/trash/restore")
    check_error(r, 404, "not_found", "restore of the id trash")


def test_trash_days_option():
    base = ["--data", work.sub("data-days"), "--plugins", PLUGINS,
            "--listen", "127.0.0.1:0"]
    for bad in ("0", "3651", "-1", "30d", "1.5"):
        rc, out, err = run_contactd(args.contactd, base + ["--trash-days", bad])
        check_eq(rc, 2, f"--trash-days {bad}: exit status ({err.strip()})")
        check("--trash-days" in err and "1 to 3650" in err,
              f"--trash-days {bad}: message {err!r}")
    rc, out, err = run_contactd(args.contactd, ["--help"])
    check("--trash-days" in out and "30" in out, "--help shows --trash-days")
    s = Server(args.contactd, work.sub("data-days-ok"), PLUGINS,
               args=["--trash-days", "1"]).start()
    try:
        r = curl(s.url + "/contacts/trash", headers=[f"x-api-key: {s.key}"],
                 workdir=work.path)
        check_eq(r.status, 200, "a server with --trash-days 1 serves")
    finally:
        check_eq(s.stop(), 0, "stop")


def test_read_only_keys_and_other_accounts():
    for method, path, body in (
            ("POST", "/contacts/upsert", {"email": email("ro")}),
            ("POST", "/contacts/batch/upsert", {"contacts": [{"email": "a@b.co"}]}),
            ("POST", "/contacts/19999999999999999999/restore", None),
            ("DELETE", "/contacts/19999999999999999999?purge=true", None)):
        r = raw(method, path, body, {"idempotency-key": unique("ro")},
                key=KEY_RO)
        check_error(r, 403, "read_only_key", f"read-only {method} {path}")
    check_eq(raw("GET", "/contacts/trash", key=KEY_RO).status, 200,
             "a read-only key reads the trash")
    # Another account's trash, restore, upsert and keys are its own.
    addr = email("iso")
    cid = create(first_name="A", email=addr)
    check_eq(raw("DELETE", f"/contacts/{cid}").status, 200, "delete")
    trash_b = raw("GET", "/contacts/trash?limit=1000", key=KEY_B).json()
    check(cid not in [c["id"] for c in trash_b["contacts"]],
          "another account's trash")
    check_error(raw("POST", f"/contacts/{cid}/restore", key=KEY_B), 404,
                "not_found", "another account's restore")
    check_error(raw("DELETE", f"/contacts/{cid}?purge=true", key=KEY_B), 404,
                "not_found", "another account's purge")
    r = raw("POST", "/contacts/upsert", {"email": addr, "first_name": "B"},
            key=KEY_B)
    check_eq(r.json().get("result"), "created", "upsert in the other account")
    key = unique("shared-key")
    body = json.dumps({"first_name": "S", "email": email("s")})
    a = raw("POST", "/contacts", body, {"idempotency-key": key})
    b = raw("POST", "/contacts", body, {"idempotency-key": key}, key=KEY_B)
    check_eq((a.status, b.status), (200, 200), "one key in two accounts")
    check_eq(b.header("idempotent-replayed"), None, "keys are per account")
    check(a.json()["id"] != b.json()["id"], "two contacts")


# ----------------------------------------------------------- concurrency

def test_50_concurrent_upserts_of_one_new_email_create_one():
    addr = email("conc-up")
    body = json.dumps({"email": addr, "first_name": "C"})
    out = run_all(50, lambda i, c: raw("POST", "/contacts/upsert", body,
                                       conn=c))
    check(all(r.status == 200 for r in out),
          f"every upsert answered 200: {[r.status for r in out]}")
    results = [r.json()["result"] for r in out]
    check_eq(results.count("created"), 1, f"exactly one created: {results}")
    check_eq(len({r.json()["id"] for r in out}), 1, "one id for all")
    check_eq(search_total("email", addr)["total"], 1, "one contact")


def test_50_concurrent_if_match_edits_apply_one():
    cid = create(first_name="E", email=email("conc-edit"))
    out = run_all(50, lambda i, c: raw(
        "PATCH", f"/contacts/{cid}", {"company": f"C{i}"},
        {"if-match": '"1"'}, conn=c))
    statuses = sorted(r.status for r in out)
    check_eq(statuses.count(200), 1, f"exactly one 200: {statuses}")
    check_eq(statuses.count(412), 49, f"the rest 412: {statuses}")
    for r in out:
        if r.status == 412:
            check_eq(r.json()["error"].get("etag"), '"2"', "412's etag")
    check_eq(raw("GET", f"/contacts/{cid}").json()["version"], 2,
             "one edit applied")


def test_50_concurrent_retries_of_one_idempotent_create():
    addr = email("conc-idem")
    body = json.dumps({"first_name": "K", "email": addr})
    key = unique("conc-key")
    out = run_all(50, lambda i, c: raw("POST", "/contacts", body,
                                       {"idempotency-key": key}, conn=c))
    ok = [r for r in out if r.status == 200]
    busy = [r for r in out if r.status == 409]
    check_eq(len(ok) + len(busy), 50, f"200 or 409 only: "
             f"{sorted(r.status for r in out)}")
    for r in busy:
        check_error(r, 409, "idempotency_key_in_use", "in flight")
    check(ok, "at least one was carried out")
    check_eq(len({r.body for r in ok}), 1, "every answer identical")
    check_eq(len([r for r in ok if r.header("idempotent-replayed") is None]),
             1, "exactly one original answer")
    check_eq(search_total("email", addr)["total"], 1, "one contact")


TESTS = [(name, fn) for name, fn in sorted(globals().items())
         if name.startswith("test_") and callable(fn)]

if __name__ == "__main__":
    sys.exit(run_and_stop(TESTS, args, main, work))
