"""Declarative lab goals: small predicates built from JSON, each registered by its ``kind``.

    goal = goal_from_json({"kind": "hidden_layers", "at_least": 1}, where="step 'hidden'")
    result = goal.check(context)    # GoalResult(met=False, sentence="add a hidden layer: the network has none yet")

A goal never raises while checking: a missing input (no trained weights, no answer, a graph with
problems) makes it "not met" with a sentence that says what to do, in the student's terms.
Every kind declares its fields (``FIELDS``: name, type, default, help) so a lab file is checked
field by field on load and an instructor's form can be generated from ``goal_kinds()``.

Kinds: graph (``layer_count``, ``hidden_layers``, ``depth``, ``param_budget``, ``skip_connection``,
``no_problems``, ``dropout``), settings (``setting``), training (``metric``), inspection
(``view_opened``, ``timeline_scrubbed``, ``attribution_run``, ``sanity_check_run``), questions
(``choice``, ``number``) and composition (``all``, ``any``).  docs/LABS.md has one example each.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator

from engine.errors import ProjectFileError
from engine.labs import structure
from engine.labs.metrics import METRIC_TITLES, METRICS, Measured, format_metric, higher_is_better
from engine.labs.vocabulary import ATTRIBUTION_METHODS, VIEWS

MAX_TEXT = 20_000  # characters in one question or option
MAX_CHILDREN = 50
_REQUIRED = object()


class LabFormatError(ProjectFileError):
    """A lab document is invalid: the sentence names the step and field."""


# ----------------------------------------------------------------------------- results and context
@dataclass(frozen=True)
class GoalResult:
    """``met``; ``sentence``: what is missing (or, when met, what was found) in the student's terms;
    ``detail``: the figures behind it (counts, values) as plain JSON; ``children`` for all / any."""

    met: bool
    sentence: str
    detail: dict[str, Any] = field(default_factory=dict)
    children: tuple["GoalResult", ...] = ()
    kind: str = ""

    def to_json(self) -> dict:
        out = {"kind": self.kind, "met": self.met, "sentence": self.sentence, "detail": self.detail}
        if self.children:
            out["children"] = [c.to_json() for c in self.children]
        return out


class GoalContext:
    """What goals read, built by ``engine.labs.check``.  The costly parts (shape analysis, the
    metrics on the test split, the run settings) are computed on first use only.

    ``measured`` is the submitted weights' metrics on the lab's test split and ``epochs`` the
    epoch those weights come from; ``within_measured`` / ``within_epochs`` are what "reached
    within y epochs" goals use: the same by default, the retrained run's when grading with
    ``--reproduce``."""

    def __init__(self, *, graph, events=(), answers=None, epochs: int | None = None,
                 analysis: Callable[[], Any] | None = None, measured: Callable[[], Measured] | None = None,
                 config: Callable[[], Any] | None = None,
                 within: Callable[[], tuple[Measured, int | None]] | None = None):
        self.graph = graph
        self.events = list(events)
        self.answers = dict(answers or {})
        self.epochs = epochs
        self._analysis, self._measured, self._config, self._within = analysis, measured, config, within
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, fn, default):
        if key not in self._cache:
            self._cache[key] = fn() if fn is not None else default
        return self._cache[key]

    @property
    def analysis(self):
        """The graph's shape analysis under the lab's data (None when it cannot be made)."""
        return self._once("analysis", self._analysis, None)

    @property
    def measured(self) -> Measured:
        return self._once("measured", self._measured, Measured(None, "the lab's data is not available"))

    @property
    def config(self):
        """``(TrainConfig, None)`` or ``(None, sentence)``: the settings a run would use."""
        return self._once("config", self._config, (None, "the training settings are not available"))

    @property
    def within(self) -> tuple[Measured, int | None]:
        return self._once("within", self._within, None) or (self.measured, self.epochs)


# ----------------------------------------------------------------------------- fields
@dataclass(frozen=True)
class Field:
    """One field of a goal kind.  ``type``: "int", "number", "text", "texts", "choice", "bool",
    "goals"; ``default`` _REQUIRED means the field must be given."""

    name: str
    type: str
    default: Any = _REQUIRED
    help: str = ""
    choices: tuple = ()
    minimum: float | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def schema(self) -> dict:
        out = {"name": self.name, "type": self.type, "help": self.help, "required": self.required}
        if not self.required:
            out["default"] = self.default
        if self.choices:
            out["choices"] = list(self.choices)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        return out

    def read(self, value: Any, where: str) -> Any:
        at = f"{where}: '{self.name}'"
        if value is None and not self.required:
            return None
        t = self.type
        if t == "int":
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise LabFormatError(f"{at} must be a whole number, got {value!r}.")
        elif t == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise LabFormatError(f"{at} must be a finite number, got {value!r}.")
            value = float(value)
        elif t == "bool":
            if not isinstance(value, bool):
                raise LabFormatError(f"{at} must be true or false, got {value!r}.")
        elif t in ("text", "choice"):
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
                raise LabFormatError(f"{at} must be non-empty text (at most {MAX_TEXT:,} characters).")
            if t == "choice" and value not in self.choices:
                raise LabFormatError(f"{at} is {value!r}; use one of {', '.join(map(repr, self.choices))}.")
        elif t == "texts":
            if isinstance(value, str):
                value = [value]
            if (not isinstance(value, list) or not value or len(value) > 100
                    or not all(isinstance(v, str) and v.strip() and len(v) <= MAX_TEXT for v in value)):
                raise LabFormatError(f"{at} must be a list of non-empty texts.")
            if self.choices:
                bad = [v for v in value if v not in self.choices]
                if bad:
                    raise LabFormatError(f"{at} has {bad[0]!r}, which is not one of "
                                         f"{', '.join(self.choices)}.")
            value = tuple(value)
        elif t == "goals":
            if not isinstance(value, list) or not value or len(value) > MAX_CHILDREN:
                raise LabFormatError(f"{at} must be a list of 1 to {MAX_CHILDREN} goals.")
            value = tuple(goal_from_json(g, f"{where}, goal {i + 1}") for i, g in enumerate(value))
        if self.minimum is not None and isinstance(value, (int, float)) and value < self.minimum:
            raise LabFormatError(f"{at} must be at least {self.minimum:g}, got {value:g}.")
        return value


# ----------------------------------------------------------------------------- the base class
GOAL_KINDS: dict[str, type["Goal"]] = {}


def register(cls: type["Goal"]) -> type["Goal"]:
    if cls.kind in GOAL_KINDS:
        raise ValueError(f"goal kind {cls.kind!r} registered twice")
    GOAL_KINDS[cls.kind] = cls
    return cls


class Goal:
    """A predicate on a student's project.  Subclasses set ``kind``, ``title`` (for an instructor's
    list), ``category`` ("graph", "settings", "training", "inspection", "question", "composite"),
    ``FIELDS``, and implement ``check``; ``validate`` may refuse field combinations."""

    kind: ClassVar[str] = ""
    title: ClassVar[str] = ""
    category: ClassVar[str] = ""
    FIELDS: ClassVar[tuple[Field, ...]] = ()

    def __init__(self, **values: Any):
        for f in self.FIELDS:
            setattr(self, f.name, values.get(f.name, None if f.required else f.default))

    @classmethod
    def from_json(cls, doc: dict, where: str) -> "Goal":
        known = {f.name for f in cls.FIELDS}
        unknown = sorted(k for k in doc if k != "kind" and k not in known)
        if unknown:
            raise LabFormatError(f"{where}: a '{cls.kind}' goal has no field {unknown[0]!r} "
                                 f"(its fields: {', '.join(sorted(known)) or 'none'}).")
        values = {}
        for f in cls.FIELDS:
            if f.name in doc:
                values[f.name] = f.read(doc[f.name], where)
            elif f.required:
                raise LabFormatError(f"{where}: a '{cls.kind}' goal needs the field '{f.name}' ({f.help}).")
        goal = cls(**values)
        goal.validate(where)
        return goal

    def validate(self, where: str) -> None:
        pass

    def to_json(self) -> dict:
        out: dict[str, Any] = {"kind": self.kind}
        for f in self.FIELDS:
            v = getattr(self, f.name)
            if f.type == "goals":
                out[f.name] = [g.to_json() for g in v]
            elif v is not None and (f.required or v != f.default):
                out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def check(self, ctx: GoalContext) -> GoalResult:  # pragma: no cover - interface
        raise NotImplementedError

    def evaluate(self, ctx: GoalContext) -> GoalResult:
        """``check``, with the kind filled in and any internal failure turned into "not met"."""
        try:
            result = self.check(ctx)
        except Exception as exc:  # a goal must never stop a check or a grading run
            result = GoalResult(False, f"this goal could not be checked ({type(exc).__name__}: {exc})")
        return dataclasses.replace(result, kind=self.kind)

    def children(self) -> tuple["Goal", ...]:
        return ()

    def walk(self) -> Iterator["Goal"]:
        yield self
        for c in self.children():
            yield from c.walk()

    @property
    def training(self) -> bool:
        """Whether the goal needs trained weights (a "training goal")."""
        return any(g.category == "training" for g in self.walk())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_json()})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Goal) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(repr(self))


def goal_from_json(doc: Any, where: str) -> Goal:
    if not isinstance(doc, dict):
        raise LabFormatError(f"{where}: a goal must be an object with a 'kind', got {type(doc).__name__}.")
    kind = doc.get("kind")
    if kind not in GOAL_KINDS:
        raise LabFormatError(f"{where}: unknown goal kind {kind!r}; the kinds are {', '.join(GOAL_KINDS)}.")
    return GOAL_KINDS[kind].from_json(doc, where)


def goal_kinds() -> list[dict]:
    """Every goal kind with its title, category and fields: what an instructor's goal picker lists."""
    return [{"kind": k, "title": c.title, "category": c.category, "fields": [f.schema() for f in c.FIELDS]}
            for k, c in GOAL_KINDS.items()]


# ----------------------------------------------------------------------------- wording helpers
def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" or word.split()[0] in ("LSTM", "RNN") else "a"


def _plural(word: str, n: int) -> str:
    return word if n == 1 or word.endswith("s") else word + "s"


def _count(word: str, n: int) -> str:
    return f"{n} {_plural(word, n)}"


def _names(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _bounds_fields(at_least_default=None, what="count") -> tuple[Field, Field]:
    return (Field("at_least", "int", at_least_default, f"the smallest {what} that meets the goal", minimum=0),
            Field("at_most", "int", None, f"the largest {what} that meets the goal", minimum=0))


def _check_bounds(goal, where: str) -> None:
    if goal.at_least is None and goal.at_most is None:
        raise LabFormatError(f"{where}: a '{goal.kind}' goal needs 'at_least' or 'at_most'.")
    if goal.at_least is not None and goal.at_most is not None and goal.at_least > goal.at_most:
        raise LabFormatError(f"{where}: 'at_least' ({goal.at_least}) is more than 'at_most' ({goal.at_most}).")


def _counted(kind_word: str, n: int, at_least, at_most, names: list[str] | None = None,
             more: str = "add", fewer: str = "remove") -> tuple[bool, str]:
    """The met flag and sentence of a count goal ("add a hidden layer: the network has none yet")."""
    where = f" ({_names(names)})" if names else ""
    if at_least is not None and n < at_least:
        if n == 0:
            ask = f"{_article(kind_word)} {kind_word}" if at_least == 1 else _count(kind_word, at_least)
            return False, f"{more} {ask}: the network has none yet"
        return False, (f"{more} {at_least - n} more {_plural(kind_word, at_least - n)}: the network has "
                       f"{n}{where}, the goal is at least {at_least}")
    if at_most is not None and n > at_most:
        allowed = "none is" if at_most == 0 else f"at most {at_most} {'is' if at_most == 1 else 'are'}"
        return False, (f"{fewer} {n - at_most} {_plural(kind_word, n - at_most)}: the network has {n}{where}, "
                       f"{allowed} allowed")
    return True, f"the network has {_count(kind_word, n)}{where}"


# ----------------------------------------------------------------------------- graph goals
@register
class LayerCount(Goal):
    kind, title, category = "layer_count", "Contains a layer type (at least / at most N)", "graph"
    FIELDS = (Field("layers", "texts", help="the layer types counted together, e.g. [\"Conv2d\"]"),
              *_bounds_fields(),
              Field("label", "text", None, "what to call them in sentences, e.g. \"activation layer\""))

    def validate(self, where):
        from engine.layers import REGISTRY

        unknown = [t for t in self.layers if t not in REGISTRY]
        if unknown:
            raise LabFormatError(f"{where}: unknown layer type {unknown[0]!r} in 'layers'.")
        _check_bounds(self, where)

    def _label(self) -> str:
        if self.label:
            return self.label
        if len(self.layers) == 1:
            return f"{self.layers[0]} layer"
        return f"{', '.join(self.layers[:-1])} or {self.layers[-1]} layer"

    def check(self, ctx):
        names = [n.name for n in ctx.graph.nodes if n.type in self.layers]
        met, sentence = _counted(self._label(), len(names), self.at_least, self.at_most, names)
        return GoalResult(met, sentence, {"count": len(names), "nodes": names})


@register
class HiddenLayers(Goal):
    # counts the layers with weights between the Input and the last one; whether an activation sits
    # between them (without one the network is still linear) is a layer_count goal of its own
    kind, title, category = "hidden_layers", "Has hidden layers (layers with weights; activations not counted)", "graph"
    FIELDS = _bounds_fields(1)

    def validate(self, where):
        _check_bounds(self, where)

    def check(self, ctx):
        names = structure.hidden_layers(ctx.graph)
        met, sentence = _counted("hidden layer", len(names), self.at_least, self.at_most, names)
        return GoalResult(met, sentence, {"count": len(names), "nodes": names})


@register
class Depth(Goal):
    kind, title, category = "depth", "Depth (layers with weights on the longest path)", "graph"
    FIELDS = _bounds_fields(what="depth")

    def validate(self, where):
        _check_bounds(self, where)

    def check(self, ctx):
        d = structure.depth(ctx.graph)
        path = f"its longest path from Input to Output has {_count('layer', d)} with weights"
        if self.at_least is not None and d < self.at_least:
            return GoalResult(False, f"make the network deeper: {path}, the goal is at least {self.at_least}",
                              {"depth": d})
        if self.at_most is not None and d > self.at_most:
            return GoalResult(False, f"make the network shallower: {path}, at most {self.at_most} are allowed",
                              {"depth": d})
        return GoalResult(True, f"the network is deep enough: {path}", {"depth": d})


@register
class ParamBudget(Goal):
    kind, title, category = "param_budget", "Parameter budget", "graph"
    FIELDS = (Field("at_most", "int", help="the most trainable parameters allowed", minimum=1),
              Field("at_least", "int", None, "the fewest trainable parameters asked for", minimum=0))

    def check(self, ctx):
        from engine.validate import first_error_sentence

        analysis = ctx.analysis
        if analysis is None:
            return GoalResult(False, "the parameters cannot be counted: the lab's data is not available")
        if not analysis.ok:
            return GoalResult(False, f"fix the network's problems first, so its parameters can be counted: "
                                     f"{first_error_sentence(analysis)}")
        n = analysis.total_params
        detail = {"params": n, "budget": self.at_most}
        if n > self.at_most:
            return GoalResult(False, f"make the network smaller: it has {n:,} parameters, the budget is "
                                     f"{self.at_most:,}", detail)
        if self.at_least is not None and n < self.at_least:
            return GoalResult(False, f"make the network bigger: it has {n:,} parameters, the goal is at least "
                                     f"{self.at_least:,}", detail)
        return GoalResult(True, f"the network has {n:,} parameters, within the budget of {self.at_most:,}", detail)


@register
class SkipConnection(Goal):
    kind, title, category = "skip_connection", "Has a skip connection", "graph"
    FIELDS = (Field("at_least", "int", 1, "how many merge nodes must join a skip path", minimum=1),
              Field("merges", "texts", ("Add", "Concat"), "the merge layers that count",
                    choices=("Add", "Concat", "Multiply")))

    def check(self, ctx):
        names = structure.skip_connections(ctx.graph, tuple(self.merges))
        n = len(names)
        merges = " or ".join(self.merges)
        if n < self.at_least:
            if n == 0:
                return GoalResult(False, f"add a skip connection: no {merges} joins a path that bypasses part of "
                                         "the network yet (branch off before some layers and join back with "
                                         f"{self.merges[0]})", {"count": 0, "nodes": []})
            return GoalResult(False, f"add {self.at_least - n} more skip {_plural('connection', self.at_least - n)}: "
                                     f"the network has {n} ({_names(names)}), the goal is at least {self.at_least}",
                              {"count": n, "nodes": names})
        return GoalResult(True, f"the network has {_count('skip connection', n)} ({_names(names)})",
                          {"count": n, "nodes": names})


@register
class NoProblems(Goal):
    kind, title, category = "no_problems", "The network has no problems", "graph"
    FIELDS = (Field("warnings", "bool", False, "also count warnings (e.g. an unused output) as problems"),)

    def check(self, ctx):
        analysis = ctx.analysis
        if analysis is None:
            return GoalResult(False, "the network cannot be checked: the lab's data is not available")
        problems = list(analysis.errors) + (list(analysis.warnings) if self.warnings else [])
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            return GoalResult(False, f"fix the network's problems: {problems[0]}{more}",
                              {"problems": [str(p) for p in problems[:20]]})
        return GoalResult(True, "the network has no problems")


@register
class DropoutPresent(Goal):
    kind, title, category = "dropout", "Uses dropout", "graph"
    FIELDS = (Field("min_p", "number", 0.1, "the smallest dropout probability that counts", minimum=0.0),
              Field("at_least", "int", 1, "how many Dropout layers", minimum=1))

    def check(self, ctx):
        layers = ctx.graph.nodes_of_type("Dropout")
        good = [n for n in layers if n.params["p"] >= self.min_p]
        detail = {"count": len(good), "nodes": [n.name for n in good]}
        if len(good) >= self.at_least:
            listed = ", ".join(f"{n.name}, p = {n.params['p']:g}" for n in good[:4])
            return GoalResult(True, f"the network uses dropout ({listed})", detail)
        weak = [n for n in layers if n not in good]
        if weak:
            n = weak[0]
            return GoalResult(False, f"raise the dropout probability p to at least {self.min_p:g}: "
                                     f"'{n.name}' has p = {n.params['p']:g}", detail)
        if not good:
            return GoalResult(False, "add a Dropout layer: the network has none yet", detail)
        return GoalResult(False, f"add {self.at_least - len(good)} more Dropout layers: the network has "
                                 f"{len(good)}, the goal is at least {self.at_least}", detail)


# ----------------------------------------------------------------------------- settings
SETTING_LABELS = {
    "lr": "learning rate (lr)", "weight_decay": "weight decay", "early_stopping_patience": "early stopping patience",
    "batch_size": "batch size", "epochs": "number of epochs", "optimizer": "optimizer", "momentum": "momentum",
    "loss": "loss", "schedule": "learning-rate schedule", "grad_clip": "gradient clipping",
}


@register
class SettingInRange(Goal):
    kind, title, category = "setting", "A training setting in a range", "settings"
    FIELDS = (Field("name", "text", help="a training setting, e.g. lr, weight_decay, optimizer"),
              Field("at_least", "number", None, "the smallest value that meets the goal"),
              Field("at_most", "number", None, "the largest value that meets the goal"),
              Field("one_of", "texts", None, "the values that meet the goal (for settings like optimizer)"),
              Field("label", "text", None, "what to call the setting in sentences"))

    def validate(self, where):
        from engine.train_config import TrainConfig

        names = {f.name for f in dataclasses.fields(TrainConfig)}
        if self.name not in names:
            raise LabFormatError(f"{where}: unknown training setting {self.name!r}; use one of "
                                 f"{', '.join(sorted(names))}.")
        if self.at_least is None and self.at_most is None and self.one_of is None:
            raise LabFormatError(f"{where}: a 'setting' goal needs 'at_least', 'at_most' or 'one_of'.")

    def check(self, ctx):
        config, problem = ctx.config
        if config is None:
            return GoalResult(False, f"fix the training settings first: {problem}")
        label = self.label or SETTING_LABELS.get(self.name, self.name)
        value = getattr(config, self.name)
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        detail = {"value": value}
        if self.one_of is not None and str(value) not in self.one_of:
            return GoalResult(False, f"set the {label} to {' or '.join(self.one_of)}: it is {shown}", detail)
        if self.at_least is not None or self.at_most is not None:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return GoalResult(False, f"the {label} is {shown}, not a number", detail)
            if self.at_least is not None and value < self.at_least:
                return GoalResult(False, f"set the {label} to at least {self.at_least:g}: it is {shown}", detail)
            if self.at_most is not None and value > self.at_most:
                return GoalResult(False, f"set the {label} to at most {self.at_most:g}: it is {shown}", detail)
        return GoalResult(True, f"the {label} is {shown}", detail)


# ----------------------------------------------------------------------------- training
@register
class MetricGoal(Goal):
    kind, title, category = "metric", "A test metric reached (optionally within N epochs)", "training"
    FIELDS = (Field("metric", "choice", help="what is measured on the lab's test split", choices=tuple(METRICS)),
              Field("at_least", "number", None, "for accuracy, macro F1 and R²: the value to reach"),
              Field("at_most", "number", None, "for loss, MSE and MAE: the value to get below"),
              Field("within_epochs", "int", None, "the weights must come from at most this many epochs of training",
                    minimum=1))

    def validate(self, where):
        higher = higher_is_better(self.metric)
        want, other = ("at_least", "at_most") if higher else ("at_most", "at_least")
        better = "higher" if higher else "lower"
        if getattr(self, other) is not None:
            raise LabFormatError(f"{where}: {_article(self.metric)} '{self.metric}' goal takes '{want}' ({better} "
                                 f"is better), not '{other}'.")
        if getattr(self, want) is None:  # both empty: say what to fill in, not what to leave out
            raise LabFormatError(f"{where}: set '{want}' for {_article(self.metric)} '{self.metric}' goal ({better} "
                                 f"is better): the value to {'reach' if higher else 'get below'}.")

    @property
    def threshold(self) -> float:
        return self.at_least if higher_is_better(self.metric) else self.at_most

    def check(self, ctx):
        measured, epochs = ctx.within if self.within_epochs is not None else (ctx.measured, ctx.epochs)
        title = f"test {METRIC_TITLES[self.metric]}"
        higher = higher_is_better(self.metric)
        target = format_metric(self.metric, self.threshold)
        if not measured.ok:
            return GoalResult(False, measured.missing)
        if self.metric not in measured.values:
            return GoalResult(False, f"the {title} cannot be measured for this task")
        value = measured.values[self.metric]
        shown = format_metric(self.metric, value)
        detail = {"metric": self.metric, "value": value, "threshold": self.threshold, "epochs": epochs}
        good = value >= self.threshold if higher else value <= self.threshold
        within = f" within {self.within_epochs} epochs" if self.within_epochs is not None else ""
        verb = "raise" if higher else "lower"
        bound = "at least" if higher else "at most"
        if not good:
            after = f" after {_count('epoch', epochs)}" if within and epochs else ""
            if epochs is None:  # no run recorded (the starter's weights): "it is 15.5%" read as a result
                after = " (no training run yet)"
            return GoalResult(False, f"{verb} the {title} to {bound} {target}{within}: it is {shown}{after}", detail)
        if self.within_epochs is not None:
            if epochs is None:
                return GoalResult(False, f"the {title} is {shown}, but the project has no record of how many "
                                         "epochs it trained: train it in LayerLab so the run is recorded", detail)
            if epochs > self.within_epochs:
                return GoalResult(False, f"reach a {title} of {target} within {self.within_epochs} epochs: it is "
                                         f"{shown}, but after {_count('epoch', epochs)}; train again from fresh "
                                         f"weights for {self.within_epochs} epochs or fewer", detail)
            return GoalResult(True, f"the {title} is {shown} ({bound} {target}), reached in "
                                    f"{_count('epoch', epochs)}", detail)
        return GoalResult(True, f"the {title} is {shown} ({bound} {target})", detail)


# ----------------------------------------------------------------------------- inspection
def _events(ctx: GoalContext, kind: str) -> list[dict]:
    return [e for e in ctx.events if isinstance(e, dict) and e.get("kind") == kind]


@register
class ViewOpened(Goal):
    kind, title, category = "view_opened", "Opened a view", "inspection"
    FIELDS = (Field("view", "choice", help="the view to open", choices=tuple(VIEWS)),)

    def check(self, ctx):
        name = VIEWS[self.view]
        if any(e.get("view") == self.view for e in _events(ctx, "view_opened")):
            return GoalResult(True, f"you opened the {name} view")
        return GoalResult(False, f"open the {name} view: you have not opened it yet")


@register
class TimelineScrubbed(Goal):
    kind, title, category = "timeline_scrubbed", "Scrubbed the timeline", "inspection"

    def check(self, ctx):
        if _events(ctx, "timeline_scrubbed"):
            return GoalResult(True, "you scrubbed the timeline back to earlier epochs")
        return GoalResult(False, "scrub the timeline (drag it back to an earlier epoch after training): "
                                 "you have not done it yet")


@register
class AttributionRun(Goal):
    kind, title, category = "attribution_run", "Ran an attribution", "inspection"
    FIELDS = (Field("methods", "texts", None, "the methods that count (none: any)", choices=ATTRIBUTION_METHODS),)

    def check(self, ctx):
        ran = [str(e.get("method")) for e in _events(ctx, "attribution_run")]
        wanted = self.methods
        hits = [m for m in ran if wanted is None or m in wanted]
        if hits:
            return GoalResult(True, f"you ran an attribution ({_names(sorted(set(hits)))})", {"methods": ran})
        which = "any method" if wanted is None else " or ".join(wanted)
        so_far = f" (you ran: {_names(sorted(set(ran)))})" if ran else ""
        return GoalResult(False, f"explain a prediction with {which}: you have not run it yet{so_far}",
                          {"methods": ran})


@register
class SanityCheckRun(Goal):
    kind, title, category = "sanity_check_run", "Ran the sanity check", "inspection"

    def check(self, ctx):
        if _events(ctx, "sanity_check_run"):
            return GoalResult(True, "you ran the sanity check")
        return GoalResult(False, "run the sanity check on your explanations: you have not run it yet")


# ----------------------------------------------------------------------------- questions
class Question(Goal):
    """A question the student answers in the lab panel; ``id`` names the answer (default: the step's)."""

    category = "question"

    def answer_of(self, ctx: GoalContext) -> Any:
        return ctx.answers.get(self.id)


@register
class ChoiceQuestion(Question):
    kind, title = "choice", "Multiple-choice question"
    FIELDS = (Field("id", "text", None, "the answer's name (default: the step's id)"),
              Field("question", "text", help="the question, in markdown"),
              Field("options", "texts", help="the options the student picks from"),
              Field("answer", "text", help="the right option (one of 'options')"))

    def validate(self, where):
        if len(self.options) < 2 or len(set(self.options)) != len(self.options):
            raise LabFormatError(f"{where}: a 'choice' question needs at least two different options.")
        if self.answer not in self.options:
            raise LabFormatError(f"{where}: the answer {self.answer!r} is not one of the options.")

    def check(self, ctx):
        given = self.answer_of(ctx)
        if given is None or given == "":
            return GoalResult(False, f"answer the question: {self.question}")
        if str(given) not in self.options:
            return GoalResult(False, f"pick one of the options: “{given}” is not one of them", {"answer": given})
        if str(given) == self.answer:
            return GoalResult(True, f"right: {self.answer}", {"answer": given})
        return GoalResult(False, f"“{given}” is not right: look again (a hint may help)", {"answer": given})


def parse_number(value: Any) -> float | None:
    """A student's number: 0.25, "0.25" or "0,25"; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            v = float(value.strip().replace(",", "."))
        except ValueError:
            return None
        return v if math.isfinite(v) else None
    return None


@register
class NumberQuestion(Question):
    kind, title = "number", "Question with a number answer"
    FIELDS = (Field("id", "text", None, "the answer's name (default: the step's id)"),
              Field("question", "text", help="the question, in markdown"),
              Field("answer", "number", help="the right value"),
              Field("tolerance", "number", 0.0, "how far an answer may be from the value", minimum=0.0),
              Field("unit", "text", None, "the unit shown next to the answer box"))

    def check(self, ctx):
        given = self.answer_of(ctx)
        if given is None or given == "":
            return GoalResult(False, f"answer the question: {self.question}")
        value = parse_number(given)
        if value is None:
            return GoalResult(False, f"give a number: “{given}” is not one", {"answer": given})
        if abs(value - self.answer) <= self.tolerance + 1e-12:
            return GoalResult(True, f"right: {value:g}" + (f" {self.unit}" if self.unit else ""), {"answer": value})
        return GoalResult(False, f"{value:g} is not right: check your working (a hint may help)", {"answer": value})


# ----------------------------------------------------------------------------- composition
class _Composite(Goal):
    category = "composite"
    FIELDS = (Field("goals", "goals", help="the goals combined"),)

    def children(self):
        return tuple(self.goals)


@register
class AllOf(_Composite):
    kind, title = "all", "All of these"

    def check(self, ctx):
        results = tuple(g.evaluate(ctx) for g in self.goals)
        missing = [r.sentence for r in results if not r.met]
        if not missing:
            return GoalResult(True, "; ".join(r.sentence for r in results), children=results)
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        return GoalResult(False, "; ".join(missing[:3]) + more, children=results)


@register
class AnyOf(_Composite):
    kind, title = "any", "Any one of these"

    def check(self, ctx):
        results = tuple(g.evaluate(ctx) for g in self.goals)
        met = [r for r in results if r.met]
        if met:
            return GoalResult(True, met[0].sentence, children=results)
        if len(results) == 1:
            return GoalResult(False, results[0].sentence, children=results)
        return GoalResult(False, "do one of these: " + "; or ".join(r.sentence for r in results), children=results)


def questions(goal: Goal) -> list[Question]:
    return [g for g in goal.walk() if isinstance(g, Question)]
