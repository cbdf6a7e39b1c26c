"""The Trainers' `custom_config`: built once here, read back here by both run_fns.

TFX stores a Trainer's custom_config as JSON in its execution properties, which are part of the
cache key: only the sections the Trainers read enter it (`PipelineConfig.trainer_dict`), so changing
e.g. the accuracy floor or the output folder leaves the Trainers cached. On Kubeflow/Vertex the
whole JSON is one runtime parameter (`custom_config_json`), the only form TFX substitutes there.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

from simsiam_tfx.config import PipelineConfig


@dataclasses.dataclass(frozen=True)
class TrainerSettings:
    config: PipelineConfig
    num_classes: int
    class_names: tuple[str, ...]  # label order; served as `class_name`


def custom_config(config: PipelineConfig, num_classes: int,
                  class_names: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """`class_names` default to the ids as text ("0", "1", ...)."""
    names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")
    return {"config": config.trainer_dict(), "num_classes": num_classes, "class_names": names}


def custom_config_json(config: PipelineConfig, num_classes: int,
                       class_names: Optional[Sequence[str]] = None) -> str:
    """Exactly the text the Trainer component stores for the dict form."""
    from tfx.utils import json_utils
    return json_utils.dumps(custom_config(config, num_classes, class_names))


def read(custom: dict[str, Any]) -> TrainerSettings:
    """The run_fns' view of `fn_args.custom_config`."""
    num_classes = int(custom["num_classes"])
    names = custom.get("class_names") or [str(i) for i in range(num_classes)]
    return TrainerSettings(PipelineConfig.from_dict(custom["config"]), num_classes, tuple(names))
