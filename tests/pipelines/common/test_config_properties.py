"""Property-based tests of the config loader: any override of any key, with any value a user could
type, gives a checked config or one ConfigError line naming the key; never another exception."""

import json

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures import REPO_ROOT
from pipelines.common.config import ConfigError, flatten, load_config, to_dict
from pipelines.pretrain.config import PretrainConfig

BASE = REPO_ROOT / "configs/pretrain/tiny_cpu.yaml"
KEYS = sorted(flatten(to_dict(load_config(PretrainConfig, BASE, ["data.sources=[{path: /data}]"]))))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=8), SCALARS, max_size=2))


def _typed(value) -> str:
    """The override text a user types for ``value`` (YAML flow style, as --set parses it)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...").strip()


@settings(max_examples=400, deadline=None)
@given(key=st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=12)), value=VALUES, raw=st.booleans())
def test_any_override_gives_a_checked_config_or_one_line_naming_the_key(key, value, raw):
    text = str(value) if raw else _typed(value)  # raw: what a shell passes without quoting
    overrides = ["data.sources=[{path: /data}]", f"{key}={text}"]
    try:
        config = load_config(PretrainConfig, BASE, overrides)
    except ConfigError as error:
        message = str(error)
        assert message and "\n" not in message and "Traceback" not in message
        if key in KEYS and "=" not in key:  # a known key is named in its own error
            section, name = key.split(".", 1)[0], key.rsplit(".", 1)[-1]
            assert section in message or name in message, (key, text, message)
    else:
        json.dumps(to_dict(config))  # whatever was accepted is a plain, loggable config
