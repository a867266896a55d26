"""Text models on Tiny Shakespeare subsets: our HMM and LDA against hmmlearn and scikit-learn,
and the character GRU's fit time and valid-word share.

1. hmm: the first `--hmm-chars` characters, split by line, character tokens; our
   Baum–Welch (`generators.models.hmm.baum_welch`) and hmmlearn's CategoricalHMM (scaling) from
   the same random initialisation for `--hmm-iter` iterations at `--hmm-states` states:
   fit seconds and final log-likelihood (each scored by its own library).
2. lda: lines grouped into documents of 20 lines, word tokens (top 5,000), 10 topics,
   online VB with batch 128 for 10 epochs; our `fit_lda` and scikit-learn's
   LatentDirichletAllocation on the same count matrix (90% train): fit seconds and
   held-out perplexity by scikit-learn's bound (our `perplexity` is the same formula).
3. char_lm: the whole corpus by line, default model for `--lm-steps` steps: fit seconds,
   sampling seconds for 500 lines, and the share of generated words that are words of the
   corpus.

    python benchmarks/text_models.py
    python benchmarks/text_models.py --hmm-chars 100000 --lm-steps 200

One torch thread by default (--threads); hmmlearn and scikit-learn run single-threaded
with OMP_NUM_THREADS=1 set before they load. Skips, with a note, without ../shared/data.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from generators.data.schema import infer_schema  # noqa: E402
from generators.models.hmm import HMMState, baum_welch, log_likelihood  # noqa: E402
from generators.text.char_lm import CharLMGenerator  # noqa: E402
from generators.text.data import read_text  # noqa: E402
from generators.text.lda import LDASettings, count_matrix, fit_lda, perplexity  # noqa: E402
from generators.text.tokens import Tokenizer  # noqa: E402

CORPUS = REPO.parent / "shared" / "data" / "tiny_shakespeare" / "input.txt"


def bench_hmm(lines: list[str], states: int, iterations: int) -> None:
    from hmmlearn.hmm import CategoricalHMM

    tokenizer = Tokenizer.fit(lines, "char", max_vocab=200)
    docs = [tokenizer.encode(line) for line in lines]
    n_symbols = len(tokenizer)
    rng = np.random.default_rng(0)
    start = rng.dirichlet(np.ones(states))
    transition = rng.dirichlet(np.ones(states), states)
    emission = rng.dirichlet(np.ones(n_symbols), states)
    x, lengths = np.concatenate(docs)[:, None], [len(d) for d in docs]
    oracle = CategoricalHMM(
        n_components=states,
        n_features=n_symbols,
        init_params="",
        params="ste",
        n_iter=iterations,
        tol=-np.inf,
        implementation="scaling",
    )
    oracle.startprob_, oracle.transmat_, oracle.emissionprob_ = start, transition, emission
    began = time.perf_counter()
    oracle.fit(x, lengths)
    theirs_seconds = time.perf_counter() - began
    theirs = oracle.score(x, lengths)
    began = time.perf_counter()
    state, _ = baum_welch(
        docs, HMMState.from_probabilities(start, transition, emission), n_symbols, n_iter=iterations
    )
    ours_seconds = time.perf_counter() - began
    ours = log_likelihood(state, docs)
    print(
        f"hmm  {len(lines)} lines, {len(x)} chars, {states} states, {iterations} iterations\n"
        f"  hmmlearn 0.3.3  fit {theirs_seconds:7.2f} s  log-likelihood {theirs:.2f}\n"
        f"  synthpipe       fit {ours_seconds:7.2f} s  log-likelihood {ours:.2f}"
        f"  (relative difference {abs(ours - theirs) / abs(theirs):.1e})"
    )


def bench_lda(lines: list[str], topics: int) -> None:
    from sklearn.decomposition import LatentDirichletAllocation

    documents = [" ".join(lines[i : i + 20]) for i in range(0, len(lines), 20)]
    tokenizer = Tokenizer.fit(documents, "word", max_vocab=5000)
    counts = count_matrix([tokenizer.encode(d) for d in documents], len(tokenizer))
    order = np.random.default_rng(0).permutation(counts.shape[0])
    cut = int(0.9 * len(order))
    train, test = counts[np.sort(order[:cut])], counts[np.sort(order[cut:])]
    settings = LDASettings(n_topics=topics, batch_size=128, max_iter=10)
    model = LatentDirichletAllocation(
        n_components=topics, learning_method="online", batch_size=128, max_iter=10, random_state=0
    )
    began = time.perf_counter()
    model.fit(train)
    theirs_seconds = time.perf_counter() - began
    theirs = model.perplexity(test)
    torch.manual_seed(0)
    began = time.perf_counter()
    lam = fit_lda(train, settings)
    ours_seconds = time.perf_counter() - began
    ours = perplexity(test, lam, settings)
    print(
        f"lda  {train.shape[0]} train / {test.shape[0]} held-out documents of 20 lines, "
        f"{train.shape[1]} words, {topics} topics, online VB, 10 epochs\n"
        f"  scikit-learn    fit {theirs_seconds:7.2f} s  held-out perplexity {theirs:.1f}\n"
        f"  synthpipe       fit {ours_seconds:7.2f} s  held-out perplexity {ours:.1f}"
    )


def bench_char_lm(frame, steps: int) -> None:
    schema = infer_schema(frame, {"text": "text"})
    generator = CharLMGenerator(device="cpu", max_steps=steps, eval_every=max(1, steps // 5))
    began = time.perf_counter()
    generator.fit(frame, schema, seed=0)
    fit_seconds = time.perf_counter() - began
    began = time.perf_counter()
    sample = generator.sample(500, seed=1)
    sample_seconds = time.perf_counter() - began
    vocabulary = set(re.findall(r"[a-z']+", " ".join(frame["text"]).lower()))
    words = re.findall(r"[a-z']+", " ".join(sample["text"]).lower())
    share = np.mean([w in vocabulary for w in words])
    print(
        f"char_lm  {len(frame)} lines, GRU 256, {steps} steps of 32 x 128 characters\n"
        f"  fit {fit_seconds:.1f} s, sample 500 lines {sample_seconds:.1f} s, "
        f"valid-word share {share:.3f}, final validation loss "
        f"{generator.losses_[-1].get('valid', float('nan')):.3f} nats/char\n"
        "  samples: " + " | ".join(sample["text"].head(5))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hmm-chars", type=int, default=200_000)
    parser.add_argument("--hmm-states", type=int, default=16)
    parser.add_argument("--hmm-iter", type=int, default=10)
    parser.add_argument("--lda-topics", type=int, default=10)
    parser.add_argument("--lm-steps", type=int, default=300)
    parser.add_argument("--skip", nargs="*", default=[], choices=["hmm", "lda", "char_lm"])
    args = parser.parse_args()
    if not CORPUS.is_file():
        print(f"skipped: {CORPUS} is absent (a fresh clone has no ../shared)")
        return
    torch.set_num_threads(args.threads)
    frame = read_text(CORPUS)
    lines = frame["text"].tolist()
    print(f"Tiny Shakespeare: {len(lines)} non-empty lines; torch threads {args.threads}")
    if "hmm" not in args.skip:
        subset = read_text(CORPUS)["text"]
        chars = subset.str.len().cumsum()
        bench_hmm(subset[chars <= args.hmm_chars].tolist(), args.hmm_states, args.hmm_iter)
    if "lda" not in args.skip:
        bench_lda(lines, args.lda_topics)
    if "char_lm" not in args.skip:
        bench_char_lm(frame, args.lm_steps)


if __name__ == "__main__":
    main()
