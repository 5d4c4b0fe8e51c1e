"""The service's web page: overview, deployments, pending plan; actions only when enabled."""

from .pages import CSP, Ui, UiOptions, ui_routes

__all__ = ["CSP", "Ui", "UiOptions", "ui_routes"]
