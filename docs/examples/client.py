"""A gateway client: connect, ask for status, close. Usage: client.py ws://127.0.0.1:PORT/ [TOKEN]"""
import asyncio, json, sys

import websockets  # pip install websockets (or apt install python3-websockets)


async def main(url, token=None):
    async with websockets.connect(url) as ws:
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
        print("status", json.dumps(frame["payload"]))


asyncio.run(main(*sys.argv[1:]))
