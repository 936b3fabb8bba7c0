"""Drag-and-drop formats shared by the palette and the canvas (a leaf module: it imports nothing)."""

#: a layer type dragged from the palette; the payload is the type name, UTF-8
LAYER_MIME = "application/x-layerlab-layer"
