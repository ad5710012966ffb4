"""Gateware for the modular-exponentiation accelerator (Amaranth 0.5).

``montmul`` (a Montgomery lane on two hard multipliers), ``modexp`` (its exponentiation
sequencer), ``core`` and ``array`` (lanes behind tagged request/result streams), ``link`` and
``uart`` (the host link, ``docs/protocol.md``), ``board`` and ``synth`` (board tops and the open
toolchain flow), ``model`` (bit- and cycle-exact models in plain Python), ``export`` (Verilog).
"""
