"""The benchmark workloads: datasets and models shared by every trainer in a comparison.

Each workload builds a fresh model with a fixed seed, so every trainer starts from the same
weights, and gives the same tensors to every trainer.
"""
from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


@dataclass(frozen=True)
class Workload:
    name: str
    x: torch.Tensor  # (N, *input_shape) float32 - the training set for every trainer
    y: torch.Tensor  # (N,) int64
    batch_size: int
    epochs: int  # full run; --quick scales it down
    make_model: Callable[[], nn.Module]
    is_mlp: bool

    def model(self) -> nn.Module:
        torch.manual_seed(0)
        return self.make_model()

    def dataset(self) -> types.SimpleNamespace:
        """The LayerLab dataset: trains on all of ``x`` (like the other trainers) and also
        scores a 20% validation slice every epoch - extra work the other trainers do not do."""
        n_val = len(self.x) // 5
        return types.SimpleNamespace(
            task="classification", x_train=self.x, y_train=self.y,
            x_val=self.x[:n_val], y_val=self.y[:n_val], x_test=None, y_test=None,
            input_shape=tuple(self.x.shape[1:]), n_outputs=int(self.y.max()) + 1,
        )


def _mlp(sizes: tuple[int, ...]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)
    return build


def _small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, 10),
    )


def _seed_cnn() -> nn.Module:
    """The seeds' tutorial network on 28x28 images: Conv2d 32 3x3 -> ReLU -> MaxPool -> Flatten -> Linear 10."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 14 * 14, 10),
    )


def _mlp784() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


def workloads() -> list[Workload]:
    from sklearn.datasets import load_digits, make_moons

    xm, ym = make_moons(2000, noise=0.2, random_state=0)
    moons_x = torch.tensor(xm, dtype=torch.float32)
    moons_y = torch.tensor(ym, dtype=torch.int64)
    digits = load_digits()
    digits_x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    digits_y = torch.tensor(digits.target, dtype=torch.int64)
    from engine.data import load_dataset

    fashion = load_dataset({"source": "fashion_mnist", "val_fraction": 0.0, "test_fraction": 0.0,
                            "standardize": False})
    fashion_x, fashion_y = fashion.x_train[:6000].contiguous(), fashion.y_train[:6000].contiguous()
    return [
        Workload("moons_mlp", moons_x, moons_y, 32, 30, _mlp((2, 64, 64, 2)), True),
        Workload("digits_mlp", digits_x, digits_y, 32, 30, _mlp((64, 64, 64, 10)), True),
        Workload("small_cnn", digits_x.reshape(-1, 1, 8, 8).contiguous(), digits_y, 64, 20,
                 _small_cnn, False),
        Workload("cnn28_fashion", fashion_x, fashion_y, 64, 3, _seed_cnn, False),
        Workload("mlp784_fashion", fashion_x, fashion_y, 64, 10, _mlp784, False),
    ]
