#!/usr/bin/env python3
"""scale_summary.py: bench_scale.sh's tables, from the outputs it kept.

    scale_summary.py OUTDIR

OUTDIR holds engine-N.md (bench_engine --only engine --count N) and
http-N.md (bench_http.sh --count N) for each scale N that was run. Both
programs print Markdown tables; this script reads every table row back,
so it depends only on the column names ("metric" and "contactd" for
bench_engine; "protocol", "measurement", "contactd req/s", "ratio" for
bench_http.sh), not on the order of the rows.

It prints one table per scale (the figures as the programs printed them),
then one table of ratios: each rate at each scale over the same rate at
the reference scale (1,000,000 when it was run, else the middle one),
with DESIGN.md's targets for the largest scale (get, exact search and
query at least 70% of their 1M rates), then the open, replay and memory
figures against their targets.
"""
import os
import re
import sys

# (what the row is called here, which program, the row's key, target)
RATES = [
    ("engine: get by id, 1 thread", "engine", "get by id, 1 thread", 0.70),
    ("engine: get by id, 2 threads", "engine", "get by id, 2 threads", 0.70),
    ("engine: exact email, 1 result", "engine", "exact email (1 result)", 0.70),
    ("engine: exact company, rarest", "engine", "exact company, rarest", 0.70),
    ("engine: prefix last_name", "engine", "prefix last_name, 3 letters", None),
    ("engine: words notes", "engine", "words notes, 2 words", None),
    ("engine: query, company and job_title", "engine",
     "query: company eq and job_title eq", 0.70),
    ("engine: query, q of two names", "engine", "query: q, first and last name", 0.70),
    ("engine: durable creates, 64 writers", "engine", "durable creates, 64 writers", None),
]
HTTP_CASES = ["get by id", "exact search, 1 result", "query, 1 result"]
# (row, key, target per scale in seconds or bytes: {count: limit})
LIMITS = [
    ("open from snapshot", "open from snapshot + first get",
     {1000000: 0.5, 10000000: 3.0}),
    ("open by full replay", "open by full replay + first get",
     {1000000: 3.0, 10000000: 30.0}),
    ("index bytes/contact", "index bytes/contact", {1000000: 160}),
    ("resident bytes/contact after open", "resident bytes/contact after open", {}),
    ("disk bytes/contact", "disk bytes/contact", {}),
]


def tables(path):
    """Every Markdown table row of a file, as a dict of column -> cell."""
    rows, header = [], None
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = cells
        elif not all(re.fullmatch(r":?-+:?", c) for c in cells):
            rows.append(dict(zip(header, cells)))
    return rows


def key_of(name):
    """A row's name without the parts that change with the scale."""
    return re.sub(r"\s*\(mean total [^)]*\)", "", name).strip()


def value_of(cell):
    """A printed figure as a number in base units (/s, s, B), or None."""
    m = re.match(r"^([0-9][0-9,]*(?:\.[0-9]+)?)\s*(ms|s|B|/s|x)?", cell or "")
    if not m:
        return None
    v = float(m.group(1).replace(",", ""))
    return v / 1000 if m.group(2) == "ms" else v


def load(outdir):
    scales = {}
    for name in os.listdir(outdir):
        m = re.fullmatch(r"(engine|http)-([0-9]+)\.md", name)
        if not m:
            continue
        kind, count = m.group(1), int(m.group(2))
        got = scales.setdefault(count, {"engine": {}, "http": {}})
        for row in tables(os.path.join(outdir, name)):
            if kind == "engine" and "metric" in row and "contactd" in row:
                got["engine"].setdefault(key_of(row["metric"]), row["contactd"])
            elif kind == "http" and "contactd req/s" in row and "measurement" in row:
                proto = "h2" if row.get("protocol", "").startswith("HTTP/2") else "h1"
                got["http"][(proto, row["measurement"])] = row
    return scales


def http_row(got, proto, case):
    for (p, measurement), row in got["http"].items():
        if p == proto and measurement.startswith(case):
            return row
    return None


def main():
    outdir = sys.argv[1]
    scales = load(outdir)
    if not scales:
        sys.exit(f"scale_summary.py: no engine-N.md or http-N.md in {outdir}")
    counts = sorted(scales)
    ref = 1000000 if 1000000 in scales else counts[len(counts) // 2]

    for count in counts:
        got = scales[count]
        print(f"\n### {count:,} contacts\n")
        print("| measurement | contactd |")
        print("|:--|--:|")
        for label, _, key, _ in RATES:
            if key in got["engine"]:
                print(f"| {label} | {got['engine'][key]} |")
        for label, key, _ in LIMITS:
            if key in got["engine"]:
                print(f"| {label} | {got['engine'][key]} |")
        for proto in ("h1", "h2"):
            for case in HTTP_CASES:
                row = http_row(got, proto, case)
                if row:
                    name = "HTTP/1.1" if proto == "h1" else "HTTP/2"
                    print(f"| {name}: {case} | {row['contactd req/s']} req/s "
                          f"(p99 {row.get('p99 ms', '-')} ms; {row.get('ratio', '-')} "
                          "of the trivial handler) |")

    print(f"\n### Each rate over its rate at {ref:,} contacts\n")
    print("| measurement | " + " | ".join(f"{c:,}" for c in counts) + " | target at the largest | met |")
    print("|:--|" + "--:|" * len(counts) + "--:|--:|")

    def ratio_row(label, values, target):
        base = values.get(ref)
        cells, last = [], None
        for c in counts:
            v = values.get(c)
            last = v / base if v is not None and base else None
            cells.append(f"{last:.2f}" if last is not None else "-")
        judged = target is not None and last is not None and counts[-1] > ref
        met = ("yes" if last >= target else "NO") if judged else "-"
        tcell = f">= {target:.2f}" if target is not None else "-"
        print(f"| {label} | " + " | ".join(cells) + f" | {tcell} | {met} |")

    for label, _, key, target in RATES:
        ratio_row(label, {c: value_of(scales[c]["engine"].get(key)) for c in counts}, target)
    for proto in ("h1", "h2"):
        for case in HTTP_CASES:
            values = {}
            for c in counts:
                row = http_row(scales[c], proto, case)
                values[c] = value_of(row["contactd req/s"]) if row else None
            if any(v is not None for v in values.values()):
                name = "HTTP/1.1" if proto == "h1" else "HTTP/2"
                ratio_row(f"{name}: {case}", values, 0.70)

    print("\n### Opens and memory against their targets\n")
    print("| measurement | contacts | contactd | target | met |")
    print("|:--|--:|--:|--:|--:|")
    for label, key, limits in LIMITS:
        for c in counts:
            cell = scales[c]["engine"].get(key)
            if cell is None:
                continue
            limit = limits.get(c)
            v = value_of(cell)
            if limit is None or v is None:
                print(f"| {label} | {c:,} | {cell} | - | - |")
                continue
            unit = " B" if "bytes" in label else " s"
            print(f"| {label} | {c:,} | {cell} | <= {limit:g}{unit} | "
                  f"{'yes' if v <= limit else 'NO'} |")


if __name__ == "__main__":
    main()
