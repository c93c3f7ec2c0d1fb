import ast
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures import REPO_ROOT

ROOT = REPO_ROOT


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo", "--steps", "0"], "--steps must be >= 1"),
        (["demo", "--lr", "-1"], "--lr must be positive"),
        (["demo", "--frames", "8"], "--frames must be >= 16"),
        (["demo", "--keyword-speakers", "2"], "--keyword-speakers must be >= 3"),
        (["demo", "--batch-size", "many"], "invalid int value"),
        (["pretend"], "invalid choice"),
    ],
)
def test_bad_arguments_fail_before_any_work(args, message, capsys):
    from pipelines.cli import main

    with pytest.raises(SystemExit) as exit_info:  # in this process: a `python -m pipelines` start costs seconds
        main(args)
    printed = capsys.readouterr()
    assert exit_info.value.code not in (0, None)
    assert message in printed.err + str(exit_info.value.code)  # argparse prints; a SystemExit message goes to stderr at exit
    assert "[demo 1/6]" not in printed.out


# The library's one allowed MLflow import: lazy, inside the function that downloads MLflow URIs
# (mlflow is an optional dependency of mast_core). Ray is never imported.
def library_imports(source: Path) -> list[tuple[str | None, str]]:
    """(enclosing function or None at module level, imported module) for every import in ``source``."""
    found = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Import):
                found.extend((function, alias.name) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((function, child.module))
            visit(child, function)

    visit(ast.parse(source.read_text(), filename=str(source)), None)
    return found


def test_library_has_no_ray_or_mlflow_imports():
    code = "import sys, mast_core, mast_core.hear, mast_core.export; print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'mlflow')))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    # Not even lazily: remote stores reach the library only through registered URI resolvers,
    # and the library never imports the recipes.
    found = [
        (source.name, function, module)
        for source in sorted((ROOT / "mast_core").glob("*.py"))
        for function, module in library_imports(source)
        if module.split(".")[0] in ("ray", "mlflow", "pipelines")
    ]
    assert found == []


def test_import_scan_sees_nested_and_module_level_imports(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text("import os\nif True:\n    import ray.data\ndef f():\n    from mlflow import artifacts\n    return artifacts\n")
    assert library_imports(source) == [(None, "os"), (None, "ray.data"), ("f", "mlflow")]
