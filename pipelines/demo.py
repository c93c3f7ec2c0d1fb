"""`mast demo`: the whole system on one machine, offline: synthesise, ingest, pretrain, sweep, report.

    1. synthesise   keyword spotting (35 words, Speech Commands V2 layout) and spoken language ID
                    (6 languages, VoxForge layout) with espeak-ng voices and a room/noise simulation
                    (`mast synth`)
    2. ingest       both into Parquet shards with Ray Data (`mast ingest`)
    3. pretrain     a tiny MAST with SS-MAST on the training clips of both, labels unused, on Ray
                    Train (`mast pretrain`); with --with-ast also a tiny AST, same objective and budget
    4. initialise   a random-init encoder of each architecture, same feature statistics
    5. sweep        a linear-evaluation Ray Tune sweep per (encoder, task) (`mast sweep`)
    6. report       the results table (`mast report`), and the MLflow UI command

Everything goes under WORKDIR (default ``runs/demo``): ``audio/``, ``shards/``, ``tasks/``,
``spaces/``, ``runs/`` (pretraining), ``sweeps/``, ``report/`` and ``mlflow.db``. Rerunning
reuses what is finished: the synthesised sets (stamp), the shards (finished shards), a pretrained
encoder whose settings match (``runs/<name>/demo.json``), and finished sweeps (Tuner.restore).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mast_core.views import AugmentSettings
from pipelines.common.config import ConfigError, build
from pipelines.common.resources import config_dir
from pipelines.data.synth import SynthSettings, synthesize
from pipelines.evaluation.tasks import TaskConfig

# The demo's configs, YAML like every other run's: pretrain.yaml (step 3), augment.yaml (the
# --augment presets), tasks.yaml (step 2) and linear_space.yaml (step 5).
DEMO_CONFIGS = config_dir("configs", "demo")
ARCH_LABEL = {"mast_tiny": "MAST-tiny", "ast_tiny": "AST-tiny"}


def _read(name: str) -> dict:
    path = DEMO_CONFIGS / name
    if not path.is_file():
        raise ConfigError(f"{path}: demo config not found")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping")
    return data


def augment_presets() -> dict[str, dict]:
    """``configs/demo/augment.yaml``: preset name -> the ``data.augment`` keys it overrides."""
    presets = _read("augment.yaml")
    for name, preset in presets.items():
        build(AugmentSettings, preset or {}, f"augment.yaml: {name}")  # known keys, right types
    return {name: dict(preset or {}) for name, preset in presets.items()}


def demo_tasks() -> dict[str, dict]:
    """``configs/demo/tasks.yaml``: task name -> its dataset, ``options`` (of ``mast ingest``) and
    the other keys of its task config, checked as a :class:`TaskConfig` before any work starts."""
    tasks = _read("tasks.yaml")
    for name, spec in tasks.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("options", {}), dict):
            raise ConfigError(f"tasks.yaml: {name}: expected a mapping with an `options` mapping")
        keys = {key: value for key, value in spec.items() if key != "options"}
        build(TaskConfig, {"name": name, "shards": "WORKDIR/shards", **keys}, f"tasks.yaml: {name}")
    return tasks


@dataclass(frozen=True)
class DemoSettings:
    workdir: Path = Path("runs/demo")
    synth: SynthSettings = field(default_factory=SynthSettings)
    steps: int = 1500  # SS-MAST optimiser steps per pretrained encoder
    batch_size: int = 32  # clips per step (per worker)
    workers: int = 1  # Ray Train workers for pretraining
    frames: int = 98  # pretraining crop: 1 s
    queue_size: int = 1024
    lr: float = 5e-4
    trials: int = 8  # Tune trials per linear sweep
    with_ast: bool = False
    augment: str = "full"  # a preset of configs/demo/augment.yaml
    seed: int = 0

    def validate(self) -> None:
        self.synth.validate()
        for name in ("steps", "batch_size", "workers", "queue_size", "trials"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.frames < 16:
            raise ConfigError(f"--frames must be >= 16 (one patch), got {self.frames}")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        presets = augment_presets()
        if self.augment not in presets:
            raise ConfigError(f"--augment must be one of {', '.join(presets)}, got {self.augment!r}")
        self.check_configs()

    def check_configs(self) -> None:
        """Build every config of ``configs/demo/`` as the run will, so a bad one fails before any work."""
        from pipelines.evaluation.spaces import TuneSpace

        demo_tasks()
        build(TuneSpace, linear_space(self.trials), "linear_space.yaml")
        for arch in self.architectures:
            pretrain_config(self, arch, [Path("WORKDIR/shards")], Path("WORKDIR"))

    @property
    def architectures(self) -> tuple[str, ...]:
        return ("mast_tiny", "ast_tiny") if self.with_ast else ("mast_tiny",)


def linear_space(trials: int) -> dict:
    """``configs/demo/linear_space.yaml`` with ``num_samples`` set to ``trials``."""
    data = _read("linear_space.yaml")
    data["num_samples"] = trials
    return data


def pretrain_config(settings: DemoSettings, arch: str, sources: list[Path], workdir: Path):
    """``configs/demo/pretrain.yaml`` with the values its header lists set from ``settings``."""
    from pipelines.pretrain.driver import PretrainConfig

    data = _read("pretrain.yaml")
    data["run"].update(
        name=f"demo-ssmast-{arch}",
        storage=str(workdir / "runs"),
        num_workers=settings.workers,
        checkpoint_every=max(settings.steps // 4, 1),
        log_every=max(settings.steps // 30, 1),
        val_every=max(settings.steps // 10, 1),
        seed=settings.seed,
        torch_threads=max(1, 2 // settings.workers),
    )
    data["model"].update(arch=arch)
    data["objective"].update(queue_size=settings.queue_size)
    data["optim"].update(
        lr=settings.lr, batch_size=settings.batch_size, total_steps=settings.steps, warmup_steps=max(settings.steps // 10, 1)
    )
    data["data"]["frames_per_clip"] = settings.frames
    data["data"]["seed"] = settings.seed
    data["data"]["augment"]["time_mask"] = min(data["data"]["augment"].get("time_mask", 5), settings.frames // 4)
    data["data"]["augment"].update(augment_presets()[settings.augment])
    data["data"]["sources"] = [{"path": str(path), "weight": 1.0, "splits": ["train"]} for path in sources]
    # the validation loss and the representation monitor (kNN accuracy) on the first task's validation clips
    data["data"]["validation_sources"] = [{"path": str(sources[0]), "weight": 1.0, "splits": ["validation"]}]
    return build(PretrainConfig, data)


class Demo:
    """The six steps; each prints what it does and reuses finished work."""

    def __init__(self, settings: DemoSettings, progress=print) -> None:
        self.settings = settings
        self.workdir = Path(settings.workdir).absolute()
        self.tracking = f"sqlite:///{self.workdir / 'mlflow.db'}"
        self.progress = progress
        self.timings: dict[str, float] = {}

    def step(self, number: int, title: str) -> None:
        self.progress(f"\n[demo {number}/6] {title}")

    def timed(self, name: str, started: float) -> None:
        self.timings[name] = round(time.perf_counter() - started, 1)
        self.progress(f"[demo] {name} took {self.timings[name]:.1f} s")

    def run(self) -> dict:
        from pipelines.common.runtime import init_ray

        started = time.perf_counter()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.step(1, "synthesise the keyword and language datasets (espeak-ng voices, rooms, noise)")
        t0 = time.perf_counter()
        audio = synthesize(self.workdir / "audio", self.settings.synth, progress=self.progress)
        self.timed("synthesis", t0)

        init_ray()
        self.step(2, "ingest them into Parquet shards (Ray Data)")
        t0 = time.perf_counter()
        tasks = self.ingest(audio)
        self.timed("ingest", t0)

        self.step(3, f"pretrain {' and '.join(self.settings.architectures)} with SS-MAST ({self.settings.steps} steps, Ray Train)")
        t0 = time.perf_counter()
        encoders = {arch: self.pretrain(arch, tasks) for arch in self.settings.architectures}
        self.timed("pretraining", t0)

        self.step(4, "random-init encoders of the same architectures (the baseline)")
        for arch in self.settings.architectures:
            encoders[f"{arch}-random"] = self.random_encoder(arch, encoders[arch])

        self.step(5, f"linear-evaluation sweeps ({self.settings.trials} Tune trials each)")
        t0 = time.perf_counter()
        summaries = self.sweeps(tasks, encoders)
        self.timed("sweeps", t0)

        self.step(6, "results")
        table = self.report()
        total = time.perf_counter() - started
        self.progress(
            f"\n[demo] finished in {total / 60:.1f} min; MLflow UI:\n"
            f"  mlflow ui --backend-store-uri {self.tracking} --port 5000   # then open http://127.0.0.1:5000"
        )
        return {
            "table": table,
            "summaries": summaries,
            "encoders": {k: str(v) for k, v in encoders.items()},
            "timings": self.timings,
            "seconds": round(total, 1),
        }

    def ingest(self, audio: dict) -> dict:
        from pipelines.data.ingest import IngestSettings, ingest
        from pipelines.evaluation.tasks import load_task

        tasks = {}
        for name, spec in demo_tasks().items():
            dataset = spec["dataset"]
            if dataset not in audio:
                continue
            shards = self.workdir / "shards" / name
            ingest(
                dataset,
                audio[dataset]["path"],
                shards,
                options=spec.get("options") or {},
                settings=IngestSettings(shard_mb=4.0),
                progress=self.progress,
            )
            path = self.workdir / "tasks" / f"{name}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            task = {"name": name, "dataset": dataset, "shards": str(shards)}
            task.update((key, value) for key, value in spec.items() if key not in ("dataset", "options"))
            task["ingest"] = f"mast ingest {dataset} --root {audio[dataset]['path']} --out {shards}"
            path.write_text(yaml.safe_dump(task, sort_keys=False))
            tasks[name] = load_task(path)
        return tasks

    def pretrain(self, arch: str, tasks: dict) -> Path:
        from pipelines.common.config import to_dict
        from pipelines.pretrain.driver import pretrain

        config = pretrain_config(self.settings, arch, [Path(task.shards) for task in tasks.values()], self.workdir)
        folder = Path(config.run.storage) / config.run.name
        stamp = folder / "demo.json"
        key = to_dict(config)
        if (
            stamp.is_file()
            and json.loads(stamp.read_text()).get("config") == key
            and (folder / "encoder" / "encoder.safetensors").is_file()
        ):
            self.progress(f"[demo] reusing the pretrained {arch} in {folder / 'encoder'}")
            return folder / "encoder"
        result = pretrain(config, self.tracking)
        stamp.write_text(json.dumps({"config": key, "run_id": result["run_id"], "step": result["step"]}))
        return Path(result["export"])

    def random_encoder(self, arch: str, pretrained: Path) -> Path:
        """Seeded random init, saved with the pretrained encoder's feature statistics (a fair baseline)."""
        from mast_core.checkpoint import load_encoder, save_encoder
        from pipelines.common.checkpoints import init_encoder

        folder = self.workdir / "runs" / f"random-{arch}"
        _, features = load_encoder(pretrained)
        if (folder / "encoder.safetensors").is_file():
            _, existing = load_encoder(folder)
            if existing == features:
                self.progress(f"[demo] reusing {folder}")
                return folder
        save_encoder(init_encoder(arch, self.settings.seed), folder, features)
        self.progress(f"[demo] {arch} random init saved to {folder}")
        return folder

    def sweeps(self, tasks: dict, encoders: dict) -> list[dict]:
        from pipelines.evaluation.spaces import load_space
        from pipelines.evaluation.sweep import run_sweep

        path = self.workdir / "spaces" / "linear.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(linear_space(self.settings.trials), sort_keys=False))
        space = load_space("demo", path)
        summaries = []
        for name, encoder in encoders.items():
            arch = name.removesuffix("-random")
            label = f"{ARCH_LABEL[arch]} {'random init' if name.endswith('-random') else 'SS-MAST'}"
            for task in tasks.values():
                self.progress(f"[demo] sweep: {label} on {task.name}")
                summary = run_sweep(
                    task,
                    encoder,
                    space,
                    storage=self.workdir / "sweeps",
                    tracking_uri=self.tracking,
                    experiment="mast-demo",
                    resume=True,
                    label=label,
                    progress=self.progress,
                )
                summaries.append({"label": label, **summary})
        return summaries

    def report(self) -> dict:
        from pipelines.evaluation.report import collect, markdown, write_report

        table = collect(self.tracking, "mast-demo")
        written = write_report(table, self.workdir / "report")
        self.progress("test accuracy (%), linear evaluation:\n\n" + markdown(table))
        self.progress(f"[demo] table written to {', '.join(str(p) for p in written)}")
        return table
