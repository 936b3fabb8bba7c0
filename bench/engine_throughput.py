"""Training throughput: LayerLab's Trainer against a plain PyTorch loop and PyTorch Lightning.

    python bench/engine_throughput.py [--quick] [--repeats N]

Every trainer gets the same data, the same freshly seeded model, the same batch size, the same
optimiser algorithm (Adam, lr 1e-3), the same loss (cross-entropy) and the same number of
epochs; each timed run is a full training run (forward, backward, optimiser step) measured
from an untrained model to a trained one.  A warm-up run per trainer is excluded, the order of
trainers rotates between repeats, and the median of the repeats is reported.  LayerLab also
computes its per-epoch metrics (train loss/accuracy and a validation pass) inside its timed
run; the others compute nothing extra.  After each run the model is scored outside the timer
(the "final loss" column), to show that every trainer really trained the same way.

Threads: the CPU thread count LayerLab's Trainer would choose for the model
(``engine.train.choose_num_threads``) is applied process-wide, to every trainer alike (and to
scikit-learn's BLAS through threadpoolctl); it is printed with each table.

The last line of output is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from bench._models import Workload, workloads  # noqa: E402
from engine.train import TrainConfig, Trainer, choose_num_threads  # noqa: E402

LR = 1e-3


# ---------------------------------------------------------------- the trainers
def run_layerlab(w: Workload, model: nn.Module, epochs: int, threads: int) -> None:
    config = TrainConfig(loss="cross_entropy", optimizer="adam", lr=LR, batch_size=w.batch_size,
                         epochs=epochs, seed=0, device="cpu", num_threads=threads)
    Trainer(model, w.dataset(), config).run()


def run_plain(w: Workload, model: nn.Module, epochs: int, threads: int) -> None:
    """A good hand-written loop: index batching (no DataLoader), no .item() per step."""
    x, y, bs = w.x, w.y, w.batch_size
    n = len(x)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        running = torch.zeros(())
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += loss.detach()
        running.item()  # the epoch's report


def run_lightning(w: Workload, model: nn.Module, epochs: int, threads: int) -> None:
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    class Module(L.LightningModule):
        def __init__(self, net: nn.Module):
            super().__init__()
            self.net = net

        def training_step(self, batch, batch_idx):  # noqa: ANN001
            xb, yb = batch
            return F.cross_entropy(self.net(xb), yb)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=LR)

    loader = DataLoader(TensorDataset(w.x, w.y), batch_size=w.batch_size, shuffle=True)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1,
                        enable_progress_bar=False, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(Module(model), loader)


def run_sklearn(w: Workload, model: nn.Module, epochs: int, threads: int) -> None:
    """Reference only: scikit-learn's MLPClassifier (its own numpy MLP, same sizes, Adam, lr, batch)."""
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    hidden = tuple(m.out_features for m in model if isinstance(m, nn.Linear))[:-1]
    clf = MLPClassifier(hidden_layer_sizes=hidden, solver="adam", learning_rate_init=LR,
                        batch_size=w.batch_size, max_iter=epochs, tol=0.0,
                        n_iter_no_change=epochs + 1, shuffle=True, random_state=0)
    with threadpool_limits(threads):
        clf.fit(w.x.numpy(), w.y.numpy())


TRAINERS = {"layerlab": run_layerlab, "plain": run_plain, "lightning": run_lightning,
            "sklearn": run_sklearn}


def final_loss(w: Workload, model: nn.Module) -> float:
    model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(model(w.x), w.y))


# ---------------------------------------------------------------- the CPU's roof
def matmul_roof_gflops(threads: int, n: int = 1024, repeats: int = 5) -> float:
    """GFLOP/s of a float32 n x n matmul on ``threads`` threads: what this CPU can do at best."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def training_flops_per_sample(w: Workload) -> float:
    """Forward FLOPs of one sample times 3 (forward, and a backward of about twice the forward)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = w.model().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(w.x[:16])
    return 3 * counter.get_total_flops() / 16


# ---------------------------------------------------------------- measurement
def measure(w: Workload, name: str, epochs: int, threads: int) -> tuple[float, float]:
    """(samples/s, final training loss) of one full run from a fresh model."""
    model = w.model()
    t0 = time.perf_counter()
    TRAINERS[name](w, model, epochs, threads)
    dt = time.perf_counter() - t0
    loss = final_loss(w, model) if name != "sklearn" else float("nan")
    return len(w.x) * epochs / dt, loss


def quiet() -> None:
    """Silence Lightning's banners and warnings (they would bury the tables)."""
    warnings.filterwarnings("ignore")
    import lightning  # noqa: F401  (creates its loggers)

    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("lightning", "pytorch_lightning")):
            logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run (fewer epochs and repeats)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per trainer")
    ap.add_argument("--no-sklearn", action="store_true", help="skip the scikit-learn reference")
    args = ap.parse_args(argv)
    quiet()
    repeats = args.repeats or (3 if args.quick else 5)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores, CUDA: "
          f"{torch.cuda.is_available()} (all trainers run on CPU); repeats={repeats}, "
          f"{'quick' if args.quick else 'full'} run")
    summary: dict[str, dict[str, float]] = {}
    for w in workloads():
        epochs = max(2, w.epochs // 6) if args.quick else w.epochs
        names = ["layerlab", "plain", "lightning"]
        if w.is_mlp and not args.no_sklearn:
            names.append("sklearn")
        model = w.model()
        threads = choose_num_threads(model, w.x[: w.batch_size])
        torch.set_num_threads(threads)  # process-wide: the same for every trainer
        for name in names:  # warm-up, excluded
            measure(w, name, 1, threads)
        results: dict[str, list[float]] = {n: [] for n in names}
        losses: dict[str, list[float]] = {n: [] for n in names}
        for r in range(repeats):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                sps, loss = measure(w, name, epochs, threads)
                results[name].append(sps)
                losses[name].append(loss)
        med = {n: statistics.median(v) for n, v in results.items()}
        roof = matmul_roof_gflops(threads)
        flops = training_flops_per_sample(w)
        share = {n: med[n] * flops / 1e9 / roof for n in names}
        print(f"\n{w.name}: {len(w.x)} samples, batch {w.batch_size}, {epochs} epochs, "
              f"{sum(p.numel() for p in model.parameters())} params, torch threads = {threads}, "
              f"{flops / 1e6:.2f} MFLOP per training sample; matmul roof {roof:.1f} GFLOP/s")
        print(f"  {'trainer':<10} {'samples/s':>11} {'min':>9} {'max':>9} {'vs plain':>9} "
              f"{'final loss':>11} {'roof share':>11}")
        for n in names:
            fl = statistics.median(losses[n])
            fl_s = f"{fl:11.4f}" if fl == fl else f"{'-':>11}"
            print(f"  {n:<10} {med[n]:11.0f} {min(results[n]):9.0f} {max(results[n]):9.0f} "
                  f"{med[n] / med['plain']:8.2f}x {fl_s} {100 * share[n]:10.1f}%")
        entry = {"layerlab": round(med["layerlab"], 1), "plain": round(med["plain"], 1),
                 "lightning": round(med["lightning"], 1),
                 "vs_plain": round(med["layerlab"] / med["plain"], 3),
                 "vs_lightning": round(med["layerlab"] / med["lightning"], 3)}
        if "sklearn" in med:
            entry["sklearn"] = round(med["sklearn"], 1)
        entry["threads"] = threads
        entry["roof_share"] = {n: round(share[n], 4) for n in ("layerlab", "plain")}
        summary[w.name] = entry
    print()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
