"""Training speed with every live view open and animating, against the same engine headless.

    python bench/live_views.py [--seconds 2] [--repeats 11] [--modes process,thread] [--models ...]
    python bench/live_views.py --screenshots docs/img     # the two screenshots of the docs, then exit

For the moons MLP, the digits MLP and the small digits CNN it measures, in one run:

* ``samples/s`` of the engine's ``Trainer`` headless (no callbacks, no snapshots, no Qt), and of
  the same training started from the real main window with the training UI installed, with all
  eight live views floated into a grid so that every one of them is visible and animating, plus
  the canvas overlay (edge tints and node thumbnails).  Both figures are epochs x training samples
  / wall-clock time of the run, from the trainer's own ``elapsed_s`` of the last epoch;
  ``vs_headless`` is their ratio.
* ``latency_p95_ms``: the GUI event loop's responsiveness during training - a 5 ms QTimer
  records how late each of its ticks fires; the 95th percentile of that lateness.
* ``fps``: frames per second that the views drew with new data (the slowest view).
* ``headless_with_a_busy_core``: headless samples/s with an unrelated process spinning on another
  core, over headless alone - what the machine itself takes from a trainer whose neighbour core
  is busy (cores that share a physical core or a power budget).  The GUI must draw on some core.
* ``headless_vs_headless``: the same pairing with nothing different, headless against headless,
  with its ``_ci95``: the ratio (and the interval) this machine gives when there is no gap at all.
  On a shared VM a single 2 s run swings by tens of percent; read ``vs_headless`` against it.
* ``vs_headless_ci95``: a ~95% confidence interval of the median ratio, and
  ``trainer_time_on_views``: the share of the training process's time its snapshot work took.

Each GUI run is paired with a headless run (same model, data, seed and epochs, sized to last
about ``--seconds``), right before it on even repeats and right after it on odd ones; repeats
are interleaved across models, and medians of the per-pair figures are reported.  The
"process" mode trains in the warm subprocess (LayerLab's default); "thread" trains on a QThread
in the GUI process - the comparison that decided the design (see docs/BENCHMARKS.md).

The last line is JSON keyed by model: ``vs_headless``, ``latency_p95_ms``, ``fps`` for the default
mode, and the other mode's figures under its name.  Targets: vs_headless >= 0.9,
latency_p95_ms <= 25, fps >= 20.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TARGETS = {"vs_headless": 0.9, "latency_p95_ms": 25.0, "fps": 20.0}
MODELS = ("moons_mlp", "digits_mlp", "small_cnn")


# ----------------------------------------------------------------------------- workloads
def make_project(name: str):
    """The three workloads as LayerLab projects (graphs, data, settings) - what a student opens."""
    from engine.graph import Graph
    from engine.project import Project, load_starter
    from engine.templates import chain

    if name == "moons_mlp":
        p = load_starter("moons-mlp")
    elif name == "small_cnn":
        p = load_starter("digits-cnn")
    elif name == "digits_mlp":
        g = Graph()
        chain(g, [("Input", {}), ("Flatten", {}), ("Linear", {"units": 64}), ("ReLU", {}),
                  ("Linear", {"units": 64}), ("ReLU", {}), ("Linear", {"units": "auto"}), ("Output", {})])
        p = Project(graph=g, data={"source": "digits"}, name="Digits MLP",
                    training={"optimizer": "adam", "lr": 0.003, "batch_size": 32, "epochs": 20, "seed": 0})
    else:
        raise SystemExit(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    p.training = {**p.training, "seed": 0, "device": "auto"}
    return p


def headless_run(project, dataset, epochs: int) -> dict:
    """The engine alone: compile, train, time (the trainer picks its own CPU threads)."""
    import torch

    from engine.compile import compile_graph
    from engine.layers.io import resolve_loss
    from engine.spec import InferContext
    from engine.train import Trainer
    from engine.train_config import TrainConfig

    ctx = InferContext(dataset.input_shape, dataset.n_outputs, dataset.task)
    torch.manual_seed(0)
    cm = compile_graph(project.graph, ctx)
    cfg = TrainConfig.from_dict({**project.training, "epochs": epochs,
                                 "loss": resolve_loss("auto", dataset.task)})
    trainer = Trainer(cm.module, dataset, cfg)
    trainer.run()
    last = trainer.history[-1]
    return {"samples_per_s": epochs * dataset.n_train / last["elapsed_s"], "elapsed_s": last["elapsed_s"],
            "threads": trainer.num_threads}


def busy_core_ratio(project, dataset, epochs: int, repeat: int) -> float:
    """Headless samples/s with an unrelated busy process on another core, over samples/s without."""
    import subprocess

    def with_spinner() -> float:
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.2)
            return headless_run(project, dataset, epochs)["samples_per_s"]
        finally:
            spinner.kill()
            spinner.wait()

    if repeat % 2 == 0:
        alone = headless_run(project, dataset, epochs)["samples_per_s"]
        busy = with_spinner()
    else:
        busy = with_spinner()
        alone = headless_run(project, dataset, epochs)["samples_per_s"]
    return busy / alone


def same_pair_ratio(project, dataset, epochs: int) -> float:
    """Headless over headless: what one pair gives when nothing differs (the bench's noise floor)."""
    first = headless_run(project, dataset, epochs)["samples_per_s"]
    return headless_run(project, dataset, epochs)["samples_per_s"] / first


# ----------------------------------------------------------------------------- GUI side
class LatencyProbe:
    """A 5 ms precise QTimer; records how late each tick fires."""

    def __init__(self, period_ms: int = 5):
        from PySide6.QtCore import QObject, Qt, QTimer

        self.period = period_ms / 1000.0
        self.samples: list[float] = []
        self._last = None
        self._holder = QObject()
        self.timer = QTimer(self._holder)
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(period_ms)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.samples.append(max(0.0, now - self._last - self.period))
        self._last = now

    def start(self) -> None:
        self.samples.clear()
        self._last = None
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def p95_ms(self) -> float:
        if not self.samples:
            return math.nan
        s = sorted(self.samples)
        return 1000.0 * s[min(len(s) - 1, int(0.95 * len(s)))]


def median_ci(values: list[float]) -> tuple[float, float]:
    """A distribution-free ~95% confidence interval of the median: the order statistics at
    n/2 -+ 0.98 sqrt(n) (the binomial sign-test interval).  On a shared machine single runs
    swing by tens of percent; this says how far the reported median can be trusted."""
    v = sorted(values)
    n = len(v)
    if n < 3:
        return (v[0], v[-1]) if v else (math.nan, math.nan)
    j = max(0, math.floor(n / 2 - 0.98 * math.sqrt(n)))
    k = min(n - 1, math.ceil(n / 2 + 0.98 * math.sqrt(n)) - 1)
    return v[j], v[k]


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system, all threads) of process ``pid`` (None: this one) so far."""
    if pid is None:
        return time.process_time()
    try:  # Linux: /proc/<pid>/stat fields 14 and 15, in clock ticks
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return math.nan


def build_window(mode: str):
    from gui import theme
    from gui.app import create_application
    from gui.document import Document
    from gui.main_window import MainWindow
    from gui.training import install_training_ui

    app = create_application(["bench"])
    theme.apply_theme("light", app, persist=False)
    doc = Document(make_project("moons_mlp"))
    window = MainWindow(doc, extensions=[lambda w: install_training_ui(w, mode=mode)], autosave=False)
    window.resize(1280, 800)
    window.show()
    ctl = window.training
    # every view visible at once: float the docks into a 4 x 2 grid of 420 x 330 windows
    for i, key in enumerate(ctl.views):
        dock = ctl.docks[key]
        dock.setFloating(True)
        dock.resize(420, 330)
        dock.move(1300 + (i % 4) * 430, (i // 4) * 340)
        dock.show()
    t0 = time.perf_counter()
    while not ctl.worker.is_ready and time.perf_counter() - t0 < 60:
        app.processEvents()
        time.sleep(0.005)
    return app, window, ctl


def gui_run(app, window, ctl, project, epochs: int) -> dict:
    from PySide6.QtCore import QEventLoop, QTimer

    window.document.open_project(project)
    app.processEvents()
    ctl.panel.set_settings({**project.training, "epochs": epochs})
    probe = LatencyProbe()
    mark: dict = {}

    def on_started(_payload) -> None:  # the run's clock starts: measure from here
        mark["t"] = time.perf_counter()
        probe.start()
        for v in ctl.views.values():
            v.frames_drawn = 0
        mark["frames"] = ctl.frames
        ctl.worker.inbox.received = 0
        child = ctl.worker._proc.pid if ctl.worker._proc is not None else None
        mark["child"] = child
        mark["cpu"] = (cpu_seconds(), cpu_seconds(child) if child else math.nan)

    def on_state(state: str) -> None:
        if state == "idle" and not ctl.worker.busy:
            mark["end"] = time.perf_counter()
            mark["cpu_end"] = (cpu_seconds(), cpu_seconds(mark["child"]) if mark.get("child") else math.nan)
            loop.quit()

    # A real event loop, as the app runs (app.exec): polling with processEvents would keep the
    # GUI process busy and, on a machine whose cores share a physical core, slow the trainer.
    loop = QEventLoop()
    ctl.worker.runStarted.connect(on_started)
    ctl.worker.stateChanged.connect(on_state)
    watchdog = QTimer()
    watchdog.setSingleShot(True)
    watchdog.timeout.connect(loop.quit)
    watchdog.start(600_000)
    t_start = time.perf_counter()
    try:
        assert ctl.train(), ctl.panel.status_label.text()
        loop.exec()
    finally:
        ctl.worker.runStarted.disconnect(on_started)
        ctl.worker.stateChanged.disconnect(on_state)
        watchdog.stop()
    if "end" not in mark:
        raise SystemExit("a GUI run did not finish in 10 minutes")
    probe.stop()
    app.processEvents()
    started = mark.get("t")
    t_end = mark["end"]
    frames0 = mark.get("frames", 0)
    cpu0, cpu1 = mark.get("cpu", (math.nan, math.nan)), mark["cpu_end"]
    if ctl.last_failure is not None:
        raise SystemExit(f"the GUI run failed: {ctl.last_failure.message}")
    duration = t_end - (started or t_start)
    last = ctl.history.epochs[-1]
    # the boundary and fitted-curve views only draw for data they fit (2-D classification, 1-D regression)
    shown = {k: v.frames_drawn / duration for k, v in ctl.views.items()
             if not (k == "boundary" and ctl.info.grid_extent is None)
             and not (k == "regression" and ctl.info.curve_x is None)}
    return {"samples_per_s": epochs * ctl.job.dataset.n_train / last["elapsed_s"], "elapsed_s": last["elapsed_s"],
            "latency_p95_ms": probe.p95_ms(), "frames_per_s": (ctl.frames - frames0) / duration,
            "fps": min(shown.values()) if shown else 0.0, "view_fps": shown,
            "snapshots_per_s": ctl.worker.inbox.received / duration,
            # cores busy during the run: the GUI process (views, this harness) and the training process
            "gui_cores": (cpu1[0] - cpu0[0]) / duration,
            "trainer_cores": (cpu1[1] - cpu0[1]) / duration,
            "views_cost": ctl.last_finish.views_cost_s / max(ctl.last_finish.run_s, 1e-9)}


# ----------------------------------------------------------------------------- screenshots
def screenshots(folder: str) -> int:
    """docs/img/train_moons.png (decision boundary mid-run) and train_digits_cnn.png (feature maps),
    taken from the real main window at 1280 x 800 while a run is in progress."""
    from engine.project import load_starter
    from gui import theme
    from gui.app import create_application
    from gui.document import Document
    from gui.main_window import MainWindow
    from gui.training import install_training_ui

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    app = create_application(["screenshots"])
    theme.apply_theme("light", app, persist=False)
    shots = [("moons-mlp", "train_moons.png", {"epochs": 200, "lr": 0.003}, 25, "relu2"),
             ("digits-cnn", "train_digits_cnn.png", {"epochs": 40}, 6, "relu1")]
    for starter, name, settings, at_epoch, node in shots:
        window = MainWindow(Document(load_starter(starter)),
                            extensions=[lambda w: install_training_ui(w)], autosave=False)
        window.resize(1280, 800)
        window.show()
        ctl = window.training
        while not ctl.worker.is_ready:
            app.processEvents()
            time.sleep(0.01)
        node_id = window.document.graph.node_by_name(node).id
        item = window.scene.nodes.get(node_id)
        if item is not None:
            item.setSelected(True)  # a click on the canvas: the activations view follows
        ctl.panel.set_settings({**window.document.training_config(), **settings})
        ctl.train()
        while len(ctl.history.epochs) < at_epoch and ctl.worker.busy:
            app.processEvents()
            time.sleep(0.002)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.3:  # let the newest frame and the overlay land
            app.processEvents()
            time.sleep(0.002)
        ctl.flush_frame()
        app.processEvents()
        window.grab().save(str(out / name))
        print(f"wrote {out / name} ({window.width()}x{window.height()}, epoch {len(ctl.history.epochs)})")
        window._close_confirmed = True
        window.close()
        app.processEvents()
    return 0


# ----------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each timed run (about)")
    ap.add_argument("--repeats", type=int, default=11,
                    help="pairs per model and mode (many short pairs: the machine's drift hits both sides alike)")
    ap.add_argument("--modes", default="process,thread", help="process, thread or both (comma-separated)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--interference-repeats", type=int, default=5,
                    help="pairs per model measuring headless training beside an unrelated busy core (0: skip)")
    ap.add_argument("--control-repeats", type=int, default=7,
                    help="pairs per model of headless against headless, the noise floor (0: skip)")
    ap.add_argument("--screenshots", metavar="FOLDER", help="only take the docs screenshots into FOLDER")
    args = ap.parse_args()
    if args.screenshots:
        return screenshots(args.screenshots)
    modes = [m for m in args.modes.split(",") if m]
    models = [m for m in args.models.split(",") if m]

    import torch

    from engine.data import load_dataset

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, CUDA: "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    data = {m: load_dataset(make_project(m).data) for m in models}
    # size each run: one short headless calibration run per model
    epochs = {}
    for m in models:
        p = make_project(m)
        probe = headless_run(p, data[m], 3)
        epochs[m] = max(3, int(round(args.seconds * probe["samples_per_s"] / data[m].n_train)))
        print(f"{m}: {data[m].n_train} training samples, {epochs[m]} epochs per run "
              f"(~{probe['samples_per_s']:,.0f} samples/s headless, {probe['threads']} thread(s))", flush=True)

    # The machine's own share of any gap: headless training with another process merely busy on
    # another core (no interaction at all).  Where cores share a physical core or a power budget,
    # that alone slows training, and a GUI that draws must use some core.
    interference = {}
    if args.interference_repeats and (os.cpu_count() or 1) > 1:
        print("\nheadless with another core kept busy by an unrelated process (the machine's share):", flush=True)
        for m in models:
            ratios = [busy_core_ratio(make_project(m), data[m], epochs[m], r) for r in range(args.interference_repeats)]
            interference[m] = statistics.median(ratios)
            print(f"  {m:11s} {interference[m]:.3f}  ({', '.join(f'{x:.2f}' for x in ratios)})", flush=True)

    control = {}
    if args.control_repeats:
        print("\nheadless against headless, nothing different (the noise floor of a pair):", flush=True)
        for m in models:
            ratios = [same_pair_ratio(make_project(m), data[m], epochs[m]) for _ in range(args.control_repeats)]
            control[m] = (statistics.median(ratios), *median_ci(ratios))
            print(f"  {m:11s} {control[m][0]:.3f}  (95% CI {control[m][1]:.3f}-{control[m][2]:.3f}; "
                  f"{', '.join(f'{x:.2f}' for x in ratios)})", flush=True)

    results: dict[str, dict[str, list[dict]]] = {m: {mode: [] for mode in modes} for m in models}
    headless: dict[str, list[dict]] = {m: [] for m in models}
    for mode in modes:
        app, window, ctl = build_window(mode)
        print(f"\n[{mode}] window up, training {'subprocess' if mode == 'process' else 'thread'} ready "
              f"({ctl.worker.child_info.startup_s:.1f} s to start)", flush=True)
        for r in range(args.repeats):
            for m in models:
                # alternate which of the pair runs first: a machine whose speed drifts (a shared
                # VM) then biases neither side
                if r % 2 == 0:
                    h = headless_run(make_project(m), data[m], epochs[m])
                    g = gui_run(app, window, ctl, make_project(m), epochs[m])
                else:
                    g = gui_run(app, window, ctl, make_project(m), epochs[m])
                    h = headless_run(make_project(m), data[m], epochs[m])
                headless[m].append(h)
                g["vs_headless"] = g["samples_per_s"] / h["samples_per_s"]
                results[m][mode].append(g)
                print(f"  {m:11s} run {r + 1}: headless {h['samples_per_s']:9,.0f}/s  GUI {g['samples_per_s']:9,.0f}/s  "
                      f"ratio {g['vs_headless']:.3f}  latency p95 {g['latency_p95_ms']:5.1f} ms  "
                      f"fps {g['fps']:5.1f} (snapshots {g['snapshots_per_s']:.1f}/s, "
                      f"{100 * g['views_cost']:.1f}% of the trainer's time spent on them; cores busy: "
                      f"GUI {g['gui_cores']:.2f}, trainer {g['trainer_cores']:.2f})", flush=True)
        window._close_confirmed = True
        window.close()
        app.processEvents()

    out: dict[str, dict] = {}
    print("\nmedians (targets: vs_headless >= 0.9, latency_p95_ms <= 25, fps >= 20)")
    print(f"{'model':12s} {'mode':8s} {'headless/s':>11s} {'GUI/s':>10s} {'vs_headless':>11s} {'95% CI':>13s} "
          f"{'p95 ms':>7s} {'fps':>6s} {'views cost':>10s}")
    for m in models:
        out[m] = {}
        for i, mode in enumerate(modes):
            rs = results[m][mode]
            lo, hi = median_ci([r["vs_headless"] for r in rs])
            fig = {
                "vs_headless": round(statistics.median(r["vs_headless"] for r in rs), 3),
                "vs_headless_ci95": [round(lo, 3), round(hi, 3)],
                "trainer_time_on_views": round(statistics.median(r["views_cost"] for r in rs), 4),
                "latency_p95_ms": round(statistics.median(r["latency_p95_ms"] for r in rs), 1),
                "fps": round(statistics.median(r["fps"] for r in rs), 1),
                "samples_per_s": round(statistics.median(r["samples_per_s"] for r in rs)),
                "headless_samples_per_s": round(statistics.median(h["samples_per_s"] for h in headless[m])),
            }
            print(f"{m:12s} {mode:8s} {fig['headless_samples_per_s']:11,d} {fig['samples_per_s']:10,d} "
                  f"{fig['vs_headless']:11.3f} {lo:6.3f}-{hi:6.3f} {fig['latency_p95_ms']:7.1f} {fig['fps']:6.1f} "
                  f"{100 * fig['trainer_time_on_views']:9.1f}%")
            if i == 0:
                out[m].update(fig, mode=mode)
                if m in interference:
                    out[m]["headless_with_a_busy_core"] = round(interference[m], 3)
                if m in control:
                    out[m]["headless_vs_headless"] = round(control[m][0], 3)
                    out[m]["headless_vs_headless_ci95"] = [round(control[m][1], 3), round(control[m][2], 3)]
            else:
                out[m][mode] = fig
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
