"""Every analysis command on a CAE checkpoint: the encoder analyses accept it, attention-stats reports IPOL's
metrics on its regressor, and what is defined on MAE's decoder alone is refused in one line (exit status 2)."""

import pytest

from maelens.cli import main
from maelens.train import train
from maelens.train.cae_method import cae_train_config
from maelens.train.config import TrainConfig


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("cae-cli")
    common = dict(epochs=1, batch_size=8, num_images=16, quiet=True, recon_images=0, device="cpu")
    cae = train(cae_train_config(out=str(root / "cae"), **common)).checkpoint
    hog = train(cae_train_config(out=str(root / "hog"), model_overrides={"target": "hog"}, **common)).checkpoint
    mae = train(TrainConfig(out=str(root / "mae"), **common)).checkpoint
    return {"cae": str(cae), "hog": str(hog), "mae": str(mae)}


ACCEPTED = {
    "features": ["features", "--num-images", "8", "--out", "{out}/f.npz"],
    "distfit": ["distfit", "--num-images", "8", "--out", "{out}/d"],
    "evaluate": ["evaluate", "--num-images", "24", "--methods", "knn,linear,attentive", "--epochs", "2",
                 "--out", "{out}/e"],
    "similarity": ["similarity", "--num-images", "8", "--query", "0", "--out", "{out}/s.png"],
    "cka-with-mae": ["cka", "--ckpt-b", "{mae}", "--num-images", "8", "--out", "{out}/c"],
    "rollout": ["rollout", "--index", "0", "--out", "{out}/r"],
    "probe-layers": ["probe-layers", "--num-images", "24", "--out", "{out}/p"],
    "token-stats": ["token-stats", "--num-images", "8", "--out", "{out}/t"],
    "attention-stats-encoder": ["attention-stats", "--encoder", "--num-images", "8", "--out", "{out}/a"],
    "attention-stats-regressor": ["attention-stats", "--num-images", "8", "--mask", "block", "--mask-ratio", "0.5",
                                  "--out", "{out}/g"],
    "reconstruct": ["reconstruct", "--num-images", "4", "--out", "{out}/x.png"],
    "segment": ["segment", "--data", "mosaic", "--num-images", "16", "--eval-images", "8", "--epochs", "1",
                "--batch-size", "8", "--out", "{out}/seg"],
}
REFUSED = {
    "influence-map": (["influence-map", "--index", "0", "--out", "{out}/i.png"], "cae", "is a CAE"),
    "cka-decoder": (["cka", "--parts", "decoder", "--num-images", "8", "--out", "{out}/c2"], "cae", "no decoder"),
    "token-stats-decoder": (["token-stats", "--parts", "decoder", "--num-images", "8", "--out", "{out}/t2"], "cae",
                            "no decoder"),
    "reconstruct-hog": (["reconstruct", "--num-images", "4", "--out", "{out}/y.png"], "hog", "not pixels"),
}


def _args(argv, checkpoints, out):
    return [a.format(out=out, **checkpoints) for a in argv]


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepts_a_cae_checkpoint(name, checkpoints, tmp_path, capsys):
    argv = _args(ACCEPTED[name], checkpoints, tmp_path)
    assert main([argv[0], "--ckpt", checkpoints["cae"], *argv[1:], "--quiet"] if argv[0] != "reconstruct"
                else [argv[0], "--ckpt", checkpoints["cae"], *argv[1:]]) == 0, capsys.readouterr().err
    if name == "attention-stats-regressor":
        assert (tmp_path / "g" / "regressor_stats.csv").read_text().count("\nregressor,") == 4


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refuses_in_one_line(name, checkpoints, tmp_path, capsys):
    argv, which, message = REFUSED[name]
    argv = _args(argv, checkpoints, tmp_path)
    assert main([argv[0], "--ckpt", checkpoints[which], *argv[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith(f"maelens {argv[0]}: error:")
