"""Run the sandbox as its own process under uvicorn."""

from __future__ import annotations

import uvicorn

from app.sandbox.app import create_sandbox_app
from app.sandbox.config import SandboxConfig
from app.sandbox.faults import DropConnections


def run_sandbox(host: str, port: int, config: SandboxConfig) -> None:
    """Serve `create_sandbox_app(config)` until interrupted; config.public_url should match."""
    app = DropConnections(create_sandbox_app(config))  # dropped connections close the socket
    uvicorn.run(app, host=host, port=port, log_level="info")
