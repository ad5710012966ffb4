"""Backends behind :class:`montpipe.driver.backend.Backend`: ``cpu`` (the host), ``model`` (the
host's results, the accelerator's projected time), ``fpga`` (the accelerator over its host link)
and ``sim`` (the ``fpga`` backend's host code on a simulated board)."""
