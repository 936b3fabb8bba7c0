"""Shape inference speed on a 400-node graph: full analysis vs. incremental re-analysis after one edit.

The graph is a long residual chain: blocks of Linear -> LayerNorm -> ReLU -> Linear, each closed by an
Add with a skip connection, then a Linear('auto') -> Output.  Figures are medians over repeats.

    (a) full: a fresh ShapeInference analyses the whole graph (what opening a file costs)
    (b) incremental: a warm ShapeInference re-analyses after ONE set_param (units) on a node near the
        middle (what every keystroke in the inspector costs)

Targets: incremental <= 10 ms, full <= 100 ms.  The last line is JSON for scripts.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.graph import Graph  # noqa: E402
from engine.spec import InferContext  # noqa: E402
from engine.validate import ShapeInference, analyze  # noqa: E402

N_NODES = 400
WIDTH = 32
TARGET_INCREMENTAL_MS = 10.0
TARGET_FULL_MS = 100.0


def residual_chain(n_nodes: int = N_NODES, width: int = WIDTH) -> tuple[Graph, list]:
    """Input -> [Linear -> LayerNorm -> ReLU -> Linear, + skip]* -> Linear(auto) -> Output, exactly n_nodes nodes.

    Returns the graph and the list of 'bottleneck' Linear nodes (the first Linear of each block), whose units
    can change without breaking any shape downstream.
    """
    g = Graph()
    prev = g.add_node("Input")
    g_first = g.add_node("Linear", {"units": width})
    g.connect(prev.id, g_first.id)
    prev = g_first
    bottlenecks = []
    block = 5  # Linear, LayerNorm, ReLU, Linear, Add
    n_blocks = (n_nodes - 4) // block  # Input, first Linear, last Linear, Output
    for _ in range(n_blocks):
        a = g.add_node("Linear", {"units": width})
        ln = g.add_node("LayerNorm")
        act = g.add_node("ReLU")
        b = g.add_node("Linear", {"units": width})
        add = g.add_node("Add")
        g.connect(prev.id, a.id)
        g.connect(a.id, ln.id)
        g.connect(ln.id, act.id)
        g.connect(act.id, b.id)
        g.connect(b.id, add.id)
        g.connect(prev.id, add.id)  # the skip connection
        bottlenecks.append(a)
        prev = add
    # pad with activations up to exactly n_nodes
    while len(g.nodes) < n_nodes - 2:
        r = g.add_node("ReLU")
        g.connect(prev.id, r.id)
        prev = r
    head = g.add_node("Linear", {"units": "auto"})
    out = g.add_node("Output")
    g.connect(prev.id, head.id)
    g.connect(head.id, out.id)
    assert len(g.nodes) == n_nodes, len(g.nodes)
    return g, bottlenecks


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> int:
    ctx = InferContext(input_shape=(16,), n_outputs=3, task="classification")
    graph, bottlenecks = residual_chain()

    first = analyze(graph, ctx)
    if not first.ok:
        print("benchmark graph has errors:", [str(i) for i in first.errors[:3]])
        return 1

    # (a) full analysis from scratch
    for _ in range(3):
        analyze(graph, ctx)
    full_ms = median_ms(lambda: analyze(graph, ctx), repeats=30)

    # (b) incremental: one set_param near the middle, warm ShapeInference
    target = bottlenecks[len(bottlenecks) // 2]
    inference = ShapeInference(graph, ctx)
    inference.analyze()
    values = [WIDTH + 1, WIDTH]
    state = {"k": 0}

    def one_edit():
        graph.set_param(target.id, "units", values[state["k"] % 2])
        state["k"] += 1
        return inference.analyze()

    for _ in range(3):
        one_edit()
    incremental_ms = median_ms(one_edit, repeats=100)

    # The incremental result must equal a fresh one (the cache is an optimisation, not a different answer).
    if inference.analyze() != analyze(graph, ctx):
        print("incremental analysis differs from a fresh one")
        return 1

    print(f"nodes: {len(graph.nodes)}, edges: {len(graph.edges)}")
    print(f"full analysis (fresh ShapeInference):      {full_ms:8.2f} ms  (target <= {TARGET_FULL_MS:g} ms)")
    print(f"incremental after one set_param (warm):    {incremental_ms:8.2f} ms  (target <= {TARGET_INCREMENTAL_MS:g} ms)")
    print(f"incremental / full: {incremental_ms / full_ms:.2f}")
    ok = incremental_ms <= TARGET_INCREMENTAL_MS and full_ms <= TARGET_FULL_MS
    print("targets met" if ok else "TARGET MISSED")
    print(json.dumps({"nodes": len(graph.nodes), "incremental_ms": round(incremental_ms, 3),
                      "full_ms": round(full_ms, 3)}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
