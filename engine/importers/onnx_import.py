"""An ONNX file -> a LayerLab graph and its weights, through LayerLab's own converter.

No onnx2torch (it needs torchvision, and cannot convert LSTM or opset-18 ReduceMean): the ONNX
nodes are read in order and each becomes a catalog layer, or part of one:

    Gemm, MatMul (+ Add of a bias)      Linear
    Conv                                 Conv1d / Conv2d (other settings: a Custom nn.Conv2d)
    MaxPool, AveragePool                 MaxPool2d / AvgPool2d
    GlobalAveragePool, ReduceMean(H, W)  AdaptiveAvgPool2d(1)
    Relu, LeakyRelu, Sigmoid, Tanh,
    Gelu, Softmax, x * Sigmoid(x)        the activations (SiLU)
    LogSoftmax                           a Custom F.log_softmax (no layer computes it)
    BatchNormalization                   BatchNorm1d / BatchNorm2d
    LayerNormalization                   LayerNorm
    Flatten, Reshape                     Flatten / Reshape
    Add, Mul, Concat                     Add / Multiply / Concat
    LSTM, GRU, RNN                       LSTM / GRU / RNN layers (with the Transposes and the
                                         last-step Gather around them that exporters write)
    Gather(table, Cast(x))               Embedding

The little programs exporters write to compute shapes (Shape, Gather, Slice, Concat on shapes)
are evaluated symbolically ("B" stands for the batch size), constant subgraphs are folded with
ONNX's reference evaluator.  Anything else is refused with a sentence naming the ONNX node.
The result is checked against onnxruntime on random inputs.  Layer names come from the node's
``pkg.torch.onnx.name_scopes`` (what torch's exporter records) or its weights' names.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.graph import Graph, to_identifier
from engine.importers.fx_import import ImportedGraph, ImportRefused, NeedsInputShape

MAX_ONNX_BYTES = 2 << 30
BATCH = "B"
TOLERANCE = 1e-4
#: random samples the import is checked on
SAMPLES = 4


# ----------------------------------------------------------------------------- values
@dataclass
class Const:
    value: np.ndarray


@dataclass
class Dims:
    """A shape being computed: ints and BATCH (or None where unknown)."""

    dims: list
    scalar: bool = False


@dataclass
class T:
    """The (batch-first) output of a graph node; ``time_major``: transposed to (steps, batch, features)."""

    node: str
    shape: tuple  # per-sample shape
    time_major: bool = False


@dataclass
class Zeros:
    """An all-zero tensor (the initial state exporters build for recurrent layers)."""


@dataclass
class Tokens:
    """Cast(x) to integers: embedding indices."""

    src: T


@dataclass
class PendingLinear:
    """MatMul(x, W) waiting for its bias (an Add of a constant) to become one Linear."""

    src: T
    weight: np.ndarray  # (out, in), torch layout
    scope: str | None


@dataclass
class RnnOutput:
    """Y of an ONNX RNN/LSTM/GRU node on its way back to a batch-first sequence."""

    layer: dict
    stage: str  # "sdbh" (ONNX layout), "sbdh" (after Transpose 0,2,1,3)


@dataclass
class _State:
    graph: Graph = field(default_factory=Graph)
    weights: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    consumers: dict = field(default_factory=dict)  # value name -> number of nodes reading it


# ----------------------------------------------------------------------------- reading the file
def _scope(node) -> str | None:
    """The top-level layer an ONNX node came from (torch's exporter records it)."""
    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(p.value)
            except (ValueError, SyntaxError):
                return None
            # ['', 'lstm1', 'lstm1.rnn', 'lstm']: the root, the top-level module, ..., the operation
            if len(scopes) >= 3 and scopes[0] == "" and scopes[1]:
                return str(scopes[1]).split(".")[0]
            return None
    return None


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _dims_of(value_info) -> list | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    out = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(BATCH)
        else:
            out.append(None)
    return out


class _Converter:
    def __init__(self, model, input_shape: tuple | None):
        import onnx
        from onnx import numpy_helper

        self.model = model
        self.s = _State()
        g = model.graph
        self.initializers = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        inputs = [i for i in g.input if i.name not in self.initializers]
        if len(inputs) != 1:
            raise ImportRefused(f"The ONNX model has {len(inputs)} inputs; a LayerLab model takes exactly one.")
        if len(g.output) != 1:
            raise ImportRefused(f"The ONNX model has {len(g.output)} outputs; a LayerLab model returns exactly one.")
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception:
            inferred = model
        self.shapes = {v.name: _dims_of(v) for v in list(inferred.graph.value_info) + list(g.output) + list(g.input)}
        full = self.shapes.get(inputs[0].name) or []
        per = tuple(input_shape) if input_shape else tuple(full[1:])
        declared = tuple(full[1:])
        if input_shape and declared and (len(declared) != len(per) or any(
                isinstance(d, int) and d != p for d, p in zip(declared, per))):
            # a shape against the file's had ended in a weights mismatch, far from its cause
            said = ", ".join(str(d) if isinstance(d, int) else "any" for d in declared)
            raise NeedsInputShape(f"The ONNX model takes samples of shape ({said}), not {per}.",
                                  "give a shape that fits it with --input-shape, or none")
        if not per or any(not isinstance(d, int) for d in per):
            raise NeedsInputShape("The ONNX model does not say the shape of one input sample.",
                                  "give it with --input-shape, e.g. 1,28,28")
        self.input_name, self.output_name = inputs[0].name, g.output[0].name
        self.input_shape = per
        for node in g.node:
            for name in node.input:
                self.s.consumers[name] = self.s.consumers.get(name, 0) + 1
        self.s.consumers[self.output_name] = self.s.consumers.get(self.output_name, 0) + 1

    # -- helpers
    def refuse(self, node, why: str):
        raise ImportRefused(f"ONNX node '{node.name or node.op_type}' ({node.op_type}): {why}")

    def get(self, name: str):
        if name == "":
            return None
        if name in self.s.env:
            return self.s.env[name]
        if name in self.initializers:
            return Const(self.initializers[name])
        raise ImportRefused(f"The ONNX graph uses '{name}' before it is computed; the file is not in order.")

    def add_layer(self, layer_type: str, params: dict, inputs: list[T], scope: str | None,
                  weights: dict | None = None) -> str:
        g = self.s.graph
        base = to_identifier(scope) if scope else None
        name = base if base and g.node_by_name(base) is None else g.unique_name(base or f"{g_prefix(layer_type)}1")
        node = g.add_node(layer_type, params, name=name)
        for src in inputs:
            g.connect(src.node, node.id)
        for k, v in (weights or {}).items():
            self.s.weights[f"{node.name}.{k}"] = _tensor(v)
        return node.id

    def out_shape(self, name: str) -> tuple | None:
        """The per-sample shape ONNX shape inference found for a value, if it found one."""
        dims = self.shapes.get(name)
        if dims and all(isinstance(d, int) for d in dims[1:]):
            return tuple(dims[1:])
        return None

    def tensor(self, node, value, what="its input") -> T:
        if isinstance(value, PendingLinear):
            return self.finish_linear(value, None)
        if not isinstance(value, T) or value.time_major:
            self.refuse(node, f"{what} is not a layer output LayerLab can follow.")
        return value

    def finish_linear(self, p: PendingLinear, bias) -> T:
        weights = {"weight": p.weight}
        if bias is not None:
            weights["bias"] = bias
        nid = self.add_layer("Linear", {"units": int(p.weight.shape[0]), "bias": bias is not None}, [p.src], p.scope,
                             weights)
        return T(nid, (*p.src.shape[:-1], int(p.weight.shape[0])))

    # -- the walk
    def run(self) -> None:
        inp = self.s.graph.add_node("Input", name=to_identifier(self.input_name))
        self.s.env[self.input_name] = T(inp.id, self.input_shape)
        for node in self.model.graph.node:
            handler = getattr(self, f"op_{node.op_type}", None)
            ins = [self.get(i) for i in node.input]
            if all(isinstance(v, Const) for v in ins if v is not None) and node.op_type != "Constant":
                out = self.fold(node)  # a constant subgraph (weights being reordered, shapes...)
            elif node.domain not in ("", "ai.onnx") or handler is None:
                self.refuse(node, "this operation has no LayerLab layer.")
            else:
                out = handler(node, ins, _attrs(node))
            outs = out if isinstance(out, tuple) else (out,)
            for name, value in zip(node.output, outs):
                if name:
                    self.s.env[name] = value
        result = self.get(self.output_name)
        if isinstance(result, PendingLinear):
            result = self.finish_linear(result, None)
        if not isinstance(result, T) or result.time_major:
            raise ImportRefused("The ONNX model's output is not a layer's output LayerLab can follow.")
        out = self.s.graph.add_node("Output")
        self.s.graph.connect(result.node, out.id)

    def fold(self, node) -> tuple:
        """Evaluate a node whose inputs are all constants (ONNX's reference evaluator)."""
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        values = [self.get(i).value if i else None for i in node.input]
        graph = helper.make_graph([node], "fold",
                                  [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                                   for n, v in zip(node.input, values) if n],
                                  [helper.make_empty_tensor_value_info(o) for o in node.output if o])
        model = helper.make_model(graph, opset_imports=list(self.model.opset_import))
        try:
            results = ReferenceEvaluator(model).run(None, {n: v for n, v in zip(node.input, values) if n})
        except Exception as exc:
            self.refuse(node, f"cannot evaluate it ({str(exc).splitlines()[0][:120]}).")
        return tuple(Const(np.asarray(v)) for v in results)

    def dims_or_const(self, value):
        if isinstance(value, Const):
            return [int(v) for v in np.asarray(value.value).reshape(-1)], value.value.ndim == 0
        if isinstance(value, Dims):
            return list(value.dims), value.scalar
        return None, False

    # -- shape arithmetic
    def op_Constant(self, node, ins, a):
        from onnx import numpy_helper

        if "value" in a:
            return Const(numpy_helper.to_array(a["value"]))
        for key in ("value_float", "value_int"):
            if key in a:
                return Const(np.asarray(a[key]))
        for key in ("value_floats", "value_ints"):
            if key in a:
                return Const(np.asarray(a[key]))
        self.refuse(node, "a constant of a kind LayerLab does not read.")

    def op_Identity(self, node, ins, a):
        return ins[0]

    def op_Shape(self, node, ins, a):
        x = ins[0]
        if isinstance(x, T) and not x.time_major:
            dims = [BATCH, *x.shape]
        else:
            dims = self.shapes.get(node.input[0])
            if dims is None:
                self.refuse(node, "the shape of its input is unknown.")
        start, end = a.get("start", 0), a.get("end", None)
        return Dims(list(dims)[start:end])

    def op_Cast(self, node, ins, a):
        x = ins[0]
        if isinstance(x, (Dims, Zeros)):
            return x
        if isinstance(x, T) and a.get("to") in (6, 7):  # int32 / int64: token ids for an embedding
            return Tokens(x)
        if isinstance(x, T) and a.get("to") == 1:
            return x
        self.refuse(node, "a cast LayerLab layers do not make.")

    def _dims_op(self, node, ins, fn):
        parts = [self.dims_or_const(v) for v in ins if v is not None]
        if any(p[0] is None for p in parts):
            return None
        return fn(parts)

    def op_Gather(self, node, ins, a):
        data, index = ins
        axis = a.get("axis", 0)
        if isinstance(data, Dims) and isinstance(index, Const):
            idx = np.asarray(index.value)
            picked = [data.dims[int(i)] for i in idx.reshape(-1)]
            return Dims(picked, scalar=idx.ndim == 0)
        if isinstance(data, Const) and isinstance(index, Tokens):  # an embedding table
            table = data.value
            return T(self.add_layer("Embedding", {"num_embeddings": int(table.shape[0]),
                                                  "embedding_dim": int(table.shape[1])},
                                    [index.src], _scope(node), {"weight": table}),
                     (*index.src.shape, int(table.shape[1])))
        if isinstance(data, T) and isinstance(index, Const) and np.asarray(index.value).ndim == 0:
            i = int(index.value)
            steps_axis = 0 if data.time_major else 1
            if axis == steps_axis and i in (-1, data.shape[0] - 1):
                return self.last_step(node, data, only_use=self.s.consumers.get(node.input[0], 0) == 1)
        self.refuse(node, "picks values in a way no LayerLab layer does.")

    def last_step(self, node, data: T, only_use: bool):
        """out[:, -1] after a recurrent layer: that layer's 'last step' output."""
        g = self.s.graph
        layer = g.node(data.node)
        if layer.type in ("RNN", "LSTM", "GRU") and layer.params["output"] == "sequence" \
                and not g.out_edges(layer.id) and only_use:
            g.set_param(layer.id, "output", "last step")
            return T(layer.id, (data.shape[1],))
        params = {"op": "operator.getitem", "args": [[{"slice": [None, None, None]}, -1]], "kwargs": {}}
        if data.time_major:
            self.refuse(node, "picks a step of a sequence that is not a recurrent layer's output.")
        return T(self.add_layer("Custom", params, [data], _scope(node)), (data.shape[1],))

    def op_Slice(self, node, ins, a):
        data = ins[0]
        if isinstance(data, Zeros):
            return data
        if isinstance(data, Dims):
            starts, ends = (int(np.asarray(v.value).reshape(-1)[0]) for v in ins[1:3])
            steps = int(np.asarray(ins[4].value).reshape(-1)[0]) if len(ins) > 4 and ins[4] is not None else 1
            n = len(data.dims)
            starts, ends = max(-n, min(starts, n)), max(-n - 1, min(ends, n))
            return Dims(data.dims[starts:ends:steps])
        self.refuse(node, "slices a tensor; no LayerLab layer does that.")

    def op_Concat(self, node, ins, a):
        if all(isinstance(v, (Dims, Const)) for v in ins):
            out = []
            for v in ins:
                out += self.dims_or_const(v)[0]
            return Dims(out)
        parts = [self.tensor(node, v) for v in ins]
        axis = a["axis"]
        rank = len(parts[0].shape) + 1
        if axis % rank == 0:
            self.refuse(node, "concatenates along the batch axis.")
        dim = axis - 1 if axis > 0 else axis
        shape = list(parts[0].shape)
        shape[dim] = sum(p.shape[dim] for p in parts)
        return T(self.add_layer("Concat", {"dim": dim}, parts, _scope(node)), tuple(shape))

    def op_Unsqueeze(self, node, ins, a):
        if isinstance(ins[0], Dims):
            return Dims(list(ins[0].dims))
        if isinstance(ins[0], Zeros):
            return ins[0]
        self.refuse(node, "adds an axis; no LayerLab layer does that here.")

    def op_Squeeze(self, node, ins, a):
        x = ins[0]
        if isinstance(x, RnnOutput) and x.stage == "sdbh" and x.layer["dirs"] == 1:
            return self.recurrent_sequence(x)
        if isinstance(x, (Dims, Zeros)):
            return x
        self.refuse(node, "drops an axis; no LayerLab layer does that here.")

    def op_Expand(self, node, ins, a):
        if isinstance(ins[0], Const) and not np.any(ins[0].value):
            return Zeros()
        self.refuse(node, "broadcasts a tensor; no LayerLab layer does that.")

    def op_ConstantOfShape(self, node, ins, a):
        value = a.get("value")
        from onnx import numpy_helper

        if value is None or not np.any(numpy_helper.to_array(value)):
            return Zeros()
        self.refuse(node, "fills a tensor with a constant; no LayerLab layer does that.")

    def _binary(self, node, ins, layer: str, fn):
        x, y = ins
        if isinstance(x, (Dims, Const)) and isinstance(y, (Dims, Const)):
            xs, _ = self.dims_or_const(x)
            ys, _ = self.dims_or_const(y)
            if len(xs) == len(ys) and all(isinstance(v, int) for v in xs + ys):
                return Dims([fn(p, q) for p, q in zip(xs, ys)])
            return Dims([None] * max(len(xs), len(ys)))
        if layer == "Add" and isinstance(x, PendingLinear) and isinstance(y, Const) \
                and np.asarray(y.value).reshape(-1).shape == (x.weight.shape[0],) \
                and self.s.consumers.get(node.input[0], 0) == 1:
            return self.finish_linear(x, np.asarray(y.value).reshape(-1))
        if layer == "Multiply" and isinstance(x, T) and isinstance(y, T):
            silu = self.as_silu(node, x, y)
            if silu is not None:
                return silu
        if isinstance(x, (T, PendingLinear)) and isinstance(y, (T, PendingLinear)):
            x, y = self.tensor(node, x), self.tensor(node, y)
            if x.shape != y.shape:
                self.refuse(node, f"combines shapes {x.shape} and {y.shape}; LayerLab merges need equal shapes.")
            return T(self.add_layer(layer, {}, [x, y], _scope(node)), x.shape)
        tensor, const = (x, y) if isinstance(y, Const) else (y, x)
        if isinstance(const, Const) and np.asarray(const.value).size == 1:
            tensor = self.tensor(node, tensor)
            op = {"Add": "operator.add", "Multiply": "operator.mul"}[layer]
            if const is x and layer not in ("Add", "Multiply"):
                self.refuse(node, "the constant comes first.")
            value = float(np.asarray(const.value).reshape(-1)[0])
            return T(self.add_layer("Custom", {"op": op, "args": [value], "kwargs": {}}, [tensor], _scope(node)),
                     tensor.shape)
        self.refuse(node, "combines a tensor with a constant array; no LayerLab layer does that.")

    def op_Add(self, node, ins, a):
        return self._binary(node, ins, "Add", lambda p, q: p + q)

    def op_Mul(self, node, ins, a):
        return self._binary(node, ins, "Multiply", lambda p, q: p * q)

    def as_silu(self, node, x: T, y: T):
        g = self.s.graph
        for plain, gate in ((x, y), (y, x)):
            gnode = g.node(gate.node)
            ins = g.in_edges(gate.node)
            if gnode.type == "Sigmoid" and len(ins) == 1 and ins[0].src == plain.node and len(g.out_edges(gate.node)) == 0:
                name = gnode.name
                g.remove_node(gate.node)
                nid = self.add_layer("SiLU", {}, [plain], _scope(node) or name)
                return T(nid, plain.shape)
        return None

    # -- layers
    def op_Gemm(self, node, ins, a):
        x = self.tensor(node, ins[0])
        w, b = ins[1], ins[2] if len(ins) > 2 else None
        if not isinstance(w, Const) or (b is not None and not isinstance(b, Const)) or a.get("transA", 0) \
                or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or len(x.shape) != 1:
            self.refuse(node, "a Gemm that is not a plain linear layer (constant weights, alpha = beta = 1).")
        weight = w.value if a.get("transB", 0) else w.value.T
        bias = None if b is None else np.broadcast_to(np.asarray(b.value), (weight.shape[0],)).copy()
        return self.finish_linear(PendingLinear(x, np.ascontiguousarray(weight), _scope(node) or _weight_scope(node)), bias)

    def op_MatMul(self, node, ins, a):
        x, w = ins
        if not isinstance(w, Const) or w.value.ndim != 2:
            self.refuse(node, "a matrix product with a computed right side; only x @ weights is a layer.")
        x = self.tensor(node, x)
        return PendingLinear(x, np.ascontiguousarray(w.value.T), _scope(node) or _weight_scope(node))

    def op_Conv(self, node, ins, a):
        x = self.tensor(node, ins[0])
        w, b = ins[1], ins[2] if len(ins) > 2 else None
        if not isinstance(w, Const) or (b is not None and not isinstance(b, Const)):
            self.refuse(node, "a convolution with computed weights.")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            self.refuse(node, "auto_pad is not supported; export with explicit padding.")
        weight = w.value
        dims = weight.ndim - 2
        k = list(a.get("kernel_shape", weight.shape[2:]))
        strides = list(a.get("strides", [1] * dims))
        pads = list(a.get("pads", [0] * 2 * dims))
        dil = list(a.get("dilations", [1] * dims))
        group = a.get("group", 1)
        if pads[:dims] != pads[dims:]:
            self.refuse(node, "different padding on the two sides of an axis.")
        weights = {"weight": weight} | ({"bias": b.value} if b is not None else {})
        out_c = int(weight.shape[0])
        out = (out_c, *(_conv_out(s, k[i], strides[i], pads[i], dil[i]) for i, s in enumerate(x.shape[1:])))
        if dims in (1, 2) and len(set(k)) == 1 and len(set(strides)) == 1 and len(set(pads[:dims])) == 1 \
                and set(dil) == {1} and group == 1:
            params = {"out_channels": out_c, "kernel_size": k[0], "stride": strides[0], "padding": pads[0],
                      "bias": b is not None}
            return T(self.add_layer(f"Conv{dims}d", params, [x], _scope(node) or _weight_scope(node), weights), out)
        if dims != 2:
            self.refuse(node, "a convolution LayerLab has no layer for.")
        kwargs = {"stride": strides, "padding": pads[:dims], "dilation": dil, "groups": group, "bias": b is not None}
        params = {"op": "nn.Conv2d", "args": [int(weight.shape[1]) * group, out_c, k], "kwargs": kwargs}
        return T(self.add_layer("Custom", params, [x], _scope(node) or _weight_scope(node), weights), out)

    def _pool(self, node, ins, a, layer):
        x = self.tensor(node, ins[0])
        k, strides = list(a["kernel_shape"]), list(a.get("strides", a["kernel_shape"]))
        pads = list(a.get("pads", [0] * 2 * len(k)))
        if len(k) != 2 or len(set(k)) != 1 or len(set(strides)) != 1 or len(set(pads)) != 1 \
                or a.get("ceil_mode", 0) or set(a.get("dilations", [1])) != {1}:
            self.refuse(node, f"a pooling window LayerLab's {layer} does not have (square, even padding, no ceil mode).")
        if layer == "AvgPool2d" and pads[0] and not a.get("count_include_pad", 0):
            self.refuse(node, "average pooling that leaves the padding out of the average.")
        params = {"kernel_size": k[0], "stride": 0 if strides[0] == k[0] else strides[0], "padding": pads[0]}
        out = (x.shape[0], *(_conv_out(s, k[0], strides[0], pads[0]) for s in x.shape[1:]))
        return T(self.add_layer(layer, params, [x], _scope(node)), out)

    def op_MaxPool(self, node, ins, a):
        if len(node.output) > 1 and node.output[1]:
            self.refuse(node, "max pooling that also returns indices.")
        return self._pool(node, ins, a, "MaxPool2d")

    def op_AveragePool(self, node, ins, a):
        return self._pool(node, ins, a, "AvgPool2d")

    def op_GlobalAveragePool(self, node, ins, a):
        x = self.tensor(node, ins[0])
        return T(self.add_layer("AdaptiveAvgPool2d", {"output_size": 1}, [x], _scope(node)), (x.shape[0], 1, 1))

    def op_ReduceMean(self, node, ins, a):
        x = self.tensor(node, ins[0])
        axes = a.get("axes")
        if axes is None and len(ins) > 1 and isinstance(ins[1], Const):
            axes = [int(v) for v in np.asarray(ins[1].value).reshape(-1)]
        rank = len(x.shape) + 1
        if rank == 4 and axes is not None and sorted(v % rank for v in axes) == [2, 3] and a.get("keepdims", 1):
            return T(self.add_layer("AdaptiveAvgPool2d", {"output_size": 1}, [x], _scope(node)), (x.shape[0], 1, 1))
        self.refuse(node, "a mean over axes no LayerLab layer averages.")

    def _activation(self, layer, params=None):
        def handler(node, ins, a):
            x = self.tensor(node, ins[0])
            return T(self.add_layer(layer, params(a) if callable(params) else dict(params or {}), [x], _scope(node)),
                     x.shape)
        return handler

    def op_Relu(self, node, ins, a):
        return self._activation("ReLU")(node, ins, a)

    def op_Sigmoid(self, node, ins, a):
        return self._activation("Sigmoid")(node, ins, a)

    def op_Tanh(self, node, ins, a):
        return self._activation("Tanh")(node, ins, a)

    def op_LeakyRelu(self, node, ins, a):
        return self._activation("LeakyReLU", lambda at: {"negative_slope": round(float(at.get("alpha", 0.01)), 6)})(
            node, ins, a)

    def op_Gelu(self, node, ins, a):
        if a.get("approximate", b"none") not in (b"none", "none"):
            self.refuse(node, "the tanh approximation of GELU.")
        return self._activation("GELU")(node, ins, a)

    def op_Softmax(self, node, ins, a):
        x = self.tensor(node, ins[0])
        if a.get("axis", -1) % (len(x.shape) + 1) != len(x.shape):
            self.refuse(node, "a softmax over another axis than the last.")
        return self._activation("Softmax")(node, ins, a)

    def op_LogSoftmax(self, node, ins, a):
        # no catalog layer computes it (Softmax has no log option): a Custom node, as a model's
        # F.log_softmax imports from Python, so LayerLab's own export of one comes back
        x = self.tensor(node, ins[0])
        rank = len(x.shape) + 1
        axis = a.get("axis", -1) % rank
        if axis == 0:
            self.refuse(node, "a log-softmax over the batch axis.")
        params = {"op": "F.log_softmax", "args": [], "kwargs": {"dim": -1 if axis == rank - 1 else axis}}
        return T(self.add_layer("Custom", params, [x], _scope(node)), x.shape)

    def op_Dropout(self, node, ins, a):
        return ins[0], Zeros()  # inference: dropout does nothing

    def op_Flatten(self, node, ins, a):
        x = self.tensor(node, ins[0])
        if a.get("axis", 1) != 1:
            self.refuse(node, "flattens from another axis than 1.")
        return T(self.add_layer("Flatten", {}, [x], _scope(node)), (int(np.prod(x.shape)),))

    def op_Reshape(self, node, ins, a):
        x, shape = ins
        if isinstance(x, RnnOutput) and x.stage == "sbdh":
            return self.recurrent_sequence(x)
        if isinstance(x, Dims):  # shape arithmetic: a 1-d list of sizes stays one
            return x
        x = self.tensor(node, x)
        target = self.out_shape(node.output[0])
        if target is None or not target:
            dims, _ = self.dims_or_const(shape)
            if dims is None or not dims or dims[0] not in (BATCH, -1) or any(not isinstance(d, int) for d in dims[1:]):
                self.refuse(node, "a reshape whose target shape LayerLab cannot work out.")
            target = tuple(dims[1:])
            if -1 in target:
                known = int(np.prod([d for d in target if d != -1]))
                target = tuple(int(np.prod(x.shape)) // known if d == -1 else d for d in target)
        if int(np.prod(target)) != int(np.prod(x.shape)):
            self.refuse(node, "a reshape that changes the number of values per sample.")
        if len(target) == 1 and len(x.shape) > 1:
            return T(self.add_layer("Flatten", {}, [x], _scope(node)), target)
        if target == x.shape:
            return x
        return T(self.add_layer("Reshape", {"shape": tuple(target)}, [x], _scope(node)), tuple(target))

    def op_Transpose(self, node, ins, a):
        x, perm = ins[0], list(a.get("perm", []))
        if isinstance(x, RnnOutput) and x.stage == "sdbh" and perm == [0, 2, 1, 3]:
            return RnnOutput(x.layer, "sbdh")
        if isinstance(x, T) and len(x.shape) == 2 and perm == [1, 0, 2]:
            return T(x.node, x.shape, time_major=not x.time_major)
        x = self.tensor(node, x)
        if not perm or perm[0] != 0:
            self.refuse(node, "moves the batch axis.")
        shape = tuple(x.shape[p - 1] for p in perm[1:])
        params = {"op": "Tensor.permute", "args": [int(p) for p in perm], "kwargs": {}}
        return T(self.add_layer("Custom", params, [x], _scope(node)), shape)

    def op_BatchNormalization(self, node, ins, a):
        x = self.tensor(node, ins[0])
        consts = ins[1:5]
        if not all(isinstance(c, Const) for c in consts):
            self.refuse(node, "batch norm with computed statistics.")
        scale, bias, mean, var = (c.value for c in consts)
        eps = float(a.get("epsilon", 1e-5))
        layer = "BatchNorm2d" if len(x.shape) == 3 else "BatchNorm1d"
        momentum = round(1.0 - float(a.get("momentum", 0.9)), 6)
        weights = {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var,
                   "num_batches_tracked": np.asarray(0, dtype=np.int64)}
        if abs(eps - 1e-5) > 1e-9:
            params = {"op": f"nn.{layer}", "args": [int(scale.shape[0])], "kwargs": {"eps": eps, "momentum": momentum}}
            return T(self.add_layer("Custom", params, [x], _scope(node), weights), x.shape)
        return T(self.add_layer(layer, {"momentum": momentum}, [x], _scope(node), weights), x.shape)

    def op_LayerNormalization(self, node, ins, a):
        x = self.tensor(node, ins[0])
        scale = ins[1]
        bias = ins[2] if len(ins) > 2 else None
        if a.get("axis", -1) % (len(x.shape) + 1) != len(x.shape) or abs(float(a.get("epsilon", 1e-5)) - 1e-5) > 1e-9:
            self.refuse(node, "layer norm over more than the last axis, or with another epsilon.")
        if not isinstance(scale, Const) or (bias is not None and not isinstance(bias, Const)):
            self.refuse(node, "layer norm with computed scale.")
        weights = {"weight": scale.value, "bias": bias.value if bias is not None else np.zeros_like(scale.value)}
        return T(self.add_layer("LayerNorm", {"affine": True}, [x], _scope(node), weights), x.shape)

    # -- recurrent layers
    def _recurrent(self, node, ins, a, cell: str):
        x = ins[0]
        if not isinstance(x, T) or not x.time_major:
            self.refuse(node, "a recurrent layer whose input is not a (steps, batch, features) view of a layer output.")
        w, r = ins[1], ins[2]
        b = ins[3] if len(ins) > 3 else None
        if not isinstance(w, Const) or not isinstance(r, Const) or (b is not None and not isinstance(b, Const)):
            self.refuse(node, "a recurrent layer with computed weights.")
        if len(ins) > 4 and node.input[4]:
            self.refuse(node, "sequence lengths are not supported.")
        for state in ins[5:]:
            if state is not None and not isinstance(state, Zeros):
                self.refuse(node, "a recurrent layer started from a given (non-zero) state.")
        direction = a.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if direction not in ("forward", "bidirectional") or a.get("layout", 0) or a.get("clip") is not None:
            self.refuse(node, f"a recurrent layer run '{direction}' (or with clipping / layout 1).")
        if cell == "GRU" and not a.get("linear_before_reset", 0):
            self.refuse(node, "a GRU without linear_before_reset (PyTorch's GRU has it).")
        if cell == "RNN":
            acts = [s.decode() if isinstance(s, bytes) else s for s in a.get("activations", [b"Tanh"])]
            if any(s.lower() != "tanh" for s in acts):
                self.refuse(node, "an RNN with another activation than tanh.")
        hidden = int(a["hidden_size"])
        gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[cell]
        order = {"RNN": [0], "LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}[cell]  # ONNX gate order -> PyTorch's
        dirs = 2 if direction == "bidirectional" else 1
        bias = b.value if b is not None else np.zeros((dirs, 2 * gates * hidden), dtype=w.value.dtype)

        def reorder(m):
            return np.concatenate([m[i * hidden:(i + 1) * hidden] for i in order])

        weights = {}
        for d in range(dirs):
            suffix = "_l0" + ("_reverse" if d else "")
            weights[f"rnn.weight_ih{suffix}"] = reorder(w.value[d])
            weights[f"rnn.weight_hh{suffix}"] = reorder(r.value[d])
            weights[f"rnn.bias_ih{suffix}"] = reorder(bias[d][:gates * hidden])
            weights[f"rnn.bias_hh{suffix}"] = reorder(bias[d][gates * hidden:])
        layer = {"cell": cell, "hidden": hidden, "dirs": dirs, "src": T(x.node, x.shape), "weights": weights,
                 "scope": _scope(node)}
        if any(o for o in node.output[1:]) and any(self.s.consumers.get(o, 0) for o in node.output[1:] if o):
            self.refuse(node, "the final hidden state is used; LayerLab's recurrent layers return the outputs.")
        return RnnOutput(layer, "sdbh"), Zeros(), Zeros()

    def recurrent_sequence(self, y: RnnOutput) -> T:
        """Y reshaped to (steps, batch, directions * hidden): the layer's whole output sequence."""
        info = y.layer
        params = {"hidden_size": info["hidden"], "num_layers": 1, "bidirectional": info["dirs"] == 2,
                  "output": "sequence"}
        nid = self.add_layer(info["cell"], params, [info["src"]], info["scope"], info["weights"])
        return T(nid, (info["src"].shape[0], info["hidden"] * info["dirs"]), time_major=True)

    def op_LSTM(self, node, ins, a):
        return self._recurrent(node, ins, a, "LSTM")

    def op_GRU(self, node, ins, a):
        return self._recurrent(node, ins, a, "GRU")

    def op_RNN(self, node, ins, a):
        return self._recurrent(node, ins, a, "RNN")


def _conv_out(size: int, k: int, stride: int, pad: int, dilation: int = 1) -> int:
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def g_prefix(layer_type: str) -> str:
    from engine.layers import REGISTRY

    return REGISTRY.get(layer_type).prefix


def _weight_scope(node) -> str | None:
    """'fc1' for a node whose weights are called 'fc1.weight'."""
    for name in node.input[1:2]:
        if "." in name:
            return name.rsplit(".", 1)[0].replace(".", "_")
    return None


def _tensor(value):
    import torch

    return torch.from_numpy(np.array(value, order="C", copy=True))  # (ascontiguousarray makes 0-d arrays 1-d)


def layerlab_metadata(model) -> dict:
    out = {}
    for p in model.metadata_props:
        if p.key.startswith("layerlab."):
            try:
                out[p.key[len("layerlab."):]] = json.loads(p.value)
            except json.JSONDecodeError:
                out[p.key[len("layerlab."):]] = p.value
    return out


def convert_onnx(model, input_shape: tuple | None = None, meta: dict | None = None) -> ImportedGraph:
    from engine.spec import InferContext

    conv = _Converter(model, input_shape)
    conv.run()
    graph = conv.s.graph
    out_shape = conv.shapes.get(conv.output_name) or []
    imported = ImportedGraph(graph, conv.s.weights, conv.input_shape,
                             tuple(d for d in out_shape[1:] if isinstance(d, int)))
    meta = meta or {}
    ctx = InferContext(conv.input_shape, meta.get("n_outputs"), meta.get("task"))
    imported.max_abs_diff = check_against_onnxruntime(model, imported, ctx, conv.input_name)
    return imported


def check_against_onnxruntime(model, imported: ImportedGraph, ctx, input_name: str) -> float:
    import onnxruntime as ort
    import torch

    from engine.compile import compile_graph
    from engine.run import load_weights

    compiled = compile_graph(imported.graph, ctx)
    load_weights(compiled.module, imported.weights)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    # a file exported with a fixed batch (torch.onnx.export's default) takes only that many samples
    # at once: onnxruntime gets them in batches of that size, the graph (any batch size) all together
    declared = session.get_inputs()[0].shape[0] if session.get_inputs()[0].shape else None
    per_run = declared if isinstance(declared, int) and declared > 0 else SAMPLES
    count = per_run * -(-SAMPLES // per_run)  # whole batches, at least SAMPLES samples
    g = torch.Generator().manual_seed(0)
    embedding = next((n for n in imported.graph.nodes if n.type == "Embedding"), None)
    if embedding is not None:
        x = torch.randint(0, embedding.params["num_embeddings"], (count, *imported.input_shape), generator=g).float()
    else:
        x = torch.randn((count, *imported.input_shape), generator=g)
    want = np.concatenate([session.run(None, {input_name: part.numpy()})[0] for part in x.split(per_run)])
    with torch.no_grad():
        got = compiled.module.eval()(x).numpy()
    if got.shape != want.shape:
        raise ImportRefused(f"The imported graph returns shape {got.shape} where the ONNX model returns "
                            f"{want.shape}; please report this.")
    diff = float(np.abs(got.astype(np.float64) - want).max()) if got.size else 0.0
    if not diff <= TOLERANCE:
        raise ImportRefused(f"The imported graph computes something else than the ONNX model (max abs difference "
                            f"{diff:.3g}); please report this with the file.")
    imported.output_shape = tuple(got.shape[1:])
    return diff


def external_data_files(model) -> list[str]:
    """The files beside the .onnx that hold its weights (torch's exporter writes ``m.onnx.data`` for
    larger models), as the model names them."""
    from onnx import TensorProto

    found = []
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            location = next((e.value for e in tensor.external_data if e.key == "location"), None)
            if location and location not in found:
                found.append(location)
    return found


def import_onnx(path: Path, input_shape: tuple | None = None):
    import onnx

    from engine.importers import ImportResult, project_from

    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise ImportRefused(f"{path.name} is {size / 2**30:.1f} GiB, more than LayerLab imports.")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ImportRefused(f"{path.name} is not a valid ONNX model ({str(exc).splitlines()[0][:160]}).") from None
    weights_files = external_data_files(model)
    missing = [f for f in weights_files if not (path.parent / f).is_file()]
    if missing:
        raise ImportRefused(f"{path.name}: its weights file {missing[0]} is missing (keep it beside the .onnx).")
    size += sum((path.parent / f).stat().st_size for f in weights_files)
    if size > MAX_ONNX_BYTES:
        raise ImportRefused(f"{path.name} and its weights are {size / 2**30:.1f} GiB, more than LayerLab imports.")
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ImportRefused(f"{path.name} is not a valid ONNX model ({str(exc).splitlines()[0][:160]}).") from None
    meta = layerlab_metadata(model)
    imported = convert_onnx(model, input_shape or (tuple(meta["input_shape"]) if meta.get("input_shape") else None), meta)
    # the layers a reader would miss, with why: the ONNX file is the model's inference form
    notes: list[str] = ["An ONNX file holds a model's inference form: an exporter may fold a BatchNorm into the "
                        "layer before it and leaves Dropout out, so those may not come back as layers."]
    project = project_from(imported, str(meta.get("project") or path.stem), data=meta.get("data"),
                           n_outputs=meta.get("n_outputs"), normalization=meta.get("normalization"),
                           training=meta.get("training"), notes=notes)
    return ImportResult(project, "onnx", imported.max_abs_diff, notes)
