"""Small models of the kinds users bring, for the graph tests and bench_record/bench_align.

A ResNet of BasicBlocks (batch norm, residual adds; optionally GELU after the add), an
Inception-like concatenation, a tiny TransformerEncoder (batch first or not), an MLP with
``F.relu`` in ``forward``, and models returning a dict or ``(features, logits)``. Each
reads digits-sized inputs ``(B, 1, 8, 8)`` and outputs 10 logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1, act: str = "relu"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act2 = nn.GELU(approximate="tanh") if act == "gelu" else nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.act2(out)


class ResNet(nn.Module):
    def __init__(self, act: str = "relu", width: int = 8, blocks=((1, 1), (2, 2)), in_ch: int = 1,
                 classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(in_ch, width, 3, padding=1)
        layers, c = [], width
        for mult, stride in blocks:
            layers.append(BasicBlock(c, width * mult, stride, act))
            c = width * mult
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = self.blocks(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def resnet18(classes: int = 1000) -> nn.Module:
    """A ResNet-18-shaped network for 32x32 inputs: 4 stages of 2 BasicBlocks, 64..512 wide."""
    blocks = [(1, 1), (1, 1), (2, 2), (2, 1), (4, 2), (4, 1), (8, 2), (8, 1)]
    return ResNet(width=64, blocks=blocks, in_ch=3, classes=classes)


class Inception(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 4, 1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(8 * 64, 10)

    def forward(self, x):
        return self.head(torch.cat([self.a(x), self.b(x)], dim=1).flatten(1))


class Tiny(nn.Module):
    """The image's 8 rows are 8 tokens of 8 pixels; two encoder layers; mean over tokens."""

    def __init__(self, batch_first: bool = True):
        super().__init__()
        self.batch_first = batch_first
        self.embed = nn.Linear(8, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        h = self.embed(x.reshape(x.shape[0], 8, 8))
        if not self.batch_first:
            h = h.transpose(0, 1)  # (T, B, D)
        h = self.encoder(h)
        return self.head(h.mean(dim=1 if self.batch_first else 0))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class DictOut(MLP):
    def forward(self, x):
        h = F.relu(self.fc1(x.flatten(1)))
        return {"features": h, "logits": self.fc2(h)}


class TupleOut(MLP):
    def forward(self, x):
        h = F.relu(self.fc1(x.flatten(1)))
        return h, self.fc2(h)


def _encoder_graph(prefix: str, first: str) -> dict[str, tuple[str, ...]]:
    g, x = {}, first
    for i in range(2):
        p = f"{prefix}.layers.{i}"
        g.update({
            f"{p}.self_attn": (x,), f"{p}.add": (x, f"{p}.self_attn"), f"{p}.norm1": (f"{p}.add",),
            f"{p}.linear1": (f"{p}.norm1",), f"{p}.relu": (f"{p}.linear1",),
            f"{p}.linear2": (f"{p}.relu",), f"{p}.add_1": (f"{p}.norm1", f"{p}.linear2"),
            f"{p}.norm2": (f"{p}.add_1",)})
        x = f"{p}.norm2"
    return g


def _block_graph(p: str, x: str, down: bool) -> dict[str, tuple[str, ...]]:
    g = {f"{p}.down.0": (x,), f"{p}.down.1": (f"{p}.down.0",)} if down else {}  # runs first
    g.update({f"{p}.conv1": (x,), f"{p}.bn1": (f"{p}.conv1",), f"{p}.relu": (f"{p}.bn1",),
              f"{p}.conv2": (f"{p}.relu",), f"{p}.bn2": (f"{p}.conv2",)})
    g.update({f"{p}.add": (f"{p}.bn2", f"{p}.down.1" if down else x), f"{p}.act2": (f"{p}.add",)})
    return g


_MLP_GRAPH = {"input": (), "fc1": ("input",), "relu": ("fc1",), "fc2": ("relu",), "softmax": ("fc2",)}

#: name -> (constructor, output=, the graph every recorded layer's inputs should form).
MODELS = {
    "resnet": (lambda: ResNet(), None, {
        "input": (), "stem": ("input",), "relu": ("stem",),
        **_block_graph("blocks.0", "relu", False), **_block_graph("blocks.1", "blocks.0.act2", True),
        "pool": ("blocks.1.act2",), "fc": ("pool",), "softmax": ("fc",)}),
    "resnet-gelu": (lambda: ResNet("gelu"), None, {
        "input": (), "stem": ("input",), "relu": ("stem",),
        **_block_graph("blocks.0", "relu", False), **_block_graph("blocks.1", "blocks.0.act2", True),
        "pool": ("blocks.1.act2",), "fc": ("pool",), "softmax": ("fc",)}),
    "inception": (Inception, None, {
        "input": (), "a.0": ("input",), "a.1": ("a.0",), "b.0": ("input",), "b.1": ("b.0",),
        "cat": ("a.1", "b.1"), "head": ("cat",), "softmax": ("head",)}),
    "transformer": (lambda: Tiny(True), None, {
        "input": (), "embed": ("input",), **_encoder_graph("encoder", "embed"),
        "mean": ("encoder.layers.1.norm2",), "head": ("mean",), "softmax": ("head",)}),
    "transformer-seq-first": (lambda: Tiny(False), None, {
        "input": (), "embed": ("input",), **_encoder_graph("encoder", "embed"),
        "mean": ("encoder.layers.1.norm2",), "head": ("mean",), "softmax": ("head",)}),
    "mlp": (MLP, None, _MLP_GRAPH),
    "dict": (DictOut, lambda out: out["logits"], _MLP_GRAPH),
    "features-logits": (TupleOut, lambda out: out[1], _MLP_GRAPH),
}
