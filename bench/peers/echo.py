"""The HTTP floor for bench.serving_online: a raw ASGI app on uvicorn with uvloop and
httptools, as Modelplane runs, that reads each request's body and answers a fixed
prediction. No parsing, no model: what one worker's HTTP costs per request. Run as
`uvicorn --app-dir bench/peers echo:app --loop uvloop --http httptools`."""

ANSWER = b'{"predictions": [2]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
