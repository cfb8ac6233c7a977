"""The deploy files: they parse, every variable they set is a real setting (or a standard
one), every fitfleet command they run exists, and the GPU and shutdown details hold."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from fitfleet.cli import build_parser
from service.core.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent
# Variables that are not fitfleet settings but are read by what fitfleet runs on.
STANDARD = {
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "KERAS_BACKEND",
    "TF_CPP_MIN_LOG_LEVEL",
    "PYTHONUNBUFFERED",
    "PIP_NO_CACHE_DIR",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "PROMETHEUS_MULTIPROC_DIR",
}
KNOWN = set(Settings.variables()) | STANDARD
# The longest a SIGTERMed worker may take: metric flush (120 s) and checkpoint upload (60 s).
SHUTDOWN_SECONDS = 180
DOCKER_INSTRUCTIONS = {
    "FROM",
    "ENV",
    "WORKDIR",
    "COPY",
    "RUN",
    "USER",
    "EXPOSE",
    "CMD",
    "HEALTHCHECK",
    "STOPSIGNAL",
    "ARG",
    "LABEL",
    "ENTRYPOINT",
}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def manifests() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def dockerfile(name: str) -> list[tuple[str, str]]:
    """(instruction, arguments) of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / name).read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile_env(name: str) -> dict[str, str]:
    env = {}
    for word, rest in dockerfile(name):
        if word == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
    return env


def containers() -> list[dict]:
    out = []
    for d in manifests():
        spec = d.get("spec", {})
        pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {})
        out += pod.get("containers", [])
    return out


def our_services() -> dict[str, dict]:
    """Compose services that run a fitfleet image (the others run third-party images)."""
    return {
        name: s
        for name, s in compose()["services"].items()
        if str(s.get("image", "")).startswith("fitfleet-")
    }


def assert_fitfleet_command(argv: list[str]) -> None:
    assert argv[0] == "fitfleet", argv
    args = build_parser().parse_args(argv[1:])
    assert getattr(args, "handler", None) is not None, argv


# -- they parse --------------------------------------------------------------------------


def test_dockerfiles_parse_and_start_with_from():
    for name in ("Dockerfile.api", "Dockerfile.worker"):
        lines = dockerfile(name)
        assert lines[0][0] == "FROM"
        assert {w for w, _ in lines} <= DOCKER_INSTRUCTIONS, name


def test_compose_and_manifests_parse():
    assert {
        "postgres",
        "redis",
        "minio",
        "minio-init",
        "migrate",
        "api",
        "reaper",
        "worker",
    } <= set(compose()["services"])
    kinds = {(d["kind"], d["metadata"]["name"]) for d in manifests()}
    assert {
        ("Deployment", "fitfleet-api"),
        ("Deployment", "fitfleet-worker"),
        ("Deployment", "fitfleet-reaper"),
        ("Job", "fitfleet-migrate"),
        ("Secret", "fitfleet-secrets"),
        ("ConfigMap", "fitfleet-config"),
    } <= kinds
    listed = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(
        p.name for p in (DEPLOY / "k8s").glob("*.yaml") if p.name != "kustomization.yaml"
    )


# -- every variable is real; every command exists ------------------------------------------


def test_every_variable_set_is_a_setting_or_a_standard_one():
    found = {}
    for name in ("Dockerfile.api", "Dockerfile.worker"):
        found.update({k: name for k in dockerfile_env(name)})
    for svc, spec in our_services().items():
        found.update({k: f"compose {svc}" for k in spec.get("environment") or {}})
    for name, cm in by_kind("ConfigMap").items():
        found.update({k: name for k in cm["data"]})
    for name, secret in by_kind("Secret").items():
        found.update({k: name for k in secret["stringData"]})
    for c in containers():
        found.update({e["name"]: c["name"] for e in c.get("env", [])})
    unknown = {k: where for k, where in found.items() if k not in KNOWN}
    assert not unknown, f"not a setting: {unknown}"
    assert {"FITFLEET_WORKER_METRICS_PORT", "FITFLEET_LOG_FORMAT", "DATABASE_URL"} <= set(found)


def test_compose_interpolates_only_variables_of_the_example_env():
    example = {
        m.group(1)
        for m in re.finditer(
            r"^([A-Z][A-Z0-9_]*)=", (DEPLOY / ".env.example").read_text(), re.MULTILINE
        )
    }
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (DEPLOY / "compose.yaml").read_text()))
    assert used and used <= example
    assert all(s.get("env_file") == ".env" for s in our_services().values())


def test_every_command_run_is_a_fitfleet_command():
    commands = [s["command"] for s in our_services().values()]
    commands += [c["command"] + c.get("args", []) for c in containers()]
    for name in ("Dockerfile.api", "Dockerfile.worker"):
        commands += [json.loads(rest) for w, rest in dockerfile(name) if w == "CMD"]
    assert len(commands) >= 10
    for argv in commands:
        assert_fitfleet_command(argv)
    run = {tuple(c[:3]) for c in commands}
    assert ("fitfleet", "db", "upgrade") in run and ("fitfleet", "reaper") in {c[:2] for c in run}


def test_a_wrong_command_would_be_caught():
    with pytest.raises(SystemExit):
        assert_fitfleet_command(["fitfleet", "wrker", "--queues", "a"])


# -- images -----------------------------------------------------------------------------


def extras() -> dict[str, str]:
    """The extras of pyproject.toml as {name: its requirements, joined by spaces}."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {name: " ".join(reqs) for name, reqs in project["optional-dependencies"].items()}


def test_api_image_has_no_tensorflow_and_worker_image_has_cuda():
    api = " ".join(rest for w, rest in dockerfile("Dockerfile.api") if w == "RUN")
    worker = " ".join(rest for w, rest in dockerfile("Dockerfile.worker") if w == "RUN")
    assert ".[api]" in api and "tensorflow" not in extras()["api"]
    assert "keras" in extras()["api"]
    assert ".[gpu]" in worker and "tensorflow[and-cuda]" in extras()["gpu"]
    assert dockerfile_env("Dockerfile.api")["KERAS_BACKEND"] == "jax"


# -- GPUs, shutdown, probes, secrets ------------------------------------------------------


def seconds(text: str) -> int:
    m = re.fullmatch(r"(\d+)(s|m)", text)
    assert m, text
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


def test_compose_workers_reserve_gpus_and_wait_for_the_checkpoint():
    worker = compose()["services"]["worker"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert seconds(worker["stop_grace_period"]) >= SHUTDOWN_SECONDS
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    init = compose()["services"]["minio-init"]
    assert "mb" in init["entrypoint"] and init["depends_on"]["minio"]
    api = compose()["services"]["api"]
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "/readyz" in " ".join(api["healthcheck"]["test"])


def test_kubernetes_workers_ask_for_gpus_on_gpu_nodes():
    pod = by_kind("Deployment")["fitfleet-worker"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] and any("gpu" in k for k in pod["nodeSelector"])
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert pod["terminationGracePeriodSeconds"] >= SHUTDOWN_SECONDS
    assert c["command"][c["command"].index("--concurrency") + 1] == "1"  # one job per GPU


def test_api_probes_and_secrets():
    pod = by_kind("Deployment")["fitfleet-api"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    secret = by_kind("Secret")["fitfleet-secrets"]["stringData"]
    config = by_kind("ConfigMap")["fitfleet-config"]["data"]
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "AWS_SECRET_ACCESS_KEY"} <= set(secret)
    assert not {
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
    } & set(config)
    for container in containers():
        refs = [e for e in container.get("envFrom", []) if "secretRef" in e]
        assert refs and refs[0]["secretRef"]["name"] == "fitfleet-secrets", container["name"]


def test_flower_uses_the_workers_broker_transport_options():
    import runpy

    from service.core.celery_config import celery_config

    flower = compose()["services"]["flower"]
    mounted = {v.split(":")[0]: v.split(":")[1] for v in flower["volumes"]}
    assert mounted["./flower/celeryconfig.py"] == f"{flower['working_dir']}/celeryconfig.py"
    loaded = runpy.run_path(str(DEPLOY / "flower" / "celeryconfig.py"))
    workers = celery_config("redis://redis:6379/0", "/tmp")["broker_transport_options"]
    assert loaded["broker_transport_options"] == workers
    assert flower["command"][:2] == ["celery", "flower"]


def test_the_client_installs_without_the_server_side():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [r.split(">")[0] for r in project["dependencies"]] == ["numpy"]
    for extra in ("cpu", "gpu", "api"):
        assert "fitfleet[server]" in project["optional-dependencies"][extra]
    assert any(r.startswith("flask") for r in project["optional-dependencies"]["server"])


def test_multi_worker_jobs_reach_their_peers():
    pod = by_kind("Deployment")["fitfleet-worker"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["FITFLEET_WORKER_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    first, _, last = env["FITFLEET_WORKER_PORTS"]["value"].partition("-")
    opened = {p["containerPort"] for p in c["ports"] if p["name"] == "collective"}
    assert set(range(int(first), int(last) + 1)) <= opened
    peers = by_kind("Service")["fitfleet-worker-peers"]["spec"]
    assert peers["clusterIP"] == "None" and peers["publishNotReadyAddresses"] is True
    labels = by_kind("Deployment")["fitfleet-worker"]["spec"]["template"]["metadata"]["labels"]
    assert peers["selector"].items() <= labels.items()
    services = compose()["services"]
    hosts = set()
    for name in ("worker-a", "worker-b"):
        svc = services[name]
        assert (
            svc["profiles"] == ["multi-worker"] and svc["command"] == services["worker"]["command"]
        )
        assert svc["environment"]["FITFLEET_WORKER_HOST"] == svc["hostname"] == name
        hosts.add(svc["hostname"])
    assert len(hosts) == 2
