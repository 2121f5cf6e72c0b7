"""deploy/k8s: the kustomize base and overlays render with `kubectl kustomize`, every object they render
is valid Kubernetes (kubernetes-validate, whose schemas ship inside the package: nothing is fetched),
and the manifests keep the product's facts — one beat, non-root pods with resources and probes, the
realtime routes of deploy/nginx.conf, the migrate Job, the workers' autoscaling on their queues.

No database: these are plain functions, and the suite's autouse fixtures touch none for them.
"""

import functools
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.conf import settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
NGINX_CONF = K8S.parent / "nginx.conf"
# The kubectl on the machines is 1.32; 1.37 is the newest schema set kubernetes-validate 1.37.0 ships,
# so an API that a newer Kubernetes dropped would fail here too.
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")
RENDERS = ("base", "overlays/production", "overlays/production-keda")
DEFAULT_RENDERS = ("base", "overlays/production")
# kubernetes-validate knows the built-in kinds only. KEDA's are checked field by field below.
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}
KUBECTL = shutil.which("kubectl")

pytestmark = pytest.mark.skipif(
    KUBECTL is None and os.environ.get("CI") != "true",
    reason="kubectl is not installed: deploy/k8s is rendered with `kubectl kustomize` (CI runs these)",
)


@functools.cache
def render(name: str) -> tuple[dict, ...]:
    assert KUBECTL, "kubectl is needed to render deploy/k8s (`kubectl kustomize`)"
    result = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / name)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(name: str, kind: str) -> dict[str, dict]:
    return {obj["metadata"]["name"]: obj for obj in render(name) if obj["kind"] == kind}


def pod_templates(name: str) -> dict[str, dict]:
    workloads = {**objects(name, "Deployment"), **objects(name, "Job")}
    return {workload: obj["spec"]["template"] for workload, obj in workloads.items()}


def container(name: str, workload: str) -> dict:
    (app,) = pod_templates(name)[workload]["spec"]["containers"]
    return app


def env(app: dict) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in app.get("env", [])}


def config_map(name: str) -> dict[str, str]:
    (config,) = objects(name, "ConfigMap").values()
    return config["data"]


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("schema validation tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", RENDERS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid_kubernetes_offline(name, version, no_network):
    checked = 0
    for obj in render(name):
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked >= 15


@pytest.mark.parametrize("name", DEFAULT_RENDERS)
def test_the_default_renders_need_no_custom_resources(name):
    assert {(obj["apiVersion"], obj["kind"]) for obj in render(name)}.isdisjoint(CUSTOM_KINDS)


@pytest.mark.parametrize("name", RENDERS)
def test_beat_is_one_replica_that_never_overlaps_its_successor(name):
    beat = objects(name, "Deployment")["dwc-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert container(name, "dwc-beat")["args"] == ["beat"]


@pytest.mark.parametrize("name", RENDERS)
def test_every_container_runs_as_the_image_user_with_resources_and_a_writable_var(name):
    for workload, template in pod_templates(name).items():
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, workload
        assert pod["securityContext"]["runAsUser"] == 10001, workload
        assert pod["automountServiceAccountToken"] is False, workload
        for app in pod["containers"]:
            security = app["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, workload
            assert security["capabilities"]["drop"] == ["ALL"], workload
            for bound in ("requests", "limits"):
                assert set(app["resources"][bound]) == {"cpu", "memory"}, (workload, bound)
            mounts = {mount["mountPath"]: mount["name"] for mount in app["volumeMounts"]}
            volumes = {volume["name"]: volume for volume in pod["volumes"]}
            # A read-only root: the var dir and $HOME (gunicorn's control socket) are emptyDirs.
            assert security["readOnlyRootFilesystem"] is True, workload
            for path in ("/app/var", env(app)["HOME"], "/tmp"):  # noqa: S108 - the container's own /tmp
                assert "emptyDir" in volumes[mounts[path]], (workload, path)
            refs = [source.get("configMapRef", source.get("secretRef"))["name"] for source in app["envFrom"]]
            assert refs == [*objects(name, "ConfigMap"), "dwc-secrets"], workload


@pytest.mark.parametrize("name", RENDERS)
@pytest.mark.parametrize(("workload", "port"), [("dwc-web", 8000), ("dwc-realtime", 8001)])
def test_http_servers_are_probed_on_health_and_ready_with_an_allowed_host(name, workload, port):
    app = container(name, workload)
    assert app["args"] == [workload.removeprefix("dwc-")]
    (declared,) = app["ports"]
    assert declared["containerPort"] == port
    probes = {kind: app[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/health"
    assert probes["startupProbe"]["path"] == "/health"
    assert probes["readinessProbe"]["path"] == "/ready"
    allowed_hosts = config_map(name)["ALLOWED_HOSTS"].split(",")
    for probe in probes.values():
        assert probe["port"] == declared["name"]
        (host,) = (header["value"] for header in probe["httpHeaders"] if header["name"] == "Host")
        assert host in allowed_hosts
    annotations = pod_templates(name)[workload]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("name", RENDERS)
def test_workers_consume_the_settings_queues_and_expose_metrics_on_9100(name):
    queues = {"dwc-worker": ",".join(settings.DWC_STEP_QUEUES), "dwc-engine-worker": settings.DWC_CONTROL_QUEUE}
    for workload in ("dwc-worker", "dwc-engine-worker", "dwc-beat"):
        app = container(name, workload)
        assert env(app).get("DWC_WORKER_QUEUES") == queues.get(workload), workload
        assert env(app)["DWC_METRICS_PORT"] == "9100"
        assert app["livenessProbe"]["tcpSocket"]["port"] == "metrics"
        assert [(port["name"], port["containerPort"]) for port in app["ports"]] == [("metrics", 9100)]
        annotations = pod_templates(name)[workload]["metadata"]["annotations"]
        assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == ("9100", "/metrics")


def realtime_locations() -> list[str]:
    """The prefix locations deploy/nginx.conf sends to daphne (event streams go by header there)."""
    text = NGINX_CONF.read_text()
    return re.findall(r"location (/\S*) \{\s*proxy_pass http://dwc_realtime;", text)


@pytest.mark.parametrize("name", RENDERS)
def test_ingress_routes_what_nginx_conf_sends_to_daphne_to_the_realtime_service(name):
    services = objects(name, "Service")
    routes = {}
    for ingress in objects(name, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = services[backend["name"]]
                (port,) = (port for port in service["spec"]["ports"] if port["name"] == backend["port"]["name"])
                routes[path["path"]] = (backend["name"], port["port"])
    assert realtime_locations() == ["/ws/", "/hooks/"]
    for location in realtime_locations():
        assert routes[location] == ("dwc-realtime", 8001)
    assert routes["/"] == ("dwc-web", 8000)
    (stream,) = (path for path in routes if path not in {"/", *realtime_locations()})
    assert routes[stream] == ("dwc-realtime", 8001)
    run = "/api/v3/runs/0b4c2b8e-6f0e-4a4e-9b55-0d7b9c8a1f2e"
    assert re.fullmatch(stream, f"{run}/events")
    assert not re.fullmatch(stream, run)
    assert not re.fullmatch(stream, f"{run}/steps")
    for service in services.values():
        (component,) = {service["spec"]["selector"]["app.kubernetes.io/component"]}
        assert f"dwc-{component}" in objects(name, "Deployment")


@pytest.mark.parametrize("name", RENDERS)
def test_the_migrate_job_runs_migrate_once_on_the_same_image(name):
    job = objects(name, "Job")["dwc-migrate"]
    app = container(name, "dwc-migrate")
    assert app["args"] == ["migrate"]
    assert app["image"] == container(name, "dwc-web")["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("name", RENDERS)
def test_the_migrate_step_of_the_readme_selects_the_settings_and_the_job_only(name):
    """deploy/k8s/README.md applies `-l 'app.kubernetes.io/component in (config,migrate)'` first."""
    selected = [
        (obj["kind"], obj["metadata"]["name"])
        for obj in render(name)
        if obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") in {"config", "migrate"}
    ]
    assert selected == [("ConfigMap", next(iter(objects(name, "ConfigMap")))), ("Job", "dwc-migrate")]


@pytest.mark.parametrize("name", DEFAULT_RENDERS)
def test_the_hpa_scales_the_step_worker_deployment_on_cpu(name):
    (hpa,) = objects(name, "HorizontalPodAutoscaler").values()
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", "dwc-worker")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # The autoscaler owns the count: a replicas field would reset it at every apply.
    assert "replicas" not in objects(name, "Deployment")["dwc-worker"]["spec"]


@pytest.mark.parametrize("name", RENDERS)
def test_disruption_budgets_cover_web_and_the_workers(name):
    covered = set()
    for budget in objects(name, "PodDisruptionBudget").values():
        selector = budget["spec"]["selector"]["matchLabels"]
        for workload, template in pod_templates(name).items():
            if selector.items() <= template["metadata"]["labels"].items():
                covered.add(workload)
    assert {"dwc-web", "dwc-realtime", "dwc-worker", "dwc-engine-worker"} <= covered
    assert "dwc-beat" not in covered


def test_the_keda_overlay_scales_workers_on_their_celery_queues_instead_of_cpu():
    name = "overlays/production-keda"
    assert objects(name, "HorizontalPodAutoscaler") == {}
    scaled = objects(name, "ScaledObject")
    (auth,) = objects(name, "TriggerAuthentication")
    listened = {}
    for scaled_name, obj in scaled.items():
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        assert obj["metadata"]["namespace"] == "dwc"
        assert obj["spec"]["scaleTargetRef"]["name"] in objects(name, "Deployment")
        assert obj["spec"]["minReplicaCount"] >= 1
        for trigger in obj["spec"]["triggers"]:
            assert trigger["type"] == "redis"
            assert trigger["authenticationRef"]["name"] == auth
            assert int(trigger["metadata"]["listLength"]) > 0
            listened.setdefault(scaled_name, []).append(trigger["metadata"]["listName"])
    assert listened == {"dwc-worker": list(settings.DWC_STEP_QUEUES), "dwc-engine-worker": [settings.DWC_CONTROL_QUEUE]}


def test_the_production_overlay_sets_the_image_namespace_replicas_and_tls():
    name = "overlays/production"
    for workload in pod_templates(name):
        assert container(name, workload)["image"] == "registry.example.com/document-workflow-chain:1.0.0"
    assert {obj["metadata"].get("namespace") for obj in render(name)} == {"dwc"}
    deployments = objects(name, "Deployment")
    assert deployments["dwc-web"]["spec"]["replicas"] > objects("base", "Deployment")["dwc-web"]["spec"]["replicas"]
    assert deployments["dwc-beat"]["spec"]["replicas"] == 1
    for ingress in objects(name, "Ingress").values():
        hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
        assert ingress["spec"]["tls"] == [{"hosts": hosts, "secretName": "dwc-tls"}]
    (hpa,) = objects(name, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["minReplicas"] > objects("base", "HorizontalPodAutoscaler")["dwc-worker"]["spec"]["minReplicas"]
