"""Editor scale benchmark: open, lay out, repaint and edit a 500-node graph offscreen.

The graph: Input -> 11 parallel branches of 45 layers (Linear / ReLU / Dropout) ->
Concat -> Dropout -> Linear(auto) -> Output = 500 nodes, 500 edges, saved with every
node at the origin so that auto-layout has real work to do.

Measures, in the real main window at 1280x800 (QT_QPA_PLATFORM=offscreen):
  open_ms          Document.open (read + data + graph) until the scene and badges are built
  layout_ms        auto-layout (one undoable command) including the scene update
  repaint_ms       median full repaint of the canvas viewport with the graph fit to view
  repaint_1x_ms    the same at 100 % zoom (full detail: text, ports, badges)
  edit_to_badge_ms median time from a parameter edit (undo-stack push) to the updated badges
The last line of output is JSON with these numbers (targets: repaint <= 16, edit_to_badge <= 30).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BRANCHES = 11
DEPTH = 45
REPEATS = 25


def build_graph():
    from engine.graph import Graph
    g = Graph()
    inp = g.add_node("Input", {}, (0, 0))
    ends = []
    cycle = [("Linear", {"units": 32}), ("ReLU", {}), ("Dropout", {"p": 0.1})]
    for b in range(BRANCHES):
        prev = inp
        for k in range(DEPTH):
            t, p = cycle[k % 3]
            n = g.add_node(t, p, (0, 0))
            g.connect(prev.id, n.id)
            prev = n
        ends.append(prev)
    cat = g.add_node("Concat", {}, (0, 0))
    for e in ends:
        g.connect(e.id, cat.id)
    drop = g.add_node("Dropout", {"p": 0.2}, (0, 0))
    g.connect(cat.id, drop.id)
    head = g.add_node("Linear", {"units": "auto"}, (0, 0))
    g.connect(drop.id, head.id)
    out = g.add_node("Output", {}, (0, 0))
    g.connect(head.id, out.id)
    # a project the editor saved has its nodes where the user (or Arrange) put them, not all at (0, 0)
    from engine.layout import layered_layout

    for nid, pos in layered_layout(g).items():
        g.move(nid, pos)
    return g


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="layerlab-bench-")
    os.environ.setdefault("LAYERLAB_CONFIG_DIR", tmp)
    os.environ.setdefault("LAYERLAB_RECOVERY_DIR", tmp)
    from engine.project import Project, save_project
    from gui import theme
    from gui.app import create_application
    from gui.commands import SetParamCommand, auto_layout
    from gui.document import Document
    from gui.main_window import MainWindow

    app = create_application(["bench"])
    theme.apply_theme("light", app, persist=False)
    graph = build_graph()
    assert len(graph.nodes) == 500, len(graph.nodes)
    path = os.path.join(tmp, "big.layerlab")
    save_project(path, Project(graph=graph, data={"source": "moons"}, name="big"))

    window = MainWindow(Document(), extensions=[], autosave=False)  # blank start (moons data loads here)
    window.resize(1280, 800)
    window.show()
    for _ in range(3):
        app.processEvents()
    doc, view, scene = window.document, window.view, window.scene
    window.code_dock.hide()  # the code view compiles on change; it is measured elsewhere

    t0 = time.perf_counter()
    doc.open(path)
    app.processEvents()
    open_ms = (time.perf_counter() - t0) * 1e3
    assert len(scene.nodes) == 500 and doc.analysis.ok, doc.analysis.issues[:3]

    t0 = time.perf_counter()
    auto_layout(doc)
    app.processEvents()
    layout_ms = (time.perf_counter() - t0) * 1e3

    view.fit_to_view()
    app.processEvents()
    vp = view.viewport()

    def repaint_median() -> float:
        vp.repaint()  # warm the item caches at this zoom
        times = []
        for _ in range(REPEATS):
            t = time.perf_counter()
            vp.repaint()
            times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times)

    fit_zoom = view.zoom()
    repaint_ms = repaint_median()
    view.set_zoom(1.0)
    app.processEvents()
    repaint_1x_ms = repaint_median()
    view.fit_to_view()
    app.processEvents()

    # edit -> badges: change the first Linear of a branch; the next Linear's parameter count changes
    first = next(n for n in doc.graph.nodes if n.type == "Linear")
    second = [n for n in doc.graph.nodes if n.type == "Linear"][1]
    item = scene.nodes[second.id]
    edits = []
    for k in range(REPEATS):
        units = 40 + k
        t = time.perf_counter()
        doc.push(SetParamCommand(doc, first.id, "units", units))
        app.processEvents()  # the document's 0 ms timer runs the analysis and updates the items
        edits.append((time.perf_counter() - t) * 1e3)
        expected = units * 32 + 32
        assert item.params_text.startswith(f"{expected / 1000:.1f}k"), (item.params_text, expected)
    edit_to_badge_ms = statistics.median(edits)

    t = time.perf_counter()
    doc.push(SetParamCommand(doc, first.id, "units", 99))
    app.processEvents()
    vp.repaint()
    edit_to_screen_ms = (time.perf_counter() - t) * 1e3

    result = {"repaint_ms": round(repaint_ms, 2), "edit_to_badge_ms": round(edit_to_badge_ms, 2),
              "open_ms": round(open_ms, 1), "layout_ms": round(layout_ms, 1),
              "repaint_1x_ms": round(repaint_1x_ms, 2), "edit_to_screen_ms": round(edit_to_screen_ms, 2),
              "fit_zoom": round(fit_zoom, 3), "nodes": len(doc.graph.nodes), "edges": len(doc.graph.edges)}
    print(f"500-node graph: open {open_ms:.0f} ms, auto-layout {layout_ms:.0f} ms, repaint (fit, zoom "
          f"{fit_zoom:.2f}) {repaint_ms:.1f} ms, repaint at 100% {repaint_1x_ms:.1f} ms, edit->badge "
          f"{edit_to_badge_ms:.1f} ms, edit->screen {edit_to_screen_ms:.1f} ms")
    window._close_confirmed = True
    window.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
