"""The command line is a client of the public API only, and its modules import one way."""

from __future__ import annotations

import ast
from pathlib import Path

import roost.cli

CLI = Path(roost.cli.__file__).parent
PUBLIC = ("roost", "roost.resources", "roost.chunker", "roost.testing", "roost.signature")


def imports(path: Path) -> set[str]:
    """Absolute names of everything a CLI module imports (lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.add(node.module or "")
            elif node.level == 1:
                found.update(f"roost.cli.{node.module or alias.name}" for alias in node.names)
            else:
                found.add("roost." * (node.level > 1) + (node.module or ""))
    return found


def test_the_cli_imports_only_the_public_sdk() -> None:
    for path in CLI.glob("*.py"):
        for name in imports(path):
            if name.startswith("roost.") and not name.startswith("roost.cli"):
                assert name.startswith(PUBLIC), f"{path.name} imports {name}"
                assert not any(part.startswith("_") for part in name.split(".")), (
                    f"{path.name} imports {name}"
                )


def test_the_cli_modules_have_no_import_circle() -> None:
    graph = {
        f"roost.cli.{path.stem}": {n for n in imports(path) if n.startswith("roost.cli.")}
        for path in CLI.glob("*.py")
    }

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, " -> ".join((*trail, module))
        for target in graph.get(module, set()):
            visit(target, (*trail, module))

    for module in graph:
        visit(module, ())
