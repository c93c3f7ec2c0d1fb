"""`mast demo`: the command line of :mod:`pipelines.demo`."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

import pipelines.demo as _lib
from pipelines.common.config import ConfigError
from pipelines.data.synth import SynthError, SynthSettings, check_request
from pipelines.demo import Demo, DemoSettings, augment_presets


class _Presets:
    """The ``--augment`` choices: the presets of ``configs/demo/augment.yaml``, read when argparse
    asks. Building the root parser (for any command) lists them for the help; if the demo's configs
    are missing (``MAST_CONFIG_ROOT`` may point at a folder without them) that list is empty and
    only ``mast demo`` fails, naming the missing file."""

    def __iter__(self):
        try:
            return iter(list(augment_presets()))
        except ConfigError:
            return iter(())

    def __contains__(self, name: object) -> bool:
        try:
            return name in augment_presets()
        except ConfigError as error:
            raise SystemExit(f"mast demo: {error}") from None


def settings_from_args(args: argparse.Namespace) -> DemoSettings:
    synth = replace(
        SynthSettings(),
        keyword_speakers=args.keyword_speakers,
        clips_per_word=args.clips_per_word,
        language_speakers=args.language_speakers,
        clips_per_speaker=args.clips_per_speaker,
        seed=args.seed,
        workers=args.synth_workers,
    )
    return DemoSettings(
        workdir=args.workdir,
        synth=synth,
        steps=args.steps,
        batch_size=args.batch_size,
        workers=args.workers,
        frames=args.frames,
        queue_size=args.queue_size,
        lr=args.lr,
        trials=args.trials,
        with_ast=args.with_ast,
        augment=args.augment,
        seed=args.seed,
    )


def validate(args: argparse.Namespace) -> None:
    try:
        settings = settings_from_args(args)
        settings.validate()
        if Path(args.workdir).exists() and not Path(args.workdir).is_dir():
            raise ConfigError(f"--workdir {args.workdir} exists and is not a folder")
        check_request(Path(args.workdir) / "audio", settings.synth)
    except (ConfigError, SynthError) as error:
        raise SystemExit(f"mast demo: {error}") from None


def run(args: argparse.Namespace) -> None:
    settings = settings_from_args(args)
    print(f"[demo] settings: {json.dumps(asdict(settings), default=str)}")
    result = Demo(settings).run()
    (Path(args.workdir) / "demo_result.json").write_text(
        json.dumps({key: value for key, value in result.items() if key != "table"}, indent=2, default=str)
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults, synth = DemoSettings(), SynthSettings()
    parser = subparsers.add_parser(
        "demo",
        help="the whole pipeline offline on one machine (synth, ingest, pretrain, sweep, report)",
        description=_lib.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workdir", type=Path, default=defaults.workdir, help=f"where everything goes (default {defaults.workdir})")
    parser.add_argument("--steps", type=int, default=defaults.steps, help=f"SS-MAST steps (default {defaults.steps})")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help=f"clips per step (default {defaults.batch_size})")
    parser.add_argument("--workers", type=int, default=defaults.workers, help=f"Ray Train workers (default {defaults.workers})")
    parser.add_argument("--frames", type=int, default=defaults.frames, help=f"pretraining crop in frames (default {defaults.frames})")
    parser.add_argument("--queue-size", type=int, default=defaults.queue_size, help=f"SS-MAST negatives (default {defaults.queue_size})")
    parser.add_argument("--lr", type=float, default=defaults.lr, help=f"pretraining learning rate (default {defaults.lr})")
    parser.add_argument("--trials", type=int, default=defaults.trials, help=f"Tune trials per sweep (default {defaults.trials})")
    parser.add_argument("--with-ast", action="store_true", help="also pretrain and sweep a tiny AST (MAST vs AST)")
    parser.add_argument(
        "--augment",
        choices=_Presets(),
        default=defaults.augment,
        help="pretraining augmentations: full (the chain of docs/augmentation.md, the default) or mixup (log-mixup-exp alone, the chain before)",
    )
    parser.add_argument("--keyword-speakers", type=int, default=synth.keyword_speakers)
    parser.add_argument("--clips-per-word", type=int, default=synth.clips_per_word)
    parser.add_argument("--language-speakers", type=int, default=synth.language_speakers)
    parser.add_argument("--clips-per-speaker", type=int, default=synth.clips_per_speaker)
    parser.add_argument("--synth-workers", type=int, default=synth.workers, help="synthesis processes (no effect on the audio)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.set_defaults(handler=run, validate=validate)
