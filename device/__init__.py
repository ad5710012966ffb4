"""The device as host and gateware both see it: its wire format (:mod:`.wire`) and its bit- and
cycle-exact model (:mod:`.model`).

Plain Python with no dependencies: the gateware (:mod:`montpipe.hdl`) and the host side
(:mod:`montpipe.driver`, :mod:`montpipe.sim`) import it, and it imports neither.
"""
