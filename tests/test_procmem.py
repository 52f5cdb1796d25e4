"""``svs_verl.procmem``'s /proc readers against real processes: listening sockets (TCP and UDP, IPv4 and IPv6,
loopback or not), the processes of a Ray cluster found by its GCS port, and the /dev/shm files a process maps.

    .venv/bin/python -m pytest tests/test_procmem.py -q
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from svs_verl.procmem import (descendants, is_loopback, listening_sockets, ray_cluster_processes, shm_paths,
                              tree_pss_bytes)

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")

SERVER = """
import socket, sys, time
socks = []
for family, addr, kind in [(socket.AF_INET, '127.0.0.1', socket.SOCK_STREAM), (socket.AF_INET, '0.0.0.0', socket.SOCK_STREAM),
                           (socket.AF_INET6, '::', socket.SOCK_STREAM), (socket.AF_INET, '127.0.0.1', socket.SOCK_DGRAM)]:
    s = socket.socket(family, kind)
    s.bind((addr, 0))
    if kind == socket.SOCK_STREAM:
        s.listen()
    socks.append(s)
c = socket.socket(); c.connect(socks[0].getsockname())           # a connected socket is not a listening one
print(' '.join(str(s.getsockname()[1]) for s in socks), flush=True)
time.sleep(60)
"""


def test_listening_sockets_of_a_process_with_their_addresses():
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        ports = [int(p) for p in proc.stdout.readline().split()]
        found = {(a, p) for a, p, pid, _ in listening_sockets([proc.pid]) if pid == proc.pid}
        assert found == {("127.0.0.1", ports[0]), ("0.0.0.0", ports[1]), ("::", ports[2]), ("127.0.0.1", ports[3])}
        assert listening_sockets([os.getpid()]) == []
    finally:
        proc.kill()
        proc.wait()
    assert [is_loopback(a) for a in ("127.0.0.1", "::1", "0.0.0.0", "::", "192.0.2.2")] == [True, True, False, False,
                                                                                          False]


def test_the_processes_of_a_ray_cluster_are_found_by_their_gcs_port_with_their_children():
    sleeper = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    raylet = subprocess.Popen([sys.executable, "-c", sleeper, "--gcs-address=10.0.0.7:61234"])
    gcs = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "--gcs_server_port=61234"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "--gcs-address=10.0.0.7:61235"])
    try:
        time.sleep(1.0)
        assert ray_cluster_processes(61234) == sorted([raylet.pid, gcs.pid])
        assert len(descendants(raylet.pid)) == 2                      # the worker below the raylet comes along
        total, procs = tree_pss_bytes(other.pid, ray_cluster_processes(61234))
        assert procs == 1 + 2 + 1 and total > 0                         # other; raylet and its worker; gcs
    finally:
        for p in (raylet, gcs, other):
            for child in descendants(p.pid)[1:]:
                os.kill(child, 9)
            p.kill()
            p.wait()


def test_shm_paths_names_the_dev_shm_files_a_process_maps_or_holds_open(tmp_path):
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm")
    seg = f"/dev/shm/svs-procmem-test-{os.getpid()}"
    code = (f"import mmap, os, time; fd = os.open({seg!r}, os.O_CREAT | os.O_RDWR); os.ftruncate(fd, 4096); "
            f"m = mmap.mmap(fd, 4096); print('ok', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ok"
        assert shm_paths(proc.pid) == {seg}
        idle = subprocess.Popen([sys.executable, "-c", "import time; print('ok', flush=True); time.sleep(60)"],
                                stdout=subprocess.PIPE, text=True)
        assert idle.stdout.readline().strip() == "ok" and shm_paths(idle.pid) == set()
        idle.kill()
        idle.wait()
    finally:
        proc.kill()
        proc.wait()
        os.unlink(seg)
