"""Safe loading for a shared server: the path allow-list, no code from pickles, a clear
ModelLoadError for every damaged checkpoint, and NaN/Inf weights as a warning."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from models import ModelLoadError, ModelPathRefused, ModelWeightsWarning, load_pretrained
from models.loading.safety import allowed_model_dirs, check_model_path


@pytest.fixture
def ckpt(tiny_gpt2_dir, tmp_path):
    return shutil.copytree(tiny_gpt2_dir, tmp_path / "models" / "ckpt")


# ----------------------------------------------------------------------------------- allow-list


def test_paths_inside_the_allowed_dirs(tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "a" / "b").mkdir(parents=True)
    assert check_model_path(root, [root]) == root.resolve()  # the folder itself
    assert check_model_path(root / "a" / "b", [root]) == (root / "a" / "b").resolve()
    assert check_model_path(str(root / "a" / ".." / "a"), [root]) == (root / "a").resolve()
    assert check_model_path(f"  {root / 'a'}  ", [tmp_path / "other", root]) == (root / "a").resolve()


@pytest.mark.parametrize("make", [
    lambda root, tmp: tmp / "models2",  # shares the prefix, is not inside
    lambda root, tmp: root / ".." / "elsewhere",  # traversal
    lambda root, tmp: Path("/etc/passwd"),
    lambda root, tmp: Path("/no/such/thing"),  # refused without looking whether it exists
    lambda root, tmp: tmp,  # the parent of an allowed dir
])
def test_paths_outside_are_refused(tmp_path: Path, make) -> None:
    root = tmp_path / "models"
    root.mkdir()
    with pytest.raises(ModelPathRefused) as err:
        check_model_path(make(root, tmp_path), [root])
    message = str(err.value)
    assert "outside the folders this server allows" in message and str(root.resolve()) in message
    assert "WORKBENCH_MODEL_DIRS" in message and isinstance(err.value, ModelLoadError)


def test_a_symlink_pointing_outside_is_refused(tmp_path: Path, tiny_gpt2_dir: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "link").symlink_to(tiny_gpt2_dir, target_is_directory=True)
    with pytest.raises(ModelPathRefused):
        load_pretrained(root / "link", allowed_dirs=[root])
    # the same checkpoint copied inside loads
    shutil.copytree(tiny_gpt2_dir, root / "copy")
    assert load_pretrained(root / "copy", allowed_dirs=[root], device="cpu").cfg.n_layers == 2


def test_load_pretrained_refuses_before_reading(tmp_path: Path, ckpt: Path, monkeypatch) -> None:
    import models.loading as loading

    monkeypatch.setattr(loading, "resolve", lambda *a: pytest.fail("the path was looked at"))
    with pytest.raises(ModelPathRefused):
        load_pretrained(ckpt, allowed_dirs=[tmp_path / "elsewhere"])


def test_listed_names_are_always_allowed(tmp_path: Path) -> None:
    model = load_pretrained("induction-2l", allowed_dirs=[tmp_path / "nothing-here"], device="cpu")
    assert model.cfg.n_layers == 2
    assert load_pretrained("induction-2l", allowed_dirs=[], device="cpu").cfg.n_layers == 2


def test_allowed_dirs_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WORKBENCH_MODEL_DIRS", raising=False)
    assert allowed_model_dirs() is None  # unset: no restriction
    monkeypatch.setenv("WORKBENCH_MODEL_DIRS", f"{tmp_path / 'a'}{os.pathsep}{os.pathsep} ~/m ")
    assert allowed_model_dirs() == [(tmp_path / "a").resolve(), Path("~/m").expanduser().resolve()]
    assert allowed_model_dirs("   ") is None


# ----------------------------------------------------------------------------------- pickles


def test_a_pickle_that_runs_code_is_refused_and_its_code_never_runs(ckpt: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (ckpt / "model.safetensors").unlink()
    torch.save({"transformer.wte.weight": Payload()}, ckpt / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="weights_only=True") as err:
        load_pretrained(ckpt, device="cpu")
    assert "Pickled code is never run" in str(err.value) and "safetensors" in str(err.value)
    assert not marker.exists()


# ----------------------------------------------------------------------------------- damaged checkpoints


def _edit_config(**changes):
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config.update(changes)
        (folder / "config.json").write_text(json.dumps(config))
    return edit


def _drop_model_type(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.pop("model_type")
    (folder / "config.json").write_text(json.dumps(config))


def _missing_shard(folder: Path) -> None:
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    weight_map = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


CATALOGUE = {
    "empty folder": (lambda f: [p.unlink() for p in f.iterdir()], "no config.json"),
    "config a JSON list": (lambda f: (f / "config.json").write_text("[1, 2]"), "must hold a JSON object"),
    "config not JSON": (lambda f: (f / "config.json").write_text("{oops"), "not valid JSON"),
    "no model_type": (_drop_model_type, "model_type None is not supported"),
    "n_head a string": (_edit_config(n_head="four"), "n_head"),
    "n_layer negative": (_edit_config(n_layer=-1), "impossible sizes .*n_layers=-1"),
    "n_layer zero": (_edit_config(n_layer=0), "impossible sizes"),
    "fewer layers than the weights": (_edit_config(n_layer=1), "does not account for"),
    "heads do not divide d_model": (_edit_config(n_head=3), "not divisible"),
    "unknown activation": (_edit_config(activation_function="wat"), "does not (implement|support)"),
    "garbage weights": (lambda f: (f / "model.safetensors").write_bytes(b"\x00junk" * 64), "corrupt or truncated"),
    "empty weights": (lambda f: (f / "model.safetensors").write_bytes(b""), "corrupt or truncated"),
    "half the weights": (
        lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:5000]),
        "corrupt or truncated"),
    "missing shard": (_missing_shard, "shards listed .* are missing"),
    "tokenizer not JSON": (lambda f: (f / "tokenizer.json").write_text("{bad"), "tokenizer.json could not be read"),
    "tokenizer of another kind": (lambda f: (f / "tokenizer.json").write_text('{"model": 3}'),
                                  "tokenizer.json could not be read"),
}


@pytest.mark.parametrize("case", list(CATALOGUE))
def test_damaged_checkpoint_catalogue(case: str, ckpt: Path) -> None:
    damage, message = CATALOGUE[case]
    damage(ckpt)
    with pytest.raises(ModelLoadError, match=message):
        load_pretrained(ckpt, device="cpu")


def test_a_gguf_path_that_is_not_gguf(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        load_pretrained(fake, device="cpu")


# ----------------------------------------------------------------------------------- NaN / Inf


def test_nan_weights_load_with_a_warning(ckpt: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(ckpt / "model.safetensors"))
    key = next(k for k in state if k.endswith("attn.c_attn.weight"))
    state[key][0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    save_file(state, str(ckpt / "model.safetensors"))
    with pytest.warns(ModelWeightsWarning, match="NaN or Inf"):
        model = load_pretrained(ckpt, device="cpu")
    assert len(model.load_warnings) == 1 and "(3)" in model.load_warnings[0]
    assert "blocks.0.attn" in model.load_warnings[0]


def test_clean_weights_have_no_warnings(tiny_gpt2_dir: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelWeightsWarning)
        assert load_pretrained(tiny_gpt2_dir, device="cpu").load_warnings == []
