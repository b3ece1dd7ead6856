"""The shape docs/ARCHITECTURE.md describes, checked from the source (nothing is imported): no import
cycles between the package's modules (imports inside functions count), data flows one way between
the layers, the serving path never imports the offline tools or training, and no module imports
another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "dressfinder"

# Lower layers never import higher ones. A module may import its own layer or any below.
LAYERS = [
    {"errors", "schema", "settings", "extras", "prices", "thresholds"},
    {"images"},
    {"catalog", "index", "encoders", "regions", "boxhead"},
    {"embed", "search", "distributed"},
    {"store"},
    {"backends"},
    {"web", "scrape", "tools", "training"},
    {"cli", "demo", "__init__", "__main__"},
]
SERVING = ("dressfinder.search", "dressfinder.regions", "dressfinder.boxhead", "dressfinder.store", "dressfinder.backends", "dressfinder.web",
           "dressfinder.catalog", "dressfinder.embed", "dressfinder.encoders", "dressfinder.index",
           "dressfinder.thresholds")
OFFLINE = ("dressfinder.tools", "dressfinder.training")
# The one deliberate crossing: ``Store.build(encoder="autoencoder")`` without a model trains the
# seed's autoencoder first (the seed pipeline: train, then encode), importing it when asked.
ALLOWED = {("dressfinder.store", "dressfinder.training.autoencoder")}


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts
        out[".".join(parts)] = (path, ast.parse(path.read_text(encoding="utf-8")))
    return out


def resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def type_checking_lines(tree: ast.Module) -> set[int]:
    out: set[int] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            for m in n.body:
                out.update(range(m.lineno, m.end_lineno + 1))
    return out


def imports(mods) -> list[tuple[str, str, str]]:
    """(importer, imported module, name) for every import of the package's own modules (but those
    for type checkers only, and the version number every module may read)."""
    out = []
    for mod, (path, tree) in mods.items():
        skip = type_checking_lines(tree)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.Import):
                out += [(mod, a.name, "") for a in node.names if a.name.startswith("dressfinder")]
            elif isinstance(node, ast.ImportFrom):
                src = resolve(mod, path.name == "__init__.py", node)
                if not src.startswith("dressfinder"):
                    continue
                for a in node.names:
                    if a.name == "__version__":
                        continue
                    target = f"{src}.{a.name}" if f"{src}.{a.name}" in mods else src
                    out.append((mod, target, "" if target != src else a.name))
    return out


def owner(mod: str, mods) -> str:
    while mod and mod not in mods:
        mod = mod.rpartition(".")[0]
    return mod


def layer(mod: str) -> int:
    top = mod.split(".")[1] if "." in mod else "__init__"
    return next(i for i, names in enumerate(LAYERS) if top in names)


@pytest.fixture(scope="module")
def graph():
    mods = modules()
    edges = {(a, owner(b, mods), name) for a, b, name in imports(mods) if owner(b, mods) != a}
    return mods, edges


def test_every_module_has_a_layer(graph):
    mods, _ = graph
    for mod in mods:
        layer(mod)


def test_no_import_cycles(graph):
    mods, edges = graph
    succ = {m: {b for a, b, _ in edges if a == m} for m in mods}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ[v]:
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
                cycles.append(sorted(comp))

    for m in mods:
        if m not in index:
            visit(m)
    assert cycles == []


def test_data_flows_one_way(graph):
    _, edges = graph
    upward = sorted(f"{a} imports {b}" for a, b, _ in edges
                    if layer(b) > layer(a) and (a, b) not in ALLOWED)
    assert upward == []


def test_serving_never_imports_offline_tools(graph):
    _, edges = graph
    bad = sorted(f"{a} imports {b}" for a, b, _ in edges
                 if a.startswith(SERVING) and b.startswith(OFFLINE) and (a, b) not in ALLOWED)
    assert bad == []


def test_no_private_names_imported_across_modules(graph):
    _, edges = graph
    private = sorted(f"{a} imports {b}.{n}" for a, b, n in edges if n.startswith("_") and not n.startswith("__"))
    assert private == []


def test_the_checks_can_fail():
    """The checks above see what they look for (a made-up cycle, an upward import, a private import)."""
    fake = {"dressfinder.images": (Path("images.py"), ast.parse("from .store import Store\n")),
            "dressfinder.store": (Path("store.py"), ast.parse("from .images import _private\n"))}
    edges = {(a, owner(b, fake), n) for a, b, n in imports(fake)}
    assert ("dressfinder.images", "dressfinder.store", "Store") in edges
    assert ("dressfinder.store", "dressfinder.images", "_private") in edges
    assert layer("dressfinder.store") > layer("dressfinder.images")
