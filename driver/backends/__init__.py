"""Backends behind :class:`montpipe.driver.backend.Backend`: ``cpu`` (the host) and ``model`` (the
host's results, the accelerator's projected time); ``sim`` and ``fpga`` arrive with the host
link."""
