#!/usr/bin/env python3
"""check_calls.py: no call circle between the engine's files.

Goal: engine/README.md's rule that each file calls only files above it in
the module order: no file calls a function of another that (through any
chain) calls back into it.
Method: nm over the engine's static library: each object's defined and
undefined symbols give an edge "a calls b" whenever a uses a symbol b
defines; a depth-first search reports every circle found, with the symbol
on each edge. Exits 1 on a circle, 0 when there is none.

usage: check_calls.py LIBCSENGINE.a
"""
import collections
import os
import subprocess
import sys


def graph(archive):
    out = subprocess.run(["nm", "-A", archive], capture_output=True,
                         text=True, check=True).stdout
    defs, uses = {}, collections.defaultdict(set)
    for line in out.splitlines():
        where, _, rest = line.rpartition(":")
        obj = os.path.basename(where).replace(".c.o", "")
        parts = rest.split()
        if len(parts) == 3 and parts[1] in "TDBR":
            defs[parts[2]] = obj
        elif len(parts) == 2 and parts[0] == "U":
            uses[obj].add(parts[1])
    edges = collections.defaultdict(dict)
    for obj, syms in uses.items():
        for s in syms:
            if s in defs and defs[s] != obj:
                edges[obj][defs[s]] = s
    return edges


def circles(edges):
    state, stack, found = {}, [], []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, {})):
            if state.get(m) == 1:
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)
    return found


def main():
    edges = graph(sys.argv[1])
    found = circles(edges)
    for c in found:
        print("circle: " + " -> ".join(
            f"{a} ({edges[a][b]})" for a, b in zip(c, c[1:])) + f" -> {c[-1]}")
    print(f"{len(edges)} files call others; {len(found)} circles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
