"""What TFX runs: ExampleGen (data sources, image check, embedded data), the Transform module,
custom components (the anomalies gate), the Trainers' run_fns and the served model's signatures."""
