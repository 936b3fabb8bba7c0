"""Evaluation and explanation of trained models: plain functions a worker thread or the CLI calls.

Every function takes the model as a ``ReadyModel`` (``engine.model_at.model_at`` /
``ready_model``; it carries its dataset), a compiled model or an ``nn.Module`` plus ``dataset=``.
The long ones take ``cancel`` (a callable returning True to stop, or a ``threading.Event``; checked
between batches or steps, it raises ``Cancelled``) and ``progress`` (called with a fraction in
[0, 1]).  Results are dataclasses holding numpy arrays, with ``to_json()`` for plain JSON.
Bad input raises ``NotApplicable`` (a LayerLabError) with one sentence.  Captum, scikit-learn and
SciPy are imported inside the functions, never by ``import engine.explain``.

Evaluation (``evaluation``)
    evaluate(model, dataset=None, split="test", *, batch_size=512, max_listed=20,
             reliability_bins=10, cancel=None, progress=None) -> Evaluation
        accuracy, per-class precision/recall/F1/support, macro/weighted averages, confusion matrix
        (counts, row-normalised) and ``cells[true][pred]`` -> sample indices, probabilities, the most
        confidently wrong samples, ROC + AUC (binary), reliability diagram; regression: MSE, MAE, R²,
        predicted / actual / residuals.  No test split: the validation split, ``split_used`` says so.

Attribution (``attribution``)
    METHODS: name -> Method(title, description, options, needs_layer, long); ``Method.schema()``,
        ``Method.supports(model, dataset) -> Support(ok, reason)``; ``methods_for(model, dataset)``
        lists all with their support; ``get_method(name)`` also takes the CLI's short names.
    attribute(model, x, target=None, method="saliency", *, dataset=None, layer=None,
              cancel=None, progress=None, **options) -> Attribution
        methods: saliency, input_x_gradient, integrated_gradients, smoothgrad, gradcam,
        guided_gradcam, occlusion, gradient_shap, kernel_shap, lime (DeepLift is not offered:
        Captum's rule is wrong on MaxPool, captum issue #1276).
    layer_choices(model, x=None, dataset=None) -> list[str]     Grad-CAM's candidate nodes
    gradient_field(model, extent=None, n=25, target=1, *, dataset=None, ...) -> GradientField
    grid_extent(dataset) -> (x0, x1, y0, y1)                     as the live decision-boundary view

Feature importance (``importance``), tabular data, names from the header
    permutation_importance(model, dataset=None, split="test", *, n_repeats=10, seed=0, ...)
    mean_abs_shap(model, dataset=None, split="test", *, n_rows=50, n_samples=200, ...)
        -> FeatureImportance (``features()``: [{"name", "importance", "std"}] sorted)

Sanity check (``sanity``), Adebayo et al. 2018
    sanity_check(model, x, target=None, methods=("saliency", "integrated_gradients", "gradcam"), *,
                 dataset=None, layers=None, seed=0, options=None, layer=None, ...) -> SanityResult
        cascading randomisation from the output side; per stage the maps and Spearman's rho of |map|.

Activation maximisation (``activation_max``)
    activation_maximization(model, *, target=None, layer=None, unit=None, steps=200, lr=0.05,
                            l2=1e-3, tv=1e-2, jitter=1, seed=0, ...) -> ActivationMax (``image``)

Drawing (``render``)
    render_overlay(image, attribution, opacity=0.6, *, signed=None, value_range=None, scale=1)
        -> (H, W, 3) uint8 RGB
"""
from engine.explain.activation_max import ActivationMax, activation_maximization
from engine.explain.attribution import (ALIASES, METHODS, Attribution, GradientField, Method, Option, Support,
                                        attribute, get_method, gradient_field, grid_extent, layer_choices,
                                        methods_for)
from engine.explain.base import Cancelled, NotApplicable
from engine.explain.evaluation import Evaluation, evaluate
from engine.explain.importance import FeatureImportance, mean_abs_shap, permutation_importance
from engine.explain.render import render_overlay
from engine.explain.sanity import SanityResult, SanityStage, sanity_check

__all__ = [
    "ALIASES", "METHODS", "ActivationMax", "Attribution", "Cancelled", "Evaluation", "FeatureImportance",
    "GradientField", "Method", "NotApplicable", "Option", "SanityResult", "SanityStage", "Support",
    "activation_maximization", "attribute", "evaluate", "get_method", "gradient_field", "grid_extent",
    "layer_choices", "mean_abs_shap", "methods_for", "permutation_importance", "render_overlay", "sanity_check",
]
