"""LayerLab engine: headless graph, compile, data, training. Never imports Qt."""
