"""A distributed log collector coordinated through zoomq.

    python -m demo.logcollector run --sources 6 --collectors 3 --kill-every 5s --duration 30s
    zoomq demo logcollector run ...                      # the same

Processes (each its own OS process, all on 127.0.0.1):

- producers (`producer.py`): one per source, appending numbered, timestamped lines to its own
  log file at a bounded rate, then writing `<source>.done` with the line count;
- collectors (`collector.py`): tail the sources assigned to them and ship the lines to the sink;
  one of them is also the coordinator (`coordinator.py`), elected with the Election recipe;
- the sink (`sink.py`): one output file per source; it acknowledges every batch and writes each
  line number once, so at-least-once shipping gives exactly-once output;
- the runner (`runner.py`, the `run` command): starts the ensemble and everything above, kills
  collectors, shows progress, checks the sink (`verify.py`) and stops every process it started.

The znodes (all under /logcollector):

    sources/<src>            persistent; {"file", "assigned": collector, "moves"}: the source and its
                             assignee. Every (re)assignment is a versioned set of this node, so two
                             coordinators with different views can never hand one source out twice.
    collectors/c-<seq>       ephemeral sequential, {"pid"}: a live collector (gone with its session)
    tasks/c-<seq>/<src>      persistent; the collector's task list: what to collect and the
                             checkpoint {"line", "offset"} to start from
    status/c-<seq>           persistent; the collector's heartbeat: the sources it holds, per-source
                             progress (the checkpoints a successor resumes from), lines/s, load
    owners/<src>             ephemeral; who collects the source right now. A collector ships a
                             source's lines only while it holds this node; its czxid is the fencing
                             token the sink checks, so a collector that lost the node is refused.
    election/                the Election recipe's lock: the coordinator
    reassignments/r-<seq>    persistent sequential, one per move of a source between collectors

ZooKeeper (and zoomq) give ephemeral nodes no children, so a collector's "children" (its task list
and its status) live under tasks/ and status/ by the name of its ephemeral node, and outlive it:
that is what lets a successor resume from the dead collector's last checkpoint.
"""

ROOT = "/logcollector"
