#!/usr/bin/env python3
"""e2e_shard.py: a store's shard, end to end (contactd --shard,
contactctl init --shard, stats, and the ids imports take).

Covered: contactctl init makes an empty data directory of shard K, refuses
a directory that holds anything and a shard past the last; contactd on it
gives ids from 10^19 + K * 2^56 + 1 and shows the shard in GET
/admin/stats and contactctl stats; contactd --shard J on a store of shard
K refuses to start, naming both, and changes nothing; contactd --shard on
a new directory makes it for that shard; bad --shard values are refused;
two shards never give the same id; an account exported from one shard is
taken by a shard numbered higher with its ids (listed in id order, new ids
above them) and refused line by line by a lower one, naming both shards.
"""
import http.client
import json
import os
import subprocess
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import (Fail, Raw, Server, Workdir, check, check_eq,  # noqa: E402
                     parse_args, run_contactd, run_tests)

args = parse_args()
work = Workdir(args.keep)
PLUGINS = args.plugins
if not os.path.exists(os.path.join(PLUGINS, "admin.so")) or \
        not args.contactctl:
    print(f"skipped: no admin.so in {PLUGINS} or no contactctl")
    sys.exit(0)

ID_MIN = 10**19
SPAN = 2**56
SHARD_MAX = 116


def first_id(shard):
    return f"{ID_MIN + shard * SPAN + 1:020d}"


def ctl(data, *rest):
    p = subprocess.run([args.contactctl, "--data", data] + list(rest),
                       capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def admin_key(data):
    """An admin key, after a first start has made the default account's."""
    Server(args.contactd, data, PLUGINS).start().stop()
    rc, out, err = ctl(data, "keys", "add", "--account", "ops", "--admin")
    check_eq(rc, 0, f"keys add: {err}")
    return next(w for w in out.split() if w.startswith("ck_"))


def call(srv, method, path, key, body=None):
    c = http.client.HTTPConnection(urllib.parse.urlsplit(srv.url).netloc,
                                   timeout=60)
    try:
        c.request(method, path, body=body, headers={"x-api-key": key})
        return Raw.read(c.getresponse())
    finally:
        c.close()


def create(srv, email):
    r = call(srv, "POST", "/contacts", srv.key,
             json.dumps({"first_name": "Ann", "email": email}))
    check_eq(r.status, 200, f"create: {r.body!r}")
    return r.json()["id"]


def start(data, *extra):
    return Server(args.contactd, data, PLUGINS, args=extra).start()


def test_init_makes_a_store_of_the_shard():
    data = work.sub("init")
    rc, out, err = ctl(data, "init", "--shard", "4")
    check_eq(rc, 0, f"init: {err}")
    check(first_id(4) in out, f"init does not name the first id: {out!r}")
    rc, _, err = ctl(data, "init", "--shard", "4")
    check_eq(rc, 2, "init on a store")
    check("holds a store" in err and "nothing changed" in err, err)
    key = admin_key(data)
    srv = start(data)
    try:
        check_eq(create(srv, "a@example.com"), first_id(4), "first id")
        st = call(srv, "GET", "/admin/stats", key).json()
        check_eq(st["shard"], 4, "stats shard")
    finally:
        check_eq(srv.stop(), 0, "exit status")
    rc, out, err = ctl(data, "stats")
    check_eq(rc, 0, f"stats: {err}")
    check(f"shard             4 (ids from {first_id(4)})" in out, out)


def test_init_refuses_bad_input():
    for value in (str(SHARD_MAX + 1), "-1", "x", ""):
        data = work.sub("init-bad")
        rc, _, err = ctl(data, "init", "--shard", value)
        check_eq(rc, 2, f"init --shard {value!r}")
        check("expected a shard number from 0 to 116" in err, err)
        check(not os.path.exists(os.path.join(data, "MANIFEST")),
              f"--shard {value!r} made a store")
    data = work.sub("init-full")
    os.makedirs(data, exist_ok=True)
    with open(os.path.join(data, "notes.txt"), "w") as f:
        f.write("mine\n")
    rc, _, err = ctl(data, "init")
    check_eq(rc, 2, "init on a directory with files")
    check("holds files" in err, err)
    check_eq(os.listdir(data), ["notes.txt"], "init touched the directory")
    data = work.sub("init-last")
    check_eq(ctl(data, "init", "--shard", str(SHARD_MAX))[0], 0, "last shard")


def test_contactd_shard_option():
    data = work.sub("opt")
    srv = start(data, "--shard", "7")
    try:
        ids = [create(srv, f"s{i}@example.com") for i in range(3)]
    finally:
        check_eq(srv.stop(), 0, "exit status")
    check_eq(ids[0], first_id(7), "first id of shard 7")
    check_eq(len(set(ids)), 3, "distinct ids")
    # The same shard again, or none: it starts. Another: refused.
    start(data, "--shard", "7").stop()
    start(data).stop()
    rc, _, err = run_contactd(args.contactd, [
        "--data", data, "--plugins", PLUGINS, "--listen", "127.0.0.1:0",
        "--shard", "8"])
    check(rc != 0, "a store of shard 7 served as shard 8")
    check("shard 7, not of shard 8" in err, err)
    srv = start(data)
    try:
        check_eq(int(create(srv, "after@example.com")), int(ids[2]) + 1,
                 "the refused start changed the store")
    finally:
        srv.stop()
    for value in (str(SHARD_MAX + 1), "one", "-3"):
        rc, _, err = run_contactd(args.contactd, [
            "--data", work.sub("opt-bad"), "--plugins", PLUGINS,
            "--shard", value])
        check_eq(rc, 2, f"--shard {value!r}")
        check("expected a shard number from 0 to 116" in err, err)


def test_two_shards_never_give_the_same_id():
    a = start(work.sub("two-a"), "--shard", "1")
    b = start(work.sub("two-b"), "--shard", "2")
    try:
        ia = {create(a, f"a{i}@example.com") for i in range(20)}
        ib = {create(b, f"b{i}@example.com") for i in range(20)}
        check_eq(ia & ib, set(), "ids given by both shards")
        check(all(int(first_id(1)) <= int(i) < int(first_id(2)) for i in ia),
              f"shard 1 gave ids outside its span: {sorted(ia)[:3]}")
    finally:
        a.stop()
        b.stop()


def test_an_account_moves_to_a_higher_shard_with_its_ids():
    da, db = work.sub("imp-a"), work.sub("imp-b")
    check_eq(ctl(da, "init", "--shard", "1")[0], 0, "init shard 1")
    check_eq(ctl(db, "init", "--shard", "2")[0], 0, "init shard 2")
    ka, kb = admin_key(da), admin_key(db)
    rc, out, err = ctl(db, "keys", "add", "--account", "other")
    check_eq(rc, 0, f"keys add: {err}")
    other = next(w for w in out.split() if w.startswith("ck_"))
    a, b = start(da), start(db)
    try:
        old = [create(a, f"m{i}@example.com") for i in range(3)]
        # Shard 2's own ids, of another account, come before the move.
        r = call(b, "POST", "/contacts", other,
                 json.dumps({"first_name": "O", "email": "o@example.com"}))
        check_eq(r.status, 200, f"create on shard 2: {r.body!r}")
        lines = call(a, "GET", "/admin/accounts/default/export", ka).body
        r = call(b, "POST", "/admin/accounts/default/import", kb, lines)
        check_eq(r.status, 200, f"import: {r.body!r}")
        check_eq((r.json()["imported"], r.json()["refused"]), (3, 0),
                 "import counts")
        for i in old:
            check_eq(call(b, "GET", f"/contacts/{i}", b.key).status, 200,
                     f"get {i} on shard 2")
        # An account's contacts list in id order, its old ids first.
        page = call(b, "GET", "/contacts?searchby=id&match=prefix&search=1",
                    b.key).json()["contacts"]
        got = [c["id"] for c in page]
        check_eq(got, old, "the account's contacts on shard 2, in id order")
        new = create(b, "after-move@example.com")
        check(int(new) > max(int(i) for i in old + got[:-1]),
              f"a new id {new} is not above the account's old ones")
        # Back to the lower shard: refused, line by line, naming both.
        lines = call(b, "GET", "/admin/accounts/default/export", kb).body
        r = call(a, "POST", "/admin/accounts/default/import", ka, lines)
        check_eq(r.status, 200, f"import back: {r.body!r}")
        errs = r.json()["errors"]
        check(any("an id of shard 2, above this store's shard 1" in
                  e["message"] for e in errs), f"refusals: {errs}")
    finally:
        a.stop()
        b.stop()


if __name__ == "__main__":
    try:
        status = run_tests([(n, f) for n, f in globals().items()
                            if n.startswith("test_")], args)
    except Fail as e:
        print(f"FAIL {e}")
        status = 1
    finally:
        work.cleanup()
    sys.exit(status)
