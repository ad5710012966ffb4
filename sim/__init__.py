"""cocotb verification of the gateware against gmpy2.

Empty until the verification issue lands: the package exists so the layout and the import name
``montpipe.sim`` are fixed from the start.
"""
