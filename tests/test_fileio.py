"""Output files are atomic and inputs are checked before they are opened (lutgen.fileio)."""

from __future__ import annotations

import os
import signal
import stat

import pytest

from lutgen import interrupts
from lutgen.errors import LutgenError, OptionError, Terminated
from lutgen.fileio import (
    atomic_path,
    atomic_write_bytes,
    check_folder_writable,
    check_regular_file,
    ensure_not_input,
)

LONG = "n" * 300


def test_atomic_write_replaces_the_file_and_keeps_its_permissions(tmp_path):
    target = tmp_path / "look.cube"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["look.cube"]


@pytest.mark.parametrize("failure", [ValueError("boom"), KeyboardInterrupt()])
def test_a_failure_or_interruption_leaves_the_old_file_and_no_temporary(tmp_path, failure):
    target = tmp_path / "look.cube"
    target.write_bytes(b"old")
    with pytest.raises(type(failure)):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            assert temporary.parent == tmp_path and temporary.name.endswith(".part.cube")
            raise failure
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["look.cube"]


def test_atomic_write_refuses_folders_and_unusable_names(tmp_path):
    with pytest.raises(LutgenError, match="it is a folder"):
        atomic_write_bytes(tmp_path, b"x")
    with pytest.raises(LutgenError, match="the name is too long"):
        atomic_write_bytes(tmp_path / f"{LONG}.png", b"x")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(LutgenError, match="cannot write"):
        atomic_write_bytes(tmp_path / "notes.txt" / "out.png", b"x")


@pytest.mark.parametrize(("signum", "raised"), [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)])
def test_signals_are_held_inside_the_block_and_raised_after(signum, raised):
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupts.install()
    reached_the_end = False
    try:
        with pytest.raises(raised):
            with interrupts.held():
                os.kill(os.getpid(), signum)
                for _ in range(1000):  # a handler that raised would do so between these bytecodes
                    pass
                reached_the_end = True
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert reached_the_end


def test_check_regular_file_names_what_the_path_really_is(tmp_path):
    regular = tmp_path / "a.cube"
    regular.write_text("x")
    assert check_regular_file(regular, ".cube file") == regular
    os.mkfifo(tmp_path / "pipe.cube")
    os.symlink("/dev/null", tmp_path / "device.cube")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.cube")
    os.symlink(tmp_path / "loop2", tmp_path / "loop1")
    os.symlink(tmp_path / "loop1", tmp_path / "loop2")
    cases = {
        tmp_path / "pipe.cube": "it is a FIFO (named pipe), not a regular .cube file",
        tmp_path / "device.cube": "it is a character device, not a regular .cube file",
        tmp_path / "dangling.cube": "it is a symbolic link to a missing file",
        tmp_path / "loop1": "it is a symbolic link loop",
        tmp_path / "missing.cube": "no such file",
        tmp_path: "it is a folder, not a .cube file",
        tmp_path / "a.cube" / "x.cube": "a part of the path is a file, not a folder",
        tmp_path / LONG: "the name is too long",
    }
    for path, reason in cases.items():
        with pytest.raises(OptionError) as refused:
            check_regular_file(path, ".cube file", OptionError)
        assert str(refused.value) == f"cannot read {path}: {reason}"


def test_an_image_is_an_image(tmp_path):
    with pytest.raises(LutgenError, match="it is a folder, not an image"):
        check_regular_file(tmp_path, "image")


def test_check_folder_writable_names_the_obstacle(tmp_path):
    check_folder_writable(tmp_path / "new" / "logs", "--log-dir new/logs")  # made later: fine
    (tmp_path / "file").write_text("x")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(OptionError, match="cannot be created: .*file is a file"):
        check_folder_writable(tmp_path / "file" / "logs", "--log-dir file/logs")
    with pytest.raises(OptionError, match=r"cannot be created: .*pipe is a FIFO \(named pipe\)"):
        check_folder_writable(tmp_path / "pipe" / "logs", "--log-dir pipe/logs")
    with pytest.raises(OptionError, match="the name is too long"):
        check_folder_writable(tmp_path / LONG / "logs", "--log-dir")


def test_an_output_that_is_an_input_by_another_name_is_refused(tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"x")
    os.symlink(photo, tmp_path / "alias.png")
    with pytest.raises(LutgenError, match="refusing to overwrite the input"):
        ensure_not_input(tmp_path / "alias.png", [photo])
    ensure_not_input(tmp_path / "new.png", [photo])
    ensure_not_input(tmp_path / f"{LONG}.png", [photo])
