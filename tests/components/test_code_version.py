"""Cache keys that follow the code: each component's key changes with the code it runs, only."""
import pytest

from simsiam_tfx import contract
from simsiam_tfx.components import code_version
from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.pipeline.pipeline import PREPROCESSING_FN, PRETRAIN_RUN_FN, PROBE_RUN_FN, create_pipeline

PROBE, PRETRAIN, PREPROCESSING = (name.rpartition(".")[0] for name in (PROBE_RUN_FN, PRETRAIN_RUN_FN,
                                                                       PREPROCESSING_FN))


def test_a_modules_code_is_its_source_and_what_it_imports_from_the_package():
    probe = code_version.sources(PROBE)
    assert {"simsiam_tfx.trainer.probe", "simsiam_tfx.components.serving", "simsiam_tfx.trainer",
            "simsiam_tfx"} <= set(probe)
    assert "simsiam_tfx.trainer.probe" not in code_version.sources(PREPROCESSING)
    assert not any(name.startswith("simsiam_tfx.pipeline") for name in probe)
    with pytest.raises(ValueError, match="not a module of simsiam_tfx"):
        code_version.fingerprint("json")


def _properties(tmp_path):
    by_id = {c.id: c for c in create_pipeline(PipelineConfig(output_dir=str(tmp_path)), str(tmp_path)).components}
    return {contract.PRETRAIN: by_id[contract.PRETRAIN].exec_properties["code_version"],
            contract.PROBE: by_id[contract.PROBE].exec_properties["code_version"],
            contract.TRANSFORM: by_id[contract.TRANSFORM].exec_properties["custom_config"]}


@pytest.mark.fault
def test_editing_the_probes_code_changes_the_probes_key_and_no_other(tmp_path, monkeypatch):
    before = _properties(tmp_path)
    original = code_version._read
    monkeypatch.setattr(code_version, "_read", lambda path: original(path) + (
        b"\n# edited\n" if path.endswith("trainer/probe.py") else b""))
    code_version.fingerprint.cache_clear()
    try:
        after = _properties(tmp_path)
    finally:
        code_version.fingerprint.cache_clear()
    assert after[contract.PROBE] != before[contract.PROBE]
    assert after[contract.PRETRAIN] == before[contract.PRETRAIN]
    assert after[contract.TRANSFORM] == before[contract.TRANSFORM]
