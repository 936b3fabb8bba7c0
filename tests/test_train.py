"""Tests of the headless training engine (engine/train.py and friends)."""
from __future__ import annotations

import dataclasses
import json
import math
import re
import threading
import time
import types

import pytest
import torch
import torch.fx
from safetensors.torch import load_file
from torch import nn

from engine import events, probes
from engine.errors import LayerLabError, TrainingError
from engine.optim import LeanFusedAdam, make_optimizer
from engine.policies import EarlyStopping, EpochCheckpoints
from engine.train import Trainer, choose_num_threads
from engine.train_config import LOSSES, OPTIMIZERS, SCHEDULES, TrainConfig


# ---------------------------------------------------------------- fixtures
def moons(n: int = 256, noise: float = 0.15, seed: int = 0) -> types.SimpleNamespace:
    from sklearn.datasets import make_moons

    x, y = make_moons(n, noise=noise, random_state=seed)
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.int64)
    k = n * 3 // 4
    return types.SimpleNamespace(task="classification", x_train=x[:k], y_train=y[:k],
                                 x_val=x[k:], y_val=y[k:], x_test=None, y_test=None,
                                 input_shape=(2,), n_outputs=2, to=lambda device: None)


def regression(n: int = 256, targets: int = 2) -> types.SimpleNamespace:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    w = torch.randn(3, targets, generator=g)
    y = x @ w + 0.05 * torch.randn(n, targets, generator=g)
    k = n * 3 // 4
    return types.SimpleNamespace(task="regression", x_train=x[:k], y_train=y[:k],
                                 x_val=x[k:], y_val=y[k:], x_test=None, y_test=None,
                                 input_shape=(3,), n_outputs=targets)


class Net(nn.Module):
    """Named like a compiled LayerLab graph: fc1 -> relu1 -> fc2 -> relu2 -> fc3."""

    def __init__(self, n_in: int = 2, n_out: int = 2, hidden: int = 16):
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, hidden)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(hidden, n_out)

    def forward(self, x):
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(x)))))


def graph_net(n_in: int = 2, n_out: int = 2, seed: int = 0) -> torch.fx.GraphModule:
    torch.manual_seed(seed)
    return torch.fx.symbolic_trace(Net(n_in, n_out))


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=32, lr=0.01, device="cpu", num_threads=1)
    base.update(kw)
    return TrainConfig(**base)


def train(model, data, **kw):
    t = Trainer(model, data, cfg(**kw))
    before = t.evaluate("train")["loss"]
    t.run()
    return t, before, t.evaluate("train")["loss"]


# ---------------------------------------------------------------- TrainConfig
def test_config_round_trips_through_json():
    c = TrainConfig(loss="huber", optimizer="sgd", lr=0.05, nesterov=True, schedule="step",
                    step_size=2, seed=7, checkpoint_every_epoch=True)
    d = json.loads(json.dumps(c.to_dict()))
    assert d["version"] == 2
    assert TrainConfig.from_dict(d) == c
    assert TrainConfig.from_dict({}) == TrainConfig()


@pytest.mark.parametrize("bad, words", [
    ({"lr": -1}, "'lr'"),
    ({"lr": "fast"}, "'lr'"),
    ({"loss": "hinge"}, "'loss'"),
    ({"optimizer": "lbfgs"}, "'optimizer'"),
    ({"schedule": "warm"}, "'schedule'"),
    ({"batch_size": 0}, "'batch_size'"),
    ({"batch_size": 2.5}, "'batch_size'"),
    ({"epochs": True}, "'epochs'"),
    ({"grad_clip": float("nan")}, "'grad_clip'"),
    ({"momentum": 1.0}, "'momentum'"),
    ({"device": "tpu"}, "'device'"),
    ({"amp": "fp8"}, "'amp'"),
    ({"nesterov": True, "optimizer": "adam"}, "Nesterov"),
    ({"checkpoint_dir": "/etc"}, "Unknown training setting"),
    ({"learning_rate": 0.1}, "Unknown training setting"),
    ({"version": 99}, "version 99"),
])
def test_config_rejects_bad_values_with_a_sentence(bad, words):
    with pytest.raises(TrainingError) as info:
        TrainConfig.from_dict(bad)
    assert words in str(info.value)
    assert isinstance(info.value, LayerLabError)
    assert str(info.value)[0].isupper()


def test_config_rejects_non_dict():
    with pytest.raises(TrainingError, match="JSON object"):
        TrainConfig.from_dict([1, 2])


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().lr = 1.0  # type: ignore[misc]


# ---------------------------------------------------------------- events
@pytest.mark.parametrize("event", [
    events.RunStarted("cpu", 10, 100),
    events.Progress(1, 5, 100, 0.5, 1000.0, 2.0),
    events.EpochEnd(1, {"train_loss": 0.5}),
    events.RunFinished("completed", ()),
    events.RunFailed("boom"),
])
def test_events_are_frozen_dataclasses(event):
    assert dataclasses.is_dataclass(event)
    field = dataclasses.fields(event)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, field, None)


def test_run_reports_events_with_plain_values():
    got: list = []
    snaps: list = []
    t = Trainer(graph_net(), moons(), cfg(progress_interval_s=0.0, snapshot_interval_s=1e-9),
                callbacks=[got.append], on_snapshot_due=snaps.append)
    finished = t.run()
    kinds = [type(e).__name__ for e in got]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert kinds.count("EpochEnd") == 3 and "Progress" in kinds
    start = got[0]
    assert start.device == "cpu" and start.total_steps == 3 * 6
    assert start.n_params == sum(p.numel() for p in t.model.parameters())
    prog = [e for e in got if isinstance(e, events.Progress)]
    assert all(isinstance(p.train_loss, float) and p.samples_per_s > 0 for p in prog)
    assert [p.step for p in prog] == sorted(p.step for p in prog)
    assert finished.reason == "completed" and len(finished.history) == 3
    m = t.history[-1]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
                "samples_per_s", "elapsed_s"):
        assert isinstance(m[key], float), key
    json.dumps(t.history)  # the project file stores it
    assert snaps and snaps[0] is t.model


def test_the_snapshot_hook_sees_the_gradients_of_the_step_just_taken():
    seen = []
    t = Trainer(graph_net(), moons(), cfg(snapshot_interval_s=1e-9),
                on_snapshot_due=lambda m: seen.append([p.grad is not None and bool(p.grad.abs().sum() > 0)
                                                       for p in m.parameters()]))
    t.run()
    assert len(seen) >= 3 and all(all(s) for s in seen)
    assert all(p.grad is None for p in t.model.parameters())  # freed after the hook, as every step


def test_recent_loss_is_the_mean_of_the_steps_since_the_last_call():
    readings: list[tuple[int, float | None]] = []
    box: dict = {}

    def hook(_model):
        t = box["t"]
        readings.append((t.global_step, t.recent_loss()))

    # a hook after every step; no mid-epoch report folds the kept losses away
    t = box["t"] = Trainer(graph_net(), moons(), cfg(progress_interval_s=1e9, snapshot_interval_s=1e-9),
                           on_snapshot_due=hook)
    t.run()
    assert [s for s, _ in readings] == list(range(1, 3 * 6 + 1))
    for epoch in range(3):  # 192 samples in 6 full batches: the epoch loss is the mean of its steps
        steps = [v for s, v in readings[epoch * 6:(epoch + 1) * 6]]
        assert math.isclose(sum(steps) / 6, t.history[epoch]["train_loss"], rel_tol=1e-5)
    # read twice with no step in between: the epoch's running loss, not a repeat of the last step
    assert t.recent_loss() == pytest.approx(t.history[-1]["train_loss"], rel=1e-5)


# ---------------------------------------------------------------- losses / optimisers / schedules
@pytest.mark.parametrize("loss, n_out", [("cross_entropy", 2), ("bce_with_logits", 2),
                                         ("bce_with_logits", 1), ("mse", 2)])
def test_classification_losses_decrease(loss, n_out):
    t, before, after = train(graph_net(n_out=n_out), moons(), loss=loss, epochs=4)
    assert after < before * 0.8
    assert t.history[-1]["train_accuracy"] > 0.7


@pytest.mark.parametrize("loss", ["mse", "l1", "huber"])
def test_regression_losses_decrease(loss):
    t, before, after = train(graph_net(n_in=3, n_out=2), regression(), loss=loss, epochs=4)
    assert after < before * 0.7
    assert "val_mse" in t.history[-1] and "train_mse" in t.history[-1]


@pytest.mark.parametrize("optimizer, extra", [
    ("sgd", {"lr": 0.1}), ("sgd", {"lr": 0.05, "nesterov": True}), ("adam", {}),
    ("adamw", {"weight_decay": 0.01}), ("rmsprop", {"lr": 0.003}), ("adagrad", {"lr": 0.05}),
])
def test_every_optimizer_trains(optimizer, extra):
    _, before, after = train(graph_net(), moons(), optimizer=optimizer, **extra)
    assert after < before * 0.8


def test_grad_clip_trains():
    _, before, after = train(graph_net(), moons(), grad_clip=0.5)
    assert after < before


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_runs_and_moves_the_lr(schedule):
    t, before, after = train(graph_net(), moons(), schedule=schedule, step_size=1, gamma=0.5,
                             plateau_patience=0, epochs=4, lr=0.02)
    assert after < before
    lrs = [h["lr"] for h in t.history]
    if schedule == "none":
        assert lrs == [0.02] * 4
    elif schedule == "step":
        assert lrs == pytest.approx([0.02, 0.01, 0.005, 0.0025])
    elif schedule in ("cosine", "onecycle"):
        assert lrs[-1] < lrs[0] or schedule == "onecycle"
        assert len(set(lrs)) > 1
    assert all(lr <= 0.02 + 1e-12 for lr in lrs)


def test_all_choices_are_tested():
    assert set(LOSSES) == {"cross_entropy", "bce_with_logits", "mse", "l1", "huber"}
    assert set(OPTIMIZERS) == {"sgd", "adam", "adamw", "rmsprop", "adagrad"}


def test_classification_loss_on_regression_is_refused():
    t = Trainer(graph_net(n_in=3), regression(), cfg(loss="cross_entropy"))
    with pytest.raises(TrainingError, match="regression"):
        t.run()


def test_too_few_outputs_for_the_labels_is_refused():
    data = moons()
    data.y_train = data.y_train * 2  # labels 0 and 2
    with pytest.raises(TrainingError, match="3 outputs"):
        Trainer(graph_net(), data, cfg()).run()


def test_lean_adam_is_bit_identical_to_torch_fused_adam():
    for cls, wd in ((torch.optim.Adam, 0.0), (torch.optim.AdamW, 0.01)):
        torch.manual_seed(0)
        a, b = Net(), Net()
        b.load_state_dict(a.state_dict())
        opt_a = cls(a.parameters(), lr=1e-2, weight_decay=wd, fused=True)
        opt_b = cls(b.parameters(), lr=1e-2, weight_decay=wd, fused=True)
        params_b = list(b.parameters())
        assert LeanFusedAdam.supports(opt_b, params_b)
        lean = LeanFusedAdam(opt_b, params_b, torch.zeros(()))
        x = torch.randn(64, 2)
        y = torch.randint(0, 2, (64,))
        for _ in range(20):
            for model, step in ((a, opt_a.step), (b, lean)):
                nn.functional.cross_entropy(model(x), y).backward()
                step()
                for p in model.parameters():
                    p.grad = None
        for pa, pb in zip(a.parameters(), b.parameters()):
            assert torch.equal(pa, pb)
        sa, sb = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
        for k in sa:
            for key in ("step", "exp_avg", "exp_avg_sq"):
                assert torch.equal(sa[k][key], sb[k][key])


# ---------------------------------------------------------------- reproducibility
def test_seeded_runs_are_bit_identical():
    def run(seed):
        t = Trainer(graph_net(seed=0), moons(), cfg(seed=seed, epochs=3))
        t.run()
        return [h["train_loss"] for h in t.history], t.model.state_dict()

    losses1, w1 = run(3)
    losses2, w2 = run(3)
    losses3, _ = run(4)
    assert losses1 == losses2
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert losses1 != losses3


# ---------------------------------------------------------------- run control
def _wait(cond, timeout=10.0):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out")
        time.sleep(0.002)


def test_pause_step_resume_stop_from_another_thread():
    got: list = []
    t = Trainer(graph_net(), moons(), cfg(epochs=10_000), callbacks=[got.append])
    result: dict = {}
    th = threading.Thread(target=lambda: result.setdefault("r", t.run()))
    th.start()
    try:
        _wait(lambda: t.global_step > 0 or any(isinstance(e, events.EpochEnd) for e in got))
        t.pause()
        _wait(lambda: t.is_waiting)
        s0 = t.global_step
        time.sleep(0.05)
        assert t.global_step == s0 and t.is_paused  # really paused
        for k in (1, 2):
            t.step()
            _wait(lambda: t.global_step == s0 + k and t.is_waiting)
        time.sleep(0.05)
        assert t.global_step == s0 + 2  # step() ran exactly one batch each
        t.resume()
        _wait(lambda: t.global_step > s0 + 10)
        t.request_stop()
        th.join(10)
    finally:
        t.request_stop()
        th.join(10)
    assert not th.is_alive()
    assert result["r"].reason == "stopped"
    assert isinstance(got[-1], events.RunFinished) and got[-1].reason == "stopped"
    assert t.epoch < 10_000


def test_should_stop_from_a_callback():
    t = Trainer(graph_net(), moons(), cfg(epochs=50))

    def cb(e):
        if isinstance(e, events.EpochEnd) and e.epoch == 2:
            t.should_stop = True

    t.callbacks.append(cb)
    assert t.run().reason == "stopped"
    assert len(t.history) == 2


def test_early_stopping_triggers():
    # an lr so small that the weights cannot change: the val loss never improves after epoch 1
    t = Trainer(graph_net(), moons(), cfg(optimizer="sgd", momentum=0.0, lr=1e-30, epochs=20,
                                          early_stopping_patience=2))
    finished = t.run()
    assert finished.reason == "early_stopping"
    assert len(t.history) == 3


# ---------------------------------------------------------------- non-finite losses
def test_huge_lr_names_the_step_and_the_first_nonfinite_node():
    failed: list = []
    model = graph_net()
    t = Trainer(model, moons(), cfg(optimizer="sgd", momentum=0.0, lr=1e6, epochs=20),
                callbacks=[lambda e: failed.append(e) if isinstance(e, events.RunFailed) else None])
    with pytest.raises(TrainingError) as info:
        t.run()
    msg = str(info.value)
    m = re.match(r"Loss became (NaN|infinite) at epoch (\d+), step (\d+): the output of "
                 r"'(fc1|relu1|fc2|relu2|fc3)' was the first to go non-finite\. Lower the "
                 r"learning rate or add normalisation\.$", msg)
    assert m, msg
    assert failed and failed[0].message == msg
    # the guard skipped the update of the failing step: the weights are the last good ones,
    # and re-running the failing batch with them reproduces the failure at the named node
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert t.global_step == int(m.group(3)) - 1


def test_nonfinite_weights_are_named():
    model = graph_net()
    with torch.no_grad():
        model.fc2.weight[0, 0] = float("inf")
    with pytest.raises(TrainingError, match=r"at epoch 1, step 1: the weights of 'fc2' are"):
        Trainer(model, moons(), cfg()).run()


def test_nonfinite_inputs_are_named():
    data = moons()
    data.x_train = data.x_train.clone()
    data.x_train[5:, 0] = float("nan")
    with pytest.raises(TrainingError, match="input batch itself contains NaN"):
        Trainer(graph_net(), data, cfg()).run()


def test_probe_walks_plain_modules_with_hooks():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        model[0].bias.fill_(1e38)
        model[2].weight.fill_(1e38)
    f = probes.find_first_nonfinite(model, torch.ones(4, 2))
    assert (f.where, f.name, f.kind) == ("output", "2", "infinite")
    assert probes.find_first_nonfinite(model, torch.zeros(0, 2)).where == "none"


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_round_trips_and_resumes_exactly(tmp_path):
    data = moons()
    straight = Trainer(graph_net(), data, cfg(epochs=4))
    straight.run()

    first = Trainer(graph_net(), data, cfg(epochs=4))
    first.request_stop_after = None
    first.callbacks.append(lambda e: first.request_stop()
                           if isinstance(e, events.EpochEnd) and e.epoch == 2 else None)
    first.run()
    path = first.save_checkpoint(tmp_path / "run")
    assert path.name == "run.safetensors"
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["epoch"] == 2 and meta["optimizer_steps"] == 2 * 6 and len(meta["history"]) == 2
    assert not list(tmp_path.glob("*.pt"))  # no pickle anywhere
    load_file(tmp_path / "run.optim.safetensors")

    second = Trainer(graph_net(seed=1), data, cfg(epochs=4))
    second.load_checkpoint(path)
    w1, w2 = first.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert second.epoch == 2 and second.history == first.history
    second.run()
    w_straight, w_resumed = straight.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(w_straight[k], w_resumed[k]) for k in w_straight)
    assert [h["train_loss"] for h in second.history] == [h["train_loss"] for h in straight.history]


@pytest.mark.parametrize("schedule", ["step", "onecycle", "plateau", "cosine"])
def test_checkpoint_with_schedules_loads_without_pickle(tmp_path, schedule):
    t = Trainer(graph_net(), moons(), cfg(epochs=1, schedule=schedule))
    t.run()
    t.save_checkpoint(tmp_path / "c.safetensors")
    Trainer(graph_net(), moons(), cfg(epochs=1, schedule=schedule)).load_checkpoint(tmp_path / "c")


def test_checkpoint_every_epoch_is_a_policy(tmp_path):
    policy = EpochCheckpoints(tmp_path)
    Trainer(graph_net(), moons(), cfg(epochs=2), callbacks=[policy]).run()
    assert (tmp_path / "epoch_0002.safetensors").exists()
    assert (tmp_path / "epoch_0002.json").exists()
    assert [p.name for p in policy.saved] == ["epoch_0001.safetensors", "epoch_0002.safetensors"]


def test_a_version_1_config_naming_a_checkpoint_folder_is_migrated_without_it():
    c = TrainConfig.from_dict({"version": 1, "checkpoint_dir": "/tmp/elsewhere", "checkpoint_every_epoch": True})
    assert c.checkpoint_every_epoch and "checkpoint_dir" not in c.to_dict()


def test_a_callback_can_stop_a_run_with_its_reason():
    class Goal(events.Callback):
        def __call__(self, event):
            if isinstance(event, events.EpochEnd) and event.epoch == 2:
                self.trainer.request_stop("goal_reached")

    t = Trainer(graph_net(), moons(), cfg(epochs=10), callbacks=[Goal()])
    finished = t.run()
    assert finished.reason == "goal_reached" and len(t.history) == 2


def test_early_stopping_state_survives_a_checkpoint(tmp_path):
    t = Trainer(graph_net(), moons(), cfg(epochs=3, early_stopping_patience=50))
    t.run()
    (es,) = [c for c in t.callbacks if isinstance(c, EarlyStopping)]
    t.save_checkpoint(tmp_path / "c")
    other = Trainer(graph_net(), moons(), cfg(epochs=3, early_stopping_patience=50))
    other.load_checkpoint(tmp_path / "c")
    (es2,) = [c for c in other.callbacks if isinstance(c, EarlyStopping)]
    assert (es2.best, es2.bad_epochs) == (es.best, es.bad_epochs) and math.isfinite(es.best)


def test_loading_a_checkpoint_of_another_model_is_refused(tmp_path):
    t = Trainer(graph_net(), moons(), cfg(epochs=1))
    t.save_checkpoint(tmp_path / "c")
    other = Trainer(nn.Sequential(nn.Linear(2, 2)), moons(), cfg(epochs=1))
    with pytest.raises(TrainingError, match="does not fit this model"):
        other.load_checkpoint(tmp_path / "c")


# ---------------------------------------------------------------- devices & threads
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error():
    with pytest.raises(TrainingError, match="no CUDA GPU is available"):
        Trainer(graph_net(), moons(), TrainConfig(device="cuda"))


def test_auto_device_and_threads():
    t = Trainer(graph_net(), moons(), TrainConfig(epochs=1))
    assert t.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert choose_num_threads(graph_net(), torch.zeros(32, 2)) == 1  # a tiny net: one thread
    before = torch.get_num_threads()
    Trainer(graph_net(), moons(), cfg(epochs=1, num_threads=0)).run()
    assert torch.get_num_threads() == before  # the run restores the process setting


def test_fp16_on_cpu_is_refused():
    with pytest.raises(TrainingError, match="fp16"):
        Trainer(graph_net(), moons(), TrainConfig(device="cpu", amp="fp16"))


def test_make_optimizer_uses_fused_kernels_where_available():
    params = list(Net().parameters())
    for name in ("adam", "adamw", "sgd", "adagrad"):
        opt = make_optimizer(TrainConfig(optimizer=name), params)
        assert opt.defaults.get("fused") is True, name


class Bomb(nn.Module):
    """Identity until its ``fuse``-th call, NaN from then on (a layer that 'blows up')."""

    def __init__(self, fuse: int):
        super().__init__()
        self.fuse, self.calls = fuse, 0

    def forward(self, x):
        self.calls += 1
        return x * float("nan") if self.calls >= self.fuse else x


class BombNet(Net):
    def __init__(self, fuse: int):
        super().__init__()
        self.bomb = Bomb(fuse)

    def forward(self, x):
        return self.fc3(self.bomb(self.relu2(self.fc2(self.relu1(self.fc1(x))))))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_guard_keeps_the_last_good_weights_for_every_optimizer(optimizer):
    torch.manual_seed(0)
    # forward calls: 1 = the output check at the start of run(), 2..7 = steps 1..6 (epoch 1),
    # 8 = epoch 1's validation pass, 9 = step 7, 10 = step 8: the bomb goes off at step 8
    class LeafTracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, Bomb) or super().is_leaf_module(m, qualname)

    root = BombNet(fuse=1 + 9)
    model = torch.fx.GraphModule(root, LeafTracer().trace(root))
    assert isinstance(model.get_submodule("bomb"), Bomb)
    t = Trainer(model, moons(), cfg(optimizer=optimizer, epochs=5))
    with pytest.raises(TrainingError, match=r"epoch 2, step 8: the output of 'bomb' was the first"):
        t.run()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert t.global_step == 7
    if optimizer in ("adam", "adamw"):  # the lean path's step counters skip the guarded steps
        steps = {float(s["step"]) for s in t.optimizer.state.values()}
        assert steps == {7.0}


def test_lean_adam_falls_back_when_a_parameter_gets_no_gradient():
    class Unused(Net):
        def __init__(self):
            super().__init__()
            self.spare = nn.Linear(2, 2)  # never called: its parameters get no gradient

    torch.manual_seed(0)
    t, before, after = train(Unused(), moons(), epochs=2)
    assert after < before
    assert t._opt_step._fallback is not None  # noqa: SLF001


def test_bf16_autocast_on_cpu_trains():
    t, before, after = train(graph_net(), moons(), amp="bf16", epochs=3)
    assert t.amp_dtype == torch.bfloat16
    assert after < before


def test_float64_inputs_are_cast_to_the_model_dtype():
    data = moons()
    data.x_train, data.x_val = data.x_train.double(), data.x_val.double()
    _, before, after = train(graph_net(), data)
    assert after < before


def test_a_model_with_the_wrong_output_shape_gets_a_sentence():
    model = nn.Sequential(nn.Linear(2, 4), nn.Unflatten(1, (2, 2)))
    with pytest.raises(TrainingError, match=r"output has shape \(32, 2, 2\).*Flatten"):
        Trainer(model, moons(), cfg()).run()


def test_a_model_that_cannot_take_the_input_gets_a_sentence():
    with pytest.raises(TrainingError, match="cannot process a training batch of shape"):
        Trainer(nn.Linear(5, 2), moons(), cfg()).run()


# ---------------------------------------------------------------- memory format
def test_conv_models_train_channels_last_on_cpu_and_match_the_default_layout():
    """The channels-last path (faster for conv nets on a CPU) gives the NCHW path's results up to float
    rounding: after 3 epochs every weight agrees to 1e-4 relative (documented in engine/train.py)."""
    from engine.train import choose_memory_format

    g = torch.Generator().manual_seed(0)
    data = types.SimpleNamespace(task="classification", x_train=torch.rand(256, 1, 12, 12, generator=g),
                                 y_train=torch.randint(0, 3, (256,), generator=g),
                                 x_val=torch.rand(64, 1, 12, 12, generator=g),
                                 y_val=torch.randint(0, 3, (64,), generator=g))

    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3),
                             nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 3))

    fast = Trainer(net(), data, cfg(epochs=3, lr=0.01))
    assert fast.memory_format is torch.channels_last
    assert fast.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    fast.run()
    plain = Trainer(net(), data, cfg(epochs=3, lr=0.01))
    plain.memory_format = torch.contiguous_format  # the default layout, as a plain loop trains
    plain.model.to(memory_format=torch.contiguous_format)
    plain.run()
    for (name, a), b in zip(fast.model.state_dict().items(), plain.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    assert [h["train_loss"] for h in fast.history] == pytest.approx([h["train_loss"] for h in plain.history], rel=1e-4)
    assert choose_memory_format(nn.Linear(2, 2), torch.device("cpu")) is torch.contiguous_format
