#!/usr/bin/env python3
"""Fail when modules inside one crate import each other in a circle.

Usage: scripts/acyclic.py [CRATE_DIR ...]   (default: every workspace member)
       scripts/acyclic.py --self-test

A module is one source file (`src/a/b.rs` or `src/a/b/mod.rs` is `a::b`).
An edge A -> B means a path in A names B (`use crate::b::X`, an inline
`crate::b::f()`, `super::X`). A parent that declares `mod child` does not
count as using it, nor one that re-exports its items (`pub use
child::X`): that is the parent's face. Everything else does. Test modules at the end of a file
(`#[cfg(test)] mod tests { .. }`) are skipped: they sit below their file.

Why a script and not `cargo modules dependencies --acyclic`: that tool
builds rust-analyzer's crates (about ten minutes on two cores, every cold
CI run) to answer a question these few hundred lines of paths answer in
well under a second. It reads `use` trees and inline paths, which is how
this workspace names its modules; a macro that builds a path from tokens
would escape it.
"""
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def modules(src: Path):
    """Map module path (tuple) -> file for every .rs file under src."""
    out = {}
    for path in src.rglob("*.rs"):
        rel = path.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts in (["lib"], ["main"]):
            parts = []
        elif parts[-1] == "mod":
            parts = parts[:-1]
        elif len(parts) == 1 and parts[0] in ("main",):
            parts = []
        if path.parent.name == "bin" or parts[:1] == ["bin"]:
            continue
        out.setdefault(tuple(parts), path)
    return out


def strip(text: str) -> str:
    """Blank out comments, strings and chars; cut the trailing test module."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif (m := re.compile(r'b?r(#*)"').match(text, i)) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find('"' + m.group(1), m.end())
            i = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and (m := re.compile(r"'(?:\\.[^']*|[^\\'])'").match(text, i)):
            i = m.end()
            out.append("' '")
        else:
            out.append(c)
            i += 1
    text = "".join(out)
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    if m:
        text = text[: m.start()]
    return text


def use_paths(tree: str, prefix=""):
    """Expand a use tree like `crate::{a::b, c::{d, e}}` into full paths."""
    tree = tree.strip()
    depth, i = 0, 0
    brace = tree.find("{")
    if brace < 0:
        yield (prefix + tree).split(" as ")[0].strip()
        return
    head = tree[:brace]
    body = tree[brace + 1 : tree.rfind("}")]
    parts, cur = [], ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for p in parts:
        if p.strip():
            yield from use_paths(p, prefix + head)


def resolve(path: str, here: tuple, known: dict):
    segs = [s for s in path.replace(" ", "").split("::") if s]
    if not segs:
        return None
    if segs[0] == "crate":
        base, rest = (), segs[1:]
    elif segs[0] in ("super", "self"):
        base = here
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
        rest = segs
    else:
        # A path relative to the current module: `child::x` where `child` is
        # a submodule declared here.
        base, rest = here, segs
        if not rest or (here + (rest[0],)) not in known:
            return None
    best = base if base in known else None
    cur = base
    for s in rest:
        cur = cur + (s,)
        if cur in known:
            best = cur
        else:
            break
    return best


def graph(crate: Path):
    src = crate / "src"
    known = modules(src)
    edges = {m: set() for m in known}
    for mod, path in known.items():
        text = strip(path.read_text())
        found = []
        for m in re.finditer(r"(\bpub(?:\([^)]*\))?\s+)?\buse\s+([^;]+);", text):
            for path in use_paths(m.group(2)):
                target = resolve(path, mod, known)
                # A module re-exporting its own submodules' items shows its
                # face; only a use of something outside it can close a circle.
                if m.group(1) and target is not None and target[: len(mod)] == mod:
                    continue
                found.append(path)
        text = re.sub(r"(\bpub(?:\([^)]*\))?\s+)?\buse\s+[^;]+;", "", text)
        for m in re.finditer(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)", text):
            found.append(m.group(1))
        for p in found:
            target = resolve(p, mod, known)
            if target is not None and target != mod:
                edges[mod].add(target)
    return edges


def cycles(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

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
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def name(m):
    return "crate" if not m else "::".join(m)


def self_test():
    """The checker finds a circle it should, and none where there is none."""
    import tempfile

    files = {
        "lib.rs": "mod a;\nmod b;\npub mod c;\npub use c::Face;\n",
        "a.rs": "use crate::b::f;\n/// crate::c in a comment\npub fn g() { f() }\n",
        "b.rs": 'pub fn f() { let _ = "crate::a::g"; }\n',
        "c/mod.rs": "mod d;\npub use d::Face;\n",
        "c/d.rs": "pub struct Face;\nfn h() { super::super::b::f() }\n"
        "#[cfg(test)]\nmod tests { use crate::a::g; }\n",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            path = Path(tmp, "src", name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert cycles(graph(Path(tmp))) == [], graph(Path(tmp))
        Path(tmp, "src", "b.rs").write_text("pub fn f() { crate::a::g() }\n")
        found = cycles(graph(Path(tmp)))
        assert [sorted(c) for c in found] == [[("a",), ("b",)]], found


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        print("acyclic.py finds circles and only circles")
        return
    crates = [Path(a) for a in sys.argv[1:]]
    if not crates:
        crates = sorted(
            p.parent
            for p in [*ROOT.glob("*/Cargo.toml"), *ROOT.glob("*/*/Cargo.toml")]
            if (p.parent / "src").is_dir()
        )
    bad = 0
    for crate in crates:
        edges = graph(crate)
        for comp in cycles(edges):
            bad += 1
            mods = sorted(comp)
            print(f"{crate.name}: import circle among {', '.join(name(m) for m in mods)}")
            for m in mods:
                for t in sorted(edges[m]):
                    if t in comp:
                        print(f"    {name(m)} -> {name(t)}")
    if bad:
        sys.exit(1)
    print(f"no import circles in {len(crates)} crates")


if __name__ == "__main__":
    main()
