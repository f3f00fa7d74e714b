"""Command-line interface: ``npembed train | neighbors | recommend``."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
from typing import Sequence

import numpy as np

from ._checks import FormatError

log = logging.getLogger("npembed")

DEFAULT_OUT = "npembed-model"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)


def _sep(value: str) -> str:
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "space": " ", "whitespace": " "}
    return named.get(value.lower(), value)


def _add_train(sub) -> None:
    from .train import TrainConfig

    d = TrainConfig()
    p = sub.add_parser(
        "train",
        formatter_class=_Formatter,
        help="train item vectors on baskets (default: the bundled recipes) and evaluate them",
        description="Hold one item of each basket out, train an embedding table plus a softmax output layer "
        "to predict it from the others, and compare Recall@10 and MRR on test baskets with two baselines.",
    )
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="FILE", help="baskets file (default: the bundled recipes of Ahn et al. 2011)")
    g.add_argument("--format", choices=["auto", "lines", "csv"], default="auto",
                   help="'lines': one basket per line; 'csv': header plus basket,item rows (auto: by the .csv suffix)")
    g.add_argument("--sep", type=_sep, default=None,
                   help="field separator: tab, comma, space or any string (default: detected per file)")
    g.add_argument("--skip-fields", type=int, default=0, metavar="N",
                   help="lines layout: leading fields that are not items, e.g. 1 for a label column")
    g.add_argument("--basket-col", default=None, help="CSV: basket (or user) id column, name or 0-based index (default: first)")
    g.add_argument("--item-col", default=None, help="CSV: item column, name or 0-based index (default: second)")
    g.add_argument("--encoding", default="utf-8", help="text encoding of the data file (default: utf-8)")
    h = p.add_argument_group("model and training")
    h.add_argument("--dim", type=int, default=d.dim, help=f"embedding size (default {d.dim})")
    h.add_argument("--epochs", type=int, default=d.epochs, help=f"most epochs to run (default {d.epochs})")
    h.add_argument("--batch-size", type=int, default=d.batch_size, help=f"examples per step (default {d.batch_size})")
    h.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr})")
    h.add_argument("--optimizer", choices=["adam", "adamw", "sgd", "adagrad", "rowwise_adagrad"], default=d.optimizer,
                   help=f"(default {d.optimizer})")
    h.add_argument("--sparse-mode", choices=["lazy", "exact"], default=d.sparse_mode,
                   help="table updates: 'lazy' touches only the batch's rows; 'exact' equals the dense optimizer "
                   f"(default {d.sparse_mode})")
    h.add_argument("--lr-schedule", choices=["constant", "linear", "cosine"], default=d.lr_schedule,
                   help=f"learning rate over the run, down to 0 at the last step (default {d.lr_schedule})")
    h.add_argument("--warmup", type=int, default=d.warmup, help="linear warm-up over this many steps (default 0)")
    h.add_argument("--init", choices=["uniform", "normal", "xavier_uniform", "zeros"], default=d.init,
                   help=f"table initialiser (default {d.init}: U(-0.05, 0.05))")
    h.add_argument("--patience", type=int, default=d.patience,
                   help=f"stop after this many epochs without a better valid Recall@10 (default {d.patience})")
    h.add_argument("--seed", type=int, default=d.seed, help="seeds the weights and the shuffling (default 0)")
    h.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads for the kernels and BLAS (default: all cores); results are the same for any N")
    h.add_argument("--split-seed", type=int, default=d.split_seed,
                   help="seeds the train/valid/test split and the held-out draws (default 0, the reference protocol)")
    o = p.add_argument_group("output")
    o.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"model folder to write (default ./{DEFAULT_OUT})")
    o.add_argument("--no-plot", action="store_true", help="skip the PCA plot")
    o.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="write the training state to DIR after every epoch (atomically), to resume later")
    o.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                   help="with --checkpoint: also every N batches (default: epochs only)")
    o.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run checkpointed in DIR (same data and settings); the result equals an "
                   "uninterrupted run, bit for bit")
    o.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=_cmd_train)


def _add_query(sub, name: str, help: str, min_count: int) -> None:
    p = sub.add_parser(name, help=help, description=help, formatter_class=_Formatter)
    p.add_argument("--model", default=DEFAULT_OUT, metavar="DIR", help=f"model folder (default ./{DEFAULT_OUT})")
    if name == "neighbors":
        p.add_argument("--vectors", default=None, metavar="FILE",
                       help="query a word2vec/GloVe/fastText file (or an npembed vector folder) instead of a model folder")
        _add_reading_options(p)
    p.add_argument("--topn", type=int, default=10, help="how many items to print (default 10)")
    p.add_argument("--min-count", type=int, default=min_count,
                   help=f"only show items seen in at least this many training baskets (default {min_count})")
    p.add_argument("keys", nargs="+", metavar="ITEM", help="item name(s)")
    p.set_defaults(func=_cmd_neighbors if name == "neighbors" else _cmd_recommend)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npembed",
        description="Train, query and evaluate embedding tables on NumPy.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_train(sub)
    _add_query(sub, "neighbors", "items nearest (cosine) to each ITEM", min_count=5)
    _add_vectors_commands(sub)
    _add_query(sub, "recommend", "items most likely to complete the basket ITEM...", min_count=1)
    p = sub.add_parser("compile", formatter_class=_Formatter,
                       help="compile every kernel now (or load it from the cache) and print the times",
                       description="numba compiles npembed's kernels on first use and caches the machine code on disk, "
                       "so only the first run after installing pays for it. Run this once after installing to pay it now; "
                       "it prints the time per kernel (compile on a cold cache, load on a warm one).")
    p.add_argument("--float64", action="store_true", help="also the float64 builds (float32 is the default dtype)")
    p.set_defaults(func=_cmd_compile)
    return parser


def _cmd_compile(args) -> int:
    import numba

    from .kernels.warmup import warm_up

    t0 = time.perf_counter()
    times = warm_up((np.float32, np.float64) if args.float64 else (np.float32,))
    for name, sec in times:
        print(f"  {name:<16}{sec:8.2f} s")
    where = numba.config.CACHE_DIR or "__pycache__ beside the npembed package"
    print(f"{len(times)} kernel groups ready in {time.perf_counter() - t0:.1f} s (cache: {where})")
    return 0


def _version() -> str:
    from . import __version__

    return f"npembed {__version__}"


def _fmt(x, width: int) -> str:
    return f"{'n/a':>{width}}" if x is None else f"{x:>{width}.4f}"


def _table(rows: list[tuple[str, float | None, float | None]]) -> str:
    lines = [f"{'method':<16}{'recall@10':>10}{'mrr':>9}"]
    lines += [f"{name:<16}{_fmt(r, 10)}{_fmt(m, 9)}" for name, r, m in rows]
    return "\n".join(lines)


def _cmd_train(args) -> int:
    from .baskets import load_recipes, read_baskets
    from .model import save_model
    from .fsutil import check_replaceable_model_dir, check_writable_parent
    from .train import TrainConfig, train_baskets

    config = TrainConfig(
        dim=args.dim, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        seed=args.seed, patience=args.patience, split_seed=args.split_seed, init=args.init,
        lr_schedule=args.lr_schedule, warmup=args.warmup, sparse_mode=args.sparse_mode,
    ).check()
    if args.checkpoint_every < 0:
        raise ValueError(f"--checkpoint-every must be >= 0; got {args.checkpoint_every}.")
    if args.checkpoint_every and not (args.checkpoint or args.resume):
        raise ValueError("--checkpoint-every needs --checkpoint DIR (or --resume DIR).")
    checkpoint = args.resume if args.resume is not None else args.checkpoint
    if checkpoint is not None:
        from .checkpoint import check_checkpoint_dir

        check_checkpoint_dir(checkpoint)
        if os.path.abspath(checkpoint) == os.path.abspath(args.out):
            raise ValueError("the checkpoint folder must differ from --out (the model folder).")
    if args.skip_fields < 0:
        raise ValueError(f"--skip-fields must be >= 0; got {args.skip_fields}.")
    if args.threads is not None:
        from .threads import set_num_threads

        if args.threads < 1:
            raise ValueError(f"--threads must be a positive integer (leave it out for all cores); got {args.threads}.")
        try:
            set_num_threads(args.threads)
        except ValueError as exc:
            raise ValueError(f"--threads: {exc}") from None
    # Refuse a bad --out before minutes of training, not after.
    check_replaceable_model_dir(os.path.abspath(args.out))
    check_writable_parent(args.out)
    t0 = time.perf_counter()
    if args.data is None:
        baskets = load_recipes()
    else:
        baskets = read_baskets(
            args.data, format=args.format, sep=args.sep, skip_fields=args.skip_fields,
            basket_col=args.basket_col, item_col=args.item_col, encoding=args.encoding,
        )
    st = baskets.stats
    print(
        f"data: {baskets.source}: {len(baskets)} baskets ({st['format']}, separator {st['separator']!r}; "
        f"dropped {st['short_baskets']} with fewer than 2 items, {st['duplicate_items']} repeated items, "
        f"{st['blank_lines']} blank lines)",
        flush=True,
    )
    trained, metrics = train_baskets(
        baskets, config, progress=not args.quiet and sys.stderr.isatty(), checkpoint=checkpoint,
        checkpoint_every=args.checkpoint_every, resume=args.resume,
    )
    s = metrics["sizes"]
    print(
        f"split: {s['train_baskets']} train / {s['valid_baskets']} valid / {s['test_baskets']} test baskets, "
        f"{s['items']} items, {s['train_examples']} training examples per epoch"
    )
    print(
        f"trained {metrics['epochs_run']} epoch{'s' if metrics['epochs_run'] != 1 else ''} in {metrics['train_seconds']:.1f}s "
        f"({metrics['examples_per_second']:,.0f} examples/s); best epoch {metrics['best_epoch']} "
        f"(valid recall@10{_fmt(metrics['valid']['recall@10'], 7)})"
    )
    print()
    print(f"test baskets evaluated: {metrics['test_baskets_evaluated']}")
    print(_table([
        ("model", metrics["model"]["recall@10"], metrics["model"]["mrr"]),
        ("co-occurrence", metrics["baselines"]["cooccurrence"]["recall@10"], metrics["baselines"]["cooccurrence"]["mrr"]),
        ("popularity", metrics["baselines"]["popularity"]["recall@10"], metrics["baselines"]["popularity"]["mrr"]),
    ]))
    extra = {}
    if not args.no_plot:
        from .plot import plot_embeddings

        def write_plot(path: str) -> None:
            # The plot is a picture of the model, not part of it: a failure to draw it must not
            # throw the trained model away.
            try:
                plot_embeddings(trained.vectors, trained.vocab.index_to_key, trained.vocab.counts, path)
            except Exception as exc:  # noqa: BLE001 - any drawing failure is only a warning
                log.warning("could not draw embeddings.png (%s: %s); the model is saved without it", type(exc).__name__, exc)
                if os.path.exists(path):
                    os.remove(path)

        extra["embeddings.png"] = write_plot
    metrics["wall_seconds"] = time.perf_counter() - t0
    out = save_model(trained, args.out, extra)
    print()
    print(
        f"model written to {out}/ (vectors.npy, output_weight.npy, output_bias.npy, vocab.json, config.json, "
        f"metrics.json{', embeddings.png' if extra else ''})"
    )
    top_item = trained.vocab.index_to_key[int(trained.vocab.counts.argmax())]
    print(f"try: npembed neighbors --model {shlex.quote(args.out)} {shlex.quote(top_item)}")
    return 0


def _load(args):
    from .model import load_model

    return load_model(args.model)


def _check_topn(args) -> None:
    if args.topn < 0:
        raise ValueError(f"--topn must be >= 0; got {args.topn}.")
    if args.min_count < 0:
        raise ValueError(f"--min-count must be >= 0; got {args.min_count}.")


def _add_reading_options(p) -> None:
    """How to read a vector file (as load_vectors); a folder written with --to npembed needs none."""
    g = p.add_argument_group("reading the vector file")
    g.add_argument("--format", default="auto", choices=["auto", "word2vec", "word2vec-binary", "glove", "fasttext"],
                   help="input format (default: detected from the bytes)")
    g.add_argument("--encoding", default="utf-8", help="encoding of the keys (default utf-8)")
    g.add_argument("--unicode-errors", default="strict", choices=["strict", "ignore", "replace"],
                   help="what to do with keys that are not valid in the encoding (default strict: an error)")
    g.add_argument("--limit", type=int, default=None, metavar="N", help="read only the first N vectors")


def _add_vectors_commands(sub) -> None:
    p = sub.add_parser("convert", help="convert a vector file to another format", formatter_class=_Formatter,
                       description="Convert between word2vec text, word2vec binary, GloVe text (fastText .vec = word2vec "
                       "text) and npembed's folder (memory-mappable). OUT ending in .gz is written gzip-compressed.")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    p.add_argument("--to", required=True, choices=["word2vec", "word2vec-binary", "glove", "fasttext", "npembed"],
                   help="output format")
    _add_reading_options(p)
    p.set_defaults(func=_cmd_convert)
    p = sub.add_parser("analogy", help="a is to b as c is to ?", formatter_class=_Formatter,
                       description="Answer 'a is to b as c is to ?' by 3CosAdd (nearest to b - a + c) or 3CosMul.")
    p.add_argument("--vectors", required=True, metavar="FILE", help="a vector file, or a folder written with --to npembed")
    p.add_argument("--topn", type=int, default=5)
    p.add_argument("--cosmul", action="store_true", help="3CosMul (Levy and Goldberg, 2014) instead of 3CosAdd")
    p.add_argument("words", nargs=3, metavar="WORD")
    _add_reading_options(p)
    p.set_defaults(func=_cmd_analogy)
    p = sub.add_parser("evaluate", help="word-analogy accuracy and word-pair correlations of a vector file",
                       formatter_class=_Formatter)
    p.add_argument("--vectors", required=True, metavar="FILE", help="a vector file, or a folder written with --to npembed")
    p.add_argument("--analogies", metavar="FILE", help="questions-words.txt format")
    p.add_argument("--pairs", metavar="FILE", action="append", help="word<TAB>word<TAB>score lines (repeatable)")
    p.add_argument("--restrict-vocab", type=int, default=300_000, help="use the first N keys (default 300000)")
    p.add_argument("--case-sensitive", action="store_true", help="do not fold case when matching words (default: fold)")
    p.add_argument("--dummy4unknown", action="store_true",
                   help="count questions/pairs with unknown words (as wrong / similarity 0) instead of skipping them")
    _add_reading_options(p)
    p.set_defaults(func=_cmd_evaluate)


def _keyed(args):
    """The KeyedVectors of --vectors: an npembed folder (memory-mapped) or a vector file."""
    from .keyedvectors import KeyedVectors

    path = args.vectors
    if os.path.isdir(path):
        if (args.format, args.limit) != ("auto", None):
            raise ValueError("--format and --limit apply to vector files; this is a folder (read as written).")
        return KeyedVectors.load_folder(path)
    return KeyedVectors.load(path, args.format, limit=args.limit, encoding=args.encoding,
                             unicode_errors=args.unicode_errors)


def _cmd_convert(args) -> int:
    from .keyedvectors import KeyedVectors
    from .vectors_io import load_vectors, save_vectors

    if os.path.exists(args.output) and os.path.exists(args.input) and os.path.samefile(args.input, args.output):
        raise ValueError("IN and OUT are the same file; write the converted vectors somewhere else.")
    if os.path.isdir(args.input):
        args.vectors = args.input
        kv, source = _keyed(args), "npembed"
    else:
        vf = load_vectors(args.input, args.format, limit=args.limit, encoding=args.encoding, unicode_errors=args.unicode_errors)
        kv, source = KeyedVectors(vf.keys, vf.vectors, vf.counts), vf.format
    if args.to == "npembed":
        kv.save(args.output, format="npembed")
    else:
        save_vectors(args.output, kv.index_to_key, kv.vectors, "word2vec" if args.to == "fasttext" else args.to)
    print(f"{len(kv)} vectors of dimension {kv.vector_size}: {source} -> {args.to}, written to {args.output}")
    return 0


def _cmd_analogy(args) -> int:
    if args.topn < 0:
        raise ValueError(f"--topn must be >= 0; got {args.topn}.")
    kv = _keyed(args)
    a, b, c = args.words
    query = kv.most_similar_cosmul if args.cosmul else kv.most_similar
    answers = query(positive=[b, c], negative=[a], topn=args.topn)  # unknown words fail before any output
    print(f"{a} : {b} :: {c} : ?")
    for key, score in answers:
        print(f"  {score:7.4f}  {key}")
    return 0


def _cmd_evaluate(args) -> int:
    if not args.analogies and not args.pairs:
        raise ValueError("pass --analogies FILE and/or --pairs FILE.")
    if args.restrict_vocab <= 0:
        raise ValueError(f"--restrict-vocab must be > 0; got {args.restrict_vocab}.")
    kv = _keyed(args)
    opts = dict(restrict_vocab=args.restrict_vocab, case_insensitive=not args.case_sensitive, dummy4unknown=args.dummy4unknown)
    if args.analogies:
        score, sections = kv.evaluate_word_analogies(args.analogies, **opts)
        print(f"analogies ({args.analogies}):")
        for s in sections:
            n = len(s["correct"]) + len(s["incorrect"])
            acc = f"{len(s['correct']) / n:.4f}" if n else "n/a"
            print(f"  {s['section']:<32}{acc:>8}  ({len(s['correct'])}/{n})")
        skipped = sections[-1].get("skipped", 0)
        print(f"  {skipped} questions skipped: a word outside the first {args.restrict_vocab} keys"
              + ("" if args.dummy4unknown else " (--dummy4unknown counts them as wrong)"))
    for path in args.pairs or []:
        r = kv.evaluate_word_pairs(path, **opts)
        print(f"pairs {path}: pearson {r['pearson']:.4f}, spearman {r['spearman']:.4f}, "
              f"out of vocabulary {r['oov_ratio']:.1f}% ({r['pairs']} pairs used)")
    return 0


def _cmd_neighbors(args) -> int:
    _check_topn(args)
    if args.vectors is not None:
        if args.model != DEFAULT_OUT or args.min_count != 5:
            raise ValueError("--vectors queries a vector file: --model and --min-count apply to model folders only.")
        kv = _keyed(args)
        for k in args.keys:
            kv.get_index(k)
        for i, k in enumerate(args.keys):
            if i:
                print()
            print(f"nearest to {k}:")
            for key, score in kv.most_similar(k, topn=args.topn):
                print(f"  {score:7.4f}  {key}")
        return 0
    tm = _load(args)
    for k in args.keys:
        tm.vocab.lookup(k)  # fail on any unknown key before printing anything
    for i, k in enumerate(args.keys):
        if i:
            print()
        print(f"nearest to {k}:")
        for key, score in tm.neighbors(k, args.topn, min_count=args.min_count):
            print(f"  {score:7.4f}  {key}")
    return 0


def _cmd_recommend(args) -> int:
    _check_topn(args)
    tm = _load(args)
    recs = tm.recommend(args.keys, args.topn, min_count=args.min_count)
    print(f"to add to {' + '.join(dict.fromkeys(args.keys))}:")
    for key, p in recs:
        print(f"  {p:7.4f}  {key}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input or arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = getattr(args, "quiet", False)
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        return args.func(args)
    except KeyError as exc:
        print(f"npembed: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
    except BrokenPipeError:
        # `npembed neighbors ... | head`: the reader left; say nothing more.
        sys.stdout = open(os.devnull, "w")
        return 0
    except (FormatError, ValueError, TypeError, IndexError, OSError, FloatingPointError) as exc:
        print(f"npembed: error: {exc}", file=sys.stderr)
    except MemoryError:
        hint = "try a smaller --dim or --batch-size" if args.command == "train" else "try --limit N to read fewer vectors"
        print(f"npembed: error: not enough memory for this; {hint}.", file=sys.stderr)
    except KeyboardInterrupt:
        print("npembed: interrupted.", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
