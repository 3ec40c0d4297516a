"""The Helm chart: lint, RBAC that is enough for the operator and no more, and a CRD
that `helm upgrade` upgrades and `helm uninstall` keeps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, Registry, show_logs_on_failure
from tests.operator.process import Operator
from tests.operator.resources import apply, children, manifest, ready
from tests.scanner import scan, unexpected
from tests.testbed.cluster import ControlPlane
from tests.waiting import eventually

CHART = REPO / "charts" / "modelplane"
CRD = "customresourcedefinition/modeldeployments.modelplane.io"

pytestmark = pytest.mark.cluster


def test_the_chart_lints_clean(cluster: ControlPlane):
    result = cluster.helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout


def _rendered(cluster: ControlPlane, *values: str, json_values: dict[str, object] | None = None) -> dict[str, dict]:
    sets = [arg for value in values for arg in ("--set", value)]
    sets += [arg for key, value in (json_values or {}).items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]
    # In a namespace, as `helm install -n` renders it (the default one is not for workloads).
    documents = yaml.safe_load_all(cluster.helm("template", "mp", str(CHART), "-n", "modelplane-system", *sets).stdout)
    return {f"{doc['kind']}/{doc['metadata']['name']}": doc for doc in documents if doc}


def _operator_env(rendered: dict[str, dict]) -> dict[str, dict]:
    container = rendered["Deployment/mp-modelplane"]["spec"]["template"]["spec"]["containers"][0]
    return {variable["name"]: variable for variable in container["env"]}


# Checks of the scanner that do not apply to the chart, besides those of every scan.
CHART_NOT_APPLICABLE = {
    "CKV_K8S_38": "Service Account Tokens only where necessary: the operator is a client of the API server, "
    "which it reaches with its ServiceAccount's token",
}
WITHOUT_POLICIES = "CKV2_K8S_6"  # "Minimize the admission of pods which lack an associated NetworkPolicy"
EVERY_OPTION = (
    "networkPolicy.enabled=true",
    "webhook.secretName=mlflow-webhook",
    "watchNamespaces={ml-prod}",
    "registries.credentialsSecret=mlflow-credentials",
    "policy.enabled=true",
)


def test_the_chart_with_every_option_on_passes_the_scanner(cluster: ControlPlane, tmp_path: Path):
    rendered = _rendered(cluster, *EVERY_OPTION)
    assert "NetworkPolicy/mp-modelplane" in rendered

    findings = scan(list(rendered.values()), tmp_path)

    assert unexpected(findings, CHART_NOT_APPLICABLE) == []


def test_the_chart_by_default_passes_the_scanner_but_for_network_policies(cluster: ControlPlane, tmp_path: Path):
    findings = scan(list(_rendered(cluster).values()), tmp_path)

    assert unexpected(findings, {**CHART_NOT_APPLICABLE, WITHOUT_POLICIES: "off by default (networkPolicy)"}) == []


def test_the_operator_has_a_readiness_probe_and_every_probe_a_timeout(cluster: ControlPlane):
    container = _rendered(cluster)["Deployment/mp-modelplane"]["spec"]["template"]["spec"]["containers"][0]

    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert all(container[probe]["timeoutSeconds"] > 1 for probe in ("readinessProbe", "livenessProbe"))


def test_the_charts_workload_defaults_are_the_operators_own(cluster: ControlPlane):
    from modelplane.operator.render.common import DEFAULT_RESOURCES, KUBE_DNS, OWN_NAMESPACE

    assert "MODELPLANE_NETWORK_POLICY" not in _operator_env(_rendered(cluster))
    env = _operator_env(_rendered(cluster, "networkPolicy.enabled=true"))

    assert json.loads(env["MODELPLANE_WORKLOAD_RESOURCES"]["value"]) == DEFAULT_RESOURCES
    assert json.loads(env["MODELPLANE_NETWORK_POLICY"]["value"]) == {
        "ingressFrom": list(OWN_NAMESPACE),
        "dns": list(KUBE_DNS),
        "registryEgress": [],
        "brokerEgress": [],
    }


def test_the_operators_policy_lets_in_only_webhook_calls(cluster: ControlPlane):
    closed = _rendered(cluster, "networkPolicy.enabled=true")["NetworkPolicy/mp-modelplane"]["spec"]
    assert (closed["policyTypes"], closed["ingress"]) == (["Ingress"], [])

    gateway = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}
    rendered = _rendered(
        cluster,
        "networkPolicy.enabled=true",
        "webhook.secretName=mlflow-webhook",
        json_values={"networkPolicy.webhookFrom": [gateway]},
    )
    policy = rendered["NetworkPolicy/mp-modelplane"]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= (
        rendered["Deployment/mp-modelplane"]["spec"]["template"]["metadata"]["labels"].items()
    )
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8090}], "from": [gateway]}]


def test_the_webhook_endpoint_is_exposed_only_with_a_signing_secret(cluster: ControlPlane):
    assert "Service/mp-modelplane-webhook" not in _rendered(cluster)

    rendered = _rendered(cluster, "webhook.secretName=mlflow-webhook")
    container = rendered["Deployment/mp-modelplane"]["spec"]["template"]["spec"]["containers"][0]
    env = {variable["name"]: variable for variable in container["env"]}
    assert env["MODELPLANE_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-webhook", "key": "secret"}
    assert env["MODELPLANE_WEBHOOK_LISTEN"]["value"] == "0.0.0.0:8090"
    service = rendered["Service/mp-modelplane-webhook"]["spec"]
    assert service["ports"][0]["targetPort"] == "webhook"
    assert {"name": "webhook", "containerPort": 8090} in container["ports"]


def _workload_namespace(cluster: ControlPlane, namespace: str) -> str:
    workloads = f"{namespace}-work"
    cluster.kubectl("create", "namespace", workloads)
    return workloads


def _run_a_deployment_through_its_life(cluster: ControlPlane, namespace: str, kubeconfig: Path) -> None:
    """Create, become Ready, switch mode, delete: every verb the operator uses."""
    apply(cluster, namespace, manifest("iris"), kubeconfig=None)
    eventually(lambda: ready(cluster, namespace, "iris", 1), what="online Ready")
    apply(cluster, namespace, manifest("iris", mode="batch", batch={"input": "/in", "output": "/out"}))
    eventually(lambda: ready(cluster, namespace, "iris", 2), what="the batch Job complete")
    assert [child.split("-")[0] for child in children(cluster, namespace)] == ["Job/iris"]
    cluster.kubectl("delete", "mdep", "iris", "-n", namespace)
    eventually(lambda: children(cluster, namespace) == [], what="the children collected")


@pytest.mark.registry
def test_the_operator_runs_on_the_cluster_wide_rbac_alone(
    request: pytest.FixtureRequest,
    crd: ControlPlane,
    registry: Registry,
    namespace: str,
    testbed_dir: Path,
):
    crd.helm("install", "wide", str(CHART), "-n", namespace, "--set", "crds.install=false")
    workloads = _workload_namespace(crd, namespace)
    as_chart = crd.service_account_kubeconfig(namespace, "wide-modelplane")
    operator = Operator(as_chart, registry.tracking_uri, testbed_dir / "logs", name="operator-cluster-wide").start()
    show_logs_on_failure(request.config, [operator.component])
    try:
        _run_a_deployment_through_its_life(crd, workloads, as_chart)
    finally:
        operator.stop()
        crd.helm("uninstall", "wide", "-n", namespace)
    log = operator.component.log_path.read_text()
    assert "is forbidden: User" not in log, "RBAC refused the operator something it needs"


@pytest.mark.registry
def test_a_namespaced_install_grants_nothing_outside_its_namespaces(
    request: pytest.FixtureRequest,
    crd: ControlPlane,
    registry: Registry,
    namespace: str,
    testbed_dir: Path,
):
    workloads = _workload_namespace(crd, namespace)
    crd.helm(
        "install",
        "narrow",
        str(CHART),
        "-n",
        namespace,
        "--set",
        "crds.install=false",
        "--set",
        f"watchNamespaces={{{workloads}}}",
    )
    as_chart = crd.service_account_kubeconfig(namespace, "narrow-modelplane")
    operator = Operator(
        as_chart,
        registry.tracking_uri,
        testbed_dir / "logs",
        scope=("--namespace", workloads),
        name="operator-namespaced",
    ).start()
    show_logs_on_failure(request.config, [operator.component])
    try:
        _run_a_deployment_through_its_life(crd, workloads, as_chart)
    finally:
        operator.stop()

    def can(verb: str, what: str, where: str) -> bool:
        answer = crd.kubectl("auth", "can-i", verb, what, "-n", where, "--kubeconfig", str(as_chart), check=False)
        return answer.stdout.strip() == "yes"

    assert can("create", "deployments", workloads)
    assert not can("create", "deployments", namespace)
    assert not can("list", "modeldeployments", "default")
    # A ModelDeployment's registry Secret is read by name in its own namespace, never listed.
    assert can("get", "secrets", workloads)
    assert not can("list", "secrets", workloads) and not can("watch", "secrets", workloads)
    assert not can("get", "secrets", namespace)
    crd.helm("uninstall", "narrow", "-n", namespace)


def test_upgrade_upgrades_the_crd_and_uninstall_keeps_it(crd: ControlPlane, namespace: str, tmp_path: Path):
    # The CRD is already there, applied by kubectl as someone who tried Modelplane before
    # the chart would have it: the chart takes it over.
    crd.helm("install", "lifecycle", str(CHART), "-n", namespace, "--take-ownership")
    installed = crd.get(CRD.split("/")[0], CRD.split("/")[1])
    assert installed["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    changed = tmp_path / "modelplane"
    shutil.copytree(CHART, changed)
    crd_file = changed / "files" / "modelplane.io_modeldeployments.yaml"
    definition = yaml.safe_load(crd_file.read_text())
    schema = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"]["properties"]["mode"]["description"] += " (changed by an upgrade)"
    crd_file.write_text(yaml.safe_dump(definition))
    # kubectl still co-owns the CRD's fields (server-side apply), so changing them needs
    # --force-conflicts; the README says so.
    crd.helm("upgrade", "lifecycle", str(changed), "-n", namespace, "--force-conflicts")

    upgraded = crd.get(CRD.split("/")[0], CRD.split("/")[1])
    mode = upgraded["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["mode"]
    assert mode["description"].endswith("(changed by an upgrade)")

    crd.helm("uninstall", "lifecycle", "-n", namespace)

    assert crd.kubectl("get", CRD, check=False).returncode == 0, "the CRD must survive helm uninstall"
    leftovers = json.loads(
        crd.kubectl(
            "get",
            "deployments,serviceaccounts",
            "-n",
            namespace,
            "-l",
            "app.kubernetes.io/instance=lifecycle",
            "-o",
            "json",
        ).stdout
    )["items"]
    assert leftovers == []
    assert crd.kubectl("get", "clusterrole", "lifecycle-modelplane", check=False).returncode != 0


def test_the_operators_role_grants_every_kind_it_renders(cluster: ControlPlane):
    """The kinds the operator owns are listed once, in the operator; the chart's RBAC must
    let it create, patch, prune and watch each of them."""
    from modelplane.operator.render.common import CHILD_KINDS, SCALED_OBJECT

    role = next(doc for key, doc in _rendered(cluster).items() if key.startswith("ClusterRole/"))
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for api_version, kind in CHILD_KINDS:
        group = api_version.rpartition("/")[0]
        path = f"/apis/{api_version}" if group else f"/api/{api_version}"
        served = json.loads(cluster.kubectl("get", "--raw", path).stdout)["resources"]
        plural = next(item["name"] for item in served if item["kind"] == kind and "/" not in item["name"])
        assert {"get", "list", "watch", "create", "patch", "delete"} <= granted.get((group, plural), set()), kind
    # KEDA is not installed in the test bed: its plural as KEDA's CRD names it.
    assert {"get", "list", "watch", "create", "patch", "delete"} <= granted[("keda.sh", "scaledobjects")], SCALED_OBJECT
