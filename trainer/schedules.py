"""The paper's learning-rate schedule: linear warm-up, then cosine decay to 0."""
from __future__ import annotations

import tf_keras as keras


def warmup_cosine(peak_lr: float, total_steps: int, warmup_steps: int = 0,
                  final_fraction: float = 0.0) -> keras.optimizers.schedules.CosineDecay:
    """Linear warm-up from 0 to `peak_lr` over `warmup_steps`, then cosine decay to
    `final_fraction` x `peak_lr` (the paper: 0) at exactly `total_steps` (warm-up included): Keras'
    CosineDecay counts its decay after the warm-up.

    `total_steps` must be epochs x steps-per-epoch of the real run: a schedule that ends early
    trains the remaining steps at a learning rate of 0.
    """
    if total_steps <= warmup_steps:
        raise ValueError(f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(peak_lr, decay_steps=total_steps, alpha=final_fraction)
    return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=total_steps - warmup_steps, alpha=final_fraction,
                                                  warmup_target=peak_lr, warmup_steps=warmup_steps)


def peak_learning_rate(schedule) -> float:
    """The highest rate of a `warmup_cosine` schedule (or a constant rate as it is)."""
    if isinstance(schedule, keras.optimizers.schedules.CosineDecay):
        return float(schedule.warmup_target if schedule.warmup_target is not None else schedule.initial_learning_rate)
    return float(schedule)
