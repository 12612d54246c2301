#!/usr/bin/env python3
"""crash_kill.py: kill -9 under load, and kill -9 during compaction.

Goal: promises 1, 2 and 5 of DESIGN.md at the server level. A write answered
200 survives SIGKILL of the server at any moment, whole; a write in flight
when the server died is wholly there or wholly absent; nothing is invented;
a compaction killed at any moment loses nothing and brings no deleted contact
back; ids are never reused.

Method, server rounds (CRASH_ROUNDS, default 20), all on one data directory
so that each recovery starts from the last one's result: start contactd
(--durability fsync), run 32 client threads with keep-alive HTTP/1.1
connections creating contacts (POST /contacts, varied sizes) and recording
every acknowledged id with the body sent, SIGKILL the server after a random
delay, restart it, and check every contact acknowledged in the round reads
back (GET /contacts/{id}) equal to what was sent; every write in flight at
the kill is either absent or equal to what was sent; the number of contacts
never falls below everything acknowledged so far. Every other round ends with
SIGTERM instead of SIGKILL (so the next recovery starts from a snapshot), then
`contactctl verify` must exit 0. The last round also lists every contact and
checks none is unknown.

Compaction rounds (COMPACT_ROUNDS, default 20), when contactctl has
`compact`: a store with garbage (creates, edits, deletes) is made through the
server; each round copies it, runs `contactctl compact`, SIGKILLs it after a
random delay within its measured run time, and checks that `contactctl
verify` exits 0, that `contactctl dump` lists exactly the live contacts, equal
(no loss, no resurrection), and that the next id the server hands out is
above every id ever used.

Each round prints its seed; CRASH_SEED=S replays the same choices (kill
delays, contact sizes) from S. Usage: crash_kill.py --contactd BIN --plugins
DIR [--contactctl BIN] [--only server|compact]
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srv import Contactd, Fail, check, contactctl, deadline  # noqa: E402

CLIENTS = 32
FIELDS = ("first_name", "last_name", "email", "phone", "company", "job_title",
          "notes")


def contact_body(rng, tag):
    body = {"first_name": f"C{rng.randrange(10**6)}", "email": f"{tag}@crash.example"}
    if rng.random() < 0.8:
        body["last_name"] = rng.choice(["Müller", "Smith", "Ødegård", "李"]) + str(rng.randrange(100))
    if rng.random() < 0.5:
        body["phone"] = f"+1 555 {rng.randrange(10**4):04d}"
    if rng.random() < 0.5:
        body["company"] = rng.choice(["Example Inc.", "Acme", "Initech"])
    r = rng.random()
    if r < 0.1:
        body["notes"] = "x" * rng.randrange(2000, 20000)
    elif r < 0.5:
        body["notes"] = " ".join(rng.choice(["alpha", "beta", "gamma", "délta"])
                                 for _ in range(rng.randrange(1, 40)))
    return body


def same(sent, got):
    """The contact read back holds exactly the fields sent."""
    if not isinstance(got, dict):
        return False
    for f in FIELDS:
        if sent.get(f) != got.get(f):
            return False
    return True


class Load:
    """CLIENTS threads creating contacts until stopped or disconnected."""

    def __init__(self, srv, rng, round_no):
        self.srv = srv
        self.acked = {}     # email -> (id, body)
        self.inflight = {}  # email -> body, sent with no answer
        self.other = []     # unexpected answers
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.seeds = [rng.randrange(2**32) for _ in range(CLIENTS)]
        self.round = round_no

    def client(self, t):
        rng = random.Random(self.seeds[t])
        c = self.srv.client(timeout=10)
        n = 0
        while not self.stop.is_set():
            tag = f"r{self.round}-t{t}-n{n}"
            n += 1
            body = contact_body(rng, tag)
            try:
                status, data = c.json("POST", "/contacts", body)
            except Exception:
                with self.lock:
                    self.inflight[body["email"]] = body
                return
            with self.lock:
                if status == 200:
                    self.acked[body["email"]] = (data["id"], body)
                else:
                    self.other.append((status, data))

    def run(self, seconds):
        threads = [threading.Thread(target=self.client, args=(t,), daemon=True)
                   for t in range(CLIENTS)]
        for th in threads:
            th.start()
        time.sleep(seconds)
        return threads


def search_email(c, email):
    status, data = c.json("GET", "/contacts?searchby=email&search=" + email)
    check(status == 200, f"search {email}: {status} {data}")
    return data["contacts"]


def words_total(c):
    status, data = c.json("GET", "/contacts?searchby=email&match=words&search=crash.example&limit=1")
    check(status == 200, f"listing: {status} {data}")
    return data["total"]


def list_all(c):
    out, cursor = [], ""
    while True:
        status, data = c.json("GET", "/contacts?searchby=email&match=words&search=crash.example&limit=1000&cursor=" + cursor)
        check(status == 200, f"listing: {status} {data}")
        out += data["contacts"]
        if not data["next_cursor"]:
            return out
        cursor = data["next_cursor"]


def check_round(srv, load, all_acked):
    """Reads back the round's writes with 8 threads."""
    items = list(load.acked.items())
    errors = []

    def worker(part):
        c = srv.client()
        for email, (cid, body) in part:
            status, got = c.json("GET", "/contacts/" + cid)
            if status != 200 or not same(body, got):
                errors.append(f"acknowledged {cid} ({email}): {status} {str(got)[:300]}")
        c.close()
    ths = [threading.Thread(target=worker, args=(items[i::8],)) for i in range(8)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    check(not errors, "lost or damaged after kill -9:\n" + "\n".join(errors[:10]))
    c = srv.client()
    present = 0
    for email, body in load.inflight.items():
        found = search_email(c, email)
        check(len(found) <= 1, f"{email} stored twice")
        if found:
            present += 1
            check(same(body, found[0]), f"in-flight write {email} is there but not whole: {found[0]}")
    total = words_total(c)
    check(total >= len(all_acked), f"{total} contacts, {len(all_acked)} acknowledged")
    c.close()
    return present


def server_rounds(a, work, rounds, base):
    data = os.path.join(work, "server-data")
    srv = Contactd(a.contactd, a.plugins, data)
    all_acked = {}
    all_inflight = set()
    writes = 0
    for r in range(rounds):
        seed = base + r
        rng = random.Random(seed)
        delay = rng.uniform(0.05, 0.8)
        print(f"server round {r} seed {seed}: kill after {delay:.2f}s", flush=True)
        try:
            srv.start()
            load = Load(srv, rng, r)
            threads = load.run(delay)
            srv.kill()
            load.stop.set()
            for th in threads:
                th.join(15)
            check(not load.other, f"unexpected answers under load: {load.other[:3]}")
            srv.start()
            present = check_round(srv, load, all_acked)
            for email, v in load.acked.items():
                all_acked[email] = v
            all_inflight.update(load.inflight)
            writes += len(load.acked)
            print(f"  {len(load.acked)} acknowledged, all there and whole; "
                  f"{len(load.inflight)} in flight at the kill, {present} of them committed",
                  flush=True)
            if r == rounds - 1:
                listed = list_all(srv.client())
                unknown = [x["email"] for x in listed if x["email"] not in all_acked
                           and x["email"] not in all_inflight]
                check(not unknown, f"contacts nobody wrote: {unknown[:5]}")
                ids = [x["id"] for x in listed]
                check(len(ids) == len(set(ids)), "an id listed twice")
            if r % 2 == 1:
                rc = srv.stop()
                check(rc == 0, f"SIGTERM exit status {rc}")
            else:
                srv.kill()
            if a.contactctl:
                rc, out, err = contactctl(a.contactctl, data, "verify")
                check(rc == 0, f"contactctl verify exit {rc}:\n{out[-2000:]}\n{err[-2000:]}")
        except Fail as e:
            raise Fail(f"{e}\nreplay: CRASH_SEED={base} CRASH_ROUNDS={r + 1}\n"
                       f"server stderr:\n{srv.stderr()}")
    if not a.contactctl:
        print("contactctl not built: verify skipped")
    print(f"server rounds: {rounds} kills, {writes} acknowledged writes, all recovered")


def ctl(a, data, *args):
    rc, out, err = contactctl(a.contactctl, data, *args)
    check(rc == 0, f"contactctl {' '.join(args)}: exit {rc}\n{out[-1500:]}\n{err[-1500:]}")
    return out


def dump_map(a, data):
    """The live contacts of a dump (which lists the trash too, with
    deleted_at)."""
    import json
    return {c["id"]: c for c in map(json.loads, ctl(a, data, "dump").splitlines())
            if c and "deleted_at" not in c}


def compact_rounds(a, work, rounds, base):
    rc, out, err = contactctl(a.contactctl, "/nonexistent", "--help")
    if "compact" not in out + err:
        print("contactctl has no compact: compaction rounds skipped")
        return
    src = os.path.join(work, "compact-src")
    srv = Contactd(a.contactd, a.plugins, src)
    srv.start()
    rng = random.Random(base)
    c = srv.client()
    ids, deleted = [], set()
    for i in range(1000):
        status, data = c.json("POST", "/contacts", contact_body(rng, f"k{i}"))
        check(status == 200, f"create: {status} {data}")
        ids.append(data["id"])
    for cid in rng.sample(ids, 300):
        status, _ = c.json("PATCH", "/contacts/" + cid, {"company": "Edited", "notes": "e" * rng.randrange(1, 3000)})
        check(status == 200, "edit failed")
    for cid in rng.sample(ids, 300):
        status, _, _ = c.request("DELETE", "/contacts/" + cid)
        check(status == 200, "delete failed")
        deleted.add(cid)
    max_id = max(ids)
    # The highest id deleted too, so that only a meta record keeps it from reuse.
    if max_id not in deleted:
        c.request("DELETE", "/contacts/" + max_id)
        deleted.add(max_id)
    c.close()
    check(srv.stop() == 0, "SIGTERM failed")
    want = dump_map(a, src)
    check(len(want) == len(ids) - len(deleted), f"dump has {len(want)} contacts")
    # How long a compaction takes, to spread the kills over it.
    t = os.path.join(work, "compact-timing")
    shutil.copytree(src, t)
    t0 = time.monotonic()
    ctl(a, t, "compact")
    took = time.monotonic() - t0
    shutil.rmtree(t)
    print(f"compaction of {len(ids)} contacts ({len(deleted)} deleted) takes {took*1000:.0f} ms")
    killed = 0
    for r in range(rounds):
        seed = base + 1000 + r
        rng = random.Random(seed)
        delay = rng.uniform(0, took * 1.1)
        d = os.path.join(work, f"compact-{r}")
        shutil.copytree(src, d)
        try:
            p = subprocess.Popen([a.contactctl, "--data", d, "compact"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                killed += 1
            p.wait(60)
            ctl(a, d, "verify")
            got = dump_map(a, d)
            lost = set(want) - set(got)
            back = set(got) & deleted
            check(not lost, f"lost by a killed compaction: {sorted(lost)[:5]}")
            check(not back, f"resurrected by a killed compaction: {sorted(back)[:5]}")
            diff = [i for i in want if want[i] != got[i]]
            check(not diff, f"changed by a killed compaction: {diff[:3]}")
            s = Contactd(a.contactd, a.plugins, d).start()
            status, data = s.client().json("POST", "/contacts", {"first_name": "N", "email": "new@crash.example"})
            check(status == 200 and data["id"] > max_id, f"id after compaction: {data}, max ever {max_id}")
            s.kill()
            print(f"compact round {r} seed {seed}: {'killed' if p.returncode < 0 else 'finished'} "
                  f"after {delay*1000:.0f} ms; nothing lost or resurrected", flush=True)
        except Fail as e:
            raise Fail(f"{e}\nreplay: CRASH_SEED={base} (compact round {r}), store kept in {d}")
        shutil.rmtree(d)
    print(f"compaction rounds: {rounds}, {killed} killed mid-way")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--contactd", required=True)
    p.add_argument("--plugins", required=True)
    p.add_argument("--contactctl")
    p.add_argument("--only", choices=("server", "compact"))
    a = p.parse_args()
    rounds = int(os.environ.get("CRASH_ROUNDS", "20"))
    crounds = int(os.environ.get("COMPACT_ROUNDS", "20"))
    base = int(os.environ.get("CRASH_SEED", str(int(time.time()) % 100000 * 1000)))
    deadline(int(os.environ.get("CRASH_BUDGET_S", str(120 + 15 * (rounds + crounds)))))
    print(f"CRASH_SEED={base}", flush=True)
    work = tempfile.mkdtemp(prefix="contactd-crash-")
    ok = False
    try:
        if a.only in (None, "server"):
            server_rounds(a, work, rounds, base)
        if a.only in (None, "compact"):
            if a.contactctl:
                compact_rounds(a, work, crounds, base)
            else:
                print("contactctl not built: compaction rounds skipped")
        ok = True
    except Fail as e:
        print(f"FAIL: {e}", flush=True)
    finally:
        if ok or not os.environ.get("CRASH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
