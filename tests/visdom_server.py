"""A real Visdom server for the dashboard tests: started on 127.0.0.1 and a free port, read back
through Visdom's own client API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VisdomServer:
    """`python -m visdom.server` as a child process; `start()` returns once it answers."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder, self.port = folder, port or free_port()
        self.process: subprocess.Popen | None = None
        self.server = "http://127.0.0.1"

    def start(self, timeout: float = 60.0) -> "VisdomServer":
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / f"server-{self.port}.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "visdom.server", "-port", str(self.port), "-bind_local",
             "-env_path", str(self.folder / "envs"), "-logging_level", "WARNING"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"visdom server exited: {(self.folder / f'server-{self.port}.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"visdom server did not start on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def client(self, env: str):
        import visdom
        return visdom.Visdom(server=self.server, port=self.port, env=env, raise_exceptions=True,
                             use_incoming_socket=False)

    def windows(self, env: str) -> dict[str, dict]:
        """Every window of `env` as Visdom stores it (plots hold content.data traces)."""
        raw = self.client(env).get_window_data(None, env)
        return {name: json.loads(value) if isinstance(value, str) else value
                for name, value in json.loads(raw).items()}

    def traces(self, env: str, window: str) -> dict[str, list[float]]:
        """A plot window's traces as name → x values."""
        return {t["name"]: t["x"] for t in self.windows(env)[window]["content"]["data"]}


@pytest.fixture(scope="module")
def visdom_server(tmp_path_factory):
    pytest.importorskip("visdom")
    server = VisdomServer(tmp_path_factory.mktemp("visdom")).start()
    yield server
    server.stop()
