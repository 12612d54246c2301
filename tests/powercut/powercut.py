#!/usr/bin/env python3
"""powercut.py: power cuts under the real contactd and contactctl compact.

Goal: promise 12 of DESIGN.md. A power cut of the machine under the real
server, with its real system calls (write, fdatasync, rename, directory
fsync, mmap), loses no acknowledged write at any moment, and what recovers
is a gap-free prefix of the writes in commit order; a cut during a
compaction leaves the old store or the new one, whole.

Method: the data directory lives on pcfs (pcfs.c), a FUSE file system that,
when the power is cut, forgets everything not yet synced (file data since
the file's last fsync, directory entries since the directory's last fsync),
optionally keeping a random part of it torn at 4 KiB pages (odd rounds).
Server rounds (POWERCUT_ROUNDS, default 12), all on one store so that each
recovery starts from the last one's result, cycle through four moments:
  writers   32 clients (a quarter of them sending batches of 1 to 20)
            creating and editing contacts, cut after a random delay;
  roll      the same with 64 KiB segments, so the cut falls near a segment
            roll;
  snapshot  the same with a snapshot every 64 KiB of log, so the cut falls
            in or near a snapshot write;
  shutdown  writers, then SIGTERM (which writes the closing snapshot), cut
            at a random moment of the shutdown.
After each cut: contactd is killed, pcfs unmounts and rewrites the backing
directory to what was durable, contactd starts again on it (off the mount),
and every acknowledged write must read back whole (creates equal to what
was sent, acknowledged edits applied), every write in flight at the cut is
wholly there or wholly absent (so is one answered 503 because the store
failed at the cut: its outcome is as unknown as a write in flight), the ids
created in the round form one
unbroken run from the first (a prefix in commit order), and `contactctl
verify` exits 0.
Compaction rounds (POWERCUT_COMPACT_ROUNDS, default 6): a store with
garbage is copied onto pcfs, `contactctl compact` runs there and the power
is cut at a random moment within its measured run time; afterwards verify
exits 0 and `contactctl dump` lists exactly the live contacts.

Each round prints its seed; POWERCUT_SEED=S replays the same choices.
Usage: powercut.py --pcfs BIN --contactd BIN --plugins DIR --contactctl BIN
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "crash"))
from pcfs_lib import Mount, fuse_available  # noqa: E402
from srv import Contactd, Fail, check, contactctl, deadline  # noqa: E402

CLIENTS = 32
BATCH_CLIENTS = 8
FIELDS = ("first_name", "last_name", "email", "phone", "company", "job_title",
          "notes")
MOMENTS = ("writers", "roll", "snapshot", "shutdown")
SMALL_BYTES = 64 * 1024


def contact_body(rng, tag):
    body = {"first_name": f"P{rng.randrange(10**6)}", "email": f"{tag}@power.example"}
    if rng.random() < 0.7:
        body["last_name"] = rng.choice(["Müller", "Smith", "Ødegård", "李"])
    if rng.random() < 0.5:
        body["company"] = rng.choice(["Example Inc.", "Acme", "Initech"])
    r = rng.random()
    if r < 0.1:
        body["notes"] = "n" * rng.randrange(3000, 12000)
    elif r < 0.5:
        body["notes"] = " ".join(rng.choice(["alpha", "beta", "gamma"])
                                 for _ in range(rng.randrange(1, 30)))
    return body


def same(want, got):
    return isinstance(got, dict) and all(want.get(f) == got.get(f) for f in FIELDS)


class Load:
    """Writers until the server stops answering. Each acknowledged create
    is kept with its body; an acknowledged edit updates the expected body;
    a request with no answer is in flight (wholly there or wholly absent)."""

    def __init__(self, srv, rng, tag):
        self.srv = srv
        self.tag = tag
        self.acked = {}       # id -> expected fields
        self.sent = {}        # email -> fields of every create sent
        self.inflight = []    # ("create", body) or ("edit", id, before, after)
        self.other = []
        self.lock = threading.Lock()
        self.seeds = [rng.randrange(2**32) for _ in range(CLIENTS)]
        self.stop = threading.Event()

    def _create(self, c, rng, t, n):
        """(status, answer, ids acknowledged)."""
        if t < BATCH_CLIENTS:
            bodies = [contact_body(rng, f"{self.tag}-t{t}-n{n}-{i}")
                      for i in range(rng.randrange(1, 21))]
            with self.lock:
                self.sent.update((b["email"], dict(b)) for b in bodies)
            status, data = c.json("POST", "/contacts/batch", {"contacts": bodies})
            if status != 200:
                return status, data, []
            ids = []
            for body, item in zip(bodies, data["results"]):
                if "id" not in item:  # refused on its own (the store failed)
                    return 503, item, ids
                ids.append(item["id"])
                with self.lock:
                    self.acked[item["id"]] = dict(body)
            return 200, None, ids
        body = contact_body(rng, f"{self.tag}-t{t}-n{n}")
        with self.lock:
            self.sent[body["email"]] = dict(body)
        status, data = c.json("POST", "/contacts", body)
        if status != 200:
            return status, data, []
        with self.lock:
            self.acked[data["id"]] = dict(body)
        return 200, data, [data["id"]]

    def client(self, t):
        rng = random.Random(self.seeds[t])
        c = self.srv.client(timeout=10)
        mine = []
        n = 0
        while not self.stop.is_set():
            n += 1
            if mine and rng.random() < 0.2:
                cid = rng.choice(mine)
                with self.lock:
                    before = dict(self.acked[cid])
                after = dict(before, company=f"Edited {n}")
                pending = ("edit", cid, before, after)
            else:
                pending = ("create", n)
            try:
                if pending[0] == "edit":
                    status, data = c.json("PATCH", "/contacts/" + cid,
                                          {"company": after["company"]})
                    if status == 200:
                        with self.lock:
                            self.acked[cid] = after
                else:
                    status, data, ids = self._create(c, rng, t, n)
                    mine = (mine + ids)[-50:]
            except Exception:
                with self.lock:
                    self.inflight.append(pending)
                return
            if status != 200:
                with self.lock:
                    self.other.append((status, str(data)[:200]))
                    if status == 503:  # the store failed at the cut: unknown
                        self.inflight.append(pending)
                return

    def start(self):
        self.threads = [threading.Thread(target=self.client, args=(t,), daemon=True)
                        for t in range(CLIENTS)]
        for th in self.threads:
            th.start()

    def join(self):
        self.stop.set()
        for th in self.threads:
            th.join(20)


def list_round(c, tag):
    """Every contact of the round (its emails carry the tag), by id."""
    out, cursor = {}, ""
    while True:
        status, data = c.json("GET", f"/contacts?searchby=email&match=words&search={tag}&limit=1000&cursor={cursor}")
        check(status == 200, f"listing: {status} {data}")
        for x in data["contacts"]:
            out[x["id"]] = x
        if not data["next_cursor"]:
            return out
        cursor = data["next_cursor"]


def check_round(srv, load, tag):
    c = srv.client()
    got = list_round(c, tag)
    lost = [i for i in load.acked if i not in got]
    check(not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:3]}")
    bad = [i for i, want in load.acked.items() if not same(want, got[i])]
    # An edit in flight may be there or not: its contact is either state.
    edits = {p[1]: p for p in load.inflight if p[0] == "edit"}
    bad = [i for i in bad if not (i in edits and same(edits[i][3], got[i]))]
    check(not bad, f"acknowledged writes damaged: {[(i, got[i]) for i in bad[:2]]}")
    ids = sorted(int(i) for i in got)
    if ids:
        holes = [i for i in range(ids[0], ids[-1] + 1) if str(i) not in got]
        check(not holes, f"not a prefix: {len(holes)} ids missing inside the run, e.g. {holes[:3]}")
    # Writes not acknowledged (in flight, or answered 503 once the store
    # failed at the cut) may be there or not, but only whole, as sent.
    extra = [i for i in got if i not in load.acked]
    for i in extra:
        want = load.sent.get(got[i].get("email"))
        check(want is not None, f"recovered contact nobody sent: {got[i]}")
        ok = same(want, got[i]) or (i in edits and same(edits[i][3], got[i]))
        check(ok, f"unacknowledged write recovered, but not whole: {got[i]}")
    extra = len(extra)
    c.close()
    return extra


def server_rounds(a, work, rounds, base):
    backing = os.path.join(work, "backing")
    mnt = os.path.join(work, "mnt")
    os.makedirs(backing)
    data_on_mount = os.path.join(mnt, "data")
    data_backing = os.path.join(backing, "data")
    total = 0
    for r in range(rounds):
        seed = base + r
        rng = random.Random(seed)
        moment = MOMENTS[r % len(MOMENTS)]
        keep = "random" if r % 2 else "none"
        delay = rng.uniform(0.1, 1.0)
        tag = f"r{r}s{seed}"
        print(f"server round {r} seed {seed}: {moment}, keep {keep}, cut after {delay:.2f}s",
              flush=True)
        args = []
        if moment == "roll":
            args = ["--segment-bytes", str(SMALL_BYTES)]
        elif moment == "snapshot":
            args = ["--snapshot-every-bytes", str(SMALL_BYTES)]
        m = Mount(a.pcfs, backing, mnt, seed=seed, keep=keep).mount()
        srv = Contactd(a.contactd, a.plugins, data_on_mount, args)
        try:
            srv.start()
            load = Load(srv, rng, tag)
            load.start()
            time.sleep(delay)
            if moment == "shutdown":
                srv.proc.send_signal(15)
                time.sleep(rng.uniform(0, 0.3))
            m.cut()
            load.join()
            srv.kill()
            report = m.unmount()
            check(not [o for o in load.other if o[0] not in (503, 500)],
                  f"unexpected answers before the cut: {load.other[:3]}")
            s2 = Contactd(a.contactd, a.plugins, data_backing).start()
            extra = check_round(s2, load, tag)
            check(s2.stop() == 0, "SIGTERM after recovery failed")
            rc, out, err = contactctl(a.contactctl, data_backing, "verify")
            check(rc == 0, f"verify exit {rc}:\n{out[-1500:]}\n{err[-1500:]}")
            total += len(load.acked)
            print(f"  {len(load.acked)} acknowledged, all there; {len(load.inflight)} in flight, "
                  f"{extra} more contacts recovered; verify clean; {report.splitlines()[-1] if report else ''}",
                  flush=True)
        except Fail as e:
            raise Fail(f"{e}\nreplay: POWERCUT_SEED={base} POWERCUT_ROUNDS={r + 1}\n"
                       f"server stderr:\n{srv.stderr()}")
        finally:
            srv.kill()
            m.unmount(quiet=True)
    print(f"server rounds: {rounds} power cuts, {total} acknowledged writes, all recovered")


def dump_map(a, data):
    rc, out, err = contactctl(a.contactctl, data, "dump")
    check(rc == 0, f"dump: exit {rc}: {err[-500:]}")
    return {c["id"]: c for c in map(json.loads, out.splitlines()) if c}


def compact_rounds(a, work, rounds, base):
    src = os.path.join(work, "compact-src")
    srv = Contactd(a.contactd, a.plugins, src, ["--segment-bytes", str(SMALL_BYTES)]).start()
    rng = random.Random(base)
    c = srv.client()
    ids = []
    for i in range(600):
        status, data = c.json("POST", "/contacts", contact_body(rng, f"k{i}"))
        check(status == 200, f"create: {status} {data}")
        ids.append(data["id"])
    for cid in rng.sample(ids, 250):
        status, _, _ = c.request("DELETE", "/contacts/" + cid)
        check(status == 200, "delete failed")
    c.close()
    check(srv.stop() == 0, "SIGTERM failed")
    want = dump_map(a, src)
    backing = os.path.join(work, "cbacking")
    mnt = os.path.join(work, "cmnt")
    # How long compaction takes on the mount, to spread the cuts over it.
    os.makedirs(backing)
    shutil.copytree(src, os.path.join(backing, "data"))
    m = Mount(a.pcfs, backing, mnt).mount()
    t0 = time.monotonic()
    rc, _, err = contactctl(a.contactctl, os.path.join(mnt, "data"), "compact")
    took = time.monotonic() - t0
    m.unmount()
    check(rc == 0, f"compact on the mount: exit {rc}: {err[-500:]}")
    print(f"compaction on pcfs takes {took * 1000:.0f} ms")
    for r in range(rounds):
        seed = base + 1000 + r
        rng = random.Random(seed)
        delay = rng.uniform(0, took)
        keep = "random" if r % 2 else "none"
        shutil.rmtree(backing)
        os.makedirs(backing)
        shutil.copytree(src, os.path.join(backing, "data"))
        m = Mount(a.pcfs, backing, mnt, seed=seed, keep=keep).mount()
        try:
            p = subprocess.Popen([a.contactctl, "--data", os.path.join(mnt, "data"), "compact"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            m.cut()
            p.kill()
            p.wait(30)
            m.unmount()
            d = os.path.join(backing, "data")
            rc, out, err = contactctl(a.contactctl, d, "verify")
            check(rc == 0, f"verify exit {rc}:\n{out[-1500:]}\n{err[-1500:]}")
            got = dump_map(a, d)
            check(set(got) == set(want), f"{len(set(want) - set(got))} lost, "
                  f"{len(set(got) - set(want))} resurrected")
            check(all(got[i] == want[i] for i in want), "a contact changed")
            print(f"compact round {r} seed {seed}: cut after {delay * 1000:.0f} ms, keep {keep}: "
                  f"the store is whole", flush=True)
        except Fail as e:
            raise Fail(f"{e}\nreplay: POWERCUT_SEED={base} (compact round {r})")
        finally:
            m.unmount(quiet=True)
    print(f"compaction rounds: {rounds} power cuts, nothing lost or resurrected")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pcfs", required=True)
    p.add_argument("--contactd", required=True)
    p.add_argument("--plugins", required=True)
    p.add_argument("--contactctl", required=True)
    a = p.parse_args()
    why = fuse_available()
    if why:
        print(f"skipped: {why}")
        return 77
    rounds = int(os.environ.get("POWERCUT_ROUNDS", "12"))
    crounds = int(os.environ.get("POWERCUT_COMPACT_ROUNDS", "6"))
    base = int(os.environ.get("POWERCUT_SEED", str(int(time.time()) % 100000 * 1000)))
    deadline(int(os.environ.get("POWERCUT_BUDGET_S", str(120 + 20 * (rounds + crounds)))))
    print(f"POWERCUT_SEED={base}", flush=True)
    work = tempfile.mkdtemp(prefix="contactd-powercut-")
    ok = False
    try:
        server_rounds(a, work, rounds, base)
        compact_rounds(a, work, crounds, base)
        ok = True
    except Fail as e:
        print(f"FAIL: {e}", flush=True)
    finally:
        if ok or not os.environ.get("POWERCUT_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
