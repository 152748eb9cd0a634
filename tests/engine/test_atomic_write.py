"""Atomic writes: new files get the permissions the umask gives any new file; a replaced file keeps its own."""

from __future__ import annotations

import contextlib
import os
import stat

import pytest

from engine.atomic import atomic_write, write_text_atomic

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


@contextlib.contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_a_new_file_gets_the_permissions_the_umask_allows(tmp_path, mask, expected):
    target = tmp_path / "project.cnnproj"
    with umask(mask):
        write_text_atomic(target, "{}")
    assert mode_of(target) == expected
    assert target.read_text() == "{}"


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "private.cnnproj"
    target.write_text("old")
    target.chmod(0o600)
    with umask(0o022):
        write_text_atomic(target, "new")
    assert mode_of(target) == 0o600 and target.read_text() == "new"


def test_a_failed_write_leaves_no_temporary_file_and_the_old_content(tmp_path):
    target = tmp_path / "w.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["w.bin"]
