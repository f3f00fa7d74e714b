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
    emb = Embedding(4, 2, rng=0)
    save_safetensors(tmp_path / "e.safetensors", emb)  # an Embedding (no keys): "0", "1", ...
    back = load_safetensors(tmp_path / "e.safetensors")
    assert back.index_to_key == ["0", "1", "2", "3"] and np.array_equal(back.vectors, emb.weight.data)
    from safetensors.numpy import save_file

    cases = [
        ({"weight": np.array(1.0, dtype=np.float32)}, {}, r"tensor 'weight' has shape \(\) and dtype float32; a table is 2-D floats"),
        ({"weight": np.ones((2, 2), np.float32)}, {"index_to_key": "[oops"}, r"the metadata 'index_to_key' is not JSON"),
        ({"weight": np.ones((2, 2), np.float32)}, {"index_to_key": '["a"]'}, r"the metadata 'index_to_key' must list 2 strings, one per row"),
        ({"weight": np.ones((2, 2), np.float32)}, {"index_to_key": '["a", "a"]'}, r"`index_to_key` must hold distinct keys"),
        ({"weight": np.array([[np.nan, 1.0]], np.float32)}, {}, r"tensor 'weight' holds NaN or infinite values"),
        ({"other": np.ones((2, 2), np.float32)}, {}, r"no tensor named 'weight' \(found \['other'\]\); pass tensor=NAME"),
    ]
    for i, (tensors, meta, msg) in enumerate(cases):
        p = tmp_path / f"c{i}.safetensors"
        save_file(tensors, str(p), metadata=meta)
        with pytest.raises(FormatError, match=rf"c{i}.safetensors: {msg}"):
            load_safetensors(p)
    assert load_safetensors(tmp_path / "c5.safetensors", tensor="other").vectors.shape == (2, 2)
    with pytest.raises(FileNotFoundError, match="safetensors file not found"):
        load_safetensors(tmp_path / "none.safetensors")


def test_torch_state_dict_both_ways(rng):
    torch = torch_or_skip()
    emb = Embedding(5, 3, rng=0)
    t = torch.nn.Embedding(5, 3)
    t.load_state_dict(to_torch_state_dict(emb))
    np.testing.assert_array_equal(t.weight.detach().numpy(), emb.weight.data)
    back = from_torch_state_dict(t.state_dict(), padding_idx=0)
    np.testing.assert_array_equal(back.weight.data[1:], emb.weight.data[1:])
    assert not back.weight.requires_grad and back.padding_idx == 0  # frozen by default, as PyTorch's from_pretrained
    assert from_torch_state_dict(t.state_dict(), freeze=False).weight.requires_grad
    model = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.LayerNorm(3))  # one 2-D "*.weight"
    np.testing.assert_array_equal(from_torch_state_dict(model.state_dict()).weight.data, model[0].weight.detach().numpy())
    np.testing.assert_array_equal(from_torch_state_dict(model.state_dict(), key="0.weight").weight.data, model[0].weight.detach().numpy())
    half = from_torch_state_dict({"weight": t.weight.detach().bfloat16()})
    assert half.weight.data.dtype == np.float32
    np.testing.assert_array_equal(half.weight.data, t.weight.detach().bfloat16().float().numpy())
    sparse = from_torch_state_dict({"weight": t.weight.detach().to_sparse()})
    np.testing.assert_array_equal(sparse.weight.data, t.weight.detach().numpy())
    assert to_torch_state_dict(back.weight.data)["weight"].shape == (5, 3)
    with pytest.raises(KeyError, match=r"the state dict has no 'weight' and 0 2-D '\*.weight' entries \(keys: \['bias'\]\); pass key=NAME"):
        from_torch_state_dict({"bias": 1})
    two = {"a.weight": t.weight, "b.weight": t.weight}
    with pytest.raises(KeyError, match=r"the state dict has no 'weight' and 2 2-D '\*.weight' entries"):
        from_torch_state_dict(two)
    with pytest.raises(KeyError, match=r"the state dict has no 'c.weight'"):
        from_torch_state_dict(two, key="c.weight")
    with pytest.raises(TypeError, match=r"'weight' holds torch.int64; an embedding table holds floats"):
        from_torch_state_dict({"weight": torch.zeros(2, 2, dtype=torch.int64)})
    with pytest.raises(ValueError, match=r"'weight' has shape \(4,\); an embedding table is 2-D"):
        from_torch_state_dict({"weight": torch.zeros(4)})
    with pytest.raises(TypeError, match=r"`state` must be a state dict \(a dict of tensors\); got Embedding"):
        from_torch_state_dict(t)
    with pytest.raises(TypeError, match=r"to_torch_state_dict takes a KeyedVectors, an Embedding or a 2-D float array; got str"):
        to_torch_state_dict("weights")


def test_projector_export(tmp_path):
    export_projector(tmp_path / "p", ["a\tb", "c"], np.array([[1.0, 2.0], [3.0, 4.5]]), {"count": [3, 1]})
    assert (tmp_path / "p" / "vectors.tsv").read_text() == "1\t2\n3\t4.5\n"
    assert (tmp_path / "p" / "metadata.tsv").read_text() == "key\tcount\na b\t3\nc\t1\n"
    export_projector(tmp_path / "q", ["x", "y"], np.ones((2, 2)))
    assert (tmp_path / "q" / "metadata.tsv").read_text() == "x\ny\n"
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="holds files an earlier export did not write; refusing to replace it"):
        export_projector(tmp_path / "r", ["x"], np.ones((1, 2)))
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "vectors.tsv").write_text("a user's own file")  # same name, not ours: kept
    with pytest.raises(FileExistsError, match="holds files an earlier export did not write"):
        export_projector(tmp_path / "t", ["x"], np.ones((1, 2)))
    assert (tmp_path / "t" / "vectors.tsv").read_text() == "a user's own file"
    export_projector(tmp_path / "q", KeyedVectors(["u", "v"], np.zeros((2, 2))))  # replaces an earlier export
    assert (tmp_path / "q" / "metadata.tsv").read_text() == "u\nv\n"
    assert "tensor_path: \"vectors.tsv\"" in (tmp_path / "q" / "projector_config.pbtxt").read_text()
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="exists and is not a folder"):
        export_projector(tmp_path / "file", ["x"], np.ones((1, 2)))
    with pytest.raises(TypeError, match=r"metadata column 'x' must be a list of values, one per key; got 5"):
        export_projector(tmp_path / "s", ["x"], np.ones((1, 2)), {"x": 5})
    with pytest.raises(ValueError, match=r"metadata column 'n' has 1 values for 2 keys"):
        export_projector(tmp_path / "s", ["x", "y"], np.ones((2, 2)), {"n": [1]})


def test_interop_takes_any_table_and_refuses_what_it_cannot_round_trip(tmp_path, rng):
    torch = torch_or_skip()
    pytest.importorskip("safetensors", reason="safetensors comes with the test extras")
    from safetensors.torch import save_file as save_torch

    emb = Embedding(3, 2, rng=0)
    export_projector(tmp_path / "p", emb)
    assert (tmp_path / "p" / "metadata.tsv").read_text() == "0\n1\n2\n"
    export_projector(tmp_path / "q", np.ones((2, 2), np.float32))
    assert (tmp_path / "q" / "vectors.tsv").read_text() == "1\t1\n1\t1\n"
    with pytest.raises(TypeError, match="pass either a table"):
        export_projector(tmp_path / "r", emb, np.ones((3, 2)))
    w = torch.randn(4, 3).bfloat16()
    save_torch({"weight": w}, str(tmp_path / "bf16.safetensors"))
    kv = load_safetensors(tmp_path / "bf16.safetensors")
    assert kv.vectors.dtype == np.float32 and np.array_equal(kv.vectors, w.float().numpy())
    with pytest.raises(ValueError, match="the table holds NaN or infinite values; no file was written"):
        save_safetensors(tmp_path / "n.safetensors", np.array([[np.nan, 1.0]], np.float32))
    with pytest.raises(ValueError, match="only string keys can be saved in the metadata"):
        save_safetensors(tmp_path / "k.safetensors", KeyedVectors([1, 2], np.ones((2, 2), np.float32)))
    assert not list(tmp_path.glob("[nk].safetensors"))
    big_endian = np.arange(6, dtype=">f8").reshape(3, 2)
    np.testing.assert_array_equal(to_torch_state_dict(big_endian)["weight"].numpy(), big_endian)
