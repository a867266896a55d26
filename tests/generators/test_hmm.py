"""The HMM: forward-backward against brute force, Baum–Welch against hmmlearn, the generator."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import ks_2samp

from generators.data.schema import infer_schema
from generators.models.hmm import (
    DTYPE,
    HMMState,
    baum_welch,
    forward_backward,
    log_likelihood,
    pad_documents,
    sample_states,
)
from generators.text.hmm import HMMGenerator
from generators.text.tokens import Tokenizer

hmmlearn = pytest.importorskip("hmmlearn.hmm")

# A small corpus with structure an HMM can find: words from two registers.
WORDS = ["the cat sat on the mat", "a dog ran in the park", "my hat is red", "to be or not"]


def corpus(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 3))) for _ in range(n)]


def test_forward_backward_matches_enumeration_over_state_paths():
    """Any emission log-probs (here random, as Gaussian densities would be): the batched,
    padded, scaled recursion gives each sequence's exact likelihood and posteriors."""
    rng = np.random.default_rng(1)
    k, lengths = 3, [4, 2, 1]
    start = rng.dirichlet(np.ones(k))
    transition = rng.dirichlet(np.ones(k), k)
    log_emission = torch.as_tensor(rng.normal(0, 3, (3, 4, k)), dtype=DTYPE)
    mask = torch.arange(4)[None, :] < torch.tensor(lengths)[:, None]
    result = forward_backward(
        torch.log(torch.as_tensor(start)),
        torch.log(torch.as_tensor(transition)),
        log_emission,
        mask,
    )
    expected_counts = np.zeros((k, k))
    for b, length in enumerate(lengths):
        joint, posterior = {}, np.zeros((length, k))
        for path in itertools.product(range(k), repeat=length):
            p = start[path[0]] * math.exp(log_emission[b, 0, path[0]])
            for t in range(1, length):
                p *= transition[path[t - 1], path[t]] * math.exp(log_emission[b, t, path[t]])
            joint[path] = p
        total = sum(joint.values())
        for path, p in joint.items():
            for t in range(length):
                posterior[t, path[t]] += p / total
            for t in range(1, length):
                expected_counts[path[t - 1], path[t]] += p / total
        assert float(result.log_likelihood[b]) == pytest.approx(math.log(total), rel=1e-10)
        np.testing.assert_allclose(result.posteriors[b, :length].numpy(), posterior, atol=1e-10)
        assert float(result.posteriors[b, length:].abs().sum()) == 0.0
    np.testing.assert_allclose(result.transition_counts.numpy(), expected_counts, atol=1e-10)


def _oracle_setup(n_states: int, seed: int = 0):
    texts = corpus(300)
    tokenizer = Tokenizer.fit(texts, "char", max_vocab=100)
    docs = [tokenizer.encode(t) for t in texts]
    rng = np.random.default_rng(seed)
    n_symbols = len(tokenizer)
    start = rng.dirichlet(np.ones(n_states))
    transition = rng.dirichlet(np.ones(n_states), n_states)
    emission = rng.dirichlet(np.ones(n_symbols), n_states)
    return docs, n_symbols, start, transition, emission


def test_baum_welch_matches_hmmlearn_from_the_same_initialisation():
    docs, n_symbols, start, transition, emission = _oracle_setup(n_states=6)
    n_iter = 15
    oracle = hmmlearn.CategoricalHMM(
        n_components=6,
        n_features=n_symbols,
        init_params="",
        params="ste",
        n_iter=n_iter,
        tol=-np.inf,  # run every iteration, as ours does with tol=0
        implementation="scaling",
    )
    oracle.startprob_, oracle.transmat_, oracle.emissionprob_ = start, transition, emission
    x, lengths = np.concatenate(docs)[:, None], [len(d) for d in docs]
    oracle.fit(x, lengths)
    ours, history = baum_welch(
        docs,
        HMMState.from_probabilities(start, transition, emission),
        n_symbols,
        n_iter=n_iter,
        batch_tokens=500,  # several padded batches of different widths
    )
    # The tolerance is 1%; the same algorithm in float64 agrees far closer.
    assert history == pytest.approx(list(oracle.monitor_.history), rel=1e-2)
    assert log_likelihood(ours, docs) == pytest.approx(oracle.score(x, lengths), rel=1e-8)
    np.testing.assert_allclose(ours.log_transition.exp().numpy(), oracle.transmat_, atol=1e-6)
    np.testing.assert_allclose(
        ours.emissions.log_probs.exp().numpy(), oracle.emissionprob_, atol=1e-6
    )
    # EM never lowers the likelihood.
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(history))


def test_sample_states_follow_the_transition_matrix():
    torch.manual_seed(0)
    transition = torch.tensor([[0.9, 0.1], [0.3, 0.7]], dtype=DTYPE)
    states = sample_states(
        torch.log(torch.tensor([1.0, 0.0], dtype=DTYPE)), transition.log(), 4000, 6
    )
    assert (states[:, 0] == 0).all()
    pairs = torch.stack([states[:, :-1].reshape(-1), states[:, 1:].reshape(-1)], 1)
    from_zero = pairs[pairs[:, 0] == 0]
    share = float((from_zero[:, 1] == 1).double().mean())
    n = len(from_zero)
    assert abs(share - 0.1) < 4 * math.sqrt(0.09 / n)


def test_pad_documents_left_aligns_and_masks():
    tokens, mask = pad_documents([[3, 4, 5], [7]], "cpu")
    assert tokens.tolist() == [[3, 4, 5], [7, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]


@pytest.fixture(scope="module")
def fitted() -> tuple[HMMGenerator, pd.DataFrame]:
    frame = pd.DataFrame({"text": pd.array(corpus(400), dtype="string")})
    schema = infer_schema(frame, {"text": "text"})
    generator = HMMGenerator(device="cpu", n_states=8, n_iter=30).fit(frame, schema, seed=3)
    return generator, frame


def test_generator_learns_the_character_distribution_and_real_lengths(fitted):
    generator, frame = fitted
    sample = generator.sample(400, seed=0)
    assert list(sample.columns) == ["text"] and sample["text"].dtype == "string"
    real = pd.Series(list("".join(frame["text"]))).value_counts(normalize=True)
    fake = pd.Series(list("".join(sample["text"]))).value_counts(normalize=True)
    assert set(fake.index) <= set(real.index)  # never a character it did not see
    total_variation = 0.5 * real.sub(fake, fill_value=0).abs().sum()
    assert total_variation < 0.05
    # Lengths (in characters, the tokens here) are drawn from the real lengths; decoding
    # strips a space drawn at either end, so a document may come out a little shorter.
    lengths, real_lengths = sample["text"].str.len(), frame["text"].str.len()
    assert lengths.max() <= real_lengths.max()
    assert ks_2samp(lengths, real_lengths).statistic < 0.15
    # Likelihood rose during training and beats a uniform model by far.
    losses = [record["nll_per_token"] for record in generator.losses_]
    assert losses[-1] < losses[0]
    total, n = generator.log_likelihood(frame["text"].tolist())
    assert -total / n < 0.6 * math.log(len(generator.tokenizer_))


def test_generator_is_seeded_and_survives_save_and_load(fitted, tmp_path):
    generator, frame = fitted
    first = generator.sample(50, seed=7)
    pd.testing.assert_frame_equal(first, generator.sample(50, seed=7))
    assert not first.equals(generator.sample(50, seed=8))
    generator.save(tmp_path / "model")
    loaded = HMMGenerator.load(tmp_path / "model")
    pd.testing.assert_frame_equal(first, loaded.sample(50, seed=7))
    refit = HMMGenerator(device="cpu", n_states=8, n_iter=30).fit(
        frame, infer_schema(frame, {"text": "text"}), seed=3
    )
    pd.testing.assert_frame_equal(first, refit.sample(50, seed=7))


def test_word_level_generator_emits_only_known_words():
    frame = pd.DataFrame({"text": pd.array(corpus(200, seed=5), dtype="string")})
    schema = infer_schema(frame, {"text": "text"})
    generator = HMMGenerator(device="cpu", level="word", n_states=4, n_iter=10)
    sample = generator.fit(frame, schema, seed=0).sample(100, seed=0)
    known = {w for text in WORDS for w in text.split()}
    produced = {w for text in sample["text"] for w in text.split()}
    assert produced <= known and len(produced) > 5
