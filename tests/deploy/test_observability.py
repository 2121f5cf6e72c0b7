"""deploy/prometheus/ and deploy/grafana/ against what the product exports.

Every metric a dashboard panel or an alert rule names must be one a process serves: the families
registered by core.metrics and django-prometheus' middleware, plus the few that the scraper and the
exporters of the observability profile add. promtool checks the files too when it is installed
(Debian's `prometheus` package); CI does not install it (12 packages, ~330 MB, and a systemd unit).
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.utils.module_loading import import_string
from django_prometheus.middleware import Metrics
from prometheus_client import REGISTRY

import core.metrics  # noqa: F401 - registers the dwc_* families

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "dwc.json"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

# Served by something other than the product, each named for a reason.
OUTSIDE_METRICS = {
    "up": "Prometheus writes it for every scrape target (workers answering, beat alive, web down)",
    "pg_up": "postgres_exporter (postgres-exporter service): whether PostgreSQL answers",
    "redis_up": "redis_exporter (redis-exporter service): whether Redis answers",
}
PROCESS_JOBS = {"dwc-web", "dwc-realtime", "dwc-worker", "dwc-beat", "postgres", "redis"}
OBSERVABILITY_SERVICES = ("prometheus", "grafana", "postgres-exporter", "redis-exporter")

SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
}

PROMQL_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp_max", "clamp_min",
    "count_over_time", "delta", "deriv", "floor", "histogram_quantile", "idelta", "increase", "irate",
    "label_replace", "max_over_time", "min_over_time", "predict_linear", "rate", "resets", "round",
    "scalar", "sort", "sort_desc", "sum_over_time", "time", "timestamp", "vector",
    "sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile", "stddev", "count_values", "group",
}  # fmt: skip
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "inf", "nan"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSET = re.compile(r"\boffset\s+-?[\w$]+")
_NUMBER = re.compile(r"(?<![\w:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_JOB_MATCHER = re.compile(r'\bjob\s*(=~|=)\s*"([^"]*)"')


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: what is left once strings, label matchers, ranges,
    grouping clauses, offsets, numbers, functions and operators are taken out."""
    text = _STRING.sub(" ", expr)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        if text[match.end() :].lstrip().startswith("("):
            assert word in PROMQL_FUNCTIONS, f"{word}() is not a PromQL function this check knows, in {expr!r}"
        elif word not in PROMQL_KEYWORDS:
            names.add(word)
    return names


def job_names_matched(expr: str) -> set[str]:
    names = set()
    for operator, value in _JOB_MATCHER.findall(expr):
        names.update(value.split("|") if operator == "=~" else [value])
    return names


def exported_metric_names() -> set[str]:
    """Sample names the product's processes serve: the live registry once core.metrics and
    django-prometheus' middleware metrics are registered. django-prometheus' django_db_* families
    are left out: they come with its database backend, and the product runs its own
    (config.database)."""
    Metrics.get_instance()
    names = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SAMPLE_SUFFIXES.get(family.type, ("",)))
    # Gauges the workers' and beat's endpoints read at scrape time (config/metrics_server.py).
    for path in settings.DWC_METRICS_SCRAPE_COLLECTORS:
        names.update(import_string(path).FAMILIES)
    return names


def dashboard_panels() -> list[dict]:
    panels = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # the panels of a collapsed row
    return panels


def dashboard_expressions() -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in dashboard_panels() for target in panel.get("targets", [])]


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def scrape_configs() -> list[dict]:
    return yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_extractor_keeps_metric_names_and_drops_functions_labels_and_clauses():
    expr = (
        'histogram_quantile(0.95, sum by (queue, le) (rate(dwc_step_queue_wait_seconds_bucket{queue="calls"}[5m])))'
        ' > 30 and on (queue) sum without (instance) (dwc_queue_depth offset 5m) or absent(up{job="dwc-beat"})'
        " or time() - max(dwc_recovery_last_run_timestamp_seconds) > 1e3"
    )
    assert promql_metric_names(expr) == {
        "dwc_step_queue_wait_seconds_bucket",
        "dwc_queue_depth",
        "up",
        "dwc_recovery_last_run_timestamp_seconds",
    }


def test_the_exported_set_has_sample_names_of_each_family_type():
    exported = exported_metric_names()
    assert {"dwc_workflow_runs_total", "dwc_step_duration_seconds_bucket", "dwc_queue_depth"} <= exported
    assert "django_http_responses_total_by_status_total" in exported
    assert "dwc_step_duration_seconds" not in exported  # a histogram serves only _bucket, _sum, _count


def test_every_dashboard_panel_queries_metrics_the_product_exports():
    allowed = exported_metric_names() | set(OUTSIDE_METRICS)
    expressions = dashboard_expressions()
    assert expressions
    for title, expr in expressions:
        names = promql_metric_names(expr)
        assert names, f"panel {title!r} selects no metric: {expr!r}"
        assert names <= allowed, f"panel {title!r} names {sorted(names - allowed)}, which nothing exports"


def test_every_alert_expression_names_metrics_the_product_or_the_exporters_export():
    allowed = exported_metric_names() | set(OUTSIDE_METRICS)
    for rule in alert_rules():
        names = promql_metric_names(rule["expr"])
        assert names, f"{rule['alert']} selects no metric"
        assert names <= allowed, f"{rule['alert']} names {sorted(names - allowed)}, which nothing exports"


def test_expressions_name_only_jobs_that_prometheus_scrapes():
    jobs = {config["job_name"] for config in scrape_configs()}
    assert jobs >= PROCESS_JOBS
    for name, expr in dashboard_expressions() + [(rule["alert"], rule["expr"]) for rule in alert_rules()]:
        assert job_names_matched(expr) <= jobs, f"{name} matches a job Prometheus does not scrape: {expr!r}"


def test_the_dashboard_has_the_panels_of_the_issue_and_a_well_formed_layout():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 36  # Grafana 10 writes 38 and later
    panels = dashboard_panels()
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    exprs = " ".join(expr for _, expr in dashboard_expressions())
    for needed in (
        "dwc_workflow_runs_total",
        "dwc_step_duration_seconds_bucket",
        "dwc_queue_depth",
        "dwc_step_queue_wait_seconds_bucket",
        'up{job="dwc-worker"}',
        "dwc_generation_tokens_total",
        "dwc_generation_cost_total",
        "django_http_responses_total_by_status_total",
        "django_http_requests_latency_including_middlewares_seconds_bucket",
        "dwc_websocket_connections_active",
    ):
        assert needed in exprs, f"no panel shows {needed}"
    for title, expr in dashboard_expressions():
        if "histogram_quantile" in expr:
            assert "_bucket[" in expr and "le" in expr, f"{title}: percentiles come from bucket rates by le"


def test_panels_use_the_provisioned_datasource():
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    for panel in dashboard_panels():
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid, panel["title"]
            assert all(target["datasource"]["uid"] == uid for target in panel["targets"]), panel["title"]


def test_every_alert_waits_and_has_a_severity_and_a_runbook_in_the_operations_guide():
    operations = OPERATIONS_DOC.read_text()
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert rule["expr"].strip()
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert rule["annotations"]["runbook"].startswith("docs/operations.md#alerts"), rule["alert"]
        assert f"`{rule['alert']}`" in operations, f"docs/operations.md has no runbook row for {rule['alert']}"


def test_the_observability_profile_runs_pinned_images_with_the_files_of_deploy():
    services = compose()["services"]
    for name in OBSERVABILITY_SERVICES:
        service = services[name]
        assert service["profiles"] == ["observability"], name
        image = service["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"{name} image is not pinned"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"
    # Each scrape target is a compose service (or Prometheus itself).
    for config in scrape_configs():
        hosts = [t.split(":")[0] for static in config.get("static_configs", []) for t in static["targets"]]
        hosts += [name for dns in config.get("dns_sd_configs", []) for name in dns["names"]]
        assert set(hosts) <= set(services) | {"localhost"}, config["job_name"]


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        # .ci/run installs it: CI always runs these; a developer machine without it skips them.
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing in CI: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is not installed (apt-get install prometheus); the tests above parse the rules")
    return path


def test_promtool_accepts_the_alert_rules(promtool):
    result = subprocess.run(
        [promtool, "check", "rules", str(PROMETHEUS / "alerts.yml")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_scrape_config(promtool, tmp_path):
    # The token file is a compose secret at run time; promtool wants every referenced file to exist.
    token = tmp_path / "dwc_metrics_token"
    token.write_text("scraper-token")
    config = (PROMETHEUS / "prometheus.yml").read_text()
    assert "/run/secrets/dwc_metrics_token" in config
    (tmp_path / "prometheus.yml").write_text(config.replace("/run/secrets/dwc_metrics_token", str(token)))
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr


def test_the_alerts_fire_on_the_series_they_watch(promtool):
    result = subprocess.run(
        [promtool, "test", "rules", str(PROMETHEUS / "alerts_test.yml")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
