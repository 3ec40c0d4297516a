"""The endpoint MLflow's registry webhooks call when an alias moves, so a promotion
reaches the workloads at once instead of at the next poll.

MLflow signs each delivery with HMAC-SHA256 over "<delivery id>.<timestamp>.<body>"
with the webhook's secret, sent as "v1,<base64>" in X-MLflow-Signature. A delivery with
a bad or missing signature, or older than the replay window, gets 401 and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping

from aiohttp import web

PATH = "/mlflow/webhook"
REPLAY_WINDOW_SECONDS = 300
ALIAS_CREATED = ("model_version_alias", "created")

logger = logging.getLogger(__name__)


def signature_valid(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    delivery, stamp = headers.get("X-MLflow-Delivery-Id", ""), headers.get("X-MLflow-Timestamp", "")
    version, _, sent = headers.get("X-MLflow-Signature", "").partition(",")
    if version != "v1" or not stamp.isdigit() or abs(now - int(stamp)) > REPLAY_WINDOW_SECONDS:
        return False
    signed = f"{delivery}.{stamp}.".encode() + body
    expected = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, sent)


def application(secret: str, alias_moved: Callable[[str, str], int]) -> web.Application:
    """`alias_moved(model, alias)` wakes the resources that follow it and says how many."""

    async def deliver(request: web.Request) -> web.Response:
        body = await request.read()
        if not signature_valid(secret, request.headers, body, time.time()):
            logger.warning("refused a registry webhook delivery from %s: bad or missing signature", request.remote)
            return web.json_response({"error": "bad or missing X-MLflow-Signature"}, status=401)
        try:
            event = json.loads(body)
            kind = (event["entity"], event["action"])
            data = event["data"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "not an MLflow webhook delivery"}, status=400)
        if kind != ALIAS_CREATED:
            return web.json_response({"ignored": f"{kind[0]}.{kind[1]}"})
        woken = alias_moved(data["name"], data["alias"])
        logger.info("alias %r of %s moved to version %s: %d ModelDeployments look now",
                    data["alias"], data["name"], data.get("version"), woken)
        return web.json_response({"woken": woken})

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post(PATH, deliver)
    return app
