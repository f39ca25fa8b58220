#!/usr/bin/env python3
"""Checks that a release binary ignores FAILPOINTS: starts `helpline serve --demo` with
FAILPOINTS=relay-after-commit=return(KILLME), relays a chat message containing KILLME between a
caller and the demo counsellor `ana`, and checks the message is acknowledged, delivered, and the
server is still up. Usage: failpoint_check.py PATH/TO/helpline"""
import asyncio, json, os, subprocess, sys, tempfile, time, urllib.request
import websockets

BIN = sys.argv[1]

def post(base, path, body, token=None):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **({"authorization": "Bearer " + token} if token else {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")

async def until(ws, kind, timeout=10):
    end = time.monotonic() + timeout
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, end - time.monotonic())))
        if frame.get("type") == kind:
            return frame

async def main():
    d = tempfile.mkdtemp()
    env = dict(os.environ, FAILPOINTS="relay-after-commit=return(KILLME)", RUST_LOG="warn")
    p = subprocess.Popen([BIN, "--database", f"sqlite:{d}/h.db", "serve", "--demo", "--listen", "127.0.0.1:0"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    addr = None
    for line in p.stdout:
        if "http://127.0.0.1:" in line:
            addr = line.split("http://")[1].split()[0].rstrip("/"); break
    base = "http://" + addr
    tok = post(base, "/api/v1/auth/login", {"username": "ana", "password": "ana-demo"})["access_token"]
    ticket = post(base, "/api/v1/ws-ticket", {}, tok)["ticket"]
    async with websockets.connect(f"ws://{addr}/ws/agent?ticket={ticket}") as agent, \
               websockets.connect(f"ws://{addr}/ws/caller", origin=f"http://{addr}") as caller:
        await until(agent, "hello")
        await agent.send(json.dumps({"type": "status", "status": "available"}))
        await caller.send(json.dumps({"type": "start", "helpline": "children", "language": "ro"}))
        offer = await until(agent, "offer")
        await agent.send(json.dumps({"type": "accept", "contact_id": offer["contact_id"]}))
        await until(caller, "connected")
        await caller.send(json.dumps({"type": "message", "client_id": "k-1", "text": "KILLME please"}))
        ack = await until(caller, "ack")
        got = await until(agent, "message")
        assert got["text"] == "KILLME please", got
        print("ack", ack, "delivered", got["text"])
    time.sleep(0.5)
    alive = p.poll() is None
    health = urllib.request.urlopen(base + "/healthz", timeout=5).status if alive else None
    p.terminate(); p.wait(10)
    err = p.stderr.read()
    print("server alive after KILLME:", alive, "healthz:", health)
    print("FAILPOINTS warning logged:", "no fault injection points" in err)
    sys.exit(0 if alive and health == 200 else 1)

asyncio.run(main())
