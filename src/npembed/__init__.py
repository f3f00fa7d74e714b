"""npembed: embedding layers on NumPy, with compiled kernels, for training and querying on the CPU."""

from ._checks import FormatError
from .align import Coverage, align_vectors
from .bag import EmbeddingBag
from .baskets import Baskets, load_recipes, read_baskets
from .embedding import Embedding
from .keyedvectors import KeyedVectors
from .layers import Linear, MeanPool
from .losses import SoftmaxCrossEntropy
from .model import BasketModel, TrainedModel, load_model, save_model
from .optim import SGD, Adagrad, Adam, AdamW, Optimizer, RowWiseAdagrad
from .parameter import Parameter, RowSparseGrad
from .threads import get_num_threads, num_threads, set_num_threads
from .vectors_io import load_vectors, save_vectors
from .vocab import Vocab

__version__ = "0.1.0"

__all__ = [
    "Adagrad",
    "Adam",
    "AdamW",
    "RowWiseAdagrad",
    "BasketModel",
    "TrainedModel",
    "load_model",
    "save_model",
    "Baskets",
    "Embedding",
    "EmbeddingBag",
    "FormatError",
    "KeyedVectors",
    "Linear",
    "MeanPool",
    "Optimizer",
    "Parameter",
    "RowSparseGrad",
    "SGD",
    "SoftmaxCrossEntropy",
    "Vocab",
    "align_vectors",
    "load_recipes",
    "load_vectors",
    "save_vectors",
    "read_baskets",
    "get_num_threads",
    "num_threads",
    "set_num_threads",
]
