"""Sizing check of the paper-cpu comparison floor: a seed's MAE (argv[2], default 0) at ctx.comparison_epochs
against the mean-visible-colour fill; writes OUT/fill_check.json."""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "experiments"))
from common import Context, trained  # noqa: E402

ctx = Context(out=Path(sys.argv[1]), scale="paper-cpu", quiet=True)
start = time.time()
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
run = ctx.run(epochs=ctx.comparison_epochs, seed=seed)
error, fill = ctx.fill_test(run.model.eval())
out = {"note": f"paper-cpu comparison MAE (seed {seed}) at the step floor, against the mean-visible-colour fill",
       "seed": seed,
       "pretrain_data": ctx.pretrain_data, "pretrain_images": ctx.pretrain_images, "epochs": ctx.comparison_epochs,
       "batch_size": ctx.batch_size, "steps": ctx.comparison_epochs * (ctx.pretrain_images // ctx.batch_size),
       "masked_mse": error.model_mse, "mean_fill_mse": error.baseline_mse, "difference": fill.to_dict(),
       "trained": trained(fill), "seconds": time.time() - start}
Path(sys.argv[1], "fill_check.json").write_text(json.dumps(out, indent=1))
print(json.dumps(out))
