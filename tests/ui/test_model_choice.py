"""ui.state.resolve_model_choice: which model the sidebar selection means."""

from __future__ import annotations

from pathlib import Path

import pytest

from ui.state import ModelChoiceError, resolve_model_choice


def test_folder_wins_over_name(tmp_path: Path) -> None:
    choice = resolve_model_choice("induction-2l", f"  {tmp_path}  ")
    assert choice.is_folder and choice.key == str(tmp_path.resolve())


def test_name_when_folder_empty() -> None:
    choice = resolve_model_choice("induction-2l", "   ")
    assert not choice.is_folder and choice.key == "induction-2l"


def test_errors(tmp_path: Path) -> None:
    cases = {
        "no_model": (None, ""),
        "folder_missing": ("x", str(tmp_path / "missing")),
        "not_a_folder": ("x", str(Path(__file__))),
    }
    for code, (name, folder) in cases.items():
        with pytest.raises(ModelChoiceError) as err:
            resolve_model_choice(name, folder)
        assert err.value.code == code


def test_gguf_file_is_accepted(tmp_path: Path) -> None:
    gguf = tmp_path / "model.Q4_1.gguf"
    gguf.write_bytes(b"GGUF")
    choice = resolve_model_choice(None, str(gguf))
    assert choice.is_folder and choice.key == str(gguf.resolve())
    with pytest.raises(ModelChoiceError) as err:
        resolve_model_choice(None, str(tmp_path / "missing.gguf"))
    assert err.value.code == "folder_missing"
