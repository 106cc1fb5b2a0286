"""A deterministic simulation of whole zoomq ensembles: the real cores of N nodes (election,
leader, learners, proposer, prep, session tracker) and client sessions, wired through an
in-memory network and disk on a virtual clock, every choice drawn from one seeded RNG.
`python -m tests.sim --seeds N` runs a soak; tests/sim/test_sim.py runs a few hundred seeds."""
