"""montpipe: an open FPGA accelerator for modular exponentiation, as a Paillier backend.

Subpackages: :mod:`montpipe.driver` (the Paillier library and its backends),
:mod:`montpipe.hdl` (gateware), :mod:`montpipe.sim` (cocotb verification),
:mod:`montpipe.fl_demo` (federated learning on the driver), :mod:`montpipe.bench`.
"""

__version__ = "0.1.0"
