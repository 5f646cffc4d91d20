"""The package's architecture (issue #21): the folder tree shows the layers, imports only go down, there is no import
circle, no module is large, and `import also` stays cheap. Every import is counted, also those inside functions."""
import ast, subprocess, sys
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parents[1] / "also"
# the layers, bottom up: a module may import from its own layer and the ones before it, never from a later one
LAYERS = ("core", "bandits", "llm", "sotopia", "worlds", "run", "report", "cli")
MAX_LINES = 420


def module_of(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _is_module(name: str) -> bool:
    p = PKG.parent / Path(*name.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def imports_of(path: Path, source: str | None = None, me: str | None = None) -> set[str]:
    "The `also` modules a file imports anywhere in it (top level or inside functions), relative imports resolved."
    me = me or module_of(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(source if source is not None else path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "also"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else: mod = node.module or ""
            if mod.split(".")[0] != "also": continue
            for a in node.names:                       # `from also.report import metrics` imports a module
                out.add(f"{mod}.{a.name}" if _is_module(f"{mod}.{a.name}") else mod)
    return {m for m in out if m != me}


def import_graph() -> dict[str, set[str]]:
    return {module_of(p): imports_of(p) for p in sorted(PKG.rglob("*.py")) if p.name != "_modidx.py"}


def layer(mod: str) -> int:
    "0 for `also` itself and `also.core`; else the index of its first part below `also`."
    parts = mod.split(".")
    return 0 if len(parts) == 1 else LAYERS.index(parts[1])


def upward(graph) -> list[tuple[str, str]]:
    return sorted((m, t) for m, ts in graph.items() for t in ts if layer(t) > layer(m))


def find_cycle(graph) -> list[str] | None:
    "One import circle as a list of modules, or None."
    state, stack = {}, []
    def visit(m):
        state[m] = 1; stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1: return stack[stack.index(t):] + [t]
            if state.get(t) is None and (c := visit(t)): return c
        state[m] = 2; stack.pop()
        return None
    for m in sorted(graph):
        if state.get(m) is None and (c := visit(m)): return c
    return None


def test_every_module_sits_in_a_layer():
    g = import_graph()
    assert {m.split(".")[1] for m in g if m.count(".") >= 1} <= set(LAYERS)
    assert {"also.llm.client", "also.sotopia.episode", "also.run.batch", "also.report.metrics", "also.worlds.planted",
            "also.bandits.also"} <= set(g)


def test_imports_only_go_down():
    assert upward(import_graph()) == []


def test_no_import_circle():
    assert find_cycle(import_graph()) is None


def test_the_checks_can_fail():
    "Break the graph on purpose: an upward import and a circle are both caught."
    g = import_graph()
    assert ("also.llm.client", "also.run.batch") in upward({**g, "also.llm.client": g["also.llm.client"] | {"also.run.batch"}})
    bad = {**g, "also.llm.registry": g["also.llm.registry"] | {"also.llm.scripted"}}     # the circle #21 removed
    cyc = find_cycle(bad)
    assert cyc is not None and "also.llm.registry" in cyc and "also.llm.scripted" in cyc


def test_imports_inside_functions_count():
    src = "import json\nfrom ..core import ConfigError\n\ndef f():\n    from ..llm.client import LLMClient\n    import also.report.metrics\n"
    got = imports_of(PKG / "llm" / "x.py", src, "also.llm.x")
    assert got == {"also.core", "also.llm.client", "also.report.metrics"}
    assert upward({"also.llm.x": got}) == [("also.llm.x", "also.report.metrics")]


def test_no_large_module():
    big = {module_of(p): n for p in PKG.rglob("*.py") if p.name != "_modidx.py"
           and (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}


def test_import_also_is_cheap():
    "Importing the package and its layers' packages loads neither litellm nor torch (nor sotopia)."
    code = ("import sys, also, also.core, also.bandits, also.llm, also.sotopia, also.worlds, also.run, also.report, also.llm.spec;"
            "heavy = sorted({'litellm', 'torch', 'sotopia'} & set(sys.modules)); print(heavy); assert not heavy, heavy")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
