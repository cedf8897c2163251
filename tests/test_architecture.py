"""The package's layers: imports point down only (core ← training, inference ← web ← cli), training and
inference never import each other, no module imports itself back through others (no cycles), and
imports inside functions are kept for optional heavy dependencies, each with a comment saying so."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "texture_nets"

# A module may import modules of its own layer or of a lower one; training and inference are peers
# that never import each other. The package's __init__ / __main__ sit above everything (the public API).
LAYERS = {"core": 0, "training": 1, "inference": 1, "web": 2, "cli": 3, "": 4}
PEERS_APART = {("training", "inference"), ("inference", "training")}
# Optional or heavy third-party packages that a function may import on first use (with a comment).
LAZY_ALLOWED = {"onnxruntime", "onnx", "onnxscript", "av", "cv2", "visdom", "fastapi", "uvicorn", "starlette", "anyio",
                "tqdm", "torchvision", "pycocotools", "scipy", "psutil", "texture_nets.web"}


def module_name(path: Path) -> str:
    parts = ["texture_nets", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> list[tuple[str, ast.AST, bool]]:
    """(imported texture_nets module, node, inside a function?) for every import in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inner = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (use texture_nets.… absolute imports)"
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                       for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        found += [(t, node, id(node) in inner) for t in dict.fromkeys(targets)]
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else ""


def graph() -> dict[str, set[str]]:
    known = set(modules())
    return {name: {t for t, _, _ in imports_of(path, known) if t in known and t != name}
            for name, path in modules().items()}


def test_every_module_belongs_to_a_layer():
    strays = [name for name in modules() if layer(name) not in LAYERS]
    assert not strays, f"modules outside core/, training/, inference/, cli/, web/: {strays}"


def test_imports_point_down_the_layers():
    wrong = []
    for importer, targets in graph().items():
        for target in targets:
            a, b = layer(importer), layer(target)
            if LAYERS[b] > LAYERS[a] or (a, b) in PEERS_APART:
                wrong.append(f"{importer} imports {target}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_import_cycles():
    edges, state, cycles = graph(), {}, []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(" → ".join(trail[trail.index(nxt):] + [node, nxt]) if nxt in trail
                              else f"{node} → {nxt}")
            elif nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_imports_inside_functions_are_optional_dependencies_with_a_comment():
    known = set(modules())
    wrong = []
    for name, path in modules().items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for target, node, inner in imports_of(path, known):
            if not inner:
                continue
            root = target if target.startswith("texture_nets") else target.split(".")[0]
            allowed = any(root == a or root.startswith(a + ".") for a in LAZY_ALLOWED)
            commented = any("#" in lines[i - 1] for i in range(node.lineno, node.end_lineno + 1))
            if not (allowed and commented):
                wrong.append(f"{name}:{node.lineno} imports {target} inside a function"
                             + ("" if allowed else " (not an optional heavy dependency)")
                             + ("" if commented else " without a comment saying why"))
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", ["stylize", "stylize_video", "TextureNetwork", "ResidualNetwork",
                                  "load_checkpoint", "save_checkpoint", "load_generator", "run_training",
                                  "TextureNetsError", "optimize"])
def test_public_api_is_importable_from_the_package(name):
    import texture_nets
    assert getattr(texture_nets, name) is not None
    assert name in texture_nets.__all__
