"""Write the README's console screenshots: docs/console-tree.png and docs/console-ensemble.png.

    python tests/browser/docs_screenshots.py [--out docs]

Starts a 3-node ensemble in a temp dir, fills a small sample tree, serves the console on a
thread, keeps a light write load going (so the ensemble page's charts have lines), and takes the
two screenshots with Playwright on the system's Chromium (/usr/bin/chromium, or ZOOMQ_CHROMIUM).
Everything it starts is stopped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from zoomq.security import make_digest_acl  # noqa: E402
from zoomq.testing import ZoomqEnsemble  # noqa: E402


def chromium_path() -> str:
    found = (
        os.environ.get("ZOOMQ_CHROMIUM")
        or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
        or shutil.which("chromium")
    )
    if not found:
        raise SystemExit("no Chromium found: apt-get install chromium (or set ZOOMQ_CHROMIUM)")
    return found


def sample_tree(zk) -> None:
    zk.create("/app/config", b'{"owner": "platform-team", "schema": 3}', makepath=True)
    zk.create(
        "/app/config/service.json",
        b'{\n  "workers": 8,\n  "log_level": "info",\n  "feature_flags": ["fast-path"]\n}',
        makepath=True,
    )
    zk.create("/app/config/limits", b"max_conn=512\nmax_body=1MiB")
    zk.create("/app/config/secret", b"hunter2", acl=[make_digest_acl("ops", "s3cret", all=True)])
    zk.create("/app/config/blob", bytes(range(0, 48)))
    for i in range(3):
        zk.create(f"/app/workers/w-{i}", f"10.0.0.{i + 11}:8000".encode(), makepath=True)
    zk.create("/app/locks", b"")
    zk.create("/services/db/primary", b"10.0.0.5:5432", makepath=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="directory for the two PNG files (default docs/)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import expect, sync_playwright

    from zoomq.console.testing import ConsoleThread

    stop = threading.Event()
    with ZoomqEnsemble(3) as ens, ConsoleThread(ens.hosts) as console, sync_playwright() as pw:
        zk = ens.client()
        sample_tree(zk)

        def load() -> None:
            i = 0
            while not stop.is_set():
                zk.set("/app/config/limits", f"max_conn=512\nmax_body=1MiB\n# rev {i}".encode())
                zk.get_children("/app/workers")
                i += 1
                stop.wait(0.004)

        writer = threading.Thread(target=load, daemon=True)
        writer.start()
        browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport={"width": 1360, "height": 900}, device_scale_factor=1).new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{console.url}/tree?path=/app/config/service.json")
            expect(page.locator("#node-data")).to_contain_text("workers")
            page.click("#breadcrumb a[data-path='/app/config']")
            expect(page.locator("#node-path")).to_have_text("/app/config")
            expect(page.locator("#children li[data-name='secret'] .count")).to_have_text("NoAuth")
            page.click("#watch-toggle")
            expect(page.locator("#watch-status")).to_have_text("live")
            page.screenshot(path=str(out / "console-tree.png"), full_page=False)
            page.goto(f"{console.url}/ensemble")
            expect(page.locator("#ensemble-table tr[data-role='leader']")).to_have_count(1)
            # ~12 samples of the write load for the charts (bounded by the expect's timeout).
            # The page polls every 1.5 s: wait for ~15 samples of the write load, so the charts have lines.
            # (an attribute check: the page's CSP forbids the string evaluation wait_for_function needs)
            expect(page.locator("body")).to_have_attribute(
                "data-samples", re.compile(r"^(1[5-9]|[2-9][0-9]|[0-9]{3,})$"), timeout=60_000
            )
            page.screenshot(path=str(out / "console-ensemble.png"), full_page=True)
        finally:
            stop.set()
            writer.join(5)
            browser.close()
    print(f"wrote {out / 'console-tree.png'} and {out / 'console-ensemble.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
