"""The live training dashboard (Visdom), and the loss history it plots.

`History` keeps every reported figure of a run as named series of (step, value) points; it is saved
in resume checkpoints, so a resumed run's plots continue from where they stopped. `VisdomDashboard`
mirrors a History to a Visdom server from a background thread: the training loop only hands it
numbers and sample tensors and never waits on the network. When the server is down, unreachable or
restarted, the dashboard warns once per outage, keeps the history, and redraws every window from it
when the server answers again. It never starts a server itself (`python -m visdom.server` does).
"""

from __future__ import annotations

import html
import logging
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from texture_nets.core.errors import TextureNetsError


@dataclass(frozen=True)
class Window:
    """One line plot: its Visdom window id, title, y label and scale."""

    name: str
    title: str
    ylabel: str
    log_scale: bool = True


WINDOWS = {w.name: w for w in [  # in display order
    Window("total", "total loss", "loss"),
    Window("style", "style loss", "relative Gram error"),
    Window("content", "content loss", "relative error"),
    Window("luminance", "luminance layout loss (where the photo is light and dark)", "1 − correlation"),
    Window("style_layers", "style loss per layer", "relative Gram error"),
    Window("tv", "total variation of the output", "mean |pixel difference|", log_scale=False),
    Window("learning_rate", "learning rate", "learning rate"),
    Window("throughput", "throughput", "images / s", log_scale=False),
    Window("cuda_memory", "CUDA memory (peak allocated)", "MiB", log_scale=False),
]}
SAMPLES_WINDOW, RUN_WINDOW = "samples", "run"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def plot_of(series: str) -> tuple[str, str] | None:
    """(window, trace name) of a History series, or None if it is not plotted: 'train/total' →
    ('total', 'train'), 'val/style/relu3_1' → ('style_layers', 'relu3_1 validation'). The TV window
    shows the output's unweighted total variation (the weighted term is that times tv_weight)."""
    split, _, loss = series.partition("/")
    if split in ("train", "val"):
        suffix = "" if split == "train" else " validation"
        if loss.startswith("style/"):
            return "style_layers", loss.split("/", 1)[1] + suffix
        window = {"output_tv": "tv", "tv": None}.get(loss, loss)
        return (window, "train" if split == "train" else "validation") if window in WINDOWS else None
    return {"learning_rate": ("learning_rate", "learning rate"), "images_per_sec": ("throughput", "images/s"),
            "cuda_memory_mb": ("cuda_memory", "peak allocated")}.get(series)


class History:
    """Every figure a run reported, as series name → [[step, value], ...]; thread-safe appends."""

    def __init__(self, series: dict[str, list[list[float]]] | None = None):
        self._lock = threading.Lock()
        self.series: dict[str, list[list[float]]] = {k: [list(p) for p in v] for k, v in (series or {}).items()}

    def record(self, event) -> None:
        """Append the figures of one trainer StepEvent."""
        points = {f"train/{k}": v for k, v in event.losses.items()}
        points.update({f"val/{k}": v for k, v in (event.val_losses or {}).items()})
        points["learning_rate"] = event.learning_rate
        points["images_per_sec"] = event.images_per_sec
        if event.cuda_memory_mb is not None:
            points["cuda_memory_mb"] = event.cuda_memory_mb
        with self._lock:
            for name, value in points.items():
                self.series.setdefault(name, []).append([float(event.step), float(value)])

    def since(self, counts: dict[str, int]) -> dict[str, list[list[float]]]:
        """The points of each series after the first `counts[name]` (a consistent snapshot)."""
        with self._lock:
            return {name: points[counts.get(name, 0):] for name, points in self.series.items()
                    if len(points) > counts.get(name, 0)}

    def state_dict(self) -> dict[str, list[list[float]]]:
        """Plain lists, for the resume checkpoint."""
        with self._lock:
            return {name: [list(p) for p in points] for name, points in self.series.items()}


class DashboardWarning(UserWarning):
    """The dashboard cannot reach its server (training is not affected)."""


def warn(message: str) -> None:
    """Issue a DashboardWarning every time (not once per call site: each outage deserves one)."""
    warnings.warn_explicit(message, DashboardWarning, __file__, 0, module=__name__, registry=None)


class NullDashboard:
    """What runs without --viz (and on every process but rank 0): accepts everything, does nothing."""

    url = ""  # as a Dashboard's, so a caller may name it without asking which it holds

    def start(self, info: dict[str, object], config_text: str) -> None:
        pass

    def update(self, event, info: dict | None = None) -> None:
        pass

    def close(self, timeout: float = 0.0) -> None:
        pass


class NotVisdomError(ConnectionError):
    """The address answers, but not as a Visdom server does."""


def visdom_client_class():
    """visdom.Visdom with a timeout on every request and a window-existence check that raises on a
    dead connection (the stock client waits forever on an unreachable host and prints on errors)."""
    try:
        import visdom  # visdom: the optional viz extra, loaded only with --viz
    except ImportError as exc:
        raise TextureNetsError("--viz needs the visdom package: pip install 'texture_nets[viz]' (see the README "
                               "for its install route), then start a server with python -m visdom.server") from exc

    warnings.filterwarnings("ignore", "The 'warn' method is deprecated", DeprecationWarning, module="visdom")

    class Client(visdom.Visdom):
        timeout = (3.0, 10.0)  # seconds: connect, read

        def _handle_post(self, url, data=None):
            response = self.session.post(url, data=data or {}, timeout=self.timeout)
            if response.status_code != 200:  # e.g. another web server on that port: not a place to plot
                raise NotVisdomError(f"{url.rsplit('/', 1)[0]} answered HTTP {response.status_code}; "
                                     f"is it a Visdom server?")
            return response.text

        def win_exists(self, win, env=None):  # asked by line() before every append: one request saved
            return True  # each time; VisdomDashboard checks for lost windows itself, once per sync

        def window_exists(self, win: str) -> bool:
            return self._send({"win": win, "eid": self.env}, endpoint="win_exists", quiet=True) == "true"

    return Client


class VisdomDashboard:
    """Live plots of a History, sample images and a run summary in one Visdom environment.

    `update()` is called by the training thread and returns at once; a daemon thread sends what is
    new every `interval` seconds, so the request rate does not grow with the step rate. Failed
    requests are retried every `retry` seconds; after any reconnection (or a server restart, detected
    by a missing window) every window is redrawn from the full history, so nothing is lost and
    nothing is plotted twice.
    """

    def __init__(self, history: History, *, server: str, port: int, env: str,
                 log: Callable[[str], None] = print, interval: float = 2.0, retry: float = 2.0):
        self.history, self.server, self.port, self.env, self.log = history, server, port, env, log
        self.interval, self.retry = interval, retry
        self._colors: dict[tuple[str, str], str] = {}  # (window, trace without ' validation') → colour
        self._client_class = visdom_client_class()
        self._client = None
        self._sent: dict[str, int] = {}  # points of each series already on the server
        self._created: set[str] = set()  # windows created (with their options) on the server
        self._pending: dict[str, object] = {}  # image / text panes waiting to be (re)sent
        self._panes: dict[str, object] = {}  # the latest of each pane, redrawn after a reconnection
        self._info: dict[str, object] = {}
        self._config_text = ""
        self._lock = threading.Lock()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._connected, self._down_since, self._next_try = False, None, 0.0
        self._thread = threading.Thread(target=self._run, name="visdom-dashboard", daemon=True)

    @property
    def url(self) -> str:
        """The page of this run's environment."""
        return f"{self.server}:{self.port}/env/{self.env}"

    # -- called from the training thread -------------------------------------------------------
    def start(self, info: dict[str, object], config_text: str) -> None:
        """Begin mirroring; `info` (name → value) and `config_text` fill the run pane."""
        self._info, self._config_text = dict(info), config_text
        self._set_pane(RUN_WINDOW, self._run_html())
        self._thread.start()

    def update(self, event, info: dict[str, object] | None = None) -> None:
        """Take one StepEvent (already recorded in the history) and changes to the run pane's `info`."""
        if info:
            self._info.update(info)
            self._set_pane(RUN_WINDOW, self._run_html())
        if event.samples:  # drawn into one picture by the sending thread
            self._set_pane(SAMPLES_WINDOW, (event.samples, event.step))

    def close(self, timeout: float = 10.0) -> None:
        """Send what is left (one last try, even while the server was down) and stop the thread,
        waiting at most `timeout` seconds."""
        if not self._thread.is_alive():
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.log(f"the dashboard's last points may not have reached {self.server}:{self.port} "
                     f"(no answer within {timeout:g} s)")

    # -- the sending thread --------------------------------------------------------------------
    def _set_pane(self, name: str, content) -> None:
        """Queue an image or text pane; the newest content of a pane wins."""
        with self._lock:
            self._pending[name] = self._panes[name] = content

    def _run(self) -> None:
        """The sending thread: sync every `interval` s (retries no sooner than `retry` s), once more at close."""
        while True:
            stopping = self._stop.is_set()
            if stopping or time.monotonic() >= self._next_try:
                try:
                    self._sync()
                except Exception as exc:  # a bug here must never stop training: report it and quit
                    warn(f"the Visdom dashboard stopped ({exc.__class__.__name__}: {exc}); training goes on")
                    return
            if stopping:
                return
            self._wake.wait(self.interval)
            self._wake.clear()

    def _sync(self) -> None:
        """Send everything new; on failure note the outage once and schedule a retry."""
        try:
            client = self._connect()
            if any(not client.window_exists(win) for win in self._windows_to_append()):
                self._forget_server_state()  # a restarted server, or a window closed in the page: redraw
            self._send_points(client)
            self._send_panes(client)
        except (ConnectionError, OSError) as exc:
            self._connected = False
            self._next_try = time.monotonic() + self.retry
            if self._down_since is None:
                self._down_since = time.monotonic()
                warn(f"Visdom server {self.server}:{self.port} is not answering ({exc}); training goes on and "
                     f"the dashboard catches up when the server is back")
            return
        if not self._connected and self._down_since is not None:
            self.log(f"Visdom server is back after {time.monotonic() - self._down_since:.0f} s: dashboard "
                     f"redrawn at {self.url}")
        self._connected, self._down_since = True, None

    def _connect(self):
        """The client, created on first success; after an outage, forget what the server had."""
        if self._client is None:
            logging.getLogger("visdom").setLevel(logging.ERROR)  # it warns about the unused socket
            self._client = self._client_class(server=self.server, port=self.port, env=self.env,
                                              raise_exceptions=True, use_incoming_socket=False)
        if not self._connected:
            self._forget_server_state()
        return self._client

    def _forget_server_state(self) -> None:
        """Assume an empty server: every point and pane is sent again, every window recreated."""
        self._sent, self._created = {}, set()
        with self._lock:
            self._pending = dict(self._panes)

    def _windows_to_append(self) -> list[str]:
        """Windows already drawn that have new points waiting (an append to a missing window
        would recreate it from the new points alone, without its history and options)."""
        plots = (plot_of(series) for series in self.history.since(self._sent))
        return sorted({plot[0] for plot in plots if plot and plot[0] in self._created})

    def _send_points(self, client) -> None:
        """Append the new points of every series to its window (creating the window first)."""
        by_window: dict[str, list[tuple[str, str, list]]] = {name: [] for name in WINDOWS}  # display order
        for series, points in sorted(self.history.since(self._sent).items()):
            plot = plot_of(series)
            if plot is None:
                self._sent[series] = self._sent.get(series, 0) + len(points)
                continue
            by_window[plot[0]].append((series, plot[1], points))
        for window, traces in by_window.items():
            spec = WINDOWS[window]
            for series, trace, points in traces:
                self._sent[series] = self._sent.get(series, 0) + len(points)
                xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
                keep = np.isfinite(ys) & ((ys > 0) if spec.log_scale else True)  # JSON has no NaN; log has no 0
                if not keep.any():
                    continue
                xs, ys = xs[keep], ys[keep]
                style = {"traceopts": {"plotly": {trace: {"line": self._line_style(window, trace)}}}}
                if window not in self._created:
                    client.line(X=xs, Y=ys, win=window, name=trace, opts={**_plot_opts(spec), **style})
                    self._created.add(window)
                else:
                    client.line(X=xs, Y=ys, win=window, name=trace, update="append", opts=style)

    def _line_style(self, window: str, trace: str) -> dict:
        """Validation dashed, in the colour of its training trace where it has one (per layer)."""
        validation = trace.endswith("validation")
        base = trace.removesuffix(" validation") if window == "style_layers" else trace
        colours = [c for (w, _), c in self._colors.items() if w == window]
        colour = self._colors.setdefault((window, base), PALETTE[len(colours) % len(PALETTE)])
        return {"color": colour, "width": 2, "dash": "dash" if validation else "solid"}

    def _send_panes(self, client) -> None:
        """(Re)draw the image and text panes that changed."""
        with self._lock:
            pending, self._pending = self._pending, {}
        try:
            for name, content in pending.items():
                if name == SAMPLES_WINDOW:
                    columns, step = content
                    grid = sample_grid(columns)
                    client.image(grid, win=name, opts=dict(title=f"validation samples, step {step}: "
                                                                  + " | ".join(columns), jpgquality=92,
                                                            width=min(grid.shape[2], 1100) + 20))
                else:
                    client.text(content, win=name, opts=dict(title="run", width=460, height=360))
                self._created.add(name)
        except BaseException:
            with self._lock:  # not sent: keep for the next try, unless a newer one came meanwhile
                self._pending = {**pending, **self._pending}
            raise

    def _run_html(self) -> str:
        """The run pane: a table of `info` and the config."""
        table = "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}</td></tr>"
                        for k, v in self._info.items())
        return (f"<table>{table}</table><details open><summary>config</summary>"
                f"<pre style='font-size:11px'>{html.escape(self._config_text)}</pre></details>")


def sample_grid(columns: dict[str, torch.Tensor], padding: int = 4, label_height: int = 18) -> np.ndarray:
    """Labelled N,3,H,W batches → one uint8 3,H',W' picture: a row per photo, a column per batch,
    each column's label written above it (cut to fit)."""
    batches = list(columns.values())
    n, _, h, w = batches[0].shape
    canvas = Image.new("RGB", (len(batches) * (w + padding) - padding, label_height + n * (h + padding) - padding),
                       "white")
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=max(label_height - 6, 8))
    except (TypeError, ImportError, OSError):  # Pillow < 10.1, or no FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    for col, (label, batch) in enumerate(columns.items()):
        x = col * (w + padding)
        pixels = (batch.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for row in range(n):
            canvas.paste(Image.fromarray(pixels[row]), (x, label_height + row * (h + padding)))
        while label and draw.textlength(label, font=font) > w - 2:
            label = label[:-1]
        if label_height:
            draw.text((x + 1, 2), label, fill=(20, 20, 20), font=font)
    return np.asarray(canvas).transpose(2, 0, 1).copy()


def _plot_opts(spec: Window) -> dict:
    """Visdom options of a new line plot (legend on, log axis where the window asks for it)."""
    opts = dict(title=spec.title, xlabel="step", ylabel=spec.ylabel, showlegend=True, width=460, height=330,
                marginleft=60, marginright=20, margintop=40, marginbottom=50,
                layoutopts={"plotly": {"title": {"text": spec.title, "x": 0.03, "xanchor": "left"}}})  # clear of the toolbar
    if spec.log_scale:
        opts["ytype"] = "log"
    return opts


def make_dashboard(enabled: bool, history: History, *, server: str, port: int, env: str,
                   log: Callable[[str], None] = print):
    """A VisdomDashboard when `enabled` (a clear error if visdom is not installed), else a no-op."""
    if not enabled:
        return NullDashboard()
    return VisdomDashboard(history, server=server, port=port, env=env, log=log)
