"""`mast synth`: the command line of :mod:`pipelines.data.synth`."""

from __future__ import annotations

import argparse

import pipelines.data.synth as _lib
from pipelines.data.synth import DEFAULT_TASKS, SENTENCES, TASKS, SynthError, SynthSettings, check_request, synthesize
from pipelines.data.synth.settings import FLAG_DEFAULTS as _FLAGS


def _settings(args: argparse.Namespace) -> SynthSettings:
    tasks = tuple(dict.fromkeys(part.strip() for part in args.tasks.split(",") if part.strip()))
    return SynthSettings(
        tasks=tasks,
        keyword_speakers=args.keyword_speakers,
        clips_per_word=args.clips_per_word,
        language_speakers=args.language_speakers,
        clips_per_speaker=args.clips_per_speaker,
        sentences=args.sentences,
        instruments_per_family=args.instruments_per_family,
        notes_per_instrument=args.notes_per_instrument,
        seed=args.seed,
        workers=args.workers,
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="synthesise offline speech datasets (Speech Commands V2, VoxForge layouts)",
        description=_lib.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", metavar="OUT", help="output folder (datasets go in sub-folders)")
    parser.add_argument(
        "--tasks", default=",".join(DEFAULT_TASKS), help=f"comma-separated, from {', '.join(TASKS)} (default {','.join(DEFAULT_TASKS)})"
    )
    parser.add_argument(
        "--keyword-speakers",
        type=int,
        default=_FLAGS["keyword_speakers"],
        help=f"keyword speakers, split 80/10/10 (default {_FLAGS['keyword_speakers']})",
    )
    parser.add_argument(
        "--clips-per-word",
        type=int,
        default=_FLAGS["clips_per_word"],
        help=f"clips of each of the 35 words (default {_FLAGS['clips_per_word']}, i.e. {35 * _FLAGS['clips_per_word']} clips)",
    )
    parser.add_argument(
        "--language-speakers",
        type=int,
        default=_FLAGS["language_speakers"],
        help=f"speakers per language, split 70/15/15 (default {_FLAGS['language_speakers']})",
    )
    parser.add_argument(
        "--clips-per-speaker",
        type=int,
        default=_FLAGS["clips_per_speaker"],
        help=f"sentences read by each language speaker (default {_FLAGS['clips_per_speaker']}, i.e. "
        f"{6 * _FLAGS['language_speakers'] * _FLAGS['clips_per_speaker']} clips)",
    )
    parser.add_argument(
        "--sentences", type=int, default=_FLAGS["sentences"], help=f"how many of the {len(SENTENCES)} fixed sentences to use (default all)"
    )
    parser.add_argument(
        "--instruments-per-family",
        type=int,
        default=_FLAGS["instruments_per_family"],
        help=f"instruments of each of the 11 NSynth families, split 70/15/15 (default {_FLAGS['instruments_per_family']})",
    )
    parser.add_argument(
        "--notes-per-instrument",
        type=int,
        default=_FLAGS["notes_per_instrument"],
        help=f"notes each instrument plays (default {_FLAGS['notes_per_instrument']}, i.e. "
        f"{11 * _FLAGS['instruments_per_family'] * _FLAGS['notes_per_instrument']} clips)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2; no effect on the output)")
    parser.set_defaults(handler=run, validate=validate)


def validate(args: argparse.Namespace) -> None:
    try:
        check_request(args.out, _settings(args))
    except SynthError as error:
        raise SystemExit(f"mast synth: {error}") from None


def run(args: argparse.Namespace) -> None:
    try:
        result = synthesize(args.out, _settings(args))
    except SynthError as error:
        raise SystemExit(f"mast synth: {error}") from None
    for name, info in result.items():
        if name != "seconds":
            state = "reused" if info["reused"] else f"written in {info['seconds']:.1f} s"
            print(f"[synth] {name}: {info['path']} ({info['clips']} clips, {info['speakers']} speakers, {state})")
    print(f"[synth] done in {result['seconds']:.1f} s")
