"""The files of the exported PyTorch package, as templates (``*.tmpl``) that python_package.py fills in."""
