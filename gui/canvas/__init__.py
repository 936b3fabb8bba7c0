"""The node-graph canvas: a scene that mirrors the document, its items, gestures and the view."""
from gui.canvas.scene import GraphScene
from gui.canvas.view import LAYER_MIME, GraphView

__all__ = ["GraphScene", "GraphView", "LAYER_MIME"]
