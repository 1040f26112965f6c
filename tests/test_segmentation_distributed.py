"""Segmentation fine-tuning in two CPU processes under torchrun (gloo): identical weights on both ranks,
only rank 0 writes, and the evaluation sums over the ranks equal one process evaluating every image."""

import json
import textwrap

import pytest
import torch
from torchrun_helper import run_two_processes

from maelens.data.segmentation import load_segmentation
from maelens.segmentation import evaluate_segmenter, load_segmenter

WORKER = textwrap.dedent('''
    import os, sys, torch
    from maelens.segmentation import SegmentConfig, finetune

    torch.set_num_threads(1)
    out = sys.argv[1]
    config = SegmentConfig(preset="tiny", epochs=1, batch_size=8, lr=1e-3, warmup_epochs=0, num_images=32,
                           eval_images=13, device="cpu", out=out, quiet=True, figure_images=2, precision="fp32")
    result = finetune(config)
    torch.save(result.model.state_dict(), os.path.join(out, "weights-rank%s.pt" % os.environ["RANK"]))
''')


def test_two_gloo_processes_agree_and_evaluate_every_image_once(tmp_path):
    out = tmp_path / "ddp"
    proc = run_two_processes(WORKER, tmp_path, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(out / "weights-rank0.pt", weights_only=True)
    rank1 = torch.load(out / "weights-rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps_per_epoch"] == 2 and summary["eval_images"] == 13
    model = load_segmenter(out / "checkpoint.pt").model
    assert all(torch.equal(model.state_dict()[k], rank0[k]) for k in rank0)
    # 13 evaluation images split 7 + 6 over the ranks, sums all-reduced: the same as one process
    test = load_segmentation("mosaic", image_size=32, split="test", limit=13)
    single = evaluate_segmenter(model, test, test.num_classes)
    assert summary["final"]["eval_loss"] == pytest.approx(single.loss, rel=1e-5)
    assert summary["final"]["miou"] == pytest.approx(single.scores.miou, rel=1e-6)
    assert summary["final"]["pixel_accuracy"] == pytest.approx(single.scores.pixel_accuracy, rel=1e-6)
