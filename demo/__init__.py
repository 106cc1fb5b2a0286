"""Demonstrations of zoomq at work: small distributed applications built on its client and recipes.

- `demo.logcollector`: log sources, collectors that share them out through zoomq (election,
  ephemeral membership, task lists, ownership nodes, checkpoints), collector kills, and a check
  that every line reached the sink exactly once. `python -m demo.logcollector run --help`.
"""
