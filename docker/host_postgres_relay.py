"""Relay TCP connections from LISTEN_HOST:LISTEN_PORT to the host's Postgres on
127.0.0.1:5432. docker/compose.host.yml runs it as the `db` service, on the host network, so
that containers on the compose network reach a Postgres that listens on loopback only."""

from __future__ import annotations

import asyncio
import os
import signal

TARGET = ("127.0.0.1", 5432)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(*TARGET)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))


async def main() -> None:
    server = await asyncio.start_server(
        relay, os.environ["LISTEN_HOST"], int(os.environ.get("LISTEN_PORT", "5432"))
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
