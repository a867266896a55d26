"""The named seed derivations give the values of the expressions they replaced (f723bdd):
output determinism and checkpoint keys depend on them."""

import pytest

from generators.seeds import chunk_seed, round_seed, shard_seed

# (seed, index) -> (seed + 1_000_003*index, SeedSequence([seed, index]) state,
# SeedSequence([seed % 2**63, index]) state >> 1), computed with the old expressions.
PINNED = [
    ((0, 0), 0, 2968811710, 0),
    ((0, 1), 1000003, 3964924996, 1982462498),
    ((7, 3), 3000016, 3466196061, 1733098030),
    ((2**31 - 1, 5), 2152483662, 3749579296, 1874789648),
    ((2**63 + 12345, 2), 9223372036856788159, 3396943221, 1661452412),
    ((123456789, 1000), 1123459789, 2527777274, 1263888637),
]


@pytest.mark.parametrize(("args", "chunk", "shard", "round_"), PINNED)
def test_seed_derivations_are_the_old_values(args, chunk, shard, round_):
    assert chunk_seed(*args) == chunk
    assert shard_seed(*args) == shard
    assert round_seed(*args) == (args[0] if args[1] == 0 else round_)


def test_round_zero_is_the_seed_itself_even_when_negative():
    assert round_seed(-1, 0) == -1
    assert round_seed(-1, 4) == 1068314875
