"""An ``nn.Module`` -> a LayerLab graph and its weights, through a ``torch.fx`` trace.

* ``call_module`` nodes become catalog layers, their params read back by the specs' inverses
  (``LayerSpec.params_from_module``); the layer is taken only if rebuilding it from those params
  gives the very same module (same ``repr``, same weight shapes), else it becomes a Custom node
  for its torch.nn class (allow-listed, with literal constructor arguments), else the import is
  refused with a sentence naming the module;
* ``operator.add`` / ``torch.cat`` (and ``*``) between tensors become Add / Concat (/ Multiply)
  nodes, ``a + b + c`` one Add with three inputs; functional activations (``F.relu``,
  ``F.leaky_relu``...), pools (``F.max_pool2d``...), ``F.dropout`` and ``torch.flatten(x, 1)`` /
  ``x.view(x.size(0), -1)`` become their catalog layers (a call as the module it computes, so
  ``F.gelu(x, approximate="tanh")``, which the GELU layer lacks, stays a Custom node);
* any other allow-listed operation becomes a Custom node that names it, with its literal arguments
  (see engine/layers/custom.py); an operation outside the list is refused, naming its line;
* untraceable code (an ``if`` on tensor values...) is refused with a sentence naming the line.

The result is checked: the compiled graph, with the imported weights, must compute what the
module computes (``ImportedGraph.max_abs_diff``).
"""
from __future__ import annotations

import contextlib
import io
import linecache
import operator
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

from engine.errors import LayerLabError
from engine.graph import Graph, to_identifier
from engine.layers import REGISTRY
from engine.layers.allowlist import FUNCTION_OPS, resolve
from engine.layers.custom import encode_arg
from engine.spec import InferContext, coerce_json

#: LayerLab's own layer classes (engine/layers/modules.py, or their copies in an exported model.py):
#: traced as one layer each, not through
OWN_CLASSES = ("Reshape", "TokenEmbedding", "Recurrent", "SelfAttention")
#: names a variable in a forward() is often given; not worth keeping as a layer name
_GENERIC_NAMES = {"x", "y", "z", "h", "out", "output", "result", "res", "inp", "input", "tmp", "t"}
TOLERANCE = 1e-4


class ImportRefused(LayerLabError):
    """The file cannot become a LayerLab graph; the sentence says why and, where possible, how to fix it."""

    kind = "file"


class NeedsInputShape(ImportRefused):
    """The import needs the shape of one input sample (the file does not say it, or the model does
    not run on the one it says); ``fix`` words it for the command line, the GUI asks in its form."""


class NeedsClassName(ImportRefused):
    """A .py file's model class is not clear (several, or not the one named): ``fix`` words it for
    the command line, the GUI asks in its form."""


class WeightsWithoutModel(ImportRefused):
    """The file holds weights (a state dict) but not the network they belong to: they come in with
    that network's .py file (``--weights``, or the import form's Weights)."""


@dataclass
class ImportedGraph:
    graph: Graph
    weights: dict  # state dict of the compiled graph (node names as module names)
    input_shape: tuple
    output_shape: tuple
    max_abs_diff: float = 0.0


# ----------------------------------------------------------------------------- tracing
def _tracer():
    from torch import fx

    class LayerTracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            if type(m).__name__ in OWN_CLASSES:
                return True
            return super().is_leaf_module(m, qualname)

    tracer = LayerTracer()
    tracer.record_stack_traces = True
    return tracer


def where_in_source(frames, source_file: str | None) -> str:
    """'model.py line 12 (`if x.sum() > 0:`)' for the innermost frame in the user's file."""
    chosen = None
    for filename, lineno in frames:
        if source_file and Path(filename).resolve() == Path(source_file).resolve():
            chosen = (filename, lineno)
        elif not source_file and "/torch/" not in filename.replace("\\", "/") and not filename.startswith("<"):
            chosen = chosen or (filename, lineno)
    if chosen is None:
        return "forward()"
    filename, lineno = chosen
    code = linecache.getline(filename, lineno).strip()
    return f"{Path(filename).name} line {lineno}" + (f" (`{code}`)" if code else "")


def _node_frames(node) -> list[tuple[str, int]]:
    return [(f, int(n)) for f, n in re.findall(r'File "([^"]+)", line (\d+)', node.stack_trace or "")]


def _user_frame(node) -> tuple[str, int] | None:
    """The innermost line of the model's own code that made this fx node."""
    frames = [f for f in _node_frames(node) if "/torch/" not in f[0].replace("\\", "/") and not f[0].startswith("<")]
    return frames[-1] if frames else None


def trace(module, source_file: str | None = None):
    """A GraphModule of ``module``, or ImportRefused naming the line fx cannot follow."""
    from torch import fx

    tracer = _tracer()
    try:
        graph = tracer.trace(module)
    except Exception as exc:
        frames = [(f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__)]
        where = where_in_source(frames, source_file)
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "control flow" in text or "iteration" in text or "bool" in text.lower():
            raise ImportRefused(
                f"{where} decides what to compute from the values of a tensor (data-dependent control flow), "
                "which torch.fx cannot trace into a graph.",
                fix="compute both branches and combine them with torch.where, or move the decision out of forward()"
            ) from None
        raise ImportRefused(f"{where} cannot be traced into a graph: {text}.") from None
    return fx.GraphModule(tracer.root, graph)


# ----------------------------------------------------------------------------- conversion
def _function_names() -> dict[int, str]:
    out = {}
    for name in FUNCTION_OPS:
        if not name.startswith("Tensor."):
            out[id(resolve(name))] = name
    return out


def _same_module(a, b, inplace_ok: bool = False) -> bool:
    """Same constructor arguments (repr without the class name: TokenEmbedding stands in for
    nn.Embedding) and the same weight names and shapes.  ``kernel_size=(2, 2)`` counts as
    ``kernel_size=2`` (the layers keep square sizes as one number); with ``inplace_ok`` (nothing
    else reads the input, so overwriting it changes nothing) ``inplace`` is left out."""
    def body(m):
        text = repr(m)
        text = text[text.index("("):] if "(" in text else text
        text = re.sub(r"=[(\[](-?\d+), \1[)\]]", r"=\1", text)
        return re.sub(r"(, )?inplace=(True|False)", "", text).replace("(, ", "(") if inplace_ok else text

    return body(a) == body(b) and {k: tuple(v.shape) for k, v in a.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in b.state_dict().items()}


def catalog_layer(module, in_shapes, ctx: InferContext, inplace_ok: bool = False) -> tuple[str, dict] | None:
    """(layer type, params) of the layer that IS ``module``: a catalog type where one describes it
    (Custom, which the registry lists last, only for the rest), or None.  ``inplace_ok``: an
    in-place module counts as its plain layer (see ``_same_module``)."""
    import torch
    from torch import nn

    cls = type(module)
    for spec in REGISTRY:
        if spec.params_from_module is None or not any(
                (t.startswith("nn.") and getattr(nn, t[3:], None) is cls) or t == cls.__name__ for t in spec.module_types):
            continue
        params = spec.params_from_module(module)
        if params is None:
            continue
        try:
            params = spec.coerce_params(params)
            with torch.device("meta"):
                rebuilt = spec.build(params, in_shapes, ctx)
        except Exception:
            continue
        if _same_module(rebuilt, module, inplace_ok):
            return spec.type, params
    return None


#: returned by _Converter.as_layer when the call was folded into an existing node
_FOLDED = object()

_NEEDED = object()
#: functional calls that compute what a torch.nn module computes: the module's class and the call's
#: arguments after the input, in order, with their defaults.  The module they describe becomes a
#: layer as a module in the model would (``catalog_layer``), so the specs' inverses decide the params
_AS_MODULE = {
    "F.leaky_relu": ("LeakyReLU", {"negative_slope": 0.01, "inplace": False}),
    "F.gelu": ("GELU", {"approximate": "none"}),
    "F.silu": ("SiLU", {"inplace": False}),
    "F.max_pool2d": ("MaxPool2d", {"kernel_size": _NEEDED, "stride": None, "padding": 0, "dilation": 1,
                                   "ceil_mode": False, "return_indices": False}),
    "F.avg_pool2d": ("AvgPool2d", {"kernel_size": _NEEDED, "stride": None, "padding": 0, "ceil_mode": False,
                                   "count_include_pad": True, "divisor_override": None}),
    "F.adaptive_avg_pool2d": ("AdaptiveAvgPool2d", {"output_size": _NEEDED}),
    "F.dropout": ("Dropout", {"p": 0.5, "training": True, "inplace": False}),
    "torch.flatten": ("Flatten", {"start_dim": 0, "end_dim": -1}),
    "Tensor.flatten": ("Flatten", {"start_dim": 0, "end_dim": -1}),
}


def bind_call(signature: dict, args, kwargs) -> dict | None:
    """A call's arguments by name (defaults filled in), or None if they do not fit ``signature``."""
    if len(args) > len(signature) or any(k not in signature for k in kwargs):
        return None
    bound = dict(signature) | dict(zip(signature, args))
    for k, v in kwargs.items():
        if k in list(signature)[:len(args)]:
            return None  # given twice: not a call that ran
        bound[k] = v
    return None if _NEEDED in bound.values() else bound


class _Converter:
    def __init__(self, gm, input_shape, ctx: InferContext, source_file: str | None):
        self.gm, self.ctx, self.source_file = gm, ctx, source_file
        self.graph = Graph()
        self.value: dict = {}  # fx node -> graph node id producing it
        self.batch: set = set()  # fx nodes that hold the batch size (x.size(0), x.shape[0])
        self.shape_of: set = set()  # fx nodes that hold x.shape
        self.weights: dict = {}
        self.functions = _function_names()
        self.input_shape = tuple(input_shape)
        self.last_on_line = {}
        for node in gm.graph.nodes:
            frame = _user_frame(node)
            if frame is not None:
                self.last_on_line[frame] = node

    # -- helpers
    def where(self, node) -> str:
        return where_in_source(_node_frames(node), self.source_file)

    def refuse(self, node, what: str, fix: str | None = None):
        raise ImportRefused(f"{self.where(node)}: {what}", fix)

    def shape(self, node) -> tuple:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            self.refuse(node, "this value is not a single tensor, and LayerLab layers pass tensors.")
        return tuple(int(s) for s in meta.shape[1:])

    def name_for(self, node, layer_type: str) -> str:
        if node.op == "call_module":
            return self.graph.unique_name(to_identifier(str(node.target).replace(".", "_")))
        if node.op == "placeholder":
            return self.graph.unique_name(node.name)
        # `add1 = fc3 + relu1`: the variable names the last operation of its line
        frame = _user_frame(node)
        if frame is not None and self.last_on_line.get(frame) is node:
            m = re.match(r"([A-Za-z_]\w*)\s*=(?!=)", linecache.getline(*frame).strip())
            if m and m.group(1) not in _GENERIC_NAMES and self.graph.node_by_name(to_identifier(m.group(1))) is None:
                return to_identifier(m.group(1))
        return self.graph.unique_name(f"{REGISTRY.get(layer_type).prefix}1")

    def add(self, node, layer_type: str, params: dict, inputs: list) -> str:
        gnode = self.graph.add_node(layer_type, params, name=self.name_for(node, layer_type))
        for src in inputs:
            self.graph.connect(self.value[src], gnode.id)
        self.value[node] = gnode.id
        return gnode.id

    def tensor_inputs(self, node, args) -> list:
        from torch import fx

        out = []
        for a in args:
            if not isinstance(a, fx.Node):
                break
            if a not in self.value:
                self.refuse(node, "uses a value LayerLab cannot represent as a layer's output "
                                  "(a shape, a parameter or a non-tensor result).")
            out.append(a)
        return out

    # -- the walk
    def run(self) -> None:
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise ImportRefused(f"forward() takes {len(placeholders)} inputs; a LayerLab model takes exactly one tensor.")
        for node in self.gm.graph.nodes:
            getattr(self, f"on_{node.op}")(node)

    def on_placeholder(self, node) -> None:
        gnode = self.graph.add_node("Input", name=self.name_for(node, "Input"))
        self.value[node] = gnode.id

    def on_get_attr(self, node) -> None:
        self.refuse(node, f"forward() uses the tensor self.{node.target} directly; LayerLab layers own their "
                          "weights, so this cannot become a graph.", "wrap that computation in an nn.Module layer")

    def on_output(self, node) -> None:
        from torch import fx

        result = node.args[0]
        if not isinstance(result, fx.Node) or result not in self.value:
            raise ImportRefused("forward() must return one tensor; this model returns several values or a structure.")
        out = self.graph.add_node("Output")
        self.graph.connect(self.value[result], out.id)

    def on_call_module(self, node) -> None:
        module = self.gm.get_submodule(node.target)
        inputs = self.tensor_inputs(node, node.args)
        if len(inputs) != len(node.args) or node.kwargs:
            self.refuse(node, f"the layer '{node.target}' is called with extra arguments; LayerLab layers take "
                              "their input tensor(s) only.")
        in_shapes = [self.shape(a) for a in inputs]
        found = catalog_layer(module, in_shapes, self.ctx, inplace_ok=all(len(a.users) == 1 for a in inputs))
        if found is None:
            self.refuse(node, f"the layer '{node.target}' ({type(module).__name__}) has no LayerLab layer type "
                              "and is not one of the PyTorch modules a Custom node can hold.")
        layer_type, params = found
        nid = self.add(node, layer_type, params, inputs)
        name = self.graph.node(nid).name
        for k, v in module.state_dict().items():
            self.weights[f"{name}.{k}"] = v.detach().clone()

    def on_call_method(self, node) -> None:
        self.on_call(node, f"Tensor.{node.target}", node.target)

    def on_call_function(self, node) -> None:
        target = node.target
        if target is operator.getitem and node.args and node.args[0] in self.shape_of:
            if node.args[1] == 0:
                self.batch.add(node)
                return
            self.refuse(node, "uses a size of the input other than the batch size; a layer's shape must not "
                              "depend on it.", "use fixed numbers for those sizes")
        name = self.functions.get(id(target))
        self.on_call(node, name, getattr(target, "__name__", str(target)))

    def on_call(self, node, op: str | None, short: str) -> None:
        from torch import fx

        args, kwargs = list(node.args), dict(node.kwargs)
        # sizes: x.size(0) / x.shape[0] are the batch size, used by view/reshape
        if op == "Tensor.size" and len(args) == 2 and args[1] == 0:
            self.batch.add(node)
            return
        if node.op == "call_function" and node.target is getattr and len(args) == 2 and args[1] == "shape":
            self.shape_of.add(node)
            return
        mapped = self.as_layer(node, op, args, kwargs)
        if mapped is _FOLDED:
            return
        if mapped is not None:
            layer_type, params, inputs = mapped
            self.add(node, layer_type, params, inputs)
            return
        if op is None or op not in FUNCTION_OPS:
            self.refuse(node, f"calls {short}, which LayerLab cannot represent (it is not a layer, and not on the "
                              "list of PyTorch operations a Custom node may name).")
        inputs = self.tensor_inputs(node, args)
        rest = args[len(inputs):]
        if any(isinstance(a, fx.Node) for a in rest) or any(isinstance(v, fx.Node) for v in kwargs.values()):
            self.refuse(node, f"passes a computed value to {op} where LayerLab can only keep fixed numbers.")
        if not inputs:
            self.refuse(node, f"{op} does not take a layer's output as its first argument.")
        try:
            params = {"op": op, "args": coerce_json(encode_arg(rest)), "kwargs": coerce_json(encode_arg(kwargs))}
        except LayerLabError:
            self.refuse(node, f"passes arguments to {op} that are not plain numbers, text or lists.")
        self.add(node, "Custom", params, inputs)

    def as_layer(self, node, op, args, kwargs):
        """A catalog layer for a function call, or None."""
        from torch import fx

        def tensors(values):
            return [a for a in values if isinstance(a, fx.Node) and a in self.value]

        if op in ("operator.add", "torch.add", "Tensor.add", "operator.mul", "torch.mul", "Tensor.mul") \
                and len(args) == 2 and not kwargs and len(tensors(args)) == 2:
            layer = "Add" if op.endswith("add") else "Multiply"
            first, second = args
            if self.value[first] == self.value[second]:  # x + x: one input twice is no merge
                return "Custom", {"op": "operator.mul" if layer == "Add" else "operator.pow", "args": [2.0],
                                  "kwargs": {}}, [first]
            prev = self.value[first]
            feeds = any(e.src == self.value[second] for e in self.graph.in_edges(prev))
            # a + b + c: fold into the Add that made a + b, if nothing else uses it
            if self.graph.node(prev).type == layer and len(first.users) == 1 and not feeds:
                self.graph.connect(self.value[second], prev)
                self.value[node] = prev
                return _FOLDED
            return layer, {}, [first, second]
        if op == "torch.cat":
            parts = args[0] if args else kwargs.get("tensors")
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
            if isinstance(parts, (list, tuple)) and len(tensors(parts)) == len(parts) >= 2 and isinstance(dim, int):
                if dim == 0:
                    self.refuse(node, "concatenates along the batch axis (dim 0); LayerLab layers keep one result "
                                      "per sample.")
                return "Concat", {"dim": dim - 1 if dim > 0 else dim}, list(parts)
            return None
        x = args[0] if args else None
        if not isinstance(x, fx.Node) or x not in self.value:
            return None
        rest, shape = args[1:], self.shape(x)
        if op in _AS_MODULE:
            found = self.as_module(node, op, rest, kwargs, shape)
            return None if found is None else (*found, [x])
        if op in ("Tensor.view", "Tensor.reshape", "torch.reshape") and rest:
            dims = list(rest[0]) if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else list(rest)
            if dims and dims[0] in self.batch and all(isinstance(d, int) for d in dims[1:]):
                target = tuple(dims[1:])
                return ("Flatten", {}, [x]) if target == (-1,) and len(shape) > 1 else ("Reshape", {"shape": target}, [x])
        activation = {"F.relu": "ReLU", "torch.relu": "ReLU", "Tensor.relu": "ReLU", "torch.sigmoid": "Sigmoid",
                      "Tensor.sigmoid": "Sigmoid", "torch.tanh": "Tanh", "Tensor.tanh": "Tanh"}.get(op)
        # in place is the same only where nothing else reads x (as for modules, see _same_module)
        extra = {k: v for k, v in kwargs.items() if not (k == "inplace" and (not v or len(x.users) == 1))}
        if activation and not rest and not extra:
            return activation, {}, [x]
        if op in ("F.softmax", "torch.softmax", "Tensor.softmax"):
            dim = kwargs.get("dim", rest[0] if rest else None)
            if dim == -1 or (dim == len(shape) and dim is not None):
                return "Softmax", {}, [x]
        return None

    def as_module(self, node, op, rest, kwargs, shape) -> tuple[str, dict] | None:
        """(layer type, params) of the catalog layer a functional call computes, or None (a Custom node)."""
        from torch import fx, nn

        cls_name, signature = _AS_MODULE[op]
        bound = bind_call(signature, rest, kwargs)
        if bound is None or any(isinstance(v, fx.Node) for v in bound.values()):
            return None
        if bound.pop("return_indices", False) or bound.get("divisor_override") is not None:
            return None  # two results, or a divisor an AvgPool2d layer (and its repr) does not have
        if op == "F.dropout" and bound.pop("training"):
            self.refuse(node, "F.dropout drops values even when the model is evaluated (its training argument "
                              "defaults to True), so the model's outputs are random and the import cannot be checked.",
                        "pass training=self.training, or use an nn.Dropout layer")
        if cls_name == "Flatten":
            if len(shape) < 2:
                return None
            rank = len(shape) + 1
            bound = {k: v % rank if isinstance(v, int) else v for k, v in bound.items()}
            bound["end_dim"] = -1 if bound["end_dim"] == rank - 1 else bound["end_dim"]
        try:
            module = getattr(nn, cls_name)(**bound)
        except Exception:
            return None
        return catalog_layer(module, [shape], self.ctx, inplace_ok=len(node.args[0].users) == 1)


def _failed_node(exc: BaseException) -> str | None:
    """The node ShapeProp names in its error ("ShapeProp error for: node=%fc1 : ..."), if any."""
    m = re.search(r"node=%(\w+)", str(exc))
    return m.group(1) if m else None


def convert(module, input_shape, *, ctx: InferContext | None = None, source_file: str | None = None,
            example=None) -> ImportedGraph:
    """Trace ``module`` (eval mode) into a graph with its weights, and check the graph computes the same."""
    import torch
    from torch.fx.passes.shape_prop import ShapeProp

    module = module.eval()
    input_shape = tuple(int(s) for s in input_shape)
    gm = trace(module, source_file)
    x = example if example is not None else sample_input(module, input_shape)
    try:
        # ShapeProp prints the traceback of a failing node itself: kept off the user's terminal
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            ShapeProp(gm).propagate(x.clone())  # clones: an in-place op in forward() must not change x
    except Exception as exc:
        node = _failed_node(exc)
        cause = exc.__cause__ or exc  # ShapeProp wraps the layer's own error in a long one of its own
        frames = [(f.filename, f.lineno) for f in traceback.extract_tb(cause.__traceback__)]
        text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        where = f"layer '{node}'" if node else where_in_source(frames, source_file)
        raise NeedsInputShape(f"The model does not run on inputs of shape {input_shape} ({where}: {text[:300]}).",
                              "check the shape of one sample, given with --input-shape, e.g. 1,28,28, "
                              "or the model's layers") from None
    with torch.no_grad():
        reference = module(x.clone())
    if not isinstance(reference, torch.Tensor) or reference.dim() < 2:
        raise ImportRefused("forward() must return one tensor of shape (batch, outputs).")
    output_shape = tuple(int(s) for s in reference.shape[1:])
    ctx = ctx or InferContext(input_shape=input_shape)
    conv = _Converter(gm, input_shape, ctx, source_file)
    conv.run()
    result = ImportedGraph(conv.graph, conv.weights, input_shape, output_shape)
    result.max_abs_diff = check_equivalent(result, ctx, x.float(), reference)
    return result


def sample_input(module, input_shape, n: int = 4):
    """Inputs to trace and compare on: token ids for a model that starts with an embedding (as int64
    for a plain nn.Embedding, which takes nothing else), else N(0, 1) values."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(0)
    first = next((m for m in module.modules() if not list(m.children())), None)
    if isinstance(first, nn.Embedding):
        tokens = torch.randint(0, first.num_embeddings, (n, *input_shape), generator=g)
        return tokens if type(first) is nn.Embedding else tokens.float()
    return torch.randn((n, *input_shape), generator=g)


def check_equivalent(imported: ImportedGraph, ctx: InferContext, x, reference) -> float:
    """Compile the imported graph, load its weights, and compare with the original's outputs on ``x``."""
    import torch

    from engine.compile import compile_graph
    from engine.run import load_weights

    compiled = compile_graph(imported.graph, ctx)
    load_weights(compiled.module, imported.weights)
    with torch.no_grad():
        got = compiled.module.eval()(x)
    if got.shape != reference.shape:
        raise ImportRefused(f"The imported graph returns shape {tuple(got.shape)} where the model returns "
                            f"{tuple(reference.shape)}; please report this.")
    diff = float((got.double() - reference.double()).abs().max()) if got.numel() else 0.0
    if not diff <= TOLERANCE:
        raise ImportRefused(f"The imported graph computes something else than the model (max abs difference "
                            f"{diff:.3g}); please report this with the model file.")
    return diff


__all__ = ["ImportRefused", "ImportedGraph", "catalog_layer", "convert", "trace", "where_in_source"]
