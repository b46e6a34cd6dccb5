#!/usr/bin/env python3
"""berthd's module graph: which file refers to which (through `crate::`, `super::`
and `self::` paths), and any cycles. Run from the repository; exits 1 on a cycle.
    scripts/modgraph.py [--edges]
"""
import os, re, sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "berthd", "src")


def modules():
    out = {}
    for dp, _, fs in os.walk(SRC):
        for f in fs:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dp, f), SRC)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel == ["main"]:
                rel = []
            out["::".join(rel)] = os.path.join(dp, f)
    return out


def strip_tests(text):
    i = text.find("#[cfg(test)]\nmod tests")
    return text if i < 0 else text[:i]


def resolve(mods, base, path):
    """The longest known module that `path` (a list of segments from `base`) names."""
    parts = base + path
    for n in range(len(parts), -1, -1):
        cand = "::".join(parts[:n])
        if cand in mods:
            return cand
    return None


def main():
    mods = modules()
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        text = strip_tests(open(f).read())
        me = m.split("::") if m else []
        # `use a::{b, c::d}` groups are expanded first.
        def expand(mt):
            prefix = mt.group(1)
            return " ".join(prefix + i.strip() for i in mt.group(2).split(",") if i.strip())
        text = re.sub(r"((?:crate|super|self)(?:::\w+)*::)\{([^{}]*)\}", expand, text)
        for mt in re.finditer(r"\b(crate|super|self)((?:::\w+)+)", text):
            head, rest = mt.group(1), mt.group(2).split("::")[1:]
            if head == "crate":
                base = []
            elif head == "super":
                # A file's `super` is its parent module.
                base = me[:-1] if not f.endswith("mod.rs") else me[:-1]
            else:
                base = me
            tgt = resolve(mods, base, rest)
            if tgt is not None and tgt != m and tgt != "":
                edges[m].add(tgt)
        # Bare paths to a child module (`child::Item`); `mod x;` declarations
        # themselves are not dependencies.
        children = {c.split("::")[-1] for c in mods if c.startswith(m + "::" if m else "") and c.count("::") == (m.count("::") + 1 if m else 0) and c != m}
        body = re.sub(r"(?m)^\s*(pub(\([a-z]+\))? )?mod \w+;", "", text)
        for mt in re.finditer(r"(?<![:\w])(\w+)::", body):
            if mt.group(1) in children:
                edges[m].add((m + "::" if m else "") + mt.group(1))
    if "--edges" in sys.argv:
        for m in sorted(edges):
            print(f"{m or '(main)'} -> {', '.join(sorted(edges[m]))}")
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    for c in sccs:
        print("cycle:", " <-> ".join(c))
    print(f"{len(mods)} modules, {sum(len(e) for e in edges.values())} edges, {len(sccs)} cycles")
    return 1 if sccs else 0


sys.exit(main())
