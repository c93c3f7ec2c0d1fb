"""`mast report [--experiment mast-sweeps] [--out reports]`: the paper-style results table.

Reads the finished sweep parent runs from MLflow. Rows are models (the sweep's ``--label``),
columns are tasks, and each cell is the test accuracy in % (± std over folds where there are
several). The newest sweep wins when a model was swept twice on a task. The table is written as
Markdown and CSV, with a PNG bar chart, and logged to MLflow as a "report" run.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pipelines.common.tracking import pyplot
from pipelines.evaluation.tasks import task_names


def collect(tracking_uri: str, experiment: str) -> dict[str, dict[str, tuple[float, float | None]]]:
    """{model label: {task: (accuracy %, std % over folds or None)}} from the finished parent runs."""
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
    table: dict[str, dict[str, tuple[float, float | None]]] = {}
    for run in runs:  # oldest first, so newer sweeps overwrite
        metrics, tags = run.data.metrics, run.data.tags
        if "test_accuracy" not in metrics:
            continue
        table.setdefault(tags.get("model_label", "?"), {})[tags["task"]] = (
            100 * metrics["test_accuracy"],
            100 * metrics["test_accuracy_std"] if "test_accuracy_std" in metrics else None,
        )
    return table


def columns_of(table: dict) -> list[str]:
    known = task_names()
    present = {task for row in table.values() for task in row}
    return [task for task in known if task in present] + sorted(present - set(known))


def cell(value: tuple[float, float | None] | None) -> str:
    if value is None:
        return "-"
    return f"{value[0]:.1f}" if value[1] is None else f"{value[0]:.1f} ± {value[1]:.1f}"


def markdown(table: dict) -> str:
    columns = columns_of(table)
    lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for label in sorted(table):
        lines.append(f"| {label} | " + " | ".join(cell(table[label].get(task)) for task in columns) + " |")
    return "\n".join(lines) + "\n"


def write_report(table: dict, out: Path) -> list[Path]:
    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    columns = columns_of(table)
    (out / "results.md").write_text(markdown(table))
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model"] + [f"{task}{suffix}" for task in columns for suffix in ("", "_std")])
        for label in sorted(table):
            row = [label]
            for task in columns:
                value = table[label].get(task)
                row += [f"{value[0]:.2f}", "" if value[1] is None else f"{value[1]:.2f}"] if value else ["", ""]
            writer.writerow(row)
    figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(columns)), 4))
    width = 0.8 / max(len(table), 1)
    for offset, label in enumerate(sorted(table)):
        xs = [i + offset * width for i, task in enumerate(columns) if task in table[label]]
        values = [table[label][task] for task in columns if task in table[label]]
        axis.bar(xs, [v[0] for v in values], width, yerr=[v[1] or 0.0 for v in values], label=label)
    axis.set_xticks([i + width * (len(table) - 1) / 2 for i in range(len(columns))], columns)
    axis.set_ylabel("test accuracy (%)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "results.png", dpi=100)
    plt.close(figure)
    return [out / "results.md", out / "results.csv", out / "results.png"]
