"""Per-example features: last-token representations, projected gradients, exact anchor scores.

Public API (see docs/features.md for the math):
    last_token_reprs(model, tok, examples, batch_size=16) -> Tensor[N, d]
    projected_grads(model, tok, examples, cfg: GradFeatureConfig) -> Tensor[N, k]
    exact_anchor_scores(model, tok, candidates, anchors, cfg: ExactAnchorConfig) -> {name: Tensor[N]}
    FeatureStore(root, fingerprint, rank=0, world_size=1); run_features(FeaturesConfig)
Heavy imports happen inside the functions.
"""

from brittle.features.exact import (
    ExactAnchorConfig,
    ExactScores,
    exact_anchor_result,
    exact_anchor_scores,
)
from brittle.features.grads import GradFeatureConfig, adam_moments_from_optimizer, projected_grads
from brittle.features.reprs import last_token_reprs
from brittle.features.run import FeaturesConfig, run_features
from brittle.features.store import FeatureStore

__all__ = [
    "ExactAnchorConfig", "ExactScores", "FeatureStore", "FeaturesConfig", "GradFeatureConfig",
    "adam_moments_from_optimizer", "exact_anchor_result", "exact_anchor_scores", "last_token_reprs",
    "projected_grads", "run_features",
]
