"""The architecture as an import graph: no cycles inside armcodec/, and nothing the decoder runs
(exact layers and tables, the exact models, coding, the container) imports encoder-only search,
training, the API or the CLI; exact/ imports nothing else of armcodec."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "armcodec"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the armcodec modules it imports (anywhere in it, functions included)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # "from pkg import sub" imports the submodule; "from mod import name" the module
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}

    def visit(n, path):
        state[n] = 1
        for d in graph[n]:
            assert state.get(d) != 1, f"import cycle: {' -> '.join(path + [n, d])}"
            if d not in state:
                visit(d, path + [n])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [])


def closure(graph, start):
    seen, todo = set(), [start]
    while todo:
        for d in graph[todo.pop()]:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def test_the_decoder_never_imports_encoder_training_api_or_cli():
    graph = import_graph()
    decoder = [m for m in graph if m.startswith(("armcodec.exact", "armcodec.coding")) or m.endswith("_exact")
               or m in ("armcodec.container", "armcodec.models.base", "armcodec.models.registry")]
    assert "armcodec.coding.scan" in decoder and "armcodec.models.pixelcnn_exact" in decoder
    for m in decoder:
        bad = {d for d in closure(graph, m)
               if d.startswith(("armcodec.encoder", "armcodec.training")) or d in ("armcodec.api", "armcodec")}
        assert not bad, f"{m} imports {sorted(bad)}"


def test_exact_imports_nothing_else_of_armcodec():
    graph = import_graph()
    for m in graph:
        if m.startswith("armcodec.exact"):
            assert all(d.startswith("armcodec.exact") for d in graph[m]), (m, graph[m])


def test_the_cli_and_benchmarks_stay_thin():
    root = PACKAGE.parent
    # bench, video_bench, load, memory, record, skimage_set, pack_train and __init__; studies go to experiments/
    assert len(list((root / "benchmarks").glob("*.py"))) <= 8
    assert len((root / "README.md").read_bytes()) <= 15000
