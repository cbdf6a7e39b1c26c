"""The Trainers' `custom_config`: built once here, read back here by both run_fns.

TFX stores a Trainer's custom_config as JSON in its execution properties, which are part of the
cache key: only the sections the Trainers read enter it (`PipelineConfig.trainer_dict`), so changing
e.g. the accuracy floor or the output folder leaves the Trainers cached. On Kubeflow/Vertex the
whole JSON is one runtime parameter (`custom_config_json`), the only form TFX substitutes there.

What depends on the data (class names and count, the size and augmentation the data plan was
made for) is not in it: it is known only when a run reads its data plan, so ExampleGen records it
on its Examples artifact (example_gen.data_facts reads it) and the Trainers' executor adds it at
run time (components/data_aware_trainer.py); `read` checks the two against each other.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from simsiam_tfx.config import ConfigError, PipelineConfig

DATA_PLAN_KEY = "data_plan"  # added at run time: ExampleGen's record of the plan it read


@dataclasses.dataclass(frozen=True)
class TrainerSettings:
    config: PipelineConfig
    class_names: tuple[str, ...]  # label order; served as `class_name`
    gpus: int = 0  # GPUs the compiled pipeline requested per Trainer (0: none required)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def custom_config(config: PipelineConfig, gpus: int = 0) -> dict[str, Any]:
    return {"config": config.trainer_dict(), "gpus": gpus}


def custom_config_json(config: PipelineConfig, gpus: int = 0) -> str:
    """Exactly the text the Trainer component stores for the dict form."""
    from tfx.utils import json_utils
    return json_utils.dumps(custom_config(config, gpus))


def with_data_plan(custom: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """custom_config plus ExampleGen's record of the data plan (class_names, image_size)."""
    return {**custom, DATA_PLAN_KEY: facts}


def _apply_data_plan(config: PipelineConfig, facts: dict[str, Any]) -> tuple[str, ...]:
    """Checks the settings that must match the data; returns the class names."""
    names = tuple(facts.get("class_names") or ())
    if len(names) < 2:
        raise ConfigError(f"the data plan names {len(names)} classes; the probe needs at least 2 labelled classes")
    planned_size = int(facts.get("image_size") or 0)
    if planned_size and planned_size != config.data.image_size:
        raise ConfigError(f"the data plan was made for --image-size {planned_size} but the pipeline was compiled "
                          f"with --image-size {config.data.image_size}: recompile or re-make the plan with one size")
    return names


def compiled(custom: dict[str, Any]) -> tuple[PipelineConfig, int]:
    """(configuration, GPUs) of a custom_config as compiled, before any data is read."""
    return PipelineConfig.from_dict(custom["config"]), int(custom.get("gpus") or 0)


def read(custom: dict[str, Any]) -> TrainerSettings:
    """The run_fns' view of `fn_args.custom_config`."""
    config, gpus = compiled(custom)
    if DATA_PLAN_KEY not in custom:
        raise ConfigError("the Trainer's custom_config has no data plan: run it through "
                          "simsiam_tfx.components.data_aware_trainer (ExampleGen's record of the data)")
    names = _apply_data_plan(config, custom[DATA_PLAN_KEY])
    return TrainerSettings(config, names, gpus)
