#!/usr/bin/env python3
"""e2e_query.py: POST /contacts/query, fields= and match=suffix through
contactd, end to end.

A query with a filter, a sort, facets and a projection on every cleartext
protocol (HTTP/1.1, h2c with prior knowledge and with Upgrade) and with
nghttp; a cursor walk to the end, its pages alternating between HTTP/1.1
and HTTP/2, that meets every match once and in the order of one big page;
a cursor refused under another query; match=suffix on search; fields= on
search and on get-one; the errors with their JSON paths; read-only keys
querying and another account seeing nothing.

Requests go through curl, nghttp and http.client (raw HTTP/1.1).
"""
import functools
import http.client
import json
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import (Raw, CLEAR_PROTOCOLS, Fail, Remote, Server,  # noqa: E402
                     Workdir, check, check_eq, curl, keytool, load_target,
                     nghttp, parse_args, run_and_stop)

args = parse_args()
work = Workdir(args.keep)
PLUGINS = args.plugins

if not os.path.exists(os.path.join(PLUGINS, "contacts.so")):
    print(f"skipped: no contacts.so in {PLUGINS}")
    sys.exit(0)

# With --target, a running server (or HAProxy in front of shards) and
# keys of fresh accounts made for this run.
TARGET = load_target(args)
if TARGET:
    main = Remote(TARGET["url"])
    KEY, KEY_RO, KEY_B = (TARGET["keys"][k] for k in ("a", "ro", "b"))
else:
    data = work.sub("data-query")
    Server(args.contactd, data, PLUGINS).start().stop()
    with open(os.path.join(data, "default.key")) as f:
        KEY = f.read().strip()
    KEY_RO = keytool(args, data, "add", "default", "ro")
    KEY_B = keytool(args, data, "add", "other", "rw")
    main = Server(args.contactd, data, PLUGINS).start()
HOSTPORT = urllib.parse.urlsplit(main.url).netloc
CURSOR_RE = re.compile(r"[A-Za-z0-9_-]+")


def raw(method, path, body=None, key=KEY):
    c = http.client.HTTPConnection(HOSTPORT, timeout=60)
    h = {} if key is None else {"x-api-key": key}
    data = json.dumps(body) if isinstance(body, (dict, list)) else body
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        return Raw.read(r)
    finally:
        c.close()


def req(proto, method, path, body=None, key=KEY):
    data = json.dumps(body) if isinstance(body, (dict, list)) else body
    return curl(main.url + path, proto, method=method,
                headers=[f"x-api-key: {key}"], data=data, workdir=work.path)


def query(body, proto="h1", key=KEY):
    r = req(proto, "POST", "/contacts/query", body, key=key)
    check_eq(r.status, 200, f"query {body!r} over {proto}: {r.body[:300]!r}")
    check_eq(r.header("content-type"), "application/json", "query type")
    return r.json()


def check_error(r, status, code, where, field=None):
    check_eq(r.status, status, f"{where}: status ({r.body[:300]!r})")
    e = r.json()["error"]
    check_eq(e["code"], code, f"{where}: code")
    check_eq(e.get("field"), field, f"{where}: field")
    return e


# Thirty contacts in one batch: three companies (one spelled two ways),
# some without a company or a job title, phones with one shared ending.
PEOPLE = []
for i in range(30):
    p = {"first_name": f"Person{i:02d}", "last_name": ["Smith", "Jones",
                                                         "Brown"][i % 3],
         "email": f"p{i}@{'example.com' if i % 2 else 'other.org'}"}
    if i % 5:
        p["company"] = ["Acme", "ACME", "Bolt", "Core"][i % 4]
    if i % 3 == 0:
        p["job_title"] = "Engineer"
    if i % 7 == 0:
        p["phone"] = f"+49 30 765{i:02d}4321"
    PEOPLE.append(p)
r = raw("POST", "/contacts/batch", {"contacts": PEOPLE})
check_eq(r.status, 200, f"seed batch {r.body[:200]!r}")
IDS = [x["id"] for x in r.json()["results"]]
check_eq(len(IDS), 30, "seeded")


def fold(s):
    return s.casefold()


def expected(pred):
    return [(IDS[i], p) for i, p in enumerate(PEOPLE) if pred(p)]


# -------------------------------------------------------------- queries

QUERY = {"filter": {"and": [
    {"field": "email", "op": "suffix", "value": "@example.com"},
    {"or": [{"field": "company", "op": "in", "value": ["acme", "Bolt"]},
            {"not": {"field": "company", "op": "exists"}}]}]},
    "sort": [{"field": "company", "order": "desc"},
             {"field": "first_name", "order": "asc"}],
    "fields": ["first_name", "company"],
    "facets": ["company", "job_title"]}


def want_query():
    rows = expected(lambda p: p["email"].endswith("@example.com") and (
        fold(p.get("company", "")) in ("acme", "bolt") or "company" not in p))

    # company desc (absent last in either order), first_name asc, id asc
    def cmp(a, b):
        ca, cb = a[1].get("company"), b[1].get("company")
        if (ca is None) != (cb is None):
            return 1 if ca is None else -1
        if ca is not None and fold(ca) != fold(cb):
            return -1 if fold(ca) > fold(cb) else 1
        ka, kb = (fold(a[1]["first_name"]), a[0]), (fold(b[1]["first_name"]),
                                                    b[0])
        return (ka > kb) - (ka < kb)
    return sorted(rows, key=functools.cmp_to_key(cmp)), rows


def test_filter_sort_facets_fields_on_every_protocol():
    order, rows = want_query()
    for proto in CLEAR_PROTOCOLS:
        a = query(QUERY, proto)
        check_eq(a["total"], len(rows), f"{proto} total")
        check_eq(a["count"], len(rows), f"{proto} count")
        check_eq(a["next_cursor"], None, f"{proto} one page")
        check_eq([c["id"] for c in a["contacts"]], [r[0] for r in order],
                 f"{proto} order")
        for c in a["contacts"]:
            check(set(c) <= {"id", "first_name", "company"},
                  f"{proto} projection: {c}")
        companies = {}
        for _, p in rows:
            if "company" in p:
                companies[fold(p["company"])] = companies.get(
                    fold(p["company"]), 0) + 1
        got = {fold(v["value"]): v["count"] for v in a["facets"]["company"]}
        check_eq(got, companies, f"{proto} company facet")
        counts = [v["count"] for v in a["facets"]["company"]]
        check_eq(counts, sorted(counts, reverse=True), f"{proto} facet order")
        # The lowest id with the folded value shows how it is stored.
        acme = [v for v in a["facets"]["company"] if fold(v["value"]) == "acme"]
        first = next(p["company"] for p in PEOPLE
                     if fold(p.get("company", "")) == "acme")
        check_eq(acme[0]["value"], first, f"{proto} facet value as stored")
        titles = sum(1 for _, p in rows if "job_title" in p)
        check_eq(sum(v["count"] for v in a["facets"]["job_title"]), titles,
                 f"{proto} job_title facet")
        check(re.fullmatch(r"[0-9]+", a["as_of"]), f"{proto} as_of {a!r}")


def test_nghttp_query():
    status, hdrs, text = nghttp(main.url + "/contacts/query",
                                headers=[f"x-api-key: {KEY}"],
                                data=json.dumps(QUERY), workdir=work.path)
    check_eq(status, 200, "nghttp query")
    check_eq(hdrs.get("content-type"), "application/json", "nghttp type")
    check('"next_cursor":null' in text and '"facets"' in text,
          f"nghttp body: {text[-400:]}")
    status, _, text = nghttp(main.url + "/contacts/query",
                             headers=[f"x-api-key: {KEY}"],
                             data='{"filter": {"field": "email"}}',
                             workdir=work.path)
    check_eq(status, 400, "nghttp bad query")
    check('"field":"filter.op"' in text, f"nghttp error: {text[-400:]}")


def test_cursor_walk_to_the_end_over_h1_and_h2():
    body = {"q": "person", "sort": [{"field": "last_name"},
                                    {"field": "created_at",
                                     "order": "desc"}]}
    whole = query(dict(body, limit=1000))
    check_eq(whole["total"], 30, "q person matches all")
    ids = []
    cursor = None
    pages = 0
    while True:
        b = dict(body, limit=7)
        if cursor:
            b["cursor"] = cursor
        a = query(b, "h1" if pages % 2 == 0 else "h2c")
        check_eq(a["total"], 30, "total on every page")
        ids += [c["id"] for c in a["contacts"]]
        pages += 1
        cursor = a["next_cursor"]
        if cursor is None:
            break
        check(CURSOR_RE.fullmatch(cursor), f"URL-safe cursor {cursor!r}")
        check(pages < 10, "the walk ends")
    check_eq(pages, 5, "30 at 7 a page")
    check_eq(ids, [c["id"] for c in whole["contacts"]], "the walk's order")
    check_eq(len(set(ids)), 30, "each once")
    # last_name asc, created_at desc, ties in ascending id (created_at is
    # RFC 3339 UTC with milliseconds: it sorts as text).
    rows = whole["contacts"]
    by_name = sorted(rows, key=lambda c: c["id"])
    by_name = sorted(by_name, key=lambda c: c["created_at"], reverse=True)
    by_name = sorted(by_name, key=lambda c: fold(c["last_name"]))
    check_eq([c["id"] for c in rows], [c["id"] for c in by_name],
             "last_name, then newest first")


def test_cursor_belongs_to_its_query():
    a = query({"sort": [{"field": "first_name"}], "limit": 5})
    cur = a["next_cursor"]
    check(cur, "a cursor")
    b = query({"sort": [{"field": "first_name"}], "limit": 3,
               "fields": ["email"], "facets": ["company"], "cursor": cur})
    check_eq(b["contacts"][0]["id"], IDS[5], "the next page")
    check_eq(set(b["contacts"][0]), {"id", "email"}, "its fields")
    for other in ({"sort": [{"field": "last_name"}]},
                  {"sort": [{"field": "first_name", "order": "desc"}]},
                  {"sort": [{"field": "first_name"}], "q": "person"},
                  {"sort": [{"field": "first_name"}], "fuzzy": "auto",
                   "q": "person"},
                  {"sort": [{"field": "first_name"}],
                   "filter": {"field": "email", "op": "exists"}}):
        r = req("h1", "POST", "/contacts/query", dict(other, cursor=cur))
        check_error(r, 400, "invalid_cursor", f"cursor under {other}",
                    "cursor")
    r = req("h2c", "POST", "/contacts/query",
            {"sort": [{"field": "first_name"}], "cursor": cur[:-2]})
    check_error(r, 400, "invalid_cursor", "a cut cursor", "cursor")
    r = req("h1", "GET", "/contacts?searchby=company&search=acme&cursor=" +
            cur)
    check_error(r, 400, "invalid_cursor", "a query cursor in search",
                "cursor")


# ----------------------------------------------------------- the reads

def test_match_suffix_on_search():
    want = sorted(IDS[i] for i, p in enumerate(PEOPLE) if "phone" in p)
    for proto in CLEAR_PROTOCOLS:
        r = req(proto, "GET",
                "/contacts?searchby=phone&match=suffix&search=4321&limit=1000")
        check_eq(r.status, 200, f"{proto} suffix {r.body[:200]!r}")
        check_eq(sorted(c["id"] for c in r.json()["contacts"]), want,
                 f"{proto} phone suffix")
        r = req(proto, "GET", "/contacts?searchby=email&match=suffix&search="
                "%40EXAMPLE.com&limit=1000")
        check_eq(r.json()["total"], 15, f"{proto} email suffix")
        check_error(req(proto, "GET", "/contacts?searchby=phone&match=suffix"
                        "&search=321"), 400, "invalid_field",
                    f"{proto} short suffix", "phone")
        check_error(req(proto, "GET", "/contacts?searchby=company&match=suffix"
                        "&search=acme"), 400, "invalid_field",
                    f"{proto} suffix on company", "company")


def test_fields_on_get_and_search():
    for proto in CLEAR_PROTOCOLS:
        r = req(proto, "GET", f"/contacts/{IDS[0]}?fields=email,version")
        check_eq(r.status, 200, f"{proto} get fields")
        check_eq(list(r.json()), ["id", "email", "version"],
                 f"{proto} get projection")
        check_eq(r.header("etag"), '"1"', f"{proto} etag kept")
        r = req(proto, "GET", "/contacts?searchby=last_name&search=jones"
                "&fields=first_name&limit=2")
        check_eq([list(c) for c in r.json()["contacts"]],
                 [["id", "first_name"]] * 2, f"{proto} search projection")
        check_error(req(proto, "GET", f"/contacts/{IDS[0]}?fields=mail"), 400,
                    "invalid_field", f"{proto} bad member", "fields")


# -------------------------------------------------------------- errors

def test_errors_name_their_path():
    deep = {"field": "email", "op": "exists"}
    for _ in range(4):
        deep = {"not": deep}
    many = {"and": [{"field": "email", "op": "exists"}] * 33}
    cases = [
        ({"filter": {"and": [{"field": "email", "op": "eq", "value": "a"},
                             {"or": [{"field": "email", "op": "like",
                                      "value": "a"}]}]}},
         "invalid_query", "filter.and[1].or[0].op"),
        ({"filter": {"field": "company", "op": "gt", "value": "a"}},
         "invalid_query", "filter.op"),
        ({"filter": {"field": "created_at", "op": "gt", "value": "today"}},
         "invalid_query", "filter.value"),
        ({"filter": {"field": "phone", "op": "suffix", "value": "321"}},
         "invalid_query", "filter.value"),
        ({"filter": deep}, "query_too_complex", "filter.not.not.not.not"),
        ({"q": " ".join(["a"] * 33)}, "query_too_complex", "q"),
        ({"q": "  "}, "invalid_query", "q"),
        ({"sort": [{"field": "relevance"}]}, "invalid_sort", "sort[0]"),
        ({"sort": [{"field": "id"}] * 4}, "invalid_sort", "sort[3]"),
        ({"fields": ["id", "nope"]}, "invalid_query", "fields[1]"),
        ({"facets": ["email"]}, "invalid_query", "facets[0]"),
        ({"limit": 1001}, "invalid_query", "limit"),
        ({"cursor": "garbage"}, "invalid_cursor", "cursor"),
        ({"filters": {}}, "unknown_field", "filters"),
        ({"filter": {"field": "email", "op": "exists", "x": 1}},
         "unknown_field", "filter.x"),
        ({"sort": [{"field": "id", "direction": "asc"}]}, "unknown_field",
         "sort[0].direction"),
    ]
    for i, (body, code, field) in enumerate(cases):
        proto = CLEAR_PROTOCOLS[i % len(CLEAR_PROTOCOLS)]
        check_error(req(proto, "POST", "/contacts/query", body), 400, code,
                    f"{proto} {body}", field)
    check_error(raw("POST", "/contacts/query", {"filter": many}), 400,
                "query_too_complex", "33 conditions", "filter.and[32]")
    check_error(raw("POST", "/contacts/query", "{\"q\": "), 400,
                "invalid_json", "broken JSON")
    big = json.dumps({"q": "x" * (1024 * 1024)})
    check_eq(raw("POST", "/contacts/query", big).status, 413, "too large")
    check_error(raw("POST", "/contacts/query", {}, key=None), 401,
                "missing_api_key", "no key")
    r = raw("GET", "/contacts/query")
    check(r.status in (404, 405), f"GET /contacts/query: {r.status}")


def test_read_only_keys_query_and_accounts_stay_apart():
    a = query({"limit": 1}, key=KEY_RO)
    check_eq(a["total"], 30, "a read-only key queries")
    b = query({}, "h2c", key=KEY_B)
    check_eq((b["total"], b["contacts"]), (0, []), "another account")
    r = raw("POST", "/contacts/query", {}, key="ck_" + "x" * 40)
    check_error(r, 401, "invalid_api_key", "a bad key")


TESTS = [(name, fn) for name, fn in sorted(globals().items())
         if name.startswith("test_") and callable(fn)]

if __name__ == "__main__":
    sys.exit(run_and_stop(TESTS, args, main, work))
