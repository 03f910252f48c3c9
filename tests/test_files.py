"""Files written safely: only regular files, atomically, links followed, no folder made unasked."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dcops.errors import UserError
from dcops.files import AtomicWrite, is_stdout, open_output, StdoutWrite, write_atomically


def test_writes_a_new_file_whole(tmp_path):
    target = tmp_path / "report.md"
    write_atomically(target, "# report\n")
    assert target.read_text() == "# report\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_replacing_keeps_the_files_mode(tmp_path):
    target = tmp_path / "rules.yml"
    target.write_text("old")
    target.chmod(0o600)
    write_atomically(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_symbolic_link_is_followed_and_stays_a_link(tmp_path):
    real = tmp_path / "real.md"
    real.write_text("old")
    link = tmp_path / "link.md"
    link.symlink_to(real)
    write_atomically(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new"


def test_a_dangling_link_writes_its_target(tmp_path):
    link = tmp_path / "link.md"
    link.symlink_to(tmp_path / "later.md")
    write_atomically(link, "content")
    assert link.is_symlink() and (tmp_path / "later.md").read_text() == "content"


def test_a_fifo_is_refused_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="it is a FIFO"):
        write_atomically(fifo, "x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["fifo"]


def test_a_link_to_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "link").symlink_to(fifo)
    with pytest.raises(UserError, match="it is a FIFO"):
        write_atomically(tmp_path / "link", "x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("device", ["/dev/null", "/dev/full"])
def test_a_device_is_refused_and_untouched(device):
    before = os.stat(device)
    with pytest.raises(UserError, match="it is a device"):
        AtomicWrite(device)
    after = os.stat(device)
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino and after.st_rdev == before.st_rdev
    assert not [name for name in os.listdir("/dev") if name.startswith(f".{Path(device).name}.")]


def test_a_folder_is_refused(tmp_path):
    (tmp_path / "site").mkdir()
    with pytest.raises(UserError, match="it is a folder"):
        write_atomically(tmp_path / "site", "x")
    assert (tmp_path / "site").is_dir()


def test_a_missing_folder_is_made_only_when_asked(tmp_path):
    target = tmp_path / "no" / "such" / "x.html"
    with pytest.raises(UserError, match=r"no folder .*no/such \(--mkdir creates it\)"):
        write_atomically(target, "x")
    assert not (tmp_path / "no").exists()
    write_atomically(target, "x", make_parents=True)
    assert target.read_text() == "x"


def test_a_file_in_the_way_of_the_folder_is_refused(tmp_path):
    (tmp_path / "plain").write_text("")
    with pytest.raises(UserError, match="is not a folder"):
        write_atomically(tmp_path / "plain" / "x.md", "x", make_parents=True)


def test_abandon_leaves_the_old_file(tmp_path):
    target = tmp_path / "x.md"
    target.write_text("old")
    pending = AtomicWrite(target)
    pending.abandon()
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.md"]


def test_a_fifo_swapped_in_before_commit_is_refused(tmp_path):
    target = tmp_path / "x.md"
    pending = AtomicWrite(target)
    os.mkfifo(target)
    with pytest.raises(UserError, match="it is a FIFO"):
        pending.commit("x")
    assert stat.S_ISFIFO(os.lstat(target).st_mode) and [p.name for p in tmp_path.iterdir()] == ["x.md"]


def test_dash_is_standard_output(tmp_path, capsys):
    assert is_stdout("-") and is_stdout(None) and not is_stdout(tmp_path / "-x")
    output = open_output("-")
    assert isinstance(output, StdoutWrite)
    output.commit("hello\n")
    assert capsys.readouterr().out == "hello\n"
