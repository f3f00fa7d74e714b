import numpy as np
import pytest

from npembed import Embedding, FormatError, KeyedVectors
from npembed.interop import export_projector, from_torch_state_dict, load_safetensors, save_safetensors, to_torch_state_dict

from .conftest import torch_or_skip


def test_safetensors_round_trip(tmp_path, rng):
    pytest.importorskip("safetensors", reason="safetensors comes with the test extras")
    kv = KeyedVectors(["a", "b", "ü"], rng.standard_normal((3, 4)).astype(np.float32))
    save_safetensors(tmp_path / "t.safetensors", kv)
    back = load_safetensors(tmp_path / "t.safetensors")
    assert back.index_to_key == kv.index_to_key and back.vectors.tobytes() == kv.vectors.tobytes()
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(FormatError, match="bad.safetensors: not a readable safetensors file"):
        load_safetensors(tmp_path / "bad.safetensors")


def test_torch_state_dict_both_ways(rng):
    torch = torch_or_skip()
    emb = Embedding(5, 3, rng=0)
    t = torch.nn.Embedding(5, 3)
    t.load_state_dict(to_torch_state_dict(emb))
    np.testing.assert_array_equal(t.weight.detach().numpy(), emb.weight.data)
    back = from_torch_state_dict(t.state_dict(), padding_idx=0)
    np.testing.assert_array_equal(back.weight.data, emb.weight.data)
    assert back.weight.requires_grad and back.padding_idx == 0
    with pytest.raises(KeyError, match=r"the state dict has no 'weight' \(keys: \['bias'\]\)"):
        from_torch_state_dict({"bias": 1})


def test_projector_export(tmp_path):
    export_projector(tmp_path / "p", ["a\tb", "c"], np.array([[1.0, 2.0], [3.0, 4.5]]), {"count": [3, 1]})
    assert (tmp_path / "p" / "vectors.tsv").read_text() == "1\t2\n3\t4.5\n"
    assert (tmp_path / "p" / "metadata.tsv").read_text() == "key\tcount\na b\t3\nc\t1\n"
    export_projector(tmp_path / "q", ["x", "y"], np.ones((2, 2)))
    assert (tmp_path / "q" / "metadata.tsv").read_text() == "x\ny\n"
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="holds other files; refusing to replace it"):
        export_projector(tmp_path / "r", ["x"], np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"metadata column 'n' has 1 values for 2 keys"):
        export_projector(tmp_path / "s", ["x", "y"], np.ones((2, 2)), {"n": [1]})
