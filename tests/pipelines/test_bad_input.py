"""Every `mast` command, walked with bad input: wrong types, missing or unreadable paths, empty
files, out-of-range numbers and conflicting options. Each exits non-zero with one line naming the
argument, key or file and what is allowed; never a traceback, and before any Ray work starts."""

import pytest

from pipelines.cli import main

CONFIG = "configs/pretrain/tiny_cpu.yaml"

# (arguments, what the one line must say); {t} is a scratch folder with: empty.yaml, broken.yaml
# (unclosed YAML), garbage.bin (not text), adir/ (an empty folder), file.txt; missing/ does not exist
CASES = {
    "demo": [
        (["demo", "--steps", "-5"], "--steps must be >= 1, got -5"),
        (["demo", "--lr", "0"], "--lr must be positive"),
        (["demo", "--trials", "0"], "--trials must be >= 1, got 0"),
        (["demo", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
        (["demo", "--augment", "weird"], "argument --augment: invalid choice: 'weird'"),
        (["demo", "--workdir", "{t}/garbage.bin"], "--workdir {t}/garbage.bin exists and is not a folder"),
    ],
    "ingest": [
        (["ingest", "nope", "--root", "{t}", "--out", "{t}/o"], "argument dataset: invalid choice: 'nope'"),
        (["ingest", "speech_commands", "--root", "{t}/missing", "--out", "{t}/o"], "--root {t}/missing: not a folder"),
        (["ingest", "speech_commands", "--root", "{t}/garbage.bin", "--out", "{t}/o"], "--root {t}/garbage.bin: not a folder"),
        (["ingest", "speech_commands", "--root", "{t}/adir", "--out", "{t}/o"], "{t}/adir/validation_list.txt not found"),
        (
            ["ingest", "speech_commands", "--root", "{t}/adir", "--out", "{t}/o", "--shard-mb", "-1"],
            "--shard-mb must be positive, got -1.0",
        ),
        (
            ["ingest", "speech_commands", "--root", "{t}/adir", "--out", "{t}/o", "--max-seconds", "0"],
            "--max-seconds must be positive, got 0.0",
        ),
        (["ingest", "speech_commands", "--root", "{t}/adir", "--out", "{t}/o", "--num-cpus", "0"], "--num-cpus must be >= 1, got 0"),
        (
            ["ingest", "speech_commands", "--root", "{t}/adir", "--out", "{t}/o", "--fraction", "0.5"],
            "unknown option 'fraction' for speech_commands",
        ),
        (["ingest", "audioset", "--root", "{t}/adir", "--out", "{t}/o", "--fraction", "2"], "option fraction must be in (0, 1], got 2.0"),
        (
            ["ingest", "us8k", "--root", "{t}/adir", "--out", "{t}/o", "--allow-outside-root"],
            "unknown option 'allow_outside_root' for us8k",
        ),
        (
            ["ingest", "manifest", "--root", "{t}/adir", "--out", "{t}/o", "--manifest", "{t}/garbage.bin"],
            "{t}/garbage.bin: not UTF-8 text",
        ),
        (
            ["ingest", "manifest", "--root", "{t}/adir", "--out", "{t}/o", "--manifest", "{t}/empty.yaml"],
            "columns found: (none: empty file)",
        ),
        (["ingest", "manifest", "--root", "{t}/adir", "--out", "{t}/o", "--manifest", "{t}/missing.csv"], "{t}/missing.csv not found"),
    ],
    "pretrain": [
        (["pretrain"], "the following arguments are required: --config"),
        (["pretrain", "--config", "{t}/missing.yaml"], "{t}/missing.yaml: config file not found"),
        (["pretrain", "--config", "{t}/adir"], "{t}/adir: config file not found"),
        (["pretrain", "--config", "{t}/empty.yaml"], "data.sources: give at least one ingested dataset folder"),
        (["pretrain", "--config", "{t}/broken.yaml"], "{t}/broken.yaml: not valid YAML"),
        (["pretrain", "--config", "{t}/garbage.bin"], "{t}/garbage.bin: not a text file"),
        (["pretrain", "--config", CONFIG, "--set", "optim.lr"], "--set 'optim.lr': expected key=value"),
        (["pretrain", "--config", CONFIG, "--set", "optim.lr=-1"], "optim.lr: must be > 0, got -1.0"),
        (["pretrain", "--config", CONFIG, "--set", "optim.lr=abc"], "optim.lr: expected a number, got 'abc'"),
        (["pretrain", "--config", CONFIG, "--set", "optim.total_steps=2.5"], "optim.total_steps: expected an integer"),
        (["pretrain", "--config", CONFIG, "--set", "run.num_workers=0"], "run.num_workers: must be >= 1, got 0"),
        (["pretrain", "--config", CONFIG, "--set", "model.arch=mast_huge"], "model.arch: 'mast_huge' is not one of"),
        (["pretrain", "--config", CONFIG, "--set", "optim.learning_rate=1"], "unknown key optim.learning_rate"),
        (
            ["pretrain", "--config", CONFIG, "--set", "run.checkpoint_every=1000000"],
            "run.checkpoint_every (1000000) exceeds optim.total_steps",
        ),
        (
            ["pretrain", "--config", CONFIG, "--set", "data.sources=[{path: '{t}/missing'}]"],
            "data.sources: {t}/missing/manifest.json not found",
        ),
    ],
    "sweep": [
        (["sweep", "--checkpoint", "{t}/adir"], "give a TASK or --all"),
        (["sweep", "sc_v1", "--all", "--checkpoint", "{t}/adir"], "give a TASK or --all, not both"),
        (["sweep", "nope", "--checkpoint", "{t}/adir"], "unknown task 'nope'; known: "),
        (["sweep", "sc_v1", "--checkpoint", "{t}/adir", "--protocol", "zero"], "argument --protocol: invalid choice: 'zero'"),
        (["sweep", "sc_v1", "--checkpoint", "{t}/adir", "--space", "{t}/missing.yaml"], "{t}/missing.yaml: search space not found"),
        (["sweep", "sc_v1", "--checkpoint", "{t}/adir", "--space", "{t}/garbage.bin"], "{t}/garbage.bin: not a text file"),
        (["sweep", "sc_v1", "--checkpoint", "{t}/adir", "--space", "{t}/empty.yaml"], "{t}/empty.yaml: missing required key space"),
        (["sweep", "sc_v1", "--checkpoint", "{t}/adir", "--data-root", "{t}/missing"], "{t}/missing/data/sc_v1/manifest.json not found"),
    ],
    "report": [
        (
            ["report", "--tracking-uri", "sqlite:///{t}/garbage.bin"],
            "--tracking-uri sqlite:///{t}/garbage.bin: cannot read the MLflow store",
        ),
        (["report", "--tracking-uri", "sqlite:///{t}/fresh.db"], "no MLflow experiment 'mast-sweeps'"),
        (
            ["report", "--out", "{t}/garbage.bin", "--tracking-uri", "sqlite:///{t}/fresh.db"],
            "--out {t}/garbage.bin exists and is not a folder",
        ),
    ],
    "embed": [
        (["embed", "{t}/missing.wav", "--checkpoint", "{t}/adir", "--out", "{t}/o.parquet"], "{t}/missing.wav: no such file or folder"),
        (
            ["embed", "{t}/garbage.bin", "--checkpoint", "{t}/missing", "--out", "{t}/o.parquet"],
            "--checkpoint {t}/missing: {t}/missing: checkpoint folder not found",
        ),
        (
            ["embed", "{t}/garbage.bin", "--checkpoint", "{t}/adir", "--out", "{t}/o.parquet"],
            "--checkpoint {t}/adir: {t}/adir/config.json: not found",
        ),
        (
            ["embed", "{t}/garbage.bin", "--checkpoint", "{t}/adir", "--out", "{t}/o.parquet", "--batch-size", "0"],
            "--batch-size must be >= 1",
        ),
        (["embed", "{t}/garbage.bin", "--checkpoint", "{t}/adir", "--out", "{t}/o.parquet", "--workers", "0"], "--workers must be >= 1"),
        (
            ["embed", "{t}/garbage.bin", "--checkpoint", "{t}/adir", "--out", "{t}/o.parquet", "--window-seconds", "-1"],
            "--window-seconds must be > 0",
        ),
        (
            ["embed", "{t}/garbage.bin", "--checkpoint", "{t}/adir", "--out", "{t}/o.parquet", "--device", "tpu"],
            "argument --device: invalid choice: 'tpu'",
        ),
        (["embed", "{t}/garbage.bin", "--checkpoint", "{t}/adir"], "the following arguments are required: --out"),
    ],
    "export": [
        (["export", "{t}/adir"], "give --onnx OUT.onnx and/or --mlflow"),
        (["export", "{t}/missing", "--onnx", "{t}/x.onnx"], "{t}/missing: {t}/missing: checkpoint folder not found"),
        (["export", "{t}/garbage.bin", "--onnx", "{t}/x.onnx"], "is a file; expected an exported encoder folder"),
    ],
    "synth": [
        (["synth", "{t}/s", "--tasks", "nope"], "--tasks: unknown task 'nope'; choose from keywords, languages, instruments"),
        (["synth", "{t}/s", "--keyword-speakers", "0"], "--keyword-speakers must be >= 3"),
        (["synth", "{t}/s", "--workers", "-1"], "--workers must be >= 1, got -1"),
        (["synth", "{t}/s", "--clips-per-word", "abc"], "argument --clips-per-word: invalid int value: 'abc'"),
        (["synth", "{t}/garbage.bin"], "OUT {t}/garbage.bin exists and is not a folder"),
    ],
    "check-cluster": [
        (["check-cluster", "--bogus"], "unrecognized arguments: --bogus"),
    ],
    "mast": [
        (["pretend"], "argument COMMAND: invalid choice: 'pretend'"),
    ],
}


@pytest.fixture
def scratch(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "broken.yaml").write_text("run: [\n")
    (tmp_path / "garbage.bin").write_bytes(b"\x00\x01\xff\xfe garbage")
    (tmp_path / "adir").mkdir()
    return tmp_path


def test_every_command_is_walked():
    from pipelines.cli import SUBCOMMANDS, build_parser

    names = set(build_parser()._subparsers._group_actions[0].choices)
    assert names == set(CASES) - {"mast"} and len(SUBCOMMANDS) == len(names)


@pytest.mark.parametrize(
    "args, message",
    [case for cases in CASES.values() for case in cases],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_bad_input_gets_one_line_naming_it(args, message, scratch, capsys):
    import ray

    started = ray.is_initialized()  # another test's session Ray may be up already
    args = [arg.replace("{t}", str(scratch)) for arg in args]
    message = message.replace("{t}", str(scratch))
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    code, printed = exit_info.value.code, capsys.readouterr()
    assert code not in (0, None)
    line = code if isinstance(code, str) else printed.err.strip().splitlines()[-1]  # a message, or argparse's last line
    assert message in line, line
    assert "\n" not in line and "Traceback" not in printed.err + printed.out
    assert ray.is_initialized() == started  # failed before starting any Ray work
