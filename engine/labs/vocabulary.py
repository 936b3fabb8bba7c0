"""The names lab files and the app share: views a student can open, the inspection events the app
records, and the attribution methods an event may name.  Goals check against these lists, so a
typo in a lab ("weigths") is refused when the lab is loaded, not silently never met."""
from __future__ import annotations

#: view id -> the title the student sees (gui/views/*, and the explain / evaluation panels)
VIEWS: dict[str, str] = {
    "loss": "Loss and metrics",
    "weights": "Weights",  # also shows a convolution's filters
    "activations": "Activations",  # also shows a convolution's feature maps
    "gradients": "Gradient norms",
    "dead_relu": "Dead ReLUs",
    "decision_boundary": "Decision boundary",
    "regression": "Fitted curve",
    "lr": "Learning rate",
    "timeline": "Timeline",
    "evaluation": "Evaluation",
    "attribution": "Explain",
}

#: the attribution methods of engine/explain (branch ``explain``), by the names its API takes
ATTRIBUTION_METHODS: tuple[str, ...] = (
    "saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "gradcam", "guided_gradcam",
    "occlusion", "gradient_shap", "kernel_shap", "lime",
)

#: inspection event kind -> the fields it carries (all text); what the app records in the project
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "view_opened": ("view",),
    "timeline_scrubbed": (),
    "attribution_run": ("method",),
    "sanity_check_run": ("method",),
}
