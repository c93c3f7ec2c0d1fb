"""Timbre parameters of the synthetic instruments, one function per NSynth family.

Each family function updates the defaults of :func:`instrument_params` in place, drawing from
the instrument's own generator in a fixed order (the order is part of the output: changing it
changes every instrument).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_VOWELS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010), "o": (570, 840, 2410), "u": (300, 870, 2240)}
_MODES = {  # frequency ratios of struck bars and plates
    "marimba": (1.0, 3.93, 9.22), "vibraphone": (1.0, 3.98, 9.5, 10.9), "xylophone": (1.0, 3.0, 6.17, 9.9),
    "glockenspiel": (1.0, 2.71, 5.15, 8.43, 12.6), "bell": (1.0, 2.0, 2.4, 3.0, 4.2, 5.4, 6.8),
}  # fmt: skip


def _bumps(r: np.random.Generator, count: int, lo: float, hi: float, gain: tuple[float, float]) -> list[tuple[float, float, float]]:
    """``count`` body resonances (centre Hz, width in octaves, gain dB), centres log-uniform in [lo, hi]."""
    u = r.uniform
    return [(float(np.exp(u(np.log(lo), np.log(hi)))), u(0.2, 0.6), u(*gain)) for _ in range(count)]


def _plucked(p: dict[str, Any], family: str, source: str, r: np.random.Generator) -> None:
    """Bass and guitar: plucked strings, or a filtered synth bass."""
    u = r.uniform
    p.update(
        tilt=u(0.8, 1.8),
        pluck=u(0.08, 0.35),
        inharmonic=u(0, 3e-5),
        sustain=0.0,
        attack=u(0.002, 0.01),
        tau=u(0.8, 3.0) if family == "bass" else u(0.6, 2.5),
        tau_slope=u(0.05, 0.5),
        noise=u(0.02, 0.1),
        noise_hz=u(1500, 4000),
        noise_tau=u(0.005, 0.03),
        body=_bumps(r, 3, 90, 3000, (-3, 9)) if source == "acoustic" else _bumps(r, 1, 300, 2500, (0, 6)),
    )
    if source == "electronic":
        p["drive"] = u(0, 3) if r.random() < 0.5 else 0.0
    if source == "synthetic":
        p.update(pluck=0.0, sustain=u(0.4, 0.9), tau=math.inf, filter=(u(800, 3000), u(100, 500), u(0.1, 0.5)))


def _keyboard(p: dict[str, Any], family: str, source: str, r: np.random.Generator) -> None:
    u = r.uniform
    if source == "acoustic":  # piano: stiff strings, hammer
        p.update(
            inharmonic=u(5e-5, 4e-4),
            tilt=u(1.2, 2.2),
            sustain=0.0,
            attack=0.003,
            tau=u(1.5, 5.0),
            tau_slope=u(0.1, 0.4),
            noise=u(0.03, 0.1),
            noise_hz=u(1000, 3000),
            noise_tau=0.01,
        )
    elif source == "electronic":  # electric piano: sine-like tine plus a fast bell partial
        p.update(
            ratios=(1.0, 2.0, 3.0, float(u(6.5, 14.0))),
            tilt=u(2.0, 3.0),
            sustain=0.0,
            attack=0.003,
            tau=u(1.0, 3.0),
            tau_slope=u(1.0, 4.0),
            tremolo=u(0, 0.3),
        )
    else:  # synth pad / keys
        p.update(
            tilt=u(0.9, 1.4),
            even=u(0.0, 1.0),
            sustain=u(0.6, 1.0),
            attack=u(0.005, 0.2),
            filter=(u(1500, 6000), u(500, 2000), u(0.2, 1.0)),
            detune=(0.0, u(0.002, 0.008)),
        )


def _mallet(p: dict[str, Any], family: str, source: str, r: np.random.Generator) -> None:
    u = r.uniform
    kind = str(r.choice(list(_MODES)))
    p.update(
        ratios=_MODES[kind],
        tilt=u(0.5, 1.5),
        sustain=0.0,
        attack=0.002,
        tau=u(0.3, 2.0),
        tau_slope=u(0.5, 2.0),
        noise=u(0.05, 0.2),
        noise_hz=u(2000, 6000),
        noise_tau=0.005,
        tremolo=u(0.2, 0.5) if kind == "vibraphone" and source == "electronic" else 0.0,
    )


def _organ(p: dict[str, Any], family: str, source: str, r: np.random.Generator) -> None:
    u = r.uniform
    drawbars = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
    gains = [u(0.2, 1.0) if r.random() < 0.6 else 0.0 for _ in drawbars]
    gains[1] = max(gains[1], 0.5)
    p.update(
        ratios=tuple(d for d, g in zip(drawbars, gains) if g > 0),
        gains=tuple(g for g in gains if g > 0),
        attack=u(0.005, 0.03),
        release=u(0.02, 0.1),
        noise=u(0.0, 0.05),
        noise_hz=3000.0,
        noise_tau=0.01,
        tremolo=u(0.0, 0.2),
        vib_depth=u(0.0, 0.002),
        vib_rate=u(5.5, 7.0),
        vib_delay=0.0,
    )


def _brass(p: dict[str, Any], family: str, source: str, r: np.random.Generator) -> None:
    u = r.uniform
    p.update(
        tilt=u(0.5, 1.1),
        attack=u(0.03, 0.1),
        sustain=u(0.7, 0.95),
        body=_bumps(r, 1, 900, 1600, (4, 10)),
        filter=(u(300, 800), u(2500, 6000), u(0.05, 0.15)),
        vib_depth=u(0.001, 0.005),
        bright_velocity=u(0.5, 0.9),
    )


def _reed(p: dict[str, Any], family: str, source: str, r: np.random.Generator) -> None:
    u = r.uniform
    if r.random() < 0.5:  # clarinet-like: odd harmonics
        p.update(even=u(0.05, 0.3), tilt=u(0.7, 1.3))
    else:  # saxophone-like: all harmonics, formant
        p.update(tilt=u(0.7, 1.2), body=_bumps(r, 2, 500, 2000, (3, 9)))
    p.update(attack=u(0.02, 0.06), sustain=u(0.8, 1.0), noise=u(0.01, 0.05), noise_hz=u(1500, 4000), noise_oct=1.5, vib_depth=u(0.0, 0.004))


def _flute(p: dict[str, Any], family: str, source: str, r: np.random.Generator) -> None:
    u = r.uniform
    p.update(
        partials=8,
        tilt=u(1.8, 3.0),
        even=u(0.5, 1.0),
        attack=u(0.05, 0.15),
        sustain=u(0.8, 1.0),
        noise=u(0.05, 0.2),
        noise_hz=u(2000, 5000),
        noise_oct=2.0,
        vib_depth=u(0.003, 0.008),
    )


def _string(p: dict[str, Any], family: str, source: str, r: np.random.Generator) -> None:
    u = r.uniform
    p.update(
        tilt=u(0.8, 1.4),
        body=_bumps(r, 4, 250, 3500, (-4, 8)),
        attack=u(0.08, 0.3),
        sustain=u(0.8, 1.0),
        noise=u(0.01, 0.05),
        noise_hz=u(2000, 5000),
        noise_oct=2.0,
        vib_depth=u(0.003, 0.01),
        vib_rate=u(5.0, 7.0),
        release=u(0.1, 0.4),
    )


def _synth_lead(p: dict[str, Any], family: str, source: str, r: np.random.Generator) -> None:
    u = r.uniform
    square = r.random() < 0.5
    p.update(
        tilt=1.0,
        even=0.0 if square else 1.0,
        attack=u(0.005, 0.05),
        sustain=u(0.7, 1.0),
        detune=tuple([0.0] + [float(u(-0.01, 0.01)) for _ in range(int(r.integers(0, 3)))]),
        filter=(u(3000, 7000), u(800, 3000), u(0.1, 0.6)),
        vib_depth=u(0.0, 0.006),
    )


def _vocal(p: dict[str, Any], family: str, source: str, r: np.random.Generator) -> None:
    u = r.uniform
    scale = u(0.9, 1.25)
    vowel = _VOWELS[str(r.choice(list(_VOWELS)))]
    p.update(
        partials=60,
        tilt=u(1.2, 1.8),
        baseline_db=-18.0,
        attack=u(0.08, 0.2),
        sustain=u(0.8, 1.0),
        body=[(f * scale, u(0.1, 0.2), u(18, 26)) for f in vowel],
        vib_depth=u(0.004, 0.015),
        noise=u(0.01, 0.06),
        noise_hz=u(2000, 4000),
        noise_oct=1.5,
    )
    if source == "synthetic":
        p.update(detune=(0.0, u(0.003, 0.01)), tilt=u(1.0, 1.4))


_FAMILY_PARAMS = {
    "bass": _plucked,
    "guitar": _plucked,
    "keyboard": _keyboard,
    "mallet": _mallet,
    "organ": _organ,
    "brass": _brass,
    "reed": _reed,
    "flute": _flute,
    "string": _string,
    "synth_lead": _synth_lead,
    "vocal": _vocal,
}


def instrument_params(family: str, source: str, r: np.random.Generator) -> dict[str, Any]:
    """Timbre parameters of one instrument, drawn from its family's physics (loosely)."""
    u = r.uniform
    p: dict[str, Any] = {
        "ratios": None,
        "partials": 40,
        "inharmonic": 0.0,
        "tilt": u(0.9, 1.6),
        "even": 1.0,
        "pluck": 0.0,
        "body": [],
        "baseline_db": 0.0,
        "attack": 0.01,
        "sustain": 1.0,
        "decay": 0.3,
        "release": u(0.05, 0.2),
        "tau": math.inf,
        "tau_slope": 0.0,
        "vib_rate": u(4.5, 6.5),
        "vib_depth": 0.0,
        "vib_delay": u(0.2, 0.6),
        "noise": 0.0,
        "noise_hz": 2000.0,
        "noise_oct": 1.0,
        "noise_tau": math.inf,
        "detune": (0.0,),
        "filter": None,
        "tremolo": 0.0,
        "drive": 0.0,
        "bright_velocity": u(0.2, 0.6),
        "tuning": u(0.0, 0.004),
    }
    _FAMILY_PARAMS[family](p, family, source, r)
    p["level_db"] = float(u(-30, -14))
    p["rt60"] = float(u(0.1, 0.6))
    p["drr_db"] = float(u(4, 20))
    p["eq_db"] = tuple(float(v) for v in r.normal(0, 2.0, 8))
    return p
