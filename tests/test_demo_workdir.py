"""hcp demo says where its work directory is and what becomes of it."""

from __future__ import annotations

import pytest

from hcp.cli.tools import demo_workdir


@pytest.mark.parametrize("keep", [False, True])
def test_a_temporary_work_directory_is_named_and_removed_unless_kept(keep: bool, capsys) -> None:
    with demo_workdir(None, keep=keep) as path:
        (path / "collector.sqlite").write_text("x")
        start = capsys.readouterr().out
    end = capsys.readouterr().out
    assert f"work directory: {path}" in start
    if keep:
        assert "kept afterwards" in start and path.exists() and f"kept the work directory {path}" in end
        (path / "collector.sqlite").unlink()
        path.rmdir()
    else:
        assert "removed at the end, --keep keeps it" in start and not path.exists()
        assert f"removed the work directory {path}" in end


def test_a_chosen_work_directory_is_kept(tmp_path, capsys) -> None:
    with demo_workdir(tmp_path / "mine") as path:
        path.mkdir()
    printed = capsys.readouterr().out
    assert path.exists() and f"work directory: {path}" in printed and f"kept the work directory {path}" in printed
