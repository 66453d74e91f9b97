"""The learned ELMo layer weights per task as a PNG: softmax weights s_j (grouped bars, one per biLM
layer, error bars = std over seeds) and the scale gamma, from the GloVe + ELMo runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elmo_tasks.atomic import atomic_path


def plot_layer_weights(weights: pd.DataFrame, path: str | Path) -> bool:
    """Draw the learned mixes of ``weights`` (:func:`~elmo_tasks.comparison.table.layer_weights_table`)
    into ``path``; fixed mixes are named under the plot, not drawn. False when nothing was learned."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if weights.empty:
        return False
    learned = weights[weights["learned"]]
    fixed = weights[~weights["learned"]]
    if learned.empty:
        return False
    layers = sorted((c[:-5] for c in learned.columns if c.startswith("s") and c.endswith("_mean")),
                    key=lambda c: int(c[1:]))
    names = [t if w == "input" else f"{t}\n({w})" for t, w in zip(learned["task"], learned["where"])]
    x = np.arange(len(names))
    width = 0.8 / len(layers)
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(6.0, 1.3 * len(names) + 3.5), 4.2),
                                      gridspec_kw={"width_ratios": [3, 1]})
    for j, layer in enumerate(layers):
        means = learned[f"{layer}_mean"].to_numpy(dtype=float)
        stds = learned[f"{layer}_std"].to_numpy(dtype=float)
        left.bar(x + (j - (len(layers) - 1) / 2) * width, means, width, yerr=_errors(stds), capsize=2,
                 label=f"layer {layer[1:]}" + (" (char CNN)" if layer == "s0" else ""))
    left.axhline(1 / len(layers), color="grey", linestyle="--", linewidth=0.8, label="uniform")
    left.set_xticks(x, names, fontsize=8)
    left.set_ylabel("softmax weight $s_j$")
    left.set_ylim(0, 1)
    left.legend(fontsize=7, loc="upper right")
    left.set_title("ELMo layer weights (GloVe + ELMo runs, mean over seeds)", fontsize=9)
    right.bar(x, learned["gamma_mean"].to_numpy(dtype=float),
              yerr=_errors(learned["gamma_std"].to_numpy(dtype=float)), width=0.6, capsize=2,
              color="tab:grey")
    right.set_xticks(x, names, fontsize=7, rotation=45, ha="right")
    right.set_title("scale $\\gamma$", fontsize=9)
    seeds = sorted(set(learned["seeds"].astype(int)))
    footer = f"seeds per task: {', '.join(map(str, seeds))}"
    if not fixed.empty:
        footer += "; fixed (not learned) mixes left out: " + ", ".join(sorted(set(fixed["task"])))
    fig.text(0.01, 0.01, footer, fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)
    return True


def _errors(stds):
    """Error bars from sample stds; none at all when every task has a single seed."""
    import numpy as np

    return None if np.isnan(stds).all() else np.nan_to_num(stds)
