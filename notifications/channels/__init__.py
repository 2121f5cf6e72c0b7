"""Channel kinds: base.py, one module per kind, and registry.py, the explicit dict that lists them."""
