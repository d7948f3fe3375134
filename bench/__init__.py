"""The benchmark harness: the exporter as its own process against the fake ARM in another.

`python -m bench.run --estates S,M,L --out docs/performance.md` (see bench/run.py and docs/performance.md).
The estates are synthetic and deterministic given a seed; nothing here talks to Azure.
"""
