"""`mast report [--experiment mast-sweeps] [--out reports]`: the paper-style results table.

Reads the finished sweep parent runs from MLflow. Rows are models (the sweep's ``--label``),
columns are tasks, and each cell is the test accuracy in % with its 95 % bootstrap interval over
the test clips, in brackets (and ± the std over folds where there are several). The newest sweep
wins when a model was swept twice on a task. The table is written as Markdown and CSV, with a PNG
bar chart (the intervals as error bars, each task's chance level as a dashed line), and logged to
MLflow as a "report" run.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from pipelines.common.tracking import pyplot
from pipelines.evaluation.tasks import task_names


@dataclass(frozen=True)
class Score:
    """One cell: test accuracy, std over folds, 95 % interval over test clips and chance, all in %."""

    accuracy: float
    std: float | None = None
    low: float | None = None
    high: float | None = None
    chance: float | None = None


def collect(tracking_uri: str, experiment: str) -> dict[str, dict[str, Score]]:
    """{model label: {task: Score}} from the finished parent runs (sweeps logged before the
    intervals existed give cells without them)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"mast report: no MLflow experiment {experiment!r} at {tracking_uri}; run `mast sweep` first")
    runs = client.search_runs(
        [found.experiment_id],
        filter_string="tags.`mast.sweep_name` != '' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
    )
    table: dict[str, dict[str, Score]] = {}
    for run in runs:  # oldest first, so newer sweeps overwrite
        metrics, tags = run.data.metrics, run.data.tags
        if "test_accuracy" not in metrics:
            continue
        percent = [
            100 * metrics[key] if key in metrics else None
            for key in ("test_accuracy_std", "test_ci_low", "test_ci_high", "chance_accuracy")
        ]
        table.setdefault(tags.get("model_label", "?"), {})[tags["task"]] = Score(100 * metrics["test_accuracy"], *percent)
    return table


def columns_of(table: dict) -> list[str]:
    known = task_names()
    present = {task for row in table.values() for task in row}
    return [task for task in known if task in present] + sorted(present - set(known))


def cell(value: Score | None) -> str:
    if value is None:
        return "-"
    text = f"{value.accuracy:.1f}"
    if value.low is not None:
        text += f" [{value.low:.1f}, {value.high:.1f}]"
    return text if value.std is None else f"{text} ± {value.std:.1f}"


def markdown(table: dict) -> str:
    columns = columns_of(table)
    lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for label in sorted(table):
        lines.append(f"| {label} | " + " | ".join(cell(table[label].get(task)) for task in columns) + " |")
    chance = {
        task: next((row[task].chance for row in table.values() if task in row and row[task].chance is not None), None) for task in columns
    }
    if any(value is not None for value in chance.values()):
        lines.append("| chance | " + " | ".join("-" if chance[task] is None else f"{chance[task]:.1f}" for task in columns) + " |")
    note = "test accuracy (%) [95 % bootstrap interval over test clips] ± std over folds"
    return "\n".join(lines) + f"\n\n{note}\n"


def _csv_fields(value: Score | None) -> list[str]:
    if value is None:
        return [""] * 5
    return ["" if number is None else f"{number:.2f}" for number in (value.accuracy, value.std, value.low, value.high, value.chance)]


def write_report(table: dict, out: Path) -> list[Path]:
    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    columns = columns_of(table)
    (out / "results.md").write_text(markdown(table))
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        suffixes = ("", "_std", "_ci_low", "_ci_high", "_chance")
        writer.writerow(["model"] + [f"{task}{suffix}" for task in columns for suffix in suffixes])
        for label in sorted(table):
            writer.writerow([label] + [field for task in columns for field in _csv_fields(table[label].get(task))])
    figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(columns)), 4))
    width = 0.8 / max(len(table), 1)
    for offset, label in enumerate(sorted(table)):
        xs = [i + offset * width for i, task in enumerate(columns) if task in table[label]]
        values = [table[label][task] for task in columns if task in table[label]]
        # error bars: the bootstrap interval where logged, else the std over folds
        below = [max(0.0, v.accuracy - v.low) if v.low is not None else (v.std or 0.0) for v in values]
        above = [max(0.0, v.high - v.accuracy) if v.high is not None else (v.std or 0.0) for v in values]
        axis.bar(xs, [v.accuracy for v in values], width, yerr=[below, above], capsize=3, label=label)
    for i, task in enumerate(columns):
        chance = next((row[task].chance for row in table.values() if task in row and row[task].chance is not None), None)
        if chance is not None:
            axis.hlines(chance, i - width / 2, i + width * (len(table) - 0.5), colors="black", linestyles="dashed", linewidth=1)
    axis.set_xticks([i + width * (len(table) - 1) / 2 for i in range(len(columns))], columns)
    axis.set_ylabel("test accuracy (%), 95 % interval; dashed: chance")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "results.png", dpi=100)
    plt.close(figure)
    return [out / "results.md", out / "results.csv", out / "results.png"]
