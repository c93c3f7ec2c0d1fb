"""`mast report`: the command line of :mod:`pipelines.evaluation.report`."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pipelines.evaluation.report as _lib
from pipelines.common import storage
from pipelines.evaluation.report import collect, markdown, write_report


def run(args: argparse.Namespace) -> None:
    from mlflow import MlflowClient

    from pipelines.common.tracking import default_tracking_uri

    tracking = args.tracking_uri or default_tracking_uri()
    try:
        out = storage.check_location(args.out, "--out")
        if storage.is_local(out) and storage.local_path(out).exists() and not storage.local_path(out).is_dir():
            raise storage.StorageError(f"--out {args.out} exists and is not a folder")
    except storage.StorageError as error:
        raise SystemExit(f"mast report: {error}") from None
    try:
        table = collect(tracking, args.experiment)
    except Exception as error:  # a store that is not MLflow's (a file that is not a database, a server that is down)
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise SystemExit(
            f"mast report: --tracking-uri {tracking}: cannot read the MLflow store ({type(error).__name__}: {first})"
        ) from None
    if not table:
        raise SystemExit(f"mast report: no finished sweeps in experiment {args.experiment!r}")
    with tempfile.TemporaryDirectory(prefix="mast-report-") as scratch:
        files = write_report(table, storage.local_path(out) if storage.is_local(out) else Path(scratch))
        if not storage.is_local(out):  # a bucket: the three files are uploaded next to each other
            for path in files:
                storage.publish(path, storage.join(out, path.name))
        print(markdown(table))
        client = MlflowClient(tracking)
        experiment_id = client.get_experiment_by_name(args.experiment).experiment_id
        report = client.create_run(experiment_id, run_name="report", tags={"mast.report": "1"})
        for path in files:
            client.log_artifact(report.info.run_id, str(path))
        client.set_terminated(report.info.run_id, "FINISHED")
    names = [storage.join(out, path.name) for path in files]
    print(f"written: {', '.join(names)}; logged to MLflow run {report.info.run_id}")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="results table of the finished sweeps",
        description=_lib.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--experiment", default="mast-sweeps")
    parser.add_argument("--out", default="reports", help="folder or URI (s3://bucket/reports) for results.md / .csv / .png")
    parser.add_argument("--tracking-uri", default=None)
    parser.set_defaults(handler=run)
