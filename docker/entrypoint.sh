#!/bin/sh
# Container entrypoint: `migrate` applies migrations once; `serve` (default) runs the service;
# `worker` handles webhooks and reconciliation without HTTP (`worker --once`: what is due now).
# Which proxies may set forwarded headers is the service's own setting: nothing here widens it.
set -eu
case "${1:-serve}" in
  migrate) shift; exec bankfeeds migrate "$@" ;;
  serve) exec bankfeeds serve --host 0.0.0.0 --port "${PORT:-8000}" ;;
  worker) shift; exec bankfeeds worker "$@" ;;
  *) exec "$@" ;;
esac
