import numpy as np
import pytest

from npembed import Vocab, load_recipes
from npembed.heldout import (
    cooccurrence_scorer,
    heldout_examples,
    popularity_scorer,
    rank_targets,
    ranking_metrics,
    split_indices,
    training_examples,
)
from npembed.train import prepare


def test_split_is_80_10_10_of_a_seeded_permutation():
    tr, va, te = split_indices(10, seed=0)
    perm = np.random.default_rng(0).permutation(10)
    assert tr.tolist() == perm[:8].tolist() and va.tolist() == perm[8:9].tolist() and te.tolist() == perm[9:].tolist()


def test_heldout_draw_follows_the_protocol():
    encoded = [np.array([5, 1, 3]), np.array([2]), np.array([4, 0])]
    ex = heldout_examples(encoded, np.random.default_rng(1), pad=9)
    rng = np.random.default_rng(1)
    j0 = rng.integers(3)  # the one-item basket is skipped without a draw
    j2 = rng.integers(2)
    assert ex.targets.tolist() == [[1, 3, 5][j0], [0, 4][j2]]
    assert sorted(ex.contexts[0][ex.contexts[0] != 9].tolist() + [ex.targets[0]]) == [1, 3, 5]
    assert ex.lengths.tolist() == [2, 1]


def test_training_examples_hold_each_item_out_once():
    ex = training_examples([np.array([7, 8, 9]), np.array([1, 2])], pad=10)
    assert ex.targets.tolist() == [7, 8, 9, 1, 2]
    rows = [sorted(r[r != 10].tolist()) for r in ex.contexts]
    assert rows == [[8, 9], [7, 9], [7, 8], [2], [1]]
    ctx, tgt = ex.batch(np.array([3, 4]))
    assert ctx.shape == (2, 1)  # trimmed to the batch's longest context


def test_rank_counts_ties_half_and_excludes_context():
    scores = np.array([[5.0, 3.0, 3.0, 9.0, 3.0]])
    # target 1 (score 3); item 3 (score 9) is in the context, so only item 0 is above.
    ranks = rank_targets(scores, np.array([[3, 99]]), np.array([1]), pad=99)
    assert ranks.tolist() == [1 + 1 + 0.5 * 2]


def test_ranking_metrics_recall_and_mrr():
    ex = heldout_examples([np.array([0, 1])], np.random.default_rng(0), pad=5)
    perfect = ranking_metrics(lambda c: np.eye(5)[[ex.targets[0]]], ex)
    assert perfect == {"recall@10": 1.0, "mrr": 1.0, "n": 1}


@pytest.mark.parametrize("dense_pairs_max", [1 << 24, 0])
def test_cooccurrence_matches_a_dense_reference(rng, monkeypatch, dense_pairs_max):
    import npembed.heldout as H

    monkeypatch.setattr(H, "DENSE_PAIRS_MAX", dense_pairs_max)  # both ways of counting pairs
    V = 7
    encoded = [rng.choice(V, size=rng.integers(2, 5), replace=False) for _ in range(40)]
    X = np.zeros((len(encoded), V))
    for i, b in enumerate(encoded):
        X[i, b] = 1
    C = X.T @ X
    cnt = np.diag(C).copy()
    np.fill_diagonal(C, 0)
    N = C / np.sqrt(np.outer(cnt, cnt))
    ctx = np.array([[0, 3, 7], [5, 7, 7]])  # 7 = padding
    ref = np.stack([N[:, [0, 3]].sum(1), N[:, [5]].sum(1)])
    np.testing.assert_allclose(cooccurrence_scorer(encoded, V)(ctx), ref, rtol=1e-12)
    np.testing.assert_array_equal(popularity_scorer(encoded, V)(ctx)[0], cnt)


def test_baselines_reproduce_the_reference_figures():
    """../shared/REFERENCE.md: popularity 0.393 / 0.199, co-occurrence 0.563 / 0.319 on test."""
    data = prepare(load_recipes(), split_seed=0)
    assert len(data.vocab) == 380 and len(data.train) == 380772
    assert data.sizes["test_evaluated"] == 5732
    V = len(data.vocab)
    pop = ranking_metrics(popularity_scorer(data.encoded_train, V), data.test)
    co = ranking_metrics(cooccurrence_scorer(data.encoded_train, V), data.test)
    assert round(pop["recall@10"], 3) == 0.393 and round(pop["mrr"], 3) == 0.199
    assert round(co["recall@10"], 3) == 0.563 and round(co["mrr"], 3) == 0.319


def test_vocab_lookup_suggests_close_names():
    v = Vocab.from_baskets([["garlic", "onion"], ["green_onion", "garlic"]])
    assert v.index_to_key == ["garlic", "green_onion", "onion"]
    assert v.counts.tolist() == [2, 1, 1]
    with pytest.raises(KeyError, match=r"'garlik' is not in the vocabulary \(3 items\)\. Did you mean: garlic\?"):
        v.lookup("garlik")
    with pytest.raises(ValueError, match="`index_to_key` must hold distinct keys; 'a' appears more than once"):
        Vocab(["a", "b", "a"])
    assert Vocab.from_json(v.to_json()).index_to_key == v.index_to_key
