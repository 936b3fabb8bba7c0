"""model.py: the graph as a standalone, readable ``nn.Module`` class.

Not ``GraphModule.code`` (``; x = None`` noise, ``getattr(self, "0")``, no ``__init__``): an
``__init__`` that declares each layer with its parameters (every spec prints its own constructor)
and a ``forward`` that reads like hand-written code with the user's layer names, one line per
node, its output shape in a comment.  LayerLab's own layer classes the model uses (Reshape,
Recurrent...) are copied into the file, so it needs nothing but PyTorch.

The ``__init__`` creates the layers in the graph's topological order, the order
``engine.compile`` builds them in: ``torch.manual_seed(s); Model()`` gives the very weights a
LayerLab run seeded with ``s`` starts from.  State-dict names are the graph's too.
"""
from __future__ import annotations

import inspect
import keyword
import re
import textwrap
from dataclasses import dataclass

from engine.layers import REGISTRY, modules
from engine.spec import fmt_shape

#: LayerLab classes a model.py may need, in dependency order
OWN_CLASSES = ("Reshape", "TokenEmbedding", "Recurrent", "SelfAttention")
_TAKEN = {"self", "torch", "nn", "F", "super", "INPUT_SHAPE", "CLASS_NAMES"}


@dataclass(frozen=True)
class ModelSource:
    text: str
    class_name: str
    input_name: str


def class_name_for(title: str) -> str:
    """'moons MLP (v2)' -> 'MoonsMLPV2': a CamelCase identifier for the model class."""
    words = re.findall(r"[A-Za-z0-9]+", title or "")
    name = "".join(w[:1].upper() + w[1:] for w in words)
    if not name or name[0].isdigit():
        name = "Model" + name
    return name if not keyword.iskeyword(name) and name not in OWN_CLASSES else name + "Model"


def _var(name: str) -> str:
    return name + "_" if name in _TAKEN else name


def _own_class_sources(used: set[str]) -> list[str]:
    return [inspect.getsource(getattr(modules, c)).rstrip() for c in OWN_CLASSES if c in used]


@dataclass(frozen=True)
class ModelClass:
    """The model's class (and the LayerLab classes it needs), without a file's header and imports."""
    text: str
    class_name: str
    input_name: str
    uses_functional: bool  # its forward calls ``F.``: the file must import torch.nn.functional as F


def model_class(graph, compiled, class_name: str) -> ModelClass:
    """``graph`` as ``compiled`` (a CompiledModel of it) written as an ``nn.Module`` class."""
    analysis = compiled.analysis
    root = compiled.module
    in_edges: dict[str, list] = {}
    for e in graph.edges:
        in_edges.setdefault(e.dst, []).append(e)
    init_lines, forward_lines, used_own, uses_functional = [], [], set(), False
    input_name, result = "x", None
    for nid in analysis.order:
        node = graph.node(nid)
        spec = REGISTRY.get(node.type)
        info = analysis.nodes[nid]
        inputs = [_var(graph.node(e.src).name) for e in in_edges.get(nid, [])]
        if node.type == "Input":
            input_name = _var(node.name)
            continue
        if node.type == "Output":
            result = inputs[0]
            continue
        expr = spec.call_source(node.params, inputs) if spec.call_source else None
        if expr is None:  # a module: declared in __init__, called in forward
            module = getattr(root, node.name)
            ctor = spec.module_source(module)
            used_own.update(c for c in OWN_CLASSES if ctor.startswith(c + "("))
            init_lines.append(f"        self.{node.name} = {ctor}")
            expr = f"self.{node.name}({', '.join(inputs)})"
        uses_functional = uses_functional or "F." in expr
        shape = "(batch, " + fmt_shape(info.shape)[1:] if info.shape else ""
        forward_lines.append(f"        {_var(node.name)} = {expr}" + (f"  # {shape}" if shape else ""))
    body = [
        f"class {class_name}(nn.Module):",
        f'    """{_layer_summary(graph, analysis)}"""',
        "",
        "    def __init__(self):",
        "        super().__init__()",
        *(init_lines or ["        pass"]),
        "",
        f"    def forward(self, {input_name}: torch.Tensor) -> torch.Tensor:",
        *forward_lines,
        f"        return {result or input_name}",
    ]
    text = "\n\n\n".join(_own_class_sources(used_own) + ["\n".join(body)])
    return ModelClass(text, class_name, input_name, uses_functional)


def imports(uses_functional: bool) -> list[str]:
    """What a file holding a ``model_class`` imports."""
    return ["import torch", *(["import torch.nn.functional as F"] if uses_functional else []), "from torch import nn"]


def model_source(graph, compiled, metadata: dict, class_name: str | None = None) -> ModelSource:
    """The source of model.py for ``graph`` as ``compiled`` (a CompiledModel of it)."""
    name = class_name or class_name_for(metadata.get("project", "Model"))
    cls = model_class(graph, compiled, name)
    in_shape = tuple(metadata["input_shape"])
    classes = metadata.get("class_names") or []
    out_doc = ("one logit per class of CLASS_NAMES" if metadata.get("task") == "classification"
               else "the predicted targets")
    header = [
        f'"""{metadata.get("project", "Model")}: a PyTorch model exported from LayerLab '
        f'{metadata.get("layerlab_version", "")}.',
        "",
        "It needs PyTorch alone.  Load the exported weights with",
        "",
        "    from safetensors.torch import load_file",
        f"    model = {name}()",
        '    model.load_state_dict(load_file("weights.safetensors"))',
        "",
        *_input_lines(in_shape, metadata.get("preprocessing")),
        f"Output: {out_doc}.",
        '"""',
        "from __future__ import annotations",
        "",
        *imports(cls.uses_functional),
        "",
        f"INPUT_SHAPE = {in_shape!r}",
        f"CLASS_NAMES = {classes!r}",
    ]
    return ModelSource("\n".join(header) + "\n\n\n" + cls.text + "\n", name, cls.input_name)


def _input_lines(in_shape, preprocessing: dict | None) -> list[str]:
    """What the model takes and how a raw input becomes it, for model.py's docstring (the numbers are
    in data.py and layerlab.json)."""
    shape = f"(batch, {', '.join(map(str, in_shape))})"
    if not preprocessing:
        return [f"Input: a batch of shape {shape}, prepared as data.py does."]
    text = (f"Input: a batch of shape {shape} prepared from raw inputs ({preprocessing['raw_input']}): "
            f"{preprocessing['formula']}.  data.preprocess(raw) does it; layerlab.json lists the steps "
            "with their numbers (metadata.preprocessing).")
    return textwrap.wrap(text.replace("\\", "/").replace('"', "'"), 100)  # inside the module's docstring


def _layer_summary(graph, analysis) -> str:
    n = sum(1 for nid in analysis.order if graph.node(nid).type not in ("Input", "Output"))
    return f"{n} layers, {analysis.total_params:,} parameters (the LayerLab graph, layer for layer)."
