"""The README's Python blocks run as written (issue 27). The files they name are made here first, small:
``runs/tiny`` as a finished run of the block's own ``TrainConfig`` (so ``train_or_load`` reuses it instead
of training 30 epochs), ``mae_pretrain_vit_base.pth`` as official encoder-only weights (of the tiny
preset) and ``vit_b16.safetensors`` as a one-block ``vit_base_patch16_224`` at 32 px."""

import json
import re
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file

import maelens
from maelens.train import TrainConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def make_files(root: Path) -> None:
    run = root / "runs" / "tiny"
    run.mkdir(parents=True)
    config = TrainConfig(preset="tiny", data="bundled", epochs=30, out="runs/tiny")
    torch.manual_seed(0)
    model = maelens.create_model("tiny")
    maelens.save_checkpoint(run / "checkpoint.pt", model, epoch=29, train_config=config.to_dict())
    (run / "summary.json").write_text(json.dumps({"status": "completed", "epochs_completed": 30,
                                                  "final_loss": 0.5, "history": []}))
    encoder = {k: v for k, v in model.state_dict().items() if not k.startswith(("decoder", "mask_token"))}
    torch.save({"model": encoder}, root / "mae_pretrain_vit_base.pth")
    vit = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, img_size=32, depth=1)
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(root / "vit_b16.safetensors"))


def test_the_readme_has_the_blocks_the_issue_names():
    blocks = python_blocks()
    assert len(blocks) >= 2 and "imgs = " in blocks[0] and "load_checkpoint(vit)" in "".join(blocks)


def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch):
    make_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for index, block in enumerate(python_blocks()):  # in order, sharing names, as a reader runs them
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)
    assert set(namespace["seg"].final) >= {"eval_loss", "pixel_accuracy", "miou"}
    assert namespace["vit_feats"].features.shape[0] == len(namespace["data"])
