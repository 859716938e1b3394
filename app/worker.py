"""`bankfeeds worker`: the service's background work (the webhook inbox worker, the reconciler,
the transaction pushes to Codat and the delivery of events to the host app) in a process of its
own, with the same services as the app and no HTTP."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from app.logs import configure_logging
from app.observability import serving_metrics
from app.services import build_sandbox, open_services
from app.settings import Settings, load_settings

log = logging.getLogger("app.worker")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = sub.add_parser(
        "worker",
        help="handle Codat webhooks, reconcile bank feeds, push transactions, deliver events "
        "(no HTTP)",
    )
    worker.add_argument("--once", action="store_true", help="handle what is due now, then exit")
    worker.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings.check_production()
    # Web replicas may set BACKGROUND_WORKERS=off; this process exists to do that work.
    settings = settings.model_copy(update={"background_workers": "in-process"})
    return asyncio.run(run_worker(settings, once=args.once))


async def run_worker(settings: Settings, *, once: bool) -> int:
    sandbox = build_sandbox(settings) if settings.sandbox_mode else None
    async with open_services(settings, sandbox=sandbox) as services:
        configure_logging(services.redactor, settings.log_format)
        if once:
            handled = await services.inbox_worker().run_once()
            refreshed = 0
            if settings.reconciler_enabled:
                refreshed = len((await services.reconciler().run_once()).refreshed)
            print(f"Handled {handled} webhook event(s), refreshed {refreshed} bank feed(s).")
            if settings.transactions_push_enabled:
                pushed = await services.push_job().run_once()
                print(f"Sent {len(pushed.pushed)} transaction push(es), held {pushed.held}.")
            attempted = await services.event_worker().run_once()
            print(f"Made {attempted} event delivery attempt(s).")
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        jobs = services.background_jobs()
        async with serving_metrics(settings, services.sessions), services.running(jobs):
            log.info(
                "worker running: webhook inbox%s%s, event delivery",
                ", reconciler" * settings.reconciler_enabled,
                ", transaction pushes" * settings.transactions_push_enabled,
            )
            print("bankfeeds worker running; stop with Ctrl-C or SIGTERM.", file=sys.stderr)
            await stop.wait()
    return 0
