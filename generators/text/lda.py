"""Latent Dirichlet allocation by (online) variational Bayes in PyTorch, and a generator on it.

The inference is Hoffman, Blei & Bach (2010), the algorithm scikit-learn's
LatentDirichletAllocation implements, with the same parameter names and defaults where they
exist (`doc_topic_prior` = `topic_word_prior` = 1/K, `learning_offset` 10, `learning_decay`
0.7, `mean_change_tol` 1e-3, `max_doc_update_iter` 100): topic-word variational parameters
lambda (K, V) start from Gamma(100, 1/100); the E-step updates the document-topic
parameters gamma of a whole minibatch at once, working on its nonzero counts only
(gathers and an index_add over (nnz, K)); the online M-step blends lambda with the
minibatch's estimate at rate (learning_offset + step)^-learning_decay. Unlike scikit-learn,
documents are shuffled (seeded) at every epoch, since corpora such as a play are ordered.
`perplexity` is scikit-learn's (its `_approx_bound`, the same formula), so held-out
figures compare directly (tests/generators/test_lda.py).

Generating a document (`LDAGenerator`): its length in words is drawn from the real
lengths; its topic mixture theta from a Dirichlet fitted by moment matching to the
training documents' posterior topic shares (per label when there is a label column, which
is how labels condition the text), not from the flat prior alpha, which would give topic
mixes no real document has. Word order comes from a **topic-conditioned bigram model**:
at each position a topic z ~ theta, then

    p(w | previous word, z)  ∝  p_bigram(w | previous) * phi_z(w) / p_unigram(w),

the corpus' bigram model (absolute discounting, d = 0.75, backed off to the unigram, with
a document-start context) re-weighted by how much more likely topic z makes each word
than the corpus does. With no bigram information (p_bigram = p_unigram) this is exactly
LDA's p(w | z) = phi_z(w); with one topic it is the plain bigram model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from pydantic import Field

from generators.text.base import TextGenerator, TextParams
from generators.text.tokens import TokenLevel

DTYPE = torch.float64
_EPS = float(np.finfo(np.float64).eps)  # scikit-learn's EPS in norm_phi
BIGRAM_DISCOUNT = 0.75
GENERATE_BATCH = 512  # documents generated side by side: (batch, V) rows per step


def dirichlet_expectation(parameters: torch.Tensor) -> torch.Tensor:
    """E[log x] for x ~ Dirichlet(row): digamma(a) - digamma(sum(a)), row-wise."""
    return torch.digamma(parameters) - torch.digamma(parameters.sum(-1, keepdim=True))


@dataclass
class CountBlock:
    """The nonzero counts of a block of documents: doc (nnz,) the row within the block,
    word (nnz,) the word id, count (nnz,); n_docs rows in all."""

    doc: torch.Tensor
    word: torch.Tensor
    count: torch.Tensor
    n_docs: int


def count_block(matrix: sp.csr_matrix, rows: np.ndarray, device) -> CountBlock:
    """Rows of a sparse (documents, V) count matrix as a `CountBlock` on `device`."""
    block = matrix[rows].tocoo()
    return CountBlock(
        torch.as_tensor(block.row, dtype=torch.int64, device=device),
        torch.as_tensor(block.col, dtype=torch.int64, device=device),
        torch.as_tensor(block.data, dtype=DTYPE, device=device),
        len(rows),
    )


def e_step(
    block: CountBlock,
    exp_elog_beta: torch.Tensor,
    doc_topic_prior: float,
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Variational E-step for a block of documents, on their nonzero counts only.

    exp_elog_beta (K, V) = exp(E[log beta]). Returns (gamma (B, K), sufficient statistics
    (K, V): sum over documents of the expected topic assignment counts per word).
    Documents start at gamma = 1 (scikit-learn draws Gamma(100, 1/100), mean 1); each
    stops updating once its mean absolute change is below `tol`, as in scikit-learn. All
    work is per nonzero (nnz, K), so the cost follows the documents' distinct words, not V.
    """
    n_topics = exp_elog_beta.shape[0]
    device = exp_elog_beta.device
    beta = exp_elog_beta[:, block.word].T  # (nnz, K): fixed during the E-step
    gamma = torch.ones(block.n_docs, n_topics, dtype=DTYPE, device=device)
    exp_elog_theta = dirichlet_expectation(gamma).exp()
    active = torch.ones(block.n_docs, dtype=torch.bool, device=device)
    for _ in range(max_iter):
        live = active[block.doc]  # nonzeros of documents still changing
        doc, count, beta_live = block.doc[live], block.count[live], beta[live]
        norm_phi = (exp_elog_theta[doc] * beta_live).sum(-1) + _EPS  # (m,)
        weighted = torch.zeros_like(gamma).index_add_(
            0, doc, (count / norm_phi)[:, None] * beta_live
        )
        rows = torch.nonzero(active)[:, 0]
        updated = doc_topic_prior + exp_elog_theta[rows] * weighted[rows]
        change = (updated - gamma[rows]).abs().mean(-1)
        gamma[rows] = updated
        exp_elog_theta[rows] = dirichlet_expectation(updated).exp()
        active[rows[change < tol]] = False
        if not bool(active.any()):
            break
    norm_phi = (exp_elog_theta[block.doc] * beta).sum(-1) + _EPS
    sstats = torch.zeros(exp_elog_beta.shape[1], n_topics, dtype=DTYPE, device=device)
    sstats.index_add_(0, block.word, (block.count / norm_phi)[:, None] * exp_elog_theta[block.doc])
    return gamma, sstats.T * exp_elog_beta


@dataclass
class LDASettings:
    """The inference's settings (scikit-learn's names)."""

    n_topics: int
    doc_topic_prior: float | None = None  # None: 1 / n_topics
    topic_word_prior: float | None = None  # None: 1 / n_topics
    learning_method: str = "online"  # or "batch"
    batch_size: int = 128
    max_iter: int = 10  # epochs
    learning_offset: float = 10.0
    learning_decay: float = 0.7
    max_doc_update_iter: int = 100
    mean_change_tol: float = 1e-3

    @property
    def alpha(self) -> float:
        return self.doc_topic_prior or 1.0 / self.n_topics

    @property
    def eta(self) -> float:
        return self.topic_word_prior or 1.0 / self.n_topics


def fit_lda(counts: sp.csr_matrix, settings: LDASettings, device="cpu") -> torch.Tensor:
    """Topic-word variational parameters lambda (K, V) for a (documents, V) count matrix.

    Random draws (initial lambda, epoch shuffles) come from the global torch RNG.
    """
    n_docs, n_words = counts.shape
    gamma_init = torch.distributions.Gamma(
        torch.tensor(100.0, dtype=DTYPE), torch.tensor(100.0, dtype=DTYPE)
    )
    lam = gamma_init.sample((settings.n_topics, n_words)).to(device)
    step = 0
    for _ in range(settings.max_iter):
        if settings.learning_method == "batch":
            sstats = torch.zeros_like(lam)
            exp_elog_beta = dirichlet_expectation(lam).exp()
            for start in range(0, n_docs, settings.batch_size):
                rows = np.arange(start, min(start + settings.batch_size, n_docs))
                _, batch_sstats = e_step(
                    count_block(counts, rows, device),
                    exp_elog_beta,
                    settings.alpha,
                    max_iter=settings.max_doc_update_iter,
                    tol=settings.mean_change_tol,
                )
                sstats += batch_sstats
            lam = settings.eta + sstats
            continue
        order = torch.randperm(n_docs).numpy()
        for start in range(0, n_docs, settings.batch_size):
            rows = np.sort(order[start : start + settings.batch_size])
            exp_elog_beta = dirichlet_expectation(lam).exp()
            _, sstats = e_step(
                count_block(counts, rows, device),
                exp_elog_beta,
                settings.alpha,
                max_iter=settings.max_doc_update_iter,
                tol=settings.mean_change_tol,
            )
            weight = (settings.learning_offset + step) ** -settings.learning_decay
            lam = (1 - weight) * lam + weight * (settings.eta + n_docs / len(rows) * sstats)
            step += 1
    return lam


def transform(
    counts: sp.csr_matrix, lam: torch.Tensor, settings: LDASettings, batch_size: int = 1024
) -> torch.Tensor:
    """Variational gamma (documents, K) of each document under fixed topics lambda."""
    exp_elog_beta = dirichlet_expectation(lam).exp()
    parts = []
    for start in range(0, counts.shape[0], batch_size):
        rows = np.arange(start, min(start + batch_size, counts.shape[0]))
        gamma, _ = e_step(
            count_block(counts, rows, lam.device),
            exp_elog_beta,
            settings.alpha,
            max_iter=settings.max_doc_update_iter,
            tol=settings.mean_change_tol,
        )
        parts.append(gamma)
    return torch.cat(parts)


def _dirichlet_log_terms(
    prior: float, distr: torch.Tensor, expectation: torch.Tensor, size: int
) -> float:
    """E[log p(x | prior)] - E[log q(x | distr)] summed over rows (scikit-learn's
    `_loglikelihood`)."""
    prior_t = torch.tensor(prior, dtype=distr.dtype)
    score = ((prior - distr) * expectation).sum()
    score += (torch.lgamma(distr) - torch.lgamma(prior_t)).sum()
    score += (torch.lgamma(prior_t * size) - torch.lgamma(distr.sum(-1))).sum()
    return float(score)


def perplexity(
    counts: sp.csr_matrix, lam: torch.Tensor, settings: LDASettings, batch_size: int = 1024
) -> float:
    """exp(-bound / words) with scikit-learn's variational bound: held-out perplexity."""
    gamma = transform(counts, lam, settings, batch_size)
    elog_theta = dirichlet_expectation(gamma)
    elog_beta = dirichlet_expectation(lam)
    score = 0.0
    for start in range(0, counts.shape[0], batch_size):
        rows = np.arange(start, min(start + batch_size, counts.shape[0]))
        block = count_block(counts, rows, lam.device)
        # log sum_k exp(E[log theta_dk] + E[log beta_kw]) at every nonzero (d, w): (nnz,)
        norm_phi = torch.logsumexp(elog_theta[rows][block.doc] + elog_beta[:, block.word].T, dim=-1)
        score += float((block.count * norm_phi).sum())
    n_topics, n_words = lam.shape
    score += _dirichlet_log_terms(settings.alpha, gamma, elog_theta, n_topics)
    score += _dirichlet_log_terms(settings.eta, lam, elog_beta, n_words)
    return math.exp(-score / counts.sum())


def count_matrix(docs: list[list[int]], n_words: int, drop_unknown: bool = True) -> sp.csr_matrix:
    """(documents, n_words) token counts of token-id documents; id 0 (unknown) left out."""
    if drop_unknown:
        docs = [[t for t in d if t != 0] for d in docs]
    indptr = np.cumsum([0, *map(len, docs)])
    indices = np.concatenate([np.asarray(d, dtype=np.int64) for d in docs]) if docs else []
    matrix = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(docs), n_words))
    matrix.sum_duplicates()
    return matrix


def fit_dirichlet_moments(shares: np.ndarray) -> np.ndarray:
    """A Dirichlet's parameters (K,) matched to the mean and variance of `shares` (n, K)
    (rows on the simplex). The precision is the median over components of
    m (1 - m) / var - 1, clipped to [0.1, 1000]."""
    mean = shares.mean(0)
    if len(shares) < 2:
        return np.maximum(mean, 1e-3) * 10
    variance = shares.var(0, ddof=1)
    ok = variance > 1e-12
    precision = np.median(mean[ok] * (1 - mean[ok]) / variance[ok] - 1) if ok.any() else 1000
    return np.maximum(mean, 1e-6) * float(np.clip(precision, 0.1, 1000))


# -- the generator ---------------------------------------------------------------------------
class LDAParams(TextParams):
    level: TokenLevel = "word"
    n_topics: int = Field(10, ge=1)
    doc_topic_prior: float | None = Field(None, gt=0, description="None: 1 / n_topics")
    topic_word_prior: float | None = Field(None, gt=0, description="None: 1 / n_topics")
    learning_method: Literal["online", "batch"] = "online"
    batch_size: int = Field(256, ge=1)
    # Epochs over the corpus (scikit-learn's max_iter).
    max_iter: int = Field(10, ge=1)
    learning_offset: float = Field(10.0, gt=0)
    learning_decay: float = Field(0.7, gt=0.5, le=1.0)
    max_doc_update_iter: int = Field(100, ge=1)
    mean_change_tol: float = Field(1e-3, gt=0)
    # Exponent on the topic's lift phi_z(w) / p(w) in the word-order model: 0 is the plain
    # bigram model, 1 the product described in the module docstring.
    topic_weight: float = Field(1.0, ge=0)


class LDAGenerator(TextGenerator):
    """LDA topics with a topic-conditioned bigram word order; labels condition the topic mix."""

    name = "lda"
    Params = LDAParams
    supports_labels = True
    MODEL_FILE = "lda.pt"

    @property
    def settings(self) -> LDASettings:
        p = self.params
        return LDASettings(
            n_topics=p.n_topics,
            doc_topic_prior=p.doc_topic_prior,
            topic_word_prior=p.topic_word_prior,
            learning_method=p.learning_method,
            batch_size=p.batch_size,
            max_iter=p.max_iter,
            learning_offset=p.learning_offset,
            learning_decay=p.learning_decay,
            max_doc_update_iter=p.max_doc_update_iter,
            mean_change_tol=p.mean_change_tol,
        )

    def _fit_tokens(self, docs: list[list[int]], labels: np.ndarray | None) -> None:
        n_words = len(self.tokenizer_)
        counts = count_matrix(docs, n_words)
        keep = np.flatnonzero(np.asarray(counts.sum(1)).ravel() > 0)
        self.lambda_ = fit_lda(counts[keep], self.settings, self.device_)
        gamma = transform(counts[keep], self.lambda_, self.settings).cpu().numpy()
        shares = gamma / gamma.sum(1, keepdims=True)
        codes = labels[keep] if labels is not None else np.zeros(len(keep), dtype=np.int64)
        n_labels = max(1, len(self.label_values_))
        overall = fit_dirichlet_moments(shares)
        self.theta_prior_ = torch.as_tensor(
            np.stack(
                [
                    fit_dirichlet_moments(shares[codes == k])
                    if (codes == k).sum() >= 2
                    else overall
                    for k in range(n_labels)
                ]
            ),
            dtype=DTYPE,
        )
        self._fit_bigrams(docs, n_words)

    def _fit_bigrams(self, docs: list[list[int]], n_words: int) -> None:
        """Bigram counts with a document-start context (row n_words), as sparse tensors."""
        start = n_words
        previous = np.concatenate([[start, *d[:-1]] for d in docs if d]).astype(np.int64)
        current = np.concatenate([d for d in docs if d]).astype(np.int64)
        matrix = sp.csr_matrix(
            (np.ones(len(current)), (previous, current)), shape=(n_words + 1, n_words)
        )
        matrix.sum_duplicates()
        self.bigram_indptr_ = torch.as_tensor(matrix.indptr, dtype=torch.int64)
        self.bigram_indices_ = torch.as_tensor(matrix.indices, dtype=torch.int64)
        self.bigram_counts_ = torch.as_tensor(matrix.data, dtype=DTYPE)
        unigram = np.bincount(current, minlength=n_words).astype(np.float64) + 1e-3
        self.unigram_ = torch.as_tensor(unigram / unigram.sum(), dtype=DTYPE)

    def _generate(self, lengths: np.ndarray, labels: np.ndarray | None) -> list[list[int]]:
        """Token-id documents of the given lengths (see the module docstring), drawn from
        the global torch RNG."""
        codes = labels if labels is not None else np.zeros(len(lengths), dtype=np.int64)
        sampler = self.word_sampler()
        out: list[list[int]] = []
        for begin in range(0, len(lengths), GENERATE_BATCH):
            batch_lengths = lengths[begin : begin + GENERATE_BATCH]
            alpha = self.theta_prior_[torch.as_tensor(codes[begin : begin + GENERATE_BATCH])]
            theta = torch.distributions.Dirichlet(alpha).sample()  # (B, K)
            previous = torch.full((len(batch_lengths),), sampler.start, dtype=torch.int64)
            words = torch.zeros(len(batch_lengths), int(batch_lengths.max()), dtype=torch.int64)
            for t in range(words.shape[1]):
                words[:, t] = sampler.draw(previous, torch.multinomial(theta, 1)[:, 0])
                previous = words[:, t]
            out += [row[:n].tolist() for row, n in zip(words, batch_lengths, strict=True)]
        return out

    def word_sampler(self) -> WordSampler:
        phi = (self.lambda_ / self.lambda_.sum(-1, keepdim=True)).cpu()  # (K, V)
        lift = (phi / self.unigram_) ** self.params.topic_weight
        lift[:, 0] = 0  # never the unknown token
        return WordSampler(
            self.bigram_indptr_, self.bigram_indices_, self.bigram_counts_, self.unigram_, lift
        )

    def top_words(
        self, n: int = 10, *, relevance: float = 0.6, letters_only: bool = True
    ) -> pd.DataFrame:
        """The `n` top words of each topic: columns topic, rank, word, probability (long
        format, one row per topic and rank).

        Ranked by relevance (Sievert & Shirley 2014, LDAvis): relevance * log phi_z(w) +
        (1 - relevance) * log(phi_z(w) / p(w)); 1.0 ranks by probability alone, where the
        commonest words ("the", "and") top every topic; 0.6 is LDAvis' suggested weight.
        `letters_only` skips punctuation and numbers."""
        phi = (self.lambda_ / self.lambda_.sum(-1, keepdim=True)).cpu().numpy()
        unigram = self.unigram_.numpy()
        score = relevance * np.log(phi) + (1 - relevance) * np.log(phi / unigram)
        vocabulary = self.tokenizer_.vocabulary
        usable = np.array(
            [
                i > 0 and (not letters_only or any(c.isalpha() for c in word))
                for i, word in enumerate(vocabulary)
            ]
        )
        rows = []
        for topic, weights in enumerate(score):
            order = [i for i in np.argsort(-weights, kind="stable") if usable[i]][:n]
            for rank, index in enumerate(order, 1):
                rows.append((topic, rank, vocabulary[index], float(phi[topic, index])))
        return pd.DataFrame(rows, columns=["topic", "rank", "word", "probability"])

    def perplexity(self, texts: list[str]) -> float:
        """scikit-learn's variational perplexity of documents (per word, unknown words
        left out) under the fitted topics."""
        docs = [self.tokenizer_.encode(t) for t in texts]
        counts = count_matrix(docs, len(self.tokenizer_))
        counts = counts[np.flatnonzero(np.asarray(counts.sum(1)).ravel() > 0)]
        return perplexity(counts, self.lambda_, self.settings)

    def _model_state(self) -> dict[str, torch.Tensor]:
        return {
            "lambda": self.lambda_,
            "theta_prior": self.theta_prior_,
            "bigram_indptr": self.bigram_indptr_,
            "bigram_indices": self.bigram_indices_,
            "bigram_counts": self.bigram_counts_,
            "unigram": self.unigram_,
        }

    def _load_model_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.lambda_ = tensors["lambda"]
        self.theta_prior_ = tensors["theta_prior"].cpu()
        self.bigram_indptr_ = tensors["bigram_indptr"].cpu()
        self.bigram_indices_ = tensors["bigram_indices"].cpu()
        self.bigram_counts_ = tensors["bigram_counts"].cpu()
        self.unigram_ = tensors["unigram"].cpu()


class WordSampler:
    """Draws the next word of many documents at once from

        p(w | previous, z)  ∝  [max(c(previous, w) - d, 0) / c(previous)
                                + backoff(previous) * p_unigram(w)] * lift_z(w),

    the topic-conditioned bigram model of the module docstring, as a two-part mixture and
    without a dense (documents, V) row per step: the seen-successor part over the previous
    words' few bigram entries, the backoff part by binary search in a cumulative table of
    p_unigram * lift_z per topic built once. Bigram counts are CSR over contexts (V + 1
    rows, the last the document start); lift is (K, V)."""

    def __init__(self, indptr, successors, counts, unigram, lift) -> None:
        self.indptr, self.successors, self.lift = indptr, successors, lift
        self.n_words = lift.shape[1]
        self.start = len(indptr) - 2  # the document-start context
        sizes = indptr.diff()
        row_of_entry = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
        totals = torch.zeros(len(sizes), dtype=DTYPE).index_add_(0, row_of_entry, counts)
        self.backoff = torch.where(
            totals > 0, BIGRAM_DISCOUNT * sizes.to(DTYPE) / totals.clamp_min(1), 1.0
        )
        self.discounted = (counts - BIGRAM_DISCOUNT).clamp_min(0) / totals.clamp_min(1)[
            row_of_entry
        ]
        self.base = unigram[None, :] * lift  # (K, V): the backoff part's weights per topic
        self.base_mass = self.base.sum(1)
        # One increasing table over all topics: topic k's words after those of topics < k.
        before = self.base_mass.cumsum(0) - self.base_mass
        self.base_table = (self.base.cumsum(1) + before[:, None]).reshape(-1)

    def draw(self, previous: torch.Tensor, topics: torch.Tensor) -> torch.Tensor:
        """(B,) next words for (B,) previous words (or `start`) and (B,) topics."""
        first = self.indptr[previous]
        sizes = self.indptr[previous + 1] - first
        owner = torch.repeat_interleave(torch.arange(len(previous)), sizes)
        starts = torch.cumsum(sizes, 0) - sizes
        entry = torch.repeat_interleave(first - starts, sizes) + torch.arange(int(sizes.sum()))
        weight = self.discounted[entry] * self.lift[topics[owner], self.successors[entry]]
        seen_mass = torch.zeros(len(previous), dtype=DTYPE).index_add_(0, owner, weight)
        backoff_mass = self.backoff[previous] * self.base_mass[topics]
        u = torch.rand(len(previous), 2, dtype=DTYPE)
        from_seen = u[:, 0] * (seen_mass + backoff_mass) < seen_mass
        # Seen part: binary search in the running sum of the flattened weights (a previous
        # word without entries has no seen mass and is never drawn from here).
        seen_word = torch.zeros(len(previous), dtype=torch.int64)
        if len(weight):
            running = torch.cumsum(weight, 0)
            before = torch.cat([running.new_zeros(1), running])[starts]
            pick = torch.searchsorted(running, before + u[:, 1] * seen_mass, right=True)
            pick = torch.minimum(pick, starts + sizes - 1).clamp(0, len(weight) - 1)
            seen_word = self.successors[entry[pick]]
        # Backoff part: binary search in the topic's stretch of the table.
        offset = self.base_table[topics * self.n_words] - self.base[topics, 0]
        target = offset + u[:, 1] * self.base_mass[topics]
        found = torch.searchsorted(self.base_table, target, right=True) - topics * self.n_words
        return torch.where(from_seen, seen_word, found.clamp(1, self.n_words - 1))
