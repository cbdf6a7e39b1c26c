"""Property-based tests of the configuration loader (Hypothesis): any JSON document, through the
CLI's own loading path (`--config FILE`), either becomes a valid configuration, every numeric
setting inside its documented range, or is refused with one line naming the key."""
import argparse
import dataclasses
import json
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simsiam_tfx.config import NUMERIC_RANGES, ConfigError, DataConfig, EvalConfig, PipelineConfig, PretrainConfig, \
    ProbeConfig, check_types
from simsiam_tfx.pipeline.flags import add_flags, config_from_args

SECTIONS = {"data": DataConfig, "pretrain": PretrainConfig, "probe": ProbeConfig, "eval": EvalConfig}
KEYS = {f"{section}.{field.name}" for section, cls in SECTIONS.items() for field in dataclasses.fields(cls)} | {
    f.name for f in dataclasses.fields(PipelineConfig) if f.name not in SECTIONS}

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


# Values near the edges of the ranges, of the right and the wrong JSON type.
near_misses = (st.integers(-3, 3) | st.integers(-10, 600) | st.sampled_from([2**31, 2**31 - 1, 10**6, 10**6 + 1])
               | st.floats(-2.0, 2.0) | st.sampled_from([0.0, 0.99, 1.0, 1e-9, float("nan"), float("inf")])
               | st.lists(st.integers(-5, 2000), max_size=4) | st.booleans() | st.none() | st.text(max_size=6))


def section_values(cls) -> st.SearchStrategy:
    """An object with some of the section's own keys, each a near miss or any JSON value."""
    fields = [f.name for f in dataclasses.fields(cls)]
    return st.dictionaries(st.sampled_from(fields), near_misses | near_misses | json_values, max_size=5)


documents = st.one_of(
    json_values,  # anything at all: a list, a number, a string, null
    st.fixed_dictionaries({}, optional={name: section_values(cls) for name, cls in SECTIONS.items()}),
    st.fixed_dictionaries({}, optional={  # the same, now and then with a wrong shape or a stray key
        **{name: section_values(cls) | json_values for name, cls in SECTIONS.items()},
        "output_dir": st.text(max_size=8) | json_values, "pipeline_name": st.text(max_size=70),
        "enable_cache": json_values, "artifact_root": json_values, "beam_pipeline_args": json_values,
        "no_such_key": json_values}),
)


def load(doc, tmp_path_factory) -> PipelineConfig:
    folder = tmp_path_factory.mktemp("config")
    path = folder / "c.json"
    path.write_text(json.dumps(doc, allow_nan=True))
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return config_from_args(parser.parse_args(["--config", str(path), "--output", str(folder / "out")]))


@pytest.mark.fault
@settings(max_examples=1000)
@given(documents)
def test_any_json_document_loads_into_a_valid_configuration_or_is_one_line_naming_the_key(tmp_path_factory, doc):
    try:
        config = load(doc, tmp_path_factory)
    except ConfigError as e:
        message = str(e)
        assert message and "\n" not in message
        # The key it is about is named (a whole document that is no object has no key).
        # The whole key, or the field's name where the section is implied ("unknown backbone ...").
        names = [e.key, e.key.split(".")[-1]] if e.key else []
        assert not names or any(n in message or repr(n)[1:-1] in message for n in names), message
        return
    check_types(config)
    for key, allowed in NUMERIC_RANGES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        for element in (value if isinstance(value, (list, tuple)) else [] if value is None else [value]):
            assert element in allowed, (key, value)


def test_every_numeric_setting_has_a_documented_range():
    hints = {**{f"{s}.{k}": v for s, cls in SECTIONS.items() for k, v in typing.get_type_hints(cls).items()}}
    numeric = {key for key, hint in hints.items()
               if {int, float} & set(typing.get_args(hint) or (hint,)) - {bool}
               or typing.get_origin(hint) is tuple and int in typing.get_args(hint)}
    assert numeric == set(NUMERIC_RANGES), numeric ^ set(NUMERIC_RANGES)
    assert set(NUMERIC_RANGES) <= KEYS
