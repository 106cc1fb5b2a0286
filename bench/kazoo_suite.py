"""`python -m bench kazoo-suite`: kazoo's own test suite against zoomq, and against Apache ZooKeeper.

It fetches kazoo's sdist from PyPI (`pip download --no-binary :all: --no-deps kazoo==VERSION`; the
test suite and harness ship only there), unpacks it into the work dir, and runs its `kazoo/tests`
with pytest, once per target:
- zoomq: the plugin bench/kazoo_cluster.py replaces the harness's cluster with 3 zoomq nodes that
  serve ZooKeeper's protocol (and TLS) on the ports the suite expects;
- zookeeper: the harness as kazoo wrote it, on Debian's Apache ZooKeeper (`apt-get install
  zookeeper`; the jars under /usr/share/java, or ZOOKEEPER_HOME).
Then it writes, per test file, passed / failed / skipped / expected failures for each target, and
the tests that pass on ZooKeeper and not on zoomq (results.md, results.json under --out).

The suite's own test dependencies (pyOpenSSL < 24.3 for its certificates, pyjks, objgraph,
pure-sasl, gevent, eventlet) come with `pip install -e '.[compat]'`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VERSION = "2.11.0"
NEEDED = ("OpenSSL", "jks", "objgraph", "kazoo")
OUTCOMES = ("passed", "failed", "skipped", "xfailed")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=("zoomq", "zookeeper", "both"), default="zoomq")
    p.add_argument(
        "--kazoo-version",
        default=DEFAULT_VERSION,
        metavar="V",
        help=f"kazoo release whose suite runs (default {DEFAULT_VERSION})",
    )
    p.add_argument(
        "--workdir",
        default=str(Path.home() / ".cache" / "zoomq" / "kazoo-suite"),
        metavar="DIR",
        help="where the sdist is downloaded and unpacked (kept between runs)",
    )
    p.add_argument("--out", default="kazoo-suite", metavar="DIR", help="results.md / results.json / junit-<target>.xml")
    p.add_argument(
        "--files", nargs="*", metavar="FILE", help="only these test files (e.g. test_client.py test_lock.py)"
    )
    p.add_argument("-k", dest="keyword", metavar="EXPR", help="pytest -k expression")
    p.add_argument(
        "--port-offset",
        type=int,
        default=20000,
        metavar="N",
        help="the suite's first port (kazoo's ZOOKEEPER_PORT_OFFSET)",
    )
    p.add_argument("--timeout", type=int, default=180, metavar="S", help="per test, as kazoo's own setting")


def fetch(version: str, workdir: Path) -> Path:
    """The unpacked sdist's directory (downloaded once)."""
    src = workdir / f"kazoo-{version}"
    if (src / "kazoo" / "tests").is_dir():
        return src
    workdir.mkdir(parents=True, exist_ok=True)
    archive = workdir / f"kazoo-{version}.tar.gz"
    if not archive.exists():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-binary",
            ":all:",
            "--no-deps",
            f"kazoo=={version}",
            "-d",
            str(workdir),
        ]
        subprocess.run(cmd, check=True, timeout=300)
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    return src


def missing_modules() -> list[str]:
    import importlib.util

    return [m for m in NEEDED if importlib.util.find_spec(m) is None]


def run_target(target: str, src: Path, out: Path, args: argparse.Namespace) -> Path:
    """Run the suite against one target; the junit XML it wrote."""
    junit = out / f"junit-{target}.xml"
    tests = src / "kazoo" / "tests"
    paths = [str(tests / f) for f in args.files] if args.files else [str(tests)]
    ini = out / "pytest.ini"
    ini.write_text(f"[pytest]\ntimeout = {args.timeout}\nlog_level = WARNING\n")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *paths,
        "-c",
        str(ini),
        "--rootdir",
        str(src),
        "-p",
        "no:cacheprovider",
        "-p",
        "bench.kazoo_cluster",
        "-q",
        "-rfE",
        f"--junitxml={junit}",
    ]
    if args.keyword:
        cmd += ["-k", args.keyword]
    env = dict(os.environ)
    # The sdist's kazoo (with its tests and harness) first, then this repo (zoomq and the plugin).
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT), env.get("PYTHONPATH", "")])
    env["ZOOMQ_KAZOO_TARGET"] = target
    env["ZOOKEEPER_PORT_OFFSET"] = str(args.port_offset)
    if target == "zookeeper":
        from bench.targets import zookeeper_classpath

        classpath = zookeeper_classpath(with_netty=True)
        if classpath is None:
            raise SystemExit("Apache ZooKeeper is not installed: apt-get install zookeeper (or set ZOOKEEPER_HOME)")
        env["ZOOKEEPER_CLASSPATH"] = classpath
        env["ZOOKEEPER_VERSION"] = env.get("ZOOKEEPER_VERSION", "3.8.0")
    started = time.monotonic()
    print(f"kazoo {args.kazoo_version} suite against {target}: {' '.join(cmd[3:])}", file=sys.stderr, flush=True)
    code = subprocess.run(cmd, env=env, cwd=str(out), check=False).returncode
    print(f"{target}: pytest exit code {code} after {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return junit


def parse_junit(path: Path) -> dict[str, str]:
    """{"test_file.py::Class::test": outcome} from a junit XML."""
    results: dict[str, str] = {}
    if not path.exists():
        return results
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "")
        parts = module.split(".")
        # kazoo.tests.test_client.TestClient -> test_client.py::TestClient
        at = next((i for i, part in enumerate(parts) if part.startswith("test_")), len(parts) - 1)
        test_id = f"{parts[at]}.py::" + "::".join([*parts[at + 1 :], case.get("name", "")])
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
        if outcome == "failed" and results.get(test_id) == "passed":
            outcome = "failed"  # a teardown error after a pass counts against the test
        results[test_id] = outcome
    return results


def summarize(by_target: dict[str, dict[str, str]]) -> dict[str, dict[str, dict[str, int]]]:
    table: dict[str, dict[str, dict[str, int]]] = {}
    for target, results in by_target.items():
        for test_id, outcome in results.items():
            counts = table.setdefault(test_id.split("::", 1)[0], {}).setdefault(target, dict.fromkeys(OUTCOMES, 0))
            counts[outcome] += 1
    return table


def report(by_target: dict[str, dict[str, str]], version: str) -> str:
    table = summarize(by_target)
    targets = list(by_target)
    head = "| file | " + " | ".join(f"{t}: pass / fail / skip / xfail" for t in targets) + " |"
    lines = [
        f"kazoo {version}'s own test suite (`kazoo/tests` from its sdist)",
        "",
        head,
        "|---|" + "---|" * len(targets),
    ]
    totals = {t: dict.fromkeys(OUTCOMES, 0) for t in targets}
    for name in sorted(table):
        cells = []
        for t in targets:
            c = table[name].get(t, dict.fromkeys(OUTCOMES, 0))
            for k in OUTCOMES:
                totals[t][k] += c[k]
            cells.append(" / ".join(str(c[k]) for k in OUTCOMES))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(
        "| **total** | " + " | ".join(" / ".join(f"**{totals[t][k]}**" for k in OUTCOMES) for t in targets) + " |"
    )
    if "zookeeper" in by_target and "zoomq" in by_target:
        zk, zq = by_target["zookeeper"], by_target["zoomq"]
        worse = sorted(t for t, o in zk.items() if o == "passed" and zq.get(t) != "passed")
        better = sorted(t for t, o in zq.items() if o == "passed" and zk.get(t) != "passed")
        lines += ["", f"Pass on ZooKeeper, not on zoomq ({len(worse)}):", ""]
        lines += [f"- `{t}`: {zq.get(t, 'not run')}" for t in worse] or ["- none"]
        lines += ["", f"Pass on zoomq, not on ZooKeeper ({len(better)}):", ""]
        lines += [f"- `{t}`: {zk.get(t, 'not run')}" for t in better] or ["- none"]
    for t in targets:
        failed = sorted(test for test, o in by_target[t].items() if o == "failed")
        if failed:
            lines += ["", f"Failed on {t} ({len(failed)}):", ""] + [f"- `{test}`" for test in failed]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    missing = missing_modules()
    if missing:
        print(f"kazoo's suite needs {', '.join(missing)}: pip install -e '.[compat]'", file=sys.stderr)
        return 2
    src = fetch(args.kazoo_version, Path(args.workdir).resolve())
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    targets = ["zoomq", "zookeeper"] if args.target == "both" else [args.target]
    by_target = {t: parse_junit(run_target(t, src, out, args)) for t in targets}
    text = report(by_target, args.kazoo_version)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(by_target, indent=1, sort_keys=True))
    print(text)
    zoomq = by_target.get("zoomq")
    if zoomq is None:
        return 0
    return 1 if any(o == "failed" for o in zoomq.values()) or not zoomq else 0
