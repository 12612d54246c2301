"""bench_standby.py: what a warm standby costs and how fast it takes over
(driven by bench_standby.sh; python3 stdlib and wrk).

Creates: durable creates (POST /contacts, --durability fsync) from the
same wrk (2 threads, --conns connections, --seconds each) against a
primary alone, a primary with a standby under --standby-ack async, and
one under --standby-ack required, both servers on this machine; each rep
runs the three cases one after the other on fresh data directories (the
order turned by one each rep), and
the medians over --reps are printed (rate, p50, p99).

Failover: a primary and a standby (required) under 32 writers; the
primary is killed with -9; reported are detection (kill to the standby's
stats saying its stream is down), promotion (the POST /admin/promote
call) and the first successful write on the promoted standby, and the
whole, medians over --failovers runs.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cluster"))
from cluster_lib import Contactd, Pair, Writers, ctl, tmpdir, wait_for  # noqa: E402


def wrk(args, srv, tag):
    p = subprocess.run(
        ["wrk", "-t2", f"-c{args.conns}", f"-d{args.seconds}s", "--latency",
         "-s", os.path.join(HERE, "wrk", "creates.lua"),
         f"http://127.0.0.1:{srv.port}/contacts", "--", srv.key, tag],
        capture_output=True, text=True, timeout=args.seconds + 60)
    out = p.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(name):
        m = re.search(rf"\s{name}%\s+([\d.]+)(us|ms|s)", out)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, pct("50"), pct("99"), int(non2xx.group(1)) if non2xx else 0


def one_case(args, work, case, rep):
    if case == "none":
        d = os.path.join(work, f"none-{rep}")
        srv = Contactd(args.contactd, args.plugins, d).start()
        try:
            return wrk(args, srv, f"none{rep}")
        finally:
            srv.kill()
    pair = Pair(args, work, f"{case}-{rep}", ack=case, timeout_ms=5000).make()
    try:
        return wrk(args, pair.primary, f"{case}{rep}")
    finally:
        pair.stop()


def failover(args, work, n):
    pair = Pair(args, work, f"fo-{n}", ack="required", timeout_ms=2000).make()
    try:
        p, s = pair.primary, pair.standby
        w = Writers(p, 32, f"fo{n}").start()
        time.sleep(1.0)
        ac = pair.admin_client(s)
        p.kill()
        t0 = time.monotonic()

        def down():
            st, _, b = ac.request("GET", "/admin/stats")
            return not json.loads(b)["replication"]["following"]["connected"]
        wait_for("the standby to notice", down, 10, step=0.002)
        t1 = time.monotonic()
        w.stop()
        st, _, b = ac.request("POST", "/admin/promote")
        assert st == 200, b
        t2 = time.monotonic()
        c = s.client()
        wait_for("a write", lambda: c.request(
            "POST", "/contacts", '{"first_name": "F", "email": "f%d@x.example"}'
            % n, headers={"content-type": "application/json"})[0] == 200,
            10, step=0.002)
        t3 = time.monotonic()
        return ((t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000,
                (t3 - t0) * 1000)
    finally:
        pair.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--contactd", required=True)
    ap.add_argument("--contactctl", required=True)
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--failovers", type=int, default=5)
    args = ap.parse_args()
    work = tmpdir(args)
    rows = {c: [] for c in ("none", "async", "required")}
    try:
        cases = list(rows)
        for rep in range(args.reps):
            # The order turns each rep, so no case always runs first.
            for case in cases[rep % 3:] + cases[:rep % 3]:
                r = one_case(args, work, case, rep)
                rows[case].append(r)
                print(f"rep {rep} {case:8s}: {r[0]:8.0f} creates/s  p50 "
                      f"{r[1]:6.2f} ms  p99 {r[2]:6.2f} ms  non-2xx {r[3]}",
                      flush=True)
        print(f"\nmedians over {args.reps} reps, {args.conns} connections, "
              f"{args.seconds} s each:")
        print("| case | creates/s | p50 ms | p99 ms |")
        print("|---|---|---|---|")
        for case, rs in rows.items():
            print(f"| {case} | {statistics.median(r[0] for r in rs):.0f} | "
                  f"{statistics.median(r[1] for r in rs):.2f} | "
                  f"{statistics.median(r[2] for r in rs):.2f} |")
        fo = [failover(args, work, n) for n in range(args.failovers)]
        for f in fo:
            print("failover: detection %.1f ms, promotion %.1f ms, first "
                  "write %.1f ms, total %.1f ms" % f)
        print(f"\nfailover, medians over {args.failovers} runs:")
        print("| detection ms | promotion ms | first write ms | total ms |")
        print("|---|---|---|---|")
        print("| " + " | ".join("%.1f" % statistics.median(f[i] for f in fo)
                                for i in range(4)) + " |")
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
