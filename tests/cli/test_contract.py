"""The contract between the operator and the serving runtime, for every mode: the command
the operator renders is one the runtime has, and every variable it sets is a setting of
that command which the runtime accepts with the value rendered. No test bed: rendering
and the runtime's settings are both pure."""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings

from modelplane.cli import _parser
from modelplane.contract import ENV_PREFIX, Command, DataFormat, Env, StreamAddress, setting_name
from modelplane.operator.manifest import parse_manifest
from modelplane.operator.render import RenderSettings, render
from modelplane.operator.render.common import WORKLOAD_KINDS
from modelplane.operator.spec import ResolvedModel
from modelplane.serving.settings import BatchSettings, ServeSettings, StreamSettings

SETTINGS = RenderSettings(serving_image="example.invalid/serving:test", registry_uri="http://mlflow:5000")
MODEL = ResolvedModel(name="iris", version="3", run_id="abc", source="mlflow-artifacts:/1/abc/artifacts/model")
MODES = {
    "online": (
        {"online": {"port": 8081, "batching": {"maxBatchSize": 8, "maxLatencyMs": 5}}},
        Command.serve,
        ServeSettings,
    ),
    "batch": (
        {
            "batch": {
                "input": "s3://in/*.csv",
                "output": "s3://out/",
                "format": "jsonl",
                "idColumn": "id",
                "schedule": "0 * * * *",
                "parallelism": 3,
            }
        },
        Command.batch,
        BatchSettings,
    ),
    "streaming": (
        {
            "streaming": {
                "source": "kafka://kafka:9092/in",
                "sink": "redis://redis/out",
                "deadLetter": "nats://nats:4222/dead?stream=DEAD",
            }
        },
        Command.stream,
        StreamSettings,
    ),
}


def _rendered(mode: str) -> tuple[list[str], dict[str, str]]:
    spec, _, _ = MODES[mode]
    deployment = parse_manifest(
        {
            "apiVersion": "modelplane.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "iris", "namespace": "ml"},
            "spec": {"mode": mode, "model": {"name": "iris", "alias": "champion"}, **spec},
        }
    )
    workload = next(child for child in render(deployment, MODEL, SETTINGS) if child["kind"] in WORKLOAD_KINDS)
    workload_spec = workload["spec"]
    container = (workload_spec.get("jobTemplate", {}).get("spec") or workload_spec)["template"]["spec"]["containers"][0]
    return container["args"], {var["name"]: var["value"] for var in container["env"] if "value" in var}


@pytest.mark.parametrize("mode", MODES)
def test_the_rendered_command_is_the_runtimes_command_of_the_mode(mode: str):
    args, _ = _rendered(mode)
    assert args == [MODES[mode][1].value]
    assert _parser().parse_args([*args, "--model", "models:/iris/3"]).command == args[0]


@pytest.mark.parametrize("mode", MODES)
def test_every_rendered_variable_is_a_setting_the_runtime_accepts(mode: str, monkeypatch: pytest.MonkeyPatch):
    _, env = _rendered(mode)
    settings_type: type[BaseSettings] = MODES[mode][2]
    ours = {name: value for name, value in env.items() if name.startswith(ENV_PREFIX)}
    assert {setting_name(name) for name in ours} <= settings_type.model_fields.keys()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = settings_type()
    # Each value arrives as what the operator meant, not merely as something valid.
    for name, value in ours.items():
        assert str(_plain(getattr(settings, setting_name(name)))).lower() == value.lower(), name


def _plain(value: object) -> object:
    if isinstance(value, DataFormat):
        return value.value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def test_every_variable_of_the_contract_is_a_setting_of_some_command():
    settings = (
        ServeSettings.model_fields.keys() | BatchSettings.model_fields.keys() | StreamSettings.model_fields.keys()
    )
    named = {value for key, value in vars(Env).items() if key.isupper() and value.startswith(ENV_PREFIX)}
    assert {setting_name(name) for name in named} <= settings


def test_a_stream_url_is_taken_apart_one_way():
    address = StreamAddress.parse("nats://nats.example:4223/orders?stream=ORDERS&durable=scorers")
    assert (address.scheme, address.netloc, address.name) == ("nats", "nats.example:4223", "orders")
    assert address.options == {"stream": "ORDERS", "durable": "scorers"}
    assert StreamAddress.parse("redis://redis/events").port == 6379
    assert StreamAddress.parse("kafka://[::1]:9093/in").netloc == "[::1]:9093"
    refused = ("kafka://", "kafka://broker:9092/", "amqp://broker/q", "kafka://broker:port/t", "kafka:///t")
    for url in (*refused, "kafka://broker:99999/t"):
        with pytest.raises(ValueError, match="is not a stream URL"):
            StreamAddress.parse(url)
        StreamAddress.split(url)  # what only passes a URL on never fails


def test_the_autoscaler_trigger_names_the_servers_as_written_and_the_runtime_connects_with_a_port():
    address = StreamAddress.split("kafka://Broker/in")
    assert (address.netloc, address.server) == ("Broker", "broker:9092")
