"""Is the rollout still alive? A cheap check that the SvS sampler's poll loop can make while it waits for groups.

When vLLM's engine-core process dies mid-step (``kill -9``, the OOM killer), vLLM's ``AsyncLLM`` logs
``EngineDeadError`` and fails the requests it holds; verl's agent loop does not turn that into a failed
group, so a poll that waits for the step's groups in TransferQueue waits forever (measured: 7+ minutes, no
output, until Ctrl-C). Every vLLM replica of verl 0.9.1 serves vLLM's own HTTP app on its node
(``vLLMHttpServer``, address in ``LLMServerManager.server_addresses``), whose ``GET /health`` answers 200
while the engine runs and 503 once it is dead (``vllm/entrypoints/serve/instrumentator/health.py``); a dead
server actor refuses the connection. ``/health`` is outside vLLM's ``/v1`` prefix, so it needs no API key
(``VLLM_API_KEY``).

    problems = dead_replicas(trainer.llm_server_manager.server_addresses)      # [] while all answer 200
    check_rollout_alive(trainer.llm_server_manager.server_addresses, resume_hint=ckpt_dir)   # RolloutDeadError

A check costs one local HTTP round trip per replica (milliseconds); callers rate-limit it (``LivenessProbe``).
"""

from __future__ import annotations

import http.client
import time
from typing import Iterable

HEALTH_TIMEOUT_S = 5.0      # one /health answer; a live but busy CPU server answers in well under a second


class RolloutDeadError(RuntimeError):
    """A rollout replica is dead; the message is one line saying which and how to resume."""


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def replica_state(address: str, timeout_s: float = HEALTH_TIMEOUT_S) -> str | None:
    """None if the vLLM server at ``address`` ("host:port") says its engine runs, else why not (one phrase)."""
    try:
        host, port = _split(address)
    except ValueError:
        return f"{address!r} is not host:port"
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", "/health")
        status = conn.getresponse().status
    except ConnectionRefusedError:
        return "its server refuses connections (the server actor is gone)"
    except TimeoutError:
        return None   # busy, not known dead: never end a run on a slow answer
    except OSError as exc:
        return f"its server is unreachable ({type(exc).__name__}: {exc})"
    except http.client.HTTPException as exc:
        return f"its server answered garbage ({type(exc).__name__})"
    finally:
        conn.close()
    if status == 200:
        return None
    if status == 503:
        return "its vLLM engine is dead (EngineDeadError: /health answers 503)"
    return f"its /health answered HTTP {status}"


def dead_replicas(addresses: Iterable[str], timeout_s: float = HEALTH_TIMEOUT_S) -> list[str]:
    """``["replica i at host:port: why", ...]`` for every replica that is not alive; [] when all are."""
    out = []
    for i, address in enumerate(addresses):
        why = replica_state(address, timeout_s)
        if why is not None:
            out.append(f"rollout replica {i} at {address}: {why}")
    return out


def check_rollout_alive(addresses: Iterable[str], resume_hint: str | None = None,
                        timeout_s: float = HEALTH_TIMEOUT_S) -> None:
    """Raise ``RolloutDeadError`` (one line: what died, and that the last checkpoint is resumable) when any
    replica is dead."""
    dead = dead_replicas(addresses, timeout_s)
    if dead:
        where = f" in {resume_hint}" if resume_hint else ""
        raise RolloutDeadError(
            f"{'; '.join(dead)}. The run cannot finish this step; the last checkpoint{where} is intact: rerun "
            f"with trainer.resume_mode=auto to continue from it")


class LivenessProbe:
    """``check_rollout_alive`` at most once per ``interval_s`` (for a poll loop that runs every few ms)."""

    def __init__(self, addresses: Iterable[str], resume_hint: str | None = None, interval_s: float = 10.0,
                 clock=time.monotonic):
        self.addresses = list(addresses)
        self.resume_hint = resume_hint
        self.interval_s = interval_s
        self.clock = clock
        self._last = None

    def __call__(self) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < self.interval_s:
            return
        self._last = now
        check_rollout_alive(self.addresses, self.resume_hint)
