"""The main job: train a :class:`BasketModel` on baskets and evaluate it against two baselines."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from ._checks import FormatError, check_positive_float, check_positive_int
from .baskets import Baskets
from .heldout import (
    Examples,
    cooccurrence_scorer,
    encode_baskets,
    heldout_examples,
    popularity_scorer,
    ranking_metrics,
    split_indices,
    training_examples,
)
from .losses import SoftmaxCrossEntropy
from .model import BasketModel, TrainedModel
from .checkpoint import kill_point, read_checkpoint, write_checkpoint
from .optim import SGD, SPARSE_MODES, Adagrad, Adam, AdamW, RowWiseAdagrad
from .schedules import SCHEDULES, make_schedule
from .vocab import Vocab

__all__ = ["TrainConfig", "fit", "train_baskets", "Prepared", "prepare"]

log = logging.getLogger(__name__)

OPTIMIZERS = {"adam": Adam, "adamw": AdamW, "sgd": SGD, "adagrad": Adagrad, "rowwise_adagrad": RowWiseAdagrad}
# The table's initialiser for the main job. U(-0.05, 0.05) (Keras' default) rather than PyTorch's
# N(0, 1): with N(0, 1) an item seen in a few hundred baskets keeps mostly its random start, and
# its nearest neighbours are noise (measured: 26% of the top-10 neighbours share the item's food
# category with N(0, 1), 38% with U(-0.05, 0.05), at the same test Recall@10).
INITS = ("uniform", "normal", "xavier_uniform", "zeros")


@dataclass
class TrainConfig:
    """Hyperparameters of the main job (the defaults are the ones ``npembed train`` uses)."""

    dim: int = 128
    epochs: int = 20
    batch_size: int = 256
    lr: float = 2e-3
    optimizer: str = "adam"
    seed: int = 0
    patience: int = 3
    split_seed: int = 0
    init: str = "uniform"
    lr_schedule: str = "constant"
    warmup: int = 0
    sparse_mode: str = "lazy"

    def check(self) -> "TrainConfig":
        check_positive_int(self.dim, "dim")
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_float(self.lr, "lr")
        check_positive_int(self.patience, "patience")
        if self.init not in INITS:
            raise ValueError(f"`init` must be one of {sorted(INITS)}; got {self.init!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {sorted(OPTIMIZERS)}; got {self.optimizer!r}.")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"`lr_schedule` must be one of {SCHEDULES}; got {self.lr_schedule!r}.")
        if self.sparse_mode not in SPARSE_MODES:
            raise ValueError(f"`sparse_mode` must be one of {SPARSE_MODES}; got {self.sparse_mode!r}.")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, (int, np.integer)) or self.warmup < 0:
            raise ValueError(f"`warmup` must be a non-negative integer (steps); got {self.warmup!r}.")
        for name in ("seed", "split_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"`{name}` must be a non-negative integer; got {v!r}.")
        return self


@dataclass
class Prepared:
    """The task built from baskets: vocabulary, training examples, held-out valid and test sets."""

    vocab: Vocab
    train: Examples
    valid: Examples
    test: Examples
    encoded_train: list
    sizes: dict = field(default_factory=dict)


def prepare(baskets: Baskets, split_seed: int = 0) -> Prepared:
    """Split, build the vocabulary from training baskets, and draw the held-out items."""
    n = len(baskets)
    if n < 3:
        raise ValueError(f"need at least 3 baskets to split into train, valid and test; got {n}.")
    tr, va, te = split_indices(n, split_seed)
    train_b = [baskets.baskets[i] for i in tr]
    vocab = Vocab.from_baskets(train_b)
    if len(vocab) < 2:
        raise ValueError(f"the training baskets hold {len(vocab)} distinct item(s); at least 2 are needed.")
    pad = len(vocab)
    enc_tr = encode_baskets(train_b, vocab)
    valid = heldout_examples(encode_baskets([baskets.baskets[i] for i in va], vocab), np.random.default_rng(split_seed + 2), pad)
    test = heldout_examples(encode_baskets([baskets.baskets[i] for i in te], vocab), np.random.default_rng(split_seed + 1), pad)
    train = training_examples(enc_tr, pad)
    sizes = {
        "baskets": n,
        "train_baskets": len(tr),
        "valid_baskets": len(va),
        "test_baskets": len(te),
        "valid_evaluated": len(valid),
        "test_evaluated": len(test),
        "items": len(vocab),
        "train_examples": len(train),
    }
    return Prepared(vocab, train, valid, test, enc_tr, sizes)


def data_fingerprint(data: Prepared) -> str:
    """A hash of the examples a run trains and validates on (a resumed run must see the same)."""
    h = hashlib.sha256()
    for a in (data.train.contexts, data.train.targets, data.valid.contexts, data.valid.targets):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(json.dumps(data.vocab.index_to_key).encode())
    return h.hexdigest()


def fit(
    model: BasketModel,
    data: Prepared,
    config: TrainConfig,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    checkpoint: str | None = None,
    checkpoint_every: int = 0,
    resume: dict | None = None,
) -> list[dict]:
    """Minibatch training with validation after each epoch; the best epoch's weights are kept.

    Stops early after ``config.patience`` epochs without a better valid Recall@10 (MRR breaking
    ties). Returns one record per epoch (loss, valid metrics, seconds, examples/s); the kept epoch
    has ``"best": True``.

    With ``checkpoint`` (a folder), the whole training state is written there atomically after
    every epoch and, if ``checkpoint_every`` > 0, every that many batches. ``resume`` (what
    :func:`npembed.checkpoint.read_checkpoint` returns) continues such a run; the result is the
    same, bit for bit, as the run that was never interrupted.
    """
    from tqdm.auto import tqdm

    rng = np.random.default_rng(config.seed + 1)  # shuffling; config.seed itself seeds the weights
    opt = OPTIMIZERS[config.optimizer](model.parameters(), lr=config.lr, sparse_mode=config.sparse_mode)
    loss_fn = SoftmaxCrossEntropy()
    n = len(data.train)
    bs = config.batch_size
    batches_per_epoch = -(-n // bs)
    schedule = make_schedule(config.lr_schedule, config.lr, config.epochs * batches_per_epoch, config.warmup)
    history: list[dict] = []
    best, best_state, stale = (-np.inf, -np.inf), model.state(), 0
    first_epoch, first_start, totals = 1, 0, (0.0, 0)
    fingerprint = data_fingerprint(data) if (checkpoint or resume) else ""
    if resume is not None:
        if resume["fingerprint"] != fingerprint:
            raise ValueError("the checkpoint was written for other data (its training examples differ); pass the same --data.")
        if not (1 <= resume["epoch"] <= config.epochs + 1 and 0 <= resume["start"] < max(n, 1)):
            raise FormatError(f"damaged checkpoint: epoch {resume['epoch']}, position {resume['start']} are out of range.")
        try:
            model.load_state_dict(resume["model"])
            opt.load_state_dict(resume["optimizer"])
            rng.bit_generator.state = resume["rng"]
            if len(resume["best_state"]) != len(model.parameters()) or any(
                np.shape(a) != p.data.shape for a, p in zip(resume["best_state"], model.parameters())
            ):
                raise ValueError("its best-epoch weights do not fit the model")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FormatError(f"damaged or incompatible checkpoint ({exc}).") from None
        history, stale = resume["history"], resume["stale"]
        best, best_state = tuple(resume["best"]), resume["best_state"]
        first_epoch, first_start, totals = resume["epoch"], resume["start"], tuple(resume["totals"])
        if resume.get("done"):
            first_epoch = config.epochs + 1  # the run had finished (or stopped early): nothing left
    if len(data.valid) == 0:
        log.warning(
            "no valid basket has 2 or more known items, so nothing can be validated: "
            "epochs are compared by training loss instead"
        )
    saves = 0

    def save(epoch: int, start: int, rng_state: dict, total: float, seen: int, done: bool = False) -> None:
        nonlocal saves
        if checkpoint is None:
            return
        saves += 1
        opt_state = opt.state_dict()  # first: in exact mode it brings idle rows of the table up to date
        write_checkpoint(checkpoint, {
            "config": asdict(config), "fingerprint": fingerprint, "epoch": epoch, "start": start,
            "totals": [total, seen], "rng": rng_state, "history": history, "stale": stale, "best": list(best),
            "model": model.state_dict(), "optimizer": opt_state, "best_state": best_state, "done": done,
        }, kill_at=f"checkpoint:{saves}")

    for epoch in range(first_epoch, config.epochs + 1):
        epoch_rng_state = rng.bit_generator.state
        order = rng.permutation(n)
        t0 = time.perf_counter()
        start0 = first_start if epoch == first_epoch else 0
        total, seen = totals if epoch == first_epoch else (0.0, 0)
        bar = tqdm(total=n, initial=start0, desc=f"epoch {epoch}/{config.epochs}", unit="ex", unit_scale=True,
                   disable=not progress, leave=False)
        for start in range(start0, n, bs):
            rows = order[start : start + bs]
            ctx, tgt = data.train.batch(rows)
            opt.lr = schedule((epoch - 1) * batches_per_epoch + start // bs)
            opt.zero_grad()
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported just below
                logits = model.forward(ctx)
                loss = loss_fn(logits, tgt)
            if not np.isfinite(loss):
                bar.close()
                raise FloatingPointError(
                    f"the loss became {loss} in epoch {epoch} (batch {start // bs + 1}): training diverged. "
                    f"Lower the learning rate (--lr, now {config.lr})."
                )
            model.backward(loss_fn.backward())
            opt.step()
            total += loss * len(rows)
            seen += len(rows)
            bar.update(len(rows))
            batch_no = start // bs + 1
            if batch_no % 50 == 0:
                bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
            kill_point(f"batch:{epoch}:{batch_no}")
            if checkpoint_every and batch_no % checkpoint_every == 0 and start + bs < n:
                save(epoch, start + bs, epoch_rng_state, total, seen)
        seconds = time.perf_counter() - t0
        bar.close()
        opt.catch_up()  # exact mode: idle rows are brought up to date before anything reads them
        valid = ranking_metrics(model.forward, data.valid)
        rec = {
            "epoch": epoch,
            "loss": total / seen,
            "valid_recall@10": valid["recall@10"],
            "valid_mrr": valid["mrr"],
            "seconds": seconds,
            "examples_per_second": (seen - (first_start if epoch == first_epoch else 0)) / seconds,
            "best": False,
        }
        history.append(rec)
        if valid["n"]:
            shown = f"valid recall@10 {valid['recall@10']:.4f}, mrr {valid['mrr']:.4f}"
        else:
            shown = "no valid baskets"
        log.info("epoch %d: loss %.4f, %s, %.1fs (%.0f examples/s)", epoch, rec["loss"], shown, seconds, rec["examples_per_second"])
        if on_epoch is not None:
            on_epoch(rec)
        # Recall@10 decides (the reference protocol); MRR breaks ties, which matters once Recall@10
        # saturates on a small catalogue (10 of 20 items are always "in the top 10").
        score = (valid["recall@10"], valid["mrr"]) if valid["n"] else (-rec["loss"], 0.0)
        if score > tuple(best):
            best, best_state, stale = score, model.state(), 0
            for r in history:
                r["best"] = r is rec
        else:
            stale += 1
        done = stale >= config.patience or epoch == config.epochs
        save(epoch + 1, 0, rng.bit_generator.state, 0.0, 0, done)
        if stale >= config.patience:
            log.info("no better valid recall@10 for %d epochs: stopping", stale)
        if done:
            break
    model.load_state(best_state)
    return history


def train_baskets(
    baskets: Baskets,
    config: TrainConfig | None = None,
    progress: bool = True,
    checkpoint: str | None = None,
    checkpoint_every: int = 0,
    resume: str | None = None,
) -> tuple[TrainedModel, dict]:
    """Everything ``npembed train`` does before writing: prepare, baselines, fit, test metrics.

    Returns the trained model and the metrics dictionary written to ``metrics.json``.
    """
    config = (config or TrainConfig()).check()
    t_start = time.perf_counter()
    data = prepare(baskets, config.split_seed)
    log.debug("%s", data.sizes)
    V = len(data.vocab)
    baselines = {
        "popularity": ranking_metrics(popularity_scorer(data.encoded_train, V), data.test),
        "cooccurrence": ranking_metrics(cooccurrence_scorer(data.encoded_train, V), data.test),
    }
    model = BasketModel(V, config.dim, rng=config.seed, init=config.init)
    state = None
    if resume is not None:
        state = read_checkpoint(resume)
        differ = sorted(k for k, v in asdict(config).items() if state["config"].get(k) != v)
        if differ:
            raise ValueError(
                f"the checkpoint in {resume} was written with other settings (they differ in: {', '.join(differ)}); "
                "resume with the same command line."
            )
    t_fit = time.perf_counter()
    history = fit(model, data, config, progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=state)
    fit_seconds = time.perf_counter() - t_fit
    test = ranking_metrics(model.forward, data.test)
    best = next(r for r in history if r["best"])
    if test["n"] == 0:
        log.warning("no test basket has 2 or more known items: the test metrics are empty (null)")
    metrics = {
        "model": {"recall@10": test["recall@10"], "mrr": test["mrr"]},
        "baselines": {name: {"recall@10": m["recall@10"], "mrr": m["mrr"]} for name, m in baselines.items()},
        "test_baskets_evaluated": test["n"],
        "valid": {"recall@10": best["valid_recall@10"], "mrr": best["valid_mrr"]},
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "train_seconds": fit_seconds,
        "examples_per_second": len(data.train) * len(history) / sum(r["seconds"] for r in history),
        "total_seconds": time.perf_counter() - t_start,
        "sizes": data.sizes,
    }
    config_out = {
        "hyperparameters": asdict(config),
        "data": {"source": baskets.source, **{k: v for k, v in baskets.stats.items()}},
        "history": history,
        "model": "Embedding(num_items + 1, dim, padding_idx=num_items) -> MeanPool -> Linear(dim, num_items) -> softmax",
    }
    return TrainedModel(model, data.vocab, config_out, metrics), metrics
