"""A gateway client: connect, ask for status, close.

Usage: client.py [URL [TOKEN]]   (URL defaults to ws://127.0.0.1:18789/)
Prints the same lines as the Rust client (docs/examples/client.rs)."""
import asyncio, json, sys

try:
    import websockets
except ImportError:
    sys.exit("client.py needs the Python library websockets: "
             "pip install websockets (or apt-get install python3-websockets)")

DEFAULT_URL = "ws://127.0.0.1:18789/"


def compact(value):
    """JSON as serde_json writes it: no spaces, keys sorted, UTF-8 kept."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


async def main(url=DEFAULT_URL, token=None):
    try:
        ws = await websockets.connect(url)
    except (OSError, websockets.exceptions.WebSocketException) as error:
        sys.exit(f"cannot reach {url}: {error}")
    try:
        params = {"minProtocol": 1, "maxProtocol": 1, "client": {"name": "example.py", "version": "1.0"}}
        if token:
            params["auth"] = {"token": token}
        await ws.send(json.dumps({"type": "req", "id": "1", "method": "connect", "params": params}))
        hello = json.loads(await ws.recv())
        if not hello["ok"]:
            sys.exit(f"refused: {hello['error']['code']}: {hello['error']['message']}")
        print("connected to gateway", hello["payload"]["server"]["version"])
        await ws.send(json.dumps({"type": "req", "id": "2", "method": "status", "params": {}}))
        while (frame := json.loads(await ws.recv()))["type"] != "res":
            pass  # an event (tick) arrived first: skip it
        print("status", compact(frame["payload"]))
    finally:
        await ws.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    if "-h" in args or "--help" in args:
        print(__doc__)
    elif len(args) > 2:
        sys.exit(__doc__)  # on stderr, exit 1
    else:
        asyncio.run(main(*args))
