"""deploy/: the compose file through docker-compose itself, the Kubernetes manifests through kubectl kustomize
and the Kubernetes schemas, the Prometheus config through promtool, and the image's Dockerfile.

No Docker engine or Kubernetes cluster runs here: these are the checks their own tools make before
anything starts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from docsight.config.settings import env_names

REPOSITORY = Path(__file__).resolve().parents[1]
DEPLOY = REPOSITORY / "deploy"
SETTING_PREFIXES = ("DOCSIGHT_", "VISION_", "GEMINI_", "GOOGLE_GEMINI_")
KUBERNETES_VERSION = "1.30.0"


def run(command: list[str], env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPOSITORY,
                          env=env if env is not None else os.environ.copy(), **kwargs)


def unknown_settings(names) -> list[str]:
    """Names that look like docsight settings but are none (a typo would be ignored silently)."""
    known = set(env_names())
    return sorted(name for name in names if name.startswith(SETTING_PREFIXES) and name not in known)


# ---- compose ---------------------------------------------------------------------------------------------

DOCKER_COMPOSE = shutil.which("docker-compose")
needs_compose = pytest.mark.skipif(
    DOCKER_COMPOSE is None, reason="docker-compose is not installed (Debian: apt-get install docker-compose; "
                                   "make system-deps does it)")


def compose_config(**env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(SETTING_PREFIXES)}
    return run([DOCKER_COMPOSE, "-f", str(DEPLOY / "compose.yaml"), "config"], env=environment | env)


@pytest.fixture(scope="module")
def compose() -> dict:
    done = compose_config(GEMINI_API_KEY="test-key")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@needs_compose
def test_docker_compose_accepts_the_file_with_kafka_workers_prometheus_and_grafana(compose):
    services = compose["services"]
    assert {"kafka", "ingest", "vision", "prometheus", "grafana"} <= set(services)
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert kafka["environment"]["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"  # exactly_once on one broker
    for role in ("ingest", "vision"):
        worker = services[role]
        environment = worker["environment"]
        assert environment["DOCSIGHT_ROLE"] == role
        assert environment["DOCSIGHT_BROKER_URL"] == "kafka://kafka:9092"
        assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
        # every replica its own RocksDB (an anonymous volume); the store is one volume they share
        assert "/var/lib/docsight" in worker["volumes"]
        assert any(volume.startswith("store:") and volume.split(":")[1] == environment["DOCSIGHT_STORE_DIR"]
                   for volume in worker["volumes"])
        assert unknown_settings(environment) == []


@needs_compose
def test_prometheus_and_grafana_get_the_repositorys_rules_config_and_dashboard(compose):
    mounts = {volume.split(":")[1]: Path(volume.split(":")[0])
              for volume in compose["services"]["prometheus"]["volumes"] if volume.startswith("/")}
    assert mounts["/etc/prometheus/alerts.yml"] == DEPLOY / "prometheus" / "alerts.yml"
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert config["scrape_configs"][0]["dns_sd_configs"][0]["names"] == ["ingest", "vision"]
    grafana = {volume.split(":")[1]: Path(volume.split(":")[0])
               for volume in compose["services"]["grafana"]["volumes"] if volume.startswith("/")}
    assert grafana["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"
    assert (grafana["/var/lib/grafana/dashboards"] / "docsight.json").is_file()


@needs_compose
def test_compose_refuses_to_start_without_a_gemini_key():
    done = compose_config()
    assert done.returncode != 0 and "set GEMINI_API_KEY" in done.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_accepts_the_compose_prometheus_config(tmp_path):
    # the rules are at /etc/prometheus in the container: point the copy at the repository's file
    config = (DEPLOY / "compose" / "prometheus.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/alerts.yml", str(DEPLOY / "prometheus" / "alerts.yml")))
    done = run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


# ---- Kubernetes ------------------------------------------------------------------------------------------

def kustomize_version() -> tuple[int, ...] | None:
    if shutil.which("kubectl") is None:
        return None
    found = re.search(r"Kustomize Version: v(\d+)\.(\d+)", run(["kubectl", "version", "--client"]).stdout)
    return tuple(int(part) for part in found.groups()) if found else None


needs_kustomize = pytest.mark.skipif(
    (kustomize_version() or (0,)) < (4,),
    reason="kubectl with kustomize v4 or newer is not installed (the machine image's kubectl has v5)")


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    done = run(["kubectl", "kustomize", str(DEPLOY / "k8s")])
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    return [document for document in yaml.safe_load_all(done.stdout) if document]


def by_kind(manifests: list[dict], kind: str) -> dict[str, dict]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


@needs_kustomize
def test_the_manifests_pass_the_kubernetes_schemas_strictly(manifests):
    import kubernetes_validate

    for manifest in manifests:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    # and the same check refuses a manifest with a misspelt field
    broken = yaml.safe_load(yaml.safe_dump(by_kind(manifests, "StatefulSet")["docsight-ingest"]))
    broken["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@needs_kustomize
def test_ingest_and_vision_are_statefulsets_with_rocksdb_on_a_persistent_volume(manifests):
    sets = by_kind(manifests, "StatefulSet")
    assert set(sets) == {"docsight-ingest", "docsight-vision"}  # scaled one apart from the other
    data_dir = dockerfile_env()["DOCSIGHT_DATA_DIR"]
    for name, statefulset in sets.items():
        role = name.removeprefix("docsight-")
        pod = statefulset["spec"]["template"]
        container = pod["spec"]["containers"][0]
        env = {item["name"]: item for item in container["env"]}
        assert env["DOCSIGHT_ROLE"]["value"] == role
        # the address the web views route to is the pod's own
        assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        assert env["DOCSIGHT_WEB_ADVERTISED_URL"]["value"] == "http://$(POD_IP):6066"
        assert dockerfile_env()["DOCSIGHT_WEB_HOST"] == "0.0.0.0"  # bound on every address of the pod
        claims = {claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]}
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert mounts[data_dir] in claims
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) == container["ports"][0]["containerPort"] == 6066
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert str(pod["spec"]["securityContext"]["runAsUser"]) == dockerfile_user()
        assert unknown_settings(env) == []
    assert any(mount["mountPath"] == "/documents"
               for mount in sets["docsight-ingest"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"])


@needs_kustomize
def test_the_web_service_reaches_every_worker_and_the_settings_are_real_ones(manifests):
    services = by_kind(manifests, "Service")
    web = services["docsight-web"]
    pods = [s["spec"]["template"]["metadata"]["labels"] for s in by_kind(manifests, "StatefulSet").values()]
    assert all(web["spec"]["selector"].items() <= labels.items() for labels in pods)
    settings = next(iter(by_kind(manifests, "ConfigMap").values()))["data"]
    assert unknown_settings(settings) == []
    assert settings["DOCSIGHT_STORE_URL"].startswith(("s3://", "gs://"))  # one store for every node
    from docsight.config import load_settings

    fields = {env_names()[name]: value for name, value in settings.items()}
    load_settings(**fields)  # the ConfigMap's values are valid settings


# ---- the image -------------------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def dockerfile_env() -> dict[str, str]:
    env = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", arguments))
    return env


def dockerfile_user() -> str:
    users = [arguments for instruction, arguments in dockerfile_instructions() if instruction == "USER"]
    return users[-1].split(":")[0]


def project() -> dict:
    import tomllib

    return tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]


def test_the_image_is_slim_python_311_non_root_without_torch_and_libreoffice_on_request():
    instructions = dockerfile_instructions()
    arguments = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for i, a in instructions if i == "ARG")))
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", arguments["PYTHON_IMAGE"])
    assert arguments["WITH_LIBREOFFICE"] == "false"
    runs = " ".join(a for i, a in instructions if i == "RUN")
    assert 'if [ "$WITH_LIBREOFFICE" = "true" ]' in runs and "libreoffice-core-nogui" in runs
    assert "pip install ." in runs  # the project's own pins: docling-slim, no torch
    dependencies = [re.split(r"[\[=<>~ ]", d)[0] for d in project()["dependencies"]]
    assert "docling-slim" in dependencies and not {"docling", "torch", "torchvision"} & set(dependencies)
    assert dockerfile_user() not in ("root", "0")
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for instruction, argument in instructions:
        if instruction == "COPY" and not argument.startswith("--from"):
            source = argument.split()[0]
            assert (REPOSITORY / source).exists(), source
            assert f"!{source.rstrip('/')}/" in ignore or f"!{source}" in ignore, f"{source} left out of the context"
    entrypoint = DEPLOY / "docker-entrypoint.sh"
    assert os.access(entrypoint, os.X_OK)
    assert run(["sh", "-n", str(entrypoint)]).returncode == 0
    assert unknown_settings(dockerfile_env()) == []


def test_make_system_deps_installs_docker_compose():
    makefile = (REPOSITORY / "Makefile").read_text()
    assert re.search(r"command -v docker-compose .*apt-get install .*docker-compose", makefile)
