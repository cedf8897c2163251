"""The web app under uvicorn in a thread, on a free port of 127.0.0.1: what tests that need the real
server (not FastAPI's in-process client) talk to."""

from __future__ import annotations

import socket
import threading

import uvicorn

from texture_nets.web import WebConfig, create_app

from .browser import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """The app under uvicorn in a thread, on a free port of 127.0.0.1."""

    def __init__(self, config: WebConfig):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        wait_for(lambda: self.server.started, 30, "the server to start")
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
