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
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Edit:
    file: str
    old: str
    new: str


@dataclass(frozen=True)
class Breakage:
    name: str
    what: str  # the deliberate breakage, in words (the first column of the table)
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]  # pytest node ids, run in this order with -x


T_FEATURES = "tests/mast_core/test_features.py"
T_INGEST = "tests/pipelines/data/test_ingest.py"
T_AST = "tests/mast_core/test_ast.py"
T_IMAGENET = "tests/mast_core/test_imagenet.py"
T_SWEEP = "tests/pipelines/evaluation/test_sweep.py"
T_FINETUNE = "tests/pipelines/evaluation/test_finetune.py"
T_PRETRAIN = "tests/pipelines/pretrain/test_pretrain.py"
T_STREAM = "tests/pipelines/data/test_stream.py"
T_MAST = "tests/mast_core/test_mast.py"
T_SSMAST = "tests/mast_core/test_ssmast.py"

_MERGE_FIRST_SHARD = Edit(
    "mast_core/features.py",
    "    return FeatureStats(mean=mean, std=math.sqrt(sum_sq_dev / count), num_frames=count)",
    "    first = next(part for part in parts if part.num_frames)  # BROKEN\n"
    "    return FeatureStats(mean=first.mean + 3.0, std=first.std * 2.0, num_frames=count)",
)
_MERGE_LIST = Edit(
    "mast_core/features.py",
    "    for part in parts:",
    "    parts = list(parts)\n    for part in parts:",
)

BREAKAGES: tuple[Breakage, ...] = (
    # ---------------------------------------------------------------- the table
    Breakage(
        "resume-restores-no-state",
        "`_load_training_state` restores no model, optimiser or scheduler state",
        (
            Edit("pipelines/pretrain/loop.py", '    model.load_state_dict(saved["model"])', "    pass  # BROKEN: no weights restored"),
            Edit(
                "pipelines/pretrain/loop.py", '    optimizer.load_state_dict(saved["optimizer"])', "    pass  # BROKEN: no optimiser state"
            ),
            Edit(
                "pipelines/pretrain/loop.py",
                '    scheduler.load_state_dict(saved["scheduler"])',
                "    pass  # BROKEN: no schedule position",
            ),
        ),
        (f"{T_PRETRAIN}::test_a_killed_worker_resumes_from_the_last_checkpoint", "tests/e2e/test_pretrain_resume.py"),
    ),
    Breakage(
        "merge-stats-first-shard",
        "`merge_stats` returns the first shard's stats with mean +3 and std x2 (unit test)",
        (_MERGE_LIST, _MERGE_FIRST_SHARD),
        (f"{T_FEATURES}::test_merge_stats_equals_stats_over_the_concatenated_clips",),
    ),
    Breakage(
        "merge-stats-first-shard-ingest",
        "`merge_stats` returns the first shard's stats with mean +3 and std x2 (ingest manifest)",
        (_MERGE_LIST, _MERGE_FIRST_SHARD),
        (f"{T_INGEST}::test_each_layout_ingests_to_the_right_counts_labels_splits_and_folds[us8k]",),
    ),
    Breakage(
        "ingest-stats-first-clip",
        "each shard's statistics summarise only its first clip",
        (
            Edit(
                "pipelines/data/ingest.py",
                '"stats": compute_stats(specs).to_dict() if specs else None,',
                '"stats": compute_stats(specs[:1]).to_dict() if specs else None,  # BROKEN',
            ),
        ),
        (f"{T_INGEST}::test_each_layout_ingests_to_the_right_counts_labels_splits_and_folds[speech_commands]",),
    ),
    Breakage(
        "ast-positions-beyond-table-zero",
        "AST position interpolation beyond the stored table returns zeros",
        (
            Edit(
                "mast_core/ast.py",
                "        return F.interpolate(",
                "        return 0.0 * F.interpolate(",
            ),
        ),
        (f"{T_AST}::test_position_table_truncates_and_interpolates",),
    ),
    Breakage(
        "ast-imagenet-not-loaded",
        "`load_state_dict` skipped for AST in `init_from_imagenet`",
        (
            Edit(
                "mast_core/imagenet.py",
                "    model.load_state_dict(adapted)",
                '    if getattr(model, "arch", None) != "ast":  # BROKEN\n        model.load_state_dict(adapted)',
            ),
        ),
        (f"{T_IMAGENET}::test_ast_from_deit_file",),
    ),
    Breakage(
        "linear-trial-trains-on-test",
        "the test rows (NaN-poisoned by the test) joined to every linear trial's training rows",
        (
            Edit(
                "pipelines/evaluation/sweep.py",
                "    trainable = tune.with_parameters(linear_trial, rounds=rounds, num_classes=num_classes)",
                "    leaked = [{**r, 'train': (torch.cat([r['train'][0], t[0]]), torch.cat([r['train'][1], t[1]]))}  # BROKEN\n"
                "              for r, t in zip(rounds, tests)]\n"
                "    trainable = tune.with_parameters(linear_trial, rounds=leaked, num_classes=num_classes)",
            ),
        ),
        (f"{T_SWEEP}::test_the_test_split_never_reaches_selection",),
    ),
    Breakage(
        "linear-trial-validates-on-test",
        "the test rows joined to every linear trial's validation rows (accuracy stays finite)",
        (
            Edit(
                "pipelines/evaluation/sweep.py",
                "    trainable = tune.with_parameters(linear_trial, rounds=rounds, num_classes=num_classes)",
                "    leaked = [{**r, 'validation': (torch.cat([r['validation'][0], t[0]]), torch.cat([r['validation'][1], t[1]]))}"
                "  # BROKEN\n"
                "              for r, t in zip(rounds, tests)]\n"
                "    trainable = tune.with_parameters(linear_trial, rounds=leaked, num_classes=num_classes)",
            ),
        ),
        (f"{T_SWEEP}::test_the_test_split_never_reaches_selection",),
    ),
    Breakage(
        "finetune-trial-validates-on-test",
        "a fine-tune trial's validation stream also reads the test clips",
        (
            Edit(
                "pipelines/evaluation/finetune.py",
                '        "validation": role_stream(task, roles["validation"], settings, "eval"),',
                '        "validation": role_stream(task, {"splits": roles["validation"]["splits"] + roles["test"]["splits"]},  # BROKEN\n'
                '                                  settings, "eval"),',
            ),
        ),
        (f"{T_FINETUNE}::test_finetune_sweep_trains_in_tune_and_never_sees_test",),
    ),
    # ---------------------------------------------------------------- reading findings
    Breakage(
        "ingest-fold-relabelled",
        "ingest writes fold 10's clips as fold 1 (every fold still one of the expected ones)",
        (
            Edit(
                "pipelines/data/ingest.py",
                '        rows["fold"].append(record.fold)',
                '        rows["fold"].append(1 if record.fold == 10 else record.fold)  # BROKEN',
            ),
        ),
        (f"{T_INGEST}::test_each_layout_ingests_to_the_right_counts_labels_splits_and_folds[us8k]",),
    ),
    Breakage(
        "pretrain-encoder-frozen",
        "pretraining builds its objective with a frozen encoder (only the heads learn)",
        (
            Edit(
                "pipelines/pretrain/loop.py",
                "    if config.model.imagenet:",
                "    encoder.requires_grad_(False)  # BROKEN\n    if config.model.imagenet:",
            ),
        ),
        (f"{T_PRETRAIN}::test_every_model_choice_builds_and_takes_a_step",),
    ),
    Breakage(
        "pretrain-single-worker",
        "pretraining starts one Train worker whatever `run.num_workers` says",
        (
            Edit(
                "pipelines/pretrain/driver.py",
                "num_workers=config.run.num_workers,",
                "num_workers=1,  # BROKEN\n",
            ),
        ),
        (f"{T_PRETRAIN}::test_two_worker_pretraining_logs_to_mlflow_and_exports",),
    ),
    Breakage(
        "stream-labels-shuffled",
        "the stream pairs each batch's labels with the clips in reverse order",
        (
            Edit(
                "pipelines/data/stream.py",
                '    labels = [batch["label_indices"][i] for i in keep]',
                '    labels = [batch["label_indices"][i] for i in reversed(keep)]  # BROKEN',
            ),
        ),
        (f"{T_STREAM}::test_downstream_eval_stream_is_deterministic_with_labels_and_lengths",),
    ),
    Breakage(
        "stream-lengths-one-short",
        "the stream reports one frame fewer than a padded clip has",
        (
            Edit(
                "pipelines/data/stream.py",
                "    return padded, max(frames_for_samples(length), 16)",
                "    return padded, max(frames_for_samples(length) - 1, 16)  # BROKEN",
            ),
        ),
        (f"{T_STREAM}::test_downstream_eval_stream_is_deterministic_with_labels_and_lengths",),
    ),
    Breakage(
        "fold-tests-overlap",
        "each fold round's test set also takes the validation fold (test sets overlap)",
        (
            Edit(
                "pipelines/evaluation/tasks.py",
                '"test": {"folds": [fold]}}',
                '"test": {"folds": [fold, validation]}}  # BROKEN',
            ),
        ),
        (f"{T_SWEEP}::test_fold_task_scores_the_mean_over_folds",),
    ),
    Breakage(
        "fold-scored-on-wrong-fold",
        "each fold's refitted probe is scored on the next fold's test rows",
        (
            Edit(
                "pipelines/evaluation/sweep.py",
                "        for data_round, (test_x, test_y) in zip(rounds, tests):",
                "        for data_round, (test_x, test_y) in zip(rounds, tests[1:] + tests[:1]):  # BROKEN",
            ),
        ),
        (f"{T_SWEEP}::test_fold_task_scores_the_mean_over_folds",),
    ),
    Breakage(
        "mast-relative-bias-zeroed",
        "MAST's relative-position bias multiplied by 0 (its tables get all-zero gradients)",
        (
            Edit(
                "mast_core/mast.py",
                "        bias = bias_f[..., :, None] + bias_t[..., None, :]",
                "        bias = 0.0 * (bias_f[..., :, None] + bias_t[..., None, :])  # BROKEN",
            ),
        ),
        (f"{T_MAST}::test_gradients_reach_every_parameter",),
    ),
    Breakage(
        "ssmast-student-zeroed",
        "SS-MAST's query is computed from 0 x the student's embedding (the student gets zero gradients)",
        (
            Edit(
                "mast_core/ssmast.py",
                "self.student_head(self.student(",
                "self.student_head(0.0 * self.student(",
            ),
        ),
        (f"{T_SSMAST}::test_gradients_reach_the_student_only",),
    ),
    Breakage(
        "drop-path-scales-in-eval",
        "drop path scales the residual branches by (1 - rate) in eval mode",
        (
            Edit(
                "mast_core/layers.py",
                "        if self.rate == 0.0 or not self.training:",
                "        if self.rate and not self.training:  # BROKEN\n"
                "            return x * (1.0 - self.rate)\n"
                "        if self.rate == 0.0 or not self.training:",
            ),
        ),
        (f"{T_AST}::test_drop_path_only_in_training",),
    ),
    Breakage(
        "ray-start-cluster-not-joined",
        "commands ignore a `ray start` cluster on the machine and start their own Ray",
        (Edit("pipelines/common/runtime.py", "        address = running_local_cluster()\n", "        address = None  # BROKEN\n"),),
        ("tests/pipelines/common/test_runtime.py::test_mast_ingest_joins_a_ray_start_cluster_found_through_its_cluster_file",),
    ),
    Breakage(
        "check-cluster-accepts-local-storage",
        "mast check-cluster no longer checks where a multi-node cluster keeps its runs",
        (Edit("pipelines/cluster.py", "    if nodes <= 1:\n        return []", "    if True:  # BROKEN\n        return []"),),
        ("tests/pipelines/test_cluster.py",),
    ),
    Breakage(
        "sweep-state-local-not-bucket",
        "a sweep's Tune state goes to a local folder named like the bucket, not to the bucket",
        (
            Edit(
                "pipelines/evaluation/sweep.py",
                "run_config=tune.RunConfig(name=name, verbose=0, callbacks=callbacks, **store.train_storage(storage)),",
                "run_config=tune.RunConfig(name=name, verbose=0, callbacks=callbacks, storage_path=str(Path(storage).resolve())),  # BROKEN",
            ),
        ),
        ("tests/pipelines/evaluation/test_remote_eval.py::test_sweep_with_shards_state_cache_and_report_in_the_bucket",),
    ),
    Breakage(
        "train-workers-ignore-worker-resources",
        "run.worker_resources is not given to Train: both workers may land on one node",
        (Edit("pipelines/pretrain/driver.py", "                **config.run.worker_resources,\n", ""),),
        ("tests/e2e/test_cluster.py::test_pretrain_job_survives_the_loss_of_a_worker_node",),
    ),
)


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
    command = [python(), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-W", "ignore", "--tb=short", "--show-capture=no", *tests]
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
