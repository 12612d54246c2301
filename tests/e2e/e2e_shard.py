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
refused line by line by another, each line naming both shards.
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


def test_import_refuses_another_shards_ids():
    da, db = work.sub("imp-a"), work.sub("imp-b")
    check_eq(ctl(da, "init", "--shard", "1")[0], 0, "init shard 1")
    check_eq(ctl(db, "init", "--shard", "2")[0], 0, "init shard 2")
    ka, kb = admin_key(da), admin_key(db)
    a, b = start(da), start(db)
    try:
        for i in range(3):
            create(a, f"m{i}@example.com")
        lines = call(a, "GET", "/admin/accounts/default/export", ka).body
        r = call(b, "POST", "/admin/accounts/default/import", kb, lines)
        check_eq(r.status, 200, f"import: {r.body!r}")
        got = r.json()
        check_eq((got["imported"], got["refused"]), (0, 3), "import counts")
        for e in got["errors"]:
            check("an id of shard 1" in e["message"] and
                  "of shard 2" in e["message"], e["message"])
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
