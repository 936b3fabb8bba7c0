"""The node-graph canvas: a scene that mirrors the document, its items, gestures and the view."""
from gui.canvas.scene import GraphScene
from gui.canvas.view import GraphView
from gui.mime import LAYER_MIME

__all__ = ["GraphScene", "GraphView", "LAYER_MIME"]
