"""SimSiam pre-training: transformed examples -> a trained SimSiam model and its metrics.

Runs on one device, on several GPUs (MirroredStrategy) or on several machines
(MultiWorkerMirroredStrategy, from TF_CONFIG); see `trainer.distribute`. With several workers every
one of them calls `pretrain`; only the chief writes TensorBoard logs and resumable checkpoints.
The TFX adapter (FnArgs, export) is components/simsiam_pretrain.py.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
import types

import tensorflow as tf
import tf_keras as keras

from simsiam_tfx import contract, files
from simsiam_tfx.config import ConfigError, PipelineConfig, duration_seconds, is_cifar_size
from simsiam_tfx.registries import PRECISION_POLICIES
from simsiam_tfx.trainer import backbones, data, distribute, heads, model, monitors, schedules

HISTORY_FILE = contract.HISTORY_FILE
BUDGET_FILE = contract.TIME_BUDGET_FILE  # the epochs a --time-budget chose, beside the checkpoints (a resumed run keeps them)
MEASURED_STEPS = 12  # train steps timed, after the warm-up ones, to choose the epochs of a time budget
WARMUP_STEPS = 3
RISING = 0.01  # kNN accuracy gained over the last quarter of the run that counts as "still rising"


def build_simsiam(backbone: str, width: int, image_size: int, proj_dim: int, weight_decay: float,
                  learning_rate, momentum: float = 0.9, jit_compile: bool = False,
                  view_size: int | None = None) -> model.SimSiam:
    """The SimSiam model, compiled, under the current global precision policy. Trained on views
    of `view_size` other than `image_size`, its encoder takes images of any side (the kNN monitor
    feeds it whole images); `backbones.with_input_size` gives it back at the image side.

    Build it inside `strategy.scope()` to train it under a strategy. Under "mixed_float16" both
    optimizers are wrapped in a dynamic `LossScaleOptimizer` (the train step scales the loss and
    unscales the gradients); Keras would wrap only the one passed to compile.
    """
    any_size = view_size is not None and view_size != image_size
    encoder = backbones.build_encoder(backbone, None if any_size else image_size, width)
    feature_dim = encoder.output_shape[-1]
    projector = heads.build_projector(feature_dim, proj_dim, num_layers=2 if is_cifar_size(image_size) else 3)
    predictor = heads.build_predictor(proj_dim)
    predictor_lr = schedules.peak_learning_rate(learning_rate)  # paper: fixed at the peak LR
    optimizer = keras.optimizers.SGD(learning_rate, momentum=momentum)
    predictor_optimizer = keras.optimizers.SGD(predictor_lr, momentum=momentum)
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
        predictor_optimizer = keras.mixed_precision.LossScaleOptimizer(predictor_optimizer)
    simsiam = model.SimSiam(encoder, projector, predictor, weight_decay, predictor_optimizer=predictor_optimizer)
    simsiam.compile(optimizer=optimizer, jit_compile=jit_compile)
    return simsiam


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves model, both optimizers, the epoch counter and the monitor history after every epoch."""

    def __init__(self, manager: tf.train.CheckpointManager, epoch: tf.Variable, monitor: monitors.EpochMonitor):
        super().__init__()
        self.manager, self.epoch, self.monitor = manager, epoch, monitor

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)
        # History first: a kill between the two writes leaves an extra row, dropped on restore.
        # Written aside and renamed into place, so a kill or a full disk never leaves half a file.
        tf.io.gfile.makedirs(self.manager.directory)
        files.write_json(os.path.join(self.manager.directory, HISTORY_FILE), self.monitor.history)
        self.manager.save(checkpoint_number=epoch + 1)


def _restore(simsiam: model.SimSiam, checkpoint_dir: str, monitor: monitors.EpochMonitor,
             write_dir: str | None = None):
    """Returns (manager, epoch variable, completed epochs); resumes from the latest checkpoint in
    `checkpoint_dir`. The manager saves into `write_dir` (default: `checkpoint_dir`).

    Call it inside the strategy's scope. With several workers every one of them must save (reading
    the BatchNorm moving averages is an all-reduce across workers), but only the chief into
    `checkpoint_dir`, the one every worker resumes from; the others save into a scratch folder.
    """
    history = _usable_checkpoint(checkpoint_dir)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    # Optimizer slots must exist before restoring so their values are restored too.
    simsiam.optimizer.build(simsiam.backbone_variables())
    simsiam.predictor_optimizer.build(simsiam.predictor.trainable_variables)
    checkpoint = tf.train.Checkpoint(encoder=simsiam.encoder, projector=simsiam.projector,
                                     predictor=simsiam.predictor, optimizer=simsiam.optimizer,
                                     predictor_optimizer=simsiam.predictor_optimizer, epoch=epoch)
    manager = tf.train.CheckpointManager(checkpoint, write_dir or checkpoint_dir, max_to_keep=2)
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest and history is not None:
        checkpoint.restore(latest).assert_existing_objects_matched()
        monitor.history = [row for row in history if row["epoch"] <= int(epoch.numpy())]
        print(f"[pretrain] resuming after epoch {int(epoch.numpy())} from {latest}", flush=True)
    return manager, epoch, int(epoch.numpy())


def _usable_checkpoint(checkpoint_dir: str) -> list[dict] | None:
    """The monitor history of the latest checkpoint in `checkpoint_dir` when every part of it reads
    back whole; None when there is none. A damaged one (a disk that filled up, a file cut short) is
    moved aside with a warning, so training starts afresh instead of failing on every later run."""
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if not latest:
        return None
    try:
        reader = tf.train.load_checkpoint(latest)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)  # reads every tensor: a truncated data file fails here
        history = files.read_json(os.path.join(checkpoint_dir, HISTORY_FILE), expect=list)
        if history is None or not all(isinstance(r, dict) and "epoch" in r for r in history):
            raise ValueError(f"{HISTORY_FILE} is missing or not a list of epoch rows")
        return history
    except (tf.errors.OpError, ValueError, OSError, IndexError) as e:  # the reader raises IndexError when cut short
        aside = f"{checkpoint_dir.rstrip('/')}.damaged-{int(time.time())}"
        tf.io.gfile.rename(checkpoint_dir, aside)
        reason = " ".join(str(e).split())[:200]
        print(f"[pretrain] WARNING: checkpoint in {checkpoint_dir} is damaged ({type(e).__name__}: {reason}); "
              f"moved to {aside}, training starts from epoch 0", flush=True)
        return None


class _EncoderSnapshot(keras.callbacks.Callback):
    """Several workers only: copies the trained encoder's weights into an undistributed copy.

    Under MultiWorkerMirroredStrategy each replica keeps its own BatchNorm moving averages and a
    read outside the train step averages them, an all-reduce every worker must join. So every
    worker reads them here, together, at the end of each epoch the monitor runs kNN, and the chief
    runs the kNN monitor on its own copy (`copy`; None on the other workers) without the others.
    """

    def __init__(self, copy: keras.Model | None, knn_every: int):
        super().__init__()
        self.copy, self.knn_every = copy, knn_every

    def on_epoch_end(self, epoch, logs=None):
        if not monitors.knn_due(epoch + 1, self.knn_every, self.params["epochs"]):
            return
        weights = self.model.encoder.get_weights()
        if self.copy is not None:
            self.copy.set_weights(weights)


class _CopyMonitor(monitors.EpochMonitor):
    """An EpochMonitor whose kNN features come from `encoder` instead of the trained model's."""

    def __init__(self, encoder: keras.Model, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._copy = types.SimpleNamespace(encoder=encoder)

    def set_model(self, model):
        super().set_model(self._copy)  # EpochMonitor reads only `self.model.encoder`


def _views(strategy: tf.distribute.Strategy, files, image_size: int, batch_size: int,
           transform: data.Transform, seed: int, num_examples: int, view_size: int):
    """Endless (view1, view2) batches of `batch_size` (the global batch), views of `view_size`, as
    `strategy` trains on them.

    One replica: `data.pretrain_views`. Several: `distribute_datasets_from_function`, every replica
    getting batch_size / replicas examples a step, so a step still trains on `batch_size` examples
    in all. There is one input pipeline per worker, each reading every record but decoding and
    augmenting only its own 1/workers of the examples (`shard` before the views), with its own
    augmentation seed. Not tf.data auto-sharding: FILE sharding needs at least as many files as
    workers (one file is common here), and DATA sharding of this already batched and augmented
    stream would make every worker decode and augment the whole global batch to keep 1/workers.
    """
    if strategy.num_replicas_in_sync == 1:
        return data.pretrain_views(files, image_size, batch_size, transform, seed, num_examples, view_size=view_size)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = context.get_per_replica_batch_size(batch_size)
        pipelines, index = context.num_input_pipelines, context.input_pipeline_id
        if pipelines == 1:  # one worker, several GPUs: its replicas take turns on one stream
            return data.pretrain_views(files, image_size, per_replica, transform, seed, num_examples,
                                       view_size=view_size)
        return data.pretrain_views(files, image_size, per_replica, transform, seed + index,
                                   len(range(index, num_examples, pipelines)), shard=(pipelines, index),
                                   view_size=view_size)

    return strategy.distribute_datasets_from_function(dataset_fn)


@dataclasses.dataclass(frozen=True)
class PretrainData:
    """Transformed-example files: what to pre-train on, and the kNN monitor's reference (probe_train)
    and query (eval) sets (None: no monitor); and the Transform stage's graph that draws the views:
    its artifact folder (the pipeline), or a `data.Transform` (outside TFX: benchmarks, tests)."""
    pretrain_files: list[str]
    transform_graph: str | data.Transform
    probe_files: list[str] | None = None
    eval_files: list[str] | None = None
    num_classes: int = 0

    def transform(self) -> data.Transform:
        if isinstance(self.transform_graph, data.Transform):
            return self.transform_graph
        return data.Transform.load(self.transform_graph)


@dataclasses.dataclass(frozen=True)
class _Run:
    """What one pre-training run is: its resolved settings, strategy and step plan."""
    config: PipelineConfig  # with .pretrain resolved for the image size
    strategy: tf.distribute.Strategy
    scratch: str | None  # a worker's private folder; None on the chief
    num_examples: int
    batch_size: int  # global, split evenly over the replicas
    steps_per_epoch: int

    @property
    def p(self):
        return self.config.pretrain

    @property
    def image_size(self) -> int:
        return self.config.data.image_size

    @property
    def peak_lr(self) -> float:
        return self.p.base_lr * self.batch_size / 256


def pretrain(config: PipelineConfig, inputs: PretrainData, log_dir: str,
             checkpoint_dir: str | None = None, initial_encoder_weights: list | None = None
             ) -> tuple[model.SimSiam, dict]:
    """Runs pre-training; returns the model and a metrics dict (per-epoch history included).

    With `initial_encoder_weights` (an encoder of the same architecture's `get_weights()`), the
    encoder starts from them instead of a fresh initialisation (warm start); projector and
    predictor start fresh. With `checkpoint_dir`, saves after every epoch and resumes from the
    last completed one (a resumed run continues from its checkpoint, not the initial weights).
    Under the strategy of `distribute.strategy_from_environment()`; with several workers, every
    worker calls this, and only the chief writes into `log_dir` and `checkpoint_dir`.
    """
    p = config.pretrain_settings()
    if p.precision == "auto":
        precision, why = auto_precision(p.width)
        print(f"[pretrain] precision auto: {precision} ({why})", flush=True)
        p = dataclasses.replace(p, precision=precision)
    # First, before TensorFlow runs anything: MultiWorkerMirroredStrategy sets up collective ops.
    strategy = distribute.strategy_from_environment()
    # Workers other than the chief write logs and checkpoints into a scratch folder, deleted after.
    scratch = None if distribute.is_chief() else tempfile.mkdtemp(prefix="simsiam-worker-")
    # The policy is global in Keras: set it only while this model is built and trained.
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[p.precision])
    try:
        started = time.perf_counter()
        keras.utils.set_random_seed(p.seed)
        run = _plan(dataclasses.replace(config, pretrain=p), strategy, scratch, inputs.pretrain_files)
        budget = None
        if p.time_budget is not None:
            run, budget = _fit_to_budget(run, inputs, checkpoint_dir, started)
            keras.utils.set_random_seed(p.seed)  # the measurement drew random numbers
        simsiam, metrics = _train(run, inputs, log_dir, checkpoint_dir, initial_encoder_weights)
        metrics["time_budget"] = budget
        return simsiam, metrics
    finally:
        keras.mixed_precision.set_global_policy("float32")
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _plan(config, strategy, scratch, pretrain_files) -> _Run:
    replicas = strategy.num_replicas_in_sync
    num_examples = data.count_examples(pretrain_files)
    batch_size = min(config.pretrain.batch_size, num_examples) // replicas * replicas
    if batch_size == 0:
        raise ValueError(f"{num_examples} examples cannot fill a batch on each of {replicas} replicas")
    return _Run(config, strategy, scratch, num_examples, batch_size,
                steps_per_epoch=max(1, num_examples // batch_size))


def cpu_features() -> set[str]:
    """This CPU's feature flags (/proc/cpuinfo; empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            return set(next(line.split(":", 1)[1].split() for line in f if line.startswith("flags")))
    except (OSError, StopIteration):
        return set()


# On CPUs, oneDNN's fast bf16 kernels (AMX tiles, AVX512-BF16) work on channels in blocks of 16:
# a narrower first stage falls to slower paths, and bf16 is then slower than fp32 (the measured
# step: docs/benchmarks.md, "Width 8 did not hold").
BF16_CPU_MIN_WIDTH = 16


def auto_precision(width: int, cpu_flags: set[str] | None = None, gpus=None) -> tuple[str, str]:
    """(precision, why) for --precision auto: bf16 where the hardware computes it natively (a GPU
    of compute capability 8.0 or newer; a CPU with AVX512-BF16 or AMX-BF16, for an encoder at
    least `BF16_CPU_MIN_WIDTH` channels wide), else fp32."""
    gpus = tf.config.list_physical_devices("GPU") if gpus is None else gpus
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        if tuple(capability) >= (8, 0):
            return "bf16", f"GPU compute capability {capability[0]}.{capability[1]}"
        return "fp32", f"GPU compute capability {capability[0]}.{capability[1]} has no native bf16"
    cpu_flags = cpu_features() if cpu_flags is None else cpu_flags
    native = sorted(cpu_flags & {"avx512_bf16", "amx_bf16"})
    if native and width < BF16_CPU_MIN_WIDTH:
        return "fp32", (f"this CPU computes bf16 ({', '.join(native)}), but not faster than fp32 for "
                        f"width {width} < {BF16_CPU_MIN_WIDTH}")
    if native:
        return "bf16", f"this CPU computes bf16: {', '.join(native)}"
    return "fp32", "this CPU has no native bf16 (no avx512_bf16 or amx_bf16)"


def choose_epochs(budget_s: float, spent_s: float, images_per_second: float, images_per_epoch: int,
                  knn_pass_s: float, knn_every: int = 1) -> int:
    """How many whole epochs fit in what is left of the budget (the cosine schedule then ends
    inside it): each epoch trains `images_per_epoch`; every `knn_every` epochs and after the last
    the kNN monitor takes `knn_pass_s`."""
    left = max(0.0, budget_s - spent_s - knn_pass_s)  # the pass after the last epoch
    per_epoch = images_per_epoch / images_per_second + knn_pass_s / knn_every
    return int(left // per_epoch)


class _StepTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def _measure(run: _Run, inputs: PretrainData) -> tuple[float, float]:
    """(images per second of the train step, seconds of one kNN monitor pass), on a throwaway model
    of the same settings fed by the same input pipeline."""
    p = run.p
    with run.strategy.scope():
        trial = build_simsiam(p.backbone, p.width, run.image_size, p.proj_dim, p.weight_decay, run.peak_lr, p.momentum,
                              view_size=p.view_size)
    views = _views(run.strategy, inputs.pretrain_files, run.image_size, run.batch_size, inputs.transform(), p.seed,
                   run.num_examples, p.view_size)
    times = _StepTimes()
    trial.fit(views, epochs=1, steps_per_epoch=WARMUP_STEPS + MEASURED_STEPS, callbacks=[times], verbose=0)
    measured = times.ends[-1] - times.ends[WARMUP_STEPS - 1]
    images_per_second = MEASURED_STEPS * run.batch_size / max(measured, 1e-9)
    knn_seconds = 0.0
    if p.knn_k > 0 and inputs.probe_files and inputs.eval_files:
        start = time.perf_counter()
        for files in (inputs.probe_files, inputs.eval_files):
            monitors.extract_features(trial.encoder, data.labelled_images(files, run.image_size, 512))
        knn_seconds = time.perf_counter() - start
    return images_per_second, knn_seconds


def _fit_to_budget(run: _Run, inputs: PretrainData, checkpoint_dir: str | None, started: float) -> tuple[_Run, dict]:
    """The run with its epochs chosen for --time-budget, and what was decided. A resumed run keeps
    the epochs its first execution chose (its checkpoints follow that schedule)."""
    p = run.p
    budget_s = duration_seconds(p.time_budget)
    if distribute.num_workers() > 1:  # each worker would measure, and choose, its own epochs
        raise ConfigError("--time-budget with several workers is not supported yet: set --epochs")
    saved = os.path.join(checkpoint_dir, BUDGET_FILE) if checkpoint_dir else None
    decision = files.read_json(saved) if saved else None
    if decision is None:
        images_per_second, knn_seconds = _measure(run, inputs)
        images_per_epoch = run.steps_per_epoch * run.batch_size
        spent = time.perf_counter() - started
        epochs = choose_epochs(budget_s, spent, images_per_second, images_per_epoch, knn_seconds, p.knn_every)
        per_epoch = images_per_epoch / images_per_second + knn_seconds
        if epochs < 1:
            raise ConfigError(f"--time-budget {p.time_budget} is too small for one epoch of pre-training: one takes "
                              f"about {per_epoch:.0f} s here ({images_per_second:.0f} images/s, {images_per_epoch} "
                              f"images an epoch{f', kNN monitor {knn_seconds:.0f} s' if knn_seconds else ''}) and "
                              f"{spent:.0f} s went into setting up and measuring")
        decision = {"budget": p.time_budget, "budget_seconds": budget_s, "epochs": epochs,
                    "images_per_second": images_per_second, "knn_seconds_per_epoch": knn_seconds / p.knn_every,
                    "seconds_before_training": spent}
        if saved and distribute.is_chief():
            tf.io.gfile.makedirs(checkpoint_dir)
            files.write_json(saved, decision)
    print(f"[pretrain] epochs chosen: {decision['epochs']} for {decision['budget']} at "
          f"{decision['images_per_second']:.0f} images/s", flush=True)
    warmup = min(p.warmup_epochs, decision["epochs"] - 1)
    pretrain_settings = dataclasses.replace(p, epochs=decision["epochs"], warmup_epochs=warmup)
    return dataclasses.replace(run, config=dataclasses.replace(run.config, pretrain=pretrain_settings)), decision


def more_time_verdict(history: list[dict], seconds: float) -> dict | None:
    """Whether the run's kNN curve was still rising at its end: its rise over the last quarter of
    the epochs (a least-squares line through the kNN points there and the one before, so one noisy
    point does not decide, whatever the monitor's cadence), and a suggested pre-training budget.
    None without at least 3 kNN points and 4 epochs."""
    import numpy as np
    points = [(row["epoch"], row["knn_accuracy"]) for row in history if row.get("knn_accuracy") is not None]
    if len(points) < 3 or history[-1]["epoch"] < 4:
        return None
    last = history[-1]["epoch"]
    quarter = max(2, last // 4)
    first = max((i for i, (epoch, _) in enumerate(points) if epoch <= last - quarter), default=0)
    epochs, accuracies = np.asarray(points[first:], dtype=float).T
    rise = float(np.polyfit(epochs, accuracies, 1)[0]) * quarter
    rising = rise >= RISING
    return {"knn_rise_last_quarter": rise, "last_quarter_epochs": quarter, "still_rising": rising,
            "suggested_budget_seconds": round(2 * seconds) if rising else None}


def _monitor(run: _Run, inputs: PretrainData, log_dir: str, learning_rate) -> tuple[list, monitors.EpochMonitor]:
    """The per-epoch monitor (loss, z-std, kNN on the chief) and, with several workers, the
    callback that snapshots the encoder for it (see _EncoderSnapshot)."""
    p = run.p
    knn = p.knn_k > 0 and bool(inputs.probe_files) and bool(inputs.eval_files)
    knn_data = None
    if knn and not run.scratch:  # the monitor reports from the chief only
        knn_data = (data.labelled_images(inputs.probe_files, run.image_size, 512),
                    data.labelled_images(inputs.eval_files, run.image_size, 512))
    callbacks, copy = [], None
    if knn and distribute.num_workers() > 1:
        # Every worker joins the weight snapshot; the chief runs kNN on its copy.
        copy = None if run.scratch else backbones.build_encoder(p.backbone, run.image_size, p.width)
        callbacks.append(_EncoderSnapshot(copy, p.knn_every))
    args = (os.path.join(run.scratch, "tensorboard") if run.scratch else log_dir, p.proj_dim, knn_data, p.knn_k,
            p.knn_temperature, inputs.num_classes)
    kwargs = {"learning_rate": learning_rate, "knn_every": p.knn_every}
    monitor = (_CopyMonitor(copy, *args, **kwargs) if copy is not None else monitors.EpochMonitor(*args, **kwargs))
    return callbacks + [monitor], monitor


def _train(run: _Run, inputs: PretrainData, log_dir: str, checkpoint_dir: str | None,
           initial_encoder_weights: list | None = None):
    p, image_size = run.p, run.image_size
    schedule = schedules.warmup_cosine(run.peak_lr, p.epochs * run.steps_per_epoch,
                                       p.warmup_epochs * run.steps_per_epoch, p.final_lr_fraction)
    with run.strategy.scope():
        simsiam = build_simsiam(p.backbone, p.width, image_size, p.proj_dim, p.weight_decay, schedule, p.momentum,
                                view_size=p.view_size)
        if initial_encoder_weights is not None:
            simsiam.encoder.set_weights(initial_encoder_weights)
    transform = inputs.transform()
    views = _views(run.strategy, inputs.pretrain_files, image_size, run.batch_size, transform, p.seed,
                   run.num_examples, p.view_size)
    callbacks, monitor = _monitor(run, inputs, log_dir, lambda: schedule(simsiam.optimizer.iterations))
    views_by = "in process" if isinstance(inputs.transform_graph, data.Transform) else "the Transform graph"
    print(f"[pretrain] {run.num_examples} images, batch {run.batch_size}, {run.steps_per_epoch} steps/epoch x "
          f"{p.epochs} epochs, peak lr {run.peak_lr:.4g}, wd {p.weight_decay}, d={p.proj_dim}, "
          f"augment={transform.policy['name']} ({views_by}), views {p.view_size} px, precision={p.precision}",
          flush=True)
    print(f"[pretrain] {distribute.strategy_name(run.strategy)}: num_replicas_in_sync="
          f"{run.strategy.num_replicas_in_sync}, workers={distribute.num_workers()}, chief={run.scratch is None}",
          flush=True)
    initial_epoch = 0
    if checkpoint_dir:
        with run.strategy.scope():
            manager, epoch_var, initial_epoch = _restore(
                simsiam, checkpoint_dir, monitor,
                write_dir=os.path.join(run.scratch, "checkpoints") if run.scratch else None)
        callbacks.append(EpochCheckpoint(manager, epoch_var, monitor))
    if run.scratch is None:  # the chief shows the progress bar
        callbacks.append(monitors.StepProgress(p.epochs * run.steps_per_epoch, run.batch_size,
                                               initial_epoch * run.steps_per_epoch))
    start = time.perf_counter()
    if initial_epoch < p.epochs:
        simsiam.fit(views, epochs=p.epochs, initial_epoch=initial_epoch, steps_per_epoch=run.steps_per_epoch,
                    callbacks=callbacks, verbose=0)
    metrics = _metrics(run, monitor.history, initial_epoch, time.perf_counter() - start)
    if metrics["collapsed"]:
        message = (f"SimSiam collapsed: z-std {metrics['z_std']:.4g} vs healthy {metrics['z_std_healthy']:.4g}, "
                   f"loss {metrics['final_loss']:.4f}")
        if p.fail_on_collapse:
            raise RuntimeError(message)
        print(f"[pretrain] WARNING: {message}", flush=True)
    return simsiam, metrics


def _metrics(run: _Run, history: list[dict], initial_epoch: int, seconds: float) -> dict:
    p, last = run.p, history[-1]
    return {
        "epochs": p.epochs,
        "num_examples": run.num_examples,  # pre-training images this execution trained on
        "precision": p.precision,
        "steps": p.epochs * run.steps_per_epoch,
        "batch_size": run.batch_size,
        "replicas": run.strategy.num_replicas_in_sync,
        "workers": distribute.num_workers(),
        "peak_learning_rate": run.peak_lr,
        "final_loss": last["loss"],
        "z_std": last["z_std"],
        "z_std_healthy": monitors.healthy_z_std(p.proj_dim),
        "collapsed": last["collapsed"],
        "knn_accuracy": last.get("knn_accuracy"),
        # Of this execution only (a resumed run counts the epochs it ran itself).
        "images_per_second": (p.epochs - initial_epoch) * run.steps_per_epoch * run.batch_size / max(seconds, 1e-9),
        "seconds": seconds,
        "resumed_after_epoch": initial_epoch,
        "more_time": more_time_verdict(history, seconds),
        "history": history,
    }
