#!/usr/bin/env python3
"""e2e_admin.py: the admin API of API.md ("Administration over HTTP")
through contactd, end to end, with contactctl backup and restore.

Covered: who reaches /admin (an admin key only: 403 not_admin for others,
401 without a key; an admin key gets 403 on /contacts); keys made,
listed and revoked online and in force at the next request, with bodies
refused; accounts with their counts; stats; a backup taken while 32
writers run, restored by contactctl restore (which verifies) and opened:
it holds every write acknowledged before the backup started; an account
exported (contacts and trash, ids, versions and times) and imported into
another server, identical there, a second import refusing every line;
online compaction while writers run: nothing acknowledged lost, the job
reported to its end; kill -9 during an online compaction, then a
restart: the store verifies and holds every acknowledged write.

Moving an account: the moving mark (503 account_moving with retry-after
on every keyed route the OpenAPI document lists, for that account alone;
admin routes go on; kept across a restart; shown and cleared by
contactctl offline; bad bodies refused), the account's keys exported with
their hashes and imported into a second server (the keys work there, a
repeat is present, a clash gives 409 and adds nothing, bad entries 400),
the digest (the export's SHA-256: equal after export and import, changed
by an edit, equal again after the same edit on both), DELETE of an
account (every contact purged, live and trash, keys refused, 404 after,
other accounts untouched, the number not reused), and a whole move by
hand.
"""
import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import (Raw, Fail, Server, Workdir, check, check_eq,  # noqa: E402
                     parse_args, run_and_stop, sanitizer_lines)

args = parse_args()
work = Workdir(args.keep)
PLUGINS = args.plugins

if not os.path.exists(os.path.join(PLUGINS, "admin.so")) or \
        not args.contactctl:
    print(f"skipped: no admin.so in {PLUGINS} or no contactctl")
    sys.exit(0)


def ctl(data, *rest, env=None, check_rc=True, stdin=None):
    p = subprocess.run([args.contactctl, "--data", data] + list(rest),
                       capture_output=True, timeout=300, input=stdin,
                       env=dict(os.environ, **(env or {})))
    if check_rc and p.returncode != 0:
        raise Fail(f"contactctl {' '.join(rest)} exited {p.returncode}: "
                   f"{p.stderr.decode(errors='replace')}")
    return p


def new_key(data, *rest):
    out = ctl(data, "keys", "add", *rest).stdout.decode()
    for word in out.split():
        if word.startswith("ck_"):
            return word
    raise Fail(f"no key in {out!r}")


data = work.sub("data-admin")
Server(args.contactd, data, PLUGINS).start().stop()
ADMIN = new_key(data, "--account", "ops", "--admin")
main = Server(args.contactd, data, PLUGINS).start()


_SERVER_KEY = object()


def raw(method, path, body=None, key=_SERVER_KEY, srv=None, timeout=120):
    srv = srv or main
    if key is _SERVER_KEY:
        key = srv.key
    hostport = urllib.parse.urlsplit(srv.url).netloc
    c = http.client.HTTPConnection(hostport, timeout=timeout)
    h = {} if key is None else {"x-api-key": key}
    data = json.dumps(body) if isinstance(body, (dict, list)) else body
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        return Raw.read(r)
    finally:
        c.close()


def adm(method, path, body=None, srv=None, key=None):
    return raw(method, path, body, key=key or ADMIN, srv=srv)


def check_error(r, status, code, where):
    check_eq(r.status, status, f"{where}: status ({r.body[:300]!r})")
    check_eq(r.json()["error"]["code"], code, f"{where}: code")


def create(n, srv=None, key=_SERVER_KEY, tag="c"):
    ids = []
    for i in range(n):
        r = raw("POST", "/contacts",
                {"first_name": f"{tag}{i}", "email": f"{tag}{i}@example.com"},
                key=key, srv=srv)
        check_eq(r.status, 200, f"create {r.body!r}")
        ids.append(r.json()["id"])
    return ids


class Writers:
    """n threads creating contacts over kept connections; acked holds
    (id, time answered) of every create answered 200."""

    def __init__(self, n, srv, tag):
        self.srv, self.tag, self.stop_ = srv, tag, threading.Event()
        self.acked, self.errors = [], []
        self.mu = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,),
                                         daemon=True) for i in range(n)]

    def run(self, t):
        hostport = urllib.parse.urlsplit(self.srv.url).netloc
        c = http.client.HTTPConnection(hostport, timeout=60)
        i = 0
        while not self.stop_.is_set():
            body = json.dumps({"first_name": f"w{t}",
                               "email": f"{self.tag}-{t}-{i}@example.com"})
            try:
                c.request("POST", "/contacts", body=body,
                          headers={"x-api-key": self.srv.key})
                r = c.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException) as e:
                with self.mu:
                    self.errors.append(repr(e))
                return
            if r.status == 200:
                with self.mu:
                    self.acked.append((json.loads(data)["id"], time.time()))
            else:
                with self.mu:
                    self.errors.append(f"{r.status} {data[:200]!r}")
            i += 1
        c.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_.set()
        for t in self.threads:
            t.join(60)


def dump_ids(data_dir, account="default"):
    p = ctl(data_dir, "dump", "--account", account)
    return {json.loads(line)["id"] for line in p.stdout.decode().splitlines()
            if line}


# ------------------------------------------------------------------ who


def test_only_admin_keys_reach_admin():
    check_error(raw("GET", "/admin/stats"), 403, "not_admin",
                "a read-write key on /admin")
    check_error(raw("GET", "/admin/stats", key=None), 401, "missing_api_key",
                "no key on /admin")
    check_error(raw("GET", "/admin/stats", key="ck_" + "x" * 40), 401,
                "invalid_api_key", "a bad key on /admin")
    r = adm("GET", "/contacts")
    check_eq(r.status, 403, f"an admin key on /contacts {r.body!r}")
    check_eq(adm("GET", "/admin/stats").status, 200, "admin on /admin/stats")


# ----------------------------------------------------------------- keys


def test_keys_online():
    r = adm("POST", "/admin/keys", {"account": "fresh", "role": "read-write"})
    check_eq(r.status, 201, f"POST /admin/keys {r.body!r}")
    k = r.json()
    check(k["key"].startswith("ck_") and k["key_id"] == k["key"][:11],
          f"key shape {k}")
    check_eq((k["account"], k["role"]), ("fresh", "read-write"), "key fields")
    # In force at once.
    ids = create(2, key=k["key"], tag="fresh")
    listed = adm("GET", "/admin/keys").json()["data"]
    mine = [x for x in listed if x["key_id"] == k["key_id"]]
    check_eq(len(mine), 1, "the new key listed once")
    check("key" not in mine[0], "a list never shows a key")
    check_eq(mine[0]["revoked"], False, "not revoked")
    accounts = {a["name"]: a for a in adm("GET", "/admin/accounts").json()
                ["data"]}
    check_eq(accounts["fresh"]["contacts"], 2, "fresh's count")
    # Revoked at once.
    r = adm("DELETE", f"/admin/keys/{k['key_id']}")
    check_eq(r.status, 200, f"revoke {r.body!r}")
    check_eq(r.json()["revoked"], True, "revoke's answer")
    check_error(raw("GET", f"/contacts/{ids[0]}", key=k["key"]), 401,
                "invalid_api_key", "a revoked key")
    check_error(adm("DELETE", "/admin/keys/ck_nosuchk"), 404,
                "key_not_found", "revoke an unknown key")
    ro = adm("POST", "/admin/keys", {"account": "fresh", "role": "read-only"})
    check_eq(ro.status, 201, "a read-only key")
    check_error(raw("POST", "/contacts", {"first_name": "a",
                                          "email": "a@example.com"},
                    key=ro.json()["key"]), 403, "read_only_key",
                "the read-only key made online")
    admin2 = adm("POST", "/admin/keys", {"account": "ops", "role": "admin"})
    check_eq(admin2.status, 201, "an admin key")
    check_eq(adm("GET", "/admin/stats", key=admin2.json()["key"]).status, 200,
             "the admin key made online")


def test_keys_bad_bodies_change_nothing():
    before = adm("GET", "/admin/keys").json()["data"]
    for body, code in [("not json", "invalid_json"),
                       ("[1]", "invalid_json"),
                       ({"role": "admin"}, "missing_field"),
                       ({"account": "a", "role": "root"}, "invalid_field"),
                       ({"account": "a b"}, "invalid_field"),
                       ({"account": "a" * 65}, "invalid_field"),
                       ({"account": 7}, "invalid_field"),
                       ({"account": "a", "extra": 1}, "unknown_field")]:
        check_error(adm("POST", "/admin/keys", body), 400, code,
                    f"POST /admin/keys {body!r}")
    check_eq(adm("GET", "/admin/keys").json()["data"], before,
             "keys after refused bodies")
    # The longest account name is taken.
    check_eq(adm("POST", "/admin/keys", {"account": "a" * 64}).status, 201,
             "a 64-byte account name")


def test_stats():
    s = adm("GET", "/admin/stats").json()
    for f in ("contacts", "segments", "disk_bytes", "live_bytes",
              "garbage_bytes", "next_id", "writable"):
        check(f in s, f"stats lacks {f}: {s}")
    n = s["contacts"]
    create(3, tag="stats")
    check_eq(adm("GET", "/admin/stats").json()["contacts"], n + 3,
             "stats counts creates")


# --------------------------------------------------------------- backup


def test_backup_under_32_writers_restores_every_acked_write():
    create(50, tag="pre")
    out = os.path.join(work.sub("backups"), "b.tar")
    with Writers(32, main, "bk") as w:
        time.sleep(1.0)
        start = time.time()
        p = ctl(data, "backup", "--from", main.url, "--output", out,
                env={"CONTACTD_ADMIN_KEY": ADMIN})
        time.sleep(0.5)
    check_eq(w.errors, [], "writer errors during the backup")
    before = {i for i, t in w.acked if t < start}
    check(len(before) > 0, "no write was acknowledged before the backup")
    check(len(w.acked) > len(before), "no write went on during the backup")
    check(b"bytes to" in p.stderr, f"backup's report {p.stderr!r}")
    dest = os.path.join(work.sub("restored"), "d")
    r = ctl(dest, "restore", out)
    check(b"0 problems" in r.stdout, f"restore's verify: {r.stdout!r}")
    got = dump_ids(dest)
    missing = before - got
    check_eq(len(missing), 0, "acknowledged writes missing from the backup")
    srv = Server(args.contactd, dest, PLUGINS).start()
    try:
        some = sorted(before)[-1]
        check_eq(raw("GET", f"/contacts/{some}", key=main.key, srv=srv).status,
                 200, "a restored contact over HTTP")
    finally:
        check_eq(srv.stop(), 0, "restored server's exit")
    # A restore never writes into a directory that holds something.
    check_eq(ctl(dest, "restore", out, check_rc=False).returncode, 2,
             "restore into a non-empty directory")
    # A broken tar is refused.
    bad = out + ".cut"
    with open(out, "rb") as f, open(bad, "wb") as g:
        g.write(f.read()[:20000])
    dest2 = os.path.join(work.sub("restored2"), "d")
    check_eq(ctl(dest2, "restore", bad, check_rc=False).returncode, 1,
             "restore of a cut tar")


def test_backup_refused_without_admin_key():
    out = os.path.join(work.sub("backups2"), "b.tar")
    p = ctl(data, "backup", "--from", main.url, "--output", out,
            env={"CONTACTD_ADMIN_KEY": main.key}, check_rc=False)
    check_eq(p.returncode, 1, "backup with a non-admin key")
    check(b"403" in p.stderr and not os.path.exists(out),
          f"{p.stderr!r}, file left: {os.path.exists(out)}")


# -------------------------------------------------------- export/import


def export_lines(name, srv=None, key=None):
    r = adm("GET", f"/admin/accounts/{name}/export", srv=srv, key=key)
    check_eq(r.status, 200, f"export {r.body[:200]!r}")
    return [json.loads(x) for x in r.body.decode().splitlines() if x]


def test_export_import_keeps_identity():
    k = adm("POST", "/admin/keys", {"account": "mover"}).json()["key"]
    ids = create(20, key=k, tag="mv")
    r = raw("PATCH", f"/contacts/{ids[3]}", {"company": "Acme"}, key=k)
    check_eq(r.status, 200, "edit")
    check_eq(raw("DELETE", f"/contacts/{ids[5]}", key=k).status, 200,
             "delete into the trash")
    lines = export_lines("mover")
    check_eq(len(lines), 20, "19 live and 1 in the trash")
    by = {x["id"]: x for x in lines}
    check_eq(by[ids[3]]["version"], 2, "the edited contact's version")
    check(by[ids[5]].get("deleted_at"), "the trashed contact's deleted_at")
    check_error(adm("GET", "/admin/accounts/nobody/export"), 404,
                "account_not_found", "export of an unknown account")
    body = "".join(json.dumps(x) + "\n" for x in lines)
    data2 = work.sub("data-target")
    Server(args.contactd, data2, PLUGINS).start().stop()
    admin_b = new_key(data2, "--account", "ops", "--admin")
    target = Server(args.contactd, data2, PLUGINS).start()
    try:
        r = raw("POST", "/admin/accounts/mover/import", body, key=admin_b,
                srv=target)
        check_eq(r.status, 200, f"import {r.body[:300]!r}")
        check_eq((r.json()["imported"], r.json()["refused"]), (20, 0),
                 "import counts")
        again = export_lines("mover", srv=target, key=admin_b)
        check_eq(sorted(again, key=lambda x: x["id"]),
                 sorted(lines, key=lambda x: x["id"]),
                 "the account on the target")
        r = raw("POST", "/admin/accounts/mover/import", body, key=admin_b,
                srv=target)
        check_eq(r.status, 200, "second import")
        check_eq((r.json()["imported"], r.json()["refused"]), (0, 20),
                 "a second import refuses every existing id")
        check(len(r.json()["errors"]) == 20 and
              r.json()["errors"][0]["line"] == 1, f"{r.json()['errors'][:2]}")
        # New contacts on the target get ids above the imported ones.
        kb = raw("POST", "/admin/keys", {"account": "mover"}, key=admin_b,
                 srv=target).json()["key"]
        new = create(1, key=kb, srv=target, tag="after")[0]
        check(int(new) > max(int(i) for i in ids), "the id floor moved")
        bad = raw("POST", "/admin/accounts/mover/import", "{not json}\n",
                  key=admin_b, srv=target)
        check_eq((bad.status, bad.json()["imported"], bad.json()["refused"]),
                 (200, 0, 1), "a bad line")
    finally:
        check_eq(target.stop(), 0, "target's exit:\n" + target.stderr()[-3000:])
        check_eq(sanitizer_lines(target), [], "target's sanitizer report")


def test_import_larger_than_a_batch_with_trash_first_deleted():
    """More lines than one cs_import call takes (ADM_IMPORT_BATCH, 4096),
    with the account's oldest contacts in the trash: an export lists them
    last, and the import still places every one."""
    k = adm("POST", "/admin/keys", {"account": "big"}).json()["key"]
    ids = []
    for b in range(5):
        r = raw("POST", "/contacts/batch",
                {"contacts": [{"first_name": f"b{b}-{i}",
                               "email": f"big{b}-{i}@example.com"}
                              for i in range(1000)]}, key=k)
        check_eq(r.status, 200, f"batch {r.body[:200]!r}")
        ids += [x["id"] for x in r.json()["results"]]
    for i in ids[:10]:
        check_eq(raw("DELETE", f"/contacts/{i}", key=k).status, 200, "trash")
    lines = export_lines("big")
    check_eq(len(lines), 5000, "exported lines")
    check(all(x.get("deleted_at") for x in lines[-10:]), "the trash last")
    data3 = work.sub("data-big")
    Server(args.contactd, data3, PLUGINS).start().stop()
    admin_c = new_key(data3, "--account", "ops", "--admin")
    target = Server(args.contactd, data3, PLUGINS).start()
    try:
        body = "".join(json.dumps(x) + "\n" for x in lines)
        r = raw("POST", "/admin/accounts/big/import", body, key=admin_c,
                srv=target)
        check_eq(r.status, 200, f"import {r.body[:300]!r}")
        check_eq((r.json()["imported"], r.json()["refused"]), (5000, 0),
                 f"import counts {r.json()['errors'][:3]}")
        again = export_lines("big", srv=target, key=admin_c)
        check_eq(sorted(again, key=lambda x: x["id"]),
                 sorted(lines, key=lambda x: x["id"]), "the account moved")
    finally:
        check_eq(target.stop(), 0, "target's exit:\n" + target.stderr()[-3000:])


# ----------------------------------------------------------- compaction


def wait_job(job_id, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        j = adm("GET", f"/admin/jobs/{job_id}").json()
        if j["state"] != "running":
            return j
        time.sleep(0.1)
    raise Fail(f"job {job_id} still running after {timeout}s")


def test_online_compaction_under_writers():
    ids = create(200, tag="cmp")
    for i in ids[:100]:
        check_eq(raw("PATCH", f"/contacts/{i}", {"company": "x"}).status, 200,
                 "edit")
    for i in ids[100:150]:
        check_eq(raw("DELETE", f"/contacts/{i}?purge=true").status, 200,
                 "purge")
    with Writers(8, main, "oc") as w:
        time.sleep(0.5)
        r = adm("POST", "/admin/compact")
        check_eq(r.status, 202, f"POST /admin/compact {r.body!r}")
        job = r.json()
        check_eq(r.header("location"), f"/admin/jobs/{job['id']}", "location")
        check_error(adm("GET", "/admin/jobs/job_0000000000000000"), 404,
                    "job_not_found", "an unknown job")
        done = wait_job(job["id"])
        time.sleep(0.5)
    check_eq(done["state"], "succeeded", f"the job: {done}")
    check_eq(w.errors, [], "writer errors during compaction")
    check(len(w.acked) > 0, "no write during compaction")
    got = dump_ids_live()
    for i, _ in w.acked:
        check(i in got, f"acknowledged {i} lost by compaction")
    for i in ids[:100] + ids[150:]:
        check(i in got, f"{i} lost")
    for i in ids[100:150]:
        check_eq(raw("GET", f"/contacts/{i}").status, 404, "purged stays")
    check_eq(raw("GET", f"/contacts/{ids[0]}").json()["version"], 2,
             "version kept")


def dump_ids_live():
    """Ids of the default account, read over HTTP from the export."""
    return {x["id"] for x in export_lines("default") if not x.get("deleted_at")}


def test_kill9_during_online_compaction():
    d = work.sub("data-kill")
    Server(args.contactd, d, PLUGINS).start().stop()
    adm_key = new_key(d, "--account", "ops", "--admin")
    srv = Server(args.contactd, d, PLUGINS).start()
    create(3000, srv=srv, tag="k9")
    with Writers(8, srv, "k9w") as w:
        time.sleep(0.3)
        r = raw("POST", "/admin/compact", key=adm_key, srv=srv)
        check_eq(r.status, 202, "compact")
        time.sleep(0.05)
        srv.kill()
    acked = {i for i, _ in w.acked}
    p = ctl(d, "verify", check_rc=False)
    check_eq(p.returncode, 0, f"verify after kill -9: {p.stderr!r}")
    got = dump_ids(d)
    check_eq(len(acked - got), 0, "acknowledged writes lost")
    srv = Server(args.contactd, d, PLUGINS).start()
    check_eq(srv.stop(), 0, "restart after kill -9")



# ------------------------------------------------------ moving an account


def fresh_server(name):
    """A server on a new data directory with an admin key of account ops:
    (server, admin key). The caller stops it."""
    d = work.sub(name)
    Server(args.contactd, d, PLUGINS).start().stop()
    key = new_key(d, "--account", "ops", "--admin")
    return Server(args.contactd, d, PLUGINS).start(), key


def stop_clean(srv):
    check_eq(srv.stop(), 0, "exit:\n" + srv.stderr()[-3000:])
    check_eq(sanitizer_lines(srv), [], "sanitizer report")


def keyed_operations(srv):
    """(method, path) of every operation the served OpenAPI document lists
    under the account key (apiKey): every route outside /admin that takes
    a key."""
    doc = raw("GET", "/openapi.json", key=None, srv=srv).json()
    ops = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            sec = op.get("security", doc.get("security"))
            if sec and any("apiKey" in x for x in sec):
                ops.append((method.upper(), path))
    return ops


def set_moving(name, on, srv, key):
    r = raw("PUT", f"/admin/accounts/{name}/moving", {"moving": on}, key=key,
            srv=srv)
    check_eq(r.status, 200, f"PUT moving {on} {r.body!r}")
    check_eq(r.json(), {"name": name, "moving": on}, "the mark's answer")


def accounts_of(srv, key):
    return {a["name"]: a for a in raw("GET", "/admin/accounts", key=key,
                                      srv=srv).json()["data"]}


def test_moving_mark_answers_503_for_that_account_alone():
    srv, admin = fresh_server("data-moving")
    try:
        k = raw("POST", "/admin/keys", {"account": "mv"}, key=admin,
                srv=srv).json()["key"]
        other = raw("POST", "/admin/keys", {"account": "stay"}, key=admin,
                    srv=srv).json()["key"]
        mine = create(3, key=k, srv=srv, tag="mv")
        theirs = create(1, key=other, srv=srv, tag="st")[0]
        check_eq(accounts_of(srv, admin)["mv"]["moving"], False, "unmarked")
        set_moving("mv", True, srv, admin)
        ops = keyed_operations(srv)
        check(len(ops) >= 15, f"the document lists {len(ops)} operations")
        for method, path in ops:
            p = path.replace("{id}", mine[0])
            r = raw(method, p, "{}" if method in ("POST", "PATCH") else None,
                    key=k, srv=srv)
            check_error(r, 503, "account_moving", f"{method} {p}")
            check_eq(r.header("retry-after"), "1", f"{method} {p} retry-after")
        check_eq(raw("GET", f"/contacts/{theirs}", key=other, srv=srv).status,
                 200, "another account is untouched")
        check_eq(raw("GET", "/healthz", key=None, srv=srv).status, 200,
                 "a route without a key")
        # Admin routes go on, for the account too.
        check_eq(accounts_of(srv, admin)["mv"]["moving"], True, "listed")
        check_eq(accounts_of(srv, admin)["stay"]["moving"], False, "stay")
        check_eq(len(export_lines("mv", srv=srv, key=admin)), 3, "export")
        # An admin key of a moving account still administers.
        set_moving("ops", True, srv, admin)
        check_eq(raw("GET", "/admin/stats", key=admin, srv=srv).status, 200,
                 "an admin key of a moving account")
        set_moving("ops", False, srv, admin)
        # Bad bodies and unknown accounts change nothing.
        for body, code in [("not json", "invalid_json"),
                           ("[1]", "invalid_json"), ("", "invalid_json"),
                           ({}, "missing_field"),
                           ({"moving": 1}, "invalid_field"),
                           ({"moving": "false"}, "invalid_field"),
                           ({"moving": None}, "invalid_field"),
                           ({"moving": False, "x": 1}, "unknown_field")]:
            check_error(raw("PUT", "/admin/accounts/mv/moving", body,
                            key=admin, srv=srv), 400, code, f"PUT {body!r}")
        check_error(raw("PUT", "/admin/accounts/mv/moving",
                        '{"moving": false, "moving": false}', key=admin,
                        srv=srv), 400, "duplicate_field", "moving twice")
        check_eq(accounts_of(srv, admin)["mv"]["moving"], True, "still marked")
        check_error(raw("PUT", "/admin/accounts/nobody/moving",
                        {"moving": True}, key=admin, srv=srv), 404,
                    "account_not_found", "an unknown account")
        check_error(raw("PUT", "/admin/accounts/mv/moving", {"moving": True},
                        key=k, srv=srv), 403, "not_admin", "an account key")
        # Kept across a restart; contactctl shows it offline and clears it.
        stop_clean(srv)
        srv = Server(args.contactd, srv.data_dir, PLUGINS).start()
        check_error(raw("GET", f"/contacts/{mine[0]}", key=k, srv=srv), 503,
                    "account_moving", "after a restart")
        stop_clean(srv)
        out = ctl(srv.data_dir, "keys", "list").stdout.decode().splitlines()
        check(out[0].split()[-1] == "moving", f"keys list's header {out[0]!r}")
        flags = {x.split()[1]: x.split()[-1] for x in out[1:]}
        check_eq((flags["mv"], flags["stay"]), ("yes", "no"), "keys list")
        check_eq(ctl(srv.data_dir, "keys", "moving", "--account", "nobody",
                     "off", check_rc=False).returncode, 2, "unknown account")
        ctl(srv.data_dir, "keys", "moving", "--account", "mv", "off")
        srv = Server(args.contactd, srv.data_dir, PLUGINS).start()
        check_eq(raw("GET", f"/contacts/{mine[0]}", key=k, srv=srv).status,
                 200, "cleared offline")
        set_moving("mv", True, srv, admin)
        set_moving("mv", False, srv, admin)
        check_eq(raw("GET", f"/contacts/{mine[0]}", key=k, srv=srv).status,
                 200, "cleared online")
    finally:
        stop_clean(srv)


def test_moving_mark_under_writers_lets_no_acked_write_past_it():
    """16 writers create contacts while the account is marked: every create
    answered 200 is in an export taken once the mark is answered (the mark
    waits for the requests past their key check, then for the commit), and
    after it the writers get 503 account_moving only."""
    srv, admin = fresh_server("data-moving-writers")
    try:
        with Writers(16, srv, "mw") as w:
            time.sleep(0.5)
            set_moving("default", True, srv, admin)
            exported = {x["id"] for x in export_lines("default", srv=srv,
                                                      key=admin)}
            time.sleep(0.3)
        acked = {i for i, _ in w.acked}
        check(len(acked) > 0, "no create was answered before the mark")
        check_eq(sorted(acked - exported), [],
                 "answered creates missing from the export after the mark")
        check(len(w.errors) > 0, "no writer met the mark")
        check_eq([e for e in w.errors if not e.startswith("503") or
                  "account_moving" not in e], [], "other errors")
    finally:
        stop_clean(srv)


def keys_of(name, srv, key):
    r = raw("GET", f"/admin/accounts/{name}/keys", key=key, srv=srv)
    check_eq(r.status, 200, f"GET keys {r.body!r}")
    return r.json()["data"]


def test_keys_export_and_import_between_servers():
    a, admin_a = fresh_server("data-keys-a")
    b, admin_b = fresh_server("data-keys-b")
    try:
        made = [raw("POST", "/admin/keys", {"account": "kx", "role": role},
                    key=admin_a, srv=a).json()
                for role in ("read-write", "read-only", "read-write")]
        raw("DELETE", f"/admin/keys/{made[2]['key_id']}", key=admin_a, srv=a)
        create(2, key=made[0]["key"], srv=a, tag="kx")
        out = keys_of("kx", a, admin_a)
        check_eq([x["key_id"] for x in out], [m["key_id"] for m in made],
                 "the account's keys, in order")
        for x, m in zip(out, made):
            check_eq(x["hash"], hashlib.sha256(m["key"].encode()).hexdigest(),
                     "hash is the key's SHA-256")
            check("key" not in x, "never a key")
            check_eq((x["account"], x["role"]), ("kx", m["role"]), "fields")
        check_eq([x["revoked"] for x in out], [False, False, True], "revoked")
        check_error(raw("GET", "/admin/accounts/nobody/keys", key=admin_a,
                        srv=a), 404, "account_not_found", "unknown account")
        r = raw("POST", "/admin/accounts/kx/keys", {"data": out}, key=admin_b,
                srv=b)
        check_eq(r.status, 200, f"import {r.body!r}")
        check_eq(r.json(), {"name": "kx", "added": 3, "present": 0}, "added")
        check_eq(keys_of("kx", b, admin_b), out, "the same entries there")
        check_eq(raw("GET", "/contacts/trash", key=made[0]["key"],
                     srv=b).status, 200, "the key works on the second server")
        check_error(raw("POST", "/contacts", {"first_name": "x"},
                        key=made[1]["key"], srv=b), 403, "read_only_key",
                    "the read-only key stays read-only")
        check_error(raw("GET", "/contacts", key=made[2]["key"], srv=b), 401,
                    "invalid_api_key", "the revoked key stays revoked")
        r = raw("POST", "/admin/accounts/kx/keys", {"data": out}, key=admin_b,
                srv=b)
        check_eq(r.json(), {"name": "kx", "added": 0, "present": 3}, "repeat")
        # A clash adds nothing, not even the good entry beside it.
        new = raw("POST", "/admin/keys", {"account": "kx"}, key=admin_a,
                  srv=a).json()
        fresh = [x for x in keys_of("kx", a, admin_a)
                 if x["key_id"] == new["key_id"]][0]
        clash = dict(out[0], hash="0" * 64)
        r = raw("POST", "/admin/accounts/kx/keys", {"data": [fresh, clash]},
                key=admin_b, srv=b)
        check_error(r, 409, "key_id_taken", "a key id with another hash")
        check_eq(keys_of("kx", b, admin_b), out, "nothing added by a clash")
        theirs = raw("POST", "/admin/keys", {"account": "other"}, key=admin_b,
                     srv=b).json()
        taken = dict(fresh, key_id=theirs["key_id"])
        check_error(raw("POST", "/admin/accounts/kx/keys", {"data": [taken]},
                        key=admin_b, srv=b), 409, "key_id_taken",
                    "a key id another account holds")
        before = raw("GET", "/admin/keys", key=admin_b, srv=b).json()
        bad_entries = [
            ("not json", "invalid_json"), ([], "invalid_json"),
            ({}, "missing_field"), ({"data": {}}, "invalid_field"),
            ({"data": [], "x": 1}, "unknown_field"),
            ({"data": [1]}, "invalid_field"),
            ({"data": [dict(fresh, extra=1)]}, "unknown_field"),
            ({"data": [{k: v for k, v in fresh.items() if k != "hash"}]},
             "missing_field"),
            ({"data": [dict(fresh, role="root")]}, "invalid_field"),
            ({"data": [dict(fresh, created_at="yesterday")]}, "invalid_field"),
            ({"data": [dict(fresh, revoked="no")]}, "invalid_field"),
            ({"data": [dict(fresh, account="other")]}, "invalid_field"),
            ({"data": [dict(fresh, hash="xyz")]}, "invalid_field"),
            ({"data": [dict(fresh, hash="g" * 64)]}, "invalid_field"),
            ({"data": [dict(fresh, key_id="ck_short")]}, "invalid_field"),
            ({"data": [dict(fresh, key_id=7)]}, "invalid_field"),
            ({"data": [fresh, fresh]}, "invalid_field"),
        ]
        for body, code in bad_entries:
            check_error(raw("POST", "/admin/accounts/kx/keys", body,
                            key=admin_b, srv=b), 400, code, f"body {body!r}")
        check_error(raw("POST", "/admin/accounts/a%20b/keys", {"data": []},
                        key=admin_b, srv=b), 400, "invalid_account",
                    "a bad account name")
        check_eq(raw("GET", "/admin/keys", key=admin_b, srv=b).json(), before,
                 "bad bodies change nothing")
        # An empty list makes the account, with no key.
        r = raw("POST", "/admin/accounts/blank/keys", {"data": []},
                key=admin_b, srv=b)
        check_eq(r.json(), {"name": "blank", "added": 0, "present": 0},
                 "empty")
        check_eq(accounts_of(b, admin_b)["blank"]["keys"], 0, "made")
    finally:
        stop_clean(a)
        stop_clean(b)


def digest(name, srv, key):
    r = raw("GET", f"/admin/accounts/{name}/digest", key=key, srv=srv)
    check_eq(r.status, 200, f"digest {r.body!r}")
    return r.json()


def test_digest_tells_equal_accounts_from_different_ones():
    a, admin_a = fresh_server("data-digest-a")
    b, admin_b = fresh_server("data-digest-b")
    try:
        k = raw("POST", "/admin/keys", {"account": "dg"}, key=admin_a,
                srv=a).json()["key"]
        ids = create(12, key=k, srv=a, tag="dg")
        raw("PATCH", f"/contacts/{ids[1]}", {"company": "Acme"}, key=k, srv=a)
        raw("DELETE", f"/contacts/{ids[2]}", key=k, srv=a)
        d = digest("dg", a, admin_a)
        exp = raw("GET", "/admin/accounts/dg/export", key=admin_a, srv=a).body
        check_eq(d, {"name": "dg", "contacts": 11, "trash": 1,
                     "hash": hashlib.sha256(exp).hexdigest()},
                 "the digest is the export's SHA-256")
        r = raw("POST", "/admin/accounts/dg/import", exp, key=admin_b, srv=b)
        check_eq(r.json()["imported"], 12, "import")
        check_eq(digest("dg", b, admin_b), d, "equal after export and import")
        raw("PATCH", f"/contacts/{ids[3]}", {"company": "Other"}, key=k, srv=a)
        changed = digest("dg", a, admin_a)
        check(changed["hash"] != d["hash"], "an edit changes the digest")
        check_eq(changed["contacts"], 11, "counts stay")
        # The same edit on both sides: a purge (no time is kept of it).
        kb = raw("POST", "/admin/accounts/dg/keys",
                 {"data": keys_of("dg", a, admin_a)}, key=admin_b, srv=b)
        check_eq(kb.status, 200, "keys to b")
        for srv in (a, b):
            check_eq(raw("DELETE", f"/contacts/{ids[3]}?purge=true", key=k,
                         srv=srv).status, 200, "purge")
        da, db = digest("dg", a, admin_a), digest("dg", b, admin_b)
        check_eq(da, db, "equal again after the same edit on both")
        check_eq(da["contacts"], 10, "one purged")
        raw("DELETE", f"/contacts/{ids[4]}", key=k, srv=a)
        check(digest("dg", a, admin_a)["hash"] != db["hash"],
              "a move to the trash changes the digest")
        check_error(raw("GET", "/admin/accounts/nobody/digest", key=admin_a,
                        srv=a), 404, "account_not_found", "unknown account")
        raw("POST", "/admin/accounts/none/keys", {"data": []}, key=admin_a,
            srv=a)
        check_eq(digest("none", a, admin_a),
                 {"name": "none", "contacts": 0, "trash": 0,
                  "hash": hashlib.sha256(b"").hexdigest()}, "an empty account")
    finally:
        stop_clean(a)
        stop_clean(b)


def test_delete_account_purges_everything_and_only_it():
    srv, admin = fresh_server("data-delete")
    try:
        made = [raw("POST", "/admin/keys", {"account": "dl", "role": r},
                    key=admin, srv=srv).json()
                for r in ("read-write", "read-only")]
        k = made[0]["key"]
        keep = raw("POST", "/admin/keys", {"account": "keep"}, key=admin,
                   srv=srv).json()["key"]
        ids = create(30, key=k, srv=srv, tag="dl")
        for i in ids[:5]:
            raw("DELETE", f"/contacts/{i}", key=k, srv=srv)
        kept = create(7, key=keep, srv=srv, tag="dl")  # the same emails
        keep_digest = digest("keep", srv, admin)
        st = raw("GET", "/admin/stats", key=admin, srv=srv).json()
        r = raw("DELETE", "/admin/accounts/dl", key=admin, srv=srv)
        check_eq(r.status, 200, f"delete {r.body!r}")
        check_eq(r.json(), {"name": "dl", "purged": 30, "keys_removed": 2},
                 "the answer")
        for m in made:
            check_error(raw("GET", "/contacts", key=m["key"], srv=srv), 401,
                        "invalid_api_key", "the account's keys are refused")
        check_error(raw("DELETE", "/admin/accounts/dl", key=admin, srv=srv),
                    404, "account_not_found", "a repeat")
        check_error(raw("GET", "/admin/accounts/dl/export", key=admin,
                        srv=srv), 404, "account_not_found", "export after")
        check("dl" not in accounts_of(srv, admin), "no longer listed")
        st2 = raw("GET", "/admin/stats", key=admin, srv=srv).json()
        check_eq(st["contacts"] - st2["contacts"], 25, "live contacts gone")
        check_eq(st["trash_contacts"] - st2["trash_contacts"], 5, "trash gone")
        check_eq(digest("keep", srv, admin), keep_digest, "keep untouched")
        for i in kept:
            check_eq(raw("GET", f"/contacts/{i}", key=keep, srv=srv).status,
                     200, "keep's contacts")
        # A new account of the same name is new: it sees nothing of the old
        # one's contacts in any read, and gets a number of its own.
        again = raw("POST", "/admin/keys", {"account": "dl"}, key=admin,
                    srv=srv).json()["key"]
        check_eq(raw("GET", f"/contacts/{ids[10]}", key=again,
                     srv=srv).status, 404, "get")
        r = raw("GET", "/contacts?searchby=email&search=dl10@example.com",
                key=again, srv=srv)
        check_eq((r.status, r.json()["total"]), (200, 0), f"search {r.body!r}")
        for body in ({}, {"filter": {"field": "email", "op": "prefix",
                                     "value": "dl"}}):
            q = raw("POST", "/contacts/query", body, key=again, srv=srv)
            check_eq((q.status, q.json()["total"]), (200, 0),
                     f"query {q.body!r}")
        r = raw("GET", "/contacts/trash", key=again, srv=srv)
        check_eq((r.status, r.json()["total"]), (200, 0), "trash")
        r = raw("GET", "/contacts/changes", key=again, srv=srv)
        check_eq((r.status, r.json()["changes"]), (200, []),
                 "the feed of the new account")
        check_eq(export_lines("dl", srv=srv, key=admin), [], "export")
        # An account without contacts or keys, and a marked one.
        raw("POST", "/admin/accounts/bare/keys", {"data": []}, key=admin,
            srv=srv)
        set_moving("bare", True, srv, admin)
        r = raw("DELETE", "/admin/accounts/bare", key=admin, srv=srv)
        check_eq(r.json(), {"name": "bare", "purged": 0, "keys_removed": 0},
                 "an empty account")
        check_error(raw("DELETE", "/admin/accounts/nobody", key=admin,
                        srv=srv), 404, "account_not_found", "unknown")
        check_error(raw("DELETE", "/admin/accounts/keep", key=keep, srv=srv),
                    403, "not_admin", "an account key")
        stop_clean(srv)
        srv = Server(args.contactd, srv.data_dir, PLUGINS).start()
        check("bare" not in accounts_of(srv, admin), "gone after a restart")
        check_eq(digest("keep", srv, admin), keep_digest, "keep after restart")
        stop_clean(srv)
        p = ctl(srv.data_dir, "verify", check_rc=False)
        check_eq(p.returncode, 0, f"verify after the delete {p.stdout!r}")
    finally:
        stop_clean(srv)


def test_delete_more_contacts_than_a_purge_batch():
    """ADM_PURGE_BATCH (4096) purges are in flight at once: an account of
    4096 + 904 contacts, some in the trash, goes whole."""
    srv, admin = fresh_server("data-delete-big")
    try:
        k = raw("POST", "/admin/keys", {"account": "big"}, key=admin,
                srv=srv).json()["key"]
        ids = []
        for b in range(5):
            r = raw("POST", "/contacts/batch",
                    {"contacts": [{"first_name": f"b{b}-{i}",
                                   "email": f"big{b}-{i}@example.com"}
                                  for i in range(1000)]}, key=k, srv=srv)
            check_eq(r.status, 200, f"batch {r.body[:200]!r}")
            ids += [x["id"] for x in r.json()["results"]]
        for i in ids[:3]:
            raw("DELETE", f"/contacts/{i}", key=k, srv=srv)
        check_eq(digest("big", srv, admin)["contacts"], 4997, "before")
        r = raw("DELETE", "/admin/accounts/big", key=admin, srv=srv)
        check_eq(r.json(), {"name": "big", "purged": 5000, "keys_removed": 1},
                 f"delete {r.body!r}")
        st = raw("GET", "/admin/stats", key=admin, srv=srv).json()
        check_eq((st["contacts"], st["trash_contacts"]), (0, 0), "all gone")
    finally:
        stop_clean(srv)


def test_move_an_account_by_hand():
    """The steps a move makes, through the routes alone: mark, export keys
    and contacts, import both, compare digests, delete on the source."""
    a, admin_a = fresh_server("data-move-a")
    b, admin_b = fresh_server("data-move-b")
    try:
        k = raw("POST", "/admin/keys", {"account": "acme"}, key=admin_a,
                srv=a).json()["key"]
        ids = create(40, key=k, srv=a, tag="acme")
        raw("DELETE", f"/contacts/{ids[0]}", key=k, srv=a)
        set_moving("acme", True, a, admin_a)
        check_error(raw("GET", f"/contacts/{ids[1]}", key=k, srv=a), 503,
                    "account_moving", "during the move")
        keys = keys_of("acme", a, admin_a)
        r = raw("POST", "/admin/accounts/acme/keys", {"data": keys},
                key=admin_b, srv=b)
        check_eq(r.json()["added"], 1, "keys")
        body = raw("GET", "/admin/accounts/acme/export", key=admin_a,
                   srv=a).body
        r = raw("POST", "/admin/accounts/acme/import", body, key=admin_b,
                srv=b)
        check_eq((r.json()["imported"], r.json()["refused"]), (40, 0), "import")
        check_eq(digest("acme", b, admin_b), digest("acme", a, admin_a),
                 "the digests agree")
        r = raw("DELETE", "/admin/accounts/acme", key=admin_a, srv=a)
        check_eq(r.json()["purged"], 40, "deleted on the source")
        got = raw("GET", f"/contacts/{ids[1]}", key=k, srv=b)
        check_eq((got.status, got.json()["id"]), (200, ids[1]), "on b, same id")
        check_error(raw("GET", f"/contacts/{ids[1]}", key=k, srv=a), 401,
                    "invalid_api_key", "gone from a")
    finally:
        stop_clean(a)
        stop_clean(b)


TESTS = [(name, fn) for name, fn in globals().items()
         if name.startswith("test_") and callable(fn)]

if __name__ == "__main__":
    sys.exit(run_and_stop(TESTS, args, main, work))
