"""What the open lab forbids, in the editor's words.

The document holds the lab whose locks apply (``Document.lab``, None when the project follows no
lab).  Every function here answers one question the editor asks before an edit - None when it is
allowed, else the sentence to show where the student tried - and ``refuse`` raises it as
``LabLocked``.  The commands ask (gui/commands.py), so a lock holds wherever an edit comes from
(canvas, inspector, paste, a fix, a script); the widgets ask too, to look locked before anyone
tries.  The sentences themselves come from ``engine.labs.locks``.
"""
from __future__ import annotations

from engine.errors import GraphError
from engine.labs import locks as lab_locks


class LabLocked(GraphError):
    """An edit the open lab's locks forbid; the sentence says what and why."""

    kind = "locked"


def _sentence(reason: str) -> str:
    reason = reason.strip()
    return reason[:1].lower() + reason[1:] if reason[:2] != reason[:2].upper() else reason


def _node_name(doc, node_id: str) -> str:
    return doc.graph.node(node_id).name if doc.graph.has_node(node_id) else node_id


def delete_refusal(doc, node_id: str) -> str | None:
    lab = getattr(doc, "lab", None)
    reason = lab_locks.refuse_delete(lab, node_id) if lab is not None else None
    if reason is None:
        return None
    return f"'{_node_name(doc, node_id)}' is locked by the lab: {_sentence(reason)}"


def edit_refusal(doc, node_id: str) -> str | None:
    lab = getattr(doc, "lab", None)
    reason = lab_locks.refuse_edit(lab, node_id) if lab is not None else None
    if reason is None:
        return None
    reason = reason.strip()
    return (f"'{_node_name(doc, node_id)}' is locked by the lab, so its settings and name stay as they are. "
            f"{reason[:1].upper() + reason[1:]}")


def layer_refusal(doc, layer_type: str) -> str | None:
    lab = getattr(doc, "lab", None)
    return lab_locks.refuse_layer(lab, layer_type) if lab is not None else None


def setting_refusal(doc, name: str) -> str | None:
    lab = getattr(doc, "lab", None)
    return lab_locks.refuse_setting(lab, name) if lab is not None else None


def data_refusal(doc) -> str | None:
    lab = getattr(doc, "lab", None)
    return lab_locks.refuse_data_edit(lab) if lab is not None else None


def allowed_types(doc) -> tuple[str, ...] | None:
    """The layer types the student may add (None: every type)."""
    lab = getattr(doc, "lab", None)
    return lab_locks.allowed_layer_types(lab) if lab is not None else None


def node_lock(doc, node_id: str):
    """The lab's ``NodeLock`` of a node (None: not locked)."""
    lab = getattr(doc, "lab", None)
    return lab_locks.node_lock(lab, node_id) if lab is not None else None


def setting_locks(doc) -> dict[str, tuple[str, str]]:
    """Every locked training setting: name -> (``"fixed"`` | ``"hidden"``, the sentence why)."""
    lab = getattr(doc, "lab", None)
    if lab is None:
        return {}
    return {name: (mode, lab_locks.refuse_setting(lab, name)) for name, mode in lab.locks.settings.items()}


def with_locked_settings(doc, config: dict) -> dict:
    """``config`` with every setting the lab locks put back as the lab has it (given, or left to the
    default when the lab does not give it: what the grader's lock check compares)."""
    lab = getattr(doc, "lab", None)
    if lab is None:
        return config
    for name in lab.locks.settings:
        if lab_locks.lab_setting(config, name) == lab_locks.lab_setting(lab.training, name):
            continue
        if name in lab.training:
            config[name] = lab.training[name]
        else:
            config.pop(name, None)
    return config


def refuse(sentence: str | None) -> None:
    if sentence:
        raise LabLocked(sentence)


def fix_refusal(doc, fix) -> str | None:
    """A one-click fix may insert a layer, change a setting or delete a layer: the same locks apply."""
    if fix.kind == "insert" and fix.layer_type:
        return layer_refusal(doc, fix.layer_type)
    if fix.kind == "set_param" and fix.node_id:
        return edit_refusal(doc, fix.node_id)
    if fix.kind == "remove" and fix.node_id:
        return delete_refusal(doc, fix.node_id)
    return None
