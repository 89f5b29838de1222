"""Export figures: PNG and SVG (Plotly + kaleido, drawn by the system Chromium), a standalone
interactive HTML that works offline (plotly.js inlined, no CDN), and the figure's data as CSV.

Pure functions, no Streamlit; the app's download buttons and the command line use them:

    python -m ui.export --model induction-2l --prompt "gato azul tren gato azul tren" \\
        --layer 1 --head 3 --format svg -o head.svg
    python -m ui.export --model induction-2l --prompt "..." --all-heads --format png -o slides/
    python -m ui.export --model induction-2l --prompt "..." --view all --format svg -o every_head.svg
    python -m ui.export --model translator-es-en --prompt "el gato negro come el pescado" \\
        --kind cross --layer 1 --head 0 --format html -o cross.html

kaleido needs a Chrome-like browser: ``BROWSER_PATH`` defaults to Debian's ``/usr/bin/chromium``.
One browser process is started on first use and kept (about 0.3 s per figure after the first,
instead of about 3 s each).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Optional, Sequence

import plotly.graph_objects as go

FORMATS = ("png", "svg", "html", "csv")
MIME = {"png": "image/png", "svg": "image/svg+xml", "html": "text/html", "csv": "text/csv"}
_CHROMIUM = "/usr/bin/chromium"
_server_lock = threading.Lock()
_server_started = False


class ExportError(RuntimeError):
    """A figure could not be rendered (no browser for kaleido, for example)."""


def image_export_available() -> bool:
    """Whether kaleido has a browser to draw PNG/SVG with: ``BROWSER_PATH``, Debian's
    ``/usr/bin/chromium``, or a Chrome/Chromium on the PATH. (HTML and CSV never need one.)"""
    import shutil

    configured = os.environ.get("BROWSER_PATH")
    if configured:
        return Path(configured).exists()
    if Path(_CHROMIUM).exists():
        return True
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
    return any(shutil.which(name) for name in names)


def _ensure_server() -> None:
    global _server_started
    if "BROWSER_PATH" not in os.environ and Path(_CHROMIUM).exists():
        os.environ["BROWSER_PATH"] = _CHROMIUM
    with _server_lock:
        if not _server_started:
            import kaleido

            kaleido.start_sync_server(silence_warnings=True)
            _server_started = True


def _image(fig: go.Figure, fmt: str, scale: float) -> bytes:
    _ensure_server()
    try:
        with _server_lock, warnings.catch_warnings():  # one figure at a time through the shared browser
            warnings.filterwarnings("ignore", message="The kopts argument is ignored")
            return fig.to_image(format=fmt, scale=scale)
    except Exception as err:  # noqa: BLE001 - reported with what to do
        raise ExportError(
            f"could not render the figure as {fmt.upper()} ({type(err).__name__}: {err}). kaleido needs Chromium: "
            "install it (apt-get install chromium) or set BROWSER_PATH to a Chrome/Chromium executable; "
            "the HTML and CSV exports work without it."
        ) from err


def to_png(fig: go.Figure, scale: float = 2.0) -> bytes:
    return _image(fig, "png", scale)


def to_svg(fig: go.Figure) -> bytes:
    return _image(fig, "svg", 1.0)


def to_html(fig: go.Figure) -> str:
    """A standalone page with plotly.js inlined: interactive with the network off."""
    return fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})


def _unescape(label: str) -> str:
    return label.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def to_csv(fig: go.Figure) -> str:
    """The figure's data as a table, labels as plain text (HTML escapes undone).

    One heatmap: a matrix (rows = y labels, columns = x labels). One x/y trace: two columns.
    Several traces (the heads of a grid, two runs side by side): one long table with a row per
    value, the trace's name first (``series, y, x, value`` for heatmaps, ``series, x, y`` else)."""
    from ui.figures import CLICK_LAYER

    data = [trace for trace in fig.data if trace.name != CLICK_LAYER]  # clickable cells are not data
    if not data:
        raise ExportError("the figure has no data to export")
    out = io.StringIO()
    writer = csv.writer(out)
    if len(data) == 1:
        trace = data[0]
        if getattr(trace, "z", None) is not None:
            z, xs, ys = _heatmap_table(trace)
            writer.writerow([""] + xs)
            for y, row in zip(ys, z):
                writer.writerow([y] + [_number(v) for v in row])
        else:
            writer.writerow(["x", "y"])
            for x, y in zip(trace.x, trace.y):
                writer.writerow([_unescape(str(x)), y])
        return out.getvalue()
    heatmaps = all(getattr(trace, "z", None) is not None for trace in data)
    writer.writerow(["series", "y", "x", "value"] if heatmaps else ["series", "x", "y"])
    for i, trace in enumerate(data):
        name = _unescape(str(trace.name)) if trace.name is not None else str(i)
        if getattr(trace, "z", None) is not None:
            z, xs, ys = _heatmap_table(trace)
            for y, row in zip(ys, z):
                writer.writerows([name, y, x, _number(v)] for x, v in zip(xs, row))
        else:
            writer.writerows([name, _unescape(str(x)), _unescape(str(y))] for x, y in zip(trace.x, trace.y))
    return out.getvalue()


def _number(v) -> str:
    return f"{float(v):.6g}" if v is not None else ""


def _heatmap_table(trace) -> tuple[list[list], list[str], list[str]]:
    z = [list(row) for row in trace.z]
    xs = [_unescape(str(x)) for x in (trace.x if trace.x is not None else range(len(z[0])))]
    ys = [_unescape(str(y)) for y in (trace.y if trace.y is not None else range(len(z)))]
    return z, xs, ys


def export(fig: go.Figure, fmt: str) -> bytes:
    """The figure as ``fmt`` (png, svg, html, csv), as bytes."""
    if fmt == "png":
        return to_png(fig)
    if fmt == "svg":
        return to_svg(fig)
    if fmt == "html":
        return to_html(fig).encode("utf-8")
    if fmt == "csv":
        return to_csv(fig).encode("utf-8")
    raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")


# ------------------------------------------------------------------------------ command line
def _grid(patterns, kind: str, layer: Optional[int], lang: str) -> go.Figure:
    """The app's grid views: every head of ``layer``, or of every layer (``layer`` None)."""
    from ui.figures import head_grid
    from ui.i18n import t

    chosen = patterns[kind]
    labels = dict(query_label=t("figure.query", lang), key_label=t("figure.key", lang),
                  weight_label=t("figure.weight", lang))
    if layer is not None:
        title_key = "figure.grid_title" if kind == "self" else f"figure.grid_title.{kind}"
        return head_grid(chosen.patterns[layer], chosen.query_tokens, chosen.key_tokens,
                         titles=[t("attention.head_short", lang, head=h) for h in range(chosen.n_heads)],
                         title=t(title_key, lang, layer=layer), **labels)
    title_key = "figure.all_title" if kind == "self" else f"figure.all_title.{kind}"
    panels = chosen.patterns.reshape(-1, *chosen.patterns.shape[2:])
    return head_grid(panels, chosen.query_tokens, chosen.key_tokens,
                     titles=[f"L{l}H{h}" for l in range(chosen.n_layers) for h in range(chosen.n_heads)],
                     title=t(title_key, lang, first=0, last=chosen.n_layers - 1), columns=chosen.n_heads, **labels)


def _figure(patterns, kind: str, layer: int, head: int, lang: str) -> go.Figure:
    from ui.figures import attention_heatmap
    from ui.i18n import t

    chosen = patterns[kind]
    title_key = "figure.title" if kind == "self" else f"figure.title.{kind}"
    return attention_heatmap(
        chosen.head(layer, head), chosen.query_tokens, key_tokens=chosen.key_tokens,
        title=t(title_key, lang, layer=layer, head=head), query_label=t("figure.query", lang),
        key_label=t("figure.key", lang), weight_label=t("figure.weight", lang),
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ui.export", description="Export attention patterns as PNG/SVG/HTML/CSV.")
    ap.add_argument("--model", required=True, help="a listed model name, a checkpoint folder or a .gguf file")
    ap.add_argument("--prompt", required=True, help="the text (the source sentence for an encoder-decoder)")
    ap.add_argument("--target", default=None, help="encoder-decoder: the target text (default: the model's output)")
    ap.add_argument("--kind", default=None, help="self (default), or encoder / decoder / cross for an encoder-decoder")
    ap.add_argument("--layer", type=int, default=0)
    ap.add_argument("--head", type=int, default=0)
    ap.add_argument("--all-heads", action="store_true", help="every head of every layer, one file each, into -o DIR")
    ap.add_argument("--view", choices=("head", "layer", "all"), default="head",
                    help="head: one head (default); layer: every head of --layer in one figure; all: every head of "
                    "every layer in one figure")
    ap.add_argument("--format", choices=FORMATS, default="png")
    ap.add_argument("--lang", choices=("es", "en"), default="es", help="language of titles and axis labels")
    ap.add_argument("-o", "--output", required=True, help="output file (a folder with --all-heads)")
    args = ap.parse_args(argv)

    from models import ModelLoadError, load_pretrained
    from ui.patterns import PromptError, attention_kinds, compute_attention_patterns

    try:
        model = load_pretrained(args.model)
    except ModelLoadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    kinds = attention_kinds(model.cfg)
    kind = args.kind or kinds[-1 if model.cfg.family == "encoder-decoder" else 0]
    if kind not in kinds:
        print(f"error: this model's attention kinds are {', '.join(kinds)}, not {kind!r}", file=sys.stderr)
        return 2
    try:
        patterns = compute_attention_patterns(model, args.prompt, target=args.target)
    except PromptError as err:
        from ui.i18n import t

        print(f"error: {t(f'error.{err.code}', args.lang, name=args.model, **err.details)}", file=sys.stderr)
        return 2
    chosen = patterns[kind]
    if args.view != "head" and not args.all_heads:
        if args.view == "layer" and not 0 <= args.layer < chosen.n_layers:
            print(f"error: layer must be 0..{chosen.n_layers - 1}", file=sys.stderr)
            return 2
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(export(_grid(patterns, kind, args.layer if args.view == "layer" else None, args.lang),
                                args.format))
        print(f"wrote 1 file: {path}")
        return 0
    if args.all_heads:
        out_dir = Path(args.output)
        out_dir.mkdir(parents=True, exist_ok=True)
        pairs = [(l, h) for l in range(chosen.n_layers) for h in range(chosen.n_heads)]
    else:
        if not (0 <= args.layer < chosen.n_layers and 0 <= args.head < chosen.n_heads):
            print(f"error: layer must be 0..{chosen.n_layers - 1} and head 0..{chosen.n_heads - 1}", file=sys.stderr)
            return 2
        pairs = [(args.layer, args.head)]
    written = []
    for layer, head in pairs:
        data = export(_figure(patterns, kind, layer, head, args.lang), args.format)
        path = (Path(args.output) / f"{kind}_L{layer}H{head}.{args.format}") if args.all_heads else Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    print(f"wrote {len(written)} file(s): {written[0]}" + (" ..." if len(written) > 1 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
