"""cocotb verification of the gateware against gmpy2, on Icarus Verilog and Verilator.

``python -m montpipe.sim`` (``make sim``) runs the sets in ``plans`` through ``runner``; the
testbench classes are in ``tb``, the cocotb test modules are ``cocotb_*``; ``formal`` is the
SymbiYosys proof of the Montgomery lane.
"""
