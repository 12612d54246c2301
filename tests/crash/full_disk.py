#!/usr/bin/env python3
"""full_disk.py: a real full disk under contactd.

Goal: promise 7 at the server level. When the disk fills, writes answer 503
with retry-after and /healthz answers 503 with a reason; nothing that was
acknowledged is lost or damaged, and nothing is corrupted (contactctl verify
passes); once space is freed and the server restarted, writes work again.
Method: mount a 6 MiB tmpfs (root only; the test is skipped, exit 77, when
not root or when mounting is not permitted), put a 2 MiB filler file and the
data directory on it, and create contacts with 8 KiB of notes from 4 client
threads until the server refuses them. Then: every acknowledged contact
reads back whole; every later write is refused too (the store stays failed
until reopened); reads still work; the server stops on SIGTERM; it restarts
on the full disk with every acknowledged contact whole; contactctl verify
passes; with the filler deleted and the server restarted, writes succeed
and /healthz is 200 again.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srv import Contactd, Fail, check, contactctl, deadline  # noqa: E402


# 8 KiB of notes, the same in every contact: the index keeps each distinct
# notes value whole (for exact and prefix search), so distinct notes would make
# the snapshot as large as the log and the freed space too small to write it.
WORDS = " ".join(("lorem", "ipsum", "dolor", "sit", "amet", "consectetur")[i % 6]
                 for i in range(1400))[:8000]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--contactd", required=True)
    p.add_argument("--plugins", required=True)
    p.add_argument("--contactctl")
    a = p.parse_args()
    if os.geteuid() != 0:
        print("not root: cannot mount a small file system; skipped")
        return 77
    deadline(300)
    work = tempfile.mkdtemp(prefix="contactd-full-")
    mnt = os.path.join(work, "mnt")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"mount not permitted ({r.stderr.strip()}); skipped")
        shutil.rmtree(work, ignore_errors=True)
        return 77
    srv = None
    try:
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (2 << 20))
        data = os.path.join(mnt, "data")
        srv = Contactd(a.contactd, a.plugins, data).start()
        acked, refused, other = {}, [], []
        lock = threading.Lock()
        stop = threading.Event()

        def writer(t):
            c = srv.client()
            n = 0
            while not stop.is_set():
                body = {"first_name": f"F{t}", "last_name": f"L{t}-{n}",
                        "email": f"t{t}-n{n}@full.example", "notes": WORDS}
                n += 1
                s, h, raw = c.request("POST", "/contacts", body)
                with lock:
                    if s == 200:
                        acked[body["email"]] = (json.loads(raw)["id"], body)
                    elif s == 503:
                        refused.append((h, raw))
                        if len(refused) >= 20:
                            stop.set()
                    else:
                        other.append((s, raw))
                        stop.set()
        ths = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(240)
        check(not other, f"unexpected answers while filling: {other[:3]}")
        check(refused, "the disk never filled")
        print(f"disk full after {len(acked)} acknowledged writes; {len(refused)} refused")
        for h, raw in refused:
            check("retry-after" in h, f"503 without retry-after: {h}")
            check(b"store_unavailable" in raw, f"503 body: {raw[:200]!r}")
        c = srv.client()
        s, h, raw = c.request("GET", "/healthz", key=False)
        check(s == 503 and len(raw) > 10, f"/healthz on a full disk: {s} {raw!r}")
        print(f"/healthz: {s} {raw.decode()[:160]}")
        # Still refused (the store stays failed), reads still work.
        s, h, raw = c.request("POST", "/contacts", {"first_name": "X", "email": "late@full.example"})
        check(s == 503, f"a write after the failure: {s}")

        def read_back(server):
            cc = server.client()
            for email, (cid, body) in acked.items():
                s, got = cc.json("GET", "/contacts/" + cid)
                check(s == 200 and all(got.get(k) == v for k, v in body.items()),
                      f"acknowledged {cid} lost or damaged: {s} {str(got)[:200]}")
            cc.close()
        read_back(srv)
        rc = srv.stop()
        print(f"stopped on a full disk with exit status {rc}")
        srv.start()
        read_back(srv)
        srv.kill()
        if a.contactctl:
            rc, out, err = contactctl(a.contactctl, data, "verify")
            check(rc == 0, f"verify after a full disk: {rc}\n{out[-1500:]}\n{err[-1500:]}")
        os.unlink(filler)
        srv.start()
        c = srv.client()
        s, _, raw = c.request("GET", "/healthz", key=False)
        check(s == 200, f"/healthz with space again: {s} {raw!r}")
        for i in range(20):
            s, _, raw = c.request("POST", "/contacts", {"first_name": "Y", "email": f"again{i}@full.example"})
            check(s == 200, f"a write with space again: {s} {raw[:200]!r}")
        read_back(srv)
        rc = srv.stop()
        check(rc == 0, f"SIGTERM with space again: exit {rc}\n{srv.stderr()}")
        if a.contactctl:
            rc, out, err = contactctl(a.contactctl, data, "verify")
            check(rc == 0, f"verify at the end: {rc}\n{out[-1500:]}")
        print("held: 503 with retry-after and a 503 /healthz on a full disk; every acknowledged "
              "write whole after restart; verify passes; writes work once space is freed")
        return 0
    except Fail as e:
        print(f"FAIL: {e}")
        if srv is not None:
            print(srv.stderr())
        return 1
    finally:
        if srv is not None:
            srv.kill()
        subprocess.run(["umount", mnt], capture_output=True)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", mnt], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
