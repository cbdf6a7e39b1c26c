"""PyTorch side by side with `simsiam-tfx bench`: the same SimSiam train step, timed in PyTorch.

What it measures: pairs of views per second of one SimSiam training step on synthetic in-memory
tensors, after warm-up steps: the same figure as bench's `train_images_per_second` (bench's
"image" is one pair of views, i.e. two forward/backward passes of the encoder; a step of batch B
trains B pairs, and the rate is timed steps x B / seconds). Input pipeline and Keras `fit` are not
part of it (bench's `input_images_per_second` and `end_to_end_images_per_second` have no
counterpart here).

The network is the one `simsiam_tfx.trainer.pretrain.build_simsiam` builds for bench:

- encoder: CIFAR ResNet-18 at width w (trainer/backbones.py): x * 2 - 1, 3x3 stride-1 stem conv,
  BN, ReLU, no max-pool; four stages of two basic blocks, widths w, 2w, 4w, 8w, strides 1, 2, 2, 2;
  1x1 conv + BN shortcut where the shape changes; bias-free convs; BN eps 1e-5, momentum 0.1
  (Keras' 0.9); the last BN of each block starts with gamma 0; global average pool, in float32.
- projector (trainer/heads.py): d = 16 * w (config.default_proj_dim for resnet18), 2 layers for
  images up to 96 px, 3 above (config.is_cifar_size): Linear(no bias) -> BN -> ReLU, ...,
  Linear(no bias) -> BN without affine parameters.
- predictor: d -> d/4 (no bias) -> BN -> ReLU -> d (with bias).
- loss (trainer/losses.py): 0.5 D(p1, sg(z2)) + 0.5 D(p2, sg(z1)), D = -cosine, in float32; each
  view is its own forward pass (BN statistics per view).
- optimisation (trainer/model.py, bench.run): two SGD optimizers (encoder+projector; predictor),
  lr 0.05, momentum 0.9, coupled weight decay 5e-4 on every trainable weight, BN included (that is
  torch.optim.SGD's `weight_decay`). The step also computes the z-std monitor of z1, as Keras' does,
  and reads the loss back (bench calls `.numpy()` on it every step).

Trainable parameter counts equal the Keras model's (`--count-params`; BN moving statistics are
buffers here and non-trainable there). One known difference: stride-2 3x3 convs pad 1 on every
side here, while Keras' "same" pads 0 before and 1 after; shapes and FLOPs are identical.

Precision: fp32; bf16 is `torch.autocast("cpu", dtype=torch.bfloat16)` around the forward passes
(convs and linears in bf16, weights kept in fp32, loss in fp32), the counterpart of Keras'
mixed_bfloat16 that bench's `--precision bf16` sets. Tensors are channels_last (NHWC, like TF).

Install PyTorch in its own venv, never in the project's (it is no dependency of the project, and
nothing in simsiam_tfx or the tests imports this file):

    python3 -m venv /work/torchvenv
    /work/torchvenv/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

That is the small CPU-only build (~190 MB wheel). Plain `pip install torch==2.13.0` from PyPI on
Linux x86_64 brings the CUDA build and several GB of nvidia-* wheels instead. Where PyTorch's own
index is not reachable but a local wheel is (here: /opt/wheels/torch-2.13.0+cpu-...whl, which pip's
find-links picks up), `/work/torchvenv/bin/pip install "torch==2.13.0+cpu"` installs it.

Run it beside bench (one at a time, on an otherwise idle machine; both use 2 threads here):

    /work/torchvenv/bin/python benchmarks/torch_compare.py --widths 16 32 64 --precisions fp32 bf16
    /work/torchvenv/bin/python benchmarks/torch_compare.py --bench-commands   # bench's side, to paste
    /work/torchvenv/bin/python benchmarks/torch_compare.py --count-params --widths 16

`--bench-commands` needs no torch (any python3 runs it); each result line also carries its
`bench_command`. Compare `train_pairs_per_second` here with bench's `train_images_per_second`.

Only on an idle machine: with another process on the cores, PyTorch's 2 OpenMP threads wait for
each other at every op (one of them descheduled) and the rate falls by one to two orders of
magnitude (seen here: 4.9 s a step with 2 threads, 0.13 s with `--threads 1`, same busy machine).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.1  # PyTorch's convention; backbones.BN_MOMENTUM = 0.9 in Keras'
CIFAR_SIZE_MAX = 96  # config.CIFAR_SIZE_MAX: up to this side, a 2-layer projector
# bench.run's fixed settings (the ones its CLI does not expose).
LEARNING_RATE = 0.05
WEIGHT_DECAY = 5e-4
MOMENTUM = 0.9
# bench's CLI defaults.
DEFAULT_WIDTH, DEFAULT_IMAGE_SIZE, DEFAULT_BATCH_SIZE, DEFAULT_STEPS, DEFAULT_WARMUP = 16, 32, 256, 20, 3


def proj_dim(width: int) -> int:
    """config.default_proj_dim("resnet18", width)."""
    return 16 * width


def projector_layers(image_size: int) -> int:
    """pretrain.build_simsiam: 2 layers for CIFAR-size images, 3 above."""
    return 2 if image_size <= CIFAR_SIZE_MAX else 3


def bench_command(width: int, precision: str, batch_size: int, image_size: int, steps: int, warmup: int,
                  xla: bool = False) -> str:
    """The `simsiam-tfx bench` command that times the same step (pipeline/cli.py's bench flags)."""
    args = ["simsiam-tfx", "bench", "--backbone", "resnet18", "--width", str(width), "--image-size", str(image_size),
            "--batch-size", str(batch_size), "--precision", precision, "--steps", str(steps), "--warmup", str(warmup)]
    if xla:
        args.append("--xla")
    return shlex.join(args)


def build(width: int, image_size: int):
    """(encoder, projector, predictor) as torch modules, initialised as the Keras model is."""
    import torch
    from torch import nn

    def conv(cin, cout, kernel, stride):
        c = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)
        # Keras VarianceScaling(2.0, "fan_out", "truncated_normal"): std / .8796 cut at 2 std.
        std = math.sqrt(2.0 / (cout * kernel * kernel)) / 0.87962566103423978
        nn.init.trunc_normal_(c.weight, std=std, a=-2 * std, b=2 * std)
        return c

    def bn2d(c, zero_gamma=False):
        b = nn.BatchNorm2d(c, eps=BN_EPSILON, momentum=BN_MOMENTUM)
        if zero_gamma:
            nn.init.zeros_(b.weight)
        return b

    def bn1d(c, affine=True):
        return nn.BatchNorm1d(c, eps=BN_EPSILON, momentum=BN_MOMENTUM, affine=affine)

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1, self.bn1 = conv(cin, cout, 3, stride), bn2d(cout)
            self.conv2, self.bn2 = conv(cout, cout, 3, 1), bn2d(cout, zero_gamma=True)
            self.down = (nn.Sequential(conv(cin, cout, 1, stride), bn2d(cout))
                         if stride != 1 or cin != cout else None)

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            shortcut = x if self.down is None else self.down(x)
            return torch.relu(shortcut + y)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(conv(3, width, 3, 1), bn2d(width), nn.ReLU())
            blocks, cin = [], width
            for stage in range(4):
                cout = width * 2 ** stage
                for i in range(2):
                    blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                    cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.out_dim = cin

        def forward(self, images):
            x = self.blocks(self.stem(images * 2.0 - 1.0))  # layers.Rescaling(2.0, offset=-1.0)
            return x.float().mean(dim=(2, 3))  # GlobalAveragePooling2D(dtype="float32")

    def linear(cin, cout, bias):
        return nn.Linear(cin, cout, bias=bias)  # PyTorch's default init = heads.torch_linear_init

    encoder = Encoder()
    d, layers, features = proj_dim(width), projector_layers(image_size), encoder.out_dim
    proj, cin = [], features
    for _ in range(layers - 1):
        proj += [linear(cin, d, False), bn1d(d), nn.ReLU()]
        cin = d
    proj += [linear(cin, d, False), bn1d(d, affine=False)]
    projector = nn.Sequential(*proj)
    predictor = nn.Sequential(linear(d, d // 4, False), bn1d(d // 4), nn.ReLU(), linear(d // 4, d, True))
    return encoder, projector, predictor


def trainable_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_params(width: int, image_size: int) -> dict:
    encoder, projector, predictor = build(width, image_size)
    counts = {name: trainable_parameters(m) for name, m in
              (("encoder", encoder), ("projector", projector), ("predictor", predictor))}
    counts["total"] = sum(counts.values())
    return {"width": width, "image_size": image_size, "proj_dim": proj_dim(width),
            "projector_layers": projector_layers(image_size), "trainable_parameters": counts}


def run(width: int, precision: str, batch_size: int, image_size: int, steps: int, warmup: int, threads: int,
        seed: int = 0) -> dict:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    channels_last = torch.channels_last
    encoder, projector, predictor = build(width, image_size)
    for m in (encoder, projector, predictor):
        m.train()
    encoder.to(memory_format=channels_last)
    backbone_params = list(encoder.parameters()) + list(projector.parameters())
    optimizer = torch.optim.SGD(backbone_params, lr=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    # The predictor's rate is fixed at the schedule's peak (pretrain.build_simsiam); bench's is constant anyway.
    predictor_optimizer = torch.optim.SGD(predictor.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM,
                                          weight_decay=WEIGHT_DECAY)
    views = tuple(torch.rand(batch_size, 3, image_size, image_size).contiguous(memory_format=channels_last)
                  for _ in range(2))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def negative_cosine(p, z):  # losses.negative_cosine: float32, stop-gradient on z
        return -(F.normalize(p.float(), dim=1) * F.normalize(z.detach().float(), dim=1)).sum(dim=1).mean()

    def step() -> float:
        view1, view2 = views
        with autocast:
            z1 = projector(encoder(view1))
            z2 = projector(encoder(view2))
            p1, p2 = predictor(z1), predictor(z2)
            loss = 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)
        optimizer.zero_grad(set_to_none=True)
        predictor_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        predictor_optimizer.step()
        with torch.no_grad():  # model.normalized_std(z1), the step's z-std metric
            z_std = F.normalize(z1.float(), dim=1).std(dim=0, unbiased=False).mean()
        z_std.item()
        return loss.item()  # bench reads the loss every step: `train_step(views)["loss"].numpy()`

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    seconds = time.perf_counter() - start
    rate = steps * batch_size / seconds
    return {
        "train_pairs_per_second": round(rate, 1),
        "train_images_per_second": round(rate, 1),  # bench's name for the same figure
        "step_ms": round(1000 * seconds / steps, 2), "last_loss": round(loss, 4),
        "backbone": "resnet18", "width": width, "image_size": image_size, "batch_size": batch_size,
        "precision": precision, "steps": steps, "warmup": warmup, "threads": torch.get_num_threads(),
        "proj_dim": proj_dim(width), "projector_layers": projector_layers(image_size),
        "trainable_parameters": sum(trainable_parameters(m) for m in (encoder, projector, predictor)),
        "memory_format": "channels_last", "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "mkldnn": torch.backends.mkldnn.is_available(),
        "device": _device_name(),
        "bench_command": bench_command(width, precision, batch_size, image_size, steps, warmup),
    }


def _device_name() -> str:
    # trainer/bench.py device_name's CPU branch: this script runs without TensorFlow or the project.
    model = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} x {model}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="The module docstring says how to install torch and run bench beside it.")
    parser.add_argument("--widths", type=int, nargs="+", default=[DEFAULT_WIDTH], help="ResNet-18 widths w")
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32"])
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="pairs of views per step")
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="timed steps (bench's --steps)")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="untimed steps first (bench's --warmup)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--bench-commands", action="store_true",
                        help="print the matching `simsiam-tfx bench` commands and exit (needs no torch)")
    parser.add_argument("--count-params", action="store_true",
                        help="print the trainable parameters of encoder, projector and predictor and exit")
    args = parser.parse_args(argv)
    if min(args.widths) < 1 or args.batch_size < 2 or args.steps < 1 or args.warmup < 0 or args.image_size < 16:
        parser.error("need widths >= 1, --batch-size >= 2, --steps >= 1, --warmup >= 0, --image-size >= 16")
    if args.bench_commands:
        for width in args.widths:
            for precision in args.precisions:
                print(bench_command(width, precision, args.batch_size, args.image_size, args.steps, args.warmup))
        return 0
    import torch
    torch.set_num_threads(args.threads)
    if args.count_params:
        for width in args.widths:
            print(json.dumps(count_params(width, args.image_size)), flush=True)
        return 0
    for width in args.widths:
        for precision in args.precisions:
            print(json.dumps(run(width, precision, args.batch_size, args.image_size, args.steps, args.warmup,
                                 args.threads)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
