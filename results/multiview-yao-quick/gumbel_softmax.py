"""Yao et al.'s Gumbel-softmax selection at the quick scale: which coordinates each view selects, and their R²."""
import collections, time
from dataclasses import replace
from mmident_jax import sweep
from mmident_jax.multiview.experiment import study
from mmident_jax.multiview.structure import MULTIVIEW_YAO_QUICK, Preset

cfg = replace(MULTIVIEW_YAO_QUICK, views=replace(MULTIVIEW_YAO_QUICK.views, selection="gumbel_softmax"))
t = time.perf_counter()
rows = sweep.sweep(study(Preset(cfg, seeds=1, protocol="yao", eval_batches=10, eval_batch_size=4096, probes=("linear",))), progress=False)
print(f"1 seed, {cfg.train_steps} steps, gumbel_softmax selection, yao protocol (10 x 4096), linear probe: {time.perf_counter() - t:.0f} s")
print("| subset V | C_V | view | coordinates selected (share of batches) | R² of C_V (mean) | R² others (max) |")
print("|---|---|---|---|---|---|")
by = collections.defaultdict(list)
for r in rows:
    by[(r["subset"], r["view"])].append(r)
for (subset, view), rs in by.items():
    content = [r for r in rs if r["content"]]
    other = [r for r in rs if not r["content"]]
    print(f"| {{{subset}}} | {','.join(r['latent'] for r in content)} | {view} | {rs[0]['coords']} | "
          f"{sum(r['r2_linear'] for r in content) / len(content):.3f} | {max(r['r2_linear'] for r in other):.3f} |")
