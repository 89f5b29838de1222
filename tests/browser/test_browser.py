"""End-to-end: the real Streamlit server driven by headless Chromium (Playwright).

Needs /usr/bin/chromium (Debian's package; ``.ci/run`` installs it) and never
downloads a browser. Screenshots go to a temporary folder, and also to
``$WORKBENCH_SCREENSHOTS`` when that variable is set.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ui.i18n import t

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_START_TIMEOUT_S = 90
UI_TIMEOUT_MS = 60_000

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        # .ci/run installs it: in CI a missing browser is a failure, not a skip.
        raise RuntimeError(f"{CHROMIUM} is missing in CI; .ci/run should have installed it")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory):
    """``streamlit run app.py`` on a free local port; killed at teardown."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("streamlit_server") / "server.log"
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start in {SERVER_START_TIMEOUT_S}s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()


@pytest.fixture()
def page(server_url: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1100})
            page = context.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


class Shots:
    """Saves numbered screenshots to a tmp folder and to $WORKBENCH_SCREENSHOTS."""

    def __init__(self, page, folder: Path):
        self.page, self.folder, self.n = page, folder, 0
        extra = os.environ.get("WORKBENCH_SCREENSHOTS")
        self.extra = Path(extra) if extra else None
        if self.extra:
            self.extra.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str) -> Path:
        self.n += 1
        path = self.folder / f"{self.n:02d}_{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        if self.extra:
            shutil.copy(path, self.extra / path.name)
        return path


def assert_no_traceback(page) -> None:
    text = page.locator("body").inner_text()
    assert "Traceback" not in text, text


def wait_until_idle(page) -> None:
    """Wait for the current script run to end (Streamlit's 'running' widget gone)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=UI_TIMEOUT_MS)


def test_attention_page_in_browser(page, server_url: str, tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    shots = Shots(page, tmp_path)
    chart = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot')
    chart_title = page.locator('[data-testid="stPlotlyChart"] .gtitle')

    # 1. Opens in Spanish; with no shipped model and no folder it explains what to do.
    page.goto(server_url)
    expect(page.get_by_role("heading", name=t("attention.title", "es"))).to_be_visible()
    wait_until_idle(page)
    shots("opened")
    assert_no_traceback(page)

    # 2. A folder that does not exist: an error, not a traceback.
    folder_input = page.get_by_label(t("sidebar.folder", "es"), exact=True)
    folder_input.fill("/no/such/folder")
    folder_input.press("Enter")
    expect(page.get_by_text(t("error.folder_missing", "es", path="/no/such/folder"))).to_be_visible()
    shots("missing_folder")
    assert_no_traceback(page)

    # 3. The tiny checkpoint folder: the default prompt's heatmap appears.
    folder_input.fill(str(tiny_gpt2_dir))
    folder_input.press("Enter")
    expect(chart).to_be_visible()
    expect(chart_title).to_have_text([t("figure.title", "es", layer=0, head=0)])
    wait_until_idle(page)
    shots("heatmap_default_prompt")

    # 4. A new prompt (Ctrl+Enter applies a text area).
    prompt = page.get_by_label(t("attention.prompt", "es"), exact=True)
    prompt.fill("The dog sat on the log. The dog sat")
    prompt.press("Control+Enter")
    expect(page.locator('[data-testid="stPlotlyChart"] .ytick text').first).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"] .ytick text', has_text="dog").first).to_be_visible()

    # 5. Another head and layer: the figure follows.
    for label, value in (("attention.head", "2"), ("attention.layer", "1")):
        page.get_by_label(t(label, "es"), exact=True).click()
        page.get_by_role("option", name=value, exact=True).click()
        wait_until_idle(page)
    expect(chart_title).to_have_text([t("figure.title", "es", layer=1, head=2)])
    expect(chart).to_be_visible()
    shots("heatmap_layer1_head2_es")
    assert_no_traceback(page)

    # 6. Hovering a cell shows query token, key token and weight.
    box = chart.locator(".nsewdrag").first.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.9)
    hover = page.locator(".hoverlayer .hovertext")
    expect(hover).to_contain_text(t("figure.query", "es"))
    expect(hover).to_contain_text(t("figure.key", "es"))
    expect(hover).to_contain_text(t("figure.weight", "es"))
    shots("hover_es")

    # 7. English: every label switches, the selection stays.
    page.get_by_text("English", exact=True).click()
    expect(page.get_by_role("heading", name=t("attention.title", "en"))).to_be_visible()
    wait_until_idle(page)
    expect(chart).to_have_count(1)
    expect(chart_title).to_have_text([t("figure.title", "en", layer=1, head=2)])
    shots("heatmap_layer1_head2_en")

    # 8. Empty prompt: an error, and the page keeps working.
    prompt = page.get_by_label(t("attention.prompt", "en"), exact=True)
    prompt.fill("")
    prompt.press("Control+Enter")
    expect(page.get_by_text(t("error.empty_prompt", "en"))).to_be_visible()
    expect(chart).to_have_count(0)
    shots("empty_prompt_en")
    assert_no_traceback(page)
    prompt.fill("one two three one two three")
    prompt.press("Control+Enter")
    expect(chart).to_be_visible()
    wait_until_idle(page)
    shots("recovered_en")
    assert_no_traceback(page)


def test_export_and_ablation_in_browser(page, server_url: str, tmp_path: Path) -> None:
    """On the first shipped model: download the figure as SVG, then ablate an induction head on
    the Ablate & patch page and see the predictions change."""
    import xml.etree.ElementTree as ET

    from playwright.sync_api import expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    shots = Shots(page, tmp_path)
    chart = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot')

    page.goto(server_url)
    expect(chart).to_be_visible()
    wait_until_idle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name=t("export.svg", "es"), exact=True).click()
    svg_path = tmp_path / "figure.svg"
    download.value.save_as(svg_path)
    texts = " ".join(ET.fromstring(svg_path.read_text()).itertext())
    assert t("figure.title", "es", layer=0, head=0) in texts
    shots("exported_svg")

    page.goto(f"{server_url}/interventions")
    expect(page.get_by_role("heading", name=t("interventions.title", "es"))).to_be_visible()
    prompt = page.get_by_label(t("attention.prompt", "es"), exact=True)
    prompt.fill("gato azul tren queso gato azul tren")
    prompt.press("Control+Enter")
    wait_until_idle(page)
    page.locator('[data-testid="stMultiSelect"]').first.click()
    page.get_by_role("option", name="L1H3", exact=True).click()
    page.keyboard.press("Escape")
    wait_until_idle(page)
    title = page.locator('[data-testid="stPlotlyChart"] .gtitle', has_text=t("interventions.predictions_title", "es"))
    expect(title.first).to_be_visible()
    expect(page.get_by_text(t("interventions.loss_ablated", "es"), exact=True)).to_be_visible()
    shots("ablation_L1H3")
    assert_no_traceback(page)


PAGE_PATHS = ("model", "attention", "residual", "circuits", "interventions")


def test_every_page_by_its_link_in_both_languages(server_url: str, tmp_path: Path) -> None:
    """A teacher hands out links: each ``/<page>`` (and ``/``) opens its page in a fresh browser
    session, with no "page not found" dialog, no error and no traceback, in Spanish and, after
    the language switch, in English."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for path in ("",) + PAGE_PATHS + ("attention",):  # twice: not only the process's first run
                context = browser.new_context(viewport={"width": 1400, "height": 1100})
                page = context.new_page()
                page.set_default_timeout(UI_TIMEOUT_MS)
                page.goto(f"{server_url}/{path}")
                stem = path or "attention"
                expect(page.get_by_role("heading", name=t(f"{stem}.title", "es"))).to_be_visible()
                wait_until_idle(page)
                assert page.locator('[role="dialog"]').count() == 0, f"/{path}: a dialog popped up"
                assert page.locator('[data-testid="stException"]').count() == 0, path
                assert page.locator('[data-testid="stAlertContentError"]').count() == 0, path
                assert_no_traceback(page)
                page.get_by_text("English", exact=True).click()
                expect(page.get_by_role("heading", name=t(f"{stem}.title", "en"))).to_be_visible()
                wait_until_idle(page)
                assert page.locator('[data-testid="stAlertContentError"]').count() == 0, path
                assert_no_traceback(page)
                page.screenshot(path=str(tmp_path / f"link_{stem}_en.png"), full_page=True)
                context.close()
        finally:
            browser.close()


def test_a_click_on_the_detector_heatmap_opens_that_head(page, server_url: str, tmp_path: Path) -> None:
    """The head-detector heatmap links to the patterns: clicking the cell of layer 1, head 3
    shows that head's pattern (one-head view, layer 1, head 3)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    page.goto(server_url)
    expect(page.get_by_role("heading", name=t("attention.title", "es"))).to_be_visible()
    wait_until_idle(page)
    page.get_by_text(t("attention.view.detectors", "es"), exact=True).click()
    wait_until_idle(page)
    expect(page.get_by_text(t("attention.detector_click", "es"))).to_be_visible()
    plot = page.locator('[data-testid="stPlotlyChart"] .nsewdrag').first
    expect(plot).to_be_visible()
    page.wait_for_timeout(500)
    box = plot.bounding_box()
    assert box is not None
    layer, head, n_layers, n_heads = 1, 3, 2, 4  # the shipped induction-2l
    page.mouse.click(box["x"] + box["width"] * (head + 0.5) / n_heads, box["y"] + box["height"] * (layer + 0.5) / n_layers)
    wait_until_idle(page)
    title = page.locator('[data-testid="stPlotlyChart"] .gtitle')
    expect(title).to_have_text([t("figure.title", "es", layer=layer, head=head)])
    page.screenshot(path=str(tmp_path / "clicked_head.png"), full_page=True)
    assert_no_traceback(page)
