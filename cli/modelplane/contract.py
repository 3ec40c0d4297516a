"""What the operator and the serving runtime agree on, and nothing else: the serving
container's command verbs, the environment variables the operator sets, the output data
formats and the grammar of stream URLs.

Both sides import this module and never each other, so it imports only the standard
library. The runtime reads a variable as its setting's name with `ENV_PREFIX` (its
`--max-batch-size` flag is `MODELPLANE_MAX_BATCH_SIZE`); the names here are the ones the
operator writes, and the contract tests check each is a setting of its command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import parse_qs, urlsplit

ENV_PREFIX = "MODELPLANE_"


class Command(str, Enum):
    """The serving container's verb (its first argument), one per mode."""

    serve = "serve"
    batch = "batch"
    stream = "stream"


class Env:
    """The variables the operator sets in a serving pod."""

    # Every command.
    MODEL = "MODELPLANE_MODEL"
    MODEL_CACHE = "MODELPLANE_MODEL_CACHE"
    ALLOW_PICKLE = "MODELPLANE_ALLOW_PICKLE"
    # serve
    HOST = "MODELPLANE_HOST"
    PORT = "MODELPLANE_PORT"
    MAX_BATCH_SIZE = "MODELPLANE_MAX_BATCH_SIZE"
    MAX_BATCH_WAIT_MS = "MODELPLANE_MAX_BATCH_WAIT_MS"
    UI = "MODELPLANE_UI"
    # batch
    INPUT = "MODELPLANE_INPUT"
    OUTPUT = "MODELPLANE_OUTPUT"
    FORMAT = "MODELPLANE_FORMAT"
    ID_COLUMN = "MODELPLANE_ID_COLUMN"
    SHARD_COUNT = "MODELPLANE_SHARD_COUNT"
    ONLY_NEW = "MODELPLANE_ONLY_NEW"
    # An Indexed Job gives each pod its shard as this variable, which the runtime reads too.
    JOB_COMPLETION_INDEX = "JOB_COMPLETION_INDEX"
    # stream
    SOURCE = "MODELPLANE_SOURCE"
    SINK = "MODELPLANE_SINK"
    DEAD_LETTER = "MODELPLANE_DEAD_LETTER"
    CONSUMER_GROUP = "MODELPLANE_CONSUMER_GROUP"
    METRICS_HOST = "MODELPLANE_METRICS_HOST"
    METRICS_PORT = "MODELPLANE_METRICS_PORT"


def setting_name(variable: str) -> str:
    """The runtime's setting (and, with dashes, its flag) a MODELPLANE_* variable sets."""
    return variable.removeprefix(ENV_PREFIX).lower()


# Format of batch scoring's output files. (No docstring: the CRD's schema would show it.)
class DataFormat(str, Enum):
    parquet = "parquet"
    csv = "csv"
    jsonl = "jsonl"


DEFAULT_PORTS = {"kafka": 9092, "redis": 6379, "nats": 4222}
STREAM_SCHEMES = tuple(DEFAULT_PORTS)
# What a field holding a stream URL must start with; `StreamAddress.parse` checks the rest.
STREAM_URL_PATTERN = rf"^({'|'.join(STREAM_SCHEMES)})://"
STREAM_URL_FORMS = "kafka://host:port/topic, redis://host:port/stream or nats://host:port/subject?stream=NAME"


@dataclass(frozen=True)
class StreamAddress:
    """A stream URL taken apart: scheme://host[:port]/name[?options]. `options` holds
    `group` (a consumer group other than the deployment's), and for NATS `stream` (the
    JetStream stream) and `durable`.

    `split` never fails, for what only passes a URL on (the operator's autoscaler
    trigger, which names the servers as written); `parse` refuses a URL the runtime
    cannot connect to."""

    url: str
    scheme: str
    netloc: str  # as written
    host: str
    port: int  # as written, else the scheme's default
    name: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def server(self) -> str:
        """host:port to connect to, the host bracketed if it is an IPv6 address."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def split(cls, url: str) -> StreamAddress:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:  # not a number, or out of range: `parse` refuses it
            port = None
        return cls(
            url=url,
            scheme=parts.scheme,
            netloc=parts.netloc,
            host=parts.hostname or "",
            port=port or DEFAULT_PORTS.get(parts.scheme, 0),
            name=parts.path.strip("/"),
            options={key: values[-1] for key, values in parse_qs(parts.query).items()},
        )

    @classmethod
    def parse(cls, url: str) -> StreamAddress:
        """The address, or ValueError naming the forms a stream URL takes."""
        try:
            urlsplit(url).port  # noqa: B018 - raises for a port that is not a number in range
        except ValueError:
            raise ValueError(f"{url!r} is not a stream URL: use {STREAM_URL_FORMS}") from None
        address = cls.split(url)
        if address.scheme not in STREAM_SCHEMES or not address.host or not address.name:
            raise ValueError(f"{url!r} is not a stream URL: use {STREAM_URL_FORMS}")
        return address
