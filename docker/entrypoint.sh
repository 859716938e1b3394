#!/bin/sh
# Container entrypoint: `migrate` applies migrations once; `serve` (default) runs the service.
set -eu
case "${1:-serve}" in
  migrate) exec bankfeeds migrate ;;
  serve) exec bankfeeds serve --host 0.0.0.0 --port "${PORT:-8000}" --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-*}" ;;
  worker) exec bankfeeds worker ;;
  *) exec "$@" ;;
esac
