"""`make bench`: the service and the Codat sandbox as real processes, measured from outside.

`python -m bench` starts a latency-shaped Codat sandbox and the service on Postgres, drives
them with an httpx load generator, runs the same first-connect journey with Codat's official
Python SDK as the baseline, and writes `bench/results/latest.json`, `bench/results/latency.png`
and `docs/performance.md`.
"""
