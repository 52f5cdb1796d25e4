"""``svs_verl.verl_plugin.liveness`` against real HTTP servers on loopback: one answering ``/health`` like a live
vLLM server (200), one like a server whose engine died (503), and a port nobody listens on (a dead actor).

    .venv/bin/python -m pytest tests/test_liveness.py -q
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from svs_verl.verl_plugin.liveness import (LivenessProbe, RolloutDeadError, check_rollout_alive, dead_replicas,
                                           replica_state)


def _server(status: int):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status if self.path == "/health" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"127.0.0.1:{srv.server_address[1]}"


@pytest.fixture
def servers():
    live, live_addr = _server(200)
    dead, dead_addr = _server(503)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        gone_addr = f"127.0.0.1:{s.getsockname()[1]}"     # closed again: nothing listens there
    yield live_addr, dead_addr, gone_addr
    live.shutdown()
    dead.shutdown()


def test_a_live_server_is_alive_and_a_dead_engine_or_actor_is_named(servers):
    live, dead, gone = servers
    assert replica_state(live) is None
    assert "vLLM engine is dead" in replica_state(dead) and "503" in replica_state(dead)
    assert "refuses connections" in replica_state(gone)
    assert dead_replicas([live, live]) == []
    assert dead_replicas([live, dead, gone]) == [f"rollout replica 1 at {dead}: " + replica_state(dead),
                                                 f"rollout replica 2 at {gone}: " + replica_state(gone)]


def test_the_error_is_one_line_naming_what_died_and_how_to_resume(servers):
    live, dead, _ = servers
    check_rollout_alive([live])
    with pytest.raises(RolloutDeadError) as err:
        check_rollout_alive([live, dead], resume_hint="/runs/qs/ckpt")
    text = str(err.value)
    assert "\n" not in text and isinstance(err.value, RuntimeError)
    assert f"rollout replica 1 at {dead}: its vLLM engine is dead" in text
    assert "last checkpoint in /runs/qs/ckpt is intact" in text and "trainer.resume_mode=auto" in text


def test_the_probe_checks_at_most_once_per_interval(servers):
    live, dead, _ = servers
    now = [0.0]
    probe = LivenessProbe([live], interval_s=10.0, clock=lambda: now[0])
    probe()
    probe.addresses = [dead]          # the engine dies
    now[0] = 5.0
    probe()                           # within the interval: not asked again
    now[0] = 10.5
    with pytest.raises(RolloutDeadError):
        probe()
