"""Split half-precision weights (what benchmarks/gpu_check.py brings back from a GPU): saved in parts under
a size cap, reassembled into the same model up to float16 rounding, and refused when altered."""

import pytest
import torch

from maelens import create_model
from maelens.checkpoint.split import load_split, save_split
from maelens.errors import CheckpointError


def test_parts_respect_the_cap_and_reassemble_the_model(tmp_path):
    torch.manual_seed(0)
    model = create_model("tiny")
    files = save_split(model, tmp_path, max_part_bytes=200_000)
    parts = [f for f in files if f.suffix == ".pt"]
    assert len(parts) >= 2 and all(f.stat().st_size <= 200_000 for f in parts)
    loaded = load_split(tmp_path)
    assert loaded.config == model.config and not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert b.dtype == torch.float32
        torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0, msg=name)  # exactly the float16 values
    imgs = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, model.num_patches)
    with torch.no_grad():
        torch.testing.assert_close(loaded(imgs, 0.75, noise)[0], model.eval()(imgs, 0.75, noise)[0], rtol=1e-2, atol=1e-3)


def test_an_altered_or_missing_part_is_refused(tmp_path):
    files = save_split(create_model("tiny"), tmp_path, max_part_bytes=200_000)
    files[0].write_bytes(files[0].read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_split(tmp_path)
    files[0].unlink()
    with pytest.raises(CheckpointError, match="missing part"):
        load_split(tmp_path)
    with pytest.raises(CheckpointError, match="manifest"):
        load_split(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="max_part_bytes"):
        save_split(create_model("tiny"), tmp_path / "small", max_part_bytes=70_000)
