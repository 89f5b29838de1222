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


def test_device_and_dtype_make_their_own_cache_key(tmp_path: Path) -> None:
    from ui.state import _parse_key

    default = resolve_model_choice("induction-2l", "")
    assert default.key == "induction-2l" and default.name == "induction-2l"
    half = resolve_model_choice("induction-2l", "", "cpu", "bfloat16")
    assert half.key == "induction-2l|cpu|bfloat16" and half.name == "induction-2l"
    assert _parse_key(half.key) == ("induction-2l", "cpu", "bfloat16")
    assert _parse_key(default.key) == ("induction-2l", None, None)
    folder = resolve_model_choice(None, str(tmp_path), "auto", "float16")
    assert _parse_key(folder.key) == (str(tmp_path.resolve()), None, "float16")


def test_app_loads_in_the_chosen_dtype() -> None:
    import torch
    from streamlit.testing.v1 import AppTest

    from ui import state

    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"), default_timeout=90)
    at.session_state[state.MODEL_NAME_KEY] = "induction-2l"
    at.session_state[state.DTYPE_KEY] = "bfloat16"
    at.session_state[state.DEVICE_KEY] = "cpu"
    at.run()
    assert not at.exception and not at.error
    model = state._load_model("induction-2l|cpu|bfloat16").model
    assert model.W_E.dtype == torch.bfloat16 and len(at.get("plotly_chart")) == 1
