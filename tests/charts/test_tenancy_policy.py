"""The chart's tenancy policy (`policy` in values): the test bed's API server refuses
ModelDeployments that break it, with a message naming the field and the fix, admits those
that keep it, and leaves alone namespaces it does not select and writes that leave the
spec unchanged."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.charts.test_modelplane import CHART
from tests.operator.resources import manifest
from tests.testbed.cluster import ControlPlane
from tests.waiting import eventually

pytestmark = pytest.mark.cluster

# Only the namespaces these tests label come under the policy, so no other test meets it.
ENFORCED_LABEL = ("modelplane.test/tenancy-policy", "enforced")
ENFORCED = "=".join(ENFORCED_LABEL)
VALUES = {
    "crds": {"install": False},
    "registries": {"allowed": ["mlflow.allowed.example", "Pinned.Example:5000"]},
    "policy": {
        "enabled": True,
        "namespaceSelector": {"matchLabels": dict([ENFORCED_LABEL])},
        "images": {"allowed": ["registry.example.com/ml/*", "docker.io/modelplane/serving:0.1.0"]},
        "env": {"allowedNames": ["OMP_NUM_THREADS", "APP_*"]},
        "tolerations": {"allowedKeys": ["nvidia.com/gpu", "example.com/team-*"]},
    },
}
# An image the policy refuses: what a probe sends until the policy is in force.
PROBE_IMAGE = "probe.invalid/not-allowed:1"


def _document(**spec) -> dict:
    """A ModelDeployment with a generated name, so one namespace holds every case."""
    document = manifest("unused", **spec)
    document["metadata"] = {"generateName": "tenant-"}
    return document


def _model(uri: str | None = None, secret: str | None = None) -> dict:
    registry = {**({"uri": uri} if uri else {}), **({"secretRef": {"name": secret}} if secret else {})}
    return {"name": "iris", "alias": "champion", "registry": registry}


# What the CRD itself says of a registry URI with credentials, a query, a fragment or
# another scheme (spec.py).
CRD_URI_RULE = "spec.model.registry.uri must be an http:// or https:// address"


def _create(cluster: ControlPlane, namespace: str, document: dict, *extra: str) -> subprocess.CompletedProcess:
    return cluster.kubectl(
        "create", "-n", namespace, "-f", "-", "-o", "name", *extra, input=yaml.safe_dump(document), check=False
    )


def _refusal(cluster: ControlPlane, namespace: str, document: dict) -> str:
    """The API server's message refusing `document`, which must be the policy's."""
    result = _create(cluster, namespace, document)
    assert result.returncode != 0, f"admitted as {result.stdout.strip()}: {document['spec']}"
    assert "ValidatingAdmissionPolicy 'tenancy-modelplane-tenancy'" in result.stderr, result.stderr
    return result.stderr.split("denied request: ", 1)[1].strip()


def _admitted(cluster: ControlPlane, namespace: str, document: dict) -> None:
    result = _create(cluster, namespace, document)
    assert result.returncode == 0, result.stderr
    kind, name = result.stdout.strip().split("/", 1)
    assert cluster.get(kind, name, namespace)["metadata"]["name"] == name


def _enforced(cluster: ControlPlane, namespace: str) -> bool:
    """Whether the policy refuses in `namespace` yet: the policy and binding reach the API
    server's admission through informers, and so does a namespace's new label."""
    result = _create(cluster, namespace, _document(image=PROBE_IMAGE), "--dry-run=server")
    return result.returncode != 0 and "ValidatingAdmissionPolicy" in result.stderr


def _namespace(cluster: ControlPlane, purpose: str, *labels: str) -> str:
    name = f"tenancy-{purpose}-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    if labels:
        cluster.kubectl("label", "namespace", name, *labels)
    return name


@pytest.fixture(scope="module")
def installed(crd: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> ControlPlane:
    """The chart installed with the policy on, as in VALUES."""
    release_namespace = _namespace(crd, "release")
    values = tmp_path_factory.mktemp("tenancy") / "values.yaml"
    values.write_text(yaml.safe_dump(VALUES))
    crd.helm("install", "tenancy", str(CHART), "-n", release_namespace, "-f", str(values))
    yield crd
    crd.helm("uninstall", "tenancy", "-n", release_namespace)
    crd.kubectl("delete", "namespace", release_namespace, "--wait=false")


@pytest.fixture(scope="module")
def tenant(installed: ControlPlane) -> str:
    """A namespace the policy applies in, once the API server enforces it there."""
    namespace = _namespace(installed, "tenant", ENFORCED)
    eventually(lambda: _enforced(installed, namespace), what="the tenancy policy in force")
    yield namespace
    installed.kubectl("delete", "namespace", namespace, "--wait=false")


def _rendered_kinds(cluster: ControlPlane, *args: str) -> list[str]:
    documents = yaml.safe_load_all(cluster.helm("template", "mp", str(CHART), *args).stdout)
    return [doc["kind"] for doc in documents if doc]


def test_the_policy_is_off_by_default(cluster: ControlPlane, tmp_path: Path):
    assert "ValidatingAdmissionPolicy" not in _rendered_kinds(cluster)
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(VALUES))
    kinds = _rendered_kinds(cluster, "-f", str(values))
    assert {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= set(kinds)
    assert "0 chart(s) failed" in cluster.helm("lint", "--strict", str(CHART), "-f", str(values)).stdout


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        (
            'registries.allowed=["http://mlflow.example"]',
            'registries.allowed: "http://mlflow.example" must be a host or host:port',
        ),
        (
            'registries.allowed=["mlflow.example/api"]',
            'registries.allowed: "mlflow.example/api" must be a host or host:port',
        ),
        (
            'policy.images.allowed=["registry.example.com/*/serving"]',
            'policy.images.allowed: "registry.example.com/*/serving" must be a value, or a prefix ending in * (no other *)',
        ),
        ('policy.tolerations.allowedKeys=[""]', 'policy.tolerations.allowedKeys: "" must be a value'),
        ("policy.env.allowedNames=[7]", 'policy.env.allowedNames: "7" must be a value'),
    ],
    ids=["registry-with-scheme", "registry-with-path", "pattern-with-inner-star", "empty-pattern", "not-a-string"],
)
def test_values_the_policy_cannot_mean_fail_the_install(cluster: ControlPlane, value: str, complaint: str):
    result = cluster.helm(
        "template", "mp", str(CHART), "--set", "policy.enabled=true", "--set-json", value, check=False
    )
    assert result.returncode != 0
    assert complaint in result.stderr


@pytest.mark.parametrize(
    ("image", "complaint"),
    [
        ("evil.example/miner:1", "spec.image evil.example/miner:1 is not an allowed image here"),
        # A prefix is matched as written: ml/* does not admit a sibling repository or the bare name.
        ("registry.example.com/ml-other/x:1", "spec.image registry.example.com/ml-other/x:1 is not"),
        ("registry.example.com/ml", "spec.image registry.example.com/ml is not"),
        ("docker.io/modelplane/serving:0.1.0-evil", "spec.image docker.io/modelplane/serving:0.1.0-evil is not"),
    ],
    ids=["other-registry", "sibling-repository", "bare-prefix", "exact-entry-extended"],
)
def test_an_image_outside_the_allowed_ones_is_refused(installed: ControlPlane, tenant: str, image: str, complaint: str):
    message = _refusal(installed, tenant, _document(image=image))
    assert message.startswith(complaint), message
    assert message.endswith(
        "use an image matching registry.example.com/ml/*, docker.io/modelplane/serving:0.1.0, "
        "or remove spec.image to run the operator's serving image"
    ), message


@pytest.mark.parametrize(
    "image",
    [None, "", "registry.example.com/ml/serving:2", "docker.io/modelplane/serving:0.1.0"],
    ids=["unset", "empty", "under-a-prefix", "exact"],
)
def test_the_serving_image_and_allowed_images_are_admitted(installed: ControlPlane, tenant: str, image: str | None):
    _admitted(installed, tenant, _document(**({} if image is None else {"image": image})))


@pytest.mark.parametrize(
    ("uri", "complaint"),
    [
        # Another scheme, or none, would reach files or another protocol.
        ("file:///etc/passwd", "must be an http:// or https:// URL"),
        ("ftp://mlflow.allowed.example/", "must be an http:// or https:// URL"),
        ("databricks", "must be an http:// or https:// URL"),
        ("//mlflow.allowed.example", "must be an http:// or https:// URL"),
        ("mlflow.allowed.example:5000", "must be an http:// or https:// URL"),
        (" http://mlflow.allowed.example", "must be an http:// or https:// URL"),
        # Userinfo: the allowed name is only a user name, the client connects to evil.example.
        ("http://mlflow.allowed.example@evil.example/", "must not carry credentials before its host"),
        ("http://user:token@mlflow.allowed.example/", "must not carry credentials before its host"),
        ("http://evil.example\\@mlflow.allowed.example/", "must not carry credentials before its host"),
        # A query or fragment swallows the API path, reaching any path of the host.
        ("http://mlflow.allowed.example/admin#", "must not carry a query (?) or a fragment (#)"),
        ("http://mlflow.allowed.example/admin?", "must not carry a query (?) or a fragment (#)"),
        ("http://evil.example#@mlflow.allowed.example", "must not carry a query (?) or a fragment (#)"),
        ("http://evil.example?@mlflow.allowed.example", "must not carry a query (?) or a fragment (#)"),
        # Hosts no client would agree on.
        ("http://mlflow.allowed.example\\.evil.example/", "must be http(s)://HOST[:PORT][/PATH]"),
        ("http://mlflow%2eallowed.example/", "must be http(s)://HOST[:PORT][/PATH]"),
        ("http://mlflow.allowed.example../", "must be http(s)://HOST[:PORT][/PATH]"),
        ("http://mlflоw.allowed.example/", "must be http(s)://HOST[:PORT][/PATH]"),  # noqa: RUF001, RUF003 - a Cyrillic о
        ("http://mlflow.allowed.example:/", "must be http(s)://HOST[:PORT][/PATH]"),
        ("http://mlflow.allowed.example/a b", "must be http(s)://HOST[:PORT][/PATH]"),
        ("http:///mlflow.allowed.example", "must be http(s)://HOST[:PORT][/PATH]"),
        # Well-formed, but not an allowed registry.
        ("http://evil.example:5000", "names the registry evil.example:5000, which is not allowed here"),
        ("HTTP://EVIL.EXAMPLE/", "names the registry evil.example, which is not allowed here"),
        ("https://mlflow.allowed.example.evil.example/", "names the registry mlflow.allowed.example.evil.example,"),
        ("http://evil-mlflow.allowed.example/", "names the registry evil-mlflow.allowed.example,"),
        ("http://pinned.example:5001/", "names the registry pinned.example:5001,"),
        ("http://pinned.example/", "names the registry pinned.example,"),
        ("http://127.0.0.1:5000/", "names the registry 127.0.0.1:5000,"),
        ("http://[::1]:5000/", "names the registry [::1]:5000,"),
    ],
    ids=[
        "file",
        "ftp",
        "no-scheme",
        "scheme-relative",
        "host-port-only",
        "leading-space",
        "allowed-host-as-userinfo",
        "credentials-for-allowed-host",
        "backslash-userinfo",
        "trailing-fragment",
        "trailing-query",
        "fragment-before-userinfo",
        "query-before-userinfo",
        "backslash-in-host",
        "percent-escaped-host",
        "double-trailing-dot",
        "homoglyph-host",
        "empty-port",
        "space-in-path",
        "empty-host",
        "other-host",
        "other-host-upper-case",
        "allowed-name-as-subdomain",
        "allowed-name-as-suffix",
        "other-port-of-pinned-host",
        "pinned-host-without-port",
        "loopback",
        "ipv6-loopback",
    ],
)
def test_a_registry_uri_outside_the_allowed_hosts_is_refused(
    installed: ControlPlane,
    tenant: str,
    uri: str,
    complaint: str,
):
    result = _create(installed, tenant, _document(model=_model(uri)))

    assert result.returncode != 0, f"admitted as {result.stdout.strip()}"
    if "ValidatingAdmissionPolicy" not in result.stderr:
        # The CRD's own rule refuses a malformed URI before any admission policy sees it.
        assert CRD_URI_RULE in result.stderr, result.stderr
        return
    message = result.stderr.split("denied request: ", 1)[1].strip()
    assert message.startswith("spec.model.registry.uri "), message
    assert complaint in message, message


def test_a_refusal_for_another_registry_names_the_allowed_ones(installed: ControlPlane, tenant: str):
    message = _refusal(installed, tenant, _document(model=_model("http://evil.example")))
    assert message == (
        "spec.model.registry.uri names the registry evil.example, which is not allowed here: "
        "use one of mlflow.allowed.example, pinned.example:5000, "
        "or remove spec.model.registry.uri for the default registry"
    )


@pytest.mark.parametrize(
    "uri",
    [
        "http://mlflow.allowed.example",
        "http://mlflow.allowed.example:5000/mlflow",  # a host entry admits any port, and a path
        "HTTPS://MLFLOW.Allowed.Example/",
        "http://mlflow.allowed.example.:5000/",  # an absolute name of an allowed host
        "http://pinned.example:5000",
    ],
    ids=["host", "host-any-port-and-path", "upper-case", "trailing-dot", "pinned-port"],
)
def test_a_registry_uri_of_an_allowed_host_is_admitted(installed: ControlPlane, tenant: str, uri: str):
    _admitted(installed, tenant, _document(model=_model(uri)))


def test_a_registry_secret_is_refused(installed: ControlPlane, tenant: str):
    message = _refusal(installed, tenant, _document(model=_model("http://mlflow.allowed.example", secret="tokens")))
    assert message.startswith("spec.model.registry.secretRef is not allowed here"), message
    assert message.endswith("remove it"), message


@pytest.mark.parametrize(
    ("value_from", "complaint"),
    [
        (
            {"secretKeyRef": {"name": "db", "key": "password"}},
            "spec.env APP_SECRET reads a Secret (valueFrom.secretKeyRef)",
        ),
        # Any source but the three that read no Secret, and anything that is not a source at all.
        (
            {"configMapKeyRef": {"name": "c", "key": "k"}, "secretKeyRef": {"name": "db", "key": "password"}},
            "spec.env APP_SECRET reads a Secret",
        ),
        ({"futureSecretSource": {"name": "db"}}, "spec.env APP_SECRET reads a Secret"),
        ("db/password", "spec.env APP_SECRET reads a Secret"),
    ],
    ids=["secret-key-ref", "beside-a-config-map", "unknown-source", "not-an-object"],
)
def test_env_reading_a_secret_is_refused(installed: ControlPlane, tenant: str, value_from, complaint: str):
    message = _refusal(installed, tenant, _document(env=[{"name": "APP_SECRET", "valueFrom": value_from}]))
    assert message.startswith(complaint), message
    assert message.endswith("set value, or valueFrom.configMapKeyRef, fieldRef or resourceFieldRef"), message


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        # Each would walk around a guard: the registry allow-list, the pickle policy, the model.
        ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
        ("modelplane_allow_pickle", "modelplane_allow_pickle"),
        ("MODELPLANE_MODEL", "MODELPLANE_MODEL"),
        ("HOME", "HOME"),
        # Not in the allowed names: an interpreter hook.
        ("PYTHONPATH", "PYTHONPATH"),
        ("APP", "APP"),
    ],
    ids=["registry", "pickle-in-lower-case", "model", "home", "interpreter-hook", "prefix-without-rest"],
)
def test_env_outside_the_allowed_names_is_refused(installed: ControlPlane, tenant: str, name: str, shown: str):
    message = _refusal(
        installed, tenant, _document(env=[{"name": "OMP_NUM_THREADS", "value": "2"}, {"name": name, "value": "x"}])
    )
    assert message == (
        f"spec.env sets {shown}, not allowed here: remove it (names matching OMP_NUM_THREADS, APP_* "
        "are allowed; MODELPLANE_*, MLFLOW_* and HOME belong to the operator)"
    )


def test_env_of_allowed_names_without_secrets_is_admitted(installed: ControlPlane, tenant: str):
    _admitted(
        installed,
        tenant,
        _document(
            env=[
                {"name": "OMP_NUM_THREADS", "value": "2"},
                {"name": "APP_MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                {"name": "APP_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "APP_CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            ]
        ),
    )


@pytest.mark.parametrize(
    ("toleration", "shown"),
    [
        (
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
            "taint key node-role.kubernetes.io/control-plane",
        ),
        # Without a key, or with an empty one, a toleration tolerates every taint.
        ({"operator": "Exists"}, "every taint (a toleration without a key)"),
        ({"key": "", "operator": "Exists"}, "every taint (a toleration without a key)"),
        ({"key": "example.com/team", "operator": "Exists"}, "taint key example.com/team"),
    ],
    ids=["control-plane", "keyless", "empty-key", "prefix-without-rest"],
)
def test_a_toleration_outside_the_allowed_keys_is_refused(
    installed: ControlPlane,
    tenant: str,
    toleration: dict,
    shown: str,
):
    allowed = {"key": "nvidia.com/gpu", "operator": "Exists"}
    message = _refusal(installed, tenant, _document(tolerations=[allowed, toleration]))
    assert message == (
        f"spec.tolerations tolerates {shown}, not allowed here: remove the toleration "
        "(keys matching nvidia.com/gpu, example.com/team-* are allowed)"
    )


def test_a_toleration_key_that_is_not_a_string_is_refused(installed: ControlPlane, tenant: str):
    message = _refusal(installed, tenant, _document(tolerations=[{"key": 7, "operator": "Exists"}]))
    assert message.startswith("spec.tolerations tolerates a key that is not a string, not allowed here"), message


def test_tolerations_of_allowed_keys_are_admitted(installed: ControlPlane, tenant: str):
    _admitted(
        installed,
        tenant,
        _document(
            tolerations=[
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "example.com/team-a", "operator": "Equal", "value": "yes"},
            ]
        ),
    )


BREAKS_EVERY_RULE = {
    "image": PROBE_IMAGE,
    "model": _model("http://evil.example", secret="tokens"),
    "env": [{"name": "MLFLOW_TRACKING_URI", "valueFrom": {"secretKeyRef": {"name": "db", "key": "uri"}}}],
    "tolerations": [{"operator": "Exists"}],
}


def test_a_namespace_the_selector_leaves_out_is_not_checked(installed: ControlPlane, tenant: str):
    # The policy is in force (the tenant fixture saw it refuse): only the selector lets this through.
    exempt = _namespace(installed, "exempt")
    try:
        _admitted(installed, exempt, _document(**BREAKS_EVERY_RULE))
    finally:
        installed.kubectl("delete", "namespace", exempt, "--wait=false")


def test_writes_that_keep_the_spec_pass_and_a_new_spec_must_comply(installed: ControlPlane, tenant: str):
    """A ModelDeployment admitted before its namespace came under the policy: the
    operator's writes (a finalizer) and its deletion pass; a spec change must comply."""
    namespace = _namespace(installed, "adopted")
    try:
        created = _create(installed, namespace, _document(**BREAKS_EVERY_RULE))
        assert created.returncode == 0, created.stderr
        name = created.stdout.strip()
        installed.kubectl("label", "namespace", namespace, ENFORCED)
        eventually(lambda: _enforced(installed, namespace), what="the policy in force in the newly labelled namespace")

        installed.kubectl(
            "patch",
            name,
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"metadata": {"finalizers": ["kopf.zalando.org/KopfFinalizerMarker"]}}',
        )
        installed.kubectl("annotate", name, "-n", namespace, "modelplane.test/touched=yes")
        changed = installed.kubectl(
            "patch",
            name,
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"spec": {"image": "evil.example/other:2"}}',
            check=False,
        )
        assert changed.returncode != 0
        assert "spec.image evil.example/other:2 is not an allowed image here" in changed.stderr

        installed.kubectl("delete", name, "-n", namespace, "--wait=false")
        installed.kubectl("patch", name, "-n", namespace, "--type=merge", "-p", '{"metadata": {"finalizers": null}}')
        eventually(
            lambda: installed.kubectl("get", name, "-n", namespace, check=False).returncode != 0,
            what="the ModelDeployment deleted",
        )
    finally:
        installed.kubectl("delete", "namespace", namespace, "--wait=false")
