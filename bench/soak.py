#!/usr/bin/env python3
"""soak.py: contactd under ten minutes of mixed load, watched every second.

Goal: nothing grows without bound while the server works: resident memory,
open file descriptors and latency stay flat under a steady mix of every
kind of request, over HTTP/1.1 and HTTP/2, for as long as the run lasts.

Method: starts contactd (durability fsync, the default) on a fresh data
directory on 127.0.0.1, preloads --preload contacts through the batch
endpoint, then for --seconds runs at once:
  - HTTP/1.1 clients (keep-alive, python's http.client), each looping over
    a mix: create 30%, edit 20%, delete 10%, get 15%, exact search 15%,
    prefix search 5%, batch create of 1 to 50 contacts 5%;
    once the live contacts pass the preload by 2,000, creates turn into
    deletes, so the live set (and the memory it needs) stays level;
  - h2load over HTTP/2 (prior knowledge) in back-to-back 5-second runs of
    gets and searches drawn from the preloaded contacts;
  - a sampler that reads, each second, the server's resident memory
    (VmRSS, split into RssAnon and RssFile: the second is mostly the mapped
    log, which grows with every write and which the kernel may drop at
    will; a leak shows in the first) and its count of open descriptors from
    /proc, the p99 of the HTTP/1.1 requests completed in that second, and
    from /metrics the memory the engine accounts for (indexes, slot table,
    trash list, idempotency keys). That memory grows by design with every
    contact ever created (a slot each, ids are never reused) and every one
    in the trash (deletes keep a contact 30 days); what a leak would show is
    the anonymous memory beyond it, reported as its own series.
At the end it prints the first, last, min and max of each series and its
least-squares slope per minute over the run (after the first 30 s, which
include warm-up), and writes every sample to --out as CSV.

usage: bench/soak.py --contactd BIN --plugins DIR [--seconds 600]
         [--clients 16] [--preload 100000] [--out soak.csv]
"""
import argparse
import csv
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "crash"))
from srv import Contactd, deadline  # noqa: E402

MIX = [("create", 30), ("edit", 20), ("delete", 10), ("get", 15),
       ("exact", 15), ("prefix", 5), ("batch", 5)]


def body(rng, tag):
    b = {"first_name": rng.choice(["Ana", "Bo", "Chen", "Dora", "Émile"]),
         "last_name": rng.choice(["Smith", "Müller", "Ng", "Okafor"]) + str(rng.randrange(1000)),
         "email": f"{tag}@soak.example", "company": rng.choice(["Acme", "Initech", "Globex"])}
    if rng.random() < 0.3:
        b["notes"] = " ".join(rng.choice(["call", "met", "lead", "renewal"])
                              for _ in range(rng.randrange(1, 40)))
    return b


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.lat = []
        self.count = 0
        self.errors = 0

    def add(self, seconds, ok):
        with self.lock:
            self.lat.append(seconds)
            self.count += 1
            self.errors += 0 if ok else 1

    def take(self):
        with self.lock:
            lat, self.lat = self.lat, []
            return lat


def client(srv, rng, stats, stop, ids, lock, t, cap):
    c = srv.client(timeout=30)
    kinds = [k for k, w in MIX for _ in range(w)]
    n = 0
    while not stop.is_set():
        n += 1
        kind = rng.choice(kinds)
        # The live set stays near its size at the start: past cap, a create
        # becomes a delete, so memory may settle instead of following growth.
        if kind in ("create", "batch") and len(ids) > cap:
            kind = "delete"
        with lock:
            pick_at = rng.randrange(len(ids)) if ids else None
            pick = ids[pick_at] if ids else None
            if kind == "delete" and ids:  # swap-remove: O(1)
                ids[pick_at] = ids[-1]
                ids.pop()
        t0 = time.monotonic()
        try:
            if kind == "create" or pick is None:
                status, data = c.json("POST", "/contacts", body(rng, f"t{t}n{n}"))
                if status == 200:
                    with lock:
                        ids.append(data["id"])
            elif kind == "edit":
                status, _ = c.json("PATCH", f"/contacts/{pick}", {"company": f"Edited {n}"})
                status = 200 if status in (200, 404) else status
            elif kind == "delete":
                status, _, _ = c.request("DELETE", f"/contacts/{pick}")
                status = 200 if status in (200, 404) else status
            elif kind == "get":
                status, _, _ = c.request("GET", f"/contacts/{pick}")
                status = 200 if status in (200, 404) else status
            elif kind == "exact":
                status, _, _ = c.request("GET", f"/contacts?searchby=email&search=t{t}n{rng.randrange(1, n + 1)}@soak.example")
            elif kind == "prefix":
                status, _, _ = c.request("GET", "/contacts?searchby=last_name&match=prefix&search=M&limit=20")
            else:
                items = [body(rng, f"t{t}n{n}b{i}") for i in range(rng.randrange(1, 51))]
                status, data = c.json("POST", "/contacts/batch", {"contacts": items})
                if status == 200:
                    with lock:
                        ids.extend(r["id"] for r in data["results"] if "id" in r)
        except (OSError, http.client.HTTPException):
            status = 0
            c.close()
        stats.add(time.monotonic() - t0, status == 200)


def h2_loop(a, port, key, paths_file, stop, h2stats):
    while not stop.is_set():
        p = subprocess.run(["h2load", "-D", "5", "-t", "1", "-c", "4", "-m", "8",
                            "-H", f"x-api-key: {key}", "-i", paths_file],
                           capture_output=True, text=True)
        for line in p.stdout.splitlines():
            if line.startswith("requests:"):
                h2stats.append(line.strip())


def proc_sample(pid):
    """(VmRSS, RssAnon, RssFile) in KiB and the open descriptors. RssFile
    is mostly the mapped log, whose pages the kernel may drop at will; a
    leak shows in RssAnon."""
    v = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, rest = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                v[k] = int(rest.split()[0])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return v.get("VmRSS", 0), v.get("RssAnon", 0), v.get("RssFile", 0), fds


def engine_bytes(port):
    """The memory the engine accounts for, from /metrics (no key needed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    total = 0
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("contactd_store_index_bytes",
                    "contactd_store_idempotency_bytes"):
            total += int(float(value))
    return total


def p99(xs):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def slope_per_min(ts, ys):
    n = len(ts)
    if n < 2:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    den = sum((t - mt) ** 2 for t in ts)
    return 60 * sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den if den else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--contactd", required=True)
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--preload", type=int, default=100000)
    ap.add_argument("--out", default="soak.csv")
    a = ap.parse_args()
    deadline(a.seconds + 600)
    work = tempfile.mkdtemp(prefix="contactd-soak-")
    try:
        srv = Contactd(a.contactd, a.plugins, os.path.join(work, "data")).start()
        rng = random.Random(7)
        c = srv.client(timeout=60)
        ids = []
        for start in range(0, a.preload, 1000):
            items = [body(rng, f"pre{i}") for i in range(start, min(a.preload, start + 1000))]
            status, data = c.json("POST", "/contacts/batch", {"contacts": items})
            assert status == 200, (status, data)
            ids.extend(r["id"] for r in data["results"] if "id" in r)
        paths_file = os.path.join(work, "paths")
        with open(paths_file, "w") as f:
            for _ in range(20000):
                if rng.random() < 0.5:
                    f.write(f"http://127.0.0.1:{srv.port}/contacts/{rng.choice(ids)}\n")
                else:
                    f.write(f"http://127.0.0.1:{srv.port}/contacts?searchby=email&search=pre{rng.randrange(a.preload)}@soak.example\n")
        print(f"preloaded {len(ids)} contacts; soaking for {a.seconds} s", flush=True)
        stats, stop, lock, h2stats = Stats(), threading.Event(), threading.Lock(), []
        threads = [threading.Thread(target=client, args=(srv, random.Random(t), stats, stop, ids, lock, t, len(ids) + 2000), daemon=True)
                   for t in range(a.clients)]
        threads.append(threading.Thread(target=h2_loop, args=(a, srv.port, srv.key, paths_file, stop, h2stats), daemon=True))
        for th in threads:
            th.start()
        rows = []
        t_start = time.monotonic()
        while time.monotonic() - t_start < a.seconds:
            time.sleep(1)
            rss, anon, filed, fds = proc_sample(srv.pid)
            eng = engine_bytes(srv.port) // 1024
            lat = stats.take()
            with lock:
                live = len(ids)
            rows.append((round(time.monotonic() - t_start, 1), rss, anon, filed, fds,
                         len(lat), round(p99(lat) * 1000, 2), live, eng, anon - eng))
            if len(rows) % 60 == 0:
                print(f"  {rows[-1][0]:.0f} s: rss {rss} KiB (anon {anon}, file {filed}), fds {fds}, "
                      f"{len(lat)} req/s (HTTP/1.1), p99 {rows[-1][6]} ms, {live} live", flush=True)
        stop.set()
        for th in threads:
            th.join(30)
        with open(a.out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t_s", "rss_kib", "rss_anon_kib", "rss_file_kib", "fds",
                        "http1_requests", "http1_p99_ms", "live_contacts",
                        "engine_kib", "anon_beyond_engine_kib"])
            w.writerows(rows)
        steady = [r for r in rows if r[0] >= 30]
        ts = [r[0] for r in steady]
        print(f"\n{stats.count} HTTP/1.1 requests, {stats.errors} failed; "
              f"{len(h2stats)} h2load runs over HTTP/2 (their 'failed' are 404s "
              f"of contacts deleted meanwhile); {len(ids)} live contacts at the end")
        if h2stats:
            print(f"  first h2load run: {h2stats[0]}\n  last h2load run:  {h2stats[-1]}")
        print("| series | first | last | min | max | slope per minute (after 30 s) |")
        print("|---|---|---|---|---|---|")
        for name, i in (("resident memory (KiB)", 1), ("  of it anonymous (KiB)", 2),
                        ("  of it mapped files, the log (KiB)", 3), ("open descriptors", 4),
                        ("HTTP/1.1 requests a second", 5), ("HTTP/1.1 p99 (ms)", 6),
                        ("live contacts", 7),
                        ("engine's accounted memory (KiB)", 8),
                        ("anonymous beyond the engine's (KiB)", 9)):
            ys = [r[i] for r in steady]
            print(f"| {name} | {steady[0][i]} | {steady[-1][i]} | {min(ys)} | {max(ys)} | "
                  f"{slope_per_min(ts, ys):+.3f} |")
        srv.stop()
        return 0 if stats.errors == 0 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
