"""What a lab's locks allow, asked the way an editor asks: "may I delete this node?" returns None
(yes) or the sentence to show (no).  ``lock_problems`` lists what a finished project broke, for
the grader (a student who edits the JSON by hand can get past the editor, not past the grader).

    reason = refuse_delete(lab, node_id)    # "This layer is part of the lab's setup." or None
    refuse_layer(lab, "Conv2d")              # the palette allow-list
    setting_lock(lab, "seed")                # "fixed" | "hidden" | None
"""
from __future__ import annotations

import dataclasses
from typing import Any

from engine.labs.format import Lab, NodeLock


def node_lock(lab: Lab, node_id: str) -> NodeLock | None:
    return lab.locks.nodes.get(node_id)


def refuse_delete(lab: Lab, node_id: str) -> str | None:
    lock = node_lock(lab, node_id)
    return lock.reason if lock is not None and lock.delete else None


def refuse_edit(lab: Lab, node_id: str) -> str | None:
    """Why the node's parameters and name cannot be changed (None: they can).  Moving is always allowed."""
    lock = node_lock(lab, node_id)
    return lock.reason if lock is not None and lock.edit else None


def allowed_layer_types(lab: Lab) -> tuple[str, ...] | None:
    """The layer types a student may add (None: every type)."""
    return lab.locks.palette


def refuse_layer(lab: Lab, layer_type: str) -> str | None:
    allowed = lab.locks.palette
    if allowed is None or layer_type in allowed:
        return None
    return (f"This lab's palette has no {layer_type}: build the network from "
            f"{', '.join(allowed)}.")


def setting_lock(lab: Lab, name: str) -> str | None:
    return lab.locks.settings.get(name)


def refuse_setting(lab: Lab, name: str) -> str | None:
    mode = setting_lock(lab, name)
    if mode is None:
        return None
    return f"The lab fixes the training setting '{name}' so every student's run is comparable."


def refuse_data_edit(lab: Lab) -> str | None:
    if not lab.locks.data:
        return None
    return "The lab fixes the data, its split and its seeds: goals are measured on the lab's own test split."


def lab_setting(training: dict, name: str) -> Any:
    """A setting's value in ``training``, or TrainConfig's default when it is not given."""
    from engine.train_config import TrainConfig

    if name in training:
        return training[name]
    return {f.name: f.default for f in dataclasses.fields(TrainConfig)}[name]


def lock_problems(lab: Lab, project) -> list[str]:
    """Sentences for every lock the project breaks (empty: none)."""
    from engine.data import default_spec
    from engine.errors import DataError

    problems = []
    graph = project.graph
    starter = {n["id"]: n for n in lab.starter["nodes"]}
    for node_id, lock in lab.locks.nodes.items():
        want = starter[node_id]
        if not graph.has_node(node_id):
            if lock.delete:
                problems.append(f"the locked layer '{want['name']}' was deleted ({lock.reason})")
            continue
        node = graph.node(node_id)
        have = graph.to_dict()["nodes"][[n.id for n in graph.nodes].index(node_id)]
        if lock.edit and (have["type"], have["name"], have["params"]) != (want["type"], want["name"], want["params"]):
            problems.append(f"the locked layer '{want['name']}' was changed ({lock.reason})")
        elif have["type"] != want["type"]:
            problems.append(f"the locked layer '{want['name']}' was replaced by a {node.type}")
    if lab.locks.palette is not None:
        allowed = set(lab.locks.palette) | {n["type"] for n in lab.starter["nodes"]}
        for node in graph.nodes:
            if node.type not in allowed:
                problems.append(f"the layer '{node.name}' is a {node.type}, which this lab's palette does not offer")
    if lab.locks.data:
        data = dict(project.data or {})
        try:
            complete = {**default_spec(data.get("source")), **data}
        except DataError:
            complete = data
        if complete != lab.data:
            changed = sorted(k for k in set(complete) | set(lab.data) if complete.get(k) != lab.data.get(k))
            problems.append(f"the data settings were changed ({', '.join(changed[:4])}); the lab fixes them")
    training = dict(project.training or {})
    for name in lab.locks.settings:
        if lab_setting(training, name) != lab_setting(lab.training, name):
            problems.append(f"the training setting '{name}' is {lab_setting(training, name)!r}, but the lab fixes "
                            f"it at {lab_setting(lab.training, name)!r}")
    return problems
