"""A NetworkPolicy per online or streaming workload, when the operator's settings ask
for them: its pods accept connections only on the one port they serve, from the peers
the settings allow, and connect only to DNS, the registry and (streaming) the brokers.

Traffic from the pod's own node, which the kubelet's probes are, is always allowed by
NetworkPolicy, so the probes need no rule."""

from __future__ import annotations

from modelplane.operator.objects import Object
from modelplane.operator.render.common import NetworkPolicySettings

DNS_PORT = 53


def render(
    name: str, pod_selector: dict[str, str], port: int, policy: NetworkPolicySettings, brokers: bool = False
) -> Object:
    """The policy `name` over the pods `pod_selector` selects, which serve on `port`;
    `brokers` adds the egress rules to the brokers."""
    egress = [
        {
            "to": list(policy.dns),
            "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}],
        },
        *policy.registry_egress,
        *(policy.broker_egress if brokers else ()),
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {
            "podSelector": {"matchLabels": dict(pod_selector)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": list(policy.ingress_from), "ports": [{"protocol": "TCP", "port": port}]}],
            "egress": egress,
        },
    }
