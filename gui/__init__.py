"""LayerLab's desktop GUI (PySide6 + pyqtgraph) over the headless engine.

``gui.app.run_app`` starts it.  The pieces: ``document`` (the open project, its
undo stack and the engine-to-Qt bridge), ``commands`` (one QUndoCommand per graph
edit), ``canvas/`` (the node-graph editor), the docks (``palette``, ``inspector``,
``problems``, ``code_view``, ``dataset_panel``, ``history_panel``) and
``main_window`` (composition only).
"""
