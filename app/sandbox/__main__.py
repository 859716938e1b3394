"""`python -m app.sandbox --port 8100`: the Codat sandbox on its own (`bankfeeds sandbox`)."""

from __future__ import annotations

import sys

from app.sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
