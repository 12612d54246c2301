#!/usr/bin/env python3
"""http_summary.py: the table bench_http.sh prints, from its raw results.

    http_summary.py RESULTS.tsv CREATES.tsv ENV.txt

RESULTS.tsv has one line per measurement: rep, protocol (h1|h2), case,
server (trivial|contactd), requests/s, p50 ms, p99 ms, failed or non-2xx
requests, requests, and the CPU seconds the server used meanwhile. CREATES.tsv has one line per create run: rep, commits,
fsyncs (contactd's /metrics counters, read before and after the run).

Every number shown is a median over the repetitions. A ratio is taken
within each repetition (contactd's rate over the ceiling's rate on the same
protocol, measured minutes apart in the same run) and the median of those
ratios is shown, so that drifts of a shared machine between repetitions
cancel out as far as they can.

A second table puts the servers' CPU time per request side by side
(requests per CPU-second of the server process, user + system, from /proc):
on a machine whose CPUs other work also uses, wall-clock rates move with
that work while the cost of a request moves much less.
"""
import statistics
import sys
from collections import defaultdict

# case, label, target, the ceiling case its ratio is taken to: the trivial
# handler driven by the same client with the same request list (the GET
# lists share one; the query's POST bodies have their own, and over HTTP/2
# their own client, h2_post, since h2load sends one body only).
CASES = [
    ("get", "get by id", 0.80, "ceiling"),
    ("exact", "exact search, 1 result (email)", 0.80, "ceiling"),
    ("query", "query, 1 result (email eq; POST)", 0.80, "ceiling-query"),
    ("search100", "search, 100 results (company)", None, "ceiling"),
    ("create", "durable creates (unique bodies)", None, "ceiling"),
]
CEILINGS = [("ceiling", "ceiling: trivial h2o handler"),
            ("ceiling-query", "ceiling: trivial, POST bodies")]
PROTOCOLS = [("h1", "HTTP/1.1 (wrk -t2 -c64)"),
             ("h2", "HTTP/2 (h2load -t2 -c16 -m16; query: h2_post, same shape)")]


def fmt_rate(v):
    return f"{v:,.0f}"


def fmt_ms(v):
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def main():
    results_path, creates_path, env_path = sys.argv[1:4]
    runs = defaultdict(dict)  # (proto, case, server) -> rep -> row
    for line in open(results_path):
        f = line.rstrip("\n").split("\t")
        if len(f) < 9:
            continue
        rep, proto, case, server = f[0], f[1], f[2], f[3]
        runs[(proto, case, server)][rep] = {
            "rps": float(f[4]), "p50": float(f[5]), "p99": float(f[6]),
            "bad": int(f[7]), "n": int(f[8]),
            "cpu": float(f[9]) if len(f) > 9 and f[9] else None,
        }

    def med(key, field):
        vals = [r[field] for r in runs.get(key, {}).values()]
        return statistics.median(vals) if vals else None

    print("```")
    print(open(env_path).read().rstrip())
    print("```")
    print()
    header = ["protocol", "measurement", "contactd req/s", "p50 ms", "p99 ms",
              "ceiling req/s", "ceiling p50", "ceiling p99", "ratio", "target", "met"]
    rows = []
    problems = []
    for proto, pname in PROTOCOLS:
        if not runs.get((proto, "ceiling", "trivial")):
            continue
        for cname, clabel in CEILINGS:
            ckey = (proto, cname, "trivial")
            if runs.get(ckey):
                rows.append([pname, clabel, "-", "-", "-",
                             fmt_rate(med(ckey, "rps")), fmt_ms(med(ckey, "p50")),
                             fmt_ms(med(ckey, "p99")), "-", "-", "-"])
        for case, label, target, cname in CASES:
            key = (proto, case, "contactd")
            ckey = (proto, cname, "trivial")
            if not runs.get(key) or not runs.get(ckey):
                continue
            c_rps, c50, c99 = med(ckey, "rps"), med(ckey, "p50"), med(ckey, "p99")
            ratios = []
            for rep, r in runs[key].items():
                ceiling = runs[ckey].get(rep)
                if ceiling and ceiling["rps"] > 0:
                    ratios.append(r["rps"] / ceiling["rps"])
            ratio = statistics.median(ratios) if ratios else None
            met = "-"
            if target is not None and ratio is not None:
                met = "yes" if ratio >= target else "no"
            rows.append([pname, label, fmt_rate(med(key, "rps")),
                         fmt_ms(med(key, "p50")), fmt_ms(med(key, "p99")),
                         fmt_rate(c_rps), fmt_ms(c50), fmt_ms(c99),
                         f"{ratio:.0%}" if ratio is not None else "-",
                         f">= {target:.0%}" if target else "-", met])
        for key in [k for k in runs if k[0] == proto]:
            for rep, r in runs[key].items():
                if r["bad"] > 0 or r["n"] == 0:
                    problems.append(f"{proto} {key[1]} on {key[2]}, repetition {rep}: "
                                    f"{r['bad']} failed or non-2xx of {r['n']} requests")

    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")

    # Requests per server CPU-second, and contactd's share of the ceiling's.
    def per_cpu(r):
        return r["n"] / r["cpu"] if r.get("cpu") else None

    cpu_rows = []
    for proto, pname in PROTOCOLS:
        for case, label, target, cname in CASES:
            key = (proto, case, "contactd")
            ckey = (proto, cname, "trivial")
            if not runs.get(key) or not runs.get(ckey):
                continue
            c_vals = [v for v in (per_cpu(r) for r in runs[ckey].values()) if v]
            if not c_vals:
                continue
            c_med = statistics.median(c_vals)
            vals, ratios = [], []
            for rep, r in runs[key].items():
                v = per_cpu(r)
                cv = per_cpu(runs[ckey][rep]) if rep in runs[ckey] else None
                if v:
                    vals.append(v)
                    if cv:
                        ratios.append(v / cv)
            if not vals:
                continue
            m = statistics.median(vals)
            ratio = statistics.median(ratios) if ratios else None
            cpu_rows.append([pname, label, fmt_rate(m), f"{1e6 / m:.1f}",
                             fmt_rate(c_med), f"{1e6 / c_med:.1f}",
                             f"{ratio:.0%}" if ratio is not None else "-"])
    if cpu_rows:
        print()
        print("Server CPU time per request (user + system of the server process, "
              "all its threads):")
        print()
        h2 = ["protocol", "measurement", "contactd req/CPU-s", "contactd us CPU/req",
              "ceiling req/CPU-s", "ceiling us CPU/req", "ratio"]
        w2 = [max(len(h), *(len(r[i]) for r in cpu_rows)) for i, h in enumerate(h2)]
        print("| " + " | ".join(h.ljust(w) for h, w in zip(h2, w2)) + " |")
        print("|" + "|".join("-" * (w + 2) for w in w2) + "|")
        for r in cpu_rows:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(r, w2)) + " |")

    per_fsync = []
    commits = fsyncs = 0
    for line in open(creates_path):
        f = line.split()
        if len(f) == 3 and int(f[2]) > 0:
            per_fsync.append(int(f[1]) / int(f[2]))
            commits += int(f[1])
            fsyncs += int(f[2])
    if per_fsync:
        print()
        print(f"Durable creates: {statistics.median(per_fsync):.1f} contacts per fsync "
              f"(median of the repetitions; {commits:,} commits over {fsyncs:,} fsyncs "
              f"in all, from /metrics).")
    if problems:
        print()
        print("Failed requests (these numbers are suspect):")
        for p in problems:
            print(f"- {p}")


if __name__ == "__main__":
    main()
