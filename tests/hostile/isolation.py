#!/usr/bin/env python3
"""isolation.py: accounts, read-only keys and secrets, route by route.

Goal: promise 11 and API.md's authentication rules, at the server level. A
key of another account gets exactly what a missing id gets, on every route
(status, content-type and body); a read-only key cannot write on any write
route (403 read_only_key) and changes nothing; keys never appear in answers,
the access log, contactctl's dumps or the data files (only default.key holds
the default key, by design, mode 0600); every file the server and contactctl
create in the data directory is readable by its owner only, even under
umask 000.

Method: a fresh data directory; contactd makes the default account and key;
contactctl adds a read-write key of account "other" and read-only keys of
both accounts. With the server running (access log on), contact A is made by
default and B by other; then every route is called with other's key on A's
id and on an id that does not exist, and the pairs compared; every write
route is called with the read-only key; A and B are read back unchanged.
Every answer, the access log, the dumps and every byte of every file in the
data directory are searched for every key.
"""
import argparse
import json
import os
import stat
import subprocess
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crash"))
from srv import Contactd, Fail, check, contactctl, deadline  # noqa: E402

MISSING = "19999999999999999999"


def add_key(a, data, account, read_only=False):
    args = ["keys", "add", "--account", account] + (["--read-only"] if read_only else [])
    rc, out, err = contactctl(a.contactctl, data, *args)
    check(rc == 0, f"keys add: {rc} {err}")
    for line in out.splitlines():
        if line.startswith("key "):
            return line.split()[1]
    raise Fail(f"no key in: {out}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--contactd", required=True)
    p.add_argument("--plugins", required=True)
    p.add_argument("--contactctl")
    a = p.parse_args()
    deadline(240)
    if not a.contactctl:
        print("contactctl not built: cannot make a second account; skipped")
        return 77
    os.umask(0)  # modes must come from the programs, not from the umask
    work = tempfile.mkdtemp(prefix="contactd-iso-")
    os.chmod(work, 0o700)
    data = os.path.join(work, "data")
    log = os.path.join(work, "access.log")
    answers = []  # every answer's headers and body, searched for keys
    try:
        srv = Contactd(a.contactd, a.plugins, data, ["--access-log", log]).start()
        k_default = srv.key
        check(srv.stop() == 0, "stop")
        k_other = add_key(a, data, "other")
        k_ro = add_key(a, data, "default", read_only=True)
        k_ro_other = add_key(a, data, "other", read_only=True)
        keys = {"default": k_default, "other": k_other, "read-only": k_ro,
                "other read-only": k_ro_other}
        srv.start()

        def call(key, method, path, body=None):
            c = srv.client()
            c.key = key
            status, headers, raw = c.request(method, path, body)
            c.close()
            answers.append((f"{method} {path}", json.dumps(headers), raw.decode("utf-8", "replace")))
            return status, headers.get("content-type"), raw

        def norm(raw):
            try:
                v = json.loads(raw)
            except ValueError:
                return raw
            if isinstance(v, dict) and isinstance(v.get("error"), dict):
                v["error"].pop("request_id", None)
            return v

        body_a = {"first_name": "Alice", "last_name": "Anders", "email": "alice@iso.example",
                  "phone": "+1 555 0101", "company": "Alpha Corp", "job_title": "CEO",
                  "notes": "private notes of account default"}
        body_b = {"first_name": "Bob", "email": "bob@iso.example", "company": "Beta"}
        s, _, raw = call(k_default, "POST", "/contacts", body_a)
        check(s == 200, f"create A: {s} {raw}")
        id_a = json.loads(raw)["id"]
        s, _, raw = call(k_other, "POST", "/contacts", body_b)
        check(s == 200, f"create B: {s} {raw}")
        id_b = json.loads(raw)["id"]
        _, _, a_before = call(k_default, "GET", "/contacts/" + id_a)
        _, _, b_before = call(k_other, "GET", "/contacts/" + id_b)

        # Another account's id answers as a missing one, on every route.
        routes = [
            ("GET", "/contacts/{id}", None),
            ("PATCH", "/contacts/{id}", {"company": "Stolen"}),
            ("POST", "/contacts", {"contact_id": "{id}", "update_fields": {"company": "Stolen"}}),
            ("POST", "/contacts", {"contactID": "{id}", "updateFields": {"email": "x@iso.example"}}),
            ("DELETE", "/contacts", {"contact_id": "{id}"}),
            ("DELETE", "/contacts/{id}", None),
            ("GET", "/contacts?searchby=id&search={id}", None),
            ("GET", "/contacts?searchby=id&match=prefix&search={id}", None),
        ]
        rows = []
        for method, path, body in routes:
            for key_name, key, target in (("other", k_other, id_a),
                                          ("default", k_default, id_b)):
                def fill(x, v):
                    return json.loads(json.dumps(x).replace("{id}", v)) if x else None
                got = call(key, method, path.replace("{id}", target), fill(body, target))
                want = call(key, method, path.replace("{id}", MISSING), fill(body, MISSING))
                check(got[0] == want[0] and got[1] == want[1] and norm(got[2]) == norm(want[2]),
                      f"{method} {path} with {key_name}'s key: another account's id answers "
                      f"{got[0]} {got[2][:200]!r}, a missing id {want[0]} {want[2][:200]!r}")
                rows.append(f"{method} {path} ({key_name}) -> {got[0]}")
        # Searches on A's values from other find nothing, as values nobody has.
        for field in ("first_name", "last_name", "email", "phone", "company", "job_title", "notes"):
            for match in ("exact", "prefix", "words"):
                term = body_a[field].split()[0] if match != "exact" else body_a[field]
                q = f"/contacts?searchby={field}&match={match}&search=" + term.replace(" ", "%20").replace("+", "%2B")
                got = call(k_other, "GET", q)
                want = call(k_other, "GET", f"/contacts?searchby={field}&match={match}&search=zzqx")
                check(got[0] == 200 and norm(got[2]) == norm(want[2]),
                      f"search {field}/{match} by other finds A: {got[2][:200]!r}")
        rows.append("GET /contacts?searchby=<each field>&match=<each mode> on A's values (other) -> 200, empty")
        # A's email is free in another account (a 409 would leak it).
        s, _, raw = call(k_other, "POST", "/contacts", dict(body_a, first_name="Copy"))
        check(s == 200, f"other cannot use A's email: {s} {raw}")
        s, _, raw = call(k_default, "POST", "/contacts", dict(body_a, email="alice2@iso.example"))
        check(s == 200, f"create A2: {s} {raw}")
        s, _, raw = call(k_other, "POST", "/contacts/batch", {"contacts": [dict(body_a, email="ALICE2@iso.example")]})
        check(s == 200 and "id" in json.loads(raw)["results"][0], f"batch: {raw}")
        rows.append("POST /contacts, /contacts/batch with A's email (other) -> 200")

        # A read-only key cannot write, on any write route.
        writes = [
            ("POST", "/contacts", {"first_name": "R", "email": "r@iso.example"}),
            ("POST", "/contacts", {"contact_id": id_a, "update_fields": {"company": "RO"}}),
            ("POST", "/contacts/batch", {"contacts": [{"first_name": "R", "email": "r2@iso.example"}]}),
            ("PATCH", "/contacts/" + id_a, {"company": "RO"}),
            ("PATCH", "/contacts/" + MISSING, {"company": "RO"}),
            ("DELETE", "/contacts/" + id_a, None),
            ("DELETE", "/contacts", {"contact_id": id_a}),
        ]
        for key_name, key in (("read-only", k_ro), ("other read-only", k_ro_other)):
            for method, path, body in writes:
                s, ctype, raw = call(key, method, path, body)
                err = norm(raw)
                check(s == 403 and isinstance(err, dict) and err.get("error", {}).get("code") == "read_only_key",
                      f"{method} {path} with a {key_name} key: {s} {raw[:200]!r}")
            rows.append(f"every write route ({key_name} key) -> 403 read_only_key")
        s, _, raw = call(k_ro, "GET", "/contacts/" + id_a)
        check(s == 200 and raw == a_before, "a read-only key cannot read its account")
        # Nothing changed.
        check(call(k_default, "GET", "/contacts/" + id_a)[2] == a_before, "A changed")
        check(call(k_other, "GET", "/contacts/" + id_b)[2] == b_before, "B changed")
        # Keys never echoed: a wrong key, a key with a suffix, a revoked one.
        for bad in (k_default + "x", k_default[:-1], "ck_" + "A" * 40, k_other.upper()):
            s, _, raw = call(bad, "GET", "/contacts/" + id_a)
            check(s == 401, f"bad key answered {s}")
        check(srv.stop() == 0, "stop")

        # Secrets: answers, access log, dumps, every file of the data dir.
        texts = {"answers": "\n".join("\n".join(x) for x in answers)}
        with open(log, encoding="utf-8", errors="replace") as f:
            texts["access log"] = f.read()
        check(texts["access log"].count("\n") >= len(answers), "access log is missing lines")
        for fmt in (["dump"], ["dump", "--format", "csv"], ["dump", "--raw"], ["keys", "list"], ["stats"]):
            rc, out, err = contactctl(a.contactctl, data, *fmt)
            check(rc == 0, f"contactctl {fmt}: {rc} {err}")
            texts["contactctl " + " ".join(fmt)] = out + err
        check("alice@iso.example" in texts["contactctl dump"], "dump is missing contacts")
        for where, text in texts.items():
            for name, key in keys.items():
                check(key not in text, f"the {name} key appears in {where}")
        files = 0
        for root, dirs, names in os.walk(data):
            for n in dirs + names:
                path = os.path.join(root, n)
                mode = stat.S_IMODE(os.lstat(path).st_mode)
                check(mode & 0o077 == 0, f"{path} has mode {mode:o}: others can read it")
                if n in names:
                    files += 1
                    with open(path, "rb") as f:
                        blob = f.read()
                    for name, key in keys.items():
                        if n == "default.key" and name == "default":
                            check(blob.strip() == key.encode(), "default.key does not hold the default key")
                            continue
                        check(key.encode() not in blob, f"the {name} key is stored in {path}")
        dmode = stat.S_IMODE(os.stat(data).st_mode)
        check(dmode & 0o077 == 0, f"the data directory has mode {dmode:o}")
        check(stat.S_IMODE(os.stat(os.path.join(data, "default.key")).st_mode) == 0o600, "default.key mode")
        for r in rows:
            print("held:", r)
        print(f"held: no key in {len(answers)} answers, the access log, 5 contactctl outputs, "
              f"{files} data files; every file mode & 077 == 0 under umask 000")
        return 0
    except Fail as e:
        print(f"FAIL: {e}")
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
