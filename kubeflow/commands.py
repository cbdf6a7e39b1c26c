"""`simsiam-tfx compile | kfp | vertex`: compile for Kubeflow Pipelines / Vertex AI, then upload, run or
schedule the compiled file. User mistakes raise ConfigError (one line, exit 2)."""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
from typing import Any

from simsiam_tfx import contract
from simsiam_tfx.config import ConfigError

# (low, high) of each field; KFP (robfig/cron) has a leading seconds field, Vertex (Unix cron) not.
_UNIX_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_KFP_RANGES = [(0, 59)] + _UNIX_RANGES
_NAMES = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
          "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}
_TZ = re.compile(r"^(CRON_)?TZ=[A-Za-z0-9_+\-/]+$")


def validate_cron(expr: str, seconds: bool) -> str:
    """Checks a cron expression: 6 fields for KFP (seconds first), 5 plus optional TZ= for Vertex."""
    fields = expr.split()
    if not seconds and fields and fields[0].startswith(("TZ=", "CRON_TZ=")):
        if not _TZ.match(fields[0]):
            raise ConfigError(f"invalid time zone prefix {fields[0]!r} in cron {expr!r}")
        fields = fields[1:]
    ranges = _KFP_RANGES if seconds else _UNIX_RANGES
    if len(fields) != len(ranges):
        shape = ("6 fields (second minute hour day month weekday), e.g. '0 0 3 * * *'" if seconds else
                 "5 fields (minute hour day month weekday), optionally after TZ=Area/City, e.g. '0 3 * * *'")
        raise ConfigError(f"cron {expr!r} must have {shape}; got {len(fields)} fields")
    for field, (low, high) in zip(fields, ranges):
        for part in field.split(","):
            base, slash, step = part.partition("/")
            ends = [] if base in ("*", "?") else base.split("-")
            ok = (not slash or step.isdigit() and int(step) > 0) and len(ends) <= 2 and all(
                e.upper() in _NAMES or e.isdigit() and low <= int(e) <= high for e in ends)
            if not ok:
                raise ConfigError(f"invalid cron field {field!r} in {expr!r} (allowed values {low}-{high})")
    return expr


# ---- compile --------------------------------------------------------------------------------
_SECRET_FLAG = re.compile(r"token|secret|passw|credential|auth|key", re.IGNORECASE)


def masked_flags(flags: list[str]) -> str:
    """Beam flags as the console shows them: the value of a credential-looking flag masked."""
    shown = []
    for flag in flags:
        name, sep, value = flag.partition("=")
        shown.append(f"{name}=****" if sep and _SECRET_FLAG.search(name) else flag)
    return " ".join(shown)



def _cmd_compile(args) -> int:
    from simsiam_tfx.kubeflow.compile import KubeflowConfig, compile_pipeline
    from simsiam_tfx.pipeline.flags import config_from_args
    kconfig = KubeflowConfig(
        image=args.image, pipeline_root=args.pipeline_root, input_base=args.input_base or "",
        gpu_image=args.gpu_image or "", trainer_cpu=args.trainer_cpu, trainer_memory=args.trainer_memory,
        trainer_gpus=args.trainer_gpus, gpu_type=args.gpu_type, beam_pipeline_args=args.beam_arg,
        beam_cpu=args.beam_cpu, beam_memory=args.beam_memory, input_disk=args.input_disk,
        allow_mutable_image=args.allow_mutable_image)
    path = compile_pipeline(config_from_args(args), kconfig, args.output, args.target)
    print(f"compiled for {args.target}: {path}")
    if args.beam_arg:
        print(f"Beam flags of the Beam steps: {masked_flags(args.beam_arg)}")
    return 0


# ---- per-run parameter values ---------------------------------------------------------------
def run_arguments(spec: dict[str, Any], args) -> dict[str, Any]:
    """Runtime parameter values that differ from the compiled defaults, from --param/--epochs/..."""
    from simsiam_tfx.components import trainer_config
    from simsiam_tfx.kubeflow import compile as kc
    kc.import_quietly("tfx.v1")  # before pipeline.pipeline imports it (see compile._STORAGE_NOTICE)
    from simsiam_tfx.pipeline.flags import named_by_flag
    from simsiam_tfx.pipeline.pipeline import eval_config_json, eval_settings
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    values: dict[str, Any] = {name: p.get("defaultValue") for name, p in declared.items()}
    changed: set[str] = set()
    for item in args.param or []:
        name, sep, value = item.partition("=")
        if not sep or name not in declared:
            raise ConfigError(f"--param must be NAME=VALUE with NAME one of {', '.join(sorted(declared))}, "
                              f"got {item!r}")
        values[name] = value
        changed.add(name)
    if args.input_base:
        values[contract.INPUT_BASE_PARAM] = args.input_base
        changed.add(contract.INPUT_BASE_PARAM)
    if (args.epochs is not None or args.time_budget is not None or args.min_accuracy is not None
            or args.max_regression is not None):
        # Rebuilt through the builders that rendered them at compile time, so they are validated and
        # rendered the same way; settings not named here keep their compiled values.
        config, gpus = trainer_config.compiled(
            json.loads(values.get(contract.TRAINER_CONFIG_PARAM) or '{"config": {}}'))
        config.eval = eval_settings(values.get(contract.EVAL_CONFIG_PARAM) or "{}")
        if args.epochs is not None:
            config.pretrain.epochs, config.pretrain.time_budget = args.epochs, None
        if args.time_budget is not None:
            config.pretrain.time_budget = args.time_budget
        if args.min_accuracy is not None:
            config.eval.min_accuracy = args.min_accuracy
        if args.max_regression is not None:
            config.eval.max_regression = args.max_regression
        given = {field: flag for field, flag, value in (
            ("pretrain.epochs", "--epochs", args.epochs), ("pretrain.time_budget", "--time-budget", args.time_budget),
            ("eval.min_accuracy", "--min-accuracy", args.min_accuracy),
            ("eval.max_regression", "--max-regression", args.max_regression)) if value is not None}
        try:
            config.validate()
        except ConfigError as e:
            raise named_by_flag(e, given) from None
        if args.epochs is not None or args.time_budget is not None:
            values[contract.TRAINER_CONFIG_PARAM] = trainer_config.custom_config_json(config, gpus)
            changed.add(contract.TRAINER_CONFIG_PARAM)
        if args.min_accuracy is not None or args.max_regression is not None:
            values[contract.EVAL_CONFIG_PARAM] = eval_config_json(config.eval)
            changed.add(contract.EVAL_CONFIG_PARAM)
    return {name: values[name] for name in sorted(changed)}


def _add_param_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="set a runtime parameter (input_base, data_config, trainer_config, eval_config)")
    p.add_argument("--input-base", help="data for this run: the span root where PlanData writes span-<N>/ (the "
                                        "compiled default: <pipeline-root>/data), or a folder holding a sources.json "
                                        "to pin (see `simsiam-tfx sources`)")
    p.add_argument("--epochs", type=int, help="pre-training epochs for this run")
    p.add_argument("--time-budget", metavar="DURATION", help="pre-training wall-clock budget for this run (90s, 10m, "
                                                             "2h): the epochs follow the throughput measured there")
    p.add_argument("--min-accuracy", type=float, help="Evaluator's accuracy floor for this run")
    p.add_argument("--max-regression", type=float, help="allowed accuracy drop vs the last blessed model")
    p.add_argument("--no-cache", action="store_true", help="re-run every component")


# ---- errors from the services ---------------------------------------------------------------
def _api_error_types() -> tuple[type, ...]:
    """What the KFP and Vertex clients raise for a service's answer, an unreachable host or missing
    credentials (each import is optional: a client library may be absent)."""
    import urllib3
    types: list[type] = [ConnectionError, urllib3.exceptions.HTTPError]
    for module, names in (("kfp_server_api.exceptions", ("OpenApiException",)),
                          ("google.api_core.exceptions", ("GoogleAPIError",)),
                          ("google.auth.exceptions", ("GoogleAuthError",)),
                          ("requests.exceptions", ("RequestException",))):
        try:
            imported = __import__(module, fromlist=list(names))
        except ImportError:
            continue
        types += [getattr(imported, name) for name in names]
    return tuple(types)


def _one_line(error: BaseException) -> str:
    status = getattr(error, "status", None) or getattr(error, "code", None)
    reason = getattr(error, "reason", None) or getattr(error, "message", None) or str(error)
    text = " ".join(str(reason).split()) or type(error).__name__
    return f"{type(error).__name__}" + (f" {status}" if status and not callable(status) else "") + f": {text[:300]}"


def api_errors(service: str):
    """Runs a command; an error from `service` becomes one line (ConfigError) instead of a traceback."""
    def wrap(command):
        @functools.wraps(command)
        def run(args) -> int:
            try:
                return command(args)
            except _api_error_types() as error:
                raise ConfigError(f"{service}: {_one_line(error)}") from None
        return run
    return wrap


# ---- Kubeflow Pipelines ---------------------------------------------------------------------
def kfp_token(args) -> str | None:
    """The bearer token, from --token-file or KFP_TOKEN; never from argv, where every local user
    sees it (ps) and the shell history keeps it."""
    if args.token is not None:
        raise ConfigError("--token on the command line is visible to other users (ps) and kept in shell history: "
                          "pass --token-file FILE or set KFP_TOKEN")
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read --token-file {args.token_file}: "
                              f"{getattr(e, 'strerror', None) or 'not UTF-8 text'}") from None
        if not token:
            raise ConfigError(f"--token-file {args.token_file} is empty")
        return token
    return os.environ.get("KFP_TOKEN") or None


def kfp_client(args):
    import kfp
    host = args.host or os.environ.get("KF_PIPELINES_ENDPOINT")
    if not host:
        raise ConfigError("--host is required (or KF_PIPELINES_ENDPOINT), e.g. http://localhost:8080")
    return kfp.Client(host=host, existing_token=kfp_token(args),
                      client_id=args.iap_client_id, namespace=args.namespace or "kubeflow")


def run_pipeline_root(spec: dict[str, Any], override: str | None = None) -> str:
    """The pipeline root a KFP run is created with: --pipeline-root, else the compiled one. The
    open-source backend reads neither the spec's defaultPipelineRoot nor TFX's; without one in the
    request a run writes to the kfp-launcher ConfigMap's root or minio:// (driver/root_dag.go)."""
    from simsiam_tfx.kubeflow.compile import check_pipeline_root
    root = override or spec.get("defaultPipelineRoot")
    if not root:
        raise ConfigError("the pipeline file names no pipeline root (compiled by an older version): "
                          "pass --pipeline-root gs://bucket/path/tfx")
    return check_pipeline_root(root, "kfp")


def _package(args) -> tuple[str, dict[str, Any]]:
    from simsiam_tfx.kubeflow.compile import load_spec
    if not args.package.endswith((".yaml", ".yml")):
        raise ConfigError(f"{args.package}: KFP needs the .yaml from `compile --target kfp`")
    return args.package, load_spec(args.package, "kfp")


@api_errors("Kubeflow Pipelines")
def _cmd_kfp(args) -> int:
    package, spec = _package(args)
    client = kfp_client(args)
    if args.kfp_command == "upload":
        if args.version:
            result = client.upload_pipeline_version(package, args.version, pipeline_name=args.name)
            print(f"uploaded version {result.pipeline_version_id} of pipeline {result.pipeline_id}")
        else:
            result = client.upload_pipeline(package, pipeline_name=args.name)
            print(f"uploaded pipeline {result.pipeline_id}")
        print(f"runs started from the KFP UI need Pipeline Root {spec.get('defaultPipelineRoot')} (the backend does "
              f"not read it from the file), or that root as defaultPipelineRoot in the namespace's kfp-launcher "
              f"ConfigMap; `simsiam-tfx kfp run|schedule` send it")
        return 0
    arguments = run_arguments(spec, args)
    root = run_pipeline_root(spec, args.pipeline_root)
    caching = False if args.no_cache else None
    if args.kfp_command == "run":
        result = client.create_run_from_pipeline_package(
            package, arguments=arguments, run_name=args.run_name, experiment_name=args.experiment,
            enable_caching=caching, service_account=args.service_account, pipeline_root=root)
        print(f"run {result.run_id} started (pipeline root {root})")
        return 0
    validate_cron(args.cron, seconds=True)
    experiment = client.create_experiment(args.experiment)
    # no_catchup: after a pause, one run at the next slot instead of one for every missed slot.
    result = client.create_recurring_run(
        experiment_id=experiment.experiment_id, job_name=args.run_name or "simsiam-tfx-schedule",
        cron_expression=args.cron, max_concurrency=args.max_concurrency, params=arguments,
        pipeline_package_path=package, enable_caching=caching, service_account=args.service_account,
        pipeline_root=root, no_catchup=True)
    print(f"recurring run {result.recurring_run_id} created ({args.cron}, pipeline root {root})")
    return 0


# ---- Vertex AI ------------------------------------------------------------------------------
def vertex_job(args, credentials=None):
    """The aiplatform.PipelineJob for this template and these arguments (nothing is sent)."""
    from simsiam_tfx.kubeflow.compile import check_pipeline_root, import_quietly, load_spec
    aiplatform = import_quietly("google.cloud.aiplatform")
    if not args.template.endswith(".json"):
        raise ConfigError(f"--template must be the .json from `compile --target vertex`, got {args.template!r}")
    if not args.project:
        raise ConfigError("--project is required for Vertex AI")
    if not args.region:
        raise ConfigError("--region is required for Vertex AI (e.g. europe-west4)")
    spec = load_spec(args.template, "vertex")
    if args.pipeline_root:
        check_pipeline_root(args.pipeline_root, "vertex")
    return aiplatform.PipelineJob(
        display_name=args.display_name or spec["pipelineInfo"]["name"], template_path=args.template,
        pipeline_root=args.pipeline_root, parameter_values=run_arguments(spec, args),
        enable_caching=False if args.no_cache else None, project=args.project, location=args.region,
        credentials=credentials)


def vertex_request(args) -> dict[str, Any]:
    """The create request `vertex run|schedule` would send, built by aiplatform itself."""
    from google.auth.credentials import AnonymousCredentials
    job = vertex_job(args, credentials=AnonymousCredentials())  # dry run: no credentials needed
    pipeline_job = job.to_dict()  # the PipelineJob resource that submit() sends
    if args.service_account:
        pipeline_job["serviceAccount"] = args.service_account
    parent = f"projects/{job.project}/locations/{job.location}"
    request: dict[str, Any] = {"parent": parent, "pipeline_job": pipeline_job}
    if args.vertex_command == "run":
        return {"method": "CreatePipelineJob", "pipeline_job_id": job.job_id, **request}
    return {"method": "CreateSchedule", "parent": parent, "schedule": {
        "display_name": args.schedule_name or f"{pipeline_job['displayName']}-schedule", "cron": args.cron,
        "max_concurrent_run_count": args.max_concurrency, "create_pipeline_job_request": request}}


@api_errors("Vertex AI")
def _cmd_vertex(args) -> int:
    if args.vertex_command == "schedule":
        validate_cron(args.cron, seconds=False)
    if args.dry_run:
        print(json.dumps(vertex_request(args), indent=1, sort_keys=True))
        return 0
    job = vertex_job(args)
    if args.vertex_command == "run":
        job.submit(service_account=args.service_account)
        print(f"submitted {job.resource_name}")
    else:
        schedule = job.create_schedule(cron=args.cron, display_name=args.schedule_name or f"{job.display_name}-schedule",
                                       max_concurrent_run_count=args.max_concurrency,
                                       service_account=args.service_account)
        print(f"created schedule {schedule.resource_name}")
    return 0


# ---- parser ---------------------------------------------------------------------------------
def register(subparsers) -> None:
    """Adds `compile`, `kfp` and `vertex` to the `simsiam-tfx` parser (entry point
    simsiam_tfx.commands, see pipeline/cli.py)."""
    _add_compile_parser(subparsers)
    _add_kfp_parser(subparsers)
    _add_vertex_parser(subparsers)


def _add_compile_parser(subparsers) -> None:
    from simsiam_tfx.kubeflow.compile import TARGETS
    from simsiam_tfx.pipeline.flags import add_flags
    c = subparsers.add_parser("compile", help="compile for Kubeflow Pipelines (.yaml) or Vertex AI (.json)",
                              description="Compile the pipeline offline (no credentials). Runtime parameters: "
                                          "input_base, data_config, trainer_config, eval_config.")
    add_flags(c, exclude=("output",))  # here --output is the compiled FILE
    c.add_argument("--target", choices=TARGETS, required=True, help="kfp: bare pipeline spec; vertex: PipelineJob")
    c.add_argument("--image", required=True, help="container image with this project (kubeflow/Dockerfile), by "
                                                  "digest: IMAGE@sha256:...")
    c.add_argument("--pipeline-root", required=True, help="gs://bucket/path for artifacts, data spans and pushed "
                                                          "models")
    c.add_argument("--output", required=True, metavar="FILE", help="output file: .yaml (kfp) or .json (vertex)")
    c.add_argument("--input-base", help="default data location: the span root where the first step writes "
                                        "span-<N>/sources.json when the data changed, or a folder holding a pinned "
                                        "sources.json (default: <pipeline-root>/data)")
    c.add_argument("--trainer-cpu", type=float, help="vCPUs per Trainer")
    c.add_argument("--trainer-memory", type=float, help="memory per Trainer in GB")
    c.add_argument("--trainer-gpus", type=int, default=0, help="GPUs per Trainer (default: 0)")
    c.add_argument("--gpu-image", help="GPU image (kubeflow/Dockerfile, --build-arg LOCK=requirements-gpu.lock), "
                                       "run by the Trainers when "
                                       "--trainer-gpus > 0 (required then)")
    c.add_argument("--gpu-type", help="accelerator: a Vertex name (default NVIDIA_TESLA_T4) or, for --target "
                                      "kfp, a Kubernetes resource name (default nvidia.com/gpu; Vertex "
                                      "names become nvidia.com/gpu, the node pool picks the model)")
    c.add_argument("--beam-arg", action="append", metavar="FLAG",
                   help="Beam flag for the Beam components, repeatable (e.g. --beam-arg=--runner=DataflowRunner)")
    c.add_argument("--beam-cpu", type=float, default=1.0,
                   help="vCPUs per Beam step (ExampleGen, StatisticsGen, Transform, Evaluator); KFP: a request, "
                        "Vertex: a limit (default: 1)")
    c.add_argument("--beam-memory", type=float, default=4.0, help="memory per Beam step in GB (default: 4)")
    c.add_argument("--input-disk", type=float, metavar="GB",
                   help="KFP: a volume of GB per step with input artifacts, where the launcher copies them before the "
                        "step runs (a generic ephemeral volume of the default storage class, at /gcs); default: the "
                        "node's disk")
    c.add_argument("--allow-mutable-image", action="store_true",
                   help="accept --image/--gpu-image by tag instead of @sha256 digest (a re-pushed tag reuses "
                        "cached results of the old code)")
    c.set_defaults(func=_cmd_compile)


def _add_kfp_parser(subparsers) -> None:
    k = subparsers.add_parser("kfp", help="upload, run or schedule on Kubeflow Pipelines")
    ksub = k.add_subparsers(dest="kfp_command", metavar="ACTION", required=True)
    for name, text in (("upload", "upload the pipeline (or a new version)"), ("run", "start a run"),
                       ("schedule", "create a recurring run")):
        p = ksub.add_parser(name, help=text)
        p.add_argument("--host", help="KFP API endpoint (default: $KF_PIPELINES_ENDPOINT)")
        p.add_argument("--token-file", metavar="FILE", help="file holding the bearer token (default: $KFP_TOKEN)")
        p.add_argument("--token", help=argparse.SUPPRESS)  # refused with a line saying how to pass it
        p.add_argument("--iap-client-id", help="OAuth client id of an IAP-protected endpoint")
        p.add_argument("--namespace", help="Kubeflow namespace (multi-user deployments)")
        p.add_argument("--package", required=True, metavar="FILE", help="the .yaml from `compile --target kfp`")
        if name == "upload":
            p.add_argument("--name", default="simsiam-tfx", help="pipeline name (default: simsiam-tfx)")
            p.add_argument("--version", help="upload as a new version of the existing pipeline --name")
        else:
            p.add_argument("--experiment", default="simsiam-tfx", help="experiment (default: simsiam-tfx)")
            p.add_argument("--run-name", help="name of the run / recurring run")
            p.add_argument("--service-account", help="Kubernetes service account for the run")
            p.add_argument("--pipeline-root", help="where the run's artifacts go (default: the compiled "
                                                   "--pipeline-root + /tfx); gs:// only")
            _add_param_flags(p)
        if name == "schedule":
            p.add_argument("--cron", required=True, help="6 fields with seconds, e.g. '0 0 3 * * *'")
            p.add_argument("--max-concurrency", type=int, default=1)
        p.set_defaults(func=_cmd_kfp)


def _add_vertex_parser(subparsers) -> None:
    v = subparsers.add_parser("vertex", help="run or schedule on Vertex AI Pipelines")
    vsub = v.add_subparsers(dest="vertex_command", metavar="ACTION", required=True)
    for name, text in (("run", "submit a PipelineJob"), ("schedule", "create a schedule")):
        p = vsub.add_parser(name, help=text)
        p.add_argument("--template", required=True, metavar="FILE", help="the .json from `compile --target vertex`")
        p.add_argument("--project", default=os.environ.get("GOOGLE_CLOUD_PROJECT"), help="GCP project")
        p.add_argument("--region", help="Vertex AI region, e.g. europe-west4")
        p.add_argument("--pipeline-root", help="override the compiled pipeline root (gs://...)")
        p.add_argument("--service-account", help="service account the pipeline runs as")
        p.add_argument("--display-name", help="display name of the job")
        p.add_argument("--dry-run", action="store_true", help="print the request instead of sending it")
        _add_param_flags(p)
        if name == "schedule":
            p.add_argument("--cron", required=True, help="5 fields, optional TZ= prefix: 'TZ=Europe/Paris 0 3 * * *'")
            p.add_argument("--schedule-name", help="display name of the schedule")
            p.add_argument("--max-concurrency", type=int, default=1)
        p.set_defaults(func=_cmd_vertex)
