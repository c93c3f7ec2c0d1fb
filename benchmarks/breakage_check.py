"""Break the code on purpose, one named breakage at a time, and check that the guarding tests fail.

Each breakage is a small patch (file, exact old snippet, new snippet) applied to a temporary copy
of the repository (the files git tracks plus untracked, not ignored ones, i.e. the working tree as
it is), then the tests that guard the feature run there with ``pytest -x``. A breakage is
*caught* when pytest reports a failing test (exit status 1); anything else (the tests pass, no
tests collected, a collection error) is *missed*. A snippet that is no longer in its file stops the
script at once: the code moved, and the entry must be rewritten, not skipped.

The copy's ``mast_core`` and ``pipelines`` are the ones imported (``PYTHONPATH`` is set to the copy,
which shadows the editable install of the main checkout; checked before any breakage runs).

Slow (several minutes: the guarding tests include Ray Tune sweeps and Ray Train runs), so it runs
outside the normal suite::

    .venv/bin/python benchmarks/breakage_check.py                 # every breakage, Markdown table
    .venv/bin/python benchmarks/breakage_check.py --list          # names only
    .venv/bin/python benchmarks/breakage_check.py --check         # every snippet still in place? (seconds)
    .venv/bin/python benchmarks/breakage_check.py --only ast-positions-beyond-table-zero
    .venv/bin/python benchmarks/breakage_check.py --baseline      # also run each test set unbroken first

The exit status is non-zero if any breakage is missed (or a baseline fails).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


from breakages import BREAKAGES, Breakage  # noqa: E402  (benchmarks/ is the script's folder)


def source_files() -> list[str]:
    """The working tree as git sees it: tracked files plus untracked ones that are not ignored."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    return sorted({name for name in listed if name and (REPO / name).is_file()})


def make_copy(target: Path) -> None:
    for name in source_files():
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, destination)


def python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.is_file() else sys.executable


def environment(copy: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("RAY_ADDRESS", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(copy)  # shadows the editable install that points at the main checkout
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a patched then restored file is always recompiled
    return env


def check_imports(copy: Path) -> None:
    code = "import mast_core, pipelines, fixtures; print(mast_core.__file__); print(pipelines.__file__); print(fixtures.__file__)"
    result = subprocess.run(
        [python(), "-c", code],
        cwd=copy,
        env={**environment(copy), "PYTHONPATH": f"{copy}:{copy / 'tests'}"},
        capture_output=True,
        text=True,
        check=True,
    )
    paths = [Path(line).resolve() for line in result.stdout.split()]
    if not all(path.is_relative_to(copy.resolve()) for path in paths):
        raise SystemExit(f"the copy's packages are not the ones imported: {paths} (copy at {copy})")


def apply(copy: Path, breakage: Breakage) -> dict[Path, str]:
    """Patch the copy; returns the original text of each touched file. Fails on a missing snippet."""
    originals: dict[Path, str] = {}
    for edit in breakage.edits:
        path = copy / edit.file
        text = path.read_text()
        originals.setdefault(path, text)
        count = text.count(edit.old)
        if count != 1:
            restore(originals)
            raise SystemExit(
                f"breakage {breakage.name}: the snippet to replace occurs {count} times in {edit.file} "
                f"(expected once; the code moved: update the entry)\n--- snippet ---\n{edit.old}"
            )
        patched = text.replace(edit.old, edit.new)
        try:
            compile(patched, str(path), "exec")  # a breakage must break behaviour, not the syntax
        except SyntaxError as error:
            restore(originals)
            raise SystemExit(f"breakage {breakage.name}: the patched {edit.file} does not compile ({error})") from error
        path.write_text(patched)
    return originals


def restore(originals: dict[Path, str]) -> None:
    for path, text in originals.items():
        path.write_text(text)


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, float, str]:
    command = [
        python(),
        "-m",
        "pytest",
        "-q",
        "-n",
        "0",
        "-x",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore",
        "--tb=short",
        "--show-capture=no",
        *tests,
    ]
    started = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=copy, env=environment(copy), capture_output=True, text=True, timeout=timeout)
        status, output = result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired as expired:
        status, output = -1, f"timed out after {timeout:.0f} s\n{expired.stdout or ''}"
    return status, time.perf_counter() - started, output


def first_failure(output: str) -> str:
    match = re.search(r"^FAILED (\S+)", output, re.MULTILINE)
    if not match:
        return ""
    return match.group(1).split("/")[-1]


def failure_reason(output: str) -> str:
    """The first assertion/error line of pytest's report (``E   ...``)."""
    match = re.search(r"^E +(.+)$", output, re.MULTILINE)
    return match.group(1).strip()[:200] if match else ""


def short(tests: tuple[str, ...]) -> str:
    return "<br>".join(test.replace("tests/", "") for test in tests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this breakage (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the breakages and exit")
    parser.add_argument("--check", action="store_true", help="only check that every snippet is still in place (fast)")
    parser.add_argument("--baseline", action="store_true", help="run each guarding test set on the unbroken copy first")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per pytest run (default 1200)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    parser.add_argument("--verbose", action="store_true", help="print pytest's output tail for every run")
    args = parser.parse_args(argv)

    names = {breakage.name for breakage in BREAKAGES}
    if args.list:
        for breakage in BREAKAGES:
            print(f"{breakage.name}: {breakage.what}")
        return 0
    unknown = sorted(set(args.only or ()) - names)
    if unknown:
        parser.error(f"unknown breakage(s) {unknown}; known: {', '.join(sorted(names))}")
    chosen = [breakage for breakage in BREAKAGES if not args.only or breakage.name in args.only]

    workdir = Path(tempfile.mkdtemp(prefix="mast-breakage-"))
    copy = workdir / "repo"
    try:
        make_copy(copy)
        check_imports(copy)
        # every snippet must still be in place before anything slow runs
        for breakage in chosen:
            restore(apply(copy, breakage))
        print(f"[breakage] {len(chosen)} breakage(s) on a copy at {copy}", file=sys.stderr, flush=True)
        if args.check:
            print(f"every snippet of {len(chosen)} breakage(s) is in place and patches to valid Python")
            return 0

        failed_baselines = []
        if args.baseline:
            for tests in dict.fromkeys(breakage.tests for breakage in chosen):
                status, seconds, output = run_tests(copy, tests, args.timeout)
                print(
                    f"[breakage] baseline {short(tests)}: {'passed' if status == 0 else 'FAILED'} ({seconds:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                if status != 0:
                    failed_baselines.append(tests)
                    print(output[-3000:], file=sys.stderr)

        rows, missed = [], 0
        for breakage in chosen:
            originals = apply(copy, breakage)
            try:
                status, seconds, output = run_tests(copy, breakage.tests, args.timeout)
            finally:
                restore(originals)
            caught = status == 1  # a failing test; 0 passed, 2-5 errors/no tests, -1 timeout
            missed += not caught
            culprit = first_failure(output)
            why = failure_reason(output).replace("|", "\\|")[:90]
            result = f"caught by `{culprit}`: {why}" if caught else f"**MISSED** (pytest exit {status})"
            rows.append(f"| {breakage.what} (`{breakage.name}`) | {short(breakage.tests)} | {result} | {seconds:.0f} |")
            reason = f": {failure_reason(output)}" if caught else ""
            print(f"[breakage] {breakage.name}: {'caught' if caught else 'MISSED'} ({seconds:.0f} s){reason}", file=sys.stderr, flush=True)
            if args.verbose or not caught:
                print(output[-3000:], file=sys.stderr)

        print("| breakage | guarding tests | result | s |")
        print("|---|---|---|---|")
        print("\n".join(rows))
        print(
            f"\n{len(rows) - missed}/{len(rows)} caught" + (f"; {len(failed_baselines)} baseline run(s) failed" if failed_baselines else "")
        )
        return 1 if missed or failed_baselines else 0
    finally:
        if args.keep:
            print(f"[breakage] copy kept at {copy}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
