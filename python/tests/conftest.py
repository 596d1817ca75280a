"""A real local issuer for the suite: ``lanyard dev`` (the same command as ``npm start``),
started once in a temporary data dir with a policy suited to the tests, and a small upstream
for the broker. Nothing here is a mock of the SDK."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
KEYS = {
    "agent": "lk_py_test_agent_key_00000000000001",
    "verifier": "lk_py_test_verifier_key_000000000001",
    "admin": "lk_py_test_admin_key_00000000000001",
    "orchestrator": "lk_py_test_orchestrator_key_00000001",
}
TICKETS = "https://tickets.example.internal"
UPSTREAM_KEY = "sk_test_upstream_key_PYTHON_0000000000"
READ = {"tool": "tickets", "actions": ["tickets:read"], "tenant": "acme"}
CRM = {"tool": "crm", "actions": ["crm:read"], "tenant": "acme"}


def policy(upstream_url: str) -> dict[str, Any]:
    return {
        "tools": [
            {"id": "tickets", "audience": TICKETS, "actions": {"read": "read", "list": "read", "reply": "write"}, "enabled": True},
            {"id": "crm", "audience": "https://crm.example.internal", "actions": {"read": "read"}, "enabled": True},
            {
                "id": "payments",
                "actions": {"charges.read": "read"},
                "enabled": True,
                "upstream": {
                    "baseUrl": upstream_url,
                    "key": {"header": "authorization", "scheme": "Bearer"},
                    "routes": {"charges.read": [{"method": "GET", "path": "/v1/charges*"}]},
                    "timeoutMs": 15000,
                },
            },
        ],
        "roles": [
            {"id": "support-triage", "version": 1, "actions": ["tickets:read", "tickets:list", "tickets:reply"], "approvedBy": "alice@example.com"},
            {"id": "crm-reader", "version": 1, "actions": ["crm:read"], "approvedBy": "alice@example.com"},
            {"id": "payments-reader", "version": 1, "actions": ["payments:charges.read"], "approvedBy": "alice@example.com"},
        ],
        "identities": [{"id": "support-triage/prod", "owner": "team-support", "purpose": "triage tickets", "status": "active"}],
        "grants": [
            {"identity": "support-triage/prod", "role": "support-triage@1", "tenants": ["acme", "globex"], "maxTtlSeconds": 900, "kinds": ["jwt"], "quotaBucket": "support"},
            {"identity": "support-triage/prod", "role": "crm-reader@1", "tenants": ["*"], "maxTtlSeconds": 600, "kinds": ["jwt"], "quotaBucket": "crm"},
            {"identity": "support-triage/prod", "role": "payments-reader@1", "tenants": ["acme"], "maxTtlSeconds": 900, "kinds": ["jwt"], "quotaBucket": "payments"},
        ],
        "principals": [
            {"id": "triage-worker-1", "kind": "agent", "identity": "support-triage/prod", "apiKey": KEYS["agent"]},
            {"id": "resource-server", "kind": "verifier", "apiKey": KEYS["verifier"]},
            {"id": "oncall", "kind": "admin", "apiKey": KEYS["admin"]},
            {"id": "fleet-scheduler", "kind": "orchestrator", "spawns": ["support-triage/prod"], "apiKey": KEYS["orchestrator"]},
        ],
    }


@dataclass
class Upstream:
    url: str
    requests: list[dict[str, Any]]


@dataclass
class Issuer:
    url: str

    def call(self, method: str, path: str, key: str, body: Any = None) -> httpx.Response:
        return httpx.request(method, self.url + path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=30)

    def spawn(self, credentials: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        answer = self.call("POST", "/v1/spawn", KEYS["orchestrator"], {"identity": "support-triage/prod", "maxLifetimeSeconds": 3600, "credentials": credentials or [READ]})
        assert answer.status_code == 201, answer.text
        spawned: dict[str, Any] = answer.json()
        return spawned

    def admin(self, command: dict[str, Any]) -> dict[str, Any]:
        answer = self.call("POST", "/v1/admin", KEYS["admin"], command)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def revoke(self, target: dict[str, str]) -> None:
        self.admin({"command": "revoke", "target": target, "reason": "python sdk test"})


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Runs an HTTP server on a loopback port in a thread; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    """A third-party API that accepts only the real key (which no agent holds)."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            seen.append({"path": self.path, "authorization": self.headers.get("authorization")})
            ok = self.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"
            body = json.dumps({"charges": [{"id": "ch_1"}]} if ok else {"error": "bad key"}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    for url in serve(Handler):
        yield Upstream(url, seen)


def _node() -> list[str]:
    node = REPO / "node_modules" / ".bin" / "node"
    return [str(node) if node.exists() else "node", "--conditions=@lanyard/source", str(REPO / "cli" / "lanyard.ts")]


@pytest.fixture(scope="session")
def issuer(upstream: Upstream) -> Iterator[Issuer]:
    """``lanyard dev --port 0`` in a temporary data dir, with the test policy; its URL is read from its banner."""
    with tempfile.TemporaryDirectory(prefix="lanyard-py-") as data:
        policy_file = Path(data) / "policy.json"
        policy_file.write_text(json.dumps(policy(upstream.url)))
        log = open(Path(data) / "dev.log", "w+")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [*_node(), "dev", "--port", "0", "--data-dir", str(Path(data) / "dev"), "--policy", str(policy_file)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        try:
            url = _wait_for_banner(log, process)
            issuer = Issuer(url)
            secret = issuer.admin({"command": "upstream.secret.set", "provider": "payments", "secret": UPSTREAM_KEY, "reason": "python sdk test"})
            assert secret
            yield issuer
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def _wait_for_banner(log: Any, process: subprocess.Popen[bytes], timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log.seek(0)
        match = re.search(r"Lanyard issuer on (http://127\.0\.0\.1:\d+)", log.read())
        if match:
            return match.group(1)
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"lanyard dev exited: {log.read()}")
        time.sleep(0.1)
    raise RuntimeError("lanyard dev did not print its banner in time")


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> None:
    """Polls for a condition (no timed assertions: the timeout only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        time.sleep(interval)


class Clock:
    """The agent's clock, moved forward by the test (the issuer keeps real time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset
