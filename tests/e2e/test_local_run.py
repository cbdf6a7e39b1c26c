"""End-to-end with LocalDagRunner on tiny `shapes` data (slow): the tiny configuration the whole
runs share, and schema anomalies stopping a run before Transform. The whole run and its re-run:
tests/e2e/test_report.py; an unlabelled folder with a TFDS probe, end to end: the Vertex emulation
(tests/kubeflow/test_launchers.py)."""
import glob
import json
import os

import pytest

from simsiam_tfx import contract
from simsiam_tfx.components.anomalies_gate import SchemaAnomalies
from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.pipeline.cli import main
from simsiam_tfx.pipeline.local_runner import run_local

ALL_COMPONENTS = {contract.EXAMPLE_GEN, contract.STATISTICS_GEN, contract.SCHEMA_GEN, contract.EXAMPLE_VALIDATOR,
                  contract.STOP_ON_ANOMALIES, contract.TRANSFORM, contract.PRETRAIN, contract.PROBE,
                  contract.PUSHED_BASELINE, contract.EVALUATOR, contract.MODEL_GATE, contract.PUSHER}


def tiny_config(output_dir) -> PipelineConfig:
    config = PipelineConfig(output_dir=str(output_dir))
    config.data.shapes_per_split = (128, 100, 100)
    config.pretrain.epochs = 2
    config.pretrain.batch_size = 32
    config.pretrain.width = 4
    config.pretrain.knn_k = 20
    config.eval.min_accuracy = 0.0
    # A run this short has not beaten chance or random init reliably; the gate has its own tests.
    config.eval.min_above_chance = config.eval.min_gain = -1.0
    return config


SCHEMA_WITH_TWO_CLASSES = """
feature { name: "image" type: BYTES presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 1 } } }
feature { name: "label" type: INT int_domain { min: -1 max: 1 }
          presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 1 } } }
"""


@pytest.mark.slow
def test_schema_anomalies_stop_the_run_before_transform(tmp_path, capsys):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(SCHEMA_WITH_TWO_CLASSES)
    config = tiny_config(tmp_path / "out")
    config.data.schema = str(schema)  # shapes has 10 classes: labels 2..9 are out of the domain
    with pytest.raises(SchemaAnomalies, match=r"schema anomalies.*\n.*label: Out-of-range values"):
        run_local(config)
    assert not glob.glob(os.path.join(config.pipeline_root, contract.TRANSFORM, "*", "*"))

    # From the command line: a readable message and a non-zero exit, no traceback.
    tiny = tmp_path / "tiny.json"
    tiny.write_text(json.dumps(config.to_dict()))
    code = main(["run", "--config", str(tiny), "--output", str(tmp_path / "out"), "--schema", str(schema)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.startswith("simsiam-tfx: error: ExampleValidator found schema anomalies")
    assert "eval: label: Out-of-range values" in err
