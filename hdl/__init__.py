"""Gateware for the modular-exponentiation accelerator (Amaranth 0.5).

Empty until the gateware issue lands: the package exists so the layout and the import name
``montpipe.hdl`` are fixed from the start.
"""
