"""A Codat emulator for sandbox mode and tests; production code never imports it.

`create_sandbox_app(SandboxConfig(...))` builds the app; `app.state.sandbox` holds its state,
clock, call log and webhook emitter. `app.sandbox.server.run_sandbox` serves it on its own.
"""

from app.sandbox.app import create_sandbox_app
from app.sandbox.config import SandboxConfig
from app.sandbox.emulator import Sandbox

__all__ = ["Sandbox", "SandboxConfig", "create_sandbox_app"]
