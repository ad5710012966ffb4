"""Backends behind :class:`montpipe.driver.backend.Backend`: ``cpu`` today; ``model``, ``sim`` and
``fpga`` arrive with the accelerator issues."""
