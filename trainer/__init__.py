"""SimSiam building blocks, with no TFX in them: backbones, heads, loss, augmentation, schedules,
monitors, input data, pre-training, the linear probe and the supervised reference.
components/simsiam_pretrain.py and components/linear_probe.py adapt TFX's FnArgs to them."""
