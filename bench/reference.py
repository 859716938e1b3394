"""The returning click at its simplest, for scale: verify the token, read the feed row, one
Codat GET, 302. Run as its own process beside the service, on the same database and sandbox,
so the service's CPU per click can be read as a multiple of this one's.

    python -m bench.reference --port PORT   (DATABASE_URL, CONNECT_TOKEN_SECRET,
                                             CODAT_BASE_URL, CODAT_API_KEY from the environment)
"""

from __future__ import annotations

import argparse
import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import jwt
import uvicorn
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.connect.tokens import ALGORITHM, AUDIENCE

FEED_ROW = text("SELECT company_id, connection_id FROM bank_feeds WHERE customer_id = :customer")


def create_reference_app(
    database_url: str, token_secret: str, codat_url: str, codat_api_key: str
) -> FastAPI:
    engine = create_async_engine(database_url, pool_size=10, max_overflow=40)
    auth = "Basic " + base64.b64encode(codat_api_key.encode()).decode()
    codat = httpx.AsyncClient(
        base_url=codat_url,
        headers={"Authorization": auth},
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        timeout=30.0,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await codat.aclose()
        await engine.dispose()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> Response:
        return PlainTextResponse("ok")

    @app.get("/connect-bank-feeds")
    async def connect(token: str = "") -> Response:
        try:
            claims = jwt.decode(
                token,
                token_secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                options={"require": ["sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError:
            return PlainTextResponse("This link is not valid.", status_code=401)
        async with engine.connect() as conn:
            row = (await conn.execute(FEED_ROW, {"customer": claims["sub"]})).first()
        if row is None or row.company_id is None or row.connection_id is None:
            return PlainTextResponse("Not connected yet.", status_code=404)
        answer = await codat.get(f"/companies/{row.company_id}/connections/{row.connection_id}")
        answer.raise_for_status()
        return RedirectResponse(answer.json()["linkUrl"], status_code=302)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reference", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = create_reference_app(
        os.environ["DATABASE_URL"],
        os.environ["CONNECT_TOKEN_SECRET"],
        os.environ["CODAT_BASE_URL"],
        os.environ["CODAT_API_KEY"],
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, access_log=False, log_config=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
